"""Sharded work over 2 gloo processes equals the single-process result; reruns reuse finished shards."""
import datetime
import os

import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gradtools import gradient_gram
from gradtools.distributed import gram_blocks, my_share, run_jobs, sharded_gram
from tiny_models import SequenceMLP, squared_error

WORLD = 2


def _join(rank, init_file):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=60))


def _problem():
    torch.manual_seed(0)
    model = SequenceMLP().double()
    a = torch.randn(10, 4, 5, dtype=torch.float64), torch.randn(10, 4, 3, dtype=torch.float64)
    b = torch.randn(7, 3, 5, dtype=torch.float64), torch.randn(7, 3, 3, dtype=torch.float64)
    return model, a, b


def _gram_worker(rank, init_file, out):
    _join(rank, init_file)
    model, a, b = _problem()
    square = sharded_gram(model, squared_error, a, block_size=3, progress=False)
    cross = sharded_gram(model, squared_error, a, other=b, block_size=4, progress=False)
    if rank == 0:
        torch.save((square, cross), out)
    dist.destroy_process_group()


def test_sharded_gram_equals_single_process(tmp_path):
    out = tmp_path / "gram.pt"
    mp.spawn(_gram_worker, args=(str(tmp_path / "init"), str(out)), nprocs=WORLD)
    square, cross = torch.load(out, weights_only=False)
    model, a, b = _problem()
    ref = gradient_gram(model, squared_error, a, block_size=3)
    ref_cross = gradient_gram(model, squared_error, a, other=b, block_size=4)
    for got, want in ((square, ref), (cross, ref_cross)):
        assert torch.allclose(got.dot, want.dot, rtol=1e-12, atol=0)
        assert torch.allclose(got.sqnorm, want.sqnorm, rtol=1e-12, atol=0)
    assert torch.allclose(cross.other_sqnorm, ref_cross.other_sqnorm, rtol=1e-12, atol=0)
    assert square.other_sqnorm is None


def _table(job):
    step, dataset = job
    return pd.DataFrame({"step": [step], "dataset": [dataset], "value": [step * 10 + len(dataset)]})


def _jobs_worker(rank, init_file, cache, log_dir, fail_job):
    _join(rank, init_file)

    def compute(job):
        if list(job) == fail_job:
            raise RuntimeError("rank killed")
        with open(os.path.join(log_dir, f"rank{rank}.log"), "a") as f:
            f.write(f"{job}\n")
        return _table(job)

    table = run_jobs(JOBS, compute, cache, key=lambda j: f"{j[0]}_{j[1]}", progress=False)
    if rank == 0:
        table.to_parquet(os.path.join(log_dir, "table.parquet"))
    dist.destroy_process_group()


JOBS = [(step, ds) for step in (0, 1, 2, 4) for ds in ("ioi", "gt", "oml")]


def computed(log_dir):
    return sum(len(open(p).read().splitlines()) for p in log_dir.glob("rank*.log"))


def test_sharded_jobs_match_single_process_and_resume(tmp_path):
    cache, logs = tmp_path / "cache", tmp_path / "logs"
    logs.mkdir()
    # first run: rank 1 dies at its third job; what finished before stays cached
    failing = list(my_share(JOBS, 1, WORLD)[2])
    with pytest.raises(Exception, match="rank killed"):
        mp.spawn(_jobs_worker, args=(str(tmp_path / "init1"), str(cache), str(logs), failing), nprocs=WORLD)
    cached_before = len(list(cache.glob("*.parquet")))
    first_run = computed(logs)
    assert 2 <= cached_before == first_run < len(JOBS)
    mp.spawn(_jobs_worker, args=(str(tmp_path / "init2"), str(cache), str(logs), None), nprocs=WORLD)
    assert computed(logs) - first_run == len(JOBS) - cached_before  # only the missing jobs ran
    single = run_jobs(JOBS, _table, tmp_path / "single", key=lambda j: f"{j[0]}_{j[1]}", progress=False)
    pd.testing.assert_frame_equal(pd.read_parquet(logs / "table.parquet"), single)


def test_blocks_cover_the_matrix():
    square = gram_blocks(10, 3)
    assert len(square) == 4 * 5 // 2 and all(r[0] <= c[0] for r, c in square)
    assert len(gram_blocks(10, 4, m=7)) == 3 * 2
    assert sorted(my_share(list(range(7)), 0, 2) + my_share(list(range(7)), 1, 2)) == list(range(7))


def test_duplicate_job_names_are_an_error(tmp_path):
    with pytest.raises(ValueError, match="same name"):
        run_jobs([1, 2], _table, tmp_path, key=lambda j: "x")


def test_torchrun_command_line(tmp_path):
    """The README's launch line, with 2 gloo processes on CPU."""
    import subprocess
    import sys

    from gradtools.lm import sequence_losses, tiny_causal_lm

    model = tiny_causal_lm(17, d_model=8, n_layers=1, n_heads=2, context=6, dtype=torch.float64)
    model.save_pretrained(tmp_path / "ckpt")
    ids = torch.randint(0, 17, (6, 6))
    torch.save({"input_ids": ids, "labels": ids}, tmp_path / "batch.pt")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "gradtools.distributed", "gram", str(tmp_path / "ckpt"), str(tmp_path / "batch.pt"),
           str(tmp_path / "gram.pt"), "--block-size", "2"]
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    got = torch.load(tmp_path / "gram.pt", weights_only=False)
    loaded = gradient_gram(model.float(), sequence_losses, {"input_ids": ids, "labels": ids})
    assert torch.allclose(got.dot, loaded.dot, rtol=1e-5)


def _polca_problem():
    from gradtools.polca import random_orthonormal_basis

    torch.manual_seed(0)
    model = SequenceMLP().double()
    x, y = torch.randn(6, 2, 5, dtype=torch.float64), torch.randn(6, 2, 3, dtype=torch.float64)
    names = [n for n, _ in model.named_parameters()]
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    drift = {n: 0.01 * torch.randn_like(p) for n, p in base.items()}
    checkpoints = {s: {n: base[n] + s * drift[n] for n in names} for s in range(5)}

    def per_token(params):
        out = torch.func.functional_call(model, params, (x,))
        return (out - y).square().sum(-1).reshape(-1)

    dim = sum(p.numel() for p in base.values())
    bases = {"random": random_orthonormal_basis(dim, 2, seed=1, dtype=torch.float64)}
    return per_token, checkpoints.__getitem__, list(checkpoints), bases


def _polca_worker(rank, init_file, cache, out):
    from gradtools.polca import polca_over_training

    _join(rank, init_file)
    per_token, load, steps, bases = _polca_problem()
    result = polca_over_training(per_token, load, steps, bases, cache_dir=cache, part_size=1, progress=False)
    if rank == 0:
        torch.save(result, out)
    dist.destroy_process_group()


def test_polca_parts_sharded_over_ranks_equal_single_process(tmp_path):
    from gradtools.polca import polca_over_training

    out = tmp_path / "polca.pt"
    mp.spawn(_polca_worker, args=(str(tmp_path / "init"), str(tmp_path / "cache"), str(out)), nprocs=WORLD)
    got = torch.load(out, weights_only=False)
    per_token, load, steps, bases = _polca_problem()
    want = polca_over_training(per_token, load, steps, bases, progress=False)
    assert torch.equal(got["loss"], want["loss"])
    for name in ("random", "full_step"):
        for field in ("first", "second", "coef"):
            assert torch.allclose(getattr(got[name], field), getattr(want[name], field), rtol=1e-12, atol=0)
    assert len(list((tmp_path / "cache").glob("polca-*.pt"))) == len(steps) - 1
