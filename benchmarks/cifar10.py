"""Train the seed's STN net, the course's CNN and its STN-CNN on CIFAR-10; print one table.

    python benchmarks/cifar10.py --speed-steps 0     # every row, one run, no throughput table (about 6 h on 2 cores)
    python benchmarks/cifar10.py --rows cnn stn      # the course's two models only (about 30 min)
    python benchmarks/cifar10.py --table             # the table of the saved rows; trains nothing
    python benchmarks/cifar10.py --smoke --results /tmp/rows   # a few-minute check of the pipeline
    python benchmarks/cifar10.py --speed-only        # only the throughput table (a few minutes)
    python benchmarks/cifar10.py --rows cnn --set lookahead=False --results /tmp/rows
                                                     # one more choice changed: what did it buy?

Rows (``ROWS``, trained in this order):

- ``cnn`` and ``stn``: the course's models with ``stn_utils.recipes.CIFAR10`` (notebook
  05's); ``stn-seed1`` and ``cnn-seed1``: the same with seed 1.
- ``stn-muon``, ``cnn-muon`` and their ``-seed1`` rows: the course's models with
  ``stn_utils.recipes.CIFAR10_MUON``, the recipe with Muon for the convolutions' filters
  (``stn_utils.optim``), 17 epochs.
- ``stn-10-epochs``: the STN-CNN with the recipe cut to airbench's length, 10 epochs;
  ``stn-28-epochs``: lengthened to 28, past the 15 minutes: does more time reach 92 %?
- ``stn-shift4`` and ``stn-cutout8``: the STN-CNN with stronger augmentation, shifts of up
  to 4 pixels instead of 2, or an 8-pixel cutout after the shifts and flips
  (``stn_utils.recipes.AlternatingFlip``).
- ``stn-decay-x2``, ``stn-decay-half``, ``stn-smoothing-0.3`` and ``stn-batch256``: the
  STN-CNN with one more setting of the recipe changed over its 18 epochs: twice or half the
  weight decay, label smoothing 0.3 instead of 0.2, or batch 256 at the same step per image.
- ``cnn-airbench94``: the CNN, which is airbench94's network, with the recipe at airbench94's
  length and batch (10 epochs, batch 1,024): what airbench94's own run, 94.01 % on the
  original images, reaches on this copy of the data.
- ``stn-ceil-pool``: the STN-CNN whose max-pools round up (``ceil_pool=True``, see
  ``stn_utils.models.cifar_body``), so that its body drops no row or column of its maps at
  the bottom and right edges: does the transformer still learn its vertical squeeze?
- ``short-*``: the CNN with the recipe's epochs cut to ``SHORT_EPOCHS`` and one choice of
  the recipe undone at a time (``short-cnn`` undoes none): what each choice buys; the
  ``short-cnn-muon`` rows add one instead, Muon, at two rates.
- ``stn-fp32`` and ``stn-fp32-8-epochs``: the STN-CNN with bf16 turned off
  (``precision="fp32"``) and 10 or 8 epochs: settings for a CPU without bf16 hardware;
  ``stn-fp32-6-epochs`` and ``stn-fp32-muon-6-epochs``: the same, 6 epochs, without and
  with Muon (the latter is ``recipes.CIFAR10_QUICK``), since Muon bought most over a short
  run; ``stn-fp32-muon-6-epochs-seed1``: the latter with seed 1.
- ``seed``: the PyTorch tutorial's STN architecture with the seed notebook's recipe (SGD
  lr 0.01 without momentum, batch 64, no augmentation, normalise before the STN, zero
  padding, 20 epochs).

All rows use the same data (``stn_utils.data.load_dataset``, so ``STN_DATA_DIR`` /
``STN_DATA_SOURCE`` apply). "wall time" is training plus the one test that gives the row's
headline accuracy: with the recipe's test-time augmentation (mirror images and one-pixel
shifts for the course's models, none for the seed); nothing is evaluated between epochs.
The accuracy with fewer test-time views is given beside it, and for every model with a
transformer the median theta it predicts on the test images. Each finished row is saved at
once as ``<results>/<ROW>.json``, so an interrupted run keeps its rows and a second run
trains only the missing ones (``--rerun``: all again). A saved row whose recipe, model,
description or numbers of images are no longer its row's is refused, never overwritten: move
it away, or pass ``--rerun``.

A second table gives training throughput (images per second, after warm-up) for the
memory format and the precision: channels-last changes only the speed, bf16 autocast also
rounds the convolutions' arithmetic.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import datetime
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from machine import cpu_name, describe
from saved_rows import (
    add_row_options,
    check_row_options,
    count_differences,
    read_rows,
    refuse_stale_rows,
    train_missing,
)
from stn_utils import recipes
from stn_utils.data import ImageDataset, load_dataset, to_float
from stn_utils.models import CIFAR_WIDTHS, build_model, count_macs, count_parameters
from stn_utils.recipes import Recipe
from stn_utils.training import autocast_dtype, evaluate, fit, log_epochs, pick_device, seed_everything

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "cifar10"
# accuracy columns, by test-time augmentation level
TTA_COLUMNS = {0: "test accuracy", 1: "with flip TTA", 2: "with flip + shift TTA"}
SHORT_EPOCHS = 3


@dataclass(frozen=True)
class Row:
    """One row of the table: a model, the recipe it trains with, and the seed."""

    model: str
    recipe: Recipe
    description: str
    seed: int = 0
    course: bool = True  # --set and --widths change the course's rows only
    model_kwargs: tuple = ()  # (name, value) pairs for build_model, beyond the course's model


def _short(description: str, **undo) -> Row:
    """The CNN with SHORT_EPOCHS epochs and one choice undone; the whitening bias is
    trained for the full recipe's share of the run, rounded up to whole epochs."""
    full = recipes.CIFAR10
    share = math.ceil(SHORT_EPOCHS * full.whitening_bias_epochs / full.epochs)  # at least one epoch
    recipe = dataclasses.replace(full, epochs=SHORT_EPOCHS, whitening_bias_epochs=share)
    return Row("cifar_cnn", dataclasses.replace(recipe, **undo), f"CNN, {SHORT_EPOCHS} epochs, {description}")


