"""gradient_svd: top singular triplets of the per-example gradient matrix, from the Gram and k backwards."""
import pytest
import torch

from gradtools import gradient_svd, per_example_gradients
from gradtools.lm import sequence_losses
from tiny_models import squared_error, token_batch


def check_against_dense_svd(result, P, k):
    """Singular values (relative error < 1e-10), the subspace (projectors), the mean gradient."""
    U, S, Vh = torch.linalg.svd(P, full_matrices=False)
    assert ((result.values - S[:k]).abs() / S[:k]).max() < 1e-10
    got, want = result.vectors.T @ result.vectors, Vh[:k].T @ Vh[:k]
    assert (got - want).abs().max() < 1e-10
    # each vector is the singular vector up to sign
    signs = torch.sign((result.vectors * Vh[:k]).sum(1))
    assert (result.vectors - signs[:, None] * Vh[:k]).abs().max() < 1e-10
    assert torch.allclose(result.mean, P.mean(0), rtol=1e-12, atol=1e-14)
    assert torch.allclose(result.left.abs(), U[:, :k].abs(), atol=1e-10)


@pytest.mark.parametrize("block_size", [None, 3])
def test_top_singular_vectors_of_a_tiny_gpt_neox(tiny_lm, block_size):
    batch = token_batch(7)
    P = per_example_gradients(tiny_lm, sequence_losses, batch)
    result = gradient_svd(tiny_lm, sequence_losses, batch, 4, block_size=block_size)
    check_against_dense_svd(result, P, 4)
    assert result.vectors.shape == (4, P.shape[1])


def test_sequence_mlp_and_parameter_shapes(mlp):
    x, y = torch.randn(6, 4, 5, dtype=torch.float64), torch.randn(6, 4, 3, dtype=torch.float64)
    P = per_example_gradients(mlp, squared_error, (x, y))
    result = gradient_svd(mlp, squared_error, (x, y), 6)  # k = n: every singular value
    check_against_dense_svd(result, P, 6)
    shaped = result.as_parameters(result.vectors[0])
    assert list(shaped) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc3.weight", "fc3.bias"]
    assert shaped["fc1.weight"].shape == mlp.fc1.weight.shape and shaped["fc3.bias"].shape == (3,)


def test_bad_k_is_a_clear_error(mlp):
    x, y = torch.randn(3, 2, 5, dtype=torch.float64), torch.randn(3, 2, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="at most 3 singular values"):
        gradient_svd(mlp, squared_error, (x, y), 4)
    with pytest.raises(ValueError, match="1 <= k"):
        gradient_svd(mlp, squared_error, (x, y), 0)
    same = (x[:1].expand(3, -1, -1).clone(), y[:1].expand(3, -1, -1).clone())  # rank 1
    with pytest.raises(ValueError, match="fewer than k=2 non-zero singular values"):
        gradient_svd(mlp, squared_error, same, 2)


@pytest.mark.parametrize("block_size", [None, 4])
def test_centred_svd_matches_dense_svd_of_centred_gradients(tiny_lm, block_size):
    batch = token_batch(9)
    P = per_example_gradients(tiny_lm, sequence_losses, batch)
    result = gradient_svd(tiny_lm, sequence_losses, batch, 3, center=True, block_size=block_size)
    U, S, Vh = torch.linalg.svd(P - P.mean(0), full_matrices=False)
    assert ((result.values - S[:3]).abs() / S[:3]).max() < 1e-10
    assert (result.vectors.T @ result.vectors - Vh[:3].T @ Vh[:3]).abs().max() < 1e-10
    assert torch.allclose(result.mean, P.mean(0), rtol=1e-12, atol=1e-14)
    # uncentred and centred differ here (the mean is not small): the option is not a no-op
    assert (gradient_svd(tiny_lm, sequence_losses, batch, 3).values - result.values).abs().max() > 1e-6


def test_centred_rank_is_one_less(mlp):
    """n examples centred span at most n - 1 directions: asking for n is a clear error."""
    x, y = torch.randn(4, 2, 5, dtype=torch.float64), torch.randn(4, 2, 3, dtype=torch.float64)
    gradient_svd(mlp, squared_error, (x, y), 3, center=True)
    with pytest.raises(ValueError, match="fewer than k=4 non-zero singular values"):
        gradient_svd(mlp, squared_error, (x, y), 4, center=True)


def test_float32_batch_with_a_decaying_spectrum_is_not_rank_deficient():
    """A float32 batch of 512 whose 3rd singular value is far below the 1st but far above rounding: no error
    (an earlier tolerance, sigma_1 * n * sqrt(eps), called it zero and stopped notebook 04)."""
    from tiny_models import SequenceMLP
    torch.manual_seed(0)
    mlp32 = SequenceMLP().float()
    # near-copies of one example: one dominant gradient direction, the others small but real
    x = torch.randn(1, 2, 5) + 0.1 * torch.randn(512, 2, 5)
    y = torch.randn(1, 2, 3) + 0.1 * torch.randn(512, 2, 3)
    S = torch.linalg.svdvals(per_example_gradients(mlp32, squared_error, (x, y)).double())
    assert S[2] / S[0] < 512 * torch.finfo(torch.float32).eps ** 0.5  # the old tolerance would have raised
    assert S[2] / S[0] > 3 * (512 * torch.finfo(torch.float32).eps) ** 0.5  # well above the rounding level
    result = gradient_svd(mlp32, squared_error, (x, y), 3)
    assert ((result.values.double() - S[:3]).abs() / S[:3]).max() < 1e-3
