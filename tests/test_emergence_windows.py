"""Emergence windows (10%-90% of a rise) and the checkpoints measured inside them."""
import numpy as np
import pandas as pd
import pytest

from gradtools.emergence_windows import capability_windows, rise_window, windowed_steps


def curve(steps, values):
    return pd.DataFrame({"step": steps, "value": values})


def test_window_of_a_logistic_rise():
    steps = np.arange(0, 12001, 250)
    values = 1 / (1 + np.exp(-(steps - 6500) / 300.0))  # 0 -> 1 around step 6500
    start, end = rise_window(curve(steps, values))
    # 10% and 90% of a logistic: centre -/+ 300 ln 9 = 6500 -/+ 659, on the 250-step grid
    assert start == 6000 and end == 7250


def test_window_starts_after_a_dip_and_ignores_a_noisy_last_point():
    steps = np.arange(0, 10001, 500)
    values = np.interp(steps, [0, 3000, 5000, 7000, 10000], [0.0, -1.0, -1.0, 3.0, 3.0])
    values[-1] = 0.0  # one bad last checkpoint: the end level is the mean over the last 1000 steps
    start, end = rise_window(curve(steps, values))
    assert (start, end) == (5500, 6500)  # from -1 (the dip) to the end level 2.0: 10% is -0.7, 90% 1.7


def test_no_rise_and_falling_curves():
    steps = np.arange(0, 5001, 500)
    assert rise_window(curve(steps, 5 - steps / 1000)) is None  # only falls
    # falls 5 -> 0; end level 0.5 (mean of steps 4000-5000): 10% of the fall at 4.55 (step 500), 90% at 0.95 (4500)
    assert rise_window(curve(steps, 5 - steps / 1000), falling=True) == (500, 4500)
    noise = 0.01 * np.sin(steps)  # a size that never learns: its "rise" is noise
    assert rise_window(curve(steps, noise)) is not None and rise_window(curve(steps, noise), min_rise=0.5) is None
    with pytest.raises(ValueError, match="lo < hi"):
        rise_window(curve(steps, steps), lo=0.9, hi=0.1)


def test_windowed_steps_keep_every_step_inside_and_log_spaced_outside():
    available = list(range(0, 12001, 250))
    chosen = windowed_steps(available, [(6000, 7250)], log_spaced=10)
    assert set(range(6000, 7251, 250)) <= set(chosen)
    assert 0 in chosen and 12000 in chosen and len(chosen) <= 6 + 10


def test_capability_windows_per_size():
    steps = np.arange(0, 12001, 250)
    rise = 1 / (1 + np.exp(-(steps - 6500) / 300.0))
    learns = pd.DataFrame({"size": "big", "step": steps, "ioi_margin": 3 * rise, "gt_prob_diff": 0.6 * rise,
                           "oml_accuracy": 0.05 + 0 * steps})
    flat = learns.assign(size="small", ioi_margin=0.01 * np.sin(steps))
    table = capability_windows(pd.concat([learns, flat]))
    assert table[["size", "capability", "start", "end"]].values.tolist() == [
        ["big", "ioi", 6000, 7250], ["big", "gt", 6000, 7250], ["small", "gt", 6000, 7250]]


def test_dense_selection_is_per_size_and_counts_its_windows():
    from gradtools.emergence_windows import dense_selection, window_counts
    available = {"a": list(range(0, 8001, 50)), "b": list(range(0, 8001, 50))}
    windows = pd.DataFrame([dict(size="a", capability="ioi", metric="ioi_margin", start=3000, end=3500),
                            dict(size="a", capability="gt", metric="gt_prob_diff", start=6000, end=6100)])
    chosen = dense_selection(available, windows, log_spaced=5)
    assert set(range(3000, 3501, 50)) | {6000, 6050, 6100} <= set(chosen["a"])
    assert not set(range(3050, 3500, 50)) & set(chosen["b"])  # b has no window: log-spaced only
    assert len(chosen["b"]) == 5 and chosen["b"][0] == 0 and chosen["b"][-1] == 8000
    assert window_counts(windows, chosen).checkpoints.tolist() == [11, 3]


def test_select_in_windows_on_a_suite_folder(tmp_path):
    """A suite with a capability table: the IOI window's every checkpoint, log-spaced ones elsewhere."""
    from gradtools.checkpoint_sources import open_source
    from gradtools.emergence_windows import select_in_windows
    from gradtools.lm import tiny_causal_lm
    from gradtools.lm_training import save_checkpoint
    from gradtools.word_tokenizer import train_word_tokenizer

    steps = list(range(0, 2001, 100))
    for step in steps:
        save_checkpoint(tiny_causal_lm(400, d_model=8, n_layers=1, n_heads=2, context=8, seed=0), tmp_path / "s", step)
    train_word_tokenizer(["a b c"], vocab_size=400).save(str(tmp_path / "tokenizer.json"))
    rise = 1 / (1 + np.exp(-(np.array(steps) - 1000) / 100.0))
    metrics = {"ioi_loss": 5 - 3 * rise, "ioi_name_loss": 5 + 0 * rise, "gt_prob_diff": 0 * rise,
               "oml_accuracy": 0 * rise, "ioi_rank_accuracy": rise}
    caps = pd.DataFrame([dict(size="s", step=s, metric=m, value=float(v[i]))
                         for m, v in metrics.items() for i, s in enumerate(steps)])
    src, table = select_in_windows(open_source(tmp_path), caps, log_spaced=4)
    assert table[["capability", "start", "end", "checkpoints"]].values.tolist() == [["ioi", 800, 1200, 5]]
    assert set(range(800, 1201, 100)) <= set(src.steps("s")) and len(src.steps("s")) <= 5 + 4
    with pytest.raises(ValueError, match="rerun notebook 00"):
        select_in_windows(open_source(tmp_path), caps.assign(size="other"), log_spaced=4)
