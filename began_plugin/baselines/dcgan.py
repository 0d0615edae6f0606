"""DCGAN (Radford, Metz, Chintala 2015, arXiv 1511.06434), scaled to 32-256 px.

Generator: z -> 4x4 by a transposed convolution, then stride-2 transposed 4x4
convolutions halving the width and doubling the size, batch norm + ReLU, tanh output.
Discriminator: stride-2 4x4 convolutions with LeakyReLU(0.2), batch norm on every layer
but the first, a final 4x4 convolution to one logit.  Weights ~ N(0, 0.02) (§4).
Non-saturating loss; Adam lr 2e-4, beta1 0.5.  ``width`` is the generator's last and the
discriminator's first filter count, so capacities can be matched across models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from began_plugin.interface import GANModel, LossOutput


def _levels(image_size: int) -> int:
    return int(math.log2(image_size)) - 2  # stride-2 stages between 4x4 and image_size


class DCGANGenerator(nn.Module):
    def __init__(self, image_size: int, channels: int, width: int, z_dim: int) -> None:
        super().__init__()
        levels = _levels(image_size)
        top = width * 2 ** (levels - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, top, 4, 1, 0, bias=False),
            nn.BatchNorm2d(top),
            nn.ReLU(True),
        ]
        cin = top
        for _ in range(levels - 1):
            layers += [nn.ConvTranspose2d(cin, cin // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(cin // 2), nn.ReLU(True)]
            cin //= 2
        layers += [nn.ConvTranspose2d(cin, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    """Also WGAN-GP's critic with ``batch_norm=False`` (the gradient penalty is per sample)."""

    def __init__(self, image_size: int, channels: int, width: int, batch_norm: bool = True) -> None:
        super().__init__()
        levels = _levels(image_size)
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        cin = width
        for _ in range(levels - 1):
            layers.append(nn.Conv2d(cin, cin * 2, 4, 2, 1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(cin * 2))
            layers.append(nn.LeakyReLU(0.2, True))
            cin *= 2
        layers.append(nn.Conv2d(cin, 1, 4, 1, 0))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


def init_normal_(module: nn.Module) -> None:
    """DCGAN's initialisation: conv weights ~ N(0, 0.02), batch-norm scale ~ N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DCGAN(GANModel):
    """Deep convolutional GAN with the non-saturating loss, alternating updates."""

    @dataclass
    class Hparams:
        width: int = 64
        z_dim: int = 100
        lr: float = 2e-4
        beta1: float = 0.5
        beta2: float = 0.999

    supported_image_sizes = (32, 64, 128, 256)
    n_critic = 1
    simultaneous = False

    def __init__(self, image_size: int = 64, channels: int = 3, **hparams) -> None:
        super().__init__(image_size, channels, **hparams)
        hp = self.hparams
        if hp.width < 1 or hp.z_dim < 1:
            raise ValueError(f"width={hp.width} and z_dim={hp.z_dim} must be positive integers.")
        self.generator = DCGANGenerator(image_size, channels, hp.width, hp.z_dim)
        self.discriminator = self._build_discriminator()
        init_normal_(self)

    @classmethod
    def dataset_defaults(cls, dataset: str) -> dict[str, Any]:
        # the small embedded datasets: a width that trains in minutes on a CPU
        return {"model.width": 32} if dataset in ("digits", "shapes", "mnist5k") else {}

    def _build_discriminator(self) -> nn.Module:
        return DCGANDiscriminator(self.image_size, self.channels, self.hparams.width, batch_norm=True)

    def sample_z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn(
            n, self.hparams.z_dim, generator=generator, device=generator.device if generator else self.device
        )
        return z.to(self.device)

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        hp = self.hparams
        return {
            "generator": torch.optim.Adam(self.generator.parameters(), lr=hp.lr, betas=(hp.beta1, hp.beta2)),
            "discriminator": torch.optim.Adam(self.discriminator.parameters(), lr=hp.lr, betas=(hp.beta1, hp.beta2)),
        }

    def discriminator_loss(self, real: torch.Tensor) -> LossOutput:
        fake = self.generator(self.sample_z(real.shape[0])).detach()
        logits_real, logits_fake = self.discriminator(real), self.discriminator(fake)
        loss = F.binary_cross_entropy_with_logits(
            logits_real, torch.ones_like(logits_real)
        ) + F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake))
        return LossOutput(loss, {"loss_d": loss.detach(), "d_real": torch.sigmoid(logits_real).mean().detach()})

    def generator_loss(self, real: torch.Tensor) -> LossOutput:
        logits = self.discriminator(self.generator(self.sample_z(real.shape[0])))
        loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))  # -log D(G(z))
        return LossOutput(loss, {"loss_g": loss.detach()})
