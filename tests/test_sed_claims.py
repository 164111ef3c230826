"""The claims of studies 4 and 5 (gradtools.sed_claims): each verdict flips when its table does."""
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gradtools import fidelity, sed_claims

DATA = Path(__file__).resolve().parents[1] / "data"


def verdict(row):
    return row["verdict"]


# ---------------------------------------------------------------- study 4

def table1(runs):
    """runs: {(op, seed): (update_peak, gradient_peak)}; the update peak before grokking at 2000, finals below peaks."""
    rows = []
    for (op, seed), (up, gp) in runs.items():
        rows.append(dict(estimator="update SED", op=op, seed=seed, peak_R=up, peak_step=1000, final_R=up / 4,
                         final_step=3000, grokking_step=2000))
        rows.append(dict(estimator="gradient SED", op=op, seed=seed, peak_R=gp, peak_step=2500, final_R=gp * 0.8,
                         final_step=3000, grokking_step=2000))
    return pd.DataFrame(rows)


def test_gradient_over_update_flips_with_the_ratio():
    assert verdict(sed_claims.gradient_over_update_claim(table1({("add", 42): (9.0, 202.0)}))) == "reproduced"
    assert verdict(sed_claims.gradient_over_update_claim(table1({("add", 42): (9.0, 50.0)}))) == "not reproduced"
    both = table1({("add", 42): (9.0, 202.0), ("add", 137): (9.0, 50.0)})
    row = sed_claims.gradient_over_update_claim(both)
    assert verdict(row) == "partly" and "1 of 2" in row["why"]


def test_gradient_sed_range_and_sustained():
    assert verdict(sed_claims.gradient_sed_range_claim(table1({("add", 42): (9.0, 202.0)}))) == "reproduced"
    row = sed_claims.gradient_sed_range_claim(table1({("add", 42): (9.0, 755.0)}))
    assert verdict(row) == "not reproduced" and "1 above" in row["why"]
    t = table1({("add", 42): (9.0, 202.0)})
    assert verdict(sed_claims.gradient_sed_sustained_claim(t)) == "reproduced"
    t.loc[t.estimator == "gradient SED", "final_R"] = 20.0
    assert verdict(sed_claims.gradient_sed_sustained_claim(t)) == "not reproduced"


def test_update_sed_transient_needs_a_peak_before_grokking():
    t = table1({("add", 42): (9.0, 202.0)})
    assert verdict(sed_claims.update_sed_transient_claim(t)) == "reproduced"
    t.loc[t.estimator == "update SED", "peak_step"] = 2500
    assert verdict(sed_claims.update_sed_transient_claim(t)) == "not reproduced"
    t = table1({("add", 42): (9.0, 202.0)}).assign(grokking_step=np.nan)
    assert verdict(sed_claims.update_sed_transient_claim(t)) == "not reproduced"


def test_paper_constants_agree_with_each_other():
    # the paper's means (tables 1, 4, 5) against its per-seed values, as printed (rounded)
    for key, means in sed_claims.PAPER_GROKKING_STEPS.items():
        per_seed = sed_claims.PAPER_GROKKING_STEPS_BY_SEED[key]
        assert means == {c: round(np.mean(v)) for c, v in per_seed.items()}, key
    for op, peaks in sed_claims.PAPER_GRADIENT_PEAK_BY_SEED.items():
        assert sed_claims.PAPER_TABLE1["gradient SED"][op] == peaks[sed_claims.PAPER_SEEDS.index(42)]
    assert sed_claims.paper_peak_R("gradient SED", "mul", 137) == 101.0
    assert sed_claims.paper_peak_R("update SED", "mul", 42) == 3.47
    assert math.isnan(sed_claims.paper_peak_R("update SED", "mul", 137))
    assert math.isnan(sed_claims.paper_peak_R("gradient SED", "add", 7))


def paper_table1():
    """Table 1 of the paper as our table: gradient SED on three seeds, update SED on seed 42 only."""
    rows = {(op, seed): (sed_claims.PAPER_TABLE1["update SED"][op] if seed == 42 else None, g)
            for op, peaks in sed_claims.PAPER_GRADIENT_PEAK_BY_SEED.items()
            for seed, g in zip(sed_claims.PAPER_SEEDS, peaks)}
    t = table1({k: (u if u is not None else np.nan, g) for k, (u, g) in rows.items()})
    return t.dropna(subset=["peak_R"])


