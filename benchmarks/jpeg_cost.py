"""What one more JPEG compression of CIFAR-10 costs the course's recipe: a proxy for what the
first one cost.

    python benchmarks/jpeg_cost.py                # every row (about 8 min each on 2 cores with AMX)
    python benchmarks/jpeg_cost.py --table        # the table of the saved rows; trains nothing
    python benchmarks/jpeg_cost.py --smoke --results /tmp/rows   # a few-minute check of the pipeline

The CIFAR-10 copy the course's benchmarks read was re-encoded as JPEG (its files carry
libjpeg's quality-75 tables and 4:2:0 chroma; its provider reports about 30 dB PSNR against
the original images), and without the originals the cost of that compression cannot be
measured. What can be measured is the cost of a second
one: every training and test image of this copy encoded again with the same encoder
settings, its 8x8 block grid moved by ``OFFSET`` pixels (edges reflected) so that the second
compression discards detail the first kept, instead of repeating the first's rounding. Each
row trains ``benchmarks/cifar10.py``'s ``stn-10-epochs`` row (the STN-CNN, the course's
recipe cut to airbench's 10 epochs) on such a copy, seed 0, and tests it on the copy's
test images; the table sets it beside that row's saved result on the copy itself (the
change is shown only where the two share a recipe and image counts).

Rows are saved as ``<results>/<ROW>.json`` the moment they finish, as the other row
benchmarks do (``--rerun`` trains them again).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import cifar10
from machine import describe
from saved_rows import add_row_options, check_row_options, read_rows, refuse_stale_rows, train_missing
from stn_utils.data import ImageDataset
from stn_utils.training import pick_device

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "jpeg_cost"
BASE_ROW = "stn-10-epochs"  # benchmarks/cifar10.py's row that each row here re-trains on recompressed data
OFFSET = 4                  # pixels the block grid moves: half a luma block


@dataclasses.dataclass(frozen=True)
class Compression:
    """One more JPEG pass: Pillow's ``quality`` (1-95), the block grid moved by ``offset``
    pixels (0-7: 0 keeps the grid, which nearly repeats the first pass's rounding; 8 would put
    it back), and the chroma subsampling."""

    quality: int
    offset: int = OFFSET
    subsampling: str = "4:2:0"  # this copy's chroma subsampling

    def __post_init__(self):
        if not (isinstance(self.quality, int) and 1 <= self.quality <= 95):
            raise ValueError(f"Compression.quality must be a whole number from 1 to 95; got {self.quality!r}.")
        if not (isinstance(self.offset, int) and 0 <= self.offset <= 7):
            raise ValueError(f"Compression.offset must be 0 to 7 pixels (an 8x8 block further puts the grid "
                             f"back where it was); got {self.offset!r}.")


ROWS = {"q75-shifted": Compression(75), "q90-shifted": Compression(90), "q50-shifted": Compression(50)}


def recompress(images: torch.Tensor, compression: Compression) -> torch.Tensor:
    """(N, 3, H, W) uint8 -> the same images after one more JPEG encoding and decoding.

    Each image is padded by ``offset`` reflected pixels above and to the left, so that the
    encoder's 8x8 blocks start ``offset`` pixels earlier than before, encoded with Pillow at
    ``quality`` and ``subsampling``, decoded, and cropped back to (H, W)."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"recompress expects uint8 RGB images (N, 3, H, W); got {images.dtype} "
                         f"{tuple(images.shape)}.")
    shift = compression.offset
    pixels = images.permute(0, 2, 3, 1).numpy()
    out = np.empty_like(pixels)
    for i, image in enumerate(pixels):
        padded = np.pad(image, ((shift, 0), (shift, 0), (0, 0)), mode="reflect")
        buffer = io.BytesIO()
        Image.fromarray(padded).save(buffer, format="JPEG", quality=compression.quality,
                                     subsampling=compression.subsampling)
        out[i] = np.asarray(Image.open(buffer).convert("RGB"))[shift:, shift:]
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def psnr(a: torch.Tensor, b: torch.Tensor, chunk: int = 5000) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 image sets, over all their pixels (summed
    ``chunk`` images at a time, so that 50,000 images need no float copy of the whole set)."""
    squared = sum(float((x.int() - y.int()).pow(2).sum()) for x, y in zip(a.split(chunk), b.split(chunk)))
    mse = squared / a.numel()
    return math.inf if mse == 0 else 10 * math.log10(255 ** 2 / mse)


def row_description(key: str, *, epochs=None) -> str:
    """The base row's description, with the compression of row ``key``."""
    compression = ROWS[key]
    return (f"{cifar10.row_setup(BASE_ROW, epochs=epochs)[2]}, data encoded again at JPEG quality "
            f"{compression.quality} (grid moved {compression.offset} px)")


