"""Prompt datasets of study 1: IOI, greater-than (GT), one-month-later (OML) and their controls.

Each dataset is a list of (prompt, target token) pairs whose target is a single
token of the model's tokenizer (shared-gradient-discovery, section 3):

* **IOI** (indirect object identification, Wang et al. 2022):
  ``Then, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to`` -> ``[A]``.
  15 BABA templates and their ABBA swaps (``[A] and [B]``). Controls on the
  same prompts: ``ioi_rand`` (a random vocabulary token), ``ioi_name`` (a random
  name other than [A] and [B]), ``ioi_copy`` ([B], the repeated name).
* **GT** (greater-than, Hanna et al. 2023):
  ``The [EVENT] lasted from the year [C][YY] to the year [C]`` -> a two-digit
  ``ZZ > YY`` drawn per example (centuries 11-17, YY in 02-98). Controls:
  ``gt_year`` (a random two-digit token), ``gt_less`` (a ``ZZ < YY``),
  ``gt_copy`` (``YY``).
* **OML** (one month later): ``The [EVENT] lasted one month, from the month of
  [M] to the month of`` -> the month after [M]; 34 events x 12 months = 408
  prompts. Controls: ``oml_month`` (a random month), ``oml_copy`` ([M]).

The templates here are the *evaluation* templates: the training corpus of the
checkpoint suite (:mod:`gradtools.suite_corpus`) uses other templates, and a test
checks that none of these occurs in it.

Any tokenizer works: a ``tokenizers.Tokenizer`` or a ``transformers`` tokenizer.
Every name, place, object, event, month and two-digit number used must be one
token (a word after a space, e.g. ``" Mary"``; a two-digit number after a
century, e.g. ``"17"`` ``"32"``); :func:`single_token_ids` stops with the list
of offenders otherwise. A new task is one function ``f(tokenizer, n, seed) ->
PromptDataset`` added to :data:`GENERATORS`.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Callable

import pandas as pd
import torch
from torch import Tensor

from .lm import IGNORE

# ---------------------------------------------------------------- word lists
NAMES = """Mary John Alice Tom James Sarah Michael Emma David Laura Daniel Anna Paul Kate Mark Lucy Peter
Rachel Robert Helen Steven Amy Richard Linda Thomas Susan Charles Karen George Nancy Edward Lisa Henry Julia
Frank Grace Jack Rose Adam Claire Brian Ruth Kevin Diana Eric Ellen Jason Megan Scott Sophie Andrew Jane Ryan
Nora Gary Alex Carl Anne Sam Jessica Ben Kelly Joe Ann Matt Maria Tim Jennifer Chris Amanda Patrick Betty Ian
Victoria Simon Carol Max Alan Emily Luke Hannah Sean Joan Dan Sharon Jeff Lily Bill Eva Nick Ruby Greg Holly Tony
Rebecca Roger Jean Joseph Martha""".split()

PLACES = ["store", "garden", "school", "hospital", "office", "station", "library", "market"]
OBJECTS = ["book", "ring", "drink", "ball", "key", "cake", "letter", "flower"]
EVENTS = """war expedition siege drought famine reign rebellion plague voyage journey crusade revolution occupation
embargo strike boycott trial campaign migration festival exhibition construction restoration excavation
negotiation truce blockade epidemic flood eruption dynasty conflict alliance tournament""".split()
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
TWO_DIGITS = [f"{i:02d}" for i in range(100)]
CENTURIES = list(range(11, 18))

# IOI evaluation templates, BABA order: [B] is named twice, [A] (the indirect object) once.
IOI_TEMPLATES = [
    "Then, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to",
    "Then, [B] and [A] had a lot of fun at the [PLACE]. [B] gave a [OBJECT] to",
    "Then, [B] and [A] were working at the [PLACE]. [B] decided to give a [OBJECT] to",
    "Then, [B] and [A] were thinking about going to the [PLACE]. [B] wanted to give a [OBJECT] to",
    "Then, [B] and [A] had a long argument, and afterwards [B] said to",
    "After [B] and [A] went to the [PLACE], [B] gave a [OBJECT] to",
    "When [B] and [A] got a [OBJECT] at the [PLACE], [B] decided to give it to",
    "When [B] and [A] got a [OBJECT] at the [PLACE], [B] decided to give the [OBJECT] to",
    "While [B] and [A] were working at the [PLACE], [B] gave a [OBJECT] to",
    "While [B] and [A] were commuting to the [PLACE], [B] gave a [OBJECT] to",
    "After the lunch, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to",
    "Afterwards, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to",
    "Then, [B] and [A] had a long argument. Afterwards [B] said to",
    "The [PLACE] [B] and [A] went to had a [OBJECT]. [B] gave it to",
    "Friends [B] and [A] found a [OBJECT] at the [PLACE]. [B] gave it to",
]
GT_TEMPLATE = "The [EVENT] lasted from the year [C][YY] to the year [C]"
OML_TEMPLATE = "The [EVENT] lasted one month, from the month of [M] to the month of"
EVALUATION_TEMPLATES = {"ioi": IOI_TEMPLATES, "gt": [GT_TEMPLATE], "oml": [OML_TEMPLATE]}


def abba(template: str) -> str:
    """The ABBA swap of a BABA template: the first mention order becomes ``[A] and [B]``."""
    return template.replace("[B] and [A]", "[A] and [B]", 1)


def template_regex(template: str) -> re.Pattern:
    """A regex matching any filling of ``template`` (each ``[SLOT]`` one word or number).

    Used to check that an evaluation template never occurs in a training corpus.
    """
    parts = re.split(r"(\[[A-Z]+\])", template)
    out = []
    for part in parts:
        if re.fullmatch(r"\[[A-Z]+\]", part):
            out.append(r"\w+")
        else:
            out.append(r"\s*".join(re.escape(w) for w in part.split()) if part.strip() else r"\s*")
    return re.compile(r"\s*".join(p for p in out if p))


# ---------------------------------------------------------------- tokenizers
def _encode(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens, for either tokenizer family."""
    if hasattr(tokenizer, "encode") and hasattr(tokenizer, "get_vocab_size"):  # tokenizers.Tokenizer
        return tokenizer.encode(text, add_special_tokens=False).ids
    return tokenizer(text, add_special_tokens=False)["input_ids"]  # transformers tokenizer


