"""pytest wiring for `pytest bench --benchmark-only`: options, the run folder, machine info, the report."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported: keep its C++ INFO lines out

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from scenarios import SIZES, devices, profiling

from .harness import Harness, Settings

_HARNESS = pytest.StashKey[Harness]()


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


def _run_dir(config: pytest.Config, size: str) -> Path:
    root = Path(config.getoption("--tfperf-results"))
    run_id = config.getoption("--tfperf-run-id") or f"{datetime.now():%Y%m%d-%H%M%S}-{size}"
    run_dir = root / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise pytest.UsageError(f"tfperf: results folder {run_dir} is not writable: {exc.strerror or exc}") from None
    return run_dir.resolve()


@pytest.hookimpl(trylast=True)  # after pytest-benchmark has made its session
def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--collect-only"):
        return
    size = SIZES[config.getoption("--tfperf-size")]
    steps = config.getoption("--tfperf-profile-steps") or size.profile_steps
    if steps < 3:
        raise pytest.UsageError("tfperf: --tfperf-profile-steps must be at least 3 (xprof drops the edge steps)")
    devices.configure()  # before any TensorFlow op: split the CPU into two logical devices
    settings = Settings(
        size=size, run_dir=_run_dir(config, size.name), profile=not config.getoption("--tfperf-no-profile"),
        profile_steps=steps,
        levels=profiling.TracerLevels(host=config.getoption("--tfperf-host-tracer-level"),
                                      python=config.getoption("--tfperf-python-tracer-level"),
                                      device=config.getoption("--tfperf-device-tracer-level")),
        report=not config.getoption("--tfperf-no-report"),
    )
    config.stash[_HARNESS] = Harness(config, settings)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The report benchmark goes last: it reads what every other benchmark wrote."""
    items.sort(key=lambda item: item.path.name == "test_report.py")


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


def pytest_sessionfinish(session: pytest.Session) -> None:
    harness = session.config.stash.get(_HARNESS, None)
    if harness is None or not (harness.finished or harness.unmeasured):
        return
    path = harness.write()
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.ensure_newline()
    say = tr.write_line if tr is not None else print
    say(f"tfperf: results in {path}")
    if harness.settings.report:
        # A fresh process: the report is built from the files alone, exactly as `python -m reports build` does.
        proc = subprocess.run([sys.executable, "-m", "reports", "build", str(harness.settings.run_dir)],
                              capture_output=True, text=True)
        lines = (proc.stdout if proc.returncode == 0 else proc.stderr).strip().splitlines() or ["(no output)"]
        say(lines[-1] if proc.returncode == 0 else f"tfperf: report failed: {lines[-1]}")
    if harness.settings.profile:
        say(f"tfperf: traces: tensorboard --logdir {harness.settings.run_dir / 'traces'}")
