"""The host's learning-rate schedule relative to the run's length, for any registered model.

``lr_anneal=F`` lets every optimizer's rate fall linearly from its model's value at step ``S (1 - F)`` to 0 at
step ``S`` (``S``: ``schedule_steps``, else ``steps``), a common way to end a short run on settled weights.  It
is not in any of our models' papers.  The factor multiplies whatever rate the model sets (BEGAN halves its own
rate when its convergence measure stalls): the model's rate is kept in each parameter group under ``UNSCALED`` (saved with the
optimizer, as torch's schedulers keep ``initial_lr``), so the model's hook always sees and sets its own rate.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

#: The parameter-group key holding the model's own rate while the host's factor is applied.
UNSCALED = "lr_unscaled"


class LinearAnneal:
    """Factor 1 until step ``start``, then linear to 0 at step ``end``."""

    def __init__(self, span: int, fraction: float) -> None:
        if not 0.0 < fraction <= 1.0:
            raise ValueError(
                f"lr_anneal={fraction} must be in (0, 1] (the fraction of the run the rate falls over); 0 turns it off."
            )
        self.end = int(span)
        self.start = int(span * (1.0 - fraction))
        if self.end <= self.start:
            raise ValueError(
                f"lr_anneal={fraction} over a run of {span} steps leaves no step to anneal over; raise it."
            )

    def factor(self, step: int) -> float:
        """The rate's factor once ``step`` generator steps are done."""
        return min(1.0, max(0.0, (self.end - step) / (self.end - self.start)))


def restore_model_rates(optimizers: Mapping[str, torch.optim.Optimizer]) -> None:
    """Put each group's own rate back, so the model's hook reads and sets its own values."""
    for opt in optimizers.values():
        for group in opt.param_groups:
            if UNSCALED in group:
                group["lr"] = group[UNSCALED]


def scale_rates(optimizers: Mapping[str, torch.optim.Optimizer], factor: float) -> None:
    """Keep each group's own rate under ``UNSCALED`` and run it at ``factor`` times that."""
    for opt in optimizers.values():
        for group in opt.param_groups:
            group[UNSCALED] = group["lr"]
            group["lr"] = group[UNSCALED] * factor
