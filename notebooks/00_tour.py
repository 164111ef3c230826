# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 — A tour of the gradtools kernels
#
# This notebook shows the three kernels every study builds on, on a tiny GPT-NeoX
# language model trained for a few steps on a toy task:
#
# 1. **`gradtools.gradient_gram`** — dot products between per-example gradients
#    (shared-gradient-discovery, appendix D.2), computed inside the backward pass
#    without materialising per-example gradients where a cheaper contraction exists;
# 2. **`gradtools.hvp`** and **`gradtools.lanczos`** — Hessian-vector products and the
#    top Hessian eigenvectors (POLCA's algorithm 1, with deflation);
# 3. **`gradtools.directional_derivatives`** — each example's first and second
#    directional derivative along a direction, by forward-mode AD (the two factors of
#    a POLCA term).
#
# Each kernel is checked here against a brute-force computation, as the test suite does
# in float64. Run it with another scale by setting the `profile` parameter
# (`smoke`, `default`, `paper`).

# %% tags=["parameters"]
profile = "default"  # smoke | default | paper

# %%
import matplotlib.pyplot as plt
from IPython.display import Markdown, display
import pandas as pd
import seaborn as sns
import torch
from torch.func import functional_call

import gradtools
from gradtools import cache, paths, profiles
from gradtools.figures import save_figure
from gradtools.lm import sequence_losses, tiny_causal_lm

cfg = profiles.select(profile, {
    "smoke":   dict(d_model=16, n_layers=1, n_examples=12, seq=12, train_steps=30, lanczos_iters=20, dtype="float64"),
    "default": dict(d_model=64, n_layers=2, n_examples=64, seq=24, train_steps=300, lanczos_iters=60, dtype="float64"),
    "paper":   dict(d_model=256, n_layers=4, n_examples=256, seq=64, train_steps=2000, lanczos_iters=150, dtype="float32"),
})
dtype = getattr(torch, cfg.dtype)
device = "cuda" if torch.cuda.is_available() else "cpu"
DATA = paths.data_dir(profile)
cfg

# %% [markdown]
# ## A toy task with two kinds of example
#
# Sequences over a vocabulary of 32 tokens. *Repeat* examples are a random half-sequence
# shown twice, so the second half is predictable by copying; *noise* examples are
# uniformly random, so nothing is learnable. The loss of an example is the summed
# next-token loss over its second half. The model trains on repeat examples only.
# If gradients of examples that share a solution align while the solution forms
# (study 1's claim), repeat examples should align around the drop of their loss,
# and noise examples, which share nothing learnable, should not.

# %%
VOCAB = 32
generator = torch.Generator().manual_seed(0)

def make_batch(n, kind):
    half = cfg.seq // 2
    first = torch.randint(1, VOCAB, (n, half), generator=generator)
    second = first if kind == "repeat" else torch.randint(1, VOCAB, (n, half), generator=generator)
    ids = torch.cat([first, second], dim=1)
    labels = ids.clone()
    labels[:, :half + 1] = -100  # loss only where the copy is predictable
    return {"input_ids": ids.to(device), "labels": labels.to(device)}

model = tiny_causal_lm(VOCAB, d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=4,
                       context=cfg.seq, dtype=dtype).to(device)
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
probe = {"repeat": make_batch(cfg.n_examples, "repeat"), "noise": make_batch(cfg.n_examples, "noise")}
checkpoints = sorted({0, *torch.linspace(0, cfg.train_steps, 13).round().int().tolist()})


# %% [markdown]
# ## 1. The gradient Gram across training
#
# `gradient_gram(model, loss_fn, batch)` returns the n x n dot products of per-example
# gradients over all linear layers except embeddings and the unembedding; with
# `other=` the n x m cross matrix; `.cosine()` gives cosine similarities. At each of a
# few checkpoints we record the mean loss of repeat and noise examples and the mean
# and spread of their pairwise gradient cosines (i != j): the quantities study 1
# tracks for IOI and its controls.

# %%
def alignment_row(step, name, batch):
    with torch.no_grad():
        loss = sequence_losses(model, batch).mean().item()
    cos = gradtools.gradient_gram(model, sequence_losses, batch).offdiagonal_cosines()
    return dict(step=step, dataset=name, loss=loss, mean_cosine=cos.mean().item(), std_cosine=cos.std().item())

