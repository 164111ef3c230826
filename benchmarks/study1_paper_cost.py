"""Cost of study 1's paper profile on the real suites: time and peak memory of one checkpoint.

One checkpoint of each real suite's smallest model, as a local stand-in (the real
configuration and tokenizer, random weights: :mod:`gradtools.hub_standins`), with the paper
profile's settings (notebook 01): every dataset of the three families at the paper's sizes
(IOI 1000, GT 1000, OML 408 prompts less the events the tokenizer splits, and their
controls), the cross alignments, Gram in blocks of 256. Destructive interference needs the
training data and is not part of a hub checkpoint's cost. The checkpoint's time is the sum
of its parts (see ``measure``): a whole ``checkpoint_table`` run took over an hour on this
2-core machine, so each kind of Gram is measured once and counted as often as it occurs.

Peak memory is the process's peak resident set (CPU) or ``max_memory_allocated`` (CUDA),
above the model and data loaded before the measurement.

The estimate for the largest model (472M) on one GPU scales the measured time by the ratio of
the models' forward-backward FLOPs per token (6 x parameters used per token, the
unembedding included), at the FLOP rate this run achieved divided into a stated GPU rate;
see ``estimate`` below and benchmarks/results/study1_paper_cost.md.

    python benchmarks/study1_paper_cost.py                 # both suites, the paper's n
    python benchmarks/study1_paper_cost.py --n 100         # a quicker look
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

RESULTS = Path(__file__).resolve().parent / "results"
PAPER_N = {"ioi": 1000, "gt": 1000, "oml": None}  # OML: all 34 x 12 = 408 prompts
SUITES = {"zsl": "hf:mirandrom/zsl-checkpoints", "pythia": "hf:EleutherAI/pythia-14m"}
GPU_FP32_FLOPS = 50e12  # a sustained fp32 rate for one H100/H200-class GPU (dense, no TF32): an assumption


def params_per_token(size: str) -> int:
    """Weights a token's forward pass multiplies by in the zsl model ``size`` (non-embedding + unembedding)."""
    from gradtools.olmo_checkpoints import ZSL_MODEL, ZSL_SIZES
    d, _, layers = ZSL_SIZES[size]
    return layers * (3 * d * d + d * d + d * d + d * d // 2) + d * ZSL_MODEL["embedding_size"]


FAMILIES = {"ioi": ("ioi", "ioi_copy"), "gt": ("gt", "gt_less"), "oml": ("oml", "oml_copy")}


def _timed(fn, device: str) -> float:
    t0 = time.time()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.time() - t0


def measure(source: str, cache: Path, n: dict, block_size: int, device: str) -> dict:
    """One checkpoint's cost, from its parts: the loss metrics of every dataset (measured), and per
    family one self Gram (task) and one cross Gram (task x a control), each measured once and
    counted as often as notebook 01 computes it (4 datasets / 3 cross pairs for IOI and GT, 3 / 2
    for OML). Name clustering and the GT probability difference are negligible (one forward)."""
    from gradtools.alignment import loss_metrics, pairwise_cosines
    from gradtools.checkpoint_sources import open_source
    from gradtools.shared_gradients import family_datasets

    src = open_source(source, cache_dir=cache, max_per_size=1)
    checkpoint = src.checkpoints[-1]
    t0 = time.time()
    model = checkpoint.load().to(device)
    load_s = time.time() - t0
    datasets, cross = family_datasets(list(FAMILIES), src.tokenizer, n)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    parts = {"losses": _timed(lambda: [loss_metrics(model, ds) for ds in datasets.values()], device)}
    total = parts["losses"]
    for family, (task, control) in FAMILIES.items():
        members = [d for d in datasets if d.startswith(family)]
        pairs = [c for c in cross if c[0] == task]
        parts[f"{task} gram"] = _timed(lambda: pairwise_cosines(model, datasets[task], block_size=block_size), device)
        parts[f"{task} x {control}"] = _timed(lambda: pairwise_cosines(model, datasets[task], datasets[control],
                                                                        block_size=block_size), device)
        total += len(members) * parts[f"{task} gram"] + len(pairs) * parts[f"{task} x {control}"]
        print(f"{source} {family}: {parts[f'{task} gram']:.0f} s a Gram, {parts[f'{task} x {control}']:.0f} s a "
              f"cross ({len(members)} and {len(pairs)} of them a checkpoint)", flush=True)
    peak = (torch.cuda.max_memory_allocated() if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return dict(source=source, size=checkpoint.size, device=device, threads=torch.get_num_threads(),
                prompts="/".join(str(len(datasets[f])) for f in FAMILIES), datasets=len(datasets), cross=len(cross),
                parameters=sum(p.numel() for p in model.parameters()), load_s=round(load_s, 2),
                seconds=round(total), minutes=round(total / 60, 1),
                **{f"{k}_s": round(v) for k, v in parts.items()},
                peak_memory_gib=round(peak / 2**30, 2), rss_before_gib=round(rss0 / 2**20, 2))


def matmul_flops(size: int = 2048, repeats: int = 5) -> float:
    """This machine's fp32 matmul rate (FLOP/s) at the run's thread count: the yardstick of the estimate."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    t0 = time.time()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.time() - t0)


def estimate(zsl_row: dict, cpu_flops: float) -> dict:
    """The 472M model on one GPU, from the measured 14M checkpoint: the work grows with the FLOPs per
    token (same prompts, same passes), and runs at the GPU's rate instead of this CPU's matmul rate
    (the same share of peak assumed on both). Ignores what a GPU runs less well (small kernels)."""
    ratio = params_per_token("472M") / params_per_token("14M")
    return dict(flop_ratio_472M_over_14M=round(ratio, 1), cpu_matmul_flops=f"{cpu_flops:.2e}",
                gpu_flops_assumed=f"{GPU_FP32_FLOPS:.0e}",
                seconds_472M_gpu=round(zsl_row["seconds"] * ratio * cpu_flops / GPU_FP32_FLOPS, 1))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=None, help="prompts per family (default: the paper's)")
    parser.add_argument("--block-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--suites", nargs="+", choices=list(SUITES), default=list(SUITES))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ["HF_HUB_OFFLINE"] = "1"
    from gradtools import hub_standins as hs

    n = PAPER_N if args.n is None else {"ioi": args.n, "gt": args.n, "oml": args.n}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        hs.write_zsl_standin(cache, ["OLMo-14M-step262144"])
        hs.write_pythia_standin(cache, ["step143000"])
        for suite in args.suites:
            rows.append(measure(SUITES[suite], cache, n, args.block_size, device))
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    guess = estimate(rows[0], matmul_flops()) if device == "cpu" and args.suites[0] == "zsl" else {}
    RESULTS.mkdir(exist_ok=True)
    text = ["# Study 1, paper profile: one checkpoint's cost", "",
            f"`python benchmarks/study1_paper_cost.py {' '.join(argv or sys.argv[1:])}` "
            f"({device}, {args.threads} threads; stand-ins: real configuration and tokenizer, random weights)", "",
            table.to_markdown(index=False), "",
            ("Estimate for OLMo-472M on one GPU (per checkpoint, same settings): "
             + ", ".join(f"{k} = {v}" for k, v in guess.items())) if guess else "", ""]
    suffix = "" if args.n is None else f"_n{args.n}"
    (RESULTS / f"study1_paper_cost{suffix}.md").write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
