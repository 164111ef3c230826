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
# # 02 — POLCA on 3-digit addition: hidden breakthroughs and the carry skill
#
# Reproduces section 4 and appendices C-F of *polca-hidden-breakthroughs* (study 2 in
# `STUDIES.md`). A small GPT-NeoX learns `abc+def=wxyz` (one token per character, loss
# on the four answer digits). Each answer token is labelled by its **digit place**
# (thousands, hundreds, tens, ones) and by whether a **carry** enters that place.
#
# The paper's claim: clustering the tokens' *exact* loss curves recovers the digit
# place but not the carry; clustering *POLCA* curves — each token's loss change
# attributed to one direction of a Hessian basis — recovers carry too (tables 3 and 4:
# carry homogeneity 0.97/0.95/0.90 for the top three basis vectors vs 0.51 for exact loss).
#
# **The paper's design, at laptop scale**: one constant learning rate for the whole run (low enough
# that the second-order expansion holds over each POLCA interval), the basis of algorithm 1 built
# over the whole run, POLCA over the whole run at a fixed checkpoint spacing. Each step is one tested
# `gradtools` call (`gradtools.polca_addition` holds the run; the profiles' runs are
# `gradtools.polca_addition.RUNS`):
#
# 1. data and labels (`gradtools.addition`); training with a checkpoint every `polca_every` steps;
# 2. the basis of algorithm 1: at `n_basis` checkpoints spread over the run, the top eigenvector of the
#    training-loss Hessian (on a fixed sample of `n_train_sample` problems) deflated against the vectors
#    already collected (`gradtools.polca.hessian_basis`, Lanczos on Hessian-vector products);
# 3. the POLCA terms per token, basis vector and checkpoint interval,
#    `polca_i^b(t) = <g_i, b><b, d_t> + 1/2 (b^T H_i b) <b, d_t>^2`, both derivatives by forward-mode
#    AD (`gradtools.polca.polca_over_training`); projected loss `L_i^b(t) = sum_{s<t} polca_i^b(s)`;
# 4. filters, HDBSCAN clustering at the paper's settings and cluster homogeneity, with chance levels;
# 5. a **scale series**: the same design at several model widths (`gradtools.polca_scale`), to see
#    whether the paper's effect appears or grows with size.

# %% tags=["parameters"]
profile = "default"  # smoke | default | paper
steps = None         # override the profile's number of training steps
lr = None            # override the profile's (constant) learning rate
polca_every = None   # override the spacing of POLCA checkpoints (steps)
seed = None          # override the seed (model init, data)
workers = None       # POLCA worker processes on CPU (None: 2, or 1 on a 1-core machine or a GPU)
scale_series = None  # True: compute the scale series' missing sizes here (cached); False: read its table; None: the profile's

# %%
import dataclasses
import os
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display
from tqdm.auto import tqdm
from transformers.utils import logging as hf_logging

import gradtools
from gradtools import addition, cache, fidelity, paths, polca, polca_scale, profiles
from gradtools import polca_addition as pa
from gradtools import polca_arithmetic_claims as claims_of
from gradtools.figures import save_figure
from gradtools.lm_training import load_checkpoint

hf_logging.disable_progress_bar()
warnings.filterwarnings("ignore", message=".*hdbscan.*")
# one thread: on 2 cores shared with another job, 2 threads made a forward pass ~60x slower (0.66 s vs 0.01 s)
torch.set_num_threads(1 if not torch.cuda.is_available() else torch.get_num_threads())
started = time.time()

# the analysis settings (the run's are gradtools.polca_addition.RUNS[profile])
cfg = profiles.select(profile, {
    "smoke":   dict(min_cluster_fraction=0.1, gaps=[1, 3], anchors=[20, 30], spans=[1, 5], permutations=20,
                    scale_series=True),
    "default": dict(min_cluster_fraction=0.03, gaps=[1, 5, 10, 25, 50, 100], anchors=[1000, 3000, 4500, 6000],
                    spans=[1, 2, 5, 20, 60, 140], permutations=200, scale_series=False),
    "paper":   dict(min_cluster_fraction=0.03, gaps=[1, 5, 20], anchors=[2000, 5000, 8000], spans=[1, 10, 50],
                    permutations=200, scale_series=False),
}, scale_series=scale_series)
run = pa.RUNS[profile]
run = dataclasses.replace(run, **{k: v for k, v in dict(steps=steps, lr=lr, window_lr=lr, polca_every=polca_every,
                                                         seed=seed).items() if v is not None})
if steps is not None:
    run = dataclasses.replace(run, window=(run.window[0], steps))
