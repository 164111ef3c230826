"""Study 3's data: wikitext to plain text, the split by article, the HF loader offline, POS labels of clusters."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from gradtools import pos_labels, wikipedia, wikipedia_lm
from gradtools.bpe_tokenizer import END_OF_TEXT, train_bpe_tokenizer
from gradtools.lm import tiny_causal_lm, token_losses
from gradtools.polca import sharpness
from gradtools.wikipedia import Article

WIKITEXT = """{{Infobox person
| name = Ada Lovelace
| birth_date = {{birth date|1815|12|10}}
}}
'''Augusta Ada King''' was an [[England|English]] [[mathematician]].<ref name="bio">{{cite web|title=Bio|url=http://x.org}}</ref> She wrote the first [[algorithm]].<ref>Another footnote.</ref>

[[File:Ada.jpg|thumb|A portrait of ''Ada'' in 1840]]
She worked with [[Charles Babbage]] on the ''Analytical Engine''.<!-- a hidden comment -->

== Legacy ==
{| class="wikitable"
|-
! Year !! Honour
|-
| 1953 || Notes republished
|}
A programming language is named after her.
* Ada (language)
* Ada Lovelace Day

[[Category:English mathematicians]]
[[de:Ada Lovelace]]
"""


def test_wikitext_to_text_keeps_prose_and_drops_markup():
    text = wikipedia.wikitext_to_text(WIKITEXT)
    assert text == ("Augusta Ada King was an English mathematician. She wrote the first algorithm.\n\n"
                    "She worked with Charles Babbage on the Analytical Engine.\n\n"
                    "Legacy\n\n"
                    "A programming language is named after her.\nAda (language)\nAda Lovelace Day")
    for gone in ["Infobox", "cite", "footnote", "portrait", "hidden", "wikitable", "Honour", "1953", "Category",
                 "de:", "[[", "{{", "''", "<ref"]:
        assert gone not in text


def test_gensim_excerpt_gives_plain_articles():
    articles = wikipedia.gensim_articles(max_articles=3)
    assert [a.title for a in articles] == ["Anarchism", "Autism", "Albedo"]
    for a in articles:
        assert "{{" not in a.text and "[[" not in a.text and "<ref" not in a.text
        assert "\n\n" in a.text  # paragraphs kept


def test_split_never_shares_an_article_and_ignores_order():
    articles = [Article(f"Title {i}", f"text {i}") for i in range(200)]
    train, val = wikipedia.split_by_article(articles, 0.2, seed=3)
    assert len(train) + len(val) == 200 and 20 < len(val) < 60
    assert not {a.title for a in train} & {a.title for a in val}
    train2, val2 = wikipedia.split_by_article(articles[::-1] + [Article("Extra", "x")], 0.2, seed=3)
    assert {a.title for a in val} <= {a.title for a in val2}  # a title's side does not depend on the others
    assert wikipedia.split_by_article(articles[:2], 0.0)[1]  # both sides non-empty whenever possible


def test_hf_loader_reads_a_local_dataset_laid_out_like_the_hub(tmp_path):
    # wikimedia/wikipedia's layout: one config per dump/language, parquet shards under it
    (tmp_path / "20231101.en").mkdir()
    pd.DataFrame({"id": ["1", "2", "3"], "url": ["u"] * 3, "title": ["Alpha", "Beta", "Gamma"],
                  "text": ["Alpha is a letter.\n\nIt comes first.", " ", "Gamma rays are light."]}
                 ).to_parquet(tmp_path / "20231101.en" / "train-00000-of-00001.parquet")
    (tmp_path / "README.md").write_text("---\nconfigs:\n- config_name: 20231101.en\n  data_files:\n"
                                        "  - split: train\n    path: 20231101.en/train-*\n---\n")
    articles = wikipedia.load_articles(str(tmp_path), config="20231101.en", cache_dir=str(tmp_path / "cache"))
    assert articles == [Article("Alpha", "Alpha is a letter.\n\nIt comes first."), Article("Gamma", "Gamma rays are light.")]
    assert wikipedia.load_articles(str(tmp_path), config="20231101.en", max_articles=1)[0].title == "Alpha"


def test_unknown_source_stops_with_advice():
    with pytest.raises(ValueError, match="gensim"):
        wikipedia.check_source("enwiki")


@pytest.fixture(scope="module")
def nlp():
    return pos_labels.load_spacy_english()


def test_token_pos_aligns_subword_tokens_with_spacy_words(nlp):
    doc = nlp("The cat, a tabby, sat.\n\nIt slept.")
    spans = [(0, 3), (3, 7), (7, 8), (10, 14), (14, 16), (22, 23), (23, 24), (24, 26)]  # The| cat|,| tab|by| \n|\n|It
    pos = pos_labels.token_pos(doc, spans)
    assert pos.pos.tolist() == ["DET", "NOUN", "PUNCT", "NOUN", "NOUN", "SPACE", "SPACE", "PRON"]
    assert pos.in_word.tolist() == [False, False, False, False, True, False, True, False]
    assert pos.pos_sequence[3] == "PUNCT DET NOUN"  # ", a tabby"
    assert pos.pos_sequence[7] == "PUNCT SPACE PRON"


def test_cluster_labels_and_medoid_contexts_on_a_fixed_example(nlp):
    doc = nlp("The cat sat on the mat, and the dog sat on the rug.")
    words = [(t.idx, t.idx + len(t.text)) for t in doc]
    tokens = pd.concat([pd.DataFrame({"token": [t.text for t in doc]}), pos_labels.token_pos(doc, words)], axis=1)
    # cluster 0: the determiners, cluster 1: the nouns; "sat"/"on"/punctuation are outliers
    clusters = np.array([0 if t.pos_ == "DET" else 1 if t.pos_ == "NOUN" else -1 for t in doc])
    labels = pos_labels.label_clusters(clusters, tokens)
    det, noun = labels.iloc[0], labels.iloc[1]
    assert (det["size"], det.token, det.token_share, det.pos, det.pos_share) == (4, "the", 0.75, "DET", 1.0)
    # "on the mat", "on the rug": ADP DET NOUN; "The cat": DET NOUN; "and the dog": CCONJ DET NOUN
    assert (noun["size"], noun.pos, noun.pos_share, noun.token_share) == (4, "NOUN", 1.0, 0.25)
    assert (noun.pos_sequence, noun.pos_sequence_share) == ("ADP DET NOUN", 0.5)
    assert noun.label == f"NOUN 100% | ADP DET NOUN 50% | {noun.token!r} 25%"

    curves = np.array([[0.0, float(i)] for i in range(len(doc))])
    contexts = [f"ctx{i}" for i in range(len(doc))]
    med = pos_labels.medoid_contexts(curves, clusters, contexts, k=3)
    for c, group in med.groupby("cluster"):
        members = np.flatnonzero(clusters == c)
        d = np.abs(members[:, None] - members[None, :]).sum(1)  # brute force on 1-d points
        assert group.iloc[0]["index"] == members[d.argmin()]
        assert list(group.distance) == sorted(group.distance) and len(group) == 3


def test_validation_tokens_follow_token_losses_order(nlp):
    articles = [Article("A", "The river flows north.\n\nIt is long and the water is cold. " * 6),
                Article("B", "A bird, the robin, sings at dawn. " * 8)]
    tok = train_bpe_tokenizer([a.text for a in articles], 300)
    batch, tokens = wikipedia_lm.validation_tokens(tok, articles, nlp, n_windows=5, context=8,
                                                   max_windows_per_article=3)
    assert batch["input_ids"].shape == (5, 8) and len(tokens) == 5 * 7
    assert set(tokens.article) == {"A", "B"}
    # row r is the target of token_losses(...).reshape(-1)[r]: input_ids[window, position]
    targets = batch["input_ids"][torch.tensor(tokens.window.values), torch.tensor(tokens.position.values)]
    assert [tok.decode([int(t)]) for t in targets] == tokens.token.tolist()
    model = tiny_causal_lm(tok.get_vocab_size(), d_model=8, n_layers=1, n_heads=2, context=8)
    assert token_losses(model, batch).reshape(-1).shape == (len(tokens),)
    assert tokens.context.str.endswith("]").all()
    with pytest.raises(ValueError, match="lower n_validation_windows"):
        wikipedia_lm.validation_tokens(tok, articles, nlp, n_windows=50, context=8)


def test_prepare_corpus_caches_and_separates_articles(tmp_path):
    articles = [Article(f"T{i}", f"Article number {i} says hello to the reader. " * 5) for i in range(20)]
    calls = []
    tok, stream, val, info = wikipedia_lm.prepare_corpus(tmp_path, lambda: calls.append(1) or articles,
                                                         vocab_size=280, validation_fraction=0.25)
    assert info["train_articles"] + info["validation_articles"] == 20
    assert not set(info["train_titles"]) & set(info["validation_titles"])
    assert (stream == tok.token_to_id(END_OF_TEXT)).sum() == info["train_articles"]
    again = wikipedia_lm.prepare_corpus(tmp_path, lambda: calls.append(1) or articles, vocab_size=280,
                                        validation_fraction=0.25)
    assert calls == [1] and torch.equal(again[1], stream) and again[2] == val
    assert json.loads((tmp_path / "split.json").read_text()) == info


def test_unigram_entropy_and_window_batches():
    stream = torch.tensor([0, 1] * 50)
    assert wikipedia_lm.unigram_entropy(stream, 5) == pytest.approx(np.log(2))
    batch_fn = wikipedia_lm.window_batch_fn(torch.arange(100), batch_size=4, context=6, seed=1)
    b = batch_fn(7)
    assert torch.equal(b["input_ids"], batch_fn(7)["input_ids"])          # a pure function of the step
    assert (b["input_ids"].diff(dim=1) == 1).all()                          # contiguous windows


def test_sharpness():
    assert sharpness([0, 0, 0, -3, -3]) == 1.0
    assert sharpness(np.linspace(0, -1, 11)) == pytest.approx(0.1)
    assert sharpness([1, 1, 1]) == 0.0
