"""Study 1 per checkpoint: every statistic against per-example gradients computed by a loop (float64)."""
import copy
import itertools

import pandas as pd
import pytest
import torch

from gradtools import per_example_gradients
from gradtools import prompt_datasets as pdata
from gradtools.alignment import (checkpoint_table, destructive_interference, interference_by_batch_size,
                                 ioi_contributions, mean_token_losses, pairwise_cosines, parameter_set_agreement,
                                 sign_null,
                                 unembedding_clustering)
from gradtools.checkpoint_sources import open_source
from gradtools.gram import default_layers
from gradtools.lm import sequence_losses, tiny_causal_lm
from gradtools.lm_training import save_checkpoint
from gradtools.prompt_tasks import build_family, task_family
from gradtools.shared_gradients import family_datasets, study_table
from gradtools.subject_verb_agreement import NOUNS, subject_verb_agreement
from gradtools.word_tokenizer import train_word_tokenizer

VOCAB = 600
SVA_CORPUS = [" ".join(w for pair in NOUNS for w in pair) + " is are near of with behind"]


@pytest.fixture(scope="module")
def tok():
    return train_word_tokenizer(SVA_CORPUS, vocab_size=VOCAB)


@pytest.fixture(scope="module")
def model():
    return tiny_causal_lm(VOCAB, d_model=12, n_layers=2, n_heads=2, context=32, seed=3, dtype=torch.float64)


def loop_cosines(model, batch, other=None):
    g = per_example_gradients(model, sequence_losses, batch)
    h = g if other is None else per_example_gradients(model, sequence_losses, other)
    return torch.nn.functional.normalize(g, dim=1) @ torch.nn.functional.normalize(h, dim=1).T


def test_within_and_cross_alignment_equal_the_per_example_loop(model, tok):
    ioi, ioi_copy = pdata.ioi(tok, 7, seed=1), pdata.ioi_copy(tok, 7, seed=1)
    dense = loop_cosines(model, ioi.batch())
    i, j = torch.triu_indices(7, 7, offset=1)
    assert torch.allclose(pairwise_cosines(model, ioi), dense[i, j], atol=1e-10)
    assert torch.allclose(pairwise_cosines(model, ioi, block_size=3), dense[i, j], atol=1e-10)
    cross = loop_cosines(model, ioi.batch(), ioi_copy.batch())
    off = ~torch.eye(7, dtype=torch.bool)
    got = pairwise_cosines(model, ioi, ioi_copy)
    assert got.shape == (42,) and torch.allclose(got, cross[off], atol=1e-10)
    assert not torch.allclose(got, dense[off])  # the control's targets change the gradients


def test_interference_contributions_equal_the_loop(model, tok):
    ioi = pdata.ioi(tok, 5, seed=2)
    ids = torch.randint(2, VOCAB, (6, 10), generator=torch.Generator().manual_seed(0))
    training = {"input_ids": ids, "labels": ids.clone(), "attention_mask": torch.ones_like(ids)}
    c = ioi_contributions(model, training, ioi)
    g_train = per_example_gradients(model, mean_token_losses, training)
    g_ioi = per_example_gradients(model, sequence_losses, ioi.batch()).mean(dim=0)
    assert torch.allclose(c, g_train @ g_ioi, atol=1e-12)
    # first-order meaning: an SGD step on the batch (chosen layers only) changes the IOI loss by -lr * sum c
    stepped = copy.deepcopy(model)
    params = [p for m in default_layers(stepped).values() for p in m.parameters(recurse=False)]
    grads = torch.autograd.grad(mean_token_losses(stepped, training).sum(), params)
    lr = 1e-6
    with torch.no_grad():
        before = sequence_losses(stepped, ioi.batch()).mean()
        for p, g in zip(params, grads):
            p -= lr * g
        after = sequence_losses(stepped, ioi.batch()).mean()
    assert (after - before).item() == pytest.approx(-lr * c.sum().item(), rel=1e-3)


