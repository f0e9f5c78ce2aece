"""Tests for stn_utils.geometry: the hand-built pieces are checked against torch's kernels."""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from stn_utils.geometry import (
    affine_grid,
    bilinear_sample,
    check_image,
    check_theta,
    compose_theta,
    identity_theta,
    invert_theta,
    make_theta,
    normalized_coordinates,
    to_homogeneous,
    warp,
)

ALIGN = [True, False]
PADDING = ["zeros", "border"]


def random_theta(batch, generator_seed=0, dtype=torch.float32):
    torch.manual_seed(generator_seed)
    return identity_theta(batch, dtype=dtype) + 0.4 * torch.randn(batch, 2, 3, dtype=dtype)


def linear_image(height, width):
    """A 2-channel image that is an affine function of the pixel position; bilinear
    interpolation reproduces such an image exactly, so warps can be compared
    without interpolation error."""
    rows, cols = torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64)
    y, x = torch.meshgrid(rows, cols, indexing="ij")
    return torch.stack([0.3 * x - 0.7 * y + 2.0, 0.1 * x + 0.5 * y])[None]


# ---------------------------------------------------------------- input checks


def test_check_theta_accepts_valid_batch():
    check_theta(identity_theta(3))


@pytest.mark.parametrize(
    "shape, match",
    [
        ((2, 3), r"\(2, 3\).*unsqueeze\(0\)"),
        ((4, 6), r"\(4, 6\).*reshape\(-1, 2, 3\)"),
        ((2, 3, 3), r"theta\[:, :2, :\]"),
        ((0, 2, 3), r"empty"),
        ((5,), r"\(5,\)"),
    ],
)
def test_check_theta_wrong_shape(shape, match):
    with pytest.raises(ValueError, match=match):
        check_theta(torch.zeros(shape))


def test_check_theta_integer_dtype():
    with pytest.raises(TypeError, match=r"floating-point.*torch.int64.*theta.float\(\)"):
        check_theta(torch.zeros(1, 2, 3, dtype=torch.int64))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_check_theta_non_finite(bad):
    theta = identity_theta(2)
    theta[1, 0, 2] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        check_theta(theta)


def test_check_image_accepts_valid():
    check_image(torch.rand(2, 3, 4, 5))


def test_check_image_errors():
    with pytest.raises(ValueError, match=r"unsqueeze\(0\)"):
        check_image(torch.rand(3, 8, 8))
    with pytest.raises(TypeError, match=r"image.float\(\) / 255"):
        check_image(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(TypeError, match="Tensor"):
        check_image([[1.0]])
    with pytest.raises(ValueError, match="empty batch"):
        check_image(torch.rand(0, 3, 8, 8))
    with pytest.raises(ValueError, match="zero-size"):
        check_image(torch.rand(1, 3, 0, 8))
    with pytest.raises(ValueError, match=r"^patch must be 4-D"):
        check_image(torch.rand(8), name="patch")


# ---------------------------------------------------------------- theta algebra


def test_to_homogeneous():
    theta = random_theta(3)
    h = to_homogeneous(theta)
    assert h.shape == (3, 3, 3)
    assert torch.equal(h[:, :2], theta)
    assert torch.equal(h[:, 2], torch.tensor([[0.0, 0.0, 1.0]] * 3))


def test_identity_theta():
    theta = identity_theta(4, dtype=torch.float64)
    assert theta.shape == (4, 2, 3) and theta.dtype == torch.float64
    assert torch.equal(theta[2], torch.tensor([[1.0, 0, 0], [0, 1.0, 0]], dtype=torch.float64))
    theta[0, 0, 0] = 5.0  # a fresh tensor: editing one item must not leak into another
    assert theta[1, 0, 0] == 1.0
    with pytest.raises(ValueError, match=">= 1"):
        identity_theta(0)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({}, [[1, 0, 0], [0, 1, 0]]),
        ({"rotation": 90.0}, [[0, -1, 0], [1, 0, 0]]),
        ({"rotation": 30.0}, [[math.cos(math.pi / 6), -0.5, 0], [0.5, math.cos(math.pi / 6), 0]]),
        ({"scale_x": 2.0, "scale_y": 0.5}, [[2, 0, 0], [0, 0.5, 0]]),
        ({"shear": 0.5}, [[1, 0.5, 0], [0, 1, 0]]),
        ({"translate_x": 0.25, "translate_y": -0.5}, [[1, 0, 0.25], [0, 1, -0.5]]),
        # T @ R(90) @ Sh(0.5) @ S(2, 3), multiplied out by hand:
        # Sh @ S = [[2, 1.5], [0, 3]]; R(90) @ that = [[0, -3], [2, 1.5]].
        ({"rotation": 90.0, "shear": 0.5, "scale_x": 2.0, "scale_y": 3.0, "translate_x": 0.1, "translate_y": 0.2},
         [[0, -3, 0.1], [2, 1.5, 0.2]]),
    ],
)
def test_make_theta_matches_hand_computed(kwargs, expected):
    theta = make_theta(**kwargs, dtype=torch.float64)
    assert theta.shape == (1, 2, 3)
    torch.testing.assert_close(theta[0], torch.tensor(expected, dtype=torch.float64), atol=1e-12, rtol=0)


