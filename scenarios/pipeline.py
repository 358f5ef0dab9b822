"""The tf.data pipeline scenario: what each input-pipeline choice costs or gains.

Three preprocessing costs, because the right answer differs between them:

- ``light``: MNIST-shaped uint8 arrays in memory, a cast-and-scale map. Per-element overhead dominates.
- ``cpu``: JPEG TFRecord shards on disk; parse, decode, resize and augment each image. CPU-bound.
- ``latency``: the same records, each arriving after a wait that uses no CPU (simulated remote storage,
  see :func:`scenarios.data.remote_wait`). Latency-bound: parallelism pays even on 2 cores.
- ``step``: the latency-bound pipeline feeding a consumer that does simulated work per batch (a training
  step stand-in). Prefetch only helps when something consumes while the producer produces; without a
  consumer (the other costs) a lone ``prefetch`` has nothing to overlap with.

Every variant but ``*-tf_defaults`` switches tf.data's static rewrites off (``map_parallelization``,
``inject_prefetch``, ``map_and_batch_fusion``, ...) so that what runs is what its name says: on TF 2.21 a
plain ``.map(f).batch(b)`` otherwise runs as a fused, parallel ``MapAndBatch``. The ``tf_defaults``
variants keep those rewrites, to show what a user gets without asking. Autotuning stays on: it only
tunes knobs set to ``AUTOTUNE``.

A round is one pass over a fixed number of examples with a fresh iterator, consumed inside the runtime
(``Dataset.reduce``), not one Python call per element.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from . import data
from .core import Scenario, Size, Variant

VERSION = "2"  # 2: like-for-like baselines, rounds scaled by passes, per-image augmentation
AUTOTUNE = -1  # tf.data.AUTOTUNE, spelled out so the table reads without TensorFlow's constants


@dataclass(frozen=True, kw_only=True)
class PipelineVariant(Variant):
    cost: str = "light"  # light | cpu | latency | step
    map_parallel: int | None = None  # None: sequential map; AUTOTUNE (-1); or a fixed width
    prefetch: int | None = None  # None: no prefetch; AUTOTUNE (-1); or a buffer size
    cache: bool = False  # in-memory cache after the expensive map (a round then reads the cache)
    vectorized: bool = False  # batch before map, so the map runs once per batch
    interleave: str | None = None  # None: read shards one after another; "sequential" | "parallel"
    deterministic: bool = True  # order guarantee of parallel map / interleave
    shuffle: int = 0  # shuffle buffer size, 0 for none
    batch_size: int = 128
    tf_defaults: bool = False  # keep tf.data's default static optimizations (what users get by default)


def _family(cost: str, batch: int, extra: tuple[PipelineVariant, ...] = ()) -> tuple[PipelineVariant, ...]:
    """The variants every cost gets: defaults, naive, parallel (autotuned), prefetch, both."""
    base = f"{cost}-naive"
    rows = (
        PipelineVariant(name=f"{cost}-naive", cost=cost, batch_size=batch,
                        description="sequential map, no prefetch, rewrites off: exactly what is written"),
        PipelineVariant(name=f"{cost}-tf_defaults", cost=cost, batch_size=batch, tf_defaults=True, baseline=base,
                        description="the naive code with tf.data's default options (its rewrites on)"),
        PipelineVariant(name=f"{cost}-parallel_autotune", cost=cost, batch_size=batch, map_parallel=AUTOTUNE,
                        baseline=base, description="map(num_parallel_calls=AUTOTUNE), no prefetch"),
        PipelineVariant(name=f"{cost}-prefetch", cost=cost, batch_size=batch, prefetch=AUTOTUNE, baseline=base,
                        description="sequential map, prefetch(AUTOTUNE)"),
        PipelineVariant(name=f"{cost}-parallel_prefetch", cost=cost, batch_size=batch, map_parallel=AUTOTUNE,
                        prefetch=AUTOTUNE, baseline=base,
                        description="map(num_parallel_calls=AUTOTUNE) and prefetch(AUTOTUNE): the guide's advice"),
    )
    return rows + extra


def _interleaves(cost: str, batch: int, baseline: str) -> tuple[PipelineVariant, ...]:
    # Against the parallel map with prefetch, which differs only by reading the shards one after another.
    common = dict(cost=cost, batch_size=batch, map_parallel=AUTOTUNE, prefetch=AUTOTUNE, baseline=baseline)
    return (
        PipelineVariant(name=f"{cost}-interleave_sequential", interleave="sequential", **common,
                        description="interleave over shards, cycle 4, no parallel calls"),
        PipelineVariant(name=f"{cost}-interleave_parallel", interleave="parallel", **common,
                        description="interleave over shards, cycle 4, num_parallel_calls=AUTOTUNE, deterministic"),
        PipelineVariant(name=f"{cost}-interleave_parallel_nondet", interleave="parallel", deterministic=False,
                        **common, description="parallel interleave with deterministic=False"),
    )


_LIGHT_BEST = "light-parallel_prefetch"
VARIANTS: tuple[PipelineVariant, ...] = (
    _family("light", 128, extra=(
        PipelineVariant(name="light-vectorized", cost="light", vectorized=True, map_parallel=AUTOTUNE,
                        prefetch=AUTOTUNE, baseline=_LIGHT_BEST,
                        description="batch before map: one vectorized map call per batch"),
        PipelineVariant(name="light-shuffle_1k", cost="light", shuffle=1_000, map_parallel=AUTOTUNE,
                        prefetch=AUTOTUNE, baseline=_LIGHT_BEST, more_work=True,
                        description="the best pipeline plus shuffle(1000)"),
        PipelineVariant(name="light-shuffle_10k", cost="light", shuffle=10_000, map_parallel=AUTOTUNE,
                        prefetch=AUTOTUNE, baseline=_LIGHT_BEST, more_work=True,
                        description="the best pipeline plus shuffle(10000)"),
        PipelineVariant(name="light-batch_32", cost="light", batch_size=32, map_parallel=AUTOTUNE,
                        prefetch=AUTOTUNE, baseline=_LIGHT_BEST, description="the best pipeline at batch 32"),
        PipelineVariant(name="light-batch_512", cost="light", batch_size=512, map_parallel=AUTOTUNE,
                        prefetch=AUTOTUNE, baseline=_LIGHT_BEST, description="the best pipeline at batch 512"),
    ))
    + _family("cpu", 32, extra=(
        PipelineVariant(name="cpu-parallel_2", cost="cpu", batch_size=32, map_parallel=2, prefetch=AUTOTUNE,
                        baseline="cpu-parallel_prefetch",
                        description="map at a fixed width of 2 (the core count) instead of AUTOTUNE, prefetch"),
        PipelineVariant(name="cpu-cache", cost="cpu", batch_size=32, map_parallel=AUTOTUNE, prefetch=AUTOTUNE,
                        cache=True, baseline="cpu-parallel_prefetch",
                        description="decode and resize, then cache() in memory; augment after the cache. "
                                    "Rounds read the cache filled by the warm-up pass"),
        PipelineVariant(name="cpu-vectorized", cost="cpu", batch_size=32, vectorized=True, map_parallel=AUTOTUNE,
                        prefetch=AUTOTUNE, baseline="cpu-parallel_prefetch",
                        description="batch records before map: parse, resize and augment per batch; "
                                    "JPEG decode stays per image"),
    ) + _interleaves("cpu", 32, baseline="cpu-parallel_prefetch"))
    + _family("latency", 16, extra=(
        PipelineVariant(name="latency-parallel_8", cost="latency", batch_size=16, map_parallel=8,
                        prefetch=AUTOTUNE, baseline="latency-parallel_prefetch",
                        description="map at a fixed width of 8 instead of AUTOTUNE, prefetch"),
        PipelineVariant(name="latency-parallel_32", cost="latency", batch_size=16, map_parallel=32,
                        prefetch=AUTOTUNE, baseline="latency-parallel_prefetch",
                        description="map at a fixed width of 32 instead of AUTOTUNE, prefetch"),
        PipelineVariant(name="latency-cache", cost="latency", batch_size=16, map_parallel=AUTOTUNE,
                        prefetch=AUTOTUNE, cache=True, baseline="latency-parallel_prefetch",
                        description="fetch once, cache() in memory: rounds read the cache filled by the warm-up"),
    ) + _interleaves("latency", 16, baseline="latency-parallel_prefetch"))
    + (
        PipelineVariant(name="step-naive", cost="step", batch_size=16,
                        description="latency-bound input feeding a consumer that works per batch; all sequential"),
        PipelineVariant(name="step-prefetch", cost="step", batch_size=16, prefetch=AUTOTUNE, baseline="step-naive",
                        description="prefetch alone: the producer runs while the consumer works"),
        PipelineVariant(name="step-parallel_8_prefetch", cost="step", batch_size=16, map_parallel=8,
                        prefetch=AUTOTUNE, baseline="step-prefetch",
                        description="map width 8 added to prefetch: the consumer's work becomes the bound"),
    )
)

# The pipelines the training scenario reuses, by model: the naive one and the best one measured here. On
# 2 cores the light map is bound by per-element overhead, which parallelism cannot hide and a vectorized
# map removes (10x); for JPEGs, caching the decoded images wins (3.8x; augmentation stays after the cache).
TRAINING_INPUTS = {
    ("mlp", "naive"): "light-naive",
    ("mlp", "best"): "light-vectorized",
    ("cnn", "naive"): "cpu-naive",
    ("cnn", "best"): "cpu-cache",
}


def _tf_width(value: int | None) -> int | None:
    return tf.data.AUTOTUNE if value == AUTOTUNE else value


def dataset_options(v: PipelineVariant) -> tuple[tf.data.Options, dict[str, Any]]:
    """The tf.data.Options a variant runs with, and a JSON record of what was set."""
    options = tf.data.Options()
    if v.tf_defaults:
        return options, {"static_optimizations": "tf.data defaults", "autotune": True}
    opt = options.experimental_optimization
    applied: dict[str, Any] = {}
    for knob in ("apply_default_optimizations", "map_parallelization", "inject_prefetch", "map_and_batch_fusion",
                 "parallel_batch", "map_fusion", "noop_elimination", "shuffle_and_repeat_fusion"):
        setattr(opt, knob, False)
        applied[knob] = False
    applied["autotune"] = True
    return options, applied


@functools.lru_cache(maxsize=4)
def _arrays(n: int) -> tuple[np.ndarray, np.ndarray]:
    return data.mnist_like(n)


def _light(x, y):
    return tf.cast(x, tf.float32) / 255.0, y


def _parse(records, batched: bool):
    parse = tf.io.parse_example if batched else tf.io.parse_single_example
    ex = parse(records, data.IMAGE_FEATURES)
    return ex["image"], ex["label"]


def _decode_resize(side: int):
    def fn(record):
        jpeg, label = _parse(record, batched=False)
        img = tf.image.resize(tf.io.decode_jpeg(jpeg, channels=3), [side, side])
        return img, label
    return fn


def _augment(img, label):
    """Random flip and brightness, drawn per image whether `img` is one image or a batch of them (a batch-wide
    `random_brightness` would draw one delta per batch: less work than the per-element map it is compared to)."""
    img = tf.image.random_flip_left_right(img)
    lead = tf.shape(img)[:-3]
    delta = tf.random.uniform(tf.concat([lead, [1, 1, 1]], axis=0), -25.0, 25.0)
    return tf.clip_by_value(img + delta, 0.0, 255.0) / 255.0, label


def _cpu_full(side: int):
    decode = _decode_resize(side)
    return lambda record: _augment(*decode(record))


def _cpu_batched(side: int):
    def fn(records):
        jpegs, labels = _parse(records, batched=True)
        imgs = tf.map_fn(lambda j: tf.io.decode_jpeg(j, channels=3), jpegs, fn_output_signature=tf.uint8)
        imgs = tf.image.resize(imgs, [side, side])
        return _augment(imgs, labels)
    return fn


def _latency_map(micros: int):
    return lambda record: _parse(data.remote_wait(record, micros), batched=False)


def pass_examples(v: PipelineVariant, size: Size) -> int:
    """Source records in one pass of the variant at this size (its dataset's length when not told otherwise)."""
    if v.cost == "light":
        return size.light_examples
    return size.latency_examples if v.cost in ("latency", "step") else size.image_pass


def build_dataset(v: PipelineVariant, size: Size, examples: int | None = None,
                  repeat: int = 1) -> tuple[tf.data.Dataset, dict]:
    """The variant's dataset of batches over `repeat` repetitions of exactly `examples` source records (default:
    its pass size), in one iterator. Repetition sits right after the source, so every repetition does the full
    work, except for cache variants, where it sits after the cache: repetitions read what the first cached."""
    par, pre = _tf_width(v.map_parallel), _tf_width(v.prefetch)
    cost = "latency" if v.cost == "step" else v.cost
    if cost == "light":
        n = examples or pass_examples(v, size)
        x, y = _arrays(n)
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        per_element, per_batch, pre_cache = _light, _light, None
    else:
        n = examples or pass_examples(v, size)
        images = data.image_shards(size.image_examples, size.image_shards, size.image_side)
        if n > images.count:
            raise ValueError(f"{v.name}: {n} examples asked, the image set has {images.count}")
        wait = size.latency_us
        files = tf.data.Dataset.from_tensor_slices(list(images.files))
        if v.interleave:
            reader = (lambda f: data.slow_records(f, wait)) if cost == "latency" else tf.data.TFRecordDataset
            parallel = v.interleave == "parallel"
            ds = files.interleave(reader, cycle_length=4, block_length=1,
                                  num_parallel_calls=tf.data.AUTOTUNE if parallel else None,
                                  deterministic=v.deterministic if parallel else None)
            per_element = (lambda r: _parse(r, batched=False)) if cost == "latency" else _cpu_full(size.model_side)
        else:
            ds = tf.data.TFRecordDataset(list(images.files))
            per_element = _latency_map(wait) if cost == "latency" else _cpu_full(size.model_side)
        per_batch = _cpu_batched(size.model_side)
        pre_cache = (_latency_map(wait) if cost == "latency" else _decode_resize(size.model_side)) if v.cache else None
        # TFRecord sources have unknown cardinality; declaring it lets Keras plan exact epochs (without it,
        # fit runs into OutOfRange and counts one optimizer step more than it trained).
        ds = ds.take(n).apply(tf.data.experimental.assert_cardinality(n))
    if repeat > 1 and pre_cache is None:
        ds = ds.repeat(repeat)
    if v.shuffle:
        ds = ds.shuffle(v.shuffle, seed=data.SEED)
    det = None if v.deterministic or par is None else False
    if pre_cache is not None:
        # Expensive part before the cache; the cheap random augmentation after it, so it stays random.
        ds = ds.map(pre_cache, num_parallel_calls=par, deterministic=det).cache()
        if repeat > 1:
            ds = ds.repeat(repeat)
        if cost == "cpu":
            ds = ds.map(_augment, num_parallel_calls=par, deterministic=det)
        ds = ds.batch(v.batch_size)
    elif v.vectorized:
        ds = ds.batch(v.batch_size).map(per_batch, num_parallel_calls=par, deterministic=det)
    else:
        ds = ds.map(per_element, num_parallel_calls=par, deterministic=det).batch(v.batch_size)
    if pre is not None:
        ds = ds.prefetch(pre)
    options, applied = dataset_options(v)
    ds = ds.with_options(options)
    info = {"batch_size": v.batch_size, "device": "/CPU:0", "tf_data_options": applied, "cost": v.cost,
            "examples": n * repeat, "repeat": repeat}
    if cost == "latency":
        info["latency_us"] = wait
    if v.cost == "step":
        info["step_us"] = size.step_us
    return ds, info


@functools.lru_cache(maxsize=1)
def simulator_cpu_s() -> float:
    """CPU seconds the simulated remote wait itself costs per element, measured here at a wait of 0
    (sequential map, the fastest of nine passes of 512 elements: an iterator's speed is bimodal on TF 2.21,
    and the median of three passes read 604 us in one run and 261 us in the next; the fastest pass is the cost
    floor, so the cap it gives is the highest, the ideal the most conservative). It caps what any width can
    reach."""
    ds = tf.data.Dataset.range(512).map(lambda x: data.remote_wait(x, 0)).with_options(dataset_options(
        PipelineVariant(name="probe"))[0])
    drain = tf.function(lambda: ds.reduce(np.int64(0), lambda a, b: a + 1))
    drain()
    times = []
    for _ in range(9):
        start = time.perf_counter()
        drain()
        times.append(time.perf_counter() - start)
    return float(min(times)) / 512


def latency_width(v: PipelineVariant) -> int | None:
    """How many waits a latency variant keeps in flight, where its knobs fix it (None under AUTOTUNE, whose
    choice the trace records, or under tf.data's own rewrites)."""
    if v.cost != "latency" or v.tf_defaults or v.cache:
        return None
    if v.interleave == "parallel":
        return None
    if v.map_parallel is None or v.interleave == "sequential":
        return 1
    return v.map_parallel if v.map_parallel > 0 else None


def latency_ideal(v: PipelineVariant, size: Size) -> dict[str, Any]:
    """The variant's ideal throughput from its constants: `width` waits in flight, each costing the wait plus
    the simulator's own CPU, capped by the cores that CPU runs on."""
    width = latency_width(v)
    if width is None:
        return {}
    cpu = simulator_cpu_s()
    cores = os.cpu_count() or 1
    by_wait = width / (size.latency_us / 1e6 + cpu)
    by_cpu = cores / cpu
    return {"latency_width": width, "simulator_cpu_us": round(cpu * 1e6, 1),
            "ideal_examples_per_sec": min(by_wait, by_cpu),
            "ideal_bound": "wait" if by_wait <= by_cpu else "simulator CPU"}


class PipelineRun:
    """A built pipeline variant: rounds drain it inside the runtime; profiling pulls batch by batch."""

    def __init__(self, v: PipelineVariant, size: Size):
        self.variant, self.size = v, size
        step_us = size.step_us if v.cost == "step" else 0

        def count(total, batch):
            n = total + tf.shape(batch[0], out_type=tf.int64)[0]
            return data.remote_wait(n, step_us) if step_us else n

        self._count = count
        self._step_us = step_us
        self.info: dict[str, Any] = {}
        self.scale(1)
        self.info.update(latency_ideal(v, size))

    def scale(self, passes: int, repeat: int = 1) -> None:
        self.dataset, info = build_dataset(self.variant, self.size, repeat=repeat)
        self.info.update(info, passes=passes)
        self.examples_per_round = info["examples"] * passes
        self._passes = tf.constant(passes, tf.int64)
        dataset, count = self.dataset, self._count

        # One traced function for the whole round (an eager Dataset.reduce re-traces its reduce function on
        # every call); each loop iteration drains a fresh iterator.
        @tf.function(autograph=True)
        def drain(passes):
            total = tf.constant(0, tf.int64)
            for _ in tf.range(passes):
                total += dataset.reduce(np.int64(0), count)
            return total

        self._drain = drain

    def run_round(self) -> int:
        return int(self._drain(self._passes))

    def profile(self, steps: int, mark: Callable[[int], AbstractContextManager[Any]]) -> int:
        it = iter(self.dataset.repeat())
        for i in range(steps):
            with mark(i):
                batch = next(it)
                if self._step_us:
                    data.remote_wait(tf.shape(batch[0])[0], self._step_us)
        return steps

    def measured(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        pass


SCENARIO = Scenario(name="pipeline", version=VERSION, variants=VARIANTS,
                    build=lambda v, size: PipelineRun(v, size),  # type: ignore[arg-type]
                    doc=__doc__ or "", block=lambda v: v.cost)  # type: ignore[attr-defined]
