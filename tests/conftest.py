import pytest
import torch

# Small widths so every registered model runs at every supported size in seconds on 2 cores.
# A model not listed here is tested with its own defaults.
SMALL_HPARAMS = {
    "began": {"n": 8, "h": 8, "z_dim": 8},
    "dcgan": {"width": 8},
    "wgan_gp": {"width": 8},
}


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)
    yield


@pytest.fixture
def one_thread():
    """One torch thread for in-process runs, as the subprocesses get (OMP_NUM_THREADS=1): 2 shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """A three-step digits run (1 channel, 32 px, SMALL_HPARAMS) of BEGAN, DCGAN and WGAN-GP, on one thread."""
    from began_plugin.training.cli import main as train_main

    root = tmp_path_factory.mktemp("runs")
    torch.set_num_threads(1)
    out = {}
    for name, hparams in SMALL_HPARAMS.items():
        out[name] = root / name
        args = [f"model={name}", "data=digits", "steps=3", "batch_size=8", f"out={out[name]}", "log_every=1"]
        args += [
            "sample_every=3",
            "checkpoint_every=3",
            "num_samples=16",
            *(f"model.{k}={v}" for k, v in hparams.items()),
        ]
        assert train_main(args) == 0
    return out
