"""Tests for the answer checks of notebook 05 (stn_utils.exercises.training)."""

import pytest
import torch
import torch.nn.functional as F

from stn_utils.exercises import training as ex
from stn_utils.models import build_model, count_macs

NOT_ANSWERED = "Not answered yet"


def share(**build_kwargs):
    model = build_model("cifar_stn", **build_kwargs)
    return count_macs(model.stn, (3, 32, 32)) / count_macs(model, (3, 32, 32))


# --- exercise 1: check_full_view_stn_share ---------------------------------------------------------

def test_full_view_stn_share_accepts_the_measured_fraction_only(capsys):
    full_view = share(localization_size=ex.FULL_VIEW_SIZE)
    assert ex.check_full_view_stn_share(full_view)
    assert ex.check_full_view_stn_share(round(full_view, 3))
    assert not ex.check_full_view_stn_share(full_view + 0.01)
    assert not ex.check_full_view_stn_share(0.0)
    assert not ex.check_full_view_stn_share(1.2 * full_view)
    assert not ex.check_full_view_stn_share(100 * full_view)
    assert not ex.check_full_view_stn_share("a lot")
    assert not ex.check_full_view_stn_share(None)
    assert NOT_ANSWERED in capsys.readouterr().out


def test_full_view_stn_share_names_the_thumbnail_model(capsys):
    """The notebook prints the 8x8 thumbnail's share; that is not the answer, and the hint says why."""
    assert not ex.check_full_view_stn_share(share())
    out = capsys.readouterr().out
    assert out.startswith("Not quite.") and "thumbnail" in out and "localization_size=32" in out


def test_the_full_view_costs_more_than_the_thumbnail():
    assert share(localization_size=ex.FULL_VIEW_SIZE) > 5 * share()


# --- exercise 2: check_zoom_factor -------------------------------------------------------------------

def test_zoom_factor_accepts_sqrt_abs_det_and_rejects_near_misses():
    assert ex.check_zoom_factor(lambda theta: theta[:, :, :2].det().abs().sqrt())
    assert ex.check_zoom_factor(ex.zoom_factor)
    assert not ex.check_zoom_factor(lambda theta: theta[:, :, :2].det())          # no sqrt, no abs
    assert not ex.check_zoom_factor(lambda theta: theta[:, 0, 0])                 # ignores rotation
    assert not ex.check_zoom_factor(lambda theta: theta.sum())                    # wrong shape
    assert not ex.check_zoom_factor(lambda theta: 1 / 0)                          # raises
    assert not ex.check_zoom_factor(None)


def test_zoom_factor_check_refuses_a_call_to_the_package_version(capsys):
    def zoom_factor(theta):
        return ex.zoom_factor(theta)

    assert not ex.check_zoom_factor(zoom_factor)
    assert "instead of calling the package's zoom_factor" in capsys.readouterr().out


def test_zoom_factor_is_above_one_when_zooming_out():
    from stn_utils.geometry import make_theta
    theta = make_theta(rotation=torch.tensor([30.0, 0.0]), scale_x=torch.tensor([1.5, 0.5]),
                       scale_y=torch.tensor([1.5, 0.5]))
    assert torch.allclose(ex.zoom_factor(theta), torch.tensor([1.5, 0.5]))


# --- exercise 3: check_stn_cnn_forward (code-writing) ---------------------------------------------

def from_parts(model, images):
    theta = model.stn.predict_theta(images)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    warped = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return model.body(model.normalize(warped))


def sampled(images, theta, **kwargs):
    grid = F.affine_grid(theta, list(images.shape), align_corners=kwargs.pop("grid_align", False))
    return F.grid_sample(images, grid, **{"align_corners": False, **kwargs})


@pytest.mark.parametrize("answer", [
    from_parts,
    lambda model, images: model.body(model.normalize(model.stn.transform(images, model.stn.predict_theta(images)))),
])
def test_stn_cnn_forward_accepts_right_functions(answer, capsys):
    assert ex.check_stn_cnn_forward(answer) is True
    out = capsys.readouterr().out
    assert out.startswith("Correct!") and "gradients with respect to images" in out, out


