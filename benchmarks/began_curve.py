"""Coverage of BEGAN on the embedded digits *during* training: one run, a row every ``--every`` steps.

    python benchmarks/began_curve.py NAME --steps 3000 --every 250 [--out runs/curves] [KEY=VALUE ...]

``began_settings.py`` scores a finished ``gan-train`` run; this script trains in-process (the
same model, optimizers and host step as ``gan-train``, its own seeded batch order) and measures
the same coverage numbers on 1,000 samples of a fixed z (seed 12345) as training goes, so one
run shows *when* a setting collapses or spreads.  KEY=VALUE are BEGAN hyper-parameters on top
of ``BASE`` (``batch=`` and ``seed=`` set those); each row has the step, wall seconds, k_t, the
logged losses, classes covered / class KL / confident fraction from the logistic classifier of
``began_settings.py`` and (``cnn_*``) from the harness's CNN, and ``div``: the mean pairwise L2
distance of 200 samples (real test digits: 19.1).  Rows go to ``OUT/NAME.jsonl``, sample grids to
``OUT/NAME_STEP.png``.  One thread, so two runs fill two cores.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent))
from began_settings import _classifier, coverage  # noqa: E402

from began_plugin.data import build_dataset  # noqa: E402
from began_plugin.metrics.coverage import coverage_metrics, load_or_train_classifier  # noqa: E402
from began_plugin.registry import create_model  # noqa: E402
from began_plugin.training.step import train_step  # noqa: E402

#: The digits network of the first sweep, with γ = 1.0 and λ_k = 0.01 (state every other change).
BASE = {"n": 16, "h": 32, "z_dim": 32, "gamma": 1.0, "lambda_k": 0.01}


def _value(text: str):
    if text in ("true", "false"):
        return text == "true"
    return ast.literal_eval(text) if text[0].isdigit() or text[0] == "-" else text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--every", type=int, default=250)
    p.add_argument("--out", default="runs/curves")
    p.add_argument("--cache-dir", default=None, help="the harness classifier's cache (default: OUT/cache)")
    p.add_argument("overrides", nargs="*", help="KEY=VALUE BEGAN hyper-parameters, batch=, seed=")
    args = p.parse_intermixed_args(argv)
    torch.set_num_threads(1)
    kw, batch, seed, size = dict(BASE), 32, 0, 32
    for item in args.overrides:
        if "=" not in item:
            print(f"began_curve.py: error: {item!r} is not KEY=VALUE, e.g. lr=3e-4.", file=sys.stderr)
            return 2
        key, value = item.split("=", 1)
        if key == "batch":
            batch = int(value)
        elif key == "seed":
            seed = int(value)
        else:
            kw[key] = _value(value)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(seed)
    model = create_model("began", image_size=size, channels=1, **kw)
    opts = model.configure_optimizers()
    data = build_dataset("digits", None, size, split="train").images
    order = torch.Generator().manual_seed(seed)
    state = {"perm": torch.randperm(len(data), generator=order), "pos": 0}

    def next_batch() -> torch.Tensor:
        if state["pos"] + batch > len(data):
            state["perm"], state["pos"] = torch.randperm(len(data), generator=order), 0
        rows = state["perm"][state["pos"] : state["pos"] + batch]
        state["pos"] += batch
        return data[rows].float()

    clf, _, prior = _classifier()
    cnn = load_or_train_classifier(args.cache_dir or str(out / "cache"), "digits", None, 32)
    z_fixed = model.sample_z(1000, torch.Generator().manual_seed(12345))
    start = time.time()
    with open(out / f"{args.name}.jsonl", "w") as log:
        for step in range(1, args.steps + 1):
            logs = train_step(model, opts, next_batch)
            if step % args.every:
                continue
            with torch.no_grad():
                images = model.generator(z_fixed).clamp(-1, 1)
            row = {"step": step, "t": round(time.time() - start), "k": float(model.controller.k_t),
                   **{k: round(float(v), 4) for k, v in logs.items() if v.numel() == 1}}
            row.update(coverage(images, clf, prior))
            torchvision.utils.save_image((images[:64] + 1) / 2, out / f"{args.name}_{step}.png", nrow=8)
            row.update({f"cnn_{k}": round(v.value, 3) for k, v in coverage_metrics(cnn, images).items()})
            row["div"] = round(float(torch.pdist(images[:200].flatten(1)).mean()), 3)
            print(args.name, json.dumps(row), flush=True)
            log.write(json.dumps(row) + "\n")
            log.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
