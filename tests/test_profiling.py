"""Captured fit and custom-loop traces give step times and an input-bound figure through xprof."""

import pytest

from tfperf.builtins.models import mlp
from tfperf.results import traces
from tfperf.runtime import profiling
from tfperf.runtime.build import runnable


@pytest.mark.parametrize("variant", ["fit-naive", "function-naive"])
def test_capture_has_steps_and_input_share(variant, smoke, tmp_path):
    run = runnable(mlp, mlp.variant(variant), smoke)
    run.run_round()
    cap = profiling.capture(run, tmp_path / variant, steps=8)
    assert cap.xplane.is_file() and cap.steps_marked == 8
    summary = traces.verify(cap.xplane, cap.steps_marked)
    assert summary["steps"] >= 6
    assert summary["step_ms"] > 0
    assert 0 <= summary["input_percent"] <= 100 and summary["input_ms"] > 0
    assert tmp_path.joinpath(variant, "plugins", "profile").is_dir()  # a TensorBoard profile run


def test_verify_rejects_a_trace_without_steps(tmp_path):
    bogus = tmp_path / "x.xplane.pb"
    bogus.write_bytes(b"not a trace")
    with pytest.raises(traces.TraceError):
        traces.verify(bogus, 10)
    with pytest.raises(traces.TraceError, match="missing"):
        traces.verify(tmp_path / "nope.xplane.pb", 10)
