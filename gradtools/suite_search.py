"""Recipe search for the checkpoint suite (notebook 00): probe runs trained outside the notebook.

A probe run trains one size with one recipe (peak lr, seed, schedule, steps) into
``data/cache/<profile>/suite_search/<run>/<size>``, evaluates every saved checkpoint on the
held-out prompt sets of :func:`gradtools.checkpoint_suite.evaluation_datasets`, and records the
metrics in ``data/suite_recipe_probes.parquet`` (tidy: run, corpus, size, steps, lr, seed,
schedule, batch_size, step, metric, value), which notebook 00's seed study and claims read, and the
last checkpoint's IOI share per evaluation template in ``data/suite_recipe_probe_templates.parquet``. Training
resumes from the last checkpoint after an interruption; recording replaces the run's rows.

    python -m gradtools.suite_search --run P --size d64-L2 --d-model 64 --n-layers 2 --n-heads 4 \\
        --lr 2e-3 --seed 1 --schedule trapezoid --warmup-steps 2000
"""
from __future__ import annotations

import argparse
import fcntl
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd

from . import checkpoint_suite as cs
from .cache import save_table
from .checkpoint_suite_claims import PROBE_COLUMNS as COLUMNS, PROBES_PATH, load_recipe_probes
from .paths import cache_dir
from .suite_corpus import VERSION as CORPUS_VERSION
from .word_tokenizer import load_word_tokenizer

def probe(folder: Path, run: str, size: str, shape: dict, recipe: cs.SuiteRecipe, every: int = 500,
          n_prompts: int = 500, progress: bool = True) -> pd.DataFrame:
    """Train ``size`` with ``recipe`` into ``folder/run`` (checkpoints every ``every`` steps, and at the
    powers of two as the suite saves them, so that study 1 sees the early alignment rise of a seed run too)
    and evaluate every checkpoint; tidy rows in :data:`COLUMNS` order."""
    if every < 1 or recipe.steps % every:
        raise ValueError(f"every={every} must divide steps={recipe.steps}")
    out = Path(folder) / run
    out.mkdir(parents=True, exist_ok=True)
    cs.train_size(out, size, shape, recipe, cs.checkpoint_schedule(recipe.steps, [(0, recipe.steps, every)]),
                  progress=progress)
    tokenizer = load_word_tokenizer(out / "tokenizer.json")
    metrics = cs.evaluate_size(out, size, cs.evaluation_datasets(tokenizer, n_prompts, n_prompts), progress)
    return metrics.assign(run=run, corpus=CORPUS_VERSION, steps=recipe.steps, lr=recipe.lr, seed=recipe.seed,
                          schedule=recipe.schedule, batch_size=recipe.batch_size)[COLUMNS]


TEMPLATE_COLUMNS = ["run", "size", "seed", "step", "template", "order", "prompts", "a_above_b"]
TEMPLATES_PATH = PROBES_PATH.with_name("suite_recipe_probe_templates.parquet")


def final_templates(folder: Path, run: str, size: str, recipe: cs.SuiteRecipe, n_prompts: int = 600) -> pd.DataFrame:
    """The run's last checkpoint on each IOI evaluation template and name order
    (:func:`gradtools.checkpoint_suite.ioi_rank_by_template`, the prompts notebook 00 uses)."""
    from .lm_training import load_checkpoint
    from .prompt_datasets import ioi

    out = Path(folder) / run
    tokenizer = load_word_tokenizer(out / "tokenizer.json")
    table = cs.ioi_rank_by_template(load_checkpoint(out / size, recipe.steps), ioi(tokenizer, n_prompts, 1))
    return table.assign(run=run, size=size, seed=recipe.seed, step=recipe.steps)[TEMPLATE_COLUMNS]


