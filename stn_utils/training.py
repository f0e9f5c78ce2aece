"""Seeding, device choice, a small training loop, evaluation and checkpoints.

The data stay in memory as uint8 tensors (see :mod:`stn_utils.data`); batches are cut,
moved to the device, scaled to [0, 1] and augmented there, which on a CPU is several
times faster than a DataLoader decoding and transforming one image at a time.
"""

from __future__ import annotations

import math
import os
import random
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .data import ImageDataset, to_float
from .models import PatchWhitening, fit_whitening

__all__ = [
    "CIFAR10_RECIPE",
    "CIFAR10_EPOCHS",
    "cifar10_augment",
    "seed_everything",
    "pick_device",
    "autocast_dtype",
    "batches",
    "evaluate",
    "tta_logits",
    "shift_one_pixel",
    "accuracy_curve",
    "fit",
    "save_checkpoint",
    "load_checkpoint",
    "CheckpointError",
    "TrainingDiverged",
]


def cifar10_augment(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Random 2-pixel translation (reflected edges) and left-right flip, per image, for a
    CIFAR-10 batch. Two pixels, not the usual four: a run of a few epochs has too few passes
    to learn from stronger augmentation (airbench's choice, arXiv 2404.00498)."""
    from .data import random_crop_flip
    return random_crop_flip(images, padding=2, flip=True, generator=generator)


# The recipe notebook 05 and benchmarks/cifar10.py train with: keyword arguments of fit().
# airbench94's optimiser settings (arXiv 2404.00498) carried over to batch 512 and a mean
# loss: the same step per training image (lr 0.75 with Nesterov momentum 0.85 is airbench's
# 11.5 per 1,024 images), the same weight decay per image, norm shifts learning 64x faster,
# label smoothing 0.2, lookahead. The STN's step is 1 % of the classifier's. bf16 autocast
# where the hardware has it. CIFAR10_EPOCHS: on 2 CPU cores (with AMX) 9 epochs of the CNN
# took 15.5 min with the final test (90.17 %), so 8 leave the STN-CNN a margin under 15
# minutes on a slow hour. The README's benchmark section gives what each choice bought.
CIFAR10_RECIPE = dict(batch_size=512, lr=0.75, momentum=0.85, weight_decay=1.33e-3, label_smoothing=0.2,
                      schedule="onecycle", norm_lr_scale=64.0, lookahead=True, stn_lr_scale=0.01,
                      augment=cifar10_augment, channels_last=True, precision="auto",
                      flip_tta=True, translate_tta=True)
CIFAR10_EPOCHS = 8


# lookahead (fit(lookahead=True)): the average starts 30 % into the run, takes a step every
# 5,120 training images, and keeps at most 0.95 ** 5 of itself per step (airbench's values)
LOOKAHEAD_START, LOOKAHEAD_EVERY, LOOKAHEAD_DECAY = 0.3, 5120, 0.95 ** 5

NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)

# training images that fit() shows a model's PatchWhitening stem (about 1.9 M patches at 32x32)
WHITENING_SAMPLE = 2000


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used: missing, truncated, or of another model."""


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite."""


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and all GPUs); returns a CPU generator seeded too."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)


def pick_device(preferred: str | None = None) -> torch.device:
    """``preferred`` (or ``$STN_DEVICE``) if given, else cuda, then mps, then cpu."""
    preferred = preferred or os.environ.get("STN_DEVICE")
    if preferred:
        device = torch.device(preferred)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {preferred!r} was asked for but CUDA is not available; "
                               "use 'cpu' or unset STN_DEVICE.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


PRECISIONS = ("fp32", "bf16", "auto")


