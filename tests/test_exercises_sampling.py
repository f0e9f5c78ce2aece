"""Tests for stn_utils.exercises.sampling: right answers pass in any form, wrong ones fail with a hint."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stn_utils import geometry
from stn_utils.exercises import sampling

NOT_ATTEMPTED = "Not answered yet"


def run(check, answer, capsys):
    result = check(answer)
    return result, capsys.readouterr().out


def sample(point, padding_mode="zeros", align_corners=False, dtype=torch.float64):
    """Value at a normalised point of the exercise image, and d(value)/d(grid) (x, y)."""
    grid = torch.tensor([[[point]]], dtype=dtype, requires_grad=True)
    value = F.grid_sample(sampling.tiny_image().to(dtype), grid, mode="bilinear",
                          padding_mode=padding_mode, align_corners=align_corners).reshape(())
    (d_grid,) = torch.autograd.grad(value, grid)
    return float(value.detach()), d_grid.reshape(2)


# ---- the shared data ---------------------------------------------------------------------------

def test_tiny_image_is_a_fresh_float_batch_of_one():
    image = sampling.tiny_image()
    assert image.shape == (1, 1, 3, 3) and image.dtype == torch.float32
    geometry.check_image(image)
    image.zero_()  # editing the returned tensor must not change the exercise
    assert sampling.tiny_image().abs().sum() > 0


def test_point_lies_between_pixel_centres():
    # x_pixel = ((x + 1) W - 1) / 2 must not be an integer: the gradient is ambiguous on a kink.
    x_pixel, y_pixel = (((c + 1) * 3 - 1) / 2 for c in sampling.POINT)
    assert x_pixel == pytest.approx(1.3) and y_pixel == pytest.approx(0.55)


# ---- exercise 1: the bilinear value --------------------------------------------------------------

def test_value_reference_agrees_with_grid_sample_and_the_hand_sampler():
    value, _ = sample(sampling.POINT)
    assert value == pytest.approx(4.205, abs=1e-9)
    grid = torch.tensor([[[sampling.POINT]]])
    by_hand = geometry.bilinear_sample(sampling.tiny_image(), grid, align_corners=False)
    assert float(by_hand) == pytest.approx(4.205, abs=1e-5)
    assert sampling.check_bilinear_value(value)


@pytest.mark.parametrize("answer", [4.205, 4.2051, np.float32(4.205), torch.tensor(4.205),
                                    torch.tensor([[4.205]]), np.array([4.205])])
def test_value_accepts_right_answers(answer, capsys):
    ok, out = run(sampling.check_bilinear_value, answer, capsys)
    assert ok is True and "Correct!" in out


@pytest.mark.parametrize("answer, phrase", [
    (sample(sampling.POINT, align_corners=True)[0], "align_corners=True"),
    (8.0, "NEAREST"),
    (sample(sampling.POINT[::-1])[0], "swapped"),
    (4.0, "fractional parts"),
    ("four", "one number"),
    ([4.205, 1.0], "one number"),
    (float("nan"), "one number"),
])
def test_value_rejects_wrong_answers_with_a_hint(answer, phrase, capsys):
    ok, out = run(sampling.check_bilinear_value, answer, capsys)
    assert ok is False and "Not quite." in out and phrase in out


# ---- exercise 2: the slope along x -----------------------------------------------------------------

def test_gradient_reference_agrees_with_autograd():
    _, d_grid = sample(sampling.POINT)
    per_pixel = float(d_grid[0]) * 2 / 3  # one pixel is 2 / W normalised units
    assert per_pixel == pytest.approx(-0.65, abs=1e-9)
    assert sampling.check_x_gradient(per_pixel)


def test_gradient_reference_is_a_real_slope():
    # A finite difference of the value along x, one hundredth of a pixel each way.
    step = 0.01 * 2 / 3
    x, y = sampling.POINT
    slope = (sample((x + step, y))[0] - sample((x - step, y))[0]) / 0.02
    assert slope == pytest.approx(-0.65, abs=1e-6)


@pytest.mark.parametrize("answer", [-0.65, -0.6501, torch.tensor(-0.65), np.array([[-0.65]])])
def test_gradient_accepts_right_answers(answer, capsys):
    ok, out = run(sampling.check_x_gradient, answer, capsys)
    assert ok is True and "Correct!" in out


@pytest.mark.parametrize("answer, phrase", [
    (-0.975, "NORMALISED"),
    (0.65, "sign is flipped"),
    (7.1, "along y"),
    (-2.0, "one row only"),
    (1.0, "one row only"),
    (0.0, "(1 - dy)"),
    ("steep", "one number"),
])
def test_gradient_rejects_wrong_answers_with_a_hint(answer, phrase, capsys):
    ok, out = run(sampling.check_x_gradient, answer, capsys)
    assert ok is False and "Not quite." in out and phrase in out


# ---- exercise 3: which padding mode lets a point outside feel a gradient? ----------------------

@pytest.mark.parametrize("padding_mode, x_slope_is_zero", [
    ("zeros", True), ("border", True), ("reflection", False)])
def test_padding_reference_matches_torch(padding_mode, x_slope_is_zero):
    _, d_grid = sample(sampling.OUTSIDE_POINT, padding_mode=padding_mode)
    assert (float(d_grid[0]) == 0.0) is x_slope_is_zero


@pytest.mark.parametrize("answer", ["reflection", "Reflection", " reflect ", "'reflection'"])
def test_padding_accepts_right_answers(answer, capsys):
    ok, out = run(sampling.check_padding_choice, answer, capsys)
    assert ok is True and "Correct!" in out


@pytest.mark.parametrize("answer, phrase", [
    ("zeros", "four neighbours are padding"),
    ("zero", "four neighbours are padding"),
    ("border", "CLAMPS"),
    ("circular", "one of the strings"),
    (2, "one of the strings"),
])
def test_padding_rejects_wrong_answers_with_a_hint(answer, phrase, capsys):
    ok, out = run(sampling.check_padding_choice, answer, capsys)
    assert ok is False and "Not quite." in out and phrase in out


# ---- all checks ----------------------------------------------------------------------------------

@pytest.mark.parametrize("check", [sampling.check_bilinear_value, sampling.check_x_gradient,
                                   sampling.check_padding_choice])
def test_none_means_not_attempted(check, capsys):
    ok, out = run(check, None, capsys)
    assert ok is False and NOT_ATTEMPTED in out and "Not quite" not in out


# ---- exercise 2: the reader writes the sampler ---------------------------------------------------

def learner_sample(image, grid, *, bug=None):
    """A bilinear sampler the way a reader would write it (zeros padding, align_corners=False),
    with one optional, typical bug."""
    batch, channels, height, width = image.shape
    gx, gy = grid[..., 0], grid[..., 1]
    if bug == "x/y swapped":
        gx, gy = gy, gx
    if bug == "align_corners=True formula":
        x, y = (gx + 1) * (width - 1) / 2, (gy + 1) * (height - 1) / 2
    elif bug == "off by half a pixel":
        x, y = (gx + 1) * width / 2, (gy + 1) * height / 2
    else:
        x, y = ((gx + 1) * width - 1) / 2, ((gy + 1) * height - 1) / 2
    if bug == "border padding":
        x, y = x.clamp(0, width - 1), y.clamp(0, height - 1)
    x0 = x.long().to(x.dtype) if bug == "truncates" else torch.floor(x)
    y0 = y.long().to(y.dtype) if bug == "truncates" else torch.floor(y)
    dx, dy = x - x0, y - y0
    if bug == "detached weights":
        dx, dy = dx.detach(), dy.detach()
    if bug == "weights swapped":
        dx, dy = 1 - dx, 1 - dy
    if bug == "nearest":
        dx, dy = (dx > 0.5).to(dx.dtype), (dy > 0.5).to(dy.dtype)
    flat = image.reshape(batch, channels, -1)
    out = torch.zeros(batch, channels, *grid.shape[1:3], dtype=image.dtype)
    for cx, cy, weight in [(x0, y0, (1 - dx) * (1 - dy)), (x0 + 1, y0, dx * (1 - dy)),
                           (x0, y0 + 1, (1 - dx) * dy), (x0 + 1, y0 + 1, dx * dy)]:
        inside = ((cx >= 0) & (cx < width) & (cy >= 0) & (cy < height)).to(image.dtype)
        if bug in ("no mask", "border padding"):
            inside = torch.ones_like(inside)
        index = (cy.clamp(0, height - 1) * width + cx.clamp(0, width - 1)).long()
        values = torch.gather(flat, 2, index.reshape(batch, 1, -1).expand(-1, channels, -1))
        out = out + values.reshape(out.shape) * (weight * inside).unsqueeze(1)
    return out


def test_bilinear_sample_accepts_right_functions(capsys):
    for answer in (learner_sample,
                   lambda image, grid: geometry.bilinear_sample(image, grid, align_corners=False),
                   lambda image, grid: F.grid_sample(image, grid, align_corners=False)):
        ok, out = run(sampling.check_bilinear_sample, answer, capsys)
        assert ok is True and out.startswith("Correct!"), out
        assert "gradients with respect to image and grid" in out


def test_bilinear_sample_cases_reach_outside_the_image():
    places = {"inside": 0, "edge": 0, "outside": 0}
    cases = sampling._sample_cases()
    assert any(case.inputs["image"].shape[2] != case.inputs["image"].shape[3] for case in cases)
    for case in cases:
        image, grid = case.inputs["image"], case.inputs["grid"]
        height, width = image.shape[2:]
        assert image.shape[0] == grid.shape[0]
        x = ((grid[..., 0] + 1) * width - 1) / 2
        y = ((grid[..., 1] + 1) * height - 1) / 2
        inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
        outside = (x <= -1) | (x >= width) | (y <= -1) | (y >= height)
        places["inside"] += int(inside.sum())
        places["outside"] += int(outside.sum())
        places["edge"] += int((~inside & ~outside).sum())
    assert min(places.values()) >= 10, places


@pytest.mark.parametrize("bug, phrases", [
    ("align_corners=True formula", ["Values:", "align_corners=True formula"]),
    ("off by half a pixel", ["Values:", "half a pixel off"]),
    ("x/y swapped", ["Values:", "x and y are swapped"]),
    ("no mask", ["Values:", "reads 0", "mask"]),
    ("border padding", ["Values:", "border padding"]),
    ("truncates", ["Values:", "TOWARDS ZERO", "torch.floor"]),
    ("weights swapped", ["Values:", "weights are swapped"]),
    ("nearest", ["Values:", "nearest-neighbour"]),
    ("detached weights", ["Gradient:", "does not depend on grid"]),
])
def test_bilinear_sample_rejects_typical_bugs_with_a_hint_naming_the_difference(bug, phrases, capsys):
    ok, out = run(sampling.check_bilinear_sample, lambda image, grid: learner_sample(image, grid, bug=bug),
                  capsys)
    assert ok is False and out.startswith("Not quite.")
    for phrase in phrases:
        assert phrase in out, (phrase, out)


def test_bilinear_sample_says_where_the_worst_sample_point_lies(capsys):
    def wrong_outside(image, grid):
        out = learner_sample(image, grid)
        far = (grid.abs() > 1.3).any(-1)  # (B, H, W): points well outside the image
        return out + far.unsqueeze(1).to(out.dtype)

    ok, out = run(sampling.check_bilinear_sample, wrong_outside, capsys)
    assert ok is False and "is outside the image: all four neighbours are padding" in out


def test_bilinear_sample_gradient_hint_names_the_input(capsys):
    def image_gradient_doubled(image, grid):
        out = learner_sample(image, grid)
        return out + (learner_sample(image, grid.detach()) - learner_sample(image.detach(), grid.detach()))

    ok, out = run(sampling.check_bilinear_sample, image_gradient_doubled, capsys)
    assert ok is False and "gradient with respect to image differs" in out and "pixel (row" in out


def test_bilinear_sample_stub_is_not_answered_yet(capsys):
    def my_bilinear_sample(image, grid):
        # your code here
        raise NotImplementedError

    for answer in (my_bilinear_sample, None):
        ok, out = run(sampling.check_bilinear_sample, answer, capsys)
        assert ok is False and out.startswith(NOT_ATTEMPTED) and "Not quite" not in out
