"""The offline checkpoint suite of study 1: small LMs trained here, in which IOI, GT and OML emerge.

Stands in for the paper's OLMo-style suite (``mirandrom/zsl-checkpoints``),
which cannot be downloaded here. A suite is a folder::

    <suite>/tokenizer.json             word-level tokenizer (gradtools.word_tokenizer)
    <suite>/streams.pt                 tokenized story and Wikipedia streams
    <suite>/corpus.json                story-corpus version and corpus recipe (a mismatch stops)
    <suite>/<size>/step-NNNNNN/        save_pretrained checkpoints (GPT-NeoX, gradtools.lm)
    <suite>/<size>/training_log.parquet

so study 1 reads a checkpoint with ``gradtools.lm.load_causal_lm(<suite>/<size>/step-NNNNNN)``
like any other checkpoint source. Training is :func:`gradtools.lm_training.train_causal_lm`
with a 5% warm-up then cosine decay to 10% of the peak rate.
"""
from __future__ import annotations

import json
import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from torch import Tensor

from . import capabilities as cap
from . import prompt_datasets as pdata
from .cache import save_table, save_torch
from .lm import tiny_causal_lm, token_losses
from .lm_training import saved_steps, load_checkpoint, train_causal_lm
from .paths import cache_dir
from .suite_corpus import VERSION as CORPUS_VERSION
from .suite_corpus import mixed_batch_fn, stories, token_stream, wikipedia_paragraphs
from .word_tokenizer import load_word_tokenizer, train_word_tokenizer


@dataclass(frozen=True)
class SuiteRecipe:
    """Corpus and optimisation settings shared by every size of a suite (a size may set its own ``lr``)."""
    vocab_size: int = 2048
    n_stories: int = 400_000
    wiki_chars: int | None = None      # None: the whole Wikipedia excerpt
    story_fraction: float = 0.9        # share of training rows cut from the story stream
    context: int = 64
    batch_size: int = 16
    steps: int = 12_000
    lr: float = 3e-3
    warmup_frac: float = 0.05
    final_lr_frac: float = 0.1
    schedule: str = "cosine"           # "cosine" (warmup_cosine) or "trapezoid" (the paper's: warmup_trapezoid)
    warmup_steps: int | None = None    # trapezoid: warm-up steps (None: warmup_frac * steps)
    cooldown_frac: float = 0.0         # trapezoid: linear cool-down to 0 over this share of the steps (paper: none)
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose from {SCHEDULES}")


def suite_dir(profile: str = "default", name: str = "checkpoint_suite") -> Path:
    """``data/cache/<profile>/<name>``: where a profile's suite lives (not committed)."""
    path = cache_dir(profile) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def warmup_cosine(steps: int, warmup_frac: float = 0.05, final_frac: float = 0.1) -> Callable[[int], float]:
    """LR factor: linear warm-up over ``warmup_frac * steps``, then cosine from 1 down to ``final_frac``."""
    warm = max(1, round(warmup_frac * steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, steps - warm))
        return final_frac + (1 - final_frac) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


def warmup_trapezoid(steps: int, warmup_steps: int, cooldown_frac: float = 0.0) -> Callable[[int], float]:
    """LR factor of the shared-gradient paper's suite: linear warm-up over ``warmup_steps``, then constant
    (the paper analyses no cool-down); with ``cooldown_frac`` > 0, linear to 0 over the last share of steps."""
    warm = max(1, warmup_steps)
    cool = round(cooldown_frac * steps)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if cool and step >= steps - cool:
            return max(0.0, (steps - step) / cool)
        return 1.0
    return factor


SCHEDULES = ("cosine", "trapezoid")
RECIPE_DEFAULTS = {"schedule": "cosine", "warmup_steps": None, "cooldown_frac": 0.0}  # fields added after suites were cached


def lr_schedule(recipe: "SuiteRecipe") -> Callable[[int], float]:
    """The recipe's LR factor by step."""
    if recipe.schedule == "cosine":
        return warmup_cosine(recipe.steps, recipe.warmup_frac, recipe.final_lr_frac)
    if recipe.schedule == "trapezoid":
        warm = recipe.warmup_steps if recipe.warmup_steps is not None else round(recipe.warmup_frac * recipe.steps)
        return warmup_trapezoid(recipe.steps, warm, recipe.cooldown_frac)
    raise ValueError(f"unknown schedule {recipe.schedule!r}; choose from {SCHEDULES}")


