"""From a declaration to a runnable: datasets, models, loops and clusters built with TensorFlow, and the runnable
contract the measuring side times (:mod:`tfperf.runtime.base`)."""
