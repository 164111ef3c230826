r"""Study 1 per checkpoint: target losses, gradient alignment, destructive interference, name clustering.

Shared-gradient-discovery, section 3 and appendices B-C. For a model at one
checkpoint and prompt datasets :math:`D` (each example i a prompt with one
target token, loss :math:`\ell_i = -\log p(t_i \mid x_i)`):

* **target loss and probability**: mean over :math:`D` of :math:`\ell_i` and of
  :math:`p(t_i \mid x_i) = e^{-\ell_i}`;
* **gradient alignment** (figure 2, middle): mean and standard deviation over
  pairs :math:`i \ne j` of :math:`\cos(g_i, g_j)`, with :math:`g_i = \nabla \ell_i`
  w.r.t. the non-embedding linear layers, from the Gram kernel
  (:func:`gradtools.gradient_gram`, appendix D.2);
* **cross alignment** (appendix B.4): the same over pairs :math:`(i \in D_1, j \in D_2)`,
  :math:`i \ne j` (the datasets share prompts; the pair of one prompt with
  itself is left out, as in the within-dataset mean);
* **destructive interference** (figure 2, right): for training sequences j
  (loss :math:`L_j`, the mean token loss), :math:`c_j = \langle \nabla L_j, \bar g \rangle`
  with :math:`\bar g = \frac1n \sum_i g_i` the gradient of the mean IOI loss, so a
  gradient step on a batch B changes the IOI loss by
  :math:`-\eta \sum_{j \in B} c_j` to first order;
  :math:`DI(B) = 1 - |\sum_{j \in B} c_j| / \sum_{j \in B} |c_j|` (1: the batch's
  sequences cancel on IOI; 0: they all push it the same way);
* **name-unembedding clustering** (appendix B.3): the mean pairwise cosine of the
  unembedding rows :math:`U_a` of the dataset's names, against the same for as many
  random non-name tokens.

:func:`checkpoint_table` gathers all of it into one tidy table
``(dataset, metric, value)`` per checkpoint.
"""
from __future__ import annotations

import pandas as pd
import torch
from torch import Tensor, nn

from . import capabilities as cap
from .gram import gradient_gram
from .lm import sequence_losses, token_losses
from .prompt_datasets import PromptDataset


# ---------------------------------------------------------------- losses

def target_losses(model: nn.Module, ds: PromptDataset) -> Tensor:
    """(n,) target losses :math:`-\\log p(t_i | x_i)` (float32, CPU)."""
    return cap.target_loss(cap.last_logits(model, ds), ds.targets)


def loss_metrics(model: nn.Module, ds: PromptDataset) -> dict[str, float]:
    """``loss`` (mean target loss, nats) and ``prob`` (mean target probability) over the dataset."""
    loss = target_losses(model, ds)
    return {"loss": loss.mean().item(), "prob": torch.exp(-loss).mean().item()}


# ---------------------------------------------------------------- alignment

def _model_batch(model: nn.Module, ds: PromptDataset) -> dict[str, Tensor]:
    device = next(model.parameters()).device
    return {k: v.to(device) for k, v in ds.batch().items()}


def pairwise_cosines(model: nn.Module, ds: PromptDataset, other: PromptDataset | None = None, *,
                     block_size: int | None = None, layers=None) -> Tensor:
    """Cosines of per-example target-loss gradients over the pairs :math:`i \\ne j`, flat.

    Without ``other``: the n(n-1)/2 pairs ``i < j`` of ``ds``. With ``other`` (the same
    number of prompts, in the same order): the n(n-1) pairs ``(i of ds, j of other)``,
    ``i != j``. Gradients w.r.t. ``layers`` as in :func:`gradtools.gradient_gram` (default: the
    paper's non-embedding linear layers; ``"all"``: every parameter, for appendix D.2's check).
    """
    batch = _model_batch(model, ds)
    if other is None:
        return gradient_gram(model, sequence_losses, batch, block_size=block_size,
                             layers=layers).offdiagonal_cosines()
    if len(other) != len(ds):
        raise ValueError(f"cross alignment pairs prompt i of {ds.name} with prompt j != i of {other.name}; "
                         f"they need the same number of prompts ({len(ds)} vs {len(other)})")
    # the two batches must have the same width for the kernel's shared structure: pad to the longer
    width = max(batch["input_ids"].shape[1], max(len(p) + 1 for p in other.prompts))
    ob = _model_batch(model, other)
    batch, ob = _pad_to(batch, width), _pad_to(ob, width)
    cos = gradient_gram(model, sequence_losses, batch, other=ob, block_size=block_size, layers=layers).cosine()
    n = len(ds)
    return cos[~torch.eye(n, dtype=torch.bool, device=cos.device)]


