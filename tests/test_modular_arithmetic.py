"""Data, model and training loop of the modular-arithmetic family (gradtools.modular_arithmetic)."""
import pandas as pd
import pytest
import torch

from gradtools.modular_arithmetic import (OPS, ModelConfig, ModularTransformer, TrainConfig, attention_parameter_names,
                                          grokking_step, modular_data, op_result, per_op_losses, train)


@pytest.mark.parametrize("op", OPS)
def test_single_op_data_labels_and_split(op):
    p = 11
    data = modular_data(op, p, 0.5, seed=3)
    x = torch.cat([data.x_train, data.x_test])
    y = torch.cat([data.y_train, data.y_test])[:, 0]
    pairs = {(int(a), int(b)) for a, b in x}
    assert len(pairs) == len(x)  # train and test are disjoint
    expected = {(a, b) for a in range(p) for b in range(p) if op != "mul" or (a and b)}
    assert pairs == expected
    assert len(data.x_train) == round(0.5 * len(expected))
    py = {"add": lambda a, b: (a + b) % p, "sub": lambda a, b: (a - b) % p,
          "mul": lambda a, b: (a * b) % p, "sq": lambda a, b: (a * a + b * b) % p}[op]
    assert all(int(t) == py(int(a), int(b)) for (a, b), t in zip(x, y))
    assert bool(data.mask_train.all()) and bool(data.mask_test.all())
    again = modular_data(op, p, 0.5, seed=3)
    assert torch.equal(again.x_train, data.x_train)
    assert not torch.equal(modular_data(op, p, 0.5, seed=4).x_train, data.x_train)


def test_multitask_data_shares_pairs_and_masks_mul():
    data = modular_data(OPS, 7, 0.3, seed=0)
    assert data.y_train.shape[1] == 4
    x, mask = torch.cat([data.x_train, data.x_test]), torch.cat([data.mask_train, data.mask_test])
    assert len(x) == 49
    zero = (x == 0).any(1)
    assert torch.equal(mask[:, 2], ~zero)
    assert bool(mask[:, [0, 1, 3]].all())
    with pytest.raises(ValueError):
        op_result("div", torch.tensor([1]), torch.tensor([1]), 7)


def test_model_shapes_and_embedded_split():
    torch.manual_seed(0)
    cfg = ModelConfig(p=13, n_ops=3, d_model=16, n_heads=4, d_mlp=24, n_layers=2)
    model = ModularTransformer(cfg)
    x = torch.randint(0, 13, (5, 2))
    out = model(x)
    assert out.shape == (5, 3, 13)
    torch.testing.assert_close(model.forward_embedded(model.embed(x)), out)
    names = attention_parameter_names(model)
    assert names == [f"blocks.{i}.attn.{m}.{w}" for i in range(2) for m in ("qkv", "out") for w in ("weight", "bias")]
    assert sum(dict(model.named_parameters())[n].numel() for n in names) == 2 * (4 * 16 * 16 + 4 * 16)
    # the readout is position 0: changing the second token changes the output only through attention
    model.blocks = torch.nn.ModuleList()
    x2 = x.clone()
    x2[:, 1] = (x2[:, 1] + 1) % 13
    torch.testing.assert_close(model(x2), out.new_tensor(model(x)))


def test_per_op_losses_masked_mean():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 2, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (6, 2), generator=g)
    mask = torch.tensor([[1, 1], [1, 0], [1, 1], [0, 0], [1, 1], [1, 0]], dtype=torch.bool)
    losses = per_op_losses(logits, y, mask)
    for op in range(2):
        ref = torch.stack([torch.nn.functional.cross_entropy(logits[i, op][None], y[i, op][None])
                           for i in range(6) if mask[i, op]]).mean()
        torch.testing.assert_close(losses[op], ref)


def test_grokking_step_first_step_above_threshold():
    h = pd.DataFrame(dict(step=[0, 25, 50, 75, 0, 25, 50, 75], op=["add"] * 4 + ["mul"] * 4,
                          test_acc=[0.1, 0.96, 0.5, 0.99, 0.1, 0.2, 0.97, 0.99]))
    assert grokking_step(h) == 75  # every op at once (add dips at 50)
    assert grokking_step(h, op="add") == 25
    assert grokking_step(h[h.step < 50]) is None


def test_train_records_history_and_checkpoints():
    data = modular_data("add", 7, 0.5, seed=0)
    cfg = ModelConfig(p=7, d_model=16, n_heads=2, d_mlp=16, n_layers=1)
    run = train(data, cfg, TrainConfig(max_steps=20, eval_every=5, checkpoint_every=10, batch_size=8,
                                       lr=1e-2), seed=1, progress=False)
    assert list(run.history.step) == [0, 5, 10, 15, 20]
    assert [s for s, _ in run.checkpoints] == [0, 10, 20]
    torch.manual_seed(1)
    init = ModularTransformer(cfg).state_dict()
    for k, v in init.items():
        assert torch.equal(run.checkpoints[0][1][k], v)
    assert not torch.equal(run.checkpoints[2][1]["tok.weight"], init["tok.weight"])
    assert run.history.loss.iloc[-1] < run.history.loss.iloc[0]
    # same seed, same run
    again = train(data, cfg, TrainConfig(max_steps=20, eval_every=5, checkpoint_every=10, batch_size=8, lr=1e-2),
                  seed=1, progress=False)
    assert torch.equal(again.checkpoints[2][1]["tok.weight"], run.checkpoints[2][1]["tok.weight"])


def test_train_stops_after_grokking(monkeypatch):
    # a threshold every model meets: "groks" at step 0, stops 20 steps later, not at max_steps
    import gradtools.modular_arithmetic as ma
    monkeypatch.setattr(ma, "GROKKING_THRESHOLD", 0.0)
    data = modular_data("add", 5, 0.5, seed=0)
    cfg = ModelConfig(p=5, d_model=16, n_heads=2, d_mlp=16, n_layers=1)
    run = train(data, cfg, TrainConfig(max_steps=400, eval_every=10, batch_size=16, lr=1e-2,
                                       steps_after_grokking=20), seed=0, progress=False)
    assert run.grokking_step == 0
    assert run.history.step.max() == 20