def train_row(key: str, train: ImageDataset, test: ImageDataset, device, *, epochs=None) -> dict:
    compression = ROWS[key]
    changed = [ImageDataset(recompress(data.images, compression), data.labels, data.classes) for data in (train, test)]
    row = cifar10.train_row(BASE_ROW, *changed, device, epochs=epochs)
    return {**row, "row": key, "base_row": BASE_ROW, "compression": dataclasses.asdict(compression),
            "description": row_description(key, epochs=epochs),
            "psnr_train": psnr(changed[0].images, train.images), "psnr_test": psnr(changed[1].images, test.images)}


def row_differences(key: str, saved: dict, *, train_images: int, test_images: int, epochs=None) -> list[str]:
    differences = cifar10.row_differences(BASE_ROW, saved, train_images=train_images, test_images=test_images,
                                          description=row_description(key, epochs=epochs), epochs=epochs)
    now = dataclasses.asdict(ROWS[key])
    if saved.get("compression") != now:
        differences.append(f"compression: {saved.get('compression')!r} -> {now!r}")
    return differences


def print_table(rows: list[dict], base: dict | None) -> None:
    print("| data | PSNR against this copy (train / test) | epochs | wall time | test accuracy | "
          "with flip + shift TTA | change |")
    print("|---|---|---|---|---|---|---|")
    if base:
        print(f"| this copy (`{BASE_ROW}` of benchmarks/cifar10.py) | - | {base['epochs']} | "
              f"{base['seconds'] / 60:.1f} min | {base['accuracy']['0']:.2%} | {base['accuracy']['2']:.2%} | |")
    rows = [row for row in rows if "compression" in row]
    for row in sorted(rows, key=lambda row: -row["compression"]["quality"]):  # lightest first
        c = row["compression"]
        comparable = base and all(base.get(key) == row.get(key) for key in ("recipe", "train_images", "test_images"))
        change = f"{100 * (row['accuracy']['2'] - base['accuracy']['2']):+.2f} points" if comparable else "-"
        print(f"| encoded again, quality {c['quality']}, {c['subsampling']}, grid moved {c['offset']} px | "
              f"{row['psnr_train']:.1f} / {row['psnr_test']:.1f} dB | {row['epochs']} | "
              f"{row['seconds'] / 60:.1f} min | {row['accuracy']['0']:.2%} | {row['accuracy']['2']:.2%} | {change} |")
    print(cifar10.ran_on(rows))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    add_row_options(parser, results=RESULTS, items="images")
    args = parser.parse_args(argv)
    check_row_options(parser, args, results=RESULTS)
    base_file = cifar10.RESULTS / f"{BASE_ROW}.json"
    base = json.loads(base_file.read_text()) if base_file.is_file() and args.results.resolve() == RESULTS.resolve() \
        else None  # the course's own row compares only with the course's rows
    if args.table:
        print_table(read_rows(args.results), base)
        return
    train, test = cifar10.load_cifar10(args)
    if not args.rerun:
        refuse_stale_rows(parser, args.rows, lambda key: args.results / f"{key}.json",
                          lambda key, saved: row_differences(key, saved, train_images=len(train),
                                                             test_images=len(test), epochs=args.epochs))
    device = pick_device(args.device)
    print(f"# {describe(device)}; train {len(train)}, test {len(test)} images", flush=True)
    args.results.mkdir(parents=True, exist_ok=True)
    train_missing(args.rows, lambda key: args.results / f"{key}.json",
                  lambda key: train_row(key, train, test, device, epochs=args.epochs),
                  rerun=args.rerun, summary=lambda row: f"{row['row']}: {row['accuracy']['2']:.2%}, "
                                                        f"{row['seconds'] / 60:.1f} min")
    print_table([row for row in read_rows(args.results) if row["row"] in args.rows], base)


if __name__ == "__main__":
    main()
