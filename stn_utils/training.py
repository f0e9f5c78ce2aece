"""Training and evaluation: :func:`fit` runs a :class:`~stn_utils.recipes.Recipe` on a model.

:func:`fit` is built from small parts, in the order it uses them:

- :func:`optimizer_for`: SGD with one parameter group per learning-rate scale and decay
  (and Muon for the convolutions' filters where the recipe sets ``muon_lr``);
- :func:`lr_factor` and :func:`schedule_for`: the schedule, a factor of the peak rate at each step;
- :class:`Lookahead`: the decaying weight average some recipes train with;
- :func:`train_epoch`: one pass over the training set;
- :func:`evaluate`: test loss and accuracy, with test-time augmentation;
- :func:`save_checkpoint` / :func:`load_checkpoint`: atomic checkpoints that hold the
  recipe, so that :func:`fit` can resume a run exactly, and refuses to resume another.

Callbacks get one argument, a :class:`Progress`, after every optimiser step
(``event == "step"``) and after every epoch (``event == "epoch"``).

The data stay in memory as uint8 tensors (see :mod:`stn_utils.data`); batches are cut,
moved to the device, scaled to [0, 1] and augmented there, which on a CPU is several
times faster than a DataLoader decoding and transforming one image at a time.
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .data import ImageDataset, to_float
from .files import atomic_write
from .machine import keep_freed_memory
from .models import NORMS, PatchWhitening, SpatialTransformer, build_model
from .optim import SGDMuon
from .recipes import PRECISIONS, Recipe

__all__ = [
    "seed_everything", "pick_device", "autocast_dtype", "evaluate", "tta_logits", "shift_one_pixel",
    "predict", "predict_probabilities", "accuracy_curve", "Progress", "log_epochs", "prepare_model", "optimizer_for",
    "schedule_for", "lr_factor", "Lookahead",
    "train_epoch", "fit", "save_checkpoint", "read_checkpoint", "load_checkpoint", "load_model", "CheckpointError",
    "TrainingDiverged",
]


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used: missing, truncated, of another model or recipe."""


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


