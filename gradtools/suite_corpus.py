"""The training corpus of the checkpoint suite: a Wikipedia excerpt mixed with generated stories.

* **Wikipedia**: the plain text of the English Wikipedia excerpt bundled with
  gensim (``enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2``,
  106 articles, about 3M characters), markup stripped by gensim's
  ``filter_wiki``. It gives the models ordinary English.
* **Stories**: short generated texts that carry the three capabilities in
  *training* templates, all different from the evaluation templates of
  :mod:`gradtools.prompt_datasets` (a test checks that no evaluation template
  matches anywhere in the corpus), so the evaluation measures a capability, not
  a memorised template:

  - ``ioi``: two names, one repeated as the subject, the other one the object at
    the end, composed in two shapes: sentences (``Kate and Tom walked into the market.
    It was late. Kate handed the key to Tom.``: 12 introductions, 0-2 fillers, a
    connector, 28 actions) and one sentence with a leading clause (``As soon as Tom and
    Kate found a key in the market, Kate decided to lend it to Tom.``: 7 conjunctions x
    10 verb phrases, the same actions). Names come in either order: predicting the last
    word needs "the name that was not repeated", at varying distances and syntax;
  - ``distractor``: the same names, places and objects, and the words of the
    evaluation templates, in sentences with no IOI structure, so that names
    alone do not predict an IOI answer;
  - ``year``: events running from a year to a later year (``The siege began in
    1732 and ended in 1756.``, ``... in the year 1732 ... by the year 1756``),
    95% within one century: greater-than;
  - ``month``: events lasting one month from a month to the next (``in the month
    of May ... in the month of June``), with some lasting two months as
    distractors: one-month-later.

Batches are windows of a fixed length cut at random offsets from two token
streams (stories, Wikipedia), the source of each row drawn with probability
``story_fraction``; ``batch_fn(step)`` is a pure function of the step.
"""
from __future__ import annotations

import bz2
import random
import re
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from .prompt_datasets import EVENTS, MONTHS, NAMES, OBJECTS, PLACES

WIKI_DUMP = "test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"

# Training IOI stories are composed: an introduction naming both people (either
# order), 0-2 filler sentences, then an action from [S] to [IO]. The many
# combinations and varying distances leave "the name not repeated" as the only rule
# that predicts the last word: with 16 fixed templates (corpus v2) the models solved
# the training templates (99.7% [IO] over [S]) but copied [S] on the held-out ones.
IOI_INTROS = [  # [N1] [N2] are [S] [IO] in either order
    "[N1] and [N2] walked into the [PLACE].",
    "At the [PLACE], [N1] met [N2].",
    "[N1] and [N2] were sitting in the [PLACE].",
    "[N1] visited [N2] at the [PLACE].",
    "Yesterday [N1] and [N2] cleaned the [PLACE].",
    "[N1] and [N2] ran to the [PLACE].",
    "In the [PLACE], [N1] and [N2] talked for hours.",
    "[N1] and [N2] arrived at the [PLACE] early.",
    "[N1] called [N2] from the [PLACE].",
    "Both [N1] and [N2] liked the [PLACE].",
    "[N1] saw [N2] near the [PLACE].",
    "On Monday [N1] and [N2] painted the [PLACE].",
    # corpus v6: more verb phrases of motion and place (none of the evaluation templates'), so that the
    # IOI rule does not hang on the introduction's verb (v5's seed 1 of d96-L2 copied [B] after the
    # evaluation's "went to the [PLACE].", a phrase no training story has)
    "[N1] and [N2] drove to the [PLACE].", "[N1] and [N2] hurried to the [PLACE].",
    "[N1] and [N2] traveled to the [PLACE].", "[N1] and [N2] came to the [PLACE].",
    "[N1] and [N2] returned to the [PLACE].", "[N1] and [N2] headed to the [PLACE].",
    "[N1] and [N2] stopped at the [PLACE].", "[N1] and [N2] had dinner at the [PLACE].",
    "[N1] and [N2] spent the day at the [PLACE].", "[N1] and [N2] looked around the [PLACE].",
    "[N1] and [N2] were resting at the [PLACE].", "[N1] and [N2] were playing in the [PLACE].",
]
IOI_FILLERS = [
    "It was a sunny day.", "The [PLACE] was very busy.", "They stayed there for a long time.",
    "Everyone was happy.", "The [OBJECT] was on the table.", "It was late in the evening.",
    "Nobody else was there.", "The weather was cold.",
]
IOI_CONNECTORS = ["", "Later", "Then", "Soon", "In the end", "After a while,", "One day", "At last"]
IOI_ACTIONS = [
    "[S] handed the [OBJECT] to [IO].", "[S] passed a [OBJECT] to [IO].", "[S] threw the [OBJECT] to [IO].",
    "[S] showed the [OBJECT] to [IO].", "[S] lent a [OBJECT] to [IO].", "[S] sold the [OBJECT] to [IO].",
    "[S] offered a [OBJECT] to [IO].", "[S] brought a [OBJECT] for [IO].", "[S] sent a [OBJECT] to [IO].",
    "[S] mailed the [OBJECT] to [IO].", "[S] gave the [OBJECT] to [IO].", "[S] returned the [OBJECT] to [IO].",
    "[S] waved to [IO].", "[S] said goodbye to [IO].", "[S] smiled at [IO].", "[S] thanked [IO].",
    "[S] wanted to show the [OBJECT] to [IO].", "[S] decided to lend the [OBJECT] to [IO].",
    # corpus v4: pronoun objects, more verbs of speech and transfer, longer verb chains
    "[S] handed it to [IO].", "[S] sold it to [IO].", "[S] decided to lend it to [IO].",
    "[S] tried to sell the [OBJECT] to [IO].", "[S] promised to send a [OBJECT] to [IO].",
    "[S] talked to [IO].", "[S] whispered to [IO].", "[S] wrote a letter to [IO].",
    "[S] explained everything to [IO].", "[S] read a story to [IO].",
]
# The clause shape (corpus v4): "<conjunction> [N1] and [N2] <verb phrase>, <action>". Its verb
# phrases avoid those of the evaluation templates (went to, got a, were working at, ...).
IOI_CONJUNCTIONS = ["When", "While", "After", "Before", "As soon as", "Once", "Because"]
IOI_CLAUSES = [
    "walked into the [PLACE]", "were sitting in the [PLACE]", "cleaned the [PLACE]",
    "arrived at the [PLACE]", "found a [OBJECT] in the [PLACE]", "bought a [OBJECT] at the [PLACE]",
    "were eating at the [PLACE]", "were waiting near the [PLACE]", "left the [PLACE]",
    "were talking about the [OBJECT]",
    # corpus v6
    "drove to the [PLACE]", "came back from the [PLACE]", "stopped at the [PLACE]",
    "were playing in the [PLACE]", "had dinner at the [PLACE]", "traveled to the [PLACE]",
]


