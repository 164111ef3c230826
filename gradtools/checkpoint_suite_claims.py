"""Claims about the checkpoint suite itself (notebook ``00_checkpoint_suite``): does it learn IOI, GT, OML?

Study 1 needs a suite in which the paper's capabilities emerge. Issue 6 set the
thresholds a size must meet, each decided here **over the last 1000 training steps**
(every checkpoint in ``[last - 1000, last]``), not at the last checkpoint alone,
since near a threshold the metrics move by several points between checkpoints:

* IOI: IOI-name loss minus IOI loss at least 0.5 nats **and** ``[A]`` ranked above
  ``[B]`` on at least 80% of prompts (:func:`ioi_passes`);
* GT: Hanna et al.'s probability difference above 0.5;
* OML: accuracy above chance, ``1/12`` plus two binomial standard errors (:func:`oml_chance`).

IOI, GT and OML are decided over the seeds of the default recipe: this suite's largest size
(its own checkpoints) plus the recipe-search runs of ``data/suite_recipe_probes.parquet`` that
used the same recipe with another seed (recorded runs, probed at their own checkpoint spacing; the
notebook does not retrain them).

Input tables: ``capabilities`` is the tidy ``(size, step, metric, value)`` table of
:func:`gradtools.checkpoint_suite.evaluate_size`; ``probes`` the tidy
``(run, corpus, size, steps, lr, step, metric, value)`` table of the recipe search.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from . import fidelity
from .claims_format import ONE_SEED, span as _range, step as _step
from .checkpoint_suite import emergence_step, first_step_beyond
from .paths import PACKAGE_ROOT

STUDY = fidelity.STUDIES[1]
IOI_MARGIN = 0.5        # nats by which IOI must beat IOI-name
IOI_RANK = 0.8          # share of prompts with [A] above [B]
GT_PROB_DIFF = 0.5
WINDOW = 1000           # the claims are decided over the last WINDOW steps
# The seed of each recipe-search run (the recipe-search log of notebook 00); runs not listed used seed 0.
PROBE_SEEDS = {"M": 1, "N": 2, "O": 3}
PROBES_PATH = PACKAGE_ROOT / "data" / "suite_recipe_probes.parquet"


def oml_chance(n_prompts: int) -> float:
    """Accuracy above chance among 12 months: ``1/12 + 2 sqrt(1/12 * 11/12 / n)`` (two standard errors)."""
    return 1 / 12 + 2 * np.sqrt(1 / 12 * 11 / 12 / n_prompts)


def capability_wide(capabilities: pd.DataFrame, by: tuple[str, ...] = ("size",)) -> pd.DataFrame:
    """One row per checkpoint (``by`` columns and ``step``), one column per metric, plus
    ``ioi_margin = ioi_name_loss - ioi_loss`` (nats by which IOI beats a random name)."""
    wide = capabilities.pivot_table(index=[*by, "step"], columns="metric", values="value", sort=False).reset_index()
    wide.columns.name = None
    wide["ioi_margin"] = wide.ioi_name_loss - wide.ioi_loss
    return wide


def ioi_passes(wide: pd.DataFrame) -> pd.Series:
    """Per checkpoint: IOI margin >= 0.5 nats and [A] above [B] on >= 80% of prompts."""
    return (wide.ioi_margin >= IOI_MARGIN) & (wide.ioi_rank_accuracy >= IOI_RANK)


def last_window(curve: pd.DataFrame, steps: int = WINDOW) -> pd.DataFrame:
    """The checkpoints of one size (or run) within the last ``steps`` steps: ``step >= last - steps``."""
    return curve[curve.step >= curve.step.max() - steps].sort_values("step")


def _value_curve(g: pd.DataFrame, values: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"step": g.step.values, "value": np.asarray(values, dtype=float)})


def emergence_table(wide: pd.DataFrame, chance: float, wall: dict | None = None) -> pd.DataFrame:
    """Per size: the step each capability emerges (held to the end) and is first reached, the last
    checkpoint's metrics, the range over the last :data:`WINDOW` steps, and whether each threshold
    holds at the last checkpoint (``passes_*``) and at every checkpoint of the window (``holds_*``)."""
    rows = []
    for size, g in wide.groupby("size", sort=False):
        g = g.sort_values("step")
        final, win = g.iloc[-1], last_window(g)
        ioi_ok = _value_curve(g, ioi_passes(g))
        gt, oml = _value_curve(g, g.gt_prob_diff), _value_curve(g, g.oml_accuracy)
        rows.append(dict(
            size=size,
            ioi_emerges=emergence_step(ioi_ok, 0.5), ioi_first_reached=first_step_beyond(ioi_ok, 0.5),
            gt_emerges=emergence_step(gt, GT_PROB_DIFF), gt_first_above=first_step_beyond(gt, GT_PROB_DIFF),
            oml_above_chance_from=emergence_step(oml, chance), oml_above_half_from=emergence_step(oml, 0.5),
            final_step=int(final.step), final_ioi_loss=final.ioi_loss, final_ioi_name_loss=final.ioi_name_loss,
            final_ioi_copy_loss=final.ioi_copy_loss, final_ioi_margin=final.ioi_margin,
            final_ioi_rank_accuracy=final.ioi_rank_accuracy, final_gt_prob_diff=final.gt_prob_diff,
            final_oml_accuracy=final.oml_accuracy,
            window_checkpoints=len(win),
            window_ioi_rank_accuracy_min=win.ioi_rank_accuracy.min(),
            window_ioi_rank_accuracy_max=win.ioi_rank_accuracy.max(),
            window_ioi_margin_min=win.ioi_margin.min(),
            window_gt_prob_diff_min=win.gt_prob_diff.min(), window_gt_prob_diff_max=win.gt_prob_diff.max(),
            window_oml_accuracy_min=win.oml_accuracy.min(),
            window_ioi_pass_share=float(ioi_passes(win).mean()),
            window_gt_pass_share=float((win.gt_prob_diff > GT_PROB_DIFF).mean()),
            window_oml_pass_share=float((win.oml_accuracy > chance).mean()),
            passes_ioi=bool(ioi_passes(g.iloc[[-1]]).iloc[0]), passes_gt=bool(final.gt_prob_diff > GT_PROB_DIFF),
            passes_oml=bool(final.oml_accuracy > chance),
            train_wall_s=(wall or {}).get(size)))
    steps = ["ioi_emerges", "ioi_first_reached", "gt_emerges", "gt_first_above", "oml_above_chance_from",
             "oml_above_half_from"]
    return pd.DataFrame(rows).astype({c: "Int64" for c in steps})


PROBE_COLUMNS = ["run", "corpus", "size", "steps", "lr", "seed", "schedule", "batch_size", "step", "metric", "value"]


def load_recipe_probes(path=PROBES_PATH) -> pd.DataFrame:
    """The committed recipe-search probes (runs trained outside the notebook, :mod:`gradtools.suite_search`),
    with :func:`recipe_columns`; empty if the file is absent."""
    try:
        return recipe_columns(pd.read_parquet(path))
    except FileNotFoundError:
        return pd.DataFrame(columns=PROBE_COLUMNS)


def recipe_columns(probes: pd.DataFrame) -> pd.DataFrame:
    """Runs recorded before seeds, schedules and batch sizes were columns get them from the search log
    (:data:`PROBE_SEEDS`), the cosine schedule and batch 16 they all used."""
    probes = probes.copy()
    if "seed" not in probes:
        probes["seed"] = probes.run.map(lambda r: PROBE_SEEDS.get(r, 0))
    if "schedule" not in probes:
        probes["schedule"] = "cosine"
    if "batch_size" not in probes:
        probes["batch_size"] = 16
    return probes.astype({"seed": int, "batch_size": int})


def run_seeds(probes: pd.DataFrame) -> dict[str, int]:
    """Each probed run's seed (:func:`recipe_columns`)."""
    return {r: int(s) for r, s in recipe_columns(probes).groupby("run", sort=False).seed.first().items()}


