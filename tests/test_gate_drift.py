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
    improvement. What is left is the run-to-run drift itself, which one run a side cannot take out."""
    every = {"naive": 1.2, "parallel_prefetch": 1.2, "vectorized": 1.2, "fit-best": 1.2}
    seen = blocks = 0
    for rows in _pairs(tmp_path, every, 2):
        blocks += rows.loc["light" + gate.BLOCK, "flag"] == "regression"
        seen += bool(rows["flag"].isin(["regression"]).any())
        assert not (rows["flag"] == "improvement").any()
    assert seen >= 0.7 * SIMS and blocks >= 0.5 * SIMS, (seen, blocks)


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
