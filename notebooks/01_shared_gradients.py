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
# # 01 — Shared gradient discovery on IOI, greater-than and one-month-later (study 1)
#
# The paper (*shared gradient discovery*, section 3 and appendices B-C) asks whether
# examples that share a generalising solution (a circuit) develop **aligned gradients**
# while the circuit emerges. For every checkpoint of a suite of language models this
# notebook measures, on prompt datasets with one target token each:
#
# * the **target loss and probability** of each dataset (IOI, GT, OML and their controls);
# * the **gradient alignment** within each dataset: mean and std over pairs `i != j` of
#   `cos(g_i, g_j)`, `g_i` the gradient of example i's target loss w.r.t. all
#   non-embedding linear layers, from the Gram kernel (`gradtools.gradient_gram`, appendix D.2);
# * the **cross alignment** between a task and each control on the same prompts (appendix B.4);
# * **destructive interference** of training batches on the IOI loss (figure 2, right):
#   `c_j = <grad L_j, grad L_IOI>` for the training sequences j that follow the checkpoint,
#   `DI = 1 - |sum_j c_j| / sum_j |c_j|` per training batch;
# * **name-unembedding clustering** (appendix B.3): mean pairwise cosine of the
#   unembedding rows of the 99 IOI names, against as many random tokens.
#
# Datasets (`gradtools.prompt_datasets`; every slot word checked to be one token):
# IOI `Then, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to` -> `[A]` with the
# controls IOI-rand (a random token), IOI-name (a random other name), IOI-copy (`[B]`);
# GT `The [EVENT] lasted from the year [C][YY] to the year [C]` -> a `ZZ > YY` with GT-year
# (random two digits), GT-less (`ZZ < YY`), GT-copy (`YY`); OML `... from the month of [M]
# to the month of` -> the next month with OML-month (a random month), OML-copy (`[M]`).
#
# Deviations from the paper's setup (default profile), beside the paper's value:
#
# | setting | here (default) | the paper |
# |---|---|---|
# | models | the suite of notebook 00 (corpus v6): d64-L2, d80-L2, d96-L2 (0.10-0.22M non-embedding parameters), one seed each; the largest size also with the other seeds of notebook 00's seed study (a checkpoint every 250 steps and at the powers of two) | OLMo 14M-472M (zsl checkpoints), one run each |
# | checkpoints | every one saved (each 100 steps) inside each size's IOI, GT and OML windows (10%-90% of the rise), plus 10 log-spaced | steps 2^i of 2^18 |
# | prompts | 96 per dataset | IOI 1000, GT 1000, OML 408 (the `paper` profile) |
# | parameters | non-embedding linear layers; IOI also over all parameters (D.2) | non-embedding parameters ("consistent with the full parameters", D.2) |
# | destructive interference | 256 training sequences after each checkpoint; batches of 32 x 64 tokens (the suite's) and of 8, 16, 64, 128 sequences; against a random-sign null | training batches of 0.5M tokens; no null |
# | IOI-rand target | uniform over the 2048-word vocabulary; also frequency-matched (IOI-rand-freq) | uniform over OLMo's ~50k tokens |
# | IOI-name loss | the IOI-name control's loss: one random other name per prompt (the gradients need one target); notebook 00 uses the exact mean over the other names | one random other name |
#
# **Checkpoints** come from one parameter, `source`: `None` is the local suite of this
# profile (`notebooks/00_checkpoint_suite.ipynb` trains it; in `smoke` a tiny two-size
# suite is trained here on the fly), `"hf:EleutherAI/pythia-14m"` reads every `stepN`
# revision of a hub model from the local Hugging Face cache, and a folder path reads its
# `step-N/` (or `<size>/step-N/`) checkpoints. Destructive interference needs the
# training data, so it is measured on the local suite only.
#
# **A new task** plugs in through `task`: the name of a function
# `f(tokenizer, n, seed) -> {"task": PromptDataset, "control": PromptDataset, ...}`
# as `"package.module:function"`, e.g. `"gradtools.subject_verb_agreement:subject_verb_agreement"`;
# its losses and alignments are plotted after the paper's figures.

# %% tags=["parameters"]
profile = "default"  # smoke | default | paper
source = None        # checkpoint source: None (the profile's local suite), "hf:NAME[,NAME]", or a folder
sizes = None         # the sizes to measure (None: all), e.g. ["OLMo-14M", "OLMo-37M"] of hf:mirandrom/zsl-checkpoints
revisions = None     # steps per size: None (the profile's choice, see Checkpoints), "all", or a list of steps
task = None          # an extra task family "package.module:function", e.g. "gradtools.subject_verb_agreement:subject_verb_agreement"
task_n = None        # its number of prompts (None: the profile's n)
n_prompts = None     # prompts per family (None: the profile's), e.g. the paper profile at reduced n on a CPU
dense_windows = None  # local suite: every checkpoint inside each size's emergence windows (None: the profile's)
seed_runs = None     # local suite: also measure the largest size's other seeds (notebook 00's seed study; None: the profile's)

# %%
import time

import matplotlib.pyplot as plt
import pandas as pd
import torch
import transformers
from IPython.display import Markdown, display

