"""The suite's claims: decided over the last 1000 steps and, for IOI, over the seeds of the recipe."""
from pathlib import Path

import pandas as pd
import pytest

from gradtools import checkpoint_suite_claims as csc
from gradtools import fidelity

STEPS = [0, 5000, 10_000, 11_000, 11_500, 12_000]
CHANCE = csc.oml_chance(408)


def metrics(rank=0.9, margin=3.0, gt=0.6, oml=1.0) -> dict:
    return dict(ioi_loss=2.0, ioi_name_loss=2.0 + margin, ioi_copy_loss=6.0, ioi_rank_accuracy=rank,
                gt_loss=3.0, gt_prob_diff=gt, oml_loss=0.5, oml_accuracy=oml)


def capabilities(size="d64-L2", window=None, **early) -> pd.DataFrame:
    """A size that passes every threshold from step 10000 on; ``window``: metrics at step 11500."""
    rows = []
    for step in STEPS:
        m = metrics(rank=0.5, margin=0.0, gt=0.1, oml=0.08) if step < 10_000 else metrics()
        if step == 11_500 and window:
            m.update(window)
        rows += [dict(size=size, step=step, metric=k, value=v) for k, v in m.items()]
    return pd.DataFrame(rows)


def probes(ranks: dict[str, float], size="d64-L2", lr=2e-3, steps=12_000, corpus=4) -> pd.DataFrame:
    rows = []
    for run, rank in ranks.items():
        for step in (0, 11_000, 12_000):
            m = metrics(rank=rank) if step else metrics(rank=0.5, margin=0.0)
            rows += [dict(run=run, corpus=corpus, size=size, steps=steps, lr=lr, step=step, metric=k, value=v)
                     for k, v in m.items()]
    return pd.DataFrame(rows)


def suite_claims(caps, probe_table, wider_probes=None):
    wide = csc.capability_wide(caps)
    emergence = csc.emergence_table(wide, CHANCE)
    seeds = csc.seed_table(wide, "d64-L2", 0, probe_table, lr=2e-3, steps=12_000, corpus=4, chance=CHANCE)
    wider = csc.wider_runs(wider_probes if wider_probes is not None else probe_table, "d64-L2",
                           steps=12_000, corpus=4)
    return {r["claim"].split(" (")[0]: r for r in csc.claims(emergence, seeds, wider)}


IOI = "the suite's largest size learns IOI"
GT = "the suite's largest size learns GT"
OML = "the suite's largest size learns OML"
WIDER = "wider models than the largest suite size learn IOI in the same budget"


def test_every_threshold_held_over_the_window_and_seeds_is_reproduced():
    got = suite_claims(capabilities(), probes({"K": 0.9, "M": 0.95, "N": 0.9}))
    assert [got[k]["verdict"] for k in (IOI, GT, OML)] == ["reproduced"] * 3
    assert "3 of 3 seeds" in got[IOI]["measured"]  # K is seed 0, the suite itself: not counted twice


def test_a_dip_inside_the_last_1000_steps_counts_although_the_last_checkpoint_passes():
    got = suite_claims(capabilities(window=dict(ioi_rank_accuracy=0.7, gt_prob_diff=0.4, oml_accuracy=0.05)),
                       probes({"M": 0.95}))
    assert got[IOI]["verdict"] == "partly"          # seed 0 dips, seed 1 holds
    assert got[GT]["verdict"] == "partly" and got[OML]["verdict"] == "partly"
    assert "at the last checkpoint alone 2 of 2" in got[IOI]["measured"]


def test_a_dip_before_the_window_does_not_count():
    caps = capabilities()
    caps.loc[(caps.step == 10_000) & (caps.metric == "gt_prob_diff"), "value"] = 0.2  # 2000 steps before the end
    assert suite_claims(caps, probes({}))[GT]["verdict"] == "reproduced"


def test_ioi_is_decided_over_seeds():
    assert suite_claims(capabilities(), probes({"M": 0.95, "N": 0.39, "O": 1.0}))[IOI]["verdict"] == "partly"
    every_seed_fails = capabilities(window=dict(ioi_rank_accuracy=0.6))
    got = suite_claims(every_seed_fails, probes({"M": 0.4, "N": 0.39}))
    assert got[IOI]["verdict"] == "not reproduced"
    margin_too_small = suite_claims(capabilities(window=dict(ioi_name_loss=2.3)), probes({}))
    assert margin_too_small[IOI]["verdict"] == "not reproduced"
    assert "one seed" in margin_too_small[IOI]["why"]


def test_probe_runs_of_another_recipe_are_not_seeds():
    other_lr = probes({"M": 0.3}, lr=1e-3)
    other_size = probes({"N": 0.3}, size="d96-L3")
    got = suite_claims(capabilities(), pd.concat([other_lr, other_size]))
    assert got[IOI]["verdict"] == "reproduced" and "1 of 1 seeds" in got[IOI]["measured"]


