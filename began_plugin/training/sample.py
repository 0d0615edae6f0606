"""``gan-sample``: write N generated images of a run as PNG files or one .npz, for any outside scorer.

gan-sample run=RUN_DIR n=10000 seed=0 out=samples.npz      # uint8 N x H x W x C array "images"
gan-sample run=RUN_DIR n=1000 out=DIR/                       # DIR/000000.png ...
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import MISSING

from began_plugin.atomic_files import atomic_write
from began_plugin.registry import RegistryError, create_model
from began_plugin.training.checkpoint import CheckpointError, safe_load
from began_plugin.training.config import ConfigError, parse_command
from began_plugin.training.run_directory import read_config, recorded_hparams

USAGE = (
    "usage: gan-sample run=RUN_DIR out=FILE.npz|DIR [n=1000] [seed=0] [device=cpu] [average=true]; "
    "out= is either a new .npz file (one uint8 N x H x W x C array 'images') or a new or empty directory "
    "(one PNG per image)."
)


@dataclass
class SampleConfig:
    run: str = MISSING  # the out= directory of a gan-train run
    out: str = MISSING  # a new FILE.npz, or a new or empty directory for PNGs
    n: int = 1000
    seed: int = 0  # seeds z (on the CPU), so the images do not depend on the device or batch size
    device: str = "cpu"
    average: bool = True  # draw from the moving average of G when the run kept one (ema_decay)


def parse_sample_args(args: list[str]) -> SampleConfig:
    cfg = parse_command(SampleConfig, args, "sampler", USAGE, required=("run", "out"))
    if cfg.n <= 0:
        raise ConfigError(f"n={cfg.n} must be a positive integer (the number of images to write).")
    if not 0 <= cfg.seed < 2**63:
        raise ConfigError(f"seed={cfg.seed} is outside [0, 2**63); pass a non-negative integer such as seed=0.")
    out = Path(cfg.out)
    if out.suffix == ".npz":
        if out.exists():
            raise ConfigError(f"out={cfg.out!r} already exists; choose a new file name, or delete it first.")
        folder = out.parent
    elif out.exists() and not out.is_dir():
        raise ConfigError(
            f"out={cfg.out!r} is an existing file that is not a directory; write to FILE.npz or to a new directory."
        )
    elif out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"out={cfg.out!r} is a directory that is not empty; choose a new or empty directory.")
    else:
        folder = out if out.exists() else out.parent
    while not folder.exists():  # the nearest directory that exists is the one we must be able to write in
        folder = folder.parent
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"out={cfg.out!r} cannot be written ({folder} is read-only); choose a writable place.")
    return cfg


def load_run(run_dir: Path, device: str | torch.device = "cpu", average: bool = True) -> torch.nn.Module:
    """The trained model of a run directory, in eval mode.

    When the run kept a moving average of G's weights (``ema_decay``), the model's generator carries the
    average (``average=False``: G's own weights), so ``generate`` draws from it.
    """
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.exists():
        raise ConfigError(f"run={str(run_dir)!r} holds no config.json; pass the out= directory of a gan-train run.")
    cfg = read_config(cfg_path)
    if "image_channels" not in cfg:
        raise ConfigError(
            f"{cfg_path} records no image_channels (it was written by an older began-plugin); "
            f'add "image_channels": 1 or 3 to it, as the run\'s data has.'
        )
    ckpt = run_dir / "checkpoints" / "latest.pt"
    state = safe_load(ckpt, map_location=device)
    try:
        model = create_model(
            cfg["model"],
            image_size=cfg["image_size"],
            channels=int(cfg["image_channels"]),
            **recorded_hparams(cfg["model"], cfg["model_hparams"]),
        )
        model.load_state_dict(state["model"])
        if average and "generator_average" in state:
            prefix = "average."
            model.generator.load_state_dict(
                {k[len(prefix) :]: v for k, v in state["generator_average"].items() if k.startswith(prefix)}
            )
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{ckpt} does not fit the model its {cfg_path.name} describes ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:160] if str(exc) else ''}); pass a run directory whose files belong together."
        ) from None
    return model.to(device).eval()


@torch.no_grad()
def generate(model: torch.nn.Module, n: int, seed: int, batch_size: int = 256) -> torch.Tensor:
    """n images in [-1, 1] from z drawn by a generator seeded with ``seed`` (CPU), batch-size independent."""
    z = model.sample_z(n, generator=torch.Generator().manual_seed(seed))
    return torch.cat([model.generate(z[i : i + batch_size]).float().cpu() for i in range(0, n, batch_size)])


def to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def main(argv: list[str] | None = None) -> int:
    from began_plugin.training.loop import resolve_device

    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(__doc__.strip() + "\n\n" + USAGE)
        return 0
    try:
        cfg = parse_sample_args(args)
        # The device first: a missing GPU is the command's fault, never the checkpoint's.
        model = load_run(Path(cfg.run), resolve_device(cfg.device), average=cfg.average)
        images = to_uint8_hwc(generate(model, cfg.n, cfg.seed))
        out = Path(cfg.out)
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
    except (ConfigError, CheckpointError, RegistryError) as exc:
        print(f"gan-sample: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"gan-sample: error: writing {cfg.out} failed ({exc.strerror or exc}); free space or choose another out=, "
            f"then rerun (the files already written are whole).",
            file=sys.stderr,
        )
        return 4
    print(f"wrote {cfg.n} images to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
