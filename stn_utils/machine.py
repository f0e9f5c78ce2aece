"""The machine a notebook ran on, in one line; and one setting that makes CPU training faster.

Each notebook's setup cell prints ``describe_machine()`` next to the device, so its stored
outputs say which CPU produced their timings; ``tools/readme_results.py`` copies that line
under the README's table of results. :func:`keep_freed_memory` is what
:func:`stn_utils.training.fit` calls before training on a CPU.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from pathlib import Path

__all__ = ["cpu_model", "cpu_generation", "bf16_hardware", "describe_machine", "keep_freed_memory"]


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


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt's parameter numbers, from glibc's malloc.h
_kept = False


def keep_freed_memory() -> bool:
    """Make the C allocator keep the memory a process frees, for reuse, instead of handing
    it back to the operating system (Linux with glibc only; elsewhere, and with
    ``STN_KEEP_FREED_MEMORY=0`` in the environment, nothing changes). Returns whether the
    setting is in force.

    Every training step on a CPU allocates and frees the same large activation tensors
    (63 MB for one of the course's CIFAR-10 layers at batch 512). By default glibc serves
    each allocation above 32 MB with a fresh ``mmap`` and returns it with ``munmap``, so the
    next step touches brand-new pages and the kernel zero-fills each one on first touch
    (``benchmarks/freed_memory.py`` measures what that costs a step). With ``mmap`` turned
    off for the main thread's allocations and the heap trimmed only once 1 GB lies free at
    its top, later steps reuse the pages of earlier ones.

    The cost, for the rest of the process (a notebook's kernel included; it cannot be
    undone): memory freed in the heap stays with the process, and the heap can grow a few
    hundred MB beyond what the largest step needs before it settles. Threads other than
    the main one still map allocations above 64 MB afresh. Where another allocator
    replaces glibc's (jemalloc or tcmalloc through ``LD_PRELOAD``) the setting does nothing,
    although it reports ``True``. Safe to call more than once.
    """
    global _kept
    if _kept:
        return True
    if os.environ.get("STN_KEEP_FREED_MEMORY") == "0":
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        _kept = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2 ** 30))
    except (OSError, AttributeError):
        return False
    return _kept
