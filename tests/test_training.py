"""Tests for stn_utils.training: seeding, devices, batches, evaluate, fit, checkpoints.

Everything trains tiny models on tiny synthetic data on the CPU."""

import math

import numpy as np
import pytest
import torch
from torch import nn

import stn_utils.training as training_module
from stn_utils.data import ImageDataset, random_crop_flip
from stn_utils.recipes import Recipe
from stn_utils.training import (
    CheckpointError,
    Lookahead,
    TrainingDiverged,
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


def recipe(**changes) -> Recipe:
    """The tests' recipe: batch 16, lr 0.1, otherwise Recipe's defaults."""
    return Recipe(**{"epochs": 1, "batch_size": 16, "lr": 0.1, **changes})


def train(model, data, test=None, *, seed=0, checkpoint=None, resume=False, callbacks=(), **changes):
    """fit() on the CPU with recipe(**changes)."""
    return fit(model, data, test, recipe(**changes), device="cpu", seed=seed, checkpoint=checkpoint, resume=resume,
               callbacks=callbacks)


def crop1(images, generator):
    return random_crop_flip(images, padding=1, generator=generator)


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
    out = list(data.batches(4))
    assert [len(labels) for _, labels in out] == [4, 4, 2]
    images = torch.cat([x for x, _ in out])
    labels = torch.cat([y for _, y in out])
    assert images.dtype == torch.float32 and images.shape == (10, 1, 2, 2)
    assert images.min() >= 0 and images.max() <= 1
    assert torch.equal(labels, torch.arange(10))  # no shuffle: in order
    assert torch.allclose(images[:, 0, 0, 0] * 255, labels.float() * 20)  # images stay with their labels
    assert [len(y) for _, y in data.batches(5)] == [5, 5]
    assert [len(y) for _, y in data.batches(20)] == [10]


def test_batches_shuffle_with_generator():
    data = numbered(10)

    def order(seed):
        g = torch.Generator().manual_seed(seed)
        return torch.cat([y for _, y in data.batches(3, shuffle=True, generator=g)])

    a, b, c = order(0), order(0), order(1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert sorted(a.tolist()) == list(range(10)) and not torch.equal(a, torch.arange(10))
    for x, y in data.batches(3, shuffle=True, generator=torch.Generator().manual_seed(0)):
        assert torch.allclose(x[:, 0, 0, 0] * 255, y.float() * 20)


def test_batches_errors():
    with pytest.raises(ValueError, match="batch_size must be at least 1; got 0"):
        next(numbered().batches(0))
    empty = ImageDataset(torch.empty(0, 1, 2, 2, dtype=torch.uint8), torch.empty(0, dtype=torch.int64), ("a",))
    with pytest.raises(ValueError, match="the data set is empty"):
        next(empty.batches(4))


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
    scores = evaluate(model, data, tta_level=1)
    # each image and its mirror give swapped logits, so the average is a tie: class 0
    assert scores["loss"] == pytest.approx(math.log(2), rel=1e-5)
    assert scores["accuracy"] == pytest.approx(7 / 12)


def test_predict_and_probabilities_measure_as_evaluate_does():
    model, data = LeftRight(), left_right_data()
    model.train()
    picked = training_module.predict(model, data, batch_size=5)
    probabilities = training_module.predict_probabilities(model, data, batch_size=5)
    assert picked.tolist() == [0, 1] * 5 + [0, 1]  # the last image is labelled 0 but shows "right"
    assert (picked == data.labels).float().mean().item() == pytest.approx(evaluate(model, data)["accuracy"])
    assert probabilities.shape == (12, 2) and probabilities.dtype == torch.float32
    assert torch.allclose(probabilities.sum(1), torch.ones(12)) and torch.equal(probabilities.argmax(1), picked)
    sure = 1 / (1 + math.exp(-10))  # logits 10 apart
    assert probabilities.max(1).values == pytest.approx(torch.full((12,), sure), rel=1e-5)
    # with the mirror image every logit pair is a tie
    assert torch.allclose(training_module.predict_probabilities(model, data, tta_level=1), torch.full((12, 2), 0.5))
    assert model.training  # mode restored


def test_evaluate_random_model_in_range():
    scores = evaluate(tiny_model(), bright_dark(20), batch_size=8, tta_level=1, channels_last=True)
    assert 0 < scores["loss"] < 10 and 0 <= scores["accuracy"] <= 1


# --- fit ---------------------------------------------------------------------------------------

def test_fit_learns_bright_vs_dark():
    history = train(tiny_model(), bright_dark(64, seed=0), bright_dark(32, seed=1), epochs=4)
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
        return crop1(images, generator)

    history = train(linear_model(), bright_dark(40), epochs=2, augment=augment, schedule="constant")
    assert history["test_loss"] == [None, None] and history["test_acc"] == [None, None]
    assert seen == [16, 16, 8] * 2
    assert all(len(v) == 2 for v in history.values())


def test_fit_single_step():
    # one epoch of one batch: the one-cycle schedule has no decay phase
    history = train(linear_model(), bright_dark(8))
    assert history["epoch"] == [1] and math.isfinite(history["train_loss"][0])


def test_fit_is_repeatable():
    data, test = bright_dark(48), bright_dark(16, seed=1)
    a = train(tiny_model(), data, test, epochs=2, augment=crop1)
    b = train(tiny_model(), data, test, epochs=2, augment=crop1)
    assert without_seconds(a) == without_seconds(b)
    c = train(tiny_model(), data, test, epochs=2, seed=1)
    assert c["train_loss"] != a["train_loss"]


def test_fit_takes_a_recipe():
    with pytest.raises(TypeError, match="recipe must be a stn_utils.recipes.Recipe; got dict"):
        fit(linear_model(), bright_dark(8), None, {"epochs": 1}, device="cpu")


class NaNModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(64, 2)

    def forward(self, x):
        return self.linear(x.flatten(1)) * float("nan")


def test_fit_nan_logits_raise():
    with pytest.raises(TrainingDiverged, match=r"the loss became nan in epoch 1; stopped. Lower the learning rate"):
        train(NaNModel(), bright_dark(16), epochs=2)


def test_fit_huge_learning_rate_raises():
    with pytest.raises(TrainingDiverged, match=r"the loss became (nan|inf).*\(now 1000000.0\)"):
        train(tiny_model(), bright_dark(32), epochs=10, lr=1e6)


# --- callbacks --------------------------------------------------------------------------------

def test_callbacks_hear_every_step_and_every_epoch():
    events = []
    history = train(tiny_model(), bright_dark(40), bright_dark(8, seed=1), epochs=2,
                    callbacks=[lambda p: events.append((p.event, p.epoch, p.step, p.epochs, p.steps, p.loss))])
    steps = [e for e in events if e[0] == "step"]
    assert [(e[1], e[2]) for e in steps] == [(1, 1), (1, 2), (1, 3), (2, 4), (2, 5), (2, 6)]
    assert all(e[3:5] == (2, 6) and math.isfinite(e[5]) for e in steps)
    assert [e[:3] for e in events if e[0] == "epoch"] == [("epoch", 1, 3), ("epoch", 2, 6)]
    assert [e[0] for e in events] == ["step"] * 3 + ["epoch"] + ["step"] * 3 + ["epoch"]
    assert history["epoch"] == [1, 2]


def test_an_epoch_callback_sees_the_epoch_in_the_history_and_the_trained_model():
    seen = []

    def record(progress):
        if progress.event == "epoch":
            seen.append((progress.history["epoch"][-1], progress.history["test_acc"][-1] is not None,
                         progress.model is model))

    model = tiny_model()
    train(model, bright_dark(32), bright_dark(8, seed=1), epochs=2, callbacks=[record])
    assert seen == [(1, True, True), (2, True, True)]


def test_log_epochs_prints_one_line_per_epoch(capsys):
    train(tiny_model(), bright_dark(32), bright_dark(8, seed=1), epochs=2, callbacks=[training_module.log_epochs])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2  train loss ") and "test acc " in lines[1]


# --- checkpoints in fit ---------------------------------------------------------------------

@pytest.fixture
def saved_epochs(monkeypatch):
    """Record the epoch of every checkpoint fit writes."""
    epochs = []
    original = training_module.save_checkpoint

    def spy(path, model, **kwargs):
        epochs.append(len(kwargs["history"]["epoch"]))
        return original(path, model, **kwargs)

    monkeypatch.setattr(training_module, "save_checkpoint", spy)
    return epochs


def test_fit_writes_checkpoint_every_epoch(tmp_path, saved_epochs):
    path = tmp_path / "runs" / "tiny.pt"
    history = train(tiny_model(), bright_dark(32), bright_dark(16, seed=1), epochs=3, checkpoint=path)
    assert saved_epochs == [1, 2, 3]
    assert path.is_file() and not list(path.parent.glob("*.partial"))
    state = load_checkpoint(path, tiny_model(seed=1))
    assert state["epoch"] == 3 and state["history"] == history
    assert state["model_name"] == "Sequential" and state["recipe"] == recipe(epochs=3).to_dict()
    assert {"optimizer", "scheduler", "scaler", "generator"} <= set(state)


def test_resume_constant_schedule_matches_straight_run(tmp_path, saved_epochs):
    data, test = bright_dark(48), bright_dark(16, seed=1)
    settings = dict(schedule="constant", augment=crop1)
    straight_model = tiny_model()
    straight = train(straight_model, data, test, epochs=4, **settings)

    path = tmp_path / "run.pt"
    with pytest.raises(Interrupted):
        train(tiny_model(), data, test, epochs=4, checkpoint=path, callbacks=[stop_after_epoch(2)], **settings)
    saved_epochs.clear()
    resumed_model = tiny_model(seed=5)  # a fresh model; the checkpoint overrides its weights
    resumed = train(resumed_model, data, test, epochs=4, checkpoint=path, resume=True, **settings)
    assert saved_epochs == [3, 4]  # continued from epoch 3
    assert resumed["epoch"] == [1, 2, 3, 4]
    assert without_seconds(resumed) == without_seconds(straight)
    assert_same_state(resumed_model, straight_model)


class Interrupted(Exception):
    pass


def stop_after_epoch(epoch):
    """A callback that interrupts the run at the first step after ``epoch`` (saved by then)."""
    def stop(progress):
        if progress.event == "step" and progress.epoch == epoch + 1:
            raise Interrupted
    return stop


def stop_at_step(step):
    def stop(progress):
        if progress.event == "step" and progress.step == step:
            raise Interrupted
    return stop


def test_resume_after_interruption_matches_straight_run(tmp_path, saved_epochs):
    """The one-cycle schedule depends on the total epochs: resume a 4-epoch run cut in epoch 3."""
    data, test = bright_dark(48), bright_dark(16, seed=1)
    straight_model = tiny_model()
    straight = train(straight_model, data, test, epochs=4)
    path = tmp_path / "run.pt"
    with pytest.raises(Interrupted):
        train(tiny_model(), data, test, epochs=4, checkpoint=path, callbacks=[stop_at_step(2 * 3 + 1)])
    assert saved_epochs == [1, 2]
    resumed_model = tiny_model(seed=7)
    resumed = train(resumed_model, data, test, epochs=4, checkpoint=path, resume=True)
    assert saved_epochs == [1, 2, 3, 4]
    assert without_seconds(resumed) == without_seconds(straight)
    assert_same_state(resumed_model, straight_model)


def test_resume_without_checkpoint_file_starts_fresh(tmp_path):
    path = tmp_path / "none-yet.pt"
    history = train(linear_model(), bright_dark(16), checkpoint=path, resume=True)
    assert history["epoch"] == [1] and path.is_file()


def test_resume_refuses_a_checkpoint_of_another_recipe_and_names_the_fields(tmp_path):
    path = tmp_path / "run.pt"
    train(linear_model(), bright_dark(16), epochs=2, checkpoint=path)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=r"another recipe \(epochs: 2 -> 3; lr: 0.1 -> 0.2\)"):
        train(linear_model(), bright_dark(16), epochs=3, lr=0.2, checkpoint=path, resume=True)
    assert path.read_bytes() == before  # left as it was


# --- Recipe -----------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, message", [
    (dict(epochs=0), "Recipe.epochs must be a whole number >= 1"),
    (dict(epochs=2.5), "Recipe.epochs must be a whole number >= 1"),
    (dict(batch_size=True), "Recipe.batch_size must be a whole number >= 1"),
    (dict(lr=float("nan")), "Recipe.lr must be a number >= 0"),
    (dict(momentum=1.0), r"Recipe.momentum must be in \[0, 1\)"),
    (dict(schedule="cosine"), "Recipe.schedule must be one of \\('onecycle', 'constant'\\)"),
    (dict(precision="half"), "Recipe.precision must be one of"),
    (dict(tta_level=3), "Recipe.tta_level must be 0, 1 or 2"),
    (dict(lookahead=1), "Recipe.lookahead must be True or False"),
    (dict(augment="rotate"), "Recipe.augment must be one of \\['cifar10', .*'none'\\] or a function"),
    (dict(warmup=1.5), r"Recipe.warmup must be in \[0, 1\]"),
    (dict(whitening_bias_epochs=-1), "Recipe.whitening_bias_epochs must be None or a whole number >= 0"),
    (dict(whitening_bias_epochs=2.0), "Recipe.whitening_bias_epochs must be None or a whole number >= 0"),
    (dict(decoupled_decay="yes"), "Recipe.decoupled_decay must be True or False"),
    (dict(lookahead_epoch_end=None), "Recipe.lookahead_epoch_end must be True or False"),
])
def test_recipe_refuses_bad_values(changes, message):
    with pytest.raises(ValueError, match=message):
        recipe(**changes)


