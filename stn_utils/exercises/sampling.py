"""Checks for the exercises of notebook 04, "Differentiable sampling".

Exercises 1 and 2 work on one tiny image and one sampling point, both given here so the
notebook and its solutions share them: :func:`tiny_image` (shape ``(1, 1, 3, 3)``) and
:data:`POINT`, a normalised ``(x, y)``. Sampling uses ``align_corners=False`` (pixel ``j``
has its centre at ``x = (2 j + 1) / W - 1``) and zeros padding. Exercise 3 asks which
padding mode lets a sample point outside the image feel a gradient along ``x``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import report

__all__ = ["POINT", "OUTSIDE_POINT", "tiny_image", "check_bilinear_value", "check_x_gradient",
           "check_padding_choice"]

# Rows are y (top to bottom), columns are x (left to right). Not a linear ramp, so the four
# neighbours and their weights really matter.
_TINY = ((2.0, 0.0, 1.0),
         (4.0, 8.0, 6.0),
         (0.0, 3.0, 5.0))
# Normalised (x, y): pixel units (1.3, 0.55) with align_corners=False, so between columns 1-2
# and rows 0-1, and on none of the kinks.
POINT = (0.2, -0.3)
# Normalised (x, y) for exercise 3: a quarter of the image width to the right of the image.
OUTSIDE_POINT = (1.5, 0.1)
_ATOL = 1e-3
_PADDING_MODES = ("zeros", "border", "reflection")


def tiny_image() -> torch.Tensor:
    """The 3x3 image of exercises 1 and 2, shape ``(1, 1, 3, 3)``, float32; a fresh tensor."""
    return torch.tensor([[_TINY]], dtype=torch.float32)


def _sample(point, *, align_corners: bool, requires_grad: bool = False):
    """Value at normalised ``point`` and the grid tensor (float64, zeros padding)."""
    image = torch.tensor([[_TINY]], dtype=torch.float64)
    grid = torch.tensor([[[point]]], dtype=torch.float64, requires_grad=requires_grad)
    value = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=align_corners)
    return value.reshape(()), grid


def _as_number(answer):
    """``answer`` as a python float, or ``None`` if it is not one finite number."""
    try:
        value = torch.as_tensor(answer, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return None
    if value.numel() != 1 or not torch.isfinite(value).all():
        return None
    return float(value.reshape(()))


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, abs_tol=_ATOL, rel_tol=0)


def check_bilinear_value(answer) -> bool:
    """Exercise 1: the bilinear value of :func:`tiny_image` at :data:`POINT` (align_corners=False).

    The reference is 4.205: pixel coordinates (1.3, 0.55), neighbours 0, 1, 8, 6 with
    weights 0.315, 0.135, 0.385, 0.165.
    """
    if answer is None:
        return report(False, answer=None)
    value = _as_number(answer)
    if value is None:
        return report(False, "the answer is one number: the interpolated value, e.g. 3.5.", answer=answer)
    expected = float(_sample(POINT, align_corners=False)[0])
    if _close(value, expected):
        return report(True, answer=answer)
    nearest = _TINY[round(((POINT[1] + 1) * 3 - 1) / 2)][round(((POINT[0] + 1) * 3 - 1) / 2)]
    if _close(value, float(_sample(POINT, align_corners=True)[0])):
        hint = ("that is the value with align_corners=True. Here -1 and +1 are the outer EDGES of "
                "the image, so x_pixel = ((x + 1) * W - 1) / 2 (not (x + 1) * (W - 1) / 2).")
    elif _close(value, float(nearest)):
        hint = ("that is the NEAREST pixel's value. Bilinear sampling blends the four pixels "
                "around the point, each weighted by how close the point is to it.")
    elif _close(value, float(_sample(POINT[::-1], align_corners=False)[0])):
        hint = "x and y are swapped: x picks the column (second index), y the row (first index)."
    else:
        hint = ("convert to pixel units first, x_pixel = ((x + 1) * W - 1) / 2, the same for y; "
                "then blend the four neighbours with weights (1 - dx)(1 - dy), dx(1 - dy), "
                "(1 - dx) dy and dx dy, where dx, dy are the fractional parts.")
    return report(False, hint, answer=answer)


def check_x_gradient(answer) -> bool:
    """Exercise 2: d(value)/d(x_pixel) at :data:`POINT`, the slope per pixel along x.

    The reference is -0.65: ``(1 - dy) (I[0, 2] - I[0, 1]) + dy (I[1, 2] - I[1, 1])``
    with ``dy = 0.55``. Per NORMALISED unit it would be -0.975 (times W / 2 = 1.5), which
    gets a hint.
    """
    if answer is None:
        return report(False, answer=None)
    value = _as_number(answer)
    if value is None:
        return report(False, "the answer is one number: the slope of the value per pixel along x.",
                      answer=answer)
    sampled, grid = _sample(POINT, align_corners=False, requires_grad=True)
    (d_grid,) = torch.autograd.grad(sampled, grid)
    per_normalised_x, per_normalised_y = float(d_grid[..., 0]), float(d_grid[..., 1])
    per_pixel = per_normalised_x * 2 / 3  # x_pixel = ((x + 1) * W - 1) / 2, so dx/dx_pixel = 2 / W
    if _close(value, per_pixel):
        return report(True, answer=answer)
    if _close(value, per_normalised_x):
        hint = ("that is the slope per NORMALISED unit. One pixel is 2 / W = 2/3 of a normalised "
                "unit, so divide by W / 2 = 1.5.")
    elif _close(value, -per_pixel):
        hint = "the sign is flipped: the slope is (right neighbour - left neighbour), not the reverse."
    elif _close(value, per_normalised_y * 2 / 3) or _close(value, per_normalised_y):
        hint = "that is the slope along y. Move along x: compare each right neighbour with its left one."
    elif _close(value, 6.0 - 8.0) or _close(value, 1.0 - 0.0):
        hint = ("that is the slope of one row only. The point sits between two rows, so blend both "
                "rows' slopes with the vertical weights (1 - dy) and dy.")
    else:
        hint = ("the value is linear in x between the neighbours: its slope is "
                "(1 - dy) * (top-right - top-left) + dy * (bottom-right - bottom-left), dy the "
                "fractional part of y_pixel.")
    return report(False, hint, answer=answer)


def check_padding_choice(answer) -> bool:
    """Exercise 3: which padding mode gives a non-zero d(value)/dx at :data:`OUTSIDE_POINT`?

    ``answer`` is one of ``"zeros"``, ``"border"``, ``"reflection"`` (case and surrounding
    spaces are ignored; ``"reflect"`` is accepted). The reference is ``"reflection"``: zeros
    padding reads only zeros there, border padding clamps x onto the edge (a constant), and
    reflection mirrors x back inside, where the image still varies.
    """
    if answer is None:
        return report(False, answer=None)
    if not isinstance(answer, str):
        return report(False, f"answer with one of the strings {_PADDING_MODES}.", answer=answer)
    choice = answer.strip().lower().strip("'\"")
    choice = {"reflect": "reflection", "zero": "zeros"}.get(choice, choice)
    if choice == "reflection":
        return report(True, answer=answer)
    if choice == "zeros":
        hint = ("the point is far enough outside that all four neighbours are padding, i.e. 0: "
                "moving it a little still reads 0, so the slope is 0.")
    elif choice == "border":
        hint = ("border padding CLAMPS x onto the last column. A clamped coordinate does not change "
                "when x moves, so d(value)/dx is 0 (y can still move the sample, x cannot).")
    else:
        hint = f"answer with one of the strings {_PADDING_MODES}."
    return report(False, hint, answer=answer)
