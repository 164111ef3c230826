r"""POLCA: loss change per example and basis direction, and clustering of its trajectories.

polca-hidden-breakthroughs (section 3, appendix A), notation of ``/work/shared/STUDIES.md``:

* **Basis** (algorithm 1): start with an empty B; at each chosen checkpoint
  :math:`\theta_t` append the top-k eigenvectors of
  :math:`(I - BB^\top) H(\theta_t) (I - BB^\top)`, H the Hessian of the training
  loss on a fixed sample, by Lanczos on Hessian-vector products
  (:func:`hessian_basis`, reusing :func:`gradtools.curvature.lanczos`).
* **POLCA term** (eq. 9) of token i, basis vector b, interval
  :math:`d_t = \theta_{t+1} - \theta_t`:

  .. math:: \mathrm{polca}_i^b(t) = \langle g_i, b\rangle\langle b, d_t\rangle
            + \tfrac12 (b^\top H_i b)\langle b, d_t\rangle^2,

  both derivatives at :math:`\theta_t`, by forward-mode AD
  (:func:`gradtools.curvature.directional_derivatives`), no per-token backward.
  With :math:`b = d_t / \|d_t\|` it is the full-step second-order Taylor
  prediction of the token's loss change (:func:`polca_terms` with ``full_step``).
* **Projected loss** (eq. 10): :math:`L_i^b(t) = \sum_{s<t} \mathrm{polca}_i^b(s)`.
* **Clustering** (sec. 3.3, 4.1): keep basis vectors whose mean projected loss
  decreases, drop tokens whose projected loss increases, cluster the remaining
  trajectories with HDBSCAN, drop outliers; a cluster's homogeneity is the share
  of its tokens carrying its majority label.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.func import functional_call
from tqdm.auto import tqdm

from .cache import cached_torch
from .distributed import my_share, rank_and_world
from .curvature import Params, directional_derivatives, flatten, hessian_matvec, hvp, lanczos, unflatten


# ------------------------------------------------------------------ helpers

class _Bound:
    """A model called with other parameters (``functional_call``), usable where a model is expected."""

    def __init__(self, model: nn.Module, params: Params):
        self.model, self.params = model, params

    def __call__(self, *args, **kwargs):
        return functional_call(self.model, self.params, args, kwargs)


def functional_loss(model: nn.Module, loss_fn: Callable[[nn.Module, dict], Tensor],
                    batch: dict) -> Callable[[Params], Tensor]:
    """``params -> loss_fn(model with params, batch)``: a model loss as a function of a parameter dict."""
    return lambda params: loss_fn(_Bound(model, params), batch)


# -------------------------------------------------------------- algorithm 1

class HessianBasis(NamedTuple):
    r"""Output of :func:`hessian_basis`.

    vectors (dim, m) orthonormal columns; eigenvalues (m,) of the deflated
    Hessian each was found for; source (m,) the index of that checkpoint in the
    list given; residuals (m,) :math:`\|P H P b - \lambda b\| / |\lambda|`.
    """

    vectors: Tensor
    eigenvalues: Tensor
    source: Tensor
    residuals: Tensor


def hessian_basis(loss_fn: Callable[[Params], Tensor], checkpoints: Sequence[Params], k: int = 1, *,
                  max_iters: int | None = None, seed: int = 0, progress: bool = False) -> HessianBasis:
    r"""POLCA's algorithm 1: at each checkpoint in turn, append the top-k eigenvectors of the deflated Hessian.

    Args:
        loss_fn: ``params -> scalar`` training loss on a fixed sample.
        checkpoints: parameter dicts, in the order vectors are to be collected.
        k: eigenvectors per checkpoint (paper: 1).
        max_iters: Lanczos iterations per checkpoint (see :func:`gradtools.curvature.lanczos`).

    Returns:
        :class:`HessianBasis` with ``len(checkpoints) * k`` vectors.
    """
    first = checkpoints[0]
    dim = sum(t.numel() for t in first.values())
    dtype = next(iter(first.values())).dtype
    # The basis and the Krylov vectors are kept in float64 whatever the model's dtype: in float32 a
    # unit vector of ~1e5 entries already fails lanczos' orthonormality check (|b^T b - 1| ~ 1e-4).
    basis = torch.zeros(dim, 0, dtype=torch.float64)
    values, source, residuals = [], [], []
    for index, params in enumerate(tqdm(checkpoints, desc="Hessian basis", disable=not progress)):
        model_matvec = hessian_matvec(loss_fn, params)
        matvec = lambda x: model_matvec(x.to(dtype)).to(torch.float64)  # noqa: E731
        lam, vecs = lanczos(matvec, dim, k, orthogonal_to=basis if basis.shape[1] else None,
                            max_iters=max_iters, seed=seed + index, dtype=torch.float64)
        for j in range(k):
            v = vecs[:, j]
            hv = matvec(v)
            if basis.shape[1]:  # the deflated operator P H P (v is already orthogonal to B)
                hv = hv - basis @ (basis.T @ hv)
            residuals.append(((hv - lam[j] * v).norm() / lam[j].abs().clamp_min(1e-30)).item())
        basis = torch.cat([basis, vecs], dim=1)
        values.append(lam)
        source += [index] * k
    return HessianBasis(basis.to(dtype), torch.cat(values).to(dtype), torch.tensor(source), torch.tensor(residuals))


def random_orthonormal_basis(dim: int, m: int, *, seed: int = 0, dtype: torch.dtype = torch.float32) -> Tensor:
    """(dim, m) orthonormal columns, uniformly random (QR of a Gaussian matrix): appendix E's ablation."""
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(dim, m, generator=g, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).to(dtype)


