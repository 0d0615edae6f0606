"""One model's training step with and without ``channels_last``, on gan-train's other defaults.

    python benchmarks/channels_last_check.py [key=value ...]     # e.g. model=dcgan data=mnist5k

Builds the model as ``gan-train`` with the same arguments would (its dataset preset included), on one
random batch, and times 4 interleaved windows of 5 steps of each memory format after 2 warm-up steps;
prints the median step times and their ratio (channels-last over contiguous). Run it on a quiet machine.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from began_plugin.registry import create_model
from began_plugin.training.config import parse_args
from began_plugin.training.step import train_step


def main(argv: list[str]) -> int:
    cfg = parse_args(argv)
    real = torch.rand(cfg.batch_size, 1, cfg.image_size, cfg.image_size, generator=torch.Generator().manual_seed(0))
    real = real * 2 - 1

    def build(channels_last: bool):
        torch.manual_seed(0)
        model = create_model(cfg.model, image_size=cfg.image_size, channels=1, **cfg.model_hparams)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        return model, model.configure_optimizers()

    models = {cl: build(cl) for cl in (False, True)}
    batches = {False: real, True: real.contiguous(memory_format=torch.channels_last)}
    for cl, (model, opts) in models.items():
        for _ in range(2):
            train_step(model, opts, lambda b=batches[cl]: b)
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(4):
        for cl, (model, opts) in models.items():
            t0 = time.perf_counter()
            for _ in range(5):
                train_step(model, opts, lambda b=batches[cl]: b)
            times[cl].append((time.perf_counter() - t0) / 5)
    contiguous, channels_last = statistics.median(times[False]), statistics.median(times[True])
    print(
        f"{' '.join(argv) or '(gan-train defaults)'}: {torch.get_num_threads()} threads, contiguous "
        f"{contiguous:.4f} s, channels_last {channels_last:.4f} s per step, ratio {channels_last / contiguous:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
