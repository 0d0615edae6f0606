"""The host's features for every model: the moving average of G and the run-relative rate anneal, by hand."""

import json

import numpy as np
import pytest
import torch
from conftest import SMALL_HPARAMS
from torch import nn
from torch.testing import assert_close

from began_plugin import create_model
from began_plugin.training.cli import main
from began_plugin.training.ema import GeneratorAverage, generator_swapped, warmup_decay
from began_plugin.training.lr_schedule import UNSCALED, LinearAnneal
from began_plugin.training.sample import main as sample_main
from began_plugin.training.step import train_step


def _small(name, **hp):
    return create_model(name, image_size=32, channels=1, **{**SMALL_HPARAMS[name], **hp})


def test_warmup_decay_by_hand():
    # (1+t)/(10+t): t=0 -> 0.1, t=1 -> 2/11, t=8 -> 0.5; capped at the decay
    assert warmup_decay(0.999, 0) == pytest.approx(0.1)
    assert warmup_decay(0.999, 1) == pytest.approx(2 / 11)
    assert warmup_decay(0.999, 8) == pytest.approx(0.5)
    assert warmup_decay(0.15, 1) == 0.15
    assert warmup_decay(0.999, 1999) == pytest.approx(2000 / 2009)


@pytest.mark.parametrize("name", ["dcgan", "began"])
def test_average_by_hand_buffers_copied_and_training_unchanged(name, tmp_path):
    """avg_t = d_t avg_{t-1} + (1 - d_t) G_t with d_t = min(decay, (1+t)/(10+t)); buffers are G's; G and D move
    exactly as without the average."""
    torch.manual_seed(0)
    plain = _small(name)
    watched = _small(name)
    watched.load_state_dict(plain.state_dict())
    average = GeneratorAverage(watched.generator, 0.15)
    real = torch.rand(4, 1, 32, 32) * 2 - 1
    opts_p, opts_w = plain.configure_optimizers(), watched.configure_optimizers()
    want = [p.detach().clone() for p in plain.generator.parameters()]  # avg_0 = G_0
    for t, decay in enumerate((0.1, 0.15, 0.15)):  # (1+0)/10 = 0.1 < 0.15; then (1+1)/11 = 0.18 -> 0.15
        torch.manual_seed(t)
        train_step(plain, opts_p, lambda: real)
        torch.manual_seed(t)
        train_step(watched, opts_w, lambda: real)
        assert average.update(watched.generator) == pytest.approx(decay)
        want = [decay * w + (1 - decay) * g.detach() for w, g in zip(want, plain.generator.parameters())]
        for got, w in zip(average.average.parameters(), want):
            assert_close(got, w, rtol=1e-6, atol=1e-7)
    for got, own in zip(average.average.buffers(), plain.generator.buffers()):
        assert_close(got, own, rtol=0, atol=0)
    for key, tensor in plain.state_dict().items():  # training does not see the average
        assert_close(watched.state_dict()[key], tensor, rtol=0, atol=0)
    assert int(average.updates) == 3 and average.effective_decay() == 0.15
    z = watched.sample_z(5)
    watched.eval()
    with generator_swapped(watched, average) as swapped:
        from_average = swapped.generate(z)
    assert watched.generator is not average.average  # swapped back
    assert_close(from_average, average.average(z).clamp(-1, 1))
    assert not torch.allclose(from_average, watched.generate(z))
    torch.save(average.state_dict(), tmp_path / "a.pt")  # the update count is state: a checkpoint restores it
    resumed = GeneratorAverage(_small(name).generator, 0.15)
    resumed.load_state_dict(torch.load(tmp_path / "a.pt", weights_only=True))
    assert int(resumed.updates) == 3
    with pytest.raises(ValueError, match=r"ema_decay=1.0 must be in \(0, 1\)"):
        GeneratorAverage(plain.generator, 1.0)


