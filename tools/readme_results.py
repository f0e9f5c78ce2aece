"""Build the README's "What the notebooks measured" table from the notebooks' stored outputs.

Each row comes from one ``notebooks/NN_*.ipynb``: its number, its title (the first ``# `` heading
of its first markdown cell, without the leading ``NN · ``), how long its stored full run took
(the last ``iopub.status.idle`` minus the first ``iopub.execute_input`` that nbclient records in
each code cell's metadata) and what it measured: the stored output of its code cell whose source
starts with the line ``# README summary``, which prints one sentence built from the notebook's
own variables. A notebook without that cell gets "—" and a warning. Under the table goes the
machine each notebook's setup cell printed (``| CPU: ...``, from ``stn_utils.machine``).

The table lives in README.md between ``<!-- notebook-results:start -->`` and
``<!-- notebook-results:end -->``::

    python tools/readme_results.py           # rewrite that part of README.md
    python tools/readme_results.py --check   # exit 1 and print a diff if README.md is out of date
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
NOTEBOOKS = ROOT / "notebooks"
START = "<!-- notebook-results:start -->"
END = "<!-- notebook-results:end -->"
SUMMARY_MARK = "# README summary"
MISSING = "—"

_NUMBER_PREFIX = re.compile(r"^\d+\s*·\s*")
_MACHINE = re.compile(r"^device: (?P<device>\S+)(?:\s.*)?\| CPU: (?P<cpu>.+?)\s*$")


@dataclasses.dataclass(frozen=True)
class Row:
    """What the README shows for one notebook."""

    number: str
    title: str
    link: str
    duration: str
    summary: str
    machine: Optional[str]
    warnings: Tuple[str, ...] = ()


def notebook_paths(notebooks: Path = NOTEBOOKS) -> List[Path]:
    """The course's notebooks, ``NN_*.ipynb``, in order."""
    return sorted(Path(notebooks).glob("[0-9][0-9]_*.ipynb"))


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return source if isinstance(source, str) else "".join(source)


def _stdout(cell: dict) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream" and output.get("name") == "stdout":
            text = output.get("text", "")
            parts.append(text if isinstance(text, str) else "".join(text))
    return "".join(parts)


def _code_cells(notebook: dict) -> List[dict]:
    return [cell for cell in notebook.get("cells", []) if cell.get("cell_type") == "code"]


def notebook_title(notebook: dict) -> str:
    """The first ``# `` heading of the first markdown cell, without a leading ``NN · ``."""
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        for line in _source(cell).splitlines():
            if line.startswith("# "):
                return _NUMBER_PREFIX.sub("", line[2:].strip())
        break
    return MISSING


def _timestamp(text: str) -> datetime:
    """nbclient's ISO timestamps ('2026-12-01T09:56:46.608868Z'), on any Python from 3.9 on."""
    text = text.strip().replace("Z", "+00:00")
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)   # at most microseconds
    return datetime.fromisoformat(text)


def run_seconds(notebook: dict) -> Optional[float]:
    """Seconds from the first code cell's ``iopub.execute_input`` to the last one's
    ``iopub.status.idle``, or None when the notebook holds no such timestamps."""
    starts, ends = [], []
    for cell in _code_cells(notebook):
        execution = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in execution:
            starts.append(_timestamp(execution["iopub.execute_input"]))
        if "iopub.status.idle" in execution:
            ends.append(_timestamp(execution["iopub.status.idle"]))
    if not starts or not ends:
        return None
    return (ends[-1] - starts[0]).total_seconds()


def format_duration(seconds: Optional[float]) -> str:
    """'40 s' under a minute, '5.2 min' from there on, '< 1 s', or '—' when unknown."""
    if seconds is None or seconds < 0:
        return MISSING
    if seconds < 1:
        return "< 1 s"
    if round(seconds) < 60:
        return f"{round(seconds)} s"
    return f"{seconds / 60:.1f} min"


def summary_cell(notebook: dict) -> Optional[dict]:
    """The code cell whose source starts with the line ``# README summary``, if any."""
    for cell in _code_cells(notebook):
        lines = _source(cell).splitlines()
        if lines and lines[0].rstrip() == SUMMARY_MARK:
            return cell
    return None


def summary_text(notebook: dict) -> Optional[str]:
    """What the summary cell printed, as one line fit for a Markdown table cell; None without
    the cell or without its output."""
    cell = summary_cell(notebook)
    if cell is None:
        return None
    text = " ".join(_stdout(cell).split())
    return text.replace("|", r"\|") or None


