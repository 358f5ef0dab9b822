"""What every scenario shares: variants as frozen data, sizes, and the runnable contract.

A *variant* is a frozen dataclass of named knobs. A *scenario* is a module that declares its variants in
one table (a tuple) and builds a :class:`Runnable` from a variant and a :class:`Size`. Nothing here
imports pytest: bench/ times runnables, profiling captures them, reports read what bench wrote.

A round is the unit pytest-benchmark times: one fresh pass (a new iterator, so pipeline start-up and
buffer filling are inside it, as in an epoch) over a fixed number of examples. The first round is a
warm-up that is not timed (function tracing, file-system cache, in-memory caches filling).
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

    def knobs(self) -> dict[str, Any]:
        """The variant's own knobs (everything but the bookkeeping fields), JSON-ready."""
        skip = {"name", "description", "baseline", "requires"}
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
    rounds: int  # timed rounds per benchmark (after one untimed warm-up round)
    light_examples: int  # MNIST-shaped examples per pipeline round
    image_examples: int  # JPEG records per pipeline round (also the size of the image set)
    image_shards: int
    image_side: int  # stored JPEG side, decoded and resized to `model_side`
    model_side: int
    latency_examples: int  # elements per latency-bound round
    latency_us: int  # simulated remote-storage wait per element
    step_us: int  # simulated consumer work per batch, for the prefetch-overlap variants
    mlp_steps: int  # training steps per round, MLP
    cnn_steps: int  # training steps per round, CNN
    profile_steps: int  # steps marked inside one profiled window


SIZES: dict[str, Size] = {
    s.name: s
    for s in (
        Size("smoke", rounds=2, light_examples=2048, image_examples=96, image_shards=4, image_side=64,
             model_side=32, latency_examples=48, latency_us=1000, step_us=20000, mlp_steps=8, cnn_steps=3,
             profile_steps=5),
        Size("small", rounds=3, light_examples=8192, image_examples=512, image_shards=8, image_side=96,
             model_side=48, latency_examples=192, latency_us=2000, step_us=30000, mlp_steps=60, cnn_steps=10,
             profile_steps=10),
        Size("default", rounds=5, light_examples=16384, image_examples=1536, image_shards=8, image_side=128,
             model_side=64, latency_examples=384, latency_us=2000, step_us=30000, mlp_steps=100,
             cnn_steps=16, profile_steps=20),
        Size("large", rounds=7, light_examples=60000, image_examples=4096, image_shards=16, image_side=160,
             model_side=96, latency_examples=1024, latency_us=2000, step_us=30000, mlp_steps=600,
             cnn_steps=60, profile_steps=30),
    )
}


class Unsupported(Exception):
    """A variant cannot run on this machine (no GPU, one device only); the message says why."""


class Runnable(Protocol):
    """What a scenario hands to bench and to profiling."""

    examples_per_round: int
    info: dict[str, Any]  # extra_info fields beyond the knobs: batch_size, device, tf.data options, ...

    def run_round(self) -> int:
        """One timed round; returns the number of examples it processed."""

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

    def __post_init__(self) -> None:
        names = [v.name for v in self.variants]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"scenario {self.name}: duplicate variant names {sorted(dupes)}")
        for v in self.variants:
            if v.baseline is not None and v.baseline not in names:
                raise ValueError(f"scenario {self.name}: {v.name} names unknown baseline {v.baseline}")

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(f"scenario {self.name} has no variant {name!r}")

    def __iter__(self) -> Iterator[Variant]:
        return iter(self.variants)
