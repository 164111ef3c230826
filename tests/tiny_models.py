"""Tiny float64 models, batches and per-example losses shared by the tests."""
import torch
from torch import nn


class SequenceMLP(nn.Module):
    """Linear -> LayerNorm -> GELU -> Linear on (n, S, d) inputs, with a bias-free layer too."""

    def __init__(self, d_in=5, d_hidden=7, d_out=3):
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.norm = nn.LayerNorm(d_hidden)
        self.fc2 = nn.Linear(d_hidden, d_hidden, bias=False)
        self.fc3 = nn.Linear(d_hidden, d_out)

    def forward(self, x):
        h = torch.nn.functional.gelu(self.norm(self.fc1(x)))
        return self.fc3(torch.tanh(self.fc2(h)))


def squared_error(model, batch):
    """One loss per example: the squared error summed over the example's positions."""
    x, y = batch
    return (model(x) - y).square().reshape(x.shape[0], -1).sum(dim=1)


def token_batch(n, seq=6, vocab=23):
    ids = torch.randint(0, vocab, (n, seq))
    labels = ids.clone()
    labels[:, :2] = -100  # the loss covers only the later tokens, as a prompt's target does
    return {"input_ids": ids, "labels": labels}
