"""Tests for stn_utils.viz: shapes of what is drawn, and where the overlay lines land."""

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torchvision.utils import make_grid

from stn_utils import geometry, viz

H, W = 6, 10  # deliberately not square, so a swapped x / y shows up


def history(n=4, offset=0.0):
    return {
        "epoch": list(range(1, n + 1)),
        "train_loss": [2.0 - 0.3 * i + offset for i in range(n)],
        "test_loss": [2.1 - 0.25 * i + offset for i in range(n)],
        "train_acc": [0.2 + 0.15 * i for i in range(n)],
        "test_acc": [0.25 + 0.1 * i for i in range(n)],
        "seconds": [1.0] * n,
    }


@pytest.fixture(autouse=True)
def close_pyplot_figures():
    yield
    plt.close("all")


def test_returned_figures_leave_pyplot_but_axes_figures_stay():
    # A returned Figure is detached from pyplot (shown once, as the cell's value); an Axes'
    # figure stays open so the inline backend shows it at the end of the cell.
    plt.close("all")
    viz.show_images(torch.rand(2, 1, 4, 4))
    viz.plot_history(history())
    viz.plot_theta_distribution(geometry.identity_theta(2))
    assert plt.get_fignums() == []
    ax = viz.plot_curves([1, 2], {"a": [1, 2]}, xlabel="x")
    assert plt.get_fignums() == [ax.figure.number]


# --- to_display -----------------------------------------------------------------------

def test_to_display_grey_rgb_uint8_and_clamp():
    grey = torch.rand(1, H, W)
    assert viz.to_display(grey).shape == (H, W)
    assert viz.to_display(grey[0]).shape == (H, W)
    rgb = torch.rand(3, H, W)
    out = viz.to_display(rgb)
    assert out.shape == (H, W, 3)
    np.testing.assert_allclose(out[..., 1], rgb[1].numpy())
    assert viz.to_display(torch.full((1, 2, 2), 255, dtype=torch.uint8)).max() == pytest.approx(1.0)
    wild = torch.tensor([[[-1.0, 0.5, 2.0]]])
    np.testing.assert_allclose(viz.to_display(wild), [[0.0, 0.5, 1.0]])
    assert wild.min() == -1.0  # clamped for display only


@pytest.mark.parametrize(
    "bad, error, match",
    [
        ("not an image", TypeError, "torch.Tensor"),
        (torch.rand(1, 1, 1, 4, 4), ValueError, r"\(C, H, W\)"),
        (torch.rand(2, 4, 4), ValueError, r"1 \(grey\) or 3 \(RGB\)"),
        (torch.zeros(1, 4, 4, dtype=torch.int64), TypeError, "uint8"),
        (torch.rand(2, 1, 4, 4), ValueError, "single image"),
    ],
)
def test_to_display_rejects_bad_images(bad, error, match):
    with pytest.raises(error, match=match):
        viz.to_display(bad)


# --- show_images / plot_before_after --------------------------------------------------

def test_show_images_has_make_grid_size():
    images = torch.rand(10, 3, 32, 32)
    fig = viz.show_images(images, nrow=4, title="ten")
    assert isinstance(fig, Figure)
    shown = fig.axes[0].images[0].get_array()
    expected = make_grid(images, nrow=4, padding=2, pad_value=1.0)
    assert shown.shape == (3 * 34 + 2, 4 * 34 + 2, 3) == tuple(expected.permute(1, 2, 0).shape)
    np.testing.assert_allclose(shown, expected.permute(1, 2, 0).numpy())
    assert fig.axes[0].get_title() == "ten"


def test_show_images_grey_uint8_with_labels():
    images = (torch.rand(5, 1, 28, 28) * 255).to(torch.uint8)
    fig = viz.show_images(images, nrow=3, labels=torch.tensor([0, 1, 2, 1, 0]), class_names=["cat", "dog", "emu"])
    caption = fig.axes[0].get_xlabel()
    assert caption.splitlines() == ["cat  dog  emu", "dog  cat"]
    assert fig.axes[0].images[0].get_array().max() <= 1.0
    assert viz.show_images(images, labels=[7, 7, 7, 7, 7]).axes[0].get_xlabel() == "7  7  7  7  7"


