r"""Pairwise dot products of per-example gradients, captured inside the backward.

Shared-gradient-discovery, appendix D.2. For a linear layer with per-example
input :math:`X_i \in \mathbb{R}^{S \times d_{in}}` and output gradient
:math:`G_i \in \mathbb{R}^{S \times d_{out}}` (S positions of example i), the
weight gradient is :math:`\nabla W_i = G_i^\top X_i` and

.. math::
    \langle \nabla W_i, \nabla W_j \rangle
    = \sum_{s,t} (X_i X_j^\top)_{st} \, (G_i G_j^\top)_{st},

so the Gram matrix never needs the per-example gradients themselves ("ghost"
contraction, cost :math:`n m S T (d_{in} + d_{out})`). When the layer is small
next to :math:`S^2`, materialising :math:`\nabla W_i` (cost
:math:`(n S + m T) d_{in} d_{out} + n m d_{in} d_{out}`) is cheaper; the choice is
made per layer from these costs. Bias gradients :math:`\sum_s G_{i,s}` are
always materialised (they are small). Contributions of all chosen layers are
summed.

The capture is a context manager on the unmodified model: a forward hook wraps
each chosen layer's output in an identity autograd function whose backward
receives :math:`G` and accumulates into an (n x m) buffer on the model's device,
without host synchronisation. The backward pass is requested only towards a
dummy leaf that every tap depends on, so parameter gradients are never
computed and ``.grad`` fields are left untouched.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten, tree_map

try:  # GPT-2 style models use transformers' Conv1D (weight is d_in x d_out)
    from transformers.pytorch_utils import Conv1D
except ImportError:  # pragma: no cover - transformers is a dependency
    Conv1D = ()

LINEAR_TYPES = (nn.Linear,) + ((Conv1D,) if Conv1D else ())
GHOST_CHUNK_ELEMENTS = 2**25  # bound on the (rows*S) x (m*T) products of the ghost contraction
MATERIALISE_MAX_ELEMENTS = 2**28  # never materialise more per-example gradient entries than this
SYMMETRIC_CHUNKS, SYMMETRIC_MIN_N = 8, 64  # a square ghost Gram is built from 36 of its 64 blocks
MEMORY_WEIGHT = 60  # cost of writing and re-reading one ghost token product, in multiply-adds (fitted on CPU)
TOTAL = ""  # the key of a pass's Gram summed over layers (per_layer=False)
ALL = "all"  # layers="all": every parameter that requires grad (gradtools.gram_all)


@dataclass
class GradientGram:
    """Per-example gradient dot products.

    Attributes:
        dot: (n, n) Gram matrix, or (n, m) cross matrix when ``other`` was given.
        sqnorm: (n,) squared gradient norms of the examples of ``batch``.
        other_sqnorm: (m,) squared norms of the examples of ``other``, else None.
        layers: with ``per_layer=True``, ``{layer name: its (n x n) or (n x m) Gram}``; they sum to ``dot``.
    """

    dot: Tensor
    sqnorm: Tensor
    other_sqnorm: Tensor | None = None
    layers: dict[str, Tensor] | None = None

    def cosine(self) -> Tensor:
        """Cosine similarities, the shape of ``dot`` (a zero gradient gives nan)."""
        cols = self.sqnorm if self.other_sqnorm is None else self.other_sqnorm
        return self.dot / torch.sqrt(self.sqnorm[:, None] * cols[None, :])

    def offdiagonal_cosines(self) -> Tensor:
        """The cosines of the pairs i < j of a square Gram (for mean and std over pairs)."""
        if self.other_sqnorm is not None:
            raise ValueError("offdiagonal_cosines needs a square Gram (no `other`); use cosine()")
        n = self.dot.shape[0]
        i, j = torch.triu_indices(n, n, offset=1, device=self.dot.device)
        return self.cosine()[i, j]


# ---------------------------------------------------------------- layer choice

def is_linear(module: nn.Module) -> bool:
    return isinstance(module, LINEAR_TYPES)


def default_layers(model: nn.Module) -> dict[str, nn.Module]:
    """All linear layers except the unembedding and any layer whose weight is an embedding's."""
    output_embedding = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    embedding_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    return {name: m for name, m in model.named_modules()
            if is_linear(m) and m is not output_embedding and id(m.weight) not in embedding_weights}


