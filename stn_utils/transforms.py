"""Transform families for spatial transformers: parameters in, sampling grid out.

A family turns ``params (B, P)``, one parameter vector per image, into a sampling grid
``(B, H, W, 2)`` for :func:`torch.nn.functional.grid_sample`. As in
:mod:`stn_utils.geometry`, the grid holds for every OUTPUT pixel the INPUT location it
reads, in normalised coordinates, ``x`` first and ``y`` pointing down. From stiff to
flexible:

- ``affine`` (6): ``theta`` of :mod:`stn_utils.geometry`, row-major.
- ``attention`` (3): ``(s, tx, ty)``, a zoom and a shift: the paper's attention model.
- ``projective`` (8): a homography; straight lines stay straight, parallel ones may meet.
- ``tps`` (2K): a thin-plate spline through K control points; bends the image smoothly.

The functions do the work; the classes in :data:`TRANSFORMS` add what a
:class:`~stn_utils.models.SpatialTransformer` needs to build any of them: ``num_params``,
``identity_params()`` and ``grid()``.
"""

from __future__ import annotations

import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .geometry import _check_size, normalized_coordinates

__all__ = [
    "attention_theta", "apply_homography", "projective_grid", "homography_from_points",
    "tps_control_points", "tps_kernel", "tps_system_inverse", "tps_grid",
    "Affine", "Attention", "Projective", "ThinPlateSpline", "TRANSFORMS", "make_transform",
]

MIN_DENOMINATOR = 1e-3


def _check_params(params: Tensor, num_params: int, family: str) -> None:
    # Type and shape only, so that a model's forward pass never waits for the GPU.
    if not isinstance(params, Tensor) or not params.is_floating_point():
        got = f"dtype {params.dtype}" if isinstance(params, Tensor) else f"type {type(params).__name__}"
        raise TypeError(f"{family} params must be a floating-point tensor of shape (B, {num_params}); got {got}.")
    shape = tuple(params.shape)
    if params.dim() == 2 and shape[1] == num_params and shape[0] >= 1:
        return
    if shape == (num_params,):
        hint = "add a batch dimension with params.unsqueeze(0)"
    elif params.dim() > 2 and shape[0] >= 1 and math.prod(shape[1:]) == num_params:
        hint = "flatten each item with params.flatten(1)"
    elif params.dim() >= 1 and shape[0] == 0:
        hint = "the batch is empty; pass at least one parameter vector"
    else:
        hint = f"the {family} family takes {num_params} numbers per image"
    raise ValueError(f"{family} params must have shape (B, {num_params}) with B >= 1; got {shape}: {hint}.")


def _output_points(size, align_corners: bool, dtype, device) -> Tensor:
    """Pixel centres of an ``(H, W)`` output in normalised coordinates: ``(H * W, 2)``, row by row."""
    height, width = _check_size(size)
    x, y = normalized_coordinates(height, width, align_corners=align_corners, dtype=dtype, device=device)
    return torch.stack(torch.meshgrid(x, y, indexing="xy"), dim=-1).reshape(-1, 2)


def _theta_grid(theta: Tensor, size, align_corners: bool) -> Tensor:
    height, width = _check_size(size)
    return F.affine_grid(theta, [theta.shape[0], 1, height, width], align_corners=align_corners)


def attention_theta(params: Tensor) -> Tensor:
    """``(s, tx, ty)`` of shape ``(B, 3)`` -> ``theta = [[s, 0, tx], [0, s, ty]]``, ``(B, 2, 3)``.

    ``s < 1`` zooms in on a window of relative size ``s`` centred at ``(tx, ty)``.
    """
    _check_params(params, 3, "attention")
    s, tx, ty = params.unbind(1)
    zero = torch.zeros_like(s)
    return torch.stack([torch.stack([s, zero, tx], 1), torch.stack([zero, s, ty], 1)], 1)


# --- projective ---------------------------------------------------------------------------

