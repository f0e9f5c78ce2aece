"""How much of each digit the distorted-MNIST generators keep: the ink (sum of pixel values)
of each distorted test digit over the ink of the plain digit, for every variant on the
28x28 canvas, and for P at several corner spreads.

    python benchmarks/distortion_strength.py            # 2,000 test digits
    python benchmarks/distortion_strength.py --digits 10000

Ink falls when a generator shrinks the digit (P and E scale by 0.75-1 first, which alone
keeps 56-100 % of the ink) and when part of the digit is moved off the canvas. A digit
that keeps less than half of its ink is often hard to read.
"""

from __future__ import annotations

import argparse

from stn_utils import data, distortions
from stn_utils.experiments import TEST_SEED


def ink_row(name: str, distorted, ink) -> str:
    kept = distorted.sum((1, 2, 3)) / ink
    return (f"| {name} | {kept.median():.2f} | {kept.quantile(0.05):.2f} | "
            f"{100 * (kept < 0.5).float().mean():.1f} % |")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--digits", type=int, default=2000, help="how many test digits (a seeded pick)")
    args = parser.parse_args(argv)
    digits = data.load_dataset("mnist", "test").subset(args.digits, seed=0).images
    ink = data.to_float(digits).sum((1, 2, 3))
    print(f"# {args.digits} MNIST test digits (a seeded pick), distortions drawn with seed {TEST_SEED}")
    print("| generator | median ink kept | 5th percentile | digits keeping under half |")
    print("|---|---|---|---|")
    for name in ("R", "P", "E"):
        print(ink_row(name, distortions.distort(name, digits, TEST_SEED), ink))
    for spread in (2.0, 3.0, 4.0):
        print(ink_row(f"P, corners N(0, {spread:g} px)",
                      distortions.projective(digits, TEST_SEED, corner_std=spread), ink))


if __name__ == "__main__":
    main()
