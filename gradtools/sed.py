r"""Spectral-edge (SED) bases of the attention parameters and their coupling to linear centroids.

Gradient-SED paper (papers/gradient-sed-linear-centroids.txt), equations 1-6.

* attention vector :math:`a_t`: every attention weight and bias, flattened (length D).
* rolling SVD basis (eq. 2, 3): the top-k right singular vectors of the
  (W x D) matrix whose rows are the last W of a sequence of vectors
  (updates :math:`a_t - a_{t-1}`, or gradients :math:`\nabla_a L(\theta_t; B)`
  on a fixed batch B, or one op's gradients :math:`\nabla_a L_{op}`).
* centroid (eq. 1): :math:`c(x) = \partial\, \mathrm{logit}_y / \partial e(x)`,
  the gradient of the answer's logit w.r.t. the embedded input, flat (2 d).
* centroid sensitivity (eq. 5):
  :math:`S(v) = \frac{1}{n}\sum_x \|c(x; a + \epsilon v) - c(x; a - \epsilon v)\|^2 / (2\epsilon)^2`,
  perturbing the attention slots only, :math:`\epsilon = \epsilon_{rel} \|a\|`.
* coupling ratio (eq. 6): :math:`R(v) = S(v) / \mathrm{median}_r S(r)` over random unit Gaussian r.
* rank-90: number of principal components holding 90% of the centroid matrix's variance.

Time t indexes checkpoints (every 25 steps in the paper), so the update of
checkpoint t is :math:`a_t - a_{t-1}`, summed over the steps in between.
"""
from __future__ import annotations

from contextlib import contextmanager

import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .modular_arithmetic import ModularTransformer, per_op_losses, op_valid, op_result


def attention_vector(model: nn.Module, names: list[str]) -> Tensor:
    """(D,) the named parameters of ``model`` flattened and concatenated in order."""
    params = dict(model.named_parameters())
    return torch.cat([params[n].detach().reshape(-1) for n in names])


@contextmanager
def attention_replaced(model: nn.Module, names: list[str], a: Tensor):
    """Temporarily load the flat vector ``a`` (D,) into the named parameters; restore them on exit."""
    params = dict(model.named_parameters())
    saved = [params[n].detach().clone() for n in names]
    with torch.no_grad():
        offset = 0
        for n in names:
            size = params[n].numel()
            params[n].copy_(a[offset:offset + size].view_as(params[n]))
            offset += size
    try:
        yield model
    finally:
        with torch.no_grad():
            for n, s in zip(names, saved):
                params[n].copy_(s)


def top_right_singular_vectors(x: Tensor, k: int, rtol: float = 1e-6, gram: Tensor | None = None) -> tuple[Tensor, Tensor]:
    r"""Top-k right singular vectors (k, D) and singular values (k,) of ``x`` (m, D), m small.

    Through the (m x m) Gram matrix :math:`X X^\top = U \Sigma^2 U^\top`, in float64:
    :math:`V = \Sigma^{-1} U^\top X`. Directions with singular value below
    ``rtol`` times the largest are dropped, so fewer than k may come back.
    ``gram`` may pass :math:`X X^\top` when the caller keeps it up to date.
    """
    x64 = x.double()
    evals, evecs = torch.linalg.eigh(x64 @ x64.T if gram is None else gram.double())
    order = torch.argsort(evals, descending=True)
    s = evals[order].clamp(min=0).sqrt()
    keep = s > rtol * s[0] if len(s) and s[0] > 0 else torch.zeros_like(s, dtype=torch.bool)
    keep[k:] = False
    u = evecs[:, order][:, keep]
    v = (u.T @ x64) / s[keep, None]
    return v.to(x.dtype), s[keep].to(x.dtype)


def rolling_svd_basis(rows: Tensor, end: int, window: int, k: int) -> Tensor:
    """(<=k, D) top-k right singular vectors of ``rows[end-window+1 : end+1]`` (fewer rows at the start)."""
    start = max(0, end - window + 1)
    return top_right_singular_vectors(rows[start:end + 1], k)[0]


def update_rows(attention_vectors: Tensor) -> Tensor:
    """(T, D) updates: row t is :math:`a_t - a_{t-1}`, row 0 is zero (no update before the first checkpoint)."""
    rows = torch.zeros_like(attention_vectors)
    rows[1:] = attention_vectors[1:] - attention_vectors[:-1]
    return rows


