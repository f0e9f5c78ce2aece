"""Train the seed's STN net, the course's CNN and its STN-CNN on CIFAR-10; print one table.

    python benchmarks/cifar10.py                 # the full comparison (about an hour on 2 CPU cores)
    python benchmarks/cifar10.py --rows cnn stn  # the course's two models only (about 30 min)
    python benchmarks/cifar10.py --epochs 1 --seed-epochs 1 --train-subset 5000   # a smoke run
    python benchmarks/cifar10.py --speed-only    # only the throughput table (a few minutes)
    python benchmarks/cifar10.py --rows cnn --set lookahead=False --widths 32,64,128
                                                 # one choice changed: what did it buy?
    python benchmarks/cifar10.py --rows stn --seed 1   # another seed: how far do results spread?

(a) "seed": the PyTorch tutorial's STN architecture with the seed notebook's recipe
    (SGD lr 0.01 without momentum, batch 64, no augmentation, normalise before the STN,
    zero padding, 20 epochs).
(b) "cnn" and (c) "stn": the course's models with ``stn_utils.recipes.CIFAR10`` (notebook 05's).

All rows use the same data (``stn_utils.data.load_dataset``, so ``STN_DATA_DIR`` /
``STN_DATA_SOURCE`` apply) on the same machine in one run. "wall time" is training plus
the one test that gives the row's headline accuracy: with the recipe's test-time
augmentation (mirror images and one-pixel shifts for the course's models, none for the
seed); nothing is evaluated between epochs. The accuracy with fewer test-time views is
given beside it.

A second table gives training throughput (images per second, after warm-up) for the
memory format and the precision: channels-last changes only the speed, bf16 autocast also
rounds the convolutions' arithmetic (``--set precision=fp32`` trains a row without it).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import time

import torch
import torch.nn.functional as F

from machine import describe
from stn_utils import recipes
from stn_utils.data import load_dataset, to_float
from stn_utils.models import CIFAR_WIDTHS, build_model, count_macs, count_parameters
from stn_utils.recipes import Recipe
from stn_utils.training import autocast_dtype, evaluate, fit, pick_device, seed_everything

# accuracy columns, by test-time augmentation level
TTA_COLUMNS = {0: "test accuracy", 1: "with flip TTA", 2: "with flip + shift TTA"}
ROWS = {
    "seed": ("tutorial_stn", recipes.SEED, "the seed: tutorial STN net, SGD 0.01, batch 64"),
    "cnn": ("cifar_cnn", recipes.CIFAR10, "course CNN, recipes.CIFAR10"),
    "stn": ("cifar_stn", recipes.CIFAR10, "course STN-CNN, recipes.CIFAR10"),
}
NOT_SETTABLE = {"epochs"}  # --epochs sets it, for the course's rows


def parse_overrides(pairs) -> dict:
    """``["lr=0.2", "precision=fp32", "tta_level=1"]`` -> changes to the course's Recipe."""
    allowed = sorted(f.name for f in dataclasses.fields(Recipe) if f.name not in NOT_SETTABLE)
    overrides = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or key not in allowed:
            raise ValueError(f"--set takes KEY=VALUE with KEY one of {allowed}; got {pair!r}.")
        try:
            overrides[key] = ast.literal_eval(text)  # numbers, True/False
        except (ValueError, SyntaxError):
            overrides[key] = text  # a plain word such as fp32
    dataclasses.replace(recipes.CIFAR10, **overrides)  # the Recipe's own checks, before any training
    return overrides


def train_row(row: str, train, test, epochs: int, device, overrides=None, widths=None, seed: int = 0) -> tuple:
    """Train one row; the wall time covers training and the test the headline accuracy
    needs (with the recipe's test-time augmentation), the other columns are computed after.

    ``overrides`` (Recipe fields) and ``widths`` (the body's) change the course's rows only;
    the seed row is always the seed's. ``seed`` sets every row's initial weights, data
    order and augmentation."""
    name, recipe, description = ROWS[row]
    model_kwargs = {}
    recipe = dataclasses.replace(recipe, epochs=epochs)
    if row != "seed":
        recipe = dataclasses.replace(recipe, **(overrides or {}))
        changes = [f"{key}={value}" for key, value in (overrides or {}).items()]
        if widths and tuple(widths) != CIFAR_WIDTHS:
            model_kwargs["widths"] = tuple(widths)
            changes.append(f"widths={','.join(map(str, widths))}")
        if changes:
            description += f" with {' '.join(changes)}"
    if seed:
        description += f", seed {seed}"
    seed_everything(seed)
    model = build_model(name, **model_kwargs)
    started = time.perf_counter()
    fit(model, train, None, recipe, device=device, seed=seed)
    accuracies = {recipe.tta_level: _accuracy(model, test, recipe, recipe.tta_level, device)}
    wall = time.perf_counter() - started
    for level in range(recipe.tta_level):  # the same model with fewer test-time views
        accuracies[level] = _accuracy(model, test, recipe, level, device)
    precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[autocast_dtype(recipe.precision, device)]
    return (description, count_parameters(model), count_macs(model, (3, 32, 32)), epochs, precision, wall,
            accuracies)


def _accuracy(model, test, recipe: Recipe, level: int, device) -> float:
    return evaluate(model, test, tta_level=level, precision=recipe.precision, channels_last=recipe.channels_last,
                    device=device)["accuracy"]


