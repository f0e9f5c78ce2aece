"""Tests for stn_utils.models: the spatial transformer, the classifiers and the counters."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stn_utils.models import (
    MODELS,
    Classifier,
    LocalizationNet,
    Normalize,
    PatchWhitening,
    SpatialTransformer,
    build_model,
    cifar_body,
    count_macs,
    count_parameters,
    fit_whitening,
    mnist_body,
)

IDENTITY = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def images(b=2, c=3, h=16, w=16):
    return torch.rand(b, c, h, w)


# --- LocalizationNet ------------------------------------------------------------------------

def test_localization_output_shape():
    net = LocalizationNet(3, features=20)
    assert net(images(4, 3, 16, 16)).shape == (4, 20)
    assert net(images(2, 3, 37, 23)).shape == (2, 20)  # any input size works
    assert LocalizationNet(1, input_size=8, widths=(4, 8))(images(3, 1, 28, 28)).shape == (3, 32)


def test_localization_downsamples_by_average_pooling():
    net = LocalizationNet(3, input_size=16)
    x = images(2, 3, 64, 64)
    assert torch.allclose(net(x), net(F.avg_pool2d(x, 4)), atol=1e-6)
    assert net.fc[0].in_features == 32 * 4 * 4  # 16 -> 8 -> 4 after two max-pools


def test_localization_input_size_too_small():
    with pytest.raises(ValueError, match="input_size must be at least 4 pixels; got 3"):
        LocalizationNet(3, input_size=3)


# --- SpatialTransformer ---------------------------------------------------------------------

def test_stn_identity_at_init():
    stn = SpatialTransformer(3)
    assert stn.padding_mode == "border" and stn.align_corners is False
    x = images(3, 3, 20, 24)
    assert torch.allclose(stn(x), x, atol=1e-5)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
def test_stn_identity_all_settings(align_corners, padding_mode):
    stn = SpatialTransformer(1, padding_mode=padding_mode, align_corners=align_corners)
    x = images(2, 1, 9, 9)
    assert torch.allclose(stn(x), x, atol=1e-5)


def test_predict_theta_shape_and_identity_value():
    stn = SpatialTransformer(3)
    theta = stn.predict_theta(images(5))
    assert theta.shape == (5, 2, 3)
    assert torch.allclose(theta, IDENTITY.expand(5, 2, 3), atol=0)


def test_stn_output_size():
    stn = SpatialTransformer(3, output_size=(8, 8))
    x = images(2, 3, 16, 16)
    out = stn(x)
    assert out.shape == (2, 3, 8, 8)
    # the identity sampled at half resolution reads between each 2x2 block: an average pool
    assert torch.allclose(out, F.avg_pool2d(x, 2), atol=1e-5)
    assert SpatialTransformer(3, output_size=[5, 7])(x).shape == (2, 3, 5, 7)


def test_stn_on_feature_maps():
    stn = SpatialTransformer(16)
    x = torch.randn(2, 16, 10, 10)
    out, theta = stn(x, return_theta=True)
    assert out.shape == x.shape and theta.shape == (2, 2, 3)
    assert torch.allclose(out, x, atol=1e-5)


def test_stn_return_theta_matches_transform():
    stn = SpatialTransformer(3)
    with torch.no_grad():
        stn.to_theta.weight.normal_(0, 0.1)
    x = images(2)
    out, theta = stn(x, return_theta=True)
    assert torch.allclose(out, stn(x)) and torch.allclose(out, stn.transform(x, theta))
    assert not torch.allclose(out, x, atol=1e-3)
    assert isinstance(stn(x), torch.Tensor)


def test_stn_transform_follows_theta():
    stn = SpatialTransformer(1, padding_mode="zeros")
    x = torch.zeros(1, 1, 4, 4)
    x[..., 1, 2] = 1
    shift = torch.tensor([[[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]]])  # read half a width to the right
    out = stn.transform(x, shift)
    assert out[0, 0, 1, 1] == pytest.approx(1.0) and out.sum() == pytest.approx(1.0)


def test_stn_learns_from_identity_start():
    stn = SpatialTransformer(3)
    x = images(4)
    target = torch.roll(x, 1, dims=-1)
    F.mse_loss(stn(x), target).backward()
    assert stn.to_theta.weight.grad.abs().sum() > 0
    assert stn.to_theta.bias.grad.abs().sum() > 0


@pytest.mark.parametrize("shape,match", [
    ((3, 16, 16), r"expects input \(B, 3, H, W\); got shape \(3, 16, 16\)"),
    ((2, 1, 16, 16), r"expects input \(B, 3, H, W\); got shape \(2, 1, 16, 16\)"),
    ((1, 2, 3, 16, 16), r"got shape \(1, 2, 3, 16, 16\)"),
    ((0, 3, 16, 16), r"empty batch"),
])
def test_stn_bad_input(shape, match):
    stn = SpatialTransformer(3)
    with pytest.raises(ValueError, match=match):
        stn(torch.zeros(shape))
    with pytest.raises(ValueError, match=match):
        stn.predict_theta(torch.zeros(shape))


def test_stn_bad_padding_mode():
    with pytest.raises(ValueError, match=r"padding_mode must be 'zeros', 'border' or 'reflection'; got 'wrap'"):
        SpatialTransformer(3, padding_mode="wrap")


def test_stn_custom_localization():
    pooled = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten())  # (B, 3 * 2 * 2) features, no .features
    with pytest.raises(ValueError, match="pass `features`"):
        SpatialTransformer(3, localization=pooled)
    stn = SpatialTransformer(3, localization=pooled, features=12)
    assert stn.to_theta.in_features == 12
    x = images(2)
    assert torch.allclose(stn(x), x, atol=1e-5)


def test_reset_to_identity():
    stn = SpatialTransformer(3)
    x = images(2)
    with torch.no_grad():
        stn.to_theta.weight.normal_()
        stn.to_theta.bias.normal_()
    assert not torch.allclose(stn.predict_theta(x), IDENTITY.expand(2, 2, 3), atol=1e-3)
    stn.reset_to_identity()
    assert torch.equal(stn.to_theta.weight, torch.zeros(6, 32))
    assert torch.equal(stn.predict_theta(x), IDENTITY.expand(2, 2, 3))


# --- transform families ---------------------------------------------------------------------

FAMILIES = {"affine": 6, "attention": 3, "projective": 8, "tps": 32}


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("transform", sorted(FAMILIES))
def test_stn_family_identity_at_init(transform, align_corners):
    stn = SpatialTransformer(1, transform=transform, align_corners=align_corners, padding_mode="zeros")
    assert stn.to_theta.out_features == FAMILIES[transform]
    x = images(2, 1, 28, 28)
    out, params = stn(x, return_theta=True)
    assert torch.allclose(out, x, atol=1e-5)
    expected = (2, 2, 3) if transform == "affine" else (2, FAMILIES[transform])
    assert params.shape == expected  # predict_theta keeps theta's shape for affine only
    assert torch.equal(params.flatten(1)[0], stn.family.identity_params())


@pytest.mark.parametrize("transform", sorted(FAMILIES))
def test_stn_family_gradients_reach_the_localization_net(transform):
    stn = SpatialTransformer(3, transform=transform)
    x = images(2)
    F.mse_loss(stn(x), torch.roll(x, 1, dims=-1)).backward()
    assert stn.to_theta.weight.grad.abs().sum() > 0  # at the identity start: the last layer learns
    stn.zero_grad()
    with torch.no_grad():
        stn.to_theta.weight.normal_(0, 0.01)
    F.mse_loss(stn(x), torch.roll(x, 1, dims=-1)).backward()
    assert stn.localization.convs[0].weight.grad.abs().sum() > 0


def test_stn_family_object_and_reset():
    from stn_utils.transforms import ThinPlateSpline

    stn = SpatialTransformer(3, transform=ThinPlateSpline(grid_size=3))
    assert stn.to_theta.out_features == 18
    assert set(stn.state_dict()) == set(SpatialTransformer(3).state_dict())  # checkpoints stay compatible
    with torch.no_grad():
        stn.to_theta.bias.normal_()
    stn.reset_to_identity()
    assert torch.equal(stn.to_theta.bias, ThinPlateSpline(grid_size=3).identity_params())
    stn.double()  # the spline's buffers move with the module
    assert stn.family.system_inverse.dtype == torch.float64
    x = images(2).double()
    assert torch.allclose(stn(x), x, atol=1e-5)
    with pytest.raises(ValueError, match=r"unknown transform 'spline'; choose one of"):
        SpatialTransformer(3, transform="spline")


def test_stn_tps_follows_params():
    stn = SpatialTransformer(1, transform="tps", padding_mode="zeros")
    x = torch.zeros(1, 1, 8, 8)
    x[..., 3, 5] = 1
    shift = stn.family.identity_params()[None] + torch.tensor([0.25, 0.0]).repeat(16)  # every point reads 1 px right
    out = stn.transform(x, shift)
    assert out[0, 0, 3, 4] == pytest.approx(1.0, abs=1e-5) and out.sum() == pytest.approx(1.0, abs=1e-5)


def test_build_model_with_transform():
    model = build_model("mnist_stn", transform="tps", input_size=60)
    assert model.stn.to_theta.out_features == 32
    assert model(torch.rand(2, 1, 60, 60)).shape == (2, 10)
    assert build_model("cifar_stn", transform="attention").stn.to_theta.out_features == 3
    assert build_model("mnist_stn").stn.to_theta.out_features == 6


# --- Normalize and Classifier ---------------------------------------------------------------

def test_normalize():
    norm = Normalize((0.5, 0.25, 0.0), (0.5, 0.25, 2.0))
    x = torch.ones(2, 3, 4, 4)
    out = norm(x)
    assert out.shape == x.shape
    assert torch.allclose(out[:, 0], torch.full((2, 4, 4), 1.0))
    assert torch.allclose(out[:, 1], torch.full((2, 4, 4), 3.0))
    assert torch.allclose(out[:, 2], torch.full((2, 4, 4), 0.5))
    assert {name for name, _ in norm.named_buffers()} == {"mean", "std"}
    assert count_parameters(norm) == 0


def zoom_out_stn():
    stn = SpatialTransformer(1, padding_mode="zeros")
    with torch.no_grad():
        stn.to_theta.bias.copy_(torch.tensor([2.0, 0.0, 0.0, 0.0, 2.0, 0.0]))  # reads outside the input
    return stn


def test_classifier_without_stn():
    model = Classifier(nn.Flatten(), (0.5,), (0.25,))
    x = images(2, 1, 4, 4)
    assert model.stn is None
    assert torch.allclose(model(x), ((x - 0.5) / 0.25).flatten(1))


def test_classifier_normalizes_after_the_stn():
    stn = zoom_out_stn()
    model = Classifier(nn.Flatten(), (0.5,), (0.25,), stn=stn)
    x = images(2, 1, 8, 8)
    expected = ((stn(x) - 0.5) / 0.25).flatten(1)
    assert torch.allclose(model(x), expected)
    assert model(x).min().item() == pytest.approx(-2.0)  # the zero padding, normalised: (0 - 0.5) / 0.25


def test_classifier_normalize_first():
    stn = zoom_out_stn()
    model = Classifier(nn.Flatten(), (0.5,), (0.25,), stn=stn, normalize_first=True)
    x = images(2, 1, 8, 8)
    assert torch.allclose(model(x), stn((x - 0.5) / 0.25).flatten(1))
    assert not torch.allclose(model(x), Classifier(nn.Flatten(), (0.5,), (0.25,), stn=stn)(x))


# --- bodies ---------------------------------------------------------------------------------

def test_cifar_body_shape_and_cost():
    body = cifar_body()
    assert body(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert body(torch.randn(2, 3, 16, 16)).shape == (2, 10)  # any size down to 9 pixels (e.g. progressive resizing)
    assert cifar_body(widths=(8, 8, 16), classes=4)(torch.randn(1, 3, 32, 32)).shape == (1, 4)
    assert 117e6 < count_macs(body, (3, 32, 32)) < 119e6  # "about 118 M multiply-adds"
    assert isinstance(body[0], PatchWhitening)


def test_a_classifier_predicts_theta_from_what_its_transformer_sees():
    images = torch.rand(4, 3, 32, 32)
    course, tutorial = build_model("cifar_stn"), build_model("tutorial_stn")
    for model in (course, tutorial):
        with torch.no_grad():
            model.stn.to_theta.weight.normal_(std=0.1)   # theta depends on the image
    assert torch.equal(course.predict_theta(images), course.stn.predict_theta(images))
    assert torch.equal(tutorial.predict_theta(images), tutorial.stn.predict_theta(tutorial.normalize(images)))
    assert not torch.allclose(tutorial.predict_theta(images), tutorial.stn.predict_theta(images))
    with pytest.raises(ValueError, match="has no single SpatialTransformer"):
        build_model("cifar_cnn").predict_theta(images)


def test_cifar_body_pools_round_down_unless_asked_to_round_up():
    def pooled_sides(body):
        sides = []
        hooks = [m.register_forward_hook(lambda m, i, out: sides.append(out.shape[-1]))
                 for m in body.modules() if isinstance(m, torch.nn.MaxPool2d)]
        body(torch.randn(1, 3, 32, 32))
        for hook in hooks:
            hook.remove()
        return sides

    assert pooled_sides(cifar_body(widths=(8, 8, 16))) == [15, 7, 3]               # drops a row and column each time
    assert pooled_sides(cifar_body(widths=(8, 8, 16), ceil_pool=True)) == [16, 8, 4]  # drops none
    assert 145e6 < count_macs(cifar_body(ceil_pool=True), (3, 32, 32)) < 146.5e6    # "23 % more multiply-adds"
    stn = build_model("cifar_stn", ceil_pool=True)
    assert pooled_sides(stn.body) == [16, 8, 4] and stn.build_kwargs == {"ceil_pool": True}


def test_cifar_body_starts_near_the_identity_with_shift_only_norms():
    body = cifar_body(widths=(32, 64, 64))
    convs = [m for m in body if isinstance(m, nn.Conv2d)]
    x = torch.randn(2, 24, 6, 6)
    assert torch.equal(convs[0](x)[:, :24], x)  # 24 -> 32: the first 24 filters pass their channel through
    assert not torch.equal(convs[0].weight[24:], torch.zeros_like(convs[0].weight[24:]))  # the rest: random
    y = torch.randn(2, 64, 5, 5)
    assert torch.allclose(convs[-1](y), y)  # 64 -> 64: all identity
    norms = [m for m in body if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 6
    assert all(not n.weight.requires_grad and n.bias.requires_grad and n.momentum == 0.4 for n in norms)


def test_cifar_body_scales_its_logits():
    torch.manual_seed(0)
    scaled = cifar_body(widths=(8, 8, 16))
    torch.manual_seed(0)
    unscaled = cifar_body(widths=(8, 8, 16), logit_scale=1.0)
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(scaled.eval()(x) * 9, unscaled.eval()(x), atol=1e-5)
    assert repr(scaled[-1]) == "Scale(factor=0.111111)"


def correlated_images(n=64, side=12, seed=0):
    """Smooth, correlated colour images: neighbouring pixels and the channels move together."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 1, side // 2, side // 2, generator=g)
    base = F.interpolate(base, size=(side, side), mode="bilinear", align_corners=False)
    return torch.cat([base, 0.8 * base + 0.2 * torch.rand(n, 1, side, side, generator=g),
                      torch.rand(n, 1, side, side, generator=g)], 1)


