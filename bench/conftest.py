"""`pytest bench --benchmark-only`: the suite's pytest hooks and options live in tfperf.measure.plugin."""

from tfperf.measure.plugin import *  # noqa: F403 - pytest finds the hooks and the `tfperf` fixture here
