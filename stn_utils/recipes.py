"""How a model is trained, as one value: the :class:`Recipe`, and the course's named recipes.

A recipe holds everything that decides a training run except the model, the data and the
seed: epochs, batch size, optimiser, schedule, learning-rate scales, augmentation,
precision, memory format and test-time augmentation. It is frozen, so a variant is made
with :func:`dataclasses.replace`::

    from dataclasses import replace
    from stn_utils.recipes import CIFAR10
    short = replace(CIFAR10, epochs=2, tta_level=0)

:func:`stn_utils.training.fit` takes one, and every checkpoint stores the recipe it was
trained with (:meth:`Recipe.to_dict`), so that resuming with different settings is refused
(:meth:`Recipe.differences`) instead of silently mixing two runs.

Conventions: ``batch_size`` is per process (under ``torchrun`` the step averages
``world_size * batch_size`` images); learning rates are per step of the mean loss;
augmentations take and return float images (B, C, H, W) in [0, 1] on the device.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import torch
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from .data import cutout, random_crop_flip
from .distortions import DISTORTIONS, distort, distort_each_channel, on_canvas

__all__ = ["Recipe", "AUGMENTATIONS", "CIFAR10", "CIFAR10_MUON", "CIFAR10_QUICK", "CIFAR10_8EPOCH", "MNIST",
           "DISTORTED_MNIST", "SEED", "RECIPES"]

Augmentation = Callable[[Tensor, torch.Generator], Tensor]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _require(condition: bool, name: str, expected: str) -> None:
    if not condition:
        raise ValueError(f"Recipe.{name} must be {expected}.")


def cifar10_augment(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Random 2-pixel translation (reflected edges) and left-right flip, per image. Two
    pixels, not the usual four: a run of a few epochs has too few passes to learn from
    stronger augmentation (airbench's choice, arXiv 2404.00498)."""
    return random_crop_flip(images, padding=2, flip=True, generator=generator)


def canvas_augment(images: Tensor, generator: torch.Generator) -> Tensor:
    """CIFAR-10 on a canvas (:mod:`stn_utils.canvas`): every image mirrored left-right with
    probability 1/2 (torchvision's ``horizontal_flip``), then placed on the 48x48 canvas
    with a fresh random draw (:func:`stn_utils.distortions.on_canvas`), so no two epochs
    show an image alike. (B, 3, 32, 32) -> (B, 3, 48, 48)."""
    mirror = (torch.rand(len(images), generator=generator) < 0.5).to(images.device)
    images = torch.where(mirror[:, None, None, None], TF.horizontal_flip(images), images)
    seed = int(torch.randint(2 ** 62, (), generator=generator))
    return on_canvas(images, seed)[0]


class FreshDistortion:
    """An augmentation that gives every digit of every batch a new random distortion of
    the paper's kind ``name`` (:mod:`stn_utils.distortions`), drawn from the training
    generator, so no two epochs show a digit alike. (B, 1, 28, 28) -> (B, 1, S, S); with
    ``each_channel``, every channel is a digit distorted on its own (MNIST addition):
    (B, C, 28, 28) -> (B, C, S, S)."""

    def __init__(self, name: str, *, each_channel: bool = False):
        self.name = name
        self.each_channel = each_channel

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        seed = int(torch.randint(2 ** 62, (), generator=generator))
        warp = distort_each_channel if self.each_channel else distort
        return warp(self.name, images, seed).to(images.device)

    def __repr__(self) -> str:
        return f"FreshDistortion({self.name!r}" + (", each_channel=True)" if self.each_channel else ")")


class AlternatingFlip:
    """CIFAR-10's random translations with airbench's alternating flip (arXiv 2404.00498): a
    fixed half of the training images is mirrored in odd epochs and the other half in even
    ones, so that every two epochs show every image both ways, instead of a coin toss
    per image and epoch. Which half an image is in follows from its index alone (a hash),
    so a resumed run flips as an uninterrupted one does.

    ``shift``: the translations' largest offset in pixels (reflected edges), 2 by default;
    ``cutout``: with a side in pixels, every image then also has a square of that side
    hidden (:func:`stn_utils.data.cutout`); 0: none. The CIFAR-10 benchmark's ``stn-shift4``
    and ``stn-cutout8`` rows measure the two over the recipe's 18 epochs.

    Shape:
        (B, C, H, W) -> (B, C, H, W), with ``index`` (B,) the images' places in the training set."""

    sees_epoch = True  # train_epoch passes the batch's indices and the epoch

    def __init__(self, shift: int = 2, cutout: int = 0):
        for name, value in (("shift", shift), ("cutout", cutout)):
            if not (_is_int(value) and value >= 0):
                raise ValueError(f"AlternatingFlip's {name} must be a whole number of pixels >= 0; got {value!r}.")
        self.shift = shift
        self.cutout = cutout

    def __call__(self, images: Tensor, generator: torch.Generator, *, index: Tensor, epoch: int) -> Tensor:
        shifted = random_crop_flip(images, padding=self.shift, flip=False, generator=generator)
        phase = ((index * 2654435761) >> 16) & 1  # Knuth's multiplicative hash, one bit
        mirror = (phase ^ (epoch % 2)).bool().to(images.device)
        images = torch.where(mirror[:, None, None, None], shifted.flip(3), shifted)
        return cutout(images, self.cutout, generator=generator) if self.cutout else images

    def __repr__(self) -> str:
        settings = [f"{name}={value}" for name, value, default in (("shift", self.shift, 2), ("cutout", self.cutout, 0))
                    if value != default]
        return f"AlternatingFlip({', '.join(settings)})"


