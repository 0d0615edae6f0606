"""BEGAN's adaptive state: the equilibrium controller k_t and the learning-rate plateau rule.

arXiv 1703.10717: k_t is updated by proportional control (eq. 4), clipped to [0, 1]; the
learning rate is "decayed by a factor of 2 when the measure of convergence stalls" (§4.1).
Both keep their state in buffers, so a checkpoint loaded with ``weights_only=True``
restores them, and update it with tensor operations, so a GPU host is not forced to
synchronise on every step.
"""

from __future__ import annotations

import torch
from torch import nn

from began_plugin.began.loss import Scalar, convergence_measure, equilibrium_update


def _as_tensor(value: Scalar, like: torch.Tensor) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().to(like)
    return torch.tensor(float(value), dtype=like.dtype, device=like.device)


class EquilibriumController(nn.Module):
    """k ← clip(k + λ_k (γ·loss_real − loss_fake), 0, 1).

    ``k`` reads the current value as a Python float; ``update`` applies one step and
    returns the new value; ``step_`` does the same without reading it back (no
    host-device synchronisation); ``convergence`` returns M_global.
    """

    def __init__(self, gamma: float = 0.5, lambda_k: float = 0.001, k_init: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= k_init <= 1.0:
            raise ValueError(f"k_init={k_init!r} is outside [0, 1]; k_t is a proportion (the paper starts at 0).")
        if lambda_k < 0:
            raise ValueError(f"lambda_k={lambda_k!r} is negative; it is the proportional gain (the paper uses 0.001).")
        self.gamma = float(gamma)
        self.lambda_k = float(lambda_k)
        # float64: increments of lambda_k * 1e-3 would be lost to float32 rounding near k = 1.
        self.register_buffer("k_t", torch.tensor(float(k_init), dtype=torch.float64))

    @property
    def k(self) -> float:
        return float(self.k_t)

    def step_(self, loss_real: Scalar, loss_fake: Scalar) -> torch.Tensor:
        k_next = equilibrium_update(
            self.k_t, _as_tensor(loss_real, self.k_t), _as_tensor(loss_fake, self.k_t), self.gamma, self.lambda_k
        )
        self.k_t.copy_(k_next)
        return self.k_t

    def update(self, loss_real: Scalar, loss_fake: Scalar) -> float:
        return float(self.step_(loss_real, loss_fake))

    def convergence(self, loss_real: Scalar, loss_fake: Scalar) -> float:
        return float(convergence_measure(_as_tensor(loss_real, self.k_t), _as_tensor(loss_fake, self.k_t), self.gamma))

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, lambda_k={self.lambda_k}"


class PlateauRule(nn.Module):
    """Multiply the learning rate by ``factor`` when the windowed mean of M_global stalls.

    M_global is averaged over windows of ``window`` steps; a window whose mean is not
    below the best so far is a bad window; after ``patience`` bad windows in a row the
    scale is multiplied by ``factor`` and the count starts again.
    """

    def __init__(self, window: int = 1000, patience: int = 3, factor: float = 0.5) -> None:
        super().__init__()
        if window < 1 or patience < 1 or not 0.0 < factor < 1.0:
            raise ValueError(
                f"plateau rule window={window}, patience={patience}, factor={factor} is invalid; "
                f"expected window >= 1, patience >= 1 and 0 < factor < 1."
            )
        self.window, self.patience, self.factor = window, patience, factor
        self.register_buffer("window_sum", torch.zeros((), dtype=torch.float64))
        self.register_buffer("window_count", torch.zeros((), dtype=torch.int64))
        self.register_buffer("best", torch.tensor(float("inf"), dtype=torch.float64))
        self.register_buffer("bad_windows", torch.zeros((), dtype=torch.int64))
        self.register_buffer("scale", torch.ones((), dtype=torch.float64))
        self._count: int | None = None  # host-side mirror of window_count

    def _load_from_state_dict(self, *args, **kwargs):
        self._count = None
        super()._load_from_state_dict(*args, **kwargs)

    def observe(self, m_global: Scalar) -> float | None:
        """Add one step's M_global; return the new scale at a window's end, else ``None``."""
        if self._count is None:
            self._count = int(self.window_count)
        self.window_sum += _as_tensor(m_global, self.window_sum)
        self.window_count += 1
        self._count += 1
        if self._count < self.window:
            return None
        mean = float(self.window_sum) / self._count
        if mean < float(self.best):
            self.best.fill_(mean)
            self.bad_windows.zero_()
        else:
            self.bad_windows += 1
            if int(self.bad_windows) >= self.patience:
                self.scale *= self.factor
                self.bad_windows.zero_()
        self.window_sum.zero_()
        self.window_count.zero_()
        self._count = 0
        return float(self.scale)
