"""Local clusters for the distributed scenarios: tf.data service servers and MultiWorkerMirroredStrategy trainers,
each a process of its own on loopback, started for a scenario and stopped when it ends, fails or is interrupted.

Each such process is forked from multiprocessing's forkserver, which imported TensorFlow once (a fresh process
in 0.05 s, not 3 s of imports). It speaks over a pipe: it says ``{"ready": ...}`` once it serves, answers
requests, and exits when the pipe closes (its parent is done or gone). On Linux it also dies with the forkserver
(PR_SET_PDEATHSIG), which exits with the benchmark process, so a killed benchmark process leaves no server
behind. The parent side (:class:`Proc`) waits for every answer with a deadline and checks that the process is
alive, so a server that never starts, a worker that never registers, a trainer that dies mid-round or a
dispatcher that is gone is one line (:class:`ClusterError`) within a bounded time, never a hang.

Ports: every server takes a free port from the kernel (``port=0``), except the dispatcher when
``TFPERF_SERVICE_PORT`` (``--tfperf-service-port``) fixes it; a port already in use is refused before anything
starts. The trainers of a MultiWorkerMirroredStrategy cluster need their addresses up front (``TF_CONFIG``): the
parent takes free ports from the kernel and hands them out.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .core import ScenarioError

START_TIMEOUT_S = 90.0  # a process imports TensorFlow first: several at once on 2 busy cores take a while
REGISTER_TIMEOUT_S = 30.0  # workers registered with the dispatcher
STOP_TIMEOUT_S = 10.0
HEARTBEAT_MS = 100  # worker heartbeats (TensorFlow's own service tests use 100 ms): a new job reaches the workers
DISPATCHER_TIMEOUT_MS = 20_000  # a worker whose dispatcher is gone gives up after this (TensorFlow's default: 1 h)


class ClusterError(ScenarioError):
    """A cluster process could not start, did not answer in time, or died: one line naming it and the cause."""


def exit_cause(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def cpu_seconds(pids: Sequence[int]) -> float:
    """CPU seconds (user + system) the processes have used, from /proc/PID/stat (0 for one that is gone)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, ValueError, IndexError):
            pass
    return total


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("localhost", 0))
        return int(s.getsockname()[1])


def check_port_free(port: int, what: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("localhost", port))
        except OSError as exc:
            raise ClusterError(f"{what}: port {port} is already in use ({exc.strerror}); choose another or leave it "
                               "out for a free one") from None


