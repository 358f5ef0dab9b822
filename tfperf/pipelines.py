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

A round is several fresh passes over the pipeline, each a new iterator drained inside the runtime
(``Dataset.reduce`` in one ``tf.function``), not one Python call per element.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from . import data
from .core import (
    AUTOTUNE,
    Scenario,
    ScenarioError,
    Size,
    Spent,
    Variant,
    call_user,
    describe_callable,
    fingerprint,
    first_line,
    per_size,
)

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
    source: Callable[..., tf.data.Dataset] | None = None
    files: Callable[..., Sequence[str]] | Sequence[str] | None = None
    reader: Callable[[Any], tf.data.Dataset] = tf.data.TFRecordDataset
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


def _tf_width(value: int | None) -> int | None:
    return tf.data.AUTOTUNE if value == AUTOTUNE else value


def dataset_options(tf_defaults: bool) -> tuple[tf.data.Options, dict[str, Any]]:
    """The tf.data.Options a variant runs with, and a JSON record of what was set."""
    options = tf.data.Options()
    if tf_defaults:
        return options, {"static_optimizations": "tf.data defaults", "autotune": True}
    applied: dict[str, Any] = {}
    for knob in STATIC_REWRITES:
        setattr(options.experimental_optimization, knob, False)
        applied[knob] = False
    applied["autotune"] = True
    return options, applied


def _fuse(first: Callable[..., Any], then: Callable[..., Any] | None) -> Callable[..., Any]:
    """`then` after `first` in one map function (one map call per element, like-for-like with the cache variant's
    two)."""
    if then is None:
        return first

    def fused(*args):
        out = first(*args)
        return then(*out) if isinstance(out, tuple) else then(out)
    return fused


def _batch_length(batch: Any) -> tf.Tensor:
    return tf.shape(tf.nest.flatten(batch)[0], out_type=tf.int64)[0]


class PipelineScenario(Scenario):
    """A scenario built by :func:`pipeline` or :func:`dataset`; a model scenario reads its inputs from one."""

    def dataset_for(self, v: Variant, size: Size, examples: int | None = None,
                    repeat: int = 1) -> tuple[tf.data.Dataset, dict[str, Any]]:
        raise NotImplementedError

    def pass_examples(self, v: Variant, size: Size) -> int:
        raise NotImplementedError

    def consumer(self, size: Size) -> Callable[[Any], Any] | None:
        return None

    def make(self, v: Variant, size: Size) -> Any:
        return PipelineRun(self, v, size)


def _count_records(ds: tf.data.Dataset) -> int:
    n = int(ds.cardinality())
    if n >= 0:
        return n
    return int(ds.reduce(np.int64(0), lambda a, _: a + 1))