def apply_homography(params: Tensor, points: Tensor, *, min_denominator: float = MIN_DENOMINATOR) -> Tensor:
    """Map ``points (B or 1, N, 2)`` with homographies ``params (B, 8)``; returns ``(B, N, 2)``.

    ``params`` is the 3x3 matrix ``H`` row-major without ``h33``, which is fixed at 1:
    ``x' = (h11 x + h12 y + h13) / (h31 x + h32 y + 1)`` and the same with ``h21, h22, h23``
    for ``y'``. The identity is ``[1, 0, 0, 0, 1, 0, 0, 0]``.

    Where the denominator comes closer to zero than ``min_denominator``, it is held at
    ``+-min_denominator`` with its sign kept. Those points lie on or near the homography's
    horizon, which maps them far outside the image; a localisation net can predict such a
    homography at any step, and the clamp keeps the grid finite and the gradient bounded.
    Everywhere else the result is exact.
    """
    _check_params(params, 8, "projective")
    if not isinstance(points, Tensor) or points.dim() != 3 or points.shape[-1] != 2:
        got = tuple(points.shape) if isinstance(points, Tensor) else type(points).__name__
        raise ValueError(f"points must be a tensor of shape (B, N, 2) or (1, N, 2); got {got}.")
    matrix = torch.cat([params, torch.ones_like(params[:, :1])], dim=1).reshape(-1, 3, 3)
    mapped = torch.cat([points, torch.ones_like(points[..., :1])], dim=-1) @ matrix.mT
    denominator = mapped[..., 2:]
    denominator = torch.where(denominator < 0, denominator.clamp(max=-min_denominator),
                              denominator.clamp(min=min_denominator))
    return mapped[..., :2] / denominator


def projective_grid(params: Tensor, size: Tuple[int, int], *, align_corners: bool,
                    min_denominator: float = MIN_DENOMINATOR) -> Tensor:
    """Sampling grid ``(B, H, W, 2)`` of homographies ``params (B, 8)``; see :func:`apply_homography`."""
    height, width = _check_size(size)
    points = _output_points((height, width), align_corners, params.dtype, params.device)
    mapped = apply_homography(params, points[None], min_denominator=min_denominator)
    return mapped.reshape(-1, height, width, 2)


def homography_from_points(src: Tensor, dst: Tensor) -> Tensor:
    """The homography mapping ``src (B, N, 2)`` onto ``dst (B, N, 2)``, as ``params (B, 8)``.

    Each pair gives two equations linear in the eight unknowns (multiply out the
    denominator: ``h11 x + h12 y + h13 - h31 x x' - h32 y x' = x'``), so four pairs in
    general position (no three on a line) fix the homography exactly; more pairs are
    fitted by least squares. Degenerate point sets have no unique answer and give an
    arbitrary one.
    """
    for name, points in (("src", src), ("dst", dst)):
        if not isinstance(points, Tensor) or not points.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor of shape (B, N, 2).")
    if src.shape != dst.shape or src.dim() != 3 or src.shape[-1] != 2 or src.shape[1] < 4:
        raise ValueError(f"src and dst must share a shape (B, N, 2) with N >= 4 point pairs; "
                         f"got {tuple(src.shape)} and {tuple(dst.shape)}.")
    x, y = src.unbind(-1)
    u, v = dst.unbind(-1)
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rows_u = torch.stack([x, y, one, zero, zero, zero, -x * u, -y * u], dim=-1)
    rows_v = torch.stack([zero, zero, zero, x, y, one, -x * v, -y * v], dim=-1)
    system = torch.cat([rows_u, rows_v], dim=1)
    target = torch.cat([u, v], dim=1).unsqueeze(-1)
    if src.shape[1] == 4:
        return torch.linalg.solve(system, target).squeeze(-1)
    return torch.linalg.lstsq(system, target).solution.squeeze(-1)


# --- thin-plate spline --------------------------------------------------------------------

