"""The pipeline scenario runs what its names say, proven from the profiler trace of what actually ran."""

from pathlib import Path

import pytest

from reports import traces
from scenarios import pipeline, profiling
from scenarios.registry import REGISTRY


def _ran(variant: str, size, tmp_path: Path) -> dict:
    run = pipeline.PipelineRun(pipeline.SCENARIO.variant(variant), size)
    run.run_round()  # warm, so AUTOTUNE has had a pass
    cap = profiling.capture(run, tmp_path / variant, steps=6)
    return traces.tf_data_stats(cap.xplane)


def test_naive_runs_sequential_without_prefetch_and_best_runs_both(smoke, tmp_path):
    naive = _ran("light-naive", smoke, tmp_path)["iterators"]
    assert "Iterator::Map" in naive and "Iterator::BatchV2" in naive
    assert not any(("ParallelMap" in i or "Prefetch" in i or "MapAndBatch" in i) for i in naive), naive

    best = _ran("light-parallel_prefetch", smoke, tmp_path)
    assert "Iterator::ParallelMapV2" in best["iterators"] and "Iterator::Prefetch" in best["iterators"]
    chosen = {k.split("::")[-1]: v for k, v in best["autotune"].items()}
    assert int(chosen["ParallelMapV2"]["parallelism"][-1]) >= 1  # the width AUTOTUNE picked is in the trace
    assert chosen["ParallelMapV2"]["autotune"] == ["true"]
    assert "buffer_limit" in chosen["Prefetch"]


def test_tf_defaults_rewrites_the_naive_code(smoke, tmp_path):
    """The trap the naive variant's Options avoid: by default TF 2.21 fuses and parallelizes `map`."""
    ran = _ran("light-tf_defaults", smoke, tmp_path)["iterators"]
    assert "Iterator::Map" not in ran
    assert any("MapAndBatch" in i or "ParallelMap" in i for i in ran), ran


@pytest.mark.parametrize("variant", [v.name for v in REGISTRY["pipeline"]])
def test_every_variant_delivers_its_round(variant, smoke):
    v = pipeline.SCENARIO.variant(variant)
    run = pipeline.PipelineRun(v, smoke)
    assert run.run_round() == run.examples_per_round > 0
    opts = run.info["tf_data_options"]
    if v.tf_defaults:
        assert opts["static_optimizations"] == "tf.data defaults"
    else:
        assert opts["map_parallelization"] is False and opts["inject_prefetch"] is False


def test_variants_are_data_with_known_baselines():
    names = {v.name for v in pipeline.VARIANTS}
    assert all(v.baseline in names for v in pipeline.VARIANTS if v.baseline)
    assert set(pipeline.TRAINING_INPUTS.values()) <= names
    with pytest.raises(AttributeError):
        pipeline.VARIANTS[0].batch_size = 1  # frozen
