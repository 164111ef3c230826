r"""Curvature kernels: Hessian-vector products, Lanczos, directional derivatives.

* :func:`hvp` computes :math:`H v` by forward-over-reverse AD (``torch.func.jvp``
  of ``torch.func.grad``), vmapped over a leading batch of vectors.
* :func:`lanczos` returns the top-k eigenpairs of a symmetric operator, with
  full reorthogonalisation, optionally restricted to the orthogonal complement
  of an orthonormal basis B: the operator :math:`(I - BB^\top) H (I - BB^\top)`
  of POLCA's algorithm 1 (polca-hidden-breakthroughs, section 3).
* :func:`directional_derivatives` returns, for n per-example losses
  :math:`\ell_i(\theta)`, :math:`\partial_v \ell_i = \langle g_i, v\rangle` and
  :math:`\partial^2_v \ell_i = v^\top H_i v` by forward-over-forward AD (one
  batched pass, no per-example backward): the two factors of a POLCA term.

torch 2.13's forward-mode formula for ``layer_norm`` is wrong at second order
(forward-over-forward): on a small example it is off by tens of percent. And
``scaled_dot_product_attention`` has no forward-mode or double-backward formula
on CPU. Inside :func:`hvp` and :func:`directional_derivatives` both are
therefore replaced by their composite definitions (mean, variance, softmax
...), whose derivatives are exact (:class:`CompositeOps`).
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import grad, jvp, vmap
from torch.overrides import TorchFunctionMode

Params = dict[str, Tensor]


# ------------------------------------------------------------ flat vectors

def flatten(tensors: Params) -> Tensor:
    """Concatenate a dict of tensors into one flat vector (in the dict's order)."""
    return torch.cat([t.reshape(-1) for t in tensors.values()])


def unflatten(vector: Tensor, like: Params) -> Params:
    """Split a flat vector (or a (k, dim) batch of them) into tensors shaped like ``like``."""
    out, start = {}, 0
    lead = vector.shape[:-1]
    for name, t in like.items():
        out[name] = vector[..., start:start + t.numel()].reshape(*lead, *t.shape)
        start += t.numel()
    if start != vector.shape[-1]:
        raise ValueError(f"vector has {vector.shape[-1]} entries, the parameters {start}")
    return out


def _batched(v: Params, params: Params) -> bool:
    """Whether ``v`` carries a leading batch dimension over ``params``' shapes."""
    if set(v) != set(params):
        raise ValueError(f"v has keys {sorted(v)}, params {sorted(params)}")
    flags = set()
    for name, p in params.items():
        if v[name].shape == p.shape:
            flags.add(False)
        elif v[name].shape[1:] == p.shape:
            flags.add(True)
        else:
            raise ValueError(f"v[{name!r}] has shape {tuple(v[name].shape)}, param {tuple(p.shape)}")
    if len(flags) != 1:
        raise ValueError("either every tensor of v has a leading batch dimension or none has")
    return flags.pop()


# ------------------------------------------------------------------- hvp

def hvp(loss_fn: Callable[[Params], Tensor], params: Params, v: Params) -> Params:
    r"""Hessian-vector product :math:`H v` of a scalar ``loss_fn(params)``.

    Args:
        loss_fn: maps a dict of named tensors to a scalar (e.g. a
            ``torch.func.functional_call`` of a model on a fixed batch).
        params: dict of named tensors, the point at which H is taken.
        v: dict of the same shapes, or with a leading dimension k for k vectors.

    Returns:
        dict shaped like ``v``.
    """
    def single(vec: Params) -> Params:
        return jvp(grad(loss_fn), (params,), (vec,))[1]

    with CompositeOps():
        return vmap(single)(v) if _batched(v, params) else single(v)


def hessian_matvec(loss_fn: Callable[[Params], Tensor], params: Params) -> Callable[[Tensor], Tensor]:
    """The Hessian of ``loss_fn`` at ``params`` as an operator on flat vectors (for :func:`lanczos`)."""
    def matvec(x: Tensor) -> Tensor:
        return flatten(hvp(loss_fn, params, unflatten(x, params)))
    return matvec


# --------------------------------------------------------------- lanczos

def _check_orthonormal(basis: Tensor, dim: int) -> None:
    if basis.ndim != 2 or basis.shape[0] != dim:
        raise ValueError(f"orthogonal_to must be a (dim={dim}) x m matrix; got {tuple(basis.shape)}")
    b = basis.double()  # in float32, rounding alone exceeds the tolerance for ~1e5-long vectors
    gram = b.T @ b
    err = (gram - torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)).abs().max().item()
    tol = 1e-4 if basis.dtype in (torch.float32, torch.float16, torch.bfloat16) else 1e-8
    if err > tol:
        raise ValueError(f"orthogonal_to must have orthonormal columns (max |B^T B - I| = {err:.2e}); "
                         "orthonormalise it first, e.g. with torch.linalg.qr")


