"""stn_utils.experiments (distorted-MNIST comparison) and its benchmark's command line."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

import stn_utils.experiments as experiments
from stn_utils import data
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
    monkeypatch.setattr(data, "load_dataset", fake_mnist)  # what the benchmarks count images with


def test_distorted_mnist_trains_on_plain_digits_and_tests_on_one_fixed_draw(fake_data):
    train, test = experiments.distorted_mnist("RTS", train_subset=12, test_subset=5)
    assert train.images.shape == (12, 1, 28, 28) and train.images.dtype == torch.uint8  # distorted per batch
    assert test.images.shape == (5, 1, 42, 42) and len(test.labels) == 5
    _, again = experiments.distorted_mnist("RTS", train_subset=12, test_subset=5, seed=3)
    assert torch.equal(test.images, again.images), "the test draw does not depend on the training seed"
    fixed, _ = experiments.distorted_mnist("RTS", train_subset=12, fixed_training=True)
    assert fixed.images.shape == (12, 1, 42, 42)
    other, _ = experiments.distorted_mnist("RTS", train_subset=12, fixed_training=True, seed=3)
    assert not torch.equal(fixed.images, other.images)
    assert experiments.distorted_mnist("cluttered", test_subset=3)[1].images.shape == (3, 1, 60, 60)


def test_the_recipe_distorts_every_batch_afresh():
    recipe = experiments.distortion_recipe("RTS")
    augment, digits = recipe.augmentation, torch.rand(4, 1, 28, 28)
    generator = torch.Generator().manual_seed(0)
    first, second = augment(digits, generator), augment(digits, generator)
    assert first.shape == (4, 1, 42, 42) and not torch.equal(first, second)
    assert recipe.augment == "distort-RTS" and experiments.distortion_recipe("R", epochs=2).epochs == 2
    assert recipe.epochs == experiments.EPOCHS["RTS"]["affine"]
    assert experiments.distortion_recipe("cluttered", None).epochs == experiments.EPOCHS["cluttered"][None]


@pytest.mark.parametrize("distortion, side", [("R", 28), ("RTS", 42), ("cluttered", 60)])
def test_models_fit_the_canvas_and_the_stn_writes_28_pixels(distortion, side):
    x = torch.rand(2, 1, side, side)
    cnn = experiments.build_distorted_mnist_model(distortion, None)
    assert cnn.stn is None and cnn(x).shape == (2, 10)
    for transform in ("affine", "tps"):
        stn_cnn = experiments.build_distorted_mnist_model(distortion, transform)
        assert isinstance(stn_cnn.stn, SpatialTransformer) and stn_cnn.stn.supersample == 2
        assert stn_cnn.stn.localization.input_size == side // 2
        assert stn_cnn.stn(x).shape == (2, 1, 28, 28) and stn_cnn(x).shape == (2, 10)


def test_train_row_measures_and_tells_the_callbacks(fake_data):
    train, test = experiments.distorted_mnist("R", train_subset=32, test_subset=16)
    calls = []
    recipe = experiments.distortion_recipe("R", epochs=2)
    row = experiments.train_row("R", "affine", train, test, recipe=recipe, device="cpu",
                                callbacks=[lambda p: calls.append((p.step, p.model)) if p.event == "step" else None])
    assert row["model"] is calls[0][1] and [step for step, _ in calls] == [1, 2]  # 32 images, batch 128
    assert 0 <= row["error"] <= 100 and row["seconds"] > 0 and row["test_seconds"] > 0
    assert row["parameters"] > 0 and row["macs"] > 0 and row["history"]["epoch"] == [1, 2]
    table = experiments.results_table([row, {**row, "transform": None, "distortion": "cluttered"}])
    lines = table.splitlines()
    assert lines[2].startswith("| R | ST-CNN (affine) | 0 | 2 |") and "| 0.7 |" in lines[2]
    assert lines[3].startswith("| cluttered | CNN | 0 | 2 |") and "| 3.5 |" in lines[3]


def load_benchmark():
    sys.path.insert(0, str(REPO / "benchmarks"))  # as when run as a script: its folder is on the path
    spec = importlib.util.spec_from_file_location("distorted_mnist_benchmark",
                                                  REPO / "benchmarks" / "distorted_mnist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_rows_verdicts_and_table():
    benchmark = load_benchmark()
    assert benchmark.parse_row("RTS:cnn") == ("RTS", "cnn", 0)
    assert benchmark.parse_row("cluttered:tps:2") == ("cluttered", "tps", 2)
    for bad in ("RTS", "XYZ:cnn", "RTS:mlp", "RTS:cnn:x"):
        with pytest.raises(Exception, match="is not DISTORTION:MODEL"):
            benchmark.parse_row(bad)
    row = dict(distortion="RTS", model="affine", transform="affine", error=0.45, seconds=500)
    rows = [row, {**row, "error": 0.55, "seed": 1}, {**row, "model": "cnn", "transform": None, "error": 1.0}]
    assert experiments.verdict(rows, "RTS") == "at or below the paper; within 10 min"
    assert experiments.verdict([{**row, "error": 0.9}], "RTS") == "misses the paper by 0.40 points; within 10 min"
    assert experiments.verdict([{**row, "seconds": 660}], "RTS").endswith("OVER 10 min (11.0)")
    lines = experiments.benchmark_table(rows).splitlines()
    assert lines[2].startswith("| RTS | **1.00** / 0.8 | **0.50 ± 0.07 (2 seeds)** / 0.5 | not run / 0.6 |")


def test_benchmark_saves_every_row_and_assembles_the_table_from_them(fake_data, tmp_path, capsys, monkeypatch):
    benchmark = load_benchmark()
    monkeypatch.setattr(benchmark, "distorted_mnist", experiments.distorted_mnist)
    argv = ["--rows", "R:cnn", "R:affine", "--smoke", "--results", str(tmp_path)]
    benchmark.main(argv)
    saved = sorted(p.name for p in tmp_path.glob("*.json"))
    assert saved == ["R-affine-seed0.json", "R-cnn-seed0.json"]
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["R-affine-seed0.pt", "R-cnn-seed0.pt"]
    out = capsys.readouterr().out
    assert "| R | **" in out and "# 2 rows, trained on " in out
    benchmark.main(argv)  # saved rows are not trained again
    assert "R cnn seed 0:" not in capsys.readouterr().out
    benchmark.main(["--table", "--results", str(tmp_path)])
    assert "| R | **" in capsys.readouterr().out
    saved = (tmp_path / "R-cnn-seed0.json").read_text()
    with pytest.raises(SystemExit):  # another recipe: refused, the saved row kept
        benchmark.main(["--rows", "R:cnn", "--epochs", "2", "--train-subset", "2000", "--test-subset", "500",
                        "--results", str(tmp_path)])
    assert "R-cnn-seed0: epochs: 1 -> 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # the same recipe on fewer digits: refused as well
        benchmark.main(["--rows", "R:cnn", "--epochs", "1", "--train-subset", "24", "--test-subset", "500",
                        "--results", str(tmp_path)])
    assert "R-cnn-seed0: train_images: 40 -> 24" in capsys.readouterr().err
    assert (tmp_path / "R-cnn-seed0.json").read_text() == saved


def test_a_saved_benchmark_row_comes_back_as_a_model_with_its_error_measured_again(fake_data, tmp_path,
                                                                                   monkeypatch):
    benchmark = load_benchmark()
    monkeypatch.setattr(benchmark, "distorted_mnist", experiments.distorted_mnist)
    monkeypatch.setattr(benchmark, "distortion_recipe", lambda d, t, **changes: experiments.distortion_recipe(d, t))
    monkeypatch.setattr(experiments, "EPOCHS", {**experiments.EPOCHS, "R": {None: 1, "affine": 1}})
    benchmark.main(["--rows", "R:affine", "--train-subset", "64", "--test-subset", "16", "--results", str(tmp_path)])
    saved = json.loads((tmp_path / "R-affine-seed0.json").read_text())
    _, test = experiments.distorted_mnist("R", test_subset=16)
    row = experiments.saved_row("R", "affine", test, folder=tmp_path)
    assert row["epochs"] == 1 and row["seconds"] == saved["seconds"] and row["machine"] == saved["machine"]
    assert abs(row["error"] - saved["error"]) <= 100 / 16 + 1e-9   # fp16 weights: at most one digit flips
    assert not row["model"].training and row["model"](test.images[:2].float() / 255).shape == (2, 10)
    assert experiments.saved_row("R", None, test, folder=tmp_path) is None             # never trained
    monkeypatch.setattr(experiments, "EPOCHS", {**experiments.EPOCHS, "R": {None: 1, "affine": 2}})
    assert experiments.saved_row("R", "affine", test, folder=tmp_path) is None         # another recipe


def test_transformer_film_takes_a_labelled_frame_every_few_steps(fake_data):
    train, test = experiments.distorted_mnist("RTS", train_subset=40, test_subset=8)
    model = experiments.build_distorted_mnist_model("RTS", "affine")
    watched = test.images[:3].float() / 255
    film = experiments.TransformerFilm(watched, every=2)
    film.snap(model, 0)
    experiments.train_row("RTS", "affine", train, test, recipe=experiments.distortion_recipe("RTS", epochs=1,
                                                                                              batch_size=8),
                          device="cpu", callbacks=[film])
    assert film.labels == ["step 0", "step 2", "step 4", "step 5"]  # 40 images, batch 8: 5 steps, and the last
    assert all(frame.shape == (3, 1, 28, 28) for frame in film.frames)
    with pytest.raises(ValueError, match="every must be at least 1 step"):
        experiments.TransformerFilm(watched, every=0)


def test_invariance_curves_measure_each_model_at_each_amount(fake_data):
    _, test = experiments.distorted_mnist("RTS", test_subset=10)
    digits = experiments.load_dataset("mnist", "test").subset(10)
    models = {"CNN": experiments.build_distorted_mnist_model("RTS", None).eval()}
    curves = experiments.invariance_curves(models, digits, "RTS")
    assert set(curves) == set(experiments.CURVES["RTS"])
    for curve, (amounts, _, _) in experiments.CURVES["RTS"].items():
        assert len(curves[curve]["CNN"]) == len(amounts) and all(0 <= a <= 1 for a in curves[curve]["CNN"])
    clutter = experiments.invariance_curves(
        {"CNN": experiments.build_distorted_mnist_model("cluttered", None).eval()}, digits, "cluttered")
    assert len(clutter["clutter (6x6 pieces)"]["CNN"]) == 11


def test_collapse_run_records_the_zoom_from_the_identity(fake_data):
    train, test = experiments.distorted_mnist("cluttered", train_subset=40, test_subset=10)
    setup = "tutorial: normalise first, zero padding"
    run = experiments.collapse_run(setup, train, test, epochs=2, device="cpu")
    assert run["zooms"][0] == pytest.approx(1.0) and len(run["zooms"]) == 3
    assert run["model"].normalize_first and run["model"].stn.padding_mode == "zeros"
    assert 0 <= run["error"] <= 100


def test_each_choice_undoes_one_thing_of_the_course_recipe(fake_data, monkeypatch):
    def measured(distortion, transform, train, test, *, recipe, device, seed, model_kwargs):
        model = experiments.build_distorted_mnist_model(distortion, transform, **model_kwargs)
        return dict(model=model, train=train, transform=transform, error=1.0, seconds=60.0)

    monkeypatch.setattr(experiments, "train_row", measured)
    rows = {choice: experiments.choice_row(choice, epochs=3, train_subset=12, test_subset=4)
            for choice in experiments.CHOICES}
    course = rows["course"]
    assert course["recipe"] == experiments.distortion_recipe("RTS", "affine", epochs=3)
    changed = {choice: sorted(d.partition(":")[0] for d in row["recipe"].differences(course["recipe"].to_dict()))
               for choice, row in rows.items()}
    assert changed == {"course": [], "fixed-draw": ["augment"], "fp32": ["channels_last", "precision"],
                       "no-batch-norm": [], "full-canvas-localisation": [], "no-supersampling": [],
                       "constant-lr": ["schedule"], "slow-transformer": ["stn_lr_scale"],
                       "sgd": ["lr", "optimizer", "weight_decay"], "no-transformer": []}

    def norms(row):
        return sum(isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d) for m in row["model"].body.modules())

    assert norms(course) > 0 and norms(rows["no-batch-norm"]) == 0
    assert course["model"].stn.localization.input_size == 21
    assert rows["full-canvas-localisation"]["model"].stn.localization.input_size == 42
    assert course["model"].stn.supersample == 2 and rows["no-supersampling"]["model"].stn.supersample == 1
    assert rows["no-transformer"]["model"].stn is None and rows["no-transformer"]["transform"] is None
    assert torch.equal(rows["sgd"]["train"].images, course["train"].images)          # plain digits, distorted later
    assert not torch.equal(rows["fixed-draw"]["train"].images, course["train"].images)  # one distorted copy
    with pytest.raises(ValueError, match="choice must be one of"):
        experiments.choice_row("no-dropout", epochs=1)


def test_choices_benchmark_saves_rows_and_prints_the_change_against_the_course(fake_data, tmp_path, capsys,
                                                                               monkeypatch):
    load_benchmark()  # puts benchmarks/ on the path, as when the script runs
    spec = importlib.util.spec_from_file_location("choices_benchmark",
                                                  REPO / "benchmarks" / "distorted_mnist_choices.py")
    choices = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(choices)
    argv = ["--rows", "course", "sgd", "--epochs", "1", "--train-subset", "32", "--test-subset", "8",
            "--results", str(tmp_path)]
    choices.main(argv)
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["course-epochs1-seed0.json", "sgd-epochs1-seed0.json"]
    out = capsys.readouterr().out
    assert "| none: the course's recipe |" in out and "| SGD with Nesterov momentum" in out
    sgd, course = (json.loads((tmp_path / f"{c}-epochs1-seed0.json").read_text()) for c in ("sgd", "course"))
    assert f"| {sgd['error']:.2f} | {sgd['error'] - course['error']:+.2f} |" in out
    choices.main(argv)  # saved rows are not trained again
    assert "sgd:" not in capsys.readouterr().out
    assert (sgd["train_images"], sgd["test_images"]) == (32, 8)
    saved = (tmp_path / "sgd-epochs1-seed0.json").read_text()
    fewer = ["--rows", "sgd", "--epochs", "1", "--train-subset", "16", "--test-subset", "8", "--results", str(tmp_path)]
    for bad, message in ((fewer, "sgd-epochs1-seed0: train_images: 32 -> 16"),
                         (fewer[:6], "give them a folder of their own with --results"),   # the course's folder
                         ([*fewer[:5], "0"], "--train-subset must be at least 1; got 0")):
        with pytest.raises(SystemExit):
            choices.main(bad)
        assert message in capsys.readouterr().err
    monkeypatch.setattr(choices, "choice_recipe",
                        lambda choice, epochs: experiments.choice_recipe("course", epochs=epochs))
    with pytest.raises(SystemExit):  # the choice's recipe changed since the row was saved: refused, kept
        choices.main(argv)
    assert "sgd-epochs1-seed0: optimizer: 'sgd' -> 'adamw'" in capsys.readouterr().err
    assert (tmp_path / "sgd-epochs1-seed0.json").read_text() == saved


def test_distortion_strength_prints_the_ink_each_generator_keeps(monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("strength", REPO / "benchmarks" / "distortion_strength.py")
    strength = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(strength)
    monkeypatch.setattr(strength.data, "load_dataset", fake_mnist)
    strength.main(["--digits", "20"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[3].startswith("| R | 1.00 | 1.00 | 0.0 % |")   # a rotation inside the canvas keeps all the ink
    assert [line.split(" | ")[0] for line in lines[4:]] == ["| P", "| E", "| P, corners N(0, 2 px)",
                                                            "| P, corners N(0, 3 px)", "| P, corners N(0, 4 px)"]
