"""Affine geometry for spatial transformers: theta matrices, grids, sampling.

Conventions used throughout the course:

- ``theta`` has shape ``(B, 2, 3)`` and maps an OUTPUT location to the INPUT
  location it reads from, in normalised coordinates, exactly as
  :func:`torch.nn.functional.affine_grid` uses it. Sampling backwards means every
  output pixel has exactly one source point: no holes, and a smooth gradient.
- Normalised coordinates ``(x, y)`` run over ``[-1, 1]``; ``x`` points right
  and ``y`` points DOWN, like row indices. ``(-1, -1)`` is the top-left.
- Angles are in degrees; ``align_corners`` is always explicit, because it changes
  which pixel a normalised coordinate refers to (see :func:`normalized_coordinates`).

:func:`affine_grid` and :func:`bilinear_sample` are written by hand for
teaching and match torch's kernels; :func:`warp` is the fast path for models.
"""

from __future__ import annotations

from numbers import Real
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "check_theta", "check_image", "to_homogeneous", "identity_theta", "make_theta", "compose_theta",
    "invert_theta", "normalized_coordinates", "THETA_ENTRIES", "affine_grid", "bilinear_sample", "warp",
]

# The six entries of theta by name: [[a, b, tx], [c, d, ty]] (row, column).
THETA_ENTRIES = {"a": (0, 0), "b": (0, 1), "tx": (0, 2), "c": (1, 0), "d": (1, 1), "ty": (1, 2)}

_WARP_MODES = ("bilinear", "nearest", "bicubic")
_WARP_PADDING = ("zeros", "border", "reflection")
_SAMPLE_PADDING = ("zeros", "border")


def _check_theta_layout(theta: Tensor) -> None:
    # Type and shape only: no data-dependent test, so no GPU sync (see warp).
    if not isinstance(theta, Tensor) or not theta.is_floating_point():
        if isinstance(theta, Tensor):
            got, fix = f"dtype {theta.dtype}", "theta.float()"
        else:
            got, fix = f"type {type(theta).__name__}", "torch.as_tensor(theta, dtype=torch.float32)"
        raise TypeError(f"theta must be a floating-point tensor of shape (B, 2, 3); got {got}. Convert with {fix}.")
    shape = tuple(theta.shape)
    if theta.dim() == 3 and shape[1:] == (2, 3) and shape[0] >= 1:
        return
    if shape == (2, 3):
        hint = "add a batch dimension with theta.unsqueeze(0)"
    elif theta.dim() == 3 and shape[1:] == (3, 3):
        hint = "drop the homogeneous last row with theta[:, :2, :]"
    elif theta.dim() == 3 and shape[0] == 0:
        hint = "the batch is empty; pass at least one matrix"
    elif theta.numel() > 0 and theta.numel() % 6 == 0:
        hint = "use theta.reshape(-1, 2, 3)"
    else:
        hint = "a spatial transformer's localisation net should output 6 numbers per image"
    raise ValueError(f"theta must have shape (B, 2, 3) with B >= 1; got {shape}: {hint}.")


def check_theta(theta: Tensor) -> None:
    """Validate an affine matrix batch of shape ``(B, 2, 3)``.

    Raises:
        TypeError: ``theta`` is not a floating-point tensor.
        ValueError: wrong shape, empty batch, or NaN / infinite entries.
    """
    _check_theta_layout(theta)
    if not torch.isfinite(theta).all():
        raise ValueError(
            "theta contains NaN or infinite values; if it comes from a localisation "
            "network, training has probably diverged (try a lower learning rate)."
        )