def _variant(description: str, **changes) -> Row:
    """The STN-CNN with the course's recipe, changed by ``changes`` (Recipe fields)."""
    return Row("cifar_stn", dataclasses.replace(recipes.CIFAR10, **changes),
               f"course STN-CNN, recipes.CIFAR10 {description}")


ROWS = {
    "cnn": Row("cifar_cnn", recipes.CIFAR10, "course CNN, recipes.CIFAR10"),
    "stn": Row("cifar_stn", recipes.CIFAR10, "course STN-CNN, recipes.CIFAR10"),
    "stn-seed1": Row("cifar_stn", recipes.CIFAR10, "course STN-CNN, recipes.CIFAR10, seed 1", seed=1),
    "cnn-seed1": Row("cifar_cnn", recipes.CIFAR10, "course CNN, recipes.CIFAR10, seed 1", seed=1),
    "stn-muon": Row("cifar_stn", recipes.CIFAR10_MUON, "course STN-CNN, recipes.CIFAR10_MUON"),
    "cnn-muon": Row("cifar_cnn", recipes.CIFAR10_MUON, "course CNN, recipes.CIFAR10_MUON"),
    "stn-muon-seed1": Row("cifar_stn", recipes.CIFAR10_MUON, "course STN-CNN, recipes.CIFAR10_MUON, seed 1", seed=1),
    "cnn-muon-seed1": Row("cifar_cnn", recipes.CIFAR10_MUON, "course CNN, recipes.CIFAR10_MUON, seed 1", seed=1),
    "stn-10-epochs": _variant("cut to 10 epochs", epochs=10),
    "stn-28-epochs": _variant("lengthened to 28 epochs", epochs=28),
    "stn-shift4": _variant("with translations of up to 4 pixels", augment="cifar10-alternating-shift4"),
    "stn-cutout8": _variant("with 8-pixel cutout", augment="cifar10-alternating-cutout8"),
    "stn-decay-x2": _variant("with twice the weight decay", weight_decay=2 * recipes.CIFAR10.weight_decay),
    "stn-decay-half": _variant("with half the weight decay", weight_decay=recipes.CIFAR10.weight_decay / 2),
    "stn-smoothing-0.3": _variant("with label smoothing 0.3", label_smoothing=0.3),
    "stn-batch256": _variant("at batch 256 (the same step per image)", batch_size=256, lr=recipes.CIFAR10.lr / 2),
    "cnn-airbench94": Row("cifar_cnn", dataclasses.replace(recipes.CIFAR10, epochs=10, batch_size=1024,
                                                           lr=2 * recipes.CIFAR10.lr),
                          "course CNN, recipes.CIFAR10 at airbench94's 10 epochs and batch 1,024 "
                          "(the same step per image)"),
    "stn-ceil-pool": Row("cifar_stn", recipes.CIFAR10, "course STN-CNN, recipes.CIFAR10, its max-pools rounding up",
                         model_kwargs=(("ceil_pool", True),)),
    "short-cnn": _short("the recipe"),
    "short-cnn-lookahead-epoch-end": _short("weights set to the lookahead average at every epoch's end",
                                            lookahead_epoch_end=True),
    "short-cnn-random-flip": _short("random flips, not alternating", augment="cifar10"),
    "short-cnn-batch1024": _short("airbench's batch 1,024 (the same step per image)", batch_size=1024, lr=1.5),
    "short-cnn-batch256": _short("batch 256 (the same step per image)", batch_size=256,
                                 lr=recipes.CIFAR10.lr / 2),
    "short-cnn-schedule-0-0": _short("schedule from 0 to 0, peak at 20 %", lr_start=0.0, lr_end=0.0, warmup=0.2),
    "short-cnn-l2-decay": _short("L2 decay on weights only, not decoupled", decoupled_decay=False),
    "short-cnn-whitening-bias-trained": _short("whitening bias trained throughout", whitening_bias_epochs=None),
    "short-cnn-muon": _short("Muon for the convolutions' filters", muon_lr=0.12),
    "short-cnn-muon-half-rate": _short("Muon for the convolutions' filters at half the rate", muon_lr=0.06),
    "stn-fp32": Row("cifar_stn", dataclasses.replace(recipes.CIFAR10, precision="fp32", epochs=10),
                    "course STN-CNN, recipes.CIFAR10 in fp32 (bf16 off), 10 epochs"),
    "stn-fp32-8-epochs": Row("cifar_stn", dataclasses.replace(recipes.CIFAR10, precision="fp32", epochs=8),
                             "course STN-CNN, recipes.CIFAR10 in fp32 (bf16 off), 8 epochs"),
    "stn-fp32-6-epochs": Row("cifar_stn", dataclasses.replace(recipes.CIFAR10, precision="fp32", epochs=6),
                             "course STN-CNN, recipes.CIFAR10 in fp32 (bf16 off), 6 epochs"),
    "stn-fp32-muon-6-epochs": Row("cifar_stn", dataclasses.replace(recipes.CIFAR10_QUICK, precision="fp32"),
                                  "course STN-CNN, recipes.CIFAR10_MUON in fp32 (bf16 off), 6 epochs"),
    "stn-fp32-muon-6-epochs-seed1": Row("cifar_stn", dataclasses.replace(recipes.CIFAR10_QUICK, precision="fp32"),
                                        "course STN-CNN, recipes.CIFAR10_MUON in fp32 (bf16 off), 6 epochs, seed 1",
                                        seed=1),
    "seed": Row("tutorial_stn", recipes.SEED, "the seed: tutorial STN net, SGD 0.01, batch 64", course=False),
}


