"""The locked environment: ``requirements.lock`` pins every package to one version.

Why a pip requirements lock (not ``uv.lock`` or ``pylock.toml``): it is written
by pip's own resolver from ``pyproject.toml`` in a fresh venv (``make lock``),
so it honours this machine's pip configuration (the local CPU ``torch`` wheel
found through ``find-links``), and ``pip install --no-deps -r requirements.lock``
installs exactly it with the pip every user has, nothing resolved at install
time. The lock pins ``torch`` without its local build label (``2.13.0``, not
``2.13.0+cpu``), so a CUDA build of the same version, installed first through
``TORCH_PIP_ARGS``, satisfies it.

    python -m gradtools.lockfile write requirements.lock       # from the running venv (make lock)
    python -m gradtools.lockfile environment environment.yml   # conda file from pyproject + lock
    python -m gradtools.lockfile check requirements.lock       # the running venv against the lock
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .paths import PACKAGE_ROOT

LOCK = PACKAGE_ROOT / "requirements.lock"
PYPROJECT = PACKAGE_ROOT / "pyproject.toml"
ENVIRONMENT = PACKAGE_ROOT / "environment.yml"
# installed with --no-deps for benchmarks/curvature.py: curvlinops' torchvision requirement would pull a CUDA torch
BENCHMARK_PEERS = ["curvlinops-for-pytorch", "backpack-for-pytorch", "einconv", "linear_operator", "einops",
                   "opt-einsum", "jaxtyping", "mpmath"]
# the reference OLMo model code (tests of gradtools.olmo_checkpoints) and what `import olmo.model` needs;
# --no-deps: ai2-olmo pins numpy<2 and cached_path pins huggingface-hub<2, rich<14, filelock<4 (all
# needless at import; the reference runs on the locked numpy 2 and huggingface-hub 2)
OLMO_REFERENCE = ["ai2-olmo", "omegaconf", "antlr4-python3-runtime", "cached_path", "boto3", "botocore",
                  "s3transfer", "jmespath", "google-cloud-storage", "google-api-core", "google-auth",
                  "google-cloud-core", "google-crc32c", "google-resumable-media", "googleapis-common-protos",
                  "proto-plus", "protobuf", "pyasn1", "pyasn1-modules", "importlib-resources", "cryptography"]
NO_DEPS_PEERS = BENCHMARK_PEERS + OLMO_REFERENCE
HEADER = """\
# Every package of the gradtools environment, pinned (Python 3.11, Linux x86-64).
# Installed by `make setup` with `pip install --no-deps -r requirements.lock` after torch.
# Refresh (resolves pyproject.toml afresh in a throw-away venv): make lock
# torch is pinned without its build label, so a CUDA build of the same version satisfies it.
"""
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


def public_version(version: str) -> str:
    """``2.13.0+cpu`` -> ``2.13.0``: the version without its local build label."""
    return version.split("+", 1)[0]


def parse_pins(lines: list[str]) -> dict[str, str]:
    """``{canonical name: version}`` from ``name==version`` lines (comments and editables skipped)."""
    pins = {}
    for line in lines:
        match = _PIN.match(line.strip())
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def read_lock(path: str | Path = LOCK) -> dict[str, str]:
    """The pins of a lock file."""
    return parse_pins(Path(path).read_text(encoding="utf-8").splitlines())


def installed(python: str = sys.executable) -> dict[str, str]:
    """``pip freeze --all`` of an interpreter's environment (the project itself, editable, excluded)."""
    out = subprocess.run([python, "-m", "pip", "freeze", "--all", "--exclude-editable"],
                         capture_output=True, text=True, check=True).stdout
    return parse_pins(out.splitlines())


def torch_build_requirements(pins: dict[str, str], python: str = sys.executable) -> set[str]:
    """Packages the installed torch build requires that the lock does not list (a CUDA build's
    nvidia-* and triton wheels, installed by ``TORCH_PIP_ARGS``); empty for the locked CPU build."""
    code = "import importlib.metadata as m, json; print(json.dumps(m.requires('torch') or []))"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout
    required = [Requirement(r) for r in json.loads(out)]
    # optional extras of torch (e.g. optree) are not requirements of the build
    names = {canonicalize_name(r.name) for r in required if r.marker is None or r.marker.evaluate({"extra": ""})}
    return names - set(pins)