def _native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively (not emulated, which is slower than fp32)."""
    if device.type == "cuda":
        try:
            return torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # torch < 2.3 has no including_emulation and reports native support only
            return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        # AVX512-BF16 or AMX (Intel Cooper Lake, Sapphire Rapids and later; AMD Zen 4 and later)
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)
    return False


def autocast_dtype(precision: str, device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``: ``torch.bfloat16`` or ``None`` (fp32).

    ``"bf16"`` always autocasts to bfloat16, ``"fp32"`` never, and ``"auto"`` only where the
    device has bfloat16 arithmetic in hardware: CUDA GPUs from Ampere on, and CPUs with
    AVX512-BF16 or AMX. Elsewhere bf16 is emulated and several times *slower* than fp32.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}.")
    if precision == "auto":
        precision = "bf16" if _native_bf16(torch.device(device)) else "fp32"
    return torch.bfloat16 if precision == "bf16" else None


def _autocast(device, dtype: torch.dtype | None):
    return torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None)


def batches(data: ImageDataset, batch_size: int, *, device=None, shuffle: bool = False,
            generator: torch.Generator | None = None, drop_last: bool = False,
            rank: int = 0, world_size: int = 1):
    """Yield ``(images, labels)`` batches: float images (B, C, H, W) in [0, 1] on ``device``.

    With ``world_size > 1`` this yields only process ``rank``'s share, ``order[rank::world_size]``
    of the (shuffled) order, which every process draws alike from an equally seeded
    ``generator``. The order is first padded by wrapping around to a multiple of
    ``world_size``, so that every process gets the same number of batches.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_size}.")
    if len(data) == 0:
        raise ValueError("the data set is empty; nothing to iterate over.")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size); got rank {rank}, world_size {world_size}.")
    order = torch.randperm(len(data), generator=generator) if shuffle else torch.arange(len(data))
    if world_size > 1:
        padded = math.ceil(len(order) / world_size) * world_size
        order = order.repeat(world_size)[:padded][rank::world_size]
    stop = len(order) - len(order) % batch_size if drop_last else len(order)
    for start in range(0, stop, batch_size):
        index = order[start:start + batch_size]
        yield (to_float(data.images[index].to(device, non_blocking=True)),
               data.labels[index].to(device, non_blocking=True))


def _prepare(images: Tensor, channels_last: bool) -> Tensor:
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images


def shift_one_pixel(images: Tensor, step: int) -> Tensor:
    """Move the content of (B, C, H, W) ``images`` by ``step`` (+1 or -1) pixels down and
    right, filling the uncovered edge by reflection."""
    if step not in (1, -1):
        raise ValueError(f"step must be +1 or -1 pixel; got {step!r}.")
    height, width = images.shape[-2:]
    padded = F.pad(images, (1, 1, 1, 1), mode="reflect")
    return padded[..., 1 - step:1 - step + height, 1 - step:1 - step + width]


def tta_logits(model: nn.Module, images: Tensor, *, flip: bool = False, translate: bool = False) -> Tensor:
    """Logits of ``model`` averaged over test-time views of ``images`` (B, C, H, W).

    ``flip`` adds each image's mirror image. ``translate`` adds every view moved one pixel
    up-left and one down-right (:func:`shift_one_pixel`); the unmoved views keep half the
    weight, as in airbench (arXiv 2404.00498). Returns float32 (B, classes).
    """
    views = [images, images.flip(3)] if flip else [images]
    logits = sum(model(view).float() for view in views) / len(views)
    if translate:
        moved = [model(shift_one_pixel(view, step)).float() for view in views for step in (1, -1)]
        logits = (logits + sum(moved) / len(moved)) / 2
    return logits


