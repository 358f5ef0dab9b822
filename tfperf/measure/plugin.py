"""The suite's pytest hooks: the scenarios, the run folder, machine info, the answer, the report.

Loaded by the repository's ``bench/conftest.py`` (``pytest bench --benchmark-only``), by ``tfperf run`` (``-p``), and
in any folder by the entry point :mod:`tfperf.measure.entry` when a session names scenarios; the options live
there. ``test_scenario`` (``bench/test_scenarios.py``, :mod:`tfperf.measure.suite`) is parametrized by
:func:`pytest_generate_tests` over whatever the loaded registry holds (``--tfperf-scenarios``, or the built-ins and
the ``tfperf.scenarios`` entry points)."""

from __future__ import annotations

import math
import os
import re
import shlex
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from tfperf.analysis import answers, tables
from tfperf.api import ab, registry
from tfperf.api.base import SIZES
from tfperf.api.distributed import EXTERNAL_ENV
from tfperf.procs import interpreters, net
from tfperf.procs.children import ClusterError
from tfperf.results.store import load_run
from tfperf.runtime.quiet import (
    tensorflow_started,  # before TensorFlow: its start-up notices stay out of the output
)

with tensorflow_started():
    from tfperf.runtime import devices
    from tfperf.runtime.profiling import TracerLevels

    devices.configure()  # before any TensorFlow op: split the CPU into two logical devices

from . import ab_answer
from .harness import Harness
from .settings import Settings

# Two worker processes by default: a variant's level differs between processes by a median 5% (90th
# percentile 14%) on 2 cores, which rounds of one process cannot see; with two, every interval holds that
# spread and `reports compare` can judge a change against it. 2 x 5 rounds took 7:45 at `default` with
# profiling, against 8:32 for 1 x 9 (README has the measurements). 3 x 3 (n28, n29: 8:47, 9:08) moved the
# speedups as much between two runs as 2 x 5 did (12.3% at the 90th percentile both), and a row's level there is the
# run's, shared by all its processes, which more processes cannot average.
DEFAULT_PROCESSES = {"smoke": 1}  # by size, else 2: smoke is a quick check, and must fit 2 minutes

_HARNESS = pytest.StashKey[Harness]()


RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

# pytest-benchmark's own flags that would change how benchmarks run: the suite times its rounds itself (worker
# processes, calibrated rounds), so they would be silently ignored. Refused, with what to use instead.
REFUSED_BENCHMARK_FLAGS = {
    "--benchmark-disable": "the suite always measures; to run the variants once without timing, use the tests",
    "--benchmark-skip": "select variants with -k instead",
    "--benchmark-min-rounds": "rounds are set by --tfperf-size (and --tfperf-processes)",
    "--benchmark-max-time": "rounds are set by --tfperf-size (and --tfperf-processes)",
    "--benchmark-min-time": "round length is calibrated per variant (the size's min_round_s)",
    "--benchmark-warmup": "every variant has an untimed warm-up and calibration round",
    "--benchmark-warmup-iterations": "every variant has an untimed warm-up and calibration round",
    "--benchmark-calibration-precision": "round length is calibrated per variant (the size's min_round_s)",
    "--benchmark-disable-gc": "the collector is always off during a round and runs between rounds",
    "--benchmark-timer": "rounds are timed with time.perf_counter in the worker processes",
    "--benchmark-cprofile": "use the TensorFlow profiler pass (traces/) instead",
    "--benchmark-autosave": "every run is saved already, to --tfperf-results/<run-id>/benchmarks.json",
    "--benchmark-save": "every run is saved already, to --tfperf-results/<run-id>/benchmarks.json",
    "--benchmark-storage": "runs are stored under --tfperf-results",
}


def _refuse_benchmark_flags(config: pytest.Config) -> None:
    for arg in config.invocation_params.args:
        flag = str(arg).split("=", 1)[0]
        if flag in REFUSED_BENCHMARK_FLAGS:
            raise pytest.UsageError(f"tfperf: {flag} does not apply to this suite: {REFUSED_BENCHMARK_FLAGS[flag]}")


def _budget(given: str | None, default: float | None) -> float | None:
    """--tfperf-budget as seconds: '540', '540s', '9m', or 'none' (no budget)."""
    if given is None:
        return default
    text = given.strip().lower()
    if text == "none":
        return None
    found = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|m|min)?", text)
    if not found or float(found[1]) <= 0:
        raise pytest.UsageError(f"tfperf: --tfperf-budget takes a time such as 540, 540s or 9m, or 'none'; got "
                                f"{given!r}")
    return float(found[1]) * (60 if found[2] in ("m", "min") else 1)