def attention_gradients(model: nn.Module, names: list[str], x: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    r"""(n_ops + 1, D): :math:`\nabla_a L_{op}(\theta; B)` for each op, then of the total :math:`\sum_{op} L_{op}`."""
    params = dict(model.named_parameters())
    device = next(model.parameters()).device
    losses = per_op_losses(model(x.to(device)), y.to(device), mask.to(device))
    grads = []
    for i in range(len(losses)):
        g = torch.autograd.grad(losses[i], [params[n] for n in names], retain_graph=True)
        grads.append(torch.cat([t.reshape(-1) for t in g]))
    grads = torch.stack(grads)
    return torch.cat([grads, grads.sum(0, keepdim=True)])


def centroids(model: ModularTransformer, x: Tensor, y: Tensor, op_index: int = 0) -> Tensor:
    r"""(n, 2 d) centroids :math:`c(x) = \partial\, \mathrm{logit}_{y}(x) / \partial e(x)` of head ``op_index``.

    x (n, 2) tokens, y (n,) answers. Examples do not interact, so the gradient
    of the summed logits gives every example's own centroid in one backward.
    """
    device = next(model.parameters()).device
    e = model.embed(x.to(device)).detach().requires_grad_(True)
    logits = model.forward_embedded(e)[:, op_index]
    picked = logits.gather(1, y.to(device)[:, None]).sum()
    (c,) = torch.autograd.grad(picked, e)
    return c.reshape(len(x), -1)


def centroid_sensitivity(model: ModularTransformer, names: list[str], v: Tensor, x: Tensor, y: Tensor,
                         op_index: int = 0, eps_rel: float = 0.005) -> float:
    r"""Equation 5: :math:`S(v) = \mathrm{mean}_x \|c(x; a+\epsilon v) - c(x; a-\epsilon v)\|^2 / (2\epsilon)^2`.

    ``v`` (D,) is normalised to unit length; :math:`\epsilon = \epsilon_{rel} \|a\|`
    with :math:`a` the model's current attention vector.
    """
    a = attention_vector(model, names)
    v = v.to(a.device) / v.norm()
    eps = eps_rel * a.norm()
    with attention_replaced(model, names, a + eps * v):
        c_plus = centroids(model, x, y, op_index)
    with attention_replaced(model, names, a - eps * v):
        c_minus = centroids(model, x, y, op_index)
    return float(((c_plus - c_minus) ** 2).sum(1).mean() / (2 * eps) ** 2)


def random_unit_directions(dim: int, n: int, seed: int) -> Tensor:
    """(n, dim) Gaussian directions normalised to unit length, fixed by ``seed``."""
    r = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))
    return r / r.norm(dim=1, keepdim=True)


def rank90(c: Tensor, fraction: float = 0.9) -> int:
    """Fewest principal components of the centred rows of ``c`` (n, m) holding ``fraction`` of the variance."""
    s2 = torch.linalg.svdvals((c - c.mean(0)).double()) ** 2
    cum = torch.cumsum(s2, 0) / s2.sum()
    return int((cum < fraction).sum()) + 1


