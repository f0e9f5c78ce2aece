"""Answer checks for notebook 05, training an STN on CIFAR-10.

Exercise 1 asks for a number (a share of the multiply-adds) and exercise 2 for a small
function of theta; each check prints a verdict through :func:`stn_utils.exercises.report`.
Exercise 3 asks for a function, the STN-CNN's forward pass written from the model's parts
with the normalisation after the transformer: :func:`check_stn_cnn_forward` runs the
reader's ``my_stn_cnn_forward(model, images)`` next to ``model(images)`` on seeded random
images and STN-CNNs whose transformer has left the identity (see
:func:`stn_utils.exercises.check_function`).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from ..geometry import make_theta
from ..models import build_model, count_macs
from . import Case, Mistake, borrowed_name, check_function, report

__all__ = ["FULL_VIEW_SIZE", "check_full_view_stn_share", "zoom_factor", "check_zoom_factor",
           "check_stn_cnn_forward"]


# ---- exercise 1: what the localisation net's thumbnail saves ------------------------------------

# The side of the image the localisation net looks at in exercise 1: the whole 32x32 picture,
# where the notebook's STN-CNN looks at an 8x8 thumbnail.
FULL_VIEW_SIZE = 32
_INPUT_SHAPE = (3, 32, 32)


def _stn_share(**build_kwargs) -> float:
    model = build_model("cifar_stn", **build_kwargs)
    return count_macs(model.stn, _INPUT_SHAPE) / count_macs(model, _INPUT_SHAPE)


def check_full_view_stn_share(answer) -> bool:
    """Exercise 1: the fraction of the multiply-adds that the spatial transformer of
    ``build_model("cifar_stn", localization_size=32)`` takes (its localisation net sees the
    whole image rather than an 8x8 thumbnail), as a number between 0 and 1."""
    if answer is None:
        return report(False, answer=None)
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return report(False, "Give one number, a fraction such as 0.25.")
    if value > 1:
        return report(False, "Give a fraction between 0 and 1, not a percentage.")
    expected = _stn_share(localization_size=FULL_VIEW_SIZE)
    thumbnail = _stn_share()
    # relative tolerances: both shares are small, so an absolute tolerance would accept 0
    if abs(value - thumbnail) < 0.05 * thumbnail:
        return report(False, "That is the share of the notebook's STN-CNN, whose localisation net sees an 8x8 "
                             f"thumbnail; build the model with localization_size={FULL_VIEW_SIZE}.")
    return report(abs(value - expected) < 0.05 * expected,
                  f"Build the model with build_model(\"cifar_stn\", localization_size={FULL_VIEW_SIZE}), count "
                  "the multiply-adds of its .stn and of the whole model with count_macs on an input of shape "
                  "(3, 32, 32), and divide.")


# ---- exercise 2: the zoom factor of a theta ------------------------------------------------------

def zoom_factor(theta: Tensor) -> Tensor:
    """The answer to exercise 2, which section 4 of the notebook uses: theta (B, 2, 3) ->
    (B,), the ratio of lengths between the region the transformer samples and its output;
    above 1 where it zooms out, below 1 where it zooms in."""
    # the determinant of the 2x2 part is a ratio of areas; mirrors make it negative
    return theta[:, :, :2].det().abs().sqrt()


def check_zoom_factor(function) -> bool:
    """Exercise 2: a function mapping theta (B, 2, 3) to the zoom factor (B,) of each
    transform, > 1 where the STN zooms out and < 1 where it zooms in."""
    if function is None:
        return report(False, answer=None)
    if borrowed_name(function, ("zoom_factor",)):
        return report(False, "Write the zoom factor from theta yourself instead of calling the package's "
                             "zoom_factor: look at the determinant of theta's 2x2 part.")
    generator = torch.Generator().manual_seed(0)
    size = 16
    scales = torch.rand(size, generator=generator) * 1.5 + 0.3
    theta = make_theta(rotation=torch.rand(size, generator=generator) * 360 - 180,
                       scale_x=scales, scale_y=scales * (torch.rand(size, generator=generator) + 0.5),
                       translate_x=torch.rand(size, generator=generator) - 0.5)
    expected = zoom_factor(theta)
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


# ---- exercise 3: the STN-CNN's forward pass, written by the reader -------------------------------

def _reference_forward(model, images):
    return model(images)


def _forward(model, images, *, normalize_first=False, padding_mode="border", normalizations=1, transform=True,
             grid_align=False, sample_align=False, theta_layout="rows", detach_theta=False, swap_size=False):
    """The forward pass from the model's parts, with each choice overridable to build a mistake."""
    x = model.normalize(images) if normalize_first else images
    if transform:
        features = model.stn.localization(x)
        params = model.stn.to_theta(features)
        theta = params.reshape(-1, 2, 3) if theta_layout == "rows" else params.reshape(-1, 3, 2).transpose(1, 2)
        if detach_theta:
            theta = theta.detach()
        size = [*x.shape[:2], x.shape[3], x.shape[2]] if swap_size else list(x.shape)
        grid = F.affine_grid(theta, size, align_corners=grid_align)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=sample_align)
    if not normalize_first:
        for _ in range(normalizations):
            x = model.normalize(x)
    return model.body(x)


