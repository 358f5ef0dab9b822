"""The answer of an A/B run (:mod:`tfperf.api.ab`): per benchmark, did the new side change its time?

Every new-side row was measured in the same block, rounds and processes as its base copy, so its speedup over
the base copy (computed where it was measured, :func:`tfperf.measure.rows.fill`: a t interval on process means
with the block's process-level component, see docs/statistics.md) is the change, with nothing of the machine's
drift between two runs in it. Here:

- ``change`` = new time per example over base time per example, minus one (+5%: 5% slower), with the 95%
  interval of that ratio;
- ``limit``, the detection limit: the interval's half-width (in ratio terms): a change smaller than it cannot
  be told from noise in this run;
- the verdict: the run's comparisons hold a false discovery rate of 5% (Benjamini-Hochberg over every
  benchmark's p); a discovery is a ``regression`` (slower) or an ``improvement`` (faster), else ``no change
  resolved``. A row its own run marked unstable (measured while other processes used the CPU, ...) is never a
  verdict;
- the exit code: 1 when a regression's estimated change exceeds the threshold (default 5%), 2 when nothing
  could be compared, else 0.

:func:`split` writes each side as a results folder of its own (pytest-benchmark JSON), so ``tfperf compare`` and
``tfperf report`` read either side.
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tfperf.api.ab import BASE_SUFFIX
from tfperf.results.store import Run, atomic_write

from . import stats, tables

THRESHOLD = 0.05
VERDICTS = ("regression", "improvement", "no change resolved", "unstable", "not measured")


@dataclass
class Answer:
    run: Run
    threshold: float
    rows: pd.DataFrame  # one per paired benchmark (see COLUMNS)
    notes: list[str] = field(default_factory=list)  # what was not paired, and why
    sides: dict[str, dict[str, Any]] = field(default_factory=dict)  # base/new: spec and versions

    @property
    def regressions(self) -> pd.DataFrame:
        return self.rows[(self.rows["verdict"] == "regression") & (self.rows["change"] > self.threshold)]

    @property
    def exit_code(self) -> int:
        if not (self.rows["verdict"].isin(VERDICTS[:3])).any():
            return 2
        return 1 if len(self.regressions) else 0


COLUMNS = ("benchmark", "scenario", "variant", "base_us", "new_us", "change", "lo", "hi", "limit", "p", "verdict",
           "reason")


def _reasons(r: Any) -> list[str]:
    return [str(x) for x in r.unstable_reasons] if isinstance(r.unstable_reasons, list) else []


def _per_example_us(r: Any) -> float:
    return 1e6 * r.median_s / r.examples if r.examples else math.nan


def judge(run: Run, threshold: float = THRESHOLD, notes: list[str] | None = None,
          sides: dict[str, dict[str, Any]] | None = None) -> Answer:
    f = run.frame
    new = f[f["ab_side"] == "new"]
    base = {(r.scenario, r.ab_variant): r for r in f[f["ab_side"] == "base"].itertuples()}
    out = []
    for r in new.itertuples():
        b = base.get((r.scenario, r.ab_variant))
        row = {"benchmark": f"{r.scenario}/{r.ab_variant}", "scenario": r.scenario, "variant": r.ab_variant,
               "base_us": math.nan, "new_us": math.nan, "change": math.nan, "lo": math.nan, "hi": math.nan,
               "limit": math.nan, "p": math.nan, "verdict": "not measured", "reason": ""}
        if b is None or b.status != "ok" or r.status != "ok":
            bad = r if r.status != "ok" else b
            row["reason"] = f"{'new' if bad is r else 'base'}: {bad.status if bad is not None else 'missing'}" + (
                f" ({bad.reason})" if bad is not None and bad.reason else "")
            out.append(row)
            continue
        row.update(base_us=_per_example_us(b), new_us=_per_example_us(r))
        if not tables.missing(r.speedup) and r.speedup > 0:
            row["change"] = 1 / r.speedup - 1
            if not tables.missing(r.speedup_lo) and r.speedup_lo > 0:
                row.update(lo=1 / r.speedup_hi - 1, hi=1 / r.speedup_lo - 1,
                           limit=math.sqrt(r.speedup_hi / r.speedup_lo) - 1)
            row["p"] = r.speedup_p
        if r.unstable or b.unstable:
            row["verdict"] = "unstable"
            row["reason"] = "; ".join(_reasons(r) + _reasons(b))
        else:
            row["verdict"] = "no change resolved"
        out.append(row)
    rows = pd.DataFrame(out, columns=list(COLUMNS))
    judged = {x.benchmark: x.p for x in rows.itertuples() if x.verdict == "no change resolved"}
    found = stats.discoveries(judged)
    for i, x in rows.iterrows():
        if x.benchmark in found:
            rows.at[i, "verdict"] = "regression" if x.change > 0 else "improvement"
    return Answer(run, threshold, rows, list(notes or []), dict(sides or {}))


def summary(a: Answer) -> list[str]:
    """One line per scenario: what changed, and the geometric mean change of its resolved benchmarks."""
    lines = []
    for scenario, g in a.rows.groupby("scenario", sort=False):
        counts = g["verdict"].value_counts()
        ok = g[g["verdict"].isin(VERDICTS[:3]) & g["change"].notna()]
        mean = math.exp(sum(math.log1p(c) for c in ok["change"]) / len(ok)) - 1 if len(ok) else math.nan
        parts = [f"{counts[v]} {v}" for v in VERDICTS if counts.get(v)]
        lines.append(f"{scenario}: {', '.join(parts)}; geometric mean change {tables.number(100 * mean, '{:+.1f}%') or '-'}")
    return lines


def resolution(a: Answer) -> str:
    """The run's null pair(s): the same base variant measured twice in the same rounds."""
    pairs = a.run.null_pairs
    if not pairs:
        return "no null pair measured"
    moves = [abs(1 / p["speedup"] - 1) for p in pairs if p.get("speedup")]
    return (f"null pair (a base variant against itself, same rounds): {len(pairs)} measured, "
            f"largest move {100 * max(moves):.1f}%" if moves else "null pair: not measured")