def parse_overrides(pairs) -> dict:
    """``["lr=0.2", "precision=fp32", "tta_level=1"]`` -> changes to the course's Recipe."""
    allowed = sorted(f.name for f in dataclasses.fields(Recipe) if f.name != "epochs")  # --epochs sets it
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


def row_setup(key: str, *, epochs=None, overrides=None, widths=None) -> tuple[Recipe, dict, str]:
    """The recipe, model arguments and description of row ``key`` with the command line's
    changes: ``epochs`` changes every row's; ``overrides`` (Recipe fields) and ``widths``
    (the body's) change the course's rows only."""
    row = ROWS[key]
    recipe, model_kwargs, description = row.recipe, dict(row.model_kwargs), row.description
    changes = [f"epochs={epochs}"] if epochs else []
    if epochs:
        recipe = dataclasses.replace(recipe, epochs=epochs)
    if row.course:
        changes += [f"{name}={value}" for name, value in (overrides or {}).items()]
        recipe = dataclasses.replace(recipe, **(overrides or {}))
        if widths and tuple(widths) != CIFAR_WIDTHS:
            model_kwargs["widths"] = tuple(widths)
            changes.append(f"widths={','.join(map(str, widths))}")
    if changes:
        description += f" with {' '.join(changes)}"
    return recipe, model_kwargs, description


