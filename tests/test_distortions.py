"""Tests for stn_utils.distortions on small synthetic digits: shapes, ranges, seeding, what
each distortion does when its random amounts are switched off, and the input checks."""

import pytest
import torch

import stn_utils.distortions as distortions
from stn_utils.distortions import (
    DISTORTIONS,
    cluttered,
    distort,
    elastic,
    output_size,
    projective,
    rotated,
    rotated_translated_scaled,
)
from stn_utils.geometry import make_theta, warp

NAMES = sorted(DISTORTIONS)


def digits(count=64, seed=0):
    """uint8 (count, 1, 28, 28): a few bright strokes per image inside the central 20x20
    box, as MNIST digits are, with grey anti-aliased edges."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.zeros(count, 1, 28, 28)
    for image in images:
        for _ in range(3):
            top, left = torch.randint(4, 20, (2,), generator=generator).tolist()
            height, width = torch.randint(1, 5, (2,), generator=generator).tolist()
            image[0, top:top + height, left:left + width] = 1.0
    images = torch.maximum(images, 0.5 * images.roll(1, dims=-1))  # a grey right edge, still inside the box
    return (images * 255).round().to(torch.uint8)


def mass(images):
    return images.float().sum((1, 2, 3)) / (255 if images.dtype == torch.uint8 else 1)


def as_float(images):
    return images.float() / 255


@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_range_and_seeding(name):
    images = digits()
    out = distort(name, images, seed=3)
    side = output_size(name)
    assert out.shape == (64, 1, side, side) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1 and out.max() > 0.5
    assert torch.equal(out, distort(name, images, seed=3))
    assert not torch.allclose(out, distort(name, images, seed=4), atol=1e-3)
    assert torch.allclose(out, distort(name, as_float(images), seed=3), atol=1e-6)  # uint8 == float input


@pytest.mark.parametrize("name", NAMES)
def test_result_does_not_depend_on_chunking(name, monkeypatch):
    images = digits(20)
    whole = distort(name, images, seed=1)
    monkeypatch.setattr(distortions, "CHUNK", 7)
    assert torch.equal(distort(name, images, seed=1), whole)


def test_output_sizes():
    assert [output_size(name) for name in ("R", "RTS", "P", "E", "cluttered")] == [28, 42, 28, 28, 60]
    assert output_size("RTS", size=44) == 44 and output_size("R", image_size=32) == 32
    assert distort("RTS", digits(2), seed=0, size=44).shape == (2, 1, 44, 44)


# --- what each distortion does -----------------------------------------------------------

def test_rotated():
    images = digits()
    assert torch.allclose(rotated(images, 0, max_angle=0.0), as_float(images), atol=1e-6)
    out = rotated(images, 0)
    changed = (out - as_float(images)).abs().sum((1, 2, 3)) / mass(images)
    assert (changed > 0.1).float().mean() > 0.9  # most digits visibly turned
    ratio = mass(out) / mass(images)
    assert ratio.min() > 0.8 and ratio.max() < 1.2  # turned, not shrunk or cut off


def test_rts_keeps_every_digit_inside_the_canvas():
    images = digits()
    out = rotated_translated_scaled(images, 0)
    ring = torch.cat([out[..., 0, :], out[..., -1, :], out[..., :, 0], out[..., :, -1]], dim=-1)
    assert ring.max() < 1e-6  # the outermost pixels stay black: nothing reaches the edge
    # without rotation or scaling, a sub-pixel shift of a digit that stays inside keeps its mass exactly
    moved = rotated_translated_scaled(images, 0, max_angle=0.0, scale=(1.0, 1.0))
    assert torch.allclose(mass(moved), mass(images), rtol=1e-5)
    rows = torch.arange(42.0)
    centre_row = (moved.sum(-1)[:, 0] * rows).sum(1) / mass(moved)
    assert centre_row.std() > 2 and centre_row.min() > 5 and centre_row.max() < 37  # placed at random


def test_rts_centres_a_digit_too_large_to_fit():
    full = torch.full((3, 1, 28, 28), 255, dtype=torch.uint8)
    out = rotated_translated_scaled(full, 0, size=28, max_angle=0.0, scale=(1.0, 1.0))
    assert torch.allclose(out, as_float(full), atol=1e-6)


@pytest.mark.parametrize("zoom", [0.5, 1.2])
def test_rts_scales(zoom):
    images = digits()
    out = rotated_translated_scaled(images, 0, max_angle=0.0, scale=(zoom, zoom), size=56)
    # ink area grows with zoom squared; bilinear sampling of thin strokes makes it exact only on average
    assert (mass(out) / mass(images)).mean().item() == pytest.approx(zoom ** 2, rel=0.05)


@pytest.mark.parametrize("distortion, off", [
    (projective, {"scale": (1.0, 1.0), "corner_std": 0.0}),
    (elastic, {"scale": (1.0, 1.0), "point_std": 0.0}),
])
def test_projective_and_elastic_with_amounts_off(distortion, off):
    images = digits()
    assert torch.allclose(distortion(images, 0, **off), as_float(images), atol=1e-5)
    # only the scale on: the same as zooming out about the centre
    half = dict(off, scale=(0.5, 0.5))
    zoomed = warp(as_float(images), make_theta(scale_x=2.0, scale_y=2.0), padding_mode="zeros")
    assert torch.allclose(distortion(images, 0, **half), zoomed, atol=1e-5)
    bent = distortion(images, 0)
    assert (bent - as_float(images)).abs().sum((1, 2, 3)).min() > 0.5


def test_cluttered_without_clutter_is_the_digit_alone():
    images = digits()
    out = cluttered(images, 0, clutter=0)
    assert torch.allclose(mass(out), mass(images))
    windows = out[:, 0].unfold(1, 28, 1).unfold(2, 28, 1)  # (N, 33, 33, 28, 28): every placement
    found = (windows == as_float(images)[:, 0, None, None]).flatten(-2).all(-1)
    assert found.flatten(1).any(1).all()  # each digit sits unchanged at some whole-pixel offset
    offsets = found.flatten(1).float().argmax(1)
    assert offsets.unique().numel() > 32


def test_cluttered_pieces_come_from_other_digits():
    blank, grey = torch.zeros(1, 1, 28, 28), torch.full((1, 1, 28, 28), 0.25)
    for seed in range(5):
        out = cluttered(torch.cat([grey, blank]), seed)
        assert mass(out)[0] == pytest.approx(0.25 * 28 * 28)  # its clutter came from the blank digit
        assert set(out[1].unique().tolist()) == {0.0, 0.25} and 0 < mass(out)[1] <= 6 * 36 * 0.25


def test_cluttered_with_sources():
    images = digits()
    sources = torch.full((5, 1, 10, 10), 0.5)
    out = cluttered(images, 0, sources=sources, clutter=1, patch=3)
    ink = as_float(images) == 1.0
    assert ((out == 1.0).sum((1, 2, 3)) == ink.sum((1, 2, 3))).all()  # max never erases the digit
    assert ((out == 0.5).sum((1, 2, 3)) <= 9).all() and (out == 0.5).sum() > 0
    lone = cluttered(torch.zeros(2, 1, 28, 28), 0, sources=sources, clutter=1, patch=3)
    assert (lone > 0).sum((1, 2, 3)).tolist() == [9, 9]
    square = (lone[0, 0] > 0).nonzero()
    assert (square.amax(0) - square.amin(0)).tolist() == [2, 2]


# --- input checks ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_bad_images(name):
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\); got \(4, 28, 28\).*unsqueeze\(1\)"):
        distort(name, torch.zeros(4, 28, 28), seed=0)
    with pytest.raises(ValueError, match=r"got \(4, 3, 28, 28\).*one channel"):
        distort(name, torch.zeros(4, 3, 28, 28), seed=0)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]; got values from 0 to 255.*divide"):
        distort(name, digits(4).float(), seed=0)
    with pytest.raises(ValueError, match="empty"):
        distort(name, torch.zeros(0, 1, 28, 28), seed=0)
    with pytest.raises(TypeError, match="seed must be an integer"):
        distort(name, digits(4), seed=0.5)


@pytest.mark.parametrize("call, match", [
    (lambda x: rotated(x, 0, max_angle=-1.0), r"max_angle must be >= 0 .*got -1.0"),
    (lambda x: projective(x, 0, corner_std=-5.0), r"corner_std must be >= 0"),
    (lambda x: elastic(x, 0, point_std=float("nan")), r"point_std must be >= 0"),
    (lambda x: elastic(x, 0, grid_size=1), r"grid_size must be an integer >= 2"),
    (lambda x: rotated_translated_scaled(x, 0, scale=(1.2, 0.7)), r"0 < low <= high; got \(1.2, 0.7\)"),
    (lambda x: rotated_translated_scaled(x, 0, size=0), r"size must be an integer >= 1; got 0"),
    (lambda x: cluttered(x, 0, clutter=-1), r"clutter must be an integer >= 0; got -1"),
    (lambda x: cluttered(x, 0, size=20), r"size must be an integer >= 28; got 20"),
    (lambda x: cluttered(x, 0, patch=29), r"patch must be an integer between 1 and 28; got 29"),
    (lambda x: cluttered(x, 0, sources=torch.zeros(3, 3, 8, 8)), r"sources must have shape"),
    (lambda x: cluttered(x[:1], 0), r"this batch has one; pass more digits or `sources`"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call(digits(4))


def test_unknown_name():
    names = r"\['R', 'RTS', 'P', 'E', 'cluttered'\]"
    with pytest.raises(ValueError, match=rf"unknown distortion 'T'; choose one of {names}"):
        distort("T", digits(2), seed=0)
    with pytest.raises(ValueError, match="unknown distortion"):
        output_size("rotated")


def test_placed_turns_zooms_and_moves_every_digit_by_one_amount():
    bar = torch.zeros(2, 1, 28, 28)
    bar[:, :, 4:24, 13:15] = 1  # a vertical bar, two pixels wide
    def ink(images, dim, level=0.5):
        return (images[0, 0] > level).any(dim).nonzero().flatten().tolist()

    centred = distortions.placed(bar)
    assert centred.shape == (2, 1, 42, 42) and ink(centred, 0) == [20, 21]
    assert ink(distortions.placed(bar, shift=(5, 0)), 0) == [25, 26]
    turned = distortions.placed(bar, angle=90)
    assert ink(turned, 1) == [20, 21] and len(ink(turned, 0)) == 20  # now horizontal
    assert len(ink(distortions.placed(bar, scale=0.5), 1, level=0.2)) == 10
    with pytest.raises(ValueError, match="scale must be > 0"):
        distortions.placed(bar, scale=0)
