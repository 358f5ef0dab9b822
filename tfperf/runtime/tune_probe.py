"""What the tuner's model needs from one pipeline (``tfperf tune``), measured in this process before any candidate is
confirmed: :func:`probe` returns the figures of :class:`tfperf.analysis.tuning.Facts` (the command makes the facts
and fits them, :func:`tfperf.analysis.tuning.calibrate`).

1. The pipeline as written (the stages, sequential, no prefetch, tf.data's rewrites off: the matrix's ``naive``)
   and its compute-only bound (its first batch cached and repeated, through the consumer), timed untraced, wall
   and CPU (``time.process_time``, every thread of this process).
2. The same pipeline with the after-cache stage as a map of its own (the same work), under the TensorFlow profiler
   for a window of batches; the self time of each tf.data iterator, from xprof's Input Pipeline Analyzer, splits
   the as-written time between the stages (source, map, after-cache, batching). The trace is a TensorBoard logdir.
3. The fit: the producer's time per batch is the as-written time less the bound's (the consumer's); the trace's
   shares of it give each stage's wall time. The producer's CPU time less the other stages' (taken as CPU-bound)
   is the map's: a map that waits (a remote read) shows as a map whose CPU is below its wall time.
4. ``batch_map`` (when given) timed the same way, sequential; the size of one mapped element (what a cache
   holds); a cache's read time per batch, timed on the cache candidate itself; the random or opaque ops in the
   map and the source; the pipeline with its map at a width of the core count (what the model is fitted to).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tfperf.api.base import Size
from tfperf.api.pipelines import PipelineVariant, StagesScenario
from tfperf.results import traces

from .datasets import StagesData, dataset_options, random_ops
from .pipelines import PipelineRun
from .profiling import capture


def _timed(run: PipelineRun, batches: int, min_s: float = 0.4, most: int = 15) -> tuple[float, float]:
    """(wall, CPU) seconds per batch: the median over passes (at least 3, until min_s has passed), after one
    untimed pass that fills what a pass fills."""
    run.run_pass()
    run.after_round(0.0, 0)
    walls: list[float] = []
    cpus: list[float] = []
    spent = 0.0
    while len(walls) < 3 or (spent < min_s and len(walls) < most):
        c0, t0 = time.process_time(), time.perf_counter()
        run.run_pass()
        t1, c1 = time.perf_counter(), time.process_time()
        run.after_round(0.0, 0)
        walls.append(t1 - t0)
        cpus.append(c1 - c0)
        spent += t1 - t0
    i = int(np.argsort(walls)[len(walls) // 2])
    return walls[i] / batches, cpus[i] / batches


def _python_ops(fn: Any, spec: Any) -> list[str]:
    """Python inside a map (tf.py_function, tf.numpy_function): opaque to the tuner, never cached."""
    args = spec if isinstance(spec, tuple) else (spec,)
    graph = tf.function(fn).get_concrete_function(*args).graph.as_graph_def()
    ops = {n.op for n in graph.node} | {n.op for f in graph.library.function for n in f.node_def}
    return sorted(o for o in ops if "PyFunc" in o)


def source_opacity(ds: tf.data.Dataset) -> tuple[str, ...]:
    """What in a source makes a cache after it unsafe: random ops (a shuffle, a sample), and Python (a generator,
    a py_function), whose records the tuner cannot know to be the same each epoch."""
    graph = tf.compat.v1.GraphDef.FromString(ds._as_serialized_graph().numpy())  # noqa: SLF001 - tf.data's own graph
    ops = {n.op for n in graph.node} | {n.op for f in graph.library.function for n in f.node_def}
    found = sorted(o for o in ops if "Shuffle" in o or "Random" in o or "Sampl" in o or "PyFunc" in o
                   or o == "GeneratorDataset")
    return tuple(found)


def _bytes(element: Any) -> float:
    total = 0.0
    for t in tf.nest.flatten(element):
        a = t.numpy() if hasattr(t, "numpy") else np.asarray(t)
        if isinstance(a, bytes):  # a scalar string
            total += len(a)
        elif a.dtype == object:
            total += sum(len(x) for x in a.ravel())
        else:
            total += a.nbytes
    return total


def _stage_of(name: str, has_after: bool) -> str:
    """The stage an iterator belongs to, from its position (``Iterator::Root::BatchV2::Map::Map::...``)."""
    parts = name.split("::")[1:]  # drop "Iterator"
    maps_seen = 0
    for i, part in enumerate(parts):
        if i == len(parts) - 1:
            if part in ("Root", "BatchV2", "Batch"):
                return "batch"
            if "Map" in part:
                return "after" if has_after and maps_seen == 0 else "map"
            return "source" if maps_seen >= (2 if has_after else 1) else "batch"
        if "Map" in part:
            maps_seen += 1
    return "batch"


def probe(scenario: StagesScenario, size: Size, logdir: Path, cache_bytes_allowed: float,
          profile_steps: int = 20) -> tuple[dict[str, Any], dict[str, Any]]:
    """The measured figures of `scenario` at `size`, by the names of :class:`tfperf.analysis.tuning.Facts` (the
    tuner makes the model's facts of them), and what else the tuner reports (the trace, the time of the pipeline
    with its map at the core count, which the model is fitted to). A cache is timed only where
    `cache_bytes_allowed` holds the cached elements."""
    data = StagesData(scenario)
    st = data.stages_at(size)
    written = PipelineVariant(name="as_written")
    examples = data.pass_examples(written, size)
    batch = st.batch_size
    batches = -(-examples // batch)
    cores = os.cpu_count() or 1

    w_s, w_cpu = _timed(PipelineRun(data, written, size), batches)
    b_s, b_cpu = _timed(PipelineRun(data, PipelineVariant(name="bound", from_memory=True), size), batches)
    producer = max(w_s - b_s, 1e-9)
    producer_cpu = max(w_cpu - b_cpu, 0.0)

    # the profiled window: the after-cache stage as a map of its own, so the trace can tell the two apart
    raw = data._raw(st, size, None, True).take(examples)
    split = raw.map(st.map)
    if st.after_cache is not None:
        split = split.map(st.after_cache)
    split = split.batch(batch).with_options(dataset_options(False)[0])

    runnable = PipelineRun(data, written, size)
    runnable.dataset = split  # profiled batch by batch through the consumer, as any pipeline variant is
    shot = capture(runnable, logdir, max(profile_steps, 8))
    self_ms = traces.iterator_self_ms(shot.xplane)
    stages_ms = {"source": 0.0, "map": 0.0, "after": 0.0, "batch": 0.0}
    for name, ms in self_ms.items():
        stages_ms[_stage_of(name, st.after_cache is not None)] += ms
    traced = sum(stages_ms.values())
    if traced <= 0:
        raise RuntimeError(f"the profiler's trace of {scenario.name} holds no tf.data iterator time")
    share = {k: v / traced for k, v in stages_ms.items()}
    source_s, map_s = share["source"] * producer, share["map"] * producer
    after_s, batch_s = share["after"] * producer, share["batch"] * producer
    others = source_s + after_s + batch_s
    map_cpu = min(max(producer_cpu - others, 0.02 * map_s), map_s * cores)

    vector_s = vector_cpu = None
    if st.batch_map is not None:
        v_s, v_cpu = _timed(PipelineRun(data, PipelineVariant(name="vectorized", vectorized=True), size), batches)
        vector_s = max(v_s - b_s - source_s - batch_s, 1e-9)
        vector_cpu = min(max(v_cpu - b_cpu - source_s - batch_s, 0.02 * vector_s), vector_s * cores)

    element = next(iter(raw.map(st.map).take(1)))
    element_bytes = _bytes(element)
    try:
        randoms = tuple(f"{op} in the map" for op in random_ops(st.map, raw.element_spec))
        randoms += tuple(f"{op} in the map" for op in _python_ops(st.map, raw.element_spec))
    except Exception:  # noqa: BLE001 - a map this tracing cannot handle: counted as random, never cached
        randoms = ("the map could not be traced to look for random ops",)
    try:
        randoms += tuple(f"{op} in the source" for op in source_opacity(raw))
    except Exception:  # noqa: BLE001 - a source whose graph cannot be read: never cached
        randoms += ("the source's graph could not be read",)
    cache_read_s = 0.0
    if not randoms and element_bytes * examples <= cache_bytes_allowed:
        # the cache candidate itself, timed after the pass that fills it: what is left of a batch beyond the
        # consumer, the after-cache stage and batching is reading the cache
        c_s, _ = _timed(PipelineRun(data, PipelineVariant(name="cache", cache=True), size), batches)
        cache_read_s = max(c_s - b_s - after_s - batch_s, 0.0)
    files = len(data._files(st, size)) if st.files is not None else 0

    # the map at a width of the core count, no prefetch: what the model's two parallel figures are fitted to
    par_s, _ = _timed(PipelineRun(data, PipelineVariant(name="parallel", map_parallel=cores), size), batches)
    facts = dict(cores=cores, batch_size=batch, examples=examples, source_s=source_s, map_s=map_s, map_cpu=map_cpu,
                 after_s=after_s, batch_s=batch_s, consumer_s=b_s, consumer_cpu=b_cpu, vector_s=vector_s,
                 vector_cpu=vector_cpu, cache_read_s=cache_read_s, element_bytes=element_bytes, random_in_map=randoms,
                 files=files, written_s=w_s,
                 bound_s=b_s, stages_ms={k: round(v, 3) for k, v in stages_ms.items()})
    extra = {"parallel_s": par_s, "trace": str(shot.xplane), "iterator_self_ms": self_ms,
             "profile_steps": shot.steps_marked, "written_cpu_per_batch_s": w_cpu, "bound_cpu_per_batch_s": b_cpu,
             "batches_per_pass": batches}
    return facts, extra
