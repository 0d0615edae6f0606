"""began-plugin: BEGAN (arXiv 1703.10717) for any GAN trainer that speaks ``gan_trainer.models``.

Public names: the model ``BEGAN``, its pure pieces ``BEGANLoss`` and ``EquilibriumController``,
the contract ``GANModel`` / ``LossOutput``, and the registry functions ``list_models``,
``load_model`` and ``create_model``.
"""

from began_plugin.began import BEGAN, BEGANLoss, EquilibriumController
from began_plugin.interface import GANModel, LossOutput
from began_plugin.registry import RegistryError, create_model, list_models, load_model

__version__ = "0.1.0"

__all__ = [
    "BEGAN",
    "BEGANLoss",
    "EquilibriumController",
    "GANModel",
    "LossOutput",
    "RegistryError",
    "create_model",
    "list_models",
    "load_model",
    "__version__",
]
