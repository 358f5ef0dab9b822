"""tf.data pipeline variants, one benchmark each (scenarios/pipeline.py holds the table)."""

import pytest

from scenarios.registry import REGISTRY

SCENARIO = REGISTRY["pipeline"]


@pytest.mark.parametrize("variant", [v.name for v in SCENARIO], ids=lambda n: f"pipeline/{n}")
def test_pipeline(benchmark, tfperf, variant):
    tfperf.measure(benchmark, SCENARIO.name, variant)
