"""The answer first: per scenario a verdict and the resolved changes worth making, ranked by gain, with their knobs;
on the page's first section and at the top of `tfperf report table`. Checked on the committed default run."""

import subprocess
import sys

from tfperf.analysis import answers, tables
from tfperf.render import html
from tfperf.results.store import load_run

from .conftest import REPO

DEFAULT_RUN = REPO / "docs" / "example-default-run"


def test_changes_are_the_findings_ranked_by_the_gain_their_interval_guarantees():
    run = load_run(DEFAULT_RUN)
    by = {a.scenario: a for a in answers.answers(run)}
    cpu = by["cpu"]
    assert cpu.changes[0].startswith("cache: ") and "(set cache=True)" in cpu.changes[0]
    assert len(cpu.changes) <= answers.TOP
    for a in by.values():  # every listed change is a finding of the run, ranked by its interval's lower end
        t = tables.scenario_table(run, a.scenario)
        los = [float(t.loc[t["variant"] == c.split(":")[0], "speedup_lo"].iloc[0]) for c in a.changes]
        assert los == sorted(los, reverse=True)
        for c in a.changes:
            row = t[t["variant"] == c.split(":")[0]].iloc[0].to_dict()
            assert tables.finding(row) == "faster"
            assert row.get("bound_variant") != row["variant"]  # a compute-only bound is not a choice


def test_a_training_verdict_says_whether_the_input_is_what_to_change():
    by = {a.scenario: a for a in answers.answers(load_run(DEFAULT_RUN))}
    assert by["mlp"].verdict.startswith("input-bound: ") and "longer than its compute-only bound" in by["mlp"].verdict
    assert "no resolved difference:" in by["light"].no_difference


def test_the_page_and_the_table_open_with_the_answer(fixture_run, tmp_path):
    doc, _, _ = html.render(load_run(fixture_run), workers=1)
    assert doc.index("id='answer'") < doc.index("id='findings'") < doc.index("id='diagnosis'")
    out = subprocess.run([sys.executable, "-m", "tfperf", "report", "table", str(fixture_run)], capture_output=True,
                         text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    first = out.stdout.splitlines()
    assert first[0] == "== the answer" and first[1].startswith("light: ")
