"""The STN paper's distorted-MNIST comparison (Jaderberg et al. 2015, Table 1), on a laptop budget.

Notebook 06 and ``benchmarks/distorted_mnist.py`` both call these functions, so the table
in the notebook and the one the benchmark prints come from the same code.

- :func:`distorted_mnist` gives the training digits (distorted afresh in every epoch by
  the recipe) and one fixed, seeded distorted draw of the 10,000 test digits.
- :func:`distortion_recipe` is the course's recipe for one distortion.
- :func:`build_distorted_mnist_model` builds the plain CNN or an ST-CNN for it.
- :func:`train_row` trains one model and measures its test error.
- :func:`results_table` formats rows next to the paper's errors.
"""

from __future__ import annotations

import dataclasses
import time

from torch import nn

from .data import ImageDataset, load_dataset
from .distortions import distort, output_size
from .models import build_model, count_macs, count_parameters
from .recipes import DISTORTED_MNIST, Recipe
from .training import evaluate, fit, seed_everything

__all__ = ["PAPER_ERRORS", "TEST_SEED", "distorted_mnist", "distortion_recipe", "build_distorted_mnist_model",
           "train_row", "results_table"]

# Test error (%) in the paper: Table 1 for R, RTS, P and E; for 60x60 cluttered MNIST its
# text gives the CNN's 3.5 % and the ST-CNN's 1.7 %. Keys: (distortion, transform or None for the CNN).
PAPER_ERRORS = {
    ("R", None): 1.2, ("RTS", None): 0.8, ("P", None): 1.5, ("E", None): 1.4, ("cluttered", None): 3.5,
    ("R", "affine"): 0.7, ("RTS", "affine"): 0.5, ("P", "affine"): 0.8, ("E", "affine"): 1.2,
    ("R", "projective"): 0.8, ("RTS", "projective"): 0.6, ("P", "projective"): 0.8, ("E", "projective"): 1.3,
    ("R", "tps"): 0.7, ("RTS", "tps"): 0.5, ("P", "tps"): 0.8, ("E", "tps"): 1.1,
    ("cluttered", "affine"): 1.7,
}

# the one fixed draw of distortions for the test digits, whatever the training seed
TEST_SEED = 10_000

# The ST-CNN's classifier sees a 28x28 window whatever the canvas, sampled at twice that
# resolution and averaged down (anti-aliasing); its localisation net sees the canvas
# averaged down by two, as in the paper.
CLASSIFIER_SIZE = 28


def distorted_mnist(distortion: str, *, train_subset: int | None = None, test_subset: int | None = None,
                    fixed_training: bool = False, seed: int = 0, root=None,
                    source: str | None = None) -> tuple[ImageDataset, ImageDataset]:
    """MNIST for one of the paper's distortions: ``(train, test)`` as uint8 image sets.

    ``train`` holds the plain 28x28 training digits, which :func:`distortion_recipe`'s
    augmentation distorts afresh in every batch; with ``fixed_training=True`` it holds one
    distorted copy drawn with ``seed`` instead (to measure what fresh distortions buy).
    ``test`` is always the same draw of distortions (:data:`TEST_SEED`) of the test digits,
    none of which is ever seen in training. ``distortion`` is a key of
    :data:`stn_utils.distortions.DISTORTIONS`; the subsets take the first images of a seeded
    shuffle (see :meth:`ImageDataset.subset`).
    """
    train = load_dataset("mnist", "train", root=root, source=source)
    test = load_dataset("mnist", "test", root=root, source=source)
    train = train.subset(train_subset, seed=seed) if train_subset else train
    test = test.subset(test_subset, seed=0) if test_subset else test

    def distorted(data: ImageDataset, draw: int) -> ImageDataset:
        # stored as uint8 like the other data sets: a quarter of the memory
        images = (distort(distortion, data.images, draw) * 255).round().byte()
        return ImageDataset(images, data.labels, data.classes)

    return (distorted(train, seed) if fixed_training else train), distorted(test, TEST_SEED)


def distortion_recipe(distortion: str, **changes) -> Recipe:
    """The course's recipe for ``distortion``: :data:`stn_utils.recipes.DISTORTED_MNIST` with
    fresh distortions of that kind as its augmentation, changed by ``changes``."""
    return dataclasses.replace(DISTORTED_MNIST, **{"augment": f"distort-{distortion}", **changes})


def build_distorted_mnist_model(distortion: str, transform: str | None, **body_kwargs) -> nn.Module:
    """The plain CNN (``transform=None``) on the distortion's whole canvas, or an ST-CNN
    whose transformer (``"affine"``, ``"attention"``, ``"projective"`` or ``"tps"``) samples
    a 28x28 window from it for the same CNN, :func:`stn_utils.models.digit_body`."""
    size = output_size(distortion)
    if transform is None:
        return build_model("digit_cnn", input_size=size, **body_kwargs)
    return build_model("digit_stn", transform=transform, input_size=size, output_size=CLASSIFIER_SIZE,
                       localization_size=size // 2, **body_kwargs)


def train_row(distortion: str, transform: str | None, train: ImageDataset, test: ImageDataset, *,
              recipe: Recipe | None = None, device=None, seed: int = 0, callbacks=()) -> dict:
    """Train one model of the table with ``recipe`` (default :func:`distortion_recipe`) and
    measure it; ``callbacks`` go to :func:`stn_utils.training.fit`.

    Returns a dict with ``distortion``, ``transform``, ``seed``, ``model`` (the trained
    module), ``history`` (from :func:`fit`), ``error`` (test error in %), ``seconds``
    (training alone), ``test_seconds``, ``parameters`` and ``macs`` (per image).
    """
    recipe = recipe or distortion_recipe(distortion)
    seed_everything(seed)
    model = build_distorted_mnist_model(distortion, transform)
    history = fit(model, train, None, recipe, device=device, seed=seed, callbacks=callbacks)
    started = time.perf_counter()
    accuracy = evaluate(model, test, device=device, precision=recipe.precision,
                        channels_last=recipe.channels_last)["accuracy"]
    side = output_size(distortion)
    return dict(distortion=distortion, transform=transform, seed=seed, model=model, history=history,
                error=100 * (1 - accuracy), seconds=history["seconds"][-1], test_seconds=time.perf_counter() - started,
                parameters=count_parameters(model), macs=count_macs(model, (1, side, side)))


def results_table(rows: list[dict]) -> str:
    """A Markdown table of :func:`train_row` results (or their saved form) beside the paper's error."""
    lines = ["| distortion | model | seed | epochs | error % | paper error % | training time | M MACs/image |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        name = "CNN" if row["transform"] is None else f"ST-CNN ({row['transform']})"
        paper = PAPER_ERRORS.get((row["distortion"], row["transform"]))
        lines.append(f"| {row['distortion']} | {name} | {row.get('seed', 0)} | {len(row['history']['epoch'])} | "
                     f"{row['error']:.2f} | {'-' if paper is None else f'{paper:.1f}'} | "
                     f"{row['seconds'] / 60:.1f} min | {row['macs'] / 1e6:.1f} |")
    return "\n".join(lines)

