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
    from tfperf.distributed import MultiWorkerScenario, ServiceScenario

    _which, _, _nth = _rest.partition(":")
    _scenario_name, _, _variant = _target.partition("/")

    def _victim(runnable) -> int:
        if _which == "trainer":
            return runnable.procs[-1].pid
        procs = runnable.cluster.procs
        return procs[0].pid if _which == "dispatcher" else procs[1].pid

    def _killing(real_make):
        def make(self, v, size):
            runnable = real_make(self, v, size)
            if self.name == _scenario_name and v.name == _variant:
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

    for _cls in (ServiceScenario, MultiWorkerScenario):
        _cls.make = _killing(_cls.make)
