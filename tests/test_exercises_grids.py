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


# ---- exercise 1: the reader writes the grid generator ------------------------------------------

def learner_grid(theta, size, align_corners, *, bug=None):
    """A grid generator the way a reader would write it, with one optional, typical bug."""
    height, width = size
    if bug == "ignores align_corners":
        align_corners = False
    if bug == "align_corners swapped":
        align_corners = not align_corners

    def centres(n):
        j = torch.arange(n, dtype=theta.dtype)
        if bug == "off by half a pixel":
            return -1 + 2 * j / n  # the left edges
        return -1 + 2 * j / (n - 1) if align_corners else (2 * j + 1) / n - 1

    xs, ys = centres(width), centres(height)
    if bug == "meshgrid x first":
        cols, rows = torch.meshgrid(xs, ys, indexing="ij")  # (W, H) each
    else:
        rows, cols = torch.meshgrid(ys, xs, indexing="ij")  # (H, W) each
    base = torch.stack([cols, rows, torch.ones_like(cols)], dim=-1)
    if bug == "points (y, x, 1)":
        base = torch.stack([rows, cols, torch.ones_like(cols)], dim=-1)
    if bug == "no translation":
        base = base * base.new_tensor([1.0, 1.0, 0.0])
    matrix = theta.transpose(1, 2)
    if bug == "theta not transposed":
        matrix = torch.cat([theta[:, :, :2], theta[:, :, 2:].transpose(1, 2)], dim=1)  # (B, 3, 2)
    if bug == "detached":
        matrix = matrix.detach()
    grid = (base.reshape(1, -1, 3) @ matrix).reshape(theta.shape[0], *base.shape[:2], 2)
    if bug == "output (y, x)":
        grid = grid.flip(-1)
    return grid


def test_affine_grid_accepts_right_functions(capsys):
    for answer in (learner_grid,
                   lambda theta, size, align_corners: geometry.affine_grid(theta, size, align_corners=align_corners),
                   lambda theta, size, align_corners: F.affine_grid(theta, [theta.shape[0], 3, *size],
                                                                    align_corners=align_corners)):
        ok, out = run(grids.check_affine_grid, answer, capsys)
        assert ok is True and out.startswith("Correct!") and "gradients with respect to theta" in out, out


def test_affine_grid_cases_cover_both_flags_and_non_square_sizes():
    cases = grids._grid_cases()
    assert {case.inputs["align_corners"] for case in cases} == {False, True}
    assert all(case.inputs["size"][0] != case.inputs["size"][1] for case in cases)
    assert len({case.inputs["theta"].shape[0] for case in cases}) > 1  # more than one batch size
    thetas = torch.cat([case.inputs["theta"] for case in cases])
    assert ((thetas - torch.eye(2, 3)).abs() > 1e-2).float().mean() > 0.9  # random, far from the identity


@pytest.mark.parametrize("bug, phrases", [
    ("align_corners swapped", ["Values:", "OTHER align_corners value"]),
    ("ignores align_corners", ["align_corners=True", "OTHER align_corners value"]),
    ("points (y, x, 1)", ["Values:", "x and y are swapped in the points"]),
    ("output (y, x)", ["Values:", "x and y are swapped in the last axis"]),
    ("off by half a pixel", ["Values:", "half a pixel", "LEFT EDGE"]),
    ("meshgrid x first", ["Shape:", "(2, 5, 3, 2)", "(2, 3, 5, 2)", "Rows and columns are swapped"]),
    ("no translation", ["Values:", "translation is missing"]),
    ("theta not transposed", ["Values:", "used transposed"]),
    ("detached", ["Gradient:", "does not depend on theta"]),
])
def test_affine_grid_rejects_typical_bugs_with_a_hint_naming_the_difference(bug, phrases, capsys):
    def answer(theta, size, align_corners):
        return learner_grid(theta, size, align_corners, bug=bug)

    ok, out = run(grids.check_affine_grid, answer, capsys)
    assert ok is False and out.startswith("Not quite.")
    for phrase in phrases:
        assert phrase in out, (phrase, out)


def test_affine_grid_names_the_worst_entry(capsys):
    def one_wrong_entry(theta, size, align_corners):
        grid = learner_grid(theta, size, align_corners).clone()
        grid[1, 2, 3, 1] += 0.5
        return grid

    ok, out = run(grids.check_affine_grid, one_wrong_entry, capsys)
    assert ok is False and "1 of 60 entries" in out
    assert "batch item 1, output row i=2, column j=3, its y" in out and "by hand" in out


def test_affine_grid_stub_is_not_answered_yet(capsys):
    def my_affine_grid(theta, size, align_corners):
        # your code here
        raise NotImplementedError

    for answer in (my_affine_grid, None):
        ok, out = run(grids.check_affine_grid, answer, capsys)
        assert ok is False and out.startswith(NOT_ATTEMPTED) and "Not quite" not in out
