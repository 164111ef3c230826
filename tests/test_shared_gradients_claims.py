"""Study 1's claims: each verdict flips when its criterion stops holding, on small synthetic tables."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gradtools import fidelity
from gradtools import shared_gradients_claims as sgc
from gradtools.shared_gradients import wide

STEPS = [100 * k for k in range(1, 11)]
CLAIMS = {  # short key -> index in the claims list
    "before_drop": 0, "losses_diverge": 1, "control_alignment": 2, "rand": 3, "interference": 4, "names": 5,
    "cross": 6, "small_models": 7, "early_shared": 8, "gt": 9, "oml": 10, "rand_freq": 11, "d2": 12}


def base_curves() -> dict:
    """{size: {(dataset, metric): values over STEPS}} where every claim holds: 'small' learns no IOI,
    'big' does."""
    early = [0, .4, .1, 0, 0, 0, 0, 0, 0, 0]          # a shared rise, then a drop
    second = [0, .4, .1, 0, .1, .3, .5, .5, .5, .5]   # the same, then a second rise
    big = {
        ("ioi", "cos_mean"): [0, .5, .1, 0, 0, .1, .3, .3, .3, .3],
        ("ioi", "loss"): [7, 5, 5, 5, 5, 5, 3, 1, 1, 1],
        ("ioi_name", "loss"): [7, 5, 5, 6, 7, 8, 9, 9, 9, 9],
        ("ioi_copy", "loss"): [7, 5, 5, 5, 5, 6, 7, 7, 7, 7],
        ("ioi_name", "cos_mean"): [0, .5, .1, 0, 0, .02, .05, .05, .05, .05],
        ("ioi_copy", "cos_mean"): [0, .5, .1, 0, 0, .02, .05, .05, .05, .05],
        ("ioi_rand", "cos_mean"): [0, .1, .05, .05, .05, .05, .05, .05, .05, .05],
        ("ioi_rand", "loss"): [7] * 10,
        ("ioi_rand_freq", "cos_mean"): [0, .05, .05, .05, .05, .05, .05, .05, .05, .05],
        ("ioi", "cos_mean_all"): [0, .45, .12, .02, 0, .1, .28, .3, .3, .3],
        ("ioi", "pair_correlation"): [.95] * 10,
        ("ioi x ioi_name", "cos_mean"): [0, .4, .1, 0, 0, -.05, -.1, -.1, -.1, -.1],
        ("ioi x ioi_copy", "cos_mean"): [0, .4, .1, 0, 0, -.05, -.1, -.1, -.1, -.1],
        ("training x ioi", "di_mean"): [.8] * 10,
        ("training x ioi", "lowering_share"): [.5] * 10,
        ("training x ioi", "di_null_mean"): [.82] * 10,
        ("training x ioi", "di_mean_b8"): [.85] * 10, ("training x ioi", "di_null_mean_b8"): [.75] * 10,
        ("training x ioi", "lowering_share_b8"): [.5] * 10,
        ("training x ioi", "di_mean_b64"): [.9] * 10, ("training x ioi", "di_null_mean_b64"): [.92] * 10,
        ("training x ioi", "lowering_share_b64"): [.6] * 10,
        ("name unembeddings", "random"): [0, .5, .6, .6, .6, .6, .6, .6, .6, .6],
        ("name unembeddings", "excess"): [0, .3, .2, .1, 0, -.1, -.2, -.2, -.2, -.2],
        ("gt", "cos_mean"): [0, .5, .1, 0, 0, 0, .02, .02, .02, .02],
        ("gt", "loss"): [7, 6, 5, 4, 4, 4, 3, 3, 3, 3],
        ("gt", "prob_diff"): [0, 0, 0, .1, .2, .3, .4, .5, .5, .5],
        ("gt_year", "cos_mean"): early, ("gt_copy", "cos_mean"): early,
        ("gt_less", "cos_mean"): second,
        ("gt_less", "loss"): [7, 6, 5, 5, 5, 5.5, 6, 6, 6, 6],
        ("oml", "cos_mean"): second, ("oml", "loss"): [7, 5, 3, 3, 2, 1, 1, 1, 1, 1],
        ("oml_month", "cos_mean"): [0, .4, .1, 0, 0, 0, .1, .1, .1, .1],
        ("oml_copy", "cos_mean"): [0, .4, .1, 0, 0, 0, .1, .1, .1, .1],
    }
    small = {**big,
             ("ioi", "cos_mean"): [0, .6, .1, 0, 0, 0, 0, 0, 0, 0],
             ("ioi", "loss"): [7, 5, 5, 5, 5, 5, 5, 5, 5, 5],
             ("ioi_name", "loss"): [7, 5, 5, 5, 5, 5, 5, 5, 5, 5],
             ("ioi_copy", "loss"): [7, 5, 5, 5, 5, 5, 5, 5, 5, 5],
             ("ioi x ioi_name", "cos_mean"): [0, .4, .1, 0, 0, 0, .02, .02, .02, .02],
             ("ioi x ioi_copy", "cos_mean"): [0, .4, .1, 0, 0, 0, .02, .02, .02, .02]}
    return {"small": small, "big": big}


def table(curves: dict) -> pd.DataFrame:
    rows = [dict(size=size, step=0, dataset=ds, metric=m, value=0.0)  # step 0 is left out by the claims
            for size, c in curves.items() for (ds, m) in c]
    rows += [dict(size=size, step=step, dataset=ds, metric=m, value=float(v))
             for size, c in curves.items() for (ds, m), vals in c.items() for step, v in zip(STEPS, vals)]
    return wide(pd.DataFrame(rows))


def verdicts(curves: dict) -> dict:
    rows = sgc.claims(sgc.summary(table(curves), sizes=list(curves)), training_batch_size=16)
    return {k: rows[i]["verdict"] for k, i in CLAIMS.items()}


def changed(size: str, **curves) -> dict:
    c = base_curves()
    for key, vals in curves.items():
        ds, metric = key.rsplit("__", 1)
        ds = ds.replace("_X_", " x ").replace("name_unembeddings", "name unembeddings")
        assert (ds, metric) in c[size], f"no curve {(ds, metric)} to change"
        c[size][(ds, metric)] = vals
    return c


def test_half_step_and_curve_shape():
    x = np.array([1, 2, 3, 4, 5, 6], float)
    assert sgc.half_step(x, np.array([0, .2, .6, 1, 1, 1])) == 3
    assert sgc.half_step(x, np.array([5, 7, 6, 3, 1, 1]), rising=False) == 4
    shape = sgc.curve_shape(x, np.array([0, .5, .1, 0, .3, .4]))
    assert (shape["peak_step"], shape["trough_step"], shape["late_half_step"]) == (2, 4, 5)
    assert shape["late_rise"] == pytest.approx(.4)
    no_drop = sgc.curve_shape(x, np.array([0, .5, .4, .45, .6, .7]))  # never falls back by 40%: the global peak
    assert no_drop["peak_step"] == 6 and no_drop["late_rise"] == 0
    assert sgc.divergence_step(x, np.array([1, 1, 2, 1, 3, 3]), np.ones(6)) == 5


def test_every_claim_holds_on_the_base_tables():
    assert set(verdicts(base_curves()).values()) == {"reproduced"}


@pytest.mark.parametrize("key, curves, expected", [
    # no late IOI-specific rise: only the early, shared one precedes the IOI drop
    ("before_drop", changed("big", ioi__cos_mean=[0, .5, .1, 0, 0, 0, 0, 0, 0, 0]), "partly"),
    ("losses_diverge", changed("big", ioi_copy__loss=[7, 5, 5, 5, 5, 5, 3, 1, 1, 1]), "partly"),
    ("losses_diverge", changed("big", ioi_copy__loss=[7, 5, 6, 7, 7, 7, 7, 7, 7, 7]), "partly"),  # copy first
    ("control_alignment", changed("big", ioi_name__cos_mean=[0, .5, .1, 0, 0, .1, .28, .28, .28, .28]), "partly"),
    ("control_alignment", changed("big", ioi_name__cos_mean=[0, .5, .1, 0, 0, .1, .4, .4, .4, .4]), "not reproduced"),
    ("rand", changed("big", ioi_rand__cos_mean=[0, .8, .3, .2, .2, .2, .2, .2, .2, .2]), "partly"),
    # below the random-sign null at the training batch size in one size (the other holds): partly
    ("interference", changed("big", training_X_ioi__di_mean=[.2] * 10), "partly"),
    ("interference", changed("small", training_X_ioi__lowering_share=[.9] * 10), "partly"),
    # destructive at the training batch, but batches of 64 lower the IOI loss consistently: partly
    ("interference", changed("big", training_X_ioi__di_mean_b64=[.5] * 10), "partly"),
    ("interference", changed("big", training_X_ioi__lowering_share_b64=[.9] * 10), "partly"),
    # a smaller extra batch size (8 < 16) does not count against the claim
    ("interference", changed("big", training_X_ioi__di_mean_b8=[.1] * 10), "reproduced"),
    ("rand_freq", changed("big", ioi_rand__cos_mean=[0, .8, .3, .2, .2, .2, .2, .2, .2, .2],
                          ioi_rand_freq__cos_mean=[0, .7, .3, .2, .2, .2, .2, .2, .2, .2]), "partly"),
    ("d2", changed("small", ioi__pair_correlation=[.6] * 10), "partly"),
    ("names", changed("big", name_unembeddings__excess=[0, .05, 0, 0, 0, 0, 0, 0, 0, 0]), "partly"),
    ("cross", changed("big", ioi_X_ioi_copy__cos_mean=[0, .4, .1, 0, 0, 0, .02, .02, .02, .02]), "partly"),
    ("cross", changed("small", ioi_X_ioi_name__cos_mean=[0, .4, .1, 0, 0, 0, -.1, -.1, -.1, -.1]), "partly"),
    ("small_models", changed("small", ioi__cos_mean=[0, .3, .1, 0, 0, 0, 0, 0, 0, 0]), "not reproduced"),
    ("early_shared", changed("big", gt_year__cos_mean=[0, .4, .35, .3, .3, .3, .3, .3, .3, .3]), "partly"),
    ("gt", changed("big", gt_less__loss=[7, 6, 5, 5, 5, 4.5, 4, 4, 4, 4]), "partly"),
    ("gt", changed("big", gt__cos_mean=[0, .5, .1, 0, .2, .5, .6, .6, .6, .6]), "partly"),
    ("oml", changed("small", oml__cos_mean=[0, .4, .1, 0, 0, 0, .05, .05, .05, .05]), "partly"),
])
def test_a_claim_flips_when_its_criterion_fails(key, curves, expected):
    assert verdicts(curves)[key] == expected


def test_interference_needs_every_size_below_the_null_to_fail():
    c = changed("big", training_X_ioi__di_mean=[.2] * 10)
    c["small"][("training x ioi", "di_mean")] = [.2] * 10
    assert verdicts(c)["interference"] == "not reproduced"
    for size in c:  # an old table without the null: not measured, and the why says so
        del c[size][("training x ioi", "di_null_mean")]
    row = sgc.claims(sgc.summary(table(c), sizes=list(c)))[CLAIMS["interference"]]
    assert row["verdict"] == "not measured" and "null" in row["why"]


def test_rand_freq_claim_when_the_uniform_control_rises_and_d2_without_the_metric():
    c = changed("big", ioi_rand__cos_mean=[0, .8, .3, .2, .2, .2, .2, .2, .2, .2])
    got = verdicts(c)
    assert got["rand_freq"] == "reproduced" and got["rand"] == "partly"
    row = sgc.claims(sgc.summary(table(c), sizes=list(c)))[CLAIMS["rand_freq"]]
    assert "mean cosine 0.60 at the end (max 0.60)" in row["measured"]  # the anisotropy
    for size in c:
        del c[size][("ioi", "pair_correlation")], c[size][("ioi", "cos_mean_all")]
        del c[size][("ioi_rand_freq", "cos_mean")]
    got = verdicts(c)
    assert got["d2"] == "not measured" and got["rand_freq"] == "not measured"


def test_ioi_window_checkpoints_are_counted():
    S = sgc.summary(table(base_curves()), sizes=["small", "big"], window_tail=200).set_index("size")
    # big's margin (IOI-name minus IOI loss) rises 0 -> 8 over steps 300-800: 10% at 400, 90% at 800
    assert (S.loc["big", "ioi_window_start"], S.loc["big", "ioi_window_end"]) == (400, 800)
    assert S.loc["big", "ioi_window_checkpoints"] == 5 and S.loc["small", "ioi_window_checkpoints"] == 0


def test_rand_claim_fails_when_every_size_has_the_rise():
    c = changed("big", ioi_rand__cos_mean=[0, .8, .3, .2, .2, .2, .2, .2, .2, .2])
    c["small"][("ioi_rand", "cos_mean")] = [0, .8, .3, .2, .2, .2, .2, .2, .2, .2]
    assert verdicts(c)["rand"] == "not reproduced"


def test_without_ioi_or_training_data_the_claims_are_not_measured():
    c = base_curves()
    c["big"][("ioi_name", "loss")] = c["big"][("ioi", "loss")]
    c["big"][("ioi_copy", "loss")] = c["big"][("ioi", "loss")]
    for size in c:
        del c[size][("training x ioi", "di_mean")], c[size][("training x ioi", "lowering_share")]
    got = verdicts(c)
    for key in ("before_drop", "losses_diverge", "control_alignment", "interference", "small_models"):
        assert got[key] == "not measured"
    rows = sgc.claims(sgc.summary(table(c), sizes=list(c)))
    assert "no size learns IOI" in rows[0]["why"] and "training data" in rows[4]["why"]


def test_one_seed_is_said_in_why():
    rows = sgc.claims(sgc.summary(table(base_curves()), sizes=["small", "big"]))
    assert all("one seed" in r["why"] for r in rows)
    rows = sgc.claims(sgc.summary(table(base_curves()), sizes=["small", "big"]), n_seeds=3)
    assert not any("one seed" in r["why"] for r in rows)


def test_runs_on_the_committed_default_table():
    path = Path(__file__).resolve().parents[1] / "data" / "shared_gradients.parquet"
    W = wide(pd.read_parquet(path))
    summary = sgc.summary(W)
    assert len(summary) == W["size"].nunique() and summary["size"].is_unique
    rows = sgc.claims(summary)
    df = fidelity.claims_table("01_shared_gradients", rows)
    assert len(df) == len(CLAIMS) and set(df.verdict) <= set(fidelity.VERDICTS)
    assert (df.measured.str.len() > 0).all() and (df.paper.str.len() > 0).all()
    assert (df.study == fidelity.STUDIES[1]).all()


def test_rand_claim_needs_an_ioi_rise():
    c = base_curves()
    for size in c:
        c[size][("ioi", "cos_mean")] = [0] * 10
    rows = sgc.claims(sgc.summary(table(c), sizes=list(c)))
    assert rows[CLAIMS["rand"]]["verdict"] == "not measured"


def test_cross_alignment_is_partly_when_no_size_lacks_ioi():
    every_size_learns = {"big": base_curves()["big"]}
    row = sgc.claims(sgc.summary(table(every_size_learns), sizes=["big"]))[CLAIMS["cross"]]
    assert row["verdict"] == "partly" and "untested" in row["why"]


def test_notebook_00s_verdict_decides_which_sizes_learn_ioi():
    """A size with a large margin that copies [B] (notebook 00: IOI not held) is not an IOI size."""
    W = table(base_curves())
    by_margin = sgc.summary(W, sizes=["small", "big"])
    assert by_margin.ioi_learned.tolist() == [False, True] and set(by_margin.ioi_learned_by) == {"margin"}
    S = sgc.summary(W, sizes=["small", "big"], learned={"small": False, "big": False})
    assert not S.ioi_learned.any() and set(S.ioi_learned_by) == {"suite"}
    rows = sgc.claims(S, training_batch_size=16)
    assert rows[CLAIMS["before_drop"]]["verdict"] == "not measured"
    assert "notebook 00's verdict" in rows[CLAIMS["before_drop"]]["why"]
    only_small = sgc.summary(W, sizes=["small", "big"], learned={"small": True})  # big: by its margin
    assert only_small.ioi_learned.tolist() == [True, True]
    assert only_small.ioi_learned_by.tolist() == ["suite", "margin"]


def test_seed_claims_count_seeds_and_leave_out_the_size_comparisons():
    """Over the seeds of one size: each seed is a unit; a seed that loses a claim makes it partly."""
    c = base_curves()
    seeds = {"d96 seed 0": c["big"], "d96 seed 1": c["big"],
             "d96 seed 2": changed("big", ioi_copy__loss=[7, 5, 5, 5, 5, 5, 3, 1, 1, 1])["big"]}
    S = sgc.summary(table(seeds), sizes=list(seeds))
    rows = sgc.seed_claims(S, "d96", training_batch_size=16, early_step=100)  # every seed from step 100
    names = [r["claim"] for r in rows]
    assert len(rows) == len(CLAIMS) - 2 and not any(n.startswith(sgc.SIZE_COMPARISONS) for n in names)
    assert all(n.endswith("over 3 seeds of d96") and "units: the 3 seeds" in r["why"] for n, r in zip(names, rows))
    by_claim = {n.split(",")[0]: r["verdict"] for n, r in zip(names, rows)}
    assert by_claim["IOI-name"] == "partly"  # the losses-diverge claim: seed 2 lacks IOI-copy's divergence
    assert sum(r["verdict"] == "reproduced" for r in rows) == len(rows) - 1
    assert not any("one seed" in r["why"] for r in rows)
    assert all("3 of 3 learn IOI" in r["why"] for r in rows)
    # notebook 00 says seed 2 does not learn IOI: the IOI-formation rows count the two others
    S = sgc.summary(table(seeds), sizes=list(seeds), learned={"d96 seed 0": True, "d96 seed 1": True, "d96 seed 2": False})
    rows = sgc.seed_claims(S, "d96", training_batch_size=16, early_step=100)
    assert all("2 of 3 learn IOI" in r["why"] for r in rows)
    assert {r["claim"].split(",")[0]: r["verdict"] for r in rows}["IOI-name"] == "reproduced"


def test_seed_claims_leave_out_seeds_measured_too_late_for_the_early_rise():
    c = base_curves()
    seeds = {"s0": c["big"], "s1": c["big"], "s2": changed("big", ioi_rand__cos_mean=[0, .8, .3, .2, .2, .2, .2, .2, .2, .2])["big"]}
    W = table(seeds)
    W = W[~((W["size"] == "s2") & (W.step == 100))]  # s2's first checkpoint after step 0: 200
    S = sgc.summary(W, sizes=list(seeds))
    assert S.first_step.tolist() == [100, 100, 200]
    rows = {r["claim"].rsplit(", over", 1)[0]: r for r in sgc.seed_claims(S, "d96", training_batch_size=16, early_step=100)}
    rand = rows["IOI-rand shows no alignment rise like IOI's (fig. 4)"]
    assert rand["verdict"] == "reproduced" and "s2 (first checkpoint at step 200)" in rand["why"]  # s2's rise unseen
    assert "s2" not in rand["measured"]
    names = rows["name unembeddings cluster (fig. 5)"]  # not an early-phase claim: every seed counts
    assert "s2" in names["measured"] and "left out" not in names["why"]
    # fewer than two seeds measured early enough: the early-phase claims are not measured
    few = {r["claim"].rsplit(", over", 1)[0]: r for r in sgc.seed_claims(S, "d96", training_batch_size=16, early_step=50)}
    assert all(few[c]["verdict"] == "not measured" for c in sgc.EARLY_PHASE)
    assert few["name unembeddings cluster (fig. 5)"]["verdict"] == "reproduced"
