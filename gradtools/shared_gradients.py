"""Study 1 over a checkpoint source: one cached table per (size, step), gathered into one tidy table.

``study_table(source, families, ...)`` builds the task families' datasets for the
source's tokenizer, then for every checkpoint runs
:func:`gradtools.alignment.checkpoint_table` through
:func:`gradtools.distributed.run_jobs` (so each checkpoint's result is cached,
an interrupted run resumes, and under ``torchrun`` the checkpoints are shared
between ranks). The table's columns: ``size, step, dataset, metric, value``.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import torch

from . import prompt_datasets as pdata
from .alignment import checkpoint_table
from .checkpoint_sources import CheckpointSource
from .distributed import run_jobs
from .prompt_tasks import PAPER_FAMILIES, build_family


def family_datasets(families: list[str], tokenizer, n: dict[str, int | None] | int | None,
                    seed: int = 0) -> tuple[dict[str, pdata.PromptDataset], list[tuple[str, str]]]:
    """All datasets of ``families`` (``n``: per family name or one number) and the cross pairs
    ``(task, control)`` of every family (appendix B.4 uses ioi x ioi_name and ioi x ioi_copy)."""
    datasets, cross = {}, []
    for family in families:
        size = n.get(family) if isinstance(n, dict) else n
        built = build_family(family, tokenizer, size, seed)
        names = list(built)
        clash = set(names) & set(datasets)
        if clash:
            raise ValueError(f"task {family!r} reuses dataset names {sorted(clash)}")
        datasets.update(built)
        cross += [(names[0], control) for control in names[1:]]
    return datasets, cross


def settings_key(settings: dict) -> str:
    """A short stable hash of the settings that change a checkpoint's numbers (names its cache folder)."""
    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:10]


def study_table(source: CheckpointSource, families: list[str], *, n: dict[str, int | None] | int | None,
                cache_root: str | Path, seed: int = 0, n_training: int = 64, training_batch_size: int = 16,
                block_size: int | None = None, device: str | None = None, progress: bool = True,
                interference_batch_sizes: tuple[int, ...] = (), all_parameters: bool | tuple[str, ...] = False,
                frequency_matched: bool = True) -> pd.DataFrame:
    """Tidy ``(size, step, dataset, metric, value)`` of every checkpoint of ``source`` (see module doc).

    ``interference_batch_sizes``, ``all_parameters``: passed to
    :func:`gradtools.alignment.checkpoint_table` (DI at more batch sizes; appendix D.2's
    full-parameter alignment, for every dataset or the named ones). ``frequency_matched``: with
    ``"ioi"`` among the families and a source that knows its training token counts, the dataset
    ``ioi_rand_freq`` (:func:`gradtools.prompt_datasets.ioi_rand_freq`) is added, drawn from the
    counts of the source's first size (the sizes of a suite share one corpus).

    Destructive interference is measured on IOI when ``"ioi"`` is among the families and
    the source has training data for the size (``n_training`` sequences, batches of
    ``training_batch_size``); a checkpoint measured without it is cached under a key ending
    in ``__no-di``, so it is recomputed once the training data appears. Cache keys carry the
    checkpoint's fingerprint, so a retrained checkpoint is measured again.
    ``device``: where the models run (default: CUDA when available, else CPU).
    Name clustering uses the names the IOI prompts were drawn from (``datasets["ioi"].words["name"]``).
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = source.tokenizer
    datasets, cross = family_datasets(families, tokenizer, n, seed)
    with_ioi = "ioi" in datasets and "ioi" in families
    counts = (source.token_counts(source.sizes[0]) if with_ioi and frequency_matched and source.token_counts
              else None)
    if counts is not None:
        datasets["ioi_rand_freq"] = pdata.ioi_rand_freq(tokenizer, len(datasets["ioi"]), seed, counts=counts)
    name_ids = (torch.tensor(list(pdata.single_token_ids(tokenizer, datasets["ioi"].words["name"],
                                                         what="name").values()))
                if with_ioi else None)
    two_digits = pdata.two_digit_ids(tokenizer) if "gt" in families else None
    use_training = with_ioi and source.training_batches is not None
    settings = dict(source=source.name, families=families, n=n, seed=seed, block_size=block_size,
                    n_training=n_training if use_training else 0, training_batch_size=training_batch_size,
                    **({"interference_batch_sizes": list(interference_batch_sizes)} if interference_batch_sizes else {}),
                    **({"all_parameters": all_parameters} if all_parameters else {}),
                    **({"frequency_matched": True} if counts is not None else {}))
    folder = Path(cache_root) / f"shared_gradients-{settings_key(settings)}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(json.dumps(settings, indent=1, default=str))
    by_job = {(c.size, c.step): c for c in source.checkpoints}

    def training(job):
        return source.training_batches(*job, n_training) if use_training else None

    with_di = {job: training(job) is not None for job in by_job} if use_training else {}

    def compute(job):
        checkpoint = by_job[job]
        model = checkpoint.load().to(device)
        table = checkpoint_table(model, datasets, cross=cross, training=training(job),
                                 training_batch_size=training_batch_size, name_ids=name_ids,
                                 two_digit_ids=two_digits, block_size=block_size,
                                 interference_batch_sizes=tuple(interference_batch_sizes) if use_training else (),
                                 all_parameters=all_parameters)
        return table.assign(size=checkpoint.size, step=checkpoint.step)[
            ["size", "step", "dataset", "metric", "value"]]

    def key(job):
        base = f"{job[0].replace('/', '--')}__step{job[1]:09d}__{by_job[job].fingerprint()}"
        return base + ("" if with_di.get(job) or not use_training else "__no-di")

    return run_jobs(list(by_job), compute, folder, key=key,
                    progress=progress)


def wide(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (size, step, dataset), one column per metric."""
    return table.pivot_table(index=["size", "step", "dataset"], columns="metric", values="value").reset_index()


__all__ = ["PAPER_FAMILIES", "family_datasets", "settings_key", "study_table", "wide"]
