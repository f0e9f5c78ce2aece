"""CIFAR-10 on a canvas: natural images turned, scaled and moved, where pose matters.

CIFAR-10's photographs are centred and upright, so a transformer has nothing to undo
there (notebook 05). Here every image is rotated, scaled and placed at random on a larger
black canvas by the RTS draw of the distorted-MNIST experiments
(:func:`stn_utils.distortions.on_canvas`), with the photograph's whole frame as the
content to keep on the canvas. A CNN must then classify a small, turned photograph
anywhere on the canvas; an STN-CNN can cut a window back out for the body it shares with
notebook 05's CNN.

- :func:`on_canvas` (from :mod:`stn_utils.distortions`) places images and returns what it
  drew (:class:`~stn_utils.distortions.Placement`), so a learned transform can be compared
  with the true one.
- :func:`canvas_augment` (from :mod:`stn_utils.recipes`) flips every training image at
  random and places it afresh in every batch: the augmentation ``"cifar10-canvas"`` of
  :func:`canvas_recipe`, notebook 05's earlier 8-epoch CIFAR-10 recipe otherwise
  (:data:`stn_utils.recipes.CIFAR10_8EPOCH`).
- :func:`cifar_canvas` gives the plain training images and one fixed, seeded draw of the
  placed test images with its placement.
- :data:`MODELS`, :func:`build_canvas_model`, :func:`train_canvas_row` and
  :func:`saved_canvas_row` train and load the comparison that ``benchmarks/cifar10_canvas.py``
  runs; :func:`reference_accuracy` measures the stored CNN of that 8-epoch recipe on
  plain CIFAR-10.
- :func:`learned_pose` reads the zoom, rotation and centre of each transformer's window,
  in the same units as the placement, and :func:`accuracy_by` bins a model's hits by one
  true amount.

Conventions: as everywhere in the course, normalised coordinates with
``align_corners=False`` (-1 and 1 are the canvas's outer edges; x right, y down); a
placement's ``zoom`` is the photograph's size on the canvas over its own (32 px), and its
``angle`` is the rotation, in degrees, of the map from photograph to canvas, built by
:func:`stn_utils.geometry.make_theta` (with y pointing down, a positive angle shows the
photograph turned clockwise).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import NamedTuple

import torch
from torch import Tensor

from .data import ImageDataset, load_dataset, to_float
from .distortions import CANVAS_SIZE, Placement, on_canvas
from .experiments import saved_run, train_and_test
from .models import build_model
from .recipes import CIFAR10_8EPOCH, Recipe, canvas_augment
from .stored import load_run
from .training import evaluate, predict, seed_everything

__all__ = ["CANVAS_SIZE", "TEST_SEED", "on_canvas", "canvas_augment", "CanvasData", "cifar_canvas",
           "CanvasModel", "MODELS", "COURSE_MODELS", "EPOCHS", "STORED_ROWS", "canvas_recipe", "build_canvas_model",
           "train_canvas_row", "saved_canvas_row", "reference_accuracy", "canvas_table", "hits", "turned_width",
           "Pose", "learned_pose", "accuracy_by"]

TEST_SEED = 10_000


class CanvasData(NamedTuple):
    """What :func:`cifar_canvas` returns: ``train``, the plain CIFAR-10 training images
    (N, 3, 32, 32) uint8 (the recipe places them afresh), ``test``, the test images placed
    once (M, 3, S, S) uint8, ``placement``, the test images' placement, and
    ``test_photographs``, the same test images unplaced (M, 3, 32, 32) uint8."""

    train: ImageDataset
    test: ImageDataset
    placement: Placement
    test_photographs: ImageDataset


def cifar_canvas(*, train_subset: int | None = None, test_subset: int | None = None, seed: int = 0,
                 size: int = CANVAS_SIZE, root=None, source: str | None = None) -> CanvasData:
    """CIFAR-10 on the canvas: the training images as they are, and one fixed draw
    (:data:`TEST_SEED`) of placed test images, whatever ``seed``. The subsets take a seeded
    shuffle's first images (the test subset always with seed 0)."""
    train = load_dataset("cifar10", "train", root=root, source=source)
    test = load_dataset("cifar10", "test", root=root, source=source)
    train = train.subset(train_subset, seed=seed) if train_subset else train
    test = test.subset(test_subset, seed=0) if test_subset else test
    placed, placement = on_canvas(test.images, TEST_SEED, size=size)
    # stored as uint8 like the other data sets: a quarter of the memory
    return CanvasData(train, ImageDataset((placed * 255).round().byte(), test.labels, test.classes), placement, test)


