"""Study 2's learning-rate probe: does a lower constant rate make the second-order expansion hold?

    python -m gradtools.polca_lr_probe --profile default     # ~5 minutes on one idle core

POLCA needs each interval's per-token loss change explained by the second-order expansion along the
interval's step. Notebook 02's run (:data:`gradtools.polca_addition.RUNS`) measures it at its own rate;
this probe trains the same model at lower constant rates (each on one core, the runs side by side) and
measures, at a few anchors, one full-step expansion over gaps of 1 to 50 steps
(:func:`gradtools.polca_addition.spacing_table`), beside the validation accuracy at each anchor: what a
lower rate buys in decomposition quality, and what it costs in learning within the budget. Every run is
cached; the table ``data/<profile>/polca_arithmetic_lr_probe.parquet`` is rewritten after each, and the
command then saves the figure (:func:`plot`, beside notebook 02's own spacing table when it exists).
"""
from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pandas as pd
import torch
from transformers.utils import logging as hf_logging

from . import cache, paths, profiles
from . import polca_addition as pa

# per profile: (learning rates, steps, anchors, gaps); the default's rates are 1/5 and 1/2.5 of notebook 02's
PROBES = {
    "smoke": ([1e-3], 30, [5, 15], [1, 5]),
    "default": ([1e-4, 2e-4], 6000, [500, 1500, 3000, 5000], [1, 5, 10, 20, 50]),
    "paper": ([1e-5], 10000, [2000, 5000, 8000], [1, 5, 20, 50]),
}
TABLE = "polca_arithmetic_lr_probe.parquet"


def probe_run(profile: str, lr: float) -> pa.AdditionRun:
    """Notebook 02's run of the profile at constant rate ``lr`` for the probe's steps (a sparse POLCA grid)."""
    _, steps, _, _ = PROBES[profile]
    base = pa.RUNS[profile]
    return dataclasses.replace(base, steps=steps, lr=lr, window_lr=lr, window=(0, steps), polca_every=steps // 10,
                               n_basis=min(base.n_basis, 10))


def probe_rows(profile: str, lr: float) -> pd.DataFrame:
    """Train (cached) one rate and measure its spacing table and the accuracy at each anchor."""
    torch.set_num_threads(1)  # one process per core
    hf_logging.disable_progress_bar()
    _, _, anchors, gaps = PROBES[profile]
    run = probe_run(profile, lr)
    folder = pa.run_folder(run, paths.cache_dir(profile))

    def compute():
        validation, _, _ = pa.data(run)
        pa.train(run, folder, extra_steps=[a + g for a in anchors for g in [0, *gaps]], progress=False)
        table = pa.spacing_table(pa.per_token_loss(pa.model(run), validation), pa.loader(folder), anchors, gaps)
        accuracy = {a: pa.final_accuracy(folder, a, validation) for a in anchors}
        return table.assign(lr=lr, steps=run.steps, d_model=run.d_model, accuracy=table.anchor.map(accuracy),
                            final_accuracy=pa.final_accuracy(folder, run.steps, validation))

    return cache.cached_table(folder / "lr_probe.parquet", compute)


def probe(profile: str, workers: int = 2) -> pd.DataFrame:
    """Every rate of the profile's probe; the table, saved after each."""
    profiles.check_profile(profile)
    lrs, steps, anchors, gaps = PROBES[profile]
    for lr in lrs:
        probe_run(profile, lr).check()
    if max(anchors) + max(gaps) > steps:
        raise ValueError(f"anchor {max(anchors)} + gap {max(gaps)} lies beyond the probe's {steps} steps")
    out = paths.data_dir(profile) / TABLE
    tables = []
    for table in _tables(profile, lrs, workers):
        tables.append(table)
        cache.save_table(pd.concat(tables, ignore_index=True), out)
    return pd.concat(tables, ignore_index=True)


def _tables(profile: str, lrs: list[float], workers: int):
    """Each rate's table in order: in this process (``workers`` <= 1) or on spawned ones (the pool closed after)."""
    if workers <= 1:
        yield from (probe_rows(profile, lr) for lr in lrs)
        return
    with ProcessPoolExecutor(min(workers, len(lrs)), mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(probe_rows, [profile] * len(lrs), lrs)


def plot(probe_table: pd.DataFrame, run_spacing: pd.DataFrame | None, run_lr: float, profile: str):
    """One panel per constant rate: the share explained by one full-step expansion against the gap, per anchor;
    the probe's rates beside notebook 02's run (its spacing table, at ``run_lr``). Saved as
    ``polca_arithmetic_decomposition_by_learning_rate``; returns the figure."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from .figures import save_figure

    parts = [probe_table[["lr", "anchor", "gap", "explained"]]]
    if run_spacing is not None and len(run_spacing):
        parts.append(run_spacing.assign(lr=run_lr)[["lr", "anchor", "gap", "explained"]])
    both = pd.concat(parts, ignore_index=True)
    n = both.lr.nunique()
    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 3.5), squeeze=False, sharey=True)
    for ax, (rate, g) in zip(axes[0], both.groupby("lr")):
        sns.lineplot(g, x="gap", y="explained", hue="anchor", marker="o", ax=ax, palette="viridis")
        ax.set(xscale="log", ylim=(-1, 1.05), xlabel="steps between checkpoints", title=f"constant lr {rate:g}")
        ax.axhline(1, color="grey", lw=0.8); ax.axhline(0, color="grey", lw=0.8)
    fig.tight_layout()
    save_figure(fig, "polca_arithmetic_decomposition_by_learning_rate", profile)
    return fig


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="default", help="smoke | default | paper")
    parser.add_argument("--workers", type=int, default=2, help="rates trained at once, one process (core) each")
    args = parser.parse_args(argv)
    table = probe(args.profile, args.workers)
    print(table.pivot_table(index=["lr", "anchor", "accuracy"], columns="gap", values="explained").round(3))
    spacing = paths.data_dir(args.profile) / "polca_arithmetic_decomposition_by_spacing.parquet"  # notebook 02's
    plot(table, pd.read_parquet(spacing) if spacing.exists() else None, pa.RUNS[args.profile].window_lr, args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