def resolve_layers(model: nn.Module, layers: Iterable[str | nn.Module] | None) -> dict[str, nn.Module]:
    """Map the ``layers`` argument (None, names or modules) to ``{name: module}``, checked."""
    if isinstance(layers, str):
        layers = [layers]  # one layer's name, not its characters ("all" is handled by gradient_gram)
    if layers is None:
        chosen = default_layers(model)
    else:
        by_name = dict(model.named_modules())
        by_id = {id(m): name for name, m in by_name.items()}
        chosen = {}
        for layer in layers:
            if isinstance(layer, str):
                if layer not in by_name:
                    raise ValueError(f"model has no submodule named {layer!r}")
                chosen[layer] = by_name[layer]
            elif id(layer) in by_id:
                chosen[by_id[id(layer)]] = layer
            else:
                raise ValueError(f"{type(layer).__name__} given in `layers` is not a submodule of the model")
        bad = [name for name, m in chosen.items() if not is_linear(m)]
        if bad:
            raise ValueError(f"layers {bad} are not linear layers (nn.Linear or transformers Conv1D)")
    if not chosen:
        raise ValueError("the model has no linear layer (nn.Linear or transformers Conv1D) to take "
                         "gradients of, besides embeddings and the unembedding; pass `layers=` explicitly")
    return chosen


# ------------------------------------------------------------ contractions

def _sequence(t: Tensor) -> Tensor:
    """(n, ..., d) -> (n, S, d): every position between the example and feature dims."""
    return t.reshape(t.shape[0], -1, t.shape[-1])


def _use_ghost(n: int, m: int, s: int, t: int, d_in: int, d_out: int, symmetric: bool = False) -> bool:
    """Whether the ghost contraction is cheaper than materialising, by a cost model.

    Multiply-adds plus a memory term for the ghost (MEMORY_WEIGHT per token
    product written and read again). Materialised gradients go to a reused buffer,
    where writing them costs no more than the multiply-adds that make them
    (fitted on CPU: benchmarks/gram_cost_model.py).
    A square Gram's ghost computes only the blocks on and above the diagonal.
    """
    share = (SYMMETRIC_CHUNKS + 1) / (2 * SYMMETRIC_CHUNKS) if symmetric and n >= SYMMETRIC_MIN_N else 1.0
    ghost = share * n * m * s * t * (d_in + d_out) + MEMORY_WEIGHT * n * m * s * t
    materialise = ((n * s + m * t) + n * m) * d_in * d_out
    too_big = max(n, m) * d_in * d_out > MATERIALISE_MAX_ELEMENTS
    return ghost <= materialise or too_big