run.check()  # bad settings stop here, before any compute
device = "cuda" if torch.cuda.is_available() else "cpu"
workers = workers or (min(2, os.cpu_count() or 1) if device == "cpu" else 1)
DATA, FIGURES, CACHE = paths.data_dir(profile), paths.figures_dir(profile), paths.cache_dir(profile)
RUN = pa.run_folder(run, CACHE)
w0, w1 = run.window
run

# %% [markdown]
# ## Data
#
# Problems `a + b` with `0 <= a, b <= 999`, zero-padded: `007+095=0102`. A fixed set of
# validation problems supplies the tokens POLCA follows; a disjoint fixed *training sample*
# defines the Hessian of algorithm 1; training batches are fresh problems at every step
# (one epoch, as in the paper) that avoid the validation set. Carry labels: the ones place
# never receives a carry, and the thousands digit is 1 exactly when a carry enters it, so
# only in the **hundreds and tens** places is carry a label that neither the position nor
# the answer digit already fixes. The homogeneity measures below take this into account.

# %%
validation, train_sample, tokens = pa.data(run, device)
print(addition.decode(validation["input_ids"][:4]))
tokens.groupby(["digit", "carry"], observed=True).size().unstack()

# %% [markdown]
# ## Training
#
# AdamW with betas (0.9, 0.95), weight decay 0.1 and batch 64 (the paper's optimiser), a linear warm-up
# over `warmup` steps, then **one constant learning rate for the whole run** (no schedule, as in the
# paper), with a checkpoint every `polca_every` steps: POLCA's grid, the exact-loss curves' grid and the
# candidates of algorithm 1 are the same checkpoints. A few more checkpoints after some anchors serve the
# spacing check. Checkpoints are `save_pretrained` folders under `data/cache/`, written atomically; a
# rerun reuses them and an interrupted run resumes.
#
# **Why this learning rate.** POLCA is only meaningful where the second-order expansion explains each
# interval's per-token loss change, which needs `lr x interval` small. The paper: lr 1e-5, an interval of
# 20 steps, a 9.5M-parameter model. At 1e-5 a model of this notebook's size does not learn the task
# within a laptop's budget; at 2e-3 (an earlier version of this notebook) the model trains at the edge of
# stability and the expansion fails over anything longer than a step (the table in *Reading the verdict*).
# In development runs, lr 2e-4 made one expansion over 50 steps explain 0.976-0.978 of the per-token
# change, and lr 5e-4 (the default) learned all four places within 7000 steps; the decomposition check
# below measures what holds for this run.

# %%
extra = sorted({a + g for a in cfg.anchors for g in [0, *cfg.gaps] if a + g <= run.steps})
model = pa.model(run, device)
n_params = sum(p.numel() for p in model.parameters())
t0 = time.time()
log = pa.train(run, RUN, device, extra_steps=extra)
grid = run.polca_steps
print(f"{n_params} parameters; training took {time.time() - t0:.0f} s (0 if cached); lr {run.window_lr:g} over "
      f"{w0}-{w1}, a checkpoint every {run.polca_every} steps ({len(grid) - 1} intervals); basis at {run.basis_steps}")
load = pa.loader(RUN, device)


# %% [markdown]
# ## Exact loss per digit and per carry (appendix C)
#
# Per-token loss and greedy accuracy of the validation answers at every checkpoint of the grid.
# The paper's figures 7-8: the digit places are learned at different times (distinct
# curves), while within a place the carry and no-carry tokens are hard to tell apart.

# %%
def evaluate(step):
    m = load_checkpoint(RUN, step).to(device)
    with torch.no_grad():
        loss = addition.answer_token_losses(m, validation).reshape(-1).cpu()
    acc = addition.answer_accuracy(m, validation).reshape(-1).cpu()
    return pd.DataFrame({"step": step, "token": tokens.token, "loss": loss.numpy(), "correct": acc.numpy()})

exact = cache.cached_table(RUN / "exact_loss.parquet", lambda: pd.concat([evaluate(s) for s in tqdm(grid, desc="exact loss")]))
exact = exact.merge(tokens[["token", "digit", "carry"]], on="token")
curves = exact.groupby(["step", "digit", "carry"], observed=True).agg(loss=("loss", "mean"), accuracy=("correct", "mean")).reset_index()
cache.save_table(curves, DATA / "polca_arithmetic_exact_loss_by_digit_and_carry.parquet")
final_acc = exact[exact.step == run.steps].groupby("digit", observed=True).correct.mean()
print("final per-token accuracy:", round(exact[exact.step == run.steps].correct.mean(), 4), dict(final_acc.round(3)))

fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
by_digit = exact.groupby(["step", "digit"], observed=True).loss.mean().reset_index()
sns.lineplot(by_digit, x="step", y="loss", hue="digit", ax=axes[0]); axes[0].set_title("exact loss by digit place")
for digit, ax in zip(["hundreds", "tens"], axes[1:]):
    sns.lineplot(curves[curves.digit == digit], x="step", y="loss", hue="carry", ax=ax)
    ax.set_title(f"{digit} place: carry vs no carry")
for ax in axes:
    ax.set_yscale("log"); ax.set_ylabel("mean token loss (nats)")
fig.tight_layout(); save_figure(fig, "polca_arithmetic_exact_loss_by_digit_and_carry", profile)

# %% [markdown]
# ## The basis of algorithm 1
#
# At `n_basis` checkpoints spread evenly over the run, the top eigenvector of the Hessian of the
# training loss on the fixed training sample, deflated against the vectors collected so far, is
# appended (k = 1, as in the paper). Two ablation bases for table 4: **shuffled** runs the same
# algorithm over the same checkpoints in a random order, **random** is a uniformly random orthonormal
# basis of the same size (`gradtools.polca_addition.bases`). Below: the eigenvalues and each vector's
# eigen-residual `||P H P b - lambda b|| / |lambda|` (P the projector on the complement of the earlier
# vectors) and the orthonormality of the basis.

# %%
bases, hessian = pa.bases(run, RUN, model, train_sample, load)
basis_table = pd.DataFrame({"vector": range(hessian.vectors.shape[1]), "step": run.basis_steps,
                            "eigenvalue": hessian.eigenvalues.numpy(), "residual": hessian.residuals.numpy()})
cache.save_table(basis_table, DATA / "polca_arithmetic_basis.parquet")
gram = hessian.vectors.double().T @ hessian.vectors.double()  # float64: a float32 Gram of 1e5-long vectors rounds at 1e-4
ortho = (gram - torch.eye(gram.shape[0], dtype=torch.float64)).abs().max().item()
print(f"{hessian.vectors.shape[1]} vectors in {hessian.vectors.shape[0]} dimensions; max |B^T B - I| = {ortho:.1e}")
basis_table.round(4)

# %% [markdown]
# ## POLCA over the whole run
#
# For every interval of the grid and every validation answer token, the POLCA term along each vector
# of the three bases, and along the full step `d_t / ||d_t||` (its POLCA term is the second-order
# Taylor prediction of the token's whole loss change). All first and second directional derivatives
# of an interval come from one forward-over-forward pass, vmapped over the directions (the full step
# included) in chunks of 8, no per-token backward. On CPU the parts of 50 intervals are shared out
# over `workers` processes (one per core, `gradtools.polca.run_forked`); each part is cached, so an
# interrupted run resumes.
#
# *Cost* (the printout below measures it for this run): about 0.2 s per direction and interval for
# 1000 tokens on one core at this model size, linear in tokens, directions and intervals.

# %%
per_token = pa.per_token_loss(model, validation)
t0 = time.time()
result = pa.polca_terms(run, RUN, per_token, load, bases, workers=workers)
polca_seconds = time.time() - t0
print(f"POLCA over {len(grid) - 1} intervals x {sum(b.shape[1] for b in bases.values()) + 1} directions "
      f"x {len(tokens)} tokens: {polca_seconds:.0f} s on {workers} process(es) (0 if cached)")


# %% [markdown]
# ## Does the decomposition add up? (the decomposition check)
#
# The second-order expansion explains a token's loss change only when the checkpoints are close.
# Three checks, each the share of the actual per-token loss change (summed squares over tokens) that a
# prediction explains (1: exact, 0: no better than "no change"):
#
# 1. **per interval**: the full-step expansion, and the sum of the POLCA terms over each basis (how
#    much of the change the basis captures);
# 2. **over spans**: the summed interval predictions over blocks of `span` intervals against the actual
#    change over the block: what a projected loss accumulates (the longest span is the whole run);
# 3. **by spacing**: at a few anchors, one full-step expansion over a single gap of 1 to `max(gaps)` steps
#    (what a finer or coarser POLCA grid would get).

# %%
loss_w = result["loss"].cpu()
predictions = {"full step": result["full_step"].polca[:, 0].cpu(),
               **{f"{name} basis": result[name].polca.sum(1).cpu() for name in bases}}
check = pd.concat([polca.decomposition_check(loss_w, pred).assign(prediction=name)
                   for name, pred in predictions.items()])
check["step"] = np.array(grid[:-1])[check.interval]
cache.save_table(check, DATA / "polca_arithmetic_decomposition_check.parquet")
span_rows = []
for span in cfg.spans:
    for name, pred in predictions.items():
        t = polca.decomposition_check(loss_w, pred, span=span)
        if len(t):
            span_rows.append(dict(prediction=name, span=span * run.polca_every, blocks=len(t),
                                  median_explained=t.explained.median(), min_explained=t.explained.min(),
                                  mean_abs_change=t.mean_abs_change.mean()))
