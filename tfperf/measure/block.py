"""A block, measured in one worker process (:mod:`tfperf.measure.worker`; the harness, :mod:`tfperf.measure.harness`,
starts N of them once and sends each of them every block in turn, never two at once).

Why a process of its own: on TF 2.21 a whole process can sit at a different level from the next (thread
placement on 2 cores), so repetition pays only across processes (pyperf's lesson), and the parent pytest
process stays free of every variant's state. Blocks arrive in the order the tests need them.

A *block* is the selected variants of one scenario (they compete or compare), plus every
baseline and bound they name and a *twin* of the block's anchor: the same variant built and timed a second
time, the null pair that states the run's resolution. In a block:

1. build every variant (a failure, or a variant whose ``requires`` this machine lacks, is recorded with its
   reason; the rest go on);
2. warm up: one untimed round each (tracing, XLA compilation, caches filling), recorded as ``warmup_s``;
3. calibrate: from a second untimed round, choose ``passes`` (fresh iterators or epochs per round, so a round
   lasts at least the size's ``min_round_s``); a pass itself is never resized: every member of a block reads
   the scenario's pass (its epoch) per iterator, so a variant and its baseline do the same work per iterator,
   start-up included, and no run-to-run calibration choice can move their ratio (measured: an iterator of
   ``latency`` starts in about 20 ms, of ``light`` in 6-10 ms; a per-variant ``repeat`` chosen to make fast
   passes 40 ms long flipped ``latency/parallel_8`` between one and two passes' records per iterator from run
   to run, 650-800 or 450-500 us per example, while its baseline stayed at one pass). The first process
   chooses, later ones reuse its choice, so every process times the same round; one more untimed round at the
   chosen scale where the runnable rebuilt something for it (``warm_after_scale``);
4. time ``rounds`` rounds of every variant. A block's round runs every member's round, and where a runnable
   can run its round's passes one at a time (``by_pass``: a pipeline's fresh iterators, a custom loop's
   epochs), its passes are timed one by one and spread evenly over the block's round, interleaved with the
   other members' passes in a fresh random order (:func:`schedule`); a member's round time is the sum of its
   passes. A variant and its baseline so sample the same seconds of the machine, and a slow spell of a core
   (measured: up to 1.7x, for seconds) weighs on both. Before each block round the garbage collector runs and
   threads get a moment to settle; during it the collector is off; every pass's example count is checked;
5. record the machine's CPU steal and the CPU that other processes used during the block (psutil,
   :mod:`tfperf.measure.machine`);
6. in the profiling process only, capture each selected variant's trace after its block's timed rounds.

The runnable contract this module calls is :class:`tfperf.runtime.base.Runnable`; the block's live state is a
:class:`tfperf.runtime.base.Block` opened before its variants are built and closed after, whatever happened.
"""

from __future__ import annotations

import gc
import math
import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tfperf.api.ab import ABScenario
from tfperf.api.base import ScenarioError, Size, Unsupported, first_line
from tfperf.results import traces
from tfperf.runtime import build as runtime_build
from tfperf.runtime import devices, profiling
from tfperf.runtime.base import Block, BlockContext, Runnable
from tfperf.runtime.build import open_block

from . import machine, reference

TWIN = "~twin"  # suffix of the null pair's second copy: the block's anchor built and timed a second time


def message(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, ScenarioError):  # already one line naming the scenario, the factory and the cause
        return text.splitlines()[0]
    return first_line(exc)