def test_mul_strongest_is_decided_per_seed():
    assert verdict(sed_claims.mul_strongest_claim(table1({("add", 42): (9.0, 202.0)}))) == "not measured"
    # the paper's own table: mul is the strongest on seed 42 only
    row = sed_claims.mul_strongest_claim(paper_table1())
    assert verdict(row) == "partly" and "not on seed 137, seed 2024" in row["why"]
    assert "seed 42: mul 1 of 4" in row["measured"]
    everywhere = table1({("add", s): (9.0, 100.0) for s in (1, 2)} | {("mul", s): (3.0, 300.0) for s in (1, 2)})
    assert verdict(sed_claims.mul_strongest_claim(everywhere)) == "reproduced"
    nowhere = table1({("add", s): (9.0, 300.0) for s in (1, 2)} | {("mul", s): (3.0, 100.0) for s in (1, 2)})
    assert verdict(sed_claims.mul_strongest_claim(nowhere)) == "not reproduced"


def test_op_spread_is_decided_per_seed():
    # on one seed the gradient spread is the smaller, on the other the larger
    mixed = table1({("add", 1): (9.0, 200.0), ("mul", 1): (3.0, 180.0), ("add", 2): (9.0, 300.0), ("mul", 2): (3.0, 50.0)})
    row = sed_claims.op_spread_claim(mixed)
    assert verdict(row) == "partly" and "not on seed 2" in row["why"] and "seed-mean peaks" in row["measured"]


def test_op_spread_needs_two_ops_and_flips():
    assert verdict(sed_claims.op_spread_claim(table1({("add", 42): (9.0, 202.0)}))) == "not measured"
    paper_like = table1({("add", 42): (8.97, 202.4), ("mul", 42): (3.47, 326.7)})
    assert verdict(sed_claims.op_spread_claim(paper_like)) == "reproduced"
    spread = table1({("add", 42): (8.97, 100.0), ("mul", 42): (8.0, 326.7)})
    assert verdict(sed_claims.op_spread_claim(spread)) == "not reproduced"


def table2(windows):
    return pd.DataFrame([dict(setting="window W", value=str(w), peak_R=r, peak_step=100, final_R=r)
                         for w, r in windows.items()] +
                        [dict(setting="probe seed", value="1", peak_R=5.0, peak_step=100, final_R=5.0)])


def test_window_claim_monotone_ceiling_or_neither():
    assert verdict(sed_claims.window_claim(table2({1: 600, 5: 400, 10: 300, 20: 200, 40: 150}))) == "reproduced"
    assert verdict(sed_claims.window_claim(table2({1: 600, 5: 400, 10: 450, 20: 200}))) == "partly"
    row = sed_claims.window_claim(table2({1: 619, 5: 585, 10: 715, 20: 649, 40: 655}), where="add/42")
    assert verdict(row) == "not reproduced" and row["measured"].startswith("add/42")
    # numeric order of W, not string order ("10" < "5")
    assert verdict(sed_claims.window_claim(table2({10: 300, 1: 600, 5: 400}))) == "reproduced"


def test_window_floor_claim():
    assert verdict(sed_claims.window_floor_claim(table2({1: 600, 20: 200}))) == "reproduced"
    assert verdict(sed_claims.window_floor_claim(table2({1: 600, 20: 5}))) == "partly"


def table3(r_per_example, spans):
    rows = []
    for (phase, step), r, span in zip([("init", 0), ("mid", 1000), ("post-grok", 3000)], r_per_example, spans):
        for est, val in (("mean gradient", 100.0), ("per-example SVD top-3", r), ("W = 1", 100.0)):
            rows.append(dict(phase=phase, step=step, estimator=est, R_max=val, mean_in_top3_span=span))
    return pd.DataFrame(rows)


def test_per_example_claims_flip_and_not_measured():
    coupled, orth = sed_claims.per_example_claims(table3([20, 80, 300], [0.1, 0.2, 0.3]))
    assert verdict(coupled) == verdict(orth) == "reproduced"
    coupled, orth = sed_claims.per_example_claims(table3([2, 80, 300], [0.1, 0.7, 0.7]))
    assert verdict(coupled) == "partly" and verdict(orth) == "partly"
    coupled, orth = sed_claims.per_example_claims(table3([2, 3, 4], [0.9, 0.7, 0.7]))
    assert verdict(coupled) == verdict(orth) == "not reproduced"
    assert [verdict(r) for r in sed_claims.per_example_claims(None)] == ["not measured"] * 2


