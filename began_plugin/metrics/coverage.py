"""Does a generator cover the data's modes? Class coverage for labelled data; precision/recall, density/coverage.

FID mixes sample quality and diversity into one number; a GAN that draws perfect 1s only can still
score a moderate FID on digits. These metrics say *which* part of the data a generator misses.

Labelled data (digits, shapes, mnist, fashion_mnist, cifar10): a small CNN (:class:`CoverageClassifier`,
two conv blocks + a linear layer) is trained on the real ``train`` split at the protocol's image size
and channels, seeded and deterministic on the CPU, and cached like the FID statistics
(:func:`load_or_train_classifier`). On generated images (float in [-1, 1], N x C x H x W) it gives:

* ``classes_covered`` -- the number of classes that at least ``COVERAGE_MIN_FRACTION`` = 1% of the N
  samples (and at least one sample) are *confidently* classified as AND lie inside the real data's
  manifold. Confident means a max softmax probability >= ``CONFIDENCE_THRESHOLD`` = 0.9; inside means the
  k-NN test of improved precision (Kynkäänniemi et al. 2019, k = ``PR_K`` = 3) in the classifier's own
  penultimate feature space (:meth:`CoverageClassifier.penultimate`, 1024-d): the sample lies within the
  distance from some real image to that image's 3rd-nearest real neighbour (boundary inside). Why both:
  confidence alone is easy to fool (smooth random blobs are confidently classified as several digit
  classes, all-white images as one), but such inputs lie far outside every real k-NN ball, so they count
  for no class. And 1% is ten times below the share a class gets under a uniform 10-class distribution,
  so a class drawn rarely but recognisably still counts, while one or two stray samples out of several
  hundred do not.
  ``tests/test_null_generators.py`` holds the rule to noise, blobs, black, white and one repeated image.
* ``class_kl`` -- KL(generated class histogram || real test-split histogram) in nats, both over the
  classifier's argmax predictions (all samples, confident or not; the real histogram is the
  classifier's predictions on the test split, so its own confusions cancel). Each histogram gets
  ``KL_EPSILON`` = 1e-3 of probability per class before renormalising, so an empty class gives a
  finite value: at most about log(1/1e-3) = 6.9 nats. A generator drawing one class of ten uniform
  ones scores about log(10) = 2.3 nats; a perfect one 0 (up to sampling noise).
* ``confident_fraction`` -- the fraction of samples with max softmax >= 0.9 (real digits: about 0.9).
* ``manifold_fraction`` -- the fraction of samples inside the real manifold (the test above): improved
  precision in the classifier's feature space.

The real reference is the ``real_images`` the caller passes (the benchmark: the same real images as FID),
else the classifier's test split.

Any data, labelled or not: improved precision and recall (Kynkäänniemi et al. 2019) and density and
coverage (Naeem et al. 2020) over the feature vectors FID uses, in :mod:`began_plugin.metrics.precision_recall`
and :mod:`began_plugin.metrics.density_coverage` (:func:`feature_space_metrics`); their names are
re-exported here for callers of the old import path.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from pathlib import Path

import torch
from torch import nn

from began_plugin.atomic_files import atomic_save
from began_plugin.metrics.compute import MetricValue
from began_plugin.metrics.density_coverage import (
    KEY_COVERAGE,
    KEY_DENSITY,
    density_and_coverage,
    feature_space_metrics,
    inside_real_balls,
    knn_radii,
)
from began_plugin.metrics.errors import MetricsError
from began_plugin.metrics.hashing import json_sha256, state_dict_sha256
from began_plugin.metrics.precision_recall import (
    KEY_PRECISION,
    KEY_RECALL,
    PR_K,
    precision_recall,
    precision_recall_metrics,
)
from began_plugin.metrics.registry import NEEDS_CLASSIFIER, MetricSpec, register_metric

__all__ = [
    "ARCHITECTURE",
    "CONFIDENCE_THRESHOLD",
    "COVERAGE_MIN_FRACTION",
    "KL_EPSILON",
    "KEY_CLASSES_COVERED",
    "KEY_CLASS_KL",
    "KEY_CONFIDENT_FRACTION",
    "KEY_COVERAGE",
    "KEY_DENSITY",
    "KEY_MANIFOLD_FRACTION",
    "KEY_PRECISION",
    "KEY_RECALL",
    "NETWORK_COVERAGE",
    "LABELLED_DATASETS",
    "PR_K",
    "CoverageClassifier",
    "CoverageValue",
    "TrainedClassifier",
    "classifier_cache_fields",
    "classifier_cache_path",
    "classify_in_manifold",
    "coverage_metrics",
    "default_epochs",
    "density_and_coverage",
    "feature_space_metrics",
    "load_classifier",
    "load_or_train_classifier",
    "precision_recall",
    "precision_recall_metrics",
    "train_classifier",
]

NETWORK_COVERAGE = "coverage-classifier"
#: Bump when the network or its training recipe changes: old caches are then never reused.
ARCHITECTURE = "coverage-cnn-v1: conv3x3(C,32)-relu-maxpool2-conv3x3(32,64)-relu-adaptiveavgpool4-linear(1024,K); adam lr 2e-3 batch 64"
CONFIDENCE_THRESHOLD = 0.9
COVERAGE_MIN_FRACTION = 0.01
KL_EPSILON = 1e-3

KEY_CLASSES_COVERED = "classes_covered"
KEY_CLASS_KL = "class_kl"
KEY_CONFIDENT_FRACTION = "confident_fraction"
KEY_MANIFOLD_FRACTION = "manifold_fraction"

# Class counts tie often (every model at 10, or at 0), so a tie bolds no one.
register_metric(MetricSpec(KEY_CLASSES_COVERED, True, digits=2, tie_bolds_none=True, needs=NEEDS_CLASSIFIER, order=70))
register_metric(MetricSpec(KEY_CLASS_KL, False, digits=3, tie_bolds_none=True, needs=NEEDS_CLASSIFIER, order=80))
# Shown but never bolded: a collapsed generator can be confidently wrong about one class only.
register_metric(
    MetricSpec(
        KEY_CONFIDENT_FRACTION, True, digits=2, ranked=False, tie_bolds_none=True, needs=NEEDS_CLASSIFIER, order=90
    )
)
# Shown but never bolded, for the same reason: one repeated real-looking image scores 1.0.
register_metric(
    MetricSpec(
        KEY_MANIFOLD_FRACTION, True, digits=2, ranked=False, tie_bolds_none=True, needs=NEEDS_CLASSIFIER, order=95
    )
)

#: Datasets whose classes the coverage classifier learns.
LABELLED_DATASETS = ("digits", "shapes", "mnist5k", "mnist", "fashion_mnist", "cifar10")
#: (train, test) splits of the classifier where they are not ("train", "test"): mnist5k's GAN training set is
#: all of it, so the classifier learns on 4,000 of those digits and is checked on the other 1,000.
CLASSIFIER_SPLITS = {"mnist5k": ("fit", "holdout")}

_BATCH_SIZE = 64
_LR = 2e-3


class CoverageClassifier(nn.Module):
    """Two conv blocks and a linear layer; any square input size >= 4 (adaptive pooling to 4 x 4)."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
        )
        self.head = nn.Linear(64 * 16, num_classes)

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        """The 1024-d features the last linear layer reads (N x 1024): the space of the real-manifold test."""
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.penultimate(x))


