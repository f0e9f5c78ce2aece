"""Sphinx configuration of the course's website.

Build (from the repository root):
``python3 -m sphinx -W --keep-going -b html -d docs/_build/doctrees docs docs/_build/html``.
The pages show the notebooks' stored outputs; nothing is executed and nothing is
fetched from the network, at build time or when a page is viewed.
"""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path[:0] = [str(REPO), str(DOCS / "_ext")]  # stn_utils for autodoc; the local extension

import stn_utils  # noqa: E402

project = "Spatial Transformer Networks, step by step"
author = "the stn-course authors"
html_show_copyright = False
release = version = stn_utils.__version__

extensions = [
    "myst_nb",                 # .ipynb and .md pages
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",     # stn_utils' docstrings are Google style (Args:, Returns:, Raises:)
    "sphinx.ext.viewcode",
    "sphinx-mathjax-offline",  # MathJax 3 served from _static/mathjax instead of a CDN
    "course_site",             # docs/_ext/course_site.py: notebook copies, Colab badges, static widgets
]

root_doc = "index"
exclude_patterns = ["_build", "_ext", "**.ipynb_checkpoints"]
templates_path = ["_templates"]
html_static_path = ["_static"]

# Notebooks: stored outputs only.
nb_execution_mode = "off"
nb_ipywidgets_js = {}          # no widget manager from a CDN; course_site shows widgets statically
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# The API reference, generated from the docstrings (docs/api/ is written at build time).
autosummary_generate = True
autosummary_imported_members = False
# Every public name defined in a module, as the summary tables list them (not only __all__).
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "sphinx_book_theme"
html_title = project
html_theme_options = {
    "repository_url": stn_utils.REPO_URL,
    "repository_branch": "main",
    "use_repository_button": True,
    "use_download_button": True,   # the page's source: the notebook itself
    "show_toc_level": 2,
    "navigation_with_keys": False,
}
# Light or dark as the reader's system prefers; without a default the theme's script logs
# "invalid theme mode" on a reader's first visit.
html_context = {"default_mode": "auto"}
