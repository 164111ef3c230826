"""Benchmark: does gradient_gram's cost model pick the faster contraction for each layer?

For one linear layer of shape d_in x d_out, n examples of S tokens (random inputs and
output gradients), time the two ways the square Gram can be contracted,

* ``ghost``        sum_{s,t} (X_i X_j^T)_{st} (G_i G_j^T)_{st}, on the blocks on and above the diagonal;
* ``materialise``  per-example gradients G_i^T X_i into a reused buffer, then one matmul;

and report which one ``gradtools.gram._use_ghost`` picks, and how much slower the pick is
than the faster of the two (1.00: the right pick). Median of ``--repeats`` after a warm-up.
Writes ``benchmarks/results/gram_cost_model.{parquet,md}``.

    python benchmarks/gram_cost_model.py            # the grid below, ~2 minutes on 2 cores
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from gradtools import gram

RESULTS = Path(__file__).resolve().parent / "results"
SHAPES = [(128, 384), (512, 128), (256, 768), (256, 1024), (1024, 256)]


def _median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def measure(n: int, s: int, d_in: int, d_out: int, repeats: int) -> dict:
    x, g = torch.randn(n, s, d_in), torch.randn(n, s, d_out)
    scratch = gram._Scratch()

    def ghost():
        return gram._symmetric(n, lambda r, c: gram._ghost_cross(x[r], g[r], x[c], g[c]), x)

    def materialise():
        p = gram._materialise(x, g, scratch)
        return p @ p.T

    times = {"ghost": _median_time(ghost, repeats), "materialise": _median_time(materialise, repeats)}
    pick = "ghost" if gram._use_ghost(n, n, s, s, d_in, d_out, symmetric=True) else "materialise"
    return dict(n=n, seq=s, d_in=d_in, d_out=d_out, ghost_s=times["ghost"],
                materialise_s=times["materialise"], pick=pick,
                pick_vs_best=times[pick] / min(times.values()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", nargs="+", type=int, default=[32, 64, 256])
    parser.add_argument("--seq", nargs="+", type=int, default=[16, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS / "gram_cost_model")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from tqdm import tqdm

    grid = list(itertools.product(args.n, args.seq, SHAPES))
    rows = [measure(n, s, d_in, d_out, args.repeats) for n, s, (d_in, d_out) in tqdm(grid, desc="cost model")]
    df = pd.DataFrame(rows)
    df.to_parquet(args.out.with_suffix(".parquet"), index=False)
    worst = df.pick_vs_best.max()
    header = (f"threads: {torch.get_num_threads()}; the cost model's pick is at most {worst:.2f}x the faster "
              f"contraction, {(df.pick_vs_best <= 1.05).mean():.0%} of cells within 5%\n\n")
    table = df.to_markdown(index=False, floatfmt=".3g")
    args.out.with_suffix(".md").write_text(header + table + "\n")
    print(header + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
