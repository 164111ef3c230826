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
# # 05 · Rank-3 interventions on the attention update during grokking
#
# Companion to *Gradient-Direction Sensitivity Reveals Linear-Centroid Coupling Hidden by Optimizer Trajectories*
# (`papers/gradient-sed-linear-centroids.txt`, section 5; study 5 of `STUDIES.md`).
#
# Notebook 04 measured how strongly spectral-edge (SED) directions of the attention weights are *coupled* to the model's
# features. Here we ask whether they are *causal*: we train the same grokking transformer (`(a op b) mod p`, 2-layer pre-norm
# encoder, AdamW lr 1e-3, weight decay 1.0) while constraining every step of the attention parameters to a rank-3 subspace
# with orthonormal basis `V` (projector `P = V^T V`):
#
# | condition | attention step |
# |---|---|
# | A | natural (control) |
# | B | remove the SED subspace: `(I - P)` |
# | C | keep only the SED subspace: `P` |
# | D | remove a random rank-3 subspace, drawn afresh every step |
# | E | keep only that random subspace |
#
# The SED basis is the top-3 right singular vectors of the last `W = 20` *unprojected* vectors of the object being projected,
# recorded every 25 steps as in notebook 04 (the AdamW motion summed over those 25 steps, or the gradient at the recording
# step), recomputed at each record and held in between. Two **flavours**: project AdamW's update after the optimiser computed it (its moments still see the
# full gradient; weight decay is projected with the rest), or project the gradient before AdamW (the moments see only the
# projected gradient). Embeddings, LayerNorms, MLPs and heads always step naturally. The gradient flavour's SED basis is
# built from the training minibatch gradient AdamW receives (the paper says only "the current SED basis"), not from
# notebook 04's fixed held-out batch. The metric is the **grokking step**: the first evaluation (every 25 steps) with
# test accuracy >= 0.95.
#
# **The paper's claims checked here** (tables 4 and 5 of the paper, means over seeds 42, 137, 2024):
# 1. Keeping only rank 3 (C, E) groks about 2x faster than the control: update projection A 3342, C 1683, E 1467 on
#    addition (mul: A 3208, C 1692, E 1567); gradient projection A 3358, C 1525, E 1425.
# 2. SED vs random rank 3 (C vs E) is within seed variation: the speedup is rank-specific, not direction-specific.
# 3. Removing the SED subspace (B) does not prevent grokking (update projection B 2758; gradient projection B 3300, i.e. no speedup).
# 4. Removing a random rank 3 (D) changes nothing (3417 / 3358).
# 5. With weight decay 0, none of A, C, E groks within 8000 steps.
#
# Besides the grokking step, every projected run logs per step the share of the natural update (AdamW's unprojected
# step, or the gradient in the gradient flavour) that its condition keeps (section 3): it measures whether a condition
# changed training at all.
#
# **Profiles and how to run them.** `smoke` checks that everything runs. `default` (2 otherwise idle CPU cores: 7.3
# minutes from scratch, measured; 60-75 ms a training step on one core, evaluation and projection included) runs addition with the gradient flavour on seeds 42, 137 and 2024 for the control A and the rank-3 conditions C and E (the claims that need seeds),
# and B, D and the update-flavour C on seed 42 only. `paper` is the paper's design: A-E x both flavours x add and mul x
# three seeds, and weight decay 0 for A, C and E for 8000 steps (gradient flavour, seed 42, addition); 70 minutes on
# 2 CPU cores (measured; 2 worker processes, one thread each), on a GPU when one is present; results in `data/paper/` and
# `figures/paper/`. Every run is saved as it completes (under `data/cache/<profile>/sed/`), and so are its history and
# per-step log (under `paths.job_tables_dir`: `data/paper/jobs/sed/` in the `paper` profile, committed as they
# complete), so an interrupted profile resumes from what is committed on any machine. Both notebooks of the paper
# profile, from the repository root:
#
# ```
# .venv/bin/python -m gradtools.runner --profile paper 04_sed_coupling 05_sed_interventions
# ```

# %% tags=["parameters"]
profile = "default"
seeds = None    # e.g. [42, 137]
ops = None      # e.g. ["add", "mul"]
workers = None  # processes training runs side by side (one CPU thread each)

