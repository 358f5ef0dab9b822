"""Every variant of every scenario in the registry, one benchmark each (the scenarios hold the tables).

Test ids are ``scenario/variant``. The timing itself happens in worker processes (bench/worker.py): the
first test of a block asks the harness to measure the whole block, interleaved, and each test then records
its own row.
"""

import pytest

from scenarios.registry import REGISTRY

CASES = [(sc.name, v.name) for sc in REGISTRY.values() for v in sc.variants]


@pytest.mark.parametrize(("scenario", "variant"), CASES, ids=[f"{s}/{v}" for s, v in CASES])
def test_scenario(benchmark, tfperf, scenario, variant):
    tfperf.measure(benchmark, scenario, variant)
