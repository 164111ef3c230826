"""Study 3's claims (polca-hidden-breakthroughs, sec. 5 and appendix H) decided from notebook 03's tables.

Each ``*_claim`` function takes tables that notebook ``03_polca_wikipedia`` saves under ``data/``
(``polca_wikipedia_*.parquet``; empty tables, as a tiny run may give, are allowed) and returns one
row of the fidelity table (:func:`gradtools.fidelity.claim`); :func:`claims` returns them all.
Each verdict's criterion is in its docstring and in the row's ``why``.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from . import fidelity, polca_arithmetic_claims
from .claims_format import HDBSCAN_ONE_SEED, row

STUDY = fidelity.STUDIES[3]
BEYOND_UNIGRAM = 1.0     # nats the validation loss must end below the unigram entropy
LABEL_SHARE = 0.5        # a cluster has a readable automatic label when its top token, POS or POS sequence holds this share
SHARPER = 1.5            # projected loss "sudden while exact loss is smooth": median sharpness at least this ratio
MIRRORED = -0.5          # two clusters mirror each other: correlation of their per-interval changes below this
_row = functools.partial(row, STUDY)


def learns_claim(exact_loss: pd.DataFrame) -> dict:
    """Holds when the final validation loss is at least :data:`BEYOND_UNIGRAM` nats below the unigram entropy of the
    training stream (``polca_wikipedia_exact_loss``: step, validation_loss, unigram_entropy)."""
    last = exact_loss.loc[exact_loss.step.idxmax()]
    first = exact_loss.loc[exact_loss.step.idxmin()]
    return _row("the model learns English beyond word frequencies",
                "a 3-layer transformer (40M parameters) is trained on English Wikipedia (sec. 5.1)",
                f"validation loss {first.validation_loss:.2f} -> {last.validation_loss:.2f} nats at step "
                f"{int(last.step)}; unigram entropy {last.unigram_entropy:.2f}",
                bool(last.validation_loss < last.unigram_entropy - BEYOND_UNIGRAM),
                f"criterion: final validation loss at least {BEYOND_UNIGRAM:g} nat below the unigram entropy")


def decomposition_claim(check: pd.DataFrame) -> dict:
    """Study 2's criterion (:func:`gradtools.polca_arithmetic_claims.decomposition_claim`) on
    ``polca_wikipedia_decomposition_check``."""
    return polca_arithmetic_claims.decomposition_claim(check, study=STUDY)


def clusters_found_claim(basis_vectors: pd.DataFrame) -> dict:
    """Per basis vector whose mean projected loss decreases (``polca_wikipedia_basis_vectors``): it yields two or more
    HDBSCAN clusters. Reproduced for every such vector, partly for some; not measured without such vectors."""
    n = len(basis_vectors)
    with_two = int((basis_vectors.clusters >= 2).sum()) if n else 0
    total = int(basis_vectors.clusters.sum()) if n else 0
    verdict = fidelity.verdict_from_counts(with_two, n)
    return _row("POLCA clusters are found along the basis vectors",
                "sec. 5.2: POLCA clustering reveals clusters along each basis vector",
                f"{n} basis vectors decrease the mean projected loss; {with_two} of them yield two or more clusters "
                f"({total} clusters)", verdict,
                "criterion: every decreasing vector yields at least two clusters; " + HDBSCAN_ONE_SEED)


def labelled_claim(clusters: pd.DataFrame, medoids: pd.DataFrame) -> dict:
    """Holds when every cluster (``polca_wikipedia_clusters``) has a POS label and at least one medoid context
    (``polca_wikipedia_cluster_medoid_contexts``), as many as min(10, its size); not measured without clusters."""
    if not len(clusters):
        return _row("each cluster is labelled by POS and its 10 contexts closest to the medoid",
                    "sec. 5.2: most common token and spaCy POS sequence, 10 contexts closest to the medoid",
                    "no clusters", None, "no cluster to label")
    counts = (medoids.groupby(["vector", "cluster"]).size() if len(medoids) else pd.Series(dtype=int))
    have = [int(counts.get((int(r.vector), int(r.cluster)), 0)) for r in clusters.itertuples()]
    need = [min(10, int(s)) for s in clusters["size"]]
    ok = bool(clusters.pos.notna().all() and all(h >= max(1, n) for h, n in zip(have, need)))
    return _row("each cluster is labelled by POS and its 10 contexts closest to the medoid",
                "sec. 5.2: most common token and spaCy POS sequence, 10 contexts closest to the medoid",
                f"{len(clusters)} clusters; {int(clusters.pos.notna().sum())} with a POS label; medoid contexts "
                f"{min(have)}-{max(have)} per cluster", ok,
                "criterion: every cluster has a POS label and min(10, size) medoid contexts")


def label_shares(clusters: pd.DataFrame) -> pd.Series:
    """Per cluster, the largest share held by its most common token, POS or POS sequence."""
    return clusters[["token_share", "pos_share", "pos_sequence_share"]].max(axis=1)


def constructions_claim(clusters: pd.DataFrame) -> dict:
    """A cluster reads as one construction when its most common token, POS or POS sequence holds at least
    :data:`LABEL_SHARE` of it (:func:`label_shares`). Reproduced when at least half of the clusters do, partly when
    some do. The paper's labels were confirmed by reading medoid contexts; that reading is not scored here."""
    if not len(clusters):
        return _row("clusters are grammatical constructions (automatic labels)",
                    "tables 1-2: appositives, repeated newlines, comma after a parenthetical, to/from after a clause",
                    "no clusters", None, "no cluster to label")
    share = label_shares(clusters)
    n = int((share >= LABEL_SHARE).sum())
    best = clusters.loc[share.idxmax()]
    holds = bool(n >= len(clusters) / 2)
    why = f"criterion: at least half of the clusters have a top token, POS or POS sequence holding >= {LABEL_SHARE:.0%}"
    if not holds:
        why += ("; the automatic labels are weak here, the medoid contexts of small clusters may still read as "
                "constructions (see the notebook's cluster tables); " + HDBSCAN_ONE_SEED)
    return _row("clusters are grammatical constructions (automatic labels)",
                "tables 1-2: appositives, repeated newlines, comma after a parenthetical, to/from after a clause",
                f"{n} of {len(clusters)} clusters with a label share >= {LABEL_SHARE:.0%}; best: {best.label!r} "
                f"(vector {int(best.vector)}, n={int(best['size'])}); label shares {share.min():.0%}-{share.max():.0%}",
                holds, why, partly=0 < n)


