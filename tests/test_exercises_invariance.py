"""Tests for the answer checks of notebook 01 (stn_utils.exercises.invariance)."""

import pytest
import torch
import torch.nn.functional as F

from stn_utils.exercises import invariance as ex

NOT_ANSWERED = "Not answered yet"


def run(check, answer, capsys):
    result = check(answer)
    return result, capsys.readouterr().out


# ---- exercise 1: 2x2 max-pooling by hand ---------------------------------------------------------

def by_reshape(feature_map):
    batch, channels, height, width = feature_map.shape
    cropped = feature_map[..., : height // 2 * 2, : width // 2 * 2]
    return cropped.reshape(batch, channels, height // 2, 2, width // 2, 2).amax(dim=(3, 5))


def by_slices(feature_map):
    height, width = feature_map.shape[-2:]
    x = feature_map[..., : height // 2 * 2, : width // 2 * 2]
    return torch.maximum(torch.maximum(x[..., 0::2, 0::2], x[..., 0::2, 1::2]),
                         torch.maximum(x[..., 1::2, 0::2], x[..., 1::2, 1::2]))


@pytest.mark.parametrize("answer", [by_reshape, by_slices, lambda feature_map: F.max_pool2d(feature_map, 2)])
def test_max_pool_accepts_right_functions(answer, capsys):
    ok, out = run(ex.check_max_pool, answer, capsys)
    assert ok is True and out.startswith("Correct!") and "gradients with respect to feature_map" in out, out


def test_max_pool_cases_cover_odd_and_non_square_sizes():
    shapes = [tuple(case.inputs["feature_map"].shape) for case in ex._pool_cases()]
    assert any(h % 2 or w % 2 for *_, h, w in shapes) and any(h != w for *_, h, w in shapes)
    assert len({shape[0] for shape in shapes}) > 1 and len({shape[1] for shape in shapes}) > 1


def mixed_blocks(feature_map):
    batch, channels, height, width = feature_map.shape
    return feature_map.reshape(batch, channels, height // 2, width // 2, 2, 2).amax(dim=(-2, -1))


@pytest.mark.parametrize("bug, phrases", [
    (lambda feature_map: F.avg_pool2d(feature_map, 2), ["Values:", "MEAN"]),
    (lambda feature_map: -F.max_pool2d(-feature_map, 2), ["SMALLEST"]),
    (mixed_blocks, ["not 2x2 blocks", "(B, C, H // 2, 2, W // 2, 2)"]),
    (lambda feature_map: F.max_pool2d(feature_map, 2, stride=1), ["Shape:", "overlap"]),
    (lambda feature_map: F.max_pool2d(feature_map, 2, ceil_mode=True), ["Shape:", "odd"]),
    (lambda feature_map: F.max_pool2d(feature_map, (1, 2)), ["columns only"]),
    (lambda feature_map: F.max_pool2d(feature_map, (2, 1)), ["rows only"]),
    (lambda feature_map: by_reshape(feature_map) + 0.1, ["Values:", "by hand"]),
    (lambda feature_map: by_reshape(feature_map).detach(), ["Gradient:", "does not depend on feature_map"]),
])
def test_max_pool_rejects_typical_bugs_with_a_hint(bug, phrases, capsys):
    ok, out = run(ex.check_max_pool, bug, capsys)
    assert ok is False and out.startswith("Not quite.")
    for phrase in phrases:
        assert phrase in out, (phrase, out)


def test_max_pool_names_the_window_of_the_worst_entry(capsys):
    def one_wrong_entry(feature_map):
        out = by_reshape(feature_map).clone()
        out[1, 2, 2, 3] += 5.0
        return out

    ok, out = run(ex.check_max_pool, one_wrong_entry, capsys)
    assert ok is False and "1 of 72 entries" in out
    assert "batch item 1, channel 2, output row 2, column 3: the window of input rows 4-5, columns 6-7" in out


def test_max_pool_stub_is_not_answered_yet(capsys):
    def my_max_pool(feature_map):
        # your code here
        raise NotImplementedError

    for answer in (my_max_pool, None):
        ok, out = run(ex.check_max_pool, answer, capsys)
        assert ok is False and out.startswith(NOT_ANSWERED) and "Not quite" not in out


# ---- exercise 2: the shifts a pooled map tolerates -----------------------------------------------

def test_the_notebooks_experiment_and_the_exercise_differ():
    """The notebook prints the answer for column 2; the exercise asks about another column."""
    assert {s for s in range(4) if ex._pooled_shift_invariant(2, s)} == {0, 1}
    assert ex.POOLING_COLUMN != 2


@pytest.mark.parametrize("answer", [{0}, [0], (0,), {0.0}])
def test_pooling_shifts_right(answer, capsys):
    ok, out = run(ex.check_pooling_shifts, answer, capsys)
    assert ok is True and "Correct" in out


@pytest.mark.parametrize("answer", [{0, 1}, {1}, set(), {0, 1, 2, 3}, {0, 2}, 0, "x"])
def test_pooling_shifts_wrong(answer, capsys):
    ok, out = run(ex.check_pooling_shifts, answer, capsys)
    assert ok is False and "Not quite" in out


# ---- exercise 3: the shift that moves a twice-strided map by one cell --------------------------

def test_stride_shift(capsys):
    assert ex.check_stride_shift(4) is True
    assert ex.check_stride_shift(2) is False and ex.check_stride_shift(8) is False
    assert "Not quite" in capsys.readouterr().out


def test_stride_shift_agrees_with_two_stride_2_layers():
    conv = torch.nn.Conv2d(1, 1, 5, stride=2, padding=2, bias=False)
    torch.nn.init.dirac_(conv.weight)
    image = torch.zeros(1, 1, 32, 32)
    image[0, 0, 8, 8] = 1.0
    before = conv(conv(image))
    after = conv(conv(torch.roll(image, 4, dims=3)))
    assert torch.equal(torch.roll(before, 1, dims=3), after)


@pytest.mark.parametrize("check", [ex.check_max_pool, ex.check_pooling_shifts, ex.check_stride_shift])
def test_none_is_not_answered(check, capsys):
    assert check(None) is False
    out = capsys.readouterr().out
    assert NOT_ANSWERED in out and "Correct" not in out and "Not quite" not in out
