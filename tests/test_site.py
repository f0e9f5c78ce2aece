"""The course's website: built from the notebooks' stored outputs, opened page by page in Chromium.

The site is built once for this module with the README's command (Sphinx with ``-W``, so
a warning fails the build), inside a network namespace of its own where the system allows
one, so the build provably needs no network. It is then served from a temporary folder on
127.0.0.1, and headless Chromium opens every HTML page of it and checks that

- the page has a title and a visible heading (on pages made from docs/ and the notebooks,
  the title starts with it);
- every ``<img>`` loaded (``naturalWidth > 0``);
- no JavaScript error was raised and nothing was logged as a console error;
- nothing was requested from another host (the site works offline);
- no link to the site itself leads to a missing file, or to an anchor the page lacks.

Further tests check the landing page against ``notebooks/``, the Colab badge of each
notebook page, the stored figures and GIFs, and the theta explorer's PNG in place of its
widget. Screenshots go to ``artifacts/site/`` (or ``$STN_ARTIFACTS/site``).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import pytest

import headless
import stn_utils

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# The README's build command, less its folders (doctrees, sources, output).
SPHINX = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html"]
IMAGE_MIMES = ("image/png", "image/gif", "image/jpeg", "image/svg+xml")

# The build's helpers are tested without a browser; every other test needs Chromium and Sphinx.
browser_test = headless.require("the site test", modules=("playwright", "sphinx", "myst_nb", "sphinx_book_theme"))

sys.path.insert(0, str(DOCS / "_ext"))
import course_site  # noqa: E402  (docs/_ext: the helpers the build uses)

# After load: start any lazy image, wait for every image to settle, list those that failed.
BROKEN_IMAGES = """async () => {
    const images = Array.from(document.images);
    images.forEach(image => { image.loading = 'eager'; });
    await Promise.all(images.map(image => image.complete ? null : new Promise(done => {
        image.addEventListener('load', done, {once: true});
        image.addEventListener('error', done, {once: true});
        setTimeout(done, 15000);
    })));
    return images.filter(image => !(image.complete && image.naturalWidth > 0))
                 .map(image => image.getAttribute('src') || image.outerHTML.slice(0, 200));
}"""
PAGE_FACTS = """() => ({
    title: document.title,
    headings: Array.from(document.querySelectorAll('main h1, article h1, h1'))
        .filter(h => h.offsetParent !== null)
        .map(h => h.innerText.replace(/[#¶]\\s*$/, '').trim()),
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
    ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id)
        .concat(Array.from(document.querySelectorAll('a[name]')).map(a => a.name)),
})"""


def _network_isolated() -> list[str]:
    """A command prefix that runs its command without network, where this system allows it."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-rn", "true"], capture_output=True).returncode == 0:
        return [unshare, "-rn"]
    return []


@pytest.fixture(scope="module")
def artifacts() -> Path:
    folder = Path(os.environ.get("STN_ARTIFACTS", REPO / "artifacts")) / "site"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def site(tmp_path_factory, artifacts) -> Path:
    """The built site's folder (Sphinx -W, without network where possible)."""
    out = tmp_path_factory.mktemp("site")
    command = _network_isolated() + SPHINX + [str(DOCS), str(out / "html"), "-d", str(out / "doctrees")]
    started = time.monotonic()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    log = f"$ {' '.join(command)}\n{result.stdout}\n{result.stderr}"
    (artifacts / "sphinx-build.log").write_text(log)
    assert result.returncode == 0, f"the site does not build ({time.monotonic() - started:.0f} s):\n{log[-6000:]}"
    return out / "html"


class _Handler(SimpleHTTPRequestHandler):
    requests: list[tuple[str, int]]

    def log_request(self, code="-", size="-"):
        self.requests.append((self.path, int(getattr(code, "value", code))))

    def log_message(self, format, *args):  # quiet: the test reports what matters
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # not a request the browser dropped
            super().handle_error(request, client_address)


