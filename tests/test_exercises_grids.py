"""Tests for stn_utils.exercises.grids: right answers pass in any form, wrong ones fail with a hint."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stn_utils import geometry
from stn_utils.exercises import grids

NOT_ATTEMPTED = "Not answered yet"


def run(check, answer, capsys):
    result = check(answer)
    return result, capsys.readouterr().out


# ---- exercise 1: zoom 2x into the top-left quadrant -------------------------------------------

ZOOM = [[[0.5, 0.0, -0.5], [0.0, 0.5, -0.5]]]


@pytest.mark.parametrize("answer", [
    torch.tensor(ZOOM),
    torch.tensor(ZOOM[0]),  # (2, 3) is accepted too
    torch.tensor(ZOOM, dtype=torch.float64),
    np.array(ZOOM),
    ZOOM,
    geometry.make_theta(scale_x=0.5, scale_y=0.5, translate_x=-0.5, translate_y=-0.5),
    # as a composition: shift to the quadrant's centre, then magnify
    geometry.compose_theta(geometry.make_theta(translate_x=-0.5, translate_y=-0.5),
                           geometry.make_theta(scale_x=0.5, scale_y=0.5)),
    torch.tensor(ZOOM) + 1e-4,
])
def test_zoom_accepts_right_answers(answer, capsys):
    ok, out = run(grids.check_zoom_top_left, answer, capsys)
    assert ok is True and "Correct!" in out


def test_zoom_reference_really_shows_the_top_left_quadrant():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 16, 16)
    out = geometry.warp(image, torch.tensor(ZOOM), mode="nearest", align_corners=False)
    expected = image[:, :, :8, :8].repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("answer, phrase", [
    (geometry.make_theta(scale_x=2.0, scale_y=2.0, translate_x=-0.5, translate_y=-0.5), "zooms out"),
    (geometry.make_theta(scale_x=0.5, scale_y=0.5, translate_x=0.5, translate_y=0.5), "BOTTOM-RIGHT"),
    (geometry.make_theta(scale_x=0.5, scale_y=0.5, translate_x=-1.0, translate_y=-1.0), "(-0.5, -0.5)"),
    (geometry.make_theta(scale_x=0.5, scale_y=0.5, translate_x=-0.5, translate_y=0.5), "place the window"),
    (geometry.make_theta(rotation=90.0, scale_x=0.5, scale_y=0.5, translate_x=-0.5, translate_y=-0.5),
     "2x2 part"),
    (geometry.identity_theta(), "2x2 part"),
])
def test_zoom_rejects_wrong_answers_with_a_hint(answer, phrase, capsys):
    ok, out = run(grids.check_zoom_top_left, answer, capsys)
    assert ok is False and "Not quite." in out and phrase in out


@pytest.mark.parametrize("answer, phrase", [
    (torch.zeros(1, 3, 3), "shape (1, 2, 3)"),
    (torch.zeros(6), "shape (1, 2, 3)"),
    ("theta", "got str"),
    (torch.full((1, 2, 3), float("nan")), "NaN"),
])
def test_malformed_thetas_fail_without_raising(answer, phrase, capsys):
    for check in (grids.check_zoom_top_left, grids.check_mirror_left_right):
        ok, out = run(check, answer, capsys)
        assert ok is False and phrase in out


# ---- exercise 2: mirror left-right -------------------------------------------------------------

MIRROR = [[[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]


@pytest.mark.parametrize("answer", [
    torch.tensor(MIRROR), torch.tensor(MIRROR[0]), np.array(MIRROR), MIRROR,
    geometry.make_theta(scale_x=-1.0),
    geometry.make_theta(rotation=180.0, scale_y=-1.0),  # the same matrix, reached another way
])
def test_mirror_accepts_right_answers(answer, capsys):
    ok, out = run(grids.check_mirror_left_right, answer, capsys)
    assert ok is True and "Correct!" in out


def test_mirror_reference_really_mirrors():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 8, 10)
    for align_corners in (True, False):
        out = geometry.warp(image, torch.tensor(MIRROR), align_corners=align_corners)
        torch.testing.assert_close(out, image.flip(-1), atol=1e-5, rtol=0)


@pytest.mark.parametrize("answer, phrase", [
    ([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0]], "upside down"),
    ([[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]], "180-degree"),
    ([[-1.0, 0.0, 1.0], [0.0, 1.0, 0.0]], "no shift"),
    ([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], "x_in = -1 * x_out"),
])
def test_mirror_rejects_wrong_answers_with_a_hint(answer, phrase, capsys):
    ok, out = run(grids.check_mirror_left_right, answer, capsys)
    assert ok is False and "Not quite." in out and phrase in out


# ---- exercise 3: where does the output's top-left corner read? --------------------------------

def test_corner_theta_is_a_fresh_batch_of_one():
    theta = grids.corner_theta()
    assert theta.shape == (1, 2, 3) and theta.dtype == torch.float32
    geometry.check_theta(theta)
    theta.zero_()  # editing the returned tensor must not change the exercise
    assert grids.corner_theta().abs().sum() > 0


def test_corner_reference_matches_torch_affine_grid():
    # With align_corners=True the output's top-left pixel centre sits exactly at (-1, -1).
    grid = F.affine_grid(grids.corner_theta(), [1, 1, 5, 5], align_corners=True)
    assert grids.check_corner_sample(grid[0, 0, 0].tolist())


@pytest.mark.parametrize("answer", [
    (0.7, -0.4), [0.7, -0.4], torch.tensor([0.7, -0.4]), np.array([[0.7], [-0.4]]),
    (grids.corner_theta()[0] @ torch.tensor([-1.0, -1.0, 1.0])),
])
def test_corner_accepts_right_answers(answer, capsys):
    ok, out = run(grids.check_corner_sample, answer, capsys)
    assert ok is True and "Correct!" in out


@pytest.mark.parametrize("answer, phrase", [
    ((-2.2, 2.4), "inverse map"),
    ((-0.4, 0.7), "swapped"),
    ((0.2, 0.1), "CENTRE"),
    ((0.5, -0.5), "translation"),
    ((0.0, 0.0), "(-1, -1, 1)"),
    ((1.0, 2.0, 3.0), "two finite numbers"),
    ("top left", "two finite numbers"),
    ((float("inf"), 0.0), "two finite numbers"),
])
def test_corner_rejects_wrong_answers_with_a_hint(answer, phrase, capsys):
    ok, out = run(grids.check_corner_sample, answer, capsys)
    assert ok is False and "Not quite." in out and phrase in out


# ---- all checks ----------------------------------------------------------------------------------

@pytest.mark.parametrize("check", [grids.check_zoom_top_left, grids.check_mirror_left_right,
                                   grids.check_corner_sample])
def test_none_means_not_attempted(check, capsys):
    ok, out = run(check, None, capsys)
    assert ok is False and NOT_ATTEMPTED in out and "Not quite" not in out
