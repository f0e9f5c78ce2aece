"""Checks for the exercises of notebook 03, "Affine grids".

Every theta answer may be a tensor, a NumPy array or nested lists, of shape
``(1, 2, 3)`` (what ``warp`` and ``F.affine_grid`` take) or ``(2, 3)``. Theta follows the
course's convention: it maps an OUTPUT location to the INPUT location it reads, in
normalised coordinates (x right, y down, ``(-1, -1)`` is the top-left corner).
"""

from __future__ import annotations

import torch

from . import report

__all__ = ["check_zoom_top_left", "check_mirror_left_right", "corner_theta", "check_corner_sample"]

# Exact answers; a correct answer is unique, so a small tolerance is all the slack needed.
_ZOOM_TOP_LEFT = ((0.5, 0.0, -0.5), (0.0, 0.5, -0.5))
_MIRROR_LEFT_RIGHT = ((-1.0, 0.0, 0.0), (0.0, 1.0, 0.0))
# The theta of exercise 3: a quarter turn, a zoom and a shift, so no entry is a freebie.
_CORNER_THETA = ((0.0, -0.5, 0.2), (0.5, 0.0, 0.1))
_ATOL = 1e-3


def _as_theta(answer):
    """``answer`` as a float64 ``(2, 3)`` tensor, or a string saying what is wrong with it."""
    try:
        theta = torch.as_tensor(answer, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return (f"theta must be a tensor (or nested lists) of shape (1, 2, 3); "
                f"got {type(answer).__name__}.")
    if tuple(theta.shape) == (1, 2, 3):
        theta = theta[0]
    if tuple(theta.shape) != (2, 3):
        return f"theta must have shape (1, 2, 3); got {tuple(theta.shape)}."
    if not torch.isfinite(theta).all():
        return "theta contains NaN or infinite values."
    return theta


def _close(theta, rows) -> bool:
    return torch.allclose(theta, torch.tensor(rows, dtype=torch.float64), atol=_ATOL, rtol=0)


def check_zoom_top_left(answer) -> bool:
    """Exercise 1: the theta whose output shows the top-left quadrant of the input, 2x larger.

    The reference is ``[[0.5, 0, -0.5], [0, 0.5, -0.5]]``: the output's corners
    ``(x, y) = (+-1, +-1)`` must read the input's ``x, y in [-1, 0]``.
    """
    if answer is None:
        return report(False, answer=None)
    theta = _as_theta(answer)
    if isinstance(theta, str):
        return report(False, theta, answer=answer)
    if _close(theta, _ZOOM_TOP_LEFT):
        return report(True, answer=answer)
    linear, shift = theta[:, :2], theta[:, 2]
    if torch.allclose(linear.abs(), 2 * torch.eye(2, dtype=torch.float64), atol=_ATOL):
        hint = ("a scale of 2 makes the output read a region TWICE as big, which zooms out. "
                "Theta maps output to input: to magnify 2x, read a region half as big (scale 0.5).")
    elif not torch.allclose(linear, 0.5 * torch.eye(2, dtype=torch.float64), atol=_ATOL):
        hint = ("the 2x2 part should shrink the sampled region to half its width and height, "
                "without rotating or flipping it: [[0.5, 0], [0, 0.5]].")
    elif torch.allclose(shift, torch.tensor([0.5, 0.5], dtype=torch.float64), atol=_ATOL):
        hint = ("this zooms into the BOTTOM-RIGHT quadrant: x grows to the right and y grows "
                "DOWNWARDS, so the top-left quadrant lies at negative x and negative y.")
    elif torch.allclose(shift.abs(), torch.ones(2, dtype=torch.float64), atol=_ATOL):
        hint = ("the last column is where the output's CENTRE reads from. The top-left quadrant "
                "spans [-1, 0] in x and y, so its centre is (-0.5, -0.5), not a corner of the image.")
    else:
        hint = ("the scale is right; now place the window. The last column is where the output's "
                "centre (0, 0) reads from: the centre of the top-left quadrant.")
    return report(False, hint, answer=answer)


def check_mirror_left_right(answer) -> bool:
    """Exercise 2: the theta that mirrors the image left-right (output column j reads W-1-j).

    The reference is ``[[-1, 0, 0], [0, 1, 0]]``.
    """
    if answer is None:
        return report(False, answer=None)
    theta = _as_theta(answer)
    if isinstance(theta, str):
        return report(False, theta, answer=answer)
    if _close(theta, _MIRROR_LEFT_RIGHT):
        return report(True, answer=answer)
    if _close(theta, ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0))):
        hint = "this flips the image upside down: negate x (the first row), not y."
    elif _close(theta, ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0))):
        hint = "negating both x and y is a 180-degree rotation; a left-right mirror negates only x."
    elif abs(float(theta[0, 2])) > _ATOL or abs(float(theta[1, 2])) > _ATOL:
        hint = ("a mirror about the vertical centre line needs no shift: x = 0 is the centre "
                "in normalised coordinates, so the last column stays 0.")
    else:
        hint = ("output x should read input -x and output y should read input y: "
                "x_in = -1 * x_out, y_in = 1 * y_out.")
    return report(False, hint, answer=answer)


