"""The built-in input pipelines, declared with the public builder (:func:`tfperf.pipeline`), as a user would.

Four costs, because the right answer differs between them:

- ``light``: MNIST-shaped uint8 arrays in memory, a cast-and-scale map. Per-element overhead dominates.
- ``cpu``: JPEG TFRecord shards on disk; parse, decode and resize each image (the expensive stage, what
  ``cache`` caches), then a random flip and brightness drawn per image (after the cache). CPU-bound.
- ``latency``: the same records, each fetched after a wait that uses no CPU (simulated remote storage, see
  :func:`tfperf.data.remote_wait`) inside the map. Latency-bound: parallelism pays even on 2 cores. Its
  interleave variants are left out: the wait is in the map, so interleaving the reads would change nothing.
- ``step``: the latency-bound pipeline feeding a consumer that does simulated work per batch (a training step
  stand-in). Prefetch only helps when something consumes while the producer produces.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

import numpy as np
import tensorflow as tf

import tfperf
from tfperf.api.pipelines import PipelineVariant
from tfperf.runtime.datasets import dataset_options

from . import data

# What each size means for these pipelines' data.
LIGHT_EXAMPLES = {"smoke": 1024, "small": 2048, "default": 2048, "large": 4096}  # MNIST-shaped examples per pass
IMAGES = {"smoke": (96, 4, 64), "small": (512, 8, 96), "default": (1536, 8, 128), "large": (4096, 16, 160)}  # count, shards, side
IMAGE_PASS = {"smoke": 48, "small": 128, "default": 384, "large": 1024}  # JPEG records per pass
MODEL_SIDE = {"smoke": 32, "small": 48, "default": 64, "large": 96}  # decoded images are resized to this side
LATENCY_EXAMPLES = {"smoke": 24, "small": 48, "default": 64, "large": 128}  # records per latency-bound pass
LATENCY_US = {"smoke": 1000, "small": 2000, "default": 2000, "large": 2000}  # simulated wait per record
STEP_US = {"smoke": 20000, "small": 30000, "default": 30000, "large": 30000}  # simulated consumer work per batch


@functools.lru_cache(maxsize=4)
def _arrays(n: int) -> tuple[np.ndarray, np.ndarray]:
    return data.mnist_like(n)


def _light(x, y):
    return tf.cast(x, tf.float32) / 255.0, y


def light_stages(size: tfperf.Size) -> tfperf.Stages:
    n = tfperf.per_size(LIGHT_EXAMPLES, size)
    return tfperf.Stages(source=lambda: tf.data.Dataset.from_tensor_slices(_arrays(n)), map=_light, batch_map=_light,
                         batch_size=128, examples=n)


def _parse(records, batched: bool):
    parse = tf.io.parse_example if batched else tf.io.parse_single_example
    ex = parse(records, data.IMAGE_FEATURES)
    return ex["image"], ex["label"]


def _decode_resize(side: int):
    def decode_resize(record):
        jpeg, label = _parse(record, batched=False)
        return tf.image.resize(tf.io.decode_jpeg(jpeg, channels=3), [side, side]), label
    return decode_resize


def augment(img, label):
    """Random flip and brightness, drawn per image whether `img` is one image or a batch of them (a batch-wide
    `random_brightness` would draw one delta per batch: less work than the per-element map it is compared to)."""
    img = tf.image.random_flip_left_right(img)
    lead = tf.shape(img)[:-3]
    delta = tf.random.uniform(tf.concat([lead, [1, 1, 1]], axis=0), -25.0, 25.0)
    return tf.clip_by_value(img + delta, 0.0, 255.0) / 255.0, label


def _decode_batch(side: int):
    def decode_batch(records):
        jpegs, labels = _parse(records, batched=True)
        imgs = tf.map_fn(lambda j: tf.io.decode_jpeg(j, channels=3), jpegs, fn_output_signature=tf.uint8)
        return augment(tf.image.resize(imgs, [side, side]), labels)
    return decode_batch


def _shards(size: tfperf.Size) -> list[str]:
    count, shards, side = tfperf.per_size(IMAGES, size)
    return list(data.image_shards(count, shards, side).files)


def cpu_stages(size: tfperf.Size) -> tfperf.Stages:
    side = tfperf.per_size(MODEL_SIDE, size)
    return tfperf.Stages(files=_shards, map=_decode_resize(side), after_cache=augment, batch_map=_decode_batch(side),
                         batch_size=32, examples=tfperf.per_size(IMAGE_PASS, size))


def _fetch(micros: int):
    def fetch(record):
        return _parse(data.remote_wait(record, micros), batched=False)
    return fetch


def latency_stages(size: tfperf.Size) -> tfperf.Stages:
    return tfperf.Stages(files=_shards, map=_fetch(tfperf.per_size(LATENCY_US, size)), batch_size=16,
                         examples=tfperf.per_size(LATENCY_EXAMPLES, size))


def step_stages(size: tfperf.Size) -> tfperf.Stages:
    step_us = tfperf.per_size(STEP_US, size)

    def train_step_stand_in(batch):
        return data.remote_wait(tf.shape(batch[0])[0], step_us)

    return tfperf.Stages(files=_shards, map=_fetch(tfperf.per_size(LATENCY_US, size)), batch_size=16,
                         examples=tfperf.per_size(LATENCY_EXAMPLES, size), consumer=train_step_stand_in)


@functools.lru_cache(maxsize=1)
def simulator_cpu_s() -> float:
    """CPU seconds the simulated remote wait itself costs per element, measured here at a wait of 0 (sequential
    map, the fastest of nine passes of 512 elements: an iterator's speed is bimodal on TF 2.21, and the median of
    three passes read 604 us in one run and 261 us in the next; the fastest pass is the cost floor, so the cap it
    gives is the highest, the ideal the most conservative). It caps what any width can reach."""
    ds = tf.data.Dataset.range(512).map(lambda x: data.remote_wait(x, 0)).with_options(dataset_options(False)[0])
    drain = tf.function(lambda: ds.reduce(np.int64(0), lambda a, b: a + 1))
    drain()
    times = []
    for _ in range(9):
        start = time.perf_counter()
        drain()
        times.append(time.perf_counter() - start)
    return float(min(times)) / 512


def latency_width(v: PipelineVariant) -> int | None:
    """How many waits a latency variant keeps in flight, where its knobs fix it (None under AUTOTUNE, whose choice
    the trace records, or under tf.data's own rewrites, or when it reads a cache)."""
    if v.tf_defaults or v.cache or v.interleave:
        return None
    if v.map_parallel is None:
        return 1
    return v.map_parallel if v.map_parallel > 0 else None


def latency_ideal(v: PipelineVariant, size: tfperf.Size) -> dict[str, Any]:
    """The variant's ideal throughput from its constants: `width` waits in flight, each costing the wait plus the
    simulator's own CPU, capped by the cores that CPU runs on."""
    width = latency_width(v)
    if width is None:
        return {}
    cpu = simulator_cpu_s()
    cores = os.cpu_count() or 1
    by_wait = width / (tfperf.per_size(LATENCY_US, size) / 1e6 + cpu)
    by_cpu = cores / cpu
    return {"latency_width": width, "latency_us": tfperf.per_size(LATENCY_US, size),
            "simulator_cpu_us": round(cpu * 1e6, 1), "ideal_examples_per_sec": min(by_wait, by_cpu),
            "ideal_bound": "wait" if by_wait <= by_cpu else "simulator CPU"}


light = tfperf.pipeline(
    "light", light_stages, shuffles=(1_000, 10_000), batch_sizes=(32, 512),
    variants=("naive", "tf_defaults", "parallel_autotune", "prefetch", "parallel_prefetch", "vectorized",
              "shuffle_1000", "shuffle_10000", "batch_32", "batch_512"),
    doc="MNIST-shaped arrays in memory, cast and scale: per-element overhead dominates")
cpu = tfperf.pipeline(
    "cpu", cpu_stages, widths=(2,),
    doc="JPEG TFRecord shards: parse, decode and resize (cached by `cache`), then per-image random augmentation")
latency = tfperf.pipeline(
    "latency", latency_stages, widths=(8, 32), ideal=latency_ideal,
    variants=("naive", "tf_defaults", "parallel_autotune", "prefetch", "parallel_prefetch", "parallel_8",
              "parallel_32", "cache"),
    doc="each record fetched after a wait that uses no CPU (simulated remote storage): latency-bound")
step = tfperf.pipeline(
    "step", step_stages, widths=(8,), variants=("naive", "prefetch", "parallel_prefetch", "parallel_8"),
    doc="the latency-bound input feeding a consumer that works per batch (a training step stand-in)")