@dataclass(frozen=True)
class StagesScenario(PipelineScenario):
    stages: Any = None  # Stages, or a function of the Size returning Stages
    ideal: Callable[[PipelineVariant, Size], dict[str, Any]] | None = None

    def stages_at(self, size: Size) -> Stages:
        cache = self.__dict__.setdefault("_stages", {})
        if size.name not in cache:
            st = self.stages(size) if callable(self.stages) and not isinstance(self.stages, Stages) else self.stages
            if not isinstance(st, Stages):
                raise ScenarioError(f"scenario {self.name}: stages returned {type(st).__name__}, expected tfperf.Stages")
            cache[size.name] = st
        return cache[size.name]

    def _source(self, st: Stages, size: Size) -> tf.data.Dataset:
        key = ("source", size.name)
        memo = self.__dict__.setdefault("_memo", {})
        if key not in memo:
            ds = call_user(self.name, "source", st.source, size=size)  # type: ignore[arg-type]
            if not isinstance(ds, tf.data.Dataset):
                raise ScenarioError(f"scenario {self.name}: source {describe_callable(st.source)} returned "
                                    f"{type(ds).__name__}, expected a tf.data.Dataset")
            memo[key] = ds
        return memo[key]

    def _files(self, st: Stages, size: Size) -> list[str]:
        key = ("files", size.name)
        memo = self.__dict__.setdefault("_memo", {})
        if key not in memo:
            files = call_user(self.name, "files", st.files, size=size) if callable(st.files) else st.files
            if isinstance(files, str) or not isinstance(files, Sequence) or not files \
                    or not all(isinstance(f, str) for f in files):
                raise ScenarioError(f"scenario {self.name}: files must be a non-empty list of paths, got "
                                    f"{type(files).__name__}")
            memo[key] = list(files)
        return memo[key]

    def pass_examples(self, v: Variant, size: Size) -> int:
        st = self.stages_at(size)
        given = per_size(st.examples, size)
        if given:
            return int(given)
        memo = self.__dict__.setdefault("_memo", {})
        key = ("count", size.name)
        if key not in memo:
            raw = self._raw(st, size, interleave=None, deterministic=True)
            memo[key] = _count_records(raw)
            if memo[key] <= 0:
                raise ScenarioError(f"scenario {self.name}: the source has no records")
        return memo[key]

    def _raw(self, st: Stages, size: Size, interleave: str | None, deterministic: bool) -> tf.data.Dataset:
        if st.files is not None:
            files = self._files(st, size)
            fds = tf.data.Dataset.from_tensor_slices(files)
            if interleave:
                parallel = interleave == "parallel"
                return fds.interleave(st.reader, cycle_length=min(4, len(files)), block_length=1,
                                      num_parallel_calls=tf.data.AUTOTUNE if parallel else None,
                                      deterministic=deterministic if parallel else None)
            return fds.flat_map(st.reader)
        if st.source is None:
            raise ScenarioError(f"scenario {self.name}: Stages needs a source or files")
        return self._source(st, size)

    def consumer(self, size: Size) -> Callable[[Any], Any] | None:
        return self.stages_at(size).consumer

    def dataset_for(self, v: Variant, size: Size, examples: int | None = None,
                    repeat: int = 1, cut: bool = True) -> tuple[tf.data.Dataset, dict[str, Any]]:
        """The variant's dataset of batches over `repeat` repetitions of exactly `examples` source records (default:
        its pass size), in one iterator. Repetition sits right after the source, so every repetition does the full
        work, except for cache variants, where it sits after the cache: repetitions read what the first cached.
        ``repeat=-1`` repeats without end. ``cut=False`` reads the whole source, uncut (the tf.data service's
        ``distributed_epoch`` shards the source between workers, and a cut or a cardinality assertion would then
        apply to each worker's share)."""
        assert isinstance(v, PipelineVariant)
        st = self.stages_at(size)
        n = examples or self.pass_examples(v, size)
        par, pre = _tf_width(v.map_parallel), _tf_width(v.prefetch)
        batch = v.batch_size or st.batch_size
        ds = self._raw(st, size, v.interleave, v.deterministic)
        if cut:  # sources of unknown cardinality (files) get it declared: Keras then plans exact epochs
            ds = ds.take(n).apply(tf.data.experimental.assert_cardinality(n))
        if repeat != 1 and not v.cache:
            ds = ds.repeat(repeat)
        if v.shuffle:
            ds = ds.shuffle(v.shuffle, seed=data.SEED)
        det = None if v.deterministic or par is None else False
        if v.cache:
            # The expensive stage before the cache; the after-cache stage (random augmentation) after it.
            ds = ds.map(st.map, num_parallel_calls=par, deterministic=det).cache()
            if repeat != 1:
                ds = ds.repeat(repeat)
            if st.after_cache is not None:
                ds = ds.map(st.after_cache, num_parallel_calls=par, deterministic=det)
            ds = ds.batch(batch)
        elif v.vectorized:
            ds = ds.batch(batch).map(st.batch_map, num_parallel_calls=par, deterministic=det)
        else:
            ds = ds.map(_fuse(st.map, st.after_cache), num_parallel_calls=par, deterministic=det).batch(batch)
        if pre is not None:
            ds = ds.prefetch(pre)
        options, applied = dataset_options(v.tf_defaults)
        ds = ds.with_options(options)
        info = {"batch_size": batch, "device": "/CPU:0", "tf_data_options": applied, "examples": n * repeat,
                "repeat": repeat}
        if self.ideal is not None:
            info.update(self.ideal(v, size))
        return ds, info


