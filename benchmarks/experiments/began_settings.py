"""Which BEGAN settings cover the embedded digits?  The sweep behind ``began_settings.md`` beside this script.

    python benchmarks/experiments/began_settings.py --out runs/settings [--steps 600] [--seeds 0] [--jobs 2]
                                                    [--only NAME,...] [--data shapes] [--cache-dir DIR]

A research script, not the product (the benchmark is ``benchmarks/compare.py``).  Each setting is a
``gan-train`` run with the harness's arguments (``began_plugin.harness.train_args``: steps, batch,
logging, the host features), one thread per run so ``--jobs 2`` fills 2 cores; an unfinished run
resumes.  Then 1,000 samples from a seeded z (seed 12345) are classified twice: by the harness's
coverage CNN (``cnn_*``: the same computation as the harness's ``classes_covered``, ``class_kl`` and
``confident_fraction``, cached under ``--cache-dir``) and by a logistic regression fitted on the
digits training split, images at 32 px average-pooled back to 8x8 and the samples likewise, which
the first version of the table used (``logreg_*``: a class counts when at least 1% of the samples
are assigned to it with p >= 0.9; digits only).  Both test-split accuracies are printed with the
table.  Also reported: the final k_t, the fraction of logged steps at k_t = 0, the final M_global and
the wall time; with several seeds, the mean classes covered per setting.

Every setting is BASE plus its overrides.  BASE is the paper's BEGAN (the model's own defaults: the
``digits`` preset set back to them) narrowed to n=16, h=z=32; an override of None leaves the key to
the data's preset, so ``default`` is what ``gan-train`` runs with no arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
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

from began_plugin.began.model import BEGAN
from began_plugin.harness import Protocol, train_args
from began_plugin.training.checkpoint import safe_load
from began_plugin.training.config import ConfigError, TrainConfig, parse_args

#: The z the samples are drawn from (the harness draws from EVAL_SEED_OFFSET + the training seed instead).
SAMPLE_SEED = 12345
NUM_SAMPLES = 1000
#: Host keys a setting may change; every other key is a BEGAN hyper-parameter (``model.KEY``).
HOST_KEYS = ("batch_size", "ema_decay", "lr_anneal")


def _paper() -> dict:
    """Every key of BEGAN's ``digits`` preset at the model's (or, for host keys, the trainer's) own default."""
    model = {f.name: f.default for f in dataclasses.fields(BEGAN.Hparams)}
    trainer = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    return {
        key: model[key[len("model.") :]] if key.startswith("model.") else trainer[key]
        for key in BEGAN.dataset_defaults("digits")
    }


# The digits preset departs from the paper, so BASE undoes it: every setting below is "the paper's
# algorithm and settings, narrowed to n=16, h=z=32, plus these overrides".
BASE = {**_paper(), "model.n": 16, "model.h": 32, "model.z_dim": 32}


def _h8_anneal(*, cs: float, gamma: float, lambda_k: float) -> dict:
    """h = z = 8, lr 3e-4, BEGAN-CS alpha ``cs`` and the preset's rate anneal (None: the preset's fraction)."""
    return {
        "model.gamma": gamma,
        "model.lambda_k": lambda_k,
        "model.lr": 3e-4,
        "model.latent_constraint": cs,
        "model.h": 8,
        "model.z_dim": 8,
        "lr_anneal": None,
    }


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
    "gamma1.0_lambda_k0.01_lr3e-4_kaiming": {
        "model.gamma": 1.0,
        "model.lambda_k": 0.01,
        "model.lr": 3e-4,
        "model.init": "kaiming",
    },
    # BEGAN-CS (Chang et al. 2018): the latent constraint, alpha = 0.1 as its authors (h must equal z_dim).
    "cs0.1_gamma1.0_lambda_k0.01": {"model.gamma": 1.0, "model.lambda_k": 0.01, "model.latent_constraint": 0.1},
    "cs0.1_gamma1.0_lambda_k0.01_lr3e-4": {
        "model.gamma": 1.0,
        "model.lambda_k": 0.01,
        "model.lr": 3e-4,
        "model.latent_constraint": 0.1,
    },
    "cs0.1_paper": {"model.latent_constraint": 0.1},
    # A tighter embedding (h = z = 8 instead of 32), with and without BEGAN-CS.
    "cs0.1_gamma1.0_lambda_k0.01_lr3e-4_h8": {
        "model.gamma": 1.0,
        "model.lambda_k": 0.01,
        "model.lr": 3e-4,
        "model.latent_constraint": 0.1,
        "model.h": 8,
        "model.z_dim": 8,
    },
    "gamma1.0_lambda_k0.01_lr3e-4_h8": {
        "model.gamma": 1.0,
        "model.lambda_k": 0.01,
        "model.lr": 3e-4,
        "model.h": 8,
        "model.z_dim": 8,
    },
    # The learning rate annealed linearly to 0 over the second half of the run.
    "cs0.1_gamma1.0_lambda_k0.01_lr3e-4_h8_anneal": _h8_anneal(cs=0.1, gamma=1.0, lambda_k=0.01),
    # Two attempts at the classes the annealed setting still misses (0 and 6): a stronger latent
    # constraint, and a faster k_t controller.
    "cs0.3_gamma1.0_lambda_k0.01_lr3e-4_h8_anneal": _h8_anneal(cs=0.3, gamma=1.0, lambda_k=0.01),
    "cs0.1_gamma1.0_lambda_k0.05_lr3e-4_h8_anneal": _h8_anneal(cs=0.1, gamma=1.0, lambda_k=0.05),
    # The generated shapes collapse to near-black images under the digits preset: a fast k_t controller
    # at the paper's gamma, and a stronger latent constraint.
    "cs0.1_gamma0.5_lambda_k0.1_lr3e-4_h8_anneal": _h8_anneal(cs=0.1, gamma=0.5, lambda_k=0.1),
    "cs0.5_gamma1.0_lambda_k0.01_lr3e-4_h8_anneal": _h8_anneal(cs=0.5, gamma=1.0, lambda_k=0.01),
    # What `gan-train` runs with no arguments (the data's preset, nothing overridden).
    "default": {key: None for key in BASE},
}


