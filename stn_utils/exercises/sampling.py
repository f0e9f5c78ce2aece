"""Checks for the exercises of notebook 04, "Differentiable sampling".

Exercises 1 and 3 work on one tiny image and one sampling point, both given here so the
notebook and its solutions share them: :func:`tiny_image` (shape ``(1, 1, 3, 3)``) and
:data:`POINT`, a normalised ``(x, y)``. Sampling uses ``align_corners=False`` (pixel ``j``
has its centre at ``x = (2 j + 1) / W - 1``) and zeros padding. Exercise 2 asks for a
function, the whole bilinear sampler: :func:`check_bilinear_sample` runs the reader's
``my_bilinear_sample(image, grid)`` next to ``F.grid_sample`` (see
:func:`stn_utils.exercises.check_function`). Exercise 4 asks which padding mode lets a
sample point outside the image feel a gradient along ``x``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import Case, Mistake, check_function, report

__all__ = ["POINT", "OUTSIDE_POINT", "tiny_image", "check_bilinear_value", "check_bilinear_sample",
           "check_x_gradient", "check_padding_choice"]

# Rows are y (top to bottom), columns are x (left to right). Not a linear ramp, so the four
# neighbours and their weights really matter.
_TINY = ((2.0, 0.0, 1.0),
         (4.0, 8.0, 6.0),
         (0.0, 3.0, 5.0))
# Normalised (x, y): pixel units (1.3, 0.55) with align_corners=False, so between columns 1-2
# and rows 0-1, and on none of the kinks.
POINT = (0.2, -0.3)
# Normalised (x, y) for exercise 4: a quarter of the image width to the right of the image.
OUTSIDE_POINT = (1.5, 0.1)
_ATOL = 1e-3
_PADDING_MODES = ("zeros", "border", "reflection")


def tiny_image() -> torch.Tensor:
    """The 3x3 image of exercises 1, 3 and 4, shape ``(1, 1, 3, 3)``, float32; a fresh tensor."""
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


# ---- exercise 2: the whole sampler, written by the reader -------------------------------------

def _reference_sample(image, grid):
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _by_hand(image, grid, *, floor=torch.floor, swap_weights=False, drop="corner"):
    """Bilinear sampling with a switchable bug; the defaults give the right answer.

    ``floor``: how x_pix becomes an integer; ``swap_weights``: give each corner the other's
    weight; ``drop``: what an outside corner does: ``"corner"`` reads 0 (right), ``"point"``
    zeroes the whole sample, ``None`` reads the clamped edge pixel.
    """
    batch, channels, height, width = image.shape
    x = ((grid[..., 0] + 1) * width - 1) / 2
    y = ((grid[..., 1] + 1) * height - 1) / 2
    x0, y0 = floor(x), floor(y)
    dx, dy = x - x0, y - y0
    if swap_weights:
        dx, dy = 1 - dx, 1 - dy
    corners = [(x0, y0, (1 - dx) * (1 - dy)), (x0 + 1, y0, dx * (1 - dy)),
               (x0, y0 + 1, (1 - dx) * dy), (x0 + 1, y0 + 1, dx * dy)]
    inside = [(cx >= 0) & (cx <= width - 1) & (cy >= 0) & (cy <= height - 1) for cx, cy, _ in corners]
    if drop == "point":
        inside = [inside[0] & inside[1] & inside[2] & inside[3]] * 4
    elif drop is None:
        inside = [torch.ones_like(ok) for ok in inside]
    flat = image.reshape(batch, channels, height * width)
    out = 0
    for (cx, cy, weight), ok in zip(corners, inside):
        index = (cy.clamp(0, height - 1) * width + cx.clamp(0, width - 1)).long()
        values = flat.gather(2, index.reshape(batch, 1, -1).expand(-1, channels, -1))
        out = out + values.reshape(batch, channels, *grid.shape[1:3]) * (weight * ok)[:, None]
    return out


def _half_pixel_late(image, grid):
    # x_pix = (x + 1) W / 2, without the "- 1": the same as sampling at x + 1 / W
    height, width = image.shape[2:]
    return _reference_sample(image, grid + grid.new_tensor([1 / width, 1 / height]))


_SAMPLE_MISTAKES = (
    Mistake(lambda image, grid: F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros",
                                              align_corners=True),
            "You converted with the align_corners=True formula, x_pix = (x + 1) (W - 1) / 2. Here "
            "(align_corners=False) it is x_pix = ((x + 1) W - 1) / 2, and the same for y with H."),
    Mistake(_half_pixel_late,
            "Your sample points are half a pixel off: x_pix = (x + 1) W / 2 lands on pixel EDGES. Pixel "
            "j's centre is at x = (2 j + 1) / W - 1, so x_pix = ((x + 1) W - 1) / 2."),
    Mistake(lambda image, grid: _reference_sample(image, grid.flip(-1)),
            "x and y are swapped: grid[..., 0] is x, which picks the COLUMN (an index into W); "
            "grid[..., 1] is y, the ROW (an index into H)."),
    Mistake(lambda image, grid: F.grid_sample(image, grid, mode="nearest", padding_mode="zeros",
                                              align_corners=False),
            "That is nearest-neighbour sampling. Blend the four pixels around the point with the weights "
            "(1 - dx)(1 - dy), dx (1 - dy), (1 - dx) dy and dx dy."),
    Mistake(lambda image, grid: _by_hand(image, grid, swap_weights=True),
            "The weights are swapped: the neighbour at x0 gets (1 - dx) and the one at x0 + 1 gets dx, "
            "with dx = x_pix - x0 (the nearer neighbour gets the larger weight)."),
    Mistake(lambda image, grid: _by_hand(image, grid, floor=torch.trunc),
            "Points left of (or above) the first pixel centre have a negative x_pix, and .long(), int() "
            "or torch.trunc round those TOWARDS ZERO. Take the top-left neighbour with torch.floor."),
    # Clamped indices without a mask give the same values as border padding.
    Mistake(lambda image, grid: _by_hand(image, grid, drop=None),
            "Near and beyond the edges your output reads edge pixels (as border padding would) where the "
            "reference reads 0: with zeros padding every neighbour outside the image counts as 0. Clamping "
            "the neighbours' indices keeps the gather legal, but then multiply each weight by a mask that "
            "is 1 for the neighbours inside the image and 0 for the others."),
    Mistake(lambda image, grid: _by_hand(image, grid, drop="point"),
            "Near the edge your output is 0 where the reference still blends the neighbours that are "
            "inside: drop only the neighbours outside the image, not the whole sample."),
)


def _describe_sample_entry(case, entry, index) -> str:
    image, grid = case.inputs["image"], case.inputs["grid"]
    height, width = image.shape[2:]
    if entry == "image":
        b, c, row, col = index
        return f"pixel (row {row}, column {col}) of batch item {b}, channel {c}"
    if entry == "output":
        b, c, i, j = index
        head = f"batch item {b}, channel {c}, output pixel (i={i}, j={j})"
    else:
        b, i, j, k = index
        head = f"the {'xy'[k]} of grid[{b}, {i}, {j}]"
    x, y = (float(v) for v in grid[b, i, j])
    x_pix, y_pix = ((x + 1) * width - 1) / 2, ((y + 1) * height - 1) / 2
    if 0 <= x_pix <= width - 1 and 0 <= y_pix <= height - 1:
        place = "inside the image"
    elif -1 < x_pix < width and -1 < y_pix < height:
        place = "at the edge: some of its four neighbours lie outside the image"
    else:
        place = "outside the image: all four neighbours are padding"
    return f"{head}, whose sample point (x, y) = ({x:+.2f}, {y:+.2f}) is {place}"


def _sample_cases():
    generator = torch.Generator().manual_seed(0)
    cases = []
    # (image shape, grid shape, how far beyond [-1, 1] the points may go)
    for image_shape, grid_shape, reach in (((2, 3, 5, 7), (2, 4, 6, 2), 1.4),
                                           ((1, 1, 4, 4), (1, 5, 3, 2), 1.7),
                                           ((3, 2, 6, 3), (3, 2, 5, 2), 1.2)):
        image = torch.rand(image_shape, generator=generator)
        grid = (torch.rand(grid_shape, generator=generator) * 2 - 1) * reach
        cases.append(Case({"image": image, "grid": grid}))
    return cases


def check_bilinear_sample(answer) -> bool:
    """Exercise 2: the reader's ``my_bilinear_sample(image, grid)``.

    Args:
        answer: a function taking an image ``(B, C, H_in, W_in)`` and a grid ``(B, H, W, 2)``
            of normalised ``(x, y)`` points and returning ``(B, C, H, W)``: bilinear sampling
            with zeros padding and ``align_corners=False``.

    It is compared with ``F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros",
    align_corners=False)`` on three seeded random images and grids, some of whose points lie
    outside the image: shapes, values, and the gradients with respect to ``image`` and ``grid``.
    """
    return check_function(
        answer, _reference_sample, _sample_cases(), grad=("image", "grid"), mistakes=_SAMPLE_MISTAKES,
        describe=_describe_sample_entry,
        hint=("Work through one point by hand, as in section 1: x_pix = ((x + 1) W - 1) / 2, floor for the "
              "top-left neighbour, weights from the fractional parts dx and dy, and 0 for every neighbour "
              "outside the image."))


# ---- exercises 3 and 4: the slope along x, and padding ----------------------------------------

def check_x_gradient(answer) -> bool:
    """Exercise 3: d(value)/d(x_pixel) at :data:`POINT`, the slope per pixel along x.

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
    """Exercise 4: which padding mode gives a non-zero d(value)/dx at :data:`OUTSIDE_POINT`?

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