def test_make_theta_composition_order():
    params = dict(rotation=37.0, scale_x=1.3, scale_y=0.6, shear=-0.4, translate_x=0.2, translate_y=-0.1)
    h = lambda **kw: to_homogeneous(make_theta(**kw, dtype=torch.float64))  # noqa: E731
    t = h(translate_x=0.2, translate_y=-0.1)
    r, sh, s = h(rotation=37.0), h(shear=-0.4), h(scale_x=1.3, scale_y=0.6)
    torch.testing.assert_close(to_homogeneous(make_theta(**params, dtype=torch.float64)), t @ r @ sh @ s)
    # The order matters, so the check above can fail:
    assert not torch.allclose(t @ s @ sh @ r, t @ r @ sh @ s)


def test_make_theta_broadcast_and_grad():
    angles = torch.tensor([0.0, 45.0, 90.0], requires_grad=True)
    theta = make_theta(rotation=angles, scale_x=torch.tensor([2.0]), translate_y=0.5)
    assert theta.shape == (3, 2, 3) and theta.dtype == torch.float32
    torch.testing.assert_close(theta[2], torch.tensor([[0.0, -1.0, 0.0], [2.0, 0.0, 0.5]]), atol=1e-6, rtol=0)
    theta[:, 0, 0].sum().backward()  # d/da of 2 cos(a), a in degrees
    expected = -2 * torch.sin(torch.deg2rad(angles.detach())) * math.pi / 180
    torch.testing.assert_close(angles.grad, expected)
    a64 = torch.tensor([10.0, -20.0], dtype=torch.float64, requires_grad=True)
    s64 = torch.tensor([1.5, 0.7], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, s: make_theta(rotation=a, scale_y=s, shear=0.3), (a64, s64))


def test_make_theta_errors_and_degenerate_scale():
    with pytest.raises(ValueError, match="NaN or infinite"):
        make_theta(rotation=float("nan"))
    with pytest.raises(ValueError, match="NaN or infinite"):
        make_theta(translate_x=torch.tensor([0.0, float("inf")]))
    with pytest.raises(ValueError, match="common length"):
        make_theta(rotation=torch.zeros(2), shear=torch.zeros(3))
    with pytest.raises(TypeError, match="scale_x"):
        make_theta(scale_x="2")
    # Scale 0 is legal (degenerate) for make_theta, and then not invertible.
    theta = make_theta(scale_x=0.0)
    assert theta[0, 0, 0] == 0.0


def test_make_theta_rotation_direction_on_screen():
    # A bright dot right of centre must appear ABOVE centre (counter-clockwise, y down).
    image = torch.zeros(1, 1, 21, 21)
    image[0, 0, 10, 17] = 1.0
    out = warp(image, make_theta(rotation=90.0), mode="nearest", padding_mode="zeros", align_corners=True)
    row, col = divmod(int(out.flatten().argmax()), 21)
    assert (row, col) == (3, 10)


def test_make_theta_translation_direction_on_screen():
    image = torch.zeros(1, 1, 21, 21)
    image[0, 0, 10, 10] = 1.0  # translate_x = 0.5 moves content left by a quarter of the width
    out = warp(image, make_theta(translate_x=0.5), mode="nearest", padding_mode="zeros", align_corners=True)
    assert divmod(int(out.flatten().argmax()), 21) == (10, 5)


FIRST = dict(scale_x=0.6, scale_y=0.7, translate_x=0.2)
SECOND = dict(rotation=30.0, scale_x=0.6, scale_y=0.6, shear=0.2, translate_y=-0.1)


