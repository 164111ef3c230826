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
  [M] to the month of`` -> the month after [M]; events x 12 months prompts
  (34 x 12 = 408 when every event is kept). Controls: ``oml_month`` (a random
  month), ``oml_copy`` ([M]).

The templates here are the *evaluation* templates: the training corpus of the
checkpoint suite (:mod:`gradtools.suite_corpus`) uses other templates, and a test
checks that none of these occurs in it.

Any tokenizer works: a ``tokenizers.Tokenizer`` or a ``transformers`` tokenizer.
Slot words and targets are checked against it, as they appear in a prompt (a
word after a space, e.g. ``" Mary"``; a two-digit number after a century, e.g.
``"17"`` ``"32"``):

* **Slot words** (names, places, objects, events) that the tokenizer splits into
  several tokens, or maps to its unknown token, are *left out* for that
  tokenizer: the prompts are drawn from the other words, the builder prints a
  one-line note (``ioi: left out 1 of 99 names this tokenizer does not keep
  whole: 'Nora' (2 tokens)``; the task prints it, its controls do not), and the
  dataset records both (:attr:`PromptDataset.words`,
  :attr:`PromptDataset.left_out`). On the GPT-NeoX-20B tokenizer of Pythia and
  the OLMo suite, 'Nora', 'crusade', 'excavation' and 'truce' are 2 tokens each.
  Generation stops (ValueError naming the words) only when fewer than
  :data:`MIN_WORDS` of a kind remain.
* **Targets** that are not slot words (months, the two-digit numbers
  ``"00"``-``"99"``) and the centuries stay strict: :func:`single_token_ids`
  stops with the list of offenders if any is not one token.

A tokenizer that keeps every word whole (e.g. :mod:`gradtools.word_tokenizer`)
leaves nothing out, and then the prompts, targets and meta are exactly those of
the full lists (the same random draws). A new task is one function
``f(tokenizer, n, seed) -> PromptDataset`` added to :data:`GENERATORS`.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
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

# The fewest words of each slot kind a dataset may keep after leaving out those a
# tokenizer does not keep whole. Names: IOI draws ordered pairs (A, B) and
# ioi_name a third name, and name clustering compares their unembeddings, so 20
# names (380 pairs) keep the prompts varied. Places and objects are context
# only: two of each keep the prompts from being all alike. Events: context of GT
# and OML, and OML has events x 12 prompts, so 10 events give at least 120.
MIN_WORDS = {"name": 20, "place": 2, "object": 2, "event": 10}

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


def _check_words(tokenizer, words: list[str], prefix: str = " ") -> tuple[dict[str, int], dict[str, str]]:
    """``(ids, bad)``: the token id of each word that is one known token after ``prefix``
    (in the order of ``words``), and for every other word why not (``"2 tokens"``, ``"unknown token"``)."""
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
    return ids, bad


def _listing(bad: dict[str, str]) -> str:
    return ", ".join(f"{w!r} ({why})" for w, why in bad.items())


def single_token_ids(tokenizer, words: list[str], *, prefix: str = " ", what: str = "word") -> dict[str, int]:
    """The token id of each word as it appears in a prompt (after ``prefix``); stop if any is not one token.

    Used for targets that must all exist (months, two-digit numbers, centuries).

    Raises:
        ValueError naming every word that the tokenizer splits into several tokens
        or maps to its unknown token.
    """
    ids, bad = _check_words(tokenizer, words, prefix)
    if bad:
        raise ValueError(f"these {what}s are not single tokens for this tokenizer: {_listing(bad)}; "
                         f"remove them from the list or use a tokenizer that keeps them whole")
    return ids


def whole_words(tokenizer, words: list[str], *, what: str, dataset: str,
                announce: bool = True) -> tuple[dict[str, int], dict[str, str]]:
    """The slot words of kind ``what`` that ``tokenizer`` keeps whole, and those it leaves out.

    Returns ``(ids, left_out)``: the token id of each kept word (in the order of
    ``words``, so a tokenizer that keeps them all gives the same random draws as
    the full list) and ``{word: reason}`` for the others. ``announce``: print a
    one-line note naming what was left out (nothing is printed if nothing was).

    Raises:
        ValueError naming the left-out words if leaving them out keeps fewer than
        ``MIN_WORDS[what]`` (a list that is short to begin with, and all whole, is kept as is).
    """
    ids, bad = _check_words(tokenizer, words)
    floor = MIN_WORDS.get(what, 1)
    if bad and len(ids) < floor:
        raise ValueError(f"these {what}s are not single tokens for this tokenizer: {_listing(bad)}; "
                         f"{dataset} keeps only {len(ids)} of {len(words)} {what}s, fewer than the "
                         f"{floor} it needs (MIN_WORDS[{what!r}]): add {what}s this tokenizer keeps whole "
                         f"or use a tokenizer that keeps them whole")
    if bad and announce:
        print(f"{dataset}: left out {len(bad)} of {len(words)} {what}s this tokenizer does not keep whole: "
              f"{_listing(bad)}")
    return ids, bad