def _run_dir(config: pytest.Config, size: str) -> Path:
    root = Path(config.getoption("--tfperf-results"))
    if not str(config.getoption("--tfperf-results")).strip():
        raise pytest.UsageError("tfperf: --tfperf-results is empty; give the results folder (default: results)")
    given = config.getoption("--tfperf-run-id")
    run_id = given if given is not None else f"{datetime.now():%Y%m%d-%H%M%S}-{size}"
    if not RUN_ID.fullmatch(run_id) or run_id in (".", ".."):
        raise pytest.UsageError(f"tfperf: --tfperf-run-id must be one folder name of letters, digits, '.', '_' "
                                f"and '-' (at most 100, not starting with '.' or '-'), got {run_id!r}")
    run_dir = root / run_id
    if run_dir.exists() and not run_dir.is_dir():
        raise pytest.UsageError(f"tfperf: run folder {run_dir} is a file, not a folder: choose another "
                                "--tfperf-run-id or --tfperf-results")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise pytest.UsageError(f"tfperf: run folder {run_dir} already exists and is not empty; a run never "
                                "overwrites another: choose a new --tfperf-run-id or remove that folder")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise pytest.UsageError(f"tfperf: results folder {run_dir} is not writable: {exc.strerror or exc}") from None
    return run_dir.resolve()


_REGISTRY = pytest.StashKey[registry.Registry]()
_CHECKED = pytest.StashKey[bool]()  # the tf.data service options were checked


def _distributed_env(config: pytest.Config) -> None:
    """The tf.data service options, checked in one line each and handed to the scenarios (and to the worker
    processes, which inherit the environment) before any scenario is built: the service builder reads them."""
    if config.stash.get(_CHECKED, False):
        return
    config.stash[_CHECKED] = True
    address = config.getoption("--tfperf-data-service")
    if address:
        try:
            proto, host, port = net.parse_address(address)
            net.check_reachable(f"{proto}://{host}:{port}")
        except ClusterError as exc:
            raise pytest.UsageError(f"tfperf: --tfperf-data-service: {exc}") from None
        os.environ[EXTERNAL_ENV] = f"{proto}://{host}:{port}"
    port = config.getoption("--tfperf-service-port")
    if port is not None:
        if not 1024 <= port <= 65000:
            raise pytest.UsageError(f"tfperf: --tfperf-service-port must be between 1024 and 65000, got {port}")
        try:
            net.check_port_free(port, "--tfperf-service-port")
        except ClusterError as exc:
            raise pytest.UsageError(f"tfperf: {exc}") from None
        os.environ["TFPERF_SERVICE_PORT"] = str(port)


def _absolute(side: str) -> str:
    """A side's SPEC with a file path made absolute (the worker processes load it from wherever they start)."""
    target, sep, attr = side.partition(":")
    if target.endswith(".py") or "/" in target or target.startswith("."):
        return str(Path(target).absolute()) + sep + attr
    return side


def _specs(config: pytest.Config) -> tuple[str, ...]:
    """The SPECs this session loads: --tfperf-scenarios, or the one A/B SPEC of --tfperf-ab."""
    sides = config.getoption("--tfperf-ab", default=None)
    if sides:
        if config.getoption("--tfperf-scenarios"):
            raise pytest.UsageError("tfperf: --tfperf-ab BASE NEW names the scenarios itself; drop --tfperf-scenarios")
        return (ab.spec(_absolute(sides[0]), _absolute(sides[1])),)
    return tuple(config.getoption("--tfperf-scenarios"))


def _pythons(config: pytest.Config, paths: tuple[str, ...]) -> dict[str, str]:
    """The A/B sides given interpreters of their own, each checked to import TensorFlow and tfperf (else one line)."""
    out = {}
    for side in ab.SIDES:
        python = config.getoption(f"--tfperf-ab-{side}-python", default=None)
        if python is None:
            continue
        option = f"--tfperf-ab-{side}-python"
        if not config.getoption("--tfperf-ab", default=None):
            raise pytest.UsageError(f"tfperf: {option} takes an A/B run (--tfperf-ab BASE NEW)")
        try:
            interpreters.check(python, paths, option)
        except interpreters.InterpreterError as exc:
            raise pytest.UsageError(f"tfperf: {exc}") from None
        out[side] = str(Path(python).absolute())
    return out


