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
import json
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from .data import ImageDataset, load_dataset
from .distortions import DISTORTIONS, cluttered, distort, output_size, placed
from .models import build_model, count_macs, count_parameters
from .recipes import DISTORTED_MNIST, SEED, Recipe
from .stored import load_weights, manifest, read_weights, stored_file
from .training import accuracy_curve, evaluate, fit, seed_everything

__all__ = ["PAPER_ERRORS", "TEST_SEED", "distorted_mnist", "distortion_recipe", "build_distorted_mnist_model",
           "EPOCHS", "STORED_ROWS", "STORED_CHOICES", "stored_rows", "train_row", "saved_row", "CURVES",
           "invariance_curves", "TransformerFilm", "COLLAPSE_SETUPS", "median_zoom", "collapse_run",
           "results_table", "TABLE_MODELS", "train_and_test", "saved_run", "verdict", "benchmark_table", "CHOICES",
           "choice_recipe", "choice_row", "choices_table"]

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


# Epochs per distortion and model, chosen from short timing runs on two CPU cores (AMD
# Zen 5 with bf16) to keep every model of the table under the same 10-minute budget; the
# benchmark prints what each took. The CNN pays for the whole canvas in every layer, so on
# the 42x42 and 60x60 canvases it gets fewer epochs than the ST-CNN, whose classifier
# sees a 28x28 window; P and E share R's 28x28 canvas. The same work has taken over a third
# longer from one run to the next on the same kind of CPU (the stored cluttered CNN rows:
# 5.5 min for seed 0, 7.5 for seed 1), so the affine ST-CNNs on RTS and cluttered MNIST,
# the slowest models of the timing runs, got 26 and 20 epochs (from 30 and 32) to stay
# under the budget.
EPOCHS = {"R": {None: 60, "affine": 40, "projective": 32, "tps": 36},
          "RTS": {None: 25, "affine": 26, "projective": 24, "tps": 26},
          "cluttered": {None: 10, "affine": 20}}
EPOCHS["P"] = EPOCHS["E"] = EPOCHS["R"]


def distortion_recipe(distortion: str, transform: str | None = "affine", **changes) -> Recipe:
    """The course's recipe for one model of the table: :data:`stn_utils.recipes.DISTORTED_MNIST`
    with fresh distortions of kind ``distortion`` as its augmentation and :data:`EPOCHS` for
    that distortion and ``transform`` (``None``: the CNN; a family without its own count
    takes the affine one), changed by ``changes``."""
    epochs = EPOCHS[distortion].get(transform, EPOCHS[distortion]["affine"])
    return dataclasses.replace(DISTORTED_MNIST, **{"augment": f"distort-{distortion}", "epochs": epochs, **changes})


