"""A built pipeline variant: a round is several fresh passes, each a new iterator drained inside the runtime
(one ``tf.function`` over the iterator), not one Python call per element; profiling pulls batch by batch."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import tensorflow as tf

from tfperf.api.base import Size, Variant

from .base import Runnable, Teardowns
from .datasets import PipelineData, batch_length


class PipelineRun(Runnable):
    """A round is exactly `passes` passes (``by_pass``): the worker may time them one at a time."""

    by_pass = True

    def __init__(self, data: PipelineData, v: Variant, size: Size):
        self.data, self.variant, self.size = data, v, size
        consumer = data.consumer(size)

        def count(total, batch):
            n = total + batch_length(batch)
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
        self._spent = Teardowns()  # iterators drained, torn down after the clock stops
        self.info: dict[str, Any] = {}
        self.scale(1)

    def scale(self, passes: int, repeat: int = 1) -> None:
        # More passes of the same pass (what the harness asks: `repeat` stays 1) keep the dataset and its filled
        # cache: no warm-up round is needed after such a scale.
        self.warm_after_scale = self.info.get("repeat") != repeat  # (nothing is built yet at the first scale)
        if self.warm_after_scale:
            self.dataset, info = self.data.dataset_for(self.variant, self.size, repeat=repeat)
            self.info.update(info)
        self.info.update(passes=passes)
        self.examples_per_round = self.info["examples"] * passes
        self._passes = passes

    # A pass creates a fresh iterator and drains it, timed; the iterator is torn down after the clock stops
    # (`after_round`; see `Teardowns` for why), and its teardown is timed apart, in `measured()`.
    def run_round(self) -> int:
        return sum(self.run_pass() for _ in range(self._passes))

    def run_pass(self) -> int:
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
