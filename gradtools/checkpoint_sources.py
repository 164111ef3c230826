"""Where study 1 reads its checkpoints from: one ``source`` string -> an ordered list of checkpoints.

Sources (``open_source(source, profile)``):

* ``None`` or ``"suite"`` - the local checkpoint suite of the profile
  (:func:`gradtools.checkpoint_suite.suite_dir`): ``<suite>/<size>/step-NNNNNN/``,
  the word tokenizer at ``<suite>/tokenizer.json``, and the training streams
  (``streams.pt``) with each size's ``recipe.json``, from which the training
  batches that follow a checkpoint are re-drawn (for destructive interference).
* ``"hf:NAME"`` (several: ``"hf:NAME1,NAME2"``) - a Hugging Face causal LM with
  revisions ``stepN`` (Pythia's layout, e.g. ``hf:EleutherAI/pythia-14m``), read from
  the local hub cache (``$HF_HUB_CACHE`` or ``cache_dir``), nothing downloaded.
  The revisions are those whose ``refs/stepN`` exist there; the tokenizer is the
  model's own, at its last revision. The size is the model name.
* a folder - either of checkpoints ``<folder>/step-N/`` (one size, named after the
  folder) or of sizes ``<folder>/<size>/step-N/``; each checkpoint a
  ``save_pretrained`` folder. The tokenizer is ``<folder>/tokenizer.json`` (a
  ``tokenizers`` file) if present, else the ``transformers`` tokenizer saved in the
  checkpoints. With ``streams.pt`` and ``<size>/recipe.json`` beside it, it is read
  as a suite (training batches included).

Not supported: the ``mirandrom/zsl-checkpoints`` layout (``model.pt`` +
``config.yaml`` of an OLMo-style model). Loading it faithfully needs that
repository's model code (non-parametric layer norm, its attention and MLP
variants), which cannot be fetched or checked against the original here; a
folder of that layout is refused with a message rather than loaded approximately.

Every error about a missing folder, revision or tokenizer is raised by
:func:`open_source`, before any compute starts.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from .lm import load_causal_lm

STEP_DIR = re.compile(r"^step-?(\d+)$")
HUB_REVISION = re.compile(r"^step(\d+)$")


@dataclass(frozen=True)
class Checkpoint:
    """One model of a source: ``size`` (a name), ``step``, and where to load it from."""
    size: str
    step: int
    location: str                       # a folder, or a hub name
    revision: str | None = None         # hub revision (``stepN``), None for folders
    cache_dir: str | None = None        # hub cache folder, None: the default

    def load(self, dtype: torch.dtype = torch.float32) -> nn.Module:
        """The model in eval mode (``gradtools.lm.load_causal_lm``)."""
        return load_causal_lm(self.location, revision=self.revision, cache_dir=self.cache_dir, dtype=dtype)

    def fingerprint(self) -> str:
        """A short hash of what the checkpoint holds, so a cache never outlives a retrained checkpoint.

        Folders: names, sizes and modification times of its files; hub revisions: the
        commit that ``refs/<revision>`` points to.
        """
        if self.revision is None:
            files = sorted(p for p in Path(self.location).iterdir() if p.is_file())
            text = ";".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
        else:
            ref = hub_cache_dir(self.cache_dir) / f"models--{self.location.replace('/', '--')}" / "refs" / self.revision
            text = ref.read_text().strip() if ref.exists() else self.revision
        return hashlib.sha1(text.encode()).hexdigest()[:8]


@dataclass
class CheckpointSource:
    """Checkpoints ordered by (size as listed, step), the tokenizer, and optionally the training data.

    Attributes:
        name: the source string, as given.
        checkpoints: ordered list of :class:`Checkpoint`.
        tokenizer: a ``tokenizers.Tokenizer`` or a ``transformers`` tokenizer.
        training_batches: ``training_batches(size, step, n)`` -> the first ``n`` training
            sequences the model saw after ``step`` (``input_ids``, ``labels``,
            ``attention_mask``, each (n, context)), or None when the source has no
            training data; it returns None for a size whose training recipe is not
            written yet (a suite still training).
    """
    name: str
    checkpoints: list[Checkpoint]
    tokenizer: object
    training_batches: Callable[[str, int, int], dict[str, Tensor]] | None = None
    sizes: list[str] = field(default_factory=list)

    def __post_init__(self):
        if not self.sizes:
            self.sizes = list(dict.fromkeys(c.size for c in self.checkpoints))

    def steps(self, size: str) -> list[int]:
        return [c.step for c in self.checkpoints if c.size == size]

    def select(self, sizes: list[str] | None = None, max_per_size: int | None = None) -> "CheckpointSource":
        """A source with only ``sizes`` and at most ``max_per_size`` log-spaced steps per size."""
        if sizes is not None:
            unknown = [s for s in sizes if s not in self.sizes]
            if unknown:
                raise ValueError(f"source {self.name!r} has no size(s) {unknown}; it has {self.sizes}")
        keep_sizes = self.sizes if sizes is None else list(sizes)
        chosen = []
        for size in keep_sizes:
            steps = self.steps(size)
            keep = set(log_spaced_subset(steps, max_per_size)) if max_per_size else set(steps)
            chosen += [c for c in self.checkpoints if c.size == size and c.step in keep]
        return CheckpointSource(self.name, chosen, self.tokenizer, self.training_batches, keep_sizes)


def log_spaced_subset(steps: list[int], k: int) -> list[int]:
    """At most ``k`` of ``steps`` (ascending), spread evenly in ``log(1 + step)``; first and last kept
    (``k = 1``: the last)."""
    steps = sorted(steps)
    if len(steps) <= k:
        return steps
    if k == 1:
        return [steps[-1]]
    lo, hi = math.log1p(steps[0]), math.log1p(steps[-1])
    chosen = []
    for target in (lo + (hi - lo) * i / (k - 1) for i in range(k)):
        left = [s for s in steps if s not in chosen]
        chosen.append(min(left, key=lambda s: abs(math.log1p(s) - target)))
    return sorted(chosen)


# ---------------------------------------------------------------- folders

def _step_dirs(folder: Path) -> dict[int, Path]:
    out = {}
    for p in folder.iterdir() if folder.is_dir() else []:
        m = STEP_DIR.match(p.name)
        if m and p.is_dir() and (p / "config.json").exists():
            out[int(m.group(1))] = p
    return dict(sorted(out.items()))


def _refuse_zsl_layout(folder: Path) -> None:
    if any(folder.rglob("model.pt")) and any(folder.rglob("config.yaml")):
        raise ValueError(
            f"{folder} looks like the mirandrom/zsl-checkpoints layout (model.pt + config.yaml of an "
            "OLMo-style model); that layout is not supported: its model code cannot be verified here. "
            "Convert the checkpoints to `save_pretrained` folders (step-N/) of a transformers model first.")


def _folder_tokenizer(folder: Path, first_checkpoint: Path):
    if (folder / "tokenizer.json").exists() and not (folder / "tokenizer_config.json").exists():
        from tokenizers import Tokenizer
        return Tokenizer.from_file(str(folder / "tokenizer.json"))
    for candidate in (folder, first_checkpoint):
        if (candidate / "tokenizer_config.json").exists() or (candidate / "tokenizer.json").exists():
            from transformers import AutoTokenizer
            return AutoTokenizer.from_pretrained(str(candidate))
    raise FileNotFoundError(f"no tokenizer in {folder} or {first_checkpoint}: put a tokenizers "
                            "`tokenizer.json` in the folder, or save the transformers tokenizer with the checkpoints")


def _suite_training_batches(folder: Path) -> Callable[[str, int, int], dict[str, Tensor]] | None:
    """The training sequences after a checkpoint, re-drawn from the suite's streams and recipe."""
    if not (folder / "streams.pt").exists():
        return None
    streams: dict = {}

    def training_batches(size: str, step: int, n: int) -> dict[str, Tensor]:
        recipe_path = folder / size / "recipe.json"
        if not recipe_path.exists():  # written when a size's training ends: batches cannot be re-drawn yet
            return None
        from .suite_corpus import mixed_batch_fn
        recipe = json.loads(recipe_path.read_text())
        if not streams:
            streams.update(torch.load(folder / "streams.pt"))
        batch_fn = mixed_batch_fn(streams["stories"], streams["wiki"], story_fraction=recipe["story_fraction"],
                                  batch_size=recipe["batch_size"], context=recipe["context"], seed=recipe["seed"])
        # The model at `step` (after `step` updates) next trains on batch_fn(step), batch_fn(step + 1), ...
        rows, s = [], step
        while sum(len(r["input_ids"]) for r in rows) < n:
            rows.append(batch_fn(s))
            s += 1
        ids = torch.cat([r["input_ids"] for r in rows])[:n]
        return {"input_ids": ids, "labels": ids.clone(), "attention_mask": torch.ones_like(ids)}
    return training_batches