def test_destructive_interference_formula():
    c = torch.tensor([1.0, -1.0, 2.0, 2.0, 3.0, -1.0])
    di = destructive_interference(c, batch_size=2)
    assert di.di.tolist() == pytest.approx([1.0, 0.0, 1 - 2 / 4])
    assert di.sum_c.tolist() == pytest.approx([0.0, 4.0, 2.0])
    assert len(destructive_interference(c, batch_size=4)) == 1  # an incomplete last batch is dropped


def test_unembedding_clustering_against_direct_cosines(model):
    ids = torch.tensor([3, 7, 11, 20])
    got = unembedding_clustering(model, ids, seed=4)
    u = torch.nn.functional.normalize(model.get_output_embeddings().weight.detach()[ids], dim=1)
    cos = u @ u.T
    assert got["names"] == pytest.approx(cos[torch.triu_indices(4, 4, 1).unbind()].mean().item())
    assert got["excess"] == pytest.approx(got["names"] - got["random"])
    clustered = tiny_causal_lm(VOCAB, d_model=12, n_layers=1, n_heads=2, context=32, dtype=torch.float64)
    with torch.no_grad():
        clustered.get_output_embeddings().weight[ids] = clustered.get_output_embeddings().weight[ids[0]].clone()
    assert unembedding_clustering(clustered, ids)["names"] == pytest.approx(1.0)


def test_checkpoint_table_losses_and_entries(model, tok):
    datasets, cross = family_datasets(["ioi", "oml"], tok, 4)
    assert cross == [("ioi", "ioi_rand"), ("ioi", "ioi_name"), ("ioi", "ioi_copy"),
                     ("oml", "oml_month"), ("oml", "oml_copy")]
    names = torch.tensor(list(pdata.single_token_ids(tok, pdata.NAMES).values()))
    ids = torch.randint(2, VOCAB, (8, 10), generator=torch.Generator().manual_seed(1))
    training = {"input_ids": ids, "labels": ids.clone(), "attention_mask": torch.ones_like(ids)}
    table = checkpoint_table(model, datasets, cross=cross, training=training, training_batch_size=4, name_ids=names)
    got = table.set_index(["dataset", "metric"]).value
    oml = datasets["oml"]
    with torch.no_grad():
        losses = sequence_losses(model, oml.batch())
    assert got["oml", "loss"] == pytest.approx(losses.mean().item(), rel=1e-5)
    assert got["oml", "prob"] == pytest.approx(torch.exp(-losses).mean().item(), rel=1e-5)
    dense = loop_cosines(model, oml.batch())[torch.triu_indices(4, 4, 1).unbind()]
    assert got["oml", "cos_mean"] == pytest.approx(dense.mean().item(), abs=1e-10)
    assert got["oml", "cos_std"] == pytest.approx(dense.std(unbiased=False).item(), abs=1e-10)
    assert 0 <= got["training x ioi", "di_mean"] <= 1
    assert {"ioi x ioi_name", "ioi x ioi_copy", "name unembeddings"} <= set(table.dataset)
    assert table.value.notna().all()


