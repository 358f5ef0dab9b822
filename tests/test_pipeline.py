"""Pipeline scenarios run what their names say, proven from the profiler trace of what actually ran; the stages and
the dataset builders make the matrix a user's pipeline needs."""

from pathlib import Path

import pytest
import tensorflow as tf

import tfperf
from tfperf.api.base import ScenarioError
from tfperf.builtins import pipelines as builtin
from tfperf.results import traces
from tfperf.runtime import profiling
from tfperf.runtime.build import runnable


def _ran(sc, variant: str, size, tmp_path: Path) -> dict:
    run = runnable(sc, sc.variant(variant), size)
    run.run_round()  # warm, so AUTOTUNE has had a pass
    cap = profiling.capture(run, tmp_path / variant, steps=6)
    return traces.tf_data_stats(cap.xplane)


def test_naive_runs_sequential_without_prefetch_and_best_runs_both(smoke, tmp_path):
    naive = _ran(builtin.light, "naive", smoke, tmp_path)["iterators"]
    assert "Iterator::Map" in naive and "Iterator::BatchV2" in naive
    assert not any(("ParallelMap" in i or "Prefetch" in i or "MapAndBatch" in i) for i in naive), naive

    best = _ran(builtin.light, "parallel_prefetch", smoke, tmp_path)
    assert "Iterator::ParallelMapV2" in best["iterators"] and "Iterator::Prefetch" in best["iterators"]
    chosen = {k.split("::")[-1]: v for k, v in best["autotune"].items()}
    assert int(chosen["ParallelMapV2"]["parallelism"][-1]) >= 1  # the width AUTOTUNE picked is in the trace
    assert chosen["ParallelMapV2"]["autotune"] == ["true"]
    assert "buffer_limit" in chosen["Prefetch"]


def test_tf_defaults_rewrites_the_naive_code(smoke, tmp_path):
    """The trap the naive variant's Options avoid: by default TF 2.21 fuses and parallelizes `map`."""
    ran = _ran(builtin.light, "tf_defaults", smoke, tmp_path)["iterators"]
    assert "Iterator::Map" not in ran
    assert any("MapAndBatch" in i or "ParallelMap" in i for i in ran), ran


@pytest.mark.parametrize("case", [f"{sc.name}/{v.name}" for sc in (builtin.light, builtin.cpu, builtin.latency,
                                                                    builtin.step) for v in sc.variants])
def test_every_builtin_variant_delivers_its_round(case, smoke):
    sc = getattr(builtin, case.split("/")[0])
    v = sc.variant(case.split("/")[1])
    run = runnable(sc, v, smoke)
    assert run.run_round() == run.examples_per_round > 0
    opts = run.info["tf_data_options"]
    if v.tf_defaults:
        assert opts["static_optimizations"] == "tf.data defaults"
    else:
        assert opts["map_parallelization"] is False and opts["inject_prefetch"] is False


def _user_stages(**extra):
    def source():
        return tf.data.Dataset.range(200).map(lambda i: (tf.cast(i, tf.float32), i % 3))
    return tfperf.Stages(source=source, map=lambda x, y: (x * 2.0, y), batch_size=16, **extra)


def test_stages_give_the_matrix_their_stages_allow():
    plain = tfperf.pipeline("plain", _user_stages())
    names = [v.name for v in plain.variants]
    assert names == ["naive", "tf_defaults", "parallel_autotune", "prefetch", "parallel_prefetch", "cache"]
    full = tfperf.pipeline("full", tfperf.Stages(files=["a", "b"], map=lambda r: r, batch_map=lambda r: r,
                                                 batch_size=4), widths=(3,), shuffles=(50,), batch_sizes=(8,))
    names = [v.name for v in full.variants]
    for expected in ("vectorized", "interleave_parallel", "parallel_3", "shuffle_50", "batch_8"):
        assert expected in names
    assert full.variant("shuffle_50").more_work and full.variant("vectorized").baseline == "parallel_prefetch"
    kept = tfperf.pipeline("kept", _user_stages(), variants=("naive", "cache"))
    assert kept.variant("cache").baseline == "naive"  # its own baseline left out: the nearest kept ancestor


