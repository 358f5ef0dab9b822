"""Pipelines written to keep the tuner honest (scripts/tune_eval.py): each one's right answer differs, and several
are where the guide's advice (AUTOTUNE map and prefetch) is not the best. Data generated and seeded.

- ``generator``: a ``Dataset.from_generator`` source (Python, one element at a time under the GIL), a cheap map.
- ``jitter``: a map that waits a different time per element (1-6 ms, simulated remote storage): latency-bound,
  with stragglers.
- ``shuffled``: a shuffle-heavy pipeline: a 4096-element shuffle buffer in the source, a moderate map.
- ``bigcache``: a map whose output (a 128 x 128 x 3 float image) makes a cache far larger than the RAM budget the
  evaluation gives it (``--ram-budget 64M``): no cache may be chosen.
- ``cheap``: a map so cheap (an add on scalars) that parallelism's hand-over costs more than it saves on 2 cores.
- ``text``: a text pipeline with ``tf.strings`` (lower, regex, split, hash buckets, padded).
- ``train``: a training pipeline: a consumer that is a real Keras training step (a small MLP, ``tf.function``),
  so the compute-only bound is the step's own time.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

import tfperf
from tfperf.builtins import data

N = {"smoke": 1024, "small": 2048, "default": 4096, "large": 8192}


def _gen(n: int):
    def source():
        rng = np.random.default_rng(5)
        for _ in range(n):
            yield rng.integers(0, 255, 64, dtype=np.uint8), np.int64(rng.integers(0, 10))
    return source


def generator_stages(size: tfperf.Size) -> tfperf.Stages:
    n = tfperf.per_size(N, size) // 2
    sig = (tf.TensorSpec((64,), tf.uint8), tf.TensorSpec((), tf.int64))
    return tfperf.Stages(source=lambda: tf.data.Dataset.from_generator(_gen(n), output_signature=sig),
                         map=lambda x, y: (tf.cast(x, tf.float32) / 255.0, y), batch_size=64, examples=n)


def _jitter(x):
    micros = 1000 + 5000 * tf.cast(tf.math.floormod(x * 7919, 11), tf.int64) // 10  # 1-6 ms, fixed per element
    return data.remote_wait(x, micros), x


def jitter_stages(size: tfperf.Size) -> tfperf.Stages:
    n = {"smoke": 32, "small": 64, "default": 96, "large": 192}[size.name]
    return tfperf.Stages(source=lambda: tf.data.Dataset.range(n), map=_jitter, batch_size=8, examples=n)


@functools.lru_cache(maxsize=4)
def _images(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    return rng.integers(0, 255, (n, 24, 24, 3), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int64)


def _moderate(x, y):
    x = tf.image.resize(tf.cast(x, tf.float32), [32, 32])
    return tf.image.per_image_standardization(x), y


def shuffled_stages(size: tfperf.Size) -> tfperf.Stages:
    n = tfperf.per_size(N, size)
    arrays = _images(n)
    return tfperf.Stages(source=lambda: tf.data.Dataset.from_tensor_slices(arrays).shuffle(4096, seed=1),
                         map=_moderate, batch_size=64, examples=n)


def _big(x, y):
    return tf.image.resize(tf.cast(x, tf.float32), [128, 128]), y


def bigcache_stages(size: tfperf.Size) -> tfperf.Stages:
    n = tfperf.per_size(N, size) // 4
    arrays = _images(n)
    return tfperf.Stages(source=lambda: tf.data.Dataset.from_tensor_slices(arrays), map=_big, batch_size=32,
                         examples=n)


def cheap_stages(size: tfperf.Size) -> tfperf.Stages:
    n = 4 * tfperf.per_size(N, size)
    return tfperf.Stages(source=lambda: tf.data.Dataset.range(n), map=lambda x: x + 1, batch_map=lambda x: x + 1,
                         batch_size=256, examples=n)


WORDS = np.array("the quick brown fox jumps over a lazy dog while tensors flow through every stage".split())


@functools.lru_cache(maxsize=4)
def _sentences(n: int) -> np.ndarray:
    rng = np.random.default_rng(13)
    return np.array([" ".join(rng.choice(WORDS, rng.integers(8, 40))).upper() for _ in range(n)])


def _tokens(s):
    s = tf.strings.regex_replace(tf.strings.lower(s), "[^a-z ]", "")
    ids = tf.strings.to_hash_bucket_fast(tf.strings.split(s), 5000)
    return tf.pad(ids[:48], [[0, 48 - tf.minimum(tf.size(ids), 48)]])


def text_stages(size: tfperf.Size) -> tfperf.Stages:
    n = tfperf.per_size(N, size)
    sentences = _sentences(n)
    return tfperf.Stages(source=lambda: tf.data.Dataset.from_tensor_slices(sentences), map=_tokens, batch_size=64,
                         examples=n)


def _train_step():
    import keras

    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(256, activation="relu"),
                              keras.layers.Dense(10)])
    opt = keras.optimizers.SGD(0.01)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(batch):
        x, y = batch
        with tf.GradientTape() as tape:
            value = loss(y, model(tf.reshape(x, [-1, 784]), training=True))
        opt.apply_gradients(zip(tape.gradient(value, model.trainable_variables), model.trainable_variables,
                                strict=True))
        return value
    return step


def train_stages(size: tfperf.Size) -> tfperf.Stages:
    n = tfperf.per_size(N, size)
    x, y = data.mnist_like(n)
    return tfperf.Stages(source=lambda: tf.data.Dataset.from_tensor_slices((x, y)),
                         map=lambda a, b: (tf.reshape(tf.image.random_flip_left_right(
                             tf.reshape(tf.cast(a, tf.float32), [28, 28, 1])), [784]) / 255.0, b),
                         batch_size=128, examples=n, consumer=_train_step())


generator = tfperf.pipeline("generator", generator_stages)
jitter = tfperf.pipeline("jitter", jitter_stages)
shuffled = tfperf.pipeline("shuffled", shuffled_stages)
bigcache = tfperf.pipeline("bigcache", bigcache_stages)
cheap = tfperf.pipeline("cheap", cheap_stages)
text = tfperf.pipeline("text", text_stages)
train = tfperf.pipeline("train", train_stages)
