"""What the row benchmarks share (cifar10.py, jpeg_cost.py, distorted_mnist.py, mnist_addition.py,
cifar10_canvas.py; distorted_mnist_choices.py, with options of its own, takes the rest): their
command-line options, training only the rows not yet saved, refusing saved rows that their rows
no longer match (in recipe or in image counts), and reading the saved rows back."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from stn_utils import data
from stn_utils.files import atomic_write


def add_row_options(parser: argparse.ArgumentParser, *, results: Path, items: str) -> None:
    """The options every row benchmark takes; ``items`` names what the subsets count ("digits")."""
    parser.add_argument("--results", type=Path, default=results, help="folder of the saved rows")
    parser.add_argument("--table", action="store_true", help="print the table of the saved rows; train nothing")
    parser.add_argument("--rerun", action="store_true", help="train rows again even when they are saved")
    parser.add_argument("--epochs", type=int, help="change the recipe's epochs (rows then differ from the course's)")
    parser.add_argument("--train-subset", type=int, help=f"train on this many {items}")
    parser.add_argument("--test-subset", type=int, help=f"test on this many {items}")
    parser.add_argument("--smoke", action="store_true", help=f"2,000 training and 500 test {items}, 1 epoch")
    parser.add_argument("--device", default=None)


def check_row_options(parser: argparse.ArgumentParser, args: argparse.Namespace, *, results: Path) -> None:
    """Apply ``--smoke`` and refuse what would make rows unlike the course's in its own folder."""
    if args.smoke:
        args.epochs, args.train_subset, args.test_subset = 1, 2000, 500
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be at least 1")
    check_subsets(parser, args)
    changed = args.epochs or args.train_subset or args.test_subset
    if changed and not args.table and args.results.resolve() == results.resolve():
        parser.error("--smoke, --epochs and the subsets make rows unlike the course's; give them a folder of "
                     "their own with --results, e.g. --results /tmp/rows")


def check_subsets(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse a ``--train-subset`` or ``--test-subset`` below 1."""
    for option, subset in (("--train-subset", args.train_subset), ("--test-subset", args.test_subset)):
        if subset is not None and subset < 1:
            parser.error(f"{option} must be at least 1; got {subset}")


def train_missing(keys, path_for, train, *, rerun: bool, summary) -> None:
    """Train every row of ``keys`` whose file ``path_for(key)`` is missing (all with
    ``rerun``) and save each as JSON the moment it is done, so an interrupted run keeps its
    finished rows; print ``summary(row)`` for each."""
    for key in keys:
        path = path_for(key)
        if path.is_file() and not rerun:
            continue
        row = train(key)
        atomic_write(path, lambda temporary, row=row: temporary.write_text(json.dumps(row, indent=1)))
        print(f"#   {summary(row)}", flush=True)


def refuse_stale_rows(parser: argparse.ArgumentParser, keys, path_for, differences) -> None:
    """Exit through ``parser`` when a saved row of ``keys`` (file ``path_for(key)``) was trained
    otherwise than its row is now, naming each difference that ``differences(key, saved)``
    (``"field: saved -> now"`` strings) finds, since :func:`train_missing` would keep it. Rows
    are named by their file's stem."""
    saved = [key for key in keys if path_for(key).is_file()]
    stale = [f"{path_for(key).stem}: {difference}" for key in saved
             for difference in differences(key, json.loads(path_for(key).read_text()))]
    if stale:
        folders = ", ".join(sorted({str(path_for(key).parent) for key in saved}))
        parser.error(f"saved rows in {folders} were trained otherwise than their rows are now "
                     f"({'; '.join(stale)}). Move them away to keep them, or pass --rerun to train them again.")


def image_counts(dataset: str, args: argparse.Namespace) -> tuple[int, int]:
    """How many training and test images a row of ``dataset`` (``"mnist"``, ``"cifar10"``) sees
    under the row options' ``--train-subset`` and ``--test-subset``: each split of
    :func:`stn_utils.data.load_dataset`, cut to its subset (a subset larger than the split
    takes it all, as :meth:`ImageDataset.subset` does)."""
    counts = []
    for split, subset in (("train", args.train_subset), ("test", args.test_subset)):
        size = len(data.load_dataset(dataset, split))
        counts.append(min(subset, size) if subset else size)
    return counts[0], counts[1]


def count_differences(saved: dict, train_images: int, test_images: int) -> list[str]:
    """``"train_images: saved -> now"`` (and for the test images) where the saved row
    ``saved`` was trained or tested on another number of images than a row is now."""
    return [f"{name}: {saved.get(name)!r} -> {now!r}"
            for name, now in (("train_images", train_images), ("test_images", test_images)) if saved.get(name) != now]


def read_rows(results: Path) -> list[dict]:
    """Every saved row in ``results``, in file-name order; exits with a message when there is none."""
    rows = [json.loads(p.read_text()) for p in sorted(results.glob("*.json"))]
    if not rows:
        sys.exit(f"no saved rows in {results}; train some first (without --table).")
    return rows
