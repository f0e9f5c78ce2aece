"""Record the SHA-256 of every stored run file in stn_utils/stored_runs.json.

    python tools/stored_runs.py           # after a benchmark run: record its files
    python tools/stored_runs.py --check   # exit status 1, naming the files, while they disagree

The stored files are the distorted-MNIST benchmark's rows and weights
(benchmarks/results/distorted_mnist/*.json and *.pt), which notebook 06 loads.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stn_utils.stored import MANIFEST, sha256  # noqa: E402

FOLDERS = ["benchmarks/results/distorted_mnist"]


def current() -> dict[str, str]:
    files = sorted(p for folder in FOLDERS for pattern in ("*.json", "*.pt") for p in (ROOT / folder).glob(pattern))
    return {p.relative_to(ROOT).as_posix(): sha256(p) for p in files}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if the record is stale")
    args = parser.parse_args(argv)
    hashes = current()
    recorded = json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {}
    if args.check:
        stale = sorted(set(hashes.items()) ^ set(recorded.items()))
        if stale:
            sys.exit("stn_utils/stored_runs.json disagrees with these files; run `python tools/stored_runs.py`:\n"
                     + "\n".join(sorted({name for name, _ in stale})))
        print(f"{len(hashes)} stored files, all recorded")
        return
    MANIFEST.write_text(json.dumps(hashes, indent=1) + "\n")
    print(f"recorded {len(hashes)} files in {MANIFEST.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
