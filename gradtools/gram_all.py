r"""The Gram of per-example gradients over every parameter: ``gradient_gram(..., layers="all")``.

Shared-gradient-discovery, appendix D.2 checks that alignment over the non-embedding
weights (the default of :func:`gradtools.gradient_gram`) agrees with alignment over all
parameters. Every parameter that requires grad belongs to one or more *uses*, each
captured inside the backward like the linear layers:

* a linear layer (``nn.Linear`` / ``Conv1D``) with input :math:`X_i` and output gradient
  :math:`G_i`: :math:`\nabla W_i = G_i^\top X_i`, bias :math:`\sum_s G_{is}`;
* an embedding (``nn.Embedding``) looked up at token ids :math:`x_{is}` with output
  gradient :math:`G_{is}`: :math:`\langle \nabla E_i, \nabla E_j \rangle
  = \sum_{s,t} [x_{is} = x_{jt}] \langle G_{is}, G_{jt} \rangle` (ghost form; position
  embeddings looked up with one row of ids for the whole batch included);
* an elementwise-affine module (LayerNorm, RMSNorm: ``weight * f(input) + bias`` with
  vectors ``weight``, ``bias``): :math:`\nabla w_i = \sum_s \hat x_{is} \odot G_{is}`,
  :math:`\nabla b_i = \sum_s G_{is}`, with :math:`\hat x = f(\text{input})` recomputed at
  unit weight and zero bias.

A parameter with two uses (a tied embedding and unembedding, as in GPT-2 and OLMo) gets
its per-example gradient :math:`a_i + b_i`, so its Gram adds the cross terms
:math:`\langle a_i, b_j \rangle + \langle b_i, a_j \rangle`; for an embedding ``E`` tied to
a linear layer's weight: :math:`\langle \nabla_{\text{emb}} E_i, G_j^\top X_j \rangle
= \sum_{s,t} G_j[t, x_{is}] \langle G^{\text{emb}}_{is}, X_{jt} \rangle`.
What does not fit (a parameter of another kind of module, a weight used three times, a
tied weight of other shapes) stops, named, before the backward.

All features of a pass are kept until its contraction (the unembedding's output gradient
is n x S x V): memory grows with the vocabulary, the price of exactness over every
parameter. Parameters are counted once each, frozen ones (``requires_grad=False``) left out.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from . import gram as g_

LINEAR, EMBEDDING, AFFINE = "linear", "embedding", "affine"


@dataclass
class Use:
    """One module through which parameters enter the loss."""
    name: str
    kind: str
    module: nn.Module
    params: dict[str, nn.Parameter]  # role ("weight", "bias") -> parameter


@dataclass
class Features:
    """What a use's tap kept in one pass: ``a`` (X, ids or x_hat) and ``g``, each (n, S, .)."""
    a: Tensor
    g: Tensor


def _is_affine(module: nn.Module) -> bool:
    own = dict(module.named_parameters(recurse=False))
    return "weight" in own and own["weight"].ndim == 1 and set(own) <= {"weight", "bias"} and \
        all(p.ndim == 1 for p in own.values())


def find_uses(model: nn.Module) -> tuple[list[Use], dict[int, str]]:
    """Every use of a parameter that requires grad, and the parameter names (first name of each).

    Raises:
        ValueError naming a parameter outside the three kinds of use, or used more than twice.
    """
    names = {}
    for name, p in model.named_parameters():  # tied parameters appear once
        if p.requires_grad:
            names.setdefault(id(p), name)
    uses, seen = [], {}
    for module_name, module in model.named_modules():
        own = {role: p for role, p in module.named_parameters(recurse=False) if p.requires_grad}
        if not own:
            continue
        if g_.is_linear(module):
            kind = LINEAR
        elif isinstance(module, nn.Embedding):
            kind = EMBEDDING
        elif _is_affine(module):
            kind = AFFINE
        else:
            raise ValueError(f"layers='all': parameters {sorted(own)} of {module_name!r} "
                             f"({type(module).__name__}) have no per-example form here; "
                             "freeze them (requires_grad=False) or choose layers by name")
        uses.append(Use(module_name, kind, module, own))
        for p in own.values():
            seen.setdefault(id(p), []).append(module_name)
    for pid, holders in seen.items():
        if len(holders) > 2:
            raise ValueError(f"layers='all': parameter {names[pid]!r} is used by {len(holders)} modules "
                             f"({holders}); only one or two uses (a tied embedding) are supported")
    return uses, names


def _xhat(module: nn.Module, x: Tensor) -> Tensor:
    """f(input) of an elementwise-affine module: its output at unit weight and zero bias."""
    own = dict(module.named_parameters(recurse=False))
    unit = {role: torch.ones_like(p) if role == "weight" else torch.zeros_like(p) for role, p in own.items()}
    with torch.no_grad():
        return torch.func.functional_call(module, unit, (x,))


