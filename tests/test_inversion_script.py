"""benchmarks/experiments/inversion.py: one table of gan-invert/gan-interpolate over runs; bad input writes nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from benchmark_scripts import load_experiment
from PIL import Image


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def test_one_row_per_run_over_the_same_real_images(tiny_runs, tmp_path, capsys):
    script = load_experiment("inversion")
    out = tmp_path / "inv"
    assert (
        script.main([str(tiny_runs["began"]), str(tiny_runs["dcgan"]), "--out", str(out), "--n", "6", "--steps", "3"])
        == 0
    )
    rows = [json.loads(line) for line in (out / "inversion.jsonl").read_text().splitlines()]
    assert [(r["run"], r["model"], r["steps_trained"]) for r in rows] == [("began", "began", 3), ("dcgan", "dcgan", 3)]
    with np.load(out / "real.npz") as f:
        real = f["images"]
    assert real.shape == (6, 32, 32, 1) and real.dtype == np.uint8
    for r in rows:
        inv = r["invert"]
        assert (inv["n"], inv["steps"], inv["out"], inv["images"]) == (6, 3, f"{r['run']}.npz", "real.npz")
        with np.load(out / inv["out"]) as f:
            assert f["reconstructions"].shape == real.shape
            # the mean it printed is the mean of the per-image errors it wrote
            assert inv["l1_mean"] == pytest.approx(float(f["l1"].mean()), rel=1e-6)
        assert r["interpolate_real"]["images"] == "real.npz" and len(r["interpolate_real"]["l1"]) == 2
        assert r["interpolate_seeds"]["seeds"] == [0, 1]
        for suffix in ("real", "seeds"):
            assert (out / f"{r['run']}-{suffix}.png").is_file()
    # 6 real tiles above 6 reconstructions of each run: three rows of 32 px tiles with 2 px padding
    assert Image.open(out / "reconstructions.png").size == (6 * 34 + 2, 3 * 34 + 2)
    table = (out / "inversion.md").read_text()
    assert table == capsys.readouterr().out and table.count("\n") == 4
    assert f"{rows[1]['invert']['l1_mean']:.4f}" in table.splitlines()[3]
    assert [p.name for p in tmp_path.iterdir()] == ["inv"]  # the working folder is gone


@pytest.mark.parametrize(
    "case, expected",
    [
        ("no config", "holds no config.json"),
        ("out exists", "exists; give a new folder"),
        ("one image", "needs at least 2"),
        ("bad split", "Split 'nope' does not exist"),
        ("bad steps", "steps"),
    ],
)
def test_bad_input_is_one_sentence_exit_2_and_writes_nothing(case, expected, tiny_runs, tmp_path, capsys):
    script = load_experiment("inversion")
    out = tmp_path / "inv"
    args = [str(tiny_runs["began"]), "--out", str(out), "--n", "4", "--steps", "2"]
    if case == "no config":
        args[0] = str(tmp_path / "empty")
        (tmp_path / "empty").mkdir()
    elif case == "out exists":
        out.mkdir()
        (out / "kept.txt").write_text("a result")
    elif case == "one image":
        args[4] = "1"
    elif case == "bad split":
        args += ["--split", "nope"]
    elif case == "bad steps":
        args[6] = "-1"
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert script.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("inversion.py: error: ") and expected in err and len(err.splitlines()) == 1, err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    if case == "out exists":
        assert (out / "kept.txt").read_text() == "a result"
