"""The fidelity table (claims of every notebook) and the drift check against committed tables."""
import subprocess

import pandas as pd
import pytest

from gradtools import drift, fidelity


def rows(*verdicts):
    return [fidelity.claim("study 9", f"claim {i}", "paper says", f"measured {i}", v, "" if v == "reproduced" else "why")
            for i, v in enumerate(verdicts)]


def test_claim_checks_its_verdict_and_needs_a_why():
    with pytest.raises(ValueError, match="not one of"):
        fidelity.claim("s", "c", "p", "m", "holds")
    with pytest.raises(ValueError, match="needs a 'why'"):
        fidelity.claim("s", "c", "p", "m", "partly")
    assert fidelity.claim("s", "c", "p", "m", "reproduced")["verdict"] == "reproduced"


def test_verdict_from():
    assert fidelity.verdict_from(True) == "reproduced"
    assert fidelity.verdict_from(False) == "not reproduced"
    assert fidelity.verdict_from(False, partly=True) == "partly"
    assert fidelity.verdict_from(None) == "not measured"


def test_verdict_from_counts():
    assert fidelity.verdict_from_counts(3, 3) == "reproduced"
    assert fidelity.verdict_from_counts(1, 3) == "partly"
    assert fidelity.verdict_from_counts(0, 3) == "not reproduced"
    assert fidelity.verdict_from_counts(0, 0) == "not measured"  # no case: never reproduced
    with pytest.raises(ValueError):
        fidelity.verdict_from_counts(4, 3)


def test_duplicate_claims_are_refused():
    with pytest.raises(ValueError, match="listed twice"):
        fidelity.claims_table("nb", rows("reproduced") * 2)


