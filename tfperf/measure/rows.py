"""A benchmark's row from its block's records: pytest-benchmark's own Stats from every process's rounds, and the
``extra_info`` every report reads (what the row is, its pairs and speedups, its calibration, the machine's load,
the physics check). Rows are computed where they are measured; the intervals are the statistics module's."""

from __future__ import annotations

import statistics
from typing import Any

from tfperf.analysis import stats
from tfperf.api.base import Scenario, Size, Variant, fingerprint, source_of

from . import reference
from .block import TWIN

# What the measuring code is: a change to how rounds are scheduled, timed or turned into rows gives a new suite
# version, so `compare` knows two runs were not measured the same way.
MEASURING = ("tfperf.measure.block", "tfperf.measure.reference", "tfperf.measure.rows", "tfperf.measure.worker", "tfperf.measure.machine",
             "tfperf.runtime.base", "tfperf.analysis.stats")
SUITE_VERSION = fingerprint(*(source_of(m) for m in MEASURING))


INTERVAL_METHOD = ("t on process means, process component pooled over the block, plus the kind's measured "
                   "run-to-run component (stats.paired_test, stats.RUN_SD)")


def tf_version() -> str:
    import tensorflow as tf  # this process is the pytest one: TensorFlow is imported only once a row needs it

    return tf.__version__


def base_info(scenario: Scenario, variant: Variant, size: str) -> dict[str, Any]:
    """What every row says of itself, so reports need nothing but the row: its scenario (the group it
    competes in), kind, baseline and bound."""
    return {
        "scenario": scenario.name,
        "variant": variant.name,
        "kind": scenario.kind,
        "group": scenario.name,
        "description": variant.description,
        "scenario_doc": scenario.doc,
        "baseline": variant.baseline,
        "bound_variant": variant.bound,
        "more_work": variant.more_work,
        "requires": list(variant.requires),
        "knobs": variant.knobs(),
        **variant.knobs(),
        **scenario.info,
        "size": size,
        "tf_version": tf_version(),
        "suite_version": SUITE_VERSION,
        "scenario_version": scenario.version,
        "status": "running",
        **scenario.row_info(variant),
    }


def load_summary(loads: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"per_process": loads}
    for key in ("steal_share", "others_cpu_share", "loadavg_1m"):
        values = [x[key] for x in loads if key in x]
        if values:
            out[key] = max(values)
    out["busy"] = any(x.get("busy") for x in loads)
    return out


def assemble(scenario: Scenario, key: str, members: list, replies: dict[int, dict[str, Any]], error: str | None,
             processes: int) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]], tuple[float, int] | None,
                                       dict[str, Any] | None]:
    """Every process's reply for one block, merged per member: (records by variant name, the block's null pairs,
    the block's process-level variance component pooled over all its pairs, the reference workload's rounds as
    ``{"times", "process", "examples"}`` or None). A member's rounds from every process are kept together, each
    tagged with its process, in the same order for every member (so the reference's round i ran in the same
    block round as every member's round i)."""
    scenario_name = scenario.name
    by_name: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    loads = []
    for p, reply in sorted(replies.items()):
        loads.append({"process": p, **reply.get("load", {})})
        for m in reply["members"]:
            by_name.setdefault(m["name"], []).append((p, m))
    load = load_summary(loads)
    merged: dict[str, dict[str, Any]] = {}
    records: dict[str, dict[str, Any]] = {}
    null_pairs: list[dict[str, Any]] = []
    for variant_name, name, _selected in members:
        parts = by_name.get(name, [])
        bad = [m for _, m in parts if m["status"] != "ok"]
        rec: dict[str, Any]
        if error and len(parts) < processes:
            rec = {"status": "failed", "reason": error}
        elif bad:
            rec = {"status": bad[0]["status"], "reason": bad[0]["reason"]}
        else:
            rec = {"status": "ok", "times": [], "process": [], "order": [], "warmup_s": [], "load": load}
            shares = []  # every process's CPU share, not the last one's: each timed the same rounds
            for p, m in parts:
                rec["times"] += m["times"]
                rec["process"] += [p] * len(m["times"])
                rec["order"] += m["order"]
                rec["warmup_s"].append(m["warmup_s"])
                rec["calibration_s"] = m["calibration_s"]
                rec.update(examples=m["examples"], passes=m["passes"], repeat=m["repeat"], info=m["info"])
                if m.get("profile"):
                    rec["profile"] = m["profile"]
                if "process_cpu_per_s" in m["info"]:
                    shares.append(m["info"]["process_cpu_per_s"])
            if shares:
                rec["info"] = {**rec["info"], "process_cpu_per_s": statistics.fmean(shares),
                               "process_cpu_per_s_per_process": shares}
        rec["variant"] = variant_name
        merged[name] = rec
        if not name.endswith(TWIN) and name != reference.NAME:
            records[variant_name] = rec
    twins = [n for _, n, _ in members if n.endswith(TWIN)]
    pairs = [(side(merged[t]), side(merged[t[: -len(TWIN)]])) for t in twins
             if merged.get(t, {}).get("status") == "ok" and merged.get(t[: -len(TWIN)], {}).get("status") == "ok"]
    for name, rec in records.items():
        for partner in scenario.partners(scenario.variant(name)):
            if rec["status"] == "ok" and records.get(partner, {}).get("status") == "ok":
                pairs.append((side(rec), side(records[partner])))
    between = stats.pool_between([stats.pair_component(a, b) for a, b in pairs])
    for twin in twins:
        a, b = merged.get(twin[: -len(TWIN)]), merged.get(twin)
        if a and b and a["status"] == "ok" and b["status"] == "ok":
            est, lo, hi, p = stats.speedup(side(b), side(a), between)
            null_pairs.append({
                "scenario": scenario_name, "block": key, "variant": a["variant"], "speedup": est, "lo": lo,
                "hi": hi, "p": p, "a": side(a), "b": side(b), "load": load})
    ref = merged.get(reference.NAME)
    ref_rounds = side(ref) if ref and ref["status"] == "ok" else None
    return records, null_pairs, between, ref_rounds


