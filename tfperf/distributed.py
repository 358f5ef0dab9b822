"""Beyond one process: the tf.data service and MultiWorkerMirroredStrategy, measured like every other scenario.

:func:`service` takes a pipeline (:class:`~tfperf.Stages` or a :func:`~tfperf.pipeline` scenario, and which of its
variants to distribute) and makes the matrix ``local`` (the pipeline in this process) and, per processing mode
(``parallel_epochs``: every worker runs the whole dataset; ``distributed_epoch``: the dispatcher shards the
source between workers) and worker count, ``<mode>_<N>``: the same pipeline behind
``tf.data.experimental.service.distribute`` on a local cluster of one dispatcher and N workers, each a process of
its own on loopback (:mod:`tfperf.cluster`). ``<mode>_<first N>`` compares against ``local`` (what the service
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
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cluster import (
    START_TIMEOUT_S,
    ClusterError,
    Proc,
    ServiceCluster,
    check_reachable,
    cpu_seconds,
    free_port,
    start_service_clusters,
    stop_all,
)
from .core import Scenario, ScenarioError, Size, Variant, fingerprint, per_size

MODES = ("parallel_epochs", "distributed_epoch")
SERVICE_BATCHES = {"smoke": 4, "small": 10, "default": 10, "large": 20}  # batches per round before calibration
EXTERNAL_ENV = "TFPERF_DATA_SERVICE"
# Batches taken, untimed, before each round of a service variant, per worker (an external service: as for 4): a
# worker buffers about 8 batches while its client is idle (measured here); fewer at `smoke` made its calibration
# see the buffer, and its rounds twice as long.
PRIME_BATCHES_PER_WORKER = 10
ROUND_TIMEOUT_S = 300.0
WATCH_S = 0.05  # how often a service round checks its cluster's processes  # a multi-worker round that has not ended by then is a hang: the variant fails


def _log_dir() -> Path | None:
    d = os.environ.get("TFPERF_LOG_DIR")
    return Path(d) / "cluster" if d else None


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

    def make(self, v: Variant, size: Size) -> ServiceRun:
        return ServiceRun(self, v, size)  # type: ignore[arg-type]

    def prepare(self, variants: Sequence[Variant]) -> None:
        """Before a block's variants are built: start the local clusters they need, all at once. The k-th takes
        ``TFPERF_SERVICE_PORT + k`` for its dispatcher when that is set."""
        counts = sorted({v.workers for v in variants if isinstance(v, ServiceVariant) and v.workers > 0})
        base = int(os.environ.get("TFPERF_SERVICE_PORT") or 0)
        clusters = [ServiceCluster(n, log_dir=_log_dir(), port=base + i if base else 0, start=False)
                    for i, n in enumerate(counts)]
        self.__dict__["_clusters"] = {}
        self.__dict__["_cluster_error"] = None
        try:
            start_service_clusters(clusters)
        except ClusterError as exc:  # every variant that needs a cluster fails with this line
            self.__dict__["_cluster_error"] = exc
            return
        self.__dict__["_clusters"] = {c.workers: c for c in clusters}

    def cluster(self, workers: int) -> ServiceCluster:
        """The local cluster of `workers` workers, shared by the modes' variants of one block."""
        error = self.__dict__.get("_cluster_error")
        if error is not None:
            raise error
        pool = self.__dict__.setdefault("_clusters", {})
        if workers not in pool:  # built outside a block (a test, a script): started on first use
            pool[workers] = ServiceCluster(workers, log_dir=_log_dir())
        return pool[workers]

    def finish(self) -> None:
        """After a block: stop every cluster it started (also when a variant failed or was never built)."""
        for c in self.__dict__.pop("_clusters", {}).values():
            c.stop()
        self.__dict__.pop("_cluster_error", None)
        # The clients go last, now that nothing answers them: each retries its release for a while (2.5 to 4 s
        # for a block's six here), in a thread of its own, so the next block does not wait for it.
        released = self.__dict__.pop("_released", [])
        threading.Thread(target=released.clear, name="tfperf-service-release", daemon=True).start()


