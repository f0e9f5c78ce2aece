"""The spatial transformer module and the course's classifiers.

Every classifier here takes images in [0, 1] and normalises them *inside* the model,
after the spatial transformer. Sampling un-normalised pixels with border padding means
the STN gains nothing by zooming out into empty borders, which is how the PyTorch
tutorial's STN (normalised input, zero padding) learns to collapse.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .geometry import check_image
from .transforms import Affine, make_transform

__all__ = [
    "LocalizationNet",
    "SpatialTransformer",
    "TransformerStack",
    "Normalize",
    "Classifier",
    "PatchWhitening",
    "Scale",
    "fit_whitening",
    "cifar_body",
    "mnist_body",
    "digit_body",
    "build_model",
    "MODELS",
    "count_parameters",
    "count_macs",
    "NORMS",
]

# The normalisation layers, for giving their parameters their own learning rate.
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.InstanceNorm1d, nn.InstanceNorm2d,
         nn.InstanceNorm3d, nn.GroupNorm, nn.LayerNorm)

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)


class LocalizationNet(nn.Module):
    """The small network that looks at the input and summarises where things are.

    It first averages the input down to ``input_size`` pixels: predicting six numbers
    needs little resolution, so this keeps the STN cheap next to the classifier.

    Args:
        in_channels: channels C of the input (B, C, H, W): 3 for RGB images, or the
            channel count of a feature map.
        input_size: side of the downsampled input the convolutions see.
        widths: output channels of the two conv layers.
        features: size of the output feature vector.

    Shape:
        (B, C, H, W) -> (B, features)
    """

    def __init__(self, in_channels: int, *, input_size: int = 16, widths=(16, 32), features: int = 32):
        super().__init__()
        if input_size < 4:
            raise ValueError(f"input_size must be at least 4 pixels; got {input_size}.")
        self.input_size = input_size
        self.features = features
        self.convs = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(widths[0], widths[1], 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),
        )
        side = input_size // 4
        self.fc = nn.Sequential(nn.Linear(widths[1] * side * side, features), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.adaptive_avg_pool2d(x, self.input_size)
        return self.fc(self.convs(x).flatten(1))


class SpatialTransformer(nn.Module):
    """Localisation net -> transform parameters -> sampling grid -> bilinear sampling.

    The parameters are theta (B, 2, 3) for the default affine family, and a vector
    (B, P) for the others of :mod:`stn_utils.transforms`. The last layer starts at the
    identity transform (zero weights, bias = the family's identity parameters), so
    an untrained STN passes its input through and the classifier can learn from the
    first step; the localisation net then learns to move away from the identity only
    where that lowers the loss.

    Args:
        in_channels: C of the input (B, C, H, W); images or feature maps.
        output_size: (H_out, W_out) of the output; ``None`` keeps the input size.
        localization: a module mapping (B, C, H, W) to (B, F) features; default
            :class:`LocalizationNet`. Give ``features`` (F) if it has no ``.features``.
        padding_mode: what the sampler reads outside the input: ``"border"`` (default,
            see the module docstring), ``"zeros"`` or ``"reflection"``.
        align_corners: passed to the grid and to ``grid_sample``.
        transform: the family of warps: ``"affine"`` (default), ``"attention"``,
            ``"projective"``, ``"tps"`` (a 4x4 thin-plate spline), or a family object such
            as ``ThinPlateSpline(grid_size=3)``; see :func:`stn_utils.transforms.make_transform`.
        supersample: sample a grid ``supersample`` times finer than the output and average
            each ``supersample x supersample`` block (anti-aliasing: a transformer that
            zooms out would otherwise skip pixels). 1 (default) samples the output grid.
        start_zoom: for the affine family, start at a centred window of this size (a
            fraction of the input's side) instead of the identity's whole input: e.g.
            ``output side / input side`` starts at the input's own resolution. 1 (default):
            the identity.

    Shape:
        (B, C, H, W) -> (B, C, H_out, W_out)
    """

    def __init__(self, in_channels: int, *, output_size=None, localization: nn.Module | None = None,
                 features: int | None = None, padding_mode: str = "border", align_corners: bool = False,
                 transform="affine", supersample: int = 1, start_zoom: float = 1.0):
        super().__init__()
        if not (isinstance(supersample, int) and supersample >= 1):
            raise ValueError(f"supersample must be a whole number >= 1; got {supersample!r}.")
        if isinstance(start_zoom, bool) or not (isinstance(start_zoom, (int, float)) and 0 < start_zoom <= 1):
            raise ValueError(f"start_zoom must be a number in (0, 1]; got {start_zoom!r}.")
        self.supersample = supersample
        self.start_zoom = float(start_zoom)
        if padding_mode not in ("zeros", "border", "reflection"):
            raise ValueError(f"padding_mode must be 'zeros', 'border' or 'reflection'; got {padding_mode!r}.")
        self.in_channels = in_channels
        self.output_size = None if output_size is None else tuple(output_size)
        self.padding_mode = padding_mode
        self.align_corners = align_corners
        self.localization = localization if localization is not None else LocalizationNet(in_channels)
        features = features or getattr(self.localization, "features", None)
        if features is None:
            raise ValueError("pass `features`, the size of the custom localization net's output.")
        # an nn.Module family (the thin-plate spline's buffers) becomes a submodule and moves with .to()
        self.family = make_transform(transform)
        if self.start_zoom != 1 and not isinstance(self.family, Affine):
            raise ValueError(f"start_zoom is for the affine family; got transform {transform!r}. "
                             "Leave start_zoom at 1 for the others.")
        self.to_theta = nn.Linear(features, self.family.num_params)
        self.reset_to_identity()

    def reset_to_identity(self) -> None:
        """Zero the last layer's weights and set its bias to the identity transform (with
        ``start_zoom``, to the centred window of that size)."""
        nn.init.zeros_(self.to_theta.weight)
        start = self.family.identity_params()
        if self.start_zoom != 1:
            start = start * torch.tensor([self.start_zoom, 1, 1, 1, self.start_zoom, 1])
        with torch.no_grad():
            self.to_theta.bias.copy_(start)

    def predict_theta(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> theta (B, 2, 3) mapping output to input coordinates; for a
        non-affine family, its raw parameters (B, P) instead."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"SpatialTransformer expects input (B, {self.in_channels}, H, W); "
                             f"got shape {tuple(x.shape)}.")
        if x.shape[0] == 0:
            raise ValueError("SpatialTransformer got an empty batch (B = 0).")
        params = self.to_theta(self.localization(x))
        return params.reshape(-1, 2, 3) if isinstance(self.family, Affine) else params

    def transform(self, x: Tensor, theta: Tensor) -> Tensor:
        """Warp ``x`` (B, C, H, W) with ``theta`` (B, 2, 3), or (B, P) for other families."""
        size = tuple(side * self.supersample for side in (self.output_size or x.shape[-2:]))
        # the grid is computed in the input's dtype; keep theta in it under autocast
        grid = self.family.grid(theta.flatten(1).to(x.dtype), size, align_corners=self.align_corners)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode=self.padding_mode, align_corners=self.align_corners)
        return F.avg_pool2d(out, self.supersample) if self.supersample > 1 else out

    def forward(self, x: Tensor, return_theta: bool = False):
        theta = self.predict_theta(x)
        out = self.transform(x, theta)
        return (out, theta) if return_theta else out


class TransformerStack(nn.Module):
    """Several spatial transformers side by side, each looking at the whole input, their
    outputs stacked along the channels: the paper's two-transformer model for MNIST
    addition (appendix A.1), where each transformer can pick out one of two digits.

    Args:
        transformers: the :class:`SpatialTransformer` modules, all with the same output size.

    Shape:
        (B, C, H, W) -> (B, K * C, H_out, W_out) for K transformers; with
        ``return_theta``, also the parameters (B, K, 2, 3), or (B, K, P) for other families.
    """

    def __init__(self, transformers):
        super().__init__()
        self.transformers = nn.ModuleList(transformers)
        if not self.transformers:
            raise ValueError("TransformerStack needs at least one SpatialTransformer.")
        sizes = {t.output_size for t in self.transformers}
        if len(sizes) > 1 or None in sizes:
            raise ValueError(f"every transformer of a TransformerStack needs the same explicit output_size; "
                             f"got {sorted(map(str, sizes))}.")

    def forward(self, x: Tensor, return_theta: bool = False):
        outputs, thetas = zip(*(transformer(x, return_theta=True) for transformer in self.transformers))
        out = torch.cat(outputs, dim=1)
        return (out, torch.stack(thetas, dim=1)) if return_theta else out


class Normalize(nn.Module):
    """Subtract a per-channel mean and divide by a per-channel std: (B, C, H, W)."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).reshape(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).reshape(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """[optional STN] -> normalise -> body, on images in [0, 1].

    Args:
        body: the CNN that maps normalised images to logits.
        mean, std: per-channel normalisation statistics.
        stn: a :class:`SpatialTransformer` (or a :class:`TransformerStack`), or ``None``
            for the plain CNN.
        normalize_first: normalise *before* the STN, as the PyTorch tutorial does. Only
            for showing the collapse that causes (notebook 06, section 7); leave it ``False``.
        in_channels: channels C of the input; by default one per entry of ``mean``. A
            single ``mean`` and ``std`` then apply to every channel (two grey digits on
            two channels, or the four channels of a :class:`TransformerStack`).

    Shape:
        (B, C, H, W) in [0, 1] -> logits (B, classes)
    """

    def __init__(self, body: nn.Module, mean, std, *, stn: nn.Module | None = None,
                 normalize_first: bool = False, in_channels: int | None = None):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.stn = stn
        self.body = body
        self.normalize_first = normalize_first
        self.in_channels = in_channels or len(mean)

    def forward(self, x: Tensor) -> Tensor:
        check_image(x, f"the input of {getattr(self, 'name', type(self).__name__)}", channels=self.in_channels)
        if self.normalize_first:
            x = self.normalize(x)
        if self.stn is not None:
            x = self.stn(x)
        if not self.normalize_first:
            x = self.normalize(x)
        return self.body(x)

    def predict_theta(self, x: Tensor) -> Tensor:
        """The theta (B, 2, 3) that the model's transformer predicts for images ``x``
        (B, C, H, W) in [0, 1], from what it sees in :meth:`forward` (the normalised images
        with ``normalize_first``); see :meth:`SpatialTransformer.predict_theta`."""
        if not isinstance(self.stn, SpatialTransformer):
            raise ValueError(f"{getattr(self, 'name', type(self).__name__)} has no single SpatialTransformer to "
                             f"predict a theta (its stn is {type(self.stn).__name__}); call predict_theta on one "
                             "of its transformers instead.")
        return self.stn.predict_theta(self.normalize(x) if self.normalize_first else x)

    def prepare(self, images: Tensor) -> int:
        """Fit what the model fits to its data before training: its patch-whitening stem,
        if it has one and it is not fitted yet (:func:`fit_whitening`). ``images``
        (N, C, H, W) in [0, 1]; :func:`stn_utils.training.fit` passes 2,000 training
        images. Returns the number of layers fitted."""
        return fit_whitening(self, images)


def _identity_conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    """A 3x3 convolution whose first ``in_channels`` filters start as the identity (a
    Dirac kernel each), the rest at PyTorch's default initialisation.

    A stack of such layers starts close to passing its input through, like a residual
    network without the skip connections; airbench (arXiv 2404.00498) initialises its
    convolutions this way to make short runs learn faster."""
    conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[:min(in_channels, out_channels)])
    return conv


def _shift_only_norm(channels: int) -> nn.BatchNorm2d:
    """Batch norm with a learned shift but no learned scale (frozen at 1), and fast-moving
    running statistics (momentum 0.4): the next convolution can absorb any scale, and
    short runs need statistics that keep up with the weights."""
    norm = nn.BatchNorm2d(channels, momentum=0.4)
    norm.weight.requires_grad_(False)
    return norm


class Scale(nn.Module):
    """Multiply by a constant: (*) -> (*)."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: Tensor) -> Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor:g}"


class PatchWhitening(nn.Module):
    """A frozen convolution whose filters whiten the input's small patches.

    Each ``kernel_size`` x ``kernel_size`` patch of C channels is a vector of
    D = C * k * k numbers. :meth:`fit` sets the D filters to the eigenvectors of the patch
    covariance, each divided by the square root of its eigenvalue, so the output
    channels are uncorrelated with unit variance; the filters are then kept with their
    signs flipped too (2D channels), so a following ReLU loses nothing. The weights are
    never trained; the bias is. This stem is the idea of Keller Jordan's airbench
    (arXiv 2404.00498): the first layer starts where training would take it, and costs a
    third of a 3x3 convolution to 32 channels.

    Args:
        in_channels: C of the input (B, C, H, W).
        kernel_size: side k of the patches (no padding, so the output is H - k + 1 wide).
        eps: added to the eigenvalues, so that near-constant directions are not blown up.

    Shape:
        (B, C, H, W) -> (B, 2 * C * k * k, H - k + 1, W - k + 1)
    """

    def __init__(self, in_channels: int = 3, *, kernel_size: int = 2, eps: float = 5e-4):
        super().__init__()
        self.eps = eps
        self.conv = nn.Conv2d(in_channels, 2 * in_channels * kernel_size ** 2, kernel_size, bias=True)
        self.conv.weight.requires_grad_(False)
        nn.init.zeros_(self.conv.bias)
        # saved with the weights, so a reloaded checkpoint is not fitted again
        self.register_buffer("fitted", torch.tensor(False))

    @torch.no_grad()
    def fit(self, images: Tensor) -> "PatchWhitening":
        """Set the filters from ``images`` (N, C, H, W), as this layer will see them."""
        in_channels, side = self.conv.in_channels, self.conv.kernel_size[0]
        if images.ndim != 4 or images.shape[1] != in_channels or min(images.shape[-2:]) < side:
            raise ValueError(f"PatchWhitening.fit expects images (N, {in_channels}, H, W) with H, W >= {side}; "
                             f"got shape {tuple(images.shape)}.")
        patches = images.unfold(2, side, 1).unfold(3, side, 1)           # N, C, H', W', k, k
        patches = patches.permute(0, 2, 3, 1, 4, 5).flatten(3).flatten(0, 2).double()
        dims = patches.shape[1]
        if patches.shape[0] < 2 * dims:
            raise ValueError(f"PatchWhitening.fit needs at least {2 * dims} patches to estimate a "
                             f"{dims}x{dims} covariance; got {patches.shape[0]}. Pass more images.")
        eigenvalues, eigenvectors = torch.linalg.eigh(torch.cov(patches.T))
        filters = eigenvectors.T / (eigenvalues.clamp(min=0) + self.eps).sqrt()[:, None]
        filters = filters.reshape(dims, in_channels, side, side)
        self.conv.weight.copy_(torch.cat([filters, -filters]).to(self.conv.weight))
        self.fitted.fill_(True)
        return self

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


@torch.no_grad()
def fit_whitening(model: nn.Module, images: Tensor, *, refit: bool = False) -> int:
    """Fit each not yet fitted :class:`PatchWhitening` in ``model`` (every one with
    ``refit=True``) to what reaches it from ``images``.

    Runs ``model`` once on ``images`` (N, C, H, W), float in [0, 1] as the model takes
    them, records each whitening layer's input (after the spatial transformer and the
    normalisation, wherever the layer sits) and fits the layer to it. Returns the number
    of layers fitted. :meth:`Classifier.prepare` calls this, and :func:`stn_utils.training.fit`
    calls that before training starts; a trained layer is left alone, because the layers
    after it were trained on its output.
    """
    layers = [m for m in model.modules() if isinstance(m, PatchWhitening) and (refit or not m.fitted)]
    if not layers:
        return 0
    inputs = {}
    hooks = [layer.register_forward_pre_hook(lambda layer, args: inputs.setdefault(layer, args[0]))
             for layer in layers]
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters())
        model(images.to(param.device, param.dtype))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    for layer in layers:
        layer.fit(inputs[layer].float())
    return len(layers)


