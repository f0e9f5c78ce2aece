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