def _slot_words(tokenizer, dataset: str, lists: dict[str, list[str]],
                announce: bool) -> tuple[dict[str, dict[str, int]], dict[str, list[str]], dict[str, dict[str, str]]]:
    """:func:`whole_words` of each slot kind: ``(ids, words, left_out)``, each keyed by kind."""
    ids, left_out = {}, {}
    for what, words in lists.items():
        ids[what], left_out[what] = whole_words(tokenizer, words, what=what, dataset=dataset, announce=announce)
    return ids, {what: list(kept) for what, kept in ids.items()}, left_out


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
        words: slot kind (``"name"``, ``"place"``, ``"object"``, ``"event"``) -> the words
            the prompts were drawn from (those the tokenizer keeps whole, in list order).
        left_out: slot kind -> ``{word: reason}`` of the words left out for this
            tokenizer (``"2 tokens"``, ``"unknown token"``); empty when none was.
    """
    name: str
    prompts: list[list[int]]
    targets: Tensor
    meta: pd.DataFrame
    words: dict[str, list[str]] = field(default_factory=dict)
    left_out: dict[str, dict[str, str]] = field(default_factory=dict)

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
        """The same prompts with other targets (a control); the same words and left-out words."""
        meta = self.meta.copy()
        meta["target"] = target_text
        return PromptDataset(name, self.prompts, torch.tensor(targets, dtype=torch.long), meta,
                             words={k: list(v) for k, v in self.words.items()},
                             left_out={k: dict(v) for k, v in self.left_out.items()})


def _fill(template: str, slots: dict[str, str]) -> str:
    for key, value in slots.items():
        template = template.replace(f"[{key}]", value)
    return template


# ---------------------------------------------------------------- IOI
def ioi(tokenizer, n: int = 1000, seed: int = 0, *, names: list[str] = NAMES,
        templates: list[str] = IOI_TEMPLATES) -> PromptDataset:
    """IOI prompts, half BABA and half ABBA (alternating), target [A] (the indirect object).

    Names, places and objects the tokenizer does not keep whole are left out (see module doc).
    """
    return _ioi_base(tokenizer, n, seed, names, templates, announce=True)


def _ioi_base(tokenizer, n: int, seed: int, names: list[str], templates: list[str],
              announce: bool) -> PromptDataset:
    ids, words, left_out = _slot_words(tokenizer, "ioi", {"name": names, "place": PLACES, "object": OBJECTS},
                                       announce)
    name_ids, names, places, objects = ids["name"], words["name"], words["place"], words["object"]
    rng = random.Random(seed)
    prompts, targets, rows = [], [], []
    for i in range(n):
        t = i % len(templates)
        order = "BABA" if (i // len(templates)) % 2 == 0 else "ABBA"
        template = templates[t] if order == "BABA" else abba(templates[t])
        a, b = rng.sample(names, 2)
        text = _fill(template, {"A": a, "B": b, "PLACE": rng.choice(places), "OBJECT": rng.choice(objects)})
        prompts.append(_encode(tokenizer, text))
        targets.append(name_ids[a])
        rows.append(dict(text=text, template=t, order=order, a=a, b=b, a_id=name_ids[a],
                         b_id=name_ids[b], target=a))
    return PromptDataset("ioi", prompts, torch.tensor(targets), pd.DataFrame(rows), words=words, left_out=left_out)


def ioi_rand(tokenizer, n: int = 1000, seed: int = 0) -> PromptDataset:
    """IOI prompts, target a uniformly random vocabulary token."""
    base = _ioi_base(tokenizer, n, seed, NAMES, IOI_TEMPLATES, announce=False)
    g = torch.Generator().manual_seed(seed + 1)
    t = torch.randint(0, vocab_size(tokenizer), (len(base),), generator=g).tolist()
    return base.with_targets("ioi_rand", t, [f"<{i}>" for i in t])


def frequency_matched_pool(counts: Tensor, reference_ids: list[int], exclude: set[int],
                           per_reference: int = 5) -> list[int]:
    """Tokens as frequent in a corpus as the reference tokens: for each reference token, the
    ``per_reference`` tokens nearest to it in log count (``counts``: (V,) corpus counts), leaving out
    ``exclude`` and unseen tokens. Sorted, without repeats."""
    if len(counts) == 0 or not reference_ids:
        raise ValueError("a frequency-matched pool needs corpus token counts and reference tokens")
    log = torch.log(counts.double().clamp_min(1))
    allowed = (counts > 0).clone()
    allowed[list(exclude)] = False
    if int(allowed.sum()) < per_reference:
        raise ValueError(f"only {int(allowed.sum())} seen tokens outside the excluded ones; cannot match frequencies")
    pool = set()
    for r in reference_ids:
        distance = (log - log[r]).abs().masked_fill(~allowed, float("inf"))
        pool.update(torch.topk(distance, per_reference, largest=False).indices.tolist())
    return sorted(pool)


def ioi_rand_freq(tokenizer, n: int = 1000, seed: int = 0, *, counts: Tensor) -> PromptDataset:
    """IOI prompts, target a random token as frequent in the training corpus as the names
    (:func:`frequency_matched_pool` of the names the prompts use, names left out): the control that
    separates "the gradients push up rare tokens" from "they push up names"."""
    base = _ioi_base(tokenizer, n, seed, NAMES, IOI_TEMPLATES, announce=False)
    name_ids = list(single_token_ids(tokenizer, base.words["name"], what="name").values())
    pool = frequency_matched_pool(counts, name_ids, exclude=set(name_ids))
    rng = random.Random(seed + 4)
    t = [rng.choice(pool) for _ in range(len(base))]
    return base.with_targets("ioi_rand_freq", t, [f"<{i}>" for i in t])


def ioi_name(tokenizer, n: int = 1000, seed: int = 0) -> PromptDataset:
    """IOI prompts, target a random name other than [A] and [B], from the names the prompts use."""
    base = _ioi_base(tokenizer, n, seed, NAMES, IOI_TEMPLATES, announce=False)
    names = base.words["name"]
    ids = single_token_ids(tokenizer, names, what="name")
    rng = random.Random(seed + 2)
    picks = [rng.choice([m for m in names if m not in (a, b)]) for a, b in zip(base.meta.a, base.meta.b)]
    return base.with_targets("ioi_name", [ids[p] for p in picks], picks)


def ioi_copy(tokenizer, n: int = 1000, seed: int = 0) -> PromptDataset:
    """IOI prompts, target [B] (the repeated name, the subject)."""
    base = _ioi_base(tokenizer, n, seed, NAMES, IOI_TEMPLATES, announce=False)
    return base.with_targets("ioi_copy", base.meta.b_id.tolist(), base.meta.b.tolist())


# ---------------------------------------------------------------- GT
def _gt_base(tokenizer, n: int, seed: int, announce: bool = False):
    """``(prompts, meta, digit_ids, rng, record)``: the GT prompts, the ids of "00".."99" after a
    century, the generator to draw targets from, and ``dict(words=..., left_out=...)``."""
    _, words, left_out = _slot_words(tokenizer, "gt", {"event": EVENTS}, announce)
    events = words["event"]
    # Two-digit numbers follow the century with no space ("17" "32").
    digit_ids = single_token_ids(tokenizer, TWO_DIGITS, prefix=" 17", what="two-digit number")
    century_ids = single_token_ids(tokenizer, [str(c) for c in CENTURIES], what="century")
    rng = random.Random(seed)
    prompts, rows = [], []
    for _ in range(n):
        event, century, yy = rng.choice(events), rng.choice(CENTURIES), rng.randint(2, 98)
        text = _fill(GT_TEMPLATE, {"EVENT": event, "C": str(century), "YY": f"{yy:02d}"})
        prompts.append(_encode(tokenizer, text))
        rows.append(dict(text=text, template=0, event=event, century=century, yy=yy))
    del century_ids
    return prompts, pd.DataFrame(rows), digit_ids, rng, dict(words=words, left_out=left_out)


def gt(tokenizer, n: int = 1000, seed: int = 0) -> PromptDataset:
    """GT prompts, target one two-digit ``ZZ > YY`` drawn per example."""
    prompts, meta, digit, rng, record = _gt_base(tokenizer, n, seed, announce=True)
    zz = [rng.randint(y + 1, 99) for y in meta.yy]
    meta["target"] = [f"{z:02d}" for z in zz]
    return PromptDataset("gt", prompts, torch.tensor([digit[f"{z:02d}"] for z in zz]), meta, **record)


def gt_year(tokenizer, n: int = 1000, seed: int = 0) -> PromptDataset:
    """GT prompts, target a uniformly random two-digit token (00-99)."""
    prompts, meta, digit, rng, record = _gt_base(tokenizer, n, seed)
    zz = [rng.randint(0, 99) for _ in meta.yy]
    meta["target"] = [f"{z:02d}" for z in zz]
    return PromptDataset("gt_year", prompts, torch.tensor([digit[f"{z:02d}"] for z in zz]), meta, **record)


def gt_less(tokenizer, n: int = 1000, seed: int = 0) -> PromptDataset:
    """GT prompts, target a two-digit ``ZZ < YY`` (YY >= 02, so one exists)."""
    prompts, meta, digit, rng, record = _gt_base(tokenizer, n, seed)
    zz = [rng.randint(0, y - 1) for y in meta.yy]
    meta["target"] = [f"{z:02d}" for z in zz]
    return PromptDataset("gt_less", prompts, torch.tensor([digit[f"{z:02d}"] for z in zz]), meta, **record)


def gt_copy(tokenizer, n: int = 1000, seed: int = 0) -> PromptDataset:
    """GT prompts, target ``YY`` itself."""
    prompts, meta, digit, _, record = _gt_base(tokenizer, n, seed)
    meta["target"] = [f"{y:02d}" for y in meta.yy]
    return PromptDataset("gt_copy", prompts, torch.tensor([digit[f"{y:02d}"] for y in meta.yy]), meta, **record)


def two_digit_ids(tokenizer) -> Tensor:
    """(100,) token ids of "00".."99" as they follow a century (for the GT probability difference)."""
    ids = single_token_ids(tokenizer, TWO_DIGITS, prefix=" 17", what="two-digit number")
    return torch.tensor([ids[d] for d in TWO_DIGITS])


# ---------------------------------------------------------------- OML
def _oml_base(tokenizer, n: int | None, seed: int, announce: bool = False):
    """``(prompts, meta, month_ids, record)``: every kept event x every month (or a seeded subset
    of ``n``), the month ids, and ``dict(words=..., left_out=...)``."""
    month_ids = single_token_ids(tokenizer, MONTHS, what="month")
    _, words, left_out = _slot_words(tokenizer, "oml", {"event": EVENTS}, announce)
    prompts, rows = [], []
    for event in words["event"]:
        for m, month in enumerate(MONTHS):
            text = _fill(OML_TEMPLATE, {"EVENT": event, "M": month})
            prompts.append(_encode(tokenizer, text))
            rows.append(dict(text=text, template=0, event=event, month=m))
    meta = pd.DataFrame(rows)
    if n is not None and n < len(prompts):  # a seeded subset, for small profiles
        keep = sorted(random.Random(seed).sample(range(len(prompts)), n))
        prompts, meta = [prompts[i] for i in keep], meta.iloc[keep].reset_index(drop=True)
    return prompts, meta, month_ids, dict(words=words, left_out=left_out)


def oml(tokenizer, n: int | None = None, seed: int = 0) -> PromptDataset:
    """OML prompts (all events x 12 months by default: 34 x 12 = 408 when every event is kept),
    target the month after [M] (December -> January)."""
    prompts, meta, ids, record = _oml_base(tokenizer, n, seed, announce=True)
    nxt = [MONTHS[(m + 1) % 12] for m in meta.month]
    meta["target"] = nxt
    return PromptDataset("oml", prompts, torch.tensor([ids[x] for x in nxt]), meta, **record)


def oml_month(tokenizer, n: int | None = None, seed: int = 0) -> PromptDataset:
    """OML prompts, target a uniformly random month."""
    prompts, meta, ids, record = _oml_base(tokenizer, n, seed)
    rng = random.Random(seed + 3)
    pick = [rng.choice(MONTHS) for _ in meta.month]
    meta["target"] = pick
    return PromptDataset("oml_month", prompts, torch.tensor([ids[x] for x in pick]), meta, **record)


def oml_copy(tokenizer, n: int | None = None, seed: int = 0) -> PromptDataset:
    """OML prompts, target [M] itself."""
    prompts, meta, ids, record = _oml_base(tokenizer, n, seed)
    same = [MONTHS[m] for m in meta.month]
    meta["target"] = same
    return PromptDataset("oml_copy", prompts, torch.tensor([ids[x] for x in same]), meta, **record)


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