CIFAR_WIDTHS = (64, 256, 256)


def cifar_body(widths=CIFAR_WIDTHS, classes: int = 10, *, logit_scale: float = 1 / 9,
               ceil_pool: bool = False) -> nn.Sequential:
    """The course's CNN for 32x32 RGB images: Keller Jordan's airbench94 layout (arXiv
    2404.00498), about 118 M multiply-adds at the default widths.

    A patch-whitening stem (:class:`PatchWhitening`, fitted to the data before training),
    then three stages of conv -> max-pool -> norm -> GELU -> conv -> norm -> GELU that halve
    the resolution (31 -> 15 -> 7 -> 3), a global max-pool and one linear layer whose logits
    are multiplied by ``logit_scale``. The convolutions start near the identity
    (:func:`_identity_conv`) and the norms learn a shift only (:func:`_shift_only_norm`).
    ``logit_scale`` below 1 makes the last layer learn more slowly and start less sure of
    itself, which airbench found to help. Takes any input size of 9 pixels or more.

    Each max-pool rounds down, so on odd sides it drops the map's last row and column
    (31 -> 15 -> 7 -> 3 drops them three times): the body reads an image's bottom and right
    edges less than its top and left ones. ``ceil_pool=True`` rounds up instead
    (31 -> 16 -> 8 -> 4) and drops none, for 23 % more multiply-adds.

    Shape:
        (B, 3, H, W), normalised -> logits (B, classes)
    """
    stem = PatchWhitening(3)
    layers = [stem, nn.GELU()]
    in_channels = stem.conv.out_channels
    for width in widths:
        layers += [_identity_conv(in_channels, width), nn.MaxPool2d(2, ceil_mode=ceil_pool), _shift_only_norm(width),
                   nn.GELU(),
                   _identity_conv(width, width), _shift_only_norm(width), nn.GELU()]
        in_channels = width
    layers += [nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(in_channels, classes, bias=False),
               Scale(logit_scale)]
    return nn.Sequential(*layers)


