"""Notebook 03 in a real JupyterLab, in headless Chromium: run it, drag a theta slider.

nbval sees only saved outputs; this test sees what a student sees. It starts the
project's JupyterLab on localhost with a token, opens a copy of notebook 03, runs every
cell, drags the ``rotation`` slider of the theta explorer with the mouse and checks that
the rendered output image changed and that no cell shows an error.

A notebook that cannot run (its data missing, an exception in a cell, a dead kernel) fails
the test as soon as the error shows, with the cell's own error text, instead of after the
run's time-out; ``test_a_failing_cell_fails_fast_with_its_own_error`` checks that.

Needs Debian's ``chromium`` (``/usr/bin/chromium``, or ``$STN_CHROMIUM``) and the Python
``playwright`` package; ``.ci/run`` installs both. Without them the test is skipped
locally and fails under CI (``$CI`` set), so CI cannot pass by skipping it.
Screenshots go to ``artifacts/browser/`` (or ``$STN_ARTIFACTS/browser``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import headless

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = "03_affine_grids.ipynb"
FAILING = "failing.ipynb"  # written by test_a_failing_cell_fails_fast_with_its_own_error
ERROR_MIME = "application/vnd.jupyter.stderr"
LAB_SETTINGS = {
    # Render every cell, not only those in view, so the page holds every output to check.
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
    # No "get Jupyter news?" pop-up over the notebook in the screenshots.
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false"},
}
# Where the open notebook's run stands: whether every code cell has run (an execution count)
# with the kernel idle, the kernel's status, and each error output in the notebook's model
# (what the page shows in red), with the cell's number.
RUN_STATE = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    const kernel = panel.sessionContext.session?.kernel;
    const cells = Array.from(panel.content.model.cells).filter(cell => cell.type === 'code');
    const errors = [];
    cells.forEach((cell, index) => {
        for (const output of cell.outputs.toJSON()) {
            if (output.output_type === 'error') {
                errors.push({cell: index + 1, name: output.ename, value: output.evalue,
                             traceback: (output.traceback || []).join('\\n')});
            }
        }
    });
    const ran = cells.filter(cell => cell.executionCount !== null).length;
    const idle = !!kernel && kernel.status === 'idle';
    return {done: idle && cells.length > 0 && ran === cells.length, ran, cells: cells.length,
            path: panel.context.path, kernel: kernel ? kernel.status : 'none', errors};
}"""
KERNEL_GONE = ("dead", "autorestarting", "restarting", "terminating")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

pytestmark = headless.require("the browser test")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def artifacts() -> Path:
    folder = Path(os.environ.get("STN_ARTIFACTS", REPO / "artifacts")) / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory):
    """A JupyterLab server on a copy of notebook 03; yields (base URL, token, folder)."""
    folder = tmp_path_factory.mktemp("lab")
    shutil.copy(REPO / "notebooks" / NOTEBOOK, folder / NOTEBOOK)
    port, token = _free_port(), "stn-browser-test"
    settings = folder / ".lab-settings"
    for plugin, values in LAB_SETTINGS.items():
        path = settings / f"{plugin.replace(':', '/')}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {**os.environ, "STN_FAST": "1", "JUPYTER_CONFIG_DIR": str(folder / ".jupyter-config"),
           "JUPYTER_RUNTIME_DIR": str(folder / ".jupyter-runtime"), "JUPYTERLAB_SETTINGS_DIR": str(settings)}
    log = open(folder / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.expose_app_in_browser=True", "--allow-root"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start; its log:\n"
                                       + (folder / "jupyterlab.log").read_text()) from None
                time.sleep(0.5)
        yield base, token, folder
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _wait_until(predicate, timeout: float, what: str, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class NotebookFailed(AssertionError):
    """A notebook could not run: a cell raised, or the kernel died."""


def _open_notebook(page, base: str, token: str, name: str) -> None:
    """Open a notebook of the server's folder and wait for its kernel (fails if the kernel dies).

    Each notebook gets a workspace of its own, so that no tab restored from another test's
    workspace can become the notebook that JupyterLab's commands act on.
    """
    page.goto(f"{base}/lab/workspaces/{Path(name).stem}/tree/{name}?token={token}", timeout=120_000)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)

    def kernel_ready():
        status = page.evaluate(
            "() => { const k = window.jupyterapp.shell.currentWidget?.sessionContext?.session?.kernel;"
            " return k ? [k.connectionStatus, k.status] : ['none', 'none']; }")
        if status[1] == "dead":
            raise NotebookFailed(f"the kernel of {name} died while starting")
        return status == ["connected", "idle"]

    _wait_until(kernel_ready, 120, "the kernel to start")


def _error_text(error: dict) -> str:
    traceback = ANSI.sub("", error["traceback"]).strip()
    return f"cell {error['cell']} raised {error['name']}: {error['value']}\n{traceback[-4000:]}"