# %%
import time
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

import gradtools.profiles
from gradtools import fidelity, paths, sed_claims, sed_study
from gradtools.cache import save_table
from gradtools.figures import save_figure

PAPER_MODEL = dict(d_model=128, n_heads=4, d_mlp=256, n_layers=2)
PAPER_TRAINING = dict(lr=1e-3, weight_decay=1.0, betas=(0.9, 0.98), batch_size=512, grad_clip=1.0, eval_every=25)
# conditions: per flavour, the conditions run on every seed; first_seed_conditions: those run on the first seed only.
# The control A is trained once per (op, seed) and serves both flavours.
cfg = gradtools.profiles.select(profile, {
    "smoke": dict(p=11, ops=["add"], seeds=[42], train_fraction=0.5, model=dict(d_model=32, n_heads=4, d_mlp=64, n_layers=2),
                  max_steps=60, eval_every=10, conditions={"update": "BCDE", "gradient": "BCDE"},
                  first_seed_conditions={"update": "", "gradient": ""}, k=3, window=20, sed_every=10,
                  wd0_conditions=["C"], wd0_max_steps=30, workers=1, device="cpu"),
    # 2 CPU cores: 7.3 minutes from scratch (measured)
    "default": dict(p=97, ops=["add"], seeds=[42, 137, 2024], train_fraction=0.5, model=PAPER_MODEL,
                    max_steps=6000, eval_every=25, conditions={"gradient": "CE", "update": ""},
                    first_seed_conditions={"gradient": "BD", "update": "C"}, k=3, window=20, sed_every=25,
                    wd0_conditions=[], wd0_max_steps=0, workers=2, device="cpu"),
    # the paper's design; 2 CPU cores: 70 minutes (measured)
    "paper": dict(p=97, ops=["add", "mul"], seeds=[42, 137, 2024], train_fraction=0.5, model=PAPER_MODEL,
                  max_steps=8000, eval_every=25, conditions={"update": "BCDE", "gradient": "BCDE"},
                  first_seed_conditions={"update": "", "gradient": ""}, k=3, window=20, sed_every=25,
                  wd0_conditions=["A", "C", "E"], wd0_max_steps=8000, workers=2,
                  device="cuda" if torch.cuda.is_available() else "cpu"),
}, seeds=seeds, ops=ops, workers=workers)
torch.set_num_threads(1)
# trained runs (not committed) under CACHE; each run's history and projection log under TABLES (committed in `paper`)
DATA, CACHE, TABLES = paths.data_dir(profile), paths.cache_dir(profile) / "sed", paths.job_tables_dir(profile) / "sed"
started = time.time()


def job(op, seed, condition, flavour, weight_decay=1.0, max_steps=None):
    # runs stop at the grokking step: only the step is needed here
    training = dict(PAPER_TRAINING, eval_every=cfg.eval_every, max_steps=max_steps or cfg.max_steps,
                    weight_decay=weight_decay, steps_after_grokking=0)
    return dict(cache=CACHE, ops=op, p=cfg.p, train_fraction=cfg.train_fraction, seed=seed, model=cfg.model,
                training=training, condition=condition, flavour=flavour, k=cfg.k, window=cfg.window, sed_every=cfg.sed_every, device=cfg.device)


def conditions_of(flavour, seed):
    """The conditions B-E run under `flavour` on `seed`."""
    return cfg.conditions[flavour] + (cfg.first_seed_conditions[flavour] if seed == cfg.seeds[0] else "")


flavours = [fl for fl in ("update", "gradient") if cfg.conditions[fl] or cfg.first_seed_conditions[fl]]
cfg

# %% [markdown]
# ## 1. Train every condition
#
# Each (op, seed, flavour, condition) is one cached run that stops at its grokking step (or at `max_steps`). The control A
# does not depend on the flavour, so one A run per (op, seed) serves both tables. Runs are spread over `workers`
# processes, op by op (an interrupted profile then has whole tables for its first ops: rerun it with `ops` set to
# those), the slow conditions (A, B, D) first within an op, weight decay 0 last.

