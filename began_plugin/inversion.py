"""``gan-invert`` and ``gan-interpolate``: the BEGAN paper's §4 experiments, for any registered model.

gan-invert run=RUN_DIR images=real.npz out=inverted.npz     # z, reconstructions and per-image L1 of real images
gan-interpolate run=RUN_DIR seeds=0,1 out=strip.png          # G along the line (top) and the arc (below) of two z
gan-interpolate run=RUN_DIR images=real.npz out=strip.png    # the same between two real images' inverted z

Inversion (§4: "Adam", "mean |x - G(z)|") searches, for each image x, the z that minimises the mean
absolute difference between x and G(z), in the [-1, 1] pixel scale; after every step z is projected onto
the model's latent range (the contract's ``latent_bounds`` hook; BEGAN's is [-1, 1]).  Each search keeps
the z with the lowest error it has seen; with ``restarts`` starts per image, the best of them.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import MISSING

from began_plugin.atomic_files import atomic_write
from began_plugin.interface import optional_hook
from began_plugin.registry import RegistryError
from began_plugin.training.checkpoint import CheckpointError
from began_plugin.training.config import ConfigError, parse_command
from began_plugin.training.run_directory import read_config
from began_plugin.training.sample import load_run, to_uint8_hwc

INVERT_USAGE = (
    "usage: gan-invert run=RUN_DIR images=FILE.npz|DIR out=FILE.npz [steps=500] [lr=0.05] [seed=0] [restarts=1] "
    "[device=cpu] [n=N]; images= is an .npz with a uint8 N x H x W x C array 'images' (as gan-sample writes) or a "
    "folder of PNGs, at the run's image size and channels; out= is a new .npz (z, reconstructions, l1)."
)
INTERPOLATE_USAGE = (
    "usage: gan-interpolate run=RUN_DIR out=FILE.png [seeds=A,B] [images=FILE.npz|DIR] [steps=8] "
    "[mode=both|linear|slerp] [device=cpu] [invert_steps=500] [invert_lr=0.05] [invert_restarts=1] "
    "[invert_seed=0]; seeds= draws the two z from two seeds (default 0,1), images= inverts its first two images "
    "instead; out= is a new PNG."
)
MODES = {"both": ("linear", "slerp"), "linear": ("linear",), "slerp": ("slerp",)}
PADDING = 2  # pixels between the tiles of a strip, and around it


@dataclass
class InvertConfig:
    run: str = MISSING  # the out= directory of a gan-train run
    images: str = MISSING  # an .npz with a uint8 array "images" (N x H x W x C), or a folder of PNGs
    out: str = MISSING  # a new FILE.npz
    steps: int = 500  # Adam steps per start (0: the starts themselves)
    lr: float = 0.05
    seed: int = 0  # seeds the starts (model.sample_z, on the CPU)
    restarts: int = 1  # starts per image; the best is kept
    device: str = "cpu"
    n: int | None = None  # invert the first n images; None: all


@dataclass
class InterpolateConfig:
    run: str = MISSING
    out: str = MISSING  # a new FILE.png
    seeds: str | None = None  # "A,B": z from model.sample_z(1) seeded with A and with B; None: 0,1
    images: str | None = None  # instead of seeds: the first two images of an .npz or a folder of PNGs
    steps: int = 8  # images per row, both ends included
    mode: str = "both"  # both (linear above slerp) | linear | slerp
    device: str = "cpu"
    invert_steps: int = 500  # images=: gan-invert's steps, lr, restarts and seed
    invert_lr: float = 0.05
    invert_restarts: int = 1
    invert_seed: int = 0


# -- inversion ----------------------------------------------------------------------------------------------
def latent_bounds(model: torch.nn.Module) -> tuple[float, float] | None:
    """The model's latent range (its ``latent_bounds`` hook), checked; None: unbounded."""
    bounds = optional_hook(model, "latent_bounds")()
    if bounds is None:
        return None
    low, high = (float(b) for b in bounds)
    if not low < high:
        raise ValueError(
            f"{type(model).__name__}.latent_bounds() returned {bounds!r}; expected (low, high), low < high."
        )
    return low, high


def project(z: torch.Tensor, bounds: tuple[float, float] | None) -> torch.Tensor:
    """z clamped into ``bounds`` (unchanged when None)."""
    return z if bounds is None else z.clamp(*bounds)


