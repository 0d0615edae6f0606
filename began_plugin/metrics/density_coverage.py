"""Density and coverage of generated images in a feature space, next to improved precision and recall.

Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative Models" (ICML): improved precision
and recall (Kynkäänniemi et al. 2019, :mod:`began_plugin.metrics.precision_recall`) build balls around the
*generated* points too, so one outlier sample inflates recall, and a real outlier inflates precision. Density
and coverage use only the real set's k-NN balls (radius: the distance to the k-th nearest real neighbour,
k = ``PR_K`` = 3):

* ``density`` -- the number of real balls a generated sample lies in, divided by k and averaged over the
  samples: about 1 for samples drawn like the real data, below 1 off the data, above 1 when samples crowd
  into dense real regions. Unbounded above, so it rewards fidelity and is not a fraction.
* ``coverage`` -- the fraction of real points whose ball holds at least one generated sample: the share of
  the data the generator reaches (a collapsed generator covers the few real balls around its mode only).

Both are computed here exactly in float64 on the CPU in row blocks (so 50,000 samples fit in memory), with
the authors' reference package ``prdc`` 0.2 conventions: the k-th neighbour excludes the point itself and a
point *on* a ball's boundary is outside (strict ``<``), unlike precision/recall, whose torch-fidelity code
counts it as inside. ``tests/test_null_generators.py`` checks the values against ``prdc.compute_prdc``.

:func:`feature_space_metrics` gives all four (precision, recall, density, coverage) on the features FID uses
(``FeatureStatistics.kid_features``), for every dataset, labelled or not.
"""

from __future__ import annotations

import torch

from began_plugin.metrics.compute import MetricValue
from began_plugin.metrics.errors import MetricsError
from began_plugin.metrics.precision_recall import KEY_PRECISION, KEY_RECALL, PR_K, precision_recall
from began_plugin.metrics.registry import NEEDS_FEATURES, MetricSpec, register_metric

__all__ = [
    "KEY_COVERAGE",
    "KEY_DENSITY",
    "density_and_coverage",
    "feature_space_metrics",
    "inside_real_balls",
    "knn_radii",
]

KEY_DENSITY = "density"
KEY_COVERAGE = "coverage"

# Like precision/recall: ranked, higher is better, and a tie for the best value bolds no one.
register_metric(MetricSpec(KEY_DENSITY, True, digits=2, tie_bolds_none=True, needs=NEEDS_FEATURES, order=120))
register_metric(MetricSpec(KEY_COVERAGE, True, digits=2, tie_bolds_none=True, needs=NEEDS_FEATURES, order=130))

# Distances per block: 2**23 float64 values (64 MiB) at a time, whatever the set sizes.
_BLOCK_ELEMENTS = 1 << 23


def _rows_per_block(columns: int) -> int:
    return max(1, _BLOCK_ELEMENTS // max(1, columns))


def _as_features(x: torch.Tensor, what: str) -> torch.Tensor:
    if not torch.is_tensor(x) or x.dim() != 2:
        raise MetricsError(
            f"expected {what} features as a tensor N x D, got {tuple(getattr(x, 'shape', ()))}; flatten them to N x D."
        )
    return x.detach().to("cpu", torch.float64)


def knn_radii(features: torch.Tensor, k: int = PR_K) -> torch.Tensor:
    """Each point's distance to its k-th nearest neighbour in the same set (the point itself excluded), float64."""
    x = _as_features(features, "real")
    if x.shape[0] <= k:
        raise MetricsError(
            f"k-NN radii with k={k} need more than {k} points, got {x.shape[0]}; pass more real images or features."
        )
    step = _rows_per_block(x.shape[0])
    # kthvalue(k + 1): the smallest distance is the point to itself (0).
    return torch.cat([torch.cdist(x[i : i + step], x).kthvalue(k + 1, dim=1).values for i in range(0, len(x), step)])


def inside_real_balls(
    real_features: torch.Tensor, fake_features: torch.Tensor, radii: torch.Tensor | None = None, k: int = PR_K
) -> torch.Tensor:
    """Per fake point: inside the k-NN ball of at least one real point (boundary inside, as improved precision)."""
    real, fake = _as_features(real_features, "real"), _as_features(fake_features, "generated")
    if real.shape[1] != fake.shape[1]:
        raise MetricsError(
            f"real features have {real.shape[1]} dimensions but generated ones {fake.shape[1]}; use one network for both."
        )
    r = knn_radii(real, k) if radii is None else radii.to(torch.float64)
    step = _rows_per_block(real.shape[0])
    return torch.cat(
        [(torch.cdist(fake[i : i + step], real) <= r[None, :]).any(dim=1) for i in range(0, len(fake), step)]
    )


def density_and_coverage(
    real_features: torch.Tensor, fake_features: torch.Tensor, k: int = PR_K
) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020) with the real set's k-NN balls (k = 3 by default), exactly."""
    real, fake = _as_features(real_features, "real"), _as_features(fake_features, "generated")
    if real.shape[1] != fake.shape[1]:
        raise MetricsError(
            f"expected two feature sets N x D with the same D, got {tuple(real.shape)} and {tuple(fake.shape)}; "
            "use one network for both."
        )
    if fake.shape[0] == 0:
        raise MetricsError("density/coverage got 0 generated features; pass at least one.")
    radii = knn_radii(real, k)
    hits = torch.zeros(fake.shape[0], dtype=torch.int64)
    covered = 0
    step = _rows_per_block(fake.shape[0])
    for i in range(0, real.shape[0], step):
        d = torch.cdist(real[i : i + step], fake)
        inside = d < radii[i : i + step, None]  # strict, as prdc
        hits += inside.sum(dim=0)
        covered += int(inside.any(dim=1).sum())
    density = int(hits.sum()) / (k * fake.shape[0])
    return density, covered / real.shape[0]


def feature_space_metrics(network, real_stats, fake_stats, k: int = PR_K) -> dict[str, MetricValue]:
    """``precision``, ``recall``, ``density`` and ``coverage`` on the stored features of two FeatureStatistics."""
    if real_stats.kid_features is None or fake_stats.kid_features is None:
        raise MetricsError(
            "precision/recall/density/coverage need stored features; compute the statistics with kid_max > 0."
        )
    real, fake = real_stats.kid_features, fake_stats.kid_features
    precision, recall = precision_recall(real, fake, k)
    density, coverage = density_and_coverage(real, fake, k)
    common = dict(
        network=network.name,
        weights_sha256=network.weights_sha256,
        num_real=int(real.shape[0]),
        num_fake=int(fake.shape[0]),
    )
    return {
        KEY_PRECISION: MetricValue(precision, **common),
        KEY_RECALL: MetricValue(recall, **common),
        KEY_DENSITY: MetricValue(density, **common),
        KEY_COVERAGE: MetricValue(coverage, **common),
    }