# -------------------------------------------------------------- POLCA terms

class PolcaTerms(NamedTuple):
    r"""POLCA factors of one interval for k directions and n tokens.

    first (k, n) :math:`\langle g_i, b\rangle`; second (k, n) :math:`b^\top H_i b`;
    coef (k,) :math:`\langle b, d_t\rangle`.
    """

    first: Tensor
    second: Tensor
    coef: Tensor

    @property
    def polca(self) -> Tensor:
        """(k, n) second-order POLCA terms, eq. 9."""
        return self.first * self.coef[..., None] + 0.5 * self.second * self.coef[..., None] ** 2

    @property
    def polca_first_order(self) -> Tensor:
        """(k, n) first-order terms only, eq. 4 (appendix F's comparison)."""
        return self.first * self.coef[..., None]

    @property
    def fisher(self) -> Tensor:
        r"""(k, n) projected empirical Fisher :math:`(b^\top g_i)^2` (appendix D)."""
        return self.first ** 2


def polca_terms(per_token_loss_fn: Callable[[Params], Tensor], params: Params, next_params: Params,
                basis: Tensor | None = None, *, full_step: bool = False, chunk: int = 16) -> PolcaTerms:
    r"""POLCA factors of the interval ``params -> next_params`` along each column of ``basis`` (dim, k).

    With ``full_step=True`` the direction is :math:`d_t/\|d_t\|` (k = 1), whose
    POLCA term is the second-order Taylor prediction of the whole step.
    Directions are processed ``chunk`` at a time (one vmapped forward-over-forward pass each).
    """
    step = flatten(next_params) - flatten(params)
    if full_step:
        basis = (step / step.norm().clamp_min(1e-30))[:, None]
    if basis is None:
        raise ValueError("give a basis (dim, k) or full_step=True")
    basis = basis.to(step.dtype)
    firsts, seconds = [], []
    for start in range(0, basis.shape[1], chunk):
        block = basis[:, start:start + chunk]
        out = directional_derivatives(per_token_loss_fn, params, unflatten(block.T.contiguous(), params))
        firsts.append(out.first.detach())
        seconds.append(out.second.detach())
    return PolcaTerms(torch.cat(firsts), torch.cat(seconds), basis.T @ step)