def probe_pairs(op: str, p: int, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """``n`` probe pairs (n, 2) drawn with ``seed`` from the op's valid pairs, and their answers (n,)."""
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    a, b = a.reshape(-1), b.reshape(-1)
    ok = op_valid(op, a, b)
    a, b = a[ok], b[ok]
    idx = torch.randperm(len(a), generator=torch.Generator().manual_seed(seed))[:n]
    return torch.stack([a[idx], b[idx]], 1), op_result(op, a[idx], b[idx], p)


def per_example_attention_gradients(model: ModularTransformer, names: list[str], x: Tensor, y: Tensor,
                                    op_index: int = 0, chunk: int = 128) -> Tensor:
    r"""(n, D) per-example gradients :math:`\nabla_a \ell(\theta; x_i, y_i)` of head ``op_index``'s cross-entropy."""
    from torch.func import functional_call, grad, vmap

    params = {k: v.detach() for k, v in model.named_parameters()}
    x, y = x.to(next(model.parameters()).device), y.to(next(model.parameters()).device)
    attn = {n: params[n] for n in names}
    rest = {k: v for k, v in params.items() if k not in attn}

    def loss(attn_params, xi, yi):
        logits = functional_call(model, {**rest, **attn_params}, (xi[None],))[0, op_index]
        return torch.nn.functional.cross_entropy(logits[None], yi[None])

    per_example = vmap(grad(loss), in_dims=(None, 0, 0))
    out = []
    for i in range(0, len(x), chunk):
        g = per_example(attn, x[i:i + chunk], y[i:i + chunk])
        out.append(torch.cat([g[n].reshape(len(x[i:i + chunk]), -1) for n in names], 1))
    return torch.cat(out)


def per_example_svd(model: ModularTransformer, names: list[str], x: Tensor, y: Tensor, k: int = 3,
                    op_index: int = 0) -> tuple[Tensor, Tensor]:
    """:func:`per_example_svd_basis` of the per-example attention gradients of head ``op_index``, without
    per-example passes: the Gram and k + 1 weighted backwards (:func:`gradtools.gradient_svd`)."""
    from .gram import gradient_svd

    layers = list(dict.fromkeys(name.rsplit(".", 1)[0] for name in names))
    device = next(model.parameters()).device

    def losses(m, batch):
        return nn.functional.cross_entropy(m(batch[0])[:, op_index], batch[1], reduction="none")

    svd = gradient_svd(model, losses, (x.to(device), y.to(device)), k, layers=layers, center=True)
    if svd.names != list(names):
        raise ValueError(f"`names` must be whole linear layers' weights and biases in model order; got {names}")
    return svd.mean, svd.vectors


def per_example_svd_basis(grads: Tensor, k: int = 3) -> tuple[Tensor, Tensor]:
    """The mean gradient (D,) and the top-k right singular vectors (k, D) of the centred (n, D) matrix."""
    mean = grads.mean(0)
    return mean, top_right_singular_vectors(grads - mean, k)[0]


def coupling_at_checkpoint(model: ModularTransformer, names: list[str], directions: dict[str, Tensor],
                           random_dirs: Tensor, x: Tensor, y: Tensor, op_index: int = 0,
                           eps_rel: float = 0.005) -> pd.DataFrame:
    """R of each named direction set at the model's current weights.

    ``directions`` maps a label (e.g. ``"update_sed"``) to a (k, D) basis;
    every row gets :math:`R = S(v_i) / \\mathrm{median}_r S(r)`. Returns a
    tidy table: estimator, index, S, S_random_median, R.
    """
    s_random = torch.tensor([centroid_sensitivity(model, names, r, x, y, op_index, eps_rel) for r in random_dirs])
    median = float(s_random.median())
    rows = []
    for label, basis in directions.items():
        for i, v in enumerate(basis):
            s = centroid_sensitivity(model, names, v, x, y, op_index, eps_rel)
            rows.append(dict(estimator=label, index=i, S=s, S_random_median=median, R=s / median))
    return pd.DataFrame(rows)


def coupling_curve(model: ModularTransformer, checkpoints: list[tuple[int, dict]], names: list[str],
                   bases: dict[str, list[Tensor]], at: list[int], x: Tensor, y: Tensor, op_index: int = 0,
                   n_random: int = 20, random_seed: int = 0, eps_rel: float = 0.005,
                   progress: bool = True, desc: str = "coupling") -> pd.DataFrame:
    """R of every basis at the checkpoints indexed by ``at``, plus the centroids' rank-90 there.

    ``bases[label][t]`` is the (k, D) basis at checkpoint t. Returns one row
    per (checkpoint, estimator, basis vector): step, estimator, index, S,
    S_random_median, R, rank90.
    """
    dim = len(attention_vector(model, names))
    random_dirs = random_unit_directions(dim, n_random, random_seed)
    tables = []
    for t in tqdm(at, desc=desc, disable=not progress, leave=False):
        step, state = checkpoints[t]
        model.load_state_dict(state)
        df = coupling_at_checkpoint(model, names, {k: b[t] for k, b in bases.items() if len(b[t])},
                                    random_dirs, x, y, op_index, eps_rel)
        df.insert(0, "step", step)
        df["rank90"] = rank90(centroids(model, x, y, op_index))
        tables.append(df)
    return pd.concat(tables, ignore_index=True)
