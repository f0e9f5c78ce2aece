"""Tests for stn_utils.training: seeding, devices, batches, evaluate, fit, checkpoints.

Everything trains tiny models on tiny synthetic data on the CPU."""

import math

import numpy as np
import pytest
import torch
from torch import nn

import stn_utils.training as training_module
from stn_utils.data import ImageDataset, random_crop_flip
from stn_utils.training import (
    CheckpointError,
    TrainingDiverged,
    batches,
    evaluate,
    fit,
    load_checkpoint,
    pick_device,
    save_checkpoint,
    seed_everything,
)


@pytest.fixture(autouse=True)
def _no_device_override(monkeypatch):
    monkeypatch.delenv("STN_DEVICE", raising=False)


def bright_dark(n=64, size=8, seed=0):
    """Label 1: bright images, label 0: dark ones; uint8, (n, 1, size, size)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    noise = torch.randint(0, 100, (n, 1, size, size), generator=g)
    images = (noise + 155 * labels[:, None, None, None]).to(torch.uint8)
    return ImageDataset(images, labels, ("dark", "bright"))


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))


def linear_model(seed=0, classes=2):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, classes))


FIT = dict(batch_size=16, lr=0.1, device="cpu", progress=False)
KEYS = {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds"}


def without_seconds(history):
    return {k: v for k, v in history.items() if k != "seconds"}


def assert_same_state(a: nn.Module, b: nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


# --- seed_everything / pick_device ----------------------------------------------------------

def test_seed_everything_repeats_random_numbers():
    g = seed_everything(3)
    a = (torch.rand(4), np.random.rand(2), torch.rand(2, generator=g))
    g = seed_everything(3)
    b = (torch.rand(4), np.random.rand(2), torch.rand(2, generator=g))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and torch.equal(a[2], b[2])
    assert isinstance(g, torch.Generator)
    seed_everything(4)
    assert not torch.equal(torch.rand(4), a[0])


def test_pick_device_default_is_cpu_here():
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if torch.cuda.is_available() or mps:
        pytest.skip("an accelerator is available; the default is not the CPU")
    assert pick_device() == torch.device("cpu")


def test_pick_device_explicit_and_env(monkeypatch):
    assert pick_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("STN_DEVICE", "cpu")
    assert pick_device() == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available")
def test_pick_device_cuda_unavailable(monkeypatch):
    with pytest.raises(RuntimeError, match=r"device 'cuda' was asked for but CUDA is not available"):
        pick_device("cuda")
    monkeypatch.setenv("STN_DEVICE", "cuda:0")
    with pytest.raises(RuntimeError, match=r"'cuda:0' was asked for.*unset STN_DEVICE"):
        pick_device()


# --- batches --------------------------------------------------------------------------------

def numbered(n=10):
    images = torch.arange(n, dtype=torch.uint8).reshape(n, 1, 1, 1).expand(n, 1, 2, 2) * 20
    return ImageDataset(images.contiguous(), torch.arange(n), tuple(str(i) for i in range(n)))


def test_batches_sizes_and_values():
    data = numbered(10)
    out = list(batches(data, 4))
    assert [len(labels) for _, labels in out] == [4, 4, 2]
    images = torch.cat([x for x, _ in out])
    labels = torch.cat([y for _, y in out])
    assert images.dtype == torch.float32 and images.shape == (10, 1, 2, 2)
    assert images.min() >= 0 and images.max() <= 1
    assert torch.equal(labels, torch.arange(10))  # no shuffle: in order
    assert torch.allclose(images[:, 0, 0, 0] * 255, labels.float() * 20)  # images stay with their labels
    assert [len(y) for _, y in batches(data, 4, drop_last=True)] == [4, 4]
    assert [len(y) for _, y in batches(data, 5, drop_last=True)] == [5, 5]
    assert [len(y) for _, y in batches(data, 20)] == [10]
    assert list(batches(data, 20, drop_last=True)) == []


def test_batches_shuffle_with_generator():
    data = numbered(10)

    def order(seed):
        g = torch.Generator().manual_seed(seed)
        return torch.cat([y for _, y in batches(data, 3, shuffle=True, generator=g)])

    a, b, c = order(0), order(0), order(1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert sorted(a.tolist()) == list(range(10)) and not torch.equal(a, torch.arange(10))
    for x, y in batches(data, 3, shuffle=True, generator=torch.Generator().manual_seed(0)):
        assert torch.allclose(x[:, 0, 0, 0] * 255, y.float() * 20)


def test_batches_errors():
    with pytest.raises(ValueError, match="batch_size must be at least 1; got 0"):
        next(batches(numbered(), 0))
    empty = ImageDataset(torch.empty(0, 1, 2, 2, dtype=torch.uint8), torch.empty(0, dtype=torch.int64), ("a",))
    with pytest.raises(ValueError, match="the data set is empty"):
        next(batches(empty, 4))


# --- evaluate -------------------------------------------------------------------------------

class LeftRight(nn.Module):
    """Logits (mean of the left half, mean of the right half): mirroring swaps them."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))

    def forward(self, x):
        half = x.shape[-1] // 2
        return torch.stack([x[..., :half].mean((1, 2, 3)), x[..., half:].mean((1, 2, 3))], 1) * self.weight * 10