def test_wider_models():
    assert suite_claims(capabilities(), probes({}))[WIDER]["verdict"] == "not measured"
    fails = probes({"K": 0.4, "L": 0.45}, size="d96-L3", lr=1.5e-3)
    got = suite_claims(capabilities(), probes({}), fails)[WIDER]
    assert got["verdict"] == "not reproduced" and "copying stage" in got["why"]
    passes = pd.concat([fails, probes({"P": 0.9}, size="d80-L3")])
    assert suite_claims(capabilities(), probes({}), passes)[WIDER]["verdict"] == "reproduced"
    narrower = probes({"Q": 0.9}, size="d32-L2")
    assert suite_claims(capabilities(), probes({}), narrower)[WIDER]["verdict"] == "not measured"


def test_emergence_table_steps():
    wide = csc.capability_wide(capabilities(window=dict(gt_prob_diff=0.4)))
    row = csc.emergence_table(wide, CHANCE).iloc[0]
    assert row.gt_first_above == 10_000 and row.gt_emerges == 12_000 and row.ioi_emerges == 10_000
    assert row.window_checkpoints == 3 and row.window_gt_pass_share == pytest.approx(2 / 3)
    assert bool(row.passes_gt) and not row.window_gt_prob_diff_min > 0.5


def test_runs_on_the_committed_default_tables():
    data = Path(__file__).resolve().parents[1] / "data"
    wide = csc.capability_wide(pd.read_parquet(data / "suite_capabilities.parquet"))
    probe_table = csc.load_recipe_probes(data / "suite_recipe_probes.parquet")
    largest = list(dict.fromkeys(wide["size"]))[-1]
    emergence = csc.emergence_table(wide, CHANCE)
    seeds = csc.seed_table(wide, largest, 0, probe_table, lr=2e-3, steps=int(wide.step.max()), corpus=4,
                           chance=CHANCE)
    wider = csc.wider_runs(probe_table, largest, steps=int(wide.step.max()), corpus=4)
    rows = csc.claims(emergence, seeds, wider)
    df = fidelity.claims_table("00_checkpoint_suite", rows)
    assert len(df) == 5 and set(df.verdict) <= set(fidelity.VERDICTS)
    assert (df.measured.str.len() > 0).all() and seeds.seed.is_unique and len(seeds) >= 1


def test_a_short_run_is_its_own_window():
    caps = capabilities()
    caps = caps[caps.step.isin([0, 11_000, 12_000])].assign(step=lambda d: d.step.map({0: 0, 11_000: 20, 12_000: 40}))
    got = suite_claims(caps, probes({}))
    assert got[GT]["verdict"] == "not reproduced"  # step 0 is in the window, so the one seed falls short
    assert "steps 0-40" in got[GT]["measured"] and "at 2 of 3 checkpoints" in got[GT]["measured"]


def probes_with(run: str, **window) -> pd.DataFrame:
    """One probed run of the recipe whose metrics at steps 11000 and 12000 are changed by ``window``."""
    p = probes({run: 0.9})
    for metric, value in window.items():
        p.loc[(p.step > 0) & (p.metric == metric), "value"] = value
    return p


def test_gt_and_oml_are_decided_over_seeds_with_the_probe_runs_named():
    got = suite_claims(capabilities(), probes_with("M", gt_prob_diff=0.3, oml_accuracy=0.05))
    assert got[GT]["verdict"] == "partly" and "1 of 2 seeds" in got[GT]["measured"]
    assert got[OML]["verdict"] == "partly" and "1 of 2 seeds" in got[OML]["measured"]
    assert "recorded recipe-search probe runs" in got[GT]["why"] and "not retrained" in got[GT]["why"]
    assert got[IOI]["verdict"] == "reproduced" and "seed 1 comes from" in got[IOI]["why"]
    both_fail = suite_claims(capabilities(window=dict(gt_prob_diff=0.3)), probes_with("M", gt_prob_diff=0.3))
    assert both_fail[GT]["verdict"] == "not reproduced"


def test_every_size_learns_ioi_counts_the_sizes():
    EVERY = "every size of the suite learns IOI"
    two = pd.concat([capabilities("d48-L2"), capabilities()])
    assert suite_claims(two, probes({}))[EVERY]["verdict"] == "reproduced"
    one_short = pd.concat([capabilities("d48-L2", window=dict(ioi_rank_accuracy=0.7)), capabilities()])
    row = suite_claims(one_short, probes({}))[EVERY]
    assert row["verdict"] == "partly" and "1 of 2 sizes fall short" in row["why"]
    assert "d48-L2: [A] above [B] 70%-90%" in row["measured"]
