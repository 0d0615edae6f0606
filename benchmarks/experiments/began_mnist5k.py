"""Which BEGAN settings draw MNIST at DCGAN's wall time?  The study behind ``began_mnist5k.md`` beside this script.

    python benchmarks/experiments/began_mnist5k.py --out DIR [--only NAME,...] [--num-samples 2000]
                                                   [--cache-dir DIR] [--seeds 0] [--collect]

A research script, not the product. Every setting is a row of the harness's ``mnist5k`` protocol (the paper's
BEGAN, ``began`` row, with the setting's overrides; the protocol's host features, none, for every row alike)
beside ``dcgan``, scored by the harness with the standard FID Inception against the 5,000 training digits,
with coverage by the harness's classifier rule. Screening uses fewer generated images than the table
(``--num-samples``, 2,000 by default), so its FIDs are higher than the table's for every row alike.

The budget is DCGAN's: before training, one process times a few steps of DCGAN's and of each setting's
training step, interleaved (``--timing-steps``), and gives each setting the number of steps that takes as
long as DCGAN's ``mnist5k`` run (6,000 steps). The steps, the timing and the commands are kept in
``DIR/study.json``; a rerun skips finished cells (the harness resumes).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from began_plugin import metrics
from began_plugin.began.model import BEGAN
from began_plugin.harness import PRESETS, collect, coverage_inputs, real_statistics, run_cell
from began_plugin.registry import create_model
from began_plugin.training.config import parse_args
from began_plugin.training.step import train_step

#: The paper's hyper-parameters (BEGAN's own defaults: every key explicit, so the data's preset does not show through).
PAPER = dataclasses.asdict(BEGAN.Hparams())

#: name -> BEGAN hyper-parameters over PAPER. Host keys are the protocol's.
OVERRIDES: dict[str, dict] = {
    # the paper's algorithm, narrowed so that it gets thousands of steps in DCGAN's time
    "n16_h32_lr3e-4": {"n": 16, "h": 32, "z_dim": 32, "lr": 3e-4},
    "n16_h64_lr3e-4_g0.7": {"n": 16, "h": 64, "z_dim": 64, "lr": 3e-4, "gamma": 0.7},
    "n8_h32_lr5e-4": {"n": 8, "h": 32, "z_dim": 32, "lr": 5e-4},
    "n32_h64_lr2e-4": {"n": 32, "h": 64, "z_dim": 64, "lr": 2e-4},
    # named variants on the first: PacGAN, BEGAN-CS
    "n16_h32_lr3e-4_pack2": {"n": 16, "h": 32, "z_dim": 32, "lr": 3e-4, "pack": 2},
    "n16_h32_lr3e-4_cs0.1": {"n": 16, "h": 32, "z_dim": 32, "lr": 3e-4, "latent_constraint": 0.1},
    # the current mnist5k preset's model options (h = z = 8, gamma 1, lambda_k 0.1, BEGAN-CS, pack 2), at the budget
    "preset_model": {
        "n": 16,
        "h": 8,
        "z_dim": 8,
        "gamma": 1.0,
        "lambda_k": 0.1,
        "lr": 3e-4,
        "latent_constraint": 0.1,
        "pack": 2,
    },
}
# Second round (began_mnist5k.md, "Second round"): around the fast controller that alone drew digits in the first,
# narrower networks for more steps in the same time, and one change at a time from preset_model.
_FAST = {"gamma": 1.0, "lambda_k": 0.1, "latent_constraint": 0.1, "pack": 2}
OVERRIDES.update(
    {
        "r2_n16_h8_nocs": {**OVERRIDES["preset_model"], "latent_constraint": 0.0},
        "r2_n8_h8_lr5e-4": {**_FAST, "n": 8, "h": 8, "z_dim": 8, "lr": 5e-4},
        "r2_n8_h16_lr5e-4": {**_FAST, "n": 8, "h": 16, "z_dim": 16, "lr": 5e-4},
        "r2_n16_h16": {**OVERRIDES["preset_model"], "h": 16, "z_dim": 16},
        "r2_lk0.01": {**OVERRIDES["preset_model"], "lambda_k": 0.01},
        "r2_g0.7": {**OVERRIDES["preset_model"], "gamma": 0.7},
        # after the first rows of the second round (the wider embedding drew better): wider still, and gamma 0.7
        "r2_n8_h32_lr5e-4": {**_FAST, "n": 8, "h": 32, "z_dim": 32, "lr": 5e-4},
        "r2_n8_h16_lr5e-4_g0.7": {**_FAST, "n": 8, "h": 16, "z_dim": 16, "lr": 5e-4, "gamma": 0.7},
    }
)
SETTINGS = {name: {**PAPER, **o} for name, o in OVERRIDES.items()}


def _step_time(model_name: str, hparams: dict, batch: int, steps: int) -> list[float]:
    torch.manual_seed(0)
    model = create_model(model_name, image_size=32, channels=1, **hparams)
    opts = model.configure_optimizers()
    real = torch.rand(batch, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    train_step(model, opts, lambda: real)  # warm-up
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        train_step(model, opts, lambda: real)
        times.append(time.perf_counter() - t0)
    return times


def budget_steps(names: list[str], protocol, timing_steps: int) -> dict:
    """Each setting's step count for DCGAN's wall time, from interleaved timings in this process."""
    dcgan = parse_args(["model=dcgan", "data=mnist5k"]).model_hparams  # its mnist5k preset, as its row trains
    per = {"dcgan": []}
    per.update({n: [] for n in names})
    for _ in range(3):  # interleaved rounds: a noisy neighbour slows every setting alike
        per["dcgan"] += _step_time("dcgan", dcgan, protocol.batch_size, timing_steps)
        for n in names:
            per[n] += _step_time("began", SETTINGS[n], protocol.batch_size, timing_steps)
    median = {k: statistics.median(v) for k, v in per.items()}
    budget_s = median["dcgan"] * protocol.steps
    return {
        "dcgan_steps": protocol.steps,
        "median_step_s": median,
        "budget_s_at_timing": budget_s,
        "steps": {n: max(100, int(round(budget_s / median[n] / 100)) * 100) for n in names},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--only", help="comma-separated setting names (default: all)")
    parser.add_argument("--num-samples", type=int, default=2000)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--timing-steps", type=int, default=5)
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--collect", action="store_true", help="write the tables of the finished cells; train nothing")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(SETTINGS)
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        print(
            f"began_mnist5k.py: error: unknown setting {unknown[0]!r}; expected some of {list(SETTINGS)}.",
            file=sys.stderr,
        )
        return 2
    base = PRESETS["mnist5k"]
    args.out.mkdir(parents=True, exist_ok=True)
    record_path = args.out / "study.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    if args.collect and set(names) - set(record.get("steps", {})):
        print(
            f"began_mnist5k.py: error: {args.out} has no timing for {sorted(set(names) - set(record.get('steps', {})))}; "
            "collect the names it ran (--only).",
            file=sys.stderr,
        )
        return 2
    if set(names) - set(record.get("steps", {})):  # time the settings not timed yet (a rerun keeps the first timing)
        timed = budget_steps(names, base, args.timing_steps)
        record = {**timed, "steps": {**record.get("steps", {}), **timed["steps"]}, "threads": torch.get_num_threads()}
        record_path.write_text(json.dumps(record, indent=2) + "\n")
    rows = {f"began-{n}": {"model": "began", "paper": True, "steps": record["steps"][n]} for n in names}
    protocol = replace(
        base,
        models=("dcgan", *rows),
        seeds=tuple(int(s) for s in args.seeds.split(",")),
        num_samples=args.num_samples,
        rows=rows,
        model_hparams={f"began-{n}": SETTINGS[n] for n in names},
        settings_note="began_mnist5k.py screening: each BEGAN row's steps take DCGAN's wall time (study.json).",
    )
    if args.collect:
        print(collect(args.out, protocol, None))
        return 0
    device = torch.device("cpu")
    cache = args.cache_dir or args.out / "cache"
    network = metrics.load_feature_network(protocol.network, device=device)
    real = real_statistics(protocol, network, cache, device)
    coverage = coverage_inputs(protocol, cache, device)
    for model in protocol.models:
        for seed in protocol.seeds:
            print(f"{model} seed {seed} ({protocol.row(model).steps} steps)", file=sys.stderr, flush=True)
            run_cell(protocol, model, seed, args.out, network, device, real, coverage)
    print(collect(args.out, protocol, None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
