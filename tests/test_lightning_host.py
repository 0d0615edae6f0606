"""The Lightning host: every registered model trains through it, resumes exactly, and runs on two processes."""

import os
import subprocess
import sys

import pytest
import torch
from conftest import SMALL_HPARAMS

pytest.importorskip("lightning")
import lightning.pytorch as pl  # noqa: E402
from test_faults import _assert_same_tensors  # noqa: E402

from began_plugin import list_models  # noqa: E402
from began_plugin.lightning_host import GANDataModule, GANModule, batches_per_step  # noqa: E402


def _fit(tmp_path, name, steps, ckpt_path=None, **module):
    pl.seed_everything(0, verbose=False)
    torch.set_num_threads(1)
    data = GANDataModule("digits", image_size=32, batch_size=8, seed=0)
    model = GANModule(name, SMALL_HPARAMS.get(name, {}), image_size=32, channels=data.channels, **module)
    trainer = pl.Trainer(
        max_steps=steps,
        accelerator="cpu",
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return trainer, model, data


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_trains_through_lightning_and_global_step_counts_generator_steps(name, tmp_path):
    trainer, model, data = _fit(tmp_path, name, steps=3)
    assert trainer.global_step == 3
    assert data.position == 3 * batches_per_step(model.model)  # WGAN-GP's critic reads n_critic batches a step
    ckpt = tmp_path / "last.ckpt"
    trainer.save_checkpoint(ckpt)
    state = torch.load(ckpt, weights_only=False)
    assert state["global_step"] == 3 and len(state["began_plugin"]["rng"]) == 1


def test_began_k_t_and_rate_rule_state_are_in_the_lightning_checkpoint(tmp_path):
    trainer, model, _ = _fit(tmp_path, "began", steps=3)
    trainer.save_checkpoint(tmp_path / "c.ckpt")
    state = torch.load(tmp_path / "c.ckpt", weights_only=False)["state_dict"]
    torch.testing.assert_close(state["model.controller.k_t"], model.model.controller.k_t)
    assert "model.lr_rule.window_sum" in state


@pytest.mark.parametrize(
    "name, module", [("began", {}), ("dcgan", {"ema_decay": 0.9, "lr_anneal": 0.5, "schedule_steps": 6})]
)
def test_a_resumed_lightning_fit_ends_with_the_weights_of_an_uninterrupted_one(name, module, tmp_path):
    whole, whole_model, _ = _fit(tmp_path / "whole", name, steps=6, **module)
    half, _, _ = _fit(tmp_path / "half", name, steps=3, **module)
    half.save_checkpoint(tmp_path / "half.ckpt")
    resumed, resumed_model, _ = _fit(tmp_path / "resumed", name, steps=6, ckpt_path=tmp_path / "half.ckpt", **module)
    assert resumed.global_step == 6
    _assert_same_tensors(whole_model.state_dict(), resumed_model.state_dict(), "state_dict")
    for a, b in zip(whole.optimizers, resumed.optimizers):
        _assert_same_tensors(a.state_dict(), b.state_dict(), "optimizer")


@pytest.mark.slow
def test_gan_lightning_cli_on_two_gloo_processes_keeps_began_in_sync(tmp_path):
    """BEGAN back-propagates one forward pass twice, which DistributedDataParallel's reducer refuses (the
    failure of Lightning's own GAN example under DDP): ``gan-lightning`` picks ``gan_ddp`` for several devices,
    and every checkpoint checks that both processes hold the same state, k_t included."""
    cmd = [
        sys.executable,
        "-m",
        "began_plugin.lightning_host",
        "fit",
        "--model.name=began",
        *[f"--model.hparams.{k}={v}" for k, v in SMALL_HPARAMS["began"].items()],
        "--model.hparams.lambda_k=0.1",
        "--data.name=digits",
        "--data.batch_size=8",
        "--trainer.max_steps=4",
        "--trainer.accelerator=cpu",
        "--trainer.devices=2",
        "--trainer.strategy=ddp",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.enable_progress_bar=false",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpts = list(tmp_path.rglob("*.ckpt"))
    assert len(ckpts) == 1
    state = torch.load(ckpts[0], weights_only=False)
    assert state["global_step"] == 4 and len(state["began_plugin"]["rng"]) == 2
    assert state["state_dict"]["model.controller.k_t"].item() > 0.0  # k moved, so the sync check compared something


@pytest.mark.parametrize("name", list_models())
def test_gan_lightning_fit_leaves_a_checkpoint(name, tmp_path):
    from began_plugin.lightning_host import main

    rc = main(
        [
            "fit",
            f"--model.name={name}",
            *[f"--model.hparams.{k}={v}" for k, v in SMALL_HPARAMS.get(name, {}).items()],
            "--data.name=digits",
            "--data.batch_size=8",
            "--trainer.max_steps=20",
            "--trainer.accelerator=cpu",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.enable_progress_bar=false",
        ]
    )
    assert rc == 0
    ckpts = list(tmp_path.rglob("*.ckpt"))
    assert len(ckpts) == 1 and torch.load(ckpts[0], weights_only=False)["global_step"] == 20


@pytest.mark.parametrize(
    "arg, expected",
    [
        ("--model.hparams.gamma=-1", "gamma=-1.0 is outside [0, 1]"),
        ("--model.hparams.gamme=0.5", "unknown key 'model.gamme'"),
        ("--model.name=stylegan", "stylegan"),
        ("--data.name=imagenet", "imagenet"),
    ],
)
def test_gan_lightning_bad_input_is_one_sentence(arg, expected, tmp_path, capsys):
    from began_plugin.lightning_host import main

    args = [
        "fit",
        "--model.name=began",
        "--data.name=digits",
        "--trainer.max_steps=1",
        f"--trainer.default_root_dir={tmp_path}",
    ]
    assert main(args + [arg]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # Lightning may warn first (e.g. that args= is meant for tests)
    assert last.startswith("gan-lightning: error: ") and expected in last and "Traceback" not in err, err
