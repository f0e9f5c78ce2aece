"""MNIST addition (Jaderberg et al. 2015, appendix A.1): two digits, one per channel, each
rotated, scaled and moved on its own 42x42 canvas; the label is their sum (19 classes).

A spatial transformer warps all the channels of its input with one transform, so a single
transformer cannot straighten two independently placed digits at once. Two transformers
side by side could, if each picked out one digit, as in the paper's 2xST-FCN;
``benchmarks/mnist_addition.py`` trains the models and measures, with :func:`window_summary`,
whether they do.

- :func:`digit_pairs` pairs digits and sums their labels; :func:`mnist_addition` gives the
  training pairs (distorted afresh in every epoch by the recipe) and one fixed, seeded
  distorted draw of test pairs, built from test digits only.
- :func:`addition_recipe`, :func:`build_addition_model` and :func:`train_addition_row`
  train one of :data:`MODELS`; :func:`saved_addition_row` loads what the benchmark saved.
- :func:`ink_centroids`, :func:`window_thetas` and :func:`picks` measure which digit each
  transformer looks at.

Conventions: coordinates are normalised as everywhere in the course (``align_corners=False``:
-1 and 1 are the outer edges of the canvas, x to the right, y down); channel 0 holds the
first digit of a pair, channel 1 the second.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .data import ImageDataset, load_dataset, to_float
from .distortions import RTS_SIZE, distort_each_channel
from .experiments import TEST_SEED, saved_run, train_and_test
from .models import TransformerStack, build_model
from .recipes import DISTORTED_MNIST, Recipe
from .training import predict, seed_everything

__all__ = ["PAPER_ERRORS", "AdditionModel", "MODELS", "COURSE_MODELS", "EPOCHS", "STORED_ROWS", "AdditionData",
           "digit_pairs", "mnist_addition",
           "addition_recipe", "build_addition_model", "train_addition_row", "saved_addition_row",
           "ink_centroids", "window_thetas", "picks", "window_summary", "addition_table"]

# Test error (%) in the paper's appendix A.1, for its fully connected (FCN) and
# convolutional models; its transformers sit in front of an FCN.
PAPER_ERRORS = {"FCN": 47.7, "CNN": 14.7, "ST-FCN": 18.5, "2xST-FCN": 5.8}


class AdditionModel(NamedTuple):
    """One model of the comparison: how many transformers stand in front of the
    classifier, its label in tables, the paper's model to put beside it, and the
    transformers' ``start_zoom`` (``None``: the model's default, a window at the canvas's
    own resolution; 1: the identity, the whole canvas), and whether each of two
    transformers starts looking at its own channel only (``own_channel_start`` of
    :func:`stn_utils.models.build_model`'s ``"addition_stn"``)."""

    transformers: int
    label: str
    paper: str
    start_zoom: float | None = None
    own_channel_start: bool = False


# The course's three models, and the two transformer models started at the identity, to
# measure what the start buys.
MODELS = {"cnn": AdditionModel(0, "CNN on the 2x42x42 canvas", "CNN"),
          "st": AdditionModel(1, "ST-CNN, one transformer", "ST-FCN"),
          "2st": AdditionModel(2, "ST-CNN, two transformers", "2xST-FCN"),
          "st-identity": AdditionModel(1, "ST-CNN, one transformer started at the identity", "ST-FCN", 1.0),
          "2st-identity": AdditionModel(2, "ST-CNN, two transformers started at the identity", "2xST-FCN", 1.0),
          "2st-own": AdditionModel(2, "ST-CNN, two transformers, each started on its own channel", "2xST-FCN",
                                   own_channel_start=True)}
COURSE_MODELS = ("cnn", "st", "2st")

# Epochs per model, chosen to keep each well inside 15 minutes of training on two CPU
# cores (the benchmark prints what each took).
EPOCHS = dict.fromkeys(MODELS, 20)

STORED_ROWS = "benchmarks/results/mnist_addition"

# pairs the test digits, whatever the training seed
PAIRING_SEED = 20_000


class AdditionData(NamedTuple):
    """What :func:`mnist_addition` returns: ``train`` (N, 2, 28, 28) plain digit pairs,
    ``test`` (M, 2, 42, 42) distorted pairs, both uint8 with the sum as label, and
    ``test_digits`` (M, 2), the label of each test pair's two digits."""

    train: ImageDataset
    test: ImageDataset
    test_digits: Tensor


def digit_pairs(digits: ImageDataset, seed: int) -> tuple[ImageDataset, Tensor]:
    """Pair every digit of ``digits`` (N, 1, H, W) with another one drawn at random (never
    itself): ``(pairs, labels)``, where ``pairs`` holds images (N, 2, H, W), digit ``i`` on
    channel 0 and its partner on channel 1, labelled with the sum ("0" to "18"), and
    ``labels`` (N, 2) holds the two digits' own labels."""
    if digits.images.ndim != 4 or digits.images.shape[1] != 1:
        raise ValueError(f"digit_pairs takes grey digits (N, 1, H, W); got {tuple(digits.images.shape)}. "
                         "Pair a one-channel set such as load_dataset('mnist', 'test').")
    n = len(digits)
    if n < 2:
        raise ValueError(f"digit_pairs needs at least two digits to pair; got {n}.")
    generator = torch.Generator().manual_seed(seed)
    partner = (torch.arange(n) + torch.randint(1, n, (n,), generator=generator)) % n
    images = torch.cat([digits.images, digits.images[partner]], dim=1)
    labels = torch.stack([digits.labels, digits.labels[partner]], dim=1)
    classes = tuple(str(total) for total in range(2 * len(digits.classes) - 1))
    return ImageDataset(images, labels.sum(1), classes), labels


def mnist_addition(*, train_subset: int | None = None, test_subset: int | None = None, seed: int = 0,
                   root=None, source: str | None = None) -> AdditionData:
    """MNIST addition: training pairs of training digits (paired with ``seed``; the recipe
    distorts every digit afresh in every batch) and one fixed draw of distorted test pairs
    (pairing and distortions seeded, the same whatever ``seed``), never seen in training.
    The subsets take the first digits of a seeded shuffle before pairing."""
    train = load_dataset("mnist", "train", root=root, source=source)
    test = load_dataset("mnist", "test", root=root, source=source)
    train = train.subset(train_subset, seed=seed) if train_subset else train
    test = test.subset(test_subset, seed=0) if test_subset else test
    train_pairs, _ = digit_pairs(train, seed)
    test_pairs, test_digits = digit_pairs(test, PAIRING_SEED)
    # stored as uint8 like the other data sets: a quarter of the memory
    distorted = (distort_each_channel("RTS", test_pairs.images, TEST_SEED) * 255).round().byte()
    return AdditionData(train_pairs, ImageDataset(distorted, test_pairs.labels, test_pairs.classes), test_digits)


def _check_model(model: str) -> None:
    if model not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}; got {model!r}.")