def pipeline(name: str, stages: Stages | Callable[[Size], Stages], *, widths: Sequence[int] = (),
             shuffles: Sequence[int] = (), batch_sizes: Sequence[int] = (), variants: Sequence[str] | None = None,
             ideal: Callable[[PipelineVariant, Size], dict[str, Any]] | None = None, doc: str = "",
             info: dict[str, Any] | None = None) -> StagesScenario:
    """A pipeline scenario from its stages. ``widths``: fixed map widths to try beside AUTOTUNE; ``shuffles``:
    shuffle buffer sizes; ``batch_sizes``: other batch sizes; ``variants``: keep only these names of the matrix;
    ``ideal``: a function of (variant, size) giving ``ideal_examples_per_sec`` where the constants fix it."""
    probe = stages
    if callable(stages) and not isinstance(stages, Stages):
        from .core import SIZES

        probe = call_user(name, "stages", stages, SIZES["smoke"])  # only builds the Stages record
    if not isinstance(probe, Stages):
        raise ScenarioError(f"scenario {name}: stages must be tfperf.Stages (or a function of the size returning "
                            f"them), got {type(probe).__name__}")
    if probe.source is None and probe.files is None:
        raise ScenarioError(f"scenario {name}: Stages needs a source or files")
    rows = _stage_matrix(probe, widths, shuffles, batch_sizes)
    rows = _keep(name, rows, variants)
    version = fingerprint(sys.modules[__name__], data, rows, stages, probe, ideal)
    return StagesScenario(name=name, version=version, variants=rows, kind="pipeline",
                          doc=doc, info=dict(info or {}), stages=stages, ideal=ideal)


def _keep(name: str, rows: tuple[Variant, ...], keep: Sequence[str] | None) -> tuple[Any, ...]:
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


# ---- an opaque dataset ---------------------------------------------------------------------------------------

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