def open_folder(folder: str | Path, name: str | None = None) -> CheckpointSource:
    """A folder of ``step-N/`` checkpoints, or of ``<size>/step-N/`` checkpoints (see the module doc)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"checkpoint source {str(folder)!r}: no such folder")
    _refuse_zsl_layout(folder)
    direct = _step_dirs(folder)
    if direct:
        per_size = {folder.name: direct}
    else:
        per_size = {p.name: _step_dirs(p) for p in sorted(folder.iterdir()) if p.is_dir()}
        per_size = {size: steps for size, steps in per_size.items() if steps}
    if not per_size:
        raise FileNotFoundError(f"checkpoint source {str(folder)!r} holds no checkpoints: expected step-N/ "
                                "folders (save_pretrained output with a config.json), directly or under <size>/")
    checkpoints = [Checkpoint(size, step, str(path)) for size, steps in per_size.items()
                   for step, path in steps.items()]
    tokenizer = _folder_tokenizer(folder, Path(checkpoints[0].location))
    return CheckpointSource(name or str(folder), checkpoints, tokenizer, _suite_training_batches(folder))


# ---------------------------------------------------------------- the hub

def hub_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """The Hugging Face hub cache: ``cache_dir``, else ``$HF_HUB_CACHE``, else huggingface_hub's default."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    from huggingface_hub import constants
    return Path(constants.HF_HUB_CACHE)


