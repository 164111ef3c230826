"""gradient_gram's layer contract: per-layer Grams, token-flattened layers, the `layers` argument."""
import pytest
import torch
from torch import nn
from transformers import OPTConfig, OPTForCausalLM

import gradtools.gram as gram_module
from gradtools import gradient_gram, per_example_gradients
from gradtools.lm import sequence_losses
from tiny_models import squared_error, token_batch

TOL = 1e-10


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def tiny_opt():
    torch.manual_seed(2)
    config = OPTConfig(vocab_size=29, hidden_size=8, num_hidden_layers=2, ffn_dim=12, num_attention_heads=2,
                       max_position_embeddings=32, word_embed_proj_dim=8, dropout=0.0, attention_dropout=0.0,
                       activation_dropout=0.0, layerdrop=0.0, enable_bias=True)
    return OPTForCausalLM(config).double().eval()


@pytest.mark.parametrize("ghost", [True, False])
def test_opt_token_flattened_mlp_matches_the_loop(ghost, monkeypatch):
    """OPT's fc1/fc2 see (n*S, d): split back into examples, the Gram equals per-example gradients'."""
    monkeypatch.setattr(gram_module, "_use_ghost", lambda *a, **kw: ghost)
    model = tiny_opt()
    batch = token_batch(5, vocab=29)
    names = list(gram_module.default_layers(model))
    assert any(n.endswith("fc2") for n in names)
    P = per_example_gradients(model, sequence_losses, batch)
    gram = gradient_gram(model, sequence_losses, batch, block_size=3)
    assert rel_err(gram.dot, P @ P.T) < TOL
    other = token_batch(3, seq=8, vocab=29)
    cross = gradient_gram(model, sequence_losses, batch, other=other)
    assert rel_err(cross.dot, P @ per_example_gradients(model, sequence_losses, other).T) < TOL


class RoutedExpert(nn.Module):
    """A layer that sees only the tokens routed to it (a mixture-of-experts expert)."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(3, 4)
        self.expert = nn.Linear(4, 2)

    def forward(self, x):  # (n, S, 3) -> (n,) losses
        h = self.inp(x)
        flat = h.reshape(-1, 4)
        routed = self.expert(flat[flat[:, 0] > 0])  # a data-dependent subset of the n*S tokens
        return h.sum(dim=(1, 2)) + routed.sum() / x.shape[0]


def test_rows_that_are_not_examples_are_refused_naming_the_layer():
    torch.manual_seed(0)
    model = RoutedExpert().double()
    x = torch.randn(4, 5, 3, dtype=torch.float64)
    routed = int((model.inp(x)[..., 0] > 0).sum())
    assert routed not in (4, 20)  # neither n nor n*S
    with pytest.raises(RuntimeError, match=f"layer 'expert': leading dimension {routed} .* cannot be attributed"):
        gradient_gram(model, lambda m, b: m(b), x)


@pytest.mark.parametrize("block_size", [None, 2])
def test_per_layer_grams_sum_to_the_total_and_match_each_layer(tiny_lm, block_size):
    batch = token_batch(5)
    gram = gradient_gram(tiny_lm, sequence_losses, batch, per_layer=True, block_size=block_size)
    assert list(gram.layers) == list(gram_module.default_layers(tiny_lm))
    assert rel_err(sum(gram.layers.values()), gram.dot) < 1e-14
    for name, layer_gram in gram.layers.items():
        P = per_example_gradients(tiny_lm, sequence_losses, batch, layers=[name])
        assert rel_err(layer_gram, P @ P.T) < TOL
    other = token_batch(3, seq=7)
    cross = gradient_gram(tiny_lm, sequence_losses, batch, other=other, per_layer=True, block_size=block_size)
    name = "gpt_neox.layers.1.mlp.dense_4h_to_h"
    want = per_example_gradients(tiny_lm, sequence_losses, batch, [name]) @ \
        per_example_gradients(tiny_lm, sequence_losses, other, [name]).T
    assert rel_err(cross.layers[name], want) < TOL
    assert gradient_gram(tiny_lm, sequence_losses, batch).layers is None


def test_one_passes_worth_of_work_per_block_pair(tiny_lm, monkeypatch):
    """per_layer adds no forward/backward pass."""
    calls = []
    real = gram_module._run_pass
    monkeypatch.setattr(gram_module, "_run_pass", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    batch = token_batch(6)
    gradient_gram(tiny_lm, sequence_losses, batch, block_size=2)
    without = len(calls)
    calls.clear()
    gradient_gram(tiny_lm, sequence_losses, batch, block_size=2, per_layer=True)
    assert len(calls) == without


def test_layers_argument_contract(mlp):
    x, y = torch.randn(3, 2, 5, dtype=torch.float64), torch.randn(3, 2, 3, dtype=torch.float64)
    one = gradient_gram(mlp, squared_error, (x, y), layers="fc1")  # one name, not its characters
    P = per_example_gradients(mlp, squared_error, (x, y), layers=["fc1"])
    assert rel_err(one.dot, P @ P.T) < TOL
    with pytest.raises(ValueError, match="no submodule named 'fc9'"):
        gradient_gram(mlp, squared_error, (x, y), layers="fc9")
