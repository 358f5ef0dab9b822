"""Statistics for comparisons: speedups with bootstrap intervals, and a rank test for "really differs".

A speedup is the ratio of median round times. Its 95% interval comes from a seeded bootstrap over the
rounds of both sides (asv-style confidence intervals rather than a bare ratio). Two runs of one benchmark
"really differ" when a two-sided Mann-Whitney U test on their rounds gives p < alpha (pyperformance tests
significance the same way). With n rounds a side the smallest attainable p is 2/C(2n, n): 2 rounds can
never reach 0.05, so smoke-size runs never flag.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import mannwhitneyu

BOOTSTRAP = 2000
SEED = 7


def ratio_interval(numerator: Sequence[float], denominator: Sequence[float],
                   level: float = 0.95) -> tuple[float, float, float]:
    """median(numerator) / median(denominator), with a bootstrap interval (nan bounds with < 2 rounds)."""
    a, b = np.asarray(numerator, float), np.asarray(denominator, float)
    ratio = float(np.median(a) / np.median(b))
    if len(a) < 2 or len(b) < 2:
        return ratio, float("nan"), float("nan")
    rng = np.random.default_rng(SEED)
    ra = np.median(rng.choice(a, size=(BOOTSTRAP, len(a))), axis=1)
    rb = np.median(rng.choice(b, size=(BOOTSTRAP, len(b))), axis=1)
    lo, hi = np.quantile(ra / rb, [(1 - level) / 2, 1 - (1 - level) / 2])
    return ratio, float(lo), float(hi)


def differ_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Mann-Whitney U p-value; 1.0 when either side has fewer than two rounds."""
    if len(a) < 2 or len(b) < 2:
        return 1.0
    if len(set(a)) == 1 and set(a) == set(b):
        return 1.0
    return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)