def addition_recipe(model: str, **changes) -> Recipe:
    """The course's recipe for one of :data:`MODELS`: the distorted-MNIST recipe
    (:data:`stn_utils.recipes.DISTORTED_MNIST`) with fresh RTS distortions of each digit
    and :data:`EPOCHS`, changed by ``changes``."""
    _check_model(model)
    return dataclasses.replace(DISTORTED_MNIST, **{"augment": "distort-RTS-each-channel", "epochs": EPOCHS[model],
                                                   **changes})


def build_addition_model(model: str, **kwargs) -> nn.Module:
    """One of :data:`MODELS`, untrained: ``"cnn"``, ``"st"`` or ``"2st"``
    (``build_model("addition_cnn")`` or ``build_model("addition_stn", transformers=1 or 2)``
    of :mod:`stn_utils.models`)."""
    _check_model(model)
    spec = MODELS[model]
    if spec.transformers == 0:
        return build_model("addition_cnn", **kwargs)
    if spec.start_zoom is not None:
        kwargs = {"start_zoom": spec.start_zoom, **kwargs}
    if spec.own_channel_start:
        kwargs = {"own_channel_start": True, **kwargs}
    return build_model("addition_stn", transformers=spec.transformers, **kwargs)


def train_addition_row(model: str, train: ImageDataset, test: ImageDataset, *, recipe: Recipe | None = None,
                       device=None, seed: int = 0, callbacks=()) -> dict:
    """Train one of :data:`MODELS` with ``recipe`` (default :func:`addition_recipe`) and
    measure its test error: :func:`stn_utils.experiments.train_and_test`'s dict with
    ``name`` and ``seed``."""
    recipe = recipe or addition_recipe(model)
    seed_everything(seed)
    row = train_and_test(build_addition_model(model), train, test, recipe, device=device, seed=seed,
                         callbacks=callbacks, input_shape=(2, RTS_SIZE, RTS_SIZE))
    return dict(name=model, seed=seed, **row)


