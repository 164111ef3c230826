r"""Study 3's clustering of POLCA curves (polca-hidden-breakthroughs, sec. 3.3 and 5): settings, labels, mirroring.

The paper clusters, per basis vector whose mean projected loss decreases, the projected-loss
trajectories of the tokens whose own projected loss decreases, with HDBSCAN, and drops outliers
(sec. 4.1, 5.1). Its text names no HDBSCAN setting; the study sheet (``STUDIES.md``) gives
``min_cluster_size`` 300 for 12600 Wikipedia tokens and ``min_samples`` = tokens / 15. Here:

* :func:`settings_grid`: those settings scaled to this run's token count (``min_cluster_size``
  :math:`= \mathrm{round}(300 \cdot n / 12600)`, ``min_samples`` = kept tokens / 15, as notebook 02
  reads "tokens"), the notebook's former permissive settings (2% of the kept tokens, 5), and
  settings between them;
* :func:`cluster_kept`: one vector's clustering with POS labels and medoid contexts
  (:mod:`gradtools.pos_labels`); :func:`cluster_sharpness` the sharpness of each cluster's mean curves;
* :func:`sensitivity`: clusters per vector at every setting of the grid;
* :func:`mirror_search`: per-interval correlation of every pair of clusters' mean projected loss
  along **every** basis vector, with :func:`min_correlation_null`, the chance level of the lowest
  correlation of a search that size;
* :func:`cost_projection`: POLCA's and the basis' measured cost scaled to other token, vector and
  interval counts (what the paper's scale would take here).
"""
from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import numpy as np
import pandas as pd

from . import pos_labels
from .cache import atomic_write
from .polca import cluster_curves, sharpness

PAPER_TOKENS = 12600            # sec. 5.1: "a validation set of 12600 output tokens"
PAPER_MIN_CLUSTER_SIZE = 300    # STUDIES.md, study 2 (Wikipedia); not in the paper's text
SAMPLES_DIVISOR = 15            # STUDIES.md: min_samples = tokens / 15; not in the paper's text
PERMISSIVE_FRACTION = 0.02      # the notebook's former min_cluster_size: 2% of the kept tokens ...
PERMISSIVE_MIN_SAMPLES = 5      # ... with min_samples 5
BETWEEN_MIN_SAMPLES = (11, 30)  # min_samples tried between the permissive 5 and tokens / 15

SIZE_PAPER, SIZE_PERMISSIVE, SIZE_UNSCALED = "300/12600 of tokens", "2% of kept", "300 (unscaled)"
SAMPLES_PAPER = "kept/15"
PAPER_SETTING = f"{SIZE_PAPER} | {SAMPLES_PAPER}"
PERMISSIVE_SETTING = f"{SIZE_PERMISSIVE} | {PERMISSIVE_MIN_SAMPLES}"


class Setting(NamedTuple):
    """One HDBSCAN setting: its name (``"<size rule> | <samples rule>"``), rules and values."""

    name: str
    size_rule: str
    samples_rule: str
    min_cluster_size: int
    min_samples: int


def paper_min_cluster_size(n_tokens: int) -> int:
    """The paper's 300 of 12600 tokens scaled to ``n_tokens`` validation tokens (at least 2)."""
    return max(2, round(PAPER_MIN_CLUSTER_SIZE * n_tokens / PAPER_TOKENS))


