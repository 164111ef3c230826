"""Study 1's claims in numbers: the per-size summary of the alignment curves, and the fidelity rows.

Input: the wide study table (:func:`gradtools.shared_gradients.wide`: one row per size, step
and dataset; columns ``loss``, ``cos_mean``, ``di_mean``, ``excess`` ...). Step 0 is left out
(the figures' log axes start at the first checkpoint after it).

Shapes of a curve (:func:`curve_shape`): the **early peak** is the first maximum that rose by at
least ``min_rise`` from the first value and from which the curve later falls back by at least
``DROP`` (40%) of that rise (the global maximum when it never does); the **trough** is the minimum after the early
peak; the **late rise** is the maximum after the trough minus the trough (a second rise). A
"half step" is the first checkpoint at which a curve has made half of a move.

:func:`summary` gives one row per size (written as ``data/shared_gradients_summary.parquet``);
:func:`claims` decides the paper's claims from it, each by the criterion in its docstring.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import fidelity
from .claims_format import ONE_SEED, num as _f, step as _step
from .checkpoint_suite import emergence_step
from .emergence_windows import rise_window

STUDY = fidelity.STUDIES[1]
DATASETS = ["ioi", "ioi_name", "ioi_copy", "ioi_rand", "ioi_rand_freq", "gt", "gt_year", "gt_less", "gt_copy",
            "oml", "oml_month", "oml_copy"]
IOI_MARGIN = 0.5    # nats: a size learns IOI when IOI-name loss - IOI loss ends at least this large (issue 6)
DIVERGE = 0.5       # nats: a control's loss has diverged from IOI's when it stays this far above it
MIN_RISE = 0.05     # a rise of the mean cosine smaller than this is noise (the cosines' std is about 0.15)
CLEAR_GAP = 0.05    # a "clear" gap between two mean cosines
LATE_RISE = 0.1     # a second rise of the alignment of at least this much
DROP = 0.4          # a curve has "fallen back" from a peak when it lost this share of its rise (the early
                    # phase's checkpoint-to-checkpoint wobble is about 0.3 of the rise)
NULL_SLACK = 0.05   # DI "as destructive as random signs" when at least the sign null minus this
LOWERING_MAX = 0.75  # "random batches do not consistently lower the IOI loss": at most this share do
AGREE = 0.9         # appendix D.2: full-parameter and non-embedding pairwise cosines correlate this well


def curve(W: pd.DataFrame, dataset: str, metric: str, size: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one metric of one dataset and size, step 0 and missing values left out."""
    if metric not in W.columns:  # e.g. no destructive interference without training data
        return np.array([]), np.array([])
    g = W[(W.dataset == dataset) & (W["size"] == size)].dropna(subset=[metric]).sort_values("step")
    g = g[g.step > 0]
    return g.step.values.astype(float), g[metric].values.astype(float)


def half_step(x, y, rising: bool = True) -> float:
    """First x at which y has made half of its move: rising, from its first value to its peak;
    falling, from its maximum to its final value. NaN if there is no such move."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(y) < 2:
        return np.nan
    if rising:
        lo, hi = y[0], np.nanmax(y)
        return float(x[np.argmax(y >= lo + 0.5 * (hi - lo))]) if hi > lo else np.nan
    top = int(np.nanargmax(y))
    hi, lo = y[top], y[-1]
    return float(x[top:][np.argmax(y[top:] <= hi - 0.5 * (hi - lo))]) if hi > lo else np.nan


def curve_shape(x, y, min_rise: float = MIN_RISE, drop: float = DROP) -> dict:
    """first, early peak (value, step), trough after it (value, step), final, late_max after the trough,
    late_rise = late_max - trough, late_half_step (first step after the trough at half the late rise)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    nan = dict(first=np.nan, peak=np.nan, peak_step=np.nan, trough=np.nan, trough_step=np.nan, final=np.nan,
               late_max=np.nan, late_rise=np.nan, late_half_step=np.nan)
    if len(y) == 0:
        return nan
    top, peak = 0, int(np.argmax(y))
    for i in range(1, len(y)):
        if y[i] > y[top]:
            top = i
        elif y[top] - y[0] >= min_rise and y[i] <= y[top] - drop * (y[top] - y[0]):
            peak = top  # the first maximum that the curve falls back from by ``drop`` of its rise
            break
    low = peak + int(np.argmin(y[peak:]))
    late = low + int(np.argmax(y[low:]))
    late_rise = y[late] - y[low]
    half = (x[low:][np.argmax(y[low:] >= y[low] + 0.5 * late_rise)] if late_rise > 0 else np.nan)
    return dict(first=y[0], peak=y[peak], peak_step=x[peak], trough=y[low], trough_step=x[low], final=y[-1],
                late_max=y[late], late_rise=late_rise, late_half_step=float(half))


