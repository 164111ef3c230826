"""Atomic writes and compute-once caching, so an interrupted run resumes.

Every result file is written to a temporary name in the same folder and moved
into place with :func:`os.replace`, which is atomic on POSIX: a killed run
leaves either the old file or the new one, never half of one.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)``, then move the temporary file onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give results the usual mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a tidy table as parquet, atomically."""
    return atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))


def save_torch(obj: Any, path: str | Path) -> Path:
    """``torch.save`` atomically."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def cached_table(path: str | Path, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """Read the parquet at ``path`` if it exists, else compute, save and return it."""
    path = Path(path)
    if path.exists():
        return pd.read_parquet(path)
    df = compute()
    save_table(df, path)
    return df


def cached_torch(path: str | Path, compute: Callable[[], Any]) -> Any:
    """``torch.load`` the file at ``path`` if it exists, else compute, save and return it."""
    path = Path(path)
    if path.exists():
        return torch.load(path, weights_only=False)
    obj = compute()
    save_torch(obj, path)
    return obj