def service(name: str, data: Any, *, variant: str | None = None, workers: Sequence[int] = (1, 2, 4),
            modes: Sequence[str] = MODES, batches: Any = None, doc: str = "") -> ServiceScenario:
    """A tf.data service scenario. ``data``: :class:`~tfperf.Stages` (or a function of the size returning them), or
    a :func:`~tfperf.pipeline` scenario; ``variant``: which of its variants runs behind the service (default
    ``naive``: what is written, so the workers are the only parallelism); ``workers``: local cluster sizes;
    ``modes``: processing modes; ``batches``: batches per round before calibration (by size)."""
    from .pipelines import StagesScenario, pipeline

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
    version = fingerprint(sys.modules[__name__], rows, data.version, pipe, batches)
    return ServiceScenario(name=name, version=version, variants=rows, kind="service", doc=doc, processes=1,
                           info={"input_scenario": data.name, "input_variant": pipe}, data=data, pipe=pipe,
                           batches=batches if batches is not None else SERVICE_BATCHES, external=external)


class ServiceRun:
    """One service variant: the pipeline's endless dataset (behind the service, or local) and one iterator."""

    warm_after_scale = False  # its one iterator and its cluster live on: a new scale needs no new warm-up

    def __init__(self, scenario: ServiceScenario, v: ServiceVariant, size: Size):
        import tensorflow as tf

        self.scenario, self.variant, self.size = scenario, v, size
        data = scenario.data
        ds, pinfo = data.dataset_for(data.variant(scenario.pipe), size, repeat=-1, cut=False)
        self.batch_size = int(pinfo["batch_size"])
        self.cluster: ServiceCluster | None = None
        self.address = None
        started = time.perf_counter()
        if v.mode:
            if v.workers < 0:
                external = scenario.external
                assert external is not None  # external variants exist only with a service given (_service_matrix)
                self.address = external
                check_reachable(external)
                _probe_external(external)
            else:
                self.cluster = scenario.cluster(v.workers)
                self.address = self.cluster.address
            ds = ds.apply(tf.data.experimental.service.distribute(processing_mode=v.mode, service=self.address))
        self.dataset = ds
        self.base = int(per_size(scenario.batches, size))
        self.info: dict[str, Any] = {
            "batch_size": self.batch_size, "device": "/CPU:0", "tf_data_options": pinfo["tf_data_options"],
            "workers": v.workers if v.workers >= 0 else "external", "mode": v.mode or "local",
            "dispatcher": self.address, "input_variant": f"{data.name}/{scenario.pipe}",
            "cluster_start_s": round(self.cluster.start_s, 3) if self.cluster else None,
            "cluster_pids": self.cluster.pids if self.cluster else [],
        }
        if v.baseline and v.workers > 0:
            base = scenario.variant(v.baseline)
            if isinstance(base, ServiceVariant) and base.workers > 0:
                self.info["scaling_ideal"] = v.workers / base.workers
        self.iterator = iter(self.dataset)
        self.stuck = ""
        self._cpu_start: tuple[float, float] | None = None
        self.start_timing()
        self.info["job_start_s"] = None

        @tf.function
        def take(it, k):
            total = tf.constant(0, tf.int64)
            for _ in tf.range(k):
                total += tf.shape(tf.nest.flatten(next(it))[0], out_type=tf.int64)[0]
            return total

        self._take = take
        self._prime = tf.constant(PRIME_BATCHES_PER_WORKER * max(1, v.workers if v.workers > 0 else 4),
                                  tf.int64)
        first = time.perf_counter()
        self._take(self.iterator, tf.constant(1, tf.int64))  # the job starts: its first batch
        self.info["job_start_s"] = round(time.perf_counter() - first, 3)
        self.info["build_s"] = round(time.perf_counter() - started, 3)
        self.scale(1)

    def scale(self, passes: int, repeat: int = 1) -> None:
        import tensorflow as tf

        self.batches = self.base * passes * repeat
        self._k = tf.constant(self.batches, tf.int64)
        self.examples_per_round = self.batches * self.batch_size
        self.info.update(batches_per_round=self.batches)

    @property
    def pids(self) -> list[int]:
        return self.cluster.pids if self.cluster is not None else []

    def before_round(self) -> None:
        """Untimed: take what the workers buffered while other variants ran (measured here: about 8 batches per
        worker, served in 1 ms each, then the steady rate), so a round times the steady rate, not the buffer; then
        note the CPU used so far, by this process (the client) and by the cluster's processes."""
        if self.variant.mode:
            self._guarded(self._prime)
        self._cpu_start = self._cpu_now()

    def _cpu_now(self) -> tuple[float, float]:
        t = os.times()
        return t.user + t.system, cpu_seconds(self.pids)

    def after_round(self, seconds: float, examples: int) -> None:
        """Untimed, after the clock stopped: the CPU the round took, in the client and in the cluster. Where the
        cores went is what says why a pipeline scales or not."""
        if self._cpu_start is None:
            return
        (client0, cluster0), (client1, cluster1) = self._cpu_start, self._cpu_now()
        self._cpu_start = None
        acc = self._cpu
        acc["client"] += client1 - client0
        acc["cluster"] += cluster1 - cluster0
        acc["wall"] += seconds
        acc["examples"] += examples

    def _guarded(self, k: Any) -> int:
        """Take `k` batches while watching the cluster. TensorFlow's client waits for ever when the only worker of
        a job dies (measured here: a take over one killed worker never returned), so the take runs in a thread of
        its own; if a cluster process dies meanwhile, the whole cluster is stopped, the thread is abandoned (its
        iterator is never touched again) and the variant fails with the cause, at once."""
        if self.stuck:
            raise ClusterError(f"tf.data service: {self.stuck}")
        if self.cluster is None:
            return int(self._take(self.iterator, k))
        self.cluster.check()
        result: dict[str, Any] = {}
        done = threading.Event()

        def take() -> None:
            try:
                result["n"] = int(self._take(self.iterator, k))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                result["error"] = exc
            finally:
                done.set()

        threading.Thread(target=take, name="tfperf-service-take", daemon=True).start()
        while not done.wait(WATCH_S):
            why = self.cluster.failure()
            if why:
                self.stuck = f"{why}; the cluster was stopped and the variant's client abandoned"
                self.cluster.fail(why)
                raise ClusterError(f"tf.data service: {self.stuck}")
        if "error" in result:
            raise result["error"]
        self.cluster.check()  # a process that died during the round makes the round meaningless
        return result["n"]

    def start_timing(self) -> None:
        self._cpu = {"client": 0.0, "cluster": 0.0, "wall": 0.0, "examples": 0}  # the warm-up rounds' go

    def run_round(self) -> int:
        return self._guarded(self._k)

    def measured(self) -> dict[str, Any]:
        acc = self._cpu
        if not acc["examples"] or not acc["wall"]:
            return {}
        return {"client_cpu_us_per_example": 1e6 * acc["client"] / acc["examples"],
                "cluster_cpu_us_per_example": 1e6 * acc["cluster"] / acc["examples"],
                "cpu_cores_busy": (acc["client"] + acc["cluster"]) / acc["wall"]}

    def profile(self, steps: int, mark: Callable[[int], AbstractContextManager[Any]]) -> int:
        for i in range(steps):
            with mark(i):
                next(self.iterator)
        return steps

    def close(self) -> None:
        # The iterator is released after its cluster stops (the scenario's finish): released first, each waited
        # about 1.5 s for its workers here (10 s for a block); a thread may also still wait inside a stuck one.
        self.scenario.__dict__.setdefault("_released", []).append(self.iterator)
        self.iterator = None
        self.dataset = None
        self.cluster = None  # stopped by the scenario's finish(), shared with the other mode's variant


