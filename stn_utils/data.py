"""CIFAR-10 and MNIST as in-memory uint8 tensors, plus the distortions the course uses.

Two sources sit behind one function, :func:`load_dataset`:

- ``"folder"``: a class-per-folder tree ``<root>/<name>/<split>/<class>/<image>``, such as
  the offline archives in ``shared/data`` unpacked into ``root``;
- ``"download"``: torchvision's downloader, into ``<root>/torchvision``.

``"auto"`` (the default) takes the folder tree when it is there and downloads otherwise.
Either way the images are decoded once and cached as a tensor file under
``<root>/cache``, so later loads take a fraction of a second. The source can also be
picked with the environment variable ``STN_DATA_SOURCE`` and the root with
``STN_DATA_DIR``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .files import atomic_write
from .geometry import make_theta, warp

__all__ = [
    "DATASETS",
    "ImageDataset",
    "DataNotFoundError",
    "data_root",
    "load_dataset",
    "to_float",
    "randomly_rotated",
    "pad_to",
    "rotate",
    "scale",
    "translate",
    "add_clutter",
    "random_affine",
    "random_crop_flip",
    "cutout",
]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
MNIST_CLASSES = tuple(str(d) for d in range(10))

DATASETS = {
    "cifar10": {"classes": CIFAR10_CLASSES, "channels": 3, "size": 32},
    "mnist": {"classes": MNIST_CLASSES, "channels": 1, "size": 28},
}
SOURCES = ("auto", "folder", "download")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}


class DataNotFoundError(FileNotFoundError):
    """Raised when a data set is neither on disk nor downloadable."""


@dataclass
class ImageDataset:
    """A labelled image set held in memory.

    Attributes:
        images: (N, C, H, W), uint8 as loaded; float in [0, 1] is accepted too (e.g. the
            distorted copies that :func:`stn_utils.training.accuracy_curve` evaluates).
        labels: integer tensor of shape (N,), each in ``0 .. len(classes) - 1``.
        classes: class names, indexed by label.
    """

    images: Tensor
    labels: Tensor
    classes: tuple[str, ...]

    def __post_init__(self):
        self.classes = tuple(self.classes)
        if not isinstance(self.images, Tensor) or self.images.ndim != 4:
            shape = tuple(self.images.shape) if isinstance(self.images, Tensor) else type(self.images).__name__
            raise ValueError(f"ImageDataset.images must be a tensor (N, C, H, W); got {shape}. "
                             "Add a channel dimension to grey images with images.unsqueeze(1).")
        if not isinstance(self.labels, Tensor) or self.labels.ndim != 1 or self.labels.dtype.is_floating_point:
            raise ValueError("ImageDataset.labels must be a 1-D integer tensor, one class index per image; got "
                             + (f"{self.labels.dtype} of shape {tuple(self.labels.shape)}"
                                if isinstance(self.labels, Tensor) else type(self.labels).__name__) + ".")
        if len(self.labels) != len(self.images):
            raise ValueError(f"ImageDataset has {len(self.images)} images but {len(self.labels)} labels; "
                             "give exactly one label per image.")
        if len(self.labels) and not 0 <= int(self.labels.min()) <= int(self.labels.max()) < len(self.classes):
            raise ValueError(f"ImageDataset labels run from {int(self.labels.min())} to {int(self.labels.max())}, "
                             f"but there are {len(self.classes)} classes {self.classes}: labels must lie in "
                             f"0 .. {len(self.classes) - 1}. Fix the labels, or list every class.")

    def __len__(self) -> int:
        return self.labels.numel()

    def subset(self, count: int, *, seed: int = 0) -> "ImageDataset":
        """A seeded random subset of ``count`` examples (all of them if ``count >= len``)."""
        if count < 1:
            raise ValueError(f"subset size must be at least 1; got {count}.")
        if count >= len(self):
            return self
        generator = torch.Generator().manual_seed(seed)
        index = torch.randperm(len(self), generator=generator)[:count]
        return ImageDataset(self.images[index], self.labels[index], self.classes)

    def order(self, *, shuffle: bool = False, generator: torch.Generator | None = None) -> Tensor:
        """The indices one pass visits: ``0 .. N - 1``, or a permutation drawn from ``generator``."""
        count = self.labels.numel()
        return torch.randperm(count, generator=generator) if shuffle else torch.arange(count)

    def batches(self, batch_size: int, *, device=None, shuffle: bool = False,
                generator: torch.Generator | None = None, with_index: bool = False):
        """Yield ``(images, labels)``: float images (B, C, H, W) in [0, 1] and labels (B,),
        on ``device``, in the order of :meth:`order`; the last batch may be smaller. With
        ``with_index`` also the batch's indices into the data set: ``(images, labels, index)``."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1; got {batch_size}.")
        if self.labels.numel() == 0:
            raise ValueError("the data set is empty; nothing to iterate over.")
        order = self.order(shuffle=shuffle, generator=generator)
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            batch = (to_float(self.images[index].to(device, non_blocking=True)),
                     self.labels[index].to(device, non_blocking=True))
            yield (*batch, index) if with_index else batch


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Where data sets live: ``root``, else ``$STN_DATA_DIR``, else ``~/.cache/stn_utils``."""
    if root is None:
        root = os.environ.get("STN_DATA_DIR") or Path.home() / ".cache" / "stn_utils"
    return Path(root).expanduser()


def load_dataset(name: str, split: str = "train", *, root=None, source: str | None = None) -> ImageDataset:
    """Load CIFAR-10 or MNIST as uint8 tensors, decoding once and caching on disk.

    Args:
        name: ``"cifar10"`` or ``"mnist"``.
        split: ``"train"`` or ``"test"``.
        root: data folder; defaults to :func:`data_root`.
        source: ``"auto"``, ``"folder"`` or ``"download"``; defaults to
            ``$STN_DATA_SOURCE``, else ``"auto"``.

    Returns:
        An :class:`ImageDataset` with images (N, C, H, W) uint8 and labels (N,) int64.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {sorted(DATASETS)}.")
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'.")
    source = source or os.environ.get("STN_DATA_SOURCE") or "auto"
    if source not in SOURCES:
        raise ValueError(f"unknown data source {source!r}; choose one of {SOURCES} "
                         "(argument `source` or environment variable STN_DATA_SOURCE).")
    root = data_root(root)
    folder = root / name / split
    if source == "auto":
        source = "folder" if folder.is_dir() else "download"

    cache = root / "cache" / f"{name}-{split}-{source}.pt"
    if cache.is_file():
        stored = torch.load(cache, weights_only=True)
        return ImageDataset(stored["images"], stored["labels"], tuple(stored["classes"]))

    if source == "folder":
        if not folder.is_dir():
            raise DataNotFoundError(_missing_message(name, folder))
        dataset = _read_folder(folder, DATASETS[name])
    else:
        dataset = _download(name, split, root)

    stored = {"images": dataset.images, "labels": dataset.labels, "classes": list(dataset.classes)}
    atomic_write(cache, lambda partial: torch.save(stored, partial))  # a killed run leaves no half cache
    return dataset


