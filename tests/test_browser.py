"""Notebook 03 in a real JupyterLab, in headless Chromium: run it, drag a theta slider.

nbval sees only saved outputs; this test sees what a student sees. It starts the
project's JupyterLab on localhost with a token, opens a copy of notebook 03, runs every
cell, drags the ``rotation`` slider of the theta explorer with the mouse and checks that
the rendered output image changed and that no cell shows an error.

Needs Debian's ``chromium`` (``/usr/bin/chromium``, or ``$STN_CHROMIUM``) and the Python
``playwright`` package; ``.ci/run`` installs both. Without them the test is skipped
locally and fails under CI (``$CI`` set), so CI cannot pass by skipping it.
Screenshots go to ``artifacts/browser/`` (or ``$STN_ARTIFACTS/browser``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = "03_affine_grids.ipynb"
CHROMIUM = os.environ.get("STN_CHROMIUM", "/usr/bin/chromium")
# Without the networking flags Chromium keeps trying to reach Google's services, which a
# closed network refuses; --no-sandbox because CI runs as root.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ERROR_MIME = "application/vnd.jupyter.stderr"
LAB_SETTINGS = {
    # Render every cell, not only those in view, so the page holds every output to check.
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
    # No "get Jupyter news?" pop-up over the notebook in the screenshots.
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false"},
}
# Every code cell of the open notebook has run (an execution count) and the kernel is idle.
ALL_CELLS_RAN = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    const kernel = panel.sessionContext.session?.kernel;
    if (!kernel || kernel.status !== 'idle') return false;
    const cells = Array.from(panel.content.model.cells).filter(cell => cell.type === 'code');
    return cells.length > 0 && cells.every(cell => cell.executionCount !== null);
}"""


def _requirements_missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install playwright)"
    return None


missing = _requirements_missing()
if missing and os.environ.get("CI"):
    raise RuntimeError(f"the browser test cannot run under CI: {missing}. .ci/run should install it.")
pytestmark = pytest.mark.skipif(missing is not None, reason=missing or "")


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
                                       + (folder / "jupyterlab.log").read_text())
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


def test_theta_slider_redraws_in_jupyterlab(jupyterlab, artifacts):
    from playwright.sync_api import sync_playwright

    base, token, folder = jupyterlab
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        console_errors = []
        page.on("pageerror", lambda error: console_errors.append(str(error)))
        try:
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}", timeout=120_000)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            _wait_until(lambda: page.evaluate(
                "() => { const w = window.jupyterapp.shell.currentWidget;"
                " return !!(w && w.sessionContext && w.sessionContext.session"
                " && w.sessionContext.session.kernel"
                " && w.sessionContext.session.kernel.connectionStatus === 'connected'"
                " && w.sessionContext.session.kernel.status === 'idle'); }"),
                120, "the kernel to start")

            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            _wait_until(lambda: page.evaluate(ALL_CELLS_RAN), 300, "every cell to run")
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
            browser.close()

    saved = json.loads((folder / NOTEBOOK).read_text())
    outputs = [output for cell in saved["cells"] if cell["cell_type"] == "code" for output in cell["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"], "the saved notebook holds an error output"
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs), \
        "the saved notebook has no live widget output"