def test_patch_whitening_decorrelates_patches():
    x = correlated_images()
    layer = PatchWhitening(3, eps=0.0).fit(x)
    assert bool(layer.fitted)
    out = layer(x)
    assert out.shape == (64, 24, 11, 11)
    half = out[:, :12].permute(0, 2, 3, 1).flatten(0, 2).double()
    assert torch.allclose(torch.cov(half.T), torch.eye(12, dtype=torch.float64), atol=1e-3)
    assert torch.equal(layer.conv.weight[12:], -layer.conv.weight[:12])  # each filter with its sign flipped
    # the input itself was strongly correlated
    raw = x.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).flatten(3).flatten(0, 2).double()
    assert not torch.allclose(torch.cov(raw.T) / torch.cov(raw.T).diagonal().mean(),
                              torch.eye(12, dtype=torch.float64), atol=0.1)


def test_patch_whitening_weights_are_frozen_bias_trains():
    layer = PatchWhitening(3)
    assert not layer.conv.weight.requires_grad and layer.conv.bias.requires_grad
    assert count_parameters(layer) == 24
    assert not bool(layer.fitted)


@pytest.mark.parametrize("bad", [torch.rand(4, 1, 8, 8), torch.rand(4, 3, 1, 8), torch.rand(3, 8, 8)])
def test_patch_whitening_fit_bad_input(bad):
    with pytest.raises(ValueError, match="PatchWhitening.fit expects images"):
        PatchWhitening(3).fit(bad)


