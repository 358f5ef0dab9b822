"""The one registry: bench parametrizes from it, profiling walks it, reports find baselines in what it wrote."""

from __future__ import annotations

from . import pipeline, training
from .core import Scenario

REGISTRY: dict[str, Scenario] = {s.name: s for s in (pipeline.SCENARIO, training.SCENARIO)}


def get(name: str) -> Scenario:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(REGISTRY)}") from None