def _probe_external(address: str, timeout_s: float = 60.0) -> None:
    """Whether a tf.data service answers at `address`, in a child process with a deadline: TensorFlow's client
    retries an unreachable dispatcher for an hour, which must not become a hang of the run."""
    import subprocess

    code = ("import tensorflow as tf; ds = tf.data.Dataset.range(1).apply(tf.data.experimental.service.distribute("
            f"'parallel_epochs', service={address!r})); print(list(ds.as_numpy_iterator()))")
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ClusterError(f"tf.data service at {address}: no answer to a one-element job within {timeout_s:.0f} s "
                           "(is it a dispatcher, with workers?)") from None
    if proc.returncode != 0:
        last = [ln for ln in proc.stderr.splitlines() if ln.strip()][-1:] or ["no output"]
        raise ClusterError(f"tf.data service at {address}: a one-element job failed: {last[0].strip()[:200]}")


# ---- MultiWorkerMirroredStrategy ------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class WorkersVariant(Variant):
    workers: int = 1
    strategy: str = "multi_worker_mirrored"


@dataclass(frozen=True)
class MultiWorkerScenario(Scenario):
    model: Any = None  # the ModelScenario whose model and data are trained
    steps: Any = None

    def make(self, v: Variant, size: Size) -> MultiWorkerRun:
        return MultiWorkerRun(self, v, size)  # type: ignore[arg-type]


