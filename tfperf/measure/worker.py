"""One measurement process: ``python -m tfperf.measure.worker --serve INDEX``, started once by the harness and kept
up for the run. It loads the run's scenarios once, then measures the blocks it is sent, one at a time.

Why a process of its own: on TF 2.21 a whole process can sit at a different level from the next (thread
placement on 2 cores), so repetition pays only across processes (pyperf's lesson), and the parent pytest
process stays free of every variant's state. Protocol: one JSON request per block on stdin; back on stdout, a
``{"progress": [phase, what, i, n]}`` line at every step of the block, then its result in one JSON line
(everything else the process prints goes to stderr, its log).
"""

from __future__ import annotations

import faulthandler
import importlib
import importlib.metadata
import json
import os
import random
import sys
import time
import traceback
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tfperf.api import registry
from tfperf.api.base import SIZES, first_line
from tfperf.procs.children import die_with_parent
from tfperf.runtime.base import BlockContext
from tfperf.runtime.quiet import tensorflow_started


def serve(index: int, imports: list[str], specs: list[str]) -> int:
    """Answer block requests from the harness, one JSON line in and one out, until stdin closes."""
    die_with_parent(watchdog=True)
    proto = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints (TensorFlow, Keras) go to stderr
    faulthandler.enable()  # a crash inside TensorFlow leaves the Python stack in the worker's log
    with tensorflow_started():
        import tensorflow as tf

        from tfperf.measure import block as measure
        from tfperf.runtime import devices

        devices.configure()
        reg = registry.load(specs)  # the same scenarios as the pytest process
    tf.get_logger().setLevel("ERROR")  # retracing notices for each built variant's own functions
    for module in imports:  # the session's -p plugins: a test may patch the registry through one
        importlib.import_module(module)
    port = int(os.environ.get("TFPERF_SERVICE_PORT") or 0)
    held: tuple[ExitStack, Any] | None = None  # a block opened by an "open" request, until its "close"
    for line in sys.stdin:
        if not line.strip():
            continue
        spec = json.loads(line)
        op = spec.get("op", "block")
        if op in ("round", "close"):  # the later steps of a block opened earlier (an A/B across interpreters)
            result = _step(held, op, spec)
            if op == "close" and held is not None:
                held[0].close()
                held = None
            _answer(proto, result)
            continue
        size = SIZES[spec["size"]]
        # the trainers of a multi-worker scenario load the same SPECs; cluster processes log in the run's logs
        context = BlockContext(specs=tuple(specs), log_dir=Path(spec["run_dir"]) / "logs", service_port=port)
        sc = reg[spec["scenario"]]
        block = [measure.member(sc, v, name, selected) for v, name, selected in spec["members"]]
        label = f"tfperf: process {spec['process'] + 1}/{spec['processes']}: {spec['scenario']}/{spec['block']}"
        start = time.perf_counter()

        def progress(phase: str, what: str, i: int, n: int) -> None:
            proto.write(json.dumps({"progress": [phase, what, i, n]}) + "\n")
            proto.flush()

        rng, scales = random.Random(spec["seed"]), spec.get("scales") or {}
        try:
            if op == "open":  # build, warm up and calibrate; the rounds and the close come as requests of their own
                stack = ExitStack()
                held = (stack, stack.enter_context(measure.opened(block, spec, size, rng, scales, context,
                                                                   progress=progress)))
                held[1].open()
                result = {"opened": [m.name for m in held[1].alive], "versions": versions(tf)}
            else:
                result = measure.run_block(block, spec, size, rng, scales, context, progress=progress)
        except Exception as exc:  # a bug of the harness itself: every member fails with it, the run goes on
            traceback.print_exc()
            if held is not None:
                held[0].close()
                held = None
            result = {"load": {}, "members": [
                {"scenario": spec["scenario"], "variant": m.variant.name, "name": m.name, "selected": m.selected,
                 "status": "failed", "reason": measure.message(exc), "times": [], "order": []} for m in block]}
        print(f"{label}: {len(block)} runnables, {op}, {time.perf_counter() - start:.0f}s", file=sys.stderr,
              flush=True)
        _answer(proto, result)
    return 0


def _answer(proto: Any, result: dict[str, Any]) -> None:
    proto.write(json.dumps(result) + "\n")
    proto.flush()


def _step(held: tuple[ExitStack, Any] | None, op: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A round or the close of the block an "open" request left open."""
    if held is None:
        return {"error": f"a {op} request with no block open"}
    steps = held[1]
    try:
        if op == "round":
            began = time.time()  # wall clock: comparable with the other side's worker's log
            steps.round(int(spec["round"]))
            print(f"tfperf: round {int(spec['round']) + 1} from {began:.6f} to {time.time():.6f}", file=sys.stderr,
                  flush=True)
            return {"round": int(spec["round"])}
        return steps.close()
    except Exception as exc:  # a bug of the harness itself: said, the block closed by the caller
        traceback.print_exc()
        return {"error": first_line(exc)}


def versions(tf: Any) -> dict[str, Any]:
    """What this worker's interpreter measures with: its path, TensorFlow's and Keras' versions."""
    try:
        keras = importlib.metadata.version("keras")
    except importlib.metadata.PackageNotFoundError:
        keras = None
    return {"python": sys.executable, "tensorflow": tf.__version__, "keras": keras}


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "--serve":
        return serve(int(argv[1]), [a.split("=", 1)[1] for a in argv[2:] if a.startswith("--import=")],
                     [a.split("=", 1)[1] for a in argv[2:] if a.startswith("--scenarios=")])
    print("usage: python -m tfperf.measure.worker --serve INDEX [--import=MODULE ...] [--scenarios=SPEC ...] "
          "(started by tfperf.measure.harness)",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