from gradtools import cache, fidelity, paths, profiles
from gradtools import checkpoint_suite as cs
from gradtools import emergence_windows as ew
from gradtools import shared_gradients_claims as sgc
from gradtools import suite_search
from gradtools.checkpoint_suite_claims import load_recipe_probes
from gradtools.checkpoint_sources import open_folder, open_source, revision_selection
from gradtools.figures import save_figure
from gradtools.prompt_tasks import PAPER_FAMILIES
from gradtools.shared_gradients import parallel_study_table, source_spec, study_table, wide

torch.set_num_threads(1)  # the 2-core budget is shared; one thread keeps timings comparable
transformers.utils.logging.disable_progress_bar()

cfg = profiles.select(profile, {
    # smoke: a tiny suite trained here in seconds (no capability emerges); checks that everything runs
    "smoke": dict(n={"ioi": 10, "gt": 10, "oml": 10}, max_checkpoints=3, sizes=None, n_training=8,
                  training_batch_size=4, interference_batch_sizes=(2, 8), all_parameters=("ioi",),
                  dense_windows=False, seed_runs=False, block_size=None, workers=2,
                  tiny_suite=dict(sizes={"d16-L1": dict(d_model=16, n_layers=1, n_heads=2),
                                         "d24-L2": dict(d_model=24, n_layers=2, n_heads=2)},
                                  recipe=dict(vocab_size=600, n_stories=2_000, wiki_chars=30_000, context=32,
                                              batch_size=4, steps=12, lr=3e-3))),
    # default: the suite of notebook 00 (three sizes); every checkpoint inside each size's emergence
    # windows plus 10 log-spaced ones, 96 prompts a dataset; DI over 256 training sequences, in batches of
    # 32 (the suite's) and of 8, 16, 64, 128
    "default": dict(n={"ioi": 96, "gt": 96, "oml": 96}, max_checkpoints=10, sizes=None, n_training=256,
                    training_batch_size=32, interference_batch_sizes=(8, 16, 64, 128), all_parameters=("ioi",),
                    dense_windows=True, seed_runs=True, block_size=None, workers=2, tiny_suite=None),
    # paper: the datasets' full sizes (1000 / 1000 / 408), every checkpoint, Gram in blocks (GPU)
    "paper": dict(n={"ioi": 1000, "gt": 1000, "oml": None}, max_checkpoints=None, sizes=None, n_training=1024,
                  training_batch_size=64, interference_batch_sizes=(16, 32, 128, 256, 512), all_parameters=("ioi",),
                  dense_windows=False, seed_runs=False, block_size=256, workers=1, tiny_suite=None),
})
if n_prompts is not None and not (isinstance(n_prompts, int) and n_prompts >= 2):
    raise ValueError(f"n_prompts={n_prompts!r}: give None (the profile's sizes) or a number of prompts >= 2")
DATA = paths.data_dir(profile)
t_start = time.time()

# %% [markdown]
# ## Profiles
#
# * `smoke`: a tiny two-size suite trained here in seconds, 10 prompts a dataset, 3
#   checkpoints a size: checks that every cell and figure runs (no capability emerges).
# * `default` (a 2-core laptop, within 20 minutes once the suite is trained): the suite of
#   `00_checkpoint_suite` (three sizes), every checkpoint inside each size's emergence windows
#   plus 10 log-spaced ones, 96 prompts a dataset, 256 training sequences for destructive
#   interference (batches of 32, the suite's, and of 8, 16, 64, 128, each against its
#   random-sign null), IOI's alignment over all parameters as well (appendix D.2).
# * `paper` (a GPU): the datasets' full sizes (IOI 1000, GT 1000, OML 408), every
#   checkpoint, Gram in blocks of 256, 512 training sequences in batches of 64. On the
#   real suites: `source = "hf:EleutherAI/pythia-14m,EleutherAI/pythia-70m,EleutherAI/pythia-160m"`
#   after downloading their `stepN` revisions into the Hugging Face cache where there is a
#   network (`huggingface-cli download EleutherAI/pythia-14m --revision step1000`, one
#   call per revision), or a folder of `step-N/` checkpoints. Models run on CUDA when it
#   is there. Under `torchrun`, `run_jobs` shares the checkpoints between GPUs. Pythia's
#   BPE tokenizer splits a few slot words (GPT-NeoX-20B: the name 'Nora', the events
#   'crusade', 'excavation', 'truce'): they are left out for that tokenizer, with a note
#   naming them, and each dataset records the words it used.
# * **The real suites.** `source = "hf:EleutherAI/pythia-14m,EleutherAI/pythia-70m"`
#   (revisions `stepN`; 154 per size) or `source = "hf:mirandrom/zsl-checkpoints"`, the
#   paper's own six OLMo models (revisions `OLMo-<size>-stepN`, N = 2^i; `sizes` picks
#   e.g. `["OLMo-14M", "OLMo-37M"]`). The revisions are selected first (`revisions`: the
#   profile's count log-spaced, `"all"`, or a list of steps) and, where there is a
#   network, only the selected ones the Hugging Face cache lacks are downloaded (model
#   weights and configuration, resumable); offline (`HF_HUB_OFFLINE=1`) the cache is read
#   and the selected revisions it lacks are named. The zsl checkpoints (OLMo's `model.pt`
#   + `config.yaml`) load as `transformers` Llama models that compute what OLMo computes
#   (`gradtools.olmo_checkpoints`, tested against the reference `olmo.model.OLMo`), so
#   every kernel runs unchanged. Cost of the paper profile: see the README
#   (`benchmarks/study1_paper_cost.py`).