# --- the comparison -------------------------------------------------------------------------

class CanvasModel(NamedTuple):
    """One model of the comparison: its name for :func:`stn_utils.models.build_model`, its
    label in tables, and what it changes: the transformer's ``start_zoom`` (``None``: the
    model's default, a 32x32 window at the canvas's own resolution; 1: the identity, the
    whole canvas) and its learning-rate scale (``None``: the recipe's, 0.01)."""

    build: str
    label: str
    start_zoom: float | None = None
    stn_lr_scale: float | None = None


# The comparison, and what its STN-CNN's choices bought: started at the identity instead
# of a 32x32 window of the canvas's own resolution; that model trained for the CNN's
# epochs, to tell what the transformer buys from what its cheaper epochs buy; and the
# transformer at ten times the recipe's rate.
MODELS = {"cnn": CanvasModel("canvas_cnn", f"CNN on the {CANVAS_SIZE}x{CANVAS_SIZE} canvas"),
          "stn": CanvasModel("canvas_stn", "STN-CNN: a 32x32 window for the same body"),
          "stn-identity": CanvasModel("canvas_stn", "STN-CNN started at the identity (the whole canvas)", 1.0),
          "stn-identity-cnn-epochs": CanvasModel("canvas_stn", "the same, trained for the CNN's epochs", 1.0),
          "stn-fast": CanvasModel("canvas_stn", "STN-CNN, its transformer at 10x the recipe's rate", None, 0.1)}
COURSE_MODELS = ("cnn", "stn")

# Epochs per model, chosen to keep each within 15 minutes of training on two CPU cores with
# bf16 (with room for the 25 % by which these machines' speed varies): the CNN's body sees
# 48x48 pixels, 2.25 times the STN-CNN's 32x32 window, and an epoch costs it about twice
# as much.
EPOCHS = {"cnn": 4, "stn": 7, "stn-identity": 7, "stn-identity-cnn-epochs": 4, "stn-fast": 7}

STORED_ROWS = "benchmarks/results/cifar10_canvas"
# notebook 05's CNN as the 8-epoch recipe trained it, the recipe the canvas models share
REFERENCE_RUN = "notebooks/stored/05-cifar_cnn-8epoch"


def _check_model(model: str) -> None:
    if model not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}; got {model!r}.")


def canvas_recipe(model: str, **changes) -> Recipe:
    """The 8-epoch CIFAR-10 recipe (:data:`stn_utils.recipes.CIFAR10_8EPOCH`, notebook
    05's before it moved to airbench's batch 1,024 and schedule) with
    :func:`canvas_augment`, :data:`EPOCHS` and the final test with test-time augmentation
    (mirror and one-pixel shifts, ``tta_level=2``, as notebook 05 reports), changed by
    ``changes``."""
    _check_model(model)
    spec = MODELS[model]
    rate = {} if spec.stn_lr_scale is None else {"stn_lr_scale": spec.stn_lr_scale}
    return replace(CIFAR10_8EPOCH, **{"augment": "cifar10-canvas", "epochs": EPOCHS[model], "tta_level": 2, **rate,
                               **changes})


def build_canvas_model(model: str, **kwargs):
    """One of :data:`MODELS`, untrained (``build_model("canvas_cnn")`` or ``"canvas_stn"``,
    with the model's ``start_zoom``)."""
    _check_model(model)
    spec = MODELS[model]
    if spec.start_zoom is not None:
        kwargs = {"start_zoom": spec.start_zoom, **kwargs}
    return build_model(spec.build, **kwargs)


