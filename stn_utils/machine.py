"""The machine a notebook ran on, in one line.

Each notebook's setup cell prints ``describe_machine()`` next to the device, so its stored
outputs say which CPU produced their timings; ``tools/readme_results.py`` copies that line
under the README's table of results.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["cpu_model", "cpu_generation", "bf16_hardware", "describe_machine"]


def cpu_model(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str:
    """The CPU's model name: the first ``model name`` line of ``cpuinfo`` (Linux), else
    ``platform.processor()`` (macOS, Windows), else ``platform.machine()``, else ``"unknown CPU"``."""
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return " ".join(value.split())
    except OSError:
        pass
    return platform.processor().strip() or platform.machine().strip() or "unknown CPU"


def describe_machine(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str:
    """The CPU's model name and its number of logical cores, e.g. ``"AMD EPYC, 2 cores"``."""
    cores = os.cpu_count()
    count = f"{cores} core{'s' if cores != 1 else ''}" if cores else "unknown core count"
    return f"{cpu_model(cpuinfo)}, {count}"


def _cpuinfo_field(key: str, cpuinfo) -> str:
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key:
                return value.strip()
    except OSError:
        pass
    return ""


def cpu_generation(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str:
    """``"family F, model M"`` as the CPU reports them (empty where unknown): virtual
    machines often shorten the model name, and these numbers still tell the generation."""
    family, model = _cpuinfo_field("cpu family", cpuinfo), _cpuinfo_field("model", cpuinfo)
    return f"family {family}, model {model}" if family else ""


def bf16_hardware(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str:
    """The CPU's bfloat16 instructions: ``"AMX"``, ``"AVX512-BF16"``, both, or ``"none"``
    (where bf16 autocast is emulated, and slower than fp32)."""
    flags = _cpuinfo_field("flags", cpuinfo).split()
    found = [name for flag, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16")) if flag in flags]
    return " + ".join(found) or "none"
