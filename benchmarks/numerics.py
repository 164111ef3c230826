"""What changes the last bits of a training step, and how far a training run carries them.

    .venv/bin/python benchmarks/numerics.py                       # the conditions table, ~1 minute
    .venv/bin/python benchmarks/numerics.py --losses OLD NEW      # where two training-loss logs part

Part 1 runs one forward+backward of a small GPT-NeoX (the suite's architecture, d64-L2)
in a fresh process per condition (thread count, torch's CPU kernel level, MKL's
reproducibility mode, another ``transformers`` on ``PYTHONPATH``) and reports the largest
relative difference of the loss and of the gradient against the reference condition,
in float32 and float64. Part 2 reads two ``suite_training_loss.parquet`` tables of the same
recipe and reports, per size, the first step whose loss differs and how the relative
difference grows. Results: ``results/numerics.md``.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CONDITIONS = {  # name: environment changes (the reference is the first)
    "reference (2 threads, CPU kernels chosen by torch)": {},
    "same again": {},
    "1 thread": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "THREADS": "1"},
    "torch kernels: DEFAULT instead of AVX2": {"ATEN_CPU_CAPABILITY": "default"},
    "pinned as the runner does (AVX2, oneDNN AVX2, MKL CBWR)": {"ATEN_CPU_CAPABILITY": "avx2",
                                                                "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"},
}
STEP = """
import os, sys, torch
torch.set_num_threads(int(os.environ.get("THREADS", "2")))
from gradtools.lm import tiny_causal_lm, sequence_losses
out = {}
for dtype in (torch.float32, torch.float64):
    torch.manual_seed(0)
    model = tiny_causal_lm(512, d_model=64, n_layers=2, n_heads=4, context=32, dtype=dtype)
    ids = torch.randint(1, 512, (64, 24), generator=torch.Generator().manual_seed(1))
    loss = sequence_losses(model, {"input_ids": ids, "labels": ids}).sum()
    loss.backward()
    out[str(dtype)] = (loss.detach(), torch.cat([p.grad.flatten() for p in model.parameters()]))
import transformers
out["meta"] = (transformers.__version__, torch.backends.cpu.get_cpu_capability())
torch.save(out, sys.argv[1])
"""


def run_condition(env: dict, path: Path) -> dict:
    """One forward+backward in a fresh process with ``env`` on top of this one's."""
    full = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA")}
    full.update(env)
    full["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), str(ROOT)]))
    subprocess.run([sys.executable, "-c", STEP, str(path)], env=full, check=True)
    return torch.load(path, weights_only=False)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def conditions_table(extra_transformers: list[str]) -> pd.DataFrame:
    """Loss and gradient differences of every condition against the first."""
    conditions = dict(CONDITIONS)
    for folder in extra_transformers:  # e.g. a folder made by `pip install --target DIR --no-deps transformers==4.57.6`
        conditions[f"transformers from {folder}"] = {"PYTHONPATH": folder}
    rows, reference = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, env) in enumerate(conditions.items()):
            result = run_condition(env, Path(tmp) / f"{i}.pt")
            reference = reference or result
            version, capability = result.pop("meta")
            for dtype, (loss, grad) in result.items():
                ref_loss, ref_grad = reference[dtype]
                rows.append(dict(condition=name, transformers=version, cpu_kernels=capability, dtype=dtype,
                                 loss_rel_diff=relative(loss, ref_loss), grad_max_rel_diff=relative(grad, ref_grad)))
    return pd.DataFrame(rows)


def divergence_table(old: Path, new: Path) -> pd.DataFrame:
    """Per size: first step whose training loss differs, and the relative difference at later steps."""
    a, b = pd.read_parquet(old), pd.read_parquet(new)
    rows = []
    for size in sorted(set(a["size"]) & set(b["size"])):
        x = a[a["size"] == size].set_index("step").loss
        y = b[b["size"] == size].set_index("step").loss
        steps = x.index.intersection(y.index)
        diff = ((x[steps] - y[steps]).abs() / x[steps].abs())
        first = diff[diff > 0].index.min()
        row = dict(size=size, steps_compared=len(steps), first_differing_step=first)
        for s in (100, 1000, 3000, 10000, int(steps.max())):
            if s in diff.index:
                row[f"rel_diff_at_{s}"] = float(diff[s])
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transformers", nargs="*", default=[], help="folders holding another transformers")
    parser.add_argument("--losses", nargs=2, type=Path, metavar=("OLD", "NEW"),
                        help="two suite_training_loss.parquet tables of the same recipe")
    args = parser.parse_args()
    parts = []
    table = conditions_table(args.transformers)
    parts.append("## One forward+backward of a GPT-NeoX (d64-L2, 64 x 24 tokens) per condition\n\n"
                 + table.to_markdown(index=False, floatfmt=".2e"))
    if args.losses:
        div = divergence_table(*args.losses)
        parts.append(f"## Two trainings of the same suite recipe: `{args.losses[0]}` vs `{args.losses[1]}`\n\n"
                     + div.to_markdown(index=False, floatfmt=".2e"))
    text = "\n\n".join(parts) + "\n"
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "numerics.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
