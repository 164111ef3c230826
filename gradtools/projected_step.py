r"""Rank-k projected optimiser steps on the attention parameters (gradient-SED paper, section 5).

With an orthonormal basis :math:`V \in \mathbb{R}^{k \times D}` of attention
space and :math:`P = V^\top V`, the five conditions of the paper are

* A: the natural step (no projection);
* B: remove the SED subspace, :math:`(I - P)`;  C: keep only it, :math:`P`;
* D / E: the same with a random orthonormal V drawn afresh every step.

Two flavours: ``"update"`` projects AdamW's step on attention,
:math:`a \leftarrow a + P_\ast(\mathrm{AdamW}(g) - a)` (moments still see the
full gradient, weight decay is projected with the rest); ``"gradient"``
projects the gradient before AdamW, :math:`g_a \leftarrow P_\ast g_a`, so the
moments only see the projected gradient. AdamW's per-coordinate scaling and
its decoupled weight decay then act on every coordinate, so in the gradient
flavour it is the optimiser's *input* that has no component in the removed
subspace (the step itself does too for a plain SGD optimiser).

The SED basis is a rolling SVD (sed.top_right_singular_vectors) of the last
W *unprojected* vectors of the object being projected, so it tracks what the
optimiser would have done, not what the constraint let it do. As in study 4,
one vector is recorded every ``sed_every`` steps (the paper's checkpoint
spacing, 25): the raw update summed since the last record (update flavour,
the analogue of :math:`a_t - a_{t-1}` between checkpoints) or the raw
gradient of that step (gradient flavour). The basis is recomputed at each
record, this step's vector included, and held in between. The gradient
flavour's basis therefore comes from the training minibatch gradient AdamW
receives, not from study 4's fixed held-out batch: section 5 of the paper
says only "the current SED basis", and this is the gradient being projected.

Every step logs what decides how much a condition changes training
(:meth:`ProjectedStep.history`): with :math:`u` the natural object (AdamW's
unprojected attention step in the update flavour, the attention gradient in
the gradient flavour), :math:`\Pi` the kept projection (:math:`P` or
:math:`I - P`) and :math:`s` the attention step actually taken,

* ``kept_share`` :math:`\|\Pi u\|^2 / \|u\|^2`: the share of the natural update
  (gradient) the condition keeps; near 1 the condition is the control in all but name;
* ``step_kept_share`` :math:`\|\Pi s\|^2 / \|s\|^2`: 1 in the update flavour by
  construction; in the gradient flavour, how much of AdamW's step (rescaled per
  coordinate, plus weight decay) stays in the kept part;
* ``natural_norm`` :math:`\|u\|`, ``step_norm`` :math:`\|s\|`, ``attention_norm``
  :math:`\|a\|` after the step (the update flavour projects weight decay too, so
  under "keep" the attention weights outside the subspace stop decaying).
"""
from __future__ import annotations

import pandas as pd
import torch
from torch import Tensor, nn

from .sed import top_right_singular_vectors

CONDITIONS = {  # condition -> (basis, mode); None is the control
    "A": None,
    "B": ("sed", "remove"),
    "C": ("sed", "keep"),
    "D": ("random", "remove"),
    "E": ("random", "keep"),
}


def random_orthonormal_basis(dim: int, k: int, generator: torch.Generator | None = None,
                             dtype: torch.dtype = torch.float64) -> Tensor:
    """(k, dim) rows spanning a uniformly random k-dimensional subspace (QR of a float64 Gaussian matrix)."""
    q, _ = torch.linalg.qr(torch.randn(dim, k, generator=generator, dtype=torch.float64))
    return q.T.contiguous().to(dtype)


def project(vector: Tensor, basis: Tensor, mode: str) -> Tensor:
    r"""``"keep"``: :math:`V^\top V x`; ``"remove"``: :math:`x - V^\top V x`. ``basis`` (k, D) orthonormal rows, may be empty."""
    kept = basis.T @ (basis @ vector) if len(basis) else torch.zeros_like(vector)
    if mode == "keep":
        return kept
    if mode == "remove":
        return vector - kept
    raise ValueError(f"mode must be 'keep' or 'remove', not {mode!r}")


