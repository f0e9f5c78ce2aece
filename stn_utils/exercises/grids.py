"""Checks for the exercises of notebook 03, "Affine grids".

Exercise 1 asks for a function, the grid generator itself: :func:`check_affine_grid` runs
the reader's ``my_affine_grid(theta, size, align_corners)`` next to ``F.affine_grid`` (see
:func:`stn_utils.exercises.check_function`).

Exercises 2 to 4 ask for a theta or a point. Every theta answer may be a tensor, a NumPy
array or nested lists, of shape ``(1, 2, 3)`` (what ``warp`` and ``F.affine_grid`` take) or
``(2, 3)``. Theta follows the course's convention: it maps an OUTPUT location to the INPUT
location it reads, in normalised coordinates (x right, y down, ``(-1, -1)`` is the top-left
corner).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import Case, Mistake, check_function, report

__all__ = ["check_affine_grid", "check_zoom_top_left", "check_mirror_left_right", "corner_theta",
           "check_corner_sample"]

# Exact answers; a correct answer is unique, so a small tolerance is all the slack needed.
_ZOOM_TOP_LEFT = ((0.5, 0.0, -0.5), (0.0, 0.5, -0.5))
_MIRROR_LEFT_RIGHT = ((-1.0, 0.0, 0.0), (0.0, 1.0, 0.0))
# The theta of exercise 4: a quarter turn, a zoom and a shift, so no entry is a freebie.
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


# ---- exercise 1: the grid generator, written by the reader ---------------------------------------

def _reference_grid(theta, size, align_corners):
    return F.affine_grid(theta, [theta.shape[0], 1, *size], align_corners=align_corners)


def _grid_from_centres(theta, xs, ys):
    """theta (B, 2, 3) applied to every (x_j, y_i, 1); xs (W,), ys (H,) -> (B, H, W, 2)."""
    rows, cols = torch.meshgrid(ys, xs, indexing="ij")
    base = torch.stack([cols, rows, torch.ones_like(cols)], dim=-1)  # (H, W, 3)
    return torch.einsum("hwk,bck->bhwc", base, theta)


def _left_edges(theta, size, align_corners):
    # -1 + 2j / n is the LEFT edge of pixel j, half a pixel before its centre
    height, width = size
    edges = [-1 + 2 * torch.arange(n, dtype=theta.dtype) / n for n in (width, height)]
    return _grid_from_centres(theta, *edges)


def _without_translation(theta, size, align_corners):
    return _reference_grid(torch.cat([theta[:, :, :2], torch.zeros_like(theta[:, :, 2:])], dim=2),
                           size, align_corners)


def _linear_part_transposed(theta, size, align_corners):
    return _reference_grid(torch.cat([theta[:, :, :2].transpose(1, 2), theta[:, :, 2:]], dim=2),
                           size, align_corners)


def _rows_for_columns(theta, size, align_corners):
    # a (W, H) grid reshaped to (H, W): every entry is there, in the wrong place
    return _reference_grid(theta, size, align_corners).transpose(1, 2).reshape(theta.shape[0], *size, 2)


_GRID_MISTAKES = (
    Mistake(lambda theta, size, align_corners: _reference_grid(theta, size, not align_corners),
            "Your grid is the one for the OTHER align_corners value. True puts -1 and +1 on the corner "
            "pixels' CENTRES, x_j = -1 + 2 j / (W - 1); False puts them on the outer EDGES, "
            "x_j = (2 j + 1) / W - 1."),
    Mistake(lambda theta, size, align_corners: _reference_grid(theta[:, :, [1, 0, 2]], size, align_corners),
            "x and y are swapped in the points fed to theta: each row of the base must be [x_j, y_i, 1], "
            "x (the position across the columns) first."),
    Mistake(lambda theta, size, align_corners: _reference_grid(theta, size, align_corners).flip(-1),
            "x and y are swapped in the last axis: grid[..., 0] must hold x (across the W columns) and "
            "grid[..., 1] y (down the H rows)."),
    Mistake(lambda theta, size, align_corners: _reference_grid(theta, size, align_corners).transpose(1, 2),
            "Rows and columns are swapped: the grid is indexed [b, i, j] with the row i (of H) first. "
            "torch.meshgrid(y, x, indexing=\"ij\") gives two (H, W) tensors."),
    Mistake(_rows_for_columns,
            "The values are right but sit in the wrong places, as if a (W, H) grid had been reshaped to "
            "(H, W): build the meshgrid as torch.meshgrid(y, x, indexing=\"ij\"), rows first."),
    Mistake(_left_edges,
            "Your pixel positions are off by half a pixel: -1 + 2 j / W is the LEFT EDGE of pixel j. Its "
            "centre is x_j = (2 j + 1) / W - 1 (align_corners=False) or -1 + 2 j / (W - 1) (True)."),
    Mistake(_without_translation,
            "The translation is missing: append a 1 to every (x, y), so that theta's last column is "
            "added: rows [x, y, 1] times theta transposed."),
    Mistake(_linear_part_transposed,
            "Theta's 2x2 part is used transposed: x_s = theta[0, 0] x + theta[0, 1] y + theta[0, 2]. "
            "With the points as ROWS [x, y, 1], multiply by theta.transpose(1, 2), shape (B, 3, 2)."),
)


def _describe_grid_entry(case, entry, index) -> str:
    if entry == "output":
        b, i, j, k = index
        return f"batch item {b}, output row i={i}, column j={j}, its {'xy'[k]}"
    return f"theta[{', '.join(map(str, index))}]"


def _grid_cases():
    generator = torch.Generator().manual_seed(0)
    cases = []
    for align_corners in (False, True):
        for batch, size in ((2, (3, 5)), (3, (6, 4))):  # non-square, so rows and columns differ
            theta = torch.eye(2, 3).repeat(batch, 1, 1) + 0.5 * torch.randn(batch, 2, 3, generator=generator)
            cases.append(Case({"theta": theta, "size": size, "align_corners": align_corners}))
    return cases


def check_affine_grid(answer) -> bool:
    """Exercise 1: the reader's ``my_affine_grid(theta, size, align_corners)``.

    Args:
        answer: a function taking theta ``(B, 2, 3)``, ``size = (H, W)`` and ``align_corners``
            (a bool) and returning the grid ``(B, H, W, 2)`` whose entry ``[b, i, j]`` is
            ``theta[b] @ (x_j, y_i, 1)``.

    It is compared with ``F.affine_grid`` (equal to :func:`stn_utils.geometry.affine_grid`)
    on four seeded random thetas, two non-square sizes and both ``align_corners`` values:
    shapes, values and the gradient with respect to theta.
    """
    return check_function(
        answer, _reference_grid, _grid_cases(), grad=("theta",), mistakes=_GRID_MISTAKES,
        describe=_describe_grid_entry,
        hint=("Check one entry by hand: grid[b, i, j] must be theta[b] @ (x_j, y_i, 1), with x_j and y_i "
              "the pixel centres of the table in section 1."))


# ---- exercises 2 to 4: thetas and points ---------------------------------------------------------

def check_zoom_top_left(answer) -> bool:
    """Exercise 2: the theta whose output shows the top-left quadrant of the input, 2x larger.

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
    """Exercise 3: the theta that mirrors the image left-right (output column j reads W-1-j).

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
    """The theta of exercise 4, shape ``(1, 2, 3)``: ``[[0, -0.5, 0.2], [0.5, 0, 0.1]]``."""
    return torch.tensor([_CORNER_THETA], dtype=torch.float32)


def check_corner_sample(answer) -> bool:
    """Exercise 4: where does the output's top-left corner ``(-1, -1)`` read in the input under
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
