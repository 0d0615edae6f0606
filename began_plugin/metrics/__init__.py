"""FID / KID / IS for the BEGAN benchmark, with torch-fidelity doing the metric math.

- FID: Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium".
- KID: Bińkowski et al. 2018, "Demystifying MMD GANs".
- IS: Salimans et al. 2016, "Improved Techniques for Training GANs".

Pipeline: trainer images in [-1, 1] -> :func:`to_uint8_rgb` -> a feature network from
:func:`load_feature_network` (``inception-offline``, ``inception`` or the test-only ``standin``) ->
streaming :class:`FeatureStatistics` (:func:`images_to_statistics`; real-data ones cached with
:func:`load_or_compute_statistics`) -> :func:`compute_metrics`. Mode coverage is a class-count view for labelled
data (:mod:`began_plugin.metrics.coverage`: samples confidently classified *and* inside the real manifold)
and, for every dataset, improved precision/recall (:mod:`began_plugin.metrics.precision_recall`) with
density/coverage (:mod:`began_plugin.metrics.density_coverage`; :func:`feature_space_metrics` gives all
four). Memorisation (:mod:`began_plugin.metrics.memorisation`) compares the generated images' nearest-training-image
distances with held-out real images'; :mod:`began_plugin.metrics.convergence` rank-correlates a model's own
convergence measure with FID along training. Every result key is declared once, with how it is ranked and shown, in
:mod:`began_plugin.metrics.registry`; content hashes and cache keys are in :mod:`began_plugin.metrics.hashing`.

The function :func:`precision_recall` shadows its module's name on this package, so read the module's other
names with ``from began_plugin.metrics.precision_recall import ...``, not ``import ... as``.

Importing this package registers ``inception-offline`` with torch-fidelity, so
``torch_fidelity.calculate_metrics(feature_extractor="inception-offline", ...)`` works offline too.
"""

from began_plugin.metrics.cache import (
    cache_key,
    cache_path,
    load_or_compute_statistics,
    load_statistics,
    save_statistics,
    statistics_cache_fields,
)
from began_plugin.metrics.compute import (
    KEY_FD_UNVERIFIED,
    KEY_FD_UNVERIFIED_PYTORCH_FID,
    KEY_FID,
    KEY_FID_PYTORCH_FID,
    KEY_IS,
    KEY_KD_UNVERIFIED,
    KEY_KID,
    KEY_LOGIT_SCORE_UNVERIFIED,
    KEY_STANDIN_FD,
    KEY_STANDIN_FD_PYTORCH_FID,
    KEY_STANDIN_KD,
    KEY_STANDIN_LOGIT_SCORE,
    NETWORK_UNVERIFIED,
    MetricValue,
    compute_metrics,
    metric_keys,
)
from began_plugin.metrics.convergence import KEY_CONVERGENCE_SPEARMAN
from began_plugin.metrics.coverage import (
    KEY_CLASS_KL,
    KEY_CLASSES_COVERED,
    KEY_CONFIDENT_FRACTION,
    KEY_MANIFOLD_FRACTION,
    NETWORK_COVERAGE,
    coverage_metrics,
    load_or_train_classifier,
)
from began_plugin.metrics.density_coverage import (
    KEY_COVERAGE,
    KEY_DENSITY,
    density_and_coverage,
    feature_space_metrics,
)
from began_plugin.metrics.errors import MetricsError, MetricsWarning
from began_plugin.metrics.feature_networks import (
    FID_INCEPTION_SHA256,
    NETWORK_INCEPTION,
    NETWORK_INCEPTION_OFFLINE,
    NETWORK_NAMES,
    NETWORK_STANDIN,
    OFFLINE_TORCHSCRIPT_SHA256,
    STANDARD_WEIGHTS_SHA256,
    FeatureExtractorInceptionOffline,
    FeatureNetwork,
    InceptionNetwork,
    InceptionOfflineNetwork,
    StandinNetwork,
    default_offline_weights_path,
    is_standard_weights,
    load_feature_network,
)
from began_plugin.metrics.fid import frechet_distance, frechet_distance_pytorch_fid
from began_plugin.metrics.hashing import file_sha256, json_sha256, state_dict_sha256
from began_plugin.metrics.images import to_uint8_rgb
from began_plugin.metrics.isc import logits_score
from began_plugin.metrics.kid import kernel_distance
from began_plugin.metrics.memorisation import KEY_MEMORISATION_RATIO, memorisation_metrics
from began_plugin.metrics.precision_recall import KEY_PRECISION, KEY_RECALL, precision_recall, precision_recall_metrics
from began_plugin.metrics.registry import (
    MetricSpec,
    format_value,
    metric_spec,
    register_metric,
    registered_metrics,
    table_keys,
)
from began_plugin.metrics.statistics import FeatureStatistics, images_to_statistics

__all__ = [
    "KEY_CLASS_KL",
    "KEY_CLASSES_COVERED",
    "KEY_CONFIDENT_FRACTION",
    "KEY_CONVERGENCE_SPEARMAN",
    "KEY_COVERAGE",
    "KEY_DENSITY",
    "KEY_MANIFOLD_FRACTION",
    "KEY_MEMORISATION_RATIO",
    "KEY_PRECISION",
    "KEY_RECALL",
    "NETWORK_COVERAGE",
    "coverage_metrics",
    "density_and_coverage",
    "feature_space_metrics",
    "load_or_train_classifier",
    "memorisation_metrics",
    "precision_recall",
    "precision_recall_metrics",
    "MetricSpec",
    "format_value",
    "metric_spec",
    "register_metric",
    "registered_metrics",
    "table_keys",
    "file_sha256",
    "json_sha256",
    "state_dict_sha256",
    "KEY_FID",
    "KEY_FID_PYTORCH_FID",
    "KEY_IS",
    "KEY_KID",
    "KEY_STANDIN_FD",
    "KEY_STANDIN_FD_PYTORCH_FID",
    "KEY_STANDIN_KD",
    "KEY_STANDIN_LOGIT_SCORE",
    "KEY_FD_UNVERIFIED",
    "KEY_FD_UNVERIFIED_PYTORCH_FID",
    "KEY_KD_UNVERIFIED",
    "KEY_LOGIT_SCORE_UNVERIFIED",
    "NETWORK_UNVERIFIED",
    "FID_INCEPTION_SHA256",
    "OFFLINE_TORCHSCRIPT_SHA256",
    "STANDARD_WEIGHTS_SHA256",
    "is_standard_weights",
    "NETWORK_INCEPTION",
    "NETWORK_INCEPTION_OFFLINE",
    "NETWORK_NAMES",
    "NETWORK_STANDIN",
    "FeatureExtractorInceptionOffline",
    "FeatureNetwork",
    "FeatureStatistics",
    "InceptionNetwork",
    "InceptionOfflineNetwork",
    "MetricValue",
    "MetricsError",
    "MetricsWarning",
    "StandinNetwork",
    "cache_key",
    "cache_path",
    "compute_metrics",
    "default_offline_weights_path",
    "frechet_distance",
    "frechet_distance_pytorch_fid",
    "images_to_statistics",
    "kernel_distance",
    "load_feature_network",
    "load_or_compute_statistics",
    "load_statistics",
    "logits_score",
    "metric_keys",
    "save_statistics",
    "statistics_cache_fields",
    "to_uint8_rgb",
]
