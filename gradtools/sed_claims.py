"""Studies 4 and 5 against the paper: the fidelity-table rows, decided from the notebooks' tables.

Paper: *Gradient-Direction Sensitivity Reveals Linear-Centroid Coupling Hidden by
Optimizer Trajectories* (``papers/gradient-sed-linear-centroids.txt``).
:func:`coupling_claims` reads the tables of notebook 04 (tables 1-3, the multitask
table, the R curves), :func:`intervention_claims` the grokking steps of notebook 05
(tables 4-5, weight decay 0). Each claim is one small function returning one row
(:func:`gradtools.fidelity.claim`): the ``measured`` text is formatted from the tables,
the ``paper`` text is the paper's, the verdict follows from the criterion in the
function's docstring. A claim checked on several ops or seeds is ``reproduced`` when it
holds on every one the notebook ran, ``partly`` when on some, else ``not reproduced``.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import fidelity
from .claims_format import ONE_SEED

STUDY4, STUDY5 = fidelity.STUDIES[4], fidelity.STUDIES[5]

# table 1 of the paper (seed 42): peak R of update SED and of gradient SED per op
PAPER_TABLE1 = {"update SED": {"add": 8.97, "sub": 3.52, "mul": 3.47, "sq": 3.64},
                "gradient SED": {"add": 202.4, "sub": 259.3, "mul": 326.7, "sq": 114.5}}
# table 1 of the paper: gradient-SED peak R per op over seeds 42, 137, 2024; update SED's final R (seed 42)
PAPER_GRADIENT_PEAK_BY_SEED = {"add": (202.4, 228.2, 229.2), "sub": (259.3, 125.5, 188.6),
                               "mul": (326.7, 101.0, 217.1), "sq": (114.5, 108.8, 138.8)}
PAPER_UPDATE_FINAL = {"add": 4.26, "sub": 2.45, "mul": 1.57, "sq": 1.13}
PAPER_SEEDS = (42, 137, 2024)
# tables 4 and 5 of the paper: mean grokking step over seeds 42, 137, 2024, per condition
PAPER_GROKKING_STEPS = {("update", "add"): dict(A=3342, B=2758, C=1683, D=3417, E=1467),
                        ("update", "mul"): dict(A=3208, B=2942, C=1692, D=3208, E=1567),
                        ("gradient", "add"): dict(A=3358, B=3300, C=1525, D=3358, E=1425)}
# ... and per seed (42, 137, 2024)
PAPER_GROKKING_STEPS_BY_SEED = {
    ("update", "add"): dict(A=(3550, 3450, 3025), B=(2925, 2625, 2725), C=(1600, 1875, 1575),
                            D=(3600, 3525, 3125), E=(1500, 1450, 1450)),
    ("update", "mul"): dict(A=(3100, 3500, 3025), B=(2350, 3200, 3275), C=(1500, 1725, 1850),
                            D=(3075, 3500, 3050), E=(1275, 1625, 1800)),
    ("gradient", "add"): dict(A=(3550, 3525, 3000), B=(3525, 3425, 2950), C=(1425, 1675, 1475),
                              D=(3575, 3450, 3050), E=(1425, 1475, 1375)),
}



def paper_peak_R(estimator: str, op: str, seed: int) -> float:
    """The paper's table-1 peak R of ``estimator`` for (op, seed); NaN where it reports none (update SED: seed 42 only)."""
    if estimator == "gradient SED" and op in PAPER_GRADIENT_PEAK_BY_SEED and seed in PAPER_SEEDS:
        return PAPER_GRADIENT_PEAK_BY_SEED[op][PAPER_SEEDS.index(seed)]
    if seed == 42:
        return PAPER_TABLE1.get(estimator, {}).get(op, float("nan"))
    return float("nan")


ORDER_OF_MAGNITUDE = 10.0  # "an order of magnitude or more"
FAST = 1.5                 # a speedup of at least this reads as the paper's "~2x"
SAME = 0.15                # a speedup within 1 +- this reads as "no effect"


def _decide(holds: list[bool], what: str, why: str = "", labels: list[str] | None = None) -> tuple[str, str]:
    """(verdict, why) of a claim checked on each of ``holds`` (:func:`gradtools.fidelity.verdict_from_counts`); the
    why is empty when reproduced, says nothing was measured when ``holds`` is empty, else ``why`` or the count
    (naming the cases that fail when ``labels`` names each case)."""
    verdict = fidelity.verdict_from_counts(sum(holds), len(holds))
    if verdict == "reproduced":
        return verdict, ""
    return verdict, (f"no {what} to check" if not len(holds) else why or _count(holds, what, labels))


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _label(op, seed=None) -> str:
    return f"{op}/{seed}" if seed is not None else str(op)


