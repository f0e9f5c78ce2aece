"""stn_utils.stored: stored run files found, downloaded and checked; the record up to date;
every stored distorted-MNIST model loads and scores what its benchmark run scored."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import stn_utils.stored as stored
from stn_utils import experiments

REPO = Path(__file__).resolve().parents[1]
REAL_ROOT = Path(os.environ.get("STN_DATA_DIR") or REPO / "data")


@pytest.fixture
def one_stored_file(tmp_path, monkeypatch):
    """A repository in tmp_path/repo holding one stored weights file, recorded in a manifest."""
    relative = "benchmarks/results/example/model.pt"
    path = tmp_path / "repo" / relative
    stored.write_weights(path, {"weight": torch.arange(4.0), "steps": torch.tensor(3)})
    assert torch.load(path, weights_only=True)["weight"].dtype == torch.float16   # stored at half the size
    record = tmp_path / "stored_runs.json"
    record.write_text(json.dumps({relative: stored.sha256(path)}))
    monkeypatch.setattr(stored, "MANIFEST", record)
    monkeypatch.setattr(stored, "CACHE", tmp_path / "cache")
    return relative, path


def test_a_stored_file_is_read_in_the_repository_from_any_folder_below_it(one_stored_file, monkeypatch):
    relative, path = one_stored_file
    (path.parents[3] / "notebooks").mkdir()
    monkeypatch.chdir(path.parents[3] / "notebooks")
    assert stored.stored_file(relative) == path.parents[3] / relative
    weights = stored.load_weights(relative)
    assert weights["weight"].dtype == torch.float32 and weights["weight"].tolist() == [0, 1, 2, 3]
    assert weights["steps"].dtype == torch.int64


def test_without_the_repository_it_is_downloaded_once_and_checked(one_stored_file, tmp_path, monkeypatch):
    relative, path = one_stored_file
    monkeypatch.chdir(tmp_path)                    # no repository copy above this folder
    monkeypatch.setenv("STN_STORED_URL", (tmp_path / "repo").as_uri())
    assert stored.raw_url(relative) == (tmp_path / "repo").as_uri() + "/" + relative
    local = stored.stored_file(relative)
    assert local == tmp_path / "cache" / relative and local.read_bytes() == path.read_bytes()
    path.unlink()                                  # the second call needs no download
    assert stored.stored_file(relative) == local


def test_a_changed_or_unknown_file_is_refused_with_the_fix(one_stored_file, monkeypatch):
    relative, path = one_stored_file
    monkeypatch.chdir(path.parents[3])
    torch.save({"weight": torch.zeros(4)}, path)
    with pytest.raises(ValueError, match="SHA-256 differs.*tools/stored_runs.py"):
        stored.stored_file(relative)
    with pytest.raises(KeyError, match="not one of the course's stored files"):
        stored.stored_file("benchmarks/results/example/other.pt")


def test_the_default_download_address_is_the_course_repository(monkeypatch):
    monkeypatch.delenv("STN_STORED_URL", raising=False)
    assert stored.raw_url("a/b.pt") == "https://raw.githubusercontent.com/stn-course/stn-course/main/a/b.pt"


def test_the_record_of_stored_files_is_up_to_date():
    result = subprocess.run([sys.executable, "tools/stored_runs.py", "--check"], cwd=REPO, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr


STORED_MODELS = sorted({path.rsplit("/", 1)[1][:-3] for path in stored.manifest() if path.endswith(".pt")})


@pytest.mark.skipif(not (REAL_ROOT / "mnist" / "test").is_dir(), reason=f"no MNIST copy at {REAL_ROOT}")
@pytest.mark.parametrize("name", STORED_MODELS)
def test_each_stored_model_loads_and_reproduces_its_test_error(name, monkeypatch):
    monkeypatch.chdir(REPO)
    distortion, model, seed = name.split("-")
    _, test = experiments.distorted_mnist(distortion)
    row = experiments.saved_row(distortion, None if model == "cnn" else model, test, seed=int(seed[4:]))
    assert row is not None, f"{name} was trained with another recipe than distortion_recipe gives today"
    # the weights are stored in fp16: allow 5 of the 10,000 test digits to change their answer
    assert abs(row["error"] - row["saved_error"]) <= 0.05, (row["error"], row["saved_error"])