def _at(x, y, step: float) -> float:
    """y at the checkpoint ``step`` (NaN if it is not one)."""
    hit = np.flatnonzero(np.asarray(x) == step)
    return float(y[hit[0]]) if len(hit) else np.nan


def divergence_step(x, control_loss, task_loss, nats: float = DIVERGE) -> float:
    """First step from which the control's loss stays more than ``nats`` above the task's (NaN if never)."""
    if len(x) == 0:
        return np.nan
    step = emergence_step(pd.DataFrame({"step": x, "value": np.asarray(control_loss) - np.asarray(task_loss)}), nats)
    return np.nan if step is None else float(step)


def size_summary(W: pd.DataFrame, size: str, window_tail: int = 1000) -> dict:
    """The numbers of one size that the claims rest on (see the module docstring and :func:`summary`)."""
    c = lambda ds, metric="cos_mean": curve(W, ds, metric, size)  # noqa: E731
    x, loss = c("ioi", "loss")
    r = dict(size=size, last_step=int(x[-1]) if len(x) else np.nan, first_step=float(x[0]) if len(x) else np.nan)
    _, name_loss = c("ioi_name", "loss")
    _, copy_loss = c("ioi_copy", "loss")
    _, align = c("ioi")
    margin = name_loss - loss if len(name_loss) == len(loss) else np.array([])
    r["ioi_loss_half_drop"] = half_step(x, loss, rising=False)
    r["ioi_margin_half_rise"] = half_step(x, margin, rising=True)
    r["ioi_align_half_rise"] = half_step(x, align, rising=True)
    r["align_before_loss_drop"] = bool(r["ioi_align_half_rise"] <= r["ioi_loss_half_drop"])
    r["ioi_loss_final"] = float(loss[-1]) if len(loss) else np.nan
    r["ioi_margin_final"] = float(margin[-1]) if len(margin) else np.nan
    r["ioi_learned"] = bool(r["ioi_margin_final"] >= IOI_MARGIN)
    r["name_diverges"] = divergence_step(x, name_loss, loss) if len(margin) else np.nan
    r["copy_diverges"] = (divergence_step(x, copy_loss, loss) if len(copy_loss) == len(loss) else np.nan)
    for ds in DATASETS:
        xs, a = c(ds)
        for k, v in curve_shape(xs, a).items():
            r[f"{ds}_align_{k}"] = v
        xl, lo = c(ds, "loss")
        r[f"{ds}_loss_final"] = float(lo[-1]) if len(lo) else np.nan
        r[f"{ds}_loss_at_trough"] = _at(xl, lo, r[f"{ds}_align_trough_step"])
    k = int(np.searchsorted(x, r["ioi_align_half_rise"])) if np.isfinite(r["ioi_align_half_rise"]) else 0
    for ctrl in ("ioi_name", "ioi_copy", "ioi_rand"):
        _, a = c(ctrl)
        short = ctrl.split("_")[1]
        ok = len(a) == len(align) and len(a) > 0
        r[f"{short}_gap_early"] = float(align[k] - a[k]) if ok else np.nan
        r[f"{short}_gap_final"] = float(align[-1] - a[-1]) if ok else np.nan
    r["ioi_rise"] = r["ioi_align_peak"] - r["ioi_align_first"]
    r["rand_rise"] = r["ioi_rand_align_peak"] - r["ioi_rand_align_first"]
    for ctrl in ("name", "copy"):
        xs, a = c(f"ioi x ioi_{ctrl}")
        r[f"cross_{ctrl}_peak"] = float(np.max(a)) if len(a) else np.nan
        r[f"cross_{ctrl}_final"] = float(a[-1]) if len(a) else np.nan
    r.update(_window(x, margin, window_tail))
    r.update(_interference(W, size))
    r["rand_freq_rise"] = r["ioi_rand_freq_align_peak"] - r["ioi_rand_freq_align_first"]
    _, anisotropy = c("name unembeddings", "random")
    r["random_unembedding_cos_final"] = float(anisotropy[-1]) if len(anisotropy) else np.nan
    r["random_unembedding_cos_max"] = float(np.max(anisotropy)) if len(anisotropy) else np.nan
    _, pair = c("ioi", "pair_correlation")
    _, full = c("ioi", "cos_mean_all")
    r["d2_checkpoints"] = len(pair)
    r["d2_pair_correlation_median"] = float(np.median(pair)) if len(pair) else np.nan
    r["d2_pair_correlation_min"] = float(np.min(pair)) if len(pair) else np.nan
    r["d2_cos_gap_median"] = (float(np.median(np.abs(_on(W, size, "ioi", "cos_mean_all", "cos_mean")
                                                      - _on(W, size, "ioi", "cos_mean", "cos_mean_all"))))
                              if len(full) else np.nan)
    xs, excess = c("name unembeddings", "excess")
    r["names_excess_first"] = float(excess[0]) if len(excess) else np.nan
    r["names_excess_peak"] = float(np.max(excess)) if len(excess) else np.nan
    r["names_excess_peak_step"] = float(xs[np.argmax(excess)]) if len(excess) else np.nan
    r["names_excess_final"] = float(excess[-1]) if len(excess) else np.nan
    _, pd_gt = c("gt", "prob_diff")
    r["gt_prob_diff_final"] = float(pd_gt[-1]) if len(pd_gt) else np.nan
    return r


