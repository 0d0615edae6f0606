"""benchmarks/experiments/began_autoencoder.py: bad input is refused before any training; its defaults; its probes."""

from __future__ import annotations

import json

import pytest
import torch
from benchmark_scripts import classifier_cache, load_experiment
from torch.testing import assert_close

from began_plugin.began.model import BEGAN


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--steps", "0"], "--steps 0"),
        (["--h", "8", "0"], "h=0"),
        (["model.lr=-1e-4"], "lr=-0.0001"),
        (["model.gamma=0.7"], "does not change"),
        (["lr=3e-4"], "does not change"),
    ],
)
def test_bad_settings_are_refused_with_one_sentence(argv, words, tmp_path, capsys):
    script = load_experiment("began_autoencoder")
    assert script.main([*argv, "--out", str(tmp_path / "rows.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("began_autoencoder.py: error: ") and words in err and len(err.splitlines()) == 1
    assert not (tmp_path / "rows.jsonl").exists()


def test_defaults_are_the_digits_preset_and_the_models_own():
    script = load_experiment("began_autoencoder")
    preset = BEGAN.dataset_defaults("digits")
    cfg = script.settings([], [32, 8])
    hp = cfg.model_hparams
    assert (hp["n"], hp["lr"]) == (preset["model.n"], preset["model.lr"])
    assert (hp["beta1"], hp["beta2"], hp["init"], cfg.batch_size, cfg.seed) == (
        BEGAN.Hparams.beta1,
        BEGAN.Hparams.beta2,
        BEGAN.Hparams.init,
        32,
        0,
    )
    hp = script.settings(["model.n=8", "model.lr=1e-3", "seed=2"], [8]).model_hparams
    assert (hp["n"], hp["lr"]) == (8, 1e-3)


def test_blobs_have_the_reference_mean_and_spread_but_are_smooth():
    script = load_experiment("began_autoencoder")
    like = torch.linspace(-0.5, 0.3, 4096).view(4, 1, 32, 32)  # narrow enough that no blob pixel is clamped
    blobs = script._blobs(64, like, torch.Generator().manual_seed(0))
    assert blobs.shape == (64, 1, 32, 32)
    assert blobs.min() > -1 and blobs.max() < 1
    assert_close(blobs.mean(), like.mean(), atol=1e-5, rtol=0)
    assert_close(blobs.std(), like.std(), atol=1e-5, rtol=1e-5)
    # Neighbouring pixels of a blurred image differ far less than those of the noise it came from.
    step = (blobs[..., 1:] - blobs[..., :-1]).abs().mean()
    noise = torch.rand(64, 1, 32, 32) * 2 - 1
    assert step < 0.2 * (noise[..., 1:] - noise[..., :-1]).abs().mean()


@pytest.mark.slow  # trains the auto-encoder for 3 steps and the coverage CNN once per session
def test_one_row_per_embedding_size(tmp_path, tmp_path_factory, capsys):
    script = load_experiment("began_autoencoder")
    out = tmp_path / "rows.jsonl"
    argv = [
        "--h",
        "8",
        "4",
        "--steps",
        "3",
        "--cache-dir",
        str(classifier_cache(tmp_path_factory)),
        "--out",
        str(out),
        "model.n=8",
        "batch_size=8",
    ]
    assert script.main(argv) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["h"], r["n"], r["steps"], r["batch_size"]) for r in rows] == [(8, 8, 3, 8), (4, 8, 3, 8)]
    assert rows == [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for r in rows:
        assert r["L1_noise"] > 0 and r["blobs_over_digits"] > 0 and 0 <= r["recon_classes_covered"] <= 10