def sharpness_claim(clusters: pd.DataFrame, late: bool) -> dict:
    """Median over clusters of the projected-loss sharpness vs the exact-loss sharpness of the same tokens
    (:func:`gradtools.polca.sharpness`), over the whole run or (``late``) from 10% of training on. Reproduced when
    projected is at least :data:`SHARPER` times exact, partly when it is sharper by less; not measured without
    clusters."""
    suffix, when = ("_late", "after the first 10% of training") if late else ("", "whole run")
    claim = f"projected loss changes suddenly while exact loss is smooth ({when})"
    paper = "fig. 6: POLCA clusters have sudden changes in projected loss despite smooth exact loss curves"
    if not len(clusters):
        return _row(claim, paper, "no clusters", None, "no cluster to measure")
    p, e = clusters["projected_sharpness" + suffix], clusters["exact_sharpness" + suffix]
    measured = (f"median sharpness over {len(clusters)} clusters: projected {p.median():.3f}, exact {e.median():.3f}; "
                f"projected sharper in {(p > e).mean():.0%} of clusters")
    if not (np.isfinite(p.median()) and np.isfinite(e.median()) and e.median() > 0):
        return _row(claim, paper, measured, None, "the median exact-loss sharpness is 0 or missing, so the ratio of "
                    "projected to exact sharpness is undefined")
    ratio = p.median() / e.median()
    why = f"criterion: median projected sharpness >= {SHARPER} x median exact sharpness (partly: sharper by less)"
    if ratio < SHARPER:
        if ratio > 1:
            why += ". Projected curves are only slightly sharper than the exact loss"
        elif not late:
            why += ". The exact loss moves most in the first intervals (the early plunge of every curve)"
        why += "; " + HDBSCAN_ONE_SEED
    return _row(claim, paper, measured, bool(ratio >= SHARPER), why, partly=bool(ratio > 1))


