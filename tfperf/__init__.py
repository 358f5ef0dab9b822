"""tfperf: what each TensorFlow input-pipeline and training choice costs or gains, measured on your machine.

The public API, to declare scenarios that ``pytest bench --benchmark-only --tfperf-scenarios FILE`` runs:

- :func:`pipeline` and :class:`Stages`: a pipeline given as its stages (source or files, per-element map,
  optional after-cache and batch-level stages, batch size) becomes the tf.data matrix (naive, tf.data defaults,
  parallel map, prefetch, fixed widths, cache, vectorized, interleave, shuffle, batch sizes);
- :func:`dataset`: a finished ``tf.data.Dataset`` (a factory) becomes the matrix of what ``tf.data.Options`` and
  appended stages can change;
- :func:`model`: a compiled Keras model (a factory) and its data become the training matrix (fit,
  steps_per_execution, GradientTape loops eager, tf.function and XLA, strategies, checkpoint, callback, GPU and
  mixed precision), each on the naive and the best input and the compute-only bound;
- :func:`service`: a pipeline behind the tf.data service (a local dispatcher and 1, 2, 4 worker processes, or
  ``--tfperf-data-service grpc://HOST:PORT``), in both processing modes, against the pipeline run locally;
- :func:`multi_worker`: a model scenario trained under MultiWorkerMirroredStrategy by 1 and 2 trainer processes.

The built-in scenarios (:mod:`tfperf.builtins`) are made with these same builders. Importing tfperf does not
import TensorFlow: the builders declare, :mod:`tfperf.runtime` builds what they declare.
"""

from __future__ import annotations

from .api.base import AUTOTUNE, SIZES, Scenario, ScenarioError, Size, Unsupported, Variant, per_size
from .api.distributed import multi_worker, service
from .api.pipelines import Stages, dataset, pipeline
from .api.training import model
from .runtime.base import Runnable

__all__ = ["AUTOTUNE", "SIZES", "Runnable", "Scenario", "ScenarioError", "Size", "Stages", "Unsupported", "Variant",
           "dataset", "model", "multi_worker", "per_size", "pipeline", "service"]