def load_cifar10(args) -> tuple[ImageDataset, ImageDataset]:
    """CIFAR-10's training and test sets (``stn_utils.data.load_dataset``), cut to the row
    options' ``--train-subset`` and ``--test-subset``."""
    train, test = load_dataset("cifar10", "train"), load_dataset("cifar10", "test")
    return (train.subset(args.train_subset) if args.train_subset else train,
            test.subset(args.test_subset) if args.test_subset else test)


def row_differences(key: str, saved: dict, *, train_images: int, test_images: int, description: str | None = None,
                    **changes) -> list[str]:
    """``"field: saved -> now"`` wherever the saved row ``saved`` of ``key`` was trained with
    another recipe, model or number of images than the row now has (``changes`` as for
    :func:`row_setup`), or is described otherwise than ``description`` (default: the row's own)."""
    recipe, model_kwargs, own_description = row_setup(key, **changes)
    description = own_description if description is None else description
    differences = recipe.differences(saved["recipe"])
    model_kwargs = json.loads(json.dumps(model_kwargs))  # as saved: tuples become lists
    if "model_kwargs" in saved and saved["model_kwargs"] != model_kwargs:  # rows saved before it was recorded: {}
        differences.append(f"model_kwargs: {saved['model_kwargs']!r} -> {model_kwargs!r}")
    for name, now in (("model", ROWS[key].model), ("description", description)):
        if saved.get(name) != now:
            differences.append(f"{name}: {saved.get(name)!r} -> {now!r}")
    return differences + count_differences(saved, train_images, test_images)


def train_row(key: str, train, test, device, *, epochs=None, overrides=None, widths=None) -> dict:
    """Train one row and measure it; returns the row as plain values.

    The wall time covers training and the test the headline accuracy needs (with the
    recipe's test-time augmentation); the other accuracy columns are computed after.
    ``epochs``, ``overrides`` and ``widths``: see :func:`row_setup`."""
    row = ROWS[key]
    recipe, model_kwargs, description = row_setup(key, epochs=epochs, overrides=overrides, widths=widths)
    seed_everything(row.seed)
    model = build_model(row.model, **model_kwargs)
    started_at = datetime.datetime.now(datetime.timezone.utc)
    started = time.perf_counter()
    # one line per epoch on stderr, so that a long run shows its progress without touching the table
    history = fit(model, train, None, recipe, device=device, seed=row.seed,
                  callbacks=[lambda progress: log_epochs(progress, file=sys.stderr)])
    accuracies = {recipe.tta_level: _accuracy(model, test, recipe, recipe.tta_level, device)}
    wall = time.perf_counter() - started
    for level in range(recipe.tta_level):  # the same model with fewer test-time views
        accuracies[level] = _accuracy(model, test, recipe, level, device)
    precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[autocast_dtype(recipe.precision, device)]
    transform = {"theta_median": median_theta(model, test, device)} if model.stn is not None else {}
    return {"row": key, "description": description, "model": row.model, "model_kwargs": model_kwargs, **transform,
            "seed": row.seed,
            "parameters": count_parameters(model), "macs": count_macs(model, (3, 32, 32)), "epochs": recipe.epochs,
            "precision": precision, "seconds": wall, "training_seconds": history["seconds"][-1],
            "accuracy": {str(level): value for level, value in sorted(accuracies.items())},
            "train_loss": history["train_loss"], "train_acc": history["train_acc"], "recipe": recipe.to_dict(),
            "train_images": len(train), "test_images": len(test), "machine": describe(device),
            "cpu": cpu_name(), "started": started_at.isoformat(timespec="seconds")}


@torch.no_grad()
def median_theta(model, test: ImageDataset, device) -> list[list[float]]:
    """The median over the test images of each entry of the theta (2, 3) that ``model``'s
    spatial transformer predicts: where it samples, [[a, b, tx], [c, d, ty]]."""
    model.eval()
    thetas = torch.cat([model.predict_theta(to_float(chunk).to(device)).float().cpu()
                        for chunk in test.images.split(1000)])
    return [[round(value, 4) for value in entry] for entry in thetas.median(dim=0).values.tolist()]