def _pad_to(batch: dict[str, Tensor], width: int) -> dict[str, Tensor]:
    extra = width - batch["input_ids"].shape[1]
    if extra <= 0:
        return batch
    fill = {"input_ids": 0, "labels": -100, "attention_mask": 0}
    return {k: torch.nn.functional.pad(v, (0, extra), value=fill[k]) for k, v in batch.items()}


def alignment_metrics(cosines: Tensor) -> dict[str, float]:
    """``cos_mean`` and ``cos_std`` (population std) of a flat tensor of pairwise cosines."""
    cosines = cosines.double()
    return {"cos_mean": cosines.mean().item(), "cos_std": cosines.std(unbiased=False).item()}


def parameter_set_agreement(model: nn.Module, ds: PromptDataset, *, block_size: int | None = None) -> dict[str, float]:
    """Appendix D.2: does alignment over the non-embedding linear layers (the paper's default) agree
    with alignment over every parameter? ``cos_mean`` of each, and the Pearson correlation of the
    pairwise cosines (``pair_correlation``) across the n(n-1)/2 pairs."""
    part = pairwise_cosines(model, ds, block_size=block_size)
    return {"cos_mean_nonembedding": part.double().mean().item(),
            **_agreement(part, pairwise_cosines(model, ds, block_size=block_size, layers="all"))}


def _agreement(part: Tensor, full: Tensor) -> dict[str, float]:
    part, full = part.double(), full.double()
    corr = torch.corrcoef(torch.stack([part, full]))[0, 1].item() if len(part) > 1 else float("nan")
    return {"cos_mean_all": full.mean().item(), "pair_correlation": corr}


# ---------------------------------------------------------------- destructive interference

