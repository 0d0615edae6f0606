"""``gan-sample``: write N generated images of a run as PNG files or one .npz, for any outside scorer.

gan-sample run=RUN_DIR n=10000 seed=0 out=samples.npz      # uint8 N x H x W x C array "images"
gan-sample run=RUN_DIR n=1000 out=DIR/                       # DIR/000000.png ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from began_plugin.atomic_files import atomic_write
from began_plugin.registry import create_model
from began_plugin.training.checkpoint import CheckpointError, safe_load
from began_plugin.training.config import ConfigError


def load_run(run_dir: Path, device: str | torch.device = "cpu", average: bool = True) -> torch.nn.Module:
    """The trained model of a run directory, in eval mode.

    When the run kept a moving average of G's weights (``ema_decay``), the model's generator carries the
    average (``average=False``: G's own weights), so ``generate`` draws from it.
    """
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.exists():
        raise ConfigError(f"run={str(run_dir)!r} holds no config.json; pass the out= directory of a gan-train run.")
    cfg = json.loads(cfg_path.read_text())
    if "image_channels" not in cfg:
        raise ConfigError(
            f"{cfg_path} records no image_channels (it was written by an older began-plugin); "
            f'add "image_channels": 1 or 3 to it, as the run\'s data has.'
        )
    state = safe_load(run_dir / "checkpoints" / "latest.pt", map_location=device)
    model = create_model(
        cfg["model"], image_size=cfg["image_size"], channels=int(cfg["image_channels"]), **cfg["model_hparams"]
    )
    model.load_state_dict(state["model"])
    if average and "generator_average" in state:
        prefix = "average."
        model.generator.load_state_dict(
            {k[len(prefix) :]: v for k, v in state["generator_average"].items() if k.startswith(prefix)}
        )
    return model.to(device).eval()


@torch.no_grad()
def generate(model: torch.nn.Module, n: int, seed: int, batch_size: int = 256) -> torch.Tensor:
    """n images in [-1, 1] from z drawn by a generator seeded with ``seed`` (CPU), batch-size independent."""
    z = model.sample_z(n, generator=torch.Generator().manual_seed(seed))
    return torch.cat([model.generate(z[i : i + batch_size]).float().cpu() for i in range(0, n, batch_size)])


def to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def main(argv: list[str] | None = None) -> int:
    args = dict(a.split("=", 1) for a in (sys.argv[1:] if argv is None else argv) if "=" in a)
    try:
        unknown = set(args) - {"run", "n", "seed", "out", "device"}
        if unknown or "run" not in args or "out" not in args:
            raise ConfigError(
                "usage: gan-sample run=RUN_DIR out=FILE.npz|DIR [n=1000] [seed=0] [device=cpu]"
                + (f"; unknown key {sorted(unknown)[0]!r}" if unknown else "")
                + "."
            )
        n, seed = int(args.get("n", 1000)), int(args.get("seed", 0))
        if n <= 0:
            raise ConfigError(f"n={n} must be a positive integer.")
        model = load_run(Path(args["run"]), args.get("device", "cpu"))
        images = to_uint8_hwc(generate(model, n, seed))
        out = Path(args["out"])
        if out.suffix == ".npz":

            def write_npz(tmp: Path) -> None:
                with open(tmp, "wb") as fh:  # a file object: numpy would append .npz to a path
                    np.savez_compressed(fh, images=images)

            atomic_write(out, write_npz)
        else:
            from PIL import Image

            out.mkdir(parents=True, exist_ok=True)
            for i, img in enumerate(images):
                atomic_write(
                    out / f"{i:06d}.png",
                    lambda tmp, img=img: Image.fromarray(img.squeeze(-1) if img.shape[-1] == 1 else img).save(
                        tmp, format="png"
                    ),
                )
    except (ConfigError, CheckpointError, ValueError) as exc:
        print(f"gan-sample: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {n} images to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
