"""benchmarks/experiments/began_classes.py: per-class counts by hand; bad runs are one sentence; the generator it scores."""

from __future__ import annotations

import json

import pytest
import torch
from benchmark_scripts import classifier_cache, load_experiment

from began_plugin.harness import Protocol, train_cell


def test_per_class_counts_confident_argmax_and_the_one_percent_rule():
    classes = load_experiment("began_classes")
    # 200 samples over 3 classes: 1% is 2 confident samples.
    probs = torch.tensor(
        [[0.95, 0.03, 0.02]] * 150 + [[0.05, 0.91, 0.04]] * 1 + [[0.3, 0.6, 0.1]] * 40 + [[0.0, 0.05, 0.95]] * 9
    )
    got = classes.per_class(probs)
    assert got["share"] == [0.75, 0.205, 0.045]
    assert got["confident"] == [150, 1, 9]
    assert got["counted"] == [150, 1, 9]
    assert got["covered"] == [True, False, True]
    # The harness's rule: a confident sample counts only inside the real manifold. Of the nine confident
    # class-2 samples, eight lie outside, leaving 1 < 2: class 2 is no longer covered; class 0 keeps 149.
    inside = torch.ones(200, dtype=torch.bool)
    inside[0] = False
    inside[191:199] = False
    got = classes.per_class(probs, inside)
    assert got["confident"] == [150, 1, 9]
    assert got["counted"] == [149, 1, 1]
    assert got["covered"] == [True, False, False]


def test_a_directory_without_a_run_is_one_sentence(tmp_path, capsys):
    classes = load_experiment("began_classes")
    assert classes.main([str(tmp_path), "--cache-dir", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("began_classes.py: error: ") and "config.json" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "cache").exists()


@pytest.mark.slow  # trains BEGAN for 4 steps and the coverage CNN once per session
def test_the_average_by_default_and_g_itself_with_raw_generator(tmp_path, tmp_path_factory, capsys, monkeypatch):
    classes = load_experiment("began_classes")
    protocol = Protocol(steps=4, models=("began",), ema_decay=0.9, model_hparams={"began": {"n": 8}})
    run = tmp_path / "run"
    train_cell(protocol, "began", 1, run, "cpu")
    seen = []
    real_load_run = classes.load_run
    monkeypatch.setattr(
        classes, "load_run", lambda path, average: seen.append(average) or real_load_run(path, average=average)
    )
    cache = str(classifier_cache(tmp_path_factory))
    for extra in ([], ["--raw-generator"]):
        assert classes.main([str(run), "--cache-dir", cache, "--num-samples", "40", *extra]) == 0
    assert seen == [True, False]
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for row in rows:
        assert (row["data"], row["seed"]) == ("digits", 1)
        assert len(row["share"]) == len(row["confident"]) == len(row["covered"]) == len(row["real_l1"]) == 10
        assert all(c <= n for c, n in zip(row["counted"], row["confident"]))
        assert abs(sum(row["share"]) - 1) < 0.01 and all(v > 0 for v in row["real_l1"])
