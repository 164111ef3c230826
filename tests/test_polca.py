"""POLCA against float64 brute force: per-token reverse-mode terms, dense deflated Hessians, hand-made clusters."""
import numpy as np
import pytest
import torch
from torch.func import functional_call

from gradtools import addition as A
from torch.overrides import TorchFunctionMode

from gradtools.curvature import _sdpa, flatten, unflatten
from gradtools.lm import tiny_causal_lm
from gradtools.polca import (carry_separation, chance_max_homogeneity, cluster_curves, cluster_homogeneity,
                             decomposition_check, decreasing_tokens, decreasing_vectors, functional_loss,
                             hessian_basis, homogeneity_measures, homogeneity_rows, max_homogeneity,
                             polca_over_training, polca_terms, projected_loss, random_orthonormal_basis)
from tiny_models import SequenceMLP, squared_error


def params_of(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


class CompositeAttentionOnly(TorchFunctionMode):
    """SDPA has no double backward on CPU: run it as matmul + softmax; LayerNorm stays native."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        func = _sdpa if func is torch.nn.functional.scaled_dot_product_attention else func
        return func(*args, **(kwargs or {}))


def reverse_mode_terms(model, per_token_loss, params, directions):
    """<g_i, b> and b^T H_i b by one backward and one double backward per token and direction (float64)."""
    names = list(params)
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    losses = per_token_loss(leaves)
    first = torch.zeros(directions.shape[1], losses.shape[0], dtype=torch.float64)
    second = torch.zeros_like(first)
    for i in range(losses.shape[0]):
        grads = torch.autograd.grad(losses[i], [leaves[n] for n in names], create_graph=True)
        g = torch.cat([x.reshape(-1) for x in grads])
        for j in range(directions.shape[1]):
            gb = g @ directions[:, j]
            hb = torch.autograd.grad(gb, [leaves[n] for n in names], retain_graph=True)
            first[j, i] = gb.detach()
            second[j, i] = torch.cat([x.reshape(-1) for x in hb]) @ directions[:, j]
    return first, second


@pytest.fixture
def addition_lm():
    """A tiny GPT-NeoX (LayerNorm, rotary attention) on three addition problems, float64."""
    model = tiny_causal_lm(A.VOCAB_SIZE, d_model=8, n_layers=2, n_heads=2, context=16, dtype=torch.float64)
    batch = A.encode(torch.tensor([123, 505]), torch.tensor([456, 495]))
    per_token = functional_loss(model, lambda m, b: A.answer_token_losses(m, b).reshape(-1), batch)
    return model, per_token


def test_polca_terms_match_per_token_reverse_mode(addition_lm):
    model, per_token = addition_lm
    params = params_of(model)
    dim = flatten(params).numel()
    g = torch.Generator().manual_seed(0)
    basis = random_orthonormal_basis(dim, 2, seed=1, dtype=torch.float64)
    step = 1e-2 * torch.randn(dim, generator=g, dtype=torch.float64)
    nxt = unflatten(flatten(params) + step, params)
    terms = polca_terms(per_token, params, nxt, basis, chunk=2)
    # the reference: reverse-over-reverse through native LayerNorm (whose forward-over-forward is the trap)
    with CompositeAttentionOnly():
        ref_first, ref_second = reverse_mode_terms(model, per_token, params, basis)
    assert terms.first.shape == terms.second.shape == (2, 8)
    assert (terms.first - ref_first).abs().max() < 1e-10 * ref_first.abs().max()
    assert (terms.second - ref_second).abs().max() < 1e-10 * ref_second.abs().max()
    assert torch.allclose(terms.coef, basis.T @ step, atol=1e-14)
    assert torch.allclose(terms.polca, ref_first * terms.coef[:, None] + 0.5 * ref_second * terms.coef[:, None] ** 2,
                          rtol=1e-9, atol=1e-14)
    assert torch.equal(terms.fisher, terms.first ** 2)


def test_full_step_taylor_error_is_third_order(addition_lm):
    model, per_token = addition_lm
    params = params_of(model)
    direction = torch.randn(flatten(params).numel(), dtype=torch.float64)
    direction /= direction.norm()
    errors = []
    for eps in (2e-2, 1e-2):
        nxt = unflatten(flatten(params) + eps * direction, params)
        predicted = polca_terms(per_token, params, nxt, full_step=True).polca[0]
        with torch.no_grad():
            actual = per_token(nxt) - per_token(params)
        errors.append((predicted - actual).abs().max().item())
        first_only = polca_terms(per_token, params, nxt, full_step=True).polca_first_order[0]
        assert (first_only - actual).abs().max() > 10 * errors[-1]  # the second-order term matters
    assert 5 < errors[0] / errors[1] < 11  # halving the step divides a third-order error by ~8


@pytest.fixture
def mlp_problem():
    """A LayerNorm MLP with 67 parameters: small enough for dense Hessians."""
    mlp = SequenceMLP(d_in=3, d_hidden=5, d_out=2).double()
    batch = (torch.randn(5, 2, 3, dtype=torch.float64), torch.randn(5, 2, 2, dtype=torch.float64))

    def per_example(params):
        return squared_error(lambda x: functional_call(mlp, params, (x,)), batch)
    return params_of(mlp), per_example


def test_first_order_terms_over_a_complete_basis_sum_to_the_gradient_step(mlp_problem):
    params, per_example = mlp_problem
    dim = flatten(params).numel()
    step = 1e-3 * torch.randn(dim, dtype=torch.float64)
    nxt = unflatten(flatten(params) + step, params)
    complete = polca_terms(per_example, params, nxt, random_orthonormal_basis(dim, dim, dtype=torch.float64), chunk=64)
    along_step = polca_terms(per_example, params, nxt, full_step=True)
    assert (complete.polca_first_order.sum(0) - along_step.polca_first_order[0]).abs().max() < 1e-12


def dense_hessian(loss_fn, params):
    flat = flatten(params)
    return torch.autograd.functional.hessian(lambda x: loss_fn(unflatten(x, params)), flat)


def test_hessian_basis_is_algorithm_1(mlp_problem):
    params, per_example = mlp_problem
    loss = lambda p: per_example(p).mean()  # noqa: E731
    dim = flatten(params).numel()
    g = torch.Generator().manual_seed(2)
    checkpoints = [unflatten(flatten(params) + 0.3 * torch.randn(dim, generator=g, dtype=torch.float64), params)
                   for _ in range(3)]
    basis = hessian_basis(loss, checkpoints, k=2, max_iters=dim)
    b = basis.vectors
    assert b.shape == (dim, 6) and list(basis.source) == [0, 0, 1, 1, 2, 2]
    assert (b.T @ b - torch.eye(6, dtype=torch.float64)).abs().max() < 1e-10
    assert basis.residuals.max() < 1e-8
    for j, ckpt in enumerate(checkpoints):
        prev = b[:, : 2 * j]
        proj = torch.eye(dim, dtype=torch.float64) - prev @ prev.T
        deflated = proj @ dense_hessian(loss, ckpt) @ proj
        ref_values, _ = torch.linalg.eigh(deflated)
        got_values = basis.eigenvalues[2 * j: 2 * j + 2]
        assert torch.allclose(got_values, ref_values.flip(0)[:2], rtol=1e-8)
        for col in (2 * j, 2 * j + 1):
            v = b[:, col]
            assert (deflated @ v - basis.eigenvalues[col] * v).norm() < 1e-7 * basis.eigenvalues[col].abs()


def random_walk(params, n_steps, seed):
    """Flat checkpoints: ``params`` and ``n_steps`` small random steps from it (float64)."""
    g = torch.Generator().manual_seed(seed)
    flat = [flatten(params)]
    for _ in range(n_steps):
        flat.append(flat[-1] + 1e-2 * torch.randn(flat[0].numel(), generator=g, dtype=torch.float64))
    return flat


def test_polca_over_training_matches_interval_terms_and_resumes_from_cache(mlp_problem, tmp_path):
    params, per_example = mlp_problem
    dim = flatten(params).numel()
    flat = random_walk(params, 4, seed=3)
    steps = [0, 2, 4, 6, 8]
    loads = []

    def load(step):
        loads.append(step)
        return unflatten(flat[steps.index(step)], params)
    bases = {"random": random_orthonormal_basis(dim, 3, seed=4, dtype=torch.float64),
             "other": random_orthonormal_basis(dim, 2, seed=5, dtype=torch.float64)}
    out = polca_over_training(per_example, load, steps, bases, cache_dir=tmp_path, part_size=3, progress=False)
    assert out["random"].first.shape == (4, 3, 5) and out["other"].coef.shape == (4, 2)
    assert out["full_step"].first.shape == (4, 1, 5) and out["loss"].shape == (5, 5)
    for t in range(4):
        ref = polca_terms(per_example, load(steps[t]), load(steps[t + 1]), bases["other"])
        assert torch.allclose(out["other"].polca[t], ref.polca, rtol=1e-12, atol=1e-15)
        full = polca_terms(per_example, load(steps[t]), load(steps[t + 1]), full_step=True)
        assert torch.allclose(out["full_step"].polca[t], full.polca, rtol=1e-12, atol=1e-15)
    assert torch.allclose(out["loss"][2], per_example(load(4)))
    loads.clear()
    again = polca_over_training(per_example, load, steps, bases, cache_dir=tmp_path, part_size=3, progress=False)
    assert loads == [8] and torch.equal(again["random"].second, out["random"].second)  # parts came from the cache


def test_projected_loss_filters_and_decomposition_check():
    polca = torch.tensor([[[-1.0, 2.0], [0.5, 0.5]], [[-1.0, -3.0], [0.5, -2.0]]])  # (T-1=2, k=2, n=2)
    projected = projected_loss(polca)
    assert projected.shape == (3, 2, 2) and torch.equal(projected[0], torch.zeros(2, 2))
    assert torch.equal(projected[-1], torch.tensor([[-2.0, -1.0], [1.0, -1.5]]))
    assert decreasing_vectors(projected).tolist() == [True, True]
    assert decreasing_tokens(projected[:, 1]).tolist() == [False, True]
    loss = torch.tensor([[1.0, 2.0], [0.0, 2.0], [0.0, 0.0]])
    table = decomposition_check(loss, torch.tensor([[-1.0, 0.0], [0.0, -1.0]]))
    assert table.explained.tolist() == pytest.approx([1.0, 0.75])
    assert table.mean_abs_error.tolist() == pytest.approx([0.0, 0.5])


def test_decomposition_check_over_spans_compares_summed_predictions():
    loss = torch.tensor([[1.0, 2.0], [0.0, 2.0], [0.0, 0.0], [3.0, 3.0], [5.0, 5.0]])  # T = 5
    predicted = torch.tensor([[-1.0, 0.0], [0.0, -1.0], [2.0, 2.0], [1.0, 1.0]])
    one = decomposition_check(loss, predicted)
    assert one.equals(decomposition_check(loss, predicted, span=1)) and len(one) == 4
    two = decomposition_check(loss, predicted, span=2)  # blocks 0->2, 2->4: actual [-1,-2], [5,5]; sums [-1,-1], [3,3]
    assert two.explained.tolist() == pytest.approx([1 - 1 / 5, 1 - 8 / 50])
    assert two.mean_abs_change.tolist() == pytest.approx([1.5, 5.0])
    three = decomposition_check(loss, predicted, span=3)  # one block 0->3, the last interval dropped
    assert len(three) == 1 and three.explained.tolist() == pytest.approx([1 - 1 / 5])
    with pytest.raises(ValueError):
        decomposition_check(loss, predicted, span=0)


def test_homogeneity_and_its_chance_level():
    clusters = np.array([0, 0, 0, 0, 1, 1, 1, -1, -1])
    labels = np.array(["a", "a", "a", "b", "b", "b", "a", "a", "b"])
    table = cluster_homogeneity(clusters, labels)
    assert table.homogeneity.tolist() == pytest.approx([0.75, 2 / 3]) and table.majority.tolist() == ["a", "b"]
    assert max_homogeneity(clusters, labels) == pytest.approx(0.75)
    assert max_homogeneity(clusters, labels, min_size=4) == pytest.approx(0.75)
    assert np.isnan(max_homogeneity(clusters, labels, min_size=5))
    assert chance_max_homogeneity(clusters, np.array(["a"] * 9)) == 1.0
    rng = np.random.default_rng(0)
    big = np.repeat(np.arange(4), 500)
    coin = rng.random(2000) < 0.3
    chance = chance_max_homogeneity(big, coin, permutations=50)
    assert 0.7 < chance < 0.75  # the majority share (0.7) plus the maximum's small upward bias


def test_hdbscan_separates_two_families_of_curves():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 20)
    early = -1 / (1 + np.exp(-(t - 0.2) * 40)) + 0.02 * rng.standard_normal((60, 20))
    late = -1 / (1 + np.exp(-(t - 0.8) * 40)) + 0.02 * rng.standard_normal((60, 20))
    clusters = cluster_curves(np.vstack([early, late]), min_cluster_size=10)
    truth = np.repeat(["early", "late"], 60)
    table = cluster_homogeneity(clusters, truth)
    assert len(table) == 2 and table.homogeneity.min() == 1.0 and (clusters >= 0).mean() > 0.9


def test_homogeneity_measures_on_addition_labels():
    tokens = A.token_labels(torch.tensor([999, 123, 55, 10]), torch.tensor([1, 456, 45, 10]))
    # cluster 0: every carry token; cluster 1: every token without carry
    clusters = np.where(tokens.carry.to_numpy(), 0, 1)
    rows = {r["measure"]: r for r in homogeneity_measures(clusters, tokens, permutations=20)}
    assert rows["carry"]["homogeneity"] == 1.0 and rows["carry_hundreds_tens"]["homogeneity"] == 1.0
    # carry cluster: 1 thousands, 2 hundreds, 2 tens (max 2/5); no-carry cluster: 4 ones of 11 tokens
    assert rows["digit_carry"]["homogeneity"] == pytest.approx(2 / 5)
    assert rows["carry"]["clusters"] == 2 and rows["carry"]["clustered"] == 16
    assert rows["carry"]["chance"] < 1.0


def _addition_tokens(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return A.token_labels(torch.as_tensor(rng.integers(0, 1000, n)), torch.as_tensor(rng.integers(0, 1000, n)))


def test_homogeneity_rows_clusters_kept_tokens_and_scores_carry():
    tokens = _addition_tokens()
    carry = tokens.carry.to_numpy()
    t = np.linspace(0, 1, 20)[:, None]
    rng = np.random.default_rng(1)
    # carry tokens break through early, the others late: (T, n) curves
    curves = -1 / (1 + np.exp(-(t - np.where(carry, 0.2, 0.8)) * 40)) + 0.01 * rng.standard_normal((20, len(tokens)))
    keep = np.ones(len(tokens), bool)
    keep[:8] = False
    rows, clusters = homogeneity_rows(torch.as_tensor(curves), torch.as_tensor(keep), tokens, "POLCA", 2,
                                      min_cluster_size=10, permutations=20)
    by = {r["measure"]: r for r in rows}
    assert clusters.shape == (keep.sum(),)
    assert by["carry"]["homogeneity"] == 1.0 and by["carry_hundreds_tens"]["homogeneity"] == 1.0
    assert by["carry"]["chance"] < 1.0
    assert by["carry"]["method"] == "POLCA" and by["carry"]["rank"] == 2 and by["carry"]["tokens"] == keep.sum()
    assert by["carry"]["min_samples"] == max(2, keep.sum() // 15) and by["carry"]["min_samples_rule"] == "tokens/15"
    # numpy in, a given min_samples recorded as such
    rows, _ = homogeneity_rows(curves, keep, tokens, "exact", 1, min_cluster_size=10, min_samples=5, permutations=20)
    assert {r["min_samples_rule"] for r in rows} == {"5"} and {r["min_samples"] for r in rows} == {5}


def test_carry_separation_flips_with_a_carry_signal():
    tokens = _addition_tokens(200)
    carry = tokens.carry.to_numpy().astype(float)
    rng = np.random.default_rng(0)
    signal = carry + 0.3 * rng.standard_normal(len(tokens))
    noise = rng.standard_normal(len(tokens))
    strong = carry_separation(signal, tokens, "tens", permutations=50)
    weak = carry_separation(noise, tokens, "tens", permutations=50)
    assert strong["separation"] > strong["null_95"] and strong["auc"] > 0.9
    assert weak["separation"] < 0.2 and 0 < weak["null_95"] < 0.2
    assert carry_separation(signal, tokens, "ones") is None  # the ones place never receives a carry


def test_polca_over_training_in_forked_workers_equals_one_process(mlp_problem, tmp_path):
    params, per_example = mlp_problem
    dim = flatten(params).numel()
    flat = random_walk(params, 5, seed=6)
    steps = [0, 1, 2, 3, 4, 5]
    load = lambda step: unflatten(flat[step], params)  # noqa: E731
    bases = {"random": random_orthonormal_basis(dim, 3, seed=7, dtype=torch.float64)}
    want = polca_over_training(per_example, load, steps, bases, progress=False)
    got = polca_over_training(per_example, load, steps, bases, cache_dir=tmp_path, part_size=2, progress=False,
                              workers=2)
    assert len(list(tmp_path.glob("polca-*.pt"))) == 3  # every part was computed by a worker and saved
    assert torch.equal(got["random"].first, want["random"].first) and torch.equal(got["loss"], want["loss"])
    with pytest.raises(ValueError, match="cache_dir"):
        polca_over_training(per_example, load, steps, bases, progress=False, workers=2)
