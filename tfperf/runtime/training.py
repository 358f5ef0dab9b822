"""A built training variant: the user's model, loss and optimizer, its input and its loop (``fit`` or a GradientTape
loop, eager, ``tf.function`` or XLA), in its device or strategy scope.

A round is several epochs of a fixed number of steps, each over a fresh pass of the input; training goes on from
round to round. Model building, compiling and function tracing happen in the untimed warm-up round. ``fit`` is
compiled with no metrics and ``jit_compile=False``, so ``fit`` and the custom loops do the same work.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import keras
import tensorflow as tf

from tfperf.api.base import ScenarioError, Size, call_user, describe_callable, first_line, per_size
from tfperf.api.training import STEPS_PER_EXECUTION, ModelScenario, TrainVariant

from . import devices
from .base import Runnable
from .datasets import PipelineData


def _strategy(v: TrainVariant) -> tf.distribute.Strategy | None:
    if v.strategy == "one_device":
        return tf.distribute.OneDeviceStrategy(v.device)
    if v.strategy == "mirrored":
        kind = "GPU" if v.device.startswith("/GPU") else "CPU"
        return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices(kind)][:2])
    return None


def _per_execution(v: TrainVariant) -> int:
    return v.steps_per_execution or (STEPS_PER_EXECUTION if v.loop == "fit_spe" else 1)


def training_consumer(scenario: ModelScenario, size: Size) -> Callable[[Any], Any]:
    """The scenario's training step as a pipeline's consumer (``tfperf tune`` on a model scenario): the user's model,
    loss and optimizer, one GradientTape step per batch in a ``tf.function``, so a pipeline's compute-only bound is
    the step's own time."""
    model, loss_fn, opt = user_model(scenario, size)

    @tf.function
    def step(batch):
        x, y = batch
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables,
                                strict=True))
        return loss
    return step


def user_model(scenario: ModelScenario, size: Size) -> tuple[keras.Model, Any, Any]:
    """The user's model, loss and optimizer (a compiled model's own, or the ones returned beside it), built in the
    caller's device or strategy scope; a string or plain-function loss becomes a batch-mean loss."""
    name, factory = scenario.name, scenario.factory
    assert factory is not None
    got = call_user(name, "model factory", factory, size=size)
    what = f"model factory {describe_callable(factory)}"
    if isinstance(got, tuple) and len(got) == 3:
        m, loss, optimizer = got
    else:
        m, loss, optimizer = got, getattr(got, "loss", None), getattr(got, "optimizer", None)
    if not isinstance(m, keras.Model):
        raise ScenarioError(f"scenario {name}: {what} returned {type(m).__name__}, expected a compiled "
                            "keras.Model or (model, loss, optimizer)")
    if loss is None or optimizer is None:
        raise ScenarioError(f"scenario {name}: {what} returned a model that is not compiled; compile it (an "
                            "optimizer and a loss) or return (model, loss, optimizer)")
    if isinstance(optimizer, str):
        optimizer = keras.optimizers.get(optimizer)
    try:
        loss = keras.losses.get(loss) if isinstance(loss, str | dict) else loss
    except ValueError as exc:
        raise ScenarioError(f"scenario {name}: {what}: {first_line(exc)}") from exc
    if not callable(loss):
        raise ScenarioError(f"scenario {name}: {what}: the loss {loss!r} is not callable")
    if not isinstance(loss, keras.losses.Loss):  # a plain function: reduced to the batch mean, as compile does
        per_example = loss

        def loss(y_true, y_pred):
            return tf.reduce_mean(per_example(y_true, y_pred))
    return m, loss, optimizer


class _StepMarker(keras.callbacks.Callback):
    """Marks each fit batch as a profiler step, so the Overview page has step times."""

    def __init__(self, mark: Callable[[int], AbstractContextManager[Any]]):
        super().__init__()
        self._mark, self._open, self._step = mark, None, 0

    def on_train_batch_begin(self, batch, logs=None):
        # Our own count, not Keras's batch index: with steps_per_execution that index jumps by N, and
        # xprof only pairs up consecutive step numbers.
        self._open = self._mark(self._step)
        self._step += 1
        self._open.__enter__()

    def on_train_batch_end(self, batch, logs=None):
        if self._open is not None:
            self._open.__exit__(None, None, None)
            self._open = None


