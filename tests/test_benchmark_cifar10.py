"""benchmarks/cifar10.py: its table on a tiny fake CIFAR-10 (no data set, a few seconds)."""

import dataclasses
import importlib.util
import json
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
    sys.modules[spec.name] = module  # its dataclass looks its module up by name
    spec.loader.exec_module(module)
    return module


def fake_cifar(name, split, **kwargs):
    generator = torch.Generator().manual_seed(0 if split == "train" else 1)
    count = 64 if split == "train" else 20
    images = torch.randint(0, 256, (count, 3, 32, 32), generator=generator, dtype=torch.uint8)
    return ImageDataset(images, torch.arange(count) % 10, tuple(str(i) for i in range(10)))


def run(benchmark, tmp_path, *argv):
    benchmark.main([*argv, "--results", str(tmp_path), "--speed-steps", "0"])


def test_table_has_a_row_per_model_and_tta_columns_only_where_the_recipe_uses_them(monkeypatch, capsys, tmp_path):
    benchmark = load_benchmark()
    monkeypatch.setattr(benchmark, "load_dataset", fake_cifar)
    run(benchmark, tmp_path, "--rows", "seed", "cnn", "stn", "--epochs", "1")
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("| model"))
    assert header.endswith("| test accuracy | with flip TTA | with flip + shift TTA |")
    rows = {line.split(" | ")[0]: line.split(" | ") for line in lines if line.startswith("| ") and "%" in line}
    seed, cnn, stn = (next(cells for name, cells in rows.items() if key in name)
                      for key in ("the seed", "course CNN", "course STN-CNN"))
    assert seed[-3:] != ["-", "-", "- |"] and seed[-2:] == ["-", "- |"]  # the seed recipe has no TTA
    for cells in (cnn, stn):
        assert all(cell.rstrip(" |").endswith("%") for cell in cells[-3:])
    assert any(line.startswith("# stn / cnn wall time:") for line in lines)
    assert all(cells[4] in ("fp32", "bf16") for cells in (seed, cnn, stn))
    assert seed[4] == "fp32"  # the seed's recipe never autocasts
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["cnn.json", "seed.json", "stn.json"]


def test_saved_rows_are_not_trained_again_and_table_prints_them(monkeypatch, capsys, tmp_path):
    benchmark = load_benchmark()
    monkeypatch.setattr(benchmark, "load_dataset", fake_cifar)
    run(benchmark, tmp_path, "--rows", "cnn", "--epochs", "1")
    first = capsys.readouterr().out
    monkeypatch.setattr(benchmark, "fit", lambda *args, **kwargs: pytest.fail("a saved row was trained again"))
    run(benchmark, tmp_path, "--rows", "cnn", "--epochs", "1")
    benchmark.main(["--table", "--results", str(tmp_path)])
    out = capsys.readouterr().out
    line = next(line for line in first.splitlines() if line.startswith("| course CNN"))
    assert out.count(line) == 2 and "# rows ran on " in out


def test_a_saved_row_of_another_recipe_is_refused_not_overwritten(monkeypatch, capsys, tmp_path):
    benchmark = load_benchmark()
    monkeypatch.setattr(benchmark, "load_dataset", fake_cifar)
    run(benchmark, tmp_path, "--rows", "cnn", "--epochs", "1")
    saved = (tmp_path / "cnn.json").read_text()
    monkeypatch.setattr(benchmark, "fit", lambda *args, **kwargs: pytest.fail("a saved row was overwritten"))
    with pytest.raises(SystemExit):
        run(benchmark, tmp_path, "--rows", "cnn", "--epochs", "2")
    err = capsys.readouterr().err
    assert "cnn: epochs: 1 -> 2" in err and "--rerun" in err
    assert (tmp_path / "cnn.json").read_text() == saved


def test_the_ceil_pool_row_and_where_each_transformer_samples(monkeypatch, capsys, tmp_path):
    benchmark = load_benchmark()
    monkeypatch.setattr(benchmark, "load_dataset", fake_cifar)
    run(benchmark, tmp_path, "--rows", "stn", "stn-ceil-pool", "seed", "--epochs", "1")
    out = capsys.readouterr().out
    stn, ceil, seed = (json.loads((tmp_path / f"{key}.json").read_text()) for key in ("stn", "stn-ceil-pool", "seed"))
    assert stn["model_kwargs"] == {} and ceil["model_kwargs"] == {"ceil_pool": True}
    assert ceil["macs"] > 1.2 * stn["macs"]
    for row in (stn, ceil, seed):
        theta = torch.tensor(row["theta_median"])
        assert theta.shape == (2, 3) and torch.allclose(theta, torch.eye(2, 3), atol=0.2)  # one epoch from the identity
        assert f"# {row['row']}: median theta over the test images: a {theta[0, 0]:.4f}, " in out
    ceil["model_kwargs"] = {"ceil_pool": False}
    (tmp_path / "stn-ceil-pool.json").write_text(json.dumps(ceil))
    with pytest.raises(SystemExit):
        run(benchmark, tmp_path, "--rows", "stn-ceil-pool", "--epochs", "1")
    assert "stn-ceil-pool: model_kwargs: {'ceil_pool': False} -> {'ceil_pool': True}" in capsys.readouterr().err


