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
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from . import prompt_datasets as pdata
from .alignment import checkpoint_table
from .checkpoint_sources import CheckpointSource, open_source
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
                frequency_matched: bool = True, shard: tuple[int, int] | None = None) -> pd.DataFrame | None:
    """Tidy ``(size, step, dataset, metric, value)`` of every checkpoint of ``source`` (see module doc).

    ``interference_batch_sizes``, ``all_parameters``: passed to
    :func:`gradtools.alignment.checkpoint_table` (DI at more batch sizes; appendix D.2's
    full-parameter alignment, for every dataset or the named ones). ``frequency_matched``: with
    ``"ioi"`` among the families and a source that knows its training token counts, the dataset
    ``ioi_rand_freq`` (:func:`gradtools.prompt_datasets.ioi_rand_freq`) is added, drawn from the
    counts of the source's first size (the sizes of a suite share one corpus). ``shard``: compute
    only that share of the checkpoints and return None (:func:`parallel_study_table`).

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
    if counts is not None:  # zero counts for ids the streams never hold, up to the tokenizer's size
        counts = torch.nn.functional.pad(counts, (0, max(0, pdata.vocab_size(tokenizer) - len(counts))))
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
                    **({"frequency_matched": settings_key(datasets["ioi_rand_freq"].targets.tolist())}
                       if counts is not None else {}))
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

    return run_jobs(list(by_job), compute, folder, key=key, progress=progress, shard=shard)


def open_spec(spec: dict) -> CheckpointSource:
    """The source a :func:`parallel_study_table` spec names: ``open_source(source, profile, sizes=,
    steps=)`` offline, renamed ``name`` (the name keys the cache)."""
    source = open_source(spec["source"], spec["profile"], sizes=spec["sizes"], steps=spec["steps"], download=False)
    return replace(source, name=spec["name"])


def source_spec(source: CheckpointSource, location: str | None, profile: str) -> dict:
    """A spec that reopens ``source`` (its sizes, each size's steps, its name) in another process:
    ``location`` is what :func:`gradtools.checkpoint_sources.open_source` took (None: the profile's suite,
    ``hf:...``, or a folder)."""
    return dict(source=location, profile=profile, sizes=list(source.sizes), name=source.name,
                steps={size: source.steps(size) for size in source.sizes})


def parallel_study_table(spec: dict, study: dict, workers: int = 2, progress: bool = True) -> pd.DataFrame:
    """:func:`study_table` of the source of ``spec`` (:func:`source_spec`) with keywords ``study``, its
    checkpoints shared round-robin between this process and ``workers - 1`` processes
    (``python -m gradtools.shared_gradients``), each on one thread and caching what it computes; the
    table is then read from the cache, identical to a one-process run."""
    source = open_spec(spec)
    if workers <= 1:
        return study_table(source, **study, progress=progress)
    folder = Path(study["cache_root"])
    folder.mkdir(parents=True, exist_ok=True)
    job_file = folder / f"parallel-{os.getpid()}.json"
    job_file.write_text(json.dumps({"spec": spec, "study": study}, default=str))
    logs = [folder / f"parallel-{os.getpid()}-{rank}.log" for rank in range(1, workers)]
    procs = []
    try:
        for rank, log in zip(range(1, workers), logs):
            with log.open("w") as err:  # the child keeps its own handle
                procs.append(subprocess.Popen([sys.executable, "-m", "gradtools.shared_gradients", str(job_file),
                                               str(rank), str(workers)], stdout=subprocess.DEVNULL, stderr=err))
        study_table(source, **study, progress=progress, shard=(0, workers))
        for proc, log in zip(procs, logs):
            if proc.wait() != 0:
                raise RuntimeError(f"a study worker failed (exit {proc.returncode}):\n{log.read_text()[-3000:]}")
    finally:  # on any failure (ours or a worker's) no worker outlives the call, and no file is left behind
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        for path in (job_file, *logs):
            path.unlink(missing_ok=True)
    return study_table(source, **study, progress=False)


def _worker(argv: list[str]) -> None:
    """``python -m gradtools.shared_gradients JOB.json RANK WORLD``: one share of a parallel study table."""
    torch.set_num_threads(1)
    job = json.loads(Path(argv[0]).read_text())
    study_table(open_spec(job["spec"]), **job["study"], progress=False, shard=(int(argv[1]), int(argv[2])))


def wide(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (size, step, dataset), one column per metric."""
    return table.pivot_table(index=["size", "step", "dataset"], columns="metric", values="value").reset_index()


__all__ = ["PAPER_FAMILIES", "family_datasets", "open_spec", "parallel_study_table", "settings_key", "source_spec",
           "study_table", "wide"]

if __name__ == "__main__":
    _worker(sys.argv[1:])
