"""Sphinx extension that turns the course's notebooks into website pages.

Sphinx only reads files under its source folder, so at start-up every
``notebooks/NN_*.ipynb`` of the repository is copied into ``docs/notebooks/``
(git-ignored; a copy is rewritten only when its notebook changed, and copies of
notebooks that are gone are removed). Nothing is executed: the pages show the
outputs stored in the notebooks.

While Sphinx reads a notebook page, its JSON is adjusted for a static page:

- an "Open in Colab" badge goes under the title, built from ``stn_utils.REPO_URL``
  (the pattern of the README's badges);
- ipywidgets need a live kernel, so a widget output is replaced by what the cell
  stored beside it: its PNG where it has one (the theta explorer), otherwise the
  text of the widget's saved state (a tqdm bar's last line, e.g.
  ``epochs: 100%|██████████| 2/2 [01:14<00:00, ...]``) instead of the bar's first,
  empty frame. The saved widget state itself is dropped, so no page loads the
  widget manager's JavaScript;
- the landing page's notebook table gets a row for every notebook it does not list
  yet, from the notebook's title and the first point of its "What you will learn".

autosummary writes the API pages into ``docs/api/`` but never deletes one, so pages of
modules that no longer exist are removed at start-up (they would fail the build).
"""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

NOTEBOOK_PATTERN = "[0-9][0-9]_*.ipynb"
NOTEBOOK_DIR = "notebooks"  # inside the Sphinx source folder; the pages' URLs are notebooks/NN_*.html
API_DIR = "api"  # autosummary's pages (docs/api.md's :toctree:)
BADGE = "_static/colab-badge.svg"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
TABLE_HEADER = "| # | notebook |"
_TITLE = re.compile(r"^#\s+(.*)$", re.M)
_NUMBER_PREFIX = re.compile(r"^\d\d\s*[·.:-]\s*")
_TAG = re.compile(r"<[^>]+>")


def repository_notebooks(repo: Path) -> list[Path]:
    """The course's notebooks, in order: every ``notebooks/NN_*.ipynb``."""
    return sorted((repo / "notebooks").glob(NOTEBOOK_PATTERN))


def colab_url(repo_url: str, notebook_name: str, branch: str = "main") -> str:
    """The Colab address of a notebook of the GitHub repository ``repo_url``."""
    match = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+?)(?:\.git)?/?", repo_url)
    if not match:
        raise ValueError(f"not a GitHub repository URL: {repo_url!r}")
    owner, name = match.groups()
    return f"https://colab.research.google.com/github/{owner}/{name}/blob/{branch}/notebooks/{notebook_name}"


def sync_notebooks(repo: Path, srcdir: Path) -> list[str]:
    """Copy the repository's notebooks into ``srcdir/notebooks``; return their names."""
    target = srcdir / NOTEBOOK_DIR
    target.mkdir(exist_ok=True)
    sources = repository_notebooks(repo)
    for source in sources:
        copy = target / source.name
        if not copy.exists() or copy.read_bytes() != source.read_bytes():
            shutil.copyfile(source, copy)
    names = {source.name for source in sources}
    for stale in target.glob("*.ipynb"):
        if stale.name not in names:
            stale.unlink()
    return sorted(names)


def _widget_text(state: dict, model_id: str) -> str | None:
    """The text a saved widget shows, for text-like widgets and boxes of them."""
    model = state.get(model_id)
    if model is None:
        return None
    name, values = model.get("model_name", ""), model.get("state", {})
    if "children" in values:
        parts = [_widget_text(state, child.replace("IPY_MODEL_", "", 1)) for child in values["children"]]
        parts = [part for part in parts if part]
        return "".join(parts) or None
    if name in ("HTMLModel", "LabelModel", "TextModel"):
        text = html.unescape(_TAG.sub("", str(values.get("value", ""))))
        return text.replace("\u2007", " ") or None
    if name in ("FloatProgressModel", "IntProgressModel") and values.get("max"):
        filled = round(10 * float(values.get("value", 0)) / float(values["max"]))
        filled = min(max(filled, 0), 10)
        return "|" + "█" * filled + " " * (10 - filled) + "|"
    return None