@torch.no_grad()
def evaluate(model: nn.Module, data: ImageDataset, *, batch_size: int = 500, device=None,
             flip_tta: bool = False, translate_tta: bool = False, channels_last: bool = False,
             precision: str = "fp32") -> dict:
    """Mean cross-entropy and accuracy of ``model`` on ``data``.

    Args:
        flip_tta: average the logits of each image and its mirror image (test-time
            augmentation; only sensible where mirroring keeps the label, as on CIFAR-10).
        translate_tta: also average over one-pixel shifts (see :func:`tta_logits`); with
            ``flip_tta`` that is six forward passes per image.
        precision: ``"fp32"``, ``"bf16"`` or ``"auto"`` (see :func:`autocast_dtype`).

    Returns:
        ``{"loss": float, "accuracy": float}`` with accuracy as a fraction.
    """
    device = device or next(model.parameters()).device
    dtype = autocast_dtype(precision, device)
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    for images, labels in batches(data, batch_size, device=device):
        with _autocast(device, dtype):
            logits = tta_logits(model, _prepare(images, channels_last), flip=flip_tta, translate=translate_tta)
        total_loss += F.cross_entropy(logits, labels, reduction="sum").item()
        correct += (logits.argmax(1) == labels).sum().item()
    model.train(was_training)
    return {"loss": total_loss / len(data), "accuracy": correct / len(data)}


def accuracy_curve(model: nn.Module, data: ImageDataset, distort: Callable[[Tensor, float], Tensor],
                   amounts, *, batch_size: int = 1000, progress: bool = True) -> list[float]:
    """Test accuracy of ``model`` on ``data`` distorted by each of ``amounts``.

    ``distort(images, amount)`` gets the whole image tensor (N, C, H, W) and returns the
    distorted images, e.g. ``lambda x, a: stn_utils.data.rotate(x, a)``.
    """
    amounts = list(amounts)
    if not amounts:
        raise ValueError("amounts is empty; give at least one distortion amount.")
    steps = _progress(amounts, progress, desc="distortions", unit="amount")
    return [evaluate(model, ImageDataset(distort(data.images, amount), data.labels, data.classes),
                     batch_size=batch_size)["accuracy"] for amount in steps]


