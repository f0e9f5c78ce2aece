"""stn_utils.addition (MNIST addition), its models, its exercise checks and its benchmark."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

import stn_utils.addition as addition
from stn_utils import data, distortions, recipes, viz
from stn_utils.data import ImageDataset
from stn_utils.exercises import addition as ex
from stn_utils.models import Classifier, SpatialTransformer, TransformerStack, build_model

REPO = Path(__file__).resolve().parents[1]
CLASSES = tuple(str(i) for i in range(10))


def fake_mnist(name, split, **kwargs):
    assert name == "mnist"
    generator = torch.Generator().manual_seed(0 if split == "train" else 1)
    images = torch.zeros(40, 1, 28, 28, dtype=torch.uint8)
    images[:, :, 8:20, 10:18] = torch.randint(100, 256, (40, 1, 12, 8), generator=generator, dtype=torch.uint8)
    return ImageDataset(images, torch.arange(40) % 10, CLASSES)


@pytest.fixture
def fake_data(monkeypatch):
    monkeypatch.setattr(addition, "load_dataset", fake_mnist)
    monkeypatch.setattr(data, "load_dataset", fake_mnist)  # what the benchmarks count images with


def test_pairs_sum_two_different_digits_and_keep_both_labels():
    digits = ImageDataset(torch.arange(12, dtype=torch.uint8).reshape(12, 1, 1, 1).expand(12, 1, 4, 4).clone(),
                          torch.arange(12) % 10, CLASSES)
    pairs, labels = addition.digit_pairs(digits, seed=3)
    assert pairs.images.shape == (12, 2, 4, 4) and labels.shape == (12, 2)
    assert pairs.classes == tuple(str(s) for s in range(19))
    assert torch.equal(pairs.labels, labels.sum(1))
    assert torch.equal(pairs.images[:, 0], digits.images[:, 0])                 # channel 0: the digit itself
    partner = pairs.images[:, 1, 0, 0].long()                                    # each image's value is its index
    assert not torch.any(partner == torch.arange(12)), "a digit was paired with itself"
    assert torch.equal(labels[:, 1], digits.labels[partner])
    again, _ = addition.digit_pairs(digits, seed=3)
    assert torch.equal(again.images, pairs.images)
    with pytest.raises(ValueError, match="at least two digits"):
        addition.digit_pairs(ImageDataset(digits.images[:1], digits.labels[:1], CLASSES), seed=0)
    with pytest.raises(ValueError, match="grey digits"):
        addition.digit_pairs(pairs, seed=0)


def test_each_channel_gets_its_own_distortion():
    digit = fake_mnist("mnist", "test").images[:3]
    both = torch.cat([digit, digit], dim=1)                                      # the same digit twice
    canvas = distortions.distort_each_channel("RTS", both, seed=5)
    assert canvas.shape == (3, 2, 42, 42)
    flat = distortions.distort("RTS", both.reshape(6, 1, 28, 28), seed=5)
    assert torch.equal(canvas, flat.reshape(3, 2, 42, 42))
    assert not torch.equal(canvas[:, 0], canvas[:, 1]), "both channels got the same draw"
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        distortions.distort_each_channel("RTS", digit[0], seed=0)
    fresh = recipes.AUGMENTATIONS["distort-RTS-each-channel"]
    out = fresh(both.float() / 255, torch.Generator().manual_seed(0))
    assert out.shape == (3, 2, 42, 42) and "each_channel=True" in repr(fresh)


def test_mnist_addition_trains_on_plain_pairs_and_tests_on_one_fixed_draw(fake_data):
    first = addition.mnist_addition(seed=0)
    second = addition.mnist_addition(seed=1)
    assert first.train.images.shape == (40, 2, 28, 28) and first.test.images.shape == (40, 2, 42, 42)
    assert first.test.images.dtype == torch.uint8 and first.test_digits.shape == (40, 2)
    assert torch.equal(first.test.labels, first.test_digits.sum(1))
    assert torch.equal(first.test.images, second.test.images), "the test draw must not depend on the seed"
    assert not torch.equal(first.train.images, second.train.images)
    small = addition.mnist_addition(train_subset=10, test_subset=8)
    assert len(small.train) == 10 and len(small.test) == 8


@pytest.mark.parametrize("name, channels_seen", [("cnn", 2), ("st", 2), ("2st", 4)])
def test_each_model_reads_two_channels_and_scores_19_sums(name, channels_seen):
    model = addition.build_addition_model(name).eval()
    images = torch.rand(3, 2, 42, 42)
    assert model(images).shape == (3, 19)
    assert model.body[0].in_channels == channels_seen
    with pytest.raises(ValueError, match="channel"):
        model(torch.rand(3, 1, 42, 42))
    with pytest.raises(ValueError, match="must be one of"):
        addition.build_addition_model("3st")


def test_two_transformers_start_at_a_centred_window_of_the_canvas_resolution_and_stack_their_windows():
    model = addition.build_addition_model("2st").eval()
    assert isinstance(model.stn, TransformerStack) and len(model.stn.transformers) == 2
    images = torch.rand(4, 2, 42, 42)
    out, theta = model.stn(images, return_theta=True)
    assert out.shape == (4, 4, 28, 28) and theta.shape == (4, 2, 2, 3)
    assert torch.allclose(out[:, :2], out[:, 2:])                     # identical until training moves them
    with torch.no_grad():
        model.stn.transformers[1].to_theta.bias[2] += 0.5                 # move the second window right
    assert not torch.allclose(model.stn(images)[:, 2:], out[:, 2:]) and torch.allclose(model.stn(images)[:, :2],
                                                                                         out[:, :2])
    model = addition.build_addition_model("2st").eval()
    thetas = addition.window_thetas(model, images, batch_size=3)      # two batches
    assert thetas.shape == (4, 2, 2, 3)
    assert torch.allclose(thetas[..., 2], torch.zeros(4, 2, 2))       # centred windows
    side = 42 * torch.linalg.det(thetas[..., :2]).sqrt()
    assert torch.allclose(side, torch.full((4, 2), 28.0))             # 28 canvas pixels: its own resolution
    identity = addition.window_thetas(addition.build_addition_model("2st-identity"), images)
    assert torch.allclose(torch.linalg.det(identity[..., :2]), torch.ones(4, 2))   # the whole canvas
    single = addition.window_thetas(addition.build_addition_model("st"), images)
    assert single.shape == (4, 1, 2, 3)
    with pytest.raises(ValueError, match="no spatial transformer"):
        addition.window_thetas(addition.build_addition_model("cnn"), images)
    with pytest.raises(ValueError, match="same explicit output_size"):
        TransformerStack([SpatialTransformer(1, output_size=(8, 8)), SpatialTransformer(1, output_size=(9, 9))])


def test_start_zoom_sets_the_first_window_and_is_checked():
    stn = SpatialTransformer(1, output_size=(8, 8), start_zoom=0.5)
    assert stn.to_theta.bias.tolist() == [0.5, 0.0, 0.0, 0.0, 0.5, 0.0]
    assert not stn.to_theta.weight.any()
    for bad in (0, 1.5, "half"):
        with pytest.raises(ValueError, match="start_zoom must be a number in"):
            SpatialTransformer(1, start_zoom=bad)
    with pytest.raises(ValueError, match="start_zoom is for the affine family"):
        SpatialTransformer(1, transform="tps", start_zoom=0.5)


def test_classifier_takes_one_mean_for_every_channel():
    model = build_model("addition_cnn")
    assert isinstance(model, Classifier) and model.in_channels == 2
    assert model.normalize.mean.numel() == 1


def test_ink_centroids_and_picks_find_each_digit():
    images = torch.zeros(1, 3, 4, 8)
    images[0, 0, 0, 0] = 1                         # top-left pixel
    images[0, 1, 3, 6:8] = 1                       # two bottom-right pixels
    centroids = addition.ink_centroids(images)     # channel 2 is blank
    assert torch.allclose(centroids[0], torch.tensor([[-7 / 8, -3 / 4], [7 / 8 - 1 / 8, 3 / 4], [0.0, 0.0]]))
    windows = torch.tensor([[[0.8, 0.7], [-0.9, -0.8]]])        # the first near channel 1, the second near 0
    assert addition.picks(windows, centroids[:, :2]).tolist() == [[1, 0]]
    with pytest.raises(ValueError, match="picks takes"):
        addition.picks(windows[0], centroids)


def test_two_colour_shows_channel_0_magenta_and_channel_1_green():
    images = torch.zeros(1, 2, 2, 2, dtype=torch.uint8)
    images[0, 0, 0, 0] = 255
    images[0, 1, 1, 1] = 255
    colour = viz.two_colour(images)
    assert colour[0, :, 0, 0].tolist() == [1, 0, 1] and colour[0, :, 1, 1].tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\)"):
        viz.two_colour(torch.zeros(1, 3, 2, 2))


def test_table_puts_each_model_beside_the_paper():
    row = dict(name="2st", error=2.0, seconds=600, epochs=20)
    lines = addition.addition_table([row, {**row, "error": 3.0, "seed": 1}]).splitlines()
    assert lines[2].startswith("| CNN on the 2x42x42 canvas | not run | 14.7 (CNN)")
    assert lines[4] == "| ST-CNN, two transformers | **2.50 ± 0.71 (2 seeds)** | 5.8 (2xST-FCN) | 10.0 min | 20 |"


def test_window_exercise():
    assert ex.check_window((0.4, -0.3, 21)) is True
    assert ex.check_window(None) is False
    assert ex.check_window((0.4, -0.3, 14)) is False                  # a share of the output, not the canvas
    assert ex.check_window((0.4, 0.3, 21)) is False
    assert ex.check_window("here") is False


def test_guessing_exercise():
    assert ex.check_guessing_error(90) is True
    assert ex.check_guessing_error(None) is False
    assert ex.check_guessing_error(10) is False        # the share it gets right
    assert ex.check_guessing_error(0.9) is False       # a fraction
    assert ex.check_guessing_error("90") is False


def test_ink_centroid_exercise_catches_the_usual_mistakes(capsys):
    assert ex.check_ink_centroids(None) is False
    assert ex.check_ink_centroids(lambda images: addition.ink_centroids(images)) is False   # borrowed
    assert "yourself" in capsys.readouterr().out

    def corners(images):
        height, width = images.shape[-2:]
        xs, ys = torch.linspace(-1, 1, width), torch.linspace(-1, 1, height)
        total = images.sum((2, 3))
        return torch.stack([(images.sum(2) * xs).sum(2) / total, (images.sum(3) * ys).sum(2) / total], -1)

    assert ex.check_ink_centroids(corners) is False
    assert "align_corners=True" in capsys.readouterr().out

    def right(images):
        height, width = images.shape[-2:]
        xs, ys = (2 * torch.arange(width) + 1) / width - 1, (2 * torch.arange(height) + 1) / height - 1
        total = images.sum((2, 3))
        return torch.stack([(images.sum(2) * xs).sum(2) / total, (images.sum(3) * ys).sum(2) / total], -1)

    assert ex.check_ink_centroids(right) is True


def load_benchmark():
    sys.path.insert(0, str(REPO / "benchmarks"))  # as when run as a script: its folder is on the path
    spec = importlib.util.spec_from_file_location("mnist_addition_benchmark", REPO / "benchmarks" / "mnist_addition.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_saves_rows_loads_them_back_and_prints_the_table(fake_data, tmp_path, capsys, monkeypatch):
    benchmark = load_benchmark()
    assert benchmark.parse_row("2st:1") == ("2st", 1)
    with pytest.raises(Exception, match="MODEL"):
        benchmark.parse_row("3st")
    with pytest.raises(SystemExit):
        benchmark.main(["--smoke"])                                  # would write into the course's rows
    assert "--results" in capsys.readouterr().err
    monkeypatch.setattr(addition, "EPOCHS", {"cnn": 1, "st": 1, "2st": 1})
    benchmark.main(["--rows", "cnn", "2st", "--train-subset", "24", "--test-subset", "16", "--results",
                    str(tmp_path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2st-seed0.json", "2st-seed0.pt", "cnn-seed0.json",
                                                           "cnn-seed0.pt"]
    out = capsys.readouterr().out
    assert "| ST-CNN, two transformers | **" in out and "# two transformers:" in out
    saved = json.loads((tmp_path / "2st-seed0.json").read_text())
    test = addition.mnist_addition(test_subset=16).test
    row = addition.saved_addition_row("2st", test, folder=tmp_path)
    assert row["epochs"] == 1 and row["seconds"] == saved["seconds"]
    assert abs(row["error"] - saved["error"]) <= 100 / 16 + 1e-9   # fp16 weights: at most one pair flips
    assert addition.saved_addition_row("st", test, folder=tmp_path) is None            # never trained
    benchmark.main(["--table", "--windows", "--test-subset", "16", "--results", str(tmp_path)])
    printed = capsys.readouterr().out.splitlines()
    windows = [line for line in printed if line.startswith("| ST-CNN, two transformers | 0 |")]
    assert len(windows) == 1 and windows[0].count("|") == 7
    summary = addition.window_summary(row["model"], test, recipe=addition.addition_recipe("2st"))
    assert len(summary["sides"]) == 2 and 0 <= summary["same"] <= 100
    groups = summary["groups"].values()
    assert sum(share for share, _ in groups) == pytest.approx(100)
    saved_text = (tmp_path / "cnn-seed0.json").read_text()
    with pytest.raises(SystemExit):  # another recipe: refused, the saved row kept
        benchmark.main(["--rows", "cnn", "--epochs", "2", "--train-subset", "24", "--test-subset", "16",
                        "--results", str(tmp_path)])
    assert "cnn-seed0: epochs: 1 -> 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # the same recipe on fewer pairs: refused as well
        benchmark.main(["--rows", "cnn", "--train-subset", "20", "--test-subset", "16", "--results", str(tmp_path)])
    assert "cnn-seed0: train_images: 24 -> 20" in capsys.readouterr().err
    assert (tmp_path / "cnn-seed0.json").read_text() == saved_text
    overall = sum(share * error for share, error in groups if error is not None) / 100
    assert overall == pytest.approx(row["error"])          # predicted as the error was measured
    monkeypatch.setattr(addition, "EPOCHS", {"cnn": 1, "st": 1, "2st": 2})
    assert addition.saved_addition_row("2st", test, folder=tmp_path) is None           # another recipe