def test_patch_whitening_fit_too_few_patches():
    with pytest.raises(ValueError, match="needs at least 24 patches"):
        PatchWhitening(3).fit(torch.rand(1, 3, 3, 3))


def test_fit_whitening_sees_the_normalised_images_after_the_stn():
    model = build_model("cifar_stn")
    x = correlated_images(32, 16)
    assert fit_whitening(model, x) == 1
    expected = PatchWhitening(3).fit(model.normalize(model.stn(x)))
    assert torch.allclose(model.body[0].conv.weight, expected.conv.weight, atol=1e-5)
    assert model.training  # mode restored
    # a fitted layer is kept, unless asked to refit
    assert fit_whitening(model, correlated_images(32, 16, seed=1)) == 0
    assert torch.allclose(model.body[0].conv.weight, expected.conv.weight, atol=1e-5)
    assert fit_whitening(model, correlated_images(32, 16, seed=1), refit=True) == 1
    assert not torch.allclose(model.body[0].conv.weight, expected.conv.weight, atol=1e-3)
    assert fit_whitening(build_model("mnist_cnn"), torch.rand(2, 1, 28, 28)) == 0


def test_cifar_stn_localisation_is_cheap():
    model = build_model("cifar_stn")
    assert model.stn.localization.input_size == 8
    assert count_macs(model.stn, (3, 32, 32)) < 0.01 * count_macs(model, (3, 32, 32))
    assert build_model("cifar_stn", localization_size=16).stn.localization.input_size == 16