def mnist_body(*, input_size: int = 28, widths=(16, 32), hidden: int = 128, downsample: str = "maxpool",
               in_channels: int = 1, classes: int = 10) -> nn.Sequential:
    """The classic two-conv, two-linear CNN for grey digits.

    Args:
        input_size: side of the square input (28 for MNIST, 42 and 60 for the paper's
            rotated-translated-scaled and cluttered variants); at least 8.
        downsample: ``"maxpool"`` (conv, then 2x2 max-pool) or ``"stride"`` (a stride-2
            conv, no pooling): notebook 01 compares how much shift each tolerates.
    """
    if input_size < 8:
        raise ValueError(f"input_size must be at least 8 pixels; got {input_size}.")
    if downsample not in ("maxpool", "stride"):
        raise ValueError(f"downsample must be 'maxpool' or 'stride'; got {downsample!r}.")
    layers: list[nn.Module] = []
    for width in widths:
        if downsample == "maxpool":
            layers += [nn.Conv2d(in_channels, width, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2)]
        else:
            layers += [nn.Conv2d(in_channels, width, 5, stride=2, padding=2), nn.ReLU()]
        in_channels = width
    # a 2x2 max-pool floors odd sides, a stride-2 conv with padding 2 rounds them up
    side = input_size // 4 if downsample == "maxpool" else math.ceil(math.ceil(input_size / 2) / 2)
    layers += [nn.Flatten(), nn.Linear(in_channels * side * side, hidden), nn.ReLU(),
               nn.Linear(hidden, classes)]
    return nn.Sequential(*layers)


