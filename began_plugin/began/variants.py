"""BEGAN's named options that are not the paper's algorithm, each in one place.

Every option is off by default (plain BEGAN, arXiv 1703.10717) and named in a run's ``config.json`` when on
(``BEGAN.option_notes``).  Each changes one thing, so they compose and can be tested alone:

* ``began-cs`` (``latent_constraint``): BEGAN-CS (Chang, Chen, Hsu, ECCV 2018, arXiv 1808.07258) adds
  alpha * mean|Enc(G(z_D)) - z_D| to L_D, so D's embedding of a fake must recover its z (needs h == z_dim).
* ``pacgan`` (``pack``): PacGAN packing (Lin, Khetan, Fanti, Oh, NeurIPS 2018, arXiv 1712.04086): D
  auto-encodes packs of ``pack`` images of one kind stacked along the channels; L(v) is measured on packs.
* ``pulling-away`` (``pull_away``): EBGAN's pulling-away term (Zhao, Mathieu, LeCun, ICLR 2017, arXiv
  1609.03126, eq. 7) adds beta * f_PT(Enc(G(z_G))) to L_G.
* ``ttur`` (``lr_d``): the two time-scale update rule (Heusel et al., NeurIPS 2017, arXiv 1706.08500): D has
  its own learning rate.

k_t and M_global see none of the added terms: they are the paper's, from L(x) and L(G(z)).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Variant:
    """A named option: the hyper-parameter that turns it on, its off value and its one-line note."""

    name: str
    hparam: str
    off: Any
    note: str  # formatted with the hyper-parameters

    def enabled(self, hparams: Mapping[str, Any]) -> bool:
        return hparams.get(self.hparam, self.off) != self.off


VARIANTS: tuple[Variant, ...] = (
    Variant(
        "began-cs",
        "latent_constraint",
        0.0,
        "L_D adds {latent_constraint} x BEGAN-CS's latent constraint (Chang et al. 2018), not the paper's BEGAN: "
        "model.latent_constraint=0 gives the paper's algorithm",
    ),
    Variant(
        "pacgan",
        "pack",
        1,
        "the discriminator sees packs of {pack} images (PacGAN, Lin et al. 2018; not in the paper; "
        "model.pack=1 turns it off)",
    ),
    Variant(
        "pulling-away",
        "pull_away",
        0.0,
        "L_G adds {pull_away} x EBGAN's pulling-away term (Zhao et al. 2017; not in the paper; "
        "model.pull_away=0 turns it off)",
    ),
    Variant(
        "ttur",
        "lr_d",
        0.0,
        "the discriminator's learning rate is {lr_d} (two time-scale update, Heusel et al. 2017; "
        "not in the paper; model.lr_d=0 gives D the generator's rate)",
    ),
)


def variant_notes(hparams: Mapping[str, Any]) -> dict[str, str]:
    """Name -> note for each variant that ``hparams`` turn on."""
    return {v.name: v.note.format(**hparams) for v in VARIANTS if v.enabled(hparams)}


def latent_constraint(codes: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BEGAN-CS: mean |Enc(G(z)) - z| over the batch, codes and z of shape N x N_z (packs: z concatenated)."""
    return (codes - z.reshape(codes.shape)).abs().mean()


def pulling_away(codes: torch.Tensor) -> torch.Tensor:
    """EBGAN's repelling regulariser (Zhao, Mathieu, LeCun, ICLR 2017, arXiv 1609.03126, eq. 7).

    f_PT(S) = 1 / (N (N - 1)) * sum_{i != j} (S_i . S_j / (|S_i| |S_j|))^2 over the N rows of ``codes``
    (the auto-encoder's embeddings of a batch of generated images): the mean squared cosine similarity
    of every pair of distinct rows.  0 when the rows are pairwise orthogonal, 1 when they are parallel.
    """
    n = codes.shape[0]
    if n < 2:
        raise ValueError(
            f"the pulling-away term compares pairs of samples, so it needs a batch of at least 2, got {n}."
        )
    unit = codes / codes.norm(dim=1, keepdim=True).clamp_min(1e-12)
    cosine = unit @ unit.t()
    return (cosine.square().sum() - cosine.diagonal().square().sum()) / (n * (n - 1))


def check_pack(pack: int, batch_size: int) -> None:
    """Refuse a batch that does not split into packs of ``pack`` images."""
    if batch_size % pack:
        raise ValueError(
            f"model.pack={pack} groups each batch into packs of {pack} images, but batch_size={batch_size} "
            f"is not a multiple of it; pass e.g. batch_size={batch_size - batch_size % pack or pack}."
        )


def pack_images(images: torch.Tensor, pack: int) -> torch.Tensor:
    """PacGAN packing: N x C x H x W -> N/pack x (pack C) x H x W, images i*pack ... i*pack+pack-1 stacked."""
    if pack == 1:
        return images
    n, c, height, width = images.shape
    check_pack(pack, n)
    return images.reshape(n // pack, pack * c, height, width)