def _count(holds: list[bool], what: str, labels: list[str] | None = None) -> str:
    text = f"holds on {sum(holds)} of {len(holds)} {what}"
    failing = [lab for lab, h in zip(labels or [], holds) if not h]
    return text + (f" (not on {', '.join(failing)})" if failing and sum(holds) else "")


def with_note(rows: list[dict], note: str) -> list[dict]:
    """Append ``note`` (e.g. ``"one seed"``: the verdict rests on one training run) to each row's ``why``."""
    if note:
        for r in rows:
            r["why"] = f"{r['why']}; {note}" if r["why"] else note
    return rows


def _seed_note(seeds) -> str:
    seeds = sorted(set(seeds))
    return f"{ONE_SEED} per case, seed {seeds[0]}" if len(seeds) == 1 else ""


# ---------------------------------------------------------------- study 4: coupling (notebook 04)

def grokking_claim(grok: pd.DataFrame) -> dict:
    """Every single-task model (op, seed) groks (test accuracy >= 0.95 within the steps trained).

    ``grok``: op, seed, grokking_step (NaN/None if it never grokked).
    """
    holds = [not _missing(g) for g in grok.grokking_step]
    measured = ", ".join(f"{_label(o, s)}: {'none' if _missing(g) else int(g)}"
                         for o, s, g in grok[["op", "seed", "grokking_step"]].itertuples(index=False))
    return fidelity.claim(STUDY4, "single-task models grok", "every op groks, at 3025-3550 steps (add, seed 42: 3550)",
                          f"grokking step {measured}",
                          *_decide(holds, "runs", f"{_count(holds, 'runs')}: a run that did not grok stopped at max_steps"))


def _estimator(table1: pd.DataFrame, est: str) -> pd.DataFrame:
    return table1[table1.estimator == est].set_index(["op", "seed"]).sort_index()


def update_sed_transient_claim(table1: pd.DataFrame) -> dict:
    """Update SED has a transient peak before grokking that decays after it.

    Holds for a run when the update-SED peak step is before the grokking step and the
    final R is below the peak. ``table1``: estimator, op, seed, peak_R, peak_step, final_R, grokking_step.
    """
    u = _estimator(table1, "update SED")
    holds = [bool(not _missing(r.grokking_step) and r.peak_step < r.grokking_step and r.final_R < r.peak_R)
             for r in u.itertuples()]
    measured = ", ".join(f"{_label(*i)}: peak {r.peak_R:.1f} at step {r.peak_step} (grokking "
                         f"{'none' if _missing(r.grokking_step) else int(r.grokking_step)}), final {r.final_R:.2f}"
                         f" at step {r.final_step}" for i, r in zip(u.index, u.itertuples()))
    return fidelity.claim(STUDY4, "update SED: transient peak before grokking, decaying after it",
                          "peak R 8.97 (add; 3.5-3.6 other ops) in the pre-grokking band, final 4.26 (add; 1.1-2.5 "
                          "other ops) at the run's end", measured, *_decide(holds, "runs", labels=[_label(*i) for i in u.index]))


def gradient_over_update_claim(table1: pd.DataFrame) -> dict:
    """Gradient SED's peak R is an order of magnitude (>= 10x) above update SED's, on every run."""
    g, u = _estimator(table1, "gradient SED"), _estimator(table1, "update SED")
    ratio = g.peak_R / u.peak_R
    holds = [bool(r >= ORDER_OF_MAGNITUDE) for r in ratio]
    labels = [_label(*i) for i in ratio.index]
    measured = ", ".join(f"{_label(*i)}: {g.peak_R[i]:.0f} vs {u.peak_R[i]:.1f} ({ratio[i]:.0f}x)" for i in ratio.index)
    return fidelity.claim(STUDY4, "gradient SED peak R >> update SED (>= 10x)", "add 202 vs 8.97 (22x); 110-330 vs 3.5-9",
                          measured, *_decide(holds, "runs", f"{_count(holds, 'runs', labels)} (criterion: ratio >= 10)"))


