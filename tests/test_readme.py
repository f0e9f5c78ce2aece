"""README.md and the notebooks agree: the results table is what tools/readme_results.py builds
from the notebooks' stored outputs, and the notebook list names every notebook. The script's
parts are tested on a tiny synthetic notebook."""

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_script():
    spec = importlib.util.spec_from_file_location("readme_results", ROOT / "tools" / "readme_results.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


rr = _load_script()


# ---- the real README -------------------------------------------------------------------------------

def test_readme_results_agree_with_the_notebooks():
    same, diff, _ = rr.check()
    assert same, "README.md's results differ from the notebooks; run python tools/readme_results.py\n" + diff


def test_readme_lists_every_notebook_with_a_colab_badge():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in rr.notebook_paths():
        link = f"notebooks/{path.name}"
        assert f"]({link})" in readme, f"README does not link {link}"
        badge = f"colab.research.google.com/github/stn-course/stn-course/blob/main/{link}"
        assert badge in readme, f"README has no Colab badge for {link}"


def test_readme_gives_the_data_step_before_the_tests():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "STN_DATA_DIR" in quick_start and "mnist-png.tar.gz" in quick_start
    assert quick_start.index("STN_DATA_DIR") < quick_start.index("pytest")
    assert "download.pytorch.org/whl/cpu" in quick_start


# ---- the script's parts, on a synthetic notebook ----------------------------------------------------------

def markdown(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text.splitlines(keepends=True)}


def code(text, stdout="", start=None, idle=None):
    execution = {}
    if start:
        execution["iopub.execute_input"] = start
    if idle:
        execution["iopub.status.idle"] = idle
    outputs = [{"output_type": "stream", "name": "stdout", "text": stdout.splitlines(keepends=True)}] if stdout else []
    return {"cell_type": "code", "execution_count": 1, "metadata": {"execution": execution},
            "outputs": outputs, "source": text.splitlines(keepends=True)}


def tiny_notebook(summary="The tiny run scored 12.5 % | or so.\n", with_summary=True):
    cells = [
        markdown("# 07 · A tiny notebook\n\n**What you will learn**\n- nothing much\n"),
        code("import os", start="2026-12-01T10:00:00.000000Z", idle="2026-12-01T10:00:01.000000Z"),
        code('print("device:", device, "| fast mode:", FAST, "| CPU:", describe_machine())',
             stdout="device: cpu | fast mode: False | CPU: Test CPU 9000, 2 cores\n",
             start="2026-12-01T10:00:01.000000Z", idle="2026-12-01T10:00:02.000000Z"),
        code("x = 1\n# README summary\nprint('not this one')", stdout="not this one\n",
             start="2026-12-01T10:00:02.000000Z", idle="2026-12-01T10:05:00.000000Z"),
    ]
    if with_summary:
        cells.append(code(f"# README summary\nprint({summary!r})", stdout=summary,
                          start="2026-12-01T10:05:00.000000Z", idle="2026-12-01T10:05:12.123456789Z"))
    cells.append(markdown("## Summary\n- done\n"))
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


README_TEXT = f"""# A course

Intro.

## What the notebooks measured

{rr.START}
old table
{rr.END}

## Next section
kept as it is
"""


@pytest.fixture
def project(tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (notebooks / "07_tiny.ipynb").write_text(json.dumps(tiny_notebook()))
    (notebooks / "08_silent.ipynb").write_text(json.dumps(tiny_notebook(with_summary=False)))
    (notebooks / "scratch.ipynb").write_text(json.dumps(tiny_notebook()))   # not NN_*: not in the table
    readme = tmp_path / "README.md"
    readme.write_text(README_TEXT)
    return readme, notebooks


def test_title_drops_the_number_and_takes_the_first_heading():
    assert rr.notebook_title(tiny_notebook()) == "A tiny notebook"
    notebook = {"cells": [markdown("Some words first.\n\n# Plain title\n## not this\n")]}
    assert rr.notebook_title(notebook) == "Plain title"
    assert rr.notebook_title({"cells": [code("x = 1"), markdown("# 12 · Late\n")]}) == "Late"


def test_run_duration_spans_first_input_to_last_idle():
    assert rr.run_seconds(tiny_notebook()) == pytest.approx(312.123456)
    assert rr.run_seconds({"cells": [code("x = 1")]}) is None


@pytest.mark.parametrize("seconds, shown", [(40, "40 s"), (40.4, "40 s"), (59.4, "59 s"), (59.6, "1.0 min"),
                                            (312, "5.2 min"), (1800, "30.0 min"), (0.3, "< 1 s"),
                                            (None, "—")])
def test_duration_formatting(seconds, shown):
    assert rr.format_duration(seconds) == shown


def test_summary_is_the_stdout_of_the_cell_that_starts_with_the_mark():
    assert rr.summary_text(tiny_notebook()) == r"The tiny run scored 12.5 % \| or so."
    two_lines = tiny_notebook(summary="first line\n  second line\n")
    assert rr.summary_text(two_lines) == "first line second line"
    assert rr.summary_text(tiny_notebook(with_summary=False)) is None


def test_machine_comes_from_the_setup_cell():
    assert rr.machine(tiny_notebook()) == "Test CPU 9000, 2 cores (device cpu)"
    assert rr.machine({"cells": [code("print(1)", stdout="device: cpu\n")]}) is None


def test_marker_replacement_keeps_the_rest():
    replaced = rr.replace_between_markers(README_TEXT, "new table")
    assert f"{rr.START}\nnew table\n{rr.END}" in replaced and "old table" not in replaced
    assert replaced.startswith("# A course\n\nIntro.") and replaced.endswith("## Next section\nkept as it is\n")
    assert rr.replace_between_markers(replaced, "new table") == replaced
    for broken in ("no markers", f"{rr.END}\n{rr.START}", f"{rr.START}\n{rr.START}\n{rr.END}"):
        with pytest.raises(ValueError):
            rr.replace_between_markers(broken, "x")


def test_table_rows_and_a_missing_summary(project):
    readme, notebooks = project
    text, warnings = rr.render(readme, notebooks)
    table = text.split(rr.START)[1].split(rr.END)[0]
    rows = [line for line in table.splitlines() if re.match(r"\| \d\d \|", line)]
    assert rows == [
        r"| 07 | [A tiny notebook](notebooks/07_tiny.ipynb) | 5.2 min | The tiny run scored 12.5 % \| or so. |",
        "| 08 | [A tiny notebook](notebooks/08_silent.ipynb) | 5.0 min | — |",
    ]
    assert "07 and 08 on Test CPU 9000, 2 cores (device cpu)" in table
    assert len(warnings) == 1 and "08_silent.ipynb" in warnings[0] and "README summary" in warnings[0]


def test_check_and_rewrite(project, capsys):
    readme, notebooks = project
    same, diff, _ = rr.check(readme, notebooks)
    assert not same and "-old table" in diff
    args = ["--readme", str(readme), "--notebooks", str(notebooks)]
    assert rr.main(["--check", *args]) == 1
    captured = capsys.readouterr()
    assert "-old table" in captured.out and "08_silent.ipynb" in captured.err
    assert readme.read_text() == README_TEXT                                   # --check changes nothing
    assert rr.main(args) == 0
    assert "old table" not in readme.read_text() and "## Next section\nkept as it is\n" in readme.read_text()
    assert rr.main(["--check", *args]) == 0                 # a notebook without the cell does not fail the check
    assert rr.check(readme, notebooks)[0]


def test_check_fails_without_markers(project, capsys):
    readme, notebooks = project
    readme.write_text("# A course\n")
    assert rr.main(["--check", "--readme", str(readme), "--notebooks", str(notebooks)]) == 1
    assert "notebook-results:start" in capsys.readouterr().err
