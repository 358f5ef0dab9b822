"""The gate with one run a side, tested like statistics: synthetic runs with noise and a known truth, counting
false alarms and detections. Each run holds the default layout (2 processes x 5 rounds), with noise at three
levels as measured on this kind of machine: rounds (2%), processes (2%), and the run itself, which moves a whole
block (a standard deviation of 4%, so two runs of one code differ by up to about 12%: docs/statistics.md)."""

import json
import shutil

import numpy as np
import pytest

from tfperf.analysis import gate
from tfperf.results.store import load_run

from .conftest import FIXTURES

pytestmark = pytest.mark.slow

ROUND, PROCESS, RUN = 0.02, 0.02, 0.04
SIMS = 60


def _run(dst, rng, slower=None):
    """A run of the fixture's benchmarks (light: three members; mlp/fit-best alone): every round drawn around the
    fixture's median, `slower` {variant: factor} the truth."""
    shutil.copytree(FIXTURES / "run-smoke", dst, ignore=shutil.ignore_patterns("traces"))
    data = json.loads((dst / "benchmarks.json").read_text())
    data["tfperf"]["run_id"] = dst.name
    data["tfperf"]["null_pairs"] = []
    data["tfperf"]["profiles"] = []
    drift = {g: float(np.exp(rng.normal(0, RUN))) for g in ("light", "mlp")}
    for b in data["benchmarks"]:
        info = b["extra_info"]
        info.pop("profile", None)
        base = float(np.median(b["stats"]["data"])) * drift[info["scenario"]] * (slower or {}).get(info["variant"], 1.0)
        times, process = [], []
        for p in range(2):
            level = float(np.exp(rng.normal(0, PROCESS)))
            times += list(base * level * np.exp(rng.normal(0, ROUND, 5)))
            process += [p] * 5
        b["stats"]["data"] = times
        b["stats"]["median"] = float(np.median(times))
        info["round_process"] = process
    (dst / "benchmarks.json").write_text(json.dumps(data))
    return load_run(dst)


def _pairs(tmp_path, slower, seed):
    rng = np.random.default_rng(seed)
    for i in range(SIMS):
        yield gate.compare(_run(tmp_path / f"b{i}", rng), _run(tmp_path / f"n{i}", rng, slower)).rows.set_index(
            "benchmark")


def test_two_runs_of_one_code_flag_nothing_but_rarely(tmp_path):
    flagged = [rows for rows in _pairs(tmp_path, None, 1) if rows["flag"].isin(gate.FLAGS).any()]
    assert len(flagged) <= 0.05 * SIMS, [r[r["flag"].isin(gate.FLAGS)]["change"].to_dict() for r in flagged]


def test_everything_slower_is_flagged_with_one_run_a_side(tmp_path):
    """Every benchmark 20% slower: before, nothing was ever flagged (a block's own row and a lone benchmark were
    'not judged' with one run a side). Now a move beyond the 12% drift is judged. Measured over 200 pairs: the
    block flagged in 64% (25% slower: 80%), the lone benchmark in 41% (62%), some regression in 82%; never an
    improvement. What is left is the run-to-run drift itself, which one run a side cannot take out. With the
    comparison's false discovery control over its five rows (a false alarm in a fifth of same-code pairs of 85 rows
    without it, docs/statistics.md): some regression in 33 of these 60 pairs, the block in 28."""
    every = {"naive": 1.2, "parallel_prefetch": 1.2, "vectorized": 1.2, "fit-best": 1.2}
    seen = blocks = 0
    for rows in _pairs(tmp_path, every, 2):
        blocks += rows.loc["light" + gate.BLOCK, "flag"] == "regression"
        seen += bool(rows["flag"].isin(["regression"]).any())
        assert not (rows["flag"] == "improvement").any()
    assert seen >= 0.45 * SIMS and blocks >= 0.4 * SIMS, (seen, blocks)


def test_two_of_three_members_slower_never_flag_the_unchanged_one(tmp_path):
    """A shared map got slower in two of a block's three members: the block's level moves with them, and the
    unchanged third reads faster relative to it. Before, it was flagged as an improvement in 47% of 200 pairs;
    now its flag is withdrawn when its own time stayed within the drift (measured: 2% of 200 still flagged, where
    the two runs' drift itself exceeded 12%)."""
    wrong = 0
    for rows in _pairs(tmp_path, {"naive": 1.2, "parallel_prefetch": 1.2}, 3):
        wrong += rows.loc["light/vectorized", "flag"] in gate.FLAGS
        if rows.loc["light/vectorized", "flag"] == gate.MOVED_WITH_BLOCK:
            assert rows.loc["light/vectorized", "change"] < -0.05
    assert wrong <= 0.05 * SIMS, wrong