rows, states = [], {}
for step in range(cfg.train_steps + 1):
    if step in checkpoints:
        model.eval()
        rows += [alignment_row(step, name, batch) for name, batch in probe.items()]
        states[step] = {k: v.clone() for k, v in model.state_dict().items()}
        model.train()
    if step == cfg.train_steps:
        break
    loss = sequence_losses(model, make_batch(32, "repeat")).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
model.eval()
alignment = pd.DataFrame(rows)
cache.save_table(alignment, DATA / "tour_gradient_alignment_over_training.parquet")
alignment.pivot(index="step", columns="dataset", values=["loss", "mean_cosine"]).round(3)

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
sns.lineplot(alignment, x="step", y="loss", hue="dataset", marker="o", ax=axes[0])
axes[0].set_ylabel("mean example loss (nats)")
sns.lineplot(alignment, x="step", y="mean_cosine", hue="dataset", marker="o", ax=axes[1])
axes[1].axhline(0, color="grey", lw=0.8)
axes[1].set_ylabel("mean pairwise gradient cosine")
fig.suptitle("repeat examples (copying is learnable) vs noise examples")
fig.tight_layout()
save_figure(fig, "tour_gradient_alignment_over_training", profile, dpi=120)

# %% [markdown]
# The Gram matrix is exact: the same dot products from per-example gradients
# computed by a loop of backward passes agree to rounding error. Below, the cosine
# matrices at the checkpoint where repeat examples were most aligned, with the
# cross block computed in blocks of half the examples.

# %%
peak = int(alignment[alignment.dataset == "repeat"].sort_values("mean_cosine").step.iloc[-1])
model.load_state_dict(states[peak])
few = {k: v[:6] for k, v in probe["repeat"].items()}
per_example = gradtools.per_example_gradients(model, sequence_losses, few)
loop = per_example @ per_example.T
kernel = gradtools.gradient_gram(model, sequence_losses, few).dot
print(f"step {peak}: max relative difference kernel vs loop:", ((kernel - loop).abs().max() / loop.abs().max()).item())