def _orthogonalise(x: Tensor, bases: list[Tensor]) -> Tensor:
    """Remove from x its components along the columns of each basis, twice (twice is enough)."""
    for _ in range(2):
        for basis in bases:
            if basis.shape[1]:
                x = x - basis @ (basis.T @ x)
    return x


def lanczos(matvec: Callable[[Tensor], Tensor], dim: int, k: int, *, orthogonal_to: Tensor | None = None,
            max_iters: int | None = None, tol: float = 1e-10, seed: int = 0,
            dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    r"""The k largest eigenvalues and eigenvectors of a symmetric operator, by Lanczos.

    Full reorthogonalisation of every Krylov vector. With ``orthogonal_to`` = B
    (dim x m, orthonormal columns) the operator is :math:`(I - BB^\top) A (I - BB^\top)`
    on the complement of span(B): the Krylov vectors are kept orthogonal to B,
    so the returned eigenvectors are too (POLCA's algorithm 1, deflation).

    Iterates until the top-k Ritz residuals :math:`|\beta_j s_{j,i}|` fall below
    ``tol`` times the largest Ritz value, or ``max_iters`` (default
    ``min(dim - m, max(50, 10 k))``) steps; the Krylov space of the complement
    is exhausted after ``dim - m`` steps, where the result is exact.

    Returns:
        eigenvalues (k,) in descending order, eigenvectors (dim, k) as columns.
    """
    if orthogonal_to is not None:
        dtype = dtype or orthogonal_to.dtype
        device = device or orthogonal_to.device
        _check_orthonormal(orthogonal_to, dim)
        basis = orthogonal_to.to(dtype)
    dtype = dtype or torch.get_default_dtype()
    device = device or "cpu"
    if orthogonal_to is None:
        basis = torch.zeros(dim, 0, dtype=dtype, device=device)
    free = dim - basis.shape[1]
    if not 1 <= k <= free:
        raise ValueError(f"k={k} eigenpairs asked for, but the operator acts on {free} dimensions")
    steps = min(free, max_iters or max(50, 10 * k))
    generator = torch.Generator(device="cpu").manual_seed(seed)

    def random_start(q: Tensor) -> Tensor | None:
        x = torch.randn(dim, generator=generator, dtype=dtype).to(device)
        x = _orthogonalise(x, [basis, q])
        norm = x.norm()
        return None if norm < 1e-8 else x / norm

    q = torch.zeros(dim, 0, dtype=dtype, device=device)
    alphas, betas = [], []
    x = random_start(q)
    while x is not None and q.shape[1] < steps:
        q = torch.cat([q, x[:, None]], dim=1)
        w = matvec(x).to(dtype)
        alphas.append(torch.dot(w, x))
        w = _orthogonalise(w, [basis, q])
        beta = w.norm()
        if q.shape[1] >= k and _converged(alphas, betas, beta, k, tol):
            break
        if beta <= 1e-10 * max(1.0, max(abs(a.item()) for a in alphas)):
            betas.append(torch.zeros((), dtype=dtype, device=device))
            x = random_start(q)  # invariant subspace found: continue in a fresh direction
        else:
            betas.append(beta)
            x = w / beta
    values, ritz = _tridiagonal_eigh(alphas, betas[: len(alphas) - 1])
    order = torch.argsort(values, descending=True)[:k]
    return values[order], q @ ritz[:, order]


def _tridiagonal_eigh(alphas: list[Tensor], betas: list[Tensor]) -> tuple[Tensor, Tensor]:
    a = torch.stack(alphas)
    t = torch.diag(a)
    if betas:
        b = torch.stack(betas)
        t = t + torch.diag(b, 1) + torch.diag(b, -1)
    return torch.linalg.eigh(t)


def _converged(alphas, betas, beta, k, tol) -> bool:
    values, vecs = _tridiagonal_eigh(alphas, betas)
    top = torch.argsort(values, descending=True)[:k]
    scale = max(values.abs().max().item(), 1e-30)
    return bool((beta * vecs[-1, top].abs()).max().item() <= tol * scale)


# -------------------------------------------------- directional derivatives

def _layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    dims = tuple(range(-len(normalized_shape), 0))
    centred = input - input.mean(dims, keepdim=True)
    out = centred * torch.rsqrt(centred.square().mean(dims, keepdim=True) + eps)
    if weight is not None:
        out = out * weight
    return out if bias is None else out + bias


def _sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    if dropout_p:
        raise ValueError("directional_derivatives needs a deterministic model: put it in eval() mode")
    if enable_gqa and key.shape[-3] != query.shape[-3]:
        repeat = query.shape[-3] // key.shape[-3]
        key, value = key.repeat_interleave(repeat, -3), value.repeat_interleave(repeat, -3)
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = (query @ key.transpose(-2, -1)) * scale
    s, t = query.shape[-2], key.shape[-2]
    if is_causal:
        causal = torch.ones(s, t, dtype=torch.bool, device=query.device).tril(t - s)
        scores = scores.masked_fill(~causal, float("-inf"))
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool \
            else scores + attn_mask
    return torch.softmax(scores, dim=-1) @ value


class CompositeOps(TorchFunctionMode):
    """Within this mode, ops whose higher-order AD is wrong or missing run as composites.

    ``F.layer_norm`` (wrong forward-over-forward) and
    ``F.scaled_dot_product_attention`` (no forward-mode or double backward on CPU).
    """

    REPLACEMENTS = {F.layer_norm: _layer_norm, F.scaled_dot_product_attention: _sdpa}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        func = self.REPLACEMENTS.get(func, func)
        return func(*args, **(kwargs or {}))


class DirectionalDerivatives(NamedTuple):
    """First and second directional derivatives of n per-example losses, each (n,) or (k, n)."""

    first: Tensor
    second: Tensor


def directional_derivatives(per_example_loss_fn: Callable[[Params], Tensor], params: Params,
                            v: Params) -> DirectionalDerivatives:
    r""":math:`\langle g_i, v\rangle` and :math:`v^\top H_i v` for every example i, by forward-mode AD.

    Args:
        per_example_loss_fn: maps a dict of named tensors to the n per-example losses (n,).
        params: dict of named tensors, the point of expansion.
        v: dict of the same shapes (a direction), or with a leading dimension k.

    Returns:
        ``(first, second)``, each of shape (n,), or (k, n) for k directions.
    """
    def single(vec: Params) -> tuple[Tensor, Tensor]:
        def first_order(p: Params) -> Tensor:
            return jvp(per_example_loss_fn, (p,), (vec,))[1]
        first, second = jvp(first_order, (params,), (vec,))
        return first, second

    with CompositeOps():
        first, second = vmap(single)(v) if _batched(v, params) else single(v)
    return DirectionalDerivatives(first, second)
