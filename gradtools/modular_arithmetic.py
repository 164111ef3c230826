r"""Grokking modular arithmetic: data, the 2-layer pre-norm encoder, its training loop.

Gradient-SED paper (papers/gradient-sed-linear-centroids.txt), section 2. The
task is :math:`y = (a \circ b) \bmod p` for :math:`\circ \in` {add, sub, mul,
sq}, where sq is :math:`a^2 + b^2`; mul leaves out pairs with a zero operand
(they would all map to 0). The input is the two tokens ``(a, b)``; the readout
is at position 0.

Single-task and multitask models are the same class: a shared encoder and one
linear head per op. Multitask trains on the sum of the per-op losses over the
same input pairs, which is why the data holds a label and a validity mask per
op for every pair.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

OPS = ("add", "sub", "mul", "sq")
GROKKING_THRESHOLD = 0.95


def op_result(op: str, a: Tensor, b: Tensor, p: int) -> Tensor:
    """``(a op b) mod p`` elementwise; sq is ``a^2 + b^2``."""
    if op == "add":
        return (a + b) % p
    if op == "sub":
        return (a - b) % p
    if op == "mul":
        return (a * b) % p
    if op == "sq":
        return (a * a + b * b) % p
    raise ValueError(f"unknown op {op!r}; choose from {OPS}")


def op_valid(op: str, a: Tensor, b: Tensor) -> Tensor:
    """Which pairs belong to the op's dataset: all, except pairs with a zero operand for mul."""
    if op == "mul":
        return (a != 0) & (b != 0)
    return torch.ones_like(a, dtype=torch.bool)


@dataclass
class ModularData:
    """A fixed train/test split of the pairs ``(a, b)``, labelled for each op.

    Attributes:
        ops: the ops, one head each.
        p: the modulus.
        x_train, x_test: (n, 2) long tokens ``(a, b)``.
        y_train, y_test: (n, n_ops) long answers.
        mask_train, mask_test: (n, n_ops) bool, False where the pair is not in that op's dataset.
    """

    ops: tuple[str, ...]
    p: int
    x_train: Tensor
    y_train: Tensor
    mask_train: Tensor
    x_test: Tensor
    y_test: Tensor
    mask_test: Tensor


def modular_data(ops: str | tuple[str, ...], p: int, train_fraction: float, seed: int) -> ModularData:
    """All pairs valid for at least one op, shuffled with ``seed`` and split by ``train_fraction``.

    A single op keeps only its valid pairs (mul: both operands non-zero); for
    several ops the split is shared, and mul's loss and accuracy skip its invalid pairs.
    """
    ops = (ops,) if isinstance(ops, str) else tuple(ops)
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    a, b = a.reshape(-1), b.reshape(-1)
    mask = torch.stack([op_valid(op, a, b) for op in ops], dim=1)
    keep = mask.any(dim=1)
    a, b, mask = a[keep], b[keep], mask[keep]
    y = torch.stack([op_result(op, a, b, p) for op in ops], dim=1)
    x = torch.stack([a, b], dim=1)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_train = int(round(train_fraction * len(x)))
    tr, te = perm[:n_train], perm[n_train:]
    return ModularData(ops, p, x[tr], y[tr], mask[tr], x[te], y[te], mask[te])


@dataclass
class ModelConfig:
    """Sizes of :class:`ModularTransformer` (the paper's: p 97, d 128, 4 heads, MLP 256, 2 layers)."""

    p: int = 97
    n_ops: int = 1
    d_model: int = 128
    n_heads: int = 4
    d_mlp: int = 256
    n_layers: int = 2


