"""The CUDA paths (run whenever a GPU is present; skipped on CPU-only machines)."""

import pytest
import torch
from conftest import SMALL_HPARAMS

from began_plugin import list_models
from began_plugin import metrics as M
from began_plugin.training.cli import main

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _args(name, out, *extra):
    args = [f"model={name}", "data=digits", "steps=3", "batch_size=8", f"out={out}", "device=cuda"]
    args += ["log_every=1", "sample_every=3", "checkpoint_every=3", "num_samples=16"]
    return args + [f"model.{k}={v}" for k, v in SMALL_HPARAMS.get(name, {}).items()] + list(extra)


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("switches", [(), ("precision=bf16",), ("channels_last=true",), ("compile=true",)])
def test_every_model_trains_on_cuda_with_each_speed_switch(name, switches, tmp_path):
    out = tmp_path / "run"
    assert main(_args(name, out, *switches)) == 0
    state = torch.load(out / "checkpoints" / "latest.pt", weights_only=True, map_location="cpu")
    assert state["step"] == 3
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_a_cuda_run_resumes_to_the_same_step_and_keeps_its_cuda_rng(tmp_path):
    out = tmp_path / "run"
    assert main(_args("began", out)) == 0
    assert main(_args("began", out, "steps=5", "resume=true")) == 0
    state = torch.load(out / "checkpoints" / "latest.pt", weights_only=True, map_location="cpu")
    assert state["step"] == 5 and "cuda" in state["rng"][0]


def test_fid_features_on_cuda_match_the_cpu_within_rounding():
    images = (torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    cpu = M.load_feature_network("inception-offline", device="cpu").features(images)[0]
    gpu = M.load_feature_network("inception-offline", device="cuda").features(images)[0]
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-2)  # TF32 convolutions round differently