def check_image(image: Tensor, name: str = "image", *, channels: Optional[int] = None) -> None:
    """Validate an image batch of shape ``(B, C, H, W)`` with a floating dtype, and with
    ``C == channels`` when ``channels`` is given.

    Raises:
        TypeError: not a tensor, or an integer dtype.
        ValueError: not 4-D, any dimension is zero, or the wrong channel count.
    """
    if not isinstance(image, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, C, H, W); got {type(image).__name__}.")
    if not image.is_floating_point():
        fix = "image.float() / 255" if image.dtype == torch.uint8 else "image.float()"
        raise TypeError(f"{name} must be a floating-point tensor; got dtype {image.dtype}. Convert with {fix}.")
    shape = tuple(image.shape)
    if image.dim() != 4:
        hint = {3: "; add a batch dimension with image.unsqueeze(0)",
                2: "; add batch and channel dimensions with image[None, None]"}.get(image.dim(), "")
        raise ValueError(f"{name} must be 4-D (B, C, H, W); got shape {shape}{hint}.")
    if shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (B == 0); got shape {shape}.")
    if 0 in shape[1:]:
        raise ValueError(f"{name} has a zero-size channel or spatial dimension; got shape {shape}.")
    if channels is not None and shape[1] != channels:
        hint = {(3, 1): "grey images: repeat the channel with image.expand(-1, 3, -1, -1), or use a model "
                        "built for one channel",
                (1, 3): "colour images: convert them to grey with image.mean(1, keepdim=True), or use a model "
                        "built for three channels"}.get((channels, shape[1]), "")
        hint = hint or ("channels last? move them with image.permute(0, 3, 1, 2)" if shape[-1] == channels
                        else f"give images with {channels} channel(s)")
        raise ValueError(f"{name} must have {channels} channel(s), shape (B, {channels}, H, W); got {shape}: "
                         f"{hint}.")


def to_homogeneous(theta: Tensor) -> Tensor:
    """Append the row ``[0, 0, 1]``: ``(B, 2, 3) -> (B, 3, 3)``.

    In 3x3 form, chaining affine maps is plain matrix multiplication.
    """
    check_theta(theta)
    last = theta.new_tensor([0.0, 0.0, 1.0]).expand(theta.shape[0], 1, 3)
    return torch.cat([theta, last], dim=1)