def test_a_user_pipeline_runs_every_variant_and_counts_its_source(smoke):
    sc = tfperf.pipeline("mine", _user_stages(after_cache=lambda x, y: (x + 1.0, y)))
    for v in sc.variants:
        run = runnable(sc, v, smoke)
        assert run.run_round() == run.examples_per_round == 200, v.name
        run.scale(2, 3)
        assert run.run_round() == run.examples_per_round == 1200, v.name


def test_versions_follow_the_definition():
    a = tfperf.pipeline("v", _user_stages())
    b = tfperf.pipeline("v", _user_stages(), widths=(4,))
    assert a.version == tfperf.pipeline("v", _user_stages()).version and a.version != b.version


def test_an_opaque_dataset_gets_the_options_matrix(smoke, tmp_path):
    def factory():
        return tf.data.Dataset.range(96).map(lambda i: tf.cast(i, tf.float32)).batch(8)
    sc = tfperf.dataset("opaque", factory)
    names = {v.name for v in sc.variants}
    assert {"as_given", "rewrites_off", "map_parallelization", "inject_prefetch", "autotune_off", "autotune_cpu_1",
            "autotune_ram_64mb", "threadpool_1", "nondeterministic", "prefetch", "cache"} <= names
    for v in sc.variants:
        run = runnable(sc, v, smoke)
        assert run.run_round() == run.examples_per_round == 96, v.name
    off = runnable(sc, sc.variant("rewrites_off"), smoke)
    assert off.dataset.options().experimental_optimization.map_parallelization is False
    one = runnable(sc, sc.variant("threadpool_1"), smoke)
    assert one.dataset.options().threading.private_threadpool_size == 1
    ran = _ran(sc, "prefetch", smoke, tmp_path)["iterators"]
    assert any("Prefetch" in i for i in ran), ran


@pytest.mark.parametrize("factory, message", [
    (lambda: [1, 2, 3], "returned list, expected a tf.data.Dataset"),
    (lambda: 1 / 0, "raised ZeroDivisionError: division by zero"),
])
def test_a_bad_dataset_factory_says_which_and_why(smoke, factory, message):
    sc = tfperf.dataset("bad", factory)
    with pytest.raises(ScenarioError, match=message) as info:
        runnable(sc, sc.variants[0], smoke)
    assert str(info.value).startswith("scenario bad: dataset factory") and "\n" not in str(info.value)


def test_a_pass_tears_its_iterator_down_after_the_clock(smoke):
    """The worker times `run_pass` alone; the pass's iterator is torn down in `after_round`, which the worker calls
    after the clock stops, and each teardown is recorded apart (they can stall on TF's autotune thread)."""
    from tfperf.measure.block import Member

    sc = builtin.latency
    m = Member(sc, sc.variant("naive"), "latency/naive", True)
    m.runnable = runnable(sc, m.variant, smoke)
    m.runnable.scale(3)
    m.passes = 3
    m.timed(one_pass=True)
    assert m.runnable._spent.held == 0  # nothing left alive after the pass
    m.timed()  # a whole round: its 3 iterators, each torn down once the round's clock stopped
    assert m.runnable._spent.held == 0
    teardown = m.runnable.measured()["iterator_teardown_s"]
    assert teardown["count"] == 4 and teardown["max"] >= teardown["median"] > 0


def test_more_passes_keep_the_built_pass(smoke):
    """The calibration adds passes of the same pass: the dataset, its traced drain and a filled cache stay, so no
    warm-up round is owed (`warm_after_scale`); a different pass length rebuilds and owes one."""
    sc = builtin.latency
    run = runnable(sc, sc.variant("cache"), smoke)
    one = run.run_round()
    dataset, drain = run.dataset, run._drain
    run.scale(3)
    assert not run.warm_after_scale and run.dataset is dataset and run._drain is drain
    assert run.run_round() == run.examples_per_round == 3 * one
    run.scale(2, 2)
    assert run.warm_after_scale and run.dataset is not dataset
    assert run.run_round() == run.examples_per_round == 4 * one
    run.close()