def test_linear_anneal_by_hand():
    """Factor 1 up to step S (1 - F), then (S - step) / (S F) down to 0 at step S."""
    anneal = LinearAnneal(span=6, fraction=0.5)
    assert (anneal.start, anneal.end) == (3, 6)
    assert [anneal.factor(s) for s in range(1, 8)] == pytest.approx([1, 1, 1, 2 / 3, 1 / 3, 0, 0])
    assert (LinearAnneal(301, 0.5).start, LinearAnneal(2000, 0.5).start) == (150, 1000)
    with pytest.raises(ValueError, match="lr_anneal=1.5 must be in"):
        LinearAnneal(10, 1.5)


class _HalvingModel(nn.Module):
    """A stand-in whose hook halves its own rate every step, as BEGAN's plateau rule may."""

    n_critic, simultaneous = 1, False

    def __init__(self):
        super().__init__()
        self.generator, self.discriminator = nn.Linear(1, 1), nn.Linear(1, 1)

    def discriminator_loss(self, real):
        from began_plugin.interface import LossOutput

        return LossOutput(self.discriminator(real).mean())

    def generator_loss(self, real):
        from began_plugin.interface import LossOutput

        return LossOutput(self.discriminator(self.generator(real)).mean())

    def on_train_step_end(self, logs, optimizers):
        self.seen = [g["lr"] for o in optimizers.values() for g in o.param_groups]
        for o in optimizers.values():
            for g in o.param_groups:
                g["lr"] *= 0.5


def test_host_factor_multiplies_the_rate_the_model_sets_and_the_model_sees_its_own():
    model = _HalvingModel()
    opts = {
        "generator": torch.optim.SGD(model.generator.parameters(), lr=1.0),
        "discriminator": torch.optim.SGD(model.discriminator.parameters(), lr=1.0),
    }
    real = torch.ones(2, 1)
    seen, used = [], []
    for factor in (1.0, 0.5, 0.25):
        train_step(model, opts, lambda: real, lr_scale=factor)
        seen.append(model.seen[0])
        used.append(opts["generator"].param_groups[0]["lr"])
    assert seen == [1.0, 0.5, 0.25]  # the model's own rate, halved each step, never the scaled one
    assert used == [0.5 * 1.0, 0.25 * 0.5, 0.125 * 0.25]
    assert opts["generator"].param_groups[0][UNSCALED] == 0.125


def _dcgan_args(out, ema):
    return [
        "model=dcgan",
        "data=digits",
        "steps=20",
        "batch_size=16",
        f"ema_decay={ema}",
        f"out={out}",
        "log_every=10",
        "sample_every=20",
        "checkpoint_every=20",
        "num_samples=16",
        "model.width=8",
    ]


def test_dcgan_trains_with_the_average_and_gan_sample_draws_from_it(tmp_path):
    averaged, plain = tmp_path / "avg", tmp_path / "plain"
    assert main(_dcgan_args(averaged, 0.99)) == 0
    assert main(_dcgan_args(plain, 0)) == 0
    rows = [json.loads(line) for line in (averaged / "metrics.jsonl").read_text().splitlines()]
    assert [r["ema_decay_effective"] for r in rows] == pytest.approx([warmup_decay(0.99, 9), warmup_decay(0.99, 19)])
    config = json.loads((averaged / "config.json").read_text())
    assert config["ema_decay"] == 0.99 and "ema" in config["options_not_in_paper"]
    assert config["image_channels"] == 1
    state = torch.load(averaged / "checkpoints" / "latest.pt", weights_only=True)
    assert int(state["generator_average"]["updates"]) == 20
    # G itself trained alike in both runs (the average never feeds back)
    plain_state = torch.load(plain / "checkpoints" / "latest.pt", weights_only=True)
    for key, tensor in plain_state["model"].items():
        assert_close(state["model"][key], tensor, rtol=0, atol=0)
    images = {}
    for run in (averaged, plain):
        out = tmp_path / f"{run.name}.npz"
        assert sample_main([f"run={run}", f"out={out}", "n=8"]) == 0
        images[run.name] = np.load(out)["images"]
    assert not np.array_equal(images["avg"], images["plain"])
    from began_plugin.training.sample import generate, load_run, to_uint8_hwc

    # average=False gives G's own samples, which equal the plain run's
    assert np.array_equal(to_uint8_hwc(generate(load_run(averaged, average=False), 8, 0)), images["plain"])
