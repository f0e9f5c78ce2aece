"""Answer checks for notebook 02, the localisation network.

Exercise 1 asks for a function, a spatial transformer's forward pass put together from its
parts: :func:`check_spatial_transformer` runs the reader's ``my_spatial_transformer(x, stn)``
next to ``stn(x)`` on seeded random images and transformers whose last layer has left the
identity (see :func:`stn_utils.exercises.check_function`). The other exercises ask for a
value; each check prints a verdict (and a hint when the answer is wrong) through
:func:`stn_utils.exercises.report` and returns ``True`` or ``False``; ``None`` means the
reader has not answered yet.
"""

from __future__ import annotations

import numbers
import re

import numpy as np
import torch
import torch.nn.functional as F

from ..geometry import THETA_ENTRIES
from ..models import SpatialTransformer
from . import Case, Mistake, check_function, report

__all__ = ["check_spatial_transformer", "check_identity_bias", "check_last_layer_parameters", "check_shift_entry",
           "check_feature_stn_shape"]

# theta = [[a, b, tx], [c, d, ty]], flattened row by row as nn.Linear(F, 6) outputs it
IDENTITY_BIAS = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
# the last layer of the course's localisation net: Linear(32 -> 6) with a bias
LAST_LAYER_PARAMETERS = 32 * 6 + 6
FEATURE_STN_SHAPE = (8, 16, 7, 7)


# ---- exercise 1: the forward pass from its parts, written by the reader ---------------------------

_HEAD_SCALE = 3.0  # the last layer's weights, relative to PyTorch's default scale


def _reference_transformer(x, stn):
    return stn(x)


def _warp(x, stn, theta, *, size=None, grid_align=None, sample_align=None, padding=None, mode="bilinear"):
    """The sampler's half of the forward pass, with each setting overridable to build a mistake."""
    size = size or list(x.shape)
    grid_align = stn.align_corners if grid_align is None else grid_align
    sample_align = stn.align_corners if sample_align is None else sample_align
    grid = F.affine_grid(theta, size, align_corners=grid_align)
    return F.grid_sample(x, grid, mode=mode, padding_mode=padding or stn.padding_mode, align_corners=sample_align)


def _theta(x, stn):
    return stn.to_theta(stn.localization(x)).reshape(-1, 2, 3)


def _identity_theta(x):
    return torch.eye(2, 3, dtype=x.dtype).expand(x.shape[0], 2, 3)


def _height_width_swapped(x, stn):
    batch, channels, height, width = x.shape
    return _warp(x, stn, _theta(x, stn), size=[batch, channels, width, height])


_TRANSFORMER_MISTAKES = (
    Mistake(lambda x, stn: _warp(x, stn, stn.to_theta(stn.localization(x)).reshape(-1, 3, 2).transpose(1, 2)),
            "theta's entries are in the wrong places: to_theta's six outputs are [a, b, tx, c, d, ty], row by "
            "row, so .reshape(-1, 2, 3) gives theta directly (no transpose)."),
    Mistake(lambda x, stn: _warp(x, stn, _identity_theta(x)),
            "Your output is the input sampled with the identity theta: theta must come from the localisation "
            "net, stn.to_theta(stn.localization(x)), a different one for every input."),
    Mistake(lambda x, stn: _warp(x, stn, _theta(x, stn), padding="zeros"),
            "Outside the input your sampler reads zeros: pass padding_mode=stn.padding_mode to F.grid_sample "
            "(the course's transformers use \"border\")."),
    Mistake(lambda x, stn: _warp(x, stn, _theta(x, stn), padding="border"),
            "Outside the input your sampler repeats the edge pixels: pass padding_mode=stn.padding_mode to "
            "F.grid_sample (this transformer uses \"zeros\")."),
    Mistake(lambda x, stn: _warp(x, stn, _theta(x, stn), grid_align=False, sample_align=False),
            "This transformer has align_corners=True: pass align_corners=stn.align_corners to BOTH "
            "F.affine_grid and F.grid_sample."),
    Mistake(lambda x, stn: _warp(x, stn, _theta(x, stn), sample_align=False),
            "The grid and the sampler disagree on align_corners: pass align_corners=stn.align_corners to both "
            "F.affine_grid and F.grid_sample."),
    Mistake(lambda x, stn: _warp(x, stn, _theta(x, stn), grid_align=False),
            "The grid and the sampler disagree on align_corners: pass align_corners=stn.align_corners to both "
            "F.affine_grid and F.grid_sample."),
    Mistake(lambda x, stn: _warp(x, stn, _theta(x, stn), mode="nearest"),
            "The sampler must interpolate bilinearly (mode=\"bilinear\", F.grid_sample's default): nearest-"
            "neighbour sampling has no gradient with respect to the grid, so theta could not learn."),
    Mistake(_height_width_swapped,
            "The grid's size is the output's (B, C, H, W), height before width: pass x.shape (these "
            "transformers keep the input's size)."),
    Mistake(lambda x, stn: _warp(x, stn, _theta(x, stn).detach()),
            "The gradient that flows back through theta is missing: something on the way x -> localisation net "
            "-> theta was detached or ran under torch.no_grad(). Keep that path in the graph: through theta the "
            "classifier's loss trains the localisation net and reaches the layers before the transformer."),
)