def probe_runs(probes: pd.DataFrame, *, size: str, lr: float, steps: int, corpus: int, schedule: str = "cosine",
               batch_size: int = 16) -> pd.DataFrame:
    """The probed runs of one recipe (size, peak lr, steps, corpus version, schedule, batch size; runs
    as :func:`load_recipe_probes` gives them): columns run, seed."""
    if probes.empty:
        return pd.DataFrame(columns=["run", "seed"])
    probes = recipe_columns(probes)
    match = probes[(probes["size"] == size) & np.isclose(probes.lr, lr) & (probes.steps == steps)
                   & (probes.corpus == corpus) & (probes.schedule == schedule) & (probes.batch_size == batch_size)]
    runs, seeds = list(dict.fromkeys(match.run)), run_seeds(probes)
    return pd.DataFrame({"run": runs, "seed": [seeds[r] for r in runs]})


def seed_table(wide: pd.DataFrame, size: str, seed: int, probes: pd.DataFrame, *, lr: float, steps: int,
               corpus: int, chance: float, schedule: str = "cosine", batch_size: int = 16) -> pd.DataFrame:
    """Per seed of the recipe: this suite's ``size`` (``seed``, its own checkpoints, source ``suite``)
    and every probed run of the same recipe with another seed (source ``probe <run>``).

    Columns: seed, source, checkpoints (in the last :data:`WINDOW` steps), ioi_rank_min/max,
    ioi_margin_min, gt_min/max, oml_min, ioi_holds / gt_holds / oml_holds (the threshold holds at every
    checkpoint of the window), ioi_final_passes (at the last checkpoint alone)."""
    parts = [("suite", seed, wide[wide["size"] == size])]
    runs = probe_runs(probes, size=size, lr=lr, steps=steps, corpus=corpus, schedule=schedule, batch_size=batch_size)
    if len(runs):
        pw = capability_wide(probes[probes.run.isin(runs.run) & (probes["size"] == size)], by=("run",))
        parts += [(f"probe {r.run}", r.seed, pw[pw.run == r.run]) for r in runs.itertuples() if r.seed != seed]
    rows = []
    for source, s, g in parts:
        if g.empty:
            continue
        win = last_window(g)
        rows.append(dict(seed=int(s), source=source, checkpoints=len(win),
                         ioi_rank_min=win.ioi_rank_accuracy.min(), ioi_rank_max=win.ioi_rank_accuracy.max(),
                         ioi_margin_min=win.ioi_margin.min(), gt_min=win.gt_prob_diff.min(),
                         gt_max=win.gt_prob_diff.max(), oml_min=win.oml_accuracy.min(),
                         ioi_holds=bool(ioi_passes(win).all()), gt_holds=bool((win.gt_prob_diff > GT_PROB_DIFF).all()),
                         oml_holds=bool((win.oml_accuracy > chance).all()),
                         ioi_final_passes=bool(ioi_passes(win.iloc[[-1]]).iloc[0])))
    return pd.DataFrame(rows).sort_values("seed", kind="stable").reset_index(drop=True)


