"""A checked diagnosis: for each profiled variant whose steps wait for input, the bottleneck as the trace shows it
(the input-bound share of the step and the tf.data stage with the most self time, from xprof's Input Pipeline
Analyzer), the knob that addresses it, and what this same run measured for that knob (the paired speedup and its
interval). A knob the run did not measure is marked unverified. Rows only: the scenario's kind and the input a
training row read come from each row's extra_info.
"""

from __future__ import annotations

import re
from typing import Any

from tfperf.results.store import Run

from .tables import interval, missing, text

WRAPPERS = {"Root", "ForeverRepeat", "FiniteRepeat", "FiniteTake", "AssertCardinality", "Take", "Repeat"}
TRAINING_INPUT_BOUND = 10.0  # % of the step waiting for input, from the trace
PIPELINE_INPUT_BOUND = 50.0

# stage type -> (what it means, the knob, the variants of the input pipeline that measure the knob)
KNOBS: list[tuple[re.Pattern[str], str, str, tuple[str, ...]]] = [
    (re.compile(r"^Map$"), "a sequential map", "run the map in parallel (num_parallel_calls=AUTOTUNE), or vectorize "
     "it, or cache after it", ("parallel_autotune", "parallel_prefetch", "vectorized", "cache")),
    (re.compile(r"ParallelMap|MapAndBatch"), "the parallel map itself (its per-element work)", "vectorize the map "
     "(batch before map), cache after the expensive stage, or a wider fixed width where the work waits",
     ("vectorized", "cache", "parallel_2", "parallel_8", "parallel_32")),
    (re.compile(r"Prefetch"), "waiting in prefetch for the stages before it", "make the producer faster: vectorize, "
     "cache after the expensive stage, or more map width", ("vectorized", "cache", "parallel_8", "parallel_32")),
    (re.compile(r"TFRecord|FlatMap|Interleave|TextLine"), "reading the files", "interleave the files in parallel, "
     "or cache", ("interleave_parallel", "cache")),
    (re.compile(r"Batch"), "batching", "vectorize the map, or a larger batch", ("vectorized", "batch_512")),
    (re.compile(r"TensorSlice|Range|Generator"), "producing the source elements", "cache, or vectorize the stages "
     "after the source", ("cache", "vectorized")),
]


def stage_type(iterator: str) -> str:
    return re.sub(r"\[\d+\]$", "", iterator.split("::")[-1])


def slowest_stage(self_ms: dict[str, float]) -> tuple[str, float] | None:
    stages = [(k, v) for k, v in self_ms.items() if stage_type(k) not in WRAPPERS]
    return max(stages, key=lambda kv: kv[1]) if stages else None


def _speedup(row: Any) -> str | None:
    if missing(row.speedup) or missing(row.speedup_lo):
        return None
    return f"{row.speedup:.2f}x {interval(row.speedup_lo, row.speedup_hi)} vs {text(row.baseline)}"


def diagnose(run: Run, figures: dict[str, dict]) -> list[dict[str, Any]]:
    """One entry per diagnosed variant: key, input_percent, stage, stage_ms, meaning, knob, evidence, verified."""
    ok = run.frame[run.frame["status"] == "ok"]
    rows = {f"{r.scenario}/{r.variant}": r for r in ok.itertuples()}
    out = []
    for key, fig in sorted(figures.items()):
        row = rows.get(key)
        if row is None or "iterators" not in fig:
            continue
        kind = text(row.kind)
        share = float(fig["steps"].get("input_percent") or 0.0)
        if kind == "training":
            source = text(row.input_variant)
            if "/" not in source or share < TRAINING_INPUT_BOUND:
                continue
            input_scenario = source.split("/", 1)[0]
        elif kind in ("pipeline", "dataset"):
            if share < PIPELINE_INPUT_BOUND:
                continue
            input_scenario = str(row.scenario)
        else:
            continue
        slowest = slowest_stage(fig["iterators"])
        if slowest is None:
            continue
        stage, ms = slowest
        kind_of = next(((m, k, c) for pat, m, k, c in KNOBS if pat.search(stage_type(stage))), None)
        if kind_of is None:
            continue
        meaning, knob, candidates = kind_of
        evidence = []
        for name in candidates:
            other = rows.get(f"{input_scenario}/{name}")
            if other is not None and name != row.variant and _speedup(other):
                evidence.append(f"{input_scenario}/{name} {_speedup(other)}")
        out.append({"key": key, "kind": kind, "input_percent": share, "stage": stage, "stage_ms": ms,
                    "meaning": meaning, "knob": knob, "evidence": evidence, "verified": bool(evidence)})
    return out


def lines(entries: list[dict[str, Any]]) -> list[str]:
    out = []
    for e in entries:
        measured = ("measured in this run: " + "; ".join(e["evidence"])) if e["verified"] else \
            "unverified: this run did not measure that knob for this input"
        out.append(f"{e['key']}: {e['input_percent']:.0f}% of the step waits for input; the slowest stage is "
                   f"{e['stage'].removeprefix('Iterator::')} ({e['meaning']}, {e['stage_ms']:.1f} ms of self time in "
                   f"the window). Try: {e['knob']}. {measured}.")
    return out
