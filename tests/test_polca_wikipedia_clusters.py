"""Study 3's clustering (gradtools.polca_wikipedia_clusters): settings, clusterings, mirroring search, costs."""
import itertools

import numpy as np
import pandas as pd
import pytest

from gradtools import polca
from gradtools import polca_wikipedia_clusters as W
from gradtools.bpe_tokenizer import train_bpe_tokenizer
from gradtools.wikipedia import Article
from gradtools import wikipedia_lm


def tokens_table(n):
    """n validation-token rows as :func:`gradtools.wikipedia_lm.validation_tokens` gives them."""
    return pd.DataFrame(dict(token=[f"t{i % 3}" for i in range(n)],
                             pos=["NOUN" if i % 2 else "PUNCT" for i in range(n)],
                             pos_sequence="DET NOUN", in_word=False, context=[f"ctx{i}" for i in range(n)]))


def two_groups(n_per=40, T=12, seed=0, step_at=(3, 8)):
    """(T, 2 n_per) curves: group 0 drops by 1 at interval step_at[0], group 1 at step_at[1]; small noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)[:, None]
    a = -(t >= step_at[0]).astype(float) + 0.01 * rng.standard_normal((T, n_per))
    b = -(t >= step_at[1]).astype(float) + 0.01 * rng.standard_normal((T, n_per))
    return np.concatenate([a, b], axis=1).astype(float)


def test_paper_settings_scale_with_the_tokens():
    assert W.paper_min_cluster_size(12600) == 300
    assert W.paper_min_cluster_size(4200) == 100
    assert W.paper_min_cluster_size(10) == 2
    assert W.paper_min_samples(150) == 10 and W.paper_min_samples(14) == 1


def test_settings_grid_puts_the_paper_first_and_keeps_names():
    grid = W.settings_grid(4032, 1800)
    assert grid[0].name == W.PAPER_SETTING
    assert (grid[0].min_cluster_size, grid[0].min_samples) == (96, 120)
    permissive = W.setting_named(W.PERMISSIVE_SETTING, 4032, 1800)
    assert (permissive.min_cluster_size, permissive.min_samples) == (36, 5)
    assert any(s.min_samples >= 11 for s in grid if s.samples_rule != W.SAMPLES_PAPER)
    assert [s.name for s in grid] == [s.name for s in W.settings_grid(200, 50)]   # names do not depend on counts
    assert len({s.name for s in grid}) == len(grid)
    with pytest.raises(KeyError):
        W.setting_named("nonsense", 10, 5)


def test_cluster_kept_finds_two_groups_and_labels_them():
    curves = two_groups()
    n = curves.shape[1]
    keep = np.ones(n, bool)
    keep[:5] = False                              # five tokens left out: indices refer to the kept ones
    s = W.Setting("test", "x", "y", 10, 5)
    cl = W.cluster_kept(curves, keep, tokens_table(n), s, k_contexts=4)
    assert len(cl.idx) == n - 5 and len(cl.labels) == 2
    groups = [set((cl.idx[cl.clusters == c] >= 40).tolist()) for c in cl.labels.cluster]
    assert sorted(map(tuple, groups)) == [(False,), (True,)]             # each cluster is one group
    assert cl.medoids.groupby("cluster").size().tolist() == [4, 4]
    ctx = cl.medoids.context.str.replace("ctx", "").astype(int)
    assert set(ctx) <= set(cl.idx.tolist())                                # contexts of kept tokens


def test_cluster_sharpness_of_a_step_and_of_a_ramp():
    T = 11
    step = -(np.arange(T) >= 4).astype(float)[:, None] * np.ones((1, 6))
    ramp = np.linspace(0, -1, T)[:, None] * np.ones((1, 6))
    cl = W.Clustering(np.arange(6), np.zeros(6, int), pd.DataFrame(dict(cluster=[0])), pd.DataFrame())
    late = np.arange(T) >= 2
    steps = 50 * np.arange(T)
    out = W.cluster_sharpness(step, ramp, cl, late, steps).iloc[0]
    assert out.projected_sharpness == 1.0 and out.exact_sharpness == pytest.approx(0.1)
    assert out.exact_sharpness_late == pytest.approx(polca.sharpness(ramp[late, 0]))
    assert out.projected_peak_step == 200                                  # the drop between steps 150 and 200
    assert W.peak_step(np.array([0, -1, -1.5, -4, -4.1]), np.array([0, 10, 20, 30, 40])) == 30


def test_cluster_vectors_and_sensitivity_agree_with_hdbscan():
    T, n = 12, 80
    rising_then_falling = -two_groups(seed=1) - 2 * (np.arange(T) > 0)[:, None]
    projected = np.stack([two_groups(seed=0), rising_then_falling], axis=1)  # (T, 2, n)
    exact = projected[:, 0]
    settings = [W.PAPER_SETTING, W.PERMISSIVE_SETTING]
    late = np.arange(T) >= 1
    clusterings, clusters, medoids = W.cluster_vectors(projected, exact, tokens_table(n), [0, 1], settings, late,
                                                       np.arange(T))
    assert set(clusterings) == {(s, j) for s in settings for j in (0, 1)}
    assert set(clusters.setting) <= set(settings) and {"projected_sharpness", "rank"} <= set(clusters.columns)
    sens = W.sensitivity(projected, [0, 1], n)
    assert len(sens) == 2 * len(W.settings_grid(n, n))
    for j in (0, 1):
        keep = projected[-1, j] < 0
        s = W.setting_named(W.PERMISSIVE_SETTING, n, int(keep.sum()))
        direct = polca.cluster_curves(projected[:, j, keep].T, min_cluster_size=s.min_cluster_size,
                                      min_samples=s.min_samples)
        row = sens[(sens.vector == j) & (sens.setting == W.PERMISSIVE_SETTING)].iloc[0]
        assert row.clusters == len(set(direct[direct >= 0])) == len(clusterings[W.PERMISSIVE_SETTING, j].labels)
        assert row.kept == keep.sum()
    summary = W.sensitivity_summary(sens)
    assert summary.setting.tolist() == [s.name for s in W.settings_grid(n, n)]
    assert (summary.vectors == 2).all()
    assert summary.clusters.sum() == sens.clusters.sum()


def test_increment_correlations_match_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((5, 9)), rng.standard_normal((5, 9))
    want = [np.corrcoef(x, y)[0, 1] for x, y in zip(a, b)]
    assert np.allclose(W.increment_correlations(a, b), want)
    assert np.isnan(W.increment_correlations(np.ones((1, 4)), b[:1, :4])[0])


def mirrored_run(T=15, k=3, seed=0):
    """Projected losses (T, k, 60) and three clusters: along vector 1, clusters (1,0) and (1,1) mirror each other."""
    rng = np.random.default_rng(seed)
    wave = np.cumsum(rng.standard_normal(T))
    projected = 0.3 * np.cumsum(rng.standard_normal((T, k, 60)), axis=0)
    projected[:, 1, :20] += wave[:, None]
    projected[:, 1, 20:40] -= wave[:, None]
    members = {(1, 0): np.arange(20), (1, 1): np.arange(20, 40), (2, 0): np.arange(40, 60)}
    return projected, members


def test_mirror_search_covers_every_pair_along_every_vector():
    projected, members = mirrored_run()
    pairs = W.mirror_search(projected, members)
    assert len(pairs) == 3 * projected.shape[1]                      # C(3, 2) pairs x k vectors
    own = pairs[pairs.own]
    assert len(own) == 1 and (own.vector_a.iloc[0], own.cluster_b.iloc[0], own.along.iloc[0]) == (1, 1, 1)
    assert own.increment_correlation.iloc[0] < -0.9
    assert pairs.loc[pairs.increment_correlation.idxmin()].along == 1
    # each row is the correlation of the two clusters' mean changes along `along`
    r = pairs.iloc[4]
    a = np.diff(projected[:, r.along, members[(r.vector_a, r.cluster_a)]].mean(1))
    b = np.diff(projected[:, r.along, members[(r.vector_b, r.cluster_b)]].mean(1))
    assert r.increment_correlation == pytest.approx(np.corrcoef(a, b)[0, 1])
    a2, b2 = W.pair_increments(projected, members, pairs.iloc[[4]])
    assert np.allclose(a2[0], a) and np.allclose(b2[0], b)


def test_min_correlation_null_falls_with_the_size_of_the_search():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((60, 20)), rng.standard_normal((60, 20))
    one = W.min_correlation_null(a[:1], b[:1], permutations=300)
    many = W.min_correlation_null(a, b, permutations=300)
    assert -1 < many < one < 0
    assert np.isnan(W.min_correlation_null(a[:0], b[:0]))


def test_mirroring_flags_the_mirrored_pair_below_chance():
    projected, members = mirrored_run()
    cl = {("s", 1): W.Clustering(np.arange(40), np.repeat([0, 1], 20), pd.DataFrame(dict(cluster=[0, 1])), None),
          ("s", 2): W.Clustering(np.arange(40, 60), np.zeros(20, int), pd.DataFrame(dict(cluster=[0])), None)}
    assert {k: v.tolist() for k, v in W.members_of(cl, "s").items()} == {k: v.tolist() for k, v in members.items()}
    pairs, summary = W.mirroring(projected, cl, "s", permutations=100)
    assert (pairs.setting == "s").all() and summary.search.tolist() == ["own vector", "all vectors"]
    own = summary.iloc[0]
    assert own.pairs == 1 and own.lowest < -0.9 and own.lowest < own.null_5pct
    assert (own.vector_a, own.cluster_a, own.vector_b, own.cluster_b, own.along) == (1, 0, 1, 1, 1)
    _, empty = W.mirroring(projected, {("s", 2): cl["s", 2]}, "s")
    assert (empty.pairs == 0).all() and empty.lowest.isna().all()


def test_timed_records_the_first_measurement(tmp_path):
    record = tmp_path / "seconds.json"
    out, first = W.timed(record, lambda: 7)
    assert out == 7 and record.exists()
    out, again = W.timed(record, lambda: 8)
    assert out == 8 and again == first


def test_cost_projection_scales_tokens_vectors_and_intervals():
    table = W.cost_projection(110.0, 20.0, tokens=100, vectors=10, intervals=10, fixed_seconds=5.0,
                              scenarios={"2x tokens": (200, 10, 10), "21 vectors": (100, 21, 10),
                                         "3x steps": (100, 10, 30)})
    t = table.set_index("scenario")
    assert t.loc["this run", "polca_s"] == pytest.approx(110) and t.loc["this run", "basis_s"] == pytest.approx(20)
    assert t.loc["this run", "total_s"] == pytest.approx(135)
    assert t.loc["2x tokens", "polca_s"] == pytest.approx(220)
    assert t.loc["21 vectors", "polca_s"] == pytest.approx(220) and t.loc["21 vectors", "basis_s"] == pytest.approx(42)
    assert t.loc["3x steps", "polca_s"] == pytest.approx(330)
    assert t.loc["this run", "relative"] == 1 and t.loc["2x tokens", "relative"] == pytest.approx((220 + 20) / 130)


@pytest.mark.parametrize("capacities, n", [([10, 1, 10], 9), ([3, 3, 3], 7), ([2, 0, 5], 20), ([50] * 10, 64)])
def test_spread_windows_is_even_within_capacities(capacities, n):
    counts = wikipedia_lm.spread_windows(capacities, n)
    assert sum(counts) == min(n, sum(capacities))
    assert all(0 <= c <= cap for c, cap in zip(counts, capacities))
    room = [c for c, cap in zip(counts, capacities) if c < cap]          # articles that could have given more
    assert not room or max(counts) - min(room) <= 1


def test_validation_tokens_spread_over_all_articles():
    from gradtools.pos_labels import load_spacy_english

    articles = [Article("A", "The river flows north.\n\nIt is long and the water is cold. " * 6),
                Article("B", "A bird, the robin, sings at dawn. " * 8), Article("C", "Short text here. " * 3)]
    tok = train_bpe_tokenizer([a.text for a in articles], 300)
    _, four = wikipedia_lm.validation_tokens(tok, articles, load_spacy_english(), n_windows=6, context=8)
    _, spread = wikipedia_lm.validation_tokens(tok, articles, load_spacy_english(), n_windows=6, context=8,
                                               max_windows_per_article=None)
    assert four.article.nunique() == 2                    # four from A, two from B
    assert spread.article.nunique() == 3 and len(spread) == 6 * 7
    capacities = [len(tok.encode(a.text).ids) // 8 for a in articles]
    per_article = spread.groupby("article", sort=False).window.nunique().tolist()
    assert per_article == wikipedia_lm.spread_windows(capacities, 6)