class ProjectedStep:
    """Replaces ``optimizer.step()`` with a rank-k projected step on the named (attention) parameters.

    Args:
        names: the parameters to constrain (the rest step naturally).
        basis: ``"sed"`` (rolling SVD of the last ``window`` unprojected vectors),
            ``"random"`` (a fresh random orthonormal basis each step) or ``"empty"``.
        mode: ``"keep"`` (P) or ``"remove"`` (I - P).
        flavour: ``"update"`` (project AdamW's step) or ``"gradient"`` (project the gradient before it).
        k: rank; window: SED window W; sed_every: steps between recorded SED vectors;
        seed: for the random bases.
    """

    def __init__(self, names: list[str], basis: str, mode: str, flavour: str, k: int = 3,
                 window: int = 20, seed: int = 0, sed_every: int = 1):
        if basis not in ("sed", "random", "empty") or flavour not in ("update", "gradient"):
            raise ValueError(f"basis {basis!r} / flavour {flavour!r} unknown")
        project(torch.zeros(1), torch.zeros(0, 1), mode)  # validates mode
        self.names, self.basis_kind, self.mode, self.flavour = names, basis, mode, flavour
        self.k, self.window = k, window
        self.generator = torch.Generator().manual_seed(seed)
        # ring buffer of the last W raw vectors and its W x W Gram matrix, updated one row per
        # step (W D flops) instead of re-multiplying the whole window (W^2 D) every step
        self._rows: Tensor | None = None
        self._gram = torch.zeros(window, window, dtype=torch.float64)
        self._count = 0  # vectors recorded
        self.sed_every, self._steps = sed_every, 0
        self._pending: Tensor | None = None  # raw updates summed since the last record
        self._basis: Tensor | None = None
        self._log: list[Tensor] = []  # one row of LOG_COLUMNS per step

    def _params(self, model: nn.Module) -> list[nn.Parameter]:
        params = dict(model.named_parameters())
        return [params[n] for n in self.names]

    def basis(self, raw: Tensor) -> Tensor:
        """(k, D) basis for this step, given this step's unprojected vector ``raw`` (D,)."""
        if self.basis_kind == "empty":
            return raw.new_zeros(0, len(raw))
        if self.basis_kind == "random":
            return random_orthonormal_basis(len(raw), self.k, self.generator, raw.dtype).to(raw.device)
        if self._rows is None:
            self._rows = raw.new_zeros(self.window, len(raw), dtype=torch.float64)
            self._gram = self._gram.to(raw.device)
            self._pending = torch.zeros_like(self._rows[0])
        if self.flavour == "update":
            self._pending += raw.detach()
        record = self._steps % self.sed_every == 0
        self._steps += 1
        if not record:
            return self._basis
        slot = self._count % self.window
        self._rows[slot] = self._pending if self.flavour == "update" else raw.detach().double()
        self._pending = torch.zeros_like(self._pending)
        self._count += 1
        dots = self._rows @ self._rows[slot]
        self._gram[slot, :] = dots
        self._gram[:, slot] = dots
        n = min(self._count, self.window)
        v, _ = top_right_singular_vectors(self._rows[:n], self.k, gram=self._gram[:n, :n])
        self._basis = v.to(raw.dtype)
        return self._basis

    @staticmethod
    def _flat(tensors) -> Tensor:
        return torch.cat([t.reshape(-1) for t in tensors])

    @staticmethod
    def _unflat(vector: Tensor, like: list[Tensor]) -> list[Tensor]:
        out, offset = [], 0
        for t in like:
            out.append(vector[offset:offset + t.numel()].view_as(t))
            offset += t.numel()
        return out

    LOG_COLUMNS = ("natural_norm", "kept_share", "step_norm", "step_kept_share", "attention_norm")

    @torch.no_grad()
    def step(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """One projected optimiser step; gradients must already be in ``.grad``."""
        params = self._params(model)
        before = self._flat(params).clone()
        if self.flavour == "gradient":
            natural = self._flat([p.grad if p.grad is not None else torch.zeros_like(p) for p in params])
            basis = self.basis(natural)
            kept = project(natural, basis, self.mode)
            for p, new in zip(params, self._unflat(kept, params)):
                p.grad = new.clone()
            optimizer.step()
            after = self._flat(params)
        else:
            optimizer.step()
            natural = self._flat(params) - before
            basis = self.basis(natural)
            kept = project(natural, basis, self.mode)
            after = before + kept
            for p, new in zip(params, self._unflat(after, params)):
                p.copy_(new)
        self._record(natural, kept, after - before, after, basis)

    def _record(self, natural: Tensor, kept: Tensor, taken: Tensor, after: Tensor, basis: Tensor) -> None:
        """Append this step's row of :data:`LOG_COLUMNS` (float64; a share is 0 / 0 = NaN when its vector is zero)."""
        def share(part: Tensor, whole: Tensor) -> Tensor:
            return part.double().square().sum() / whole.double().square().sum()

        self._log.append(torch.stack([natural.double().norm(), share(kept, natural), taken.double().norm(),
                                      share(project(taken, basis, self.mode), taken), after.double().norm()]))

    def history(self) -> pd.DataFrame:
        """One row per step taken: ``step`` (the training step it moved from, 0-based) and :data:`LOG_COLUMNS`."""
        # kept on the model's device until now: no host synchronisation per step
        values = torch.stack(self._log).cpu().numpy() if self._log else torch.zeros(0, len(self.LOG_COLUMNS)).numpy()
        df = pd.DataFrame(values, columns=list(self.LOG_COLUMNS))
        df.insert(0, "step", range(len(df)))
        return df
