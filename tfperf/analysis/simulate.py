"""Simulated runs with a known truth, to measure what the statistics claim: the coverage of the speedup intervals,
their power, and the false discoveries of a run's findings. The variance components are the ones measured in the
committed default run (docs/example-default-run, 53 pairs with two processes of five rounds): the log of a
per-round ratio has a spread of about 0.096 within a process (the median pair's), and the pairs' process-level
component pooled to about 0 (its 90th percentile: 0.0045, an SD of 0.067, the hard case simulated here). Round
noise is drawn from Student's t with 5 degrees of freedom (heavier tails than a normal: the machine's slow
spells), scaled to that spread. Used by tests/test_statistics.py and ``python -m tfperf.analysis.simulate``."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import stats

ROUND_SD = 0.096  # log ratio, within a process (median pair of the committed default run)
PROCESS_SD_HARD = 0.067  # the pairs' process-level component at its 90th percentile there


@dataclass(frozen=True)
class Layout:
    processes: int
    rounds: int
    pairs: int = 8  # pairs of a block, which pool the process-level component


DEFAULT, SMOKE = Layout(2, 5), Layout(1, 3)


ROUND_SD_PIPELINE = 0.028  # the median pipeline pair's (runs h1, h2, g1 in docs/runs/gate: 0.024-0.033)


def _noise(rng: np.random.Generator, size: tuple[int, ...], round_sd: float = ROUND_SD) -> np.ndarray:
    return rng.standard_t(5, size) * round_sd / math.sqrt(5 / 3)


def block(rng: np.random.Generator, layout: Layout, truth: np.ndarray, process_sd: float,
          run_sd: float = 0.0, round_sd: float = ROUND_SD) -> list[tuple]:
    """One block's pairs: per pair, (ratios, process of each round), log ratios = truth + this run's level of the
    pair (`run_sd`: how far the ratio moves from one run to the next) + process level + round."""
    out = []
    for mu in truth:
        level = rng.normal(0.0, process_sd, layout.processes) if process_sd else np.zeros(layout.processes)
        run = rng.normal(0.0, run_sd) if run_sd else 0.0
        logs = mu + run + np.repeat(level, layout.rounds) + _noise(rng, (layout.processes * layout.rounds,), round_sd)
        out.append((np.exp(logs), np.repeat(np.arange(layout.processes), layout.rounds)))
    return out


def intervals(pairs: list[tuple], run_sd: float = 0.0) -> list[tuple[float, float, float, float]]:
    """What the suite states for a block: the process component pooled over its pairs, then each pair's test, with
    the run-to-run component `run_sd` it states (stats.RUN_SD)."""
    between = stats.pool_between([stats.between_component(r, g) for r, g in pairs])
    return [stats.paired_test(r, g, between, run_sd=run_sd) for r, g in pairs]


def coverage(layout: Layout, process_sd: float, blocks: int = 250, seed: int = 1, run_sd: float = 0.0,
             stated_run_sd: float | None = None, round_sd: float = ROUND_SD) -> float:
    """Share of nominal-95% intervals that hold the true ratio (every pair's truth: no difference; each pair's level
    in the run moves by `run_sd`, and the intervals state `stated_run_sd`, by default the same)."""
    rng = np.random.default_rng(seed)
    stated = run_sd if stated_run_sd is None else stated_run_sd
    hits = total = 0
    for _ in range(blocks):
        for _, lo, hi, _ in intervals(block(rng, layout, np.zeros(layout.pairs), process_sd, run_sd, round_sd),
                                      stated):
            total += 1
            hits += bool(lo <= 1.0 <= hi)
    return hits / total


def power(layout: Layout, change: float, process_sd: float, blocks: int = 250, seed: int = 2) -> float:
    """Share of pairs whose interval excludes 1 when every pair truly differs by `change` (0.2: 20% faster)."""
    rng = np.random.default_rng(seed)
    truth = np.full(layout.pairs, math.log(1 + change))
    found = [lo > 1 for _ in range(blocks) for _, lo, _, _ in intervals(block(rng, layout, truth, process_sd))]
    return float(np.mean(found))


def false_discovery_runs(layout: Layout, comparisons: int = 80, runs: int = 300, seed: int = 3) -> tuple[float, float]:
    """(share of null runs with at least one interval excluding 1, share with at least one finding after the false
    discovery control): a run of `comparisons` comparisons, none of them real."""
    rng = np.random.default_rng(seed)
    raw = controlled = 0
    for _ in range(runs):
        tests = [t for _ in range(comparisons // layout.pairs)
                 for t in intervals(block(rng, layout, np.zeros(layout.pairs), 0.0))]
        raw += any(not (lo <= 1 <= hi) for _, lo, hi, _ in tests)
        found = stats.discoveries({str(i): t[3] for i, t in enumerate(tests)})
        controlled += any(not (tests[int(k)][1] <= 1 <= tests[int(k)][2]) for k in found)
    return raw / runs, controlled / runs


if __name__ == "__main__":
    for name, layout in (("default", DEFAULT), ("smoke", SMOKE)):
        for sd in (0.0, PROCESS_SD_HARD):
            print(f"{name} {layout}: process SD {sd}: coverage {100 * coverage(layout, sd):.1f}%, power at 20% "
                  f"{100 * power(layout, 0.2, sd):.0f}%")
        run, rs = stats.RUN_SD["pipeline"], ROUND_SD_PIPELINE
        print(f"{name}: pipeline pairs (rounds {rs}) that move {100 * run:.1f}% a run: coverage "
              f"{100 * coverage(layout, 0.0, run_sd=run, round_sd=rs):.1f}% stating it, "
              f"{100 * coverage(layout, 0.0, run_sd=run, stated_run_sd=0.0, round_sd=rs):.1f}% without; "
              f"no run move: {100 * coverage(layout, 0.0, round_sd=rs):.1f}%")
        raw, controlled = false_discovery_runs(layout)
        print(f"{name}: null runs of 80 comparisons with a raw exclusion of 1: {100 * raw:.0f}%, with a finding "
              f"after Benjamini-Hochberg at {100 * stats.FDR:.0f}%: {100 * controlled:.1f}%")
