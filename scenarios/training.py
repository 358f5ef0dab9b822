"""The training scenario: model.fit against custom GradientTape loops, per input, device and strategy.

Loops: ``fit``; ``fit_spe`` (``steps_per_execution=10``); ``eager`` (a GradientTape step called from
Python); ``function`` (the same step in ``tf.function``); ``xla`` (``tf.function(jit_compile=True)``).

Inputs are the pipeline scenario's own variants, reused by name (:data:`pipeline.TRAINING_INPUTS`):
``naive`` and ``best``. The third input, ``memory``, is the compute-only bound: the same number of
steps fed one batch already materialized on the device (for ``fit``, that batch repeated by
``Dataset.from_tensors(...).repeat()``; for custom loops, the same tensors passed each step). Reports
derive ``input_overhead = time / bound - 1`` from the pair.

A round is one epoch of a fixed number of steps over a fresh pass of the input; training goes on from
round to round. Model building, compiling and function tracing happen before the timed rounds, in the
untimed warm-up round.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

from . import devices, models, pipeline
from .core import Scenario, Size, Variant

VERSION = "2"  # 2: like-for-like baselines, no metrics in fit, scaled rounds
STEPS_PER_EXECUTION = 10


@dataclass(frozen=True, kw_only=True)
class TrainVariant(Variant):
    model: str = "mlp"  # mlp | cnn
    loop: str = "fit"  # fit | fit_spe | eager | function | xla
    input: str = "best"  # naive | best | memory (the compute-only bound)
    device: str = "/CPU:0"
    strategy: str = "default"  # default | one_device | mirrored
    precision: str = "float32"  # float32 | mixed_float16
    checkpoint_every: int = 0  # CheckpointManager.save every N steps (0: none)
    early_stopping: bool = False

    @property
    def bound(self) -> str:
        """Name of the compute-only-bound variant this one is measured against."""
        return _name(self.model, self.loop, "memory", self.device, self.strategy, self.precision)


def _name(model: str, loop: str, inp: str, device: str, strategy: str, precision: str, extra: str = "") -> str:
    parts = [model, loop, inp]
    if device != "/CPU:0":
        parts.append(device.strip("/").replace(":", "").lower())
    if strategy != "default":
        parts.append(strategy)
    if precision != "float32":
        parts.append(precision)
    if extra:
        parts.append(extra)
    return "-".join(parts)


def _grid(model: str, loops: tuple[str, ...], inputs: tuple[str, ...], device: str = "/CPU:0",
          strategy: str = "default", precision: str = "float32", requires: tuple[str, ...] = (),
          baseline_of: Callable[[str, str], str | None] = lambda loop, inp: None) -> tuple[TrainVariant, ...]:
    return tuple(
        TrainVariant(name=_name(model, loop, inp, device, strategy, precision), model=model, loop=loop, input=inp,
                     device=device, strategy=strategy, precision=precision, requires=requires,
                     baseline=baseline_of(loop, inp))
        for loop in loops for inp in inputs
    )


def _vs_fit(model: str):
    """Each loop against the one it changes by one knob: custom loops and fit_spe against fit, XLA against the
    same loop in tf.function without XLA."""
    def baseline(loop: str, inp: str) -> str | None:
        if loop == "fit":
            return None
        return _name(model, "function" if loop == "xla" else "fit", inp, "/CPU:0", "default", "float32")
    return baseline


def _vs_cpu(model: str, loop: str):
    return lambda _loop, inp: _name(model, loop, inp, "/CPU:0", "default", "float32")


_INPUTS = ("naive", "best", "memory")
VARIANTS: tuple[TrainVariant, ...] = (
    _grid("mlp", ("fit", "fit_spe", "eager", "function", "xla"), _INPUTS, baseline_of=_vs_fit("mlp"))
    + _grid("cnn", ("fit", "function", "xla"), _INPUTS, baseline_of=_vs_fit("cnn"))
    + _grid("mlp", ("fit",), ("best", "memory"), strategy="one_device", baseline_of=_vs_cpu("mlp", "fit"))
    + _grid("mlp", ("fit",), ("best", "memory"), strategy="mirrored", requires=("logical_cpus>=2",),
            baseline_of=lambda loop, inp: _name("mlp", "fit", inp, "/CPU:0", "one_device", "float32"))
    + (
        TrainVariant(name="mlp-function-best-ckpt", loop="function", checkpoint_every=25,
                     baseline="mlp-function-best", more_work=True,
                     description="CheckpointManager.save every 25 steps (max_to_keep=2)"),
        # Named for what it measures: each round is one fit(epochs=1), and Keras resets EarlyStopping's state
        # in on_train_begin, so it never stops; what it costs is the callback's per-epoch bookkeeping.
        TrainVariant(name="mlp-fit-best-es_callback", loop="fit", early_stopping=True, baseline="mlp-fit-best",
                     more_work=True,
                     description="fit with an EarlyStopping(monitor='loss', patience=100, restore_best_weights=True) "
                                 "callback attached: its cost per epoch (one fit(epochs=1) per round never stops)"),
    )
    + _grid("mlp", ("fit", "function", "xla"), ("best", "memory"), device="/GPU:0", requires=("gpu",),
            baseline_of=lambda loop, inp: _name("mlp", loop, inp, "/CPU:0", "default", "float32"))
    + _grid("mlp", ("fit",), ("best", "memory"), device="/GPU:0", precision="mixed_float16", requires=("gpu",),
            baseline_of=lambda loop, inp: _name("mlp", "fit", inp, "/GPU:0", "default", "float32"))
    + _grid("cnn", ("fit", "xla"), ("best", "memory"), device="/GPU:0", requires=("gpu",),
            baseline_of=lambda loop, inp: _name("cnn", loop, inp, "/CPU:0", "default", "float32"))
    + _grid("mlp", ("fit",), ("best", "memory"), device="/GPU:0", strategy="mirrored", requires=("gpus>=2",),
            baseline_of=lambda loop, inp: _name("mlp", "fit", inp, "/GPU:0", "default", "float32"))
)


def _strategy(v: TrainVariant) -> tf.distribute.Strategy | None:
    if v.strategy == "one_device":
        return tf.distribute.OneDeviceStrategy(v.device)
    if v.strategy == "mirrored":
        kind = "GPU" if v.device.startswith("/GPU") else "CPU"
        return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices(kind)][:2])
    return None


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


class TrainRun:
    """One training variant, built and ready: model, optimizer, input and loop."""

    def __init__(self, v: TrainVariant, size: Size):
        self.variant, self.size = v, size
        self.base_steps = size.mlp_steps if v.model == "mlp" else size.cnn_steps
        self.pipe = pipeline.SCENARIO.variant(
            pipeline.TRAINING_INPUTS[(v.model, "best" if v.input == "memory" else v.input)])
        self.batch_size = self.pipe.batch_size  # type: ignore[attr-defined]
        self.strategy = _strategy(v)
        self._ckpt_dir: str | None = None
        self.save_seconds: list[float] = []
        with self._scope(), devices.precision(v.precision):
            self.model = models.build(v.model, size.model_side)
            if v.loop.startswith("fit"):
                models.compile_for_fit(self.model, STEPS_PER_EXECUTION if v.loop == "fit_spe" else 1)
            else:
                self.optimizer = models.optimizer()
                if v.precision == "mixed_float16":
                    self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
                self.loss = models.loss_fn()
            # A fixed batch on the device (the bound's input and the loss probe), from a one-batch pass of the
            # same pipeline: a partial pass over the round's dataset would abandon a half-filled cache.
            one, _ = pipeline.build_dataset(self.pipe, size, self.batch_size)  # type: ignore[arg-type]
            x, y = next(iter(one))
            self.probe = (tf.identity(x), tf.identity(y))
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

    def _build_input(self) -> tuple[tf.data.Dataset, tuple[str, dict[str, Any]]]:
        """One epoch's input, exactly `steps` batches, and (input variant, tf.data options) for the row."""
        if self.variant.input == "memory":  # the bound never reads the pipeline: the same on-device batch
            return tf.data.Dataset.from_tensors(self.probe).repeat(self.steps), ("memory (one batch on the device)", {})
        # Passes of at most the pipeline's own pass size (the image set is finite), repeated inside one
        # iterator, cut to exactly `steps` batches.
        need = self.steps * self.batch_size
        per_pass = min(need, pipeline.pass_examples(self.pipe, self.size))  # type: ignore[arg-type]
        ds, pipe_info = pipeline.build_dataset(self.pipe, self.size, per_pass, -(-need // per_pass))  # type: ignore[arg-type]
        return ds.take(self.steps), (self.pipe.name, pipe_info["tf_data_options"])

    def scale(self, passes: int, repeat: int = 1) -> None:
        """A round of `passes` epochs of the size's steps, each a fresh pass over the same one-epoch input
        (`repeat` is for pipelines: an epoch here is already long against its fixed costs)."""
        v = self.variant
        self.epochs = passes
        self.examples_per_round = passes * self.steps * self.batch_size
        input_variant, options = self._input
        self.info.update({
            "batch_size": self.batch_size, "device": v.device, "loop": v.loop, "model": v.model,
            "strategy": v.strategy, "precision": v.precision, "input_variant": input_variant,
            "bound_variant": v.bound, "steps": self.steps * passes, "steps_per_epoch": self.steps,
            "epochs_per_round": passes, "tf_data_options": options,
            "jit_compile": v.loop == "xla", "metrics": "none (loss only, in fit and in the custom loops)",
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

    def run_round(self) -> int:
        """One epoch; returns the examples actually trained on (optimizer steps times batch size)."""
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
            # Keras calls batch callbacks once per execution: with steps_per_execution, a marked step is
            # one execution of that many batches.
            per_mark = STEPS_PER_EXECUTION if self.variant.loop == "fit_spe" else 1
            ds = self.dataset.repeat().take(steps * per_mark)
            with self._scope():
                self.model.fit(ds, epochs=1, verbose=0, callbacks=[*self.callbacks, _StepMarker(mark)])
            return steps
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
        with self._scope():
            return float(models.loss_fn()(y, self.model(x, training=False)))

    def close(self) -> None:
        if self._ckpt_dir:
            shutil.rmtree(self._ckpt_dir, ignore_errors=True)


def check_supported(v: Variant) -> None:
    devices.check(v.requires)


SCENARIO = Scenario(name="training", version=VERSION, variants=VARIANTS,
                    build=lambda v, size: TrainRun(v, size),  # type: ignore[arg-type]
                    check_supported=check_supported, doc=__doc__ or "",
                    block=lambda v: v.model)  # type: ignore[attr-defined]