# %%
keys, jobs = [], []
for op in cfg.ops:  # op by op, so that an interrupted profile has whole tables for the first ops
    for condition in "ABDCE":  # the slow conditions first, so the workers finish together
        for seed in cfg.seeds:
            for flavour in flavours if condition != "A" else ["control"]:
                if condition == "A" or condition in conditions_of(flavour, seed):
                    keys.append((op, seed, flavour, condition))
                    jobs.append(job(op, seed, condition, flavour if condition != "A" else flavours[0]))
for condition in cfg.wd0_conditions:  # gradient flavour, the paper's cleaner one; the paper does not say which it used
    keys.append((cfg.ops[0], cfg.seeds[0], "weight decay 0", condition))
    jobs.append(job(cfg.ops[0], cfg.seeds[0], condition, "gradient", weight_decay=0.0, max_steps=cfg.wd0_max_steps))
trained = dict(zip(keys, sed_study.cached_runs(jobs, workers=cfg.workers, records=TABLES)))
# the control listed under each flavour that ran any condition on that seed
runs = {k: r for k, r in trained.items() if k[2] != "control"}
runs.update({(op, seed, fl, "A"): trained[op, seed, "control", "A"]
             for op in cfg.ops for seed in cfg.seeds for fl in flavours if conditions_of(fl, seed)})
steps = pd.DataFrame([dict(op=op, seed=seed, flavour=fl, condition=c, grokking_step=r.grokking_step,
                           steps_trained=int(r.history.step.max()), final_test_acc=float(r.history.test_acc.iloc[-1]))
                      for (op, seed, fl, c), r in runs.items()])
save_table(steps, DATA / "sed_interventions_grokking_steps.parquet")
steps

# %% [markdown]
# ## 2. Grokking steps and speedups (tables 4 and 5)
#
# Speedup of condition X is `t_A / t_X` per seed (above 1: X groks sooner), then mean and standard deviation over seeds.
# The paper's means are shown beside ours.

# %%
PAPER = sed_claims.PAPER_GROKKING_STEPS  # tables 4 and 5: mean grokking step over seeds 42, 137, 2024
main = steps[steps.flavour.isin(flavours)].copy()
control = main[main.condition == "A"].set_index(["op", "seed", "flavour"]).grokking_step
main["speedup_vs_A"] = [control[o, s, f] / g if g else np.nan for o, s, f, g in
                        main[["op", "seed", "flavour", "grokking_step"]].itertuples(index=False)]
summary = (main.groupby(["flavour", "op", "condition"])
           .agg(mean_grokking_step=("grokking_step", "mean"), std_grokking_step=("grokking_step", "std"),
                mean_speedup=("speedup_vs_A", "mean"), std_speedup=("speedup_vs_A", "std"), seeds=("seed", "count"))
           .reset_index())
summary["paper_mean_grokking_step"] = [PAPER.get((f, o), {}).get(c, np.nan)
                                       for f, o, c in summary[["flavour", "op", "condition"]].itertuples(index=False)]
summary["paper_speedup"] = [PAPER[(f, o)]["A"] / PAPER[(f, o)][c] if (f, o) in PAPER else np.nan
                            for f, o, c in summary[["flavour", "op", "condition"]].itertuples(index=False)]
save_table(summary, DATA / "sed_interventions_speedups.parquet")
for (flavour, op), t in summary.groupby(["flavour", "op"], sort=False):
    print(f"\n{flavour} projection, {op} (table {4 if flavour == 'update' else 5} of the paper)")
    print(t.drop(columns=["flavour", "op"]).round(2).to_string(index=False))

# %%
panels = [(op, fl) for op in cfg.ops for fl in flavours]
fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.4), squeeze=False, sharey=True)
colors = dict(A="k", B="tab:orange", C="tab:blue", D="tab:olive", E="tab:green")
for ax, (op, fl) in zip(axes[0], panels):
    labelled = set()
    for (o, seed, f, c), run in sorted(runs.items()):
        if (o, f) == (op, fl):
            h = run.history
            ax.plot(h.step, h.test_acc, color=colors[c], lw=1, alpha=0.8, label=None if c in labelled else c)
            labelled.add(c)
    ax.axhline(0.95, color="grey", lw=0.8, ls=":")
    ax.set(title=f"{op}, {fl} projection", xlabel="step", ylabel="test accuracy")
    ax.legend(title="condition", fontsize=8)