def setting_protocol(overrides: dict, data: str, steps: int) -> Protocol:
    """The harness protocol of one setting: BASE, then the overrides, None keys resolved to the data's preset."""
    chosen = {**BASE, **overrides}
    unknown = [k for k in chosen if not k.startswith("model.") and k not in HOST_KEYS]
    if unknown:
        raise ConfigError(f"setting key {unknown[0]!r} is neither model.KEY nor one of {list(HOST_KEYS)}.")
    preset = BEGAN.dataset_defaults(data)
    trainer = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    host = {k: preset.get(k, trainer[k]) if chosen.get(k) is None else chosen[k] for k in HOST_KEYS}
    hparams = {k[len("model.") :]: v for k, v in chosen.items() if k.startswith("model.") and v is not None}
    return Protocol(data=data, steps=steps, models=("began",), model_hparams={"began": hparams}, **host)


def _command(protocol: Protocol, seed: int, run: Path) -> list[str]:
    return train_args(protocol, "began", seed, run, "auto")


def run_setting(name: str, protocol: Protocol, out: Path, seed: int) -> dict:
    """Train (or finish) one setting's ``gan-train`` run in its own one-thread process; its training numbers."""
    run = out / f"{name}-seed{seed}"
    args = _command(protocol, seed, run)
    ckpt = run / "checkpoints" / "latest.pt"
    start = time.perf_counter()
    if not (ckpt.exists() and int(safe_load(ckpt)["step"]) >= protocol.steps):
        resume = ["resume=true"] if (run / "config.json").exists() else []
        env = dict(os.environ, OMP_NUM_THREADS="1")
        proc = subprocess.run(
            [sys.executable, "-m", "began_plugin", *args, *resume], capture_output=True, text=True, env=env
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{name}: {proc.stderr[-500:]}")
    wall = time.perf_counter() - start
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    k_zero = sum(1 for r in rows if r["k"] == 0.0) / len(rows)
    return {
        "name": name,
        "seed": seed,
        "command": "gan-train " + " ".join(args),
        "wall_s": round(wall, 1),
        "final_k": rows[-1]["k"],
        "k_zero_fraction": round(k_zero, 3),
        "final_M": rows[-1]["M_global"],
    }


def _pool(images: torch.Tensor) -> np.ndarray:
    return F.adaptive_avg_pool2d((images.float() + 1) / 2, 8).flatten(1).numpy()


def logreg_classifier():
    """(classifier, test accuracy, test class prior), fitted on the training split seen as samples are: 32 px pooled to 8x8."""
    from sklearn.linear_model import LogisticRegression

    from began_plugin.data import build_dataset

    train = build_dataset("digits", None, 32, split="train")
    test = build_dataset("digits", None, 32, split="test")
    clf = LogisticRegression(max_iter=10000, C=100.0).fit(_pool(train.images), train.labels.numpy())
    prior = np.bincount(test.labels.numpy(), minlength=10) / len(test)
    return clf, float(clf.score(_pool(test.images), test.labels.numpy())), prior


def logreg_coverage(images: torch.Tensor, clf, prior: np.ndarray) -> dict[str, float]:
    """The logistic regression's coverage of images (N x 1 x 32 x 32 in [-1, 1]); not the harness's CNN metrics."""
    proba = clf.predict_proba(_pool(images))
    conf = proba.max(1) >= 0.9
    counts = np.bincount(proba.argmax(1)[conf], minlength=10)
    hist = np.bincount(proba.argmax(1), minlength=10) / len(proba)
    eps = 1e-6
    kl = float(np.sum(hist * np.log((hist + eps) / (prior + eps))))
    return {
        "logreg_classes_covered": int((counts >= 0.01 * len(proba)).sum()),
        "logreg_class_kl": kl,
        "logreg_confident_fraction": float(conf.mean()),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/settings")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--seeds", default="0")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--only", help="comma-separated setting names")
    p.add_argument("--data", default="digits", choices=("digits", "shapes"), help="the dataset (default: digits)")
    p.add_argument(
        "--cache-dir", default=None, help="where the harness's coverage classifier is cached (default: OUT/cache)"
    )
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    names = args.only.split(",") if args.only else list(SETTINGS)
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        print(
            f"began_settings.py: error: unknown setting {unknown[0]!r}; expected one of {list(SETTINGS)}.",
            file=sys.stderr,
        )
        return 2
    out = Path(args.out)
    seeds = [int(s) for s in args.seeds.split(",")]
    try:
        protocols = {n: setting_protocol(SETTINGS[n], args.data, args.steps) for n in names}
        for n, protocol in protocols.items():  # a bad setting stops the sweep before any run starts
            parse_args(_command(protocol, seeds[0], out / n))
    except ConfigError as exc:
        print(f"began_settings.py: error: {exc}", file=sys.stderr)
        return 2
    jobs = [(n, s) for n in names for s in seeds]
    with ThreadPoolExecutor(args.jobs) as pool:  # the threads only wait on one-thread gan-train processes
        results = list(pool.map(lambda job: run_setting(job[0], protocols[job[0]], out, job[1]), jobs))

    from began_plugin.metrics.coverage import coverage_metrics, load_or_train_classifier
    from began_plugin.training.sample import generate, load_run

    clf, acc, prior = logreg_classifier() if args.data == "digits" else (None, float("nan"), None)
    cnn = load_or_train_classifier(args.cache_dir or str(out / "cache"), args.data, None, 32)
    nan = {k: float("nan") for k in ("logreg_classes_covered", "logreg_class_kl", "logreg_confident_fraction")}
    for r in results:
        images = generate(load_run(out / f"{r['name']}-seed{r['seed']}"), NUM_SAMPLES, seed=SAMPLE_SEED)
        r.update(logreg_coverage(images, clf, prior) if clf is not None else nan)
        r.update({f"cnn_{k}": v.value for k, v in coverage_metrics(cnn, images).items()})
    base = {**BASE, "data": args.data, "steps": args.steps}
    lines = [
        f"Classifiers: the harness's CNN (cnn_*, test accuracy {cnn.test_accuracy:.4f}) and a logistic regression on "
        f"8x8 digits (logreg_*, test accuracy {acc:.3f}; digits only); {NUM_SAMPLES:,} samples (seed {SAMPLE_SEED}). "
        f"BASE = {json.dumps(base)}.",
        "",
        "| setting | seed | cnn_classes_covered | cnn_class_kl | logreg_classes_covered | logreg_class_kl "
        "| logreg_confident_fraction | final k | k=0 fraction | final M | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['name']} | {r['seed']} | {r['cnn_classes_covered']:.0f} | {r['cnn_class_kl']:.3f} | "
            f"{r['logreg_classes_covered']} | {r['logreg_class_kl']:.3f} | "
            f"{r['logreg_confident_fraction']:.2f} | {r['final_k']:.4f} | {r['k_zero_fraction']:.2f} | "
            f"{r['final_M']:.3f} | {r['wall_s']} |"
        )
    if len(seeds) > 1:
        lines += [
            "",
            "| setting | seeds | mean cnn_classes_covered | mean logreg_classes_covered |",
            "|---|---|---|---|",
        ]
        for name in names:
            rs = [r for r in results if r["name"] == name]
            lines.append(
                f"| {name} | {len(rs)} | {np.mean([r['cnn_classes_covered'] for r in rs]):.2f} | "
                f"{np.mean([r['logreg_classes_covered'] for r in rs]):.2f} |"
            )
    table = "\n".join(lines) + "\n"
    (out / "settings.md").write_text(table)
    (out / "settings.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
