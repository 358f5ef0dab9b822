"""The tuner's candidates as a scenario the harness measures (``tfperf tune``): declarations only, no TensorFlow.

A confirmation run measures a handful of candidate configurations of one user scenario, in one block, paired
round by round like any block. The worker processes load that block from a SPEC, ``"tune:" + JSON``: the user's
SPEC, the scenario's name, and each candidate's knobs. :func:`resolve` turns it into the user's scenario with its
variant table replaced: ``as_written`` (the stages as declared: sequential map, no prefetch, tf.data's rewrites
off), ``guide`` (map and prefetch at AUTOTUNE: the tf.data guide's advice), ``bound`` (the pipeline's first
batch cached and repeated: the compute-only bound), and the candidates, each compared with ``as_written`` and
its bound in pairs.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from .base import Scenario, ScenarioError, fingerprint
from .pipelines import PipelineVariant, StagesScenario

PREFIX = "tune:"
AS_WRITTEN, GUIDE, BOUND = "as_written", "guide", "bound"
KNOBS = ("map_parallel", "prefetch", "cache", "vectorized", "interleave", "cycle", "deterministic", "options",
         "batch_size")


def spec(user_spec: str, scenario: str, candidates: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """The SPEC of a confirmation block: `candidates` are (variant name, knobs) pairs."""
    return PREFIX + json.dumps({"spec": user_spec, "scenario": scenario,
                                "candidates": [[n, k] for n, k in candidates]})


def parse(text: str) -> dict[str, Any] | None:
    if not text.startswith(PREFIX):
        return None
    try:
        got = json.loads(text[len(PREFIX):])
    except json.JSONDecodeError:
        got = None
    if not (isinstance(got, dict) and isinstance(got.get("spec"), str) and isinstance(got.get("scenario"), str)
            and isinstance(got.get("candidates"), list)):
        raise ScenarioError(f"a tune SPEC is {PREFIX}{{\"spec\", \"scenario\", \"candidates\"}}, got {text[:80]!r}")
    return got


def variant(name: str, knobs: dict[str, Any], **extra: Any) -> PipelineVariant:
    unknown = set(knobs) - set(KNOBS)
    if unknown:
        raise ScenarioError(f"candidate {name}: unknown knobs {sorted(unknown)}")
    given = dict(knobs)
    if "options" in given:
        given["options"] = tuple((str(k), v) for k, v in given["options"])
    return PipelineVariant(name=name, **given, **extra)


def block(scenario: Scenario, candidates: Sequence[tuple[str, dict[str, Any]]]) -> StagesScenario:
    """The user's stages scenario with the confirmation's variant table."""
    if not isinstance(scenario, StagesScenario):
        raise ScenarioError(f"scenario {scenario.name} is a {scenario.kind} scenario; tfperf tune confirms stages "
                            "pipelines (tfperf.pipeline)")
    rows = [PipelineVariant(name=AS_WRITTEN, bound=BOUND,
                            description="the stages as declared: sequential map, no prefetch, rewrites off"),
            PipelineVariant(name=BOUND, from_memory=True,
                            description="compute-only bound: the first batch, cached, repeated through the consumer"),
            PipelineVariant(name=GUIDE, map_parallel=-1, prefetch=-1, baseline=AS_WRITTEN, bound=BOUND,
                            description="map(num_parallel_calls=AUTOTUNE) and prefetch(AUTOTUNE): the guide's advice")]
    seen = {v.name for v in rows}
    for name, knobs in candidates:
        if name in seen:
            continue
        seen.add(name)
        rows.append(variant(name, knobs, baseline=AS_WRITTEN, bound=BOUND, description="a tuner's candidate"))
    version = fingerprint(scenario.version, tuple(rows))
    return dataclasses.replace(scenario, variants=tuple(rows), version=version)
