"""The checkpoint suite end to end on a tiny recipe: schedule, cache reuse, recipe guard, evaluation."""
import json

import pandas as pd
import pytest
import torch

from gradtools import checkpoint_suite as cs
from gradtools.lm import tiny_causal_lm
from gradtools.lm_training import load_checkpoint, saved_steps, train_causal_lm


def test_train_causal_lm_follows_lr_lambda(tmp_path):
    model = tiny_causal_lm(20, d_model=8, n_layers=1, n_heads=2, context=8)
    ids = torch.randint(0, 20, (2, 8), generator=torch.Generator().manual_seed(0))
    factor = cs.warmup_cosine(10, 0.2, 0.1)
    log = train_causal_lm(model, lambda s: {"input_ids": ids, "labels": ids}, cs.mean_token_loss,
                          steps=10, checkpoint_steps=[], out_dir=tmp_path, lr=0.01,
                          lr_lambda=factor, progress=False)
    assert log.lr.tolist() == pytest.approx([0.01 * factor(s) for s in range(10)])


def test_tiny_suite_trains_evaluates_and_is_reused(tmp_path):
    recipe = cs.SuiteRecipe(vocab_size=600, n_stories=500, wiki_chars=20_000, context=16, batch_size=4, steps=6)
    shape = dict(d_model=8, n_layers=1, n_heads=2)
    schedule = cs.checkpoint_schedule(recipe.steps, [(3, 6, 3)])
    log = cs.train_size(tmp_path, "tiny", shape, recipe, schedule, progress=False)
    assert saved_steps(tmp_path / "tiny") == [0, 1, 2, 3, 4, 6] and len(log) == 6
    again = cs.train_size(tmp_path, "tiny", shape, recipe, schedule, progress=False)  # read from the cache
    pd.testing.assert_frame_equal(log, again)
    with pytest.raises(ValueError, match="another recipe"):
        cs.train_size(tmp_path, "tiny", shape, cs.SuiteRecipe(**{**recipe.__dict__, "lr": 1e-4}), schedule)
    with pytest.raises(ValueError, match="corpus built otherwise"):  # the corpus is a recipe too
        cs.train_size(tmp_path, "tiny", shape, cs.SuiteRecipe(**{**recipe.__dict__, "n_stories": 301}), schedule)
    tokenizer, _, _ = cs.prepare_corpus(tmp_path, recipe)
    table = cs.evaluate_size(tmp_path, "tiny", cs.evaluation_datasets(tokenizer, 20, 20, 20), progress=False)
    assert set(table.metric) == {"ioi_loss", "ioi_name_loss", "ioi_copy_loss", "ioi_rank_accuracy", "gt_loss",
                                 "gt_prob_diff", "oml_loss", "oml_accuracy"}
    assert sorted(table.step.unique()) == [0, 1, 2, 3, 4, 6] and table.value.notna().all()


def test_a_size_may_set_its_own_learning_rate(tmp_path):
    recipe = cs.SuiteRecipe(vocab_size=600, n_stories=300, wiki_chars=10_000, context=16, batch_size=4,
                            steps=4, lr=3e-3, warmup_frac=0.25)
    shape = dict(d_model=8, n_layers=1, n_heads=2, lr=1e-3)
    log = cs.train_size(tmp_path, "own-lr", shape, recipe, [4], progress=False)
    factor = cs.warmup_cosine(4, 0.25, recipe.final_lr_frac)
    assert log.lr.tolist() == pytest.approx([1e-3 * factor(s) for s in range(4)])
    assert json.loads((tmp_path / "own-lr" / "recipe.json").read_text())["lr"] == 1e-3
    assert shape["lr"] == 1e-3  # the caller's dict is left alone
    cs.train_size(tmp_path, "own-lr", shape, recipe, [4], progress=False)  # the cache matches
    with pytest.raises(ValueError, match="another recipe"):
        cs.train_size(tmp_path, "own-lr", {**shape, "lr": 2e-3}, recipe, [4], progress=False)


def test_sizes_trained_in_parallel_workers_equal_the_serial_run(tmp_path):
    recipe = cs.SuiteRecipe(vocab_size=600, n_stories=300, wiki_chars=10_000, context=16, batch_size=4, steps=5)
    sizes = {"a": dict(d_model=8, n_layers=1, n_heads=2), "b": dict(d_model=12, n_layers=2, n_heads=2, lr=1e-3)}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a worker, so that the sums run in the same order: equal to the bit
    try:
        serial = cs.train_sizes(tmp_path / "serial", sizes, recipe, [0, 3, 5], workers=1, progress=False)
    finally:
        torch.set_num_threads(threads)
    parallel = cs.train_sizes(tmp_path / "parallel", sizes, recipe, [0, 3, 5], workers=2, progress=False)
    pd.testing.assert_frame_equal(serial, parallel)
    assert serial["size"].tolist() == ["a"] * 5 + ["b"] * 5
    for size in sizes:
        assert saved_steps(tmp_path / "parallel" / size) == [0, 3, 5]
        for x, y in zip(load_checkpoint(tmp_path / "serial" / size, 5).parameters(),
                        load_checkpoint(tmp_path / "parallel" / size, 5).parameters()):
            torch.testing.assert_close(x, y, rtol=0, atol=0)
    with pytest.raises(ValueError, match="another recipe"):  # checked before any worker starts
        cs.train_sizes(tmp_path / "parallel", {**sizes, "a": {**sizes["a"], "lr": 5e-3}}, recipe, [0, 3, 5],
                       workers=2, progress=False)


def test_a_corpus_of_another_version_is_not_reused(tmp_path, monkeypatch):
    recipe = cs.SuiteRecipe(vocab_size=600, n_stories=50, wiki_chars=5_000)
    cs.prepare_corpus(tmp_path, recipe)
    cs.prepare_corpus(tmp_path, recipe)  # the same corpus: read back
    monkeypatch.setattr(cs, "CORPUS_VERSION", cs.CORPUS_VERSION + 1)
    with pytest.raises(ValueError, match="corpus built otherwise"):
        cs.prepare_corpus(tmp_path, recipe)
    (tmp_path / "corpus.json").unlink()  # a suite cached before versions were recorded
    with pytest.raises(ValueError, match="before 4"):
        cs.prepare_corpus(tmp_path, recipe)


def test_ioi_rank_by_template_against_a_loop():
    from gradtools import prompt_datasets as pdata
    from gradtools.word_tokenizer import train_word_tokenizer
    tok = train_word_tokenizer(["a b c"], vocab_size=400)
    model = tiny_causal_lm(400, d_model=8, n_layers=1, n_heads=2, context=32, seed=4)
    ioi = pdata.ioi(tok, 60, seed=2)
    table = cs.ioi_rank_by_template(model, ioi)
    assert table.prompts.sum() == 60 and set(table.order) == {"ABBA", "BABA"}
    with torch.no_grad():
        for r in table.itertuples():
            hits = [i for i in range(60) if ioi.meta.template[i] == r.template and ioi.meta.order[i] == r.order]
            above = []
            for i in hits:  # one prompt at a time, no padding
                logits = model(ioi.batch(rows=[i])["input_ids"]).logits[0, ioi.last_positions()[i]]
                above.append(float(logits[ioi.meta.a_id[i]] > logits[ioi.meta.b_id[i]]))
            assert r.prompts == len(hits) and r.a_above_b == pytest.approx(sum(above) / len(above))
