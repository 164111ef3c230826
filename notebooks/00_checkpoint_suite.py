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
# # 00 — The offline checkpoint suite (issue 6)
#
# Study 1 (shared gradient discovery) follows language models through training and
# asks whether the gradients of examples that share a solution align while the
# solution (a circuit) forms. The paper uses OLMo-style models of 14M-472M
# parameters (`mirandrom/zsl-checkpoints`); nothing can be downloaded here, so this
# notebook trains a small stand-in suite on CPU, from scratch, at three sizes (default), with
# checkpoints saved log-spaced early and then every 100 steps, so that study 1 can measure every
# checkpoint where a capability emerges.
#
# It shows, for each size and checkpoint, three capabilities measured on **held-out
# evaluation templates**:
#
# * **IOI** (indirect object identification): `Then, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to` -> `[A]`;
#   against the controls IOI-name (a random other name) and IOI-copy (`[B]`), and the
#   share of prompts with `[A]` ranked above `[B]`;
# * **GT** (greater-than): `The [EVENT] lasted from the year [C][YY] to the year [C]` -> `ZZ > YY`,
#   as Hanna et al.'s probability difference `P(ZZ > YY) - P(ZZ <= YY)`;
# * **OML** (one month later): `The [EVENT] lasted one month, from the month of [M] to the month of` -> next month,
#   as accuracy among the 12 months (chance 1/12).
#
# Checkpoints are `save_pretrained` folders of a `transformers` GPT-NeoX, cached under
# `data/cache/<profile>/checkpoint_suite/<size>/step-NNNNNN/` (not committed); study 1 loads
# them with `gradtools.lm.load_causal_lm` like any other checkpoint source. Set
# `profile` to `smoke` (a minute, no emergence expected), `default` (this machine) or
# `paper` (a GPU).

# %% tags=["parameters"]
profile = "default"  # smoke | default | paper
steps = None         # override the number of training steps
sizes = None         # override the sizes: a dict of name to dict of d_model, n_layers, n_heads (and lr: its peak rate)
workers = None       # sizes trained at once, one process and one core each (None: the profile's)

# %%
import json
import time

import matplotlib.pyplot as plt
import pandas as pd
import torch
import transformers
from IPython.display import Markdown, display

from gradtools import cache, fidelity, paths, profiles
from gradtools import checkpoint_suite as cs
from gradtools import checkpoint_suite_claims as csc
from gradtools import emergence_windows as ew
from gradtools import suite_corpus
from gradtools import prompt_datasets as prompt_datasets_module
from gradtools.figures import save_figure
from gradtools.lm import load_causal_lm
from gradtools.lm_training import checkpoint_path, saved_steps

torch.set_num_threads(1)  # one core per process: the models are small, and the timings stay comparable
transformers.utils.logging.disable_progress_bar()  # one bar per loop (ours), not one per checkpoint file

cfg = profiles.select(profile, {
    "smoke": dict(
        sizes={"d16-L1": dict(d_model=16, n_layers=1, n_heads=2), "d24-L2": dict(d_model=24, n_layers=2, n_heads=2)},
        recipe=dict(vocab_size=600, n_stories=3_000, wiki_chars=60_000, context=32, batch_size=8,
                    steps=40, lr=3e-3),
        windows=[(8, 40, 8)], n_ioi=60, n_gt=60, n_oml=60, workers=1),
    "default": dict(
        # three widths in which IOI transfers to the held-out templates (issue 17's search below):
        # batches of 32 windows (16 left one seed of d64-L2 at the copying stage), 8000 steps; the two
        # smaller widths at lr 3e-3 (at 2e-3 they stop part-way into IOI on corpus v6: runs AA, AB)
        sizes={"d64-L2": dict(d_model=64, n_layers=2, n_heads=4, lr=3e-3),
               "d80-L2": dict(d_model=80, n_layers=2, n_heads=4, lr=3e-3),
               "d96-L2": dict(d_model=96, n_layers=2, n_heads=4)},
        recipe=dict(vocab_size=2048, n_stories=400_000, wiki_chars=None, context=64, batch_size=32,
                    steps=8_000, lr=2e-3),
        # log-spaced to step 64, then every 100 steps: study 1 measures every checkpoint inside each
        # size's emergence windows (gradtools.emergence_windows), which are not known before training
        windows=[(100, 8_000, 100)], n_ioi=500, n_gt=500, n_oml=None, workers=2),
    "paper": dict(
        sizes={"d128-L2": dict(d_model=128, n_layers=2, n_heads=4), "d256-L4": dict(d_model=256, n_layers=4, n_heads=8),
               "d512-L6": dict(d_model=512, n_layers=6, n_heads=8)},
        recipe=dict(vocab_size=4096, n_stories=2_000_000, wiki_chars=None, context=128, batch_size=64,
                    steps=30_000, lr=1e-3),
        windows=[(64, 2048, 64), (2000, 30_000, 500)], n_ioi=1000, n_gt=1000, n_oml=None, workers=3),
}, sizes=sizes, workers=workers)
if steps is not None:
    cfg.recipe = {**cfg.recipe, "steps": steps}
recipe = cs.SuiteRecipe(**cfg.recipe)
SUITE = cs.suite_dir(profile)
DATA = paths.data_dir(profile)
schedule = cs.checkpoint_schedule(recipe.steps, cfg.windows)
print(recipe)
for size, shape in cfg.sizes.items():
    print(f"  {size}: {shape}")
print(f"{len(schedule)} checkpoints per size:", schedule[:12], "...", schedule[-3:])
print("suite folder:", SUITE)