class _Capture:
    """Hooks that keep each use's features of one forward/backward pass."""

    def __init__(self, uses: list[Use], n: int):
        self.uses, self.n = uses, n
        self.features: dict[str, Features] = {}
        self.seq_lengths: set[int] = set()

    def hook(self, use: Use, anchor: Tensor):
        def tap(mod, inputs, output):
            if not torch.is_grad_enabled():
                return None
            if tap.ran:
                raise RuntimeError(f"layer {use.name!r} ran twice in one forward pass; per-example "
                                   "gradients of a reused layer are not supported")
            tap.ran = True
            x = inputs[0].detach()
            if x.ndim == 3 and x.shape[0] == self.n:
                self.seq_lengths.add(x.shape[1])
            if use.kind == AFFINE:
                y = output.detach()
                w, b = mod.weight, getattr(mod, "bias", None)
                x = _xhat(mod, inputs[0])
                expect = w.detach() * x + (b.detach() if b is not None else 0)
                if not torch.allclose(expect, y, rtol=1e-5, atol=1e-6 * y.abs().max().item()):
                    raise RuntimeError(f"layers='all': {use.name!r} ({type(mod).__name__}) is not "
                                       "weight * f(input) + bias; its parameters have no per-example form here")
            if use.kind == EMBEDDING and x.shape[0] == 1 and self.n > 1:
                # one row of ids for the batch (position embeddings): broadcast here, so that the
                # output gradient arrives per example instead of summed over the batch
                output = output.expand(self.n, *output.shape[1:])
            return _Keep.apply(output, anchor, x, use.name, self)
        tap.ran = False
        return tap


class _Keep(torch.autograd.Function):
    """Identity whose backward stores the output gradient with the use's input-side features."""

    @staticmethod
    def forward(ctx, output, anchor, a, name, capture):
        ctx.save_for_backward(a)
        ctx.name, ctx.capture = name, capture
        return output.view_as(output)

    @staticmethod
    def backward(ctx, grad_output):
        (a,) = ctx.saved_tensors
        ctx.capture.features[ctx.name] = Features(a, grad_output)
        return grad_output, None, None, None, None


def _run(model, loss_fn, batch, uses: list[Use]) -> _Capture:
    n = g_.batch_size(batch)
    capture = _Capture(uses, n)
    device = next(model.parameters()).device
    anchor = torch.zeros((), device=device, requires_grad=True)
    handles = [u.module.register_forward_hook(capture.hook(u, anchor)) for u in uses]
    try:
        losses = loss_fn(model, batch)
    finally:
        for h in handles:
            h.remove()
    g_._check_losses(losses, n)
    torch.autograd.grad(losses.sum(), anchor, allow_unused=True)
    return capture


def _shaped(capture: _Capture, use: Use, f: Features) -> Features:
    """Features as (n, S, .): token-flattened inputs split into examples, ids broadcast to n."""
    if use.kind == EMBEDDING:
        ids = f.a if f.a.shape[0] == capture.n else f.a.expand(capture.n, *f.a.shape[1:])
        return Features(ids.reshape(capture.n, -1), f.g.reshape(capture.n, -1, f.g.shape[-1]))
    n, lengths = capture.n, capture.seq_lengths
    return Features(g_.examples_first(use.name, f.a, n, lengths), g_.examples_first(use.name, f.g, n, lengths).to(f.a.dtype))


# ---------------------------------------------------------------- kernels: one parameter, two uses

def _linear_weight(a: Features, b: Features) -> Tensor:
    """Ghost contraction or materialised per-example gradients, whichever the cost model prefers."""
    if a is b:
        return g_._weight_gram(a.a, a.g)
    (n, s, d_in), (m, t, d_out) = a.a.shape, b.g.shape
    if g_._use_ghost(n, m, s, t, d_in, d_out):
        return g_._ghost_cross(a.a, a.g, b.a, b.g)
    return g_._materialise(a.a, a.g) @ g_._materialise(b.a, b.g).T


def _embedding(a: Features, b: Features) -> Tensor:
    """sum_{s,t} [x_is = x_jt] <G_is, G_jt>."""
    n, s = a.a.shape
    m, t = b.a.shape
    same = (a.a.reshape(n * s, 1) == b.a.reshape(1, m * t)).to(a.g.dtype)
    dots = a.g.reshape(n * s, -1) @ b.g.reshape(m * t, -1).T
    return (same * dots).reshape(n, s, m, t).sum(dim=(1, 3))


def _embedding_linear(e: Features, lin: Features) -> Tensor:
    """<grad E_i (lookup), grad W_j (linear, W = E)> = sum_{s,t} G_j[t, x_is] <G^emb_is, X_jt>."""
    n, s = e.a.shape
    m, t, _ = lin.a.shape
    dots = e.g.reshape(n * s, -1) @ lin.a.reshape(m * t, -1).T          # (nS, mT)
    picked = lin.g.reshape(m * t, -1)[:, e.a.reshape(-1)].T              # (nS, mT): G_j[t, x_is]
    return (dots * picked).reshape(n, s, m, t).sum(dim=(1, 3))


