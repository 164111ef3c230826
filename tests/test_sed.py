"""Exactness of the SED kernels (gradtools.sed) against float64 brute force on tiny models."""
import copy

import pytest
import torch

from gradtools.modular_arithmetic import ModelConfig, ModularTransformer, attention_parameter_names, per_op_losses
from gradtools import sed


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    model = ModularTransformer(ModelConfig(p=7, n_ops=2, d_model=8, n_heads=2, d_mlp=12, n_layers=2)).double()
    x = torch.randint(0, 7, (6, 2))
    y = torch.randint(0, 7, (6,))
    return model, attention_parameter_names(model), x, y


def _same_subspace_rows(a, b):
    # singular vectors are defined up to sign: |a b^T| must be the identity
    torch.testing.assert_close((a @ b.T).abs(), torch.eye(len(a), dtype=a.dtype), atol=1e-9, rtol=0)


def test_rolling_svd_basis_matches_svd_of_stacked_window():
    g = torch.Generator().manual_seed(1)
    rows = torch.randn(30, 50, generator=g, dtype=torch.float64) * torch.linspace(3, 0.1, 50, dtype=torch.float64)
    for end, window, k in [(29, 20, 3), (10, 20, 3), (5, 1, 3), (20, 5, 5)]:
        basis = sed.rolling_svd_basis(rows, end, window, k)
        stacked = rows[max(0, end - window + 1):end + 1]
        _, s, vh = torch.linalg.svd(stacked, full_matrices=False)
        kk = min(k, len(stacked))
        assert basis.shape == (kk, 50)
        _same_subspace_rows(basis, vh[:kk])
    v, s_mine = sed.top_right_singular_vectors(rows[:20], 4)
    torch.testing.assert_close(s_mine, torch.linalg.svdvals(rows[:20])[:4], atol=1e-10, rtol=1e-10)


def test_rolling_svd_basis_drops_null_directions():
    rows = torch.zeros(5, 10, dtype=torch.float64)
    rows[:, 0] = torch.arange(1.0, 6.0)  # rank one
    basis = sed.rolling_svd_basis(rows, 4, 5, 3)
    assert basis.shape == (1, 10)
    assert abs(abs(float(basis[0, 0])) - 1) < 1e-12