def lock_text(pins: dict[str, str]) -> str:
    """The lock file's text: header, then ``name==version`` sorted, torch without its build label."""
    body = [f"{name}=={public_version(v) if name == 'torch' else v}" for name, v in sorted(pins.items())]
    return HEADER + "\n".join(body) + "\n"


def direct_requirements(pyproject: str | Path = PYPROJECT) -> list[Requirement]:
    """The packages pyproject.toml asks for: dependencies and every optional group."""
    project = tomllib.loads(Path(pyproject).read_text(encoding="utf-8"))["project"]
    names = list(project["dependencies"])
    for group in project.get("optional-dependencies", {}).values():
        names += group
    return [Requirement(r) for r in names]


def mismatches(pins: dict[str, str], other: dict[str, str], ignore_local: tuple[str, ...] = ("torch",)) -> list[str]:
    """``name: lock X, other Y`` for every package of ``other`` whose version differs from the lock,
    or that the lock lacks (``ignore_local``: compare those without their build label)."""
    def plain(name, version):
        return public_version(version) if name in ignore_local else version

    out = []
    for name, version in sorted(other.items()):
        want = pins.get(name)
        if want is None:
            out.append(f"{name}: not in the lock, installed {version}")
        elif plain(name, want) != plain(name, version):
            out.append(f"{name}: lock {want}, installed {version}")
    return out


def pyproject_violations(pins: dict[str, str], requirements: list[Requirement]) -> list[str]:
    """Requirements of pyproject.toml that the lock lacks or pins to a version outside their specifier."""
    out = []
    for req in requirements:
        version = pins.get(canonicalize_name(req.name))
        if version is None:
            out.append(f"{req.name}: required by pyproject.toml, not in the lock")
        elif not req.specifier.contains(public_version(version), prereleases=True):
            out.append(f"{req.name}: lock has {version}, pyproject.toml asks {req.specifier}")
    return out


def environment_yml(requirements: list[Requirement], pins: dict[str, str]) -> str:
    """environment.yml for conda users: pyproject's packages at the lock's versions."""
    lines = ["# For conda users: pyproject.toml's packages at requirements.lock's versions.",
             "# Generated by `make lock` (python -m gradtools.lockfile environment); do not edit by hand.",
             "# The full lock (every dependency pinned) is requirements.lock: `make setup` installs it.",
             "name: gradtools", "channels:", "  - conda-forge", "dependencies:", "  - python=3.11", "  - pip",
             "  - pip:"]
    lines += [f"      - {req.name}=={pins[canonicalize_name(req.name)]}" for req in requirements]
    lines += ["      - -e .", "# then, for benchmarks/curvature.py (curvlinops' torchvision requirement would pull a CUDA torch):",
              "#   pip install --no-deps " + " ".join(f"{p}=={pins.get(canonicalize_name(p), '?')}" for p in BENCHMARK_PEERS),
              "# and, for the tests of the OLMo checkpoint loader (the reference model code):",
              "#   pip install --no-deps " + " ".join(f"{p}=={pins.get(canonicalize_name(p), '?')}" for p in OLMO_REFERENCE)]
    return "\n".join(lines) + "\n"


def environment_pins(path: str | Path = ENVIRONMENT) -> dict[str, str]:
    """The ``name==version`` entries of environment.yml's pip section."""
    return parse_pins([line.strip().lstrip("- ") for line in Path(path).read_text(encoding="utf-8").splitlines()
                       if not line.lstrip().startswith("#")])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] not in ("write", "environment", "check"):
        print(__doc__, file=sys.stderr)
        return 2
    command, target = argv
    if command == "write":
        Path(target).write_text(lock_text(installed()), encoding="utf-8")
    elif command == "environment":
        Path(target).write_text(environment_yml(direct_requirements(), read_lock()), encoding="utf-8")
    else:
        pins = read_lock(target)
        extra = torch_build_requirements(pins)
        problems = mismatches(pins, {k: v for k, v in installed().items() if k not in extra})
        print("\n".join(problems) or f"the environment equals {target}")
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