def gradient_sed_range_claim(table1: pd.DataFrame, low: float = 100.0, high: float = 330.0) -> dict:
    """Gradient SED's peak R lies in the paper's range (100-330 over ops and seeds), on every run."""
    g = _estimator(table1, "gradient SED")
    holds = [bool(low <= r <= high) for r in g.peak_R]
    measured = ", ".join(f"{_label(*i)}: {r:.0f}" for i, r in g.peak_R.items())
    above = sum(r > high for r in g.peak_R)
    why = (f"{_count(holds, 'runs', [_label(*i) for i in g.index])}: {above} above the range, "
           f"{len(holds) - sum(holds) - above} below it")
    return fidelity.claim(STUDY4, f"gradient SED peak R in the paper's range ({low:.0f}-{high:.0f})",
                          "101-327 over 4 ops x 3 seeds (add, seed 42: 202.4)", f"peak R {measured}",
                          *_decide(holds, "runs", why))


def gradient_sed_sustained_claim(table1: pd.DataFrame) -> dict:
    """Gradient SED coupling is sustained through and beyond grokking: final R >= half the peak, on every run."""
    g = _estimator(table1, "gradient SED")
    holds = [bool(r.final_R >= 0.5 * r.peak_R) for r in g.itertuples()]
    measured = ", ".join(f"{_label(*i)}: final {r.final_R:.0f} (step {r.final_step}) vs peak {r.peak_R:.0f}"
                         for i, r in zip(g.index, g.itertuples()))
    return fidelity.claim(STUDY4, "gradient SED sustained through and beyond grokking (final R >= peak / 2)",
                          "peaks 110-330, sustained through and beyond grokking", measured,
                          *_decide(holds, "runs", labels=[_label(*i) for i in g.index]))


def _spreads(table1: pd.DataFrame) -> pd.DataFrame:
    """Per estimator and seed, the op-spread max / min over ops of peak R; ``seed`` "mean" for the seed-mean peaks."""
    per_seed = table1.groupby(["estimator", "seed"]).peak_R.agg(lambda r: r.max() / r.min())
    mean = table1.groupby(["estimator", "op"]).peak_R.mean().groupby("estimator").agg(lambda r: r.max() / r.min())
    return pd.concat([per_seed.unstack("estimator"), mean.to_frame().T.rename(index={"peak_R": "mean"})])


def op_spread_claim(table1: pd.DataFrame) -> dict:
    """Gradient SED's op-spread (max / min over ops of peak R) is smaller than update SED's.

    Decided on each seed (reproduced when it holds on every seed, partly on some); the
    measured text also gives the spreads of the seed-mean peaks, the paper's statistic.
    Needs at least two ops; with one it is ``not measured``.
    """
    paper = ("spread 2.58x (update, seed 42) vs 1.82x (gradient, mean over 3 seeds; per seed 2.85x, 2.26x, 1.65x); "
             "'suggestive but not statistically tight'")
    claim = "gradient SED op-spread smaller than update SED's"
    ops = sorted(table1.op.unique())
    if len(ops) < 2:
        return fidelity.claim(STUDY4, claim, paper, f"one op ({ops[0] if ops else 'none'})", "not measured",
                              "needs two or more ops; this profile ran one")
    spread = _spreads(table1)
    seeds = [s for s in spread.index if s != "mean" and spread.loc[s].notna().all()]  # seeds with both estimators
    holds = [bool(spread.loc[s, "gradient SED"] < spread.loc[s, "update SED"]) for s in seeds]
    measured = "; ".join(f"{'seed-mean peaks' if s == 'mean' else f'seed {s}'}: {spread.loc[s, 'update SED']:.2f}x "
                         f"(update) vs {spread.loc[s, 'gradient SED']:.2f}x (gradient)" for s in [*seeds, "mean"])
    return fidelity.claim(STUDY4, claim, paper, f"ops {', '.join(ops)}; {measured}",
                          *_decide(holds, "seeds", labels=[f"seed {s}" for s in seeds]))