def test_compose_theta_grid_semantics():
    first = make_theta(**FIRST, dtype=torch.float64)
    second = make_theta(**SECOND, dtype=torch.float64)
    # Point q of the final output reads second(q) from the first result, which reads first(second(q)).
    grid_second = affine_grid(second, (5, 6), align_corners=False)
    through_first = grid_second @ first[0, :, :2].T + first[0, :, 2]
    composed = affine_grid(compose_theta(first, second), (5, 6), align_corners=False)
    torch.testing.assert_close(composed, through_first)
    assert not torch.allclose(affine_grid(compose_theta(second, first), (5, 6), align_corners=False), through_first)


def test_compose_theta_by_warping_twice():
    # Both maps send [-1, 1]^2 inside itself, so every sample point is in the image and
    # bilinear interpolation of a linear image is exact: twice must equal once.
    image = linear_image(16, 20)
    first = make_theta(**FIRST, dtype=torch.float64)
    second = make_theta(**SECOND, dtype=torch.float64)
    kw = dict(padding_mode="border", align_corners=True)
    twice = warp(warp(image, first, **kw), second, **kw)
    once = warp(image, compose_theta(first, second), **kw)
    torch.testing.assert_close(twice, once, atol=1e-9, rtol=0)
    wrong_order = warp(image, compose_theta(second, first), **kw)
    assert (wrong_order - twice).abs().max() > 0.1


def test_compose_theta_broadcast_and_errors():
    one, three = random_theta(1, 1), random_theta(3, 2)
    assert compose_theta(one, three).shape == (3, 2, 3)
    torch.testing.assert_close(compose_theta(three, one)[2], compose_theta(three[2:], one)[0])
    with pytest.raises(ValueError, match="B=2.*B=3"):
        compose_theta(random_theta(2), three)


def test_invert_theta_round_trip():
    theta = random_theta(5, 3, dtype=torch.float64)
    eye = identity_theta(5, dtype=torch.float64)
    inverse = invert_theta(theta)
    torch.testing.assert_close(compose_theta(theta, inverse), eye)
    torch.testing.assert_close(compose_theta(inverse, theta), eye)
    torch.testing.assert_close(invert_theta(inverse), theta)