class Member:
    """One runnable in a block and everything measured about it."""

    def __init__(self, scenario: Any, variant: Any, name: str, selected: bool):
        self.scenario, self.variant, self.name, self.selected = scenario, variant, name, selected
        self.runnable: Runnable | None = None
        self.status, self.reason = "ok", ""
        self.times: list[float] = []
        self.order: list[int] = []  # where its round ended within each round's order (of passes, see schedule)
        self.warmup_s: float | None = None
        self.calibration_s: float | None = None
        self.passes, self.repeat = 1, 1
        self.examples = 0
        self.cpu_s = self.cpu_wall_s = 0.0  # this process's CPU time during the timed rounds, and their wall time

    def fail(self, status: str, reason: str) -> None:
        self.status, self.reason = status, reason
        if self.runnable is not None:
            try:
                self.runnable.close()
            except Exception:  # noqa: BLE001 - closing a broken runnable must not hide why it broke
                pass
            self.runnable = None

    def timed(self, one_pass: bool = False) -> float:
        """One round (or, with `one_pass`, one of its passes), timed; the example count is checked."""
        self.runnable.before_round()  # untimed: e.g. a tf.data service's buffers, filled while other variants ran
        cpu = time.process_time()
        start = time.perf_counter()
        done = self.runnable.run_pass() if one_pass else self.runnable.run_round()
        took = time.perf_counter() - start
        self.cpu_s += time.process_time() - cpu
        self.cpu_wall_s += took
        self.runnable.after_round(took, done)  # untimed: e.g. iterators torn down, what the round cost in CPU
        expected = self.runnable.examples_per_round // (self.passes if one_pass else 1)
        if done != expected:
            raise RuntimeError(f"a {'pass' if one_pass else 'round'} processed {done} examples, expected {expected}")
        return took

    @property
    def split(self) -> bool:
        """Whether a round is timed as its passes, one at a time (the runnable says a round is exactly that)."""
        return self.passes > 1 and self.runnable is not None and self.runnable.by_pass


def member(scenario: Any, variant_name: str, name: str, selected: bool) -> Member:
    """A block's member from its request: a variant of the block's scenario, or the suite's reference workload."""
    if name == reference.NAME:
        return Member(reference.REFERENCE, reference.VARIANT, name, False)
    return Member(scenario, scenario.variant(variant_name), name, selected)


SETTLE_S = 0.02
MAX_PASSES = 256  # a round of very fast passes (a cache read in 2 ms) stops here
SMOKE_SETTLE_S = 0.005  # `smoke` is CI's check that everything runs, within 2 minutes


def settle(pause_s: float = SETTLE_S) -> None:
    """Before a round: collect garbage (so the collector, off during the round, never runs inside one) and give
    the previous round's iterator threads a moment to wind down."""
    gc.collect()
    time.sleep(pause_s)


def schedule(members: list[Member], rng: random.Random, links: dict[str, set[str]]) -> list[Member]:
    """One round's order: every member's passes (one entry for a member that is not split), each member's spread
    evenly over the round with random jitter, so that every variant and its baseline sample the same stretch of
    time. Members that are not split (a `fit` round is one call) come in the order of a random walk over `links`
    (name -> the names it is compared with), so each tends to run next to one of its partners.

    Why: on this kind of machine (a VM) the speed of a core drops by up to 1.7x for seconds at a time (a
    single-threaded Python loop: 57 ms, then 95 ms for 2.5 s), and how far apart two rounds ran decides how much
    of that their ratio sees: in runs f1, f2, d1, d2, d4 a pair's log ratio deviated by a median 0.049 from its
    process's median when the two ran next to each other, 0.100 when five or more variants ran in between."""
    whole = [m for m in members if not m.split]
    rng.shuffle(whole)
    walk: list[Member] = []
    while whole:  # a random walk: next, a partner of the last one not yet placed, else anyone left
        near = [m for m in whole if walk and m.name in links[walk[-1].name]]
        walk.append(rng.choice(near) if near else whole[0])
        whole.remove(walk[-1])
    places = sorted(rng.random() for _ in walk)
    index = {id(m): i for i, m in enumerate(members)}
    keys = [(at, rng.random(), index[id(m)]) for at, m in zip(places, walk, strict=True)]
    for i, m in enumerate(members):
        if m.split:
            keys += [((j + rng.random()) / m.passes, rng.random(), i) for j in range(m.passes)]
    return [members[i] for _, _, i in sorted(keys)]


def links_of(block: list[Member]) -> dict[str, set[str]]:
    """Which members of a block are compared with which (baselines, bounds, the twin with its anchor), both ways."""
    links: dict[str, set[str]] = {m.name: set() for m in block}
    for m in block:
        if m.name.endswith(TWIN):
            others = {m.name[: -len(TWIN)]}
        else:
            others = set(m.scenario.partners(m.variant))
        for o in others & set(links):
            links[m.name].add(o)
            links[o].add(m.name)
    return links


def choose_passes(one_pass_s: float, size: Any) -> int:
    """Passes per round so a round lasts at least size.min_round_s (at most MAX_PASSES)."""
    return min(MAX_PASSES, max(1, math.ceil(size.min_round_s / max(one_pass_s, 1e-6))))


