"""The distributed scenarios: tf.data service clusters and MultiWorkerMirroredStrategy trainers as local processes,
what their variants measure and record, and what happens when a process is killed, a port is taken, a worker
never registers, a dispatcher is gone or an address is unreachable. Every test leaves no process behind."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest
import tensorflow as tf

import tfperf
from tfperf.api.distributed import EXTERNAL_ENV, service
from tfperf.procs.children import ClusterError
from tfperf.procs.net import free_port
from tfperf.procs.service import ServiceCluster
from tfperf.runtime.base import BlockContext
from tfperf.runtime.build import open_block, runnable

from .conftest import REPO
from .test_bench import _workers_left


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (psutil)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _gone(pids, wait_s: float = 10.0) -> bool:
    deadline = time.monotonic() + wait_s
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(_alive(p) for p in pids)


def _tiny(size):
    return tfperf.Stages(source=lambda: tf.data.Dataset.range(256), map=lambda x: x * 2, batch_size=8)


def test_a_service_cluster_starts_registers_and_stops_every_process():
    cluster = ServiceCluster(2)
    try:
        assert cluster.address.startswith("grpc://localhost:")
        assert len(cluster.worker_addresses) == 2
        assert all(_alive(p) for p in cluster.pids) and len(cluster.pids) == 3
        cluster.check()
    finally:
        cluster.stop()
    assert _gone(cluster.pids)


def test_service_variants_run_count_and_record_what_they_measured(smoke):
    sc = service("tiny_service", _tiny, workers=(1, 2))
    assert [v.name for v in sc.variants] == ["local", "parallel_epochs_1", "parallel_epochs_2",
                                              "distributed_epoch_1", "distributed_epoch_2"]
    assert sc.kind == "service" and sc.processes == 1
    assert sc.variant("parallel_epochs_2").baseline == "parallel_epochs_1"
    assert sc.variant("distributed_epoch_1").baseline == "local"
    block = open_block(sc, sc.variants)  # starts the 1- and 2-worker clusters, at once
    runs = []
    try:
        for v in sc.variants:
            run = runnable(sc, v, smoke, block)
            runs.append(run)
            run.before_round()
            assert run.run_round() == run.examples_per_round == run.batches * 8
            run.scale(2)
            assert run.run_round() == run.examples_per_round
            assert run.info["mode"] == (v.mode or "local") and run.info["workers"] == v.workers
        pe2 = runs[2].info
        assert pe2["scaling_ideal"] == 2 and pe2["dispatcher"].startswith("grpc://localhost:")
        assert runs[1].info["dispatcher"] == runs[3].info["dispatcher"]  # both modes share the 1-worker cluster
        pids = [p for r in runs for p in r.pids()]
        assert pids and all(_alive(p) for p in pids)
    finally:
        for r in runs:
            r.close()
        block.close()
    assert _gone(pids)


def test_a_port_already_in_use_is_one_line_and_starts_nothing():
    with socket.socket() as taken:
        taken.bind(("localhost", 0))
        taken.listen()
        port = taken.getsockname()[1]
        start = time.monotonic()
        with pytest.raises(ClusterError, match=rf"port {port} is already in use"):
            ServiceCluster(1, port=port)
        assert time.monotonic() - start < 5


def test_a_worker_that_never_registers_is_one_line_within_the_deadline():
    nowhere = f"localhost:{free_port()}"  # no dispatcher listens there
    start = time.monotonic()
    with pytest.raises(ClusterError, match=r"0 of 1 workers registered with the dispatcher at grpc://localhost:\d+ "
                                           r"within 3 s") as err:
        ServiceCluster(1, worker_dispatcher=nowhere, register_timeout_s=3)
    assert time.monotonic() - start < 60
    assert "\n" not in str(err.value)


def test_a_dispatcher_that_is_gone_fails_the_variant_at_once(smoke):
    sc = service("tiny_service", _tiny, workers=(1,), modes=("parallel_epochs",))
    block = open_block(sc, [sc.variant("parallel_epochs_1")])
    run = runnable(sc, sc.variant("parallel_epochs_1"), smoke, block)
    try:
        run.run_round()
        os.kill(run.cluster.dispatcher.pid, signal.SIGKILL)
        start = time.monotonic()
        with pytest.raises(ClusterError, match=r"tf.data service dispatcher \(pid \d+\) killed by SIGKILL"):
            for _ in range(100):
                run.before_round()
                run.run_round()
        assert time.monotonic() - start < 30
    finally:
        pids = run.pids()
        run.close()
        block.close()
    assert _gone(pids)


def test_the_only_worker_killed_mid_round_fails_at_once_instead_of_hanging(smoke):
    """TensorFlow's client waits for ever when the only worker of its job dies; the round watches the cluster."""
    sc = service("tiny_service", _tiny, workers=(1,), modes=("distributed_epoch",))
    block = open_block(sc, [sc.variant("distributed_epoch_1")])
    run = runnable(sc, sc.variant("distributed_epoch_1"), smoke, block)
    try:
        run.scale(200)
        victim = run.cluster.procs[1].pid
        threading.Timer(0.05, lambda: os.kill(victim, signal.SIGKILL)).start()
        start = time.monotonic()
        with pytest.raises(ClusterError, match=r"worker 1/1 \(pid \d+\) killed by SIGKILL; the cluster was stopped"):
            for _ in range(100):
                run.run_round()
        assert time.monotonic() - start < 30
        with pytest.raises(ClusterError, match="killed by SIGKILL"):  # and it stays failed, with its cause
            run.run_round()
    finally:
        pids = run.pids()
        run.close()
        block.close()
    assert _gone(pids)


