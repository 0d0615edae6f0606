"""Faults and bad input, second round: each case either behaves correctly or is one sentence and a non-zero exit,
with nothing lost on disk.  The numbers in the section titles are those of the catalogue in docs/reliability.md.
"""

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_faults import ENV, ROOT, _dcgan, _dead_pid, _one_error, _start, _tree, _wait_for

from began_plugin import atomic_files
from began_plugin.atomic_files import atomic_write, sweep_temporaries
from began_plugin.data import build_dataset
from began_plugin.training import sample
from began_plugin.training.cli import main


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def _one_line(err: str, command: str = "gan-train") -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"{command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def run(tmp_path):
    """A finished three-step DCGAN run."""
    out = tmp_path / "run"
    assert main(_dcgan(out, steps=3)) == 0
    return out


# -- 2. 16-bit images ---------------------------------------------------------------------------------
def test_16_bit_grayscale_pngs_are_rescaled_not_clipped_to_white(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    values = np.linspace(1000, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    for i in range(4):
        Image.fromarray(values).save(folder / f"{i}.png")
    with Image.open(folder / "0.png") as im:
        assert im.mode.startswith("I")  # the case: PIL's convert("L") would clip every pixel to 255
    ds = build_dataset("folder", str(folder), 32, channels=1)
    img = ds[0]  # in [-1, 1]
    expected = torch.from_numpy(((values.astype(np.int64) * 255 + 32767) // 65535).astype(np.float32)) / 127.5 - 1
    torch.testing.assert_close(img[0], expected, rtol=0, atol=1e-6)
    assert img.min() < -0.9 and img.max() == 1.0


# -- 3. gan-sample on a machine without the asked-for device --------------------------------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_gan_sample_device_cuda_without_a_gpu_blames_the_device_not_the_checkpoint(run, tmp_path, capsys):
    before = _tree(run)
    assert sample.main([f"run={run}", f"out={tmp_path / 's.npz'}", "device=cuda"]) == 2
    err = _one_line(capsys.readouterr().err, "gan-sample")
    assert "no CUDA GPU is visible" in err and "delete" not in err
    assert _tree(run) == before and not (tmp_path / "s.npz").exists()


# -- 4. the log ----------------------------------------------------------------------------------------
def test_a_garbage_line_in_the_middle_of_the_log_is_refused_and_no_row_is_dropped(run, capsys):
    log = run / "metrics.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("\n".join([lines[0], "}{ not json", *lines[1:]]) + "\n")
    before = _tree(run)
    capsys.readouterr()
    assert main(_dcgan(run, steps=6, resume="true")) == 2
    err = _one_line(capsys.readouterr().err)
    assert "line 2 of" in err and str(log) in err and f"the {len(lines) - 1} rows after it" in err
    assert _tree(run) == before


def test_a_final_line_cut_by_a_kill_is_the_only_thing_resume_cuts(run):
    log = run / "metrics.jsonl"
    rows = log.read_text().splitlines()
    log.write_text("\n".join(rows) + '\n{"step": 4, "loss_d')
    assert main(_dcgan(run, steps=6, resume="true")) == 0
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert steps == list(range(1, 7))


# -- 5, 11. temporaries: only a dead writer's, never through a link ----------------------------------------
def test_a_sweep_removes_a_dead_writers_temporary_and_keeps_a_live_ones(tmp_path):
    host = socket.gethostname().replace(".", "-")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alive = tmp_path / f".cell.json.{host}.{live.pid}.abc.tmp"
        dead = tmp_path / f".cell.json.{host}.{_dead_pid()}.abc.tmp"
        elsewhere = tmp_path / f".cell.json.other-host.{live.pid}.abc.tmp"
        old_style = tmp_path / ".cell.json.abc123.tmp"
        for p in (alive, dead, elsewhere, old_style):
            p.write_text("{")
        assert sorted(sweep_temporaries(tmp_path)) == sorted([dead, old_style])
        assert alive.exists() and elsewhere.exists()
    finally:
        live.kill()
        live.wait()


def test_atomic_write_names_its_temporary_for_its_process(tmp_path):
    seen = []
    atomic_write(tmp_path / "x.json", lambda tmp: (seen.append(tmp.name), tmp.write_text("{}")))
    assert f".{os.getpid()}." in seen[0] and seen[0].startswith(".x.json.")


def test_the_start_up_sweep_does_not_follow_a_linked_samples_folder(run, tmp_path):
    other = tmp_path / "someone-elses"
    other.mkdir()
    precious = other / ".notes.tmp"
    precious.write_text("keep me")
    shutil.rmtree(run / "samples")
    (run / "samples").symlink_to(other, target_is_directory=True)
    assert main(_dcgan(run, steps=6, resume="true")) == 0
    assert precious.read_text() == "keep me"


# -- 6. the lock -----------------------------------------------------------------------------------------
HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(120)
"""


def test_a_held_lock_with_an_empty_file_is_not_taken_over(run, tmp_path, capsys):
    """The window the O_EXCL lock had: created, its pid not yet written. Held means held, whatever the file says."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run / ".lock")], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"held"
        assert (run / ".lock").read_text() == ""
        capsys.readouterr()
        assert main(_dcgan(run, steps=6, resume="true")) == 2
        assert "another trainer" in _one_line(capsys.readouterr().err)
        assert (run / ".lock").exists()  # and the refused trainer did not remove it
    finally:
        holder.kill()
        holder.wait()
    # the holder died: its lock is free without anyone deleting anything
    assert main(_dcgan(run, steps=6, resume="true")) == 0
    assert not (run / ".lock").exists()


def test_a_lock_that_is_a_directory_is_named_as_such(run, capsys):
    (run / ".lock").mkdir()
    before = _tree(run)
    capsys.readouterr()
    assert main(_dcgan(run, steps=6, resume="true")) == 2
    err = _one_line(capsys.readouterr().err)
    assert "is a directory or a link, not a lock file" in err and "space" not in err
    assert _tree(run) == before


# -- 7. a real full disk, and a read-only file system --------------------------------------------------------
def _in_small_filesystem(script: str, size: str, options: str = "") -> subprocess.CompletedProcess:
    """Run ``script`` (sh) with a fresh tmpfs of ``size`` at $MNT, inside a private mount namespace."""
    mnt = Path("/tmp") / f"began-plugin-tmpfs-{os.getpid()}"
    mnt.mkdir(exist_ok=True)
    wrapper = f"mount -t tmpfs -o size={size}{options} tmpfs {mnt} && MNT={mnt} && {script}"
    try:
        return subprocess.run(
            ["unshare", "-rm", "sh", "-c", wrapper], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300
        )
    finally:
        mnt.rmdir()


def _can_mount() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = _in_small_filesystem("true", "1m")
    return probe.returncode == 0


needs_mount = pytest.mark.skipif(not _can_mount(), reason="needs unshare -rm to mount a small tmpfs")


@needs_mount
def test_a_really_full_disk_is_one_sentence_exit_4_and_leaves_whole_files():
    """A 600 KB tmpfs: the run's records fit, its first checkpoint (Adam states of a width-16 DCGAN) does not."""
    args = " ".join(_dcgan("$MNT/run", steps=3, **{"model.width": 16}))
    proc = _in_small_filesystem(
        f"{sys.executable} -m began_plugin {args}; rc=$?; ls -a $MNT/run $MNT/run/checkpoints; exit $rc", "600k"
    )
    assert proc.returncode == 4, proc.stderr[-2000:]
    err = _one_error(proc.stderr)
    assert "No space left on device" in err and "resume=true" in err
    assert ".tmp" not in proc.stdout and "latest.pt" not in proc.stdout  # no half-written checkpoint


@needs_mount
def test_gan_sample_to_a_read_only_file_system_is_refused_before_sampling(run):
    proc = _in_small_filesystem(
        f"{sys.executable} -m began_plugin.training.sample run={run} out=$MNT/s.npz n=4", "1m", ",ro"
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "read-only" in _one_line(proc.stderr, "gan-sample")


# -- 8. a run named by another path, or moved ----------------------------------------------------------------
def test_a_run_resumes_under_an_equivalent_path_and_after_a_move(run, tmp_path, monkeypatch):
    assert main(_dcgan(f"{run}/", steps=4, resume="true")) == 0  # a trailing slash
    monkeypatch.chdir(tmp_path)
    assert main(_dcgan("./run", steps=5, resume="true")) == 0  # relative
    moved = tmp_path / "moved"
    run.rename(moved)
    assert main(_dcgan(moved, steps=6, resume="true")) == 0
    assert torch.load(moved / "checkpoints" / "latest.pt", weights_only=True)["step"] == 6


def test_resume_keeps_the_first_starts_provenance_and_adds_its_own(run):
    first = json.loads((run / "provenance.json").read_text())
    assert main(_dcgan(run, steps=6, resume="true")) == 0
    record = json.loads((run / "provenance.json").read_text())
    assert {k: v for k, v in record.items() if k != "resumes"} == first
    assert len(record["resumes"]) == 1 and "resume=true" in record["resumes"][0]["argv"]


# -- 9, 10. one sentence, not a traceback or a misleading message ----------------------------------------------
@pytest.mark.parametrize(
    "name, content",
    [("config.json", c) for c in ("", "{not json", "[1, 2]", '{"steps": 3}')]
    + [("provenance.json", c) for c in ("", "{not json", "[1, 2]")],
)
def test_a_corrupt_empty_or_foreign_record_is_refused_on_resume(run, name, content, capsys):
    (run / name).write_text(content)
    before = _tree(run)
    capsys.readouterr()
    assert main(_dcgan(run, steps=6, resume="true")) == 2
    err = _one_line(capsys.readouterr().err)
    assert str(run / name) in err and "restore it" in err
    assert _tree(run) == before


@pytest.mark.parametrize(
    "arg, expected",
    [
        ("model.gamma=-1", "gamma=-1.0 is outside [0, 1]"),
        ("device=mps", "device='mps' is not supported"),
        ("device=tpu", "is not a device"),
        (f"seed={2**64}", "is outside [0, 2**63)"),
        ("seed=-1", "is outside [0, 2**63)"),
        ("data.channels=2", "must be 1 or 3"),
    ],
)
def test_out_of_range_arguments_are_one_sentence_and_write_nothing(arg, expected, tmp_path, capsys):
    model = ["model=began"] if arg.startswith("model.") else []
    args = [a for a in _dcgan(tmp_path / "run", steps=2) if not (model and a.startswith("model."))]
    assert main(args + model + [arg]) == 2
    assert expected in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "run").exists()


def test_random_bytes_as_a_checkpoint_are_not_called_pickled_code(run, capsys):
    ckpt = run / "checkpoints" / "latest.pt"
    ckpt.write_bytes(np.random.default_rng(0).bytes(4096))
    capsys.readouterr()
    assert main(_dcgan(run, steps=6, resume="true")) == 2
    err = _one_line(capsys.readouterr().err)
    assert "is unreadable (not a whole torch.save archive" in err and "pickled" not in err


def test_out_an_existing_file_is_named_as_a_file_not_a_full_disk(tmp_path, capsys):
    out = tmp_path / "results.txt"
    out.write_text("a researcher's notes")
    assert main(_dcgan(out, steps=2)) == 2
    err = _one_line(capsys.readouterr().err)
    assert "is a file, not a directory" in err and "space" not in err
    assert out.read_text() == "a researcher's notes"


def test_resume_on_a_missing_directory_is_refused_not_a_fresh_run(tmp_path, capsys):
    assert main(_dcgan(tmp_path / "mistyped", steps=2, resume="true")) == 2
    assert "does not exist, so there is no run to resume" in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "mistyped").exists()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["run=R", "out=O.npz", "stray"], "'stray' is not of the form key=value"),
        (["run=R", "out=O.npz", "count=3"], "unknown key 'count' for the sampler"),
        (["run=R"], "out= is required"),
        (["run=R", "out=O.npz", "n=ten"], "bad value for 'n'"),
        (["run=R", "out=O.npz", "n=0"], "n=0 must be a positive integer"),
        (["run=R", "out=EXISTING"], "is an existing file that is not a directory"),
        (["run=R", "out=EXISTING.npz"], "already exists"),
        (["run=R", "out=FULL"], "is a directory that is not empty"),
    ],
)
def test_gan_sample_arguments_are_checked_before_anything_is_read(args, expected, run, tmp_path, capsys):
    (tmp_path / "EXISTING").write_text("x")
    (tmp_path / "EXISTING.npz").write_bytes(b"mine")
    (tmp_path / "FULL").mkdir()
    (tmp_path / "FULL" / "000000.png").write_bytes(b"mine")
    subst = {"R": str(run), "O.npz": str(tmp_path / "O.npz")}
    subst.update({k: str(tmp_path / k) for k in ("EXISTING", "EXISTING.npz", "FULL")})
    args = [
        a.split("=", 1)[0] + "=" + subst.get(a.split("=", 1)[1], a.split("=", 1)[1]) if "=" in a else a for a in args
    ]
    assert sample.main(args) == 2
    err = _one_line(capsys.readouterr().err, "gan-sample")
    assert expected in err
    assert (tmp_path / "EXISTING.npz").read_bytes() == b"mine" and not (tmp_path / "O.npz").exists()
    assert (tmp_path / "FULL" / "000000.png").read_bytes() == b"mine"


