"""Does a model's own convergence measure track sample quality? A rank correlation along training.

BEGAN's paper (§3.4.1) claims that M_global = L(x) + |gamma L(x) - L(G(z))| measures convergence: it falls as the
images get better. The critic's estimate of the Wasserstein distance, E[D(x)] - E[D(G(z))], is claimed to do the
same for WGAN (Arjovsky et al. 2017, "a meaningful loss metric") and WGAN-GP (Gulrajani et al. 2017). With FID
measured every N steps (the harness's ``--eval-every``), each measurement is paired with the model's measure at the
nearest logged step, and

    convergence_spearman = Spearman's rank correlation of (measure, FID) over those pairs

(``scipy.stats.spearmanr``). +1: the measure falls exactly when FID falls, in rank (what the claim predicts);
0: no relation; -1: it rises as the images improve. A model names its measure through the contract's optional
``convergence_measure`` hook (a log key, or None: no measure, no number). The column is shown, never bolded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from began_plugin.metrics.errors import MetricsError
from began_plugin.metrics.registry import NEEDS_FEATURES, MetricSpec, register_metric

__all__ = ["KEY_CONVERGENCE_SPEARMAN", "MIN_POINTS", "measure_at_steps", "spearman"]

KEY_CONVERGENCE_SPEARMAN = "convergence_spearman"
#: Fewer FID measurements than this give no correlation (two points rank to +-1 whatever they are).
MIN_POINTS = 3

# A property of the model's measure, not a score of the samples: shown, never bolded.
register_metric(MetricSpec(KEY_CONVERGENCE_SPEARMAN, True, digits=2, ranked=False, needs=NEEDS_FEATURES, order=150))


def measure_at_steps(rows: Sequence[Mapping], key: str, steps: Sequence[int]) -> list[tuple[int, float]]:
    """Per step of ``steps``: (the nearest logged step holding ``key``, its value); ``[]`` when none holds it.

    A tie between an earlier and a later logged step takes the earlier one.
    """
    logged = sorted((int(r["step"]), float(r[key])) for r in rows if key in r and r[key] is not None)
    if not logged:
        return []
    return [min(logged, key=lambda p: (abs(p[0] - step), p[0])) for step in steps]


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation of two equally long sequences; None where it is undefined (a constant one)."""
    from scipy.stats import spearmanr

    if len(x) != len(y):
        raise MetricsError(f"a rank correlation needs two sequences of one length, got {len(x)} and {len(y)}.")
    if len(x) < 2:
        raise MetricsError(f"a rank correlation needs at least 2 pairs, got {len(x)}; measure more often.")
    if len(set(x)) < 2 or len(set(y)) < 2:
        return None
    rho = float(spearmanr(x, y).statistic)
    return None if math.isnan(rho) else rho