def mirroring_claim(mirror: pd.DataFrame) -> dict:
    """Holds when some pair of clusters along one vector (``polca_wikipedia_cluster_mirroring``) has a correlation
    of per-interval projected-loss changes below :data:`MIRRORED`; not measured without pairs."""
    claim, paper = "mirrored cluster pairs along one vector", \
        "fig. 6b: appositive and non-appositive clusters mirror each other's movement along one vector"
    if not len(mirror):
        return _row(claim, paper, "no vector with two clusters", None, "no pair of clusters to compare")
    low = mirror.increment_correlation.min()
    holds = bool(low < MIRRORED)
    why = f"criterion: some pair's correlation of per-interval changes < {MIRRORED}"
    if not holds:
        why += ("; " + ("every pair is positively correlated: the clusters of a vector move together" if low > 0
                        else "no pair anticorrelated enough") + "; " + HDBSCAN_ONE_SEED)
    return _row(claim, paper, f"lowest correlation of per-interval changes: {low:.2f} over {len(mirror)} pairs "
                f"(highest {mirror.increment_correlation.max():.2f})", holds, why)


def exact_clusters_claim(exact_clusters: pd.DataFrame, clusters: pd.DataFrame) -> dict:
    """Holds when clustering the exact loss curves (``polca_wikipedia_exact_loss_clusters``, same settings) finds
    fewer clusters than POLCA clustering does over all decreasing vectors (``polca_wikipedia_clusters``)."""
    n_exact, n_polca = len(exact_clusters), len(clusters)
    measured = f"exact-loss clusters {n_exact}; POLCA clusters {n_polca}"
    if n_exact:
        measured += f"; exact-loss cluster sharpness (whole run) median {exact_clusters.exact_sharpness.median():.3f}"
    holds = bool(n_exact < n_polca)
    why = "criterion: fewer exact-loss clusters than POLCA clusters"
    if not holds:
        why += "; " + HDBSCAN_ONE_SEED
    return _row("exact-loss clustering reveals no breakthroughs",
                "appendix fig. 10: clusters of exact loss curves show no breakthroughs except very early in training",
                measured, holds, why)


def settings_claim(sensitivity: pd.DataFrame) -> dict:
    """Per HDBSCAN setting tried (``polca_wikipedia_cluster_settings_sensitivity``): some decreasing vector yields two
    or more clusters. Reproduced at every setting, partly at some."""
    n = len(sensitivity)
    ok = int((sensitivity.vectors_with_two_or_more >= 1).sum()) if n else 0
    verdict = fidelity.verdict_from_counts(ok, n)
    rng = f"{int(sensitivity.clusters.min())}-{int(sensitivity.clusters.max())}" if n else "-"
    return _row("POLCA clusters do not hinge on HDBSCAN's settings",
                "the paper gives no HDBSCAN settings in its text (authors' code: min_cluster_size 300, "
                "min_samples tokens/15)",
                f"clusters found at {ok} of {n} settings (min_cluster_size 1-5% of kept tokens x min_samples 3-10); "
                f"{rng} clusters in all", verdict,
                "criterion: at every setting some vector yields two or more clusters; " + HDBSCAN_ONE_SEED)


def claims(exact_loss: pd.DataFrame, check: pd.DataFrame, basis_vectors: pd.DataFrame, clusters: pd.DataFrame,
           medoids: pd.DataFrame, mirror: pd.DataFrame, exact_clusters: pd.DataFrame,
           sensitivity: pd.DataFrame) -> list[dict]:
    """Every claim notebook 03 checks, one row each, from its tables (``polca_wikipedia_*``): ``exact_loss``,
    ``decomposition_check``, ``basis_vectors``, ``clusters``, ``cluster_medoid_contexts``, ``cluster_mirroring``,
    ``exact_loss_clusters``, ``cluster_settings_sensitivity``."""
    return [learns_claim(exact_loss), decomposition_claim(check), clusters_found_claim(basis_vectors),
            labelled_claim(clusters, medoids), constructions_claim(clusters),
            sharpness_claim(clusters, late=False), sharpness_claim(clusters, late=True), mirroring_claim(mirror),
            exact_clusters_claim(exact_clusters, clusters), settings_claim(sensitivity)]


TABLES = {"exact_loss": "exact_loss", "check": "decomposition_check", "basis_vectors": "basis_vectors",
          "clusters": "clusters", "medoids": "cluster_medoid_contexts", "mirror": "cluster_mirroring",
          "exact_clusters": "exact_loss_clusters", "sensitivity": "cluster_settings_sensitivity"}


def claims_from_folder(folder) -> list[dict]:
    """:func:`claims` from the ``polca_wikipedia_*.parquet`` tables in ``folder`` (a profile's data folder)."""
    return claims(**{k: pd.read_parquet(Path(folder) / f"polca_wikipedia_{v}.parquet") for k, v in TABLES.items()})