# Recipe.augment names. A recipe may also hold a function of its own (images, generator) -> images.
AUGMENTATIONS: dict[str, Augmentation | None] = {
    "none": None, "cifar10": cifar10_augment, "cifar10-alternating": AlternatingFlip(),
    "cifar10-alternating-shift4": AlternatingFlip(shift=4), "cifar10-alternating-cutout8": AlternatingFlip(cutout=8),
    **{f"distort-{name}": FreshDistortion(name) for name in DISTORTIONS},
    "distort-RTS-each-channel": FreshDistortion("RTS", each_channel=True),
    "cifar10-canvas": canvas_augment,
}

SCHEDULES = ("onecycle", "constant")
OPTIMIZERS = ("sgd", "adamw")
PRECISIONS = ("fp32", "bf16", "fp16", "auto")
TTA_LEVELS = {0: "none", 1: "the image and its mirror image",
              2: "the image and its mirror, each also moved one pixel up-left and down-right"}


@dataclass(frozen=True)
class Recipe:
    """Everything that decides how a model trains, in one frozen value.

    Attributes:
        epochs: passes over the training set (>= 1).
        batch_size: images per optimiser step, per process.
        optimizer: ``"sgd"`` (with Nesterov momentum) or ``"adamw"``.
        lr: peak learning rate.
        momentum: SGD's Nesterov momentum (0: plain SGD), or AdamW's beta1.
        weight_decay: on weights (biases and norm parameters get none, unless
            ``decoupled_decay``): an L2 penalty for SGD, decoupled for AdamW.
        label_smoothing: of the cross-entropy loss, in [0, 1).
        schedule: ``"onecycle"`` (a linear warm-up over the first ``warmup`` of the steps
            from ``lr_start * lr`` to ``lr``, then a linear decay to ``lr_end * lr``) or
            ``"constant"``.
        warmup, lr_start, lr_end: the one-cycle schedule's shape, fractions in [0, 1].
        stn_lr_scale: multiplies the learning rate of every spatial transformer's
            parameters: a localisation net learns best with a smaller step.
        norm_lr_scale: multiplies the learning rate of normalisation layers.
        lookahead: keep a decaying average of the weights from 30 % of the run on and
            set the weights to it every 5,120 images and at the run's end.
        augment: a name in :data:`AUGMENTATIONS` or a function
            ``(images, generator) -> images`` applied to every training batch.
        precision: ``"fp32"``, ``"bf16"``, ``"fp16"`` (with gradient scaling) or
            ``"auto"`` (see :func:`stn_utils.training.autocast_dtype`).
        channels_last: images and weights in channels-last memory order.
        tta_level: test-time augmentation of the per-epoch test, see :data:`TTA_LEVELS`.
        decoupled_decay: ``False``: weight decay is an L2 penalty on weights only, so each
            parameter group shrinks by its own rate times ``weight_decay``. ``True``
            (airbench's decoupling): every parameter outside the spatial transformer
            (and outside the filters Muon steps, see ``muon_lr``), biases and norm shifts
            included, shrinks by ``lr * weight_decay`` per step
            (times the schedule's factor), whatever its group's rate; the transformer keeps
            the L2 penalty on its weights, since decaying its bias would pull every
            transform towards the zero map.
        lookahead_epoch_end: with ``lookahead``, also set the weights to the average at the
            end of every epoch (``True``, the course's earlier recipes), which throws away
            the steps taken since the average's last update; ``False`` (airbench's): only
            at the run's end. Checkpoints hold the average either way, so a resumed run
            trains as an uninterrupted one.
        whitening_bias_epochs: train the bias of a patch-whitening stem
            (:class:`stn_utils.models.PatchWhitening`) for this many epochs, then freeze it
            (airbench trains it for 3); ``None``: train it throughout.
        muon_lr: ``None``: every parameter steps with ``optimizer``. A number: the
            convolution filters outside spatial transformers step with Muon instead
            (:class:`stn_utils.optim.SGDMuon`: orthogonalised momentum steps, filters kept
            at a fixed norm, no weight decay) at this peak rate, on the same schedule;
            needs ``optimizer="sgd"``.
        muon_momentum: Muon's Nesterov momentum, in [0, 1).
    """

    epochs: int
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    schedule: str = "onecycle"
    warmup: float = 0.2
    lr_start: float = 0.0
    lr_end: float = 0.0
    stn_lr_scale: float = 1.0
    norm_lr_scale: float = 1.0
    lookahead: bool = False
    augment: Union[str, Augmentation] = "none"
    precision: str = "fp32"
    channels_last: bool = False
    tta_level: int = 0
    # added after the fields above; shown by repr only where set, so a recipe without them prints as before
    decoupled_decay: bool = field(default=False, repr=False)
    whitening_bias_epochs: Optional[int] = field(default=None, repr=False)
    lookahead_epoch_end: bool = field(default=True, repr=False)
    muon_lr: Optional[float] = field(default=None, repr=False)
    muon_momentum: float = field(default=0.6, repr=False)

    def __repr__(self) -> str:
        shown = [f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self)
                 if f.repr or getattr(self, f.name) != f.default]
        return f"{type(self).__name__}({', '.join(shown)})"

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            _require(_is_int(getattr(self, name)) and getattr(self, name) >= 1, name, "a whole number >= 1")
        for name in ("lr", "stn_lr_scale", "norm_lr_scale"):
            _require(_is_number(getattr(self, name)) and getattr(self, name) >= 0, name, "a number >= 0")
        for name in ("momentum", "label_smoothing", "muon_momentum"):
            _require(_is_number(getattr(self, name)) and 0 <= getattr(self, name) < 1, name, "in [0, 1)")
        _require(_is_number(self.weight_decay) and self.weight_decay >= 0, "weight_decay", "a number >= 0")
        for name in ("warmup", "lr_start", "lr_end"):
            _require(_is_number(getattr(self, name)) and 0 <= getattr(self, name) <= 1, name, "in [0, 1]")
        _require(self.schedule in SCHEDULES, "schedule", f"one of {SCHEDULES}")
        _require(self.optimizer in OPTIMIZERS, "optimizer", f"one of {OPTIMIZERS}")
        _require(self.muon_lr is None or (_is_number(self.muon_lr) and self.muon_lr >= 0), "muon_lr",
                 "None or a number >= 0")
        _require(self.muon_lr is None or self.optimizer == "sgd", "muon_lr",
                 f"None with optimizer={self.optimizer!r} (Muon steps beside SGD only; set optimizer='sgd')")
        _require(self.precision in PRECISIONS, "precision", f"one of {PRECISIONS}")
        _require(self.tta_level in TTA_LEVELS and _is_int(self.tta_level), "tta_level", "0, 1 or 2")
        _require(self.whitening_bias_epochs is None or (_is_int(self.whitening_bias_epochs)
                                                        and self.whitening_bias_epochs >= 0),
                 "whitening_bias_epochs", "None or a whole number >= 0")
        for name in ("lookahead", "channels_last", "decoupled_decay", "lookahead_epoch_end"):
            _require(isinstance(getattr(self, name), bool), name, "True or False")
        _require(callable(self.augment) or self.augment in AUGMENTATIONS, "augment",
                 f"one of {sorted(AUGMENTATIONS)} or a function (images, generator) -> images")

    @property
    def augmentation(self) -> Augmentation | None:
        """The augmentation function, or ``None`` for none."""
        return self.augment if callable(self.augment) else AUGMENTATIONS[self.augment]

    def to_dict(self) -> dict:
        """The recipe as plain values, as checkpoints store it; a function-valued
        ``augment`` is recorded by its qualified name."""
        values = dataclasses.asdict(self)
        if callable(self.augment):
            values["augment"] = f"{getattr(self.augment, '__module__', '?')}.{self.augment.__qualname__}"
        return values

    @classmethod
    def completed(cls, stored: dict) -> dict:
        """``stored`` (a :meth:`to_dict`, perhaps written before some fields existed) with
        every missing field read as its default, which is how that run trained."""
        defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
        return {**{name: value for name, value in defaults.items() if name not in stored}, **stored}

    def differences(self, stored: dict) -> list[str]:
        """``"field: stored -> this"`` for every field where ``stored`` (a :meth:`to_dict`
        of another recipe, read by :meth:`completed`) differs from this one; empty when they agree."""
        mine = self.to_dict()
        stored = self.completed(stored)
        return [f"{name}: {stored.get(name, '(not stored)')!r} -> {mine[name]!r}"
                for name in mine if stored.get(name) != mine[name]]


