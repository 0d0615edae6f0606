"""Which BEGAN settings cover the embedded digits? A sweep that regenerates benchmarks/began_settings.md.

    python benchmarks/began_settings.py --out runs/settings [--steps 600] [--jobs 2] [--only NAME,...]
                                        [--data shapes]

Each setting trains BEGAN on the digits (32 px) with ``gan-train``, draws 1,000 samples
from a seeded z and classifies them twice: with the harness's coverage classifier
(``began_plugin.metrics.coverage``, the CNN behind ``classes_covered`` in
``benchmarks/compare.py``, cached under ``--cache-dir``) and with a logistic-regression
classifier fitted on the digits training split (images at 32 px average-pooled back to 8x8,
the samples likewise), which the first version of this table used; ``--data shapes`` trains on the
generated shapes instead and scores with the CNN only.  Both test-split
accuracies are printed with the table.  Reported per setting: classes covered (a class
counts when at least 1% of the samples are confidently (p >= 0.9) assigned to it),
KL(generated || real) class histograms, the confident fraction, the final k_t and the wall
time; with several seeds, a summary line per setting gives the mean classes covered.  Runs
use one thread each so ``--jobs 2`` fills 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]

# The digits preset changes γ and λ_k, so BASE states the paper's values: every setting below is
# "the paper's algorithm and settings, narrowed to n=16, h=z=32, plus these overrides".
BASE = {"model": "began", "data": "digits", "image_size": 32, "batch_size": 32, "model.n": 16, "model.h": 32,
        "model.z_dim": 32, "model.gamma": 0.5, "model.lambda_k": 0.001, "model.lr": 1e-4,
        "model.latent_constraint": 0.0, "model.lr_anneal_end": 0, "model.pack": 1,
        "model.ema_decay": 0.0}


def _h8_anneal(*, cs: float, gamma: float, lambda_k: float) -> dict:
    """h = z = 8, lr 3e-4, BEGAN-CS alpha ``cs`` and the preset's rate anneal (None: the preset's steps)."""
    return {"model.gamma": gamma, "model.lambda_k": lambda_k, "model.lr": 3e-4, "model.latent_constraint": cs,
            "model.h": 8, "model.z_dim": 8, "model.lr_anneal_end": None}


#: name -> overrides on top of BASE (the paper's γ=0.5, λ_k=0.001, Adam 1e-4, xavier init unless changed).
SETTINGS: dict[str, dict] = {
    "paper": {},
    "init_pytorch": {"model.init": "pytorch"},
    "init_kaiming": {"model.init": "kaiming"},
    "gamma0.7": {"model.gamma": 0.7},
    "gamma1.0": {"model.gamma": 1.0},
    "lr3e-4": {"model.lr": 3e-4},
    "lr3e-5": {"model.lr": 3e-5},
    "beta1_0.9": {"model.beta1": 0.9},
    "batch16": {"batch_size": 16},
    "skip": {"model.skip": True},
    "lambda_k0.01": {"model.lambda_k": 0.01},
    "n32": {"model.n": 32},
    "gamma1.0_lambda_k0.01": {"model.gamma": 1.0, "model.lambda_k": 0.01},
    "gamma0.7_lambda_k0.01": {"model.gamma": 0.7, "model.lambda_k": 0.01},
    "gamma1.0_lambda_k0.1": {"model.gamma": 1.0, "model.lambda_k": 0.1},
    "gamma1.0_lambda_k0.01_lr3e-4": {"model.gamma": 1.0, "model.lambda_k": 0.01, "model.lr": 3e-4},
    "gamma1.0_lambda_k0.01_lr3e-4_kaiming": {"model.gamma": 1.0, "model.lambda_k": 0.01, "model.lr": 3e-4,
                                             "model.init": "kaiming"},
    # BEGAN-CS (Chang et al. 2018): the latent constraint, alpha = 0.1 as its authors (h must equal z_dim).
    "cs0.1_gamma1.0_lambda_k0.01": {"model.gamma": 1.0, "model.lambda_k": 0.01, "model.latent_constraint": 0.1},
    "cs0.1_gamma1.0_lambda_k0.01_lr3e-4": {"model.gamma": 1.0, "model.lambda_k": 0.01, "model.lr": 3e-4,
                                           "model.latent_constraint": 0.1},
    "cs0.1_paper": {"model.latent_constraint": 0.1},
    # A tighter embedding (h = z = 8 instead of 32), with and without BEGAN-CS: the digits preset is the first.
    "cs0.1_gamma1.0_lambda_k0.01_lr3e-4_h8": {"model.gamma": 1.0, "model.lambda_k": 0.01, "model.lr": 3e-4,
                                              "model.latent_constraint": 0.1, "model.h": 8, "model.z_dim": 8},
    "gamma1.0_lambda_k0.01_lr3e-4_h8": {"model.gamma": 1.0, "model.lambda_k": 0.01, "model.lr": 3e-4,
                                        "model.h": 8, "model.z_dim": 8},
    # The learning rate annealed linearly to 0 over the second half of the run (steps/2 to steps).
    "cs0.1_gamma1.0_lambda_k0.01_lr3e-4_h8_anneal": _h8_anneal(cs=0.1, gamma=1.0, lambda_k=0.01),
    # Two attempts at the classes the annealed preset still misses (0 and 6): a stronger latent
    # constraint, and a faster k_t controller.
    "cs0.3_gamma1.0_lambda_k0.01_lr3e-4_h8_anneal": _h8_anneal(cs=0.3, gamma=1.0, lambda_k=0.01),
    "cs0.1_gamma1.0_lambda_k0.05_lr3e-4_h8_anneal": _h8_anneal(cs=0.1, gamma=1.0, lambda_k=0.05),
    # The generated shapes collapse to near-black images under the digits preset: a fast k_t controller
    # at the paper's gamma, and a stronger latent constraint.
    "cs0.1_gamma0.5_lambda_k0.1_lr3e-4_h8_anneal": _h8_anneal(cs=0.1, gamma=0.5, lambda_k=0.1),
    "cs0.5_gamma1.0_lambda_k0.01_lr3e-4_h8_anneal": _h8_anneal(cs=0.5, gamma=1.0, lambda_k=0.01),
    # What `gan-train` runs with no arguments (the digits preset, nothing overridden).
    "default": {key: None for key in BASE if key.startswith("model.")},
}


def _pool(images: torch.Tensor) -> np.ndarray:
    return F.adaptive_avg_pool2d((images.float() + 1) / 2, 8).flatten(1).numpy()


def _classifier():
    """Fitted on the training split seen exactly as samples are: 32 px, pooled back to 8x8."""
    from sklearn.linear_model import LogisticRegression

    from began_plugin.data import build_dataset

    train = build_dataset("digits", None, 32, split="train")
    test = build_dataset("digits", None, 32, split="test")
    clf = LogisticRegression(max_iter=10000, C=100.0).fit(_pool(train.images), train.labels.numpy())
    prior = np.bincount(test.labels.numpy(), minlength=10) / len(test)
    return clf, float(clf.score(_pool(test.images), test.labels.numpy())), prior


def coverage(images: torch.Tensor, clf, prior: np.ndarray) -> dict[str, float]:
    """images: N x 1 x 32 x 32 in [-1, 1]."""
    proba = clf.predict_proba(_pool(images))
    conf = proba.max(1) >= 0.9
    counts = np.bincount(proba.argmax(1)[conf], minlength=10)
    hist = np.bincount(proba.argmax(1), minlength=10) / len(proba)
    eps = 1e-6
    kl = float(np.sum(hist * np.log((hist + eps) / (prior + eps))))
    return {"classes_covered": int((counts >= 0.01 * len(proba)).sum()), "class_kl": kl,
            "confident_fraction": float(conf.mean())}


def run_setting(name: str, overrides: dict, out: Path, steps: int, seed: int, data: str = "digits") -> dict:
    run = out / f"{name}-seed{seed}"
    args = {**BASE, "data": data, **overrides, "steps": steps, "seed": seed, "out": str(run), "sample_every": steps,
            "checkpoint_every": steps, "log_every": 10}
    args = {k: v for k, v in args.items() if v is not None}  # None: leave the key to the preset
    cmd = [sys.executable, "-m", "began_plugin", *[f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in args.items()]]
    start = time.perf_counter()
    if not (run / "checkpoints" / "latest.pt").exists():
        env = dict(os.environ, OMP_NUM_THREADS="1")
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"{name}: {proc.stderr[-500:]}")
    wall = time.perf_counter() - start
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    k_zero = sum(1 for r in rows if r["k"] == 0.0) / len(rows)
    return {"name": name, "seed": seed, "command": " ".join(cmd[2:]), "wall_s": round(wall, 1),
            "final_k": rows[-1]["k"], "k_zero_fraction": round(k_zero, 3), "final_M": rows[-1]["M_global"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/settings")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--seeds", default="0")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--only", help="comma-separated setting names")
    p.add_argument("--data", default="digits", choices=("digits", "shapes"), help="the dataset (default: digits)")
    p.add_argument("--cache-dir", default=None, help="where the harness's coverage classifier is cached (default: OUT/cache)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    names = args.only.split(",") if args.only else list(SETTINGS)
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        print(f"began_settings.py: error: unknown setting {unknown[0]!r}; expected one of {list(SETTINGS)}.", file=sys.stderr)
        return 2
    out = Path(args.out)
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = [(n, s) for n in names for s in seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda job: run_setting(job[0], SETTINGS[job[0]], out, args.steps, job[1], args.data),
                                jobs))
    from began_plugin.training.sample import generate, load_run

    from began_plugin.metrics.coverage import coverage_metrics, load_or_train_classifier

    clf, acc, prior = _classifier() if args.data == "digits" else (None, float("nan"), None)
    cnn = load_or_train_classifier(args.cache_dir or str(out / "cache"), args.data, None, 32)
    for r in results:
        images = generate(load_run(out / f"{r['name']}-seed{r['seed']}"), 1000, seed=12345)
        r.update(coverage(images, clf, prior) if clf is not None else
                 {"classes_covered": float("nan"), "class_kl": float("nan"), "confident_fraction": float("nan")})
        r.update({f"cnn_{k}": v.value for k, v in coverage_metrics(cnn, images).items()})
    lines = [f"Classifiers: the harness's CNN (test accuracy {cnn.test_accuracy:.4f}) and logistic regression on "
             f"8x8 digits (test accuracy {acc:.3f}; digits only); 1,000 samples. Data {args.data}, {args.steps} steps, "
             f"BASE = {json.dumps({**BASE, 'data': args.data})}.", "",
             "| setting | seed | classes covered (CNN) | class KL (CNN) | classes covered (logistic) | class KL (logistic) "
             "| confident (logistic) | final k | k=0 fraction | final M | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['name']} | {r['seed']} | {r['cnn_classes_covered']:.0f} | {r['cnn_class_kl']:.3f} | "
                     f"{r['classes_covered']} | {r['class_kl']:.3f} | "
                     f"{r['confident_fraction']:.2f} | {r['final_k']:.4f} | {r['k_zero_fraction']:.2f} | "
                     f"{r['final_M']:.3f} | {r['wall_s']} |")
    if len(seeds) > 1:
        lines += ["", "| setting | seeds | mean classes covered (CNN) | mean classes covered (logistic) |", "|---|---|---|---|"]
        for name in names:
            rs = [r for r in results if r["name"] == name]
            lines.append(f"| {name} | {len(rs)} | {np.mean([r['cnn_classes_covered'] for r in rs]):.2f} | "
                         f"{np.mean([r['classes_covered'] for r in rs]):.2f} |")
    table = "\n".join(lines) + "\n"
    (out / "settings.md").write_text(table)
    (out / "settings.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
