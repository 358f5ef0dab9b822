"""A pytest plugin that makes one variant really slower, to check that `reports compare` sees it.

    PYTHONPATH=scripts TFPERF_SLOW=cpu/parallel_prefetch:10 \\
        pytest bench --benchmark-only -p slowdown_plugin ...

Each round (or pass) of that variant then sleeps for the given percentage of the time its real work took, so its
time per example rises by that much and nothing else changes. bench starts its worker processes with the
same -p plugins, so the patch acts where the rounds are timed.
"""

import os
import time

_target, _, _percent = os.environ.get("TFPERF_SLOW", "").partition(":")
if _target:
    from tfperf.pipelines import PipelineScenario
    from tfperf.training import ModelScenario

    _scenario_name, _, _variant = _target.partition("/")

    def _slower(real_make):
        def make(self, v, size):
            runnable = real_make(self, v, size)
            if self.name == _scenario_name and v.name == _variant:
                # a round, and a pass alone (the worker times split rounds pass by pass)
                for attr in ("run_round", "run_pass"):
                    if callable(getattr(runnable, attr, None)):
                        setattr(runnable, attr, _slowed(getattr(runnable, attr)))
            return runnable
        return make

    def _slowed(real):
        def slower():
            start = time.perf_counter()
            done = real()
            time.sleep((time.perf_counter() - start) * float(_percent or 10) / 100)
            return done
        return slower

    for _cls in (PipelineScenario, ModelScenario):
        _cls.make = _slower(_cls.make)
