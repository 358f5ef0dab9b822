"""The models every training loop uses, from one definition each.

- ``mlp``: the classic Keras MNIST MLP: Dense(128, relu) on 784 features, Dense(10, softmax).
- ``cnn``: a small convnet on the JPEG image set, the compute-heavier case.

Adam, sparse categorical cross-entropy and accuracy for both. Under ``mixed_float16`` the last layer
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
    model.compile(optimizer=optimizer(), loss=loss_fn(), metrics=["accuracy"],
                  steps_per_execution=steps_per_execution)