def machine(notebook: dict) -> Optional[str]:
    """'AMD EPYC, 2 cores (device cpu)' from a stored line 'device: cpu ... | CPU: AMD EPYC, 2 cores'."""
    for cell in _code_cells(notebook):
        for line in _stdout(cell).splitlines():
            match = _MACHINE.match(line.strip())
            if match:
                return f"{match['cpu']} (device {match['device']})"
    return None


def read_row(path: Path, readme: Path = README) -> Row:
    """The README row of the notebook at ``path``."""
    path = Path(path)
    notebook = json.loads(path.read_text(encoding="utf-8"))
    warnings = []
    summary = summary_text(notebook)
    if summary is None:
        why = "no stored output in its" if summary_cell(notebook) is not None else "no"
        warnings.append(f"warning: {path.name} has {why} `{SUMMARY_MARK}` cell; its row shows {MISSING}")
    link = Path(os.path.relpath(path.resolve(), Path(readme).resolve().parent)).as_posix()
    return Row(number=path.name[:2], title=notebook_title(notebook), link=link,
               duration=format_duration(run_seconds(notebook)), summary=summary or MISSING,
               machine=machine(notebook), warnings=tuple(warnings))


def _join(names: Sequence[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def results_table(rows: Sequence[Row]) -> str:
    """The Markdown table, then the machine line, without the markers."""
    lines = ["| # | notebook | full run | what it measured |", "|---|---|---|---|"]
    for row in rows:
        title = row.title.replace("|", r"\|")
        lines.append(f"| {row.number} | [{title}]({row.link}) | {row.duration} | {row.summary} |")
    machines: Dict[str, List[str]] = {}
    for row in rows:
        if row.machine:
            machines.setdefault(row.machine, []).append(row.number)
    if machines:
        where = "; ".join(f"{_join(numbers)} on {name}" for name, numbers in machines.items())
        silent = [row.number for row in rows if not row.machine]
        lines += ["", f"Machine of each full run, as its setup cell printed it: {where}"
                  + (f"; {_join(silent)} not printed." if silent else ".")]
    return "\n".join(lines)


def replace_between_markers(text: str, block: str) -> str:
    """``text`` with everything between the START and END markers replaced by ``block``."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"README needs exactly one {START} followed by one {END}")
    head, rest = text.split(START)
    _, tail = rest.split(END)
    return f"{head}{START}\n{block}\n{END}{tail}"


def render(readme: Path = README, notebooks: Path = NOTEBOOKS) -> Tuple[str, List[str]]:
    """README.md's text as the notebooks give it, and the warnings met on the way."""
    rows = [read_row(path, readme) for path in notebook_paths(notebooks)]
    text = Path(readme).read_text(encoding="utf-8")
    warnings = [warning for row in rows for warning in row.warnings]
    return replace_between_markers(text, results_table(rows)), warnings


def check(readme: Path = README, notebooks: Path = NOTEBOOKS) -> Tuple[bool, str, List[str]]:
    """(README agrees with the notebooks, a unified diff from README.md to what they give, warnings)."""
    expected, warnings = render(readme, notebooks)
    current = Path(readme).read_text(encoding="utf-8")
    diff = "".join(difflib.unified_diff(current.splitlines(keepends=True), expected.splitlines(keepends=True),
                                        fromfile=f"{Path(readme).name} (as it is)",
                                        tofile=f"{Path(readme).name} (from the notebooks)"))
    return current == expected, diff, warnings


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 with a diff when README.md differs from the notebooks")
    parser.add_argument("--readme", type=Path, default=README, help="default: %(default)s")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOKS, help="default: %(default)s")
    args = parser.parse_args(argv)
    try:
        if args.check:
            same, diff, warnings = check(args.readme, args.notebooks)
        else:
            text, warnings = render(args.readme, args.notebooks)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for warning in warnings:
        print(warning, file=sys.stderr)
    if args.check:
        if not same:
            sys.stdout.write(diff)
            print(f"{args.readme.name} differs from the notebooks: run python tools/readme_results.py",
                  file=sys.stderr)
            return 1
        print(f"{args.readme.name} agrees with the notebooks")
        return 0
    if text != args.readme.read_text(encoding="utf-8"):
        args.readme.write_text(text, encoding="utf-8")
        print(f"rewrote the notebook results in {args.readme}")
    else:
        print(f"{args.readme.name} already agrees with the notebooks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
