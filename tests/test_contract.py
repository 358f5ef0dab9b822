"""The seams of the layout: the runnable contract's defaults, a block's live state kept out of the frozen
declarations, the results schema's round trip, and the import graph (no circle; declarations without TensorFlow)."""

import ast
import dataclasses
import json
import random
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import tfperf
from tfperf.analysis.tables import missing
from tfperf.api.base import Scenario, ScenarioError, Size, Variant
from tfperf.measure.block import Member, run_block
from tfperf.results import schema
from tfperf.results.store import load_run
from tfperf.runtime.base import Block, Runnable
from tfperf.runtime.build import open_block, runnable

from .conftest import REPO


class _Minimal(Runnable):
    """Only what the contract requires."""

    def __init__(self):
        self.info, self.examples_per_round, self.passes = {}, 4, 1

    def run_round(self) -> int:
        return self.examples_per_round

    def scale(self, passes: int, repeat: int = 1) -> None:
        self.passes, self.examples_per_round = passes, 4 * passes * repeat

    def profile(self, steps, mark) -> int:
        return steps


def test_the_contracts_optional_hooks_default_to_nothing():
    r = _Minimal()
    assert r.by_pass is False and r.warm_after_scale is True
    assert r.pids() == [] and r.measured() == {} and r.capture(Path("."), 3, None) is None
    assert r.before_round() is None and r.after_round(0.1, 4) is None and r.start_timing() is None
    assert r.close() is None
    with pytest.raises(NotImplementedError):
        r.run_pass()
    with pytest.raises(NotImplementedError):
        Runnable().run_round()


def test_a_block_measures_a_runnable_that_implements_only_the_required_members():
    scenario = SimpleNamespace(name="s", kind="other", partners=lambda v: [])
    v = SimpleNamespace(name="v", requires=())
    out = run_block([Member(scenario, v, "v", selected=True)], {}, Size("t", 3, 0.0, 1), random.Random(0), {},
                    build=lambda sc, var, size, block: _Minimal())
    [rec] = out["members"]
    assert rec["status"] == "ok" and len(rec["times"]) == 3 and rec["examples"] == 4


def test_a_hand_made_scenario_must_build_a_runnable():
    ok = Scenario(name="hand", version="1", variants=(Variant(name="v"),), build=lambda v, size: _Minimal())
    assert isinstance(runnable(ok, ok.variants[0], tfperf.SIZES["smoke"]), _Minimal)
    bad = Scenario(name="hand", version="1", variants=(Variant(name="v"),), build=lambda v, size: object())
    with pytest.raises(ScenarioError, match="build returned object, expected a subclass of tfperf.Runnable"):
        runnable(bad, bad.variants[0], tfperf.SIZES["smoke"])


def test_building_variants_leaves_the_declaration_as_it_was_and_blocks_apart(smoke):
    from tfperf.builtins.pipelines import light

    before = dataclasses.asdict(light), dict(vars(light))
    first, second = open_block(light), open_block(light)
    a = runnable(light, light.variant("naive"), smoke, first)
    b = runnable(light, light.variant("prefetch"), smoke, first)
    c = runnable(light, light.variant("naive"), smoke, second)
    assert a.data is b.data and a.data is not c.data  # one view of the pipeline per block, none shared across
    assert a.data.memo and (dataclasses.asdict(light), dict(vars(light))) == before
    for r in (a, b, c):
        r.close()
    assert type(first) is Block


def test_the_schema_round_trips_a_run_the_suite_wrote(fixture_run):
    raw = json.loads((fixture_run / "benchmarks.json").read_text())
    assert set(raw["tfperf"]) | set(schema.ADDED) == set(schema.SECTION)  # the fixture predates the ADDED keys
    run = load_run(fixture_run)
    assert tuple(run.frame.columns) == schema.COLUMNS  # every row has every column, written or not
    rows = {r.name: r._asdict() for r in run.frame.itertuples(index=False)}
    for bench in raw["benchmarks"]:
        row = rows[bench["name"]]
        for key in schema.FIELDS:
            written = bench["extra_info"].get(key)
            if missing(written):
                assert missing(row[key]), key  # pandas may hold a missing value as None or NaN
            else:
                assert row[key] == written, key
        assert row["times"] == bench["stats"]["data"]


def test_the_section_refuses_a_missing_or_unknown_key():
    full = {k: None for k in schema.SECTION if k != "schema"}
    assert schema.section(**full)["schema"] == schema.SCHEMA
    with pytest.raises(ValueError, match="missing \\['seed'\\]"):
        schema.section(**{k: v for k, v in full.items() if k != "seed"})
    with pytest.raises(ValueError, match="unknown \\['extra'\\]"):
        schema.section(**full, extra=1)


def _imports() -> dict[str, set[str]]:
    """Every tfperf module and the tfperf modules it imports, at the top or inside a function."""
    root = REPO / "tfperf"
    graph: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = name if parts[-1] == "__init__" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, *([base] if base else [])])
                found |= {f"{base}.{a.name}" for a in node.names} | {base}
        graph[name] = found
    modules = set(graph)
    return {m: {i for i in imps if i in modules and i != m} for m, imps in graph.items()}


def test_no_import_circle_counting_imports_inside_functions():
    graph = _imports()
    # a package imports what its __init__ names; the edge from a module to its own package's __init__ is not a cycle
    graph = {m: {i for i in deps if not m.startswith(i + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                raise AssertionError("import circle: " + " -> ".join([*path[path.index(n):], n]))
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    # the measuring code reads no analysis internals: only the one statistics module, for the rows' intervals (the
    # plugin, the session's front end, and its A/B answer read the finished run through the analysis side like any
    # reader; so does the tuner's command, which reads its confirmations' runs)
    front = ("tfperf.measure.plugin", "tfperf.measure.ab_answer", "tfperf.measure.tune")
    measuring = {d for m, deps in graph.items() if m.startswith(("tfperf.measure", "tfperf.runtime"))
                 and m not in front for d in deps}
    assert {d for d in measuring if d.startswith(("tfperf.analysis.", "tfperf.render."))} == {"tfperf.analysis.stats"}


def test_declarations_import_no_tensorflow():
    code = ("import sys, tfperf, tfperf.api.registry, tfperf.api.distributed, tfperf.results.store; "
            "assert not {'tensorflow', 'keras'} & set(sys.modules), sorted({'tensorflow', 'keras'} & set(sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