def test_show_images_draws_into_given_axes_and_checks_labels():
    fig = Figure()
    ax = fig.add_subplot()
    assert viz.show_images(torch.rand(3, 8, 8), ax=ax) is fig  # one (C, H, W) image
    with pytest.raises(ValueError, match="one label per image"):
        viz.show_images(torch.rand(4, 1, 8, 8), labels=[1, 2])
    with pytest.raises(ValueError, match="class_names needs labels"):
        viz.show_images(torch.rand(4, 1, 8, 8), class_names=["a"])
    with pytest.raises(ValueError, match="channel dimension"):
        viz.show_images(torch.rand(8, 8))


def test_plot_before_after_two_grids():
    fig = viz.plot_before_after(torch.rand(4, 1, 16, 16), torch.rand(4, 1, 12, 12), nrow=2, titles=("a", "b"))
    left, right = fig.axes
    assert left.images[0].get_array().shape[:2] == (2 * 18 + 2, 2 * 18 + 2)
    assert right.images[0].get_array().shape[:2] == (2 * 14 + 2, 2 * 14 + 2)
    assert (left.get_title(), right.get_title()) == ("a", "b")


# --- plot_grid_overlay ----------------------------------------------------------------

def lines_of(ax, lines=9):
    grid = ax.lines[: 2 * lines]
    return grid[:lines], grid[lines:], ax.lines[2 * lines], ax.lines[2 * lines + 1]


@pytest.mark.parametrize(
    "align_corners, low, high_x, high_y",
    [(False, -0.5, W - 0.5, H - 0.5), (True, 0, W - 1, H - 1)],  # pixel edges vs pixel centres
)
def test_identity_overlay_outer_lines_on_border(align_corners, low, high_x, high_y):
    ax = viz.plot_grid_overlay(torch.rand(1, H, W), geometry.identity_theta(), align_corners=align_corners)
    horizontal, vertical, outline, dot = lines_of(ax)
    assert len(ax.lines) == 2 * 9 + 2
    np.testing.assert_allclose(horizontal[0].get_ydata(), [low, low])  # top line on the top border
    np.testing.assert_allclose(horizontal[-1].get_ydata(), [high_y, high_y])
    np.testing.assert_allclose(horizontal[0].get_xdata(), [low, high_x])  # spanning the full width
    np.testing.assert_allclose(vertical[0].get_xdata(), [low, low])
    np.testing.assert_allclose(vertical[-1].get_xdata(), [high_x, high_x])
    # The outline always follows the output's outer pixel edges, i.e. the input's edges here.
    np.testing.assert_allclose(outline.get_xdata(), [-0.5, W - 0.5, W - 0.5, -0.5, -0.5])
    np.testing.assert_allclose(outline.get_ydata(), [-0.5, -0.5, H - 0.5, H - 0.5, -0.5])
    np.testing.assert_allclose([dot.get_xdata()[0], dot.get_ydata()[0]], [-0.5, -0.5])


@pytest.mark.parametrize("align_corners", [False, True])
def test_translation_moves_sampling_grid_right_and_down(align_corners):
    theta = geometry.make_theta(translate_x=0.5, translate_y=-0.5)
    ax = viz.plot_grid_overlay(torch.rand(1, H, W), theta, align_corners=align_corners, lines=3)
    horizontal, vertical, _, _ = lines_of(ax, 3)
    # +0.5 normalised is a quarter of the width; the output reads further RIGHT in the input.
    shift_x = 0.5 * (W - 1 if align_corners else W) / 2
    shift_y = -0.5 * (H - 1 if align_corners else H) / 2
    centre_x, centre_y = (W - 1) / 2, (H - 1) / 2
    np.testing.assert_allclose(vertical[1].get_xdata(), [centre_x + shift_x] * 2)
    np.testing.assert_allclose(horizontal[1].get_ydata(), [centre_y + shift_y] * 2)


