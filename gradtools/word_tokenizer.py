"""A word-level tokenizer (``tokenizers``) in which every task word is one token.

Text is split into words and punctuation runs (``\\w+|[^\\w\\s]+``), then digit
runs into pairs, so the year ``1732`` is the two tokens ``17`` ``32`` as in
GPT-2 (Hanna et al.'s greater-than task predicts the second pair). The
vocabulary is: the special tokens, every word the prompt datasets need (names,
places, objects, events, months, ``00``-``99``, and the words of the
evaluation templates), then the most frequent other words of the corpus, up to
``vocab_size``. Everything else is ``[UNK]``.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterable

from tokenizers import Regex, Tokenizer, models, pre_tokenizers

from . import prompt_datasets as pd_

EOS, UNK = "<|endoftext|>", "[UNK]"  # EOS is id 0: the bos/eos id of gradtools.lm.tiny_config


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence([
        pre_tokenizers.Whitespace(),
        pre_tokenizers.Split(Regex(r"\d\d"), behavior="isolated"),
    ])


def required_words() -> list[str]:
    """Words that must be single tokens: the prompt datasets' lists and the evaluation templates' words."""
    words = [*pd_.NAMES, *pd_.PLACES, *pd_.OBJECTS, *pd_.EVENTS, *pd_.MONTHS, *pd_.TWO_DIGITS,
             *[str(c) for c in pd_.CENTURIES]]
    pre = _pre_tokenizer()
    for templates in pd_.EVALUATION_TEMPLATES.values():
        for t in templates:
            for piece, _ in pre.pre_tokenize_str(t.replace("[", " ").replace("]", " ")):
                if not piece.isupper():  # slot names (A, B, PLACE, ...) are not words
                    words.append(piece)
    return list(dict.fromkeys(words))


def train_word_tokenizer(texts: Iterable[str], vocab_size: int = 2048) -> Tokenizer:
    """A word-level tokenizer: specials, :func:`required_words`, then the most frequent words of ``texts``."""
    pre = _pre_tokenizer()
    counts = Counter()
    for text in texts:
        counts.update(piece for piece, _ in pre.pre_tokenize_str(text))
    vocab = [EOS, UNK, *required_words()]
    if len(vocab) > vocab_size:
        raise ValueError(f"vocab_size {vocab_size} is smaller than the {len(vocab)} required tokens")
    seen = set(vocab)
    for word, _ in counts.most_common():
        if len(vocab) >= vocab_size:
            break
        if word not in seen:
            vocab.append(word)
            seen.add(word)
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token=UNK))
    tokenizer.pre_tokenizer = _pre_tokenizer()
    return tokenizer


def load_word_tokenizer(path: str | Path) -> Tokenizer:
    """The tokenizer saved by ``tokenizer.save(path)`` (a ``tokenizer.json``)."""
    return Tokenizer.from_file(str(path))
