"""The answer first: per scenario, a verdict, the resolved changes worth making ranked by gain (each with the knob
that makes it), and one line of what made no resolved difference. The page opens with it and the terminal ends
with it; the full findings and the tables follow.

Only what the run's findings support is said (:func:`tables.finding`: an interval that excludes no change, kept by
the false discovery control, from a row that passed the physics check). A training scenario's verdict comes from
its input overheads (a step fed by the pipeline against the same step fed from memory): input-bound by how much,
or the model itself dominating.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tfperf.results.store import Run

from . import tables

TOP = 3  # changes listed per scenario
SMALL_OVERHEAD = 0.10  # an input whose overhead's interval stays below this is not what to change


@dataclass
class Answer:
    scenario: str
    kind: str
    verdict: str
    changes: list[str] = field(default_factory=list)  # ranked by gain, best first
    no_difference: str = ""  # one line, or ""


def _knob_change(run: Run, scenario: str, variant: str, baseline: str) -> str:
    """What the variant sets differently from its baseline, as code: `num_parallel_calls=AUTOTUNE, prefetch=...`."""
    f = run.frame[(run.frame["scenario"] == scenario)]
    knobs = {r.variant: r.knobs for r in f.itertuples() if isinstance(r.knobs, dict)}
    mine, theirs = knobs.get(variant, {}), knobs.get(baseline, {})
    diff = [f"{k}={_value(v)}" for k, v in mine.items() if theirs.get(k) != v]
    return ", ".join(diff)


def _value(v: Any) -> str:
    return "AUTOTUNE" if v == -1 else repr(v)


def answer(run: Run, scenario: str) -> Answer | None:
    t = tables.scenario_table(run, scenario)
    kind = tables.kind(run, scenario)
    if t.empty or kind == "report":
        return None
    gains, flat = [], []
    for r in t.itertuples():
        reading = tables.finding(r._asdict())
        cells = r._asdict()
        if cells.get("bound_variant") and cells.get("bound_variant") == r.variant:
            continue  # a compute-only bound is a yardstick, not a choice
        if reading == "faster":
            gains.append(r)
        elif reading == "no difference resolved":
            flat.append(f"{r.variant} vs {r.baseline}")
    gains.sort(key=lambda r: -r.speedup_lo)  # ranked by the gain the interval guarantees
    changes = []
    for r in gains[:TOP]:
        knob = _knob_change(run, scenario, r.variant, r.baseline)
        changes.append(f"{r.variant}: {r.speedup:.2f}x {tables.interval(r.speedup_lo, r.speedup_hi)} the speed of "
                       f"{r.baseline}" + (f" (set {knob})" if knob else ""))
    best = tables.best_variant(t)
    verdict = f"fastest measured: {best}" if best else \
        "no fastest variant named: every measured row is unstable (see the findings)"
    if "input_overhead" in t.columns:
        over = t[t["input_overhead"].notna() & ~t["unstable"]]
        bound = [r for r in over.itertuples() if r.overhead_lo > 0 and r.overhead_discovered is not False]
        if bound:
            worst = max(bound, key=lambda r: r.input_overhead)
            verdict = (f"input-bound: {worst.variant} takes {100 * worst.input_overhead:.0f}% "
                       f"{tables.interval(100 * worst.overhead_lo, 100 * worst.overhead_hi, '{:.0f}%')} longer than "
                       f"its compute-only bound {worst.bound_variant}; " + verdict)
        elif len(over):
            top = over["overhead_hi"].max()
            if top <= SMALL_OVERHEAD:
                verdict = (f"the model dominates: every input is within {100 * top:.0f}% of its compute-only bound; "
                           "change the model or the loop, not the input; " + verdict)
            else:
                verdict = (f"input overhead not resolved (intervals reach {100 * top:.0f}% over the bound: run a "
                           "larger size to tell); " + verdict)
    no_diff = f"no resolved difference: {', '.join(flat)}" if flat else ""
    return Answer(scenario, kind, verdict, changes, no_diff)


def answers(run: Run) -> list[Answer]:
    return [a for a in (answer(run, s) for s in tables.scenarios(run)) if a is not None]


def lines(run: Run) -> list[str]:
    """The answers as terminal lines."""
    out = []
    for a in answers(run):
        out.append(f"{a.scenario}: {a.verdict}")
        out += [f"  {i}. {c}" for i, c in enumerate(a.changes, 1)]
        if a.no_difference:
            out.append(f"  {a.no_difference}")
    return out