def _on(W: pd.DataFrame, size: str, dataset: str, metric: str, where: str) -> np.ndarray:
    """``metric`` of ``dataset`` at the checkpoints where both it and ``where`` are measured (step 0 left out)."""
    if metric not in W.columns or where not in W.columns:
        return np.array([])
    g = W[(W.dataset == dataset) & (W["size"] == size) & (W.step > 0)].dropna(subset=[where, metric]).sort_values("step")
    return g[metric].values.astype(float)


def _window(x, margin, tail: int) -> dict:
    """The IOI margin's 10%-90% rise (:func:`gradtools.emergence_windows.rise_window`, end level over the
    last ``tail`` steps) on the measured checkpoints, and how many of them fall inside it."""
    window = (rise_window(pd.DataFrame({"step": x, "value": margin}), tail=tail, min_rise=IOI_MARGIN)
              if len(margin) > 1 else None)
    if window is None:
        return dict(ioi_window_start=np.nan, ioi_window_end=np.nan, ioi_window_checkpoints=0)
    return dict(ioi_window_start=float(window[0]), ioi_window_end=float(window[1]),
                ioi_window_checkpoints=int(((x >= window[0]) & (x <= window[1])).sum()))


def interference_batch_sizes(W: pd.DataFrame) -> list[int]:
    """The extra batch sizes at which DI was measured (``di_mean_b<B>`` columns), ascending."""
    return sorted(int(c[len("di_mean_b"):]) for c in W.columns if c.startswith("di_mean_b"))


def _interference(W: pd.DataFrame, size: str) -> dict:
    """Medians over checkpoints of DI, its random-sign null and their difference (the training batch
    size, then each extra batch size ``_b<B>``), and the mean share of batches that lower the IOI loss."""
    c = lambda metric: curve(W, "training x ioi", metric, size)[1]  # noqa: E731
    r = {}
    for suffix in [""] + [f"_b{b}" for b in interference_batch_sizes(W)]:
        di, null, lowering = c(f"di_mean{suffix}"), c(f"di_null_mean{suffix}"), c(f"lowering_share{suffix}")
        r[f"di_median{suffix}"] = float(np.median(di)) if len(di) else np.nan
        r[f"di_null_median{suffix}"] = float(np.median(null)) if len(null) else np.nan
        paired = (_on(W, size, "training x ioi", f"di_mean{suffix}", f"di_null_mean{suffix}")
                  - _on(W, size, "training x ioi", f"di_null_mean{suffix}", f"di_mean{suffix}")) if len(null) else []
        r[f"di_excess{suffix}"] = float(np.nanmedian(paired)) if len(paired) else np.nan
        r[f"lowering_share{suffix}"] = float(np.mean(lowering)) if len(lowering) else np.nan
    return r


def summary(W: pd.DataFrame, sizes: list[str] | None = None, window_tail: int = 1000,
            learned: dict[str, bool] | None = None) -> pd.DataFrame:
    """One row per size (``sizes`` in order, smallest first; default: the table's order) of the numbers the
    claims rest on: IOI loss / margin / alignment half steps, every dataset's alignment shape
    (``<ds>_align_first/peak/peak_step/trough/trough_step/final/late_max/late_rise/late_half_step``), final
    losses and the loss at the alignment trough, control gaps, cross alignment, interference, name clustering."""
    sizes = list(dict.fromkeys(W["size"])) if sizes is None else list(sizes)
    rows = [size_summary(W, s, window_tail) for s in sizes]
    for r in rows:  # notebook 00's verdict (both IOI thresholds held) where the caller has it
        r["ioi_learned_by"] = "suite" if learned is not None and r["size"] in learned else "margin"
        if r["ioi_learned_by"] == "suite":
            r["ioi_learned"] = bool(learned[r["size"]])
    return pd.DataFrame(rows)


def _why(criterion: str, seed_note: str, extra: str = "") -> str:
    parts = [f"criterion: {criterion}"] + ([extra] if extra else []) + ([seed_note] if seed_note else [])
    return "; ".join(parts)