def curves(rank90, steps=(0, 1000, 2000, 3000), op="add", seed=42):
    return pd.DataFrame([dict(op=op, seed=seed, step=s, estimator=e, index=0, R=1.0, rank90=r)
                         for s, r in zip(steps, rank90) for e in ("update SED", "gradient SED")])


def test_rank90_rises_then_collapses():
    grok = pd.DataFrame(dict(op=["add"], seed=[42], grokking_step=[2500]))
    assert verdict(sed_claims.rank90_claim(curves([60, 96, 95, 23]), grok)) == "reproduced"
    assert verdict(sed_claims.rank90_claim(curves([60, 96, 95, 70]), grok)) == "not reproduced"
    assert verdict(sed_claims.rank90_claim(curves([60, 50, 40, 23]), grok)) == "not reproduced"
    never = grok.assign(grokking_step=[None])
    assert verdict(sed_claims.rank90_claim(curves([60, 96, 95, 23]), never)) == "not reproduced"


def mt_table(update_peak, update_final, grad_peak, grad_final, grokked=True):
    rows = []
    for op in ("add", "sub", "mul", "sq"):
        g = 3000 if grokked else None
        rows.append(dict(estimator="aggregated update SED", peak_R=update_peak, peak_step=200, final_R=update_final,
                         final_step=5000, op=op, grokking_step=g))
        rows.append(dict(estimator="per-op gradient SED", peak_R=grad_peak, peak_step=4000, final_R=grad_final,
                         final_step=5000, op=op, grokking_step=g))
    return pd.DataFrame(rows)


def test_multitask_claims_flip():
    groks, below, beats, high = sed_claims.multitask_claims(mt_table(0.5, 0.1, 40, 30))
    assert [verdict(r) for r in (groks, below, beats, high)] == ["reproduced"] * 4
    groks, below, beats, high = sed_claims.multitask_claims(mt_table(2.5, 0.1, 40, 10, grokked=False))
    assert verdict(groks) == "not reproduced" and verdict(below) == "partly"
    assert verdict(beats) == "reproduced" and verdict(high) == "not reproduced"
    _, below, beats, _ = sed_claims.multitask_claims(mt_table(2.5, 1.5, 2.0, 2.0))
    assert verdict(below) == "not reproduced" and verdict(beats) == "not reproduced"


def _committed(name):
    path = DATA / f"{name}.parquet"
    if not path.exists():
        pytest.skip(f"{path} not committed")
    return pd.read_parquet(path)


def _well_formed(notebook, rows, n):
    df = fidelity.claims_table(notebook, rows)  # unique claims, valid verdicts
    assert len(df) == n
    assert set(df.verdict) <= set(fidelity.VERDICTS)
    assert (df.paper.str.len() > 0).all() and (df.measured.str.len() > 0).all()
    assert ((df.verdict == "reproduced") | (df.why.str.len() > 0)).all()
    assert "nan" not in " ".join(df.measured)


def test_coupling_claims_on_the_committed_tables():
    t1 = _committed("sed_table1_update_vs_gradient")
    grok = t1[["op", "seed", "grokking_step"]].drop_duplicates()
    rows = sed_claims.coupling_claims(grok, t1, _committed("sed_table2_ablation"), _committed("sed_table3_per_example_svd"),
                                      _committed("sed_multitask_table"), _committed("sed_coupling_curves"), where="add/42")
    _well_formed("04_sed_coupling", rows, 16)
    assert all(r["study"] == fidelity.STUDIES[4] for r in rows)


# ---------------------------------------------------------------- study 5

def steps_table(tables, wd0=(("C", None, 3000),)):
    """tables: {(flavour, op): {condition: [grokking step per seed]}} -> the notebook's grokking-step table."""
    rows = []
    for (flavour, op), conds in tables.items():
        for condition, per_seed in conds.items():
            for seed, g in zip((42, 137, 2024), per_seed):
                rows.append(dict(op=op, seed=seed, flavour=flavour, condition=condition,
                                 grokking_step=np.nan if g is None else float(g),
                                 steps_trained=8000 if g is None else g, final_test_acc=0.96))
    for condition, g, n in wd0:
        rows.append(dict(op="add", seed=42, flavour="weight decay 0", condition=condition,
                         grokking_step=np.nan if g is None else float(g), steps_trained=n, final_test_acc=0.01))
    return pd.DataFrame(rows)


