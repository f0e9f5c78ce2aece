"""The distorted MNIST variants of the STN paper (Jaderberg et al. 2015, appendix A.4).

Every generator takes grey digits ``(N, 1, H, W)``, uint8 in [0, 255] or float in [0, 1],
and a ``seed``, and returns float32 images in [0, 1] on the digits' device, one random
distortion per digit. Labels do not change, so they are neither taken nor returned.

- ``R``: rotated by an angle uniform in [-90, 90] degrees.
- ``RTS``: rotated (+-45 degrees), scaled (0.7 to 1.2) and placed at random on a 42x42 canvas.
- ``P``: scaled (0.75 to 1), then each corner moved by N(0, 5 px): a projective warp.
- ``E``: scaled (0.75 to 1), then a thin-plate spline whose 4x4 control points move by
  N(0, 1.5 px): an elastic warp.
- ``cluttered``: the digit at a random place on a 60x60 canvas, with six 6x6 pieces of
  other digits scattered over it.

:func:`on_canvas` applies RTS's draw to colour photographs (CIFAR-10 on a 48x48 canvas,
:mod:`stn_utils.canvas`), keeping each photograph's whole frame on the canvas.

All random amounts come from a ``torch.Generator`` seeded with ``seed`` and are drawn
before any image is warped, so a seed gives the same images whatever the device and
however the work is split into chunks. Sampling is bilinear with zero padding, since
digits are white on black. The keyword arguments default to the paper's amounts; setting
them to zero turns a distortion off, which the tests use.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .data import to_float
from .geometry import invert_theta, make_theta
from .transforms import Affine, Projective, ThinPlateSpline, homography_from_points

__all__ = ["rotated", "Placement", "rts_placement", "rotated_translated_scaled", "placed", "CANVAS_SIZE",
           "frame_boxes", "on_canvas", "projective", "elastic", "cluttered",
           "DISTORTIONS", "distort", "distort_each_channel", "output_size"]

RTS_SIZE, CLUTTERED_SIZE = 42, 60
CHUNK = 4096  # images warped at once: bounds the memory the sampling grids take

_CORNERS = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]])


# --- checks and random draws ----------------------------------------------------------------

def _check_digits(images: Tensor, name: str = "images") -> None:
    if not isinstance(images, Tensor):
        raise TypeError(f"{name} must be a tensor of shape (N, 1, H, W); got {type(images).__name__}.")
    shape = tuple(images.shape)
    if images.dim() != 4 or shape[1] != 1:
        hint = {3: "; add the channel dimension with images.unsqueeze(1)"}.get(images.dim(), "")
        if images.dim() == 4:
            hint = "; the generators take grey digits with one channel"
        raise ValueError(f"{name} must have shape (N, 1, H, W); got {shape}{hint}.")
    if 0 in shape:
        raise ValueError(f"{name} is empty; got shape {shape}.")
    if images.dtype == torch.uint8:
        return
    if not images.is_floating_point():
        raise TypeError(f"{name} must be uint8 or floating point; got {images.dtype}.")
    low, high = images.aminmax()
    if not (low >= 0 and high <= 1):
        raise ValueError(f"float {name} must lie in [0, 1]; got values from {low.item():.4g} to "
                         f"{high.item():.4g} (divide 0..255 data by 255, or pass it as uint8).")


def _check_amount(name: str, value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0 (0 turns it off); got {value!r}.")


def _check_scale(scale) -> None:
    if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
        raise ValueError(f"scale must be a range (low, high) with 0 < low <= high; got {scale!r}.")


def _check_count(name: str, value, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        limits = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be an integer {limits}; got {value!r}.")


def _generator(seed: int) -> torch.Generator:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an integer; got {type(seed).__name__}.")
    return torch.Generator().manual_seed(seed)


def _uniform(generator: torch.Generator, shape, low: float, high: float) -> Tensor:
    return torch.rand(shape, generator=generator) * (high - low) + low


def _pixels(amount: float, height: int, width: int) -> Tensor:
    """``amount`` pixels in normalised units along ``(x, y)``: a unit is half the image."""
    return torch.tensor([2 * amount / width, 2 * amount / height])


def _warp(images: Tensor, family, params: Tensor, size) -> Tensor:
    """Sample every image (N, C, H, W) through its own grid of ``family`` with ``params (N, P)``."""
    out = torch.empty(len(images), images.shape[1], *size, device=images.device)
    family, params = family.to(images.device), params.to(images.device)
    for start in range(0, len(images), CHUNK):
        chunk = slice(start, start + CHUNK)
        grid = family.grid(params[chunk], tuple(size), align_corners=False)
        out[chunk] = F.grid_sample(to_float(images[chunk]).float(), grid, mode="bilinear",
                                   padding_mode="zeros", align_corners=False)
    # bilinear weights are convex, so only rounding can leave [0, 1]
    return out.clamp_(0, 1)


# --- the generators -------------------------------------------------------------------------

def rotated(images: Tensor, seed: int, *, max_angle: float = 90.0) -> Tensor:
    """R: each digit turned about the image centre by an angle uniform in ``[-max_angle, max_angle]``.

    ``(N, 1, H, W) -> (N, 1, H, W)`` float32 in [0, 1].
    """
    _check_digits(images)
    _check_amount("max_angle", max_angle)
    angle = _uniform(_generator(seed), len(images), -max_angle, max_angle)
    return _warp(images, Affine(), make_theta(rotation=angle).flatten(1), images.shape[-2:])


def _ink_box(images: Tensor) -> Tensor:
    """Corners ``(N, 4, 2)``, in normalised units, of the smallest box holding each digit's ink.

    The box is widened by half a pixel on each side because bilinear sampling spreads a
    pixel up to one pixel from its centre. A blank image gets its whole frame.
    """
    ink = images[:, 0] > 0
    height, width = ink.shape[-2:]

    def span(mask: Tensor, length: int) -> Tensor:  # (N, L) -> (N, 2): first inked edge, last inked edge
        first = mask.float().argmax(1)
        last = length - mask.flip(1).float().argmax(1)
        return torch.stack([first - 0.5, last + 0.5], 1) * (2 / length) - 1

    xs, ys = span(ink.any(1), width).cpu(), span(ink.any(2), height).cpu()
    return torch.stack([xs[:, [0, 1, 0, 1]], ys[:, [0, 0, 1, 1]]], dim=-1)


class Placement(NamedTuple):
    """What :func:`rts_placement` draws for N images: ``theta`` (N, 2, 3), the sampling
    grid's map from canvas to image coordinates; ``angle`` (N,) in degrees, the rotation of
    the forward map (image to canvas, :func:`~stn_utils.geometry.make_theta`'s ``rotation``;
    with y pointing down, a positive angle shows the image turned clockwise); ``zoom`` (N,),
    the image's scale; ``centre`` (N, 2), where the image's centre
    lands on the canvas, ``(x, y)`` in normalised units."""

    theta: Tensor
    angle: Tensor
    zoom: Tensor
    centre: Tensor


def rts_placement(boxes: Tensor, seed: int, *, image_size, size: int = RTS_SIZE, max_angle: float = 45.0,
                  scale=(0.7, 1.2)) -> Placement:
    """The random draw of RTS: for N images of ``image_size = (H, W)`` whose content lies
    in ``boxes`` (N, 4, 2) (corners in the image's normalised units), an angle uniform in
    ``[-max_angle, max_angle]``, a zoom uniform in ``scale``, and a position on the
    ``size x size`` canvas uniform over those that keep the turned and zoomed box at least
    one pixel from the canvas's edge (centred where the box is too large for that)."""
    _check_count("size", size, 1)
    _check_amount("max_angle", max_angle)
    _check_scale(scale)
    generator = _generator(seed)
    n = len(boxes)
    height, width = image_size
    angle = _uniform(generator, n, -max_angle, max_angle)
    zoom = _uniform(generator, n, *scale)
    place = torch.rand(n, 2, generator=generator)
    # The forward map, image -> canvas in normalised units about the centres; the grid needs its inverse.
    forward = make_theta(rotation=angle, scale_x=zoom * width / size, scale_y=zoom * height / size)[:, :, :2]
    reach = boxes @ forward.mT
    room = 1 - 2 / size
    lowest, highest = -room - reach.amin(1), room - reach.amax(1)
    centre = torch.where(highest >= lowest, lowest + place * (highest - lowest), (lowest + highest) / 2)
    theta = invert_theta(torch.cat([forward, centre[..., None]], dim=2))
    return Placement(theta, angle, zoom, centre)


def rotated_translated_scaled(images: Tensor, seed: int, *, size: int = RTS_SIZE, max_angle: float = 45.0,
                              scale=(0.7, 1.2)) -> Tensor:
    """RTS: each digit rotated (uniform in ``[-max_angle, max_angle]``), scaled (uniform in
    ``scale``) and placed at a random position on a black ``size x size`` canvas.

    The position is uniform over those that keep the box around the digit's ink (and the
    half pixel that bilinear sampling spreads it by) at least one pixel from the canvas
    edge, so no ink is cut off and the outermost pixels stay black. Where the rotated and
    scaled box is too large for that, the digit is centred. :func:`rts_placement` draws the
    amounts.

    ``(N, 1, H, W) -> (N, 1, size, size)`` float32 in [0, 1].
    """
    _check_digits(images)
    placement = rts_placement(_ink_box(images), seed, image_size=images.shape[-2:], size=size,
                              max_angle=max_angle, scale=scale)
    return _warp(images, Affine(), placement.theta.flatten(1), (size, size))


def placed(images: Tensor, *, size: int = RTS_SIZE, angle: float = 0.0, scale: float = 1.0,
           shift=(0.0, 0.0)) -> Tensor:
    """Every digit turned by ``angle`` degrees, zoomed by ``scale`` and moved ``shift = (dx, dy)``
    pixels (right, down) from the centre of a black ``size x size`` canvas: one controlled
    amount for all, to measure accuracy against the amount (notebook 06's curves). Ink that
    leaves the canvas is cut off.

    ``(N, 1, H, W) -> (N, 1, size, size)`` float32 in [0, 1].
    """
    _check_digits(images)
    _check_count("size", size, 1)
    if not scale > 0:
        raise ValueError(f"scale must be > 0; got {scale!r}.")
    n, _, height, width = images.shape
    forward = make_theta(rotation=torch.full((n,), float(angle)), scale_x=torch.full((n,), scale * width / size),
                         scale_y=torch.full((n,), scale * height / size),
                         translate_x=torch.full((n,), 2 * shift[0] / size),
                         translate_y=torch.full((n,), 2 * shift[1] / size))
    return _warp(images, Affine(), invert_theta(forward).flatten(1), (size, size))


def projective(images: Tensor, seed: int, *, scale=(0.75, 1.0), corner_std: float = 5.0) -> Tensor:
    """P: each digit scaled about the centre (uniform in ``scale``), then its image corners
    moved by independent N(0, ``corner_std`` pixels) steps; the homography through the four
    moved corners places the digit.

    ``(N, 1, H, W) -> (N, 1, H, W)`` float32 in [0, 1].
    """
    _check_digits(images)
    _check_scale(scale)
    _check_amount("corner_std", corner_std)
    generator = _generator(seed)
    n, _, height, width = images.shape
    zoom = _uniform(generator, (n, 1, 1), *scale)
    moved = zoom * _CORNERS + torch.randn(n, 4, 2, generator=generator) * _pixels(corner_std, height, width)
    # the grid maps output to input: each moved corner must read its original corner
    params = homography_from_points(moved, _CORNERS.expand(n, 4, 2))
    return _warp(images, Projective(), params, images.shape[-2:])


def elastic(images: Tensor, seed: int, *, scale=(0.75, 1.0), point_std: float = 1.5,
            grid_size: int = 4) -> Tensor:
    """E: each digit scaled about the centre (uniform in ``scale``), then bent by a thin-plate
    spline through a ``grid_size x grid_size`` lattice whose points move by independent
    N(0, ``point_std`` pixels) steps.

    The spline is set up backwards, as the grid needs: lattice point ``c`` of the output
    reads the input at ``(c + noise) / zoom``, so the scaled digit's point at ``c + noise``
    moves to ``c``, a step of N(0, ``point_std``) pixels.

    ``(N, 1, H, W) -> (N, 1, H, W)`` float32 in [0, 1].
    """
    _check_digits(images)
    _check_scale(scale)
    _check_amount("point_std", point_std)
    spline = ThinPlateSpline(grid_size)
    generator = _generator(seed)
    n, _, height, width = images.shape
    zoom = _uniform(generator, (n, 1, 1), *scale)
    noise = torch.randn(n, grid_size ** 2, 2, generator=generator) * _pixels(point_std, height, width)
    params = ((spline.control_points + noise) / zoom).flatten(1)
    return _warp(images, spline, params, images.shape[-2:])


def _window(top: Tensor, left: Tensor, height: int, width: int):
    """Row indices ``(B, height, 1)`` and column indices ``(B, 1, width)`` of one window per image."""
    return (top[:, None] + torch.arange(height))[:, :, None], (left[:, None] + torch.arange(width))[:, None, :]


def _crops(images: Tensor, index: Tensor, top: Tensor, left: Tensor, side: int) -> Tensor:
    """The ``side x side`` square at ``(top[b], left[b])`` of ``images[index[b], 0]``: ``(B, side, side)``."""
    rows, cols = _window(top, left, side, side)
    return images[index[:, None, None], 0, rows, cols]


def _paste_max(canvas: Tensor, tiles: Tensor, top: Tensor, left: Tensor) -> None:
    """Combine ``tiles (B, h, w)`` into ``canvas (B, S, S)`` at ``(top[b], left[b])`` by max, in place."""
    rows, cols = _window(top, left, *tiles.shape[1:])
    where = (torch.arange(len(canvas))[:, None, None], rows, cols)
    canvas[where] = torch.maximum(canvas[where], tiles.to(canvas))


def cluttered(images: Tensor, seed: int, *, size: int = CLUTTERED_SIZE, clutter: int = 6, patch: int = 6,
              sources: Tensor | None = None) -> Tensor:
    """Cluttered: each digit at a random whole-pixel position on a black ``size x size``
    canvas, plus ``clutter`` squares of ``patch x patch`` pixels cut at random from other
    digits and put at random places.

    Pieces come from random images of ``sources`` (N', 1, H', W'); by default from the
    batch itself, never from the digit's own image (so the batch needs two digits). Pieces
    and digit are combined with ``max``: clutter adds ink and never erases the digit, and
    with ``clutter=0`` the canvas holds the digit's pixels unchanged.

    ``(N, 1, H, W) -> (N, 1, size, size)`` float32 in [0, 1].
    """
    _check_digits(images)
    _check_count("clutter", clutter, 0)
    n, _, height, width = images.shape
    _check_count("size", size, max(height, width))
    if sources is None:
        if clutter and n < 2:
            raise ValueError("clutter comes from the other digits of the batch, and this batch has one; "
                             "pass more digits or `sources`.")
        sources = images
    else:
        _check_digits(sources, "sources")
    _check_count("patch", patch, 1, min(sources.shape[-2:]))
    generator = _generator(seed)
    top, left = (torch.randint(size - side + 1, (n,), generator=generator) for side in (height, width))
    if sources is images:  # an offset of 1 .. n-1 skips the digit's own image
        donor = (torch.arange(n)[:, None] + torch.randint(1, max(n, 2), (n, clutter), generator=generator)) % n
    else:
        donor = torch.randint(len(sources), (n, clutter), generator=generator)
    cut_top, cut_left = (torch.randint(side - patch + 1, (n, clutter), generator=generator)
                         for side in sources.shape[-2:])
    put_top, put_left = (torch.randint(size - patch + 1, (n, clutter), generator=generator) for _ in range(2))

    canvas = torch.zeros(n, size, size, device=images.device)
    for start in range(0, n, CHUNK):
        chunk = slice(start, start + CHUNK)
        _paste_max(canvas[chunk], to_float(images[chunk, 0]), top[chunk], left[chunk])
        for k in range(clutter):
            piece = _crops(sources, donor[chunk, k], cut_top[chunk, k], cut_left[chunk, k], patch)
            _paste_max(canvas[chunk], to_float(piece), put_top[chunk, k], put_left[chunk, k])
    return canvas.unsqueeze(1)


# --- photographs on a canvas ---------------------------------------------------------------

# A 32x32 photograph turned by 45 degrees at zoom 1 spans 45.3 px: on a 48x48 canvas every
# placement keeps the whole photograph, so no class evidence is cut off.
CANVAS_SIZE, CANVAS_MAX_ANGLE, CANVAS_SCALE = 48, 45.0, (0.7, 1.0)


def frame_boxes(n: int, height: int, width: int) -> Tensor:
    """Corners (n, 4, 2) of the whole frame of n images, in their normalised units, widened
    by the half pixel that bilinear sampling spreads the border pixels by."""
    x, y = 1 + 1 / width, 1 + 1 / height
    corners = torch.tensor([[-x, -y], [x, -y], [-x, y], [x, y]])
    return corners.expand(n, 4, 2)


def on_canvas(images: Tensor, seed: int, *, size: int = CANVAS_SIZE, max_angle: float = CANVAS_MAX_ANGLE,
              scale=CANVAS_SCALE) -> tuple[Tensor, Placement]:
    """Place every image on a black ``size x size`` canvas, rotated by an angle uniform in
    ``[-max_angle, max_angle]``, zoomed by a factor uniform in ``scale``, at a random
    position that keeps its whole frame on the canvas where it fits.

    ``(N, C, H, W)`` uint8 or float in [0, 1] -> ``(N, C, size, size)`` float32 in [0, 1], and
    the :class:`~stn_utils.distortions.Placement` drawn (on the CPU).

    >>> canvas, placement = on_canvas(torch.ones(2, 3, 32, 32), seed=0)
    >>> tuple(canvas.shape), tuple(placement.zoom.shape)
    ((2, 3, 48, 48), (2,))
    """
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a tensor (N, C, H, W); got {type(images).__name__}.")
    images = to_float(images).float()
    if images.dim() != 4 or 0 in images.shape:
        raise ValueError(f"images must have shape (N, C, H, W); got {tuple(images.shape)}.")
    n, _, height, width = images.shape
    placement = rts_placement(frame_boxes(n, height, width), seed, image_size=(height, width), size=size,
                              max_angle=max_angle, scale=scale)
    out = torch.empty(n, images.shape[1], size, size, device=images.device)
    theta = placement.theta.to(images.device)
    for start in range(0, n, CHUNK):
        chunk = slice(start, start + CHUNK)
        grid = F.affine_grid(theta[chunk], [len(theta[chunk]), 1, size, size], align_corners=False)
        out[chunk] = F.grid_sample(images[chunk], grid, mode="bilinear", padding_mode="zeros",
                                   align_corners=False)
    return out.clamp_(0, 1), placement


# --- by name --------------------------------------------------------------------------------

DISTORTIONS = {"R": rotated, "RTS": rotated_translated_scaled, "P": projective, "E": elastic,
               "cluttered": cluttered}
_CANVAS = {"RTS": RTS_SIZE, "cluttered": CLUTTERED_SIZE}


def _lookup(name: str):
    if name not in DISTORTIONS:
        raise ValueError(f"unknown distortion {name!r}; choose one of {list(DISTORTIONS)}.")
    return DISTORTIONS[name]


def distort(name: str, images: Tensor, seed: int, **kwargs) -> Tensor:
    """Apply the distortion called ``name`` in :data:`DISTORTIONS`, e.g. ``distort("RTS", digits, seed=0)``."""
    return _lookup(name)(images, seed, **kwargs)


def distort_each_channel(name: str, images: Tensor, seed: int, **kwargs) -> Tensor:
    """Distort every channel of ``images`` (N, C, H, W) as a digit of its own, each with its
    own random draw: several digits side by side on separate channels (MNIST addition). The
    draws follow the order image 0 channel 0, image 0 channel 1, ..., so channel ``c`` of
    image ``n`` gets what ``distort`` gives digit ``n * C + c`` of the flattened batch.

    ``(N, C, H, W) -> (N, C, S, S)`` float32 in [0, 1], ``S`` as :func:`output_size` says.
    """
    if not isinstance(images, Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must have shape (N, C, H, W), one digit per channel; got {shape}.")
    n, channels = images.shape[:2]
    out = distort(name, images.reshape(n * channels, 1, *images.shape[-2:]), seed, **kwargs)
    return out.reshape(n, channels, *out.shape[-2:])


def output_size(name: str, image_size: int = 28, **kwargs) -> int:
    """Side of the square images ``distort(name, digits, seed, **kwargs)`` returns for
    ``image_size x image_size`` digits: 28, 42, 28, 28 and 60 for MNIST at the defaults."""
    _lookup(name)
    return kwargs.get("size", _CANVAS[name]) if name in _CANVAS else image_size