spans = pd.DataFrame(span_rows)
cache.save_table(spans, DATA / "polca_arithmetic_decomposition_by_span.parquet")

def spacing_rows():
    anchors = [a for a in cfg.anchors if a + max(cfg.gaps) <= run.steps]
    return pa.spacing_table(per_token, load, anchors, cfg.gaps)
spacing = cache.cached_table(RUN / "spacing.parquet", spacing_rows)
cache.save_table(spacing, DATA / "polca_arithmetic_decomposition_by_spacing.parquet")
print(check.groupby("prediction").explained.describe()[["25%", "50%", "75%"]].round(3))
display(spans.pivot_table(index="prediction", columns="span", values="median_explained").round(3))
spacing.pivot_table(index="anchor", columns="gap", values="explained").round(3)


# %%
fig, axes = plt.subplots(1, 3, figsize=(16, 3.8))
sns.lineplot(check, x="step", y="explained", hue="prediction", ax=axes[0], lw=0.7)
axes[0].set_ylabel("share of loss change explained")
axes[0].set_title(f"per interval ({run.polca_every} steps)")
if len(spans):
    sns.lineplot(spans, x="span", y="median_explained", hue="prediction", marker="o", ax=axes[1])
    axes[1].set_xscale("log"); axes[1].set_xlabel("steps summed"); axes[1].set_ylabel("median share explained")
    axes[1].set_title("summed interval predictions over longer spans")
if len(spacing):
    sns.lineplot(spacing, x="gap", y="explained", hue="anchor", marker="o", ax=axes[2], palette="viridis")
    axes[2].set_xscale("log"); axes[2].set_xlabel("steps between checkpoints")
    axes[2].set_title("one full-step expansion vs checkpoint spacing")
for ax in axes:
    ax.set_ylim(-1, 1.05); ax.axhline(1, color="grey", lw=0.8); ax.axhline(0, color="grey", lw=0.8)
fig.tight_layout(); save_figure(fig, "polca_arithmetic_decomposition_check", profile)


# %% [markdown]
# ### Lower constant rates (the learning-rate probe)
#
# Does a lower constant rate make the expansion hold over POLCA's intervals, and at what cost? The probe
# (`gradtools.polca_lr_probe`) trains this run's model at lower constant rates (the profile's
# `polca_lr_probe.PROBES`) and measures the same spacing check at a few anchors, beside the validation
# accuracy there. It is computed by one command and its table committed (a few minutes on one core):
#
#     python -m gradtools.polca_lr_probe --profile default
#
# Here it is computed when `scale_series` is true (the smoke profile's choice), and read otherwise.

# %%
from gradtools import polca_lr_probe

probe_path = DATA / polca_lr_probe.TABLE
if cfg.scale_series:
    polca_lr_probe.probe(profile, workers=1)
lr_probe = pd.read_parquet(probe_path) if probe_path.exists() else None
if lr_probe is None:
    print(f"no learning-rate probe yet: run `python -m gradtools.polca_lr_probe --profile {profile}`")
else:
    display(lr_probe.pivot_table(index=["lr", "anchor", "accuracy"], columns="gap", values="explained").round(3))
    polca_lr_probe.plot(lr_probe, spacing, run.window_lr, profile)
    plt.show()


# %% [markdown]
# ## Filters and clustering
#
# As in section 4.1: keep the basis vectors whose mean projected loss decreases over the run;
# for each, drop the tokens whose projected loss increases, and cluster the remaining
# trajectories with HDBSCAN at **the paper's settings** (`min_cluster_size` = 3% of the validation tokens,
# the paper's 150 of 5000; `min_samples` = tokens/15), dropping outliers. Vectors are ranked by how much
# mean projected loss they remove; "top 1-3" in the tables are the first three of that ranking, for
# every basis alike (`gradtools.polca_addition.homogeneity`).
#
# The baseline is exact-loss clustering over the same grid (the tokens' exact loss at every checkpoint).
#
# Homogeneity is reported on four labels, each beside its **chance level** (the same clusters
# with labels shuffled among the clustered tokens): `digit`; `carry` (the paper's measure);
# `digit_carry` (the joint label, so that trivial carries do not count); and
# `carry_hundreds_tens` (carry among the hundreds and tens tokens only).

# %%
n_tok = len(tokens)
min_cluster = max(5, round(cfg.min_cluster_fraction * n_tok))
exact_curves = {"exact loss (whole run)": loss_w}                                      # (T, n)
homogeneity, clusterings = pa.homogeneity(result, bases, tokens, exact_curves, min_cluster_size=min_cluster,
                                          permutations=cfg.permutations, seed=run.seed)
