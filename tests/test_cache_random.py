"""A cache after a random map would freeze one draw for every epoch (a speedup that changes what a model trains on):
such a cache variant is skipped with the reason, never measured; a deterministic map's cache is measured."""

import random

import keras
import tensorflow as tf

import tfperf
from tfperf.api.base import SIZES, Unsupported
from tfperf.measure.block import Member, run_block
from tfperf.runtime.build import runnable
from tfperf.runtime.datasets import random_ops


def _scenario(name, fn):
    return tfperf.pipeline(name, tfperf.Stages(
        source=lambda: tf.data.Dataset.from_tensor_slices(tf.zeros([64, 8, 8, 3])), map=fn, batch_size=8),
        variants=["naive", "cache"])


def test_random_ops_are_found_in_plain_tf_and_in_keras_layers():
    spec = tf.TensorSpec([8, 8, 3], tf.float32)
    assert random_ops(lambda x: x + tf.random.uniform([]), spec)
    flip = keras.layers.RandomFlip("horizontal", seed=1)
    assert random_ops(lambda x: flip(x, training=True), spec)
    assert random_ops(lambda x: tf.image.resize(x, [4, 4]) * 2.0, spec) == []


def test_a_cache_after_a_random_map_is_skipped_with_the_reason_and_a_plain_one_runs():
    noisy = _scenario("noisy", lambda x: x + tf.random.uniform(tf.shape(x)))
    try:
        runnable(noisy, noisy.variant("cache"), SIZES["smoke"])
        raise AssertionError("expected Unsupported")
    except Unsupported as exc:
        assert "freeze its random ops" in str(exc) and "after_cache" in str(exc)
    out = run_block([Member(noisy, noisy.variant("cache"), "cache", selected=True),
                     Member(noisy, noisy.variant("naive"), "naive", selected=True)], {}, SIZES["smoke"],
                    random.Random(0), {})
    status = {m["name"]: (m["status"], m["reason"]) for m in out["members"]}
    assert status["cache"][0] == "skipped" and "random ops" in status["cache"][1]
    assert status["naive"][0] == "ok"  # the random map itself is measured; only its cache is refused
    plain = _scenario("plain", lambda x: x * 2.0)
    r = runnable(plain, plain.variant("cache"), SIZES["smoke"])
    assert r.run_round() == r.examples_per_round
    r.close()
