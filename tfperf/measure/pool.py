"""The run's measurement processes (:mod:`tfperf.measure.worker`), started once and kept up for the run, each in
a process group of its own, spoken to in JSON lines, stopped (SIGTERM, then SIGKILL) when the run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

from .settings import Settings


class Worker:
    """One measurement process, started once and kept up for the run; spoken to in JSON lines."""

    def __init__(self, index: int, settings: Settings):
        self.index = index
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (*settings.paths, env.get("PYTHONPATH", "")) if p)
        logs = settings.run_dir / "logs"
        logs.mkdir(exist_ok=True)
        self.log = logs / f"worker-{index + 1}.log"
        with open(self.log, "a", encoding="utf-8") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tfperf.measure.worker", "--serve", str(index),
                 *[f"--import={m}" for m in settings.plugins], *[f"--scenarios={s}" for s in settings.specs]],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env, text=True, cwd=os.getcwd(),
                start_new_session=True)  # its own group: Ctrl-C reaches this process, which stops the worker

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            code = self.proc.wait()
            how = f"was killed by {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals() \
                else f"exited with code {code}"
            cause = crash_cause(self.log.read_text(errors="replace"))
            raise WorkerDied(f"worker process {self.index + 1} {how}" + (f": {cause}" if cause else "")
                             + f" (log: {self.log})")
        return json.loads(line)

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
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


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
