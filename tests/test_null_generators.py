"""Null generators: inputs that are not digits must cover no digit class; real digits must cover all ten.

The digits classifier is confident on things that are not digits (smooth random blobs, all-white images), so
the confidence-only count ("old rule", ``class_counts`` without a manifold mask) can be passed by noise.
``classes_covered`` ("new rule") also asks each counted sample to lie inside the real manifold (k-NN balls,
k = 3, in the classifier's penultimate features). The real reference is the digits test split (360 images,
never used to train the classifier), as the digits benchmark protocol uses it. Density and coverage
(Naeem et al. 2020) are checked on the same inputs through ``feature_space_metrics`` with the stand-in
feature network, as the harness calls it. Run with ``-s`` to see the measured table.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from began_plugin.data import build_dataset
from began_plugin.metrics import MetricsError, feature_space_metrics, images_to_statistics, load_feature_network
from began_plugin.metrics import coverage as cv

N = 1000


def _uniform(g: torch.Generator, test) -> torch.Tensor:
    return torch.rand(N, 1, 32, 32, generator=g) * 2 - 1


def _blobs(g: torch.Generator, test) -> torch.Tensor:
    # 4 x 4 uniform noise upsampled bilinearly: smooth, stroke-sized light and dark regions.
    return F.interpolate(torch.rand(N, 1, 4, 4, generator=g) * 2 - 1, size=32, mode="bilinear", align_corners=False)


def _black(g: torch.Generator, test) -> torch.Tensor:
    return -torch.ones(N, 1, 32, 32)


def _white(g: torch.Generator, test) -> torch.Tensor:
    return torch.ones(N, 1, 32, 32)


def _repeated(g: torch.Generator, test) -> torch.Tensor:
    return test.images[:1].repeat(N, 1, 1, 1)


#: name -> (generator, classes covered under the new rule, manifold fraction)
NULLS = {
    "uniform": (_uniform, 0, 0.0),
    "blobs": (_blobs, 0, 0.0),
    "black": (_black, 0, 0.0),
    "white": (_white, 0, 0.0),
    "repeated": (_repeated, 1, 1.0),
}


@pytest.fixture(scope="module")
def digits():
    return build_dataset("digits", None, 32, split="train"), build_dataset("digits", None, 32, split="test")


@pytest.fixture(scope="module")
def clf(tmp_path_factory):
    return cv.load_or_train_classifier(str(tmp_path_factory.mktemp("null-cache")), "digits", None, 32)


@pytest.fixture(scope="module")
def standin():
    net = load_feature_network("standin")
    return net, lambda x: images_to_statistics(net, [x], kid_max=x.shape[0])


@pytest.fixture(scope="module")
def inputs(digits):
    _, test = digits
    g = torch.Generator().manual_seed(0)
    return {name: make(g, test) for name, (make, _, _) in NULLS.items()}


def _old_rule(clf, images: torch.Tensor) -> int:
    probs, _ = cv._predict_with_features(clf.model, images)
    return int(cv.class_counts(probs)[3].sum())


def _row(name, clf, images, real, standin) -> dict:
    net, stats = standin
    values = cv.coverage_metrics(clf, images, real)
    fs = feature_space_metrics(net, stats(real), stats(images))
    row = {"input": name, "old": _old_rule(clf, images)} | {k: v.value for k, v in values.items()}
    row |= {k: v.value for k, v in fs.items()}
    print(
        f"{name:>22s}: old {row['old']:2d}  new {row['classes_covered']:2.0f}  confident {row['confident_fraction']:.3f}"
        f"  manifold {row['manifold_fraction']:.3f}  kl {row['class_kl']:.3f}  density {row['density']:.3f}"
        f"  coverage {row['coverage']:.3f}  precision {row['precision']:.3f}  recall {row['recall']:.3f}"
    )
    return row


@pytest.mark.parametrize("name", list(NULLS))
def test_a_null_input_covers_at_most_one_class_under_the_new_rule(name, clf, digits, inputs, standin):
    _, test = digits
    _, covered, manifold = NULLS[name]
    row = _row(name, clf, inputs[name], test.images, standin)
    assert row["classes_covered"] == covered
    assert row["manifold_fraction"] == manifold
    assert row["classes_covered"] <= row["old"]  # the new rule only removes samples from the old count
    if name == "repeated":
        # Every copy lies in the same real balls, so coverage * N_real == density * k exactly, and it is the
        # image's own ball plus a few neighbours': near 0.
        assert row["coverage"] * 360 == pytest.approx(row["density"] * cv.PR_K, abs=1e-9)
        assert 1 / 360 <= row["coverage"] < 0.02 and row["precision"] == 1.0
    else:
        # Not a digit: no sample is inside any real k-NN ball, in either feature space.
        assert row["density"] == row["coverage"] == row["precision"] == 0.0


def test_the_old_rule_is_fooled_by_the_null_inputs(clf, inputs):
    # Why the manifold test exists: confidence alone counts several classes for noise and blobs, and one for white.
    assert _old_rule(clf, inputs["uniform"]) >= 2
    assert _old_rule(clf, inputs["blobs"]) >= 2
    assert _old_rule(clf, inputs["white"]) == 1
    assert cv.coverage_metrics(clf, inputs["white"])["confident_fraction"].value == 1.0


def test_real_digits_cover_all_ten_classes(clf, digits, standin):
    train, test = digits
    # the reference itself: every sample is a centre of a real ball
    same = _row("test | test", clf, test.images, test.images, standin)
    assert same["classes_covered"] == 10 and same["manifold_fraction"] == 1.0
    # identical sets: each real ball holds itself and its k - 1 nearer neighbours (strict <), so exactly 1 and 1
    assert same["density"] == pytest.approx(1.0, abs=1e-12) and same["coverage"] == 1.0
    # held out both ways: two halves of the test split, neither seen in training nor in the other's balls
    for a, b, name in (
        (test.images[:180], test.images[180:], "test[:180] | test[180:]"),
        (test.images[180:], test.images[:180], "test[180:] | test[:180]"),
    ):
        row = _row(name, clf, a, b, standin)
        assert row["classes_covered"] == 10
        assert 0.7 < row["manifold_fraction"] < 1.0 and row["coverage"] > 0.8
    # the training split against the test-split reference, as a generator that draws real digits
    row = _row("train | test", clf, train.images, test.images, standin)
    assert row["classes_covered"] == 10
    assert 0.8 < row["manifold_fraction"] < 1.0 and row["coverage"] > 0.95 and 0.8 < row["density"] < 1.25


def test_coverage_needs_more_than_k_real_images(clf, digits):
    _, test = digits
    with pytest.raises(MetricsError, match=r"needs more than 3 real images, got 3"):
        cv.coverage_metrics(clf, test.images[:10], test.images[:3])
    with pytest.raises(MetricsError, match=r"expected real images N x 1 x 32 x 32"):
        cv.coverage_metrics(clf, test.images[:10], test.images[:10, :, :16])


def test_the_default_reference_is_the_test_split(clf, digits, inputs):
    _, test = digits
    # without real_images, the manifold is the test split's, as with real_images=test.images
    for images in (inputs["blobs"], test.images[:100]):
        default, explicit = cv.coverage_metrics(clf, images), cv.coverage_metrics(clf, images, test.images)
        for key in ("classes_covered", "confident_fraction", "manifold_fraction"):
            assert default[key].value == explicit[key].value, key
        assert default["class_kl"].value == pytest.approx(explicit["class_kl"].value, abs=1e-12)
    assert math.isclose(cv.coverage_metrics(clf, test.images)["manifold_fraction"].value, 1.0)
