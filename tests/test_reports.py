"""Reports from files alone: tables, the page, compare, and bad input, on a checked-in smoke run."""

import json
import subprocess
import sys

import pytest

from reports import compare, html, tables
from reports.__main__ import main
from reports.load import ReportError, load_run

from .conftest import REPO


def test_reports_never_import_tensorflow_or_scenarios(fixture_run):
    code = (f"import sys, reports.__main__ as m; rc = m.main(['build', {str(fixture_run)!r}]); "
            "assert 'tensorflow' not in sys.modules and 'scenarios' not in sys.modules, 'imported'; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_load_and_tables(fixture_run):
    run = load_run(fixture_run)
    assert set(run.frame["status"]) == {"ok", "skipped"}
    t = tables.scenario_table(run, "pipeline")
    row = t.set_index("variant").loc["light-vectorized"]
    assert row["baseline"] == "light-naive" and row["speedup"] > 0 and row["speedup_lo"] <= row["speedup_hi"]
    tr = tables.scenario_table(run, "training").set_index("variant")
    assert tr.loc["mlp-fit-best", "input_overhead"] == pytest.approx(
        tr.loc["mlp-fit-memory", "examples_per_sec"] / tr.loc["mlp-fit-best", "examples_per_sec"] - 1, rel=1e-6)
    text = tables.format_text(run)
    assert "== pipeline" in text and "not measured" in text and "needs 1 GPU" in text


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
    assert err.startswith("reports: ") and err.count("\n") == 1 and message in err


def _scaled(src, dst, factor, variant="light-naive", tf_version=None):
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


def _with_rounds(run_dir, times):
    """Give every row the same fixed rounds, so significance is decided by the test's numbers alone."""
    data = json.loads((run_dir / "benchmarks.json").read_text())
    for b in data["benchmarks"]:
        b["stats"]["data"] = list(times)
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
    assert list(c.regressions["benchmark"]) == ["pipeline/light-naive"] and c.exit_code == 1
    assert main(["compare", str(base), str(slow), "--html", str(tmp_path / "c.html")]) == 1
    assert "regression" in (tmp_path / "c.html").read_text()
    # a per-benchmark threshold above the change silences it
    assert main(["compare", str(base), str(slow), "--threshold-for", "pipeline/light-*=60"]) == 0

    tiny = _scaled(base, tmp_path / "tiny", 1.03)  # real but under the 5% threshold
    assert compare.compare(load_run(base), load_run(tiny)).exit_code == 0


def test_compare_does_not_flag_noise(fixture_run, tmp_path):
    base = _with_rounds(fixture_run, [1.0, 1.3])  # two rounds can never be significant
    slow = _scaled(base, tmp_path / "slow", 1.2)
    rows = compare.compare(load_run(base), load_run(slow)).rows.set_index("benchmark")
    assert rows.loc["pipeline/light-naive", "flag"] == "noise"


def test_compare_refuses_different_versions(fixture_run, tmp_path, capsys):
    other = _scaled(fixture_run, tmp_path / "other", 1.0, tf_version="2.20.0")
    assert main(["compare", str(fixture_run), str(other)]) == 2
    assert "NOT COMPARABLE: TensorFlow version differs" in capsys.readouterr().out


def test_compare_lists_benchmarks_in_one_run_only(fixture_run, tmp_path):
    other = _scaled(fixture_run, tmp_path / "other", 1.0)
    data = json.loads((other / "benchmarks.json").read_text())
    data["benchmarks"] = data["benchmarks"][1:]
    (other / "benchmarks.json").write_text(json.dumps(data))
    flags = compare.compare(load_run(fixture_run), load_run(other)).rows.set_index("benchmark")["flag"]
    assert "only in base" in set(flags)


def _spread(src, dst, factors):
    """A copy of `src` whose every row is scaled by its own factor (cycling through `factors`)."""
    import shutil

    shutil.copytree(src, dst)
    data = json.loads((dst / "benchmarks.json").read_text())
    data["tfperf"]["run_id"] = dst.name
    for i, b in enumerate(data["benchmarks"]):
        f = factors[i % len(factors)]
        b["stats"]["data"] = [t * f for t in b["stats"]["data"]]
        b["stats"]["median"] *= f
    (dst / "benchmarks.json").write_text(json.dumps(data))
    return dst


def test_noise_floor_absorbs_run_to_run_drift_but_not_a_suite_wide_regression(fixture_run, tmp_path):
    base = _with_rounds(fixture_run, [1.00, 1.01, 0.99, 1.02, 0.98])
    # every benchmark drifts by its own -25%..+30%, as two runs of identical code did on a 2-core VM
    drift = _spread(base, tmp_path / "drift", [0.75, 1.3, 0.9, 1.15, 0.8, 1.25, 1.0, 0.85, 1.2, 1.1, 0.95])
    c = compare.compare(load_run(base), load_run(drift))
    assert c.noise_floor is not None and c.noise_floor > 0.3
    assert c.exit_code == 0 and c.rows["flag"].isin(["", "noise"]).all()
    assert compare.compare(load_run(base), load_run(drift), use_noise_floor=False).exit_code == 1  # would cry wolf

    everything = _spread(base, tmp_path / "all", [1.6])  # a real regression of every benchmark
    c = compare.compare(load_run(base), load_run(everything))
    assert c.common_shift == pytest.approx(0.6) and len(c.regressions) == len(c.rows)
