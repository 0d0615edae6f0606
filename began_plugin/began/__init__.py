"""BEGAN (Berthelot, Schumm, Metz 2017, arXiv 1703.10717)."""

from began_plugin.began.controller import EquilibriumController, PlateauRule
from began_plugin.began.loss import BEGANLoss, convergence_measure, equilibrium_update, reconstruction_loss
from began_plugin.began.model import BEGAN

__all__ = [
    "BEGAN",
    "BEGANLoss",
    "EquilibriumController",
    "PlateauRule",
    "convergence_measure",
    "equilibrium_update",
    "reconstruction_loss",
]