@dataclasses.dataclass(frozen=True)
class CoverageValue(MetricValue):
    """A :class:`MetricValue` that also says how good the classifier behind it is."""

    classifier_test_accuracy: float | None = None


@dataclasses.dataclass
class TrainedClassifier:
    """A trained coverage classifier with what the metrics need from the real data."""

    model: CoverageClassifier
    fields: dict
    test_accuracy: float
    #: The classifier's argmax-prediction histogram (probabilities) on the real test split.
    real_histogram: torch.Tensor
    num_test: int
    weights_sha256: str
    train_seconds: float = 0.0
    #: Where the test split (the default real reference of coverage_metrics) is read from; not cached.
    data_root: str | None = None
    test_split: str = "test"
    #: The test split's penultimate features, read on first use.
    _test_features: torch.Tensor | None = dataclasses.field(default=None, init=False, repr=False, compare=False)

    @property
    def num_classes(self) -> int:
        return int(self.real_histogram.numel())

    def provenance(self) -> dict:
        return {
            "network": NETWORK_COVERAGE,
            "weights_sha256": self.weights_sha256,
            "test_accuracy": self.test_accuracy,
            "num_test": self.num_test,
            "fields": self.fields,
        }


def default_epochs(dataset: str) -> int:
    """Enough passes for > 95% test accuracy on digits (1,437 images) and shapes (4,000); the big sets need fewer."""
    return {"digits": 10, "shapes": 10, "mnist5k": 10}.get(dataset, 4)


def _torch_version() -> str:
    return torch.__version__.split("+")[0]


