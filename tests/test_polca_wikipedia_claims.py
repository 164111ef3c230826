"""Study 3's claims (gradtools.polca_wikipedia_claims): each verdict flips when its table does."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gradtools import fidelity
from gradtools import polca_wikipedia_claims as C
from gradtools.polca_wikipedia_clusters import PAPER_SETTING, PERMISSIVE_SETTING

DATA = Path(__file__).resolve().parents[1] / "data"


def clusters(n=4, share=0.6, projected=0.3, exact=0.1, size=20, setting=PAPER_SETTING):
    """n clusters over n/2 vectors, each with label share ``share`` and the given sharpness (whole run and late)."""
    return pd.DataFrame([dict(vector=i // 2, cluster=i % 2, size=size, token=",", token_share=share / 2, pos="PUNCT",
                              pos_share=share, pos_sequence="NOUN PUNCT", pos_sequence_share=share / 3,
                              label=f"PUNCT {share:.0%}", projected_sharpness=projected, exact_sharpness=exact,
                              projected_sharpness_late=projected, exact_sharpness_late=exact, setting=setting)
                         for i in range(n)])


def medoids(table, k=10):
    return pd.DataFrame([dict(vector=r.vector, cluster=r.cluster, rank=i, context="x", setting=r.setting)
                         for r in table.itertuples() for i in range(min(k, r.size))])


def test_claims_read_only_the_paper_setting():
    permissive_only = clusters(setting=PERMISSIVE_SETTING)
    assert C.constructions_claim(permissive_only)["verdict"] == "not measured"
    assert "4 of 4" in C.constructions_claim(permissive_only)["measured"]          # the permissive count is cited
    assert C.labelled_claim(permissive_only, medoids(permissive_only))["verdict"] == "not measured"
    assert C.sharpness_claim(permissive_only, late=True)["verdict"] == "not measured"
    both = pd.concat([clusters(share=0.3), clusters(share=0.9, setting=PERMISSIVE_SETTING)], ignore_index=True)
    assert C.constructions_claim(both)["verdict"] == "not reproduced"
    assert C.exact_clusters_claim(exact_clusters([100], setting=PERMISSIVE_SETTING), clusters(n=2),
                                  3000)["verdict"] == "not measured"


def test_learns_flips_with_the_final_loss():
    def loss(final):
        return pd.DataFrame(dict(step=[0, 100], validation_loss=[7.6, final], unigram_entropy=6.5))
    assert C.learns_claim(loss(4.1))["verdict"] == "reproduced"
    assert C.learns_claim(loss(6.0))["verdict"] == "not reproduced"


def test_decomposition_flips_and_needs_a_full_step():
    def check(x):
        return pd.DataFrame(dict(interval=range(4), explained=[x] * 4, prediction="full step"))
    assert C.decomposition_claim(check(0.99))["verdict"] == "reproduced"
    assert C.decomposition_claim(check(0.3))["verdict"] == "not reproduced"
    assert C.decomposition_claim(pd.DataFrame())["verdict"] == "not measured"


def test_clusters_found_counts_vectors():
    def vectors(counts):
        return pd.DataFrame(dict(vector=range(len(counts)), clusters=counts))
    assert C.clusters_found_claim(vectors([2, 3]))["verdict"] == "reproduced"
    assert C.clusters_found_claim(vectors([2, 0]))["verdict"] == "partly"
    assert C.clusters_found_claim(vectors([0, 1]))["verdict"] == "not reproduced"
    assert C.clusters_found_claim(pd.DataFrame())["verdict"] == "not measured"


def test_labels_and_constructions():
    t = clusters()
    assert C.labelled_claim(t, medoids(t))["verdict"] == "reproduced"
    assert C.labelled_claim(t, medoids(t, k=3))["verdict"] == "not reproduced"
    assert C.labelled_claim(t.assign(pos=None), medoids(t))["verdict"] == "not reproduced"
    assert C.labelled_claim(pd.DataFrame(), pd.DataFrame())["verdict"] == "not measured"
    assert C.constructions_claim(t)["verdict"] == "reproduced"
    assert C.constructions_claim(clusters(share=0.3))["verdict"] == "not reproduced"
    mixed = pd.concat([clusters(n=1), clusters(n=3, share=0.3)], ignore_index=True)
    assert C.constructions_claim(mixed)["verdict"] == "partly"


def test_sharpness_flips_with_the_ratio():
    for late in (False, True):
        assert C.sharpness_claim(clusters(projected=0.3, exact=0.1), late)["verdict"] == "reproduced"
        assert C.sharpness_claim(clusters(projected=0.11, exact=0.1), late)["verdict"] == "partly"
        assert C.sharpness_claim(clusters(projected=0.08, exact=0.2), late)["verdict"] == "not reproduced"
        assert C.sharpness_claim(pd.DataFrame(), late)["verdict"] == "not measured"


def mirror_summary(own, anywhere, null=-0.6, pairs=3, setting=PAPER_SETTING):
    """A ``polca_wikipedia_cluster_mirroring_summary``: the own-vector and all-vector searches' lowest correlations."""
    return pd.DataFrame([dict(search=name, pairs=0 if r is None else pairs, lowest=np.nan if r is None else r,
                              null_5pct=null, vector_a=0, cluster_a=0, vector_b=0, cluster_b=1, along=0,
                              setting=setting)
                         for name, r in [("own vector", own), ("all vectors", anywhere)]])


