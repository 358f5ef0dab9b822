"""Local clusters for the distributed scenarios: tf.data service servers and MultiWorkerMirroredStrategy trainers,
each a process of its own on loopback, started for a scenario and stopped when it ends, fails or is interrupted.

``python -m tfperf.cluster dispatcher|worker|trainer ...`` is one such process. It speaks JSON lines: it prints
``{"ready": ...}`` once it serves, answers requests on stdin, and exits when stdin closes (its parent is done or
gone). On Linux it also dies with its parent (PR_SET_PDEATHSIG), so a killed benchmark process leaves no server
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
import json
import os
import select
import signal
import socket
import subprocess
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


class Proc:
    """One cluster process, spoken to in JSON lines with deadlines."""

    def __init__(self, name: str, args: Sequence[str], log: Path | None = None, env: dict[str, str] | None = None):
        self.name = name
        self._buf = b""
        self.log = log
        err: Any = subprocess.DEVNULL
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            err = open(log, "ab")  # noqa: SIM115 - closed below, the child keeps its own copy
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "tfperf.cluster", *args], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err, env=env, bufsize=0)
        finally:
            if log is not None:
                err.close()
        self.pid = self.proc.pid

    def _last_log_line(self) -> str:
        if self.log is None or not self.log.exists():
            return ""
        lines = [ln.strip() for ln in self.log.read_text(errors="replace").splitlines() if ln.strip()]
        lines = [ln for ln in lines if not ln.startswith(("WARNING", "I0000", "W0000"))] or lines
        return lines[-1][:300] if lines else ""

    def dead(self) -> str | None:
        """None while it runs, else one line saying how it ended."""
        code = self.proc.poll()
        if code is None:
            return None
        last = self._last_log_line()
        return f"{self.name} (pid {self.pid}) {exit_cause(code)}" + (f": {last}" if last else "")

    def read(self, timeout_s: float, what: str) -> dict[str, Any]:
        """The next JSON line, within `timeout_s`; a dead process or the deadline is a ClusterError."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ClusterError(f"{self.name} (pid {self.pid}) did not {what} within {timeout_s:.0f} s")
            ready, _, _ = select.select([fd], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.proc.wait(timeout=STOP_TIMEOUT_S)
                    raise ClusterError(self.dead() or f"{self.name} closed its output")
                self._buf += chunk
            elif self.proc.poll() is not None:
                raise ClusterError(self.dead() or f"{self.name} ended")
        line, _, self._buf = self._buf.partition(b"\n")
        msg = json.loads(line)
        if "error" in msg:
            raise ClusterError(f"{self.name}: {msg['error']}")
        return msg

    def send(self, request: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
        except (BrokenPipeError, OSError):
            raise ClusterError(self.dead() or f"{self.name} (pid {self.pid}) stopped reading") from None

    def ask(self, request: dict[str, Any], timeout_s: float, what: str) -> dict[str, Any]:
        self.send(request)
        return self.read(timeout_s, what)

    def stop(self) -> None:
        """Close its stdin (it exits), then SIGTERM, then SIGKILL; always reaped."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()


def stop_all(procs: Sequence[Proc]) -> None:
    for p in procs:  # SIGTERM to all first, so they wind down together
        if p.proc.poll() is None:
            with contextlib.suppress(OSError):
                p.proc.terminate()
    for p in procs:
        p.stop()


class ServiceCluster:
    """A tf.data service on this machine: one dispatcher process and `workers` worker processes, all on loopback,
    started together and stopped together. Raises ClusterError (after stopping whatever started) when a process
    cannot start or a worker does not register in time."""

    def __init__(self, workers: int, log_dir: Path | None = None, port: int | None = None,
                 register_timeout_s: float = REGISTER_TIMEOUT_S, worker_dispatcher: str | None = None):
        self.workers = workers
        self.procs: list[Proc] = []
        self.started = time.perf_counter()
        port = int(os.environ.get("TFPERF_SERVICE_PORT") or 0) if port is None else port
        if port:
            check_port_free(port, "tf.data service dispatcher")
        log = (lambda name: log_dir / f"{name}.log") if log_dir else (lambda name: None)
        try:
            self.dispatcher = Proc("tf.data service dispatcher", ["dispatcher", "--port", str(port)],
                                   log(f"dispatcher-{os.getpid()}-{workers}w"))
            self.procs.append(self.dispatcher)
            self.address = self.dispatcher.read(START_TIMEOUT_S, "start")["ready"]
            host_port = worker_dispatcher or self.address.split("://", 1)[1]
            for i in range(workers):
                self.procs.append(Proc(f"tf.data service worker {i + 1}/{workers}",
                                       ["worker", "--dispatcher", host_port],
                                       log(f"service-worker-{os.getpid()}-{workers}w-{i + 1}")))
            self.worker_addresses = [p.read(START_TIMEOUT_S, "start")["ready"] for p in self.procs[1:]]
            self._wait_registered(register_timeout_s)
        except BaseException:
            self.stop()
            raise
        self.start_s = time.perf_counter() - self.started

    def _wait_registered(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        seen = 0
        while time.monotonic() < deadline:
            self.check()
            seen = int(self.dispatcher.ask({"op": "workers"}, 10, "answer")["workers"])
            if seen >= self.workers:
                return
            time.sleep(0.1)
        raise ClusterError(f"tf.data service: {seen} of {self.workers} workers registered with the dispatcher at "
                           f"{self.address} within {timeout_s:.0f} s")

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def check(self) -> None:
        """Every process of the cluster is alive, else one line naming the one that is not."""
        for p in self.procs:
            why = p.dead()
            if why:
                raise ClusterError(f"tf.data service: {why}")

    def stop(self) -> None:
        stop_all(self.procs)

    def __enter__(self) -> ServiceCluster:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# ---- the processes themselves -------------------------------------------------------------------------------

def _die_with_parent() -> None:
    parent = os.getppid()
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)


def _say(out: Any, msg: dict[str, Any]) -> None:
    out.write((json.dumps(msg) + "\n").encode())
    out.flush()


def _requests() -> Any:
    for line in sys.stdin:
        if line.strip():
            yield json.loads(line)


def _serve_dispatcher(port: int, out: Any) -> int:
    import tensorflow as tf

    svc = tf.data.experimental.service
    try:
        server = svc.DispatchServer(svc.DispatcherConfig(port=port))
    except Exception as exc:  # noqa: BLE001 - a port taken between the check and here, and such
        _say(out, {"error": f"dispatcher did not start on port {port}: {str(exc).strip().splitlines()[0]}"})
        return 1
    _say(out, {"ready": server.target})
    for req in _requests():
        if req.get("op") == "workers":
            _say(out, {"workers": server._num_workers()})  # noqa: SLF001 - TensorFlow's own tests use it
    return 0


def _serve_worker(dispatcher: str, out: Any) -> int:
    import tensorflow as tf

    svc = tf.data.experimental.service
    server = svc.WorkerServer(svc.WorkerConfig(dispatcher_address=dispatcher, worker_address="localhost:%port%",
                                               heartbeat_interval_ms=HEARTBEAT_MS,
                                               dispatcher_timeout_ms=DISPATCHER_TIMEOUT_MS))
    _say(out, {"ready": server._address})  # noqa: SLF001
    for _ in _requests():
        pass
    return 0


def main(argv: list[str]) -> int:
    _die_with_parent()
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # TensorFlow's prints go to the log, not the protocol
    from .quiet import tensorflow_started

    role = argv[0] if argv else ""
    opts = dict(zip(argv[1::2], argv[2::2], strict=False))
    with tensorflow_started():
        import tensorflow  # noqa: F401 - its start-up notices filtered; the server's own messages are kept
    if True:
        if role == "dispatcher":
            return _serve_dispatcher(int(opts.get("--port", 0)), out)
        if role == "worker":
            return _serve_worker(opts["--dispatcher"], out)
        if role == "trainer":
            from .distributed import serve_trainer

            return serve_trainer(json.loads(opts["--spec"]), out)
    print("usage: python -m tfperf.cluster dispatcher|worker|trainer ... (started by tfperf)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