def checkpoint_schedule(steps: int, windows: list[tuple[int, int, int]]) -> list[int]:
    """Steps to save: 0, powers of two up to ``steps``, the last step, and ``range(a, b + 1, every)``
    for each dense window ``(a, b, every)`` (where capabilities emerge)."""
    out = {0, steps} | {2 ** k for k in range(int(math.log2(max(steps, 1))) + 1)}
    for a, b, every in windows:
        out |= set(range(a, min(b, steps) + 1, every))
    return sorted(s for s in out if 0 <= s <= steps)


def prepare_corpus(folder: str | Path, recipe: SuiteRecipe):
    """The tokenizer and the (story, Wikipedia) token streams of a suite, built once and cached in ``folder``.

    Returns ``(tokenizer, story_stream (N_s,), wiki_stream (N_w,))``.
    """
    folder = Path(folder)
    tok_path, streams_path, info_path = folder / "tokenizer.json", folder / "streams.pt", folder / "corpus.json"
    if tok_path.exists() and streams_path.exists():
        check_cached_corpus(folder, recipe)
        streams = torch.load(streams_path)
        return load_word_tokenizer(tok_path), streams["stories"], streams["wiki"]
    wiki = wikipedia_paragraphs(recipe.wiki_chars)
    story_texts = stories(recipe.n_stories, seed=recipe.seed)
    tokenizer = train_word_tokenizer(wiki + story_texts[:50_000], recipe.vocab_size)
    story_stream = token_stream(tokenizer, story_texts)
    wiki_stream = token_stream(tokenizer, wiki)
    save_torch({"stories": story_stream, "wiki": wiki_stream}, streams_path)
    tmp = folder / ".tokenizer.json.tmp"
    tokenizer.save(str(tmp))
    tmp.replace(tok_path)
    info_path.write_text(json.dumps(corpus_info(recipe)))
    return tokenizer, story_stream, wiki_stream


def check_cached_corpus(folder: Path, recipe: SuiteRecipe) -> None:
    """Stop if ``folder`` holds a tokenizer built from another corpus (another version or recipe)."""
    if not (folder / "tokenizer.json").exists():
        return
    info_path, wanted = folder / "corpus.json", corpus_info(recipe)
    saved = json.loads(info_path.read_text()) if info_path.exists() else {"version": "before 4"}
    if saved != wanted:
        raise ValueError(f"{folder} holds a corpus built otherwise (saved {saved}, asked {wanted}): "
                         "delete the folder (its checkpoints were trained on that corpus) or use another")


def corpus_info(recipe: SuiteRecipe) -> dict:
    """What a suite's cached corpus depends on: the story corpus version and the recipe's corpus fields."""
    return {"version": CORPUS_VERSION, "vocab_size": recipe.vocab_size, "n_stories": recipe.n_stories,
            "wiki_chars": recipe.wiki_chars, "seed": recipe.seed}


def mean_token_loss(model, batch: dict[str, Tensor]) -> Tensor:
    """The training loss: mean next-token cross-entropy over the batch."""
    return token_losses(model, batch).mean()


def size_recipe(recipe: SuiteRecipe, shape: dict) -> tuple[SuiteRecipe, dict]:
    """Split a size's ``shape`` into (its recipe, its model keywords): a ``lr`` in ``shape`` replaces ``recipe.lr``."""
    shape = dict(shape)
    if "lr" in shape:
        recipe = replace(recipe, lr=shape.pop("lr"))
    return recipe, shape


def check_cached_recipe(out: Path, recipe: SuiteRecipe, shape: dict) -> None:
    """Stop if ``out`` (one size) was trained with another recipe or shape than asked."""
    if not (out / "recipe.json").exists():
        return
    saved = {**RECIPE_DEFAULTS, **json.loads((out / "recipe.json").read_text())}
    wanted = {**asdict(recipe), **shape}
    differ = {k: (saved.get(k), v) for k, v in wanted.items() if saved.get(k) != v}
    if differ:
        raise ValueError(f"{out} was trained with another recipe (saved, asked): {differ}; "
                         "delete it or train into another folder")


