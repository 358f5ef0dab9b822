"""Statistics for comparisons: speedups with bootstrap intervals, and a rank test for "really differs".

A speedup is the ratio of median round times. Its 95% interval comes from a seeded bootstrap over the
rounds of both sides (asv-style confidence intervals rather than a bare ratio). Two runs of one benchmark
"really differ" when a two-sided Mann-Whitney U test on their rounds gives p < alpha (pyperformance tests
significance the same way). With n rounds a side the smallest attainable p is 2/C(2n, n): 2 rounds can
never reach 0.05, so smoke-size runs never flag.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps
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


# ---- paired comparisons ---------------------------------------------------------------------------------
# A speedup is measured as pairs: the variant and its baseline timed in the same rounds (same process, same
# shuffled pass over the block), so the machine's drift and the process's level cancel within each pair.
# Estimate: the median over rounds of the per-round ratio of time per example. Interval: a seeded
# hierarchical bootstrap, processes resampled first and rounds within each process second, so the spread
# between processes is part of the uncertainty (pyperf's lesson), not averaged away.


def pair_ratios(num: Sequence[float], num_examples: float, den: Sequence[float], den_examples: float,
                process: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-round ratios (num time per example) / (den time per example), and each round's process."""
    n = min(len(num), len(den))
    a = np.asarray(num[:n], float) / float(num_examples)
    b = np.asarray(den[:n], float) / float(den_examples)
    groups = np.asarray(process[:n] if process is not None and len(process) >= n else [0] * n, int)
    return a / b, groups


def paired_interval(ratios: np.ndarray, groups: np.ndarray | None = None, level: float = 0.95,
                    resamples: int = BOOTSTRAP) -> tuple[float, float, float]:
    """(median ratio, lo, hi); nan bounds with fewer than 3 pairs."""
    r = np.asarray(ratios, float)
    if len(r) == 0:
        return float("nan"), float("nan"), float("nan")
    est = float(np.exp(np.median(np.log(r))))
    if len(r) < 3:
        return est, float("nan"), float("nan")
    g = np.zeros(len(r), int) if groups is None else np.asarray(groups, int)
    logs = np.log(r)
    by_group = [logs[g == k] for k in np.unique(g)]
    rng = np.random.default_rng(SEED)
    meds = np.empty(resamples)
    for i in range(resamples):
        picked = rng.integers(0, len(by_group), len(by_group)) if len(by_group) > 1 else [0]
        sample = np.concatenate([rng.choice(by_group[k], size=len(by_group[k])) for k in picked])
        meds[i] = np.median(sample)
    lo, hi = np.quantile(meds, [(1 - level) / 2, 1 - (1 - level) / 2])
    return est, float(np.exp(lo)), float(np.exp(hi))


def speedup(variant: dict, partner: dict) -> tuple[float, float, float]:
    """Speedup of `variant` over `partner` (> 1: the variant is faster per example), from paired rounds.
    Each argument: {"times": [...], "examples": n, "process": [...]} with rounds aligned."""
    ratios, groups = pair_ratios(partner["times"], partner["examples"], variant["times"], variant["examples"],
                                 variant.get("process"))
    return paired_interval(ratios, groups)


def physics_check(more_work: bool, vs_baseline: tuple[float, float, float] | None,
                  vs_bound: tuple[float, float, float] | None) -> list[str]:
    """Reasons a row contradicts the work it does (empty: none). A variant doing strictly more work than its
    baseline cannot be significantly faster; an input variant cannot be significantly faster than the same
    steps fed from memory (its compute-only bound). Such a row is unstable, never a finding."""
    reasons = []
    if more_work and vs_baseline is not None and vs_baseline[1] > 1:
        reasons.append(f"does more work than its baseline but measured {vs_baseline[0]:.2f}x faster "
                       f"[{vs_baseline[1]:.2f}, {vs_baseline[2]:.2f}]")
    if vs_bound is not None and vs_bound[1] > 1:
        reasons.append(f"measured {vs_bound[0]:.2f}x faster than its compute-only bound "
                       f"[{vs_bound[1]:.2f}, {vs_bound[2]:.2f}]")
    return reasons


# ---- run against run ----------------------------------------------------------------------------------

def rank_test_reach(n: int, m: int) -> float:
    """The smallest two-sided p a Mann-Whitney U test can give with n and m rounds."""
    if n < 1 or m < 1:
        return 1.0
    return 2.0 / math.comb(n + m, n)


def unit_variance(base_units: list[float], new_units: list[float]) -> tuple[float, int]:
    """Variance of log unit values within each side (each side around its own mean: a real change between the
    sides does not enter it), pooled over both sides, and its degrees of freedom."""
    ss, df = 0.0, 0
    for units in (base_units, new_units):
        if len(units) >= 2:
            logs = np.log(units)
            ss += float(((logs - logs.mean()) ** 2).sum())
            df += len(units) - 1
    return (ss / df if df else float("nan")), df


def judge(base_units: list[float], base_rounds: list[float], new_units: list[float], new_rounds: list[float],
          alpha: float, pooled: tuple[float, int] | None = None,
          instance: tuple[float, int] | None = None) -> dict[str, object]:
    """Change (fraction), its 95% interval, p, the detection limit, and which test was used. `pooled` is the
    block's pooled unit variance and its degrees of freedom: the benchmark uses the larger of its own and that
    (its own two or three processes alone say little about their spread). `instance` is one variant instance's
    variance and its degrees of freedom, from the null pairs (see `instance_variance`): another estimate of the
    same unit variance, pooled in by its degrees of freedom."""
    if len(base_units) >= 2 and len(new_units) >= 2:
        own, own_df = unit_variance(base_units, new_units)
        var, df = own, own_df
        if pooled is not None and pooled[1] > own_df and not math.isnan(pooled[0]):
            var, df = max(own, pooled[0]), pooled[1]
        if instance is not None and not math.isnan(instance[0]):
            # Both estimate one unit's variance once the block's level is out of every round: the units' spread
            # and the twin's from its anchor in the same process (instance and rounds alike). Pooled by degrees of
            # freedom, not the larger of the two: the larger of two noisy estimates is biased up, and the null
            # pair's, from a handful of processes, had set every limit of its block (measured below, README).
            var, df = (var * df + instance[0] * instance[1]) / (df + instance[1]), df + instance[1]
        a, b = np.log(new_units), np.log(base_units)
        diff = float(a.mean() - b.mean())
        se = math.sqrt(var * (1 / len(a) + 1 / len(b))) or 1e-12
        q = float(sps.t.ppf(0.975, df))
        p = float(2 * sps.t.sf(abs(diff) / se, df))
        change, lo, hi = math.expm1(diff), math.expm1(diff - q * se), math.expm1(diff + q * se)
        return {"change": change, "lo": lo, "hi": hi, "p": p, "limit": math.expm1(q * se),
                "test": f"t over {len(new_units)}+{len(base_units)} processes ({df} df)", "test_can_reach": True}
    ratio, lo, hi = ratio_interval(new_rounds, base_rounds)
    p = differ_p(new_rounds, base_rounds)
    reach = rank_test_reach(len(new_rounds), len(base_rounds)) < alpha
    limit = (hi - lo) / 2 if not (math.isnan(lo) or math.isnan(hi)) else float("nan")
    test = "rank test over rounds" if reach else f"interval only (the rank test cannot reach p < {alpha:g} " \
        f"with {len(new_rounds)}+{len(base_rounds)} rounds)"
    return {"change": ratio - 1, "lo": lo - 1, "hi": hi - 1, "p": p, "limit": limit, "test": test,
            "test_can_reach": reach}