def digit_body(*, input_size: int = 28, widths=(16, 32), hidden: int = 256, classes: int = 10,
               batch_norm: bool = True, in_channels: int = 1) -> nn.Sequential:
    """A CNN for grey digits with batch norm: two stages of 3x3 conv -> norm -> ReLU ->
    3x3 conv -> norm -> ReLU -> 2x2 max-pool, then a hidden linear layer (with norm and
    dropout) and the class scores. The classifier of the distorted-MNIST recipe, for the
    plain CNN on the whole canvas and for the ST-CNN on its transformer's 28x28 window.
    ``batch_norm=False`` leaves the norms out (biased convolutions instead), to measure
    what they buy. ``in_channels`` > 1 for several digits at once (MNIST addition).

    Shape:
        (B, in_channels, input_size, input_size), normalised -> logits (B, classes)
    """
    if input_size < 8:
        raise ValueError(f"input_size must be at least 8 pixels; got {input_size}.")
    layers: list[nn.Module] = []
    for width in widths:
        for _ in range(2):
            layers += [nn.Conv2d(in_channels, width, 3, padding=1, bias=not batch_norm),
                       nn.BatchNorm2d(width) if batch_norm else nn.Identity(), nn.ReLU()]
            in_channels = width
        layers.append(nn.MaxPool2d(2))
    side = input_size // 2 ** len(widths)
    layers += [nn.Flatten(), nn.Linear(in_channels * side * side, hidden, bias=not batch_norm),
               nn.BatchNorm1d(hidden) if batch_norm else nn.Identity(), nn.ReLU(), nn.Dropout(0.3),
               nn.Linear(hidden, classes)]
    return nn.Sequential(*layers)


