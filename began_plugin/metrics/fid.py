"""Fréchet distance between feature Gaussians: FID (Heusel et al. 2017, arXiv 1706.08500).

FID = |mu_r - mu_f|^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2)). The number itself comes from torch-fidelity's
``fid_statistics_to_metric`` (eigenvalues of S_r S_f); pytorch-fid's ``calculate_frechet_distance``
(``scipy.linalg.sqrtm``) is a second, independent implementation used as a cross-check.
"""

from __future__ import annotations

import warnings

import numpy as np
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

from began_plugin.metrics.errors import MetricsError, MetricsWarning

__all__ = ["frechet_distance", "frechet_distance_pytorch_fid", "check_covariance_sample_count"]


def check_covariance_sample_count(count: int, feature_dim: int, what: str) -> None:
    """Refuse fewer than 2 samples; warn when the covariance is rank-deficient (count <= feature_dim)."""
    if count < 2:
        raise MetricsError(
            f"the Fréchet distance needs at least 2 {what} samples to estimate a covariance but got {count}; "
            "compute the statistics from more images."
        )
    if count <= feature_dim:
        # Such an estimate is biased upwards and noisy, but still well defined; small runs (smoke tests,
        # CPU-only checks) need it, so warn instead of refusing.
        warnings.warn(
            f"only {count} {what} samples for {feature_dim}-d features: the covariance is rank-deficient and the "
            f"Fréchet distance is strongly biased; use more than {feature_dim} samples for comparable numbers.",
            MetricsWarning,
            stacklevel=3,
        )


def _as_stats(mu, sigma, what: str):
    mu = np.asarray(mu, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise MetricsError(
            f"{what} statistics must be a mean of shape (D,) and a covariance of shape (D, D), got {mu.shape} and "
            f"{sigma.shape}; pass FeatureStatistics.to_mu_sigma() output."
        )
    return mu, sigma


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance of two Gaussians through torch-fidelity's ``fid_statistics_to_metric``."""
    mu1, sigma1 = _as_stats(mu1, sigma1, "first")
    mu2, sigma2 = _as_stats(mu2, sigma2, "second")
    if mu1.shape != mu2.shape:
        raise MetricsError(
            f"the two statistics have different feature sizes ({mu1.shape[0]} and {mu2.shape[0]}); compute both with the same network."
        )
    return float(
        fid_statistics_to_metric({"mu": mu1, "sigma": sigma1}, {"mu": mu2, "sigma": sigma2}, verbose=False)[
            KEY_METRIC_FID
        ]
    )


def frechet_distance_pytorch_fid(mu1, sigma1, mu2, sigma2) -> float:
    """The same distance through pytorch-fid's ``calculate_frechet_distance`` (scipy ``sqrtm``)."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    mu1, sigma1 = _as_stats(mu1, sigma1, "first")
    mu2, sigma2 = _as_stats(mu2, sigma2, "second")
    with warnings.catch_warnings():
        # pytorch-fid 0.3.0 passes sqrtm(disp=False), which SciPy 1.17 deprecates; only that warning is hidden.
        warnings.filterwarnings("ignore", message=r"The `disp` argument is deprecated", category=DeprecationWarning)
        return float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2))
