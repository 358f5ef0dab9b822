"""A pytest plugin that removes the run folder after the first benchmark has recorded its row.

    pytest bench --benchmark-only -p tests.remove_run_plugin ...

It stands for a user (or a cleaner) deleting the results mid-run. The worker processes import the session's -p
plugins too; there no pytest hook fires, so this does nothing.
"""

import shutil

import pytest

_done = []


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call" or _done:
        return
    _done.append(report.nodeid)
    from tfperf.measure.plugin import _HARNESS  # the harness knows its run folder

    config = _CONFIG[0]
    shutil.rmtree(config.stash[_HARNESS].settings.run_dir)


_CONFIG = []


def pytest_configure(config: pytest.Config) -> None:
    _CONFIG.append(config)