# --- precision -------------------------------------------------------------------------------

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
    """The autocast dtype for ``precision`` on ``device``, or ``None`` for fp32.

    ``"bf16"`` and ``"fp16"`` always autocast, ``"fp32"`` never. ``"auto"`` picks bfloat16
    where the device has it in hardware (CUDA GPUs from Ampere on, CPUs with AVX512-BF16
    or AMX), float16 on other CUDA GPUs (T4, V100: their tensor cores; training then
    scales the loss, see :func:`fit`), and fp32 elsewhere: emulated bf16 is several times
    *slower* than fp32, and a CPU's fp16 is no faster.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}.")
    device = torch.device(device)
    if precision == "auto":
        precision = "bf16" if _native_bf16(device) else "fp16" if device.type == "cuda" else "fp32"
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def _autocast(device, dtype: torch.dtype | None):
    return torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None)


def _prepare(images: Tensor, channels_last: bool) -> Tensor:
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images


# --- evaluation ------------------------------------------------------------------------------

def shift_one_pixel(images: Tensor, step: int) -> Tensor:
    """Move the content of (B, C, H, W) ``images`` by ``step`` (+1 or -1) pixels down and
    right, filling the uncovered edge by reflection."""
    if step not in (1, -1):
        raise ValueError(f"step must be +1 or -1 pixel; got {step!r}.")
    height, width = images.shape[-2:]
    padded = F.pad(images, (1, 1, 1, 1), mode="reflect")
    return padded[..., 1 - step:1 - step + height, 1 - step:1 - step + width]


def tta_logits(model: nn.Module, images: Tensor, tta_level: int = 0) -> Tensor:
    """Logits of ``model`` averaged over test-time views of ``images`` (B, C, H, W).

    Level 0 is the image alone; 1 adds its mirror image; 2 adds every view moved one
    pixel up-left and one down-right (:func:`shift_one_pixel`), the unmoved views keeping
    half the weight, as in airbench (arXiv 2404.00498). Returns float32 (B, classes).
    """
    if tta_level not in (0, 1, 2):
        raise ValueError(f"tta_level must be 0, 1 or 2; got {tta_level!r}.")
    views = [images, images.flip(3)] if tta_level >= 1 else [images]
    logits = sum(model(view).float() for view in views) / len(views)
    if tta_level == 2:
        moved = [model(shift_one_pixel(view, step)).float() for view in views for step in (1, -1)]
        logits = (logits + sum(moved) / len(moved)) / 2
    return logits


def _tta_logits_per_batch(model: nn.Module, data: ImageDataset, *, tta_level: int, precision: str,
                          channels_last: bool, batch_size: int, device):
    """Yield ``(logits, labels)`` for each batch of ``data``, the model in eval mode (restored
    afterwards), with the test-time views and precision asked for. The caller holds no_grad."""
    device = device or next(model.parameters()).device
    dtype = autocast_dtype(precision, device)
    was_training = model.training
    model.eval()
    try:
        for images, labels in data.batches(batch_size, device=device):
            with _autocast(device, dtype):
                logits = tta_logits(model, _prepare(images, channels_last), tta_level)
            yield logits, labels
    finally:
        model.train(was_training)


@torch.no_grad()
def evaluate(model: nn.Module, data: ImageDataset, *, tta_level: int = 0, precision: str = "fp32",
             channels_last: bool = False, batch_size: int = 500, device=None) -> dict:
    """Mean cross-entropy and accuracy of ``model`` on ``data``.

    Args:
        tta_level: test-time augmentation (see :func:`tta_logits`); mirroring only makes
            sense where it keeps the label, as on CIFAR-10.
        precision: ``"fp32"``, ``"bf16"``, ``"fp16"`` or ``"auto"`` (:func:`autocast_dtype`).

    Returns:
        ``{"loss": float, "accuracy": float}`` with accuracy as a fraction.
    """
    total_loss, correct = 0.0, 0
    for logits, labels in _tta_logits_per_batch(model, data, tta_level=tta_level, precision=precision,
                                                channels_last=channels_last, batch_size=batch_size, device=device):
        total_loss += F.cross_entropy(logits, labels, reduction="sum").item()
        correct += (logits.argmax(1) == labels).sum().item()
    return {"loss": total_loss / len(data), "accuracy": correct / len(data)}


@torch.no_grad()
def predict(model: nn.Module, data: ImageDataset, *, tta_level: int = 0, precision: str = "fp32",
            channels_last: bool = False, batch_size: int = 500, device=None) -> Tensor:
    """The class ``model`` picks for every image of ``data``, (N,) on the CPU, measured as
    :func:`evaluate` measures (same arguments), so that ``(predict(...) == data.labels)``
    has :func:`evaluate`'s accuracy as its mean."""
    return torch.cat([logits.argmax(1).cpu() for logits, _ in _tta_logits_per_batch(
        model, data, tta_level=tta_level, precision=precision, channels_last=channels_last, batch_size=batch_size,
        device=device)])


@torch.no_grad()
def predict_probabilities(model: nn.Module, data: ImageDataset, *, tta_level: int = 0, precision: str = "fp32",
                          channels_last: bool = False, batch_size: int = 500, device=None) -> Tensor:
    """The class probabilities (N, classes) ``model`` gives every image of ``data``, float32 on
    the CPU: the softmax of the logits :func:`evaluate` measures (same arguments). Averaging
    them over several models makes an ensemble."""
    return torch.cat([logits.softmax(1).cpu() for logits, _ in _tta_logits_per_batch(
        model, data, tta_level=tta_level, precision=precision, channels_last=channels_last, batch_size=batch_size,
        device=device)])


def _evaluate_with(model: nn.Module, data: ImageDataset, recipe: Recipe, device) -> dict:
    return evaluate(model, data, tta_level=recipe.tta_level, precision=recipe.precision,
                    channels_last=recipe.channels_last, device=device)


def accuracy_curve(model: nn.Module, data: ImageDataset, distort: Callable[[Tensor, float], Tensor],
                   amounts, *, batch_size: int = 1000) -> list[float]:
    """Test accuracy of ``model`` on ``data`` distorted by each of ``amounts``.

    ``distort(images, amount)`` gets the whole image tensor (N, C, H, W) and returns the
    distorted images, e.g. ``lambda x, a: stn_utils.data.rotate(x, a)``.
    """
    amounts = list(amounts)
    if not amounts:
        raise ValueError("amounts is empty; give at least one distortion amount.")
    return [evaluate(model, ImageDataset(distort(data.images, amount), data.labels, data.classes),
                     batch_size=batch_size)["accuracy"] for amount in amounts]


