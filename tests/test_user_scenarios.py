"""Bring your own: SPECs, entry points, the example, the console script, and bad input in one line each."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tfperf.api import registry

from .conftest import REPO
from .test_bench import USER, _bench, _workers_left

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("spec, message", [
    ("no_such_module_xyz", "no module named 'no_such_module_xyz'"),
    ("missing.py", "no such file: missing.py"),
    ("{user}:nothing", "has no attribute 'nothing'"),
    ("{user}:os", "is module, not a scenario or a list of scenarios"),
    ("json", "json defines no scenario"),
    ("{raises}", "importing {raises} raised RuntimeError: the file itself is broken"),
])
def test_a_bad_spec_is_one_error_and_the_others_load(tmp_path, spec, message):
    user = tmp_path / "user_scenarios.py"
    user.write_text(USER)
    raises = tmp_path / "raises.py"
    raises.write_text("raise RuntimeError('the file itself is broken')\n")
    spec = spec.format(user=user, raises=raises)
    reg = registry.load([spec, f"{user}:ok"])
    assert list(reg.scenarios) == ["ok"]
    [(where, cause)] = reg.errors
    assert where == spec and message.format(raises=raises) in cause and "\n" not in cause


def test_a_spec_names_a_list_or_a_function_and_names_must_be_unique(tmp_path):
    user = tmp_path / "user_scenarios.py"
    user.write_text(USER + "\nALL = [ok, bad]\ndef make():\n    return ok\n")
    assert list(registry.load([f"{user}:ALL"]).scenarios) == ["ok", "bad"]
    assert list(registry.load([f"{user}:make"]).scenarios) == ["ok"]
    assert list(registry.load([str(user)]).scenarios) == ["ok", "bad", "crash", "alone"]  # every one at top level
    twice = tmp_path / "twice.py"
    twice.write_text("import tfperf, tensorflow as tf\n"
                     "ok = tfperf.dataset('ok', lambda: tf.data.Dataset.range(4).batch(2))\n")
    reg = registry.load([f"{user}:ok", str(twice)])
    assert list(reg.scenarios) == ["ok"] and "already taken" in reg.errors[0][1]


def test_a_run_with_a_bad_spec_reports_it_in_one_line_and_keeps_the_rest(tmp_path):
    user = tmp_path / "user_scenarios.py"
    user.write_text(USER)
    proc = _bench(tmp_path, "--tfperf-scenarios", "no_such_module_xyz", "--tfperf-scenarios", f"{user}:ok",
                  "--tfperf-no-profile", "--tfperf-no-report")
    assert proc.returncode == 1
    assert "tfperf: --tfperf-scenarios no_such_module_xyz: no module named 'no_such_module_xyz'" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    data = json.loads((tmp_path / "results" / "r" / "benchmarks.json").read_text())
    assert sorted(b["extra_info"]["variant"] for b in data["benchmarks"]
                  if b["extra_info"]["scenario"] == "ok") == ["naive", "prefetch"]
    assert data["tfperf"]["scenario_errors"][0]["spec"] == "no_such_module_xyz"
    assert not _workers_left()


def test_the_text_example_runs_at_smoke_with_profiles_and_report(tmp_path):
    proc = _bench(tmp_path, "--tfperf-scenarios", "examples/text_classification.py")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = tmp_path / "results" / "r"
    data = json.loads((run / "benchmarks.json").read_text())
    rows = {(b["extra_info"]["scenario"], b["extra_info"]["variant"]): b["extra_info"] for b in data["benchmarks"]}
    rows.pop(("report", "build"))
    assert {s for s, _ in rows} == {"text", "text_model"}
    assert rows[("text", "vectorized")]["speedup"] > 0 and rows[("text", "naive")]["kind"] == "pipeline"
    fit = rows[("text_model", "fit-best")]
    assert fit["input_variant"] == "text/vectorized" and fit["input_overhead_lo"] <= fit["input_overhead"]
    # every profile verified, but fit with steps_per_execution: xprof finds no steps there (a known limit)
    assert {v for (_, v), r in rows.items() if r["profile"]["status"] != "ok"} <= {
        "fit_spe-naive", "fit_spe-best", "fit_spe-memory"}
    assert data["tfperf"]["scenario_versions"].keys() == {"text", "text_model"}
    page = (run / "report.html").read_text()
    assert "id='scenario-text'" in page and "id='scenario-text_model'" in page
    table = subprocess.run([sys.executable, "-m", "tfperf.cli", "report", "table", str(run)], capture_output=True,
                           text=True, cwd=REPO)
    assert table.returncode == 0 and "== text_model" in table.stdout and "overhead" in table.stdout
    assert not _workers_left()


def test_entry_points_add_scenarios_beside_the_builtins(tmp_path):
    (tmp_path / "user_scenarios.py").write_text(USER)
    info = tmp_path / "fake_tfperf_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-tfperf-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[tfperf.scenarios]\nmine = user_scenarios:ok\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "tfperf.cli", "list"], cwd=REPO, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    listed = [line.split()[0] for line in proc.stdout.splitlines() if not line.startswith(" ")]
    assert listed == ["light", "cpu", "latency", "step", "mlp", "cnn", "service_latency", "service_cpu",
                      "mlp_multiworker", "ok"]
    assert "from entry point mine (user_scenarios:ok)" in proc.stdout


def test_the_console_script_mirrors_python_m_reports(fixture_run):
    script = Path(sys.executable).with_name("tfperf")
    assert script.is_file(), "pip install -e . puts the tfperf console script beside python"
    a = subprocess.run([str(script), "report", "table", str(fixture_run)], capture_output=True, text=True, cwd=REPO)
    b = subprocess.run([sys.executable, "-m", "reports", "table", str(fixture_run)], capture_output=True, text=True,
                       cwd=REPO)
    assert a.returncode == b.returncode == 0 and a.stdout == b.stdout and "== light" in a.stdout
    bad = subprocess.run([str(script), "report", "table", str(fixture_run / "nope")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_the_distribution_installs_one_namespace(tmp_path):
    """The wheel (what `pip install .` installs) holds the tfperf package and its metadata, nothing else."""
    import zipfile

    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                           str(tmp_path), str(REPO)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    [wheel] = tmp_path.glob("tfperf-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"tfperf", f"{wheel.name.split('-py')[0]}.dist-info"}
    for part in ("tfperf/__init__.py", "tfperf/api/pipelines.py", "tfperf/runtime/training.py",
                 "tfperf/measure/worker.py", "tfperf/render/html.py", "tfperf/builtins/pipelines.py", "tfperf/cli.py",
                 "tfperf/render/templates/report.html.j2", "tfperf/measure/suite.py"):
        assert part in names
    entry_points = zipfile.ZipFile(wheel).read(f"{wheel.name.split('-py')[0]}.dist-info/entry_points.txt").decode()
    assert "tfperf = tfperf.cli:main" in entry_points


def test_tfperf_run_works_from_any_folder(tmp_path):
    """`tfperf run` is the main job without the repository's bench/: the suite and its plugin come from the package,
    the results land in the working folder's results/ and nothing else is written there."""
    work = tmp_path / "project"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-m", "tfperf", "run", "--tfperf-size", "smoke", "--tfperf-no-profile",
                           "--tfperf-no-report", "--tfperf-run-id", "r", "-k", "light/naive", "-q"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = json.loads((work / "results" / "r" / "benchmarks.json").read_text())
    assert {b["extra_info"]["variant"] for b in data["benchmarks"]} >= {"naive"}
    assert sorted(p.name for p in work.iterdir()) == ["results"]


