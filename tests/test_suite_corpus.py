"""The checkpoint suite's corpus and tokenizer: evaluation templates held out, task words single tokens."""
import re

import pytest

from gradtools import prompt_datasets as pdata
from gradtools import suite_corpus
from gradtools.checkpoint_suite import checkpoint_schedule, emergence_step, warmup_cosine
from gradtools.word_tokenizer import required_words, train_word_tokenizer


@pytest.fixture(scope="module")
def corpus():
    # Every story part appears many times in 20000 stories; plus a slice of the Wikipedia excerpt.
    return suite_corpus.stories(20_000, seed=0) + suite_corpus.wikipedia_paragraphs(max_chars=300_000)


def test_template_regex_matches_its_own_fillings_and_nothing_else():
    ds = pdata.ioi(train_word_tokenizer([""], 600), 30)
    for text, t, order in zip(ds.meta.text, ds.meta.template, ds.meta.order):
        template = pdata.IOI_TEMPLATES[t] if order == "BABA" else pdata.abba(pdata.IOI_TEMPLATES[t])
        assert pdata.template_regex(template).search("Some text. " + text + " more")
    assert pdata.template_regex(pdata.GT_TEMPLATE).search("The war lasted from the year 1732 to the year 17")
    assert not pdata.template_regex(pdata.GT_TEMPLATE).search("The war lasted from 1732 until 1756.")


def test_evaluation_templates_never_occur_in_the_training_corpus(corpus):
    text = "\n".join(corpus)
    for task, templates in pdata.EVALUATION_TEMPLATES.items():
        for template in templates + ([pdata.abba(t) for t in templates] if task == "ioi" else []):
            hit = pdata.template_regex(template).search(text)
            assert hit is None, f"{task} evaluation template {template!r} occurs in training: {hit.group(0)!r}"
    # and the check is able to fire: an evaluation prompt put into the corpus is found
    leaked = text + " Then, Mary and John went to the store. Mary gave a ring to John."
    assert pdata.template_regex(pdata.IOI_TEMPLATES[0]).search(leaked)


def test_ioi_stories_end_with_the_non_repeated_name_in_both_orders(corpus):
    orders = set()
    for s in suite_corpus.stories(400, seed=1, kinds={"ioi": 1.0}):
        names = [w for w in re.findall(r"\w+", s) if w in pdata.NAMES]
        io = names[-1]
        subject = next(n for n in names if n != io)
        # the subject is named twice before the end, the indirect object once
        assert names[:-1].count(subject) == 2 and names[:-1].count(io) == 1, s
        orders.add("ABBA" if names[0] == io else "BABA")
    assert orders == {"ABBA", "BABA"}  # no "second name mentioned" shortcut
    text = " ".join(corpus)
    assert re.search(r"1[0-9]\d\d", text) and all(m in text for m in pdata.MONTHS)


def test_word_tokenizer_keeps_task_words_whole_and_splits_years(corpus):
    tok = train_word_tokenizer(corpus, vocab_size=1024)
    assert tok.get_vocab_size() == 1024
    for w in required_words():
        assert tok.token_to_id(w) is not None, w
    for word in pdata.NAMES + pdata.PLACES + pdata.OBJECTS + pdata.EVENTS + pdata.MONTHS:
        assert tok.encode(f"the {word} .").tokens == ["the", word, "."]
    assert tok.encode("from 1732 to 1805").tokens == ["from", "17", "32", "to", "18", "05"]
    for d in pdata.TWO_DIGITS:
        assert tok.encode(f"17{d}").tokens == ["17", d]
    with pytest.raises(ValueError, match="required tokens"):
        train_word_tokenizer(corpus, vocab_size=100)


def test_schedule_and_learning_rate():
    s = checkpoint_schedule(1000, [(100, 300, 50)])
    assert s[:3] == [0, 1, 2] and 1000 in s and {100, 150, 200, 250, 300} <= set(s) and 512 in s
    f = warmup_cosine(1000, 0.05, 0.1)
    assert f(0) == pytest.approx(1 / 50) and f(49) == pytest.approx(1.0) and f(1000) == pytest.approx(0.1)
    assert f(525) == pytest.approx(0.55, abs=0.01)


def test_emergence_step_is_the_start_of_the_final_run_above_threshold():
    import pandas as pd
    curve = pd.DataFrame({"step": [0, 10, 20, 30, 40], "value": [0.0, 0.9, 0.1, 0.8, 0.9]})
    assert emergence_step(curve, 0.5) == 30
    assert emergence_step(curve.iloc[:3], 0.5) is None
    assert emergence_step(curve.assign(value=-curve.value), -0.5, above=False) == 30


def test_first_step_beyond_is_the_first_crossing_even_if_it_falls_back():
    import pandas as pd
    from gradtools.checkpoint_suite import first_step_beyond
    curve = pd.DataFrame({"step": [40, 0, 10, 20, 30], "value": [0.9, 0.0, 0.9, 0.1, 0.8]})  # unsorted on purpose
    assert first_step_beyond(curve, 0.5) == 10
    assert first_step_beyond(curve, 0.95) is None
    assert first_step_beyond(curve, 0.05, above=False) == 0