def train_canvas_row(model: str, train: ImageDataset, test: ImageDataset, *, recipe: Recipe | None = None,
                     device=None, seed: int = 0, callbacks=()) -> dict:
    """Train one of :data:`MODELS` with ``recipe`` (default :func:`canvas_recipe`) and
    measure it on ``test``: :func:`stn_utils.experiments.train_and_test`'s dict with ``name``
    and ``seed``; ``error`` is the test error in % with the recipe's test-time augmentation."""
    recipe = recipe or canvas_recipe(model)
    seed_everything(seed)
    network = build_canvas_model(model)
    network.prepare(to_float(canvas_augment(train.images[:5000], torch.Generator().manual_seed(seed))))
    row = train_and_test(network, train, test, recipe, device=device, seed=seed, callbacks=callbacks,
                         input_shape=(3, CANVAS_SIZE, CANVAS_SIZE))
    return dict(name=model, seed=seed, **row)


def saved_canvas_row(model: str, test: ImageDataset, *, seed: int = 0, device=None, folder=None) -> dict | None:
    """A row that ``benchmarks/cifar10_canvas.py`` trained and saved, rebuilt and measured
    again on ``test``; ``None`` when it is missing or its recipe differs from
    :func:`canvas_recipe`. Without ``folder``, the rows stored with the course."""
    _check_model(model)
    saved = saved_run(STORED_ROWS if folder is None else folder, f"{model}-seed{seed}", canvas_recipe(model),
                      lambda: build_canvas_model(model), test, device=device, stored=folder is None)
    return None if saved is None else dict(name=model, seed=seed, **saved)


def reference_accuracy(*, test_subset: int | None = None, device=None, root=None, source: str | None = None) -> float:
    """Test accuracy (%) of the CNN of notebook 05's earlier 8-epoch recipe (:data:`REFERENCE_RUN`,
    the recipe the canvas models train with) on plain CIFAR-10, with the same
    test-time augmentation as :func:`canvas_recipe`: what the CNN reaches when pose is no
    problem, the figure the canvas models are measured against. ``test_subset`` as in
    :func:`cifar_canvas`."""
    model = build_model("cifar_cnn")
    load_run(REFERENCE_RUN, model)
    model = model.to(device or "cpu")
    test = load_dataset("cifar10", "test", root=root, source=source)
    test = test.subset(test_subset, seed=0) if test_subset else test
    recipe = canvas_recipe("cnn")
    return 100 * evaluate(model, test, tta_level=recipe.tta_level, precision=recipe.precision,
                          channels_last=recipe.channels_last, device=device)["accuracy"]


def canvas_table(rows: list[dict], reference: float) -> str:
    """A markdown table of canvas rows (test accuracy, mean and sd over seeds where there
    are several, epochs, training time) and a last line with the target: the STN-CNN wins
    back at least half of what the CNN loses on the canvas against ``reference``."""
    lines = ["| model | test accuracy % (TTA) | seeds | epochs | training time (longest) |", "|---|---|---|---|---|"]
    means = {}
    for name, spec in MODELS.items():
        mine = [row for row in rows if row["name"] == name]
        if not mine:
            if name in COURSE_MODELS:
                lines.append(f"| {spec.label} | not run | | {EPOCHS[name]} | |")
            continue
        accuracies = torch.tensor([100 - row["error"] for row in mine], dtype=torch.float64)
        means[name] = accuracies.mean().item()
        spread = f" ± {accuracies.std().item():.2f}" if len(mine) > 1 else ""
        lines.append(f"| {spec.label} | **{means[name]:.2f}{spread}** | {len(mine)} | "
                     f"{max(row['epochs'] for row in mine)} | {max(row['seconds'] for row in mine) / 60:.1f} min |")
    lines.append(f"| CNN of the 8-epoch recipe on plain CIFAR-10 | **{reference:.2f}** | 1 | 8 | |")
    if {"cnn", "stn"} <= means.keys():
        lost = reference - means["cnn"]
        won = means["stn"] - means["cnn"]
        share = f"{100 * won / lost:.0f} %" if lost > 0 else "n/a (the CNN lost nothing)"
        verdict = "met" if lost > 0 and won >= lost / 2 else "missed"
        lines.append("")
        lines.append(f"The CNN loses {lost:.2f} points on the canvas; the STN-CNN wins back {won:.2f} of them "
                     f"({share}; target at least half: {verdict}).")
    return "\n".join(lines)