def fill(benchmark: Any, scenario: Scenario, variant: Variant, rec: dict[str, Any], size: Size,
         partners: dict[str, dict[str, Any]], between: tuple[float, int] | None = None) -> None:
    """The row: pytest-benchmark's own Stats from the rounds of every process, and extra_info (speedups against
    the `partners` measured, by name, with the block's process-level component `between`; the physics check)."""
    benchmark._mode = "tfperf: timed in worker processes (tfperf.measure.worker)"  # the fixture counts as used
    own_stats = benchmark._make_stats(1)
    for t in rec["times"]:
        own_stats.update(t)
    times = rec["times"]
    median = statistics.median(times)
    per_process: dict[int, list[float]] = {}
    for p, t in zip(rec["process"], times, strict=True):
        per_process.setdefault(p, []).append(t)
    cvs = [statistics.pstdev(v) / statistics.fmean(v) for v in per_process.values() if len(v) > 1]
    info = dict(rec["info"])
    steps = info.get("steps")
    extra = benchmark.extra_info
    extra.update(info)
    extra.update(
        status="ok", examples=rec["examples"], examples_per_sec=rec["examples"] / median,
        round_process=rec["process"], round_position=rec["order"],
        processes=len(per_process), rounds_per_process=[len(v) for v in per_process.values()],
        process_medians=[statistics.median(v) for v in per_process.values()],
        cv=statistics.median(cvs) if cvs else None,
        warmup_s=statistics.median(rec["warmup_s"]), warmup_s_per_process=rec["warmup_s"],
        calibration={"passes": rec["passes"], "repeat": rec["repeat"], "min_round_s": size.min_round_s,
                     "untimed_round_s": rec["calibration_s"], "median_round_s": median},
        load=rec["load"], busy=rec["load"].get("busy", False),
    )
    if steps:
        extra["step_time_ms"] = 1000 * median / steps
    if "ideal_examples_per_sec" in info:
        extra["ideal_efficiency"] = extra["examples_per_sec"] / info["ideal_examples_per_sec"]
    pairs: dict[str, Any] = {}
    for partner in scenario.partners(variant):
        other = partners.get(partner)
        if other and other.get("status") == "ok":
            pairs[partner] = {"times": other["times"], "examples": other["examples"], "process": other["process"]}
    extra["pairs"] = pairs
    own = side(rec)
    bound = variant.bound
    run_sd = stats.RUN_SD.get(scenario.kind, 0.0)

    def against(partner: str, run: float) -> tuple[float, float, float, float] | None:
        if partner not in pairs or partner == variant.name:
            return None
        return stats.speedup(own, pairs[partner], between, run)

    # stated: the speedup on this machine (its run-to-run move in the interval); the physics check asks of this run
    # alone whether a variant beat what it cannot beat, so it reads the run's own intervals
    vs_base, vs_bound = against(variant.baseline, run_sd), against(bound, run_sd)
    within = (against(variant.baseline, 0.0), against(bound, 0.0))
    if vs_base:
        extra.update(speedup=vs_base[0], speedup_lo=vs_base[1], speedup_hi=vs_base[2], speedup_p=vs_base[3],
                     interval_method=INTERVAL_METHOD)
        ideal = info.get("scaling_ideal")
        if ideal:  # N workers against fewer: the speedup over the ideal ratio of workers
            extra.update(scaling_efficiency=vs_base[0] / ideal, scaling_efficiency_lo=vs_base[1] / ideal,
                         scaling_efficiency_hi=vs_base[2] / ideal)
    if vs_bound:
        # time over the bound's time, minus one: the share of the step spent beyond compute
        extra.update(input_overhead=1 / vs_bound[0] - 1, input_overhead_lo=1 / vs_bound[2] - 1,
                     input_overhead_hi=1 / vs_bound[1] - 1, input_overhead_p=vs_bound[3])
    reasons = stats.physics_check(variant.more_work, *within)
    if extra.get("ideal_efficiency", 0) > 1.05:
        reasons.append(f"measured {extra['ideal_efficiency']:.2f} of its ideal throughput (from its constants); "
                       "more than the ideal is a measurement problem")
    if extra["busy"]:
        reasons.append("measured while other processes used the machine's CPU "
                       f"({100 * rec['load'].get('others_cpu_share', 0):.0f}%, steal "
                       f"{100 * rec['load'].get('steal_share', 0):.0f}%)")
    extra["unstable"] = bool(reasons)
    extra["unstable_reasons"] = reasons
    if rec.get("profile"):
        extra["profile"] = rec["profile"]
        for key in ("allreduce_share", "allreduce_ms_per_step"):
            if rec["profile"].get(key) is not None:
                extra[key] = rec["profile"][key]


def side(rec: dict[str, Any]) -> dict[str, Any]:
    return {"times": rec["times"], "examples": rec["examples"], "process": rec["process"]}