def left_right_data(n=12):
    images = torch.zeros(n, 1, 4, 4, dtype=torch.uint8)
    labels = torch.arange(n) % 2
    images[labels == 0, :, :, :2] = 255
    images[labels == 1, :, :, 2:] = 255
    labels[-1] = 0  # one wrong label
    return ImageDataset(images, labels, ("left", "right"))


def test_evaluate_loss_and_accuracy():
    model, data = LeftRight(), left_right_data()
    model.train()
    scores = evaluate(model, data, batch_size=5)
    assert set(scores) == {"loss", "accuracy"}
    assert scores["accuracy"] == pytest.approx(11 / 12)
    wrong = math.log1p(math.exp(10))  # cross-entropy of the wrongly labelled image
    right = math.log1p(math.exp(-10))
    assert scores["loss"] == pytest.approx((11 * right + wrong) / 12, rel=1e-5)
    assert model.training  # mode restored


def test_evaluate_flip_tta_averages_mirror_images():
    model, data = LeftRight(), left_right_data()
    scores = evaluate(model, data, flip_tta=True)
    # each image and its mirror give swapped logits, so the average is a tie: class 0
    assert scores["loss"] == pytest.approx(math.log(2), rel=1e-5)
    assert scores["accuracy"] == pytest.approx(7 / 12)


def test_evaluate_random_model_in_range():
    scores = evaluate(tiny_model(), bright_dark(20), batch_size=8, flip_tta=True, channels_last=True)
    assert 0 < scores["loss"] < 10 and 0 <= scores["accuracy"] <= 1


# --- fit ------------------------------------------------------------------------------------

def test_fit_learns_bright_vs_dark():
    train, test = bright_dark(64, seed=0), bright_dark(32, seed=1)
    history = fit(tiny_model(), train, test, epochs=4, **FIT)
    assert set(history) == KEYS
    assert all(len(v) == 4 for v in history.values())
    assert history["epoch"] == [1, 2, 3, 4]
    assert history["test_acc"][-1] >= 0.95 and history["train_acc"][-1] >= 0.9
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["seconds"] == sorted(history["seconds"]) and history["seconds"][0] > 0


def test_fit_without_test_set_and_with_augment():
    seen = []

    def augment(images, generator):
        seen.append(images.shape[0])
        return random_crop_flip(images, padding=1, generator=generator)

    history = fit(linear_model(), bright_dark(40), epochs=2, augment=augment, schedule="constant", **FIT)
    assert history["test_loss"] == [None, None] and history["test_acc"] == [None, None]
    assert seen == [16, 16, 8] * 2
    assert all(len(v) == 2 for v in history.values())


def test_fit_single_step():
    # one epoch of one batch: the one-cycle schedule has no decay phase
    history = fit(linear_model(), bright_dark(8), epochs=1, **FIT)
    assert history["epoch"] == [1] and math.isfinite(history["train_loss"][0])


