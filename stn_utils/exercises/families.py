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
from . import Case, Mistake, borrowed_name, check_function, report

__all__ = ["check_parameter_counts", "HOMOGRAPHY", "check_homography_point", "check_apply_homography"]

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


# --- exercise 3: the projective map, written by the reader ------------------------------------

def _homography_cases() -> list[Case]:
    """Seeded homographies near the identity (no point near the horizon) and point sets."""
    generator = torch.Generator().manual_seed(6)
    identity = torch.tensor([1.0, 0, 0, 0, 1, 0, 0, 0], dtype=torch.float64)
    cases = []
    for batch, count in ((1, 5), (3, 7), (2, 12)):
        params = identity + 0.2 * torch.randn(batch, 8, generator=generator, dtype=torch.float64)
        points = torch.rand(batch, count, 2, generator=generator, dtype=torch.float64) * 2 - 1
        cases.append(Case({"params": params.requires_grad_(), "points": points.requires_grad_()}))
    return cases


def _reference(params, points):
    return apply_homography(params, points)


def _without_division(params, points):
    matrix = torch.cat([params, torch.ones_like(params[:, :1])], dim=1).reshape(-1, 3, 3)
    return (torch.cat([points, torch.ones_like(points[..., :1])], dim=-1) @ matrix.mT)[..., :2]


def _matrix_not_transposed(params, points):
    matrix = torch.cat([params, torch.ones_like(params[:, :1])], dim=1).reshape(-1, 3, 3)
    mapped = torch.cat([points, torch.ones_like(points[..., :1])], dim=-1) @ matrix
    return mapped[..., :2] / mapped[..., 2:]


def _column_major(params, points):
    return apply_homography(torch.cat([params, torch.ones_like(params[:, :1])], dim=1)
                            .reshape(-1, 3, 3).mT.reshape(-1, 9)[:, :8], points)


def check_apply_homography(answer) -> bool:
    """Exercise 3: ``my_apply_homography(params (B, 8), points (B, N, 2)) -> (B, N, 2)``, the
    projective map of :func:`stn_utils.transforms.apply_homography` (away from the horizon),
    compared on seeded homographies: values, and gradients with respect to both inputs."""
    if borrowed_name(answer, ("apply_homography",)):
        return report(False, "Write the map yourself instead of calling the package's apply_homography: build H, "
                             "map [x, y, 1], divide by the third entry.", answer=answer)
    mistakes = [
        Mistake(_without_division, "That is the affine part alone: divide x' and y' by the third coordinate, "
                                   "h31 x + h32 y + 1."),
        Mistake(_matrix_not_transposed, "Points are rows here: multiply [x, y, 1] by the matrix's transpose "
                                        "(or write x' = h11 x + h12 y + h13 out by hand)."),
        Mistake(_column_major, "The 8 numbers are the matrix row by row: h11, h12, h13, h21, ..."),
    ]
    return check_function(answer, _reference, _homography_cases(), grad=("params", "points"), mistakes=mistakes,
                          hint="Build H from the 8 numbers and h33 = 1, map [x, y, 1], divide by the third entry.")
