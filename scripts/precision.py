"""Precision of the suite, from results folders alone: `python scripts/precision.py RUN_A RUN_B [RUN ...]`.

Prints, for the targets of issue 8: the median and 90th percentile of the change of every speedup (variant
over its baseline, and input over its bound) between consecutive runs, overall and per scenario; each run's
median coefficient of variation of a benchmark's rounds; the null pairs' intervals; the rows marked unstable,
and whether any of them is presented as a finding; and each run's wall time from its rows. Reads
benchmarks.json only.
"""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tfperf.analysis import tables  # noqa: E402
from tfperf.results.store import load_run  # noqa: E402


def speedups(run) -> dict[str, float]:
    out = {}
    for scenario in run.frame["scenario"].dropna().unique():
        t = tables.scenario_table(run, scenario)
        for r in t.itertuples():
            if not math.isnan(r.speedup):
                out[f"{scenario}/{r.variant} vs {r.baseline}"] = r.speedup
            overhead = getattr(r, "input_overhead", float("nan"))
            if not math.isnan(overhead):
                out[f"{scenario}/{r.variant} vs bound"] = 1 + overhead
    return out


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def main(paths: list[str]) -> int:
    runs = [load_run(p) for p in paths]
    for run in runs:
        ok = run.frame[(run.frame["status"] == "ok") & (run.frame["scenario"] != "report")]
        cvs = [c for c in ok["cv"] if c is not None and not (isinstance(c, float) and math.isnan(c))]
        unstable = ok[ok["unstable"] == True]  # noqa: E712 - a column of True/False/None
        print(f"run {run.run_id}: {len(ok)} rows, processes {run.meta.get('processes')}, "
              f"median CV of rounds {100 * statistics.median(cvs):.1f}% "
              f"({sum(c > 0.03 for c in cvs)} of {len(cvs)} above 3%, {sum(c > 0.10 for c in cvs)} above 10%)")
        for line in tables.resolution_lines(run):
            print("  " + line)
        for r in unstable.itertuples():
            print(f"  unstable (not a finding): {r.variant}: {'; '.join(r.unstable_reasons or [])}")
        findings = 0
        for scenario in ok["scenario"].unique():
            t = tables.scenario_table(run, scenario)
            findings += sum(1 for r in t.itertuples() if r.unstable and tables.finding(r._asdict()) != "unstable")
        print(f"  physics-check violations presented as findings: {findings}")
    for a, b in zip(runs, runs[1:], strict=False):
        sa, sb = speedups(a), speedups(b)
        shared = sorted(set(sa) & set(sb))
        changes = [abs(math.log(sb[k] / sa[k])) for k in shared]
        moved = sorted(((abs(math.log(sb[k] / sa[k])), k) for k in shared), reverse=True)[:5]
        print(f"{a.run_id} -> {b.run_id}: {len(shared)} speedups; change median {100 * math.expm1(pct(changes, .5)):.1f}%, "
              f"90th percentile {100 * math.expm1(pct(changes, .9)):.1f}%, max {100 * math.expm1(max(changes)):.1f}%")
        for c, k in moved:
            print(f"  {100 * math.expm1(c):5.1f}%  {k}: {sa[k]:.3f} -> {sb[k]:.3f}")
        by_block: dict[str, list[float]] = {}
        for k in shared:
            by_block.setdefault(k.split("/")[0], []).append(abs(math.log(sb[k] / sa[k])))
        print("  by scenario: " + ", ".join(
            f"{name} {100 * math.expm1(pct(v, .5)):.1f}% / {100 * math.expm1(pct(v, .9)):.1f}% (n={len(v)})"
            for name, v in sorted(by_block.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
