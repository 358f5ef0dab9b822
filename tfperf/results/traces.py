"""What a profiler trace says, through xprof's own converters (no TensorFlow, no hand-parsed protobuf).

- :func:`step_summary`: the Input Pipeline Analyzer's per-step table: steps found, mean step time, the
  breakdown (input, host compute, device compute, compile, other) and the input-bound percentage.
- :func:`tf_data_stats`: from the same tool, the self time of each tf.data iterator; from the trace viewer's
  events, the values AUTOTUNE chose (``parallelism`` of ``ParallelMapV2``/``ParallelInterleaveV4``,
  ``buffer_limit`` of ``Prefetch``) and which iterators actually ran.
- :func:`top_host_ops`: framework op stats, the ops with the most self time on the host.
- :func:`collective_ms`: from the same stats, the self time of collective ops (the all-reduce of a distribution
  strategy: ``CollectiveReduceV2``, ``NcclAllReduce``, ...), waiting for the peers included.

xprof drops the first and the last marked step (they may be cut by the window's edges), so a window of N
marked steps yields N-2 complete ones.
"""

from __future__ import annotations

import json
import statistics
from functools import lru_cache
from pathlib import Path
from typing import Any


class TraceError(Exception):
    """A trace that is missing, does not parse, or holds no steps."""


def _tool(xplane: str, tool: str) -> Any:
    try:
        from xprof.convert import raw_to_tool_data
    except ImportError as exc:  # pragma: no cover - xprof is a core dependency
        raise TraceError(f"xprof is not installed ({exc})") from None
    if not Path(xplane).is_file():
        raise TraceError(f"trace file {xplane} is missing")
    try:
        data, _ = raw_to_tool_data.xspace_to_tool_data([xplane], tool, {})
        return json.loads(data)
    except Exception as exc:  # the converter raises plain RuntimeError/ValueError on bad files
        raise TraceError(f"xprof could not read {Path(xplane).name} with {tool}: {exc}") from None


@lru_cache(maxsize=256)
def _input_pipeline(xplane: str) -> Any:
    return _tool(xplane, "input_pipeline_analyzer")


_BREAKDOWN = {
    "input_ms": "infeedTimeMs",
    "host_compute_ms": "hostComputeTimeMs",
    "device_compute_ms": "deviceComputeTimeMs",
    "kernel_launch_ms": "kernelLaunchTimeMs",
    "compile_ms": "compileTimeMs",
    "other_ms": "otherTimeMs",
}


def step_summary(xplane: str | Path) -> dict[str, Any]:
    tables = _input_pipeline(str(xplane))
    steps_table = next((t for t in tables if any(c.get("id") == "stepTimeMs" for c in t.get("cols", []))), None)
    if steps_table is None:
        raise TraceError("the trace has no step table")
    ids = [c["id"] for c in steps_table["cols"]]
    rows = [{ids[i]: cell.get("v") for i, cell in enumerate(r["c"])} for r in steps_table.get("rows", [])]
    if not rows:
        return {"steps": 0}
    out: dict[str, Any] = {"steps": len(rows)}
    out["step_ms"] = statistics.fmean(float(r["stepTimeMs"]) for r in rows)
    for key, col in _BREAKDOWN.items():
        out[key] = statistics.fmean(float(r.get(col) or 0.0) for r in rows)
    out["input_percent"] = 100.0 * out["input_ms"] / out["step_ms"] if out["step_ms"] else 0.0
    out["conclusion"] = steps_table.get("p", {}).get("input_conclusion", "")
    return out


def verify(xplane: str | Path, steps_marked: int) -> dict[str, Any]:
    """The step summary, or TraceError when the trace holds fewer complete steps than it should."""
    summary = step_summary(xplane)
    expected = max(1, steps_marked - 2)
    if summary["steps"] < expected:
        raise TraceError(f"trace holds {summary['steps']} complete steps, expected at least {expected} "
                         f"of the {steps_marked} marked")
    return summary


def iterator_self_ms(xplane: str | Path) -> dict[str, float]:
    """Self time (ms) of each tf.data iterator in the window, from the Input Pipeline Analyzer; iterators are named
    by their position in the pipeline (``Iterator::Root::Prefetch::ParallelMapV2``)."""
    self_ms: dict[str, float] = {}
    for t in _input_pipeline(str(xplane)):
        ids = [c.get("id") for c in t.get("cols", [])]
        if "opName" in ids and "selfTimeInMs" in ids:
            for r in t.get("rows", []):
                cells = {ids[i]: c.get("v") for i, c in enumerate(r["c"])}
                self_ms[str(cells["opName"])] = float(cells["selfTimeInMs"] or 0.0)
    return self_ms


def tf_data_stats(xplane: str | Path) -> dict[str, Any]:
    """Iterator self times (ms) from the Input Pipeline Analyzer; AUTOTUNE's choices from the trace viewer."""
    self_ms = iterator_self_ms(xplane)
    viewer = _tool(str(xplane), "trace_viewer")
    iterators: set[str] = set()
    chosen: dict[str, dict[str, set[str]]] = {}
    for event in viewer.get("traceEvents", []):
        name = str(event.get("name", ""))
        if not name.startswith("Iterator::"):
            continue
        iterators.add(name)
        args = event.get("args") or {}
        for knob in ("parallelism", "buffer_limit", "cycle_length", "autotune"):
            if knob in args and str(args[knob]) != "unavailable":
                long_name = args.get("long_name", name)
                chosen.setdefault(long_name, {}).setdefault(knob, set()).add(str(args[knob]))
    return {
        "iterator_self_ms": self_ms,
        "iterators": sorted(iterators),
        "autotune": {k: {knob: sorted(v, key=_num) for knob, v in d.items()} for k, d in sorted(chosen.items())},
    }


def _num(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        return float("inf")


def top_host_ops(xplane: str | Path, n: int = 8) -> list[dict[str, Any]]:
    rows = _op_rows(xplane)
    host = [r for r in rows if str(r.get("host_or_device", "Host")).lower() == "host" and r.get("type") != "IDLE"]
    host.sort(key=lambda r: float(r.get("total_self_time") or 0.0), reverse=True)
    return [{"op": r.get("operation") or r.get("type"), "type": r.get("type"),
             "self_time_us": float(r.get("total_self_time") or 0.0),
             "self_percent": float(r.get("host_total_self_time_percent") or 0.0) * 100}
            for r in host[:n]]


def _op_rows(xplane: str | Path) -> list[dict[str, Any]]:
    tables = _tool(str(xplane), "framework_op_stats")
    table = tables[0] if isinstance(tables, list) and tables else tables
    ids = [c.get("id") for c in table.get("cols", [])]
    return [{ids[i]: c.get("v") for i, c in enumerate(r["c"])} for r in table.get("rows", [])]


COLLECTIVE_TYPES = ("Collective", "AllReduce", "Nccl")


def collective_ms(xplane: str | Path) -> float:
    """Self time (ms) of the collective ops in the window, on host and device."""
    return sum(float(r.get("total_self_time") or 0.0) for r in _op_rows(xplane)
               if any(k in str(r.get("type", "")) for k in COLLECTIVE_TYPES)) / 1000.0
