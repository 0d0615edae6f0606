"""Class coverage through a small classifier (labelled data) and k-NN precision/recall (unlabelled data)."""

import math
import shutil
import time

import pytest
import torch

from began_plugin.data import build_dataset
from began_plugin.metrics import FeatureStatistics, MetricsError
from began_plugin.metrics import coverage as cv


@pytest.fixture(scope="module")
def digits():
    return build_dataset("digits", None, 32, split="train"), build_dataset("digits", None, 32, split="test")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The digits classifier, trained once for this module through the cache (as the harness does)."""
    cache = tmp_path_factory.mktemp("coverage-cache")
    start = time.perf_counter()
    clf = cv.load_or_train_classifier(str(cache), "digits", None, 32)
    return clf, cache, time.perf_counter() - start


def test_classifier_reaches_95_percent_on_the_digits_test_split(trained, digits):
    clf, _, _ = trained
    _, test = digits
    # measured here independently of the stored figure
    with torch.no_grad():
        pred = clf.model(test.images).argmax(1)
    accuracy = (pred == test.labels).float().mean().item()
    assert accuracy > 0.95
    assert clf.test_accuracy == pytest.approx(accuracy, abs=1e-6)
    # Training time is reported (clf.train_seconds), not asserted: a wall-clock bound fails on a busy machine.
    assert clf.train_seconds > 0
    assert clf.provenance()["network"] == "coverage-classifier" and len(clf.weights_sha256) == 64


@pytest.mark.slow
def test_shapes_classifier_reaches_95_percent_and_real_shapes_cover_all_eight_classes(tmp_path):
    train, test = build_dataset("shapes", None, 32, split="train"), build_dataset("shapes", None, 32, split="test")
    clf = cv.load_or_train_classifier(str(tmp_path), "shapes", None, 32)
    with torch.no_grad():
        accuracy = (clf.model(test.images).argmax(1) == test.labels).float().mean().item()
    assert accuracy > 0.95 and clf.test_accuracy == pytest.approx(accuracy, abs=1e-6)
    values = cv.coverage_metrics(clf, test.images, real_images=train.images)
    assert values["classes_covered"].value == 8
    assert 0.0 <= values["class_kl"].value < 0.05  # E[KL] ~ (K-1)/(2N) = 7/2000 from sampling alone


def test_real_test_images_cover_all_ten_classes_with_small_kl(trained, digits):
    clf, _, _ = trained
    train, test = digits
    # generated = the 360 test images, reference = the classifier's view of the 1,437 train images
    values = cv.coverage_metrics(clf, test.images, real_images=train.images)
    assert values["classes_covered"].value == 10
    # Two histograms of the same distribution from 360 and 1,437 samples differ by sampling noise only:
    # E[KL] ~ (K-1)/(2N) = 9/720 ~ 0.0125 nats; 0.05 is 4x that, and a one-class generator scores ~2.2.
    assert 0.0 <= values["class_kl"].value < 0.05
    assert 0.8 < values["confident_fraction"].value <= 1.0  # real digits are mostly recognised confidently
    # most held-out digits lie inside the train split's k-NN balls, but not all (a ball is no convex hull)
    assert 0.8 < values["manifold_fraction"].value < 1.0
    for v in values.values():
        assert v.network == "coverage-classifier" and v.weights_sha256 == clf.weights_sha256
        assert v.num_fake == 360 and v.num_real == 1437 and v.classifier_test_accuracy == clf.test_accuracy
        assert "classifier_test_accuracy" in v.as_dict()


def test_one_image_repeated_covers_one_class_with_large_kl(trained, digits):
    clf, _, _ = trained
    _, test = digits
    image = test.images[:1]
    values = cv.coverage_metrics(clf, image.repeat(100, 1, 1, 1))
    assert values["classes_covered"].value == 1
    c = int(clf.model(image).argmax())
    # KL(delta_c || q) = ln(1/q_c) (~2.3 for 10 balanced classes); the 1e-3 smoothing lowers it by
    # about K*eps*ln(1/q_c) + K*eps*ln(1/(K*eps)) ~ 0.06, so +-0.1 around ln(1/q_c).
    assert values["class_kl"].value == pytest.approx(math.log(1 / float(clf.real_histogram[c])), abs=0.1)
    assert values["confident_fraction"].value in (0.0, 1.0)  # every copy gets the same softmax
    assert values["manifold_fraction"].value == 1.0  # the image is in the default reference, the test split


def test_a_class_needs_one_percent_of_confident_samples(trained, digits):
    clf, _, _ = trained
    _, test = digits
    with torch.no_grad():
        probs = torch.softmax(clf.model(test.images), 1)
    conf, pred = probs.max(1)
    ok = conf >= cv.CONFIDENCE_THRESHOLD
    a = int(torch.nonzero(ok & (pred == pred[ok][0]))[0])  # a confident image of one class
    b = int(torch.nonzero(ok & (pred != pred[a]))[0])  # a confident image of another class
    # 99 copies of a and 1 of b: b has exactly 1% -> covered; 199 + 1: 0.5% -> not covered
    covered = cv.coverage_metrics(clf, torch.cat([test.images[a : a + 1].repeat(99, 1, 1, 1), test.images[b : b + 1]]))
    assert covered["classes_covered"].value == 2
    rare = cv.coverage_metrics(clf, torch.cat([test.images[a : a + 1].repeat(199, 1, 1, 1), test.images[b : b + 1]]))
    assert rare["classes_covered"].value == 1


def test_wrong_image_shape_is_refused(trained):
    clf, _, _ = trained
    with pytest.raises(MetricsError, match="trained on 1 x 32 x 32"):
        cv.coverage_metrics(clf, torch.zeros(4, 3, 32, 32))


def test_cache_round_trip_and_refusal_of_a_mismatched_cache(trained, monkeypatch, tmp_path):
    clf, cache, _ = trained

    def no_training(*a, **k):
        raise AssertionError("retrained although the cache holds this classifier")

    monkeypatch.setattr(cv, "train_classifier", no_training)
    again = cv.load_or_train_classifier(str(cache), "digits", None, 32)
    assert again.weights_sha256 == clf.weights_sha256 and again.test_accuracy == clf.test_accuracy
    torch.testing.assert_close(again.real_histogram, clf.real_histogram)
    # a file written for other settings, placed where those settings look, is refused by name
    other = cv.classifier_cache_fields(dataset="digits", image_size=32, channels=1, num_classes=10, epochs=3)
    shutil.copy(cv.classifier_cache_path(str(cache), clf.fields), cv.classifier_cache_path(str(tmp_path), other))
    with pytest.raises(MetricsError, match="epochs differ"):
        cv.load_or_train_classifier(str(tmp_path), "digits", None, 32, epochs=3)
    # the key includes the torch version: a cache from another torch is not reused
    assert "torch" in clf.fields and clf.fields["torch"] == torch.__version__.split("+")[0]
    assert cv.classifier_cache_path(str(cache), {**clf.fields, "torch": "0.0"}) != cv.classifier_cache_path(
        str(cache), clf.fields
    )


def test_training_is_seeded_and_leaves_the_global_rng_alone(digits):
    train, test = digits
    small = build_dataset("digits", None, 16, split="train")
    small_test = build_dataset("digits", None, 16, split="test")
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = cv.train_classifier(small, small_test, seed=0, epochs=1)
    after = torch.rand(1)
    b = cv.train_classifier(small, small_test, seed=0, epochs=1)
    c = cv.train_classifier(small, small_test, seed=1, epochs=1)
    assert a.weights_sha256 == b.weights_sha256 != c.weights_sha256
    assert torch.equal(before, after)


def test_unlabelled_dataset_is_refused_with_the_alternative(tmp_path):
    with pytest.raises(MetricsError, match="precision/recall"):
        cv.load_or_train_classifier(str(tmp_path), "celeba", None, 64)


# -- precision / recall on toy data with known answers --------------------------------------------------
def _line(values):
    return torch.tensor(values, dtype=torch.float64)[:, None]


def test_precision_recall_known_answers():
    real = _line(range(100))  # unit spacing: the 3rd neighbour is 2 away (3 for the end points 0 and 99)
    assert cv.precision_recall(real, real.clone()) == (1.0, 1.0)
    assert cv.precision_recall(real, real + 1000) == (0.0, 0.0)
    # fake = the first half of real: every fake is a real point (precision 1); the fake balls reach real
    # points 0..52 (fake 49, an end point, has radius 3), so recall = 53/100
    assert cv.precision_recall(real, _line(range(50))) == (1.0, 0.53)
    # fake = real shifted by 3.5 (3.5..102.5): only fake 102.5 is farther than 3 from real 99 -> precision
    # 0.99; only real 0 is farther than 3 from fake 3.5 (an end point, radius 3) -> recall 0.99
    assert cv.precision_recall(real, real + 3.5) == (0.99, 0.99)


def test_precision_recall_needs_more_than_k_points():
    with pytest.raises(MetricsError, match="more than 3"):
        cv.precision_recall(_line(range(3)), _line(range(10)))


def _previous_precision_recall(real, fake, k=3, batch=1000):
    """The implementation this package used before calling torch-fidelity's, kept as the reference."""
    real, fake = real.to(torch.float64), fake.to(torch.float64)

    def radii(x):
        return torch.cat(
            [torch.cdist(x[i : i + batch], x).kthvalue(k + 1, dim=1).values for i in range(0, len(x), batch)]
        )

    def inside(queries, centres, r):
        return torch.cat(
            [
                (torch.cdist(queries[i : i + batch], centres) <= r[None, :]).any(dim=1)
                for i in range(0, len(queries), batch)
            ]
        )

    return float(inside(fake, real, radii(real)).double().mean()), float(
        inside(real, fake, radii(fake)).double().mean()
    )


