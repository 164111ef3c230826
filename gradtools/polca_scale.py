"""Study 2's scale series: notebook 02's design at several model widths, one row per size.

    python -m gradtools.polca_scale --profile default            # both cores: two sizes at a time
    python -m gradtools.polca_scale --profile smoke --workers 1

Each size is notebook 02's run (:data:`gradtools.polca_addition.RUNS` of the profile) with its own width;
it is trained, its Hessian basis built, POLCA computed along the Hessian and a random basis (plus the
full step) over the whole run, and its curves clustered at the paper's settings. Its row
(:func:`gradtools.polca_addition.scale_row`) is cached in its run folder, and the table
``data/<profile>/polca_arithmetic_scale_series.parquet`` is rewritten after every size, so an
interrupted series resumes where it stopped; the command then saves the figure (:func:`plot`, which
notebook 02 shows too).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import pandas as pd
import torch
from transformers.utils import logging as hf_logging

from . import cache, paths, profiles
from . import polca_addition as pa

# widths of the series per profile (3 layers, 4 heads as notebook 02's run); default: 39k to 0.93M parameters
SIZES = {"smoke": [8], "default": [32, 48, 96, 160], "paper": [128, 256, 512]}
TABLE = "polca_arithmetic_scale_series.parquet"
MIN_CLUSTER_FRACTION = 0.03  # the paper's 150 of 5000 tokens; min_samples tokens/15


def size_run(profile: str, d_model: int) -> pa.AdditionRun:
    """Notebook 02's run of the profile at width ``d_model``."""
    return dataclasses.replace(pa.RUNS[profile], d_model=d_model)


def run_size(profile: str, d_model: int, progress: bool = False) -> dict:
    """Train, build the basis, compute POLCA and cluster one size; its scale row (cached in its folder)."""
    torch.set_num_threads(1)  # one process per core
    hf_logging.disable_progress_bar()
    run = size_run(profile, d_model)
    folder = pa.run_folder(run, paths.cache_dir(profile))
    row_path = folder / "scale_row.json"
    if row_path.exists():
        return json.loads(row_path.read_text())
    started = time.time()
    validation, train_sample, tokens = pa.data(run)
    pa.train(run, folder, progress=progress)
    net = pa.model(run)
    load = pa.loader(folder)
    basis, _ = pa.bases(run, folder, net, train_sample, load, shuffled=False, progress=progress)
    result = pa.polca_terms(run, folder, pa.per_token_loss(net, validation), load, basis, progress=progress)
    table, _ = pa.homogeneity(result, ["Hessian", "random"], tokens, {"exact loss (whole run)": result["loss"].cpu()},
                              min_cluster_size=max(5, round(MIN_CLUSTER_FRACTION * len(tokens))), fisher=False,
                              seed=run.seed)
    n_params = sum(p.numel() for p in net.parameters())
    row = dict(pa.scale_row(run, n_params, result, table, pa.final_accuracy(folder, run.steps, validation)),
               wall_s=time.time() - started)
    cache.atomic_write(row_path, lambda tmp: tmp.write_text(json.dumps(row)))
    return row


def series(profile: str, workers: int = 2, progress: bool = True) -> pd.DataFrame:
    """Every size of the profile's series (the widest first, ``workers`` at a time); the table, saved after each."""
    profiles.check_profile(profile)
    for d in SIZES[profile]:
        size_run(profile, d).check()  # stop on bad settings before any compute
    out = paths.data_dir(profile) / TABLE
    rows = []
    for row in _progress(_rows(profile, sorted(SIZES[profile], reverse=True), workers), len(SIZES[profile]), progress):
        rows.append(row)
        cache.save_table(pd.DataFrame(rows).sort_values("params"), out)
    return pd.DataFrame(rows).sort_values("params", ignore_index=True)


def plot(scale: pd.DataFrame, profile: str):
    """The scale-series figure (decomposition, carry recovered above chance, appendix F's cosine against
    parameters), saved as ``polca_arithmetic_scale_series``; returns the figure."""
    import matplotlib.pyplot as plt

    from .figures import save_figure
    from .polca_arithmetic_claims import RECOVERY_MARGIN

    scale = scale.sort_values("params")
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    axes[0].plot(scale.params, scale.explained_interval, "o-", label="full step, per interval (median)")
    axes[0].plot(scale.params, scale.explained_run, "s-", label="full step, whole run")
    axes[0].plot(scale.params, scale.basis_explained_interval, "^-", label="Hessian basis, per interval")
    axes[0].set_ylabel("share of loss change explained"); axes[0].set_ylim(-1, 1.05)
    for col, label in [("carry_margin_polca_hessian", "POLCA, Hessian basis"),
                       ("carry_margin_polca_random", "POLCA, random basis"), ("carry_margin_exact", "exact loss")]:
        axes[1].plot(scale.params, scale[col], "o-", label=label)
    axes[1].axhline(RECOVERY_MARGIN, color="grey", ls="--", lw=0.8, label="recovery margin")
    axes[1].axhline(0, color="grey", lw=0.8); axes[1].set_ylabel("carry homogeneity minus chance (hundreds, tens)")
    axes[2].plot(scale.params, scale.cosine_first_second, "o-"); axes[2].set_ylabel("first- vs second-order cosine")
    for ax, title in zip(axes, ["decomposition", "carry recovered by clusters", "appendix F"]):
        ax.set_xscale("log"); ax.set_xlabel("parameters"); ax.set_title(title)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, "polca_arithmetic_scale_series", profile)
    return fig


def _rows(profile: str, widths: list[int], workers: int):
    """The scale rows of ``widths`` as they finish: in this process (``workers`` <= 1) or on spawned ones."""
    if workers <= 1:  # the smoke profile's, in notebook 02
        yield from (run_size(profile, d) for d in widths)
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from (job.result() for job in as_completed([pool.submit(run_size, profile, d) for d in widths]))


def _progress(it, total, progress):
    from tqdm.auto import tqdm
    return tqdm(it, total=total, desc="scale series (sizes done)", disable=not progress)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="default", help="smoke | default | paper")
    parser.add_argument("--workers", type=int, default=2, help="sizes computed at once, one process (core) each")
    args = parser.parse_args(argv)
    table = series(args.profile, args.workers)
    print(table.to_string(index=False))
    plot(table, args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