@pytest.mark.parametrize("downsample", ["maxpool", "stride"])
@pytest.mark.parametrize("size", [28, 40, 60])
def test_mnist_body_shapes(size, downsample):
    body = mnist_body(input_size=size, downsample=downsample)
    assert body(torch.randn(2, 1, size, size)).shape == (2, 10)
    linear = [m for m in body if isinstance(m, nn.Linear)][0]
    assert linear.in_features == 32 * (size // 4) ** 2


def test_mnist_body_stride_downsampling():
    strided = mnist_body(downsample="stride")
    pooled = mnist_body(downsample="maxpool")
    assert not any(isinstance(m, nn.MaxPool2d) for m in strided)
    assert [m.stride for m in strided if isinstance(m, nn.Conv2d)] == [(2, 2), (2, 2)]
    assert sum(isinstance(m, nn.MaxPool2d) for m in pooled) == 2
    assert [m.stride for m in pooled if isinstance(m, nn.Conv2d)] == [(1, 1), (1, 1)]
    assert mnist_body(in_channels=3, classes=5, widths=(4, 8), hidden=16)(torch.randn(1, 3, 28, 28)).shape == (1, 5)


@pytest.mark.parametrize("size", [8, 28, 30, 42, 60])
@pytest.mark.parametrize("downsample", ["maxpool", "stride"])
def test_mnist_body_takes_any_input_size(size, downsample):
    assert mnist_body(input_size=size, downsample=downsample)(torch.randn(2, 1, size, size)).shape == (2, 10)


def test_mnist_stn_samples_a_smaller_window_for_its_classifier():
    model = build_model("mnist_stn", transform="tps", input_size=60, output_size=28, localization_size=32)
    x = torch.rand(3, 1, 60, 60)
    assert model.stn(x).shape == (3, 1, 28, 28)
    assert model(x).shape == (3, 10)
    assert model.stn.localization.input_size == 32


def test_mnist_body_errors():
    for bad in (7, 0):
        with pytest.raises(ValueError, match=f"input_size must be at least 8 pixels; got {bad}"):
            mnist_body(input_size=bad)
    with pytest.raises(ValueError, match="downsample must be 'maxpool' or 'stride'; got 'avgpool'"):
        mnist_body(downsample="avgpool")


# --- build_model ----------------------------------------------------------------------------

INPUTS = {"cifar_cnn": (3, 32, 32), "cifar_stn": (3, 32, 32), "mnist_cnn": (1, 28, 28),
          "mnist_stn": (1, 28, 28), "tutorial_stn": (3, 32, 32),
          "tutorial_mnist_stn": (1, 28, 28), "digit_cnn": (1, 28, 28), "digit_stn": (1, 28, 28),
          "addition_cnn": (2, 42, 42), "addition_stn": (2, 42, 42), "canvas_cnn": (3, 48, 48),
          "canvas_stn": (3, 48, 48)}


def test_every_model_has_an_input_shape_here():
    assert set(INPUTS) == set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_build_model_forward(name):
    model = build_model(name)
    assert isinstance(model, Classifier)
    assert (model.stn is not None) == name.endswith("_stn")
    logits = model(torch.rand(2, *INPUTS[name]))
    classes = 19 if name.startswith("addition") else 10   # the sum of two digits
    assert logits.shape == (2, classes) and torch.isfinite(logits).all()


def test_build_model_kwargs():
    model = build_model("mnist_stn", input_size=60)
    assert model(torch.rand(2, 1, 60, 60)).shape == (2, 10)
    assert build_model("cifar_stn", padding_mode="zeros").stn.padding_mode == "zeros"
    tutorial = build_model("tutorial_stn")
    assert tutorial.normalize_first and tutorial.stn.padding_mode == "zeros"


def test_build_model_unknown_name():
    with pytest.raises(ValueError, match=r"unknown model 'resnet'; choose one of \['addition_cnn'"):
        build_model("resnet")


# --- counting -------------------------------------------------------------------------------

def test_count_parameters():
    layer = nn.Linear(5, 3)
    assert count_parameters(layer) == 5 * 3 + 3
    layer.bias.requires_grad_(False)
    assert count_parameters(layer) == 5 * 3  # trainable ones only
    assert count_parameters(nn.Sequential(nn.Linear(5, 3), nn.Linear(3, 2, bias=False))) == 18 + 6


def test_count_macs_by_hand():
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(),            # 4*5*5 outputs x 2*3*3
                        nn.Conv2d(4, 6, 3, stride=2, groups=2), nn.Flatten(),  # 6*2*2 outputs x 2*3*3
                        nn.Linear(24, 3))                                     # 3 outputs x 24
    expected = 100 * 18 + 24 * 18 + 3 * 24
    net.train()
    assert count_macs(net, (2, 5, 5)) == expected
    assert net.training  # mode restored
    net.eval()
    assert count_macs(net, (2, 5, 5)) == expected and not net.training


