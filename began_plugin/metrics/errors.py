"""The one error and the one warning type of ``began_plugin.metrics``.

Every message is a single sentence that says what was wrong, with what value, and how to fix it, so that a
command-line caller can print it as it is.
"""

__all__ = ["MetricsError", "MetricsWarning"]


class MetricsError(ValueError):
    """A metric cannot be computed as asked (bad weights, too few samples, mismatched cache, ...)."""


class MetricsWarning(UserWarning):
    """A metric was computed but its estimate is unreliable (for example a rank-deficient covariance)."""
