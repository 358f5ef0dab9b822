"""The run's measurement processes (:mod:`tfperf.measure.worker`), started once and kept up for the run, each in
a process group of its own, spoken to in JSON lines, stopped (SIGTERM, then SIGKILL) when the run ends."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from tfperf.procs import interpreters

from .settings import Settings


def sweep(base: str) -> None:
    """Remove the temporary folders of workers whose run ended without stopping them: a SIGKILL of the run lets
    nothing run after it, and its workers die with it. A folder names the process that made it; one whose process
    is gone is removed (a live one, or a reused pid's, is kept)."""
    for entry in Path(base).glob("tfperf-w*-*-*"):
        found = re.fullmatch(r"tfperf-w\d+-(\d+)-\w+", entry.name)
        if found and entry.is_dir() and not psutil.pid_exists(int(found.group(1))):
            shutil.rmtree(entry, ignore_errors=True)


class Worker:
    """One measurement process, started once and kept up for the run; spoken to in JSON lines."""

    def __init__(self, index: int, settings: Settings, python: str | None = None, side: str = ""):
        """Worker `index` of the run; an A/B side in an interpreter of its own names its `side` and `python`."""
        self.index = index
        logs = settings.run_dir / "logs"
        logs.mkdir(exist_ok=True)
        self.log = logs / (f"worker-{side}-{index + 1}.log" if side else f"worker-{index + 1}.log")
        # Its temporary files (autograph's generated sources, multiprocessing's forkserver socket folder) in a folder
        # of its own, removed when it stops: a worker is stopped by a signal, so neither TensorFlow nor multiprocessing
        # gets to clean up after it (measured: two or three pymp-* folders and hundreds of autograph files left in
        # /tmp by every default run).
        base = tempfile.gettempdir()
        if len(base) > 60 and os.path.isdir("/tmp"):  # the forkserver's socket goes two folders below: AF_UNIX
            base = "/tmp"  # paths end at 107 bytes ("OSError: AF_UNIX path too long", seen with pytest's tmp_path)
        sweep(base)
        self.tmp = tempfile.mkdtemp(prefix=f"tfperf-w{index + 1}-{os.getpid()}-", dir=base)
        env = {**interpreters.env(settings.paths), "TMPDIR": self.tmp}
        with open(self.log, "a", encoding="utf-8") as log:
            self.proc = subprocess.Popen(
                [python or sys.executable, "-m", "tfperf.measure.worker", "--serve", str(index),
                 *[f"--import={m}" for m in settings.plugins], *[f"--scenarios={s}" for s in settings.specs]],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env, text=True, cwd=os.getcwd(),
                start_new_session=True)  # its own group: Ctrl-C reaches this process, which stops the worker
        # Its lines, read by a thread of their own, so that waiting for a block's result can wake up every few
        # seconds (a progress line) however long the worker stays silent.
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True, name=f"tfperf-worker-{index + 1}")
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            for line in self.proc.stdout:
                self.lines.put(line)
        except (OSError, ValueError):  # the pipe closed under us (stop)
            pass
        self.lines.put("")  # end of output: the process is gone

    def ask(self, request: dict[str, Any], hear: Callable[[list[Any] | None], None] | None = None,
            tick: float = 5.0) -> dict[str, Any]:
        """Send a block, return its result. `hear` gets each progress step the worker reports ([phase, what, i,
        n]) and None after every `tick` seconds in which it reported nothing."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass
        while True:
            try:
                line = self.lines.get(timeout=tick)
            except queue.Empty:
                if hear is not None:
                    hear(None)
                continue
            if not line:
                break
            message = json.loads(line)
            if "progress" in message:
                if hear is not None:
                    hear(message["progress"])
                continue
            return message
        code = self.proc.wait()
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals() \
            else f"exited with code {code}"
        cause = crash_cause(self.log.read_text(errors="replace"))
        raise WorkerDied(f"worker process {self.index + 1} {how}" + (f": {cause}" if cause else "")
                         + f" (log: {self.log})")

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired, PermissionError):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        self.reader.join(timeout=5)  # the process is gone: its reader meets the end of its output
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        shutil.rmtree(self.tmp, ignore_errors=True)  # its group is gone too: nothing writes there any more


# What faulthandler prints after the cause: the stacks and the list of extension modules (3,000 characters)
_DUMP = ("Extension modules:", "File ", "Current thread", "Thread 0x", "Stack (most recent call first)", "<no Python frame>")


def crash_cause(log: str) -> str:
    """The one line of a dead worker's log that says why: faulthandler's "Fatal Python error: ...", else the last
    line that is not part of a stack dump, at most 300 characters."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    fatal = [ln for ln in lines if ln.startswith("Fatal Python error")]
    rest = [ln for ln in lines if not ln.startswith(_DUMP)]
    line = (fatal or rest or [""])[-1]
    return line if len(line) <= 300 else line[:297] + "..."


class WorkerDied(RuntimeError):
    """A worker process ended: the exit code and the last line of its log."""
