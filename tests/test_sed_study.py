"""Study 4's tables from tiny trained runs (gradtools.sed_study): table 3 and the multitask curves."""
import pandas as pd
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


def _pairs(x):
    return {(int(a), int(b)) for a, b in x}


@pytest.mark.parametrize("ops", ["add", "mul", OPS])
def test_fixed_batch_is_drawn_once_from_held_out_pairs(ops):
    data = modular_data(ops, 11, 0.5, sed_study.DATA_SEED)
    x, y, mask = sed_study.fixed_batch(ops, 11, 0.5, 20, seed=3)
    assert len(x) == 20 and len(_pairs(x)) == 20  # no pair twice
    assert _pairs(x) <= _pairs(data.x_test)
    assert not _pairs(x) & _pairs(data.x_train)
    # labels and masks travel with their pairs
    test_rows = {(int(a), int(b)): (yy.tolist(), mm.tolist()) for (a, b), yy, mm in zip(data.x_test, data.y_test, data.mask_test)}
    assert all(test_rows[int(a), int(b)] == (yy.tolist(), mm.tolist()) for (a, b), yy, mm in zip(x, y, mask))
    again = sed_study.fixed_batch(ops, 11, 0.5, 20, seed=3)
    assert all(torch.equal(u, v) for u, v in zip(again, (x, y, mask)))
    assert _pairs(sed_study.fixed_batch(ops, 11, 0.5, 20, seed=4)[0]) != _pairs(x)
    # the ablation's batch comes from the training pairs only
    xt, _, _ = sed_study.fixed_batch(ops, 11, 0.5, 20, seed=3, split="training")
    assert _pairs(xt) <= _pairs(data.x_train)
    # a batch larger than the split is the whole split
    assert _pairs(sed_study.fixed_batch(ops, 11, 0.5, 10_000, seed=0)[0]) == _pairs(data.x_test)
    with pytest.raises(ValueError):
        sed_study.fixed_batch(ops, 11, 0.5, 20, seed=3, split="test")


def test_checkpoint_grid_always_ends_at_the_last_checkpoint():
    assert sed_study.checkpoint_grid(9, 4) == [0, 4, 8]
    assert sed_study.checkpoint_grid(10, 4) == [0, 4, 8, 9]
    assert sed_study.checkpoint_grid(3, 1) == [0, 1, 2]
    assert sed_study.checkpoint_grid(1, 5) == [0]
    assert sed_study.checkpoint_grid(0, 5) == []


def test_parallel_keeps_the_order_of_jobs():
    jobs = [dict(n=n, every=2) for n in (5, 2, 7)]
    expected = [sed_study.checkpoint_grid(**j) for j in jobs]
    assert sed_study.parallel(sed_study.checkpoint_grid, jobs, workers=1) == expected
    assert sed_study.parallel(sed_study.checkpoint_grid, jobs, workers=2) == expected


def _job(tmp_path):
    return dict(cache=tmp_path, ops="add", p=P, train_fraction=0.5, seed=0, model=MODEL,
                training=dict(lr=3e-3, batch_size=16, max_steps=12, eval_every=4, checkpoint_every=4))


def test_coupling_table_is_the_coupling_of_the_cached_run_and_is_saved(tmp_path):
    job = _job(tmp_path)
    bases = {"update SED": dict(rows="update", window=3, k=1),
             "training W=1": dict(rows="gradient", batch="training", window=1, k=1)}
    kw = dict(every=2, n_probes=10, n_random=3, batch_size=8)
    table = sed_study.coupling_table(tmp_path, "t", job, bases, **kw)
    saved = list(tmp_path.glob("t_*.parquet"))
    assert len(saved) == 1
    # by hand: the same run, rows on the training batch, bases, probes
    run = sed_study.cached_run(**job)
    cfg = ModelConfig(p=P, n_ops=1, **MODEL)
    rows = {"training": sed_study.sed_rows(run, cfg, sed_study.fixed_batch("add", P, 0.5, 8, 0, split="training"),
                                           progress=False)}
    at = sed_study.checkpoint_grid(len(run.checkpoints), 2)
    ref = sed_study.coupling_of_run(run, cfg, rows, bases, at, sed.probe_pairs("add", P, 10, seed=0), n_random=3,
                                    progress=False)
    pd.testing.assert_frame_equal(table, ref)
    assert sorted(table.step.unique()) == [run.checkpoints[t][0] for t in at]
    # W = 1 is the normalised gradient itself: its R equals that of the direction
    t = at[-1]
    model = ModularTransformer(cfg)
    model.load_state_dict(run.checkpoints[t][1])
    names = attention_parameter_names(model)
    g = rows["training"]["gradient"][t]
    rnd = sed.random_unit_directions(len(g), 3, seed=0)
    direct = sed.coupling_at_checkpoint(model, names, {"g": (g / g.norm())[None]}, rnd, *sed.probe_pairs("add", P, 10, 0))
    got = table[(table.step == run.checkpoints[t][0]) & (table.estimator == "training W=1")]
    assert float(got.R.iloc[0]) == pytest.approx(float(direct.R.iloc[0]), rel=1e-5)
    # a rerun reads the file (where it runs is not part of the name); a changed setting computes anew
    pd.testing.assert_frame_equal(sed_study.coupling_table(tmp_path, "t", dict(job, threads=2), bases, **kw,
                                                           threads=2), table)
    assert len(list(tmp_path.glob("t_*.parquet"))) == 1
    sed_study.coupling_table(tmp_path, "t", job, bases, **dict(kw, n_random=2))
    assert len(list(tmp_path.glob("t_*.parquet"))) == 2


