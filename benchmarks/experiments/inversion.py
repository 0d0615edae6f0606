"""The BEGAN paper's §4 inversion and interpolation on trained runs, one table for all of them.

    python benchmarks/experiments/inversion.py RUN [RUN ...] --out DIR [--n 64] [--split train]
                                               [--steps 500] [--restarts 1]

A research script, not the product: it runs ``gan-invert`` and ``gan-interpolate`` (through their
``main`` functions, as the command line would) on every run, over the same real images, and collects
what they print.  The runs must share a dataset, image size and channels (read from each run's
``config.json``).  It writes into the new folder DIR:

* ``real.npz``: ``--n`` images evenly spaced over the runs' dataset split ``--split`` (the layout gan-sample
  writes), the images every run inverts;
* ``<run>.npz``: gan-invert's output for each run (z, reconstructions, per-image l1);
* ``<run>-real.png`` and ``<run>-seeds.png``: gan-interpolate between the first two real images (through
  their inverted z) and between the z of seeds 0 and 1, linear above spherical;
* ``reconstructions.png``: the first 16 real images (top row) above each run's reconstructions of them;
* ``inversion.jsonl`` (one line per run: what the two commands printed, with the run's model, data and
  steps trained) and ``inversion.md`` (the same as a table).

The error is gan-invert's: mean |x - G(z)| in the [-1, 1] pixel scale, per image, then mean and std over
the images; ``start`` is the error of the first starts before any step.  One thread.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from began_plugin.data import DataError, build_dataset
from began_plugin.inversion import interpolate_main, invert_main
from began_plugin.training.sample import to_uint8_hwc

TILES = 16  # real images and reconstructions per row of reconstructions.png


def _fail(message: str) -> int:
    print(f"inversion.py: error: {message}", file=sys.stderr)
    return 2


def _run_configs(runs: list[str]) -> list[dict]:
    configs = []
    for run in runs:
        path = Path(run) / "config.json"
        if not path.is_file():
            raise ValueError(f"{run} holds no config.json; expected the out= directory of a gan-train run.")
        configs.append(json.loads(path.read_text()))
    keys = {(c["data"]["name"], c["image_size"], c["image_channels"]) for c in configs}
    if len(keys) > 1:
        raise ValueError(
            f"the runs do not share a dataset, image size and channels ({sorted(keys)}); invert runs of one "
            f"dataset at a time."
        )
    names = [Path(r).resolve().name for r in runs]
    if len(set(names)) < len(names):
        raise ValueError(f"two runs share a folder name ({names}); each run's files are named after it.")
    return configs


def _quiet(main, args: list[str]) -> tuple[int, dict | None, str]:
    """Run a command's main with its output captured: (exit code, its JSON line, its error text)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, (json.loads(out.getvalue()) if code == 0 else None), err.getvalue().strip()


def _table(rows: list[dict]) -> str:
    lines = [
        "| run | model | steps trained | images | L1 after inversion | L1 at the start | L1 of the two ends |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        inv, ends = r["invert"], r["interpolate_real"]
        lines.append(
            f"| {r['run']} | {r['model']} | {r['steps_trained']} | {inv['n']} | {inv['l1_mean']:.4f} ± "
            f"{inv['l1_std']:.4f} | {inv['l1_start_mean']:.4f} | {ends['l1_mean']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--out", required=True, help="a new folder for the outputs")
    p.add_argument("--n", type=int, default=64, help="real images to invert")
    p.add_argument("--split", default="train", help="the dataset split the real images come from")
    p.add_argument("--steps", type=int, default=500, help="gan-invert's Adam steps")
    p.add_argument("--restarts", type=int, default=1, help="gan-invert's starts per image")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    if out.exists():
        return _fail(f"--out {out} exists; give a new folder (results are never overwritten).")
    if args.n < 2:
        return _fail(f"--n {args.n} is too few; the interpolation between two real images needs at least 2.")
    try:
        configs = _run_configs(args.runs)
        c = configs[0]
        data = c["data"]
        ds = build_dataset(data["name"], data.get("root"), c["image_size"], args.split, data.get("channels"))
    except (ValueError, DataError) as exc:
        return _fail(str(exc))
    n = min(args.n, len(ds))
    # evenly spaced over the split, which may be sorted by class (mnist5k is)
    real = to_uint8_hwc(torch.stack([ds[int(i)] for i in np.linspace(0, len(ds) - 1, n).round()]))
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))  # DIR appears only when complete
    try:
        code = _write_all(args, configs, real, work)
        if code == 0:
            work.rename(out)
        return code
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _write_all(args, configs: list[dict], real: np.ndarray, out: Path) -> int:
    real_npz = out / "real.npz"
    np.savez_compressed(real_npz, images=real)
    search = [f"steps={args.steps}", f"restarts={args.restarts}"]
    rows, recons = [], []
    for run, config in zip(args.runs, configs):
        name = Path(run).resolve().name
        results = {}
        for key, command, extra in (
            ("invert", invert_main, [f"images={real_npz}", f"out={out / name}.npz", *search]),
            (
                "interpolate_real",
                interpolate_main,
                [f"images={real_npz}", f"out={out / name}-real.png", f"invert_steps={args.steps}"],
            ),
            ("interpolate_seeds", interpolate_main, ["seeds=0,1", f"out={out / name}-seeds.png"]),
        ):
            code, printed, err = _quiet(command, [f"run={run}", *extra])
            if code != 0:
                return _fail(f"{run}: {err.split(': error: ', 1)[-1]}")
            for field in ("out", "images"):  # file names inside DIR, not the working folder's paths
                if field in printed:
                    printed[field] = Path(printed[field]).name
            results[key] = printed
        rows.append(
            {"run": name, "model": config["model"], "data": config["data"]["name"], "steps_trained": config["steps"]}
            | results
        )
        with np.load(out / f"{name}.npz") as f:
            recons.append(f["reconstructions"][:TILES])
    from torchvision.utils import make_grid, save_image

    tiles = np.concatenate([real[:TILES], *recons])
    grid = make_grid(torch.from_numpy(tiles).permute(0, 3, 1, 2).float() / 255, nrow=min(TILES, len(real)))
    save_image(grid, out / "reconstructions.png")
    (out / "inversion.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "inversion.md").write_text(_table(rows))
    print(_table(rows), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