def parse_address(address: str) -> tuple[str, str, int]:
    """grpc://HOST:PORT -> (protocol, host, port); one line if it is not such an address."""
    proto, sep, rest = address.partition("://")
    if not sep:
        proto, rest = "grpc", address
    host, _, port = rest.rpartition(":")
    if proto != "grpc" or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterError(f"tf.data service address {address!r} is not grpc://HOST:PORT")
    return proto, host, int(port)


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A TCP connection to the dispatcher within `timeout_s`, else one line (TensorFlow's own client would retry
    for an hour)."""
    _, host, port = parse_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        why = "timed out" if isinstance(exc, TimeoutError | socket.timeout) else (exc.strerror or str(exc))
        raise ClusterError(f"tf.data service dispatcher {address} is not reachable within {timeout_s:.0f} s "
                           f"({why})") from None


_CONTEXT: Any = None


def _context() -> Any:
    """multiprocessing's forkserver, with TensorFlow imported in it once: every cluster process is forked from it, a
    fresh process that starts in about 0.05 s instead of importing TensorFlow anew (about 3 s of CPU each, so ten
    at once took 15 s on 2 cores). The forkserver lives as long as this process and exits with it."""
    global _CONTEXT
    if _CONTEXT is None:
        import multiprocessing

        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["tensorflow", "tfperf.cluster"])
        _CONTEXT = ctx
    return _CONTEXT


class Proc:
    """One cluster process (forked from the forkserver), spoken to over a pipe, with deadlines."""

    def __init__(self, name: str, role: str, options: dict[str, Any], log: Path | None = None):
        self.name = name
        self.log = log
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
        ctx = _context()
        self._conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_child_main, args=(role, options, child, str(log) if log else None),
                                name=f"tfperf-{role}", daemon=True)
        self.proc.start()
        child.close()
        self.pid = int(self.proc.pid)

    def _last_log_line(self) -> str:
        if self.log is None or not self.log.exists():
            return ""
        lines = [ln.strip() for ln in self.log.read_text(errors="replace").splitlines() if ln.strip()]
        lines = [ln for ln in lines if not ln.startswith(("WARNING", "I0000", "W0000"))] or lines
        return lines[-1][:300] if lines else ""

    def dead(self) -> str | None:
        """None while it runs, else one line saying how it ended."""
        code = self.proc.exitcode
        if code is None:
            return None
        last = self._last_log_line()
        return f"{self.name} (pid {self.pid}) {exit_cause(code)}" + (f": {last}" if last else "")

    def read(self, timeout_s: float, what: str) -> dict[str, Any]:
        """The next message, within `timeout_s`; a dead process or the deadline is a ClusterError."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            try:
                if self._conn.poll(max(0.0, min(left, 0.5))):
                    msg = self._conn.recv()
                    break
            except (EOFError, OSError):
                self.proc.join(timeout=STOP_TIMEOUT_S)
                raise ClusterError(self.dead() or f"{self.name} (pid {self.pid}) closed its pipe") from None
            if self.proc.exitcode is not None:
                raise ClusterError(self.dead() or f"{self.name} ended")
            if left <= 0:
                raise ClusterError(f"{self.name} (pid {self.pid}) did not {what} within {timeout_s:.0f} s")
        if "error" in msg:
            raise ClusterError(f"{self.name}: {msg['error']}")
        return msg

    def send(self, request: dict[str, Any]) -> None:
        try:
            self._conn.send(request)
        except (BrokenPipeError, OSError):
            raise ClusterError(self.dead() or f"{self.name} (pid {self.pid}) stopped reading") from None

    def ask(self, request: dict[str, Any], timeout_s: float, what: str) -> dict[str, Any]:
        self.send(request)
        return self.read(timeout_s, what)

    def close_pipe(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.close()

    def stop(self, grace_s: float = 1.0) -> None:
        """Close its pipe (it exits), wait up to `grace_s`, then SIGKILL: a cluster process keeps nothing worth a
        slower goodbye. Always reaped."""
        self.close_pipe()
        if self.proc.exitcode is None:
            self.proc.join(timeout=grace_s)
        if self.proc.exitcode is None:
            with contextlib.suppress(OSError, ValueError):
                self.proc.kill()
            self.proc.join(timeout=STOP_TIMEOUT_S)


def stop_all(procs: Sequence[Proc]) -> None:
    """Every process: pipes closed together (they exit together), one shared grace second, then SIGKILL."""
    for p in procs:
        p.close_pipe()
    deadline = time.monotonic() + 1.0
    for p in procs:
        p.stop(grace_s=max(0.0, deadline - time.monotonic()))


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
        self.dispatcher = Proc("tf.data service dispatcher", "dispatcher", {"port": self.port}, self._log("dispatcher"))
        self.procs.append(self.dispatcher)

    def launch_workers(self) -> None:
        self.address = self.dispatcher.read(START_TIMEOUT_S, "start")["ready"]
        host_port = self.worker_dispatcher or self.address.split("://", 1)[1]
        for i in range(self.workers):
            self.procs.append(Proc(f"tf.data service worker {i + 1}/{self.workers}", "worker",
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


# ---- the processes themselves -------------------------------------------------------------------------------

def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: the forkserver
    except (OSError, AttributeError):
        pass


class Channel:
    """The child's end of the pipe: messages out, requests in until the parent closes it."""

    def __init__(self, conn: Any):
        self.conn = conn

    def say(self, msg: dict[str, Any]) -> None:
        self.conn.send(msg)

    def requests(self) -> Any:
        while True:
            try:
                yield self.conn.recv()
            except (EOFError, OSError):
                return


def _child_main(role: str, options: dict[str, Any], conn: Any, log: str | None) -> None:
    _die_with_parent()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if log:  # TensorFlow's C++ messages and Python's go to the process's own log
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    channel = Channel(conn)
    try:
        if role == "dispatcher":
            code = _serve_dispatcher(int(options.get("port", 0)), channel)
        elif role == "worker":
            code = _serve_worker(options["dispatcher"], channel)
        elif role == "trainer":
            from .distributed import serve_trainer

            code = serve_trainer(options, channel)
        else:
            raise ValueError(f"unknown role {role!r}")
    except Exception as exc:  # noqa: BLE001 - one line to the parent; the traceback to the log
        import traceback

        traceback.print_exc()
        with contextlib.suppress(OSError):
            channel.say({"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"})
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # no interpreter teardown: TensorFlow's servers would block it


def _serve_dispatcher(port: int, channel: Channel) -> int:
    import tensorflow as tf

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


def _serve_worker(dispatcher: str, channel: Channel) -> int:
    import tensorflow as tf

    svc = tf.data.experimental.service
    server = svc.WorkerServer(svc.WorkerConfig(dispatcher_address=dispatcher, worker_address="localhost:%port%",
                                               heartbeat_interval_ms=HEARTBEAT_MS,
                                               dispatcher_timeout_ms=DISPATCHER_TIMEOUT_MS))
    channel.say({"ready": server._address})  # noqa: SLF001
    for _ in channel.requests():
        pass
    return 0