def classifier_cache_fields(
    *,
    dataset: str,
    image_size: int,
    channels: int,
    num_classes: int,
    seed: int = 0,
    epochs: int | None = None,
    split: str = "train",
) -> dict:
    """Everything that changes the trained classifier, as a JSON-serialisable dict."""
    return {
        "dataset": str(dataset),
        "split": str(split),
        "image_size": int(image_size),
        "channels": int(channels),
        "num_classes": int(num_classes),
        "seed": int(seed),
        "architecture": ARCHITECTURE,
        "epochs": int(default_epochs(dataset) if epochs is None else epochs),
        "torch": _torch_version(),
    }


def classifier_cache_path(cache_dir: str, fields: dict) -> str:
    return os.path.join(cache_dir, f"{fields['dataset']}-{NETWORK_COVERAGE}-{json_sha256(fields)[:20]}.pt")


def _weights_sha256(state: dict[str, torch.Tensor]) -> str:
    # Without dtypes, as every cached classifier's recorded hash was made: with them no cache would load.
    return state_dict_sha256(state, include_dtype=False)


def _split_tensors(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole split as (images in [-1, 1], labels); read once (uint8 in memory for disk datasets)."""
    if dataset.labels is None:
        raise MetricsError(
            f"dataset {dataset.name!r} has no class labels, so no coverage classifier can be trained for it; "
            "use precision/recall (precision_recall) for unlabelled data."
        )
    if dataset.images is not None:
        return dataset.images, dataset.labels
    chunks = []
    for i in range(0, len(dataset), 1000):
        batch = torch.stack([dataset[j] for j in range(i, min(i + 1000, len(dataset)))])
        chunks.append(((batch + 1) * 127.5).round().clamp(0, 255).to(torch.uint8))
    return torch.cat(chunks), dataset.labels


@contextlib.contextmanager
def _one_cpu_thread():
    """CPU kernels split reductions by thread, so 1 vs 2 threads give different bits: always use one."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _as_float(batch: torch.Tensor) -> torch.Tensor:
    return batch.float() / 127.5 - 1.0 if batch.dtype == torch.uint8 else batch.float()


@torch.no_grad()
def _predict(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Softmax probabilities, N x K."""
    model.eval()
    device = next(model.parameters()).device
    out = [
        torch.softmax(model(_as_float(images[i : i + batch_size]).to(device)), dim=1).cpu()
        for i in range(0, images.shape[0], batch_size)
    ]
    return torch.cat(out) if out else torch.zeros(0, model.head.out_features)


@torch.no_grad()
def _predict_with_features(
    model: CoverageClassifier, images: torch.Tensor, batch_size: int = 500
) -> tuple[torch.Tensor, torch.Tensor]:
    """(softmax probabilities N x K, penultimate features N x 1024 in float64), in one pass."""
    model.eval()
    device = next(model.parameters()).device
    probs, feats = [], []
    for i in range(0, images.shape[0], batch_size):
        f = model.penultimate(_as_float(images[i : i + batch_size]).to(device))
        probs.append(torch.softmax(model.head(f), dim=1).cpu())
        feats.append(f.cpu().double())
    if not probs:
        return torch.zeros(0, model.head.out_features), torch.zeros(0, model.head.in_features, dtype=torch.float64)
    return torch.cat(probs), torch.cat(feats)


def train_classifier(
    train_set, test_set, *, seed: int = 0, epochs: int | None = None, device: str | torch.device = "cpu"
) -> TrainedClassifier:
    """Train the coverage classifier on ``train_set`` and measure it on ``test_set`` (ImageDatasets).

    Seeded and deterministic on the CPU (one thread, whatever the process uses: thread counts change the bits);
    the global random state and thread count are left as they were.
    """
    fields = classifier_cache_fields(
        dataset=train_set.name,
        image_size=train_set.image_size,
        channels=train_set.channels,
        num_classes=train_set.num_classes,
        seed=seed,
        epochs=epochs,
        split=train_set.split,
    )
    x_train, y_train = _split_tensors(train_set)
    x_test, y_test = _split_tensors(test_set)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]), _one_cpu_thread():
        torch.manual_seed(seed)
        model = CoverageClassifier(train_set.channels, train_set.num_classes).to(device)
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=_LR)
        n = x_train.shape[0]
        for _ in range(fields["epochs"]):
            model.train()
            order = torch.randperm(n, generator=gen)
            for i in range(0, n, _BATCH_SIZE):
                idx = order[i : i + _BATCH_SIZE]
                logits = model(_as_float(x_train[idx]).to(device))
                loss = nn.functional.cross_entropy(logits, y_train[idx].to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    seconds = time.perf_counter() - start
    model = model.cpu().eval()
    with _one_cpu_thread():
        probs = _predict(model, x_test)
    pred = probs.argmax(1)
    accuracy = float((pred == y_test).float().mean())
    hist = torch.bincount(pred, minlength=train_set.num_classes).double() / max(1, pred.numel())
    state = model.state_dict()
    return TrainedClassifier(model, fields, accuracy, hist, int(pred.numel()), _weights_sha256(state), seconds)


def save_classifier(path: str, clf: TrainedClassifier) -> None:
    blob = {
        "fields": json.dumps(clf.fields, sort_keys=True),
        "key": json_sha256(clf.fields),
        "state_dict": clf.model.state_dict(),
        "test_accuracy": float(clf.test_accuracy),
        "real_histogram": clf.real_histogram,
        "num_test": int(clf.num_test),
        "weights_sha256": clf.weights_sha256,
        "train_seconds": float(clf.train_seconds),
    }
    atomic_save(blob, Path(path))


def load_classifier(path: str, fields: dict) -> TrainedClassifier:
    """Read a classifier written by :func:`save_classifier`, refusing one written for other settings."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        stored = json.loads(blob["fields"])
        state = blob["state_dict"]
    except Exception as e:
        raise MetricsError(
            f"the coverage classifier cache {path!r} is unreadable ({type(e).__name__}); delete it so it is retrained."
        ) from None
    if stored != fields or blob.get("key") != json_sha256(fields):
        differing = sorted(k for k in set(fields) | set(stored) if fields.get(k) != stored.get(k)) or ["key"]
        raise MetricsError(
            f"the coverage classifier cache {path!r} was trained for different settings ({', '.join(differing)} differ); "
            "delete it so it is retrained."
        )
    model = CoverageClassifier(fields["channels"], fields["num_classes"])
    model.load_state_dict(state)
    model.eval()
    sha = _weights_sha256(model.state_dict())
    if sha != blob["weights_sha256"]:
        raise MetricsError(
            f"the coverage classifier cache {path!r} does not match its recorded weights hash; delete it so it is retrained."
        )
    return TrainedClassifier(
        model,
        stored,
        float(blob["test_accuracy"]),
        blob["real_histogram"].double(),
        int(blob["num_test"]),
        sha,
        float(blob.get("train_seconds", 0.0)),
    )


def load_or_train_classifier(
    cache_dir: str,
    dataset: str,
    root: str | None,
    image_size: int,
    *,
    seed: int = 0,
    epochs: int | None = None,
    device: str | torch.device = "cpu",
    test_split: str | None = None,
) -> TrainedClassifier:
    """The cached classifier for (dataset, image size, ...), trained on its train split when missing.

    The splits are ``CLASSIFIER_SPLITS[dataset]``, else ``train`` and ``test``; ``test_split`` overrides the second.
    """
    from began_plugin.data import build_dataset

    if dataset not in LABELLED_DATASETS:
        raise MetricsError(
            f"dataset {dataset!r} has no classes for a coverage classifier (labelled ones: {list(LABELLED_DATASETS)}); "
            "use precision/recall for it."
        )
    train_split, default_test = CLASSIFIER_SPLITS.get(dataset, ("train", "test"))
    test_split = test_split or default_test
    train_set = build_dataset(dataset, root, image_size, split=train_split)
    fields = classifier_cache_fields(
        dataset=dataset,
        image_size=image_size,
        channels=train_set.channels,
        num_classes=train_set.num_classes,
        seed=seed,
        epochs=epochs,
        split=train_split,
    )
    path = classifier_cache_path(cache_dir, fields)
    if os.path.exists(path):
        clf = load_classifier(path, fields)
    else:
        test_set = build_dataset(dataset, root, image_size, split=test_split)
        clf = train_classifier(train_set, test_set, seed=seed, epochs=epochs, device=device)
        save_classifier(path, clf)
    clf.data_root, clf.test_split = root, test_split
    return clf


def class_counts(
    probs: torch.Tensor, inside: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """probs: N x K -> (predicted class, confident mask, counted samples per class, covered per class).

    A sample is confident when its top probability is at least ``CONFIDENCE_THRESHOLD``; it is counted when
    it is confident and, if ``inside`` (a boolean mask of N: inside the real manifold) is given, inside too.
    A class is covered when its count reaches ``COVERAGE_MIN_FRACTION`` of the N samples. Without ``inside``
    this is the rule before the manifold test (confidence only).
    """
    n, k = probs.shape
    conf, pred = probs.max(1)
    confident = conf >= CONFIDENCE_THRESHOLD
    counted = confident if inside is None else confident & inside.to(torch.bool)
    counts = torch.bincount(pred[counted], minlength=k)
    return pred, confident, counts, counts >= max(1, math.ceil(COVERAGE_MIN_FRACTION * n))


def _reference(clf: TrainedClassifier, real_images: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor]:
    """(argmax predictions of the real images or None for the stored test histogram, their penultimate features)."""
    if real_images is not None:
        with _one_cpu_thread():
            probs, feats = _predict_with_features(clf.model, real_images.detach().cpu())
        return probs.argmax(1), feats
    if clf._test_features is None:
        from began_plugin.data import build_dataset

        f = clf.fields
        test_set = build_dataset(f["dataset"], clf.data_root, f["image_size"], split=clf.test_split)
        with _one_cpu_thread():
            clf._test_features = _predict_with_features(clf.model, _split_tensors(test_set)[0])[1]
    return None, clf._test_features


def classify_in_manifold(
    clf: TrainedClassifier, images: torch.Tensor, real_images: torch.Tensor | None = None, *, k: int = PR_K
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The two tests of the coverage rule for ``images``: (softmax probabilities N x K, whether each lies inside
    the real reference's k-NN manifold, the reference's argmax predictions or None for the classifier's test
    split). The reference is as in :func:`coverage_metrics`."""
    real_pred, real_feats = _reference(clf, real_images)
    if real_feats.shape[0] <= k:
        raise MetricsError(
            f"the manifold test with k={k} needs more than {k} real images, got {real_feats.shape[0]}; "
            "pass more real images."
        )
    with _one_cpu_thread():
        probs, feats = _predict_with_features(clf.model, images.detach().cpu())
    return probs, inside_real_balls(real_feats, feats, knn_radii(real_feats, k), k), real_pred


def coverage_metrics(
    clf: TrainedClassifier, images: torch.Tensor, real_images: torch.Tensor | None = None, *, k: int = PR_K
) -> dict[str, CoverageValue]:
    """``classes_covered``, ``class_kl``, ``confident_fraction`` and ``manifold_fraction`` of generated ``images``.

    See the module doc. The real reference (the k-NN balls of the manifold test, with ``k`` = 3, and the
    histogram of ``class_kl``) is ``real_images`` when given (the benchmark passes the same real images as
    FID), else the classifier's test split (its histogram stored with the classifier; the images read from
    ``clf.data_root`` on first use).
    """
    if not torch.is_tensor(images) or images.dim() != 4 or images.shape[0] == 0:
        raise MetricsError(
            f"expected generated images N x C x H x W with N >= 1, got {tuple(getattr(images, 'shape', ()))}."
        )
    c, size = clf.fields["channels"], clf.fields["image_size"]
    if images.shape[1] != c or images.shape[2] != size or images.shape[3] != size:
        raise MetricsError(
            f"the coverage classifier was trained on {c} x {size} x {size} images but got "
            f"{tuple(images.shape[1:])}; use the protocol's image size and channels."
        )
    if real_images is not None and (
        not torch.is_tensor(real_images) or real_images.dim() != 4 or tuple(real_images.shape[1:]) != (c, size, size)
    ):
        raise MetricsError(
            f"expected real images N x {c} x {size} x {size}, got {tuple(getattr(real_images, 'shape', ()))}; "
            "pass the real reference at the protocol's image size and channels."
        )
    probs, inside, real_pred = classify_in_manifold(clf, images, real_images, k=k)
    n, num_classes = probs.shape
    pred, confident, _, class_covered = class_counts(probs, inside)
    covered = int(class_covered.sum())
    p = torch.bincount(pred, minlength=num_classes).double() / n
    p = (p + KL_EPSILON) / (1 + num_classes * KL_EPSILON)
    if real_pred is None:
        real_hist, num_real = clf.real_histogram.double(), clf.num_test
    else:
        real_hist = torch.bincount(real_pred, minlength=num_classes).double() / max(1, real_pred.numel())
        num_real = real_pred.numel()
    q = (real_hist + KL_EPSILON) / (1 + num_classes * KL_EPSILON)
    kl = float((p * (p / q).log()).sum())
    common = dict(
        network=NETWORK_COVERAGE,
        weights_sha256=clf.weights_sha256,
        num_real=int(num_real),
        num_fake=n,
        classifier_test_accuracy=clf.test_accuracy,
    )
    return {
        KEY_CLASSES_COVERED: CoverageValue(float(covered), **common),
        KEY_CLASS_KL: CoverageValue(kl, **common),
        KEY_CONFIDENT_FRACTION: CoverageValue(float(confident.double().mean()), **common),
        KEY_MANIFOLD_FRACTION: CoverageValue(float(inside.double().mean()), **common),
    }
