"""The rank-k projected optimiser step (gradtools.projected_step) against dense projectors and manual steps."""
import copy

import pytest
import torch

from gradtools.modular_arithmetic import ModelConfig, ModularTransformer, attention_parameter_names, per_op_losses
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