def fit(model: nn.Module, train: ImageDataset, test: ImageDataset | None = None, *, epochs: int,
        batch_size: int = 128, lr: float = 0.05, momentum: float = 0.9, weight_decay: float = 5e-4,
        label_smoothing: float = 0.0, schedule: str = "onecycle", stn_lr_scale: float = 1.0,
        norm_lr_scale: float = 1.0, lookahead: bool = False,
        augment: Callable[[Tensor, torch.Generator], Tensor] | None = None,
        progressive_sizes: Sequence[int] = (), seed: int = 0, device=None, channels_last: bool = False,
        precision: str = "fp32", flip_tta: bool = False, translate_tta: bool = False,
        checkpoint: str | os.PathLike | None = None, resume: bool = False,
        on_step: Callable[[int], None] | None = None, progress: bool = True) -> dict:
    """Train ``model`` with SGD (Nesterov momentum) and return its per-epoch history.

    Args:
        epochs: number of passes over ``train`` (>= 1).
        lr: peak learning rate. ``schedule`` is ``"onecycle"`` (linear warm-up over the
            first 20 % of steps, then linear decay to zero) or ``"constant"``.
        stn_lr_scale: multiplies the learning rate of ``model.stn``'s parameters, if the
            model has a spatial transformer there.
        norm_lr_scale: multiplies the learning rate of normalisation layers' parameters
            (the shifts, and scales where they are trained).
        lookahead: keep a moving average of the weights (and batch-norm statistics) from
            ``LOOKAHEAD_START`` of the run on, and set the weights back to it every
            ``LOOKAHEAD_EVERY`` training images and at the end of every epoch (the
            lookahead scheme of hlb-CIFAR10 and airbench). The average forgets fast at first
            and ever more slowly towards the end, so the last epochs are averaged.
        augment: ``augment(images, generator) -> images`` applied to every training
            batch, on the device (for example :func:`stn_utils.data.random_crop_flip`).
        progressive_sizes: train at lower resolution first (progressive resizing): the
            run is split into ``len(progressive_sizes)`` equal runs of epochs, and in the
            k-th the (augmented) training images are resized to ``progressive_sizes[k]``
            pixels square. ``(16, 24, 32)`` on CIFAR-10 makes the first third of the epochs
            about 4x and the second about 2x cheaper; evaluation is always at full size.
            Needs a model that takes any input size. Empty (default): always full size.
        seed: seeds the initial shuffle and augmentation generator; call
            :func:`seed_everything` before building the model for a fully seeded run.
        channels_last: keep images and weights in channels-last memory order, which
            oneDNN's (CPU) and cuDNN's convolutions run faster.
        precision: ``"fp32"``, ``"bf16"`` (autocast to bfloat16 for training and the
            per-epoch test) or ``"auto"``: bf16 where the device has it in hardware
            (:func:`autocast_dtype`). The weights and the optimiser stay in fp32.
        checkpoint: file to write after every epoch (atomically). With ``resume=True``
            training continues from it when it exists.
        flip_tta, translate_tta: evaluate with mirror and one-pixel-shift test-time
            augmentation (see :func:`evaluate`).
        on_step: called as ``on_step(step)`` after every optimiser step (``step`` counts
            from 1 over the whole run), e.g. to record what the STN does as it learns.

    A :class:`~stn_utils.models.PatchWhitening` stem that is not fitted yet is fitted
    first, to ``WHITENING_SAMPLE`` training images drawn with ``seed`` (a resumed run
    restores the fitted one from the checkpoint).

    Under ``torch.distributed`` (a process group initialised, as ``python -m stn_utils.train``
    does under ``torchrun``), every process calls ``fit`` alike: the model is wrapped in
    ``DistributedDataParallel``, each epoch's shuffled order is split across the processes
    (``batch_size`` is per process), the training loss and accuracy are summed over all of
    them, rank 0 evaluates and shares the scores, and only rank 0 writes the checkpoint
    (of the plain model, so it loads without DDP).

    Returns:
        A history dict of lists: ``epoch``, ``train_loss``, ``train_acc``, ``test_loss``,
        ``test_acc`` (``None`` without a test set) and ``seconds`` (wall time so far).
    """
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"epochs must be a whole number >= 1; got {epochs!r}.")
    if schedule not in ("onecycle", "constant"):
        raise ValueError(f"schedule must be 'onecycle' or 'constant'; got {schedule!r}.")
    if not all(isinstance(side, int) and side >= 1 for side in progressive_sizes):
        raise ValueError(f"progressive_sizes must be whole numbers of pixels >= 1, e.g. (16, 24, 32); "
                         f"got {progressive_sizes!r}.")
    device = torch.device(device) if device is not None else pick_device()
    dtype = autocast_dtype(precision, device)  # checks precision before any work
    rank, world_size = _rank_and_world()
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    stn = getattr(model, "stn", None)
    stn_ids = {id(p) for p in stn.parameters()} if stn is not None else set()
    norm_ids = {id(p) for m in model.modules() if isinstance(m, NORMS) for p in m.parameters(recurse=False)}
    groups = {}
    for parameter in (p for p in model.parameters() if p.requires_grad):
        # no weight decay on biases and norm scales; a smaller step for the STN, whose
        # zero-initialised theta head otherwise swings the whole image in early steps
        key = (id(parameter) in stn_ids, id(parameter) in norm_ids, parameter.ndim > 1)
        groups.setdefault(key, []).append(parameter)
    optimizer = torch.optim.SGD(
        [{"params": params, "lr": lr * (stn_lr_scale if in_stn else 1.0) * (norm_lr_scale if in_norm else 1.0),
          "weight_decay": weight_decay if decays else 0.0}
         for (in_stn, in_norm, decays), params in groups.items()],
        lr=lr, momentum=momentum, nesterov=momentum > 0)
    steps_per_epoch = math.ceil(math.ceil(len(train) / world_size) / batch_size)
    total_steps = epochs * steps_per_epoch
    warmup = max(1, int(0.2 * total_steps))

    def lr_factor(step: int) -> float:
        if schedule == "constant":
            return 1.0
        return step / warmup if step < warmup else max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    # lookahead: the first update on or after its start creates the average
    lookahead_every = max(1, round(LOOKAHEAD_EVERY / (batch_size * world_size)))
    lookahead_first = math.ceil(LOOKAHEAD_START * total_steps / lookahead_every) * lookahead_every
    average = None
    history = {"epoch": [], "train_loss": [], "train_acc": [], "test_loss": [], "test_acc": [], "seconds": []}
    generator = torch.Generator().manual_seed(seed)
    start_epoch, elapsed = 0, 0.0
    if resume and checkpoint is not None and Path(checkpoint).is_file():
        state = load_checkpoint(checkpoint, model, optimizer=optimizer, scheduler=scheduler)
        history, start_epoch = state["history"], state["epoch"]
        generator.set_state(state["generator"])
        elapsed = history["seconds"][-1] if history["seconds"] else 0.0
        if lookahead and scheduler.last_epoch >= lookahead_first:
            average = _AveragedWeights(model)  # every epoch ends with the weights set to the average
    if any(isinstance(m, PatchWhitening) and not m.fitted for m in model.modules()):
        sample = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:WHITENING_SAMPLE]
        fit_whitening(model, to_float(train.images[sample]).to(device))
    net = model  # what trains; ``model`` itself is evaluated and saved
    if world_size > 1:
        net = torch.nn.parallel.DistributedDataParallel(model)

    bar = _progress(range(start_epoch, epochs), progress and rank == 0, initial=start_epoch, total=epochs)
    for epoch in bar:
        started = time.perf_counter()
        net.train()
        loss_sum, correct, seen = 0.0, 0, 0
        for images, labels in batches(train, batch_size, device=device, shuffle=True, generator=generator,
                                      rank=rank, world_size=world_size):
            if augment is not None:
                images = augment(images, generator)
            if progressive_sizes:
                side = progressive_sizes[epoch * len(progressive_sizes) // epochs]
                if images.shape[-2:] != (side, side):
                    images = F.interpolate(images, size=(side, side), mode="bilinear", antialias=True,
                                           align_corners=False)
            with _autocast(device, dtype):
                logits = net(_prepare(images, channels_last))
                loss = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
            # under DDP, test the sum over all processes, so that all of them stop together
            checked = _sum_over_ranks(loss.detach()) if world_size > 1 else loss
            if not torch.isfinite(checked):
                raise TrainingDiverged(
                    f"the loss became {checked.item()} in epoch {epoch + 1}; stopped. Lower the "
                    f"learning rate (now {lr}) or check the inputs for NaN. "
                    + (f"The last good checkpoint is kept at {checkpoint}." if checkpoint else ""))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step = scheduler.last_epoch
            if lookahead and step >= lookahead_first and step % lookahead_every == 0:
                if average is None:
                    average = _AveragedWeights(model)
                else:  # forget fast early on, ever more slowly towards the end
                    average.pull(model, LOOKAHEAD_DECAY * (step / total_steps) ** 3)
            if on_step is not None:
                on_step(step)
            loss_sum += loss.item() * len(labels)
            correct += (logits.argmax(1) == labels).sum().item()
            seen += len(labels)
        if average is not None:
            average.pull(model, 1.0)
        elapsed += time.perf_counter() - started
        if world_size > 1:
            totals = _sum_over_ranks(torch.tensor([loss_sum, correct, seen], dtype=torch.float64, device=device))
            loss_sum, correct, seen = totals[0].item(), int(totals[1].item()), int(totals[2].item())
        scores = evaluate(model, test, device=device, flip_tta=flip_tta, translate_tta=translate_tta,
                          channels_last=channels_last, precision=precision) if test is not None and rank == 0 else None
        if world_size > 1:  # rank 0's scores (and its time) for every process
            shared = [scores, elapsed]
            torch.distributed.broadcast_object_list(shared, src=0)
            scores, elapsed = shared
        history["epoch"].append(epoch + 1)
        history["train_loss"].append(loss_sum / seen)
        history["train_acc"].append(correct / seen)
        history["test_loss"].append(scores and scores["loss"])
        history["test_acc"].append(scores and scores["accuracy"])
        history["seconds"].append(elapsed)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}",
                            test_acc="-" if scores is None else f"{scores['accuracy']:.3f}")
        if checkpoint is not None and rank == 0:
            save_checkpoint(checkpoint, model, optimizer=optimizer, scheduler=scheduler,
                            epoch=epoch + 1, history=history, generator=generator.get_state())
    if world_size > 1:
        torch.distributed.barrier()  # the last checkpoint is written when fit returns
    return history


