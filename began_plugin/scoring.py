"""``gan-score``: score images from any generator, ours or not, as the harness scores a cell.

    gan-score images=samples.npz data=mnist5k            # gan-sample's layout: uint8 N x H x W x C "images"
    gan-score images=DIR/ data=digits n=1000 network=inception-offline

The images are scored against the dataset's reference under one of the harness's protocols (``preset=``, by
default the first protocol of ``began_plugin.harness.PRESETS`` on that dataset other than ``smoke``), with
the same metrics, keys and provenance as a table cell, printed as JSON (and written to ``out=`` atomically), so
an outside model can be placed in our tables and null generators (noise, blank or repeated images) can be
checked from the command line.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from omegaconf import MISSING

from began_plugin import metrics
from began_plugin.atomic_files import atomic_write
from began_plugin.data import DATASETS, DataError, build_dataset
from began_plugin.training.config import ConfigError, _nearest, parse_command

USAGE = (
    "usage: gan-score images=FILE.npz|DIR data=NAME [preset=NAME] [n=N] [network=NAME] [inception_weights=PATH] "
    "[data_root=DIR] [cache_dir=DIR] [device=cpu] [seed=0] [out=FILE.json]"
)


@dataclass
class ScoreConfig:
    images: str = MISSING  # an .npz with uint8 "images" N x H x W x C (gan-sample's layout) or a folder of PNGs
    data: str = "digits"  # the dataset whose reference the images are scored against
    preset: str | None = None  # the harness protocol; None: the first on `data` other than smoke
    n: int | None = None  # how many of the images to score; None: the protocol's sample count (or all there are)
    network: str | None = None  # feature network; None: the protocol's
    inception_weights: str | None = None
    data_root: str | None = None
    cache_dir: str = "~/.cache/began_plugin/scores"  # real statistics and the coverage classifier
    device: str = "cpu"
    seed: int = 0  # KID's subset draws
    out: str | None = None  # also write the JSON here


def parse_score_args(args: list[str]) -> ScoreConfig:
    cfg = parse_command(ScoreConfig, args, "scorer", USAGE + ".", required=("images",))
    if cfg.data not in DATASETS:
        raise ConfigError(
            f"unknown dataset data={cfg.data!r}{_nearest(cfg.data, DATASETS)}; expected one of {list(DATASETS)}."
        )
    if cfg.n is not None and cfg.n <= 0:
        raise ConfigError(f"n={cfg.n} must be a positive integer (the number of images to score).")
    return cfg


def protocol_for(cfg: ScoreConfig):
    from began_plugin.harness import PRESETS

    if cfg.preset is not None:
        if cfg.preset not in PRESETS:
            raise ConfigError(
                f"unknown preset={cfg.preset!r}{_nearest(cfg.preset, PRESETS)}; expected one of {sorted(PRESETS)}."
            )
        protocol = PRESETS[cfg.preset]
        if protocol.data != cfg.data:
            raise ConfigError(
                f"preset={cfg.preset} scores against data={protocol.data}, not data={cfg.data}; drop one of the two."
            )
        name = cfg.preset
    else:
        candidates = [k for k, p in PRESETS.items() if p.data == cfg.data and k != "smoke"]
        if not candidates:
            raise ConfigError(f"no harness protocol scores data={cfg.data}; pick preset= one of {sorted(PRESETS)}.")
        name, protocol = candidates[0], PRESETS[candidates[0]]
    changes = {"network": cfg.network} if cfg.network else {}
    if cfg.data_root:
        changes["data_root"] = cfg.data_root
    return name, replace(protocol, **changes)


def load_images(path: Path, image_size: int, channels: int) -> torch.Tensor:
    """N x channels x size x size in [-1, 1] from an .npz of uint8 N x H x W x C or a folder of PNG files."""
    if not path.exists():
        raise DataError(
            f"images={str(path)!r} does not exist; pass an .npz (gan-sample out=FILE.npz) or a folder of PNGs."
        )
    if path.suffix == ".npz":
        try:
            with np.load(path) as data:
                array = data["images"]
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(
                f"images={str(path)!r} is not an .npz holding an 'images' array ({exc}); write one "
                f"with gan-sample out=FILE.npz or numpy.savez(FILE, images=uint8 N x H x W x C)."
            ) from None
    elif path.is_dir():
        from PIL import Image, UnidentifiedImageError

        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith("."))
        if not files:
            raise DataError(f"images={str(path)!r} holds no .png files; pass a folder of PNGs or an .npz.")
        try:
            array = np.stack([np.asarray(Image.open(f).convert("L" if channels == 1 else "RGB")) for f in files])
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise DataError(f"images={str(path)!r}: a PNG could not be read or the sizes differ ({exc}).") from None
    else:
        raise DataError(f"images={str(path)!r} is neither an .npz file nor a folder of PNGs; check the path.")
    if array.ndim == 3:
        array = array[..., None]
    if array.dtype != np.uint8 or array.ndim != 4:
        raise DataError(
            f"images={str(path)!r} holds a {array.dtype} array of shape {array.shape}; expected uint8 "
            f"N x H x W x C as gan-sample writes."
        )
    if array.shape[1:3] != (image_size, image_size) or array.shape[3] != channels:
        raise DataError(
            f"images={str(path)!r} are {array.shape[1]}x{array.shape[2]} with {array.shape[3]} channel(s), "
            f"but the protocol scores {image_size}x{image_size} with {channels}; resize them or pick "
            f"another preset."
        )
    return torch.from_numpy(array).permute(0, 3, 1, 2).float().div(127.5).sub(1.0).contiguous()


def score(cfg: ScoreConfig) -> dict:
    from began_plugin.harness import coverage_inputs, real_statistics, score_images
    from began_plugin.training.loop import resolve_device

    name, protocol = protocol_for(cfg)
    channels = build_dataset(protocol.data, protocol.data_root, protocol.image_size, split=protocol.real_split).channels
    images = load_images(Path(cfg.images).expanduser(), protocol.image_size, channels)
    n = min(cfg.n or protocol.num_samples, images.shape[0])
    if cfg.n is not None and cfg.n > images.shape[0]:
        raise ConfigError(
            f"n={cfg.n} but images={cfg.images!r} holds {images.shape[0]}; pass n={images.shape[0]} or fewer."
        )
    images = images[:n]
    device = resolve_device(cfg.device)
    network = metrics.load_feature_network(protocol.network, weights_path=cfg.inception_weights, device=device)
    cache = Path(cfg.cache_dir).expanduser()
    real = real_statistics(protocol, network, cache, device)
    values = score_images(protocol, network, real, coverage_inputs(protocol, cache, device), images, cfg.seed)
    return {
        "images": str(cfg.images),
        "num_images": n,
        "preset": name,
        "protocol_key": protocol.key(),
        "network": network.describe() if hasattr(network, "describe") else {"network": network.name},
        "metrics": {k: v.as_dict() for k, v in values.items()},
    }


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(__doc__.strip() + "\n\n" + USAGE)
        return 0
    try:
        cfg = parse_score_args(args)
        result = score(cfg)
    except (ConfigError, DataError, metrics.MetricsError) as exc:
        print(f"gan-score: error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2, sort_keys=True, default=str)
    if cfg.out:
        atomic_write(Path(cfg.out), lambda tmp: tmp.write_text(text + "\n"))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
