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

import pandas as pd
import torch
from tqdm.auto import tqdm

from .cache import cached_torch
from .modular_arithmetic import (ModelConfig, ModularTransformer, TrainConfig, TrainingRun,
                                 attention_parameter_names, modular_data, train)
from .projected_step import CONDITIONS, ProjectedStep
from .sed import attention_gradients, attention_vector, rolling_svd_basis, update_rows

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