def mul_strongest_claim(table1: pd.DataFrame) -> dict:
    """Under gradient SED multiplication has the highest peak R of the ops (under update SED it was the weakest).

    Decided on each seed: mul is the gradient-SED argmax over the ops that ran. Needs mul and
    one other op; else ``not measured``. The measured text gives mul's rank under both estimators.
    """
    claim = "gradient SED: mul the strongest op (update SED: the weakest)"
    paper = ("seed 42: mul 326.7, the strongest (sub 259.3, add 202.4, sq 114.5), and the weakest under update SED "
             "(3.47); seeds 137 and 2024: add the strongest (mul 101.0, 217.1)")
    ops = sorted(table1.op.unique())
    if "mul" not in ops or len(ops) < 2:
        return fidelity.claim(STUDY4, claim, paper, f"ops {', '.join(ops) or 'none'}", "not measured",
                              "needs mul and another op; this profile ran " + (", ".join(ops) or "none"))
    holds, parts = [], []
    for seed, t in table1.groupby("seed"):
        rank = {e: t[t.estimator == e].sort_values("peak_R", ascending=False).op.tolist()
                for e in ("gradient SED", "update SED")}
        holds.append(bool(rank["gradient SED"]) and rank["gradient SED"][0] == "mul")
        places = [f"{r.index('mul') + 1} of {len(r)} ({e.split()[0]}{'; strongest ' + r[0] if e == 'gradient SED' else ''})"
                  for e, r in rank.items() if "mul" in r]
        parts.append(f"seed {seed}: mul " + (", ".join(places) or "not run"))
    return fidelity.claim(STUDY4, claim, paper, "; ".join(parts),
                          *_decide(holds, "seeds", labels=[f"seed {s}" for s in sorted(table1.seed.unique())]))


def _windows(table2: pd.DataFrame) -> pd.Series:
    w = table2[table2.setting == "window W"]
    return pd.Series(w.peak_R.to_numpy(), index=w.value.astype(int)).sort_index()


def window_claim(table2: pd.DataFrame, where: str = "") -> dict:
    """Peak R of gradient SED falls monotonically as the window W grows, with W = 1 the ceiling.

    Reproduced if peak R never rises with W; partly if W = 1 is the largest but the fall is
    not monotonic; else not reproduced. ``table2``: setting, value, peak_R (setting "window W").
    """
    w = _windows(table2)
    claim, paper = "R falls monotonically with the window W (W = 1 the ceiling)", "W=1 the ceiling, W=20 about 1/3 of it"
    if len(w) < 2:
        return fidelity.claim(STUDY4, claim, paper, "fewer than two windows", "not measured", "fewer than two windows ran")
    monotone = bool(np.all(np.diff(w.to_numpy()) <= 0))
    ceiling = bool(w.iloc[0] >= w.max())
    measured = (where + ": " if where else "") + ", ".join(f"W={k}: {v:.0f}" for k, v in w.items())
    if 1 in w.index and 20 in w.index:
        measured += f" (W=20 / W=1 = {w[20] / w[1]:.2f})"
    why = "" if monotone else ("W = 1 is the ceiling but R does not fall monotonically" if ceiling
                               else "R does not fall with W: W = 1 is not the ceiling")
    return fidelity.claim(STUDY4, claim, paper, measured, fidelity.verdict_from(monotone, partly=ceiling), why)


def window_floor_claim(table2: pd.DataFrame, where: str = "") -> dict:
    """Gradient SED stays an order of magnitude over random (peak R >= 10) at every window W."""
    w = _windows(table2)
    holds = [bool(v >= ORDER_OF_MAGNITUDE) for v in w]
    return fidelity.claim(STUDY4, "gradient SED R >= 10 (10x random) at every window W",
                          "order-of-magnitude coupling regardless of W",
                          (where + ": " if where else "") + f"smallest peak R over W = {w.min():.0f}" if len(w) else "no windows",
                          *_decide(holds, "windows"))


def per_example_claims(table3: pd.DataFrame | None, where: str = "") -> list[dict]:
    """Table 3: the per-example gradient SVD directions are strongly coupled (R >= 10) and largely
    orthogonal to the mean gradient (its projection onto their span shorter than 0.5), at each phase.

    ``table3``: phase, step, estimator, R_max, mean_in_top3_span; None if not measured.
    """
    claims = [("per-example gradient SVD: top directions coupled (R >= 10) at one step",
               "the coupled subspace at one step is at least 4-dimensional: mean gradient + top-3 per-example"),
              ("per-example gradient SVD: top directions largely orthogonal to the mean gradient (projection < 0.5)",
               "top-3 per-example directions largely orthogonal to the mean gradient")]
    if table3 is None or not len(table3):
        return [fidelity.claim(STUDY4, c, p, "-", "not measured", "table 3 was not computed") for c, p in claims]
    prefix = where + ": " if where else ""
    per_ex = table3[table3.estimator.str.startswith("per-example SVD")]
    coupled = [bool(r >= ORDER_OF_MAGNITUDE) for r in per_ex.R_max]
    spans = table3.drop_duplicates("phase")
    orth = [bool(s < 0.5) for s in spans.mean_in_top3_span]
    return [
        fidelity.claim(STUDY4, claims[0][0], claims[0][1],
                       prefix + ", ".join(f"{r.phase} (step {r.step}): R {r.R_max:.0f}" for r in per_ex.itertuples()),
                       *_decide(coupled, "phases")),
        fidelity.claim(STUDY4, claims[1][0], claims[1][1],
                       prefix + "projection of the unit mean gradient onto the top-3 span: "
                       + ", ".join(f"{r.phase} {r.mean_in_top3_span:.2f}" for r in spans.itertuples()),
                       *_decide(orth, "phases")),
    ]


