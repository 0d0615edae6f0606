"""Image datasets for the trainer and the benchmark harness.

What ships where:

* ``digits`` ships inside scikit-learn (``load_digits``: 1,797 8x8 grayscale digits,
  values 0..16), so it works offline everywhere; it is the dataset the tests and the
  quick benchmarks use. It has no official split, so we make one: a fixed permutation
  (``numpy.random.default_rng(0)``) whose first 80% (1,437 images) is ``train`` and the
  remaining 20% (360) is ``test``; ``all`` is every image. Within a split images keep
  their original scikit-learn order. The whole split is precomputed as one tensor
  (``.images``), so a trainer can index it directly.
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

import os
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10", "celeba", "folder")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")

DEFAULT_ROOT = "~/.cache/began_plugin/data"
ROOT_ENV_VAR = "BEGAN_DATA_ROOT"

DIGITS_SPLIT_SEED = 0
DIGITS_TRAIN_FRACTION = 0.8

# Native channel counts are known without touching disk, so a channel mismatch is
# reported as such even when the files are missing too.
_NATIVE_CHANNELS = {"digits": 1, "mnist": 1, "fashion_mnist": 1, "cifar10": 3, "celeba": 3}

_SPLITS = {
    "digits": ("train", "test", "all"),
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
            raw, size=(image_size, image_size), mode="bilinear", align_corners=False,
            antialias=image_size < raw.shape[-1],
        )
    # Bilinear weights are convex so the range holds; the clamp only removes float dust.
    images = (raw * 2.0 - 1.0).clamp_(-1.0, 1.0).contiguous()
    labels = torch.as_tensor(bunch.target[idx], dtype=torch.long)
    return ImageDataset(
        name="digits", split=split, root=None, image_size=image_size, channels=1,
        length=images.shape[0], images=images, labels=labels, num_classes=10,
    )


# ---------------------------------------------------------------- torchvision


def _pil_transform(image_size: int, channels: int):
    from torchvision import transforms

    return transforms.Compose([
        transforms.Resize(image_size),
        transforms.CenterCrop(image_size),
        transforms.ToTensor(),
        transforms.Normalize([0.5] * channels, [0.5] * channels),
    ])


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
        name=name, split=split, root=root_path, image_size=image_size, channels=channels,
        length=len(base), getter=getter, labels=labels, num_classes=num_classes,
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


def _build_folder(
    root: str | None, image_size: int, split: str, channels: int | None, skip_bad_files: bool
) -> ImageDataset:
    if root is None:
        raise DataError(
            "The folder dataset needs a directory of images but no root was given; "
            "pass data.root=DIR pointing at it."
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
                img = im.convert(mode)
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
        name="folder", split=split, root=str(root_path), image_size=image_size, channels=channels,
        length=len(files), getter=getter, labels=labels, num_classes=num_classes, files=files,
    )
