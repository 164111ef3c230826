"""Where study 1 reads its checkpoints from: one ``source`` string -> an ordered list of checkpoints.

Sources (``open_source(source, profile, sizes=, steps=, max_per_size=)``):

* ``None`` or ``"suite"`` - the local checkpoint suite of the profile
  (:func:`gradtools.checkpoint_suite.suite_dir`): ``<suite>/<size>/step-NNNNNN/``,
  the word tokenizer at ``<suite>/tokenizer.json``, and the training streams
  (``streams.pt``) with each size's ``recipe.json``, from which the training
  batches that follow a checkpoint are re-drawn (for destructive interference).
* ``"hf:NAME"`` (several: ``"hf:NAME1,NAME2"``) - a Hugging Face hub repository whose
  revisions are checkpoints: ``stepN`` (Pythia, ``hf:EleutherAI/pythia-14m``; the size is
  the model name) or ``<size>-stepN`` (the paper's suite, ``hf:mirandrom/zsl-checkpoints``
  with revisions ``OLMo-14M-step1024``: one repository, six sizes). A revision holding
  ``config.json`` is a ``transformers`` model; one holding ``model.pt`` + ``config.yaml`` an
  OLMo checkpoint (:mod:`gradtools.olmo_checkpoints`). The revisions are **selected first**
  (``sizes``, then ``steps`` or ``max_per_size`` log-spaced ones, else all) from the hub's
  list where there is a network, and only the selected ones that the local cache lacks are
  downloaded (``huggingface_hub.snapshot_download``: resumable; model weights and
  configuration only, no optimizer state). Offline (``HF_HUB_OFFLINE=1``, ``download=False``
  or no network) the selection is made among the cached revisions, and the selected steps
  that are not cached are named. The tokenizer: a ``transformers`` model's own (last
  revision), the OLMo suite's file named in its ``config.yaml``.
* a folder - of ``step-N/`` checkpoints (one size, named after the folder) or of sizes
  ``<folder>/<size>/step-N/``, each a ``save_pretrained`` folder; the tokenizer is
  ``<folder>/tokenizer.json`` (a ``tokenizers`` file) if present, else the ``transformers``
  tokenizer saved in the checkpoints; with ``streams.pt`` and ``<size>/recipe.json`` it is
  read as a suite (training batches included). Or the OLMo trainer's layout, as the zsl
  runs are saved: ``<run>/stepN-unsharded/`` (``model.pt`` + ``config.yaml``), one run or a
  folder of runs (the run folder names the size).

Every error about a missing folder, revision or tokenizer is raised by
:func:`open_source`, before any compute starts.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from . import olmo_checkpoints
from .lm import load_causal_lm

STEP_DIR = re.compile(r"^step-?(\d+)$")
OLMO_STEP_DIR = re.compile(r"^step(\d+)-unsharded$")  # the OLMo trainer's unsharded checkpoints
HUB_REVISION = re.compile(r"^(?:(?P<size>.+)-)?step(?P<step>\d+)$")  # stepN (Pythia), <size>-stepN (zsl)
# files a hub revision needs (no optimizer or trainer state: zsl's optim.pt is twice the model)
HUB_FILES = {"transformers": ["*.json", "*.txt", "*.model"], "olmo": [olmo_checkpoints.CONFIG_FILE,
                                                                      olmo_checkpoints.WEIGHTS_FILE]}


@dataclass(frozen=True)
class Checkpoint:
    """One model of a source: ``size`` (a name), ``step``, and where to load it from."""
    size: str
    step: int
    location: str                       # a folder, or a hub name
    revision: str | None = None         # hub revision (``stepN``, ``OLMo-14M-stepN``), None for folders
    cache_dir: str | None = None        # hub cache folder, None: the default
    kind: str = "transformers"          # or "olmo": model.pt + config.yaml (gradtools.olmo_checkpoints)

    def folder(self) -> Path:
        """Where the checkpoint's files are: the folder, or the hub revision's snapshot in the cache."""
        if self.revision is None:
            return Path(self.location)
        repo = hub_cache_dir(self.cache_dir) / f"models--{self.location.replace('/', '--')}"
        return repo / "snapshots" / (repo / "refs" / self.revision).read_text().strip()

    def load(self, dtype: torch.dtype = torch.float32) -> nn.Module:
        """The model in eval mode (``gradtools.lm.load_causal_lm``, or an OLMo checkpoint as a Llama model)."""
        if self.kind == "olmo":
            return olmo_checkpoints.load_olmo_checkpoint(self.folder(), dtype)
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
        token_counts: ``token_counts(size)`` -> (V,) expected count of each token in that size's
            training (the frequency-matched IOI-rand control), or None when the source has no
            training data or the size's recipe is not written yet.
    """
    name: str
    checkpoints: list[Checkpoint]
    tokenizer: object
    training_batches: Callable[[str, int, int], dict[str, Tensor]] | None = None
    sizes: list[str] = field(default_factory=list)
    token_counts: Callable[[str], Tensor | None] | None = None

    def __post_init__(self):
        if not self.sizes:
            self.sizes = list(dict.fromkeys(c.size for c in self.checkpoints))

    def steps(self, size: str) -> list[int]:
        return [c.step for c in self.checkpoints if c.size == size]

    def select(self, sizes: list[str] | None = None, max_per_size: int | None = None,
               steps: list[int] | dict[str, list[int]] | None = None) -> "CheckpointSource":
        """A source with only ``sizes`` and, per size, the ``steps`` it has (a list, or a dict of
        size to list: each size its own steps) or at most ``max_per_size`` log-spaced steps
        (:func:`select_steps`)."""
        keep_sizes = check_sizes(self.name, self.sizes, sizes)
        if isinstance(steps, dict):
            check_sizes(self.name, self.sizes, list(steps))
            if set(keep_sizes) - set(steps):
                raise ValueError(f"steps per size name no steps for {sorted(set(keep_sizes) - set(steps))}")
        chosen = []
        for size in keep_sizes:
            keep = set(select_steps(self.steps(size), steps_for(steps, size), max_per_size))
            chosen += [c for c in self.checkpoints if c.size == size and c.step in keep]
        return replace(self, checkpoints=chosen, sizes=keep_sizes)


