"""Figures for the course: image grids, sampling-grid overlays, learning curves.

Images are float in [0, 1] (or uint8, divided by 255 here), ``(B, C, H, W)`` or
``(C, H, W)`` with C = 1 or 3. Functions return their ``Figure`` (or ``Axes``) and
never call ``plt.show()``: a notebook shows a figure that is a cell's last value.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import Tensor
from torchvision.utils import make_grid

from . import geometry

__all__ = ["to_display", "show_images", "plot_before_after", "grid_overlay_coords", "fit_overlay_view",
           "plot_grid_overlay", "plot_history", "plot_theta_distribution", "plot_curves", "save_gif",
           "two_colour"]


def _as_batch(images, name: str = "images") -> Tensor:
    """Check images and return a float CPU batch ``(B, C, H, W)`` in [0, 1]."""
    if not isinstance(images, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, C, H, W) or (C, H, W); "
                        f"got {type(images).__name__}. Convert with torch.as_tensor(...).")
    shape = tuple(images.shape)
    images = images.unsqueeze(0) if images.dim() == 3 else images
    if images.dim() != 4:
        hint = "; add a channel dimension with image[None]" if len(shape) == 2 else ""
        raise ValueError(f"{name} must have shape (B, C, H, W) or (C, H, W); got {shape}{hint}.")
    if images.shape[1] not in (1, 3) or images.numel() == 0:
        raise ValueError(f"{name} must be non-empty with 1 (grey) or 3 (RGB) channels in dim -3; got "
                         f"shape {shape}. Channels-last data needs .permute(0, 3, 1, 2).")
    if not (images.is_floating_point() or images.dtype == torch.uint8):
        raise TypeError(f"{name} must be float in [0, 1] or uint8; got dtype {images.dtype}.")
    return (images.float() / 255 if images.dtype == torch.uint8 else images.float()).detach().cpu()


def two_colour(images) -> Tensor:
    """Two grey channels as one colour image, to show two digits that sit on separate
    channels (MNIST addition): channel 0 in magenta, channel 1 in green, so where both
    have ink it is white. ``(B, 2, H, W)`` -> ``(B, 3, H, W)`` float in [0, 1]."""
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 2:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"two_colour takes images (B, 2, H, W), one digit per channel; got {shape}.")
    first, second = (images.float() / 255 if images.dtype == torch.uint8 else images.float()).detach().cpu().unbind(1)
    return torch.stack([first, second, first], dim=1)


def _single_image(image, name: str = "image") -> Tensor:
    """Like :func:`_as_batch`, for exactly one image ``(C, H, W)`` or ``(1, C, H, W)``."""
    if isinstance(image, Tensor) and image.dim() not in (3, 4):
        hint = "; add a channel dimension with image[None]" if image.dim() == 2 else ""
        raise ValueError(f"{name} must have shape (C, H, W) or (1, C, H, W); got {tuple(image.shape)}{hint}.")
    batch = _as_batch(image, name)
    if batch.shape[0] != 1:
        raise ValueError(f"{name} must be a single image; got a batch of {batch.shape[0]}. Pass {name}[i].")
    return batch


def _single_theta(theta) -> np.ndarray:  # (2, 3) or (1, 2, 3) tensor -> (2, 3) float64 array
    theta = theta.unsqueeze(0) if isinstance(theta, Tensor) and theta.dim() == 2 else theta
    geometry.check_theta(theta)
    if theta.shape[0] != 1:
        raise ValueError(f"expected one theta, (2, 3) or (1, 2, 3); got {tuple(theta.shape)}. Pass theta[i].")
    return theta[0].detach().cpu().double().numpy()


def _figure(nrows: int = 1, ncols: int = 1, figsize=(4, 4), *, keep: bool = False):
    # plt.figure, not Figure(): in Jupyter it loads the inline backend, which renders Figures. Closed in
    # pyplot, a returned Figure shows once (as the cell's value); keep=True lets it show at the cell's end.
    fig = plt.figure(figsize=figsize, layout="constrained")
    if not keep:
        plt.close(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False)  # always a 2-D array of Axes


def _imshow(ax, image: Tensor):
    arr = to_display(image)  # (C, H, W) -> imshow array; pixel centres land on integers
    # Fixed vmin/vmax: grey images are never contrast-stretched, and set_data keeps the scale.
    return ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")


def _finish(ax, xlabel, ylabel, title=None) -> None:
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title or "")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def to_display(image) -> np.ndarray:
    """``(C, H, W)`` or ``(H, W)`` tensor -> ``(H, W)`` or ``(H, W, 3)`` array, clamped to [0, 1]."""
    img = _single_image(image.unsqueeze(0) if isinstance(image, Tensor) and image.dim() == 2 else image)[0]
    return (img[0] if img.shape[0] == 1 else img.permute(1, 2, 0)).clamp(0, 1).numpy()


def _grid_figsize(grid: Tensor):
    fig_width = float(np.clip(grid.shape[-1] / 40, 2.5, 10))
    return fig_width, fig_width * grid.shape[-2] / grid.shape[-1] + 0.5


def show_images(images, *, nrow=8, title=None, ax=None, labels=None, class_names=None) -> Figure:
    """Show a batch ``(B, C, H, W)`` as one ``make_grid`` grid (padding 2, white gaps).

    ``labels`` (B ints or strings) go under it, a line per grid row; ``class_names`` names ints.
    """
    batch = _as_batch(images)
    if class_names is not None and labels is None:
        raise ValueError("class_names needs labels: pass labels=... (one per image) as well.")
    grid = make_grid(batch, nrow=nrow, padding=2, pad_value=1.0)
    if ax is None:
        ax = _figure(figsize=_grid_figsize(grid))[1][0, 0]
    _imshow(ax, grid)
    ax.set(xticks=[], yticks=[], title=title or "")
    if labels is not None:
        labels = labels.tolist() if isinstance(labels, Tensor) else list(labels)
        if len(labels) != len(batch):
            raise ValueError(f"got {len(labels)} labels for {len(batch)} images; pass one label per image.")
        names = [class_names[int(y)] if class_names is not None else str(y) for y in labels]
        rows = ["  ".join(names[i:i + nrow]) for i in range(0, len(names), nrow)]
        ax.set_xlabel("\n".join(rows), fontsize=8)
    return ax.figure


def plot_before_after(before, after, *, nrow=8, titles=("input", "after the STN")) -> Figure:
    """Two image grids side by side, e.g. a batch before and after the spatial transformer."""
    width, height = _grid_figsize(make_grid(_as_batch(before, "before"), nrow=nrow, padding=2))
    fig, axes = _figure(1, 2, figsize=(min(2 * width, 14), height))
    show_images(before, nrow=nrow, title=titles[0], ax=axes[0, 0])
    show_images(after, nrow=nrow, title=titles[1], ax=axes[0, 1])
    return fig


def grid_overlay_coords(theta, input_size, output_size=None, *, align_corners=False, lines=9):
    """Where the output's grid lines land in the input, in input pixel coordinates.

    ``theta`` is ``(2, 3)`` or ``(1, 2, 3)``; sizes are ``(H, W)``, ``output_size``
    defaults to ``input_size``. Returns ``segments`` ``(2 * lines, 2, 2)`` indexed
    ``[line, (xs, ys), endpoint]`` (horizontal lines top to bottom, then vertical ones
    left to right) and ``border`` ``(2, 5)``: the output's outline, from its top-left.
    """
    t = _single_theta(theta)
    if not isinstance(lines, int) or lines < 2:
        raise ValueError(f"lines must be an integer >= 2; got {lines!r}.")
    (h_in, w_in), (h_out, w_out) = input_size, output_size or input_size
    ticks = np.repeat(np.linspace(-1, 1, lines)[:, None], 2, axis=1)  # constant along each line
    ends = np.tile([-1.0, 1.0], (lines, 1))  # each line crosses the whole output
    xs, ys = np.concatenate([ends, ticks]), np.concatenate([ticks, ends])
    # The outline follows the output's outer pixel EDGES: with align_corners=True, +-1
    # are the corner pixel centres, so the edges lie half a pixel further out.
    ex, ey = [1 + 1 / (n - 1) if align_corners and n > 1 else 1.0 for n in (w_out, h_out)]
    outline = np.array([[-ex, ex, ex, -ex, -ex], [-ey, -ey, ey, ey, -ey]])

    def to_pixels(coord, size):  # pixel centres at 0..size-1, which is where imshow draws them
        return (coord + 1) / 2 * (size - 1) if align_corners else ((coord + 1) * size - 1) / 2

    def to_input(x, y):  # theta @ (x, y, 1) is a location in the input
        return (to_pixels(t[0, 0] * x + t[0, 1] * y + t[0, 2], w_in),
                to_pixels(t[1, 0] * x + t[1, 1] * y + t[1, 2], h_in))
    return np.stack(to_input(xs, ys), axis=1), np.stack(to_input(*outline))


def fit_overlay_view(ax, border, input_size) -> None:
    """Set the limits so both the input image and the output's outline are visible."""
    xs = np.concatenate([border[0], [-0.5, input_size[1] - 0.5]])
    ys = np.concatenate([border[1], [-0.5, input_size[0] - 0.5]])
    margin = 0.03 * max(np.ptp(xs), np.ptp(ys), 1.0)
    ax.set_xlim(xs.min() - margin, xs.max() + margin)
    ax.set_ylim(ys.max() + margin, ys.min() - margin)  # y points down, as in the image