def test_mirroring_needs_a_low_correlation_below_chance():
    assert C.mirroring_claim(mirror_summary(-0.8, -0.8))["verdict"] == "reproduced"
    assert C.mirroring_claim(mirror_summary(-0.3, -0.8))["verdict"] == "partly"          # only across vectors
    assert C.mirroring_claim(mirror_summary(0.4, -0.55))["verdict"] == "not reproduced"  # above chance (-0.6)
    assert C.mirroring_claim(mirror_summary(-0.7, -0.7, null=-0.9))["verdict"] == "not reproduced"
    assert C.mirroring_claim(mirror_summary(None, None))["verdict"] == "not measured"
    assert C.mirroring_claim(pd.DataFrame(columns=["search", "setting"]))["verdict"] == "not measured"
    # the permissive search is reported, not judged
    both = pd.concat([mirror_summary(None, None), mirror_summary(-0.9, -0.9, setting=PERMISSIVE_SETTING)])
    row = C.mirroring_claim(both)
    assert row["verdict"] == "not measured" and "-0.90" in row["measured"]


def exact_clusters(peaks, setting=PAPER_SETTING):
    """``polca_wikipedia_exact_loss_clusters`` with one cluster per peak step."""
    return pd.DataFrame(dict(cluster=range(len(peaks)), size=20, exact_sharpness=0.5, exact_sharpness_late=0.1,
                             exact_peak_step=peaks, setting=setting))


def test_exact_clusters_move_most_only_early():
    assert C.exact_clusters_claim(exact_clusters([100, 300]), clusters(), 3000)["verdict"] == "reproduced"
    assert C.exact_clusters_claim(exact_clusters([100, 1200]), clusters(), 3000)["verdict"] == "partly"
    assert C.exact_clusters_claim(exact_clusters([400, 1200]), clusters(), 3000)["verdict"] == "not reproduced"
    assert C.exact_clusters_claim(exact_clusters([400]), clusters(), 5000)["verdict"] == "reproduced"
    loose = clusters(n=2, setting=PERMISSIVE_SETTING).assign(projected_peak_step=[100, 1000])
    row = C.exact_clusters_claim(exact_clusters([100]), loose, 3000)
    assert "1 of the 2 POLCA clusters at the permissive settings also change most" in row["measured"]
    none = C.exact_clusters_claim(exact_clusters([100], setting=PERMISSIVE_SETTING), clusters(), 3000)
    assert none["verdict"] == "not measured" and "exact-loss clusters at the permissive" in none["measured"]


def sensitivity(per_setting):
    """``polca_wikipedia_cluster_settings_sensitivity``: setting -> clusters found along each of its vectors."""
    return pd.DataFrame([dict(vector=j, setting=s, clusters=c) for s, counts in per_setting.items()
                         for j, c in enumerate(counts)])


def test_settings_counts_settings_with_clusters():
    assert C.settings_claim(sensitivity({"a": [2, 0], "b": [0, 3]}))["verdict"] == "reproduced"
    row = C.settings_claim(sensitivity({"a": [2, 0], "b": [1, 1]}))
    assert row["verdict"] == "partly" and "none at: b" in row["measured"]
    assert C.settings_claim(sensitivity({"a": [1, 0], "b": [0, 0]}))["verdict"] == "not reproduced"
    assert C.settings_claim(pd.DataFrame())["verdict"] == "not measured"