class TutorialLocalization(nn.Module):
    """The localisation net of the PyTorch STN tutorial: two large convolutions on the
    full-resolution input.

    ``widths=(8, 10)`` and ``input_size=28`` is the tutorial's MNIST net; ``(64, 128)`` and
    ``32`` is the seed notebook's CIFAR-10 version, which costs three times its
    classifier. Kept to measure that cost and to reproduce the tutorial's behaviour.
    """

    features = 32

    def __init__(self, in_channels: int = 3, *, widths=(64, 128), input_size: int = 32):
        super().__init__()
        side = ((input_size - 6) // 2 - 4) // 2
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 7), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(widths[0], widths[1], 5), nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(),
            nn.Linear(widths[1] * side * side, 32), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def tutorial_body(in_channels: int = 3, *, widths=(32, 64), input_size: int = 32, classes: int = 10) -> nn.Sequential:
    """The PyTorch STN tutorial's classifier (two 5x5 convolutions, dropout, two linear layers)."""
    side = ((input_size - 4) // 2 - 4) // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, widths[0], 5), nn.MaxPool2d(2), nn.ReLU(),
        nn.Conv2d(widths[0], widths[1], 5), nn.Dropout2d(), nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(),
        nn.Linear(widths[1] * side * side, 50), nn.ReLU(), nn.Dropout(), nn.Linear(50, classes))