# With the suite's reference workload (tfperf.measure.reference) timed in every block's rounds. Measured before
# choosing it (six fresh processes of the light block and the reference in the same rounds): a process's level
# of the whole block had an SD of 9% (TensorFlow's runtime: a process sits at its own level), shared by the
# reference, which followed the block's level within an SD of 2.5-3.5%. Simulated here: the run's drift (4%) and
# the process's level (9%) shared by every member and the reference, the reference's own residual per process (3%)
# and round noise (2%).
SHARED_PROCESS, REF_RESIDUAL = 0.09, 0.03
# and the reference's own move from run to run, which the run's processes cannot see (measured: 3.5% a run, the gate's
# REFERENCE_RUN_SD)
REF_RUN = 0.035


BLOCKS = ("light", "light2", "light3", "light4", "mlp")  # a run of several blocks, as a default run has (eight)


def _referenced_run(dst, rng, slower=None, reference_slower=1.0):
    """A run of four blocks like the fixture's light block (only `light` is slowed by `slower`) and mlp/fit-best
    alone, with the reference in every block."""
    shutil.copytree(FIXTURES / "run-smoke", dst, ignore=shutil.ignore_patterns("traces"))
    data = json.loads((dst / "benchmarks.json").read_text())
    data["tfperf"].update(run_id=dst.name, null_pairs=[], profiles=[])
    light = [b for b in data["benchmarks"] if b["extra_info"]["scenario"] == "light"]
    for g in BLOCKS[1:4]:
        for b in light:
            copy = json.loads(json.dumps(b))
            copy["extra_info"].update(scenario=g, group=g)
            copy["name"] = copy["fullname"] = f"{g}/{b['extra_info']['variant']}"
            data["benchmarks"].append(copy)
    drift = {g: float(np.exp(rng.normal(0, RUN))) for g in BLOCKS}
    shared = {g: np.exp(rng.normal(0, SHARED_PROCESS, 2)) for g in BLOCKS}
    refs = {}
    for g in BLOCKS:
        level = shared[g] * np.exp(rng.normal(0, REF_RESIDUAL, 2) + rng.normal(0, REF_RUN)) * drift[g] * (
            reference_slower if g == "light" else 1.0)
        refs[g] = {"times": [float(40e-3 * level[p] * np.exp(rng.normal(0, ROUND))) for p in range(2) for _ in range(5)],
                   "process": [p for p in range(2) for _ in range(5)], "examples": 2048}
    for b in data["benchmarks"]:
        info = b["extra_info"]
        info.pop("profile", None)
        g = info["scenario"]
        slowed = (slower or {}).get(info["variant"], 1.0) if g in ("light", "mlp") else 1.0
        base = float(np.median(b["stats"]["data"])) * drift[g] * slowed
        times = [float(base * shared[g][p] * np.exp(rng.normal(0, PROCESS) + rng.normal(0, ROUND)))
                 for p in range(2) for _ in range(5)]
        b["stats"]["data"] = times
        b["stats"]["median"] = float(np.median(times))
        info["round_process"] = [p for p in range(2) for _ in range(5)]
    data["tfperf"]["references"] = refs
    (dst / "benchmarks.json").write_text(json.dumps(data))
    return load_run(dst)


def _referenced_pairs(tmp_path, slower, seed, reference_slower=1.0):
    rng = np.random.default_rng(seed)
    for i in range(SIMS):
        yield gate.compare(_referenced_run(tmp_path / f"b{i}", rng),
                           _referenced_run(tmp_path / f"n{i}", rng, slower, reference_slower)).rows.set_index("benchmark")


def test_with_the_reference_two_runs_of_one_code_flag_nothing_but_rarely(tmp_path):
    flagged = 0
    for rows in _referenced_pairs(tmp_path, None, 11):
        assert rows.loc["light" + gate.BLOCK, "basis"].startswith("block level relative to the reference")
        flagged += bool(rows["flag"].isin(gate.FLAGS).any())
    assert flagged <= 0.05 * SIMS, flagged