def _tiny_long_run(out: Path) -> list[str]:
    return [sys.executable, "-m", "began_plugin", *_dcgan(out, steps=100000, checkpoint_every=100000)]


def test_a_second_sigterm_during_the_graceful_stop_is_one_sentence_and_leaves_whole_files(tmp_path):
    out, log = tmp_path / "run", tmp_path / "log.txt"
    proc = _start(_tiny_long_run(out), log, slow=30)  # the stop's checkpoint then takes 30 s to rename
    try:
        _wait_for(proc, lambda: (out / "metrics.jsonl").exists(), log, "the first step")
        proc.send_signal(signal.SIGTERM)
        _wait_for(proc, lambda: list((out / "checkpoints").glob(".latest.pt.*.tmp")), log, "the stop's checkpoint")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM
    text = log.read_text()
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    assert "gan-train: stopped at once by signal 15" in text
    assert not list(out.rglob(".*.tmp")) and not (out / "checkpoints" / "latest.pt").exists()
    assert not (out / ".lock").exists()


def test_a_second_signal_that_a_library_re_raised_as_another_exception_is_still_the_stop(tmp_path, monkeypatch, capsys):
    # A second signal landing inside C++ (torch.save's writer) can come out as a RuntimeError; once the
    # handler recorded it, the CLI reports the stop, not a traceback.
    from began_plugin.training import loop

    def train(cfg, argv=None):
        monkeypatch.setattr(loop, "_stopped_at_once", int(signal.SIGTERM))
        raise RuntimeError("an exception was raised inside a callback")

    monkeypatch.setattr(loop, "train", train)
    assert main(_dcgan(tmp_path / "run")) == 128 + signal.SIGTERM
    assert "gan-train: stopped at once by signal 15" in capsys.readouterr().err