def test_an_existing_service_runs_the_same_modes(smoke, monkeypatch):
    users = ServiceCluster(1)  # stands for the user's own cluster
    try:
        monkeypatch.setenv(EXTERNAL_ENV, users.address)
        sc = service("tiny_service", _tiny)
        assert [v.name for v in sc.variants] == ["local", "parallel_epochs_external", "distributed_epoch_external"]
        block = open_block(sc, [sc.variant("parallel_epochs_external")])
        run = runnable(sc, sc.variant("parallel_epochs_external"), smoke, block)
        try:
            assert run.run_round() == run.examples_per_round
            assert run.info["dispatcher"] == users.address and run.info["workers"] == "external"
            assert run.pids() == []  # not ours to stop
        finally:
            run.close()
            block.close()
        users.check()  # the user's cluster is left running
    finally:
        users.stop()


def _pytest_bench(tmp_path, *args, timeout=300, env=None):
    cmd = [sys.executable, "-m", "pytest", "bench", "--benchmark-only", "--tfperf-size", "smoke", "-q",
           "-p", "no:cacheprovider", "--tfperf-results", str(tmp_path / "results"), "--tfperf-run-id", "r", *args]
    return subprocess.run(cmd, cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("address, says", [
    ("grpc://localhost:{port}", r"dispatcher grpc://localhost:\d+ is not reachable within 5 s"),
    ("http://localhost:{port}", "is not grpc://HOST:PORT"),
])
def test_an_unreachable_or_malformed_service_address_is_one_line(tmp_path, address, says):
    start = time.monotonic()
    proc = _pytest_bench(tmp_path, "--tfperf-data-service", address.format(port=free_port()), timeout=120)
    assert time.monotonic() - start < 120
    assert proc.returncode == 4, proc.stdout[-1500:] + proc.stderr[-1500:]
    lines = [ln for ln in proc.stderr.splitlines() if "tfperf:" in ln]
    assert len(lines) == 1 and __import__("re").search(says, lines[0]), proc.stderr[-1500:]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "results" / "r").exists()


def test_multi_worker_training_runs_in_step_and_profiles_the_chief(smoke, tmp_path, monkeypatch):
    from tfperf.builtins.models import mlp
    from tfperf.results import traces
    from tfperf.runtime.profiling import TracerLevels

    sc = tfperf.multi_worker("mw", mlp)
    assert [(v.name, v.baseline) for v in sc.variants] == [("workers_1", None), ("workers_2", "workers_1")]
    # the trainers find the model scenario in the SPECs the block's context names
    run = runnable(sc, sc.variant("workers_2"), smoke, open_block(sc, (), BlockContext(specs=("builtins",))))
    try:
        assert run.info["replicas"] == 2 and run.batch_size == 2 * run.info["per_worker_batch"]
        assert run.run_round() == run.examples_per_round == run.steps * run.batch_size
        run.scale(2)
        assert run.run_round() == run.examples_per_round
        cap = run.capture(tmp_path / "trace", 6, TracerLevels())
        assert traces.verify(cap.xplane, cap.steps_marked)["steps"] >= 4
        assert traces.collective_ms(cap.xplane) > 0  # the all-reduce is in the chief's trace
        pids = run.pids()
        assert len(pids) == 2 and all(_alive(p) for p in pids)
    finally:
        run.close()
    assert _gone(pids)


