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

from .base import Scenario, ScenarioError, Size, fingerprint
from .pipelines import PipelineVariant, Stages, StagesScenario
from .training import ModelScenario, TrainVariant

PREFIX = "tune:"
AS_WRITTEN, GUIDE, BOUND = "as_written", "guide", "bound"
KNOBS = ("map_parallel", "prefetch", "cache", "vectorized", "interleave", "cycle", "deterministic", "options",
         "batch_size")


def spec(user_spec: str, scenario: str, candidates: Sequence[tuple[str, dict[str, Any]]], through_step: bool = False,
         training: Sequence[tuple[str, dict[str, Any]]] = ()) -> str:
    """The SPEC of a confirmation block: `candidates` are (variant name, knobs) pairs of the pipeline. For a model
    scenario: `through_step`, its input pipeline with the model's training step as the consumer; `training`,
    (name, TrainVariant knobs) pairs of a training block whose inputs are the candidates."""
    return PREFIX + json.dumps({"spec": user_spec, "scenario": scenario, "through_step": through_step,
                                "candidates": [[n, k] for n, k in candidates],
                                "training": [[n, k] for n, k in training]})


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


def through_step(sc: ModelScenario) -> StagesScenario:
    """A model scenario's input pipeline with the model's training step as its consumer (the user's model, loss and
    optimizer, one GradientTape step per batch in a tf.function): its bound is then the step's own time."""
    data = sc.data
    if not isinstance(data, StagesScenario):
        raise ScenarioError(f"scenario {sc.name} reads an opaque dataset: the tuner changes stages (tfperf.pipeline)")

    def stages(size: Size) -> Stages:
        from tfperf.runtime.training import training_consumer

        given = data.stages
        st = given(size) if callable(given) and not isinstance(given, Stages) else given
        return dataclasses.replace(st, consumer=training_consumer(sc, size))
    return StagesScenario(name=f"{sc.name}-step", version=fingerprint(sc.version, "through_step"),
                          variants=data.variants, kind="pipeline", doc=f"{data.name} feeding {sc.name}'s training step",
                          info={"model": sc.name, "input_scenario": data.name}, stages=stages)


BOUND_FIT = "fit-memory"
WRITTEN_FIT = "fit-as_written"


def training_block(sc: ModelScenario, candidates: Sequence[tuple[str, dict[str, Any]]],
                   training: Sequence[tuple[str, dict[str, Any]]]) -> ModelScenario:
    """The model scenario with the tuner's training variants: each reads a variant of the input block (the pipeline
    as written, the guide's advice, the candidates) by name; ``fit-memory`` is the compute-only bound of plain
    ``fit``, and every variant is compared with ``fit`` on the pipeline as written."""
    if not isinstance(sc.data, StagesScenario):
        raise ScenarioError(f"scenario {sc.name} reads an opaque dataset: the tuner changes stages (tfperf.pipeline)")
    data = block(sc.data, candidates)
    rows = [TrainVariant(name=BOUND_FIT, loop="fit", input="memory", bound=BOUND_FIT,
                         description="fit on one batch already in memory: the compute-only bound")]
    allowed = {"loop", "input_variant", "steps_per_execution", "jit_compile"}
    for name, knobs in training:
        if set(knobs) - allowed:
            raise ScenarioError(f"training candidate {name}: unknown knobs {sorted(set(knobs) - allowed)}")
        plain = knobs.get("loop", "fit") == "fit" and not knobs.get("steps_per_execution") \
            and not knobs.get("jit_compile")
        rows.append(TrainVariant(name=name, **knobs, baseline=None if name == WRITTEN_FIT else WRITTEN_FIT,
                                 bound=BOUND_FIT if plain else None, description="a tuner's training candidate"))
    version = fingerprint(sc.version, data.version, tuple(rows))
    return dataclasses.replace(sc, data=data, variants=tuple(rows), version=version, naive=AS_WRITTEN, best=GUIDE)


def resolve(found: Sequence[Scenario], parsed: dict[str, Any]) -> Scenario:
    """The confirmation block a parsed tune SPEC names, from the scenarios its user SPEC holds."""
    name = parsed["scenario"]
    for sc in found:
        if sc.name != name:
            continue
        cands = [(str(n), dict(k)) for n, k in parsed["candidates"]]
        if parsed.get("training"):
            if not isinstance(sc, ModelScenario):
                raise ScenarioError(f"scenario {name} is no model scenario")
            return training_block(sc, cands, [(str(n), dict(k)) for n, k in parsed["training"]])
        if parsed.get("through_step"):
            if not isinstance(sc, ModelScenario):
                raise ScenarioError(f"scenario {name} is no model scenario")
            return block(through_step(sc), cands)
        return block(sc, cands)
    raise ScenarioError(f"{parsed['spec']} has no scenario {name!r}")
