"""stn_utils.machine: the one-line machine description the notebooks' setup cells print, and
the allocator setting that fit uses on a CPU."""

import os
import platform
import subprocess
import sys

import pytest

from stn_utils import machine

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC   7B13 64-Core Processor
flags\t\t: fpu vme

processor\t: 1
model name\t: AMD EPYC 7B13 64-Core Processor
"""


def test_cpu_model_reads_the_first_model_name_line(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    assert machine.cpu_model(path) == "AMD EPYC 7B13 64-Core Processor"


def test_cpu_model_falls_back_to_platform(tmp_path, monkeypatch):
    monkeypatch.setattr(platform, "processor", lambda: "arm")
    assert machine.cpu_model(tmp_path / "missing") == "arm"
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nmodel name\t:\n")   # present but empty
    assert machine.cpu_model(tmp_path / "cpuinfo") == "arm"
    monkeypatch.setattr(platform, "processor", lambda: "")
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    assert machine.cpu_model(tmp_path / "missing") == "x86_64"
    monkeypatch.setattr(platform, "machine", lambda: "")
    assert machine.cpu_model(tmp_path / "missing") == "unknown CPU"


def test_describe_machine_names_the_cpu_and_its_cores(tmp_path, monkeypatch):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert machine.describe_machine(path) == "AMD EPYC 7B13 64-Core Processor, 2 cores"
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert machine.describe_machine(path).endswith(", 1 core")
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert machine.describe_machine(path).endswith(", unknown core count")


def test_describe_machine_on_this_machine_is_one_line():
    line = machine.describe_machine()
    assert line and "\n" not in line and "core" in line


def test_cpu_generation_and_bf16_hardware_from_cpuinfo(tmp_path):
    from stn_utils.machine import bf16_hardware, cpu_generation
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\ncpu family\t: 26\nmodel\t\t: 2\nflags\t\t: fpu avx2 avx512_bf16\n")
    assert cpu_generation(info) == "family 26, model 2" and bf16_hardware(info) == "AVX512-BF16"
    info.write_text("flags\t\t: fpu amx_bf16 avx512_bf16\n")
    assert cpu_generation(info) == "" and bf16_hardware(info) == "AMX + AVX512-BF16"
    assert bf16_hardware(tmp_path / "missing") == "none"


FREED_TENSOR_FAULTS = """
import resource, sys, torch
from stn_utils.machine import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "kept" else False
for _ in range(12):  # a 64 MB tensor, freed at once; the heap settles within the first few
    torch.ones(2 ** 24)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    torch.ones(2 ** 24)
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="the allocator setting is for Linux with glibc")
def test_keep_freed_memory_lets_a_large_tensor_reuse_the_pages_of_a_freed_one():
    faults = {}
    for setting in ("default", "kept"):
        out = subprocess.run([sys.executable, "-c", FREED_TENSOR_FAULTS, setting], capture_output=True, text=True,
                             check=True).stdout.split()
        faults[setting] = (out[0], int(out[1]))
    assert faults["default"][0] == "False" and faults["default"][1] > 3 * 8000  # 16,384 fresh 4 KB pages each
    assert faults["kept"] == ("True", pytest.approx(0, abs=500))


def test_keep_freed_memory_changes_nothing_off_glibc_or_when_turned_off(monkeypatch):
    monkeypatch.setattr(machine, "_kept", False)
    monkeypatch.setenv("STN_KEEP_FREED_MEMORY", "0")
    assert machine.keep_freed_memory() is False
    monkeypatch.delenv("STN_KEEP_FREED_MEMORY")
    monkeypatch.setattr(machine.sys, "platform", "darwin")
    assert machine.keep_freed_memory() is False
    monkeypatch.setattr(machine.sys, "platform", "linux")
    monkeypatch.setattr(machine.platform, "libc_ver", lambda: ("musl", "1.2"))
    assert machine.keep_freed_memory() is False