def test_update_rows_are_checkpoint_differences():
    a = torch.randn(4, 3, dtype=torch.float64)
    rows = sed.update_rows(a)
    assert torch.equal(rows[0], torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(rows[2], a[2] - a[1])


def test_centroids_match_per_example_autograd(tiny):
    model, _, x, y = tiny
    c = sed.centroids(model, x, y, op_index=1)
    for i in range(len(x)):
        e = model.embed(x[i:i + 1]).detach().requires_grad_(True)
        (g,) = torch.autograd.grad(model.forward_embedded(e)[0, 1, y[i]], e)
        torch.testing.assert_close(c[i], g.reshape(-1), atol=1e-12, rtol=1e-10)


def _hand_centroids(model, x, y, op):
    out = []
    for i in range(len(x)):
        e = model.embed(x[i:i + 1]).detach().requires_grad_(True)
        (g,) = torch.autograd.grad(model.forward_embedded(e)[0, op, y[i]], e)
        out.append(g.reshape(-1))
    return torch.stack(out)


def test_sensitivity_matches_hand_finite_difference(tiny):
    model, names, x, y = tiny
    v = torch.randn(sum(dict(model.named_parameters())[n].numel() for n in names), dtype=torch.float64)
    s = sed.centroid_sensitivity(model, names, v, x, y, op_index=0, eps_rel=0.01)
    # by hand: copy the model twice, shift each attention tensor by +-eps v
    a_norm = torch.cat([dict(model.named_parameters())[n].detach().reshape(-1) for n in names]).norm()
    eps, u = 0.01 * a_norm, v / v.norm()
    shifted = []
    for sign in (+1, -1):
        m = copy.deepcopy(model)
        params, offset = dict(m.named_parameters()), 0
        with torch.no_grad():
            for n in names:
                params[n] += sign * eps * u[offset:offset + params[n].numel()].view_as(params[n])
                offset += params[n].numel()
        shifted.append(_hand_centroids(m, x, y, 0))
    expected = float(((shifted[0] - shifted[1]) ** 2).sum(1).mean() / (2 * eps) ** 2)
    assert s == pytest.approx(expected, rel=1e-10)
    # the model is left as it was
    torch.testing.assert_close(_hand_centroids(model, x, y, 0), sed.centroids(model, x, y, 0), atol=1e-12, rtol=0)


def test_sensitivity_tends_to_squared_directional_derivative(tiny):
    # independent check of the formula: S(v) -> mean_x ||(dc/da) v||^2 as eps -> 0
    # (central difference, error O(eps^2)); the Jacobian-vector product is exact
    from torch.func import jacrev, jvp
    model, names, x, y = tiny
    params = {k: p.detach() for k, p in model.named_parameters()}
    attn = {n: params[n] for n in names}
    g = torch.Generator().manual_seed(5)
    v = {n: torch.randn(t.shape, generator=g, dtype=t.dtype) for n, t in attn.items()}
    norm = torch.sqrt(sum((t ** 2).sum() for t in v.values()))
    v = {n: t / norm for n, t in v.items()}
    e = model.embed(x).detach()

    def centroids_at(a):
        picked = lambda e_: _logits_at(model, params, a, e_).gather(1, y[:, None]).sum()
        return jacrev(picked)(e).reshape(len(x), -1)

    _, dc = jvp(centroids_at, (attn,), (v,))
    expected = float((dc ** 2).sum(1).mean())
    flat_v = torch.cat([v[n].reshape(-1) for n in names])
    s = sed.centroid_sensitivity(model, names, flat_v, x, y, op_index=0, eps_rel=1e-5)
    assert expected > 0
    assert s == pytest.approx(expected, rel=1e-6)


def _logits_at(model, params, attn, e):
    from torch.func import functional_call

    class Embedded(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, e_):
            return self.m.forward_embedded(e_)[:, 0]

    return functional_call(Embedded(model), {"m." + k: t for k, t in {**params, **attn}.items()}, (e,))


def test_coupling_ratio_is_sensitivity_over_random_median(tiny):
    model, names, x, y = tiny
    dim = len(sed.attention_vector(model, names))
    rand = sed.random_unit_directions(dim, 5, seed=3)
    basis = sed.random_unit_directions(dim, 2, seed=4)
    df = sed.coupling_at_checkpoint(model, names, {"b": basis}, rand, x, y, op_index=0, eps_rel=0.005)
    median = float(torch.tensor([sed.centroid_sensitivity(model, names, r, x, y, 0, 0.005) for r in rand]).median())
    for i in range(2):
        s = sed.centroid_sensitivity(model, names, basis[i], x, y, 0, 0.005)
        assert float(df.R[i]) == pytest.approx(s / median, rel=1e-12)


def test_rank90_counts_components_of_known_spectrum():
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(40, 40, generator=g, dtype=torch.float64))
    u, _ = torch.linalg.qr(torch.randn(200, 40, generator=g, dtype=torch.float64))
    u = u - u.mean(0)  # centred columns keep the spectrum after centring
    u, _ = torch.linalg.qr(u)
    # variances 50, 30, 15, 5 (% of total): 90% needs three components
    s = torch.zeros(40, dtype=torch.float64)
    s[:4] = torch.tensor([50.0, 30.0, 15.0, 5.0]).sqrt()
    c = (u * s) @ q.T + 7.0
    assert sed.rank90(c) == 3
    s[:4] = torch.tensor([40.0, 30.0, 15.0, 15.0]).sqrt()  # 85% after three
    assert sed.rank90((u * s) @ q.T) == 4


def test_per_example_gradients_and_basis(tiny):
    model, names, x, y = tiny
    g = sed.per_example_attention_gradients(model, names, x, y, op_index=1, chunk=4)
    params = dict(model.named_parameters())
    for i in range(len(x)):
        logits = model(x[i:i + 1])[0, 1]
        loss = torch.nn.functional.cross_entropy(logits[None], y[i:i + 1])
        ref = torch.cat([t.reshape(-1) for t in torch.autograd.grad(loss, [params[n] for n in names])])
        torch.testing.assert_close(g[i], ref, atol=1e-12, rtol=1e-10)
    mean, basis = sed.per_example_svd_basis(g, 3)
    torch.testing.assert_close(mean, g.mean(0))
    _same_subspace_rows(basis, torch.linalg.svd(g - g.mean(0), full_matrices=False)[2][:3])
    # study 4's path: the same mean and basis from the Gram, without per-example passes
    fast_mean, fast_basis = sed.per_example_svd(model, names, x, y, 3, op_index=1)
    torch.testing.assert_close(fast_mean, g.mean(0), atol=1e-12, rtol=1e-10)
    _same_subspace_rows(fast_basis, basis)


def test_attention_gradients_per_op_and_total(tiny):
    model, names, x, _ = tiny
    y2 = torch.randint(0, 7, (len(x), 2))
    mask = torch.ones(len(x), 2, dtype=torch.bool)
    mask[0, 1] = False
    grads = sed.attention_gradients(model, names, x, y2, mask)
    params = dict(model.named_parameters())
    for op in range(2):
        keep = mask[:, op]
        loss = torch.nn.functional.cross_entropy(model(x[keep])[:, op], y2[keep, op])
        ref = torch.cat([t.reshape(-1) for t in torch.autograd.grad(loss, [params[n] for n in names])])
        torch.testing.assert_close(grads[op], ref, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(grads[2], grads[0] + grads[1])