# --- the course's recipes -----------------------------------------------------------------

# Notebook 05 and benchmarks/cifar10.py: airbench94's recipe (arXiv 2404.00498) at batch 512
# with a mean loss, trained for 18 epochs instead of its 9.9. lr 0.75 with Nesterov momentum
# 0.85 gives each image the step it has there (11.5 per 1,024 images of a summed loss). The
# same decay per image, decoupled from each group's rate; norm shifts learn 64x faster; a
# one-cycle schedule from 0.2 of the peak, peaking at 23 % of the run and ending at 0.07;
# label smoothing 0.2; lookahead, set into the weights only at the run's end; alternating
# flips; the whitening bias trained for 3 epochs. The STN steps at 1 % of the classifier's
# rate; bf16 autocast where the hardware has it. 18 epochs: what fits in 15 minutes, with the
# final test and a tenth to spare, on two CPU cores with AMX (the README's CIFAR-10
# benchmark gives the times and what each choice bought).
CIFAR10 = Recipe(epochs=18, batch_size=512, lr=0.75, momentum=0.85, weight_decay=1.33e-3, label_smoothing=0.2,
                 schedule="onecycle", warmup=0.23, lr_start=0.2, lr_end=0.07, stn_lr_scale=0.01, norm_lr_scale=64.0,
                 decoupled_decay=True, whitening_bias_epochs=3, lookahead=True, lookahead_epoch_end=False,
                 augment="cifar10-alternating", precision="auto", channels_last=True, tta_level=2)

