"""Answer checks for notebook 06, transform families and distorted MNIST.

Each check prints a verdict (and a hint when the answer is wrong) through
:func:`stn_utils.exercises.report` and returns ``True`` or ``False``; ``None`` means the
reader has not answered yet.
"""

from __future__ import annotations

import math
import numbers

import torch

from ..transforms import TRANSFORMS, apply_homography, make_transform
from . import report

__all__ = ["check_parameter_counts", "HOMOGRAPHY", "check_homography_point"]

# The homography of the second exercise: a mild perspective tilt, h33 = 1.
HOMOGRAPHY = (1.0, 0.1, 0.0, 0.0, 1.0, 0.0, 0.5, 0.0)
HOMOGRAPHY_POINT = (0.5, 0.5)


def check_parameter_counts(answer) -> bool:
    """A dict ``{family name: number of parameters the localisation net predicts}`` for
    ``"affine"``, ``"attention"``, ``"projective"`` and ``"tps"`` (a 4x4 lattice)."""
    hint = ("Count what each family lets the STN choose: a full 2x3 matrix; one zoom and a shift; "
            "a 3x3 matrix with its last entry fixed at 1; an (x, y) target for each control point.")
    if answer is None:
        return report(False, hint, answer=None)
    if not isinstance(answer, dict) or set(answer) != set(TRANSFORMS):
        return report(False, f"Give a dict with exactly the keys {sorted(TRANSFORMS)}. " + hint, answer=answer)
    right = {name: make_transform(name).num_params for name in TRANSFORMS}
    wrong = [name for name in TRANSFORMS
             if not (isinstance(answer[name], numbers.Integral) and answer[name] == right[name])]
    return report(not wrong, f"Look again at {', '.join(sorted(wrong))}. " + hint, answer=answer)


def check_homography_point(answer) -> bool:
    """Where output point ``(x, y) = (0.5, 0.5)`` reads the input under :data:`HOMOGRAPHY`,
    as two numbers ``(x_in, y_in)`` in normalised coordinates (3 decimals are enough)."""
    hint = ("Multiply [x, y, 1] by the 3x3 matrix [[h11, h12, h13], [h21, h22, h23], [h31, h32, 1]], "
            "then divide the first two results by the third: that division is what makes it projective.")
    if answer is None:
        return report(False, hint, answer=None)
    try:
        values = [float(v) for v in (answer.tolist() if isinstance(answer, torch.Tensor) else answer)]
    except (TypeError, ValueError):
        values = []
    if len(values) != 2 or not all(math.isfinite(v) for v in values):
        return report(False, "Give two numbers, (x_in, y_in). " + hint, answer=answer)
    expected = apply_homography(torch.tensor([HOMOGRAPHY], dtype=torch.float64),
                                torch.tensor([[HOMOGRAPHY_POINT]], dtype=torch.float64))[0, 0].tolist()
    return report(all(abs(v - e) < 5e-3 for v, e in zip(values, expected)), hint, answer=answer)
