"""`pytest bench --benchmark-only` end to end, at smoke size on a few variants, in a child process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from .conftest import REPO, SESSION_TAG

pytestmark = pytest.mark.slow



def _ids(*ids: str) -> list[str]:
    """Exact node ids (-k would match mlp/fit-best-mirrored for mlp/fit-best)."""
    return [f"bench/test_scenarios.py::test_scenario[{i}]" for i in ids]


def _workers_left() -> list[str]:
    """Command lines of tfperf.measure.worker processes that this test session's runs started and that still run
    (every test must leave none). A process counts only if it carries this session's tag (tests/conftest.py sets
    it, every run a test starts inherits it), so another tfperf run on the machine does not fail the tests."""
    out = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            if "tfperf.measure.worker" in cmd and proc.environ().get(SESSION_TAG) == os.environ[SESSION_TAG]:
                out.append(cmd)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return out


def _bench(tmp_path: Path, *args: str, plugin: str | None = None,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {}))
    targets = [a for a in args if a.startswith("bench/")] or ["bench"]
    args = tuple(a for a in args if not a.startswith("bench/"))
    cmd = [sys.executable, "-m", "pytest", *targets, "--benchmark-only", "--tfperf-size", "smoke",
           "--tfperf-results", str(tmp_path / "results"), "--tfperf-run-id", "r", "-q", "-p", "no:cacheprovider"]
    if plugin:
        (tmp_path / "tfperf_test_plugin.py").write_text(plugin)
        cmd += ["-p", "tfperf_test_plugin"]
    return subprocess.run([*cmd, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_run_writes_results_traces_and_report(tmp_path):
    proc = _bench(tmp_path, *_ids("light/naive", "light/parallel_prefetch", "mlp/fit-best", "mlp/fit-best-gpu0"),
                  "bench/test_report.py")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = tmp_path / "results" / "r"
    data = json.loads((run / "benchmarks.json").read_text())
    assert {"machine_info", "commit_info", "benchmarks", "datetime", "version"} <= set(data)  # pytest-benchmark's
    assert not _workers_left()
    rows = {b["extra_info"]["variant"]: b for b in data["benchmarks"]}
    report = rows.pop("build")  # the report benchmark ran last, over the three traces
    assert report["extra_info"]["status"] == "ok" and report["extra_info"]["traces"] == 3
    assert report["extra_info"]["report_rss_mb"] > 0 and report["extra_info"]["peak_rss_mb"] > 0
    assert set(rows) == {"naive", "parallel_prefetch", "fit-best"} | (
        {"fit-best-gpu0"} if data["machine_info"]["tfperf"]["gpus"] else set())
    rows.pop("fit-best-gpu0", None)
    for b in rows.values():
        info = b["extra_info"]
        for key in ("scenario", "variant", "kind", "group", "knobs", "examples", "examples_per_sec", "batch_size", "device", "size",
                    "tf_version", "suite_version", "scenario_version", "tf_data_options", "status"):
            assert key in info, key
        assert info["status"] == "ok" and info["size"] == "smoke"
        assert info["examples_per_sec"] == pytest.approx(info["examples"] / b["stats"]["median"])
        assert len(b["stats"]["data"]) == 3  # smoke rounds, one process at smoke, warm-up and calibration excluded
        assert info["warmup_s"] > 0 and info["calibration"]["passes"] >= 1 and info["cv"] is not None
        assert set(info["round_process"]) == {0} and "load" in info and info["unstable"] in (True, False)
        assert info["profile"]["status"] == "ok" and info["profile"]["steps_captured"] >= 3
        assert (run / info["profile"]["trace"]).is_file()
    train = rows["fit-best"]["extra_info"]
    assert train["kind"] == "training" and rows["naive"]["extra_info"]["kind"] == "pipeline"
    assert train["input_variant"] == "light/vectorized" and train["bound_variant"] == "fit-memory"
    for key in ("loop", "model", "strategy", "precision", "input_variant", "bound_variant", "step_time_ms",
                "input_overhead", "input_overhead_lo", "input_overhead_hi"):
        assert key in train, key
    # the bound was timed in the same rounds although not selected: the pair is in the row
    assert len(train["pairs"]["fit-memory"]["times"]) == 3
    assert rows["parallel_prefetch"]["extra_info"]["speedup_lo"] <= rows["parallel_prefetch"][
        "extra_info"]["speedup"] <= rows["parallel_prefetch"]["extra_info"]["speedup_hi"]
    nulls = {(n["block"], n["variant"]) for n in data["tfperf"]["null_pairs"]}
    assert nulls == {("light", "naive"), ("mlp", "fit-memory")}
    assert data["tfperf"]["interrupted"] is False
    skipped = data["tfperf"]["unmeasured"]
    # without a GPU the GPU variant is skipped with its reason; with one (gpus lists device names) it ran
    has_gpu = bool(data["machine_info"]["tfperf"]["gpus"])
    assert [(u["extra_info"]["variant"], u["extra_info"]["status"]) for u in skipped] == (
        [] if has_gpu else [("fit-best-gpu0", "skipped")])
    assert data["machine_info"]["tfperf"]["tf_version"].startswith("2.21")
    assert sorted(p.name for p in (run / "traces").iterdir()) == ["light.naive", "light.parallel_prefetch",
                                                                  "mlp.fit-best"]
    page = (run / "report.html").read_text()
    assert "id='resolution'" in page and "resolves differences above" in page  # the null pairs, at the top
    assert "tfperf: report" in proc.stdout and "tfperf: resolution: this run resolves" in proc.stdout

    listed = subprocess.run([sys.executable, "-m", "pytest_benchmark.cli", "list", str(run / "benchmarks.json")],
                            capture_output=True, text=True)  # pytest-benchmark reads its own format back
    assert listed.returncode == 0, listed.stderr


USER = """
import dataclasses, os, pathlib, signal
import tensorflow as tf
import tfperf

