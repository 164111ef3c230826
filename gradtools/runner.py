"""Execute the notebooks headlessly with papermill, check them, and report.

    python -m gradtools.runner --profile default            # every notebook
    python -m gradtools.runner --profile smoke 00_tour      # by name or path

    python -m gradtools.runner --compare                    # drift: tables written vs committed

Executed copies go to ``build/notebooks/<profile>/`` (never into
``notebooks/``); each one is scanned for error outputs, and an HTML report of
all of them is rendered with nbconvert into ``build/report/<profile>/``. The
exit status is non-zero when any notebook failed, and the message names the
notebook and the cell. The notebooks' own output (progress lines of long
cells included, at most one every ``TQDM_MININTERVAL`` seconds a bar) is
relayed as it comes, and each notebook's elapsed time is printed at the end.
After a run the notebooks' claims are gathered into the fidelity table
(``data/fidelity.parquet``, ``data/fidelity.md``); the default profile also
pastes it into the README.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pandas as pd

from . import drift, fidelity, paths, provenance
from .paths import PACKAGE_ROOT
from .profiles import DESCRIPTIONS, PROFILES, check_profile

NOTEBOOKS = PACKAGE_ROOT / "notebooks"
BUILD = PACKAGE_ROOT / "build"
README = PACKAGE_ROOT / "README.md"
# headless runs: a progress bar inside a notebook prints a line at most this often (tqdm reads TQDM_*)
QUIET_ENV = {"TQDM_MININTERVAL": "30", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error"}
# The same CPU code paths on every x86-64 machine: torch's vector kernels, oneDNN and MKL are otherwise
# picked by the CPU (AVX2 vs AVX-512), and their last-bit differences (measured: 4e-7 relative in a
# GPT-NeoX gradient between two kernel levels, even in float64) grow over thousands of training steps.
REPRODUCIBLE_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2",
                    "PYTHONHASHSEED": "0"}


@dataclass
class CellError:
    """An error output found in an executed notebook."""

    notebook: Path
    cell_index: int
    ename: str
    evalue: str
    source: str

    def __str__(self) -> str:
        first_line = self.source.strip().splitlines()[0] if self.source.strip() else ""
        return (f"{self.notebook}: cell {self.cell_index} raised {self.ename}: {self.evalue}\n"
                f"    cell begins: {first_line[:100]}")


def find_notebooks(names: list[str] | None = None) -> list[Path]:
    """The notebooks to run: all of ``notebooks/*.ipynb`` in order, or those named."""
    available = sorted(NOTEBOOKS.glob("*.ipynb"))
    if not names:
        return available
    chosen = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb" and path.exists():
            chosen.append(path.resolve())
            continue
        matches = [p for p in available if p.stem == name or p.stem.startswith(name)]
        if len(matches) != 1:
            known = ", ".join(p.stem for p in available)
            raise SystemExit(f"no single notebook matches {name!r}; available: {known}")
        chosen.append(matches[0])
    return chosen


def error_cells(path: Path) -> list[CellError]:
    """Every cell of an executed notebook whose outputs hold an error."""
    nb = nbformat.read(path, as_version=4)
    found = []
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found.append(CellError(path, index, out.get("ename", ""), out.get("evalue", ""),
                                       cell.get("source", "")))
    return found


def quiet_environment() -> None:
    """Set :data:`QUIET_ENV` and :data:`REPRODUCIBLE_ENV` (where the caller has not) for the kernels
    papermill starts."""
    for key, value in {**QUIET_ENV, **REPRODUCIBLE_ENV}.items():
        os.environ.setdefault(key, value)


class NotebookOutput(logging.Filter):
    """Keep what the notebooks print; drop papermill's per-cell markers and figure reprs."""

    NOISE = ("Executing Cell", "Ending Cell", "<Figure size", "Executing notebook with kernel", "Input Notebook:",
             "Output Notebook:")
    # tqdm.auto's notice that widgets are missing: headless runs want the text bars it falls back to
    WARNINGS = ("IProgress not found", "from .autonotebook import tqdm")

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage().strip()
        if not text or text.startswith(self.NOISE) or any(w in text for w in self.WARNINGS):
            return False
        record.msg, record.args = text, None
        return True


def relay_notebook_output() -> None:
    """Print the notebooks' stdout/stderr as it comes: papermill logs it at INFO."""
    logger = logging.getLogger("papermill")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.addFilter(NotebookOutput())
        handler.setFormatter(logging.Formatter("    %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def execute(notebook: Path, out_dir: Path, profile: str, parameters: dict | None = None,
            log_output: bool = False) -> tuple[Path, list[CellError]]:
    """Run one notebook with papermill; return the executed copy and its error cells."""
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / notebook.name
    params = {"profile": profile, **(parameters or {})}
    quiet_environment()
    try:
        pm.execute_notebook(str(notebook), str(executed), parameters=params, cwd=str(notebook.parent),
                            progress_bar=not log_output, log_output=log_output, kernel_name="python3")
    except pm.PapermillExecutionError:
        pass  # the executed copy holds the error output; error_cells reports it
    if not executed.exists():
        return executed, [CellError(notebook, -1, "NotExecuted", "papermill wrote no output", "")]
    return executed, error_cells(executed)


def render_report(executed: list[Path], report_dir: Path) -> Path:
    """Render each executed notebook to HTML and write an index page linking them."""
    from nbconvert import HTMLExporter

    report_dir.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter()
    links = []
    for path in executed:
        if not path.exists():
            continue
        body, _ = exporter.from_filename(str(path))
        (report_dir / f"{path.stem}.html").write_text(body, encoding="utf-8")
        links.append(f'<li><a href="{path.stem}.html">{path.stem}</a></li>')
    index = report_dir / "index.html"
    index.write_text("<html><body><h1>gradtools notebooks</h1><ul>" + "".join(links)
                     + "</ul></body></html>", encoding="utf-8")
    return index


def run(names: list[str] | None, profile: str, out_dir: Path | None = None,
        report_dir: Path | None = None, report: bool = True, log_output: bool = False,
        parameters: dict | None = None) -> list[CellError]:
    """Execute the chosen notebooks in ``profile``; return all error cells found.

    ``log_output``: relay each notebook's output as it runs (the command line does);
    ``parameters``: notebook parameters besides ``profile`` (each must be one the notebooks have)."""
    check_profile(profile)
    notebooks = find_notebooks(names)
    out_dir = out_dir or BUILD / "notebooks" / profile
    errors, executed, elapsed = [], [], []
    if log_output:
        relay_notebook_output()
    for i, nb in enumerate(notebooks, 1):
        print(f"[{i}/{len(notebooks)}] {nb.name} ({profile}) ...", flush=True)
        start = time.time()
        path, found = execute(nb, out_dir, profile, parameters, log_output=log_output)
        executed.append(path)
        errors += found
        elapsed.append((nb.name, "FAILED" if found else "ok", time.time() - start))
        print(f"[{i}/{len(notebooks)}] {nb.name}: {elapsed[-1][1]} in {elapsed[-1][2]:.0f} s -> {path}", flush=True)
    print("\n".join(["elapsed per notebook:"] + [f"  {n:32s} {s:6s} {t:7.0f} s" for n, s, t in elapsed]
                    + [f"  {'total':32s} {'':6s} {sum(t for *_, t in elapsed):7.0f} s"]), flush=True)
    if report:
        index = render_report(executed, report_dir or BUILD / "report" / profile)
        print(f"report: {index}")
    return errors


def gather_claims(profile: str, readme: Path | None = README) -> pd.DataFrame:
    """Assemble the fidelity table of ``profile``; paste it into the README for the default profile.

    Once the paper profile has claims, also write the default and paper claims side by side
    (:func:`gradtools.fidelity.side_by_side`)."""
    table = fidelity.assemble(profile)
    if profile == "default" and readme is not None and table.size:
        titles = {nb.stem: fidelity.notebook_title(nb) for nb in find_notebooks()}
        fidelity.update_readme(readme, table, titles)
    if profile != "smoke" and any((paths.data_dir("paper") / "claims").glob("*.parquet")):
        fidelity.side_by_side(("default", "paper"))  # data/fidelity_by_profile.*: each claim at both scales
    return table


def notebook_parameters(pairs: list[list[str]], notebooks: list[Path]) -> dict:
    """``-p NAME VALUE`` pairs as a dict (VALUE parsed as YAML), each NAME checked to be a parameter of
    every chosen notebook, before anything runs."""
    import papermill as pm
    import yaml

    parameters = {name: yaml.safe_load(value) for name, value in pairs}
    for nb in notebooks if parameters else []:
        known = set(pm.inspect_notebook(str(nb)))
        unknown = sorted(set(parameters) - known)
        if unknown:
            raise ValueError(f"{nb.name} has no parameter(s) {unknown}; its parameters: {sorted(known)}")
    return parameters


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="names (e.g. 00_tour) or paths; default: all")
    parser.add_argument("--profile", default="default",
                        help="; ".join(f"{p}: {DESCRIPTIONS[p]}" for p in PROFILES))
    parser.add_argument("--out", type=Path, help="folder for executed copies (default build/notebooks/PROFILE)")
    parser.add_argument("--report", type=Path, help="folder for the HTML report (default build/report/PROFILE)")
    parser.add_argument("--no-report", action="store_true", help="skip the HTML report")
    parser.add_argument("--root", type=Path, help="write data/ and figures/ under this folder instead")
    parser.add_argument("--compare", action="store_true",
                        help="run nothing: compare the profile's tables with those committed at --rev")
    parser.add_argument("--rev", default="HEAD", help="git revision --compare reads (default HEAD)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="a notebook parameter, VALUE read as YAML (e.g. -p source hf:EleutherAI/pythia-14m "
                             "-p revisions '[0, 1000]'); a run with parameters leaves the README alone")
    parser.add_argument("--readme", metavar="HOW",
                        help="with --compare: paste the report, dated, into the README; HOW says how the run was made")
    args = parser.parse_args(argv)
    try:
        check_profile(args.profile)
    except ValueError as err:
        parser.error(str(err))
    if args.root:
        os.environ["GRADTOOLS_ROOT"] = str(args.root.resolve())
    if args.compare:
        report = drift.drift_report(args.profile, args.rev, since=provenance.run_started(args.profile))
        print(drift.format_report(report))
        if args.readme:
            block = drift.readme_block(report, args.rev, time.strftime("%Y-%m-%d"), args.readme)
            fidelity.paste_between(README, drift.README_START, drift.README_END, block)
        return 1 if drift.any_verdict_changed(report) else 0
    try:
        parameters = notebook_parameters(args.parameter, find_notebooks(args.notebooks))
    except ValueError as err:
        parser.error(str(err))
    started = time.time()
    errors = run(args.notebooks, args.profile, args.out, args.report, report=not args.no_report, log_output=True,
                 parameters=parameters)
    for err in errors:
        print(f"ERROR {err}", file=sys.stderr)
    if not errors:
        provenance.write_run_environment(args.profile, started)
        table = gather_claims(args.profile, README if not args.root and not parameters else None)
        print(f"fidelity table: {len(table)} claims -> data/{'' if args.profile == 'default' else args.profile + '/'}fidelity.parquet")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
