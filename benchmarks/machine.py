"""What the benchmarks print about the machine they ran on: the CPU by name and generation,
its bf16 hardware, the thread count, the device and the torch version."""

from __future__ import annotations

import torch

from stn_utils.machine import bf16_hardware, cpu_generation, cpu_model


def cpu_name() -> str:
    """The CPU's model name with its family and model numbers, e.g. 'AMD EPYC (family 26, model 2)'."""
    generation = cpu_generation()
    return f"{cpu_model()} ({generation})" if generation else cpu_model()


def describe(device) -> str:
    """One line for the top of a benchmark's output."""
    gpu = f", {torch.cuda.get_device_name(device)}" if torch.device(device).type == "cuda" else ""
    return (f"{cpu_name()}, bf16 hardware: {bf16_hardware()}, {torch.get_num_threads()} torch threads, "
            f"device {device}{gpu}, torch {torch.__version__}")
