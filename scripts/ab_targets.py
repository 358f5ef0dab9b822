"""The `tfperf ab` targets, measured: `python scripts/ab_targets.py STEP [--runs N] [--size S] [--out DIR]`.

The workload is a user's pipeline file written from one template (``WORKLOAD``): every element is a vector of
16384 floats through four ``sin`` ops and a sum; a slower version adds one more ``sin`` over the first ``L``
floats of each element (more work per element, a real code change). Steps:

- ``calibrate``: each version's pipeline iterated alone in this process, interleaved in a shuffled order, 21 times each: the true
  slowdown of every ``L`` (``--extra L ...``);
- ``aa``: N A/A runs (the base file on both sides) of the pipeline block; ``ab``: N runs of base against the
  version with ``--extra L``; ``train``: N A/A runs of the built-in ``mlp`` block's ``-k`` selection;
- ``plain``: one plain run of the base pipeline (same size, no profile, no report), for the wall-time ratio.

``--new-python PYTHON`` (or ``venv2``: a second virtual environment of this one's packages) measures NEW in that
interpreter: each side's rounds in its own workers, alternating.

Each run's verdicts, changes and detection limits are printed and appended to OUT/ab_targets.jsonl. The machine
must be quiet: nothing else heavy may run beside it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

WORKLOAD = '''import tensorflow as tf
import tfperf

EXTRA = {extra}  # one more sin over the first EXTRA floats of each element, TIMES times: the code change under test
TIMES = {times}


def work(x):
    y = x
    for _ in range(4):
        y = tf.sin(y)
    out = tf.reduce_sum(y)
    for _ in range(TIMES if EXTRA else 0):
        out += tf.reduce_sum(tf.sin(y[:EXTRA]))
    return out


def stages(size):
    n = tfperf.per_size({{"smoke": 256, "small": 512, "default": 1024}}, size)
    return tfperf.Stages(
        source=lambda: tf.data.Dataset.from_tensor_slices(tf.random.stateless_uniform([n, 16384], seed=[1, 2])),
        map=work, batch_size=16)


pipe = tfperf.pipeline("workload", stages, variants=["naive", "parallel_autotune"])
'''


def workload(folder: Path, extra: int) -> Path:
    """The workload with EXTRA floats (an `extra` of 2048 or more) one more sin, once per 10000 of `extra`, at
    least once: 2048 is one extra group of ops, 20480 two."""
    times = max(1, extra // 10000)
    length = extra // times if extra else 0
    path = folder / f"workload_{extra}.py"
    path.write_text(WORKLOAD.format(extra=length, times=times))
    return path


def calibrate(folder: Path, extras: list[int], size_name: str) -> None:
    """Each version's variants built as the suite builds them (tfperf.runtime.build), in this one process, and
    their rounds timed in a shuffled order, 21 times each after a warm-up: the slowdown each `extra` really is."""
    import random

    from tfperf.api import registry
    from tfperf.api.base import SIZES
    from tfperf.runtime.build import runnable

    size = SIZES[size_name]
    runs = {}
    for extra in [0, *extras]:
        [sc] = registry.resolve(str(workload(folder, extra)))
        for v in sc.variants:
            runs[(extra, v.name)] = runnable(sc, v, size)
    for r in runs.values():  # warm-up: trace the map functions, fill the pipelines
        r.run_round()
        r.start_timing()
    times: dict[tuple[int, str], list[float]] = {k: [] for k in runs}
    order = list(runs.items())
    for _ in range(21):
        random.shuffle(order)
        for key, r in order:
            start = time.perf_counter()
            r.run_round()
            times[key].append(time.perf_counter() - start)
    for (extra, name), t in times.items():
        base = statistics.median(times[(0, name)])
        print(f"{name:18s} extra {extra:6d}: median {1e3 * statistics.median(t):7.1f} ms a round, "
              f"{100 * (statistics.median(t) / base - 1):+5.1f}% against extra 0")
    for r in runs.values():
        r.close()


def one_ab(base: str, new: str, size: str, out: Path, label: str, extra_args: list[str]) -> dict:
    run_id = f"{label}-{time.strftime('%H%M%S')}"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tfperf", "ab", base, new, "--size", size, "--results", str(out),
                           "--run-id", run_id, *extra_args], capture_output=True, text=True)
    wall = time.perf_counter() - start
    answer_file = out / run_id / "ab.json"
    if not answer_file.is_file():
        print(proc.stdout[-2000:], proc.stderr[-2000:])
        raise SystemExit(f"{label}: no ab.json (exit {proc.returncode})")
    answer = json.loads(answer_file.read_text())
    rows = answer["benchmarks"]
    record = {"label": label, "run": run_id, "exit": proc.returncode, "wall_s": round(wall, 1),
              "flagged": [r["benchmark"] for r in rows if r["verdict"] in ("regression", "improvement")],
              "rows": [{k: r[k] for k in ("benchmark", "change", "lo", "hi", "limit", "p", "verdict")} for r in rows],
              "resolution": answer["resolution"]}
    with open(out / "ab_targets.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    cells = ", ".join(f"{r['benchmark']} {100 * (r['change'] or 0):+.1f}% (limit {100 * (r['limit'] or 0):.1f}%) "
                      f"{r['verdict']}" for r in rows)
    print(f"{label}: exit {proc.returncode}, {wall:.0f}s: {cells}", flush=True)
    return record


def second_environment(folder: Path) -> Path:
    """Another virtual environment of the same TensorFlow (its own interpreter; this one's packages through a .pth
    line): what two-interpreter A/B runs are measured with here, where a second TensorFlow wheel cannot be had."""
    import site
    import venv

    if not (folder / "bin" / "python").exists():
        venv.EnvBuilder(with_pip=False, symlinks=True).create(folder)
        [packages] = list(folder.glob("lib/python*/site-packages"))
        mine = [p for p in site.getsitepackages() if p.endswith("site-packages")]
        (packages / "parent.pth").write_text("".join(f"import site; site.addsitedir({p!r})\n" for p in mine))
    return folder / "bin" / "python"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("step", choices=("calibrate", "aa", "ab", "train", "plain", "separate"))
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--size", default="default")
    ap.add_argument("--extra", type=int, nargs="*", default=[128])
    ap.add_argument("--out", type=Path, default=Path("/tmp/ab_targets"))
    ap.add_argument("-k", dest="select", default="mlp and (fit-best-one_device or function-best or eager-best)")
    ap.add_argument("--new-python", default=None, metavar="PYTHON",
                    help="measure NEW in this interpreter ('venv2': make a second virtual environment of this one's "
                         "packages under OUT and use it)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    folder = args.out / "workloads"
    folder.mkdir(exist_ok=True)
    if args.step == "calibrate":
        calibrate(folder, args.extra, args.size)
        return 0
    base = str(workload(folder, 0))
    if args.step == "plain":  # the same options as an A/B (no profile, no report), then as a plain run's defaults
        for options in (["--no-profile", "--no-report"], []):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "tfperf", "run", base, "--size", args.size, *options, "--results",
                            str(args.out), "--run-id", f"plain-{time.strftime('%H%M%S')}", "-q"], capture_output=True,
                           check=True)
            print(f"plain run of the base pipeline at {args.size} {' '.join(options) or '(profile and report)'}: "
                  f"{time.perf_counter() - start:.0f}s")
        return 0
    if args.step == "separate":  # the same two versions as two separate runs, judged by compare
        for i in range(args.runs):
            runs = []
            for version in (base, str(workload(folder, args.extra[0]))):
                run_id = f"sep-{Path(version).stem}-{time.strftime('%H%M%S')}"
                subprocess.run([sys.executable, "-m", "tfperf", "run", version, "--size", args.size, "--no-profile",
                                "--no-report", "--results", str(args.out), "--run-id", run_id, "-q"],
                               capture_output=True, check=True)
                runs.append(str(args.out / run_id))
            proc = subprocess.run([sys.executable, "-m", "tfperf", "compare", *runs], capture_output=True, text=True)
            rows = [ln for ln in proc.stdout.splitlines() if ln.startswith("workload/")]
            print(f"separate {i} (exit {proc.returncode}):", *rows, sep="\n  ")
        return 0
    records = []
    sides: list[str] = []
    if args.new_python == "venv2":
        sides = ["--new-python", str(second_environment(args.out / "venv2"))]
    elif args.new_python:
        sides = ["--new-python", args.new_python]
    tag = "py2-" if sides else ""
    for i in range(args.runs):
        if args.step == "aa":
            records.append(one_ab(base, base, args.size, args.out, f"{tag}aa{i}", sides))
        elif args.step == "ab":
            new = str(workload(folder, args.extra[0]))
            records.append(one_ab(base, new, args.size, args.out, f"{tag}ab{args.extra[0]}-{i}", sides))
        else:
            records.append(one_ab("tfperf.builtins", "tfperf.builtins", args.size, args.out, f"train{i}",
                                  ["-k", args.select]))
    flagged = sum(1 for r in records if r["flagged"])
    limits = [r["limit"] for rec in records for r in rec["rows"] if r["limit"] is not None]
    per_bench: dict[str, int] = {}
    for rec in records:
        for b in rec["flagged"]:
            per_bench[b] = per_bench.get(b, 0) + 1
    print(f"{args.step}: {flagged} of {len(records)} runs flagged anything; flagged per benchmark {per_bench}; "
          f"detection limit median {100 * statistics.median(limits):.1f}%, max {100 * max(limits):.1f}%; "
          f"wall median {statistics.median(r['wall_s'] for r in records):.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
