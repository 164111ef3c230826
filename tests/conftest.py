"""Shared fixtures: tiny float64 models. The tests never use the network (hub sources read local caches)."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from gradtools.lm import tiny_causal_lm
from tiny_models import SequenceMLP


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def mlp():
    return SequenceMLP().double()


@pytest.fixture
def tiny_lm():
    return tiny_causal_lm(23, d_model=8, n_layers=2, n_heads=2, context=16, dtype=torch.float64)
