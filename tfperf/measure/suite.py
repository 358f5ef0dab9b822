"""The suite as pytest collects it: one benchmark per variant of every loaded scenario, and the report's own cost.

``tfperf run`` runs this file with the plugin (:mod:`tfperf.measure.plugin`) from any folder; the repository's
``bench/`` holds the same two tests for ``pytest bench --benchmark-only``. Test ids are ``scenario/variant``: the
first test of a scenario asks the harness to measure its whole block, interleaved, and each test then records
its own row; the report's test runs last.
"""


def test_scenario(benchmark, tfperf, tfperf_case):
    tfperf.measure(benchmark, *tfperf_case)


def test_report_build(benchmark, tfperf):
    tfperf.measure_report(benchmark)