def test_with_the_reference_a_uniform_or_whole_block_slowdown_is_flagged(tmp_path):
    """Every light benchmark 20% slower, then 15%: judged against the reference timed in the same rounds, the
    block's row is flagged as a regression (the drift of the run and the process level cancel; the reference's own
    run-to-run move, 3.5%, does not, and widens the interval). Measured over 100 pairs: 53% flagged at 20%, 21% at
    15%, 12% at 10%; no block flagged between runs of one code (tested above); a member flagged as an improvement
    in 1-3 of 100. Without that run-level term the block was flagged in 95% at 20%, but real runs of one code then
    read cpu +7.6% [+3.4%, +11.9%] and cnn -6.4% [-10.0%, -2.6%] (docs/statistics.md): intervals that did not cover."""
    for factor, seed, share in ((1.2, 12, 0.4), (1.15, 13, 0.1)):
        every = {"naive": factor, "parallel_prefetch": factor, "vectorized": factor}
        flagged = improved = 0
        for rows in _referenced_pairs(tmp_path / str(factor), every, seed):
            flagged += rows.loc["light" + gate.BLOCK, "flag"] == "regression"
            improved += bool((rows["flag"] == "improvement").any())
        assert flagged >= share * SIMS and improved <= 0.05 * SIMS, (factor, flagged, improved)


def test_a_slower_reference_alone_is_the_machine_not_the_code(tmp_path):
    """The machine (or the host, or TensorFlow) 20% slower moves the reference with everything else in the light
    block: the block relative to it does not move, so it is not flagged, and its row says how far the reference
    moved."""
    every = {"naive": 1.2, "parallel_prefetch": 1.2, "vectorized": 1.2}
    flagged, moved = 0, []
    for rows in _referenced_pairs(tmp_path, every, 14, reference_slower=1.2):
        flagged += rows.loc["light" + gate.BLOCK, "flag"] in gate.FLAGS
        moved.append(rows.loc["light" + gate.BLOCK, "reference_change"])
    assert flagged <= 0.05 * SIMS, flagged
    assert 0.12 < np.median(moved) < 0.28, np.median(moved)  # the reference's own move, said on the row


# Many members in one block, as a default run has (about 80 rows in all): each member's level relative to its block
# also moves a little from one run to the next, which the run's processes cannot see (measured on six pairs of
# same-commit default runs: an SD of 1.7-1.9% a run in the light and mlp blocks, about 0 in the others;
# docs/statistics.md). Judged at 5% row by row, some row of the thirty is flagged in about a fifth of same-code
# pairs; the comparison's false discovery control (weighted Benjamini-Hochberg over every row it judges) holds it.
MEMBERS, MEMBER_RUN = 30, 0.018


def _wide_run(dst, rng, slower=None, member_run=None):
    """The fixture's light block widened to MEMBERS members (light/m0 ...), the reference in its rounds; each member's
    level moves from run to run by MEMBER_RUN, or by `member_run` {variant: SD, "": SD of the others}."""
    shutil.copytree(FIXTURES / "run-smoke", dst, ignore=shutil.ignore_patterns("traces"))
    data = json.loads((dst / "benchmarks.json").read_text())
    data["tfperf"].update(run_id=dst.name, null_pairs=[], profiles=[])
    template = next(b for b in data["benchmarks"] if b["extra_info"]["scenario"] == "light")
    data["benchmarks"] = []
    drift = float(np.exp(rng.normal(0, RUN)))
    shared = np.exp(rng.normal(0, SHARED_PROCESS, 2))
    level = shared * np.exp(rng.normal(0, REF_RESIDUAL, 2) + rng.normal(0, REF_RUN)) * drift
    data["tfperf"]["references"] = {"light": {
        "times": [float(40e-3 * level[p] * np.exp(rng.normal(0, ROUND))) for p in range(2) for _ in range(5)],
        "process": [p for p in range(2) for _ in range(5)], "examples": 2048}}
    for m in range(MEMBERS):
        b = json.loads(json.dumps(template))
        variant = f"m{m}"
        b["extra_info"].update(variant=variant, group="light")
        b["extra_info"].pop("profile", None)
        b["name"] = b["fullname"] = f"light/{variant}"
        moves = (member_run or {}).get(variant, (member_run or {}).get("", MEMBER_RUN))
        base = float(np.median(template["stats"]["data"])) * drift * (slower or {}).get(variant, 1.0) * float(
            np.exp(rng.normal(0, moves)))
        times = [float(base * shared[p] * np.exp(rng.normal(0, PROCESS) + rng.normal(0, ROUND)))
                 for p in range(2) for _ in range(5)]
        b["stats"]["data"] = times
        b["stats"]["median"] = float(np.median(times))
        b["extra_info"]["round_process"] = [p for p in range(2) for _ in range(5)]
        data["benchmarks"].append(b)
    (dst / "benchmarks.json").write_text(json.dumps(data))
    return load_run(dst)