Build = Callable[[Any, Any, Size, Block], Runnable]
# Where a block is: its phase (build, warm-up, rounds, profile), what in it (a member's name, or "round"), and
# how far (i of n). The worker sends each to the harness, which turns them into progress lines.
Progress = Callable[[str, str, int, int], None]


def _silent(phase: str, what: str, i: int, n: int) -> None:
    return None


def run_block(block: list[Member], spec: dict[str, Any], size: Size, rng: random.Random,
              scales: dict[str, list[int]], context: BlockContext | None = None,
              build: Build | None = None, progress: Progress = _silent) -> dict[str, Any]:
    """Measure one block (see the module's docstring); `build` makes a member's runnable inside the block's live
    state (default: :func:`tfperf.runtime.build.runnable`, looked up at each call so a plugin may wrap it);
    `progress` hears of every step (a member built, warmed up or profiled, a round begun)."""
    with opened(block, spec, size, rng, scales, context, build, progress) as steps:
        steps.open()
        for r in range(steps.rounds):
            steps.round(r)
        return steps.close()


@contextmanager
def opened(block: list[Member], spec: dict[str, Any], size: Size, rng: random.Random,
           scales: dict[str, list[int]], context: BlockContext | None = None, build: Build | None = None,
           progress: Progress = _silent) -> Iterator[Steps]:
    """The block's live state (e.g. its clusters, started all at once), open while its :class:`Steps` are taken;
    closed when the block ends, whatever happened."""
    build = build or runtime_build.runnable
    scenario = block[0].scenario
    supported = [m.variant for m in block if m.scenario is scenario and supported_here(m.variant)]
    with open_block(scenario, supported, context) as live:
        steps = Steps(block, spec, size, rng, scales, lambda m: build(m.scenario, m.variant, size, live), progress)
        try:
            yield steps
        finally:
            steps.abandon()


