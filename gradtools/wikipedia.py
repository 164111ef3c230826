"""English Wikipedia as plain-text articles, for study 3 (POLCA on Wikipedia).

Two sources, one shape (a list of :class:`Article`):

* ``"gensim"`` (default, offline): the English Wikipedia excerpt bundled with the
  gensim wheel (``enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2``),
  its wikitext turned into plain text by :func:`wikitext_to_text` (mwparserfromhell).
* ``"wikimedia/wikipedia"`` (or any dataset with ``title`` and ``text`` columns, a hub
  name or a local folder): the paper's source, already plain text, read with
  Hugging Face ``datasets`` (:func:`hf_articles`); needs the dataset in the local
  cache or a network.

Articles are split into train and validation **by article** (:func:`split_by_article`),
so no validation text was ever seen in training.
"""
from __future__ import annotations

import bz2
import hashlib
import re
from pathlib import Path
from typing import NamedTuple

GENSIM_DUMP = "test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"

# Tags whose content is not article prose: footnotes, tables, maths, galleries, comments' kin.
_DROPPED_TAGS = {"ref", "references", "table", "gallery", "math", "timeline", "imagemap", "score",
                 "syntaxhighlight", "source", "pre", "nowiki", "div", "center", "small", "sup", "sub"}
# [[File:x.jpg|...]], [[Category:...]], and interlanguage links such as [[de:Foo]]: not prose
_NAMESPACED = re.compile(r"^(file|image|category|media|wikipedia|wp|template|help|portal|[a-z]{2,3}(-[a-z]+)?):",
                         re.IGNORECASE)


class Article(NamedTuple):
    title: str
    text: str


def wikitext_to_text(wikitext: str) -> str:
    """Plain text of one article's wikitext: prose paragraphs separated by a blank line.

    Templates (infoboxes, citations), ``<ref>`` footnotes, tables, files, categories,
    interlanguage links, comments and HTML-like tags are removed; links keep their
    visible text; bold/italic quotes go; section headings are kept as their own
    paragraph (as in the Hugging Face Wikipedia dumps); list items are kept as lines.
    """
    import mwparserfromhell

    code = mwparserfromhell.parse(wikitext)
    for node in list(code.nodes):  # top level first: a dropped node takes its children with it
        _drop_if_not_prose(code, node)
    for node in code.filter(recursive=True):
        _drop_if_not_prose(code, node)
    for heading in code.filter_headings(recursive=True):
        try:
            code.replace(heading, f"\n\n{heading.title.strip_code().strip()}\n\n")
        except ValueError:  # already removed with its parent
            pass
    text = code.strip_code(normalize=True, collapse=False)
    # markup the parser left as text (it gives up on badly nested markup, e.g. an unclosed '')
    text = re.sub(r"<ref[^>]*/>|<ref[^>]*>.*?</ref>", "", text, flags=re.S | re.I)
    text = re.sub(r"</?[a-zA-Z][^>]*>", "", text)
    text = re.sub(r"^\{\|.*?^\|\}", "", text, flags=re.S | re.M)  # a table the parser did not recognise
    text = re.sub(r"'{2,}", "", text)
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        lines = [" ".join(line.split()) for line in block.split("\n")]
        lines = [re.sub(r"^[*#:;]+\s*", "", line) for line in lines]  # list markers
        lines = [line for line in lines if line and not re.fullmatch(r"[\W_]+", line)
                 and not line.startswith(("{|", "|", "!"))]  # rows of an unclosed table
        if lines:
            paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


def _drop_if_not_prose(code, node) -> None:
    """Remove ``node`` from ``code`` unless it is prose (an external link keeps its title)."""
    import mwparserfromhell.nodes as n

    if isinstance(node, n.ExternalLink):
        _replace(code, node, str(node.title or ""))
    elif isinstance(node, (n.Template, n.Comment)) or (
            isinstance(node, n.Tag) and str(node.tag).lower() in _DROPPED_TAGS) or (
            isinstance(node, n.Wikilink) and _NAMESPACED.match(str(node.title).strip())):
        _replace(code, node, "")


def _replace(code, node, value: str) -> None:
    try:
        code.replace(node, value)
    except ValueError:  # inside a node removed earlier
        pass


def gensim_articles(max_articles: int | None = None, *, min_chars: int = 200) -> list[Article]:
    """The articles of gensim's bundled excerpt as plain text (redirects and stubs under ``min_chars`` skipped)."""
    import gensim
    from gensim.corpora.wikicorpus import extract_pages

    path = Path(gensim.__file__).parent / GENSIM_DUMP
    out = []
    with bz2.BZ2File(path) as f:
        for title, wikitext, _pid in extract_pages(f):
            if wikitext.lstrip().lower().startswith("#redirect"):
                continue
            text = wikitext_to_text(wikitext)
            if len(text) >= min_chars:
                out.append(Article(title, text))
            if max_articles is not None and len(out) >= max_articles:
                break
    return out


def hf_articles(name: str = "wikimedia/wikipedia", config: str | None = "20231101.en", *,
                max_articles: int | None = None, split: str = "train", cache_dir: str | None = None) -> list[Article]:
    """Articles of a Hugging Face dataset with ``title`` and ``text`` columns, streamed (the first ``max_articles``).

    ``name`` is a hub name (resolved through the local cache unless a network is
    there) or a local folder laid out like the hub repository.
    """
    import datasets

    try:
        stream = datasets.load_dataset(name, config, split=split, streaming=True, cache_dir=cache_dir)
    except ConnectionError as err:
        raise ConnectionError(f"cannot read the dataset {name!r}: it is neither in the local Hugging Face cache nor "
                              "reachable (no network); use source='gensim' (offline excerpt) or a local folder") from err
    out = []
    for row in stream:
        if row["text"].strip():
            out.append(Article(row["title"], row["text"].strip()))
        if max_articles is not None and len(out) >= max_articles:
            break
    return out


def load_articles(source: str = "gensim", *, max_articles: int | None = None, config: str | None = "20231101.en",
                  cache_dir: str | None = None) -> list[Article]:
    """Articles from ``source``: ``"gensim"`` (offline default) or a dataset name / folder for :func:`hf_articles`."""
    if source == "gensim":
        return gensim_articles(max_articles)
    return hf_articles(source, config, max_articles=max_articles, cache_dir=cache_dir)


def check_source(source: str) -> str:
    """``source`` unchanged if it can be read here; else a ValueError that says what to do (before any compute)."""
    if source == "gensim" or Path(source).expanduser().is_dir():
        return source
    if "/" in source:  # a hub name: fine if cached; datasets says so clearly otherwise, but say it first
        return source
    raise ValueError(f"unknown Wikipedia source {source!r}: use 'gensim' (the offline excerpt), "
                     "'wikimedia/wikipedia' (Hugging Face, needs its cache or a network) or a local dataset folder")


def split_by_article(articles: list[Article], validation_fraction: float = 0.1,
                     seed: int = 0) -> tuple[list[Article], list[Article]]:
    """``(train, validation)``: each article goes wholly to one side, by a seeded hash of its title.

    The hash makes the split independent of the order and number of articles
    loaded; at least one article lands on each side when there are two or more.
    """
    def score(a: Article) -> float:
        digest = hashlib.sha1(f"{seed}:{a.title}".encode()).hexdigest()
        return int(digest[:12], 16) / 16 ** 12

    validation = [a for a in articles if score(a) < validation_fraction]
    train = [a for a in articles if score(a) >= validation_fraction]
    if len(articles) >= 2 and (not validation or not train):
        ranked = sorted(articles, key=score)
        validation, train = ranked[:1], ranked[1:]
    return train, validation
