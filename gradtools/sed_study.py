"""Studies 4 and 5 from trained runs to tables: cached runs, SED bases per checkpoint, R curves.

The notebooks 04_sed_coupling and 05_sed_interventions call these; each
function is one step of the data path (settings -> cached run -> rows ->
bases -> R table), so a notebook reads top to bottom. Every expensive result
(one trained run, one R table) is saved in its own file as soon as it is
computed, under a name that hashes every setting it depends on, so an
interrupted profile resumes from what is saved; :func:`parallel` spreads such
jobs over worker processes.
"""
from __future__ import annotations

import hashlib
import inspect
import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .cache import cached_table, cached_torch, save_table
from .modular_arithmetic import (OPS, ModelConfig, ModularTransformer, TrainConfig, TrainingRun,
                                 attention_parameter_names, grokking_step, modular_data, train)
from .projected_step import CONDITIONS, ProjectedStep
from .sed import (attention_gradients, attention_vector, coupling_at_checkpoint, coupling_curve,
                  per_example_svd, probe_pairs, random_unit_directions,
                  rolling_svd_basis, update_rows)

DATA_SEED = 0  # one fixed train/test split for every model seed: seeds vary init and batch order only


def run_name(**settings) -> str:
    """A readable file name for a run plus a hash of all its settings, so a changed setting never reuses a stale run."""
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:10]
    short = "_".join(str(settings[k]) for k in ("ops", "seed", "condition", "flavour") if k in settings)
    return f"{short}_{digest}.pt".replace(" ", "").replace("'", "").replace(",", "-").replace("(", "").replace(")", "")


def _ops(ops) -> tuple[str, ...]:
    return (ops,) if isinstance(ops, str) else tuple(ops)


def _settings(ops, p, train_fraction, seed, model, training, condition, flavour, k, window, sed_every):
    """Everything a run's result depends on (its file name hashes this), and its configs."""
    model_cfg = ModelConfig(p=p, n_ops=len(ops), **model)
    train_cfg = TrainConfig(**training)
    settings = dict(ops=ops, p=p, train_fraction=train_fraction, seed=seed, data_seed=DATA_SEED,
                    model=asdict(model_cfg), training=asdict(train_cfg), condition=condition,
                    flavour=flavour if condition != "A" else None, k=k, window=window)
    if condition in ("B", "C"):  # only the SED conditions depend on it
        settings["sed_every"] = sed_every
    if condition != "A":  # projected runs log the kept share per step (ProjectedStep.history) since this key
        settings["logged"] = "projection"
    return settings, model_cfg, train_cfg


def cached_run(cache: Path, ops: str | tuple[str, ...], p: int, train_fraction: float, seed: int,
               model: dict, training: dict, condition: str = "A", flavour: str = "update",
               k: int = 3, window: int = 20, sed_every: int = 25, threads: int = 1,
               device: str = "cpu") -> TrainingRun:
    """Train (or load) one run; ``condition`` A-E selects the projected step of study 5 (A: none).

    ``model`` and ``training`` are keyword dicts of :class:`ModelConfig` and
    :class:`TrainConfig`. The run is saved atomically under ``cache``; a rerun loads it
    (``device`` and ``threads`` say where it runs, not what it is, so they are not part of its name).
    """
    torch.set_num_threads(threads)
    ops = _ops(ops)
    settings, model_cfg, train_cfg = _settings(ops, p, train_fraction, seed, model, training, condition, flavour,
                                               k, window, sed_every)
    path = Path(cache) / run_name(**settings)

    def compute() -> TrainingRun:
        data = modular_data(ops, p, train_fraction, DATA_SEED)
        names = attention_parameter_names(ModularTransformer(model_cfg))
        spec = CONDITIONS[condition]
        projection = None if spec is None else ProjectedStep(names, spec[0], spec[1], flavour, k, window, seed, sed_every)
        return train(data, model_cfg, train_cfg, seed, projection=projection,
                     desc=f"{'+'.join(ops)} seed {seed} {condition} {flavour if spec else ''}".strip(), device=device)

    return cached_torch(path, compute)


