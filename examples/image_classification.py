"""A heavy model of your own through tfperf: keras-io's "Image classification from scratch" at 32 x 32.

Run it (from the repository root):

    pytest bench --benchmark-only --tfperf-scenarios examples/image_classification.py --tfperf-size smoke

The model is keras-io's small Xception-like network (an entry convolution, three residual blocks of separable
convolutions at 256, 512 and 728 filters, a 1024-filter separable convolution, global pooling, dropout, one
logit), on 256 generated 32 x 32 RGB images of two classes. Its random augmentation (a flip and a rotation)
runs in the pipeline's `after_cache` stage, so no variant caches one draw for every epoch. Unlike the built-ins,
the model, not the input, takes most of a step here: tfperf's answer for it should say so.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers

import tfperf

SIDE, IMAGES = 32, 256


def images(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Two classes told apart by the brightness of one colour channel, with noise: seeded and deterministic."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    x = rng.integers(0, 200, size=(n, SIDE, SIDE, 3)).astype(np.float32)
    x[..., 0] += 55.0 * labels[:, None, None]
    return x, labels.astype(np.float32)


AUGMENT = keras.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.1)])


def stages(size: tfperf.Size) -> tfperf.Stages:
    n = tfperf.per_size({"smoke": IMAGES, "default": 4 * IMAGES}, size)
    return tfperf.Stages(
        source=lambda: tf.data.Dataset.from_tensor_slices(images(n)),
        map=lambda x, y: (tf.image.convert_image_dtype(x / 255.0, tf.float32) * 255.0, y),
        after_cache=lambda x, y: (AUGMENT(x, training=True), y),
        batch_size=32,
    )


def make_model(input_shape=(SIDE, SIDE, 3)) -> keras.Model:
    """keras-io's make_model, for two classes."""
    inputs = keras.Input(shape=input_shape)
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.Conv2D(128, 3, strides=2, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    previous = x
    for filters in (256, 512, 728):
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(filters, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(filters, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        residual = layers.Conv2D(filters, 1, strides=2, padding="same")(previous)
        x = layers.add([x, residual])
        previous = x
    x = layers.SeparableConv2D(1024, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.25)(x)
    outputs = layers.Dense(1, activation=None)(x)
    return keras.Model(inputs, outputs)


def build_model() -> keras.Model:
    keras.utils.set_random_seed(7)
    model = make_model()
    model.compile(optimizer=keras.optimizers.Adam(3e-4), loss=keras.losses.BinaryCrossentropy(from_logits=True))
    return model


pictures = tfperf.pipeline("pictures", stages)
picture_model = tfperf.model("picture_model", build_model, pictures, best="parallel_prefetch",
                             steps={"smoke": IMAGES // 32, "default": 4 * IMAGES // 32})

SCENARIOS = [pictures, picture_model]
