"""`pytest bench --benchmark-only`: the suite's hooks live in tfperf.measure.plugin, its options in
tfperf.measure.entry (the installed package's pytest11 entry point; `tfperf run` loads the same two from any
folder)."""

import pytest

from tfperf.measure.plugin import *  # noqa: F403 - pytest finds the hooks and the `tfperf` fixture here


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """The options, when pytest's plugin autoload is off (PYTEST_DISABLE_PLUGIN_AUTOLOAD) and so the entry point
    did not load them."""
    if pluginmanager.get_plugin("tfperf.measure.entry") is None:
        from tfperf.measure import entry

        pluginmanager.register(entry, "tfperf.measure.entry")
