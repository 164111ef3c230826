"""Task families of study 1: a task and its controls, built together by one generator function.

A task family is a function ``f(tokenizer, n, seed) -> dict[str, PromptDataset]``
whose first entry is the task and whose other entries are its controls, all on
the same prompts (so the cross alignment ``task x control`` pairs prompt i with
prompt j != i). The paper's three families are built from
:mod:`gradtools.prompt_datasets`; a new task plugs in by naming its function
as ``"module:function"`` (e.g. ``"gradtools.subject_verb_agreement:subject_verb_agreement"``)
wherever a family name is accepted (the ``task`` parameter of notebook 01).
"""
from __future__ import annotations

import importlib
from typing import Callable

from .prompt_datasets import PromptDataset, make_dataset

TaskFamily = Callable[..., dict[str, PromptDataset]]

# the paper's families: the task first, then its controls (shared-gradient-discovery B.1, C.1)
PAPER_FAMILIES = {
    "ioi": ["ioi", "ioi_rand", "ioi_name", "ioi_copy"],
    "gt": ["gt", "gt_year", "gt_less", "gt_copy"],
    "oml": ["oml", "oml_month", "oml_copy"],
}


def _paper_family(names: list[str]) -> TaskFamily:
    def family(tokenizer, n: int | None = None, seed: int = 0) -> dict[str, PromptDataset]:
        return {name: make_dataset(name, tokenizer, n, seed) for name in names}
    family.__doc__ = f"The datasets {', '.join(names)} (same prompts, same seed)."
    return family


def task_family(spec: str) -> TaskFamily:
    """The family named ``spec``: ``"ioi"``, ``"gt"``, ``"oml"``, or ``"package.module:function"``."""
    if spec in PAPER_FAMILIES:
        return _paper_family(PAPER_FAMILIES[spec])
    if ":" not in spec:
        raise ValueError(f"unknown task {spec!r}: use one of {', '.join(PAPER_FAMILIES)} "
                         "or 'package.module:function' for a generator of your own")
    module, _, attr = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"task {spec!r}: cannot import {attr!r} from {module!r} ({err})") from err
    return fn


def build_family(spec: str, tokenizer, n: int | None = None, seed: int = 0) -> dict[str, PromptDataset]:
    """The datasets of family ``spec`` for ``tokenizer``; checks the generator's output is usable."""
    out = task_family(spec)(tokenizer, n, seed)
    if not isinstance(out, dict) or not out or not all(isinstance(d, PromptDataset) for d in out.values()):
        raise TypeError(f"task {spec!r} must return a non-empty dict of name -> PromptDataset")
    first = next(iter(out.values()))
    for name, ds in out.items():
        if ds.prompts != first.prompts:
            raise ValueError(f"task {spec!r}: control {name!r} does not share the task's prompts")
    return out