class _AveragedWeights:
    """A moving average of a model's floating-point state (weights and norm statistics)."""

    def __init__(self, model: nn.Module):
        self.average = {name: value.detach().clone() for name, value in model.state_dict().items()
                        if value.is_floating_point()}

    @torch.no_grad()
    def pull(self, model: nn.Module, decay: float) -> None:
        """Move the average towards the model by ``1 - decay``, then set the model to it."""
        state = model.state_dict()
        for name, average in self.average.items():
            average.lerp_(state[name], 1 - decay)
            state[name].copy_(average)


def _rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes; ``(0, 1)`` outside torch.distributed."""
    distributed = torch.distributed
    if distributed.is_available() and distributed.is_initialized():
        return distributed.get_rank(), distributed.get_world_size()
    return 0, 1


def _sum_over_ranks(values: Tensor) -> Tensor:
    """The sum of ``values`` over all processes (a copy; ``values`` is left as it is)."""
    values = values.clone()
    torch.distributed.all_reduce(values)
    return values


def _progress(iterable, enabled: bool, **kwargs):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm
    kwargs = {"desc": "epochs", "unit": "epoch", **kwargs}
    return tqdm(iterable, **kwargs)


def save_checkpoint(path, model: nn.Module, *, optimizer=None, scheduler=None, epoch: int = 0,
                    history: dict | None = None, generator: Tensor | None = None) -> Path:
    """Write a checkpoint atomically: to a temporary file first, then rename.

    A run killed while saving leaves the previous checkpoint intact, never half a file.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CheckpointError(f"cannot create the folder {path.parent} for checkpoints: {error}. "
                              "Choose a writable output folder.") from error
    state = {"model": model.state_dict(), "model_class": type(model).__name__, "epoch": epoch,
             "history": history or {}}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    if generator is not None:
        state["generator"] = generator
    partial = path.with_name(path.name + ".partial")
    try:
        torch.save(state, partial)  # a RuntimeError from torch's file writer when it cannot open it
        os.replace(partial, path)
    except (OSError, RuntimeError) as error:
        partial.unlink(missing_ok=True)
        raise CheckpointError(f"cannot write the checkpoint {path}: {error}. "
                              "Choose a writable output folder.") from error
    return path


