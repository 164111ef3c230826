"""Scale-out: per-checkpoint jobs and Gram blocks sharded over ``torch.distributed`` ranks.

No scheduler of our own: ``torchrun`` (and SLURM through it) starts the
processes; this module only splits the work, caches each finished job, and
gathers the results on rank 0 into the same table or matrix the
single-process path produces.

* :func:`run_jobs` - each rank computes its share of a list of jobs (e.g.
  ``(checkpoint, dataset)`` pairs, or POLCA intervals), each job's tidy table
  cached atomically, so a restarted run skips finished jobs; rank 0 returns
  all tables concatenated in job order.
* :func:`sharded_gram` - the Gram of :func:`gradtools.gradient_gram` computed as
  blocks ``((a1,a2),(b1,b2))`` spread over the ranks and assembled on rank 0.

With no process group initialised, both run everything in the calling process.
Backends: NCCL on GPUs, gloo on CPU (:func:`init_from_env` picks).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Hashable, Sequence

import pandas as pd
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from .cache import save_table
from .gram import (GradientGram, LossFn, _ranges, batch_size, gram_block, resolve_layers, slice_batch,
                   squared_norms)


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (0, 1 without a process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_env(backend: str | None = None) -> tuple[int, int]:
    """Join the process group that ``torchrun`` describes in the environment (if any).

    Picks NCCL when CUDA is available (and binds this rank to ``LOCAL_RANK``'s
    GPU), gloo otherwise. Without ``torchrun``'s variables it does nothing.
    """
    if "RANK" in os.environ and not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend or ("nccl" if cuda else "gloo"))
    return rank_and_world()


def my_share(jobs: Sequence, rank: int, world: int) -> list:
    """Round-robin shard: the jobs this rank computes."""
    return list(jobs[rank::world])


def _gather(obj, rank: int, world: int) -> list | None:
    """``obj`` of every rank, in rank order, on rank 0 (None elsewhere)."""
    if world == 1:
        return [obj]
    out = [None] * world if rank == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def run_jobs(jobs: Sequence[Hashable], compute: Callable[[Hashable], pd.DataFrame], cache_dir: str | Path,
             key: Callable[[Hashable], str] = str, progress: bool = True,
             shard: tuple[int, int] | None = None) -> pd.DataFrame | None:
    """Compute one tidy table per job, sharded over the ranks; rank 0 gets them concatenated.

    Args:
        jobs: the same list on every rank (e.g. ``[(step, dataset), ...]``).
        compute: ``compute(job)`` -> that job's table.
        cache_dir: a folder all ranks see; job ``j`` is cached as ``<key(j)>.parquet``
            and not recomputed while that file exists.
        key: a file-name-safe name of a job.
        shard: ``(rank, world)`` without a process group (processes started by
            :func:`gradtools.shared_gradients.parallel_study_table`): compute only this share,
            cache it and return None; a later call without ``shard`` gathers the cached tables.

    Returns:
        on rank 0 the concatenation of all jobs' tables in the order of ``jobs``
        (identical to a single-process run); None on the other ranks.
    """
    cache_dir = Path(cache_dir)
    rank, world = shard if shard is not None else rank_and_world()
    names = [key(job) for job in jobs]
    if len(set(names)) != len(names):
        raise ValueError("`key` gives two jobs the same name; their caches would collide")
    mine = my_share(list(zip(jobs, names)), rank, world)
    for job, name in tqdm(mine, desc=f"jobs (rank {rank}/{world})", disable=not progress):
        path = cache_dir / f"{name}.parquet"
        if not path.exists():
            save_table(compute(job), path)
    if shard is not None:
        return None
    if world > 1:
        dist.barrier()
    if rank != 0:
        return None
    return pd.concat([pd.read_parquet(cache_dir / f"{name}.parquet") for name in names], ignore_index=True)


def gram_blocks(n: int, block_size: int, m: int | None = None) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """The blocks ``((a1,a2),(b1,b2))`` to compute: the upper triangle of a square Gram, or all of a cross matrix."""
    rows = _ranges(n, block_size)
    if m is None:
        return [(r, c) for i, r in enumerate(rows) for c in rows[i:]]
    return [(r, c) for r in rows for c in _ranges(m, block_size)]


def sharded_gram(model: torch.nn.Module, loss_fn: LossFn, batch, *, block_size: int, layers=None,
                 other=None, progress: bool = True) -> GradientGram | None:
    """:func:`gradtools.gradient_gram` with its blocks spread over the ranks; the result on rank 0.

    Every rank holds the model and the whole batch; each computes
    ``gram_block`` for its share of the blocks (and the squared norms of its
    share of the chunks), and rank 0 assembles them. Returns None on other ranks.
    """
    rank, world = rank_and_world()
    chosen = resolve_layers(model, layers)
    n = batch_size(batch)
    m = None if other is None else batch_size(other)
    blocks = gram_blocks(n, block_size, m)
    norms = [] if other is None else (  # a square Gram's norms are its diagonal
        [("batch", r) for r in _ranges(n, block_size)] + [("other", c) for c in _ranges(m, block_size)])
    done_blocks = [(r, c, gram_block(model, loss_fn, batch, r, c, layers=list(chosen), other=other))
                   for r, c in tqdm(my_share(blocks, rank, world), desc=f"gram blocks (rank {rank})",
                                    disable=not progress)]
    done_norms = [(which, r, squared_norms(model, loss_fn, slice_batch(batch if which == "batch" else other, *r),
                                           layers=list(chosen)))
                  for which, r in my_share(norms, rank, world)]
    gathered = _gather(([(r, c, d.cpu()) for r, c, d in done_blocks],
                        [(w, r, s.cpu()) for w, r, s in done_norms]), rank, world)
    if rank != 0:
        return None
    return _assemble(gathered, n, m)


def _assemble(gathered, n: int, m: int | None) -> GradientGram:
    first = next(block for blocks, _ in gathered for *_, block in blocks)
    dot = first.new_zeros(n, n if m is None else m)
    sqnorm = first.new_zeros(n)
    other_sqnorm = None if m is None else first.new_zeros(m)
    for blocks, norms in gathered:
        for (a1, a2), (b1, b2), block in blocks:
            dot[a1:a2, b1:b2] = block
            if m is None:
                dot[b1:b2, a1:a2] = block.T
        for which, (a1, a2), sq in norms:
            (sqnorm if which == "batch" else other_sqnorm)[a1:a2] = sq
    if m is None:
        sqnorm = torch.diagonal(dot).clone()
    return GradientGram(dot=dot, sqnorm=sqnorm, other_sqnorm=other_sqnorm)


def main(argv: list[str] | None = None) -> int:
    """``torchrun ... -m gradtools.distributed gram CHECKPOINT BATCH OUT``: one sharded Gram.

    CHECKPOINT: a folder or hub name for :func:`gradtools.lm.load_causal_lm`;
    BATCH: a ``torch.save``-d dict with ``input_ids`` and ``labels`` (n, S);
    OUT: where rank 0 saves the :class:`GradientGram`.
    """
    import argparse

    from .cache import save_torch
    from .lm import load_causal_lm, sequence_losses

    parser = argparse.ArgumentParser(prog="python -m gradtools.distributed", description=main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gram = sub.add_parser("gram", help="the Gram of per-example gradients of one checkpoint on one batch")
    gram.add_argument("checkpoint")
    gram.add_argument("batch", type=Path)
    gram.add_argument("out", type=Path)
    gram.add_argument("--revision")
    gram.add_argument("--block-size", type=int, default=64)
    args = parser.parse_args(argv)
    if not args.batch.exists():
        parser.error(f"no batch file at {args.batch}: torch.save a dict with input_ids and labels there")
    rank, world = init_from_env()
    device = f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"
    model = load_causal_lm(args.checkpoint, revision=args.revision).to(device)
    batch = {k: v.to(device) for k, v in torch.load(args.batch).items()}
    result = sharded_gram(model, sequence_losses, batch, block_size=args.block_size)
    if rank == 0:
        save_torch(result, args.out)
        print(f"{world} process(es): Gram of {result.dot.shape[0]} examples -> {args.out}")
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