def _registry(config: pytest.Config) -> registry.Registry:
    """The scenarios this session runs, loaded once (a bad SPEC is kept as an error, the others load)."""
    if _REGISTRY not in config.stash:
        _distributed_env(config)
        with tensorflow_started():
            config.stash[_REGISTRY] = registry.load(_specs(config))
    return config.stash[_REGISTRY]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`scenario/variant` for every variant the registry holds; a SPEC that did not load is one case that fails with
    its one-line cause."""
    if "tfperf_case" not in metafunc.fixturenames:
        return
    reg = _registry(metafunc.config)
    cases = [(sc.name, v.name) for sc in reg.values() for v in sc.variants]
    ids = [f"{s}/{v}" for s, v in cases]
    for spec, _ in reg.errors:
        cases.append(("", spec))
        ids.append(f"scenarios:{spec}")
    metafunc.parametrize("tfperf_case", cases, ids=ids)


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (a `timeout`, a CI runner stopping the job) ends the run as Ctrl-C does: the finished rows are
    kept, the run is marked interrupted, and every worker process is stopped."""
    raise KeyboardInterrupt(f"stopped by signal {signum}")


@pytest.hookimpl(tryfirst=True)  # before pytest_configure, where pytest-benchmark makes its session
def pytest_cmdline_main(config: pytest.Config) -> None:
    """pytest-benchmark makes its storage folder (./.benchmarks) when its session starts, even when nothing is
    saved there: point it at the results root, so a run writes nothing outside it."""
    root = config.getoption("--tfperf-results", default=None)
    if root and hasattr(config.option, "benchmark_storage"):
        config.option.benchmark_storage = "file://" + str(Path(root).absolute())