def multi_worker(name: str, model: Any, *, workers: Sequence[int] = (1, 2), steps: Any = None,
                 doc: str = "") -> MultiWorkerScenario:
    """The model trained under MultiWorkerMirroredStrategy with each count of trainer processes in ``workers`` (the
    first is the baseline), on the model scenario's compute-only input. ``steps``: steps per round before
    calibration (by size; default the model scenario's)."""
    from .training import ModelScenario

    if not isinstance(model, ModelScenario):
        raise ScenarioError(f"scenario {name}: model must be a tfperf.model scenario, got {type(model).__name__}")
    if not workers or any(not isinstance(n, int) or n < 1 for n in workers) or list(workers) != sorted(set(workers)):
        raise ScenarioError(f"scenario {name}: workers must be increasing positive counts, got {list(workers)}")
    first = workers[0]
    rows = tuple(WorkersVariant(
        name=f"workers_{n}", workers=n, baseline=None if n == first else f"workers_{first}",
        description=f"a tf.function loop under MultiWorkerMirroredStrategy, {n} trainer process" + ("es" if n > 1 else "")
                    + " on loopback, one batch per worker per step") for n in workers)
    version = fingerprint(sys.modules[__name__], rows, model.version, steps)
    return MultiWorkerScenario(name=name, version=version, variants=rows, kind="multiworker", doc=doc, processes=1,
                               info={"model": model.name, "input_variant": "memory (one batch per worker)"},
                               model=model, steps=steps if steps is not None else model.steps)


def _specs() -> list[str]:
    return json.loads(os.environ.get("TFPERF_SPECS") or "[]")


