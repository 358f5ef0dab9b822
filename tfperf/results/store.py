"""Results folders into tidy pandas frames: a row per benchmark per run.

Reads ``<run>/benchmarks.json`` (pytest-benchmark's own format plus the ``tfperf`` section) and nothing
else; never imports TensorFlow or scenarios. A missing or corrupt file raises :class:`ReportError` with a
one-line message; a file that parses but lacks parts loads with ``problems`` listed (the report is then
marked partial).
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .schema import COLUMNS, FIELDS, NUMERIC, OBJECTS, STATS


class ReportError(Exception):
    """A user-facing problem with the inputs: the message is the whole story."""


@dataclass
class Run:
    path: Path
    raw: dict[str, Any]
    frame: pd.DataFrame  # measured rows and unmeasured (skipped, failed) rows, one per benchmark
    problems: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id") or self.path.name)

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self.raw.get("tfperf") or {})

    @property
    def profiles(self) -> list[dict[str, Any]]:
        return list(self.meta.get("profiles") or [])

    @property
    def null_pairs(self) -> list[dict[str, Any]]:
        return [p for p in self.meta.get("null_pairs") or [] if isinstance(p, dict)]

    @property
    def references(self) -> dict[str, dict[str, Any]]:
        """The suite's reference workload per block (tfperf.measure.reference): its rounds, their processes and
        examples per round; empty for runs written before it."""
        refs = self.meta.get("references")
        return {k: v for k, v in refs.items() if isinstance(v, dict)} if isinstance(refs, dict) else {}

    @property
    def machine(self) -> dict[str, Any]:
        return dict(self.raw.get("machine_info") or {})


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _row(run_id: str, bench: dict[str, Any], measured: bool, problems: list[str], file: Path) -> dict[str, Any]:
    info = bench.get("extra_info")
    if not isinstance(info, dict):
        if info is not None:
            problems.append(f"{file}: {bench.get('name')}: extra_info is not an object; ignored")
        info = {}
    row: dict[str, Any] = {"run": run_id, "name": bench.get("name"), "fullname": bench.get("fullname")}
    for key in FIELDS:
        row[key] = info.get(key)
    for key in NUMERIC:
        if row.get(key) is not None and not _number(row[key]):
            problems.append(f"{file}: {bench.get('name')}: extra_info.{key} is not a number ({row[key]!r}); ignored")
            row[key] = None
    for key in OBJECTS:
        value = info.get(key)
        row[key] = value if isinstance(value, dict) else {}
    process = info.get("round_process")
    row["round_process"] = list(process) if isinstance(process, list) and all(_number(p) for p in process) else []
    stats = bench.get("stats") if measured else None
    if measured and stats is not None:
        data = stats.get("data") if isinstance(stats, dict) else None
        if not (isinstance(data, list) and data and all(_number(t) and t > 0 for t in data)
                and all(_number(stats.get(k)) for k in STATS if k in stats)):
            problems.append(f"{file}: {bench.get('name')}: stats are malformed (stats.data must be a list of "
                            "positive numbers); the row is listed as not measured")
            stats = None
            row["status"], row["reason"] = "failed", "malformed stats in the results file"
    if stats:
        row.update(median_s=stats.get("median"), mean_s=stats.get("mean"), stddev_s=stats.get("stddev"),
                   iqr_s=stats.get("iqr"), q1_s=stats.get("q1"), q3_s=stats.get("q3"), rounds=stats.get("rounds"),
                   min_s=stats.get("min"), max_s=stats.get("max"), times=list(stats.get("data") or []))
    else:
        row.update(median_s=None, mean_s=None, stddev_s=None, iqr_s=None, q1_s=None, q3_s=None, rounds=0,
                   min_s=None, max_s=None, times=[])
    if len(row["round_process"]) != len(row["times"]):
        row["round_process"] = [0] * len(row["times"])
    if row["examples"] is None and row["times"]:
        row["examples"] = 1  # a plain pytest-benchmark row: one "example" per round
    if row["examples_per_sec"] is None and row["times"] and row["median_s"]:
        row["examples_per_sec"] = row["examples"] / row["median_s"]
    if not row["status"]:
        row["status"] = "ok" if row["times"] else "unknown"
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
    head = raw.get("tfperf")
    run_id = str((head.get("run_id") if isinstance(head, dict) else None) or file.parent.name)
    problems: list[str] = []
    if "tfperf" not in raw:
        problems.append("no tfperf section: written by plain pytest-benchmark, so no skipped rows or traces")
    section = raw.get("tfperf")
    if "tfperf" in raw and not isinstance(section, dict):  # null, a string, a list: noted, read as empty
        problems.append(f"{file}: the tfperf section is {'null' if section is None else 'not an object'}; ignored")
        raw["tfperf"] = section = {}
    for key in ("profiles", "unmeasured", "null_pairs"):
        if section and key in section and not isinstance(section[key], list):
            problems.append(f"{file}: tfperf.{key} is not a list; ignored")
            section[key] = []
    rows = []
    for bench in raw["benchmarks"]:
        if not isinstance(bench, dict):
            problems.append("a benchmark entry is not an object and was ignored")
            continue
        rows.append(_row(run_id, bench, True, problems, file))
    for bench in (section or {}).get("unmeasured") or []:
        if isinstance(bench, dict):
            rows.append(_row(run_id, bench, False, problems, file))
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    if frame.empty:
        problems.append("the run holds no benchmark rows")
    return Run(path=file.parent, raw=raw, frame=frame, problems=problems)


def load_runs(paths: list[str | Path]) -> pd.DataFrame:
    """Many runs, one frame (a `run` column tells them apart)."""
    return pd.concat([load_run(p).frame for p in paths], ignore_index=True)


def atomic_write(path: str | Path, text: str) -> None:
    """Write a file whole or not at all: a new temporary file in the same folder (created with mode 0o666, so the
    process's umask applies, as for a plain open()), flushed and fsynced, then renamed over the target; on any
    error the temporary file is removed. The one writer of every file the suite writes."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:  # said of the path asked for, not of the temporary file beside it
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
