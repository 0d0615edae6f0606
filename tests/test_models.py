"""The same checks for every model registered under gan_trainer.models (timm-style).

A model that a third party registers is picked up here without anyone adding a line.
"""

import pytest
import torch
from conftest import SMALL_HPARAMS

from began_plugin import create_model, list_models, load_model
from began_plugin.training.step import train_step

NAMES = list_models()
CASES = [
    (name, size, channels)
    for name in NAMES
    for size in load_model(name).supported_image_sizes
    if size <= 128
    for channels in (1, 3)
]


def _make(name, size, channels):
    torch.manual_seed(0)
    return create_model(name, image_size=size, channels=channels, **SMALL_HPARAMS.get(name, {}))


def test_our_models_are_registered():
    assert {"began", "dcgan", "wgan_gp"} <= set(NAMES)


@pytest.mark.parametrize("name,size,channels", CASES)
def test_generate_shape_and_range(name, size, channels):
    model = _make(name, size, channels)
    with torch.no_grad():
        images = model.generate(model.sample_z(3))
    assert images.shape == (3, channels, size, size)
    assert images.min() >= -1 and images.max() <= 1
    assert torch.isfinite(images).all()


@pytest.mark.parametrize("name", NAMES)
def test_sample_z_is_reproducible_with_a_generator(name):
    model = _make(name, 32, 1)
    a = model.sample_z(5, generator=torch.Generator().manual_seed(3))
    b = model.sample_z(5, generator=torch.Generator().manual_seed(3))
    c = model.sample_z(5, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("name,size,channels", [c for c in CASES if c[1] == 32])
def test_one_step_changes_parameters_and_keeps_them_finite(name, size, channels):
    model = _make(name, size, channels)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    real = torch.rand(4, channels, size, size) * 2 - 1
    logs = train_step(model, model.configure_optimizers(), lambda: real)
    assert logs and all(torch.isfinite(v).all() for v in logs.values())
    after = model.state_dict()
    for prefix in ("generator.", "discriminator."):
        changed = [k for k in before if k.startswith(prefix) and not torch.equal(before[k], after[k])]
        assert changed, f"{name}: no {prefix[:-1]} parameter changed in one step"
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_with_weights_only(name, tmp_path):
    model = _make(name, 32, 3)
    real = torch.rand(2, 3, 32, 32) * 2 - 1
    train_step(model, model.configure_optimizers(), lambda: real)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    fresh = create_model(name, image_size=32, channels=3, **SMALL_HPARAMS.get(name, {}))
    fresh.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    for (k, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)


@pytest.mark.parametrize("name", NAMES)
def test_unsupported_image_size_is_one_clear_sentence(name):
    with pytest.raises(ValueError, match=r"image_size=48 is not supported"):
        create_model(name, image_size=48, channels=3)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_hyperparameter_suggests_the_nearest(name):
    known = next(iter(SMALL_HPARAMS.get(name, {"width": 1})))
    with pytest.raises(ValueError, match=f"did you mean '{known}'"):
        create_model(name, image_size=32, channels=3, **{known + "x": 1})


def test_began_keeps_k_in_its_state_dict():
    model = _make("began", 32, 1)
    assert "controller.k_t" in model.state_dict()


def test_began_skip_connections_change_the_decoder():
    plain = create_model("began", image_size=32, channels=3, n=8, h=8, z_dim=8)
    skip = create_model("began", image_size=32, channels=3, n=8, h=8, z_dim=8, skip=True)
    # with skips, every block after the first takes the upsampled h0 as n extra channels
    assert skip.generator.blocks[1][0].in_channels == 16 and plain.generator.blocks[1][0].in_channels == 8
    assert skip.generate(skip.sample_z(2)).shape == (2, 3, 32, 32)


def test_began_filters_grow_linearly_and_bottleneck_is_8x8():
    model = create_model("began", image_size=64, channels=3, n=4, h=5, z_dim=6)
    convs = [m for m in model.discriminator.encoder.features if isinstance(m, torch.nn.Conv2d)]
    # 64 -> 8 is four scales: widths n, 2n, 3n, 4n
    assert sorted({c.out_channels for c in convs}) == [4, 8, 12, 16]
    assert model.discriminator.encoder.fc.in_features == 8 * 8 * 16
    assert model.discriminator.encoder.fc.out_features == 5
    assert model.generator.fc.in_features == 6 and model.generator.fc.out_features == 8 * 8 * 4
