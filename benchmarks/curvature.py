"""Benchmark: gradtools' curvature kernels against the alternatives, side by side in one run.

On the addition language model of notebook 02 (a tiny GPT-NeoX, float32):

1. **Top-k Hessian eigenpairs** of the mean answer loss on a fixed training sample:
   ``gradtools.lanczos`` on ``gradtools.hessian_matvec`` vs ``curvlinops``'
   ``HessianLinearOperator`` + ``scipy.sparse.linalg.eigsh`` (ARPACK). Reported:
   the eigenvalues of both (they must agree), Hessian-vector products used and wall
   time, as ratios curvlinops / gradtools.
2. **POLCA terms of every validation token along one vector** (first and second
   directional derivatives): ``gradtools.polca.polca_terms`` (one forward-over-forward
   pass) vs a loop of per-token reverse-mode passes (a backward with ``create_graph``
   and a double backward per token). Reported: agreement and the speed-up (target >= 20x).

Both run under ``gradtools.curvature.CompositeOps`` where double backward is needed
(``scaled_dot_product_attention`` has none on CPU). Results go to
``benchmarks/results/curvature.{parquet,md}``.

    python benchmarks/curvature.py                 # ~2-4 minutes on 2 CPU cores
    python benchmarks/curvature.py --k 5 --tokens 400

curvlinops is a benchmark-only dependency; on a CPU-only machine install it without
its torchvision-pulling dependencies:
``pip install --no-deps curvlinops-for-pytorch backpack-for-pytorch einconv linear_operator einops opt-einsum jaxtyping mpmath``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from gradtools import addition, polca
from gradtools.curvature import CompositeOps, flatten, hessian_matvec, lanczos, unflatten
from gradtools.lm import tiny_causal_lm

RESULTS = Path(__file__).resolve().parent / "results"


class AnswerLogits(nn.Module):
    """The model's logits at the four answer positions, (n*4, vocab): curvlinops' ``model_func``."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        logits = self.model(input_ids=input_ids).logits
        return logits[:, addition.ANSWER_SLICE.start - 1: addition.ANSWER_SLICE.stop - 1].reshape(-1, logits.shape[-1])


def eigenpairs(model, sample, k, iters):
    params = {n: p.detach() for n, p in model.named_parameters()}
    dim = flatten(params).numel()
    loss = polca.functional_loss(model, addition.mean_answer_loss, sample)
    count = {"gradtools": 0, "curvlinops": 0}
    matvec = hessian_matvec(loss, params)

    def counted(x):
        count["gradtools"] += 1
        return matvec(x)
    start = time.perf_counter()
    values, _ = lanczos(counted, dim, k, max_iters=iters, tol=1e-6)
    t_gradtools = time.perf_counter() - start

    from curvlinops import HessianLinearOperator
    from scipy.sparse.linalg import LinearOperator, eigsh

    wrapped = AnswerLogits(model)
    targets = sample["input_ids"][:, addition.ANSWER_SLICE].reshape(-1)
    op = HessianLinearOperator(wrapped, nn.CrossEntropyLoss(), [p for p in model.parameters()],
                               [(sample["input_ids"], targets)], check_deterministic=False).to_scipy()

    def scipy_matvec(x):
        count["curvlinops"] += 1
        with CompositeOps():
            return op @ x
    start = time.perf_counter()
    ref_values = eigsh(LinearOperator(op.shape, matvec=scipy_matvec, dtype=np.float32), k=k, which="LA",
                       tol=1e-6, return_eigenvectors=False)
    t_curvlinops = time.perf_counter() - start
    ref_values = np.sort(ref_values)[::-1]
    return pd.DataFrame({
        "index": range(k), "gradtools_eigenvalue": values.numpy(), "curvlinops_eigenvalue": ref_values,
        "relative_difference": np.abs(values.numpy() - ref_values) / np.abs(ref_values),
        "gradtools_hvps": count["gradtools"], "curvlinops_hvps": count["curvlinops"],
        "gradtools_s": t_gradtools, "curvlinops_s": t_curvlinops,
        "hvp_ratio": count["curvlinops"] / count["gradtools"], "time_ratio": t_curvlinops / t_gradtools})


def polca_along_one_vector(model, validation, seed=0):
    params = {n: p.detach() for n, p in model.named_parameters()}
    per_token = polca.functional_loss(model, lambda m, b: addition.answer_token_losses(m, b).reshape(-1), validation)
    dim = flatten(params).numel()
    b = polca.random_orthonormal_basis(dim, 1, seed=seed)
    step = unflatten(flatten(params) + 1e-3 * torch.randn(dim, generator=torch.Generator().manual_seed(seed)), params)
    start = time.perf_counter()
    fwd = polca.polca_terms(per_token, params, step, b)
    t_forward = time.perf_counter() - start

    start = time.perf_counter()
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    vec = unflatten(b[:, 0], params)
    with CompositeOps():
        losses = per_token(leaves)
        first, second = torch.zeros(losses.shape[0]), torch.zeros(losses.shape[0])
        for i in range(losses.shape[0]):
            grads = torch.autograd.grad(losses[i], list(leaves.values()), create_graph=True, retain_graph=True)
            gb = sum((g * vec[k]).sum() for g, k in zip(grads, leaves))
            hb = torch.autograd.grad(gb, list(leaves.values()), retain_graph=True)
            first[i] = gb.detach()
            second[i] = sum((h * vec[k]).sum() for h, k in zip(hb, leaves)).detach()
    t_loop = time.perf_counter() - start
    return pd.DataFrame([{
        "tokens": losses.shape[0], "forward_mode_s": t_forward, "backward_loop_s": t_loop,
        "speedup": t_loop / t_forward,
        "first_rel_error": ((fwd.first[0] - first).abs().max() / first.abs().max()).item(),
        "second_rel_error": ((fwd.second[0] - second).abs().max() / second.abs().max()).item()}])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--d-model", type=int, default=48)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--k", type=int, default=3, help="eigenpairs")
    parser.add_argument("--iters", type=int, default=60, help="Lanczos iterations at most")
    parser.add_argument("--sample", type=int, default=128, help="training problems defining the Hessian")
    parser.add_argument("--tokens", type=int, default=400, help="validation answer tokens (4 per problem)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = tiny_causal_lm(addition.VOCAB_SIZE, d_model=args.d_model, n_layers=args.layers, n_heads=4, context=16)
    split = addition.split_problems(args.tokens // 4, args.sample)
    n_params = sum(p.numel() for p in model.parameters())
    eig = eigenpairs(model, addition.encode(*split["train_sample"]), args.k, args.iters)
    terms = polca_along_one_vector(model, addition.encode(*split["validation"]))
    RESULTS.mkdir(exist_ok=True)
    eig.assign(parameters=n_params).to_parquet(RESULTS / "curvature_eigenpairs.parquet", index=False)
    terms.assign(parameters=n_params).to_parquet(RESULTS / "curvature_polca_terms.parquet", index=False)
    text = (f"# Curvature benchmark\n\nGPT-NeoX d_model={args.d_model}, {args.layers} layers, {n_params} parameters, "
            f"float32, 1 CPU thread.\n\n## Top-{args.k} Hessian eigenpairs ({args.sample} training problems)\n\n"
            + eig.to_markdown(index=False, floatfmt=".4g")
            + f"\n\n## POLCA terms of {terms.tokens[0]} tokens along one vector\n\n"
            + terms.to_markdown(index=False, floatfmt=".4g") + "\n")
    (RESULTS / "curvature.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
