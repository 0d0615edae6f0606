"""The benchmark harness end to end, with the stand-in feature network (its numbers are never called FID)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # every test here runs the harness end to end

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("compare", ROOT / "benchmarks" / "compare.py")
compare = importlib.util.module_from_spec(spec)
sys.modules["compare"] = compare
spec.loader.exec_module(compare)

FAST = [
    "--preset",
    "smoke",
    "--network",
    "standin",
    "--steps",
    "4",
    "--num-samples",
    "60",
    "--num-real",
    "60",
    "--kid-subset-size",
    "30",
]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    import torch

    # the tests' own thread count (conftest's _threads), whatever OMP_NUM_THREADS says: CPU bits depend on it
    torch.set_num_threads(2)
    out = tmp_path_factory.mktemp("cmp") / "a"
    assert compare.main(FAST + ["--out", str(out)]) == 0
    return out


def test_smoke_writes_every_output_with_rows_for_each_model(first_run, capsys):
    for name in ("table.md", "table.csv", "table.tex", "results.jsonl", "samples.png", "curves.png"):
        assert (first_run / name).stat().st_size > 0, name
    table = (first_run / "table.md").read_text()
    for model in ("began", "began-tuned", "dcgan", "wgan_gp"):
        assert f"| {model} |" in table
    # stand-in numbers are never labelled FID / KID / IS
    assert "standin_fd" in table and "| FID" not in table and "| IS" not in table


def test_the_paper_row_turns_every_non_paper_option_off_and_the_table_names_each_row_s_options(first_run):
    paper = json.loads((first_run / "runs" / "began-seed0" / "config.json").read_text())
    tuned = json.loads((first_run / "runs" / "began-tuned-seed0" / "config.json").read_text())
    assert paper["options_not_in_paper"] == {} and (
        paper["model_hparams"]["pack"],
        paper["model_hparams"]["latent_constraint"],
    ) == (1, 0.0)
    assert sorted(tuned["options_not_in_paper"]) == ["began-cs", "pacgan"]
    # both rows share the preset's paper-compatible settings and the protocol's sizes
    for key in ("gamma", "lambda_k", "lr", "n", "h"):
        assert paper["model_hparams"][key] == tuned["model_hparams"][key], key
    note = (first_run / "table.md").read_text().split("\n\n")[1]
    assert "began: every option that is not in its paper off" in note
    assert (
        "began-tuned: model began; began-cs: L_D adds 0.1 x BEGAN-CS" in note
        and "pacgan: the discriminator sees packs" in note
    )
    assert "dcgan: its paper's algorithm and defaults" in note


def test_one_seed_shows_its_value_without_a_spread_and_several_show_the_sample_std(first_run):
    assert compare._fmt(1.5, None, "fid") == "1.50" and compare._fmt(1.5, 0.25, "fid") == "1.50 ± 0.25"
    table = (first_run / "table.md").read_text()  # the smoke preset has one seed
    assert "±" not in table.split("\n\n")[0] and "a value without ± is one seed's" in table


def test_results_carry_full_provenance(first_run):
    lines = [json.loads(line) for line in (first_run / "results.jsonl").read_text().splitlines()]
    assert {(line["model"], line["metric"]) for line in lines} >= {("began", "standin_fd"), ("dcgan", "standin_kd")}
    by_key = {(line["model"], line["metric"]): line["value"] for line in lines}
    # the pytorch-fid cross-check of the same statistics agrees with torch-fidelity's value
    assert by_key[("began", "standin_fd_pytorch_fid")] == pytest.approx(by_key[("began", "standin_fd")], rel=1e-6)
    for line in lines:
        assert line["network"]["network"] == "standin" and len(line["weights_sha256"]) == 64
        assert line["versions"]["torch"] and line["versions"]["torch-fidelity"]
        assert (
            line["train_config"]["model"] == line["registered_model"] and line["train_config"]["seed"] == line["seed"]
        )
        assert line["protocol"]["steps"] == 4 and "git_revision" in line and "device" in line
        assert line["wall_time_s"]["train"] >= 0 and "curve" not in line["wall_time_s"]  # no --eval-every
        # memorisation's reference is the training split (the 1,437 digits not in the test split)
        reference = 1437 if line["metric"] == "memorisation_ratio" else 60
        assert line["num_fake"] == 60 and line["num_real"] == reference, line["metric"]


def test_same_command_gives_the_same_table_digit_for_digit(first_run, tmp_path):
    again = tmp_path / "b"
    assert compare.main(FAST + ["--out", str(again)]) == 0
    for name in ("table.md", "table.csv", "table.tex"):
        assert (again / name).read_text() == (first_run / name).read_text(), name


def test_rerun_skips_finished_cells_and_a_subset_can_run_alone(tmp_path):
    out = tmp_path / "c"
    assert compare.main(FAST + ["--out", str(out), "--cells", "dcgan:0"]) == 0
    cell = out / "cells" / "dcgan-seed0.json"
    stamp = cell.stat().st_mtime_ns
    assert [p.name for p in (out / "cells").glob("*.json")] == ["dcgan-seed0.json"]
    assert "| dcgan |" in (out / "table.md").read_text() and "| began |" not in (out / "table.md").read_text()
    # a run killed after training but before its metrics: the rerun finishes it without retraining
    assert compare.main(FAST + ["--out", str(out)]) == 0
    assert cell.stat().st_mtime_ns == stamp
    assert len(list((out / "cells").glob("*.json"))) == 4  # every row of the protocol


@pytest.mark.parametrize(
    "args,message",
    [
        (["--preset", "huge"], "unknown preset 'huge'"),
        (["--models", "began,stylegan"], "unknown model 'stylegan'"),
        (["--network", "clip"], "unknown feature network 'clip'"),
        (["--cells", "began:7"], "--cells entry 'began:7' is not one of"),
        (["--num-samples", "0"], "--num-samples=0 must be a positive integer"),
        (["--seeds", "a"], "--seeds 'a' holds 'a', which is not a seed"),
        (["--seeds", "0,-1"], "holds '-1', which is not a seed"),
        (["--steps", "x"], "argument --steps: invalid int value: 'x'"),
    ],
)
def test_bad_input_is_one_sentence_and_nonzero(args, message, tmp_path, capsys):
    out = tmp_path / "bad"
    argv = [a for a in FAST] + ["--out", str(out)]
    for flag, value in zip(args[::2], args[1::2]):
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    assert compare.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("damage", ["cut-cell", "missing-grid", "garbage-log-row"])
def test_collect_refuses_a_damaged_cell_before_rewriting_any_table(damage, first_run, tmp_path, capsys):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(first_run, out)
    cell = sorted((out / "cells").glob("*.json"))[0]
    if damage == "cut-cell":
        cell.write_text(cell.read_text()[:200])
        expected = f"{cell} is not a whole cell file"
    elif damage == "missing-grid":
        cell.with_suffix(".grid.pt").unlink()
        expected = "the sample grid of cell"
    else:
        log = out / "runs" / cell.stem / "metrics.jsonl"
        rows = log.read_text().splitlines()
        log.write_text("\n".join([rows[0], "garbage", *rows[1:]]) + "\n")
        expected = "line 2 of"
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert compare.main(FAST + ["--out", str(out), "--collect"]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def _table_rows(out) -> list[str]:
    lines = (out / "table.md").read_text().splitlines()
    return [line.split("|")[1].strip() for line in lines[2:] if line.startswith("| ")]


def test_a_cell_counts_in_every_table_of_its_protocol_whatever_its_seeds_and_rows(first_run, tmp_path, capsys):
    """--seeds and --models choose a table's cells, not how one is measured; any other flag is another protocol."""
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(first_run, out)  # the smoke preset: seed 0 only
    cell = out / "cells" / "dcgan-seed0.json"
    before = cell.read_bytes()
    # seed 0's cells count in the table of seeds 0 and 1, which names the seed still to run
    assert compare.main(FAST + ["--out", str(out), "--seeds", "0,1", "--collect"]) == 0
    assert _table_rows(out) == ["began", "began-tuned", "dcgan", "wgan_gp"]
    assert "seeds [0] of the protocol's [0, 1]" in (out / "table.md").read_text()
    # a run of that protocol takes the finished cell as it is, neither refusing nor retraining it
    assert compare.main(FAST + ["--out", str(out), "--seeds", "0,1", "--cells", "dcgan:0"]) == 0
    assert cell.read_bytes() == before
    # a table of fewer rows or other seeds holds only its own
    assert compare.main(FAST + ["--out", str(out), "--models", "dcgan", "--collect"]) == 0
    assert _table_rows(out) == ["dcgan"]
    capsys.readouterr()
    assert compare.main(FAST + ["--out", str(out), "--seeds", "1", "--collect"]) == 2
    assert "no finished cells" in capsys.readouterr().err
    # another measurement (one more step) does not take these cells, and refuses to run over them
    assert compare.main(FAST + ["--out", str(out), "--steps", "5", "--collect"]) == 2
    assert "no finished cells" in capsys.readouterr().err
    assert compare.main(FAST + ["--out", str(out), "--steps", "5", "--cells", "dcgan:0"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("compare.py: error: ")]  # not the progress bar
    assert len(errors) == 1 and "belongs to another protocol" in errors[0] and "Traceback" not in err
    assert cell.read_bytes() == before


def test_too_few_samples_for_kid_is_refused(tmp_path, capsys):
    out = tmp_path / "few"
    assert compare.main(FAST + ["--out", str(out), "--num-samples", "20", "--cells", "dcgan:0"]) == 2
    err = capsys.readouterr().err
    assert "KID subsets of 30 images need at least that many" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_eval_every_records_a_metric_curve_without_changing_the_final_weights(first_run, tmp_path):
    import torch

    out = tmp_path / "curve"
    assert compare.main(FAST + ["--out", str(out), "--eval-every", "2", "--cells", "began:0"]) == 0
    cell = json.loads((out / "cells" / "began-seed0.json").read_text())
    assert [p["step"] for p in cell["curve"]] == [2, 4] and all(p["metric"] == "standin_fd" for p in cell["curve"])
    assert cell["curve"][-1]["value"] == cell["metrics"]["standin_fd"]["value"]
    assert (out / "metric_curve.png").stat().st_size > 0
    a = torch.load(out / "runs" / "began-seed0" / "checkpoints" / "latest.pt", weights_only=True)["model"]
    b = torch.load(first_run / "runs" / "began-seed0" / "checkpoints" / "latest.pt", weights_only=True)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_eval_samples_measures_every_curve_point_on_that_many_images_and_keeps_the_table_s(first_run, tmp_path):
    from dataclasses import replace

    from began_plugin import harness, metrics

    out = tmp_path / "curve40"
    argv = FAST + ["--out", str(out), "--eval-every", "2", "--eval-samples", "40", "--cells", "began:0"]
    assert compare.main(argv) == 0
    cell = json.loads((out / "cells" / "began-seed0.json").read_text())
    first = json.loads((first_run / "cells" / "began-seed0.json").read_text())
    assert cell["metrics"]["standin_fd"] == first["metrics"]["standin_fd"]  # the table's FID: 60 images, as before
    assert cell["protocol_key"] != first["protocol_key"]
    # each point, the last included, is the FID of the run's first 40 evaluation images at that step
    protocol = replace(
        harness.PRESETS["smoke"], steps=4, num_samples=60, num_real=60, kid_subset_size=30, network="standin"
    )
    protocol = replace(protocol, eval_every=2, eval_samples=40)
    network = metrics.load_feature_network("standin")
    real = harness.real_statistics(protocol, network, out / "cache", "cpu")
    fake, images = harness.fake_statistics(protocol, network, out / "runs" / "began-seed0", 0, "cpu", n=40)
    expected = metrics.compute_metrics(network, real, fake, kid=False, isc=False, crosscheck=False)["standin_fd"]
    assert images.shape[0] == 40 and [p["step"] for p in cell["curve"]] == [2, 4]
    assert cell["curve"][-1]["value"] == expected.value != cell["metrics"]["standin_fd"]["value"]
    assert cell["metrics"]["convergence_spearman"]["num_fake"] == 40
    assert "each on 40 generated images" in (out / "table.md").read_text()


def test_eval_samples_without_eval_every_is_one_sentence(tmp_path, capsys):
    out = tmp_path / "bad"
    assert compare.main(FAST + ["--out", str(out), "--eval-samples", "40"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--eval-samples=40 sets the images of each FID measurement" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_sigterm_during_training_scores_nothing_and_the_rerun_finishes_the_cell(
    first_run, tmp_path, monkeypatch, capsys
):
    """A graceful stop (SIGTERM) must not turn a half-trained model into a finished cell."""
    import os
    import signal

    from began_plugin.training import loop

    real_step, calls = loop.train_step, []

    def step_then_sigterm(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # caught by the trainer: it finishes the step and checkpoints
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", step_then_sigterm)
    out = tmp_path / "stopped"
    assert compare.main(FAST + ["--out", str(out), "--cells", "began:0"]) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert "began-seed0 was stopped by a signal at step 2 of 4" in err and "rerun the same command" in err
    assert not list((out / "cells").glob("*")) and not (out / "table.md").exists()
    assert torch_step(out / "runs" / "began-seed0") == 2

    monkeypatch.setattr(loop, "train_step", real_step)
    assert compare.main(FAST + ["--out", str(out), "--cells", "began:0"]) == 0
    assert (out / "cells" / "began-seed0.json").exists() and torch_step(out / "runs" / "began-seed0") == 4
    # resumed from step 2, the cell equals the uninterrupted one
    row = json.loads((out / "cells" / "began-seed0.json").read_text())["metrics"]
    ref = json.loads((first_run / "cells" / "began-seed0.json").read_text())["metrics"]
    assert row["standin_fd"]["value"] == ref["standin_fd"]["value"]


def torch_step(run_dir):
    import torch

    return int(torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)["step"])


def test_a_run_left_by_another_protocol_is_refused_not_scored(tmp_path, capsys):
    out = tmp_path / "other"
    assert compare.main(FAST + ["--out", str(out), "--cells", "dcgan:0"]) == 0
    (out / "cells" / "dcgan-seed0.json").unlink()  # the cell file is gone, the 4-step run is left
    before = (out / "runs" / "dcgan-seed0" / "checkpoints" / "latest.pt").read_bytes()
    shorter = [a if a != "4" else "2" for a in FAST]  # --steps 2
    assert compare.main(shorter + ["--out", str(out), "--cells", "dcgan:0"]) == 2
    err = capsys.readouterr().err
    assert "was trained under another configuration" in err and "schedule_steps: 4 -> 2" in err
    assert not (out / "cells" / "dcgan-seed0.json").exists()
    assert (out / "runs" / "dcgan-seed0" / "checkpoints" / "latest.pt").read_bytes() == before


@pytest.mark.parametrize("launcher", ["submitit", "ray"])
def test_a_grid_through_an_engine_gives_the_table_of_the_local_run(launcher, tmp_path):
    """submitit's local executor (no Slurm here) and a local Ray: one job per cell, the statistics computed once
    before the fan-out; the cells' numbers are the local run's (at the same thread count) to the last digit."""
    pytest.importorskip(launcher)
    cells = ["--cells", "began:0,dcgan:0"]
    assert compare.main(FAST + cells + ["--out", str(tmp_path / "local")]) == 0
    out = tmp_path / launcher
    assert compare.main(FAST + cells + ["--out", str(out), "--launcher", launcher]) == 0
    assert (out / "table.csv").read_text() == (tmp_path / "local" / "table.csv").read_text()
    assert sorted(p.name for p in (out / "cells").glob("*.json")) == ["began-seed0.json", "dcgan-seed0.json"]
