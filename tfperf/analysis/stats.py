"""The suite's statistics, in one place: within a run, paired speedups (a variant against its baseline or bound in
the same rounds) with their intervals, p-values and the false discovery rate over a run's findings; across runs,
the test of a change (:func:`judge`: t over process-level units where each side has two or more, else a
bootstrap interval of the ratio of median rounds and a Mann-Whitney U test, whose smallest attainable p with n
rounds a side is 2/C(2n, n)); and the physics check.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats as sps
from scipy.stats import mannwhitneyu

if TYPE_CHECKING:
    from tfperf.results.store import Run

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
# shuffled pass over the block), so the machine's drift and the process's level largely cancel within each pair.
# Model, on the log of the per-round ratio of time per example: y = mu + a_process + e_round. Estimate: the mean
# over processes of each process's mean (the geometric mean ratio). Its variance: s_w^2 / N (rounds, from the
# spread within processes) + s_b^2 / P (the pair's process level, a variance component: estimated from the pair's
# own processes where it has two or more, pooled with the same component of every pair of its block, whose
# processes number many more). Interval: Student's t with Satterthwaite's degrees of freedom. Why not the earlier
# hierarchical bootstrap: with 2 processes it resamples 2 clusters, which cannot show the spread between them, and
# a percentile bootstrap of a median of 5 rounds under-covers; in the simulation of tests/test_statistics.py
# (round and process components from the committed default run) it covered 74-89% where this covers 94-96%.

LEVEL = 0.95
FDR = 0.05  # the false discovery rate a run's findings are held to, over all its comparisons (Benjamini-Hochberg)


def pair_ratios(num: Sequence[float], num_examples: float, den: Sequence[float], den_examples: float,
                process: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-round ratios (num time per example) / (den time per example), and each round's process."""
    n = min(len(num), len(den))
    a = np.asarray(num[:n], float) / float(num_examples)
    b = np.asarray(den[:n], float) / float(den_examples)
    groups = np.asarray(process[:n] if process is not None and len(process) >= n else [0] * n, int)
    return a / b, groups


def between_component(ratios: np.ndarray, groups: np.ndarray) -> tuple[float, int]:
    """One pair's estimate of its process-level variance (of the log ratio) and its degrees of freedom: the
    variance of its process means less what its rounds alone put there (it may come out negative: an unbiased
    estimate of a component near 0; pooled, then floored). (nan, 0) with fewer than two processes."""
    logs = np.log(np.asarray(ratios, float))
    g = np.asarray(groups, int)
    keys = np.unique(g)
    if len(keys) < 2 or any((g == k).sum() < 2 for k in keys):
        return float("nan"), 0
    means = np.array([logs[g == k].mean() for k in keys])
    within = float(np.mean([logs[g == k].var(ddof=1) / (g == k).sum() for k in keys]))
    return float(means.var(ddof=1)) - within, len(keys) - 1


def pool_between(components: Sequence[tuple[float, int]]) -> tuple[float, int] | None:
    """The block's process-level variance component: the pairs' estimates pooled by degrees of freedom, floored at
    0; None when no pair has two processes."""
    usable = [(v, d) for v, d in components if d > 0 and not math.isnan(v)]
    df = sum(d for _, d in usable)
    if not df:
        return None
    return max(0.0, sum(v * d for v, d in usable) / df), df


# How far a speedup (the ratio of two different variants timed in the same rounds) moves from one run of one code to
# the next beyond what its run's rounds and processes show, by the kind of scenario: measured on the 36 pairs of nine
# same-code default runs (docs/runs/gate f1 f2 g1 g2 h1 h2 x1 x2 x3; scripts/findings_agreement.py's estimate,
# pooled): pipeline 1.9% over 1,036 comparisons, service 1.7% over 432, multi-worker 5.8% over 36, training 0.0% over
# 856 (its intervals already hold more than its runs move). A stated speedup interval covers the speedup on this
# machine, not the one run's: this component is added to its variance. Never to a null pair (one variant twice).
RUN_SD = {"pipeline": 0.019, "service": 0.017, "multiworker": 0.058}


