"""The training loop for the causal LMs of :mod:`gradtools.lm`: batches in, checkpoints out.

One plain AdamW loop (linear warm-up, then a constant rate) that writes
``save_pretrained`` checkpoints at chosen steps, so that every analysis reads a
checkpoint as it would read a real suite's revision (:func:`gradtools.lm.load_causal_lm`).

* Batches come from ``batch_fn(step)``, a pure function of the step: a resumed
  run sees the same data without any data-loader state.
* Checkpoint ``step-000123`` holds the parameters after 123 updates
  (``step-000000`` is the initialisation). Each is written to a temporary folder
  and renamed into place, so a killed run never leaves half a checkpoint.
* ``resume.pt`` (model, optimiser, schedule, step, loss log) is written
  atomically every ``resume_every`` steps; :func:`train_causal_lm` restarts
  from it, and returns at once when the run is complete.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .cache import save_torch
from .lm import load_causal_lm

Batch = dict[str, Tensor]


def checkpoint_path(out_dir: str | Path, step: int) -> Path:
    """The folder of the checkpoint after ``step`` updates."""
    return Path(out_dir) / f"step-{step:06d}"


def saved_steps(out_dir: str | Path) -> list[int]:
    """The steps whose checkpoints exist under ``out_dir``, ascending."""
    return sorted(int(p.name.split("-")[1]) for p in Path(out_dir).glob("step-*") if p.is_dir())


@contextmanager
def quiet_progress_bars():
    """No ``transformers`` progress bars inside the block (restored afterwards)."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def save_checkpoint(model: nn.Module, out_dir: str | Path, step: int) -> Path:
    """``model.save_pretrained`` into ``step-NNNNNN``, atomically (temporary folder, then rename)."""
    final = checkpoint_path(out_dir, step)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
    try:
        with quiet_progress_bars():  # transformers >= 5 draws a "Writing model shards" bar per save
            model.save_pretrained(tmp)
        if final.exists():  # a resumed run rewrites the same parameters: replace, never mix
            shutil.rmtree(final)
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return final


def load_checkpoint(out_dir: str | Path, step: int, dtype: torch.dtype = torch.float32) -> nn.Module:
    """The model saved at ``step`` (eval mode)."""
    return load_causal_lm(checkpoint_path(out_dir, step), dtype=dtype)


def checkpoint_params(out_dir: str | Path, step: int, dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
    """The named parameters saved at ``step`` (``named_parameters`` order and names), detached."""
    return {name: p.detach() for name, p in load_checkpoint(out_dir, step, dtype).named_parameters()}


def warmup_constant(warmup_steps: int) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up over ``warmup_steps``, then constant."""
    return lambda step: min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0


def train_causal_lm(model: nn.Module, batch_fn: Callable[[int], Batch],
                    loss_fn: Callable[[nn.Module, Batch], Tensor], *, steps: int,
                    checkpoint_steps: Iterable[int], out_dir: str | Path, lr: float,
                    warmup_steps: int = 0, betas: tuple[float, float] = (0.9, 0.95),
                    weight_decay: float = 0.1, grad_clip: float | None = None,
                    resume_every: int = 200, progress: bool = True,
                    lr_lambda: Callable[[int], float] | None = None) -> pd.DataFrame:
    """Train ``model`` in place for ``steps`` AdamW updates; save checkpoints at ``checkpoint_steps``.

    Args:
        model: a causal LM (any ``nn.Module`` with ``save_pretrained``).
        batch_fn: ``batch_fn(step)`` -> the batch of that update (a pure function of step).
        loss_fn: ``loss_fn(model, batch)`` -> scalar training loss.
        checkpoint_steps: steps (0..steps) after which the parameters are saved.
        out_dir: folder for ``step-NNNNNN/`` checkpoints and ``resume.pt``.
        lr_lambda: learning-rate factor of the step (``LambdaLR``), e.g. a warm-up then cosine
            decay; default: :func:`warmup_constant` of ``warmup_steps``.

    Returns:
        the training log, one row per update: ``step`` (1..steps), ``loss`` (before the update), ``lr``.
        After a complete run, ``model`` holds the final parameters.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = sorted({int(s) for s in checkpoint_steps})
    if wanted and not 0 <= wanted[0] <= wanted[-1] <= steps:
        raise ValueError(f"checkpoint steps must lie in 0..{steps}")
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=betas, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda or warmup_constant(warmup_steps))
    start, log = 0, []
    resume = out_dir / "resume.pt"
    if resume.exists():
        state = torch.load(resume, weights_only=False)
        if state["steps"] != steps:
            raise ValueError(f"{resume} belongs to a run of {state['steps']} steps, not {steps}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start, log = state["step"], state["log"]
        missing = [s for s in wanted if s < start and not checkpoint_path(out_dir, s).exists()]
        if missing:
            raise ValueError(f"{out_dir} was trained past steps {missing[:5]} without saving them; "
                             "train into a new folder to get those checkpoints")

    def save_resume(step: int) -> None:
        save_torch({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(), "step": step, "steps": steps, "log": log}, resume)

    model.train()
    bar = tqdm(range(start, steps), initial=start, total=steps, desc="training", disable=not progress)
    for step in bar:
        if step in wanted and not checkpoint_path(out_dir, step).exists():
            save_checkpoint(model, out_dir, step)
        if step % resume_every == 0 and step != start:
            save_resume(step)
        loss = loss_fn(model, batch_fn(step))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        lr_now = optimizer.param_groups[0]["lr"]
        optimizer.step()
        schedule.step()
        log.append((step + 1, loss.item(), lr_now))
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    if steps in wanted and not checkpoint_path(out_dir, steps).exists():
        save_checkpoint(model, out_dir, steps)
    if start < steps or not resume.exists():
        save_resume(steps)
    model.eval()
    return pd.DataFrame(log, columns=["step", "loss", "lr"])
