"""Profiles, atomic caching, the LM loader, and the packaging files agreeing."""
import re
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import torch

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from gradtools import cache, lockfile, paths, profiles
from gradtools.lm import load_causal_lm, sequence_losses, tiny_causal_lm, token_losses

ROOT = Path(__file__).resolve().parents[1]

SETTINGS = {"smoke": {"n": 1}, "default": {"n": 2}, "paper": {"n": 3}}


def test_select_profile_and_overrides():
    assert profiles.select("default", SETTINGS).n == 2
    assert profiles.select("paper", SETTINGS, n=None).n == 3
    assert profiles.select("smoke", SETTINGS, n=7).n == 7


def test_unknown_profile_and_keys_are_errors():
    with pytest.raises(ValueError, match="unknown profile 'big'.*smoke, default, paper"):
        profiles.select("big", SETTINGS)
    with pytest.raises(ValueError, match="unknown setting"):
        profiles.select("smoke", SETTINGS, m=1)
    with pytest.raises(ValueError, match="expected"):
        profiles.select("smoke", {**SETTINGS, "paper": {"k": 1}})


def test_profile_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADTOOLS_ROOT", str(tmp_path))
    assert paths.data_dir("default") == tmp_path / "data"
    assert paths.figures_dir("smoke") == tmp_path / "figures" / "smoke"
    assert paths.cache_dir("paper").is_dir()
    # the paper profile's per-job tables are committed (under data/, not the ignored cache); the others' are cached
    assert paths.job_tables_dir("paper") == tmp_path / "data" / "paper" / "jobs"
    assert paths.job_tables_dir("default") == paths.cache_dir("default")


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "t.parquet"
    cache.save_table(pd.DataFrame({"a": [1]}), target)

    def broken(tmp):
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.atomic_write(target, broken)
    assert pd.read_parquet(target)["a"].tolist() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]


def test_cached_table_computes_once(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return pd.DataFrame({"a": [len(calls)]})

    assert cache.cached_table(tmp_path / "x.parquet", compute)["a"].tolist() == [1]
    assert cache.cached_table(tmp_path / "x.parquet", compute)["a"].tolist() == [1]
    assert len(calls) == 1


def test_saved_tiny_lm_loads_back(tmp_path):
    model = tiny_causal_lm(19, d_model=8, n_layers=1, n_heads=2, context=8)
    model.save_pretrained(tmp_path / "ckpt")
    loaded = load_causal_lm(tmp_path / "ckpt")
    ids = torch.randint(0, 19, (3, 8))
    batch = {"input_ids": ids, "labels": ids}
    assert torch.allclose(sequence_losses(model, batch), sequence_losses(loaded, batch))


def test_hub_revisions_load_offline_from_a_local_cache(tmp_path):
    """The hub path (name + revision) on a cache laid out as huggingface_hub writes it."""
    repo = tmp_path / "models--org--tiny"
    ids = torch.randint(0, 19, (2, 8))
    expected = {}
    for seed, revision in enumerate(["step1", "step512"]):
        model = tiny_causal_lm(19, d_model=8, n_layers=1, n_heads=2, context=8, seed=seed)
        commit = f"{seed:040x}"
        model.save_pretrained(repo / "snapshots" / commit)
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / revision).write_text(commit)
        expected[revision] = sequence_losses(model, {"input_ids": ids, "labels": ids})
    for revision, losses in expected.items():
        loaded = load_causal_lm("org/tiny", revision=revision, cache_dir=tmp_path)
        assert torch.allclose(sequence_losses(loaded, {"input_ids": ids, "labels": ids}), losses)
    assert not torch.allclose(expected["step1"], expected["step512"])


def test_missing_checkpoint_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint folder"):
        load_causal_lm(tmp_path / "nothing")


def test_token_losses_are_next_token_cross_entropy():
    model = tiny_causal_lm(11, d_model=8, n_layers=1, n_heads=2, context=8, dtype=torch.float64)
    ids = torch.randint(0, 11, (2, 5))
    labels = ids.clone()
    labels[:, :3] = -100
    losses = token_losses(model, {"input_ids": ids, "labels": labels})
    logp = model(input_ids=ids).logits.log_softmax(-1)
    expected = -logp[:, 2:4].gather(-1, ids[:, 3:5, None]).squeeze(-1)
    assert torch.allclose(losses[:, 2:], expected) and (losses[:, :2] == 0).all()


def test_lock_pyproject_and_environment_yml_agree():
    """Every requirement of pyproject.toml is locked at a version it allows; environment.yml lists
    exactly pyproject's packages at the lock's versions; the benchmark peers are locked too."""
    pins = lockfile.read_lock(ROOT / "requirements.lock")
    requirements = lockfile.direct_requirements(ROOT / "pyproject.toml")
    assert lockfile.pyproject_violations(pins, requirements) == []
    env = lockfile.environment_pins(ROOT / "environment.yml")
    assert env == {canonicalize_name(r.name): pins[canonicalize_name(r.name)] for r in requirements}
    assert (ROOT / "environment.yml").read_text() == lockfile.environment_yml(requirements, pins)
    assert all(canonicalize_name(p) in pins for p in lockfile.NO_DEPS_PEERS)
    assert "+" not in pins["torch"], "torch is locked without its build label (a CUDA build must satisfy it)"


def test_installed_environment_equals_the_lock():
    """`pip freeze` of the running venv: every package in it at the lock's version (torch's build label
    aside, and on a CUDA machine the nvidia/triton wheels that torch's CUDA build requires)."""
    pins = lockfile.read_lock(ROOT / "requirements.lock")
    extra = lockfile.torch_build_requirements(pins)
    assert all(name.startswith(("nvidia", "triton", "cuda")) for name in extra), extra
    installed = {k: v for k, v in lockfile.installed().items() if k not in extra}
    assert lockfile.mismatches(pins, installed) == []


def test_lock_helpers_catch_disagreement():
    pins = lockfile.parse_pins(["# comment", "torch==2.13.0", "numpy==2.0.0", "-e file:///x"])
    assert pins == {"torch": "2.13.0", "numpy": "2.0.0"}
    assert lockfile.mismatches(pins, {"torch": "2.13.0+cu128", "numpy": "2.0.0"}) == []
    assert lockfile.mismatches(pins, {"numpy": "2.1.0", "rich": "1.0"}) == [
        "numpy: lock 2.0.0, installed 2.1.0", "rich: not in the lock, installed 1.0"]
    reqs = [Requirement("numpy<2"), Requirement("pandas")]
    assert lockfile.pyproject_violations(pins, reqs) == [
        "numpy: lock has 2.0.0, pyproject.toml asks <2", "pandas: required by pyproject.toml, not in the lock"]
    assert lockfile.parse_pins(lockfile.lock_text({"torch": "2.13.0+cpu"}).splitlines()) == {"torch": "2.13.0"}
