"""Keep the tuner honest: for each pipeline, `tfperf tune`, an exhaustive sweep of the same space, and a paired run
of the tuner's choice against the sweep's best.

    python scripts/tune_eval.py --size small --out /tmp/tune-eval [--only NAME ...]

Per pipeline (every run a subprocess, one at a time; measure on a quiet machine):
1. ``tfperf tune SPEC:NAME --size SIZE`` (its wall time is the tuning time);
2. the sweep: every structural candidate of the same space (``tfperf.analysis.tuning.space`` of the facts the tune
   measured) in one block of ``tfperf run`` (one worker process, the size's rounds, no profile); its best is the
   candidate with the highest throughput;
3. the final pair: the tuner's choice and the sweep's best in one block (the size's processes), so their ratio
   and each one's speedup over the guide's advice come from paired rounds with the suite's intervals;
4. the bottleneck check: the stage whose own knobs gain most in the sweep (map: width or vectorized; source:
   interleave; consumer: prefetch; a cache counts for the source and the map) against the stage the tuner named.

Writes OUT/eval.json and prints the markdown table of docs/tune.md.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from tfperf.analysis import stats, tuning
from tfperf.api import tune as tune_api
from tfperf.results.store import load_run

HERE = Path(__file__).resolve().parent
EXTRA = str(HERE / "tune_pipelines.py")
PIPELINES = [
    ("tfperf.builtins.pipelines", "light", []),
    ("tfperf.builtins.pipelines", "cpu", []),
    ("tfperf.builtins.pipelines", "latency", []),
    ("tfperf.builtins.pipelines", "step", []),
    (EXTRA, "generator", []),
    (EXTRA, "jitter", []),
    (EXTRA, "shuffled", []),
    (EXTRA, "bigcache", ["--ram-budget", "64M"]),
    (EXTRA, "cheap", []),
    (EXTRA, "text", []),
    (EXTRA, "train", []),
    ("tfperf.builtins.models", "mlp", []),  # a model scenario: its input through its own training step
]
MODELS = {"mlp"}
PATHOLOGICAL = {"generator", "jitter", "shuffled", "bigcache", "cheap", "text", "train"}


def tfperf(*args: str) -> tuple[int, float]:
    start = time.perf_counter()
    rc = subprocess.run([sys.executable, "-m", "tfperf", *args], stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL).returncode
    return rc, time.perf_counter() - start


def side(r) -> dict:
    return {"times": list(r.times), "examples": float(r.examples), "process": list(r.round_process)}


def rows(run_dir: Path, name: str) -> dict:
    f = load_run(run_dir).frame
    return {r.variant: r for r in f[f["scenario"] == name].itertuples() if r.status == "ok" and len(r.times)}


def knobs_of(entry: dict) -> tuning.Knobs:
    k = dict(entry)
    k["options"] = tuple(tuple(kv) for kv in k.get("options", ()))
    return tuning.Knobs(**k)


def stage_gains(ok: dict, cands: dict[str, tuning.Knobs]) -> dict[str, float]:
    """Per stage, the best throughput over as written of a candidate that changes only that stage's knobs."""
    base = ok[tune_api.AS_WRITTEN].examples_per_sec
    gains = {"map": 1.0, "source": 1.0, "consumer": 1.0}
    for name, k in cands.items():
        if name not in ok:
            continue
        g = ok[name].examples_per_sec / base
        if k.cache and k.prefetch is None:
            gains["map"] = max(gains["map"], g)
            gains["source"] = max(gains["source"], g)
        elif k.interleave and k.map_parallel is None and not k.vectorized and k.prefetch is None:
            gains["source"] = max(gains["source"], g)
        elif (k.map_parallel is not None or k.vectorized) and not k.interleave and k.prefetch is None:
            gains["map"] = max(gains["map"], g)
        elif k.prefetch is not None and k.map_parallel is None and not k.vectorized and not k.interleave \
                and not k.cache:
            gains["consumer"] = max(gains["consumer"], g)
    return gains