def mean_token_losses(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """(n,) each training sequence's mean next-token loss (the training objective, per sequence)."""
    per_token = token_losses(model, batch)
    counts = (batch["labels"][:, 1:] != -100).sum(dim=1).clamp(min=1)
    return per_token.sum(dim=1) / counts


def ioi_contributions(model: nn.Module, training: dict[str, Tensor], ds: PromptDataset, *,
                      block_size: int | None = None) -> Tensor:
    r"""(m,) :math:`c_j = \langle \nabla L_j, \frac1n \sum_i g_i \rangle` for the m training sequences.

    ``training``: ``input_ids``, ``labels`` (loss on every token), ``attention_mask``,
    each (m, S). One cross Gram (m x n) of training sequences against the dataset's
    examples, averaged over the examples.
    """
    device = next(model.parameters()).device
    training = {k: v.to(device) for k, v in training.items()}
    prompts = _model_batch(model, ds)

    def loss_fn(m, b):  # the same function must serve both batches: prompts' loss is their one target
        return mean_token_losses(m, b)

    dot = gradient_gram(model, loss_fn, training, other=prompts, block_size=block_size).dot
    return dot.mean(dim=1)


def destructive_interference(contributions: Tensor, batch_size: int) -> pd.DataFrame:
    r"""Per training batch (consecutive groups of ``batch_size`` contributions): DI and the sum.

    Columns ``batch``, ``di`` :math:`= 1 - |\sum_j c_j| / \sum_j |c_j|`, ``sum_c``
    :math:`= \sum_j c_j` (positive: a gradient step on the batch lowers the IOI loss).
    """
    c = contributions.double().cpu()
    rows = []
    for b, start in enumerate(range(0, len(c) - batch_size + 1, batch_size)):
        part = c[start:start + batch_size]
        rows.append(dict(batch=b, di=1 - (part.sum().abs() / part.abs().sum()).item(), sum_c=part.sum().item()))
    return pd.DataFrame(rows)


def _batched(contributions: Tensor, batch_size: int) -> Tensor:
    """(batches, batch_size) consecutive groups of the contributions (a last partial group is dropped)."""
    c = contributions.double().cpu()
    batches = len(c) // batch_size
    if batches == 0:
        raise ValueError(f"{len(c)} contributions make no batch of {batch_size}; pass more training sequences")
    return c[:batches * batch_size].view(batches, batch_size)


def sign_null(contributions: Tensor, batch_size: int, draws: int = 2000, seed: int = 0) -> pd.DataFrame:
    r"""DI against its null: the same magnitudes :math:`|c_j|` with independent random signs.

    Random signs are what "no systematic direction" means for a batch: its DI is then
    :math:`1 - |\sum_j s_j |c_j|| / \sum_j |c_j|`, which is large for a batch of many comparable
    contributions by cancellation alone. Per batch (as :func:`destructive_interference`): ``di``,
    ``null_mean`` (the expected DI under random signs, over ``draws`` seeded draws) and ``null_p``
    (the share of draws whose DI is at least the observed one: small means the batch cancels
    more than chance would), and ``sum_c``.
    """
    c = _batched(contributions, batch_size)
    a = c.abs()
    total = a.sum(dim=1).clamp_min(torch.finfo(a.dtype).tiny)
    observed = 1 - c.sum(dim=1).abs() / total
    gen = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, (draws, *a.shape), generator=gen).to(a.dtype) * 2 - 1
    null = 1 - (signs * a).sum(dim=2).abs() / total  # (draws, batches)
    return pd.DataFrame(dict(batch=range(len(c)), di=observed.numpy(), sum_c=c.sum(dim=1).numpy(),
                             null_mean=null.mean(dim=0).numpy(),
                             null_p=(null >= observed).to(a.dtype).mean(dim=0).numpy()))


def interference_by_batch_size(contributions: Tensor, batch_sizes: list[int], draws: int = 2000,
                               seed: int = 0) -> pd.DataFrame:
    """Per batch size: mean DI, its random-sign null (:func:`sign_null`), the share of batches whose step
    lowers the loss (``sum_c > 0``), and how many batches the contributions make."""
    rows = []
    for size in batch_sizes:
        null = sign_null(contributions, size, draws, seed)
        rows.append(dict(batch_size=size, batches=len(null), di_mean=null.di.mean(), null_mean=null.null_mean.mean(),
                         di_minus_null=(null.di - null.null_mean).mean(), null_p_median=null.null_p.median(),
                         lowering_share=(null.sum_c > 0).mean()))
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- unembedding clustering

def mean_pairwise_row_cosine(weight: Tensor, rows: Tensor) -> float:
    """Mean over pairs ``a < b`` of ``cos(W[rows[a]], W[rows[b]])``."""
    w = torch.nn.functional.normalize(weight[rows].double(), dim=1)
    cos = w @ w.T
    i, j = torch.triu_indices(len(rows), len(rows), offset=1)
    return cos[i, j].mean().item()


def unembedding_clustering(model: nn.Module, token_ids: Tensor, n_random: int | None = None,
                           seed: int = 0) -> dict[str, float]:
    """Mean pairwise cosine of the unembedding rows of ``token_ids`` (``names``), of random other tokens
    (``random``, ``n_random`` of them, default as many) and the difference (``excess``)."""
    weight = model.get_output_embeddings().weight.detach().cpu()
    token_ids = torch.as_tensor(token_ids).cpu()
    mask = torch.ones(weight.shape[0], dtype=torch.bool)
    mask[token_ids] = False
    pool = torch.nonzero(mask)[:, 0]
    g = torch.Generator().manual_seed(seed)
    rand = pool[torch.randperm(len(pool), generator=g)[:n_random or len(token_ids)]]
    names, random = mean_pairwise_row_cosine(weight, token_ids), mean_pairwise_row_cosine(weight, rand)
    return {"names": names, "random": random, "excess": names - random}


