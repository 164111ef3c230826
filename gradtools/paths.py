"""Where results go: tables under ``data/``, figures under ``figures/``.

The ``default`` profile writes to ``data/`` and ``figures/`` themselves (what
the README's ``make figures`` regenerates); ``smoke`` and ``paper`` write to
``data/<profile>/`` and ``figures/<profile>/`` so a CI or GPU run never
overwrites the committed results. ``GRADTOOLS_ROOT`` moves all of it (tests
point it at a temporary folder).
"""
from __future__ import annotations

import os
from pathlib import Path

from .profiles import check_profile

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def project_root() -> Path:
    """The folder holding ``data/`` and ``figures/``: ``$GRADTOOLS_ROOT``, else the repository."""
    env = os.environ.get("GRADTOOLS_ROOT")
    return Path(env) if env else PACKAGE_ROOT


def _profile_dir(kind: str, profile: str) -> Path:
    check_profile(profile)
    base = project_root() / kind
    path = base if profile == "default" else base / profile
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir(profile: str = "default") -> Path:
    """Folder for a profile's result tables (parquet)."""
    return _profile_dir("data", profile)


def figures_dir(profile: str = "default") -> Path:
    """Folder for a profile's figures (PNG and PDF)."""
    return _profile_dir("figures", profile)


def job_tables_dir(profile: str = "default") -> Path:
    """Folder for the small result table of each expensive job (one run's history, one R table).

    ``paper``: ``data/paper/jobs/``, committed, so that a profile too long for one sitting
    resumes on any machine from what is committed; other profiles: their cache folder.
    """
    if check_profile(profile) == "paper":
        path = data_dir(profile) / "jobs"
        path.mkdir(parents=True, exist_ok=True)
        return path
    return cache_dir(profile)


def cache_dir(profile: str = "default") -> Path:
    """Folder for a profile's caches (trained models, per-checkpoint results); not committed."""
    check_profile(profile)
    path = project_root() / "data" / "cache" / profile
    path.mkdir(parents=True, exist_ok=True)
    return path
