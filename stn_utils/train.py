"""Train one of the course's models from the command line, with checkpoints and resume.

    python -m stn_utils.train --dataset mnist --model mnist_stn --epochs 5 --out runs/mnist
    python -m stn_utils.train --dataset mnist --model mnist_stn --epochs 5 --out runs/mnist --resume
    torchrun --nproc_per_node=2 -m stn_utils.train --dataset mnist --epochs 5 --out runs/mnist-ddp

Trains with the data set's recipe (``stn_utils.recipes``: CIFAR10 or MNIST), writes
``<out>/checkpoint.pt`` after every epoch and ``<out>/history.json`` at the end, and prints
one line per epoch. ``--resume`` continues from the checkpoint, and refuses one trained
with other settings. Distributed training is this module's alone: under torchrun each
process trains on its share of every epoch (DistributedDataParallel).

Under torchrun, --batch-size is per process: N processes average N x batch-size images
per step, so an epoch has N times fewer steps at the same learning rate. To train the
recipe as one process would, divide its batch size by N (e.g. 2 processes x 256 for
CIFAR-10's 512); to keep a larger total batch, raise --lr about N-fold with care.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from . import recipes
from .data import DATASETS, SOURCES, DataNotFoundError, ImageDataset, load_dataset
from .files import atomic_write
from .models import MODELS, build_model
from .training import (
    CheckpointError,
    TrainingDiverged,
    fit,
    log_epochs,
    pick_device,
    prepare_model,
    read_checkpoint,
    seed_everything,
)

# the recipe and model each data set trains with unless the command line says otherwise
DEFAULT_RECIPES = {"cifar10": recipes.CIFAR10, "mnist": recipes.MNIST}
DEFAULT_MODELS = {"cifar10": "cifar_stn", "mnist": "mnist_stn"}


def _number(kind, low=1):
    """An argparse type: a whole number >= ``low`` (kind ``int``) or a positive, finite ``float``."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not (value >= low if kind is int else math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(
                f"must be {f'a whole number >= {low}' if kind is int else 'a positive number'}; got {text}")
        return value
    return parse


