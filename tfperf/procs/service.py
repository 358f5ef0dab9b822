"""A tf.data service on this machine: one dispatcher process and N worker processes on loopback (TensorFlow's own
``DispatchServer`` and ``WorkerServer``), started together and stopped together, each a child process
(:mod:`tfperf.procs.children`).

Ports: every server takes a free port from the kernel (``port=0``), except the dispatcher when
``TFPERF_SERVICE_PORT`` (``--tfperf-service-port``) fixes it; a port already in use is refused before anything
starts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .children import START_TIMEOUT_S, Channel, ClusterError, Proc, stop_all
from .net import check_port_free

REGISTER_TIMEOUT_S = 30.0  # workers registered with the dispatcher
HEARTBEAT_MS = 100  # worker heartbeats (TensorFlow's own service tests use 100 ms): a new job reaches the workers
DISPATCHER_TIMEOUT_MS = 20_000  # a worker whose dispatcher is gone gives up after this (TensorFlow's default: 1 h)


class ServiceCluster:
    """A tf.data service on this machine: one dispatcher process and `workers` worker processes, all on loopback,
    started together and stopped together. Raises ClusterError (after stopping whatever started) when a process
    cannot start or a worker does not register in time. :func:`start_service_clusters` starts several at once."""

    def __init__(self, workers: int, log_dir: Path | None = None, port: int | None = None,
                 register_timeout_s: float = REGISTER_TIMEOUT_S, worker_dispatcher: str | None = None,
                 start: bool = True):
        self.workers, self.log_dir, self.register_timeout_s = workers, log_dir, register_timeout_s
        self.worker_dispatcher = worker_dispatcher
        self.procs: list[Proc] = []
        self.failed = ""
        self.address = ""
        self.worker_addresses: list[str] = []
        self.started = time.perf_counter()
        self.start_s = 0.0
        self.port = int(os.environ.get("TFPERF_SERVICE_PORT") or 0) if port is None else port
        if start:
            start_service_clusters([self])

    def _log(self, name: str) -> Path | None:
        return self.log_dir / f"{name}-{os.getpid()}-{self.workers}w.log" if self.log_dir else None

    def launch_dispatcher(self) -> None:
        if self.port:
            check_port_free(self.port, "tf.data service dispatcher")
        self.dispatcher = Proc("tf.data service dispatcher", f"{__name__}:serve_dispatcher", {"port": self.port}, self._log("dispatcher"))
        self.procs.append(self.dispatcher)

    def launch_workers(self) -> None:
        self.address = self.dispatcher.read(START_TIMEOUT_S, "start")["ready"]
        host_port = self.worker_dispatcher or self.address.split("://", 1)[1]
        for i in range(self.workers):
            self.procs.append(Proc(f"tf.data service worker {i + 1}/{self.workers}", f"{__name__}:serve_worker",
                                   {"dispatcher": host_port}, self._log(f"service-worker-{i + 1}")))

    def wait_ready(self) -> None:
        """A worker process is ready once its server registered with the dispatcher (TensorFlow's WorkerServer
        starts by registering, and waits for the dispatcher meanwhile): all within the registration deadline."""
        deadline = time.monotonic() + self.register_timeout_s
        for p in self.procs[1:]:
            try:
                self.worker_addresses.append(p.read(max(0.1, deadline - time.monotonic()), "start")["ready"])
            except ClusterError as exc:
                if "did not start" not in str(exc):
                    raise
                self._not_registered(len(self.worker_addresses))
        self._wait_registered(max(0.1, deadline - time.monotonic()))
        self.start_s = time.perf_counter() - self.started

    def _not_registered(self, seen: int) -> None:
        raise ClusterError(f"tf.data service: {seen} of {self.workers} workers registered with the dispatcher at "
                           f"{self.address} within {self.register_timeout_s:.0f} s")

    def _wait_registered(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        seen = 0
        while time.monotonic() < deadline:
            self.check()
            seen = int(self.dispatcher.ask({"op": "workers"}, 10, "answer")["workers"])
            if seen >= self.workers:
                return
            time.sleep(0.1)
        self._not_registered(seen)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def failure(self) -> str | None:
        """None while every process runs, else why the cluster is broken (the first dead process, or what stopped
        it)."""
        if self.failed:
            return self.failed
        for p in self.procs:
            why = p.dead()
            if why:
                return why
        return None

    def check(self) -> None:
        """Every process of the cluster is alive, else one line naming the one that is not."""
        why = self.failure()
        if why:
            raise ClusterError(f"tf.data service: {why}")

    def fail(self, why: str) -> None:
        """Stop every process now; later checks say `why`, not that they were stopped."""
        self.failed = self.failed or why
        self.stop()

    def stop(self) -> None:
        stop_all(self.procs)


def start_service_clusters(clusters: Sequence[ServiceCluster]) -> None:
    """Start several clusters at once (their processes import TensorFlow side by side, not one after another); on
    any failure every process of every one of them is stopped before the error goes up."""
    try:
        for c in clusters:
            c.launch_dispatcher()
        for c in clusters:
            c.launch_workers()
        for c in clusters:
            c.wait_ready()
    except BaseException:
        for c in clusters:
            c.stop()
        raise


def serve_dispatcher(options: dict[str, Any], channel: Channel) -> int:
    """A child role: a tf.data service dispatcher on `options["port"]` (0: a free one)."""
    import tensorflow as tf

    port = int(options.get("port", 0))

    svc = tf.data.experimental.service
    try:
        server = svc.DispatchServer(svc.DispatcherConfig(port=port))
    except Exception as exc:  # noqa: BLE001 - a port taken between the check and here, and such
        channel.say({"error": f"dispatcher did not start on port {port}: {str(exc).strip().splitlines()[0]}"})
        return 1
    channel.say({"ready": server.target})
    for req in channel.requests():
        if req.get("op") == "workers":
            channel.say({"workers": server._num_workers()})  # noqa: SLF001 - TensorFlow's own tests use it
    return 0


def serve_worker(options: dict[str, Any], channel: Channel) -> int:
    """A child role: a tf.data service worker registering with `options["dispatcher"]` (HOST:PORT)."""
    import tensorflow as tf

    dispatcher = options["dispatcher"]

    svc = tf.data.experimental.service
    server = svc.WorkerServer(svc.WorkerConfig(dispatcher_address=dispatcher, worker_address="localhost:%port%",
                                               heartbeat_interval_ms=HEARTBEAT_MS,
                                               dispatcher_timeout_ms=DISPATCHER_TIMEOUT_MS))
    channel.say({"ready": server._address})  # noqa: SLF001
    for _ in channel.requests():
        pass
    return 0