@pytest.hookimpl(trylast=True)  # after pytest-benchmark has made its session
def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--collect-only"):
        return
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _terminate)
    _refuse_benchmark_flags(config)
    _distributed_env(config)  # a bad address or port: one line, before the run folder exists
    size = SIZES[config.getoption("--tfperf-size")]
    steps = config.getoption("--tfperf-profile-steps")
    steps = size.profile_steps if steps is None else steps
    if not 3 <= steps <= 500:
        raise pytest.UsageError(f"tfperf: --tfperf-profile-steps must be between 3 and 500 (xprof drops the edge "
                                f"steps; traces grow with the window), got {steps}")
    processes = config.getoption("--tfperf-processes")
    processes = DEFAULT_PROCESSES.get(size.name, 2) if processes is None else processes
    if not 1 <= processes <= 16:
        raise pytest.UsageError(f"tfperf: --tfperf-processes must be between 1 and 16, got {processes}")
    threshold = config.getoption("--tfperf-ab-threshold")
    if not (math.isfinite(threshold) and 0 <= threshold <= 1000):
        raise pytest.UsageError(f"tfperf: --tfperf-ab-threshold must be between 0 and 1000 percent, got {threshold}")
    rounds = config.getoption("--tfperf-rounds")
    if rounds is not None and not 3 <= rounds <= 200:
        raise pytest.UsageError(f"tfperf: --tfperf-rounds must be between 3 and 200, got {rounds}")
    budget = _budget(config.getoption("--tfperf-budget"), size.budget_s)
    paths = tuple(dict.fromkeys((str(config.rootpath), os.getcwd())))
    pythons = _pythons(config, paths)
    seed = config.getoption("--tfperf-seed")
    seed = int.from_bytes(os.urandom(4), "little") if seed is None else seed
    settings = Settings(
        size=size, run_dir=_run_dir(config, size.name), profile=not config.getoption("--tfperf-no-profile"),
        profile_steps=steps,
        levels=TracerLevels(host=config.getoption("--tfperf-host-tracer-level"),
                                      python=config.getoption("--tfperf-python-tracer-level"),
                                      device=config.getoption("--tfperf-device-tracer-level")),
        # an A/B run's page is ab.html (each side's folder takes `tfperf report build`)
        report=not config.getoption("--tfperf-no-report") and not config.getoption("--tfperf-ab"),
        processes=processes,
        rounds=rounds or 0,
        budget_s=budget,
        seed=seed,
        plugins=tuple(p for p in (config.option.plugins or []) if not p.startswith("no:")),
        specs=_specs(config),
        paths=paths,
        pythons=pythons,
    )
    config.stash[_HARNESS] = Harness(config, settings, _registry(config))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The report benchmark goes last: it reads what every other benchmark wrote."""
    items.sort(key=lambda item: item.name == "test_report_build")


def pytest_collection_finish(session: pytest.Session) -> None:
    """The final selection (after -k, -m and deselection): the harness plans its blocks from it."""
    harness = session.config.stash.get(_HARNESS, None)
    if harness is None:
        return
    selection = []
    for item in session.items:
        spec = getattr(item, "callspec", None)
        case = spec.params.get("tfperf_case") if spec is not None else None
        if case and case[0]:
            selection.append(case)
    harness.select(selection)


@pytest.fixture(scope="session")
def tfperf(request: pytest.FixtureRequest) -> Harness:
    return request.config.stash[_HARNESS]


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    machine_info["tfperf"] = devices.describe()
    machine_info["cpu_count"] = os.cpu_count()


def pytest_report_header(config: pytest.Config) -> str | None:
    harness = config.stash.get(_HARNESS, None)
    if harness is None:
        return None
    s = harness.settings
    return f"tfperf: size {s.size.name}, results {s.run_dir}, profiling {'on' if s.profile else 'off'}"


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's table: the answer is the last thing a run prints
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    harness = terminalreporter.config.stash.get(_HARNESS, None)
    if harness is not None and harness.last_words:
        terminalreporter.ensure_newline()
        for line in harness.last_words:
            terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    harness = session.config.stash.get(_HARNESS, None)
    if harness is None:
        return
    harness.stop()
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        harness.interrupted = True
    if not (harness.finished or harness.unmeasured):
        try:  # nothing ran (-k matched nothing, a usage error): no empty run folder is left behind
            harness.settings.run_dir.rmdir()
        except OSError:
            pass
        return
    path = harness.write()
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.ensure_newline()
    say = tr.write_line if tr is not None else print
    for crash in harness.crashes:  # a crash is not a measurement: the block was measured again, once
        say(f"tfperf: a worker process crashed in block {crash['block']}: {crash['cause']}")
    for spec, cause in harness.registry.errors:  # said even when -k deselected the failing case
        say(f"tfperf: --tfperf-scenarios {spec}: {cause}")
    if harness.registry.errors and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if path is None:
        say(f"tfperf: {harness.write_error}; the run's rows are lost")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return
    say(f"tfperf: results in {path}")
    budget = harness.budget_summary()
    if budget and budget["seconds"] is not None:
        over = budget["spent_s"] > budget["seconds"]
        cut = ", ".join(f"{b.split('/')[0]} ({v['rounds']} of {v['of']})"
                        for b, v in budget["blocks"].items() if v["rounds"] < v["of"])
        line = f"tfperf: measured in {budget['spent_s']:.0f} s of a {budget['seconds']:.0f} s budget"
        if cut:
            line += f" ({'over it' if over else 'within it'}; fewer rounds for {cut})"
        elif over:
            line += "; over it"
        say(line)
    try:
        done = load_run(path)
        if not session.config.getoption("--tfperf-ab", default=None):
            harness.last_words += ["== the answer (per scenario: verdict, then the resolved changes worth making, "
                                   "best first)", *answers.lines(done)]
        for line in tables.resolution_lines(done)[:1]:
            say(f"tfperf: {line}")
    except Exception as exc:  # noqa: BLE001 - the results are written; a summary line must not fail the run
        say(f"tfperf: could not summarise the run: {exc}")
    if session.config.getoption("--tfperf-ab", default=None):
        try:
            ab_answer.write(session, harness, path, harness.last_words.append)
        except Exception as exc:  # noqa: BLE001 - the rows are written; say why the answer is missing
            say(f"tfperf: the A/B answer failed: {type(exc).__name__}: {exc}")
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if harness.settings.report:
        # A fresh process: the report is built from the files alone, exactly as `tfperf report build` does.
        proc = subprocess.run([sys.executable, "-P", "-m", "tfperf", "report", "build", str(harness.settings.run_dir)],
                              capture_output=True, text=True)
        lines = (proc.stdout if proc.returncode == 0 else proc.stderr).strip().splitlines() or ["(no output)"]
        say(lines[-1] if proc.returncode == 0 else f"tfperf: report failed: {lines[-1]}")
        if proc.returncode != 0 and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # a run whose report failed did not succeed
    if harness.settings.profile:
        say(f"tfperf: traces: tensorboard --logdir {shlex.quote(str(harness.settings.run_dir / 'traces'))}")

