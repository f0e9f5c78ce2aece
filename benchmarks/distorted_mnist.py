"""CNN against ST-CNNs on the STN paper's distorted MNIST, beside the paper's Table 1.

    python benchmarks/distorted_mnist.py                     # every cell of the table (hours); saved rows are kept
    python benchmarks/distorted_mnist.py --rows RTS:affine RTS:cnn:1   # DISTORTION:MODEL[:SEED]
    python benchmarks/distorted_mnist.py --table             # only print the table of the saved rows
    python benchmarks/distorted_mnist.py --smoke --results /tmp/smoke  # a one-minute check of the pipeline

A row is ``DISTORTION:MODEL[:SEED]``: DISTORTION one of R, RTS, P, E, cluttered; MODEL ``cnn``
or a transform family (affine, projective, tps, attention); SEED 0 by default. Each row
trains with ``stn_utils.experiments.distortion_recipe`` (fresh distortions of every training
digit in every epoch) and is tested on one fixed draw of the 10,000 distorted test digits.
Every finished row is saved at once as ``<results>/<DISTORTION>-<MODEL>-seed<SEED>.json``,
with the trained weights (fp16) beside it as ``.pt``, so a long run that is interrupted
keeps its rows, and a second run trains only the missing ones (``--rerun`` trains them
again). A saved row trained with another recipe or on another number of images than its
row has now is refused, never overwritten: move it away, or pass ``--rerun``. The table is
then assembled from the saved rows: one line per distortion, each cell our test error (mean
± standard deviation where there are several seeds) beside the paper's, the longest
training time of the line's models, and a verdict on the affine ST-CNN against the paper's
error and the 10-minute budget.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from machine import cpu_name, describe
from saved_rows import (
    add_row_options,
    check_row_options,
    count_differences,
    image_counts,
    read_rows,
    refuse_stale_rows,
    train_missing,
)
from stn_utils.distortions import DISTORTIONS
from stn_utils.experiments import TABLE_MODELS, benchmark_table, distorted_mnist, distortion_recipe, train_row
from stn_utils.recipes import Recipe
from stn_utils.stored import write_weights
from stn_utils.training import pick_device
from stn_utils.transforms import TRANSFORMS

RESULTS = Path(__file__).parent / "results" / "distorted_mnist"
# every cell of the paper's Table 1 and its cluttered figures; RTS and cluttered with three seeds
ROWS = ([f"{d}:{m}" for d in ("R", "RTS", "P", "E") for m in TABLE_MODELS] + ["cluttered:cnn", "cluttered:affine"]
        + [f"{d}:{m}:{seed}" for d in ("RTS", "cluttered") for m in ("cnn", "affine") for seed in (1, 2)])


def parse_row(text: str) -> tuple[str, str, int]:
    distortion, _, rest = text.partition(":")
    model, _, seed = rest.partition(":")
    if distortion not in DISTORTIONS or (model != "cnn" and model not in TRANSFORMS) or not (seed or "0").isdigit():
        raise argparse.ArgumentTypeError(
            f"{text!r} is not DISTORTION:MODEL[:SEED] with DISTORTION in {sorted(DISTORTIONS)}, MODEL 'cnn' or "
            f"one of {sorted(TRANSFORMS)} and SEED a whole number, e.g. RTS:affine or RTS:cnn:1.")
    return distortion, model, int(seed or 0)


def row_file(results: Path, distortion: str, model: str, seed: int) -> Path:
    return results / f"{distortion}-{model}-seed{seed}.json"


def transform_of(model: str) -> str | None:
    """A row's model ("cnn" or a transform family) as ``train_row`` takes it: ``None`` for the CNN."""
    return None if model == "cnn" else model


def row_recipe(distortion: str, model: str, args) -> Recipe:
    return distortion_recipe(distortion, transform_of(model), **({"epochs": args.epochs} if args.epochs else {}))


def run_row(distortion: str, model: str, seed: int, device, args) -> dict:
    """Train and test one row; return what is saved of it."""
    train, test = distorted_mnist(distortion, train_subset=args.train_subset, test_subset=args.test_subset)
    recipe = row_recipe(distortion, model, args)
    row = train_row(distortion, transform_of(model), train, test, recipe=recipe, device=device, seed=seed)
    # the trained weights (fp16) beside the row, for notebook 06 to load
    write_weights(row_file(args.results, distortion, model, seed).with_suffix(".pt"), row["model"].state_dict())
    history = row["history"]
    return dict(distortion=distortion, transform=row["transform"], model=model, seed=seed,
                error=row["error"], seconds=row["seconds"], test_seconds=row["test_seconds"],
                epochs=len(history["epoch"]), train_acc=history["train_acc"][-1], parameters=row["parameters"],
                macs=row["macs"], recipe=recipe.to_dict(), train_images=len(train), test_images=len(test),
                cpu=cpu_name(), machine=describe(device), date=datetime.date.today().isoformat())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", nargs="+", type=parse_row, default=[parse_row(r) for r in ROWS])
    add_row_options(parser, results=RESULTS, items="digits")
    args = parser.parse_args(argv)
    check_row_options(parser, args, results=RESULTS)
    device = pick_device(args.device)
    if not args.table:
        if not args.rerun:
            counts = image_counts("mnist", args)
            refuse_stale_rows(parser, args.rows, lambda key: row_file(args.results, *key),
                              lambda key, saved: row_recipe(key[0], key[1], args).differences(saved["recipe"])
                              + count_differences(saved, *counts))
        print(f"# {describe(device)}", flush=True)
        train_missing(args.rows, lambda key: row_file(args.results, *key),
                      lambda key: run_row(*key, device, args), rerun=args.rerun,
                      summary=lambda row: f"{row['distortion']} {row['model']} seed {row['seed']}: "
                                          f"{row['error']:.2f} % test error, {row['seconds'] / 60:.1f} min "
                                          f"of training ({row['epochs']} epochs)")
    rows = read_rows(args.results)
    machines = sorted({r["machine"] for r in rows})
    print(f"# {len(rows)} rows, trained on {' and '.join(machines)}; test error %: ours / the paper's")
    print(benchmark_table(rows))


if __name__ == "__main__":
    main()
