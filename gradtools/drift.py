"""Drift check: how far the tables a run wrote are from the committed ones.

``python -m gradtools.runner --compare`` (``make compare``) reads every parquet
table of a profile's ``data/`` folder, the same file as committed at a git
revision (``git show REV:data/...``), and reports per table: identical bytes,
the largest relative difference over numeric cells, how many other cells
differ, and, for claims tables, which verdicts changed. Same seed, same
machine type, same lock: every table should read ``identical``.
"""
from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from .paths import data_dir

TINY = 1e-12
README_START, README_END = "<!-- drift:start -->", "<!-- drift:end -->"


DERIVED = ("fidelity.parquet",)  # assembled from claims/*.parquet, which are compared one by one


def table_paths(folder: Path) -> list[Path]:
    """The result tables of a data folder (its claims included; caches, other profiles and the
    assembled fidelity table excluded)."""
    tables = list(folder.glob("*.parquet")) + list(folder.glob("claims/*.parquet"))
    return sorted(p for p in tables if p.name not in DERIVED)


def committed_bytes(path: Path, rev: str = "HEAD") -> bytes | None:
    """The file at ``path`` as committed at ``rev`` in the repository holding it, or None when it is not."""
    path = Path(path).resolve()
    # ``REV:./name`` is read relative to the folder git runs in
    done = subprocess.run(["git", "-C", str(path.parent), "show", f"{rev}:./{path.name}"], capture_output=True)
    return done.stdout if done.returncode == 0 else None


def max_relative_difference(new: pd.Series, old: pd.Series) -> float:
    """max |new - old| / max(|old|, |new|) over cells (NaN in both counts as equal)."""
    a, b = new.to_numpy(dtype=float), old.to_numpy(dtype=float)
    both_nan = np.isnan(a) & np.isnan(b)
    diff = np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), TINY)
    diff[both_nan] = 0.0
    diff[np.isnan(diff)] = np.inf  # NaN on one side only
    return float(diff.max()) if len(diff) else 0.0


def verdict_changes(new: pd.DataFrame, old: pd.DataFrame) -> list[str]:
    """``'claim: old -> new'`` for every claim whose verdict changed (claims tables only)."""
    if not {"claim", "verdict"} <= set(new.columns) & set(old.columns):
        return []
    merged = old[["claim", "verdict"]].merge(new[["claim", "verdict"]], on="claim", how="outer",
                                             suffixes=("_old", "_new"))
    merged = merged.fillna({"verdict_old": "(new claim)", "verdict_new": "(claim gone)"})
    changed = merged[merged.verdict_old != merged.verdict_new]
    return [f"{r.claim}: {r.verdict_old} -> {r.verdict_new}" for r in changed.itertuples(index=False)]


def compare_table(new: pd.DataFrame, old: pd.DataFrame) -> dict:
    """Largest relative numeric difference, count of other differing cells, verdict changes."""
    out = dict(max_rel_diff=np.nan, cells_differ=0, verdict_changes=verdict_changes(new, old))
    if list(new.columns) != list(old.columns) or len(new) != len(old):
        out["status"] = f"shape changed: {old.shape} -> {new.shape}"
        return out
    rel, other = 0.0, 0
    for col in new.columns:
        a, b = new[col].reset_index(drop=True), old[col].reset_index(drop=True)
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b) and not pd.api.types.is_bool_dtype(a):
            rel = max(rel, max_relative_difference(a, b))
        else:
            other += int((a.astype(str) != b.astype(str)).sum())
    out.update(max_rel_diff=rel, cells_differ=other,
               status="equal values" if rel == 0 and other == 0 else "differs")
    return out


def committed_tables(folder: Path, rev: str = "HEAD") -> list[str]:
    """The parquet tables of ``folder`` (and its ``claims/``) in the commit ``rev``, relative to ``folder``."""
    done = subprocess.run(["git", "-C", str(folder), "ls-tree", "-r", "--name-only", "--full-name", rev, "."],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return []
    top = subprocess.run(["git", "-C", str(folder), "rev-parse", "--show-toplevel"], capture_output=True,
                         text=True).stdout.strip()
    rel = folder.resolve().relative_to(Path(top).resolve()).as_posix() if top else ""
    names = [n[len(rel) + 1:] if rel and rel != "." else n for n in done.stdout.splitlines()]
    return sorted(n for n in names if n.endswith(".parquet") and n not in DERIVED
                  and (n.count("/") == 0 or n.startswith("claims/")))


def drift_report(profile: str = "default", rev: str = "HEAD", since: float | None = None) -> pd.DataFrame:
    """One row per table of the profile's data folder, compared with the committed version at ``rev``.

    ``since``: the run's start (epoch seconds); a table older than that was not written by the run
    and is reported as such instead of as a (trivially) identical one. Tables committed at ``rev``
    but absent now are listed as missing."""
    folder = data_dir(profile)
    rows = []
    present = {p.relative_to(folder).as_posix() for p in table_paths(folder)}
    for name in committed_tables(folder, rev):
        if name not in present:
            rows.append(dict(table=name, status="missing: committed, not written"))
    for path in table_paths(folder):
        name = path.relative_to(folder).as_posix()
        old_bytes = committed_bytes(path, rev)
        new_bytes = path.read_bytes()
        if since is not None and path.stat().st_mtime < since:
            rows.append(dict(table=name, status="not rewritten by the run"))
        elif old_bytes is None:
            rows.append(dict(table=name, status="not committed"))
        elif old_bytes == new_bytes:
            rows.append(dict(table=name, status="identical", max_rel_diff=0.0, cells_differ=0, verdict_changes=[]))
        else:
            rows.append(dict(table=name, **compare_table(pd.read_parquet(path), pd.read_parquet(io.BytesIO(old_bytes)))))
    columns = ["table", "status", "max_rel_diff", "cells_differ", "verdict_changes"]
    return pd.DataFrame(rows, columns=columns).sort_values("table", ignore_index=True)


def any_verdict_changed(report: pd.DataFrame) -> bool:
    """True when some claims table changed a verdict (the drift check then fails)."""
    return any(isinstance(v, list) and v for v in report.verdict_changes)


def format_report(report: pd.DataFrame) -> str:
    """The report as a markdown table, with a one-line summary on top (tables the run did not
    rewrite are named in one line, not compared)."""
    counts = report.status.str.split(":").str[0].value_counts()
    skipped = report.status == "not rewritten by the run"
    lines = ["tables: " + ", ".join(f"{n} {s}" for s, n in counts.items()), ""]
    if skipped.any():
        lines += ["not rewritten by the run (not compared): " + ", ".join(f"`{t}`" for t in report.table[skipped]), ""]
    lines += ["| table | status | max relative difference | other cells differing | verdicts changed |",
              "|---|---|---|---|---|"]
    for r in report[~skipped].itertuples(index=False):
        changes = "; ".join(r.verdict_changes) if isinstance(r.verdict_changes, list) and r.verdict_changes else ""
        rel = "" if pd.isna(r.max_rel_diff) else f"{r.max_rel_diff:.2e}"
        cells = "" if pd.isna(r.cells_differ) else int(r.cells_differ)
        lines.append(f"| `{r.table}` | {r.status} | {rel} | {cells} | {changes} |")
    return "\n".join(lines)


def readme_block(report: pd.DataFrame, rev: str, date: str, how: str) -> str:
    """The report as pasted into the README: when, against what, how the run was made."""
    return f"Drift report of {date}: {how}, compared with `{rev}`.\n\n{format_report(report)}\n"
