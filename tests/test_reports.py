"""Reports from files alone: tables, the page, compare, and bad input, on a checked-in smoke run."""

import json
import math
import re
import subprocess
import sys

import pytest

from tfperf.analysis import gate as compare
from tfperf.analysis import tables
from tfperf.cli import main as cli_main
from tfperf.render import compare_page, html
from tfperf.results.store import ReportError, load_run

from .conftest import REPO


def main(argv: list[str]) -> int:
    return cli_main(["report", *argv])


def test_reports_never_import_tensorflow_or_scenarios(fixture_run):
    code = (f"import sys, tfperf.cli as m; rc = m.main(['report', 'build', {str(fixture_run)!r}]); "
            "assert not {'tensorflow', 'keras', 'tfperf.builtins', 'tfperf.runtime.build'} & set(sys.modules), "
            "'imported'; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_load_and_tables(fixture_run):
    run = load_run(fixture_run)
    assert set(run.frame["status"]) == {"ok", "skipped"}
    t = tables.scenario_table(run, "light")
    row = t.set_index("variant").loc["vectorized"]
    assert row["baseline"] == "parallel_prefetch" and row["speedup"] > 0 and row["speedup_lo"] <= row["speedup_hi"]
    tr = tables.scenario_table(run, "mlp").set_index("variant")  # a training table: it has a bound
    assert tr.loc["fit-best", "overhead_lo"] <= tr.loc["fit-best", "input_overhead"] <= tr.loc["fit-best", "overhead_hi"]
    assert tables.kind(run, "light") == "pipeline" and tables.kind(run, "mlp") == "training"
    text = tables.format_text(run)
    assert "== light" in text and "== mlp" in text and "not measured" in text and "needs 1 GPU" in text
    assert text.splitlines()[1] == "== findings"  # the answers come first


def test_findings_state_only_what_the_intervals_support(fixture_run):
    run = load_run(fixture_run)
    found = tables.findings(run)
    vec = run.frame.set_index("variant").loc["vectorized"]
    if vec["speedup_lo"] > 1:  # resolved in the fixture: stated with its number and interval
        assert any(line.startswith(f"light: vectorized is {vec['speedup']:.2f}x") for line in found), found
    data = json.loads((fixture_run / "benchmarks.json").read_text())
    for b in data["benchmarks"]:  # every interval straddles 1: nothing is stated as faster or slower
        if b["extra_info"].get("speedup"):
            b["extra_info"].update(speedup=1.05, speedup_lo=0.9, speedup_hi=1.2, unstable=False)
        if b["extra_info"].get("input_overhead") is not None:
            b["extra_info"].update(input_overhead=0.05, input_overhead_lo=-0.1, input_overhead_hi=0.2)
    (fixture_run / "benchmarks.json").write_text(json.dumps(data))
    found = tables.findings(load_run(fixture_run))
    assert not any(" is " in line and "the speed of" in line for line in found), found
    assert any("no difference resolved for" in line and "this run resolves differences above" in line
               for line in found), found


def test_known_tool_limits_are_not_a_partial_report(fixture_run):
    run = load_run(fixture_run)
    row = run.frame.index[run.frame["variant"] == "fit-best"][0]
    run.frame.loc[row, "loop"] = "fit_spe"
    limit = "profile of mlp/fit-best failed at capture: TraceError: trace holds 0 complete steps, expected 3"
    assert html._known_limit(run, limit)
    assert not html._known_limit(run, limit.replace("mlp/fit-best", "light/naive"))


def test_page_is_offline_and_has_trace_sections(fixture_run):
    path, charts, problems = html.build(load_run(fixture_run), workers=1)
    page = path.read_text()
    assert charts >= 5 and problems == []
    assert "<script src=" not in page and "<link" not in page  # nothing loaded from elsewhere (the browser
    # test also watches for network requests); plotly.js is inlined once:
    assert page.count("<script>") == 1 + charts + 1
    assert page.count("Plotly.newPlot") == charts
    assert "tensorboard --logdir" in page and "ParallelMapV2" in page  # what tf.data ran, from the trace


def test_run_without_traces_is_partial_not_broken(fixture_run):
    import shutil

    shutil.rmtree(fixture_run / "traces")
    path, charts, problems = html.build(load_run(fixture_run), workers=1)
    assert charts >= 2 and any("missing" in p for p in problems)
    assert "Partial report" in path.read_text()


def test_strings_from_the_inputs_are_escaped(fixture_run):
    f = fixture_run / "benchmarks.json"
    data = json.loads(f.read_text())
    evil = "<img src=x onerror=alert(1)>"
    data["benchmarks"][0]["extra_info"]["variant"] = evil
    data["tfperf"]["unmeasured"][0]["extra_info"]["reason"] = "<script>alert(2)</script>"
    f.write_text(json.dumps(data))
    page = html.build(load_run(fixture_run), workers=1)[0].read_text()
    assert evil not in page and "<script>alert(2)" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


@pytest.mark.parametrize("content, message", [(None, "no results file"), ("{\"benchmarks\": [", "not valid JSON"),
                                              ("[1, 2]", "not a pytest-benchmark results file")])
def test_bad_results_file_gives_one_line(tmp_path, capsys, content, message):
    run = tmp_path / "run"
    run.mkdir()
    if content is not None:
        (run / "benchmarks.json").write_text(content)
    with pytest.raises(ReportError, match=message):
        load_run(run)
    assert main(["build", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tfperf: ") and err.count("\n") == 1 and message in err


def _scaled(src, dst, factor, variant="naive", tf_version=None):
    import shutil

    shutil.copytree(src, dst)
    data = json.loads((dst / "benchmarks.json").read_text())
    data["tfperf"]["run_id"] = dst.name
    for b in data["benchmarks"]:
        if tf_version:
            b["extra_info"]["tf_version"] = tf_version
        if b["extra_info"]["variant"] == variant:
            b["stats"]["data"] = [t * factor for t in b["stats"]["data"]]
            for k in ("min", "max", "mean", "median", "q1", "q3"):
                b["stats"][k] *= factor
    (dst / "benchmarks.json").write_text(json.dumps(data))
    return dst


def _with_rounds(run_dir, times, rotate=False):
    """Give every row the same fixed rounds, so significance is decided by the test's numbers alone (`rotate`: each
    row's in another order, so that a block's rounds do not all move together)."""
    data = json.loads((run_dir / "benchmarks.json").read_text())
    for i, b in enumerate(data["benchmarks"]):
        k = i % len(times) if rotate else 0
        b["stats"]["data"] = list(times[k:]) + list(times[:k])
        b["stats"]["median"] = sorted(times)[len(times) // 2]
    (run_dir / "benchmarks.json").write_text(json.dumps(data))
    return run_dir


def test_compare_flags_only_real_regressions(fixture_run, tmp_path, capsys):
    base = _with_rounds(fixture_run, [1.00, 1.01, 0.99, 1.02, 0.98])
    same = _scaled(base, tmp_path / "same", 1.0)
    assert main(["compare", str(base), str(same)]) == 0
    assert "0 regression(s), 0 improvement(s)" in capsys.readouterr().out

    slow = _scaled(base, tmp_path / "slow", 1.5)
    c = compare.compare(load_run(base), load_run(slow))
    assert list(c.regressions["benchmark"]) == ["light/naive"] and c.exit_code == 1
    assert main(["compare", str(base), str(slow), "--html", str(tmp_path / "c.html")]) == 1
    assert "regression" in (tmp_path / "c.html").read_text()
    # a per-benchmark threshold above the change silences it
    assert main(["compare", str(base), str(slow), "--threshold-for", "light/*=60"]) == 0

    tiny = _scaled(base, tmp_path / "tiny", 1.03)  # real but under the 5% threshold
    assert compare.compare(load_run(base), load_run(tiny)).exit_code == 0


def test_compare_does_not_flag_noise(fixture_run, tmp_path):
    base = _with_rounds(fixture_run, [1.0, 1.3], rotate=True)  # two rounds can never be significant
    slow = _scaled(base, tmp_path / "slow", 1.2)
    rows = compare.compare(load_run(base), load_run(slow)).rows.set_index("benchmark")
    assert rows.loc["light/naive", "flag"] == "noise"


def test_compare_across_versions_says_what_changed_on_every_row(fixture_run, tmp_path, capsys):
    """A TensorFlow upgrade and an edited scenario compare (exit 0 or 1), named on the rows they touch; a run at
    another size does not (exit 2)."""
    other = _scaled(fixture_run, tmp_path / "other", 1.0, tf_version="2.20.0")
    data = json.loads((other / "benchmarks.json").read_text())
    data["tfperf"]["scenario_versions"]["light"] = "edited"
    (other / "benchmarks.json").write_text(json.dumps(data))
    assert main(["compare", str(fixture_run), str(other)]) == 0
    out = capsys.readouterr().out
    assert "compared across versions" in out and "TensorFlow version" in out and "2.20.0 (other)" in out
    rows = compare.compare(load_run(fixture_run), load_run(other)).rows.set_index("benchmark")
    assert "scenario light" in rows.loc["light/naive", "changed"] and "edited" in rows.loc["light/naive", "changed"]
    assert "scenario light" not in rows.loc["mlp/fit-best", "changed"]
    assert all("TensorFlow version" in c for c in rows["changed"])
    bigger = _scaled(fixture_run, tmp_path / "bigger", 1.0)
    data = json.loads((bigger / "benchmarks.json").read_text())
    data["tfperf"]["size"] = "default"
    (bigger / "benchmarks.json").write_text(json.dumps(data))
    assert main(["compare", str(fixture_run), str(bigger)]) == 2
    assert "NOT COMPARABLE: size differs" in capsys.readouterr().out


def test_a_row_its_run_marked_unstable_is_shown_never_flagged(fixture_run, tmp_path):
    base = _with_rounds(fixture_run, [1.00, 1.01, 0.99, 1.02, 0.98])
    slow = _scaled(base, tmp_path / "slow", 1.5)
    data = json.loads((slow / "benchmarks.json").read_text())
    for b in data["benchmarks"]:
        if b["extra_info"]["variant"] == "naive":
            b["extra_info"]["unstable"] = True
    (slow / "benchmarks.json").write_text(json.dumps(data))
    c = compare.compare(load_run(base), load_run(slow))
    assert c.rows.set_index("benchmark").loc["light/naive", "flag"] == compare.UNSTABLE and c.exit_code == 0
    assert any("marked unstable by its own run" in f for f in compare.findings(c))


def test_compare_lists_benchmarks_in_one_run_only(fixture_run, tmp_path):
    other = _scaled(fixture_run, tmp_path / "other", 1.0)
    data = json.loads((other / "benchmarks.json").read_text())
    data["benchmarks"] = data["benchmarks"][1:]
    (other / "benchmarks.json").write_text(json.dumps(data))
    flags = compare.compare(load_run(fixture_run), load_run(other)).rows.set_index("benchmark")["flag"]
    assert "only in base" in set(flags)


def test_compare_takes_the_block_level_out(fixture_run, tmp_path):
    """The machine 10% slower for a whole run (within the 12% two runs of one code move here) moves the block's
    row, not its benchmarks; one benchmark 10% slower on top of that is flagged, alone, as +10%. The same move at
    20%, beyond that drift, is a whole-block regression even with one run a side."""
    def runs(machine, name):
        news = [_processes(fixture_run, tmp_path / f"{name}{i}", 1.10) for i in (1, 2)]
        for new in news:
            data = json.loads((new / "benchmarks.json").read_text())
            for b in data["benchmarks"]:
                b["stats"]["data"] = [machine * t for t in b["stats"]["data"]]
            (new / "benchmarks.json").write_text(json.dumps(data))
        return news

    bases = [_processes(fixture_run, tmp_path / f"base{i}", 1.0) for i in (1, 2)]
    news = runs(1.10, "new")
    block = "light" + compare.BLOCK
    rows = compare.compare(load_run(bases[0]), load_run(news[0])).rows.set_index("benchmark")
    assert rows.loc["light/naive", "basis"] == "relative to its block"
    assert rows.loc["light/naive", "change"] == pytest.approx(0.10, abs=0.01)
    assert rows.loc["light/naive", "absolute_change"] == pytest.approx(1.10 * 1.10 - 1, abs=0.015)
    assert list(rows[rows["flag"] == "regression"].index) == ["light/naive"]
    assert rows.loc["light/vectorized", "change"] == pytest.approx(0.0, abs=0.01)
    # mlp/fit-best is alone in its block: judged on absolute time, the machine's 10% is its change, within what
    # the machine moves between two runs: shown, said, not flagged
    assert rows.loc["mlp/fit-best", "basis"] == "absolute, against a 12% run-to-run drift"
    assert rows.loc["mlp/fit-best", "change"] == pytest.approx(0.10, abs=0.01)
    assert rows.loc["mlp/fit-best", "flag"] == compare.ABSOLUTE_MOVED
    c = compare.compare(load_run(bases[0]), load_run(news[0]))
    assert c.exit_code == 1 and any(f.startswith("moved beyond the threshold in absolute time")
                                    and re.search(r"mlp/fit-best \+(9|10)\.\d%", f) for f in compare.findings(c))
    # the block's level: shown, within the run-to-run drift
    assert rows.loc[block, "change"] == pytest.approx(0.10, abs=0.01)
    assert rows.loc[block, "flag"] == compare.BLOCK_WITHIN_DRIFT
    assert rows.loc[block, "basis"] == "block level, against a 12% run-to-run drift (no reference workload)"
    # with two runs a side, the spread between runs is seen, and the block's level is judged
    rows = compare.compare([load_run(b) for b in bases], [load_run(n) for n in news]).rows.set_index("benchmark")
    assert rows.loc[block, "flag"] == "regression"
    assert rows.loc["mlp/fit-best", "flag"] == "regression"  # and so is a benchmark judged on absolute time
    # 20% slower, one run a side: beyond the drift, the block and the lone benchmark are regressions
    c = compare.compare(load_run(bases[0]), load_run(runs(1.20, "slow")[0]))
    rows = c.rows.set_index("benchmark")
    assert rows.loc[block, "flag"] == "regression" and rows.loc["mlp/fit-best", "flag"] == "regression"
    said = next(f for f in compare.findings(c) if f.startswith(block + " regressed"))
    assert "its members that moved with it, in their own time: light/naive +3" in said  # 1.2 x 1.1 - 1 = +32%

def _cpu_run(src, dst, speed, shares, slower=None):
    """`_processes` of `src`, its `light` block grown to five members (copies of naive and of vectorized), each row
    with its CPU share recorded, as a machine whose CPU runs `speed` times slower would measure it: a member's time
    grows by its share of that (one that mostly waits barely moves); `slower` (variant, factor) makes one member
    really slower on top."""
    import copy

    dst = _processes(src, dst, 1.0)
    data = json.loads((dst / "benchmarks.json").read_text())
    rows = {b["extra_info"]["variant"]: b for b in data["benchmarks"]}
    for name, like in (("naive_copy", "naive"), ("vectorized_copy", "vectorized")):
        twin = copy.deepcopy(rows[like])
        twin["extra_info"]["variant"] = twin["name"] = name
        data["benchmarks"].append(twin)
    for b in data["benchmarks"]:
        info = b["extra_info"]
        share = shares.get(info["variant"])
        if share is None:
            continue
        info["process_cpu_per_s"] = share
        f = 1 + (speed - 1) * share
        if slower and slower[0] == info["variant"]:
            f *= slower[1]
        b["stats"]["data"] = [f * t for t in b["stats"]["data"]]
    (dst / "benchmarks.json").write_text(json.dumps(data))
    return dst


SHARES = {"naive": 0.2, "naive_copy": 0.3, "parallel_prefetch": 1.0, "vectorized": 1.0, "vectorized_copy": 0.9}


def _unshared(run_dir):
    """The same run without the CPU shares (as runs before `process_cpu_per_s` was recorded)."""
    data = json.loads((run_dir / "benchmarks.json").read_text())
    for b in data["benchmarks"]:
        b["extra_info"].pop("process_cpu_per_s", None)
    (run_dir / "benchmarks.json").write_text(json.dumps(data))
    return run_dir


def test_compare_takes_the_cpu_speed_out_by_how_cpu_bound_each_benchmark_is(fixture_run, tmp_path):
    """A run on a CPU 10% slower (within what two runs of one code move here) moves a CPU-bound benchmark 10% and
    one that mostly waits 2%: relative to a single block level (10%), the waiting one would look 7% faster. With the rows' CPU shares the level is a
    line in the share, and none is flagged; a real 10% slowdown of one CPU-bound benchmark still is, alone."""
    base = _cpu_run(fixture_run, tmp_path / "base", 1.0, SHARES)
    new = _cpu_run(fixture_run, tmp_path / "new", 1.10, SHARES)
    rows = compare.compare(load_run(base), load_run(new)).rows.set_index("benchmark")
    for name in SHARES:
        # (the line is straight in log time; a share's effect is straight in time: within 0.1%, beside the 0.3% noise of the synthetic levels)
        assert rows.loc[f"light/{name}", "change"] == pytest.approx(0.0, abs=0.01), name
    assert not rows["flag"].isin(["regression", "improvement"]).any()
    assert rows.loc["light/naive", "absolute_change"] == pytest.approx(0.02, abs=0.005)
    # without the shares, one level for the block: the waiting benchmarks come out about 7% faster
    flat = compare.compare(load_run(_unshared(base)), load_run(_unshared(new))).rows.set_index("benchmark")
    assert flat.loc["light/naive", "change"] < -0.05  # relative to one level it reads faster, but its own time
    assert flat.loc["light/naive", "flag"] == compare.MOVED_WITH_BLOCK  # moved 2%: the block moved, not it
    # a real slowdown of one CPU-bound benchmark on top of the slower CPU: flagged, alone, at +10%
    base = _cpu_run(fixture_run, tmp_path / "base2", 1.0, SHARES)
    slow = _cpu_run(fixture_run, tmp_path / "slow", 1.10, SHARES, slower=("parallel_prefetch", 1.10))
    rows = compare.compare(load_run(base), load_run(slow)).rows.set_index("benchmark")
    assert list(rows[rows["flag"].isin(["regression", "improvement"])].index) == ["light/parallel_prefetch"]
    assert rows.loc["light/parallel_prefetch", "change"] == pytest.approx(0.10, abs=0.01)


def _processes(src, dst, factor, variant="naive", units=3):
    """A copy of `src` whose every row has rounds from `units` processes, each process at a level of its own, drawn
    per run and benchmark (0.3% apart: noise with a known size, which the block's level cannot take out)."""
    import shutil
    import zlib

    import numpy as np

    shutil.copytree(src, dst)
    data = json.loads((dst / "benchmarks.json").read_text())
    data["tfperf"]["run_id"] = dst.name
    data["tfperf"]["null_pairs"] = []  # only the synthetic process levels: no instance-level floor
    for b in data["benchmarks"]:
        rng = np.random.default_rng(zlib.crc32(f"{dst.name}/{b['name']}".encode()))
        levels = list(1 + rng.normal(0, 0.003, units))
        f = factor if b["extra_info"]["variant"] == variant else 1.0
        times, process = [], []
        for p, level in enumerate(levels):
            times += [f * level * t for t in (1.0, 1.01, 0.99)]
            process += [p] * 3
        b["stats"]["data"] = times
        b["stats"]["median"] = sorted(times)[len(times) // 2]
        b["extra_info"]["round_process"] = process
    (dst / "benchmarks.json").write_text(json.dumps(data))
    return dst


def test_compare_takes_noise_from_processes_and_several_runs(fixture_run, tmp_path, capsys):
    base = _processes(fixture_run, tmp_path / "base", 1.0)
    same = _processes(fixture_run, tmp_path / "same", 1.0)
    slow = _processes(fixture_run, tmp_path / "slow", 1.10)  # one benchmark 10% slower
    c = compare.compare(load_run(base), load_run(same))
    assert c.exit_code == 0 and (c.rows["test"].str.contains("processes")).all()
    c = compare.compare(load_run(base), load_run(slow))
    assert list(c.regressions["benchmark"]) == ["light/naive"]
    assert (c.rows["limit"] < 0.10).all()  # it could have seen 10% on every benchmark
    found = compare.findings(c)
    assert found[0].startswith("light/naive regressed: +") and "time per example [" in found[0] and len(found) == 2
    assert found[1] == compare.ONE_RUN_CAVEAT  # a flag from one run a side says what it cannot see
    assert 'id="findings"' in compare_page.format_html(c) and "light/naive regressed" in compare_page.format_html(c)
    # the flags' multiplicity control is stated, with its family, and every judged row carries its q
    blocks, members = c.family
    stated = f"false discovery rate at 5% over the {blocks + members} judged rows"
    assert blocks >= 1 and members >= 3 and stated in compare_page.format_text(c)
    assert stated in compare_page.format_html(c) and c.rows.loc[c.rows["p_beyond"].notna(), "q"].notna().all()
    # several runs a side: BASE... -- NEW...
    assert main(["compare", str(base), str(same), "--", str(slow), str(slow)]) == 1
    out = capsys.readouterr().out
    assert "detection limit" in out and "1 regression(s)" in out
    assert "one run a side" not in out  # two runs a side measure what one cannot
    c = compare.compare(load_run(base), load_run(same))
    assert compare.ONE_RUN_CAVEAT not in compare.findings(c)  # nothing flagged: nothing to confirm


def test_compare_says_when_the_rank_test_cannot_reach_significance(fixture_run, tmp_path, capsys):
    base = _with_rounds(fixture_run, [1.0, 1.01, 0.99])  # 3+3 rounds: the smallest p is 0.1
    slow = _scaled(base, tmp_path / "slow", 1.5)
    rows = compare.compare(load_run(base), load_run(slow)).rows.set_index("benchmark")
    assert "interval only" in rows.loc["light/naive", "test"]
    assert rows.loc["light/naive", "flag"] == "regression"
    assert main(["compare", str(base), str(slow)]) == 1
    assert "lower bounds" in capsys.readouterr().out  # one process a side: said, not hidden


@pytest.mark.parametrize("args, message", [
    (["--threshold", "-5"], "--threshold must be between 0 and 1000 percent"),
    (["--threshold", "nan"], "--threshold must be between 0 and 1000 percent"),
    (["--threshold", "x"], "--threshold wants a number"),
    (["--threshold-for", "mlp/*=-15"], "must be between 0 and 1000 percent"),
    (["--alpha", "0"], "--alpha must be above 0 and below 1"),
    (["--alpha", "inf"], "--alpha must be above 0 and below 1"),
])
def test_compare_refuses_bad_numbers_in_one_line(fixture_run, capsys, args, message):
    assert main(["compare", str(fixture_run), str(fixture_run), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_compare_reports_a_pattern_that_matches_nothing(fixture_run, capsys):
    assert main(["compare", str(fixture_run), str(fixture_run), "--threshold-for", "pipline/*=10"]) == 0
    assert "'pipline/*' matches no benchmark" in capsys.readouterr().out


def test_paired_speedup_cancels_drift_and_spans_processes():
    from tfperf.analysis import stats

    drift = [1.0, 1.3, 0.8, 1.6, 1.1, 0.9]  # the machine's speed moves between rounds, 2x overall
    jitter = [1.0, 1.01, 0.99, 1.0, 0.995, 1.005]  # and the pair's own noise is 1%
    base = {"times": [2.0 * d for d in drift], "examples": 100, "process": [0, 0, 0, 1, 1, 1]}
    fast = {"times": [d * j for d, j in zip(drift, jitter, strict=True)], "examples": 100, "process": [0, 0, 0, 1, 1, 1]}
    est, lo, hi, p = stats.speedup(fast, base)
    assert est == pytest.approx(2.0, rel=0.01) and 1.9 < lo < 2.0 < hi < 2.1 and p < 1e-4
    # per example: twice the examples in the same time is twice as fast
    est, _, _, _ = stats.speedup({**fast, "examples": 200, "times": [2.0 * d for d in drift]}, base)
    assert est == pytest.approx(2.0)
    # identical ratios in every round: no spread, so no interval (never a narrow one from nothing)
    est, lo, hi, p = stats.speedup({**fast, "times": drift}, base)
    assert est == pytest.approx(2.0) and math.isnan(lo) and math.isnan(hi) and p == 1.0


@pytest.mark.parametrize("more_work, vs_base, vs_bound, unstable", [
    (True, (1.5, 1.2, 1.8), None, True),  # more work, significantly faster: contradiction
    (True, (1.05, 0.95, 1.15), None, False),  # within noise
    (False, (1.5, 1.2, 1.8), None, False),  # no claim about the work
    (False, None, (1.2, 1.05, 1.3), True),  # faster than its compute-only bound
    (False, None, (0.9, 0.8, 1.01), False),
])
def test_physics_check(more_work, vs_base, vs_bound, unstable):
    from tfperf.analysis import stats

    assert bool(stats.physics_check(more_work, vs_base, vs_bound)) is unstable


def _with_null_pairs(run_dir, twin, pairs):
    """`pairs` null pairs of light/naive in two processes: the anchor at 1.0, its twin at twin[p] in process p."""
    data = json.loads((run_dir / "benchmarks.json").read_text())
    data["tfperf"]["null_pairs"] = [
        {"scenario": "light", "block": "light", "variant": "naive", "speedup": 1.0, "lo": min(twin), "hi": max(twin),
         "a": {"times": [1.0] * 6, "examples": 1, "process": [0, 0, 0, 1, 1, 1]},
         "b": {"times": [twin[0]] * 3 + [twin[1]] * 3, "examples": 1, "process": [0, 0, 0, 1, 1, 1]}}
        for _ in range(pairs)]
    (run_dir / "benchmarks.json").write_text(json.dumps(data))


def test_an_instance_level_from_the_null_pairs_widens_the_limits(fixture_run, tmp_path):
    base = _processes(fixture_run, tmp_path / "base", 1.0)
    slow = _processes(fixture_run, tmp_path / "slow", 1.10)
    quiet = compare.compare(load_run(base), load_run(slow)).rows.set_index("benchmark")
    for run in (base, slow):  # null pairs whose two instances differ by about 20% in each process
        _with_null_pairs(run, twin=(1.2, 0.83), pairs=2)
    assert compare.instance_variance([load_run(base)]) is not None
    noisy = compare.compare(load_run(base), load_run(slow)).rows.set_index("benchmark")
    rows = [n for n in noisy.index if not n.endswith(compare.BLOCK)]  # a block's level is no variant instance's
    assert (noisy.loc[rows, "limit"] > quiet.loc[rows, "limit"]).all()  # limits now hold the instance-level spread
    assert noisy.loc["light/naive", "flag"] == "noise"  # 10% is not beyond what such runs resolve


def test_a_null_pair_from_a_few_processes_is_pooled_in_not_a_floor(fixture_run, tmp_path):
    """Its variance is one more estimate of the units' spread, weighed by its degrees of freedom: a null pair 4%
    apart in each of four processes widens the limits of a quiet block, but does not hide a real 10% slowdown
    (as the larger of the two estimates did: measured, the `cpu` null pair had set every limit of its block)."""
    base = _processes(fixture_run, tmp_path / "base", 1.0)
    slow = _processes(fixture_run, tmp_path / "slow", 1.10)
    quiet = compare.compare(load_run(base), load_run(slow)).rows.set_index("benchmark")
    for run in (base, slow):
        _with_null_pairs(run, twin=(1.04, 0.96), pairs=1)
    variance, df = compare.instance_variance([load_run(base), load_run(slow)])["light"]
    assert df == 4 and math.sqrt(variance) > 0.025  # several times the units' own 0.3%
    rows = compare.compare(load_run(base), load_run(slow)).rows.set_index("benchmark")
    assert rows.loc["light/naive", "limit"] > quiet.loc["light/naive", "limit"]
    # beyond the 5% threshold on its own (the comparison's false discovery control over every row then decides)
    assert rows.loc["light/naive", "lo"] > 0.05 and rows.loc["light/naive", "p_beyond"] < 0.05
    assert list(rows[rows["p_beyond"] < 0.05].index) == ["light/naive"]


def test_diagnosis_names_the_slowest_stage_and_quotes_what_the_run_measured(fixture_run):
    from tfperf.analysis import diagnosis
    from tfperf.analysis.trace_pool import analyse_run

    run = load_run(fixture_run)
    figures, _ = analyse_run(run.path, run.profiles, workers=1)
    found = {e["key"]: e for e in diagnosis.diagnose(run, figures)}
    naive = found["light/naive"]
    assert naive["stage"].endswith("::Map") and naive["stage_ms"] > 0 and naive["input_percent"] >= 50
    assert naive["verified"] and any(e.startswith("light/vectorized ") for e in naive["evidence"])
    # a knob this run did not measure is said to be unverified, not quoted
    data = json.loads((fixture_run / "benchmarks.json").read_text())
    data["benchmarks"] = [b for b in data["benchmarks"] if b["extra_info"]["variant"] != "vectorized"]
    (fixture_run / "benchmarks.json").write_text(json.dumps(data))
    run = load_run(fixture_run)
    lines = diagnosis.lines(diagnosis.diagnose(run, figures))
    assert any(line.startswith("light/parallel_prefetch:") and "unverified" in line for line in lines), lines


def test_a_scaling_efficiency_without_its_interval_is_still_shown():

    row = dict(scaling_efficiency=0.95, scaling_efficiency_lo=0.9, scaling_efficiency_hi=0.99)
    assert tables._efficiency(row) == ", scaling efficiency 95% [90%, 99%]"
    row = dict(scaling_efficiency=0.95, scaling_efficiency_lo=None, scaling_efficiency_hi=float("nan"))
    assert tables._efficiency(row) == ", scaling efficiency 95%"  # was a TypeError (100 * None)
    assert tables._efficiency(dict(scaling_efficiency=None)) == ""


def test_a_killed_run_is_shown_incomplete_by_table_page_and_compare(fixture_run, tmp_path, capsys):
    """SIGKILL leaves `interrupted: false` (nothing could record it), but the selection in the file names variants
    with no row: every reader says the run is incomplete."""
    data = json.loads((fixture_run / "benchmarks.json").read_text())
    data["tfperf"]["interrupted"] = False
    data["tfperf"]["selection"] = [*data["tfperf"]["selection"], "light/never_reached"]
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "benchmarks.json").write_text(json.dumps(data))
    run = load_run(killed)
    assert tables.incomplete(run).startswith("INCOMPLETE: run ") and "killed or crashed" in tables.incomplete(run)
    assert "light/never_reached" in tables.format_text(run).splitlines()[1]
    doc, _, _ = html.render(run, workers=1)
    assert "id='interrupted'" in doc and "light/never_reached" in doc
    c = compare.compare([load_run(fixture_run)], [run])
    assert any(f.startswith("INCOMPLETE: run ") for f in compare.findings(c))
    assert tables.incomplete(load_run(fixture_run)) == ""


def test_a_flag_with_no_p_to_count_it_by_does_not_escape_the_false_discovery_control():
    """A row flagged on its own interval but with no p of lying beyond its threshold (too few rounds for any test)
    cannot be counted among the comparison's rows, so it is not flagged; a row far beyond its threshold is."""
    rows = [{"benchmark": "light/a", "flag": "regression", "p_beyond": float("nan")},
            {"benchmark": "light/b", "flag": "regression", "p_beyond": 1e-9},
            {"benchmark": "light/c", "flag": "", "p_beyond": 0.8}]
    assert compare._multiplicity(rows, 0.05) == (0, 2)
    assert [r["flag"] for r in rows] == ["noise", "regression", ""]
    assert "q" not in rows[0] and rows[1]["q"] < 0.05