def saved_addition_row(model: str, test: ImageDataset, *, seed: int = 0, device=None, folder=None) -> dict | None:
    """A row that ``benchmarks/mnist_addition.py`` trained and saved, rebuilt and measured
    again on ``test``; ``None`` when it is missing or its recipe differs from
    :func:`addition_recipe`. Without ``folder``, the rows stored with the course."""
    _check_model(model)
    saved = saved_run(STORED_ROWS if folder is None else folder, f"{model}-seed{seed}", addition_recipe(model),
                      lambda: build_addition_model(model), test, device=device, stored=folder is None)
    return None if saved is None else dict(name=model, seed=seed, **saved)


# --- which digit does each transformer look at? ---------------------------------------------

def ink_centroids(images: Tensor) -> Tensor:
    """The ink-weighted mean position of every channel: ``(B, C, H, W) -> (B, C, 2)``, as
    ``(x, y)`` in normalised coordinates (pixel ``j`` of ``W`` sits at ``(2j + 1) / W - 1``).
    A channel without ink gets ``(0, 0)``, the canvas centre."""
    if images.ndim != 4:
        raise ValueError(f"images must have shape (B, C, H, W); got {tuple(images.shape)}.")
    height, width = images.shape[-2:]
    ink = images.float()
    xs = (2 * torch.arange(width, device=images.device) + 1) / width - 1
    ys = (2 * torch.arange(height, device=images.device) + 1) / height - 1
    total = ink.sum((2, 3)).clamp(min=1e-12)
    x = (ink.sum(2) * xs).sum(2) / total
    y = (ink.sum(3) * ys).sum(2) / total
    return torch.stack([x, y], dim=-1)


@torch.no_grad()
def window_thetas(model: nn.Module, images: Tensor, *, batch_size: int = 1000) -> Tensor:
    """The affine ``theta`` of each transformer of ``model`` for every image: ``images``
    (B, 2, 42, 42), float in [0, 1] or uint8, -> (B, K, 2, 3) on the CPU, for K transformers, run
    ``batch_size`` images at a time. Its last column is the point of the canvas that the
    window's centre reads (the window's centre); ``canvas side * sqrt(|det theta[..., :2]|)``
    is the window's side in canvas pixels."""
    stn = getattr(model, "stn", None)
    if stn is None:
        raise ValueError("the model has no spatial transformer (model.stn is None): a plain CNN has no window.")
    parameter = next(model.parameters())
    thetas = []
    for start in range(0, len(images), batch_size):
        batch = to_float(images[start:start + batch_size]).to(parameter.device, parameter.dtype)
        _, theta = stn(batch, return_theta=True)
        thetas.append((theta if isinstance(stn, TransformerStack) else theta[:, None]).float().cpu())
    return torch.cat(thetas)


