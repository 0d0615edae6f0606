"""Improved precision and recall of generated images in a feature space, for data without class labels.

Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for Assessing Generative Models": each
feature set is approximated by the union of balls around its points, each ball reaching the point's k-th
nearest neighbour in the same set (k = ``PR_K`` = 3, the paper's choice). Precision is the fraction of
generated features inside the real set's balls (sample quality); recall is the fraction of real features
inside the generated set's balls (how much of the data the generator covers). The features are the ones
FID uses (``FeatureStatistics.kid_features``), so both numbers come from the same network as FID.

The computation is torch-fidelity's (``metric_prc``, the same definition: k-th neighbour excluding the
point itself, a point on a ball's boundary counts as inside), exact and in float64 on the CPU.
"""

from __future__ import annotations

import torch
from torch_fidelity.metric_prc import KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric

from began_plugin.metrics.compute import MetricValue
from began_plugin.metrics.errors import MetricsError
from began_plugin.metrics.registry import NEEDS_FEATURES, MetricSpec, register_metric

__all__ = ["KEY_PRECISION", "KEY_RECALL", "PR_K", "precision_recall", "precision_recall_metrics"]

PR_K = 3

KEY_PRECISION = "precision"
KEY_RECALL = "recall"

# Coverage-style fractions, like the class counts: a tie for the best value bolds no one.
register_metric(MetricSpec(KEY_PRECISION, True, digits=2, tie_bolds_none=True, needs=NEEDS_FEATURES, order=100))
register_metric(MetricSpec(KEY_RECALL, True, digits=2, tie_bolds_none=True, needs=NEEDS_FEATURES, order=110))

# Rows per distance block: 1000 x N float64 distances at a time, not torch-fidelity's default 10000 x N.
_BATCH = 1000
# Below 2**22 points a float32 mean of 0/1 hits is within 0.5 / N of the exact fraction, so the count is recoverable.
_MAX_POINTS = 1 << 22


def _exact_fraction(float32_mean: float, n: int) -> float:
    # torch-fidelity averages the hits in float32; rounding back to a count gives the float64 count / n.
    return round(float32_mean * n) / n


def precision_recall(real_features: torch.Tensor, fake_features: torch.Tensor, k: int = PR_K) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN balls (k = 3 by default).

    precision: the fraction of fake features inside the k-NN ball of some real feature (quality);
    recall: the fraction of real features inside the k-NN ball of some fake feature (coverage).
    Computed in float64, exactly (no approximate neighbours).
    """
    real = real_features.detach().to("cpu", torch.float64)
    fake = fake_features.detach().to("cpu", torch.float64)
    if real.dim() != 2 or fake.dim() != 2 or real.shape[1] != fake.shape[1]:
        raise MetricsError(
            f"expected two feature sets N x D with the same D, got {tuple(real.shape)} and {tuple(fake.shape)}."
        )
    if min(real.shape[0], fake.shape[0]) <= k:
        raise MetricsError(
            f"precision/recall with k={k} needs more than {k} real and fake features, got "
            f"{real.shape[0]} and {fake.shape[0]}; keep more features (kid_max)."
        )
    if max(real.shape[0], fake.shape[0]) >= _MAX_POINTS:
        raise MetricsError(
            f"precision/recall takes fewer than {_MAX_POINTS} features per set, got {real.shape[0]} real and "
            f"{fake.shape[0]} fake; keep fewer features (kid_max)."
        )
    # torch-fidelity's convention: the first set is the generated one, the second the real one.
    out = prc_features_to_metric(
        fake, real, prc_neighborhood=k, prc_batch_size=_BATCH, save_cpu_ram=True, verbose=False
    )
    return _exact_fraction(out[KEY_METRIC_PRECISION], fake.shape[0]), _exact_fraction(
        out[KEY_METRIC_RECALL], real.shape[0]
    )


def precision_recall_metrics(network, real_stats, fake_stats, k: int = PR_K) -> dict[str, MetricValue]:
    """``precision`` / ``recall`` on the stored feature sets of two :class:`FeatureStatistics`."""
    if real_stats.kid_features is None or fake_stats.kid_features is None:
        raise MetricsError("precision/recall needs stored features; compute the statistics with kid_max > 0.")
    precision, recall = precision_recall(real_stats.kid_features, fake_stats.kid_features, k)
    common = dict(
        network=network.name,
        weights_sha256=network.weights_sha256,
        num_real=int(real_stats.kid_features.shape[0]),
        num_fake=int(fake_stats.kid_features.shape[0]),
    )
    return {KEY_PRECISION: MetricValue(precision, **common), KEY_RECALL: MetricValue(recall, **common)}
