"""Record the SHA-256 of every stored run file in stn_utils/stored_runs.json.

    python tools/stored_runs.py           # after a benchmark run: record its files
    python tools/stored_runs.py --take notebooks/runs/05-cifar_cnn notebooks/runs/05-cifar_stn
                                          # after a notebook's full run: store its models, record them
    python tools/stored_runs.py --check   # exit status 1, naming the files, while they disagree

The stored files are the distorted-MNIST benchmark's rows and weights
(benchmarks/results/distorted_mnist/*.json and *.pt) and the rows of its comparison of the
recipe's choices (benchmarks/results/distorted_mnist_choices/*.json), which notebook 06 loads,
the MNIST-addition and CIFAR-10-canvas benchmarks' rows and weights
(benchmarks/results/mnist_addition/ and cifar10_canvas/), which notebooks 08 and 07 load, the
CIFAR-10 benchmark's rows (benchmarks/results/cifar10/*.json), which notebook 05 prints, and
the notebooks' own models (notebooks/stored/*.pt and *.json, see stn_utils.stored.save_run).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stn_utils.stored import MANIFEST, NOTEBOOK_RUNS, sha256  # noqa: E402

FOLDERS = ["benchmarks/results/distorted_mnist", "benchmarks/results/distorted_mnist_choices",
           "benchmarks/results/mnist_addition", "benchmarks/results/cifar10_canvas", "benchmarks/results/cifar10",
           NOTEBOOK_RUNS]


def current() -> dict[str, str]:
    files = sorted(p for folder in FOLDERS for pattern in ("*.json", "*.pt") for p in (ROOT / folder).glob(pattern))
    return {p.relative_to(ROOT).as_posix(): sha256(p) for p in files}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if the record is stale")
    parser.add_argument("--take", nargs="+", default=[], metavar="RUN",
                        help="copy these saved runs (path without .pt/.json) into the stored runs first")
    args = parser.parse_args(argv)
    for run in map(Path, args.take):
        files = [run.with_name(run.name + suffix) for suffix in (".pt", ".json")]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            sys.exit(f"no saved run {run}: missing {', '.join(missing)}. Give the path without its suffix, "
                     f"e.g. notebooks/runs/05-cifar_cnn.")
        (ROOT / NOTEBOOK_RUNS).mkdir(parents=True, exist_ok=True)
        for file in files:
            shutil.copyfile(file, ROOT / NOTEBOOK_RUNS / file.name)
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