grams = {"repeat x repeat": gradtools.gradient_gram(model, sequence_losses, probe["repeat"]),
         "noise x noise": gradtools.gradient_gram(model, sequence_losses, probe["noise"]),
         "repeat x noise": gradtools.gradient_gram(model, sequence_losses, probe["repeat"], other=probe["noise"],
                                                   block_size=cfg.n_examples // 2)}
fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
for ax, (title, g) in zip(axes, grams.items()):
    sns.heatmap(g.cosine().cpu().numpy(), ax=ax, vmin=-1, vmax=1, cmap="RdBu_r", square=True,
                xticklabels=False, yticklabels=False)
    ax.set_title(f"step {peak}: {title}")
fig.tight_layout()
save_figure(fig, "tour_gradient_cosine_heatmaps", profile, dpi=120)
model.load_state_dict(states[cfg.train_steps])

# %%
def at(dataset, step, column):
    return alignment[(alignment.dataset == dataset) & (alignment.step == step)][column].item()

first, last = alignment.step.min(), alignment.step.max()
drops = alignment[alignment.dataset == "repeat"].set_index("step").loss.diff()
display(Markdown(
    f"Measured in this run: repeat examples' loss {at('repeat', first, 'loss'):.3g} -> {at('repeat', last, 'loss'):.3g} nats "
    f"(largest drop before step {drops.idxmin()}), their mean cosine {at('repeat', first, 'mean_cosine'):.3f} -> "
    f"{at('repeat', last, 'mean_cosine'):.3f}; noise examples' loss {at('noise', first, 'loss'):.3g} -> "
    f"{at('noise', last, 'loss'):.3g} nats, mean cosine {at('noise', first, 'mean_cosine'):.3f} -> "
    f"{at('noise', last, 'mean_cosine'):.3f}; cosine spread (std) about {alignment.std_cosine.median():.2f}."))

# %% [markdown]
# **What this shows** (one seed; numbers in the line above, computed from the table).
# Repeat examples' loss falls as the model learns to copy, and their mean pairwise
# gradient cosine, near zero at initialisation, rises while the loss falls: the shared
# copying solution shows up as aligned gradients. The noise examples are not a flat
# control: the model now copies, which hurts every noise example in the same way, so
# their loss climbs and their gradients align too, later and weaker than the repeat
# examples'. The cross block (repeat x noise) is mostly negative: copying helps one set
# and hurts the other. Shared gradients can come from a shared failure as well as a
# shared solution, which is why study 1 compares each task with controls on the same
# prompts. The alignment curve is noisy at this size (few examples and checkpoints):
# differences well below the cosines' spread should not be read.

# %% [markdown]
# ## 2. Curvature: Hessian-vector products and Lanczos
#
# `hvp(loss_fn, params, v)` takes a scalar `loss_fn(params)` of a dict of named
# tensors. `hessian_matvec` wraps it as an operator on flat vectors for
# `lanczos(matvec, dim, k, orthogonal_to=B)`, which returns the top-k eigenpairs,
# restricted to the complement of B when given (POLCA's deflation).

# %%
params = {k: v.detach() for k, v in model.named_parameters()}
fixed = make_batch(cfg.n_examples, "repeat")

def per_example_loss(p):
    return sequence_losses(lambda **kw: functional_call(model, p, (), kw), fixed)

def mean_loss(p):
    return per_example_loss(p).mean()

dim = sum(t.numel() for t in params.values())
matvec = gradtools.hessian_matvec(mean_loss, params)
values, vectors = gradtools.lanczos(matvec, dim, 3, max_iters=cfg.lanczos_iters, dtype=dtype, device=device)
values2, vectors2 = gradtools.lanczos(matvec, dim, 2, orthogonal_to=vectors[:, :1], max_iters=cfg.lanczos_iters)
print(f"{dim} parameters; top Hessian eigenvalues: {values.tolist()}")
print(f"deflated against the first vector: {values2.tolist()} (the 2nd and 3rd above, once converged)")
residual = (matvec(vectors[:, 0]) - values[0] * vectors[:, 0]).norm().item()
print(f"eigen-residual of the top vector: {residual:.2e}")

# %% [markdown]
# ## 3. Directional derivatives: each example's loss along a direction
#
# For each example i, `directional_derivatives` returns the first and second
# derivative of its loss along v, from one batched forward-mode pass. A POLCA term is
# `first * <v, d> + 1/2 * second * <v, d>^2` for a parameter step d. Below, v is the top
# Hessian eigenvector; the second-order Taylor model of each example's loss is
# compared with the real loss along v.

# %%
top = gradtools.curvature.unflatten(vectors[:, 0], params)
first, second = gradtools.directional_derivatives(per_example_loss, params, top)
steps = torch.linspace(-1, 1, 21, dtype=dtype, device=device) * 2 / values[0].abs().sqrt()
actual = torch.stack([per_example_loss({k: params[k] + t * top[k] for k in params}) for t in steps])
base = actual[len(steps) // 2]
taylor = base + steps[:, None] * first + 0.5 * steps[:, None] ** 2 * second
rows = [dict(example=i, step=t.item(), actual=a.item(), taylor=b.item())
        for j, t in enumerate(steps) for i, (a, b) in enumerate(zip(actual[j], taylor[j]))]
taylor_table = pd.DataFrame(rows)
cache.save_table(taylor_table, DATA / "tour_loss_along_top_eigenvector.parquet")

fig, ax = plt.subplots(figsize=(5, 3.6))
for i in range(min(5, cfg.n_examples)):
    line, = ax.plot(steps.cpu(), actual[:, i].cpu(), lw=2, alpha=0.6)
    ax.plot(steps.cpu(), taylor[:, i].cpu(), "--", color=line.get_color())
ax.set_xlabel("step t along the top Hessian eigenvector")
ax.set_ylabel("example loss")
ax.set_title("solid: loss(theta + t v), dashed: 2nd-order Taylor")
fig.tight_layout()
save_figure(fig, "tour_loss_along_top_eigenvector", profile, dpi=120)
near = steps.abs() <= steps.abs().max() / 4
change = (actual[near] - base).abs().max().item()
print(f"inner quarter of the range: loss changes up to {change:.3g}, Taylor misses by up to "
      f"{(actual[near] - taylor[near]).abs().max().item():.3g} (all {cfg.n_examples} examples)")

# %% [markdown]
# **What this shows.** Near t = 0 the dashed second-order models follow each
# example's loss; further out they part, where higher orders matter (the first
# example, whose loss curves up sharply, shows it most). That is why POLCA's
# decomposition needs checkpoints close together (study 2). The two Lanczos calls show
# the deflation: restricted to the complement of the top eigenvector, Lanczos returns
# the second and third eigenvalues of the full run.
