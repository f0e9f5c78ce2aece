"""What the benchmarks print about the machine they ran on: the CPU by name, its bf16
hardware, the thread count, the device and the torch version."""

from __future__ import annotations

import platform
from pathlib import Path

import torch


def _cpuinfo(key: str) -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() == key:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_name() -> str:
    """The CPU's model name with its family and model numbers, e.g. 'AMD EPYC (family 26,
    model 2)': virtual machines often shorten the name, and the numbers tell the generation."""
    name = _cpuinfo("model name") or platform.processor() or platform.machine()
    family, model = _cpuinfo("cpu family"), _cpuinfo("model")
    return f"{name} (family {family}, model {model})" if family else name


def bf16_hardware() -> str:
    """Which bfloat16 instructions the CPU has: 'AMX', 'AVX512-BF16' or 'none'."""
    flags = _cpuinfo("flags")
    found = [name for flag, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16")) if flag in flags.split()]
    return " + ".join(found) or "none"


def describe(device) -> str:
    """One line for the top of a benchmark's output."""
    gpu = f", {torch.cuda.get_device_name(device)}" if torch.device(device).type == "cuda" else ""
    return (f"{cpu_name()}, bf16 hardware: {bf16_hardware()}, {torch.get_num_threads()} torch threads, "
            f"device {device}{gpu}, torch {torch.__version__}")
