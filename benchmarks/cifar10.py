"""Train the seed's STN net, the course's CNN and its STN-CNN on CIFAR-10; print one table.

    python benchmarks/cifar10.py                 # the full comparison (well over an hour on 2 CPU cores)
    python benchmarks/cifar10.py --rows cnn stn  # the course's two models only (about 32 min)
    python benchmarks/cifar10.py --epochs 1 --seed-epochs 1 --train-subset 5000   # a smoke run
    python benchmarks/cifar10.py --speed-only    # only the throughput table (a few minutes)

(a) "seed": the PyTorch tutorial's STN architecture with the seed notebook's recipe
    (SGD lr 0.01 without momentum, batch 64, no augmentation, normalise before the STN,
    zero padding, 20 epochs).
(b) "cnn" and (c) "stn": the course's models with ``CIFAR10_RECIPE`` (notebook 05's) for
    ``CIFAR10_EPOCHS`` epochs.

All rows use the same data (``stn_utils.data.load_dataset``, so ``STN_DATA_DIR`` /
``STN_DATA_SOURCE`` apply) on the same machine in one run. "wall time" is training plus
the one test that gives the row's headline accuracy: with the recipe's test-time
augmentation (mirror images and one-pixel shifts for the course's models, none for the
seed); nothing is evaluated between epochs. The accuracy with fewer test-time views is
given beside it.

A second table gives training throughput (images per second, after warm-up) for the
choices that change speed but not the maths: channels-last memory and bf16 autocast.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
import torch.nn.functional as F

from stn_utils.data import load_dataset, to_float
from stn_utils.models import build_model, count_macs, count_parameters
from stn_utils.training import (CIFAR10_EPOCHS, CIFAR10_RECIPE, evaluate, fit, pick_device,
                                seed_everything)

# accuracy columns: which test-time views each averages
TTA_COLUMNS = {"test accuracy": (), "with flip TTA": ("flip_tta",),
               "with flip + shift TTA": ("flip_tta", "translate_tta")}
TTA_NAMES = {flags: column for column, flags in TTA_COLUMNS.items()}
SEED_RECIPE = dict(batch_size=64, lr=0.01, momentum=0.0, weight_decay=0.0, schedule="constant")
ROWS = {
    "seed": ("tutorial_stn", SEED_RECIPE, "the seed: tutorial STN net, SGD 0.01, batch 64"),
    "cnn": ("cifar_cnn", CIFAR10_RECIPE, "course CNN, CIFAR10_RECIPE"),
    "stn": ("cifar_stn", CIFAR10_RECIPE, "course STN-CNN, CIFAR10_RECIPE"),
}


def train_row(row: str, train, test, epochs: int, device) -> tuple:
    """Train one row; the wall time covers training and the test the headline accuracy
    needs (with the recipe's test-time augmentation), the other columns are computed after."""
    name, recipe, description = ROWS[row]
    seed_everything(0)
    model = build_model(name)
    channels_last = recipe.get("channels_last", False)
    tta = dict(flip_tta=recipe.get("flip_tta", False), translate_tta=recipe.get("translate_tta", False))
    started = time.perf_counter()
    # the per-epoch progress bar goes to stderr: a long run shows how far it got
    fit(model, train, None, epochs=epochs, device=device, seed=0, progress=True, **recipe)
    headline = evaluate(model, test, device=device, channels_last=channels_last, **tta)["accuracy"]
    wall = time.perf_counter() - started
    accuracies = {}
    for column, flags in TTA_COLUMNS.items():
        if all(recipe.get(flag, False) for flag in flags):  # only the views the recipe uses
            accuracies[column] = evaluate(model, test, device=device, channels_last=channels_last,
                                          **{flag: True for flag in flags})["accuracy"]
    accuracies[TTA_NAMES[tuple(flag for flag, on in tta.items() if on)]] = headline
    return (description, count_parameters(model), count_macs(model, (3, 32, 32)), epochs, wall, accuracies)


def images_per_second(name: str, images: torch.Tensor, labels: torch.Tensor, *, channels_last: bool,
                      bf16: bool, steps: int, device) -> float:
    """Training steps per second times the batch size, timed after two warm-up steps."""
    seed_everything(0)
    model = build_model(name).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    for step in range(steps + 2):
        if step == 2:
            started = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * len(labels) / (time.perf_counter() - started)


def speed_table(train, device, steps: int) -> None:
    batch = CIFAR10_RECIPE["batch_size"]
    images, labels = to_float(train.images[:batch]).to(device), train.labels[:batch].to(device)
    print(f"\n# training throughput, batch {batch}, {steps} timed steps ({max(2, steps // 4)} for bf16)")
    print("| model | memory format | precision | images/s | vs fp32 NCHW |")
    print("|---|---|---|---|---|")
    for name in ("cifar_cnn", "cifar_stn"):
        baseline = None
        for channels_last, bf16 in ((False, False), (True, False), (False, True), (True, True)):
            # bf16 without native support is emulated and about 10x slower: time fewer steps
            speed = images_per_second(name, images, labels, channels_last=channels_last, bf16=bf16,
                                      steps=max(2, steps // 4) if bf16 else steps, device=device)
            baseline = baseline or speed
            print(f"| {name} | {'channels-last' if channels_last else 'NCHW'} | "
                  f"{'bf16 autocast' if bf16 else 'fp32'} | {speed:.0f} | {speed / baseline:.2f}x |", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    parser.add_argument("--epochs", type=int, default=CIFAR10_EPOCHS, help="epochs for the course's models")
    parser.add_argument("--seed-epochs", type=int, default=20, help="epochs for the seed row")
    parser.add_argument("--train-subset", type=int, default=None, help="train on this many images")
    parser.add_argument("--test-subset", type=int, default=None, help="test on this many images")
    parser.add_argument("--speed-steps", type=int, default=8, help="timed steps per throughput row (0: skip)")
    parser.add_argument("--speed-only", action="store_true", help="print only the throughput table")
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
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
    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"device {device}, torch {torch.__version__}; train {len(train)}, test {len(test)} images")

    if not args.speed_only:
        # each row is printed as soon as it is measured, so a long run interrupted late keeps its rows
        header = ("model", "parameters", "M MACs/image", "epochs", "wall time", *TTA_COLUMNS)
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header), flush=True)
        times = {}
        for row in args.rows:
            description, params, macs, epochs, seconds, accuracies = train_row(
                row, train, test, args.seed_epochs if row == "seed" else args.epochs, device)
            times[row] = seconds
            cells = [f"{accuracies[column]:.2%}" if column in accuracies else "-" for column in TTA_COLUMNS]
            print(f"| {description} | {params:,} | {macs / 1e6:.1f} | {epochs} | {seconds / 60:.1f} min | "
                  + " | ".join(cells) + " |", flush=True)
        if "cnn" in times and "stn" in times:
            print(f"# STN-CNN / CNN wall time: {times['stn'] / times['cnn']:.2f}x")
    if args.speed_steps:
        speed_table(train, device, args.speed_steps)


if __name__ == "__main__":
    main()
