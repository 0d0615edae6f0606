"""Memorisation: how close generated images sit to the training images, against real images the models never saw.

A generator that copies its training set scores a good FID, precision and recall, so those columns cannot tell
learning from copying. Here every generated image's distance to its nearest *training* image is measured in the
feature network's features (the ones FID uses: 2048-d for the Inception networks), and so is every held-out real
image's. The table shows one number:

    memorisation_ratio = median NN distance (generated -> training) / median NN distance (held-out real -> training)

About 1: the samples are as far from the training images as new real images are (no sign of copying); towards 0:
the samples sit on training images. Above 1 is no better: the samples are off the data. The column is therefore
never bolded (``ranked=False``). Where a protocol has no held-out real images that the models did not see (it
scores against the training set itself, as ``mnist5k`` does), the reference is the training images' own
leave-one-out nearest-neighbour distance (each training image to the nearest *other* training image).

Nearest neighbours are searched in float64 in row blocks (so 50,000 x 50,000 fits in memory), and each chosen
neighbour's distance is recomputed directly as ``||a - b||`` in float64, so a copy of a training image is at
distance 0 exactly, not at the rounding error of ``cdist``'s matrix-product form. Medians are numpy's (the mean of
the two middle values for an even count).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from began_plugin.metrics.compute import MetricValue
from began_plugin.metrics.errors import MetricsError
from began_plugin.metrics.registry import NEEDS_FEATURES, MetricSpec, register_metric

__all__ = [
    "KEY_MEMORISATION_RATIO",
    "REFERENCE_HELD_OUT",
    "REFERENCE_LEAVE_ONE_OUT",
    "Memorisation",
    "memorisation",
    "memorisation_metrics",
    "nearest_neighbours",
]

KEY_MEMORISATION_RATIO = "memorisation_ratio"
#: The reference distances are the held-out real images' to the training images.
REFERENCE_HELD_OUT = "held-out"
#: The reference distances are the training images' to their nearest other training image.
REFERENCE_LEAVE_ONE_OUT = "leave-one-out"

# Neither end is best (near 0 is copying, far above 1 is off the data): shown, never bolded.
register_metric(MetricSpec(KEY_MEMORISATION_RATIO, True, digits=2, ranked=False, needs=NEEDS_FEATURES, order=140))

# Distances per block: 2**23 float64 values (64 MiB) at a time, whatever the set sizes.
_BLOCK_ELEMENTS = 1 << 23


def _as_features(x, what: str) -> torch.Tensor:
    if not torch.is_tensor(x) or x.dim() != 2 or x.shape[0] == 0:
        raise MetricsError(
            f"expected {what} features as a non-empty tensor N x D, got {tuple(getattr(x, 'shape', ()))}; "
            "flatten them to N x D."
        )
    return x.detach().to("cpu", torch.float64)


def nearest_neighbours(
    queries: torch.Tensor, reference: torch.Tensor, *, leave_one_out: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """(distance, index) of each query's nearest reference point, float64 and int64.

    ``leave_one_out``: the queries *are* the reference set, and each point's own index is excluded (a duplicate
    elsewhere in the set still counts, at distance 0).
    """
    q, r = _as_features(queries, "query"), _as_features(reference, "reference")
    if q.shape[1] != r.shape[1]:
        raise MetricsError(
            f"query features have {q.shape[1]} dimensions but reference ones {r.shape[1]}; use one network for both."
        )
    if leave_one_out and (q.shape[0] != r.shape[0] or r.shape[0] < 2):
        raise MetricsError(
            f"leave-one-out neighbours need one set of at least 2 points as both queries and reference, got "
            f"{q.shape[0]} and {r.shape[0]}; pass the same features twice."
        )
    step = max(1, _BLOCK_ELEMENTS // r.shape[0])
    index = torch.empty(q.shape[0], dtype=torch.int64)
    distance = torch.empty(q.shape[0], dtype=torch.float64)
    for i in range(0, q.shape[0], step):
        block = q[i : i + step]
        d = torch.cdist(block, r)
        if leave_one_out:
            rows = torch.arange(d.shape[0])
            d[rows, rows + i] = float("inf")
        index[i : i + step] = d.argmin(dim=1)
        # exact: a copy is at 0, not at the rounding error of cdist's matrix-product form
        distance[i : i + step] = (block - r[index[i : i + step]]).norm(dim=1)
    return distance, index


@dataclasses.dataclass(frozen=True)
class Memorisation:
    """The ratio, its two medians, what the reference was, and each generated image's nearest training image."""

    ratio: float | None  # None where the reference median is 0 (the reference images are training images)
    generated_median: float
    reference_median: float
    reference: str  # REFERENCE_HELD_OUT or REFERENCE_LEAVE_ONE_OUT
    num_training: int
    num_reference: int
    distances: torch.Tensor  # per generated image, to its nearest training image (float64)
    nearest: torch.Tensor  # per generated image, the index of that training image

    def summary(self) -> dict:
        """The JSON-able part (everything but the per-image tensors)."""
        return {
            "ratio": self.ratio,
            "generated_median": self.generated_median,
            "reference_median": self.reference_median,
            "reference": self.reference,
            "num_training": self.num_training,
            "num_reference": self.num_reference,
        }


def memorisation(generated: torch.Tensor, training: torch.Tensor, held_out: torch.Tensor | None = None) -> Memorisation:
    """The memorisation ratio of ``generated`` features against ``training`` ones (module docstring).

    ``held_out``: features of real images the models did not train on; None uses the training images'
    leave-one-out nearest-neighbour distances as the reference.
    """
    distances, nearest = nearest_neighbours(generated, training)
    if held_out is None:
        reference, _ = nearest_neighbours(training, training, leave_one_out=True)
        kind = REFERENCE_LEAVE_ONE_OUT
    else:
        reference, _ = nearest_neighbours(held_out, training)
        kind = REFERENCE_HELD_OUT
    generated_median = float(np.median(distances.numpy()))
    reference_median = float(np.median(reference.numpy()))
    return Memorisation(
        ratio=generated_median / reference_median if reference_median > 0 else None,
        generated_median=generated_median,
        reference_median=reference_median,
        reference=kind,
        num_training=int(training.shape[0]),
        num_reference=int(reference.shape[0]),
        distances=distances,
        nearest=nearest,
    )


def memorisation_metrics(
    network, generated: torch.Tensor, training: torch.Tensor, held_out: torch.Tensor | None = None
) -> tuple[dict[str, MetricValue], Memorisation]:
    """``{memorisation_ratio: MetricValue}`` and the full :class:`Memorisation` behind it."""
    result = memorisation(generated, training, held_out)
    common = dict(
        network=network.name,
        weights_sha256=network.weights_sha256,
        num_real=result.num_training,
        num_fake=int(generated.shape[0]),
    )
    if result.ratio is None:
        reason = (
            f"the {result.reference} reference images' median distance to the nearest training image is 0 (most of "
            "them are training images), so no ratio is defined"
        )
        return {KEY_MEMORISATION_RATIO: MetricValue(None, available=False, reason=reason, **common)}, result
    return {KEY_MEMORISATION_RATIO: MetricValue(result.ratio, **common)}, result