def hits(model, data: ImageDataset, recipe: Recipe, *, device=None) -> Tensor:
    """Which images of ``data`` ``model`` classifies right, (N,) bool on the CPU, with
    ``recipe``'s precision, memory format and test-time augmentation, so that their mean is
    the table's accuracy (:func:`stn_utils.training.predict`)."""
    picked = predict(model, data, tta_level=recipe.tta_level, precision=recipe.precision,
                     channels_last=recipe.channels_last, device=device)
    return picked == data.labels.cpu()


def turned_width(side, angle, zoom):
    """Width (and height) in pixels of the upright box around a square photograph of
    ``side`` pixels turned by ``angle`` degrees and zoomed by ``zoom``:
    ``side * zoom * (|cos angle| + |sin angle|)``. Tensors broadcast.

    >>> round(float(turned_width(32, torch.tensor(45.0), 1.0)), 2)
    45.25
    """
    radians = torch.deg2rad(torch.as_tensor(angle, dtype=torch.float32))
    return side * zoom * (radians.cos().abs() + radians.sin().abs())


class Pose(NamedTuple):
    """Zoom (N,), angle (N,) in degrees and centre (N, 2), in a :class:`Placement`'s units."""

    zoom: Tensor
    angle: Tensor
    centre: Tensor


def learned_pose(theta: Tensor, *, canvas_size: int = CANVAS_SIZE, image_size: int = 32) -> Pose:
    """What a transformer's ``theta`` (N, 2, 3) says about the photograph, in the units of
    :func:`on_canvas`'s placement: its window maps the output's frame onto the canvas, so
    a transformer that cut out exactly the placed photograph would have the placement's
    forward map as ``theta``. The zoom is ``sqrt|det A|`` (``A``, theta's 2x2 part) times
    ``canvas_size / image_size``, the angle that of ``A``'s first column, the centre its
    last column.

    >>> pose = learned_pose(torch.tensor([[[2 / 3, 0.0, 0.1], [0.0, 2 / 3, -0.2]]]))
    >>> round(pose.zoom.item(), 3), round(pose.angle.item(), 3), pose.centre.tolist()
    (1.0, 0.0, [[0.10000000149011612, -0.20000000298023224]])
    """
    if theta.ndim != 3 or theta.shape[1:] != (2, 3):
        raise ValueError(f"theta must have shape (N, 2, 3); got {tuple(theta.shape)}.")
    linear = theta[:, :, :2].float()
    zoom = torch.linalg.det(linear).abs().sqrt() * canvas_size / image_size
    angle = torch.rad2deg(torch.atan2(linear[:, 1, 0], linear[:, 0, 0]))
    return Pose(zoom, angle, theta[:, :, 2].float())


def accuracy_by(amount: Tensor, correct: Tensor, edges) -> list[tuple[float, float, int]]:
    """Accuracy of ``correct`` (N,) bool within bins of ``amount`` (N,): one
    ``(bin centre, accuracy in %, count)`` per consecutive pair of ``edges``; the last bin
    includes its upper edge. Empty bins give ``nan``."""
    if amount.shape != correct.shape or amount.ndim != 1:
        raise ValueError(f"amount and correct must be (N,) alike; got {tuple(amount.shape)} and "
                         f"{tuple(correct.shape)}.")
    edges = [float(e) for e in edges]
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"edges must rise and hold at least two values; got {edges}.")
    rows = []
    for i, (low, high) in enumerate(zip(edges, edges[1:])):
        inside = (amount >= low) & ((amount <= high) if i == len(edges) - 2 else (amount < high))
        count = int(inside.sum())
        accuracy = 100 * correct[inside].float().mean().item() if count else math.nan
        rows.append(((low + high) / 2, accuracy, count))
    return rows
