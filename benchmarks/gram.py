"""Benchmark: gradtools.gradient_gram against the alternatives, side by side in one run.

For tiny GPT-NeoX language models of about 1M and 10M parameters and n = 64 and
256 examples of 16 tokens, the (n x n) Gram of per-example gradients of all
linear layers but the unembedding, by

* ``floor``     one plain batched forward + backward of the same batch (no Gram at all);
* ``gradtools`` gradtools.gradient_gram (contraction inside the backward);
* ``loop``      a forward and a backward pass per example, then a matmul;
* ``vmap``      torch.func vmap(grad) per-example gradients, then a matmul;
* ``opacus``    Opacus GradSampleModule per-example gradients, then a matmul.

Each measurement runs in its own process, so peak memory (peak RSS on CPU,
``max_memory_allocated`` on CUDA) is that method's alone, above the model and
batch. Wall time is the median of ``--repeats`` runs after one warm-up run.
The table goes to ``benchmarks/results/gram.{parquet,md}`` with ratios to the
floor, to gradtools and to the arithmetic bound (``time_vs_bound``): the Gram of n
gradients over the P_G chosen parameters costs at least n^2 P_G / 2 multiply-adds
(it is symmetric), the floor about 3 n S P_L (forward, and backward to inputs and
weights, of the P_L parameters in linear layers), so at the floor's rate no method can
take less than ``floor * (1 + n P_G / (6 S P_L))``.

    python benchmarks/gram.py                       # the full grid (CPU: ~10 minutes)
    python benchmarks/gram.py --sizes 1M --n 64     # one cell
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

SIZES = {  # d_model, layers: about 1M and 10M parameters with a 1024-token vocabulary
    "1M": dict(d_model=128, n_layers=4),
    "10M": dict(d_model=256, n_layers=12),
}
METHODS = ["floor", "gradtools", "loop", "vmap", "opacus"]
VOCAB = 1024
RESULTS = Path(__file__).resolve().parent / "results"


# ------------------------------------------------------------------ worker

def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _setup(size: str, n: int, seq: int, device: str):
    import torch

    from gradtools.gram import default_layers
    from gradtools.lm import tiny_causal_lm

    model = tiny_causal_lm(VOCAB, context=seq, n_heads=4, **SIZES[size]).to(device)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, VOCAB, (n, seq), generator=gen).to(device)
    return model, {"input_ids": ids, "labels": ids}, default_layers(model)


def _method(name: str, model, batch, layers):
    import torch
    from torch.func import functional_call, grad, vmap

    from gradtools import gradient_gram, per_example_gradients
    from gradtools.lm import sequence_losses

    if name == "floor":
        def run():
            model.zero_grad(set_to_none=True)
            sequence_losses(model, batch).sum().backward()
        return run
    if name == "gradtools":
        return lambda: gradient_gram(model, sequence_losses, batch).dot
    if name == "loop":
        def run():
            p = per_example_gradients(model, sequence_losses, batch)
            return p @ p.T
        return run
    names = [f"{layer}.{p}" for layer, m in layers.items() for p, _ in m.named_parameters(recurse=False)]
    if name == "vmap":
        params = {k: v.detach() for k, v in model.named_parameters()}
        chosen = {k: params[k] for k in names}

        def one_loss(theta, ids):
            batch1 = {"input_ids": ids[None], "labels": ids[None]}
            full = {**params, **theta}
            return sequence_losses(lambda **kw: functional_call(model, full, (), kw), batch1)[0]

        per_example = vmap(grad(one_loss), in_dims=(None, 0))

        def run():
            g = per_example(chosen, batch["input_ids"])
            p = torch.cat([g[k].reshape(g[k].shape[0], -1) for k in names], dim=1)
            return p @ p.T
        return run
    if name == "opacus":
        from opacus import GradSampleModule

        for k, p in model.named_parameters():
            p.requires_grad_(k in names)
        model.train()  # Opacus records activations only in training mode (no dropout here)
        wrapped = GradSampleModule(model, loss_reduction="sum", batch_first=True)
        chosen = [p for k, p in model.named_parameters() if k in names]

        def run():
            wrapped.zero_grad(set_to_none=True)
            for p in chosen:
                p.grad_sample = None
            sequence_losses(wrapped, batch).sum().backward()
            p = torch.cat([q.grad_sample.reshape(q.grad_sample.shape[0], -1) for q in chosen], dim=1)
            return p @ p.T
        return run
    raise ValueError(f"unknown method {name!r}; choose from {METHODS}")


def worker(size: str, n: int, seq: int, method: str, repeats: int, device: str, mem_limit_gb: float) -> dict:
    import torch

    if device == "cpu" and mem_limit_gb:
        limit = int(mem_limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    model, batch, layers = _setup(size, n, seq, device)
    params = sum(p.numel() for p in model.parameters())
    gram_params = sum(p.numel() for m in layers.values() for p in m.parameters(recurse=False))
    linear_params = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    run = _method(method, model, batch, layers)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    base = torch.cuda.memory_allocated() if device == "cuda" else _rss_mb()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    try:
        run()  # warm-up, and the peak-memory measurement
        sync()
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if device == "cuda" else _peak_rss_mb() - base
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            sync()
            times.append(time.perf_counter() - start)
        times.sort()
        return dict(params=params, gram_params=gram_params, linear_params=linear_params,
                    time_s=times[len(times) // 2], peak_mb=max(peak, 0.0), status="ok")
    except (MemoryError, RuntimeError) as err:
        if "memory" not in str(err).lower() and not isinstance(err, MemoryError):
            raise
        return dict(params=params, gram_params=gram_params, linear_params=linear_params,
                    time_s=float("nan"), peak_mb=float("nan"),
                    status=f"out of memory (limit {mem_limit_gb:g} GB)")


# ------------------------------------------------------------------ driver

def measure(size, n, seq, method, repeats, device, mem_limit_gb, threads=None) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--sizes", size, "--n", str(n), "--seq", str(seq),
           "--methods", method, "--repeats", str(repeats), "--device", device,
           "--mem-limit-gb", str(mem_limit_gb)] + (["--threads", str(threads)] if threads else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    row = dict(size=size, n=n, seq=seq, method=method, device=device)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["killed"]
        return {**row, "params": None, "time_s": float("nan"), "peak_mb": float("nan"),
                "status": f"failed: {tail[0][:120]}"}
    return {**row, **json.loads(proc.stdout.strip().splitlines()[-1])}


def ratios(df):
    import pandas as pd

    key = ["size", "n"]
    floor = df[df.method == "floor"].set_index(key)["time_s"].rename("floor_s")
    ours = df[df.method == "gradtools"].set_index(key)[["time_s", "peak_mb"]]
    ours.columns = ["gradtools_s", "gradtools_mb"]
    out = df.join(floor, on=key).join(ours, on=key)
    out["time_vs_floor"] = out.time_s / out.floor_s
    bound = 1 + out.n * out.gram_params / (6 * out.seq * out.linear_params)
    out["bound_vs_floor"] = bound
    out["time_vs_bound"] = out.time_vs_floor / bound
    out["time_vs_gradtools"] = out.time_s / out.gradtools_s
    out["memory_vs_gradtools"] = out.peak_mb / out.gradtools_mb
    return out.drop(columns=["floor_s", "gradtools_s", "gradtools_mb"]).pipe(pd.DataFrame)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--n", nargs="+", type=int, default=[64, 256])
    parser.add_argument("--seq", type=int, default=16)
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if _cuda() else "cpu")
    parser.add_argument("--mem-limit-gb", type=float, default=12.0,
                        help="CPU: a method that needs more address space than this is reported as out of memory")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per measurement (default: torch's)")
    parser.add_argument("--out", type=Path, default=RESULTS / "gram")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(worker(args.sizes[0], args.n[0], args.seq, args.methods[0], args.repeats,
                                args.device, args.mem_limit_gb)))
        return 0

    import pandas as pd
    from tqdm import tqdm

    grid = [(s, n, m) for s in args.sizes for n in args.n for m in args.methods]
    rows = []
    for size, n, method in tqdm(grid, desc="gram benchmark"):
        rows.append(measure(size, n, args.seq, method, args.repeats, args.device, args.mem_limit_gb,
                            args.threads))
        tqdm.write(f"{size:>4} n={n:<4} {method:<10} {rows[-1]['time_s']:8.3f} s "
                   f"{rows[-1]['peak_mb']:9.1f} MB  {rows[-1]['status']}")
    df = ratios(pd.DataFrame(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(args.out.with_suffix(".parquet"), index=False)
    cols = ["size", "params", "n", "method", "time_s", "peak_mb", "time_vs_floor", "time_vs_bound",
            "time_vs_gradtools", "memory_vs_gradtools", "status"]
    table = df[cols].to_markdown(index=False, floatfmt=".3g")
    header = f"device: {args.device}, threads: {_threads()}, seq: {args.seq}\n\n"
    args.out.with_suffix(".md").write_text(header + table + "\n")
    print(header + table)
    return 0


def _cuda() -> bool:
    import torch
    return torch.cuda.is_available()


def _threads() -> int:
    import torch
    return torch.get_num_threads()


if __name__ == "__main__":
    sys.exit(main())
