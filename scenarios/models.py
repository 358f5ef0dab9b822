"""The models every training loop uses, from one definition each.

- ``mlp``: the classic Keras MNIST MLP: Dense(128, relu) on 784 features, Dense(10, softmax).
- ``cnn``: a small convnet on the JPEG image set, the compute-heavier case.

Adam and sparse categorical cross-entropy for both; no metrics (see compile_for_fit). Under ``mixed_float16`` the last layer
stays float32 so the softmax and the loss are computed in full precision, as Keras recommends.
"""

from __future__ import annotations

import keras

from . import data


def build(name: str, side: int, seed: int = data.SEED) -> keras.Model:
    keras.utils.set_random_seed(seed)
    if name == "mlp":
        layers = [keras.Input((data.FEATURES,)), keras.layers.Dense(128, activation="relu")]
    elif name == "cnn":
        layers = [
            keras.Input((side, side, 3)),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.GlobalAveragePooling2D(),
        ]
    else:
        raise ValueError(f"unknown model {name!r}: expected mlp or cnn")
    layers.append(keras.layers.Dense(data.CLASSES, activation="softmax", dtype="float32"))
    return keras.Sequential(layers, name=name)


def loss_fn() -> keras.losses.Loss:
    return keras.losses.SparseCategoricalCrossentropy()


def optimizer() -> keras.optimizers.Optimizer:
    return keras.optimizers.Adam(1e-3)


def compile_for_fit(model: keras.Model, steps_per_execution: int = 1) -> None:
    """No metrics, as in the custom loops (which compute the loss only), so fit and the loops do the same work.
    jit_compile is explicit: Keras's "auto" turns XLA on for fit on any machine with a GPU, also for /CPU:0
    variants, and off under a distribution strategy, which would change what fit against xla compares."""
    model.compile(optimizer=optimizer(), loss=loss_fn(), metrics=[], jit_compile=False,
                  steps_per_execution=steps_per_execution)
