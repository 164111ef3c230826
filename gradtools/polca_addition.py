"""One POLCA run on 3-digit addition, end to end: the steps notebook 02 and its scale series share.

A run (:class:`AdditionRun`) trains a tiny GPT-NeoX on ``abc+def=wxyz`` at one constant learning
rate after a linear warm-up (the paper's design: no schedule), with a checkpoint every
``polca_every`` steps over the POLCA window (the whole run by default); builds the basis of
algorithm 1 over that window; computes the POLCA terms of every interval for each basis and
the full step; and clusters the projected-loss curves (section 4.1). Every step is cached
under the run's folder, so an interrupted run resumes and a finished one is read back.

:func:`scale_row` condenses a finished run into the numbers the scale series compares across
model sizes (:mod:`gradtools.polca_scale`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from . import addition, cache, polca
from .lm import tiny_causal_lm
from .lm_training import checkpoint_params, load_checkpoint, train_causal_lm


@dataclass(frozen=True)
class AdditionRun:
    """The settings of one run (names as in notebook 02's profiles).

    ``window`` (first, last step) is where POLCA runs (a checkpoint every ``polca_every``
    steps) and where the ``n_basis`` checkpoints of algorithm 1 are spread; inside it the
    learning rate is ``window_lr`` (the default design: the whole run at ``window_lr == lr``).
    """

    d_model: int
    n_layers: int
    n_heads: int
    steps: int
    lr: float
    warmup: int
    batch: int
    window: tuple[int, int]
    window_lr: float
    polca_every: int
    n_basis: int
    n_validation: int
    n_train_sample: int
    lanczos_iters: int
    seed: int = 0

    @classmethod
    def from_settings(cls, settings) -> "AdditionRun":
        """The run of a profile's settings (a namespace or dict with at least these fields)."""
        get = settings.get if isinstance(settings, dict) else lambda k, d=None: getattr(settings, k, d)
        values = {f.name: get(f.name) for f in dataclasses.fields(cls) if get(f.name) is not None}
        return cls(**dict(values, window=tuple(values["window"])))

    @property
    def name(self) -> str:
        """The cache folder's name: every setting that changes a checkpoint or a POLCA term."""
        w0, w1 = self.window
        return (f"addition_d{self.d_model}_l{self.n_layers}_lr{self.lr:g}_s{self.steps}_seed{self.seed}"
                f"_warm{self.warmup}_win{w0}-{w1}lr{self.window_lr:g}every{self.polca_every}_basis{self.n_basis}"
                f"_val{self.n_validation}_hs{self.n_train_sample}")

    def lr_factor(self, step: int) -> float:
        """Learning-rate factor of a step: linear warm-up, then 1, times window_lr / lr inside the window."""
        w0, w1 = self.window
        return min(1.0, (step + 1) / self.warmup) * (self.window_lr / self.lr if w0 <= step < w1 else 1.0)

    @property
    def polca_steps(self) -> list[int]:
        """POLCA's checkpoints: every ``polca_every`` steps over the window."""
        w0, w1 = self.window
        return list(range(w0, w1 + 1, self.polca_every))

    @property
    def basis_steps(self) -> list[int]:
        """Algorithm 1's checkpoints: ``n_basis`` spread evenly over the window (on POLCA's grid), the last at its end."""
        w0, w1 = self.window
        e = self.polca_every
        return sorted({w0 + e * round((i + 1) * (w1 - w0) / self.n_basis / e) for i in range(self.n_basis)})

    def check(self) -> None:
        """Stop before any compute on settings that cannot work, saying what to change."""
        w0, w1 = self.window
        if not 0 <= w0 < w1 <= self.steps:
            raise ValueError(f"window {self.window} must lie inside 0..steps={self.steps}")
        if (w1 - w0) % self.polca_every:
            raise ValueError(f"the window's length {w1 - w0} is not a multiple of polca_every={self.polca_every}")
        if len(self.basis_steps) != self.n_basis:
            raise ValueError(f"{self.n_basis} basis vectors need {self.n_basis} distinct checkpoints: "
                             f"lower n_basis or polca_every")


# The run of each profile (notebook 02's main run; the scale series varies the width). The paper: 3 layers, width
# 512, 4 heads, lr 1e-5 constant, batch 64, a basis vector every 200 steps, POLCA every 20 steps, 1250 problems.
RUNS = {
    "smoke": AdditionRun(d_model=16, n_layers=1, n_heads=2, steps=60, lr=2e-3, warmup=10, batch=32, window=(0, 60),
                         window_lr=2e-3, polca_every=4, n_basis=3, n_validation=24, n_train_sample=16, lanczos_iters=6),
    # lr 5e-4 constant: the model learns all four places within 7000 steps (development runs); whether the
    # expansion holds over its 50-step intervals is what notebook 02's decomposition check measures
    "default": AdditionRun(d_model=48, n_layers=3, n_heads=4, steps=7000, lr=5e-4, warmup=100, batch=64,
                           window=(0, 7000), window_lr=5e-4, polca_every=50, n_basis=10, n_validation=250,
                           n_train_sample=500, lanczos_iters=15),
    "paper": AdditionRun(d_model=512, n_layers=3, n_heads=4, steps=10000, lr=1e-5, warmup=100, batch=64,
                         window=(0, 10000), window_lr=1e-5, polca_every=20, n_basis=50, n_validation=1250,
                         n_train_sample=1250, lanczos_iters=30),
}


def run_folder(run: AdditionRun, cache_dir: str | Path) -> Path:
    """Where a run's checkpoints and cached results live."""
    return Path(cache_dir) / run.name


def data(run: AdditionRun, device: str = "cpu") -> tuple[dict, dict, pd.DataFrame]:
    """(validation batch, Hessian-sample batch, validation token labels) of :func:`gradtools.addition.split_problems`."""
    split = addition.split_problems(run.n_validation, run.n_train_sample, seed=run.seed)
    validation = {k: v.to(device) for k, v in addition.encode(*split["validation"]).items()}
    train_sample = {k: v.to(device) for k, v in addition.encode(*split["train_sample"]).items()}
    return validation, train_sample, addition.token_labels(*split["validation"])


def model(run: AdditionRun, device: str = "cpu"):
    """The run's freshly initialised model."""
    return tiny_causal_lm(addition.VOCAB_SIZE, d_model=run.d_model, n_layers=run.n_layers, n_heads=run.n_heads,
                          context=16, seed=run.seed).to(device)


def train(run: AdditionRun, folder: Path, device: str = "cpu", extra_steps=(), progress: bool = True) -> pd.DataFrame:
    """Train (or resume, or read back) the run: AdamW (0.9, 0.95), weight decay 0.1, fresh problems every step.

    Checkpoints: POLCA's grid plus ``extra_steps`` (e.g. the spacing check's anchors). Returns the training log.
    """
    run.check()
    split = addition.split_problems(run.n_validation, run.n_train_sample, seed=run.seed)
    batch = lambda step: {k: v.to(device) for k, v in addition.training_batch(  # noqa: E731
        step, run.batch, exclude=split["validation"], seed=run.seed).items()}
    checkpoints = sorted(set(run.polca_steps) | {0, run.steps} | {s for s in extra_steps if s <= run.steps})
    return train_causal_lm(model(run, device), batch, addition.mean_answer_loss, steps=run.steps,
                           checkpoint_steps=checkpoints, out_dir=folder, lr=run.lr, betas=(0.9, 0.95),
                           weight_decay=0.1, lr_lambda=run.lr_factor, progress=progress)


def loader(folder: Path, device: str = "cpu"):
    """``step -> params`` of the run's checkpoints."""
    return lambda step: {k: v.to(device) for k, v in checkpoint_params(folder, step).items()}


def final_accuracy(folder: Path, step: int, validation: dict) -> float:
    """Greedy accuracy over every validation answer token at a checkpoint."""
    net = load_checkpoint(folder, step).to(validation["input_ids"].device)
    return float(addition.answer_accuracy(net, validation).float().mean())


def bases(run: AdditionRun, folder: Path, net, train_sample: dict, load, *, shuffled: bool = True,
          progress: bool = True) -> tuple[dict[str, Tensor], polca.HessianBasis]:
    """The bases POLCA projects on: algorithm 1's Hessian basis over the window, its checkpoints in a random
    order (``shuffled``, table 4) and a random orthonormal basis of the same size. Cached in the run's folder.

    Returns (name -> (dim, n_basis) vectors, the Hessian basis with its eigenvalues and residuals).
    """
    loss = polca.functional_loss(net, addition.mean_answer_loss, train_sample)

    def build(order):
        return polca.hessian_basis(loss, [load(s) for s in order], k=1, max_iters=run.lanczos_iters, progress=progress)

    hessian = cache.cached_torch(folder / f"basis_hessian_{run.lanczos_iters}.pt", lambda: build(run.basis_steps))
    out = {"Hessian": hessian.vectors}
    if shuffled:
        order = [run.basis_steps[i] for i in np.random.default_rng(run.seed).permutation(run.n_basis)]
        out["shuffled Hessian"] = cache.cached_torch(folder / f"basis_shuffled_{run.lanczos_iters}.pt",
                                                     lambda: build(order)).vectors
    out["random"] = polca.random_orthonormal_basis(hessian.vectors.shape[0], run.n_basis, seed=run.seed)
    return out, hessian


def per_token_loss(net, validation: dict):
    """``params -> (n_validation * 4,)`` loss of every validation answer token."""
    return polca.functional_loss(net, lambda m, b: addition.answer_token_losses(m, b).reshape(-1), validation)


def polca_terms(run: AdditionRun, folder: Path, per_token, load, basis: dict[str, Tensor], *, workers: int = 1,
                progress: bool = True) -> dict:
    """:func:`gradtools.polca.polca_over_training` over the window's grid, cached in parts of 50 intervals."""
    return polca.polca_over_training(per_token, load, run.polca_steps, basis, cache_dir=folder / "polca",
                                     part_size=50, chunk=8, workers=workers, progress=progress)


def spacing_table(per_token, load, anchors, gaps) -> pd.DataFrame:
    """One full-step expansion from each anchor over a single gap of each length: what a POLCA grid of that
    spacing would get. Needs checkpoints at every ``anchor`` and ``anchor + gap`` (callers pass only such anchors).

    Returns one row per (anchor, gap): ``explained``, ``mean_abs_change``, ``mean_abs_error`` of
    :func:`gradtools.polca.decomposition_check` on the pair of checkpoints.
    """
    rows = []
    for anchor in anchors:
        p0 = load(anchor)
        with torch.no_grad():
            l0 = per_token(p0)
        for gap in gaps:
            p1 = load(anchor + gap)
            with torch.no_grad():
                l1 = per_token(p1)
            pred = polca.polca_terms(per_token, p0, p1, full_step=True).polca[0]
            row = polca.decomposition_check(torch.stack([l0, l1]).cpu(), pred[None].cpu()).iloc[0]
            rows.append(dict(anchor=anchor, gap=gap, explained=row.explained, mean_abs_change=row.mean_abs_change,
                             mean_abs_error=row.mean_abs_error))
    return pd.DataFrame(rows)


def ranked_vectors(terms: polca.PolcaTerms) -> tuple[Tensor, list[int]]:
    """Projected loss (T, k, n) and the vectors whose mean projected loss decreases, most loss removed first."""
    projected = polca.projected_loss(terms.polca.cpu())
    final = projected[-1].mean(-1)
    return projected, [int(i) for i in torch.argsort(final) if final[i] < 0]


def homogeneity(result: dict, basis_names, tokens: pd.DataFrame, exact_curves: dict[str, Tensor], *,
                min_cluster_size: int, min_samples: int | None = None, top: int = 3, fisher: bool = True,
                permutations: int = 200, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Tables 3 and 4: HDBSCAN on exact-loss curves (all tokens) and on the projected loss along each basis's
    top vectors (decreasing tokens only), optionally on the Fisher terms of the Hessian basis too.

    Returns (one row per method, rank and label measure of :func:`gradtools.polca.homogeneity_rows`;
    clusterings: method -> labels for exact loss, (basis, rank) -> (vector, kept tokens, labels)).
    """
    kw = dict(min_cluster_size=min_cluster_size, min_samples=min_samples, permutations=permutations, seed=seed)
    rows, clusterings = [], {}
    for method, curves in exact_curves.items():
        r, c = polca.homogeneity_rows(curves, np.ones(len(tokens), bool), tokens, method, 1, **kw)
        rows += r
        clusterings[method] = c
    for name in basis_names:
        projected, order = ranked_vectors(result[name])
        for rank, j in enumerate(order[:top], start=1):
            keep = polca.decreasing_tokens(projected[:, j])
            r, c = polca.homogeneity_rows(projected[:, j], keep, tokens, f"POLCA, {name} basis", rank, **kw)
            rows += r
            clusterings[(name, rank)] = (j, keep, c)
            if fisher and name == "Hessian":
                r, _ = polca.homogeneity_rows(result[name].fisher[:, j].cpu(), keep, tokens, "Fisher, Hessian basis",
                                              rank, **kw)
                rows += r
    return pd.DataFrame(rows), clusterings


def orders(terms: polca.PolcaTerms) -> pd.DataFrame:
    """Appendix F: cosine and relative / absolute L2 distance between first- and second-order projected losses."""
    first = polca.projected_loss(terms.polca_first_order.cpu()).reshape(-1)
    second = polca.projected_loss(terms.polca.cpu()).reshape(-1)
    return pd.DataFrame([dict(cosine=torch.nn.functional.cosine_similarity(first, second, dim=0).item(),
                              relative_l2=((second - first).norm() / second.norm()).item(),
                              l2=(second - first).norm().item())])


def scale_row(run: AdditionRun, n_params: int, result: dict, homogeneity_table: pd.DataFrame,
              final_accuracy: float) -> dict:
    """What the scale series compares across sizes, from one finished run.

    * ``explained_interval``: median over intervals of the share of the per-token loss change the
      full-step second-order expansion explains; ``explained_run``: the same for the summed
      interval predictions over the whole window (what a projected loss accumulates);
      ``basis_explained_interval``: the median share the Hessian basis's POLCA sum explains.
    * ``carry_margin_*``: the best carry homogeneity among hundreds and tens tokens minus its
      chance level (``carry_hundreds_tens``), over the top three vectors for POLCA on the Hessian
      and random bases, and for exact-loss clustering (NaN: no cluster formed).
    * ``cosine_first_second``: appendix F's cosine.
    """
    loss = result["loss"].cpu()
    full = result["full_step"].polca[:, 0].cpu()
    h = homogeneity_table[homogeneity_table.measure == "carry_hundreds_tens"]

    def best(methods):
        rows = h[h.method.isin(methods)]
        margins = (rows.homogeneity - rows.chance).dropna()
        return float(margins.max()) if len(margins) else float("nan")

    return dict(
        d_model=run.d_model, n_layers=run.n_layers, params=n_params, steps=run.steps, lr=run.window_lr,
        polca_every=run.polca_every, n_basis=run.n_basis, tokens=int(loss.shape[1]), final_accuracy=final_accuracy,
        explained_interval=float(polca.decomposition_check(loss, full).explained.median()),
        explained_run=float(polca.decomposition_check(loss, full, span=loss.shape[0] - 1).explained.iloc[0]),
        basis_explained_interval=float(polca.decomposition_check(
            loss, result["Hessian"].polca.sum(1).cpu()).explained.median()),
        carry_margin_polca_hessian=best(["POLCA, Hessian basis"]),
        carry_margin_polca_random=best(["POLCA, random basis"]),
        carry_margin_exact=best([m for m in h.method.unique() if m.startswith("exact loss")]),
        cosine_first_second=float(orders(result["Hessian"]).cosine.iloc[0]))
