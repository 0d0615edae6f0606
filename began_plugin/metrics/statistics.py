"""Streaming feature statistics: what FID, KID and IS need from a set of images, without holding the set.

FID (Heusel et al. 2017) needs only the mean and covariance of the features, so ``FeatureStatistics``
accumulates them batch by batch in float64 and its memory does not grow with the number of images: it keeps
the count, the running mean and the D x D sum of centred outer products, merged per batch with the pairwise
update of Chan, Golub & LeVeque (1979). That is the same information as (count, sum, sum of outer
products), but it does not lose digits to cancellation when the mean is large next to the spread.

KID (Bińkowski et al. 2018) needs feature *sets*, so the first ``kid_max`` feature vectors are kept (a
bounded store). IS (Salimans et al. 2016) needs every image's class logits, so they are kept when asked
(1008 floats per image for the Inception network: 40 MB for 10k images).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from began_plugin.metrics.errors import MetricsError
from began_plugin.metrics.images import as_uint8_rgb_batch

__all__ = ["FeatureStatistics", "images_to_statistics", "STATISTICS_FORMAT_VERSION"]

STATISTICS_FORMAT_VERSION = 1


class FeatureStatistics:
    """Accumulates feature mean / covariance (float64), plus bounded feature and logit stores for KID / IS.

    ``network`` and ``weights_sha256`` record which feature network produced the features, so statistics
    from different networks are never compared (see :func:`began_plugin.metrics.compute_metrics`).
    """

    def __init__(
        self,
        feature_dim: int,
        *,
        network: str,
        weights_sha256: str,
        kid_max: int = 0,
        keep_logits: bool = False,
    ):
        if feature_dim < 1 or kid_max < 0:
            raise MetricsError(
                f"feature_dim must be >= 1 and kid_max >= 0, got {feature_dim} and {kid_max}; pass valid sizes."
            )
        self.feature_dim = int(feature_dim)
        self.network = network
        self.weights_sha256 = weights_sha256
        self.kid_max = int(kid_max)
        self.keep_logits = bool(keep_logits)
        self.count = 0
        self.mean = torch.zeros(self.feature_dim, dtype=torch.float64)
        self.scatter = torch.zeros(self.feature_dim, self.feature_dim, dtype=torch.float64)
        self._kid_chunks: list = []
        self._kid_count = 0
        self._logit_chunks: list = []

    @classmethod
    def for_network(cls, network, *, kid_max: int = 0, keep_logits: bool | None = None) -> FeatureStatistics:
        return cls(
            network.feature_dim,
            network=network.name,
            weights_sha256=network.weights_sha256,
            kid_max=kid_max,
            keep_logits=network.has_logits if keep_logits is None else keep_logits,
        )

    def update(self, features: torch.Tensor, logits: torch.Tensor | None = None) -> None:
        """Add one batch of features (N x D) and, when logits are kept, its logits (N x K)."""
        if not torch.is_tensor(features) or features.dim() != 2 or features.shape[1] != self.feature_dim:
            raise MetricsError(
                f"expected a feature batch of shape N x {self.feature_dim}, got {tuple(getattr(features, 'shape', ()))}; "
                "use statistics built for the same network as the features."
            )
        x = features.detach().to("cpu", torch.float64)
        if not torch.isfinite(x).all():
            raise MetricsError(
                f"the {self.network} features contain NaN or infinite values; check the input images are uint8 0..255 "
                "and the network weights are the right file."
            )
        n_b = x.shape[0]
        if n_b == 0:
            return
        mean_b = x.mean(dim=0)
        xc = x - mean_b
        scatter_b = xc.T @ xc
        n = self.count + n_b
        delta = mean_b - self.mean
        self.mean += delta * (n_b / n)
        self.scatter += scatter_b + torch.outer(delta, delta) * (self.count * n_b / n)
        self.count = n

        if self._kid_count < self.kid_max:
            take = min(n_b, self.kid_max - self._kid_count)
            self._kid_chunks.append(features[:take].detach().to("cpu", torch.float32).clone())
            self._kid_count += take
        if self.keep_logits:
            if logits is None or logits.dim() != 2 or logits.shape[0] != n_b:
                raise MetricsError(
                    f"these statistics keep logits for IS but the batch of {n_b} features came with "
                    f"{'no' if logits is None else tuple(logits.shape)} logits; build them with keep_logits=False or use a network with logits."
                )
            self._logit_chunks.append(logits.detach().to("cpu", torch.float32).clone())

    def to_mu_sigma(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and unbiased covariance (as ``numpy.cov``, ddof = 1), float64 numpy arrays."""
        if self.count < 2:
            raise MetricsError(
                f"a covariance needs at least 2 samples but the {self.network} statistics hold {self.count}; "
                "compute them from more images."
            )
        return self.mean.numpy().copy(), (self.scatter / (self.count - 1)).numpy()

    @property
    def kid_features(self) -> torch.Tensor | None:
        """The first ``kid_max`` feature vectors (float32), or None when none were kept."""
        if not self._kid_chunks:
            return None
        if len(self._kid_chunks) > 1:
            self._kid_chunks = [torch.cat(self._kid_chunks)]
        return self._kid_chunks[0]

    @property
    def logits(self) -> torch.Tensor | None:
        """All logits (float32, N x K), or None when not kept."""
        if not self._logit_chunks:
            return None
        if len(self._logit_chunks) > 1:
            self._logit_chunks = [torch.cat(self._logit_chunks)]
        return self._logit_chunks[0]

    def state_dict(self) -> dict:
        """Plain tensors, ints and strings only, so it loads with ``torch.load(weights_only=True)``."""
        return {
            "format_version": STATISTICS_FORMAT_VERSION,
            "network": self.network,
            "weights_sha256": self.weights_sha256,
            "feature_dim": self.feature_dim,
            "kid_max": self.kid_max,
            "keep_logits": self.keep_logits,
            "count": self.count,
            "mean": self.mean.clone(),
            "scatter": self.scatter.clone(),
            "kid_features": self.kid_features,
            "logits": self.logits,
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> FeatureStatistics:
        if not isinstance(state, dict) or state.get("format_version") != STATISTICS_FORMAT_VERSION:
            raise MetricsError(
                f"the statistics have format version {state.get('format_version') if isinstance(state, dict) else None!r}, "
                f"not {STATISTICS_FORMAT_VERSION}; delete the cached file so it is recomputed."
            )
        s = cls(
            state["feature_dim"],
            network=state["network"],
            weights_sha256=state["weights_sha256"],
            kid_max=state["kid_max"],
            keep_logits=state["keep_logits"],
        )
        s.count = int(state["count"])
        s.mean = state["mean"].to(torch.float64)
        s.scatter = state["scatter"].to(torch.float64)
        if state["kid_features"] is not None:
            s._kid_chunks = [state["kid_features"]]
            s._kid_count = state["kid_features"].shape[0]
        if state["logits"] is not None:
            s._logit_chunks = [state["logits"]]
        return s

    def __repr__(self) -> str:
        return (
            f"FeatureStatistics(network={self.network!r}, count={self.count}, feature_dim={self.feature_dim}, "
            f"kid_features={self._kid_count}, logits={'kept' if self.keep_logits else 'not kept'})"
        )


def images_to_statistics(
    network,
    batches: Iterable,
    *,
    kid_max: int = 0,
    keep_logits: bool | None = None,
    max_images: int | None = None,
) -> FeatureStatistics:
    """Run ``network`` over image batches and return streaming statistics of its features.

    Each item of ``batches`` is a tensor or an ``(images, labels)`` tuple; floating images are taken to be in
    [-1, 1] (the trainer's range), uint8 images in 0..255; 1-channel images are repeated to RGB.
    ``max_images`` stops after that many images (the last batch is cut).
    """
    stats = FeatureStatistics.for_network(network, kid_max=kid_max, keep_logits=keep_logits)
    for batch in batches:
        images = as_uint8_rgb_batch(batch)
        if max_images is not None:
            images = images[: max_images - stats.count]
        if images.shape[0] == 0:
            break
        features, logits = network.features(images)
        stats.update(features, logits if stats.keep_logits else None)
        if max_images is not None and stats.count >= max_images:
            break
    return stats
