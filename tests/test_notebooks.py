"""Rules every notebook follows (see CONTRIBUTING.md), checked without running them.

nbval runs the notebooks themselves; these tests check what nbval cannot see: the
Colab install cell, the exercises and their published solutions, and the stored outputs.
"""

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

import stn_utils

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOLUTION = re.compile(r"<details><summary>Solution</summary>\s*```python\n(.*?)```", re.S)


def cells(path, kind=None):
    notebook = json.loads(path.read_text())
    return [c for c in notebook["cells"] if kind is None or c["cell_type"] == kind]


def source(cell):
    return "".join(cell["source"])


def outputs_text(cell):
    parts = []
    for output in cell.get("outputs", []):
        parts.append("".join(output.get("text", "")))
        parts.append("".join(output.get("data", {}).get("text/plain", "")))
        parts.append(output.get("ename", "") + output.get("evalue", ""))
    return "".join(parts)


def test_course_has_the_five_core_notebooks():
    names = [p.name[:2] for p in NOTEBOOKS]
    assert names[:5] == ["01", "02", "03", "04", "05"], names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_installs_stn_utils_from_the_one_repo_url(path):
    first = source(cells(path, "code")[0])
    assert f'REPO_URL = "{stn_utils.REPO_URL}"' in first, "install cell's URL differs from stn_utils.REPO_URL"
    assert 'importlib.util.find_spec("stn_utils") is None' in first, "install only when missing"


LOCAL_PATH = re.compile(r"""(["'])(/(work|root|home|Users|tmp|mnt)/|\.\./shared|[A-Za-z]:\\\\)""")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_uses_no_local_paths(path):
    """On Colab nothing of this machine exists: data come from load_dataset (which
    downloads when no folder is configured), files go to relative paths."""
    found = [match.group(0) for cell in cells(path, "code") for match in LOCAL_PATH.finditer(source(cell))]
    assert not found, f"local paths in code cells: {found}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_fast_mode_seed_summary_and_references(path):
    code = "\n".join(source(c) for c in cells(path, "code"))
    markdown = "\n".join(source(c) for c in cells(path, "markdown"))
    assert 'os.environ.get("STN_FAST") == "1"' in code
    assert "seed_everything(" in code
    assert "What you will learn" in markdown or "what you will learn" in markdown.lower()
    assert "## Summary" in markdown and "1506.02025" in markdown


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_outputs_come_from_a_run_and_hold_no_error_or_warning(path):
    code_cells = cells(path, "code")
    assert all(c.get("execution_count") for c in code_cells), "run the notebook top to bottom and save it"
    assert sum(1 for c in code_cells if source(c).startswith("# NBVAL_CHECK_OUTPUT")) >= 2
    for cell in code_cells:
        text = outputs_text(cell)
        assert not any(o["output_type"] == "error" for o in cell.get("outputs", [])), source(cell)[:200]
        assert "Warning" not in text and "Traceback" not in text, text[:500]
        for output in cell.get("outputs", []):
            if output.get("name") == "stderr":
                assert "Warning" not in output["text"] and "Error" not in output["text"], output["text"][:500]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_outputs_are_not_from_fast_mode(path):
    text = "".join(outputs_text(c) for c in cells(path, "code"))
    assert "fast mode: True" not in text


def solutions():
    for path in NOTEBOOKS:
        blocks = [b for c in cells(path, "markdown") for b in SOLUTION.findall(source(c))]
        for number, block in enumerate(blocks, 1):
            yield pytest.param(block, id=f"{path.name[:2]}-solution{number}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_two_checked_exercises_with_solutions(path):
    blocks = [b for c in cells(path, "markdown") for b in SOLUTION.findall(source(c))]
    assert len(blocks) >= 2
    unanswered = re.compile(r"^\w+ = None\b", re.M)   # the reader's answer, left for them to fill in
    checks = [c for c in cells(path, "code") if unanswered.search(source(c)) and ".check_" in source(c)]
    assert len(checks) >= 2


@pytest.mark.parametrize("block", list(solutions()))
def test_published_solution_passes_its_check(block):
    printed = io.StringIO()
    namespace = {}
    with contextlib.redirect_stdout(printed):
        exec(compile(block, "<solution>", "exec"), namespace)
    verdicts = printed.getvalue()
    assert "Correct!" in verdicts and "Not quite" not in verdicts, verdicts