def test_precision_recall_equals_the_previous_implementation_exactly():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(300, 16, generator=g), 0.3 + 1.2 * torch.randn(250, 16, generator=g)
    # the values the previous implementation gave on this input, recorded before the switch
    assert cv.precision_recall(real, fake) == (0.4, 0.9533333333333334) == _previous_precision_recall(real, fake)
    assert (
        cv.precision_recall(real, fake, k=5)
        == (0.532, 0.9766666666666667)
        == _previous_precision_recall(real, fake, k=5)
    )
    # more than one 1000-row block per set, and fractions that float32 cannot hold exactly (1/1300)
    real, fake = torch.randn(1300, 8, generator=g), 0.2 + torch.randn(1100, 8, generator=g)
    ours = cv.precision_recall(real, fake)
    assert ours == _previous_precision_recall(real, fake) and 0.2 < min(ours) and max(ours) < 1.0


def test_precision_recall_metrics_and_the_old_import_paths():
    from began_plugin.metrics import precision_recall
    from began_plugin.metrics.precision_recall import precision_recall_metrics

    assert precision_recall is cv.precision_recall and cv.precision_recall_metrics is precision_recall_metrics
    assert (cv.KEY_PRECISION, cv.KEY_RECALL, cv.PR_K) == ("precision", "recall", 3)
    net = type("Net", (), {"name": "standin", "weights_sha256": "0" * 64})()

    def stats(values, kid_max):
        s = FeatureStatistics(1, network="standin", weights_sha256="0" * 64, kid_max=kid_max)
        s.update(_line(values))
        return s

    out = precision_recall_metrics(net, stats(range(100), 100), stats(range(50), 50))
    assert out["precision"].value == 1.0 and out["recall"].value == 0.53  # as in the known answers above
    assert out["recall"].num_real == 100 and out["recall"].num_fake == 50 and out["precision"].network == "standin"
    with pytest.raises(MetricsError, match="kid_max > 0"):
        precision_recall_metrics(net, stats(range(100), 0), stats(range(50), 50))