class TrainingStep:
    """One model in one set-up (memory format, precision), ready to time training steps."""

    def __init__(self, name: str, images: torch.Tensor, labels: torch.Tensor, *, channels_last: bool,
                 bf16: bool, widths, device):
        seed_everything(0)
        self.model = build_model(name, **({"widths": tuple(widths)} if widths else {})).to(device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
            images = images.contiguous(memory_format=torch.channels_last)
        self.images, self.labels, self.bf16, self.device = images, labels, bf16, device
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9, nesterov=True)

    def images_per_second(self, steps: int) -> float:
        started = time.perf_counter()
        for _ in range(steps):
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                loss = F.cross_entropy(self.model(self.images), self.labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        return steps * len(self.labels) / (time.perf_counter() - started)


def speed_table(train, device, steps: int, widths=None, rounds: int = 3) -> None:
    """Training throughput of each set-up: the best of ``rounds`` timings of ``steps`` steps,
    the set-ups taking turns, so that a slow spell of a shared machine hits them alike."""
    batch = recipes.CIFAR10.batch_size
    images, labels = to_float(train.images[:batch]).to(device), train.labels[:batch].to(device)
    # bf16 without hardware support is emulated and several times slower: time fewer steps
    bf16_steps = steps if autocast_dtype("auto", device) else max(1, steps // 4)
    setups = [(name, channels_last, bf16) for name in ("cifar_cnn", "cifar_stn")
              for channels_last, bf16 in ((False, False), (True, False), (False, True), (True, True))]
    runners = {setup: TrainingStep(setup[0], images, labels, channels_last=setup[1], bf16=setup[2],
                                   widths=widths, device=device) for setup in setups}
    for runner in runners.values():
        runner.images_per_second(2)  # warm-up: oneDNN builds its kernels on the first steps
    best = dict.fromkeys(setups, 0.0)
    for _ in range(rounds):
        for setup, runner in runners.items():
            best[setup] = max(best[setup], runner.images_per_second(bf16_steps if setup[2] else steps))
    print(f"\n# training throughput, batch {batch}: best of {rounds} rounds of {steps} steps "
          f"({bf16_steps} with bf16), the set-ups taking turns")
    print("| model | memory format | precision | images/s | vs fp32 NCHW |")
    print("|---|---|---|---|---|")
    for name, channels_last, bf16 in setups:
        speed = best[(name, channels_last, bf16)]
        print(f"| {name} | {'channels-last' if channels_last else 'NCHW'} | {'bf16 autocast' if bf16 else 'fp32'} "
              f"| {speed:.0f} | {speed / best[(name, False, False)]:.2f}x |", flush=True)
    print(f"# STN-CNN / CNN step time, channels-last bf16: "
          f"{best[('cifar_cnn', True, True)] / best[('cifar_stn', True, True)]:.2f}x; "
          f"fp32: {best[('cifar_cnn', True, False)] / best[('cifar_stn', True, False)]:.2f}x")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    parser.add_argument("--epochs", type=int, default=recipes.CIFAR10.epochs, help="epochs for the course's models")
    parser.add_argument("--seed-epochs", type=int, default=20, help="epochs for the seed row")
    parser.add_argument("--train-subset", type=int, default=None, help="train on this many images")
    parser.add_argument("--test-subset", type=int, default=None, help="test on this many images")
    parser.add_argument("--speed-steps", type=int, default=8, help="timed steps per throughput row and round (0: skip)")
    parser.add_argument("--speed-only", action="store_true", help="print only the throughput table")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="change recipes.CIFAR10 for the course's rows, e.g. --set lr=0.2 precision=fp32")
    parser.add_argument("--widths", default=None, help="the course body's stage widths, e.g. 32,64,128")
    parser.add_argument("--seed", type=int, default=0, help="random seed of every row (weights, data order)")
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    try:
        overrides = parse_overrides(args.overrides)
        widths = tuple(int(w) for w in args.widths.split(",")) if args.widths else None
    except ValueError as error:
        parser.error(str(error))
    if widths is not None and (len(widths) != 3 or min(widths) < 1):
        parser.error(f"--widths takes three positive channel counts, e.g. 32,64,128; got {args.widths}")
    if args.epochs < 1 or args.seed_epochs < 1:
        parser.error("--epochs and --seed-epochs must be at least 1")
    if args.speed_steps < 0:
        parser.error("--speed-steps must be 0 or more")

    train, test = load_dataset("cifar10", "train"), load_dataset("cifar10", "test")
    if args.train_subset:
        train = train.subset(args.train_subset)
    if args.test_subset:
        test = test.subset(args.test_subset)
    device = pick_device(args.device)
    print(f"# {describe(device)}; train {len(train)}, test {len(test)} images")

    if not args.speed_only:
        # each row is printed as soon as it is measured, so a long run interrupted late keeps its rows
        header = ("model", "parameters", "M MACs/image", "epochs", "precision", "wall time", *TTA_COLUMNS.values())
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header), flush=True)
        times = {}
        for row in args.rows:
            description, params, macs, epochs, precision, seconds, accuracies = train_row(
                row, train, test, args.seed_epochs if row == "seed" else args.epochs, device, overrides, widths,
                args.seed)
            times[row] = seconds
            cells = [f"{accuracies[level]:.2%}" if level in accuracies else "-" for level in TTA_COLUMNS]
            print(f"| {description} | {params:,} | {macs / 1e6:.1f} | {epochs} | {precision} | "
                  f"{seconds / 60:.1f} min | " + " | ".join(cells) + " |", flush=True)
        if "cnn" in times and "stn" in times:
            print(f"# STN-CNN / CNN wall time: {times['stn'] / times['cnn']:.2f}x")
    if args.speed_steps:
        speed_table(train, device, args.speed_steps, widths)


if __name__ == "__main__":
    main()
