"""The papermill runner: profiles, error cells named, HTML report."""
import nbformat
import pytest

from gradtools import runner


def write_notebook(path, body):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('profile = "default"', metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("from gradtools.profiles import check_profile\ncheck_profile(profile)"),
                nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_failing_cell_is_named(tmp_path):
    nb = write_notebook(tmp_path / "broken.ipynb", "raise RuntimeError('boom')")
    errors = runner.run([str(nb)], "smoke", out_dir=tmp_path / "out", report_dir=tmp_path / "report")
    assert len(errors) == 1
    message = str(errors[0])
    assert "broken.ipynb" in message and "RuntimeError: boom" in message and "raise RuntimeError" in message
    assert (tmp_path / "report" / "broken.html").exists() and (tmp_path / "report" / "index.html").exists()


def test_passing_notebook_reports_no_error(tmp_path):
    nb = write_notebook(tmp_path / "fine.ipynb", "x = 1 + 1")
    assert runner.run([str(nb)], "smoke", out_dir=tmp_path / "out", report=False) == []
    assert (tmp_path / "out" / "fine.ipynb").exists()


def test_main_exits_nonzero_on_failure(tmp_path, capsys):
    nb = write_notebook(tmp_path / "broken.ipynb", "1 / 0")
    status = runner.main(["--profile", "smoke", "--out", str(tmp_path / "out"), "--no-report", str(nb)])
    assert status == 1
    assert "ZeroDivisionError" in capsys.readouterr().err


def test_unknown_profile_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        runner.main(["--profile", "fast"])
    assert exit_info.value.code == 2
    assert "unknown profile 'fast'" in capsys.readouterr().err


def test_unknown_notebook_name_lists_the_available_ones():
    with pytest.raises(SystemExit, match="no single notebook matches .99_nothing.; available: .*00_tour"):
        runner.find_notebooks(["99_nothing"])


def test_kernels_run_with_pinned_cpu_code_paths_and_quiet_bars(tmp_path, monkeypatch):
    """The runner starts kernels with the same CPU kernel level on every x86-64 machine, a fixed
    hash seed, and quiet library progress bars (the notebook fails if any is missing)."""
    for key in {**runner.REPRODUCIBLE_ENV, **runner.QUIET_ENV}:
        monkeypatch.delenv(key, raising=False)
    body = ("import os\n"
            f"expected = {dict(**runner.REPRODUCIBLE_ENV, **runner.QUIET_ENV)!r}\n"
            "missing = {k: os.environ.get(k) for k, v in expected.items() if os.environ.get(k) != v}\n"
            "assert not missing, missing")
    nb = write_notebook(tmp_path / "env.ipynb", body)
    assert runner.run([str(nb)], "smoke", out_dir=tmp_path / "out", report=False) == []


def test_notebook_parameters_are_yaml_values_checked_before_running(tmp_path, capsys):
    nb = write_notebook(tmp_path / "p.ipynb", "assert revisions == [0, 1000] and source == 'hf:org/x'")
    cell = nbformat.read(nb, as_version=4)
    cell.cells[0].source += "\nsource = None\nrevisions = None"
    nbformat.write(cell, nb)
    assert runner.notebook_parameters([["revisions", "[0, 1000]"], ["source", "hf:org/x"]], [nb]) == \
        {"revisions": [0, 1000], "source": "hf:org/x"}
    status = runner.main(["--profile", "smoke", "--root", str(tmp_path), "--out", str(tmp_path / "out"),
                          "--no-report", str(nb), "-p", "revisions", "[0, 1000]", "-p", "source", "hf:org/x"])
    assert status == 0
    with pytest.raises(SystemExit):
        runner.main(["--profile", "smoke", "--no-report", str(nb), "-p", "sizes", "[1]"])
    assert "has no parameter(s) ['sizes']" in capsys.readouterr().err