def identity_theta(batch_size: int = 1, *, dtype=None, device=None) -> Tensor:
    """The identity map, shape ``(B, 2, 3)``; a fresh tensor, safe to edit in place."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1; got {batch_size!r}.")
    eye = torch.eye(2, 3, dtype=dtype, device=device)
    return eye.unsqueeze(0).repeat(batch_size, 1, 1)


def make_theta(
    rotation=0.0, scale_x=1.0, scale_y=1.0, shear=0.0, translate_x=0.0, translate_y=0.0, *, dtype=None, device=None
) -> Tensor:
    """Build ``theta`` of shape ``(B, 2, 3)`` from interpretable parameters.

    As 3x3 matrices, ``theta = T @ R @ Sh @ S`` with

    - ``S  = [[scale_x, 0], [0, scale_y]]``
    - ``Sh = [[1, shear], [0, 1]]`` (horizontal shear: ``x' = x + shear * y``)
    - ``R  = [[cos a, -sin a], [sin a, cos a]]`` with ``a = rotation`` in degrees
    - ``T``  adds ``(translate_x, translate_y)``; 1.0 is half the image width / height.

    These describe the output-to-input map, so the visible effect on the picture is
    the inverse: ``rotation=+a`` shows the content turned COUNTER-CLOCKWISE on
    screen by ``a`` degrees (with y pointing down, R itself turns the sampling grid
    clockwise); ``scale > 1`` zooms out (content looks smaller); ``translate_x > 0``
    moves the content LEFT and ``translate_y > 0`` moves it UP.

    Each argument is a python number or a 1-D tensor of length ``B`` (or 1); they
    broadcast together, and all-numbers gives ``B = 1``. The result is
    differentiable w.r.t. tensor arguments. A scale of 0 is allowed: the map is
    degenerate (everything samples one line or point) and cannot be inverted.

    Raises:
        TypeError: an argument is neither a real number nor a tensor.
        ValueError: a tensor argument is not 1-D, lengths do not broadcast, or a
            value is NaN / infinite.
    """
    named = {
        "rotation": rotation, "scale_x": scale_x, "scale_y": scale_y,
        "shear": shear, "translate_x": translate_x, "translate_y": translate_y,
    }
    tensors = [v for v in named.values() if isinstance(v, Tensor)]
    if dtype is None:
        floats = [t.dtype for t in tensors if t.is_floating_point()]
        dtype = floats[0] if floats else torch.get_default_dtype()
    if device is None and tensors:
        device = tensors[0].device
    values = {}
    for key, v in named.items():
        if isinstance(v, Tensor):
            if v.dim() > 1:
                raise ValueError(f"{key} must be a number or a 1-D tensor of length B; got shape {tuple(v.shape)}.")
            v = v.to(dtype=dtype, device=device).reshape(-1)
            if v.numel() == 0:
                raise ValueError(f"{key} is an empty tensor; pass at least one value.")
        elif isinstance(v, Real) and not isinstance(v, bool):
            v = torch.tensor([float(v)], dtype=dtype, device=device)
        else:
            raise TypeError(f"{key} must be a real number or a 1-D tensor; got {type(v).__name__}.")
        if not torch.isfinite(v).all():
            raise ValueError(f"{key} contains NaN or infinite values.")
        values[key] = v
    try:
        a, sx, sy, sh, tx, ty = torch.broadcast_tensors(*values.values())
    except RuntimeError:
        lengths = {k: v.shape[0] for k, v in values.items()}
        raise ValueError(f"make_theta arguments must have length 1 or a common length B; got {lengths}.") from None

    rad = torch.deg2rad(a)
    c, s = torch.cos(rad), torch.sin(rad)
    # R @ Sh @ S multiplied out, so no 3x3 intermediates are needed.
    row0 = torch.stack([c * sx, (c * sh - s) * sy, tx], dim=-1)
    row1 = torch.stack([s * sx, (s * sh + c) * sy, ty], dim=-1)
    return torch.stack([row0, row1], dim=1)


def compose_theta(first: Tensor, second: Tensor) -> Tensor:
    """Combine two warps into one, shape ``(B, 2, 3)``.

    ``warp(warp(img, first), second)`` equals ``warp(img, compose_theta(first, second))``
    (up to interpolation). Because theta maps output to input, the second warp's
    output point ``q`` reads ``second @ q`` from the first result, which read
    ``first @ second @ q`` from the image: the product is ``first @ second``.
    A batch of 1 broadcasts against a batch of B.
    """
    check_theta(first)
    check_theta(second)
    b1, b2 = first.shape[0], second.shape[0]
    if b1 != b2 and 1 not in (b1, b2):
        raise ValueError(f"batch sizes must match or be 1; got first B={b1} and second B={b2}.")
    if first.dtype != second.dtype:
        raise TypeError(f"first and second must share a dtype; got {first.dtype} and {second.dtype}.")
    return (to_homogeneous(first) @ to_homogeneous(second))[:, :2, :]


def invert_theta(theta: Tensor) -> Tensor:
    """Inverse affine map, shape ``(B, 2, 3)``: ``compose_theta(theta, invert_theta(theta))`` is the identity.

    Raises:
        ValueError: the 2x2 part is singular (``|det| < 1e-8``) for some batch item.
    """
    check_theta(theta)
    a, b, tx = theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2]
    c, d, ty = theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2]
    det = a * d - b * c
    singular = (det.abs() < 1e-8).nonzero().flatten().tolist()
    if singular:
        raise ValueError(
            f"theta is singular (|det| < 1e-8) for batch items {singular}; "
            "a map with zero scale squashes the image and has no inverse."
        )
    # Closed-form 2x2 inverse: exact, differentiable and dtype-agnostic.
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    row0 = torch.stack([ia, ib, -(ia * tx + ib * ty)], dim=-1)
    row1 = torch.stack([ic, id_, -(ic * tx + id_ * ty)], dim=-1)
    return torch.stack([row0, row1], dim=1)


def _check_size(size, name: str = "size") -> Tuple[int, int]:
    if (
        not isinstance(size, (tuple, list, torch.Size))
        or len(size) != 2
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in size)
    ):
        raise ValueError(f"{name} must be (H, W) with two integers >= 1; got {size!r}.")
    return int(size[0]), int(size[1])


def normalized_coordinates(
    height: int, width: int, *, align_corners: bool, dtype=None, device=None
) -> Tuple[Tensor, Tensor]:
    """Pixel-centre coordinates in ``[-1, 1]``: returns ``x`` of shape ``(W,)`` and ``y`` of shape ``(H,)``.

    ``align_corners=True``: -1 and 1 are the CENTRES of the corner pixels, so
    ``x = -1 + 2 i / (W - 1)``. ``align_corners=False``: -1 and 1 are the OUTER
    EDGES of the corner pixels, so ``x = (2 i + 1) / W - 1``; this keeps a pixel's
    footprint the same when the image is resized. A size of 1 gives ``[0]``.
    """
    sizes = _check_size((height, width), "(height, width)")
    dtype = dtype or torch.get_default_dtype()
    coords = []
    for n in sizes:
        if n == 1:  # torch puts a lone pixel at the centre for both settings
            coords.append(torch.zeros(1, dtype=dtype, device=device))
        elif align_corners:
            coords.append(torch.linspace(-1.0, 1.0, n, dtype=dtype, device=device))
        else:
            coords.append((2 * torch.arange(n, dtype=dtype, device=device) + 1) / n - 1)
    y, x = coords
    return x, y


def affine_grid(theta: Tensor, size: Tuple[int, int], *, align_corners: bool) -> Tensor:
    """Sampling grid ``(B, H, W, 2)`` for output size ``(H, W)``, built by hand.

    Entry ``[b, i, j]`` holds the input location ``(x, y)`` that output pixel
    ``(i, j)`` reads: ``theta[b] @ (x_j, y_i, 1)``. Same values as
    ``F.affine_grid(theta, (B, C, H, W), align_corners=align_corners)``.
    """
    check_theta(theta)
    height, width = _check_size(size)
    x, y = normalized_coordinates(height, width, align_corners=align_corners, dtype=theta.dtype, device=theta.device)
    ys, xs = torch.meshgrid(y, x, indexing="ij")
    base = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1)  # (H, W, 3), rows of (x, y, 1)
    grid = base.reshape(1, height * width, 3) @ theta.transpose(1, 2)  # (B, H*W, 2)
    return grid.reshape(theta.shape[0], height, width, 2)


def _gather(flat: Tensor, ix: Tensor, iy: Tensor, size: Tuple[int, int], valid: Tensor) -> Tensor:
    # flat: (B, C, H_in*W_in); ix, iy, valid: (B, N). Indices are clamped so the gather
    # is always legal; `valid` then zeroes corners that lie outside the image.
    height, width = size
    index = (iy.clamp(0, height - 1) * width + ix.clamp(0, width - 1)).long()
    values = torch.gather(flat, 2, index[:, None, :].expand(-1, flat.shape[1], -1))
    return torch.where(valid[:, None, :], values, values.new_zeros(()))


def bilinear_sample(image: Tensor, grid: Tensor, *, padding_mode: str = "zeros", align_corners: bool) -> Tensor:
    """Bilinear sampling by hand: image ``(B, C, H_in, W_in)``, grid ``(B, H, W, 2)`` -> ``(B, C, H, W)``.

    Matches ``F.grid_sample(image, grid, mode="bilinear", ...)`` in values and in
    gradients w.r.t. both ``image`` and ``grid``. ``padding_mode="zeros"`` treats
    outside pixels as 0; ``"border"`` clamps the sample point onto the image.
    """
    check_image(image)
    if not isinstance(grid, Tensor) or grid.dim() != 4 or grid.shape[-1] != 2:
        got = tuple(grid.shape) if isinstance(grid, Tensor) else type(grid).__name__
        raise ValueError(f"grid must have shape (B, H, W, 2); got {got}.")
    if grid.shape[0] != image.shape[0]:
        raise ValueError(f"grid batch size {grid.shape[0]} does not match image batch size {image.shape[0]}.")
    if grid.dtype != image.dtype:
        raise TypeError(f"grid dtype {grid.dtype} must equal image dtype {image.dtype}; "
                        "convert with grid.to(image.dtype).")
    if padding_mode not in _SAMPLE_PADDING:
        raise ValueError(f"padding_mode must be one of {_SAMPLE_PADDING}; got {padding_mode!r}.")

    batch, channels, h_in, w_in = image.shape
    h_out, w_out = grid.shape[1:3]
    gx = grid[..., 0].reshape(batch, -1)
    gy = grid[..., 1].reshape(batch, -1)

    # Normalised -> pixel units, written like torch's CPU kernel so floor() lands identically.
    if align_corners:
        x, y = (gx + 1) * ((w_in - 1) / 2), (gy + 1) * ((h_in - 1) / 2)
    else:
        x, y = (gx + 1) * (w_in / 2) - 0.5, (gy + 1) * (h_in / 2) - 0.5
    if padding_mode == "border":
        # Torch gives zero gradient ON the border too; spell that out rather than rely
        # on clamp's own convention at the boundary.
        x = torch.where((x > 0) & (x < w_in - 1), x, x.detach().clamp(0, w_in - 1))
        y = torch.where((y > 0) & (y < h_in - 1), y, y.detach().clamp(0, h_in - 1))

    x0, y0 = torch.floor(x), torch.floor(y)
    x1, y1 = x0 + 1, y0 + 1
    # floor() has zero gradient, so the grid gradient flows only through these weights.
    wx1, wy1 = x - x0, y - y0
    wx0, wy0 = 1 - wx1, 1 - wy1

    in_x0, in_x1 = (x0 >= 0) & (x0 <= w_in - 1), (x1 >= 0) & (x1 <= w_in - 1)
    in_y0, in_y1 = (y0 >= 0) & (y0 <= h_in - 1), (y1 >= 0) & (y1 <= h_in - 1)

    flat = image.reshape(batch, channels, h_in * w_in)
    out = (
        _gather(flat, x0, y0, (h_in, w_in), in_x0 & in_y0) * (wx0 * wy0)[:, None, :]
        + _gather(flat, x1, y0, (h_in, w_in), in_x1 & in_y0) * (wx1 * wy0)[:, None, :]
        + _gather(flat, x0, y1, (h_in, w_in), in_x0 & in_y1) * (wx0 * wy1)[:, None, :]
        + _gather(flat, x1, y1, (h_in, w_in), in_x1 & in_y1) * (wx1 * wy1)[:, None, :]
    )
    return out.reshape(batch, channels, h_out, w_out)


def warp(
    image: Tensor, theta: Tensor, output_size: Optional[Tuple[int, int]] = None, *,
    mode: str = "bilinear", padding_mode: str = "border", align_corners: bool = False,
) -> Tensor:
    """Warp ``image (B, C, H, W)`` with ``theta (B or 1, 2, 3)`` using torch's own kernels.

    Returns ``(B, C, H_out, W_out)``; ``output_size`` defaults to the input's
    ``(H, W)``; theta is cast to the image's dtype. This is the path models use.
    Theta's type and shape are checked but not its values: a NaN test would force
    a GPU sync on every forward pass, so call :func:`check_theta` when debugging.
    """
    check_image(image)
    _check_theta_layout(theta)
    if mode not in _WARP_MODES:
        raise ValueError(f"mode must be one of {_WARP_MODES}; got {mode!r}.")
    if padding_mode not in _WARP_PADDING:
        raise ValueError(f"padding_mode must be one of {_WARP_PADDING}; got {padding_mode!r}.")
    batch, channels, height, width = image.shape
    if theta.shape[0] not in (1, batch):
        raise ValueError(f"theta batch size {theta.shape[0]} must be 1 or match the image batch size {batch}.")
    if theta.device != image.device:
        raise ValueError(f"theta is on {theta.device} but image is on {image.device}; move one with .to().")
    h_out, w_out = (height, width) if output_size is None else _check_size(output_size, "output_size")
    theta = theta.to(image.dtype).expand(batch, 2, 3)
    if align_corners and 1 in (h_out, w_out):
        # F.affine_grid warns about unit sizes with align_corners=True; ours gives the same values quietly.
        grid = affine_grid(theta, (h_out, w_out), align_corners=True)
    else:
        grid = F.affine_grid(theta, [batch, channels, h_out, w_out], align_corners=align_corners)
    return F.grid_sample(image, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