def test_subject_verb_agreement_plugs_in_as_one_function(model, tok):
    """The README's adaptation: a new task family named 'module:function', run through the study."""
    spec = "gradtools.subject_verb_agreement:subject_verb_agreement"
    fam = build_family(spec, tok, 40, seed=0)
    assert list(fam) == ["sva", "sva_wrong", "sva_attractor"]
    singular = {s for s, _ in NOUNS}
    for i, row in fam["sva"].meta.iterrows():
        verb = tok.id_to_token(int(fam["sva"].targets[i]))
        wrong = tok.id_to_token(int(fam["sva_wrong"].targets[i]))
        attract = tok.id_to_token(int(fam["sva_attractor"].targets[i]))
        assert verb == ("is" if row.subject in singular else "are") and wrong != verb
        assert attract == ("is" if row.attractor in singular else "are")
        assert tok.id_to_token(fam["sva"].prompts[i][1]) == row.subject
    assert fam["sva"].meta.plural.nunique() == 2
    datasets, cross = family_datasets([spec], tok, 6)
    table = checkpoint_table(model, datasets, cross=cross)
    assert set(table.dataset) == {"sva", "sva_wrong", "sva_attractor", "sva x sva_wrong", "sva x sva_attractor"}
    # a tokenizer without the nouns stops with the offenders named
    small = train_word_tokenizer(["nothing here"], vocab_size=VOCAB)
    with pytest.raises(ValueError, match="'frogs' \\(unknown token\\)"):
        subject_verb_agreement(small, 4)
    with pytest.raises(ValueError, match="unknown task"):
        task_family("nonsense")
    with pytest.raises(ValueError, match="cannot import"):
        task_family("gradtools.subject_verb_agreement:nothing")


def test_generators_stop_on_a_name_that_is_not_one_token(tok):
    with pytest.raises(ValueError, match="'Zebedee' \\(unknown token\\)"):
        pdata.ioi(tok, 4, names=["Mary", "John", "Zebedee"])


def test_study_table_caches_one_table_per_checkpoint(tmp_path, tok):
    folder = tmp_path / "suite"
    for step in (0, 3):
        save_checkpoint(tiny_causal_lm(VOCAB, d_model=8, n_layers=1, n_heads=2, context=32, seed=step),
                        folder / "tiny", step)
    tok.save(str(folder / "tokenizer.json"))
    src = open_source(folder)
    table = study_table(src, ["oml"], n=5, cache_root=tmp_path / "cache", progress=False)
    assert list(table.columns) == ["size", "step", "dataset", "metric", "value"]
    assert table.groupby("step").size().tolist() == [16, 16]  # 3 datasets x 4 + 2 crosses x 2
    cached = list((tmp_path / "cache").glob("shared_gradients-*/*.parquet"))
    assert len(cached) == 2
    again = study_table(src, ["oml"], n=5, cache_root=tmp_path / "cache", progress=False)
    pd.testing.assert_frame_equal(table, again)
    # a retrained checkpoint (same step, new weights) is measured again, not read from the cache
    save_checkpoint(tiny_causal_lm(VOCAB, d_model=8, n_layers=1, n_heads=2, context=32, seed=9), folder / "tiny", 3)
    retrained = study_table(open_source(folder), ["oml"], n=5, cache_root=tmp_path / "cache", progress=False)
    assert len(list((tmp_path / "cache").glob("shared_gradients-*/*.parquet"))) == 3
    changed = retrained[retrained.step == 3].value.to_numpy() != table[table.step == 3].value.to_numpy()
    assert changed.any()


def _exact_sign_null(a):
    """Expected DI of magnitudes ``a`` under random signs, by enumerating all 2^B sign patterns."""
    signs = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=len(a))), dtype=torch.float64)
    return (1 - (signs @ a).abs() / a.sum()).mean().item()


def test_sign_null_matches_exact_enumeration():
    gen = torch.Generator().manual_seed(3)
    c = torch.randn(24, generator=gen, dtype=torch.float64) * torch.linspace(0.1, 3, 24, dtype=torch.float64)
    null = sign_null(c, batch_size=8, draws=20_000, seed=1)
    exact = [_exact_sign_null(c[i:i + 8].abs()) for i in range(0, 24, 8)]
    # Monte Carlo over 20000 draws: the standard error of a mean of DI values in [0, 1] is below 0.004
    assert null.null_mean.tolist() == pytest.approx(exact, abs=0.012)
    assert null.di.tolist() == pytest.approx(destructive_interference(c, 8).di.tolist(), abs=1e-15)


