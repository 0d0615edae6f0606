"""Kernel distance between feature sets: KID (Bińkowski et al. 2018, "Demystifying MMD GANs", arXiv 1801.01401).

KID is the unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random
subsets of fixed size; the computation is torch-fidelity's ``kid_features_to_metric``.
"""

from __future__ import annotations

import torch
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

from began_plugin.metrics.errors import MetricsError

__all__ = ["kernel_distance", "DEFAULT_KID_SUBSET_SIZE", "DEFAULT_KID_SUBSETS"]

# torch-fidelity's defaults (torch_fidelity.defaults), so numbers are comparable with its CLI.
DEFAULT_KID_SUBSET_SIZE = 1000
DEFAULT_KID_SUBSETS = 100


def kernel_distance(
    features_real: torch.Tensor,
    features_fake: torch.Tensor,
    *,
    subset_size: int = DEFAULT_KID_SUBSET_SIZE,
    subsets: int = DEFAULT_KID_SUBSETS,
    seed: int = 2020,
) -> tuple[float, float]:
    """Return (mean, std) of the polynomial-kernel MMD^2 over ``subsets`` random subsets of ``subset_size``."""
    for what, f in (("real", features_real), ("fake", features_fake)):
        if not torch.is_tensor(f) or f.dim() != 2:
            raise MetricsError(
                f"KID needs the {what} features as an N x D tensor, got {type(f).__name__}; keep features with kid_max > 0."
            )
    n_r, n_f = features_real.shape[0], features_fake.shape[0]
    if subset_size < 2:
        raise MetricsError(
            f"the KID subset size must be at least 2 (the unbiased MMD divides by m - 1), got {subset_size}; pass a larger kid_subset_size."
        )
    if n_r < subset_size or n_f < subset_size:
        raise MetricsError(
            f"KID needs at least kid_subset_size={subset_size} features per side but got {n_r} real and {n_f} fake; "
            f"use more images (and kid_max >= {subset_size}) or pass a smaller kid_subset_size."
        )
    if features_real.shape[1] != features_fake.shape[1]:
        raise MetricsError(
            f"the real and fake features have different sizes ({features_real.shape[1]} and {features_fake.shape[1]}); compute both with the same network."
        )
    out = kid_features_to_metric(
        features_real.cpu(),
        features_fake.cpu(),
        kid_subset_size=subset_size,
        kid_subsets=subsets,
        rng_seed=seed,
        verbose=False,
    )
    return float(out[KEY_METRIC_KID_MEAN]), float(out[KEY_METRIC_KID_STD])
