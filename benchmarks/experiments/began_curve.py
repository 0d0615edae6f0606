"""Coverage of one BEGAN run on the embedded digits *during* training: a row every ``--every`` steps.

    python benchmarks/experiments/began_curve.py NAME [--steps 3000] [--every 250] [--out runs/curves]
                                                 [--cache-dir DIR] [--device auto] [KEY=VALUE ...]

A research script, not the product.  ``began_settings.py`` scores finished runs; this one shows
*when* a setting collapses or spreads.  The run is a ``gan-train`` run trained in parts of
``--every`` steps with the harness's ``train_cell`` (a resumed run gives the same bits as one
uninterrupted run, so scoring between parts changes nothing); after each part 1,000 samples of a
fixed z (seed 12345) are scored by the harness's coverage CNN (``cnn_*``, as its
``classes_covered``, ``class_kl`` and ``confident_fraction``) and by the logistic regression of
``began_settings.py`` (``logreg_*``), with ``div``, the mean pairwise L2 distance of 200 samples
(real test digits: 19.1).  Samples come from what the run samples from (its moving average of G
when ``ema_decay`` > 0).

KEY=VALUE are ``gan-train`` keys, read by its own parser: ``model.KEY`` (BEGAN's hyper-parameters),
``batch_size``, ``seed``, ``ema_decay``, ``lr_anneal``.  They apply on top of BASE: the paper's BEGAN
(the model's own defaults: the ``digits`` preset set back to them) narrowed to n=16, h=z=32, with
γ=1.0 and λ_k=0.01.  Each row has the step, wall seconds, the part's last logged values (k, the
losses, the rates) and the scores; rows go to ``OUT/NAME.jsonl``, sample grids to
``OUT/NAME_STEP.png``, the run to ``OUT/NAME/``.  Rerunning the command resumes an unfinished run.
One thread, so two runs fill two cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from began_plugin.began.model import BEGAN
from began_plugin.harness import HarnessStopped, Protocol, train_cell
from began_plugin.metrics.coverage import coverage_metrics, load_or_train_classifier
from began_plugin.training.checkpoint import safe_load
from began_plugin.training.config import ConfigError, TrainConfig, parse_args
from began_plugin.training.sample import generate, load_run

SAMPLE_SEED = 12345
NUM_SAMPLES = 1000
#: The trainer keys this script passes on to the run; every other key would be silently dropped.
PASSED_KEYS = ("batch_size", "seed", "ema_decay", "lr_anneal")


def _paper() -> dict:
    """Every key of BEGAN's ``digits`` preset at the model's (or, for host keys, the trainer's) own default."""
    model = {f.name: f.default for f in dataclasses.fields(BEGAN.Hparams)}
    trainer = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    return {
        key: model[key[len("model.") :]] if key.startswith("model.") else trainer[key]
        for key in BEGAN.dataset_defaults("digits")
    }


BASE = {**_paper(), "model.n": 16, "model.h": 32, "model.z_dim": 32, "model.gamma": 1.0, "model.lambda_k": 0.01}


def curve_protocol(overrides: list[str], steps: int) -> tuple[Protocol, int]:
    """(the harness protocol of the run, its seed) from KEY=VALUE overrides on top of BASE, checked by gan-train's parser."""
    base = [f"{k}={v}" for k, v in BASE.items()]
    cfg = parse_args(["model=began", "data=digits", f"steps={steps}", *base, *overrides])
    keys = [item.split("=", 1)[0] for item in overrides]
    dropped = [k for k in keys if not k.startswith("model.") and k not in PASSED_KEYS]
    if dropped:
        raise ConfigError(
            f"{dropped[0]!r} is not a key this script passes on; use model.KEY or one of {list(PASSED_KEYS)}."
        )
    hparams = {
        k[len("model.") :]: v
        for k, v in (item.split("=", 1) for item in base + list(overrides))
        if k.startswith("model.")
    }
    protocol = Protocol(
        data="digits",
        image_size=32,
        steps=steps,
        batch_size=cfg.batch_size,
        models=("began",),
        ema_decay=cfg.ema_decay,
        lr_anneal=cfg.lr_anneal,
        model_hparams={"began": hparams},
    )
    return protocol, cfg.seed


def _pool(images: torch.Tensor) -> np.ndarray:
    return F.adaptive_avg_pool2d((images.float() + 1) / 2, 8).flatten(1).numpy()


def logreg_classifier():
    """began_settings.py's logistic regression on the training split pooled to 8x8: (classifier, test class prior)."""
    from sklearn.linear_model import LogisticRegression

    from began_plugin.data import build_dataset

    train = build_dataset("digits", None, 32, split="train")
    test = build_dataset("digits", None, 32, split="test")
    clf = LogisticRegression(max_iter=10000, C=100.0).fit(_pool(train.images), train.labels.numpy())
    return clf, np.bincount(test.labels.numpy(), minlength=10) / len(test)


def logreg_coverage(images: torch.Tensor, clf, prior: np.ndarray) -> dict[str, float]:
    """began_settings.py's logistic-regression coverage (a class counts at 1% of the samples with p >= 0.9)."""
    proba = clf.predict_proba(_pool(images))
    conf = proba.max(1) >= 0.9
    counts = np.bincount(proba.argmax(1)[conf], minlength=10)
    hist = np.bincount(proba.argmax(1), minlength=10) / len(proba)
    kl = float(np.sum(hist * np.log((hist + 1e-6) / (prior + 1e-6))))
    return {
        "logreg_classes_covered": int((counts >= 0.01 * len(proba)).sum()),
        "logreg_class_kl": kl,
        "logreg_confident_fraction": float(conf.mean()),
    }


def _kept_rows(log: Path, run_dir: Path, parts: list[int]) -> list[dict]:
    """The rows of an earlier call that its checkpoint still backs; refuses a run whose scores are lost."""
    ckpt = run_dir / "checkpoints" / "latest.pt"
    done = int(safe_load(ckpt)["step"]) if ckpt.exists() else 0
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    rows = [r for r in rows if r["step"] <= done]
    lost = [s for s in parts if s <= done and s not in {r["step"] for r in rows}]
    if lost:
        raise ConfigError(
            f"{run_dir} is trained to step {done} but {log.name} has no row for step {lost[0]}; "
            f"delete both to start again."
        )
    return rows


def _logged(run_dir: Path, step: int) -> dict[str, float]:
    """The run's logged numbers at ``step`` (the trainer always logs a part's last step)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    row = [r for r in rows if r["step"] == step][-1]
    return {
        k: round(float(v), 4)
        for k, v in row.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("step", "images_per_s")
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--every", type=int, default=250)
    p.add_argument("--out", default="runs/curves")
    p.add_argument("--cache-dir", default=None, help="the harness classifier's cache (default: OUT/cache)")
    p.add_argument("--device", default="auto", help="where the run trains (scoring is on the CPU)")
    p.add_argument(
        "overrides", nargs="*", help="gan-train KEY=VALUE: model.KEY, batch_size, seed, ema_decay, lr_anneal"
    )
    args = p.parse_intermixed_args(argv)
    if args.steps < 1 or args.every < 1:
        p.error(f"--steps {args.steps} and --every {args.every} must both be positive.")
    torch.set_num_threads(1)
    out = Path(args.out)
    run_dir, log_path = out / args.name, out / f"{args.name}.jsonl"
    parts = [*range(args.every, args.steps + 1, args.every)]
    parts += [args.steps] if parts[-1:] != [args.steps] else []
    try:
        protocol, seed = curve_protocol(args.overrides, args.steps)
        rows = _kept_rows(log_path, run_dir, parts)
    except ConfigError as exc:
        print(f"began_curve.py: error: {exc}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    clf, prior = logreg_classifier()
    cnn = load_or_train_classifier(args.cache_dir or str(out / "cache"), "digits", None, 32)
    start, before = time.time(), rows[-1]["t"] if rows else 0
    with open(log_path, "w") as log:
        log.write("".join(json.dumps(r) + "\n" for r in rows))
        for step in [s for s in parts if s not in {r["step"] for r in rows}]:
            try:
                train_cell(protocol, "began", seed, run_dir, args.device, until=step)
            except ConfigError as exc:  # e.g. resuming with another --steps, which changes the run's schedule
                print(f"began_curve.py: error: {exc}", file=sys.stderr)
                return 2
            except HarnessStopped as exc:
                print(f"began_curve.py: stopped: {exc}", file=sys.stderr)
                return 128 + exc.signal_number
            images = generate(load_run(run_dir), NUM_SAMPLES, seed=SAMPLE_SEED)
            row = {"step": step, "t": round(before + time.time() - start), **_logged(run_dir, step)}
            row.update(logreg_coverage(images, clf, prior))
            torchvision.utils.save_image((images[:64] + 1) / 2, out / f"{args.name}_{step}.png", nrow=8)
            row.update({f"cnn_{k}": round(v.value, 3) for k, v in coverage_metrics(cnn, images).items()})
            row["div"] = round(float(torch.pdist(images[:200].flatten(1)).mean()), 3)
            print(args.name, json.dumps(row), flush=True)
            log.write(json.dumps(row) + "\n")
            log.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
