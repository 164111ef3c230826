"""Same code, same lock, same machine: a rerun writes byte-identical tables.

Two notebooks (the kernel tour and the SED study, which trains models) run twice in the
smoke profile, each time into a fresh root (no cache shared), and every parquet table they
write must have the same bytes; the drift report over one root against the other says so too.
"""

from gradtools import runner

TWICE = ["00_tour", "04_sed_coupling"]


def run_into(root, monkeypatch):
    monkeypatch.setenv("GRADTOOLS_ROOT", str(root))
    errors = runner.run(TWICE, "smoke", out_dir=root / "executed", report=False)
    assert not errors, "\n".join(map(str, errors))
    tables = sorted((root / "data" / "smoke").rglob("*.parquet"))
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in tables if "cache" not in p.parts}


def test_two_runs_write_byte_identical_tables(tmp_path, monkeypatch):
    first = run_into(tmp_path / "first", monkeypatch)
    second = run_into(tmp_path / "second", monkeypatch)
    assert len(first) >= 4, f"too few tables to compare: {sorted(first)}"
    assert sorted(first) == sorted(second)
    differing = [name for name in first if first[name] != second[name]]
    assert differing == [], f"tables whose bytes differ between two identical runs: {differing}"