# -- density / coverage (Naeem et al. 2020) on toy data with known answers ---------------------------------
def test_density_coverage_known_answers():
    real = _line(range(100))  # 3rd-neighbour radius 2 inside, 3 at the end points 0 and 99; "inside" is strict
    # identical sets: each real ball holds itself and its 2 nearer neighbours, so every fake is in 3 balls
    assert cv.density_and_coverage(real, real.clone()) == (1.0, 1.0)
    assert cv.density_and_coverage(real, real + 1000) == (0.0, 0.0)
    # fake = the first half: real balls 0..50 hold a fake (ball 50 holds fake 49), so coverage 51/100, below
    # recall's 53/100 (recall also uses the fake balls); the balls hold 3 * 49 + 2 + 1 = 150 fakes -> 150 / (3 * 50)
    assert cv.density_and_coverage(real, _line(range(50))) == (1.0, 0.51)
    # fake = real + 3.5: ball i (radius 2) holds the 4 fakes i-1.5..i+1.5 for i = 5..98, ball 99 (radius 3)
    # holds 6, balls 2, 3, 4 hold 1, 2, 3 and balls 0, 1 none: 388 / 300 and coverage 98/100
    assert cv.density_and_coverage(real, real + 3.5) == (388 / 300, 0.98)


def test_density_coverage_equal_the_reference_package_prdc():
    prdc = pytest.importorskip("prdc")
    g = torch.Generator().manual_seed(0)
    for n_real, n_fake, dim, k in ((300, 250, 16, 3), (200, 400, 8, 5)):
        real = torch.randn(n_real, dim, generator=g, dtype=torch.float64)
        fake = 0.3 + 1.2 * torch.randn(n_fake, dim, generator=g, dtype=torch.float64)
        ref = prdc.compute_prdc(real.numpy(), fake.numpy(), k)
        density, coverage = cv.density_and_coverage(real, fake, k)
        assert density == pytest.approx(float(ref["density"]), abs=1e-12)
        assert coverage == float(ref["coverage"])
        # no ties in continuous data, so prdc's strict boundary and torch-fidelity's inclusive one agree
        assert cv.precision_recall(real, fake, k) == (float(ref["precision"]), float(ref["recall"]))
    # more than one distance block per set (the block holds 2**23 distances)
    real, fake = torch.randn(3000, 4, generator=g, dtype=torch.float64), torch.randn(3000, 4, generator=g) * 2
    from began_plugin.metrics import density_coverage as dc

    whole = cv.density_and_coverage(real, fake)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dc, "_BLOCK_ELEMENTS", 3000 * 7)  # 7 rows per block, a partial last block
        assert cv.density_and_coverage(real, fake) == whole
        # the block shape changes the distances' last bits only (matrix-product rounding)
        torch.testing.assert_close(
            dc.knn_radii(real), torch.cdist(real, real).kthvalue(4, dim=1).values, rtol=0, atol=1e-12
        )


