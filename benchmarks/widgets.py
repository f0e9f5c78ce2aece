"""How long one slider move of the theta explorer takes to redraw; prints one table.

    python benchmarks/widgets.py            # 60 moves per row, about 30 s
    python benchmarks/widgets.py --moves 200

A move sets one slider's value, as a drag does; the widget's observer then recomputes
theta, warps the image, updates the figure and encodes the PNG the browser shows. That
whole kernel-side redraw is timed (the target is 100 ms). The trip over the websocket
and the browser's decoding are not included; tests/test_browser.py checks the redraw
really reaches the page.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from stn_utils.widgets import ThetaExplorer

TARGET_MS = 100.0


def time_moves(explorer: ThetaExplorer, slider: str, values, mode: str) -> list[float]:
    explorer.mode.value = mode
    sliders = explorer.sliders if mode == "parametrised" else explorer.raw_sliders
    timings = []
    for value in values:
        started = time.perf_counter()
        sliders[slider].value = float(value)  # the observer redraws synchronously
        timings.append((time.perf_counter() - started) * 1e3)
    return timings


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--moves", type=int, default=60, help="slider moves timed per row")
    args = parser.parse_args(argv)
    if args.moves < 2:
        parser.error("--moves must be at least 2")

    generator = torch.Generator().manual_seed(0)
    images = {"CIFAR-size RGB 32x32": torch.rand(3, 32, 32, generator=generator),
              "MNIST-size grey 28x28": torch.rand(1, 28, 28, generator=generator),
              "photo-size RGB 256x256": torch.rand(3, 256, 256, generator=generator)}
    rows = [("rotation", torch.linspace(-170, 170, args.moves), "parametrised"),
            ("scale_x", torch.linspace(0.3, 1.9, args.moves), "parametrised"),
            ("tx", torch.linspace(-1.5, 1.5, args.moves), "raw theta")]
    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}; {args.moves} moves per row, after one warm-up move")
    print("| image | slider | median ms | 95th percentile ms | max ms | within 100 ms |")
    print("|---|---|---|---|---|---|")
    for label, image in images.items():
        explorer = ThetaExplorer(image)
        for slider, values, mode in rows:
            time_moves(explorer, slider, values[:1], mode)  # warm-up: first-use costs
            timings = sorted(time_moves(explorer, slider, values, mode))
            p95 = timings[min(len(timings) - 1, round(0.95 * (len(timings) - 1)))]
            print(f"| {label} | {slider} ({mode}) | {statistics.median(timings):.1f} | {p95:.1f} | "
                  f"{timings[-1]:.1f} | {'yes' if p95 <= TARGET_MS else 'NO'} |", flush=True)
            explorer.reset()


if __name__ == "__main__":
    main()