def record(rows: pd.DataFrame, path: Path = PROBES_PATH, columns: list[str] = COLUMNS) -> pd.DataFrame:
    """Replace the rows of ``rows``' (run, size) pairs in the table at ``path`` (the probes, or with
    ``columns=TEMPLATE_COLUMNS`` the per-template table; atomic write, under a lock file: runs side by side
    may finish at the same moment)."""
    with open(Path(path).with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _replace_rows(rows, path, columns)


def _replace_rows(rows: pd.DataFrame, path: Path, columns: list[str]) -> pd.DataFrame:
    if columns == COLUMNS:
        old = load_recipe_probes(path)
    else:
        old = pd.read_parquet(path) if Path(path).exists() else pd.DataFrame(columns=columns)
    keys = set(zip(rows.run, rows["size"]))
    keep = old[[(r, s) not in keys for r, s in zip(old.run, old["size"])]]
    table = pd.concat([keep, rows[columns]], ignore_index=True) if len(keep) else rows[columns].reset_index(drop=True)
    save_table(table, path)
    return table


def search_folder(folder: Path | None = None) -> Path:
    """The folder of the recipe-search runs: ``folder``, by default ``data/cache/default/suite_search``."""
    return Path(folder or cache_dir("default") / "suite_search")


def run_folder(run: str, folder: Path | None = None) -> Path:
    """Where :func:`main` trained ``run``: ``search_folder(folder)/run``."""
    return search_folder(folder) / run


def seed_sources(seeds: pd.DataFrame, probes: pd.DataFrame, size: str, log_spaced: int,
                 folder: Path | None = None, tail: int = 1000) -> list[dict]:
    """The recipe-search runs among notebook 00's ``seeds`` table (rows whose source is ``probe <run>``) as
    checkpoint sources for study 1: per run, a dict of ``seed``, ``run``, ``location`` (its folder),
    ``source`` (its ``size`` checkpoints inside the run's emergence windows, computed from its rows of
    ``probes``, plus ``log_spaced`` log-spaced ones) and ``windows`` (the window table). A run whose
    checkpoints are gone stops with the command that retrains it. ``tail``: the steps at the end whose
    mean is a curve's final level (:func:`gradtools.emergence_windows.rise_window`)."""
    from .checkpoint_sources import open_folder
    from .emergence_windows import select_in_windows

    out = []
    for row in seeds[seeds.source.str.startswith("probe ")].itertuples():
        run = row.source.split(" ", 1)[1]
        location = run_folder(run, folder)
        if not (location / size).is_dir():
            raise FileNotFoundError(f"{location / size} is missing: rerun the recipe-search run {run} "
                                    f"(python -m gradtools.suite_search --run {run} --size {size} --seed {row.seed} "
                                    "--every 250 ... with the recipe of notebook 00's seeds table)")
        capabilities = probes[(probes.run == run) & (probes["size"] == size)][["size", "step", "metric", "value"]]
        source, windows = select_in_windows(open_folder(location, name=f"suite_search {run}").select(sizes=[size]),
                                            capabilities, log_spaced, tail)
        out.append(dict(seed=int(row.seed), run=run, location=str(location), source=source, windows=windows))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="the run's name in the probes table (e.g. P)")
    parser.add_argument("--size", required=True, help="the size's name, e.g. d64-L2")
    parser.add_argument("--d-model", type=int, required=True)
    parser.add_argument("--n-layers", type=int, required=True)
    parser.add_argument("--n-heads", type=int, default=4)
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=cs.SuiteRecipe.steps)
    parser.add_argument("--batch-size", type=int, default=cs.SuiteRecipe.batch_size)
    parser.add_argument("--schedule", choices=cs.SCHEDULES, default="cosine")
    parser.add_argument("--warmup-steps", type=int, default=None)
    parser.add_argument("--cooldown-frac", type=float, default=0.0)
    parser.add_argument("--every", type=int, default=500, help="checkpoint and evaluate every this many steps")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (one run per core)")
    parser.add_argument("--folder", type=Path, default=None, help="default: data/cache/default/suite_search")
    parser.add_argument("--out", type=Path, default=PROBES_PATH)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    recipe = replace(cs.SuiteRecipe(), lr=args.lr, seed=args.seed, steps=args.steps, batch_size=args.batch_size,
                     schedule=args.schedule, warmup_steps=args.warmup_steps, cooldown_frac=args.cooldown_frac)
    shape = dict(d_model=args.d_model, n_layers=args.n_layers, n_heads=args.n_heads)
    folder = search_folder(args.folder)
    rows = probe(folder, args.run, args.size, shape, recipe, every=args.every)
    record(rows, args.out)
    record(final_templates(folder, args.run, args.size, recipe), args.out.with_name(TEMPLATES_PATH.name),
           TEMPLATE_COLUMNS)
    print(f"recorded {len(rows)} rows of run {args.run} ({args.size}) in {args.out}, and its last checkpoint "
          f"per IOI template in {TEMPLATES_PATH.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
