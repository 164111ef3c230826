"""Checkpoint sources of study 1: the local suite, a folder, a hub model with revisions (offline)."""
import json

import pytest
import torch

from gradtools import prompt_datasets as pdata
from gradtools.checkpoint_sources import log_spaced_subset, open_source
from gradtools.lm import sequence_losses, tiny_causal_lm
from gradtools.lm_training import save_checkpoint
from gradtools.suite_corpus import mixed_batch_fn
from gradtools.word_tokenizer import train_word_tokenizer
from olmo_reference import reference_logits, write_checkpoint, zsl_model_section

VOCAB = 600


@pytest.fixture(scope="module")
def tok():
    return train_word_tokenizer(["a small corpus with some words"], vocab_size=VOCAB)


def tiny(seed):
    return tiny_causal_lm(VOCAB, d_model=8, n_layers=1, n_heads=2, context=32, seed=seed)


def losses(model, tok):
    return sequence_losses(model, pdata.ioi(tok, 4).batch())


def test_folder_of_step_checkpoints_in_step_order(tmp_path, tok):
    folder = tmp_path / "run7"
    models = {step: tiny(seed) for seed, step in enumerate([64, 0, 1000, 8])}
    for step, model in models.items():
        save_checkpoint(model, folder, step)
    tok.save(str(folder / "tokenizer.json"))
    src = open_source(folder)
    assert src.sizes == ["run7"] and src.steps("run7") == [0, 8, 64, 1000]
    assert src.training_batches is None  # no streams.pt: no destructive interference
    for ck in src.checkpoints:
        assert torch.allclose(losses(ck.load(), tok), losses(models[ck.step], tok))
    assert src.tokenizer.get_vocab() == tok.get_vocab()


def test_suite_layout_redraws_the_training_batches_after_a_checkpoint(tmp_path, tok):
    """<suite>/<size>/step-N with streams.pt + recipe.json: the batches the model saw next."""
    for size, seed in [("small", 0), ("large", 1)]:
        for step in (0, 4):
            save_checkpoint(tiny(seed + step), tmp_path / size, step)
        recipe = dict(story_fraction=0.5, batch_size=3, context=6, seed=5, steps=10)
        (tmp_path / size / "recipe.json").write_text(json.dumps(recipe))
    tok.save(str(tmp_path / "tokenizer.json"))
    streams = {"stories": torch.arange(100, 300), "wiki": torch.arange(400, 500)}
    torch.save(streams, tmp_path / "streams.pt")
    src = open_source(tmp_path)
    assert src.sizes == ["large", "small"] and src.steps("small") == [0, 4]
    got = src.training_batches("small", 4, 5)
    fn = mixed_batch_fn(streams["stories"], streams["wiki"], story_fraction=0.5, batch_size=3, context=6, seed=5)
    expected = torch.cat([fn(4)["input_ids"], fn(5)["input_ids"]])[:5]
    assert torch.equal(got["input_ids"], expected) and torch.equal(got["labels"], expected)
    assert got["attention_mask"].shape == (5, 6)
    # expected training counts: half the rows from each stream, 10 steps x 3 rows x 6 tokens
    counts = src.token_counts("small")
    assert counts[150].item() == pytest.approx(0.5 / 200 * 180) and counts[450].item() == pytest.approx(0.5 / 100 * 180)
    assert counts[350].item() == 0 and counts.sum().item() == pytest.approx(180)
    (tmp_path / "large" / "recipe.json").unlink()  # a size still training: no batches yet, no error
    assert src.training_batches("large", 0, 5) is None and src.token_counts("large") is None
    assert [c.step for c in src.select(["small"], max_per_size=1).checkpoints] == [4]
    per_size = src.select(steps={"small": [4], "large": [0, 4]})  # each size its own steps
    assert [(c.size, c.step) for c in per_size.checkpoints] == [("large", 0), ("large", 4), ("small", 4)]
    assert per_size.token_counts is src.token_counts and per_size.training_batches is src.training_batches
    with pytest.raises(ValueError, match="no size"):
        src.select(steps={"medium": [0]})
    with pytest.raises(ValueError, match="no steps for"):  # a size left out of the dict is not silently kept whole
        src.select(steps={"small": [4]})
    with pytest.raises(ValueError, match="no size"):
        src.select(["medium"])


def test_hub_model_with_step_revisions_offline(tmp_path, tok):
    """hf:NAME reads every `stepN` revision from a local cache in huggingface_hub's layout."""
    from transformers import PreTrainedTokenizerFast

    repo = tmp_path / "models--org--tiny"
    models = {}
    for seed, revision in enumerate(["step512", "step1", "step64", "main"]):
        commit = f"{seed:040x}"
        model = tiny(seed)
        model.save_pretrained(repo / "snapshots" / commit)
        PreTrainedTokenizerFast(tokenizer_object=tok).save_pretrained(repo / "snapshots" / commit)
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / revision).write_text(commit)
        models[revision] = model
    src = open_source("hf:org/tiny", cache_dir=tmp_path)
    assert [c.step for c in src.checkpoints] == [1, 64, 512]  # numeric order; "main" is no step
    assert src.sizes == ["org/tiny"]
    for ck in src.checkpoints:
        assert torch.allclose(losses(ck.load(), tok), losses(models[ck.revision], tok))
    # the hub tokenizer builds the same prompts as the tokenizers one
    assert pdata.ioi(src.tokenizer, 5).prompts == pdata.ioi(tok, 5).prompts
    with pytest.raises(FileNotFoundError, match="no selected checkpoint revision .* of org/other"):
        open_source("hf:org/other", cache_dir=tmp_path)