def check_sizes(name: str, have: list[str], sizes: list[str] | None) -> list[str]:
    """``sizes`` (None: all of ``have``), each checked to be one of ``have``."""
    if sizes is None:
        return list(have)
    unknown = [s for s in sizes if s not in have]
    if unknown:
        raise ValueError(f"source {name!r} has no size(s) {unknown}; it has {have}")
    return list(sizes)


def steps_for(steps: list[int] | dict[str, list[int]] | None, size: str) -> list[int] | None:
    """The steps asked of ``size``: the list itself, or its entry of a per-size dict."""
    return steps.get(size) if isinstance(steps, dict) else steps


def select_steps(available: list[int], steps: list[int] | None = None, max_per_size: int | None = None) -> list[int]:
    """The steps to use out of ``available``: those of ``steps`` that are available (when given),
    else at most ``max_per_size`` log-spaced ones, else all."""
    if steps is not None:
        return sorted(set(steps) & set(available))
    return log_spaced_subset(available, max_per_size) if max_per_size else sorted(available)


def revision_selection(revisions, max_per_size: int | None) -> dict:
    """A notebook's ``revisions`` parameter as keywords of :func:`open_source`: None -> at most
    ``max_per_size`` log-spaced steps a size; ``"all"`` -> every step; a list of steps -> those."""
    if revisions is None:
        return dict(max_per_size=max_per_size)
    if revisions == "all":
        return {}
    if isinstance(revisions, (list, tuple)) and revisions and all(isinstance(s, int) and s >= 0 for s in revisions):
        return dict(steps=sorted(set(revisions)))
    raise ValueError(f"revisions={revisions!r}: give None (the profile's log-spaced count), \"all\", "
                     "or a list of steps such as [0, 1000, 143000]")


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


def _olmo_step_dirs(folder: Path) -> dict[int, Path]:
    """``{N: folder/stepN-unsharded}`` for the OLMo trainer's checkpoints (model.pt + config.yaml)."""
    out = {}
    for p in folder.iterdir() if folder.is_dir() else []:
        m = OLMO_STEP_DIR.match(p.name)
        if m and olmo_checkpoints.is_olmo_checkpoint(p):
            out[int(m.group(1))] = p
    return dict(sorted(out.items()))