def static_widget_outputs(notebook: dict) -> dict:
    """Replace widget outputs by their stored PNG or their saved text; drop the widget state."""
    widgets = notebook.get("metadata", {}).pop("widgets", None) or {}
    state = widgets.get(WIDGET_STATE, {}).get("state", {})
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            view = data.pop(WIDGET_VIEW, None)
            if view is None or "image/png" in data:
                continue
            text = _widget_text(state, view.get("model_id", ""))
            if text:
                data["text/plain"] = text
    return notebook


def notebook_title(notebook: dict) -> str:
    """The notebook's first markdown heading, without its ``NN ·`` prefix."""
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "markdown":
            match = _TITLE.search("".join(cell["source"]))
            if match:
                return _NUMBER_PREFIX.sub("", match.group(1).strip())
    return ""


def first_learning_point(notebook: dict) -> str:
    """The first bullet after "What you will learn", on one line."""
    for cell in notebook.get("cells", []):
        text = "".join(cell.get("source", "")) if cell.get("cell_type") == "markdown" else ""
        match = re.search(r"what you will learn\**\s*\n-\s+(.*?)(?:\n-|\n\n|$)", text, re.I | re.S)
        if match:
            return " ".join(match.group(1).split()).rstrip(";.")
    return ""


def add_colab_badge(notebook: dict, url: str, badge_path: str) -> dict:
    """Put an "Open in Colab" badge on the line under the notebook's title."""
    badge = f"[![Open in Colab]({badge_path})]({url})"
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        text = "".join(cell["source"])
        match = _TITLE.search(text)
        if match:
            cell["source"] = text[:match.end()] + "\n\n" + badge + "\n" + text[match.end():]
            return notebook
    notebook.setdefault("cells", []).insert(0, {"cell_type": "markdown", "metadata": {}, "source": badge})
    return notebook


def complete_notebook_table(markdown: str, notebooks: list[tuple[str, dict]]) -> str:
    """Add a row to the landing page's notebook table for each notebook it does not link to."""
    lines = markdown.split("\n")
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith(TABLE_HEADER))
    except StopIteration:
        return markdown
    end = start
    while end + 1 < len(lines) and lines[end + 1].startswith("|"):
        end += 1
    table = "\n".join(lines[start:end + 1])
    rows = [f"| {name[:2]} | [{notebook_title(nb) or name}]({NOTEBOOK_DIR}/{name}) | {first_learning_point(nb)} |"
            for name, nb in notebooks if f"({NOTEBOOK_DIR}/{name})" not in table]
    return "\n".join(lines[:end + 1] + rows + lines[end + 1:])


def remove_stale_api_pages(folder: Path) -> list[str]:
    """Delete generated API pages of modules that are gone (autosummary writes, never deletes)."""
    import importlib.util

    removed = []
    for page in sorted(folder.glob("*.rst")):
        try:
            found = importlib.util.find_spec(page.stem) is not None
        except ImportError:  # its package is gone too
            found = False
        if not found:
            page.unlink()
            removed.append(page.stem)
    return removed


def _on_config_inited(app, config) -> None:
    srcdir = Path(app.srcdir)
    sync_notebooks(srcdir.resolve().parent, srcdir)
    remove_stale_api_pages(srcdir / API_DIR)


def _on_source_read(app, docname: str, source: list[str]) -> None:
    import stn_utils

    srcdir = Path(app.srcdir)
    if docname == app.config.root_doc:
        notebooks = [(path.name, json.loads(path.read_text(encoding="utf-8")))
                     for path in sorted((srcdir / NOTEBOOK_DIR).glob(NOTEBOOK_PATTERN))]
        source[0] = complete_notebook_table(source[0], notebooks)
    elif docname.startswith(NOTEBOOK_DIR + "/") and (srcdir / f"{docname}.ipynb").exists():
        notebook = static_widget_outputs(json.loads(source[0]))
        url = colab_url(stn_utils.REPO_URL, Path(docname).name + ".ipynb")
        add_colab_badge(notebook, url, "../" + BADGE)
        source[0] = json.dumps(notebook, ensure_ascii=False)


def _on_env_get_outdated(app, env, added, changed, removed) -> list[str]:
    # The landing page's table depends on the notebooks: read it again when one changed.
    if any(name.startswith(NOTEBOOK_DIR + "/") for name in set(added) | set(changed) | set(removed)):
        return [app.config.root_doc]
    return []


def setup(app):
    app.connect("config-inited", _on_config_inited)
    app.connect("source-read", _on_source_read)
    app.connect("env-get-outdated", _on_env_get_outdated)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
