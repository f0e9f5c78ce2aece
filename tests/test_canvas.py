"""stn_utils.canvas (CIFAR-10 on a canvas), its placement, models, exercise checks and benchmark."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import stn_utils.canvas as canvas
from stn_utils import data, distortions, recipes
from stn_utils.data import ImageDataset
from stn_utils.exercises import canvas as ex
from stn_utils.geometry import invert_theta, make_theta

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def fake_cifar(name, split, **kwargs):
    assert name == "cifar10"
    generator = torch.Generator().manual_seed(0 if split == "train" else 1)
    images = torch.randint(30, 256, (40, 3, 32, 32), generator=generator, dtype=torch.uint8)
    return ImageDataset(images, torch.arange(40) % 10, CLASSES)


@pytest.fixture
def fake_data(monkeypatch):
    monkeypatch.setattr(canvas, "load_dataset", fake_cifar)
    monkeypatch.setattr(data, "load_dataset", fake_cifar)  # what the benchmarks count images with


def test_on_canvas_keeps_the_whole_photograph_inside_a_black_border():
    photos = torch.ones(64, 3, 32, 32)
    placed, placement = distortions.on_canvas(photos, seed=3)
    assert placed.shape == (64, 3, 48, 48) and placed.dtype == torch.float32
    assert placed.min() >= 0 and placed.max() <= 1
    border = torch.cat([placed[..., 0, :], placed[..., -1, :], placed[..., :, 0], placed[..., :, -1]], -1)
    assert border.max() == 0, "a photograph reached the canvas's outermost pixels"
    # the photograph's area on the canvas is its zoomed area: nothing was cut off
    area = placed[:, 0].sum((1, 2))
    assert torch.allclose(area, (32 * placement.zoom) ** 2, rtol=0.02)
    assert placement.angle.abs().max() <= 45 and placement.zoom.min() >= 0.7 and placement.zoom.max() <= 1.0
    again, _ = distortions.on_canvas((photos * 255).byte(), seed=3)               # uint8 gives the same
    assert torch.allclose(again, placed, atol=1e-6)
    assert not torch.equal(distortions.on_canvas(photos, seed=4)[0], placed)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        distortions.on_canvas(torch.ones(3, 32, 32), seed=0)


def test_the_placements_forward_map_cuts_the_photograph_back_out():
    ramp = torch.linspace(0.2, 1, 32)
    photos = torch.stack([ramp[None, :].expand(32, 32), ramp[:, None].expand(32, 32), torch.full((32, 32), 0.5)])
    photos = photos.expand(8, 3, 32, 32)                        # smooth, so resampling twice loses little
    placed, placement = distortions.on_canvas(photos, seed=1)
    forward = invert_theta(placement.theta)                     # photograph -> canvas: a perfect window
    grid = F.affine_grid(forward, [8, 3, 32, 32], align_corners=False)
    back = F.grid_sample(placed, grid, align_corners=False)
    inside = (slice(None), slice(None), slice(2, -2), slice(2, -2))   # the frame's edge blends into black
    assert (back - photos)[inside].abs().max() < 0.03
    pose = canvas.learned_pose(forward)
    assert torch.allclose(pose.zoom, placement.zoom, atol=1e-5)
    assert torch.allclose(pose.angle, placement.angle, atol=1e-3)
    assert torch.allclose(pose.centre, placement.centre, atol=1e-6)


def test_rts_digits_use_the_same_draw_as_before():
    digits = torch.zeros(5, 1, 28, 28)
    digits[:, :, 6:22, 10:18] = 1
    placement = distortions.rts_placement(distortions._ink_box(digits), 7, image_size=(28, 28))
    expected = distortions._warp(digits, distortions.Affine(), placement.theta.flatten(1), (42, 42))
    assert torch.equal(distortions.distort("RTS", digits, 7), expected)
    forward = make_theta(rotation=placement.angle, scale_x=placement.zoom * 28 / 42,
                         scale_y=placement.zoom * 28 / 42)[:, :, :2]
    assert torch.allclose(invert_theta(placement.theta)[:, :, :2], forward, atol=1e-6)


def test_a_positive_angle_turns_the_photograph_clockwise_on_screen():
    photo = torch.zeros(1, 1, 9, 9)
    photo[0, 0, 4, 7:] = 1                                          # a mark right of the middle
    placement = distortions.rts_placement(distortions.frame_boxes(1, 9, 9), 0, image_size=(9, 9), size=15,
                                          max_angle=0.0, scale=(1.0, 1.0))
    forward = make_theta(rotation=torch.tensor([90.0]), scale_x=torch.tensor([0.6]), scale_y=torch.tensor([0.6]))
    assert torch.allclose(invert_theta(placement.theta)[:, :, :2], make_theta(scale_x=torch.tensor([0.6]),
                                                                              scale_y=torch.tensor([0.6]))[:, :, :2])
    out = distortions._warp(photo, distortions.Affine(), invert_theta(forward).flatten(1), (15, 15))
    rows, cols = torch.nonzero(out[0, 0] > 0.3, as_tuple=True)
    assert rows.min() > 7 and cols.tolist() == [7] * len(cols)      # right -> below the middle: clockwise


def test_canvas_augment_flips_and_places_every_batch_afresh():
    images = torch.rand(6, 3, 32, 32)
    first = recipes.canvas_augment(images, torch.Generator().manual_seed(0))
    assert first.shape == (6, 3, 48, 48)
    assert torch.equal(first, recipes.canvas_augment(images, torch.Generator().manual_seed(0)))
    assert not torch.equal(first, recipes.canvas_augment(images, torch.Generator().manual_seed(1)))
    assert canvas.canvas_recipe("cnn").augmentation is recipes.canvas_augment
    assert "cifar10-canvas" in repr(canvas.canvas_recipe("stn"))


def test_cifar_canvas_trains_on_plain_photographs_and_tests_on_one_fixed_draw(fake_data):
    sets = canvas.cifar_canvas(train_subset=20, test_subset=10, seed=2)
    assert sets.train.images.shape == (20, 3, 32, 32) and sets.test.images.shape == (10, 3, 48, 48)
    assert sets.test.images.dtype == torch.uint8 and sets.test_photographs.images.shape == (10, 3, 32, 32)
    assert sets.placement.zoom.shape == (10,)
    other = canvas.cifar_canvas(train_subset=20, test_subset=10, seed=5)
    assert torch.equal(other.test.images, sets.test.images)        # the test draw does not follow the seed
    assert not torch.equal(other.train.images, sets.train.images)


@pytest.mark.parametrize("name", ["cnn", "stn"])
def test_both_models_classify_the_canvas(name):
    model = canvas.build_canvas_model(name).eval()
    assert model(torch.rand(2, 3, 48, 48)).shape == (2, 10)
    with pytest.raises(ValueError, match="must be one of"):
        canvas.build_canvas_model("vit")


def test_the_transformer_starts_at_a_window_of_the_canvas_resolution_or_at_the_identity():
    model = canvas.build_canvas_model("stn").eval()
    images = torch.rand(3, 3, 48, 48)
    out, theta = model.stn(images, return_theta=True)
    assert out.shape == (3, 3, 32, 32)
    assert torch.allclose(theta, (torch.eye(2, 3) * torch.tensor([[2 / 3], [2 / 3]])).expand(3, 2, 3))
    assert torch.allclose(canvas.learned_pose(theta).zoom, torch.ones(3))    # 32 canvas px: a photograph's size
    identity = canvas.build_canvas_model("stn-identity").eval()
    _, theta = identity.stn(images, return_theta=True)
    assert torch.allclose(theta, torch.eye(2, 3).expand(3, 2, 3))
    assert torch.allclose(canvas.learned_pose(theta).zoom, torch.full((3,), 1.5))   # the whole 48-px canvas
    assert canvas.canvas_recipe("stn-fast").stn_lr_scale == 10 * canvas.canvas_recipe("stn").stn_lr_scale
    with pytest.raises(ValueError, match="start_zoom is for the transformer"):
        canvas.build_model("canvas_cnn", start_zoom=0.5)


def test_accuracy_by_bins_and_checks_its_input():
    amount = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0])
    correct = torch.tensor([True, False, True, True, False])
    rows = canvas.accuracy_by(amount, correct, [0, 2, 5, 6])
    assert [r[2] for r in rows] == [2, 3, 0]
    assert rows[0][:2] == (1.0, 50.0) and rows[1][1] == pytest.approx(200 / 3)
    assert math.isnan(rows[2][1])
    with pytest.raises(ValueError, match="edges must rise"):
        canvas.accuracy_by(amount, correct, [2, 1])
    with pytest.raises(ValueError, match="alike"):
        canvas.accuracy_by(amount, correct[:3], [0, 1])


def test_table_says_how_much_the_stn_wins_back():
    rows = [dict(name="cnn", error=30.0, epochs=5, seconds=600), dict(name="stn", error=20.0, epochs=8, seconds=500)]
    table = canvas.canvas_table(rows, reference=90.0)
    assert "| CNN on the 48x48 canvas | **70.00** | 1 | 5 | 10.0 min |" in table
    assert "loses 20.00 points" in table and "wins back 10.00 of them (50 %; target at least half: met)" in table
    rows[1]["error"] = 21.0
    assert "missed" in canvas.canvas_table(rows, reference=90.0)
    two_seeds = rows + [dict(name="stn", error=19.0, epochs=8, seconds=520)]
    assert "**80.00 ± 1.41** | 2 |" in canvas.canvas_table(two_seeds, reference=90.0)
    assert "not run" in canvas.canvas_table(rows[:1], reference=90.0)


def test_turned_width_exercise(capsys):
    def right(side, angle, zoom):
        radians = torch.deg2rad(angle)
        return side * zoom * (radians.cos().abs() + radians.sin().abs())

    def no_abs(side, angle, zoom):
        radians = torch.deg2rad(angle)
        return side * zoom * (radians.cos() + radians.sin())

    def stub(side, angle, zoom):
        raise NotImplementedError

    assert ex.check_turned_width(right)
    assert not ex.check_turned_width(no_abs)
    assert "absolute value" in capsys.readouterr().out
    assert not ex.check_turned_width(stub)
    assert "Not answered yet" in capsys.readouterr().out
    assert not ex.check_turned_width(lambda side, angle, zoom: canvas.turned_width(side, angle, zoom))
    assert "Write it yourself" in capsys.readouterr().out


def test_pose_exercise(capsys):
    assert not ex.check_pose(None)
    assert ex.check_pose((0.75, 30.0))
    assert not ex.check_pose((0.5, 30.0))
    assert "48 / 32" in capsys.readouterr().out
    assert not ex.check_pose((0.75, -30.0))
    assert "sign" in capsys.readouterr().out
    assert not ex.check_pose((0.75, math.radians(30)))
    assert "radians" in capsys.readouterr().out
    assert not ex.check_pose("big")


def load_benchmark():
    sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("cifar10_canvas", REPO / "benchmarks" / "cifar10_canvas.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_saves_rows_loads_them_back_and_prints_the_table(fake_data, tmp_path, capsys, monkeypatch):
    benchmark = load_benchmark()
    assert benchmark.parse_row("stn:1") == ("stn", 1)
    with pytest.raises(Exception, match="MODEL"):
        benchmark.parse_row("vit")
    with pytest.raises(SystemExit):
        benchmark.main(["--smoke"])                                  # would write into the course's rows
    assert "--results" in capsys.readouterr().err
    monkeypatch.setattr(canvas, "EPOCHS", dict.fromkeys(canvas.MODELS, 1))
    monkeypatch.setattr(benchmark, "reference_accuracy", lambda **kwargs: 90.0)
    benchmark.main(["--train-subset", "24", "--test-subset", "16", "--results", str(tmp_path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn-seed0.json", "cnn-seed0.pt", "stn-seed0.json",
                                                           "stn-seed0.pt"]
    out = capsys.readouterr().out
    assert "| STN-CNN: a 32x32 window for the same body | **" in out and "target at least half" in out
    saved = json.loads((tmp_path / "stn-seed0.json").read_text())
    assert saved["recipe"]["augment"] == "cifar10-canvas" and saved["recipe"]["tta_level"] == 2
    test = canvas.cifar_canvas(train_subset=2, test_subset=16).test
    row = canvas.saved_canvas_row("stn", test, folder=tmp_path)
    assert row["epochs"] == 1 and row["seconds"] == saved["seconds"]
    assert abs(row["error"] - saved["error"]) <= 100 / 16 + 1e-9    # fp16 weights: at most one image flips
    right = canvas.hits(row["model"], test, canvas.canvas_recipe("stn"))
    assert right.shape == (16,) and 100 * (1 - right.float().mean().item()) == pytest.approx(row["error"])
    benchmark.main(["--table", "--poses", "--test-subset", "16", "--results", str(tmp_path)])
    label = canvas.MODELS["stn"].label
    poses = [line for line in capsys.readouterr().out.splitlines() if line.startswith(f"| {label} | 0 |")]
    assert len(poses) == 1 and poses[0].count("|") == 8
    monkeypatch.setattr(canvas, "EPOCHS", {**dict.fromkeys(canvas.MODELS, 1), "stn": 2})
    assert canvas.saved_canvas_row("stn", test, folder=tmp_path) is None            # another recipe
    saved_text = (tmp_path / "stn-seed0.json").read_text()
    with pytest.raises(SystemExit):  # the saved row is of another recipe now: refused, kept
        benchmark.main(["--rows", "stn", "--train-subset", "24", "--test-subset", "16", "--results", str(tmp_path)])
    assert "stn-seed0: epochs: 1 -> 2" in capsys.readouterr().err
    assert (tmp_path / "stn-seed0.json").read_text() == saved_text
    with pytest.raises(SystemExit):  # the same recipe on fewer test images: refused as well
        benchmark.main(["--rows", "cnn", "--train-subset", "24", "--test-subset", "12", "--results", str(tmp_path)])
    assert "cnn-seed0: test_images: 16 -> 12" in capsys.readouterr().err