# --- callbacks -------------------------------------------------------------------------------

@dataclass
class Progress:
    """What a callback of :func:`fit` is told.

    Attributes:
        event: ``"step"`` after every optimiser step, ``"epoch"`` after every epoch
            (its test and history entry done, its checkpoint not yet written).
        epoch: the epoch, counted from 1, that the step belongs to or that just ended.
        step: optimiser steps taken so far in the whole run, from 1.
        epochs, steps: the run's totals.
        model: the model being trained (unwrapped from DistributedDataParallel).
        history: the history so far (see :func:`fit`); a callback may add to it.
        loss: the training loss of this step (``"step"`` events) or ``None``.
    """

    event: str
    epoch: int
    step: int
    epochs: int
    steps: int
    model: nn.Module
    history: dict
    loss: float | None = None


def log_epochs(progress: Progress, file=None) -> None:
    """A callback that prints one line per epoch: readable in a notebook's stored output
    and in a log file alike."""
    if progress.event != "epoch":
        return
    h, i = progress.history, -1
    test = "" if h["test_acc"][i] is None else f"  test loss {h['test_loss'][i]:.3f}  test acc {h['test_acc'][i]:.2%}"
    print(f"epoch {progress.epoch}/{progress.epochs}  train loss {h['train_loss'][i]:.3f}  "
          f"train acc {h['train_acc'][i]:.2%}{test}  ({h['seconds'][i]:.0f} s)", file=file or sys.stdout, flush=True)


# --- the parts of a training run ------------------------------------------------------------

def optimizer_for(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """``recipe.optimizer`` (SGD with Nesterov momentum, or AdamW with ``momentum`` as its
    beta1) with one parameter group per (in a spatial transformer, in a norm layer, decays,
    a whitening bias) combination, so each gets its own rate and weight decay.

    Every :class:`SpatialTransformer`'s parameters learn at ``recipe.stn_lr_scale`` of the
    rate: its zero-initialised theta head otherwise swings the whole image in the first
    steps. Norm parameters learn at ``recipe.norm_lr_scale``. Biases and norm parameters get
    no weight decay, unless ``recipe.decoupled_decay``: then every parameter outside a
    transformer shrinks by ``recipe.lr * recipe.weight_decay`` per step, whatever its group's
    rate. A patch-whitening stem's bias gets a group of its own, marked
    ``"whitening_bias": True``, so that :func:`fit` can freeze it after
    ``recipe.whitening_bias_epochs``.

    With ``recipe.muon_lr``, the convolution filters outside spatial transformers form a
    group of their own, marked ``"orthogonalize": True``, that steps with Muon at that rate
    and ``recipe.muon_momentum``, without weight decay (:class:`stn_utils.optim.SGDMuon`,
    whose Newton-Schulz iterations run in bf16 where the run autocasts to bf16, else fp32).
    """
    stn_ids = {id(p) for m in model.modules() if isinstance(m, SpatialTransformer) for p in m.parameters()}
    norm_ids = {id(p) for m in model.modules() if isinstance(m, NORMS) for p in m.parameters(recurse=False)}
    whitening_bias_ids = {id(m.conv.bias) for m in model.modules() if isinstance(m, PatchWhitening)}
    groups: dict[tuple, list] = {}
    filters: list[Tensor] = []
    for parameter in (p for p in model.parameters() if p.requires_grad):
        in_stn = id(parameter) in stn_ids
        if recipe.muon_lr is not None and parameter.ndim == 4 and not in_stn:
            filters.append(parameter)
            continue
        decays = parameter.ndim > 1 or (recipe.decoupled_decay and not in_stn)
        key = (in_stn, id(parameter) in norm_ids, decays, id(parameter) in whitening_bias_ids)
        groups.setdefault(key, []).append(parameter)

    def rate(in_stn: bool, in_norm: bool) -> float:
        return recipe.lr * (recipe.stn_lr_scale if in_stn else 1.0) * (recipe.norm_lr_scale if in_norm else 1.0)

    def decay(in_stn: bool, in_norm: bool, decays: bool) -> float:
        if not decays:
            return 0.0
        if recipe.decoupled_decay and not in_stn:  # the same shrink per step in every group
            group_rate = rate(in_stn, in_norm)
            return recipe.weight_decay * recipe.lr / group_rate if group_rate > 0 else 0.0
        return recipe.weight_decay

    settings = [{"params": params, "weight_decay": decay(in_stn, in_norm, decays), "lr": rate(in_stn, in_norm),
                 "whitening_bias": whitening}
                for (in_stn, in_norm, decays, whitening), params in groups.items()]
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(settings, lr=recipe.lr, betas=(recipe.momentum, 0.999))
    if recipe.muon_lr is not None:
        if filters:
            settings.append({"params": filters, "weight_decay": 0.0, "lr": recipe.muon_lr,
                             "momentum": recipe.muon_momentum, "nesterov": recipe.muon_momentum > 0,
                             "whitening_bias": False, "orthogonalize": True})
        device = next(model.parameters()).device
        dtype = torch.bfloat16 if autocast_dtype(recipe.precision, device) == torch.bfloat16 else torch.float32
        return SGDMuon(settings, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.momentum > 0,
                       orthogonalize_dtype=dtype)
    return torch.optim.SGD(settings, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.momentum > 0)


def schedule_for(optimizer: torch.optim.Optimizer, recipe: Recipe, steps_per_epoch: int):
    """The learning-rate schedule of a run: :func:`lr_factor` for every group, except that a
    group marked ``"whitening_bias"`` (:func:`optimizer_for`) stops learning after
    ``recipe.whitening_bias_epochs`` epochs (its rate becomes 0, so neither its gradient nor
    its weight decay moves it; the model is left as it is, which keeps a distributed run's
    parameters alike)."""
    total = recipe.epochs * steps_per_epoch

    def factor(group: dict):
        if group.get("whitening_bias") and recipe.whitening_bias_epochs is not None:
            until = recipe.whitening_bias_epochs * steps_per_epoch
            return lambda step: lr_factor(step, total, recipe) if step < until else 0.0
        return lambda step: lr_factor(step, total, recipe)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, [factor(group) for group in optimizer.param_groups])


