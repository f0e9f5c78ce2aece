"""The Colab path: a notebook's first cell installs stn_utils into an environment like Colab's.

Colab preinstalls torch, torchvision, numpy, matplotlib, ipywidgets, tqdm and pillow (and
pip, setuptools and a Jupyter kernel), but not stn_utils. This test builds such an
environment without reinstalling torch: a fresh virtual environment whose only packages
are those distributions and their dependencies, exposed from this interpreter's
site-packages through symlinks in a site folder of their own (listed by
``importlib.metadata``, so nothing else — stn_utils, JupyterLab, Sphinx, pytest — is
importable there). The repository's working tree is committed into a temporary clone, and
``STN_REPO_URL`` points notebook 03's install cell at it (``git+file://...``).

nbclient, in that environment's own kernel, then runs notebook 03's first code cells in
fast mode, and the test checks that

- stn_utils was not importable before, and the first cell installed it (from the clone,
  into the environment);
- torch was not reinstalled: the same version from the same file before and after, and
  pip's log shows torch as already satisfied and no download at all;
- the cells whose output CI compares (``# NBVAL_CHECK_OUTPUT``) print what the notebook stores.

pip runs with no index (``PIP_NO_INDEX``), so it cannot download torch or anything else,
and without build isolation, building stn_utils with the environment's setuptools
(on Colab an isolated build fetches setuptools from PyPI instead).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "03_affine_grids.ipynb"
CODE_CELLS = 4  # install, setup, the CIFAR-10 horse, normalised coordinates
# What Colab preinstalls that the course needs, and what runs the cells there.
COLAB = ["torch", "torchvision", "numpy", "matplotlib", "ipywidgets", "tqdm", "pillow",
         "pip", "setuptools", "ipykernel", "nbclient"]
NOT_ON_COLAB = ["stn_utils", "jupyterlab", "notebook", "sphinx", "pytest", "nbval", "playwright"]
KERNEL = "colab-like"

pytestmark = pytest.mark.colab


def _missing() -> str | None:
    if shutil.which("git") is None:
        return "git is missing (pip installs stn_utils with git+file://)"
    for name in COLAB:
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            return f"{name} is not installed here, so it cannot be exposed to the environment"
    return None


reason = _missing()
if reason and os.environ.get("CI"):
    raise RuntimeError(f"the Colab-path test cannot run under CI: {reason}")
if reason:
    pytestmark = [pytestmark, pytest.mark.skip(reason=reason)]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dependency_closure(roots: list[str]) -> list[metadata.Distribution]:
    """The installed distributions ``roots`` need, with their dependencies (and the extras these ask for)."""
    from packaging.requirements import Requirement

    seen: dict[str, metadata.Distribution] = {}
    done: set[tuple[str, str]] = set()
    todo = [(name, "") for name in roots]
    while todo:
        name, extra = todo.pop()
        name = _canonical(name)
        if (name, extra) in done:
            continue
        done.add((name, extra))
        try:
            dist = seen[name] = seen.get(name) or metadata.distribution(name)
        except metadata.PackageNotFoundError:
            if name in map(_canonical, roots):
                raise
            continue  # a dependency this interpreter lacks too (pip would name it)
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
                if extra and requirement.marker is None:
                    continue  # already taken with the plain distribution
                todo += [(requirement.name, "")] + [(requirement.name, e) for e in requirement.extras]
    return list(seen.values())


def expose(distributions: list[metadata.Distribution], folder: Path) -> None:
    """Symlink each distribution's top-level packages, modules and metadata into ``folder``."""
    folder.mkdir()
    for dist in distributions:
        if dist.files is None:
            raise RuntimeError(f"{dist.metadata['Name']} lists no files; it cannot be exposed")
        for top in {file.parts[0] for file in dist.files if file.parts and file.parts[0] not in ("..", "__pycache__")}:
            source = Path(dist.locate_file(top))
            if source.exists() and not (folder / top).exists():
                (folder / top).symlink_to(source, target_is_directory=source.is_dir())


def _environment(tmp: Path, venv: Path, **extra: str) -> dict[str, str]:
    """This process's environment without Python, pip and Jupyter settings, plus ``extra``."""
    prefixes = ("PIP_", "PYTHON", "VIRTUAL_ENV", "CONDA", "JUPYTER", "IPYTHON")
    env = {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", VIRTUAL_ENV=str(venv),
               PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1", PIP_CONFIG_FILE=os.devnull,
               PIP_DISABLE_PIP_VERSION_CHECK="1", JUPYTER_PATH=str(tmp / "jupyter"),
               JUPYTER_DATA_DIR=str(tmp / "jupyter-data"), JUPYTER_CONFIG_DIR=str(tmp / "jupyter-config"),
               IPYTHONDIR=str(tmp / "ipython"), **extra)
    return env


def _run(command: list[str], env: dict[str, str], cwd: Path, timeout: int = 300) -> str:
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result.stdout