def test_one_cycle_schedule_shape():
    shape = recipe(warmup=0.25, lr_start=0.2, lr_end=0.1)
    factors = [training_module.lr_factor(step, 100, shape) for step in (0, 25, 50, 100, 120)]
    assert factors == pytest.approx([0.2, 1.0, 0.7, 0.1, 0.1])
    assert [training_module.lr_factor(step, 10, recipe()) for step in (0, 1, 2, 6, 10)] == pytest.approx(
        [0, 0.5, 1, 0.5, 0])
    assert training_module.lr_factor(3, 10, recipe(schedule="constant")) == 1.0


def test_recipe_is_frozen_and_lists_its_differences():
    import dataclasses

    from stn_utils import recipes
    base = recipes.CIFAR10
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.lr = 1.0
    variant = dataclasses.replace(base, lr=0.5, tta_level=0)
    assert variant.differences(base.to_dict()) == ["lr: 0.75 -> 0.5", "tta_level: 2 -> 0"]
    assert base.differences(base.to_dict()) == []
    assert recipe(augment=crop1).to_dict()["augment"].endswith("test_training.crop1")
    assert recipes.CIFAR10_8EPOCH.augmentation is recipes.cifar10_augment and recipes.MNIST.augmentation is None


def test_a_field_missing_from_a_stored_recipe_reads_as_its_default():
    """A checkpoint written before a field existed trained as the field's default says."""
    stored = {k: v for k, v in recipe().to_dict().items() if k not in ("decoupled_decay", "whitening_bias_epochs")}
    assert recipe().differences(stored) == []
    assert recipe(decoupled_decay=True).differences(stored) == ["decoupled_decay: False -> True"]