def rank90_claim(curves: pd.DataFrame, grok: pd.DataFrame) -> dict:
    """The centroids' rank-90 rises from initialisation through the plateau and collapses below its
    initial value after grokking: max before grokking > initial > final, on every run.

    ``curves``: op, seed, step, rank90 (one value per checkpoint); ``grok``: op, seed, grokking_step.
    Rank-90 is computed once per checkpoint, so its independence of the estimator holds by construction here.
    """
    g = grok.set_index(["op", "seed"]).grokking_step
    holds, parts = [], []
    for (op, seed), c in curves.drop_duplicates(["op", "seed", "step"]).groupby(["op", "seed"]):
        c = c.sort_values("step")
        gs = g.get((op, seed))
        init, final = int(c.rank90.iloc[0]), int(c.rank90.iloc[-1])
        if _missing(gs) or not (c.step < gs).any():
            holds.append(False)
            parts.append(f"{_label(op, seed)}: no grokking, {init} -> {final}")
            continue
        plateau = int(c.rank90[c.step < gs].max())
        holds.append(plateau > init > final)
        parts.append(f"{_label(op, seed)}: {init} / {plateau} / {final}")
    return fidelity.claim(STUDY4, "centroid rank-90 rises on the plateau and collapses after grokking",
                          "62 / 96 / 23 at init / mid / post-grokking",
                          "init / plateau max / final: " + ", ".join(parts),
                          *_decide(holds, "runs"))


def multitask_claims(mt_table: pd.DataFrame) -> list[dict]:
    """Section 4 on the multitask model, per op: it groks; aggregated update SED is below 1
    (reproduced if its peak, read where the window is full, is; partly if only its final value is); per-op gradient SED's peak
    beats update SED's; per-op gradient SED ends at R >= 20.

    ``mt_table``: estimator, op, peak_R, peak_step, final_R, grokking_step.
    """
    u = mt_table[mt_table.estimator == "aggregated update SED"].set_index("op")
    g = mt_table[mt_table.estimator == "per-op gradient SED"].set_index("op").reindex(u.index)
    grok = u.grokking_step
    grokked = [not _missing(x) for x in grok]
    below_peak = [bool(x < 1) for x in u.peak_R]
    below_final = [bool(x < 1) for x in u.final_R]
    beats = [bool(a > b) for a, b in zip(g.peak_R, u.peak_R)]
    high = [bool(x >= 20) for x in g.final_R]
    if not len(u):
        verdict, why = "not measured", "no multitask op to check"
    elif all(below_peak):
        verdict, why = "reproduced", ""
    elif all(below_final):
        verdict, why = "partly", "R < 1 at the end on every op, but not from the first full window on (its peak is above 1)"
    else:
        verdict, why = "not reproduced", f"final R < 1 {_count(below_final, 'ops')}"
    return [
        fidelity.claim(STUDY4, "multitask model groks on every op", "all four ops grok (final accuracies ~1)",
                       "grokking step " + ", ".join(f"{o}: {'none' if _missing(x) else int(x)}" for o, x in grok.items()),
                       *_decide(grokked, "ops", f"{_count(grokked, 'ops')}: the ops that did not grok reached no 0.95 "
                                                "test accuracy within the multitask run's steps")),
        fidelity.claim(STUDY4, "multitask: aggregated update SED R < 1 throughout", "R < 1 throughout training, all four ops",
                       "peak; final: " + ", ".join(f"{o}: {r.peak_R:.2f} (step {r.peak_step}); {r.final_R:.2f}"
                                                   for o, r in zip(u.index, u.itertuples())),
                       verdict, why),
        fidelity.claim(STUDY4, "multitask: per-op gradient SED beats aggregated update SED on every op",
                       "20-45 vs < 1 (two orders of magnitude)",
                       "peak R " + ", ".join(f"{o}: {a:.1f} vs {b:.2f}" for o, a, b in zip(u.index, g.peak_R, u.peak_R)),
                       *_decide(beats, "ops")),
        fidelity.claim(STUDY4, "multitask: per-op gradient SED ends at R >= 20 on every op", "rises to 20-45 by the end, sub the largest",
                       "final R " + ", ".join(f"{o}: {x:.0f}" for o, x in g.final_R.items()),
                       *_decide(high, "ops")),
    ]