def record_paths(records: Path, **job) -> tuple[Path, Path]:
    """Where :func:`run_record` keeps the run ``job``'s history and projection log (named as its cached run)."""
    keep = inspect.signature(_settings).parameters
    defaults = {k: q.default for k, q in inspect.signature(cached_run).parameters.items()
                if k in keep and q.default is not inspect.Parameter.empty}  # cached_run's, so names always agree
    args = {**defaults, **{k: v for k, v in job.items() if k in keep}}
    args["ops"] = _ops(args["ops"])
    settings = _settings(**args)[0]
    stem = Path(run_name(**settings)).stem
    return Path(records) / f"{stem}.history.parquet", Path(records) / f"{stem}.projection.parquet"


def run_record(records: Path, **job) -> TrainingRun:
    """The run ``job`` (keywords of :func:`cached_run`) without its checkpoints, read from two small tables.

    The tables (its history and, for a projected run, its per-step log) live under
    ``records``; when they are missing the run is trained (or loaded from its cache) and
    they are written, the history last, so that its presence marks a complete record.
    A profile that commits ``records`` resumes from them on any machine.
    """
    history_path, projection_path = record_paths(records, **job)
    if history_path.exists():
        history = pd.read_parquet(history_path)
        projection = pd.read_parquet(projection_path) if projection_path.exists() else None
        return TrainingRun(history=history, grokking_step=grokking_step(history), projection=projection)
    run = cached_run(**job)
    save_record(records, run, **job)
    return replace(run, checkpoints=[])


def save_record(records: Path, run: TrainingRun, **job) -> None:
    """Write the tables :func:`run_record` reads for the run ``job`` (``run``, trained), the history last."""
    history_path, projection_path = record_paths(records, **job)
    if run.projection is not None:
        save_table(run.projection, projection_path)
    save_table(run.history, history_path)


def _call(task: tuple[Callable, dict]):
    fn, kwargs = task
    return fn(**kwargs)


def parallel(fn: Callable, jobs: list[dict], workers: int = 1, desc: str = "jobs") -> list:
    """``[fn(**job) for job in jobs]``, on ``workers`` spawned processes when there are more than one.

    ``fn`` must be a module-level function (it is pickled by name). Results come back in the
    order of ``jobs``; jobs are handed out in that order, so put the longest first.
    """
    if workers <= 1 or len(jobs) <= 1:
        return [fn(**job) for job in tqdm(jobs, desc=desc)]
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=get_context("spawn")) as pool:
        return list(tqdm(pool.map(_call, [(fn, job) for job in jobs]), total=len(jobs), desc=desc))


def run_without_checkpoints(**job) -> TrainingRun:
    """:func:`cached_run`, its checkpoints dropped: what a notebook keeps of many runs in memory."""
    return replace(cached_run(**job), checkpoints=[])


def cached_runs(jobs: list[dict], workers: int = 1, checkpoints: bool = True,
                records: Path | None = None) -> list[TrainingRun]:
    """:func:`cached_run` for every dict of keyword arguments in ``jobs``, on ``workers`` processes.

    Each job caches its own file, so an interrupted batch resumes where it stopped.
    ``checkpoints=False`` returns the runs without their checkpoints (load one in full
    with :func:`cached_run` when it is needed); ``records`` (a folder) returns them through
    :func:`run_record`, without checkpoints, from the small tables kept there.
    """
    if records is not None:
        return parallel(run_record, [dict(records=records, **job) for job in jobs], workers, desc="runs")
    return parallel(cached_run if checkpoints else run_without_checkpoints, jobs, workers, desc="runs")


BATCH_SPLITS = ("held-out", "training")


def fixed_batch(ops, p: int, train_fraction: float, size: int, seed: int, split: str = "held-out"):
    """The fixed gradient batch B of eq. 3: ``size`` pairs of ``split`` drawn once with ``seed``.

    ``"held-out"`` (the default) draws from the test pairs, the paper's "held-out batch";
    ``"training"`` from the training pairs (an ablation: the loss there is already near zero
    after memorisation). Returns (x, y, mask), fewer than ``size`` rows if the split is smaller.
    """
    if split not in BATCH_SPLITS:
        raise ValueError(f"split must be one of {BATCH_SPLITS}, not {split!r}")
    data = modular_data(ops, p, train_fraction, DATA_SEED)
    x, y, mask = ((data.x_test, data.y_test, data.mask_test) if split == "held-out"
                  else (data.x_train, data.y_train, data.mask_train))
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:size]
    return x[idx], y[idx], mask[idx]


def checkpoint_grid(n: int, every: int) -> list[int]:
    """Indices of every ``every``-th of ``n`` checkpoints, the last one always included (the run's end)."""
    at = list(range(0, n, every))
    return at + [n - 1] if n and at[-1] != n - 1 else at


