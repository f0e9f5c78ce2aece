"""The course's stored runs: result files and fp16 weights kept in the repository.

A notebook that would train for many minutes can load what a full run trained instead:
a benchmark's rows (under ``benchmarks/results/``) or a notebook's own models (under
:data:`NOTEBOOK_RUNS`, saved by :func:`save_run`, loaded by :func:`load_run`). Their SHA-256 hashes live
in the package (``stored_runs.json``, written by ``python tools/stored_runs.py``), so a
file is checked wherever it comes from. In a clone the file is read where it lies; where
only the package is installed (Colab) it is downloaded once from :data:`stn_utils.REPO_URL`
into ``~/.cache/stn-course``. Weights load with ``weights_only=True``: a stored file can
hold tensors, not code.

Convention: paths are relative to the repository's root, with forward slashes, e.g.
``"benchmarks/results/distorted_mnist/RTS-affine-seed0.pt"``.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from pathlib import Path

import torch

from . import REPO_URL
from .files import atomic_write
from .recipes import Recipe

__all__ = ["MANIFEST", "NOTEBOOK_RUNS", "manifest", "raw_url", "stored_file", "write_weights", "read_weights",
           "load_weights", "save_run", "load_run", "train_or_load", "sha256"]

MANIFEST = Path(__file__).with_name("stored_runs.json")
CACHE = Path.home() / ".cache" / "stn-course"
# the notebooks' stored models: <folder>/<notebook number>-<model>.pt and .json
NOTEBOOK_RUNS = "notebooks/stored"


def sha256(path) -> str:
    """The SHA-256 of a file, as 64 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest() -> dict[str, str]:
    """``{relative path: SHA-256}`` of every stored file."""
    return json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {}


def raw_url(relative: str) -> str:
    """Where a stored file is downloaded from: ``STN_STORED_URL`` (a folder URL; ``file://``
    works too) if set, else the raw files of :data:`stn_utils.REPO_URL`'s main branch."""
    base = os.environ.get("STN_STORED_URL") or REPO_URL.replace("https://github.com/",
                                                                "https://raw.githubusercontent.com/") + "/main"
    return f"{base.rstrip('/')}/{relative}"


def _repository_copy(relative: str) -> Path | None:
    # the notebooks run from notebooks/, scripts from the root: look in the working folder and above it
    for folder in (Path.cwd(), *Path.cwd().parents):
        candidate = folder / relative
        if candidate.is_file():
            return candidate
    return None


def stored_file(relative: str) -> Path:
    """The local path of the stored file ``relative``, checked against its SHA-256.

    Raises:
        KeyError: ``relative`` is not a stored file (the message lists what is).
        ValueError: the file's contents differ from what was stored.
    """
    hashes = manifest()
    if relative not in hashes:
        raise KeyError(f"{relative!r} is not one of the course's stored files; they are: {sorted(hashes)}. "
                       f"After a new benchmark run, `python tools/stored_runs.py` records its files.")
    path = _repository_copy(relative)
    if path is None:
        path = CACHE / relative
        if not path.is_file() or sha256(path) != hashes[relative]:
            atomic_write(path, lambda temporary: urllib.request.urlretrieve(raw_url(relative), temporary))
    if sha256(path) != hashes[relative]:
        raise ValueError(f"{path} is not the file the course stored (its SHA-256 differs). If you retrained it, "
                         f"run `python tools/stored_runs.py` to record the new file; otherwise restore it with "
                         f"`git checkout -- {relative}` or delete it to download it again.")
    return path


def write_weights(path, state_dict: dict[str, torch.Tensor]) -> Path:
    """Save ``state_dict`` to ``path`` atomically, its floating-point tensors in fp16 (half the
    size; :func:`read_weights` brings them back to fp32)."""
    half = {k: v.half() if v.is_floating_point() else v for k, v in state_dict.items()}
    return atomic_write(path, lambda temporary: torch.save(half, temporary))


def read_weights(path) -> dict[str, torch.Tensor]:
    """The state dict in the file ``path`` (tensors only), its floating-point tensors in fp32."""
    weights = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}


def load_weights(relative: str) -> dict[str, torch.Tensor]:
    """A stored state dict, checked (:func:`stored_file`), its floating-point tensors in fp32."""
    return read_weights(stored_file(relative))


def save_run(path, model: torch.nn.Module, /, **record) -> Path:
    """Save a trained ``model`` as a run a notebook can load again: its weights (fp16) as
    ``path`` + ``".pt"`` and ``record`` (JSON values: its history, its test accuracy, how to
    rebuild it) as ``path`` + ``".json"``, both atomically. Returns the JSON file's path.

    A notebook saves every model it trains into its git-ignored ``runs/`` folder, so a run
    is never lost; ``python tools/stored_runs.py --take notebooks/runs/05-cifar_cnn ...`` makes such runs
    the course's stored ones.
    """
    path = Path(path)
    text = json.dumps(record, indent=1)   # before writing anything: a record that is not JSON fails here
    write_weights(path.with_name(path.name + ".pt"), model.state_dict())
    return atomic_write(path.with_name(path.name + ".json"), lambda temporary: temporary.write_text(text))


def load_run(relative: str, model: torch.nn.Module, /, **expected) -> dict:
    """Load the stored run ``relative`` (no suffix, e.g. ``"notebooks/stored/05-cifar_cnn"``) into
    ``model``, both files checked (:func:`stored_file`); returns its record (see
    :func:`save_run`).

    Raises:
        ValueError: the record differs from ``expected`` in some entry (for example
            ``model``, ``model_kwargs``, ``recipe``); nothing is loaded then.
    """
    record = json.loads(stored_file(relative + ".json").read_text())
    differing = sorted(name for name, value in json.loads(json.dumps(expected)).items()
                       if not _same_entry(name, record.get(name), value))
    if differing:
        raise ValueError(f"the stored run {relative!r} was made with other {', '.join(differing)} than this "
                         f"notebook asks for; set TRAIN_HERE = True to train the model here instead.")
    model.load_state_dict(load_weights(relative + ".pt"))
    return record


def _same_entry(name: str, stored, expected) -> bool:
    """Whether a stored record's entry is the one expected; a stored ``recipe`` written before
    a field of :class:`~stn_utils.recipes.Recipe` existed reads that field as its default."""
    if name == "recipe" and isinstance(stored, dict) and isinstance(expected, dict):
        stored = {key: value for key, value in Recipe.completed(stored).items() if key in stored or key in expected}
    return stored == expected


def train_or_load(key: str, model: torch.nn.Module, train, /, *, train_here: bool, device=None, **record) -> dict:
    """A notebook's trained model, trained here or loaded from the course's stored run.

    With ``train_here``, ``train()`` trains ``model`` and returns its history (a dict of
    lists, as :func:`stn_utils.training.fit` returns), and the run is saved as
    ``runs/<key>`` (:func:`save_run`, in the working folder) with ``record``, which says how
    the model was built and measured. Otherwise the stored run ``<NOTEBOOK_RUNS>/<key>`` is
    loaded into ``model`` (moved to ``device``) after checking that it was made with the
    same ``record`` entries (:func:`load_run`). Returns the history either way.
    """
    if train_here:
        history = train()
        save_run(Path("runs") / key, model, history=history, **record)
        return history
    saved = load_run(f"{NOTEBOOK_RUNS}/{key}", model, **record)
    model.to(device or "cpu")
    return saved["history"]
