"""The suite's trapezoidal schedule and the recipe-search probe runs (gradtools.suite_search)."""
import json

import pandas as pd
import pytest

from gradtools import checkpoint_suite as cs
from gradtools import suite_search

TINY = dict(vocab_size=600, n_stories=300, wiki_chars=10_000, context=16, batch_size=4)


def test_trapezoid_warms_up_holds_and_cools_down():
    f = cs.warmup_trapezoid(100, 10)
    assert [f(s) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert all(f(s) == 1.0 for s in range(10, 100))  # the paper's: no cool-down
    g = cs.warmup_trapezoid(100, 10, cooldown_frac=0.2)
    assert g(79) == 1.0 and g(80) == pytest.approx(1.0) and g(90) == pytest.approx(0.5) and g(99) == pytest.approx(0.05)


def test_recipe_picks_its_schedule_and_refuses_an_unknown_one():
    r = cs.SuiteRecipe(steps=1000, schedule="trapezoid", warmup_steps=200)
    f = cs.lr_schedule(r)
    assert f(99) == pytest.approx(0.5) and f(999) == 1.0
    assert cs.lr_schedule(cs.SuiteRecipe(steps=1000, schedule="trapezoid"))(24) == pytest.approx(0.5)  # 5% warm-up
    c = cs.SuiteRecipe(steps=1000)
    assert cs.lr_schedule(c)(500) == pytest.approx(cs.warmup_cosine(1000, c.warmup_frac, c.final_lr_frac)(500))
    with pytest.raises(ValueError, match="unknown schedule 'wsd'"):
        cs.SuiteRecipe(schedule="wsd")


def test_a_suite_cached_before_schedules_were_recorded_is_still_reused(tmp_path):
    recipe = cs.SuiteRecipe(**TINY, steps=2)
    shape = dict(d_model=8, n_layers=1, n_heads=2)
    cs.train_size(tmp_path, "s", shape, recipe, [2], progress=False)
    saved = json.loads((tmp_path / "s" / "recipe.json").read_text())
    for key in cs.RECIPE_DEFAULTS:
        del saved[key]
    (tmp_path / "s" / "recipe.json").write_text(json.dumps(saved))
    cs.train_size(tmp_path, "s", shape, recipe, [2], progress=False)  # the defaults match: reused
    with pytest.raises(ValueError, match="another recipe"):
        cs.train_size(tmp_path, "s", shape, cs.SuiteRecipe(**TINY, steps=2, schedule="trapezoid"), [2])


def test_probe_trains_evaluates_and_records(tmp_path):
    recipe = cs.SuiteRecipe(**TINY, steps=4, schedule="trapezoid", warmup_steps=2, seed=3)
    rows = suite_search.probe(tmp_path, "P", "tiny", dict(d_model=8, n_layers=1, n_heads=2), recipe, every=2,
                              n_prompts=20, progress=False)
    assert list(rows.columns) == suite_search.COLUMNS and set(rows.batch_size) == {4}
    assert sorted(rows.step.unique()) == [0, 1, 2, 4] and rows.value.notna().all()  # every 2, and powers of two
    assert set(rows.seed) == {3} and set(rows.schedule) == {"trapezoid"} and set(rows.run) == {"P"}
    # an older table without seed / schedule columns: filled from the search log, then P replaced
    path = tmp_path / "probes.parquet"
    old = rows.drop(columns=["seed", "schedule"]).assign(run="M")
    pd.concat([old, rows.drop(columns=["seed", "schedule"]).assign(value=-1.0)]).to_parquet(path)
    table = suite_search.record(rows, path)
    assert set(table[table.run == "M"].seed) == {1} and set(table[table.run == "M"].schedule) == {"cosine"}
    assert table[table.run == "P"].value.tolist() == rows.value.tolist() and len(table) == 2 * len(rows)
    pd.testing.assert_frame_equal(pd.read_parquet(path), table)
    with pytest.raises(ValueError, match="must divide"):
        suite_search.probe(tmp_path, "Q", "tiny", dict(d_model=8, n_layers=1, n_heads=2), recipe, every=3)
    templates = suite_search.final_templates(tmp_path, "P", "tiny", recipe, n_prompts=30)
    assert list(templates.columns) == suite_search.TEMPLATE_COLUMNS and templates.prompts.sum() == 30
    assert set(templates.step) == {4} and set(templates.seed) == {3}
    tpath = tmp_path / "templates.parquet"
    suite_search.record(templates.assign(a_above_b=-1.0), tpath, suite_search.TEMPLATE_COLUMNS)
    suite_search.record(templates.assign(run="Q"), tpath, suite_search.TEMPLATE_COLUMNS)
    table = suite_search.record(templates, tpath, suite_search.TEMPLATE_COLUMNS)  # P replaced, Q kept
    assert len(table) == 2 * len(templates) and (table[table.run == "P"].a_above_b >= 0).all()


def test_seed_sources_open_the_probed_runs_of_the_seeds_table(tmp_path):
    recipe = cs.SuiteRecipe(**TINY, steps=4, seed=3)
    rows = suite_search.probe(tmp_path, "P", "tiny", dict(d_model=8, n_layers=1, n_heads=2), recipe, every=2,
                              n_prompts=20, progress=False)
    seeds = pd.DataFrame(dict(seed=[0, 3], source=["suite", "probe P"]))
    (found,) = suite_search.seed_sources(seeds, rows, "tiny", log_spaced=2, folder=tmp_path)
    assert (found["seed"], found["run"], found["location"]) == (3, "P", str(tmp_path / "P"))
    src = found["source"]
    assert src.sizes == ["tiny"] and src.name == "suite_search P"
    assert set(src.steps("tiny")) <= {0, 2, 4} and len(src.steps("tiny")) >= 2
    assert src.training_batches is not None  # the run's streams: destructive interference can be measured
    # the run's own probe rows place its windows: with the final level taken over the last step (tail 1),
    # an IOI margin rising from step 0 to step 4 puts step 2 inside the IOI window, which the one
    # log-spaced step (the last) misses
    margin = {0: 0.0, 1: 0.0, 2: 3.0, 4: 10.0}
    ioi_loss = rows[rows.metric == "ioi_loss"].set_index("step").value
    rising = rows.copy()
    is_name = rising.metric == "ioi_name_loss"
    rising.loc[is_name, "value"] = [ioi_loss[st] + margin[st] for st in rising.step[is_name]]
    other = rows.assign(run="R")  # another run's rows must not count
    (plain,) = suite_search.seed_sources(seeds, rows, "tiny", log_spaced=1, folder=tmp_path, tail=1)
    (found,) = suite_search.seed_sources(seeds, pd.concat([rising, other]), "tiny", log_spaced=1, folder=tmp_path,
                                         tail=1)
    ioi = found["windows"][found["windows"].capability == "ioi"].iloc[0]
    assert (ioi.start, ioi.end) == (2, 4) and 2 in found["source"].steps("tiny")
    assert 2 not in plain["source"].steps("tiny")
    missing = pd.DataFrame(dict(seed=[5], source=["probe Q"]))
    with pytest.raises(FileNotFoundError, match="rerun the recipe-search run Q"):
        suite_search.seed_sources(missing, rows, "tiny", log_spaced=2, folder=tmp_path)
