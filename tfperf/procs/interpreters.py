"""A side of ``tfperf ab`` in a Python environment of its own (``--base-python`` / ``--new-python``): checked once
before the run, so that an interpreter that cannot measure (no such file, no TensorFlow, no tfperf) is one line,
not a worker that dies mid-run."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Imported the way a worker imports them; one JSON line back: the versions, or why not.
_PROBE = """import json, sys
def say(**kw):
    print("TFPERF-PROBE " + json.dumps(kw), flush=True)
try:
    import tensorflow as tf
except Exception as exc:
    say(error=f"cannot import tensorflow ({type(exc).__name__}: {exc})"); sys.exit(0)
try:
    import tfperf.measure.worker
except Exception as exc:
    say(error=f"cannot import tfperf ({type(exc).__name__}: {exc})"); sys.exit(0)
try:
    from importlib.metadata import version
    keras = version("keras")
except Exception:
    keras = None
say(python=sys.executable, tensorflow=tf.__version__, keras=keras, version=sys.version.split()[0])
"""
TIMEOUT_S = 300.0  # importing TensorFlow in a cold environment takes seconds, not minutes


class InterpreterError(Exception):
    """An interpreter a side cannot be measured with: one line."""


def env(paths: Sequence[str]) -> dict[str, str]:
    """The environment of a worker process: this one's, with the run's import roots first on PYTHONPATH."""
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join(p for p in (*paths, out.get("PYTHONPATH", "")) if p)
    return out


def check(python: str, paths: Sequence[str] = (), label: str = "--python") -> dict[str, Any]:
    """The versions `python` measures with ({"python", "tensorflow", "keras", "version"}), or an
    InterpreterError naming `label` and the cause."""
    if not Path(python).is_file() or not os.access(python, os.X_OK):
        raise InterpreterError(f"{label} {python}: no such interpreter (not an executable file)")
    try:
        proc = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, env=env(paths),
                              timeout=TIMEOUT_S, cwd=os.getcwd())
    except subprocess.TimeoutExpired:
        raise InterpreterError(f"{label} {python}: importing TensorFlow took over {TIMEOUT_S:.0f} s") from None
    except OSError as exc:
        raise InterpreterError(f"{label} {python}: {exc.strerror or exc}") from None
    found = [ln for ln in proc.stdout.splitlines() if ln.startswith("TFPERF-PROBE ")]
    if not found:
        last = (proc.stderr.strip().splitlines() or [f"exited with code {proc.returncode}"])[-1]
        raise InterpreterError(f"{label} {python}: {last}")
    answer = json.loads(found[-1][len("TFPERF-PROBE "):])
    if "error" in answer:
        raise InterpreterError(f"{label} {python}: {answer['error']}")
    return answer