def claims(summary: pd.DataFrame, n_seeds: int = 1, training_batch_size: int | None = None) -> list[dict]:
    """The fidelity rows of study 1 from :func:`summary` (rows: sizes, smallest first).

    "IOI sizes" are those that learn IOI: by notebook 00's verdict where :func:`summary` was given it
    (``learned``: [A] above [B] on 80% and the margin held over the last 1000 steps), else those whose
    IOI-name minus IOI loss ends at least 0.5 nats (a size that copies [B] has such a margin too). Criteria:

    1. alignment before/with the IOI loss drop: in every IOI size, the early alignment rise reaches half
       its height no later than the IOI loss's half drop, **and** a late IOI alignment rise of at least
       ``MIN_RISE``, larger than IOI-name's late rise, reaches half its height no later than that drop;
       only the early part -> partly.
    2. losses diverge: in every IOI size IOI-name and IOI-copy losses end up staying 0.5 nats above IOI's,
       IOI-name first; both diverge in the other order, or one only -> partly.
    3. control alignment falls below IOI's: final IOI minus control mean cosine >= ``CLEAR_GAP`` for both
       controls in every IOI size; both gaps positive but smaller -> partly.
    4. IOI-rand: its alignment rise is at most half of IOI's, per size where IOI's rises at all (by ``MIN_RISE``);
       all sizes -> reproduced, some -> partly.
    5. destructive interference: per size, the median DI is at least its random-sign null (the same
       contributions with random signs, :func:`gradtools.alignment.sign_null`) minus ``NULL_SLACK`` and at
       most ``LOWERING_MAX`` of batches lower the IOI loss, at the training batch size and at every measured
       batch size larger than ``training_batch_size`` (None: at every extra batch size measured); every size
       -> reproduced; some size at its training batch size at least -> partly.
    6. name clustering: the names' unembedding cosine exceeds random tokens' by >= 0.1 at some checkpoint, per size.
    7. cross alignment: final IOI x IOI-name and IOI x IOI-copy cosines negative in the largest size and not
       negative in sizes that do not learn IOI; negative in the largest size only for one control, or for both
       when every size learns IOI (the "not in smaller models" half is then untested) -> partly.
    8. small models: a size that does not learn IOI, smaller than one that does, reaches a peak IOI alignment
       at least as high as that one's.
    9. GT/OML early shared rise: every dataset of both families rises by >= 0.1 and falls back by at least
       ``DROP`` of that rise, per size.
    10. GT: GT-less's late alignment rise >= ``LATE_RISE`` while its loss ends above its value at the trough,
        and GT's own late rise smaller, per size (GT-copy is reported).
    11. OML: OML's late alignment rise >= ``LATE_RISE`` and its final alignment above both controls', per size.

    12. IOI-rand's rise (not a paper claim): the frequency-matched control's rise is at most half of the
        uniform one's, per size where the uniform one rises; the random tokens' unembedding cosine is reported.
    13. appendix D.2: the median correlation of full-parameter and non-embedding pairwise IOI cosines
        >= ``AGREE``, per size.

    ``n_seeds``: the training seeds behind the table; with one, every ``why`` says "one seed".
    """
    S = summary.reset_index(drop=True)
    seed_note = ONE_SEED if n_seeds <= 1 else ""
    ioi = S[S.ioi_learned]
    sizes_ioi = ", ".join(ioi["size"]) or "none"
    no_ioi = ("no size learns IOI (notebook 00's verdict)" if (S.get("ioi_learned_by") == "suite").any() else
              "no size learns IOI (IOI-name minus IOI loss ends below 0.5 nats)")
    rows = []

    def add(claim, paper, measured, n_ok, n, criterion, extra="", verdict=None, none_why=no_ioi):
        verdict = verdict or fidelity.verdict_from_counts(n_ok, n)
        why = none_why if verdict == "not measured" else _why(criterion, seed_note, extra)
        rows.append(fidelity.claim(STUDY, claim, paper, measured, verdict, why))

    # 1. alignment rises before / with the IOI loss drop
    early = [bool(r.ioi_align_half_rise <= r.ioi_loss_half_drop) for r in ioi.itertuples()]
    late = [bool(r.ioi_align_late_rise >= MIN_RISE and r.ioi_align_late_rise > r.ioi_name_align_late_rise
                 and r.ioi_align_late_half_step <= r.ioi_loss_half_drop) for r in ioi.itertuples()]
    n_both = sum(e and lt for e, lt in zip(early, late))
    verdict = None if not len(ioi) else fidelity.verdict_from(n_both == len(ioi), partly=any(early))
    add("IOI gradient alignment rises before or with the IOI loss drop (fig. 2)",
        "alignment rises before and with the IOI loss improvement (from step 200-500), then stabilises",
        "; ".join(f"{r.size}: early rise half-way at step {_step(r.ioi_align_half_rise)} (peak "
                  f"{_f(r.ioi_align_peak)}), IOI loss half-drop at {_step(r.ioi_loss_half_drop)}; late rise "
                  f"{_f(r.ioi_align_trough)} -> {_f(r.ioi_align_late_max)} half-way at {_step(r.ioi_align_late_half_step)} "
                  f"(IOI-name's late rise {_f(r.ioi_name_align_late_rise)}); {r.ioi_window_checkpoints} checkpoints "
                  f"measured inside the IOI margin's 10-90% rise (steps {_step(r.ioi_window_start)}-"
                  f"{_step(r.ioi_window_end)})" for r in ioi.itertuples()) or no_ioi,
        n_both, len(ioi), "in every IOI size the early rise and a late IOI-specific rise (above IOI-name's) "
        "reach half their height by the IOI loss's half drop",
        "the early rise is shared by every control (see the IOI-rand row); the late rise is small and few "
        "checkpoints fall in its window", verdict)

    # 2. IOI-name, then IOI-copy, diverge from IOI in loss
    both = [np.isfinite(r.name_diverges) and np.isfinite(r.copy_diverges) for r in ioi.itertuples()]
    ordered = [b and r.name_diverges <= r.copy_diverges for b, r in zip(both, ioi.itertuples())]
    verdict = None if not len(ioi) else fidelity.verdict_from(
        all(ordered), partly=any(np.isfinite(r.name_diverges) or np.isfinite(r.copy_diverges) for r in ioi.itertuples()))
    add("IOI-name, then IOI-copy, diverge from IOI in loss (fig. 3)",
        "losses overlap early; IOI-name diverges near 4k steps, IOI-copy later, near 20k",
        "; ".join(f"{r.size}: IOI-name stays 0.5 nats above IOI from step {_step(r.name_diverges)}, IOI-copy from "
                  f"{_step(r.copy_diverges)}" for r in ioi.itertuples()) or no_ioi,
        sum(ordered), len(ioi), "in every IOI size both control losses end up staying 0.5 nats above IOI's, "
        "IOI-name first", verdict=verdict)

    # 3. control alignment falls below IOI's
    clear = [r.name_gap_final >= CLEAR_GAP and r.copy_gap_final >= CLEAR_GAP for r in ioi.itertuples()]
    positive = [r.name_gap_final > 0 and r.copy_gap_final > 0 for r in ioi.itertuples()]
    verdict = None if not len(ioi) else fidelity.verdict_from(all(clear), partly=any(positive))
    add("IOI-name and IOI-copy alignment fall below IOI's after they diverge (fig. 3)",
        "control gradient alignment goes down after the divergence, for all but the smallest models",
        "; ".join(f"{r.size}: final IOI minus control mean cosine {_f(r.name_gap_final)} (IOI-name), "
                  f"{_f(r.copy_gap_final)} (IOI-copy); at IOI's early half-rise {_f(r.name_gap_early)}, "
                  f"{_f(r.copy_gap_early)}" for r in ioi.itertuples()) or no_ioi,
        sum(clear), len(ioi), f"both final gaps >= {CLEAR_GAP} in every IOI size (positive but smaller: partly)",
        verdict=verdict)

    # 4. IOI-rand shows no rise (compared where IOI's alignment rises at all)
    rising = S[S.ioi_rise >= MIN_RISE]
    ok = [r.rand_rise <= 0.5 * r.ioi_rise for r in rising.itertuples()]
    add("IOI-rand shows no alignment rise like IOI's (fig. 4)",
        "the random-target control has no such rise: IOI's is not prompt structure alone",
        "; ".join(f"{r.size}: rise IOI-rand {_f(r.rand_rise)} vs IOI {_f(r.ioi_rise)}, final IOI-rand "
                  f"{_f(r.ioi_rand_align_final)} vs IOI {_f(r.ioi_align_final)}" for r in S.itertuples()),
        sum(ok), len(rising), "IOI-rand's rise (peak minus first value) at most half of IOI's, in every size "
        f"where IOI's rises by {MIN_RISE} or more", none_why=f"IOI's alignment rises by less than {MIN_RISE} in every size")

    # 5. destructive interference, against the random-sign null, at the training batch size and larger
    measured_di = S[np.isfinite(S.di_median)]
    larger = [b for b in _extra_batch_sizes(S) if training_batch_size is None or b > training_batch_size]
    with_null = bool(len(measured_di)) and bool(np.isfinite(measured_di.di_excess).all())

    def destructive(r, suffix=""):
        return bool(r[f"di_excess{suffix}"] >= -NULL_SLACK and r[f"lowering_share{suffix}"] <= LOWERING_MAX)

    at_training = [destructive(r) for _, r in measured_di.iterrows()] if with_null else []
    at_larger = [all(destructive(r, f"_b{b}") for b in larger) for _, r in measured_di.iterrows()] if with_null else []
    n_ok = sum(a and b for a, b in zip(at_training, at_larger))
    verdict = ("not measured" if not len(measured_di) or not with_null else
               fidelity.verdict_from(n_ok == len(measured_di), partly=any(at_training)))
    add("training batches interfere destructively on IOI (fig. 2, right)",
        "destructive interference from training updates on IOI (0.5M-token batches): random batches do not "
        "consistently lower the IOI loss",
        "; ".join(f"{r['size']}: median DI {_f(r.di_median)} vs random-sign null {_f(r.di_null_median)}, "
                  f"{_f(r.lowering_share, '.0%')} of batches lower the IOI loss"
                  + "".join(f"; batches of {b}: DI {_f(r[f'di_median_b{b}'])} vs null {_f(r[f'di_null_median_b{b}'])}, "
                            f"{_f(r[f'lowering_share_b{b}'], '.0%')} lower" for b in _extra_batch_sizes(S))
                  for _, r in measured_di.iterrows()) or "no training data for this source",
        n_ok, len(measured_di),
        f"DI (median over checkpoints) at least the DI of the same contributions with random signs minus "
        f"{NULL_SLACK}, and at most {LOWERING_MAX:.0%} of batches lower the IOI loss, at the training batch size "
        f"and every larger one measured ({', '.join(map(str, larger)) or 'none'}), in every size; at the training "
        "batch size only -> partly",
        verdict=verdict,
        none_why=("destructive interference needs the training data, which this checkpoint source lacks"
                  if not len(measured_di) else "no random-sign null in this table (rerun the notebook)"))

    # 6. name unembeddings cluster
    ok = [r.names_excess_peak >= 0.1 for r in S.itertuples()]
    add("name unembeddings cluster (fig. 5)",
        "the IOI names' unembedding rows become clustered while IOI-name is learned",
        "; ".join(f"{r.size}: names' cosine minus random tokens' peaks at {_f(r.names_excess_peak)} (step "
                  f"{_step(r.names_excess_peak_step)}), ends at {_f(r.names_excess_final)}" for r in S.itertuples()),
        sum(ok), len(S), "the excess over random tokens reaches 0.1 at some checkpoint, in every size")

    # 7. IOI x control cross alignment negative in larger models only
    big, small = S.iloc[-1], S[~S.ioi_learned]
    neg = [big.cross_name_final < 0, big.cross_copy_final < 0]
    small_ok = all(r.cross_name_final >= 0 and r.cross_copy_final >= 0 for r in small.itertuples())
    verdict = fidelity.verdict_from(all(neg) and small_ok and len(small) > 0, partly=any(neg))
    untested = ("every size learns IOI, so the half 'not in the smaller models' is untested" if not len(small)
                else "")
    add("IOI x control cross alignment turns negative in larger models only (fig. 6)",
        "cross alignment rises and falls with the controls', then turns negative (high variance), but not in "
        "the smaller models that struggle with IOI",
        "; ".join(f"{r.size}: final IOI x IOI-name {_f(r.cross_name_final)}, IOI x IOI-copy {_f(r.cross_copy_final)} "
                  f"(peaks {_f(r.cross_name_peak)}, {_f(r.cross_copy_peak)})" for r in S.itertuples()),
        0, 1, "both final cross cosines negative in the largest size and neither negative in a size that does "
        "not learn IOI", "; ".join(filter(None, [untested, "small against the cosines' spread (std about 0.15)"])),
        verdict)

    # 8. smaller models fail IOI despite high alignment
    pairs = [(s, b) for i, s in S.iterrows() for j, b in S.iterrows() if i < j and not s.ioi_learned and b.ioi_learned]
    ok = [s.ioi_align_peak >= b.ioi_align_peak for s, b in pairs]
    add("smaller models fail IOI despite high gradient alignment (B.4)",
        "smaller models struggle on IOI despite high IOI gradient alignment (gradient superposition)",
        "; ".join(f"{s['size']} (no IOI) peak IOI alignment {_f(s.ioi_align_peak)} vs {b['size']} (IOI) "
                  f"{_f(b.ioi_align_peak)}" for s, b in pairs)
        or f"no smaller size without IOI beside a larger one with it (IOI sizes: {sizes_ioi})",
        sum(ok), len(pairs), "a size without IOI, smaller than one with it, peaks at least as high in IOI alignment",
        none_why="needs a size that does not learn IOI smaller than one that does")

    # 9. GT / OML: an early alignment rise shared with the controls, then a drop
    fam = ["gt", "gt_year", "gt_less", "gt_copy", "oml", "oml_month", "oml_copy"]

    def rose_and_fell(r, ds):
        first, peak, trough = (r[f"{ds}_align_{k}"] for k in ("first", "peak", "trough"))
        return peak - first >= 0.1 and trough <= peak - DROP * (peak - first)

    ok = [all(rose_and_fell(r, ds) for ds in fam) for _, r in S.iterrows()]
    add("GT and OML: an early alignment rise shared with the controls, then a drop (figs. 7, 10)",
        "an initial alignment rise with the loss drop, shared by task and controls, then alignment falls for all",
        "; ".join(f"{r['size']}: early peaks " + ", ".join(f"{ds} {_f(r[f'{ds}_align_peak'])}" for ds in fam)
                  + f"; {sum(rose_and_fell(r, ds) for ds in fam)} of {len(fam)} rise >= 0.1 and fall back by 40%"
                  for _, r in S.iterrows()),
        sum(ok), len(S), "every GT and OML dataset rises by at least 0.1 and falls back by 40% of it, in every size")

    # 10. GT: GT-less alignment rises again while its loss worsens
    def gt_pattern(r):
        return bool(r.gt_less_align_late_rise >= LATE_RISE and r.gt_less_loss_final > r.gt_less_loss_at_trough
                    and r.gt_align_late_rise < r.gt_less_align_late_rise)

    ok = [gt_pattern(r) for r in S.itertuples()]
    copy_better = [r.size for r in S.itertuples() if r.gt_copy_loss_final < r.gt_copy_loss_at_trough]
    add("GT: GT-less alignment rises again while its loss worsens; GT's own rises less (figs. 7-9)",
        "after the drop, alignment rises for GT-less and GT-copy (not GT) while their losses worsen and GT's "
        "improves: the model suppresses wrong years",
        "; ".join(f"{r.size}: late rise GT-less {_f(r.gt_less_align_late_rise)} (loss {_f(r.gt_less_loss_at_trough)} "
                  f"-> {_f(r.gt_less_loss_final)}), GT-copy {_f(r.gt_copy_align_late_rise)} (loss "
                  f"{_f(r.gt_copy_loss_at_trough)} -> {_f(r.gt_copy_loss_final)}), GT {_f(r.gt_align_late_rise)}; "
                  f"GT probability difference {_f(r.gt_prob_diff_final)}" for r in S.itertuples()),
        sum(ok), len(S), f"GT-less's late alignment rise >= {LATE_RISE}, its loss ends above its value at the "
        "alignment trough, GT's late rise smaller, in every size",
        (f"GT-copy's loss does not worsen in {', '.join(copy_better)}" if copy_better else ""))

    # 11. OML: a second alignment rise
    ok = [r.oml_align_late_rise >= LATE_RISE and r.oml_align_final > max(r.oml_month_align_final, r.oml_copy_align_final)
          for r in S.itertuples()]
    add("OML: a second alignment rise for OML, above its controls (figs. 10-12)",
        "unlike GT, OML alignment goes back up after the drop (OML not conclusively learned at the paper's scale)",
        "; ".join(f"{r.size}: OML {_f(r.oml_align_trough)} -> {_f(r.oml_align_late_max)} after the drop, final "
                  f"{_f(r.oml_align_final)} vs OML-month {_f(r.oml_month_align_final)}, OML-copy "
                  f"{_f(r.oml_copy_align_final)}; OML loss {_f(r.oml_loss_final)}, OML-copy {_f(r.oml_copy_loss_final)}"
                  for r in S.itertuples()),
        sum(ok), len(S), f"OML's late rise >= {LATE_RISE} and its final alignment above both controls', in every size")

    # 12. IOI-rand's rise: rare targets (frequency-matched control), with the unembedding anisotropy
    freq = S[np.isfinite(S.rand_freq_rise) & (S.rand_rise >= MIN_RISE)]
    ok = [r.rand_freq_rise <= 0.5 * r.rand_rise for r in freq.itertuples()]
    add("IOI-rand's rise comes from its rare targets: a frequency-matched random target rises at most half as much",
        "not a claim of the paper (its IOI-rand, uniform over OLMo's 50k vocabulary, shows no rise); this "
        "companion's test of why row 4 misses here",
        "; ".join(f"{r.size}: rise IOI-rand (uniform) {_f(r.rand_rise)}, frequency-matched {_f(r.rand_freq_rise)}, "
                  f"IOI {_f(r.ioi_rise)}; random tokens' unembedding rows: mean cosine {_f(r.random_unembedding_cos_final)} "
                  f"at the end (max {_f(r.random_unembedding_cos_max)})" for r in S.itertuples()),
        sum(ok), len(freq), f"the frequency-matched control's rise at most half the uniform one's, in every size "
        f"where the uniform one rises by {MIN_RISE} or more",
        none_why=("no frequency-matched control (the source has no training token counts)"
                  if not np.isfinite(S.rand_freq_rise).any() else
                  f"IOI-rand (uniform) rises by less than {MIN_RISE} in every size"))

    # 13. appendix D.2: full-parameter and non-embedding alignment agree
    d2 = S[S.d2_checkpoints > 0]
    ok = [r.d2_pair_correlation_median >= AGREE for r in d2.itertuples()]
    add("IOI alignment over all parameters agrees with the non-embedding alignment (appendix D.2)",
        "early experiments showed non-embedding gradient alignment consistent with the full parameters",
        "; ".join(f"{r.size}: pairwise cosines correlate {_f(r.d2_pair_correlation_median)} (median over "
                  f"{r.d2_checkpoints} checkpoints, lowest {_f(r.d2_pair_correlation_min)}); mean cosine differs by "
                  f"{_f(r.d2_cos_gap_median)} (median)" for r in d2.itertuples()) or "not measured",
        sum(ok), len(d2), f"the correlation of the two sets of pairwise IOI cosines, median over checkpoints, "
        f">= {AGREE} in every size", none_why="the full-parameter alignment was not computed (all_parameters)")
    return rows