def _describe_transformer_entry(case, entry, index) -> str:
    b, c, i, j = index
    place = "output" if entry == "output" else "input"
    return f"batch item {b}, channel {c}, {place} row {i}, column {j}"


def _trained_looking(stn: SpatialTransformer, generator: torch.Generator) -> SpatialTransformer:
    """``stn`` with a last layer that has left the identity, as part-way through training:
    theta differs from input to input, so the gradient through it matters."""
    with torch.no_grad():
        weight = stn.to_theta.weight
        weight.copy_(_HEAD_SCALE * torch.randn(weight.shape, generator=generator) / weight.shape[1] ** 0.5)
        stn.to_theta.bias.copy_(stn.family.identity_params() + 0.15 * torch.randn(6, generator=generator))
    return stn


def _build_transformer(channels: int, seed: int, **kwargs) -> SpatialTransformer:
    """A seeded SpatialTransformer, built without touching the global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SpatialTransformer(channels, **kwargs)


def _transformer_cases():
    generator = torch.Generator().manual_seed(0)
    settings = (((2, 1, 28, 28), "border", False), ((3, 1, 20, 12), "border", False),
                ((2, 3, 16, 16), "zeros", False), ((2, 1, 18, 22), "border", True))
    cases = []
    for seed, (shape, padding_mode, align_corners) in enumerate(settings):
        stn = _build_transformer(shape[1], seed, padding_mode=padding_mode, align_corners=align_corners)
        stn = _trained_looking(stn, generator)
        label = (f"x of shape {shape} and SpatialTransformer({shape[1]}, padding_mode={padding_mode!r}, "
                 f"align_corners={align_corners})")
        cases.append(Case({"x": torch.rand(shape, generator=generator), "stn": stn}, label=label))
    return cases


def check_spatial_transformer(answer) -> bool:
    """Exercise 1: the reader's ``my_spatial_transformer(x, stn)``.

    Args:
        answer: a function taking images ``x`` (B, C, H, W) and a :class:`SpatialTransformer`
            ``stn`` (affine, no ``output_size``) and returning what ``stn(x)`` returns,
            (B, C, H, W), computed from the parts: ``stn.localization``, ``stn.to_theta``, then
            ``F.affine_grid`` and ``F.grid_sample`` with ``stn.align_corners`` and
            ``stn.padding_mode``.

    It is compared with ``stn(x)`` on four seeded random batches (non-square, RGB, zeros
    padding, ``align_corners=True``), each with its own transformer whose last layer has left
    the identity: shapes, values and the gradient with respect to ``x``, which flows both
    through the sampler and through theta.
    """
    return check_function(
        answer, _reference_transformer, _transformer_cases(), grad=("x",), mistakes=_TRANSFORMER_MISTAKES,
        describe=_describe_transformer_entry,
        hint=("Go through the three parts in order: theta = stn.to_theta(stn.localization(x)).reshape(-1, 2, 3), "
              "then the grid for the output size x.shape, then the sampler on x."))


# ---- exercises 2 to 5: values --------------------------------------------------------------------


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


_ENTRY_NAMES = THETA_ENTRIES


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