def _width(size: str) -> int | None:
    m = re.match(r"d(\d+)-L\d+", str(size))
    return int(m.group(1)) if m else None


def wider_runs(probes: pd.DataFrame, largest: str, *, steps: int, corpus: int) -> pd.DataFrame:
    """Probed runs on the same corpus and budget with wider models than ``largest``: per (run, size),
    whether IOI holds over the last :data:`WINDOW` steps (``ioi_holds``) and the rank accuracy range."""
    width = _width(largest)
    if probes.empty or width is None:
        return pd.DataFrame(columns=["run", "size", "lr", "ioi_holds", "ioi_rank_min", "ioi_rank_max"])
    sel = probes[(probes.steps == steps) & (probes.corpus == corpus)
                 & probes["size"].map(lambda s: (_width(s) or 0) > width)]
    rows = []
    if len(sel):
        for (run, size, lr), g in capability_wide(sel, by=("run", "size", "lr")).groupby(["run", "size", "lr"],
                                                                                          sort=False):
            win = last_window(g)
            rows.append(dict(run=run, size=size, lr=lr, ioi_holds=bool(ioi_passes(win).all()),
                             ioi_rank_min=win.ioi_rank_accuracy.min(), ioi_rank_max=win.ioi_rank_accuracy.max()))
    return pd.DataFrame(rows, columns=["run", "size", "lr", "ioi_holds", "ioi_rank_min", "ioi_rank_max"])