def test_clusters_found_cites_the_permissive_settings():
    vectors = pd.DataFrame(dict(vector=[0, 1], clusters=[0, 0], min_cluster_size=96, min_samples=[130, 140],
                                held_out_tokens=4000))
    row = C.clusters_found_claim(vectors, sensitivity({PERMISSIVE_SETTING: [2, 3], PAPER_SETTING: [0, 0]}))
    assert row["verdict"] == "not reproduced"
    assert "2 of 2 vectors with two or more clusters (5 clusters)" in row["measured"]
    # why: which setting removes the clusters, read from the sensitivity table
    size, samples = PAPER_SETTING.split(" | ")
    sens = sensitivity({PAPER_SETTING: [0, 0], f"{size} | 5": [2, 2], f"2% of kept | {samples}": [0, 1]})
    why = C.clusters_found_claim(vectors, sens)["why"]
    assert "min_samples 5: 2 of 2 vectors" in why and "2% of kept: 0 of 2 vectors" in why
    # and how large the permissive clusters are against the paper's scaled min_cluster_size
    loose = pd.concat([clusters(n=2, size=40, setting=PERMISSIVE_SETTING),
                       clusters(n=2, size=200, setting=PERMISSIVE_SETTING)], ignore_index=True)
    why = C.clusters_found_claim(vectors, sens, loose)["why"]
    assert "hold 40-200 tokens (1.0%-5.0% of the held-out tokens): 2 of 4 hold fewer than" in why
    assert "2 fewer than its min_samples (kept/15: 130-140)" in why


def deviation_args(**kw):
    args = dict(source="gensim", train_articles=96, parameters=400_000, n_layers=3, d_model=64, n_heads=4, d_mlp=256,
                vocab=2048, context=64, batch=16, steps=3000, lr=3e-3, every=100, basis_every=300, n_vectors=10,
                n_train_sample=32, lanczos_iters=12, n_tokens=4032, min_cluster_size=96, spacy_model="en_core_web_sm")
    return {**args, **kw}


def test_deviations_mark_what_differs_from_the_paper():
    table = C.deviations(**deviation_args()).set_index("setting")
    assert set(table.status) <= {C.SAME, C.DIFFERS, C.SCALED, C.SILENT}
    assert table.loc["learning rate", "status"] == C.DIFFERS and table.loc["learning rate", "paper"].startswith("1e-05")
    assert table.loc["HDBSCAN min_cluster_size", "status"] == C.SCALED
    assert table.loc["held-out tokens", "status"] == C.DIFFERS
    assert table.loc["checkpoints (POLCA intervals)", "here"] == "every 100 (30 intervals)"
    assert table.why.str.len().gt(0).all()
    paper = C.deviations(**deviation_args(lr=1e-5, n_tokens=12700, min_cluster_size=302, d_model=512, d_mlp=2048,
                                          context=128, batch=64, steps=14000, every=200, basis_every=750,
                                          n_vectors=18, n_train_sample=1000)).set_index("setting")
    for setting in ("learning rate", "held-out tokens", "model", "sequence length", "iterations", "basis",
                    "checkpoints (POLCA intervals)", "Hessian sample"):
        assert paper.loc[setting, "status"] == C.SAME, setting
    assert paper.loc["HDBSCAN min_cluster_size", "status"] == C.SCALED
    assert C.deviations(**deviation_args(min_cluster_size=40)).set_index("setting").loc[
        "HDBSCAN min_cluster_size", "status"] == C.DIFFERS


def test_claims_on_the_committed_default_tables():
    if not (DATA / "polca_wikipedia_cluster_mirroring_summary.parquet").exists():
        pytest.skip("no committed default tables")
    table = fidelity.claims_table("03_polca_wikipedia", C.claims_from_folder(DATA))
    assert len(table) == 10 and set(table.verdict) <= set(fidelity.VERDICTS)
    assert (table.study == fidelity.STUDIES[3]).all()
    assert table.paper.str.len().gt(0).all() and table.measured.str.len().gt(0).all()
    assert not table.measured.str.contains("nan").any()


def test_sharpness_with_no_exact_loss_sharpness_is_not_measured():
    for projected in (0.0, 0.3):
        row = C.sharpness_claim(clusters(projected=projected, exact=0.0), late=False)
        assert row["verdict"] == "not measured" and "undefined" in row["why"]


def test_decomposition_is_study_2s_with_study_3_named():
    check = pd.DataFrame(dict(interval=range(4), explained=[0.95] * 4, prediction="full step"))
    row = C.decomposition_claim(check)
    assert row["study"] == C.STUDY and row["measured"].startswith("full step, median per interval 0.950")
