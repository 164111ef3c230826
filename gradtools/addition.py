"""Three-digit addition as a character-level language-modelling task (polca-hidden-breakthroughs, sec. 4).

A problem ``a + b`` with ``0 <= a, b <= 999`` is the string ``abc+def=wxyz``:
both operands zero-padded to three digits, the sum to four, one token per
character, preceded by a beginning-of-sequence token. The loss covers only the
four answer tokens ``w x y z``.

Each answer token carries two labels (the paper's two skills):

* ``digit``: its place, ``"thousands"``, ``"hundreds"``, ``"tens"`` or ``"ones"``;
* ``carry``: whether a carry *enters* that place from the column to its right.
  The ones place never receives a carry; the thousands digit is 1 exactly when a
  carry enters it, so only the hundreds and tens places make carry a label that
  is not fixed by the position or the answer itself.

Batches follow :mod:`gradtools.lm`: ``{"input_ids": (n, 13), "labels": (n, 13)}``
with ``labels = -100`` outside the answer.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from .lm import IGNORE, token_losses

CHARS = "0123456789+="
BOS = len(CHARS)  # token 12 starts every sequence
VOCAB_SIZE = len(CHARS) + 1
SEQ_LEN = 13  # BOS + "abc+def=wxyz"
ANSWER_SLICE = slice(9, 13)  # positions of w x y z in input_ids
DIGITS = ("thousands", "hundreds", "tens", "ones")  # in the order the model writes them


def encode(a: Tensor, b: Tensor) -> dict[str, Tensor]:
    """Token batch for the problems ``a[i] + b[i]`` (int tensors (n,)): input_ids and labels (n, 13)."""
    a, b = torch.as_tensor(a, dtype=torch.long), torch.as_tensor(b, dtype=torch.long)
    if ((a < 0) | (a > 999) | (b < 0) | (b > 999)).any():
        raise ValueError("operands must lie in 0..999")
    total = a + b
    place = lambda x, p: (x // p) % 10  # noqa: E731
    plus, equals = CHARS.index("+"), CHARS.index("=")
    n = a.shape[0]
    cols = [torch.full((n,), BOS)]
    cols += [place(a, p) for p in (100, 10, 1)] + [torch.full((n,), plus)]
    cols += [place(b, p) for p in (100, 10, 1)] + [torch.full((n,), equals)]
    cols += [place(total, p) for p in (1000, 100, 10, 1)]
    ids = torch.stack(cols, dim=1)
    labels = torch.full_like(ids, IGNORE)
    labels[:, ANSWER_SLICE] = ids[:, ANSWER_SLICE]
    return {"input_ids": ids, "labels": labels}


def decode(input_ids: Tensor) -> list[str]:
    """The strings of a batch of token ids (BOS dropped), for display."""
    return ["".join(CHARS[t] for t in row.tolist() if t != BOS) for row in input_ids]


def carries(a: Tensor, b: Tensor) -> Tensor:
    """(n, 4) bool: whether a carry enters each answer place, in :data:`DIGITS` order."""
    a, b = torch.as_tensor(a, dtype=torch.long), torch.as_tensor(b, dtype=torch.long)
    into_tens = (a % 10 + b % 10) >= 10
    into_hundreds = ((a // 10) % 10 + (b // 10) % 10 + into_tens.long()) >= 10
    into_thousands = ((a // 100) % 10 + (b // 100) % 10 + into_hundreds.long()) >= 10
    return torch.stack([into_thousands, into_hundreds, into_tens, torch.zeros_like(into_tens)], dim=1)


def token_labels(a: Tensor, b: Tensor) -> pd.DataFrame:
    """One row per answer token (problem-major, 4 per problem): problem, a, b, digit, carry, digit_carry, target."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    n = a.shape[0]
    carry = carries(a, b).numpy().reshape(-1)
    digit = np.tile(np.array(DIGITS), n)
    target = encode(a, b)["input_ids"][:, ANSWER_SLICE].numpy().reshape(-1)
    return pd.DataFrame({
        "token": np.arange(4 * n), "problem": np.repeat(np.arange(n), 4),
        "a": np.repeat(a.numpy(), 4), "b": np.repeat(b.numpy(), 4),
        "digit": pd.Categorical(digit, categories=list(DIGITS)), "carry": carry,
        "digit_carry": [f"{d}/{'carry' if c else 'no carry'}" for d, c in zip(digit, carry)],
        "target": target,
    })


def split_problems(n_validation: int, n_train_sample: int, seed: int = 0) -> dict[str, tuple[Tensor, Tensor]]:
    """Disjoint fixed problem sets: ``validation`` (POLCA's tokens) and ``train_sample`` (algorithm 1's Hessian).

    Drawn without replacement from all 10^6 ordered pairs; training batches
    (:func:`training_batch`) avoid the validation problems.
    """
    g = torch.Generator().manual_seed(seed)
    keys = torch.randperm(1_000_000, generator=g)[: n_validation + n_train_sample]
    val, train = keys[:n_validation], keys[n_validation:]
    return {"validation": (val // 1000, val % 1000), "train_sample": (train // 1000, train % 1000)}


def training_batch(step: int, batch_size: int, exclude: tuple[Tensor, Tensor] | None = None,
                   seed: int = 0) -> dict[str, Tensor]:
    """The training batch of a step: fresh uniform problems (one epoch, as in the paper), a pure function of step.

    Being a function of ``(seed, step)`` makes training resumable and
    reproducible without saving a data-loader state. Problems in ``exclude``
    (the validation set) are redrawn.
    """
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    excluded = None if exclude is None else exclude[0] * 1000 + exclude[1]
    keys = torch.randint(0, 1_000_000, (batch_size,), generator=g)
    if excluded is not None:
        while (bad := torch.isin(keys, excluded)).any():
            keys[bad] = torch.randint(0, 1_000_000, (int(bad.sum()),), generator=g)
    return encode(keys // 1000, keys % 1000)


def answer_token_losses(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """Cross-entropy of each answer token, (n, 4), in :data:`DIGITS` order."""
    # token_losses drops the first position (labels shift by one), hence the -1
    return token_losses(model, batch)[:, ANSWER_SLICE.start - 1: ANSWER_SLICE.stop - 1]


def mean_answer_loss(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """Scalar training loss: the mean over answer tokens."""
    return answer_token_losses(model, batch).mean()


@torch.no_grad()
def answer_accuracy(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """(n, 4) bool: whether the greedy prediction of each answer token is right (teacher forcing)."""
    logits = model(input_ids=batch["input_ids"]).logits
    pred = logits[:, ANSWER_SLICE.start - 1: ANSWER_SLICE.stop - 1].argmax(-1)
    return pred == batch["input_ids"][:, ANSWER_SLICE]