def _ghost_cross(xa: Tensor, ga: Tensor, xb: Tensor, gb: Tensor) -> Tensor:
    """sum_{s,t} (Xa_i Xb_j^T)_{st} (Ga_i Gb_j^T)_{st}, in row chunks to bound memory."""
    n, s, _ = xa.shape
    m, t, _ = xb.shape
    xb2, gb2 = xb.reshape(m * t, -1), gb.reshape(m * t, -1)
    rows = max(1, GHOST_CHUNK_ELEMENTS // max(1, s * m * t))
    out = []
    for start in range(0, n, rows):
        xc, gc = xa[start:start + rows], ga[start:start + rows]
        c = xc.shape[0]
        prod = (xc.reshape(c * s, -1) @ xb2.T).mul_(gc.reshape(c * s, -1) @ gb2.T)
        out.append(prod.reshape(c, s, m, t).sum(dim=(1, 3)))
    return torch.cat(out)


def _ghost_diag(x: Tensor, g: Tensor) -> Tensor:
    """Squared norms sum_{s,t} (X_i X_i^T)_{st} (G_i G_i^T)_{st}."""
    return ((x @ x.transpose(1, 2)) * (g @ g.transpose(1, 2))).sum(dim=(1, 2))


def _materialise(x: Tensor, g: Tensor, scratch: "_Scratch | None" = None) -> Tensor:
    """Per-example weight gradients G_i^T X_i, flattened to (n, d_out * d_in); into ``scratch`` if given."""
    n, d_in, d_out = x.shape[0], x.shape[-1], g.shape[-1]
    out = scratch.take((n, d_out, d_in), x) if scratch is not None else None
    return torch.bmm(g.transpose(1, 2), x, out=out).reshape(n, -1)


class _Scratch:
    """One reusable buffer for a pass's materialised gradients: on CPU a fresh allocation of a
    layer's (n, d_out * d_in) gradients costs more in page faults than the bmm that fills it."""

    def __init__(self):
        self.buffer: Tensor | None = None

    def take(self, shape: tuple[int, ...], like: Tensor) -> Tensor:
        size = math.prod(shape)
        b = self.buffer
        if b is None or b.numel() < size or b.dtype != like.dtype or b.device != like.device:
            self.buffer = b = like.new_empty(size)
        return b[:size].view(shape)


def _weight_gram(x: Tensor, g: Tensor, scratch: "_Scratch | None" = None) -> Tensor:
    """(n x n) Gram of one linear weight's per-example gradients, without bias."""
    n, s, d_in = x.shape
    if _use_ghost(n, n, s, s, d_in, g.shape[-1], symmetric=True):
        return _symmetric(n, lambda r, c: _ghost_cross(x[r], g[r], x[c], g[c]), x)
    p = _materialise(x, g, scratch)
    return p @ p.T


class _Features:
    """What one pass keeps of a layer to contract later against another pass."""

    def __init__(self, x: Tensor, g: Tensor, ghost: bool, bias: bool):
        self.ghost = ghost
        self.x, self.g = (x, g) if ghost else (None, None)
        self.grad = None if ghost else _materialise(x, g)
        self.bias = g.sum(dim=1) if bias else None

    def cross(self, x: Tensor, g: Tensor, scratch: "_Scratch | None" = None) -> Tensor:
        dot = _ghost_cross(self.x, self.g, x, g) if self.ghost else self.grad @ _materialise(x, g, scratch).T
        if self.bias is not None:
            dot = dot + self.bias @ g.sum(dim=1).T
        return dot


def _symmetric(n: int, block: Callable[[slice, slice], Tensor], like: Tensor) -> Tensor:
    """An (n x n) symmetric matrix from its blocks on and above the diagonal (about half the work)."""
    chunks = SYMMETRIC_CHUNKS if n >= SYMMETRIC_MIN_N else 1
    bounds = [slice(a * n // chunks, (a + 1) * n // chunks) for a in range(chunks)]
    out = like.new_empty(n, n)
    for i, rows in enumerate(bounds):
        for cols in bounds[i:]:
            out[rows, cols] = block(rows, cols)
            if cols != rows:
                out[cols, rows] = out[rows, cols].T
    return out


def _self_dot(x: Tensor, g: Tensor, has_bias: bool, scratch: "_Scratch | None" = None) -> Tensor:
    dot = _weight_gram(x, g, scratch)
    if has_bias:
        b = g.sum(dim=1)
        dot = dot + b @ b.T
    return dot


def _diag(x: Tensor, g: Tensor, has_bias: bool, scratch: "_Scratch | None" = None) -> Tensor:
    n, s, d_in = x.shape
    if _use_ghost(n, n, s, s, d_in, g.shape[-1]):
        sq = _ghost_diag(x, g)
    else:
        sq = _materialise(x, g, scratch).square().sum(dim=1)
    if has_bias:
        sq = sq + g.sum(dim=1).square().sum(dim=1)
    return sq


# ----------------------------------------------------------------- capture

def examples_first(name: str, t: Tensor, n: int, seq_lengths: set[int]) -> Tensor:
    """A layer input or output gradient ``t`` as (n, S, d): as given when its leading dimension is n; a
    token-flattened one (n*S, d), example-major (OPT's MLP, MoE routers), split back into examples when
    S is a sequence length that the layers with an (n, S, d) input saw in the same pass."""
    if t.shape[0] == n:
        return _sequence(t)
    lengths = {s for s in seq_lengths if t.ndim == 2 and t.shape[0] == n * s}
    if len(lengths) != 1:
        raise RuntimeError(
            f"layer {name!r}: leading dimension {t.shape[0]} is neither the number of examples {n} "
            f"nor n x S for a sequence length S of the other layers' inputs {sorted(seq_lengths)}; "
            "its rows cannot be attributed to examples (e.g. a mixture-of-experts expert that sees a "
            "routed subset of tokens): leave it out of `layers`")
    return t.reshape(n, lengths.pop(), t.shape[-1])



class _Pass:
    """State of one forward/backward pass: what to compute in each tap's backward.

    mode "self": accumulate the (n x n) Gram; "diag": only squared norms;
    "cross": the (n_stored x m) products against ``stored`` features, plus squared norms.
    ``store``: keep each layer's features for a later "cross" pass.
    """

    def __init__(self, mode: str, n: int, store: bool = False, stored: dict | None = None,
                 per_layer: bool = False):
        self.mode, self.n, self.store, self.per_layer = mode, n, store, per_layer
        self.stored = stored
        self.features: dict[str, _Features] = {}
        self.dots: dict[str, Tensor] = {}  # by layer name when per_layer, else one entry TOTAL
        self.sqnorm: Tensor | None = None
        self.calls: dict[str, int] = {}
        self.seq_lengths: set[int] = set()  # S of the (n, S, d) layer inputs, for token-flattened layers
        self.scratch: _Scratch | None = _Scratch()  # released when the backward ends

    @property
    def dot(self) -> Tensor | None:
        """The pass's Gram block, summed over layers."""
        return sum(self.dots.values()) if self.dots else None

    def _add_dot(self, name: str, value: Tensor) -> None:
        key = name if self.per_layer else TOTAL
        self.dots[key] = value if key not in self.dots else self.dots[key] + value

    def _add(self, attr: str, value: Tensor) -> None:
        current = getattr(self, attr)
        setattr(self, attr, value if current is None else current + value)

    def accumulate(self, name: str, x: Tensor, g: Tensor, has_bias: bool) -> None:
        x = examples_first(name, x, self.n, self.seq_lengths)
        g = examples_first(name, g, self.n, self.seq_lengths).to(x.dtype)
        if self.mode == "self":
            self._add_dot(name, _self_dot(x, g, has_bias, self.scratch))
        elif self.mode == "cross":
            self._add_dot(name, self.stored[name].cross(x, g, self.scratch))
        if self.mode != "self":
            self._add("sqnorm", _diag(x, g, has_bias, self.scratch))
        if self.store:
            n, s, d_in = x.shape
            ghost = _use_ghost(n, n, s, s, d_in, g.shape[-1])
            self.features[name] = _Features(x, g, ghost, has_bias)


class _Tap(torch.autograd.Function):
    """Identity on a layer's output whose backward hands the output gradient to a pass."""

    @staticmethod
    def forward(ctx, output, anchor, x, name, has_bias, pass_):
        ctx.save_for_backward(x)
        ctx.name, ctx.has_bias, ctx.pass_ = name, has_bias, pass_
        return output.view_as(output)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        ctx.pass_.accumulate(ctx.name, x, grad_output, ctx.has_bias)
        return grad_output, None, None, None, None, None


@contextmanager
def _tapped(layers: dict[str, nn.Module], pass_: _Pass, anchor: Tensor):
    def make_hook(name: str, module: nn.Module):
        has_bias = getattr(module, "bias", None) is not None

        def hook(mod, inputs, output):
            if not torch.is_grad_enabled():
                return None
            pass_.calls[name] = pass_.calls.get(name, 0) + 1
            if inputs[0].ndim == 3 and inputs[0].shape[0] == pass_.n:
                pass_.seq_lengths.add(inputs[0].shape[1])
            if pass_.calls[name] > 1:
                raise RuntimeError(f"layer {name!r} ran twice in one forward pass; per-example "
                                   "gradients of a reused layer are not supported, leave it out of `layers`")
            return _Tap.apply(output, anchor, inputs[0].detach(), name, has_bias, pass_)
        return hook

    handles = [m.register_forward_hook(make_hook(name, m)) for name, m in layers.items()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _run_pass(model, loss_fn, batch, layers, pass_: _Pass) -> _Pass:
    device = next(iter(layers.values())).weight.device
    anchor = torch.zeros((), device=device, requires_grad=True)  # on the model's device: no transfers
    with _tapped(layers, pass_, anchor):
        losses = loss_fn(model, batch)
    _check_losses(losses, pass_.n)
    if not pass_.calls:
        raise ValueError("none of the chosen layers ran in loss_fn's forward pass")
    if not losses.requires_grad:
        raise ValueError("loss_fn's losses do not depend on the chosen layers (no gradient)")
    torch.autograd.grad(losses.sum(), anchor, allow_unused=True)
    pass_.scratch = None
    return pass_


def _check_losses(losses, n: int) -> None:
    if not isinstance(losses, Tensor) or losses.ndim != 1:
        shape = tuple(losses.shape) if isinstance(losses, Tensor) else type(losses).__name__
        raise ValueError(f"loss_fn must return a 1-D tensor with one loss per example; got {shape}. "
                         "Use reduction='none' and sum over each example's tokens.")
    if losses.shape[0] != n:
        raise ValueError(f"loss_fn returned {losses.shape[0]} losses for a batch of {n} examples")


# ------------------------------------------------------------ batch helpers

def batch_size(batch) -> int:
    """Number of examples: the leading dimension of the batch's tensors (all must agree)."""
    leaves = [t for t in tree_flatten(batch)[0] if isinstance(t, Tensor) and t.ndim > 0]
    if not leaves:
        raise ValueError("batch holds no tensor; gradient_gram slices batches along dim 0")
    sizes = {t.shape[0] for t in leaves}
    if len(sizes) != 1:
        raise ValueError(f"batch tensors disagree on the number of examples: {sorted(sizes)}")
    return sizes.pop()


def _check_same_structure(batch, other) -> None:
    spec_a, spec_b = tree_flatten(batch)[1], tree_flatten(other)[1]
    if spec_a != spec_b:
        raise ValueError(f"`other` must be a batch of the same structure as `batch` (same keys and "
                         f"nesting) for loss_fn to take it; got {spec_b} against {spec_a}")


def slice_batch(batch, start: int, stop: int):
    """Examples ``start:stop`` of a batch (a tensor, or a dict/list/tuple of tensors)."""
    return tree_map(lambda t: t[start:stop] if isinstance(t, Tensor) and t.ndim > 0 else t, batch)


def _ranges(n: int, size: int | None) -> list[tuple[int, int]]:
    size = n if not size else size
    return [(a, min(a + size, n)) for a in range(0, n, size)]


# -------------------------------------------------------------- public API

LossFn = Callable[[nn.Module, object], Tensor]


def gradient_gram(model: nn.Module, loss_fn: LossFn, batch, *,
                  layers: Iterable[str | nn.Module] | None = None, other=None,
                  block_size: int | None = None, per_layer: bool = False) -> GradientGram:
    r"""Dot products :math:`\langle g_i, g_j \rangle` of per-example gradients of linear layers.

    Args:
        model: any torch model; its examples must lie along dim 0 of every chosen
            layer's input. Put it in ``eval()`` mode if it has dropout.
        loss_fn: ``loss_fn(model, batch)`` returning a 1-D tensor of the n
            per-example losses (a sequence's loss may sum several tokens).
        batch: tensor or dict/list/tuple of tensors with the n examples on dim 0.
        layers: names or modules of ``nn.Linear`` / ``Conv1D`` layers (one name: that
            layer); default None: all linear layers except embeddings and the unembedding
            (the paper's choice); ``"all"``: every parameter that requires grad, embeddings,
            norms' affine vectors and tied weights (counted once, with their cross terms)
            included (:mod:`gradtools.gram_all`; ``per_layer`` then keys by parameter name).
            A layer whose input is token-flattened ``(n*S, d)``, example-major (OPT's MLP, MoE
            routers), is split back into examples; one whose rows cannot be attributed to
            examples (a routed subset of tokens) stops, named.
        other: a second batch of m examples: then ``dot`` is the (n x m) cross matrix.
        block_size: compute in blocks of this many examples ``((a1,a2),(b1,b2))``
            when all examples do not fit in one pass.
        per_layer: also return each layer's Gram (``layers``), from the same passes: the
            contraction is per layer already, so this costs memory (one n x m matrix a layer), not passes.

    Returns:
        :class:`GradientGram` with ``dot`` (n x n, or n x m), ``sqnorm`` (n,),
        ``other_sqnorm`` (m,) when ``other`` is given, ``layers`` when ``per_layer``, and ``cosine()``.
    """
    if isinstance(layers, str) and layers == ALL:
        return _all_parameters(model, loss_fn, batch, other, block_size, per_layer)
    chosen = resolve_layers(model, layers)
    n = batch_size(batch)
    rows = _ranges(n, block_size)
    if other is None:
        dots = _in_model_order(_square_gram(model, loss_fn, batch, chosen, rows, per_layer), chosen)
        dot = sum(dots.values())
        return GradientGram(dot=dot, sqnorm=torch.diagonal(dot).clone(), layers=dots if per_layer else None)
    _check_same_structure(batch, other)
    m = batch_size(other)
    cols = _ranges(m, block_size)
    dots, sqnorm, other_sqnorm = _cross_gram(model, loss_fn, batch, other, chosen, rows, cols, per_layer)
    dots = _in_model_order(dots, chosen)
    return GradientGram(dot=sum(dots.values()), sqnorm=sqnorm, other_sqnorm=other_sqnorm,
                        layers=dots if per_layer else None)


def gram_block(model: nn.Module, loss_fn: LossFn, batch, rows: tuple[int, int], cols: tuple[int, int], *,
               layers: Iterable[str | nn.Module] | None = None, other=None) -> Tensor:
    """One block ``dot[a1:a2, b1:b2]`` of the Gram (or of the cross matrix with ``other``).

    The unit of work for sharding a large Gram across processes: rows index
    ``batch``, cols index ``other`` (or ``batch`` again when ``other`` is None).
    """
    chosen = resolve_layers(model, layers)
    if other is not None:
        _check_same_structure(batch, other)
    source = batch if other is None else other
    row_batch = slice_batch(batch, *rows)
    if other is None and tuple(rows) == tuple(cols):
        return _run_pass(model, loss_fn, row_batch, chosen, _Pass("self", rows[1] - rows[0])).dot
    stored = _run_pass(model, loss_fn, row_batch, chosen, _Pass("diag", rows[1] - rows[0], store=True))
    col_batch = slice_batch(source, *cols)
    return _run_pass(model, loss_fn, col_batch, chosen,
                     _Pass("cross", cols[1] - cols[0], stored=stored.features)).dot


def squared_norms(model: nn.Module, loss_fn: LossFn, batch, *,
                  layers: Iterable[str | nn.Module] | None = None) -> Tensor:
    """The (n,) squared norms of the per-example gradients alone (the diagonal of the Gram)."""
    chosen = resolve_layers(model, layers)
    return _run_pass(model, loss_fn, batch, chosen, _Pass("diag", batch_size(batch))).sqnorm


def _all_parameters(model, loss_fn, batch, other, block_size, per_layer) -> GradientGram:
    """``layers="all"``: every parameter (:mod:`gradtools.gram_all`); ``per_layer`` keys are parameter names."""
    from .gram_all import all_parameters_gram

    if other is not None:
        _check_same_structure(batch, other)
    dots, sqnorm, other_sqnorm = all_parameters_gram(model, loss_fn, batch, other, block_size)
    return GradientGram(dot=sum(dots.values()), sqnorm=sqnorm, other_sqnorm=other_sqnorm,
                        layers=dots if per_layer else None)


def _in_model_order(dots: dict[str, Tensor], chosen: dict[str, nn.Module]) -> dict[str, Tensor]:
    """Per-layer Grams in the order of the model's layers (the backward visits them reversed)."""
    return {name: dots[name] for name in chosen if name in dots} if TOTAL not in dots else dots


def _place(dots: dict[str, Tensor], block: dict[str, Tensor], rows: tuple[int, int], cols: tuple[int, int],
           shape: tuple[int, int], mirror: bool = False) -> None:
    """Write each layer's ``block`` at ``[rows, cols]`` of its full matrix in ``dots`` (and its transpose)."""
    for key, value in block.items():
        if key not in dots:
            dots[key] = value.new_zeros(shape)
        dots[key][rows[0]:rows[1], cols[0]:cols[1]] = value
        if mirror:
            dots[key][cols[0]:cols[1], rows[0]:rows[1]] = value.T


def _square_gram(model, loss_fn, batch, layers, rows, per_layer: bool = False) -> dict[str, Tensor]:
    dots: dict[str, Tensor] = {}
    n = rows[-1][1]
    for i, (a1, a2) in enumerate(rows):
        first = _run_pass(model, loss_fn, slice_batch(batch, a1, a2), layers,
                          _Pass("self", a2 - a1, store=len(rows) > 1, per_layer=per_layer))
        _place(dots, first.dots, (a1, a2), (a1, a2), (n, n))
        for b1, b2 in rows[i + 1:]:
            block = _run_pass(model, loss_fn, slice_batch(batch, b1, b2), layers,
                              _Pass("cross", b2 - b1, stored=first.features, per_layer=per_layer)).dots
            _place(dots, block, (a1, a2), (b1, b2), (n, n), mirror=True)
    return dots


def _cross_gram(model, loss_fn, batch, other, layers, rows, cols, per_layer: bool = False):
    dots: dict[str, Tensor] = {}
    sqnorm = other_sqnorm = None
    shape = (rows[-1][1], cols[-1][1])
    for a1, a2 in rows:
        first = _run_pass(model, loss_fn, slice_batch(batch, a1, a2), layers,
                          _Pass("diag", a2 - a1, store=True))
        if sqnorm is None:
            sqnorm = first.sqnorm.new_zeros(shape[0])
            other_sqnorm = first.sqnorm.new_zeros(shape[1])
        sqnorm[a1:a2] = first.sqnorm
        for b1, b2 in cols:
            second = _run_pass(model, loss_fn, slice_batch(other, b1, b2), layers,
                               _Pass("cross", b2 - b1, stored=first.features, per_layer=per_layer))
            _place(dots, second.dots, (a1, a2), (b1, b2), shape)
            if a1 == 0:
                other_sqnorm[b1:b2] = second.sqnorm
    return dots, sqnorm, other_sqnorm


def per_example_gradients(model: nn.Module, loss_fn: LossFn, batch,
                          layers: Sequence[str | nn.Module] | None = None) -> Tensor:
    """Brute-force reference: (n, P) per-example gradients of the chosen layers, by a loop.

    A forward and a backward pass on each example alone; for tests and
    benchmarks, not for real use.
    """
    if isinstance(layers, str) and layers == ALL:
        from .gram_all import all_parameters
        params = [p for _, p in all_parameters(model)]
    else:
        chosen = resolve_layers(model, layers)
        params = [p for m in chosen.values() for p in m.parameters(recurse=False)]
    rows = []
    for i in range(batch_size(batch)):
        losses = loss_fn(model, slice_batch(batch, i, i + 1))
        _check_losses(losses, 1)
        grads = torch.autograd.grad(losses[0], params, allow_unused=True)
        rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                               for g, p in zip(grads, params)]))
    return torch.stack(rows)


# ------------------------------------------------------ per-example SVD

@dataclass
class GradientSVD:
    """Top singular triplets of the (n x P) per-example gradient matrix ``G`` (rows ``g_i``).

    Attributes:
        values: (k,) singular values, descending.
        vectors: (k, P) right singular vectors (unit rows), flat over ``names`` in order.
        left: (n, k) left singular vectors (eigenvectors of the Gram).
        mean: (P,) the mean gradient ``G^T 1 / n``.
        names: the parameters (``"<layer>.weight"``, ``"<layer>.bias"``) the flat vectors run over.
        shapes: their shapes, to cut a flat vector back into parameter-shaped tensors.
    """
    values: Tensor
    vectors: Tensor
    left: Tensor
    mean: Tensor
    names: list[str]
    shapes: list[torch.Size]

    def as_parameters(self, flat: Tensor) -> dict[str, Tensor]:
        """A flat (P,) vector (a row of ``vectors``, or ``mean``) as ``{name: parameter-shaped tensor}``."""
        sizes = [int(torch.Size(s).numel()) for s in self.shapes]
        return {name: part.reshape(shape) for name, part, shape in zip(self.names, flat.split(sizes), self.shapes)}


def _weighted_gradients(model, loss_fn, batch, params: list[Tensor], weights: Tensor,
                        block_size: int | None) -> Tensor:
    """(r, P): row q is ``sum_i weights[q, i] grad L_i`` = ``(W G)[q]``, one backward per row and block."""
    n = batch_size(batch)
    out = None
    for a1, a2 in _ranges(n, block_size):
        losses = loss_fn(model, slice_batch(batch, a1, a2))
        _check_losses(losses, a2 - a1)
        rows = []
        for q, w in enumerate(weights[:, a1:a2].to(losses.dtype)):
            grads = torch.autograd.grad(losses @ w, params, retain_graph=q < len(weights) - 1, allow_unused=True)
            rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                                   for g, p in zip(grads, params)]))
        block = torch.stack(rows)
        out = block if out is None else out + block
    return out


