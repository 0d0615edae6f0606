"""BEGAN's networks and its model class (arXiv 1703.10717, §3.5 and Figure 1).

The discriminator *is* an auto-encoder (encoder + decoder); there is no other network
beside it.  Encoder: 3x3 convolutions with ELU, two per scale, down-sampling by a
stride-2 convolution, filters growing linearly (n, 2n, 3n, ...), then a fully
connected layer to the embedding ``h`` with no non-linearity.  Decoder: a fully
connected layer from ``h`` to an 8x8xn tensor, then per scale two 3x3 convolutions
with ELU and a nearest-neighbour up-sampling.  The generator has the decoder's
architecture with its own weights.  ``skip=True`` adds the paper's skip connections:
the initial 8x8 decoder tensor, up-sampled, is concatenated to every block's input.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from began_plugin.began.controller import EquilibriumController, LinearAnneal, PlateauRule
from began_plugin.began.loss import BEGANLoss, pulling_away
from began_plugin.interface import GANModel, LossOutput


def _scales(image_size: int) -> int:
    """Number of resolutions from image_size down to the 8x8 bottleneck."""
    return int(math.log2(image_size)) - 2


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class Decoder(nn.Module):
    """h -> image: FC to 8x8xn, [conv-ELU, conv-ELU, upsample x2] per scale, conv to channels."""

    def __init__(self, image_size: int, channels: int, n: int, h: int, skip: bool = False) -> None:
        super().__init__()
        self.n, self.skip = n, skip
        self.fc = nn.Linear(h, 8 * 8 * n)
        blocks = []
        for i in range(_scales(image_size)):
            cin = 2 * n if (skip and i > 0) else n
            blocks.append(nn.Sequential(_conv(cin, n), nn.ELU(), _conv(n, n), nn.ELU()))
        self.blocks = nn.ModuleList(blocks)
        self.to_image = _conv(n, channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h0 = self.fc(z).view(-1, self.n, 8, 8)
        x = h0
        for i, block in enumerate(self.blocks):
            if i > 0:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
                if self.skip:
                    x = torch.cat([x, F.interpolate(h0, size=x.shape[-2:], mode="nearest")], dim=1)
            x = block(x)
        return self.to_image(x)


class Encoder(nn.Module):
    """image -> h: conv to n, [conv-ELU, conv-ELU, stride-2 conv to the next width] per scale, FC."""

    def __init__(self, image_size: int, channels: int, n: int, h: int) -> None:
        super().__init__()
        scales = _scales(image_size)
        layers: list[nn.Module] = [_conv(channels, n), nn.ELU()]
        for level in range(1, scales + 1):
            width = n * level
            layers += [_conv(width, width), nn.ELU(), _conv(width, width), nn.ELU()]
            if level < scales:
                layers += [_conv(width, n * (level + 1), stride=2), nn.ELU()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(8 * 8 * n * scales, h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


class AutoencoderDiscriminator(nn.Module):
    """D(v) = decoder(encoder(v)): returns the reconstruction of v."""

    def __init__(self, image_size: int, channels: int, n: int, h: int, skip: bool = False) -> None:
        super().__init__()
        self.encoder = Encoder(image_size, channels, n, h)
        self.decoder = Decoder(image_size, channels, n, h, skip)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


INITS = ("xavier", "kaiming", "pytorch")


def init_weights_(module: nn.Module, kind: str) -> None:
    """Initialise every convolution and linear layer; biases to zero (except ``pytorch``).

    The paper does not state an initialisation.  PyTorch's default (uniform with variance
    1/(3 fan_in)) shrinks the signal by about 3x per layer, so at init the generator's
    output varies with z by about 0.4% of its scale (per-pixel std 0.0036 over z at 32 px,
    n=16): every z gets the same gradient and training collapses onto one image.
    ``xavier`` (Glorot uniform, TensorFlow's default, which the public BEGAN code relies
    on) keeps that variation 25x larger; ``kaiming`` (He normal, linear gain) 58x.
    """
    if kind not in INITS:
        raise ValueError(f"init={kind!r} is not one of {list(INITS)}; use xavier (default), kaiming or pytorch.")
    if kind == "pytorch":
        return
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if kind == "xavier":
                nn.init.xavier_uniform_(m.weight)
            else:
                nn.init.kaiming_normal_(m.weight, nonlinearity="linear")
            nn.init.zeros_(m.bias)


class BEGAN(GANModel):
    """Boundary Equilibrium GAN (Berthelot, Schumm, Metz 2017).

    Both players are updated from losses evaluated at the same parameters (the paper's
    simultaneous update, eq. 4): ``losses(real)`` evaluates both before either optimizer
    steps; the host back-propagates ``L_D`` into D and ``L_G`` into G.
    """

    @dataclass
    class Hparams:
        n: int = 64  # base number of filters (the paper's n)
        h: int = 64  # auto-encoder embedding size
        z_dim: int = 64  # N_z; z ~ U[-1, 1]^N_z
        gamma: float = 0.5  # diversity ratio
        lambda_k: float = 0.001  # proportional gain of k_t
        k_init: float = 0.0
        eta: int = 1  # 1: L1 reconstruction (paper), 2: L2
        skip: bool = False  # the paper's skip connections
        lr: float = 1e-4
        # Not in the paper: the discriminator's own learning rate, the two time-scale update rule (TTUR;
        # Heusel et al., NeurIPS 2017, arXiv 1706.08500, who also trained BEGAN with it).  0 (default) uses lr.
        lr_d: float = 0.0
        beta1: float = 0.5  # the paper gives no betas; the authors' public code uses (0.5, 0.999)
        beta2: float = 0.999
        lr_decay: bool = True  # halve lr when M_global stalls (§4.1)
        lr_decay_window: int = 1000  # steps averaged per M_global measurement
        lr_decay_patience: int = 3  # windows without improvement before halving
        init: str = "xavier"  # xavier | kaiming | pytorch (see init_weights_)
        # Not in the paper: from step lr_anneal_start the learning rate falls linearly to 0 at step
        # lr_anneal_end (times the plateau rule's scale); lr_anneal_end=0 (default) turns it off and start is ignored.
        lr_anneal_start: int = 0
        lr_anneal_end: int = 0
        # BEGAN-CS (Chang, Chen, Hsu, ECCV 2018, arXiv 1808.07258): adds alpha * mean|Enc(G(z_D)) - z_D| to
        # L_D, so the discriminator's embedding of a fake must recover its z (needs h == z_dim).  Not the
        # paper's algorithm: 0 (default) is plain BEGAN; the BEGAN-CS authors use alpha = 0.1.
        latent_constraint: float = 0.0
        # Not in the paper: EBGAN's pulling-away term (Zhao, Mathieu, LeCun, ICLR 2017, arXiv 1609.03126) adds
        # pull_away * f_PT(Enc(G(z_G))) to L_G, the mean squared cosine similarity of the discriminator's
        # embeddings of the batch's generated images, a repelling regulariser against mode collapse.  0
        # (default) is plain BEGAN; EBGAN's authors use 0.1.  k_t and M_global do not see it.
        pull_away: float = 0.0
        # Not in the paper: PacGAN packing (Lin, Khetan, Fanti, Oh, NeurIPS 2018, arXiv 1712.04086).  The
        # discriminator auto-encodes packs of `pack` images of the same kind (all real or all generated)
        # stacked along the channels, so L(v) is measured on packs; the batch size must be a multiple of it.
        # 1 (default) is plain BEGAN; PacGAN's authors use 2 to 4.  h stays the embedding size per image: a
        # pack's embedding has pack * h numbers (with BEGAN-CS, its images' z's, concatenated).
        pack: int = 1
        # Not in the paper: sample from an exponential moving average of G's weights (Yazıcı et al., ICLR 2019,
        # arXiv 1806.04498), updated after every step with decay min(ema_decay, (1+t)/(10+t)); training is
        # unchanged (G and D never see the average).  0 (default) samples from G itself.
        ema_decay: float = 0.0

    supported_image_sizes = (32, 64, 128, 256)
    n_critic = 1
    simultaneous = True

    def __init__(self, image_size: int = 64, channels: int = 3, **hparams) -> None:
        super().__init__(image_size, channels, **hparams)
        hp = self.hparams
        for key in ("n", "h", "z_dim", "pack"):
            if getattr(hp, key) < 1:
                raise ValueError(f"BEGAN {key}={getattr(hp, key)} must be a positive integer.")
        if hp.latent_constraint < 0:
            raise ValueError(f"BEGAN latent_constraint={hp.latent_constraint} must be >= 0 (0 turns BEGAN-CS off).")
        if hp.pull_away < 0:
            raise ValueError(f"BEGAN pull_away={hp.pull_away} must be >= 0 (0 turns EBGAN's pulling-away term off; its authors use 0.1).")
        if hp.lr <= 0:
            raise ValueError(f"BEGAN lr={hp.lr} must be > 0 (the paper uses 1e-4).")
        if hp.lr_d < 0:
            raise ValueError(
                f"BEGAN lr_d={hp.lr_d} must be >= 0: 0 gives the discriminator lr={hp.lr} as the paper does, "
                f"a positive value is its own rate (e.g. lr_d={2 * hp.lr:g} for a two time-scale update)."
            )
        if not 0.0 <= hp.ema_decay < 1.0:
            raise ValueError(f"BEGAN ema_decay={hp.ema_decay} must be in [0, 1) (0 turns the average off; e.g. 0.999).")
        if hp.latent_constraint > 0 and hp.h != hp.z_dim:
            raise ValueError(
                f"BEGAN-CS (latent_constraint={hp.latent_constraint}) compares the discriminator's embedding with z, "
                f"so h must equal z_dim, got h={hp.h} and z_dim={hp.z_dim}; set model.h={hp.z_dim}."
            )
        self.generator = Decoder(image_size, channels, hp.n, hp.z_dim, hp.skip)
        # with packing (model.pack > 1) D auto-encodes pack images at once, through pack * h numbers
        self.discriminator = AutoencoderDiscriminator(image_size, channels * hp.pack, hp.n, hp.h * hp.pack, hp.skip)
        init_weights_(self.generator, hp.init)
        init_weights_(self.discriminator, hp.init)
        self.generator_ema: nn.Module | None = None
        if hp.ema_decay > 0:  # the average starts as G's initial weights; it has no gradient and no optimizer
            self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)
            self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))
        self.sample_from_average = True  # generate() uses generator_ema when there is one
        self.loss = BEGANLoss(gamma=hp.gamma, eta=hp.eta)
        self.controller = EquilibriumController(hp.gamma, hp.lambda_k, hp.k_init)
        self.lr_rule = PlateauRule(hp.lr_decay_window, hp.lr_decay_patience) if hp.lr_decay else None
        self.lr_anneal = LinearAnneal(hp.lr_anneal_start, hp.lr_anneal_end) if hp.lr_anneal_end > 0 else None
        self._lr_scales: list[float] | None = None  # host-side [plateau scale, anneal factor]

    def _load_from_state_dict(self, *args, **kwargs):
        self._lr_scales = None  # re-read from the restored plateau rule and anneal on the next step
        super()._load_from_state_dict(*args, **kwargs)

    def sample_z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.rand(n, self.hparams.z_dim, generator=generator, device=generator.device if generator else self.device)
        return (z * 2 - 1).to(self.device)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        net = self.generator_ema if (self.generator_ema is not None and self.sample_from_average) else self.generator
        return net(z).clamp(-1.0, 1.0)

    @torch.no_grad()
    def _update_average(self) -> None:
        # decay as a 0-dim tensor: no host-device synchronisation per step
        t = self.ema_updates.to(torch.float64)
        decay = torch.clamp((1.0 + t) / (10.0 + t), max=self.hparams.ema_decay).float()
        average, current = list(self.generator_ema.parameters()), list(self.generator.parameters())
        torch._foreach_mul_(average, decay)
        torch._foreach_add_(average, torch._foreach_mul(current, 1.0 - decay))
        self.ema_updates += 1

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        hp = self.hparams
        betas = (hp.beta1, hp.beta2)
        networks = {"generator": self.generator, "discriminator": self.discriminator}
        return {
            name: torch.optim.Adam(net.parameters(), lr=self._base_lr(name), betas=betas) for name, net in networks.items()
        }

    def _base_lr(self, network: str) -> float:
        hp = self.hparams
        return hp.lr_d if (network == "discriminator" and hp.lr_d > 0) else hp.lr

    def _k(self, like: torch.Tensor) -> torch.Tensor:
        return self.controller.k_t.to(like.dtype)

    def pack_images(self, images: torch.Tensor) -> torch.Tensor:
        """PacGAN packing: N x C x H x W -> N/pack x (pack C) x H x W, images i*pack ... i*pack+pack-1 stacked."""
        m = self.hparams.pack
        if m == 1:
            return images
        n, c, height, width = images.shape
        if n % m:
            raise ValueError(
                f"BEGAN pack={m} groups the batch into packs of {m} images, but the batch has {n}; "
                f"use a batch_size that is a multiple of {m}."
            )
        return images.reshape(n // m, m * c, height, width)

    def losses(self, real: torch.Tensor) -> tuple[LossOutput, LossOutput]:
        b = real.shape[0]
        z = self.sample_z(2 * b)  # [z_D; z_G], drawn independently as in eq. 4
        real = self.pack_images(real)
        p = real.shape[0]  # packs per half (b unless model.pack > 1)
        # L_D must not move G, so G(z_D) needs no graph; D sees [x, G(z_D)] in one call.
        with torch.no_grad():
            fake_d = self.pack_images(self.generator(z[:b]))
        code_d = self.discriminator.encoder(torch.cat([real, fake_d]))
        recon_d = self.discriminator.decoder(code_d)
        # L_G's graph reaches D's parameters; the host back-propagates it into G's only.
        # A separate D call keeps each backward over the rows its loss depends on
        # (one call over [x, G(z_D), G(z_G)] costs 1.5x the FLOPs for the same gradients).
        fake_g = self.pack_images(self.generator(z[b:]))
        code_g = self.discriminator.encoder(fake_g)
        recon_g = self.discriminator.decoder(code_g)
        loss_d, loss_g, logs = self.loss(real, recon_d[:p], fake_d, recon_d[p:], fake_g, recon_g, self._k(real))
        if self.hparams.latent_constraint > 0:  # BEGAN-CS: only D's loss changes; k_t and M_global do not see it
            constraint = (code_d[p:] - z[:b].reshape(p, -1)).abs().mean()
            loss_d = loss_d + self.hparams.latent_constraint * constraint
            logs["latent_constraint"] = constraint.detach()
        if self.hparams.pull_away > 0:  # EBGAN-PT: only G's loss changes; k_t and M_global do not see it
            repel = pulling_away(code_g)
            loss_g = loss_g + self.hparams.pull_away * repel
            logs["pull_away"] = repel.detach()
        logs["k"] = self.controller.k_t.detach().clone()
        return LossOutput(loss_d, logs), LossOutput(loss_g, {})

    def discriminator_loss(self, real: torch.Tensor) -> LossOutput:
        return self.losses(real)[0]

    def generator_loss(self, real: torch.Tensor) -> LossOutput:
        return self.losses(real)[1]

    def on_train_step_end(
        self, logs: Mapping[str, torch.Tensor], optimizers: Mapping[str, torch.optim.Optimizer]
    ) -> None:
        self.controller.step_(logs["loss_real"], logs["loss_fake"])
        if self.generator_ema is not None:
            self._update_average()
        if self._lr_scales is None:  # first step, or after a resume: read the restored state once
            plateau = float(self.lr_rule.scale) if self.lr_rule is not None else 1.0
            anneal = self.lr_anneal.factor(int(self.lr_anneal.step)) if self.lr_anneal is not None else 1.0
            self._lr_scales = [plateau, anneal]
        changed = False
        if self.lr_rule is not None:
            scale = self.lr_rule.observe(logs["M_global"])
            if scale is not None:
                self._lr_scales[0], changed = scale, True
        if self.lr_anneal is not None:
            factor = self.lr_anneal.advance()
            if factor is not None:
                self._lr_scales[1], changed = factor, True
        if changed:
            for name, opt in optimizers.items():
                for group in opt.param_groups:
                    group["lr"] = self._base_lr(name) * self._lr_scales[0] * self._lr_scales[1]

    def progress_keys(self) -> tuple[str, ...]:
        return ("k", "M_global")
