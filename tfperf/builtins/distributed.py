"""The built-in distributed scenarios, declared with the public builders (:func:`tfperf.service`,
:func:`tfperf.multi_worker`), as a user would.

- ``service_latency``: the ``latency`` pipeline as written (sequential map: each record after a wait that uses no
  CPU) behind the tf.data service, local and in both processing modes on 1, 2 and 4 workers. Each worker adds a
  stream of waits, so throughput should grow with the workers even on 2 cores.
- ``service_cpu``: the ``cpu`` pipeline as written (parse, JPEG decode, resize and augment, sequential map) behind
  the service. CPU-bound: workers add CPU only up to the machine's cores, and the service adds serialization and
  a gRPC hop per batch.
- ``mlp_multiworker``: the ``mlp`` model trained under MultiWorkerMirroredStrategy by 1 and 2 trainer processes.
"""

from __future__ import annotations

import tfperf

from .models import mlp
from .pipelines import cpu_stages, latency_stages

service_latency = tfperf.service(
    "service_latency", latency_stages, variant="naive",
    doc="the latency-bound pipeline as written, behind a local tf.data service (dispatcher and workers on loopback)")
service_cpu = tfperf.service(
    "service_cpu", cpu_stages, variant="naive",
    doc="the CPU-bound JPEG pipeline as written, behind a local tf.data service")
mlp_multiworker = tfperf.multi_worker(
    "mlp_multiworker", mlp,
    doc="the MLP under MultiWorkerMirroredStrategy, trainer processes on loopback, a fixed batch per worker")
