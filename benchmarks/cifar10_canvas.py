"""CIFAR-10 on a 48x48 canvas: a CNN against an STN-CNN, measured against plain CIFAR-10.

    python benchmarks/cifar10_canvas.py                    # both models, seed 0 (about 25 minutes)
    python benchmarks/cifar10_canvas.py --rows stn:1 stn-identity     # MODEL[:SEED]
    python benchmarks/cifar10_canvas.py --table            # only print the table of the saved rows
    python benchmarks/cifar10_canvas.py --table --poses    # and what the saved STN-CNNs learned of the pose
    python benchmarks/cifar10_canvas.py --smoke --results /tmp/smoke  # a few-minute check of the pipeline

Every CIFAR-10 image is turned (+-45 degrees), scaled (0.7 to 1.0) and placed at random on a
black 48x48 canvas (``stn_utils.canvas``): afresh in every batch for training, one fixed,
seeded draw of the 10,000 test images for testing. ``cnn`` is notebook 05's CNN on the
whole canvas; ``stn`` puts an affine transformer in front of the same body, sampling a
32x32 window. Both train with notebook 05's earlier 8-epoch recipe
(``stn_utils.recipes.CIFAR10_8EPOCH``, through ``stn_utils.canvas.canvas_recipe``), each
for the epochs that keep it within 15 minutes on two CPU cores with bf16 (the CNN fewer: it
pays for 2.25 times the pixels). The other models of ``stn_utils.canvas.MODELS`` change one
thing of ``stn``: ``stn-identity`` starts its transformer at the identity (the whole
canvas), ``stn-identity-cnn-epochs`` is that model trained for the CNN's epochs, and
``stn-fast`` trains its transformer at 10 times the recipe's rate.

Each finished row is saved at once as ``<results>/<MODEL>-seed<SEED>.json`` with its
weights (fp16) as ``.pt``; a second run trains only the missing rows (``--rerun``: all
again). A saved row trained with another recipe or on another number of images than its
row has now is refused, never overwritten: move it away, or pass ``--rerun``. The table's
last line says how much of what the CNN loses on the canvas, against the stored CNN of the
same recipe on plain CIFAR-10 (``stn_utils.canvas.REFERENCE_RUN``, measured again here,
with the same test-time augmentation), the STN-CNN wins back: the target is at least half.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import torch

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
from stn_utils.canvas import (
    COURSE_MODELS,
    MODELS,
    STORED_ROWS,
    canvas_recipe,
    canvas_table,
    cifar_canvas,
    learned_pose,
    reference_accuracy,
    saved_canvas_row,
    train_canvas_row,
)
from stn_utils.data import to_float
from stn_utils.stored import write_weights
from stn_utils.training import pick_device

RESULTS = Path(__file__).resolve().parents[1] / STORED_ROWS
BUDGET_MINUTES = 15


def parse_row(text: str) -> tuple[str, int]:
    model, _, seed = text.partition(":")
    if model not in MODELS or not (seed or "0").isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not MODEL[:SEED] with MODEL one of {list(MODELS)} and SEED "
                                         f"a whole number, e.g. stn or cnn:1.")
    return model, int(seed or 0)


def print_poses(rows: list[dict], args) -> None:
    """Per saved STN-CNN row: how the transformer's window follows the true placement of
    the test images: for zoom, angle and centre, the slope of the learned amount against
    the true one (1: it follows the placement; 0: the same window for every image) and
    their correlation r."""
    data = cifar_canvas(test_subset=args.test_subset, train_subset=2)
    print("| model | seed | median zoom, learned / true | zoom: slope (r) | angle: slope (r) | "
          "centre x: slope (r) | centre y: slope (r) |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        if MODELS[row["name"]].build != "canvas_stn":
            continue
        saved = saved_canvas_row(row["name"], data.test, seed=row["seed"], folder=args.results)
        if saved is None:
            print(f"| {MODELS[row['name']].label} | {row['seed']} | its weights are missing or of another recipe "
                  f"| | | | |")
            continue
        stn = saved["model"].stn
        with torch.no_grad():
            thetas = torch.cat([stn.predict_theta(to_float(data.test.images[i:i + 1000])).float()
                                for i in range(0, len(data.test), 1000)])
        pose, true = learned_pose(thetas), data.placement

        def fit(learned, truth) -> str:
            # slope 1: the window follows the true amount; 0: one fixed window for every image
            slope = torch.cov(torch.stack([truth, learned]))[0, 1] / truth.var()
            return f"{slope.item():+.3f} ({torch.corrcoef(torch.stack([truth, learned]))[0, 1].item():+.2f})"

        print(f"| {MODELS[row['name']].label} | {row['seed']} | {pose.zoom.median():.2f} / {true.zoom.median():.2f} | "
              f"{fit(pose.zoom, true.zoom)} | {fit(pose.angle, true.angle)} | "
              f"{fit(pose.centre[:, 0], true.centre[:, 0])} | {fit(pose.centre[:, 1], true.centre[:, 1])} |")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", nargs="+", type=parse_row, default=[(m, 0) for m in COURSE_MODELS])
    add_row_options(parser, results=RESULTS, items="images")
    parser.add_argument("--poses", action="store_true",
                        help="with --table: also measure how the saved STN-CNNs' windows follow the true pose")
    args = parser.parse_args(argv)
    check_row_options(parser, args, results=RESULTS)
    device = pick_device(args.device)

    def row_recipe(model: str):
        return canvas_recipe(model, **({"epochs": args.epochs} if args.epochs else {}))

    def train(key: tuple[str, int]) -> dict:
        model, seed = key
        data = cifar_canvas(train_subset=args.train_subset, test_subset=args.test_subset, seed=seed)
        recipe = row_recipe(model)
        row = train_canvas_row(model, data.train, data.test, recipe=recipe, device=device, seed=seed)
        write_weights(path(key).with_suffix(".pt"), row["model"].state_dict())
        return dict(name=model, seed=seed, error=row["error"], seconds=row["seconds"],
                    test_seconds=row["test_seconds"], epochs=row["epochs"],
                    train_acc=row["history"]["train_acc"][-1], parameters=row["parameters"], macs=row["macs"],
                    recipe=recipe.to_dict(), train_images=len(data.train), test_images=len(data.test),
                    cpu=cpu_name(), machine=describe(device), date=datetime.date.today().isoformat())

    def path(key: tuple[str, int]) -> Path:
        return args.results / f"{key[0]}-seed{key[1]}.json"

    if not args.table:
        print(f"# {describe(device)}", flush=True)
        args.results.mkdir(parents=True, exist_ok=True)
        if not args.rerun:
            counts = image_counts("cifar10", args)
            refuse_stale_rows(parser, args.rows, path,
                              lambda key, saved: row_recipe(key[0]).differences(saved["recipe"])
                              + count_differences(saved, *counts))
        train_missing(args.rows, path, train, rerun=args.rerun,
                      summary=lambda row: f"{row['name']} seed {row['seed']}: {100 - row['error']:.2f} % test "
                                          f"accuracy, {row['seconds'] / 60:.1f} min of training "
                                          f"({row['epochs']} epochs)")
    rows = read_rows(args.results)
    machines = sorted({r["machine"] for r in rows})
    print(f"# {len(rows)} rows, trained on {' and '.join(machines)}; CIFAR-10 test accuracy with test-time "
          f"augmentation, %")
    print(canvas_table(rows, reference_accuracy(test_subset=args.test_subset, device=device)))
    slowest = max(r["seconds"] for r in rows) / 60
    print(f"# the slowest model trained {slowest:.1f} min ({'within' if slowest <= BUDGET_MINUTES else 'OVER'} "
          f"{BUDGET_MINUTES} min)")
    if args.poses:
        print_poses(rows, args)


if __name__ == "__main__":
    main()