def _cifar(stn: bool, localization_size: int = 8, widths=CIFAR_WIDTHS, ceil_pool: bool = False,
           **stn_kwargs) -> Classifier:
    """``localization_size``: side the localisation net averages the image down to. An
    8x8 thumbnail keeps the STN cheap (the STN-CNN trains in 1.03x the CNN's time in
    benchmarks/cifar10.py); a 16x16 one cost 16 % on top of an earlier, smaller body.
    ``widths`` and ``ceil_pool``: the body's (see :func:`cifar_body`)."""
    if stn and "localization" not in stn_kwargs:
        stn_kwargs["localization"] = LocalizationNet(3, input_size=localization_size)
    transformer = SpatialTransformer(3, **stn_kwargs) if stn else None
    return Classifier(cifar_body(widths, ceil_pool=ceil_pool), CIFAR10_MEAN, CIFAR10_STD, stn=transformer)


def _mnist(transform, input_size: int = 28, output_size: int | None = None, localization_size: int = 16,
           **body_kwargs) -> Classifier:
    """``output_size``: side of the STN's output, which the classifier sees; smaller than
    the input, the STN crops and downsamples (the paper's cluttered-MNIST set-up), which
    also makes the classifier cheaper. ``localization_size``: side the localisation net
    averages its input down to."""
    if transform is None:
        return Classifier(mnist_body(input_size=input_size, **body_kwargs), MNIST_MEAN, MNIST_STD)
    output_size = output_size or input_size
    transformer = SpatialTransformer(1, transform=transform, output_size=(output_size, output_size),
                                     localization=LocalizationNet(1, input_size=localization_size))
    return Classifier(mnist_body(input_size=output_size, **body_kwargs), MNIST_MEAN, MNIST_STD, stn=transformer)


def _digits(transform, input_size: int = 28, output_size: int | None = None, localization_size: int = 14,
            supersample: int = 2, localization_widths=(32, 64), **body_kwargs) -> Classifier:
    """The distorted-MNIST models: :func:`digit_body` on the whole canvas (``transform=None``),
    or behind a transformer that samples an ``output_size`` window at ``supersample`` times
    its resolution and averages it down, with a localisation net on the canvas averaged
    down to ``localization_size``."""
    if transform is None:
        return Classifier(digit_body(input_size=input_size, **body_kwargs), MNIST_MEAN, MNIST_STD)
    output_size = output_size or input_size
    localization = LocalizationNet(1, input_size=localization_size, widths=localization_widths,
                                   features=localization_widths[-1])
    transformer = SpatialTransformer(1, transform=transform, output_size=(output_size, output_size),
                                     localization=localization, supersample=supersample)
    return Classifier(digit_body(input_size=output_size, **body_kwargs), MNIST_MEAN, MNIST_STD, stn=transformer)


