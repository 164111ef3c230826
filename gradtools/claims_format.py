"""Small helpers shared by the study claims modules (``*_claims.py``): number formatting, the one-seed note,
and a fidelity row built from a criterion's outcome."""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import fidelity

# the note a ``why`` carries when its verdict rests on one training run
ONE_SEED = "one seed (one training run)"
HDBSCAN_ONE_SEED = ONE_SEED + ": HDBSCAN's outcome on it can flip with small numeric differences"


def _missing(v) -> bool:
    return v is None or bool(pd.isna(v)) or not np.isfinite(float(v))


def num(v, fmt: str = ".2f") -> str:
    """``v`` formatted with ``fmt``; ``n/a`` when missing or not finite."""
    return "n/a" if _missing(v) else format(v, fmt)


def step(v) -> str:
    """A training step as an integer; ``never`` when missing (the event did not happen)."""
    return "never" if _missing(v) else str(int(v))


def span(lo: float, hi: float, fmt: str = ".0%") -> str:
    """``lo-hi`` formatted with ``fmt``; one value when both print the same."""
    a, b = format(lo, fmt), format(hi, fmt)
    return a if a == b else f"{a}-{b}"


def with_chance(value: float, chance: float | None = None) -> str:
    """A homogeneity, with its chance level when given; ``none`` when missing (nothing clustered)."""
    if _missing(value):
        return "none"
    return f"{value:.3f}" if chance is None else f"{value:.3f} (chance {chance:.3f})"


def row(study: str, claim: str, paper: str, measured: str, verdict: str | bool | None, why: str,
        partly: bool = False) -> dict:
    """A fidelity row; ``verdict`` is a verdict string, or whether the criterion holds
    (:func:`gradtools.fidelity.verdict_from` with ``partly``)."""
    if not isinstance(verdict, str):
        verdict = fidelity.verdict_from(verdict, partly)
    return fidelity.claim(study, claim, paper, measured, verdict, why)
