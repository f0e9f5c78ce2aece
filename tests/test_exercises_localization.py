"""Tests for the answer checks of notebook 02 (stn_utils.exercises.localization)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stn_utils.exercises import localization as ex
from stn_utils.models import SpatialTransformer

NOT_ANSWERED = "Not answered yet"


# --- check_spatial_transformer (code-writing) ---------------------------------------------

def from_parts(x, stn):
    theta = stn.to_theta(stn.localization(x)).reshape(-1, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=stn.align_corners)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=stn.padding_mode, align_corners=stn.align_corners)


@pytest.mark.parametrize("answer", [from_parts, lambda x, stn: stn.transform(x, stn.predict_theta(x))])
def test_spatial_transformer_accepts_right_functions(answer, capsys):
    assert ex.check_spatial_transformer(answer) is True
    out = capsys.readouterr().out
    assert out.startswith("Correct!") and "gradients with respect to x" in out, out


def test_spatial_transformer_cases_are_varied_and_left_the_identity():
    cases = ex._transformer_cases()
    stns = [case.inputs["stn"] for case in cases]
    assert {stn.padding_mode for stn in stns} == {"border", "zeros"}
    assert {stn.align_corners for stn in stns} == {False, True}
    assert any(case.inputs["x"].shape[-2] != case.inputs["x"].shape[-1] for case in cases)
    assert any(case.inputs["x"].shape[1] == 3 for case in cases)
    for case in cases:
        theta = case.inputs["stn"].predict_theta(case.inputs["x"])
        assert (theta - torch.eye(2, 3)).abs().mean() > 0.05           # not the identity
        assert theta.std(dim=0).mean() > 1e-3                            # a different theta per input
        assert "SpatialTransformer(" in case.describe() and "Sequential" not in case.describe()


def test_spatial_transformer_cases_leave_the_global_random_state_alone():
    state = torch.get_rng_state()
    ex._transformer_cases()
    assert torch.equal(state, torch.get_rng_state())


def detached_theta(x, stn):
    with torch.no_grad():
        theta = stn.to_theta(stn.localization(x)).reshape(-1, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=stn.align_corners)
    return F.grid_sample(x, grid, padding_mode=stn.padding_mode, align_corners=stn.align_corners)


def swapped_size(x, stn):
    theta = stn.to_theta(stn.localization(x)).reshape(-1, 2, 3)
    grid = F.affine_grid(theta, [x.shape[0], x.shape[1], x.shape[3], x.shape[2]], align_corners=stn.align_corners)
    return F.grid_sample(x, grid, padding_mode=stn.padding_mode, align_corners=stn.align_corners)


def by_columns(x, stn):
    theta = stn.to_theta(stn.localization(x)).view(-1, 3, 2).transpose(1, 2)
    grid = F.affine_grid(theta, list(x.shape), align_corners=stn.align_corners)
    return F.grid_sample(x, grid, padding_mode=stn.padding_mode, align_corners=stn.align_corners)


def zeros_padding(x, stn):
    theta = stn.to_theta(stn.localization(x)).reshape(-1, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=stn.align_corners)
    return F.grid_sample(x, grid, align_corners=stn.align_corners)


def defaults_only(x, stn):
    theta = stn.to_theta(stn.localization(x)).reshape(-1, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode=stn.padding_mode, align_corners=False)


@pytest.mark.parametrize("bug, phrases", [
    (lambda x, stn: from_parts(x, stn) * 1.01, ["Values:", "three parts in order"]),
    (by_columns, ["row by row"]),
    (lambda x, stn: x, ["identity theta"]),
    (zeros_padding, ["reads zeros", "padding_mode"]),
    (defaults_only, ["align_corners=True", "BOTH"]),
    (detached_theta, ["Gradient:", "torch.no_grad()"]),
    (swapped_size, ["Shape:", "height before width"]),
    (lambda x, stn: stn.localization(x), ["Shape:"]),
])
def test_spatial_transformer_rejects_typical_bugs_with_a_hint(bug, phrases, capsys):
    assert ex.check_spatial_transformer(bug) is False
    out = capsys.readouterr().out
    assert out.startswith("Not quite.")
    for phrase in phrases:
        assert phrase in out, (phrase, out)


def test_spatial_transformer_stub_is_not_answered_yet(capsys):
    def my_spatial_transformer(x, stn):
        # your code here
        raise NotImplementedError

    assert ex.check_spatial_transformer(my_spatial_transformer) is False
    out = capsys.readouterr().out
    assert out.startswith(NOT_ANSWERED) and "Not quite" not in out


# --- check_identity_bias ------------------------------------------------------------------

@pytest.mark.parametrize("answer", [
    [1, 0, 0, 0, 1, 0],
    (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
    torch.eye(2, 3),
    torch.eye(2, 3).unsqueeze(0),
    torch.eye(2, 3, dtype=torch.float64),
    np.eye(2, 3),
    [[1, 0, 0], [0, 1, 0]],
    [1.0 + 1e-8, 0, 0, 0, 1, 0],
])
def test_identity_bias_right(answer, capsys):
    assert ex.check_identity_bias(answer) is True
    assert "Correct" in capsys.readouterr().out


def test_identity_bias_matches_the_module():
    stn = SpatialTransformer(1)
    assert ex.check_identity_bias(stn.to_theta.bias.detach()) is True


@pytest.mark.parametrize("answer", [
    [0, 0, 0, 0, 0, 0],             # all zeros: everything reads the centre
    [1, 0, 0, 1, 0, 0],             # identity laid out column by column
    [1, 0, 1, 0, 0, 1],             # eye(3, 2) flattened
    [1, 1, 1, 1, 1, 1],
    torch.eye(3),                   # the homogeneous 3x3 form is 9 numbers
    [1, 0, 0, 0, 1],                # five numbers
    [1, 0, 0, 0, 1, 0, 0],          # seven numbers
    [1, 0, 0, 0, 1, float("nan")],
    "1 0 0 0 1 0",
    {"a": 1},
    1.0,
])
def test_identity_bias_wrong(answer, capsys):
    assert ex.check_identity_bias(answer) is False
    assert "Not quite" in capsys.readouterr().out


# --- check_last_layer_parameters ------------------------------------------------------------

@pytest.mark.parametrize("answer", [198, 198.0, np.int64(198), torch.tensor(198)])
def test_last_layer_parameters_right(answer, capsys):
    assert ex.check_last_layer_parameters(answer) is True
    assert "Correct" in capsys.readouterr().out


def test_last_layer_parameters_matches_the_module():
    layer = nn.Linear(32, 6)
    assert ex.check_last_layer_parameters(sum(p.numel() for p in layer.parameters())) is True
    assert ex.LAST_LAYER_PARAMETERS == sum(p.numel() for p in SpatialTransformer(1).to_theta.parameters())


@pytest.mark.parametrize("answer", [192, 38, 6, 199, "198", True, [198], 198.5])
def test_last_layer_parameters_wrong(answer, capsys):
    assert ex.check_last_layer_parameters(answer) is False
    assert "Not quite" in capsys.readouterr().out


def test_last_layer_parameters_weights_only_hint(capsys):
    ex.check_last_layer_parameters(192)
    assert "bias" in capsys.readouterr().out


# --- check_shift_entry ---------------------------------------------------------------------

@pytest.mark.parametrize("answer", ["tx", "TX", " t_x ", "theta[0,2]", "theta[0, 2]", "theta[0][2]",
                                    "[0, 2]", "(0, 2)", (0, 2), [0, 2]])
def test_shift_entry_right(answer, capsys):
    assert ex.check_shift_entry(answer) is True
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("answer", ["ty", "a", "b", "c", "d", "theta[1,2]", (1, 2), (2, 0), "x",
                                    "translate", 2, (True, 2), ""])
def test_shift_entry_wrong(answer, capsys):
    assert ex.check_shift_entry(answer) is False
    assert "Not quite" in capsys.readouterr().out


def test_shift_entry_agrees_with_warp():
    """Raising tx makes the view read further right: the content slides LEFT in the output."""
    from stn_utils.geometry import identity_theta, warp
    image = torch.zeros(1, 1, 8, 8)
    image[..., 4] = 1.0  # a vertical line in column 4
    theta = identity_theta(1)
    theta[0, 0, 2] = 0.25  # a quarter of the half-width: exactly one pixel of 8
    out = warp(image, theta, padding_mode="zeros", align_corners=False)
    assert out[0, 0, :, 3].allclose(torch.ones(8)) and out[0, 0, :, 4].abs().max() < 1e-6


# --- check_feature_stn_shape ---------------------------------------------------------------

@pytest.mark.parametrize("answer", [(8, 16, 7, 7), [8, 16, 7, 7], torch.Size([8, 16, 7, 7]),
                                    (np.int64(8), 16, 7, 7)])
def test_feature_stn_shape_right(answer, capsys):
    assert ex.check_feature_stn_shape(answer) is True
    assert "Correct" in capsys.readouterr().out


def test_feature_stn_shape_matches_the_module():
    stn = SpatialTransformer(16, output_size=(7, 7))
    assert ex.check_feature_stn_shape(stn(torch.rand(8, 16, 14, 14)).shape) is True


@pytest.mark.parametrize("answer", [(8, 16, 14, 14), (8, 1, 7, 7), (8, 7, 7), (16, 7, 7), "(8, 16, 7, 7)",
                                    (8.0, 16.0, 7.0, 7.0), (True, 16, 7, 7), 7])
def test_feature_stn_shape_wrong(answer, capsys):
    assert ex.check_feature_stn_shape(answer) is False
    assert "Not quite" in capsys.readouterr().out


# --- not attempted -------------------------------------------------------------------------

@pytest.mark.parametrize("check", [ex.check_spatial_transformer, ex.check_identity_bias,
                                   ex.check_last_layer_parameters, ex.check_shift_entry, ex.check_feature_stn_shape])
def test_none_is_not_attempted(check, capsys):
    assert check(None) is False
    out = capsys.readouterr().out
    assert NOT_ANSWERED in out and "Correct" not in out and "Not quite" not in out