def test_set_and_widths_change_the_course_rows_only(monkeypatch, capsys, tmp_path):
    benchmark = load_benchmark()
    monkeypatch.setattr(benchmark, "load_dataset", fake_cifar)
    seen = []
    original = benchmark.fit

    def spy(model, train, test, recipe, **kwargs):
        seen.append((getattr(model.body[2], "out_channels", None), recipe))
        return original(model, train, test, recipe, **kwargs)

    monkeypatch.setattr(benchmark, "fit", spy)
    run(benchmark, tmp_path, "--rows", "seed", "cnn", "--epochs", "1",
        "--set", "lookahead=False", "precision=fp32", "tta_level=1", "--widths", "8,8,16")
    (_, seed_recipe), (width, cnn_recipe) = seen
    assert seed_recipe == dataclasses.replace(benchmark.recipes.SEED, epochs=1)
    assert width == 8 and cnn_recipe.lookahead is False and cnn_recipe.precision == "fp32"
    assert cnn_recipe.tta_level == 1 and cnn_recipe.epochs == 1
    out = capsys.readouterr().out
    assert "with epochs=1 lookahead=False precision=fp32 tta_level=1 widths=8,8,16 |" in out


def test_rows_seed_their_weights_and_data_order(monkeypatch, capsys, tmp_path):
    benchmark = load_benchmark()
    monkeypatch.setattr(benchmark, "load_dataset", fake_cifar)
    seen = []

    def spy(model, train, test, recipe, **kwargs):
        seen.append((kwargs["seed"], model.body[-2].weight.detach().clone()))
        return {"seconds": [0.0], "train_loss": [0.0], "train_acc": [0.0]}

    monkeypatch.setattr(benchmark, "fit", spy)
    run(benchmark, tmp_path, "--rows", "cnn", "cnn-seed1", "--epochs", "1")
    (seed_0, weights_0), (seed_1, weights_1) = seen
    assert (seed_0, seed_1) == (0, 1) and not torch.equal(weights_0, weights_1)
    out = capsys.readouterr().out
    assert "| course CNN, recipes.CIFAR10, seed 1 with epochs=1 |" in out


