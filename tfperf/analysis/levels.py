"""A block's level: what a change of the machine's speed between runs moves together.

A block's rounds run every member within the same few seconds, so a change of the machine's speed between runs
(measured: a whole block 4-12% faster in one run than in the run before, same code) moves all of them together.
:func:`block_levels` takes that level out of every round, so what is left is each benchmark's time relative to
the benchmarks measured in the same rounds; :func:`cpu_shares` says how CPU-bound each member is, for blocks
whose members a change of the CPU's speed moves by different amounts.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

from tfperf.results.store import Run

Measured = dict[str, tuple[str, list[float], list[int]]]  # benchmark -> (block, rounds per example, processes)


def rounds_of(run: Run) -> Measured:
    """Each measured benchmark of a run: (its block, its rounds as seconds per example, each round's process)."""
    out = {}
    for r in run.frame.itertuples():
        if r.status != "ok":
            continue
        examples = float(r.examples) if r.examples and not nan(r.examples) else 1.0
        per = [t / examples for t in r.times]
        process = list(r.round_process or [])
        if len(process) != len(per):
            process = [0] * len(per)
        group = r.group
        out[f"{r.scenario}/{r.variant}"] = (group if isinstance(group, str) and group else str(r.scenario), per,
                                            process)
    return out



def nan(x: object) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))



MIN_BLOCK = 3  # a block's level is the median of its members: with fewer, one member's change moves it
CPU_SPREAD = 0.3  # members' CPU shares must span this much before the level is taken as a line in the share
MIN_LINE = 5  # and a line needs this many members, so that one member's own change cannot carry its slope
IN_PROCESS = ("pipeline", "dataset")  # kinds whose work all runs in the measuring process (its CPU time sees it)


def cpu_shares(runs: list[Run]) -> dict[str, float]:
    """How CPU-bound each in-process benchmark is, from its rows' `process_cpu_per_s` (cores the measuring process
    kept busy during its rounds), capped at 1 (a pipeline keeping one core busy or two is bound by the CPU either
    way) and averaged over the runs. Kinds whose work runs in other processes (a tf.data service, trainers) are
    left out: their measuring process's CPU does not show their work."""
    seen: dict[str, list[float]] = {}
    for run in runs:
        for r in run.frame.itertuples():
            value = r.process_cpu_per_s
            if r.status == "ok" and r.kind in IN_PROCESS and value is not None and not nan(value):
                seen.setdefault(f"{r.scenario}/{r.variant}", []).append(min(1.0, max(0.0, float(value))))
    return {name: float(np.mean(v)) for name, v in seen.items()}


def _line(dev: np.ndarray, share: np.ndarray | None) -> np.ndarray:
    """The level to take out of each member's round (members x rounds), given the members' deviations there.

    Without CPU shares, or where they span less than CPU_SPREAD, it is one level per round: the median over the
    members. Otherwise a change of the machine's CPU speed moves a member in proportion to how CPU-bound it is
    (measured, `latency` n7 -> n8, same code: `parallel_32` and `cache`, one core busy, -14% in absolute time;
    `naive`, mostly waiting, -4%), so the level is a line in the share: its slope, the Theil-Sen median of the
    pairwise slopes of the members' median deviations over their shares (a benchmark's own change is one member
    among them and does not carry it), and each round's intercept, the median over members of what the slope leaves."""
    if share is None or len(share) < MIN_LINE or float(share.max() - share.min()) < CPU_SPREAD:
        return np.tile(np.median(dev, axis=0), (dev.shape[0], 1))
    slope = float(sps.theilslopes(np.median(dev, axis=1), share).slope)
    intercept = np.median(dev - slope * share[:, None], axis=0)
    return intercept[None, :] + slope * share[:, None]


def block_levels(per_run: dict[int, Measured], shares: dict[str, float] | None = None
                 ) -> tuple[dict[int, dict[str, list[float]]], dict[int, dict[str, list[float]]]]:
    """Take out of every round the level of the whole block it ran in, so that what is left is each benchmark's
    time *relative to the benchmarks measured in the same rounds*.

    A block's rounds run every member within the same few seconds, so a change of the machine's speed between
    runs (measured: a whole block 4-12% faster in one run than in the run before, same code) moves all of them
    together. For round i of a run, each member's deviation from its own mean log time over all the runs given
    is taken; the round's level is the median of those deviations over the block's members; and each member's
    round is divided by it. A change of one benchmark then stays its own (the median ignores it), and a change of
    the machine cancels. Where `shares` (see `cpu_shares`) gives every member of a block and they differ, the
    level is a line in the share instead (see `_line`): a wait-bound member moves less with the CPU than a
    CPU-bound one. Takes each run's `_rounds`, by the run's id(); returns (relative rounds by run and benchmark,
    each block's level by run and block, as a factor per round, at the members' median share). Blocks with fewer
    than MIN_BLOCK members, or whose rounds do not line up, are left out (judged on absolute times)."""
    logs: dict[str, list[float]] = {}
    for rounds in per_run.values():
        for name, (_, per, _) in rounds.items():
            logs.setdefault(name, []).extend(math.log(t) for t in per if t > 0)
    centre = {name: float(np.mean(v)) for name, v in logs.items() if v}
    relative: dict[int, dict[str, list[float]]] = {}
    levels: dict[int, dict[str, list[float]]] = {}
    for run_id, rounds in per_run.items():
        blocks: dict[str, list[str]] = {}
        for name, (group, _, _) in rounds.items():
            blocks.setdefault(group, []).append(name)
        for group, names in blocks.items():
            n = {len(rounds[m][1]) for m in names}
            if len(names) < MIN_BLOCK or len(n) != 1 or any(t <= 0 for m in names for t in rounds[m][1]):
                continue
            dev = np.array([[math.log(t) - centre[m] for t in rounds[m][1]] for m in names])
            share = np.array([shares[m] for m in names]) if shares and all(m in shares for m in names) else None
            line = _line(dev, share)
            level = np.exp(np.median(line, axis=0))
            levels.setdefault(run_id, {})[group] = [float(x) for x in level]
            for m, own in zip(names, np.exp(line), strict=True):
                relative.setdefault(run_id, {})[m] = [float(t / f) for t, f in zip(rounds[m][1], own, strict=True)]
    return relative, levels
