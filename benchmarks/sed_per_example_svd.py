"""Benchmark: study 4's per-example SVD (table 3) by gradient_svd against the per-example path it replaced.

The gradient-SED paper's model (p = 97, d_model 128, 2 layers, 4 heads), its attention
parameters (qkv and out of both blocks, 132k), n = 512 training pairs (the notebook's
default and paper ``per_example_n``), the top 3 right singular vectors of the centred
per-example gradient matrix and the mean gradient, by

* ``gradient_svd``  ``gradtools.sed.per_example_svd``: the Gram, a dense eigh, 4 weighted backwards;
* ``vmap + svd``    ``per_example_attention_gradients`` (torch.func vmap(grad), the old path of
                    ``sed_study.per_example_table``) then ``per_example_svd_basis`` (an SVD through
                    the n x n Gram of the materialised matrix, float64).

Both at initialisation and after ``--train-steps`` of AdamW on the training pairs. Reports
time (median of ``--repeats``), the largest principal angle between the two 3-dimensional
subspaces (sin; 0 = the same subspace) and the relative difference of the mean gradients.
Writes ``benchmarks/results/sed_per_example_svd.{parquet,md}``.

    python benchmarks/sed_per_example_svd.py            # ~1 minute on 2 cores
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from gradtools import sed, sed_study
from gradtools.modular_arithmetic import ModelConfig, ModularTransformer, attention_parameter_names

RESULTS = Path(__file__).resolve().parent / "results"


def _median_time(fn, repeats: int):
    out = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2], out


def _train(model, x, y, steps: int) -> None:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1.0)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x)[:, 0], y).backward()
        opt.step()


def compare(model, names, x, y, repeats: int, state: str) -> list[dict]:
    t_new, (mean_new, top_new) = _median_time(lambda: sed.per_example_svd(model, names, x, y, 3), repeats)

    def old():
        return sed.per_example_svd_basis(sed.per_example_attention_gradients(model, names, x, y), 3)

    t_old, (mean_old, top_old) = _median_time(old, repeats)
    a, b = top_new.double(), top_old.double()
    q_a, q_b = torch.linalg.qr(a.T)[0], torch.linalg.qr(b.T)[0]
    sin_max = float(torch.linalg.svdvals(q_a - q_b @ (q_b.T @ q_a)).max())
    mean_diff = float((mean_new.double() - mean_old.double()).norm() / mean_old.double().norm())
    common = dict(state=state, n=len(x), params=sum(p.numel() for n, p in model.named_parameters() if n in names),
                  subspace_sin_max=sin_max, mean_rel_diff=mean_diff)
    return [dict(method="gradient_svd", time_s=t_new, **common), dict(method="vmap + svd", time_s=t_old, **common)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = ModularTransformer(ModelConfig())
    names = attention_parameter_names(model)
    x, y, _ = sed_study.fixed_batch("add", 97, 0.5, args.n, seed=1)  # as notebook 04
    y = y[:, 0]
    rows = compare(model, names, x, y, args.repeats, "init")
    _train(model, x, y, args.train_steps)
    rows += compare(model, names, x, y, args.repeats, f"after {args.train_steps} steps")
    df = pd.DataFrame(rows)
    base = df[df.method == "gradient_svd"].set_index("state").time_s
    df["time_vs_gradient_svd"] = df.time_s / df.state.map(base)
    out = RESULTS / "sed_per_example_svd"
    df.to_parquet(out.with_suffix(".parquet"), index=False)
    text = (f"threads: {torch.get_num_threads()}; `python benchmarks/sed_per_example_svd.py "
            f"{' '.join(argv or sys.argv[1:])}`\n\n" + df.to_markdown(index=False, floatfmt=".3g") + "\n")
    out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
