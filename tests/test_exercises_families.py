"""Tests for the answer checks of notebook 06 (stn_utils.exercises.families)."""

import pytest
import torch

from stn_utils.exercises import families as ex

RIGHT_COUNTS = {"affine": 6, "attention": 3, "projective": 8, "tps": 32}


def test_parameter_counts_right(capsys):
    assert ex.check_parameter_counts(dict(RIGHT_COUNTS)) is True
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("answer", [
    {**RIGHT_COUNTS, "projective": 9},      # h33 counted although it is fixed
    {**RIGHT_COUNTS, "tps": 16},            # one number per control point
    {**RIGHT_COUNTS, "attention": 4},       # separate x and y zoom
    {k: v for k, v in RIGHT_COUNTS.items() if k != "tps"},
    {**RIGHT_COUNTS, "affine": 6.5},
    [6, 3, 8, 32],
])
def test_parameter_counts_wrong(answer, capsys):
    assert ex.check_parameter_counts(answer) is False
    assert "Not quite" in capsys.readouterr().out


@pytest.mark.parametrize("answer", [(0.44, 0.4), [0.4401, 0.3999], torch.tensor([0.44, 0.40])])
def test_homography_point_right(answer, capsys):
    assert ex.check_homography_point(answer) is True
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("answer", [
    (0.55, 0.5),        # forgot to divide by the third coordinate
    (0.5, 0.5),         # the identity
    (0.44,),
    "0.44, 0.4",
    (float("nan"), 0.4),
])
def test_homography_point_wrong(answer, capsys):
    assert ex.check_homography_point(answer) is False
    assert "Not quite" in capsys.readouterr().out


def test_not_answered(capsys):
    assert ex.check_parameter_counts(None) is False
    assert ex.check_homography_point(None) is False
    assert capsys.readouterr().out.count("Not answered yet") == 2


def test_apply_homography_exercise_accepts_a_right_answer_and_names_common_mistakes(capsys):
    import torch

    from stn_utils.exercises import families as ex

    def right(params, points):
        matrix = torch.cat([params, torch.ones_like(params[:, :1])], 1).reshape(-1, 3, 3)
        mapped = torch.cat([points, torch.ones_like(points[..., :1])], -1) @ matrix.mT
        return mapped[..., :2] / mapped[..., 2:]

    def affine_only(params, points):
        return right(params * torch.tensor([1.0] * 6 + [0.0] * 2, dtype=params.dtype), points)

    def stub(params, points):
        raise NotImplementedError

    assert ex.check_apply_homography(right) and "Correct!" in capsys.readouterr().out
    assert not ex.check_apply_homography(affine_only)
    assert "That is the affine part alone" in capsys.readouterr().out
    assert not ex.check_apply_homography(stub) and "Not answered yet" in capsys.readouterr().out

    import stn_utils.transforms
    from stn_utils.transforms import apply_homography

    def calls_the_package(params, points):
        return apply_homography(params, points)

    def calls_it_through_the_module(params, points):
        return (lambda: stn_utils.transforms.apply_homography(params, points))()

    for borrowed in (calls_the_package, calls_it_through_the_module):
        assert not ex.check_apply_homography(borrowed)
        assert "instead of calling the package's apply_homography" in capsys.readouterr().out
