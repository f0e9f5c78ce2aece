"""Headless Chromium for the browser tests: Debian's build, driven by the playwright package.

Playwright's own browser download is never used: every test launches the Chromium at
``/usr/bin/chromium`` (or ``$STN_CHROMIUM``) with the flags below. A test module that
needs it calls :func:`require`, which skips the module when something is missing, except
under CI (``$CI`` set), where a skip would let CI pass without the test, so it fails.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("STN_CHROMIUM", "/usr/bin/chromium")
# Without the networking flags Chromium keeps trying to reach Google's services, which a
# closed network refuses; --no-sandbox because CI runs as root.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
INSTALL_HINTS = {
    "playwright": "pip install playwright",
    "sphinx": "pip install -e '.[docs]'",
    "myst_nb": "pip install -e '.[docs]'",
    "sphinx_book_theme": "pip install -e '.[docs]'",
}


def missing(modules: tuple[str, ...] = ("playwright",)) -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)"
    for module in modules:
        if importlib.util.find_spec(module) is None:
            return f"the {module} package is missing ({INSTALL_HINTS.get(module, 'pip install ' + module)})"
    return None


def require(what: str, modules: tuple[str, ...] = ("playwright",)):
    """A ``pytestmark`` that skips when Chromium or ``modules`` are missing; under CI, an error instead."""
    reason = missing(modules)
    if reason and os.environ.get("CI"):
        raise RuntimeError(f"{what} cannot run under CI: {reason}. .ci/run should install it.")
    return pytest.mark.skipif(reason is not None, reason=reason or "")


def launch(playwright):
    """Debian's Chromium, headless, with the flags above."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def browser():
    """A headless Chromium for a module-scoped fixture: ``yield from headless.browser()``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        try:
            yield chromium
        finally:
            chromium.close()
