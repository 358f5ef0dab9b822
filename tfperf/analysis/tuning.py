"""The tuner's model (``tfperf tune``): the candidate space of a pipeline's knobs, and a performance model that
predicts each candidate's time per batch from what one profiled run of the pipeline as written measured.

No TensorFlow here: :mod:`tfperf.runtime.tune_probe` measures the :class:`Facts`, :mod:`tfperf.tune` confirms the
model's best candidates by paired measurement.

**The model** (Plumber's, MLSys 2022, closed form). A pipeline is a chain of stages: the source (reading or
generating records), the map (the expensive per-element stage, or ``batch_map`` per batch when vectorized), the
after-cache stage, batching, and the consumer (the training step or ``Stages.consumer``). Each stage has a wall
time per batch (``*_s``, what a sequential pipeline waits for it) and a CPU time per batch (``*_cpu``, what it
takes from the cores; below its wall time when it waits on something else, a remote read). A candidate's time per
batch is the largest of:

- the chain that runs on one thread: the source and batching (a parallel map reads its input under one lock),
  and the map too when it is sequential;
- the map's wall time over its width (the elements in flight), but no less than its CPU over the cores; a
  parallel map also pays a hand-over per batch on the reading side;
- the consumer, when a prefetch lets it run beside the producer; without one, consumer and producer add up;
- all the CPU the candidate needs per batch over the cores (the roofline), counting the cores' worth parallel
  threads really get here (fitted, :func:`calibrate`: two vCPUs of a cloud VM are often two hyperthreads of one
  core).

A cache (only where the map has no random op and the cached elements fit the RAM budget) replaces source and
map by a read of the cache, measured. AUTOTUNE's width is taken as the core count: tf.data's autotuned parallel
map runs on its runner pool, as many threads as cores (on this 2-core machine its trace shows ``parallelism`` 2),
so a map that waits on I/O needs a fixed width above the cores to hide its wait.

What the model cannot see, it does not guess: the order guarantee (``deterministic``), tf.data's thread-pool
and intra-op options, and a larger batch are predicted as the candidate without them, and are tried as tweaks of
the confirmed best in a second confirmation, by measurement only.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from tfperf.api.base import AUTOTUNE

CACHE_HEADROOM = 1.5  # a cache is a candidate when its estimated size times this fits the RAM budget


@dataclass(frozen=True)
class Facts:
    """What the probe measured, per batch of the pipeline as written (seconds), and what it knows of the data."""

    cores: int
    batch_size: int
    examples: int  # records per pass
    source_s: float
    map_s: float
    map_cpu: float
    after_s: float = 0.0
    batch_s: float = 0.0
    consumer_s: float = 0.0
    consumer_cpu: float = 0.0
    vector_s: float | None = None  # batch_map per batch (None: no batch_map)
    vector_cpu: float | None = None
    cache_read_s: float = 0.0  # reading one batch of cached elements
    element_bytes: float = 0.0  # one element after the map (what a cache holds)
    random_in_map: tuple[str, ...] = ()  # random ops in the map: no cache after it
    files: int = 0  # files read (0: a source dataset)
    parallel_extra_s: float = 0.0  # a parallel map's hand-over beyond a sequential one's, per batch (fitted)
    effective_cores: float = 0.0  # cores' worth of CPU-bound work parallel threads get here (fitted; 0: cores)
    written_s: float = 0.0  # measured: the pipeline as written, per batch, untraced
    bound_s: float = 0.0  # measured: the compute-only bound, per batch
    ram_budget: int = 0
    stages_ms: dict[str, float] = field(default_factory=dict)  # the trace's self time per stage (the window)

    @property
    def cache_bytes(self) -> float:
        return self.element_bytes * self.examples


@dataclass(frozen=True)
class Knobs:
    """One candidate configuration: PipelineVariant's knobs (see :mod:`tfperf.api.pipelines`)."""

    map_parallel: int | None = None
    prefetch: int | None = None
    cache: bool = False
    vectorized: bool = False
    interleave: str | None = None
    cycle: int = 0
    deterministic: bool = True
    options: tuple[tuple[str, Any], ...] = ()
    batch_size: int | None = None

    def name(self) -> str:
        """A variant name (letters, digits, '-', '_') that says the knobs."""
        def width(w: int | None) -> str:
            return "seq" if w is None else "auto" if w == AUTOTUNE else str(w)
        parts = [f"map_{width(self.map_parallel)}", f"pre_{'none' if self.prefetch is None else width(self.prefetch)}"]
        if self.cache:
            parts.append("cache")
        if self.vectorized:
            parts.append("vec")
        if self.interleave:
            parts.append(f"il_{self.interleave[:3]}{self.cycle or ''}")
        if not self.deterministic:
            parts.append("nondet")
        for key, value in self.options:
            parts.append(f"{key.rsplit('.', 1)[-1]}_{value}")
        if self.batch_size:
            parts.append(f"b{self.batch_size}")
        return "-".join(parts)

    def fields(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["options"] = [list(kv) for kv in self.options]
        return out


AS_WRITTEN = Knobs()
GUIDE = Knobs(map_parallel=AUTOTUNE, prefetch=AUTOTUNE)


def cache_refusal(f: Facts) -> str | None:
    """Why a cache is no candidate (None: it is)."""
    if f.random_in_map:
        return (f"what the cache would hold is random or opaque ({', '.join(f.random_in_map[:3])}): a cache would "
                "freeze one draw (or one order, or one run of Python) for every epoch")
    if f.cache_bytes * CACHE_HEADROOM > f.ram_budget:
        return (f"the cached elements would take about {f.cache_bytes / 2**20:.0f} MiB, more than the RAM budget "
                f"({f.ram_budget / 2**20:.0f} MiB) allows with headroom")
    return None


def widths(cores: int) -> list[int | None]:
    """Map widths in the space: sequential, AUTOTUNE, and fixed widths up to a few times the cores."""
    fixed = sorted({cores, 2 * cores, 4 * cores})
    return [None, AUTOTUNE, *fixed]


def space(f: Facts, allow_nondeterministic: bool = False) -> list[Knobs]:
    """The structural candidates: map width x prefetch x cache x vectorized x interleave (with files), every one
    that keeps what the model trains on. Options, order and batch size are tweaks, tried on the confirmed best."""
    caches = [False] if cache_refusal(f) else [False, True]
    vectors = [False, True] if f.vector_s is not None else [False]
    if f.files > 1:
        cycles = sorted({min(f.cores, f.files), min(4, f.files)})
        interleaves: list[tuple[str | None, int]] = [(None, 0), *[("parallel", c) for c in cycles]]
    else:
        interleaves = [(None, 0)]
    out = []
    for w in widths(f.cores):
        for pre in (None, AUTOTUNE):
            for cache in caches:
                for vec in vectors:
                    if cache and vec:  # the cache sits after the per-element map; vectorized has none
                        continue
                    for il, cyc in interleaves:
                        if cache and il:  # a cache's rounds never read the files: interleave changes nothing
                            continue
                        out.append(Knobs(map_parallel=w, prefetch=pre, cache=cache, vectorized=vec, interleave=il,
                                         cycle=cyc))
    return out


def tweaks(best: Knobs, f: Facts, allow_nondeterministic: bool = False,
           allow_batch_size: bool = False) -> list[Knobs]:
    """What the model cannot predict, applied one at a time to the confirmed best: the private thread pool at the
    core count, one intra-op thread per op (no oversubscription beside a parallel map), the order guarantee off
    (with consent), a doubled batch (with consent)."""
    out = [dataclasses.replace(best, options=(("threading.private_threadpool_size", f.cores),)),
           dataclasses.replace(best, options=(("threading.max_intra_op_parallelism", 1),))]
    if allow_nondeterministic and (best.map_parallel is not None or best.interleave == "parallel"):
        out.append(dataclasses.replace(best, deterministic=False))
    if allow_batch_size:
        out.append(dataclasses.replace(best, batch_size=2 * f.batch_size))
    return out


def neighbours(best: Knobs, f: Facts) -> list[Knobs]:
    """The confirmed best's neighbours along what the model predicts least well: the next map width up and down,
    the widest (on 2 cores, a CPU-bound map measured faster at width 4 or 8 than at 2, which no count of cores
    predicts), and prefetch toggled. Measured, never predicted."""
    ws = widths(f.cores)
    out = []
    if best.map_parallel in ws:
        i = ws.index(best.map_parallel)
        out += [dataclasses.replace(best, map_parallel=ws[j]) for j in (i + 1, i - 1) if 0 <= j < len(ws)]
    # and the widest: in 4 of 12 exhaustive sweeps here (docs/tune.md) width 8 won on 2 cores while width 2 lost
    # to a sequential map, a shape no single measured point predicts
    if not (best.cache and f.after_s == 0):
        out.append(dataclasses.replace(best, map_parallel=ws[-1]))
    out.append(dataclasses.replace(best, prefetch=None if best.prefetch is not None else AUTOTUNE))
    return list(dict.fromkeys(k for k in out if k != best))


@dataclass(frozen=True)
class Prediction:
    seconds_per_batch: float
    limit: str  # what sets it: "source", "map", "consumer", "cpu"


def predict(k: Knobs, f: Facts) -> Prediction:
    """The candidate's time per batch (of the pipeline's own batch size) and the stage that sets it."""
    cores = f.effective_cores or max(1, f.cores)
    threads = max(1, f.cores)
    if k.cache:
        source, source_cpu = f.cache_read_s, f.cache_read_s
        work, work_cpu = 0.0, 0.0
        after, after_cpu = f.after_s, f.after_s
    else:
        source = f.source_s
        if k.interleave == "parallel" and f.files > 1:
            source = f.source_s / max(1.0, min(k.cycle or 4, f.files, cores))
        source_cpu = f.source_s
        if k.vectorized and f.vector_s is not None:
            work, work_cpu = f.vector_s, f.vector_cpu if f.vector_cpu is not None else f.vector_s
            after, after_cpu = 0.0, 0.0  # batch_map is the whole preprocessing
        else:
            work, work_cpu = f.map_s, f.map_cpu
            after, after_cpu = f.after_s, f.after_s
    width = threads if k.map_parallel == AUTOTUNE else (k.map_parallel or 0)
    if k.cache and after == 0:
        width = 0  # the map before the cache runs once, in the warm-up: its width costs nothing after
    cpu_total = source_cpu + work_cpu + after_cpu + f.batch_s + f.consumer_cpu
    floor = cpu_total / cores
    if width:
        # the hand-over of a parallel map (its threads and buffer) is paid on the consumer's side and in CPU
        cpu_total += f.parallel_extra_s
        floor = cpu_total / cores
        mapped = max((work + after) / width, (work_cpu + after_cpu) / cores)
        parts = {"source": source + f.batch_s + f.parallel_extra_s, "map": mapped}
    else:
        parts = {"chain": source + work + after + f.batch_s}
    producer_limit = max(parts, key=lambda key: parts[key])
    producer = parts[producer_limit]
    if producer_limit == "chain":
        producer_limit = "map" if work + after >= source else "source"
    if k.prefetch is not None:
        candidates = {producer_limit: producer, "consumer": f.consumer_s, "cpu": floor}
    else:
        candidates = {producer_limit: producer + f.consumer_s, "cpu": floor}
        if f.consumer_s > producer:
            candidates = {"consumer": producer + f.consumer_s, "cpu": floor}
    limit = max(candidates, key=lambda key: candidates[key])
    return Prediction(candidates[limit], limit)


def calibrate(f: Facts, parallel_s: float) -> Facts:
    """Fit the two figures of the model a parallel map depends on, the effective cores and the hand-over, to what
    this pipeline measured with its map at a width of the core count (no prefetch): the effective cores first
    (bisection between the cores' worth the pipeline as written already used and the core count, with no
    hand-over), and where even the lowest predicts faster than measured, the lowest and the hand-over that makes
    up the rest. Fitted per pipeline, not taken from a proxy: on 2 vCPUs a resize, a random flip beside a training
    step, a tokenizer each scale differently (docs/tune.md)."""
    at = Knobs(map_parallel=f.cores)
    if parallel_s <= 0:
        return f

    def predicted(eff: float, extra: float) -> float:
        return predict(at, dataclasses.replace(f, effective_cores=eff, parallel_extra_s=extra)).seconds_per_batch
    hi = float(max(1, f.cores))
    # the pipeline as written already got this many cores' worth (its ops' own intra-op threads): no fewer
    used = (f.source_s + f.map_cpu + f.after_s + f.batch_s + f.consumer_cpu) / f.written_s if f.written_s else 1.0
    lo = min(max(1.0, used), hi)
    if predicted(hi, 0.0) >= parallel_s:  # faster than the cores predict with no hand-over: the cores, no hand-over
        return dataclasses.replace(f, effective_cores=hi, parallel_extra_s=0.0)
    if predicted(lo, 0.0) <= parallel_s:  # slower than that predicts: those cores, and a hand-over for the rest
        extra_lo, extra_hi = 0.0, parallel_s
        for _ in range(40):
            mid = (extra_lo + extra_hi) / 2
            extra_lo, extra_hi = (mid, extra_hi) if predicted(lo, mid) < parallel_s else (extra_lo, mid)
        return dataclasses.replace(f, effective_cores=lo, parallel_extra_s=extra_lo)
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if predicted(mid, 0.0) < parallel_s else (mid, hi)
    return dataclasses.replace(f, effective_cores=(lo + hi) / 2, parallel_extra_s=0.0)


def rank(cands: list[Knobs], f: Facts) -> list[tuple[Knobs, Prediction]]:
    """Candidates fastest first by prediction; on a tie (within 2%) the one with fewer knobs set first."""
    scored = [(k, predict(k, f)) for k in cands]

    def knobs_set(k: Knobs) -> int:
        return sum([k.map_parallel is not None, k.prefetch is not None, k.cache, k.vectorized, bool(k.interleave),
                    (k.map_parallel or 0) > f.cores])
    best = min(p.seconds_per_batch for _, p in scored)
    return sorted(scored, key=lambda kp: (round(math.log(max(kp[1].seconds_per_batch, 1e-12) / max(best, 1e-12))
                                                / math.log(1.02)), knobs_set(kp[0])))


def shortlist(cands: list[Knobs], f: Facts, n: int = 3) -> list[tuple[Knobs, Prediction]]:
    """The n best predicted candidates, no two of which the model cannot tell apart in the same way: a candidate
    whose prediction and limiting stage equal one already chosen is kept for later."""
    chosen: list[tuple[Knobs, Prediction]] = []
    held: list[tuple[Knobs, Prediction]] = []
    for k, p in rank(cands, f):
        if k in (AS_WRITTEN, GUIDE):
            continue  # measured anyway
        same = any(abs(p.seconds_per_batch / q.seconds_per_batch - 1) < 0.02 and p.limit == q.limit
                   and k.cache == c.cache and k.vectorized == c.vectorized for c, q in chosen)
        (held if same else chosen).append((k, p))
        if len(chosen) == n:
            break
    return (chosen + held)[:n]


def bottleneck(f: Facts) -> tuple[str, str]:
    """The stage that limits the pipeline as written, and why, from the measured stage times."""
    stages = {"source (reading the records)": f.source_s, "map": f.map_s, "after-cache stage": f.after_s,
              "batching": f.batch_s, "consumer": f.consumer_s}
    name = max(stages, key=lambda s: stages[s])
    total = sum(stages.values()) or 1.0
    why = f"{1e3 * stages[name]:.2f} ms of the {1e3 * total:.2f} ms a batch takes as written ({100 * stages[name] / total:.0f}%)"
    if name == "map" and f.map_s > 0 and f.map_cpu < 0.5 * f.map_s:
        why += f"; it uses the CPU {100 * f.map_cpu / f.map_s:.0f}% of its time (it waits: a width above the cores hides it)"
    return name, why
