"""benchmarks/began_autoencoder.py: bad input is refused before any training; its probe images."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from benchmark_scripts import load_benchmark


@pytest.mark.parametrize("argv", [["--steps", "0"], ["--h", "8", "0"], ["--lr=-1e-4"]])
def test_non_positive_settings_are_refused_with_one_sentence(argv, tmp_path, capsys):
    script = load_benchmark("began_autoencoder")
    with pytest.raises(SystemExit) as stop:
        script.main([*argv, "--out", str(tmp_path / "rows.jsonl")])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "must all be positive" in err
    assert not (tmp_path / "rows.jsonl").exists()


def test_blobs_have_the_reference_mean_and_spread_but_are_smooth():
    script = load_benchmark("began_autoencoder")
    like = torch.linspace(-0.5, 0.3, 4096).view(4, 1, 32, 32)  # narrow enough that no blob pixel is clamped
    blobs = script._blobs(64, like, torch.Generator().manual_seed(0))
    assert blobs.shape == (64, 1, 32, 32)
    assert blobs.min() > -1 and blobs.max() < 1
    assert_close(blobs.mean(), like.mean(), atol=1e-5, rtol=0)
    assert_close(blobs.std(), like.std(), atol=1e-5, rtol=1e-5)
    # Neighbouring pixels of a blurred image differ far less than those of the noise it came from.
    step = (blobs[..., 1:] - blobs[..., :-1]).abs().mean()
    noise = torch.rand(64, 1, 32, 32) * 2 - 1
    assert step < 0.2 * (noise[..., 1:] - noise[..., :-1]).abs().mean()