def test_sign_null_separates_aligned_from_cancelling_batches():
    aligned = torch.ones(16, dtype=torch.float64)  # every sequence pushes the same way: DI 0, far below the null
    cancelling = torch.tensor([1.0, -1.0] * 8, dtype=torch.float64)  # exact cancellation: DI 1, above every draw
    a, b = sign_null(aligned, 16), sign_null(cancelling, 16)
    assert a.di[0] == 0 and a.null_p[0] == 1.0 and a.null_mean[0] > 0.7
    assert b.di[0] == 1 and b.null_p[0] < 0.3
    with pytest.raises(ValueError, match="no batch of 32"):
        sign_null(aligned, 32)


def test_interference_by_batch_size_rows():
    c = torch.cat([torch.ones(32), -0.5 * torch.ones(32)]).double()
    t = interference_by_batch_size(c, [16, 64])
    assert t.batch_size.tolist() == [16, 64] and t.batches.tolist() == [4, 1]
    assert t.di_mean.tolist() == pytest.approx([0.0, 1 - 16 / 48])
    assert t.lowering_share.tolist() == [0.5, 1.0]
    assert t.di_minus_null.tolist() == pytest.approx((t.di_mean - t.null_mean).tolist())


def test_parameter_set_agreement_against_the_loop(model, tok):
    """Appendix D.2: cosines over every parameter (embeddings, norms, unembedding included) by the loop."""
    ioi = pdata.ioi(tok, 6, seed=2)
    i, j = torch.triu_indices(6, 6, offset=1)
    part = loop_cosines(model, ioi.batch())[i, j]
    g = per_example_gradients(model, sequence_losses, ioi.batch(), layers="all")
    full = (torch.nn.functional.normalize(g, dim=1) @ torch.nn.functional.normalize(g, dim=1).T)[i, j]
    got = parameter_set_agreement(model, ioi)
    assert got["cos_mean_nonembedding"] == pytest.approx(part.mean().item(), abs=1e-10)
    assert got["cos_mean_all"] == pytest.approx(full.mean().item(), abs=1e-10)
    assert got["pair_correlation"] == pytest.approx(torch.corrcoef(torch.stack([part, full]))[0, 1].item(), abs=1e-9)
    assert abs(got["cos_mean_all"] - got["cos_mean_nonembedding"]) > 1e-6  # the parameter sets differ


def test_checkpoint_table_null_batch_sizes_and_all_parameters(model, tok):
    datasets = {"ioi": pdata.ioi(tok, 5, seed=4)}
    ids = torch.randint(2, VOCAB, (8, 10), generator=torch.Generator().manual_seed(2))
    training = {"input_ids": ids, "labels": ids.clone(), "attention_mask": torch.ones_like(ids)}
    table = checkpoint_table(model, datasets, training=training, training_batch_size=2,
                             interference_batch_sizes=(8,), all_parameters=True)
    got = table.set_index(["dataset", "metric"]).value
    c = ioi_contributions(model, training, datasets["ioi"])
    assert got["training x ioi", "di_null_mean"] == pytest.approx(sign_null(c, 2).null_mean.mean())
    assert got["training x ioi", "di_mean_b8"] == pytest.approx(destructive_interference(c, 8).di.mean())
    assert got["training x ioi", "lowering_share_b8"] == float(c.sum() > 0)
    agree = parameter_set_agreement(model, datasets["ioi"])
    assert got["ioi", "cos_mean_all"] == pytest.approx(agree["cos_mean_all"], abs=1e-12)
    assert got["ioi", "pair_correlation"] == pytest.approx(agree["pair_correlation"], abs=1e-12)
    plain = checkpoint_table(model, datasets, training=training, training_batch_size=2)
    assert "cos_mean_all" not in set(plain.metric) and "di_mean_b8" not in set(plain.metric)
    named = checkpoint_table(model, {**datasets, "ioi_name": pdata.ioi_name(tok, 5, seed=4)}, all_parameters=("ioi",))
    assert set(named[named.metric == "cos_mean_all"].dataset) == {"ioi"}


