"""The rank-k projected optimiser step (gradtools.projected_step) against dense projectors and manual steps."""
import copy

import pandas as pd
import pytest
import torch

from gradtools.modular_arithmetic import (ModelConfig, ModularTransformer, TrainConfig, attention_parameter_names,
                                          modular_data, per_op_losses, train)
from gradtools.projected_step import ProjectedStep, project, random_orthonormal_basis
from gradtools.sed import attention_vector


def _setup(seed=0):
    torch.manual_seed(seed)
    model = ModularTransformer(ModelConfig(p=7, d_model=8, n_heads=2, d_mlp=12, n_layers=1)).double()
    x = torch.randint(0, 7, (16, 2))
    y = torch.randint(0, 7, (16, 1))
    return model, attention_parameter_names(model), x, y


def _backward(model, x, y):
    model.zero_grad(set_to_none=True)
    per_op_losses(model(x), y, torch.ones_like(y, dtype=torch.bool)).sum().backward()


def _adamw(model):
    return torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.98), weight_decay=1.0)


def test_project_matches_dense_projector():
    basis = random_orthonormal_basis(12, 3, torch.Generator().manual_seed(0))
    torch.testing.assert_close(basis @ basis.T, torch.eye(3, dtype=torch.float64), atol=1e-12, rtol=0)
    P = basis.T @ basis
    x = torch.randn(12, dtype=torch.float64)
    torch.testing.assert_close(project(x, basis, "keep"), P @ x, atol=1e-12, rtol=0)
    torch.testing.assert_close(project(x, basis, "remove"), (torch.eye(12, dtype=torch.float64) - P) @ x,
                               atol=1e-12, rtol=0)
    empty = torch.zeros(0, 12, dtype=torch.float64)
    assert torch.equal(project(x, empty, "remove"), x)
    assert torch.equal(project(x, empty, "keep"), torch.zeros_like(x))
    with pytest.raises(ValueError):
        project(x, basis, "flip")


@pytest.mark.parametrize("flavour", ["update", "gradient"])
def test_empty_basis_equals_unprojected_step(flavour):
    model, names, x, y = _setup()
    ref = copy.deepcopy(model)
    opt, opt_ref = _adamw(model), _adamw(ref)
    step = ProjectedStep(names, "empty", "remove", flavour)
    for _ in range(3):
        _backward(model, x, y)
        step.step(model, opt)
        _backward(ref, x, y)
        opt_ref.step()
    for (n, p), (_, q) in zip(model.named_parameters(), ref.named_parameters()):
        torch.testing.assert_close(p, q, atol=1e-13, rtol=0, msg=n)


def test_gradient_flavour_leaves_removed_subspace_untouched():
    # with an optimiser that is linear in the gradient (SGD, no decay) the step has no
    # component in the removed subspace; the random basis is re-drawn from the same seed
    model, names, x, y = _setup()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.0)
    step = ProjectedStep(names, "random", "remove", "gradient", k=3, seed=11)
    gen = torch.Generator().manual_seed(11)
    for _ in range(3):
        before = attention_vector(model, names).clone()
        _backward(model, x, y)
        basis = random_orthonormal_basis(len(before), 3, gen)
        step.step(model, opt)
        moved = attention_vector(model, names) - before
        assert moved.norm() > 1e-3
        torch.testing.assert_close(basis @ moved, torch.zeros(3, dtype=torch.float64), atol=1e-13, rtol=0)


def test_gradient_flavour_feeds_adamw_the_projected_gradient():
    model, names, x, y = _setup()
    ref = copy.deepcopy(model)
    opt, opt_ref = _adamw(model), _adamw(ref)
    step = ProjectedStep(names, "random", "keep", "gradient", k=2, seed=5)
    gen = torch.Generator().manual_seed(5)
    for _ in range(3):
        _backward(model, x, y)
        step.step(model, opt)
        _backward(ref, x, y)
        params = dict(ref.named_parameters())
        g = torch.cat([params[n].grad.reshape(-1) for n in names])
        basis = random_orthonormal_basis(len(g), 2, gen)
        g = basis.T @ (basis @ g)
        offset = 0
        for n in names:
            params[n].grad = g[offset:offset + params[n].numel()].view_as(params[n]).clone()
            offset += params[n].numel()
        opt_ref.step()
    for (n, p), (_, q) in zip(model.named_parameters(), ref.named_parameters()):
        torch.testing.assert_close(p, q, atol=1e-13, rtol=0, msg=n)


