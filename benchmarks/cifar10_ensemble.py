"""Do two trained models together reach what one does not? Notebook 05's two stored models
(its CNN and its STN-CNN, each trained with ``stn_utils.recipes.CIFAR10`` for 18 epochs),
tested alone and as an ensemble on CIFAR-10's test images.

    python benchmarks/cifar10_ensemble.py       # about a minute on 2 cores; trains nothing

Every model is tested as the recipe tests it (mirror images and one-pixel shifts,
``tta_level=2``, and the recipe's precision); the ensemble averages the members' class
probabilities. The weights are the stored ones, kept in fp16, so a single model's accuracy
can differ by a tenth of a point or so from the one notebook 05 measured on its fp32
weights. Nothing is saved: the table depends only on the stored weights and on the
precision the hardware gives (bf16 where it is native, else fp32).
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from machine import describe
from stn_utils.data import load_dataset
from stn_utils.models import build_model
from stn_utils.recipes import CIFAR10
from stn_utils.stored import NOTEBOOK_RUNS, load_run
from stn_utils.training import pick_device, predict_probabilities

MEMBERS = {"course CNN": "cifar_cnn", "course STN-CNN": "cifar_stn"}


def ensemble_rows(members: dict[str, torch.Tensor], labels: torch.Tensor) -> list[tuple[str, float]]:
    """``(name, accuracy)`` of every member (its probabilities (N, classes) in ``members``)
    and, last, of all of them together (the mean of their probabilities)."""
    rows = [(name, (probs.argmax(1) == labels).float().mean().item()) for name, probs in members.items()]
    together = torch.stack(list(members.values())).mean(0)
    rows.append((" + ".join(members), (together.argmax(1) == labels).float().mean().item()))
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: the fastest there is)")
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    test = load_dataset("cifar10", "test")
    print(f"# {describe(device)}; test {len(test)} images", flush=True)
    members = {}
    for name, builder in MEMBERS.items():
        model = build_model(builder)
        # the notebook trained with the recipe, testing without test-time views after each epoch
        try:
            load_run(f"{NOTEBOOK_RUNS}/05-{builder}", model, model=builder, model_kwargs={},
                     recipe=dataclasses.replace(CIFAR10, tta_level=0).to_dict())
        except ValueError as error:
            parser.error(f"notebook 05's stored {name} was not trained with recipes.CIFAR10 as it is now ({error}); "
                         f"run notebook 05 in full and store its runs with `python tools/stored_runs.py --take "
                         f"notebooks/runs/05-cifar_cnn notebooks/runs/05-cifar_stn`.")
        model = model.to(device)
        if CIFAR10.channels_last:
            model = model.to(memory_format=torch.channels_last)
        members[name] = predict_probabilities(model, test, tta_level=CIFAR10.tta_level, precision=CIFAR10.precision,
                                              channels_last=CIFAR10.channels_last, device=device)
    print("| model | test accuracy, with flip + shift TTA |")
    print("|---|---|")
    for name, accuracy in ensemble_rows(members, test.labels):
        print(f"| {name} | {accuracy:.2%} |")


if __name__ == "__main__":
    main()