def numbers():
    return tf.data.Dataset.range(64).map(lambda i: (tf.cast(i, tf.float32), i))

def broken():
    raise ValueError("boom from the test")

def crashing():
    marker = os.environ.get("TFPERF_TEST_MARKER")
    if not marker or not pathlib.Path(marker).exists():
        if marker:
            pathlib.Path(marker).write_text("crashed")
        os.kill(os.getpid(), signal.SIGSEGV)
    return numbers().batch(8)

ok = tfperf.pipeline("ok", tfperf.Stages(source=numbers, map=lambda x, y: (x + 1.0, y), batch_size=8),
                     variants=("naive", "prefetch"))
bad = tfperf.dataset("bad", broken, variants=("as_given",))
crash = tfperf.dataset("crash", crashing, variants=("as_given", "prefetch"))
# timed by one process of the run, as the distributed scenarios are
alone = dataclasses.replace(tfperf.pipeline("alone", tfperf.Stages(source=numbers, map=lambda x, y: (x * 2.0, y),
                                                                   batch_size=8), variants=("naive", "prefetch")),
                            processes=1)
"""


def _user(tmp_path: Path) -> str:
    path = tmp_path / "user_scenarios.py"
    path.write_text(USER)
    return str(path)


def test_failing_variant_is_recorded_and_the_rest_kept(tmp_path):
    proc = _bench(tmp_path, "--tfperf-scenarios", _user(tmp_path), "-k", "ok/ or bad/", "--tfperf-no-profile")
    assert proc.returncode == 1
    assert ("bad/as_given failed: scenario bad: dataset factory user_scenarios.broken raised ValueError: boom from "
            "the test") in proc.stdout
    assert "Traceback" not in proc.stdout
    data = json.loads((tmp_path / "results" / "r" / "benchmarks.json").read_text())
    assert sorted(b["extra_info"]["variant"] for b in data["benchmarks"]) == ["naive", "prefetch"]
    failed = data["tfperf"]["unmeasured"][0]["extra_info"]
    assert failed["status"] == "failed" and "boom" in failed["reason"] and failed["scenario"] == "bad"
    assert not _workers_left()


def test_two_processes_pool_their_rounds(tmp_path):
    proc = _bench(tmp_path, *_ids("ok/naive", "ok/prefetch", "alone/prefetch"), "--tfperf-no-profile",
                  "--tfperf-no-report", "--tfperf-processes", "2", "--tfperf-scenarios", _user(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "results" / "r" / "benchmarks.json").read_text())
    assert sorted(b["extra_info"]["scenario"] for b in data["benchmarks"]) == ["alone", "ok", "ok"]
    for b in data["benchmarks"]:
        info = b["extra_info"]
        if info["scenario"] == "alone":  # one process times it: the rounds of two, so the row has as many
            assert len(set(info["round_process"])) == 1 and info["rounds_per_process"] == [6]
            assert len(b["stats"]["data"]) == 6 and len(info["process_medians"]) == 1
            continue
        assert sorted(set(info["round_process"])) == [0, 1] and info["rounds_per_process"] == [3, 3]
        assert len(b["stats"]["data"]) == 6 and len(info["process_medians"]) == 2
        shares = info["process_cpu_per_s_per_process"]  # the CPU share is every process's, not the last one's
        assert len(shares) == 2 and info["process_cpu_per_s"] == pytest.approx(sum(shares) / 2)
    assert data["tfperf"]["processes"] == 2
    assert not _workers_left()


def test_interrupted_run_keeps_finished_rows_and_stops_its_workers(tmp_path):
    # Ctrl-C while the second test runs (after its block was measured by the worker process)
    plugin = """