def headline(a: Answer) -> str:
    judged = a.rows[a.rows["verdict"].isin(VERDICTS[:3])]
    reg = (a.rows["verdict"] == "regression").sum()
    imp = (a.rows["verdict"] == "improvement").sum()
    beyond = len(a.regressions)
    limit = judged["limit"].median() if len(judged) else math.nan
    return (f"{reg} regression(s) ({beyond} beyond the {100 * a.threshold:g}% threshold), {imp} improvement(s), "
            f"{len(judged) - reg - imp} with no change resolved, of {len(a.rows)} paired benchmarks; median detection "
            f"limit {tables.number(100 * limit, '{:.1f}%')}")


def format_text(a: Answer) -> str:
    lines = [f"tfperf ab: base {a.sides.get('base', {}).get('spec', 'BASE')}  ->  new "
             f"{a.sides.get('new', {}).get('spec', 'NEW')}", headline(a)]
    lines += summary(a)
    lines.append("change: new time per example over base, minus one (+: slower), both measured in the same rounds; "
                 "limit: the smallest change this run can tell from noise")
    lines.append(f"{'benchmark':44s} {'base us/ex':>10s} {'new us/ex':>10s} {'change':>8s} {'95% interval':>18s} "
                 f"{'limit':>6s} {'p':>6s}  verdict")
    for r in a.rows.itertuples():
        lines.append(f"{r.benchmark[:44]:44s} {tables.number(r.base_us, '{:10.2f}'):>10s} "
                     f"{tables.number(r.new_us, '{:10.2f}'):>10s} {tables.number(100 * r.change, '{:+7.1f}%'):>8s} "
                     f"{interval_text(r.lo, r.hi):>18s} {tables.number(100 * r.limit, '{:5.1f}%'):>6s} "
                     f"{tables.number(r.p, '{:6.3f}'):>6s}  {r.verdict}" + (f"  ({r.reason})" if r.reason else ""))
    lines += [f"not paired: {n}" for n in a.notes]
    lines.append(resolution(a))
    return "\n".join(lines)


def interval_text(lo: float, hi: float) -> str:
    """A change's interval in percent (the one format of tables.interval), "-" where it is missing."""
    return tables.interval(100 * lo, 100 * hi, "{:+.1f}%") or "-"


def to_json(a: Answer) -> dict[str, Any]:
    def clean(x: Any) -> Any:
        return None if isinstance(x, float) and not math.isfinite(x) else x

    return {"threshold": a.threshold, "exit_code": a.exit_code, "headline": headline(a), "summary": summary(a),
            "sides": a.sides, "not_paired": a.notes, "resolution": resolution(a),
            "benchmarks": [{k: clean(v) for k, v in row.items()} for row in a.rows.to_dict("records")]}


_NAME = re.compile(r"\[(.*)\]$")
_PAIR_FIELDS = ("speedup", "speedup_lo", "speedup_hi", "speedup_p", "interval_method", "pairs", "unstable_reasons")


def _side_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """A row as its side's own run would have it: its own variant name, no A/B pair."""
    e = copy.deepcopy(entry)
    info = e.setdefault("extra_info", {})
    own, scenario = info.get("ab_variant"), info.get("scenario")
    info["variant"] = own
    info["baseline"] = None
    info["scenario_version"] = info.get("ab_side_version")
    for key in _PAIR_FIELDS:
        info.pop(key, None)
    info["unstable"] = False
    for key in ("name", "fullname"):
        if isinstance(e.get(key), str):
            e[key] = _NAME.sub(f"[{scenario}/{own}]", e[key])
    return e


def split(run: Run, out: Path | None = None) -> dict[str, Path]:
    """RUN/base and RUN/new: each side's rows as a results folder of its own (read by compare and report)."""
    raw = run.raw
    meta = raw.get("tfperf") or {}
    folders = {}
    for side in ("base", "new"):
        doc = {k: v for k, v in raw.items() if k not in ("benchmarks", "tfperf")}
        doc["benchmarks"] = [_side_entry(b) for b in raw.get("benchmarks", [])
                             if (b.get("extra_info") or {}).get("ab_side") == side]
        section = dict(meta)
        section["run_id"] = f"{meta.get('run_id') or run.path.name}-{side}"
        section["unmeasured"] = [_side_entry(u) for u in meta.get("unmeasured") or [] if (u.get("extra_info") or {}).get("ab_side") == side]
        versions = {}
        for b in doc["benchmarks"]:
            versions[b["extra_info"]["scenario"]] = b["extra_info"]["scenario_version"]
        section["scenario_versions"] = versions
        section["profiles"] = [p for p in meta.get("profiles") or []
                               if str(p.get("variant", "")).endswith(BASE_SUFFIX) == (side == "base")]
        doc["tfperf"] = section
        folder = (out or run.path) / side
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / "benchmarks.json", json.dumps(doc, indent=1))
        folders[side] = folder
    return folders
