"""The results schema, one module for the side that writes a run and the side that reads it.

A run is pytest-benchmark's own JSON (``benchmarks[].stats`` holds every timed round) plus:

- per benchmark, ``extra_info``: what the row is and what was measured. :data:`FIELDS` are the keys every report
  reads (a reader gives each row every one of them, None where a run did not write it, so no report has to
  probe a row); :data:`NUMERIC` are those that must be numbers;
- per run, the top-level ``tfperf`` section: :data:`SECTION` lists its keys, :func:`section` builds it.
"""

from __future__ import annotations

from typing import Any

SCHEMA = 1

FIELDS = ("scenario", "variant", "kind", "group", "scenario_doc", "baseline", "description", "status", "reason",
          "examples", "examples_per_sec", "batch_size", "device", "size", "tf_version", "suite_version",
          "scenario_version", "cost", "loop", "model", "strategy", "precision", "input", "input_variant",
          "bound_variant", "steps", "step_time_ms", "more_work", "speedup", "speedup_lo", "speedup_hi",
          "input_overhead", "input_overhead_lo", "input_overhead_hi", "unstable", "unstable_reasons", "cv",
          "warmup_s", "busy", "processes", "ideal_examples_per_sec", "ideal_efficiency", "latency_width",
          "simulator_cpu_us", "workers", "mode", "dispatcher", "scaling_ideal", "scaling_efficiency",
          "scaling_efficiency_lo", "scaling_efficiency_hi", "allreduce_share", "allreduce_ms_per_step",
          "job_start_s", "cluster_start_s", "cpu_cores_busy", "client_cpu_us_per_example",
          "cluster_cpu_us_per_example", "process_cpu_per_s", "speedup_p", "input_overhead_p", "interval_method",
          "ab_side", "ab_variant", "ab_spec", "ab_side_version")

NUMERIC = ("examples", "examples_per_sec", "batch_size", "steps", "step_time_ms", "speedup", "speedup_lo",
           "speedup_hi", "input_overhead", "input_overhead_lo", "input_overhead_hi", "cv", "warmup_s",
           "ideal_examples_per_sec", "ideal_efficiency", "scaling_ideal", "scaling_efficiency",
           "scaling_efficiency_lo", "scaling_efficiency_hi", "allreduce_share", "allreduce_ms_per_step",
           "job_start_s", "cluster_start_s", "cpu_cores_busy", "client_cpu_us_per_example",
           "cluster_cpu_us_per_example", "process_cpu_per_s", "speedup_p", "input_overhead_p")

STATS = ("median", "mean", "stddev", "iqr", "q1", "q3", "min", "max")  # pytest-benchmark's, read from stats

# A row as the reader gives it: the fields above, the objects below (an empty dict where missing), the rounds'
# process tags, and the timing columns from pytest-benchmark's stats.
OBJECTS = ("knobs", "profile", "tf_data_options")
TIMING = ("median_s", "mean_s", "stddev_s", "iqr_s", "q1_s", "q3_s", "rounds", "min_s", "max_s", "times")
COLUMNS = ("run", "name", "fullname", *FIELDS, *OBJECTS, "round_process", *TIMING)

SECTION = ("schema", "run_id", "size", "suite_version", "scenario_versions", "scenarios", "scenario_errors",
           "command", "profiling", "processes", "rounds_per_process", "min_round_s", "seed", "selection",
           "interrupted", "unmeasured", "profiles", "null_pairs", "worker_crashes", "python", "budget", "references")
ADDED = ("budget", "references")  # keys that runs written before them lack (readers take them as missing)


def section(**values: Any) -> dict[str, Any]:
    """The run's ``tfperf`` section: exactly the keys of :data:`SECTION` (a missing or unknown one is a bug of the
    writer, raised here rather than found by a reader)."""
    values.setdefault("schema", SCHEMA)
    missing, unknown = set(SECTION) - set(values), set(values) - set(SECTION)
    if missing or unknown:
        raise ValueError(f"tfperf section: missing {sorted(missing)}, unknown {sorted(unknown)}")
    return {key: values[key] for key in SECTION}