def sed_rows(run: TrainingRun, model_cfg: ModelConfig, batch, progress: bool = True,
             device: str = "cpu") -> dict[str, torch.Tensor]:
    """(T, D) row sequences of the SED estimators over the run's T checkpoints.

    ``"update"``: :math:`a_t - a_{t-1}`; ``"gradient"``: the total loss's attention
    gradient on the fixed ``batch`` (x, y, mask); ``"gradient_<i>"``: op i's alone.
    """
    model = ModularTransformer(model_cfg).to(device)
    names = attention_parameter_names(model)
    vectors, grads = [], []
    for _, state in tqdm(run.checkpoints, desc="gradients on the fixed batch", disable=not progress, leave=False):
        model.load_state_dict(state)
        vectors.append(attention_vector(model, names))
        grads.append(attention_gradients(model, names, *batch))
    grads = torch.stack(grads)  # (T, n_ops + 1, D)
    rows = {"update": update_rows(torch.stack(vectors)), "gradient": grads[:, -1]}
    rows.update({f"gradient_{i}": grads[:, i] for i in range(grads.shape[1] - 1)})
    return rows


def rolling_bases(rows: torch.Tensor, window: int, k: int, at: list[int]) -> list[torch.Tensor]:
    """Per checkpoint t, the rolling SVD basis of ``rows`` ending at t (computed only where t is in ``at``)."""
    wanted = set(at)
    return [rolling_svd_basis(rows, t, window, k) if t in wanted else rows.new_zeros(0, rows.shape[1])
            for t in range(len(rows))]


def normalised(rows: torch.Tensor) -> list[torch.Tensor]:
    """Each row as a (1, D) unit direction: the W = 1 "basis" (the instantaneous direction itself)."""
    return [(r / r.norm())[None] if r.norm() > 0 else r.new_zeros(0, len(r)) for r in rows]


def coupling_of_run(run: TrainingRun, model_cfg: ModelConfig, rows: dict[str, dict[str, torch.Tensor]],
                    bases: dict[str, dict], at: list[int], probes, op_index: int = 0, n_random: int = 20,
                    eps_rel: float = 0.005, device: str = "cpu", progress: bool = True,
                    desc: str = "coupling") -> pd.DataFrame:
    """R of named rolling-SVD bases over a run's checkpoints (:func:`gradtools.sed.coupling_curve`).

    ``rows`` maps a batch split (``"held-out"``, ``"training"``) to :func:`sed_rows` on that
    split's fixed batch. ``bases`` maps a label to a spec: ``rows`` (``"update"``,
    ``"gradient"`` or ``"gradient_<i>"``), ``batch`` (a key of ``rows``; default
    ``"held-out"``; update rows take any), ``window`` W and ``k``; W = 1 is the normalised row itself (up to sign,
    which R does not see). All bases share the probes and the random directions, hence the
    random median at each checkpoint in ``at``.
    """
    def sequence(spec):  # update rows do not depend on the batch: any split's will do
        split = next(iter(rows)) if spec["rows"] == "update" else spec.get("batch", "held-out")
        return rolling_bases(rows[split][spec["rows"]], spec["window"], spec["k"], at)

    sequences = {label: sequence(spec) for label, spec in bases.items()}
    model = ModularTransformer(model_cfg).to(device)
    return coupling_curve(model, run.checkpoints, attention_parameter_names(model), sequences, at, *probes,
                          op_index=op_index, n_random=n_random, eps_rel=eps_rel, progress=progress, desc=desc)