@pytest.mark.parametrize("mode", ["keep", "remove"])
def test_update_flavour_projects_adamw_step_with_sed_basis(mode):
    model, names, x, y = _setup()
    ref = copy.deepcopy(model)
    opt, opt_ref = _adamw(model), _adamw(ref)
    step = ProjectedStep(names, "sed", mode, "update", k=2, window=3)
    raw = []
    for _ in range(5):
        _backward(model, x, y)
        before = attention_vector(model, names).clone()
        others = {n: p.detach().clone() for n, p in model.named_parameters() if n not in names}
        # the unprojected AdamW step from the same state, on a copy
        shadow = copy.deepcopy(model)
        for p_shadow, p in zip(shadow.parameters(), model.parameters()):
            p_shadow.grad = p.grad.clone()  # deepcopy does not copy gradients
        shadow_opt = _adamw(shadow)
        shadow_opt.load_state_dict(copy.deepcopy(opt.state_dict()))  # not shared moments
        shadow_opt.step()
        delta = attention_vector(shadow, names) - before
        raw.append(delta)
        step.step(model, opt)
        _, _, vh = torch.linalg.svd(torch.stack(raw[-3:]), full_matrices=False)
        P = vh[:2].T @ vh[:2]
        expected = P @ delta if mode == "keep" else delta - P @ delta
        torch.testing.assert_close(attention_vector(model, names) - before, expected, atol=1e-12, rtol=0)
        if mode == "remove":
            torch.testing.assert_close(vh[:2] @ (attention_vector(model, names) - before),
                                       torch.zeros(len(vh[:2]), dtype=torch.float64), atol=1e-12, rtol=0)
        # non-attention parameters take their natural AdamW step
        for n, p in shadow.named_parameters():
            if n not in names:
                torch.testing.assert_close(dict(model.named_parameters())[n], p, atol=1e-14, rtol=0)
                assert not torch.equal(p, others[n])


def test_unknown_settings_fail():
    with pytest.raises(ValueError):
        ProjectedStep(["a"], "sed", "sideways", "update")
    with pytest.raises(ValueError):
        ProjectedStep(["a"], "sed", "keep", "momentum")


@pytest.mark.parametrize("flavour", ["update", "gradient"])
def test_sed_basis_recorded_every_few_steps(flavour):
    # one vector per `sed_every` steps: the summed raw updates (update flavour) or that step's
    # raw gradient (gradient flavour); the basis is recomputed then and held in between
    model, names, x, y = _setup()
    opt = _adamw(model)
    step = ProjectedStep(names, "sed", "keep", flavour, k=2, window=2, sed_every=3)
    raws, recorded, pending = [], [], 0
    for i in range(8):
        _backward(model, x, y)
        before = attention_vector(model, names).clone()
        params = dict(model.named_parameters())
        grad = torch.cat([params[n].grad.reshape(-1) for n in names])
        shadow = copy.deepcopy(model)
        for p_shadow, p in zip(shadow.parameters(), model.parameters()):
            p_shadow.grad = p.grad.clone()
        shadow_opt = _adamw(shadow)
        shadow_opt.load_state_dict(copy.deepcopy(opt.state_dict()))
        shadow_opt.step()
        raw = attention_vector(shadow, names) - before if flavour == "update" else grad
        pending = pending + raw
        if i % 3 == 0:
            recorded.append(pending if flavour == "update" else raw)
            pending = 0
        step.step(model, opt)
        _, _, vh = torch.linalg.svd(torch.stack(recorded[-2:]), full_matrices=False)
        torch.testing.assert_close((step._basis @ vh[:2].T).abs(),
                                   torch.eye(len(vh[:2]), dtype=torch.float64), atol=1e-9, rtol=0)


def _shadow_step(model, opt, names):
    """The unprojected AdamW step on attention from the model's current state and gradients, on a copy."""
    shadow = copy.deepcopy(model)
    for p_shadow, p in zip(shadow.parameters(), model.parameters()):
        p_shadow.grad = p.grad.clone()  # deepcopy does not copy gradients
    shadow_opt = _adamw(shadow)
    shadow_opt.load_state_dict(copy.deepcopy(opt.state_dict()))  # not shared moments
    before = attention_vector(model, names).clone()
    shadow_opt.step()
    return attention_vector(shadow, names) - before


def _dense_share(P, u):
    """||P u||^2 / ||u||^2 with a dense float64 projector."""
    return float((P @ u).square().sum() / u.square().sum())