def coupling_claims(grok: pd.DataFrame, table1: pd.DataFrame, table2: pd.DataFrame, table3: pd.DataFrame | None,
                    mt_table: pd.DataFrame, curves: pd.DataFrame, where: str = "") -> list[dict]:
    """Every claim notebook 04 checks, as fidelity rows (16).

    ``where`` (e.g. ``"add/42"``) names the single run that tables 2 and 3 come from.
    """
    one_run = f"{ONE_SEED}, one op"
    return [*with_note([grokking_claim(grok), update_sed_transient_claim(table1), gradient_over_update_claim(table1),
                        gradient_sed_range_claim(table1), gradient_sed_sustained_claim(table1)], _seed_note(table1.seed)),
            op_spread_claim(table1), mul_strongest_claim(table1),
            *with_note([window_claim(table2, where), window_floor_claim(table2, where),
                        *per_example_claims(table3, where)], one_run),
            *with_note([rank90_claim(curves, grok)], _seed_note(curves.seed)),
            *with_note(multitask_claims(mt_table), f"{ONE_SEED} of the multitask model")]


# ---------------------------------------------------------------- study 5: interventions (notebook 05)

def speedups(steps: pd.DataFrame) -> pd.DataFrame:
    """Per (flavour, op, seed, condition): grokking step and speedup t_A / t_X over the same seed's control.

    A run that never grokked counts as infinitely slow (speedup 0; inf if only the control failed;
    NaN if both did). ``steps``: op, seed, flavour, condition, grokking_step (rows of weight decay 0 are dropped).
    """
    main = steps[steps.flavour != "weight decay 0"]
    slow = lambda x: np.inf if _missing(x) else float(x)  # noqa: E731
    control = {(o, s, f): slow(g) for o, s, f, c, g in
               main[["op", "seed", "flavour", "condition", "grokking_step"]].itertuples(index=False) if c == "A"}
    out = []
    for o, s, f, c, g in main[["op", "seed", "flavour", "condition", "grokking_step"]].itertuples(index=False):
        a, x = control.get((o, s, f), np.nan), slow(g)
        with np.errstate(invalid="ignore", divide="ignore"):
            sp = np.nan if (np.isinf(a) and np.isinf(x)) or np.isnan(a) else float(np.float64(a) / x)
        out.append(dict(flavour=f, op=o, seed=s, condition=c, grokking_step=g, speedup=sp,
                        control_groks=bool(np.isfinite(a))))
    return pd.DataFrame(out)


def _paper_speedup(flavour: str, condition: str) -> str:
    parts = [f"{op} {t['A'] / t[condition]:.2f}x ({t[condition]} vs A {t['A']})"
             for (fl, op), t in PAPER_GROKKING_STEPS.items() if fl == flavour]
    return ", ".join(parts)


def _speedup_text(sp: pd.DataFrame) -> str:
    def one(r):
        if _missing(r.grokking_step):
            return "no grokking" + ("" if r.control_groks else ", nor the control")
        if not r.control_groks:
            return f"step {int(r.grokking_step)}, the control did not grok"
        return f"{r.speedup:.2f}x (step {int(r.grokking_step)})"
    return ", ".join(f"{_label(r.op, r.seed)}: {one(r)}" for r in sp.itertuples()) or "not run"