def plot_grid_overlay(image, theta, *, ax=None, output_size=None, align_corners=False,
                      lines=9, color="tab:orange"):
    """Draw the INPUT image and, on top, where each output pixel reads from; returns the Axes.

    ``image`` is ``(C, H, W)`` or ``(1, C, H, W)``, ``theta`` ``(2, 3)`` or ``(1, 2, 3)``. The
    output's grid lines pushed through theta into input pixels picture "theta maps output
    coordinates to input coordinates". The thick line outlines the output, the dot marks
    its top-left corner (so flips show), grey is outside the input (padding decides there).
    ``ax.lines``: the ``2 * lines`` grid lines as in :func:`grid_overlay_coords`, the outline, the dot.
    """
    img = _single_image(image)
    input_size = tuple(img.shape[-2:])
    segments, border = grid_overlay_coords(theta, input_size, output_size,
                                           align_corners=align_corners, lines=lines)
    if ax is None:
        ax = _figure(figsize=(4, 4), keep=True)[1][0, 0]
    ax.set_facecolor("0.85")
    _imshow(ax, img[0])
    for xs, ys in segments:
        ax.plot(xs, ys, color=color, lw=0.8, alpha=0.8)
    ax.plot(border[0], border[1], color=color, lw=2)
    ax.plot(border[0][:1], border[1][:1], "o", color=color, ms=6)
    fit_overlay_view(ax, border, input_size)
    ax.set(xticks=[], yticks=[])
    return ax


