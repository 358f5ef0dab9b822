"""The installed route: pytest's entry point loads tfperf's options in every session and the suite only when a
session names scenarios; a run from a user's own folder writes only its results folder; a folder named tfperf
beside the user's files does not shadow the package."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import tfperf

from .conftest import REPO

pytestmark = pytest.mark.slow

MINE = """
import tensorflow as tf
import tfperf

def numbers():
    return tf.data.Dataset.range(256).map(lambda i: tf.cast(i, tf.float32))

mine = tfperf.pipeline("mine", tfperf.Stages(source=numbers, map=lambda x: x * 2.0 + 1.0, batch_size=16),
                       variants=("naive", "prefetch"))
"""


def _pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_a_session_that_names_no_scenario_is_left_alone(tmp_path):
    (tmp_path / "test_plain.py").write_text(
        "import sys\n\ndef test_plain():\n    assert 'tensorflow' not in sys.modules\n")
    proc = _pytest(tmp_path, "-q", "-p", "no:cacheprovider")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout and "tfperf" not in proc.stdout
    # (pytest-benchmark's own .benchmarks folder is made by any session it is installed in; tfperf adds nothing)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name not in (".benchmarks", "__pycache__")) == ["test_plain.py"]
    helped = _pytest(tmp_path, "--help")
    assert "--tfperf-scenarios" in helped.stdout  # the options are there for whoever asks


def test_pytest_runs_a_users_scenarios_from_their_own_folder(tmp_path):
    """`pytest --benchmark-only --tfperf-scenarios mine.py` in a folder holding only that file: the suite's own
    benchmarks are collected (the folder has no tests), the results and the report land in ./results, and
    nothing else is written there (no .pytest_cache, no .benchmarks)."""
    (tmp_path / "mine.py").write_text(MINE)
    proc = _pytest(tmp_path, "--benchmark-only", "--tfperf-scenarios", "mine.py", "--tfperf-size", "smoke",
                   "--tfperf-no-profile", "--tfperf-run-id", "r", "-q")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out
    data = json.loads((tmp_path / "results" / "r" / "benchmarks.json").read_text())
    names = sorted(b["extra_info"]["variant"] for b in data["benchmarks"] if b["extra_info"]["scenario"] == "mine")
    assert names == ["naive", "prefetch"]
    assert (tmp_path / "results" / "r" / "report.html").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "__pycache__") == ["mine.py", "results"]


def test_a_folder_named_tfperf_in_the_working_folder_works_or_is_named(tmp_path, fixture_run):
    """Run from the folder above a clone called tfperf (a folder without __init__.py, which Python imports as a
    namespace package from the working folder). An installed wheel's package wins over it and the run works,
    its report step included; an editable install's loses, and the run says so in one line."""
    clone = tmp_path / "tfperf"
    (clone / "docs").mkdir(parents=True)
    (clone / "README.md").write_text("a clone\n")
    (tmp_path / "mine.py").write_text(MINE)
    proc = _pytest(tmp_path, "--benchmark-only", "--tfperf-scenarios", "mine.py", "--tfperf-size", "smoke",
                   "--tfperf-no-profile", "--tfperf-run-id", "r", "-q", "-k", "mine/naive")
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out and "partially initialized" not in out
    editable = REPO in Path(tfperf.__file__).resolve().parents
    if editable:
        assert proc.returncode == 4, out[-3000:]
        assert f"tfperf: the folder {clone} shadows the installed tfperf package" in proc.stderr
        assert not (tmp_path / "results").exists()
    else:
        assert proc.returncode == 0, out[-3000:]
        assert (tmp_path / "results" / "r" / "report.html").is_file()
    # the console script does not put the working folder on the path: the report command works either way
    script = Path(sys.executable).with_name("tfperf")
    built = subprocess.run([str(script), "report", "table", str(fixture_run)], cwd=tmp_path, capture_output=True,
                           text=True, timeout=300)
    assert built.returncode == 0 and "== the answer" in built.stdout, built.stderr[-2000:]
