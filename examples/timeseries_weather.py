"""A second user scenario, from a public Keras example: "Timeseries forecasting for weather prediction"
(keras.io/examples/timeseries/timeseries_weather_forecasting/), with its dataset and model as published, on
generated data in place of the Jena climate download (no network at run time).

    pytest bench --benchmark-only --tfperf-scenarios examples/timeseries_weather.py

The example builds its input with `keras.utils.timeseries_dataset_from_array`: a finished dataset a user does not
restructure, so it is given to tfperf as an opaque dataset (`tfperf.dataset`); the LSTM trains on it with
`tfperf.model`.
"""

import keras
import numpy as np

import tfperf

PAST, FUTURE, STEP, BATCH, FEATURES = 720, 72, 6, 256, 7  # as in the Keras example (7 selected features)


def series(rows: int, seed: int = 3) -> np.ndarray:
    """Hourly-like weather: daily and yearly cycles, correlated features, noise; normalized as the example does."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows, dtype=np.float32)
    day, year = np.sin(2 * np.pi * t / 144), np.sin(2 * np.pi * t / (144 * 365))
    base = np.stack([day * (1 + k / 7) + year * (2 - k / 4) for k in range(FEATURES)], axis=1)
    x = base + rng.normal(0, 0.3, size=base.shape).astype(np.float32)
    return ((x - x.mean(axis=0)) / x.std(axis=0)).astype(np.float32)


def make_dataset(size: tfperf.Size):
    data = series(tfperf.per_size({"smoke": 4_000, "default": 12_000}, size))
    start = PAST + FUTURE
    x, y = data[: len(data) - start], data[start:, 1:2]  # the example's target is temperature, column 1
    return keras.utils.timeseries_dataset_from_array(x, y, sequence_length=PAST // STEP, sampling_rate=STEP,
                                                     batch_size=BATCH)


def build_model():
    inputs = keras.layers.Input((PAST // STEP, FEATURES))
    outputs = keras.layers.Dense(1)(keras.layers.LSTM(32)(inputs))
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001), loss="mse")
    return model


weather_input = tfperf.dataset("weather_input", make_dataset)
weather_lstm = tfperf.model("weather_lstm", build_model, weather_input, steps={"smoke": 3, "default": 8})

SCENARIOS = [weather_input, weather_lstm]
