"""Per-scenario comparison tables, for the terminal and the HTML page.

Each measured variant gets: examples/s (from the median round), its speedup over its baseline (the variant
its scenario names) with a 95% bootstrap interval, and, for training rows, ``input_overhead =
time / bound - 1`` against its compute-only-bound variant (the row's ``bound_variant``), with its interval. Skipped and failed rows are
listed with their reasons.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from tfperf.results.store import Run

from . import stats
from .stats import ratio_interval


def text(x: object) -> str:
    """A cell as text: None and NaN (pandas' missing values) become empty."""
    return "" if missing(x) else str(x)


def missing(x: object) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def number(x: float | None, spec: str = "{:,.0f}") -> str:
    """A number formatted with `spec`, or empty when it is missing (None or NaN)."""
    return "" if missing(x) else spec.format(x)


def interval(lo: float | None, hi: float | None, spec: str = "{:.2f}") -> str:
    """"[lo, hi]" formatted with `spec`, or empty when either bound is missing."""
    return "" if missing(lo) or missing(hi) else f"[{spec.format(lo)}, {spec.format(hi)}]"


def _per_example(row) -> list[float]:
    """A row's round times divided by its examples per round, so rows of different sizes compare."""
    return [t / row.examples for t in row.times]


def _paired(r, prefix: str) -> tuple[float, float, float] | None:
    """A paired figure the run recorded (measured in interleaved rounds), or None for older results files."""
    row = r._asdict()
    if missing(row[prefix]):
        return None
    return float(row[prefix]), float(row[prefix + "_lo"]), float(row[prefix + "_hi"])


def scenario_table(run: Run, scenario: str) -> pd.DataFrame:
    frame = run.frame[(run.frame["scenario"] == scenario) & (run.frame["status"] == "ok")]
    by_variant = {r.variant: r for r in frame.itertuples()}
    found = discovered(run)
    rows = []
    for r in frame.itertuples():
        reasons = r.unstable_reasons
        row = {"variant": r.variant, "description": text(r.description), "device": text(r.device),
               "examples_per_sec": r.examples_per_sec, "median_s": r.median_s,
               "rounds": r.rounds, "baseline": text(r.baseline), "speedup": float("nan"),
               "speedup_lo": float("nan"), "speedup_hi": float("nan"), "paired": False,
               "cv": float("nan") if missing(r.cv) else r.cv,
               "warmup_s": float("nan") if missing(r.warmup_s) else r.warmup_s,
               "unstable": r.unstable is True,
               "unstable_reasons": "; ".join(reasons) if isinstance(reasons, list) else "",
               "discovered": None if missing(r.speedup_p) else f"{r.scenario}/{r.variant}:speedup" in found,
               "overhead_discovered": None if missing(r.input_overhead_p)
               else f"{r.scenario}/{r.variant}:overhead" in found}
        for key in ("workers", "mode", "dispatcher", "allreduce_share", "job_start_s", "cpu_cores_busy",
                    "client_cpu_us_per_example", "cluster_cpu_us_per_example"):  # distributed rows
            value = r._asdict()[key]
            if not missing(value):
                row[key] = value
        efficiency = _paired(r, "scaling_efficiency")
        if efficiency is not None:
            row.update(scaling_efficiency=efficiency[0], scaling_efficiency_lo=efficiency[1],
                       scaling_efficiency_hi=efficiency[2])
        base = by_variant.get(text(r.baseline)) if text(r.baseline) else None
        paired = _paired(r, "speedup")
        if paired is not None:
            row.update(speedup=paired[0], speedup_lo=paired[1], speedup_hi=paired[2], paired=True)
        elif base is not None and r.times and base.times:
            # an older results file: time per example of the baseline over this one's, two medians apart
            s, lo, hi = ratio_interval(_per_example(base), _per_example(r))
            row.update(speedup=s, speedup_lo=lo, speedup_hi=hi)
        if text(r.bound_variant):
            bound = by_variant.get(text(r.bound_variant)) if text(r.bound_variant) else None
            row["bound_examples_per_sec"] = bound.examples_per_sec if bound is not None else float("nan")
            row["bound_variant"] = text(r.bound_variant)
            row["step_time_ms"] = r.step_time_ms
            overhead = _paired(r, "input_overhead")
            if overhead is not None:
                row.update(input_overhead=overhead[0], overhead_lo=overhead[1], overhead_hi=overhead[2])
            elif bound is not None and r.times and bound.times and r.variant != r.bound_variant:
                o, lo, hi = ratio_interval(_per_example(r), _per_example(bound))
                row.update(input_overhead=o - 1, overhead_lo=lo - 1, overhead_hi=hi - 1)
            else:
                row.update(input_overhead=float("nan"), overhead_lo=float("nan"), overhead_hi=float("nan"))
        rows.append(row)
    return pd.DataFrame(rows)


def scenarios(run: Run) -> list[str]:
    """The run's scenarios in the order it measured them; the suite's own report benchmark is not one of them
    (:func:`report_cost`)."""
    names = [str(s) for s in dict.fromkeys(run.frame["scenario"].dropna())]
    kinds = dict(zip(run.frame["scenario"], run.frame["kind"], strict=True)) if "kind" in run.frame else {}
    return [n for n in names if kinds.get(n) != "report" and not (n == "report" and n not in kinds)]


def report_cost(run: Run) -> str:
    """What building this run's report cost (the suite's own benchmark), in one line, or empty."""
    rows = run.frame[(run.frame["scenario"] == "report") & (run.frame["status"] == "ok")]
    if rows.empty or missing(rows["median_s"].iloc[0]):
        return ""
    return f"building the report took {rows['median_s'].iloc[0]:.1f} s (median of {int(rows['rounds'].iloc[0])})"


def kind(run: Run, scenario: str) -> str:
    """What a scenario measures, from its rows (pipeline, dataset, training, report)."""
    if "kind" not in run.frame:
        return ""
    kinds = run.frame[run.frame["scenario"] == scenario]["kind"].dropna()
    return str(kinds.iloc[0]) if len(kinds) else ""


def resolution(run: Run) -> list[dict]:
    """The run's null pairs: one variant timed as two benchmarks in the same rounds. Their intervals are the
    smallest differences this run can tell from noise."""
    out = []
    for p in run.null_pairs:
        try:
            est, lo, hi = float(p["speedup"]), float(p["lo"]), float(p["hi"])
        except (KeyError, TypeError, ValueError):
            continue
        half = max(abs(lo - 1), abs(hi - 1)) if not (missing(lo) or missing(hi)) else float("nan")
        out.append({"scenario": p.get("scenario"), "block": p.get("block"), "variant": p.get("variant"),
                    "speedup": est, "lo": lo, "hi": hi, "resolves": half})
    return out


def resolution_lines(run: Run) -> list[str]:
    res = resolution(run)
    if not res:
        return ["resolution: this run has no null pair (an older results file, or no block was measured)"]
    finite = [r["resolves"] for r in res if not missing(r["resolves"])]
    lines = []
    if finite:
        lines.append(f"resolution: this run resolves differences above +/-{100 * max(finite):.1f}% "
                     f"(the widest null-pair interval; per block below)")
    for r in res:
        lines.append(f"  null pair {r['scenario']}/{r['variant']} against itself: {r['speedup']:.3f}x "
                     f"{interval(r['lo'], r['hi'], '{:.3f}')}")
    return lines


def not_run(run: Run) -> list[str]:
    """Selected variants (scenario/variant) that have no row: what an interrupted run did not reach."""
    done = {f"{r.scenario}/{r.variant}" for r in run.frame.itertuples()}
    return [s for s in run.meta.get("selection") or [] if isinstance(s, str) and s not in done]


def incomplete(run: Run) -> str:
    """'' for a complete run, else one line: the run was stopped (Ctrl-C, SIGTERM) or killed before it could say
    so (SIGKILL, a crash: the results file is rewritten after every variant, so its selection shows what is
    missing)."""
    missing = not_run(run)
    if not (run.meta.get("interrupted") or missing):
        return ""
    how = "was stopped" if run.meta.get("interrupted") else "was killed or crashed (it could not record why)"
    return (f"INCOMPLETE: run {run.run_id} {how} before every selected variant ran: {len(missing)} without a row"
            + (f" ({', '.join(missing[:8])}{', ...' if len(missing) > 8 else ''})" if missing else ""))


def finding(row) -> str:
    """How a speedup reads: a finding only when its interval excludes 1, it survives the run's false discovery
    control (``discovered``, where the row has a p-value) and the row passed the physics check."""
    if row.get("unstable"):
        return "unstable"
    lo, hi = row.get("speedup_lo"), row.get("speedup_hi")
    if missing(lo) or missing(hi):
        return ""
    if row.get("discovered") is False:
        return "no difference resolved"
    if lo > 1:
        return "faster"
    if hi < 1:
        return "slower"
    return "no difference resolved"


def discovered(run: Run) -> set[str]:
    """The run's comparisons (``scenario/variant:speedup`` and ``:overhead``) that survive a false discovery rate of
    stats.FDR over all of them (Benjamini-Hochberg): about 80 comparisons a run would give several findings by
    chance at 95% each."""
    p: dict[str, float] = {}
    for r in run.frame[run.frame["status"] == "ok"].itertuples():
        for what, value in (("speedup", r.speedup_p), ("overhead", r.input_overhead_p)):
            if not missing(value):
                p[f"{r.scenario}/{r.variant}:{what}"] = float(value)
    return stats.discoveries(p)


def comparisons(run: Run) -> int:
    ok = run.frame[run.frame["status"] == "ok"]
    return int(ok["speedup_p"].notna().sum() + ok["input_overhead_p"].notna().sum())


def findings(run: Run) -> list[str]:
    """The run's answers, one sentence each, per scenario: each speedup whose interval excludes 1 (and that passed
    the physics check), each input overhead whose interval excludes 0; then, in one sentence, what this run could
    not tell apart from its baseline, with the resolution it has. Nothing is stated that the intervals do not
    support."""
    res = [r for r in resolution(run) if not missing(r["resolves"])]
    widest = f"+/-{100 * max(r['resolves'] for r in res):.0f}%" if res else "an unknown margin (no null pair)"
    own = {r["scenario"]: f"+/-{100 * r['resolves']:.0f}%" for r in res}
    out: list[str] = []
    if comparisons(run):
        out.append(f"Findings hold the false discovery rate at {100 * stats.FDR:.0f}% over the run's "
                   f"{comparisons(run)} comparisons (Benjamini-Hochberg): an interval that excludes 1 alone is not one.")
    for scenario in scenarios(run):
        if kind(run, scenario) == "report":
            continue
        t = scenario_table(run, scenario)
        if t.empty:
            continue
        unresolved, unstable = [], []
        for r in t.itertuples():
            reading = finding(r._asdict())
            if reading == "unstable":
                unstable.append(r.variant)
            elif reading in ("faster", "slower"):
                out.append(f"{scenario}: {r.variant} is {r.speedup:.2f}x "
                           f"{interval(r.speedup_lo, r.speedup_hi)} the speed of {r.baseline}"
                           + (f" ({r.description})" if r.description else "") + _efficiency(r._asdict()) + ".")
            elif reading:
                unresolved.append(f"{r.variant} vs {r.baseline}")
            cells = r._asdict()  # a table's columns depend on its kind: training tables have the bound's
            overhead, overhead_lo = cells.get("input_overhead"), cells.get("overhead_lo")
            if not missing(overhead) and not missing(overhead_lo) and overhead_lo > 0 and not r.unstable \
                    and cells.get("overhead_discovered") is not False:
                bound = text(cells.get("bound_variant"))
                out.append(f"{scenario}: {r.variant} takes {100 * overhead:.0f}% "
                           f"{interval(100 * r.overhead_lo, 100 * r.overhead_hi, '{:.0f}%')} longer than its "
                           f"compute-only bound {bound}.")
        if unresolved:
            out.append(f"{scenario}: no difference resolved for {', '.join(unresolved)} (this run resolves "
                       f"differences above {own.get(scenario, widest)} here).")
        if unstable:
            out.append(f"{scenario}: not stated, the physics check marked them unstable: {', '.join(unstable)}.")
    return out


def _efficiency(cells: dict[str, Any]) -> str:
    """', scaling efficiency 95% [90%, 99%]' for a table row (its cells) measured against fewer workers, else ''
    (only tables of distributed scenarios have these columns)."""
    eff = cells.get("scaling_efficiency")
    if eff is None or missing(eff):
        return ""
    lo, hi = cells.get("scaling_efficiency_lo"), cells.get("scaling_efficiency_hi")
    band = "" if lo is None or hi is None or missing(lo) or missing(hi) else \
        " " + interval(100 * lo, 100 * hi, "{:.0f}%")
    return f", scaling efficiency {100 * eff:.0f}%{band}"


def best_variant(table: pd.DataFrame) -> str | None:
    """The fastest variant among those that compete: one scenario (one cost, one model), real choices only (a
    compute-only bound is a yardstick, not a choice; an unstable row is not a result), on the device most of its
    rows ran on."""
    if table.empty:
        return None
    t = table
    if "unstable" in t:  # a row the physics check doubts (faster than its own bound, ...) is never the best
        t = t[~t["unstable"].astype(bool)]
    if "bound_variant" in t:
        t = t[t["variant"] != t["bound_variant"]]
    if "device" in t and t["device"].notna().any():
        t = t[t["device"] == t["device"].mode().iloc[0]]
    if t.empty:
        return None
    return str(t.loc[t["examples_per_sec"].idxmax(), "variant"])


def unmeasured(run: Run) -> pd.DataFrame:
    f = run.frame[run.frame["status"] != "ok"]
    return f[["scenario", "variant", "status", "reason"]].map(text).reset_index(drop=True)


def format_text(run: Run) -> str:
    """The terminal view of a run: a table per scenario, then what was not measured."""
    out = [f"run {run.run_id}  size {run.meta.get('size', '?')}  TF {_tf(run)}"]
    if incomplete(run):
        out.append(incomplete(run))
    for crash in run.meta.get("worker_crashes") or []:
        if isinstance(crash, dict):
            out.append(f"worker crash in block {crash.get('block')}: {crash.get('cause')} (measured again in a fresh "
                       "process)")
    found = findings(run)
    if found:
        out.append("== findings")
        out.extend(f"- {line}" for line in found)
        out.append("")
    out += resolution_lines(run)
    for problem in run.problems:
        out.append(f"partial: {problem}")
    for scenario in scenarios(run):
        t = scenario_table(run, scenario)
        if t.empty:
            continue
        out.append("")
        out.append(f"== {scenario} (best: {best_variant(t)})")
        for r in t.itertuples():
            cells = [f"{r.variant:40s}", f"{r.examples_per_sec:12,.0f} ex/s"]
            if not math.isnan(r.speedup):
                cells.append(f"{r.speedup:6.2f}x {interval(r.speedup_lo, r.speedup_hi):16s} vs {r.baseline:28s} "
                             f"{finding(r._asdict())}")
            if "scaling_efficiency" in t.columns and not missing(r.scaling_efficiency):
                cells.append(f"efficiency {100 * r.scaling_efficiency:.0f}%")
            if "cpu_cores_busy" in t.columns and not missing(r.cpu_cores_busy):
                cells.append(f"CPU {r.cpu_cores_busy:.2f} cores")
            if "allreduce_share" in t.columns and not missing(r.allreduce_share):
                cells.append(f"all-reduce {100 * r.allreduce_share:.0f}% of the chief's step")
            if "input_overhead" in t.columns and not math.isnan(r.input_overhead):
                cells.append(f"overhead {100 * r.input_overhead:+.0f}% "
                             f"{interval(100 * r.overhead_lo, 100 * r.overhead_hi, '{:+.0f}')}")
            if r.unstable:
                cells.append(f"UNSTABLE: {r.unstable_reasons}")
            out.append("  ".join(cells))
    if report_cost(run):
        out.append("")
        out.append(f"the suite itself: {report_cost(run)}")
    um = unmeasured(run)
    if not um.empty:
        out.append("")
        out.append("== not measured")
        out.extend(f"{r.scenario}/{r.variant}: {r.status}: {r.reason}" for r in um.itertuples())
    return "\n".join(out)


def _tf(run: Run) -> str:
    tf = run.frame["tf_version"].dropna()
    return str(tf.iloc[0]) if not tf.empty else "?"
