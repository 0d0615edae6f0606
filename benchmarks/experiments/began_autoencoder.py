"""What does BEGAN's auto-encoder reconstruct well?  Its discriminator trained alone on the digits.

    python benchmarks/experiments/began_autoencoder.py [--h 32 8] [--steps 500] [--cache-dir DIR] [--out FILE]
                                                       [KEY=VALUE ...]

A research script, not the product.  With k_t near 0 (the start of every BEGAN run) the
discriminator is a plain auto-encoder and the generator minimises L(G(z)) = |G(z) - D(G(z))|: it
moves towards whatever the auto-encoder reconstructs best.  If that is only digits, the generator
is pulled onto the digits; if the auto-encoder reconstructs nearly any image, and dark low-ink
images best, nothing pulls the samples towards the data.  For each embedding size ``h`` this
trains BEGAN's ``AutoencoderDiscriminator`` on L(x) alone (one image per input, no packing; its
initialisation and optimizer are the model's) and prints the mean L1 reconstruction error of

* ``digits``: the 360 test digits (and, for the reconstructions, the harness CNN's classes
  covered and confident fraction: is the auto-encoder good enough to draw recognisable digits?);
* ``blank``: an all-background image (-1 everywhere), the darkest image there is;
* ``blobs``: 360 smooth random blobs (uniform noise, Gaussian-blurred, rescaled to the digits'
  mean and spread), images with the digits' ink but not their shapes;
* ``noise``: 360 images of uniform noise in [-1, 1].

KEY=VALUE are ``gan-train`` keys, read by its own parser on top of BEGAN's ``digits`` preset (n=16,
lr 3e-4; Adam betas (0.5, 0.999), Xavier init, batch 32 and seed 0 from the model's and the trainer's
defaults): ``model.n``, ``model.lr``, ``model.lr_d``, ``model.beta1``, ``model.beta2``, ``model.init``,
``model.skip``, ``batch_size``, ``seed``.  A ratio ``blobs / digits`` near 1 means the auto-encoder
reconstructs non-digits as well as digits.  Results go to stdout as one JSON line per ``h`` (and to
``--out`` when given).  One thread.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
import torch.nn.functional as F

from began_plugin.began.model import AutoencoderDiscriminator, init_weights_
from began_plugin.data import build_dataset
from began_plugin.metrics.coverage import coverage_metrics, load_or_train_classifier
from began_plugin.registry import create_model
from began_plugin.training.config import ConfigError, TrainConfig, parse_args

#: The gan-train keys that change this experiment; any other would be silently ignored.
PASSED_KEYS = (
    "model.n",
    "model.lr",
    "model.lr_d",
    "model.beta1",
    "model.beta2",
    "model.init",
    "model.skip",
    "batch_size",
    "seed",
)


def settings(overrides: list[str], hs: list[int]) -> TrainConfig:
    """The digits run's configuration under the overrides, checked by gan-train's parser and by BEGAN at each h."""
    keys = [item.split("=", 1)[0] for item in overrides if "=" in item]
    dropped = [k for k in keys if k not in PASSED_KEYS]
    if dropped:
        raise ConfigError(
            f"{dropped[0]!r} does not change this experiment; use --h for the embedding or one of {list(PASSED_KEYS)}."
        )
    cfg = parse_args(["model=began", "data=digits", *overrides])
    for h in hs:
        try:  # BEGAN refuses what its auto-encoder would (n, h, lr, init), before any training
            create_model("began", image_size=32, channels=1, **{**cfg.model_hparams, "h": h, "z_dim": h, "pack": 1})
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return cfg


def _blobs(count: int, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Smooth random images with the mean and standard deviation of ``like``."""
    noise = torch.rand(count, 1, 32, 32, generator=generator)
    kernel = torch.exp(-torch.arange(-6, 7).float().square() / (2 * 2.5**2))
    kernel = kernel / kernel.sum()
    smooth = F.conv2d(noise, kernel.view(1, 1, 1, -1), padding=(0, 6))
    smooth = F.conv2d(smooth, kernel.view(1, 1, -1, 1), padding=(6, 0))
    smooth = (smooth - smooth.mean()) / smooth.std()
    return (smooth * like.std() + like.mean()).clamp(-1, 1)


def measure(h: int, cfg: TrainConfig, steps: int, cache_dir: str) -> dict:
    hp = cfg.model_hparams
    torch.manual_seed(cfg.seed)
    ae = AutoencoderDiscriminator(32, 1, hp["n"], h, hp["skip"])
    init_weights_(ae, hp["init"])
    # the model's own discriminator optimizer (its class, rate and betas), over this auto-encoder
    reference = create_model("began", image_size=32, channels=1, **{**hp, "h": h, "z_dim": h, "pack": 1})
    reference = reference.configure_optimizers()["discriminator"]
    opt = type(reference)(ae.parameters(), **reference.defaults)
    train = build_dataset("digits", None, 32, split="train").images
    test = build_dataset("digits", None, 32, split="test").images
    batches = torch.Generator().manual_seed(cfg.seed)
    start = time.time()
    for _ in range(steps):
        x = train[torch.randint(0, len(train), (cfg.batch_size,), generator=batches)]
        loss = (ae(x) - x).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    probes = torch.Generator().manual_seed(cfg.seed + 1)
    inputs = {
        "digits": test,
        "blank": -torch.ones(1, 1, 32, 32),
        "blobs": _blobs(len(test), test, probes),
        "noise": torch.rand(len(test), 1, 32, 32, generator=probes) * 2 - 1,
    }
    with torch.no_grad():
        errors = {name: float((ae(x) - x).abs().mean()) for name, x in inputs.items()}
        recon = ae(test).clamp(-1, 1)
    cnn = coverage_metrics(load_or_train_classifier(cache_dir, "digits", None, 32), recon)
    return {
        "h": h,
        "n": hp["n"],
        "steps": steps,
        "lr": reference.defaults["lr"],
        "batch_size": cfg.batch_size,
        "seed": cfg.seed,
        "seconds": round(time.time() - start, 1),
        **{f"L1_{name}": round(v, 4) for name, v in errors.items()},
        "blobs_over_digits": round(errors["blobs"] / errors["digits"], 3),
        "blank_over_digits": round(errors["blank"] / errors["digits"], 3),
        "recon_classes_covered": cnn["classes_covered"].value,
        "recon_confident_fraction": round(cnn["confident_fraction"].value, 3),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--h", type=int, nargs="+", default=[32, 8], help="embedding sizes to compare (default: 32 8)")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--cache-dir", default="runs/cache", help="the harness classifier's cache")
    p.add_argument("--out", default=None, help="also append the JSON lines to this file")
    p.add_argument("overrides", nargs="*", help=f"gan-train KEY=VALUE, one of {', '.join(PASSED_KEYS)}")
    args = p.parse_intermixed_args(argv)
    try:
        if args.steps < 1:
            raise ConfigError(f"--steps {args.steps} must be a positive number of steps.")
        cfg = settings(args.overrides, args.h)
    except ConfigError as exc:
        print(f"began_autoencoder.py: error: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    for h in args.h:
        row = json.dumps(measure(h, cfg, args.steps, args.cache_dir))
        print(row, flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(row + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