def coupling_table(cache: Path, name: str, run_job: dict, bases: dict[str, dict], every: int = 1,
                   op_index: int = 0, probe_seed: int = 0, n_probes: int = 1024, n_random: int = 20,
                   eps_rel: float = 0.005, batch_size: int = 512, batch_seed: int = 0,
                   device: str = "cpu", threads: int = 1, records: Path | None = None) -> pd.DataFrame:
    """:func:`coupling_of_run` of the run ``run_job`` (keywords of :func:`cached_run`), cached.

    At every ``every``-th checkpoint and the last; head ``op_index`` and ``n_probes`` probe
    pairs of its op drawn with ``probe_seed``; the fixed batches of the splits the ``bases``
    use, ``batch_size`` pairs drawn with ``batch_seed``. Saved as ``<cache>/<name>_<hash>.parquet``,
    the hash over every argument but where it runs (``cache``, ``device``, ``threads``), and read
    back from there on a rerun. Rows: those of :func:`gradtools.sed.coupling_curve`.
    ``records`` (a folder): when the table is computed, the run's :func:`run_record` tables are
    written there too, so that a profile whose tables are all saved never trains the run again.
    """
    where = ("cache", "device", "threads", "records")
    settings = dict(run={k: v for k, v in run_job.items() if k not in where}, bases=bases, every=every,
                    op_index=op_index, probe_seed=probe_seed, n_probes=n_probes, n_random=n_random,
                    eps_rel=eps_rel, batch_size=batch_size, batch_seed=batch_seed)
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]

    def compute() -> pd.DataFrame:
        torch.set_num_threads(threads)
        run = cached_run(**run_job)
        if records is not None and not record_paths(records, **run_job)[0].exists():
            save_record(records, run, **run_job)
        ops = _ops(run_job["ops"])
        model_cfg = ModelConfig(p=run_job["p"], n_ops=len(ops), **run_job["model"])
        splits = {spec.get("batch", "held-out") for spec in bases.values() if spec["rows"] != "update"} or {"held-out"}
        rows = {split: sed_rows(run, model_cfg, fixed_batch(ops, run_job["p"], run_job["train_fraction"], batch_size,
                                                            batch_seed, split), progress=False, device=device)
                for split in splits}
        probes = probe_pairs(ops[op_index], run_job["p"], n_probes, probe_seed)
        return coupling_of_run(run, model_cfg, rows, bases, checkpoint_grid(len(run.checkpoints), every), probes,
                               op_index, n_random, eps_rel, device=device, progress=False)

    return cached_table(Path(cache) / f"{name}_{digest}.parquet", compute)


def table1_bases(window: int) -> dict[str, dict]:
    """Table 1's two estimators, top vector only (the paper's R is R(v1)): update SED and held-out gradient SED."""
    return {"update SED": dict(rows="update", window=window, k=1),
            "gradient SED": dict(rows="gradient", batch="held-out", window=window, k=1)}


def multitask_bases(op_index: int, window: int) -> dict[str, dict]:
    """Section 4's two estimators for op ``op_index``: the shared attention update and the op's own gradient (k = 1)."""
    return {"aggregated update SED": dict(rows="update", window=window, k=1),
            "per-op gradient SED": dict(rows=f"gradient_{op_index}", batch="held-out", window=window, k=1)}


def ablation_bases(window: int, windows: list[int], ks: list[int]) -> dict[str, dict]:
    """Table 2's window, rank and batch sweep as one set of bases (they share the random median).

    ``W=<W>`` (top vector) for each window but the canonical one; ``W=<window> top-<max k>``, the
    canonical window's top vectors, whose first k give the rank-k rows and whose first is the
    canonical basis; ``training batch``: the canonical basis on a fixed batch of training pairs.
    """
    bases = {f"W={w}": dict(rows="gradient", window=w, k=1) for w in windows if w != window}
    bases[f"W={window} top-{max([1, *ks])}"] = dict(rows="gradient", window=window, k=max([1, *ks]))
    bases["training batch"] = dict(rows="gradient", batch="training", window=window, k=1)
    return bases


def canonical_bases(window: int) -> dict[str, dict]:
    """The canonical gradient-SED basis (held-out batch, ``window``, top vector) alone, for the eps and probe sweeps."""
    return {"canonical": dict(rows="gradient", window=window, k=1)}


def peak_and_final(curve: pd.DataFrame, index: int | None = 0, from_step: int = 0) -> pd.DataFrame:
    """Peak R (and its step) and final R of each estimator; ``index=None`` takes the max over basis vectors.

    The peak is taken over steps >= ``from_step`` (the last step if none is): pass the first step
    whose rolling window is full (:func:`full_window_step`), since a basis built from fewer rows is
    a smaller window, not the estimator the table names (it is the one update at the first checkpoint).
    """
    c = curve if index is None else curve[curve["index"] == index]
    per_step = c.groupby(["estimator", "step"]).R.max().reset_index()
    out = []
    for est, g in per_step.groupby("estimator"):
        g = g.sort_values("step")
        full = g[g.step >= min(from_step, g.step.max())]
        top = full.loc[full.R.idxmax()]
        out.append(dict(estimator=est, peak_R=float(top.R), peak_step=int(top.step),
                        final_R=float(g.R.iloc[-1]), final_step=int(g.step.iloc[-1])))
    return pd.DataFrame(out)


