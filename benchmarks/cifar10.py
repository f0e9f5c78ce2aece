"""Train the seed's STN net, the course's CNN and its STN-CNN on CIFAR-10; print one table.

    python benchmarks/cifar10.py                        # the full comparison (roughly an hour on 2 CPU cores, estimated from notebook 05's epoch times)
    python benchmarks/cifar10.py --epochs 1 --train-subset 5000 --seed-epochs 1   # a smoke run

(a) "seed": the PyTorch tutorial's STN architecture with the seed notebook's recipe
    (SGD lr 0.01 without momentum, batch 64, no augmentation, normalise before the STN,
    zero padding).
(b) "cnn" and (c) "stn": the course's models with ``CIFAR10_RECIPE``, as notebook 05 uses.

All rows use the same data (``stn_utils.data.load_dataset``, so ``STN_DATA_DIR`` /
``STN_DATA_SOURCE`` apply) on the same machine in one run. Wall time is training only;
accuracy is measured after the last epoch (with flip test-time augmentation for the
recipe rows, as the recipe says).
"""

from __future__ import annotations

import argparse
import platform

import torch

from stn_utils.data import load_dataset
from stn_utils.models import build_model, count_macs, count_parameters
from stn_utils.training import CIFAR10_RECIPE, fit, pick_device, seed_everything

SEED_RECIPE = dict(batch_size=64, lr=0.01, momentum=0.0, weight_decay=0.0, schedule="constant")
ROWS = {
    "seed": ("tutorial_stn", SEED_RECIPE, "the seed: tutorial STN net, SGD 0.01, batch 64"),
    "cnn": ("cifar_cnn", CIFAR10_RECIPE, "course CNN, CIFAR10_RECIPE"),
    "stn": ("cifar_stn", CIFAR10_RECIPE, "course STN-CNN, CIFAR10_RECIPE"),
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    parser.add_argument("--epochs", type=int, default=10, help="epochs for the course's models")
    parser.add_argument("--seed-epochs", type=int, default=20, help="epochs for the seed row")
    parser.add_argument("--train-subset", type=int, default=None, help="train on this many images")
    parser.add_argument("--test-subset", type=int, default=None, help="test on this many images")
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.seed_epochs < 1:
        parser.error("--epochs and --seed-epochs must be at least 1")

    train, test = load_dataset("cifar10", "train"), load_dataset("cifar10", "test")
    if args.train_subset:
        train = train.subset(args.train_subset)
    if args.test_subset:
        test = test.subset(args.test_subset)
    device = pick_device(args.device)
    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"device {device}, torch {torch.__version__}; train {len(train)}, test {len(test)} images")

    results = []
    for row in args.rows:
        name, recipe, description = ROWS[row]
        seed_everything(0)
        model = build_model(name)
        epochs = args.seed_epochs if row == "seed" else args.epochs
        history = fit(model, train, test, epochs=epochs, device=device, seed=0, progress=False, **recipe)
        results.append((description, count_parameters(model), count_macs(model, (3, 32, 32)), epochs,
                        history["seconds"][-1], history["test_acc"][-1]))
        print(f"#   done: {description}: {history['test_acc'][-1]:.2%}", flush=True)

    header = ("model", "parameters", "M MACs/image", "epochs", "wall time", "test accuracy")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for description, params, macs, epochs, seconds, accuracy in results:
        print(f"| {description} | {params:,} | {macs / 1e6:.1f} | {epochs} | "
              f"{seconds / 60:.1f} min | {accuracy:.2%} |")


if __name__ == "__main__":
    main()