# either align_corners flag alone out of step with the model's
_ALIGN_MISMATCH = ("The grid and the sampler disagree on align_corners: pass align_corners=model.stn.align_corners "
                   "(False) to both F.affine_grid and F.grid_sample.")

_FORWARD_MISTAKES = (
    Mistake(functools.partial(_forward, normalize_first=True, padding_mode="zeros"),
            "This is the PyTorch tutorial's forward pass: normalise first, then sample with zero padding, which "
            "paints a frame of zeros (a bright grey after normalisation) around a zoomed-out view. Pass the raw "
            "[0, 1] images to the transformer, sample with padding_mode=\"border\", and normalise its output."),
    Mistake(functools.partial(_forward, normalize_first=True),
            "You normalised before the transformer, so its localisation net predicts theta from normalised "
            "pixels; in model(images) it sees the raw [0, 1] images. Predict theta from the raw images, sample "
            "them, and normalise only the transformer's output, just before model.body."),
    Mistake(functools.partial(_forward, padding_mode="zeros"),
            "Outside the image your sampler reads zeros (black), F.grid_sample's default: pass "
            "padding_mode=\"border\", so that a zoomed-out view repeats the edge pixels instead."),
    Mistake(functools.partial(_forward, padding_mode="reflection"),
            "Outside the image your sampler mirrors the image: pass padding_mode=\"border\", as the model's "
            "transformer does (model.stn.padding_mode)."),
    Mistake(functools.partial(_forward, normalizations=0),
            "The body was trained on normalised images: apply model.normalize to the transformer's output "
            "before model.body."),
    Mistake(functools.partial(_forward, normalizations=2),
            "You normalised twice: apply model.normalize once, to the transformer's output."),
    Mistake(functools.partial(_forward, transform=False),
            "Your output skips the transformer (or samples with the identity theta): theta must come from "
            "model.stn.predict_theta(images), a different one for every image."),
    Mistake(functools.partial(_forward, grid_align=True, sample_align=True),
            "The model's transformer uses align_corners=False (model.stn.align_corners): pass it to both "
            "F.affine_grid and F.grid_sample."),
    Mistake(functools.partial(_forward, grid_align=True), _ALIGN_MISMATCH),
    Mistake(functools.partial(_forward, sample_align=True), _ALIGN_MISMATCH),
    Mistake(functools.partial(_forward, theta_layout="columns"),
            "theta's entries are in the wrong places: model.stn.predict_theta(images) returns theta (B, 2, 3) "
            "ready to use (to_theta's six outputs are [a, b, tx, c, d, ty], row by row)."),
    Mistake(functools.partial(_forward, swap_size=True),
            "The grid's size is the output's (B, C, H, W), height before width: pass images.shape (the "
            "transformer keeps the images' size)."),
    Mistake(functools.partial(_forward, detach_theta=True),
            "The gradient that flows back through theta is missing: theta was detached or computed under "
            "torch.no_grad(). Keep it in the graph: through theta the classifier's loss trains the "
            "localisation net."),
)

# Cases: (seed, batch, height, width). 32x32 is CIFAR-10's size; the non-square batch catches a
# grid built with height and width swapped (the models take any size of 9 pixels or more).
_FORWARD_SETTINGS = ((0, 4, 32, 32), (1, 3, 32, 32), (2, 2, 24, 36))
_ZOOM_OUT = 1.25   # the transformers of the cases sample a region this much larger than the image...
_HEAD_SCALE = 3.0  # ...moved per image by a last layer this many times PyTorch's default scale


