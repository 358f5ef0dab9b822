"""`tfperf tune`: the space keeps what a model trains on, the model says what its physics say, the command finds
and proves a configuration end to end, and bad input is one line with nothing lost."""

import dataclasses
import json
import subprocess
import sys

import pytest

from tfperf.analysis import tuning
from tfperf.api import tune as tune_api
from tfperf.api.base import AUTOTUNE, ScenarioError

from .conftest import REPO
from .test_bench import _workers_left

MS = 1e-3


def facts(**over) -> tuning.Facts:
    """A CPU-bound pipeline on 2 cores: 4 ms of map per batch, a little source and batching, no consumer."""
    base = dict(cores=2, batch_size=64, examples=4096, source_s=0.2 * MS, map_s=4 * MS, map_cpu=4 * MS,
                batch_s=0.1 * MS, consumer_s=0.05 * MS, consumer_cpu=0.05 * MS, element_bytes=1000,
                ram_budget=1 << 30, written_s=4.35 * MS, bound_s=0.05 * MS)
    base.update(over)
    return tuning.Facts(**base)


def t(knobs: tuning.Knobs, f: tuning.Facts) -> float:
    return tuning.predict(knobs, f).seconds_per_batch


# ---- the model -------------------------------------------------------------------------------------------

def test_the_pipeline_as_written_is_predicted_as_the_sum_of_its_stages():
    f = facts()
    assert t(tuning.AS_WRITTEN, f) == pytest.approx(f.source_s + f.map_s + f.batch_s + f.consumer_s)


def test_a_cpu_bound_map_gains_the_cores_and_no_more():
    f = facts()
    guide, wide = t(tuning.GUIDE, f), t(tuning.Knobs(map_parallel=8, prefetch=AUTOTUNE), f)
    assert guide == pytest.approx(t(tuning.AS_WRITTEN, f) / 2, rel=0.1)  # two cores
    assert wide == pytest.approx(guide, rel=0.01)  # width beyond the cores buys nothing on a CPU-bound map


def test_a_map_that_waits_gains_from_a_width_above_the_cores_and_autotune_stops_at_the_cores():
    f = facts(map_s=30 * MS, map_cpu=2 * MS)  # a remote read: 30 ms wall, 2 ms of CPU
    guide, wide = t(tuning.GUIDE, f), t(tuning.Knobs(map_parallel=8, prefetch=AUTOTUNE), f)
    assert guide == pytest.approx(15 * MS, rel=0.05)
    assert wide == pytest.approx(30 * MS / 8, rel=0.05)
    no_cache = dataclasses.replace(f, random_in_map=("RandomUniform in the map",))  # else a cache beats every width
    assert tuning.rank(tuning.space(no_cache), no_cache)[0][0].map_parallel == 8


def test_parallel_threads_gain_only_the_cores_they_really_get():
    f = facts(effective_cores=1.25)  # two vCPUs that are hyperthreads of one core
    assert t(tuning.GUIDE, f) == pytest.approx(t(tuning.AS_WRITTEN, f) / 1.25, rel=0.1)


def test_a_parallel_map_whose_hand_over_costs_more_than_its_work_is_predicted_slower():
    f = facts(map_s=0.5 * MS, map_cpu=0.5 * MS, parallel_extra_s=1.0 * MS)
    assert t(tuning.GUIDE, f) > t(tuning.AS_WRITTEN, f)


def test_prefetch_overlaps_the_consumer_and_without_it_the_two_add_up():
    f = facts(consumer_s=5 * MS, consumer_cpu=0.5 * MS)  # a consumer that mostly waits (an accelerator)
    seq_pre = t(tuning.Knobs(prefetch=AUTOTUNE), f)
    assert seq_pre == pytest.approx(max(f.source_s + f.map_s + f.batch_s, f.consumer_s), rel=0.01)
    assert t(tuning.AS_WRITTEN, f) == pytest.approx(f.source_s + f.map_s + f.batch_s + f.consumer_s, rel=0.01)
    assert tuning.predict(tuning.GUIDE, f).limit == "consumer"


def test_a_cache_removes_source_and_map_and_keeps_the_after_cache_stage():
    f = facts(after_s=1 * MS, cache_read_s=0.1 * MS)
    assert t(tuning.Knobs(cache=True), f) == pytest.approx(0.1 * MS + 1 * MS + f.batch_s + f.consumer_s)