def _addition(transformers: int = 2, input_size: int = 42, output_size: int = 28, localization_size: int = 21,
              supersample: int = 2, localization_widths=(32, 64), classes: int = 19,
              start_zoom: float | None = None, own_channel_start: bool = False, **body_kwargs) -> Classifier:
    """The MNIST-addition models (two digits on two channels, the label their sum): with
    ``transformers=0``, :func:`digit_body` on the whole two-channel canvas; otherwise that
    many affine transformers, each seeing both channels and sampling an ``output_size``
    window of both, stacked (:class:`TransformerStack`) for the body. With one transformer
    the body sees 2 channels, with two it sees 4.

    Shape:
        (B, 2, input_size, input_size) in [0, 1] -> logits (B, classes)

    Each transformer starts at a centred ``output_size`` window at the canvas's own
    resolution (``start_zoom``, default ``output_size / input_size``), not at the identity's
    whole canvas: in ``benchmarks/mnist_addition.py`` that start gave both transformer
    models a lower test error (the README's table).

    ``own_channel_start``: transformer ``k``'s localisation net starts blind to every channel
    but channel ``k`` (the other channels' weights of its first convolution start at zero and
    learn like the rest). Two transformers started alike find the same compromise window;
    this start tells them apart, so that each can follow one digit."""
    if transformers not in (0, 1, 2):
        raise ValueError(f"transformers must be 0, 1 or 2; got {transformers!r}.")
    if transformers == 0:
        if start_zoom is not None:
            raise ValueError("start_zoom is for the transformers; a model with transformers=0 has none.")
        body = digit_body(input_size=input_size, in_channels=2, classes=classes, **body_kwargs)
        return Classifier(body, MNIST_MEAN, MNIST_STD, in_channels=2)
    if own_channel_start and transformers != 2:
        raise ValueError(f"own_channel_start gives each of two transformers its own channel; got "
                         f"transformers={transformers}.")
    start_zoom = output_size / input_size if start_zoom is None else start_zoom

    def transformer(channel: int | None) -> SpatialTransformer:
        localization = LocalizationNet(2, input_size=localization_size, widths=localization_widths,
                                       features=localization_widths[-1])
        if channel is not None:
            with torch.no_grad():
                first = localization.convs[0].weight
                first[:, [c for c in range(first.shape[1]) if c != channel]] = 0
        return SpatialTransformer(2, output_size=(output_size, output_size), localization=localization,
                                  supersample=supersample, start_zoom=start_zoom)

    stn = (transformer(None) if transformers == 1 else
           TransformerStack([transformer(k if own_channel_start else None) for k in range(transformers)]))
    body = digit_body(input_size=output_size, in_channels=2 * transformers, classes=classes, **body_kwargs)
    return Classifier(body, MNIST_MEAN, MNIST_STD, stn=stn, in_channels=2)


def _canvas(stn: bool, canvas_size: int = 48, output_size: int = 32, localization_size: int = 24,
            localization_widths=(32, 64), supersample: int = 2, start_zoom: float | None = None,
            widths=CIFAR_WIDTHS) -> Classifier:
    """The models of CIFAR-10 on a canvas (:mod:`stn_utils.canvas`): with ``stn=False``,
    :func:`cifar_body` on the whole ``canvas_size`` canvas; with ``stn=True``, an affine
    transformer whose localisation net sees the canvas averaged to ``localization_size``
    and which samples an ``output_size`` window (``supersample``-times finer, then
    averaged) for the same body. It starts at a centred window at the canvas's own
    resolution (``start_zoom``, default ``output_size / canvas_size``): in
    ``benchmarks/cifar10_canvas.py`` that start beat the identity's whole canvas (the
    README's table).

    Shape:
        (B, 3, canvas_size, canvas_size) in [0, 1] -> logits (B, 10)"""
    if not stn:
        if start_zoom is not None:
            raise ValueError("start_zoom is for the transformer; the model with stn=False has none.")
        return Classifier(cifar_body(widths), CIFAR10_MEAN, CIFAR10_STD)
    start_zoom = output_size / canvas_size if start_zoom is None else start_zoom
    localization = LocalizationNet(3, input_size=localization_size, widths=localization_widths,
                                   features=localization_widths[-1])
    transformer = SpatialTransformer(3, output_size=(output_size, output_size), localization=localization,
                                     supersample=supersample, start_zoom=start_zoom)
    return Classifier(cifar_body(widths), CIFAR10_MEAN, CIFAR10_STD, stn=transformer)