def _wide_pairs(tmp_path, slower, seed):
    rng = np.random.default_rng(seed)
    for i in range(SIMS):
        yield gate.compare(_wide_run(tmp_path / f"b{i}", rng), _wide_run(tmp_path / f"n{i}", rng, slower)).rows \
            .set_index("benchmark")


def test_thirty_members_of_one_code_flag_nothing_once_every_row_is_counted(tmp_path):
    """Same code, 31 rows judged a pair (30 members and the block). Row by row at 5% (the rows' own q-free flags,
    reconstructed from p_beyond), some row is flagged in a fifth of the pairs; with the false discovery control, in
    at most 5%. Every judged row carries its q, and the family is counted."""
    flagged = per_row = 0
    for rows in _wide_pairs(tmp_path, None, 21):
        judged = rows["p_beyond"].notna()
        assert judged.sum() == MEMBERS + 1 and rows.loc[judged, "q"].notna().all()
        flagged += bool(rows["flag"].isin(gate.FLAGS).any())
        per_row += bool((rows["p_beyond"] < 0.05).any())
    assert flagged <= 0.05 * SIMS, flagged
    assert per_row >= 0.1 * SIMS, per_row  # the control is doing something: without it these pairs would flag


def test_one_slower_member_of_thirty_is_still_flagged_alone(tmp_path):
    """One member 20% slower, 29 unchanged: an unchanged member flagged in at most 5% of pairs, the slower one in
    30 of these 60. Where its own two processes a side spread wider than its block's, a row keeps its own variance
    with its own 2 degrees of freedom (a variance is never paired with another's df): on 2 df its p cannot pass the
    control over 31 rows. Pooling its variance with its block's by df instead (limma's moderated variance) found
    the 10% slower map of real runs in 8 of 16 pairs instead of 7, but let same-code pairs flag in 5 of 19 instead
    of 3 (docs/statistics.md), so the rule stays."""
    found = others = 0
    for rows in _wide_pairs(tmp_path, {"m7": 1.2}, 22):
        found += rows.loc["light/m7", "flag"] == "regression"
        others += bool(rows.drop(index="light/m7")["flag"].isin(gate.FLAGS).any())
    assert found >= 0.4 * SIMS and others <= 0.05 * SIMS, (found, others)


def test_three_base_runs_learn_which_member_jumps_from_run_to_run(tmp_path):
    """One member whose level jumps from run to run (an SD of 8% a run, as light/vectorized's +11% to +16% between
    real runs of one code), the others steady (0.5%). With one run a side nothing can tell its jump from a change:
    even under the false discovery control it is flagged in some same-code pairs (10 of these 60). With three base
    runs (a CI's last runs of its main branch) against one new run, the base side's spread between runs is that
    member's own: same code flags nothing in at least 95% of comparisons, and a steady member 20% slower is still
    flagged in at least 80% (measured on real runs: docs/statistics.md)."""
    jumpy = {"m3": 0.08, "": 0.005}
    rng = np.random.default_rng(23)
    one = many = found = 0
    for i in range(SIMS):
        runs = [_wide_run(tmp_path / f"r{i}-{k}", rng, member_run=jumpy) for k in range(4)]
        slowed = _wide_run(tmp_path / f"s{i}", rng, {"m7": 1.2}, member_run=jumpy)
        one += gate.compare(runs[0], runs[1]).rows.set_index("benchmark").loc["light/m3", "flag"] in gate.FLAGS
        rows = gate.compare(runs[:3], [runs[3]]).rows
        many += bool(rows["flag"].isin(gate.FLAGS).any())
        rows = gate.compare(runs[:3], [slowed]).rows.set_index("benchmark")
        found += rows.loc["light/m7", "flag"] == "regression"
    assert one >= 0.1 * SIMS and many <= 0.05 * SIMS, (one, many)
    assert found >= 0.8 * SIMS, found
