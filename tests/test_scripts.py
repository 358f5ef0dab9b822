"""The helper scripts under scripts/ run from a fresh clone and say what is wrong in one line."""

import os
import subprocess
import sys

from .conftest import REPO


def _drift(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "scripts/drift.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=env)


def test_drift_prints_each_window_with_the_ratios_to_the_first_variant():
    proc = _drift("light", "naive", "parallel_prefetch", "--size", "smoke", "--seconds", "2", "--window", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert "naive" in lines[0] and "parallel_prefetch" in lines[0]
    windows = [line.split() for line in lines[1:]]
    assert windows, proc.stdout
    for w in windows:  # t, then per variant: median, "x", ratio, "nK"
        assert len(w) == 1 + 2 * 4
        assert w[2:4] == ["x", "1.00"]  # the first variant against itself
        assert float(w[1]) > 0 and float(w[5]) > 0
        assert abs(float(w[7]) - float(w[5]) / float(w[1])) < 0.01 + 0.01 * float(w[7])


def test_drift_names_an_unknown_scenario_or_variant_in_one_line():
    proc = _drift("nope", "naive")
    assert proc.returncode == 2
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("drift: no scenario 'nope' (known: light, cpu, "), lines
    proc = _drift("light", "nope")
    assert proc.returncode == 2
    assert proc.stdout.strip() == "drift: light has no variant 'nope'"
    assert "Traceback" not in proc.stderr


def test_drift_says_in_one_line_when_a_variant_cannot_be_built(tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the data cache should go")
    proc = _drift("cpu", "naive", "--size", "smoke", "--seconds", "1", env={**os.environ, "TFPERF_CACHE": str(blocked)})
    assert proc.returncode == 2
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("drift: cpu/naive could not be built: ") and "TFPERF_CACHE" in lines[0]
    assert "Traceback" not in proc.stderr


def test_findings_agreement_counts_null_pairs_and_contradictions(fixture_run, tmp_path):
    """A run against itself contradicts none of its findings; a copy whose one finding is reversed is caught."""
    import json

    same = subprocess.run([sys.executable, "scripts/findings_agreement.py", str(fixture_run), str(fixture_run)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert same.returncode == 0, same.stderr
    assert "null pairs holding 1: 1 of 2" in same.stdout  # the fixture's light/naive pair reads [1.034, 1.240]
    assert all(line.endswith(": 0") for line in same.stdout.splitlines() if "contradicted by" in line)
    data = json.loads((fixture_run / "benchmarks.json").read_text())
    for b in data["benchmarks"]:
        e = b["extra_info"]
        if e.get("variant") == "vectorized" and e.get("speedup"):
            e["speedup"], e["speedup_lo"], e["speedup_hi"] = 1 / e["speedup"], 1 / e["speedup_hi"], 1 / e["speedup_lo"]
    flipped = tmp_path / "flipped"
    flipped.mkdir()
    (flipped / "benchmarks.json").write_text(json.dumps(data))
    out = subprocess.run([sys.executable, "scripts/findings_agreement.py", str(fixture_run), str(flipped)],
                         cwd=REPO, capture_output=True, text=True, timeout=120).stdout
    assert "light/vectorized" in out and "(sign flipped)" in out
