"""Benchmark: the sharded Gram on 1 vs 2 processes (gloo, CPU), speedup printed.

Each process uses one thread, so 2 processes use the 2 cores a single process
would leave half idle. The same blocks are computed either way; the result is
checked equal to the single-process one.

    python benchmarks/scale_out.py            # n=128 examples of 16 tokens, blocks of 32
"""
from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

RESULTS = Path(__file__).resolve().parent / "results"


def problem(n: int, seq: int):
    from gradtools.lm import tiny_causal_lm

    model = tiny_causal_lm(1024, d_model=128, n_layers=4, context=seq, seed=0)
    ids = torch.randint(0, 1024, (n, seq), generator=torch.Generator().manual_seed(0))
    return model, {"input_ids": ids, "labels": ids}


def timed_gram(n, seq, block):
    from gradtools.distributed import rank_and_world, sharded_gram
    from gradtools.lm import sequence_losses

    model, batch = problem(n, seq)
    if rank_and_world()[1] > 1:
        dist.barrier()
    start = time.perf_counter()
    gram = sharded_gram(model, sequence_losses, batch, block_size=block, progress=False)
    return time.perf_counter() - start, gram


def worker(rank, world, init_file, n, seq, block, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(minutes=30))
    seconds, gram = timed_gram(n, seq, block)
    if rank == 0:
        torch.save((seconds, gram.dot), out)
    dist.destroy_process_group()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--seq", type=int, default=16)
    parser.add_argument("--block", type=int, default=32)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    single, ref = timed_gram(args.n, args.seq, args.block)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.pt"
        mp.spawn(worker, args=(2, str(Path(tmp) / "init"), args.n, args.seq, args.block, str(out)), nprocs=2)
        double, dot = torch.load(out)
    assert torch.allclose(dot, ref.dot, rtol=1e-5, atol=1e-6), "2-process Gram differs from 1-process"
    lines = [f"sharded Gram, 1M-parameter LM, n={args.n} x {args.seq} tokens, blocks of {args.block}, "
             f"1 thread per process",
             f"1 process:   {single:7.2f} s",
             f"2 processes: {double:7.2f} s",
             f"speedup:     {single / double:7.2f}x"]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale_out.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
