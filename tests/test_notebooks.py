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
    default = f'REPO_URL = "{stn_utils.REPO_URL}"'
    override = 'REPO_URL = os.environ.get("STN_REPO_URL", REPO_URL)'  # tests/test_colab.py installs from a clone
    install = 'f"git+{REPO_URL}"'
    assert default in first, "install cell's URL differs from stn_utils.REPO_URL"
    assert override in first, "STN_REPO_URL must be able to override REPO_URL"
    assert install in first and first.index(default) < first.index(override) < first.index(install), \
        "the install must use REPO_URL after the override"
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


MACHINE_PATH = re.compile(r"(/(work|root|home|Users|tmp|mnt)/[\w.-]+/|[A-Za-z]:\\\\\w)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_stored_output_or_metadata_names_a_path_of_the_machine_that_ran_it(path):
    notebook = json.loads(path.read_text())
    stored = [outputs_text(c) for c in notebook["cells"] if c["cell_type"] == "code"]
    stored.append(json.dumps(notebook["metadata"]))   # e.g. saved widget state: progress bars
    found = [m.group(0) for text in stored for m in MACHINE_PATH.finditer(text)]
    assert not found, f"paths of the machine that ran it: {found[:5]}"


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
    stub = re.compile(r"^\s+raise NotImplementedError\b", re.M)   # a function the reader writes
    checks = [c for c in cells(path, "code")
              if (unanswered.search(source(c)) or stub.search(source(c))) and ".check_" in source(c)]
    assert len(checks) >= 2


@pytest.mark.parametrize("block", list(solutions()))
def test_published_solution_passes_its_check(block):
    printed = io.StringIO()
    namespace = {}
    with contextlib.redirect_stdout(printed):
        exec(compile(block, "<solution>", "exec"), namespace)
    verdicts = printed.getvalue()
    assert "Correct!" in verdicts and "Not quite" not in verdicts, verdicts


# ---- code-writing exercises ----------------------------------------------------------------------
# In a code-writing exercise the reader writes a function: the code cell holds a stub whose body is
# `# your code here` then `raise NotImplementedError`, followed by a check from stn_utils.exercises
# (built on check_function), which reports the untouched stub as "Not answered yet". Every notebook
# needs at least one. A notebook listed here has none yet: its test is expected to fail, and
# strict=True turns the day one is added into a loud XPASS failure. Then delete its number here.
WITHOUT_CODE_EXERCISE_YET: set[str] = set()
STUB = re.compile(r"^def (\w+)\(.*?# your code here\s*\n\s*raise NotImplementedError\b", re.S | re.M)
CHECK_CALL = re.compile(r"\b(\w+\.check_\w+)\((\w+)\)")


def code_exercises(path):
    """(index among the notebook's cells, stub function name, check call) of each code-writing exercise."""
    found = []
    for index, cell in enumerate(cells(path)):
        text = source(cell)
        if cell["cell_type"] != "code" or "raise NotImplementedError" not in text or "# your code here" not in text:
            continue
        stub, check = STUB.search(text), CHECK_CALL.search(text)
        if stub and check and check.group(2) == stub.group(1):
            found.append((index, stub.group(1), check.group(1)))
    return found


def _expect_code_exercise(path):
    if path.name[:2] in WITHOUT_CODE_EXERCISE_YET:
        return pytest.param(path, id=path.name, marks=pytest.mark.xfail(
            strict=True, reason="code-writing exercise not added yet"))
    return pytest.param(path, id=path.name)


@pytest.mark.parametrize("path", [_expect_code_exercise(p) for p in NOTEBOOKS])
def test_notebook_has_a_code_writing_exercise(path):
    """A stub (`# your code here`, `raise NotImplementedError`) passed to a `.check_` call; its stored
    output says "Not answered yet" (the notebook runs on with the stub unfilled); a later markdown
    cell publishes the solution, which defines the same function and ends with the same check."""
    exercises = code_exercises(path)
    assert exercises, ("no code-writing exercise: a code cell with `def my_...(...):`, a body of "
                       "`# your code here` and `raise NotImplementedError`, and `ex.check_...(my_...)`")
    every = cells(path)
    for index, name, check in exercises:
        stored = outputs_text(every[index])
        assert "Not answered yet" in stored and "Not quite" not in stored, stored[:300]
        later = [b for c in every[index + 1:] if c["cell_type"] == "markdown" for b in SOLUTION.findall(source(c))]
        assert later, f"no solution block after the stub of {name}"
        block = later[0]
        assert f"def {name}(" in block, f"the first solution after the stub does not define {name}"
        calls = CHECK_CALL.findall(block)
        assert calls and calls[-1] == (check, name), f"the solution of {name} does not end with {check}({name})"