def test_fit_is_repeatable():
    train, test = bright_dark(48), bright_dark(16, seed=1)
    a = fit(tiny_model(), train, test, epochs=2, augment=lambda x, g: random_crop_flip(x, padding=1, generator=g), **FIT)
    b = fit(tiny_model(), train, test, epochs=2, augment=lambda x, g: random_crop_flip(x, padding=1, generator=g), **FIT)
    assert without_seconds(a) == without_seconds(b)
    c = fit(tiny_model(), train, test, epochs=2, seed=1, **FIT)
    assert c["train_loss"] != a["train_loss"]


@pytest.mark.parametrize("epochs", [0, -1, 2.5, "3", None])
def test_fit_bad_epochs(epochs):
    with pytest.raises(ValueError, match="epochs must be a whole number >= 1"):
        fit(linear_model(), bright_dark(8), epochs=epochs, **FIT)


def test_fit_bad_schedule():
    with pytest.raises(ValueError, match="schedule must be 'onecycle' or 'constant'; got 'cosine'"):
        fit(linear_model(), bright_dark(8), epochs=1, schedule="cosine", **FIT)


class NaNModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(64, 2)

    def forward(self, x):
        return self.linear(x.flatten(1)) * float("nan")


def test_fit_nan_logits_raise(tmp_path):
    with pytest.raises(TrainingDiverged, match=r"the loss became nan in epoch 1; stopped. Lower the learning rate"):
        fit(NaNModel(), bright_dark(16), epochs=2, **FIT)
    with pytest.raises(FloatingPointError, match=f"last good checkpoint is kept at {tmp_path / 'run.pt'}"):
        fit(NaNModel(), bright_dark(16), epochs=2, checkpoint=tmp_path / "run.pt", **FIT)


def test_fit_huge_learning_rate_raises():
    with pytest.raises(TrainingDiverged, match=r"the loss became (nan|inf).*\(now 1000000.0\)"):
        fit(tiny_model(), bright_dark(32), epochs=10, **{**FIT, "lr": 1e6})


# --- checkpoints in fit ---------------------------------------------------------------------

@pytest.fixture
def saved_epochs(monkeypatch):
    """Record the epoch of every checkpoint fit writes."""
    epochs = []
    original = training_module.save_checkpoint

    def spy(path, model, **kwargs):
        epochs.append(kwargs["epoch"])
        return original(path, model, **kwargs)

    monkeypatch.setattr(training_module, "save_checkpoint", spy)
    return epochs


def test_fit_writes_checkpoint_every_epoch(tmp_path, saved_epochs):
    path = tmp_path / "runs" / "tiny.pt"
    model = tiny_model()
    history = fit(model, bright_dark(32), bright_dark(16, seed=1), epochs=3, checkpoint=path, **FIT)
    assert saved_epochs == [1, 2, 3]
    assert path.is_file() and not list(path.parent.glob("*.partial"))
    state = load_checkpoint(path, tiny_model(seed=1))
    assert state["epoch"] == 3 and state["history"] == history
    assert state["model_class"] == "Sequential"
    assert {"optimizer", "scheduler", "generator"} <= set(state)


def test_resume_constant_schedule_matches_straight_run(tmp_path, saved_epochs):
    train, test = bright_dark(48), bright_dark(16, seed=1)
    kwargs = dict(schedule="constant", augment=lambda x, g: random_crop_flip(x, padding=1, generator=g), **FIT)
    straight_model = tiny_model()
    straight = fit(straight_model, train, test, epochs=4, **kwargs)

    path = tmp_path / "run.pt"
    fit(tiny_model(), train, test, epochs=2, checkpoint=path, **kwargs)
    saved_epochs.clear()
    resumed_model = tiny_model(seed=5)  # a fresh model; the checkpoint overrides its weights
    resumed = fit(resumed_model, train, test, epochs=4, checkpoint=path, resume=True, **kwargs)
    assert saved_epochs == [3, 4]  # continued from epoch 3
    assert resumed["epoch"] == [1, 2, 3, 4]
    assert without_seconds(resumed) == without_seconds(straight)
    assert_same_state(resumed_model, straight_model)