# tables 4 (update, add) and 5 (gradient, add) of the paper, per seed
PAPER_UPDATE = {c: list(v) for c, v in sed_claims.PAPER_GROKKING_STEPS_BY_SEED["update", "add"].items()}
PAPER_GRADIENT = {c: list(v) for c, v in sed_claims.PAPER_GROKKING_STEPS_BY_SEED["gradient", "add"].items()}


def by_claim(rows):
    return {r["claim"]: r for r in rows}


def test_the_papers_own_tables_reproduce():
    rows = by_claim(sed_claims.intervention_claims(steps_table(
        {("update", "add"): PAPER_UPDATE, ("gradient", "add"): PAPER_GRADIENT},
        wd0=(("A", None, 8000), ("C", None, 8000), ("E", None, 8000)))))
    assert len(rows) == 11
    assert {c: r["verdict"] for c, r in rows.items()} == {c: "reproduced" for c in rows}


def test_keep_only_rank3_flips_with_the_speedup():
    slow_c = dict(PAPER_GRADIENT, C=[3400, 3500, 2900])
    rows = by_claim(sed_claims.intervention_claims(steps_table({("gradient", "add"): slow_c})))
    assert verdict(rows["gradient projection: keep only SED (C) groks ~2x faster than A"]) == "not reproduced"
    assert verdict(rows["gradient projection: keep only random rank 3 (E) groks ~2x faster than A"]) == "reproduced"
    assert verdict(rows["gradient projection: SED (C) vs random (E) within seed variation"]) == "not reproduced"
    mixed = dict(PAPER_GRADIENT, C=[1425, 3500, 1475])
    rows = by_claim(sed_claims.intervention_claims(steps_table({("gradient", "add"): mixed})))
    assert verdict(rows["gradient projection: keep only SED (C) groks ~2x faster than A"]) == "partly"


def test_remove_conditions_no_effect_or_no_grokking():
    fast_d = dict(PAPER_GRADIENT, D=[1500, 1500, 1500])
    rows = by_claim(sed_claims.intervention_claims(steps_table({("gradient", "add"): fast_d})))
    d = rows["gradient projection: removing random rank 3 (D) neither prevents nor speeds grokking"]
    assert verdict(d) == "partly"  # groks, but far faster than A
    no_grok = dict(PAPER_GRADIENT, B=[None, None, None])
    rows = by_claim(sed_claims.intervention_claims(steps_table({("gradient", "add"): no_grok})))
    b = rows["gradient projection: removing SED (B) neither prevents nor speeds grokking"]
    assert verdict(b) == "not reproduced" and "did not grok" in b["why"]
    slow_b = dict(PAPER_UPDATE, B=PAPER_UPDATE["A"])
    rows = by_claim(sed_claims.intervention_claims(steps_table({("update", "add"): slow_b})))
    assert verdict(rows["update projection: removing SED (B) does not prevent grokking, speeds it up"]) == "partly"


def test_sed_vs_random_not_measured_without_both_conditions_on_seeds():
    only_c = {("update", "add"): {c: PAPER_UPDATE[c] for c in "AC"}}
    row = by_claim(sed_claims.intervention_claims(steps_table(only_c)))[
        "update projection: SED (C) vs random (E) within seed variation"]
    assert verdict(row) == "not measured" and "E not run" in row["measured"]
    e_row = by_claim(sed_claims.intervention_claims(steps_table(only_c)))[
        "update projection: keep only random rank 3 (E) groks ~2x faster than A"]
    assert verdict(e_row) == "not measured" and e_row["measured"] == "not run"
    # a run that did not grok fails its op
    e_fails = {("gradient", "add"): dict(PAPER_GRADIENT, E=[None, 1475, 1375])}
    row = by_claim(sed_claims.intervention_claims(steps_table(e_fails)))[
        "gradient projection: SED (C) vs random (E) within seed variation"]
    assert verdict(row) == "not reproduced"


def test_condition_claims_name_the_failing_runs():
    slow_on_one = dict(PAPER_GRADIENT, C=[1425, 3400, 1475])
    row = by_claim(sed_claims.intervention_claims(steps_table({("gradient", "add"): slow_on_one})))[
        "gradient projection: keep only SED (C) groks ~2x faster than A"]
    assert verdict(row) == "partly" and "not on add/137" in row["why"]


