"""Which classes a trained BEGAN draws, and how well its discriminator reconstructs each class.

    python benchmarks/experiments/began_classes.py RUN [RUN ...] [--cache-dir DIR] [--num-samples 1000]
                                                   [--raw-generator]

A research script, not the product.  For each ``gan-train`` run directory on labelled in-memory data
(digits, shapes): the share of the generated samples the harness's CNN assigns to each class, how
many of them it assigns with p >= 0.9 (``confident``), how many of those also lie inside the real
test images' k-NN manifold (``counted``; a class is *covered* when that count reaches 1% of the
samples, the harness's ``classes_covered`` rule), and, for BEGAN, the discriminator's mean L1
reconstruction error on the real test images of each class.  The samples are the ones the harness
scores (z seed ``began_plugin.harness.EVAL_SEED_OFFSET`` + the run's training seed), so a cell's
``classes_covered`` can be read class by class.  ``--raw-generator`` scores G's own weights where
the run samples from a moving average of G (``ema_decay`` > 0).  One thread.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from began_plugin.data import build_dataset
from began_plugin.harness import EVAL_SEED_OFFSET
from began_plugin.metrics import coverage
from began_plugin.training.checkpoint import CheckpointError
from began_plugin.training.config import ConfigError
from began_plugin.training.sample import generate, load_run


def per_class(probs: torch.Tensor, inside: torch.Tensor | None = None) -> dict[str, list]:
    """probs: N x K class probabilities, inside: N (in the real manifold) or None -> per class: argmax share,
    confident count, count also inside (the harness's; all confident ones without ``inside``), covered."""
    n, k = probs.shape
    pred, _, confident, _ = coverage.class_counts(probs)
    _, _, counted, covered = coverage.class_counts(probs, inside)
    return {
        "share": [round(float(c) / n, 3) for c in torch.bincount(pred, minlength=k)],
        "confident": confident.tolist(),
        "counted": counted.tolist(),
        "covered": covered.tolist(),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--cache-dir", default="runs/cache", help="the harness classifier's cache")
    p.add_argument("--num-samples", type=int, default=1000)
    p.add_argument("--raw-generator", action="store_true", help="sample from G, not from its moving average")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    try:
        models = [
            (
                run,
                load_run(Path(run), average=not args.raw_generator),
                json.loads((Path(run) / "config.json").read_text()),
            )
            for run in args.runs
        ]
    except (ConfigError, CheckpointError, FileNotFoundError) as exc:
        print(f"began_classes.py: error: {exc}", file=sys.stderr)
        return 2
    tests: dict[tuple, tuple] = {}  # (dataset, root, image size) -> (classifier, test images, labels)
    for run, model, cfg in models:
        data = (cfg["data"]["name"], cfg["data"].get("root"), cfg["image_size"])
        if data not in tests:
            test = build_dataset(*data, split="test")
            tests[data] = (coverage.load_or_train_classifier(args.cache_dir, *data), test.images.float(), test.labels)
        clf, real, labels = tests[data]
        images = generate(model, args.num_samples, seed=EVAL_SEED_OFFSET + cfg["seed"])
        probs, inside, _ = coverage.classify_in_manifold(clf, images)  # against the test split, as the harness's
        row = {"run": run, "data": data[0], "seed": cfg["seed"], **per_class(probs, inside)}
        if hasattr(model, "discriminator") and cfg["model"] == "began":
            row["real_l1"] = [_reconstruction_l1(model, real[labels == c]) for c in range(clf.num_classes)]
        print(json.dumps(row), flush=True)
    return 0


def _reconstruction_l1(model, images: torch.Tensor) -> float:
    """BEGAN's L(x) on these images (with model.pack > 1: on packs of them, the last incomplete pack dropped)."""
    m = getattr(model.hparams, "pack", 1)
    packed = model.pack_images(images[: len(images) // m * m])
    with torch.no_grad():
        return round(float((model.discriminator(packed) - packed).abs().mean()), 4)


if __name__ == "__main__":
    sys.exit(main())
