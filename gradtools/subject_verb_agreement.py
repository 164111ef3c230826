"""An example task family plugged into study 1: subject-verb agreement with a wrong-number control.

``The [SUBJECT] near the [ATTRACTOR]`` -> ``is`` if the subject is singular,
``are`` if plural; the attractor noun's number is drawn independently, so half the
prompts put a noun of the other number right before the verb (agreement
attraction). Controls on the same prompts:

* ``sva_wrong``: the verb of the wrong number (``are`` after a singular subject);
* ``sva_attractor``: the verb agreeing with the attractor, not the subject.

Written the way any new task is: one function ``f(tokenizer, n, seed) -> dict``
(the task first, its controls after), each dataset a
:class:`gradtools.prompt_datasets.PromptDataset`, every slot word checked to be one
token by :func:`gradtools.prompt_datasets.single_token_ids`. Notebook 01 runs it
with ``task = "gradtools.subject_verb_agreement:subject_verb_agreement"``.
"""
from __future__ import annotations

import random

import pandas as pd
import torch

from .prompt_datasets import PromptDataset, _encode, single_token_ids

# singular / plural nouns (in the suite's word vocabulary)
NOUNS = [("book", "books"), ("animal", "animals"), ("letter", "letters"), ("school", "schools"),
         ("river", "rivers"), ("artist", "artists"), ("member", "members"), ("author", "authors"),
         ("nation", "nations"), ("plant", "plants"), ("group", "groups"), ("frog", "frogs"),
         ("astronaut", "astronauts"), ("human", "humans"), ("court", "courts"), ("system", "systems")]
TEMPLATES = ["The [SUBJECT] near the [ATTRACTOR]", "The [SUBJECT] of the [ATTRACTOR]",
             "The [SUBJECT] with the [ATTRACTOR]", "The [SUBJECT] behind the [ATTRACTOR]"]
VERBS = ("is", "are")  # singular, plural


def subject_verb_agreement(tokenizer, n: int | None = 400, seed: int = 0) -> dict[str, PromptDataset]:
    """``{"sva": ..., "sva_wrong": ..., "sva_attractor": ...}`` on the same ``n`` prompts (default 400)."""
    n = 400 if n is None else n
    words = [w for pair in NOUNS for w in pair]
    single_token_ids(tokenizer, words, what="noun")
    verb = single_token_ids(tokenizer, list(VERBS), what="verb")
    rng = random.Random(seed)
    prompts, rows = [], []
    for i in range(n):
        subj, attr = rng.sample(NOUNS, 2)
        subj_plural, attr_plural = rng.random() < 0.5, rng.random() < 0.5
        text = TEMPLATES[i % len(TEMPLATES)].replace("[SUBJECT]", subj[subj_plural]).replace(
            "[ATTRACTOR]", attr[attr_plural])
        prompts.append(_encode(tokenizer, text))
        rows.append(dict(text=text, template=i % len(TEMPLATES), subject=subj[subj_plural],
                         attractor=attr[attr_plural], plural=subj_plural, attractor_plural=attr_plural))
    meta = pd.DataFrame(rows)

    def with_verbs(name: str, plural: list[bool]) -> PromptDataset:
        text = [VERBS[p] for p in plural]
        return PromptDataset(name, prompts, torch.tensor([verb[t] for t in text]), meta.assign(target=text))

    right = meta.plural.tolist()
    return {"sva": with_verbs("sva", right),
            "sva_wrong": with_verbs("sva_wrong", [not p for p in right]),
            "sva_attractor": with_verbs("sva_attractor", meta.attractor_plural.tolist())}
