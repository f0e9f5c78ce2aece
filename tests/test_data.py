"""Tests for stn_utils.data: loading class-per-folder trees, caching, sources, errors,
and the distortions. Everything runs on tiny synthetic images written to tmp_path; only
the optional test at the end reads the real MNIST test split (skipped when absent)."""

import os
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import stn_utils.data as data_module
from stn_utils.data import (
    DATASETS,
    DataNotFoundError,
    ImageDataset,
    add_clutter,
    cutout,
    data_root,
    load_dataset,
    random_affine,
    random_crop_flip,
    rotate,
    scale,
    to_float,
    translate,
)

PER_CLASS = 3


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    """No test may see the caller's data settings."""
    monkeypatch.delenv("STN_DATA_DIR", raising=False)
    monkeypatch.delenv("STN_DATA_SOURCE", raising=False)


def pixel_value(label: int, index: int) -> int:
    return 20 * label + 5 * index + 3


def make_tree(root: Path, name: str = "mnist", split: str = "test", *, per_class: int = PER_CLASS,
              skip_class=None, empty_class=None) -> Path:
    """Write ``root/name/split/<class>/<i>.png``; image i of class k is filled with a known value
    (for RGB: three distinct values, so channel order can be checked)."""
    spec = DATASETS[name]
    folder = root / name / split
    for label, cls in enumerate(spec["classes"]):
        if cls == skip_class:
            continue
        (folder / cls).mkdir(parents=True)
        if cls == empty_class:
            continue
        for i in range(per_class):
            value = pixel_value(label, i)
            size = (spec["size"], spec["size"])
            if spec["channels"] == 1:
                image = Image.new("L", size, value)
            else:
                image = Image.new("RGB", size, (value, value + 1, value + 2))
            image.putpixel((1, 0), 255 if spec["channels"] == 1 else (255, 255, 255))  # asymmetric mark
            image.save(folder / cls / f"{i:03d}.png")
    return folder


class FakeMNIST:
    """Stands in for torchvision.datasets.MNIST: 5 digits, no network."""

    calls = 0

    def __init__(self, root, train=True, download=False):
        FakeMNIST.calls += 1
        self.data = torch.full((5, 28, 28), 7, dtype=torch.uint8)
        self.targets = torch.tensor([0, 1, 2, 3, 4])


class FakeCIFAR10:
    """Stands in for torchvision.datasets.CIFAR10: numpy HWC data and a list of targets."""

    def __init__(self, root, train=True, download=False):
        self.data = np.zeros((4, 32, 32, 3), dtype=np.uint8)
        self.data[..., 0], self.data[..., 1], self.data[..., 2] = 10, 20, 30
        self.targets = [9, 8, 7, 6]


def offline(*args, **kwargs):
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


@pytest.fixture
def fake_download(monkeypatch):
    import torchvision
    FakeMNIST.calls = 0
    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)


# --- data_root ------------------------------------------------------------------------------

