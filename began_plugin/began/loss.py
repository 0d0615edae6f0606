"""BEGAN's objective, as pure functions (Berthelot, Schumm, Metz 2017, arXiv 1703.10717, §3.3).

With the discriminator an auto-encoder ``D`` and the pixel-wise reconstruction loss

    L(v) = |v - D(v)|^eta                                   (eq. 2; mean over pixels and batch)

the objective is (eq. 4)

    L_D = L(x) - k_t * L(G(z_D))        for the discriminator's parameters
    L_G = L(G(z_G))                     for the generator's parameters
    k_{t+1} = clip(k_t + lambda_k * (gamma * L(x) - L(G(z_G))), 0, 1)

and the convergence measure (§3.4.1) is M_global = L(x) + |gamma * L(x) - L(G(z_G))|.
``gamma = E[L(G(z))] / E[L(x)]`` is the diversity ratio (eq. 3); ``k_t`` is the variable
that is updated.  Shapes: images ``N x C x H x W``; every loss is a 0-dim tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

Scalar = float | torch.Tensor


def reconstruction_loss(v: torch.Tensor, reconstruction: torch.Tensor, eta: int = 1) -> torch.Tensor:
    """L(v) = mean |v - D(v)|^eta over every pixel of the batch (eq. 2); eta is 1 or 2.

    Computed in float32 whatever the inputs' precision (bf16 autocast), since k_t and M_global integrate
    it over the run; float32 inputs are used as they are.
    """
    if eta not in (1, 2):
        raise ValueError(f"eta={eta!r} is not supported; the paper uses eta in {{1, 2}} (1: L1, 2: L2).")
    diff = (v.float() - reconstruction.float()).abs()
    return diff.mean() if eta == 1 else diff.square().mean()


def discriminator_objective(loss_real: torch.Tensor, loss_fake: torch.Tensor, k: Scalar) -> torch.Tensor:
    """L_D = L(x) - k_t * L(G(z_D)) (eq. 4)."""
    return loss_real - k * loss_fake


def equilibrium_update(k: Scalar, loss_real: Scalar, loss_fake: Scalar, gamma: float, lambda_k: float):
    """k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z_G))), 0, 1) (eq. 4)."""
    k_next = k + lambda_k * (gamma * loss_real - loss_fake)
    if isinstance(k_next, torch.Tensor):
        return k_next.clamp(0.0, 1.0)
    return min(max(k_next, 0.0), 1.0)


def convergence_measure(loss_real: Scalar, loss_fake: Scalar, gamma: float):
    """M_global = L(x) + |gamma L(x) - L(G(z_G))| (§3.4.1)."""
    return loss_real + abs(gamma * loss_real - loss_fake)


@dataclass
class BEGANLoss:
    """The three BEGAN losses for one step, from the auto-encoder's reconstructions.

    ``__call__(real, recon_real, fake_d, recon_fake_d, fake_g, recon_fake_g, k)`` returns
    ``(L_D, L_G, logs)``; M_global is not among the logs, since under several processes it must be taken of
    the averaged losses (``BEGAN.derived_logs``).  ``L_D`` must only reach the discriminator's parameters and
    ``L_G`` only the generator's: the caller detaches ``fake_d`` for the first and
    back-propagates ``L_G`` into the generator's parameters alone.
    """

    gamma: float = 0.5
    eta: int = 1

    def __post_init__(self) -> None:
        if self.eta not in (1, 2):
            raise ValueError(f"eta={self.eta!r} is not supported; use 1 (L1, the paper's default) or 2.")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(
                f"gamma={self.gamma!r} is outside [0, 1]; the paper's diversity ratio lies in [0, 1] (0.5 by default)."
            )

    def __call__(self, real, recon_real, fake_d, recon_fake_d, fake_g, recon_fake_g, k):
        loss_real = reconstruction_loss(real, recon_real, self.eta)
        loss_fake_d = reconstruction_loss(fake_d, recon_fake_d, self.eta)
        loss_fake_g = reconstruction_loss(fake_g, recon_fake_g, self.eta)
        loss_d = discriminator_objective(loss_real, loss_fake_d, k)
        logs = {
            "loss_real": loss_real.detach(),
            "loss_fake": loss_fake_g.detach(),
            "loss_d": loss_d.detach(),
            "loss_g": loss_fake_g.detach(),
        }
        return loss_d, loss_fake_g, logs