def _digest(*tensors: Tensor) -> str:
    h = hashlib.sha1()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def polca_over_training(per_token_loss_fn: Callable[[Params], Tensor], load_params: Callable[[int], Params],
                        steps: Sequence[int], bases: dict[str, Tensor], *, cache_dir: str | Path | None = None,
                        part_size: int = 25, chunk: int = 16, progress: bool = True, workers: int = 1) -> dict:
    r"""POLCA factors over consecutive checkpoints, for several bases at once, plus the full step.

    Args:
        per_token_loss_fn: ``params -> (n,)`` per-token losses on the fixed evaluation tokens.
        load_params: ``step -> params`` of that checkpoint.
        steps: checkpoint steps, ascending; intervals are consecutive pairs.
        bases: name -> (dim, k) orthonormal columns.
        cache_dir: if given, each part of ``part_size`` intervals is cached there
            atomically (keyed by a digest of the bases), so an interrupted run resumes.
            Under ``torchrun`` the parts are shared out over the ranks (see
            :mod:`gradtools.distributed`); every rank returns the whole result.
        workers: on CPU without ``torchrun``, compute the parts not yet cached in this many
            forked processes (one thread each; needs ``cache_dir``), e.g. one per core.

    Returns:
        dict with ``steps`` (T,), ``loss`` (T, n) exact per-token loss at each
        checkpoint, ``full_step`` and one entry per basis name, each a
        :class:`PolcaTerms` whose tensors have a leading interval axis:
        first/second (T-1, k, n), coef (T-1, k).
    """
    steps = list(steps)
    names = list(bases)
    sizes = [bases[n].shape[1] for n in names]
    stacked = torch.cat([bases[n] for n in names], dim=1)
    key = _digest(stacked, torch.tensor(steps))

    def compute_part(lo: int, hi: int) -> dict:
        out = {"loss": [], "terms": []}
        current = load_params(steps[lo])
        for t in range(lo, hi):
            nxt = load_params(steps[t + 1])
            with torch.no_grad():
                out["loss"].append(per_token_loss_fn(current).detach())
            # the full step d_t/|d_t| rides in the same vmapped passes as the basis: one call per interval
            step = flatten(nxt) - flatten(current)
            directions = torch.cat([stacked.to(step.dtype), (step / step.norm().clamp_min(1e-30))[:, None]], dim=1)
            out["terms"].append(polca_terms(per_token_loss_fn, current, nxt, directions, chunk=chunk))
            current = nxt
        return out

    def part_path(lo: int) -> Path:
        hi = min(lo + part_size, len(steps) - 1)
        return Path(cache_dir) / f"polca-{key}-{steps[lo]:06d}-{steps[hi]:06d}.pt"

    def part(lo: int) -> dict:
        hi = min(lo + part_size, len(steps) - 1)
        if cache_dir is None:
            return compute_part(lo, hi)
        return cached_torch(part_path(lo), lambda: compute_part(lo, hi))

    bounds = list(range(0, len(steps) - 1, part_size))
    rank, world = rank_and_world()
    if workers > 1 and world == 1:
        if cache_dir is None:
            raise ValueError("POLCA in several worker processes needs cache_dir, where each part is saved")
        todo = [lo for lo in bounds if not part_path(lo).exists()]
        run_forked(lambda share: [part(lo) for lo in share], todo, workers,
                   done=lambda: sum(part_path(lo).exists() for lo in todo), desc="POLCA parts", progress=progress)
    if world > 1:  # under torchrun: each rank computes its share of the parts into the shared cache
        if cache_dir is None:
            raise ValueError("POLCA over several processes needs cache_dir, a folder all ranks see")
        for lo in tqdm(my_share(bounds, rank, world), desc=f"POLCA parts (rank {rank})", disable=not progress):
            part(lo)
        torch.distributed.barrier()
    parts = [part(lo) for lo in tqdm(bounds, desc="POLCA over training", disable=not progress or world > 1)]
    with torch.no_grad():
        final_loss = per_token_loss_fn(load_params(steps[-1])).detach()
    terms = [t for p in parts for t in p["terms"]]
    first = torch.stack([t.first for t in terms])
    second = torch.stack([t.second for t in terms])
    coef = torch.stack([t.coef for t in terms])
    result = {"steps": torch.tensor(steps), "loss": torch.stack([l for p in parts for l in p["loss"]] + [final_loss])}
    offset = 0
    for name, size in zip(names + ["full_step"], sizes + [1]):
        sl = slice(offset, offset + size)
        result[name] = PolcaTerms(first[:, sl], second[:, sl], coef[:, sl])
        offset += size
    return result