def condition_claim(sp: pd.DataFrame, flavour: str, condition: str) -> dict:
    """One condition's speedup over the control A, under one projection flavour, on every (op, seed).

    Criteria: C and E (keep only rank 3) reproduce the paper's ~2x when the speedup is
    >= 1.5; D (remove random rank 3) and B under gradient projection reproduce "no effect"
    when the run groks with a speedup within 1 +- 0.15; B under update projection reproduces
    "no harm, some speedup (1.2x on add)" when it groks with a speedup >= 1.05. A B or D run that
    groks but misses its speedup band counts as half (``partly``): removing the subspace did not prevent grokking.
    """
    s = sp[(sp.flavour == flavour) & (sp.condition == condition)].sort_values(["op", "seed"])
    groks = [not _missing(g) for g in s.grokking_step]
    labels = [_label(o, sd) for o, sd in zip(s.op, s.seed)]
    if condition in ("C", "E"):
        what = "keep only SED (C)" if condition == "C" else "keep only random rank 3 (E)"
        claim, band = f"{flavour} projection: {what} groks ~2x faster than A", [bool(x >= FAST) for x in s.speedup]
        why = f"criterion speedup >= {FAST}: {_count(band, 'runs', labels)}"
        return fidelity.claim(STUDY5, claim, _paper_speedup(flavour, condition), _speedup_text(s),
                              *_decide(band, "runs", why))
    if condition == "B" and flavour == "update":
        claim, band = "update projection: removing SED (B) does not prevent grokking, speeds it up", \
            [bool(x >= 1.05) for x in s.speedup]
        miss = "groks but no faster than A (speedup < 1.05)"
    else:
        what = "removing SED (B)" if condition == "B" else "removing random rank 3 (D)"
        claim, band = f"{flavour} projection: {what} neither prevents nor speeds grokking", \
            [bool(abs(x - 1) <= SAME) for x in s.speedup]
        miss = f"groks, but speedup outside 1 +- {SAME}"
    ok = [g and b for g, b in zip(groks, band)]
    if ok and all(ok):
        verdict, why = "reproduced", ""
    elif groks and all(groks):
        verdict, why = "partly", f"{miss} on {len(ok) - sum(ok)} of {len(ok)} runs ({', '.join(l for l, k in zip(labels, ok) if not k)})"
    else:
        verdict, why = _decide(ok, "runs", f"{len(groks) - sum(groks)} of {len(groks)} runs did not grok")
    return fidelity.claim(STUDY5, claim, _paper_speedup(flavour, condition), _speedup_text(s), verdict, why)


def _paper_seed_spread(flavour: str) -> str:
    parts = []
    for (fl, op), t in PAPER_GROKKING_STEPS_BY_SEED.items():
        if fl == flavour:
            parts.append(f"{op}: C {min(t['C'])}-{max(t['C'])}, E {min(t['E'])}-{max(t['E'])}")
    return "; ".join(parts)


def sed_vs_random_claim(sp: pd.DataFrame, flavour: str, alpha: float = 0.05) -> dict:
    """Keeping only SED (C) and keeping only a random rank 3 (E) grok at the same speed, within seed variation.

    Per op with both C and E on two or more seeds: Welch's t-test of the grokking steps of C
    against E does not reject equality at level ``alpha`` (the paper: "statistically
    indistinguishable"); reproduced when that holds on every such op. A run that did not grok
    fails its op. ``not measured`` when no op has both conditions on two seeds (the relative
    gap of one seed is reported).
    """
    from scipy.stats import ttest_ind

    claim = f"{flavour} projection: SED (C) vs random (E) within seed variation"
    paper = f"C and E statistically indistinguishable over seeds 42, 137, 2024 ({_paper_seed_spread(flavour)})"
    s = sp[(sp.flavour == flavour) & sp.condition.isin(["C", "E"])]
    holds, parts, short = [], [], []
    for op, o in s.groupby("op"):
        c = o[o.condition == "C"].grokking_step.astype(float)
        e = o[o.condition == "E"].grokking_step.astype(float)
        if not len(c) or not len(e):
            short.append(f"{op}: {'C' if not len(c) else 'E'} not run")
            continue
        gap = " vs ".join(f"{n} {'none' if x.isna().any() else f'{x.mean():.0f}'}" for n, x in (("C", c), ("E", e)))
        if c.isna().any() or e.isna().any():
            holds.append(False)
            parts.append(f"{op}: {gap} (a run did not grok)")
        elif min(len(c), len(e)) < 2:
            short.append(f"{op}: {gap} ({abs(c.mean() - e.mean()) / min(c.mean(), e.mean()):.0%} apart), one seed")
        else:
            p = float(ttest_ind(c, e, equal_var=False).pvalue) if (c.std() > 0 or e.std() > 0) else float(c.mean() == e.mean())
            holds.append(bool(p >= alpha))
            parts.append(f"{op}: mean {gap} over {len(c)} and {len(e)} seeds (sd {c.std():.0f}, {e.std():.0f}), "
                         f"Welch p = {p:.2f}")
    measured = "; ".join(parts + short) or "-"
    if not holds:
        one = any(x.endswith("one seed") for x in short)
        return fidelity.claim(STUDY5, claim, paper, measured, "not measured",
                              "one seed: seed variation cannot be measured" if one else
                              "C and E were not both run on two or more seeds")
    return fidelity.claim(STUDY5, claim, paper, measured,
                          *_decide(holds, "ops", f"{_count(holds, 'ops')} (criterion: Welch p >= {alpha})"
                                   + ("; " + ", ".join(short) if short else "")))