def vocab_size(tokenizer) -> int:
    """Vocabulary size of either tokenizer family."""
    return tokenizer.get_vocab_size() if hasattr(tokenizer, "get_vocab_size") else len(tokenizer)


def _unk_id(tokenizer) -> int | None:
    """The id of the unknown token (a word mapped to it is not in the vocabulary), or None."""
    if hasattr(tokenizer, "get_vocab_size"):
        model = tokenizer.model
        unk = getattr(model, "unk_token", None)
        return tokenizer.token_to_id(unk) if unk else None
    return getattr(tokenizer, "unk_token_id", None)


def single_token_ids(tokenizer, words: list[str], *, prefix: str = " ", what: str = "word") -> dict[str, int]:
    """The token id of each word as it appears in a prompt (after ``prefix``); stop if any is not one token.

    Raises:
        ValueError naming every word that the tokenizer splits into several tokens.
    """
    ids, bad = {}, {}
    unk = _unk_id(tokenizer)
    for word in words:
        # Encode after a context word so that BPE tokenizers see the word as mid-sentence.
        context = _encode(tokenizer, "the" + prefix.rstrip())
        full = _encode(tokenizer, "the" + prefix + word)
        token = full[len(context):] if full[:len(context)] == context else full
        if len(token) != 1:
            bad[word] = f"{len(token)} tokens"
        elif token[0] == unk:
            bad[word] = "unknown token"
        else:
            ids[word] = token[0]
    if bad:
        listing = ", ".join(f"{w!r} ({why})" for w, why in bad.items())
        raise ValueError(f"these {what}s are not single tokens for this tokenizer: {listing}; "
                         f"remove them from the list or use a tokenizer that keeps them whole")
    return ids


