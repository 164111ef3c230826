"""Where a capability forms, and which checkpoints to measure there (study 1, notebooks 00 and 01).

The paper's central claim is about timing: alignment rises *before and with* the task's loss
drop. Log-spaced checkpoints leave the few thousand steps where a capability forms nearly
empty, so notebook 01 measures every saved checkpoint inside each emergence window, plus
log-spaced ones elsewhere.

A window is where a curve (e.g. the IOI margin, IOI-name loss minus IOI loss) makes the middle
of its rise: from the step at which it has made ``lo`` (10%) of the rise to the step at which
it has made ``hi`` (90%). The rise runs from the curve's lowest value before its end level to its
end level (the mean over the last ``tail`` steps, so one noisy last checkpoint does not move it).
"""
from __future__ import annotations

import pandas as pd

from .checkpoint_sources import log_spaced_subset


def rise_window(curve: pd.DataFrame, lo: float = 0.1, hi: float = 0.9, tail: int = 1000,
                falling: bool = False, min_rise: float = 0.0) -> tuple[int, int] | None:
    """``(start, end)`` steps of the middle of a curve's rise (``falling``: of its fall); None if it
    does not rise by more than ``min_rise`` (e.g. 0.5 nats of IOI margin: a size that never learns
    IOI has a rise of noise only).

    ``curve``: columns ``step`` and ``value`` (one metric of one size)."""
    if not 0 <= lo < hi <= 1:
        raise ValueError(f"need 0 <= lo < hi <= 1, got lo={lo}, hi={hi}")
    c = curve.sort_values("step")
    steps, values = c.step.to_numpy(), c.value.to_numpy() * (-1 if falling else 1)
    if len(steps) < 2:
        return None
    end = values[steps >= steps[-1] - tail].mean()
    before = steps < steps[-1] - tail
    if not before.any():
        return None
    low_at = int(values[before].argmin())
    base = values[low_at]
    if end - base <= min_rise:
        return None
    reached = lambda share: next(int(s) for s, v in zip(steps[low_at:], values[low_at:])  # noqa: E731
                                 if v >= base + share * (end - base))
    return reached(lo), reached(hi)


def windowed_steps(available: list[int], windows: list[tuple[int, int]], log_spaced: int) -> list[int]:
    """Every available step inside a window (inclusive), and ``log_spaced`` log-spaced ones over all."""
    inside = {s for s in available for a, b in windows if a <= s <= b}
    return sorted(inside | set(log_spaced_subset(sorted(available), log_spaced)))


# the curve whose rise marks each capability's emergence, and the least rise that counts
CAPABILITY_CURVES = {"ioi": ("ioi_margin", 0.5), "gt": ("gt_prob_diff", 0.1), "oml": ("oml_accuracy", 0.2)}


def capability_windows(wide: pd.DataFrame, lo: float = 0.1, hi: float = 0.9, tail: int = 1000) -> pd.DataFrame:
    """Per size and capability (:data:`CAPABILITY_CURVES`), the :func:`rise_window` of its curve.

    ``wide``: one row per (size, step) with the metric columns of
    :func:`gradtools.checkpoint_suite_claims.capability_wide` (``ioi_margin``, ``gt_prob_diff``,
    ``oml_accuracy``). Rows: size, capability, metric, start, end (a size with no rise has none)."""
    rows = []
    for size, g in wide.groupby("size", sort=False):
        for capability, (metric, min_rise) in CAPABILITY_CURVES.items():
            window = rise_window(g[["step", metric]].rename(columns={metric: "value"}), lo, hi, tail,
                                 min_rise=min_rise)
            if window:
                rows.append(dict(size=size, capability=capability, metric=metric, start=window[0], end=window[1]))
    return pd.DataFrame(rows, columns=["size", "capability", "metric", "start", "end"])


def dense_selection(available: dict[str, list[int]], windows: pd.DataFrame, log_spaced: int) -> dict[str, list[int]]:
    """Per size, the steps study 1 measures: every available step inside any of that size's windows
    (``windows``: rows of :func:`capability_windows`) and ``log_spaced`` log-spaced ones over the run."""
    out = {}
    for size, steps in available.items():
        own = windows[windows["size"] == size]
        out[size] = windowed_steps(steps, list(zip(own.start, own.end)), log_spaced)
    return out


def window_counts(windows: pd.DataFrame, measured: dict[str, list[int]]) -> pd.DataFrame:
    """``windows`` with ``checkpoints``: how many measured steps of its size fall inside each window."""
    counts = [sum(r.start <= s <= r.end for s in measured.get(r.size, [])) for r in windows.itertuples()]
    return windows.assign(checkpoints=counts)


def select_in_windows(source, capabilities: pd.DataFrame, log_spaced: int, tail: int = 1000):
    """``(source, window table)``: ``source`` (a :class:`gradtools.checkpoint_sources.CheckpointSource`)
    keeping, per size, every checkpoint inside that size's :func:`capability_windows` of ``capabilities``
    (notebook 00's tidy ``(size, step, metric, value)`` table) plus ``log_spaced`` log-spaced ones; the
    table is :func:`window_counts` of the windows (sizes of the source only). ``tail``: as in
    :func:`rise_window`."""
    from .checkpoint_suite_claims import capability_wide

    missing = sorted(set(source.sizes) - set(capabilities["size"]))
    if missing:
        raise ValueError(f"the capability table has no size {missing}: rerun notebook 00 on this suite")
    windows = capability_windows(capability_wide(capabilities), tail=tail)
    windows = windows[windows["size"].isin(source.sizes)].reset_index(drop=True)
    chosen = dense_selection({size: source.steps(size) for size in source.sizes}, windows, log_spaced)
    return source.select(steps=chosen), window_counts(windows, chosen)