def tps_control_points(grid_size: int = 4, *, dtype=None, device=None) -> Tensor:
    """A ``grid_size x grid_size`` lattice evenly spaced over ``[-1, 1]^2``: ``(K, 2)``, ``K = grid_size**2``.

    Points run row by row from the top-left corner, ``x`` first: point ``k`` sits in row
    ``k // grid_size`` and column ``k % grid_size``.
    """
    if isinstance(grid_size, bool) or not isinstance(grid_size, int) or grid_size < 2:
        raise ValueError(f"grid_size must be an integer >= 2 (a spline needs points off one line); "
                         f"got {grid_size!r}.")
    side = torch.linspace(-1.0, 1.0, grid_size, dtype=dtype, device=device)
    return torch.stack(torch.meshgrid(side, side, indexing="xy"), dim=-1).reshape(-1, 2)


def tps_kernel(points: Tensor, centres: Tensor) -> Tensor:
    """The thin-plate kernel ``U(r) = r^2 log r^2`` between ``points (N, 2)`` and ``centres (K, 2)``: ``(N, K)``.

    ``U(0) = 0``, its limit; ``xlogy`` gives that without a NaN.
    """
    squared = (points[:, None, :] - centres[None, :, :]).square().sum(-1)
    return torch.xlogy(squared, squared)


def tps_system_inverse(control_points: Tensor) -> Tensor:
    """Inverse of the spline's ``(K + 3, K + 3)`` system for ``control_points (K, 2)``.

    The spline is ``f(p) = sum_k w_k U(|p - c_k|) + a_0 + a_1 x + a_2 y``. Requiring
    ``f(c_k) = target_k`` and that ``w`` carries no affine part gives
    ``[[U, P], [P^T, 0]] @ [w; a] = [targets; 0]`` with ``P = [1, x_k, y_k]``. The matrix
    depends on the control points only, so a model inverts it once.
    """
    count = control_points.shape[0]
    affine = torch.cat([torch.ones_like(control_points[:, :1]), control_points], dim=1)
    system = control_points.new_zeros(count + 3, count + 3)
    system[:count, :count] = tps_kernel(control_points, control_points)
    system[:count, count:] = affine
    system[count:, :count] = affine.T
    return torch.linalg.inv(system)


def tps_grid(params: Tensor, control_points: Tensor, size: Tuple[int, int], *, align_corners: bool,
             system_inverse: Tensor | None = None) -> Tensor:
    """Sampling grid ``(B, H, W, 2)`` of the thin-plate splines through ``control_points (K, 2)``.

    ``control_points`` lie in the OUTPUT image; ``params (B, 2K)`` holds the INPUT
    location each one reads, as ``x_0, y_0, x_1, y_1, ...`` in the points' order. So
    ``control_points.flatten()`` is the identity, and moving all targets by one affine
    map gives exactly that affine grid. ``system_inverse`` is
    :func:`tps_system_inverse` of the points, computed here when not given.
    """
    count = control_points.shape[0]
    _check_params(params, 2 * count, "tps")
    height, width = _check_size(size)
    if system_inverse is None:
        system_inverse = tps_system_inverse(control_points.to(params.dtype))
    points = _output_points((height, width), align_corners, params.dtype, params.device)
    control_points = control_points.to(params)
    basis = torch.cat([tps_kernel(points, control_points), torch.ones_like(points[:, :1]), points], dim=1)
    # The grid is linear in the targets: (pixels, K) weights shared by the whole batch.
    weights = basis @ system_inverse[:, :count].to(params)
    # A spline reproduces affine maps, so weights @ control_points == points. Adding only the
    # displacement keeps the identity exact in float32; the full product is off by ~1e-6.
    moved = points + weights @ (params.reshape(-1, count, 2) - control_points)
    return moved.reshape(-1, height, width, 2)


# --- families -----------------------------------------------------------------------------

