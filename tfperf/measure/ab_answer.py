"""An A/B run's answer, written when its session ends (:mod:`tfperf.measure.plugin`, ``--tfperf-ab``): ab.json,
ab.html, a results folder per side (:func:`tfperf.analysis.ab.split`), the terminal table, and exit 1 on a
regression beyond the threshold. Each side's versions are recorded: scenario, TensorFlow, Keras, suite, the git
revision of the side file's folder, the interpreter."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tfperf.analysis import ab as judge
from tfperf.api import ab
from tfperf.procs import revisions
from tfperf.render import ab_page
from tfperf.results.store import atomic_write, load_run

from .harness import Harness
from .rows import SUITE_VERSION, tf_version


def _git_revision(spec: str) -> str | None:
    """The git revision (with '+dirty' for uncommitted edits) of the folder holding a side's file, if any."""
    target = spec.partition(":")[0]
    try:
        if target.endswith(".py") or "/" in target:
            folder = Path(target).parent
            commit = revisions.described(spec)[1]  # a side checked out at a revision
            if commit:
                return commit[:12]
        else:  # a module: the folder of its file (a built-in's: the installed package's)
            found = importlib.util.find_spec(target)
            folder = Path(found.origin).parent if found is not None and found.origin else Path.cwd()
        rev = subprocess.run(["git", "-C", str(folder), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError, ImportError, ValueError):
        return None


def sides(harness: Harness, sides: list[str]) -> dict[str, dict]:
    """Both sides' versions: each scenario's, TensorFlow's, Keras's, the suite's, the git revision, the interpreter
    (a side in an interpreter of its own says its own, from its workers; else this process's)."""
    try:
        keras = importlib.metadata.version("keras")
    except importlib.metadata.PackageNotFoundError:
        keras = None
    out = {}
    for name, spec in zip(("base", "new"), sides, strict=True):
        versions = {sc.name: scenario.version for sc in harness.registry.values() if isinstance(sc, ab.ABScenario)
                    for side, scenario, _ in sc.sides.values() if side == name}
        own = harness.side_versions.get(name) or {}  # a side measured in an interpreter of its own
        out[name] = {"spec": revisions.described(spec)[0], "scenario_versions": versions,
                     "tensorflow": own.get("tensorflow", tf_version()), "keras": own.get("keras", keras),
                     "suite": SUITE_VERSION, "git_revision": _git_revision(spec),
                     "python": own.get("python", sys.executable)}
    return out


def write(session: pytest.Session, harness: Harness, path: Path, say) -> None:
    """An A/B run's answer: ab.json, ab.html, base/ and new/ result folders, the table; exit 1 on a regression
    beyond the threshold."""
    config = session.config
    run = load_run(path)
    versions = sides(harness, list(config.getoption("--tfperf-ab")))
    answer = judge.judge(run, config.getoption("--tfperf-ab-threshold") / 100, harness.registry.notes, versions)
    run_dir = harness.settings.run_dir
    judge.split(run, run_dir)
    atomic_write(run_dir / "ab.json", json.dumps(judge.to_json(answer), indent=1))
    atomic_write(run_dir / "ab.html", ab_page.format_html(answer))
    for line in judge.format_text(answer).splitlines():
        say(line)
    say(f"tfperf: A/B answer in {run_dir / 'ab.json'} and {run_dir / 'ab.html'}; each side: {run_dir / 'base'}, "
        f"{run_dir / 'new'}")
    if answer.exit_code == 1 and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
