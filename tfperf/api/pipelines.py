"""Input-pipeline scenarios from what a user has: a pipeline given as stages, or a finished dataset.

:func:`pipeline` takes the *stages* of a pipeline (:class:`Stages`: a source of raw records or files and a
reader, a per-element preprocessing function, optionally a cheap per-element stage that must stay after a cache,
a batch-level version of the whole preprocessing, a batch size) and builds the matrix the guide's advice is
about: ``naive`` (sequential map, no prefetch, tf.data's static rewrites off: exactly what is written),
``tf_defaults`` (the same code with tf.data's default options), ``parallel_autotune``, ``prefetch``,
``parallel_prefetch`` (both, the guide's advice), fixed map widths, ``cache`` (after the expensive stage),
``vectorized`` (when a batch-level function is given), interleave over files (when files are given),
shuffle and batch sizes. Every variant but ``tf_defaults`` switches the static rewrites off
(``map_parallelization``, ``inject_prefetch``, ``map_and_batch_fusion``, ...) so that what runs is what its
name says: on TF 2.21 a plain ``.map(f).batch(b)`` otherwise runs as a fused, parallel ``MapAndBatch``.
Autotuning stays on: it only tunes knobs set to ``AUTOTUNE``.

:func:`dataset` takes a factory that returns a finished ``tf.data.Dataset`` the user cannot restructure; its
variants are what ``tf.data.Options`` and appended stages can change.

These are declarations: frozen data, no TensorFlow. :mod:`tfperf.runtime.datasets` builds a variant's
``tf.data.Dataset`` from them; :mod:`tfperf.runtime.pipelines` times it (a round is several fresh passes, each a
new iterator drained inside the runtime, not one Python call per element).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .base import (
    AUTOTUNE,
    SIZES,
    Scenario,
    ScenarioError,
    Size,
    Variant,
    call_user,
    fingerprint,
    source_of,
)

RUNTIME = "tfperf.runtime.datasets"  # builds what these declare: part of every pipeline scenario's version
STATIC_REWRITES = ("apply_default_optimizations", "map_parallelization", "inject_prefetch", "map_and_batch_fusion",
                   "parallel_batch", "map_fusion", "noop_elimination", "shuffle_and_repeat_fusion")


@dataclass(frozen=True, kw_only=True)
class Stages:
    """A pipeline as its stages. Give ``source`` (a factory returning a finite dataset of raw records) or
    ``files`` (a list of paths, or a factory returning one) with a ``reader`` (a path to a dataset of records).
    Factories may take the :class:`~tfperf.Size` as their one argument, to scale with ``--tfperf-size``.

    - ``map``: the per-element preprocessing, the expensive stage (what ``cache`` caches);
    - ``after_cache``: an optional cheap per-element stage that must run after a cache (random augmentation);
    - ``batch_map``: optional, the whole preprocessing (``map`` then ``after_cache``) on a batch of records;
      gives the ``vectorized`` variant;
    - ``consumer``: optional per-batch work standing in for a training step (TensorFlow ops on the batch);
      prefetch only pays when something consumes while the producer produces;
    - ``examples``: records per pass (an int, or a mapping by size name); default: the whole source.
    """

    map: Callable[..., Any]
    batch_size: int
    source: Callable[..., Any] | None = None
    files: Callable[..., Sequence[str]] | Sequence[str] | None = None
    reader: Callable[[Any], Any] | None = None  # None: tf.data.TFRecordDataset
    after_cache: Callable[..., Any] | None = None
    batch_map: Callable[..., Any] | None = None
    consumer: Callable[[Any], Any] | None = None
    examples: Any = None


@dataclass(frozen=True, kw_only=True)
class PipelineVariant(Variant):
    map_parallel: int | None = None  # None: sequential map; AUTOTUNE (-1); or a fixed width
    prefetch: int | None = None  # None: no prefetch; AUTOTUNE (-1); or a buffer size
    cache: bool = False  # in-memory cache after the expensive map (a round then reads the cache)
    vectorized: bool = False  # batch before map, so the map runs once per batch
    interleave: str | None = None  # None: read files one after another; "sequential" | "parallel"
    deterministic: bool = True  # order guarantee of parallel map / interleave
    shuffle: int = 0  # shuffle buffer size, 0 for none
    batch_size: int | None = None  # None: the stages' batch size
    tf_defaults: bool = False  # keep tf.data's default static optimizations (what users get by default)
    # The knobs below are the tuner's (tfperf tune); the matrix leaves them at their defaults.
    cycle: int = 0  # interleave cycle length (0: min(4, files))
    options: tuple[tuple[str, Any], ...] = ()  # (dotted tf.data.Options attribute, value) set on top
    from_memory: bool = False  # the compute-only bound: this pipeline's first batch, cached, repeated


def _stage_matrix(stages: Stages, widths: Sequence[int], shuffles: Sequence[int],
                  batch_sizes: Sequence[int]) -> tuple[PipelineVariant, ...]:
    """Every variant the stages allow. Each differs from its baseline by the knob its name names."""
    naive = PipelineVariant(name="naive", description="sequential map, no prefetch, rewrites off: exactly what is "
                                                      "written")
    best = PipelineVariant(name="parallel_prefetch", map_parallel=AUTOTUNE, prefetch=AUTOTUNE, baseline=naive.name,
                           description="map(num_parallel_calls=AUTOTUNE) and prefetch(AUTOTUNE): the guide's advice")
    tuned = dict(map_parallel=AUTOTUNE, prefetch=AUTOTUNE, baseline=best.name)
    rows = [
        naive,
        PipelineVariant(name="tf_defaults", tf_defaults=True, baseline=naive.name,
                        description="the naive code with tf.data's default options (its rewrites on)"),
        PipelineVariant(name="parallel_autotune", map_parallel=AUTOTUNE, baseline=naive.name,
                        description="map(num_parallel_calls=AUTOTUNE), no prefetch"),
        PipelineVariant(name="prefetch", prefetch=AUTOTUNE, baseline=naive.name,
                        description="sequential map, prefetch(AUTOTUNE)"),
        best,
    ]
    rows += [PipelineVariant(name=f"parallel_{w}", map_parallel=w, prefetch=AUTOTUNE, baseline=best.name,
                             description=f"map at a fixed width of {w} instead of AUTOTUNE, prefetch") for w in widths]
    rows.append(PipelineVariant(name="cache", cache=True, **tuned,  # type: ignore[arg-type]
                                description="the expensive map, then cache() in memory"
                                            + (", then the after-cache stage" if stages.after_cache else "")
                                            + ": rounds read the cache the warm-up filled"))
    if stages.batch_map is not None:
        rows.append(PipelineVariant(name="vectorized", vectorized=True, **tuned,  # type: ignore[arg-type]
                                    description="batch before map: one batch-level map call per batch"))
    if stages.files is not None:
        rows += [
            PipelineVariant(name="interleave_sequential", interleave="sequential", **tuned,  # type: ignore[arg-type]
                            description="interleave over files, cycle 4, no parallel calls"),
            PipelineVariant(name="interleave_parallel", interleave="parallel", **tuned,  # type: ignore[arg-type]
                            description="interleave over files, cycle 4, num_parallel_calls=AUTOTUNE, deterministic"),
            PipelineVariant(name="interleave_parallel_nondet", interleave="parallel", deterministic=False,
                            **tuned,  # type: ignore[arg-type]
                            description="parallel interleave with deterministic=False"),
        ]
    rows += [PipelineVariant(name=f"shuffle_{n}", shuffle=n, more_work=True, **tuned,  # type: ignore[arg-type]
                             description=f"the guide's pipeline plus shuffle({n})") for n in shuffles]
    rows += [PipelineVariant(name=f"batch_{b}", batch_size=b, **tuned,  # type: ignore[arg-type]
                             description=f"the guide's pipeline at batch {b}") for b in batch_sizes]
    return tuple(rows)


class PipelineScenario(Scenario):
    """A scenario built by :func:`pipeline` or :func:`dataset`; a model scenario reads its inputs from one."""


@dataclass(frozen=True)
class StagesScenario(PipelineScenario):
    stages: Any = None  # Stages, or a function of the Size returning Stages
    ideal: Callable[[PipelineVariant, Size], dict[str, Any]] | None = None


def pipeline(name: str, stages: Stages | Callable[[Size], Stages], *, widths: Sequence[int] = (),
             shuffles: Sequence[int] = (), batch_sizes: Sequence[int] = (), variants: Sequence[str] | None = None,
             ideal: Callable[[PipelineVariant, Size], dict[str, Any]] | None = None, doc: str = "",
             info: dict[str, Any] | None = None) -> StagesScenario:
    """A pipeline scenario from its stages. ``widths``: fixed map widths to try beside AUTOTUNE; ``shuffles``:
    shuffle buffer sizes; ``batch_sizes``: other batch sizes; ``variants``: keep only these names of the matrix;
    ``ideal``: a function of (variant, size) giving ``ideal_examples_per_sec`` where the constants fix it."""
    probe = stages
    if callable(stages) and not isinstance(stages, Stages):
        probe = call_user(name, "stages", stages, SIZES["smoke"])  # only builds the Stages record
    if not isinstance(probe, Stages):
        raise ScenarioError(f"scenario {name}: stages must be tfperf.Stages (or a function of the size returning "
                            f"them), got {type(probe).__name__}")
    if probe.source is None and probe.files is None:
        raise ScenarioError(f"scenario {name}: Stages needs a source or files")
    rows = _stage_matrix(probe, widths, shuffles, batch_sizes)
    rows = keep_variants(name, rows, variants)
    version = fingerprint(sys.modules[__name__], source_of(RUNTIME), rows, stages, probe, ideal)
    return StagesScenario(name=name, version=version, variants=rows, kind="pipeline",
                          doc=doc, info=dict(info or {}), stages=stages, ideal=ideal)


def keep_variants(name: str, rows: tuple[Variant, ...], keep: Sequence[str] | None) -> tuple[Any, ...]:
    if keep is None:
        return rows
    known = {v.name for v in rows}
    unknown = [k for k in keep if k not in known]
    if unknown:
        raise ScenarioError(f"scenario {name}: variants {unknown} are not in its matrix ({', '.join(sorted(known))})")
    kept = tuple(v for v in rows if v.name in keep)
    names = {v.name for v in kept}
    # a kept variant whose baseline was left out compares with the nearest kept ancestor
    by_name = {v.name: v for v in rows}
    out = []
    for v in kept:
        base = v.baseline
        while base and base not in names:
            base = by_name[base].baseline
        out.append(dataclasses.replace(v, baseline=base))
    return tuple(out)


@dataclass(frozen=True, kw_only=True)
class DatasetVariant(Variant):
    options: tuple[tuple[str, Any], ...] = ()  # (dotted tf.data.Options attribute, value) set on top of the user's
    append_prefetch: bool = False  # .prefetch(AUTOTUNE) appended
    append_cache: bool = False  # .cache() appended: rounds read the cache the warm-up filled


def _dataset_matrix(cores: int) -> tuple[DatasetVariant, ...]:
    off = tuple((f"experimental_optimization.{k}", False) for k in STATIC_REWRITES)
    given = DatasetVariant(name="as_given", description="the dataset as the factory returns it (tf.data's defaults)")
    rewrites_off = DatasetVariant(name="rewrites_off", options=off, baseline=given.name,
                                  description="tf.data's static rewrites off (map_parallelization, inject_prefetch, "
                                              "map_and_batch_fusion, ...)")

    def only(knob: str) -> tuple[tuple[str, Any], ...]:
        return tuple((k, v) for k, v in off if k != "experimental_optimization.apply_default_optimizations"
                     and k != f"experimental_optimization.{knob}") + ((f"experimental_optimization.{knob}", True),)

    return (
        given,
        rewrites_off,
        DatasetVariant(name="map_parallelization", options=only("map_parallelization"), baseline=rewrites_off.name,
                       description="static rewrites off but map_parallelization (sequential maps run in parallel)"),
        DatasetVariant(name="inject_prefetch", options=only("inject_prefetch"), baseline=rewrites_off.name,
                       description="static rewrites off but inject_prefetch (a prefetch after the last stage)"),
        DatasetVariant(name="autotune_off", options=(("autotune.enabled", False),), baseline=given.name,
                       description="Options.autotune.enabled = False: AUTOTUNE knobs fall back to fixed values"),
        DatasetVariant(name="autotune_cpu_1", options=(("autotune.cpu_budget", 1),), baseline=given.name,
                       description="autotune.cpu_budget = 1: AUTOTUNE may use one core"),
        DatasetVariant(name="autotune_ram_64mb", options=(("autotune.ram_budget", 64 << 20),), baseline=given.name,
                       description="autotune.ram_budget = 64 MiB: the buffers AUTOTUNE may grow"),
        DatasetVariant(name="threadpool_1", options=(("threading.private_threadpool_size", 1),), baseline=given.name,
                       description="threading.private_threadpool_size = 1: one thread for the whole pipeline"),
        DatasetVariant(name=f"threadpool_{cores}", options=(("threading.private_threadpool_size", cores),),
                       baseline=given.name,
                       description=f"threading.private_threadpool_size = {cores} (the core count), own pool"),
        DatasetVariant(name="nondeterministic", options=(("deterministic", False),), baseline=given.name,
                       description="Options.deterministic = False: parallel stages may deliver out of order"),
        DatasetVariant(name="prefetch", append_prefetch=True, baseline=given.name,
                       description="prefetch(AUTOTUNE) appended"),
        DatasetVariant(name="cache", append_cache=True, baseline=given.name,
                       description="cache() appended: rounds read the cache the warm-up filled"),
    )


@dataclass(frozen=True)
class DatasetScenario(PipelineScenario):
    factory: Callable[..., Any] | None = None
    batches: Any = None  # batches per pass (default: the whole dataset, counted once)


def dataset(name: str, factory: Callable[..., Any], *, batches: Any = None,
            variants: Sequence[str] | None = None, doc: str = "", info: dict[str, Any] | None = None) -> DatasetScenario:
    """A scenario from a factory returning a finished, batched, finite ``tf.data.Dataset`` (it may take the Size).
    ``batches``: batches per pass (default: the whole dataset); ``variants``: keep only these names."""
    if not callable(factory):
        raise ScenarioError(f"scenario {name}: the dataset factory must be callable, got {type(factory).__name__}")
    rows = keep_variants(name, _dataset_matrix(os.cpu_count() or 1), variants)
    version = fingerprint(sys.modules[__name__], source_of(RUNTIME), rows, factory, batches)
    return DatasetScenario(name=name, version=version, variants=rows, kind="dataset", doc=doc,
                           info=dict(info or {}), factory=factory, batches=batches)
