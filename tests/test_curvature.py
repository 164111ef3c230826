"""hvp, lanczos and directional_derivatives against dense float64 references."""
import pytest
import torch
from torch.func import functional_call

from gradtools.curvature import (CompositeOps, directional_derivatives, flatten, hessian_matvec, hvp,
                                 lanczos, unflatten)
from tiny_models import squared_error, token_batch

TOL = 1e-10


def model_loss(model, batch, reduce=True):
    """loss_fn(params) for a model on a fixed batch: scalar (reduce) or per example."""
    def loss(params):
        per_example = squared_error(lambda x: functional_call(model, params, (x,)), batch)
        return per_example.mean() if reduce else per_example
    return loss


def params_of(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def explicit_hessian(loss_fn, params):
    flat = flatten(params)
    return torch.autograd.functional.hessian(lambda x: loss_fn(unflatten(x, params)), flat)


@pytest.fixture
def problem(mlp):
    batch = (torch.randn(6, 3, 5, dtype=torch.float64), torch.randn(6, 3, 3, dtype=torch.float64))
    params = params_of(mlp)
    loss = model_loss(mlp, batch)
    return loss, params, explicit_hessian(loss, params)


def test_hvp_matches_explicit_hessian(problem):
    loss, params, hessian = problem
    v = torch.randn(hessian.shape[0], dtype=torch.float64)
    hv = flatten(hvp(loss, params, unflatten(v, params)))
    assert (hv - hessian @ v).abs().max() / (hessian @ v).abs().max() < TOL


def test_hvp_batched_vectors(problem):
    loss, params, hessian = problem
    vs = torch.randn(4, hessian.shape[0], dtype=torch.float64)
    out = hvp(loss, params, unflatten(vs, params))
    assert all(out[k].shape == (4, *params[k].shape) for k in params)
    flat = torch.cat([out[k].reshape(4, -1) for k in params], dim=1)
    assert (flat - vs @ hessian).abs().max() / (vs @ hessian).abs().max() < TOL


def test_hvp_rejects_misshaped_vector(problem):
    loss, params, _ = problem
    v = {k: torch.zeros(2, 2, *t.shape, dtype=t.dtype) for k, t in params.items()}
    with pytest.raises(ValueError, match="has shape"):
        hvp(loss, params, v)


def test_lanczos_matches_eigh(problem):
    _, params, hessian = problem
    loss = problem[0]
    dim = hessian.shape[0]
    values, vectors = lanczos(hessian_matvec(loss, params), dim, 4, dtype=torch.float64)
    ref_values, ref_vectors = torch.linalg.eigh(hessian)
    assert (values - ref_values.flip(0)[:4]).abs().max() < 1e-8 * ref_values.abs().max()
    overlap = (vectors.T @ ref_vectors.flip(1)[:, :4]).diagonal().abs()
    assert (overlap - 1).abs().max() < 1e-6
    assert (vectors.T @ vectors - torch.eye(4, dtype=torch.float64)).abs().max() < 1e-10


def test_lanczos_on_orthogonal_complement(problem):
    _, _, hessian = problem
    dim = hessian.shape[0]
    basis, _ = torch.linalg.qr(torch.randn(dim, 3, dtype=torch.float64))
    values, vectors = lanczos(lambda x: hessian @ x, dim, 3, orthogonal_to=basis)
    # reference: eigh of the Hessian written in an orthonormal basis of the complement
    full, _ = torch.linalg.qr(torch.cat([basis, torch.randn(dim, dim - 3, dtype=torch.float64)], dim=1))
    complement = full[:, 3:]
    ref_values, ref_w = torch.linalg.eigh(complement.T @ hessian @ complement)
    ref_vectors = complement @ ref_w.flip(1)[:, :3]
    assert (values - ref_values.flip(0)[:3]).abs().max() < 1e-8 * ref_values.abs().max()
    assert ((vectors.T @ ref_vectors).diagonal().abs() - 1).abs().max() < 1e-6
    assert (basis.T @ vectors).abs().max() < 1e-10
    # each vector is an eigenvector of the deflated operator (I - BB^T) H (I - BB^T)
    proj = torch.eye(dim, dtype=torch.float64) - basis @ basis.T
    deflated = proj @ hessian @ proj
    residual = deflated @ vectors - vectors * values
    assert residual.abs().max() < 1e-8 * values.abs().max()


def test_lanczos_exhausts_a_small_space_exactly():
    a = torch.randn(6, 6, dtype=torch.float64)
    sym = a + a.T
    values, _ = lanczos(lambda x: sym @ x, 6, 6, dtype=torch.float64)
    assert (values - torch.linalg.eigvalsh(sym).flip(0)).abs().max() < 1e-10


def test_lanczos_handles_low_rank_operator():
    u, _ = torch.linalg.qr(torch.randn(20, 2, dtype=torch.float64))
    op = u @ torch.diag(torch.tensor([3.0, 1.0], dtype=torch.float64)) @ u.T
    values, vectors = lanczos(lambda x: op @ x, 20, 3, dtype=torch.float64)
    assert torch.allclose(values, torch.tensor([3.0, 1.0, 0.0], dtype=torch.float64), atol=1e-10)


def test_lanczos_rejects_non_orthonormal_basis():
    with pytest.raises(ValueError, match="orthonormal"):
        lanczos(lambda x: x, 5, 1, orthogonal_to=torch.ones(5, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="dim=5"):
        lanczos(lambda x: x, 5, 1, orthogonal_to=torch.eye(4, 2, dtype=torch.float64))


def per_example_reference(per_example_loss, params, v):
    """<g_i, v> and v^T H_i v by reverse-mode autograd, one example at a time."""
    leaves = {k: t.clone().requires_grad_() for k, t in params.items()}
    losses = per_example_loss(leaves)
    first, second = [], []
    for i in range(losses.shape[0]):
        g = torch.autograd.grad(losses[i], list(leaves.values()), create_graph=True)
        gv = sum((gi * v[k]).sum() for gi, k in zip(g, leaves))
        hv = torch.autograd.grad(gv, list(leaves.values()), retain_graph=True)
        first.append(gv.detach())
        second.append(sum((h * v[k]).sum() for h, k in zip(hv, leaves)).detach())
    return torch.stack(first), torch.stack(second)


def test_directional_derivatives_through_layernorm(mlp):
    """The MLP has an nn.LayerNorm: forward-over-forward must still be exact."""
    batch = (torch.randn(7, 3, 5, dtype=torch.float64), torch.randn(7, 3, 3, dtype=torch.float64))
    params = params_of(mlp)
    per_example = model_loss(mlp, batch, reduce=False)
    v = {k: torch.randn_like(t) for k, t in params.items()}
    first, second = directional_derivatives(per_example, params, v)
    ref_first, ref_second = per_example_reference(per_example, params, v)  # native LayerNorm, reverse mode
    assert (first - ref_first).abs().max() < TOL * ref_first.abs().max()
    assert (second - ref_second).abs().max() < TOL * ref_second.abs().max()


def test_directional_derivatives_on_tiny_lm(tiny_lm):
    batch = token_batch(5)
    params = params_of(tiny_lm)

    def per_example(p):
        from gradtools.lm import sequence_losses
        return sequence_losses(lambda **kw: functional_call(tiny_lm, p, (), kw), batch)

    vs = {k: torch.randn(3, *t.shape, dtype=t.dtype) for k, t in params.items()}
    first, second = directional_derivatives(per_example, params, vs)
    assert first.shape == second.shape == (3, 5)
    with CompositeOps():  # SDPA has no double backward on CPU: the reference uses its composite
        for j in range(3):
            ref_first, ref_second = per_example_reference(per_example, params, {k: t[j] for k, t in vs.items()})
            assert (first[j] - ref_first).abs().max() < TOL * ref_first.abs().max()
            assert (second[j] - ref_second).abs().max() < TOL * ref_second.abs().max()