def test_stn_cnn_forward_cases_zoom_out_and_differ_per_image():
    cases = ex._forward_cases()
    assert any(case.inputs["images"].shape[-2] != case.inputs["images"].shape[-1] for case in cases)
    for case in cases:
        model, images = case.inputs["model"], case.inputs["images"]
        assert not model.training
        with torch.no_grad():
            theta = model.stn.predict_theta(images)
        assert (ex.zoom_factor(theta) > 1.05).all()                 # the padding shows
        assert theta.std(dim=0).mean() > 1e-2                       # a different theta per image
        with torch.no_grad():                                       # the localisation net's input matters
            other = model.stn.predict_theta(model.normalize(images))
        assert (other - theta).abs().max() > 1e-2
        assert "STN-CNN" in case.describe() and "Sequential" not in case.describe()


def test_stn_cnn_forward_cases_leave_the_global_random_state_alone():
    state = torch.get_rng_state()
    ex._forward_cases()
    assert torch.equal(state, torch.get_rng_state())


def normalised_first(model, images, padding_mode):
    x = model.normalize(images)
    return model.body(sampled(x, model.stn.predict_theta(x), padding_mode=padding_mode))


def detached_theta(model, images):
    with torch.no_grad():
        theta = model.stn.predict_theta(images)
    return model.body(model.normalize(sampled(images, theta, padding_mode="border")))


def swapped_size(model, images):
    batch, channels, height, width = images.shape
    theta = model.stn.predict_theta(images)
    grid = F.affine_grid(theta, [batch, channels, width, height], align_corners=False)
    return model.body(model.normalize(F.grid_sample(images, grid, padding_mode="border", align_corners=False)))


@pytest.mark.parametrize("bug, phrases", [
    (lambda model, images: normalised_first(model, images, "zeros"), ["Values:", "PyTorch tutorial"]),
    (lambda model, images: normalised_first(model, images, "border"), ["normalised before the transformer"]),
    (lambda model, images: model.body(model.normalize(
        sampled(images, model.stn.predict_theta(model.normalize(images)), padding_mode="border"))),
     ["normalised before the transformer"]),
    (lambda model, images: model.body(model.normalize(sampled(images, model.stn.predict_theta(images)))),
     ["reads zeros", "border"]),
    (lambda model, images: model.body(sampled(images, model.stn.predict_theta(images), padding_mode="border")),
     ["model.normalize"]),
    (lambda model, images: model.body(model.normalize(model.normalize(
        sampled(images, model.stn.predict_theta(images), padding_mode="border")))), ["normalised twice"]),
    (lambda model, images: model.body(model.normalize(images)), ["skips the transformer"]),
    (lambda model, images: model.body(model.normalize(sampled(
        images, model.stn.predict_theta(images), padding_mode="border", grid_align=True, align_corners=True))),
     ["align_corners=False"]),
    (detached_theta, ["Gradient:", "torch.no_grad()"]),
    (swapped_size, ["height before width"]),
    (lambda model, images: from_parts(model, images) * 1.01, ["Values:", "parts in order"]),
    (lambda model, images: model.stn.predict_theta(images), ["Shape:"]),
    (lambda model, images: model(images), ["raised RuntimeError", "model(images)", "parts"]),
    (lambda model, images: model.body(model.normalize(model.stn(images))), ["model.stn(...)"]),
])
def test_stn_cnn_forward_rejects_typical_bugs_with_a_hint(bug, phrases, capsys):
    assert ex.check_stn_cnn_forward(bug) is False
    out = capsys.readouterr().out
    assert out.startswith("Not quite.")
    for phrase in phrases:
        assert phrase in out, (phrase, out)


def test_stn_cnn_forward_restores_the_models_after_refusing_their_forward(monkeypatch):
    cases = ex._forward_cases()
    monkeypatch.setattr(ex, "_forward_cases", lambda: cases)
    assert not ex.check_stn_cnn_forward(lambda model, images: model(images))
    for case in cases:
        assert "forward" not in vars(case.inputs["model"]) and "forward" not in vars(case.inputs["model"].stn)


def test_stn_cnn_forward_stub_is_not_answered_yet(capsys):
    def my_stn_cnn_forward(model, images):
        # your code here
        raise NotImplementedError

    assert ex.check_stn_cnn_forward(my_stn_cnn_forward) is False
    assert ex.check_stn_cnn_forward(None) is False
    out = capsys.readouterr().out
    assert out.startswith(NOT_ANSWERED) and "`my_stn_cnn_forward`" in out and "Not quite" not in out
