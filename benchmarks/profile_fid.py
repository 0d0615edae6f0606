"""What the offline FID Inception's feature pass could still gain: the resize's share, and compiling the network.

    python benchmarks/profile_fid.py [--images 32] [--reps 3] [--compilers inductor,jit] [--out FILE.json]

Times, on the same random uint8 images (32 px, as the benchmark's digits), the default feature pass
(``inception-offline``, ``eager-folded``: torch-fidelity's Inception with batch norm folded, channels-last,
TF1-exact resize to 299) whole and its preprocessing alone (the resize and the (x - 128) / 128 scaling), then
the same module compiled: ``inductor`` (``torch.compile`` with ``torch._inductor.config.freezing``) and ``jit``
(``torch.jit.trace`` + ``freeze`` + ``optimize_for_inference``). Each compiled pass is checked against the eager
features (max abs and relative difference) and its compile time is reported. Best of ``--reps`` after one
warm-up call. Run it on a quiet machine: timings are the point.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch


def _best(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _compiled(module, x, how: str):
    if how == "inductor":
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
        return torch.compile(module)
    if how == "jit":
        return torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(module, x).eval()))
    raise ValueError(f"unknown compiler {how!r}; expected inductor or jit")


def profile(images: int, reps: int, compilers: list[str]) -> dict:
    from began_plugin.metrics import feature_networks as fn

    net = fn.load_feature_network(fn.NETWORK_INCEPTION_OFFLINE, device="cpu")
    module = net.module
    x = torch.randint(0, 256, (images, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = {"images": images, "threads": torch.get_num_threads(), "implementation": net.implementation}
    with torch.no_grad():
        out["preprocess_s"] = _best(lambda: fn._inception_input(x), reps)
        out["eager_s"] = _best(lambda: module(x), reps)
        reference = module(x)[0]
        for how in compilers:
            t0 = time.perf_counter()
            compiled = _compiled(module, x, how)
            features = compiled(x)[0]  # the first call compiles
            compile_s = time.perf_counter() - t0
            out[how] = {
                "compile_s": compile_s,
                "pass_s": _best(lambda c=compiled: c(x), reps),
                "max_abs_diff": float((features - reference).abs().max()),
                "rel_diff": float((features - reference).norm() / reference.norm()),
            }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--compilers", default="inductor,jit")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    res = profile(args.images, args.reps, [c for c in args.compilers.split(",") if c])
    n, eager = res["images"], res["eager_s"]
    print(f"{n} images, {res['threads']} threads, {res['implementation']}")
    print(f"eager feature pass: {eager:.3f} s ({n / eager:.2f} images/s)")
    print(f"  of which resize + scaling: {res['preprocess_s']:.3f} s ({res['preprocess_s'] / eager:.1%})")
    for how in args.compilers.split(","):
        if how in res:
            c = res[how]
            print(
                f"{how}: {c['pass_s']:.3f} s per pass ({eager / c['pass_s']:.2f}x eager), compile {c['compile_s']:.0f} s, "
                f"features max |diff| {c['max_abs_diff']:.1e}, relative {c['rel_diff']:.1e}"
            )
    if args.out:
        args.out.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
