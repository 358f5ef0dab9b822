"""A pytest plugin that kills one process of a distributed variant's cluster in the middle of a round.

    TFPERF_KILL=service_latency/parallel_epochs_1:worker:3 pytest bench --benchmark-only -p tests.kill_plugin ...

On the N-th round of that variant (warm-up and calibration rounds count), a timer sends SIGKILL to the chosen
process (``worker``: the cluster's first tf.data service worker; ``dispatcher``; ``trainer``: the last trainer of
a multi-worker variant) 0.1 s after the round starts. bench starts its worker processes with the same -p
plugins, so this acts where the rounds run.
"""

import os
import signal
import threading

_target, _, _rest = os.environ.get("TFPERF_KILL", "").partition(":")
if _target:
    from tfperf.runtime import build

    _which, _, _nth = _rest.partition(":")
    _scenario_name, _, _variant = _target.partition("/")

    def _victim(runnable) -> int:
        if _which == "trainer":
            return runnable.procs[-1].pid
        procs = runnable.cluster.procs
        return procs[0].pid if _which == "dispatcher" else procs[1].pid

    def _killing(real_build):
        def make(scenario, v, size, block=None):
            runnable = real_build(scenario, v, size, block)
            if scenario.name == _scenario_name and v.name == _variant:
                real_round, calls = runnable.run_round, [0]

                def round_with_a_kill():
                    calls[0] += 1
                    if calls[0] == int(_nth or 3):
                        pid = _victim(runnable)
                        threading.Timer(0.1, lambda: os.kill(pid, signal.SIGKILL)).start()
                    return real_round()

                runnable.run_round = round_with_a_kill
            return runnable
        return make

    build.runnable = _killing(build.runnable)
