"""benchmarks/cifar10.py: its table on a tiny fake CIFAR-10 (no data set, a few seconds)."""

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from stn_utils.data import ImageDataset

REPO = Path(__file__).resolve().parents[1]


def load_benchmark():
    if str(REPO / "benchmarks") not in sys.path:
        sys.path.insert(0, str(REPO / "benchmarks"))  # as when run as a script: its folder is on the path
    spec = importlib.util.spec_from_file_location("cifar10_benchmark", REPO / "benchmarks" / "cifar10.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_cifar(name, split, **kwargs):
    generator = torch.Generator().manual_seed(0 if split == "train" else 1)
    count = 64 if split == "train" else 20
    images = torch.randint(0, 256, (count, 3, 32, 32), generator=generator, dtype=torch.uint8)
    return ImageDataset(images, torch.arange(count) % 10, tuple(str(i) for i in range(10)))


def test_table_has_a_row_per_model_and_tta_columns_only_where_the_recipe_uses_them(monkeypatch, capsys):
    benchmark = load_benchmark()
    monkeypatch.setattr(benchmark, "load_dataset", fake_cifar)
    benchmark.main(["--rows", "seed", "cnn", "stn", "--epochs", "1", "--seed-epochs", "1", "--speed-steps", "0"])
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("| model"))
    assert header.endswith("| test accuracy | with flip TTA | with flip + shift TTA |")
    rows = {line.split(" | ")[0]: line.split(" | ") for line in lines if line.startswith("| ") and "%" in line}
    seed, cnn, stn = (next(cells for name, cells in rows.items() if key in name)
                      for key in ("the seed", "course CNN", "course STN-CNN"))
    assert seed[-3:] != ["-", "-", "- |"] and seed[-2:] == ["-", "- |"]  # the seed recipe has no TTA
    for cells in (cnn, stn):
        assert all(cell.rstrip(" |").endswith("%") for cell in cells[-3:])
    assert any(line.startswith("# STN-CNN / CNN wall time:") for line in lines)
    assert all(cells[4] in ("fp32", "bf16") for cells in (seed, cnn, stn))
    assert seed[4] == "fp32"  # the seed's recipe never autocasts


def test_set_and_widths_change_the_course_rows_only(monkeypatch, capsys):
    benchmark = load_benchmark()
    monkeypatch.setattr(benchmark, "load_dataset", fake_cifar)
    seen = []
    original = benchmark.fit

    def spy(model, train, test, recipe, **kwargs):
        seen.append((type(model.body[-1]).__name__, getattr(model.body[2], "out_channels", None), recipe))
        return original(model, train, test, recipe, **kwargs)

    monkeypatch.setattr(benchmark, "fit", spy)
    benchmark.main(["--rows", "seed", "cnn", "--epochs", "1", "--seed-epochs", "1", "--speed-steps", "0",
                    "--set", "lookahead=False", "precision=fp32", "tta_level=1", "--widths", "8,8,16"])
    (_, _, seed_recipe), (_, width, cnn_recipe) = seen
    assert seed_recipe == dataclasses.replace(benchmark.recipes.SEED, epochs=1)
    assert width == 8 and cnn_recipe.lookahead is False and cnn_recipe.precision == "fp32"
    assert cnn_recipe.tta_level == 1 and cnn_recipe.epochs == 1
    out = capsys.readouterr().out
    assert "with lookahead=False precision=fp32 tta_level=1 widths=8,8,16 |" in out


def test_seed_option_seeds_the_weights_and_the_data_order(monkeypatch, capsys):
    benchmark = load_benchmark()
    monkeypatch.setattr(benchmark, "load_dataset", fake_cifar)
    seen = []

    def spy(model, train, test, recipe, **kwargs):
        seen.append((kwargs["seed"], model.body[-2].weight.detach().clone()))
        return {}

    monkeypatch.setattr(benchmark, "fit", spy)
    for seed in ("0", "1"):
        benchmark.main(["--rows", "cnn", "--epochs", "1", "--speed-steps", "0", "--seed", seed])
    (seed_0, weights_0), (seed_1, weights_1) = seen
    assert (seed_0, seed_1) == (0, 1) and not torch.equal(weights_0, weights_1)
    out = capsys.readouterr().out
    assert "| course CNN, recipes.CIFAR10, seed 1 |" in out and "| course CNN, recipes.CIFAR10 |" in out


def test_bad_overrides_are_refused(monkeypatch, capsys):
    benchmark = load_benchmark()
    monkeypatch.setattr(benchmark, "load_dataset", fake_cifar)
    for argv, message in ((["--set", "learning_rate=0.1"], "--set takes KEY=VALUE with KEY one of"),
                          (["--set", "lr"], "got 'lr'"),
                          (["--set", "tta_level=5"], "Recipe.tta_level must be 0, 1 or 2"),
                          (["--widths", "8,8"], "--widths takes three positive channel counts")):
        with pytest.raises(SystemExit):
            benchmark.main(argv)
        assert message in capsys.readouterr().err
