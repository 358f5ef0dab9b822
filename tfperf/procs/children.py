"""Child processes of a run, each spoken to over a pipe with deadlines, and never outliving their parent.

A child is forked from multiprocessing's forkserver, which imported TensorFlow once (a fresh process in 0.05 s,
not 3 s of imports). It runs one *role*, a function named ``"module:function"`` and called with its options and
a :class:`Channel`: it says ``{"ready": ...}`` once it serves, answers requests, and exits when the pipe closes
(its parent is done or gone). It also dies with the forkserver (PR_SET_PDEATHSIG, :func:`die_with_parent`), which
exits with the measuring process, so a killed run leaves no process behind. The parent side (:class:`Proc`) waits
for every answer with a deadline and checks that the process is alive, so a server that never starts or a
trainer that dies mid-round is one line (:class:`ClusterError`) within a bounded time, never a hang.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from tfperf.api.base import ScenarioError

START_TIMEOUT_S = 90.0  # a process imports TensorFlow first: several at once on 2 busy cores take a while
STOP_TIMEOUT_S = 10.0


class ClusterError(ScenarioError):
    """A child process could not start, did not answer in time, or died: one line naming it and the cause."""


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
    """CPU seconds (user + system) the processes have used (0 for one that is gone)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
    return total


def die_with_parent(watchdog: bool = False) -> None:
    """Never outlive the parent: the kernel kills this process when its parent dies (PR_SET_PDEATHSIG, Linux).
    With `watchdog`, where the kernel cannot, a thread checks the parent once a second and exits the process."""
    parent = os.getppid()
    try:
        import ctypes

        armed = ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL) == 0
    except (OSError, AttributeError):
        armed = False
    if os.getppid() != parent:  # the parent died before the request above took effect
        os._exit(1)
    if armed or not watchdog:  # the kernel does it: no thread waking up during timed rounds
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, name="tfperf-parent-watch", daemon=True).start()


_CONTEXT: Any = None


def _context() -> Any:
    """multiprocessing's forkserver, with TensorFlow imported in it once: every cluster process is forked from it, a
    fresh process that starts in about 0.05 s instead of importing TensorFlow anew (about 3 s of CPU each, so ten
    at once took 15 s on 2 cores). The forkserver lives as long as this process and exits with it."""
    global _CONTEXT
    if _CONTEXT is None:
        import multiprocessing

        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["tensorflow", "tfperf.procs.children", "tfperf.procs.service"])
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
                                name=f"tfperf-{role.rpartition(':')[2]}", daemon=True)
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


# ---- the processes themselves -------------------------------------------------------------------------------

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
    die_with_parent()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if log:  # TensorFlow's C++ messages and Python's go to the process's own log
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    channel = Channel(conn)
    try:
        module, _, function = role.partition(":")
        code = getattr(importlib.import_module(module), function)(options, channel)
    except Exception as exc:  # noqa: BLE001 - one line to the parent; the traceback to the log
        import traceback

        traceback.print_exc()
        with contextlib.suppress(OSError):
            channel.say({"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"})
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # no interpreter teardown: TensorFlow's servers would block it
