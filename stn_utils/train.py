"""Train one of the course's models from the command line, with checkpoints and resume.

    python -m stn_utils.train --dataset mnist --model mnist_stn --epochs 5 --out runs/mnist
    python -m stn_utils.train --dataset mnist --model mnist_stn --epochs 5 --out runs/mnist --resume
    torchrun --nproc_per_node=2 -m stn_utils.train --dataset mnist --epochs 5 --out runs/mnist-ddp

Writes ``<out>/checkpoint.pt`` after every epoch and ``<out>/history.json`` at the end. Under
torchrun each process trains on its share of every epoch (DistributedDataParallel).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from pathlib import Path

import torch

from .data import DATASETS, SOURCES, DataNotFoundError, load_dataset
from .models import MODELS, build_model
from .training import CIFAR10_RECIPE, CheckpointError, TrainingDiverged, fit, pick_device, seed_everything

RECIPES = {"cifar10": CIFAR10_RECIPE, "mnist": dict(batch_size=128, lr=0.02)}
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
    parser = argparse.ArgumentParser(prog="python -m stn_utils.train", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--dataset", required=True, choices=sorted(DATASETS))
    add("--model", choices=sorted(MODELS), help="default: cifar_stn for cifar10, mnist_stn for mnist")
    add("--epochs", type=_number(int), default=10)
    add("--batch-size", type=_number(int), help="per process; default: the data set's recipe")
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


def _channels(model: torch.nn.Module) -> int:
    return next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d)).in_channels


def _check_writable(folder: Path) -> None:
    probe = folder / f".write-probe-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise CheckpointError(f"cannot write to the output folder {folder} ({error.strerror or error}); "
                              "choose a writable folder with --out.") from error


def _write_json(path: Path, data) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=1))
    os.replace(partial, path)  # atomic: never half a file


def main(argv=None) -> int:
    parser, args = parse_args(argv)
    # DDP's stride check misfires on the 1-channel first conv of MNIST models (pytorch#47163)
    warnings.filterwarnings("ignore", "Grad strides do not match bucket view strides")
    try:
        device = pick_device(args.device)
    except RuntimeError as error:
        parser.error(f"argument --device: {error}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world > 1 and device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            parser.error(f"{world} processes per node but {torch.cuda.device_count()} GPU(s); "
                         "lower --nproc_per_node or use --device cpu.")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif world > 1 and (device.type != "cpu" or not torch.distributed.is_available()):
        parser.error(f"torchrun needs torch.distributed and --device cpu or cuda; got {device}.")
    checkpoint = args.out / "checkpoint.pt"
    rank = int(os.environ.get("RANK", "0"))
    try:
        seed_everything(args.seed)
        model_name = args.model or DEFAULT_MODELS[args.dataset]
        model = build_model(model_name)
        needed = DATASETS[args.dataset]["channels"]
        if _channels(model) != needed:
            fitting = [name for name in sorted(MODELS) if _channels(build_model(name)) == needed]
            parser.error(f"model {model_name!r} takes {_channels(model)}-channel images but {args.dataset} "
                         f"has {needed}; choose --model from {fitting}, or another --dataset.")
        _check_writable(args.out)
        if world > 1:
            torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
        train = load_dataset(args.dataset, "train", root=args.data_root, source=args.data_source)
        test = load_dataset(args.dataset, "test", root=args.data_root, source=args.data_source)
        train = train.subset(args.train_subset, seed=args.seed) if args.train_subset else train
        test = test.subset(args.test_subset, seed=args.seed) if args.test_subset else test
        recipe = dict(RECIPES[args.dataset])
        recipe.update({k: v for k, v in (("batch_size", args.batch_size), ("lr", args.lr)) if v is not None})
        if rank == 0 and checkpoint.is_file():
            print(f"{'resuming from' if args.resume else 'starting afresh (no --resume); overwriting'} "
                  f"{checkpoint}", file=sys.stderr)
        history = fit(model, train, test, epochs=args.epochs, seed=args.seed, device=device,
                      checkpoint=checkpoint, resume=args.resume, progress=rank == 0 and sys.stderr.isatty(),
                      **recipe)
        if rank == 0:
            _write_json(args.out / "history.json", history)
            print(f"done: test accuracy {history['test_acc'][-1]:.4f} after {history['epoch'][-1]} epochs "
                  f"({history['seconds'][-1]:.1f} s of training); checkpoint {checkpoint}")
    except (DataNotFoundError, CheckpointError, TrainingDiverged, ValueError, OSError) as error:
        message = " ".join(str(error).split())  # one line
        if isinstance(error, DataNotFoundError):
            message += " On the command line: --data-root DIR and --data-source {auto,folder,download}."
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; add --resume to continue from {checkpoint}", file=sys.stderr)
        return 130
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
