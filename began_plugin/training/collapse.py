"""Mode collapse is reported, not hidden: warnings from the numbers the trainer already has.

:class:`CollapseMonitor` reads the trainer's logged rows (already floats at log steps, so it adds no
device synchronisation) and the fixed-z sample grids (already drawn and copied to the CPU at sample
steps), and warns once per condition, naming the step and what to try:

* the model's own signs (its optional ``collapse_signs`` hook, see ``began_plugin.interface``): a
  condition on logged rows that has held for the sign's number of steps;
* ``low_diversity`` (any model): the mean pairwise L1 distance between the images of the fixed-z
  sample grid (:func:`sample_diversity`) is below ``DIVERSITY_RATIO`` = 0.25 of the same measure on a
  fixed batch of real images at ``DIVERSITY_GRIDS`` = 2 sample grids in a row. Identical images give
  0; two grids in a row so a single early grid (near-constant output at initialisation) does not fire.

The diversity is also returned to the trainer, which writes it as ``sample_diversity`` (and
``real_diversity``) into the log row of the grid's step (or the next log row, with
``sample_diversity_step``, when that step is not a log step). The monitor holds no state that the
training reads and draws no random numbers, so it cannot change a run's bits; a resumed run starts a
fresh monitor.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch

from began_plugin.interface import CollapseSign, optional_hook

__all__ = [
    "CollapseMonitor",
    "CollapseWarning",
    "DIVERSITY_GRIDS",
    "DIVERSITY_RATIO",
    "sample_diversity",
]

DIVERSITY_RATIO = 0.25
DIVERSITY_GRIDS = 2


class CollapseWarning(UserWarning):
    """Training shows a sign of mode collapse."""


@torch.no_grad()
def sample_diversity(images: torch.Tensor) -> float | None:
    """Mean L1 distance per pixel between all pairs of distinct images (float, [-1, 1] units); None for < 2 images."""
    n = images.shape[0]
    if n < 2:
        return None
    flat = images.detach().to("cpu", torch.float64).reshape(n, -1)
    d = torch.cdist(flat, flat, p=1) / flat.shape[1]
    return float(d.sum() / (n * (n - 1)))  # the diagonal is 0


class CollapseMonitor:
    """Feed it each logged row (:meth:`observe_log`) and each sample grid (:meth:`observe_samples`)."""

    def __init__(
        self, *, signs: Sequence[CollapseSign] = (), real_images: torch.Tensor | None = None, enabled: bool = True
    ) -> None:
        self.signs = tuple(signs)
        self.enabled = enabled
        self.real_diversity = sample_diversity(real_images) if (enabled and real_images is not None) else None
        self.warned: dict[str, int] = {}  # condition -> step it was reported at
        self._since: dict[str, int] = {}  # sign -> first step of its current streak
        self._low_grids = 0
        self._pending: dict[str, Any] = {}

    @classmethod
    def for_run(cls, model, dataset, num_samples: int, enabled: bool = True) -> CollapseMonitor:
        """A monitor with ``model``'s own collapse signs and the first images of ``dataset`` as reference."""
        real = None
        n = min(num_samples, len(dataset))
        if enabled and n >= 2:
            images = getattr(dataset, "images", None)
            real = images[:n] if images is not None else torch.stack([dataset[i] for i in range(n)])
        return cls(signs=optional_hook(model, "collapse_signs")(), real_images=real, enabled=enabled)

    def _warn(self, condition: str, step: int, message: str) -> None:
        if condition in self.warned:
            return
        self.warned[condition] = step
        warnings.warn(f"Possible mode collapse at step {step}: {message}", CollapseWarning, stacklevel=3)

    def observe_log(self, row: dict[str, Any]) -> dict[str, Any]:
        """Check one logged row (``step`` plus float logs); return keys to add to it (the pending diversity)."""
        if not self.enabled:
            return {}
        step = int(row["step"])
        for sign in self.signs:
            try:
                holds = sign.holds(row)
            except (KeyError, TypeError):  # the row lacks a value the sign reads: nothing to judge
                continue
            if not holds:
                self._since.pop(sign.name, None)
                continue
            since = self._since.setdefault(sign.name, step)
            if step - since >= sign.steps:
                self._warn(sign.name, step, sign.advice(row, since))
        extra, self._pending = self._pending, {}
        if extra.get("sample_diversity_step") == step:
            del extra["sample_diversity_step"]
        return extra

    def observe_samples(self, step: int, images: torch.Tensor) -> float | None:
        """Measure one fixed-z sample grid; warn on low diversity; the value goes into the next logged row."""
        if not self.enabled:
            return None
        value = sample_diversity(images)
        if value is None:
            return None
        self._pending = {"sample_diversity": value, "sample_diversity_step": int(step)}
        if self.real_diversity:
            self._pending["real_diversity"] = self.real_diversity
            ratio = value / self.real_diversity
            self._low_grids = self._low_grids + 1 if ratio < DIVERSITY_RATIO else 0
            if self._low_grids >= DIVERSITY_GRIDS:
                self._warn(
                    "low_diversity",
                    step,
                    (
                        f"the fixed-z sample grid's diversity (mean pairwise L1 {value:.4f}) is {ratio:.2f} x that of "
                        f"real images ({self.real_diversity:.4f}), below {DIVERSITY_RATIO} x at {self._low_grids} grids "
                        "in a row: the generator draws nearly the same image for every z. Try a lower learning rate "
                        "(model.lr), the model's own options against collapse (gan-train --list-models shows them), "
                        "or another seed; the samples/ grids show it."
                    ),
                )
        return value
