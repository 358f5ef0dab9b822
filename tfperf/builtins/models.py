"""The built-in models, declared with the public builder (:func:`tfperf.model`), as a user would.

- ``mlp``: the classic Keras MNIST MLP (Dense(128, relu) on 784 features, Dense(10, softmax)) on the ``light``
  pipeline; its best input is ``vectorized`` (on 2 cores the light map is bound by per-element overhead, which
  parallelism cannot hide and a vectorized map removes).
- ``cnn``: a small convnet on the ``cpu`` pipeline's JPEGs, the compute-heavier case; its best input is
  ``cache`` (the decoded images cached, augmentation after the cache).

Adam and sparse categorical cross-entropy for both. Under ``mixed_float16`` the last layer stays float32 so the
softmax and the loss are computed in full precision, as Keras recommends.
"""

from __future__ import annotations

import keras

import tfperf

from . import data
from .pipelines import MODEL_SIDE, cpu, light


def _compiled(layers: list) -> keras.Model:
    layers.append(keras.layers.Dense(data.CLASSES, activation="softmax", dtype="float32"))
    m = keras.Sequential(layers)
    m.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy())
    return m


def build_mlp() -> keras.Model:
    keras.utils.set_random_seed(data.SEED)
    return _compiled([keras.Input((data.FEATURES,)), keras.layers.Dense(128, activation="relu")])


def build_cnn(size: tfperf.Size) -> keras.Model:
    keras.utils.set_random_seed(data.SEED)
    side = tfperf.per_size(MODEL_SIDE, size)
    return _compiled([
        keras.Input((side, side, 3)),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.GlobalAveragePooling2D(),
    ])


mlp = tfperf.model("mlp", build_mlp, light, best="vectorized",
                   steps={"smoke": 8, "small": 25, "default": 25, "large": 100},
                   doc="the classic Keras MNIST MLP on the light pipeline")
cnn = tfperf.model("cnn", build_cnn, cpu, best="cache", loops=("fit", "function", "xla"), strategies=False,
                   extras=False, gpu=("fit", "xla"), mixed_precision=False,
                   steps={"smoke": 2, "small": 3, "default": 4, "large": 8},
                   doc="a small convnet on the JPEG pipeline")