def test_tutorial_localization_share():
    model = build_model("tutorial_stn")
    total = count_macs(model, (3, 32, 32))
    localization = count_macs(model.stn.localization, (3, 32, 32))
    body = count_macs(model.body, (3, 32, 32))
    assert localization == 26 * 26 * 64 * 3 * 49 + 9 * 9 * 128 * 64 * 25 + 2048 * 32
    assert total == localization + 32 * 6 + body
    assert 0.7 < localization / total < 0.8


# --- inputs checked where they enter, and what checkpoints need --------------------------------

@pytest.mark.parametrize("name, images, hint", [
    ("cifar_cnn", torch.rand(2, 1, 32, 32), "grey images: repeat the channel with image.expand"),
    ("mnist_cnn", torch.rand(2, 3, 28, 28), "colour images: convert them to grey"),
    ("cifar_stn", torch.rand(2, 32, 32, 3), "channels last? move them with image.permute"),
])
def test_a_model_given_the_wrong_channel_count_says_how_to_fix_it(name, images, hint):
    model = build_model(name)
    with pytest.raises(ValueError, match=f"the input of {name} must have .* channel") as info:
        model(images)
    assert hint in str(info.value)


def test_build_model_remembers_how_it_was_built():
    model = build_model("mnist_stn", transform="tps", input_size=42, output_size=28)
    assert model.name == "mnist_stn"
    assert model.build_kwargs == {"transform": "tps", "input_size": 42, "output_size": 28}
    from stn_utils.transforms import ThinPlateSpline
    assert build_model("mnist_stn", transform=ThinPlateSpline(3)).build_kwargs is None  # not a plain value