def _set_option(options: tf.data.Options, dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    target: Any = options
    for part in path:
        target = getattr(target, part)
    setattr(target, last, value)


@dataclass(frozen=True)
class DatasetScenario(PipelineScenario):
    factory: Callable[..., tf.data.Dataset] | None = None
    batches: Any = None  # batches per pass (default: the whole dataset, counted once)

    def _given(self, size: Size) -> tf.data.Dataset:
        ds = call_user(self.name, "dataset factory", self.factory, size=size)  # type: ignore[arg-type]
        if not isinstance(ds, tf.data.Dataset):
            raise ScenarioError(f"scenario {self.name}: dataset factory {describe_callable(self.factory)} returned "
                                f"{type(ds).__name__}, expected a tf.data.Dataset")
        if int(ds.cardinality()) == int(tf.data.INFINITE_CARDINALITY) and not per_size(self.batches, size):
            raise ScenarioError(f"scenario {self.name}: dataset factory {describe_callable(self.factory)} returned an "
                                "infinite dataset; give batches= (batches per pass)")
        return ds

    def _pass(self, size: Size) -> tuple[int, int, int]:
        """(batches, examples, first batch's size) of one pass, counted once per size."""
        memo = self.__dict__.setdefault("_memo", {})
        if size.name not in memo:
            ds = self._given(size)
            limit = per_size(self.batches, size)
            if limit:
                ds = ds.take(int(limit))
            try:
                counts = ds.reduce((np.int64(0), np.int64(0)),
                                   lambda acc, b: (acc[0] + 1, acc[1] + _batch_length(b)))
            except Exception as exc:
                raise ScenarioError(f"scenario {self.name}: reading the dataset from "
                                    f"{describe_callable(self.factory)} failed: {first_line(exc)}") from exc
            if int(counts[0]) <= 0:
                raise ScenarioError(f"scenario {self.name}: the dataset from {describe_callable(self.factory)} is empty")
            memo[size.name] = (int(counts[0]), int(counts[1]), int(_batch_length(next(iter(ds)))))
        return memo[size.name]

    def pass_examples(self, v: Variant, size: Size) -> int:
        return self._pass(size)[1]

    def dataset_for(self, v: Variant, size: Size, examples: int | None = None,
                    repeat: int = 1) -> tuple[tf.data.Dataset, dict[str, Any]]:
        """`repeat` passes of the dataset in one iterator, with the variant's options and appended stages. A pass is
        the whole dataset (`examples` cannot cut an opaque dataset: its batches are already made)."""
        assert isinstance(v, DatasetVariant)
        batches, per_pass, batch_size = self._pass(size)
        ds = self._given(size).take(batches)
        if v.append_cache:
            ds = ds.cache()
        if repeat > 1:
            ds = ds.repeat(repeat)
        if v.append_prefetch:
            ds = ds.prefetch(tf.data.AUTOTUNE)
        options = tf.data.Options()
        for key, value in v.options:
            _set_option(options, key, value)
        ds = ds.with_options(options)
        info = {"batch_size": batch_size, "device": "/CPU:0",
                "tf_data_options": dict(v.options) or {"static_optimizations": "as given"},
                "examples": per_pass * repeat, "repeat": repeat, "batches_per_pass": batches}
        return ds, info


def dataset(name: str, factory: Callable[..., tf.data.Dataset], *, batches: Any = None,
            variants: Sequence[str] | None = None, doc: str = "", info: dict[str, Any] | None = None) -> DatasetScenario:
    """A scenario from a factory returning a finished, batched, finite ``tf.data.Dataset`` (it may take the Size).
    ``batches``: batches per pass (default: the whole dataset); ``variants``: keep only these names."""
    import os

    if not callable(factory):
        raise ScenarioError(f"scenario {name}: the dataset factory must be callable, got {type(factory).__name__}")
    rows = _keep(name, _dataset_matrix(os.cpu_count() or 1), variants)
    version = fingerprint(sys.modules[__name__], rows, factory, batches)
    return DatasetScenario(name=name, version=version, variants=rows, kind="dataset", doc=doc,
                           info=dict(info or {}), factory=factory, batches=batches)


# ---- the runnable ----------------------------------------------------------------------------------------------

class PipelineRun:
    """A built pipeline variant: rounds drain it inside the runtime; profiling pulls batch by batch."""

    def __init__(self, scenario: PipelineScenario, v: Variant, size: Size):
        self.scenario, self.variant, self.size = scenario, v, size
        consumer = scenario.consumer(size)

        def count(total, batch):
            n = total + _batch_length(batch)
            if consumer is None:
                return n
            with tf.control_dependencies(tf.nest.flatten(consumer(batch))):
                return tf.identity(n)

        # One traced function drains an iterator inside the runtime (an eager loop would pay Python per batch); it
        # takes the iterator as its argument, so a rescaled dataset needs no new one.
        @tf.function(autograph=True)
        def drain(iterator):
            total = tf.constant(0, tf.int64)
            for batch in iterator:
                total = count(total, batch)
            return total

        self._drain = drain
        self._consumer = consumer
        self._spent = Spent()  # iterators drained, torn down after the clock stops
        self.info: dict[str, Any] = {}
        self.scale(1)

    def scale(self, passes: int, repeat: int = 1) -> None:
        # More passes of the same pass (what the harness asks: `repeat` stays 1) keep the dataset and its filled
        # cache: no warm-up round is needed after such a scale.
        self.warm_after_scale = self.info.get("repeat") != repeat  # (nothing is built yet at the first scale)
        if self.warm_after_scale:
            self.dataset, info = self.scenario.dataset_for(self.variant, self.size, repeat=repeat)
            self.info.update(info)
        self.info.update(passes=passes)
        self.examples_per_round = self.info["examples"] * passes
        self._passes = passes

    # A pass creates a fresh iterator and drains it, timed; the iterator is torn down after the clock stops
    # (`after_round`; see `Spent` for why), and its teardown is timed apart, in `measured()`.
    def run_round(self) -> int:
        return sum(self.run_pass() for _ in range(self._passes))

    def run_pass(self) -> int:
        """One of the round's passes: a round is `passes` of these back to back."""
        return int(self._drain(self._spent.keep(iter(self.dataset))))

    def after_round(self, seconds: float, examples: int) -> None:
        """Untimed: tear down the iterators the round or pass used, and time that apart."""
        self._spent.release()

    def profile(self, steps: int, mark: Callable[[int], AbstractContextManager[Any]]) -> int:
        it = iter(self.dataset.repeat())
        for i in range(steps):
            with mark(i):
                batch = next(it)
                if self._consumer is not None:
                    self._consumer(batch)
        return steps

    def measured(self) -> dict[str, Any]:
        """How long tearing down a pass's iterator took (untimed for the rounds)."""
        return self._spent.figures()

    def close(self) -> None:
        self._spent.release()


