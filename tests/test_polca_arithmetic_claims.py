"""Study 2's claims (gradtools.polca_arithmetic_claims): each verdict flips when its table does."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gradtools import fidelity
from gradtools import polca_arithmetic_claims as C

DATA = Path(__file__).resolve().parents[1] / "data"
GROUPS = [("thousands", False), ("thousands", True), ("hundreds", False), ("hundreds", True), ("tens", False),
          ("tens", True), ("ones", False)]


def curves(learn=None, carry_factor=1.0, final_accuracy=1.0):
    """Exact loss per (step, digit, carry): each place drops from 2.5 to 0.05 at its ``learn`` step; carry tokens
    of hundreds and tens have ``carry_factor`` times the loss."""
    learn = learn or dict(thousands=100, hundreds=500, tens=2400, ones=2000)
    rows = []
    for step in range(0, 3601, 50):
        for digit, carry in GROUPS:
            loss = 0.05 + 2.45 / (1 + np.exp((step - learn[digit]) / 40))
            if carry and digit in ("hundreds", "tens"):
                loss *= carry_factor
            acc = final_accuracy if step == 3600 else float(loss < 0.5)
            rows.append(dict(step=step, digit=digit, carry=carry, loss=loss, accuracy=acc))
    df = pd.DataFrame(rows)
    df["digit"] = pd.Categorical(df.digit, categories=C.PLACES)
    return df


def homogeneity(cells, size=12, rule="tokens/15"):
    """cells: {(method, rank): {measure: (homogeneity, chance)}}; absent measures are NaN (no cluster)."""
    rows = []
    for (method, rank), measures in cells.items():
        n = 2 if measures else 0
        for m in ["digit", "carry", "digit_carry", C.CARRY]:
            hom, chance = measures.get(m, (np.nan, np.nan))
            rows.append(dict(measure=m, homogeneity=hom, chance=chance, clusters=n, clustered=50 * n, method=method,
                             rank=rank, tokens=200, min_cluster_size=size, min_samples=13, min_samples_rule=rule))
    return pd.DataFrame(rows)


def paper_like(polca=0.95, exact=0.55, fisher=0.65, ablation=0.9, chance=0.55):
    cells = {(C.EXACT[0], 1): {"digit": (0.9, 0.3), "carry": (0.51, 0.5), C.CARRY: (exact, chance)},
             (C.EXACT[1], 1): {"digit": (1.0, 1.0)}}
    for r in C.TOP:
        cells[(C.POLCA_HESSIAN, r)] = {"carry": (polca, 0.5), C.CARRY: (polca, chance)}
        cells[(C.FISHER, r)] = {C.CARRY: (fisher, chance)}
        for a in C.ABLATIONS:
            cells[(a, r)] = {C.CARRY: (ablation, chance)}
    return homogeneity(cells)


def test_task_learned_and_digit_places_flip():
    assert C.task_learned_claim(curves())["verdict"] == "reproduced"
    assert C.task_learned_claim(curves(final_accuracy=0.5))["verdict"] == "not reproduced"
    row = C.digit_places_claim(curves())
    assert row["verdict"] == "reproduced" and "hundreds 5" in row["measured"]
    same = dict(thousands=1000, hundreds=1000, tens=1000, ones=1000)
    assert C.digit_places_claim(curves(same))["verdict"] == "not reproduced"
    never = dict(thousands=100, hundreds=500, tens=9000, ones=2000)   # tens never learned within the run
    assert C.digit_places_claim(curves(never))["verdict"] == "not reproduced"


def test_carry_invisible_flips_with_the_carry_gap():
    assert C.carry_invisible_claim(curves(carry_factor=1.1))["verdict"] == "reproduced"
    assert C.carry_invisible_claim(curves(carry_factor=30.0))["verdict"] == "not reproduced"
    assert set(C.carry_gaps(curves())["within"]) == {"hundreds", "tens"}


def test_decomposition_flips_with_the_share_explained():
    def check(x):
        return pd.DataFrame(dict(interval=range(5), explained=[x] * 5, prediction="full step"))
    spans = pd.DataFrame(dict(prediction=["full step"], span=[20], median_explained=[0.5]))
    assert C.decomposition_claim(check(0.99), spans)["verdict"] == "reproduced"
    assert C.decomposition_claim(check(0.5), spans)["verdict"] == "not reproduced"
    assert C.decomposition_claim(check(0.99), pd.DataFrame())["verdict"] == "reproduced"  # no spans measured


def test_first_vs_second_order_flips_and_explains_the_cancellation():
    per_vector = pd.DataFrame(dict(sum_first_order=[-0.7, -0.2], sum_second_order=[0.69, 0.2], sign_flips=[0.7, 0.5]))
    assert C.first_vs_second_order_claim(pd.DataFrame(dict(cosine=[0.9999], relative_l2=[1e-3])),
                                         per_vector)["verdict"] == "reproduced"
    row = C.first_vs_second_order_claim(pd.DataFrame(dict(cosine=[0.3], relative_l2=[2.1])), per_vector)
    assert row["verdict"] == "not reproduced" and "2 of 2" in row["why"]


def test_clustering_claims_on_a_paper_like_table():
    h = paper_like()
    for f in [C.clusters_at_paper_settings_claim, C.exact_loss_digit_claim, C.exact_loss_carry_claim,
              C.polca_vs_exact_claim, C.polca_vs_fisher_claim, C.hessian_vs_ablations_claim,
              C.ablations_recover_carry_claim]:
        assert f(h)["verdict"] == "reproduced", f.__name__


def test_clustering_claims_flip():
    # no POLCA cluster at all: nothing recovered
    empty = paper_like()
    empty.loc[empty.method == C.POLCA_HESSIAN, ["homogeneity", "chance"]] = np.nan
    empty.loc[empty.method == C.POLCA_HESSIAN, "clusters"] = 0
    assert C.clusters_at_paper_settings_claim(empty)["verdict"] == "not reproduced"
    assert C.polca_vs_exact_claim(empty)["verdict"] == "not reproduced"
    assert C.polca_vs_fisher_claim(empty)["verdict"] == "not reproduced"
    # exact loss recovering carry as well as POLCA: POLCA no longer better, exact-loss claim fails
    h = paper_like(exact=0.97)
    assert C.exact_loss_carry_claim(h)["verdict"] == "not reproduced"
    assert C.polca_vs_exact_claim(h)["verdict"] == "not reproduced"
    # one top vector of three beats the baselines: partly
    h = paper_like()
    h.loc[(h.method == C.POLCA_HESSIAN) & (h["rank"] > 1) & (h.measure == C.CARRY), "homogeneity"] = 0.56
    row = C.polca_vs_exact_claim(h)
    assert row["verdict"] == "partly" and "1 of 3" in row["why"]
    assert C.hessian_vs_ablations_claim(h)["verdict"] == "partly"
    # Fisher better than POLCA; ablations at chance; exact loss not separating places
    assert C.polca_vs_fisher_claim(paper_like(fisher=0.99))["verdict"] == "not reproduced"
    assert C.hessian_vs_ablations_claim(paper_like(ablation=0.99))["verdict"] == "not reproduced"
    assert C.ablations_recover_carry_claim(paper_like(ablation=0.56))["verdict"] == "not reproduced"
    h = paper_like()
    h.loc[(h.method == C.EXACT[0]) & (h.measure == "digit"), "homogeneity"] = 0.35
    assert C.exact_loss_digit_claim(h)["verdict"] == "not reproduced"


def test_sensitivity_counts_settings():
    good, bad = paper_like(), paper_like(polca=0.56)
    both = pd.concat([good, bad.assign(min_cluster_size=6, min_samples_rule="5")])
    assert C.sensitivity_claim(good)["verdict"] == "reproduced"
    assert C.sensitivity_claim(bad)["verdict"] == "not reproduced"
    row = C.sensitivity_claim(both)
    assert row["verdict"] == "partly" and "2 settings" in row["measured"]


def test_carry_separation_flips_per_place():
    def sep(hundreds, tens, exact=0.02):
        rows = []
        for place, best in [("hundreds", hundreds), ("tens", tens)]:
            rows.append(dict(place=place, method="exact loss change (window)", vector=-1, separation=exact, null_95=0.1))
            rows += [dict(place=place, method=C.POLCA_HESSIAN, vector=j, separation=s, null_95=0.1)
                     for j, s in enumerate([0.01, best])]
        return pd.DataFrame(rows)
    assert C.carry_separation_claim(sep(0.3, 0.3))["verdict"] == "reproduced"
    assert C.carry_separation_claim(sep(0.3, 0.05))["verdict"] == "partly"
    assert C.carry_separation_claim(sep(0.05, 0.05))["verdict"] == "not reproduced"
    assert C.carry_separation_claim(sep(0.3, 0.3, exact=0.4))["verdict"] == "not reproduced"
    assert C.carry_separation_claim(pd.DataFrame())["verdict"] == "not measured"


def test_scale_claim_reads_the_largest_size():
    def series(polca, exact):
        return pd.DataFrame([dict(params=p, carry_margin_polca_hessian=m, carry_margin_polca_random=0.0,
                                  carry_margin_exact=e, explained_interval=0.95)
                             for p, m, e in zip([4e4, 9e4, 9e5], polca, exact)])
    assert C.scale_claim(series([0.0, 0.1, 0.3], [0.0, 0.0, 0.05]))["verdict"] == "reproduced"
    assert C.scale_claim(series([0.3, 0.0, 0.05], [0.0, 0.0, 0.0]))["verdict"] == "partly"
    assert C.scale_claim(series([0.3, 0.3, 0.3], [0.4, 0.4, 0.4]))["verdict"] == "not reproduced"
    assert C.scale_claim(series([np.nan] * 3, [np.nan] * 3))["verdict"] == "not reproduced"
    assert "none" in C.scale_claim(series([np.nan] * 3, [np.nan] * 3))["measured"]
    assert C.scale_claim(None)["verdict"] == "not measured"


def test_claims_on_the_committed_default_tables():
    if not (DATA / "polca_arithmetic_homogeneity.parquet").exists():
        pytest.skip("no committed default tables")
    rows = C.claims_from_folder(DATA)
    table = fidelity.claims_table("02_polca_arithmetic", rows)
    assert len(table) == 15 and set(table.verdict) <= set(fidelity.VERDICTS)
    assert (table.study == fidelity.STUDIES[2]).all()
    assert table.paper.str.len().gt(0).all() and table.measured.str.len().gt(0).all()
    assert not table.measured.str.contains("nan").any()