cache.save_table(homogeneity, DATA / "polca_arithmetic_homogeneity.parquet")
ranked = {name: pa.ranked_vectors(result[name]) for name in bases}
kept_counts = {name: len(ranked[name][1]) for name in bases}
kept_tokens = {name: [int(polca.decreasing_tokens(ranked[name][0][:, j]).sum()) for j in ranked[name][1][:3]] for name in bases}
print("basis vectors whose mean projected loss decreases:", kept_counts, "of", {n: b.shape[1] for n, b in bases.items()})
print("tokens kept (projected loss decreases) along the top-3 vectors:", kept_tokens, "of", n_tok)

# %% [markdown]
# ## Figure 4: POLCA trajectories and clusters for the top Hessian vectors
#
# Each panel: the projected loss `L_i^b(t)` of the kept tokens along one of the top three
# Hessian vectors, coloured by HDBSCAN cluster (grey: outliers), with each cluster's size,
# majority digit/carry label and its homogeneity.

# %%
top = [k for k in clusterings if isinstance(k, tuple) and k[0] == "Hessian"]
fig, axes = plt.subplots(1, max(1, len(top)), figsize=(5 * max(1, len(top)), 3.8), squeeze=False)
palette = sns.color_palette("tab10")
cluster_rows = []
for ax, key in zip(axes[0], top):
    j, keep, clusters = clusterings[key]
    curves_j = ranked["Hessian"][0][:, j][:, keep].numpy()
    kept = tokens[keep.numpy()].reset_index(drop=True)
    table = polca.cluster_homogeneity(clusters, kept.digit_carry.to_numpy())
    for c in [-1, *table.cluster]:
        sel = clusters == c
        colour = "lightgrey" if c < 0 else palette[c % 10]
        ax.plot(grid, curves_j[:, sel], color=colour, lw=0.5, alpha=0.4 if c < 0 else 0.6)
        if c >= 0:
            row = table[table.cluster == c].iloc[0]
            ax.plot([], [], color=colour, label=f"{row.majority} ({row.homogeneity:.2f}, n={row['size']})")
            cluster_rows.append(dict(rank=key[1], vector=j, cluster=c, size=row["size"], majority=row.majority,
                                     homogeneity=row.homogeneity))
    ax.set_title(f"Hessian vector {j} (rank {key[1]}): {len(table)} clusters")
    ax.set_xlabel("step"); ax.set_ylabel("projected loss"); ax.legend(fontsize=7)
fig.tight_layout(); save_figure(fig, "polca_arithmetic_projected_loss_clusters_top_hessian_vectors", profile)
cache.save_table(pd.DataFrame(cluster_rows, columns=["rank", "vector", "cluster", "size", "majority", "homogeneity"]),
                 DATA / "polca_arithmetic_top_vector_clusters.parquet")
pd.DataFrame(cluster_rows)


# %% [markdown]
# ## Table 3: exact loss vs Fisher vs POLCA (appendix D), and table 4: the basis (appendix E)
#
# Highest homogeneity over clusters, per method and top vector, on each label, with the chance
# level in brackets. Exact loss is one clustering (rank 1 only). Paper, carry: exact loss 0.514; Fisher 0.664/0.643/0.637; POLCA
# 0.973/0.946/0.903 (table 3); random orthonormal 0.902/0.858/0.838, shuffled-checkpoint Hessian
# 0.856/0.852/0.834 (table 4).

# %%
def wide(df):
    cell = df.apply(lambda r: "-" if np.isnan(r.homogeneity) else f"{r.homogeneity:.3f} ({r.chance:.3f})", axis=1)
    return df.assign(cell=cell).pivot_table(index=["measure", "method"], columns="rank", values="cell", aggfunc="first")

table3 = homogeneity[homogeneity.method.str.startswith("exact") | homogeneity.method.isin(["Fisher, Hessian basis", "POLCA, Hessian basis"])]
table4 = homogeneity[homogeneity.method.str.startswith("POLCA") | homogeneity.method.str.startswith("exact")]
cache.save_table(table3, DATA / "polca_arithmetic_table3_decomposition.parquet")
cache.save_table(table4, DATA / "polca_arithmetic_table4_basis.parquet")
display(wide(table3)); display(wide(table4))

# %%
margin = homogeneity.assign(above_chance=homogeneity.homogeneity - homogeneity.chance)
fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
for ax, measure in zip(axes, ["carry", "digit_carry", "carry_hundreds_tens"]):
    sns.barplot(margin[margin.measure == measure], x="method", y="above_chance", hue="rank", ax=ax)
    ax.axhline(0, color="grey", lw=0.8); ax.set_title(f"{measure}: homogeneity minus chance")
    ax.tick_params(axis="x", rotation=25); ax.set_xlabel("")
