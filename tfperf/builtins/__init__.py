"""The built-in scenarios: made with the same public builders a user calls (``import tfperf``), and loaded when
``--tfperf-scenarios`` is not given. To run your own beside them, name both: ``--tfperf-scenarios builtins
--tfperf-scenarios my_bench.py``."""

from .distributed import mlp_multiworker, service_cpu, service_latency
from .models import cnn, mlp
from .pipelines import cpu, latency, light, step

SCENARIOS = [light, cpu, latency, step, mlp, cnn, service_latency, service_cpu, mlp_multiworker]
