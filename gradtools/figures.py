"""One way to save a figure: PNG and PDF under the profile's ``figures/`` folder, atomically.

The PDF's creation date is left out, so a rerun that draws the same figure
writes the same bytes (a diff of ``figures/`` then shows only real changes).
"""
from __future__ import annotations

from pathlib import Path

from .cache import atomic_write
from .paths import figures_dir

FORMATS = ("png", "pdf")
# no timestamps in the files: reruns of the same figure are byte-identical
METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None, "ModDate": None}}


def save_figure(fig, name: str, profile: str = "default", *, dpi: int = 150) -> list[Path]:
    """Save ``fig`` as ``<name>.png`` and ``<name>.pdf`` (named after what it shows); return the paths."""
    if not name or "/" in name or name.endswith(FORMATS):
        raise ValueError(f"figure name {name!r}: give a bare name such as 'ioi_alignment' (no folder, no suffix)")
    folder = figures_dir(profile)
    paths = []
    for ext in FORMATS:
        target = folder / f"{name}.{ext}"
        atomic_write(target, lambda tmp, ext=ext: fig.savefig(tmp, format=ext, dpi=dpi, bbox_inches="tight",
                                                              metadata=METADATA[ext]))
        paths.append(target)
    return paths
