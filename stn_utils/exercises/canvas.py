"""Answer checks for exercises on CIFAR-10 on a canvas (:mod:`stn_utils.canvas`).

Each check prints a verdict (and a hint when the answer is wrong) through
:func:`stn_utils.exercises.report` and returns ``True`` or ``False``; ``None`` means the
reader has not answered yet.
"""

from __future__ import annotations

import math

import torch

from ..canvas import CANVAS_SIZE, turned_width
from . import Case, Mistake, borrowed_name, check_function, finite_numbers, report

__all__ = ["check_turned_width", "POSE_THETA", "check_pose"]


# --- exercise 1: how much canvas does a turned photograph need? ------------------------------

def _width_cases() -> list[Case]:
    generator = torch.Generator().manual_seed(7)
    angles = torch.rand(12, generator=generator) * 180 - 90      # negative angles too
    zooms = torch.rand(12, generator=generator) * 0.5 + 0.7
    return [Case({"side": 32, "angle": angles, "zoom": zooms}),
            Case({"side": 28, "angle": torch.tensor([0.0, 45.0, -45.0, 90.0]), "zoom": torch.ones(4)})]


def _no_abs(side, angle, zoom):
    radians = torch.deg2rad(angle)
    return side * zoom * (radians.cos() + radians.sin())


def _radians_taken_as_degrees(side, angle, zoom):
    return side * zoom * (angle.cos().abs() + angle.sin().abs())


def _diagonal(side, angle, zoom):
    return side * zoom * math.sqrt(2) * torch.ones_like(angle)


def check_turned_width(answer) -> bool:
    """Exercise 1: ``my_turned_width(side, angle, zoom)``, the width in pixels of the upright
    box around a square photograph of ``side`` pixels turned by ``angle`` degrees (a tensor)
    and zoomed by ``zoom`` (a tensor), as :func:`stn_utils.canvas.turned_width`."""
    if borrowed_name(answer, ("turned_width",)):
        return report(False, "Write it yourself instead of calling the package's turned_width: project the "
                             "photograph's two sides onto the x axis.", answer=answer)
    mistakes = [
        Mistake(_no_abs, "A negative angle (or one past 90 degrees) makes sin or cos negative, and a width "
                         "cannot shrink that way: take the absolute value of each."),
        Mistake(_radians_taken_as_degrees, "torch.cos and torch.sin take radians; the angle is in degrees "
                                           "(torch.deg2rad converts)."),
        Mistake(_diagonal, "The diagonal is the widest the box gets (at 45 degrees); at other angles it is "
                           "narrower."),
    ]
    return check_function(answer, turned_width, _width_cases(), mistakes=mistakes, atol=1e-3,
                          hint="A side of length L turned by a spans L |cos a| along x, and the side at right "
                               "angles to it L |sin a|: the box is their sum wide.")


# --- exercise 2: what pose does a theta claim? ---------------------------------------------------

# a window 0.5 of the canvas wide, turned by 30 degrees, centred left of and below the middle
POSE_THETA = ((0.5 * math.cos(math.radians(30)), -0.5 * math.sin(math.radians(30)), -0.25),
              (0.5 * math.sin(math.radians(30)), 0.5 * math.cos(math.radians(30)), 0.2))


def check_pose(answer) -> bool:
    """Exercise 2: for a transformer with ``theta`` = :data:`POSE_THETA` on the 48x48 canvas,
    ``(zoom, angle)``: the size of the photograph this window would cut out exactly, over
    the photograph's own 32 pixels, and its angle in degrees (the placement's units)."""
    hint = ("theta's 2x2 part is a zoom times a rotation: its determinant is the zoom squared (in canvas "
            "units), and its first column (cos a, sin a) times the zoom gives the angle. The window then "
            "spans that share of the canvas's 48 pixels; divide by the photograph's 32.")
    if answer is None:
        return report(False, hint, answer=None)
    values = finite_numbers(answer, 2)
    if values is None:
        return report(False, "Give two numbers, (zoom, angle in degrees). " + hint, answer=answer)
    (a, _, _), (c, d, _) = POSE_THETA
    scale = math.sqrt(abs(a * d - POSE_THETA[0][1] * c))
    zoom, angle = scale * CANVAS_SIZE / 32, math.degrees(math.atan2(c, a))
    if abs(values[0] - scale) < 0.01:
        return report(False, f"{scale:.2f} is the window's share of the canvas; the pose's zoom compares the "
                             "photograph with its own 32 pixels: multiply by 48 / 32.", answer=answer)
    if abs(values[0] - zoom) < 0.01 and abs(values[1] + angle) < 0.5:
        return report(False, "The angle's sign is flipped: the first column of a rotation by a is (cos a, sin a).",
                      answer=answer)
    if abs(values[0] - zoom) < 0.01 and abs(values[1] - math.radians(angle)) < 0.01:
        return report(False, "Give the angle in degrees, not radians.", answer=answer)
    right = abs(values[0] - zoom) < 0.01 and abs(values[1] - angle) < 0.5
    return report(right, hint, answer=answer)