def _tutorial(normalize_first: bool = True, padding_mode: str = "zeros") -> Classifier:
    stn = SpatialTransformer(3, localization=TutorialLocalization(), padding_mode=padding_mode)
    return Classifier(tutorial_body(), CIFAR10_MEAN, CIFAR10_STD, stn=stn, normalize_first=normalize_first)


def _tutorial_mnist(normalize_first: bool = True, padding_mode: str = "zeros", input_size: int = 28) -> Classifier:
    """The PyTorch tutorial's MNIST STN; ``input_size`` 60 for the cluttered canvas."""
    localization = TutorialLocalization(1, widths=(8, 10), input_size=input_size)
    stn = SpatialTransformer(1, localization=localization, padding_mode=padding_mode)
    body = tutorial_body(1, widths=(10, 20), input_size=input_size)
    return Classifier(body, MNIST_MEAN, MNIST_STD, stn=stn, normalize_first=normalize_first)


MODELS = {
    "cifar_cnn": lambda **kw: _cifar(False, **kw),
    "cifar_stn": lambda **kw: _cifar(True, **kw),
    "mnist_cnn": lambda **kw: _mnist(None, **kw),
    "mnist_stn": lambda transform="affine", **kw: _mnist(transform, **kw),
    "digit_cnn": lambda **kw: _digits(None, **kw),
    "digit_stn": lambda transform="affine", **kw: _digits(transform, **kw),
    "addition_cnn": lambda **kw: _addition(0, **kw),
    "canvas_cnn": lambda **kw: _canvas(False, **kw),
    "canvas_stn": lambda **kw: _canvas(True, **kw),
    "addition_stn": lambda transformers=2, **kw: _addition(transformers, **kw),
    "tutorial_stn": _tutorial,
    "tutorial_mnist_stn": _tutorial_mnist,
}


def build_model(name: str, **kwargs) -> Classifier:
    """Build one of :data:`MODELS` by name, e.g. ``build_model("cifar_stn")``.

    ``cifar_stn`` passes its keyword arguments to the :class:`SpatialTransformer`, and
    ``mnist_stn`` takes its transform family: ``build_model("mnist_stn", transform="tps")``.
    The model remembers its ``name`` and, where they are plain values, its ``build_kwargs``,
    which checkpoints store so that :func:`stn_utils.training.load_model` can rebuild it.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}.")
    model = MODELS[name](**kwargs)
    model.name = name
    model.build_kwargs = dict(kwargs) if all(_plain(v) for v in kwargs.values()) else None
    return model


def _plain(value) -> bool:
    """Whether ``value`` survives a ``weights_only`` checkpoint (numbers, strings, tuples of them)."""
    if isinstance(value, (tuple, list)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_macs(model: nn.Module, input_shape) -> int:
    """Multiply-adds of one forward pass of one input of shape (C, H, W).

    Counts convolutions and linear layers, which dominate; the sampler, norms and
    activations are a few percent of a small CNN's cost and are left out.
    """
    total = 0

    def conv_hook(module, inputs, output):
        nonlocal total
        kernel = module.weight[0].numel()  # (in / groups) * kh * kw
        total += output[0].numel() * kernel

    def linear_hook(module, inputs, output):
        nonlocal total
        total += output[0].numel() * module.in_features

    hooks = [m.register_forward_hook(conv_hook if isinstance(m, nn.Conv2d) else linear_hook)
             for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            param = next(model.parameters())
            model(torch.zeros(1, *input_shape, dtype=param.dtype, device=param.device))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return total
