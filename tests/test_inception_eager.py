"""The eager, batch-norm-folded FID Inception computes the offline TorchScript's features, up to rounding."""

import numpy as np
import pytest
import torch

from began_plugin import metrics as M
from began_plugin.data import build_dataset
from began_plugin.metrics.feature_networks import _inception_input, _load_offline_script, default_offline_weights_path
from began_plugin.metrics.fid import frechet_distance
from began_plugin.metrics.inception_eager import eager_inception_from_script


@pytest.fixture(scope="module")
def script():
    return _load_offline_script(default_offline_weights_path())


@pytest.fixture(scope="module")
def real_and_noise():
    torch.set_num_threads(2)
    ds = build_dataset("mnist5k", None, 32)
    real = M.to_uint8_rgb(ds.images[torch.arange(0, 5000, 50)])  # 100 digits, 10 of each class
    noise = (torch.rand(100, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    return real, noise


def _script_features(script, x):
    with torch.no_grad(), torch.jit.optimized_execution(False):
        return torch.cat([script(_inception_input(x[i : i + 50])) for i in range(0, len(x), 50)])


def _eager_features(net, x):
    with torch.no_grad():
        return torch.cat([net(x[i : i + 50])[0] for i in range(0, len(x), 50)])


@pytest.mark.parametrize("fold", [False, True])
def test_eager_features_are_the_scripts_up_to_rounding(fold, script, real_and_noise):
    net = eager_inception_from_script(script, fold=fold)
    for images in real_and_noise:
        ref, ours = _script_features(script, images[:20]), _eager_features(net, images[:20])
        assert ref.abs().max() > 1.0  # the comparison is not between two zero vectors
        torch.testing.assert_close(ours, ref, rtol=0, atol=5e-5)


def test_fid_of_the_folded_network_is_the_scripts_within_1e_4_relative(script, real_and_noise):
    real, noise = real_and_noise
    net = eager_inception_from_script(script)
    fids = []
    for features in (_script_features, lambda s, x: _eager_features(net, x)):
        a = features(script, real).double().numpy()
        b = features(script, torch.cat([real[50:], noise[:50]])).double().numpy()
        fids.append(frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)))
    assert fids[0] > 1.0
    assert abs(fids[1] - fids[0]) <= 1e-4 * fids[0], fids


def test_the_offline_network_runs_the_folded_eager_model_and_says_so():
    net = M.load_feature_network("inception-offline")
    assert net.describe()["implementation"] == "eager-folded"
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.module.modules())
    before = torch.get_rng_state()
    M.load_feature_network("inception-offline")
    assert torch.equal(torch.get_rng_state(), before)  # building it leaves the caller's random stream alone


def test_a_script_of_another_shape_is_refused(tmp_path):
    class Other(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3)

        def forward(self, x):
            return self.conv(x)

    with pytest.raises(M.MetricsError, match="is not the FID Inception network"):
        eager_inception_from_script(torch.jit.script(Other()))


def test_the_bf16_option_is_recorded_and_close_to_fp32_features_but_not_equal(real_and_noise):
    from began_plugin.metrics.feature_networks import InceptionOfflineNetwork

    real, _ = real_and_noise
    fp32 = InceptionOfflineNetwork()
    bf16 = InceptionOfflineNetwork(implementation="eager-folded-bf16")
    assert bf16.describe()["implementation"] == "eager-folded-bf16"
    a, _ = fp32.features(real[:10])
    b, _ = bf16.features(real[:10])
    assert b.dtype == torch.float32
    # bf16 keeps 8 bits of mantissa: features move by a few percent of their scale, never by their scale
    err = (a - b).abs().max() / a.abs().max()
    assert 0 < err < 0.1, float(err)


def test_an_unknown_implementation_is_refused_naming_the_choices():
    from began_plugin.metrics.feature_networks import InceptionOfflineNetwork

    with pytest.raises(M.MetricsError, match="is not one of .*eager-folded-bf16"):
        InceptionOfflineNetwork(implementation="fp8")
