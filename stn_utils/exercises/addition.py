"""Answer checks for exercises on MNIST addition with two transformers (:mod:`stn_utils.addition`).

Each check prints a verdict (and a hint when the answer is wrong) through
:func:`stn_utils.exercises.report` and returns ``True`` or ``False``; ``None`` means the
reader has not answered yet.
"""

from __future__ import annotations

import math
import numbers

import torch

from ..addition import ink_centroids
from . import Case, Mistake, borrowed_name, check_function, finite_numbers, report

__all__ = ["check_guessing_error", "WINDOW_THETA", "check_window", "check_ink_centroids"]

# the theta of the window exercise: a window half the canvas wide, right of and above its centre
WINDOW_THETA = ((0.5, 0.0, 0.4), (0.0, 0.5, -0.3))


def _guessing_error() -> float:
    """Test error (%) of always answering the most common sum of two independent digits,
    each uniform over 0..9: 9, made by 10 of the 100 pairs."""
    pairs_per_sum = [sum(1 for a in range(10) if 0 <= total - a <= 9) for total in range(19)]
    return 100 * (1 - max(pairs_per_sum) / 100)


def check_guessing_error(answer) -> bool:
    """Exercise 1: the error, in %, of a model that ignores the image and always answers the
    most common sum, if both digits are independent and each is equally likely to be 0..9."""
    hint = ("Count the pairs (a, b) of digits 0..9 that give each sum: how many of the 100 pairs make the "
            "most common one? The error is the share of pairs that do not.")
    if answer is None:
        return report(False, hint, answer=None)
    if not isinstance(answer, numbers.Real) or isinstance(answer, bool) or not math.isfinite(answer):
        return report(False, "Give one number, the error in percent (e.g. 50 for half). " + hint, answer=answer)
    right = _guessing_error()
    if abs(answer - (100 - right)) < 0.5:
        return report(False, "That is the share of pairs it gets right; the error is the rest.", answer=answer)
    if abs(answer * 100 - right) < 0.5:
        return report(False, "Give it in percent, not as a fraction.", answer=answer)
    return report(abs(answer - right) < 0.5, hint, answer=answer,
                  detail=" A model must beat this to have learned anything from the images.")


# --- exercise 2: where is the window? ---------------------------------------------------------

def check_window(answer) -> bool:
    """Exercise 2: for a transformer with ``theta`` = :data:`WINDOW_THETA` on the 42x42 canvas,
    ``(x, y, side)``: the canvas point its window's centre reads, in normalised coordinates,
    and the window's side in canvas pixels."""
    hint = ("The output's centre is the point (0, 0): theta maps it to theta @ (0, 0, 1), the last column. "
            "The window spans the output's -1..1 mapped through the 2x2 part: its side is the zoom times the "
            "canvas's 42 pixels.")
    if answer is None:
        return report(False, hint, answer=None)
    values = finite_numbers(answer, 3)
    if values is None:
        return report(False, "Give three numbers, (x, y, side). " + hint, answer=answer)
    (a, _, x), (_, d, y) = WINDOW_THETA
    side = 42 * math.sqrt(abs(a * d))
    if abs(values[2] - side * 28 / 42) < 0.5:
        return report(False, "The side is a share of the canvas (42 pixels), not of the 28-pixel output.",
                      answer=answer)
    right = abs(values[0] - x) < 1e-3 and abs(values[1] - y) < 1e-3 and abs(values[2] - side) < 0.5
    return report(right, hint, answer=answer)


# --- exercise 3: where is the ink? ------------------------------------------------------------

def _centroid_cases() -> list[Case]:
    """Seeded ink images, non-square so that x and y cannot be swapped unnoticed."""
    generator = torch.Generator().manual_seed(8)
    cases = []
    for batch, channels, height, width in ((1, 1, 5, 5), (3, 2, 6, 9), (2, 2, 42, 42)):
        images = torch.rand(batch, channels, height, width, generator=generator) ** 4   # a few bright pixels
        cases.append(Case({"images": images}))
    return cases


def _corner_aligned(images):
    height, width = images.shape[-2:]
    xs, ys = torch.linspace(-1, 1, width), torch.linspace(-1, 1, height)
    total = images.sum((2, 3))
    return torch.stack([(images.sum(2) * xs).sum(2) / total, (images.sum(3) * ys).sum(2) / total], -1)


def _pixel_indices(images):
    height, width = images.shape[-2:]
    total = images.sum((2, 3))
    xs, ys = torch.arange(width, dtype=images.dtype), torch.arange(height, dtype=images.dtype)
    return torch.stack([(images.sum(2) * xs).sum(2) / total, (images.sum(3) * ys).sum(2) / total], -1)


def _swapped(images):
    return ink_centroids(images).flip(-1)


def check_ink_centroids(answer) -> bool:
    """Exercise 3: ``my_ink_centroids(images (B, C, H, W)) -> (B, C, 2)``, each channel's
    ink-weighted mean ``(x, y)`` in normalised coordinates (``align_corners=False``), as
    :func:`stn_utils.addition.ink_centroids`, compared on seeded images."""
    if borrowed_name(answer, ("ink_centroids",)):
        return report(False, "Write it yourself instead of calling the package's ink_centroids: weight each "
                             "pixel's coordinate by its ink and divide by the total ink.", answer=answer)
    mistakes = [
        Mistake(_corner_aligned, "Those are align_corners=True coordinates (-1 and 1 on the outer pixels' "
                                 "centres); here -1 and 1 are the image's outer edges, so pixel j of W sits at "
                                 "(2j + 1) / W - 1."),
        Mistake(_pixel_indices, "Those are pixel indices; turn them into normalised coordinates, "
                                "(2j + 1) / W - 1."),
        Mistake(_swapped, "x and y are swapped: x runs along the width (the last dimension), y along the height."),
    ]
    return check_function(answer, ink_centroids, _centroid_cases(), mistakes=mistakes,
                          hint="Make a coordinate for every column and row, weight it by the ink summed over the "
                               "other direction, and divide by the channel's total ink.")