def lr_factor(step: int, total_steps: int, recipe: Recipe) -> float:
    """The learning rate at ``step`` (from 0) as a fraction of the peak: ``"onecycle"`` rises
    linearly from ``recipe.lr_start`` to 1 over the first ``recipe.warmup`` of the steps, then
    falls linearly to ``recipe.lr_end`` at ``total_steps``; ``"constant"`` is 1 throughout."""
    if recipe.schedule == "constant":
        return 1.0
    rise = max(1, int(recipe.warmup * total_steps))
    if step < rise:
        return recipe.lr_start + (1 - recipe.lr_start) * step / rise
    remaining = max(0.0, (total_steps - step) / max(1, total_steps - rise))
    return recipe.lr_end + (1 - recipe.lr_end) * remaining


class Lookahead:
    """A decaying average of a model's floating-point state (weights and norm statistics),
    into which the weights are set back from time to time (hlb-CIFAR10's and airbench's
    lookahead).

    The average starts at ``start`` of the run and takes a step every ``every_images``
    training images; it forgets fast at first and ever more slowly towards the end
    (decay ``0.95 ** 5 * (step / total) ** 3``), so the last epochs are the ones averaged.
    The weights are set to the average at the run's last step, and with ``epoch_end`` also
    at the end of every epoch (:meth:`end_epoch`).
    """

    start, every_images, decay = 0.3, 5120, 0.95 ** 5

    def __init__(self, total_steps: int, batch_size: int, *, epoch_end: bool = True):
        self.total_steps = total_steps
        self.epoch_end = epoch_end
        self.every = max(1, round(self.every_images / batch_size))
        self.first = math.ceil(self.start * total_steps / self.every) * self.every
        self.average: dict[str, Tensor] | None = None

    def after_step(self, model: nn.Module, step: int) -> None:
        if step >= self.first and step % self.every == 0:
            if self.average is None:
                self.average = {k: v.detach().clone() for k, v in model.state_dict().items()
                                if v.is_floating_point()}
            else:
                self.pull(model, self.decay * (step / self.total_steps) ** 3)
        if step == self.total_steps and not self.epoch_end:  # with epoch_end, end_epoch does it
            self.pull(model)

    def end_epoch(self, model: nn.Module) -> None:
        """Called after every epoch: with ``epoch_end``, set the weights to the average."""
        if self.epoch_end:
            self.pull(model)

    def state_dict(self) -> dict:
        """The average (``None`` before it exists), for checkpoints."""
        return {"average": self.average}

    def load_state_dict(self, state: dict) -> None:
        self.average = state["average"]

    def resume(self, model: nn.Module, step: int) -> None:
        """After loading, at ``step``, a checkpoint that holds no average (written before
        checkpoints held one, when every epoch ended with the weights set to the average):
        the saved weights are the average."""
        if step >= self.first:
            self.average = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def pull(self, model: nn.Module, decay: float = 1.0) -> None:
        """Move the average towards the model by ``1 - decay``, then set the model to it."""
        if self.average is None:
            return
        state = model.state_dict()
        for name, average in self.average.items():
            if average.device != state[name].device:  # an average loaded from a checkpoint on the CPU
                average = self.average[name] = average.to(state[name].device)
            average.lerp_(state[name], 1 - decay)
            state[name].copy_(average)