def probe_summary(probes: pd.DataFrame, chance: float) -> pd.DataFrame:
    """Per probed run and size of the recipe search: its recipe, the last checkpoint's metrics, and whether
    each threshold holds at every probed checkpoint of the last :data:`WINDOW` steps."""
    if probes.empty:
        return pd.DataFrame()
    probes = recipe_columns(probes)
    by = ("run", "corpus", "size", "lr", "steps", "schedule", "batch_size")
    rows, seeds = [], run_seeds(probes)
    for key, g in capability_wide(probes, by=by).groupby(list(by), sort=False):
        win, last = last_window(g), g.sort_values("step").iloc[-1]
        rows.append(dict(zip(by, key), seed=seeds[key[0]], last_step=int(last.step),
                         ioi_loss=last.ioi_loss, ioi_name_loss=last.ioi_name_loss, ioi_copy_loss=last.ioi_copy_loss,
                         ioi_rank_accuracy=last.ioi_rank_accuracy, gt_prob_diff=last.gt_prob_diff,
                         oml_accuracy=last.oml_accuracy, ioi_holds=bool(ioi_passes(win).all()),
                         gt_holds=bool((win.gt_prob_diff > GT_PROB_DIFF).all()),
                         oml_holds=bool((win.oml_accuracy > chance).all())))
    return pd.DataFrame(rows)


def _seed_list(seeds: pd.DataFrame, lo: str = "ioi_rank_min", hi: str = "ioi_rank_max", fmt: str = ".0%") -> str:
    return ", ".join(f"seed {r.seed} {_range(getattr(r, lo), getattr(r, hi), fmt)}" for r in seeds.itertuples())


def _seeds_why(seeds: pd.DataFrame) -> str:
    """Where the seeds come from: the suite's own run, and the recorded recipe-search probe runs."""
    others = sorted(int(s) for s in seeds.seed[seeds.source != "suite"])
    if not others:
        return f"{ONE_SEED}: no recorded probe run of this recipe with another seed"
    return (f"seed{'s' if len(others) > 1 else ''} {', '.join(map(str, others))} {'come' if len(others) > 1 else 'comes'} from the recorded recipe-search "
            "probe runs (data/suite_recipe_probes.parquet; " + ", ".join(f"seed {r.seed}: {r.checkpoints}"
            for r in seeds[seeds.source != "suite"].itertuples()) + " checkpoints in the last 1000 steps), not retrained by the notebook")


def _across_seeds(claim: str, paper: str, measured: str, n_ok: int, seeds: pd.DataFrame, criterion: str,
                  partly_note: str = "") -> dict:
    """A row decided over the seeds: :func:`fidelity.verdict_from_counts`; ``why`` gives the criterion
    (unless reproduced) and where the seeds come from."""
    verdict = fidelity.verdict_from_counts(n_ok, len(seeds))
    notes = [] if verdict == "reproduced" else [criterion] + ([partly_note] if verdict == "partly" and partly_note else [])
    why = "".join(f"{note}; " for note in notes) + _seeds_why(seeds)
    return fidelity.claim(STUDY, claim, paper, measured, verdict, why)


