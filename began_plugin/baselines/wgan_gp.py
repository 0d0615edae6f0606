"""WGAN-GP (Gulrajani et al. 2017, arXiv 1704.00028, Algorithm 1).

Critic loss D(G(z)) - D(x) + lambda (||grad D(x_hat)||_2 - 1)^2 on random interpolates
x_hat, lambda = 10, 5 critic steps per generator step, Adam lr 1e-4, betas (0, 0.9), no
batch norm in the critic.  The networks are DCGAN's (the paper's DCGAN-style setting).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from began_plugin.baselines.dcgan import DCGAN, DCGANDiscriminator
from began_plugin.interface import LossOutput


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """mean over the batch of (||grad_x_hat D(x_hat)||_2 - 1)^2, x_hat = eps x + (1 - eps) x_fake."""
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).square().mean()


class WGANGP(DCGAN):
    @dataclass
    class Hparams:
        width: int = 64
        z_dim: int = 128
        lr: float = 1e-4
        beta1: float = 0.0
        beta2: float = 0.9
        gp_weight: float = 10.0

    n_critic = 5
    simultaneous = False
    convergence_measure = "wasserstein"  # the critic's estimate E[D(x)] - E[D(G(z))], as logged

    def _build_discriminator(self) -> nn.Module:
        return DCGANDiscriminator(self.image_size, self.channels, self.hparams.width, batch_norm=False)

    def discriminator_loss(self, real: torch.Tensor) -> LossOutput:
        fake = self.generator(self.sample_z(real.shape[0])).detach()
        wasserstein = self.discriminator(fake).mean() - self.discriminator(real).mean()
        gp = gradient_penalty(self.discriminator, real, fake)
        loss = wasserstein + self.hparams.gp_weight * gp
        return LossOutput(loss, {"loss_d": loss.detach(), "wasserstein": (-wasserstein).detach(), "gp": gp.detach()})

    def generator_loss(self, real: torch.Tensor) -> LossOutput:
        loss = -self.discriminator(self.generator(self.sample_z(real.shape[0]))).mean()
        return LossOutput(loss, {"loss_g": loss.detach()})
