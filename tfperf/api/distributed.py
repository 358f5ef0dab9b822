"""Beyond one process: the tf.data service and MultiWorkerMirroredStrategy, measured like every other scenario.

:func:`service` takes a pipeline (:class:`~tfperf.Stages` or a :func:`~tfperf.pipeline` scenario, and which of its
variants to distribute) and makes the matrix ``local`` (the pipeline in this process) and, per processing mode
(``parallel_epochs``: every worker runs the whole dataset; ``distributed_epoch``: the dispatcher shards the
source between workers) and worker count, ``<mode>_<N>``: the same pipeline behind
``tf.data.experimental.service.distribute`` on a local cluster of one dispatcher and N workers, each a process of
its own on loopback (:mod:`tfperf.procs.service`). ``<mode>_<first N>`` compares against ``local`` (what the service
costs or gains), every larger N against the first (its scaling efficiency: speedup over the ideal N/first N).
With ``TFPERF_DATA_SERVICE=grpc://HOST:PORT`` (``--tfperf-data-service``) the modes run against that dispatcher
instead, whose workers are the user's: variants ``local`` and ``<mode>_external``.

A service round takes a fixed number of batches from one iterator that lives as long as the variant (one job on
the dispatcher, as a training run has), inside one ``tf.function``: a job's start (about 0.1 to 1 s here: tasks
reach workers at their heartbeat) is a one-off, recorded in the warm-up, not a per-round cost. The pipeline's
source repeats without end, so every batch is full and ``distributed_epoch`` keeps sharding.

:func:`multi_worker` takes a model scenario (:func:`~tfperf.model`) and makes ``workers_1`` and ``workers_N``: the
model trained under ``MultiWorkerMirroredStrategy`` in N trainer processes, each with its own
``TF_CONFIG`` on loopback, on the compute-only input (one batch per worker, already in memory), at a fixed batch
per worker (weak scaling: the global batch grows with the workers), in the custom loop of TensorFlow's
multi-worker tutorial (``strategy.run`` of a GradientTape step inside one ``tf.function``; Keras 3.x's ``fit``
failed here under this strategy, converting a PerReplica value to a tensor). A round sends every trainer the same
number of steps and ends when all have answered; the gradient all-reduce of every step keeps them in
step. Rounds are timed here, around the chief's and the workers' answers; the chief also reports its own time.
The profile is the chief's trace; its share of collective (all-reduce) ops is recorded with it.

These are declarations, frozen data without TensorFlow; :mod:`tfperf.runtime.service` and
:mod:`tfperf.runtime.multiworker` build and time them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .base import Scenario, ScenarioError, Variant, fingerprint, source_of
from .pipelines import StagesScenario, pipeline
from .training import ModelScenario

RUNTIME_SERVICE, RUNTIME_MULTIWORKER = "tfperf.runtime.service", "tfperf.runtime.multiworker"
MODES = ("parallel_epochs", "distributed_epoch")
SERVICE_BATCHES = {"smoke": 4, "small": 10, "default": 10, "large": 20}  # batches per round before calibration
EXTERNAL_ENV = "TFPERF_DATA_SERVICE"


# ---- the tf.data service -------------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class ServiceVariant(Variant):
    mode: str | None = None  # None: the pipeline in this process; parallel_epochs | distributed_epoch
    workers: int = 0  # tf.data service workers (0: local; -1: an external service's own)


def _service_matrix(modes: Sequence[str], workers: Sequence[int], external: str | None) -> tuple[ServiceVariant, ...]:
    local = ServiceVariant(name="local", description="the pipeline in this process, no service")
    rows = [local]
    for mode in modes:
        if external:
            rows.append(ServiceVariant(name=f"{mode}_external", mode=mode, workers=-1, baseline=local.name,
                                       description=f"distribute({mode!r}) on the dispatcher at {external} (its workers)"))
            continue
        first = workers[0]
        for n in workers:
            rows.append(ServiceVariant(
                name=f"{mode}_{n}", mode=mode, workers=n,
                baseline=local.name if n == first else f"{mode}_{first}",
                description=f"distribute({mode!r}) on a local dispatcher and {n} worker process"
                            + ("es" if n > 1 else "") + (" (against no service)" if n == first else
                                                         f" (against {first}: ideal {n / first:g}x)")))
    return tuple(rows)


@dataclass(frozen=True)
class ServiceScenario(Scenario):
    data: Any = None  # a StagesScenario
    pipe: str = "naive"  # which of its variants is distributed
    batches: Any = None
    external: str | None = None


def service(name: str, data: Any, *, variant: str | None = None, workers: Sequence[int] = (1, 2, 4),
            modes: Sequence[str] = MODES, batches: Any = None, doc: str = "") -> ServiceScenario:
    """A tf.data service scenario. ``data``: :class:`~tfperf.Stages` (or a function of the size returning them), or
    a :func:`~tfperf.pipeline` scenario; ``variant``: which of its variants runs behind the service (default
    ``naive``: what is written, so the workers are the only parallelism); ``workers``: local cluster sizes;
    ``modes``: processing modes; ``batches``: batches per round before calibration (by size)."""
    if not isinstance(data, StagesScenario):
        try:
            data = pipeline(f"{name}-input", data)
        except ScenarioError as exc:
            raise ScenarioError(f"scenario {name}: the tf.data service needs a pipeline as stages (tfperf.Stages or "
                                f"tfperf.pipeline): {exc}") from None
    pipe = variant or "naive"
    try:
        data.variant(pipe)
    except KeyError:
        raise ScenarioError(f"scenario {name}: {pipe!r} is not a variant of {data.name}") from None
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ScenarioError(f"scenario {name}: modes must be among {', '.join(MODES)}, got {list(modes)}")
    if not workers or any(not isinstance(n, int) or n < 1 for n in workers) or list(workers) != sorted(set(workers)):
        raise ScenarioError(f"scenario {name}: workers must be increasing positive counts, got {list(workers)}")
    external = os.environ.get(EXTERNAL_ENV) or None
    rows = _service_matrix(modes, workers, external)
    version = fingerprint(sys.modules[__name__], source_of(RUNTIME_SERVICE), rows, data.version, pipe, batches)
    return ServiceScenario(name=name, version=version, variants=rows, kind="service", doc=doc, processes=1,
                           info={"input_scenario": data.name, "input_variant": pipe}, data=data, pipe=pipe,
                           batches=batches if batches is not None else SERVICE_BATCHES, external=external)


# ---- MultiWorkerMirroredStrategy ------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class WorkersVariant(Variant):
    workers: int = 1
    strategy: str = "multi_worker_mirrored"


@dataclass(frozen=True)
class MultiWorkerScenario(Scenario):
    model: Any = None  # the ModelScenario whose model and data are trained
    steps: Any = None


def multi_worker(name: str, model: Any, *, workers: Sequence[int] = (1, 2), steps: Any = None,
                 doc: str = "") -> MultiWorkerScenario:
    """The model trained under MultiWorkerMirroredStrategy with each count of trainer processes in ``workers`` (the
    first is the baseline), on the model scenario's compute-only input. ``steps``: steps per round before
    calibration (by size; default the model scenario's)."""
    if not isinstance(model, ModelScenario):
        raise ScenarioError(f"scenario {name}: model must be a tfperf.model scenario, got {type(model).__name__}")
    if not workers or any(not isinstance(n, int) or n < 1 for n in workers) or list(workers) != sorted(set(workers)):
        raise ScenarioError(f"scenario {name}: workers must be increasing positive counts, got {list(workers)}")
    first = workers[0]
    rows = tuple(WorkersVariant(
        name=f"workers_{n}", workers=n, baseline=None if n == first else f"workers_{first}",
        description=f"a tf.function loop under MultiWorkerMirroredStrategy, {n} trainer process" + ("es" if n > 1 else "")
                    + " on loopback, one batch per worker per step") for n in workers)
    version = fingerprint(sys.modules[__name__], source_of(RUNTIME_MULTIWORKER), rows, model.version, steps)
    return MultiWorkerScenario(name=name, version=version, variants=rows, kind="multiworker", doc=doc, processes=1,
                               info={"model": model.name, "input_variant": "memory (one batch per worker)"},
                               model=model, steps=steps if steps is not None else model.steps)