def test_prepare_fits_the_whitening_stem_of_a_cifar_model_once():
    from stn_utils.models import PatchWhitening
    model = build_model("cifar_cnn", widths=(8, 8, 8))
    stem = next(m for m in model.modules() if isinstance(m, PatchWhitening))
    assert model.prepare(torch.rand(64, 3, 32, 32)) == 1 and bool(stem.fitted)
    assert model.prepare(torch.rand(64, 3, 32, 32)) == 0
    assert build_model("mnist_cnn").prepare(torch.rand(4, 1, 28, 28)) == 0


def test_digit_models_and_supersampling():
    from stn_utils.models import digit_body
    assert digit_body(input_size=42)(torch.rand(2, 1, 42, 42)).shape == (2, 10)
    model = build_model("digit_stn", input_size=60, output_size=28, localization_size=30)
    assert model.stn.supersample == 2 and model.stn(torch.rand(2, 1, 60, 60)).shape == (2, 1, 28, 28)
    # at the identity, supersampling averages 2x2 samples: a constant image stays constant
    assert torch.allclose(model.stn(torch.full((1, 1, 60, 60), 0.5)), torch.tensor(0.5))
    with pytest.raises(ValueError, match="supersample must be a whole number >= 1; got 0"):
        SpatialTransformer(1, supersample=0)
