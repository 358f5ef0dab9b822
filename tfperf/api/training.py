"""Training scenarios from a user's Keras model: ``model.fit`` against custom GradientTape loops, per input,
device and strategy.

:func:`model` takes a factory returning a compiled Keras model (or ``(model, loss, optimizer)``) and the data it
trains on: a pipeline scenario (:func:`tfperf.pipeline` or :func:`tfperf.dataset`), whose naive variant and best
variant are the two real inputs, or a plain factory returning a dataset of ``(features, labels)`` batches.

Loops: ``fit``; ``fit_spe`` (``steps_per_execution=10``); ``eager`` (a GradientTape step called from
Python); ``function`` (the same step in ``tf.function``); ``xla`` (``tf.function(jit_compile=True)``).
Inputs: ``naive``, ``best`` and ``memory``, the compute-only bound: the same number of steps fed one batch
already materialized on the device (for ``fit``, that batch repeated by ``Dataset.from_tensors(...).repeat()``;
for custom loops, the same tensors passed each step). Reports derive ``input_overhead = time / bound - 1`` from
the pair. Also: ``one_device`` and ``mirrored`` strategies (two logical CPUs), a checkpoint every N steps, an
EarlyStopping callback, and GPU variants (with mixed precision) that the harness skips without a GPU.

``fit`` is compiled with no metrics and ``jit_compile=False`` (the model's own optimizer and loss), so ``fit``
and the custom loops (which compute the loss only) do the same work; Keras's ``jit_compile="auto"`` would turn
XLA on for ``fit`` on any machine with a GPU, also for /CPU:0 variants.

These are declarations, frozen data without TensorFlow; :mod:`tfperf.runtime.training` builds and times them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .base import Scenario, ScenarioError, Variant, fingerprint, source_of
from .pipelines import PipelineScenario, dataset, keep_variants

RUNTIME = "tfperf.runtime.training"  # builds what these declare: part of every model scenario's version
STEPS_PER_EXECUTION = 10
LOOPS = ("fit", "fit_spe", "eager", "function", "xla")
DEFAULT_STEPS = {"smoke": 4, "small": 10, "default": 20, "large": 50}


@dataclass(frozen=True, kw_only=True)
class TrainVariant(Variant):
    loop: str = "fit"  # fit | fit_spe | eager | function | xla
    input: str = "best"  # naive | best | memory (the compute-only bound)
    device: str = "/CPU:0"
    strategy: str = "default"  # default | one_device | mirrored
    precision: str = "float32"  # float32 | mixed_float16
    checkpoint_every: int = 0  # CheckpointManager.save every N steps (0: none)
    early_stopping: bool = False
    # The tuner's knobs (tfperf tune); the matrix leaves them at their defaults.
    input_variant: str | None = None  # a variant of the data scenario by name (overrides `input` naive/best)
    steps_per_execution: int = 0  # fit's steps_per_execution (0: the loop's own: 10 for fit_spe, else 1)
    jit_compile: bool = False  # fit compiled with jit_compile=True (XLA)


def _suffix(device: str, strategy: str, precision: str) -> list[str]:
    parts = []
    if device != "/CPU:0":
        parts.append(device.strip("/").replace(":", "").lower())
    if strategy != "default":
        parts.append(strategy)
    if precision != "float32":
        parts.append(precision)
    return parts


def _matrix(loops: Sequence[str], strategies: bool, extras: bool, gpu: Sequence[str],
            mixed_precision: bool) -> tuple[TrainVariant, ...]:
    """The variant table. A variant refers to its baseline and bound through the variants themselves."""
    rows: dict[tuple[str, str, str, str, str], TrainVariant] = {}
    order: list[TrainVariant] = []

    def grid(loop: str, inputs: Sequence[str], base: Callable[[str], TrainVariant | None], device: str = "/CPU:0",
             strategy: str = "default", precision: str = "float32", requires: tuple[str, ...] = ()) -> None:
        made = []
        for inp in ("memory", *[i for i in inputs if i != "memory"]):  # the bound first: the others refer to it
            name = "-".join([loop, inp, *_suffix(device, strategy, precision)])
            bound = rows.get((loop, "memory", device, strategy, precision))
            baseline = base(inp)
            v = TrainVariant(name=name, loop=loop, input=inp, device=device, strategy=strategy, precision=precision,
                             baseline=baseline.name if baseline else None, requires=requires,
                             bound=bound.name if bound else name)
            rows[(loop, inp, device, strategy, precision)] = v
            made.append(v)
        order.extend(made[1:] + made[:1])  # listed with the bound last, as a reader expects

    def cpu(loop: str, inp: str, strategy: str = "default") -> TrainVariant | None:
        return rows.get((loop, inp, "/CPU:0", strategy, "float32"))

    def on_gpu(loop: str, inp: str) -> TrainVariant | None:
        return rows.get((loop, inp, "/GPU:0", "default", "float32"))

    inputs = ("naive", "best", "memory")
    for loop in loops:
        if loop == "fit":
            grid(loop, inputs, lambda inp: None)
        elif loop == "xla" and "function" in loops:
            grid(loop, inputs, lambda inp: cpu("function", inp))
        else:
            grid(loop, inputs, lambda inp: cpu("fit", inp))
    if strategies and "fit" in loops:
        grid("fit", ("best", "memory"), lambda inp: cpu("fit", inp), strategy="one_device")
        grid("fit", ("best", "memory"), lambda inp: cpu("fit", inp, "one_device"), strategy="mirrored",
             requires=("logical_cpus>=2",))
    if extras and "function" in loops:
        base = cpu("function", "best")
        assert base is not None
        order.append(TrainVariant(name="function-best-ckpt", loop="function", checkpoint_every=25, baseline=base.name,
                                  bound=base.bound, more_work=True,
                                  description="CheckpointManager.save every 25 steps (max_to_keep=2)"))
    if extras and "fit" in loops:
        base = cpu("fit", "best")
        assert base is not None
        # Named for what it measures: each round is one fit() call, and Keras resets EarlyStopping's state in
        # on_train_begin, so it never stops; what it costs is the callback's per-epoch bookkeeping.
        order.append(TrainVariant(
            name="fit-best-es_callback", loop="fit", early_stopping=True, baseline=base.name, bound=base.bound,
            more_work=True, description="fit with an EarlyStopping(monitor='loss', patience=100, "
                                        "restore_best_weights=True) callback attached: its cost per epoch (a fit() "
                                        "per round never stops)"))
    def same_on_cpu(loop: str) -> Callable[[str], TrainVariant | None]:
        return lambda inp: cpu(loop, inp)

    for loop in gpu:
        if loop in loops:
            grid(loop, ("best", "memory"), same_on_cpu(loop), device="/GPU:0", requires=("gpu",))
    if mixed_precision and "fit" in gpu and "fit" in loops:
        grid("fit", ("best", "memory"), lambda inp: on_gpu("fit", inp), device="/GPU:0", precision="mixed_float16",
             requires=("gpu",))
    if strategies and "fit" in gpu and "fit" in loops:
        grid("fit", ("best", "memory"), lambda inp: on_gpu("fit", inp), device="/GPU:0", strategy="mirrored",
             requires=("gpus>=2",))
    return tuple(order)


@dataclass(frozen=True)
class ModelScenario(Scenario):
    factory: Callable[..., Any] | None = None
    data: PipelineScenario | None = None
    naive: str = "naive"
    best: str = "parallel_prefetch"
    steps: Any = None


def model(name: str, build: Callable[..., Any], data: PipelineScenario | Callable[..., Any], *,
          naive: str | None = None, best: str | None = None, steps: Any = None, loops: Sequence[str] = LOOPS,
          strategies: bool = True, extras: bool = True, gpu: Sequence[str] = ("fit", "function", "xla"),
          mixed_precision: bool = True, variants: Sequence[str] | None = None, doc: str = "") -> ModelScenario:
    """A training scenario. ``build``: a factory (it may take the Size) returning a compiled ``keras.Model`` or
    ``(model, loss, optimizer)``; it is called once per variant, inside the variant's device or strategy scope.
    ``data``: a pipeline scenario, whose ``naive`` and ``best`` variants (default: ``naive`` and
    ``parallel_prefetch`` for stages, ``as_given`` and ``prefetch`` for a dataset) are the inputs, or a factory
    returning a dataset of ``(features, labels)`` batches. ``steps``: steps per epoch (an int, or by size name).
    ``loops``, ``strategies``, ``extras`` (checkpoint, callback), ``gpu`` (loops also run on /GPU:0),
    ``mixed_precision`` (fit on the GPU under mixed_float16) and ``variants`` (names to keep) shape the matrix."""
    if not callable(build):
        raise ScenarioError(f"scenario {name}: build must be a function returning a model, got {type(build).__name__}")
    bad = [lp for lp in loops if lp not in LOOPS]
    if bad:
        raise ScenarioError(f"scenario {name}: unknown loops {bad}; known: {', '.join(LOOPS)}")
    if not isinstance(data, PipelineScenario):
        if not callable(data):
            raise ScenarioError(f"scenario {name}: data must be a pipeline scenario or a dataset factory, got "
                                f"{type(data).__name__}")
        data = dataset(f"{name}-input", data)
    defaults = ("as_given", "prefetch") if data.kind == "dataset" else ("naive", "parallel_prefetch")
    naive, best = naive or defaults[0], best or defaults[1]
    for which in (naive, best):
        try:
            data.variant(which)
        except KeyError:
            raise ScenarioError(f"scenario {name}: input {which!r} is not a variant of {data.name} "
                                f"({', '.join(v.name for v in data.variants)})") from None
    rows = keep_variants(name, _matrix(loops, strategies, extras, gpu, mixed_precision), variants)
    version = fingerprint(sys.modules[__name__], source_of(RUNTIME), rows, build, data.version, naive, best, steps)
    return ModelScenario(name=name, version=version, variants=rows, kind="training", doc=doc,
                         info={"input_scenario": data.name}, factory=build, data=data, naive=naive, best=best,
                         steps=steps if steps is not None else DEFAULT_STEPS)