def run_forked(work: Callable[[list], object], jobs: Sequence, workers: int, *, done: Callable[[], int],
               desc: str = "jobs", progress: bool = True) -> None:
    """Run ``work(share)`` on a round-robin share of ``jobs`` in each of ``workers`` forked processes.

    Fork, not spawn: ``work`` may be a closure (over a model, a loader), nothing is pickled. Each process
    runs one thread (the point is one process per core). ``work`` must leave its results on disk (e.g.
    :func:`gradtools.cache.cached_torch`); ``done()`` counts the finished jobs for the progress bar.
    Raises if a worker fails. CPU only: a CUDA context does not survive a fork.
    """
    if not jobs:
        return
    if torch.cuda.is_initialized():
        raise RuntimeError("forked workers cannot use CUDA: run with workers=1 on a GPU")

    def child(share):
        torch.set_num_threads(1)
        work(share)

    ctx = torch.multiprocessing.get_context("fork")
    procs = [ctx.Process(target=child, args=(my_share(list(jobs), r, workers),)) for r in range(min(workers, len(jobs)))]
    for p in procs:
        p.start()
    with tqdm(total=len(jobs), desc=f"{desc} ({len(procs)} processes)", disable=not progress) as bar:
        while any(p.is_alive() for p in procs):
            time.sleep(1.0)
            bar.update(done() - bar.n)
        bar.update(done() - bar.n)
    failed = [p.exitcode for p in procs if p.exitcode]
    if failed:
        raise RuntimeError(f"{len(failed)} worker process(es) failed (exit codes {failed}); rerun to resume")


def projected_loss(polca: Tensor) -> Tensor:
    r"""Eq. 10, :math:`L_i^b(t) = \sum_{s<t} \mathrm{polca}_i^b(s)`: (T-1, ...) terms -> (T, ...) with L(0) = 0."""
    return torch.cat([torch.zeros_like(polca[:1]), polca.cumsum(0)])


def decomposition_check(loss: Tensor, predicted: Tensor, span: int = 1) -> pd.DataFrame:
    r"""How much of each interval's actual per-token loss change a prediction explains.

    Args:
        loss: (T, n) exact per-token losses at the checkpoints.
        predicted: (T-1, n) predicted change per interval (e.g. a POLCA sum).
        span: compare over non-overlapping blocks of ``span`` consecutive intervals:
            the actual change :math:`\ell(t+s) - \ell(t)` against the summed predictions
            :math:`\sum_{u=t}^{t+s-1}\hat\Delta(u)` (what a projected loss accumulates).
            Intervals left over at the end are dropped.

    Returns:
        one row per interval (block): ``mean_abs_change`` :math:`\overline{|\Delta\ell_i|}`,
        ``mean_abs_error`` :math:`\overline{|\Delta\ell_i - \hat\Delta_i|}`, and
        ``explained`` :math:`1 - \sum_i(\Delta\ell_i - \hat\Delta_i)^2 / \sum_i \Delta\ell_i^2`
        (1: exact; 0: no better than predicting no change).
    """
    if span < 1:
        raise ValueError("span must be at least 1")
    blocks = (loss.shape[0] - 1) // span
    ends = torch.arange(blocks + 1) * span
    actual = loss[ends[1:]] - loss[ends[:-1]]
    predicted = projected_loss(predicted)[ends]
    predicted = predicted[1:] - predicted[:-1]
    err = actual - predicted
    return pd.DataFrame({
        "interval": np.arange(actual.shape[0]),
        "mean_abs_change": actual.abs().mean(1).numpy(),
        "mean_abs_error": err.abs().mean(1).numpy(),
        "explained": (1 - err.square().sum(1) / actual.square().sum(1).clamp_min(1e-30)).numpy(),
    })


# ----------------------------------------------------------------- filters

def decreasing_vectors(projected: Tensor) -> Tensor:
    """(k,) bool: basis vectors whose mean projected loss at the end of training is below 0 (sec. 4.1).

    ``projected``: (T, k, n).
    """
    return projected[-1].mean(-1) < 0


def decreasing_tokens(curves: Tensor) -> Tensor:
    """(n,) bool: tokens whose projected loss ends below where it started (sec. 4.1). ``curves``: (T, n)."""
    return curves[-1] < 0


# --------------------------------------------------------------- clustering

def cluster_curves(curves: np.ndarray | Tensor, *, min_cluster_size: int, min_samples: int | None = None) -> np.ndarray:
    """HDBSCAN cluster label of each trajectory (rows of ``curves``, (n, T)); -1 marks outliers."""
    import hdbscan

    x = np.asarray(curves, dtype=np.float64)
    if x.shape[0] < max(2, min_cluster_size):
        return np.full(x.shape[0], -1)
    model = hdbscan.HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples)
    return model.fit_predict(x)