def open_olmo_runs(folder: Path, name: str | None = None) -> CheckpointSource | None:
    """An OLMo run folder (``stepN-unsharded/``) or a folder of runs as a source; None if neither."""
    direct = _olmo_step_dirs(folder)
    per_size = {folder.name: direct} if direct else {
        p.name: _olmo_step_dirs(p) for p in sorted(folder.iterdir()) if p.is_dir()}
    per_size = {size: steps for size, steps in per_size.items() if steps}
    if not per_size:
        return None
    checkpoints = [Checkpoint(size, step, str(path), kind="olmo") for size, steps in per_size.items()
                   for step, path in steps.items()]
    for checkpoint in checkpoints:  # a setting the loader cannot compute stops here, not mid-study
        olmo_checkpoints.llama_config(olmo_checkpoints.read_model_config(checkpoint.location))
    tokenizer = olmo_checkpoints.load_tokenizer(checkpoints[0].location)
    return CheckpointSource(name or str(folder), checkpoints, tokenizer)


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


def _stream_loader(folder: Path) -> Callable[[], dict[str, Tensor]]:
    """``load()`` -> the suite's token streams, read from ``streams.pt`` on the first call only."""
    streams: dict = {}

    def load() -> dict[str, Tensor]:
        if not streams:
            streams.update(torch.load(folder / "streams.pt"))
        return streams
    return load


def _suite_training_batches(folder: Path, load_streams: Callable[[], dict[str, Tensor]]
                            ) -> Callable[[str, int, int], dict[str, Tensor]] | None:
    """The training sequences after a checkpoint, re-drawn from the suite's streams and recipe."""
    if not (folder / "streams.pt").exists():
        return None

    def training_batches(size: str, step: int, n: int) -> dict[str, Tensor]:
        recipe_path = folder / size / "recipe.json"
        if not recipe_path.exists():  # written when a size's training ends: batches cannot be re-drawn yet
            return None
        from .suite_corpus import mixed_batch_fn
        recipe = json.loads(recipe_path.read_text())
        streams = load_streams()
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


def _suite_token_counts(folder: Path, load_streams: Callable[[], dict[str, Tensor]]
                        ) -> Callable[[str], Tensor | None] | None:
    """Expected training count of each token per size: the story and Wikipedia streams' token shares
    mixed as the size's batches draw them (``story_fraction``), times the tokens it trained on."""
    if not (folder / "streams.pt").exists():
        return None

    def token_counts(size: str) -> Tensor | None:
        recipe_path = folder / size / "recipe.json"
        if not recipe_path.exists():
            return None
        recipe = json.loads(recipe_path.read_text())
        streams = load_streams()
        vocab = int(max(streams["stories"].max(), streams["wiki"].max())) + 1
        share = lambda ids: torch.bincount(ids, minlength=vocab).double() / len(ids)  # noqa: E731
        mixed = recipe["story_fraction"] * share(streams["stories"]) + (1 - recipe["story_fraction"]) * share(streams["wiki"])
        return mixed * (recipe["steps"] * recipe["batch_size"] * recipe["context"])
    return token_counts


def open_folder(folder: str | Path, name: str | None = None) -> CheckpointSource:
    """A folder of ``step-N/`` checkpoints, or of ``<size>/step-N/`` checkpoints (see the module doc)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"checkpoint source {str(folder)!r}: no such folder")
    olmo = open_olmo_runs(folder, name)
    if olmo is not None:
        return olmo
    direct = _step_dirs(folder)
    if direct:
        per_size = {folder.name: direct}
    else:
        per_size = {p.name: _step_dirs(p) for p in sorted(folder.iterdir()) if p.is_dir()}
        per_size = {size: steps for size, steps in per_size.items() if steps}
    if not per_size:
        raise FileNotFoundError(f"checkpoint source {str(folder)!r} holds no checkpoints: expected step-N/ "
                                "folders (save_pretrained output with a config.json), directly or under <size>/, "
                                "or OLMo's stepN-unsharded/ folders (model.pt + config.yaml)")
    checkpoints = [Checkpoint(size, step, str(path)) for size, steps in per_size.items()
                   for step, path in steps.items()]
    tokenizer = _folder_tokenizer(folder, Path(checkpoints[0].location))
    load_streams = _stream_loader(folder)
    return CheckpointSource(name or str(folder), checkpoints, tokenizer, _suite_training_batches(folder, load_streams),
                            token_counts=_suite_token_counts(folder, load_streams))


# ---------------------------------------------------------------- the hub

def hub_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """The Hugging Face hub cache: ``cache_dir``, else ``$HF_HUB_CACHE``, else huggingface_hub's default."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    from huggingface_hub import constants
    return Path(constants.HF_HUB_CACHE)


