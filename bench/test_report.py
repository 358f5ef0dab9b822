"""The cost of the report itself: `tfperf report build` over this run's results and traces.

Runs after every other benchmark (bench/conftest.py orders it last), so it converts every trace the run
captured. Target: at most 30 s and 2 GB for a default-size run on 2 cores.
"""


def test_report_build(benchmark, tfperf):
    tfperf.measure_report(benchmark)