@pytest.fixture(scope="module")
def server(site):
    """Serves the built site on a free port of 127.0.0.1; yields (base URL, requests log)."""
    requests: list[tuple[str, int]] = []
    handler = type("Handler", (_Handler,), {"requests": requests})
    httpd = _Server(("127.0.0.1", 0), functools.partial(handler, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", requests
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    yield from headless.browser()


class Visitor:
    """One browser page that records errors, failed responses and requests to other hosts."""

    def __init__(self, browser, base: str):
        self.base = base
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        self.page.on("console", lambda message: message.type == "error"
                     and self.errors.append(f"console error: {message.text}"))
        self.page.on("response", lambda response: response.status >= 400
                     and self.errors.append(f"HTTP {response.status}: {response.url}"))
        self.page.route("**/*", self._route)

    def _route(self, route):
        url = route.request.url
        if url.startswith(self.base) or not url.startswith(("http:", "https:")):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def visit(self, url: str) -> dict:
        """Open a page; return its facts and the problems seen while it loaded."""
        self.errors, self.outside = [], []
        response = self.page.goto(url, wait_until="load", timeout=60_000)
        facts = self.page.evaluate(PAGE_FACTS)
        facts["broken_images"] = self.page.evaluate(BROKEN_IMAGES)
        self.page.wait_for_timeout(100)  # late console messages of the page's scripts
        facts["status"] = response.status if response else None
        facts["errors"], facts["outside"] = list(self.errors), list(self.outside)
        return facts


def _pages(site: Path) -> list[str]:
    """Every page of the site (the theme's _static/ holds HTML templates, not pages)."""
    return sorted(path.relative_to(site).as_posix() for path in site.rglob("*.html")
                  if not path.relative_to(site).as_posix().startswith("_static/"))


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@browser_test
def test_every_page_renders_with_its_images_links_and_no_errors(site, server, browser, artifacts):
    base, requests = server
    pages = _pages(site)
    assert "index.html" in pages and len(pages) >= len(NOTEBOOKS) + 3, pages
    visitor = Visitor(browser, base)
    problems, facts_by_url = [], {}
    for name in pages:
        url = urljoin(base, name)
        facts = facts_by_url[url] = visitor.visit(url)
        if facts["status"] != 200:
            problems.append(f"{name}: HTTP {facts['status']}")
        title, headings = " ".join(facts["title"].split()), facts["headings"]
        if not title or not headings or not headings[0]:
            problems.append(f"{name}: no title ({title!r}) or no visible heading ({headings})")
        elif not name.startswith("_modules/") and not title.startswith(" ".join(headings[0].split())):
            # a page of the docs' own sources (not viewcode's "Source code for ..." pages)
            problems.append(f"{name}: title {title!r} does not start with the page's heading {headings[0]!r}")
        problems += [f"{name}: image did not load: {src}" for src in facts["broken_images"]]
        problems += [f"{name}: {error}" for error in facts["errors"]]
        problems += [f"{name}: requested another host: {outside}" for outside in facts["outside"]]
        if name == "index.html":
            visitor.page.screenshot(path=str(artifacts / "landing.png"), full_page=True)

    links = {link for facts in facts_by_url.values() for link in facts["links"] if link.startswith(base)}
    for link in sorted(links):
        target, fragment = urldefrag(link)
        if target in facts_by_url:
            if fragment and fragment not in facts_by_url[target]["ids"]:
                problems.append(f"link to a missing anchor: {link}")
        elif _status(target) >= 400:
            problems.append(f"link to a missing file: {link}")
    problems += [f"the server answered {code} for {path}" for path, code in requests if code >= 400]
    visitor.page.close()
    assert not problems, f"{len(problems)} problems on {len(pages)} pages:\n" + "\n".join(problems)


def _notebook_url(base: str, path: Path) -> str:
    return urljoin(base, f"notebooks/{path.stem}.html")


@browser_test
def test_landing_page_lists_every_notebook_in_order(server, browser):
    base, _ = server
    page = browser.new_page()
    page.goto(base, wait_until="load")
    table_links = page.eval_on_selector_all("main table a[href]", "links => links.map(a => a.href)")
    expected = [_notebook_url(base, path) for path in NOTEBOOKS]
    assert [link for link in table_links if "/notebooks/" in link] == expected
    navigation = page.eval_on_selector_all("nav a[href*='notebooks/']", "links => links.map(a => a.href)")
    assert [link for link in expected if link not in navigation] == [], "notebooks missing from the navigation"
    page.close()


def _colab_url(path: Path) -> str:
    # The README's badge pattern, built from the one repository URL.
    owner_and_name = urlparse(stn_utils.REPO_URL).path.strip("/")
    return f"https://colab.research.google.com/github/{owner_and_name}/blob/main/notebooks/{path.name}"


@browser_test
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_notebook_page_has_colab_badge_and_every_stored_figure(path, server, browser, artifacts):
    base, _ = server
    notebook = json.loads(path.read_text())
    stored = [output for cell in notebook["cells"] for output in cell.get("outputs", [])
              if any(mime in output.get("data", {}) for mime in IMAGE_MIMES)]
    gifs = sum("image/gif" in output["data"] for output in stored)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(_notebook_url(base, path), wait_until="load")
    assert page.evaluate(BROKEN_IMAGES) == []

    badge = page.locator(f'a[href="{_colab_url(path)}"] img')
    assert badge.count() == 1, f"no Colab badge linking to {_colab_url(path)}"
    assert badge.evaluate("image => image.naturalWidth") > 0
    heading_and_badge = page.evaluate("""() => {
        const h1 = document.querySelector('article h1'), badge = document.querySelector('a[href*="colab"] img');
        return [h1.getBoundingClientRect().top, badge.getBoundingClientRect().top];
    }""")
    assert heading_and_badge[0] < heading_and_badge[1] < heading_and_badge[0] + 200, "badge not under the title"

    shown = page.eval_on_selector_all(".cell_output img", "images => images.map(i => i.getAttribute('src'))")
    assert len(shown) == len(stored), f"{len(stored)} stored figures, {len(shown)} on the page"
    assert sum(src.endswith(".gif") for src in shown) == gifs, "a GIF animation is missing"
    assert page.locator("script[type*='jupyter.widget']").count() == 0, "a widget that needs a kernel"
    if any("$" in "".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "markdown"):
        page.wait_for_selector("mjx-container", state="attached", timeout=30_000)  # MathJax, from the site
    if path.name.startswith("03"):
        page.screenshot(path=str(artifacts / "notebook-03.png"))
    page.close()


@browser_test
def test_theta_explorer_shows_its_stored_png(server, browser, artifacts):
    path = next(p for p in NOTEBOOKS if p.name.startswith("03"))
    base, _ = server
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(_notebook_url(base, path), wait_until="load")
    cell = page.locator("div.cell", has=page.locator(".cell_input", has_text="theta_explorer(")).first
    image = cell.locator(".cell_output img")
    assert image.count() == 1, "the theta explorer's cell shows no image"
    image.scroll_into_view_if_needed()
    assert image.evaluate("image => image.complete && image.naturalWidth") > 200
    assert "run the notebook to move the sliders" not in cell.inner_text()
    cell.screenshot(path=str(artifacts / "notebook-03-theta-explorer.png"))
    page.close()


# The build's helpers, on their own (no build or browser needed).

def test_widget_outputs_become_their_png_or_their_saved_text():
    bar = {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_a", "IPY_MODEL_b", "IPY_MODEL_c"]}}
    state = {"bar": bar,
             "a": {"model_name": "HTMLModel", "state": {"value": "epochs:\u2007100%"}},
             "b": {"model_name": "FloatProgressModel", "state": {"value": 3.0, "max": 4.0}},
             "c": {"model_name": "HTMLModel", "state": {"value": "\u20073/4\u2007[00:07&lt;00:02]"}}}
    view = {"application/vnd.jupyter.widget-view+json": {"model_id": "bar"}}
    notebook = {"metadata": {"widgets": {"application/vnd.jupyter.widget-state+json": {"state": state}}},
                "cells": [{"cell_type": "code", "outputs": [
                    {"output_type": "display_data", "data": {**view, "text/plain": "epochs: 0%"}},
                    {"output_type": "display_data", "data": {**view, "image/png": "iVBOR", "text/plain": "x"}}]}]}
    course_site.static_widget_outputs(notebook)
    first, second = (output["data"] for output in notebook["cells"][0]["outputs"])
    assert first == {"text/plain": "epochs: 100%|████████  | 3/4 [00:07<00:02]"}
    assert second == {"image/png": "iVBOR", "text/plain": "x"}
    assert "widgets" not in notebook["metadata"]


def test_a_new_notebook_gets_a_page_and_a_row_on_the_landing_page(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "docs").mkdir()
    new = {"cells": [{"cell_type": "markdown", "source": ["# 07 · Something new\n", "\n", "**What you will learn**\n",
                                                          "- how a new notebook\n", "  gets its row;\n", "- more\n"]}]}
    (tmp_path / "notebooks" / "07_something_new.ipynb").write_text(json.dumps(new))
    (tmp_path / "docs" / "notebooks").mkdir()
    (tmp_path / "docs" / "notebooks" / "99_gone.ipynb").write_text("{}")
    assert course_site.sync_notebooks(tmp_path, tmp_path / "docs") == ["07_something_new.ipynb"]
    assert sorted(p.name for p in (tmp_path / "docs" / "notebooks").iterdir()) == ["07_something_new.ipynb"]

    landing = ("text\n\n| # | notebook | what it measured |\n|---|---|---|\n"
               "| 01 | [One](notebooks/01_one.ipynb) | a number |\n\nmore text\n")
    notebooks = [("01_one.ipynb", {"cells": []}), ("07_something_new.ipynb", new)]
    completed = course_site.complete_notebook_table(landing, notebooks)
    assert completed == landing.replace(
        "| a number |\n", "| a number |\n| 07 | [Something new](notebooks/07_something_new.ipynb) "
        "| how a new notebook gets its row |\n")


def test_colab_url_follows_the_readme_badges():
    readme = (REPO / "README.md").read_text()
    for path in NOTEBOOKS:
        url = course_site.colab_url(stn_utils.REPO_URL, path.name)
        assert url == _colab_url(path)
        if f"notebooks/{path.name})" in readme:  # the README's table has a badge for it
            assert f"({url})" in readme, f"README's badge for {path.name} differs from {url}"


def test_api_pages_of_modules_that_are_gone_are_removed(tmp_path):
    for name in ("stn_utils.geometry", "stn_utils.no_such_module", "no_such_package.module"):
        (tmp_path / f"{name}.rst").write_text(name)
    assert course_site.remove_stale_api_pages(tmp_path) == ["no_such_package.module", "stn_utils.no_such_module"]
    assert [page.name for page in tmp_path.iterdir()] == ["stn_utils.geometry.rst"]