def parse_revision(model_name: str, revision: str) -> tuple[str, int] | None:
    """``(size, step)`` of a checkpoint revision (``stepN``: the size is the model name;
    ``<size>-stepN``: the size from the revision), None for any other revision (``main``)."""
    m = HUB_REVISION.match(revision)
    if m is None:
        return None
    return (m.group("size") or model_name), int(m.group("step"))


def hub_revisions(name: str, cache_dir: str | Path | None = None) -> dict[tuple[str, int], str]:
    """``{(size, step): revision}`` of the checkpoint revisions of ``name`` in the local cache."""
    refs = hub_cache_dir(cache_dir) / f"models--{name.replace('/', '--')}" / "refs"
    found = {}
    for p in refs.iterdir() if refs.is_dir() else []:
        parsed = parse_revision(name, p.name)
        if parsed:
            found[parsed] = p.name
    return dict(sorted(found.items()))


def hub_offline() -> bool:
    """True when huggingface_hub is told not to use the network (``HF_HUB_OFFLINE``)."""
    from huggingface_hub import constants
    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def remote_revisions(name: str) -> dict[tuple[str, int], str] | None:
    """``{(size, step): revision}`` of the hub's branches of ``name``, or None without a network."""
    from huggingface_hub import HfApi
    try:
        branches = HfApi().list_repo_refs(name).branches
    except Exception as error:  # no network, a firewall, a private repository: read the cache
        print(f"{name}: cannot list the hub's revisions ({type(error).__name__}); reading the local cache only")
        return None
    found = {parse_revision(name, b.name): b.name for b in branches}
    return dict(sorted((k, v) for k, v in found.items() if k))


def download_revision(name: str, revision: str, cache_dir: str | Path | None = None) -> None:
    """Fetch one revision's model files into the hub cache (resumable; no optimizer state)."""
    from huggingface_hub import HfApi, snapshot_download
    files = HfApi().list_repo_files(name, revision=revision)
    kind = "olmo" if olmo_checkpoints.WEIGHTS_FILE in files else "transformers"
    weights = [f for f in files if f.endswith(".safetensors")] or [f for f in files if f.endswith(".bin")]
    patterns = HUB_FILES[kind] + (weights if kind == "transformers" else [])
    snapshot_download(name, revision=revision, cache_dir=None if cache_dir is None else str(cache_dir),
                      allow_patterns=patterns)


def _select_revisions(revisions: dict[tuple[str, int], str], sizes, steps, max_per_size) -> dict:
    """The selected ``{(size, step): revision}`` among ``revisions`` (see :meth:`CheckpointSource.select`)."""
    have = list(dict.fromkeys(size for size, _ in revisions))
    chosen = {}
    for size in have if sizes is None else [s for s in sizes if s in have]:
        keep = select_steps([s for z, s in revisions if z == size], steps_for(steps, size), max_per_size)
        chosen.update({(size, s): revisions[(size, s)] for s in keep})
    return chosen


def _missing_steps(revisions: dict[tuple[str, int], str], sizes, steps) -> list[str]:
    """The asked-for ``steps`` of the selected sizes present in ``revisions`` that it lacks (for a note)."""
    have = list(dict.fromkeys(size for size, _ in revisions))
    return [f"{size} step {s}" for size in have if sizes is None or size in sizes
            for s in steps_for(steps, size) or [] if (size, s) not in revisions]


def _revision_kind(checkpoint: Checkpoint) -> str:
    return "olmo" if olmo_checkpoints.is_olmo_checkpoint(checkpoint.folder()) else "transformers"


def _fetch(model_name: str, revisions: list[str], cache_dir) -> None:
    from tqdm.auto import tqdm
    for revision in tqdm(revisions, desc=f"downloading {model_name}"):
        download_revision(model_name, revision, cache_dir)


