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


def test_spacing_table_is_the_second_order_expansion_with_a_cubic_error():
    # per-token loss (x_i . w)^3: the expansion along a step d predicts 3u^2 e + 3u e^2 (u = x.w, e = x.d);
    # its error is exactly e^3, so the table's explained share has a closed form
    g = torch.Generator().manual_seed(0)
    X = torch.randn(7, 5, generator=g, dtype=torch.float64)
    walk = {0: torch.randn(5, generator=g, dtype=torch.float64)}
    for step in range(1, 6):
        walk[step] = walk[step - 1] + 0.2 * torch.randn(5, generator=g, dtype=torch.float64)
    per_token = lambda p: (X @ p["w"]) ** 3  # noqa: E731
    table = pa.spacing_table(per_token, lambda s: {"w": walk[s]}, anchors=[0, 1], gaps=[1, 4])
    assert list(zip(table.anchor, table.gap)) == [(0, 1), (0, 4), (1, 1), (1, 4)]
    for row in table.itertuples():
        u, e = X @ walk[row.anchor], X @ (walk[row.anchor + row.gap] - walk[row.anchor])
        actual = (u + e) ** 3 - u ** 3
        assert row.explained == pytest.approx(float(1 - (e ** 3).square().sum() / actual.square().sum()), rel=1e-10)
        assert row.mean_abs_error == pytest.approx(float((e ** 3).abs().mean()), rel=1e-10)
    assert table.explained.iloc[0] > table.explained.iloc[1]  # the longer gap leaves a larger cubic error


def test_lr_probe_smoke_profile_trains_and_tables(tmp_path, monkeypatch):
    from gradtools import paths, polca_lr_probe
    monkeypatch.setattr(paths, "cache_dir", lambda profile: tmp_path / "cache")
    monkeypatch.setattr(paths, "data_dir", lambda profile: tmp_path / "data")
    table = polca_lr_probe.probe("smoke", workers=1)
    lrs, steps, anchors, gaps = polca_lr_probe.PROBES["smoke"]
    assert len(table) == len(lrs) * len(anchors) * len(gaps) and (tmp_path / "data" / polca_lr_probe.TABLE).exists()
    assert table.accuracy.between(0, 1).all() and (table.steps == steps).all()
    assert (table[table.gap == 1].explained > 0.9).all()  # one small step: the expansion holds
    import matplotlib
    matplotlib.use("Agg")
    from gradtools import figures
    monkeypatch.setattr(figures, "figures_dir", lambda profile: tmp_path)
    fig = polca_lr_probe.plot(table, table[table.lr == lrs[0]].drop(columns="lr"), 5e-3, "smoke")
    assert len(fig.axes) >= 2 and (tmp_path / "polca_arithmetic_decomposition_by_learning_rate.png").exists()
    with pytest.raises(ValueError, match="unknown profile|profile"):
        polca_lr_probe.probe("laptop")


def test_scale_series_smoke_writes_its_table_and_figure(tmp_path, monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    from gradtools import figures, paths, polca_scale
    monkeypatch.setattr(paths, "cache_dir", lambda profile: tmp_path / "cache")
    monkeypatch.setattr(paths, "data_dir", lambda profile: tmp_path / "data")
    monkeypatch.setattr(figures, "figures_dir", lambda profile: tmp_path)
    assert polca_scale.main(["--profile", "smoke", "--workers", "1"]) == 0
    table = pd.read_parquet(tmp_path / "data" / polca_scale.TABLE)
    assert list(table.d_model) == polca_scale.SIZES["smoke"] and table.params.gt(0).all()
    assert table.explained_interval.le(1).all() and table.wall_s.gt(0).all()
    assert (tmp_path / "polca_arithmetic_scale_series.png").exists() and (tmp_path / "polca_arithmetic_scale_series.pdf").exists()