def train_size(folder: str | Path, size: str, shape: dict, recipe: SuiteRecipe,
               checkpoint_steps: list[int], progress: bool = True) -> pd.DataFrame:
    """Train (or resume, or just read) one size of the suite into ``folder/size``.

    ``shape``: keywords of :func:`gradtools.lm.tiny_config` (d_model, n_layers, n_heads, d_mlp), and
    optionally ``lr``, this size's peak learning rate in place of ``recipe.lr`` (larger models want
    a lower one). Returns the training log (step, loss, lr), also saved as ``training_log.parquet``.
    """
    recipe, shape = size_recipe(recipe, shape)
    folder = Path(folder)
    out = folder / size
    log_path = out / "training_log.parquet"
    check_cached_corpus(folder, recipe)
    check_cached_recipe(out, recipe, shape)
    if log_path.exists() and recipe.steps in saved_steps(out):
        return pd.read_parquet(log_path)
    start = time.time()
    tokenizer, story_stream, wiki_stream = prepare_corpus(folder, recipe)
    model = tiny_causal_lm(tokenizer.get_vocab_size(), seed=recipe.seed, context=recipe.context, **shape)
    batch_fn = mixed_batch_fn(story_stream, wiki_stream, story_fraction=recipe.story_fraction,
                              batch_size=recipe.batch_size, context=recipe.context, seed=recipe.seed)
    log = train_causal_lm(model, batch_fn, mean_token_loss, steps=recipe.steps,
                          checkpoint_steps=checkpoint_steps, out_dir=out, lr=recipe.lr,
                          weight_decay=recipe.weight_decay, grad_clip=recipe.grad_clip,
                          lr_lambda=lr_schedule(recipe),
                          progress=progress)
    log["size"] = size
    save_table(log, log_path)
    # wall time of this call (a resumed run counts only its last part)
    info = {**asdict(recipe), **shape, "wall_s": round(time.time() - start, 1)}
    (out / "recipe.json").write_text(json.dumps(info, indent=1))
    return log


def _train_in_worker(folder, size, shape, recipe, checkpoint_steps) -> pd.DataFrame:
    torch.set_num_threads(1)  # one core per size: the workers share the machine
    return train_size(folder, size, shape, recipe, checkpoint_steps, progress=False)


def training_cost(shape: dict) -> int:
    """A size's relative cost per step: its non-embedding parameter count, about ``12 n_layers d_model^2``."""
    return 12 * shape["n_layers"] * shape["d_model"] ** 2


def train_sizes(folder: str | Path, sizes: dict[str, dict], recipe: SuiteRecipe, checkpoint_steps: list[int],
                workers: int = 1, progress: bool = True) -> pd.DataFrame:
    """:func:`train_size` for every size; the training logs concatenated in the order of ``sizes``.

    ``workers`` > 1 trains that many sizes at once, each in its own process on one thread
    (the suite's models are too small for threads to help; processes use the cores), the costliest
    first (:func:`training_cost`). Every
    size's cached recipe is checked first, so a mismatch stops before any training.
    """
    folder = Path(folder)
    check_cached_corpus(folder, recipe)
    for size, shape in sizes.items():
        check_cached_recipe(folder / size, *size_recipe(recipe, shape))
    if workers <= 1 or len(sizes) <= 1:
        return pd.concat([train_size(folder, size, shape, recipe, checkpoint_steps, progress)
                          for size, shape in sizes.items()], ignore_index=True)
    prepare_corpus(folder, recipe)  # once, before the workers read it
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
    with ProcessPoolExecutor(min(workers, len(sizes)), mp_context=context) as pool:
        # the costliest size first, so the wall time is that of the slowest size, not of a queue behind it
        order = sorted(sizes, key=lambda s: -training_cost(sizes[s]))
        jobs = {size: pool.submit(_train_in_worker, folder, size, sizes[size], recipe, checkpoint_steps)
                for size in order}
        _show_progress(folder, list(sizes), len(set(checkpoint_steps)), list(jobs.values()), progress)
        return pd.concat([jobs[size].result() for size in sizes], ignore_index=True)


def _show_progress(folder: Path, sizes: list[str], per_size: int, jobs: list, progress: bool) -> None:
    """A bar of checkpoints saved by the workers, until every job is done."""
    from tqdm.auto import tqdm

    with tqdm(total=per_size * len(sizes), desc="training (checkpoints saved)", disable=not progress) as bar:
        while wait(jobs, timeout=10).not_done:
            bar.update(sum(len(saved_steps(folder / s)) for s in sizes) - bar.n)
        bar.update(sum(len(saved_steps(folder / s)) for s in sizes) - bar.n)


def evaluation_datasets(tokenizer, n_ioi: int = 500, n_gt: int = 500, n_oml: int | None = None,
                        seed: int = 1) -> dict[str, pdata.PromptDataset]:
    """The held-out evaluation sets: ``ioi``, ``gt``, ``oml`` (controls share their prompts)."""
    return {"ioi": pdata.ioi(tokenizer, n_ioi, seed), "gt": pdata.gt(tokenizer, n_gt, seed),
            "oml": pdata.oml(tokenizer, n_oml, seed)}


