"""Third-party plugins for the tests: real distributions (a dist-info folder with entry_points.txt) on sys.path."""

import textwrap

TINY_MODEL = """
from dataclasses import dataclass
import torch
from torch import nn
from began_plugin.interface import GANModel, LossOutput

class TinyGAN(GANModel):
    @dataclass
    class Hparams:
        lr: float = 1e-3

    supported_image_sizes = (8,)

    def __init__(self, image_size=8, channels=1, **hp):
        super().__init__(image_size, channels, **hp)
        d = channels * image_size * image_size
        self.generator = nn.Sequential(nn.Linear(4, d), nn.Tanh(), nn.Unflatten(1, (channels, image_size, image_size)))
        self.discriminator = nn.Sequential(nn.Flatten(), nn.Linear(d, 1))

    def sample_z(self, n, generator=None):
        return torch.randn(n, 4, generator=generator)

    def configure_optimizers(self):
        return {"generator": torch.optim.SGD(self.generator.parameters(), lr=self.hparams.lr),
                "discriminator": torch.optim.SGD(self.discriminator.parameters(), lr=self.hparams.lr)}

    def discriminator_loss(self, real):
        fake = self.generator(self.sample_z(real.shape[0])).detach()
        loss = self.discriminator(fake).mean() - self.discriminator(real).mean()
        return LossOutput(loss, {"loss_d": loss.detach()})

    def generator_loss(self, real):
        loss = -self.discriminator(self.generator(self.sample_z(real.shape[0]))).mean()
        return LossOutput(loss, {"loss_g": loss.detach()})

class Incomplete(nn.Module):
    supported_image_sizes = (8,)
"""


def install_plugin(root, dist, version, entries, modules=None):
    """Create a real installed distribution: NAME-VERSION.dist-info with entry_points.txt."""
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entries.items())
    (info / "entry_points.txt").write_text(f"[gan_trainer.models]\n{lines}\n")
    for mod, src in (modules or {}).items():
        (root / f"{mod}.py").write_text(textwrap.dedent(src))
