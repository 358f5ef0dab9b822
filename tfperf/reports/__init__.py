"""tfperf reports: tables, one offline HTML page per run, and run-versus-run comparison.

Reads results folders only (benchmarks.json and traces via xprof); never imports TensorFlow or scenarios.
"""

import os as _os

# xprof's converter logs every conversion at INFO through TensorFlow's logging layer: keep it quiet (failures come back as exceptions).
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
