"""How a variant is timed, recorded and profiled. The suite's test stays one line and calls :meth:`Harness.measure`.

Timing happens in worker processes (:mod:`tfperf.measure.worker`), never in this pytest process: ``--tfperf-processes N``
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

import contextlib
import math
import platform
import random
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pytest_benchmark.utils import safe_dumps

from tfperf.api import ab
from tfperf.api.ab import ABScenario
from tfperf.api.base import MIN_ROUNDS, env_seconds
from tfperf.api.registry import Registry
from tfperf.results import schema
from tfperf.results.store import atomic_write

from . import rows
from .block import plan
from .pool import Worker, WorkerDied
from .rows import SUITE_VERSION
from .settings import Settings

# How far into a block each phase starts and ends, as a fraction of the block, until the run's own finished
# blocks say (see Harness._fraction): measured over the built-ins' blocks at default (run b540's worker logs:
# build 3%, warm-up 13%, rounds 77%, profiles 6% of 446 s). At smoke the rounds are short and the warm-up long.
PHASES = ("build", "warm-up", "rounds", "profiles")
DEFAULT_SHARES = {"build": 0.03, "warm-up": 0.13, "rounds": 0.78, "profiles": 0.06}


@dataclass
class Harness:
    config: pytest.Config
    settings: Settings
    registry: Registry
    unmeasured: list[dict[str, Any]] = field(default_factory=list)
    profiles: list[dict[str, Any]] = field(default_factory=list)
    finished: list[Any] = field(default_factory=list)  # pytest-benchmark Metadata of complete rows
    null_pairs: list[dict[str, Any]] = field(default_factory=list)
    references: dict[str, dict[str, Any]] = field(default_factory=dict)  # block -> the reference's rounds
    selection: list[tuple[str, str]] = field(default_factory=list)
    interrupted: bool = False
    crashes: list[dict[str, Any]] = field(default_factory=list)  # worker processes that died, and where
    _envelope: tuple[dict, dict] | None = None
    _workers: list[Worker] = field(default_factory=list)
    _side_workers: dict[str, list[Worker]] = field(default_factory=dict)  # an A/B's sides in interpreters of their own
    side_versions: dict[str, dict[str, Any]] = field(default_factory=dict)  # what each such side measured with
    _blocks: dict[tuple[str, str], tuple[str, str, list]] = field(default_factory=dict)
    _results: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    _done: set[tuple[str, str]] = field(default_factory=set)  # blocks measured (their rows may still be to write)
    _scales: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    _between: dict[str, tuple[float, int] | None] = field(default_factory=dict)  # a block's process-level component
    write_error: str = ""  # why the last write of the results file failed ("" when it did not)
    last_words: list[str] = field(default_factory=list)  # the run's answer, printed after every other summary
    _every: float = field(default_factory=lambda: env_seconds("TFPERF_PROGRESS_EVERY", 10.0))
    # The budget (see _rounds_for): when the run began, what rounds cost and what the rest of a block costs, per
    # variant and process, learnt from the blocks measured so far; what each block got.
    _began: float = field(default_factory=time.monotonic)
    _cost: dict[str, float] = field(default_factory=lambda: {"round_s": 0.0, "rounds": 0, "fixed_s": 0.0,
                                                               "units": 0})
    budget_blocks: dict[str, dict[str, Any]] = field(default_factory=dict)
    _phase_s: dict[str, float] = field(default_factory=dict)  # seconds the finished blocks spent in each phase

    # ---- rows -------------------------------------------------------------------------------------
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
        info = rows.base_info(scenario, variant, self.settings.size.name)
        benchmark.extra_info.update(info)
        label = f"{scenario.name}/{variant.name}"
        try:
            rec = self._record(scenario_name, variant_name)
            side = self.side_versions.get(str(info.get("ab_side")))
            if side:  # measured in that side's own interpreter: its TensorFlow, not this process's
                benchmark.extra_info["tf_version"] = side["tensorflow"]
            if rec["status"] == "skipped":
                self._unmeasured(benchmark, status="skipped", reason=rec["reason"])
                pytest.skip(f"{label}: {rec['reason']}")
            if rec["status"] != "ok":
                raise RuntimeError(rec["reason"])
            partners = {name: r for (sc_name, name), r in self._results.items() if sc_name == scenario.name}
            rows.fill(benchmark, scenario, variant, rec, self.settings.size, partners, self._between.get(scenario.name))
            if rec.get("profile"):
                self.profiles.append(rec["profile"])
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
        if s.pythons and isinstance(self.registry[scenario_name], ABScenario):
            self._measure_sides(block)
            return
        while len(self._workers) < s.processes:
            self._workers.append(Worker(len(self._workers), s))
        order = list(range(s.processes))
        random.Random(f"{s.seed}/{scenario_name}/{key}").shuffle(order)
        limit = self.registry[scenario_name].processes
        rounds = self._rounds_for(block, s.rounds or s.size.rounds)
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
                started = time.monotonic()
                where = f"{scenario_name}, process {order.index(p) + 1}/{len(order)}"
                self._say(f"tfperf: {self._count(block)} {where}: {len(members)} variants"
                          + (" (then profiling)" if request["profile"] else "") + self._left(block[:2], len(members), len(order) - order.index(p), 0.0))
                hear = self._listener(where, block[:2], started, len(members), len(order) - order.index(p))
                try:
                    reply = self._workers[p].ask(request, hear, tick=max(0.1, min(5.0, self._every)))
                except WorkerDied as exc:
                    # A crash is not a measurement: TensorFlow 2.21 has crashed (SIGSEGV) in
                    # MultiDeviceIteratorGetNextFromShard under MirroredStrategy once in several runs here. The
                    # block is measured again, once, in a fresh process; a second crash fails the block.
                    self.crashes.append({"block": block_id, "process": p, "cause": str(exc)})
                    self._workers[p].stop()
                    self._workers[p] = Worker(p, s)
                    reply = self._workers[p].ask(request, hear, tick=max(0.1, min(5.0, self._every)))
                replies[p] = self._heard(block_id, where, reply, started)
        except WorkerDied as exc:
            error = str(exc)
            for w in self._workers:
                if w.proc.poll() is not None:
                    w.stop()  # already gone: its pipes closed and its temporary folder removed
            self._workers = [w if w.proc.poll() is None else Worker(w.index, s) for w in self._workers]
        except KeyboardInterrupt:
            self.interrupted = True
            self.stop()
            raise
        ref = self._assemble(block, replies, error, len(order))
        if ref is not None:  # the suite's reference workload, timed in this block's rounds: for the gate
            self.references[scenario_name] = ref

    def _heard(self, block_id: str, where: str, reply: dict[str, Any], started: float) -> dict[str, Any]:
        """One process's reply for a block: what it cost (for the budget), said, and its scale kept for the next."""
        took = time.monotonic() - started
        self._learn(reply, took)
        self._say(f"tfperf: {where} done in {took:.0f} s")
        self._scales.setdefault(block_id, {
            m["name"]: [m["passes"], m["repeat"]] for m in reply["members"] if m["status"] == "ok"})
        return reply

    def _assemble(self, block: tuple[str, str, list], replies: dict[int, dict[str, Any]], error: str | None,
                  processes: int) -> dict[str, Any] | None:
        """Every process's reply for a block, merged into its records; the block marked measured. Returns the
        reference workload's rounds (None where the block had none)."""
        scenario_name, key, members = block
        records, null_pairs, between, ref = rows.assemble(self.registry[scenario_name], key, members, replies, error,
                                                          processes)
        self._between[scenario_name] = between
        self._results.update({(scenario_name, name): rec for name, rec in records.items()})
        self._done.add((scenario_name, key))
        self.null_pairs += null_pairs
        return ref

    def _measure_sides(self, block: tuple[str, str, list]) -> None:
        """An A/B block whose sides run in interpreters of their own (two TensorFlow versions): each side's members
        in that side's worker, both workers alive at once. Per process: each side builds, warms up and calibrates
        its members (``op: open``), then the rounds alternate between the sides, round r of one side next to round
        r of the other in a fresh random order each time (the worker of the side not measuring waits on its
        stdin, idle), then each side closes (profiles, records). The two workers' records are then one block's:
        round r of a variant and of its base copy ran next to each other, and process p of each side is one unit."""
        scenario_name, key, members = block
        s = self.settings
        sc = self.registry[scenario_name]
        assert isinstance(sc, ABScenario)

        by_side = {side: [m for m in members if sc.sides[m[0]][0] == side] for side in ab.SIDES}  # by variant name
        for side in ab.SIDES:
            workers = self._side_workers.setdefault(side, [])
            while len(workers) < s.processes:
                workers.append(Worker(len(workers), s, python=s.pythons.get(side), side=side))
        order = list(range(s.processes))
        random.Random(f"{s.seed}/{scenario_name}/{key}").shuffle(order)
        rounds = self._rounds_for(block, s.rounds or s.size.rounds)
        block_id = f"{scenario_name}/{key}"
        turns = random.Random(f"{s.seed}/{block_id}/turns")
        replies: dict[int, dict[str, Any]] = {}
        error = None
        try:
            for p in order:
                started = time.monotonic()
                where = f"{scenario_name}, process {order.index(p) + 1}/{len(order)}, both sides"
                profile = s.profile and p == order[-1]
                self._say(f"tfperf: {self._count(block)} {where}: {len(members)} variants, each side in its own "
                          "interpreter" + (" (then profiling)" if profile else ""))
                hear = self._listener(where, block[:2], started, len(members), len(order) - order.index(p))
                tick = max(0.1, min(5.0, self._every))
                workers = {side: self._side_workers[side][p] for side in ab.SIDES}
                results: dict[str, dict[str, Any]] = {}
                for side in ab.SIDES:
                    opened = workers[side].ask({
                        "op": "open", "scenario": scenario_name, "block": key, "members": by_side[side],
                        "size": s.size.name, "seed": f"{s.seed}/{p}/{block_id}/{side}",
                        "scales": self._scales.get(block_id, {}), "process": p, "processes": s.processes,
                        "run_dir": str(s.run_dir), "rounds": rounds, "profile": profile,
                        "profile_steps": s.profile_steps, "levels": vars(s.levels),
                        "siblings": [w.proc.pid for other, w in workers.items() if other != side]}, hear, tick)
                    if "opened" in opened:
                        self.side_versions[side] = opened["versions"]
                    else:  # it could not open (the worker says why in every member): that side's records
                        results[side] = opened
                for r in range(rounds):
                    sides = [side for side in ab.SIDES if side not in results]
                    turns.shuffle(sides)
                    for side in sides:
                        answer = workers[side].ask({"op": "round", "round": r}, hear, tick)
                        if "error" in answer:
                            raise RuntimeError(f"{side} side, round {r + 1}: {answer['error']}")
                for side in ab.SIDES:
                    if side not in results:
                        results[side] = workers[side].ask({"op": "close"}, hear, tick)
                        if "error" in results[side]:
                            raise RuntimeError(f"{side} side, closing: {results[side]['error']}")
                loads = [results[side].get("load") or {} for side in ab.SIDES]
                reply = {"load": {**loads[1], **loads[0], "busy": any(x.get("busy") for x in loads)},
                         "members": [m for side in ab.SIDES for m in results[side]["members"]],
                         "phases": {k: sum(float((results[side].get("phases") or {}).get(k, 0.0)) for side in ab.SIDES)
                                    for k in (results["base"].get("phases") or {})},
                         "rounds": rounds}
                replies[p] = self._heard(block_id, where, reply, started)
        except (WorkerDied, RuntimeError) as exc:
            error = str(exc)
            for side, workers in self._side_workers.items():  # a worker mid-block is replaced: its state is gone
                for i, w in enumerate(workers):
                    w.stop()
                    workers[i] = Worker(w.index, s, python=s.pythons.get(side), side=side)
        except KeyboardInterrupt:
            self.interrupted = True
            self.stop()
            raise
        self._assemble(block, replies, error, len(order))

    # ---- the budget -------------------------------------------------------------------------------
    def _learn(self, reply: dict[str, Any], took: float) -> None:
        """What one process's block cost: its rounds (per member and round) and everything else (per member)."""
        timed = [m for m in reply.get("members", []) if m.get("times")]
        round_s = float((reply.get("phases") or {}).get("rounds", 0.0)) if timed and reply.get("rounds") else 0.0
        if round_s:
            self._cost["round_s"] += round_s
            self._cost["rounds"] += len(timed) * int(reply["rounds"])
        self._cost["fixed_s"] += max(0.0, took - round_s)  # fixed + round seconds: all the block took
        for phase, seconds in (reply.get("phases") or {}).items():
            self._phase_s[phase] = self._phase_s.get(phase, 0.0) + float(seconds)
        self._cost["units"] += len(reply.get("members", []))

    def _rounds_for(self, block: tuple[str, str, list], rounds: int) -> int:
        """This block's rounds per process under the run's budget. The blocks still to measure (this one included)
        cost, at the pace measured so far, units x (fixed + R x round), a unit being one variant in one process;
        R is the most rounds, at most the size's and at least MIN_ROUNDS, for which that fits the budget's time
        left. Before any block has finished, and without a budget, the size's rounds. What each block got is
        recorded (the run's ``tfperf.budget``) and a cut is said."""
        s, cost = self.settings, self._cost
        block_id = f"{block[0]}/{block[1]}"
        if s.budget_s is None or not cost["units"] or not cost["rounds"] or rounds <= MIN_ROUNDS:
            self.budget_blocks[block_id] = {"rounds": rounds, "of": rounds}
            return rounds
        pending = {(sc, key): len(members) for sc, key, members in self._blocks.values() if (sc, key) not in self._done}
        units = sum(pending.values()) * s.processes
        fixed, per_round = cost["fixed_s"] / cost["units"], cost["round_s"] / cost["rounds"]
        left = s.budget_s - (time.monotonic() - self._began)
        fits = math.floor((left / units - fixed) / per_round) if per_round > 0 else rounds
        got = max(MIN_ROUNDS, min(rounds, fits))
        need = units * (fixed + rounds * per_round)
        self.budget_blocks[block_id] = {"rounds": got, "of": rounds, "left_s": round(left, 1),
                                        "projected_s": round(need, 1)}
        if got < rounds:
            self._say(f"tfperf: budget: {block[0]} gets {got} rounds a process instead of {rounds} (the rest of the "
                      f"run would take about {need:.0f} s at this pace; {max(0.0, left):.0f} s left of "
                      f"{s.budget_s:.0f} s)")
        return got

    def budget_summary(self) -> dict[str, Any] | None:
        """The run's budget, what the measuring took, and what each block got."""
        if self.settings.budget_s is None and not self.budget_blocks:
            return None
        return {"seconds": self.settings.budget_s, "spent_s": round(time.monotonic() - self._began, 1),
                "blocks": self.budget_blocks}

    # ---- progress ---------------------------------------------------------------------------------
    def _fraction(self, phase: str, i: int, n: int) -> float | None:
        """The part of a block done when its phase starts step i of n, from how the run's finished blocks split
        their time between the phases (before any has finished: DEFAULT_SHARES)."""
        name = "profiles" if phase == "profile" else phase
        if name not in PHASES or n <= 0:
            return None
        spent = {k: self._phase_s.get(k, 0.0) for k in PHASES}
        total = sum(spent.values())
        shares = {k: v / total for k, v in spent.items()} if total > 0 else DEFAULT_SHARES
        before = sum(shares[k] for k in PHASES[:PHASES.index(name)])
        return before + shares[name] * (i - 1) / n

    def _count(self, block: tuple[str, str, list]) -> str:
        """'[block 3/9]': where this block stands among the run's."""
        blocks = list(dict.fromkeys((sc, key) for sc, key, _ in self._blocks.values()))
        at = blocks.index(block[:2]) + 1 if block[:2] in blocks else len(blocks)
        return f"[block {at}/{len(blocks)}]"

    def _left(self, current: tuple[str, str], members: int, processes_left: int, spent_here: float,
              fraction: float | None = None) -> str:
        """'; about 4 min left': the time the rest of the run needs. The blocks still to come go at the pace of the
        blocks measured so far (a unit is one variant in one process); this block, once a tenth of it is done in
        this process, at its own pace (a large model's block is far slower than the pipelines before it), else
        at the run's. '' before anything says what a unit costs."""
        cost = self._cost
        pace = (cost["fixed_s"] + cost["round_s"]) / cost["units"] if cost["units"] else None
        if fraction is not None and fraction >= 0.1:
            whole = spent_here / fraction  # this block in this process, at its own pace
            here = whole - spent_here + (processes_left - 1) * whole
        elif pace is not None:
            here = max(0.0, members * processes_left * pace - spent_here)
        else:
            return ""
        pending = {(sc, key): len(m) for sc, key, m in self._blocks.values()
                   if (sc, key) != current and (sc, key) not in self._done}
        later = sum(n * self.settings.processes for n in pending.values()) * (pace if pace is not None else 0.0)
        if pace is None and pending:  # nothing measured yet says what the other blocks cost
            return ""
        left = here + later
        return f"; about {left / 60:.0f} min left" if left >= 90 else f"; about {left:.0f} s left"

    def _listener(self, where: str, current: tuple[str, str], started: float, members: int,
                  processes_left: int) -> Any:
        """What a worker's progress turns into on the terminal: a line when the block enters a phase (build,
        warm-up, rounds, profile), else at most one every ``TFPERF_PROGRESS_EVERY`` seconds (10), so a long
        warm-up or profile of a large model is never silent for longer."""
        state: dict[str, Any] = {"phase": None, "step": None, "said": time.monotonic()}

        def hear(step: list[Any] | None) -> None:
            now = time.monotonic()
            if step is not None:
                state["step"] = step
            if state["step"] is None:
                return
            phase, what, i, n = state["step"]
            if phase == state["phase"] and now - state["said"] < self._every:
                return
            state["phase"], state["said"] = phase, now
            doing = f"{phase} {i}/{n}" if what == "round" else f"{phase} {what} ({i}/{n})"
            self._say(f"tfperf:   {where}: {doing}, {now - started:.0f} s in this block"
                      + self._left(current, members, processes_left, now - started, self._fraction(phase, i, n)))

        return hear

    def _say(self, line: str) -> None:
        """A progress line on the terminal, while a block runs: a block of a large model can take minutes, and a
        run that says nothing for that long looks hung. Shown unless pytest runs quiet twice (-qq)."""
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is None or self.config.get_verbosity() <= -2:
            return
        capture = self.config.pluginmanager.get_plugin("capturemanager")  # a test's output is captured: not this
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            if tr._tw.width_of_current_line:  # after -q's progress dots, which ensure_newline does not see
                tr._tw.line()
            tr.write_line(line)

    def stop(self) -> None:
        """Stop every worker process (also on failure and Ctrl-C)."""
        for w in [*self._workers, *(w for ws in self._side_workers.values() for w in ws)]:
            w.stop()
        self._workers = []
        self._side_workers = {}

    def measure_report(self, benchmark: Any) -> None:
        """Time `tfperf report build` on this run's own results and traces, in a child process, and record
        the peak memory it reports for itself and its largest trace-converting worker. (Not this process's
        RUSAGE_CHILDREN: ru_maxrss survives exec, so a child of this 1.6 GB process would report 1.6 GB.)"""
        run_dir = self.settings.run_dir
        benchmark.extra_info.update(scenario="report", variant="build", kind="report", group="report", description="tfperf report build RUN",
                                    size=self.settings.size.name, suite_version=SUITE_VERSION, scenario_version="1",
                                    tf_version=rows.tf_version(), knobs={"workers": 2}, status="running")
        self.write()
        out = run_dir / ".report-benchmark.html"
        cmd = [sys.executable, "-P", "-m", "tfperf", "report", "build", str(run_dir), "--out", str(out), "--workers", "2"]

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
        return schema.section(
            run_id=s.run_dir.name,
            size=s.size.name,
            suite_version=SUITE_VERSION,
            scenario_versions={name: sc.version for name, sc in self.registry.items()},
            scenarios=list(self.settings.specs) or ["(built-in)"],
            scenario_errors=[{"spec": spec, "reason": why} for spec, why in self.registry.errors],
            command=" ".join(["pytest", *sys.argv[1:]]),
            profiling={"enabled": s.profile, "steps": s.profile_steps,
                       "tracer_levels": vars(s.levels) if s.profile else None},
            processes=s.processes,
            rounds_per_process=s.rounds or s.size.rounds,
            min_round_s=s.size.min_round_s,
            seed=s.seed,
            selection=[f"{a}/{b}" for a, b in self.selection],
            interrupted=self.interrupted,
            unmeasured=self.unmeasured,
            profiles=self.profiles,
            null_pairs=self.null_pairs,
            references=self.references,
            worker_crashes=self.crashes,
            python=platform.python_version(),
            budget=self.budget_summary(),
        )

    def write(self) -> Path | None:
        """Rewrite the results file, whole or not at all; None (and `write_error` says why) when it cannot be
        written: a results folder made read-only or removed mid-run must not turn a variant's result into a
        traceback."""
        bs = self.config._benchmarksession  # type: ignore[attr-defined]
        done = [b for b in bs.benchmarks if any(b is f for f in self.finished)]
        machine, commit = self.envelope()
        hook = self.config.hook
        out = hook.pytest_benchmark_generate_json(config=self.config, benchmarks=done, include_data=True,
                                                  machine_info=machine, commit_info=commit)
        hook.pytest_benchmark_update_json(config=self.config, benchmarks=done, output_json=out)
        out["tfperf"] = self.tfperf_section()
        path = self.settings.run_dir / "benchmarks.json"
        try:
            atomic_write(path, safe_dumps(out, ensure_ascii=True, indent=2))
        except OSError as exc:  # the folder made read-only or removed mid-run: said once, the run goes on
            self.write_error = f"could not write {path}: {exc.strerror or exc}"
            return None
        self.write_error = ""
        return path
