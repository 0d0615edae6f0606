"""Where our BEGAN training step spends its time against torchgan's Trainer on the same modules, op by op.

    python benchmarks/profile_step.py --batch 16 --steps 3

Both steps are built exactly as ``benchmarks/performance.py`` builds them (the paper's network, the same
initial weights and batch), warmed up, then run under ``torch.profiler`` one after the other. Prints, per
operator, the self CPU time per step of each side and their difference, largest difference first, and the
totals; ``--out FILE.json`` keeps the table. Run it on a quiet machine: timings are the point.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import performance as perf  # noqa: E402


def _profile(fn, steps: int) -> dict[str, dict]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            fn()
    table = {}
    for ev in prof.key_averages():
        table[ev.key] = {"self_ms": ev.self_cpu_time_total / 1e3 / steps, "calls": ev.count / steps}
    return table


def profile_both(batch: int, steps: int, warmup: int = 2, n: int = 64, h: int = 64) -> dict:
    from began_plugin.training.step import train_step

    model, opts = perf._build_ours(32, 3, n, h, 0, **perf.PEER_MODULES)  # the same computation on both sides
    real = torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with tempfile.TemporaryDirectory() as workdir:
        trainer = perf._build_torchgan(model, workdir)
        trainer.batch_size = batch
        ours = lambda: train_step(model, opts, lambda: real)  # noqa: E731
        theirs = lambda: perf._torchgan_step(trainer, real)  # noqa: E731
        with perf._quiet():
            for _ in range(warmup):
                ours()
                theirs()
            table_ours = _profile(ours, steps)
            table_theirs = _profile(theirs, steps)
    rows = []
    for key in set(table_ours) | set(table_theirs):
        a, b = table_ours.get(key, {}), table_theirs.get(key, {})
        rows.append(
            {
                "op": key,
                "ours_ms": a.get("self_ms", 0.0),
                "torchgan_ms": b.get("self_ms", 0.0),
                "ours_calls": a.get("calls", 0.0),
                "torchgan_calls": b.get("calls", 0.0),
            }
        )
    rows.sort(key=lambda r: -abs(r["ours_ms"] - r["torchgan_ms"]))
    return {
        "batch": batch,
        "steps": steps,
        "ours_total_ms": sum(r["ours_ms"] for r in rows),
        "torchgan_total_ms": sum(r["torchgan_ms"] for r in rows),
        "ops": rows,
    }


def markdown(res: dict, top: int) -> str:
    lines = [
        f"batch {res['batch']}, self CPU time per step (ms), {res['steps']} profiled steps each; "
        f"totals: ours {res['ours_total_ms']:.1f}, torchgan {res['torchgan_total_ms']:.1f}",
        "",
        "| op | ours ms | torchgan ms | ours − torchgan | calls ours / torchgan |",
        "|---|---:|---:|---:|---|",
    ]
    for r in res["ops"][:top]:
        lines.append(
            f"| `{r['op']}` | {r['ours_ms']:.1f} | {r['torchgan_ms']:.1f} | {r['ours_ms'] - r['torchgan_ms']:+.1f} "
            f"| {r['ours_calls']:g} / {r['torchgan_calls']:g} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, nargs="+", default=[16, 64])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--top", type=int, default=15, help="rows printed per batch size")
    p.add_argument("--out", type=Path, help="write every operator's figures as JSON here")
    args = p.parse_args(argv)
    results = [profile_both(b, args.steps) for b in args.batch]
    for res in results:
        print(markdown(res, args.top))
        print()
    if args.out:
        from began_plugin.atomic_files import atomic_write

        atomic_write(args.out, lambda tmp: tmp.write_text(json.dumps(results, indent=1)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
