"""gradient_gram against a loop of per-example backward passes, in float64."""
import pytest
import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.pytorch_utils import Conv1D

import gradtools.gram as gram_module
from gradtools import gradient_gram, gram_block, per_example_gradients
from gradtools.lm import sequence_losses

from tiny_models import squared_error, token_batch

TOL = 1e-10


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def reference(model, loss_fn, batch, other=None, layers=None):
    pa = per_example_gradients(model, loss_fn, batch, layers)
    pb = pa if other is None else per_example_gradients(model, loss_fn, other, layers)
    return pa @ pb.T


def seq_batch(n, s=4):
    return torch.randn(n, s, 5, dtype=torch.float64), torch.randn(n, s, 3, dtype=torch.float64)


@pytest.fixture(params=["ghost", "materialise", "by_cost"])
def contraction(request, monkeypatch):
    """Run each test with each way of contracting a layer, and the per-layer choice by cost."""
    if request.param != "by_cost":
        ghost = request.param == "ghost"
        monkeypatch.setattr(gram_module, "_use_ghost", lambda *a, **kw: ghost)
    return request.param


def test_flat_examples_match_loop(mlp, contraction):
    x, y = torch.randn(9, 5, dtype=torch.float64), torch.randn(9, 3, dtype=torch.float64)
    g = gradient_gram(mlp, squared_error, (x, y))
    assert rel_err(g.dot, reference(mlp, squared_error, (x, y))) < TOL
    assert torch.equal(g.sqnorm, torch.diagonal(g.dot))


def test_sequence_examples_match_loop(mlp, contraction):
    batch = seq_batch(8)
    g = gradient_gram(mlp, squared_error, batch)
    assert rel_err(g.dot, reference(mlp, squared_error, batch)) < TOL


def test_symmetric_blocks_of_a_large_square_gram(mlp, contraction, monkeypatch):
    monkeypatch.setattr(gram_module, "SYMMETRIC_MIN_N", 4)  # exercise the blockwise path on a small n
    batch = seq_batch(11)
    g = gradient_gram(mlp, squared_error, batch)
    assert rel_err(g.dot, reference(mlp, squared_error, batch)) < TOL


def test_cosine_matches_per_example_gradients(mlp):
    batch = seq_batch(6)
    p = per_example_gradients(mlp, squared_error, batch)
    cos = torch.nn.functional.cosine_similarity(p[:, None], p[None, :], dim=-1)
    g = gradient_gram(mlp, squared_error, batch)
    assert (g.cosine() - cos).abs().max() < TOL
    iu = torch.triu_indices(6, 6, 1)
    assert (g.offdiagonal_cosines() - cos[iu[0], iu[1]]).abs().max() < TOL


def test_blocks_equal_whole(mlp, contraction):
    batch = seq_batch(10)
    ref = reference(mlp, squared_error, batch)
    for block_size in (1, 3, 4, 10):
        g = gradient_gram(mlp, squared_error, batch, block_size=block_size)
        assert rel_err(g.dot, ref) < TOL, block_size


def test_cross_matrix_and_norms(mlp, contraction):
    a, b = seq_batch(5, s=4), seq_batch(7, s=3)  # the other set may have other lengths
    ref = reference(mlp, squared_error, a, other=b)
    for block_size in (None, 2):
        g = gradient_gram(mlp, squared_error, a, other=b, block_size=block_size)
        assert g.dot.shape == (5, 7)
        assert rel_err(g.dot, ref) < TOL
        assert rel_err(g.sqnorm, torch.diagonal(reference(mlp, squared_error, a))) < TOL
        assert rel_err(g.other_sqnorm, torch.diagonal(reference(mlp, squared_error, b))) < TOL
    cos = g.cosine()
    assert cos.shape == (5, 7) and cos.abs().max() <= 1 + 1e-12


def test_gram_block_is_a_slice(mlp):
    batch = seq_batch(9)
    ref = reference(mlp, squared_error, batch)
    assert rel_err(gram_block(mlp, squared_error, batch, (2, 5), (2, 5)), ref[2:5, 2:5]) < TOL
    assert rel_err(gram_block(mlp, squared_error, batch, (0, 4), (6, 9)), ref[0:4, 6:9]) < TOL