def test_invert_theta_singular_names_items():
    theta = make_theta(scale_x=torch.tensor([1.0, 0.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match=r"singular.*\[1, 3\]"):
        invert_theta(theta)


# ---------------------------------------------------------------- grids


@pytest.mark.parametrize(
    "align_corners, expected",
    [(True, [-1.0, -1 / 3, 1 / 3, 1.0]), (False, [-0.75, -0.25, 0.25, 0.75])],
)
def test_normalized_coordinates_values(align_corners, expected):
    x, y = normalized_coordinates(2, 4, align_corners=align_corners, dtype=torch.float64)
    torch.testing.assert_close(x, torch.tensor(expected, dtype=torch.float64))
    two = [-1.0, 1.0] if align_corners else [-0.5, 0.5]
    torch.testing.assert_close(y, torch.tensor(two, dtype=torch.float64))
    x1, y1 = normalized_coordinates(1, 3, align_corners=align_corners)
    assert torch.equal(y1, torch.zeros(1)) and x1.shape == (3,)


def test_normalized_coordinates_bad_size():
    with pytest.raises(ValueError, match="integers >= 1"):
        normalized_coordinates(0, 4, align_corners=True)


@pytest.mark.parametrize("align_corners", ALIGN)
def test_affine_grid_identity(align_corners):
    grid = affine_grid(identity_theta(2), (3, 5), align_corners=align_corners)
    x, y = normalized_coordinates(3, 5, align_corners=align_corners)
    assert grid.shape == (2, 3, 5, 2)
    assert torch.equal(grid[1, :, :, 0], x.expand(3, 5))  # x varies along the width
    assert torch.equal(grid[1, :, :, 1], y[:, None].expand(3, 5))


@pytest.mark.parametrize("align_corners", ALIGN)
@pytest.mark.parametrize("size", [(1, 1), (1, 6), (6, 1), (4, 7), (9, 3)])
def test_affine_grid_matches_torch(align_corners, size):
    theta = random_theta(3, 4)
    ours = affine_grid(theta, size, align_corners=align_corners)
    with warnings.catch_warnings():
        # torch warns that unit sizes with align_corners=True are "not an intended use case".
        warnings.simplefilter("ignore", UserWarning)
        theirs = F.affine_grid(theta, (3, 2, *size), align_corners=align_corners)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_affine_grid_bad_size():
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        affine_grid(identity_theta(), (1, 3, 4, 4), align_corners=False)


# ---------------------------------------------------------------- bilinear sampling


def sample_inputs(dtype=torch.float32, seed=0, image_shape=(2, 3, 5, 7), grid_hw=(4, 6)):
    torch.manual_seed(seed)
    image = torch.rand(image_shape, dtype=dtype)
    # Reaching past [-1, 1] exercises the padding.
    grid = torch.rand(image_shape[0], *grid_hw, 2, dtype=dtype) * 2.6 - 1.3
    return image, grid


@pytest.mark.parametrize("align_corners", ALIGN)
@pytest.mark.parametrize("padding_mode", PADDING)
def test_bilinear_sample_values_match_torch(padding_mode, align_corners):
    image, grid = sample_inputs()
    ours = bilinear_sample(image, grid, padding_mode=padding_mode, align_corners=align_corners)
    theirs = F.grid_sample(image, grid, mode="bilinear", padding_mode=padding_mode, align_corners=align_corners)
    assert ours.shape == (2, 3, 4, 6)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_bilinear_sample_non_contiguous_inputs():
    image, grid = sample_inputs()
    image_nc = image.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # channels-last strides
    grid_nc = grid.transpose(1, 2).contiguous().transpose(1, 2)
    assert not image_nc.is_contiguous() and not grid_nc.is_contiguous()
    ours = bilinear_sample(image_nc, grid_nc, padding_mode="zeros", align_corners=False)
    theirs = F.grid_sample(image, grid, padding_mode="zeros", align_corners=False)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def grads(fn, image, grid, weight):
    image = image.clone().requires_grad_(True)
    grid = grid.clone().requires_grad_(True)
    (fn(image, grid) * weight).sum().backward()
    return image.grad, grid.grad


@pytest.mark.parametrize("align_corners", ALIGN)
@pytest.mark.parametrize("padding_mode", PADDING)
def test_bilinear_sample_gradients_match_torch(padding_mode, align_corners):
    image, grid = sample_inputs(seed=1)
    weight = torch.randn(2, 3, 4, 6)
    kw = dict(padding_mode=padding_mode, align_corners=align_corners)
    ours = grads(lambda i, g: bilinear_sample(i, g, **kw), image, grid, weight)
    theirs = grads(lambda i, g: F.grid_sample(i, g, mode="bilinear", **kw), image, grid, weight)
    assert ours[1].abs().sum() > 0  # the grid gradient is not trivially zero
    torch.testing.assert_close(ours[0], theirs[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ours[1], theirs[1], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("padding_mode", PADDING)
def test_bilinear_sample_gradients_on_pixel_centres(padding_mode):
    # The identity grid hits pixel centres and the border exactly: the edge cases of
    # floor() and of the border clamp, where torch's gradient conventions show.
    image = torch.rand(1, 2, 4, 5, dtype=torch.float64)
    grid = affine_grid(identity_theta(1, dtype=torch.float64), (4, 5), align_corners=True)
    weight = torch.randn(1, 2, 4, 5, dtype=torch.float64)
    kw = dict(padding_mode=padding_mode, align_corners=True)
    ours = grads(lambda i, g: bilinear_sample(i, g, **kw), image, grid, weight)
    theirs = grads(lambda i, g: F.grid_sample(i, g, mode="bilinear", **kw), image, grid, weight)
    torch.testing.assert_close(ours[0], theirs[0])
    torch.testing.assert_close(ours[1], theirs[1])


@pytest.mark.parametrize("align_corners", ALIGN)
@pytest.mark.parametrize("padding_mode", PADDING)
def test_bilinear_sample_gradcheck(padding_mode, align_corners):
    image, grid = sample_inputs(torch.float64, seed=2, image_shape=(1, 2, 3, 4), grid_hw=(3, 3))
    image.requires_grad_(True)
    grid.requires_grad_(True)
    fn = lambda i, g: bilinear_sample(i, g, padding_mode=padding_mode, align_corners=align_corners)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (image, grid))


def test_bilinear_sample_errors():
    image, grid = sample_inputs()
    with pytest.raises(ValueError, match=r"'zeros', 'border'.*'reflection'"):
        bilinear_sample(image, grid, padding_mode="reflection", align_corners=False)
    with pytest.raises(ValueError, match=r"\(B, H, W, 2\).*\(2, 4, 6, 3\)"):
        bilinear_sample(image, torch.zeros(2, 4, 6, 3), align_corners=False)
    with pytest.raises(ValueError, match=r"\(B, H, W, 2\)"):
        bilinear_sample(image, torch.zeros(4, 6, 2), align_corners=False)
    with pytest.raises(ValueError, match="batch size 1 does not match image batch size 2"):
        bilinear_sample(image, grid[:1], align_corners=False)
    with pytest.raises(TypeError, match="grid dtype torch.float64"):
        bilinear_sample(image, grid.double(), align_corners=False)
    with pytest.raises(TypeError, match="255"):
        bilinear_sample((image * 255).to(torch.uint8), grid, align_corners=False)


# ---------------------------------------------------------------- warp


@pytest.mark.parametrize("align_corners", ALIGN)
def test_warp_identity_reproduces_image(align_corners):
    torch.manual_seed(5)
    image = torch.rand(2, 3, 9, 11)
    out = warp(image, identity_theta(1), align_corners=align_corners)
    torch.testing.assert_close(out, image, atol=1e-5, rtol=0)
    # And a real warp does change the image, so the comparison above has teeth.
    assert (warp(image, make_theta(rotation=10.0)) - image).abs().max() > 0.1


@pytest.mark.parametrize(
    "mode, padding_mode, align_corners",
    [("bilinear", "border", False), ("bilinear", "zeros", True), ("nearest", "zeros", False),
     ("bicubic", "reflection", True), ("bilinear", "reflection", False)],
)
def test_warp_matches_torch(mode, padding_mode, align_corners):
    torch.manual_seed(6)
    image, theta = torch.rand(3, 2, 8, 10), random_theta(3, 6)
    out = warp(image, theta, (5, 7), mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    grid = F.affine_grid(theta, (3, 2, 5, 7), align_corners=align_corners)
    expected = F.grid_sample(image, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    assert out.shape == (3, 2, 5, 7)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("align_corners", ALIGN)
def test_warp_unit_output_size_is_quiet_and_matches_torch(align_corners):
    torch.manual_seed(9)
    image, theta = torch.rand(2, 1, 6, 8), random_theta(2, 9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = warp(image, theta, (1, 5), align_corners=align_corners)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        grid = F.affine_grid(theta, (2, 1, 1, 5), align_corners=align_corners)
    expected = F.grid_sample(image, grid, padding_mode="border", align_corners=align_corners)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_warp_matches_hand_built_path():
    torch.manual_seed(7)
    image, theta = torch.rand(2, 3, 8, 6), random_theta(2, 7)
    for align_corners in ALIGN:
        grid = affine_grid(theta, (8, 6), align_corners=align_corners)
        by_hand = bilinear_sample(image, grid, padding_mode="border", align_corners=align_corners)
        torch.testing.assert_close(warp(image, theta, align_corners=align_corners), by_hand, atol=1e-5, rtol=0)


def test_warp_broadcasts_theta_and_passes_gradient():
    torch.manual_seed(8)
    image = torch.rand(4, 1, 6, 6)
    theta = random_theta(1, 8).requires_grad_(True)
    out = warp(image, theta)
    torch.testing.assert_close(out, warp(image, theta.detach().repeat(4, 1, 1)))
    out.sum().backward()
    assert theta.grad is not None and theta.grad.abs().sum() > 0


def test_warp_errors():
    image = torch.rand(3, 1, 6, 6)
    with pytest.raises(ValueError, match="theta batch size 2 must be 1 or match the image batch size 3"):
        warp(image, identity_theta(2))
    with pytest.raises(ValueError, match="mode must be one of"):
        warp(image, identity_theta(), mode="area")
    with pytest.raises(ValueError, match=r"padding_mode must be one of \('zeros', 'border', 'reflection'\)"):
        warp(image, identity_theta(), padding_mode="wrap")
    with pytest.raises(ValueError, match="output_size"):
        warp(image, identity_theta(), output_size=(0, 4))
    with pytest.raises(ValueError, match=r"unsqueeze\(0\)"):
        warp(image[0], identity_theta())
    with pytest.raises(ValueError, match=r"unsqueeze\(0\)"):
        warp(image, torch.eye(2, 3))
