"""What the gate (`tfperf compare`, one run a side) flags on real default runs whose truth is known, with and
without its false discovery control. `python scripts/gate_eval.py [RUNS_DIR]` (default docs/runs).

The runs (docs/runs/gate/*, docs/runs/b*; 2-vCPU VM, TF 2.21, quiet, one at a time):
- same measuring code: r1 r2 (de61ebe), f1 f2 (2c464d7), g1 g2 (55b1ea8), h1 h2 (4359060), x1 x2 x3 (7a9a594:
  their stored speedup intervals carry the run level, which the gate does not read), b540 b372 b3 (before the
  reference workload);
- every benchmark 20% slower: u20 (``TFPERF_SLOW='*:20'``, scripts/slowdown_plugin.py);
- the light block 15% slower: s15 (whole run), l15a l15b (``-k light/``, ``TFPERF_SLOW='light/*:15'``);
- one map 10% slower: c10a c10b (``-k cpu/``, ``TFPERF_SLOW='cpu/parallel_prefetch:10'``).
Issue 25's targets: two runs of one code flag nothing; every benchmark 20% slower, or a whole block 15% slower,
flagged; the 10% slower map flagged alone in at least 8 of 10 single-run pairs. Then the same with three base runs
(every choice of three of f1 f2 g1 g2 h1 h2) against one new run: the layout of a CI that keeps its main branch's
last runs.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

from tfperf.analysis.gate import FLAGS, compare
from tfperf.results.store import load_run


def main(root: Path) -> None:
    names = ["r1", "r2", "f1", "f2", "g1", "g2", "h1", "h2", "x1", "x2", "x3", "u20", "s15", "l15a", "l15b", "c10a",
             "c10b"]
    runs = {n: load_run(root / "gate" / n) for n in names}
    runs.update({n: load_run(root / n) for n in ("b540", "b372", "b3")})
    bases = ["r1", "r2", "f1", "f2", "g1", "g2", "h1", "h2", "x1", "x2", "x3"]

    def section(title: str, pairs: list[tuple[str, str]], target: str | None = None) -> None:
        print(f"## {title}")
        counts = {"any": [0, 0], "target": [0, 0], "alone": [0, 0]}
        for a, b in pairs:
            flagged = []
            for k, control in enumerate((False, True)):
                c = compare(runs[a], runs[b], multiplicity=control)
                f = [str(r.benchmark) for r in c.rows.itertuples() if r.flag in FLAGS]
                flagged.append(f)
                counts["any"][k] += bool(f)
                counts["target"][k] += target in f
                counts["alone"][k] += f == [target]
            line = f"{a:>5s} -> {b:<5s} exit {c.exit_code}; without the control: {flagged[0]}; with: {flagged[1]}"
            if target:
                r = c.rows.set_index("benchmark").loc[target]
                line += f"; {target} {100 * r.change:+.1f}% [{100 * r.lo:+.1f}%, {100 * r.hi:+.1f}%] q {r.q:.3f}"
            print(line)
        print(f"{len(pairs)} pairs: any flag {counts['any'][0]} without the control, {counts['any'][1]} with"
              + (f"; {target} flagged {counts['target'][0]} / {counts['target'][1]}, alone {counts['alone'][0]} / "
                 f"{counts['alone'][1]}" if target else "") + "\n")

    section("same measuring code", [("r1", "r2"), ("b540", "b372"), ("b540", "b3"), ("b372", "b3")]
            + list(itertools.combinations(["f1", "f2", "g1", "g2", "h1", "h2", "x1", "x2", "x3"], 2)))
    section("every benchmark 20% slower", [(b, "u20") for b in bases])
    section("light block 15% slower", [(b, s) for s in ("s15", "l15a", "l15b") for b in bases], "light (whole block)")
    section("one map 10% slower", [(b, s) for s in ("c10a", "c10b") for b in bases], "cpu/parallel_prefetch")

    # A CI layout: the last few runs of the main branch as the base side, one new run. Their spread between runs
    # measures each benchmark's own run-to-run move, which one run a side cannot see.
    six = ["f1", "f2", "g1", "g2", "h1", "h2"]

    def history(title: str, news: list[str], target: str | None = None, leave_out: bool = False) -> None:
        print(f"## three base runs, one new: {title}")
        n = hit = alone = anything = 0
        for new in news:
            pool = [r for r in six if r != new] if leave_out else six
            for trio in itertools.combinations(pool, 3):
                c = compare([runs[b] for b in trio], [runs[new]])
                f = [str(r.benchmark) for r in c.rows.itertuples() if r.flag in FLAGS]
                n += 1
                anything += bool(f)
                hit += target in f
                alone += f == [target]
                if f and f != [target]:
                    print(f"{'+'.join(trio)} -> {new}: {f}")
        print(f"{n} comparisons: any flag {anything}" + (f"; {target} flagged {hit}, alone {alone}" if target else "")
              + "\n")

    history("same measuring code (each of six runs against three of the other five)", six, leave_out=True)
    history("every benchmark 20% slower", ["u20"])
    history("light block 15% slower", ["s15", "l15a", "l15b"], "light (whole block)")
    history("one map 10% slower", ["c10a", "c10b"], "cpu/parallel_prefetch")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/runs"))
