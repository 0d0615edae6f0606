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

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from began_plugin.began.controller import EquilibriumController, PlateauRule
from began_plugin.began.loss import BEGANLoss, convergence_measure
from began_plugin.began.variants import (
    VARIANTS,
    check_pack,
    latent_constraint,
    pack_images,
    pulling_away,
    variant_notes,
)
from began_plugin.interface import CollapseSign, GANModel, LossOutput


def _scales(image_size: int) -> int:
    """Number of resolutions from image_size down to the 8x8 bottleneck."""
    return int(math.log2(image_size)) - 2


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class _ExpELUFunction(torch.autograd.Function):
    """ELU(x) = max(x, exp(min(x, 0)) - 1): exact, since exp(x) - 1 >= x for every x, with equality only at 0.

    Through ``exp`` rather than ``expm1``: in this torch build the CPU ``expm1`` kernel is about 10x slower
    than ``exp`` (benchmarks/performance.py, the ELU row).  The two differ by float rounding only (at most
    one unit in the last place near 0).  The gradient comes from the output: 1 where y > 0, y + 1 = exp(x)
    elsewhere.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = torch.clamp_max(x, 0).exp_().sub_(1)
        torch.maximum(x, y, out=y)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return grad * (torch.clamp_max(y, 0) + 1)


class ExpELU(nn.Module):
    """``nn.ELU()`` (alpha 1) computed through ``exp``; ``model.elu=exp`` selects it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ExpELUFunction.apply(x)


#: model.elu: which ELU implementation the networks use (the same function up to float rounding).
ELUS = {"torch": nn.ELU, "exp": ExpELU}