class Attention(nn.Module):
    """Multi-head self-attention; ``qkv`` and ``out`` are the "attention parameters" of the paper."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, h: Tensor) -> Tensor:
        B, L, D = h.shape
        q, k, v = self.qkv(h).view(B, L, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)
        # written out (not scaled_dot_product_attention) so torch.func transforms see plain ops
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D // self.n_heads), dim=-1)
        return self.out((weights @ v).transpose(1, 2).reshape(B, L, D))


class Block(nn.Module):
    """Pre-norm encoder block: ``h + attn(ln(h))``, then ``h + mlp(ln(h))`` with GELU."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg.d_model, cfg.n_heads)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_mlp), nn.GELU(), nn.Linear(cfg.d_mlp, cfg.d_model))

    def forward(self, h: Tensor) -> Tensor:
        h = h + self.attn(self.ln1(h))
        return h + self.mlp(self.ln2(h))


class ModularTransformer(nn.Module):
    r"""Token + position embedding, pre-norm encoder blocks, final LayerNorm, one linear head per op.

    ``forward(x)``: (B, 2) tokens -> (B, n_ops, p) logits, read at position 0.
    ``embed`` and ``forward_embedded`` split it at the embedded input
    :math:`e(x) \in \mathbb{R}^{2 \times d}`, the input of the centroid (sed.py).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.p, cfg.d_model)
        self.pos = nn.Parameter(torch.randn(2, cfg.d_model) * 0.02)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.heads = nn.ModuleList([nn.Linear(cfg.d_model, cfg.p) for _ in range(cfg.n_ops)])

    def embed(self, x: Tensor) -> Tensor:
        return self.tok(x) + self.pos

    def forward_embedded(self, e: Tensor) -> Tensor:
        h = e
        for block in self.blocks:
            h = block(h)
        h = self.ln_f(h)[:, 0]
        return torch.stack([head(h) for head in self.heads], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_embedded(self.embed(x))


def attention_parameter_names(model: nn.Module) -> list[str]:
    """Names of all attention weights and biases (every ``Attention`` module), in a fixed order."""
    return [name for name, _ in model.named_parameters() if ".attn." in name]


def per_op_losses(logits: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """(n_ops,) mean cross-entropy of each op over its valid examples (0 when it has none).

    logits (B, n_ops, p), y (B, n_ops), mask (B, n_ops).
    """
    ce = F.cross_entropy(logits.transpose(1, 2), y, reduction="none")  # (B, n_ops)
    m = mask.to(ce.dtype)
    return (ce * m).sum(0) / m.sum(0).clamp(min=1)


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, mask: Tensor, chunk: int = 4096) -> Tensor:
    """(n_ops,) accuracy of each op over its valid examples."""
    correct = torch.zeros(y.shape[1], device=x.device)
    for i in range(0, len(x), chunk):
        pred = model(x[i:i + chunk]).argmax(-1)
        correct += ((pred == y[i:i + chunk]) & mask[i:i + chunk]).sum(0)
    return (correct / mask.sum(0).clamp(min=1)).cpu()


@dataclass
class TrainConfig:
    """The paper's optimiser settings: AdamW lr 1e-3, wd 1.0, betas (0.9, 0.98), batch 512, clip 1.0."""

    lr: float = 1e-3
    weight_decay: float = 1.0
    betas: tuple[float, float] = (0.9, 0.98)
    batch_size: int = 512
    grad_clip: float = 1.0
    max_steps: int = 8000
    eval_every: int = 25
    checkpoint_every: int | None = None  # None: keep no checkpoints
    steps_after_grokking: int | None = None  # stop this many steps after grokking (None: run max_steps)
    train_eval_size: int = 1024  # training examples on which train accuracy and loss are recorded


@dataclass
class TrainingRun:
    """What one run records.

    Attributes:
        history: tidy table, one row per evaluation and op: step, op, loss, train_acc (both on
            ``train_eval_size`` training examples), test_acc (whole test split).
        checkpoints: ``(step, state_dict)`` every ``checkpoint_every`` steps, step 0 included.
        grokking_step: first evaluated step where every op's test accuracy is >= 0.95, else None.
        projection: for a run with a projected step (study 5), one row per optimiser step
            (:meth:`gradtools.projected_step.ProjectedStep.history`); None otherwise.
    """

    history: pd.DataFrame
    checkpoints: list[tuple[int, dict]] = field(default_factory=list)
    grokking_step: int | None = None
    projection: pd.DataFrame | None = None  # a class-level default, so runs cached before it existed load with None