save_figure(fig, "sed_interventions_test_accuracy_vs_step", profile)

# %% [markdown]
# Test accuracy against step for each condition and seed (runs stop at their grokking step; dotted line: the 0.95
# threshold). Conditions C and E (keep only rank 3) should rise first if the paper's claim holds; A, B and D together
# later.
#
# ## 3. How much of the natural update does each condition keep?
#
# A projected condition can only change training if it removes a real part of what the optimiser would have done.
# Every projected run logs, per step, with `u` the natural attention update (update flavour: AdamW's unprojected step,
# weight decay included; gradient flavour: the attention gradient AdamW would have received) and `Pi` the kept
# projection (`P` for C and E, `I - P` for B and D):
#
# * `kept_share = ||Pi u||^2 / ||u||^2`, the share of the natural update the condition keeps: near 1, the condition is
#   the control in all but name; near 0, it keeps almost nothing of it;
# * `step_kept_share`, the same for the step actually taken (1 under update projection by construction; under gradient
#   projection AdamW's per-coordinate scaling and its weight decay move the step out of the kept subspace);
# * `attention_norm`, the norm of all attention weights after the step. Under update projection the weight decay is
#   projected with the rest, so C and E barely decay the attention weights outside their rank-3 subspace.
#
# The table gives, per run, the mean over its steps; the figure the kept share against step (means over 25-step bins).

# %%
projection = sed_study.projection_log(runs)
shares = sed_study.projection_summary(projection)
save_table(shares, DATA / "sed_interventions_kept_share.parquet")
binned = sed_study.projection_log(runs, every=25)
save_table(binned, DATA / "sed_interventions_kept_share_vs_step.parquet")
shares.round(4)

# %%
fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.4), squeeze=False, sharey=True)
for ax, (op, fl) in zip(axes[0], panels):
    labelled = set()
    for (c, seed), b in binned[(binned.op == op) & (binned.flavour == fl)].groupby(["condition", "seed"]):
        ax.plot(b.step, b.kept_share, color=colors[c], lw=1, alpha=0.8, label=None if c in labelled else c)
        labelled.add(c)
    ax.set(yscale="log", title=f"{op}, {fl} projection", xlabel="step", ylabel="kept share of the natural update")
    if labelled:
        ax.legend(title="condition", fontsize=8)
save_figure(fig, "sed_interventions_kept_share_vs_step", profile)


# %%
display(Markdown("\n".join(sed_claims.projection_reading(shares, steps))))

# %% [markdown]
# **Reading it for C under update projection.** The question from notebook 05's earlier default run was why keeping
# only the SED subspace under update projection groked no sooner than the control, while the paper's groked 2x sooner.
# The lines above answer it by measurement, in three steps:
#
# * *Does C change the step at all?* A random rank-3 subspace of the attention space keeps about `3 / |a|` of any
#   update (E's share); if C's kept share were close to 1, C would take nearly the natural step and grok like A. A
#   share well below 1 means C does constrain the attention update, and the explanation lies elsewhere.
# * *What else differs between the flavours?* Under update projection the weight decay is projected with the rest of
#   AdamW's step, so the attention weights outside the kept subspace neither learn nor decay: their norm stays near its
#   initial value. Under gradient projection AdamW still decays every attention weight: the norm falls.
# * *Which goes with the speedup?* E under update projection decides it: a random rank-3 subspace keeps almost
#   nothing of AdamW's step, weight decay included, so the attention weights stay at their initialisation (their norm
#   at 100%), neither learning nor decaying. The `paper` profile runs it (the `default` profile does not): there E
#   groks earliest of all conditions (the lines above and the speedup table), with frozen attention weights, so the
#   attention weights' decay is not what speeds grokking; freezing them is enough. C under the same flavour differs
#   from E only in what it lets through: the attention motion along the top-3 SED directions of AdamW's own recent
#   update (a few percent of the update by its kept share). That motion alone brings grokking back to the control's
#   pace, so in this flavour the SED subspace is where the attention update that delays grokking lives, and SED vs
#   random is not within seed variation (the claims table). Under gradient projection both C and E remove nearly all
#   of the attention gradient and AdamW's weight decay shrinks the attention weights; both grok early, as in the paper.
#
# ## 4. Weight decay 0
#
# The same training with weight decay 0 for the conditions in `wd0_conditions` (gradient flavour, first op and seed),
# capped at `wd0_max_steps`. The paper: none of A, C, E groks within 8000 steps (seed 42). The `default` profile runs
# none (the claim is then not measured); `paper` runs A, C and E for 8000 steps.

