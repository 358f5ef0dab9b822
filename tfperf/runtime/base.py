"""The runnable contract: what a built variant offers the measuring side (tfperf.measure), in one place.

A scenario declares variants (tfperf.api); :func:`tfperf.runtime.build.runnable` turns one variant into a
:class:`Runnable`, inside a :class:`Block` that holds whatever the scenario's block needs while it runs (memos of
counted records, running tf.data service clusters). Declarations stay frozen data; live state lives here.

Required of every runnable: ``examples_per_round``, ``info``, :meth:`run_round`, :meth:`scale`, :meth:`profile`.
Every other hook has a default that does nothing, and the measuring side calls each one unconditionally:

- ``by_pass`` and :meth:`run_pass`: a round is exactly ``passes`` passes back to back (a pipeline's fresh
  iterators, a custom loop's epochs), so the worker may time the passes one at a time, interleaved with the
  other members' passes (tfperf/measure/block.py);
- ``warm_after_scale``: whether a new scale rebuilt something, so one untimed round is owed before timing;
- :meth:`before_round` / :meth:`after_round`: untimed work around each timed round or pass (filling a tf.data
  service's buffers; tearing iterators down after the clock stops);
- :meth:`start_timing`: called once before the first timed round (what warm-up rounds gathered is dropped);
- :meth:`pids`: processes the runnable started, whose CPU is its own work, not the machine being busy;
- :meth:`capture`: a runnable whose work runs elsewhere (a multi-worker chief) captures its own trace;
- :meth:`measured`: figures gathered during the rounds, for the row; :meth:`close`: release everything.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BlockContext:
    """What the measuring process tells a block about the run: which SPECs it loaded (a multi-worker trainer
    loads the same), where cluster processes log, and the first port for local tf.data service dispatchers."""

    specs: tuple[str, ...] = ()
    log_dir: Path | None = None
    service_port: int = 0


class Block:
    """The live state of one scenario's block while it runs: memos (counted records, loaded sources) and, for
    subclasses, what the block started (clusters). Made before the block's variants are built; closed after."""

    def __init__(self, context: BlockContext | None = None) -> None:
        self.context = context or BlockContext()
        self.memo: dict[Any, Any] = {}

    def remember(self, key: Any, make: Callable[[], Any]) -> Any:
        if key not in self.memo:
            self.memo[key] = make()
        return self.memo[key]

    def close(self) -> None:
        """Stop whatever the block started, whatever happened to its variants."""

    def __enter__(self) -> Block:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Capture:
    xplane: Path
    steps_marked: int
    seconds: float


class Runnable:
    """A built variant. Subclasses set ``examples_per_round`` and ``info`` and implement the required methods."""

    examples_per_round: int = 0  # at the current scale
    info: dict[str, Any]  # extra_info fields beyond the knobs: batch_size, device, tf.data options, ...
    by_pass: bool = False  # run_pass() runs one of a round's passes alone
    warm_after_scale: bool = True  # the last scale() rebuilt something: one untimed round is owed

    def run_round(self) -> int:
        """One timed round; returns the examples it processed. On an accelerator it ends by reading a result
        back from the device, so asynchronous dispatch is not timed as done."""
        raise NotImplementedError

    def run_pass(self) -> int:
        """One of the round's passes alone (only where ``by_pass``)."""
        raise NotImplementedError(f"{type(self).__name__} runs a round as one call")

    def scale(self, passes: int, repeat: int = 1) -> None:
        """Make a round `passes` fresh passes (epochs, for training), each over `repeat` times the base examples.
        The harness scales `passes` only, so a variant and its baseline read the same records per iterator."""
        raise NotImplementedError

    def profile(self, steps: int, mark: Callable[[int], AbstractContextManager[Any]]) -> int:
        """Run `steps` steps, each inside `mark(step)`; returns the steps run."""
        raise NotImplementedError

    def capture(self, logdir: Path, steps: int, levels: Any) -> Capture | None:
        """A trace captured by the runnable itself (None: the profiler runs here, around :meth:`profile`)."""
        return None

    def before_round(self) -> None:
        """Untimed, before each timed round or pass."""

    def after_round(self, seconds: float, examples: int) -> None:
        """Untimed, after each timed round or pass."""

    def start_timing(self) -> None:
        """Before the first timed round."""

    def pids(self) -> list[int]:
        """Processes this runnable started (their CPU is the variant's own)."""
        return []

    def measured(self) -> dict[str, Any]:
        """Figures gathered while the rounds ran, for the row's extra_info."""
        return {}

    def close(self) -> None:
        """Release what the runnable holds."""


class Teardowns:
    """Iterators a timed pass or epoch drained, torn down after the clock stops (from a runnable's `after_round`),
    each teardown timed apart. Measured on TF 2.21 here: tearing down an iterator of an autotuned pipeline usually
    takes under 1 ms but stalls for up to one period of tf.data's autotune thread (160 ms after a 150 ms pass) in
    15 of 200 teardowns of `latency`'s naive map, none with autotune off: a lottery that put whole rounds of
    `latency` and `step` at 1.5x or 2x their time."""

    def __init__(self) -> None:
        self._held: list[Any] = []
        self._seconds: list[float] = []

    def keep(self, iterator: Any) -> Any:
        self._held.append(iterator)
        return iterator

    @property
    def held(self) -> int:
        return len(self._held)

    def release(self) -> None:
        while self._held:
            iterator = self._held.pop()
            start = time.perf_counter()
            del iterator
            self._seconds.append(time.perf_counter() - start)

    def figures(self) -> dict[str, Any]:
        """Median and max teardown, and how many stalled (over 20 ms), for the row's extra_info."""
        t = sorted(self._seconds)
        if not t:
            return {}
        return {"iterator_teardown_s": {"median": round(t[len(t) // 2], 6), "max": round(t[-1], 6),
                                        "stalls_over_20ms": sum(x > 0.02 for x in t), "count": len(t)}}
