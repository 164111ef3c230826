"""Addition data and labels against schoolbook arithmetic; the LM training loop's checkpoints and resume."""
import pytest
import torch
import torch.nn.functional as F

from gradtools import addition as A
from gradtools.lm import tiny_causal_lm
from gradtools.lm_training import checkpoint_params, load_checkpoint, saved_steps, train_causal_lm


def schoolbook_carries(a, b):
    """Carry into (thousands, hundreds, tens, ones), column by column on the decimal strings."""
    x, y, carry, out = f"{a:03d}", f"{b:03d}", 0, []
    for i in (2, 1, 0):
        out.append(bool(carry))
        carry = (int(x[i]) + int(y[i]) + carry) // 10
    out.append(bool(carry))
    return out[::-1]  # [thousands, hundreds, tens, ones]


def test_encode_decode_and_carries():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randint(0, 1000, (300,), generator=g), torch.randint(0, 1000, (300,), generator=g)
    a[:3], b[:3] = torch.tensor([999, 0, 505]), torch.tensor([999, 0, 495])
    batch = A.encode(a, b)
    assert batch["input_ids"].shape == (300, A.SEQ_LEN)
    assert A.decode(batch["input_ids"]) == [f"{x:03d}+{y:03d}={x + y:04d}" for x, y in zip(a.tolist(), b.tolist())]
    assert (batch["labels"][:, :9] == -100).all()
    assert (batch["labels"][:, 9:] == batch["input_ids"][:, 9:]).all()
    expected = torch.tensor([schoolbook_carries(x, y) for x, y in zip(a.tolist(), b.tolist())])
    assert (A.carries(a, b) == expected).all()
    assert A.carries(a, b)[:, 1:3].any(0).all() and not A.carries(a, b)[:, 1:3].all()  # both values occur


def test_token_labels():
    a, b = torch.tensor([999, 123, 55]), torch.tensor([1, 456, 45])
    labels = A.token_labels(a, b)
    assert len(labels) == 12 and list(labels.digit[:4]) == list(A.DIGITS)
    assert list(labels.carry) == [True, True, True, False, False, False, False, False, False, True, True, False]
    assert list(labels.target) == [1, 0, 0, 0, 0, 5, 7, 9, 0, 1, 0, 0]
    assert labels.digit_carry[0] == "thousands/carry" and labels.digit_carry[3] == "ones/no carry"


def test_split_and_training_batches():
    split = A.split_problems(200, 100, seed=3)
    val = set((split["validation"][0] * 1000 + split["validation"][1]).tolist())
    train = set((split["train_sample"][0] * 1000 + split["train_sample"][1]).tolist())
    assert len(val) == 200 and len(train) == 100 and not val & train
    one, again = A.training_batch(7, 4000, exclude=split["validation"]), A.training_batch(7, 4000, exclude=split["validation"])
    assert torch.equal(one["input_ids"], again["input_ids"])
    assert not torch.equal(one["input_ids"], A.training_batch(8, 4000)["input_ids"])
    keys = {s[:3] + s[4:7] for s in A.decode(one["input_ids"])}
    assert not keys & {f"{k // 1000:03d}{k % 1000:03d}" for k in val}


def test_answer_token_losses_match_cross_entropy():
    model = tiny_causal_lm(A.VOCAB_SIZE, d_model=8, n_layers=1, n_heads=2, context=16, dtype=torch.float64)
    batch = A.encode(torch.tensor([12, 980, 499]), torch.tensor([34, 77, 501]))
    logits = model(input_ids=batch["input_ids"]).logits
    ids = batch["input_ids"]
    ref = torch.stack([F.cross_entropy(logits[:, p - 1], ids[:, p], reduction="none") for p in range(9, 13)], dim=1)
    got = A.answer_token_losses(model, batch)
    assert got.shape == (3, 4) and (got - ref).abs().max() < 1e-12
    assert torch.allclose(A.mean_answer_loss(model, batch), ref.mean())
    assert (A.answer_accuracy(model, batch) == (logits[:, 8:12].argmax(-1) == ids[:, 9:])).all()


class Interrupt(Exception):
    pass


def test_training_checkpoints_and_resume(tmp_path):
    def run(out, fail_at=None):
        model = tiny_causal_lm(A.VOCAB_SIZE, d_model=8, n_layers=1, n_heads=2, context=16)

        def batches(step):
            if step == fail_at:
                raise Interrupt
            return A.training_batch(step, 16)
        log = train_causal_lm(model, batches, A.mean_answer_loss, steps=7, checkpoint_steps=[0, 3, 5, 7],
                              out_dir=out, lr=1e-2, warmup_steps=2, resume_every=2, progress=False)
        return model, log

    model, log = run(tmp_path / "whole")
    assert saved_steps(tmp_path / "whole") == [0, 3, 5, 7] and list(log.step) == list(range(1, 8))
    assert log.lr.iloc[0] == pytest.approx(5e-3) and log.lr.iloc[-1] == pytest.approx(1e-2)
    names = [n for n, _ in model.named_parameters()]
    final = checkpoint_params(tmp_path / "whole", 7)
    assert list(final) == names
    assert all(torch.equal(final[n], p) for n, p in model.named_parameters())
    assert not torch.equal(checkpoint_params(tmp_path / "whole", 0)[names[0]], final[names[0]])
    assert torch.equal(load_checkpoint(tmp_path / "whole", 7).state_dict()[names[-1]], final[names[-1]])

    with pytest.raises(Interrupt):
        run(tmp_path / "cut", fail_at=5)
    assert saved_steps(tmp_path / "cut") == [0, 3, 5]
    resumed, log2 = run(tmp_path / "cut")
    assert list(log2.step) == list(range(1, 8)) and torch.allclose(torch.tensor(log2.loss), torch.tensor(log.loss))
    assert all(torch.equal(p, q) for p, q in zip(resumed.parameters(), model.parameters()))
    again, _ = run(tmp_path / "cut")  # a complete run is not retrained
    assert all(torch.equal(p, q) for p, q in zip(again.parameters(), model.parameters()))
