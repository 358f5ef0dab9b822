"""A pipeline scenario's datasets: what :mod:`tfperf.api.pipelines` declares, built as ``tf.data.Dataset``s.

:func:`data_of` gives the runtime view of a pipeline scenario (:class:`StagesData` for stages, :class:`DatasetData`
for an opaque dataset). The view holds what a block learns once and reuses (the stages at a size, the user's
source, the records counted in a pass); a block keeps one view per scenario (``Block.remember``), so the frozen
declaration holds none of it.

Every variant but ``tf_defaults`` switches tf.data's static rewrites off, so what runs is what its name says: on
TF 2.21 a plain ``.map(f).batch(b)`` otherwise runs as a fused, parallel ``MapAndBatch``. Autotuning stays on: it
only tunes knobs set to ``AUTOTUNE``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tfperf.api.base import (
    AUTOTUNE,
    SEED,
    ScenarioError,
    Size,
    Unsupported,
    Variant,
    call_user,
    describe_callable,
    env_seconds,
    first_line,
    per_size,
)
from tfperf.api.pipelines import (
    STATIC_REWRITES,
    DatasetScenario,
    DatasetVariant,
    PipelineScenario,
    PipelineVariant,
    Stages,
    StagesScenario,
)


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


def set_option(options: tf.data.Options, dotted: str, value: Any) -> None:
    """Set a dotted attribute of tf.data.Options ("autotune.cpu_budget")."""
    *path, last = dotted.split(".")
    target: Any = options
    for part in path:
        target = getattr(target, part)
    setattr(target, last, value)


def _fuse(first: Callable[..., Any], then: Callable[..., Any] | None) -> Callable[..., Any]:
    """`then` after `first` in one map function (one map call per element, like-for-like with the cache variant's
    two)."""
    if then is None:
        return first

    def fused(*args):
        out = first(*args)
        return then(*out) if isinstance(out, tuple) else then(out)
    return fused


def batch_length(batch: Any) -> tf.Tensor:
    return tf.shape(tf.nest.flatten(batch)[0], out_type=tf.int64)[0]


# How long counting a source's records (once, when its cardinality is unknown: a generator, a filter) may take
# before the source is taken for an endless or far too long one (TFPERF_COUNT_DEADLINE_S changes it).
COUNT_DEADLINE_S = 120.0
_CHUNK = 65536


def _count_records(ds: tf.data.Dataset, scenario: str) -> int:
    n = int(ds.cardinality())
    if n >= 0:
        return n
    if n == int(tf.data.INFINITE_CARDINALITY):  # counting would never end: a source ending in .repeat()
        raise ScenarioError(f"scenario {scenario}: the source is infinite (it repeats); give Stages(examples=...) "
                            "for the records of a pass, or a finite source")
    # Unknown (a generator, a filter): counted in chunks of a constant per record, so memory stays small, with a
    # deadline between chunks, so a source that never ends stops with a line instead of hanging the run.
    deadline_s = env_seconds("TFPERF_COUNT_DEADLINE_S", COUNT_DEADLINE_S)
    start, total = time.monotonic(), 0
    ones = ds.map(lambda *_: tf.constant(1, tf.int8)).batch(_CHUNK)
    for chunk in ones:
        total += int(tf.shape(chunk)[0])
        if time.monotonic() - start > deadline_s:
            raise ScenarioError(f"scenario {scenario}: counting the source's records passed {total} after "
                                f"{deadline_s:.0f} s without reaching its end (an endless or far too long source); "
                                "give Stages(examples=...) for the records of a pass, or a finite source")
    return total


class PipelineData:
    """The runtime view of a pipeline scenario, shared by the variants of a block (and the model scenarios that
    read from it)."""

    def __init__(self, scenario: PipelineScenario):
        self.scenario = scenario
        self.name = scenario.name
        self.memo: dict[Any, Any] = {}

    def _remember(self, key: Any, make: Callable[[], Any]) -> Any:
        if key not in self.memo:
            self.memo[key] = make()
        return self.memo[key]

    def variant(self, name: str) -> Variant:
        return self.scenario.variant(name)

    def dataset_for(self, v: Variant, size: Size, examples: int | None = None, repeat: int = 1,
                    cut: bool = True) -> tuple[tf.data.Dataset, dict[str, Any]]:
        raise NotImplementedError

    def pass_examples(self, v: Variant, size: Size) -> int:
        raise NotImplementedError

    def consumer(self, size: Size) -> Callable[[Any], Any] | None:
        return None


class StagesData(PipelineData):
    scenario: StagesScenario

    def stages_at(self, size: Size) -> Stages:
        def make() -> Stages:
            given = self.scenario.stages
            st = given(size) if callable(given) and not isinstance(given, Stages) else given
            if not isinstance(st, Stages):
                raise ScenarioError(f"scenario {self.name}: stages returned {type(st).__name__}, expected tfperf.Stages")
            return st
        return self._remember(("stages", size.name), make)

    def _source(self, st: Stages, size: Size) -> tf.data.Dataset:
        def make() -> tf.data.Dataset:
            ds = call_user(self.name, "source", st.source, size=size)  # type: ignore[arg-type]
            if not isinstance(ds, tf.data.Dataset):
                raise ScenarioError(f"scenario {self.name}: source {describe_callable(st.source)} returned "
                                    f"{type(ds).__name__}, expected a tf.data.Dataset")
            return ds
        return self._remember(("source", size.name), make)

    def _files(self, st: Stages, size: Size) -> list[str]:
        def make() -> list[str]:
            files = call_user(self.name, "files", st.files, size=size) if callable(st.files) else st.files
            if isinstance(files, str) or not isinstance(files, Sequence) or not files \
                    or not all(isinstance(f, str) for f in files):
                raise ScenarioError(f"scenario {self.name}: files must be a non-empty list of paths, got "
                                    f"{type(files).__name__}")
            return list(files)
        return self._remember(("files", size.name), make)

    def pass_examples(self, v: Variant, size: Size) -> int:
        st = self.stages_at(size)
        given = per_size(st.examples, size)
        if given:
            return int(given)

        def count() -> int:
            n = _count_records(self._raw(st, size, interleave=None, deterministic=True), self.name)
            if n <= 0:
                raise ScenarioError(f"scenario {self.name}: the source has no records")
            return n
        return self._remember(("count", size.name), count)

    def _raw(self, st: Stages, size: Size, interleave: str | None, deterministic: bool,
             cycle: int = 0) -> tf.data.Dataset:
        if st.files is not None:
            files = self._files(st, size)
            reader = st.reader or tf.data.TFRecordDataset
            fds = tf.data.Dataset.from_tensor_slices(files)
            if interleave:
                parallel = interleave == "parallel"
                return fds.interleave(reader, cycle_length=min(cycle or 4, len(files)), block_length=1,
                                      num_parallel_calls=tf.data.AUTOTUNE if parallel else None,
                                      deterministic=deterministic if parallel else None)
            return fds.flat_map(reader)
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
        ds = self._raw(st, size, v.interleave, v.deterministic, v.cycle)
        if cut:  # sources of unknown cardinality (files) get it declared: Keras then plans exact epochs
            ds = ds.take(n).apply(tf.data.experimental.assert_cardinality(n))
        if repeat != 1 and not v.cache:
            ds = ds.repeat(repeat)
        if v.shuffle:
            ds = ds.shuffle(v.shuffle, seed=SEED)
        det = None if v.deterministic or par is None else False
        if v.cache:
            # The expensive stage before the cache; the after-cache stage (random augmentation) after it.
            _refuse_random_before_cache(self.name, st.map, ds.element_spec)
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
        for key, value in v.options:
            set_option(options, key, value)
            applied[key] = value
        ds = ds.with_options(options)
        if v.from_memory:
            # The compute-only bound: one batch of this pipeline, materialized once, then read from memory as
            # often as the pass has batches; what is left per batch is the consumer and tf.data's hand-over.
            ds = ds.take(1).cache().repeat(-(-n * max(repeat, 1) // batch) if repeat != -1 else -1)
        info = {"batch_size": batch, "device": "/CPU:0", "tf_data_options": applied, "examples": n * repeat,
                "repeat": repeat}
        if v.from_memory:
            info["input"] = "memory (one batch of the pipeline, cached, repeated)"
        if self.scenario.ideal is not None:
            info.update(self.scenario.ideal(v, size))
        return ds, info


def random_ops(fn: Callable[..., Any], spec: Any) -> list[str]:
    """The random op types in `fn` traced as tf.data traces a map function on elements of `spec` (its nested
    functions included: a Keras random layer's draws sit inside conditionals)."""
    args = spec if isinstance(spec, tuple) else (spec,)
    graph = tf.function(fn).get_concrete_function(*args).graph.as_graph_def()
    ops = {n.op for n in graph.node} | {n.op for f in graph.library.function for n in f.node_def}
    return sorted(o for o in ops if "Random" in o or o.startswith(("Rng", "StatelessMultinomial")))


def _refuse_random_before_cache(scenario: str, fn: Callable[..., Any], spec: Any) -> None:
    """A cache after a random map freezes one draw for every epoch: a speedup that changes what a model trains on
    (keras-io's image classification example, its augmentation in `map`, read "best: cache, 12.29x"). The variant is
    skipped with the reason, never measured."""
    try:
        found = random_ops(fn, spec)
    except Exception:  # noqa: BLE001 - a map this tracing cannot handle: tf.data's own trace will say what is wrong
        return
    if found:
        raise Unsupported(f"not measured: cache() after this map would freeze its random ops ({', '.join(found[:3])}) "
                          "into one draw for every epoch; put the random part in Stages(after_cache=...)")


class DatasetData(PipelineData):
    scenario: DatasetScenario

    def _given(self, size: Size) -> tf.data.Dataset:
        factory = self.scenario.factory
        ds = call_user(self.name, "dataset factory", factory, size=size)  # type: ignore[arg-type]
        if not isinstance(ds, tf.data.Dataset):
            raise ScenarioError(f"scenario {self.name}: dataset factory {describe_callable(factory)} returned "
                                f"{type(ds).__name__}, expected a tf.data.Dataset")
        if int(ds.cardinality()) == int(tf.data.INFINITE_CARDINALITY) and not per_size(self.scenario.batches, size):
            raise ScenarioError(f"scenario {self.name}: dataset factory {describe_callable(factory)} returned an "
                                "infinite dataset; give batches= (batches per pass)")
        return ds

    def _pass(self, size: Size) -> tuple[int, int, int]:
        """(batches, examples, first batch's size) of one pass, counted once per size."""
        def count() -> tuple[int, int, int]:
            ds = self._given(size)
            limit = per_size(self.scenario.batches, size)
            if limit:
                ds = ds.take(int(limit))
            what = describe_callable(self.scenario.factory)
            try:
                counts = ds.reduce((np.int64(0), np.int64(0)),
                                   lambda acc, b: (acc[0] + 1, acc[1] + batch_length(b)))
            except Exception as exc:
                raise ScenarioError(f"scenario {self.name}: reading the dataset from {what} failed: "
                                    f"{first_line(exc)}") from exc
            if int(counts[0]) <= 0:
                raise ScenarioError(f"scenario {self.name}: the dataset from {what} is empty")
            return int(counts[0]), int(counts[1]), int(batch_length(next(iter(ds))))
        return self._remember(("pass", size.name), count)

    def pass_examples(self, v: Variant, size: Size) -> int:
        return self._pass(size)[1]

    def dataset_for(self, v: Variant, size: Size, examples: int | None = None,
                    repeat: int = 1, cut: bool = True) -> tuple[tf.data.Dataset, dict[str, Any]]:
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
            set_option(options, key, value)
        ds = ds.with_options(options)
        info = {"batch_size": batch_size, "device": "/CPU:0",
                "tf_data_options": dict(v.options) or {"static_optimizations": "as given"},
                "examples": per_pass * repeat, "repeat": repeat, "batches_per_pass": batches}
        return ds, info


def data_of(scenario: PipelineScenario) -> PipelineData:
    """A fresh runtime view of a pipeline scenario (a block keeps one per scenario)."""
    if isinstance(scenario, StagesScenario):
        return StagesData(scenario)
    if isinstance(scenario, DatasetScenario):
        return DatasetData(scenario)
    raise TypeError(f"scenario {scenario.name} is not a pipeline scenario")