# %% [markdown]
# ## Checkpoints
#
# The source is opened before any compute: a missing suite, folder or hub revision stops
# here with what to do. On the local suite with `dense_windows` (the default profile), each
# size's checkpoints are **every one the suite saved inside that size's emergence windows**
# (IOI, GT, OML: where the capability's curve in notebook 00's table makes 10% to 90% of its
# rise, `gradtools.emergence_windows`) plus `max_checkpoints` log-spaced ones over the run, so
# "alignment rises before and with the loss drop" is measured where it happens. Elsewhere,
# `max_checkpoints` log-spaced checkpoints a size (`revisions` overrides both).

# %%
def open_checkpoints():
    """(source, window table or None, where the source is: what `open_source` takes), the checkpoints
    selected: dense emergence windows (local suite), else log-spaced or ``revisions``."""
    if source is None and cfg.tiny_suite is not None:
        # smoke: train a tiny two-size suite with the suite's own code, into its own cache folder
        suite = cs.suite_dir(profile, name="checkpoint_suite_study1")
        recipe = cs.SuiteRecipe(**cfg.tiny_suite["recipe"])
        for size, shape in cfg.tiny_suite["sizes"].items():
            cs.train_size(suite, size, shape, recipe, [0, recipe.steps], progress=False)
        return open_folder(suite, name="smoke suite").select(
            sizes or cfg.sizes, **revision_selection(revisions, cfg.max_checkpoints)), None, str(suite)
    dense = cfg.dense_windows if dense_windows is None else dense_windows
    if not (dense and source is None and revisions is None):
        # a hub source downloads only the selected revisions it lacks
        return open_source(source, profile, sizes=sizes or cfg.sizes,
                           **revision_selection(revisions, cfg.max_checkpoints)), None, source
    capabilities_path = DATA / "suite_capabilities.parquet"
    if not capabilities_path.exists():
        raise FileNotFoundError(f"{capabilities_path} is missing: run notebook 00 first "
                                f"(`python -m gradtools.runner --profile {profile} 00_checkpoint_suite`), "
                                "or set dense_windows=False")
    every = open_source(None, profile, sizes=sizes or cfg.sizes)
    return (*ew.select_in_windows(every, pd.read_parquet(capabilities_path), cfg.max_checkpoints), None)


src, window_table, src_location = open_checkpoints()
print(f"source {src.name!r}: sizes {src.sizes}")
for size in src.sizes:
    print(f"  {size}: {len(src.steps(size))} steps {src.steps(size)}")
print("training data for destructive interference:", src.training_batches is not None)
if window_table is not None:
    cache.save_table(window_table, DATA / "shared_gradients_windows.parquet")
    display(window_table)

# %% [markdown]
# ## One table: every checkpoint, every dataset
#
# `gradtools.shared_gradients.study_table` builds the datasets for the source's tokenizer and
# runs `gradtools.alignment.checkpoint_table` on each checkpoint through
# `gradtools.distributed.run_jobs`: each checkpoint's rows are cached under
# `data/cache/<profile>/shared_gradients-<settings hash>/`, so a rerun or an interrupted run
# only computes what is missing. On a CPU the checkpoints are shared round-robin between
# `workers` processes, one core each (`shared_gradients.parallel_study_table`); under
# `torchrun` between its processes. The tidy table `(size, step, dataset, metric, value)` is written to
# `data/shared_gradients.parquet`.

# %%
families = ["ioi", "gt", "oml"] + ([task] if task else [])
base_n = cfg.n if n_prompts is None else {family: n_prompts for family in cfg.n}
n = dict(base_n, **({task: task_n or base_n["ioi"]} if task else {}))
t0 = time.time()
study = dict(families=families, n=n, cache_root=str(paths.cache_dir(profile)), n_training=cfg.n_training,
             training_batch_size=cfg.training_batch_size, block_size=cfg.block_size,
             interference_batch_sizes=list(cfg.interference_batch_sizes), all_parameters=cfg.all_parameters)


def measure(checkpoints, location):
    """The study table of a source; on a CPU its checkpoints shared between `workers` processes."""
    if cfg.workers > 1 and not torch.cuda.is_available():
        return parallel_study_table(source_spec(checkpoints, location, profile), study, workers=cfg.workers)
    return study_table(checkpoints, **study)


table = measure(src, src_location)
cache.save_table(table, DATA / "shared_gradients.parquet")
W = wide(table)
print(f"{len(table)} rows, {table[['size', 'step']].drop_duplicates().shape[0]} checkpoints, {time.time() - t0:.0f} s")
display(W[W.step == W.step.max()].round(3).head(30))