class Interrupted(Exception):
    pass


def test_resume_after_interruption_matches_straight_run(tmp_path, saved_epochs):
    """The one-cycle schedule depends on the total epochs: resume a 4-epoch run cut after 2."""
    train, test = bright_dark(48), bright_dark(16, seed=1)
    straight_model = tiny_model()
    straight = fit(straight_model, train, test, epochs=4, **FIT)

    steps = []

    def stop_in_epoch_3(images, generator):
        steps.append(1)
        if len(steps) > 2 * 3:  # 3 batches per epoch
            raise Interrupted
        return images

    path = tmp_path / "run.pt"
    with pytest.raises(Interrupted):
        fit(tiny_model(), train, test, epochs=4, checkpoint=path, augment=stop_in_epoch_3, **FIT)
    assert saved_epochs == [1, 2]
    resumed_model = tiny_model(seed=7)
    resumed = fit(resumed_model, train, test, epochs=4, checkpoint=path, resume=True, **FIT)
    assert saved_epochs == [1, 2, 3, 4]
    assert without_seconds(resumed) == without_seconds(straight)
    assert_same_state(resumed_model, straight_model)


def test_resume_without_checkpoint_file_starts_fresh(tmp_path):
    path = tmp_path / "none-yet.pt"
    history = fit(linear_model(), bright_dark(16), epochs=1, checkpoint=path, resume=True, **FIT)
    assert history["epoch"] == [1] and path.is_file()


# --- save_checkpoint / load_checkpoint ------------------------------------------------------

def trained_checkpoint(path):
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.rand(4, 1, 8, 8)).sum().backward()
    optimizer.step()
    save_checkpoint(path, model, optimizer=optimizer, epoch=7, history={"epoch": [7]},
                    generator=torch.Generator().manual_seed(3).get_state())
    return model, optimizer


def test_checkpoint_round_trip(tmp_path):
    path = tmp_path / "deep" / "folder" / "model.pt"
    model, optimizer = trained_checkpoint(path)
    assert path.is_file() and not list(path.parent.glob("*.partial"))

    fresh = tiny_model(seed=1)
    fresh_optimizer = torch.optim.SGD(fresh.parameters(), lr=0.5, momentum=0.9)
    state = load_checkpoint(path, fresh, optimizer=fresh_optimizer)
    assert_same_state(fresh, model)
    assert state["epoch"] == 7 and state["history"] == {"epoch": [7]}
    assert torch.equal(state["generator"], torch.Generator().manual_seed(3).get_state())
    assert fresh_optimizer.param_groups[0]["lr"] == 0.1
    buffers = [fresh_optimizer.state[p]["momentum_buffer"] for p in fresh.parameters()]
    expected = [optimizer.state[p]["momentum_buffer"] for p in model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(buffers, expected))


def test_load_checkpoint_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at .*missing.pt; train first"):
        load_checkpoint(tmp_path / "missing.pt", tiny_model())


def test_load_checkpoint_truncated_file(tmp_path):
    path = tmp_path / "model.pt"
    trained_checkpoint(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="is damaged or truncated"):
        load_checkpoint(path, tiny_model())


def test_load_checkpoint_not_a_checkpoint(tmp_path):
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(CheckpointError, match="not a checkpoint written by stn_utils.save_checkpoint"):
        load_checkpoint(path, tiny_model())


def test_load_checkpoint_of_another_model(tmp_path):
    path = tmp_path / "model.pt"
    trained_checkpoint(path)
    other = linear_model()  # different layers
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"saved from a different model \(Sequential; \d+ mismatched"):
        load_checkpoint(path, other)
    assert all(torch.equal(before[k], v) for k, v in other.state_dict().items())  # left untouched
    save_checkpoint(path, linear_model(classes=2))
    with pytest.raises(CheckpointError, match="different model .*1.weight"):  # same keys, other shapes
        load_checkpoint(path, linear_model(classes=3))


