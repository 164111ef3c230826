"""Benchmark: the full-parameter Gram and the per-example SVD, side by side in one run.

Tiny GPT-NeoX models of about 1M and 10M parameters (benchmarks/gram.py's sizes, 1024-token
vocabulary, 16 tokens an example), n = 64 and 256:

* ``gram_all``: the (n x n) Gram over every parameter (embeddings, norms, unembedding included) by
  ``gradient_gram(layers="all")`` / a loop of per-example backward passes / ``torch.func``
  ``vmap(grad)`` over all parameters, then a matmul;
* ``svd``: the top-8 singular values and right singular vectors of the per-example gradient matrix of
  the non-embedding linear layers (study 4's table 3) by ``gradient_svd`` / the loop, then
  ``torch.linalg.svd`` / ``vmap(grad)``, then ``torch.linalg.svd``.

Wall time is the median of ``--repeats`` runs after a warm-up, all in this process (so no
peak-memory column: see benchmarks/gram.py for memory, measured per process). Ratios are to
gradtools' time in the same row group.

    python benchmarks/gram_all_svd.py                    # the grid (CPU: ~10 minutes)
    python benchmarks/gram_all_svd.py --sizes 1M --n 64  # one cell
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import pandas as pd
import torch
from torch.func import functional_call, grad, vmap

from gradtools import gradient_gram, gradient_svd, per_example_gradients
from gradtools.gram import default_layers
from gradtools.gram_all import all_parameters
from gradtools.lm import sequence_losses, tiny_causal_lm

SIZES = {"1M": dict(d_model=128, n_layers=4), "10M": dict(d_model=256, n_layers=12)}
VOCAB, K = 1024, 8
RESULTS = Path(__file__).resolve().parent / "results"


def vmap_gradients(model, batch, names: list[str]) -> torch.Tensor:
    """(n, P) per-example gradients of the parameters ``names`` by torch.func."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    chosen = {k: params[k] for k in names}

    def one_loss(theta, ids):
        full = {**params, **theta}
        return sequence_losses(lambda **kw: functional_call(model, full, (), kw),
                               {"input_ids": ids[None], "labels": ids[None]})[0]

    g = vmap(grad(one_loss), in_dims=(None, 0))(chosen, batch["input_ids"])
    return torch.cat([g[k].reshape(g[k].shape[0], -1) for k in names], dim=1)


def methods(model, batch):
    linear = [f"{n}.{p}" for n, m in default_layers(model).items() for p, _ in m.named_parameters(recurse=False)]
    every = [n for n, _ in all_parameters(model)]

    def top_k(P):
        _, S, Vh = torch.linalg.svd(P, full_matrices=False)
        return S[:K], Vh[:K]

    return {
        ("gram_all", "gradtools"): lambda: gradient_gram(model, sequence_losses, batch, layers="all").dot,
        ("gram_all", "loop"): lambda: (lambda P: P @ P.T)(per_example_gradients(model, sequence_losses, batch, "all")),
        ("gram_all", "vmap"): lambda: (lambda P: P @ P.T)(vmap_gradients(model, batch, every)),
        ("svd", "gradtools"): lambda: gradient_svd(model, sequence_losses, batch, K).values,
        ("svd", "loop"): lambda: top_k(per_example_gradients(model, sequence_losses, batch)),
        ("svd", "vmap"): lambda: top_k(vmap_gradients(model, batch, linear)),
    }


def timed(run, repeats: int) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--n", nargs="+", type=int, default=[64, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--tag", default="", help="suffix of the result files (a partial grid)")
    parser.add_argument("--mem-limit-gb", type=float, default=16.0,
                        help="address-space limit: a method needing more is reported out of memory (nan), "
                             "not killed with the whole run")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.mem_limit_gb:
        limit = int(args.mem_limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    rows = []
    for size in args.sizes:
        model = tiny_causal_lm(VOCAB, context=16, n_heads=4, **SIZES[size])
        for n in args.n:
            ids = torch.randint(0, VOCAB, (n, 16), generator=torch.Generator().manual_seed(0))
            batch = {"input_ids": ids, "labels": ids}
            for (task, method), run in methods(model, batch).items():
                try:
                    seconds = timed(run, args.repeats)
                except (MemoryError, RuntimeError) as err:  # e.g. vmap's n x P gradients at 10M, n = 256
                    if "memory" not in str(err).lower() and not isinstance(err, MemoryError):
                        raise
                    seconds = float("nan")
                rows.append(dict(task=task, size=size, params=sum(p.numel() for p in model.parameters()), n=n,
                                 method=method, time_s=round(seconds, 3)))
                print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    ours = table[table.method == "gradtools"].set_index(["task", "size", "n"]).time_s.rename("gradtools_s")
    table = table.join(ours, on=["task", "size", "n"])
    table["time_vs_gradtools"] = (table.time_s / table.gradtools_s).round(2)
    table = table.drop(columns="gradtools_s")
    RESULTS.mkdir(exist_ok=True)
    table.to_parquet(RESULTS / f"gram_all_svd{args.tag}.parquet", index=False)
    (RESULTS / f"gram_all_svd{args.tag}.md").write_text(
        f"# Full-parameter Gram and per-example SVD ({args.threads} threads, CPU)\n\n"
        f"`python benchmarks/gram_all_svd.py {' '.join(argv or sys.argv[1:])}` — median of {args.repeats} runs\n\n"
        + table.to_markdown(index=False) + "\n")
    print(table.to_markdown(index=False))


if __name__ == "__main__":
    main()