# %%
SIZES = src.sizes
COLORS = dict(zip(SIZES, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
STYLES = ["-", "--", ":", "-."]


def curve(dataset, metric, size):
    """(steps, values) of one metric of one dataset and size, step 0 left out (log axes; it is in the tables)."""
    return sgc.curve(W, dataset, metric, size)


def show(fig, name):
    """Save the figure (PNG and PDF, `gradtools.figures.save_figure`) and show it."""
    fig.tight_layout()
    save_figure(fig, name, profile)
    plt.show()


def family_figure(datasets, metric, title, name, band=None, ylabel=None):
    """One panel per size, one line per dataset; ``band``: a std metric shaded around the line."""
    fig, axes = plt.subplots(1, len(SIZES), figsize=(5 * len(SIZES), 3.6), squeeze=False, sharey=True)
    for ax, size in zip(axes[0], SIZES):
        for k, ds in enumerate(datasets):
            x, y = curve(ds, metric, size)
            if len(x) == 0:
                continue
            line, = ax.plot(x, y, STYLES[k % 4], marker=".", ms=3, label=ds)
            if band:
                _, s = curve(ds, band, size)
                ax.fill_between(x, y - s, y + s, color=line.get_color(), alpha=0.12)
        ax.set(xscale="log", xlabel="step", title=size)
        ax.axhline(0, color="grey", lw=0.5) if metric.startswith("cos") else None
    axes[0, 0].set_ylabel(ylabel or metric)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(title)
    show(fig, name)


# %% [markdown]
# ## Figure 2 — IOI: loss, gradient alignment, destructive interference
#
# Paper: IOI loss improves from step 200-500 on; IOI gradient alignment rises *before* and
# with that drop, then stabilises; training batches interfere destructively on IOI
# (DI near 1), so random batches do not consistently improve IOI.

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
for size in SIZES:
    x, y = curve("ioi", "loss", size)
    axes[0].plot(x, y, color=COLORS[size], marker=".", ms=3, label=size)
    x, y = curve("ioi", "cos_mean", size)
    _, s = curve("ioi", "cos_std", size)
    axes[1].plot(x, y, color=COLORS[size], marker=".", ms=3, label=size)
    axes[1].fill_between(x, y - s, y + s, color=COLORS[size], alpha=0.12)
    x, y = curve("training x ioi", "di_mean", size)
    if len(x):
        _, s = curve("training x ioi", "di_std", size)
        axes[2].plot(x, y, color=COLORS[size], marker=".", ms=3, label=size)
        axes[2].fill_between(x, y - s, y + s, color=COLORS[size], alpha=0.12)
        xn, null = curve("training x ioi", "di_null_mean", size)
        axes[2].plot(xn, null, ":", color=COLORS[size], label=f"{size} random-sign null")
if not axes[2].lines:
    axes[2].text(0.5, 0.5, "not measured: this source has no training data", ha="center", transform=axes[2].transAxes)
axes[0].set(xscale="log", xlabel="step", ylabel="IOI target loss (nats)", title="IOI loss")
axes[1].set(xscale="log", xlabel="step", ylabel="mean cos(g_i, g_j) +- std", title="IOI gradient alignment")
axes[2].set(xscale="log", xlabel="step", ylabel="DI = 1 - |sum c| / sum |c|", ylim=(0, 1.05),
            title=f"Destructive interference on IOI (batches of {cfg.training_batch_size}; dotted: null)")
axes[0].legend()
show(fig, "ioi_loss_alignment_interference")

# %% [markdown]
# ### Is the interference destructive? Against a null, at several batch sizes
#
# DI alone does not say "destructive": even contributions of random sign cancel in part, and
# more so in larger batches. The null (`gradtools.alignment.sign_null`) is the DI of the same
# per-sequence contributions with random signs: DI at the null means the batch's sequences
# push the IOI loss up and down as if independently; below it, they agree (the batch
# consistently lowers or raises it); above it, they cancel more than chance. The paper's batches
# hold 0.5M tokens; the suite's hold 32 x 64 = 2048, so DI is also measured on batches of 8 to
# 128 sequences cut from the same 256 training sequences after each checkpoint (so 4 batches of 64 and
# 2 of 128 per checkpoint: their lowering shares move in steps of 1/4 and 1/2, and the medians over
# checkpoints carry the comparison).

# %%
batch_sizes = sorted({cfg.training_batch_size, *sgc.interference_batch_sizes(W)})
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for size in SIZES:
    row = sgc.size_summary(W, size)
    suffix = {b: "" if b == cfg.training_batch_size else f"_b{b}" for b in batch_sizes}
    di = [row.get(f"di_median{suffix[b]}", float("nan")) for b in batch_sizes]
    null = [row.get(f"di_null_median{suffix[b]}", float("nan")) for b in batch_sizes]
    lowering = [row.get(f"lowering_share{suffix[b]}", float("nan")) for b in batch_sizes]
    axes[0].plot(batch_sizes, di, "-o", color=COLORS[size], label=f"{size} DI")
    axes[0].plot(batch_sizes, null, ":", color=COLORS[size], label=f"{size} null")
    axes[1].plot(batch_sizes, lowering, "-o", color=COLORS[size], label=size)
axes[0].set(xscale="log", xlabel="batch size (sequences)", ylabel="median DI over checkpoints",
            title="DI vs the random-sign null")
axes[1].axhline(0.5, color="grey", lw=0.5)
axes[1].set(xscale="log", xlabel="batch size (sequences)", ylabel="share of batches", ylim=(0, 1.05),
            title="Batches whose step lowers the IOI loss")
for ax in axes:
    ax.set_xticks(batch_sizes, [str(b) for b in batch_sizes])
    ax.minorticks_off()
axes[0].legend(fontsize=7)
show(fig, "ioi_interference_vs_null_by_batch_size")

# %% [markdown]
# ### The IOI emergence window, step by step
#
# Every measured checkpoint inside each size's IOI window (grey band: notebook 00's IOI margin, exact
# over the other names on 500 prompts, 10% to 90% of its rise), on a linear step axis: this notebook's
# IOI margin (IOI-name loss minus IOI loss, one sampled name on 96 prompts, so its own 10%-90% steps,
# the `ioi_window_*` columns of the summary, can sit a little apart from the band) and the mean cosine
# of IOI and IOI-name. "Before and with" reads off this figure.

# %%
fig, axes = plt.subplots(2, len(SIZES), figsize=(5 * len(SIZES), 6), squeeze=False, sharex="col")
for k, size in enumerate(SIZES):
    ioi_win = window_table[(window_table["size"] == size) & (window_table.capability == "ioi")] \
        if window_table is not None else pd.DataFrame()
    x, loss = curve("ioi", "loss", size)
    _, name_loss = curve("ioi_name", "loss", size)
    if len(ioi_win):
        a, b = int(ioi_win.start.iloc[0]), int(ioi_win.end.iloc[0])
        pad = max(b - a, 500)
        keep = (x >= a - pad) & (x <= b + pad)
        for ax in axes[:, k]:
            ax.axvspan(a, b, color="grey", alpha=0.15)
    else:
        keep = x > 0
    axes[0, k].plot(x[keep], (name_loss - loss)[keep], ".-", color=COLORS[size])
    for ds, ls in (("ioi", "-"), ("ioi_name", "--")):
        xs, y = curve(ds, "cos_mean", size)
        axes[1, k].plot(xs[keep], y[keep], ls, marker=".", ms=4, label=ds)
    axes[0, k].set(title=size + ("" if len(ioi_win) else " (no IOI window)"), ylabel="IOI margin (nats)")
    axes[1, k].set(xlabel="step", ylabel="mean pairwise cosine")
    axes[1, k].legend(fontsize=8)
show(fig, "ioi_emergence_window")

# %% [markdown]
# ## Figure 3 — IOI against IOI-name and IOI-copy
#
# Paper: the controls' losses and alignments overlap IOI early, then diverge — IOI-name
# first (near 4k steps), IOI-copy later (near 20k), with control alignment going down.

# %%
family_figure(["ioi", "ioi_name", "ioi_copy"], "loss", "Target loss: IOI and its name / copy controls",
              "ioi_name_copy_losses", ylabel="target loss (nats)")
family_figure(["ioi", "ioi_name", "ioi_copy"], "cos_mean", "Gradient alignment (mean +- std): IOI and controls",
              "ioi_name_copy_alignment", band="cos_std", ylabel="mean pairwise cosine")

# %% [markdown]
# ## Figure 4 — IOI-rand: no rise
#
# Paper (B.2): the random-target control shows no alignment rise like IOI's, so IOI's is not
# explained by structure shared by the prompts alone.
#
# Here IOI-rand (a target drawn uniformly from the 2048-word vocabulary, as the paper draws from
# OLMo's) is joined by **IOI-rand-freq**: targets drawn from tokens as frequent in the suite's
# training data as the names (`prompt_datasets.ioi_rand_freq`, the 5 nearest in log count to each
# name). Most of a uniform draw is rare words; if IOI-rand's rise comes from its targets' rarity
# (every rare target's gradient pushes the same frequent tokens down), IOI-rand-freq rises less.
# The unembedding's anisotropy (mean cosine of random tokens' unembedding rows, dotted in figure 5)
# is the other half of that explanation.

# %%
rand_sets = ["ioi", "ioi_rand"] + (["ioi_rand_freq"] if "ioi_rand_freq" in set(W.dataset) else [])
family_figure(rand_sets, "cos_mean", "Gradient alignment: IOI vs IOI-rand (uniform) and IOI-rand-freq",
              "ioi_rand_alignment", band="cos_std", ylabel="mean pairwise cosine")
family_figure(rand_sets, "loss", "Target loss: IOI vs IOI-rand (uniform) and IOI-rand-freq", "ioi_rand_losses",
              ylabel="target loss (nats)")

# %% [markdown]
# ## Figure 5 — name unembeddings cluster
#
# Paper (B.3): the unembedding rows of the IOI names become clustered while IOI-name's loss
# and alignment improve (the "predict any name" shared solution).

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for size in SIZES:
    for metric, ls in (("names", "-"), ("random", ":")):
        x, y = curve("name unembeddings", metric, size)
        axes[0].plot(x, y, ls, color=COLORS[size], label=f"{size} {metric}")
    x, y = curve("ioi_name", "loss", size)
    axes[1].plot(x, y, color=COLORS[size], label=size)
axes[0].set(xscale="log", xlabel="step", ylabel="mean pairwise cosine of unembedding rows",
            title="Name unembeddings (solid) vs random tokens (dotted)")
axes[1].set(xscale="log", xlabel="step", ylabel="IOI-name loss (nats)", title="IOI-name loss")
axes[0].legend(fontsize=8)
show(fig, "name_unembedding_clustering")

# %% [markdown]
# ## Figure 6 — alignment between IOI and its controls
#
# Appendix B.4: cosines between IOI examples and IOI-name / IOI-copy examples (pairs of
# different prompts). Paper: they rise with the within-control alignment, then fall, and
# turn negative for the larger models only.

# %%
family_figure(["ioi x ioi_name", "ioi x ioi_copy", "ioi x ioi_rand"], "cos_mean",
              "Cross alignment: cos(g_IOI,i , g_control,j), i != j", "ioi_control_cross_alignment",
              band="cos_std", ylabel="mean cosine")

# %% [markdown]
# ## Figures 7-9 — greater-than (GT)
#
# Paper (C.2): an initial alignment rise shared with the controls, then a drop for all;
# later alignment rises again for GT-less and GT-copy while their losses get worse (the
# model learns to suppress wrong years) and GT's loss and probability improve.

# %%
GT = ["gt", "gt_year", "gt_less", "gt_copy"]
family_figure(GT, "cos_mean", "Figure 7: gradient alignment, GT and controls", "gt_alignment", band="cos_std",
              ylabel="mean pairwise cosine")
family_figure(GT, "loss", "Figure 8: target loss, GT and controls", "gt_losses", ylabel="target loss (nats)")
family_figure(GT, "prob", "Figure 9: target probability (one year), GT and controls", "gt_probabilities",
              ylabel="mean p(target)")
family_figure(["gt"], "prob_diff", "GT: P(ZZ > YY) - P(ZZ <= YY) (Hanna et al.)", "gt_probability_difference",
              ylabel="probability difference")

# %% [markdown]
# ## Figures 10-12 — one month later (OML)
#
# Paper (C.3): an initial alignment rise shared with the controls, a drop when the loss
# stops improving, and for OML (unlike GT) a second rise; learning OML is largely
# suppressing the copy of the prompt's month.

# %%
OML = ["oml", "oml_month", "oml_copy"]
family_figure(OML, "cos_mean", "Figure 10: gradient alignment, OML and controls", "oml_alignment", band="cos_std",
              ylabel="mean pairwise cosine")
family_figure(OML, "loss", "Figure 11: target loss, OML and controls", "oml_losses", ylabel="target loss (nats)")
family_figure(OML, "prob", "Figure 12: target probability (one month), OML and controls", "oml_probabilities",
              ylabel="mean p(target)")

# %% [markdown]
# ## A plugged-in task (the `task` parameter)
#
# Drawn only when `task` names a family: its losses and alignments, and its cross alignment
# with each control.

# %%
if task:
    paper_datasets = {d for names in PAPER_FAMILIES.values() for d in names} | {"training x ioi", "name unembeddings"}
    names = [d for d in table.dataset.unique() if d.split(" x ")[0] not in paper_datasets]  # the task first
    main = [d for d in names if " x " not in d]
    family_figure(main, "loss", f"Target loss: {task}", "task_losses", ylabel="target loss (nats)")
    family_figure(main, "cos_mean", f"Gradient alignment: {task}", "task_alignment", band="cos_std",
                  ylabel="mean pairwise cosine")
    family_figure([d for d in names if " x " in d], "cos_mean", f"Cross alignment: {task}",
                  "task_cross_alignment", band="cos_std", ylabel="mean cosine")
else:
    print("no extra task (set `task` to plug one in)")


# %% [markdown]
# ## Over the seeds of the largest size
#
# Each size of the suite is one training run. Notebook 00's seed study trains the largest size with other
# seeds too (recipe-search runs of the same recipe, `python -m gradtools.suite_search`, a checkpoint every
# 250 steps; its `seeds` table, `data/suite_seeds.parquet`). With `seed_runs` (the default profile), this
# notebook measures each of them as it measures the suite: every checkpoint inside the run's emergence
# windows (from its metrics in notebook 00's probes table) plus `max_checkpoints` log-spaced ones, the same
# datasets and settings (`gradtools.suite_search.seed_sources`). Rows go to
# `data/shared_gradients_seeds.parquet`, the suite's own run included, with `size` naming the seed
# (`d96-L2 seed 1`); `gradtools.shared_gradients_claims.seed_claims` decides every claim that holds per size
# over the seeds instead (which seeds learn IOI: notebook 00's seeds table), as extra rows of the claims
# table below (`..., over 3 seeds of d96-L2`). The two claims that compare sizes are left out.

# %%
use_seeds = cfg.seed_runs if seed_runs is None else seed_runs
seeds_path = DATA / "suite_seeds.parquet"
seed_rows = []
seeds = pd.read_parquet(seeds_path) if seeds_path.exists() else None
largest = None if seeds is None else seeds["size"].iloc[0]
if (use_seeds and source is None and cfg.tiny_suite is None and seeds is not None and largest in SIZES
        and (seeds.source != "suite").any()):
    label = {int(r.seed): f"{largest} seed {r.seed}" for r in seeds.itertuples()}
    suite_seed = int(seeds[seeds.source == "suite"].seed.iloc[0])
    parts = [table[table["size"] == largest].assign(size=label[suite_seed])]
    for run in suite_search.seed_sources(seeds, load_recipe_probes(), largest, cfg.max_checkpoints):
        print(f"seed {run['seed']} (run {run['run']}): steps {run['source'].steps(largest)}")
        display(run["windows"])
        parts.append(measure(run["source"], run["location"]).assign(size=label[run["seed"]]))
    seed_table = pd.concat(parts, ignore_index=True)
    cache.save_table(seed_table, DATA / "shared_gradients_seeds.parquet")
    WS = wide(seed_table)
    seed_summary = sgc.summary(WS, sizes=list(label.values()),
                               learned={label[int(r.seed)]: bool(r.ioi_holds) for r in seeds.itertuples()})
    cache.save_table(seed_summary, DATA / "shared_gradients_seed_summary.parquet")
    seed_rows = sgc.seed_claims(seed_summary, largest, training_batch_size=cfg.training_batch_size)
    seed_learned = seed_summary.set_index("size").ioi_learned
    fig, axes = plt.subplots(1, len(label), figsize=(5 * len(label), 3.6), squeeze=False, sharex=True, sharey=True)
    for ax, name in zip(axes[0], label.values()):
        for k, ds in enumerate(["ioi", "ioi_name", "ioi_copy", "ioi_rand"]):
            x, y = sgc.curve(WS, ds, "cos_mean", name)
            ax.plot(x, y, STYLES[k % 4], marker=".", ms=3, label=ds)
        ax.set(xscale="log", xlabel="step", title=f"{name} ({'learns' if seed_learned[name] else 'no'} IOI)")
    axes[0][0].set_ylabel("mean pairwise gradient cosine"); axes[0][0].legend(fontsize=8)
    fig.suptitle(f"IOI and its controls' gradient alignment over the seeds of {largest}")
    show(fig, "shared_gradients_ioi_alignment_over_seeds")
else:
    print("seeds of the largest size not measured:", "seed_runs is off" if not use_seeds else
          "not the local suite" if source is not None or cfg.tiny_suite is not None else
          f"{seeds_path} is missing (run notebook 00)" if seeds is None else
          f"{largest} is not among the sizes measured" if largest not in SIZES else
          "notebook 00's seeds table has no other seed (recipe-search runs of its recipe)")

# %% [markdown]
# ## The claims, in numbers
#
# `gradtools.shared_gradients_claims.summary` reduces every curve to the numbers the claims rest on,
# per size (written to `data/shared_gradients_summary.parquet`):
#
# * `ioi_window_start`, `_end`, `_checkpoints`: the IOI margin's 10%-90% rise on the measured
#   checkpoints, and how many of them lie inside it;
# * `ioi_loss_half_drop`: first step at which the IOI loss has made half of its fall from its
#   highest value (after step 0) to its final value; `ioi_margin_half_rise`: the same for the
#   IOI-specific margin `IOI-name loss - IOI loss`; `ioi_learned`: the margin ends at 0.5 nats or more
#   (issue 6's threshold). Here IOI-name loss is the mean loss of the IOI-name control's targets (one
#   random other name per prompt: the gradients need one target), an unbiased estimate of notebook
#   00's IOI-name loss, which is the exact expectation over the other names, so the two notebooks'
#   margins agree up to that sampling noise; `name_diverges`, `copy_diverges`: the step from which the control's loss
#   stays 0.5 nats above IOI's;
# * for every dataset, the shape of its alignment curve: `*_align_first`, the **early peak**
#   (`*_align_peak`, `_peak_step`: the first maximum that the curve falls back from by 40% of its
#   rise), the **trough** after it, the final value and the **late rise** after the trough
#   (`*_align_late_rise`, `_late_half_step`); the loss at the trough and at the end;
# * `name_gap_*`, `copy_gap_*`, `rand_gap_*`: IOI's mean cosine minus the control's, at IOI's early
#   half-rise and at the end; `ioi_rise`, `rand_rise`: peak minus first value;
# * `cross_name_*`, `cross_copy_*`: IOI x control mean cosines; `di_median`: median DI over
#   checkpoints, `di_null_median` its random-sign null, `di_excess` the median of their
#   difference, `lowering_share`: share of batches whose step would lower the IOI loss (each
#   also `_b<B>` at batch size B);
# * `rand_freq_rise`: IOI-rand-freq's rise; `random_unembedding_cos_*`: the anisotropy;
# * `d2_*`: appendix D.2, IOI's pairwise cosines over all parameters against the non-embedding ones;
# * `names_excess_*`: name-unembedding cosine minus random tokens', first, peak and last.
#
# Which sizes learn IOI (`ioi_learned`) is notebook 00's verdict on the local suite (`[A]` above `[B]` on
# 80% of its 500 held-out prompts and the margin held over the last 1000 steps, `ioi_learned_by` =
# `suite`): a size that copies `[B]` predicts a name from the context and so has a large IOI-name margin
# too. Other sources fall back to the margin alone.
#
# `shared_gradients_claims.claims` then decides each claim of the paper by the criterion written in
# its `why` column; each size is one training run (one seed), and the rows ending "over 3 seeds of ..."
# decide the same claims over the largest size's seeds (the section above).

# %%
# which sizes learn IOI: notebook 00's verdict on the local suite (both thresholds over the last 1000
# steps; a size that copies [B] also has a large IOI-name margin), else the margin alone
emergence_path = DATA / "suite_emergence_steps.parquet"
learned = None
if source is None and cfg.tiny_suite is None and emergence_path.exists():
    emergence = pd.read_parquet(emergence_path)
    learned = dict(zip(emergence["size"], emergence.window_ioi_pass_share == 1))
summary = sgc.summary(W, sizes=SIZES, learned=learned)
cache.save_table(summary, DATA / "shared_gradients_summary.parquet")
with pd.option_context("display.max_rows", 200):
    display(summary.set_index("size").T)
claims = fidelity.save_claims("01_shared_gradients", sgc.claims(summary, training_batch_size=cfg.training_batch_size)
                              + seed_rows, profile)
display(Markdown(fidelity.claims_markdown(claims)))
print(f"notebook compute time {time.time() - t_start:.0f} s")

# %% [markdown]
# ## Verdicts (default profile)
#
# The claims table above gives each verdict and the numbers behind it; this section says how to read
# them. The default run uses the suite of `00_checkpoint_suite` (corpus v6; d64-L2 and d80-L2 at lr 3e-3,
# d96-L2 at 2e-3, batches of 32, 8000 steps; one seed each), every checkpoint inside each size's emergence
# windows plus log-spaced ones, 96 prompts a dataset, and the largest size's two other seeds from notebook
# 00's seed study (runs Z1, Z2: a checkpoint every 250 steps and at the powers of two, so the early rise is
# measured in every seed). **Every size learns IOI** (notebook 00's verdict), so the rows on how IOI forms
# rest on three sizes over sizes and on d96-L2's three seeds over seeds. The models are 100-1000x smaller
# than the paper's.
#
# * **Alignment before and with the IOI loss drop (figure 2 and the emergence-window figure).** Two
#   rises: an early, large one shared by every control (the model learns "a name comes here"), and,
#   inside the IOI window, measured at every saved checkpoint (12-17 per size), a small IOI-specific rise
#   above IOI-name's. Both reach half their height by the IOI loss's half drop in some sizes and seeds; in
#   the others the late rise reaches half its height only after the loss's half drop (which the copying
#   stage reaches early), with the margin's rise: "with", not "before", hence `partly` over sizes and over
#   seeds.
# * **Controls diverge (figure 3).** The losses diverge in the paper's order, IOI-name first, IOI-copy
#   later, in every size and seed (reproduced). The controls' *alignment* ends below IOI's by the claim's
#   margin in some sizes and seeds only; elsewhere IOI-copy's ends level with or above IOI's (`partly`):
#   copying `[B]` and predicting `[A]` largely share one direction here.
# * **IOI-rand (figure 4) and its frequency-matched twin.** IOI-rand's early rise is larger than IOI's in
#   every size and seed (not reproduced). The frequency-matched control rises as much as the uniform one
#   (not reproduced): rarity does not explain the rise; the shared early direction of any target does, in
#   an unembedding whose random rows stay strongly aligned (the anisotropy column).
# * **Destructive interference (figure 2 right, and the null figure).** Not reproduced, in every size
#   and every seed, and the null is what shows it: DI values above one half look destructive, yet at
#   every batch size, up to four times the training batch, they lie below the DI that the same
#   contributions give with random signs, and most batches lower the IOI loss.
# * **Name unembeddings cluster (figure 5)** while IOI-name's loss sits with IOI's, in every size and
#   seed, and the cluster dissolves (the excess turns negative) once the models tell the names apart.
# * **Cross alignment (figure 6)** ends slightly negative in the largest size, as the paper has it; the
#   paper's contrast ("in larger models only") needs a size that does not learn IOI, and every size here
#   does, so that half is untested and the values are small against the cosines' spread: `partly`.
#   **Claim B.4** (smaller models fail IOI despite high alignment) is `not measured` for the same reason:
#   with per-size learning rates no size of the suite fails IOI. (On the previous suite, whose two smaller
#   sizes stopped part-way at lr 2e-3, it was measured and not reproduced: their IOI alignment peaked below
#   the largest size's. That suite is replaced; the comparison is not recomputed here.)
# * **GT and OML (figures 7-12)**: the shared early rise and drop in every dataset, with one control in
#   one size or seed that does not fall back enough (`partly`). GT-less's alignment rises again while its
#   loss worsens, but GT's own alignment rises too, and the pattern varies with the seed (`partly` over
#   sizes, not reproduced over seeds; in seeds 1 and 2 GT-less's loss does not worsen, and seed 2's GT
#   falls below 0.5 at its last checkpoint: notebook 00's seeds table). OML's second rise reaches above both
#   controls in every size and seed (reproduced).
# * **Appendix D.2.** Over all parameters (embeddings, unembedding, norms included) the pairwise IOI
#   cosines correlate closely with the non-embedding ones (median over checkpoints at or above the
#   criterion in the largest size and its seeds; just below it in a smaller size: `partly` over sizes,
#   reproduced over seeds).
#
# **Cost.** Notebook 01 from scratch in the default profile on 2 cores: the per-checkpoint results are
# cached per size and seed run, so the notebook's compute time (printed above the claims table) is that of
# what was not yet cached. From an empty cache it took under 10 minutes on the 2-core machine (measured in two
# parts: a first run that stopped at the seed runs' missing checkpoints, and the rerun that resumed from its
# cache), within the 20 minutes of issue 17.
