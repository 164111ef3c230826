"""gradient_gram(layers="all"): every parameter, against a loop of per-example backward passes (float64)."""
import pytest
import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel

from gradtools import gradient_gram, per_example_gradients
from gradtools.gram_all import all_parameters
from gradtools.lm import sequence_losses
from gradtools.olmo_checkpoints import olmo_to_llama, OLMO_DEFAULTS, zsl_model_section
from tiny_models import token_batch

TOL = 1e-10


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def check(model, vocab, block_size=None):
    batch = token_batch(5, vocab=vocab)
    P = per_example_gradients(model, sequence_losses, batch, layers="all")
    assert P.shape[1] == sum(p.numel() for _, p in all_parameters(model))
    gram = gradient_gram(model, sequence_losses, batch, layers="all", per_layer=True, block_size=block_size)
    assert rel_err(gram.dot, P @ P.T) < TOL
    assert rel_err(sum(gram.layers.values()), gram.dot) < 1e-13
    other = token_batch(3, seq=8, vocab=vocab)
    cross = gradient_gram(model, sequence_losses, batch, other=other, layers="all", block_size=block_size)
    Q = per_example_gradients(model, sequence_losses, other, layers="all")
    assert rel_err(cross.dot, P @ Q.T) < TOL
    assert rel_err(cross.other_sqnorm, (Q * Q).sum(1)) < TOL
    return gram


@pytest.mark.parametrize("block_size", [None, 2])
@pytest.mark.parametrize("contraction", ["ghost", "materialise", "by_cost"])
def test_gpt_neox_every_parameter(tiny_lm, block_size, contraction, monkeypatch):
    """Embedding (ghost form), LayerNorm weights and biases, linear layers (each way), untied unembedding."""
    import gradtools.gram as gram_module
    if contraction != "by_cost":
        monkeypatch.setattr(gram_module, "_use_ghost", lambda *a, **kw: contraction == "ghost")
    gram = check(tiny_lm, 23, block_size)
    assert "gpt_neox.embed_in.weight" in gram.layers and "gpt_neox.final_layer_norm.bias" in gram.layers


def test_gpt2_tied_embedding_and_position_embeddings():
    """GPT-2: wte tied to lm_head (cross terms between the two uses), wpe looked up by positions."""
    torch.manual_seed(3)
    config = GPT2Config(vocab_size=23, n_embd=8, n_layer=2, n_head=2, n_positions=16,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(config).double().eval()
    assert model.lm_head.weight is model.transformer.wte.weight
    gram = check(model, 23)
    assert "lm_head.weight" not in gram.layers and "transformer.wte.weight" in gram.layers  # counted once


def test_olmo_class_tied_model_with_frozen_norms():
    """The zsl suite's architecture (tied, RMS norms without affine: frozen, left out)."""
    section = zsl_model_section("37M", width=4, layers=2, vocab=31)
    torch.manual_seed(0)
    from transformers import LlamaForCausalLM
    from gradtools.olmo_checkpoints import llama_config, olmo_state_dict
    config = {**OLMO_DEFAULTS, **section}
    source = LlamaForCausalLM(llama_config(config))
    model = olmo_to_llama(olmo_state_dict(source, config), config, dtype=torch.float64)
    gram = check(model, 31)
    assert not any("norm" in name for name in gram.layers)


def test_a_weight_used_three_times_is_refused():
    class ThreeUses(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(7, 4)
            self.out1, self.out2 = nn.Linear(4, 7, bias=False), nn.Linear(4, 7, bias=False)
            self.out1.weight = self.emb.weight
            self.out2.weight = self.emb.weight

        def forward(self, ids):
            h = self.emb(ids)
            return (self.out1(h) + self.out2(h)).sum(dim=(1, 2))

    with pytest.raises(ValueError, match="'emb.weight' is used by 3 modules"):
        gradient_gram(ThreeUses(), lambda m, b: m(b), torch.randint(0, 7, (3, 5)), layers="all")


def test_a_parameter_of_another_kind_is_refused_by_name():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)
            self.scale = nn.Parameter(torch.ones(3, 3))

        def forward(self, x):
            return (self.lin(x) @ self.scale).sum(dim=1)

    with pytest.raises(ValueError, match="'scale'.*no per-example form"):
        gradient_gram(Scaled(), lambda m, b: m(b), torch.randn(4, 3), layers="all")
