"""Faults and bad input: a kill at any moment loses nothing, and every error is one clear sentence.

Training processes run with OMP_NUM_THREADS=1 and tiny models; kills are SIGKILL at moments drawn from
a seeded ``random.Random`` or aimed, through the test-only BEGAN_PLUGIN_TEST_SLOW_CHECKPOINT hook of
``began_plugin.atomic_files``, at the window between writing a ``.pt`` file's temporary copy and renaming it.
"""

import errno
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from plugins import TINY_MODEL, install_plugin

from began_plugin import atomic_files
from began_plugin.atomic_files import TEST_SLOW_CHECKPOINT_ENV
from began_plugin.training.cli import main

ROOT = Path(__file__).resolve().parents[1]
ENV = {k: v for k, v in os.environ.items() if k != TEST_SLOW_CHECKPOINT_ENV}
ENV["OMP_NUM_THREADS"] = "1"
TINY_BEGAN = ["model.n=8", "model.h=8", "model.z_dim=8"]


def _began(out, steps=40, **extra):
    args = [
        "model=began",
        "data=digits",
        f"steps={steps}",
        "batch_size=8",
        f"out={out}",
        "log_every=1",
        "sample_every=5",
        "checkpoint_every=3",
        "num_samples=16",
        *TINY_BEGAN,
    ]
    return args + [f"{k}={v}" for k, v in extra.items()]


def _dcgan(out, steps=6, **extra):
    args = [
        "model=dcgan",
        "data=digits",
        f"steps={steps}",
        "batch_size=8",
        f"out={out}",
        "log_every=1",
        "sample_every=3",
        "checkpoint_every=3",
        "num_samples=16",
        "model.width=8",
    ]
    return args + [f"{k}={v}" for k, v in extra.items()]


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """In-process runs use one thread, as the subprocesses do (OMP_NUM_THREADS=1): 2 shared cores."""
    yield


# -- helpers -------------------------------------------------------------------------------------
def _start(cmd, log: Path, slow: float | None = None) -> subprocess.Popen:
    env = dict(ENV, **({TEST_SLOW_CHECKPOINT_ENV: str(slow)} if slow else {}))
    with open(log, "ab") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def _wait_for(proc: subprocess.Popen, condition, log: Path, what: str, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the process ended (rc {proc.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        if time.time() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.01)


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)  # reaped: its pid is dead, as after any crash
    assert proc.returncode == -signal.SIGKILL


def _finish(cmd, log: Path) -> None:
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=ENV, cwd=ROOT, timeout=300)
    with open(log, "ab") as fh:
        fh.write(proc.stdout)
    assert proc.returncode == 0, proc.stdout.decode(errors="replace")[-3000:]