def full_window_step(window: int, checkpoint_every: int) -> int:
    """First step at which a rolling window over checkpoints holds ``window`` rows of both kinds.

    Update rows start at the second checkpoint (a_1 - a_0), so checkpoint ``window`` (step
    ``window * checkpoint_every``) is the first with a full window; gradient rows are full one
    checkpoint earlier, and both estimators are read from the same step.
    """
    return window * checkpoint_every


def peak_row(curve: pd.DataFrame, estimator: str, setting: str, value, top: int = 1, from_step: int = 0) -> dict:
    """One row of table 2: peak and final R of ``estimator`` (the largest over its first ``top`` vectors),
    the peak over steps >= ``from_step``."""
    c = curve[(curve.estimator == estimator) & (curve["index"] < top)]
    s = peak_and_final(c, index=None, from_step=from_step).iloc[0]
    return dict(setting=setting, value=str(value), peak_R=s.peak_R, peak_step=s.peak_step, final_R=s.final_R,
                final_step=s.final_step)


def table2(sweep: pd.DataFrame, eps_curves: dict[float, pd.DataFrame], probe_curves: dict[int, pd.DataFrame],
           window: int, windows: list[int], ks: list[int], checkpoint_every: int = 0) -> pd.DataFrame:
    """Table 2 of the paper, from the curves of :func:`ablation_bases` (``sweep``) and of
    :func:`canonical_bases` at each eps and probe seed.

    Rows (setting, value, peak_R, peak_step, final_R, final_step): ``window W`` per W; ``rank k
    (max R over top k)`` per k; ``eps / ||a||`` and ``probe seed`` per value; ``gradient batch B``
    for the held-out batch (canonical) and the training batch. Each peak is read where its own
    window is full (:func:`full_window_step`; ``checkpoint_every=0`` reads every step).
    """
    top = f"W={window} top-{max([1, *ks])}"
    full = full_window_step(window, checkpoint_every)
    rows = [peak_row(sweep, top if w == window else f"W={w}", "window W", w,
                     from_step=full_window_step(w, checkpoint_every)) for w in windows]
    rows += [peak_row(sweep, top, "rank k (max R over top k)", k, top=k, from_step=full) for k in ks]
    rows += [peak_row(c, "canonical", "eps / ||a||", eps, from_step=full) for eps, c in eps_curves.items()]
    rows += [peak_row(c, "canonical", "probe seed", seed, from_step=full) for seed, c in probe_curves.items()]
    rows += [peak_row(sweep, top, "gradient batch B", "held-out (canonical)", from_step=full),
             peak_row(sweep, "training batch", "gradient batch B", "training", from_step=full)]
    return pd.DataFrame(rows)


def per_example_table(model: ModularTransformer, names: list[str], run: TrainingRun, gradient_rows: torch.Tensor,
                      batch, probes, window: int = 20, k: int = 3, n_random: int = 20,
                      eps_rel: float = 0.005) -> pd.DataFrame:
    """Table 3 of the paper: R of per-example gradient SVD directions at three single checkpoints.

    At ``init`` (the first checkpoint), ``mid`` (the checkpoint nearest half the grokking
    step, or half the run if it never grokked) and ``post-grok`` (the last checkpoint),
    take the (n, D) per-example attention gradients of ``batch`` (x, y, mask; head 0) and
    measure R (eq. 6, on ``probes`` against ``n_random`` fixed random directions) of: the
    mean gradient; the top-``k`` right singular vectors of the centred matrix; the
    fixed-batch gradient direction itself (``W = 1``, from ``gradient_rows``); rolling
    gradient SED over ``window`` checkpoints. Rows: phase, step, estimator, R_max (max over
    a basis's vectors), mean_in_top3_span (length of the unit mean gradient's projection
    onto the top-k span: 0 orthogonal, 1 inside it). ``model`` is loaded in place.
    """
    g = run.grokking_step or int(run.history.step.max())
    steps = [s for s, _ in run.checkpoints]
    phases = {"init": 0, "mid": int(np.argmin([abs(s - g / 2) for s in steps])), "post-grok": len(steps) - 1}
    rnd = random_unit_directions(len(gradient_rows[0]), n_random, seed=0)
    out = []
    for phase, t in phases.items():
        model.load_state_dict(run.checkpoints[t][1])
        mean, top = per_example_svd(model, names, batch[0], batch[1][:, 0], k)
        dirs = {"mean gradient": mean[None], f"per-example SVD top-{k}": top,
                "W = 1": normalised(gradient_rows)[t],
                f"W = {window} top-{k}": rolling_svd_basis(gradient_rows, t, window, k)}
        df = coupling_at_checkpoint(model, names, {name: v for name, v in dirs.items() if len(v)}, rnd, *probes,
                                    eps_rel=eps_rel)
        span = float(torch.linalg.norm(top @ (mean / mean.norm())))
        for est, e in df.groupby("estimator"):
            out.append(dict(phase=phase, step=run.checkpoints[t][0], estimator=est, R_max=float(e.R.max()),
                            mean_in_top3_span=span))
    return pd.DataFrame(out)


