"""Results folders into tidy pandas frames: a row per benchmark per run.

Reads ``<run>/benchmarks.json`` (pytest-benchmark's own format plus the ``tfperf`` section) and nothing
else; never imports TensorFlow or scenarios. A missing or corrupt file raises :class:`ReportError` with a
one-line message; a file that parses but lacks parts loads with ``problems`` listed (the report is then
marked partial).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


class ReportError(Exception):
    """A user-facing problem with the inputs: the message is the whole story."""


FIELDS = ("scenario", "variant", "baseline", "description", "status", "reason", "examples", "examples_per_sec",
          "batch_size", "device", "size", "tf_version", "suite_version", "scenario_version", "cost", "loop", "model",
          "strategy", "precision", "input", "input_variant", "bound_variant", "steps", "step_time_ms")


@dataclass
class Run:
    path: Path
    raw: dict[str, Any]
    frame: pd.DataFrame  # measured rows and unmeasured (skipped, failed) rows, one per benchmark
    problems: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return str(self.raw.get("tfperf", {}).get("run_id") or self.path.name)

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self.raw.get("tfperf") or {})

    @property
    def profiles(self) -> list[dict[str, Any]]:
        return list(self.meta.get("profiles") or [])

    @property
    def machine(self) -> dict[str, Any]:
        return dict(self.raw.get("machine_info") or {})


def _row(run_id: str, bench: dict[str, Any], measured: bool) -> dict[str, Any]:
    info = bench.get("extra_info") or {}
    row: dict[str, Any] = {"run": run_id, "name": bench.get("name"), "fullname": bench.get("fullname")}
    for key in FIELDS:
        row[key] = info.get(key)
    row["knobs"] = info.get("knobs") or {}
    row["profile"] = info.get("profile") or {}
    row["tf_data_options"] = info.get("tf_data_options") or {}
    stats = bench.get("stats") if measured else None
    if stats:
        row.update(median_s=stats.get("median"), mean_s=stats.get("mean"), stddev_s=stats.get("stddev"),
                   iqr_s=stats.get("iqr"), q1_s=stats.get("q1"), q3_s=stats.get("q3"), rounds=stats.get("rounds"),
                   min_s=stats.get("min"), max_s=stats.get("max"), times=list(stats.get("data") or []))
    else:
        row.update(median_s=None, mean_s=None, stddev_s=None, iqr_s=None, q1_s=None, q3_s=None, rounds=0,
                   min_s=None, max_s=None, times=[])
    if not row["status"]:
        row["status"] = "ok" if measured else "unknown"
    if row["variant"] is None:  # a plain pytest-benchmark row, not written by tfperf
        row["variant"] = bench.get("name")
        row["scenario"] = row["scenario"] or bench.get("group") or "other"
    return row


def load_run(path: str | Path) -> Run:
    p = Path(path)
    file = p / "benchmarks.json" if p.is_dir() else p
    if not file.exists():
        raise ReportError(f"no results file at {file}" + ("" if p.exists() else f" ({p} does not exist)"))
    try:
        raw = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ReportError(f"{file} is not valid JSON (line {exc.lineno}: {exc.msg}); the run was cut off "
                          "or the file was damaged") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"cannot read {file}: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("benchmarks"), list):
        raise ReportError(f"{file} is not a pytest-benchmark results file (no 'benchmarks' list)")
    run_id = str((raw.get("tfperf") or {}).get("run_id") or file.parent.name)
    problems: list[str] = []
    if "tfperf" not in raw:
        problems.append("no tfperf section: written by plain pytest-benchmark, so no skipped rows or traces")
    rows = []
    for bench in raw["benchmarks"]:
        if not isinstance(bench, dict):
            problems.append("a benchmark entry is not an object and was ignored")
            continue
        rows.append(_row(run_id, bench, measured=True))
    for bench in (raw.get("tfperf") or {}).get("unmeasured") or []:
        if isinstance(bench, dict):
            rows.append(_row(run_id, bench, measured=False))
    frame = pd.DataFrame(rows, columns=None if rows else ["run", "name", *FIELDS, "median_s", "times"])
    if frame.empty:
        problems.append("the run holds no benchmark rows")
    return Run(path=file.parent, raw=raw, frame=frame, problems=problems)


def load_runs(paths: list[str | Path]) -> pd.DataFrame:
    """Many runs, one frame (a `run` column tells them apart)."""
    return pd.concat([load_run(p).frame for p in paths], ignore_index=True)