class MultiWorkerRun:
    """N trainer processes (tfperf.cluster trainer) forming one MultiWorkerMirroredStrategy cluster."""

    warm_after_scale = False  # the trainers' iterators and models live on: a new step count needs no warm-up

    def __init__(self, scenario: MultiWorkerScenario, v: WorkersVariant, size: Size):
        self.scenario, self.variant, self.size = scenario, v, size
        ports = [free_port() for _ in range(v.workers)]
        log = _log_dir()
        self.procs: list[Proc] = []
        started = time.perf_counter()
        try:
            for i in range(v.workers):
                spec = {"index": i, "ports": ports, "scenario": scenario.model.name, "size": size.name,
                        "specs": _specs()}
                self.procs.append(Proc(
                    "chief trainer" if i == 0 else f"trainer {i + 1}/{v.workers}", "trainer", spec,
                    log / f"trainer-{os.getpid()}-{scenario.name}-{v.name}-{i + 1}.log" if log else None))
            ready = [p.read(START_TIMEOUT_S, "start") for p in self.procs]
        except BaseException:
            stop_all(self.procs)
            raise
        chief = ready[0]
        self.batch_size = int(chief["global_batch"])
        self.base = int(per_size(scenario.steps, size))
        self.info: dict[str, Any] = {
            "batch_size": self.batch_size, "per_worker_batch": chief["per_worker_batch"], "device": "/CPU:0",
            "tf_data_options": {}, "workers": v.workers, "replicas": chief["replicas"], "strategy": v.strategy,
            "loop": "function", "model": scenario.model.name, "input_variant": "memory (one batch per worker)",
            "addresses": [f"localhost:{p}" for p in ports], "cluster_start_s": round(time.perf_counter() - started, 3),
            "trainer_pids": [p.pid for p in self.procs],
        }
        if v.baseline:
            base = scenario.variant(v.baseline)
            self.info["scaling_ideal"] = v.workers / base.workers  # type: ignore[attr-defined]
        self.chief_seconds: list[float] = []
        self.scale(1)

    def _round(self, request: dict[str, Any], timeout_s: float) -> list[dict[str, Any]]:
        """Send every trainer the same request, then collect every answer; a trainer that dies or hangs fails the
        round at once (the others would wait in the all-reduce until the collective timeout)."""
        for p in self.procs:
            p.send(request)
        replies: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout_s
        while len(replies) < len(self.procs):
            for p in self.procs:
                why = p.dead()
                if why:
                    raise ClusterError(f"MultiWorkerMirroredStrategy: {why}")
            for i, p in enumerate(self.procs):
                if i in replies:
                    continue
                try:
                    replies[i] = p.read(0.05, "answer")
                except ClusterError as exc:
                    if "did not answer" not in str(exc):
                        # a peer's death shows first as an error of the survivors (connection reset in the
                        # all-reduce): name the process that died, if one did
                        for _ in range(20):
                            dead = [q.dead() for q in self.procs if q is not p and q.dead()]
                            if dead:
                                raise ClusterError(f"MultiWorkerMirroredStrategy: {dead[0]} ({exc})") from None
                            time.sleep(0.05)
                        raise ClusterError(f"MultiWorkerMirroredStrategy: {exc}") from None
            if time.monotonic() > deadline:
                raise ClusterError(f"MultiWorkerMirroredStrategy: {len(self.procs) - len(replies)} of "
                                   f"{len(self.procs)} trainers did not finish a round within {timeout_s:.0f} s")
        return [replies[i] for i in range(len(self.procs))]

    def scale(self, passes: int, repeat: int = 1) -> None:
        self.steps = self.base * passes * repeat
        self.examples_per_round = self.steps * self.batch_size
        self.info.update(steps=self.steps, steps_per_round=self.steps)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def start_timing(self) -> None:
        self.chief_seconds.clear()

    def run_round(self) -> int:
        replies = self._round({"op": "round", "steps": self.steps}, ROUND_TIMEOUT_S)
        self.chief_seconds.append(float(replies[0]["seconds"]))
        steps = {int(r["steps"]) for r in replies}
        if steps != {self.steps}:
            raise ClusterError(f"MultiWorkerMirroredStrategy: the trainers ran {sorted(steps)} steps, expected "
                               f"{self.steps}")
        return self.steps * self.batch_size

    def capture(self, logdir: Path, steps: int, levels: Any) -> Any:
        """The chief's trace: the chief runs the profiler around `steps` marked steps; the others run the same
        steps unprofiled."""
        from .profiling import Capture

        logdir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        replies = self._round({"op": "profile", "steps": steps, "logdir": str(logdir), "levels": vars(levels)},
                              ROUND_TIMEOUT_S)
        files = sorted(logdir.glob("plugins/profile/*/*.xplane.pb"), key=lambda p: p.stat().st_mtime)
        if not files:
            raise RuntimeError(f"the chief's profiler wrote no .xplane.pb under {logdir}")
        return Capture(xplane=files[-1], steps_marked=int(replies[0]["steps"]), seconds=time.perf_counter() - start)

    def profile(self, steps: int, mark: Callable[[int], AbstractContextManager[Any]]) -> int:
        raise NotImplementedError("a multi-worker variant is profiled in its chief process (capture)")

    def measured(self) -> dict[str, Any]:
        if not self.chief_seconds:
            return {}
        import statistics

        return {"chief_round_s_median": statistics.median(self.chief_seconds)}

    def close(self) -> None:
        stop_all(self.procs)