# %% [markdown]
# ## The corpus: what it contains and why
#
# Two sources, mixed row by row (90% stories, 10% Wikipedia in `default`):
#
# * **Wikipedia**: the plain text of the 106-article English Wikipedia excerpt that
#   ships with gensim (`enwiki-...-shortened.bz2`, about 3M characters), markup removed
#   by gensim's `filter_wiki`. It is ordinary English, so the models do not live in a
#   world of templates only. With a 2048-word vocabulary many of its words
#   are `[UNK]` (`unk_share` in the corpus table below); it is there as noise and English structure, not as the source of the
#   capabilities.
# * **Generated stories**, in four kinds, each in *training* templates that differ from
#   every evaluation template (the test suite checks that no evaluation template, as a
#   regular expression with its slots open, matches anywhere in the corpus):
#   - *IOI-like*: two names, one repeated as subject and the other the object of the
#     last word, composed in two shapes (corpus v4): sentences
#     (`Kate and Tom walked into the market. It was late. Kate handed the key to Tom.`:
#     24 introductions with the names in either order, 0-2 filler sentences, an optional
#     connector, 28 actions) and a single sentence with a leading clause
#     (`As soon as Tom and Kate found a key in the market, Kate decided to lend it to Tom.`:
#     7 conjunctions x 16 verb phrases, the same actions; corpus v6 added 12 introductions and 6
#     verb phrases of motion and place, none of the evaluation's), so the only rule that predicts
#     the last name is "the name that was not repeated", at varying distances and in
#     varying syntax, never "the second name" or "the name N tokens back";
#   - *distractors*: the same names, places and objects in sentences without the IOI
#     structure (`[X] and [Y] left the [PLACE] at noon.`, `The [OBJECT] belonged to [X].`), so that
#     names alone do not predict an IOI answer. None repeats a name (v3's `When [X] got home, [X] was
#     tired.` trained exactly the subject copy that IOI must avoid), and since corpus v5 none reuses an
#     evaluation template's opening or verb phrase: v4's distractors did (`Then, [X] went to the [PLACE]
#     alone.`, `[X] and [Y] went to the [PLACE] together.`), and every held-out template that v4 models
#     failed had such a sibling (the recipe search below);
#   - *years*: events from a year to a later year (`The siege began in 1732 and ended in 1756.`,
#     `... began in the year 1732 and ended in the year 1756.`), 95% within one century:
#     the greater-than relation;
#   - *months*: events from one month to the next (`The strike lasted one month, from May to June.`,
#     `In the month of May the fair began, and in the month of June it ended.`), plus
#     two-month and single-month sentences so the model must read the duration.
#
# Why stories at all: a 2-core budget sees about 12M training tokens; the prototype
# runs (below) showed that Wikipedia alone at this scale never gets past "a name comes
# here" to *which* name. The stories make the IOI rule frequent enough to be learned
# in that budget, while the held-out templates make the evaluation a test of the rule,
# not of memorised sentences.
#
# The corpus carries a version (`suite_corpus.VERSION`, now 6) and its recipe fields in the
# suite's `corpus.json`; a cached suite built from another corpus stops with a message instead
# of being reused.
#
# The tokenizer is word level (`tokenizers` WordLevel): every name, place, object,
# event, month and the numbers 00-99 are single tokens, and digit runs are cut into
# pairs, so the year 1732 is `17` `32` as in GPT-2.

# %%
t0 = time.time()
tokenizer, story_stream, wiki_stream = cs.prepare_corpus(SUITE, recipe)
unk = tokenizer.token_to_id("[UNK]")
corpus_summary = pd.DataFrame([
    dict(source="stories", tokens=len(story_stream), unk_share=(story_stream == unk).float().mean().item(),
         row_share=recipe.story_fraction),
    dict(source="wikipedia", tokens=len(wiki_stream), unk_share=(wiki_stream == unk).float().mean().item(),
         row_share=1 - recipe.story_fraction),
])
cache.save_table(corpus_summary, DATA / "suite_corpus_summary.parquet")
print(f"corpus ready in {time.time() - t0:.0f} s; vocabulary {tokenizer.get_vocab_size()}")
display(corpus_summary)
print("a few generated stories:")
for s in suite_corpus.stories(6, seed=11):
    print("  ", s)

# %% [markdown]
# ## Models and training
#
# The model family of the foundation issue (`gradtools.lm.tiny_causal_lm`): a
# `transformers` GPT-NeoX, pre-LayerNorm, rotary positions, untied unembedding, MLP
# width 4 x d_model. Sizes are named `d<width>-L<layers>`. Training is the project's
# one LM loop, `gradtools.lm_training.train_causal_lm` (AdamW, betas 0.9/0.95, weight
# decay 0.1, gradient clipping 1.0), with a 5% linear warm-up then cosine decay to 10%
# of the peak rate (`checkpoint_suite.warmup_cosine`, passed as `lr_lambda`). A batch
# is `batch_size` windows of `context` tokens cut at random offsets of the two streams;
# the loss is the mean next-token cross-entropy over all tokens. A trained size is
# read back from the cache; an interrupted one resumes.
#
# Deviations from the paper's suite (the zsl checkpoints of Mircea et al., the paper's table 1 and
# the paragraph above it), beside the paper's value:
#
# | setting | this suite (default profile) | the paper |
# |---|---|---|
# | sizes | d64-L2, d80-L2, d96-L2 (GPT-NeoX, MLP 4 x d_model; 0.10-0.22M non-embedding parameters) | 14M-472M, d_model 256-2048, 4-16 layers, MLP = d_model (OLMo) |
# | corpus | generated stories (IOI, GT, OML shapes among others) + a Wikipedia excerpt, word-level tokenizer of 2048 | OLMo-7B-0724's training data |
# | peak lr | 3e-3 (d64-L2, d80-L2), 2e-3 (d96-L2): smaller models take the larger rate, as in the paper's suite | 1.3e-3 (14M) to 4.9e-4 (472M) |
# | schedule | 5% linear warm-up, cosine to 10% of the peak (`recipe.schedule = "cosine"`) | trapezoidal: 2000-step linear warm-up, no cool-down within the 2^18 steps considered (`schedule = "trapezoid"`, `warmup_steps = 2000`: available, and tried in the recipe search, `gradtools.suite_search`) |
# | batch | 32 x 64 = 2048 tokens | 0.5M tokens |
# | steps | 8000 (checkpoints: log-spaced to 64, then every 100 steps) | 2^18 (about 262K; checkpoints at powers of two and more) |
# | seeds | seed 0 for the suite; seeds 1 and 2 of the largest size in the recipe search | one run per size |
#
# A size may set its own peak learning rate (`lr` in its entry of `sizes`; recorded in its
# `recipe.json`). `workers` sizes train at once, each in its own process on one core
# (`checkpoint_suite.train_sizes`); every size's cached recipe is checked before any training.
#