def corner_theta() -> torch.Tensor:
    """The theta of exercise 3, shape ``(1, 2, 3)``: ``[[0, -0.5, 0.2], [0.5, 0, 0.1]]``."""
    return torch.tensor([_CORNER_THETA], dtype=torch.float32)


def check_corner_sample(answer) -> bool:
    """Exercise 3: where does the output's top-left corner ``(-1, -1)`` read in the input under
    :func:`corner_theta`? ``answer`` is ``(x, y)`` in normalised input coordinates.

    The reference is ``theta @ (-1, -1, 1) = (0.7, -0.4)``.
    """
    if answer is None:
        return report(False, answer=None)
    try:
        point = torch.as_tensor(answer, dtype=torch.float64).flatten()
    except (TypeError, ValueError, RuntimeError):
        point = None
    if point is None or point.numel() != 2 or not torch.isfinite(point).all():
        return report(False, "the answer is a point (x, y): two finite numbers, e.g. (0.3, -0.2).",
                      answer=answer)
    theta = torch.tensor(_CORNER_THETA, dtype=torch.float64)
    corner = torch.tensor([-1.0, -1.0, 1.0], dtype=torch.float64)
    expected = theta @ corner
    if torch.allclose(point, expected, atol=_ATOL, rtol=0):
        return report(True, answer=answer)
    inverse = torch.linalg.inv(torch.cat([theta, corner.new_tensor([[0.0, 0.0, 1.0]])]))[:2]
    if torch.allclose(point, inverse @ corner, atol=_ATOL, rtol=0):
        hint = ("you applied the inverse map. Theta sends an OUTPUT point to the INPUT point it "
                "reads, so apply theta itself: theta @ (x, y, 1).")
    elif torch.allclose(point, expected.flip(0), atol=_ATOL, rtol=0):
        hint = "x and y are swapped: the first row of theta gives x, the second gives y."
    elif torch.allclose(point, theta[:, 2], atol=_ATOL, rtol=0):
        hint = ("(0.2, 0.1) is where the output's CENTRE (0, 0) reads. Multiply theta by the "
                "corner in homogeneous form, (-1, -1, 1).")
    elif torch.allclose(point, theta[:, :2] @ corner[:2], atol=_ATOL, rtol=0):
        hint = "you left out the translation: the third column of theta is added too."
    else:
        hint = ("write the corner as (x, y, 1) = (-1, -1, 1) and multiply: "
                "x_in = theta[0] . (-1, -1, 1), y_in = theta[1] . (-1, -1, 1).")
    return report(False, hint, answer=answer)