def _lines(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def _rows(path: Path) -> list[dict]:
    return [
        {k: v for k, v in json.loads(line).items() if k != "images_per_s"} for line in path.read_text().splitlines()
    ]


def _assert_same_tensors(a, b, where=""):
    """Two-sided, bit-for-bit equality of nested dicts / lists of tensors and plain values."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and sorted(map(str, a)) == sorted(map(str, b)), where
        for k in a:
            _assert_same_tensors(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_tensors(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=False, msg=where)
    else:
        assert a == b, where


def _assert_every_file_whole(root: Path, tmp_allowed_in: tuple[str, ...] = ()) -> None:
    """No temporaries, no lock; every .pt loads weights-only, every JSON parses, every PNG decodes."""
    left = [p for p in root.rglob(".*.tmp") if p.relative_to(root).parts[0] not in tmp_allowed_in]
    assert not left, f"temporary files left behind: {left}"
    assert not [p for p in root.rglob(".lock")], "a lock left behind"
    seen = 0
    for p in root.rglob("*"):
        if p.suffix == ".pt":
            torch.load(p, weights_only=True)
        elif p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".jsonl":
            text = p.read_text()
            assert text.endswith("\n")
            [json.loads(line) for line in text.splitlines()]
        elif p.suffix == ".png":
            with Image.open(p) as im:
                im.load()
        else:
            continue
        seen += 1
    assert seen >= 4


def _one_error(err: str) -> str:
    """The error line; progress-bar lines may come before it (the bar is closed first), nothing after it."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert sum("error" in line for line in lines) == 1 and lines[-1].startswith("gan-train: error: "), err
    return lines[-1]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
# -- 1. kill anywhere, resume exactly ----------------------------------------------------------------
def test_sigkill_at_random_moments_and_mid_checkpoint_then_resume_gives_the_same_bits(tmp_path):
    rng = random.Random(7)
    full, part, log = tmp_path / "full", tmp_path / "part", tmp_path / "log.txt"
    cmd = lambda out, **kw: [sys.executable, "-m", "began_plugin", *_began(out, **kw)]
    _finish(cmd(full), log)
    ckpt_dir, metrics = part / "checkpoints", part / "metrics.jsonl"
    temporaries = lambda: list(ckpt_dir.glob(".latest.pt.*.tmp"))

    # Kill 1: inside the very first checkpoint's write window, so no checkpoint exists yet.
    proc = _start(cmd(part), log, slow=1.0)
    _wait_for(proc, lambda: temporaries(), log, "the first checkpoint's temporary file")
    time.sleep(0.3)
    _kill(proc)
    first = set(temporaries())
    assert first and not (ckpt_dir / "latest.pt").exists() and (part / ".lock").exists()
    assert _lines(metrics) == 3

    # Kill 2: at a random moment of a resumed run; then a log line cut in half, as a kill inside a write leaves.
    proc = _start(cmd(part, resume="true"), log)
    target = rng.randint(8, 20)
    _wait_for(proc, lambda: _lines(metrics) >= target, log, f"{target} log lines")
    time.sleep(rng.uniform(0.0, 0.2))
    _kill(proc)
    assert (part / ".lock").exists()
    left = set(temporaries())
    assert not left & first, "the resume did not sweep kill 1's temporary"
    # A kill at a random moment may land inside one of this run's own checkpoint writes (more often on a loaded
    # machine): such a temporary is named for this run's pid, and the next resume sweeps it.
    assert all(p.name.split(".")[-3] == str(proc.pid) for p in left), left
    with open(metrics, "a") as fh:
        fh.write('{"step": 99, "loss_re')

    # Kill 3: inside a later checkpoint's write window: the previous checkpoint must still be whole.
    proc = _start(cmd(part, resume="true"), log, slow=1.0)
    target = rng.randint(22, 32)
    _wait_for(proc, lambda: _lines(metrics) >= target, log, f"{target} log lines")
    _wait_for(proc, lambda: temporaries(), log, "a checkpoint's temporary file")
    time.sleep(0.3)
    _kill(proc)
    assert temporaries()
    previous = torch.load(ckpt_dir / "latest.pt", weights_only=True)
    assert previous["step"] % 3 == 0 and previous["step"] < _lines(metrics) <= 40

    _finish(cmd(part, resume="true"), log)

    a = torch.load(full / "checkpoints" / "latest.pt", weights_only=True)
    b = torch.load(ckpt_dir / "latest.pt", weights_only=True)
    assert a["step"] == b["step"] == 40
    _assert_same_tensors(a, b, "checkpoint")  # weights, k_t, optimizers, data position, every RNG
    assert _rows(full / "metrics.jsonl") == _rows(metrics)
    assert [r["step"] for r in _rows(metrics)] == list(range(1, 41))
    samples = sorted(p.name for p in (full / "samples").iterdir())
    assert samples == sorted(p.name for p in (part / "samples").iterdir()) and len(samples) == 8
    for name in samples:
        assert (full / "samples" / name).read_bytes() == (part / "samples" / name).read_bytes(), name
    _assert_every_file_whole(part)


@pytest.mark.slow
# -- 2. the benchmark harness killed mid-cell ----------------------------------------------------------
def test_compare_killed_while_training_and_while_scoring_gives_the_same_table(tmp_path):
    rng = random.Random(11)
    fast = [
        "--preset",
        "smoke",
        "--network",
        "standin",
        "--steps",
        "6",
        "--num-samples",
        "40",
        "--num-real",
        "40",
        "--kid-subset-size",
        "20",
    ]
    cmd = lambda out: [sys.executable, str(ROOT / "benchmarks" / "compare.py"), *fast, "--out", str(out)]
    ref, out, log = tmp_path / "ref", tmp_path / "out", tmp_path / "log.txt"
    _finish(cmd(ref), log)

    # While training: inside the BEGAN cell's (only, final) checkpoint write, after its 6 log lines.
    began_ckpts = out / "runs" / "began-seed0" / "checkpoints"
    proc = _start(cmd(out), log, slow=1.0)
    _wait_for(proc, lambda: list(began_ckpts.glob(".latest.pt.*.tmp")), log, "the began cell's checkpoint write")
    time.sleep(0.3)
    _kill(proc)
    assert not (began_ckpts / "latest.pt").exists() and _lines(out / "runs" / "began-seed0" / "metrics.jsonl") == 6

    # While scoring: the dcgan cell's metrics are computed and its sample grid is being written.
    cells = out / "cells"
    proc = _start(cmd(out), log, slow=1.0)
    _wait_for(proc, lambda: list(cells.glob(".dcgan-seed0.grid.pt.*.tmp")), log, "the dcgan cell's scoring")
    time.sleep(0.3)
    _kill(proc)
    assert (cells / "began-seed0.json").exists() and not (cells / "dcgan-seed0.json").exists()

    # At a random moment of the rest.
    proc = _start(cmd(out), log)
    time.sleep(rng.uniform(1.0, 5.0))
    if proc.poll() is None:
        _kill(proc)

    _finish(cmd(out), log)
    for name in ("table.md", "table.csv", "table.tex"):
        assert (out / name).read_text() == (ref / name).read_text(), name
    for cell in ("began-seed0", "dcgan-seed0", "wgan_gp-seed0"):
        assert _rows(out / "runs" / cell / "metrics.jsonl") == _rows(ref / "runs" / cell / "metrics.jsonl"), cell
        _assert_same_tensors(
            torch.load(out / "runs" / cell / "checkpoints" / "latest.pt", weights_only=True)["model"],
            torch.load(ref / "runs" / cell / "checkpoints" / "latest.pt", weights_only=True)["model"],
            cell,
        )
    # the rerun swept the temporaries the kills left in cells/ and cache/; the trainer sweeps runs/
    _assert_every_file_whole(out)


# -- 3. training faults --------------------------------------------------------------------------------
NAN_MODEL = '''
from dataclasses import dataclass
from thirdparty_tiny import TinyGAN

class NanGAN(TinyGAN):
    """The registry tests' TinyGAN, with a generator loss that becomes NaN at generator step ``nan_at``."""
    @dataclass
    class Hparams:
        lr: float = 1e-3
        nan_at: int = 6

    calls = 0

    def generator_loss(self, real):
        self.calls += 1
        out = super().generator_loss(real)
        if self.calls >= self.hparams.nan_at:
            out.loss = out.loss * float("nan")
            out.logs["loss_g"] = out.loss.detach()
        return out
'''


@pytest.fixture
def nan_model(tmp_path, monkeypatch):
    site = tmp_path / "site"
    install_plugin(
        site,
        "nan-gan",
        "0.1",
        {"nangan": "thirdparty_nan:NanGAN"},
        {"thirdparty_tiny": TINY_MODEL, "thirdparty_nan": NAN_MODEL},
    )
    monkeypatch.syspath_prepend(str(site))
    yield "nangan"
    sys.modules.pop("thirdparty_nan", None)
    sys.modules.pop("thirdparty_tiny", None)


def _nan_run_args(model: str, out, *, log_every: int, checkpoint_every: int, nan_at: int) -> list[str]:
    """A 20-step run of the NaN plugin that turns its loss non-finite at step ``nan_at``."""
    return [
        f"model={model}",
        "data=digits",
        "image_size=8",
        "steps=20",
        "batch_size=8",
        f"out={out}",
        f"log_every={log_every}",
        f"checkpoint_every={checkpoint_every}",
        "sample_every=100",
        "num_samples=4",
        f"model.nan_at={nan_at}",
    ]


def test_non_finite_loss_stops_naming_step_model_and_last_good_checkpoint(nan_model, tmp_path, capsys):
    out = tmp_path / "run"
    # Logged only every 10 steps, checkpointed every 2: the NaN at step 6 must be caught before step 6 is
    # saved, so the checkpoint on disk is step 4's and finite.
    assert main(_nan_run_args(nan_model, out, log_every=10, checkpoint_every=2, nan_at=6)) == 3
    err = _one_error(capsys.readouterr().err)
    ckpt = out / "checkpoints" / "latest.pt"
    assert "model 'nangan'" in err and "non-finite loss_g at step 6" in err and f"{ckpt} (step 4)" in err
    state = torch.load(ckpt, weights_only=True)
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not (out / ".lock").exists() and not (out / "samples").exists()


def test_non_finite_loss_before_any_checkpoint_says_there_is_none(nan_model, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_nan_run_args(nan_model, out, log_every=1, checkpoint_every=5, nan_at=3)) == 3
    err = _one_error(capsys.readouterr().err)
    assert "at step 3" in err and "none was written yet" in err
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def test_began_k_stays_in_the_unit_interval_under_a_large_lambda_k(tmp_path):
    out = tmp_path / "run"
    assert main(_began(out, steps=30, checkpoint_every=30, sample_every=30, **{"model.lambda_k": 10})) == 0
    ks = [json.loads(line)["k"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(ks) == 30
    assert all(0.0 <= k <= 1.0 for k in ks), ks
    # the clip was exercised: lambda_k=10 drives k onto a bound, and it did move
    assert ({0.0, 1.0} & set(ks)) and len(set(ks)) > 1, ks
    k_t = torch.load(out / "checkpoints" / "latest.pt", weights_only=True)["model"]["controller.k_t"].item()
    assert 0.0 <= k_t <= 1.0


@pytest.mark.slow
# -- 4. concurrent use -----------------------------------------------------------------------------------
def test_a_second_trainer_is_refused_while_the_first_runs(tmp_path, capsys):
    out, log = tmp_path / "run", tmp_path / "log.txt"
    args = _dcgan(out, steps=100000, checkpoint_every=100000, sample_every=100000)
    proc = _start([sys.executable, "-m", "began_plugin", *args], log)
    try:
        # its first log line: the lock is held and the loop (with its SIGTERM handler) runs
        _wait_for(
            proc,
            lambda: (out / ".lock").exists() and _lines(out / "metrics.jsonl") >= 1,
            log,
            "the first trainer's lock",
        )
        assert main(args + ["resume=true"]) == 2
        err = capsys.readouterr().err.strip()
        assert f"another trainer (pid {proc.pid}) is writing to out=" in err and len(err.splitlines()) == 1
        assert proc.poll() is None  # the refusal did not disturb the first
        assert (out / ".lock").read_text().split()[0] == str(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=120)
    assert proc.returncode == 0 and not (out / ".lock").exists()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("content", ["dead-pid", "empty"])
def test_a_lock_left_by_a_dead_process_does_not_block_resume(content, tmp_path):
    out = tmp_path / "run"
    assert main(_dcgan(out, steps=3)) == 0
    lock = out / ".lock"
    lock.write_text(f"{_dead_pid()} {socket.gethostname()}" if content == "dead-pid" else "")
    assert main(_dcgan(out, steps=6, resume="true")) == 0
    assert torch.load(out / "checkpoints" / "latest.pt", weights_only=True)["step"] == 6
    assert not lock.exists()


def test_a_lock_from_another_host_is_not_taken_over(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_dcgan(out, steps=3)) == 0
    (out / ".lock").write_text(f"{_dead_pid()} some-other-host")
    before = _tree(out)
    capsys.readouterr()
    assert main(_dcgan(out, steps=6, resume="true")) == 2
    err = capsys.readouterr().err.strip()
    assert "locked by pid" in err and "'some-other-host'" in err and str(out / ".lock") in err
    assert len(err.splitlines()) == 1 and _tree(out) == before


def test_resume_after_a_kill_before_config_json_starts_the_run(tmp_path):
    """A run killed between taking its lock and writing config.json leaves only the lock and a temporary."""
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text(f"{_dead_pid()} {socket.gethostname()}")
    (out / ".config.json.abc123.tmp").write_text('{"half": ')
    assert main(_dcgan(out, steps=3, resume="true")) == 0
    assert torch.load(out / "checkpoints" / "latest.pt", weights_only=True)["step"] == 3
    _assert_every_file_whole(out)


# -- 5. safe loading ---------------------------------------------------------------------------------------
class NeedsPickledCode:
    """Any class: saving it makes a checkpoint that weights_only=True refuses."""

    def __init__(self):
        self.payload = "anything"


@pytest.mark.parametrize("kind", ["pickled-code", "truncated", "wrong-content"])
def test_a_bad_checkpoint_is_refused_on_resume_and_nothing_changes(kind, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_dcgan(out, steps=3)) == 0
    ckpt = out / "checkpoints" / "latest.pt"
    if kind == "pickled-code":
        torch.save({"x": NeedsPickledCode(), "step": 3}, ckpt)
        expected = "needs pickled Python code to load, which weights_only=True refuses"
    elif kind == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[:500])
        expected = "is unreadable"
    else:
        torch.save({"step": 3, "model": {"generator.bogus": torch.zeros(2)}}, ckpt)
        expected = "does not fit model 'dcgan'"
    capsys.readouterr()
    before = _tree(out)
    assert main(_dcgan(out, steps=6, resume="true")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gan-train: error: ") and expected in err and str(ckpt) in err
    assert len(err.splitlines()) == 1
    assert _tree(out) == before  # not even provenance.json or a lock


# -- 6. bad input not covered elsewhere --------------------------------------------------------------------
def test_a_corrupt_image_in_a_folder_is_named_through_the_cli(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(7):
        Image.new("RGB", (8, 8), (30 * i, 0, 0)).save(images / f"img{i}.png")
    (images / "img3.png").write_bytes(b"not a png at all")
    args = [
        "model=dcgan",
        "data=folder",
        f"data.root={images}",
        "image_size=32",
        "steps=2",
        "batch_size=7",
        "log_every=1",
        "sample_every=2",
        "checkpoint_every=2",
        "num_samples=4",
        "model.width=8",
    ]
    assert main(args + [f"out={tmp_path / 'run'}"]) == 2
    err = _one_error(capsys.readouterr().err)
    assert str(images / "img3.png") in err and "data.skip_bad_files=true" in err
    assert not (tmp_path / "run" / ".lock").exists()
    # and the suggested switch works: six good images, one skipped
    with pytest.warns(UserWarning, match="img3.png"):
        assert main(args + ["batch_size=6", "data.skip_bad_files=true", f"out={tmp_path / 'run2'}"]) == 0


def test_a_full_disk_is_one_sentence_and_the_previous_checkpoint_survives(tmp_path, capsys, monkeypatch):
    full, out = tmp_path / "full", tmp_path / "run"
    assert main(_began(full, steps=6)) == 0
    real_replace = os.replace
    calls = []

    def replace(src, dst, *a, **kw):
        if Path(dst).name == "latest.pt":
            calls.append(dst)
            if len(calls) == 2:  # the step-6 checkpoint: the disk is full
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real_replace(src, dst, *a, **kw)

    monkeypatch.setattr(atomic_files.os, "replace", replace)
    assert main(_began(out, steps=6)) == 4
    monkeypatch.setattr(atomic_files.os, "replace", real_replace)
    err = _one_error(capsys.readouterr().err)
    assert "No space left on device" in err and "resume=true" in err and str(out / "checkpoints" / "latest.pt") in err
    assert torch.load(out / "checkpoints" / "latest.pt", weights_only=True)["step"] == 3
    _assert_every_file_whole(out)
    # once there is space again, the resumed run ends with the same bits as one that never failed
    assert main(_began(out, steps=6, resume="true")) == 0
    _assert_same_tensors(
        torch.load(full / "checkpoints" / "latest.pt", weights_only=True),
        torch.load(out / "checkpoints" / "latest.pt", weights_only=True),
        "checkpoint",
    )
    assert _rows(full / "metrics.jsonl") == _rows(out / "metrics.jsonl")
