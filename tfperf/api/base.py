"""What every declaration shares: variants as frozen data, sizes, scenarios, and a scenario's version.

A *variant* is a frozen dataclass of named knobs. A *scenario* holds its variants in one table (a tuple) and
nothing else: no live state, no TensorFlow. The public builders (:mod:`tfperf.api.pipelines`,
:mod:`tfperf.api.training`, :mod:`tfperf.api.distributed`) make scenarios from a user's stages, dataset or model;
:mod:`tfperf.runtime` turns a variant into a runnable; :mod:`tfperf.measure` times it. Nothing here imports
TensorFlow or pytest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import inspect
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AUTOTUNE = -1  # tf.data.AUTOTUNE, spelled out so variant tables read without importing TensorFlow
SEED = 20261123  # every shuffle and every generated data set


@dataclass(frozen=True, kw_only=True)
class Variant:
    """Fields every variant has. Scenario variants subclass this with their own knobs."""

    name: str
    description: str = ""
    baseline: str | None = None  # name of the variant this one is compared against in reports
    bound: str | None = None  # name of its compute-only bound (training inputs), compared in pairs too
    requires: tuple[str, ...] = ()  # capabilities: "gpu", "gpus>=2", "logical_cpus>=2"
    # Does strictly more work than its baseline (a callback, a checkpoint, a shuffle): it cannot honestly be
    # significantly faster, and a row that says so is marked unstable (the physics check).
    more_work: bool = False

    def knobs(self) -> dict[str, Any]:
        """The variant's own knobs (everything but the bookkeeping fields), JSON-ready."""
        skip = {"name", "description", "baseline", "bound", "requires", "more_work"}
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in skip:
                continue
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True)
class Size:
    """How much work one run does. `smoke` is for CI, `default` fits 10 minutes on 2 CPU cores. What a size means
    for a scenario's own data (examples per pass, steps per epoch) is the scenario's to say, by size name (see
    :func:`per_size`)."""

    name: str
    rounds: int  # timed rounds per variant and worker process (after the untimed warm-up and calibration)
    min_round_s: float  # each round is scaled (passes or epochs times k) to last at least this long
    profile_steps: int  # steps marked inside one profiled window
    # Seconds the measuring may take (blocks, not the report): when the blocks measured so far say the rest will
    # not fit, the next blocks get fewer rounds (never under MIN_ROUNDS), so a slower host or a larger model
    # costs precision, said in the run, rather than time. None: no budget.
    budget_s: float | None = None


MIN_ROUNDS = 3  # rounds per process a budget may cut a block to (asv returns no interval below a few values)

SIZES: dict[str, Size] = {
    s.name: s
    for s in (
        Size("smoke", rounds=3, min_round_s=0.02, profile_steps=5, budget_s=100),
        Size("small", rounds=4, min_round_s=0.1, profile_steps=10, budget_s=240),
        Size("default", rounds=5, min_round_s=0.3, profile_steps=20, budget_s=540),
        Size("large", rounds=8, min_round_s=0.5, profile_steps=30),
    )
}


def per_size(value: Any, size: Size) -> Any:
    """A figure that may depend on the size: a plain value, a mapping by size name (a missing name takes the
    nearest smaller size's, else the smallest's), or a function of the Size."""
    if callable(value):
        return value(size)
    if isinstance(value, Mapping):
        names = list(SIZES)
        i = names.index(size.name) if size.name in names else len(names) - 1
        for name in reversed(names[: i + 1]):
            if name in value:
                return value[name]
        return next(iter(value.values()))
    return value


def env_seconds(name: str, default: float) -> float:
    """Seconds from the environment variable `name`; `default` where it is unset, not a number or not positive."""
    try:
        value = float(os.environ.get(name) or default)
    except ValueError:
        return default
    return value if value > 0 and math.isfinite(value) else default


def call_factory(fn: Callable[..., Any], size: Size) -> Any:
    """Call a user's factory with the Size if it takes an argument, else with none."""
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    return fn(size) if params else fn()


class Unsupported(Exception):
    """A variant cannot run on this machine (no GPU, one device only); the message says why."""


class ScenarioError(Exception):
    """A user's scenario is wrong (a factory that raises or returns the wrong thing, data that does not fit the
    model): the message names the scenario, the factory and the cause, in one line."""