def ioi_story_template(rng: random.Random) -> str:
    """One composed IOI training template (slots [S], [IO], [PLACE], [OBJECT]), half of them in each shape."""
    first, second = ("[S]", "[IO]") if rng.random() < 0.5 else ("[IO]", "[S]")
    if rng.random() < 0.5:
        clause = f"{rng.choice(IOI_CONJUNCTIONS)} {first} and {second} {rng.choice(IOI_CLAUSES)},"
        return f"{clause} {rng.choice(IOI_ACTIONS)}"
    intro = rng.choice(IOI_INTROS)
    parts = [intro.replace("[N1]", first).replace("[N2]", second)]
    parts += rng.sample(IOI_FILLERS, rng.randint(0, 2))
    connector, action = rng.choice(IOI_CONNECTORS), rng.choice(IOI_ACTIONS)
    parts.append(f"{connector} {action}".strip())
    return " ".join(parts)


# Distractors (corpus v5) reuse the names, places and objects but none of the evaluation templates'
# openings or verb phrases: in v4 every held-out template a model failed had a distractor sibling
# ("Then, [X] went to the [PLACE] alone.", "[X] and [Y] went to the [PLACE] together.", ...), after
# which the models learned to copy the repeated name (issue 17's per-template tables).
DISTRACTOR_TEMPLATES = [
    "[X] stayed at the [PLACE] alone.",
    "[X] and [Y] looked at the [OBJECT] together.",
    "[X] liked the [PLACE] very much.",
    "[X] and [Y] talked about the [OBJECT] all day.",
    "[X] kept the [OBJECT] at home.",
    "When [X] came back, the [OBJECT] was gone.",
    "[X] found the [PLACE] too quiet.",
    "[X] and [Y] left the [PLACE] at noon.",
    "Everyone at the [PLACE] knew [X].",
    "[X] was tired after the long day.",
    "[X] and [Y] waited near the [OBJECT].",
    "The [OBJECT] belonged to [X].",
]
YEAR_TEMPLATES = [
    "The [EVENT] began in [Y1] and ended in [Y2].",
    "From [Y1] until [Y2], the [EVENT] continued.",
    "The [EVENT] started in the year [Y1]; it was over by [Y2].",
    "In [Y1] the [EVENT] broke out, and peace came in [Y2].",
    "Between [Y1] and [Y2] the [EVENT] went on.",
    "The [EVENT] lasted from [Y1] until [Y2].",
    "The [EVENT] began in the year [Y1] and ended in the year [Y2].",
    "In the year [Y1] the [EVENT] started; by the year [Y2] it was over.",
]
MONTH_TEMPLATES = [  # [M2] is one month after [M1]; [M3] two months after
    "The [EVENT] began in [M1] and ended in [M2].",
    "The [EVENT] lasted one month, from [M1] to [M2].",
    "[X] arrived in [M1] and left one month later, in [M2].",
    "After [M1] comes [M2].",
    "The [EVENT] lasted two months, from [M1] to [M3].",
    "In [M1], the [EVENT] ended.",
    "In the month of [M1] the [EVENT] began, and in the month of [M2] it ended.",
    "[X] left in the month of [M1] and came back one month later, in the month of [M2].",
]
VERSION = 6  # of the story corpus: bumped whenever a story changes, so cached suites are not reused
STORY_KINDS = {"ioi": 0.5, "distractor": 0.2, "year": 0.15, "month": 0.15}


