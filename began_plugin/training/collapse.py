"""Mode collapse is reported, not hidden: warnings from the numbers the trainer already has.

:class:`CollapseMonitor` reads the trainer's logged rows (already floats at log steps, so it adds no
device synchronisation) and the fixed-z sample grids (already drawn and copied to the CPU at sample
steps), and warns once per condition, naming the step and what to try:

* ``k_pinned`` (BEGAN): k_t has stayed at 0 for ``K_PINNED_STEPS`` = 300 steps of logged rows. At k_t = 0
  the discriminator's loss is L(x) alone, nothing pushes generated images away, and the README's
  default run collapses exactly this way. 300 steps is 0.3 of a k_t unit at lambda_k = 0.001: a
  healthy run's k_t leaves 0 long before.
* ``fake_loss_low`` (BEGAN): L(G(z)) (``loss_fake``) has stayed below ``IMBALANCE_RATIO`` = 0.5 of
  gamma * L(x) (``loss_real``) for ``IMBALANCE_STEPS`` = 300 steps: the discriminator reconstructs the
  generated images much better than the real ones, which happens when they are few and simple; the
  equilibrium gamma * L(x) = L(G(z)) is far off.
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

import math
import warnings
from typing import Any, Optional

import torch

__all__ = [
    "CollapseMonitor",
    "CollapseWarning",
    "DIVERSITY_GRIDS",
    "DIVERSITY_RATIO",
    "IMBALANCE_RATIO",
    "IMBALANCE_STEPS",
    "K_PINNED_STEPS",
    "sample_diversity",
]

K_PINNED_STEPS = 300
K_ZERO = 1e-6  # k_t is clipped to exactly 0; this only absorbs float dust
IMBALANCE_RATIO = 0.5
IMBALANCE_STEPS = 300
DIVERSITY_RATIO = 0.25
DIVERSITY_GRIDS = 2


class CollapseWarning(UserWarning):
    """Training shows a sign of mode collapse."""


@torch.no_grad()
def sample_diversity(images: torch.Tensor) -> Optional[float]:
    """Mean L1 distance per pixel between all pairs of distinct images (float, [-1, 1] units); None for < 2 images."""
    n = images.shape[0]
    if n < 2:
        return None
    flat = images.detach().to("cpu", torch.float64).reshape(n, -1)
    d = torch.cdist(flat, flat, p=1) / flat.shape[1]
    return float(d.sum() / (n * (n - 1)))  # the diagonal is 0


class CollapseMonitor:
    """Feed it each logged row (:meth:`observe_log`) and each sample grid (:meth:`observe_samples`)."""

    def __init__(self, *, gamma: Optional[float] = None, real_images: Optional[torch.Tensor] = None,
                 enabled: bool = True) -> None:
        self.gamma = gamma
        self.enabled = enabled
        self.real_diversity = sample_diversity(real_images) if (enabled and real_images is not None) else None
        self.warned: dict[str, int] = {}  # condition -> step it was reported at
        self._k_zero_since: Optional[int] = None
        self._low_fake_since: Optional[int] = None
        self._low_grids = 0
        self._pending: dict[str, Any] = {}

    @classmethod
    def for_run(cls, model, dataset, num_samples: int, enabled: bool = True) -> "CollapseMonitor":
        """A monitor for ``model`` (BEGAN's gamma read from its hparams) with the first images of ``dataset`` as reference."""
        gamma = getattr(getattr(model, "hparams", None), "gamma", None)
        real = None
        n = min(num_samples, len(dataset))
        if enabled and n >= 2:
            images = getattr(dataset, "images", None)
            real = images[:n] if images is not None else torch.stack([dataset[i] for i in range(n)])
        return cls(gamma=gamma, real_images=real, enabled=enabled)

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
        k = row.get("k")
        if k is not None and math.isfinite(k):
            if k <= K_ZERO:
                self._k_zero_since = step if self._k_zero_since is None else self._k_zero_since
                if step - self._k_zero_since >= K_PINNED_STEPS:
                    self._warn("k_pinned", step, (
                        f"BEGAN's k_t has stayed at 0 since step {self._k_zero_since}, so the discriminator no longer "
                        "pushes generated images away (L_D = L(x)). Try raising model.gamma (e.g. 0.7), lowering "
                        "model.lr (e.g. 5e-5) or raising model.lambda_k, and look at the sample grids."))
            else:
                self._k_zero_since = None
        real, fake = row.get("loss_real"), row.get("loss_fake")
        if self.gamma is not None and real is not None and fake is not None:
            if fake < IMBALANCE_RATIO * self.gamma * real:
                self._low_fake_since = step if self._low_fake_since is None else self._low_fake_since
                if step - self._low_fake_since >= IMBALANCE_STEPS:
                    self._warn("fake_loss_low", step, (
                        f"L(G(z)) (loss_fake {fake:.4g}) has stayed below {IMBALANCE_RATIO} x gamma x L(x) "
                        f"({IMBALANCE_RATIO * self.gamma * real:.4g}) since step {self._low_fake_since}: the "
                        "discriminator reconstructs the generated images far better than real ones, as it does when "
                        "they are few and simple. Try raising model.gamma, raising model.lambda_k or lowering "
                        "model.lr, and look at the sample grids."))
            else:
                self._low_fake_since = None
        extra, self._pending = self._pending, {}
        if extra.get("sample_diversity_step") == step:
            del extra["sample_diversity_step"]
        return extra

    def observe_samples(self, step: int, images: torch.Tensor) -> Optional[float]:
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
                self._warn("low_diversity", step, (
                    f"the fixed-z sample grid's diversity (mean pairwise L1 {value:.4f}) is {ratio:.2f} x that of "
                    f"real images ({self.real_diversity:.4f}), below {DIVERSITY_RATIO} x at {self._low_grids} grids "
                    "in a row: the generator draws nearly the same image for every z. Try a lower learning rate "
                    "(model.lr), for BEGAN a higher model.gamma, a smaller embedding model.h with model.z_dim (on the "
                    "digits h=z=8 covers far more classes than 32) or BEGAN-CS (model.latent_constraint=0.1 "
                    "with model.h equal to model.z_dim), or another seed; the samples/ grids show it."))
        return value