fig.tight_layout(); save_figure(fig, "polca_arithmetic_homogeneity_above_chance", profile)

# %% [markdown]
# ## Sensitivity to HDBSCAN's `min_cluster_size` (and `min_samples`)
#
# The same comparison at half and twice the paper's cluster size, on the joint label and on carry in
# the hundreds and tens places (top vector of each method), with the paper's `min_samples` =
# tokens/15 and with a permissive `min_samples` = 5.

# %%
sens = []
for size, ms in [(s, m) for s in sorted({max(5, min_cluster // 2), min_cluster, 2 * min_cluster}) for m in (None, 5)]:
    h, _ = pa.homogeneity(result, bases, tokens, exact_curves, min_cluster_size=size, min_samples=ms, top=1,
                          permutations=cfg.permutations, seed=run.seed)
    sens.append(h)
sensitivity = pd.concat(sens, ignore_index=True)
cache.save_table(sensitivity, DATA / "polca_arithmetic_min_cluster_size_sensitivity.parquet")
sensitivity["cell"] = sensitivity.apply(lambda r: "-" if np.isnan(r.homogeneity) else
                                        f"{r.homogeneity:.3f} ({r.chance:.3f}, {r.clusters} cl.)", axis=1)
sensitivity["setting"] = sensitivity.apply(lambda r: f"size {r.min_cluster_size}, min_samples {r.min_samples_rule}", axis=1)
sensitivity[sensitivity.measure.isin(["digit_carry", "carry_hundreds_tens"])].pivot_table(
    index=["measure", "method"], columns="setting", values="cell", aggfunc="first")

# %% [markdown]
# ## Beyond clustering: does a token's projected loss separate carry within a place?
#
# HDBSCAN needs dense groups of curves; a direction can carry the carry signal without them. A
# direct check, no clustering: within the hundreds and within the tens place, the AUC of
# "carry" vs "no carry" given the token's projected loss at the end of the run (each basis
# vector, all tokens), and given its exact loss change over the run. `separation` is
# `|AUC - 0.5|`; `null_95` its 95th percentile with the carry labels shuffled within the place.
#

# %%
def carry_separation(score, place, method, vector):
    """|AUC - 1/2| of carry within a place given a per-token score, with its shuffled-label null (`gradtools.polca`)."""
    s = polca.carry_separation(score, tokens, place, permutations=cfg.permutations, seed=run.seed)
    return None if s is None else dict(s, method=method, vector=vector)

sep = []
for place in ["hundreds", "tens"]:
    sep.append(carry_separation((loss_w[-1] - loss_w[0]).numpy(), place, "exact loss change (whole run)", -1))
    for name in bases:
        final = polca.projected_loss(result[name].polca.cpu())[-1]   # (k, n)
        sep += [carry_separation(final[j].numpy(), place, f"POLCA, {name} basis", j) for j in range(final.shape[0])]
separation = pd.DataFrame([s for s in sep if s is not None],
                          columns=["place", "method", "vector", "auc", "separation", "null_95"])
cache.save_table(separation, DATA / "polca_arithmetic_carry_separation.parquet")
best = separation.loc[separation.groupby(["place", "method"]).separation.idxmax()]
best.round(3)


# %% [markdown]
# ## Appendix F: first vs second order
#
# Projected loss along the Hessian basis computed with the first-order term only vs with the
# second-order term, over all tokens, intervals and vectors: cosine similarity and the
# relative L2 distance. The paper reports a cosine of 0.99987 and a norm of 5.5e-4. Below it, per
# Hessian vector: the first-order and the second-order terms summed over the run, and the
# share of intervals where `<b, d_t>` changes sign (the step oscillating across the direction).

# %%
orders = pa.orders(result["Hessian"])
cache.save_table(orders, DATA / "polca_arithmetic_first_vs_second_order.parquet")
terms_h = result["Hessian"]
per_vector = pd.DataFrame({
    "eigenvalue": hessian.eigenvalues.numpy(),
    "sum_first_order": terms_h.polca_first_order.sum(0).mean(-1).cpu().numpy(),
    "sum_second_order": (terms_h.polca - terms_h.polca_first_order).sum(0).mean(-1).cpu().numpy(),
    "sign_flips": (torch.sign(terms_h.coef[1:]) != torch.sign(terms_h.coef[:-1])).double().mean(0).cpu().numpy()})
cache.save_table(per_vector, DATA / "polca_arithmetic_first_vs_second_order_per_vector.parquet")
print(f"total run time of this notebook: {time.time() - started:.0f} s")
display(orders); per_vector.round(3)

# %% [markdown]
# ## The scale series: does the effect appear or grow with model size?
#
# The same design (this profile's run: learning rate, grid, basis size, validation tokens, Hessian
# sample, clustering settings) at several model widths, 3 layers each (`gradtools.polca_scale`; widths
# `polca_scale.SIZES`). Per size: the share of each interval's per-token loss change the full-step
# expansion explains (median) and over the whole run, what the Hessian basis explains per interval,
# the carry homogeneity above chance within hundreds and tens for POLCA along the Hessian basis, along a
# random basis and for exact loss (best of the top three vectors; empty: no cluster formed), and
# appendix F's first- vs second-order cosine. The series takes longer than this notebook's budget in the
# default profile (its wall time per size is in the table); it is computed by one command and its table is
# committed:
#
#     python -m gradtools.polca_scale --profile default     # two sizes at a time, one per core
#
# From an empty cache it took 47 minutes on the 2-core machine (width 160 on one core, 96, 48 and 32 in turn on
# the other; `wall_s` per size in the table), within the 2 hours of issue 18.
#
# Here it is computed when `scale_series` is true (the smoke profile's choice), and read otherwise.

# %%
scale_path = DATA / polca_scale.TABLE
if cfg.scale_series:
    polca_scale.series(profile, workers=1 if profile == "smoke" else workers)
scale = pd.read_parquet(scale_path) if scale_path.exists() else None
if scale is None:
    print(f"no scale series yet: run `python -m gradtools.polca_scale --profile {profile}`")
else:
    display(scale.round(3))
    fig = polca_scale.plot(scale, profile)
    plt.show()

# %% [markdown]
# ## Deviations from the paper
#
# | setting | paper | here (default profile) | why |
# |---|---|---|---|
# | model | GPT-NeoX-like, 3 layers, width 512, 4 heads (9.5M parameters) | 3 layers, width 48, 4 heads (86k); the scale series up to width 160 (0.93M) | a 2-core laptop; the `paper` profile has the paper's width |
# | learning rate | 1e-5 constant | 5e-4 constant after a 100-step warm-up | at 1e-5 this model does not learn within the budget; at 5e-4 it learns every place within 7000 steps (development runs); the decomposition check measures whether the expansion holds at it |
# | steps, batch | until learned, batch 64 | 7000, batch 64 | all four places learned by then (appendix C's figure) |
# | basis | a vector every 200 steps (k = 1) | 10 vectors spread over the run (one per 700 steps), k = 1 | POLCA's cost grows with the basis |
# | Hessian sample | 1250 problems | 500 problems | one Hessian-vector product on 1250 problems costs ~1.5 s on one core: 300 of them for two bases |
# | POLCA grid | every 20 steps | every 50 steps | POLCA's cost; lr x interval 0.025 here vs 2e-4 in the paper, and the decomposition check measures what it costs |
# | validation tokens | 1250 problems (5000 tokens) | 250 problems (1000 tokens) | POLCA's cost is linear in tokens |
# | HDBSCAN | min_cluster_size 150 (3% of tokens), min_samples tokens/15 | the same shares | |
# | seeds | one | one | |

# %% [markdown]
# ## Verdict
#
# Each claim of the paper this notebook checks, decided by `gradtools.polca_arithmetic_claims` from the
# tables above (criteria in the `why` column and in that module's docstrings), written to
# `data/claims/02_polca_arithmetic.parquet`. "Carry" is judged on carry within the hundreds and tens
# places, against each clustering's chance level: the paper's plain carry homogeneity also rewards
# clusters that only separate places (carry is constant in the ones place and equals the thousands digit).

# %%
claims = fidelity.save_claims("02_polca_arithmetic", claims_of.claims(
    curves, check, spans, homogeneity, sensitivity, separation, orders, per_vector, scale), profile)
display(Markdown(f"Run: {n_params} parameters, {run.steps} steps at lr {run.window_lr:g}, POLCA every "
                 f"{run.polca_every} steps over {w0}-{w1} ({len(grid) - 1} intervals), {run.n_basis} vectors per basis, "
                 f"{n_tok} validation tokens; notebook run time {time.time() - started:.0f} s."))
display(Markdown(fidelity.claims_markdown(claims)))

# %% [markdown]
# ### Reading the verdict
#
# *Setting.* Default profile, one seed: the run of the deviations table above, POLCA every 50 steps over
# the whole run along 10 Hessian, 10 shuffled-Hessian and 10 random vectors plus the full step.
#
# **Earlier designs of this notebook** (development runs, numbers from their outputs, not recomputed here;
# the current run's numbers are in the claims table):
#
# | setting | full step explained, per interval (median) | summed over 20 / 100-300 steps | Hessian vectors kept | POLCA clusters (paper settings) |
# |---|---|---|---|---|
# | lr 2e-3, POLCA every 50 steps over 0-3000, 10 vectors/basis | -0.23 | - | 1 of 10 | none |
# | lr 2e-3, POLCA every step over 2400-2700, 6 vectors/basis (13 min) | 0.945 | 0.47 / -11.8 (300) | 6 of 6 | none |
# | lr 2e-4 from 2400, POLCA every 4 steps over 2400-3000, 6 vectors/basis | 0.993 | 0.97 / 0.83 (100), 0.21 (300) | 4 of 6 | none |
#
# At lr 2e-3 the model trains at the edge of stability: it oscillates across the sharp Hessian
# directions and the first- and second-order terms cancel; a 600-step window at 2e-4 inside a run at
# 2e-3 fixed the expansion but covered only part of training, with a basis built on that part alone.
# This notebook now runs the paper's design (one rate, the whole run).
#
# **What this run shows** (the claims table above and the tables it quotes):
#
# * **Appendix C reproduces**: the model learns every place, the places are learned at different times
#   (thousands and hundreds early, tens and ones through a late breakthrough, the exact-loss figure), and
#   within a place the carry and no-carry curves stay close.
# * **The decomposition does not hold at this learning rate and spacing.** The full-step expansion over one
#   50-step interval explains a median share far below the criterion (the decomposition row), and the
#   summed interval predictions diverge from the actual change over longer spans (the span table). The
#   spacing table says why: at every anchor a single 1-step expansion holds, but over 5-10 steps it
#   degrades, and late in training (the 6000 anchor) it fails at 5 steps already. The Hessian's top
#   eigenvalues are large from early on and grow again after the breakthrough (the basis table), and along
#   every Hessian vector the step changes sign in more than half of the intervals (the per-vector table of
#   appendix F): AdamW runs at the edge of stability across these directions, so first- and second-order
#   terms summed over the run cancel (appendix F not reproduced) and each interval's expansion is dominated
#   by the oscillation. A projected loss built from such terms is not the token's loss change.
# * **Clustering (tables 3-4).** At the paper's HDBSCAN settings no POLCA, Fisher or ablated-basis curve
#   forms a cluster along any top vector; exact-loss clusters recover the digit place and not carry, as in the
#   paper. At looser settings (the sensitivity table) a few POLCA clusters form but do not separate carry.
#   Without clustering, some Hessian direction separates carry in the hundreds place better than the exact
#   loss change does (the carry-separation row, lenient: the best of ten vectors).
# * **Why this is "not reproduced at this scale", with the paper's design tried.** The paper's design (one
#   constant rate, a basis over the whole run, POLCA over the whole run) ran here; what fails first is the
#   decomposition, and the evidence is the spacing table and the sign flips. The earlier window design (lr
#   2e-4 over 600 steps after training at 2e-3, table above) made each 4-step interval add up but covered
#   only the breakthrough. **Lower rates** (the learning-rate probe, its table and
#   figure): at 1/5 and 2/5 of this run's rate the 1-step expansion holds everywhere and the longer gaps do
#   better early in training, but from the second anchor on, at both rates, some of the 5-50-step expansions
#   still miss a large share (the table's low cells), and the model has not reached this run's breakthrough by the probe's last
#   anchor (its accuracy column against the exact-loss table above). A rate at which 20-50-step intervals
#   hold *and* the model learns the task would need several times this run's steps and POLCA intervals:
#   beyond a laptop's budget (a GPU for the `paper` profile). What remains untested is the paper's
#   9.5M-parameter model at 1e-5 (the `paper` profile).
# * **The scale series** (its table and figure; the last claims row): at this design, four widths from 39k
#   to 0.93M parameters, **the effect does not appear with size, and the decomposition worsens with it**.
#   The full-step expansion's median share per interval falls as the width grows and turns negative from
#   the 96-wide model on; summed over the run it is far from the actual change at every size; the Hessian
#   basis explains less per interval the wider the model; appendix F's cosine stays below one everywhere and
#   turns negative at the widest size. No POLCA curve along a top Hessian vector forms a cluster at the
#   paper's settings at any size, and exact-loss clusters do not separate carry (margins near zero). The
#   smallest width does not learn the task in the run's steps (its accuracy column). At one learning rate
#   for every width, wider models take larger steps in function space, so the expansion over a fixed
#   interval is worse, not better: the paper's 9.5M-parameter model works at 1e-5, 50x below this run's
#   rate, which is why the series cannot stand in for it. The series' run at width 48 is this notebook's
#   run, trained again by the series' command: its decomposition share differs from this notebook's in the
#   second decimal (the order of floating-point sums, as in notebook 00's finding 7), not in the verdict.
