"""A built multi-worker variant: N trainer processes (children of this one, :mod:`tfperf.procs.children`) forming
one MultiWorkerMirroredStrategy cluster on loopback, each with its own ``TF_CONFIG``, training the model
scenario's model on its compute-only input in the custom loop of TensorFlow's multi-worker tutorial.

A round sends every trainer the same number of steps and ends when all have answered; the gradient all-reduce of
every step keeps them in step. A trainer loads the same SPECs as the run (``BlockContext.specs``) to find the
model scenario by name.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import tensorflow as tf

from tfperf.api import registry
from tfperf.api.base import SIZES, Size, per_size
from tfperf.api.distributed import MultiWorkerScenario, WorkersVariant
from tfperf.api.training import ModelScenario
from tfperf.procs.children import START_TIMEOUT_S, ClusterError, Proc, stop_all
from tfperf.procs.net import free_port

from .base import BlockContext, Capture, Runnable
from .datasets import data_of
from .profiling import TracerLevels
from .training import user_model

ROUND_TIMEOUT_S = 300.0  # a multi-worker round that has not ended by then is a hang: the variant fails


class MultiWorkerRun(Runnable):
    """N trainer processes (:func:`serve_trainer`) forming one MultiWorkerMirroredStrategy cluster."""

    warm_after_scale = False  # the trainers' iterators and models live on: a new step count needs no warm-up

    def __init__(self, scenario: MultiWorkerScenario, v: WorkersVariant, size: Size, context: BlockContext):
        self.scenario, self.variant, self.size = scenario, v, size
        ports = [free_port() for _ in range(v.workers)]
        log = context.log_dir / "cluster" if context.log_dir else None
        self.procs: list[Proc] = []
        started = time.perf_counter()
        try:
            for i in range(v.workers):
                spec = {"index": i, "ports": ports, "scenario": scenario.model.name, "size": size.name,
                        "specs": list(context.specs)}
                self.procs.append(Proc(
                    "chief trainer" if i == 0 else f"trainer {i + 1}/{v.workers}", f"{__name__}:serve_trainer", spec,
                    log / f"trainer-{os.getpid()}-{scenario.name}-{v.name}-{i + 1}.log" if log else None))
            ready = [p.read(START_TIMEOUT_S, "start") for p in self.procs]
        except BaseException:
            stop_all(self.procs)
            raise
        chief = ready[0]
        self.batch_size = int(chief["global_batch"])
        self.base = int(per_size(scenario.steps, size))
        self.info: dict[str, Any] = {
            "batch_size": self.batch_size, "per_worker_batch": chief["per_worker_batch"], "device": "/CPU:0",
            "tf_data_options": {}, "workers": v.workers, "replicas": chief["replicas"], "strategy": v.strategy,
            "loop": "function", "model": scenario.model.name, "input_variant": "memory (one batch per worker)",
            "addresses": [f"localhost:{p}" for p in ports], "cluster_start_s": round(time.perf_counter() - started, 3),
            "trainer_pids": [p.pid for p in self.procs],
        }
        if v.baseline:
            base = scenario.variant(v.baseline)
            self.info["scaling_ideal"] = v.workers / base.workers  # type: ignore[attr-defined]
        self.chief_seconds: list[float] = []
        self.scale(1)

    def _round(self, request: dict[str, Any], timeout_s: float) -> list[dict[str, Any]]:
        """Send every trainer the same request, then collect every answer; a trainer that dies or hangs fails the
        round at once (the others would wait in the all-reduce until the collective timeout)."""
        for p in self.procs:
            p.send(request)
        replies: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout_s
        while len(replies) < len(self.procs):
            for p in self.procs:
                why = p.dead()
                if why:
                    raise ClusterError(f"MultiWorkerMirroredStrategy: {why}")
            for i, p in enumerate(self.procs):
                if i in replies:
                    continue
                try:
                    replies[i] = p.read(0.05, "answer")
                except ClusterError as exc:
                    if "did not answer" not in str(exc):
                        # a peer's death shows first as an error of the survivors (connection reset in the
                        # all-reduce): name the process that died, if one did
                        for _ in range(20):
                            dead = [q.dead() for q in self.procs if q is not p and q.dead()]
                            if dead:
                                raise ClusterError(f"MultiWorkerMirroredStrategy: {dead[0]} ({exc})") from None
                            time.sleep(0.05)
                        raise ClusterError(f"MultiWorkerMirroredStrategy: {exc}") from None
            if time.monotonic() > deadline:
                raise ClusterError(f"MultiWorkerMirroredStrategy: {len(self.procs) - len(replies)} of "
                                   f"{len(self.procs)} trainers did not finish a round within {timeout_s:.0f} s")
        return [replies[i] for i in range(len(self.procs))]

    def scale(self, passes: int, repeat: int = 1) -> None:
        self.steps = self.base * passes * repeat
        self.examples_per_round = self.steps * self.batch_size
        self.info.update(steps=self.steps, steps_per_round=self.steps)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def start_timing(self) -> None:
        self.chief_seconds.clear()

    def run_round(self) -> int:
        replies = self._round({"op": "round", "steps": self.steps}, ROUND_TIMEOUT_S)
        self.chief_seconds.append(float(replies[0]["seconds"]))
        steps = {int(r["steps"]) for r in replies}
        if steps != {self.steps}:
            raise ClusterError(f"MultiWorkerMirroredStrategy: the trainers ran {sorted(steps)} steps, expected "
                               f"{self.steps}")
        return self.steps * self.batch_size

    def capture(self, logdir: Path, steps: int, levels: Any) -> Capture:
        """The chief's trace: the chief runs the profiler around `steps` marked steps; the others run the same
        steps unprofiled."""
        logdir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        replies = self._round({"op": "profile", "steps": steps, "logdir": str(logdir), "levels": vars(levels)},
                              ROUND_TIMEOUT_S)
        files = sorted(logdir.glob("plugins/profile/*/*.xplane.pb"), key=lambda p: p.stat().st_mtime)
        if not files:
            raise RuntimeError(f"the chief's profiler wrote no .xplane.pb under {logdir}")
        return Capture(xplane=files[-1], steps_marked=int(replies[0]["steps"]), seconds=time.perf_counter() - start)

    def profile(self, steps: int, mark: Callable[[int], AbstractContextManager[Any]]) -> int:
        raise NotImplementedError("a multi-worker variant is profiled in its chief process (capture)")

    def measured(self) -> dict[str, Any]:
        if not self.chief_seconds:
            return {}
        return {"chief_round_s_median": statistics.median(self.chief_seconds)}

    def close(self) -> None:
        stop_all(self.procs)


COLLECTIVE_TIMEOUT_S = 120  # an all-reduce whose peer is gone raises after this instead of waiting for ever


def serve_trainer(spec: dict[str, Any], channel: Any) -> int:
    """One trainer process: TF_CONFIG, the strategy (before any other TensorFlow op), the user's model and data,
    then rounds on request."""
    ports, index = spec["ports"], int(spec["index"])
    os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"localhost:{p}" for p in ports]},
                                          "task": {"type": "worker", "index": index}})
    # TensorFlow's own multi-worker tests give each worker at least workers + 1 inter-op threads: fewer can hang.
    tf.config.threading.set_inter_op_parallelism_threads(max(len(ports) + 1, os.cpu_count() or 1))
    strategy = tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(timeout_seconds=COLLECTIVE_TIMEOUT_S))
    try:
        reg = registry.load(spec["specs"])
        sc = reg[spec["scenario"]]
        if not isinstance(sc, ModelScenario) or sc.data is None:
            raise TypeError(f"a multi-worker trainer needs a model scenario with data; {spec['scenario']} is a {sc.kind}")
        data = data_of(sc.data)
        size = SIZES[spec["size"]]
        pipe = data.variant(sc.best)
        one, _ = data.dataset_for(pipe, size, min(data.pass_examples(pipe, size), 4096))
        x, y = next(iter(one))
        per_worker = int(tf.shape(tf.nest.flatten(x)[0])[0])
        n = strategy.num_replicas_in_sync
        glob = tf.nest.map_structure(lambda t: tf.concat([t] * n, axis=0), (x, y))
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        ds = tf.data.Dataset.from_tensors(glob).repeat().with_options(options)
        with strategy.scope():
            model, loss, optimizer = user_model(sc, size)
        batches = iter(strategy.experimental_distribute_dataset(ds))  # the global batch split, one part per worker

        def step(batch):
            bx, by = batch
            with tf.GradientTape() as tape:
                # the mean over this worker's batch, over the replicas: the optimizer sums the gradients of all
                # replicas (its all-reduce), which gives the gradient of the global batch's mean loss
                value = loss(by, model(bx, training=True)) / n
            grads = tape.gradient(value, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))

        @tf.function
        def train(it, k):
            for _ in tf.range(k):
                strategy.run(step, args=(next(it),))

        @tf.function
        def train_one(it):  # profiled steps: one call each, the shape xprof's step analysis expects
            strategy.run(step, args=(next(it),))
    except Exception as exc:  # noqa: BLE001 - one line to the parent, which fails the variant with it
        text = str(exc).strip().splitlines()
        channel.say({"error": text[0] if text else type(exc).__name__})
        return 1
    channel.say({"ready": True, "replicas": n, "per_worker_batch": per_worker, "global_batch": per_worker * n})
    for req in channel.requests():
        steps = int(req["steps"])
        start = time.perf_counter()
        if req["op"] == "round":
            train(batches, tf.constant(steps, tf.int64))
            done = int(optimizer.iterations.numpy())  # read back: the round is done when this returns
            channel.say({"steps": steps, "seconds": time.perf_counter() - start, "iterations": done})
        elif req["op"] == "profile":
            if index == 0:
                lv = TracerLevels(**req["levels"])
                tf.profiler.experimental.start(req["logdir"], options=tf.profiler.experimental.ProfilerOptions(
                    host_tracer_level=lv.host, python_tracer_level=lv.python, device_tracer_level=lv.device))
                try:
                    for i in range(steps):
                        with tf.profiler.experimental.Trace("train", step_num=i, _r=1):
                            train_one(batches)
                    optimizer.iterations.numpy()
                finally:
                    tf.profiler.experimental.stop()
            else:
                for _ in range(steps):
                    train_one(batches)
                optimizer.iterations.numpy()
            channel.say({"steps": steps})
    return 0
