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
            last = [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()][-1:]
            raise WorkerDied(f"worker process {self.index + 1} exited with code {code}"
                             + (f": {last[0].strip()}" if last else "") + f" (log: {self.log})")
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


class WorkerDied(RuntimeError):
    """A worker process ended: the exit code and the last line of its log."""
