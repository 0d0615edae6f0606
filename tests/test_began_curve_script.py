"""benchmarks/experiments/began_curve.py: gan-train's parser and the model's defaults; parts equal one run."""

from __future__ import annotations

import json

import pytest
import torch
from benchmark_scripts import classifier_cache, load_experiment

from began_plugin.began.model import BEGAN
from began_plugin.harness import train_args, train_cell
from began_plugin.training.config import parse_args

TINY = ["model.n=8", "model.h=8", "model.z_dim=8"]


@pytest.mark.parametrize(
    "item, words", [("lr3e-4", "key=value"), ("precision=bf16", "passes on"), ("model.lrr=3e-4", "did you mean 'lr'")]
)
def test_a_bad_override_is_one_sentence_and_writes_nothing(item, words, tmp_path, capsys):
    curve = load_experiment("began_curve")
    assert curve.main(["run", "--steps", "1", "--out", str(tmp_path / "out"), item]) == 2
    err = capsys.readouterr().err
    assert err.startswith("began_curve.py: error: ") and words in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_base_is_the_models_paper_defaults_plus_stated_deltas_and_overrides_win(tmp_path):
    curve = load_experiment("began_curve")
    protocol, seed = curve.curve_protocol([], 10)
    cfg = parse_args(train_args(protocol, "began", seed, tmp_path, "cpu"))
    hp = cfg.model_hparams
    assert (hp["n"], hp["h"], hp["z_dim"], hp["gamma"], hp["lambda_k"]) == (16, 32, 32, 1.0, 0.01)
    # everything the digits preset changes and BASE does not state is back at BEGAN's own default
    assert (hp["lr"], hp["latent_constraint"], hp["pack"]) == (BEGAN.Hparams.lr, 0.0, 1)
    assert (cfg.ema_decay, cfg.lr_anneal, cfg.steps, seed) == (0.0, 0.0, 10, 0)
    protocol, seed = curve.curve_protocol(
        ["model.h=8", "model.z_dim=8", "seed=3", "ema_decay=0.999", "lr_anneal=0.5", "batch_size=16"], 10
    )
    cfg = parse_args(train_args(protocol, "began", seed, tmp_path, "cpu"))
    assert (cfg.model_hparams["h"], cfg.model_hparams["z_dim"], cfg.model_hparams["n"]) == (8, 8, 16)
    assert (seed, cfg.ema_decay, cfg.lr_anneal, cfg.batch_size) == (3, 0.999, 0.5, 16)


@pytest.mark.slow  # trains BEGAN twice for 4 steps and the coverage CNN once per session
def test_parts_are_scored_and_end_with_the_bits_of_one_uninterrupted_run(tmp_path, tmp_path_factory, capsys):
    curve = load_experiment("began_curve")
    out, cache = tmp_path / "curves", classifier_cache(tmp_path_factory)
    argv = ["t", "--steps", "4", "--every", "2", "--out", str(out), "--cache-dir", str(cache), "--device", "cpu", *TINY]
    assert curve.main(argv) == 0
    rows = [json.loads(line) for line in (out / "t.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4]
    for r in rows:
        assert {
            "k",
            "loss_real",
            "div",
            "cnn_classes_covered",
            "logreg_classes_covered",
            "logreg_class_kl",
            "logreg_confident_fraction",
        } <= set(r)
        assert not {"classes_covered", "class_kl", "confident_fraction"} & set(r)  # the harness's names, unprefixed
    assert (out / "t_2.png").exists() and (out / "t_4.png").exists()

    protocol, seed = curve.curve_protocol(TINY, 4)
    train_cell(protocol, "began", seed, tmp_path / "one", "cpu")
    parts = torch.load(out / "t" / "checkpoints" / "latest.pt", weights_only=False)["model"]
    whole = torch.load(tmp_path / "one" / "checkpoints" / "latest.pt", weights_only=False)["model"]
    assert parts.keys() == whole.keys() and all(torch.equal(parts[k], whole[k]) for k in parts)

    # Rerunning finds every part done and keeps the rows; a row lost beside a trained run is refused.
    assert curve.main(argv) == 0
    assert [json.loads(line) for line in (out / "t.jsonl").read_text().splitlines()] == rows
    (out / "t.jsonl").write_text(json.dumps(rows[0]) + "\n")
    capsys.readouterr()
    assert curve.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("began_curve.py: error: ") and "no row for step 4" in err and len(err.splitlines()) == 1