def wikipedia_paragraphs(max_chars: int | None = None) -> list[str]:
    """Plain-text paragraphs (at least 8 words) of gensim's bundled Wikipedia excerpt.

    Requires gensim (``pip install gensim``); ``max_chars`` stops early (small profiles).
    """
    import gensim
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    path = Path(gensim.__file__).parent / WIKI_DUMP
    out, total = [], 0
    with bz2.BZ2File(path) as f:
        for _title, text, _pid in extract_pages(f):
            if text.lower().startswith("#redirect"):
                continue
            text = filter_wiki(text)
            text = re.sub(r"'{2,}", "", text)          # bold/italic quotes
            text = re.sub(r"=+[^=\n]*=+", "\n", text)  # section headings
            for para in text.split("\n"):
                para = " ".join(para.split())
                if len(para.split()) >= 8:
                    out.append(para)
                    total += len(para)
            if max_chars is not None and total >= max_chars:
                break
    return out


def _year(rng: random.Random, century: int, yy: int) -> str:
    return f"{century}{yy:02d}"


def story(kind: str, rng: random.Random) -> str:
    """One generated story of ``kind`` (a key of :data:`STORY_KINDS`)."""
    if kind == "ioi":
        s, io = rng.sample(NAMES, 2)
        t = ioi_story_template(rng)
        slots = {"S": s, "IO": io}
    elif kind == "distractor":
        x, y = rng.sample(NAMES, 2)
        t = rng.choice(DISTRACTOR_TEMPLATES)
        slots = {"X": x, "Y": y}
    elif kind == "year":
        century, yy = rng.randint(10, 19), rng.randint(0, 98)
        if rng.random() < 0.95:  # mostly within the century, where the answer is a larger YY
            y2 = _year(rng, century, rng.randint(yy + 1, 99))
        else:
            y2 = _year(rng, century + 1, rng.randint(0, 99))
        t = rng.choice(YEAR_TEMPLATES)
        slots = {"Y1": _year(rng, century, yy), "Y2": y2}
    elif kind == "month":
        m = rng.randrange(12)
        t = rng.choice(MONTH_TEMPLATES)
        slots = {"M1": MONTHS[m], "M2": MONTHS[(m + 1) % 12], "M3": MONTHS[(m + 2) % 12],
                 "X": rng.choice(NAMES)}
    else:
        raise ValueError(f"unknown story kind {kind!r}; known: {', '.join(STORY_KINDS)}")
    slots.update(PLACE=rng.choice(PLACES), OBJECT=rng.choice(OBJECTS), EVENT=rng.choice(EVENTS))
    for key, value in slots.items():
        t = t.replace(f"[{key}]", value)
    return t


def stories(n: int, seed: int = 0, kinds: dict[str, float] = STORY_KINDS) -> list[str]:
    """``n`` generated stories, kinds drawn with the weights ``kinds``."""
    rng = random.Random(seed)
    names, weights = list(kinds), list(kinds.values())
    return [story(k, rng) for k in rng.choices(names, weights, k=n)]


def token_stream(tokenizer, texts: list[str], chunk: int = 20000) -> Tensor:
    """All ``texts`` tokenized and concatenated into one (N,) long tensor."""
    ids: list[int] = []
    for i in range(0, len(texts), chunk):
        for enc in tokenizer.encode_batch(texts[i:i + chunk], add_special_tokens=False):
            ids.extend(enc.ids)
    return torch.tensor(ids, dtype=torch.long)


def mixed_batch_fn(story_stream: Tensor, wiki_stream: Tensor, *, story_fraction: float,
                   batch_size: int, context: int, seed: int = 0) -> Callable[[int], dict[str, Tensor]]:
    """``batch_fn(step)`` -> ``{"input_ids": (batch_size, context), "labels": same}`` (loss on every token).

    Each row is a window at a random offset of the story stream (probability
    ``story_fraction``) or of the Wikipedia stream; the draw is seeded by ``(seed, step)``.
    """
    def batch_fn(step: int) -> dict[str, Tensor]:
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        from_story = torch.rand(batch_size, generator=g) < story_fraction
        rows = []
        for is_story in from_story.tolist():
            stream = story_stream if is_story else wiki_stream
            start = int(torch.randint(0, len(stream) - context, (1,), generator=g))
            rows.append(stream[start:start + context])
        ids = torch.stack(rows)
        return {"input_ids": ids, "labels": ids.clone()}
    return batch_fn
