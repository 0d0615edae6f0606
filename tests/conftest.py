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