# ---------------------------------------------------------------- the dataset structure
@dataclass
class PromptDataset:
    """Prompts with one target token each.

    Attributes:
        name: dataset name (``"ioi"``, ``"ioi_copy"``, ...).
        prompts: n lists of token ids (lengths may differ).
        targets: (n,) target token ids.
        meta: one row per prompt: ``text``, ``template``, and the task's slots
            (IOI: ``a``, ``b``, ``a_id``, ``b_id``, ``order``; GT: ``yy``, ``century``;
            OML: ``month``), plus ``target`` (the target's text).
    """
    name: str
    prompts: list[list[int]]
    targets: Tensor
    meta: pd.DataFrame

    def __len__(self) -> int:
        return len(self.prompts)

    def batch(self, pad_id: int = 0, rows: slice | list[int] | None = None) -> dict[str, Tensor]:
        """A causal-LM batch: ``input_ids`` = prompt + target, right-padded; loss on the target only.

        Returns ``{"input_ids": (n, S), "labels": (n, S), "attention_mask": (n, S)}`` with
        ``labels = -100`` except at the target position (the convention of :mod:`gradtools.lm`;
        ``sequence_losses`` then gives each example's target loss). Right padding after the
        target changes nothing before it (causal attention).
        """
        idx = range(len(self)) if rows is None else (range(len(self))[rows] if isinstance(rows, slice) else rows)
        seqs = [self.prompts[i] + [int(self.targets[i])] for i in idx]
        width = max(map(len, seqs))
        ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
        labels = torch.full_like(ids, IGNORE)
        mask = torch.zeros_like(ids)
        for r, s in enumerate(seqs):
            ids[r, :len(s)] = torch.tensor(s)
            labels[r, len(s) - 1] = s[-1]
            mask[r, :len(s)] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    def last_positions(self) -> Tensor:
        """(n,) index of each prompt's last token (where the target is predicted)."""
        return torch.tensor([len(p) - 1 for p in self.prompts])

    def with_targets(self, name: str, targets: list[int], target_text: list[str]) -> "PromptDataset":
        """The same prompts with other targets (a control)."""
        meta = self.meta.copy()
        meta["target"] = target_text
        return PromptDataset(name, self.prompts, torch.tensor(targets, dtype=torch.long), meta)


def _fill(template: str, slots: dict[str, str]) -> str:
    for key, value in slots.items():
        template = template.replace(f"[{key}]", value)
    return template


