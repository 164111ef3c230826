"""Study 3's language-modelling data: BPE streams of Wikipedia articles and the validation tokens POLCA follows.

* :func:`prepare_corpus`: articles -> train/validation split by article -> a BPE
  tokenizer trained on the training articles -> the training token stream
  (articles separated by ``<|endoftext|>``), cached in a folder.
* :func:`window_batch_fn`: ``batch_fn(step)`` of random windows of the stream
  (a pure function of the step, as :func:`gradtools.lm_training.train_causal_lm` wants).
* :func:`validation_tokens`: fixed windows cut from the validation articles, and a
  table with one row per predicted token: its text, its context, and spaCy POS
  information (:mod:`gradtools.pos_labels`), in the order of
  ``gradtools.lm.token_losses(model, batch).reshape(-1)``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from .bpe_tokenizer import END_OF_TEXT, load_tokenizer, train_bpe_tokenizer
from .cache import atomic_write, save_torch
from .pos_labels import token_pos
from .wikipedia import Article, split_by_article


def prepare_corpus(folder: str | Path, articles: Callable[[], list[Article]], *, vocab_size: int,
                   validation_fraction: float, seed: int = 0):
    """Tokenizer, training stream and validation articles, built once and cached in ``folder``.

    ``articles`` is called only when the cache is empty. Returns
    ``(tokenizer, train_stream (N,) long, validation_articles, info)``; ``info`` has
    the article counts and titles of both sides.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {k: folder / f for k, f in [("tok", "tokenizer.json"), ("stream", "train_stream.pt"),
                                         ("val", "validation_articles.json"), ("info", "split.json")]}
    if all(p.exists() for p in paths.values()):
        validation = [Article(**a) for a in json.loads(paths["val"].read_text())]
        return (load_tokenizer(paths["tok"]), torch.load(paths["stream"]), validation,
                json.loads(paths["info"].read_text()))
    train, validation = split_by_article(articles(), validation_fraction, seed)
    tokenizer = train_bpe_tokenizer((a.text for a in train), vocab_size)
    eot = tokenizer.token_to_id(END_OF_TEXT)
    ids: list[int] = []
    for enc in tokenizer.encode_batch([a.text for a in train]):
        ids += enc.ids + [eot]
    info = dict(train_articles=len(train), validation_articles=len(validation), train_tokens=len(ids),
                train_titles=[a.title for a in train], validation_titles=[a.title for a in validation])
    save_torch(torch.tensor(ids, dtype=torch.long), paths["stream"])
    atomic_write(paths["tok"], lambda tmp: tokenizer.save(str(tmp)))
    atomic_write(paths["val"], lambda tmp: tmp.write_text(json.dumps([a._asdict() for a in validation])))
    atomic_write(paths["info"], lambda tmp: tmp.write_text(json.dumps(info)))
    return tokenizer, torch.tensor(ids, dtype=torch.long), validation, info


def window_batch_fn(stream: Tensor, *, batch_size: int, context: int, seed: int = 0) -> Callable[[int], dict]:
    """``batch_fn(step)`` -> ``{"input_ids", "labels"}`` (batch_size, context): windows at random offsets."""
    def batch_fn(step: int) -> dict[str, Tensor]:
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        starts = torch.randint(0, len(stream) - context, (batch_size,), generator=g)
        ids = torch.stack([stream[s:s + context] for s in starts.tolist()])
        return {"input_ids": ids, "labels": ids.clone()}
    return batch_fn


def unigram_entropy(stream: Tensor, vocab_size: int) -> float:
    """Entropy (nats) of the stream's token frequencies: the loss of the best context-free predictor."""
    p = torch.bincount(stream, minlength=vocab_size).double()
    p = p[p > 0] / p.sum()
    return float(-(p * p.log()).sum())


def spread_windows(capacities: list[int], n_windows: int) -> list[int]:
    """Windows to take from each article, as even as the articles' ``capacities`` (whole windows each holds) allow.

    Water-filling: every article gets the same count, those too short give all they hold and the
    rest is shared among the longer ones; leftovers go to the earliest articles. The counts sum to
    ``min(n_windows, sum(capacities))``.
    """
    counts = [0] * len(capacities)
    left = min(n_windows, sum(capacities))
    while left > 0:
        open_ = [i for i, c in enumerate(capacities) if counts[i] < c]
        share = max(1, left // len(open_))
        for i in open_:
            take = min(share, capacities[i] - counts[i], left)
            counts[i] += take
            left -= take
            if left == 0:
                break
    return counts


def validation_tokens(tokenizer, articles: list[Article], nlp, *, n_windows: int, context: int,
                      max_windows_per_article: int | None = 4, context_chars: int = 60):
    """Fixed validation windows and one row per predicted token (POS-tagged with ``nlp``).

    Windows of ``context`` tokens are cut back to back from the start of each
    article (at most ``max_windows_per_article`` each, so several articles are
    represented) until ``n_windows``; with ``max_windows_per_article=None`` they are
    spread over all the articles as evenly as their lengths allow (:func:`spread_windows`).
    Returns ``(batch, tokens)``: ``batch`` has
    ``input_ids``/``labels`` (n_windows, context); ``tokens`` has n_windows * (context - 1)
    rows (window, position, article, token, context, pos, pos_sequence, in_word), where
    ``context`` shows up to ``context_chars`` characters before the token and the
    token itself in brackets, newlines as ``\\n``.
    """
    windows, rows = [], []
    encodings = [tokenizer.encode(a.text) for a in articles]
    if max_windows_per_article is None:
        quota = spread_windows([len(e.ids) // context for e in encodings], n_windows)
    else:
        quota = [max_windows_per_article] * len(articles)
    for article, enc, most in zip(articles, encodings, quota):
        n = min(most, len(enc.ids) // context, n_windows - len(windows))
        if n <= 0:
            continue
        end_char = enc.offsets[n * context - 1][1]
        doc = nlp(article.text[:end_char])
        for w in range(n):
            sl = slice(w * context, (w + 1) * context)
            windows.append(enc.ids[sl])
            spans = enc.offsets[sl][1:]          # predicted tokens: positions 1 .. context-1
            pos = token_pos(doc, spans)
            for p, ((a, b), tags) in enumerate(zip(spans, pos.itertuples(index=False)), start=1):
                before = article.text[max(0, a - context_chars):a]
                rows.append(dict(window=len(windows) - 1, position=p, article=article.title,
                                 token=article.text[a:b],
                                 context=f"{before}[{article.text[a:b]}]".replace("\n", "\\n"),
                                 pos=tags.pos, pos_sequence=tags.pos_sequence, in_word=tags.in_word))
        if len(windows) == n_windows:
            break
    if len(windows) < n_windows:
        raise ValueError(f"the validation articles hold only {len(windows)} windows of {context} tokens, "
                         f"{n_windows} asked: lower n_validation_windows or raise the validation fraction")
    ids = torch.tensor(np.array(windows), dtype=torch.long)
    return {"input_ids": ids, "labels": ids.clone()}, pd.DataFrame(rows)
