"""Every variant of every loaded scenario, one benchmark each: the built-ins, or those `--tfperf-scenarios` names.

Test ids are ``scenario/variant`` (tfperf.measure.plugin parametrizes ``tfperf_case`` from the registry). The timing
itself happens in worker processes: the first test of a scenario asks the harness to measure its whole block,
interleaved, and each test then records its own row.
"""


def test_scenario(benchmark, tfperf, tfperf_case):
    tfperf.measure(benchmark, *tfperf_case)