def weight_decay_0_claim(wd0: pd.DataFrame, paper_conditions=("A", "C", "E"), paper_steps: int = 8000) -> dict:
    """With weight decay 0 no run groks. Reproduced if none groks and A, C, E all ran for 8000 steps
    (the paper's test); partly if none groks on fewer conditions or a shorter horizon.

    ``wd0``: condition, grokking_step, steps_trained.
    """
    claim, paper = "no grokking without weight decay", "A, C, E (seed 42): none groks within 8000 steps"
    if not len(wd0):
        return fidelity.claim(STUDY5, claim, paper, "-", "not measured", "no weight-decay-0 run")
    grokked = [not _missing(g) for g in wd0.grokking_step]
    measured = ", ".join(f"{c}: {'groks at ' + str(int(g)) if not _missing(g) else 'none'} in {n} steps"
                         for c, g, n in wd0[["condition", "grokking_step", "steps_trained"]].itertuples(index=False))
    if any(grokked):
        return fidelity.claim(STUDY5, claim, paper, measured, "not reproduced", "a weight-decay-0 run grokked")
    full = set(paper_conditions) <= set(wd0.condition) and int(wd0.steps_trained.min()) >= paper_steps
    return fidelity.claim(STUDY5, claim, paper, measured, fidelity.verdict_from(full, partly=True),
                          "" if full else f"consistent, but only {', '.join(sorted(set(wd0.condition)))} ran, for "
                                          f"{int(wd0.steps_trained.min())} steps (paper: A, C, E for {paper_steps})")


def intervention_claims(steps: pd.DataFrame) -> list[dict]:
    """Every claim notebook 05 checks, as fidelity rows: per flavour ran, conditions B-E against A
    and SED vs random; then weight decay 0 (11 rows when both flavours ran).

    ``steps``: op, seed, flavour (``update``, ``gradient`` or ``weight decay 0``), condition,
    grokking_step, steps_trained; the control A listed under each flavour. A row whose runs
    all have one seed says so.
    """
    sp = speedups(steps)
    rows = []
    for flavour in [f for f in ("update", "gradient") if f in set(sp.flavour)]:
        for c in "CEBD":
            seeds = sp[(sp.flavour == flavour) & (sp.condition == c)].seed
            rows += with_note([condition_claim(sp, flavour, c)], _seed_note(seeds))
        rows.append(sed_vs_random_claim(sp, flavour))
    wd0 = steps[steps.flavour == "weight decay 0"]
    rows += with_note([weight_decay_0_claim(wd0)], _seed_note(wd0.seed))
    return rows


def projection_reading(shares: pd.DataFrame, steps: pd.DataFrame) -> list[str]:
    """One markdown line per (flavour, condition) of study 5's projected runs: what each keeps, and what it does to
    the attention weights and to grokking.

    ``shares``: :func:`gradtools.sed_study.projection_summary` rows; ``steps``: the grokking steps (as
    :func:`intervention_claims`). Per line, over the condition's runs: the mean share of the natural update kept,
    the attention weights' norm at the last step as a share of the first (their decay), and the mean speedup over
    the same seed's control.
    """
    sp = speedups(steps).set_index(["flavour", "op", "seed", "condition"]).speedup
    lines = []
    for (flavour, condition), s in shares.groupby(["flavour", "condition"], sort=False):
        if flavour == "weight decay 0":
            continue
        kept = s.mean_kept_share.mean()
        norm = (s.last_attention_norm / s.first_attention_norm).mean()
        speed = [sp.get((flavour, o, seed, condition), np.nan) for o, seed in zip(s.op, s.seed)]
        lines.append(f"- {flavour} projection, {condition} ({len(s)} run{'s' if len(s) > 1 else ''}): keeps a share "
                     f"{kept:.2g} of the natural update; the attention weights end at {norm:.0%} of their initial "
                     f"norm; grokking {np.nanmean(speed) if np.isfinite(speed).any() else float('nan'):.2f}x the "
                     f"control's pace.")
    return lines