def test_one_seed_note_is_per_claim():
    # C and E on three seeds, B and D on the first only: only the B and D rows say "one seed"
    grid = {c: (v if c in "ACE" else v[:1]) for c, v in PAPER_GRADIENT.items()}
    rows = by_claim(sed_claims.intervention_claims(steps_table({("gradient", "add"): grid})))
    assert "one seed" not in rows["gradient projection: keep only SED (C) groks ~2x faster than A"]["why"]
    assert "one seed" in rows["gradient projection: removing SED (B) neither prevents nor speeds grokking"]["why"]
    assert verdict(rows["gradient projection: SED (C) vs random (E) within seed variation"]) == "reproduced"


def test_one_seed_says_so():
    one = {("gradient", "add"): {c: v[:1] for c, v in PAPER_GRADIENT.items()}}
    rows = by_claim(sed_claims.intervention_claims(steps_table(one)))
    cve = rows["gradient projection: SED (C) vs random (E) within seed variation"]
    assert verdict(cve) == "not measured" and "one seed" in cve["why"]
    c = rows["gradient projection: keep only SED (C) groks ~2x faster than A"]
    assert verdict(c) == "reproduced" and "one seed" in c["why"]


def test_weight_decay_0_claim():
    full = steps_table({}, wd0=(("A", None, 8000), ("C", None, 8000), ("E", None, 8000)))
    assert verdict(sed_claims.weight_decay_0_claim(full)) == "reproduced"
    short = steps_table({}, wd0=(("C", None, 3000),))
    assert verdict(sed_claims.weight_decay_0_claim(short)) == "partly"
    grokked = steps_table({}, wd0=(("A", None, 8000), ("C", 2500, 2500), ("E", None, 8000)))
    assert verdict(sed_claims.weight_decay_0_claim(grokked)) == "not reproduced"
    assert verdict(sed_claims.weight_decay_0_claim(steps_table({}, wd0=()))) == "not measured"


def test_speedups_treat_no_grokking_as_infinitely_slow():
    sp = sed_claims.speedups(steps_table({("update", "add"): dict(A=[3000], C=[1500], E=[None])}))
    s = sp.set_index("condition").speedup
    assert s["A"] == 1 and s["C"] == 2 and s["E"] == 0
    sp = sed_claims.speedups(steps_table({("update", "add"): dict(A=[None], C=[1500], E=[None])}))
    s = sp.set_index("condition").speedup
    assert math.isinf(s["C"]) and math.isnan(s["E"])


def test_intervention_claims_on_the_committed_tables():
    rows = sed_claims.intervention_claims(_committed("sed_interventions_grokking_steps"))
    _well_formed("05_sed_interventions", rows, 11)
    assert all(r["study"] == fidelity.STUDIES[5] for r in rows)


def test_empty_tables_are_not_measured_and_say_why():
    grok = pd.DataFrame(columns=["op", "seed", "grokking_step"])
    t1 = table1({}).reindex(columns=["estimator", "op", "seed", "peak_R", "peak_step", "final_R", "final_step",
                                     "grokking_step"])
    rows = [sed_claims.grokking_claim(grok), sed_claims.update_sed_transient_claim(t1),
            sed_claims.gradient_over_update_claim(t1), sed_claims.gradient_sed_range_claim(t1),
            sed_claims.gradient_sed_sustained_claim(t1),
            sed_claims.rank90_claim(curves([]).reindex(columns=["op", "seed", "step", "rank90"]), grok),
            *sed_claims.multitask_claims(mt_table(0.5, 0.1, 40, 30).iloc[:0])]
    assert all(verdict(r) == "not measured" and r["why"] for r in rows)


def test_projection_reading_states_share_decay_and_speedup():
    shares = pd.DataFrame([dict(op="add", seed=s, flavour=f, condition="C", mean_kept_share=k, first_attention_norm=20.0,
                                last_attention_norm=last) for s, f, k, last in
                           [(1, "update", 0.04, 19.0), (1, "gradient", 0.02, 8.0), (2, "gradient", 0.04, 12.0)]])
    steps = pd.DataFrame([dict(op="add", seed=s, flavour=f, condition=c, grokking_step=g) for s, f, c, g in
                          [(1, "update", "A", 3000), (1, "update", "C", 3000), (1, "gradient", "A", 3000),
                           (1, "gradient", "C", 1500), (2, "gradient", "A", 2000), (2, "gradient", "C", 2000)]])
    update, gradient = sed_claims.projection_reading(shares, steps)
    assert update.startswith("- update projection, C (1 run)") and "95% of their initial norm" in update
    assert "1.00x" in update and "a share 0.04 " in update
    assert "(2 runs)" in gradient and "a share 0.03 " in gradient and "50% of their" in gradient and "1.50x" in gradient
