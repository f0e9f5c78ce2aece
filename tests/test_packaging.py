"""The wheel that `pip install git+<repo>` builds (as on Colab) holds the whole package."""

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_contains_every_module(tmp_path):
    # --no-build-isolation: build with the installed setuptools (no registry needed)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(tmp_path), str(REPO)], check=True, capture_output=True)
    wheel, = tmp_path.glob("stn_utils-*.whl")
    packed = {name for name in zipfile.ZipFile(wheel).namelist() if name.endswith(".py")}
    on_disk = {path.relative_to(REPO).as_posix() for path in (REPO / "stn_utils").rglob("*.py")}
    assert on_disk - packed == set(), f"missing from the wheel: {sorted(on_disk - packed)}"