@pytest.mark.parametrize("measured_ms", [2.3, 3.0, 3.6, 6.0])
def test_calibration_makes_the_model_reproduce_the_measured_parallel_map(measured_ms):
    f = facts()  # as written 4.35 ms; two ideal cores would give about 2.2 ms
    fitted = tuning.calibrate(f, measured_ms * MS)
    assert t(tuning.Knobs(map_parallel=2), fitted) == pytest.approx(measured_ms * MS, rel=0.02)
    assert 1.0 <= fitted.effective_cores <= 2 and fitted.parallel_extra_s >= 0
    assert t(tuning.AS_WRITTEN, fitted) == pytest.approx(t(tuning.AS_WRITTEN, f), rel=0.02)  # as written unchanged


# ---- the space --------------------------------------------------------------------------------------------

def test_no_cache_after_a_random_map_nor_beyond_the_ram_budget():
    assert any(k.cache for k in tuning.space(facts()))
    random = facts(random_in_map=("ShuffleDatasetV3 in the source",))
    assert not any(k.cache for k in tuning.space(random))
    assert "freeze one draw" in tuning.cache_refusal(random)
    big = facts(element_bytes=1 << 20, examples=4096, ram_budget=1 << 30)  # 4 GiB of elements, 1 GiB budget
    assert not any(k.cache for k in tuning.space(big))
    assert "RAM budget" in tuning.cache_refusal(big)


def test_order_and_batch_size_change_only_with_consent():
    f = facts()
    best = tuning.Knobs(map_parallel=AUTOTUNE, prefetch=AUTOTUNE)
    assert all(k.deterministic and k.batch_size is None for k in tuning.space(f) + tuning.tweaks(best, f))
    consented = tuning.tweaks(best, f, allow_nondeterministic=True, allow_batch_size=True)
    assert any(not k.deterministic for k in consented) and any(k.batch_size == 128 for k in consented)


def test_the_neighbours_of_a_confirmed_best_are_the_next_widths_and_prefetch_toggled():
    f = facts()
    near = tuning.neighbours(tuning.Knobs(map_parallel=4, prefetch=AUTOTUNE), f)
    assert {k.map_parallel for k in near} == {2, 8, 4} and any(k.prefetch is None for k in near)
    assert all(k.cache is False for k in near)


def test_vectorized_and_interleave_only_where_the_stages_give_them():
    plain = tuning.space(facts())
    assert not any(k.vectorized or k.interleave for k in plain)
    rich = tuning.space(facts(vector_s=0.5 * MS, vector_cpu=0.5 * MS, files=8))
    assert any(k.vectorized for k in rich) and any(k.interleave == "parallel" and k.cycle == 4 for k in rich)
    assert not any(k.cache and (k.vectorized or k.interleave) for k in rich)


def test_candidate_names_are_variant_names_and_distinct():
    f = facts(vector_s=0.5 * MS, files=8)
    names = [k.name() for k in tuning.space(f) + tuning.tweaks(tuning.GUIDE, f, True, True)]
    assert len(names) == len(set(names))
    block = tune_api.block(_light(), [(k.name(), {}) for k in tuning.space(f)[:3]])
    assert [v.name for v in block.variants][:3] == ["as_written", "bound", "guide"]


def test_a_tune_spec_round_trips_and_an_unknown_knob_is_one_line():
    text = tune_api.spec("my.py", "pipe", [("c1", {"map_parallel": 4})])
    assert tune_api.parse(text) == {"spec": "my.py", "scenario": "pipe", "candidates": [["c1", {"map_parallel": 4}]],
                                    "through_step": False, "training": []}
    assert tune_api.parse("my.py") is None
    with pytest.raises(ScenarioError, match="unknown knobs"):
        tune_api.variant("c", {"colour": "red"})
    with pytest.raises(ScenarioError, match="a tune SPEC is"):
        tune_api.parse("tune:[1, 2]")


def test_the_iterators_of_a_trace_map_to_their_stages():
    from tfperf.runtime.tune_probe import _stage_of

    root = "Iterator::Root::ForeverRepeat[0]::BatchV2"
    assert _stage_of(root, False) == "batch"
    assert _stage_of(root + "::Map", False) == "map"
    assert _stage_of(root + "::Map::FiniteTake::TensorSlice", False) == "source"
    assert _stage_of(root + "::Map", True) == "after"
    assert _stage_of(root + "::Map::Map", True) == "map"
    assert _stage_of(root + "::Map::Map::FlatMap::TFRecord", True) == "source"


