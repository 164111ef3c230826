"""Capability metrics on prompt datasets: target loss, IOI rank accuracy, GT probability difference, OML accuracy.

All metrics read the next-token logits at each prompt's last position,
``logits[i] = model(prompt_i)[-1]`` of shape (n, V).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .prompt_datasets import PromptDataset


@torch.no_grad()
def last_logits(model: nn.Module, ds: PromptDataset, batch_size: int = 256) -> Tensor:
    """(n, V) next-token logits after each prompt (float32, CPU)."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(ds), batch_size):
        rows = list(range(start, min(start + batch_size, len(ds))))
        b = ds.batch(rows=rows)
        logits = model(input_ids=b["input_ids"].to(device),
                       attention_mask=b["attention_mask"].to(device)).logits
        last = ds.last_positions()[rows].to(device)
        out.append(logits[torch.arange(len(rows), device=device), last].float().cpu())
    return torch.cat(out)


def target_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """(n,) cross-entropy ``-log p(target_i | prompt_i)``."""
    return -torch.log_softmax(logits, dim=-1).gather(1, targets[:, None])[:, 0]


def ioi_a_above_b(logits: Tensor, a_ids: Tensor, b_ids: Tensor) -> Tensor:
    """(n,) bool: whether each IOI prompt's logit of [A] (indirect object) exceeds that of [B] (subject)."""
    rows = torch.arange(len(logits))
    return logits[rows, a_ids] > logits[rows, b_ids]


def ioi_rank_accuracy(logits: Tensor, a_ids: Tensor, b_ids: Tensor) -> float:
    """Share of IOI prompts whose logit of [A] (indirect object) exceeds that of [B] (subject)."""
    return ioi_a_above_b(logits, a_ids, b_ids).float().mean().item()


def gt_probability_difference(logits: Tensor, yy: Tensor, two_digit_ids: Tensor) -> float:
    """Hanna et al.'s ``mean_i [sum_{ZZ > YY_i} p(ZZ) - sum_{ZZ <= YY_i} p(ZZ)]``.

    ``p`` is the full-vocabulary softmax, restricted to the 100 two-digit tokens
    ``two_digit_ids`` ("00".."99"); ``yy`` (n,) the start year's last two digits.
    """
    p = torch.softmax(logits, dim=-1)[:, two_digit_ids]          # (n, 100)
    greater = torch.arange(100)[None, :] > yy[:, None]            # (n, 100)
    return (p * greater).sum(1).sub((p * ~greater).sum(1)).mean().item()


def oml_accuracy(logits: Tensor, months: Tensor, month_ids: Tensor) -> float:
    """Share of OML prompts whose highest-scoring month (of 12) is the next month (chance 1/12)."""
    pred = logits[:, month_ids].argmax(dim=1)
    return (pred == (months + 1) % 12).float().mean().item()
