"""Tests for stn_utils.widgets: slider changes reach theta, the warp and the figure."""

import base64
import time

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from stn_utils import geometry, viz, widgets

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def image():
    torch.manual_seed(0)
    return torch.rand(1, 28, 28)


@pytest.fixture
def explorer(image):
    return widgets.ThetaExplorer(image)


def test_starts_at_identity_with_one_static_figure(explorer, image):
    torch.testing.assert_close(explorer.theta, geometry.identity_theta())
    torch.testing.assert_close(explorer.warped, image[None], atol=1e-5, rtol=0)  # identity warp
    assert isinstance(explorer.figure, Figure)
    assert explorer._png.startswith(PNG_MAGIC)
    assert set(explorer.sliders) == {"rotation", "scale_x", "scale_y", "shear", "translate_x", "translate_y"}
    assert set(explorer.raw_sliders) == {"a", "b", "tx", "c", "d", "ty"}
    assert explorer.sliders["rotation"].min == -180 and explorer.sliders["scale_x"].min == pytest.approx(0.2)
    assert plt.get_fignums() == []  # not a pyplot figure, so nothing is shown twice
    assert "ThetaExplorer(image 1x28x28" in repr(explorer)


def test_rotation_slider_updates_theta_warp_and_figure(explorer, image):
    left, right = explorer.figure.axes
    n_lines, before_outline = len(left.lines), explorer._border.get_xydata().copy()
    explorer.sliders["rotation"].value = 30.0
    expected_theta = geometry.make_theta(rotation=30.0)
    torch.testing.assert_close(explorer.theta, expected_theta)
    assert not torch.allclose(explorer.warped, image[None])
    torch.testing.assert_close(explorer.warped, geometry.warp(image[None], expected_theta, padding_mode="zeros"))
    # The same artists were updated, not new ones added.
    assert len(left.lines) == n_lines and len(right.images) == 1
    assert not np.allclose(explorer._border.get_xydata(), before_outline)
    np.testing.assert_allclose(right.images[0].get_array(), viz.to_display(explorer.warped[0]))
    assert "+0.87 -0.50" in explorer.figure.texts[0].get_text()  # cos 30, -sin 30


def test_raw_mode_starts_from_current_theta(explorer):
    explorer.sliders["rotation"].value = -45.0
    explorer.sliders["translate_x"].value = 0.25
    theta = explorer.theta.clone()
    explorer.mode.value = "raw theta"
    for name, (i, j) in widgets.RAW_ENTRIES.items():
        assert explorer.raw_sliders[name].value == pytest.approx(float(theta[0, i, j]), abs=1e-6)
    torch.testing.assert_close(explorer.theta, theta, atol=1e-6, rtol=0)  # switching changes nothing
    assert list(explorer._controls.children) == list(explorer.raw_sliders.values())
    explorer.raw_sliders["ty"].value = -0.5
    assert float(explorer.theta[0, 1, 2]) == pytest.approx(-0.5)
    explorer.mode.value = "parametrised"  # back to the parameters, which were not changed
    torch.testing.assert_close(explorer.theta, theta)


def test_raw_sliders_widen_instead_of_clamping(explorer):
    explorer.sliders["scale_y"].value = 2.0
    explorer.sliders["shear"].value = 1.0
    explorer.sliders["rotation"].value = -45.0  # b = (cos a * shear - sin a) * scale_y ~ 2.83
    theta = explorer.theta.clone()
    assert float(theta[0, 0, 1]) > 2.0
    explorer.mode.value = "raw theta"
    assert explorer.raw_sliders["b"].max >= float(theta[0, 0, 1])
    torch.testing.assert_close(explorer.theta, theta, atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", ["parametrised", "raw theta"])
def test_reset_returns_to_identity(explorer, image, mode):
    explorer.sliders["shear"].value = 0.5
    explorer.mode.value = mode
    explorer.raw_sliders["tx"].value = 0.3
    fig = explorer.reset()
    assert fig is explorer.figure
    torch.testing.assert_close(explorer.theta, geometry.identity_theta())
    torch.testing.assert_close(explorer.warped, image[None], atol=1e-5, rtol=0)
    assert explorer.sliders["shear"].value == 0.0 and explorer.raw_sliders["tx"].value == 0.0
    assert explorer.mode.value == mode


def test_rgb_uint8_with_output_size_and_options():
    rgb = (torch.rand(3, 64, 64) * 255).to(torch.uint8)
    explorer = widgets.ThetaExplorer(rgb[None], output_size=(32, 48), align_corners=True, padding_mode="border")
    explorer.sliders["scale_x"].value = 0.5
    assert explorer.warped.shape == (1, 3, 32, 48)
    expected = geometry.warp(rgb[None].float() / 255, geometry.make_theta(scale_x=0.5), (32, 48),
                             padding_mode="border", align_corners=True)
    torch.testing.assert_close(explorer.warped, expected)
    assert explorer.figure.axes[1].images[0].get_array().shape == (32, 48, 3)


@pytest.mark.parametrize(
    "bad, kwargs, error, match",
    [
        (torch.rand(28, 28), {}, ValueError, "add a channel dimension"),
        (torch.rand(1, 1, 1, 28, 28), {}, ValueError, r"\(C, H, W\) or \(1, C, H, W\)"),
        ("digit.png", {}, TypeError, "torch.Tensor"),
        (torch.rand(2, 1, 28, 28), {}, ValueError, "single image"),
        (torch.rand(1, 8, 8), {"padding_mode": "wrap"}, ValueError, "padding_mode"),
    ],
)
def test_rejects_bad_inputs(bad, kwargs, error, match):
    with pytest.raises(error, match=match):
        widgets.ThetaExplorer(bad, **kwargs)


def test_theta_explorer_displays_widget_with_static_fallback(monkeypatch, image):
    shown = []
    monkeypatch.setattr(widgets, "display", shown.append)
    explorer = widgets.theta_explorer(image, align_corners=True)
    assert isinstance(explorer, widgets.ThetaExplorer) and explorer.align_corners
    (item,) = shown
    bundle = item._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == explorer.widget.model_id
    assert base64.b64decode(bundle["image/png"]).startswith(PNG_MAGIC)
    assert "ThetaExplorer" in bundle["text/plain"]


def test_redraw_timing(explorer, capsys):
    # Reported, not asserted: shared CI machines make timings noisy.
    assert explorer.redraw() is explorer.figure  # also warms up
    times = []
    for k in range(20):
        start = time.perf_counter()
        explorer.sliders["rotation"].value = float(k * 7 - 70)  # one change = exactly one redraw
        times.append(time.perf_counter() - start)
    with capsys.disabled():
        print(f"\nThetaExplorer: mean {1000 * np.mean(times):.1f} ms per slider change / redraw (20 runs, 28x28)")
