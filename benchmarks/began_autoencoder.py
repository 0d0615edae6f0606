"""What does BEGAN's auto-encoder reconstruct well?  Its discriminator trained alone on the digits.

    python benchmarks/began_autoencoder.py --h 32 8 [--n 16] [--steps 500] [--lr 3e-4]

With k_t near 0 (the start of every BEGAN run) the discriminator is a plain auto-encoder and the
generator minimises L(G(z)) = |G(z) - D(G(z))|: it moves towards whatever the auto-encoder
reconstructs best.  If that is only digits, the generator is pulled onto the digits; if the
auto-encoder reconstructs nearly any image, and dark low-ink images best, nothing pulls the samples
towards the data.  For each embedding size ``h`` this trains ``AutoencoderDiscriminator`` (the
model's own class, Xavier init, Adam betas (0.5, 0.999), batch 32, seed 0, one thread) on
L(x) alone and prints the mean L1 reconstruction error of

* ``digits``: the 360 test digits (and, for the reconstructions, the harness CNN's classes
  covered and confident fraction: is the auto-encoder good enough to draw recognisable digits?);
* ``blank``: an all-background image (-1 everywhere), the darkest image there is;
* ``blobs``: 360 smooth random blobs (uniform noise, Gaussian-blurred, rescaled to the digits'
  mean and spread), images with the digits' ink but not their shapes;
* ``noise``: 360 images of uniform noise in [-1, 1].

A ratio ``blobs / digits`` near 1 means the auto-encoder reconstructs non-digits as well as
digits.  Results go to stdout as one JSON line per ``h`` (and to ``--out`` when given).
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


def _blobs(count: int, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Smooth random images with the mean and standard deviation of ``like``."""
    noise = torch.rand(count, 1, 32, 32, generator=generator)
    kernel = torch.exp(-torch.arange(-6, 7).float().square() / (2 * 2.5**2))
    kernel = kernel / kernel.sum()
    smooth = F.conv2d(noise, kernel.view(1, 1, 1, -1), padding=(0, 6))
    smooth = F.conv2d(smooth, kernel.view(1, 1, -1, 1), padding=(6, 0))
    smooth = (smooth - smooth.mean()) / smooth.std()
    return (smooth * like.std() + like.mean()).clamp(-1, 1)


def measure(h: int, n: int, steps: int, lr: float, cache_dir: str) -> dict:
    torch.manual_seed(0)
    ae = AutoencoderDiscriminator(32, 1, n, h)
    init_weights_(ae, "xavier")
    opt = torch.optim.Adam(ae.parameters(), lr=lr, betas=(0.5, 0.999))
    train = build_dataset("digits", None, 32, split="train").images
    test = build_dataset("digits", None, 32, split="test").images
    batches = torch.Generator().manual_seed(0)
    start = time.time()
    for _ in range(steps):
        x = train[torch.randint(0, len(train), (32,), generator=batches)]
        loss = (ae(x) - x).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    probes = torch.Generator().manual_seed(1)
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
        "h": h, "n": n, "steps": steps, "lr": lr, "seconds": round(time.time() - start, 1),
        **{f"L1_{name}": round(v, 4) for name, v in errors.items()},
        "blobs_over_digits": round(errors["blobs"] / errors["digits"], 3),
        "blank_over_digits": round(errors["blank"] / errors["digits"], 3),
        "recon_classes_covered": cnn["classes_covered"].value,
        "recon_confident_fraction": round(cnn["confident_fraction"].value, 3),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--h", type=int, nargs="+", default=[32, 8], help="embedding sizes to compare (default: 32 8)")
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--cache-dir", default="runs/cache", help="the harness classifier's cache")
    p.add_argument("--out", default=None, help="also append the JSON lines to this file")
    args = p.parse_args(argv)
    if min(args.h) < 1 or args.n < 1 or args.steps < 1 or args.lr <= 0:
        p.error(f"--h {args.h}, --n {args.n}, --steps {args.steps} and --lr {args.lr} must all be positive.")
    torch.set_num_threads(1)
    for h in args.h:
        row = json.dumps(measure(h, args.n, args.steps, args.lr, args.cache_dir))
        print(row, flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(row + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
