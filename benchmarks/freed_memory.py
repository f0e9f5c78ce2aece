"""What keeping freed memory buys a CPU training step (``stn_utils.machine.keep_freed_memory``).

    python benchmarks/freed_memory.py                 # 3 rounds of 20 steps per setting, about 3 minutes
    python benchmarks/freed_memory.py --steps 5 --rounds 1 --batch 64   # a quick check

Each setting trains the course's CIFAR-10 CNN (``cifar_cnn``) or STN-CNN for ``--steps``
steps of the recipe's batch on random images, with bf16 autocast where the CPU has it and
channels-last memory, in a fresh Python process of its own, because the allocator setting
holds for a whole process and cannot be undone. The settings take turns, ``--rounds``
times, so that a slow spell of a shared machine hits both alike; the table gives the
median per setting: wall time per step, CPU time per step in user and kernel mode, and
page faults per step (each a freshly mapped page the kernel had to zero). Nothing is saved.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from machine import describe
from stn_utils.machine import keep_freed_memory
from stn_utils.models import build_model
from stn_utils.recipes import CIFAR10
from stn_utils.training import autocast_dtype

SETTINGS = {"default": "glibc's default (mmap for allocations above 32 MB)",
            "kept": "keep_freed_memory() (what fit does on a CPU)"}


def time_steps(model_name: str, batch: int, steps: int, kept: bool) -> dict:
    """Time ``steps`` training steps (after three untimed ones) in this process."""
    if kept and not keep_freed_memory():
        raise SystemExit("keep_freed_memory() has no effect here (it needs Linux with glibc).")
    torch.manual_seed(0)
    model = build_model(model_name).to(memory_format=torch.channels_last)
    model.prepare(torch.rand(2000, 3, 32, 32))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    labels = torch.randint(10, (batch,))
    dtype = autocast_dtype(CIFAR10.precision, "cpu")

    def step():
        images = torch.rand(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(steps):
        step()
    seconds, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
    return {"wall": seconds / steps, "user": (after.ru_utime - before.ru_utime) / steps,
            "system": (after.ru_stime - before.ru_stime) / steps,
            "faults": (after.ru_minflt - before.ru_minflt) / steps}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("cifar_cnn", "cifar_stn"), default="cifar_cnn")
    parser.add_argument("--batch", type=int, default=CIFAR10.batch_size)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=list(SETTINGS), help=argparse.SUPPRESS)  # one setting, in this process
    args = parser.parse_args(argv)
    if min(args.batch, args.steps, args.rounds) < 1:
        parser.error("--batch, --steps and --rounds must be at least 1")
    if args.child:
        print(json.dumps(time_steps(args.model, args.batch, args.steps, args.child == "kept")))
        return

    print(f"# {describe('cpu')}; {args.model}, batch {args.batch}, {args.steps} steps per round, "
          f"{args.rounds} rounds", flush=True)
    results = {setting: [] for setting in SETTINGS}
    for _ in range(args.rounds):
        for setting in SETTINGS:
            child = subprocess.run([sys.executable, __file__, "--child", setting, "--model", args.model,
                                    "--batch", str(args.batch), "--steps", str(args.steps)],
                                   capture_output=True, text=True, check=True)
            results[setting].append(json.loads(child.stdout.splitlines()[-1]))
    print("| allocator | ms per step | user CPU ms per step | kernel CPU ms per step | page faults per step |")
    print("|---|---|---|---|---|")
    median = {setting: {key: statistics.median(run[key] for run in runs) for key in runs[0]}
              for setting, runs in results.items()}
    for setting, values in median.items():
        print(f"| {SETTINGS[setting]} | {1000 * values['wall']:.0f} | {1000 * values['user']:.0f} | "
              f"{1000 * values['system']:.0f} | {values['faults']:,.0f} |")
    print(f"# step time, kept / default: {median['kept']['wall'] / median['default']['wall']:.2f}x")


if __name__ == "__main__":
    main()