# ---------------------------------------------------------------- one checkpoint

def checkpoint_table(model: nn.Module, datasets: dict[str, PromptDataset], *,
                     cross: list[tuple[str, str]] = (), training: dict[str, Tensor] | None = None,
                     interference_dataset: str = "ioi", training_batch_size: int = 16,
                     name_ids: Tensor | None = None, two_digit_ids: Tensor | None = None,
                     block_size: int | None = None, interference_batch_sizes: tuple[int, ...] = (),
                     all_parameters: bool | tuple[str, ...] = False) -> pd.DataFrame:
    """All study-1 measurements of one model, as a tidy table ``(dataset, metric, value)``.

    * each dataset: ``loss``, ``prob``, ``cos_mean``, ``cos_std``;
    * each ``(a, b)`` in ``cross``: dataset ``"a x b"``, ``cos_mean``, ``cos_std``;
    * ``training`` given: dataset ``"training x <interference_dataset>"``, ``di_mean``, ``di_std``
      (over batches of ``training_batch_size``), ``lowering_share`` (share of batches whose step
      lowers that loss, ``sum_c > 0``), ``sum_c_mean``, ``di_null_mean`` (:func:`sign_null`); for each
      of ``interference_batch_sizes``, ``di_mean_b<B>``, ``di_null_mean_b<B>``, ``lowering_share_b<B>``;
    * ``all_parameters``: each dataset (True) or each named dataset (a tuple of names) also
      ``cos_mean_all`` and ``pair_correlation`` (appendix D.2, :func:`parameter_set_agreement`);
    * ``name_ids`` given: dataset ``"name unembeddings"``, ``names``, ``random``, ``excess``;
    * ``two_digit_ids`` given and a ``gt`` dataset: ``gt`` ``prob_diff`` (Hanna et al.).
    """
    rows = []

    def add(dataset, metrics):
        rows.extend(dict(dataset=dataset, metric=k, value=float(v)) for k, v in metrics.items())

    for name, ds in datasets.items():
        add(name, loss_metrics(model, ds))
        cosines = pairwise_cosines(model, ds, block_size=block_size)
        add(name, alignment_metrics(cosines))
        if all_parameters is True or (not isinstance(all_parameters, bool) and name in all_parameters):
            add(name, _agreement(cosines, pairwise_cosines(model, ds, block_size=block_size, layers="all")))
    for a, b in cross:
        add(f"{a} x {b}", alignment_metrics(pairwise_cosines(model, datasets[a], datasets[b], block_size=block_size)))
    if training is not None:
        c = ioi_contributions(model, training, datasets[interference_dataset], block_size=block_size)
        di = sign_null(c, training_batch_size)  # DI, sum_c and the null in one pass
        add(f"training x {interference_dataset}", {
            "di_mean": di.di.mean(), "di_std": di.di.std(ddof=0), "lowering_share": (di.sum_c > 0).mean(),
            "sum_c_mean": di.sum_c.mean(), "di_null_mean": di.null_mean.mean()})
        for r in interference_by_batch_size(c, list(interference_batch_sizes)).itertuples():
            add(f"training x {interference_dataset}", {f"di_mean_b{r.batch_size}": r.di_mean,
                                                        f"di_null_mean_b{r.batch_size}": r.null_mean,
                                                        f"lowering_share_b{r.batch_size}": r.lowering_share})
    if name_ids is not None:
        add("name unembeddings", unembedding_clustering(model, name_ids))
    if two_digit_ids is not None and "gt" in datasets:
        gt = datasets["gt"]
        add("gt", {"prob_diff": cap.gt_probability_difference(
            cap.last_logits(model, gt), torch.tensor(gt.meta.yy.values), two_digit_ids)})
    return pd.DataFrame(rows)