def _stn_cnn_with_moved_transformer(seed: int):
    """An STN-CNN in eval mode whose transformer zooms out and differs from image to image, as
    part-way through training: the padding then shows, and the localisation net's input
    (raw or normalised pixels) changes theta. Built without touching the global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model("cifar_stn").eval()   # eval: batch norm uses, and keeps, its running statistics
        last = model.stn.to_theta
        with torch.no_grad():
            last.weight.copy_(_HEAD_SCALE * torch.randn(last.weight.shape) / last.weight.shape[1] ** 0.5)
            last.bias.copy_(torch.tensor([_ZOOM_OUT, 0.0, 0.0, 0.0, _ZOOM_OUT, 0.0]) + 0.1 * torch.randn(6))
    return model


def _forward_cases():
    generator = torch.Generator().manual_seed(0)
    cases = []
    for seed, batch, height, width in _FORWARD_SETTINGS:
        model = _stn_cnn_with_moved_transformer(seed)
        # coarse blobs plus pixel noise: the blobs survive the localisation net's 8x8 thumbnail,
        # so that theta differs from image to image
        blobs = F.interpolate(torch.rand(batch, 3, 4, 4, generator=generator), size=(height, width),
                              mode="bilinear", align_corners=False)
        images = 0.7 * blobs + 0.3 * torch.rand(batch, 3, height, width, generator=generator)
        cases.append(Case({"model": model, "images": images},
                          label=f"images of shape {tuple(images.shape)} and an STN-CNN (seed {seed})"))
    return cases


def _describe_forward_entry(case, entry, index) -> str:
    if entry == "output":
        return f"image {index[0]}, logit of class {index[1]}"
    b, c, i, j = index
    return f"image {b}, channel {c}, row {i}, column {j}"


class _PartsOnly:
    """While the reader's function runs, calling the model or its whole transformer raises:
    the exercise is to put the forward pass together from the parts."""

    def __init__(self, model):
        self.modules = [(model, "model(images)"), (model.stn, "model.stn(...)")]

    def __enter__(self):
        for module, call in self.modules:
            def refuse(*args, call=call, **kwargs):
                raise RuntimeError(f"write the forward pass from the model's parts instead of calling {call}: "
                                   "model.stn.predict_theta, F.affine_grid, F.grid_sample, model.normalize "
                                   "and model.body.")
            module.forward = refuse   # an instance attribute hides the class's forward
        return self

    def __exit__(self, *exc):
        for module, _ in self.modules:
            del module.forward
        return False


def _from_parts_only(answer):
    """``answer``, run with the model's own forward passes refused (see :class:`_PartsOnly`)."""
    if not callable(answer):
        return answer

    @functools.wraps(answer)
    def run(model, images):
        with _PartsOnly(model):
            return answer(model, images)

    return run


def check_stn_cnn_forward(answer) -> bool:
    """Exercise 3: the reader's ``my_stn_cnn_forward(model, images)``.

    Args:
        answer: a function taking an STN-CNN ``model`` (``build_model("cifar_stn")``) and
            images (B, 3, H, W) in [0, 1], returning the logits (B, 10) that ``model(images)``
            returns, computed from the parts: theta from ``model.stn.predict_theta`` on the raw
            images, the grid (``F.affine_grid``) and the sampler (``F.grid_sample``, border
            padding, ``align_corners=False``), then ``model.normalize`` and ``model.body``.
            Calling ``model(...)`` or ``model.stn(...)`` inside it raises an error.

    It is compared with ``model(images)`` on three seeded random batches (one not square),
    each with its own STN-CNN in eval mode whose transformer zooms out by about 1.25 and
    predicts a different theta for every image: shapes, values and the gradient with respect
    to the images, which flows both through the sampler and through theta.
    """
    return check_function(
        _from_parts_only(answer), _reference_forward, _forward_cases(), grad=("images",),
        mistakes=_FORWARD_MISTAKES, describe=_describe_forward_entry, atol=1e-5, rtol=1e-4,
        grad_atol=1e-5, grad_rtol=1e-3,
        hint=("Go through the parts in order: theta = model.stn.predict_theta(images) on the raw images, "
              "the grid for the images' size, the sampler with border padding, then model.normalize and "
              "model.body."))
