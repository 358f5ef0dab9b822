"""A built tf.data service variant: the pipeline's endless dataset, local or behind
``tf.data.experimental.service.distribute`` on a cluster the block started (:class:`ServiceBlock`), and one
iterator that lives as long as the variant (one job on the dispatcher, as a training run has).

A round takes a fixed number of batches inside one ``tf.function``; before it, untimed, what the workers
buffered while other variants ran is taken, so a round times the steady rate. Where the cores went (client and
cluster CPU per example) is recorded beside the time: it says why a pipeline scales or not.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import tensorflow as tf

from tfperf.api.base import Size, Variant, per_size
from tfperf.api.distributed import ServiceScenario, ServiceVariant
from tfperf.procs.children import ClusterError, cpu_seconds
from tfperf.procs.net import check_reachable
from tfperf.procs.service import ServiceCluster, start_service_clusters

from .base import Block, BlockContext, Runnable
from .datasets import data_of

# Batches taken, untimed, before each round of a service variant, per worker (an external service: as for 4): a
# worker buffers about 8 batches while its client is idle (measured here); fewer at `smoke` made its calibration
# see the buffer, and its rounds twice as long.
PRIME_BATCHES_PER_WORKER = 10
WATCH_S = 0.05  # how often a service round checks its cluster's processes


class ServiceBlock(Block):
    """A service scenario's block: the local clusters its variants share (one per worker count, started all at
    once before the variants are built, the k-th dispatcher on ``service_port + k`` when the run fixes a port),
    and the clients released after the clusters stop."""

    def __init__(self, scenario: ServiceScenario, variants: Sequence[Variant], context: BlockContext | None = None):
        super().__init__(context)
        self.data = data_of(scenario.data)
        self.clusters: dict[int, ServiceCluster] = {}
        self.error: ClusterError | None = None
        self.released: list[Any] = []
        counts = sorted({v.workers for v in variants if isinstance(v, ServiceVariant) and v.workers > 0})
        base = self.context.service_port
        clusters = [ServiceCluster(n, log_dir=self.log_dir, port=base + i if base else 0, start=False)
                    for i, n in enumerate(counts)]
        try:
            start_service_clusters(clusters)
        except ClusterError as exc:  # every variant that needs a cluster fails with this line
            self.error = exc
            return
        self.clusters = {c.workers: c for c in clusters}

    @property
    def log_dir(self) -> Path | None:
        return self.context.log_dir / "cluster" if self.context.log_dir else None

    def cluster(self, workers: int) -> ServiceCluster:
        """The local cluster of `workers` workers, shared by the modes' variants of one block."""
        if self.error is not None:
            raise self.error
        if workers not in self.clusters:  # a variant the block was not opened for: started on first use
            self.clusters[workers] = ServiceCluster(workers, log_dir=self.log_dir)
        return self.clusters[workers]

    def close(self) -> None:
        """Stop every cluster the block started (also when a variant failed or was never built)."""
        for c in self.clusters.values():
            c.stop()
        self.clusters = {}
        # The clients go last, now that nothing answers them: each retries its release for a while (2.5 to 4 s
        # for a block's six here), in a thread of its own, so the next block does not wait for it.
        released, self.released = self.released, []
        threading.Thread(target=released.clear, name="tfperf-service-release", daemon=True).start()


class ServiceRun(Runnable):
    """One service variant: the pipeline's endless dataset (behind the service, or local) and one iterator."""

    warm_after_scale = False  # its one iterator and its cluster live on: a new scale needs no new warm-up

    def __init__(self, scenario: ServiceScenario, v: ServiceVariant, size: Size, block: ServiceBlock):
        self.scenario, self.variant, self.size, self.block = scenario, v, size, block
        data = block.data
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
                self.cluster = block.cluster(v.workers)
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
        self.batches = self.base * passes * repeat
        self._k = tf.constant(self.batches, tf.int64)
        self.examples_per_round = self.batches * self.batch_size
        self.info.update(batches_per_round=self.batches)

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
        return t.user + t.system, cpu_seconds(self.pids())

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
        # The iterator is released after its cluster stops (the block's close): released first, each waited
        # about 1.5 s for its workers here (10 s for a block); a thread may also still wait inside a stuck one.
        self.block.released.append(self.iterator)
        self.iterator = None
        self.dataset = None
        self.cluster = None  # stopped by the block's close(), shared with the other mode's variant


def _probe_external(address: str, timeout_s: float = 60.0) -> None:
    """Whether a tf.data service answers at `address`, in a child process with a deadline: TensorFlow's client
    retries an unreachable dispatcher for an hour, which must not become a hang of the run."""
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
