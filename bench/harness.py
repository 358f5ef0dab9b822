"""How a variant is timed, recorded and profiled. bench's tests stay one line each and call :meth:`measure`.

Timing: pytest-benchmark's ``pedantic`` with one untimed warm-up round and ``Size.rounds`` timed rounds of
one iteration each; a round is what the scenario defines (one fresh pass over a fixed number of
examples). ``examples_per_sec`` is computed from the median round. Every round's example count is checked
against the scenario's promise, so a pipeline that silently drops data fails instead of looking fast.

Results: after every variant, ``results/<run-id>/benchmarks.json`` is rewritten atomically (temp file and
rename) from pytest-benchmark's own JSON hooks, so Ctrl-C keeps every row that finished. Variants that
could not be measured (skipped, failed) cannot be pytest-benchmark rows (they have no stats); they are
listed with the same ``extra_info`` under the top-level ``tfperf.unmeasured`` key.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pytest_benchmark.utils import safe_dumps

from scenarios import SUITE_VERSION, Size, Unsupported, Variant, profiling
from scenarios.core import Scenario
from scenarios.registry import REGISTRY


@dataclass
class Settings:
    size: Size
    run_dir: Path
    profile: bool
    profile_steps: int
    levels: profiling.TracerLevels
    report: bool


@dataclass
class Harness:
    config: pytest.Config
    settings: Settings
    unmeasured: list[dict[str, Any]] = field(default_factory=list)
    profiles: list[dict[str, Any]] = field(default_factory=list)
    finished: list[Any] = field(default_factory=list)  # pytest-benchmark Metadata of complete rows
    _envelope: tuple[dict, dict] | None = None

    # ---- rows -------------------------------------------------------------------------------------
    def base_info(self, scenario: Scenario, variant: Variant) -> dict[str, Any]:
        return {
            "scenario": scenario.name,
            "variant": variant.name,
            "description": variant.description,
            "baseline": variant.baseline,
            "knobs": variant.knobs(),
            **variant.knobs(),
            "size": self.settings.size.name,
            "tf_version": _tf_version(),
            "suite_version": SUITE_VERSION,
            "scenario_version": scenario.version,
            "status": "running",
        }

    def measure(self, benchmark: Any, scenario_name: str, variant_name: str) -> None:
        scenario = REGISTRY[scenario_name]
        variant = scenario.variant(variant_name)
        size = self.settings.size
        info = self.base_info(scenario, variant)
        benchmark.extra_info.update(info)
        label = f"{scenario.name}/{variant.name}"
        try:
            scenario.check_supported(variant)
        except Unsupported as exc:
            self._unmeasured(benchmark, status="skipped", reason=str(exc))
            pytest.skip(f"{label}: {exc}")
        runnable = None
        try:
            runnable = scenario.build(variant, size)
            benchmark.extra_info.update(runnable.info)
            counts: list[int] = []
            benchmark.pedantic(lambda: counts.append(runnable.run_round()), rounds=size.rounds,
                               warmup_rounds=1, iterations=1)
            wrong = [c for c in counts if c != runnable.examples_per_round]
            if wrong:
                raise RuntimeError(f"a round processed {wrong[0]} examples, expected {runnable.examples_per_round}")
            median = benchmark.stats.stats.median
            benchmark.extra_info.update(
                examples=runnable.examples_per_round,
                examples_per_sec=runnable.examples_per_round / median,
                status="ok",
            )
            benchmark.extra_info.update(runnable.measured())
            if "steps" in runnable.info:
                benchmark.extra_info["step_time_ms"] = 1000 * median / runnable.info["steps"]
            self.finished.append(benchmark.stats)
            if self.settings.profile:
                benchmark.extra_info["profile"] = self._profile(scenario, variant, runnable)
        except Exception as exc:  # a variant that raises is recorded, and the run goes on
            message = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            self.finished = [m for m in self.finished if m is not benchmark.stats]
            benchmark.has_error = True
            self._unmeasured(benchmark, status="failed", reason=message)
            pytest.fail(f"{label} failed: {message}", pytrace=False)
        finally:
            if runnable is not None:
                runnable.close()
            self.write()

    def measure_report(self, benchmark: Any) -> None:
        """Time `python -m reports build` on this run's own results and traces, in a child process, and record
        the peak memory it reports for itself and its largest trace-converting worker. (Not this process's
        RUSAGE_CHILDREN: ru_maxrss survives exec, so a child of this 1.6 GB process would report 1.6 GB.)"""
        run_dir = self.settings.run_dir
        benchmark.extra_info.update(scenario="report", variant="build", description="python -m reports build RUN",
                                    size=self.settings.size.name, suite_version=SUITE_VERSION, scenario_version="1",
                                    tf_version=_tf_version(), knobs={"workers": 2}, status="running")
        self.write()
        out = run_dir / ".report-benchmark.html"
        cmd = [sys.executable, "-m", "reports", "build", str(run_dir), "--out", str(out), "--workers", "2"]

        peaks: list[tuple[float, float]] = []

        def build() -> None:
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError((proc.stderr.strip().splitlines() or ["no output"])[-1])
            found = re.search(r"report process (\d+) MB, largest worker (\d+) MB", proc.stdout)
            if found:
                peaks.append((float(found[1]), float(found[2])))

        try:
            benchmark.pedantic(build, rounds=2, warmup_rounds=0, iterations=1)
            traces = [p for p in self.profiles if p.get("status") == "ok"]
            median = benchmark.stats.stats.median
            benchmark.extra_info.update(
                status="ok", examples=len(traces), examples_per_sec=len(traces) / median, batch_size=1,
                device="/CPU:0", tf_data_options={}, traces=len(traces),
                trace_bytes=sum(int(p.get("trace_bytes", 0)) for p in traces))
            if peaks:
                own, worker = max(p[0] for p in peaks), max(p[1] for p in peaks)
                # the report process plus two workers at their peaks: an upper bound of the memory in use
                benchmark.extra_info.update(report_rss_mb=own, worker_rss_mb=worker, peak_rss_mb=own + 2 * worker)
            self.finished.append(benchmark.stats)
        except Exception as exc:
            benchmark.has_error = True
            self._unmeasured(benchmark, status="failed", reason=f"{type(exc).__name__}: {exc}")
            pytest.fail(f"report/build failed: {exc}", pytrace=False)
        finally:
            out.unlink(missing_ok=True)
            self.write()

    def _unmeasured(self, benchmark: Any, status: str, reason: str) -> None:
        benchmark.extra_info.update(status=status, reason=reason)
        self.unmeasured.append({"name": benchmark.name, "fullname": benchmark.fullname,
                                "extra_info": dict(benchmark.extra_info)})

    # ---- profiling --------------------------------------------------------------------------------
    def _profile(self, scenario: Scenario, variant: Variant, runnable: Any) -> dict[str, Any]:
        from reports import traces  # xprof's converter; runs fine beside TensorFlow

        run_name = f"{scenario.name}.{variant.name}"
        logdir = self.settings.run_dir / "traces" / run_name
        record: dict[str, Any] = {"scenario": scenario.name, "variant": variant.name, "run": run_name}
        start = time.perf_counter()
        try:
            cap = profiling.capture(runnable, logdir, self.settings.profile_steps, self.settings.levels)
            summary = traces.verify(cap.xplane, cap.steps_marked)
            record.update(status="ok", trace=str(cap.xplane.relative_to(self.settings.run_dir)),
                          trace_bytes=cap.xplane.stat().st_size, steps_marked=cap.steps_marked,
                          steps_captured=summary["steps"], capture_seconds=round(cap.seconds, 3),
                          step_ms=summary["step_ms"], input_percent=summary["input_percent"])
        except Exception as exc:
            record.update(status="failed", reason=f"{type(exc).__name__}: {exc}")
            print(f"\ntfperf: profile of {run_name} failed: {record['reason']}", file=sys.stderr)
        record["total_seconds"] = round(time.perf_counter() - start, 3)
        self.profiles.append(record)
        return record

    # ---- the results file -------------------------------------------------------------------------
    def envelope(self) -> tuple[dict, dict]:
        if self._envelope is None:
            hook = self.config.hook
            machine = self.config._benchmarksession.get_machine_info()  # type: ignore[attr-defined]
            commit = hook.pytest_benchmark_generate_commit_info(config=self.config)
            hook.pytest_benchmark_update_commit_info(config=self.config, commit_info=commit)
            self._envelope = (machine, commit)
        return self._envelope

    def tfperf_section(self) -> dict[str, Any]:
        s = self.settings
        return {
            "schema": 1,
            "run_id": s.run_dir.name,
            "size": s.size.name,
            "suite_version": SUITE_VERSION,
            "scenario_versions": {name: sc.version for name, sc in REGISTRY.items()},
            "command": " ".join(["pytest", *sys.argv[1:]]),
            "profiling": {"enabled": s.profile, "steps": s.profile_steps,
                          "tracer_levels": vars(s.levels) if s.profile else None},
            "unmeasured": self.unmeasured,
            "profiles": self.profiles,
            "python": platform.python_version(),
        }

    def write(self) -> Path:
        bs = self.config._benchmarksession  # type: ignore[attr-defined]
        done = [b for b in bs.benchmarks if any(b is f for f in self.finished)]
        machine, commit = self.envelope()
        hook = self.config.hook
        out = hook.pytest_benchmark_generate_json(config=self.config, benchmarks=done, include_data=True,
                                                  machine_info=machine, commit_info=commit)
        hook.pytest_benchmark_update_json(config=self.config, benchmarks=done, output_json=out)
        out["tfperf"] = self.tfperf_section()
        path = self.settings.run_dir / "benchmarks.json"
        atomic_write(path, safe_dumps(out, ensure_ascii=True, indent=2))
        return path


def _tf_version() -> str:
    import tensorflow as tf

    return tf.__version__


def atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a results file is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