def pytest_runtest_call(item):
    if "light/prefetch" in item.name:
        raise KeyboardInterrupt
"""
    proc = _bench(tmp_path, *_ids("light/naive", "light/prefetch", "cpu/naive"),
                  "--tfperf-no-profile", plugin=plugin)
    assert proc.returncode == 2  # pytest's "interrupted"
    data = json.loads((tmp_path / "results" / "r" / "benchmarks.json").read_text())
    assert [b["extra_info"]["variant"] for b in data["benchmarks"]] == ["naive"]
    assert data["tfperf"]["interrupted"] is True
    assert not list((tmp_path / "results" / "r").glob("*.tmp"))
    assert not _workers_left()


def test_bad_options_get_one_line(tmp_path):
    proc = _bench(tmp_path, "--tfperf-size", "huge")
    assert proc.returncode == 4 and "invalid choice: 'huge'" in proc.stderr and "Traceback" not in proc.stderr
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = subprocess.run([sys.executable, "-m", "pytest", "bench", "--benchmark-only", "--tfperf-size", "smoke",
                           "--tfperf-results", str(blocker), "-q"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 4
    assert f"tfperf: results folder {blocker}" in proc.stderr and "not writable" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_worker_that_crashes_once_is_replaced_and_the_block_measured_again(tmp_path):
    marker = tmp_path / "crashed"
    proc = _bench(tmp_path, "--tfperf-scenarios", _user(tmp_path), "-k", "crash/", "--tfperf-no-profile",
                  "--tfperf-no-report", env={"TFPERF_TEST_MARKER": str(marker)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "results" / "r" / "benchmarks.json").read_text())
    assert sorted(b["extra_info"]["variant"] for b in data["benchmarks"]) == ["as_given", "prefetch"]
    [crash] = data["tfperf"]["worker_crashes"]
    assert "was killed by SIGSEGV: Fatal Python error: Segmentation fault" in crash["cause"]
    assert "Extension modules" not in crash["cause"] and len(crash["cause"]) < 600  # one line, not the module list
    assert f"tfperf: a worker process crashed in block {crash['block']}: {crash['cause']}" in proc.stdout  # terminal
    table = subprocess.run([sys.executable, "-m", "tfperf", "report", "table", str(tmp_path / "results" / "r")],
                           capture_output=True, text=True)
    assert f"worker crash in block {crash['block']}: worker process" in table.stdout  # and in the table
    assert not _workers_left()


def test_a_worker_that_keeps_crashing_fails_its_block_and_the_run_goes_on(tmp_path):
    proc = _bench(tmp_path, "--tfperf-scenarios", _user(tmp_path), "-k", "crash/ or ok/naive", "--tfperf-no-profile",
                  "--tfperf-no-report")
    assert proc.returncode == 1
    assert "crash/as_given failed: worker process" in proc.stdout and "killed by SIGSEGV" in proc.stdout
    data = json.loads((tmp_path / "results" / "r" / "benchmarks.json").read_text())
    assert [b["extra_info"]["variant"] for b in data["benchmarks"]] == ["naive"]  # the next block ran
    assert not _workers_left()


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_stopped_run_leaves_no_worker_behind(tmp_path, how):
    """SIGTERM (a timeout, a CI runner) ends the run as Ctrl-C does; even SIGKILL of pytest, which runs no cleanup,
    takes the workers with it (they die with their parent)."""
    import signal
    import time

    env = dict(os.environ, PYTHONPATH=str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "pytest", "bench", "--benchmark-only", "--tfperf-size", "smoke", "-q",
           "-p", "no:cacheprovider", "--tfperf-results", str(tmp_path / "results"), "--tfperf-run-id", "r",
           "--tfperf-no-profile", "-k", "cpu/ or light/"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not _workers_left() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _workers_left(), "the run started a worker"
    time.sleep(2)  # the worker is busy measuring a block
    proc.send_signal(getattr(signal, how))
    out, _ = proc.communicate(timeout=120)
    for _ in range(50):  # a killed parent's worker gets its signal from the kernel at once; allow a moment
        if not _workers_left():
            break
        time.sleep(0.1)
    assert not _workers_left(), out[-2000:]
    if how == "SIGTERM":
        assert proc.returncode == 2, out[-2000:]  # pytest's "interrupted"
        data = json.loads((tmp_path / "results" / "r" / "benchmarks.json").read_text())
        assert data["tfperf"]["interrupted"] is True


def test_leftover_checks_see_this_sessions_processes_only():
    """Another tfperf run on the machine (no session tag) is not this session's leftover; a tagged one is."""
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)", "tfperf.measure.worker"]
    other = subprocess.Popen(sleeper, env={k: v for k, v in os.environ.items() if k != SESSION_TAG})
    ours = subprocess.Popen(sleeper)
    try:
        left = _workers_left()
        assert len(left) == 1  # ours only
    finally:
        for p in (other, ours):
            p.kill()
            p.wait()
    assert _workers_left() == []