def grokking_step(history: pd.DataFrame, threshold: float = GROKKING_THRESHOLD, op: str | None = None) -> int | None:
    """First evaluated step at which test accuracy is >= ``threshold`` (for every op, or for ``op``)."""
    h = history if op is None else history[history.op == op]
    reached = h.groupby("step").test_acc.min() >= threshold
    steps = reached[reached].index
    return int(steps[0]) if len(steps) else None


def train(data: ModularData, model_cfg: ModelConfig, train_cfg: TrainConfig, seed: int,
          projection=None, progress: bool = True, desc: str = "train", device: str = "cpu") -> TrainingRun:
    r"""Train a :class:`ModularTransformer` with AdamW on ``data``: the one loop of this model family.

    Each step draws a minibatch of ``batch_size`` training pairs (with
    replacement), minimises :math:`\sum_{op} L_{op}`, clips the gradient norm,
    and steps AdamW. ``projection`` (a :class:`gradtools.projected_step.ProjectedStep`)
    replaces ``optimizer.step()`` to constrain the attention update (study 5); what it logs
    per step is returned as ``projection``. Train/test accuracy is evaluated every
    ``eval_every`` steps. Checkpoints are kept on the CPU.
    """
    torch.manual_seed(seed)
    model = ModularTransformer(model_cfg).to(device)
    data = ModularData(data.ops, data.p, *(t.to(device) for t in (data.x_train, data.y_train, data.mask_train,
                                                                  data.x_test, data.y_test, data.mask_test)))
    opt = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr, betas=train_cfg.betas,
                            weight_decay=train_cfg.weight_decay)
    gen = torch.Generator().manual_seed(seed + 1)
    rows, checkpoints, grok = [], [], None
    stop_at = train_cfg.max_steps
    bar = tqdm(total=train_cfg.max_steps, desc=desc, disable=not progress, leave=False)
    step = 0
    while True:
        if step % train_cfg.eval_every == 0:
            model.eval()
            # train accuracy and loss on a fixed slice (the split is shuffled), test accuracy on all of test
            n = train_cfg.train_eval_size
            tr = accuracy(model, data.x_train[:n], data.y_train[:n], data.mask_train[:n])
            te = accuracy(model, data.x_test, data.y_test, data.mask_test)
            with torch.no_grad():
                loss = per_op_losses(model(data.x_train[:n]), data.y_train[:n], data.mask_train[:n])
            rows += [dict(step=step, op=op, loss=float(loss[i]), train_acc=float(tr[i]), test_acc=float(te[i]))
                     for i, op in enumerate(data.ops)]
            if grok is None and bool((te >= GROKKING_THRESHOLD).all()):
                grok = step
                if train_cfg.steps_after_grokking is not None:
                    stop_at = min(stop_at, step + train_cfg.steps_after_grokking)
            bar.set_postfix(test_acc=f"{float(te.min()):.2f}")
            model.train()
        if train_cfg.checkpoint_every and step % train_cfg.checkpoint_every == 0:
            checkpoints.append((step, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}))
        if step >= stop_at:
            break
        idx = torch.randint(len(data.x_train), (train_cfg.batch_size,), generator=gen).to(device)
        loss = per_op_losses(model(data.x_train[idx]), data.y_train[idx], data.mask_train[idx]).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
        if projection is None:
            opt.step()
        else:
            projection.step(model, opt)
        step += 1
        bar.update(1)
    bar.close()
    return TrainingRun(pd.DataFrame(rows), checkpoints, grok,
                       projection.history() if projection is not None else None)
