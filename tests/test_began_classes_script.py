"""benchmarks/began_classes.py: per-class counts by hand; a path that is not a run is one sentence."""

from __future__ import annotations

import torch

from benchmark_scripts import load_benchmark


def test_per_class_counts_confident_argmax_and_the_one_percent_rule():
    classes = load_benchmark("began_classes")
    # 200 samples over 3 classes: 1% is 2 confident samples.
    probs = torch.tensor([[0.95, 0.03, 0.02]] * 150 + [[0.05, 0.91, 0.04]] * 1 + [[0.3, 0.6, 0.1]] * 40
                         + [[0.0, 0.05, 0.95]] * 9)
    got = classes.per_class(probs)
    assert got["share"] == [0.75, 0.205, 0.045]
    assert got["confident"] == [150, 1, 9]
    assert got["covered"] == [True, False, True]


def test_a_directory_without_a_run_is_one_sentence(tmp_path, capsys):
    classes = load_benchmark("began_classes")
    assert classes.main([str(tmp_path), "--cache-dir", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("began_classes.py: error: ") and "config.json" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "cache").exists()
