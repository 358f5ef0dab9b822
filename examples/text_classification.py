"""Your own pipeline and model through tfperf: text classification from generated lines of text.

Run it (from the repository root):

    pytest bench --benchmark-only --tfperf-scenarios examples/text_classification.py --tfperf-size smoke

Nothing here resembles the built-ins: the records are strings, preprocessing is `tf.strings` (lower-case, strip
punctuation, split, hash each word to an id, pad), and the model is an embedding bag. The lines are generated,
seeded and deterministic: each of 4 topics draws its words more often from its own part of the vocabulary.
"""

import keras
import numpy as np
import tensorflow as tf

import tfperf

TOPICS, WORDS, BUCKETS, LENGTH = 4, 2000, 4096, 32


def lines(n: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, TOPICS, size=n)
    out = []
    for label in labels:
        k = rng.integers(8, 40)
        own = rng.integers(label * WORDS // TOPICS, (label + 1) * WORDS // TOPICS, size=k)
        words = np.where(rng.random(k) < 0.4, own, rng.integers(0, WORDS, size=k))
        out.append(" ".join(f"Word{w}{'.' if rng.random() < 0.1 else ''}" for w in words))
    return np.array(out), labels.astype(np.int64)


def tokens(text):
    """Standardize, split and hash: one line (a scalar string) or a batch of them; ids 1..BUCKETS, 0 pads."""
    text = tf.strings.regex_replace(tf.strings.lower(text), r"[^a-z0-9 ]", "")
    words = tf.strings.split(text)
    ids = tf.ragged.map_flat_values(tf.strings.to_hash_bucket_fast, words, BUCKETS) + 1 \
        if isinstance(words, tf.RaggedTensor) else tf.strings.to_hash_bucket_fast(words, BUCKETS) + 1
    if isinstance(ids, tf.RaggedTensor):  # a batch
        return ids.to_tensor(default_value=0, shape=[None, LENGTH])
    ids = ids[:LENGTH]
    return tf.pad(ids, [[0, LENGTH - tf.shape(ids)[0]]])


def stages(size: tfperf.Size) -> tfperf.Stages:
    n = tfperf.per_size({"smoke": 1024, "default": 4096}, size)
    return tfperf.Stages(
        source=lambda: tf.data.Dataset.from_tensor_slices(lines(n)),
        map=lambda text, label: (tokens(text), label),
        batch_map=lambda text, label: (tokens(text), label),
        batch_size=64,
    )


def build_model() -> keras.Model:
    keras.utils.set_random_seed(7)
    model = keras.Sequential([
        keras.Input((LENGTH,), dtype="int64"),
        keras.layers.Embedding(BUCKETS + 1, 32),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(TOPICS, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


text = tfperf.pipeline("text", stages, shuffles=(1000,))
text_model = tfperf.model("text_model", build_model, text, best="vectorized", steps={"smoke": 8, "default": 32})

SCENARIOS = [text, text_model]
