"""Checks for notebook 05, training an STN on CIFAR-10."""

from __future__ import annotations

import torch

from ..geometry import make_theta
from ..models import build_model, count_macs
from . import report


def check_stn_share(answer) -> bool:
    """Exercise 1: the fraction of the STN-CNN's multiply-adds spent in its spatial
    transformer (localisation net and last layer), as a number between 0 and 1."""
    if answer is None:
        return report(False, answer=None)
    model = build_model("cifar_stn")
    expected = count_macs(model.stn, (3, 32, 32)) / count_macs(model, (3, 32, 32))
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return report(False, "Give one number, a fraction such as 0.25.")
    if value > 1:
        return report(False, "Give a fraction between 0 and 1, not a percentage.")
    # relative: the share is well under 1 %, so an absolute tolerance would accept 0
    return report(abs(value - expected) < 0.05 * expected,
                  "Count the multiply-adds of model.stn and of the whole model with count_macs "
                  "on an input of shape (3, 32, 32), and divide.")


def check_zoom_factor(function) -> bool:
    """Exercise 2: a function mapping theta (B, 2, 3) to the zoom factor (B,) of each
    transform, > 1 where the STN zooms out and < 1 where it zooms in."""
    if function is None:
        return report(False, answer=None)
    generator = torch.Generator().manual_seed(0)
    size = 16
    scales = torch.rand(size, generator=generator) * 1.5 + 0.3
    theta = make_theta(rotation=torch.rand(size, generator=generator) * 360 - 180,
                       scale_x=scales, scale_y=scales * (torch.rand(size, generator=generator) + 0.5),
                       translate_x=torch.rand(size, generator=generator) - 0.5)
    expected = theta[:, :, :2].det().abs().sqrt()
    try:
        got = torch.as_tensor(function(theta), dtype=expected.dtype)
    except Exception as error:  # the reader's code may fail in any way; say how
        return report(False, f"Your function raised {type(error).__name__}: {error}")
    if got.shape != expected.shape:
        return report(False, f"Return one number per transform: shape {tuple(expected.shape)}, "
                             f"not {tuple(got.shape)}.")
    return report(torch.allclose(got, expected, atol=1e-4),
                  "The area of the sampled region scales with the determinant of theta's 2x2 "
                  "part; the zoom factor is its square root (take the absolute value: mirrors "
                  "have negative determinants).")
