"""Prompt datasets of study 1: targets and controls are what they claim, single-token checks fire."""
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers

from gradtools import prompt_datasets as pdata
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