def test_rotation_by_90_puts_output_corner_top_right():
    ax = viz.plot_grid_overlay(torch.rand(3, 8, 8), geometry.make_theta(rotation=90.0)[0])  # (2, 3) theta
    dot = ax.lines[-1]
    np.testing.assert_allclose([dot.get_xdata()[0], dot.get_ydata()[0]], [7.5, -0.5], atol=1e-5)


def test_overlay_matches_affine_grid_sample_points():
    # With align_corners=True and as many lines as output pixels, the lines pass exactly
    # through the points affine_grid samples: the overlay IS the sampling grid.
    theta = geometry.make_theta(rotation=20.0, scale_x=0.7, shear=0.3, translate_x=0.1)
    segments, _ = viz.grid_overlay_coords(theta, (H, W), (5, 5), align_corners=True, lines=5)
    grid = geometry.affine_grid(theta, (5, 5), align_corners=True)[0].double().numpy()
    px = (grid[..., 0] + 1) / 2 * (W - 1)
    py = (grid[..., 1] + 1) / 2 * (H - 1)
    for i in range(5):
        np.testing.assert_allclose(segments[i, 0], [px[i, 0], px[i, -1]], atol=1e-5)  # row i, xs
        np.testing.assert_allclose(segments[i, 1], [py[i, 0], py[i, -1]], atol=1e-5)
        np.testing.assert_allclose(segments[5 + i, 0], [px[0, i], px[-1, i]], atol=1e-5)  # column i


def test_zoomed_out_view_shows_the_whole_outline():
    ax = viz.plot_grid_overlay(torch.rand(1, H, W), geometry.make_theta(scale_x=2.0, scale_y=2.0))
    left, right = ax.get_xlim()
    bottom, top = ax.get_ylim()
    assert left < -W / 2 and right > 1.5 * W - 1  # outline reaches 2x beyond the image
    assert top < bottom  # y axis points down like an image


@pytest.mark.parametrize(
    "theta, error, match",
    [
        (torch.eye(3).unsqueeze(0), ValueError, r"\(B, 2, 3\)"),
        (geometry.identity_theta(2), ValueError, "one theta"),
        ("theta", TypeError, "floating-point tensor"),
    ],
)
def test_overlay_rejects_bad_theta(theta, error, match):
    with pytest.raises(error, match=match):
        viz.plot_grid_overlay(torch.rand(1, 4, 4), theta)


def test_overlay_rejects_bad_image_and_lines():
    with pytest.raises(ValueError, match="channel dimension"):
        viz.plot_grid_overlay(torch.rand(4, 4), geometry.identity_theta())
    with pytest.raises(ValueError, match=r"\(C, H, W\) or \(1, C, H, W\)"):
        viz.plot_grid_overlay(torch.rand(1, 1, 1, 4, 4), geometry.identity_theta())
    with pytest.raises(ValueError, match="lines must be"):
        viz.grid_overlay_coords(geometry.identity_theta(), (4, 4), lines=1)


# --- plot_history / plot_theta_distribution / plot_curves -----------------------------

def test_plot_history_single_run():
    fig = viz.plot_history(history())
    loss_ax, acc_ax = fig.axes
    assert len(loss_ax.lines) == len(acc_ax.lines) == 2
    train, test = acc_ax.lines
    assert (train.get_linestyle(), test.get_linestyle()) == ("--", "-")
    np.testing.assert_allclose(test.get_ydata(), [25, 35, 45, 55])  # fractions shown in %
    assert acc_ax.get_ylabel() == "accuracy (%)"


def test_plot_history_several_runs_one_colour_each():
    runs = {"cnn": history(), "stn": history(offset=0.1), "no test": {k: v for k, v in history().items()
                                                                       if not k.startswith("test")}}
    fig = viz.plot_history(runs, metrics=("loss",))
    (ax,) = fig.axes
    assert len(ax.lines) == 2 + 2 + 1
    colours = [line.get_color() for line in ax.lines]
    assert colours[0] == colours[1] != colours[2] == colours[3] != colours[4]
    assert [t.get_text() for t in ax.get_legend().get_texts()][:2] == ["cnn train", "cnn test"]