def test_a_selection_that_matches_nothing_leaves_no_run_folder(tmp_path):
    proc = _bench(tmp_path, "--tfperf-no-profile", "--tfperf-no-report", "-k", "no_such_variant_anywhere")
    assert proc.returncode == 5, proc.stdout[-2000:] + proc.stderr[-2000:]  # pytest's "no tests collected"
    assert not (tmp_path / "results" / "r").exists()


SLOW = """
import time
import tensorflow as tf
import tfperf

def _wait(x):
    time.sleep(0.03)  # a slow element: every pass of this pipeline lasts about half a second
    return x

def numbers():
    return tf.data.Dataset.range(16).map(lambda i: tf.py_function(_wait, [tf.cast(i, tf.float32)], tf.float32))

slow = tfperf.pipeline("slow", tfperf.Stages(source=numbers, map=lambda x: x + 1.0, batch_size=4),
                       variants=("naive", "prefetch"))
"""


def test_a_run_says_where_it_is_in_every_phase_and_while_a_phase_lasts(tmp_path):
    """Progress lines: the block's place among the run's, each phase as it starts (build, warm-up, rounds,
    profile), another line while one phase lasts longer than TFPERF_PROGRESS_EVERY seconds (here 0.2), and, after
    the first block, an estimate of the time left. Nothing about them is timed: the test counts lines."""
    (tmp_path / "slow_bench.py").write_text(SLOW)
    proc = _bench(tmp_path, "--tfperf-scenarios", str(tmp_path / "slow_bench.py"), "--tfperf-scenarios",
                  "tfperf.builtins.pipelines:light", "-k", "slow/naive or slow/prefetch or light/naive",
                  "--tfperf-no-report", env={"TFPERF_PROGRESS_EVERY": "0.2"})
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    lines = [ln for ln in out.splitlines() if ln.startswith("tfperf:") and "process 1/1" in ln]
    assert any(ln.startswith("tfperf: [block 1/2] ") for ln in lines), lines
    assert any(ln.startswith("tfperf: [block 2/2] ") and "left" in ln for ln in lines), lines
    phases = [ln.split(": ")[2].split(" ")[0] for ln in lines if ln.startswith("tfperf:   ")]
    assert {"build", "warm-up", "rounds", "profile"} <= set(phases), phases
    slow = [ln for ln in lines if ln.startswith("tfperf:   slow")]
    assert len(slow) > len({ln.split(": ")[2].split(" ")[0] for ln in slow}), slow  # a phase said more than once
    assert not _workers_left()


