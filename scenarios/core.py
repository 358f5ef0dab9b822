"""What every scenario shares: variants as frozen data, sizes, and the runnable contract.

A *variant* is a frozen dataclass of named knobs. A *scenario* is a module that declares its variants in
one table (a tuple) and builds a :class:`Runnable` from a variant and a :class:`Size`. Nothing here
imports pytest: bench/ times runnables, profiling captures them, reports read what bench wrote.

A round is the unit pytest-benchmark times: several fresh passes (each a new iterator, so pipeline
start-up and buffer filling are inside it, as in an epoch) over a fixed number of examples. How many passes,
and how many examples each, is calibrated per variant (bench/worker.py). The first round is a warm-up that
is not timed (function tracing, file-system cache, in-memory caches filling).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

SUITE_VERSION = "0.1.0"


@dataclass(frozen=True, kw_only=True)
class Variant:
    """Fields every variant has. Scenario variants subclass this with their own knobs."""

    name: str
    description: str = ""
    baseline: str | None = None  # name of the variant this one is compared against in reports
    requires: tuple[str, ...] = ()  # capabilities: "gpu", "gpus>=2", "logical_cpus>=2"
    # Does strictly more work than its baseline (a callback, a checkpoint, a shuffle): it cannot honestly be
    # significantly faster, and a row that says so is marked unstable (the physics check).
    more_work: bool = False

    def knobs(self) -> dict[str, Any]:
        """The variant's own knobs (everything but the bookkeeping fields), JSON-ready."""
        skip = {"name", "description", "baseline", "requires", "more_work"}
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in skip:
                continue
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True)
class Size:
    """How much work one run does. `smoke` is for CI, `default` fits 10 minutes on 2 CPU cores."""

    name: str
    rounds: int  # timed rounds per variant and worker process (2 processes by default) (after the untimed warm-up and calibration)
    min_round_s: float  # each round is scaled (examples or steps times k) to last at least this long
    light_examples: int  # MNIST-shaped examples per pass (one fresh iterator); a round is several passes
    image_examples: int  # JPEG records in the image set
    image_pass: int  # JPEG records per pass
    image_shards: int
    image_side: int  # stored JPEG side, decoded and resized to `model_side`
    model_side: int
    latency_examples: int  # elements per latency-bound pass
    latency_us: int  # simulated remote-storage wait per element
    step_us: int  # simulated consumer work per batch, for the prefetch-overlap variants
    mlp_steps: int  # training steps per epoch, MLP; a round is several epochs
    cnn_steps: int  # training steps per epoch, CNN
    profile_steps: int  # steps marked inside one profiled window


SIZES: dict[str, Size] = {
    s.name: s
    for s in (
        Size("smoke", rounds=3, min_round_s=0.02, light_examples=1024, image_examples=96, image_pass=48,
             image_shards=4, image_side=64, model_side=32, latency_examples=24, latency_us=1000, step_us=20000,
             mlp_steps=8, cnn_steps=2, profile_steps=5),
        Size("small", rounds=4, min_round_s=0.1, light_examples=2048, image_examples=512, image_pass=128,
             image_shards=8, image_side=96, model_side=48, latency_examples=48, latency_us=2000, step_us=30000,
             mlp_steps=25, cnn_steps=3, profile_steps=10),
        Size("default", rounds=5, min_round_s=0.3, light_examples=2048, image_examples=1536, image_pass=384,
             image_shards=8, image_side=128, model_side=64, latency_examples=64, latency_us=2000, step_us=30000,
             mlp_steps=25, cnn_steps=4, profile_steps=20),
        Size("large", rounds=8, min_round_s=0.5, light_examples=4096, image_examples=4096, image_pass=1024,
             image_shards=16, image_side=160, model_side=96, latency_examples=128, latency_us=2000,
             step_us=30000, mlp_steps=100, cnn_steps=8, profile_steps=30),
    )
}

# A pass (one fresh iterator) should last at least this long against its fixed start-up cost; faster passes
# are made longer by repeating their source inside the same iterator.
MIN_PASS_S = 0.04


class Unsupported(Exception):
    """A variant cannot run on this machine (no GPU, one device only); the message says why."""


class Runnable(Protocol):
    """What a scenario hands to bench and to profiling."""

    examples_per_round: int  # at the current scale
    info: dict[str, Any]  # extra_info fields beyond the knobs: batch_size, device, tf.data options, ...

    def run_round(self) -> int:
        """One timed round; returns the number of examples it processed. On an accelerator the round ends by
        reading a result back from the device, so asynchronous dispatch is not timed as done."""

    def scale(self, passes: int, repeat: int = 1) -> None:
        """Make a round `passes` fresh passes (epochs, for training), each over `repeat` times the base
        examples, so that rounds last long against fixed costs and average over per-iterator states (on TF
        2.21 an iterator's speed is bimodal, chosen when it starts). The next round is a warm-up."""

    def profile(self, steps: int, mark: Callable[[int], AbstractContextManager[Any]]) -> int:
        """Run `steps` steps, each inside `mark(step)`; returns the steps run."""

    def measured(self) -> dict[str, Any]:
        """Figures gathered while the rounds ran, for the row's extra_info (may be empty)."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class Scenario:
    """A scenario as the registry sees it: a name, a version, its variants and its builder."""

    name: str
    version: str
    variants: tuple[Variant, ...]
    build: Callable[[Variant, Size], Runnable]
    check_supported: Callable[[Variant], None] = field(default=lambda v: None)
    doc: str = ""
    # Variants measured together, interleaved round by round: those that compete or compare (one cost of
    # preprocessing, one model on one device). Every baseline and bound must share its variant's block.
    block: Callable[[Variant], str] = field(default=lambda v: "")

    def __post_init__(self) -> None:
        names = [v.name for v in self.variants]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"scenario {self.name}: duplicate variant names {sorted(dupes)}")
        for v in self.variants:
            for ref in self.partners(v):
                if ref not in names:
                    raise ValueError(f"scenario {self.name}: {v.name} names unknown variant {ref}")
                if self.block(self.variant(ref)) != self.block(v):
                    raise ValueError(f"scenario {self.name}: {v.name} and {ref} are compared but in different blocks")

    def partners(self, v: Variant) -> list[str]:
        """The variants `v` is compared with in pairs: its baseline, and its compute-only bound if it has one."""
        out = [v.baseline] if v.baseline else []
        bound = getattr(v, "bound", None)
        if bound and bound != v.name and bound not in out:
            out.append(bound)
        return out

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(f"scenario {self.name} has no variant {name!r}")

    def __iter__(self) -> Iterator[Variant]:
        return iter(self.variants)
