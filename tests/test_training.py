"""End to end through the gan-train command line, on the CPU with tiny step counts."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import SMALL_HPARAMS

from began_plugin import list_models
from began_plugin.training.cli import main


def _args(name, out, steps=6, **extra):
    args = [
        f"model={name}",
        "data=digits",
        f"steps={steps}",
        "batch_size=8",
        f"out={out}",
        "log_every=2",
        "sample_every=3",
        "checkpoint_every=3",
        "num_samples=16",
    ]
    args += [f"model.{k}={v}" for k, v in SMALL_HPARAMS.get(name, {}).items()]
    return args + [f"{k}={v}" for k, v in extra.items()]


def _weights(run: Path):
    return torch.load(run / "checkpoints" / "latest.pt", weights_only=True)


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_trains_through_the_cli(name, tmp_path):
    out = tmp_path / "run"
    assert main(_args(name, out)) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == name and config["steps"] == 6
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_0000003.png", "step_0000006.png"]
    state = _weights(out)
    assert state["step"] == 6
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["versions"]["torch"] == torch.__version__
    assert not (out / ".lock").exists()
    if name == "began":
        assert {"k", "M_global", "loss_real", "loss_fake"} <= set(rows[-1])
        # the checkpoint's k_t is the last logged k_t advanced by the controller with that step's losses
        hp, last = config["model_hparams"], rows[-1]
        expected = min(
            max(last["k"] + hp["lambda_k"] * (hp["gamma"] * last["loss_real"] - last["loss_fake"]), 0.0), 1.0
        )
        assert state["model"]["controller.k_t"].item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "name, host",
    [
        ("began", {}),
        ("began", {"model.elu": "torch"}),
        ("began", {"model.cpu_micro_batch": 3}),
        ("began", {"channels_last": "false"}),
        ("wgan_gp", {}),
        ("dcgan", {"ema_decay": 0.9, "lr_anneal": 0.5}),
    ],
)
def test_resumed_run_matches_uninterrupted_run_bit_for_bit(name, host, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    # The digits preset anneals BEGAN's rate over the second half of the run: schedule_steps=8 plans it
    # for 8 steps in all three calls, so the 5-step part stops inside it (steps 4 to 8).
    fixed = {"schedule_steps": 8, **host}
    assert main(_args(name, full, steps=8, **fixed)) == 0
    assert main(_args(name, part, steps=5, **fixed)) == 0  # stops after step 5 (its last checkpoint)
    assert main(_args(name, part, steps=8, resume="true", **fixed)) == 0
    a, b = _weights(full), _weights(part)
    assert a["step"] == b["step"] == 8 and a["data_position"] == b["data_position"]
    if (
        name == "began" or "lr_anneal" in host
    ):  # the rate reached 0 at step 8 in both, through a resume inside the window
        assert [g["lr"] for o in b["optimizers"].values() for g in o["param_groups"]] == [0.0, 0.0]
    if "generator_average" in a or "generator_average" in b:  # the average is resumed exactly too
        for key in a["generator_average"]:
            torch.testing.assert_close(a["generator_average"][key], b["generator_average"][key], rtol=0, atol=0)
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=0, msg=key)
    for opt in a["optimizers"]:
        for sa, sb in zip(a["optimizers"][opt]["state"].values(), b["optimizers"][opt]["state"].values()):
            torch.testing.assert_close(sa["exp_avg"], sb["exp_avg"], rtol=0, atol=0)
    rows_a = [json.loads(line) for line in (full / "metrics.jsonl").read_text().splitlines()]
    rows_b = [json.loads(line) for line in (part / "metrics.jsonl").read_text().splitlines()]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "images_per_s"} for r in rows]
    # the first part's end-of-run line at step 5 is the only extra line
    assert strip(rows_a) == strip([r for r in rows_b if r["step"] != 5])
    assert (full / "samples" / "step_0000008.png").read_bytes() == (part / "samples" / "step_0000008.png").read_bytes()


def test_resume_refuses_a_changed_config_and_lists_each_difference(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_args("began", out, steps=2)) == 0
    before = (out / "config.json").read_bytes(), (out / "checkpoints" / "latest.pt").read_bytes()
    assert main(_args("began", out, steps=4, resume="true", seed=3, batch_size=4)) == 2
    err = capsys.readouterr().err
    assert "seed: 0 -> 3" in err and "batch_size: 8 -> 4" in err
    assert ((out / "config.json").read_bytes(), (out / "checkpoints" / "latest.pt").read_bytes()) == before


def test_a_run_recorded_before_a_hyper_parameter_existed_resumes_as_it_was_trained(tmp_path, capsys):
    # An older version wrote no model_hparams.elu and used nn.ELU: the key's metadata says so
    # (absent = torch), so that run resumes with model.elu=torch, and a resume under today's default
    # (exp) is a change, refused and named.
    out = tmp_path / "run"
    assert main(_args("began", out, steps=2, **{"model.elu": "torch"})) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_hparams"].pop("elu") == "torch"
    (out / "config.json").write_text(json.dumps(cfg))
    assert main(_args("began", out, steps=4, resume="true")) == 2
    assert "model_hparams.elu: 'torch' -> 'exp'" in capsys.readouterr().err
    assert main(_args("began", out, steps=4, resume="true", **{"model.elu": "torch"})) == 0
    assert _weights(out)["step"] == 4


def test_a_run_recorded_before_elu_existed_samples_with_nn_elu(tmp_path):
    from began_plugin.began.model import ExpELU
    from began_plugin.training.sample import generate, load_run

    out = tmp_path / "run"
    assert main(_args("began", out, steps=2, **{"model.elu": "torch"})) == 0
    before = generate(load_run(out), 4, seed=0)
    cfg = json.loads((out / "config.json").read_text())
    del cfg["model_hparams"]["elu"]
    (out / "config.json").write_text(json.dumps(cfg))
    model = load_run(out)
    assert {type(m) for m in model.modules()} & {ExpELU, torch.nn.ELU} == {torch.nn.ELU}
    torch.testing.assert_close(generate(model, 4, seed=0), before, rtol=0, atol=0)


def test_a_key_without_absent_metadata_reads_as_its_default_in_an_older_record():
    from began_plugin.training.config import TrainConfig, to_dict
    from began_plugin.training.run_directory import config_differences

    base = {**to_dict(TrainConfig()), "model": "began"}
    new = {**base, "model_hparams": {"elu": "exp", "pull_away": 0.0}}
    # pull_away has no "absent" metadata: an older record without it was trained at its default, 0.0
    assert config_differences({**base, "model_hparams": {"elu": "exp"}}, new) == []
    changed = {**base, "model_hparams": {"elu": "exp", "pull_away": 0.1}}
    assert config_differences({**base, "model_hparams": {"elu": "exp"}}, changed) == [
        "model_hparams.pull_away: 0.0 -> 0.1"
    ]
    # elu's metadata says absent = torch
    assert config_differences({**base, "model_hparams": {"pull_away": 0.0}}, new) == [
        "model_hparams.elu: 'torch' -> 'exp'"
    ]


def test_a_host_key_with_absent_metadata_reads_as_it_in_an_older_record():
    from began_plugin.training.config import TrainConfig, to_dict
    from began_plugin.training.run_directory import config_differences

    now = to_dict(TrainConfig())
    assert now["channels_last"] is True
    older = {k: v for k, v in now.items() if k != "channels_last"}
    # runs were contiguous before channels_last existed: absent = False, so today's default is a change
    assert config_differences(older, now) == ["channels_last: False -> True"]
    assert config_differences(older, {**now, "channels_last": False}) == []
    assert config_differences(now, now) == []


def test_a_run_trained_contiguous_resumes_only_with_channels_last_false(tmp_path, capsys):
    # every run before channels_last=true was the default recorded channels_last: false
    out = tmp_path / "run"
    assert main(_args("dcgan", out, steps=2, channels_last="false")) == 0
    before = (out / "config.json").read_bytes(), (out / "checkpoints" / "latest.pt").read_bytes()
    assert main(_args("dcgan", out, steps=4, resume="true")) == 2
    assert "channels_last: False -> True" in capsys.readouterr().err
    assert ((out / "config.json").read_bytes(), (out / "checkpoints" / "latest.pt").read_bytes()) == before
    assert main(_args("dcgan", out, steps=4, resume="true", channels_last="false")) == 0
    assert _weights(out)["step"] == 4


def test_refuses_to_write_into_another_run_without_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_args("dcgan", out, steps=2)) == 0
    before = sorted((p.name, p.stat().st_mtime_ns) for p in out.rglob("*"))
    assert main(_args("dcgan", out, steps=2)) == 2
    assert "already holds a run; pass resume=true" in capsys.readouterr().err
    assert sorted((p.name, p.stat().st_mtime_ns) for p in out.rglob("*")) == before


@pytest.mark.parametrize(
    "args,message",
    [
        (["model=begna"], "unknown model 'begna'; the registered models are"),
        (["stpes=10"], "unknown key 'stpes' for the trainer (did you mean 'steps'?)"),
        (["model.gamm=0.7"], "unknown key 'model.gamm'"),
        (["steps=ten"], "steps"),
        (["model.gamma=high"], "gamma"),
        (["batch_size=0"], "batch_size=0 must be a positive integer"),
        (["steps=-5"], "steps=-5 must be a positive integer"),
        (["steps=10", "schedule_steps=5"], "schedule_steps=5 is less than steps=10"),
        (["image_size=48"], "image_size=48 is not supported by model 'began'"),
        (["data=mnist", "data.root=/nonexistent/data"], "/nonexistent/data"),
        (["data=cifar"], "unknown dataset data='cifar'"),
        (["precision=fp8"], "precision='fp8' is not one of"),
        (["data.channels=3"], "digits is grayscale (1 channel) data but channels=3 was requested"),
        (["device=cuda:0"] if not torch.cuda.is_available() else ["device=tpu"], "device="),
        (["--bogus"], "unknown option '--bogus'"),
        (["steps"], "not of the form key=value"),
    ],
)
def test_bad_input_is_one_sentence_nonzero_exit_and_no_files(args, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            args + [f"out={out}", "steps=2"] if not any(a.startswith("steps") for a in args) else args + [f"out={out}"]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("gan-train: error: ") and message in err
    assert len(err.splitlines()) == 1
    assert not out.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere, so an unwritable directory cannot be made")
def test_unwritable_output_directory(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert main(_args("dcgan", locked / "run", steps=1)) == 2
    assert "is not writable" in capsys.readouterr().err


def test_output_path_under_a_file_is_refused(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(_args("dcgan", blocker / "run", steps=1)) == 2
    assert "cannot be written" in capsys.readouterr().err
    assert blocker.read_text() == "x"


def test_list_models_shows_distribution_and_status(capsys):
    assert main(["--list-models"]) == 0
    out = capsys.readouterr().out
    assert "began      began-plugin 0.1.0    loads" in out and "model.gamma=0.5" in out


def test_help_shows_keys_with_defaults(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "steps: 2000" in out and "batch_size: 32" in out and "device: auto" in out


@pytest.mark.slow
def test_two_process_gloo_run_keeps_k_identical_on_every_rank(tmp_path):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",
        "-m",
        "began_plugin",
        *_args("began", out, steps=4),
        "model.lambda_k=0.1",
        "device=cpu",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = _weights(out)
    assert state["step"] == 4 and len(state["rng"]) == 2
    # every checkpoint ran check_in_sync across both ranks; k did move, so the check had something to compare
    assert state["model"]["controller.k_t"].item() > 0.0
    assert json.loads((out / "config.json").read_text())["world_size"] == 2


@pytest.mark.parametrize("switch", ["precision=bf16", "channels_last=false"])
def test_speed_switches_train_on_the_cpu(switch, tmp_path):
    out = tmp_path / "run"
    assert main(_args("began", out, steps=2) + [switch]) == 0
    state = _weights(out)
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for k, v in state["model"].items() if k.startswith("generator."))


@pytest.mark.slow
def test_sigterm_finishes_the_step_checkpoints_and_says_how_to_resume(tmp_path):
    import signal
    import time

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "began_plugin", *_args("dcgan", out, steps=100000), "checkpoint_every=100000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-2000:]
    assert "resume=true" in stderr
    step = _weights(out)["step"]
    assert 2 <= step < 100000
    assert main(_args("dcgan", out, steps=step + 2, checkpoint_every=100000, resume="true")) == 0
    assert _weights(out)["step"] == step + 2


def test_run_files_get_the_umask_mode_not_private_temp_file_mode(tmp_path):
    out = tmp_path / "run"
    assert main(_args("dcgan", out, steps=1)) == 0
    umask = os.umask(0)
    os.umask(umask)
    for name in ("config.json", "provenance.json", "checkpoints/latest.pt"):
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_digits_preset_is_declared_by_began_and_names_every_option_not_in_the_paper():
    from began_plugin import BEGAN
    from began_plugin.training.config import ConfigError, parse_args, preset_note

    default = parse_args([])
    preset = BEGAN.dataset_defaults("digits")
    for key, value in preset.items():  # the preset comes from the model's hook, host keys included
        got = default.model_hparams[key[len("model.") :]] if key.startswith("model.") else getattr(default, key)
        assert got == value, key
    assert (default.ema_decay, default.lr_anneal) == (0.999, 0.5)
    note = preset_note(default)
    assert "falls linearly to 0 over the last 0.5 of the run's 2000 steps" in note
    assert "samples come from a moving average of G's weights (decay 0.999, warm-up" in note
    assert "0.9955 at the last step" in note  # the warm-up's decay at step 2,000, not 0.999
    assert "falls linearly" not in preset_note(parse_args(["lr_anneal=0"]))
    assert "moving average" not in preset_note(parse_args(["ema_decay=0"]))
    assert "moving average" not in preset_note(parse_args(["data=shapes"]))
    assert "learning rate is" not in note  # one rate for D and G in every preset
    two_rates = preset_note(parse_args(["model.lr_d=0.0002"]))
    assert "the discriminator's learning rate is 0.0002 (two time-scale update" in two_rates
    assert "pulling-away" not in note  # off in every preset
    assert "L_G adds 0.1 x EBGAN's pulling-away term" in preset_note(parse_args(["model.pull_away=0.1"]))
    assert "the discriminator sees packs of 2 images (PacGAN" in note
    assert "packs" not in preset_note(parse_args(["model.pack=1"]))
    assert preset_note(parse_args(["model=dcgan", "data=mnist"])) is None  # no preset, no option on
    with pytest.raises(
        ConfigError,
        match="model.pack=3 groups each batch into packs of 3 images, but batch_size=32 "
        "is not a multiple of it; pass e.g. batch_size=30",
    ):
        parse_args(["model.pack=3"])
    for bad, message in (
        ("ema_decay=1", r"ema_decay=1.0 must be in \[0, 1\)"),
        ("lr_anneal=2", r"lr_anneal=2.0 must be in"),
    ):
        with pytest.raises(ConfigError, match=message):
            parse_args([bad])


def test_shapes_presets_are_the_digits_ones_but_began_lambda_k_and_a_short_run_trains(tmp_path):
    from began_plugin.training.config import parse_args
    from began_plugin.training.sample import load_run

    for model in ("dcgan", "wgan_gp"):
        assert (
            parse_args([f"model={model}", "data=shapes"]).model_hparams == parse_args([f"model={model}"]).model_hparams
        )
    digits, shapes = parse_args([]), parse_args(["data=shapes"])
    assert (digits.model_hparams["lambda_k"], shapes.model_hparams["lambda_k"]) == (0.1, 0.01)  # measured with 0.01
    assert {**shapes.model_hparams, "lambda_k": 0.1, "pack": 2} == digits.model_hparams
    assert (shapes.ema_decay, shapes.lr_anneal) == (0.0, 0.5)
    assert parse_args(["data=shapes", "model.h=16", "model.z_dim=16"]).model_hparams["h"] == 16
    out = tmp_path / "shapes"
    assert main([a if a != "data=digits" else "data=shapes" for a in _args("began", out, steps=3)]) == 0
    assert json.loads((out / "config.json").read_text())["data"]["name"] == "shapes"
    assert load_run(out).generator(torch.zeros(2, 8)).shape == (2, 1, 32, 32)
    packed = tmp_path / "packed"  # PacGAN packing: the run trains, and loads back with the images' channel count
    assert main(_args("began", packed, steps=2) + ["model.pack=2"]) == 0  # SMALL_HPARAMS: pack on its own
    model = load_run(packed)
    assert (model.channels, model.discriminator.encoder.features[0].in_channels) == (1, 2)
