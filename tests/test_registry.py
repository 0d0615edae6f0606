"""Registry behaviour, with third-party distributions installed for real as dist-info folders on sys.path."""

import sys
from importlib.metadata import entry_points

import pytest
import torch
from plugins import TINY_MODEL
from plugins import install_plugin as _install

from began_plugin import RegistryError, create_model, list_models, load_model
from began_plugin.registry import model_status
from began_plugin.training.step import train_step


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for mod in [m for m in sys.modules if m.startswith("thirdparty_")]:
        del sys.modules[mod]


def test_our_models_are_found_through_the_entry_point_group():
    names = sorted(e.name for e in entry_points(group="gan_trainer.models"))
    assert {"began", "dcgan", "wgan_gp"} <= set(names)


def test_a_third_party_model_is_discovered_and_trains_one_step(site):
    _install(site, "tiny-gan", "1.2.3", {"tiny": "thirdparty_tiny:TinyGAN"}, {"thirdparty_tiny": TINY_MODEL})
    assert "tiny" in list_models()
    assert "thirdparty_tiny" not in sys.modules  # listing imports no plugin
    model = create_model("tiny", image_size=8, channels=1)
    before = [p.clone() for p in model.parameters()]
    train_step(model, model.configure_optimizers(), lambda: torch.rand(4, 1, 8, 8))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_unknown_name_lists_the_available_models():
    with pytest.raises(RegistryError, match=r"unknown model 'begna'.*'began'.*'dcgan'.*'wgan_gp'"):
        load_model("begna")


def test_a_broken_plugin_names_itself_and_does_not_hide_the_others(site):
    _install(
        site,
        "broken-gan",
        "0.0.1",
        {"broken": "thirdparty_broken:Model"},
        {"thirdparty_broken": "raise ImportError('no module named cuda_magic')\n"},
    )
    with pytest.raises(
        RegistryError, match=r"'broken'.*thirdparty_broken:Model.*broken-gan 0\.0\.1.*cuda_magic"
    ) as info:
        load_model("broken")
    assert isinstance(info.value.__cause__, ImportError)
    status = {entry.name: s for entry, s in model_status()}
    assert status["began"] == "ok" and "cuda_magic" in status["broken"]
    assert load_model("began").__name__ == "BEGAN"


def test_two_distributions_registering_one_name_is_an_error_naming_both(site):
    _install(site, "tiny-gan", "1.0", {"tiny": "thirdparty_tiny:TinyGAN"}, {"thirdparty_tiny": TINY_MODEL})
    _install(site, "other-gan", "2.0", {"tiny": "thirdparty_tiny:TinyGAN"})
    with pytest.raises(
        RegistryError, match=r"registered twice.*(tiny-gan 1\.0.*other-gan 2\.0|other-gan 2\.0.*tiny-gan 1\.0)"
    ):
        load_model("tiny")


def test_a_non_conforming_object_says_what_is_missing(site):
    _install(
        site,
        "tiny-gan",
        "1.0",
        {"half": "thirdparty_tiny:Incomplete", "fn": "thirdparty_tiny:torch"},
        {"thirdparty_tiny": TINY_MODEL},
    )
    with pytest.raises(RegistryError, match=r"'half'.*lacks Hparams, sample_z, generate, configure_optimizers"):
        load_model("half")
    with pytest.raises(RegistryError, match=r"'fn'.*not an nn.Module subclass"):
        load_model("fn")
