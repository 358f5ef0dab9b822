"""A pytest plugin that makes one variant really slower, to check that `reports compare` sees it.

    PYTHONPATH=scripts TFPERF_SLOW=pipeline/cpu-parallel_prefetch:10 \\
        pytest bench --benchmark-only -p slowdown_plugin ...

Each round of that variant then sleeps for the given percentage of the time its real work took, so its
time per example rises by that much and nothing else changes. bench starts its worker processes with the
same -p plugins, so the patch acts where the rounds are timed.
"""

import os
import time

from scenarios.registry import REGISTRY

_target, _, _percent = os.environ.get("TFPERF_SLOW", "").partition(":")
if _target:
    _scenario_name, _, _variant = _target.partition("/")
    _scenario = REGISTRY[_scenario_name]
    _real_build = _scenario.build

    def _build(v, size):
        runnable = _real_build(v, size)
        if v.name == _variant:
            real_round = runnable.run_round

            def slower_round():
                start = time.perf_counter()
                done = real_round()
                time.sleep((time.perf_counter() - start) * float(_percent or 10) / 100)
                return done

            runnable.run_round = slower_round
        return runnable

    object.__setattr__(_scenario, "build", _build)