def paired_test(ratios: np.ndarray, groups: np.ndarray | None = None, between: tuple[float, int] | None = None,
                level: float = LEVEL, run_sd: float = 0.0) -> tuple[float, float, float, float]:
    """(geometric mean ratio, lo, hi, p of "ratio is 1"); nan bounds and p 1 where the rounds cannot say (fewer than
    3, no spread within processes). `between`: the block's pooled process-level component (see pool_between).
    `run_sd`: the ratio's run-to-run component (log scale, measured elsewhere, so known: no degrees of freedom of its
    own), added to the variance of the estimate (see RUN_SD)."""
    logs = np.log(np.asarray(ratios, float))
    if len(logs) == 0:
        return float("nan"), float("nan"), float("nan"), 1.0
    g = np.zeros(len(logs), int) if groups is None else np.asarray(groups, int)
    keys = np.unique(g)
    means = np.array([logs[g == k].mean() for k in keys])
    est = float(means.mean())
    df_w = len(logs) - len(keys)
    if len(logs) < 3 or df_w < 1:
        return math.exp(est), float("nan"), float("nan"), 1.0
    s2_w = float(sum(((logs[g == k] - logs[g == k].mean()) ** 2).sum() for k in keys)) / df_w
    own = between_component(np.exp(logs), g)
    comp = pool_between([own, between] if between else [own])
    s2_b, df_b = comp if comp else (0.0, 0)
    P, N = len(keys), len(logs)
    a, b = s2_w / N, s2_b / P
    if a + b == 0:  # every round gave the same ratio: nothing to say how sure that is
        return math.exp(est), float("nan"), float("nan"), 1.0
    se = math.sqrt(a + b + run_sd ** 2)
    # Satterthwaite, the known run component with no sampling error of its own. Simulated (pipeline-like rounds,
    # 2.1% a run): 95.9% coverage at default, 95.5% at smoke; keeping the estimated part's df instead (wider):
    # 98.6% and 100%; without the component: 62% and 87% (docs/statistics.md, which has the figures at 1.9% too)
    df = (a + b + run_sd ** 2) ** 2 / (a * a / df_w + (b * b / df_b if df_b and b else 0.0))
    q = float(sps.t.ppf(0.5 + level / 2, df))
    p = float(2 * sps.t.sf(abs(est) / se, df))
    return math.exp(est), math.exp(est - q * se), math.exp(est + q * se), p


def speedup(variant: dict, partner: dict, between: tuple[float, int] | None = None,
            run_sd: float = 0.0) -> tuple[float, float, float, float]:
    """Speedup of `variant` over `partner` (> 1: the variant is faster per example), from paired rounds, with its
    interval and p. Each argument: {"times": [...], "examples": n, "process": [...]} with rounds aligned. `run_sd`:
    see RUN_SD."""
    ratios, groups = pair_ratios(partner["times"], partner["examples"], variant["times"], variant["examples"],
                                 variant.get("process"))
    return paired_test(ratios, groups, between, run_sd=run_sd)


def pair_component(variant: dict, partner: dict) -> tuple[float, int]:
    """A pair's own process-level component (see between_component), for pooling over its block."""
    ratios, groups = pair_ratios(partner["times"], partner["examples"], variant["times"], variant["examples"],
                                 variant.get("process"))
    return between_component(ratios, groups)


def discoveries(pvalues: dict[str, float], rate: float = FDR) -> set[str]:
    """The comparisons that survive a false discovery rate of `rate` over all of them (Benjamini-Hochberg, scipy)."""
    keys = [k for k, p in pvalues.items() if p is not None and not math.isnan(p)]
    if not keys:
        return set()
    adjusted = sps.false_discovery_control([pvalues[k] for k in keys], method="bh")
    return {k for k, q in zip(keys, adjusted, strict=True) if q <= rate}


def beyond_p(change: float, se: float, df: float, limit: float) -> float:
    """Two-sided p of the test that a change lies beyond +/-`limit` on its side (log scale, Student's t with `df`):
    below alpha exactly when the change's (1 - alpha) interval lies wholly beyond the limit. The p a gate's
    multiplicity control ranks, since a flag asks "beyond the threshold", not "not zero"."""
    d = math.log1p(change)
    edge = math.log1p(limit) if d > 0 else math.log1p(-limit)
    distance = d - edge if d > 0 else edge - d
    return float(min(1.0, 2 * sps.t.sf(distance / se, df)))