def _missing_message(name: str, folder: Path, download_error: Exception | None = None) -> str:
    tried = (f"torchvision's download failed ({download_error!r})" if download_error is not None
             else "no download was tried (the source is 'folder')")
    return (
        f"{name} was not found: there is no class-per-folder copy at {folder}, and {tried}. Either\n"
        f"  (1) put the images at {folder}/<class>/<image> (an image-folder archive of {name} unpacked "
        f"into {folder.parent.parent} makes them), then load again: the default source, 'auto', uses the "
        f"folder when it is there (source='folder' insists on it); or\n"
        f"  (2) connect to the internet and load again: torchvision downloads {name} (source='download').\n"
        f"The data folder is {folder.parent.parent}: change it with the argument `root` or the environment "
        f"variable STN_DATA_DIR (in a notebook, os.environ['STN_DATA_DIR'] = '...' before the first load); "
        f"choose the source with `source` or STN_DATA_SOURCE."
    )


def _read_folder(folder: Path, spec: dict) -> ImageDataset:
    from PIL import Image, UnidentifiedImageError

    missing = [c for c in spec["classes"] if not (folder / c).is_dir()]
    if missing:
        raise DataNotFoundError(
            f"{folder} lacks the class folder(s) {missing}; a complete copy has one folder per "
            f"class: {list(spec['classes'])}. Unpack the archive again or use source='download'.")
    files, labels = [], []
    for label, name in enumerate(spec["classes"]):
        found = sorted(p for p in (folder / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise DataNotFoundError(f"class folder {folder / name} holds no images "
                                    f"({', '.join(sorted(IMAGE_SUFFIXES))}).")
        files += found
        labels += [label] * len(found)

    mode = "RGB" if spec["channels"] == 3 else "L"
    size = (spec["size"], spec["size"])
    images = np.empty((len(files), size[0], size[1], spec["channels"]), dtype=np.uint8)
    if sys.stderr.isatty():  # a terminal; a notebook's stored output stays free of it
        print(f"decoding {len(files):,} images of {folder.parent.name} {folder.name} once; later loads read the cache",
              file=sys.stderr)
    for i, path in enumerate(files):
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert(mode))
        except (UnidentifiedImageError, OSError) as error:
            raise ValueError(f"cannot read image {path}: {error}. Delete or replace the file "
                             "and load again.") from error
        if pixels.shape[:2] != size:
            raise ValueError(f"image {path} is {pixels.shape[1]}x{pixels.shape[0]} pixels; "
                             f"every image of this data set must be {size[1]}x{size[0]}.")
        images[i] = pixels.reshape(images.shape[1:])
    return ImageDataset(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
                        torch.tensor(labels, dtype=torch.int64), spec["classes"])


def _download(name: str, split: str, root: Path) -> ImageDataset:
    import torchvision

    dataset_class = {"cifar10": torchvision.datasets.CIFAR10, "mnist": torchvision.datasets.MNIST}[name]
    try:
        dataset = dataset_class(str(root / "torchvision"), train=split == "train", download=True)
    except Exception as error:  # torchvision raises URLError, RuntimeError, ... when offline
        raise DataNotFoundError(_missing_message(name, root / name / split, error)) from error
    images = torch.as_tensor(np.asarray(dataset.data), dtype=torch.uint8)
    images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
    labels = torch.as_tensor(np.asarray(dataset.targets), dtype=torch.int64)
    return ImageDataset(images.contiguous(), labels, DATASETS[name]["classes"])


def to_float(images: Tensor) -> Tensor:
    """uint8 images in [0, 255] -> float32 in [0, 1]; float images pass through unchanged."""
    if images.dtype == torch.uint8:
        return images.float().div_(255)
    if not images.is_floating_point():
        raise TypeError(f"images must be uint8 or floating point; got {images.dtype}.")
    return images


def pad_to(images: Tensor, size: int) -> Tensor:
    """Centre (B, C, H, W) images on a black ``size`` x ``size`` canvas, keeping their dtype.

    MNIST digits fill a 20x20 box in a 28x28 frame; on a larger canvas they can be moved,
    scaled and rotated without running out of the picture, which is what the STN paper
    does for its translated and cluttered variants.
    """
    height, width = images.shape[-2:]
    if size < max(height, width):
        raise ValueError(f"canvas size {size} is smaller than the images ({height}x{width}).")
    top, left = (size - height) // 2, (size - width) // 2
    return torch.nn.functional.pad(images, (left, size - width - left, top, size - height - top))


# --- distortions -------------------------------------------------------------------------
# Deterministic ones (one amount for the whole batch) use torchvision's v2 functional ops,
# which is what they are for. Per-image random ones build one theta per image and warp the
# batch in a single grid_sample call, which v2's per-call random parameters cannot do.

def rotate(images: Tensor, degrees: float) -> Tensor:
    """Rotate every image (B, C, H, W) counter-clockwise by ``degrees`` about its centre."""
    from torchvision.transforms.v2 import InterpolationMode, functional as TF
    return TF.rotate(to_float(images), float(degrees), interpolation=InterpolationMode.BILINEAR)


def scale(images: Tensor, factor: float) -> Tensor:
    """Zoom every image (B, C, H, W) by ``factor`` about its centre (< 1 shrinks)."""
    from torchvision.transforms.v2 import InterpolationMode, functional as TF
    if factor <= 0:
        raise ValueError(f"scale factor must be positive; got {factor}.")
    return TF.affine(to_float(images), angle=0.0, translate=[0, 0], scale=float(factor),
                     shear=[0.0, 0.0], interpolation=InterpolationMode.BILINEAR)


def translate(images: Tensor, dx: int, dy: int) -> Tensor:
    """Shift every image (B, C, H, W) by ``dx`` pixels right and ``dy`` pixels down."""
    from torchvision.transforms.v2 import functional as TF
    return TF.affine(to_float(images), angle=0.0, translate=[int(dx), int(dy)], scale=1.0,
                     shear=[0.0, 0.0])


def add_clutter(images: Tensor, count: int, *, patch_size: int = 6, seed: int = 0,
                sources: Tensor | None = None) -> Tensor:
    """Paste ``count`` random ``patch_size`` squares cut from other images onto each image.

    Clutter in the sense of the STN paper: strokes that look like parts of digits. Patches
    come from ``sources`` (default: the batch itself, each image drawing from others) and
    are combined with ``max`` so they add ink without erasing the object.

    Args:
        images: (B, C, H, W) uint8 or float in [0, 1].
        count: patches per image (0 returns the images unchanged, as float).
        sources: (N, C, H, W) images to cut patches from; same C, H, W as ``images``.

    Returns:
        (B, C, H, W) float in [0, 1].
    """
    images = to_float(images).clone()
    if count < 0:
        raise ValueError(f"clutter count must be >= 0; got {count}.")
    sources = images if sources is None else to_float(sources)
    b, _, h, w = images.shape
    if sources.shape[1:] != images.shape[1:]:
        raise ValueError(f"sources must have the images' (C, H, W) = {tuple(images.shape[1:])}; "
                         f"got {tuple(sources.shape[1:])}.")
    if not 0 < patch_size <= min(h, w):
        raise ValueError(f"patch_size must be between 1 and {min(h, w)}; got {patch_size}.")
    generator = torch.Generator().manual_seed(seed)
    offsets = torch.arange(patch_size)
    rows = torch.arange(b)[:, None, None]
    for _ in range(count):
        donor = torch.randint(len(sources), (b,), generator=generator)
        sy, sx, dy, dx = (torch.randint(n - patch_size + 1, (b,), generator=generator)
                          for n in (h, w, h, w))
        # index grids (B, P, P) for the source and destination squares
        src_y, src_x = (sy[:, None] + offsets)[:, :, None], (sx[:, None] + offsets)[:, None, :]
        dst_y, dst_x = (dy[:, None] + offsets)[:, :, None], (dx[:, None] + offsets)[:, None, :]
        patch = sources[donor[:, None, None], :, src_y, src_x]         # (B, P, P, C)
        region = images[rows, :, dst_y, dst_x]
        images[rows, :, dst_y, dst_x] = torch.maximum(region, patch)
    return images


def random_affine(images: Tensor, *, max_rotation: float = 0.0, scale_range=(1.0, 1.0),
                  max_translate: float = 0.0, generator: torch.Generator | None = None,
                  padding_mode: str = "zeros") -> Tensor:
    """A different random rotation / scale / translation for every image of the batch.

    Args:
        images: (B, C, H, W) uint8 or float.
        max_rotation: degrees; angles are uniform in [-max_rotation, max_rotation].
        scale_range: (low, high) zoom factors, uniform.
        max_translate: fraction of the half-width; shifts uniform in [-max, max].

    Returns:
        (B, C, H, W) float in [0, 1].
    """
    images = to_float(images)
    b = images.shape[0]
    uniform = lambda low, high: torch.rand(b, generator=generator) * (high - low) + low  # noqa: E731
    zoom = uniform(*scale_range)
    # theta maps output to input, so an object zoomed by s needs coordinates divided by s
    theta = make_theta(rotation=uniform(-max_rotation, max_rotation), scale_x=1 / zoom,
                       scale_y=1 / zoom, translate_x=uniform(-max_translate, max_translate),
                       translate_y=uniform(-max_translate, max_translate))
    return warp(images, theta.to(images), padding_mode=padding_mode, align_corners=False)


def randomly_rotated(dataset: ImageDataset, max_rotation: float, seed: int) -> ImageDataset:
    """``dataset`` with one fixed random rotation per image, uniform in
    ``[-max_rotation, max_rotation]`` degrees and drawn from ``seed`` (same seed, same
    images), stored back as uint8 like the rest of the data: a test set of rotated digits."""
    rotated = random_affine(dataset.images, max_rotation=max_rotation, generator=torch.Generator().manual_seed(seed))
    return ImageDataset((rotated * 255).round().to(torch.uint8), dataset.labels, dataset.classes)


def random_crop_flip(images: Tensor, *, padding: int = 4, flip: bool = True,
                     generator: torch.Generator | None = None) -> Tensor:
    """The standard CIFAR augmentation, for a whole batch at once on any device.

    Each image is reflect-padded by ``padding`` pixels, cropped back to its size at a
    random offset, and mirrored left-right with probability 1/2.

    Args:
        images: (B, C, H, W) of any dtype.

    Returns:
        (B, C, H, W), the same dtype and device.
    """
    b, c, h, w = images.shape
    device = images.device
    if padding > 0:
        padded = torch.nn.functional.pad(images.float() if images.dtype == torch.uint8 else images,
                                         (padding,) * 4, mode="reflect").to(images.dtype)
        dy = torch.randint(2 * padding + 1, (b,), generator=generator).to(device)
        dx = torch.randint(2 * padding + 1, (b,), generator=generator).to(device)
        rows = (dy[:, None] + torch.arange(h, device=device))[:, None, :, None].expand(b, c, h, w + 2 * padding)
        images = padded.gather(2, rows)
        cols = (dx[:, None] + torch.arange(w, device=device))[:, None, None, :].expand(b, c, h, w)
        images = images.gather(3, cols)
    if flip:
        mirror = (torch.rand(b, generator=generator) < 0.5).to(device)
        images = torch.where(mirror[:, None, None, None], images.flip(3), images)
    return images


def cutout(images: Tensor, size: int, *, generator: torch.Generator | None = None) -> Tensor:
    """Cutout (DeVries and Taylor, arXiv 1708.04552) for a whole batch at once: in each image,
    a ``size`` x ``size`` square centred on a pixel drawn uniformly (and cut off where it
    crosses the border) is filled with the batch's mean colour, so the model must also
    recognise objects with a part hidden. (torchvision's ``RandomErasing`` would erase the
    same box in every image of a batch.)

    Args:
        images: (B, C, H, W), floating point.
        size: the square's side in pixels, >= 1.

    Returns:
        (B, C, H, W), the same dtype and device.

    >>> images = torch.zeros(2, 3, 8, 8)
    >>> images[1] = 1.0  # the batch's mean colour is then 0.5 in every channel
    >>> out = cutout(images, 4, generator=torch.Generator().manual_seed(0))
    >>> hidden = (out == 0.5).all(1)  # (B, H, W)
    >>> out.shape, [0 < int(n) <= 16 for n in hidden.flatten(1).sum(1)]
    (torch.Size([2, 3, 8, 8]), [True, True])
    """
    if not images.is_floating_point():
        raise TypeError(f"cutout needs floating-point images; got {images.dtype}. Convert with to_float first.")
    if not (isinstance(size, int) and not isinstance(size, bool) and size >= 1):
        raise ValueError(f"cutout's size must be a whole number of pixels >= 1; got {size!r}.")
    b, _, h, w = images.shape
    device = images.device
    cy = torch.randint(h, (b,), generator=generator).to(device)
    cx = torch.randint(w, (b,), generator=generator).to(device)
    low = size // 2  # a square of side `size` covers centre - low ... centre - low + size - 1
    rows = torch.arange(h, device=device) - (cy[:, None] - low)  # (B, H): place within the square
    cols = torch.arange(w, device=device) - (cx[:, None] - low)
    inside = ((rows >= 0) & (rows < size))[:, :, None] & ((cols >= 0) & (cols < size))[:, None, :]
    mean = images.mean(dim=(0, 2, 3), keepdim=True)
    return torch.where(inside[:, None], mean.to(images.dtype), images)