def projection_log(runs: dict[tuple, TrainingRun], every: int = 1) -> pd.DataFrame:
    """The per-step logs of projected runs (``TrainingRun.projection``, study 5), stacked.

    ``runs`` maps (op, seed, flavour, condition) to a run; runs without a log (the control)
    are left out. ``every > 1`` averages each column over bins of ``every`` steps (``step``:
    the bin's first step). Rows: op, seed, flavour, condition, step and the logged columns.
    """
    tables = []
    for (op, seed, flavour, condition), run in runs.items():
        if run.projection is None or not len(run.projection):
            continue
        log = run.projection
        if every > 1:
            log = log.assign(step=log.step // every * every).groupby("step", as_index=False).mean()
        tables.append(log.assign(op=op, seed=seed, flavour=flavour, condition=condition))
    if not tables:
        return pd.DataFrame(columns=["op", "seed", "flavour", "condition", "step", *ProjectedStep.LOG_COLUMNS])
    out = pd.concat(tables, ignore_index=True)
    return out[["op", "seed", "flavour", "condition", "step", *ProjectedStep.LOG_COLUMNS]]


def projection_summary(log: pd.DataFrame) -> pd.DataFrame:
    """Per projected run (op, seed, flavour, condition) of a per-step :func:`projection_log`: steps logged,
    mean ``kept_share`` and ``step_kept_share`` over its steps, median ``step_norm / natural_norm``, and
    ``attention_norm`` after its first and last step."""
    log = log.assign(step_over_natural=log.step_norm / log.natural_norm).sort_values("step")
    return (log.groupby(["op", "seed", "flavour", "condition"])
            .agg(steps=("step", "size"), mean_kept_share=("kept_share", "mean"),
                 mean_step_kept_share=("step_kept_share", "mean"),
                 median_step_over_natural=("step_over_natural", "median"),
                 first_attention_norm=("attention_norm", "first"), last_attention_norm=("attention_norm", "last"))
            .reset_index())


def multitask_curves(run: TrainingRun, model_cfg: ModelConfig, batch, p: int, window: int = 20, R_every: int = 1,
                     n_probes: int = 1024, n_random: int = 20, eps_rel: float = 0.005, ops: tuple[str, ...] = OPS,
                     device: str = "cpu", progress: bool = True) -> pd.DataFrame:
    """Section 4 of the paper: aggregated update SED vs per-op gradient SED on a multitask model.

    ``batch`` is the fixed batch (x, y, mask) of eq. 3 over all ``ops`` (the notebook's: held-out
    pairs). For each op i, R of the top (k = 1) rolling-SVD vector over ``window`` checkpoints of
    (a) the shared attention update (which mixes every op) and (b) op i's own loss gradient,
    measured on op i's head and its probe pairs, every ``R_every``-th checkpoint and the last
    (:func:`multitask_bases`). Rows: those of :func:`gradtools.sed.coupling_curve` plus ``op``.
    The notebook computes the same per op in parallel with :func:`coupling_table`.
    """
    rows = {"held-out": sed_rows(run, model_cfg, batch, progress=progress, device=device)}
    at = checkpoint_grid(len(run.checkpoints), R_every)
    out = []
    for i, op in enumerate(ops):
        c = coupling_of_run(run, model_cfg, rows, multitask_bases(i, window), at, probe_pairs(op, p, n_probes, seed=0),
                            op_index=i, n_random=n_random, eps_rel=eps_rel, device=device, progress=progress,
                            desc=f"multitask R {op}")
        out.append(c.assign(op=op))
    return pd.concat(out, ignore_index=True)
