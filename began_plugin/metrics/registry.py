"""The metric registry: every result key declares once how it is ranked, shown and computed.

A metric used to be described in several places at once (the flags of ``compute_metrics``, the package's
exports, and the ranking, tie, column and number-format tables of the benchmark harness); adding one meant
editing all of them in step. Here each key gets one frozen :class:`MetricSpec`, registered next to the code
that computes it with :func:`register_metric`, after torch-fidelity's registry and StyleGAN2-ADA's
``metric_main.register_metric`` (Karras et al. 2020, "Training Generative Adversarial Networks with Limited
Data"). A second registration of a key is refused, so two metrics can never silently share a name.

Readers: :func:`metric_spec` (one key), :func:`registered_metrics` (all, in registration order),
:func:`table_keys` (the result table's columns, in order) and :func:`format_value` (a table cell).
"""

from __future__ import annotations

import dataclasses
import re

from began_plugin.metrics.errors import MetricsError

__all__ = [
    "NEEDS",
    "NEEDS_CLASSIFIER",
    "NEEDS_FEATURES",
    "NEEDS_LOGITS",
    "MetricSpec",
    "format_value",
    "metric_spec",
    "register_metric",
    "registered_metrics",
    "table_keys",
]

#: The feature network's features (their moments or a stored set of them).
NEEDS_FEATURES = "features"
#: The coverage classifier trained on the real data.
NEEDS_CLASSIFIER = "classifier"
#: The feature network's class logits (the Inception Score); unavailable on a network without them.
NEEDS_LOGITS = "logits"
NEEDS = (NEEDS_FEATURES, NEEDS_CLASSIFIER, NEEDS_LOGITS)

_KEY_PATTERN = re.compile(r"[a-z][a-z0-9_]*")


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    """How one result key is ranked, shown and computed.

    ``key``: the result key (also the CSV column stem), lower-case ``[a-z][a-z0-9_]*``.
    ``higher_is_better``: which end of the column is best.
    ``digits``: decimals shown in the table.
    ``ranked``: False for a column shown but never bolded.
    ``tie_bolds_none``: True where equal values are common (class counts, coverage fractions), so a tie
    for the best value bolds no model.
    ``needs``: what computing it takes, one of :data:`NEEDS`.
    ``title``: the column header (defaults to the key).
    ``order``: the column's place in the table (smaller first); None keeps the key out of the table.
    ``family``: the quantity :func:`~began_plugin.metrics.compute.compute_metrics` computes under this key
    (``fid``, ``fid_pytorch_fid``, ``kid`` or ``is``); None for keys made elsewhere.
    ``network``: the feature network this key is reserved for (the stand-in's numbers must never be called
    FID), or ``compute.NETWORK_UNVERIFIED`` for any network whose weights are not its standard file (by SHA-256);
    None for the key of every other network.
    """

    key: str
    higher_is_better: bool
    _: dataclasses.KW_ONLY
    digits: int = 2
    ranked: bool = True
    tie_bolds_none: bool = False
    needs: str = NEEDS_FEATURES
    title: str | None = None
    order: int | None = None
    family: str | None = None
    network: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not _KEY_PATTERN.fullmatch(self.key):
            raise MetricsError(
                f"metric key {self.key!r} is not a lower-case identifier ([a-z][a-z0-9_]*); rename it, e.g. 'my_fd'."
            )
        if self.needs not in NEEDS:
            raise MetricsError(
                f"metric {self.key!r} needs {self.needs!r}, expected one of {list(NEEDS)}; pass one of those."
            )
        if isinstance(self.digits, bool) or not isinstance(self.digits, int) or not 0 <= self.digits <= 12:
            raise MetricsError(
                f"metric {self.key!r} has digits={self.digits!r}, expected an integer 0..12; pass the decimals to show."
            )
        if self.order is not None and (isinstance(self.order, bool) or not isinstance(self.order, int)):
            raise MetricsError(
                f"metric {self.key!r} has order={self.order!r}, expected an integer or None; pass its column position."
            )
        if self.title is None:
            object.__setattr__(self, "title", self.key)


_REGISTRY: dict[str, MetricSpec] = {}


def register_metric(spec: MetricSpec) -> MetricSpec:
    """Add ``spec`` to the registry and return it; a key, column order or (family, network) already taken is refused."""
    if not isinstance(spec, MetricSpec):
        raise MetricsError(
            f"register_metric takes a MetricSpec, got {type(spec).__name__}; wrap the metric's settings in MetricSpec(...)."
        )
    if spec.key in _REGISTRY:
        raise MetricsError(
            f"metric key {spec.key!r} is already registered (title {_REGISTRY[spec.key].title!r}); give the new metric another key."
        )
    for other in _REGISTRY.values():
        if spec.order is not None and other.order == spec.order:
            raise MetricsError(
                f"metric {spec.key!r} asks for table order {spec.order}, which {other.key!r} already has; pick a free order."
            )
        if spec.family is not None and (other.family, other.network) == (spec.family, spec.network):
            raise MetricsError(
                f"metric {spec.key!r} computes family {spec.family!r} for network {spec.network!r}, as {other.key!r} "
                "already does; give it another family or network."
            )
    _REGISTRY[spec.key] = spec
    return spec


def metric_spec(key: str) -> MetricSpec:
    """The spec registered for ``key``."""
    try:
        return _REGISTRY[key]
    except KeyError:
        raise MetricsError(
            f"no metric is registered under {key!r} (registered: {', '.join(_REGISTRY)}); "
            "use one of those keys or register the metric with register_metric."
        ) from None


def registered_metrics() -> tuple[MetricSpec, ...]:
    """Every registered spec, in registration order."""
    return tuple(_REGISTRY.values())


def table_keys() -> list[str]:
    """The keys that are table columns (an ``order``), in column order."""
    return [s.key for s in sorted((s for s in _REGISTRY.values() if s.order is not None), key=lambda s: s.order)]


def format_value(key: str, mean: float, std: float | None = None) -> str:
    """``mean ± std`` with the key's decimals; one seed has no spread to report, so ``std=None`` shows the value alone."""
    digits = metric_spec(key).digits
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"