# %%
t0 = time.time()
training_log = cs.train_sizes(SUITE, cfg.sizes, recipe, schedule, workers=cfg.workers)
cache.save_table(training_log, DATA / "suite_training_loss.parquet")
print(f"training (or reading the cache): {time.time() - t0:.0f} s, {cfg.workers} size(s) at a time")
wall = {}
for size in cfg.sizes:
    info = json.loads((SUITE / size / "recipe.json").read_text())
    wall[size] = info.get("wall_s")
    model = load_causal_lm(checkpoint_path(SUITE / size, recipe.steps))
    n_params = sum(p.numel() for n, p in model.named_parameters() if "embed" not in n and "lm_head" not in n)
    print(f"{size}: peak lr {info['lr']}, {n_params / 1e6:.2f}M non-embedding parameters, "
          f"{len(saved_steps(SUITE / size))} checkpoints, training wall time {wall[size]} s")

fig, ax = plt.subplots(figsize=(6, 3.5))
for size, g in training_log.groupby("size", sort=False):
    ax.plot(g.step, g.loss.rolling(50, min_periods=1).mean(), label=size)
ax.set(xscale="log", xlabel="step", ylabel="training loss (50-step mean)", title="Suite training loss")
ax.legend()
fig.tight_layout()
save_figure(fig, "suite_training_loss", profile)
plt.show()


# %% [markdown]
# ## Capabilities at every checkpoint
#
# The evaluation sets come from `gradtools.prompt_datasets` (the generators study 1
# reuses), with the evaluation templates above: 15 IOI templates and their ABBA swaps,
# the GT template over 34 events, centuries 11-17 and YY 02-98, the OML template over
# 34 events x 12 months. IOI-name loss is the expected loss of a random other name,
# `-mean_{n != A, B} log p(n)` over the 99 names, which removes the sampling noise of
# drawing one name per prompt.

# %%
datasets = cs.evaluation_datasets(tokenizer, cfg.n_ioi, cfg.n_gt, cfg.n_oml)
tables = []
for size in cfg.sizes:
    # per-checkpoint metrics are cached beside the checkpoints, keyed by the evaluation sizes
    key = f"capabilities_ioi{cfg.n_ioi}_gt{cfg.n_gt}_oml{cfg.n_oml}.parquet"
    tables.append(cache.cached_table(SUITE / size / key, lambda: cs.evaluate_size(SUITE, size, datasets)))
capabilities = pd.concat(tables, ignore_index=True)
cache.save_table(capabilities, DATA / "suite_capabilities.parquet")
wide = csc.capability_wide(capabilities)  # one row per checkpoint; ioi_margin: nats by which IOI beats a random name
display(wide.groupby("size").tail(3).round(3))

# %%
panels = [("ioi losses", None), ("ioi_rank_accuracy", 0.8), ("gt_prob_diff", 0.5), ("oml_accuracy", 1 / 12)]  # grey lines: thresholds (OML: chance)
titles = {"ioi losses": "IOI loss (solid), IOI-name (dashed), IOI-copy (dotted)",
          "ioi_rank_accuracy": "IOI: share with [A] above [B]", "gt_prob_diff": "GT: P(ZZ>YY) - P(ZZ<=YY)",
          "oml_accuracy": "OML: accuracy among 12 months"}
fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
colors = dict(zip(cfg.sizes, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
for ax, (metric, line) in zip(axes, panels):
    for size, g in wide.groupby("size", sort=False):
        g = g[g.step > 0]
        if metric == "ioi losses":
            ax.plot(g.step, g.ioi_loss, color=colors[size], label=size)
            ax.plot(g.step, g.ioi_name_loss, color=colors[size], ls="--")
            ax.plot(g.step, g.ioi_copy_loss, color=colors[size], ls=":")
        else:
            ax.plot(g.step, g[metric], color=colors[size], marker=".", ms=3, label=size)
    if line is not None:
        ax.axhline(line, color="grey", lw=0.8, ls="--")
    ax.set(xscale="log", xlabel="step", title=titles[metric])
    ax.title.set_fontsize(9)
axes[0].set_ylabel("loss (nats)")
axes[0].legend()
fig.suptitle("Capabilities of the checkpoint suite on held-out evaluation templates (grey: thresholds of issue 6)")
fig.tight_layout()
save_figure(fig, "suite_capability_emergence", profile)
plt.show()

# %% [markdown]
# ## Emergence steps and the thresholds
#
# A capability *emerges* at the first checkpoint from which it stays past its
# threshold at every later checkpoint (`checkpoint_suite.emergence_step`, "held from");
# the table also gives the first checkpoint past it (`checkpoint_suite.first_step_beyond`,
# "first reached"), and the range over the last 1000 steps, since near a threshold the
# metrics move by several points from one checkpoint to the next:
#
# * IOI: IOI loss at least 0.5 nats below IOI-name loss **and** [A] ranked above [B] on
#   at least 80% of prompts;
# * GT: probability difference above 0.5;
# * OML: accuracy above chance, i.e. above 1/12 by two binomial standard errors
#   (`1/12 + 2 sqrt(1/12 * 11/12 / n)`, 0.11 for the 408 prompts), and, stricter, above 0.5.
#
# `gradtools.checkpoint_suite_claims.emergence_table` computes it per size (`passes_*`: at the last
# checkpoint; `window_*`: over the last 1000 steps).

# %%
chance = csc.oml_chance(len(datasets["oml"]))
emergence = csc.emergence_table(wide, chance, wall)
cache.save_table(emergence, DATA / "suite_emergence_steps.parquet")
display(emergence.set_index("size").T)

# %% [markdown]
# **Emergence windows** (`gradtools.emergence_windows.capability_windows`): per size and capability,
# the steps where its curve (IOI: the margin IOI-name loss minus IOI loss; GT: the probability
# difference; OML: the accuracy) makes 10% to 90% of its rise, from its lowest value to its level over
# the last 1000 steps; a rise smaller than 0.5 nats (IOI), 0.1 (GT) or 0.2 (OML) is no window.
# `checkpoints`: how many saved checkpoints lie inside. Study 1 (notebook 01) measures every one of them.

# %%
windows = ew.capability_windows(wide)
windows = ew.window_counts(windows, {size: saved_steps(SUITE / size) for size in cfg.sizes})
cache.save_table(windows, DATA / "suite_emergence_windows.parquet")
display(windows)

# %% [markdown]
# ## Claims: does the suite learn what the paper's suite learns?
#
# Each threshold is decided **over the last 1000 steps** of the largest size (every checkpoint in
# them must pass), not at the last checkpoint alone. IOI, the capability that study 1 is about and the
# one that sits nearest its threshold, is decided **over the seeds of this recipe**: this suite's
# largest size (its own checkpoints) and the recipe-search runs of the same recipe with other seeds
# (runs X and Y below, in `data/suite_recipe_probes.parquet`, probed every 250 steps); "IOI holds in k
# of n seeds" gives `partly` when 0 < k < n. A fourth row asks whether every size of the suite learns
# IOI (one seed each), a fifth whether wider models, probed in the recipe search on the same corpus and
# budget, learn IOI too. The criteria are in
# `gradtools.checkpoint_suite_claims.claims`.

# %%
largest = list(cfg.sizes)[-1]
largest_recipe, _ = cs.size_recipe(recipe, cfg.sizes[largest])
probes = csc.load_recipe_probes()
seeds = csc.seed_table(wide, largest, recipe.seed, probes, lr=largest_recipe.lr, steps=recipe.steps,
                       corpus=suite_corpus.VERSION, chance=chance, schedule=recipe.schedule,
                       batch_size=recipe.batch_size)
wider = csc.wider_runs(probes, largest, steps=recipe.steps, corpus=suite_corpus.VERSION)
cache.save_table(seeds.assign(size=largest), DATA / "suite_seeds.parquet")  # notebook 01 measures these seeds too
display(seeds.round(3))
claims = fidelity.save_claims("00_checkpoint_suite", csc.claims(emergence, seeds, wider), profile)
display(Markdown(fidelity.claims_markdown(claims)))

# %% [markdown]
# **Which held-out prompts each size gets right** (`checkpoint_suite.ioi_rank_by_template`, at each
# size's last checkpoint, 600 IOI prompts: 20 per template and name order): where a size falls short of
# the 80% threshold, this says whether it misses IOI everywhere or on some templates only. The second
# table: the same for the largest size's other seeds (the recipe-search runs of the `seeds` table,
# recorded in `data/suite_recipe_probe_templates.parquet`).

# %%
ioi_eval = prompt_datasets_module.ioi(tokenizer, 600, 1)
by_template = pd.concat([cs.ioi_rank_by_template(load_causal_lm(checkpoint_path(SUITE / size, recipe.steps)),
                                                 ioi_eval).assign(size=size) for size in cfg.sizes])
cache.save_table(by_template, DATA / "suite_ioi_by_template.parquet")
by_template["text"] = by_template.template.map(lambda t: prompt_datasets_module.IOI_TEMPLATES[t])
display(by_template.pivot_table(index=["template", "text"], columns=["size", "order"], values="a_above_b").round(2))
# the largest size's other seeds (recipe-search runs of this recipe, recorded by gradtools.suite_search)
probe_runs = [src.split(" ", 1)[1] for src in seeds.source if src.startswith("probe ")]
templates_path = paths.data_dir("default") / "suite_recipe_probe_templates.parquet"
if probe_runs and templates_path.exists():
    probe_templates = pd.read_parquet(templates_path)
    probe_templates = probe_templates[probe_templates.run.isin(probe_runs) & (probe_templates["size"] == largest)]
    display(probe_templates.pivot_table(index="template", columns=["run", "seed", "order"], values="a_above_b").round(2))

# %% [markdown]
# ## How study 1 reads the suite
#
# A checkpoint is a folder; the tokenizer sits at the suite's root. The prompt
# datasets of study 1 are built for this tokenizer by `gradtools.prompt_datasets`
# (and for any Hugging Face tokenizer the same way).

# %%
from gradtools import prompt_datasets
from gradtools.word_tokenizer import load_word_tokenizer

tok = load_word_tokenizer(SUITE / "tokenizer.json")
model = load_causal_lm(checkpoint_path(SUITE / largest, saved_steps(SUITE / largest)[-1]))
ioi = prompt_datasets.make_dataset("ioi", tok, n=4)
with torch.no_grad():
    logits = model(**{k: v for k, v in ioi.batch().items() if k != "labels"}).logits
for i, text in enumerate(ioi.meta.text):
    guess = tok.id_to_token(int(logits[i, ioi.last_positions()[i]].argmax()))
    print(f"{text} -> {guess!r} (answer {ioi.meta.a[i]!r})")

# %% [markdown]
# ## Recipe search and results (default profile)
#
# All runs below used the default shape family (GPT-NeoX, context 64, AdamW betas 0.9/0.95, weight
# decay 0.1, clipping 1.0) and, unless the row says otherwise, batches of 16, 5% warm-up then cosine to 10%, 12000
# steps, 90% stories / 10% Wikipedia, vocabulary 2048, with peak lr 3e-3, on this 2-core machine, most of them beside other jobs (timings 1.5-3x
# slower than idle). Metrics are on the held-out evaluation templates (300-500 prompts a set).
#
# | run | corpus | size | what it gave |
# |---|---|---|---|
# | prototype 1 (issue 6) | Wikipedia + stories, custom GPT 0.34M, 3000 steps | — | IOI loss = IOI-name loss (about ln 50): "a name comes here", never which name; GT rose from step ~120 to 0.66 |
# | prototype 2 (issue 6) | 90% stories, d96-L3, 12000 steps | d96-L3 | IOI loss = IOI-name loss (3.93) up to step 7117; at 12000 IOI 2.43 vs IOI-name 5.25, IOI-copy 4.86, 86% [A] over [B] |
# | A | v1: 16 fixed IOI templates (both name orders), no "the month of"/"the year" phrasing | d64-L2 (stopped at 4750) | copying from step ~2500, first of the wrong name (IOI-copy 3.24 < IOI 4.26, [A] over [B] 25% at 3000), then [A] over [B] rising to 69% at 4500-4750 (IOI 3.5 vs IOI-name 9.7); GT <= 0.17; OML accuracy peaked at 75% (step 2500) then fell to chance |
# | A | same | d96-L3 (stopped at 2750) | no copying yet (IOI = IOI-name = 5.6); GT 0.22; OML at chance |
# | B | v2 = v1 + "in the month of M ... in the month of M+1" and "in the year ..." sentences | d64-L2, 12000 steps (24.8 min) | OML 100% from step ~2000; GT 0.26-0.47, never above 0.5 (0.28 at the end); IOI: copies the **subject** [B] on the held-out templates from step ~4000 to the end (IOI 4.94 vs IOI-copy 3.07, [A] over [B] 34% at 12000) while on the *training* templates it solves IOI (99.7% [A] over [B], loss 0.03): it learned the 16 templates, not the rule |
# | B | same | d96-L3 (stopped at 7250) | same picture: copying [B] from step ~6000 (IOI-copy 1.7, [A] over [B] 12% at 6750; training templates 96%); GT 0.45-0.47; OML 100% |
# | C (an earlier default) | v3 = v2 with composed IOI stories (12 introductions x 0-2 fillers x connectors x 18 actions) and 95% (was 80%) same-century year pairs | d64-L2 (14.5 min) | IOI loss below IOI-name by >= 0.5 nats from step 5000; [A] over [B] above 60% from 6250, peak 80% at 8750, 72% at 12000 (IOI 6.69, IOI-name 9.76, IOI-copy 8.97: the model no longer copies [B], but puts little mass on any name after these templates' `to`); GT above 0.5 from 6500 (0.59 at the end); OML 100% from ~1000 |
# | C | same | d96-L3 (21.7 min) | IOI = IOI-name = IOI-copy (about 4.8) up to step ~9000, then IOI falls: margin >= 0.5 from 9750, at 12000 IOI 3.28, IOI-name 6.09, IOI-copy 4.99, [A] over [B] 67%, rising steeply over the last 1000 steps (48% at 10750, 55% at 11750); GT above 0.5 from 11250 (0.60); OML 100% from 1500 |
# | D | v3, **24000 steps** (twice the budget), lr 3e-3 | d64-L2 | [A] over [B] 83% at step 7000, then 34-60% and 27% at 24000: the model copies the subject [B] (IOI-copy 5.2 < IOI 6.1 < IOI-name 6.4 at 23000); GT 0.55 |
# | D | same | d96-L3 | plateau to ~12000, then copies [B] (IOI-copy 3.7-4.8 below IOI 4.3-5.1, IOI-name 9.3); [A] over [B] 46% at 24000; GT 0.74 |
# | E | v3, 12000 steps, **lr 1e-3** | d96-L3 | plateau (IOI = IOI-name = IOI-copy, about 5.5) to step 6000, copying from 7000, then IOI emerges between steps 8000 and 9000 ([A] over [B] 57% -> 98%, IOI 1.45 vs IOI-name 7.91) and holds: 97.6% at 12000 (IOI 1.32, IOI-name 10.0, IOI-copy 8.48). GT rose to 0.47 at 7000, then fell back to 0.22-0.38 as IOI formed (0.22 at the end); OML 100% |
# | E | same | d64-L2 | copies [B] at 5000-7000 ([A] over [B] 35%), then 60-67% from 8000 (IOI 3.0 vs IOI-name 8.8 at 12000); GT 0.48-0.50 |
# | F | v3, 12000 steps, **lr 2e-3** | d64-L2 | IOI emerges at step ~6000 and holds: [A] over [B] 88% at 6000, 91-93% from 7000 (IOI 3.36, IOI-name 9.30, IOI-copy 10.48 at 12000); GT 0.51-0.58 from 5000; OML 84-100% (100% at the end): **passes every threshold of issue 6** |
# | F | same | d96-L3 | still on the plateau at 10500 (IOI = IOI-name = IOI-copy, about 5.0; [A] over [B] 46%) |
# | G | v3, 12000 steps, **lr 1.5e-3** (25.0 min, beside run H) | d96-L3 | GT above 0.5 from step ~4000 and 0.62-0.73 from 6000 (0.73 at the end); IOI leaves the plateau at ~8000 through a copying stage (IOI-copy 4.52, IOI 4.30 at 8000), then [A] over [B] 54% at 9000, 70-72% over 10000-12000 (IOI 3.58, IOI-name 7.88, IOI-copy 6.15 at 12000): margin 4.3 nats, rank accuracy short of 80%; OML 100% |
# | H | v3, 12000 steps, **lr 2e-3**, a 2-layer d96 (20.6 min, beside run G) | d96-L2 | IOI emerges at ~10000 ([A] over [B] 65% at 8000, 89-92% from 10000; IOI 8.71, IOI-name 9.35, IOI-copy 12.68 at 12000: margin 0.64 nats, the model puts little mass on any name); GT 0.55 at 6000, then 0.2-0.4 (0.20 at the end); OML 92-100% |
# | F2 | v3, a rerun of F (lr 2e-3, one thread per process) | d64-L2 | [A] over [B] 87% at 7000, then 75-81% and **69% at 12000** (IOI 4.78, IOI-name 5.88, IOI-copy 5.72); GT 0.58; OML 100%. F's pass did not repeat: at this scale one run's end point moves by 20 points with the floating-point order of the sums |
# | F2 | same | d32-L2 | plateau throughout (IOI = IOI-name = IOI-copy, about 5.4); GT 0.18; OML at chance |
# | I | v3, **lr 1.25e-3** | d96-L3 | plateau to 7000, then copies [B] ([A] over [B] 39-44% from 8000 to 12000, IOI-copy 5.04 < IOI 5.69); GT 0.49 |
# | J | v3, **lr 1.5e-3**, a d80-L3 | d80-L3 | copies [B] at 8000-9000 (37%), then 66-69% from 10000 (IOI 5.58, IOI-name 8.67); GT 0.49 |
# | K (the default before issue 17) | **v4** = v3 + IOI stories also in a leading-clause shape (`As soon as [N1] and [N2] found a [OBJECT] in the [PLACE], [S] decided to lend it to [IO].`), 10 more actions (pronoun objects, verbs of speech), the subject-copying distractor replaced; **lr 2e-3** | d64-L2 | the earlier default suite: a copying stage first (IOI-name separates from IOI, IOI-copy at or below IOI), then IOI forms and [A] over [B] hovers around the 80% threshold to the end; GT near its 0.5 threshold; OML at 100% early |
# | K | same | d32-L2 | the earlier default's smaller size: plateau throughout (no IOI); GT below 0.5; OML learned late |
# | K | v4, **lr 1.5e-3** | d96-L3 | copies [B] from 8000 to the end ([A] over [B] 42-51%, IOI-copy 2.2 < IOI 3.8 at 12000); GT 0.64-0.71 |
# | L | v4, **lr 1e-3** | d96-L3 | copies [B] from 8000 ([A] over [B] 36-40%); GT 0.43-0.53 |
# | M | v4, lr 2e-3, **seed 1** (stories, initialisation and batches all follow the seed; 10.0 min on one core beside another run) | d64-L2 | IOI from step ~5000 and held: [A] over [B] 90% at 5000, 95-97% from 6000 (IOI 1.55, IOI-name 9.89, IOI-copy 10.27 at 12000); GT 0.52-0.60 over the last 1000 steps (0.58 at the end); OML 100%: passes, with room |
# | N | same, **seed 2** (9.3 min) | d64-L2 | copies [B] from ~6000 to the end ([A] over [B] 36-39%, IOI-copy 3.84 < IOI 5.29 at 12000): **fails IOI**; GT 0.55; OML 100% |
# | O | same, **seed 3** (9.7 min) | d64-L2 | IOI from step ~6000 and held: 98-100% (IOI 2.82, IOI-name 10.52, IOI-copy 13.14 at 12000); GT 0.55-0.66; OML 100%: passes, with room |
# | P | v4, lr 2e-3, seed 2, **the paper's trapezoidal schedule** (2000-step warm-up, then constant; `gradtools.suite_search`) | d64-L2 | copies [B] to the end (as N, the same seed with the cosine schedule); GT 0.33-0.39 |
# | Q | same, seed 0 | d64-L2 | copies [B] to the end; GT 0.11-0.27: the trapezoid is worse than the cosine here, for IOI and GT |
# | R | v4, lr 2e-3, seed 2, cosine, **batches of 32** | d64-L2 | IOI from step ~3000-4000 and held (96% over the last 1000 steps, margin 10.9 nats), where seed 2 with batches of 16 (N) copied [B]; GT 0.29-0.42 |
# | S | v4, **lr 3e-3**, batches of 16 | d48-L2 | copies [B] to the end |
# | T, U | v4, batches of 32, 12000 steps: d64-L2 seed 0 (T), d48-L2 lr 3e-3 (U) | | stopped at steps 6500 and 7500 (copying [B] at 6000-7000; not in the probes table) when the default moved to the recipe below |
# | an earlier default (issue 17) | v4, **batches of 32, 8000 steps**, lr 2e-3, cosine, three widths | d64-L2, d80-L2, d96-L2 | IOI held in d96-L2 only (96% over the last 1000 steps); d80-L2 about two thirds of the prompts; d64-L2 copies [B] (29-35%) |
# | V, W | v4, that recipe, **seeds 1 and 2** (checkpoints every 250 steps) | d96-L2 | V copies [B] (40-42%), W 100% from step ~2000; per template, every template that fails in V, d64-L2 or d80-L2 has a distractor sibling in v4 |
# | (scratch) | v4 with the 12 distractors of v5 swapped in by a script outside the project (the stories' random stream otherwise the same), seed 1 | d96-L2 | 77% at the end (V, the same seed on v4: 40%) |
# | (scratch) | the same, seed 0 | d64-L2 | 100% on every template from step ~4000 (this suite's d64-L2 on v4: 29-35%) |
# | an earlier default (issue 17) | **v5** = v4 with 12 distractors that reuse no evaluation template's opening or verb phrase; batches of 32, 8000 steps, lr 2e-3, cosine | d64-L2, d80-L2, d96-L2 | every size learns IOI and holds it over its last 1000 steps (IOI forms at steps ~1500-2100); GT dips below 0.5 once in d96-L2's last window |
# | X, Y | v5, that recipe, **seeds 1 and 2** (checkpoints every 250 steps) | d96-L2 | Y 100%; X 75-78% over the last 1000 steps: copies [B] after `[B] and [A] went to the [PLACE]` (finding 11) |
# | (scratch) | v5 plus 12 introduction and 6 clause verb phrases of motion and place (`drove to the [PLACE]`, `stopped at the [PLACE]`, ...; none of the evaluation's) appended by a script outside the project, seed 1 | d96-L2 | 100% [A] above [B] from step 2500 to the end (X, the same seed on v5: 75-78%); GT 0.59-0.64 and OML 100% over the last 1000 steps: the candidate corpus v6 |
# | default (issue 17) | **v6** = v5 with those 12 introductions and 6 clause verb phrases (`suite_corpus.IOI_INTROS`, `IOI_CLAUSES`); batches of 32, 8000 steps, lr 2e-3, cosine | d64-L2, d80-L2, d96-L2 | this notebook's suite (the tables above) |
# | Z1, Z2 | v6, the default recipe, **seeds 1 and 2** (checkpoints every 250 steps and at the powers of two) | d96-L2 | the seed study of the largest size (the `seeds` table above) |
# | AA, AB | v6, the default recipe at **lr 3e-3**, seed 0 | d64-L2 (AA), d80-L2 (AB) | both learn IOI and hold it over the last 1000 steps (AA 95-97%, AB 91-93% [A] above [B]), GT 0.64-0.69 and 0.56-0.66, OML 100%: where the suite's same sizes at lr 2e-3 stop at 59-69% (finding 12) |
#
# What the search showed: (1) OML needs the evaluation's phrase "the month of" somewhere
# in training (in another template); without it accuracy stays at chance.
# (2) IOI on held-out templates needs *varied* training templates: with 16 fixed ones
# the models reach the copying stage, then inhibit the subject only inside the
# templates they saw, and on new templates keep copying the subject, the opposite of
# IOI. (3) The order of events in every run that copied was the paper's: IOI-name
# diverges first (the model learns to copy a name from the context), and IOI-copy
# separates from IOI later, if at all.
# (4) **The learning rate decides whether IOI transfers to the held-out templates** (runs D-F,
# a later session, each size on one core beside other jobs). At lr 3e-3 the models solve IOI
# on *training-style* stories (new name pairs in the training templates: [IO] above [S] on
# 99-100% of 300 stories from step 12000 for d96-L3 and from step 7000 for d64-L2, run D),
# yet on the held-out evaluation templates they copy the subject [B], and training longer
# (24000 steps) makes that worse, not better (d64-L2 72% -> 27%). At lr 1e-3, d96-L3 leaves the
# plateau at step ~8000 and solves the held-out IOI prompts (98%); at lr 2e-3, d64-L2 does (93%)
# while d96-L3 stays on the plateau. Larger models want the lower rate, as in the real suites.
# (5) GT trades off against IOI in d96-L3 at lr 1e-3: its probability difference rose to 0.47
# by step 7000 and fell back to 0.2-0.4 as IOI formed (0.22 at the end).
# (6) For the 96-wide models the learning rate trades IOI transfer against GT (runs E, G, H): lr 1e-3
# gives IOI 98% and GT 0.22; lr 1.5e-3 gives GT 0.73 and IOI 71%; a 2-layer d96 at 2e-3 gives IOI 92%
# and GT 0.20. In every d96 run GT is highest just before IOI forms and falls while it forms, except
# at 1.5e-3 where IOI stops short. Only d64-L2 at lr 2e-3 (run F) passes every threshold at once.
# (The GT losses are not from copying `YY`: p(YY) stays at 0.01-0.02; the comparison itself blurs,
# P(ZZ > YY) 0.70 -> 0.57 in run E's d96-L3 between steps 7000 and 12000.)
# (7) **Single runs are noisy.** Run F's d64-L2 (93%) did not repeat on a rerun of the same recipe
# (F2: 69%), and near the thresholds the metrics move by 5-20 points from one checkpoint to the next
# (the default's d64-L2: see its range over the last 1000 steps in the emergence table). Conclusions
# (4)-(6) rest on one run each and are weaker than they read.
# (8) **Syntactic variety in the training stories is what moves IOI transfer** (corpus v4, run K):
# with the leading-clause shape added, d64-L2's IOI loss on held-out prompts after IOI forms is well below
# that of the v3 runs F and F2, and the five evaluation templates with a leading clause (`After/When/While [B] and
# [A] ..., [B] gave a [OBJECT] to`) are solved on (nearly) every prompt; the two-sentence templates on
# fewer, and the two that end in `[B] said to`, which no training action resembles closely, on the
# fewest (a per-template check of run K, not repeated in this notebook). The 80- and 96-wide models stay at the copying stage within 12000 steps on
# both corpora (runs I-L): larger models leave the plateau later here (the copying stage at ~8000 against ~4000),
# and in 12000 steps they only reach the copying stage. So the default's largest size is d64-L2.
# (9) **Seeds** (runs K, M-O: the default recipe for d64-L2 with seeds 0-3): the recipe does not make
# IOI emerge in every run; some seeds pass with room, one gets stuck at the copying stage, and the
# default's seed 0 sits near the threshold. The claims table above counts them (with the `seeds` table
# above it and the probe summary below).
# (10) **The schedule and the batch** (issue 17, runs P-W). The paper's trapezoidal schedule (P, Q) did
# not help: seed 2 still copies [B], and seed 0 with it copies [B] too, with a lower GT. Batches of 32
# instead of 16 did: seed 2, stuck at the copying stage with batches of 16 (N), learns IOI early and
# holds it (R), and with batches of 32 the 80- and 96-wide 2-layer models leave the copying stage too
# (this notebook's suite). Twice the batch for two thirds of the steps (8000) costs 4/3 of the old
# budget per size. Runs T and U (batches of 32 over 12000 steps) were stopped when the default moved to
# 8000 steps. Runs V and W were that recipe's seed study (on corpus v4).
# (11) **The distractors' openings** (issue 17, runs V-Y and two scratch runs). On corpus v4 every
# held-out template that a failing run got wrong had a *distractor sibling*: a non-IOI training sentence
# with the template's opening or verb phrase (`Then, [X] went to the [PLACE] alone.`, `[X] and [Y] went to
# the [PLACE] together.`, `Afterwards, [X] decided to give the [OBJECT] away.`). Corpus v5 replaces the 12
# distractors by 12 that reuse none (`suite_corpus.DISTRACTOR_TEMPLATES`). With it, every size of the
# suite learns IOI early and holds it (the emergence table), and seed 2 of the largest size (Y) too; seed 1
# (X) rises, then stays below the threshold (the `seeds` table). Its per-template table (the second one
# above) shows where: it fails the templates whose introduction is `[B] and [A] went to the [PLACE]`
# (`Then, ...`, `Afterwards, ...`, and `The [PLACE] [B] and [A] went to had a [OBJECT].`), where it
# copies [B], and gets most of the others right. A check of a few prompts
# on its last checkpoint (not in the tables) separates the cause: `Then, Mary and John went to the market.
# Mary gave a key to` gives `Mary` (0.99), the same prompt with a training introduction (`walked into the
# market.`) gives `John` (0.81). `went to` occurs in no training story (the evaluation's verb phrases
# are kept out of them), so this seed's IOI rule depends on the introduction's verb phrase; seeds 0 and 2
# learned it without that dependence. More introduction verb phrases (none of the evaluation's) are the
# next lever: a scratch run of seed 1 with 12 more of them learns IOI (the last row of the search log), a
# candidate corpus v6.
# (12) **Corpus v6** (issue 17, runs Z1, Z2 and this notebook's suite): the 12 introductions and 6 clause
# verb phrases of the scratch run are in the corpus (`suite_corpus.VERSION` 6). The largest size now learns
# IOI in every seed tried and holds it over the last 1000 steps (the `seeds` table: the suite's seed 0 and
# runs Z1, Z2), with GT above 0.5 over the same window in two of the three (seed 2's GT dips below 0.5
# in its last 1000 steps; on the first training of runs Z1, Z2 it held in all three: a retraining of the same
# recipe on another day moved it by a few hundredths, finding 7). The two smaller sizes, which learned
# IOI on v5, now stop part-way on v6: the IOI margin opens (IOI-name minus IOI several nats, so notebook
# 01 has an IOI window for them) but [A] ranks above [B] on about three fifths of the prompts. The
# per-template table (the first one above) shows where: they solve every leading-clause template in both
# name orders and the two-sentence templates in the BABA order, and answer the *first* name of the pair in
# the ABBA order of the two-sentence templates (`Then, [B] and [A] ... [B] gave a [OBJECT] to` -> [B]): a
# position heuristic, where the largest size learned the rule. The stories put the names in either order
# with equal probability, so the corpus does not teach this bias; which of v5's and v6's passes the smaller
# sizes make is one training run each (finding 7). What v6 gives is the size contrast of the paper's suite
# (the largest size learns IOI, smaller ones only in part) with a robust largest size. The smaller sizes'
# learning rate is the lever: at 3e-3 instead of 2e-3 both learn IOI and GT and hold them (runs AA, AB; as in
# the real suites, smaller models take a larger rate). The suite now trains its two smaller sizes at 3e-3 and
# the largest at 2e-3 (per-size rates are part of the recipe, `checkpoint_suite.size_recipe`), and with them
# every size passes IOI, GT and OML over its last 1000 steps (the emergence table).
# Runs D-O were trained with `checkpoint_suite.train_size` (the default recipe with the steps,
# learning rate, shape, seed or corpus version changed) outside this notebook; their held-out metrics every 1000 steps are in
# `data/suite_recipe_probes.parquet` (run, corpus, size, steps, lr, step, metric, value), summarised
# below (the last probed checkpoint, and whether each threshold holds over the last 1000 steps).

# %%
metric_columns = ["ioi_loss", "ioi_name_loss", "ioi_copy_loss", "ioi_rank_accuracy", "gt_prob_diff", "oml_accuracy"]
display(csc.probe_summary(probes, chance).round(dict.fromkeys(metric_columns, 3)))

# %% [markdown]
# **Verdict** (the claims table above; issue 6's thresholds, issue 17's sizes and seeds). On corpus v6 the
# **largest size learns IOI in every seed tried** (three: the first claims row and the `seeds` table), holds
# it over its last 1000 steps, and learns OML there too in every seed, GT in two of three (seed 2's GT
# falls below 0.5 late: the second claims row, `partly`). With per-size learning rates
# (3e-3 for the two smaller sizes, finding 12) **every size learns IOI, GT and OML** and holds them over its
# last 1000 steps (the fourth claims row and the emergence table): three sizes in which IOI emerges, the
# largest in three seeds of three. The smaller sizes were trained on one seed each (seed 0 here, and the same
# recipe's probe runs AA, AB); single runs of the smaller sizes have moved by 20 points between reruns before
# (finding 7), so their pass is one run each. The IOI margin at the end orders the sizes by width (the
# emergence table), as the paper's suite does.
#
# **What is left.** Seeds of the two smaller sizes (one each), and wider models on this corpus (the fifth
# claims row: not probed).
#
# **Emergence windows**, for study 1's dense checkpoints: the suite saves a checkpoint every 100 steps
# after step 64, since where each capability forms is known only after training; the windows table
# above says where it formed in this run and how many checkpoints lie there (every size has at least 10
# inside its IOI window).
#
# **Wall time**: the sizes train side by side (`workers=2`, one process and one core each), the costliest
# first; each size's wall time is `train_wall_s` in the emergence table, and the training cell prints the
# suite's total. This suite was trained from scratch (corpus included) on the 2-core machine with one short
# low-priority job beside it part of the time: d96-L2 on one core while d80-L2 and then d64-L2 trained on the
# other, so the suite's wall time is about the sum of the two smaller sizes' `train_wall_s` (the training
# cell's total, within the 45 minutes issue 17 allows). It is read from the cache afterwards, so a cached
# rerun only evaluates and plots.