def test_without_a_second_signal_a_runtime_error_is_not_reported_as_a_stop(tmp_path, monkeypatch):
    from began_plugin.training import loop

    def train(cfg, argv=None):
        raise RuntimeError("a genuine defect")

    monkeypatch.setattr(loop, "_stopped_at_once", None)
    monkeypatch.setattr(loop, "train", train)
    with pytest.raises(RuntimeError, match="a genuine defect"):
        main(_dcgan(tmp_path / "run"))


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGUSR2])
def test_sighup_and_sigusr2_stop_gracefully_with_a_checkpoint(signum, tmp_path):
    out, log = tmp_path / "run", tmp_path / "log.txt"
    proc = _start(_tiny_long_run(out), log)
    try:
        _wait_for(proc, lambda: (out / "metrics.jsonl").exists(), log, "the first step")
        proc.send_signal(signum)
        proc.wait(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, log.read_text()[-2000:]
    assert f"Stopped by signal {int(signum)}" in log.read_text()
    assert torch.load(out / "checkpoints" / "latest.pt", weights_only=True)["step"] >= 1


# -- 13. durability -----------------------------------------------------------------------------------------------
def test_atomic_write_flushes_the_directory_after_the_rename(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(atomic_files.os, "fsync", fsync)
    atomic_write(tmp_path / "x.json", lambda tmp: tmp.write_text("{}"))
    assert synced == [False, True]  # the file's data, then the directory holding the new name
