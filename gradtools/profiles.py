"""Run profiles shared by every notebook: ``smoke``, ``default`` and ``paper``.

A notebook's ``parameters`` cell sets ``profile``; it then calls
:func:`select` with one settings dict per profile, so the three scales of a
study sit side by side in the notebook where a reader can see them.
"""
from __future__ import annotations

from types import SimpleNamespace

PROFILES = ("smoke", "default", "paper")
DESCRIPTIONS = {
    "smoke": "CI: under a minute a notebook, tiny sizes, checks that everything runs",
    "default": "a 2-core laptop: each notebook within 20 minutes",
    "paper": "the papers' scale, for a GPU",
}


def check_profile(profile: str) -> str:
    """Return ``profile`` unchanged, or raise a ValueError that lists the valid ones."""
    if profile not in PROFILES:
        raise ValueError(
            f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)} "
            f"(for example `papermill NOTEBOOK OUT -p profile default`)"
        )
    return profile


def select(profile: str, settings: dict[str, dict], **overrides) -> SimpleNamespace:
    """The settings of one profile as attributes, with ``overrides`` (those not None) on top.

    ``settings`` maps every profile name to a dict of the same keys, so that a
    study cannot forget a profile or a key in one of them.
    """
    check_profile(profile)
    missing = [p for p in PROFILES if p not in settings]
    if missing:
        raise ValueError(f"settings lack the profile(s) {missing}")
    keys = set(settings[PROFILES[0]])
    for p in PROFILES[1:]:
        if set(settings[p]) != keys:
            raise ValueError(f"profile {p!r} has keys {sorted(settings[p])}, expected {sorted(keys)}")
    unknown = set(overrides) - keys
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)}; known: {sorted(keys)}")
    chosen = dict(settings[profile])
    chosen.update({k: v for k, v in overrides.items() if v is not None})
    return SimpleNamespace(profile=profile, **chosen)
