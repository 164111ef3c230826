"""Study 3's claims (gradtools.polca_wikipedia_claims): each verdict flips when its table does."""
from pathlib import Path

import pandas as pd
import pytest

from gradtools import fidelity
from gradtools import polca_wikipedia_claims as C

DATA = Path(__file__).resolve().parents[1] / "data"


def clusters(n=4, share=0.6, projected=0.3, exact=0.1, size=20):
    """n clusters over n/2 vectors, each with label share ``share`` and the given sharpness (whole run and late)."""
    return pd.DataFrame([dict(vector=i // 2, cluster=i % 2, size=size, token=",", token_share=share / 2, pos="PUNCT",
                              pos_share=share, pos_sequence="NOUN PUNCT", pos_sequence_share=share / 3,
                              label=f"PUNCT {share:.0%}", projected_sharpness=projected, exact_sharpness=exact,
                              projected_sharpness_late=projected, exact_sharpness_late=exact) for i in range(n)])


def medoids(table, k=10):
    return pd.DataFrame([dict(vector=r.vector, cluster=r.cluster, rank=i, context="x")
                         for r in table.itertuples() for i in range(min(k, r.size))])


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


def test_mirroring_flips_with_the_correlation():
    def mirror(r):
        return pd.DataFrame(dict(vector=[0], cluster_a=[0], cluster_b=[1], increment_correlation=[r]))
    assert C.mirroring_claim(mirror(-0.8))["verdict"] == "reproduced"
    assert C.mirroring_claim(mirror(0.9))["verdict"] == "not reproduced"
    assert C.mirroring_claim(pd.DataFrame())["verdict"] == "not measured"


def test_exact_clusters_fewer_than_polca():
    exact = clusters(n=2).drop(columns=["projected_sharpness"])
    assert C.exact_clusters_claim(pd.DataFrame(), clusters())["verdict"] == "reproduced"
    assert C.exact_clusters_claim(exact, clusters(n=4))["verdict"] == "reproduced"
    assert C.exact_clusters_claim(clusters(n=4), clusters(n=2))["verdict"] == "not reproduced"


def test_settings_counts_settings_with_clusters():
    def sens(vectors):
        return pd.DataFrame(dict(min_cluster_fraction=0.02, min_samples=range(len(vectors)),
                                 vectors_with_two_or_more=vectors, clusters=[2 * v for v in vectors]))
    assert C.settings_claim(sens([1, 2]))["verdict"] == "reproduced"
    assert C.settings_claim(sens([1, 0]))["verdict"] == "partly"
    assert C.settings_claim(sens([0, 0]))["verdict"] == "not reproduced"


def test_claims_on_the_committed_default_tables():
    if not (DATA / "polca_wikipedia_clusters.parquet").exists():
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