def open_hub(names: list[str], cache_dir: str | Path | None = None, name: str | None = None, *,
             sizes: list[str] | None = None, steps: list[int] | None = None, max_per_size: int | None = None,
             download: bool = True) -> CheckpointSource:
    """Hub repositories ``names``: the selected checkpoint revisions, fetched if missing (see the module doc)."""
    checkpoints, seen_sizes = [], set()
    for model_name in names:
        listed = remote_revisions(model_name) if download and not hub_offline() else None
        cached = hub_revisions(model_name, cache_dir)
        pool = listed or cached
        seen_sizes |= {size for size, _ in pool}
        wanted = _select_revisions(pool, sizes, steps, max_per_size)
        if listed:
            _fetch(model_name, [rev for key, rev in wanted.items() if key not in cached], cache_dir)
            cached = hub_revisions(model_name, cache_dir)
        absent = [rev for key, rev in wanted.items() if key not in cached]
        absent += _missing_steps(pool, sizes, steps)
        if absent:
            where = "on the hub" if listed else f"in the local cache {hub_cache_dir(cache_dir)}"
            print(f"{model_name}: selected but not {where}: {', '.join(absent[:12])}"
                  f"{' ...' if len(absent) > 12 else ''}")
        checkpoints += [Checkpoint(size, step, model_name, rev, None if cache_dir is None else str(cache_dir))
                        for (size, step), rev in wanted.items() if (size, step) in cached]
    unknown = [s for s in sizes or [] if s not in seen_sizes]
    if unknown:
        raise FileNotFoundError(f"no revision of size(s) {unknown} in {names} "
                                f"({'hub list' if not hub_offline() and download else 'local cache'}); "
                                f"sizes there: {sorted(seen_sizes)}")
    if not checkpoints:
        raise FileNotFoundError(
            f"no selected checkpoint revision (`stepN` or `<size>-stepN`) of {', '.join(names)} in the local hub "
            f"cache {hub_cache_dir(cache_dir)}; where there is a network, open the source there (it downloads the "
            f"selected revisions) or `huggingface-cli download {names[0]} --revision <revision>`")
    checkpoints = [replace(c, kind=_revision_kind(c)) for c in checkpoints]
    return CheckpointSource(name or "hf:" + ",".join(names), checkpoints, _hub_tokenizer(checkpoints))


def _hub_tokenizer(checkpoints: list[Checkpoint]):
    """The first repository's tokenizer at its last selected revision (an OLMo suite: its config's file)."""
    first = [c for c in checkpoints if c.location == checkpoints[0].location][-1]
    if first.kind == "olmo":
        return olmo_checkpoints.load_tokenizer(first.folder())
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(first.location, revision=first.revision, local_files_only=True,
                                         cache_dir=first.cache_dir)


# ---------------------------------------------------------------- one parameter

def open_source(source: str | Path | None = None, profile: str = "default", *,
                cache_dir: str | Path | None = None, sizes: list[str] | None = None,
                steps: list[int] | dict[str, list[int]] | None = None, max_per_size: int | None = None,
                download: bool = True) -> CheckpointSource:
    """The checkpoints named by ``source`` (None or ``"suite"``, ``"hf:NAME[,NAME]"``, or a folder),
    selected: ``sizes`` (None: all), per size the ``steps`` it has, or at most ``max_per_size``
    log-spaced steps, else all.

    ``cache_dir``: the hub cache for ``hf:`` sources; ``download``: fetch the selected hub
    revisions the cache lacks (where there is a network). Raises FileNotFoundError with
    what to do when the checkpoints are not there.
    """
    if source is None or source == "suite":
        from .paths import cache_dir as profile_cache
        folder = profile_cache(profile) / "checkpoint_suite"
        if not folder.is_dir() or not any(_step_dirs(p) for p in folder.iterdir() if p.is_dir()):
            raise FileNotFoundError(
                f"no checkpoint suite for profile {profile!r} at {folder}: train it first with "
                f"`python -m gradtools.runner --profile {profile} 00_checkpoint_suite`")
        return open_folder(folder, name="suite").select(sizes, max_per_size, steps)
    source = str(source)
    if source.startswith("hf:"):
        names = [n.strip() for n in source[3:].split(",") if n.strip()]
        if not names:
            raise ValueError("`hf:` needs a model name, e.g. hf:EleutherAI/pythia-14m")
        return open_hub(names, cache_dir, name=source, sizes=sizes, steps=steps, max_per_size=max_per_size,
                        download=download)
    return open_folder(source).select(sizes, max_per_size, steps)