def build_distorted_mnist_model(distortion: str, transform: str | None, *, localization_size: int | None = None,
                                **model_kwargs) -> nn.Module:
    """The plain CNN (``transform=None``) on the distortion's whole canvas, or an ST-CNN
    whose transformer (``"affine"``, ``"attention"``, ``"projective"`` or ``"tps"``) samples
    a 28x28 window from it for the same CNN, :func:`stn_utils.models.digit_body`; its
    localisation net sees the canvas averaged down to ``localization_size`` (default: half
    the canvas's side). ``model_kwargs`` go to the model's builder (``batch_norm``,
    ``supersample``, ...)."""
    size = output_size(distortion)
    if transform is None:
        return build_model("digit_cnn", input_size=size, **model_kwargs)
    return build_model("digit_stn", transform=transform, input_size=size, output_size=CLASSIFIER_SIZE,
                       localization_size=localization_size or size // 2, **model_kwargs)


def train_row(distortion: str, transform: str | None, train: ImageDataset, test: ImageDataset, *,
              recipe: Recipe | None = None, device=None, seed: int = 0, callbacks=(),
              model_kwargs: dict | None = None) -> dict:
    """Train one model of the table with ``recipe`` (default :func:`distortion_recipe`) and
    measure it; ``callbacks`` go to :func:`stn_utils.training.fit`, ``model_kwargs`` to
    :func:`build_distorted_mnist_model`.

    Returns a dict with ``distortion``, ``transform``, ``seed``, ``model`` (the trained
    module), ``history`` (from :func:`fit`), ``error`` (test error in %), ``seconds``
    (training alone), ``test_seconds``, ``parameters`` and ``macs`` (per image).
    """
    recipe = recipe or distortion_recipe(distortion, transform)
    seed_everything(seed)
    model = build_distorted_mnist_model(distortion, transform, **(model_kwargs or {}))
    side = output_size(distortion)
    return dict(distortion=distortion, transform=transform, seed=seed,
                **train_and_test(model, train, test, recipe, device=device, seed=seed, callbacks=callbacks,
                                 input_shape=(1, side, side)))


def train_and_test(model: nn.Module, train: ImageDataset, test: ImageDataset, recipe: Recipe, *, device=None,
                   seed: int = 0, callbacks=(), input_shape) -> dict:
    """Train ``model`` with ``recipe`` (no test during training) and measure it once on
    ``test``, with the recipe's test-time augmentation: a dict with ``model``, ``history``,
    ``epochs``, ``error`` (test error in %),
    ``seconds`` (training alone), ``test_seconds``, ``parameters`` and ``macs`` (per image
    of ``input_shape`` (C, H, W))."""
    history = fit(model, train, None, recipe, device=device, seed=seed, callbacks=callbacks)
    started = time.perf_counter()
    accuracy = evaluate(model, test, device=device, tta_level=recipe.tta_level, precision=recipe.precision,
                        channels_last=recipe.channels_last)["accuracy"]
    return dict(model=model, history=history, epochs=len(history["epoch"]), error=100 * (1 - accuracy),
                seconds=history["seconds"][-1], test_seconds=time.perf_counter() - started,
                parameters=count_parameters(model), macs=count_macs(model, input_shape))


# What each choice of the recipe buys (benchmarks/distorted_mnist_choices.py): the RTS
# ST-CNN (affine) of the table with one choice undone at a time, every other setting kept.
# Each entry: what is changed, then the changes to distorted_mnist, to distortion_recipe
# and to build_distorted_mnist_model ("transform" None: no transformer at all).
CHOICES = {
    "course": ("none: the course's recipe", {}, {}, {}),
    "fixed-draw": ("one fixed draw of training distortions, not fresh ones each epoch",
                   dict(fixed_training=True), dict(augment="none"), {}),
    "fp32": ("fp32, channels-first, instead of bf16 autocast and channels-last", {},
             dict(precision="fp32", channels_last=False), {}),
    "no-batch-norm": ("no batch norm in the classifier", {}, {}, dict(batch_norm=False)),
    "full-canvas-localisation": ("localisation net on the full 42x42 canvas, not averaged to 21x21", {}, {},
                                 dict(localization_size=42)),
    "no-supersampling": ("sampler reads the 28x28 window directly, no 2x supersampling and average pool", {},
                         {}, dict(supersample=1)),
    "constant-lr": ("a constant learning rate, not one-cycle", {}, dict(schedule="constant"), {}),
    "slow-transformer": ("the transformer at a tenth of the classifier's rate", {}, dict(stn_lr_scale=0.1), {}),
    "sgd": ("SGD with Nesterov momentum (lr 0.05, L2 5e-4), not AdamW", {},
            dict(optimizer="sgd", lr=0.05, weight_decay=5e-4), {}),
    "no-transformer": ("no transformer: the CNN on the whole canvas", {}, {}, dict(transform=None)),
}


def choice_recipe(choice: str, *, epochs: int) -> Recipe:
    """The RTS ST-CNN's recipe for ``epochs`` with one of :data:`CHOICES` undone."""
    if choice not in CHOICES:
        raise ValueError(f"choice must be one of {sorted(CHOICES)}; got {choice!r}.")
    _, _, recipe_changes, model_changes = CHOICES[choice]
    return distortion_recipe("RTS", model_changes.get("transform", "affine"), epochs=epochs, **recipe_changes)


def choice_row(choice: str, *, epochs: int, device=None, seed: int = 0, root=None,
               train_subset: int | None = None, test_subset: int | None = None) -> dict:
    """Train the RTS ST-CNN (affine) for ``epochs`` with one of :data:`CHOICES` undone and
    measure it; returns :func:`train_row`'s dict with ``choice``, ``recipe``
    (:func:`choice_recipe`), ``train_images`` and ``test_images``."""
    distortion = "RTS"
    recipe = choice_recipe(choice, epochs=epochs)
    _, data_changes, _, model_changes = CHOICES[choice]
    model_changes = dict(model_changes)
    transform = model_changes.pop("transform", "affine")
    train, test = distorted_mnist(distortion, train_subset=train_subset, test_subset=test_subset, seed=seed,
                                  root=root, **data_changes)
    row = train_row(distortion, transform, train, test, recipe=recipe, device=device, seed=seed,
                    model_kwargs=model_changes)
    return dict(row, choice=choice, recipe=recipe, train_images=len(train), test_images=len(test))


def choices_table(rows: list[dict]) -> str:
    """The Markdown table of ``benchmarks/distorted_mnist_choices.py``'s saved rows: per
    choice undone, the test error, its change against the course's recipe and the training
    time against the course's."""
    course = next((r for r in rows if r["choice"] == "course"), None)
    lines = ["| what is changed | test error % | change (points) | training time | time vs the course's |",
             "|---|---|---|---|---|"]
    for name, (description, *_) in CHOICES.items():
        for row in (r for r in rows if r["choice"] == name):
            change = "-" if course is None or name == "course" else f"{row['error'] - course['error']:+.2f}"
            ratio = "-" if course is None else f"{row['seconds'] / course['seconds']:.2f}x"
            lines.append(f"| {description} | {row['error']:.2f} | {change} | {row['seconds'] / 60:.1f} min | {ratio} |")
    return "\n".join(lines)


# where benchmarks/distorted_mnist.py and benchmarks/distorted_mnist_choices.py save their
# rows, relative to the repository's root
STORED_ROWS = "benchmarks/results/distorted_mnist"
STORED_CHOICES = "benchmarks/results/distorted_mnist_choices"


def stored_rows(folder: str = STORED_ROWS) -> list[dict]:
    """The saved rows (JSON dicts) of ``folder`` that are stored with the course
    (:mod:`stn_utils.stored`: checked by SHA-256, downloaded where the repository is not at
    hand), in file-name order."""
    return [json.loads(stored_file(path).read_text()) for path in sorted(manifest())
            if path.startswith(folder + "/") and path.endswith(".json")]


def saved_row(distortion: str, transform: str | None, test: ImageDataset, *, seed: int = 0, device=None,
              folder=None) -> dict | None:
    """A row that ``benchmarks/distorted_mnist.py`` trained and saved, with its model rebuilt
    from the saved weights and its test error measured again on ``test``; or ``None`` when
    there is no such row or it was trained with another recipe than :func:`distortion_recipe`
    gives today.

    Without ``folder``, the rows stored with the course (:mod:`stn_utils.stored`: checked by
    SHA-256, downloaded where the repository is not at hand); with it, the rows of that folder.

    Returns :func:`train_row`'s keys (``history`` is ``None``: the benchmark keeps only the
    totals) and ``machine``, the computer that trained it.
    """
    saved = saved_run(STORED_ROWS if folder is None else folder, f"{distortion}-{transform or 'cnn'}-seed{seed}",
                      distortion_recipe(distortion, transform),
                      lambda: build_distorted_mnist_model(distortion, transform), test, device=device,
                      stored=folder is None)
    return None if saved is None else dict(distortion=distortion, transform=transform, seed=seed, **saved)


def saved_run(folder, stem: str, recipe: Recipe, build, test: ImageDataset, *, device=None,
              stored: bool = True) -> dict | None:
    """The benchmark run saved as ``<folder>/<stem>.json`` and ``.pt``, rebuilt with
    ``build()`` and measured again on ``test``; ``None`` when it is missing or was trained
    with another recipe than ``recipe``. ``stored``: read the files stored with the course
    (:mod:`stn_utils.stored`, checked by SHA-256, downloaded where the repository is not at
    hand) rather than a folder on disk. Returns ``model``, ``history`` (``None``: benchmarks
    keep only the totals), ``epochs``, ``error``, ``seconds``, ``parameters``, ``macs``,
    ``machine`` and ``saved_error``."""
    if stored:
        relative = f"{folder}/{stem}"
        if not {relative + ".json", relative + ".pt"} <= manifest().keys():
            return None
        saved = json.loads(stored_file(relative + ".json").read_text())
        weights = load_weights(relative + ".pt")
    else:
        path = Path(folder) / stem
        if not (path.with_suffix(".json").is_file() and path.with_suffix(".pt").is_file()):
            return None
        saved = json.loads(path.with_suffix(".json").read_text())
        weights = read_weights(path.with_suffix(".pt"))
    if recipe.differences(saved["recipe"]):  # fields added since read as their defaults
        return None
    model = build()
    model.load_state_dict(weights)
    model = model.to(device or "cpu").eval()
    accuracy = evaluate(model, test, device=device, tta_level=recipe.tta_level, precision=recipe.precision,
                        channels_last=recipe.channels_last)["accuracy"]
    return dict(model=model, history=None, epochs=saved["epochs"], error=100 * (1 - accuracy),
                seconds=saved["seconds"], parameters=saved["parameters"], macs=saved["macs"],
                machine=saved["machine"], saved_error=saved["error"])


# Notebook 06's invariance curves: per distortion, the amounts to test, how to apply one
# amount to every test digit, and the range the training data held (None: no single range).
CURVES = {
    "RTS": {
        "rotation (degrees)": (list(range(-180, 181, 15)), lambda x, a: placed(x, angle=a), (-45, 45)),
        "scale (zoom factor)": ([round(0.4 + 0.1 * i, 1) for i in range(13)], lambda x, z: placed(x, scale=z),
                                (0.7, 1.2)),
        "horizontal shift (pixels)": (list(range(-14, 15, 2)), lambda x, d: placed(x, shift=(d, 0)), None),
    },
    "cluttered": {
        "clutter (6x6 pieces)": (list(range(0, 21, 2)), lambda x, k: cluttered(x, TEST_SEED, clutter=k), (6, 6)),
    },
}


def invariance_curves(models: dict, digits: ImageDataset, distortion: str) -> dict:
    """Test accuracy of each of ``models`` (name -> model trained on ``distortion``) on the
    plain test ``digits`` distorted by each amount of :data:`CURVES` ``[distortion]``:
    ``{curve: {model name: [accuracy per amount]}}``."""
    return {curve: {name: accuracy_curve(model, digits, apply, amounts) for name, model in models.items()}
            for curve, (amounts, apply, _) in CURVES[distortion].items()}


class TransformerFilm:
    """A callback for :func:`stn_utils.training.fit` that films what a model's spatial
    transformer makes of a few fixed images as it trains: one frame every ``every``
    steps, labelled with its step, for :func:`stn_utils.viz.save_gif`.

    Call :meth:`snap` once before training for the first frame (the identity).

    Args:
        images: (B, C, H, W) float in [0, 1] on the model's device, e.g. 8 test digits.
        every: optimiser steps between frames.
    """

    def __init__(self, images, every: int):
        if every < 1:
            raise ValueError(f"every must be at least 1 step; got {every}.")
        self.images, self.every = images, every
        self.frames: list = []
        self.labels: list[str] = []

    def snap(self, model: nn.Module, step: int) -> None:
        was_training = model.training
        model.eval()  # the norms' running statistics, not the batch's
        with torch.no_grad():
            self.frames.append(model.stn(self.images).float().cpu())
        model.train(was_training)
        self.labels.append(f"step {step:,}")

    def __call__(self, progress) -> None:
        if progress.event == "step" and (progress.step % self.every == 0 or progress.step == progress.steps):
            self.snap(progress.model, progress.step)


# The PyTorch STN tutorial's two set-ups (pytorch/tutorials issue 1117), on cluttered MNIST:
# its own (normalise before the STN, zero padding) and the course's fix (raw pixels, border
# padding, normalise after the STN). Both train as the tutorial does: plain SGD at 0.01.
COLLAPSE_SETUPS = {"tutorial: normalise first, zero padding": dict(normalize_first=True, padding_mode="zeros"),
                   "fixed: raw input, border padding": dict(normalize_first=False, padding_mode="border")}


def median_zoom(model: nn.Module, images) -> float:
    """The median zoom of ``model``'s spatial transformer on ``images`` (N, C, H, W) in [0, 1]:
    sqrt|det| of theta's 2x2 part, above 1 when the transformer zooms out (shrinks the content)."""
    with torch.no_grad():
        inputs = images.float() / 255 if images.dtype == torch.uint8 else images
        inputs = inputs.to(next(model.parameters()).device)
        theta = model.predict_theta(inputs)
    return theta[:, :, :2].det().abs().sqrt().median().item()


def collapse_run(setup: str, train: ImageDataset, test: ImageDataset, *, epochs: int, device=None,
                 seed: int = 0) -> dict:
    """Train the tutorial's MNIST STN in one of :data:`COLLAPSE_SETUPS` on cluttered MNIST
    (``train``: plain digits, distorted afresh; ``test``: the fixed cluttered draw) with the
    tutorial's recipe; return its median zoom on the test digits after every epoch (from
    the identity, 1.0) and its final test error in %."""
    seed_everything(seed)
    model = build_model("tutorial_mnist_stn", input_size=output_size("cluttered"), **COLLAPSE_SETUPS[setup])
    zooms = [median_zoom(model, test.images[:1000])]

    def record(progress):
        if progress.event == "epoch":
            zooms.append(median_zoom(progress.model, test.images[:1000]))

    recipe = dataclasses.replace(SEED, epochs=epochs, augment="distort-cluttered")
    fit(model, train, None, recipe, device=device, seed=seed, callbacks=[record])
    error = 100 * (1 - evaluate(model, test, device=device)["accuracy"])
    return dict(setup=setup, zooms=zooms, error=error, model=model)


def results_table(rows: list[dict]) -> str:
    """A Markdown table of :func:`train_row` results (or their saved form) beside the paper's error."""
    lines = ["| distortion | model | seed | epochs | error % | paper error % | training time | M MACs/image |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        name = "CNN" if row["transform"] is None else f"ST-CNN ({row['transform']})"
        paper = PAPER_ERRORS.get((row["distortion"], row["transform"]))
        lines.append(f"| {row['distortion']} | {name} | {row.get('seed', 0)} | {row['epochs']} | "
                     f"{row['error']:.2f} | {'-' if paper is None else f'{paper:.1f}'} | "
                     f"{row['seconds'] / 60:.1f} min | {row['macs'] / 1e6:.1f} |")
    return "\n".join(lines)


# benchmarks/distorted_mnist.py's table: its model columns and the time budget per model
TABLE_MODELS = ("cnn", "affine", "projective", "tps")
BUDGET_MINUTES = 10


def _cell(rows: list[dict], distortion: str, model: str) -> str:
    errors = [r["error"] for r in rows if r["distortion"] == distortion and r["model"] == model]
    paper = PAPER_ERRORS.get((distortion, None if model == "cnn" else model))
    paper_text = "-" if paper is None else f"{paper:.1f}"
    if not errors:
        return f"not run / {paper_text}"
    ours = (f"{statistics.mean(errors):.2f} ± {statistics.stdev(errors):.2f} ({len(errors)} seeds)"
            if len(errors) > 1 else f"{errors[0]:.2f}")
    return f"**{ours}** / {paper_text}"


def verdict(rows: list[dict], distortion: str) -> str:
    mine = [r for r in rows if r["distortion"] == distortion and r["model"] == "affine"]
    if not mine:
        return "affine not run"
    error, paper = statistics.mean(r["error"] for r in mine), PAPER_ERRORS[(distortion, "affine")]
    slowest = max(r["seconds"] for r in mine) / 60
    accuracy = "at or below the paper" if error <= paper else f"misses the paper by {error - paper:.2f} points"
    budget = (f"within {BUDGET_MINUTES} min" if slowest <= BUDGET_MINUTES
              else f"OVER {BUDGET_MINUTES} min ({slowest:.1f})")
    return f"{accuracy}; {budget}"


def benchmark_table(rows: list[dict]) -> str:
    """The Markdown table of ``benchmarks/distorted_mnist.py``'s saved rows (JSON dicts): one
    line per distortion, our test error / the paper's in %, the longest training time, and
    a verdict on the affine ST-CNN."""
    lines = ["| data | CNN | ST-CNN affine | ST-CNN projective | ST-CNN TPS | longest training | affine ST-CNN |",
             "|---|---|---|---|---|---|---|"]
    for distortion in DISTORTIONS:
        mine = [r for r in rows if r["distortion"] == distortion]
        if not mine:
            continue
        cells = [_cell(rows, distortion, model) for model in TABLE_MODELS]
        if distortion == "cluttered":
            cells[2:] = ["-", "-"]
        longest = max(r["seconds"] for r in mine) / 60
        lines.append(f"| {distortion} | " + " | ".join(cells) + f" | {longest:.1f} min | {verdict(rows, distortion)} |")
    return "\n".join(lines)