def test_each_short_row_undoes_or_adds_one_choice_of_the_recipe():
    benchmark = load_benchmark()
    base = benchmark.ROWS["short-cnn"].recipe
    assert base.epochs == benchmark.SHORT_EPOCHS
    assert base == dataclasses.replace(benchmark.recipes.CIFAR10, epochs=base.epochs,
                                       whitening_bias_epochs=base.whitening_bias_epochs)
    for key, row in benchmark.ROWS.items():
        if key.startswith("short-cnn-"):
            changed = {name for name, value in row.recipe.to_dict().items() if base.to_dict()[name] != value}
            assert changed and changed <= {"augment", "batch_size", "lr", "lr_start", "lr_end", "warmup",
                                           "decoupled_decay", "whitening_bias_epochs", "lookahead_epoch_end",
                                           "muon_lr"}, key
            assert len(changed) == 1 or changed in ({"batch_size", "lr"}, {"lr_start", "lr_end", "warmup"}), key
    fp32 = benchmark.ROWS["stn-fp32"].recipe
    assert fp32 == dataclasses.replace(benchmark.recipes.CIFAR10, precision="fp32", epochs=10)
    assert benchmark.ROWS["stn-fp32-8-epochs"].recipe == dataclasses.replace(fp32, epochs=8)
    assert benchmark.ROWS["stn-fp32-6-epochs"].recipe == dataclasses.replace(fp32, epochs=6)
    assert benchmark.ROWS["cnn-airbench94"].recipe == dataclasses.replace(
        benchmark.recipes.CIFAR10, epochs=10, batch_size=1024, lr=2 * benchmark.recipes.CIFAR10.lr)
    assert benchmark.ROWS["cnn-airbench94"].model == "cifar_cnn"
    assert benchmark.ROWS["stn-fp32-muon-6-epochs"].recipe == dataclasses.replace(
        benchmark.recipes.CIFAR10_MUON, precision="fp32", epochs=6)
    assert benchmark.ROWS["stn-fp32-muon-6-epochs"].recipe == dataclasses.replace(
        benchmark.recipes.CIFAR10_QUICK, precision="fp32")
    seed1 = benchmark.ROWS["stn-fp32-muon-6-epochs-seed1"]
    assert seed1.recipe == benchmark.ROWS["stn-fp32-muon-6-epochs"].recipe and seed1.seed == 1
    assert benchmark.ROWS["stn-10-epochs"].recipe == dataclasses.replace(benchmark.recipes.CIFAR10, epochs=10)
    assert benchmark.ROWS["stn-28-epochs"].recipe == dataclasses.replace(benchmark.recipes.CIFAR10, epochs=28)
    for key, augment in (("stn-shift4", "cifar10-alternating-shift4"), ("stn-cutout8", "cifar10-alternating-cutout8")):
        assert benchmark.ROWS[key].recipe == dataclasses.replace(benchmark.recipes.CIFAR10, augment=augment), key
    course = benchmark.recipes.CIFAR10
    same_step_per_image = ("short-cnn-batch1024", "short-cnn-batch256", "stn-batch256", "cnn-airbench94")
    for key in same_step_per_image:
        recipe = benchmark.ROWS[key].recipe
        assert recipe.batch_size != course.batch_size and recipe.lr / recipe.batch_size == course.lr / course.batch_size
    assert benchmark.ROWS["stn-batch256"].recipe == dataclasses.replace(course, batch_size=256, lr=course.lr / 2)
    assert benchmark.ROWS["stn-decay-x2"].recipe == dataclasses.replace(course, weight_decay=2 * course.weight_decay)
    assert benchmark.ROWS["stn-decay-half"].recipe == dataclasses.replace(course, weight_decay=course.weight_decay / 2)
    assert benchmark.ROWS["stn-smoothing-0.3"].recipe == dataclasses.replace(course, label_smoothing=0.3)
    muon = benchmark.recipes.CIFAR10_MUON
    assert muon == dataclasses.replace(benchmark.recipes.CIFAR10, epochs=muon.epochs, muon_lr=muon.muon_lr)
    assert {benchmark.ROWS[key].recipe.muon_lr for key in ("short-cnn-muon", "short-cnn-muon-half-rate")} == {
        muon.muon_lr, muon.muon_lr / 2}
    for key in ("stn-muon", "cnn-muon", "stn-muon-seed1", "cnn-muon-seed1"):
        assert benchmark.ROWS[key].recipe is muon, key


def test_bad_options_are_refused(monkeypatch, capsys, tmp_path):
    benchmark = load_benchmark()
    monkeypatch.setattr(benchmark, "load_dataset", fake_cifar)
    for argv, message in ((["--set", "learning_rate=0.1"], "--set takes KEY=VALUE with KEY one of"),
                          (["--set", "lr"], "got 'lr'"),
                          (["--set", "tta_level=5"], "Recipe.tta_level must be 0, 1 or 2"),
                          (["--widths", "8,8"], "--widths takes three positive channel counts"),
                          (["--set", "lr=0.2"], "give them a folder of their own with --results"),
                          (["--smoke"], "give them a folder of their own with --results"),
                          (["--test-subset", "0", "--results", str(tmp_path)],
                           "--test-subset must be at least 1; got 0")):
        with pytest.raises(SystemExit):
            benchmark.main(argv)
        assert message in capsys.readouterr().err


# --- benchmarks/jpeg_cost.py: the cifar10 row on data compressed once more -------------------------------

