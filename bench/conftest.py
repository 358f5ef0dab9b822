"""`pytest bench --benchmark-only`: the suite's pytest hooks and options live in tfperf.measure.plugin (`tfperf run`
loads the same plugin for tfperf/measure/suite.py, from any folder)."""

from tfperf.measure.plugin import *  # noqa: F403 - pytest finds the hooks and the `tfperf` fixture here