class Decoder(nn.Module):
    """h -> image: FC to 8x8xn, [conv-ELU, conv-ELU, upsample x2] per scale, conv to channels."""

    def __init__(
        self, image_size: int, channels: int, n: int, h: int, skip: bool = False, elu: type[nn.Module] = nn.ELU
    ) -> None:
        super().__init__()
        self.n, self.skip = n, skip
        self.fc = nn.Linear(h, 8 * 8 * n)
        blocks = []
        for i in range(_scales(image_size)):
            cin = 2 * n if (skip and i > 0) else n
            blocks.append(nn.Sequential(_conv(cin, n), elu(), _conv(n, n), elu()))
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

    def __init__(self, image_size: int, channels: int, n: int, h: int, elu: type[nn.Module] = nn.ELU) -> None:
        super().__init__()
        scales = _scales(image_size)
        layers: list[nn.Module] = [_conv(channels, n), elu()]
        for level in range(1, scales + 1):
            width = n * level
            layers += [_conv(width, width), elu(), _conv(width, width), elu()]
            if level < scales:
                layers += [_conv(width, n * (level + 1), stride=2), elu()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(8 * 8 * n * scales, h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


class AutoencoderDiscriminator(nn.Module):
    """D(v) = decoder(encoder(v)): returns the reconstruction of v."""

    def __init__(
        self, image_size: int, channels: int, n: int, h: int, skip: bool = False, elu: type[nn.Module] = nn.ELU
    ) -> None:
        super().__init__()
        self.encoder = Encoder(image_size, channels, n, h, elu)
        self.decoder = Decoder(image_size, channels, n, h, skip, elu)

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


#: BEGAN on a small dataset: a narrower network that trains in minutes on a CPU, γ=1.0 and a faster
#: controller (with the paper's γ=0.5 k_t stays pinned at 0 there), a small embedding h (the setting that
#: mattered most) and BEGAN-CS.  docs/settings.md holds the measurements behind each choice.
_SMALL = {
    "model.n": 16,
    "model.h": 8,
    "model.z_dim": 8,
    "model.gamma": 1.0,
    "model.lambda_k": 0.01,
    "model.lr": 3e-4,
    "model.latent_constraint": 0.1,
    "lr_anneal": 0.5,
}

#: Per-dataset presets (``dataset_defaults``): ``key=value`` arguments put before the user's.
PRESETS: dict[str, dict[str, Any]] = {
    # The embedded digits: the small BEGAN with λ_k=0.1, PacGAN pairs and samples from the host's average of G.
    "digits": {**_SMALL, "model.lambda_k": 0.1, "model.pack": 2, "ema_decay": 0.999},
    # Real MNIST digits (5,000 of them): the digits preset, until a search on them says otherwise.
    "mnist5k": {**_SMALL, "model.lambda_k": 0.1, "model.pack": 2, "ema_decay": 0.999},
    # The generated shapes: the small BEGAN (it collapses on them with every setting tried; docs/settings.md).
    "shapes": _SMALL,
}

#: BEGAN's signs of collapse (``equilibrium_signs``).  At k_t = 0 the discriminator's loss is L(x) alone and
#: nothing pushes generated images away; 300 steps is 0.3 of a k_t unit at λ_k = 0.001, so a healthy run's
#: k_t leaves 0 long before.  L(G(z)) far below γ·L(x): D reconstructs the fakes much better than real images.
K_PINNED_STEPS = 300
K_ZERO = 1e-6  # k_t is clipped to exactly 0; this only absorbs float dust
IMBALANCE_RATIO = 0.5
IMBALANCE_STEPS = 300


def equilibrium_signs(gamma: float) -> list[CollapseSign]:
    """BEGAN's signs of collapse: k_t pinned at 0, and L(G(z)) far below gamma * L(x) (see the constants above)."""
    return [
        CollapseSign(
            "k_pinned",
            K_PINNED_STEPS,
            lambda row: row["k"] <= K_ZERO,
            lambda row, since: (
                f"BEGAN's k_t has stayed at 0 since step {since}, so the discriminator no longer pushes generated "
                "images away (L_D = L(x)). Try raising model.gamma (e.g. 0.7), lowering model.lr (e.g. 5e-5) or "
                "raising model.lambda_k, and look at the sample grids."
            ),
        ),
        CollapseSign(
            "fake_loss_low",
            IMBALANCE_STEPS,
            lambda row: row["loss_fake"] < IMBALANCE_RATIO * gamma * row["loss_real"],
            lambda row, since: (
                f"L(G(z)) (loss_fake {row['loss_fake']:.4g}) has stayed below {IMBALANCE_RATIO} x gamma x L(x) "
                f"({IMBALANCE_RATIO * gamma * row['loss_real']:.4g}) since step {since}: the discriminator "
                "reconstructs the generated images far better than real ones, as it does when they are few and "
                "simple. Try raising model.gamma, raising model.lambda_k or lowering model.lr, and look at the "
                "sample grids."
            ),
        ),
    ]


class BEGAN(GANModel):
    """Boundary Equilibrium GAN (Berthelot, Schumm, Metz 2017).

    Both players are updated from losses evaluated at the same parameters (the paper's
    simultaneous update, eq. 4): ``losses(real)`` evaluates both before either optimizer
    steps; the host back-propagates ``L_D`` into D and ``L_G`` into G.  The options that are
    not the paper's are named variants (``began_plugin.began.variants``), all off by default.
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
        beta1: float = 0.5  # the paper gives no betas; the authors' public code uses (0.5, 0.999)
        beta2: float = 0.999
        lr_decay: bool = True  # halve lr when M_global stalls (§4.1)
        lr_decay_window: int = 1000  # steps averaged per M_global measurement
        lr_decay_patience: int = 3  # windows without improvement before halving
        init: str = "xavier"  # xavier | kaiming | pytorch (see init_weights_)
        # exp (ExpELU: nn.ELU's function through exp, several times faster on CPUs) | torch (nn.ELU); runs recorded
        # before the key existed used nn.ELU, so its absence reads as torch (interface.py, Hparams)
        elu: str = dataclasses.field(default="exp", metadata={"absent": "torch"})
        # on CPU tensors, the training step runs each network over chunks of this many rows (0: the whole batch);
        # every op of BEGAN's networks is per image, so the losses are the same function (docs/performance.md)
        cpu_micro_batch: int = dataclasses.field(default=32, metadata={"absent": 0})
        # Named variants, not the paper's algorithm (began_plugin.began.variants); the values turn them off.
        latent_constraint: float = 0.0  # BEGAN-CS: alpha (its authors: 0.1); needs h == z_dim
        pack: int = 1  # PacGAN: images per pack (its authors: 2 to 4); h stays the embedding per image
        pull_away: float = 0.0  # EBGAN's pulling-away term on L_G (its authors: 0.1)
        lr_d: float = 0.0  # TTUR: the discriminator's own rate; 0 gives it lr

    supported_image_sizes = (32, 64, 128, 256)
    n_critic = 1
    simultaneous = True
    curves = {"k": "k_t", "M_global": "M_global (convergence measure)"}
    convergence_measure = "M_global"  # §3.4.1, of the process-averaged losses (derived_logs)

    def __init__(self, image_size: int = 64, channels: int = 3, **hparams) -> None:
        super().__init__(image_size, channels, **hparams)
        hp = self.hparams
        for key in ("n", "h", "z_dim", "pack"):
            if getattr(hp, key) < 1:
                raise ValueError(f"BEGAN {key}={getattr(hp, key)} must be a positive integer.")
        if hp.latent_constraint < 0:
            raise ValueError(f"BEGAN latent_constraint={hp.latent_constraint} must be >= 0 (0 turns BEGAN-CS off).")
        if hp.pull_away < 0:
            raise ValueError(
                f"BEGAN pull_away={hp.pull_away} must be >= 0 (0 turns EBGAN's pulling-away term off; its authors use 0.1)."
            )
        if hp.lr <= 0:
            raise ValueError(f"BEGAN lr={hp.lr} must be > 0 (the paper uses 1e-4).")
        if hp.lr_d < 0:
            raise ValueError(
                f"BEGAN lr_d={hp.lr_d} must be >= 0: 0 gives the discriminator lr={hp.lr} as the paper does, "
                f"a positive value is its own rate (e.g. lr_d={2 * hp.lr:g} for a two time-scale update)."
            )
        if hp.latent_constraint > 0 and hp.h != hp.z_dim:
            raise ValueError(
                f"BEGAN-CS (latent_constraint={hp.latent_constraint}) compares the discriminator's embedding with z, "
                f"so h must equal z_dim, got h={hp.h} and z_dim={hp.z_dim}; set model.h={hp.z_dim}."
            )
        if hp.cpu_micro_batch < 0:
            raise ValueError(
                f"BEGAN cpu_micro_batch={hp.cpu_micro_batch} must be >= 0: 0 runs the whole batch at once, "
                f"a positive value the CPU training step in chunks of that many images (the default is 32)."
            )
        if hp.elu not in ELUS:
            raise ValueError(
                f"BEGAN elu={hp.elu!r} is not one of {sorted(ELUS)}; use exp (the default: nn.ELU's function "
                f"through exp, faster on CPUs) or torch (nn.ELU itself)."
            )
        elu = ELUS[hp.elu]
        self.generator = Decoder(image_size, channels, hp.n, hp.z_dim, hp.skip, elu)
        # with packing (model.pack > 1) D auto-encodes pack images at once, through pack * h numbers
        self.discriminator = AutoencoderDiscriminator(
            image_size, channels * hp.pack, hp.n, hp.h * hp.pack, hp.skip, elu
        )
        init_weights_(self.generator, hp.init)
        init_weights_(self.discriminator, hp.init)
        self.loss = BEGANLoss(gamma=hp.gamma, eta=hp.eta)
        self.controller = EquilibriumController(hp.gamma, hp.lambda_k, hp.k_init)
        self.lr_rule = PlateauRule(hp.lr_decay_window, hp.lr_decay_patience) if hp.lr_decay else None

    # -- optional hooks of the contract ------------------------------------------------------
    @classmethod
    def dataset_defaults(cls, dataset: str) -> dict[str, Any]:
        return dict(PRESETS.get(dataset, {}))

    @classmethod
    def option_notes(cls, hparams: Mapping[str, Any]) -> dict[str, str]:
        return variant_notes(
            {f.name: getattr(cls.Hparams, f.name) for f in dataclasses.fields(cls.Hparams)} | dict(hparams)
        )

    @classmethod
    def paper_hparams(cls) -> dict[str, Any]:
        return {v.hparam: v.off for v in VARIANTS}

    @classmethod
    def check_batch_size(cls, hparams: Mapping[str, Any], batch_size: int) -> None:
        check_pack(int(hparams.get("pack", 1)), batch_size)

    def collapse_signs(self) -> list[CollapseSign]:
        return equilibrium_signs(self.hparams.gamma)

    def progress_keys(self) -> tuple[str, ...]:
        return ("k", "M_global")

    def derived_logs(self, logs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """M_global = L(x) + |gamma L(x) - L(G(z_G))| (§3.4.1), of the losses as the host averaged them."""
        return {"M_global": convergence_measure(logs["loss_real"], logs["loss_fake"], self.hparams.gamma)}

    def latent_bounds(self) -> tuple[float, float]:
        """z ~ U[-1, 1]^N_z (``sample_z``)."""
        return (-1.0, 1.0)

    # -- the contract ------------------------------------------------------------------------
    def sample_z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.rand(
            n, self.hparams.z_dim, generator=generator, device=generator.device if generator else self.device
        )
        return (z * 2 - 1).to(self.device)

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        hp = self.hparams
        betas = (hp.beta1, hp.beta2)
        networks = {"generator": self.generator, "discriminator": self.discriminator}
        return {
            name: torch.optim.Adam(net.parameters(), lr=self._base_lr(name), betas=betas)
            for name, net in networks.items()
        }

    def _base_lr(self, network: str) -> float:
        hp = self.hparams
        return hp.lr_d if (network == "discriminator" and hp.lr_d > 0) else hp.lr

    def _k(self, like: torch.Tensor) -> torch.Tensor:
        return self.controller.k_t.to(like.dtype)

    def pack_images(self, images: torch.Tensor) -> torch.Tensor:
        """PacGAN packing with this model's ``pack`` (identity for pack=1)."""
        return pack_images(images, self.hparams.pack)

    def _in_chunks(self, network: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``network(x)``, on the CPU over chunks of ``cpu_micro_batch`` rows: the same function, since no op of
        BEGAN's networks mixes images, and faster there at large batches (smaller activations stay in cache)."""
        size = self.hparams.cpu_micro_batch
        if size == 0 or x.device.type != "cpu" or x.shape[0] <= size:
            return network(x)
        return torch.cat([network(part) for part in x.split(size)])

    def losses(self, real: torch.Tensor) -> tuple[LossOutput, LossOutput]:
        b = real.shape[0]
        z = self.sample_z(2 * b)  # [z_D; z_G], drawn independently as in eq. 4
        real = self.pack_images(real)
        p = real.shape[0]  # packs per half (b unless model.pack > 1)
        # L_D must not move G, so G(z_D) needs no graph; D sees [x, G(z_D)] in one call.
        run = self._in_chunks
        with torch.no_grad():
            fake_d = self.pack_images(run(self.generator, z[:b]))
        code_d = run(self.discriminator.encoder, torch.cat([real, fake_d]))
        recon_d = run(self.discriminator.decoder, code_d)
        # L_G's graph reaches D's parameters; the host back-propagates it into G's only.
        # A separate D call keeps each backward over the rows its loss depends on
        # (one call over [x, G(z_D), G(z_G)] costs 1.5x the FLOPs for the same gradients).
        fake_g = self.pack_images(run(self.generator, z[b:]))
        code_g = run(self.discriminator.encoder, fake_g)
        recon_g = run(self.discriminator.decoder, code_g)
        loss_d, loss_g, logs = self.loss(real, recon_d[:p], fake_d, recon_d[p:], fake_g, recon_g, self._k(real))
        if self.hparams.latent_constraint > 0:  # BEGAN-CS: only D's loss changes
            constraint = latent_constraint(code_d[p:], z[:b])
            loss_d = loss_d + self.hparams.latent_constraint * constraint
            logs["latent_constraint"] = constraint.detach()
        if self.hparams.pull_away > 0:  # EBGAN-PT: only G's loss changes
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
        if self.lr_rule is not None:
            scale = self.lr_rule.observe(logs["M_global"])
            if scale is not None:  # a window ended: the rate is the base rate times the plateau scale
                for name, opt in optimizers.items():
                    for group in opt.param_groups:
                        group["lr"] = self._base_lr(name) * scale
