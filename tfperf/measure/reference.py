"""The suite's reference workload: a fixed tf.data pipeline timed in every block's rounds, beside the block's
variants, whose code no user change touches.

Why: the gate takes each block's level out of its benchmarks (the machine's speed moves a whole block between
runs), and so cannot see a change that moves the whole block: every benchmark 20% slower read as the machine's
drift. A workload that is measured in the same rounds but that the change cannot touch shares the machine's state
and the process's level, so a block's level *relative to the reference* moves only with the block's own code.

Measured before choosing it (six fresh processes, one after the other, the `light` block and candidates in the
same rounds, default size; the per-process level of each, as its median per-example time): the block's level
(the mean log time of naive, parallel_prefetch, vectorized) had a standard deviation of 9.1% between processes;
relative to a plain Python and numpy loop, 9.1% still (the loop moved 1.7%: the spread is TensorFlow's runtime,
not the CPU); relative to this pipeline, 3.5%. So the reference is a tf.data pipeline of the kind the suite
measures: MNIST-shaped uint8 records in memory, a cast-and-scale map and a batch of 128, with tf.data's
rewrites and prefetch injection off (sequential, what the name `naive` says), drained inside the runtime.

It is its own scenario (``REFERENCE``), not one of the built-ins (which may change), with its own seeded data.
Its times are stored per block in the run's ``tfperf.references``, never as a benchmark row.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from tfperf.api.base import Size
from tfperf.api.pipelines import Stages, pipeline

NAME = "~reference"  # its member name in a block: never a variant of the block's scenario
EXAMPLES = 2048  # per pass, at every size (about 40 ms here): the size scales the passes per round, not the pass
FEATURES = 784
SEED = 20261206


@functools.lru_cache(maxsize=1)
def _arrays() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    return (rng.integers(0, 256, size=(EXAMPLES, FEATURES), dtype=np.uint8),
            rng.integers(0, 10, size=EXAMPLES, dtype=np.int64))


def _scale(x: Any, y: Any) -> tuple[Any, Any]:
    import tensorflow as tf

    return tf.cast(x, tf.float32) / 255.0, y


def _stages(size: Size) -> Stages:
    import tensorflow as tf

    return Stages(source=lambda: tf.data.Dataset.from_tensor_slices(_arrays()), map=_scale, batch_size=128,
                  examples=EXAMPLES)


REFERENCE = pipeline("tfperf-reference", _stages, variants=("naive",),
                     doc="the suite's reference workload: a fixed pipeline timed in every block's rounds")
VARIANT = REFERENCE.variant("naive")