def _unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (``.module``), or the model itself."""
    return getattr(model, "module", model)


def train_epoch(net: nn.Module, train: ImageDataset, recipe: Recipe, *, optimizer, scheduler, scaler,
                lookahead: Lookahead | None, generator: torch.Generator, device, epoch: int,
                on_step: Callable[[int, float], None] = lambda step, loss: None) -> tuple[float, float]:
    """One pass over ``train`` in a seeded shuffled order; returns (mean loss, accuracy).

    Raises :class:`TrainingDiverged` as soon as the loss is not finite; each step's weights
    are only changed by a finite loss.
    """
    dtype, augment = autocast_dtype(recipe.precision, device), recipe.augmentation
    net.train()
    loss_sum, correct, seen = 0.0, 0, 0
    for images, labels, index in train.batches(recipe.batch_size, device=device, shuffle=True, generator=generator,
                                               with_index=True):
        if getattr(augment, "sees_epoch", False):  # e.g. alternating flips: which image, in which epoch
            images = augment(images, generator, index=index, epoch=epoch)
        elif augment is not None:
            images = augment(images, generator)
        with _autocast(device, dtype):
            logits = net(_prepare(images, recipe.channels_last))
            loss = F.cross_entropy(logits, labels, label_smoothing=recipe.label_smoothing)
        value = loss.item()
        if not math.isfinite(value):
            raise TrainingDiverged(f"the loss became {value} in epoch {epoch}; stopped. Lower the learning "
                                   f"rate (now {recipe.lr}) or check the inputs for NaN.")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)  # under fp16, skips the step when the scaled gradients overflowed
        scaler.update()
        scheduler.step()
        if lookahead is not None:
            lookahead.after_step(_unwrap(net), scheduler.last_epoch)
        on_step(scheduler.last_epoch, value)
        loss_sum += value * len(labels)
        correct += (logits.argmax(1) == labels).sum().item()
        seen += len(labels)
    if lookahead is not None:
        lookahead.end_epoch(_unwrap(net))
    return loss_sum / seen, correct / seen


def prepare_model(model: nn.Module, train: ImageDataset, seed: int, device) -> None:
    """Let a model fit itself to the data before training: ``model.prepare(images)`` (e.g.
    :meth:`stn_utils.models.Classifier.prepare`) with 2,000 training images drawn with
    ``seed``. :func:`fit` calls this; a model that is already prepared keeps its fit."""
    if hasattr(model, "prepare"):
        sample = torch.randperm(len(train.labels), generator=torch.Generator().manual_seed(seed))[:2000]
        model.prepare(to_float(train.images[sample]).to(device))


def fit(model: nn.Module, train: ImageDataset, test: ImageDataset | None, recipe: Recipe, *, device=None,
        seed: int = 0, checkpoint: str | os.PathLike | None = None, resume: bool = False,
        write_checkpoints: bool = True, callbacks: Iterable[Callable[[Progress], None]] = ()) -> dict:
    """Train ``model`` on ``train`` with ``recipe``; test on ``test`` after every epoch.

    ``seed`` fixes the data order and augmentation (call :func:`seed_everything` before
    building the model for a fully seeded run). On a CPU it first calls
    :func:`stn_utils.machine.keep_freed_memory` (for the rest of the process; turn it off
    with ``STN_KEEP_FREED_MEMORY=0``). With ``checkpoint`` the state is written
    after every epoch, atomically; with ``resume=True`` as well, a run continues from that
    file when it exists and gives the history of an uninterrupted run. A checkpoint of
    another recipe is refused with the fields that differ. ``write_checkpoints=False`` only
    reads ``checkpoint`` to resume (the processes of a distributed run other than the first,
    which writes it). ``model`` may come wrapped in
    DistributedDataParallel (see :mod:`stn_utils.train`); it is tested and saved unwrapped.

    Returns:
        The history, a dict of per-epoch lists: ``epoch``, ``train_loss``, ``train_acc``,
        ``test_loss`` and ``test_acc`` (``None`` without a test set), ``seconds`` (training
        time so far, tests excluded).
    """
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a stn_utils.recipes.Recipe; got {type(recipe).__name__}. "
                        "Start from a named one, e.g. dataclasses.replace(recipes.MNIST, epochs=2).")
    device = torch.device(device) if device is not None else pick_device()
    if device.type == "cpu":
        keep_freed_memory()  # no page faults on every step's large tensors (stn_utils.machine)
    plain = _unwrap(model).to(device)
    if recipe.channels_last:
        plain.to(memory_format=torch.channels_last)
    steps_per_epoch = math.ceil(len(train) / recipe.batch_size)
    steps = recipe.epochs * steps_per_epoch
    optimizer = optimizer_for(plain, recipe)
    scheduler = schedule_for(optimizer, recipe, steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype(recipe.precision, device) == torch.float16)
    lookahead = Lookahead(steps, recipe.batch_size, epoch_end=recipe.lookahead_epoch_end) if recipe.lookahead else None
    generator = torch.Generator().manual_seed(seed)
    history = {"epoch": [], "train_loss": [], "train_acc": [], "test_loss": [], "test_acc": [], "seconds": []}
    if resume and checkpoint is not None and Path(checkpoint).is_file():
        state = load_checkpoint(checkpoint, plain, recipe=recipe, optimizer=optimizer, scheduler=scheduler,
                                scaler=scaler, lookahead=lookahead)
        history = state["history"]
        generator.set_state(state["generator"])
        if lookahead is not None and "lookahead" not in state:
            lookahead.resume(plain, scheduler.last_epoch)
    prepare_model(plain, train, seed, device)
    callbacks = list(callbacks)

    def tell(event: str, epoch: int, loss: float | None = None) -> None:
        for callback in callbacks:
            callback(Progress(event, epoch, scheduler.last_epoch, recipe.epochs, steps, plain, history, loss))

    for epoch in range(len(history["epoch"]) + 1, recipe.epochs + 1):
        started = time.perf_counter()
        loss, accuracy = train_epoch(model, train, recipe, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                                     lookahead=lookahead, generator=generator, device=device, epoch=epoch,
                                     on_step=lambda step, value, epoch=epoch: tell("step", epoch, value))
        seconds = (history["seconds"][-1] if history["seconds"] else 0.0) + time.perf_counter() - started
        scores = _evaluate_with(plain, test, recipe, device) if test is not None else {"loss": None, "accuracy": None}
        for key, value in zip(history, (epoch, loss, accuracy, scores["loss"], scores["accuracy"], seconds)):
            history[key].append(value)
        tell("epoch", epoch)
        if checkpoint is not None and write_checkpoints:
            save_checkpoint(checkpoint, plain, recipe=recipe, optimizer=optimizer, scheduler=scheduler,
                            scaler=scaler, lookahead=lookahead, history=history, generator=generator.get_state())
    return history


# --- checkpoints -----------------------------------------------------------------------------

def save_checkpoint(path, model: nn.Module, *, recipe: Recipe | None = None, optimizer=None, scheduler=None,
                    scaler=None, lookahead: Lookahead | None = None, history: dict | None = None,
                    generator: Tensor | None = None) -> Path:
    """Write a checkpoint atomically (:func:`stn_utils.files.atomic_write`): a run killed while
    saving leaves the previous checkpoint intact, never half a file.

    It holds the model's weights, its name (``model_name``, from
    :func:`stn_utils.models.build_model`) and build arguments, the recipe as plain values,
    the history (``epoch`` is the number of epochs done), and whatever of the optimiser,
    schedule, gradient scaler, lookahead average and data-order generator is given, for resuming.
    """
    history = history or {}
    state = {"model": model.state_dict(), "model_name": getattr(model, "name", type(model).__name__),
             "model_kwargs": getattr(model, "build_kwargs", None), "recipe": recipe and recipe.to_dict(),
             "epoch": len(history.get("epoch", [])), "history": history}
    for key, part in (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler),
                      ("lookahead", lookahead)):
        if part is not None:
            state[key] = part.state_dict()
    if generator is not None:
        state["generator"] = generator
    try:
        # torch's file writer raises RuntimeError when it cannot open the file
        return atomic_write(path, lambda partial: torch.save(state, partial))
    except (OSError, RuntimeError) as error:
        raise CheckpointError(f"cannot write the checkpoint {path}: {error}. "
                              "Choose a writable output folder.") from error


def read_checkpoint(path, device=None) -> dict:
    """The dict a checkpoint stores, read with ``weights_only=True``; :class:`CheckpointError`
    for a missing, damaged or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train first, or check the path.")
    try:
        state = torch.load(path, map_location=device or "cpu", weights_only=True)
    except Exception as error:  # truncated zip, pickle errors, ...
        raise CheckpointError(f"the checkpoint {path} is damaged or truncated ({error}); "
                              "delete it and train again, or resume from an older copy.") from error
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path} is not a checkpoint written by stn_utils.training.save_checkpoint.")
    return state