def evaluate_checkpoint(model, tokenizer, datasets: dict[str, pdata.PromptDataset]) -> dict[str, float]:
    """The capability metrics of one model.

    Returns ``ioi_loss``, ``ioi_name_loss`` (a random other name), ``ioi_copy_loss`` ([B]),
    ``ioi_rank_accuracy`` ([A] above [B]), ``gt_loss``, ``gt_prob_diff``, ``oml_loss``,
    ``oml_accuracy`` (argmax over the 12 months), each a mean over the dataset's prompts.
    """
    ioi, gt, oml = datasets["ioi"], datasets["gt"], datasets["oml"]
    names = pdata.single_token_ids(tokenizer, ioi.words["name"] or pdata.NAMES, what="name")  # those IOI used
    name_ids = torch.tensor(list(names.values()))
    logits = cap.last_logits(model, ioi)
    a, b = torch.tensor(ioi.meta.a_id.values), torch.tensor(ioi.meta.b_id.values)
    logp = torch.log_softmax(logits, dim=-1)
    # IOI-name loss, in expectation over the other names: -mean_{n != A, B} log p(n)
    lp_names = logp[:, name_ids]
    other = (name_ids[None, :] != a[:, None]) & (name_ids[None, :] != b[:, None])
    ioi_name = -(lp_names * other).sum(1) / other.sum(1)
    out = {"ioi_loss": cap.target_loss(logits, ioi.targets).mean().item(),
           "ioi_name_loss": ioi_name.mean().item(),
           "ioi_copy_loss": cap.target_loss(logits, b).mean().item(),
           "ioi_rank_accuracy": cap.ioi_rank_accuracy(logits, a, b)}
    logits = cap.last_logits(model, gt)
    out["gt_loss"] = cap.target_loss(logits, gt.targets).mean().item()
    out["gt_prob_diff"] = cap.gt_probability_difference(logits, torch.tensor(gt.meta.yy.values),
                                                        pdata.two_digit_ids(tokenizer))
    logits = cap.last_logits(model, oml)
    out["oml_loss"] = cap.target_loss(logits, oml.targets).mean().item()
    out["oml_accuracy"] = cap.oml_accuracy(logits, torch.tensor(oml.meta.month.values),
                                           pdata.month_ids(tokenizer))
    return out


def ioi_rank_by_template(model, ioi: pdata.PromptDataset) -> pd.DataFrame:
    """Per evaluation template (index into :data:`gradtools.prompt_datasets.IOI_TEMPLATES`) and name
    order (BABA, ABBA): prompts, and the share with [A]'s logit above [B]'s."""
    above = cap.ioi_a_above_b(cap.last_logits(model, ioi), torch.tensor(ioi.meta.a_id.values),
                              torch.tensor(ioi.meta.b_id.values))
    table = ioi.meta[["template", "order"]].assign(a_above_b=above.float().numpy())
    return (table.groupby(["template", "order"], as_index=False)
            .agg(prompts=("a_above_b", "size"), a_above_b=("a_above_b", "mean")))


def evaluate_size(folder: str | Path, size: str, datasets: dict[str, pdata.PromptDataset],
                  progress: bool = True) -> pd.DataFrame:
    """Tidy table (size, step, metric, value) of :func:`evaluate_checkpoint` at every saved step of ``size``."""
    from tqdm.auto import tqdm

    folder = Path(folder)
    tokenizer = load_word_tokenizer(folder / "tokenizer.json")
    rows = []
    for step in tqdm(saved_steps(folder / size), desc=f"evaluating {size}", disable=not progress):
        metrics = evaluate_checkpoint(load_checkpoint(folder / size, step), tokenizer, datasets)
        rows += [dict(size=size, step=step, metric=k, value=v) for k, v in metrics.items()]
    return pd.DataFrame(rows)


def emergence_step(curve: pd.DataFrame, threshold: float, above: bool = True) -> int | None:
    """The first step from which ``value`` stays beyond ``threshold`` at every later checkpoint.

    ``curve``: rows (step, value) of one metric and size; ``above=False`` for "stays below".
    None if the last checkpoint is not beyond the threshold.
    """
    curve = curve.sort_values("step")
    ok = (curve.value > threshold) if above else (curve.value < threshold)
    if not ok.iloc[-1]:
        return None
    failing = curve.step[~ok]
    later = curve.step[curve.step > failing.max()] if len(failing) else curve.step
    return int(later.min())


def first_step_beyond(curve: pd.DataFrame, threshold: float, above: bool = True) -> int | None:
    """The first step at which ``value`` is beyond ``threshold`` (it may fall back later); None if never."""
    curve = curve.sort_values("step")
    ok = (curve.value > threshold) if above else (curve.value < threshold)
    return int(curve.step[ok].iloc[0]) if ok.any() else None
