"""Process-global device state, contained in one place.

TensorFlow fixes its logical devices when the runtime starts: the CPU can be split into two logical
devices (so that ``MirroredStrategy`` really runs on a CPU-only machine) only before the first op. bench
and tests call :func:`configure` first thing; the split is recorded in the machine info. Logical CPU
devices share the same thread pools, so the split does not change single-device timings.

The Keras precision policy is global too: :func:`precision` sets it only while a model is built (layers
keep the policy they were built with) and restores the previous one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import keras
import tensorflow as tf

from tfperf.api.base import Unsupported

LOGICAL_CPUS = 2
_configured: dict[str, object] = {}


def configure(logical_cpus: int = LOGICAL_CPUS) -> dict[str, object]:
    """Split the CPU into logical devices and let GPU memory grow; idempotent, safe once TF has started."""
    if _configured:
        return _configured
    cpus = tf.config.list_physical_devices("CPU")
    gpus = tf.config.list_physical_devices("GPU")
    note = "ok"
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(logical_cpus)])
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError as exc:  # the runtime already started: keep what it has
        note = f"not split: {exc}"
    _configured.update(logical_cpus=len(tf.config.list_logical_devices("CPU")),
                       gpus=len(tf.config.list_logical_devices("GPU")), note=note)
    return _configured


def capabilities() -> dict[str, int]:
    configure()
    return {"logical_cpus": len(tf.config.list_logical_devices("CPU")),
            "gpus": len(tf.config.list_logical_devices("GPU"))}


def check(requires: tuple[str, ...]) -> None:
    """Raise Unsupported naming the first requirement this machine does not meet."""
    have = capabilities()
    for req in requires:
        key, _, count = req.partition(">=")
        need = int(count or 1)
        key = {"gpu": "gpus"}.get(key, key)
        if have.get(key, 0) < need:
            what = "GPU" if key == "gpus" else "logical CPU"
            raise Unsupported(f"needs {need} {what}{'s' if need > 1 else ''}, this machine has {have.get(key, 0)}")


@contextmanager
def precision(policy: str) -> Iterator[None]:
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def describe() -> dict[str, object]:
    """TF build facts for the machine info: CUDA/cuDNN versions, GPU names, threads."""
    build = tf.sysconfig.get_build_info()
    gpus = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        gpus.append(details.get("device_name", gpu.name))
    return {
        "tf_version": tf.__version__,
        "keras_version": keras.__version__,
        "cuda_version": build.get("cuda_version"),
        "cudnn_version": build.get("cudnn_version"),
        "gpus": gpus,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        **{f"devices_{k}": v for k, v in configure().items()},
    }