def _curve(estimator, peaks, steps=(0, 100, 200)):
    """A coupling curve: ``peaks[i]`` is vector i's R at the middle step, half of it elsewhere."""
    return pd.DataFrame([dict(step=s, estimator=estimator, index=i, R=r if s == steps[1] else r / 2)
                         for i, r in enumerate(peaks) for s in steps])


def test_table2_reads_each_setting_from_its_basis():
    sweep = pd.concat([_curve("W=1", [600]), _curve("W=5", [400]), _curve("W=20 top-3", [200, 300, 250]),
                       _curve("training batch", [50])])
    t2 = sed_study.table2(sweep, {0.001: _curve("canonical", [210]), 0.02: _curve("canonical", [20])},
                          {1: _curve("canonical", [190])}, window=20, windows=[1, 5, 20], ks=[1, 2, 3])
    peak = {(r.setting, r.value): r.peak_R for r in t2.itertuples()}
    assert peak["window W", "1"] == 600 and peak["window W", "5"] == 400 and peak["window W", "20"] == 200
    # rank k: the best of the canonical basis's first k vectors
    assert [peak["rank k (max R over top k)", k] for k in "123"] == [200, 300, 300]
    assert peak["eps / ||a||", "0.001"] == 210 and peak["eps / ||a||", "0.02"] == 20
    assert peak["probe seed", "1"] == 190
    assert peak["gradient batch B", "held-out (canonical)"] == 200 and peak["gradient batch B", "training"] == 50
    assert (t2.peak_step == 100).all() and (t2.final_step == 200).all()
    assert set(sed_study.ablation_bases(20, [1, 5, 20], [1, 2, 3])) == {"W=1", "W=5", "W=20 top-3", "training batch"}


def test_projection_log_and_summary():
    from gradtools.modular_arithmetic import TrainingRun
    from gradtools.projected_step import ProjectedStep

    def run(shares):
        log = pd.DataFrame({c: [1.0] * len(shares) for c in ProjectedStep.LOG_COLUMNS}).assign(kept_share=shares)
        log.insert(0, "step", range(len(shares)))
        return TrainingRun(pd.DataFrame(), projection=log.assign(attention_norm=[10.0 + i for i in range(len(shares))]))

    runs = {("add", 42, "update", "C"): run([1.0, 0.5, 0.0, 0.5, 1.0]), ("add", 42, "update", "A"): TrainingRun(pd.DataFrame())}
    log = sed_study.projection_log(runs)
    assert len(log) == 5 and set(log.condition) == {"C"}
    binned = sed_study.projection_log(runs, every=2)
    assert binned.step.tolist() == [0, 2, 4] and binned.kept_share.tolist() == [0.75, 0.25, 1.0]
    s = sed_study.projection_summary(log).iloc[0]
    assert s.steps == 5 and s.mean_kept_share == pytest.approx(0.6)
    assert s.first_attention_norm == 10 and s.last_attention_norm == 14
    assert len(sed_study.projection_log({("add", 42, "update", "A"): TrainingRun(pd.DataFrame())})) == 0