def weighted_discoveries(pvalues: dict[str, float], weights: dict[str, float]) -> dict[str, float]:
    """Benjamini-Hochberg over p / weight (scipy), the weights rescaled to average 1 (Genovese, Roeder and Wasserman
    2006: the false discovery rate stays at the rate chosen over all of them, and a comparison with more weight needs
    less evidence). Returns each comparison's adjusted value (a q): a discovery at rate r where q <= r."""
    keys = [k for k, p in pvalues.items() if p is not None and not math.isnan(p)]
    if not keys:
        return {}
    total = sum(weights[k] for k in keys)
    scaled = [min(1.0, pvalues[k] * total / (len(keys) * weights[k])) for k in keys]
    return dict(zip(keys, (float(q) for q in sps.false_discovery_control(scaled, method="bh")), strict=True))


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
          instance: tuple[float, int] | None = None, run_sd: float = 0.0) -> dict[str, object]:
    """Change (fraction), its 95% interval, p, the detection limit, and which test was used. `pooled` is the
    block's pooled unit variance and its degrees of freedom: the benchmark uses the larger of its own and that
    (its own two or three processes alone say little about their spread). `instance` is one variant instance's
    variance and its degrees of freedom, from the null pairs (see `instance_variance`): another estimate of the
    same unit variance, pooled in by its degrees of freedom. `run_sd` is how far each side's level moves from one run to
    the next beyond what its units show (log scale, measured elsewhere): with one run a side, it widens the
    interval by that run-to-run component of both sides."""
    if len(base_units) >= 2 and len(new_units) >= 2:
        own, own_df = unit_variance(base_units, new_units)
        var, df = own, own_df
        if pooled is not None and pooled[1] > own_df and not math.isnan(pooled[0]) and pooled[0] >= own:
            # the block's pooled variance with its own degrees of freedom; where the benchmark's own is larger, its
            # own with its own (few) degrees of freedom: a variance is never paired with another's df
            var, df = pooled[0], pooled[1]
        if instance is not None and not math.isnan(instance[0]):
            # Both estimate one unit's variance once the block's level is out of every round: the units' spread
            # and the twin's from its anchor in the same process (instance and rounds alike). Pooled by degrees of
            # freedom, not the larger of the two: the larger of two noisy estimates is biased up, and the null
            # pair's, from a handful of processes, had set every limit of its block (measured below, README).
            var, df = (var * df + instance[0] * instance[1]) / (df + instance[1]), df + instance[1]
        a, b = np.log(new_units), np.log(base_units)
        diff = float(a.mean() - b.mean())
        se = math.sqrt(var * (1 / len(a) + 1 / len(b)) + 2 * run_sd ** 2)
        if not se > 0:  # no spread at all (identical units): nothing says how sure the change is
            return {"change": math.expm1(diff), "lo": float("nan"), "hi": float("nan"), "p": 1.0,
                    "limit": float("nan"), "test": "no spread between units: not judged", "test_can_reach": False}
        q = float(sps.t.ppf(0.975, df))
        p = float(2 * sps.t.sf(abs(diff) / se, df))
        change, lo, hi = math.expm1(diff), math.expm1(diff - q * se), math.expm1(diff + q * se)
        return {"change": change, "lo": lo, "hi": hi, "p": p, "limit": math.expm1(q * se), "se": se, "df": df,
                "test": f"t over {len(new_units)}+{len(base_units)} processes ({df} df)"
                        + (f", plus a run-level SD of {100 * run_sd:.1f}%" if run_sd else ""), "test_can_reach": True}
    ratio, lo, hi = ratio_interval(new_rounds, base_rounds)
    p = differ_p(new_rounds, base_rounds)
    reach = rank_test_reach(len(new_rounds), len(base_rounds)) < alpha
    limit = (hi - lo) / 2 if not (math.isnan(lo) or math.isnan(hi)) else float("nan")
    test = "rank test over rounds" if reach else f"interval only (the rank test cannot reach p < {alpha:g} " \
        f"with {len(new_rounds)}+{len(base_rounds)} rounds)"
    # Welch's t on the log rounds: the standard error and degrees of freedom a comparison's multiplicity control
    # ranks this row by (the rounds of one process: like the interval, blind to the spread between processes)
    welch_se, welch_df = float("nan"), float("nan")
    if len(new_rounds) >= 2 and len(base_rounds) >= 2:
        va, vb = (float(np.var(np.log(x), ddof=1)) / len(x) for x in (new_rounds, base_rounds))
        if va + vb > 0:
            welch_se = math.sqrt(va + vb)
            welch_df = (va + vb) ** 2 / (va ** 2 / (len(new_rounds) - 1) + vb ** 2 / (len(base_rounds) - 1))
    return {"change": ratio - 1, "lo": lo - 1, "hi": hi - 1, "p": p, "limit": limit, "test": test,
            "test_can_reach": reach, "se": welch_se, "df": welch_df}


def instance_variance(runs: list[Run]) -> dict[str, tuple[float, int]]:
    """Variance of one variant instance's level, block by block, from the runs' null pairs: in every process, the
    twin and the anchor are two instances of one variant timed in the same rounds, so half the variance of the
    log of their per-process median ratio is one instance's. Measured here: a variant's instance can sit at one
    of two levels for its whole life (mlp-fit-best: 18.7 or 27 us per example), which the spread between two or
    three processes alone may not show. Per block (key ``""``: all blocks together, for a block with fewer
    than three processes of null pairs): one block's wide null pair (``latency``'s, up to +/-88% in j1) says
    nothing of another's."""
    logs: dict[str, list[float]] = {}
    for run in runs:
        for pair in run.null_pairs:
            try:
                a, b = pair["a"], pair["b"]
                ta = np.asarray(a["times"], float) / float(a["examples"])
                tb = np.asarray(b["times"], float) / float(b["examples"])
                proc = np.asarray(a.get("process") or [0] * len(ta), int)
            except (KeyError, TypeError, ValueError, ZeroDivisionError):
                continue
            if len(ta) != len(tb) or len(proc) != len(ta):
                continue
            block = str(pair.get("block") or pair.get("scenario") or "")
            for p in np.unique(proc):
                value = float(np.log(np.median(tb[proc == p]) / np.median(ta[proc == p])))
                for key in {block, ""}:
                    logs.setdefault(key, []).append(value)
    return {block: (float(np.mean(np.square(v))) / 2, len(v)) for block, v in logs.items() if len(v) >= 3}