def load_checkpoint(path, model: nn.Module, *, recipe: Recipe | None = None, optimizer=None, scheduler=None,
                    scaler=None, lookahead: Lookahead | None = None, device=None) -> dict:
    """Load a checkpoint of :func:`save_checkpoint` into ``model`` (and the optimiser,
    schedule, scaler and lookahead average, when given), with ``weights_only=True``, so it
    cannot run code.

    Given a ``recipe``, refuses a checkpoint trained with another one and names the fields
    that differ. Returns the stored dict (``epoch``, ``history``, ``recipe``, ...). Raises
    :class:`CheckpointError` for a missing or damaged file, or one of another model or recipe.
    """
    state = read_checkpoint(path, device)
    differences = recipe.differences(state["recipe"]) if recipe is not None and state.get("recipe") else []
    if differences:
        raise CheckpointError(f"the checkpoint {path} was trained with another recipe ({'; '.join(differences)}). "
                              "Resume with the checkpoint's settings, or start afresh without resuming.")
    expected, stored = model.state_dict(), state["model"]
    mismatched = sorted(set(expected) ^ set(stored)) + sorted(
        k for k in set(expected) & set(stored) if expected[k].shape != stored[k].shape)
    if mismatched:
        raise CheckpointError(
            f"the checkpoint {path} was saved from a different model ({state.get('model_name')}; "
            f"{len(mismatched)} mismatched tensors, e.g. {mismatched[:3]}). Build the same model "
            "that was trained, or train this one from scratch.")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in stored.items()})
    for key, part in (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler),
                      ("lookahead", lookahead)):
        if part is not None and key in state:
            part.load_state_dict(state[key])
    return state


def load_model(path, device=None) -> tuple[nn.Module, dict]:
    """Rebuild the model a checkpoint was saved from (by its stored name and build
    arguments), load its weights, and return ``(model in eval mode, stored dict)``.

    Example: ``model, state = load_model("runs/cifar_stn/checkpoint.pt")``.
    """
    state = read_checkpoint(path, device)
    if state.get("model_kwargs") is None:
        raise CheckpointError(f"{path} does not say how to build its model ({state.get('model_name')}); "
                              "build it yourself and call load_checkpoint(path, model).")
    model = build_model(state["model_name"], **state["model_kwargs"])
    load_checkpoint(path, model, device=device)
    return model.to(device or "cpu").eval(), state