def test_a_budget_gives_later_blocks_fewer_rounds_and_says_so(tmp_path):
    """Past the pace that fits --tfperf-budget, a block gets fewer rounds (never under 3): the rows show it, the
    run's tfperf.budget records what each block got, and the terminal says which blocks were cut."""
    proc = _bench(tmp_path, *_ids("light/naive", "step/naive"), "--tfperf-rounds", "5", "--tfperf-budget", "1s",
                  "--tfperf-no-profile", "--tfperf-no-report")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "results" / "r" / "benchmarks.json").read_text())
    got = {b["extra_info"]["scenario"]: b["extra_info"]["rounds_per_process"] for b in data["benchmarks"]}
    first, second = (s for s, _ in (i.split("/") for i in data["tfperf"]["selection"]))
    assert got[first] == [5] and got[second] == [3], got  # the first block sets the pace, the second is cut
    budget = data["tfperf"]["budget"]
    assert budget["seconds"] == 1 and budget["spent_s"] > 1
    assert budget["blocks"][f"{second}/{second}"]["rounds"] == 3 and budget["blocks"][f"{second}/{second}"]["of"] == 5
    assert f"tfperf: budget: {second} gets 3 rounds a process instead of 5" in proc.stdout
    assert "over it; fewer rounds for " in proc.stdout


@pytest.mark.parametrize("given", ["soon", "0", "5d", "1e3"])
def test_a_budget_that_is_not_a_time_is_one_line(tmp_path, given):
    proc = _bench(tmp_path, *_ids("light/naive"), "--tfperf-budget", given)
    assert proc.returncode == 4 and "tfperf: --tfperf-budget takes a time such as 540, 540s or 9m" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "results" / "r").exists()


def test_the_budget_counts_only_the_blocks_still_to_measure(tmp_path):
    """The budget's projection (and the progress line's time left) counts the blocks not yet measured. It used to
    count every block whose members were not all rows, and a block's null-pair twin (and now its reference
    workload) never is one, so finished blocks stayed in the projection and later blocks were cut for time that
    was not needed (a default run: 381 s of a 540 s budget spent, five blocks cut to 3 rounds)."""
    from tfperf.api.base import SIZES
    from tfperf.measure.harness import Harness
    from tfperf.measure.settings import Settings
    from tfperf.runtime.profiling import TracerLevels

    settings = Settings(size=SIZES["default"], run_dir=tmp_path, profile=False, profile_steps=1,
                        levels=TracerLevels(), report=False, processes=2, budget_s=100.0)
    h = Harness(config=None, settings=settings, registry=None)
    said = []
    h._say = said.append
    members = [("a", "a", True), ("b", "b", True), ("a", "a~twin", False), ("~reference", "~reference", False)]
    for sc in ("first", "second"):
        for v, _, _ in members:
            h._blocks[(sc, v)] = (sc, sc, members)
    h._results.update({("first", "a"): {}, ("first", "b"): {}})
    h._done.add(("first", "first"))
    # what the first block cost: 8 units (4 members x 2 processes), 1 s each beside their rounds, 0.5 s a round
    h._cost.update(round_s=20.0, rounds=40, fixed_s=8.0, units=8)
    h._began -= 60.0  # 40 s of the budget left: the second block's 8 units fit 4 rounds (8 x (1 + 4 x 0.5) = 24 s)
    assert h._rounds_for(h._blocks[("second", "a")], 5) == 5  # 8 x (1 + 5 x 0.5) = 28 s also fits
    h._began -= 20.0  # 20 s left: 8 x (1 + R x 0.5) <= 20 gives R = 3
    assert h._rounds_for(h._blocks[("second", "a")], 5) == 3
    assert said == ["tfperf: budget: second gets 3 rounds a process instead of 5 (the rest of the run would take "
                    "about 28 s at this pace; 20 s left of 100 s)"]


def test_the_temporary_folders_of_a_killed_run_are_swept_by_the_next_worker(tmp_path):
    """A SIGKILL of the run leaves its workers' temporary folders (nothing runs after it); the next worker started
    on the machine removes every such folder whose process is gone, and nothing else."""
    from tfperf.measure import pool

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = tmp_path / f"tfperf-w1-{gone.pid}-abc_123"
    stale.mkdir()
    (stale / "__autograph_generated_file1.py").write_text("")
    live = tmp_path / f"tfperf-w2-{os.getpid()}-def456"
    live.mkdir()
    (tmp_path / "tfperf-cache").mkdir()
    (tmp_path / f"tfperf-w1-{gone.pid}-file").write_text("")  # not a folder: not ours to remove
    pool.sweep(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "tfperf-cache", f"tfperf-w1-{gone.pid}-file"])
