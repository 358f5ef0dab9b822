"""Capture a variant under the TensorFlow profiler, over a bounded window of marked steps.

Capture runs in a pass of its own after the timed rounds, so profiler overhead is never in a timing.
Each step is wrapped in ``tf.profiler.experimental.Trace("train", step_num=i, _r=1)``: the root-event
marker that the profile plugin's Overview page and Input Pipeline Analyzer need to find steps (stock
Keras 3 ``fit`` emits none). The window is a few tens of steps because trace size grows with it (a whole
epoch of the MLP gave a 282 MB trace-viewer JSON).

The trace lands in ``<logdir>/plugins/profile/<timestamp>/<host>.xplane.pb``, so a folder of such logdirs
is a TensorBoard logdir with one profile run per variant.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from .base import Capture, Runnable


@dataclass(frozen=True)
class TracerLevels:
    host: int = 2
    python: int = 0
    device: int = 1


def capture(runnable: Runnable, logdir: Path, steps: int, levels: TracerLevels = TracerLevels()) -> Capture:
    own = runnable.capture(logdir, steps, levels)
    if own is not None:  # a runnable that runs elsewhere (a multi-worker chief) captured its own trace
        return own
    logdir.mkdir(parents=True, exist_ok=True)
    options = tf.profiler.experimental.ProfilerOptions(
        host_tracer_level=levels.host, python_tracer_level=levels.python, device_tracer_level=levels.device)
    start = time.perf_counter()
    tf.profiler.experimental.start(str(logdir), options=options)
    try:
        ran = runnable.profile(steps, lambda i: tf.profiler.experimental.Trace("train", step_num=i, _r=1))
    finally:
        tf.profiler.experimental.stop()
    seconds = time.perf_counter() - start
    files = sorted(logdir.glob("plugins/profile/*/*.xplane.pb"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise RuntimeError(f"the profiler wrote no .xplane.pb under {logdir}")
    return Capture(xplane=files[-1], steps_marked=ran, seconds=seconds)
