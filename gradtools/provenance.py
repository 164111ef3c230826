"""What produced a profile's tables: versions, lock, CPU kernels, threads (``data/run_environment.json``).

Training amplifies differences in the last bits of float32 arithmetic (measured: one
thread vs two changes a GPT-NeoX gradient by ~3e-8 relative; 12000 steps later a
capability may or may not have emerged). Those bits depend on the package versions, the
thread count and the CPU's vector kernels (``torch.backends.cpu.get_cpu_capability``:
AVX2 vs AVX512 take other code paths), so each run records them beside its tables, and
the drift check can be read against them.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
from importlib import metadata
from pathlib import Path

from .cache import atomic_write
from .lockfile import LOCK
from .paths import data_dir

PINNED = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR", "PYTHONHASHSEED", "OMP_NUM_THREADS")
PACKAGES = ("torch", "numpy", "pandas", "transformers", "tokenizers", "scipy", "hdbscan", "scikit-learn", "spacy")


def cpu_model() -> str:
    """The CPU's model name (Linux), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def run_environment() -> dict:
    """Versions, the lock's hash, the CPU and the kernels torch picks on it."""
    import torch

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    lock = Path(LOCK)
    return dict(
        python=platform.python_version(), packages=versions,
        lock_sha256=hashlib.sha256(lock.read_bytes()).hexdigest() if lock.exists() else None,
        cpu=cpu_model(), cpu_capability=torch.backends.cpu.get_cpu_capability(),
        torch_threads=torch.get_num_threads(), cuda=torch.version.cuda if torch.cuda.is_available() else None,
        pinned=sorted(f"{k}={os.environ[k]}" for k in PINNED if k in os.environ),
    )


def write_run_environment(profile: str = "default", started: float | None = None) -> Path:
    """Write :func:`run_environment` (and when the run started, epoch seconds) to
    ``data/[profile/]run_environment.json``."""
    text = json.dumps(dict(run_environment(), run_started=started), indent=1, sort_keys=True) + "\n"
    return atomic_write(data_dir(profile) / "run_environment.json", lambda tmp: tmp.write_text(text))


def run_started(profile: str = "default") -> float | None:
    """When the last run that wrote this profile's tables started (None if unknown)."""
    path = data_dir(profile) / "run_environment.json"
    return json.loads(path.read_text()).get("run_started") if path.exists() else None
