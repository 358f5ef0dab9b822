"""Bad input gets one clear line, the exit status says so, there is no traceback, and nothing is lost.

One case per kind of bad input: options of `pytest bench`, run ids and results folders, pytest-benchmark's
own flags, the image cache, results files and the options of `python -m reports`.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = pytest.mark.slow


def _bench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", "bench", "--benchmark-only", "--tfperf-size", "smoke", "-q",
           "-p", "no:cacheprovider", "-k", "light/naive", *args]
    if "--tfperf-results" not in args:
        cmd += ["--tfperf-results", str(tmp_path / "results")]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def _existing_run(tmp_path: Path) -> Path:
    run = tmp_path / "results" / "kept"
    run.mkdir(parents=True)
    (run / "benchmarks.json").write_text('{"benchmarks": [], "kept": true}')
    return run


BENCH_CASES = {
    "size": (["--tfperf-size", "huge"], "invalid choice: 'huge'"),
    "run id with ..": (["--tfperf-run-id", "../../etc"], "--tfperf-run-id must be one folder name"),
    "absolute run id": (["--tfperf-run-id", "/tmp/x"], "--tfperf-run-id must be one folder name"),
    "run id with a separator": (["--tfperf-run-id", "a/b"], "--tfperf-run-id must be one folder name"),
    "run id of dots": (["--tfperf-run-id", ".."], "--tfperf-run-id must be one folder name"),
    "existing run": (["--tfperf-run-id", "kept"], "already exists and is not empty"),
    "profile steps 0": (["--tfperf-profile-steps", "0"], "--tfperf-profile-steps must be between 3 and 500"),
    "profile steps huge": (["--tfperf-profile-steps", "100000"], "--tfperf-profile-steps must be between 3 and 500"),
    "profile steps text": (["--tfperf-profile-steps", "x"], "invalid int value: 'x'"),
    "processes 0": (["--tfperf-processes", "0"], "--tfperf-processes must be between 1 and 16"),
    "processes 99": (["--tfperf-processes", "99"], "--tfperf-processes must be between 1 and 16"),
    "rounds 1": (["--tfperf-rounds", "1"], "--tfperf-rounds must be between 3 and 200"),
    "tracer level": (["--tfperf-host-tracer-level", "9"], "invalid choice: 9"),
    # pytest-benchmark itself refuses this one in a line of its own, before the suite sees it
    "benchmark-disable": (["--benchmark-disable"], "Can't have both --benchmark-only and --benchmark-disable"),
    "benchmark-skip": (["--benchmark-skip"], "--benchmark-skip does not apply to this suite: select variants with -k"),
    "benchmark-min-rounds": (["--benchmark-min-rounds", "3"], "--benchmark-min-rounds does not apply"),
    "benchmark-disable-gc": (["--benchmark-disable-gc"], "--benchmark-disable-gc does not apply"),
    "benchmark-autosave": (["--benchmark-autosave"], "--benchmark-autosave does not apply to this suite: every run "
                                                     "is saved already"),
    "benchmark-save": (["--benchmark-save", "mine"], "--benchmark-save does not apply"),
    "benchmark-storage": (["--benchmark-storage", "file://elsewhere"], "--benchmark-storage does not apply"),
    "empty run id": (["--tfperf-run-id", ""], "--tfperf-run-id must be one folder name"),
    "empty results": (["--tfperf-results", ""], "--tfperf-results is empty"),
}


@pytest.mark.parametrize("case", list(BENCH_CASES))
def test_bad_bench_option(tmp_path, case):
    args, message = BENCH_CASES[case]
    kept = _existing_run(tmp_path)
    before = (kept / "benchmarks.json").read_text()
    proc = _bench(tmp_path, *args)
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]  # pytest's usage error
    assert message in proc.stderr and "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if "tfperf" in line or "error" in line.lower()]
    assert len(lines) <= 2  # pytest's "ERROR:" line (and argparse's usage line), nothing more
    assert (kept / "benchmarks.json").read_text() == before  # the earlier run is untouched
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["kept"]  # nothing else was written
    assert not (tmp_path / "etc").exists() and not Path("/tmp/x/benchmarks.json").exists()


def test_results_root_that_is_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    proc = _bench(tmp_path, "--tfperf-results", str(blocker))
    assert proc.returncode == 4 and "not writable" in proc.stderr and "Traceback" not in proc.stderr
    assert blocker.read_text() == "keep me"


def test_cache_that_cannot_be_written_fails_the_variant_in_one_line(tmp_path):
    blocker = tmp_path / "cache-file"
    blocker.write_text("")
    env = dict(os.environ, TFPERF_CACHE=str(blocker))
    cmd = [sys.executable, "-m", "pytest", "bench", "--benchmark-only", "--tfperf-size", "smoke", "-q",
           "-p", "no:cacheprovider", "-k", "cpu/naive", "--tfperf-no-profile", "--tfperf-no-report",
           "--tfperf-results", str(tmp_path / "results"), "--tfperf-run-id", "r"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1
    assert ("cpu/naive failed: scenario cpu: files tfperf.builtins.pipelines._shards raised CacheError: image cache "
            "(TFPERF_CACHE=") in proc.stdout
    assert "Traceback" not in proc.stdout
    data = json.loads((tmp_path / "results" / "r" / "benchmarks.json").read_text())
    assert data["tfperf"]["unmeasured"][0]["extra_info"]["status"] == "failed"


REPORT_CASES = {
    "missing run": (["build", "{tmp}/nope"], "no results file"),
    "not JSON": (["build", "{bad_json}"], "is not valid JSON"),
    "not a results file": (["build", "{not_results}"], "is not a pytest-benchmark results file"),
    "workers 0": (["build", "{run}", "--workers", "0"], "--workers must be between 1 and 16"),
    "threshold negative": (["compare", "{run}", "{run}", "--threshold", "-5"], "--threshold must be between"),
    "threshold nan": (["compare", "{run}", "{run}", "--threshold", "nan"], "--threshold must be between"),
    "threshold-for without =": (["compare", "{run}", "{run}", "--threshold-for", "x"], "wants PATTERN=PERCENT"),
    "threshold-for negative": (["compare", "{run}", "{run}", "--threshold-for", "mlp/*=-15"],
                               "must be between 0 and 1000 percent"),
    "alpha 0": (["compare", "{run}", "{run}", "--alpha", "0"], "--alpha must be above 0 and below 1"),
    "one run": (["compare", "{run}"], "compare wants BASE NEW"),
    "nothing after --": (["compare", "{run}", "--"], "no run after --"),
    "compare a missing run": (["compare", "{run}", "{tmp}/nope"], "no results file"),
}


@pytest.mark.parametrize("case", list(REPORT_CASES))
def test_bad_report_input(tmp_path, fixture_run, case):
    bad_json = tmp_path / "bad"
    bad_json.mkdir()
    (bad_json / "benchmarks.json").write_text('{"benchmarks": [')
    not_results = tmp_path / "list"
    not_results.mkdir()
    (not_results / "benchmarks.json").write_text("[1, 2]")
    before = (fixture_run / "benchmarks.json").read_bytes()
    args = [a.format(tmp=tmp_path, bad_json=bad_json, not_results=not_results, run=fixture_run)
            for a in REPORT_CASES[case][0]]
    proc = subprocess.run([sys.executable, "-m", "reports", *args], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2
    assert REPORT_CASES[case][1] in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (fixture_run / "benchmarks.json").read_bytes() == before  # the input is never modified


def test_a_plain_pytest_benchmark_file_builds_a_partial_report(tmp_path, fixture_run):
    plain = tmp_path / "plain"
    plain.mkdir()
    data = json.loads((fixture_run / "benchmarks.json").read_text())
    del data["tfperf"]
    for b in data["benchmarks"]:
        b["extra_info"] = {}
    (plain / "benchmarks.json").write_text(json.dumps(data))
    proc = subprocess.run([sys.executable, "-m", "reports", "build", str(plain)], cwd=REPO, capture_output=True,
                          text=True)
    assert proc.returncode == 0 and "partial" in proc.stdout and (plain / "report.html").is_file()


def test_a_malformed_tfperf_section_gives_a_partial_report_not_a_traceback(tmp_path, fixture_run):
    broken = tmp_path / "broken"
    shutil.copytree(fixture_run, broken)
    data = json.loads((broken / "benchmarks.json").read_text())
    data["tfperf"]["profiles"] = "not a list"
    data["tfperf"]["null_pairs"] = [{"speedup": "x"}]
    data["benchmarks"][0]["extra_info"]["examples"] = "many"
    data["benchmarks"][1]["stats"] = {"data": "nope"}
    (broken / "benchmarks.json").write_text(json.dumps(data))
    for command in ("build", "table"):
        proc = subprocess.run([sys.executable, "-m", "reports", command, str(broken)], cwd=REPO,
                              capture_output=True, text=True)
        assert "Traceback" not in proc.stderr, proc.stderr
        assert proc.returncode in (0, 2)
        if proc.returncode == 2:
            assert proc.stderr.count("\n") == 1 and "benchmarks.json" in proc.stderr


def test_the_cause_is_found_under_tensorflows_and_keras_wrappers():
    from tfperf.api.base import cause_line

    graph = ("Graph execution error:\n\nDetected at node PyFunc defined at (most recent call last):\n"
             "  File \"x.py\", line 3, in <module>\n\nValueError: boom in the map\n"
             "\t [[{{node PyFunc}}]] [Op:__inference_drain_123]")
    assert cause_line(graph) == "ValueError: boom in the map"
    keras = ("Exception encountered when calling Sequential.call().\n\n\x1b[1mInput 0 of layer \"dense\" is "
             "incompatible with the layer: expected axis -1 of input shape to have value 32, but received input "
             "with shape (None, 16)\x1b[0m\n\nArguments received by Sequential.call():\n  \u2022 inputs=tf.Tensor")
    assert cause_line(keras).startswith("Input 0 of layer \"dense\" is incompatible") and "(None, 16)" in cause_line(keras)
    assert cause_line("plain message\nmore") == "plain message"


def test_sys_exit_in_a_scenario_file_is_one_line(tmp_path):
    from tfperf.api import registry

    bad = tmp_path / "exits.py"
    bad.write_text("import sys\nsys.exit(3)\n")
    reg = registry.load([str(bad)])
    assert reg.errors == [(str(bad), "importing it called sys.exit(3)")] and not reg.scenarios


def test_an_infinite_source_is_refused_instead_of_counted_for_ever(smoke):
    import tensorflow as tf

    import tfperf
    from tfperf.runtime.build import runnable

    sc = tfperf.pipeline("endless", tfperf.Stages(source=lambda: tf.data.Dataset.range(10).repeat(),
                                                  map=lambda x: x, batch_size=2))
    with pytest.raises(tfperf.ScenarioError, match="the source is infinite"):
        runnable(sc, sc.variant("naive"), smoke)


def test_an_endless_source_of_unknown_length_stops_at_the_deadline(smoke, monkeypatch):
    """A generator that never ends has no cardinality to refuse up front: counting its records stops at the
    deadline (TFPERF_COUNT_DEADLINE_S) with one line naming the scenario, the count reached and what to give."""
    import itertools

    import tensorflow as tf

    import tfperf
    from tfperf.runtime.build import runnable

    monkeypatch.setenv("TFPERF_COUNT_DEADLINE_S", "1")
    endless = lambda: tf.data.Dataset.from_generator(  # noqa: E731
        lambda: ((float(i),) for i in itertools.count()), output_signature=(tf.TensorSpec([], tf.float32),))
    sc = tfperf.pipeline("endless_generator", tfperf.Stages(source=endless, map=lambda x: x, batch_size=2))
    with pytest.raises(tfperf.ScenarioError) as raised:
        runnable(sc, sc.variant("naive"), smoke)
    line = str(raised.value)
    assert line.startswith("scenario endless_generator: counting the source's records passed ") and "\n" not in line
    assert "after 1 s without reaching its end" in line and "Stages(examples=...)" in line


def test_minor_bad_inputs_name_their_cause(tmp_path, fixture_run):
    """A null tfperf section is noted and read as empty; a scenarios folder, an output path that is a folder and a
    TFPERF_CACHE that is a file each say so in their own words."""
    from tfperf.analysis import tables
    from tfperf.api import registry
    from tfperf.builtins import data
    from tfperf.results.store import atomic_write, load_run

    raw = json.loads((fixture_run / "benchmarks.json").read_text())
    raw["tfperf"] = None
    (fixture_run / "benchmarks.json").write_text(json.dumps(raw))
    run = load_run(fixture_run)
    assert any("the tfperf section is null; ignored" in p for p in run.problems)
    assert tables.format_text(run).startswith("run ")
    [(_, cause)] = registry.load([str(tmp_path)]).errors
    assert cause == f"{tmp_path} is a folder: name a .py file in it, or a module"
    try:
        atomic_write(tmp_path, "x")
        raise AssertionError("expected IsADirectoryError")
    except IsADirectoryError as exc:
        assert exc.filename == str(tmp_path) and "is a folder" in str(exc)
    blocker = tmp_path / "cache-file"
    blocker.write_text("")
    try:
        data.image_shards(24, 3, 32, root=blocker)
        raise AssertionError("expected CacheError")
    except data.CacheError as exc:
        assert "is a file, not a folder" in str(exc)


def test_a_run_folder_path_that_is_a_file_is_a_usage_error(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "x1").write_text("keep me")
    proc = _bench(tmp_path, "--tfperf-run-id", "x1")
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "run folder" in proc.stderr and "is a file, not a folder" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout and "INTERNALERROR" not in proc.stderr + proc.stdout
    assert (results / "x1").read_text() == "keep me" and sorted(p.name for p in results.iterdir()) == ["x1"]


def test_a_run_folder_removed_mid_run_is_said_in_one_line(tmp_path):
    """The run folder deleted after the first row: the rows cannot be written, which the run says in one line
    (and fails), with the variant's own result and the summary still printed, and no traceback."""
    proc = _bench(tmp_path, "-p", "tests.remove_run_plugin", "--tfperf-no-profile", "--tfperf-no-report",
                  "--tfperf-run-id", "gone")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert "Traceback" not in out and "INTERNALERROR" not in out
    lost = [line for line in out.splitlines() if "the run's rows are lost" in line]
    assert len(lost) == 1 and "could not write" in lost[0] and "benchmarks.json" in lost[0]
    assert ".tmp" not in lost[0]  # the path given, not the temporary file
    assert "1 passed" in out  # the variant itself was measured and said
    assert not (tmp_path / "results" / "gone").exists()  # nothing was made again behind the user's back
