"""CNN against ST-CNNs on the STN paper's distorted MNIST; prints one table beside the paper's errors.

    python benchmarks/distorted_mnist.py                       # the default rows (see ROWS)
    python benchmarks/distorted_mnist.py --rows RTS:cnn RTS:tps --epochs 3
    python benchmarks/distorted_mnist.py --train-subset 2000 --test-subset 1000 --epochs 1   # a smoke run

A row is ``DISTORTION:MODEL`` with DISTORTION one of R, RTS, P, E, cluttered and MODEL
``cnn`` or a transform family (affine, attention, projective, tps). Each model trains for
``--epochs`` epochs of ``stn_utils.experiments.MNIST_RECIPE`` on the full 60,000 training
digits (each with its own seeded distortion) and is tested on the 10,000 test digits.
The targets, on 2 CPU cores in at most 20 minutes per model: ST-CNN error on RTS at most
0.5 % with the CNN at 0.8 % or more, and at most 1.7 % on cluttered MNIST (the paper's
figures); the last column says whether a row meets its target.
"""

from __future__ import annotations

import argparse
import platform

import torch

from stn_utils.distortions import DISTORTIONS
from stn_utils.experiments import distorted_mnist, results_table, train_row
from stn_utils.training import pick_device
from stn_utils.transforms import TRANSFORMS

ROWS = ["RTS:cnn", "RTS:affine", "RTS:projective", "RTS:tps", "P:cnn", "P:tps", "cluttered:cnn",
        "cluttered:affine"]
EPOCHS = 5
# (distortion, "ST" or "CNN") -> the test-error target (ST rows: at most; the CNN row: at least)
TARGETS = {("RTS", "ST"): 0.5, ("RTS", "CNN"): 0.8, ("cluttered", "ST"): 1.7}


def parse_row(text: str) -> tuple[str, str | None]:
    distortion, _, model = text.partition(":")
    if distortion not in DISTORTIONS or (model != "cnn" and model not in TRANSFORMS):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not DISTORTION:MODEL with DISTORTION in {sorted(DISTORTIONS)} and MODEL "
            f"'cnn' or one of {sorted(TRANSFORMS)}, e.g. RTS:affine.")
    return distortion, None if model == "cnn" else model


def verdict(row: dict) -> str:
    kind = "CNN" if row["transform"] is None else "ST"
    target = TARGETS.get((row["distortion"], kind))
    if target is None:
        return "-"
    met = row["error"] >= target if kind == "CNN" else row["error"] <= target
    within_time = row["seconds"] <= 20 * 60
    relation = ">=" if kind == "CNN" else "<="
    return f"{'met' if met and within_time else 'NOT met'} ({relation} {target} %, <= 20 min)"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", nargs="+", type=parse_row, default=[parse_row(r) for r in ROWS])
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--train-subset", type=int, default=None, help="train on this many digits")
    parser.add_argument("--test-subset", type=int, default=None, help="test on this many digits")
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")

    device = pick_device(args.device)
    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"device {device}, torch {torch.__version__}; {args.epochs} epochs per model")
    data, results = {}, []
    for distortion, transform in args.rows:
        if distortion not in data:
            data[distortion] = distorted_mnist(distortion, train_subset=args.train_subset,
                                               test_subset=args.test_subset)
        row = train_row(distortion, transform, *data[distortion], epochs=args.epochs, device=device)
        print(f"#   done: {distortion} {transform or 'cnn'}: {row['error']:.2f} % error, "
              f"{row['seconds'] / 60:.1f} min", flush=True)
        results.append(row)
    table = results_table(results).splitlines()
    print("\n".join([table[0] + " target |", table[1] + "---|"]
                    + [line + f" {verdict(row)} |" for line, row in zip(table[2:], results)]))


if __name__ == "__main__":
    main()
