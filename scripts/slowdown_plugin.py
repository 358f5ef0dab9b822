"""A pytest plugin that makes one variant really slower, to check that `reports compare` sees it.

    PYTHONPATH=scripts TFPERF_SLOW=cpu/parallel_prefetch:10 \\
        pytest bench --benchmark-only -p slowdown_plugin ...

A glob slows every variant it matches (``TFPERF_SLOW='light/*:20'``: a whole block 20% slower).
Each round (or pass) of that variant then sleeps for the given percentage of the time its real work took, so its
time per example rises by that much and nothing else changes. bench starts its worker processes with the
same -p plugins, so the patch acts where the rounds are timed.
"""

import fnmatch
import os
import time

_target, _, _percent = os.environ.get("TFPERF_SLOW", "").partition(":")
if _target:
    from tfperf.measure import reference
    from tfperf.runtime import build

    def _slower(real_build):
        def runnable(scenario, v, size, block=None):
            built = real_build(scenario, v, size, block)
            # never the suite's reference workload (tfperf.measure.reference): it stands for what a change of the
            # scenarios cannot touch, even a change of every one of them ('*:20')
            if fnmatch.fnmatchcase(f"{scenario.name}/{v.name}", _target) and scenario is not reference.REFERENCE:
                # a round, and a pass alone (the worker times split rounds pass by pass)
                built.run_round = _slowed(built.run_round)
                built.run_pass = _slowed(built.run_pass)
            return built
        return runnable

    def _slowed(real):
        def slower():
            start = time.perf_counter()
            done = real()
            time.sleep((time.perf_counter() - start) * float(_percent or 10) / 100)
            return done
        return slower

    build.runnable = _slower(build.runnable)
