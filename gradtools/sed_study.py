"""Studies 4 and 5 from trained runs to tables: cached runs, SED bases per checkpoint, R curves.

The notebooks 04_sed_coupling and 05_sed_interventions call these; each
function is one step of the data path (settings -> cached run -> rows ->
bases -> R table), so a notebook reads top to bottom.
"""
from __future__ import annotations

import hashlib
import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .cache import cached_torch
from .modular_arithmetic import (OPS, ModelConfig, ModularTransformer, TrainConfig, TrainingRun,
                                 attention_parameter_names, modular_data, train)
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
    ops = (ops,) if isinstance(ops, str) else tuple(ops)
    model_cfg = ModelConfig(p=p, n_ops=len(ops), **model)
    train_cfg = TrainConfig(**training)
    settings = dict(ops=ops, p=p, train_fraction=train_fraction, seed=seed, data_seed=DATA_SEED,
                    model=asdict(model_cfg), training=asdict(train_cfg), condition=condition,
                    flavour=flavour if condition != "A" else None, k=k, window=window)
    if condition in ("B", "C"):  # only the SED conditions depend on it
        settings["sed_every"] = sed_every
    path = Path(cache) / run_name(**settings)

    def compute() -> TrainingRun:
        data = modular_data(ops, p, train_fraction, DATA_SEED)
        names = attention_parameter_names(ModularTransformer(model_cfg))
        spec = CONDITIONS[condition]
        projection = None if spec is None else ProjectedStep(names, spec[0], spec[1], flavour, k, window, seed, sed_every)
        return train(data, model_cfg, train_cfg, seed, projection=projection,
                     desc=f"{'+'.join(ops)} seed {seed} {condition} {flavour if spec else ''}".strip(), device=device)

    return cached_torch(path, compute)


def _cached_run_kwargs(kwargs: dict) -> TrainingRun:
    return cached_run(**kwargs)


def cached_runs(jobs: list[dict], workers: int = 1) -> list[TrainingRun]:
    """:func:`cached_run` for every dict of keyword arguments in ``jobs``, on ``workers`` processes.

    Each job caches its own file, so an interrupted batch resumes where it stopped.
    """
    if workers <= 1:
        return [cached_run(**job) for job in tqdm(jobs, desc="runs")]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        return list(tqdm(pool.map(_cached_run_kwargs, jobs), total=len(jobs), desc="runs"))


def fixed_batch(ops, p: int, train_fraction: float, size: int, seed: int):
    """The fixed gradient batch B of eq. 3: ``size`` training pairs drawn once with ``seed``."""
    data = modular_data(ops, p, train_fraction, DATA_SEED)
    idx = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(seed))[:size]
    return data.x_train[idx], data.y_train[idx], data.mask_train[idx]


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


def peak_and_final(curve: pd.DataFrame, index: int | None = 0) -> pd.DataFrame:
    """Peak R (and its step) and final R of each estimator; ``index=None`` takes the max over basis vectors."""
    c = curve if index is None else curve[curve["index"] == index]
    per_step = c.groupby(["estimator", "step"]).R.max().reset_index()
    out = []
    for est, g in per_step.groupby("estimator"):
        g = g.sort_values("step")
        top = g.loc[g.R.idxmax()]
        out.append(dict(estimator=est, peak_R=float(top.R), peak_step=int(top.step),
                        final_R=float(g.R.iloc[-1]), final_step=int(g.step.iloc[-1])))
    return pd.DataFrame(out)


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


def multitask_curves(run: TrainingRun, model_cfg: ModelConfig, batch, p: int, window: int = 20, R_every: int = 1,
                     n_probes: int = 1024, n_random: int = 20, eps_rel: float = 0.005, ops: tuple[str, ...] = OPS,
                     device: str = "cpu", progress: bool = True) -> pd.DataFrame:
    """Section 4 of the paper: aggregated update SED vs per-op gradient SED on a multitask model.

    ``batch`` is the fixed batch (x, y, mask) of eq. 3 over all ``ops``. For each op i,
    R of the top (k = 1) rolling-SVD vector over ``window`` checkpoints of (a) the shared
    attention update (which mixes every op) and (b) op i's own loss gradient, measured on
    op i's head and its probe pairs, every ``R_every``-th checkpoint. Rows: those of
    :func:`gradtools.sed.coupling_curve` plus ``op``.
    """
    rows = sed_rows(run, model_cfg, batch, progress=progress, device=device)
    at = list(range(0, len(run.checkpoints), R_every))
    update = rolling_bases(rows["update"], window, 1, at)
    model = ModularTransformer(model_cfg).to(device)
    names = attention_parameter_names(model)
    out = []
    for i, op in enumerate(ops):
        per_op = rolling_bases(rows[f"gradient_{i}"], window, 1, at)
        c = coupling_curve(model, run.checkpoints, names,
                           {"aggregated update SED": update, "per-op gradient SED": per_op}, at,
                           *probe_pairs(op, p, n_probes, seed=0), op_index=i,
                           n_random=n_random, eps_rel=eps_rel, progress=progress, desc=f"multitask R {op}")
        out.append(c.assign(op=op))
    return pd.concat(out, ignore_index=True)