def evaluate(spec: str, name: str, extra: list[str], size: str, out: Path) -> dict:
    res: dict = {"pipeline": name, "spec": spec}
    rc, tune_s = tfperf("tune", f"{spec}:{name}", "--size", size, "--results", str(out), "--run-id", f"{name}-tune",
                        *extra)
    res["tune_s"], res["tune_rc"] = tune_s, rc
    answer = json.loads((out / f"{name}-tune" / "tune.json").read_text())
    facts = tuning.Facts(**{k: (tuple(v) if k == "random_in_map" else v) for k, v in answer["facts"].items()
                            if k != "cache_bytes"})
    space = [k for k in tuning.space(facts) if k not in (tuning.AS_WRITTEN, tuning.GUIDE)]
    cands = {k.name(): k for k in space}
    model = name in MODELS
    rows_of = f"{name}-step" if model else name  # a model's input block is named for its training step
    block = tune_api.spec(spec, name, [(n, tuning_knobs(k)) for n, k in cands.items()], through_step=model)
    rc, sweep_s = tfperf("run", block, "--size", size, "--results", str(out), "--run-id", f"{name}-sweep",
                         "--processes", "1", "--no-profile", "--no-report", "--budget", "3600")
    res["sweep_s"], res["space"] = sweep_s, len(space)
    ok = rows(out / f"{name}-sweep", rows_of)
    measured = {n: ok[n].examples_per_sec for n in cands if n in ok}
    best = max(measured, key=lambda n: measured[n])
    res["sweep_best"] = best
    res["sweep_best_vs_written"] = measured[best] / ok[tune_api.AS_WRITTEN].examples_per_sec
    rec = answer.get("recommended") or {}
    tuned = rec.get("name")
    res["tuned"] = tuned
    res["bottleneck_named"] = answer["bottleneck"]["stage"]
    gains = stage_gains(ok, cands)
    res["stage_gains"] = gains
    top = max(gains, key=lambda s: gains[s])
    named = res["bottleneck_named"].split(" ")[0]
    if gains[top] < 1.1:  # nothing in the space gains 10% at any one stage: the sweep names no bottleneck
        top = "none"
    res["bottleneck_sweep"] = top
    # a cache gains for the source and the map alike: either name agrees; where nothing gains, nothing contradicts
    res["bottleneck_agrees"] = named == top or top == "none" or (
        {named, top} <= {"map", "source"} and gains["map"] == gains["source"])
    res["peak_rss_bytes"] = answer.get("peak_rss_bytes")
    res["ram_budget_bytes"] = answer.get("ram_budget_bytes")
    res["model_check"] = answer.get("model_check")
    res["training"] = {k: v for k, v in (answer.get("training") or {}).items() if k != "confirm"}
    if not tuned:
        return res
    final = [(n, tuning_knobs(knobs_of(rec["knobs"]) if n == tuned else cands[n])) for n in dict.fromkeys([tuned, best])]
    rc, final_s = tfperf("run", tune_api.spec(spec, name, final, through_step=model), "--size", size, "--results", str(out), "--run-id",
                         f"{name}-final", "--no-profile", "--no-report")
    ok = rows(out / f"{name}-final", rows_of)
    pairs = [(side(ok[v]), side(ok[tune_api.AS_WRITTEN])) for v in ok if v != tune_api.AS_WRITTEN]
    between = stats.pool_between([stats.pair_component(a, b) for a, b in pairs])
    res["tuned_vs_best"] = stats.speedup(side(ok[tuned]), side(ok[best]), between) if best != tuned else (1, 1, 1, 1)
    res["tuned_vs_guide"] = stats.speedup(side(ok[tuned]), side(ok[tune_api.GUIDE]), between)
    res["best_vs_guide"] = stats.speedup(side(ok[best]), side(ok[tune_api.GUIDE]), between)
    res["tuned_vs_bound"] = stats.speedup(side(ok[tuned]), side(ok[tune_api.BOUND]), between)
    res["best_vs_bound"] = stats.speedup(side(ok[best]), side(ok[tune_api.BOUND]), between)
    return res


def tuning_knobs(k: tuning.Knobs) -> dict:
    from tfperf.measure.tune import _knobs
    return _knobs(k)


def fmt(x: tuple | None) -> str:
    if not x:
        return "-"
    est, lo, hi = x[:3]
    return f"{est:.2f} [{lo:.2f}, {hi:.2f}]" if not (math.isnan(lo) or math.isnan(hi)) else f"{est:.2f}"


def table(results: list[dict]) -> str:
    head = ("| pipeline | space | sweep best | tuner's choice | tuned/best | tuned/guide | best/guide | "
            "tune s | sweep s | tune/sweep | bottleneck named / sweep | over bound: tuned, best |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        if "tuned_vs_best" not in r:
            lines.append(f"| {r['pipeline']} | {r.get('space', '-')} | {r.get('sweep_best', '-')} | nothing | - | - | - | "
                         f"{r.get('tune_s', 0):.0f} | {r.get('sweep_s', 0):.0f} | - | - | - |")
            continue
        over = lambda x: f"{100 * (1 / x[0] - 1):+.0f}%"  # noqa: E731
        lines.append(
            f"| {r['pipeline']} | {r['space']} | {r['sweep_best']} | {r['tuned']} | {fmt(r['tuned_vs_best'])} | "
            f"{fmt(r['tuned_vs_guide'])} | {fmt(r['best_vs_guide'])} | {r['tune_s']:.0f} | {r['sweep_s']:.0f} | "
            f"{r['tune_s'] / r['sweep_s']:.2f} | {r['bottleneck_named'].split(' ')[0]} / {r['bottleneck_sweep']} | "
            f"{over(r['tuned_vs_bound'])}, {over(r['best_vs_bound'])} |")
    done = [r for r in results if "tuned_vs_best" in r]
    if done:
        ratios = [r["tuned_vs_best"][0] for r in done]
        patho = [r["tuned_vs_guide"][0] for r in done if r["pipeline"] in PATHOLOGICAL]
        lines.append("")
        lines.append(f"tuned/best: median {np.median(ratios):.2f}, worst {min(ratios):.2f}; tuned/guide over the "
                     f"pathological ones: median {np.median(patho) if patho else float('nan'):.2f}; tune/sweep time: "
                     f"median {np.median([r['tune_s'] / r['sweep_s'] for r in done]):.2f}; bottleneck agrees "
                     f"{sum(r['bottleneck_agrees'] for r in done)} of {len(done)}")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="small")
    p.add_argument("--out", type=Path, default=Path("/tmp/tune-eval"))
    p.add_argument("--only", nargs="*", default=None)
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    results = []
    for spec, name, extra in PIPELINES:
        if a.only and name not in a.only:
            continue
        for d in ("tune", "sweep", "final"):
            if (a.out / f"{name}-{d}").exists():
                subprocess.run(["rm", "-rf", str(a.out / f"{name}-{d}")], check=True)
        try:
            r = evaluate(spec, name, extra, a.size, a.out)
        except Exception as exc:  # noqa: BLE001 - one pipeline's failure is a row, not the end of the evaluation
            r = {"pipeline": name, "error": f"{type(exc).__name__}: {exc}"}
        results.append(r)
        print(json.dumps(r, default=str), flush=True)
        (a.out / "eval.json").write_text(json.dumps(results, indent=1, default=str))
    print(table([r for r in results if "error" not in r]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