@pytest.mark.parametrize("mode", ["keep", "remove"])
def test_update_flavour_logs_kept_share_of_adamws_natural_step(mode):
    # brute force: the natural AdamW step from a shadow copy, the dense projector of the SVD
    # basis of the recorded updates, the kept share and norms computed in float64 by hand
    model, names, x, y = _setup()
    opt = _adamw(model)
    step = ProjectedStep(names, "sed", mode, "update", k=2, window=3, sed_every=2)
    recorded, pending, expected = [], 0, []
    eye = torch.eye(len(attention_vector(model, names)), dtype=torch.float64)
    for i in range(7):
        _backward(model, x, y)
        before = attention_vector(model, names).clone()
        natural = _shadow_step(model, opt, names)
        pending = pending + natural
        if i % 2 == 0:
            recorded.append(pending)
            pending = 0
        step.step(model, opt)
        _, _, vh = torch.linalg.svd(torch.stack(recorded[-3:]), full_matrices=False)
        P = vh[:2].T @ vh[:2]
        kept = P if mode == "keep" else eye - P
        taken = attention_vector(model, names) - before
        expected.append(dict(natural_norm=float(natural.norm()), kept_share=_dense_share(kept, natural),
                             step_norm=float(taken.norm()), step_kept_share=_dense_share(kept, taken),
                             attention_norm=float(attention_vector(model, names).norm())))
    log = step.history()
    assert list(log.step) == list(range(7))
    assert list(log.columns) == ["step", *ProjectedStep.LOG_COLUMNS]
    ref = pd.DataFrame(expected)
    for col in ProjectedStep.LOG_COLUMNS:
        torch.testing.assert_close(torch.tensor(log[col].to_numpy()), torch.tensor(ref[col].to_numpy()),
                                   atol=1e-9, rtol=1e-9, msg=col)
    # the update flavour takes exactly the kept part: its step lies wholly in the kept subspace (where there is
    # a step: removing a basis made of this very update leaves rounding noise)
    moved = log[log.step_norm > 1e-8 * log.natural_norm]
    assert len(moved) >= 5
    torch.testing.assert_close(torch.tensor(moved.step_kept_share.to_numpy()),
                               torch.ones(len(moved), dtype=torch.float64), atol=1e-9, rtol=0)
    assert ((log.kept_share > -1e-12) & (log.kept_share < 1 + 1e-12)).all()
    assert log.kept_share.between(1e-6, 1 - 1e-6).sum() >= 5  # neither everything nor nothing kept


def test_gradient_flavour_logs_kept_share_of_the_gradient():
    # the random basis is re-drawn from the same seed; the natural object is the attention gradient
    model, names, x, y = _setup()
    opt = _adamw(model)
    step = ProjectedStep(names, "random", "keep", "gradient", k=3, seed=7)
    gen = torch.Generator().manual_seed(7)
    shares, step_shares = [], []
    for _ in range(4):
        _backward(model, x, y)
        params = dict(model.named_parameters())
        grad = torch.cat([params[n].grad.reshape(-1) for n in names])
        before = attention_vector(model, names).clone()
        basis = random_orthonormal_basis(len(grad), 3, gen)
        P = basis.T @ basis
        step.step(model, opt)
        shares.append(_dense_share(P, grad))
        step_shares.append(_dense_share(P, attention_vector(model, names) - before))
    log = step.history()
    torch.testing.assert_close(torch.tensor(log.kept_share.to_numpy()), torch.tensor(shares, dtype=torch.float64),
                               atol=1e-12, rtol=1e-9)
    torch.testing.assert_close(torch.tensor(log.step_kept_share.to_numpy()), torch.tensor(step_shares, dtype=torch.float64),
                               atol=1e-12, rtol=1e-9)
    # AdamW's per-coordinate scaling and weight decay take its step out of the kept subspace
    assert (log.step_kept_share < 0.99).all()


def test_training_returns_the_projection_log_one_row_per_step():
    data = modular_data("add", 7, 0.5, seed=0)
    cfg = ModelConfig(p=7, d_model=8, n_heads=2, d_mlp=12, n_layers=1)
    names = attention_parameter_names(ModularTransformer(cfg))
    tc = TrainConfig(lr=3e-3, batch_size=16, max_steps=12, eval_every=4)
    run = train(data, cfg, tc, seed=0, projection=ProjectedStep(names, "empty", "remove", "update"), progress=False)
    assert list(run.projection.step) == list(range(12))
    # an empty basis removes nothing: every step keeps all of the natural update
    torch.testing.assert_close(torch.tensor(run.projection.kept_share.to_numpy()), torch.ones(12, dtype=torch.float64))
    assert train(data, cfg, tc, seed=0, progress=False).projection is None