def test_assemble_markdown_and_readme(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADTOOLS_ROOT", str(tmp_path))
    fidelity.save_claims("01_b", rows("reproduced", "partly"))
    fidelity.save_claims("00_a", rows("not reproduced", "not measured", "reproduced"))
    table = fidelity.assemble()
    assert table.notebook.tolist() == ["00_a"] * 3 + ["01_b"] * 2
    assert pd.read_parquet(tmp_path / "data" / "fidelity.parquet").equals(table)
    md = (tmp_path / "data" / "fidelity.md").read_text()
    assert "| `00_a.ipynb` |  | 3 | 1 reproduced, 1 not reproduced, 1 not measured |" in md
    assert "| `01_b.ipynb` |  | 2 | 1 reproduced, 1 partly |" in md
    assert md.count("| study 9 |") == 5
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{fidelity.README_START}\nold\n{fidelity.README_END}\nafter\n")
    assert fidelity.update_readme(readme, table)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("after\n") and "old" not in text and md in text
    assert not fidelity.update_readme(readme, table)  # unchanged the second time
    titled = fidelity.markdown(table, {"00_tour": "A tour", "00_a": "Study A", "01_b": "Study B"})
    assert "| `00_tour.ipynb` | A tour | 0 | no claims" in titled and "| `00_a.ipynb` | Study A | 3 |" in titled
    (tmp_path / "R2.md").write_text("no markers")
    with pytest.raises(ValueError, match="has no markers"):
        fidelity.update_readme(tmp_path / "R2.md", table)


def test_smoke_claims_go_to_the_profile_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADTOOLS_ROOT", str(tmp_path))
    fidelity.save_claims("00_a", rows("reproduced"), profile="smoke")
    assert (tmp_path / "data" / "smoke" / "claims" / "00_a.parquet").exists()
    assert not (tmp_path / "data" / "claims").exists()


def test_max_relative_difference():
    a = pd.Series([1.0, 2.0, float("nan"), 0.0])
    assert drift.max_relative_difference(a, a.copy()) == 0.0
    b = pd.Series([1.0, 2.2, float("nan"), 0.0])
    assert drift.max_relative_difference(b, a) == pytest.approx(0.2 / 2.2)
    c = pd.Series([1.0, 2.0, 3.0, 0.0])  # NaN on one side only
    assert drift.max_relative_difference(c, a) == float("inf")


def test_compare_table_reports_numbers_cells_verdicts_and_shape():
    old = pd.DataFrame({"claim": ["x", "y"], "verdict": ["reproduced", "partly"], "v": [1.0, 4.0]})
    new = old.assign(verdict=["reproduced", "not reproduced"], v=[1.0, 5.0])
    out = drift.compare_table(new, old)
    assert out["status"] == "differs" and out["max_rel_diff"] == pytest.approx(0.2)
    assert out["cells_differ"] == 1 and out["verdict_changes"] == ["y: partly -> not reproduced"]
    assert drift.compare_table(old.copy(), old)["status"] == "equal values"
    assert drift.compare_table(old.iloc[:1], old)["status"].startswith("shape changed")


def test_drift_report_against_a_git_revision(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "data" / "claims").mkdir(parents=True)
    git = lambda *a: subprocess.run(["git", "-C", str(repo), *a], check=True, capture_output=True)
    git("init", "-q")
    pd.DataFrame({"a": [1.0, 2.0]}).to_parquet(repo / "data" / "same.parquet", index=False)
    pd.DataFrame({"a": [1.0, 2.0]}).to_parquet(repo / "data" / "moved.parquet", index=False)
    fidelity.claims_table("nb", rows("reproduced")).to_parquet(repo / "data" / "claims" / "nb.parquet", index=False)
    pd.DataFrame({"a": [1.0]}).to_parquet(repo / "data" / "gone.parquet", index=False)
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tables")
    pd.DataFrame({"a": [1.0, 2.5]}).to_parquet(repo / "data" / "moved.parquet", index=False)
    fidelity.claims_table("nb", rows("partly")).to_parquet(repo / "data" / "claims" / "nb.parquet", index=False)
    pd.DataFrame({"a": [1]}).to_parquet(repo / "data" / "new.parquet", index=False)
    monkeypatch.setenv("GRADTOOLS_ROOT", str(repo))
    assert drift.committed_tables(repo / "data") == ["claims/nb.parquet", "gone.parquet", "moved.parquet",
                                                     "same.parquet"]
    (repo / "data" / "gone.parquet").unlink()
    report = drift.drift_report("default").set_index("table")
    assert report.loc["gone.parquet", "status"].startswith("missing")
    assert drift.any_verdict_changed(report.reset_index())
    assert report.loc["same.parquet", "status"] == "identical"
    assert report.loc["moved.parquet", "max_rel_diff"] == pytest.approx(0.2)
    assert report.loc["new.parquet", "status"] == "not committed"
    assert report.loc["claims/nb.parquet", "verdict_changes"] == ["claim 0: reproduced -> partly"]
    text = drift.format_report(report.reset_index())
    assert "1 identical" in text and "claim 0: reproduced -> partly" in text
    # tables the run did not rewrite are not passed off as identical
    later = drift.drift_report("default", since=(repo / "data" / "new.parquet").stat().st_mtime + 1).set_index("table")
    assert set(later.status) == {"not rewritten by the run", "missing: committed, not written"}


def test_run_environment_records_versions_lock_and_cpu(tmp_path, monkeypatch):
    import json

    from gradtools import lockfile, provenance

    monkeypatch.setenv("GRADTOOLS_ROOT", str(tmp_path))
    env = json.loads(provenance.write_run_environment("smoke").read_text())
    assert env["packages"]["torch"].startswith(lockfile.read_lock()["torch"])
    assert env["cpu_capability"] in {"DEFAULT", "AVX2", "AVX512", "ZVECTOR", "NO AVX", "SVE256"} and env["cpu"]
    assert len(env["lock_sha256"]) == 64


def test_notebook_title_drops_the_number(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_markdown_cell("# 04 · Gradient SED\n\ntext")]
    nbformat.write(nb, tmp_path / "n.ipynb")
    assert fidelity.notebook_title(tmp_path / "n.ipynb") == "Gradient SED"


def test_side_by_side_joins_profiles_on_the_claim(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADTOOLS_ROOT", str(tmp_path))
    fidelity.save_claims("04_x", rows("reproduced", "partly"), "default")
    paper = rows("not reproduced") + [fidelity.claim("study 9", "a paper-only claim", "paper 2", "m", "reproduced")]
    fidelity.save_claims("04_x", paper, "paper")
    fidelity.save_claims("05_y", rows("reproduced"), "paper")
    t = fidelity.side_by_side(("default", "paper"))
    assert t.notebook.tolist() == ["04_x"] * 3 + ["05_y"]
    assert t.claim.tolist()[:3] == ["claim 0", "claim 1", "a paper-only claim"]  # the notebooks' order, not sorted
    by = t.set_index(["notebook", "claim"])
    assert by.loc[("04_x", "claim 0"), "verdict (default)"] == "reproduced"
    assert by.loc[("04_x", "claim 0"), "verdict (paper)"] == "not reproduced"
    assert by.loc[("04_x", "claim 1"), "verdict (paper)"] == "not run"
    assert by.loc[("04_x", "a paper-only claim"), ["paper", "verdict (default)"]].tolist() == ["paper 2", "not run"]
    assert by.loc[("05_y", "claim 0"), "measured (default)"] == "not run"
    md = (tmp_path / "data" / "fidelity_by_profile.md").read_text()
    assert md.count("\n") == 2 + 4 and "| **not reproduced** |" in md


def test_runner_writes_the_side_by_side_table_once_the_paper_profile_has_claims(tmp_path, monkeypatch):
    from gradtools import runner

    monkeypatch.setenv("GRADTOOLS_ROOT", str(tmp_path))
    fidelity.save_claims("04_x", rows("reproduced"), "default")
    runner.gather_claims("default", readme=None)
    assert not (tmp_path / "data" / "fidelity_by_profile.parquet").exists()  # no paper claims yet
    fidelity.save_claims("04_x", rows("partly"), "paper")
    runner.gather_claims("paper", readme=None)
    t = pd.read_parquet(tmp_path / "data" / "fidelity_by_profile.parquet")
    assert t[["verdict (default)", "verdict (paper)"]].values.tolist() == [["reproduced", "partly"]]
