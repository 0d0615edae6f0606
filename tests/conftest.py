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
