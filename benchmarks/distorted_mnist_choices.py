"""What each choice of the distorted-MNIST recipe buys: the RTS ST-CNN (affine) trained with
one choice undone at a time, every other setting as the course's recipe has it.

    python benchmarks/distorted_mnist_choices.py                 # every choice (about 25 minutes)
    python benchmarks/distorted_mnist_choices.py --rows course sgd
    python benchmarks/distorted_mnist_choices.py --table         # only print the saved rows

The choices are ``stn_utils.experiments.CHOICES``. Every row trains for the same, shorter
schedule (``--epochs``, 6 by default, against the table's 30) so that the whole comparison
fits in under half an hour on two CPU cores. One seed: a difference of a tenth of a point
may be no more than another seed would make. Each finished row is saved at once as
``<results>/<CHOICE>-epochs<EPOCHS>-seed<SEED>.json``; a second run trains only the missing
rows (``--rerun``: all again). A saved row trained with another recipe or on another number
of images than its row has now is refused, never overwritten: move it away, or pass
``--rerun``; the subsets need a folder of their own (``--results``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

from machine import cpu_name, describe
from saved_rows import check_subsets, count_differences, image_counts, refuse_stale_rows, train_missing
from stn_utils.experiments import CHOICES, STORED_CHOICES, choice_recipe, choice_row, choices_table
from stn_utils.training import pick_device

RESULTS = Path(__file__).resolve().parents[1] / STORED_CHOICES


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", nargs="+", choices=list(CHOICES), default=list(CHOICES))
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the saved rows")
    parser.add_argument("--table", action="store_true", help="print the table of the saved rows; train nothing")
    parser.add_argument("--rerun", action="store_true", help="train rows again even when they are saved")
    parser.add_argument("--train-subset", type=int, help="train on this many digits")
    parser.add_argument("--test-subset", type=int, help="test on this many digits")
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    check_subsets(parser, args)
    if (args.train_subset or args.test_subset) and not args.table and args.results.resolve() == RESULTS.resolve():
        parser.error("the subsets make rows unlike the course's; give them a folder of their own with --results, "
                     "e.g. --results /tmp/rows")
    device = pick_device(args.device)

    def train(choice: str) -> dict:
        row = choice_row(choice, epochs=args.epochs, device=device, seed=args.seed,
                         train_subset=args.train_subset, test_subset=args.test_subset)
        return dict(choice=choice, error=row["error"], seconds=row["seconds"], epochs=row["epochs"],
                    train_acc=row["history"]["train_acc"][-1], recipe=row["recipe"].to_dict(), seed=args.seed,
                    train_images=row["train_images"], test_images=row["test_images"],
                    cpu=cpu_name(), machine=describe(device), date=datetime.date.today().isoformat())

    def differences(choice: str, saved: dict, counts: tuple[int, int]) -> list[str]:
        # the course's rows were saved before rows recorded their image counts; all are of the full sets
        counted = count_differences(saved, *counts) if "train_images" in saved else []
        return choice_recipe(choice, epochs=args.epochs).differences(saved["recipe"]) + counted

    def path(choice: str) -> Path:
        return args.results / f"{choice}-epochs{args.epochs}-seed{args.seed}.json"

    if not args.table:
        if not args.rerun:
            counts = image_counts("mnist", args)
            refuse_stale_rows(parser, args.rows, path, lambda choice, saved: differences(choice, saved, counts))
        print(f"# {describe(device)}", flush=True)
        train_missing(args.rows, path, train, rerun=args.rerun,
                      summary=lambda row: f"{row['choice']}: {row['error']:.2f} % test error, "
                                          f"{row['seconds'] / 60:.1f} min of training")
    rows = [json.loads(p.read_text()) for p in sorted(args.results.glob(f"*-epochs{args.epochs}-seed{args.seed}.json"))]
    if not rows:
        sys.exit(f"no saved rows of {args.epochs} epochs in {args.results}; train some first (without --table).")
    print(f"# RTS ST-CNN (affine), {args.epochs} epochs, seed {args.seed}, trained on "
          f"{' and '.join(sorted({r['machine'] for r in rows}))}")
    print(choices_table(rows))


if __name__ == "__main__":
    main()