def describe_callable(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    module = getattr(fn, "__module__", None)
    return f"{module}.{name}" if module and module not in ("builtins", "__main__") else str(name)


# First lines of TensorFlow's and Keras's errors that say where, not what: the cause is further down.
WRAPPERS = ("Graph execution error:", "in user code:", "Exception encountered when calling",
            "During handling of the above exception", "Traceback (most recent call last)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def cause_line(text: str) -> str:
    """The line of an error's text that says what went wrong. TensorFlow's graph errors open with "Graph execution
    error:", then where the failing op was defined (indented frames), then the cause; Keras's open with
    "Exception encountered when calling ...", then the cause, then the arguments."""
    lines = [_ANSI.sub("", ln).rstrip() for ln in text.strip().splitlines()]
    lines = [ln for ln in lines if ln.strip()]
    if not lines:
        return ""
    if not lines[0].lstrip().startswith(WRAPPERS):
        return lines[0].strip()
    skip = (*WRAPPERS, "Detected at node", "File ", "Arguments received by", "\u2022", "[[", "defined at")
    causes = [ln.strip() for ln in lines[1:] if not ln.strip().startswith(skip) and not ln.startswith("  ")]
    causes = causes or [ln.strip() for ln in lines[1:] if not ln.strip().startswith(skip)]
    if not causes:
        return lines[0].strip()
    cause = causes[-1] if lines[0].lstrip().startswith("Graph execution error:") else causes[0]
    return cause.split("\t [[", 1)[0].split(" [[{{node", 1)[0].strip()


def first_line(exc: BaseException) -> str:
    text = cause_line(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def call_user(scenario: str, what: str, fn: Callable[..., Any], *args: Any, size: Size | None = None) -> Any:
    """Call a user's factory; whatever it raises becomes one ScenarioError naming the scenario and the factory."""
    try:
        return call_factory(fn, size) if size is not None and not args else fn(*args)
    except ScenarioError:
        raise
    except Exception as exc:
        raise ScenarioError(f"scenario {scenario}: {what} {describe_callable(fn)} raised {first_line(exc)}") from exc


def source_of(module: str) -> str:
    """The source text of a module, found without importing it (the runtime modules import TensorFlow): a scenario's
    version holds the code that builds its runnables too."""
    spec = importlib.util.find_spec(module)
    return Path(spec.origin).read_text() if spec is not None and spec.origin else module


def fingerprint(*parts: Any) -> str:
    """A version from what defines a scenario (asv's way): the source of every module that defines one of its
    callables or its builder, and the repr of its variant table. Any edit there gives a new version, so a changed
    scenario is never compared silently with an old run."""
    h = hashlib.sha256()
    seen: set[str] = set()

    def feed(obj: Any) -> None:
        if isinstance(obj, str | int | float | bool) or obj is None:
            h.update(repr(obj).encode())
            return
        if isinstance(obj, list | tuple):
            for o in obj:
                feed(o)
            return
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            h.update(type(obj).__qualname__.encode())
            for f in dataclasses.fields(obj):
                h.update(f.name.encode())
                feed(getattr(obj, f.name))
            return
        module = inspect.getmodule(obj)
        if module is not None and module.__name__ not in seen:
            seen.add(module.__name__)
            try:
                h.update(inspect.getsource(module).encode())
            except (OSError, TypeError):
                h.update(module.__name__.encode())
        h.update(describe_callable(obj).encode())

    for p in parts:
        feed(p)
    return h.hexdigest()[:12]


@dataclass(frozen=True)
class Scenario:
    """A scenario as the registry sees it: a name, what kind of thing it measures, its variants, its builder.

    A scenario's variants are measured together, interleaved round by round (one block): they compete or compare.
    ``kind`` tells reports what to show (``pipeline``, ``dataset``, ``training``), never the name.
    """

    name: str
    version: str
    variants: tuple[Variant, ...]
    build: Callable[[Variant, Size], Any] | None = None  # a scenario made by hand: returns a tfperf.Runnable
    kind: str = "other"
    doc: str = ""
    # Figures of the scenario as a whole that every row carries (the input pipeline a model reads, ...).
    info: dict[str, Any] = field(default_factory=dict)
    # At most this many of the run's worker processes time it (None: all of them). The distributed scenarios
    # start fresh cluster processes in every block, the largest part of their cost: one process keeps the
    # `default` size within its budget. Such a block runs as many rounds in all as the others (the harness gives
    # its processes the rounds of the run's).
    processes: int | None = None

    def __post_init__(self) -> None:
        if not NAME.fullmatch(self.name):
            raise ScenarioError(f"scenario name {self.name!r} must be letters, digits, '_' and '-' (it names trace "
                                "folders and test ids)")
        names = [v.name for v in self.variants]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ScenarioError(f"scenario {self.name}: duplicate variant names {sorted(dupes)}")
        bad = [n for n in names if not NAME.fullmatch(n)]
        if bad:
            raise ScenarioError(f"scenario {self.name}: variant names {bad} must be letters, digits, '_' and '-'")
        for v in self.variants:
            for ref in self.partners(v):
                if ref not in names:
                    raise ScenarioError(f"scenario {self.name}: {v.name} names unknown variant {ref}")

    def partners(self, v: Variant) -> list[str]:
        """The variants `v` is compared with in pairs: its baseline, and its compute-only bound if it has one."""
        out = [v.baseline] if v.baseline else []
        if v.bound and v.bound != v.name and v.bound not in out:
            out.append(v.bound)
        return out

    def row_info(self, v: Variant) -> dict[str, Any]:
        """Fields of its own that every row of `v` carries (an A/B scenario says which side a row is)."""
        return {}

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(f"scenario {self.name} has no variant {name!r}")

    def __iter__(self) -> Iterator[Variant]:
        return iter(self.variants)


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,79}")