# claims 7 and 8 compare sizes with each other: over the seeds of one size they have no meaning
SIZE_COMPARISONS = ("IOI x control cross alignment turns negative in larger models only (fig. 6)",
                    "smaller models fail IOI despite high gradient alignment (B.4)")


# claims read off the early alignment rise (or the drop after it): a run without checkpoints in the first
# EARLY_STEP steps cannot resolve that rise (the suite's is half-way by step ~100-250)
EARLY_PHASE = ("IOI gradient alignment rises before or with the IOI loss drop (fig. 2)",
               "IOI-rand shows no alignment rise like IOI's (fig. 4)",
               "GT and OML: an early alignment rise shared with the controls, then a drop (figs. 7, 10)",
               "GT: GT-less alignment rises again while its loss worsens; GT's own rises less (figs. 7-9)",
               "OML: a second alignment rise for OML, above its controls (figs. 10-12)",
               "IOI-rand's rise comes from its rare targets: a frequency-matched random target rises at most half as much")
EARLY_STEP = 64


def seed_claims(summary: pd.DataFrame, size: str, training_batch_size: int | None = None,
                early_step: int = EARLY_STEP) -> list[dict]:
    """The claims of :func:`claims` that hold per size (all but :data:`SIZE_COMPARISONS`), decided over the
    seeds of one ``size``: ``summary`` has one row per seed (its ``size`` column labels the seed), so each
    verdict counts seeds where :func:`claims` counts sizes ("in every size" reads "in every seed").

    The :data:`EARLY_PHASE` claims count only the seeds measured at some checkpoint in ``(0, early_step]``
    (``first_step``), and are "not measured" when fewer than two seeds are. The claim names end with
    "over N seeds of <size>"."""
    n, learned = len(summary), int(summary.ioi_learned.sum())
    early = summary[summary.first_step <= early_step]
    late = ", ".join(f"{r.size} (first checkpoint at step {r.first_step:.0f})"
                     for r in summary[~summary.index.isin(early.index)].itertuples())
    units = (f"units: the {n} seeds of {size} ('size' in the criterion reads 'seed'); {learned} of {n} learn IOI, "
             "and the rows on how IOI forms count those")
    early_rows = {r["claim"]: r for r in claims(early, n_seeds=len(early), training_batch_size=training_batch_size)
                  } if len(early) >= 2 else {}
    rows = []
    for r in claims(summary, n_seeds=n, training_batch_size=training_batch_size):
        if r["claim"] in SIZE_COMPARISONS:
            continue
        why = f"{units}; {r['why']}"
        if r["claim"] in EARLY_PHASE and late:
            skipped = f"left out, no checkpoint by step {early_step} to resolve the early rise: {late}"
            if r["claim"] in early_rows:
                r, why = early_rows[r["claim"]], f"{units}; {skipped}; {early_rows[r['claim']]['why']}"
            else:
                r = dict(r, measured=f"fewer than two seeds measured early enough ({skipped})", verdict="not measured")
                why = f"{units}; {skipped}"
        rows.append(dict(r, claim=f"{r['claim']}, over {n} seeds of {size}", why=why))
    return rows


def _extra_batch_sizes(S: pd.DataFrame) -> list[int]:
    return sorted(int(c[len("di_median_b"):]) for c in S.columns if c.startswith("di_median_b"))
