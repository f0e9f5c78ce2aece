"""Answer checks for notebook 02, the localisation network.

Each check prints a verdict (and a hint when the answer is wrong) through
:func:`stn_utils.exercises.report` and returns ``True`` or ``False``; ``None`` means the
reader has not answered yet.
"""

from __future__ import annotations

import numbers
import re

import numpy as np
import torch

from . import report

__all__ = ["check_identity_bias", "check_last_layer_parameters", "check_shift_entry", "check_feature_stn_shape"]

# theta = [[a, b, tx], [c, d, ty]], flattened row by row as nn.Linear(F, 6) outputs it
IDENTITY_BIAS = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
# the last layer of the course's localisation net: Linear(32 -> 6) with a bias
LAST_LAYER_PARAMETERS = 32 * 6 + 6
FEATURE_STN_SHAPE = (8, 16, 7, 7)


def _as_numbers(answer):
    """A tensor, array, list or tuple of real numbers -> float64 array; None when it is not one."""
    if isinstance(answer, (str, bytes, dict, set)):
        return None
    try:
        if isinstance(answer, torch.Tensor):
            array = answer.detach().cpu().double().numpy()
        else:
            array = np.asarray(answer, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return array


def check_identity_bias(answer) -> bool:
    """The six bias values the last layer starts with, in the order ``theta.reshape(6)``.

    Accepts a tensor, array, list or tuple of shape (6,), (2, 3) or (1, 2, 3).
    """
    hint = ("The bias is theta flattened row by row, [a, b, tx, c, d, ty], and at the start theta "
            "must be the identity map: it keeps every (x, y) where it is.")
    if answer is None:
        return report(False, hint, answer=None)
    values = _as_numbers(answer)
    if values is None or values.size != 6 or values.shape not in ((6,), (2, 3), (1, 2, 3), (1, 6)):
        return report(False, "Give six numbers, e.g. a list [.., .., .., .., .., ..] or a tensor of "
                      "shape (6,) or (2, 3). " + hint, answer=answer)
    passed = bool(np.isfinite(values).all() and np.allclose(values.reshape(6), IDENTITY_BIAS, atol=1e-6))
    return report(passed, hint, answer=answer)


def check_last_layer_parameters(answer) -> bool:
    """The number of trainable parameters of the final ``Linear(32 -> 6)`` layer."""
    hint = "A Linear(in, out) layer has an (out, in) weight matrix plus one bias per output."
    if answer is None:
        return report(False, hint, answer=None)
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer_value = answer.item()
    else:
        answer_value = answer
    if isinstance(answer_value, bool) or not isinstance(answer_value, numbers.Real):
        return report(False, "Answer with a whole number. " + hint, answer=answer)
    passed = float(answer_value) == LAST_LAYER_PARAMETERS
    if not passed and float(answer_value) == 32 * 6:
        hint = "Close: that counts the weights only. Don't forget the bias."
    return report(passed, hint, answer=answer)


_ENTRY_NAMES = {"a": (0, 0), "b": (0, 1), "tx": (0, 2), "c": (1, 0), "d": (1, 1), "ty": (1, 2)}


def _entry_index(answer):
    """'tx', 't_x', 'theta[0, 2]', 'theta[0][2]', (0, 2) or [0, 2] -> (0, 2); None if unreadable."""
    if isinstance(answer, str):
        text = re.sub(r"[\s_]", "", answer.lower())
        if text in _ENTRY_NAMES:
            return _ENTRY_NAMES[text]
        match = re.fullmatch(r"(?:theta)?[\[(]?(\d)[\])]?(?:,|\]\[)(\d)[\])]?", text)
        if match:
            return int(match.group(1)), int(match.group(2))
        return None
    if isinstance(answer, (tuple, list)) and len(answer) == 2 and all(
            isinstance(i, int) and not isinstance(i, bool) for i in answer):
        return tuple(answer)
    return None


def check_shift_entry(answer) -> bool:
    """Which theta entry, increased, makes the STN read further RIGHT in the input.

    Accepts a name (``"tx"``), ``"theta[0, 2]"`` or an index pair ``(0, 2)``.
    """
    hint = ("theta maps an OUTPUT location to the INPUT location it reads: x_in = a x + b y + tx. "
            "Which entry adds the same amount to x_in for every output pixel?")
    if answer is None:
        return report(False, hint, answer=None)
    index = _entry_index(answer)
    if index is None:
        return report(False, "Name one entry: 'a', 'b', 'tx', 'c', 'd' or 'ty' (or an index pair like "
                      "(0, 2)). " + hint, answer=answer)
    if index == (1, 2):
        hint = "ty moves the view up or down; you want the horizontal direction."
    return report(index == (0, 2), hint, answer=answer)


def check_feature_stn_shape(answer) -> bool:
    """Output shape of ``SpatialTransformer(16, output_size=(7, 7))`` on a (8, 16, 14, 14) map."""
    hint = ("The sampler keeps the batch and channel sizes and writes one value per output "
            "location: (B, C, H_out, W_out).")
    if answer is None:
        return report(False, hint, answer=None)
    if isinstance(answer, (tuple, list, torch.Size)) and all(
            isinstance(n, numbers.Integral) and not isinstance(n, bool) for n in answer):
        shape = tuple(int(n) for n in answer)
    else:
        return report(False, "Answer with a shape: a tuple of four integers. " + hint, answer=answer)
    if len(shape) == 4 and shape[:2] == FEATURE_STN_SHAPE[:2] and shape[2:] == (14, 14):
        hint = "output_size sets H_out and W_out: the STN does not keep the 14x14 here."
    elif len(shape) == 4 and shape[2:] == FEATURE_STN_SHAPE[2:] and shape[1] != 16:
        hint = "The STN warps every channel with the same grid; the channel count does not change."
    return report(shape == FEATURE_STN_SHAPE, hint, answer=answer)
