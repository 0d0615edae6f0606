"""BEGAN vs DCGAN vs WGAN-GP under one protocol: FID / KID / IS tables a researcher can cite.

    python benchmarks/compare.py --preset smoke --out DIR        # CI-sized, a few minutes on 2 cores
    python benchmarks/compare.py --preset cpu --out DIR          # embedded digits, several seeds
    python benchmarks/compare.py --preset cifar10 --out DIR --inception-weights pt_inception-2015-12-05.pth
    python benchmarks/compare.py --preset mnist5k-gamma --out DIR   # a preset that sweeps one row's hyper-parameter
    python benchmarks/compare.py --preset smoke --sweep dcgan:width=16,32 --eval-every 10 --out DIR

For each (model, seed) cell: train with the reference trainer (models reached through the
``gan_trainer.models`` registry, as any stranger's trainer would), generate N images from a
seeded z, compute metrics with a named feature network, and write the cell's result file
atomically.  Rerunning the command skips finished cells and resumes unfinished training;
``--cells dcgan:0,wgan_gp:1`` runs a subset (several machines can share DIR); ``--collect``
builds the tables from whatever cells exist.  Outputs in DIR: results.jsonl, table.md,
table.csv, table.tex, samples.png, curves.png (each model's own curves), memorisation.png (the
generated images nearest a training image), with --eval-every metric_curve.png and
convergence.png (FID and the model's convergence measure), with a sweep <hparam>_tradeoff.png,
cells/, runs/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from began_plugin import metrics
from began_plugin.atomic_files import sweep_temporaries
from began_plugin.data import DataError
from began_plugin.harness import (  # noqa: F401  (_fmt: the tests read the table format through this script)
    PRESETS,
    HarnessError,
    HarnessStopped,
    _fmt,
    build_protocol,
    collect,
    coverage_inputs,
    parse_cells,
    real_statistics,
    run_cell,
    training_statistics,
)
from began_plugin.launchers import LAUNCHERS, CellJob, run_jobs
from began_plugin.registry import RegistryError
from began_plugin.training.checkpoint import CheckpointError
from began_plugin.training.config import ConfigError
from began_plugin.training.loop import resolve_device


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one sentence, not a usage block (argparse's exit status 2 is kept)
        self.exit(2, f"compare.py: error: {message}; see compare.py --help.\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="smoke", help=f"one of {sorted(PRESETS)} (default: smoke)")
    parser.add_argument("--out", required=True, help="output directory (shared by every cell)")
    parser.add_argument("--models", help="comma-separated registered model names (default: the preset's)")
    parser.add_argument("--seeds", help="comma-separated seeds (default: the preset's)")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--num-samples", type=int, dest="num_samples")
    parser.add_argument("--num-real", type=int, dest="num_real")
    parser.add_argument(
        "--eval-every", type=int, dest="eval_every", help="also measure FID every N training steps (metric_curve.png)"
    )
    parser.add_argument(
        "--eval-samples",
        type=int,
        dest="eval_samples",
        help="generated images per FID of the --eval-every curve (default: --num-samples); the table's FID keeps "
        "--num-samples, and the curve's last point is measured again on this many",
    )
    parser.add_argument(
        "--sweep",
        help="rows of one hyper-parameter's values, e.g. dcgan:width=16,32,64 (replaces the preset's rows; "
        "--models adds rows beside them); collect plots HPARAM_tradeoff.png",
    )
    parser.add_argument("--kid-subset-size", type=int, dest="kid_subset_size")
    parser.add_argument("--network", help=f"feature network: one of {list(metrics.NETWORK_NAMES)}")
    parser.add_argument(
        "--inception-weights",
        help="path to the Inception weights (network inception); only the standard file (by SHA-256) gives keys named FID/KID/IS",
    )
    parser.add_argument("--data-root", dest="data_root", help="where torchvision datasets live")
    parser.add_argument("--cells", help="run only these cells, ROW:SEED,... (e.g. dcgan:0,wgan_gp:1)")
    parser.add_argument("--collect", action="store_true", help="only build the tables from the finished cells")
    parser.add_argument("--cache-dir", help="real-statistics cache (default: OUT/cache)")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--launcher",
        default="local",
        choices=LAUNCHERS,
        help="where the cells run: here (local), as Slurm jobs through submitit (its local executor without "
        "Slurm), or as Ray tasks (RAY_ADDRESS, or a local Ray)",
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help (0) or a bad argument, already said in one line (2)
        return int(stop.code or 0)
    out = Path(args.out)
    try:
        protocol = build_protocol(args)
        if not args.collect:
            for folder in (out / "cells", out / "cache"):  # temporaries of killed harnesses, never a live one's
                sweep_temporaries(folder, within=out)
            device = resolve_device(args.device)
            network = metrics.load_feature_network(protocol.network, weights_path=args.inception_weights, device=device)
            cells = parse_cells(args.cells, protocol)
            real_stats = real_statistics(
                protocol, network, Path(args.cache_dir) if args.cache_dir else out / "cache", device
            )
            cache = Path(args.cache_dir) if args.cache_dir else out / "cache"
            coverage = coverage_inputs(protocol, cache, device)
            training = training_statistics(protocol, network, cache, device, real_stats)  # for memorisation
            if args.launcher == "local":
                for model, seed in tqdm(cells, desc="cells", file=sys.stderr):
                    run_cell(protocol, model, seed, out, network, device, real_stats, coverage, training)
            else:  # the statistics and the classifier are in the cache now: every job reads them from there
                jobs = [
                    CellJob(
                        protocol,
                        m,
                        s,
                        str(out.resolve()),
                        str(cache.resolve()),
                        args.device,
                        args.inception_weights,
                        torch.get_num_threads(),
                    )
                    for m, s in cells
                ]
                run_jobs(args.launcher, jobs, out)
        table = collect(out, protocol, args.preset)
    except (HarnessError, ConfigError, RegistryError, DataError, CheckpointError, metrics.MetricsError) as exc:
        print(f"compare.py: error: {exc}", file=sys.stderr)
        return 2
    except HarnessStopped as exc:
        print(f"compare.py: stopped: {exc}", file=sys.stderr)
        return 128 + exc.signal_number
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