# %%
wd0 = steps[steps.flavour == "weight decay 0"]
save_table(wd0, DATA / "sed_interventions_weight_decay_0.parquet")
if cfg.wd0_conditions:
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for c in cfg.wd0_conditions:
        h = runs[cfg.ops[0], cfg.seeds[0], "weight decay 0", c].history
        ax.plot(h.step, h.test_acc, color=colors[c], label=f"{c}, wd 0")
        ax.plot(h.step, h.train_acc, color=colors[c], ls="--", lw=0.8, label=f"{c}, wd 0 (train)")
    ax.set(xlabel="step", ylabel="accuracy", title=f"{cfg.ops[0]}, weight decay 0")
    ax.legend(fontsize=8)
    save_figure(fig, "sed_interventions_weight_decay_0_accuracy_vs_step", profile)
wd0


# %% [markdown]
# ## 5. Verdict: which of the paper's claims reproduced
#
# One row per claim, decided by `gradtools.sed_claims` from the grokking steps above (so it is right for whatever
# profile ran). Speedups are per seed against the same seed's control; a claim checked on several ops or seeds is
# *reproduced* when it holds on every one this profile ran and *partly* when on some (the `why` column names the runs
# where it fails). Criteria: keeping only rank 3 (C, E) must give a speedup of at least 1.5 (the paper's ~2x);
# removing a random rank 3 (D), and removing SED under gradient projection (B), must grok within 15% of the control's
# step; removing SED under update projection must grok at least 5% sooner (the paper's 1.21x on addition). SED vs
# random is Welch's t-test of C's grokking steps against E's over seeds (not rejected at 5%: within seed variation);
# it needs both on two or more seeds, which the `default` profile has for the gradient flavour.

# %%
claims = fidelity.save_claims("05_sed_interventions", sed_claims.intervention_claims(steps), profile)
print(f"notebook compute time: {time.time() - started:.0f} s")
display(Markdown(fidelity.claims_markdown(claims)))

# %% [markdown]
# **How to read the results.** The numbers are in the claims table above, the speedup tables of section 2 and the
# kept shares of section 3.
#
# * **Keeping only rank 3 accelerates grokking about 2x** (C: the SED subspace, E: a random one; the paper's 1.99-2.36x).
#   Gradient projection is the paper's cleaner experiment, run on three seeds in the `default` profile; the `paper`
#   profile adds mul and the update flavour.
# * **C under update projection** is the one condition whose speedup does not reproduce. Our update-SED basis is the
#   top 3 of the last 20 AdamW moves (25 steps each); the paper does not say how its intervention basis was built.
#   Section 3 measures that C does constrain the step (its kept share is a few percent) and that E, which freezes the
#   attention weights, groks earliest: the SED directions of AdamW's own update carry the attention motion that sets
#   the control's grokking step. A basis built otherwise (the paper's is unstated) could let less of it through.
# * **SED vs random within seed variation** is tested over seeds (Welch): it holds under gradient projection and fails
#   under update projection (C as slow as the control, E the fastest), where the paper has the two within 15%.
# * **Removing the SED subspace (B)** should not prevent grokking. The paper has B speeding grokking under update
#   projection and not under gradient projection, its "AdamW projection-pipeline artefact".
# * **Removing a random rank 3 (D)** should change nothing, in both flavours.
# * **Weight decay 0.** The paper ran A, C, E for 8000 steps and none grokked; the `paper` profile does the same
#   (gradient flavour: the paper does not say which).
# * The `default` profile runs addition only, B, D and the update flavour on seed 42 only (the `why` column says
#   "one seed" for those rows); the `paper` profile runs every condition on seeds 42, 137, 2024 on add and mul.