class Steps:
    """One block in one process, in three steps: :meth:`open` (build, warm up, calibrate), :meth:`round` (one timed
    round of every member), :meth:`close` (the machine's load, the profiles, the records). A whole block takes them
    in a row (:func:`run_block`); an A/B across two interpreters takes them one request at a time in each side's
    worker, so the two sides' rounds alternate (:mod:`tfperf.measure.worker`, ``op``)."""

    def __init__(self, block: list[Member], spec: dict[str, Any], size: Size, rng: random.Random,
                 scales: dict[str, list[int]], make: Callable[[Member], Runnable], progress: Progress = _silent):
        self.block, self.spec, self.size, self.rng, self.scales = block, spec, size, rng, scales
        self.make, self.progress = make, progress
        self.rounds = int(spec.get("rounds") or size.rounds)
        self.phases: dict[str, float] = {}  # where a block's time goes, in the worker's log
        self.alive: list[Member] = []
        self.links: dict[str, set[str]] = {}
        self.pids: list[int] = []
        self.before: Any = None

    def open(self) -> None:
        block, progress, size, scales = self.block, self.progress, self.size, self.scales
        self.phases["build"] = time.perf_counter()
        for i, m in enumerate(block):
            progress("build", m.name, i + 1, len(block))
            try:
                devices.check(m.variant.requires)  # the harness, not each scenario, skips what the machine lacks
            except Unsupported as exc:
                m.fail("skipped", str(exc))
                continue
            try:
                m.runnable = self.make(m)
            except Unsupported as exc:  # what this variant would do cannot be measured honestly here: said, not failed
                m.fail("skipped", str(exc))
            except Exception as exc:  # a variant that cannot be built is recorded; the block goes on
                m.fail("failed", message(exc))
        alive = [m for m in block if m.runnable is not None]
        self.phases["warm-up"] = time.perf_counter()
        for i, m in enumerate(alive):  # warm-up and calibration, untimed for the statistics
            progress("warm-up", m.name, i + 1, len(alive))
            try:
                m.warmup_s = m.timed()
                base = m.runnable.examples_per_round
                m.calibration_s = m.timed()
                twin_of = next((o for o in block if m.name.endswith(TWIN) and o.name == m.name[: -len(TWIN)]), None)
                if m.name in scales:
                    m.passes, m.repeat = scales[m.name]
                elif twin_of is not None and twin_of.examples:  # the null pair times the very same round twice
                    m.passes, m.repeat = twin_of.passes, twin_of.repeat
                else:
                    m.passes, m.repeat = choose_passes(m.calibration_s, size), 1
                if (m.passes, m.repeat) != (1, 1):
                    m.runnable.scale(m.passes, m.repeat)
                    if m.runnable.warm_after_scale:
                        m.timed()  # a warm-up at the chosen scale: new iterators, refilled caches
                m.examples = m.runnable.examples_per_round
                if m.examples != base * m.passes * m.repeat:
                    raise RuntimeError(f"scaling by {m.passes}x{m.repeat} gave {m.examples} examples a round, "
                                       f"expected {base * m.passes * m.repeat}")
                m.runnable.start_timing()
            except Exception as exc:
                m.fail("failed", message(exc))
        self.alive = [m for m in block if m.runnable is not None]
        # Everything built so far (models, datasets, traced functions) moves to the permanent generation: the
        # collection before each round then scans only what the rounds themselves made (fast), not TensorFlow.
        gc.collect()
        gc.freeze()
        for m in self.alive:  # what the warm-up and calibration used is not the rounds' CPU
            m.cpu_s = m.cpu_wall_s = 0.0
        # the block's own processes, not "others" using the machine: a service's cluster, a trainer; and in an A/B
        # across interpreters, the other side's worker, whose rounds alternate with these (never at the same time)
        self.pids = sorted({p for m in self.alive for p in m.runnable.pids()} | set(self.spec.get("siblings") or ()))
        self.before = machine.snapshot(self.pids)
        self.phases["rounds"] = time.perf_counter()
        self.links = links_of(self.alive)

    def round(self, r: int) -> None:
        """Timed round `r` (of ``rounds``) of every member alive, in a fresh order (see :func:`schedule`)."""
        self.progress("rounds", "round", r + 1, self.rounds)
        alive = self.alive
        order = schedule(alive, self.rng, self.links)
        last = {id(m): pos for pos, m in enumerate(order)}
        took = {id(m): 0.0 for m in alive}
        settle(SMOKE_SETTLE_S if self.size.name == "smoke" else SETTLE_S)
        gc.disable()
        try:
            for pos, m in enumerate(order):
                if m.runnable is None:  # failed earlier in this round
                    continue
                try:
                    took[id(m)] += m.timed(one_pass=m.split)
                except Exception as exc:
                    m.fail("failed", message(exc))
                    continue
                if pos == last[id(m)]:  # its last pass of the round: the round is done
                    m.times.append(took[id(m)])
                    m.order.append(pos)
        finally:
            gc.enable()

    def close(self) -> dict[str, Any]:
        """The machine's load over the rounds, the profiles (where the request asks), every member's record; every
        runnable closed."""
        block, spec, phases = self.block, self.spec, self.phases
        load = machine.load(self.before, machine.snapshot(self.pids)) if self.before is not None else {}
        gc.unfreeze()
        profiles: dict[str, dict[str, Any]] = {}
        phases["profiles"] = time.perf_counter()
        if spec.get("profile"):
            profiled = [m for m in block if m.selected and m.runnable is not None]
            for i, m in enumerate(profiled):
                self.progress("profile", m.name, i + 1, len(profiled))
                profiles[m.name] = _profile(m, spec)
        phases["close"] = time.perf_counter()
        records = []
        for m in block:
            info: dict[str, Any] = {}
            if m.runnable is not None:
                info = dict(m.runnable.info)
                try:
                    info.update(m.runnable.measured())
                finally:
                    m.runnable.close()
                    m.runnable = None
                if m.cpu_wall_s > 0:
                    # cores this process kept busy while the member's rounds ran (all its threads: tf.data's, TF's
                    # and Python's; not a tf.data service's or another trainer's processes): how much the member's
                    # time depends on the CPU's speed rather than on waits
                    info["process_cpu_per_s"] = m.cpu_s / m.cpu_wall_s
            records.append({
                "scenario": m.scenario.name, "variant": m.variant.name, "name": m.name, "selected": m.selected,
                "status": m.status, "reason": m.reason, "times": m.times, "order": m.order,
                "examples": m.examples, "passes": m.passes, "repeat": m.repeat, "warmup_s": m.warmup_s,
                "calibration_s": m.calibration_s, "info": info, "profile": profiles.get(m.name),
            })
        phases["end"] = time.perf_counter()
        names = list(phases)
        spent = {a: round(phases[b] - phases[a], 3) for a, b in zip(names, names[1:], strict=False)}
        print("tfperf: " + ", ".join(f"{a} {t:.1f}s" for a, t in spent.items()), file=sys.stderr, flush=True)
        # where the block's time went: the harness's budget learns from it what a round costs and what the rest does
        return {"load": load, "members": records, "phases": spent, "rounds": self.rounds}

    def abandon(self) -> None:
        """Close every runnable still open (after :meth:`close`, none is; a block that ended early)."""
        gc.unfreeze()
        gc.enable()
        for m in self.block:
            if m.runnable is not None:
                try:
                    m.runnable.close()
                except Exception:  # noqa: BLE001 - closing what is left must not hide why the block ended
                    pass
                m.runnable = None