class Affine(nn.Module):
    """6 parameters, ``theta`` row-major: ``[a, b, tx, c, d, ty]``; the grid is ``F.affine_grid``'s."""

    num_params = 6

    def identity_params(self, dtype=None, device=None) -> Tensor:
        return torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], dtype=dtype, device=device)

    def grid(self, params: Tensor, size: Tuple[int, int], *, align_corners: bool) -> Tensor:
        _check_params(params, self.num_params, "affine")
        return _theta_grid(params.reshape(-1, 2, 3), size, align_corners)


class Attention(nn.Module):
    """3 parameters ``(s, tx, ty)``: zoom and shift without rotation; see :func:`attention_theta`."""

    num_params = 3

    def identity_params(self, dtype=None, device=None) -> Tensor:
        return torch.tensor([1.0, 0.0, 0.0], dtype=dtype, device=device)

    def grid(self, params: Tensor, size: Tuple[int, int], *, align_corners: bool) -> Tensor:
        return _theta_grid(attention_theta(params), size, align_corners)


class Projective(nn.Module):
    """8 parameters, a homography with ``h33 = 1``; see :func:`apply_homography`."""

    num_params = 8

    def __init__(self, min_denominator: float = MIN_DENOMINATOR):
        super().__init__()
        if not min_denominator > 0:
            raise ValueError(f"min_denominator must be positive; got {min_denominator!r}.")
        self.min_denominator = min_denominator

    def identity_params(self, dtype=None, device=None) -> Tensor:
        return torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0], dtype=dtype, device=device)

    def grid(self, params: Tensor, size: Tuple[int, int], *, align_corners: bool) -> Tensor:
        return projective_grid(params, size, align_corners=align_corners, min_denominator=self.min_denominator)


class ThinPlateSpline(nn.Module):
    """``2 * grid_size**2`` parameters: where each point of a control lattice reads; see :func:`tps_grid`.

    The lattice (:func:`tps_control_points`) and the inverted system are buffers, so they
    follow the model in ``.to(device)``; they are left out of the ``state_dict`` because
    ``grid_size`` determines them.
    """

    def __init__(self, grid_size: int = 4):
        super().__init__()
        points = tps_control_points(grid_size, dtype=torch.float64)
        dtype = torch.get_default_dtype()
        self.grid_size = grid_size
        self.num_params = 2 * points.shape[0]
        self.register_buffer("control_points", points.to(dtype), persistent=False)
        self.register_buffer("system_inverse", tps_system_inverse(points).to(dtype), persistent=False)

    def identity_params(self, dtype=None, device=None) -> Tensor:
        return self.control_points.flatten().to(dtype=dtype, device=device, copy=True)

    def grid(self, params: Tensor, size: Tuple[int, int], *, align_corners: bool) -> Tensor:
        return tps_grid(params, self.control_points, size, align_corners=align_corners,
                        system_inverse=self.system_inverse)

    def extra_repr(self) -> str:
        return f"grid_size={self.grid_size}"


TRANSFORMS = {"affine": Affine, "attention": Attention, "projective": Projective, "tps": ThinPlateSpline}
_FAMILY_API = ("num_params", "identity_params", "grid")


def make_transform(transform="affine", **kwargs):
    """A transform family from a name in :data:`TRANSFORMS` (``kwargs`` go to its class),
    or ``transform`` itself when it already has ``num_params``, ``identity_params()`` and ``grid()``."""
    if isinstance(transform, str):
        if transform not in TRANSFORMS:
            raise ValueError(f"unknown transform {transform!r}; choose one of {sorted(TRANSFORMS)} "
                             f"or pass an object with {', '.join(_FAMILY_API)}.")
        return TRANSFORMS[transform](**kwargs)
    missing = [name for name in _FAMILY_API if not hasattr(transform, name)]
    if missing:
        raise TypeError(f"transform must be a name in {sorted(TRANSFORMS)} or an object with "
                        f"{', '.join(_FAMILY_API)}; {type(transform).__name__} lacks {missing}.")
    if kwargs:
        raise ValueError(f"options {sorted(kwargs)} apply only to a transform given by name; "
                         "set them on the object instead.")
    return transform