def table_line(row: dict) -> str:
    """A saved row as one line of the markdown table."""
    cells = [f"{row['accuracy'][str(level)]:.2%}" if str(level) in row["accuracy"] else "-" for level in TTA_COLUMNS]
    return (f"| {row['description']} | {row['parameters']:,} | {row['macs'] / 1e6:.1f} | {row['epochs']} | "
            f"{row['precision']} | {row['seconds'] / 60:.1f} min | " + " | ".join(cells) + " |")


def print_table(rows: list[dict]) -> None:
    header = ("model", "parameters", "M MACs/image", "epochs", "precision", "wall time", *TTA_COLUMNS.values())
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    order = list(ROWS)
    for row in sorted(rows, key=lambda row: order.index(row["row"]) if row["row"] in order else len(order)):
        print(table_line(row))
    seconds = {row["row"]: row["seconds"] for row in rows}
    for stn, cnn in (("stn", "cnn"), ("stn-seed1", "cnn-seed1")):
        if stn in seconds and cnn in seconds:
            print(f"# {stn} / {cnn} wall time: {seconds[stn] / seconds[cnn]:.2f}x")
    for row in rows:
        if "theta_median" in row:
            (a, b, tx), (c, d, ty) = row["theta_median"]
            print(f"# {row['row']}: median theta over the test images: a {a:.4f}, b {b:+.4f}, tx {tx:+.4f}; "
                  f"c {c:+.4f}, d {d:.4f}, ty {ty:+.4f}")
    print(ran_on(rows))


def ran_on(rows: list[dict]) -> str:
    """The table's last line: the machines the saved rows were trained on."""
    return "# " + "; ".join(f"rows ran on {machine}" for machine in sorted({row["machine"] for row in rows}))


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
    add_row_options(parser, results=RESULTS, items="images")
    parser.add_argument("--speed-steps", type=int, default=8, help="timed steps per throughput row and round (0: skip)")
    parser.add_argument("--speed-only", action="store_true", help="print only the throughput table")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="change the recipe of the course's rows, e.g. --set lr=0.2 precision=fp32")
    parser.add_argument("--widths", default=None, help="the course body's stage widths, e.g. 32,64,128")
    args = parser.parse_args(argv)
    check_row_options(parser, args, results=RESULTS)
    try:
        overrides = parse_overrides(args.overrides)
        widths = tuple(int(w) for w in args.widths.split(",")) if args.widths else None
    except ValueError as error:
        parser.error(str(error))
    if widths is not None and (len(widths) != 3 or min(widths) < 1):
        parser.error(f"--widths takes three positive channel counts, e.g. 32,64,128; got {args.widths}")
    if (overrides or widths) and not args.table and args.results.resolve() == RESULTS.resolve():
        parser.error("--set and --widths make rows unlike the course's; give them a folder of their own with "
                     "--results, e.g. --results /tmp/rows")
    if args.speed_steps < 0:
        parser.error("--speed-steps must be 0 or more")
    if args.table:
        print_table(read_rows(args.results))
        return

    train, test = load_cifar10(args)
    if not (args.rerun or args.speed_only):
        refuse_stale_rows(parser, args.rows, lambda key: args.results / f"{key}.json",
                          lambda key, saved: row_differences(key, saved, train_images=len(train),
                                                             test_images=len(test), epochs=args.epochs,
                                                             overrides=overrides, widths=widths))
    device = pick_device(args.device)
    print(f"# {describe(device)}; train {len(train)}, test {len(test)} images", flush=True)

    if not args.speed_only:
        # each row is saved and printed as soon as it is measured, so a long run interrupted late keeps its rows
        train_missing(args.rows, lambda key: args.results / f"{key}.json",
                      lambda key: train_row(key, train, test, device, epochs=args.epochs, overrides=overrides,
                                            widths=widths),
                      rerun=args.rerun, summary=table_line)
        print_table([row for row in read_rows(args.results) if row["row"] in args.rows])
    if args.speed_steps:
        speed_table(train, device, args.speed_steps, widths)


if __name__ == "__main__":
    main()