def plot_history(histories, *, metrics=("loss", "accuracy")) -> Figure:
    """Learning curves: one subplot per metric, train dashed, test solid, one colour per run.

    ``histories``: one history or ``{run name: history}``; a history holds lists ``epoch``,
    ``train_loss``, ``test_loss``, ``train_acc``, ``test_acc`` (fractions, plotted in %).
    """
    if not isinstance(histories, Mapping) or not histories:
        raise TypeError("histories must be a history dict ({'epoch': [...], 'train_loss': [...], ...}) "
                        "or a non-empty dict mapping run names to such dicts.")
    runs = dict(histories) if all(isinstance(h, Mapping) for h in histories.values()) else {"": histories}
    fig, axes = _figure(1, len(metrics), figsize=(4.5 * len(metrics), 3.5))
    for ax, metric in zip(axes[0], metrics):
        short = {"accuracy": "acc"}.get(metric, metric)
        for i, (name, history) in enumerate(runs.items()):
            for split, style in (("train", "--"), ("test", "-")):
                values = history.get(f"{split}_{short}")
                if values is None:
                    continue
                x = list(history.get("epoch", range(1, len(values) + 1)))
                if len(x) != len(values):
                    raise ValueError(f"run {name!r}: {len(x)} epochs, {len(values)} {split}_{short} values.")
                y = np.asarray(values, dtype=float) * (100.0 if short == "acc" else 1.0)
                ax.plot(x, y, style, color=f"C{i}", label=f"{name} {split}".strip())
        if not ax.lines:
            raise ValueError(f"no history has 'train_{short}' or 'test_{short}'; "
                             f"keys are {sorted(next(iter(runs.values())))}.")
        _finish(ax, "epoch", "accuracy (%)" if short == "acc" else metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def plot_theta_distribution(thetas) -> Figure:
    """Histograms of the six entries of ``thetas`` ``(N, 2, 3)``; dashed line = identity."""
    geometry.check_theta(thetas)
    values = thetas.detach().cpu().double().numpy()
    fig, axes = _figure(2, 3, figsize=(9, 5))
    for (i, j), ax in np.ndenumerate(axes):
        ax.hist(values[:, i, j], bins=30, color="C0")
        ax.axvline(1.0 if i == j else 0.0, color="k", ls="--", lw=1)
        ax.set_title(f"{'a b tx c d ty'.split()[3 * i + j]} = theta[{i},{j}]")
    fig.suptitle(f"theta over {len(values)} images (dashed: identity)")
    return fig


def plot_curves(x, curves, *, xlabel, ylabel="accuracy (%)", title=None, ax=None):
    """Line plot of ``{name: values}`` against ``x`` (e.g. accuracy vs rotation); returns the Axes."""
    x = list(x)
    if not isinstance(curves, Mapping) or not curves:
        raise TypeError("curves must be a non-empty dict mapping a name to a sequence of y values.")
    if ax is None:
        ax = _figure(figsize=(5, 3.5), keep=True)[1][0, 0]
    for name, ys in curves.items():
        ys = np.asarray(ys, dtype=float)
        if len(ys) != len(x):
            raise ValueError(f"curve {name!r} has {len(ys)} values but x has {len(x)}.")
        ax.plot(x, ys, marker="o", ms=3, label=name)
    _finish(ax, xlabel, ylabel, title)
    return ax


def save_gif(frames, path, *, labels=None, nrow: int = 8, duration_ms: int = 150, scale: int = 3):
    """Write an animated GIF, one frame per image batch, e.g. an STN's output during training.

    Args:
        frames: a sequence of batches ``(B, C, H, W)`` in [0, 1], all of the same shape;
            each becomes one ``make_grid`` frame.
        path: the ``.gif`` file to write (its folder is created).
        labels: one caption per frame (e.g. ``"step 120"``), written in a band above it.
        duration_ms: how long each frame shows; the first and last show three times as long.
        scale: pixel repetition, so that 28x28 digits are big enough to see.

    Returns:
        the path written, as a ``pathlib.Path``.
    """
    from pathlib import Path

    from PIL import Image, ImageDraw

    frames = list(frames)
    if not frames:
        raise ValueError("frames is empty; give at least one batch of images.")
    shapes = {tuple(_as_batch(frame, "frame").shape) for frame in frames}
    if len(shapes) > 1:
        raise ValueError(f"every frame must have the same shape; got {sorted(shapes)}.")
    if not (isinstance(scale, int) and scale >= 1) or duration_ms < 1:
        raise ValueError(f"scale must be a whole number >= 1 and duration_ms >= 1; got {scale}, {duration_ms}.")
    if labels is not None and len(labels) != len(frames):
        raise ValueError(f"give one label per frame: {len(frames)} frames but {len(labels)} labels.")
    pictures = []
    for number, frame in enumerate(frames):
        grid = make_grid(_as_batch(frame, "frame").float().clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)
        array = (grid.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
        array = array.repeat(scale, axis=0).repeat(scale, axis=1)
        picture = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).convert("RGB")
        if labels is not None:
            band = Image.new("RGB", (picture.width, 12 * scale), "white")
            ImageDraw.Draw(band).text((4, 2 * scale), str(labels[number]), fill="black", font_size=8 * scale)
            stacked = Image.new("RGB", (picture.width, band.height + picture.height), "white")
            stacked.paste(band, (0, 0))
            stacked.paste(picture, (0, band.height))
            picture = stacked
        pictures.append(picture)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    long = 3 * duration_ms
    durations = [long] + [duration_ms] * (len(pictures) - 2) + [long] if len(pictures) > 1 else [long]
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=durations, loop=0)
    return path
