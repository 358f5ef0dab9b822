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
import json
import os
import random
import sys
import time
import traceback
from pathlib import Path

from tfperf.api import registry
from tfperf.api.base import SIZES
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
    for line in sys.stdin:
        if not line.strip():
            continue
        spec = json.loads(line)
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

        try:
            result = measure.run_block(block, spec, size, random.Random(spec["seed"]), spec.get("scales") or {},
                                       context, progress=progress)
        except Exception as exc:  # a bug of the harness itself: every member fails with it, the run goes on
            traceback.print_exc()
            result = {"load": {}, "members": [
                {"scenario": spec["scenario"], "variant": m.variant.name, "name": m.name, "selected": m.selected,
                 "status": "failed", "reason": measure.message(exc), "times": [], "order": []} for m in block]}
        print(f"{label}: {len(block)} runnables, {time.perf_counter() - start:.0f}s", file=sys.stderr, flush=True)
        proto.write(json.dumps(result) + "\n")
        proto.flush()
    return 0


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
