"""Do two runs of one measuring code agree? `python scripts/findings_agreement.py RUN_A RUN_B`.

Prints, for each run, how many of its null pairs (a variant timed twice in the same rounds) hold 1 in their 95%
interval, and, for each direction, the findings of one run (a speedup that tables.finding calls faster or slower)
that the other run contradicts: the sign flipped, or the other run's interval excludes the first's estimate.
Issue 25's targets: null pairs cover 1 at the nominal rate; at most 1 contradicted finding per pair of runs.

What to expect: when both runs' 95% intervals are right, the other run's interval still excludes this run's
estimate for about 16.5% of findings (the difference of two estimates has sqrt(2) times the spread of one, and
P(|Z| > 1.96 / sqrt(2)) = 0.166), so "at most 1 of 50" cannot be met by correct intervals; the two intervals
are disjoint for about 0.6% (P(|Z| > 1.96 sqrt(2))), and a sign flip of a real finding is rarer still. The
summary line prints all three counts beside what calibrated intervals would give.
"""

from __future__ import annotations

import sys

from scipy import stats as sps

from tfperf.analysis import tables
from tfperf.results.store import load_run

EXCLUDES = float(2 * sps.norm.sf(1.959964 / 2 ** 0.5))  # 0.166
DISJOINT = float(2 * sps.norm.sf(1.959964 * 2 ** 0.5))  # 0.0056


def readings(run) -> dict[str, dict]:
    out = {}
    for scenario in tables.scenarios(run):
        t = tables.scenario_table(run, scenario)
        for r in t.to_dict("records"):
            if not tables.missing(r.get("speedup_lo")):
                out[f"{scenario}/{r['variant']}"] = {**r, "reading": tables.finding(r)}
    return out


def main(a_path: str, b_path: str) -> int:
    runs = [load_run(a_path), load_run(b_path)]
    for run in runs:
        pairs = run.null_pairs
        held = sum(1 for p in pairs if p.get("lo") is not None and p["lo"] <= 1 <= p["hi"])
        print(f"{run.run_id}: null pairs holding 1: {held} of {len(pairs)}")
        for p in pairs:
            print(f"  {p['scenario']}/{p['variant']}: {p['speedup']:.3f} [{p['lo']:.3f}, {p['hi']:.3f}]")
    a, b = (readings(r) for r in runs)
    for (name_x, x), (name_y, y) in (((runs[0].run_id, a), (runs[1].run_id, b)),
                                     ((runs[1].run_id, b), (runs[0].run_id, a))):
        found = {k: r for k, r in x.items() if r["reading"] in ("faster", "slower")}
        against, disjoint, flips = [], 0, 0
        for k, r in found.items():
            o = y.get(k)
            if o is None:
                continue
            flipped = (r["speedup"] > 1) != (o["speedup"] > 1)
            excludes = not (o["speedup_lo"] <= r["speedup"] <= o["speedup_hi"])
            disjoint += not (o["speedup_lo"] <= r["speedup_hi"] and r["speedup_lo"] <= o["speedup_hi"])
            flips += flipped
            if flipped or excludes:
                against.append(f"{k}: {r['speedup']:.2f}x in {name_x}, {o['speedup']:.2f}x "
                               f"[{o['speedup_lo']:.2f}, {o['speedup_hi']:.2f}] in {name_y}"
                               + (" (sign flipped)" if flipped else ""))
        print(f"findings of {name_x}: {len(found)}; contradicted by {name_y}: {len(against)}")
        paired = sum(1 for k in found if k in y)
        print(f"  of {paired} in both: estimate outside the other's interval {len(against)} (calibrated intervals: "
              f"about {paired * EXCLUDES:.1f}), intervals disjoint {disjoint} (about {paired * DISJOINT:.1f}), "
              f"sign flipped {flips}")
        for line in against:
            print(f"  {line}")
    run_level(runs, a, b)
    return 0


def run_level(runs, a: dict, b: dict) -> None:
    """Per kind of scenario: the standard deviation between the two runs' log speedups that their intervals do not
    account for, sqrt(max(0, (mean d^2 - mean(se_a^2 + se_b^2)) / 2)), each se read off its 95% interval."""
    import math

    def se(r: dict) -> float:
        return (math.log(r["speedup_hi"]) - math.log(r["speedup_lo"])) / (2 * 1.959964)

    kinds: dict[str, list[tuple[float, float]]] = {}
    for k, x in a.items():
        y = b.get(k)
        if y is None or x.get("unstable") or y.get("unstable") or min(x["speedup_lo"], y["speedup_lo"]) <= 0:
            continue
        d = math.log(x["speedup"]) - math.log(y["speedup"])
        kinds.setdefault(tables.kind(runs[0], k.split("/")[0]), []).append((d * d, se(x) ** 2 + se(y) ** 2))
    for kind, v in sorted(kinds.items()):
        d2, s2 = sum(x for x, _ in v) / len(v), sum(s for _, s in v) / len(v)
        print(f"run-level sd, {kind}: {100 * math.sqrt(max(0.0, (d2 - s2) / 2)):.1f}% over {len(v)} comparisons "
              f"(rms difference {100 * math.sqrt(d2):.1f}%, of which the intervals hold {100 * math.sqrt(s2):.1f}%)")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__.splitlines()[0], file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
