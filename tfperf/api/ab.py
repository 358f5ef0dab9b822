"""Before and after in one run: two versions of the same scenarios, paired variant by variant in one block.

``tfperf ab BASE NEW`` (or ``--tfperf-ab BASE NEW`` through pytest) loads each side's scenarios (a module or a
``.py`` file, as ``--tfperf-scenarios`` takes) and, for every scenario name the two sides share, makes one
:class:`ABScenario`: its variants are the base side's copy of each shared variant, named ``<variant>--base``,
and the new side's, named as on that side with the base copy as its baseline. The harness then measures both
copies as members of one block, round by round in the shuffled order it uses for any variant and its
baseline, in the same worker processes, so a slow spell of the machine weighs on both sides alike; each
row's speedup over its base copy is the change, with the run's calibrated interval.

Only the pairs are kept: the variants' own baselines and compute-only bounds are not compared in an A/B (a
plain run of either side does that). What exists on one side only is listed in :attr:`Pairing.notes`, never
dropped silently. Scenarios whose runnables start processes from the SPEC (the tf.data service and the
multi-worker ones) are not paired: their cluster processes would load the A/B SPEC, not one side.

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from .base import Scenario, ScenarioError, Variant
from .distributed import MultiWorkerScenario, ServiceScenario

PREFIX = "ab:"  # an A/B SPEC: "ab:" + JSON [BASE, NEW]
BASE_SUFFIX = "--base"
SIDES = ("base", "new")


def spec(base: str, new: str) -> str:
    """The SPEC that names an A/B of `base` against `new` (each a SPEC of its own): the worker processes load it."""
    return PREFIX + json.dumps([base, new])


def parse(text: str) -> tuple[str, str] | None:
    """(BASE, NEW) from an A/B SPEC, None for any other SPEC, a ScenarioError for a malformed one."""
    if not text.startswith(PREFIX):
        return None
    try:
        sides = json.loads(text[len(PREFIX):])
    except json.JSONDecodeError:
        sides = None
    if not (isinstance(sides, list) and len(sides) == 2 and all(isinstance(s, str) and s for s in sides)):
        raise ScenarioError(f"an A/B SPEC is {PREFIX}[\"BASE\", \"NEW\"], got {text!r}")
    return sides[0], sides[1]


@dataclass(frozen=True)
class ABScenario(Scenario):
    """One scenario's two versions as one block. ``sides`` maps each member's name to (side, the side's own
    scenario, the side's own variant): the runtime builds the side's own variant of the side's own scenario."""

    base_spec: str = ""
    new_spec: str = ""
    sides: dict[str, tuple[str, Scenario, Variant]] = field(default_factory=dict)

    def unwrap(self, v: Variant) -> tuple[Scenario, Variant]:
        _, scenario, own = self.sides[v.name]
        return scenario, own

    def row_info(self, v: Variant) -> dict[str, Any]:
        side, scenario, own = self.sides[v.name]
        return {"ab_side": side, "ab_variant": own.name, "ab_spec": self.base_spec if side == "base" else self.new_spec,
                "ab_side_version": scenario.version}


@dataclass
class Pairing:
    scenarios: list[ABScenario]
    notes: list[str]  # what was not paired, and why: one line each


PAIRED_KINDS_EXCLUDED = (ServiceScenario, MultiWorkerScenario)


def pair(base: list[Scenario], new: list[Scenario], base_spec: str = "BASE", new_spec: str = "NEW") -> Pairing:
    """The A/B scenarios of two sides' scenarios (matched by scenario and variant name), and what was left out."""
    notes: list[str] = []
    by_name = {sc.name: sc for sc in new}
    base_names = {sc.name for sc in base}
    out: list[ABScenario] = []
    for b in base:
        n = by_name.get(b.name)
        if n is None:
            notes.append(f"scenario {b.name}: only in {base_spec}")
            continue
        if isinstance(b, PAIRED_KINDS_EXCLUDED) or isinstance(n, PAIRED_KINDS_EXCLUDED):
            notes.append(f"scenario {b.name}: not paired (its cluster processes load scenarios by SPEC; compare two "
                         "separate runs of it instead)")
            continue
        if type(b) is not type(n):
            notes.append(f"scenario {b.name}: a {type(b).__name__} in {base_spec} but a {type(n).__name__} in "
                         f"{new_spec}; not paired")
            continue
        new_variants = {v.name: v for v in n.variants}
        variants: list[Variant] = []
        sides: dict[str, tuple[str, Scenario, Variant]] = {}
        for v in b.variants:
            if v.name not in new_variants:
                notes.append(f"{b.name}/{v.name}: only in {base_spec}")
                continue
            w = new_variants[v.name]
            if len(v.name) + len(BASE_SUFFIX) > 80:
                notes.append(f"{b.name}/{v.name}: name too long to pair (at most {80 - len(BASE_SUFFIX)} characters)")
                continue
            base_copy = dataclasses.replace(v, name=v.name + BASE_SUFFIX, baseline=None, bound=None, more_work=False,
                                            description=f"{v.description} ({base_spec})".strip())
            new_copy = dataclasses.replace(w, baseline=base_copy.name, bound=None, more_work=False,
                                           description=f"{w.description} ({new_spec})".strip())
            variants += [base_copy, new_copy]
            sides[base_copy.name] = ("base", b, v)
            sides[new_copy.name] = ("new", n, w)
        base_variants = {v.name for v in b.variants}
        notes += [f"{b.name}/{name}: only in {new_spec}" for name in new_variants if name not in base_variants]
        if not variants:
            notes.append(f"scenario {b.name}: no variant in common")
            continue
        out.append(ABScenario(
            name=b.name, version=b.version if b.version == n.version else f"{b.version}..{n.version}",
            variants=tuple(variants), kind=n.kind, doc=n.doc, info=dict(n.info), processes=n.processes,
            base_spec=base_spec, new_spec=new_spec, sides=sides))
    notes += [f"scenario {sc.name}: only in {new_spec}" for sc in new if sc.name not in base_names]
    return Pairing(out, notes)