def test_data_root_argument_env_and_default(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_root() == tmp_path / "home" / ".cache" / "stn_utils"
    monkeypatch.setenv("STN_DATA_DIR", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(tmp_path / "arg") == tmp_path / "arg"  # the argument wins over the variable
    assert data_root("~/x") == tmp_path / "home" / "x"


# --- load_dataset from folders --------------------------------------------------------------

def test_load_mnist_folder_shapes_labels_and_pixels(tmp_path):
    make_tree(tmp_path, "mnist", "test")
    ds = load_dataset("mnist", "test", root=tmp_path, source="folder")
    assert isinstance(ds, ImageDataset)
    assert ds.images.shape == (10 * PER_CLASS, 1, 28, 28)
    assert ds.images.dtype == torch.uint8 and ds.labels.dtype == torch.int64
    assert ds.classes == tuple(str(d) for d in range(10))
    assert len(ds) == 10 * PER_CLASS
    assert ds.labels.tolist() == [k for k in range(10) for _ in range(PER_CLASS)]
    for n, (label, i) in enumerate((k, i) for k in range(10) for i in range(PER_CLASS)):
        assert ds.images[n, 0, 5, 5] == pixel_value(label, i)
        assert ds.images[n, 0, 0, 1] == 255 and ds.images[n, 0, 1, 0] != 255  # row 0, column 1


def test_load_cifar_folder_rgb_channel_order(tmp_path):
    make_tree(tmp_path, "cifar10", "train")
    ds = load_dataset("cifar10", "train", root=tmp_path, source="folder")
    assert ds.images.shape == (10 * PER_CLASS, 3, 32, 32) and ds.images.dtype == torch.uint8
    assert ds.classes[0] == "airplane" and ds.classes[9] == "truck" and len(ds.classes) == 10
    assert ds.labels.tolist() == [k for k in range(10) for _ in range(PER_CLASS)]
    value = pixel_value(4, 2)
    assert ds.images[4 * PER_CLASS + 2, :, 10, 10].tolist() == [value, value + 1, value + 2]


def test_cache_is_written_and_reused(tmp_path, monkeypatch):
    make_tree(tmp_path, "mnist", "train")
    first = load_dataset("mnist", "train", root=tmp_path, source="folder")
    cache = tmp_path / "cache" / "mnist-train-folder.pt"
    assert cache.is_file()
    assert not list((tmp_path / "cache").glob("*.tmp"))  # the temporary file was renamed away
    shutil.rmtree(tmp_path / "mnist")

    def no_decoding(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(data_module, "_read_folder", no_decoding)
    second = load_dataset("mnist", "train", root=tmp_path, source="folder")
    assert torch.equal(first.images, second.images)
    assert torch.equal(first.labels, second.labels)
    assert second.classes == first.classes and isinstance(second.classes, tuple)


def test_root_from_env_var(tmp_path, monkeypatch):
    make_tree(tmp_path, "mnist", "test")
    monkeypatch.setenv("STN_DATA_DIR", str(tmp_path))
    ds = load_dataset("mnist", "test", source="folder")
    assert len(ds) == 10 * PER_CLASS
    assert (tmp_path / "cache" / "mnist-test-folder.pt").is_file()


def test_source_auto_takes_folder_when_present(tmp_path, fake_download):
    make_tree(tmp_path, "mnist", "test")
    ds = load_dataset("mnist", "test", root=tmp_path)
    assert len(ds) == 10 * PER_CLASS and FakeMNIST.calls == 0
    assert (tmp_path / "cache" / "mnist-test-folder.pt").is_file()


def test_source_auto_downloads_when_folder_absent(tmp_path, fake_download):
    ds = load_dataset("mnist", "train", root=tmp_path)
    assert FakeMNIST.calls == 1
    assert ds.images.shape == (5, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert ds.labels.tolist() == [0, 1, 2, 3, 4] and ds.labels.dtype == torch.int64
    assert (tmp_path / "cache" / "mnist-train-download.pt").is_file()
    load_dataset("mnist", "train", root=tmp_path)  # now from the cache
    assert FakeMNIST.calls == 1


def test_source_download_by_argument_converts_cifar_layout(tmp_path, fake_download):
    make_tree(tmp_path, "cifar10", "test")  # present, but the argument asks for a download
    ds = load_dataset("cifar10", "test", root=tmp_path, source="download")
    assert ds.images.shape == (4, 3, 32, 32) and ds.images.is_contiguous()
    assert ds.images[0, :, 0, 0].tolist() == [10, 20, 30]
    assert ds.labels.tolist() == [9, 8, 7, 6] and ds.labels.dtype == torch.int64
    assert ds.classes[0] == "airplane"


def test_source_by_env_var_and_argument_wins(tmp_path, monkeypatch, fake_download):
    make_tree(tmp_path, "mnist", "test")
    monkeypatch.setenv("STN_DATA_SOURCE", "download")
    assert len(load_dataset("mnist", "test", root=tmp_path)) == 5
    assert FakeMNIST.calls == 1
    assert len(load_dataset("mnist", "test", root=tmp_path, source="folder")) == 10 * PER_CLASS
    assert FakeMNIST.calls == 1


def test_unknown_name_split_source(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"unknown data set 'fashion'.*cifar10.*mnist"):
        load_dataset("fashion", root=tmp_path)
    with pytest.raises(ValueError, match=r"unknown split 'val'"):
        load_dataset("mnist", "val", root=tmp_path)
    with pytest.raises(ValueError, match=r"unknown data source 'web'.*STN_DATA_SOURCE"):
        load_dataset("mnist", root=tmp_path, source="web")
    monkeypatch.setenv("STN_DATA_SOURCE", "ftp")
    with pytest.raises(ValueError, match=r"unknown data source 'ftp'"):
        load_dataset("mnist", root=tmp_path)


def test_missing_folder_names_both_options(tmp_path):
    folder = tmp_path / "mnist" / "test"
    with pytest.raises(DataNotFoundError, match="mnist was not found") as info:
        load_dataset("mnist", "test", root=tmp_path, source="folder")
    message = str(info.value)
    assert str(folder) in message and "source='folder'" in message
    assert "source='download'" in message
    assert isinstance(info.value, FileNotFoundError)
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("source", ["download", "auto"])
def test_download_offline_names_both_options(tmp_path, monkeypatch, source):
    import torchvision
    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(DataNotFoundError, match=r"torchvision's download failed \(URLError") as info:
        load_dataset("mnist", "train", root=tmp_path, source=source)
    message = str(info.value)
    assert f"put the images at {tmp_path / 'mnist' / 'train'}/<class>/<image>" in message
    assert "the default source, 'auto', uses the folder when it is there" in message
    assert "torchvision downloads mnist (source='download')" in message
    assert "os.environ['STN_DATA_DIR']" in message
    assert isinstance(info.value.__cause__, urllib.error.URLError)
    assert not (tmp_path / "cache").exists()


def test_missing_class_folder(tmp_path):
    make_tree(tmp_path, "mnist", "test", skip_class="7")
    with pytest.raises(DataNotFoundError, match=r"lacks the class folder\(s\) \['7'\]"):
        load_dataset("mnist", "test", root=tmp_path, source="folder")


def test_empty_class_folder(tmp_path):
    make_tree(tmp_path, "cifar10", "test", empty_class="frog")
    (tmp_path / "cifar10" / "test" / "frog" / "notes.txt").write_text("not an image")
    with pytest.raises(DataNotFoundError, match=r"frog holds no images"):
        load_dataset("cifar10", "test", root=tmp_path, source="folder")


def test_unreadable_image(tmp_path):
    folder = make_tree(tmp_path, "mnist", "test")
    (folder / "3" / "001.png").write_bytes(b"this is not a png" * 10)
    with pytest.raises(ValueError, match=r"cannot read image .*001\.png"):
        load_dataset("mnist", "test", root=tmp_path, source="folder")
    assert not (tmp_path / "cache").exists()


def test_image_of_wrong_size(tmp_path):
    folder = make_tree(tmp_path, "mnist", "test")
    Image.new("L", (27, 28)).save(folder / "5" / "002.png")
    with pytest.raises(ValueError, match=r"is 27x28 pixels; every image of this data set must be 28x28"):
        load_dataset("mnist", "test", root=tmp_path, source="folder")


# --- ImageDataset.subset --------------------------------------------------------------------

def numbered_dataset(n=50):
    images = torch.arange(n, dtype=torch.uint8).reshape(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    return ImageDataset(images, torch.arange(n) % 10, tuple("abcdefghij"))


def test_subset_seeded_and_deterministic():
    ds = numbered_dataset()
    a, b, c = ds.subset(10, seed=1), ds.subset(10, seed=1), ds.subset(10, seed=2)
    assert len(a) == 10 and a.images.shape == (10, 1, 2, 2)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.labels, c.labels) or not torch.equal(a.images, c.images)
    ids = a.images[:, 0, 0, 0].long()
    assert len(set(ids.tolist())) == 10  # no repeats
    assert torch.equal(a.labels, ids % 10)  # images and labels stay paired
    assert a.classes == ds.classes
    assert ds.subset(50) is ds and ds.subset(80) is ds


@pytest.mark.parametrize("count", [0, -3])
def test_subset_bad_size(count):
    with pytest.raises(ValueError, match="subset size must be at least 1"):
        numbered_dataset().subset(count)


# --- to_float -------------------------------------------------------------------------------

def test_to_float():
    x = torch.tensor([0, 51, 255], dtype=torch.uint8)
    y = to_float(x)
    assert y.dtype == torch.float32
    assert torch.allclose(y, torch.tensor([0.0, 0.2, 1.0]))
    assert x.tolist() == [0, 51, 255]  # input untouched
    f = torch.rand(3, dtype=torch.float64)
    assert to_float(f) is f
    with pytest.raises(TypeError, match="must be uint8 or floating point; got torch.int64"):
        to_float(torch.arange(3))


# --- deterministic distortions --------------------------------------------------------------

def asymmetric_images(size=6, batch=2, seed=0):
    return torch.rand(batch, 1, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("size", [5, 6])
def test_rotate_90_is_counter_clockwise(size):
    x = asymmetric_images(size)
    out = rotate(x, 90)
    # torch.rot90 with k=1 over (H, W) turns the picture counter-clockwise, which is
    # torchvision's documented convention for a positive angle
    assert torch.allclose(out, torch.rot90(x, 1, dims=(-2, -1)), atol=1e-5)
    assert not torch.allclose(out, torch.rot90(x, -1, dims=(-2, -1)), atol=1e-2)
    # a single mark in the top-right corner ends up in the top-left corner
    mark = torch.zeros(1, 1, size, size)
    mark[..., 0, size - 1] = 1
    assert rotate(mark, 90)[0, 0, 0, 0] == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(rotate(x, -90), torch.rot90(x, -1, dims=(-2, -1)), atol=1e-5)


def test_rotate_uint8_input_and_zero_angle():
    x = (asymmetric_images() * 255).to(torch.uint8)
    out = rotate(x, 0)
    assert out.dtype == torch.float32 and torch.allclose(out, to_float(x), atol=1e-6)


def test_scale_identity_and_errors():
    x = asymmetric_images(8)
    assert torch.allclose(scale(x, 1.0), x, atol=1e-6)
    # zooming in by 2 makes the centre 2x2 block cover the centre 4x4 block
    block = torch.zeros(1, 1, 8, 8)
    block[..., 3:5, 3:5] = 1
    zoomed = scale(block, 2.0)
    assert zoomed[..., 2:6, 2:6].min() > 0.2 and zoomed[..., 0, :].max() < 1e-6
    assert scale(block, 0.5).sum() < block.sum()
    for bad in (0, -1.5):
        with pytest.raises(ValueError, match="scale factor must be positive"):
            scale(x, bad)


@pytest.mark.parametrize("dx,dy", [(1, 2), (-2, 0), (0, -1), (3, 3)])
def test_translate_moves_a_pixel(dx, dy):
    x = torch.zeros(1, 1, 8, 8, dtype=torch.uint8)
    x[0, 0, 3, 4] = 255  # row 3, column 4
    out = translate(x, dx, dy)
    expected = torch.zeros(1, 1, 8, 8)
    expected[0, 0, 3 + dy, 4 + dx] = 1
    assert torch.equal(out, expected)


# --- add_clutter ----------------------------------------------------------------------------

def digit_like(batch=6, size=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, 1, size, size, generator=g) > 0.8).to(torch.uint8) * 255


def test_add_clutter_zero_count_is_unchanged():
    x = digit_like()
    out = add_clutter(x, 0)
    assert out.dtype == torch.float32 and torch.equal(out, to_float(x))


def test_add_clutter_deterministic_and_adds_ink_only():
    x = to_float(digit_like()) * 0.5
    a = add_clutter(x, 4, patch_size=3, seed=5)
    b = add_clutter(x, 4, patch_size=3, seed=5)
    c = add_clutter(x, 4, patch_size=3, seed=6)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert (a >= x).all() and not torch.equal(a, x)
    assert a.shape == x.shape and a.max() <= 1.0
    assert torch.equal(x, to_float(digit_like()) * 0.5)  # input untouched


def test_add_clutter_from_sources():
    x = torch.zeros(3, 1, 10, 10)
    sources = torch.ones(2, 1, 10, 10)
    out = add_clutter(x, 2, patch_size=3, seed=0, sources=sources)
    ink = out.flatten(1).sum(1)
    assert ((ink >= 9) & (ink <= 18)).all()  # two 3x3 patches, possibly overlapping
    assert set(out.unique().tolist()) == {0.0, 1.0}


def test_add_clutter_errors():
    x = digit_like(size=8)
    for bad in (0, 9):
        with pytest.raises(ValueError, match="patch_size must be between 1 and 8"):
            add_clutter(x, 1, patch_size=bad)
    with pytest.raises(ValueError, match=r"sources must have the images' \(C, H, W\) = \(1, 8, 8\); got \(3, 8, 8\)"):
        add_clutter(x, 1, patch_size=3, sources=torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="clutter count must be >= 0"):
        add_clutter(x, -1)


# --- random_affine --------------------------------------------------------------------------

def test_random_affine_identity_parameters():
    x = (asymmetric_images(10, batch=3) * 255).to(torch.uint8)
    out = random_affine(x, generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.float32 and out.shape == x.shape
    assert torch.allclose(out, to_float(x), atol=1e-5)


def test_random_affine_per_image_and_seeded():
    x = asymmetric_images(12, batch=1).expand(4, 1, 12, 12)
    kwargs = dict(max_rotation=45, scale_range=(0.8, 1.2), max_translate=0.2)
    a = random_affine(x, generator=torch.Generator().manual_seed(3), **kwargs)
    b = random_affine(x, generator=torch.Generator().manual_seed(3), **kwargs)
    assert torch.equal(a, b)
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.allclose(a[i], a[j], atol=1e-3), (i, j)
    assert not torch.allclose(a[0], x[0], atol=1e-3)


def test_random_affine_rotation_only_keeps_the_centre():
    x = torch.zeros(2, 1, 9, 9)
    x[:, :, 4, 4] = 1  # the centre pixel is a fixed point of every rotation
    out = random_affine(x, max_rotation=90, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(out[:, 0, 4, 4], torch.ones(2), atol=1e-5)


# --- cutout ---------------------------------------------------------------------------------

def test_cutout_hides_one_clipped_square_per_image_with_the_batch_mean():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 3, 10, 10, generator=g) * 0.5 + 0.25
    out = cutout(x, 4, generator=torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    mean = x.mean(dim=(0, 2, 3))
    areas = set()
    for b in range(len(x)):
        hidden = (out[b] != x[b]).any(0)
        ys, xs = hidden.nonzero(as_tuple=True)
        assert len(ys), f"image {b} has nothing hidden"
        # one axis-aligned rectangle of side at most 4, filled with the batch's mean colour
        box = (slice(int(ys.min()), int(ys.max()) + 1), slice(int(xs.min()), int(xs.max()) + 1))
        assert hidden[box].all() and hidden.sum() == hidden[box].numel()
        assert ys.max() - ys.min() < 4 and xs.max() - xs.min() < 4
        assert torch.allclose(out[b][:, box[0], box[1]], mean[:, None, None].expand(3, *hidden[box].shape))
        areas.add(int(hidden.sum()))
    assert 16 in areas and min(areas) < 16  # whole squares inside, clipped ones at the border
    again = cutout(x, 4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, again)


def test_the_data_module_doctests_pass():
    import doctest
    result = doctest.testmod(data_module)
    assert result.attempted >= 1 and result.failed == 0


def test_cutout_refuses_integer_images_and_bad_sizes():
    with pytest.raises(TypeError, match="floating-point images.*to_float"):
        cutout(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 4)
    for size in (0, 2.5, True):
        with pytest.raises(ValueError, match="whole number of pixels >= 1"):
            cutout(torch.zeros(1, 3, 8, 8), size)


# --- random_crop_flip -----------------------------------------------------------------------

def test_random_crop_flip_identity_settings():
    x = (asymmetric_images(8, batch=3) * 255).to(torch.uint8)
    out = random_crop_flip(x, padding=0, flip=False)
    assert out.dtype == torch.uint8 and torch.equal(out, x)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_random_crop_flip_outputs_are_crops_of_reflect_padded_input(dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (8, 3, 7, 7), generator=g).to(dtype)
    if dtype.is_floating_point:
        x = x / 255
    padding = 2
    out = random_crop_flip(x, padding=padding, generator=torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    padded = F.pad(x.double(), (padding,) * 4, mode="reflect")
    flips, offsets = set(), set()
    for b in range(len(x)):
        matches = [(dy, dx, mirror)
                   for dy in range(2 * padding + 1) for dx in range(2 * padding + 1) for mirror in (False, True)
                   if torch.equal((padded[b, :, dy:dy + 7, dx:dx + 7].flip(-1) if mirror
                                   else padded[b, :, dy:dy + 7, dx:dx + 7]), out[b].double())]
        assert matches, f"image {b} is no crop of the padded input"
        flips.add(matches[0][2])
        offsets.add(matches[0][:2])
    assert flips == {False, True} and len(offsets) > 1  # it is random, not a fixed crop


def test_random_crop_flip_flip_only_and_seeded():
    x = asymmetric_images(6, batch=16)
    a = random_crop_flip(x, padding=0, generator=torch.Generator().manual_seed(4))
    b = random_crop_flip(x, padding=0, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    mirrored = [torch.equal(a[i], x[i].flip(-1)) for i in range(16)]
    kept = [torch.equal(a[i], x[i]) for i in range(16)]
    assert all(m or k for m, k in zip(mirrored, kept))
    assert any(mirrored) and any(kept)


# --- the real data sets (optional) ----------------------------------------------------------

def real_root() -> Path:
    return Path(os.environ.get("STN_DATA_DIR") or Path(__file__).resolve().parents[1] / "data")


REAL_ROOT = real_root()


@pytest.mark.skipif(not (REAL_ROOT / "mnist" / "test").is_dir(), reason=f"no MNIST copy at {REAL_ROOT}")
def test_real_mnist_test_split(monkeypatch):
    first = load_dataset("mnist", "test", root=REAL_ROOT, source="folder")
    assert first.images.shape == (10000, 1, 28, 28) and first.images.dtype == torch.uint8
    assert torch.bincount(first.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert (REAL_ROOT / "cache" / "mnist-test-folder.pt").is_file()
    monkeypatch.setattr(data_module, "_read_folder",
                        lambda *a, **k: pytest.fail("the second load should come from the cache"))
    second = load_dataset("mnist", "test", root=REAL_ROOT, source="folder")
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)



# --- checks where data enter ------------------------------------------------------------------

@pytest.mark.parametrize("images, labels, message", [
    (torch.zeros(4, 8, 8), torch.zeros(4, dtype=torch.int64),
     r"images must be a tensor \(N, C, H, W\); got \(4, 8, 8\)"),
    (torch.zeros(4, 1, 8, 8), torch.zeros(3, dtype=torch.int64), "has 4 images but 3 labels; give exactly one label"),
    (torch.zeros(4, 1, 8, 8), torch.tensor([0, 1, 2, 1]), r"labels run from 0 to 2, but there are 2 classes"),
    (torch.zeros(4, 1, 8, 8), torch.tensor([0, -1, 1, 1]), r"labels run from -1 to 1"),
    (torch.zeros(4, 1, 8, 8), torch.zeros(4), "labels must be a 1-D integer tensor"),
])
def test_image_dataset_refuses_labels_that_do_not_fit(images, labels, message):
    with pytest.raises(ValueError, match=message):
        ImageDataset(images, labels, ("a", "b"))


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    from stn_utils.files import atomic_write
    target = tmp_path / "deep" / "file.txt"
    atomic_write(target, lambda path: path.write_text("first"))

    def broken(path):
        path.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, broken)
    assert target.read_text() == "first" and sorted(p.name for p in target.parent.iterdir()) == ["file.txt"]
