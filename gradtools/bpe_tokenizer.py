"""A byte-level BPE tokenizer trained here with the ``tokenizers`` library (no hub download).

The GPT-2 scheme: text is split into bytes, so every string (accents, Greek,
newlines) is encodable and decoding is lossless; frequent byte pairs are merged
up to ``vocab_size``. ``<|endoftext|>`` (id 0) separates documents.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

END_OF_TEXT = "<|endoftext|>"


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 4096) -> Tokenizer:
    """Byte-level BPE with ``vocab_size`` entries (256 bytes, ``<|endoftext|>`` and the merges)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[END_OF_TEXT],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def load_tokenizer(path: str | Path) -> Tokenizer:
    """A tokenizer saved with ``Tokenizer.save``."""
    return Tokenizer.from_file(str(path))
