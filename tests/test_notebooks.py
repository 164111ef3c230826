"""Every notebook in notebooks/ runs in the smoke profile, and is committed clean.

Parametrised over the folder, so a study added later is covered without new test code.
"""
import json
from pathlib import Path

import pytest

from gradtools import runner

NOTEBOOKS = sorted(runner.NOTEBOOKS.glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_clean(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert not any(c.get("outputs") for c in code), "strip outputs before committing"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and "profile" in "".join(tagged[0]["source"]), \
        "one cell tagged 'parameters' must set `profile`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_profile(path, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADTOOLS_ROOT", str(tmp_path))
    errors = runner.run([str(path)], "smoke", out_dir=tmp_path / "executed", report=False)
    assert not errors, "\n".join(map(str, errors))
    assert list((tmp_path / "figures" / "smoke").glob("*.png")), "the notebook saved no figure"


def _cells(nb):
    return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", []))) for c in nb.cells]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_and_its_py_twin_are_in_sync(path):
    """Each notebook is paired with a py:percent twin (jupytext), so reviews read code diffs.
    After editing either one, `make sync` brings the other back in line."""
    import jupytext

    twin = path.with_suffix(".py")
    assert twin.exists(), f"{twin.name} missing: run `jupytext --set-formats ipynb,py:percent {path}`"
    assert jupytext.read(path).metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent"
    assert _cells(jupytext.read(twin)) == _cells(jupytext.read(path)), \
        f"{path.name} and {twin.name} differ: run `make sync`"
