"""Several processes (torchrun, gloo on the CPU) for every registered model, and data-loading worker processes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SMALL_HPARAMS
from PIL import Image
from test_faults import _assert_same_tensors

from began_plugin.training.cli import main

ENV = dict(os.environ, OMP_NUM_THREADS="1")


def _args(name, out, steps, **extra):
    args = [
        f"model={name}",
        "data=digits",
        f"steps={steps}",
        "batch_size=8",
        f"out={out}",
        "log_every=1",
        "sample_every=100000",
        "num_samples=16",
        "device=cpu",
    ]
    args += [f"model.{k}={v}" for k, v in SMALL_HPARAMS.get(name, {}).items()]
    return args + [f"{k}={v}" for k, v in extra.items()]


def _torchrun(args, **popen):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", "-m", "began_plugin"]
    return cmd + args


def _children(pid: int) -> list[int]:
    """The worker processes torchrun started (its direct children)."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dcgan", "wgan_gp"])
def test_batch_norm_models_train_past_two_checkpoints_on_two_processes(name, tmp_path):
    """Each checkpoint runs check_in_sync over every parameter and buffer: batch norm's running statistics
    drifted apart per rank before they were broadcast after each step."""
    out = tmp_path / "run"
    proc = subprocess.run(
        _torchrun(_args(name, out, steps=6, checkpoint_every=3)), capture_output=True, text=True, timeout=300, env=ENV
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = torch.load(out / "checkpoints" / "latest.pt", weights_only=True)
    assert state["step"] == 6 and len(state["rng"]) == 2
    running = [v for k, v in state["model"].items() if k.endswith("running_mean")]
    assert running and any(v.abs().sum() > 0 for v in running)  # batch norm did update its statistics


@pytest.mark.slow
def test_sigterm_to_one_rank_stops_both_at_the_same_step_with_one_checkpoint(tmp_path):
    out, log = tmp_path / "run", tmp_path / "log.txt"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            _torchrun(_args("began", out, steps=100000, checkpoint_every=100000)), stdout=fh, stderr=fh, env=ENV
        )
    try:
        deadline = time.time() + 180
        while not ((out / "metrics.jsonl").exists() and (out / "metrics.jsonl").read_text().count("\n") >= 2):
            assert proc.poll() is None and time.time() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        workers = _children(proc.pid)
        assert len(workers) == 2
        os.kill(workers[-1], signal.SIGTERM)  # one rank only, not the main one (rank order is not known)
        proc.wait(timeout=180)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, log.read_text()[-3000:]
    state = torch.load(out / "checkpoints" / "latest.pt", weights_only=True)
    assert 2 <= state["step"] < 100000 and len(state["rng"]) == 2  # both ranks took part in the checkpoint
    assert f"Stopped by signal {int(signal.SIGTERM)} at step {state['step']}" in log.read_text()


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for c in range(2):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(root / f"class{c}" / f"{i}.png")
    return root


def test_data_loader_workers_resume_bit_identically_and_read_what_the_main_process_reads(tmp_path):
    images = _folder(tmp_path / "images")

    def args(out, steps, workers, **extra):
        base = _args("dcgan", out, steps, checkpoint_every=3, **extra)
        return [a for a in base if not a.startswith("data=")] + [
            "data=folder",
            f"data.root={images}",
            "data.channels=1",
            f"data.num_workers={workers}",
        ]

    torch.set_num_threads(1)
    assert main(args(tmp_path / "plain", 6, 0)) == 0
    assert main(args(tmp_path / "workers", 3, 2)) == 0
    assert main(args(tmp_path / "workers", 6, 2, resume="true")) == 0
    _assert_same_tensors(
        torch.load(tmp_path / "plain" / "checkpoints" / "latest.pt", weights_only=True),
        torch.load(tmp_path / "workers" / "checkpoints" / "latest.pt", weights_only=True),
        "checkpoint",
    )
