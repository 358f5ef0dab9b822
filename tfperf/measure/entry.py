"""The suite's pytest entry point (``pytest11``): its options, and the suite itself only when a session asks for it.

An installed tfperf is loaded by every pytest session of its environment, so this module adds the ``tfperf``
options and nothing else until a session names a scenario (``--tfperf-scenarios`` or ``--tfperf-ab``). Then it
loads the suite's hooks (:mod:`tfperf.measure.plugin`, which starts TensorFlow) and, when no test path was given,
collects the suite's own benchmarks (:mod:`tfperf.measure.suite`)::

    pytest --benchmark-only --tfperf-scenarios my_bench.py

The repository's ``bench/`` and ``tfperf run`` load the hooks themselves; this module then only adds the options.
"""

from __future__ import annotations

import pytest

from tfperf.api.base import SIZES

PLUGIN = "tfperf.measure.plugin"


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("tfperf")
    g.addoption("--tfperf-size", choices=sorted(SIZES, key=list(SIZES).index), default="default",
                help="how much work each benchmark does (default: default)")
    g.addoption("--tfperf-results", metavar="DIR", default="results",
                help="results root; each run writes DIR/<run-id>/ (default: results)")
    g.addoption("--tfperf-run-id", metavar="ID", default=None, help="name of the run folder (default: time and size)")
    g.addoption("--tfperf-no-profile", action="store_true", help="skip the profiler pass")
    g.addoption("--tfperf-profile-steps", type=int, default=None, metavar="N",
                help="steps marked in each profiled window (default: the size's)")
    g.addoption("--tfperf-host-tracer-level", type=int, default=2, choices=(0, 1, 2, 3))
    g.addoption("--tfperf-python-tracer-level", type=int, default=0, choices=(0, 1))
    g.addoption("--tfperf-device-tracer-level", type=int, default=1, choices=(0, 1))
    g.addoption("--tfperf-no-report", action="store_true", help="do not build report.html at the end")
    g.addoption("--tfperf-processes", type=int, default=None, metavar="N",
                help="worker processes that each time every variant, 1 to 16 (default: 2; 1 at smoke)")
    g.addoption("--tfperf-rounds", type=int, default=None, metavar="N",
                help="timed rounds per variant and process, 3 to 200 (default: the size's)")
    g.addoption("--tfperf-budget", metavar="TIME", default=None,
                help="time the measuring may take, as 540, 540s or 9m, or 'none': past the pace that fits it, "
                     "blocks get fewer rounds, down to 3 (default: the size's, smoke 100s, small 4m, default 9m)")
    g.addoption("--tfperf-seed", type=int, default=None, metavar="N",
                help="seed of the shuffled round order (default: a new one each run, recorded)")
    g.addoption("--tfperf-scenarios", action="append", default=[], metavar="SPEC",
                help="run these scenarios only: a module name or a path to a .py file, optionally :attribute "
                     "(repeatable; default: the built-ins and the tfperf.scenarios entry points)")
    g.addoption("--tfperf-ab", nargs=2, default=None, metavar=("BASE", "NEW"),
                help="before and after in one run: pair the scenarios of BASE and NEW (each a SPEC as "
                     "--tfperf-scenarios takes) variant by variant, measured in the same rounds; writes ab.json, "
                     "ab.html and a results folder per side (tfperf ab runs this)")
    for side in ("base", "new"):
        g.addoption(f"--tfperf-ab-{side}-python", default=None, metavar="PYTHON",
                    help=f"with --tfperf-ab: measure the {side.upper()} side in this interpreter (another virtual "
                         "environment: another TensorFlow or Keras), its rounds alternating with the other side's")
    g.addoption("--tfperf-ab-threshold", type=float, default=5.0, metavar="PERCENT",
                help="with --tfperf-ab: a regression whose change exceeds this fails the run (default 5)")
    g.addoption("--tfperf-data-service", metavar="grpc://HOST:PORT", default=None,
                help="run the tf.data service scenarios against this dispatcher (its workers) instead of local "
                     "clusters")
    g.addoption("--tfperf-service-port", type=int, default=None, metavar="PORT",
                help="the local tf.data service dispatchers listen on PORT, PORT+1, ... (default: free ports)")


def _suite_loaded(pm: pytest.PytestPluginManager) -> bool:
    """The suite's hooks are registered: as a plugin (``-p tfperf.measure.plugin``) or through a conftest that
    imports them (the repository's bench/conftest.py)."""
    return pm.get_plugin(PLUGIN) is not None or any(
        getattr(getattr(p, "pytest_generate_tests", None), "__module__", None) == PLUGIN for p in pm.get_plugins())


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    if not (config.getoption("--tfperf-scenarios") or config.getoption("--tfperf-ab")):
        return  # a session that does not ask for the suite: tfperf stays out of it
    from tfperf.api.registry import shadowed

    if shadowed():
        raise pytest.UsageError(f"tfperf: {shadowed()}")
    pm = config.pluginmanager
    if _suite_loaded(pm):
        return
    from tfperf.measure import plugin, suite

    pm.register(plugin, PLUGIN)
    plugin.pytest_cmdline_main(config)  # this hook's callers were fixed before the registration
    # a run writes into its results folder only: no .pytest_cache in the user's project
    for name in ("cacheprovider", "stepwise"):  # what `-p no:cacheprovider` blocks (stepwise needs the cache)
        pm.set_blocked(name)
    if config.args_source != pytest.Config.ArgsSource.ARGS:  # no test path given: the suite's own benchmarks
        config.args = [suite.__file__]
