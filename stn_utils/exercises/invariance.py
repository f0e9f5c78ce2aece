"""Checks for notebook 01, invariance failures.

Exercise 1 asks for a function, 2x2 max-pooling written by hand: :func:`check_max_pool` runs
the reader's ``my_max_pool(feature_map)`` next to ``F.max_pool2d(feature_map, 2)`` (see
:func:`stn_utils.exercises.check_function`). Exercises 2 and 3 ask for numbers: the shifts a
pooled map tolerates, and the shift that moves a twice-strided feature map by one cell.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import Case, Mistake, check_function, report

__all__ = ["check_max_pool", "check_pooling_shifts", "check_stride_shift", "POOLING_COLUMN"]


# ---- exercise 1: 2x2 max-pooling, written by the reader --------------------------------------------

def _reference_pool(feature_map):
    return F.max_pool2d(feature_map, 2)


def _even_crop(feature_map):
    """Drop an odd last row and column, which belong to no 2x2 window."""
    height, width = feature_map.shape[-2:]
    return feature_map[..., : height // 2 * 2, : width // 2 * 2]


def _blocks_mixed_up(feature_map):
    # (B, C, H/2, W/2, 2, 2) splits memory in the wrong places: a "window" takes pixels of other rows
    cropped = _even_crop(feature_map)
    batch, channels, height, width = cropped.shape
    return cropped.reshape(batch, channels, height // 2, width // 2, 2, 2).amax(dim=(-2, -1))


_POOL_MISTAKES = (
    Mistake(lambda feature_map: F.avg_pool2d(feature_map, 2),
            "That is the MEAN of each window (average pooling). Max-pooling keeps the LARGEST of the four "
            "values: .amax over the two window axes."),
    Mistake(lambda feature_map: -F.max_pool2d(-feature_map, 2),
            "That is the SMALLEST value of each window; max-pooling keeps the largest."),
    Mistake(_blocks_mixed_up,
            "The windows are not 2x2 blocks of neighbours. Split each spatial axis into (block, position in "
            "the block): reshape to (B, C, H // 2, 2, W // 2, 2), then take .amax over dims 3 and 5."),
    Mistake(lambda feature_map: F.max_pool2d(feature_map, 2, stride=1),
            "Your windows overlap (stride 1): the windows of a 2x2 max-pool with stride 2 tile the map "
            "without overlap, so the output is half as high and half as wide."),
    Mistake(lambda feature_map: F.max_pool2d(feature_map, 2, ceil_mode=True),
            "For an odd height or width you kept a half window at the edge. Like nn.MaxPool2d(2), drop the "
            "last row or column when it has no partner: the output is H // 2 by W // 2."),
    Mistake(lambda feature_map: F.max_pool2d(feature_map, (1, 2)),
            "You pooled along the columns only; each window also spans two ROWS."),
    Mistake(lambda feature_map: F.max_pool2d(feature_map, (2, 1)),
            "You pooled along the rows only; each window also spans two COLUMNS."),
)


def _describe_pool_entry(case, entry, index) -> str:
    if entry == "output":
        b, c, i, j = index
        return (f"batch item {b}, channel {c}, output row {i}, column {j}: the window of input rows "
                f"{2 * i}-{2 * i + 1}, columns {2 * j}-{2 * j + 1}")
    b, c, y, x = index
    return f"batch item {b}, channel {c}, input row {y}, column {x}"


def _pool_cases():
    generator = torch.Generator().manual_seed(0)
    shapes = ((2, 3, 6, 8), (1, 2, 7, 5), (3, 1, 4, 10), (2, 4, 9, 9))  # non-square, and odd sides
    return [Case({"feature_map": torch.randn(shape, generator=generator)}) for shape in shapes]


def check_max_pool(answer) -> bool:
    """Exercise 1: the reader's ``my_max_pool(feature_map)``.

    Args:
        answer: a function taking a float ``feature_map`` (B, C, H, W) and returning
            (B, C, H // 2, W // 2), each entry the largest of one 2x2 window (rows 2i, 2i + 1,
            columns 2j, 2j + 1); an odd last row or column is dropped.

    It is compared with ``F.max_pool2d(feature_map, 2)`` on four seeded random maps of
    non-square and odd sizes: shapes, values and the gradient with respect to the map (which
    reaches only the largest entry of each window).
    """
    return check_function(
        answer, _reference_pool, _pool_cases(), grad=("feature_map",), mistakes=_POOL_MISTAKES,
        describe=_describe_pool_entry,
        hint=("Check one window by hand: output[b, c, i, j] must be the largest of feature_map[b, c, 2i:2i+2, "
              "2j:2j+2]."))


# ---- exercises 2 and 3: numbers ------------------------------------------------------------------

def _pooled_shift_invariant(column: int, shift: int) -> bool:
    feature_map = torch.zeros(1, 1, 8, 8)
    feature_map[0, 0, 2, column] = 1.0
    shifted = torch.roll(feature_map, shifts=shift, dims=3)
    return torch.equal(F.max_pool2d(feature_map, 2), F.max_pool2d(shifted, 2))


# The notebook's experiment puts the bright pixel in column 2; the exercise asks about column 3.
POOLING_COLUMN = 3


def check_pooling_shifts(answer) -> bool:
    """Exercise 2: the shifts in {0, 1, 2, 3} (to the right) that leave 2x2 max-pooling
    unchanged for a single bright pixel in column :data:`POOLING_COLUMN` of an 8x8 feature map."""
    if answer is None:
        return report(False, answer=None)
    expected = {s for s in range(4) if _pooled_shift_invariant(POOLING_COLUMN, s)}
    try:
        given = {int(s) for s in answer}
    except (TypeError, ValueError):
        return report(False, "Give a set or list of whole numbers, e.g. {0, 3}.")
    return report(given == expected,
                  "A 2x2 pool with stride 2 groups columns (0, 1), (2, 3), (4, 5), ...: the pooled "
                  "output stays the same only while the pixel stays inside its group. Which group is "
                  f"column {POOLING_COLUMN} in, and where in it?")


def check_stride_shift(answer) -> bool:
    """Exercise 3: the input shift (pixels) that moves the feature map of two stride-2
    layers by exactly one cell."""
    if answer is None:
        return report(False, answer=None)
    return report(answer == 4, "Each stride-2 layer halves the resolution; two of them make one "
                               "feature-map cell cover how many input pixels?")