def test_plot_history_errors():
    with pytest.raises(ValueError, match="train_f1"):
        viz.plot_history(history(), metrics=("f1",))
    with pytest.raises(TypeError, match="history dict"):
        viz.plot_history([1, 2, 3])
    with pytest.raises(ValueError, match="4 epochs, 3"):
        viz.plot_history({**history(), "test_loss": [1.0, 2.0, 3.0]})


def test_plot_theta_distribution():
    thetas = geometry.make_theta(rotation=torch.linspace(-30, 30, 50), translate_x=torch.rand(50))
    fig = viz.plot_theta_distribution(thetas)
    axes = fig.axes
    assert len(axes) == 6
    assert [ax.get_title() for ax in axes[:3]] == ["a = theta[0,0]", "b = theta[0,1]", "tx = theta[0,2]"]
    identity_lines = [ax.lines[0].get_xdata()[0] for ax in axes]
    assert identity_lines == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert sum(p.get_height() for p in axes[2].patches) == 50  # every sample lands in a bin
    with pytest.raises(ValueError, match=r"\(B, 2, 3\)"):
        viz.plot_theta_distribution(torch.rand(50, 6))


def test_plot_curves():
    angles = [0, 15, 30, 45]
    ax = viz.plot_curves(angles, {"cnn": [99, 90, 70, 40], "stn": torch.tensor([99.0, 98, 95, 90])},
                         xlabel="rotation (deg)", title="robustness")
    assert len(ax.lines) == 2
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [99, 98, 95, 90])
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("rotation (deg)", "accuracy (%)", "robustness")
    fig = Figure()
    given = fig.add_subplot()
    assert viz.plot_curves([1, 2], {"a": [1, 2]}, xlabel="x", ax=given) is given
    with pytest.raises(ValueError, match="3 values but x has 4"):
        viz.plot_curves(angles, {"bad": [1, 2, 3]}, xlabel="x")
    assert math.isclose(ax.lines[0].get_ydata()[-1], 40)


def test_save_gif_writes_every_frame(tmp_path):
    from PIL import Image

    frames = [torch.full((3, 1, 4, 4), value) for value in (0.0, 0.5, 1.0)]
    path = viz.save_gif(frames, tmp_path / "sub" / "anim.gif", nrow=3, scale=2)
    with Image.open(path) as gif:
        assert gif.n_frames == 3
        # 3 images of 4 px with 2 px gaps (and borders), repeated twice
        assert gif.size == (2 * (3 * 4 + 4 * 2), 2 * (4 + 2 * 2))
        gif.seek(1)
        assert gif.convert("L").getpixel((2 * 2 + 1, 2 * 2 + 1)) in (127, 128)


def test_save_gif_errors(tmp_path):
    with pytest.raises(ValueError, match="frames is empty"):
        viz.save_gif([], tmp_path / "a.gif")
    with pytest.raises(ValueError, match="same shape"):
        viz.save_gif([torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 5, 5)], tmp_path / "a.gif")
    with pytest.raises(ValueError, match="scale must be a whole number"):
        viz.save_gif([torch.zeros(2, 1, 4, 4)], tmp_path / "a.gif", scale=0)


def test_save_gif_labels_every_frame_above_its_images(tmp_path):
    from PIL import Image

    frames = [torch.zeros(2, 1, 8, 8) for _ in range(3)]
    path = viz.save_gif(frames, tmp_path / "labelled.gif", labels=["step 0", "step 5", "step 10"], nrow=2, scale=3)
    with Image.open(path) as gif:
        assert gif.n_frames == 3 and gif.size == (3 * (2 * 8 + 3 * 2), 3 * 12 + 3 * (8 + 2 * 2))
        band = gif.convert("L").crop((0, 0, gif.size[0], 3 * 12))
        assert np.asarray(band).min() < 128  # the caption's ink
    with pytest.raises(ValueError, match="give one label per frame: 3 frames but 1 labels"):
        viz.save_gif(frames, tmp_path / "a.gif", labels=["step 0"])