def load_jpeg_cost():
    load_benchmark()  # puts benchmarks/ on the path
    spec = importlib.util.spec_from_file_location("jpeg_cost_benchmark", REPO / "benchmarks" / "jpeg_cost.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def smooth_images(count=8, seed=0):
    """Blurry random colour images, as photographs are: JPEG keeps most of them."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, 4, 4, generator=generator)
    return (torch.nn.functional.interpolate(coarse, size=32, mode="bilinear", align_corners=False) * 255).byte()


def test_recompress_keeps_shape_and_loses_more_on_a_moved_grid_and_at_lower_quality():
    jpeg = load_jpeg_cost()
    images = smooth_images()
    once = jpeg.recompress(images, jpeg.Compression(75, offset=0))
    assert once.shape == images.shape and once.dtype == torch.uint8
    aligned = jpeg.psnr(jpeg.recompress(once, jpeg.Compression(75, offset=0)), once)
    moved = jpeg.psnr(jpeg.recompress(once, jpeg.Compression(75)), once)
    coarser = jpeg.psnr(jpeg.recompress(once, jpeg.Compression(30)), once)
    assert aligned > moved > coarser > 20  # the same grid repeats the first rounding; a moved one does not
    assert jpeg.psnr(images, images) == float("inf")
    with pytest.raises(ValueError, match="uint8 RGB"):
        jpeg.recompress(images.float(), jpeg.Compression(75))


def test_jpeg_cost_trains_the_cifar10_row_on_recompressed_data_and_refuses_stale_rows(monkeypatch, capsys,
                                                                                         tmp_path):
    jpeg = load_jpeg_cost()
    monkeypatch.setattr(jpeg.cifar10, "load_dataset", fake_cifar)
    jpeg.main(["--rows", "q90-shifted", "--epochs", "1", "--results", str(tmp_path)])
    row = (tmp_path / "q90-shifted.json").read_text()
    saved = json.loads(row)
    assert saved["compression"]["quality"] == 90 and saved["base_row"] == "stn-10-epochs"
    # trained and tested on changed images: the fake set is noise, which JPEG changes a lot
    assert saved["psnr_train"] < 30 and saved["psnr_test"] < 30
    out = capsys.readouterr().out
    assert "| encoded again, quality 90, 4:2:0, grid moved 4 px |" in out
    jpeg.main(["--table", "--results", str(tmp_path)])
    assert "| encoded again, quality 90, 4:2:0, grid moved 4 px |" in capsys.readouterr().out
    for bad in (dict(quality=0), dict(quality=75, offset=8), dict(quality=75, offset=-1)):
        with pytest.raises(ValueError, match="Compression"):
            jpeg.Compression(**bad)
    monkeypatch.setitem(jpeg.ROWS, "q90-shifted", jpeg.Compression(80))
    with pytest.raises(SystemExit):
        jpeg.main(["--rows", "q90-shifted", "--epochs", "1", "--results", str(tmp_path)])
    assert "q90-shifted: compression: " in capsys.readouterr().err
    assert (tmp_path / "q90-shifted.json").read_text() == row


def load_ensemble_benchmark():
    if str(REPO / "benchmarks") not in sys.path:
        sys.path.insert(0, str(REPO / "benchmarks"))  # as when run as a script: its folder is on the path
    spec = importlib.util.spec_from_file_location("cifar10_ensemble", REPO / "benchmarks" / "cifar10_ensemble.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_ensemble_averages_its_members_probabilities():
    ensemble = load_ensemble_benchmark()
    labels = torch.tensor([0, 1, 0, 1])
    # each member is unsure and wrong on one image where the other is sure and right: the mean of
    # the probabilities gets both right, so the pair beats either member
    first = torch.tensor([[0.45, 0.55], [0.3, 0.7], [0.9, 0.1], [0.2, 0.8]])
    second = torch.tensor([[0.9, 0.1], [0.45, 0.55], [0.4, 0.6], [0.4, 0.6]])
    rows = ensemble.ensemble_rows({"a": first, "b": second}, labels)
    assert rows == [("a", 0.75), ("b", 0.75), ("a + b", 1.0)]
    assert ensemble.ensemble_rows({"a": first, "c": torch.tensor([[0.9, 0.1]] * 4)}, labels)[-1] == ("a + c", 0.5)


def test_the_ensemble_benchmark_tests_notebook_05s_stored_models(monkeypatch, capsys):
    ensemble = load_ensemble_benchmark()
    monkeypatch.setattr(ensemble, "load_dataset", fake_cifar)
    seen = []
    rows = ensemble.ensemble_rows
    monkeypatch.setattr(ensemble, "ensemble_rows",
                        lambda members, labels: seen.append(members) or rows(members, labels))
    ensemble.main(["--device", "cpu"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# ") and "test 20 images" in lines[0]
    (members,) = seen
    for probs in members.values():  # every test image's class probabilities, from differing models
        assert probs.shape == (20, 10) and torch.allclose(probs.sum(1), torch.ones(20))
    assert not torch.allclose(*members.values())
    expected = rows(members, fake_cifar("cifar10", "test").labels)
    assert lines[3:] == [f"| {name} | {accuracy:.2%} |" for name, accuracy in expected]
    assert [name for name, _ in expected] == ["course CNN", "course STN-CNN", "course CNN + course STN-CNN"]