def clone_working_tree(folder: Path) -> None:
    """The working tree (tracked and untracked, not ignored files) committed into a fresh repository."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, folder / name)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost", "-c", "commit.gpgsign=false"]
    for command in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "working tree"]):
        subprocess.run(git + command, cwd=folder, check=True, capture_output=True)


STATE = """
import importlib.util, json, os, sys
import torch
print(json.dumps({"prefix": sys.prefix, "torch": torch.__version__, "torch_file": os.path.realpath(torch.__file__),
                  "importable": [m for m in sys.argv[1:] if importlib.util.find_spec(m) is not None]}))
"""

PROBE = """
import importlib.metadata, json, os, sys
import stn_utils, torch
print("PROBE " + json.dumps({"prefix": sys.prefix, "torch": torch.__version__,
                             "torch_file": os.path.realpath(torch.__file__),
                             "stn_utils": os.path.realpath(stn_utils.__file__),
                             "stn_utils_version": importlib.metadata.version("stn-utils")}))
"""

RUN_CELLS = """
import sys
import nbformat
from nbclient import NotebookClient

source, target, count, kernel, probe = sys.argv[1:]
notebook = nbformat.read(source, as_version=4)
code = [cell for cell in notebook.cells if cell.cell_type == "code"][:int(count)]
for cell in code:
    cell.outputs, cell.execution_count = [], None
notebook.cells = code + [nbformat.v4.new_code_cell(open(probe).read())]
NotebookClient(notebook, kernel_name=kernel, timeout=300, allow_errors=False).execute()
nbformat.write(notebook, target)
"""


def _stdout(cell) -> str:
    return "".join("".join(o["text"]) for o in cell.get("outputs", []) if o.get("name") == "stdout")


def test_install_cell_installs_stn_utils_and_keeps_torch(tmp_path):
    venv, site, clone = tmp_path / "venv", tmp_path / "preinstalled", tmp_path / "course"
    clone.mkdir()
    clone_working_tree(clone)
    expose(dependency_closure(COLAB), site)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    pip_log = tmp_path / "pip.log"
    env = _environment(tmp_path, venv, STN_FAST="1", STN_REPO_URL=f"file://{clone}", PIP_NO_INDEX="1",
                       PIP_NO_BUILD_ISOLATION="0", PIP_LOG=str(pip_log))
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env, tmp_path)
    # A .pth line that starts with "import" runs: the folder becomes a site folder (its .pth files count).
    Path(purelib.strip(), "colab_preinstalled.pth").write_text(f"import site; site.addsitedir({str(site)!r})\n")
    kernel = tmp_path / "jupyter" / "kernels" / KERNEL
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab-like", "language": "python"}))

    before = json.loads(_run([python, "-c", STATE, *NOT_ON_COLAB], env, tmp_path).strip().splitlines()[-1])
    import torch

    assert before["prefix"] == str(venv)
    assert before["importable"] == [], f"visible in the environment but not on Colab: {before['importable']}"
    assert (before["torch"], before["torch_file"]) == (torch.__version__, os.path.realpath(torch.__file__))

    (tmp_path / "probe.py").write_text(PROBE)
    (tmp_path / "run_cells.py").write_text(RUN_CELLS)
    _run([python, str(tmp_path / "run_cells.py"), str(NOTEBOOK), str(tmp_path / "ran.ipynb"), str(CODE_CELLS),
          KERNEL, str(tmp_path / "probe.py")], env, tmp_path, timeout=600)

    ran = json.loads((tmp_path / "ran.ipynb").read_text())["cells"]
    after = json.loads(_stdout(ran[-1]).split("PROBE ", 1)[1])
    assert after["prefix"] == str(venv), "the cells did not run in the environment's kernel"
    assert Path(after["stn_utils"]).is_relative_to(Path(purelib.strip()).resolve()), \
        f"stn_utils was imported from {after['stn_utils']}, not installed into the environment"
    assert (after["torch"], after["torch_file"]) == (before["torch"], before["torch_file"]), "torch changed"

    log = pip_log.read_text()
    assert re.search(rf"Collecting git\+file:/*{re.escape(str(clone))}", log), "pip did not install from STN_REPO_URL"
    assert re.search(r"Requirement already satisfied: torch\b", log), log[-3000:]
    downloads = [line for line in log.splitlines() if re.search(r"\bDownloading\b|Collecting torch\b", line)]
    assert not downloads, f"pip downloaded: {downloads}"
    installed = re.findall(r"Successfully installed (.*)", log)
    assert installed and installed[-1].split() == [f"stn-utils-{after['stn_utils_version']}"], installed

    stored = [cell for cell in json.loads(NOTEBOOK.read_text())["cells"] if cell["cell_type"] == "code"]
    for old, new in zip(stored[:CODE_CELLS], ran[:CODE_CELLS]):
        if "".join(old["source"]).startswith("# NBVAL_CHECK_OUTPUT"):
            assert _stdout(new) == _stdout(old), f"{''.join(old['source'])[:80]!r} printed something else"