def test_density_coverage_refuse_bad_inputs():
    with pytest.raises(MetricsError, match="more than 3 points, got 3"):
        cv.density_and_coverage(_line(range(3)), _line(range(10)))
    with pytest.raises(MetricsError, match="same D"):
        cv.density_and_coverage(_line(range(10)), torch.zeros(5, 2))
    with pytest.raises(MetricsError, match="N x D"):
        cv.density_and_coverage(torch.zeros(10), _line(range(10)))


def test_feature_space_metrics_gives_all_four_with_provenance():
    from began_plugin.metrics import feature_space_metrics, metric_spec

    net = type("Net", (), {"name": "standin", "weights_sha256": "0" * 64})()

    def stats(values, kid_max):
        s = FeatureStatistics(1, network="standin", weights_sha256="0" * 64, kid_max=kid_max)
        s.update(_line(values))
        return s

    out = feature_space_metrics(net, stats(range(100), 100), stats(range(50), 50))
    assert {k: v.value for k, v in out.items()} == {"precision": 1.0, "recall": 0.53, "density": 1.0, "coverage": 0.51}
    assert all(v.network == "standin" and v.num_real == 100 and v.num_fake == 50 for v in out.values())
    # precision/recall stay as precision_recall_metrics gives them
    assert {k: out[k] for k in ("precision", "recall")} == cv.precision_recall_metrics(
        net, stats(range(100), 100), stats(range(50), 50)
    )
    for key in ("density", "coverage", "manifold_fraction"):
        spec = metric_spec(key)
        assert spec.higher_is_better and spec.tie_bolds_none and spec.order is not None
    assert metric_spec("density").ranked and metric_spec("coverage").ranked
    assert not metric_spec("manifold_fraction").ranked and metric_spec("manifold_fraction").needs == "classifier"
    with pytest.raises(MetricsError, match="kid_max > 0"):
        feature_space_metrics(net, stats(range(100), 0), stats(range(50), 50))


def test_penultimate_features_feed_the_head(trained, digits):
    clf, _, _ = trained
    _, test = digits
    with torch.no_grad():
        feats = clf.model.penultimate(test.images[:20])
        assert feats.shape == (20, 1024)
        assert torch.equal(clf.model.head(feats), clf.model(test.images[:20]))
    probs, feats64 = cv._predict_with_features(clf.model, test.images[:20])
    assert feats64.dtype == torch.float64 and torch.equal(probs, cv._predict(clf.model, test.images[:20]))
