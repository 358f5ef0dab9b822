"""TensorFlow's start-up noise, kept out of the main job's output; its real errors still shown.

On TF 2.21 importing TensorFlow and listing devices prints C++ log lines through absl before TensorFlow's
own logging is set up, so ``TF_CPP_MIN_LOG_LEVEL`` cannot silence them: the oneDNN notice, "Could not find
cuda drivers", and on every machine without a GPU ``E0000 ... failed call to cuInit``, which reads as an
error although nothing is wrong. :func:`tensorflow_started` holds file descriptor 2 while TensorFlow starts
(import and device discovery), then writes back every line except the known start-up notices. A user who
sets ``TF_CPP_MIN_LOG_LEVEL`` themselves gets everything, unfiltered.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

# Decided once, before anything here sets it; a child process of ours inherits our setting, marked as ours.
USER_ASKED = "TF_CPP_MIN_LOG_LEVEL" in os.environ and os.environ.get("TFPERF_SET_TF_LOG_LEVEL") != "1"

NOISE = re.compile(
    r"oneDNN custom operations are on"
    r"|All log messages before absl::InitializeLog\(\) is called"
    r"|Could not find cuda drivers on your machine"
    r"|failed call to cuInit"
    r"|cuda_(platform|executor|diagnostics|dnn|fft|blas)\.cc"
    r"|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation placer already registered"
    r"|TF-TRT Warning"
    r"|This TensorFlow binary is optimized to use available CPU instructions"
    r"|rebuild TensorFlow with the appropriate compiler flags"
    r"|^\s*$"
)


@contextmanager
def tensorflow_started() -> Iterator[None]:
    """Run the block (import TensorFlow, list devices) with its start-up notices filtered out of stderr."""
    if USER_ASKED:
        yield
        return
    if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        os.environ["TFPERF_SET_TF_LOG_LEVEL"] = "1"
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held.read().decode(errors="replace").splitlines() if not NOISE.search(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr, flush=True)
