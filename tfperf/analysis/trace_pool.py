"""Per-variant trace figures for a run, derived through xprof from the traces the run captured.

Conversions run in a small process pool (one xprof conversion per trace is CPU-bound and independent).
A trace that is missing or unreadable becomes a note on that variant; the report is then partial.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from tfperf.results import traces


def _analyse(args: tuple[str, str, bool]) -> dict[str, Any]:
    key, xplane, with_tf_data = args
    out: dict[str, Any] = {"key": key}
    try:
        out["steps"] = traces.step_summary(xplane)
        out["iterators"] = traces.iterator_self_ms(xplane)  # every trace: the diagnosis names the slowest stage
        if with_tf_data:
            out["tf_data"] = traces.tf_data_stats(xplane)
        else:
            out["top_ops"] = traces.top_host_ops(xplane)
    except traces.TraceError as exc:
        out["error"] = str(exc)
    return out


def analyse_run(run_dir: Path, profiles: list[dict[str, Any]], workers: int = 2) -> tuple[dict[str, dict], list[str]]:
    """{scenario/variant: figures} for each ok profile, and the problems met on the way."""
    jobs, problems = [], []
    for p in profiles:
        if not isinstance(p, dict):
            problems.append("a profile record is not an object and was ignored")
            continue
        key = f"{p.get('scenario')}/{p.get('variant')}"
        if p.get("status") != "ok":
            problems.append(f"profile of {key} failed at capture: {p.get('reason', 'no reason given')}")
            continue
        # tf.data's iterators for input-pipeline scenarios, the top host ops for the rest (the record's kind)
        jobs.append((key, str(run_dir / str(p.get("trace"))), p.get("kind") in ("pipeline", "dataset")))
    results: dict[str, dict] = {}
    if not jobs:
        return results, problems
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            done = list(pool.map(_analyse, jobs))
    else:
        done = [_analyse(j) for j in jobs]
    for d in done:
        if "error" in d:
            problems.append(f"trace of {d['key']}: {d['error']}")
        else:
            results[d["key"]] = d
    return results, problems
