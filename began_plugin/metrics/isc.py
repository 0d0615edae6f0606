"""Inception Score (Salimans et al. 2016, "Improved Techniques for Training GANs", arXiv 1606.03498).

IS = exp(E_x KL(p(y|x) || p(y))), averaged over splits; the computation is torch-fidelity's
``isc_features_to_metric`` on the classifier logits. It needs a network with logits: ``inception`` has
them, ``inception-offline`` does not (IS is then reported as not available, never estimated from other weights).
"""

from __future__ import annotations

import torch
from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

from began_plugin.metrics.errors import MetricsError

__all__ = ["logits_score", "DEFAULT_ISC_SPLITS"]

DEFAULT_ISC_SPLITS = 10


def logits_score(logits: torch.Tensor, *, splits: int = DEFAULT_ISC_SPLITS, seed: int = 2020) -> tuple[float, float]:
    """Return (mean, std) over ``splits`` of exp(mean KL(p(y|x) || p(y))) computed from ``logits`` (N x K)."""
    if not torch.is_tensor(logits) or logits.dim() != 2:
        raise MetricsError(
            f"the Inception Score needs logits as an N x K tensor, got {type(logits).__name__}; keep logits when computing the statistics."
        )
    if splits < 1 or logits.shape[0] < splits:
        raise MetricsError(
            f"the Inception Score with {splits} splits needs at least {splits} samples but got {logits.shape[0]}; "
            "use more images or pass fewer isc_splits."
        )
    out = isc_features_to_metric(logits.cpu(), splits=splits, shuffle=True, rng_seed=seed)
    return float(out[KEY_METRIC_ISC_MEAN]), float(out[KEY_METRIC_ISC_STD])
