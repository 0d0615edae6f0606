"""benchmarks/performance.py's smallest path runs and writes the promised JSON (no timing assertions)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("performance_benchmark", ROOT / "benchmarks" / "performance.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow  # spawns processes and runs two 2048-d Fréchet steps: about 1-2 minutes on 2 busy cores
def test_performance_script_smallest_path(tmp_path, capsys):
    perf = _load()
    out = tmp_path / "perf.json"
    assert (
        perf.main(
            [
                "--quick",
                "--train-n",
                "4",
                "--train-h",
                "4",
                "--train-batches",
                "2",
                "--warmup",
                "1",
                "--windows",
                "1",
                "--steps-per-window",
                "1",
                "--fid-images",
                "4",
                "--fid-batch",
                "4",
                "--no-pytorch-fid",
                "--memory-sizes",
                "50,100",
                "--memory-batch",
                "50",
                "--matmul-size",
                "256",
                "--matmul-reps",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "| measurement | ours | peer | ratio | target | met? |" in table
    res = json.loads(out.read_text())
    assert {"meta", "targets", "matmul", "training", "fid", "memory", "rows", "notes"} <= set(res)
    assert res["matmul"]["gflops"] > 0
    (tr,) = res["training"]
    for key in (
        "ours_steps_per_s",
        "torchgan_steps_per_s",
        "ratio_ours_over_torchgan",
        "ours_flops_per_step",
        "torchgan_flops_per_step",
        "ours_gflops",
        "torchgan_trainer_end_to_end_iterations",
        "ours_exp_elu_steps_per_s",
        "ours_default_steps_per_s",
    ):
        assert key in tr
    assert tr["ours_flops_per_step"] > 0 and tr["torchgan_flops_per_step"] > 0
    # The Trainer's training iteration ran end-to-end (its epoch-end image logger may fail; that is recorded).
    assert tr["torchgan_trainer_end_to_end_iterations"] == {"generator": 1, "discriminator": 1}
    fid = res["fid"]
    assert fid["fid_agrees_torch_fidelity"] and fid["fid_rel_diff_torch_fidelity"] <= fid["fid_rtol"] == 1e-4
    assert fid["ours_bf16"]["images_per_s"] > 0 and fid["bf16_fid_rel_drift"] >= 0
    measured = {r["measurement"] for r in res["rows"]}
    assert any("batch 2, default (steps/s" in m for m in measured)
    assert any("model.elu=exp model.cpu_micro_batch=0 (steps/s" in m for m in measured)
    assert any("achieved GFLOP/s; peer: torchgan" in m for m in measured)
    assert any("bf16 option" in m for m in measured)
    assert fid["ours"]["fid"] > 0 and fid["ours"]["images_per_s"] > 0 and fid["torch_fidelity"]["images_per_s"] > 0
    assert [m["n"] for m in res["memory"]] == [50, 100]
    assert all(m["count"] == m["n"] and m["peak_rss_mb"] > 0 for m in res["memory"])
    for row in res["rows"]:
        assert set(row) == {"measurement", "ours", "peer", "ratio", "target", "met"}
    # --render prints the saved run's table again, measuring nothing
    assert perf.main(["--render", str(out)]) == 0
    assert capsys.readouterr().out.split("\n\n")[0] == table.split("\n\n")[0]


def test_render_refuses_a_file_that_is_not_a_saved_run(tmp_path, capsys):
    perf = _load()
    bad = tmp_path / "perf.json"
    bad.write_text('{"rows": ')
    assert perf.main(["--render", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a JSON file written by --out" in err


@pytest.mark.slow  # two tiny BEGAN steps per side under the profiler
def test_profile_step_compares_both_steps_op_by_op():
    spec = importlib.util.spec_from_file_location("profile_step", ROOT / "benchmarks" / "profile_step.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.profile_both(batch=2, steps=1, warmup=1, n=4, h=4)
    ops = {r["op"]: r for r in res["ops"]}
    assert (
        ops["aten::convolution_backward"]["ours_calls"] > 0 and ops["aten::convolution_backward"]["torchgan_calls"] > 0
    )
    assert res["ours_total_ms"] > 0 and res["torchgan_total_ms"] > 0
    assert "| op | ours ms | torchgan ms |" in mod.markdown(res, top=5)


@pytest.mark.slow  # two Inception passes over 2 images and one jit trace
def test_profile_fid_times_the_preprocessing_share_and_checks_a_compiled_pass_against_eager(tmp_path):
    spec = importlib.util.spec_from_file_location("profile_fid", ROOT / "benchmarks" / "profile_fid.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.profile(images=2, reps=1, compilers=["jit"])
    assert 0 < res["preprocess_s"] < res["eager_s"]
    assert res["implementation"] == "eager-folded"
    # the frozen trace computes the same features up to rounding (a wrong graph would be far off)
    assert res["jit"]["rel_diff"] < 1e-4 and res["jit"]["pass_s"] > 0
