"""The collapse monitor: warnings on synthetic log sequences, the diversity measure, the trainer's hook."""

import json
import warnings

import pytest
import torch

from began_plugin.began.model import equilibrium_signs
from began_plugin.data import build_dataset
from began_plugin.training.cli import main
from began_plugin.training.collapse import CollapseMonitor, CollapseWarning, sample_diversity


def _feed(monitor, rows):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        extras = [monitor.observe_log(r) for r in rows]
    return [w for w in caught if issubclass(w.category, CollapseWarning)], extras


def _rows(ks, every=10, gamma=0.5, fake_ratio=1.0):
    # loss_fake = fake_ratio * gamma * loss_real: 1.0 is BEGAN's equilibrium
    return [
        {"step": every * (i + 1), "k": k, "loss_real": 0.1, "loss_fake": fake_ratio * gamma * 0.1}
        for i, k in enumerate(ks)
    ]


def test_k_pinned_at_zero_warns_once_naming_the_step_and_what_to_try():
    monitor = CollapseMonitor(signs=equilibrium_signs(0.5))
    caught, _ = _feed(monitor, _rows([0.0] * 60))  # steps 10..600, k = 0 throughout
    assert len(caught) == 1
    message = str(caught[0].message)
    # the streak starts at step 10; 300 steps later is step 310
    assert "step 310" in message and "since step 10" in message and "model.gamma" in message and "model.lr" in message
    assert monitor.warned == {"k_pinned": 310}


def test_a_healthy_sequence_does_not_warn():
    # k leaves 0 after 290 steps of being 0 and comes back for another 290: never 300 in a row
    ks = [0.0] * 30 + [0.01] * 5 + [0.0] * 30 + [min(0.02 * i, 0.9) for i in range(1, 101)]
    monitor = CollapseMonitor(signs=equilibrium_signs(0.5))
    caught, _ = _feed(monitor, _rows(ks))
    assert caught == [] and monitor.warned == {}


def test_fake_loss_far_below_gamma_real_loss_warns():
    monitor = CollapseMonitor(signs=equilibrium_signs(0.5))
    caught, _ = _feed(monitor, _rows([0.5] * 40, fake_ratio=0.2))
    assert [str(w.message) for w in caught] and monitor.warned == {"fake_loss_low": 310}
    # the same losses just above the 0.5 ratio are fine
    monitor = CollapseMonitor(signs=equilibrium_signs(0.5))
    caught, _ = _feed(monitor, _rows([0.5] * 40, fake_ratio=0.6))
    assert caught == []


def test_models_without_k_are_not_checked_for_it():
    monitor = CollapseMonitor(signs=equilibrium_signs(0.5))  # signs that read keys a row lacks judge nothing
    caught, _ = _feed(monitor, [{"step": 10 * i, "loss_d": 0.0, "loss_g": 0.0} for i in range(1, 100)])
    assert caught == []


def test_diversity_of_identical_images_is_zero_and_of_real_images_positive():
    real = build_dataset("digits", None, 32, split="test").images[:64]
    assert sample_diversity(real[:1].repeat(64, 1, 1, 1)) == 0.0
    assert sample_diversity(real) > 0.1  # about 0.4 for digits at 32 px
    # known answer: an all -1 and an all +1 image differ by 2 per pixel
    assert sample_diversity(torch.stack([-torch.ones(1, 4, 4), torch.ones(1, 4, 4)])) == pytest.approx(2.0)
    assert sample_diversity(real[:1]) is None


def test_low_diversity_warns_at_the_second_grid_and_is_reported_in_the_log_row():
    real = build_dataset("digits", None, 32, split="test").images[:64]
    monitor = CollapseMonitor(real_images=real)
    same = real[:1].repeat(64, 1, 1, 1)
    with pytest.warns(CollapseWarning, match="step 500.*model.lr"):
        assert monitor.observe_samples(250, same) == 0.0
        # the grid's step is a log step: its value lands in that row without a step of its own
        assert monitor.observe_log({"step": 250}) == {"sample_diversity": 0.0, "real_diversity": monitor.real_diversity}
        monitor.observe_samples(500, same)
    assert monitor.warned == {"low_diversity": 500}
    # a grid drawn between log steps rides on the next row, naming its step
    monitor.observe_samples(505, real)
    assert monitor.observe_log({"step": 510})["sample_diversity_step"] == 505
    assert monitor.observe_log({"step": 520}) == {}

    healthy = CollapseMonitor(real_images=real)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)
        for step in (250, 500, 750):
            healthy.observe_samples(step, real.flip(0))


@pytest.mark.slow
def test_the_trainer_logs_sample_diversity_at_sample_steps(tmp_path):
    out = tmp_path / "run"
    args = [
        "model=began",
        "data=digits",
        "steps=4",
        "batch_size=8",
        f"out={out}",
        "log_every=2",
        "sample_every=2",
        "checkpoint_every=4",
        "num_samples=8",
        "model.n=8",
        "model.h=8",
        "model.z_dim=8",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollapseWarning)  # 4 steps do not make a diverse generator
        assert main(args) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4]
    for r in rows:
        assert r["sample_diversity"] >= 0 and r["real_diversity"] > 0.1 and "sample_diversity_step" not in r


def test_the_monitor_takes_each_model_s_own_signs_through_the_contract():
    from began_plugin import create_model

    data = build_dataset("digits", None, 32, split="test")
    began = create_model("began", image_size=32, channels=1, n=8, h=8, z_dim=8, gamma=0.7)
    monitor = CollapseMonitor.for_run(began, data, 8)
    assert [s.name for s in monitor.signs] == ["k_pinned", "fake_loss_low"]
    # gamma is read from the model: 0.3 < 0.5 * 0.7 * 1.0 holds, 0.4 does not
    fake_low = monitor.signs[1]
    assert fake_low.holds({"loss_real": 1.0, "loss_fake": 0.3}) and not fake_low.holds(
        {"loss_real": 1.0, "loss_fake": 0.4}
    )
    dcgan = create_model("dcgan", image_size=32, channels=1, width=8)
    assert CollapseMonitor.for_run(dcgan, data, 8).signs == ()
