"""Training-loop variants, one benchmark each (scenarios/training.py holds the table)."""

import pytest

from scenarios.registry import REGISTRY

SCENARIO = REGISTRY["training"]


@pytest.mark.parametrize("variant", [v.name for v in SCENARIO], ids=lambda n: f"training/{n}")
def test_training(benchmark, tfperf, variant):
    tfperf.measure(benchmark, SCENARIO.name, variant)