def _affine(a: Features, b: Features, role: str) -> Tensor:
    ga = (a.a * a.g).sum(1) if role == "weight" else a.g.sum(1)
    gb = (b.a * b.g).sum(1) if role == "weight" else b.g.sum(1)
    return ga @ gb.T


def _bias(a: Features, b: Features) -> Tensor:
    return a.g.sum(1) @ b.g.sum(1).T


def _pair(use_a: Use, fa: Features, use_b: Use, fb: Features, role_a: str, role_b: str) -> Tensor:
    """<gradient of one parameter through use a (rows), through use b (columns)>."""
    kinds = (use_a.kind, use_b.kind)
    if kinds == (AFFINE, AFFINE):
        return _affine(fa, fb, role_a)
    if role_a == "bias" and role_b == "bias" and kinds == (LINEAR, LINEAR):
        return _bias(fa, fb)
    if kinds == (LINEAR, LINEAR):
        return _linear_weight(fa, fb)
    if kinds == (EMBEDDING, EMBEDDING):
        return _embedding(fa, fb)
    if kinds == (EMBEDDING, LINEAR) and isinstance(use_b.module, nn.Linear):
        return _embedding_linear(fa, fb)
    if kinds == (LINEAR, EMBEDDING) and isinstance(use_a.module, nn.Linear):
        return _embedding_linear(fb, fa).T
    raise ValueError(f"layers='all': a parameter shared by {use_a.name!r} ({use_a.kind}) and {use_b.name!r} "
                     f"({use_b.kind}) has no per-example form here")


@dataclass
class _Plan:
    """For each parameter: its name and the (use, role) pairs through which it enters."""
    entries: dict[int, list[tuple[Use, str]]] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)


def plan(model: nn.Module) -> tuple[list[Use], _Plan]:
    uses, names = find_uses(model)
    p = _Plan(names=names)
    for use in uses:
        for role, param in use.params.items():
            p.entries.setdefault(id(param), []).append((use, role))
    return uses, p


def contract(rows: _Capture, cols: _Capture, the_plan: _Plan) -> dict[str, Tensor]:
    """``{parameter name: (n x m) dot products of its per-example gradients}`` between two passes."""
    shaped_r = {u.name: _shaped(rows, u, f) for u in rows.uses if (f := rows.features.get(u.name))}
    shaped_c = shaped_r if cols is rows else {
        u.name: _shaped(cols, u, f) for u in cols.uses if (f := cols.features.get(u.name))}
    out = {}
    for pid, entries in the_plan.entries.items():
        total = None
        for use_a, role_a in entries:
            for use_b, role_b in entries:
                if use_a.name not in shaped_r or use_b.name not in shaped_c:
                    continue  # a use that did not run (no gradient through it)
                term = _pair(use_a, shaped_r[use_a.name], use_b, shaped_c[use_b.name], role_a, role_b)
                total = term if total is None else total + term
        if total is not None:
            out[the_plan.names[pid]] = total
    return out


def all_parameters_gram(model: nn.Module, loss_fn, batch, other=None, block_size: int | None = None
                        ) -> tuple[dict[str, Tensor], Tensor, Tensor | None]:
    """Per-parameter Grams over every parameter that requires grad (n x n, or n x m with ``other``), and
    the squared norms of ``batch``'s and (with ``other``) of ``other``'s examples, from the same passes."""
    uses, the_plan = plan(model)
    source = batch if other is None else other
    rows = g_._ranges(g_.batch_size(batch), block_size)
    cols = g_._ranges(g_.batch_size(source), block_size)
    shape = (rows[-1][1], cols[-1][1])
    dots: dict[str, Tensor] = {}
    sqnorm, other_sqnorm = [], []
    for i, (a1, a2) in enumerate(rows):
        first = _run(model, loss_fn, g_.slice_batch(batch, a1, a2), uses)
        if other is not None:
            sqnorm.append(_squared_norms(first, the_plan))
        for b1, b2 in cols:
            second = first if other is None and (a1, a2) == (b1, b2) else \
                _run(model, loss_fn, g_.slice_batch(source, b1, b2), uses)
            if other is not None and i == 0:
                other_sqnorm.append(_squared_norms(second, the_plan))
            g_._place(dots, contract(first, second, the_plan), (a1, a2), (b1, b2), shape)
    if other is None:
        return dots, torch.diagonal(sum(dots.values())).clone(), None
    return dots, torch.cat(sqnorm), torch.cat(other_sqnorm)


def _squared_norms(capture: _Capture, the_plan: _Plan) -> Tensor:
    """(n,) squared gradient norms of one pass's examples (the diagonal of its own Gram)."""
    return torch.diagonal(sum(contract(capture, capture, the_plan).values()))


def all_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Every parameter that requires grad, once (tied ones under their first name)."""
    seen, out = set(), []
    for name, p in model.named_parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            out.append((name, p))
    return out

