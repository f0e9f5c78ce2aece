"""Checks for notebook 01, invariance failures."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import report


def _pooled_shift_invariant(column: int, shift: int) -> bool:
    feature_map = torch.zeros(1, 1, 8, 8)
    feature_map[0, 0, 2, column] = 1.0
    shifted = torch.roll(feature_map, shifts=shift, dims=3)
    return torch.equal(F.max_pool2d(feature_map, 2), F.max_pool2d(shifted, 2))


def check_pooling_shifts(answer) -> bool:
    """Exercise 1: the shifts in {0, 1, 2, 3} that leave 2x2 max-pooling unchanged for a
    single bright pixel in column 2 of an 8x8 feature map."""
    if answer is None:
        return report(False, answer=None)
    expected = {s for s in range(4) if _pooled_shift_invariant(2, s)}
    try:
        given = {int(s) for s in answer}
    except (TypeError, ValueError):
        return report(False, "Give a set or list of whole numbers, e.g. {0, 3}.")
    return report(given == expected,
                  "A 2x2 pool with stride 2 groups columns (0, 1), (2, 3), (4, 5), ...: the pooled "
                  "output stays the same only while the pixel stays inside its group.")


def check_stride_shift(answer) -> bool:
    """Exercise 2: the input shift (pixels) that moves the feature map of two stride-2
    layers by exactly one cell."""
    if answer is None:
        return report(False, answer=None)
    return report(answer == 4, "Each stride-2 layer halves the resolution; two of them make one "
                               "feature-map cell cover how many input pixels?")