def load_checkpoint(path, model: nn.Module, *, optimizer=None, scheduler=None, device=None) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` into ``model`` (and optimizer).

    Loads with ``weights_only=True``, so a checkpoint cannot run code. Returns the stored
    dict (``epoch``, ``history``, ...). Raises :class:`CheckpointError` for a missing or
    damaged file, or one saved from a different model.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train first, or check the path.")
    try:
        state = torch.load(path, map_location=device or "cpu", weights_only=True)
    except Exception as error:  # truncated zip, pickle errors, ...
        raise CheckpointError(f"the checkpoint {path} is damaged or truncated ({error}); "
                              "delete it and train again, or resume from an older copy.") from error
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path} is not a checkpoint written by stn_utils.save_checkpoint.")
    expected = model.state_dict()
    stored = state["model"]
    mismatched = sorted(set(expected) ^ set(stored)) + sorted(
        k for k in set(expected) & set(stored) if expected[k].shape != stored[k].shape)
    if mismatched:
        raise CheckpointError(
            f"the checkpoint {path} was saved from a different model ({state.get('model_class')}; "
            f"{len(mismatched)} mismatched tensors, e.g. {mismatched[:3]}). Build the same model "
            "that was trained, or train this one from scratch.")
    model.load_state_dict(stored)
    if optimizer is not None and "optimizer" in state:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and "scheduler" in state:
        scheduler.load_state_dict(state["scheduler"])
    return state