def parse_args(argv=None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parts = __doc__.split("\n\n")
    parser = argparse.ArgumentParser(prog="python -m stn_utils.train", description=parts[0], epilog=parts[-1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--dataset", required=True, choices=sorted(DATASETS))
    add("--model", choices=sorted(MODELS), help="default: cifar_stn for cifar10, mnist_stn for mnist")
    add("--epochs", type=_number(int), help="default: the data set's recipe (cifar10 8, mnist 3)")
    add("--batch-size", type=_number(int), help="per process (see below); default: the data set's recipe")
    add("--lr", type=_number(float), help="peak learning rate; default: the data set's recipe")
    add("--out", required=True, type=Path, help="output folder for checkpoint.pt and history.json")
    add("--resume", action="store_true", help="continue from <out>/checkpoint.pt when it exists")
    add("--seed", type=_number(int, 0), default=0)
    add("--data-root", help="data folder (default: $STN_DATA_DIR, else ~/.cache/stn_utils)")
    add("--data-source", choices=SOURCES, help="default: $STN_DATA_SOURCE, else auto")
    add("--train-subset", type=_number(int), metavar="N", help="train on a seeded random N images")
    add("--test-subset", type=_number(int), metavar="N", help="test on a seeded random N images")
    add("--device", help="cpu, cuda, cuda:1, mps (default: $STN_DEVICE, else the fastest there is)")
    return parser, parser.parse_args(argv)


@dataclass
class ProcessShard(ImageDataset):
    """Process ``rank``'s share of every epoch: ``order[rank::world_size]`` of the shuffled
    order that every process draws alike, after padding the order by wrapping around to a
    multiple of ``world_size``, so that every process takes the same number of steps and
    each step's shares together make up one batch of a single process's order."""

    rank: int = 0
    world_size: int = 1

    def __len__(self) -> int:
        return math.ceil(self.labels.numel() / self.world_size)

    def order(self, *, shuffle: bool = False, generator=None):
        order = super().order(shuffle=shuffle, generator=generator)
        return order.repeat(self.world_size)[:len(self) * self.world_size][self.rank::self.world_size]


def _average_train_scores(progress) -> None:
    """An epoch callback: the train loss and accuracy of the history, averaged over processes."""
    if progress.event == "epoch":
        history = progress.history
        scores = torch.tensor([history["train_loss"][-1], history["train_acc"][-1]], dtype=torch.float64)
        torch.distributed.all_reduce(scores)
        scores /= torch.distributed.get_world_size()
        history["train_loss"][-1], history["train_acc"][-1] = scores.tolist()


def _check_writable(folder: Path) -> None:
    probe = folder / f".write-probe-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise CheckpointError(f"cannot write to the output folder {folder} ({error.strerror or error}); "
                              "choose a writable folder with --out.") from error


def _pick_device(parser, args, world: int) -> torch.device:
    try:
        device = pick_device(args.device)
    except RuntimeError as error:
        parser.error(f"argument --device: {error}")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world > 1 and device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            parser.error(f"{world} processes per node but {torch.cuda.device_count()} GPU(s); "
                         "lower --nproc_per_node or use --device cpu.")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif world > 1 and (device.type != "cpu" or not torch.distributed.is_available()):
        parser.error(f"torchrun needs torch.distributed and --device cpu or cuda; got {device}.")
    return device


def _build(parser, args):
    name = args.model or DEFAULT_MODELS[args.dataset]
    model = build_model(name)
    needed = DATASETS[args.dataset]["channels"]
    if model.in_channels != needed:
        fitting = [other for other in sorted(MODELS) if build_model(other).in_channels == needed]
        parser.error(f"model {name!r} takes {model.in_channels}-channel images but {args.dataset} "
                     f"has {needed}; choose --model from {fitting}, or another --dataset.")
    return model


def _load(args) -> tuple[ImageDataset, ImageDataset]:
    train = load_dataset(args.dataset, "train", root=args.data_root, source=args.data_source)
    test = load_dataset(args.dataset, "test", root=args.data_root, source=args.data_source)
    train = train.subset(args.train_subset, seed=args.seed) if args.train_subset else train
    test = test.subset(args.test_subset, seed=args.seed) if args.test_subset else test
    return train, test


def _say_where_it_starts(checkpoint: Path, args, recipe) -> int:
    """Print whether this run resumes or starts afresh; the epochs a checkpoint holds (0 if none)."""
    if not checkpoint.is_file():
        return 0
    if not args.resume:
        print(f"starting afresh (no --resume); {checkpoint} is overwritten after the first epoch", file=sys.stderr)
        return 0
    done = read_checkpoint(checkpoint)["epoch"]
    print(f"resuming from {checkpoint}: {done} of {recipe.epochs} epochs done, continuing with epoch {done + 1}",
          file=sys.stderr)
    return done


def main(argv=None) -> int:
    parser, args = parse_args(argv)
    # DDP's stride check misfires on the 1-channel first conv of MNIST models (pytorch#47163)
    warnings.filterwarnings("ignore", "Grad strides do not match bucket view strides")
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    device = _pick_device(parser, args, world)
    checkpoint = args.out / "checkpoint.pt"
    changes = {k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size), ("lr", args.lr)) if v}
    recipe = dataclasses.replace(DEFAULT_RECIPES[args.dataset], **changes)
    saved = 0  # epochs this run can be resumed from
    try:
        seed_everything(args.seed)
        model = _build(parser, args)
        _check_writable(args.out)
        if world > 1:
            torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
        train, test = _load(args)
        saved = _say_where_it_starts(checkpoint, args, recipe) if rank == 0 else 0
        callbacks = [log_epochs] if rank == 0 else []
        if world > 1:
            # fitted once on the whole set, before DDP copies rank 0's weights to every process
            prepare_model(model.to(device), train, args.seed, device)
            train = ProcessShard(train.images, train.labels, train.classes, rank=rank, world_size=world)
            model = torch.nn.parallel.DistributedDataParallel(model.to(device))
            callbacks.insert(0, _average_train_scores)

        def count_saved(progress):
            nonlocal saved
            saved = progress.epoch if progress.event == "epoch" else saved
        # every process resumes from the checkpoint; only rank 0 writes it
        history = fit(model, train, test if rank == 0 else None, recipe, device=device, seed=args.seed,
                      checkpoint=checkpoint, resume=args.resume, write_checkpoints=rank == 0,
                      callbacks=[*callbacks, count_saved])
        if world > 1:
            torch.distributed.barrier()  # every process ends after rank 0 has written its last checkpoint
        if rank == 0:
            atomic_write(args.out / "history.json", lambda path: path.write_text(json.dumps(history, indent=1)))
            print(f"done: test accuracy {history['test_acc'][-1]:.4f} after {history['epoch'][-1]} epochs "
                  f"({history['seconds'][-1]:.1f} s of training); checkpoint {checkpoint}")
    except (DataNotFoundError, CheckpointError, TrainingDiverged, ValueError, OSError) as error:
        message = " ".join(str(error).split())  # one line
        if isinstance(error, DataNotFoundError):
            message += " On the command line: --data-root DIR and --data-source {auto,folder,download}."
        if isinstance(error, TrainingDiverged) and saved:
            message += f" The last good checkpoint is kept at {checkpoint} (epoch {saved})."
        if isinstance(error, CheckpointError) and "another recipe" in message:
            message += " Here: drop --resume, or choose a new --out."
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        advice = (f"add --resume to continue from {checkpoint} (epoch {saved} done)" if saved
                  else "no epoch had finished, so nothing was saved")
        print(f"{parser.prog}: interrupted; {advice}", file=sys.stderr)
        return 130
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