# --- save_checkpoint / load_checkpoint ------------------------------------------------------

def trained_checkpoint(path):
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.rand(4, 1, 8, 8)).sum().backward()
    optimizer.step()
    save_checkpoint(path, model, optimizer=optimizer, history={"epoch": [1, 2, 3, 4, 5, 6, 7]},
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
    assert state["epoch"] == 7 and state["history"] == {"epoch": [1, 2, 3, 4, 5, 6, 7]}
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
    with pytest.raises(CheckpointError, match="not a checkpoint written by stn_utils.training.save_checkpoint"):
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
    with pytest.raises(CheckpointError, match="cannot write the checkpoint .*a-file"):
        save_checkpoint(blocker / "model.pt", tiny_model())
    with pytest.raises(CheckpointError, match="cannot write the checkpoint"):
        save_checkpoint(blocker / "sub" / "model.pt", tiny_model())
    folder = tmp_path / "a-folder.pt"
    folder.mkdir()
    with pytest.raises(CheckpointError, match="cannot write the checkpoint .*a-folder.pt"):
        save_checkpoint(folder, tiny_model())
    assert not list(tmp_path.glob("*.partial"))


def test_fit_stn_lr_scale_sets_the_spatial_transformers_step():
    from stn_utils.models import Classifier, SpatialTransformer

    data = bright_dark(32, size=16)
    torch.manual_seed(0)
    body = nn.Sequential(nn.Flatten(), nn.Linear(16 * 16, 2))
    model = Classifier(body, (0.5,), (0.25,), stn=SpatialTransformer(1))
    stn_before = [p.detach().clone() for p in model.stn.parameters()]
    body_before = [p.detach().clone() for p in model.body.parameters()]
    train(model, data, epochs=2, batch_size=8, stn_lr_scale=0.0)
    assert all(torch.equal(a, b) for a, b in zip(stn_before, model.stn.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(body_before, model.body.parameters()))
    train(model, data, epochs=2, batch_size=8, stn_lr_scale=1.0)
    assert not all(torch.equal(a, b) for a, b in zip(stn_before, model.stn.parameters()))


def test_every_spatial_transformer_learns_at_the_stn_rate():
    """Found by type, wherever it sits: two transformers side by side, neither called ``stn``."""
    from stn_utils.models import SpatialTransformer
    torch.manual_seed(0)
    model = nn.ModuleDict({"first": SpatialTransformer(1), "second": SpatialTransformer(1), "head": nn.Linear(4, 2)})
    optimizer = training_module.optimizer_for(model, recipe(stn_lr_scale=0.01))
    rates = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    for name in ("first", "second"):
        assert all(rates[id(p)] == pytest.approx(0.001) for p in model[name].parameters())
    assert all(rates[id(p)] == pytest.approx(0.1) for p in model["head"].parameters())


def test_load_model_rebuilds_a_course_model_from_its_checkpoint(tmp_path):
    from stn_utils.models import build_model
    from stn_utils.training import load_model
    torch.manual_seed(0)
    model = build_model("mnist_stn", transform="attention", localization_size=8)
    path = save_checkpoint(tmp_path / "m.pt", model, recipe=recipe())
    loaded, state = load_model(path)
    assert type(loaded.stn.family).__name__ == "Attention" and not loaded.training
    assert_same_state(loaded, model)
    assert state["model_name"] == "mnist_stn" and state["recipe"]["lr"] == 0.1
    save_checkpoint(path, tiny_model())
    with pytest.raises(CheckpointError, match="does not say how to build its model"):
        load_model(path)


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
    assert training_module.tta_logits(model, x, 1).item() == (0 + 3) / 2
    # unmoved views: 0 and 3 (mirror); moved down-right: 5 (reflected corner) and 6; up-left: 5 and 6
    moved = (5 + 6 + 5 + 6) / 4
    assert training_module.tta_logits(model, x, 2).item() == pytest.approx((1.5 + moved) / 2)
    with pytest.raises(ValueError, match="tta_level must be 0, 1 or 2; got 3"):
        training_module.tta_logits(model, x, 3)


def test_evaluate_translate_tta_changes_the_score_of_a_position_sensitive_model():
    model, data = LeftRight(), left_right_data()
    plain = evaluate(model, data)
    moved = evaluate(model, data, tta_level=2)
    assert moved["loss"] != pytest.approx(plain["loss"])


class WhitenedNet(nn.Sequential):
    """A tiny model with a patch-whitening stem that prepares itself, as the course's CIFAR models do."""

    def __init__(self):
        from stn_utils.models import PatchWhitening
        super().__init__(PatchWhitening(1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))

    def prepare(self, images):
        from stn_utils.models import fit_whitening
        return fit_whitening(self, images)


def test_fit_prepares_the_whitening_stem_once(tmp_path):
    torch.manual_seed(0)
    model, data = WhitenedNet(), bright_dark(64)
    train(model, data, checkpoint=tmp_path / "ckpt.pt")
    stem = model[0]
    assert bool(stem.fitted) and not torch.equal(stem.conv.weight, torch.zeros_like(stem.conv.weight))
    fitted = stem.conv.weight.clone()
    train(model, data, seed=5)  # more training keeps the stem the later layers learned on
    assert torch.equal(stem.conv.weight, fitted)
    restored = WhitenedNet()
    load_checkpoint(tmp_path / "ckpt.pt", restored)
    assert bool(restored[0].fitted) and torch.equal(restored[0].conv.weight, fitted)


def test_the_whitening_bias_is_frozen_after_its_epochs(tmp_path):
    torch.manual_seed(0)
    model, data = WhitenedNet(), bright_dark(64)
    biases = []
    remember = lambda progress: progress.event == "epoch" and biases.append(model[0].conv.bias.detach().clone())  # noqa: E731
    train(model, data, epochs=3, whitening_bias_epochs=1, momentum=0.9, weight_decay=0.1, decoupled_decay=True,
          callbacks=[remember])
    assert not torch.equal(biases[0], torch.zeros_like(biases[0]))  # it learned in epoch 1 ...
    assert torch.equal(biases[0], biases[1]) and torch.equal(biases[1], biases[2])  # ... and nothing after
    assert not torch.equal(model[4].weight, WhitenedNet()[4].weight)
    torch.manual_seed(0)
    throughout = WhitenedNet()
    train(throughout, data, epochs=3, momentum=0.9)
    assert not torch.equal(throughout[0].conv.bias, biases[0])


def test_decoupled_decay_shrinks_every_group_alike_but_not_the_transformer():
    """airbench's decoupling: lr * weight_decay per step in every group, biases and norm
    shifts included; the transformer keeps L2 on its weights, at its own rate."""
    from stn_utils.models import build_model
    model = build_model("cifar_stn", widths=(8, 8, 8))
    coupled = training_module.optimizer_for(model, recipe(weight_decay=0.01, norm_lr_scale=64, stn_lr_scale=0.1))
    decoupled = training_module.optimizer_for(model, recipe(weight_decay=0.01, norm_lr_scale=64, stn_lr_scale=0.1,
                                                            decoupled_decay=True))
    shrink = {}
    for name, optimizer in (("coupled", coupled), ("decoupled", decoupled)):
        per_parameter = {id(p): group["lr"] * group["weight_decay"] for group in optimizer.param_groups
                         for p in group["params"]}
        shrink[name] = {name: per_parameter[id(p)] for name, p in model.named_parameters() if p.requires_grad}
    norm_shift = next(name for name in shrink["coupled"] if name.startswith("body.4."))   # a batch norm's bias
    whitening_bias = "body.0.conv.bias"
    body_weight = "body.2.weight"
    assert shrink["coupled"][norm_shift] == 0 and shrink["coupled"][whitening_bias] == 0
    assert shrink["decoupled"][norm_shift] == pytest.approx(0.1 * 0.01)
    assert shrink["decoupled"][whitening_bias] == pytest.approx(0.1 * 0.01)
    assert shrink["decoupled"][body_weight] == shrink["coupled"][body_weight] == pytest.approx(0.1 * 0.01)
    for name in shrink["coupled"]:
        if name.startswith("stn."):
            assert shrink["decoupled"][name] == shrink["coupled"][name]  # untouched by the decoupling
            assert (shrink["decoupled"][name] == 0) == name.endswith("bias")
    marked = [group for group in decoupled.param_groups if group["whitening_bias"]]
    assert [len(group["params"]) for group in marked] == [1] and marked[0]["params"][0] is model.body[0].conv.bias


def test_a_model_without_prepare_is_not_scanned_for_a_stem():
    from stn_utils.models import PatchWhitening
    torch.manual_seed(0)
    model = nn.Sequential(PatchWhitening(1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    train(model, bright_dark(16))
    assert not bool(model[0].fitted)


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


@pytest.mark.parametrize("precision, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16),
                                              ("fp16", torch.float16)])
def test_fit_precision_autocasts_training_and_the_per_epoch_test(precision, dtype):
    model, data = DtypeRecorder(), bright_dark(32)
    history = train(model, data, data, precision=precision)
    assert model.dtypes == {"train": {dtype}, "eval": {dtype}}
    assert model.linear.weight.dtype == torch.float32, "the weights stay in fp32 under autocast"
    assert 0.0 <= history["test_acc"][0] <= 1.0 and math.isfinite(history["train_loss"][0])


def test_evaluate_precision_returns_float32_scores_under_bf16():
    model, data = DtypeRecorder(), bright_dark(32)
    scores = evaluate(model, data, precision="bf16", tta_level=1)
    assert model.dtypes["eval"] == {torch.bfloat16}
    assert scores["loss"] == pytest.approx(evaluate(model, data)["loss"], rel=0.05)


def test_autocast_dtype_auto_follows_the_hardware(monkeypatch):
    assert training_module.autocast_dtype("fp32", "cpu") is None
    assert training_module.autocast_dtype("bf16", "cpu") is torch.bfloat16
    monkeypatch.setattr(training_module, "_native_bf16", lambda device: True)
    assert training_module.autocast_dtype("auto", "cpu") is torch.bfloat16
    assert training_module.autocast_dtype("auto", "cuda") is torch.bfloat16  # e.g. an A100
    monkeypatch.setattr(training_module, "_native_bf16", lambda device: False)
    assert training_module.autocast_dtype("auto", "cpu") is None  # emulated bf16 is slower than fp32
    assert training_module.autocast_dtype("auto", "cuda") is torch.float16  # e.g. a T4: its fp16 tensor cores
    assert training_module.autocast_dtype("auto", "mps") is None
    assert training_module.autocast_dtype("fp16", "cpu") is torch.float16


def test_fit_scales_the_loss_exactly_when_it_computes_in_fp16(monkeypatch):
    """The gradient scaler is on for fp16 (a T4's "auto") and off otherwise: bf16 keeps
    fp32's exponent range, so its small gradients need no scaling."""
    made = []
    real = torch.amp.GradScaler

    class Recording(real):
        def __init__(self, *args, enabled=True, **kwargs):
            made.append(enabled)
            super().__init__(*args, enabled=enabled, **kwargs)

    monkeypatch.setattr(torch.amp, "GradScaler", Recording)
    monkeypatch.setattr(training_module, "_native_bf16", lambda device: False)   # a CPU without bf16
    for precision in ("fp32", "bf16", "fp16", "auto"):
        train(linear_model(), bright_dark(16), precision=precision)
    assert made == [False, False, True, False]   # "auto" on such a CPU: fp32


def test_native_bf16_reads_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert not training_module._native_bf16(torch.device("cpu"))
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert training_module._native_bf16(torch.device("cpu"))
    assert not training_module._native_bf16(torch.device("meta"))


def test_precision_errors():
    with pytest.raises(ValueError, match=r"precision must be one of \('fp32', 'bf16', 'fp16', 'auto'\); got 'half'"):
        evaluate(DtypeRecorder(), bright_dark(8), precision="half")


class InfGradientOnce(torch.autograd.Function):
    """Identity forward; the backward pass of call number ``bad`` returns an infinite gradient."""

    calls = 0
    bad = 2

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        InfGradientOnce.calls += 1
        return grad * float("inf") if InfGradientOnce.calls == InfGradientOnce.bad else grad


class Overflowing(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(64, 2)

    def forward(self, x):
        return InfGradientOnce.apply(self.linear(x.flatten(1)))


def test_fp16_skips_the_step_whose_gradients_overflow_and_halves_the_loss_scale():
    """fp16 scales the loss (GradScaler): a step with an infinite gradient is skipped, the
    scale halves and training goes on; in fp32 the same gradient ruins the weights."""
    InfGradientOnce.calls = 0
    model, weights, scales = Overflowing(), [], []

    def watch(progress):
        if progress.event == "step":
            weights.append(model.linear.weight.detach().clone())

    real_update = torch.amp.GradScaler.update

    def update(self, *args):
        real_update(self, *args)
        scales.append(self.get_scale())

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.amp.GradScaler, "update", update)
        history = train(model, bright_dark(48), epochs=1, precision="fp16", callbacks=[watch])
    assert torch.equal(weights[1], weights[0]), "the overflowing second step must be skipped"
    assert not torch.equal(weights[2], weights[1]) and torch.isfinite(model.linear.weight).all()
    assert scales == [65536.0, 32768.0, 32768.0] and math.isfinite(history["train_loss"][0])
    InfGradientOnce.calls = 0
    with pytest.raises(TrainingDiverged):
        train(Overflowing(), bright_dark(48), epochs=1, precision="fp32")


def test_resume_in_fp16_restores_the_loss_scale(tmp_path):
    data, test = bright_dark(48), bright_dark(16, seed=1)
    InfGradientOnce.calls, InfGradientOnce.bad = 0, 2
    straight = train(Overflowing(), data, test, epochs=3, precision="fp16")
    path = tmp_path / "run.pt"
    InfGradientOnce.calls = 0
    with pytest.raises(Interrupted):
        train(Overflowing(), data, test, epochs=3, precision="fp16", checkpoint=path, callbacks=[stop_after_epoch(2)])
    assert torch.load(path, weights_only=True)["scaler"]["scale"] == 32768.0  # the overflow in epoch 1 halved it
    resumed = train(Overflowing(), data, test, epochs=3, precision="fp16", checkpoint=path, resume=True)
    assert without_seconds(resumed) == without_seconds(straight)


# --- norm learning rate and lookahead --------------------------------------------------------

def test_fit_norm_lr_scale_sets_the_normalisation_layers_step():
    """With the classifier's rate at 0, only the norm layers (rate lr * norm_lr_scale) move."""
    model = tiny_model()
    norm, conv = model[1], model[0]
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    train(model, bright_dark(32), lr=1e-30, norm_lr_scale=1e29, momentum=0.0)
    moved = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert moved == {"1.weight", "1.bias"}
    assert torch.equal(conv.weight, before["0.weight"]) and norm.bias.abs().sum() > 0


def lookahead_steps(monkeypatch):
    """Record (step, decay) of every pull of the lookahead average."""
    pulls = []
    original = Lookahead.pull

    def spy(self, model, decay=1.0):
        if self.average is not None:
            pulls.append(decay)
        return original(self, model, decay)

    monkeypatch.setattr(Lookahead, "pull", spy)
    return pulls


def test_lookahead_schedule(monkeypatch):
    # 64 images, batch 16: 4 steps per epoch, 5 epochs = 20 steps; an update every 2 steps
    monkeypatch.setattr(Lookahead, "every_images", 32)
    pulls = lookahead_steps(monkeypatch)
    train(tiny_model(), bright_dark(64), epochs=5, lookahead=True)
    # the first update at or after 30 % of 20 steps (step 6) creates the average; steps 8, 10, ...
    # pull it, with decay 0.95**5 * (step / 20) ** 3; every epoch from the second ends with decay 1
    expected = []
    for step in range(7, 21):
        if step % 2 == 0:
            expected.append(pytest.approx(0.95 ** 5 * (step / 20) ** 3))
        if step % 4 == 0:
            expected.append(1.0)
    assert pulls == expected


def test_lookahead_without_epoch_ends_sets_the_weights_to_the_average_only_at_the_last_step(monkeypatch):
    # 4 steps per epoch, an update every 3 steps: epochs 2 and 4 end between updates
    monkeypatch.setattr(Lookahead, "every_images", 48)
    pulls = lookahead_steps(monkeypatch)
    model = tiny_model()
    train(model, bright_dark(64), epochs=5, lookahead=True, lookahead_epoch_end=False)
    # created at step 6; decaying updates at steps 9, 12, 15, 18; one pull with decay 1 at step 20
    expected = [pytest.approx(0.95 ** 5 * (step / 20) ** 3) for step in (9, 12, 15, 18)] + [1.0]
    assert pulls == expected
    with_epoch_ends = tiny_model()
    train(with_epoch_ends, bright_dark(64), epochs=5, lookahead=True)
    assert not torch.equal(with_epoch_ends[0].weight, model[0].weight)  # the dropped steps count


def test_lookahead_sets_the_weights_to_the_average_at_the_end_of_every_epoch(monkeypatch):
    monkeypatch.setattr(Lookahead, "every_images", 32)
    seen = []
    averages = []
    original = Lookahead.pull

    def check(self, model, decay=1.0):
        original(self, model, decay)
        if self.average is not None:
            averages.append(self.average)
            seen.append(all(torch.equal(self.average[name], value) for name, value in model.state_dict().items()
                            if name in self.average))

    monkeypatch.setattr(Lookahead, "pull", check)
    model = tiny_model()
    train(model, bright_dark(64), epochs=5, lookahead=True)
    assert seen and all(seen)
    assert "1.running_mean" in averages[-1]  # norm statistics too
    plain = tiny_model()
    train(plain, bright_dark(64), epochs=5)
    assert not torch.equal(plain[0].weight, model[0].weight)


@pytest.mark.parametrize("epoch_end", [True, False])
@pytest.mark.parametrize("cut_after", [1, 2])  # before and after the average exists
def test_resume_with_lookahead_matches_straight_run(tmp_path, monkeypatch, cut_after, epoch_end):
    # 4 steps per epoch, an update every 3 steps from step 6: epoch 2 ends two steps after one,
    # so without epoch ends its checkpoint's weights are not the average
    monkeypatch.setattr(Lookahead, "every_images", 48)
    data, test = bright_dark(64), bright_dark(16, seed=1)
    settings = dict(epochs=5, lookahead=True, lookahead_epoch_end=epoch_end)
    straight_model = tiny_model()
    straight = train(straight_model, data, test, **settings)
    path = tmp_path / "run.pt"
    with pytest.raises(Interrupted):
        train(tiny_model(), data, test, checkpoint=path, callbacks=[stop_at_step(4 * cut_after + 1)], **settings)
    assert (torch.load(path, weights_only=True)["lookahead"]["average"] is None) == (cut_after == 1)
    resumed_model = tiny_model(seed=3)
    resumed = train(resumed_model, data, test, checkpoint=path, resume=True, **settings)
    assert without_seconds(resumed) == without_seconds(straight)
    assert_same_state(resumed_model, straight_model)


@pytest.mark.parametrize("channels_last", [False, True])
def test_a_run_with_muon_resumes_to_the_uninterrupted_result(tmp_path, channels_last):
    """Muon's momentum buffers travel in the checkpoint (stn_utils.optim)."""
    data, test = bright_dark(48), bright_dark(16, seed=1)
    settings = dict(epochs=3, momentum=0.9, muon_lr=0.05, channels_last=channels_last)
    straight_model = tiny_model()
    straight = train(straight_model, data, test, **settings)
    path = tmp_path / "run.pt"
    with pytest.raises(Interrupted):
        train(tiny_model(), data, test, checkpoint=path, callbacks=[stop_at_step(5)], **settings)
    resumed_model = tiny_model(seed=4)
    resumed = train(resumed_model, data, test, checkpoint=path, resume=True, **settings)
    assert without_seconds(resumed) == without_seconds(straight)
    assert_same_state(resumed_model, straight_model)
    saved = torch.load(path, weights_only=True)["optimizer"]["state"].values()
    assert sum("muon_buffer" in state for state in saved) == 1  # the one convolution's filters


def test_a_run_that_does_not_write_checkpoints_still_resumes_from_one(tmp_path):
    data, test = bright_dark(48), bright_dark(16, seed=1)
    straight = train(tiny_model(), data, test, epochs=4)
    path = tmp_path / "run.pt"
    with pytest.raises(Interrupted):
        train(tiny_model(), data, test, epochs=4, checkpoint=path, callbacks=[stop_after_epoch(2)])
    written = path.read_bytes()
    resumed = fit(tiny_model(seed=3), data, test, recipe(epochs=4), device="cpu", checkpoint=path, resume=True,
                  write_checkpoints=False)
    assert without_seconds(resumed) == without_seconds(straight)
    assert path.read_bytes() == written  # read, never written


def test_resume_from_a_checkpoint_without_the_lookahead_average(tmp_path, monkeypatch):
    """Checkpoints written before they held the average: with epoch ends the weights are the average."""
    monkeypatch.setattr(Lookahead, "every_images", 32)
    data, test = bright_dark(64), bright_dark(16, seed=1)
    straight_model = tiny_model()
    straight = train(straight_model, data, test, epochs=5, lookahead=True)
    path = tmp_path / "run.pt"
    with pytest.raises(Interrupted):
        train(tiny_model(), data, test, epochs=5, lookahead=True, checkpoint=path, callbacks=[stop_at_step(13)])
    state = torch.load(path, weights_only=True)
    del state["lookahead"]
    torch.save(state, path)
    resumed_model = tiny_model(seed=3)
    resumed = train(resumed_model, data, test, epochs=5, lookahead=True, checkpoint=path, resume=True)
    assert without_seconds(resumed) == without_seconds(straight)
    assert_same_state(resumed_model, straight_model)


def test_alternating_flip_mirrors_each_image_in_every_other_epoch():
    from stn_utils.recipes import AUGMENTATIONS
    flip = AUGMENTATIONS["cifar10-alternating"]
    index = torch.randperm(50000, generator=torch.Generator().manual_seed(0))[:256]
    images = torch.rand(256, 3, 8, 8)
    odd = flip(images, torch.Generator().manual_seed(1), index=index, epoch=1)
    even = flip(images, torch.Generator().manual_seed(1), index=index, epoch=2)
    assert torch.equal(even, odd.flip(3))  # the same shifts: each image mirrored in exactly one of the two
    plain = random_crop_flip(images, padding=2, flip=False, generator=torch.Generator().manual_seed(1))
    mirrored = (odd != plain).flatten(1).any(1).float().mean()
    assert 0.35 < mirrored < 0.65  # about half the images in each epoch
    seen = []

    class Recorder(type(flip)):
        def __call__(self, images, generator, *, index, epoch):
            seen.append((len(index), epoch))
            return images

    train(tiny_model(), bright_dark(40), epochs=2, augment=Recorder())
    assert seen == [(16, 1), (16, 1), (8, 1), (16, 2), (16, 2), (8, 2)]


def test_alternating_flip_shifts_further_and_hides_a_square_where_asked():
    from stn_utils.recipes import AUGMENTATIONS, AlternatingFlip
    assert repr(AUGMENTATIONS["cifar10-alternating"]) == "AlternatingFlip()"
    assert repr(AUGMENTATIONS["cifar10-alternating-shift4"]) == "AlternatingFlip(shift=4)"
    assert repr(AUGMENTATIONS["cifar10-alternating-cutout8"]) == "AlternatingFlip(cutout=8)"
    index = torch.arange(64)
    images = torch.rand(64, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    base = AlternatingFlip()(images, torch.Generator().manual_seed(1), index=index, epoch=1)
    far = AlternatingFlip(shift=4)(images, torch.Generator().manual_seed(1), index=index, epoch=1)
    plain = random_crop_flip(images, padding=4, flip=False, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(far[i], plain[i]) or torch.equal(far[i], plain[i].flip(-1)) for i in range(64))
    hidden = AlternatingFlip(cutout=4)(images, torch.Generator().manual_seed(1), index=index, epoch=1)
    changed = (hidden != base).any(1).flatten(1).sum(1)
    assert (changed >= 1).all() and (changed <= 16).all()  # the same shifts and flips, then one square each
    for bad in ({"shift": -1}, {"cutout": -2}, {"cutout": 2.5}, {"shift": True}):
        with pytest.raises(ValueError, match="whole number of pixels >= 0"):
            AlternatingFlip(**bad)


def test_adamw_recipe_trains_with_the_same_groups():
    model = tiny_model()
    optimizer = training_module.optimizer_for(model, recipe(optimizer="adamw", lr=0.01, momentum=0.9))
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["betas"] == (0.9, 0.999)
    assert sorted(g["weight_decay"] for g in optimizer.param_groups) == [0.0, 0.0, 5e-4]  # biases, norms, weights
    history = train(model, bright_dark(64), bright_dark(32, seed=1), epochs=4, optimizer="adamw", lr=0.05)
    assert history["test_acc"][-1] >= 0.9 and history["train_loss"][-1] < history["train_loss"][0] / 2
    with pytest.raises(ValueError, match=r"Recipe.optimizer must be one of \('sgd', 'adamw'\)"):
        recipe(optimizer="lbfgs")
