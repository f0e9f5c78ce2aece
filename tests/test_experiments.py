"""stn_utils.experiments (distorted-MNIST comparison) and its benchmark's command line."""

import importlib.util
from pathlib import Path

import pytest
import torch

import stn_utils.experiments as experiments
from stn_utils.data import ImageDataset
from stn_utils.models import SpatialTransformer

REPO = Path(__file__).resolve().parents[1]


def fake_mnist(name, split, **kwargs):
    assert name == "mnist"
    generator = torch.Generator().manual_seed(0 if split == "train" else 1)
    images = torch.zeros(40, 1, 28, 28, dtype=torch.uint8)
    images[:, :, 8:20, 10:18] = torch.randint(100, 256, (40, 1, 12, 8), generator=generator, dtype=torch.uint8)
    return ImageDataset(images, torch.arange(40) % 10, tuple(str(i) for i in range(10)))


@pytest.fixture
def fake_data(monkeypatch):
    monkeypatch.setattr(experiments, "load_dataset", fake_mnist)


def test_distorted_mnist_sizes_subsets_and_seeds(fake_data):
    train, test = experiments.distorted_mnist("RTS", train_subset=12, test_subset=5)
    assert train.images.shape == (12, 1, 42, 42) and train.images.dtype == torch.uint8
    assert test.images.shape == (5, 1, 42, 42) and len(test.labels) == 5
    again, _ = experiments.distorted_mnist("RTS", train_subset=12, test_subset=5)
    assert torch.equal(train.images, again.images)
    other, _ = experiments.distorted_mnist("RTS", train_subset=12, test_subset=5, seed=3)
    assert not torch.equal(train.images, other.images)
    assert experiments.distorted_mnist("cluttered", train_subset=3)[0].images.shape == (3, 1, 60, 60)


@pytest.mark.parametrize("distortion, side", [("R", 28), ("RTS", 42), ("cluttered", 60)])
def test_models_fit_the_canvas_and_the_stn_writes_28_pixels(distortion, side):
    x = torch.rand(2, 1, side, side)
    cnn = experiments.build_distorted_mnist_model(distortion, None)
    assert cnn.stn is None and cnn(x).shape == (2, 10)
    for transform in ("affine", "tps"):
        stn_cnn = experiments.build_distorted_mnist_model(distortion, transform)
        assert isinstance(stn_cnn.stn, SpatialTransformer)
        assert stn_cnn.stn(x).shape == (2, 1, 28, 28) and stn_cnn(x).shape == (2, 10)


def test_train_row_measures_and_calls_on_step(fake_data):
    train, test = experiments.distorted_mnist("R", train_subset=32, test_subset=16)
    calls = []
    row = experiments.train_row("R", "affine", train, test, epochs=2, device="cpu",
                                on_step=lambda step, model: calls.append((step, model)))
    assert row["model"] is calls[0][1] and [step for step, _ in calls] == [1, 2]  # 32 images, batch 128
    assert 0 <= row["error"] <= 100 and row["seconds"] > 0
    assert row["parameters"] > 0 and row["macs"] > 0 and row["history"]["epoch"] == [1, 2]
    table = experiments.results_table([row, {**row, "transform": None, "distortion": "cluttered"}])
    lines = table.splitlines()
    assert lines[2].startswith("| R | ST-CNN (affine) | 2 |") and "| 0.7 |" in lines[2]
    assert lines[3].startswith("| cluttered | CNN | 2 |") and "| - |" in lines[3]


def load_benchmark():
    spec = importlib.util.spec_from_file_location("distorted_mnist_benchmark",
                                                  REPO / "benchmarks" / "distorted_mnist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_rows_and_verdicts():
    benchmark = load_benchmark()
    assert benchmark.parse_row("RTS:cnn") == ("RTS", None)
    assert benchmark.parse_row("cluttered:tps") == ("cluttered", "tps")
    for bad in ("RTS", "XYZ:cnn", "RTS:mlp"):
        with pytest.raises(Exception, match="is not DISTORTION:MODEL"):
            benchmark.parse_row(bad)
    row = dict(distortion="RTS", transform="affine", error=0.45, seconds=600)
    assert benchmark.verdict(row).startswith("met")
    assert benchmark.verdict({**row, "error": 0.9}).startswith("NOT met")
    assert benchmark.verdict({**row, "seconds": 1300}).startswith("NOT met")
    assert benchmark.verdict({**row, "transform": None, "error": 0.9}).startswith("met")
    assert benchmark.verdict({**row, "distortion": "P"}) == "-"
