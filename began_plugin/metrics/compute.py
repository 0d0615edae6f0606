"""FID / KID / IS from two sets of streaming statistics, every number labelled with the network behind it.

FID: Heusel et al. 2017; KID: Bińkowski et al. 2018; IS: Salimans et al. 2016 (see the ``fid``, ``kid`` and
``isc`` modules). The math is torch-fidelity's. A number is only called FID / KID / IS when it comes from an
Inception network whose weights file has the standard file's published SHA-256
(:func:`~began_plugin.metrics.feature_networks.is_standard_weights`): any tensor set of the right shapes loads, and
a table cites such a number as the FID of the literature. Other weights' numbers get the keys ``fd_unverified``,
``fd_unverified_pytorch_fid``, ``kd_unverified`` and ``logit_score_unverified``; the ``standin`` network's get
``standin_fd``, ``standin_kd``, ``standin_logit_score``, so a test-only figure can never be read as a FID either.

Each key is declared once below with :func:`~began_plugin.metrics.registry.register_metric`; :func:`metric_keys`
reads from the registry which key a network's numbers get (from its name and weights hash), and a key that needs
logits is reported unavailable on a network without them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from began_plugin.metrics.errors import MetricsError
from began_plugin.metrics.feature_networks import NETWORK_STANDIN, is_standard_weights
from began_plugin.metrics.fid import check_covariance_sample_count, frechet_distance, frechet_distance_pytorch_fid
from began_plugin.metrics.isc import DEFAULT_ISC_SPLITS, logits_score
from began_plugin.metrics.kid import DEFAULT_KID_SUBSET_SIZE, DEFAULT_KID_SUBSETS, kernel_distance
from began_plugin.metrics.registry import (
    NEEDS_FEATURES,
    NEEDS_LOGITS,
    MetricSpec,
    metric_spec,
    register_metric,
    registered_metrics,
)
from began_plugin.metrics.statistics import FeatureStatistics

__all__ = [
    "KEY_FID",
    "KEY_FID_PYTORCH_FID",
    "KEY_KID",
    "KEY_IS",
    "KEY_STANDIN_FD",
    "KEY_STANDIN_FD_PYTORCH_FID",
    "KEY_STANDIN_KD",
    "KEY_STANDIN_LOGIT_SCORE",
    "KEY_FD_UNVERIFIED",
    "KEY_FD_UNVERIFIED_PYTORCH_FID",
    "KEY_KD_UNVERIFIED",
    "KEY_LOGIT_SCORE_UNVERIFIED",
    "NETWORK_UNVERIFIED",
    "MetricValue",
    "metric_keys",
    "compute_metrics",
]

KEY_FID = "fid"
KEY_FID_PYTORCH_FID = "fid_pytorch_fid"
KEY_KID = "kid"
KEY_IS = "is"
KEY_STANDIN_FD = "standin_fd"
KEY_STANDIN_FD_PYTORCH_FID = "standin_fd_pytorch_fid"
KEY_STANDIN_KD = "standin_kd"
KEY_STANDIN_LOGIT_SCORE = "standin_logit_score"
KEY_FD_UNVERIFIED = "fd_unverified"
KEY_FD_UNVERIFIED_PYTORCH_FID = "fd_unverified_pytorch_fid"
KEY_KD_UNVERIFIED = "kd_unverified"
KEY_LOGIT_SCORE_UNVERIFIED = "logit_score_unverified"
#: The registry's ``network`` for the keys of any network whose weights are not its standard file (by SHA-256).
NETWORK_UNVERIFIED = "unverified-weights"

# The pytorch-fid cross-checks have no column (no order): they only confirm torch-fidelity's value.
register_metric(MetricSpec(KEY_FID, False, digits=2, needs=NEEDS_FEATURES, title="FID", order=10, family="fid"))
register_metric(MetricSpec(KEY_FID_PYTORCH_FID, False, digits=2, needs=NEEDS_FEATURES, family="fid_pytorch_fid"))
register_metric(MetricSpec(KEY_KID, False, digits=4, needs=NEEDS_FEATURES, title="KID", order=20, family="kid"))
register_metric(MetricSpec(KEY_IS, True, digits=2, needs=NEEDS_LOGITS, title="IS", order=30, family="is"))
register_metric(
    MetricSpec(KEY_STANDIN_FD, False, digits=2, needs=NEEDS_FEATURES, order=40, family="fid", network=NETWORK_STANDIN)
)
register_metric(
    MetricSpec(
        KEY_STANDIN_FD_PYTORCH_FID,
        False,
        digits=2,
        needs=NEEDS_FEATURES,
        family="fid_pytorch_fid",
        network=NETWORK_STANDIN,
    )
)
register_metric(
    MetricSpec(KEY_STANDIN_KD, False, digits=4, needs=NEEDS_FEATURES, order=50, family="kid", network=NETWORK_STANDIN)
)
register_metric(
    MetricSpec(
        KEY_STANDIN_LOGIT_SCORE, True, digits=2, needs=NEEDS_LOGITS, order=60, family="is", network=NETWORK_STANDIN
    )
)
# Columns of their own, like the stand-in's: one run uses one network, so they never share a table with FID.
register_metric(
    MetricSpec(
        KEY_FD_UNVERIFIED, False, digits=2, needs=NEEDS_FEATURES, order=62, family="fid", network=NETWORK_UNVERIFIED
    )
)
register_metric(
    MetricSpec(
        KEY_FD_UNVERIFIED_PYTORCH_FID,
        False,
        digits=2,
        needs=NEEDS_FEATURES,
        family="fid_pytorch_fid",
        network=NETWORK_UNVERIFIED,
    )
)
register_metric(
    MetricSpec(
        KEY_KD_UNVERIFIED, False, digits=4, needs=NEEDS_FEATURES, order=64, family="kid", network=NETWORK_UNVERIFIED
    )
)
register_metric(
    MetricSpec(
        KEY_LOGIT_SCORE_UNVERIFIED,
        True,
        digits=2,
        needs=NEEDS_LOGITS,
        order=66,
        family="is",
        network=NETWORK_UNVERIFIED,
    )
)


def _network_identity(network, weights_sha256: str | None) -> tuple[str, str | None]:
    """(name, weights SHA-256 or None) of a network object, its ``describe()`` dict, or a bare name."""
    if isinstance(network, str):
        return network, weights_sha256
    if isinstance(network, Mapping):
        name, sha = network.get("network", network.get("name")), network.get("weights_sha256")
    else:
        name, sha = getattr(network, "name", None), getattr(network, "weights_sha256", None)
    if not isinstance(name, str):
        raise MetricsError(
            f"metric_keys takes a feature network, its describe() dict or a network name, got {type(network).__name__} "
            "without a network name; pass the network object from load_feature_network."
        )
    return name, weights_sha256 if weights_sha256 is not None else sha


def metric_keys(network, *, weights_sha256: str | None = None) -> dict[str, str]:
    """Result keys for a network: ``{"fid", "fid_pytorch_fid", "kid", "is"}`` -> the key used in the results.

    ``network`` is a feature network, its ``describe()`` dict (as stored in results) or a name. The keys reserved
    for the network's name in the registry come first (the stand-in's); otherwise weights that hash to the
    standard file's SHA-256 get the general keys (``fid``, ...) and any other weights the ``NETWORK_UNVERIFIED``
    keys (``fd_unverified``, ...). A bare name with no ``weights_sha256`` says nothing about the weights and gets
    the keys of that network's standard weights, as before the hash decided.
    """
    name, sha = _network_identity(network, weights_sha256)
    general: dict[str, str] = {}
    own: dict[str, str] = {}
    unverified: dict[str, str] = {}
    for spec in registered_metrics():
        if spec.family is None:
            continue
        if spec.network is None:
            general[spec.family] = spec.key
        elif spec.network == name:
            own[spec.family] = spec.key
        elif spec.network == NETWORK_UNVERIFIED:
            unverified[spec.family] = spec.key
    fallback = general if sha is None or is_standard_weights(name, sha) else unverified
    families = {**general, **own}
    missing = sorted(f for f in families if f not in own and f not in fallback)
    if missing:
        raise MetricsError(
            f"the metric families {missing} have no key for network {name!r} with non-standard weights "
            f"(SHA-256 {str(sha)[:12]}...); register a MetricSpec with that family and network=NETWORK_UNVERIFIED."
        )
    return {family: own.get(family, fallback.get(family)) for family in families}


@dataclasses.dataclass(frozen=True)
class MetricValue:
    """One metric: its value (and spread over subsets/splits where it has one) and where it came from."""

    value: float | None
    network: str
    weights_sha256: str
    num_real: int
    num_fake: int
    std: float | None = None
    available: bool = True
    #: Why the metric is not available (None when it is).
    reason: str | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _check_stats_match(network, stats: FeatureStatistics, what: str) -> None:
    if stats.network != network.name or stats.weights_sha256 != network.weights_sha256:
        raise MetricsError(
            f"the {what} statistics were computed with network {stats.network!r} (weights {stats.weights_sha256[:12]}...) "
            f"but the metrics are asked for {network.name!r} (weights {network.weights_sha256[:12]}...); recompute them with the same network."
        )


def compute_metrics(
    network,
    real_stats: FeatureStatistics,
    fake_stats: FeatureStatistics,
    *,
    fid: bool = True,
    kid: bool = True,
    isc: bool = True,
    crosscheck: bool = False,
    kid_subset_size: int = DEFAULT_KID_SUBSET_SIZE,
    kid_subsets: int = DEFAULT_KID_SUBSETS,
    isc_splits: int = DEFAULT_ISC_SPLITS,
    seed: int = 2020,
) -> dict[str, MetricValue]:
    """FID (and its pytorch-fid cross-check), KID and IS of ``fake_stats`` against ``real_stats``.

    Keys are from :func:`metric_keys` (``KEY_FID``, ... for the standard weights, ``KEY_FD_UNVERIFIED``, ... for
    other weights, ``KEY_STANDIN_FD``, ... for the stand-in network).
    IS uses the fake images only; when ``network`` has no logits it is returned with ``available=False`` and
    the reason. Too few samples raise :class:`MetricsError`.

    ``crosscheck`` adds pytorch-fid's value under ``KEY_FID_PYTORCH_FID``. It is off by default because
    ``scipy.linalg.sqrtm`` on 2048 x 2048 matrices is several times slower on a CPU than torch-fidelity's
    computation, and far slower with rank-deficient covariances.
    """
    _check_stats_match(network, real_stats, "real")
    _check_stats_match(network, fake_stats, "fake")
    keys = metric_keys(network)
    common = dict(
        network=network.name,
        weights_sha256=network.weights_sha256,
        num_real=real_stats.count,
        num_fake=fake_stats.count,
    )
    out: dict[str, MetricValue] = {}

    if fid:
        check_covariance_sample_count(real_stats.count, real_stats.feature_dim, "real")
        check_covariance_sample_count(fake_stats.count, fake_stats.feature_dim, "fake")
        mu_r, sigma_r = real_stats.to_mu_sigma()
        mu_f, sigma_f = fake_stats.to_mu_sigma()
        out[keys["fid"]] = MetricValue(frechet_distance(mu_r, sigma_r, mu_f, sigma_f), **common)
        if crosscheck:
            out[keys["fid_pytorch_fid"]] = MetricValue(
                frechet_distance_pytorch_fid(mu_r, sigma_r, mu_f, sigma_f), **common
            )

    if kid:
        if real_stats.kid_features is None or fake_stats.kid_features is None:
            raise MetricsError(
                f"KID needs stored features but the {'real' if real_stats.kid_features is None else 'fake'} statistics kept none; "
                f"compute them with kid_max >= {kid_subset_size} or pass kid=False."
            )
        mean, std = kernel_distance(
            real_stats.kid_features,
            fake_stats.kid_features,
            subset_size=kid_subset_size,
            subsets=kid_subsets,
            seed=seed,
        )
        out[keys["kid"]] = MetricValue(mean, std=std, **common)

    if isc:
        if metric_spec(keys["is"]).needs == NEEDS_LOGITS and not network.has_logits:
            out[keys["is"]] = MetricValue(None, available=False, reason=network.no_logits_reason, **common)
        else:
            if fake_stats.logits is None:
                raise MetricsError(
                    "the Inception Score needs the fake images' logits but the fake statistics kept none; compute them "
                    "with keep_logits=True or pass isc=False."
                )
            mean, std = logits_score(fake_stats.logits, splits=isc_splits, seed=seed)
            out[keys["is"]] = MetricValue(mean, std=std, **common)
    return out