def gradient_svd(model: nn.Module, loss_fn: LossFn, batch, k: int, *,
                 layers: Iterable[str | nn.Module] | None = None, block_size: int | None = None,
                 center: bool = False) -> GradientSVD:
    r"""Top-``k`` singular values and right singular vectors of the per-example gradient matrix, without
    per-example backward passes.

    With :math:`G \in \mathbb{R}^{n \times P}` (row i: example i's gradient over the chosen
    layers' weights and biases), the Gram :math:`G G^\top = U \Sigma^2 U^\top`
    (:func:`gradient_gram`, then a dense ``eigh``) gives the right singular vectors
    :math:`V_k = G^\top U_k \Sigma_k^{-1}`: each is the gradient of the weighted loss
    :math:`\sum_i (U_{ik} / \sigma_k) L_i`, one backward pass (gradient-SED paper, table 3:
    the SED basis of per-example gradients). The mean gradient is the gradient of
    :math:`\frac{1}{n}\sum_i L_i`.

    With ``center=True`` the SVD is of the centred matrix :math:`C G`, :math:`C = I - \mathbf{1}\mathbf{1}^\top / n`
    (each example's gradient minus the mean, as the gradient-SED paper's per-example SVD): its
    Gram is :math:`C G G^\top C` and the weights become :math:`C U_k \Sigma_k^{-1}`.

    Args:
        k: how many singular triplets, at most n.
        layers, block_size: as in :func:`gradient_gram`.
        center: the SVD of the per-example gradients minus their mean.

    Raises:
        ValueError when ``k`` exceeds n, or the gradients have fewer than ``k`` non-zero singular values.
    """
    n = batch_size(batch)
    if not 1 <= k <= n:
        raise ValueError(f"k={k}: the per-example gradient matrix of {n} examples has at most {n} singular "
                         "values; ask for 1 <= k <= n")
    chosen = resolve_layers(model, layers)
    gram = gradient_gram(model, loss_fn, batch, layers=list(chosen), block_size=block_size).dot
    dtype, gram = gram.dtype, gram.double()  # a dense n x n eigh: float64 costs nothing here
    if center:
        gram = gram - gram.mean(dim=0, keepdim=True)
        gram = gram - gram.mean(dim=1, keepdim=True)
    eigenvalues, eigenvectors = torch.linalg.eigh(gram)  # ascending
    values = eigenvalues.flip(0)[:k].clamp_min(0).sqrt()
    left = eigenvectors.flip(1)[:, :k]
    # the Gram's eigenvalues carry an error of about n * eps * sigma_1^2 (its entries are sums over the
    # parameters in ``dtype``), so a singular value below sigma_1 * sqrt(n * eps) is indistinguishable from 0
    tolerance = values[0] * (n * torch.finfo(dtype).eps) ** 0.5 if values[0] > 0 else 1.0
    if values[-1] <= tolerance:
        raise ValueError(f"the per-example gradients have fewer than k={k} non-zero singular values "
                         f"(the {k}-th is {values[-1].item():.3g}); ask for fewer")
    names, params = zip(*[(f"{name}.{p_name}", p) for name, m in chosen.items()
                          for p_name, p in m.named_parameters(recurse=False)])
    scaled = left / values
    if center:
        scaled = scaled - scaled.mean(dim=0, keepdim=True)  # C U_k S_k^-1
    weights = torch.cat([scaled.T, torch.full((1, n), 1.0 / n, dtype=left.dtype, device=left.device)])
    rows = _weighted_gradients(model, loss_fn, batch, list(params), weights, block_size)
    values, left = values.to(dtype), left.to(dtype)
    return GradientSVD(values=values, vectors=rows[:k], left=left, mean=rows[k], names=list(names),
                       shapes=[p.shape for p in params])
