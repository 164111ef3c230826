"""Notebook 02's run (gradtools.polca_addition): schedule, grids, bad settings, and the scale-series row."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from gradtools import polca
from gradtools import polca_addition as pa

RUN = pa.AdditionRun(d_model=8, n_layers=1, n_heads=2, steps=100, lr=1e-3, warmup=10, batch=4, window=(20, 80),
                     window_lr=1e-4, polca_every=5, n_basis=4, n_validation=3, n_train_sample=2, lanczos_iters=3)


def test_learning_rate_warms_up_then_drops_inside_the_window():
    assert RUN.lr_factor(0) == pytest.approx(0.1) and RUN.lr_factor(9) == 1.0 and RUN.lr_factor(19) == 1.0
    assert RUN.lr_factor(20) == pytest.approx(0.1) and RUN.lr_factor(79) == pytest.approx(0.1)
    assert RUN.lr_factor(80) == 1.0
    whole = pa.RUNS["default"]
    assert whole.window == (0, whole.steps) and whole.lr_factor(whole.steps - 1) == 1.0  # one constant rate
    assert whole.lr_factor(0) == pytest.approx(1 / whole.warmup)


def test_grids_lie_in_the_window():
    assert RUN.polca_steps == list(range(20, 81, 5))
    assert len(RUN.basis_steps) == 4 and RUN.basis_steps[-1] == 80
    assert all(s in RUN.polca_steps and s > 20 for s in RUN.basis_steps)


@pytest.mark.parametrize("change, message", [(dict(window=(50, 120)), "inside"), (dict(polca_every=7), "multiple"),
                                             (dict(n_basis=20), "distinct")])
def test_bad_settings_stop_before_compute(change, message):
    import dataclasses
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(RUN, **change).check()


def test_from_settings_ignores_analysis_keys_and_names_the_folder():
    ns = SimpleNamespace(**{k: getattr(RUN, k) for k in RUN.__dataclass_fields__}, gaps=[1, 2], permutations=9)
    ns.window = list(ns.window)
    assert pa.AdditionRun.from_settings(ns) == RUN
    assert pa.AdditionRun.from_settings(vars(ns)) == RUN
    other = pa.AdditionRun.from_settings(dict(vars(ns), n_validation=5))
    assert other.name != RUN.name  # every setting that changes a result changes the cache folder


def test_scale_row_on_a_known_result():
    T, n = 4, 6
    g = torch.Generator().manual_seed(0)
    loss = torch.rand(T, n, generator=g, dtype=torch.float64)
    change = loss[1:] - loss[:-1]
    # the full step predicts every change exactly; two Hessian vectors split it in halves, first order only
    full = polca.PolcaTerms(change[:, None], torch.zeros(T - 1, 1, n, dtype=torch.float64),
                            torch.ones(T - 1, 1, dtype=torch.float64))
    half = polca.PolcaTerms(torch.stack([change / 2, change / 2], 1), torch.zeros(T - 1, 2, n, dtype=torch.float64),
                            torch.ones(T - 1, 2, dtype=torch.float64))
    result = {"loss": loss, "full_step": full, "Hessian": half}
    table = pd.DataFrame([dict(method="POLCA, Hessian basis", measure="carry_hundreds_tens", homogeneity=0.9, chance=0.6),
                          dict(method="POLCA, Hessian basis", measure="carry_hundreds_tens", homogeneity=0.7, chance=0.6),
                          dict(method="exact loss (whole run)", measure="carry_hundreds_tens", homogeneity=np.nan,
                               chance=np.nan),
                          dict(method="POLCA, random basis", measure="digit", homogeneity=1.0, chance=0.2)])
    row = pa.scale_row(RUN, 123, result, table, 0.75)
    assert row["explained_interval"] == pytest.approx(1.0) and row["explained_run"] == pytest.approx(1.0)
    assert row["basis_explained_interval"] == pytest.approx(1.0)
    assert row["carry_margin_polca_hessian"] == pytest.approx(0.3)
    assert np.isnan(row["carry_margin_exact"]) and np.isnan(row["carry_margin_polca_random"])
    assert row["cosine_first_second"] == pytest.approx(1.0) and row["params"] == 123 and row["tokens"] == n
