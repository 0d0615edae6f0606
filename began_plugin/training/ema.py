"""The host's moving average of the generator's weights, for any registered model.

An exponential moving average of G's parameters (Yazıcı et al., ICLR 2019, arXiv 1806.04498; stylegan2-ada's
``G_ema``, timm's ``ModelEmaV3``) often draws better samples than G itself.  Training never sees it: after every
generator step the average moves towards G's parameters with the decay

    decay_t = min(ema_decay, (1 + t) / (10 + t)),    t = updates made so far

(TensorFlow's ``ExponentialMovingAverage`` warm-up: early averages do not remember the random initialisation).
The warm-up reaches ``ema_decay`` only after ``(10 d - 1) / (1 - d)`` updates (about 9,000 for 0.999); the host
logs ``ema_decay_effective`` so a run shows where it stands.  Buffers (batch-norm running statistics) are copied
from G, as stylegan2-ada does.  The state (average and update count) is in the checkpoint, so resume is exact.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
from torch import nn


def warmup_decay(ema_decay: float, updates: int) -> float:
    """decay_t = min(ema_decay, (1 + t) / (10 + t)) for the t-th update (t counted from 0)."""
    return min(ema_decay, (1.0 + updates) / (10.0 + updates))


class GeneratorAverage(nn.Module):
    """An averaged copy of ``generator`` (no gradients, no optimizer), updated by :meth:`update`."""

    def __init__(self, generator: nn.Module, decay: float) -> None:
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay={decay} must be in (0, 1) for an average (e.g. 0.999); 0 turns it off.")
        self.decay = float(decay)
        self.average = copy.deepcopy(generator).requires_grad_(False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self._updates: int | None = None  # host-side mirror of updates: no device sync per step

    def _load_from_state_dict(self, *args, **kwargs):
        self._updates = None
        super()._load_from_state_dict(*args, **kwargs)

    def effective_decay(self) -> float:
        """The decay the next update will use."""
        if self._updates is None:
            self._updates = int(self.updates)
        return warmup_decay(self.decay, self._updates)

    @torch.no_grad()
    def update(self, generator: nn.Module) -> float:
        """Move the average towards ``generator``'s parameters; copy its buffers; return the decay used."""
        decay = self.effective_decay()
        average = [p for p in self.average.parameters()]
        current = [p.detach() for p in generator.parameters()]
        torch._foreach_lerp_(average, current, 1.0 - decay)
        for mine, theirs in zip(self.average.buffers(), generator.buffers()):
            mine.copy_(theirs)
        self.updates += 1
        self._updates += 1
        return decay


@contextlib.contextmanager
def generator_swapped(model: nn.Module, average: GeneratorAverage | None) -> Iterator[nn.Module]:
    """Within the block, ``model.generator`` is the average (when there is one), so ``generate`` draws from it."""
    if average is None:
        yield model
        return
    own = model.generator
    model.generator = average.average
    try:
        yield model
    finally:
        model.generator = own