def test_a_trainer_killed_mid_round_fails_the_round_at_once(smoke, monkeypatch):
    from tfperf.builtins.models import mlp

    sc = tfperf.multi_worker("mw", mlp)
    run = runnable(sc, sc.variant("workers_2"), smoke, open_block(sc, (), BlockContext(specs=("builtins",))))
    try:
        run.run_round()
        run.scale(500)
        victim = run.procs[1].pid
        threading.Timer(0.2, lambda: os.kill(victim, signal.SIGKILL)).start()
        start = time.monotonic()
        with pytest.raises(ClusterError, match=r"trainer 2/2 \(pid \d+\) killed by SIGKILL"):
            run.run_round()
        assert time.monotonic() - start < 30
    finally:
        pids = run.pids()
        run.close()
    assert _gone(pids)


def test_a_worker_killed_in_a_round_fails_its_variants_and_the_run_goes_on(tmp_path):
    proc = _pytest_bench(tmp_path, "-k", "service_latency/", "--tfperf-no-report", "-p", "tests.kill_plugin",
                         env={"TFPERF_KILL": "service_latency/parallel_epochs_1:worker:3"})
    assert proc.returncode == 1, proc.stdout[-3000:]  # the failed variants fail their tests
    data = json.loads((tmp_path / "results" / "r" / "benchmarks.json").read_text())
    failed = {u["extra_info"]["variant"]: u["extra_info"]["reason"] for u in data["tfperf"]["unmeasured"]}
    # both modes' 1-worker variants ran on the cluster that lost its worker
    assert set(failed) == {"parallel_epochs_1", "distributed_epoch_1"}, failed
    assert all("tf.data service worker 1/1" in r and "killed by SIGKILL" in r for r in failed.values()), failed
    ok = {b["extra_info"]["variant"] for b in data["benchmarks"]}
    assert {"local", "parallel_epochs_2", "parallel_epochs_4", "distributed_epoch_2", "distributed_epoch_4"} <= ok
    pids = [p for b in data["benchmarks"] for p in b["extra_info"].get("cluster_pids") or []]
    assert len(set(pids)) == 3 + 5  # the 2- and 4-worker clusters, recorded by their rows
    assert _gone(pids) and not _workers_left()
    assert "Traceback" not in proc.stdout


def _descendants(root: int) -> set[int]:
    """Every process below `root` in the process tree (psutil): the processes the run under test started."""
    try:
        return {c.pid for c in psutil.Process(root).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def test_ctrl_c_in_a_service_block_leaves_no_cluster_process_behind(tmp_path):
    cmd = [sys.executable, "-m", "pytest", "bench", "--benchmark-only", "--tfperf-size", "smoke", "-q",
           "-p", "no:cacheprovider", "--tfperf-results", str(tmp_path / "results"), "--tfperf-run-id", "r",
           "--tfperf-no-profile", "-k", "service_latency/"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: set[int] = set()
    deadline = time.monotonic() + 120
    while len(seen) < 12 and time.monotonic() < deadline:  # the worker, its forkserver, 3 dispatchers, 7 workers
        seen |= _descendants(proc.pid)
        time.sleep(0.2)
    assert len(seen) >= 12, "the run started its clusters"
    time.sleep(1)
    seen |= _descendants(proc.pid)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert _gone(seen), [p for p in seen if _alive(p)]
    assert not _workers_left(), out[-2000:]


def test_a_run_leaves_no_temporary_folder_behind(tmp_path, request):
    """A worker process is stopped by a signal, so neither multiprocessing (its forkserver's pymp-* folder, made
    by a service block) nor autograph (its generated sources) cleans up after it; each worker's temporary files
    go to a folder of its own, removed when it stops. Measured before: two or three pymp-* folders left in /tmp
    by every default run."""
    tmp = Path(tempfile.mkdtemp(prefix="tfperf-test-"))  # a short TMPDIR, as /tmp is (see pool.Worker)
    request.addfinalizer(lambda: shutil.rmtree(tmp, ignore_errors=True))
    cmd = [sys.executable, "-m", "pytest", "bench", "--benchmark-only", "--tfperf-size", "smoke", "-q",
           "-p", "no:cacheprovider", "--tfperf-results", str(tmp_path / "results"), "--tfperf-run-id", "r",
           "--tfperf-no-profile", "-k", "service_latency/"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TMPDIR": str(tmp)})
    assert proc.returncode == 0, proc.stdout[-2000:]
    left = sorted(p.name for p in tmp.iterdir())
    assert not [n for n in left if n.startswith(("pymp-", "tfperf-w", "__autograph_generated"))], left