def run_all_cells(page, timeout: float = 300) -> float:
    """Run every cell of the open notebook; return the seconds it took.

    Fails as soon as a cell shows an error output (JupyterLab then skips the rest), with
    that cell's error and traceback, or when the kernel dies: a notebook that cannot run
    is reported by its own error within seconds, not by the time-out.
    """
    started = time.monotonic()
    page.evaluate("() => { const app = window.jupyterapp; app.shell.activateById(app.shell.currentWidget.id);"
                  " return app.commands.execute('notebook:run-all-cells'); }")
    state = {}
    while time.monotonic() - started < timeout:
        state = page.evaluate(RUN_STATE)
        if state["errors"]:
            raise NotebookFailed("the notebook stopped on an error:\n" + "\n".join(map(_error_text, state["errors"])))
        if state["kernel"] in KERNEL_GONE:
            raise NotebookFailed(f"the kernel stopped while the cells ran (status {state['kernel']!r})")
        if state["done"]:
            return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for every cell of {state.get('path')} to run: "
                         f"{state.get('ran')} of {state.get('cells')} ran, the kernel is {state.get('kernel')}")


@pytest.fixture(scope="module")
def browser():
    yield from headless.browser()


def test_theta_slider_redraws_in_jupyterlab(jupyterlab, browser, artifacts):
    base, token, folder = jupyterlab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    console_errors = []
    page.on("pageerror", lambda error: console_errors.append(str(error)))
    try:
        _open_notebook(page, base, token, NOTEBOOK)
        run_all_cells(page, timeout=300)
        page.screenshot(path=str(artifacts / "notebook03-after-run.png"), full_page=False)

        errors = page.locator(f'.jp-OutputArea-output[data-mime-type="{ERROR_MIME}"]').all_inner_texts()
        tracebacks = [text for text in errors if "Error" in text or "Traceback" in text]
        assert not tracebacks, f"cells show errors: {tracebacks}"

        slider = page.locator(".widget-slider", has_text="rotation").first
        slider.scroll_into_view_if_needed()
        explorer = slider.locator("xpath=ancestor::div[contains(@class, 'jp-OutputArea-output')][1]")
        image = explorer.locator(".widget-output img").first
        _wait_until(lambda: image.count() and image.get_attribute("src"), 30, "the explorer's image")
        before_src = image.get_attribute("src")
        readout_before = slider.locator(".widget-readout").inner_text()
        explorer.screenshot(path=str(artifacts / "slider-before.png"))
        before_pixels = image.screenshot()

        handle = slider.locator(".noUi-handle").first
        box = handle.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        for step in range(1, 11):  # a drag, not a jump: the widget sees intermediate values
            page.mouse.move(x + 2 * step, y)
        page.mouse.up()

        _wait_until(lambda: image.get_attribute("src") != before_src, 30, "the image to redraw")
        readout_after = slider.locator(".widget-readout").inner_text()
        time.sleep(0.5)  # let the last of the drag's redraws land before the screenshot
        explorer.screenshot(path=str(artifacts / "slider-after.png"))
        after_pixels = image.screenshot()
        assert readout_after != readout_before, "the rotation readout did not change"
        assert float(readout_after) > float(readout_before), (readout_before, readout_after)
        assert after_pixels != before_pixels, "the rendered image looks the same after the drag"

        errors = page.locator(f'.jp-OutputArea-output[data-mime-type="{ERROR_MIME}"]').all_inner_texts()
        assert not [t for t in errors if "Error" in t or "Traceback" in t], errors
        assert not console_errors, f"the page raised JavaScript errors: {console_errors}"

        page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
        _wait_until(lambda: not page.evaluate(
            "() => window.jupyterapp.shell.currentWidget.context.model.dirty"), 30, "the save")
    finally:
        page.screenshot(path=str(artifacts / "notebook03-final.png"))
        page.close()

    saved = json.loads((folder / NOTEBOOK).read_text())
    outputs = [output for cell in saved["cells"] if cell["cell_type"] == "code" for output in cell["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"], "the saved notebook holds an error output"
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs), \
        "the saved notebook has no live widget output"


def test_a_failing_cell_fails_fast_with_its_own_error(jupyterlab, browser, artifacts):
    """A cell that raises (as notebook 03's data cell does when the data are missing) ends the
    run at once, and the failure quotes the cell's error rather than a time-out."""
    import nbformat

    base, token, folder = jupyterlab
    message = "no CIFAR-10 here (the test's deliberate error)"
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('print("the first cell ran")'),
        nbformat.v4.new_code_cell(f"raise FileNotFoundError({message!r})"),
        nbformat.v4.new_code_cell("import time\ntime.sleep(600)  # never reached: JupyterLab stops at the error"),
    ])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, folder / FAILING)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        _open_notebook(page, base, token, FAILING)
        started = time.monotonic()
        with pytest.raises(NotebookFailed) as failure:
            run_all_cells(page, timeout=60)
        elapsed = time.monotonic() - started
        page.screenshot(path=str(artifacts / "failing-notebook.png"))
    finally:
        page.close()
    assert f"cell 2 raised FileNotFoundError: {message}" in str(failure.value), str(failure.value)
    assert "Traceback" in str(failure.value) or "FileNotFoundError" in str(failure.value).split("\n", 1)[1]
    assert elapsed < 30, f"the failure took {elapsed:.0f} s to report"