def _profile(m: Member, spec: dict[str, Any]) -> dict[str, Any]:
    run_dir = Path(spec["run_dir"])
    run_name = f"{m.scenario.name}.{m.variant.name}"
    logdir = run_dir / "traces" / run_name
    record: dict[str, Any] = {"scenario": m.scenario.name, "variant": m.variant.name, "run": run_name,
                              "kind": m.scenario.kind}
    start = time.perf_counter()
    try:
        m.runnable.before_round()  # outside the window: inside it, xprof paired none of the marked steps
        cap = profiling.capture(m.runnable, logdir, spec["profile_steps"], profiling.TracerLevels(**spec["levels"]))
        summary = traces.verify(cap.xplane, cap.steps_marked)
        record.update(status="ok", trace=str(cap.xplane.relative_to(run_dir)), trace_bytes=cap.xplane.stat().st_size,
                      steps_marked=cap.steps_marked, steps_captured=summary["steps"],
                      capture_seconds=round(cap.seconds, 3), step_ms=summary["step_ms"],
                      input_percent=summary["input_percent"])
        if m.scenario.kind == "multiworker":  # the all-reduce's share of the chief's step
            per_step = traces.collective_ms(cap.xplane) / max(1, cap.steps_marked)
            record.update(allreduce_ms_per_step=per_step,
                          allreduce_share=per_step / summary["step_ms"] if summary.get("step_ms") else None)
    except Exception as exc:  # a failed capture is recorded with its reason, the timings stand
        record.update(status="failed", reason=message(exc))
    record["total_seconds"] = round(time.perf_counter() - start, 3)
    return record


def plan(selection: list[tuple[str, str]], registry: Any) -> list[tuple[str, str, list[tuple[str, str, bool]]]]:
    """Blocks for a selection: [(scenario, block key, [(variant, member name, selected), ...])], one per scenario
    in selection order, each with the partners its selected variants need, the twin of its anchor and the suite's
    reference workload (:mod:`tfperf.measure.reference`; not in an A/B block)."""
    wanted: dict[tuple[str, str], set[str]] = {}
    for scenario_name, variant_name in selection:
        wanted.setdefault((scenario_name, scenario_name), set()).add(variant_name)
    blocks = []
    for (scenario_name, key), chosen in wanted.items():
        sc = registry[scenario_name]
        need = set(chosen)
        for name in chosen:
            need.update(sc.partners(sc.variant(name)))
        names = [v.name for v in sc.variants if v.name in need]
        runnable_here = [n for n in names if supported_here(sc.variant(n))]
        # The anchor: the block's first variant that compares with nothing (its root baseline), else its first.
        roots = [n for n in runnable_here if not sc.partners(sc.variant(n))]
        anchor = (roots or runnable_here or names)[0]
        members = [(n, n, n in chosen) for n in names] + [(anchor, anchor + TWIN, False)]
        if not isinstance(sc, ABScenario):  # an A/B block compares its two sides in the same rounds already
            members.append((reference.NAME, reference.NAME, False))
        blocks.append((scenario_name, key, members))
    return blocks


def supported_here(v: Any) -> bool:
    """Whether this machine has what the variant requires (a GPU, two logical CPUs)."""
    try:
        devices.check(v.requires)
        return True
    except Unsupported:
        return False