def test_cached_runs_without_checkpoints(tmp_path):
    job = _job(tmp_path)
    full, light = sed_study.cached_runs([job], checkpoints=True)[0], sed_study.cached_runs([job], checkpoints=False)[0]
    assert len(full.checkpoints) == 4 and light.checkpoints == []
    pd.testing.assert_frame_equal(full.history, light.history)
    assert light.grokking_step == full.grokking_step


def test_run_record_reads_back_the_run_without_its_cache(tmp_path):
    cache, records = tmp_path / "cache", tmp_path / "records"
    job = dict(_job(cache), condition="C", flavour="gradient", k=2, window=3, sed_every=4)
    full = sed_study.cached_run(**job)
    first = sed_study.run_record(records, **job)  # loads the cached run and writes its record
    history_path, projection_path = sed_study.record_paths(records, **job)
    assert history_path.exists() and projection_path.exists() and first.checkpoints == []
    for f in cache.glob("*.pt"):  # a fresh machine: only the record is left
        f.unlink()
    again = sed_study.run_record(records, **job)
    assert not list(cache.glob("*.pt"))  # read back, not retrained
    pd.testing.assert_frame_equal(again.history, full.history)
    pd.testing.assert_frame_equal(again.projection, full.projection)
    assert again.grokking_step == full.grokking_step
    # another setting is another record; the control has no projection log
    control = sed_study.cached_runs([dict(_job(cache), seed=1)], records=records)[0]
    assert control.projection is None and len(list(records.glob("*.history.parquet"))) == 2


def test_record_name_is_the_cached_run_name(tmp_path):
    job = _job(tmp_path)
    sed_study.cached_run(**job)
    stem = next(tmp_path.glob("*.pt")).stem
    assert sed_study.record_paths(tmp_path / "r", **job)[0].name == f"{stem}.history.parquet"


def test_coupling_table_writes_its_runs_record(tmp_path):
    cache, records = tmp_path / "cache", tmp_path / "records"
    job, bases = _job(cache), {"update SED": dict(rows="update", window=3, k=1)}
    kw = dict(every=2, n_probes=10, n_random=3, batch_size=8)
    table = sed_study.coupling_table(records, "t", job, bases, **kw, records=records)
    history_path = sed_study.record_paths(records, **job)[0]
    assert history_path.exists()
    for f in cache.glob("*.pt"):  # a fresh machine: the table and the record are enough, nothing is trained
        f.unlink()
    pd.testing.assert_frame_equal(sed_study.coupling_table(records, "t", job, bases, **kw, records=records), table)
    run = sed_study.run_record(records, **job)
    assert not list(cache.glob("*.pt")) and len(run.history) == len(pd.read_parquet(history_path))


def test_peak_is_read_where_the_window_is_full():
    # the one-update basis at the first checkpoint is highest; a full window (W=2, every 100: step 200) is not
    c = pd.DataFrame(dict(step=[100, 200, 300, 400], estimator="update SED", index=0, R=[9.0, 4.0, 5.0, 1.0]))
    assert sed_study.full_window_step(2, 100) == 200
    assert sed_study.peak_and_final(c).peak_R.item() == 9.0
    t = sed_study.peak_and_final(c, from_step=sed_study.full_window_step(2, 100)).iloc[0]
    assert (t.peak_R, t.peak_step, t.final_R, t.final_step) == (5.0, 300, 1.0, 400)
    # a run shorter than one window: the last step stands in (the smoke profile)
    t = sed_study.peak_and_final(c, from_step=10_000).iloc[0]
    assert (t.peak_R, t.peak_step) == (1.0, 400)


def test_table2_reads_each_window_where_it_is_full():
    sweep = pd.concat([_curve("W=1", [600], steps=(100, 200, 300)), _curve("W=2", [400], steps=(100, 200, 300)),
                       _curve("W=3 top-3", [200, 300, 250], steps=(100, 200, 300)),
                       _curve("training batch", [50], steps=(100, 200, 300))])
    t2 = sed_study.table2(sweep, {}, {}, window=3, windows=[1, 2, 3], ks=[1, 3], checkpoint_every=100)
    peak = {(r.setting, r.value): (r.peak_R, r.peak_step) for r in t2.itertuples()}
    # W=1 and W=2 are full by step 200 (their peak), the canonical W=3 only at its last step
    assert peak["window W", "1"] == (600, 200) and peak["window W", "2"] == (400, 200)
    assert peak["window W", "3"] == (100, 300) and peak["gradient batch B", "training"] == (25, 300)