# ---------------------------------------------------------------- IOI
def ioi(tokenizer, n: int = 1000, seed: int = 0, *, names: list[str] = NAMES,
        templates: list[str] = IOI_TEMPLATES) -> PromptDataset:
    """IOI prompts, half BABA and half ABBA (alternating), target [A] (the indirect object)."""
    name_ids = single_token_ids(tokenizer, names, what="name")
    single_token_ids(tokenizer, PLACES, what="place")
    single_token_ids(tokenizer, OBJECTS, what="object")
    rng = random.Random(seed)
    prompts, targets, rows = [], [], []
    for i in range(n):
        t = i % len(templates)
        order = "BABA" if (i // len(templates)) % 2 == 0 else "ABBA"
        template = templates[t] if order == "BABA" else abba(templates[t])
        a, b = rng.sample(names, 2)
        text = _fill(template, {"A": a, "B": b, "PLACE": rng.choice(PLACES), "OBJECT": rng.choice(OBJECTS)})
        prompts.append(_encode(tokenizer, text))
        targets.append(name_ids[a])
        rows.append(dict(text=text, template=t, order=order, a=a, b=b, a_id=name_ids[a],
                         b_id=name_ids[b], target=a))
    return PromptDataset("ioi", prompts, torch.tensor(targets), pd.DataFrame(rows))


def ioi_rand(tokenizer, n: int = 1000, seed: int = 0) -> PromptDataset:
    """IOI prompts, target a uniformly random vocabulary token."""
    base = ioi(tokenizer, n, seed)
    g = torch.Generator().manual_seed(seed + 1)
    t = torch.randint(0, vocab_size(tokenizer), (len(base),), generator=g).tolist()
    return base.with_targets("ioi_rand", t, [f"<{i}>" for i in t])


def ioi_name(tokenizer, n: int = 1000, seed: int = 0) -> PromptDataset:
    """IOI prompts, target a random name from the list other than [A] and [B]."""
    base = ioi(tokenizer, n, seed)
    ids = single_token_ids(tokenizer, NAMES, what="name")
    rng = random.Random(seed + 2)
    picks = [rng.choice([m for m in NAMES if m not in (a, b)]) for a, b in zip(base.meta.a, base.meta.b)]
    return base.with_targets("ioi_name", [ids[p] for p in picks], picks)


def ioi_copy(tokenizer, n: int = 1000, seed: int = 0) -> PromptDataset:
    """IOI prompts, target [B] (the repeated name, the subject)."""
    base = ioi(tokenizer, n, seed)
    return base.with_targets("ioi_copy", base.meta.b_id.tolist(), base.meta.b.tolist())


# ---------------------------------------------------------------- GT
def _gt_base(tokenizer, n: int, seed: int):
    single_token_ids(tokenizer, EVENTS, what="event")
    # Two-digit numbers follow the century with no space ("17" "32").
    digit_ids = single_token_ids(tokenizer, TWO_DIGITS, prefix=" 17", what="two-digit number")
    century_ids = single_token_ids(tokenizer, [str(c) for c in CENTURIES], what="century")
    rng = random.Random(seed)
    prompts, rows = [], []
    for _ in range(n):
        event, century, yy = rng.choice(EVENTS), rng.choice(CENTURIES), rng.randint(2, 98)
        text = _fill(GT_TEMPLATE, {"EVENT": event, "C": str(century), "YY": f"{yy:02d}"})
        prompts.append(_encode(tokenizer, text))
        rows.append(dict(text=text, template=0, event=event, century=century, yy=yy))
    del century_ids
    return prompts, pd.DataFrame(rows), digit_ids, rng


def gt(tokenizer, n: int = 1000, seed: int = 0) -> PromptDataset:
    """GT prompts, target one two-digit ``ZZ > YY`` drawn per example."""
    prompts, meta, digit, rng = _gt_base(tokenizer, n, seed)
    zz = [rng.randint(y + 1, 99) for y in meta.yy]
    meta["target"] = [f"{z:02d}" for z in zz]
    return PromptDataset("gt", prompts, torch.tensor([digit[f"{z:02d}"] for z in zz]), meta)


def gt_year(tokenizer, n: int = 1000, seed: int = 0) -> PromptDataset:
    """GT prompts, target a uniformly random two-digit token (00-99)."""
    prompts, meta, digit, rng = _gt_base(tokenizer, n, seed)
    zz = [rng.randint(0, 99) for _ in meta.yy]
    meta["target"] = [f"{z:02d}" for z in zz]
    return PromptDataset("gt_year", prompts, torch.tensor([digit[f"{z:02d}"] for z in zz]), meta)


def gt_less(tokenizer, n: int = 1000, seed: int = 0) -> PromptDataset:
    """GT prompts, target a two-digit ``ZZ < YY`` (YY >= 02, so one exists)."""
    prompts, meta, digit, rng = _gt_base(tokenizer, n, seed)
    zz = [rng.randint(0, y - 1) for y in meta.yy]
    meta["target"] = [f"{z:02d}" for z in zz]
    return PromptDataset("gt_less", prompts, torch.tensor([digit[f"{z:02d}"] for z in zz]), meta)


def gt_copy(tokenizer, n: int = 1000, seed: int = 0) -> PromptDataset:
    """GT prompts, target ``YY`` itself."""
    prompts, meta, digit, _ = _gt_base(tokenizer, n, seed)
    meta["target"] = [f"{y:02d}" for y in meta.yy]
    return PromptDataset("gt_copy", prompts, torch.tensor([digit[f"{y:02d}"] for y in meta.yy]), meta)


def two_digit_ids(tokenizer) -> Tensor:
    """(100,) token ids of "00".."99" as they follow a century (for the GT probability difference)."""
    ids = single_token_ids(tokenizer, TWO_DIGITS, prefix=" 17", what="two-digit number")
    return torch.tensor([ids[d] for d in TWO_DIGITS])


# ---------------------------------------------------------------- OML
def _oml_base(tokenizer, n: int | None, seed: int):
    month_ids = single_token_ids(tokenizer, MONTHS, what="month")
    single_token_ids(tokenizer, EVENTS, what="event")
    prompts, rows = [], []
    for event in EVENTS:
        for m, month in enumerate(MONTHS):
            text = _fill(OML_TEMPLATE, {"EVENT": event, "M": month})
            prompts.append(_encode(tokenizer, text))
            rows.append(dict(text=text, template=0, event=event, month=m))
    meta = pd.DataFrame(rows)
    if n is not None and n < len(prompts):  # a seeded subset, for small profiles
        keep = sorted(random.Random(seed).sample(range(len(prompts)), n))
        prompts, meta = [prompts[i] for i in keep], meta.iloc[keep].reset_index(drop=True)
    return prompts, meta, month_ids


def oml(tokenizer, n: int | None = None, seed: int = 0) -> PromptDataset:
    """OML prompts (all 34 x 12 = 408 by default), target the month after [M] (December -> January)."""
    prompts, meta, ids = _oml_base(tokenizer, n, seed)
    nxt = [MONTHS[(m + 1) % 12] for m in meta.month]
    meta["target"] = nxt
    return PromptDataset("oml", prompts, torch.tensor([ids[x] for x in nxt]), meta)


def oml_month(tokenizer, n: int | None = None, seed: int = 0) -> PromptDataset:
    """OML prompts, target a uniformly random month."""
    prompts, meta, ids = _oml_base(tokenizer, n, seed)
    rng = random.Random(seed + 3)
    pick = [rng.choice(MONTHS) for _ in meta.month]
    meta["target"] = pick
    return PromptDataset("oml_month", prompts, torch.tensor([ids[x] for x in pick]), meta)


def oml_copy(tokenizer, n: int | None = None, seed: int = 0) -> PromptDataset:
    """OML prompts, target [M] itself."""
    prompts, meta, ids = _oml_base(tokenizer, n, seed)
    same = [MONTHS[m] for m in meta.month]
    meta["target"] = same
    return PromptDataset("oml_copy", prompts, torch.tensor([ids[x] for x in same]), meta)


def month_ids(tokenizer) -> Tensor:
    """(12,) token ids of January..December after a space."""
    ids = single_token_ids(tokenizer, MONTHS, what="month")
    return torch.tensor([ids[m] for m in MONTHS])


# ---------------------------------------------------------------- registry
GENERATORS: dict[str, Callable[..., PromptDataset]] = {
    "ioi": ioi, "ioi_rand": ioi_rand, "ioi_name": ioi_name, "ioi_copy": ioi_copy,
    "gt": gt, "gt_year": gt_year, "gt_less": gt_less, "gt_copy": gt_copy,
    "oml": oml, "oml_month": oml_month, "oml_copy": oml_copy,
}


def make_dataset(name: str, tokenizer, n: int | None = None, seed: int = 0) -> PromptDataset:
    """The dataset ``name`` (a key of :data:`GENERATORS`) for ``tokenizer``; ``n`` None: the task's default size."""
    if name not in GENERATORS:
        raise ValueError(f"unknown prompt dataset {name!r}; known: {', '.join(GENERATORS)}")
    kwargs = {"seed": seed} if n is None else {"n": n, "seed": seed}
    return GENERATORS[name](tokenizer, **kwargs)