def cluster_homogeneity(clusters: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """Per cluster (outliers excluded): size, majority label, homogeneity = share of tokens with that label."""
    df = pd.DataFrame({"cluster": np.asarray(clusters), "label": np.asarray(labels)})
    df = df[df.cluster >= 0]
    rows = []
    for c, group in df.groupby("cluster"):
        counts = group.label.value_counts()
        rows.append({"cluster": int(c), "size": len(group), "majority": counts.index[0],
                     "homogeneity": counts.iloc[0] / len(group)})
    return pd.DataFrame(rows, columns=["cluster", "size", "majority", "homogeneity"])


def _max_share(cluster_idx: np.ndarray, label_idx: np.ndarray, n_clusters: int, n_labels: int,
               min_size: int) -> float:
    counts = np.bincount(cluster_idx * n_labels + label_idx, minlength=n_clusters * n_labels)
    counts = counts.reshape(n_clusters, n_labels)
    sizes = counts.sum(1)
    ok = sizes >= min_size
    return float((counts[ok].max(1) / sizes[ok]).max()) if ok.any() else float("nan")


def _factorize(clusters: np.ndarray, labels: np.ndarray):
    kept = np.asarray(clusters) >= 0
    c, cluster_idx = np.unique(np.asarray(clusters)[kept], return_inverse=True)
    lab, label_idx = np.unique(np.asarray(labels)[kept], return_inverse=True)
    return cluster_idx, label_idx, len(c), len(lab)


def max_homogeneity(clusters: np.ndarray, labels: np.ndarray, *, min_size: int = 1) -> float:
    """The highest homogeneity over clusters with at least ``min_size`` tokens (NaN if none): the tables' measure."""
    cluster_idx, label_idx, n_c, n_l = _factorize(clusters, labels)
    return _max_share(cluster_idx, label_idx, n_c, n_l, min_size) if n_c else float("nan")


def chance_max_homogeneity(clusters: np.ndarray, labels: np.ndarray, *, min_size: int = 1,
                           permutations: int = 200, seed: int = 0) -> float:
    """:func:`max_homogeneity` expected when labels are shuffled among the clustered tokens (same cluster sizes).

    The chance level of the measure: it grows with the majority label's share and
    with the number of small clusters a maximum is taken over.
    """
    cluster_idx, label_idx, n_c, n_l = _factorize(clusters, labels)
    if not n_c:
        return float("nan")
    rng = np.random.default_rng(seed)
    return float(np.nanmean([_max_share(cluster_idx, rng.permutation(label_idx), n_c, n_l, min_size)
                             for _ in range(permutations)]))


def homogeneity_measures(clusters: np.ndarray, tokens: pd.DataFrame, *, min_size: int = 1,
                         permutations: int = 200, seed: int = 0) -> list[dict]:
    """The clustering's highest homogeneity on each label of :func:`gradtools.addition.token_labels`, with chance.

    ``tokens`` holds one row per clustered trajectory (columns ``digit``,
    ``carry``, ``digit_carry``). Measures:

    * ``digit``: the digit place;
    * ``carry``: carry entering the place, over all tokens (the paper's tables);
    * ``digit_carry``: the joint label (place x carry): a cluster scores high only
      if it is pure in both, so the trivial carries of the ones and thousands
      places do not count as recovered carry;
    * ``carry_hundreds_tens``: carry among the tokens of the hundreds and tens
      places only, the two places where carry is neither constant (ones) nor
      the digit itself (thousands); clusters with fewer than ``min_size`` such tokens are skipped.

    Returns one dict per measure: measure, homogeneity, chance (labels shuffled
    among clustered tokens, :func:`chance_max_homogeneity`), clusters, clustered (tokens not outliers).
    """
    clusters = np.asarray(clusters)
    middle = tokens.digit.isin(["hundreds", "tens"]).to_numpy()
    specs = {"digit": (tokens.digit.astype(str).to_numpy(), None),
             "carry": (tokens.carry.to_numpy(), None),
             "digit_carry": (tokens.digit_carry.to_numpy(), None),
             "carry_hundreds_tens": (tokens.carry.to_numpy(), middle)}
    rows = []
    for name, (labels, mask) in specs.items():
        c, lab = (clusters, labels) if mask is None else (clusters[mask], labels[mask])
        rows.append({"measure": name, "homogeneity": max_homogeneity(c, lab, min_size=min_size),
                     "chance": chance_max_homogeneity(c, lab, min_size=min_size, permutations=permutations, seed=seed),
                     "clusters": int(len(set(clusters[clusters >= 0]))), "clustered": int((clusters >= 0).sum())})
    return rows


def homogeneity_rows(curves: np.ndarray | Tensor, keep: np.ndarray | Tensor, tokens: pd.DataFrame, method: str,
                     rank: int, *, min_cluster_size: int, min_samples: int | None = None, permutations: int = 200,
                     seed: int = 0) -> tuple[list[dict], np.ndarray]:
    """Cluster the kept tokens' curves with HDBSCAN and score the clusters on the addition labels (tables 3-4).

    Args:
        curves: (T, n) one trajectory per token (projected loss, Fisher term or exact loss).
        keep: (n,) bool, the tokens clustered (e.g. :func:`decreasing_tokens`).
        tokens: (n,) rows of :func:`gradtools.addition.token_labels`.
        method, rank: copied into every row (which decomposition and basis, which top vector).
        min_cluster_size: HDBSCAN's; also the smallest cluster a homogeneity is taken over.
        min_samples: HDBSCAN's; ``None`` means the kept tokens / 15 (at least 2).

    Returns:
        one row per measure of :func:`homogeneity_measures` with ``method, rank, tokens`` (kept),
        ``min_cluster_size, min_samples`` and ``min_samples_rule`` (``"tokens/15"`` or the number),
        and the (kept,) cluster labels (-1: outlier).
    """
    keep = np.asarray(keep.cpu() if isinstance(keep, Tensor) else keep, dtype=bool)
    x = np.asarray(curves.cpu() if isinstance(curves, Tensor) else curves)[:, keep].T
    kept = tokens[keep].reset_index(drop=True)
    samples = min_samples or max(2, len(kept) // 15)
    clusters = cluster_curves(x, min_cluster_size=min_cluster_size, min_samples=samples)
    rows = homogeneity_measures(clusters, kept, min_size=min_cluster_size, permutations=permutations, seed=seed)
    return [dict(r, method=method, rank=rank, tokens=len(kept), min_cluster_size=min_cluster_size,
                 min_samples=samples, min_samples_rule="tokens/15" if min_samples is None else str(min_samples))
            for r in rows], clusters


def carry_separation(score: np.ndarray | Tensor, tokens: pd.DataFrame, place: str, *, permutations: int = 200,
                     seed: int = 0) -> dict | None:
    r"""How well a per-token score separates carry from no carry within one digit place, without clustering.

    ``score``: (n,) one number per token of ``tokens`` (rows of
    :func:`gradtools.addition.token_labels`), e.g. the projected loss at the end of the window.
    Returns ``auc`` (ROC AUC of carry given the score), ``separation`` :math:`|\mathrm{AUC} - 1/2|`
    and ``null_95``, the 95th percentile of the separation with the carry labels shuffled within
    the place (``permutations`` times); ``None`` when the place has only one carry label.
    """
    from sklearn.metrics import roc_auc_score

    sel = (tokens.digit == place).to_numpy()
    y, x = tokens.carry.to_numpy()[sel], np.asarray(score)[sel]
    if len(set(y)) < 2:
        return None
    rng = np.random.default_rng(seed)
    null = [abs(roc_auc_score(rng.permutation(y), x) - 0.5) for _ in range(permutations)]
    auc = roc_auc_score(y, x)
    return dict(place=place, auc=auc, separation=abs(auc - 0.5), null_95=float(np.quantile(null, 0.95)))


def sharpness(curve: np.ndarray | Tensor) -> float:
    r"""How concentrated a curve's movement is: :math:`\max_t |\Delta c_t| / \sum_t |\Delta c_t|`.

    1 when the whole change happens over one interval (a breakthrough), ``1/(T-1)``
    when it is spread evenly over the T-1 intervals; 0 for a constant curve.
    """
    steps = np.abs(np.diff(np.asarray(curve, dtype=np.float64)))
    total = steps.sum()
    return float(steps.max() / total) if total > 0 else 0.0