def test_study_table_on_a_suite_adds_the_frequency_matched_control_and_batch_sizes(tmp_path, tok):
    """A suite folder (streams + recipe): ioi_rand_freq from its token counts, DI at several batch sizes."""
    folder = tmp_path / "suite"
    save_checkpoint(tiny_causal_lm(VOCAB, d_model=8, n_layers=1, n_heads=2, context=32, seed=0), folder / "tiny", 5)
    (folder / "tiny" / "recipe.json").write_text(
        '{"story_fraction": 0.5, "batch_size": 2, "context": 8, "seed": 1, "steps": 10}')
    tok.save(str(folder / "tokenizer.json"))
    text = torch.tensor(tok.encode(SVA_CORPUS[0]).ids)
    torch.save({"stories": text.repeat(20), "wiki": text.flip(0).repeat(20)}, folder / "streams.pt")
    src = open_source(folder)
    table = study_table(src, ["ioi"], n=6, cache_root=tmp_path / "cache", progress=False, n_training=8,
                        training_batch_size=2, interference_batch_sizes=(4, 8), all_parameters=("ioi",))
    got = table.set_index(["dataset", "metric"]).value
    counts = src.token_counts("tiny")
    freq = pdata.ioi_rand_freq(tok, 6, 0, counts=counts)
    assert got["ioi_rand_freq", "loss"] == pytest.approx(
        sequence_losses(src.checkpoints[0].load(), freq.batch()).mean().item(), abs=1e-5)
    assert {"di_mean_b4", "di_mean_b8", "di_null_mean_b8"} <= set(got["training x ioi"].index)
    assert "cos_mean_all" in got["ioi"].index and "cos_mean_all" not in got["ioi_name"].index
    plain = study_table(src, ["ioi"], n=6, cache_root=tmp_path / "cache", progress=False, n_training=8,
                        training_batch_size=2, frequency_matched=False)
    assert "ioi_rand_freq" not in set(plain.dataset)
    assert len(list((tmp_path / "cache").glob("shared_gradients-*"))) == 2  # the settings key tells them apart


def test_parallel_study_table_equals_one_process(tmp_path, tok):
    """Two processes share the checkpoints round-robin; the gathered table is the one-process table."""
    from gradtools.shared_gradients import parallel_study_table, source_spec

    folder = tmp_path / "suite"
    for step in (0, 2, 5):
        save_checkpoint(tiny_causal_lm(VOCAB, d_model=8, n_layers=1, n_heads=2, context=32, seed=step),
                        folder / "tiny", step)
    tok.save(str(folder / "tokenizer.json"))
    src = open_source(folder).select(steps={"tiny": [0, 5]})
    study = dict(families=["oml"], n=4, all_parameters=("oml",))
    one = study_table(src, **study, cache_root=tmp_path / "one", progress=False)
    spec = source_spec(src, str(folder), "smoke")
    assert spec["steps"] == {"tiny": [0, 5]}
    two = parallel_study_table(spec, dict(study, cache_root=str(tmp_path / "two")), workers=2, progress=False)
    pd.testing.assert_frame_equal(one, two)
    assert len(list((tmp_path / "two").glob("shared_gradients-*/*.parquet"))) == 2
    assert not list((tmp_path / "two").glob("parallel-*"))  # the job file and logs are removed
    for weights in (folder / "tiny" / "step-000002").glob("*.safetensors"):  # the worker's checkpoint
        weights.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="worker failed"):  # a worker's error reaches the caller
        parallel_study_table(dict(spec, steps={"tiny": [0, 2]}), dict(study, cache_root=str(tmp_path / "bad")),
                             workers=2, progress=False)
    assert not list((tmp_path / "bad").glob("parallel-*"))  # cleaned up after a failure too