def claims(emergence: pd.DataFrame, seeds: pd.DataFrame, wider: pd.DataFrame | None = None) -> list[dict]:
    """The fidelity rows of the suite, for its largest size (the last row of ``emergence``).

    * IOI, GT, OML: per seed (``seeds``, :func:`seed_table`), the threshold holds at every checkpoint of
      the last 1000 steps; all seeds -> reproduced, some -> partly, none -> not reproduced
      (:func:`gradtools.fidelity.verdict_from_counts`). The measured text adds, for GT and OML, at how many
      of the largest size's own checkpoints in the window the threshold holds.
    * Every size: IOI holds at every checkpoint of each size's last 1000 steps; all sizes -> reproduced,
      some -> partly, none -> not reproduced.
    * Wider models: a probed wider model on the same corpus and budget holds IOI over its last 1000
      steps -> reproduced; none does -> not reproduced; none probed -> not measured.
    """
    big = emergence.iloc[-1]
    size, n_win = big["size"], int(big.window_checkpoints)
    win = f"steps {max(0, int(big.final_step) - WINDOW)}-{int(big.final_step)}"
    rows = []

    n_ok = int(seeds.ioi_holds.sum())
    n_final = int(seeds.ioi_final_passes.sum())
    rows.append(_across_seeds(
        "the suite's largest size learns IOI (held over the last 1000 steps, across seeds)",
        "IOI emerges in every model of the paper's suite (OLMo, 14M-472M); issue 6 asks IOI-name minus IOI "
        ">= 0.5 nats and [A] above [B] on >= 80%",
        f"{size}: IOI holds over the last 1000 steps in {n_ok} of {len(seeds)} seeds "
        f"([A] above [B], min-max: {_seed_list(seeds)}); at the last checkpoint alone {n_final} of {len(seeds)}",
        n_ok, seeds, f"criterion: both IOI thresholds at every checkpoint of the last 1000 steps, per seed; "
                     f"{len(seeds) - n_ok} of {len(seeds)} seeds fall short"))

    gt_own = round(float(big.window_gt_pass_share) * n_win)
    gt_ok = int(seeds.gt_holds.sum())
    rows.append(_across_seeds(
        "the suite's largest size learns GT (probability difference > 0.5 over the last 1000 steps, across seeds)",
        "the paper's models learn GT in part (its probability and loss improve); issue 6 asks a probability "
        "difference above 0.5",
        f"{size}: above 0.5 at every checkpoint of the last 1000 steps in {gt_ok} of {len(seeds)} seeds "
        f"(min-max: {_seed_list(seeds, 'gt_min', 'gt_max', '.2f')}); the suite's own run: above 0.5 at {gt_own} of "
        f"{n_win} checkpoints over {win}, first above at step {_step(big.gt_first_above)}",
        gt_ok, seeds, "criterion: above 0.5 at every checkpoint of the last 1000 steps, per seed",
        partly_note="it sits near the threshold"))

    oml_own = round(float(big.window_oml_pass_share) * n_win)
    oml_ok = int(seeds.oml_holds.sum())
    rows.append(_across_seeds(
        "the suite's largest size learns OML (accuracy above chance over the last 1000 steps, across seeds)",
        "the paper's models improve on OML but do not conclusively learn it; issue 6 asks accuracy above chance "
        "(1/12)",
        f"{size}: above chance at every checkpoint of the last 1000 steps in {oml_ok} of {len(seeds)} seeds "
        f"(lowest accuracy: {', '.join(f'seed {r.seed} {r.oml_min:.0%}' for r in seeds.itertuples())}); the "
        f"suite's own run: above chance at {oml_own} of {n_win} checkpoints over {win}, above 50% from step "
        f"{_step(big.oml_above_half_from)}",
        oml_ok, seeds, "criterion: above 1/12 by two standard errors at every checkpoint of the last 1000 steps, "
                       "per seed"))

    held = [bool(r.window_ioi_pass_share == 1) for r in emergence.itertuples()]
    rows.append(fidelity.claim(
        STUDY, "every size of the suite learns IOI (held over the last 1000 steps)",
        "IOI emerges in every model of the paper's suite (six sizes, 14M-472M); issue 17 asks three or more "
        "sizes here",
        "; ".join(f"{r.size}: [A] above [B] {_range(r.window_ioi_rank_accuracy_min, r.window_ioi_rank_accuracy_max)}, "
                  f"IOI-name minus IOI at least {r.window_ioi_margin_min:.1f} nats over the last 1000 steps"
                  for r in emergence.itertuples()),
        fidelity.verdict_from_counts(sum(held), len(held)),
        "" if all(held) else
        f"criterion: both IOI thresholds at every checkpoint of the last 1000 steps, per size; {len(held) - sum(held)} "
        f"of {len(held)} sizes fall short (the per-template table says on which prompts); one seed per size "
        "(the largest size's other seeds: the first row)"))

    wider = wider if wider is not None else pd.DataFrame(columns=["ioi_holds"])
    n_wide, n_wide_ok = len(wider), int(wider.ioi_holds.sum()) if len(wider) else 0
    verdict = "not measured" if n_wide == 0 else fidelity.verdict_from(n_wide_ok > 0)  # any wider run suffices
    rows.append(fidelity.claim(
        STUDY, "wider models than the largest suite size learn IOI in the same budget",
        "IOI emerges at every size of the paper's suite, larger models included",
        "no wider model probed on this corpus and budget" if n_wide == 0 else
        f"IOI holds over the last 1000 steps in {n_wide_ok} of {n_wide} probed wider runs ("
        + ", ".join(f"{r.size} lr {r.lr:g}: {_range(r.ioi_rank_min, r.ioi_rank_max)}" for r in wider.itertuples())
        + ")",
        verdict,
        "" if verdict == "reproduced" else
        ("no recipe-search run with a wider model on this corpus and step budget" if n_wide == 0 else
         ("every wider run ranks [B] above [A] on most prompts over its last 1000 steps (the copying stage); "
          if (wider.ioi_rank_max < 0.5).all() else "no wider run holds both IOI thresholds; ")
         + "one seed per learning rate, so the suite has no larger size")))
    return rows