def picks(centres: Tensor, digits: Tensor) -> Tensor:
    """Which digit each window is nearest to: ``centres`` (B, K, 2), the windows' centres
    (``window_thetas(...)[..., 2]``), and ``digits`` (B, 2, 2) from :func:`ink_centroids` ->
    (B, K) long, 0 for the digit on channel 0 and 1 for the one on channel 1."""
    if (centres.ndim != 3 or digits.ndim != 3 or centres.shape[0] != digits.shape[0] or centres.shape[-1] != 2
            or digits.shape[1:] != (2, 2)):
        raise ValueError(f"picks takes centres (B, K, 2) and digits (B, 2, 2); got {tuple(centres.shape)} "
                         f"and {tuple(digits.shape)}.")
    return torch.cdist(centres.float(), digits.float()).argmin(-1)


@torch.no_grad()
def window_summary(model: nn.Module, test: ImageDataset, *, recipe: Recipe | None = None,
                   batch_size: int = 1000) -> dict:
    """Where a trained ST-CNN's windows go on the test pairs ``test`` (N, 2, 42, 42):
    ``sides``, each transformer's median window side in canvas pixels; with two
    transformers also ``groups``, for each ``(first, second)`` choice of digits (0: the one
    on channel 0; :func:`picks`), the share of pairs (%) and their test error (%; ``None``
    for an empty group), and ``same``, ``error_same`` and ``error_apart``: the share of
    pairs where both windows are nearest to the same digit and the error where they are and
    where they are not. The model predicts with ``recipe``'s precision and memory format
    (default fp32, channels-first), as the benchmark's error was measured with it."""
    thetas = window_thetas(model, test.images, batch_size=batch_size)
    side = thetas.new_tensor(test.images.shape[-1]) * torch.linalg.det(thetas[..., :2]).abs().sqrt()
    summary = {"sides": side.median(0).values.tolist()}
    if thetas.shape[1] != 2:
        return summary
    picked = picks(thetas[..., 2], ink_centroids(to_float(test.images)))
    settings = {} if recipe is None else dict(precision=recipe.precision, channels_last=recipe.channels_last)
    wrong = predict(model, test, batch_size=batch_size, **settings) != test.labels
    same = picked[:, 0] == picked[:, 1]

    def error(group: Tensor) -> float | None:
        return 100 * wrong[group].float().mean().item() if group.any() else None

    groups = {}
    for first, second in ((0, 1), (1, 0), (0, 0), (1, 1)):
        group = (picked[:, 0] == first) & (picked[:, 1] == second)
        groups[(first, second)] = (100 * group.float().mean().item(), error(group))
    return {**summary, "groups": groups, "same": 100 * same.float().mean().item(), "error_same": error(same),
            "error_apart": error(~same)}


def addition_table(rows: list[dict]) -> str:
    """The Markdown table of saved benchmark rows (JSON dicts with ``name``, ``error``,
    ``seconds``, ``epochs``): our test error beside the paper's, the mean and spread where
    several seeds ran."""
    lines = ["| model | test error % | the paper's (its model) | training time | epochs |", "|---|---|---|---|---|"]
    for name, spec in MODELS.items():
        label, paper = spec.label, spec.paper
        mine = [r for r in rows if r["name"] == name]
        if not mine and name not in COURSE_MODELS:
            continue
        if not mine:
            lines.append(f"| {label} | not run | {PAPER_ERRORS[paper]} ({paper}) | - | {EPOCHS[name]} |")
            continue
        errors = [r["error"] for r in mine]
        ours = (f"{sum(errors) / len(errors):.2f} ± {torch.tensor(errors).std().item():.2f} ({len(errors)} seeds)"
                if len(errors) > 1 else f"{errors[0]:.2f}")
        slowest = max(r["seconds"] for r in mine) / 60
        lines.append(f"| {label} | **{ours}** | {PAPER_ERRORS[paper]} ({paper}) | {slowest:.1f} min | "
                     f"{mine[0]['epochs']} |")
    return "\n".join(lines)