def test_a_bad_spec_and_a_name_clash_are_said_even_when_k_deselects_them(tmp_path):
    user = tmp_path / "user_scenarios.py"
    user.write_text(USER)
    twice = tmp_path / "twice.py"
    twice.write_text("import tfperf, tensorflow as tf\n"
                     "ok = tfperf.dataset('ok', lambda: tf.data.Dataset.range(4).batch(2))\n")
    proc = _bench(tmp_path, "--tfperf-scenarios", "nope.py", "--tfperf-scenarios", f"{user}:ok",
                  "--tfperf-scenarios", str(twice), "-k", "ok/naive", "--tfperf-no-profile", "--tfperf-no-report")
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "tfperf: --tfperf-scenarios nope.py: no such file: nope.py" in proc.stdout
    assert f"tfperf: --tfperf-scenarios {twice}: scenario name 'ok' is already taken" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not _workers_left()


def test_the_image_example_declares_a_heavy_model_whose_cache_keeps_its_augmentation_random(smoke):
    """examples/image_classification.py (keras-io's model at 32 x 32; a whole smoke run of it takes about 4.5
    minutes, so here only what it declares and builds): its random augmentation runs after the cache, so the
    cache variant is measured, not skipped, and the model builds and trains one step on its own data."""
    from tfperf.api import registry
    from tfperf.runtime.build import runnable

    reg = registry.load([str(REPO / "examples" / "image_classification.py")])
    assert not reg.errors and {name for name, _ in reg.items()} == {"pictures", "picture_model"}
    cache = runnable(reg["pictures"], reg["pictures"].variant("cache"), smoke)
    try:
        assert cache.run_round() == cache.examples_per_round
    finally:
        cache.close()
    fit = runnable(reg["picture_model"], reg["picture_model"].variant("fit-naive"), smoke)
    try:
        assert fit.run_round() == fit.examples_per_round == 256
    finally:
        fit.close()