def paper_min_samples(n_kept: int) -> int:
    """``min_samples`` = tokens / 15 of the ``n_kept`` tokens clustered (at least 1)."""
    return max(1, n_kept // SAMPLES_DIVISOR)


def settings_grid(n_tokens: int, n_kept: int) -> list[Setting]:
    """HDBSCAN settings for one clustering of ``n_kept`` of ``n_tokens`` validation tokens, the paper's first.

    ``min_cluster_size``: the paper's scaled (:func:`paper_min_cluster_size`) or 2% of the kept
    tokens (at least 5); ``min_samples``: 5, 11, 30 or kept / 15 (:func:`paper_min_samples`); and
    the paper's unscaled 300 with kept / 15. Names stay the same whatever the counts, so settings
    can be compared across vectors.
    """
    sizes = {SIZE_PAPER: paper_min_cluster_size(n_tokens),
             SIZE_PERMISSIVE: max(PERMISSIVE_MIN_SAMPLES, round(PERMISSIVE_FRACTION * n_kept))}
    samples = {SAMPLES_PAPER: paper_min_samples(n_kept), str(PERMISSIVE_MIN_SAMPLES): PERMISSIVE_MIN_SAMPLES,
               **{str(m): m for m in BETWEEN_MIN_SAMPLES}}
    grid = [Setting(f"{s} | {m}", s, m, sizes[s], samples[m]) for s in sizes for m in samples]
    grid.append(Setting(f"{SIZE_UNSCALED} | {SAMPLES_PAPER}", SIZE_UNSCALED, SAMPLES_PAPER, PAPER_MIN_CLUSTER_SIZE,
                        samples[SAMPLES_PAPER]))
    return grid


def setting_named(name: str, n_tokens: int, n_kept: int) -> Setting:
    """The setting of :func:`settings_grid` called ``name`` (e.g. :data:`PAPER_SETTING`)."""
    for s in settings_grid(n_tokens, n_kept):
        if s.name == name:
            return s
    raise KeyError(f"no setting {name!r}")


# ------------------------------------------------------------------ one clustering

class Clustering(NamedTuple):
    """One vector's clustering: ``idx`` (m,) the clustered tokens' indices, ``clusters`` (m,) their labels
    (-1: outlier), ``labels`` (one row per cluster, :func:`gradtools.pos_labels.label_clusters`) and
    ``medoids`` (:func:`gradtools.pos_labels.medoid_contexts`, indices relative to ``idx``)."""

    idx: np.ndarray
    clusters: np.ndarray
    labels: pd.DataFrame
    medoids: pd.DataFrame


def cluster_kept(curves: np.ndarray, keep: np.ndarray, tokens: pd.DataFrame, setting: Setting,
                 k_contexts: int = 10) -> Clustering:
    """HDBSCAN over the kept tokens' trajectories, labelled by POS and shown by the contexts nearest the medoid.

    Args:
        curves: (T, n) one trajectory per validation token (projected or exact loss).
        keep: (n,) bool, the tokens to cluster.
        tokens: (n,) rows with ``token, pos, pos_sequence, in_word, context``
            (:func:`gradtools.wikipedia_lm.validation_tokens`).
        setting: the HDBSCAN setting.
    """
    idx = np.flatnonzero(np.asarray(keep, dtype=bool))
    x = np.asarray(curves, dtype=np.float64)[:, idx].T
    clusters = cluster_curves(x, min_cluster_size=setting.min_cluster_size, min_samples=setting.min_samples)
    kept = tokens.iloc[idx].reset_index(drop=True)
    labels = pos_labels.label_clusters(clusters, kept)
    medoids = pos_labels.medoid_contexts(x, clusters, kept.context.tolist(), k=k_contexts)
    return Clustering(idx, clusters, labels, medoids)


SHARPNESS_COLUMNS = ["cluster", "projected_sharpness", "exact_sharpness", "projected_sharpness_late",
                     "exact_sharpness_late", "projected_peak_step", "exact_peak_step"]


def peak_step(curve: np.ndarray, steps: np.ndarray) -> int:
    """The checkpoint step ending the interval over which ``curve`` (T,) changes most (``steps`` (T,))."""
    return int(np.asarray(steps)[1:][np.abs(np.diff(curve)).argmax()])


def cluster_sharpness(projected: np.ndarray, exact: np.ndarray, clustering: Clustering, late: np.ndarray,
                      steps: np.ndarray) -> pd.DataFrame:
    """Per cluster, :func:`gradtools.polca.sharpness` of its mean projected curve and of its mean exact loss,
    and where each moves most.

    ``projected``, ``exact``: (T, n); ``late``: (T,) bool, the checkpoints of the ``*_late`` columns;
    ``steps``: (T,) the checkpoints' steps. Returns rows (cluster, projected_sharpness,
    exact_sharpness, projected_sharpness_late, exact_sharpness_late, projected_peak_step,
    exact_peak_step), the peak steps by :func:`peak_step` over the whole run.
    """
    rows = []
    for c in clustering.labels.cluster:
        sel = clustering.idx[clustering.clusters == c]
        p, e = projected[:, sel].mean(1), exact[:, sel].mean(1)
        rows.append(dict(cluster=int(c), projected_sharpness=sharpness(p), exact_sharpness=sharpness(e),
                         projected_sharpness_late=sharpness(p[late]), exact_sharpness_late=sharpness(e[late]),
                         projected_peak_step=peak_step(p, steps), exact_peak_step=peak_step(e, steps)))
    return pd.DataFrame(rows, columns=SHARPNESS_COLUMNS)


def cluster_vectors(projected: np.ndarray, exact: np.ndarray, tokens: pd.DataFrame, vectors: Sequence[int],
                    settings: Sequence[str], late: np.ndarray,
                    steps: np.ndarray) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Cluster each of ``vectors`` at each named setting (:func:`setting_named`), as the paper does (sec. 4.1).

    Args:
        projected: (T, k, n) projected losses; exact: (T, n) exact per-token losses.
        tokens: (n,) rows of :func:`gradtools.wikipedia_lm.validation_tokens`.
        vectors: the basis vectors to cluster (those whose mean projected loss decreases), in rank order.
        settings: names of :func:`settings_grid` settings.
        late: (T,) bool, the checkpoints of the late sharpness; steps: (T,) the checkpoints' steps.

    Per vector the kept tokens are those whose projected loss ends below 0. Returns
    ``(clusterings, clusters, medoids)``: ``{(setting, vector): Clustering}``; one row per cluster
    (label columns, sharpness, vector, rank, kept_tokens, setting, min_cluster_size, min_samples);
    the medoid contexts with vector and setting.
    """
    n = projected.shape[-1]
    clusterings, tables, medoid_tables = {}, [], []
    for rank, j in enumerate(vectors, start=1):
        curves = np.asarray(projected[:, j], dtype=np.float64)
        keep = curves[-1] < 0
        for name in settings:
            s = setting_named(name, n, int(keep.sum()))
            cl = cluster_kept(curves, keep, tokens, s)
            clusterings[name, int(j)] = cl
            sharp = cluster_sharpness(curves, exact, cl, late, steps)
            tables.append(cl.labels.merge(sharp, on="cluster").assign(
                vector=int(j), rank=rank, kept_tokens=int(keep.sum()), setting=name,
                min_cluster_size=s.min_cluster_size, min_samples=s.min_samples))
            medoid_tables.append(cl.medoids.assign(vector=int(j), setting=name))
    clusters = (pd.concat(tables, ignore_index=True) if tables
                else pd.DataFrame(columns=["vector", "cluster", "setting"]))
    medoids = (pd.concat(medoid_tables, ignore_index=True) if medoid_tables
               else pd.DataFrame(columns=["vector", "cluster", "setting", "context"]))
    return clusterings, clusters, medoids


def sensitivity(projected: np.ndarray, vectors: Sequence[int], n_tokens: int) -> pd.DataFrame:
    """Clusters found along each of ``vectors`` at every setting of :func:`settings_grid`.

    ``projected``: (T, k, n) projected losses. Per vector the kept tokens are those whose projected
    loss ends below 0. Returns one row per (vector, setting): vector, setting, size_rule,
    samples_rule, min_cluster_size, min_samples, kept, clusters, clustered (tokens not outliers).
    """
    rows = []
    for j in vectors:
        curves = np.asarray(projected[:, j], dtype=np.float64)
        keep = curves[-1] < 0
        for s in settings_grid(n_tokens, int(keep.sum())):
            c = cluster_curves(curves[:, keep].T, min_cluster_size=s.min_cluster_size, min_samples=s.min_samples)
            rows.append(dict(vector=int(j), setting=s.name, size_rule=s.size_rule, samples_rule=s.samples_rule,
                             min_cluster_size=s.min_cluster_size, min_samples=s.min_samples, kept=int(keep.sum()),
                             clusters=len(set(c[c >= 0].tolist())), clustered=int((c >= 0).sum())))
    return pd.DataFrame(rows, columns=["vector", "setting", "size_rule", "samples_rule", "min_cluster_size",
                                       "min_samples", "kept", "clusters", "clustered"])


def sensitivity_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per setting of :func:`sensitivity`'s table: vectors clustered, vectors with two or more clusters, clusters.

    Settings keep the order of :func:`settings_grid` (the paper's first).
    """
    order = list(dict.fromkeys(table.setting))
    g = table.assign(two=table.clusters >= 2, any=table.clusters >= 1).groupby("setting", sort=False)
    out = pd.DataFrame({"vectors": g.vector.nunique(), "vectors_with_two_or_more": g.two.sum().astype(int),
                        "vectors_with_any": g["any"].sum().astype(int), "clusters": g.clusters.sum(),
                        "min_cluster_size": g.min_cluster_size.agg(_span), "min_samples": g.min_samples.agg(_span)})
    return out.reindex(order).rename_axis("setting").reset_index()


def _span(values: pd.Series) -> str:
    lo, hi = int(values.min()), int(values.max())
    return str(lo) if lo == hi else f"{lo}-{hi}"


# ------------------------------------------------------------------ mirroring

def increment_correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation of ``a`` and ``b`` (p, m); NaN where a row is constant."""
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    den = np.sqrt((a ** 2).sum(1) * (b ** 2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(1) / den, np.nan)


def mirror_search(projected: np.ndarray, members: dict[tuple[int, int], np.ndarray]) -> pd.DataFrame:
    r"""Every pair of clusters, along every basis vector: how their projected losses move against each other.

    Args:
        projected: (T, k, n) projected losses.
        members: ``(found_on, cluster) -> token indices``, the clusters of every clustered vector.

    Returns:
        one row per (pair, basis vector ``along``): vector_a, cluster_a, vector_b, cluster_b, along,
        ``own`` (both clusters come from the clustering of ``along``: the paper's fig. 6b) and
        ``increment_correlation``, the correlation over intervals of the two clusters' per-interval
        changes of mean projected loss along ``along`` (-1: one falls exactly when the other rises).
    """
    projected = np.asarray(projected, dtype=np.float64)
    means = {key: np.diff(projected[:, :, idx].mean(-1), axis=0).T for key, idx in members.items()}  # (k, T-1)
    rows = []
    for (ka, kb) in itertools.combinations(sorted(members), 2):
        r = increment_correlations(means[ka], means[kb])
        for along in range(projected.shape[1]):
            rows.append(dict(vector_a=ka[0], cluster_a=ka[1], vector_b=kb[0], cluster_b=kb[1], along=along,
                             own=bool(ka[0] == kb[0] == along), increment_correlation=float(r[along])))
    return pd.DataFrame(rows, columns=["vector_a", "cluster_a", "vector_b", "cluster_b", "along", "own",
                                       "increment_correlation"])


def members_of(clusterings: dict, setting: str) -> dict[tuple[int, int], np.ndarray]:
    """``(vector, cluster) -> token indices`` of every cluster found at ``setting`` (:func:`cluster_vectors`)."""
    return {(j, int(c)): cl.idx[cl.clusters == c] for (name, j), cl in clusterings.items() if name == setting
            for c in cl.labels.cluster}


def mirroring(projected: np.ndarray, clusterings: dict, setting: str, *, permutations: int = 200,
              seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`mirror_search` over the clusters found at ``setting`` and its :func:`mirror_summary`, the chance
    levels from :func:`min_correlation_null` (own-vector pairs and the whole search separately).

    Returns ``(pairs, summary)``, both with a ``setting`` column.
    """
    members = members_of(clusterings, setting)
    pairs = mirror_search(projected, members).dropna(subset=["increment_correlation"])
    nulls = []
    for sub in (pairs[pairs.own.astype(bool)], pairs):
        a, b = pair_increments(projected, members, sub)
        nulls.append(min_correlation_null(a, b, permutations=permutations, seed=seed))
    return pairs.assign(setting=setting), mirror_summary(pairs, *nulls).assign(setting=setting)


def pair_increments(projected: np.ndarray, members: dict[tuple[int, int], np.ndarray],
                    pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The per-interval mean changes (p, T-1) of both clusters of each row of ``pairs`` along its ``along``."""
    projected = np.asarray(projected, dtype=np.float64)

    def inc(vector, cluster, along):
        return np.diff(projected[:, along, members[(vector, cluster)]].mean(-1))
    a = [inc(r.vector_a, r.cluster_a, r.along) for r in pairs.itertuples()]
    b = [inc(r.vector_b, r.cluster_b, r.along) for r in pairs.itertuples()]
    width = projected.shape[0] - 1
    return np.array(a).reshape(-1, width), np.array(b).reshape(-1, width)


def min_correlation_null(a: np.ndarray, b: np.ndarray, *, permutations: int = 200, quantile: float = 0.05,
                         seed: int = 0) -> float:
    """Chance level of the lowest of the row-wise correlations of ``a`` and ``b`` (p, m): its ``quantile``
    when the intervals of each row of ``b`` are shuffled (independently per row), ``permutations`` times.

    A search over many pairs finds a low correlation by chance; a mirror counts when it lies below
    this level. NaN when there is no pair.
    """
    if not len(a):
        return float("nan")
    rng = np.random.default_rng(seed)
    lows = [np.nanmin(increment_correlations(a, rng.permuted(b, axis=1))) for _ in range(permutations)]
    return float(np.quantile(lows, quantile))


def mirror_summary(pairs: pd.DataFrame, null_own: float, null_all: float) -> pd.DataFrame:
    """The lowest correlation of the paper's own-vector pairs and of the whole search, each with its chance level.

    ``pairs``: :func:`mirror_search` rows (one setting). Returns rows (search, pairs, lowest, null_5pct,
    vector_a, cluster_a, vector_b, cluster_b, along) for ``"own vector"`` and ``"all vectors"``.
    """
    rows = []
    for name, sub, null in [("own vector", pairs[pairs.own.astype(bool)], null_own), ("all vectors", pairs, null_all)]:
        sub = sub.dropna(subset=["increment_correlation"])
        best = sub.loc[sub.increment_correlation.idxmin()] if len(sub) else None
        rows.append(dict(search=name, pairs=len(sub), lowest=np.nan if best is None else best.increment_correlation,
                         null_5pct=null, **{k: (-1 if best is None else int(best[k]))
                                             for k in ("vector_a", "cluster_a", "vector_b", "cluster_b", "along")}))
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ cost

def timed(record: str | Path, compute: Callable[[], object]) -> tuple[object, float]:
    """``(compute(), seconds)``: the seconds measured now, or those recorded in ``record`` (JSON) by the run that
    first computed it (``compute`` reads its own cache then). A partly cached first run records only its part."""
    record = Path(record)
    start = time.time()
    out = compute()
    seconds = time.time() - start
    if record.exists():
        return out, float(json.loads(record.read_text())["seconds"])
    atomic_write(record, lambda tmp: tmp.write_text(json.dumps({"seconds": seconds})))
    return out, seconds


def cost_projection(polca_seconds: float, hessian_seconds: float, *, tokens: int, vectors: int, intervals: int,
                    scenarios: dict[str, tuple[int, int, int]], fixed_seconds: float = 0.0) -> pd.DataFrame:
    """POLCA and basis cost measured on this run, scaled to other (tokens, vectors, intervals) on the same model.

    POLCA's cost is taken proportional to tokens x (vectors + 1) x intervals (one vmapped
    forward-over-forward pass per direction, the full step riding along as one more direction),
    the basis' to vectors (one deflated Lanczos each, same sample and iterations). Returns one
    row per scenario (``"this run"`` first): tokens, vectors, intervals, polca_s, basis_s,
    total_s, which adds ``fixed_seconds`` (training and the rest, the same in every scenario), and
    ``relative``, POLCA and basis cost over this run's (a ratio that holds whatever the machine's
    load when the seconds were measured).
    """
    per_unit = polca_seconds / max(1, tokens * (vectors + 1) * intervals)
    per_vector = hessian_seconds / max(1, vectors)
    rows = []
    for name, (t, v, i) in {"this run": (tokens, vectors, intervals), **scenarios}.items():
        polca_s, basis_s = per_unit * t * (v + 1) * i, per_vector * v
        rows.append(dict(scenario=name, tokens=t, vectors=v, intervals=i, polca_s=polca_s, basis_s=basis_s,
                         total_s=polca_s + basis_s + fixed_seconds))
    table = pd.DataFrame(rows)
    here = table.polca_s.iloc[0] + table.basis_s.iloc[0]
    return table.assign(relative=(table.polca_s + table.basis_s) / here if here > 0 else np.nan)