class TrainRun(Runnable):
    """One training variant, built and ready: model, optimizer, input and loop."""

    # A new scale is only another epoch count over the same model, input and traced step: nothing is rebuilt, so
    # the calibration round already warmed what the timed rounds use and no warm-up round is owed.
    warm_after_scale = False

    def __init__(self, scenario: ModelScenario, v: TrainVariant, size: Size, data: PipelineData):
        self.scenario, self.variant, self.size = scenario, v, size
        self.data = data  # the runtime view of scenario.data
        # A custom loop's round is a Python loop over epochs, so one epoch alone is the same work; a `fit` round
        # is one call for all its epochs (a call per epoch would add fit's set-up to every epoch).
        self.by_pass = not v.loop.startswith("fit")
        self.base_steps = int(per_size(scenario.steps, size))
        self.pipe = self.data.variant(v.input_variant or (scenario.naive if v.input == "naive" else scenario.best))
        self.strategy = _strategy(v)
        self._ckpt_dir: str | None = None
        self.save_seconds: list[float] = []
        # A fixed batch (the bound's input and the loss probe), from a one-batch pass of the same pipeline: a
        # partial pass over the round's dataset would abandon a half-filled cache.
        self.probe = self._first_batch()
        self.batch_size = int(tf.shape(tf.nest.flatten(self.probe[0])[0])[0])
        with self._scope(), devices.precision(v.precision):
            self.model, loss, optimizer = self._model()
            if v.loop.startswith("fit"):
                self.model.compile(optimizer=optimizer, loss=loss, metrics=[], jit_compile=v.jit_compile,
                                   steps_per_execution=_per_execution(v))
            else:
                self.optimizer = optimizer
                if v.precision == "mixed_float16":
                    self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
                self.loss = loss
            self.probe = tuple(tf.identity(t) for t in self.probe)  # on the device (or replicated scope)
            self._check_fit(loss)
        self.steps = self.base_steps
        self.dataset, self._input = self._build_input()
        self.info: dict[str, Any] = {}
        self.scale(1)
        if not v.loop.startswith("fit"):
            self._step = self._make_step()
            if v.checkpoint_every:
                self._ckpt_dir = tempfile.mkdtemp(prefix="tfperf-ckpt-")
                self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer)
                self.manager = tf.train.CheckpointManager(self.checkpoint, self._ckpt_dir, max_to_keep=2)
        self.callbacks: list[keras.callbacks.Callback] = []
        if v.early_stopping:
            self.callbacks.append(keras.callbacks.EarlyStopping(monitor="loss", patience=100,
                                                                restore_best_weights=True))

    def _first_batch(self) -> tuple[Any, Any]:
        per_pass = self.data.pass_examples(self.pipe, self.size)
        one, _ = self.data.dataset_for(self.pipe, self.size, min(per_pass, 4096))
        try:
            batch = next(iter(one))
        except StopIteration:
            raise ScenarioError(f"scenario {self.scenario.name}: input {self.data.name}/{self.pipe.name} "
                                "gave no batch") from None
        if not (isinstance(batch, tuple) and len(batch) == 2):
            raise ScenarioError(f"scenario {self.scenario.name}: input {self.data.name}/{self.pipe.name} yields "
                                f"{type(batch).__name__} elements; a model trains on (features, labels) batches")
        return batch

    def _model(self) -> tuple[keras.Model, Any, Any]:
        return user_model(self.scenario, self.size)

    def _check_fit(self, loss: Any) -> None:
        """The data must fit the model: one forward pass and the loss on the probe batch, untimed."""
        x, y = self.probe
        try:
            value = loss(y, self.model(x, training=False))
            if not bool(tf.reduce_all(tf.math.is_finite(tf.cast(value, tf.float32)))):
                raise ValueError(f"the loss on the first batch is {float(tf.reduce_mean(value))}")
        except Exception as exc:
            raise ScenarioError(
                f"scenario {self.scenario.name}: the batches of {self.data.name}/{self.pipe.name} do not fit the model "
                f"from {describe_callable(self.scenario.factory)}: {first_line(exc)}") from exc

    def _build_input(self) -> tuple[tf.data.Dataset, tuple[str, dict[str, Any]]]:
        """One epoch's input, exactly `steps` batches, and (input variant, tf.data options) for the row."""
        if self.variant.input == "memory":  # the bound never reads the pipeline: the same on-device batch
            # Autotune off: nothing here to tune, and with it on, `fit`'s teardown of each epoch's iterator can
            # stall on the autotune thread (see `tfperf.runtime.base.Teardowns`), an input cost the bound must not hold.
            options = tf.data.Options()
            options.autotune.enabled = False
            bound = tf.data.Dataset.from_tensors(self.probe).repeat(self.steps).with_options(options)
            return bound, ("memory (one batch on the device)", {"autotune": False})
        # Passes of at most the pipeline's own pass size, repeated inside one iterator, cut to exactly `steps`.
        need = self.steps * self.batch_size
        per_pass = min(need, self.data.pass_examples(self.pipe, self.size))
        ds, pipe_info = self.data.dataset_for(self.pipe, self.size, per_pass, -(-need // per_pass))
        return ds.take(self.steps), (f"{self.data.name}/{self.pipe.name}", pipe_info["tf_data_options"])

    def scale(self, passes: int, repeat: int = 1) -> None:
        """A round of `passes` epochs of the size's steps, each a fresh pass over the same one-epoch input
        (`repeat` is for pipelines: an epoch here is already long against its fixed costs)."""
        v = self.variant
        self.epochs = passes
        self.examples_per_round = passes * self.steps * self.batch_size
        input_variant, options = self._input
        self.info.update({
            "batch_size": self.batch_size, "device": v.device, "loop": v.loop, "model": self.scenario.name,
            "strategy": v.strategy, "precision": v.precision, "input_variant": input_variant,
            "bound_variant": v.bound, "steps": self.steps * passes, "steps_per_epoch": self.steps,
            "epochs_per_round": passes, "tf_data_options": options,
            "jit_compile": v.loop == "xla" or v.jit_compile, "steps_per_execution": _per_execution(v),
            "metrics": "none (loss only, in fit and in the custom loops)",
        })
        if self.strategy is not None:
            self.info["replicas"] = self.strategy.num_replicas_in_sync

    def start_timing(self) -> None:
        """Called before the first timed round: what the warm-up rounds saved is not a timed figure."""
        self.save_seconds.clear()

    def _scope(self) -> AbstractContextManager[Any]:
        """A fresh placement scope (strategy scopes are single-use context managers)."""
        return self.strategy.scope() if self.strategy else tf.device(self.variant.device)

    def _make_step(self):
        model, opt, loss_fn = self.model, self.optimizer, self.loss
        mixed = self.variant.precision == "mixed_float16"

        def step(x, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
                scaled = opt.scale_loss(loss) if mixed else loss
            grads = tape.gradient(scaled, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return loss

        if self.variant.loop == "eager":
            return step
        return tf.function(step, jit_compile=self.variant.loop == "xla")

    def _custom_loop(self, steps: int | None = None, mark=None) -> int:
        """The GradientTape loop. Each step, the batch fetch included, runs inside `mark(step)` when profiling,
        so the profiler attributes input time to the step."""
        n = steps or self.steps
        if self.variant.input == "memory":
            batches = None
        else:
            # A timed epoch pays for its iterator's teardown, stalls included (see `Teardowns`), as `fit` does for
            # the iterators it makes and drops inside the call: the two loops are compared like for like.
            batches = iter(self.dataset if steps is None else self.dataset.repeat().take(steps))
        done = 0
        every = self.variant.checkpoint_every
        with self._scope():
            while done < n:
                with mark(done) if mark else nullcontext():
                    if batches is None:
                        x, y = self.probe
                    else:
                        try:
                            x, y = next(batches)
                        except StopIteration:
                            break
                    self._step(x, y)
                done += 1
                if every and done % every == 0:
                    start = time.perf_counter()
                    self.manager.save()
                    self.save_seconds.append(time.perf_counter() - start)
        return done

    def _iterations(self) -> int:
        """The optimizer's step count, read back from the device: the round is done when this returns."""
        opt = self.model.optimizer if self.variant.loop.startswith("fit") else self.optimizer
        return int(opt.iterations.numpy())

    def run_pass(self) -> int:
        """One epoch of a custom loop (a round is `epochs` of these), with its device read."""
        before = self._iterations()
        self._custom_loop()
        return (self._iterations() - before) * self.batch_size

    def run_round(self) -> int:
        """`epochs` epochs; returns the examples actually trained on (optimizer steps times batch size)."""
        before = self._iterations()
        if self.variant.loop.startswith("fit"):
            with self._scope():
                self.model.fit(self.dataset, epochs=self.epochs, verbose=0, callbacks=self.callbacks)
        else:
            for _ in range(self.epochs):
                self._custom_loop()
        return (self._iterations() - before) * self.batch_size

    def profile(self, steps: int, mark: Callable[[int], AbstractContextManager[Any]]) -> int:
        if self.variant.loop.startswith("fit"):
            # Keras calls batch callbacks once per execution: with steps_per_execution, a marked step is one
            # execution of that many batches, and as many batches as the other loops' windows are marked (at
            # least 3 executions): 10x the batches would make a 10x trace (455 MB for an LSTM at `default`).
            per_mark = _per_execution(self.variant)
            marks = max(3, -(-steps // per_mark))
            ds = self.dataset.repeat().take(marks * per_mark)
            with self._scope():
                self.model.fit(ds, epochs=1, verbose=0, callbacks=[*self.callbacks, _StepMarker(mark)])
            return marks
        return self._custom_loop(steps, mark)

    def measured(self) -> dict[str, Any]:
        """Figures gathered while the rounds ran (bench adds them to the row): the checkpoint cost per save."""
        if not self.save_seconds:
            return {}
        return {"checkpoint_saves": len(self.save_seconds),
                "checkpoint_ms_per_save_median": 1000 * statistics.median_high(self.save_seconds)}

    def probe_loss(self) -> float:
        """Loss on the fixed probe batch, without training: tests use it to prove the loop learns."""
        x, y = self.probe
        loss = self.model.loss if self.variant.loop.startswith("fit") else self.loss
        with self._scope():
            return float(tf.reduce_mean(loss(y, self.model(x, training=False))))

    def close(self) -> None:
        if self._ckpt_dir:
            shutil.rmtree(self._ckpt_dir, ignore_errors=True)
