"""Tests for stn_utils.transforms: every family against F.affine_grid where they overlap,
the homography fit, the spline's interpolation properties, and the input checks."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stn_utils.transforms import (
    TRANSFORMS,
    Affine,
    Attention,
    Projective,
    ThinPlateSpline,
    apply_homography,
    attention_theta,
    homography_from_points,
    make_transform,
    projective_grid,
    tps_control_points,
    tps_grid,
    tps_kernel,
)

ALIGN = [False, True]
SIZE = (5, 7)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def reference_grid(theta, size=SIZE, align_corners=False):
    return F.affine_grid(theta, [theta.shape[0], 1, *size], align_corners=align_corners)


def random_theta(batch=3, dtype=torch.float32):
    return torch.eye(2, 3, dtype=dtype) + 0.3 * torch.randn(batch, 2, 3, dtype=dtype)


# --- identity and parity with affine_grid ---------------------------------------------------

@pytest.mark.parametrize("align_corners", ALIGN)
@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_identity_params_give_identity_grid(name, align_corners):
    family = make_transform(name)
    params = family.identity_params().expand(2, -1)
    assert params.shape == (2, family.num_params)
    grid = family.grid(params, SIZE, align_corners=align_corners)
    assert grid.shape == (2, *SIZE, 2)
    identity = reference_grid(torch.eye(2, 3).expand(2, 2, 3), align_corners=align_corners)
    assert torch.allclose(grid, identity, atol=1e-5)
    image = torch.rand(2, 3, *SIZE)
    assert torch.allclose(F.grid_sample(image, grid, align_corners=align_corners), image, atol=1e-5)


@pytest.mark.parametrize("align_corners", ALIGN)
def test_affine_equals_affine_grid_exactly(align_corners):
    theta = random_theta()
    grid = Affine().grid(theta.flatten(1), SIZE, align_corners=align_corners)
    assert torch.equal(grid, reference_grid(theta, align_corners=align_corners))


@pytest.mark.parametrize("align_corners", ALIGN)
def test_attention_equals_its_theta(align_corners):
    params = torch.tensor([[0.5, 0.2, -0.3], [1.5, 0.0, 0.4]])
    theta = torch.tensor([[[0.5, 0.0, 0.2], [0.0, 0.5, -0.3]], [[1.5, 0.0, 0.0], [0.0, 1.5, 0.4]]])
    assert torch.equal(attention_theta(params), theta)
    grid = Attention().grid(params, SIZE, align_corners=align_corners)
    assert torch.equal(grid, reference_grid(theta, align_corners=align_corners))


@pytest.mark.parametrize("align_corners", ALIGN)
def test_projective_without_perspective_is_affine(align_corners):
    theta = random_theta()
    params = torch.cat([theta.flatten(1), torch.zeros(3, 2)], dim=1)
    grid = projective_grid(params, SIZE, align_corners=align_corners)
    assert torch.allclose(grid, reference_grid(theta, align_corners=align_corners), atol=1e-6)


def test_projective_perspective_divides():
    params = torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.5, 0.0]])
    points = torch.tensor([[[1.0, 0.5], [-1.0, -1.0]]])
    expected = torch.tensor([[[1.0 / 1.5, 0.5 / 1.5], [-1.0 / 0.5, -1.0 / 0.5]]])
    assert torch.allclose(apply_homography(params, points), expected)


# --- homographies ---------------------------------------------------------------------------

def test_homography_from_four_points_maps_them_exactly():
    src = torch.tensor([[[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]]]).repeat(3, 1, 1)
    dst = src * torch.tensor([0.8, 0.9]) + 0.15 * torch.randn(3, 4, 2)
    params = homography_from_points(src, dst)
    assert params.shape == (3, 8)
    assert torch.allclose(apply_homography(params, src), dst, atol=1e-5)
    assert not torch.allclose(params[:, 6:], torch.zeros(3, 2), atol=1e-3)  # a real perspective part


def test_homography_from_many_points_recovers_it():
    truth = torch.tensor([[0.9, 0.1, 0.05, -0.2, 1.1, 0.1, 0.2, -0.1]], dtype=torch.float64)
    src = torch.rand(1, 12, 2, dtype=torch.float64) * 2 - 1
    fitted = homography_from_points(src, apply_homography(truth, src))
    assert torch.allclose(fitted, truth, atol=1e-8)


def test_homography_bad_points():
    with pytest.raises(ValueError, match=r"N >= 4.*\(1, 3, 2\)"):
        homography_from_points(torch.zeros(1, 3, 2), torch.zeros(1, 3, 2))
    with pytest.raises(ValueError, match=r"share a shape"):
        homography_from_points(torch.zeros(1, 4, 2), torch.zeros(2, 4, 2))
    with pytest.raises(TypeError, match="floating-point"):
        homography_from_points(torch.zeros(1, 4, 2, dtype=torch.int64), torch.zeros(1, 4, 2))


def test_projective_denominator_near_zero_is_clamped_with_its_sign():
    # h31 = 2: the denominator 2x + 1 is zero on the line x = -0.5, inside the image
    params = torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 2.0, 0.0]])
    x = torch.tensor([-0.5, -0.5 + 1e-5, -0.5 - 1e-5, -0.9, 0.3])
    points = torch.stack([x, torch.full_like(x, 0.25)], dim=-1)[None]
    mapped = apply_homography(params, points, min_denominator=1e-3)
    assert torch.isfinite(mapped).all()
    assert torch.allclose(mapped[0, :3, 0], torch.tensor([-500.0, -500.0, 500.0]), rtol=1e-3)
    exact = points[0, 3:] / (2 * points[0, 3:, :1] + 1)  # far from the horizon: untouched, sign kept
    assert torch.allclose(mapped[0, 3:], exact)
    assert mapped[0, 3, 0] > 0 and mapped[0, 4, 0] > 0
    grid = Projective(min_denominator=1e-3).grid(params, (16, 16), align_corners=True)
    assert torch.isfinite(grid).all() and grid.abs().max() <= 1e3
    with pytest.raises(ValueError, match="min_denominator must be positive"):
        Projective(min_denominator=0.0)


# --- thin-plate spline ----------------------------------------------------------------------

def test_tps_control_points_layout():
    points = tps_control_points(3)
    assert points.shape == (9, 2)
    assert points[0].tolist() == [-1.0, -1.0] and points[1].tolist() == [0.0, -1.0]  # x first, row by row
    assert points[3].tolist() == [-1.0, 0.0] and points[8].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="grid_size must be an integer >= 2"):
        tps_control_points(1)


def test_tps_kernel():
    points = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    kernel = tps_kernel(points, torch.zeros(1, 2))
    assert kernel[0, 0] == 0  # U(0) = 0, not NaN
    assert kernel[1, 0].item() == pytest.approx(25 * torch.log(torch.tensor(25.0)).item())


def test_tps_passes_through_control_points():
    spline = ThinPlateSpline(4)
    params = spline.identity_params()[None] + 0.1 * torch.randn(2, 32)
    # with align_corners=True the pixel centres of a 4x4 output are exactly the lattice
    grid = spline.grid(params, (4, 4), align_corners=True)
    assert torch.allclose(grid.reshape(2, 32), params, atol=1e-5)
    assert not torch.allclose(grid, spline.grid(spline.identity_params()[None], (4, 4), align_corners=True))


@pytest.mark.parametrize("align_corners", ALIGN)
def test_tps_reproduces_affine_motion(align_corners):
    spline = ThinPlateSpline(4)
    theta = random_theta(2)
    moved = spline.control_points @ theta[:, :, :2].mT + theta[:, None, :, 2]
    grid = spline.grid(moved.flatten(1), (9, 11), align_corners=align_corners)
    assert torch.allclose(grid, reference_grid(theta, (9, 11), align_corners), atol=1e-5)


def test_tps_bends_between_control_points():
    spline = ThinPlateSpline(3)
    params = spline.identity_params()
    params[8] += 0.3  # the centre point (index 4) reads further right
    grid = spline.grid(params[None], (9, 9), align_corners=True)
    identity = spline.grid(spline.identity_params()[None], (9, 9), align_corners=True)
    shift = (grid - identity)[0, :, :, 0]
    assert shift[4, 4].item() == pytest.approx(0.3, abs=1e-5)
    assert 0 < shift[4, 2].item() < 0.3 and shift[0, 0].abs().item() < 1e-5  # smooth, pinned corners
    assert torch.allclose((grid - identity)[..., 1], torch.zeros(1, 9, 9), atol=1e-5)


def test_tps_gradcheck():
    points = tps_control_points(2, dtype=torch.float64)
    params = (points.flatten() + 0.1 * torch.randn(8, dtype=torch.float64))[None].requires_grad_()
    assert torch.autograd.gradcheck(lambda p: tps_grid(p, points, (3, 4), align_corners=False), (params,))


def test_projective_gradcheck():
    params = torch.tensor([[1.0, 0.1, 0.0, -0.1, 0.9, 0.1, 0.2, -0.1]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p: projective_grid(p, (3, 4), align_corners=True), (params,))


def test_tps_buffers_follow_dtype_and_stay_out_of_the_state_dict():
    spline = ThinPlateSpline(3)
    assert spline.num_params == 18 and spline.system_inverse.shape == (12, 12)
    assert dict(spline.state_dict()) == {}
    spline.double()
    assert spline.system_inverse.dtype == spline.control_points.dtype == torch.float64
    identity = spline.identity_params()
    identity += 1  # a fresh tensor: editing it leaves the lattice alone
    assert spline.control_points.min() == -1


# --- registry and checks --------------------------------------------------------------------

def test_make_transform():
    assert isinstance(make_transform(), Affine)
    counts = [make_transform(name).num_params for name in ("affine", "attention", "projective", "tps")]
    assert counts == [6, 3, 8, 32]
    assert make_transform("tps", grid_size=3).num_params == 18
    spline = ThinPlateSpline(2)
    assert make_transform(spline) is spline
    with pytest.raises(ValueError, match=r"unknown transform 'thin-plate'; choose one of \['affine', 'attention'"):
        make_transform("thin-plate")
    with pytest.raises(TypeError, match=r"Linear lacks \['num_params', 'identity_params', 'grid'\]"):
        make_transform(nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"options \['grid_size'\] apply only to a transform given by name"):
        make_transform(spline, grid_size=3)


@pytest.mark.parametrize("name, params, match", [
    ("affine", torch.zeros(6), r"\(B, 6\).*got \(6,\).*unsqueeze\(0\)"),
    ("affine", torch.zeros(2, 2, 3), r"got \(2, 2, 3\).*flatten\(1\)"),
    ("projective", torch.zeros(2, 6), r"\(B, 8\).*got \(2, 6\).*takes 8 numbers"),
    ("attention", torch.zeros(0, 3), r"empty"),
    ("tps", torch.zeros(1, 30), r"tps params must have shape \(B, 32\)"),
])
def test_bad_params(name, params, match):
    with pytest.raises(ValueError, match=match):
        make_transform(name).grid(params, SIZE, align_corners=False)


def test_bad_params_type_and_size():
    with pytest.raises(TypeError, match=r"floating-point.*torch.int64"):
        Affine().grid(torch.zeros(1, 6, dtype=torch.int64), SIZE, align_corners=False)
    with pytest.raises(ValueError, match=r"size must be \(H, W\)"):
        ThinPlateSpline().grid(ThinPlateSpline().identity_params()[None], (0, 4), align_corners=False)
