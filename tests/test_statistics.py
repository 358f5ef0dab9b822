"""What the statistics claim, checked on simulated runs with a known truth and the variance components measured
on this machine (tfperf/analysis/simulate.py): coverage of the nominal 95%, power, and false discoveries over a
run's ~80 comparisons. Seeded: each check is one fixed sample, large enough that the method before this one
(a hierarchical bootstrap of medians: 75% at smoke) fails it."""

import pytest

from tfperf.analysis import simulate, stats


@pytest.mark.parametrize("layout", [simulate.DEFAULT, simulate.SMOKE], ids=["default", "smoke"])
def test_intervals_cover_the_truth_at_the_nominal_rate(layout):
    assert 0.93 <= simulate.coverage(layout, process_sd=0.0) <= 0.975


def test_a_process_level_component_is_pooled_over_the_block_and_still_covered():
    # the hard case (the measured component's 90th percentile), which two processes alone cannot estimate
    assert simulate.coverage(simulate.DEFAULT, process_sd=simulate.PROCESS_SD_HARD) >= 0.92


def test_a_real_20_percent_difference_is_found():
    assert simulate.power(simulate.DEFAULT, 0.2, process_sd=0.0) >= 0.95
    assert simulate.power(simulate.DEFAULT, 0.2, process_sd=simulate.PROCESS_SD_HARD) >= 0.75


def test_findings_control_false_discoveries_over_a_run():
    raw, controlled = simulate.false_discovery_runs(simulate.DEFAULT, runs=150)
    assert raw > 0.5  # at 95% each, most null runs of 80 comparisons hold an interval that excludes 1
    assert controlled <= 0.07  # after Benjamini-Hochberg at 5%: at most about 5% of null runs state any finding


def test_discoveries_keep_the_strong_and_drop_the_borderline():
    p = {"strong": 1e-6, **{f"null{i}": 0.5 for i in range(78)}, "borderline": 0.03}
    assert stats.discoveries(p) == {"strong"}
    assert stats.discoveries({}) == set()