def reconstruction_error(model: torch.nn.Module, images: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Per image, the mean |x - G(z)| in the [-1, 1] pixel scale (CPU, float32)."""
    device = next(model.parameters()).device
    with torch.no_grad():
        fake = model.generate(z.to(device)).float()
        return (fake - images.to(device).float()).abs().flatten(1).mean(1).cpu()


def invert(
    model: torch.nn.Module,
    images: torch.Tensor,
    steps: int = 500,
    lr: float = 0.05,
    seed: int = 0,
    restarts: int = 1,
    batch_size: int = 256,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The z whose G(z) is nearest in mean L1 to each of ``images`` (N x C x H x W in [-1, 1]).

    Image i's r-th start is row i of the r-th of ``restarts`` draws ``model.sample_z(N)`` from one CPU
    generator seeded with ``seed`` (the first draw is ``model.sample_z(N, generator=torch.Generator()
    .manual_seed(seed))``).  Each start takes ``steps`` Adam steps on its own image's error, is projected onto
    the model's latent range after each, and keeps the z of lowest error it has seen; the best start wins.
    Images are searched independently (the model is in eval mode), ``batch_size`` images x starts at a time
    (which changes the results by rounding only).

    Returns ``(z, reconstructions, l1)`` on the CPU: N x z_dim float32, G(z) in [-1, 1], and per image the
    mean |x - G(z)|.
    """
    if steps < 0 or restarts < 1 or not lr > 0:
        raise ValueError(f"steps={steps} must be >= 0, restarts={restarts} >= 1 and lr={lr} > 0.")
    images = images.float()
    n = images.shape[0]
    bounds = latent_bounds(model)
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    starts = torch.stack([model.sample_z(n, generator=gen).float().cpu() for _ in range(restarts)])  # R x N x d
    per_chunk = max(1, batch_size // restarts)
    found = []
    for lo in range(0, n, per_chunk):
        x = images[lo : lo + per_chunk].to(device)
        b = x.shape[0]
        z0 = starts[:, lo : lo + b].reshape(restarts * b, -1)
        found.append(_search(model, x.repeat(restarts, 1, 1, 1), z0.to(device), steps, lr, bounds, restarts, b))
    z = torch.cat(found)
    with torch.no_grad():
        recon = torch.cat(
            [model.generate(z[i : i + batch_size].to(device)).float().cpu() for i in range(0, n, batch_size)]
        )
    l1 = (recon - images.cpu()).abs().flatten(1).mean(1)
    return z, recon, l1


def _search(model, target, z0, steps, lr, bounds, restarts, b) -> torch.Tensor:
    """The best z per image of ``restarts`` stacked searches (rows r*b + i), on the CPU."""
    z = project(z0.clone(), bounds).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    best_err = torch.full((z.shape[0],), math.inf, device=z.device)
    best_z = z.detach().clone()
    with torch.enable_grad():
        for step in range(steps + 1):
            err = (model.generate(z).float() - target).abs().flatten(1).mean(1)
            with torch.no_grad():
                better = err < best_err
                best_err = torch.where(better, err, best_err)
                best_z[better] = z[better]
            if step == steps:
                break
            opt.zero_grad(set_to_none=True)
            err.sum().backward(inputs=[z])  # the sum: each z's gradient is that of its own image's error
            opt.step()
            if bounds is not None:
                with torch.no_grad():
                    z.clamp_(*bounds)
    pick = best_err.view(restarts, b).argmin(0)
    return best_z.view(restarts, b, -1)[pick, torch.arange(b, device=pick.device)].detach().cpu()


# -- interpolation ------------------------------------------------------------------------------------------
def fractions(steps: int) -> torch.Tensor:
    """``steps`` fractions from exactly 0 to exactly 1 (float64)."""
    if steps < 2:
        raise ValueError(f"steps={steps} must be at least 2 (both ends).")
    return torch.arange(steps, dtype=torch.float64) / (steps - 1)


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(1 - t) z0 + t z1 for each fraction of ``t``: len(t) x d, exactly z0 at t=0 and z1 at t=1."""
    a, b = z0.double().flatten(), z1.double().flatten()
    t = t.double()[:, None]
    return ((1 - t) * a + t * b).to(z0.dtype)


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985; White 2016 for GANs) for each fraction of ``t``: len(t) x d.

    sin((1 - t) w) / sin w * z0 + sin(t w) / sin w * z1, w the angle between z0 and z1: exactly z0 at t=0
    and z1 at t=1, the norm kept when |z0| = |z1|.  Where w is 0 or pi (no unique arc), the line.
    """
    a, b = z0.double().flatten(), z1.double().flatten()
    norms = a.norm() * b.norm()
    if norms == 0:
        return lerp(z0, z1, t)
    omega = torch.arccos((a @ b / norms).clamp(-1.0, 1.0))
    sin = torch.sin(omega)
    if sin < 1e-7:
        return lerp(z0, z1, t)
    t = t.double()[:, None]
    return (torch.sin((1 - t) * omega) / sin * a + torch.sin(t * omega) / sin * b).to(z0.dtype)


def latent_path(
    z0: torch.Tensor, z1: torch.Tensor, steps: int, kind: str, bounds: tuple[float, float] | None = None
) -> torch.Tensor:
    """``steps`` codes from z0 to z1 along ``kind`` (linear | slerp), projected onto ``bounds``."""
    paths = {"linear": lerp, "slerp": slerp}
    if kind not in paths:
        raise ValueError(f"kind={kind!r} is not one of {sorted(paths)}.")
    return project(paths[kind](z0, z1, fractions(steps)), bounds)


def strip_size(rows: int, columns: int, image_size: int, padding: int = PADDING) -> tuple[int, int]:
    """(width, height) in pixels of a strip of rows x columns tiles (torchvision's make_grid layout)."""
    return columns * (image_size + padding) + padding, rows * (image_size + padding) + padding


# -- the commands' input and output -------------------------------------------------------------------------
def _check_new_file(value: str, key: str, suffix: str) -> Path:
    """``value`` as a new file ending in ``suffix`` in a writable place, or a ConfigError."""
    path = Path(value)
    if path.suffix.lower() != suffix:
        raise ConfigError(f"{key}={value!r} must be a file name ending in {suffix}; e.g. {key}=result{suffix}.")
    if path.exists():
        raise ConfigError(f"{key}={value!r} already exists; choose a new file name, or delete it first.")
    folder = path.parent
    while not folder.exists():  # the nearest directory that exists is the one we must be able to write in
        folder = folder.parent
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"{key}={value!r} cannot be written ({folder} is read-only); choose a writable place.")
    return path


def _check_seed(value: int, key: str) -> None:
    if not 0 <= value < 2**63:
        raise ConfigError(f"{key}={value} is outside [0, 2**63); pass a non-negative integer such as {key}=0.")


def _check_search(steps: int, lr: float, restarts: int, seed: int, prefix: str = "") -> None:
    if steps < 0:
        raise ConfigError(f"{prefix}steps={steps} must be 0 or more (0 keeps the starting z).")
    if not lr > 0:
        raise ConfigError(f"{prefix}lr={lr} must be > 0; pass e.g. {prefix}lr=0.05.")
    if restarts < 1:
        raise ConfigError(f"{prefix}restarts={restarts} must be a positive integer (starts per image).")
    _check_seed(seed, f"{prefix}seed")


def parse_invert_args(args: list[str]) -> InvertConfig:
    cfg = parse_command(InvertConfig, args, "inverter", INVERT_USAGE, required=("run", "images", "out"))
    _check_search(cfg.steps, cfg.lr, cfg.restarts, cfg.seed)
    if cfg.n is not None and cfg.n < 1:
        raise ConfigError(f"n={cfg.n} must be a positive integer (the number of images to invert), or left out.")
    _check_new_file(cfg.out, "out", ".npz")
    return cfg


def parse_interpolate_args(args: list[str]) -> tuple[InterpolateConfig, tuple[int, int] | None]:
    """The configuration and the two seeds (None when images= gives the ends)."""
    cfg = parse_command(InterpolateConfig, args, "interpolator", INTERPOLATE_USAGE, required=("run", "out"))
    if cfg.mode not in MODES:
        raise ConfigError(f"mode={cfg.mode!r} is not one of {list(MODES)}; pick one of them.")
    if cfg.steps < 2:
        raise ConfigError(f"steps={cfg.steps} must be at least 2 (the images per row, both ends included).")
    seeds = None
    if cfg.images is not None:
        if cfg.seeds is not None:
            raise ConfigError("seeds= and images= both name the two ends; pass one of them.")
        _check_search(cfg.invert_steps, cfg.invert_lr, cfg.invert_restarts, cfg.invert_seed, prefix="invert_")
    else:
        parts = str(cfg.seeds if cfg.seeds is not None else "0,1").split(",")
        try:
            seeds = tuple(int(p.strip()) for p in parts)
        except ValueError:
            seeds = ()
        if len(seeds) != 2:
            raise ConfigError(f"seeds={cfg.seeds!r} must be two integers separated by a comma, e.g. seeds=0,1.")
        for s in seeds:
            _check_seed(s, "seeds")
    _check_new_file(cfg.out, "out", ".png")
    return cfg, seeds


def _png_to_array(path: Path) -> np.ndarray:
    """One PNG as uint8 H x W x C (C = 1 for grayscale, 3 for colour), or a ConfigError."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode.startswith("I;16") or mode == "I":
                from began_plugin.data import DataError, _to_8bit

                try:
                    im = _to_8bit(im, path)
                except DataError as exc:
                    raise ConfigError(str(exc)) from None
            elif mode == "1":
                im = im.convert("L")
            elif mode == "P":
                im = im.convert("RGB")
            elif mode not in ("L", "RGB"):
                raise ConfigError(
                    f"images: {path} has PIL mode {mode}; only grayscale and RGB PNGs are read: convert it to L or RGB."
                )
            array = np.asarray(im, dtype=np.uint8)
    except ConfigError:
        raise
    except Exception as exc:  # PIL raises many types for bad files; all mean "unreadable"
        raise ConfigError(
            f"images: {path} cannot be read as a PNG ({type(exc).__name__}: {exc}); fix or remove it."
        ) from None
    return array[:, :, None] if array.ndim == 2 else array


def load_images(source: str, image_size: int, channels: int, n: int | None = None) -> np.ndarray:
    """The first n (all when None) images of an .npz ('images', uint8 N x H x W x C) or a folder of PNGs.

    They must be image_size x image_size with ``channels`` channels; anything else is a ConfigError.
    """
    path = Path(source)
    fix = f"the run draws {image_size} x {image_size} images with {channels} channel{'s' if channels > 1 else ''}"
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith("."))
        if not files:
            raise ConfigError(f"images={source!r} is a folder with no .png files; put the images to invert there.")
        files = files[:n] if n is not None else files
        arrays = []
        for f in files:
            a = _png_to_array(f)
            if a.shape != (image_size, image_size, channels):
                raise ConfigError(
                    f"images: {f} is {a.shape[1]} x {a.shape[0]} with {a.shape[2]} channel(s) but {fix}; "
                    f"resize or convert it."
                )
            arrays.append(a)
        images = np.stack(arrays)
    elif path.suffix.lower() == ".npz" and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                if "images" not in data.files:
                    raise ConfigError(
                        f"images={source!r} holds no array 'images' (it holds {sorted(data.files)}); write one "
                        f"uint8 N x H x W x C array named 'images', as gan-sample does."
                    )
                images = data["images"]
        except ConfigError:
            raise
        except Exception as exc:  # a truncated or foreign file: zipfile, pickle and format errors alike
            raise ConfigError(
                f"images={source!r} cannot be read as an .npz ({type(exc).__name__}: {str(exc)[:120]}); "
                f"pass one gan-sample wrote, or a folder of PNGs."
            ) from None
        if images.dtype != np.uint8 or images.ndim != 4:
            raise ConfigError(
                f"images={source!r} holds a {images.dtype} array of shape {images.shape}; expected uint8 "
                f"N x H x W x C, as gan-sample writes."
            )
        if images.shape[1:] != (image_size, image_size, channels):
            raise ConfigError(
                f"images={source!r} holds {images.shape[2]} x {images.shape[1]} images with {images.shape[3]} "
                f"channel(s) but {fix}; pass images of that size."
            )
        images = images[:n] if n is not None else images
    elif not path.exists():
        raise ConfigError(f"images={source!r} does not exist; pass an .npz with an array 'images' or a folder of PNGs.")
    else:
        raise ConfigError(f"images={source!r} is neither an .npz file nor a folder of PNGs; pass one of those.")
    if images.shape[0] == 0:
        raise ConfigError(f"images={source!r} holds no images; pass at least one.")
    if n is not None and images.shape[0] < n:
        raise ConfigError(f"n={n} asks for more images than images={source!r} holds ({images.shape[0]}); lower n=.")
    return images


def to_float(images: np.ndarray) -> torch.Tensor:
    """uint8 N x H x W x C -> float N x C x H x W in [-1, 1] (the data's scale)."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


def _load(run: str, device: str) -> tuple[torch.nn.Module, int, int]:
    """The run's model (with G's moving average when kept), its image size and channels."""
    from began_plugin.training.loop import resolve_device

    # The device first: a missing GPU is the command's fault, never the checkpoint's.
    model = load_run(Path(run), resolve_device(device), average=True)
    config = read_config(Path(run) / "config.json")
    return model, int(config["image_size"]), int(config["image_channels"])


class WriteError(Exception):
    """Writing the output failed (exit 4); the message is one sentence."""


def _write(out: Path, write) -> None:
    """``atomic_write(out, write)``, its OSError as a WriteError."""
    try:
        atomic_write(out, write)
    except OSError as exc:
        raise WriteError(
            f"writing {out} failed ({exc.strerror or exc}); free space or choose another out=, then rerun "
            f"(nothing was written there)."
        ) from None


def _fail(command: str, exc: Exception) -> int:
    print(f"{command}: error: {exc}", file=sys.stderr)
    return 4 if isinstance(exc, WriteError) else 2


def invert_main(argv: list[str] | None = None) -> int:
    """``gan-invert``: invert real images; writes z, reconstructions and l1, prints one JSON line."""
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(__doc__.strip() + "\n\n" + INVERT_USAGE)
        return 0
    try:
        cfg = parse_invert_args(args)
        model, image_size, channels = _load(cfg.run, cfg.device)
        images = to_float(load_images(cfg.images, image_size, channels, cfg.n))
        gen = torch.Generator().manual_seed(cfg.seed)
        start = reconstruction_error(model, images, model.sample_z(images.shape[0], generator=gen))
        z, recon, l1 = invert(model, images, cfg.steps, cfg.lr, cfg.seed, cfg.restarts)
        arrays = {"z": z.numpy().astype(np.float32), "reconstructions": to_uint8_hwc(recon), "l1": l1.numpy()}

        def write_npz(tmp: Path) -> None:
            with open(tmp, "wb") as fh:  # a file object: numpy would append .npz to a path
                np.savez_compressed(fh, **arrays)

        _write(Path(cfg.out), write_npz)
    except (ConfigError, CheckpointError, RegistryError, WriteError) as exc:
        return _fail("gan-invert", exc)
    summary = {
        "command": "gan-invert",
        "run": cfg.run,
        "images": cfg.images,
        "out": cfg.out,
        "n": int(l1.shape[0]),
        "steps": cfg.steps,
        "lr": cfg.lr,
        "seed": cfg.seed,
        "restarts": cfg.restarts,
        "l1_mean": float(l1.mean()),
        "l1_std": float(l1.std(correction=0)),  # over the images
        "l1_start_mean": float(start.mean()),  # of the first starts, before any step
    }
    print(json.dumps(summary))
    return 0


def interpolate_main(argv: list[str] | None = None) -> int:
    """``gan-interpolate``: a PNG strip between two z (two seeds, or two real images' inverted z)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(__doc__.strip() + "\n\n" + INTERPOLATE_USAGE)
        return 0
    try:
        cfg, seeds = parse_interpolate_args(args)
        model, image_size, channels = _load(cfg.run, cfg.device)
        summary = {"command": "gan-interpolate", "run": cfg.run, "out": cfg.out, "rows": list(MODES[cfg.mode])}
        real = None
        if seeds is not None:
            z0, z1 = (model.sample_z(1, generator=torch.Generator().manual_seed(s)).float().cpu() for s in seeds)
            summary["seeds"] = list(seeds)
        else:
            real = to_float(load_images(cfg.images, image_size, channels))[:2]
            if real.shape[0] < 2:
                raise ConfigError(f"images={cfg.images!r} holds one image; the two ends need two.")
            z, _, l1 = invert(model, real, cfg.invert_steps, cfg.invert_lr, cfg.invert_seed, cfg.invert_restarts)
            z0, z1 = z[:1], z[1:2]
            summary.update(images=cfg.images, l1=[float(v) for v in l1], l1_mean=float(l1.mean()))
        bounds = latent_bounds(model)
        device = next(model.parameters()).device
        rows = []
        with torch.no_grad():
            for kind in MODES[cfg.mode]:
                tiles = model.generate(latent_path(z0, z1, cfg.steps, kind, bounds).to(device)).float().cpu()
                rows.append(tiles if real is None else torch.cat([real[:1], tiles, real[1:2]]))
        columns = rows[0].shape[0]
        _write_strip(Path(cfg.out), torch.cat(rows), columns)
        summary.update(columns=columns, size=list(strip_size(len(rows), columns, image_size)))
    except (ConfigError, CheckpointError, RegistryError, WriteError) as exc:
        return _fail("gan-interpolate", exc)
    print(json.dumps(summary))
    return 0


def _write_strip(out: Path, tiles: torch.Tensor, columns: int) -> None:
    from torchvision.utils import make_grid, save_image

    grid = make_grid(tiles * 0.5 + 0.5, nrow=columns, padding=PADDING)
    _write(out, lambda tmp: save_image(grid, tmp, format="png"))
