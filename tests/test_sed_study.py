"""Study 4's tables from tiny trained runs (gradtools.sed_study): table 3 and the multitask curves."""
import pytest
import torch

from gradtools import sed, sed_study
from gradtools.modular_arithmetic import (OPS, ModelConfig, ModularTransformer, TrainConfig, attention_parameter_names,
                                          modular_data, train)

P = 7
MODEL = dict(d_model=8, n_heads=2, d_mlp=12, n_layers=1)


@pytest.fixture(autouse=True)
def one_thread():
    # tiny tensors: thread start-up dominates, and a busy machine makes many threads far slower
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_run(ops, steps=20, every=5):
    data = modular_data(ops, P, 0.5, sed_study.DATA_SEED)
    cfg = ModelConfig(p=P, n_ops=len(data.ops), **MODEL)
    run = train(data, cfg, TrainConfig(lr=3e-3, batch_size=16, max_steps=steps, eval_every=every,
                                       checkpoint_every=every), seed=0, progress=False)
    return run, cfg


def test_per_example_table_mean_gradient_is_the_batch_gradient():
    run, cfg = tiny_run("add")
    model = ModularTransformer(cfg)
    names = attention_parameter_names(model)
    batch = sed_study.fixed_batch("add", P, 0.5, 16, seed=1)
    # the fixed-batch gradient rows from the same batch: W = 1 is then the mean per-example gradient's direction
    rows = sed_study.sed_rows(run, cfg, batch, progress=False)["gradient"]
    probes = sed.probe_pairs("add", P, 20, seed=0)
    t3 = sed_study.per_example_table(model, names, run, rows, batch, probes, window=3, k=2, n_random=3)
    assert list(t3.phase.unique()) == ["init", "mid", "post-grok"]
    steps = [s for s, _ in run.checkpoints]
    assert t3.groupby("phase", sort=False).step.first().tolist() == [0, steps[len(steps) // 2], steps[-1]]
    assert set(t3.estimator) == {"mean gradient", "per-example SVD top-2", "W = 1", "W = 3 top-2"}
    assert ((t3.mean_in_top3_span >= 0) & (t3.mean_in_top3_span <= 1 + 1e-6)).all()
    wide = t3.pivot(index="phase", columns="estimator", values="R_max")
    # per-example (vmap) mean and batched backward are two independent paths to the same direction
    torch.testing.assert_close(torch.tensor(wide["mean gradient"].values), torch.tensor(wide["W = 1"].values),
                               rtol=1e-3, atol=0)
    assert (wide > 0).all().all()


def test_multitask_curves_measure_each_op_on_its_own_head():
    run, cfg = tiny_run(OPS, steps=20, every=5)
    batch = sed_study.fixed_batch(OPS, P, 0.5, 16, seed=0)
    curves = sed_study.multitask_curves(run, cfg, batch, P, window=3, R_every=2, n_probes=12, n_random=3,
                                        progress=False)
    assert list(curves.op.unique()) == list(OPS)
    steps = [s for s, _ in run.checkpoints][::2]
    assert sorted(curves.step.unique()) == steps
    # at step 0 there is no update yet: only the gradient basis exists there
    first = curves[curves.step == 0]
    assert set(first.estimator) == {"per-op gradient SED"}
    assert set(curves[curves.step > 0].estimator) == {"aggregated update SED", "per-op gradient SED"}
    # the last per-op value of "sq" by hand: op 3's own gradient rows, op 3's head and probes
    model = ModularTransformer(cfg)
    names = attention_parameter_names(model)
    grads = []
    for _, state in run.checkpoints:
        model.load_state_dict(state)
        grads.append(sed.attention_gradients(model, names, *batch)[3])
    t = len(run.checkpoints) - 1 if (len(run.checkpoints) - 1) % 2 == 0 else len(run.checkpoints) - 2
    model.load_state_dict(run.checkpoints[t][1])
    basis = sed.rolling_svd_basis(torch.stack(grads), t, 3, 1)
    rnd = sed.random_unit_directions(len(grads[0]), 3, seed=0)
    ref = sed.coupling_at_checkpoint(model, names, {"g": basis}, rnd, *sed.probe_pairs("sq", P, 12, seed=0), op_index=3)
    got = curves[(curves.op == "sq") & (curves.step == run.checkpoints[t][0]) & (curves.estimator == "per-op gradient SED")]
    assert float(got.R.iloc[0]) == pytest.approx(float(ref.R.iloc[0]), rel=1e-5)