def hub_revisions(name: str, cache_dir: str | Path | None = None) -> dict[int, str]:
    """``{N: "stepN"}`` for the revisions of hub model ``name`` present in the local cache, by step."""
    refs = hub_cache_dir(cache_dir) / f"models--{name.replace('/', '--')}" / "refs"
    found = {}
    for p in refs.iterdir() if refs.is_dir() else []:
        m = HUB_REVISION.match(p.name)
        if m:
            found[int(m.group(1))] = p.name
    return dict(sorted(found.items()))


def open_hub(names: list[str], cache_dir: str | Path | None = None, name: str | None = None) -> CheckpointSource:
    """Hub models ``names`` at every ``stepN`` revision in the local cache (offline)."""
    checkpoints = []
    for model_name in names:
        revisions = hub_revisions(model_name, cache_dir)
        if not revisions:
            raise FileNotFoundError(
                f"no `stepN` revision of {model_name!r} in the local hub cache {hub_cache_dir(cache_dir)}; "
                f"download them first where there is a network, e.g. "
                f"`huggingface-cli download {model_name} --revision step1000`")
        checkpoints += [Checkpoint(model_name, step, model_name, rev, None if cache_dir is None else str(cache_dir))
                        for step, rev in revisions.items()]
    from transformers import AutoTokenizer
    last = checkpoints[-1]
    tokenizer = AutoTokenizer.from_pretrained(names[0], revision=hub_revisions(names[0], cache_dir)[
        max(hub_revisions(names[0], cache_dir))], local_files_only=True, cache_dir=last.cache_dir)
    return CheckpointSource(name or "hf:" + ",".join(names), checkpoints, tokenizer)


# ---------------------------------------------------------------- one parameter

def open_source(source: str | Path | None = None, profile: str = "default", *,
                cache_dir: str | Path | None = None) -> CheckpointSource:
    """The checkpoints named by ``source`` (None or ``"suite"``, ``"hf:NAME[,NAME]"``, or a folder).

    ``cache_dir``: the hub cache for ``hf:`` sources. Raises FileNotFoundError with
    what to do when the checkpoints are not there.
    """
    if source is None or source == "suite":
        from .paths import cache_dir as profile_cache
        folder = profile_cache(profile) / "checkpoint_suite"
        if not folder.is_dir() or not any(_step_dirs(p) for p in folder.iterdir() if p.is_dir()):
            raise FileNotFoundError(
                f"no checkpoint suite for profile {profile!r} at {folder}: train it first with "
                f"`python -m gradtools.runner --profile {profile} 00_checkpoint_suite`")
        return open_folder(folder, name="suite")
    source = str(source)
    if source.startswith("hf:"):
        names = [n.strip() for n in source[3:].split(",") if n.strip()]
        if not names:
            raise ValueError("`hf:` needs a model name, e.g. hf:EleutherAI/pythia-14m")
        return open_hub(names, cache_dir, name=source)
    return open_folder(source)
