"""How a variant is timed, recorded and profiled. bench's test stays one line and calls :meth:`Harness.measure`.

Timing happens in worker processes (tfperf/bench/worker.py), never in this pytest process: ``--tfperf-processes N``
workers start once each and stay up; when a test needs a block that is not yet measured, every worker measures
that whole block in turn (variants, their baselines and bounds, and the null-pair twin interleaved round by
round), then each variant's test turns its rounds from every process into its pytest-benchmark row: the rounds
go into pytest-benchmark's own ``Stats`` (so ``stats`` and the JSON stay its format), the pairs, the
calibration, the warm-up and the machine's load go into ``extra_info``. The profiling pass runs once, in the
last worker, after each block's timed rounds.

Results: after every variant, ``results/<run-id>/benchmarks.json`` is rewritten atomically (temp file and
rename) from pytest-benchmark's own JSON hooks, so Ctrl-C keeps every row that finished. Variants that
could not be measured (skipped, failed) cannot be pytest-benchmark rows (they have no stats); they are
listed with the same ``extra_info`` under the top-level ``tfperf.unmeasured`` key. Null pairs (the run's
resolution) are listed under ``tfperf.null_pairs``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import re
import signal
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pytest_benchmark.utils import safe_dumps

from tfperf import SUITE_VERSION, Size, Variant, profiling
from tfperf.core import Scenario
from tfperf.registry import Registry
from tfperf.reports import stats as rstats
from tfperf.reports.load import atomic_write

from .worker import TWIN, plan


@dataclass
class Settings:
    size: Size
    run_dir: Path
    profile: bool
    profile_steps: int
    levels: profiling.TracerLevels
    report: bool
    processes: int = 1
    rounds: int = 0  # timed rounds per process; 0: the size's
    seed: int = 0
    plugins: tuple[str, ...] = ()
    specs: tuple[str, ...] = ()  # --tfperf-scenarios, as given (the workers load the same)
    paths: tuple[str, ...] = ()  # import roots the workers need (the pytest rootdir, the working directory)


class Worker:
    """One measurement process, started once and kept up for the run; spoken to in JSON lines."""

    def __init__(self, index: int, settings: Settings):
        self.index = index
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (*settings.paths, env.get("PYTHONPATH", "")) if p)
        logs = settings.run_dir / "logs"
        logs.mkdir(exist_ok=True)
        self.log = logs / f"worker-{index + 1}.log"
        with open(self.log, "a", encoding="utf-8") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tfperf.bench.worker", "--serve", str(index),
                 *[f"--import={m}" for m in settings.plugins], *[f"--scenarios={s}" for s in settings.specs]],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env, text=True, cwd=os.getcwd(),
                start_new_session=True)  # its own group: Ctrl-C reaches this process, which stops the worker

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            code = self.proc.wait()
            last = [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()][-1:]
            raise WorkerDied(f"worker process {self.index + 1} exited with code {code}"
                             + (f": {last[0].strip()}" if last else "") + f" (log: {self.log})")
        return json.loads(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired, PermissionError):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


class WorkerDied(RuntimeError):
    pass


def _load_summary(loads: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"per_process": loads}
    for key in ("steal_share", "others_cpu_share", "loadavg_1m"):
        values = [x[key] for x in loads if key in x]
        if values:
            out[key] = max(values)
    out["busy"] = any(x.get("busy") for x in loads)
    return out


@dataclass
class Harness:
    config: pytest.Config
    settings: Settings
    registry: Registry
    unmeasured: list[dict[str, Any]] = field(default_factory=list)
    profiles: list[dict[str, Any]] = field(default_factory=list)
    finished: list[Any] = field(default_factory=list)  # pytest-benchmark Metadata of complete rows
    null_pairs: list[dict[str, Any]] = field(default_factory=list)
    selection: list[tuple[str, str]] = field(default_factory=list)
    interrupted: bool = False
    crashes: list[dict[str, Any]] = field(default_factory=list)  # worker processes that died, and where
    _envelope: tuple[dict, dict] | None = None
    _workers: list[Worker] = field(default_factory=list)
    _blocks: dict[tuple[str, str], tuple[str, str, list]] = field(default_factory=dict)
    _results: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    _scales: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    # ---- rows -------------------------------------------------------------------------------------
    def base_info(self, scenario: Scenario, variant: Variant) -> dict[str, Any]:
        """What every row says of itself, so reports need nothing but the row: its scenario (the group it
        competes in), kind, baseline and bound."""
        return {
            "scenario": scenario.name,
            "variant": variant.name,
            "kind": scenario.kind,
            "group": scenario.name,
            "description": variant.description,
            "scenario_doc": scenario.doc,
            "baseline": variant.baseline,
            "bound_variant": getattr(variant, "bound", None),
            "more_work": variant.more_work,
            "requires": list(variant.requires),
            "knobs": variant.knobs(),
            **variant.knobs(),
            **scenario.info,
            "size": self.settings.size.name,
            "tf_version": _tf_version(),
            "suite_version": SUITE_VERSION,
            "scenario_version": scenario.version,
            "status": "running",
        }

    def select(self, selection: list[tuple[str, str]]) -> None:
        """The variants this session will run (after -k and friends): the blocks are planned from them."""
        self.selection = selection
        for scenario_name, key, members in plan(selection, self.registry):
            for variant_name, _, _ in members:
                self._blocks[(scenario_name, variant_name)] = (scenario_name, key, members)

    def measure(self, benchmark: Any, scenario_name: str, variant_name: str) -> None:
        if not scenario_name:  # a SPEC that did not load: its one line, as a failed test
            reason = dict(self.registry.errors).get(variant_name, "did not load")
            benchmark._mode, benchmark.has_error = "tfperf: scenarios did not load", True
            pytest.fail(f"tfperf: --tfperf-scenarios {variant_name}: {reason}", pytrace=False)
        scenario = self.registry[scenario_name]
        variant = scenario.variant(variant_name)
        info = self.base_info(scenario, variant)
        benchmark.extra_info.update(info)
        label = f"{scenario.name}/{variant.name}"
        try:
            rec = self._record(scenario_name, variant_name)
            if rec["status"] == "skipped":
                self._unmeasured(benchmark, status="skipped", reason=rec["reason"])
                pytest.skip(f"{label}: {rec['reason']}")
            if rec["status"] != "ok":
                raise RuntimeError(rec["reason"])
            self._fill(benchmark, scenario, variant, rec)
            self.finished.append(benchmark.stats)
        except pytest.skip.Exception:
            raise
        except KeyboardInterrupt:
            self.interrupted = True
            raise
        except Exception as exc:  # a variant that failed is recorded, and the run goes on
            text = str(exc).strip()
            message = text.splitlines()[0] if text else type(exc).__name__
            if ":" not in message.split(" ")[0]:
                message = message if isinstance(exc, RuntimeError) else f"{type(exc).__name__}: {message}"
            benchmark.has_error = True
            self._unmeasured(benchmark, status="failed", reason=message)
            pytest.fail(f"{label} failed: {message}", pytrace=False)
        finally:
            self.write()

    # ---- measuring through the workers -----------------------------------------------------------
    def _record(self, scenario_name: str, variant_name: str) -> dict[str, Any]:
        key = (scenario_name, variant_name)
        if key not in self._results:
            if key not in self._blocks:  # a test not seen at collection (should not happen): plan it alone
                self.select([*self.selection, key])
            self._measure_block(self._blocks[key])
        return self._results[key]

    def _measure_block(self, block: tuple[str, str, list]) -> None:
        scenario_name, key, members = block
        s = self.settings
        while len(self._workers) < s.processes:
            self._workers.append(Worker(len(self._workers), s))
        order = list(range(s.processes))
        random.Random(f"{s.seed}/{scenario_name}/{key}").shuffle(order)
        limit = self.registry[scenario_name].processes
        rounds = s.rounds or s.size.rounds
        if limit and limit < len(order):
            # Timed by fewer processes than the run's: as many rounds in all as every other row gets (with 5
            # rounds in one process, one slow round moved a distributed null pair by up to 35%).
            rounds = math.ceil(rounds * len(order) / limit)
            order = order[:limit]
        profiler = order[-1]  # the last process to run the block profiles it, after its own timed rounds
        replies: dict[int, dict[str, Any]] = {}
        block_id = f"{scenario_name}/{key}"
        error = None
        try:
            for p in order:
                request = {"scenario": scenario_name, "block": key, "members": members, "size": s.size.name,
                           "seed": f"{s.seed}/{p}/{block_id}", "scales": self._scales.get(block_id, {}),
                           "process": p, "processes": s.processes, "run_dir": str(s.run_dir),
                           "rounds": rounds,
                           "profile": s.profile and p == profiler, "profile_steps": s.profile_steps,
                           "levels": vars(s.levels)}
                try:
                    reply = self._workers[p].ask(request)
                except WorkerDied as exc:
                    # A crash is not a measurement: TensorFlow 2.21 has crashed (SIGSEGV) in
                    # MultiDeviceIteratorGetNextFromShard under MirroredStrategy once in several runs here. The
                    # block is measured again, once, in a fresh process; a second crash fails the block.
                    self.crashes.append({"block": block_id, "process": p, "cause": str(exc)})
                    self._workers[p].stop()
                    self._workers[p] = Worker(p, s)
                    reply = self._workers[p].ask(request)
                replies[p] = reply
                self._scales.setdefault(block_id, {
                    m["name"]: [m["passes"], m["repeat"]] for m in reply["members"] if m["status"] == "ok"})
        except WorkerDied as exc:
            error = str(exc)
            self._workers = [w if w.proc.poll() is None else Worker(w.index, s) for w in self._workers]
        except KeyboardInterrupt:
            self.interrupted = True
            self.stop()
            raise
        self._assemble(scenario_name, key, members, replies, error, len(order))

    def _assemble(self, scenario_name: str, key: str, members: list, replies: dict[int, dict[str, Any]],
                  error: str | None, processes: int) -> None:
        by_name: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        loads = []
        for p, reply in sorted(replies.items()):
            loads.append({"process": p, **reply.get("load", {})})
            for m in reply["members"]:
                by_name.setdefault(m["name"], []).append((p, m))
        load = _load_summary(loads)
        merged: dict[str, dict[str, Any]] = {}
        for variant_name, name, _selected in members:
            parts = by_name.get(name, [])
            bad = [m for _, m in parts if m["status"] != "ok"]
            rec: dict[str, Any]
            if error and len(parts) < processes:
                rec = {"status": "failed", "reason": error}
            elif bad:
                rec = {"status": bad[0]["status"], "reason": bad[0]["reason"]}
            else:
                rec = {"status": "ok", "times": [], "process": [], "order": [], "warmup_s": [], "load": load}
                shares = []  # every process's CPU share, not the last one's: each timed the same rounds
                for p, m in parts:
                    rec["times"] += m["times"]
                    rec["process"] += [p] * len(m["times"])
                    rec["order"] += m["order"]
                    rec["warmup_s"].append(m["warmup_s"])
                    rec["calibration_s"] = m["calibration_s"]
                    rec.update(examples=m["examples"], passes=m["passes"], repeat=m["repeat"], info=m["info"])
                    if m.get("profile"):
                        rec["profile"] = m["profile"]
                    if "process_cpu_per_s" in m["info"]:
                        shares.append(m["info"]["process_cpu_per_s"])
                if shares:
                    rec["info"] = {**rec["info"], "process_cpu_per_s": statistics.fmean(shares),
                                   "process_cpu_per_s_per_process": shares}
            rec["variant"] = variant_name
            merged[name] = rec
            if not name.endswith(TWIN):
                self._results[(scenario_name, variant_name)] = rec
        twins = [n for _, n, _ in members if n.endswith(TWIN)]
        for twin in twins:
            a, b = merged.get(twin[: -len(TWIN)]), merged.get(twin)
            if a and b and a["status"] == "ok" and b["status"] == "ok":
                est, lo, hi = rstats.speedup(_side(b), _side(a))
                self.null_pairs.append({
                    "scenario": scenario_name, "block": key, "variant": a["variant"], "speedup": est, "lo": lo,
                    "hi": hi, "a": _side(a), "b": _side(b), "load": load})

    def _fill(self, benchmark: Any, scenario: Scenario, variant: Variant, rec: dict[str, Any]) -> None:
        """The row: pytest-benchmark's own Stats from the rounds of every process, and extra_info."""
        benchmark._mode = "tfperf: timed in worker processes (tfperf/bench/worker.py)"  # the fixture counts as used
        stats = benchmark._make_stats(1)
        for t in rec["times"]:
            stats.update(t)
        times = rec["times"]
        median = statistics.median(times)
        per_process: dict[int, list[float]] = {}
        for p, t in zip(rec["process"], times, strict=True):
            per_process.setdefault(p, []).append(t)
        cvs = [statistics.pstdev(v) / statistics.fmean(v) for v in per_process.values() if len(v) > 1]
        info = dict(rec["info"])
        steps = info.get("steps")
        extra = benchmark.extra_info
        extra.update(info)
        extra.update(
            status="ok", examples=rec["examples"], examples_per_sec=rec["examples"] / median,
            round_process=rec["process"], round_position=rec["order"],
            processes=len(per_process), rounds_per_process=[len(v) for v in per_process.values()],
            process_medians=[statistics.median(v) for v in per_process.values()],
            cv=statistics.median(cvs) if cvs else None,
            warmup_s=statistics.median(rec["warmup_s"]), warmup_s_per_process=rec["warmup_s"],
            calibration={"passes": rec["passes"], "repeat": rec["repeat"], "min_round_s": self.settings.size.min_round_s,
                         "untimed_round_s": rec["calibration_s"], "median_round_s": median},
            load=rec["load"], busy=rec["load"].get("busy", False),
        )
        if steps:
            extra["step_time_ms"] = 1000 * median / steps
        if "ideal_examples_per_sec" in info:
            extra["ideal_efficiency"] = extra["examples_per_sec"] / info["ideal_examples_per_sec"]
        pairs: dict[str, Any] = {}
        for partner in scenario.partners(variant):
            other = self._results.get((scenario.name, partner))
            if other and other.get("status") == "ok":
                pairs[partner] = {"times": other["times"], "examples": other["examples"], "process": other["process"]}
        extra["pairs"] = pairs
        own = _side(rec)
        vs_base = rstats.speedup(own, pairs[variant.baseline]) if variant.baseline in pairs else None
        bound = getattr(variant, "bound", None)
        vs_bound = rstats.speedup(own, pairs[bound]) if bound in pairs and bound != variant.name else None
        if vs_base:
            extra.update(speedup=vs_base[0], speedup_lo=vs_base[1], speedup_hi=vs_base[2])
            ideal = info.get("scaling_ideal")
            if ideal:  # N workers against fewer: the speedup over the ideal ratio of workers
                extra.update(scaling_efficiency=vs_base[0] / ideal, scaling_efficiency_lo=vs_base[1] / ideal,
                             scaling_efficiency_hi=vs_base[2] / ideal)
        if vs_bound:
            # time over the bound's time, minus one: the share of the step spent beyond compute
            extra.update(input_overhead=1 / vs_bound[0] - 1, input_overhead_lo=1 / vs_bound[2] - 1,
                         input_overhead_hi=1 / vs_bound[1] - 1)
        reasons = rstats.physics_check(variant.more_work, vs_base, vs_bound)
        if extra.get("ideal_efficiency", 0) > 1.05:
            reasons.append(f"measured {extra['ideal_efficiency']:.2f} of its ideal throughput (from its constants); "
                           "more than the ideal is a measurement problem")
        if extra["busy"]:
            reasons.append("measured while other processes used the machine's CPU "
                           f"({100 * rec['load'].get('others_cpu_share', 0):.0f}%, steal "
                           f"{100 * rec['load'].get('steal_share', 0):.0f}%)")
        extra["unstable"] = bool(reasons)
        extra["unstable_reasons"] = reasons
        if rec.get("profile"):
            extra["profile"] = rec["profile"]
            for key in ("allreduce_share", "allreduce_ms_per_step"):
                if rec["profile"].get(key) is not None:
                    extra[key] = rec["profile"][key]
            self.profiles.append(rec["profile"])

    def stop(self) -> None:
        """Stop every worker process (also on failure and Ctrl-C)."""
        for w in self._workers:
            w.stop()
        self._workers = []

    def measure_report(self, benchmark: Any) -> None:
        """Time `python -m reports build` on this run's own results and traces, in a child process, and record
        the peak memory it reports for itself and its largest trace-converting worker. (Not this process's
        RUSAGE_CHILDREN: ru_maxrss survives exec, so a child of this 1.6 GB process would report 1.6 GB.)"""
        run_dir = self.settings.run_dir
        benchmark.extra_info.update(scenario="report", variant="build", kind="report", group="report", description="python -m reports build RUN",
                                    size=self.settings.size.name, suite_version=SUITE_VERSION, scenario_version="1",
                                    tf_version=_tf_version(), knobs={"workers": 2}, status="running")
        self.write()
        out = run_dir / ".report-benchmark.html"
        cmd = [sys.executable, "-m", "tfperf.reports", "build", str(run_dir), "--out", str(out), "--workers", "2"]

        peaks: list[tuple[float, float]] = []

        def build() -> None:
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError((proc.stderr.strip().splitlines() or ["no output"])[-1])
            found = re.search(r"report process (\d+) MB, largest worker (\d+) MB", proc.stdout)
            if found:
                peaks.append((float(found[1]), float(found[2])))

        try:
            # once: a cost figure, not a comparison (twice took 25 s of `default`'s 10 minutes)
            benchmark.pedantic(build, rounds=1, warmup_rounds=0, iterations=1)
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
        benchmark._mode = benchmark._mode or "tfperf: not measured"
        benchmark.extra_info.update(status=status, reason=reason)
        self.unmeasured.append({"name": benchmark.name, "fullname": benchmark.fullname,
                                "extra_info": dict(benchmark.extra_info)})

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
            "scenario_versions": {name: sc.version for name, sc in self.registry.items()},
            "scenarios": list(self.settings.specs) or ["(built-in)"],
            "scenario_errors": [{"spec": spec, "reason": why} for spec, why in self.registry.errors],
            "command": " ".join(["pytest", *sys.argv[1:]]),
            "profiling": {"enabled": s.profile, "steps": s.profile_steps,
                          "tracer_levels": vars(s.levels) if s.profile else None},
            "processes": s.processes,
            "rounds_per_process": s.rounds or s.size.rounds,
            "min_round_s": s.size.min_round_s,
            "seed": s.seed,
            "selection": [f"{a}/{b}" for a, b in self.selection],
            "interrupted": self.interrupted,
            "unmeasured": self.unmeasured,
            "profiles": self.profiles,
            "null_pairs": self.null_pairs,
            "worker_crashes": self.crashes,
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


def _side(rec: dict[str, Any]) -> dict[str, Any]:
    return {"times": rec["times"], "examples": rec["examples"], "process": rec["process"]}


def _tf_version() -> str:
    import tensorflow as tf

    return tf.__version__