# CIFAR10 with Muon (stn_utils.optim) for the convolutions' filters at a peak rate of 0.12
# (in 3 epochs, 0.12 beat 0.06), cut to 17 epochs because each step costs more. It bought
# over a point in 3 epochs but next to nothing in 17 (the README's CIFAR-10 benchmark), so
# notebook 05 keeps CIFAR10.
CIFAR10_MUON = dataclasses.replace(CIFAR10, epochs=17, muon_lr=0.12)

# CIFAR10_MUON cut to 6 epochs: for a CPU without bf16, where every epoch costs about three
# times as much. In float32 on two cores it reached 90 % with two seeds, sooner than the SGD
# recipe cut to 8 epochs (the README's CIFAR-10 benchmark, rows stn-fp32-muon-6-epochs, its
# seed 1 and stn-fp32-8-epochs): Muon bought most over a short run.
CIFAR10_QUICK = dataclasses.replace(CIFAR10_MUON, epochs=6)

# The recipe notebook 05 trained with before (and notebook 07's canvas models still do):
# random flips, a schedule from 0 to 0 peaking at 20 %, an L2 penalty on weights only, the
# whitening bias trained throughout; 8 epochs.
CIFAR10_8EPOCH = Recipe(epochs=8, batch_size=512, lr=0.75, momentum=0.85, weight_decay=1.33e-3,
                          label_smoothing=0.2, schedule="onecycle", stn_lr_scale=0.01, norm_lr_scale=64.0,
                          lookahead=True, augment="cifar10", precision="auto", channels_last=True, tta_level=2)

# MNIST (notebooks 01 and 02, the command-line trainer): SGD with Nesterov momentum and a
# one-cycle schedule; the STN at a tenth of the rate (at a third, a cluttered-MNIST
# transformer swung off the digit at the peak rate and did not come back).
MNIST = Recipe(epochs=3, batch_size=128, lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="onecycle",
               stn_lr_scale=0.1)

# The paper's distorted MNIST (notebook 06, benchmarks/distorted_mnist.py): AdamW with
# decoupled weight decay and a one-cycle schedule, the transformer at the classifier's rate
# (with SGD at lr 0.1 an RTS transformer settled on one constant zoom-out, and at a third of
# that rate it collapsed; AdamW's per-parameter steps keep it on the digit); bf16 autocast
# and channels-last where the hardware has bf16. Its augmentation, fresh distortions of one
# kind, and its epochs per distortion and model are set by
# stn_utils.experiments.distortion_recipe.
DISTORTED_MNIST = Recipe(epochs=20, batch_size=128, optimizer="adamw", lr=2e-3, momentum=0.9, weight_decay=0.05,
                         schedule="onecycle", stn_lr_scale=1.0, precision="auto", channels_last=True)

# The notebook this course grew from, as the PyTorch STN tutorial trains: plain SGD at a
# constant 0.01, batch 64, no weight decay.
SEED = Recipe(epochs=20, batch_size=64, lr=0.01, momentum=0.0, weight_decay=0.0, schedule="constant")

RECIPES = {"cifar10": CIFAR10, "cifar10_muon": CIFAR10_MUON, "cifar10_quick": CIFAR10_QUICK,
           "cifar10_8epoch": CIFAR10_8EPOCH, "mnist": MNIST,
           "distorted_mnist": DISTORTED_MNIST, "seed": SEED}