def test_missing_sources_fail_before_compute(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        open_source(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no checkpoints"):
        open_source(tmp_path / "empty")
    monkeypatch.setenv("GRADTOOLS_ROOT", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="00_checkpoint_suite"):
        open_source(None, "smoke")


def olmo_section(vocab=128):
    return zsl_model_section("14M", width=8, layers=1, vocab=vocab)


def test_olmo_run_folders_load_as_sizes(tmp_path):
    """The OLMo trainer's layout: <run>/stepN-unsharded/ (model.pt + config.yaml); sharded folders ignored."""
    refs = {}
    for run, seed in [("OLMo-14M", 0), ("OLMo-37M", 5)]:
        for step in (1, 16, 2):
            refs[run, step] = write_checkpoint(tmp_path / run / f"step{step}-unsharded", olmo_section(), seed + step)
        (tmp_path / run / "step16").mkdir()  # a sharded checkpoint: no model.pt
    src = open_source(tmp_path)
    assert src.sizes == ["OLMo-14M", "OLMo-37M"] and src.steps("OLMo-14M") == [1, 2, 16]
    ids = torch.randint(0, 128, (2, 6))
    ck = src.checkpoints[-1]
    with torch.no_grad():
        got, want = ck.load()(input_ids=ids).logits, reference_logits(refs[ck.size, ck.step], ids)
    assert ((got - want).abs().max() / want.abs().max()) < 1e-5
    assert pdata.ioi(src.tokenizer, 4).prompts  # the suite's tokenizer, from its config.yaml
    one_run = open_source(tmp_path / "OLMo-37M", steps=[2, 16])
    assert one_run.sizes == ["OLMo-37M"] and one_run.steps("OLMo-37M") == [2, 16]


def test_olmo_setting_outside_the_mapping_stops_when_the_source_opens(tmp_path):
    write_checkpoint(tmp_path / "run" / "step4-unsharded", dict(olmo_section(), alibi=True, rope=False,
                                                                  flash_attention=False))
    with pytest.raises(ValueError, match="alibi"):
        open_source(tmp_path / "run")


def zsl_hub(cache, revisions, seed=0):
    """A hub cache holding `revisions` of mirandrom/zsl-checkpoints as huggingface_hub lays it out."""
    repo = cache / "models--mirandrom--zsl-checkpoints"
    for k, revision in enumerate(revisions):
        commit = f"{seed + k:040x}"
        write_checkpoint(repo / "snapshots" / commit, olmo_section(), seed + k)
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / revision).write_text(commit)
    return repo


def test_zsl_hub_revisions_name_their_sizes(tmp_path, capsys):
    zsl_hub(tmp_path, ["OLMo-14M-step1", "OLMo-14M-step1024", "OLMo-37M-step4", "main"])
    src = open_source("hf:mirandrom/zsl-checkpoints", cache_dir=tmp_path)
    assert src.sizes == ["OLMo-14M", "OLMo-37M"] and src.steps("OLMo-14M") == [1, 1024]
    assert all(c.kind == "olmo" for c in src.checkpoints)
    assert src.checkpoints[0].load().config.model_type == "llama"
    assert pdata.oml(src.tokenizer).words["event"]  # the suite's tokenizer leaves some events out, not all
    sub = open_source("hf:mirandrom/zsl-checkpoints", cache_dir=tmp_path, sizes=["OLMo-14M"], steps=[1024, 2048])
    assert [(c.size, c.step) for c in sub.checkpoints] == [("OLMo-14M", 1024)]
    assert "OLMo-14M step 2048" in capsys.readouterr().out  # offline: the selected step not cached is named
    with pytest.raises(FileNotFoundError, match="OLMo-1B"):
        open_source("hf:mirandrom/zsl-checkpoints", cache_dir=tmp_path, sizes=["OLMo-1B"])


def test_hub_selection_downloads_only_the_selected_missing_revisions(tmp_path, monkeypatch):
    """Online: the hub's list is selected first (log-spaced), then only what the cache lacks is fetched."""
    from gradtools import checkpoint_sources as cs

    zsl_hub(tmp_path, ["OLMo-14M-step0", "OLMo-14M-step1024"])
    on_hub = [f"OLMo-14M-step{2 ** i}" for i in range(11)] + ["OLMo-14M-step0", "OLMo-37M-step1"]
    fetched = []

    def fake_download(name, revision, cache_dir):
        fetched.append(revision)
        zsl_hub(tmp_path, [revision], seed=100 + len(fetched))

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(cs, "hub_offline", lambda: False)
    monkeypatch.setattr(cs, "remote_revisions", lambda name: {cs.parse_revision(name, r): r for r in on_hub})
    monkeypatch.setattr(cs, "download_revision", fake_download)
    src = open_source("hf:mirandrom/zsl-checkpoints", cache_dir=tmp_path, sizes=["OLMo-14M"], max_per_size=4)
    chosen = log_spaced_subset([0] + [2 ** i for i in range(11)], 4)
    assert src.steps("OLMo-14M") == chosen
    assert sorted(fetched) == sorted(f"OLMo-14M-step{s}" for s in chosen if s not in (0, 1024))
    fetched.clear()
    open_source("hf:mirandrom/zsl-checkpoints", cache_dir=tmp_path, sizes=["OLMo-14M"], max_per_size=4)
    assert fetched == []  # all cached now
    open_source("hf:mirandrom/zsl-checkpoints", cache_dir=tmp_path, download=False)
    assert fetched == []


def test_log_spaced_subset():
    steps = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 1250, 1500, 1750, 2000]
    sub = log_spaced_subset(steps, 6)
    assert len(sub) == 6 and sub[0] == 0 and sub[-1] == 2000 and set(sub) <= set(steps)
    assert log_spaced_subset(steps[:3], 6) == steps[:3]