def test_save_checkpoint_unwritable_location(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("I am a file, not a folder")
    with pytest.raises(CheckpointError, match="cannot create the folder .*a-file"):
        save_checkpoint(blocker / "model.pt", tiny_model())
    with pytest.raises(CheckpointError, match="cannot create the folder"):
        save_checkpoint(blocker / "sub" / "model.pt", tiny_model())
    folder = tmp_path / "a-folder.pt"
    folder.mkdir()
    with pytest.raises(CheckpointError, match="cannot write the checkpoint .*a-folder.pt"):
        save_checkpoint(folder, tiny_model())
    assert not list(tmp_path.glob("*.partial"))


def test_fit_stn_lr_scale_sets_the_spatial_transformers_step():
    from stn_utils.models import Classifier, SpatialTransformer

    train = bright_dark(32, size=16)
    torch.manual_seed(0)
    body = nn.Sequential(nn.Flatten(), nn.Linear(16 * 16, 2))
    model = Classifier(body, (0.5,), (0.25,), stn=SpatialTransformer(1))
    stn_before = [p.detach().clone() for p in model.stn.parameters()]
    body_before = [p.detach().clone() for p in model.body.parameters()]
    fit(model, train, epochs=2, batch_size=8, lr=0.1, stn_lr_scale=0.0, device="cpu", progress=False)
    assert all(torch.equal(a, b) for a, b in zip(stn_before, model.stn.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(body_before, model.body.parameters()))
    fit(model, train, epochs=2, batch_size=8, lr=0.1, stn_lr_scale=1.0, device="cpu", progress=False)
    assert not all(torch.equal(a, b) for a, b in zip(stn_before, model.stn.parameters()))


class SizeRecorder(nn.Module):
    """Global average pool + linear layer that records the side of every input it sees."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(1, 2)
        self.seen = {"train": [], "eval": []}

    def forward(self, x):
        self.seen["train" if self.training else "eval"].append(x.shape[-1])
        return self.linear(x.mean(dim=(1, 2, 3))[:, None])


def test_fit_progressive_sizes_resize_training_images_per_run_of_epochs():
    data = bright_dark(n=16, size=16)
    model = SizeRecorder()
    steps = []
    fit(model, data, data, epochs=6, batch_size=8, progressive_sizes=(8, 12, 16), progress=False,
        on_step=steps.append)
    # 6 epochs in 3 equal runs, 2 steps per epoch
    assert model.seen["train"] == [8] * 4 + [12] * 4 + [16] * 4
    assert set(model.seen["eval"]) == {16}, "evaluation must stay at full size"
    assert steps == list(range(1, 13))


def test_fit_progressive_sizes_errors():
    with pytest.raises(ValueError, match=r"progressive_sizes must be whole numbers of pixels >= 1.*got \(16, 0\)"):
        fit(SizeRecorder(), bright_dark(n=8), epochs=1, progressive_sizes=(16, 0), progress=False)


# --- test-time augmentation and the whitening stem ------------------------------------------

def test_shift_one_pixel_moves_content_and_reflects_the_edge():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    down_right = training_module.shift_one_pixel(x, 1)
    assert torch.equal(down_right[0, 0, 1:, 1:], x[0, 0, :3, :3])
    assert torch.equal(down_right[0, 0, 0, 1:], x[0, 0, 1, :3])  # the top row is reflected
    up_left = training_module.shift_one_pixel(x, -1)
    assert torch.equal(up_left[0, 0, :3, :3], x[0, 0, 1:, 1:])
    with pytest.raises(ValueError, match=r"step must be \+1 or -1"):
        training_module.shift_one_pixel(x, 2)


def test_tta_logits_weights_the_views():
    class FirstPixel(nn.Module):  # the logit is the top-left pixel: each view gives a known value
        def forward(self, x):
            return x[:, :, 0, 0].flatten(1)

    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    model = FirstPixel()
    assert training_module.tta_logits(model, x).item() == 0.0
    assert training_module.tta_logits(model, x, flip=True).item() == (0 + 3) / 2
    # unmoved views: 0 and 3 (mirror); moved down-right: 5 (reflected corner) and 6; up-left: 5 and 6
    moved = (5 + 6 + 5 + 6) / 4
    assert training_module.tta_logits(model, x, flip=True, translate=True).item() == pytest.approx((1.5 + moved) / 2)
    assert training_module.tta_logits(model, x, translate=True).item() == pytest.approx((0 + (5 + 5) / 2) / 2)


def test_evaluate_translate_tta_changes_the_score_of_a_position_sensitive_model():
    model, data = LeftRight(), left_right_data()
    plain = evaluate(model, data)
    moved = evaluate(model, data, translate_tta=True)
    assert moved["loss"] != pytest.approx(plain["loss"])


def test_fit_fits_the_whitening_stem_once(tmp_path):
    from stn_utils.models import PatchWhitening
    torch.manual_seed(0)
    model = nn.Sequential(PatchWhitening(1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    train = bright_dark(64)
    fit(model, train, epochs=1, checkpoint=tmp_path / "ckpt.pt", **FIT)
    stem = model[0]
    assert bool(stem.fitted) and not torch.equal(stem.conv.weight, torch.zeros_like(stem.conv.weight))
    fitted = stem.conv.weight.clone()
    fit(model, train, epochs=1, seed=5, **FIT)  # more training keeps the stem the later layers learned on
    assert torch.equal(stem.conv.weight, fitted)
    restored = nn.Sequential(PatchWhitening(1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    load_checkpoint(tmp_path / "ckpt.pt", restored)
    assert bool(restored[0].fitted) and torch.equal(restored[0].conv.weight, fitted)


# --- precision -------------------------------------------------------------------------------

class DtypeRecorder(nn.Module):
    """A linear model that records the dtype its linear layer computes in."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(64, 2)
        self.dtypes = {"train": set(), "eval": set()}

    def forward(self, x):
        logits = self.linear(x.flatten(1))
        self.dtypes["train" if self.training else "eval"].add(logits.dtype)
        return logits


@pytest.mark.parametrize("precision, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_fit_precision_autocasts_training_and_the_per_epoch_test(precision, dtype):
    model, data = DtypeRecorder(), bright_dark(32)
    history = fit(model, data, data, epochs=1, precision=precision, **FIT)
    assert model.dtypes == {"train": {dtype}, "eval": {dtype}}
    assert model.linear.weight.dtype == torch.float32, "the weights stay in fp32 under autocast"
    assert 0.0 <= history["test_acc"][0] <= 1.0 and math.isfinite(history["train_loss"][0])


def test_evaluate_precision_returns_float32_scores_under_bf16():
    model, data = DtypeRecorder(), bright_dark(32)
    scores = evaluate(model, data, precision="bf16", flip_tta=True)
    assert model.dtypes["eval"] == {torch.bfloat16}
    assert scores["loss"] == pytest.approx(evaluate(model, data)["loss"], rel=0.05)


def test_autocast_dtype_auto_follows_the_hardware(monkeypatch):
    assert training_module.autocast_dtype("fp32", "cpu") is None
    assert training_module.autocast_dtype("bf16", "cpu") is torch.bfloat16
    monkeypatch.setattr(training_module, "_native_bf16", lambda device: True)
    assert training_module.autocast_dtype("auto", "cpu") is torch.bfloat16
    monkeypatch.setattr(training_module, "_native_bf16", lambda device: False)
    assert training_module.autocast_dtype("auto", "cpu") is None


def test_native_bf16_reads_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert not training_module._native_bf16(torch.device("cpu"))
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert training_module._native_bf16(torch.device("cpu"))
    assert not training_module._native_bf16(torch.device("meta"))


@pytest.mark.parametrize("call", [
    lambda: fit(DtypeRecorder(), bright_dark(8), epochs=1, precision="fp16", **FIT),
    lambda: evaluate(DtypeRecorder(), bright_dark(8), precision="half"),
])
def test_precision_errors(call):
    with pytest.raises(ValueError, match=r"precision must be one of \('fp32', 'bf16', 'auto'\); got '(fp16|half)'"):
        call()


# --- norm learning rate and lookahead --------------------------------------------------------

def test_fit_norm_lr_scale_sets_the_normalisation_layers_step():
    """With the classifier's rate at 0, only the norm layers (rate lr * norm_lr_scale) move."""
    model = tiny_model()
    norm, conv = model[1], model[0]
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    fit(model, bright_dark(32), epochs=1, batch_size=16, lr=1e-30, norm_lr_scale=1e29, momentum=0.0,
        device="cpu", progress=False)
    moved = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert moved == {"1.weight", "1.bias"}
    assert torch.equal(conv.weight, before["0.weight"]) and norm.bias.abs().sum() > 0


def lookahead_steps(monkeypatch):
    """Record (step, decay) of every pull of the lookahead average."""
    pulls = []
    original = training_module._AveragedWeights.pull

    def spy(self, model, decay):
        pulls.append(decay)
        return original(self, model, decay)

    monkeypatch.setattr(training_module._AveragedWeights, "pull", spy)
    return pulls


def test_lookahead_schedule(monkeypatch):
    # 64 images, batch 16: 4 steps per epoch, 5 epochs = 20 steps; an update every 2 steps
    monkeypatch.setattr(training_module, "LOOKAHEAD_EVERY", 32)
    pulls = lookahead_steps(monkeypatch)
    steps = []
    fit(tiny_model(), bright_dark(64), epochs=5, lookahead=True, on_step=steps.append, **FIT)
    # the first update at or after 30 % of 20 steps (step 6) creates the average; steps 8, 10, ...
    # pull it, with decay 0.95**5 * (step / 20) ** 3; every epoch from the second ends with decay 1
    expected = []
    for step in range(7, 21):
        if step % 2 == 0:
            expected.append(pytest.approx(0.95 ** 5 * (step / 20) ** 3))
        if step % 4 == 0:
            expected.append(1.0)
    assert pulls == expected


def test_lookahead_sets_the_weights_to_the_average_at_the_end_of_every_epoch(monkeypatch):
    monkeypatch.setattr(training_module, "LOOKAHEAD_EVERY", 32)
    seen = []
    original = training_module._AveragedWeights.pull

    def check(self, model, decay):
        original(self, model, decay)
        seen.append(all(torch.equal(self.average[name], value) for name, value in model.state_dict().items()
                        if name in self.average))

    monkeypatch.setattr(training_module._AveragedWeights, "pull", check)
    model = tiny_model()
    fit(model, bright_dark(64), epochs=5, lookahead=True, **FIT)
    assert seen and all(seen)
    assert "1.running_mean" in training_module._AveragedWeights(model).average  # norm statistics too
    plain = tiny_model()
    fit(plain, bright_dark(64), epochs=5, **FIT)
    assert not torch.equal(plain[0].weight, model[0].weight)


@pytest.mark.parametrize("cut_after", [1, 3])  # before and after the average exists
def test_resume_with_lookahead_matches_straight_run(tmp_path, monkeypatch, cut_after):
    monkeypatch.setattr(training_module, "LOOKAHEAD_EVERY", 32)
    train, test = bright_dark(64), bright_dark(16, seed=1)
    straight_model = tiny_model()
    straight = fit(straight_model, train, test, epochs=5, lookahead=True, **FIT)
    path = tmp_path / "run.pt"
    first = tiny_model()
    steps = []

    def stop(images, generator):
        steps.append(1)
        if len(steps) > 4 * cut_after:
            raise Interrupted
        return images

    with pytest.raises(Interrupted):
        fit(first, train, test, epochs=5, lookahead=True, checkpoint=path, augment=stop, **FIT)
    resumed_model = tiny_model(seed=3)
    resumed = fit(resumed_model, train, test, epochs=5, lookahead=True, checkpoint=path, resume=True, **FIT)
    assert without_seconds(resumed) == without_seconds(straight)
    assert_same_state(resumed_model, straight_model)
