"""stn_utils.stored: stored run files found, downloaded and checked; the record up to date;
every stored distorted-MNIST model and every stored notebook model loads and scores what
its run scored."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import stn_utils.stored as stored
from stn_utils import addition, canvas, experiments
from stn_utils.data import load_dataset, pad_to, randomly_rotated
from stn_utils.models import build_model
from stn_utils.training import evaluate

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


def test_a_saved_run_comes_back_with_its_record(tmp_path, monkeypatch):
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    relative = stored.NOTEBOOK_RUNS + "/07-toy"
    record = stored.save_run(tmp_path / relative, model, model="toy", history={"test_acc": [0.5, 0.75]})
    assert record == tmp_path / (relative + ".json") and (tmp_path / (relative + ".pt")).is_file()
    with pytest.raises(TypeError):   # a record that is not JSON is refused before anything is written
        stored.save_run(tmp_path / "bad", model, history=object())
    assert not (tmp_path / "bad.pt").exists()
    manifest = tmp_path / "stored_runs.json"
    manifest.write_text(json.dumps({relative + suffix: stored.sha256(tmp_path / (relative + suffix))
                                    for suffix in (".pt", ".json")}))
    monkeypatch.setattr(stored, "MANIFEST", manifest)
    monkeypatch.chdir(tmp_path)
    again = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    assert stored.load_run(relative, again) == {"model": "toy", "history": {"test_acc": [0.5, 0.75]}}
    for name, value in model.state_dict().items():
        assert torch.allclose(again.state_dict()[name].float(), value.float(), atol=1e-3)


def test_train_or_load_trains_and_saves_or_loads_the_stored_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = torch.nn.Linear(3, 2)

    def train():
        with torch.no_grad():
            model.weight.fill_(0.5)
        return {"test_acc": [0.9]}

    about = dict(model="toy", model_kwargs={"width": 2}, recipe={"epochs": 1})
    assert stored.train_or_load("07-toy", model, train, train_here=True, **about) == {"test_acc": [0.9]}
    saved = tmp_path / "runs" / "07-toy"
    relative = stored.NOTEBOOK_RUNS + "/07-toy"
    (tmp_path / stored.NOTEBOOK_RUNS).mkdir(parents=True)
    for suffix in (".pt", ".json"):
        (tmp_path / (relative + suffix)).write_bytes(saved.with_name("07-toy" + suffix).read_bytes())
    manifest = tmp_path / "stored_runs.json"
    manifest.write_text(json.dumps({relative + s: stored.sha256(tmp_path / (relative + s)) for s in (".pt", ".json")}))
    monkeypatch.setattr(stored, "MANIFEST", manifest)
    fresh = torch.nn.Linear(3, 2)
    never = lambda: pytest.fail("a stored run is loaded, not trained")   # noqa: E731
    assert stored.train_or_load("07-toy", fresh, never, train_here=False, **about) == {"test_acc": [0.9]}
    assert torch.equal(fresh.weight, torch.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="other model_kwargs, recipe than this notebook.*TRAIN_HERE = True"):
        stored.train_or_load("07-toy", fresh, never, train_here=False, model="toy", model_kwargs={"width": 3},
                             recipe={"epochs": 2})


def test_stored_runs_take_names_a_missing_run_and_the_fix(tmp_path):
    result = subprocess.run([sys.executable, "tools/stored_runs.py", "--check", "--take", str(tmp_path / "none")],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1 and "no saved run" in result.stderr and "without its suffix" in result.stderr


def test_the_default_download_address_is_the_course_repository(monkeypatch):
    monkeypatch.delenv("STN_STORED_URL", raising=False)
    assert stored.raw_url("a/b.pt") == "https://raw.githubusercontent.com/stn-course/stn-course/main/a/b.pt"


def test_the_record_of_stored_files_is_up_to_date():
    result = subprocess.run([sys.executable, "tools/stored_runs.py", "--check"], cwd=REPO, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr


STORED_MODELS = sorted({path.rsplit("/", 1)[1][:-3] for path in stored.manifest()
                        if path.startswith(experiments.STORED_ROWS + "/") and path.endswith(".pt")})


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


ADDITION_MODELS = sorted({path.rsplit("/", 1)[1][:-3] for path in stored.manifest()
                          if path.startswith(addition.STORED_ROWS + "/") and path.endswith(".pt")})


@pytest.mark.skipif(not (REAL_ROOT / "mnist" / "test").is_dir(), reason=f"no MNIST copy at {REAL_ROOT}")
@pytest.mark.parametrize("name", ADDITION_MODELS)
def test_each_stored_addition_model_loads_and_reproduces_its_test_error(name, monkeypatch):
    monkeypatch.chdir(REPO)
    model, _, seed = name.rpartition("-seed")
    test = addition.mnist_addition(train_subset=2).test
    row = addition.saved_addition_row(model, test, seed=int(seed))
    assert row is not None, f"{name} was trained with another recipe than addition_recipe gives today"
    # the weights are stored in fp16: allow 10 of the 10,000 test pairs to change their answer (these models
    # are unsure of far more pairs than the single-digit ones: their errors are 11 to 15 %)
    changed = round(abs(row["error"] - row["saved_error"]) * len(test) / 100)
    assert changed <= 10, (row["error"], row["saved_error"])


CANVAS_MODELS = sorted(Path(path).stem for path in stored.manifest()
                       if path.startswith(canvas.STORED_ROWS + "/") and path.endswith(".pt"))


@pytest.mark.skipif(not (REAL_ROOT / "cifar10" / "test").is_dir(), reason=f"no CIFAR-10 copy at {REAL_ROOT}")
@pytest.mark.parametrize("name", CANVAS_MODELS)
def test_each_stored_canvas_model_loads_and_scores_as_its_row_says(name, monkeypatch):
    monkeypatch.chdir(REPO)
    model, _, seed = name.rpartition("-seed")
    saved = json.loads(stored.stored_file(f"{canvas.STORED_ROWS}/{name}.json").read_text())
    # the whole test set with test-time augmentation takes minutes; 1,000 placed test images
    # (another draw than the full set's) must score within 3.5 standard errors of the row
    test = canvas.cifar_canvas(train_subset=2, test_subset=1000).test
    row = canvas.saved_canvas_row(model, test, seed=int(seed))
    assert row is not None, f"{name} was trained with another recipe than canvas_recipe gives today"
    accuracy, saved_accuracy = 100 - row["error"], 100 - saved["error"]
    margin = 3.5 * 100 * (saved_accuracy / 100 * (1 - saved_accuracy / 100) / len(test)) ** 0.5
    assert abs(accuracy - saved_accuracy) <= margin, (accuracy, saved_accuracy, margin)


NOTEBOOK_RUNS = sorted(path[:-5] for path in stored.manifest()
                       if path.startswith(stored.NOTEBOOK_RUNS + "/") and path.endswith(".json"))


def notebook_test_set(spec: dict):
    """The test images a notebook measured its model on, from its record's ``test_data``."""
    test = load_dataset(spec["dataset"], "test", root=REAL_ROOT)
    if "subset" in spec:
        test = test.subset(spec["subset"], seed=spec["subset_seed"])
    if "canvas" in spec:
        test.images = pad_to(test.images, spec["canvas"])
    if "max_rotation" in spec:
        test = randomly_rotated(test, spec["max_rotation"], seed=spec["rotation_seed"])
    return test


@pytest.mark.skipif(not (REAL_ROOT / "cifar10" / "test").is_dir(), reason=f"no data copy at {REAL_ROOT}")
@pytest.mark.parametrize("run", NOTEBOOK_RUNS)
def test_each_stored_notebook_model_loads_and_reproduces_its_test_accuracy(run, monkeypatch):
    monkeypatch.chdir(REPO)
    record = json.loads(stored.stored_file(run + ".json").read_text())
    model = build_model(record["model"], **record["model_kwargs"])
    stored.load_run(run, model)
    accuracy = evaluate(model, notebook_test_set(record["test_data"]), precision=record["precision"],
                        channels_last=record["channels_last"])["accuracy"]
    # fp16 weights, and bf16 or fp32 arithmetic by CPU: allow 0.2 % of the test images to change
    assert abs(accuracy - record["history"]["test_acc"][-1]) <= 0.002, (accuracy, record["history"]["test_acc"])
