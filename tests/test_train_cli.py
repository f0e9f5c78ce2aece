"""Tests for ``python -m stn_utils.train``: runs, repeatability, kill-and-resume, torchrun, errors.

Every run is a real subprocess on a tiny synthetic MNIST-like class-per-folder tree, on the CPU
with one thread."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from stn_utils.data import ImageDataset, load_dataset
from stn_utils.models import build_model
from stn_utils.train import ProcessShard, main
from stn_utils.training import load_checkpoint, save_checkpoint

REPO = Path(__file__).resolve().parents[1]
ENV = {**{k: v for k, v in os.environ.items() if not k.startswith("STN_")}, "OMP_NUM_THREADS": "1"}
EPOCHS = 6
TRAIN_PER_CLASS, TEST_PER_CLASS = 30, 6


def command(*args):
    return [sys.executable, "-m", "stn_utils.train", *map(str, args)]


def start(args):
    return subprocess.Popen(args, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run(args, timeout=120):
    return subprocess.run(args, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)


def without_seconds(history):
    return {k: v for k, v in history.items() if k != "seconds"}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """<root>/mnist/{train,test}/<digit>/*.png: 28x28 grey images, a bright bar at a class's column."""
    root = tmp_path_factory.mktemp("data")
    from PIL import Image
    rng = np.random.default_rng(0)
    for split, count in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        for digit in range(10):
            folder = root / "mnist" / split / str(digit)
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 60, (28, 28), dtype=np.uint8)
                pixels[4:24, 3 + 2 * digit:5 + 2 * digit] = 255
                Image.fromarray(pixels).save(folder / f"{i}.png")
        load_dataset("mnist", split, root=root, source="folder")  # decode once; runs read the cache
    return root


def train_args(data_root, out, *extra, epochs=EPOCHS):
    return command("--dataset", "mnist", "--model", "mnist_cnn", "--epochs", epochs, "--batch-size", 32,
                   "--seed", 3, "--device", "cpu", "--data-root", data_root, "--data-source", "folder",
                   "--out", out, *extra)


@pytest.fixture(scope="module")
def reference(data_root, tmp_path_factory):
    """An uninterrupted seeded run, and a second one started alongside for test_seeded_runs_repeat:
    {"out": its output folder, "history": its history, "again": the second's history}."""
    out, again = tmp_path_factory.mktemp("reference"), tmp_path_factory.mktemp("again")
    processes = [start(train_args(data_root, folder)) for folder in (out, again)]
    for process in processes:
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
    assert "done: test accuracy" in stdout and str(again / "checkpoint.pt") in stdout
    # output to a pipe (a log file, nohup): one line per epoch as it ends
    assert [line.split("  ")[0] for line in stdout.splitlines()[:EPOCHS]] == [f"epoch {e}/{EPOCHS}" for e in
                                                                              range(1, EPOCHS + 1)]
    return {"out": out, "history": json.loads((out / "history.json").read_text()),
            "again": json.loads((again / "history.json").read_text())}


def test_run_writes_checkpoint_and_history(reference):
    out, history = reference["out"], reference["history"]
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "history.json"]
    assert history["epoch"] == list(range(1, EPOCHS + 1))
    assert all(len(values) == EPOCHS for values in history.values())
    assert history["train_loss"][-1] < history["train_loss"][0]
    state = load_checkpoint(out / "checkpoint.pt", build_model("mnist_cnn"))
    assert state["epoch"] == EPOCHS and state["history"] == history


def test_seeded_runs_repeat(reference):
    assert without_seconds(reference["again"]) == without_seconds(reference["history"])
    assert reference["again"]["seconds"] != reference["history"]["seconds"]  # two real runs


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_killed_run_resumes_to_the_same_result(reference, data_root, tmp_path):
    out = tmp_path / "killed"
    checkpoint = out / "checkpoint.pt"
    process = start(train_args(data_root, out))
    deadline = time.monotonic() + 60
    while not checkpoint.exists():  # written atomically after each epoch
        assert process.poll() is None, f"the run ended before its first checkpoint: {process.communicate()}"
        assert time.monotonic() < deadline, "no checkpoint after 60 s"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    killed_at = load_checkpoint(checkpoint, build_model("mnist_cnn"))["epoch"]
    assert 1 <= killed_at < EPOCHS  # killed mid-run
    assert not (out / "history.json").exists()

    result = run(train_args(data_root, out, "--resume"))
    assert result.returncode == 0, result.stderr
    assert f"resuming from {checkpoint}: {killed_at} of {EPOCHS} epochs done, continuing with epoch {killed_at + 1}" \
        in result.stderr
    resumed = json.loads((out / "history.json").read_text())
    assert without_seconds(resumed) == without_seconds(reference["history"])


def gloo_available():
    return torch.distributed.is_available() and torch.distributed.is_gloo_available()


@pytest.mark.skipif(not gloo_available(), reason="torch.distributed with gloo is not available")
def test_torchrun_two_processes_on_cpu(reference, data_root, tmp_path):
    out = tmp_path / "ddp"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone"]
    args = train_args(data_root, out, "--batch-size", 16)  # per process: 2 x 16 = the reference's 32
    result = run(launcher + args[1:], timeout=180)  # args[1:]: "-m stn_utils.train ..."
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("done: test accuracy") == 1  # rank 0 only
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "history.json"]
    state = load_checkpoint(out / "checkpoint.pt", build_model("mnist_cnn"))  # no "module." prefix
    history = json.loads((out / "history.json").read_text())
    assert state["epoch"] == EPOCHS and state["history"] == history
    # rank r takes order[r::2] of the same shuffled order, so each step's two half-batches make up
    # the reference's batch and the averaged gradients are its gradients, up to rounding
    expected = reference["history"]
    assert history["epoch"] == expected["epoch"]
    for key in ("train_loss", "test_loss"):
        assert history[key] == pytest.approx(expected[key], rel=1e-3), key
    for key in ("train_acc", "test_acc"):
        assert history[key] == pytest.approx(expected[key], abs=0.02), key


@pytest.mark.skipif(not gloo_available(), reason="torch.distributed with gloo is not available")
def test_torchrun_resumes_every_process_from_a_checkpoint(reference, data_root, tmp_path):
    # a two-process run resumed from its first checkpoint: were only rank 0 to resume, rank 1
    # would train every epoch again and the two would wait on each other's steps
    out = tmp_path / "ddp"
    checkpoint, first = out / "checkpoint.pt", tmp_path / "first-checkpoint.pt"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone"]
    args = launcher + train_args(data_root, out, "--batch-size", 16)[1:]  # 2 x 16 = the reference's 32
    process = start(args)
    deadline = time.monotonic() + 120
    while not checkpoint.exists():  # written atomically after each epoch: a copy is a whole checkpoint
        assert process.poll() is None and time.monotonic() < deadline, "no checkpoint while the run lasted"
        time.sleep(0.01)
    first.write_bytes(checkpoint.read_bytes())
    process.communicate(timeout=180)
    assert process.returncode == 0
    resumed_from = load_checkpoint(first, build_model("mnist_cnn"))["epoch"]
    assert 1 <= resumed_from < EPOCHS
    checkpoint.write_bytes(first.read_bytes())  # as if the run had been stopped there
    (out / "history.json").unlink()
    result = run(args + ["--resume"], timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.count(f"{resumed_from} of {EPOCHS} epochs done, continuing with epoch {resumed_from + 1}") \
        == 1  # rank 0 says it
    assert [line.split("  ")[0] for line in result.stdout.splitlines() if line.startswith("epoch ")] == \
        [f"epoch {e}/{EPOCHS}" for e in range(resumed_from + 1, EPOCHS + 1)]
    history = json.loads((out / "history.json").read_text())
    expected = reference["history"]
    assert history["epoch"] == expected["epoch"]
    for key in ("train_loss", "test_loss"):
        assert history[key] == pytest.approx(expected[key], rel=1e-3), key


def test_process_shards_split_every_epochs_order():
    data = ImageDataset(torch.zeros(10, 1, 2, 2, dtype=torch.uint8), torch.arange(10), tuple("abcdefghij"))

    def labels(dataset):
        return [y.tolist() for _, y in dataset.batches(2, shuffle=True, generator=torch.Generator().manual_seed(0))]

    order = sum(labels(data), [])

    def shard(rank, world):
        return ProcessShard(data.images, data.labels, data.classes, rank=rank, world_size=world)

    assert labels(shard(0, 1)) == labels(data)
    shards = [labels(shard(r, 3)) for r in range(3)]
    assert [len(s) for s in shards] == [2, 2, 2]  # 10 padded to 12: 4 each, the same batch count
    assert [sum(s, []) for s in shards] == [(order + order[:2])[r::3] for r in range(3)]
    assert len(shard(1, 3)) == 4


# --- errors: each a clear one-line message and exit status 2 -----------------------------------
# Most run main() in this process, which saves a torch import (seconds) each; two run as
# ``python -m stn_utils.train`` to check the exit status and the absence of a traceback there.

def error_line(stderr, expected):
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and expected in errors[0], stderr
    return errors[0]


def truncated_checkpoint(folder):
    path = folder / "checkpoint.pt"
    save_checkpoint(path, build_model("mnist_cnn"), history={"epoch": [1]})
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return folder


def blocked_folder(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    return tmp_path / "a-file" / "run"


@pytest.mark.parametrize("case, expected", [
    (dict(args=["--model", "resnet"]), "argument --model: invalid choice: 'resnet'"),
    (dict(args=["--model", "cifar_stn"]),
     "model 'cifar_stn' takes 3-channel images but mnist has 1; choose --model from ['digit_cnn', 'digit_stn', "),
    (dict(epochs=-2), "argument --epochs: must be a whole number >= 1; got -2"),
    (dict(args=["--lr", "nan"]), "argument --lr: must be a positive number; got nan"),
    (dict(data_root="no-data"), "mnist was not found: there is no class-per-folder copy at "),
    (dict(out=blocked_folder), "cannot write to the output folder "),
    (dict(out=truncated_checkpoint, args=["--resume"]), "is damaged or truncated"),
], ids=["unknown model", "model for another data set", "negative epochs", "nan learning rate",
        "missing data", "unwritable output", "truncated checkpoint"])
def test_cli_errors(data_root, tmp_path, capsys, case, expected):
    root = tmp_path / case["data_root"] if "data_root" in case else data_root
    out = case["out"](tmp_path) if "out" in case else tmp_path / "out"
    argv = train_args(root, out, *case.get("args", []), epochs=case.get("epochs", EPOCHS))[3:]
    try:
        returncode = main(argv)  # argv without "python -m stn_utils.train"
    except SystemExit as stopped:  # argparse's exit
        returncode = stopped.code
    assert returncode == 2
    line = error_line(capsys.readouterr().err, expected)
    if "data_root" in case:  # names what to put where, and how to choose the folder and source here
        assert "/mnist/train/<class>/<image>" in line and "torchvision downloads mnist" in line
        assert "--data-root" in line and "--data-source" in line


@pytest.fixture(scope="module")
def subprocess_errors(data_root, tmp_path_factory):
    """Two error cases run as ``python -m stn_utils.train``, started at once: name -> (args, result)."""
    tmp = tmp_path_factory.mktemp("errors")
    cases = {
        "unknown data set": train_args(data_root, tmp / "out", "--dataset", "imagenet"),
        # one step per epoch: the one-cycle warm-up gives step 1 a learning rate of 0, so
        # epoch 1 is saved; the huge rate then blows the loss up by epoch 3
        "diverged": train_args(data_root, tmp / "diverged", "--lr", "1e30", "--train-subset", 32, epochs=3),
    }
    processes = {name: start(args) for name, args in cases.items()}
    return {name: (cases[name], process.communicate(timeout=120), process.returncode)
            for name, process in processes.items()}


@pytest.mark.parametrize("case, expected", [("unknown data set", "argument --dataset: invalid choice: 'imagenet'"),
                                            ("diverged", "the loss became")])
def test_cli_errors_in_a_subprocess(subprocess_errors, case, expected):
    args, (stdout, stderr), returncode = subprocess_errors[case]
    assert returncode == 2, stdout + stderr
    assert "Traceback" not in stderr
    line = error_line(stderr, expected)
    if case == "diverged":
        out = Path(args[args.index("--out") + 1])
        assert f"last good checkpoint is kept at {out / 'checkpoint.pt'}" in line
        state = load_checkpoint(out / "checkpoint.pt", build_model("mnist_cnn"))  # still loadable
        assert 1 <= state["epoch"] < 3 and not (out / "history.json").exists()


def test_resume_refuses_changed_settings_and_names_them(reference, data_root, tmp_path, capsys):
    out = tmp_path / "changed"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes((reference["out"] / "checkpoint.pt").read_bytes())
    returncode = main(train_args(data_root, out, "--resume", "--lr", "0.2")[3:])
    assert returncode == 2
    line = error_line(capsys.readouterr().err, "trained with another recipe")
    assert "lr: 0.05 -> 0.2" in line and "drop --resume, or choose a new --out" in line


def test_interrupt_before_the_first_checkpoint_does_not_advise_resume(data_root, tmp_path, capsys, monkeypatch):
    import stn_utils.train as cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "fit", interrupted)
    assert main(train_args(data_root, tmp_path / "new")[3:]) == 130
    err = capsys.readouterr().err
    assert "interrupted; no epoch had finished, so nothing was saved" in err and "--resume" not in err


def test_help_says_the_batch_size_is_per_process(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--batch-size is per process" in text and "raise --lr" in text