COLLECTIVE_TIMEOUT_S = 120  # an all-reduce whose peer is gone raises after this instead of waiting for ever


def serve_trainer(spec: dict[str, Any], channel: Any) -> int:
    """One trainer process: TF_CONFIG, the strategy (before any other TensorFlow op), the user's model and data,
    then rounds on request."""
    ports, index = spec["ports"], int(spec["index"])
    os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"localhost:{p}" for p in ports]},
                                          "task": {"type": "worker", "index": index}})
    import tensorflow as tf

    # TensorFlow's own multi-worker tests give each worker at least workers + 1 inter-op threads: fewer can hang.
    tf.config.threading.set_inter_op_parallelism_threads(max(len(ports) + 1, os.cpu_count() or 1))
    strategy = tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(timeout_seconds=COLLECTIVE_TIMEOUT_S))
    try:
        from . import SIZES, registry
        from .training import ModelScenario, user_model

        reg = registry.load(spec["specs"])
        sc = reg[spec["scenario"]]
        if not isinstance(sc, ModelScenario) or sc.data is None:
            raise TypeError(f"a multi-worker trainer needs a model scenario with data; {spec['scenario']} is a {sc.kind}")
        data = sc.data
        size = SIZES[spec["size"]]
        pipe = data.variant(sc.best)
        one, _ = data.dataset_for(pipe, size, min(data.pass_examples(pipe, size), 4096))
        x, y = next(iter(one))
        per_worker = int(tf.shape(tf.nest.flatten(x)[0])[0])
        n = strategy.num_replicas_in_sync
        glob = tf.nest.map_structure(lambda t: tf.concat([t] * n, axis=0), (x, y))
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        ds = tf.data.Dataset.from_tensors(glob).repeat().with_options(options)
        with strategy.scope():
            model, loss, optimizer = user_model(sc, size)
        batches = iter(strategy.experimental_distribute_dataset(ds))  # the global batch split, one part per worker

        def step(batch):
            bx, by = batch
            with tf.GradientTape() as tape:
                # the mean over this worker's batch, over the replicas: the optimizer sums the gradients of all
                # replicas (its all-reduce), which gives the gradient of the global batch's mean loss
                value = loss(by, model(bx, training=True)) / n
            grads = tape.gradient(value, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))

        @tf.function
        def train(it, k):
            for _ in tf.range(k):
                strategy.run(step, args=(next(it),))

        @tf.function
        def train_one(it):  # profiled steps: one call each, the shape xprof's step analysis expects
            strategy.run(step, args=(next(it),))
    except Exception as exc:  # noqa: BLE001 - one line to the parent, which fails the variant with it
        text = str(exc).strip().splitlines()
        channel.say({"error": text[0] if text else type(exc).__name__})
        return 1
    channel.say({"ready": True, "replicas": n, "per_worker_batch": per_worker, "global_batch": per_worker * n})
    for req in channel.requests():
        steps = int(req["steps"])
        start = time.perf_counter()
        if req["op"] == "round":
            train(batches, tf.constant(steps, tf.int64))
            done = int(optimizer.iterations.numpy())  # read back: the round is done when this returns
            channel.say({"steps": steps, "seconds": time.perf_counter() - start, "iterations": done})
        elif req["op"] == "profile":
            if index == 0:
                from .profiling import TracerLevels

                lv = TracerLevels(**req["levels"])
                tf.profiler.experimental.start(req["logdir"], options=tf.profiler.experimental.ProfilerOptions(
                    host_tracer_level=lv.host, python_tracer_level=lv.python, device_tracer_level=lv.device))
                try:
                    for i in range(steps):
                        with tf.profiler.experimental.Trace("train", step_num=i, _r=1):
                            train_one(batches)
                    optimizer.iterations.numpy()
                finally:
                    tf.profiler.experimental.stop()
            else:
                for _ in range(steps):
                    train_one(batches)
                optimizer.iterations.numpy()
            channel.say({"steps": steps})
    return 0