def _light():
    from tfperf.builtins.pipelines import light

    return light


def test_the_bound_is_the_first_batch_repeated_as_often_as_a_pass_has_batches(smoke):
    import numpy as np

    from tfperf.api.pipelines import PipelineVariant
    from tfperf.runtime.datasets import StagesData

    data = StagesData(_light())
    ds, info = data.dataset_for(PipelineVariant(name="bound", from_memory=True), smoke)
    batches = list(ds)
    n = data.pass_examples(PipelineVariant(name="x"), smoke)
    assert len(batches) == -(-n // 128) and info["input"].startswith("memory")
    assert all(np.array_equal(b[0].numpy(), batches[0][0].numpy()) for b in batches)


# ---- the command ------------------------------------------------------------------------------------------

def _opaque(tmp_path, dataset: str, more: str = "") -> None:
    """opaque.py: a tfperf.dataset of `dataset` (an expression), and `more` lines."""
    (tmp_path / "opaque.py").write_text(f"import tensorflow as tf\nimport tfperf\n"
                                        f"opaque = tfperf.dataset('opaque', lambda: {dataset})\n{more}\n")


def _tune(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "tfperf", "tune", *args, "--results", str(tmp_path / "results")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_tune_finds_proves_and_prints_a_configuration(tmp_path):
    proc = _tune(tmp_path, "tfperf.builtins.pipelines:light", "--size", "smoke", "--run-id", "t")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "results" / "t"
    answer = json.loads((out / "tune.json").read_text())
    rec = answer["recommended"]
    assert rec and rec["name"] in answer["predicted"]
    assert "ds = ds.batch(128)" in rec["snippet"] and rec["snippet"] in proc.stdout
    for key in ("vs_as_written", "vs_guide", "vs_bound"):
        d = rec["measured"][key]
        assert d["lo"] <= d["speedup"] <= d["hi"]
    assert answer["bottleneck"]["stage"] == "map"  # light's cast-and-scale map: its per-element calls
    assert answer["model_check"] and all("error" in c for c in answer["model_check"])
    assert (out / "confirm-1" / "benchmarks.json").is_file()
    assert list((out / "traces" / "as_written").glob("plugins/profile/*/*.xplane.pb"))
    page = (out / "report.html").read_text()
    assert "Recommended: " + rec["name"] in page and "cdn" not in page.lower()
    assert answer["peak_rss_bytes"] < answer["ram_budget_bytes"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]  # nothing written outside the results folder
    assert not _workers_left()


@pytest.mark.slow
def test_bad_input_is_one_line_exit_2_and_keeps_what_was_measured(tmp_path):
    _opaque(tmp_path, "tf.data.Dataset.range(64).batch(8)", "on_opaque = tfperf.model('on_opaque', lambda: None, opaque)")
    (tmp_path / "broken.py").write_text("raise RuntimeError('the edit broke the file')\n")
    cases = [
        (("missing.py",), "tfperf tune: missing.py: no such file: missing.py"),
        (("broken.py",), "importing broken.py raised RuntimeError: the edit broke the file"),
        (("opaque.py:on_opaque",), "scenario on_opaque is a model scenario on an opaque dataset"),
        (("tfperf.builtins.pipelines",), "holds several scenarios"),
        (("tfperf.builtins.pipelines:nope",), "has no scenario 'nope'"),
        (("tfperf.builtins.pipelines:light", "--budget", "soon"), "--budget wants a time such as 5m"),
    ]
    for args, message in cases:
        proc = _tune(tmp_path, *args)
        assert proc.returncode == 2, (args, proc.stderr[-1000:])
        assert message in proc.stderr.strip().splitlines()[-1], (args, proc.stderr[-1000:])
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "results").exists()
    # a budget too small to confirm anything: one line, and the probe and the model's ranking are kept
    proc = _tune(tmp_path, "tfperf.builtins.pipelines:light", "--size", "smoke", "--budget", "2s", "--run-id", "b")
    assert proc.returncode == 2
    assert "too small a budget to confirm anything" in proc.stderr and "Traceback" not in proc.stderr
    kept = json.loads((tmp_path / "results" / "b" / "tune.json").read_text())
    assert kept["facts"]["written_s"] > 0 and kept["predicted"] and not kept.get("recommended")
    assert not _workers_left()


def test_the_tune_command_is_documented_in_the_readme():
    readme = (REPO / "README.md").read_text()
    assert "tfperf tune" in readme and "docs/tune.md" in readme
    assert dataclasses.is_dataclass(tuning.Facts)


@pytest.mark.slow
def test_a_model_is_tuned_through_its_own_training_step_then_its_loop(tmp_path):
    proc = _tune(tmp_path, "tfperf.builtins.models:mlp", "--size", "smoke", "--run-id", "m")
    assert proc.returncode == 0, proc.stderr[-2000:]
    answer = json.loads((tmp_path / "results" / "m" / "tune.json").read_text())
    assert answer["pipeline"] == "mlp-step"  # light's stages, with mlp's training step as the consumer
    training = answer["training"]
    # the pipeline's bound is the model's training step: within a factor of 3 of fit's own on one batch in memory
    step_us = 1e6 * answer["facts"]["bound_s"] / answer["facts"]["batch_size"]
    assert 1 / 3 < step_us / training["confirm"]["fit-memory"]["us_per_example"] < 3
    assert training["recommended"] in training["confirm"] and "fit-memory" in training["confirm"]
    written, tuned = training["overhead_as_written"], training["overhead_tuned"]
    assert written["speedup"] < tuned["speedup"]  # the tuned input is nearer the bound than the input as written
    assert training["code"] in proc.stdout
    assert "Training" in (tmp_path / "results" / "m" / "report.html").read_text()
    assert not _workers_left()


@pytest.mark.slow
def test_an_opaque_dataset_gets_its_options_tried_says_what_it_cannot_reach_and_never_a_frozen_shuffle(tmp_path):
    _opaque(tmp_path, "tf.data.Dataset.range(4096).shuffle(1024, seed=1).map(lambda x: tf.cast(x, tf.float32) * 2.0)"
                      ".batch(64)")
    proc = _tune(tmp_path, "opaque.py", "--size", "smoke", "--run-id", "o")
    assert proc.returncode == 0, proc.stderr[-2000:]
    answer = json.loads((tmp_path / "results" / "o" / "tune.json").read_text())
    assert "inside the factory" in answer["not_in_space"][0] and "not tried: map width" in proc.stdout
    assert any("ShuffleDataset" in n for n in answer["not_in_space"])  # a cache would freeze one order
    assert "cache" not in answer["confirm"] and "as_given" in answer["confirm"] and len(answer["confirm"]) >= 8
    assert answer["recommended"] is None or answer["recommended"]["snippet"].startswith("ds = your_factory()")
    assert not _workers_left()


def test_the_evaluation_pipelines_load_and_its_table_sums_up():
    import importlib.util

    proc = subprocess.run([sys.executable, "-m", "tfperf", "list", "scripts/tune_pipelines.py"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-1000:]
    for name in ("generator", "jitter", "shuffled", "bigcache", "cheap", "text", "train"):
        assert f"\n{name} (pipeline" in "\n" + proc.stdout
    spec = importlib.util.spec_from_file_location("tune_eval", REPO / "scripts" / "tune_eval.py")
    ev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ev)
    row = {"pipeline": "jitter", "space": 18, "sweep_best": "a", "tuned": "b", "tuned_vs_best": (0.9, 0.8, 1.0, 0.1),
           "tuned_vs_guide": (2.0, 1.8, 2.2, 0.0), "best_vs_guide": (2.2, 2.0, 2.4, 0.0), "tune_s": 30.0,
           "sweep_s": 60.0, "bottleneck_named": "map", "bottleneck_sweep": "map", "bottleneck_agrees": True,
           "tuned_vs_bound": (0.5, 0.4, 0.6, 0.0), "best_vs_bound": (0.5, 0.4, 0.6, 0.0)}
    text = ev.table([row, {**row, "pipeline": "light", "tuned_vs_best": (1.0, 0.9, 1.1, 0.5)}])
    assert "tuned/best: median 0.95, worst 0.90" in text and "pathological ones: median 2.00" in text
    assert "bottleneck agrees 2 of 2" in text
    k = ev.knobs_of({"map_parallel": 8, "prefetch": -1, "options": [["threading.private_threadpool_size", 2]]})
    assert k.name() == "map_8-pre_auto-private_threadpool_size_2"