def test_chosen_layers_only(mlp):
    batch = seq_batch(6)
    for layers in (["fc1"], [mlp.fc2, mlp.fc3]):
        g = gradient_gram(mlp, squared_error, batch, layers=layers)
        assert rel_err(g.dot, reference(mlp, squared_error, batch, layers=layers)) < TOL


def test_leaves_parameter_grads_untouched(mlp):
    gradient_gram(mlp, squared_error, seq_batch(4))
    assert all(p.grad is None for p in mlp.parameters())


class Conv1DNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.c2 = Conv1D(6, 5), Conv1D(3, 6)  # Conv1D(nf=d_out, nx=d_in)

    def forward(self, x):
        return self.c2(torch.tanh(self.c1(x)))


def test_conv1d_layers(contraction):
    model = Conv1DNet().double()
    batch = seq_batch(7)
    g = gradient_gram(model, squared_error, batch)
    assert rel_err(g.dot, reference(model, squared_error, batch)) < TOL


def test_tiny_gpt_neox(tiny_lm, contraction):
    batch = token_batch(6)
    g = gradient_gram(tiny_lm, sequence_losses, batch)
    assert rel_err(g.dot, reference(tiny_lm, sequence_losses, batch)) < TOL
    other = token_batch(4, seq=9)
    cross = gradient_gram(tiny_lm, sequence_losses, batch, other=other, block_size=4)
    assert cross.dot.shape == (6, 4)
    assert rel_err(cross.dot, reference(tiny_lm, sequence_losses, batch, other)) < TOL


def test_tiny_gpt2_conv1d_model(contraction):
    torch.manual_seed(1)
    config = GPT2Config(vocab_size=23, n_embd=8, n_layer=2, n_head=2, n_positions=16,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(config).double().eval()
    batch = token_batch(5)
    g = gradient_gram(model, sequence_losses, batch)
    assert rel_err(g.dot, reference(model, sequence_losses, batch)) < TOL


def test_default_layers_skip_embeddings_and_unembedding(tiny_lm):
    names = list(gram_module.default_layers(tiny_lm))
    assert names and all("embed" not in n for n in names)
    assert len(names) == 2 * 4  # qkv, dense, two MLP layers per block
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=23, n_embd=8, n_layer=1, n_head=2, n_positions=16))
    assert "lm_head" not in gram_module.default_layers(gpt2)


def test_no_linear_layer_is_an_error():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Tanh())
    with pytest.raises(ValueError, match="no linear layer"):
        gradient_gram(model, lambda m, b: m(b).sum(dim=1), torch.arange(4)[:, None])


def test_scalar_loss_is_an_error(mlp):
    with pytest.raises(ValueError, match="1-D tensor with one loss per example"):
        gradient_gram(mlp, lambda m, b: squared_error(m, b).sum(), seq_batch(4))


def test_wrong_number_of_losses_is_an_error(mlp):
    with pytest.raises(ValueError, match="returned 3 losses for a batch of 4"):
        gradient_gram(mlp, lambda m, b: squared_error(m, b)[:3], seq_batch(4))


def test_mismatched_other_is_an_error(mlp):
    x, y = seq_batch(4)
    with pytest.raises(ValueError, match="same structure"):
        gradient_gram(mlp, squared_error, (x, y), other={"x": x, "y": y})
    with pytest.raises(ValueError, match="disagree on the number of examples"):
        gradient_gram(mlp, squared_error, (x, y), other=(x[:3], y))


def test_non_linear_layer_choice_is_an_error(mlp):
    with pytest.raises(ValueError, match="not linear layers"):
        gradient_gram(mlp, squared_error, seq_batch(3), layers=["norm"])
    with pytest.raises(ValueError, match="no submodule named"):
        gradient_gram(mlp, squared_error, seq_batch(3), layers=["fc9"])


def test_reused_layer_is_an_error():
    layer = nn.Linear(4, 4).double()
    model = nn.Sequential(layer, nn.Tanh(), layer)
    x = torch.randn(3, 4, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="ran twice"):
        gradient_gram(model, lambda m, b: m(b).sum(dim=1), x)
