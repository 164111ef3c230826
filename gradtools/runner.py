"""Execute the notebooks headlessly with papermill, check them, and report.

    python -m gradtools.runner --profile default            # every notebook
    python -m gradtools.runner --profile smoke 00_tour      # by name or path

Executed copies go to ``build/notebooks/<profile>/`` (never into
``notebooks/``); each one is scanned for error outputs, and an HTML report of
all of them is rendered with nbconvert into ``build/report/<profile>/``. The
exit status is non-zero when any notebook failed, and the message names the
notebook and the cell.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from tqdm.auto import tqdm

from .paths import PACKAGE_ROOT
from .profiles import DESCRIPTIONS, PROFILES, check_profile

NOTEBOOKS = PACKAGE_ROOT / "notebooks"
BUILD = PACKAGE_ROOT / "build"


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


def execute(notebook: Path, out_dir: Path, profile: str, parameters: dict | None = None) -> tuple[Path, list[CellError]]:
    """Run one notebook with papermill; return the executed copy and its error cells."""
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / notebook.name
    params = {"profile": profile, **(parameters or {})}
    try:
        pm.execute_notebook(str(notebook), str(executed), parameters=params,
                            cwd=str(notebook.parent), progress_bar=True, kernel_name="python3")
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
        report_dir: Path | None = None, report: bool = True) -> list[CellError]:
    """Execute the chosen notebooks in ``profile``; return all error cells found."""
    check_profile(profile)
    notebooks = find_notebooks(names)
    out_dir = out_dir or BUILD / "notebooks" / profile
    errors, executed = [], []
    for nb in tqdm(notebooks, desc=f"notebooks ({profile})", unit="nb"):
        start = time.time()
        path, found = execute(nb, out_dir, profile)
        executed.append(path)
        errors += found
        status = "FAILED" if found else "ok"
        tqdm.write(f"{nb.name}: {status} in {time.time() - start:.0f} s -> {path}")
    if report:
        index = render_report(executed, report_dir or BUILD / "report" / profile)
        tqdm.write(f"report: {index}")
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="names (e.g. 00_tour) or paths; default: all")
    parser.add_argument("--profile", default="default",
                        help="; ".join(f"{p}: {DESCRIPTIONS[p]}" for p in PROFILES))
    parser.add_argument("--out", type=Path, help="folder for executed copies (default build/notebooks/PROFILE)")
    parser.add_argument("--report", type=Path, help="folder for the HTML report (default build/report/PROFILE)")
    parser.add_argument("--no-report", action="store_true", help="skip the HTML report")
    parser.add_argument("--root", type=Path, help="write data/ and figures/ under this folder instead")
    args = parser.parse_args(argv)
    try:
        check_profile(args.profile)
    except ValueError as err:
        parser.error(str(err))
    if args.root:
        os.environ["GRADTOOLS_ROOT"] = str(args.root.resolve())
    errors = run(args.notebooks, args.profile, args.out, args.report, report=not args.no_report)
    for err in errors:
        print(f"ERROR {err}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
