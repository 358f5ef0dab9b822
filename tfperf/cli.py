"""The ``tfperf`` command (also ``python -m tfperf``), one argparse parser for every subcommand:

- ``tfperf run [SPEC ...] [OPTIONS]``: the main job, from any folder (the same as ``pytest bench --benchmark-only``
  in the repository; a SPEC is ``--tfperf-scenarios SPEC``, ``--size`` is ``--tfperf-size``, and every other
  ``--tfperf-*`` option and pytest's ``-k`` pass through);
- ``tfperf ab BASE NEW [OPTIONS]``: before and after in one run (:mod:`tfperf.api.ab`): exit 1 on a regression
  beyond ``--threshold``, 2 on unusable input;
- ``tfperf tune SPEC[:scenario] [OPTIONS]``: what to set (:mod:`tfperf.measure.tune`);
- ``tfperf list [SPEC ...]``: the scenarios and variants a run would hold;
- ``tfperf report build RUN`` (RUN/report.html), ``tfperf report table RUN`` (the comparison tables);
- ``tfperf compare BASE NEW`` or ``BASE... -- NEW...`` (also ``tfperf report compare``): exit 1 on a flagged
  regression, 2 if not comparable.

Reports are made from results folders alone: nothing here imports TensorFlow except ``list``.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import time
from pathlib import Path

from tfperf.analysis import answers, tables
from tfperf.analysis import gate as cmp
from tfperf.api import registry
from tfperf.measure.launch import run_suite
from tfperf.render import compare_page, html
from tfperf.results.store import ReportError, atomic_write, load_run


def _own_peak_mb() -> float:
    """This process's peak RSS since it exec'd. ru_maxrss survives exec on Linux, so when a large process
    (pytest with TensorFlow loaded) starts this one, ru_maxrss reports the parent's size; VmHWM belongs to
    the address space, which exec replaces."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _percent(option: str, text: str, low: float = 0.0, high: float = 1000.0) -> float:
    """A percentage option as a fraction: finite, within [low, high], or a ReportError naming the option."""
    try:
        value = float(text)
    except ValueError:
        raise ReportError(f"{option} wants a number of percent, got {text!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise ReportError(f"{option} must be between {low:g} and {high:g} percent, got {text}")
    return value / 100


def _thresholds(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        pattern, sep, value = item.rpartition("=")
        if not sep or not pattern:
            raise ReportError(f"--threshold-for wants PATTERN=PERCENT, got {item!r}")
        out[pattern] = _percent(f"--threshold-for {pattern!r}", value)
    return out


def _split_runs(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """`compare BASE... -- NEW...`: the runs after a bare `--` are the new side (None when there is none)."""
    if "--" not in argv:
        return argv, None
    i = argv.index("--")
    return argv[:i], argv[i + 1:]


def parser(prog: str = "tfperf") -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog=prog, description="tfperf: what each TensorFlow input-pipeline and training "
                                                         "choice costs or gains, measured on your machine")
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="the main job: time, profile and report every variant (options: tfperf run --help)",
                   add_help=False)
    sub.add_parser("ab", help="before and after in one run: BASE NEW measured in the same rounds (tfperf ab --help)",
                   add_help=False)
    sub.add_parser("tune", help="what to set: the fastest configuration of a stages pipeline, proved by paired "
                                "measurement (tfperf tune --help)", add_help=False)
    ls = sub.add_parser("list", help="the scenarios and variants a run would hold")
    ls.add_argument("specs", nargs="*", metavar="SPEC", help="a module or a .py file (default: the built-ins)")
    report = sub.add_parser("report", help="reports from a results folder: build | table | compare")
    kinds = report.add_subparsers(dest="command", required=True)
    b = kinds.add_parser("build", help="write RUN/report.html")
    b.add_argument("run")
    b.add_argument("--out", type=Path, help="where to write the page (default: RUN/report.html)")
    b.add_argument("--workers", type=int, default=2, help="processes converting traces, 1 to 16 (default 2)")
    t = kinds.add_parser("table", help="print the comparison tables of one run")
    t.add_argument("run")
    for where in (kinds, sub):
        c = where.add_parser("compare", help="compare runs: BASE NEW, or BASE... -- NEW...; exit 1 on a flagged "
                                             "regression, 2 if not comparable")
        c.add_argument("runs", nargs="+", metavar="RUN")
        c.add_argument("--threshold", default="5", help="percent change that may be flagged, 0 to 1000 (default 5)")
        c.add_argument("--threshold-for", action="append", default=[], metavar="GLOB=PERCENT",
                       help="per-benchmark threshold, e.g. 'training/mlp-eager-*=15' (repeatable)")
        c.add_argument("--alpha", default="0.05",
                       help="significance level of the tests, above 0 and below 1 (default 0.05)")
        c.add_argument("--drift", default="12",
                       help="with one run a side: percent a whole block (or a benchmark judged on its own time) "
                            "moves between two runs of one code on this machine; only a move beyond it is "
                            "judged (default 12, measured on 2-core VMs: docs/statistics.md)")
        c.add_argument("--html", type=Path, help="also write the comparison page here")
    return top


def main(argv: list[str] | None = None, prog: str = "tfperf") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if registry.shadowed():
        print(f"tfperf: {registry.shadowed()}", file=sys.stderr)
        return 2
    if argv[:1] == ["run"]:
        return run_suite(argv[1:])
    if argv[:1] == ["ab"]:
        return run_ab(argv[1:], prog)
    if argv[:1] == ["tune"]:
        from tfperf.measure import tune

        return tune.run(argv[1:], prog)
    argv, new_side = _split_runs(argv)
    args = parser(prog).parse_args(argv)
    if args.command == "list":
        return _list(args.specs)
    try:
        if args.command == "build":
            if not 1 <= args.workers <= 16:
                raise ReportError(f"--workers must be between 1 and 16, got {args.workers}")
            start = time.perf_counter()
            run = load_run(args.run)
            path, charts, problems = html.build(run, args.out, workers=args.workers)
            note = f" (partial: {len(problems)} problem(s), listed at the top of the page)" if problems else ""
            # workers fork from this (small) process after its exec, so their ru_maxrss is their own
            own, worker = _own_peak_mb(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            print(f"tfperf: report {path}: {charts} charts in {time.perf_counter() - start:.1f}s{note}; "
                  f"peak memory: report process {own:.0f} MB, largest worker {worker:.0f} MB")
        elif args.command == "table":
            run = load_run(args.run)
            print("\n".join(["== the answer", *answers.lines(run), "", tables.format_text(run)]))
        else:
            if new_side is None:
                if len(args.runs) != 2:
                    raise ReportError(f"compare wants BASE NEW, or BASE... -- NEW...; got {len(args.runs)} runs")
                base_paths, new_paths = args.runs[:1], args.runs[1:]
            else:
                base_paths, new_paths = args.runs, new_side
                if not new_paths:
                    raise ReportError("compare BASE... -- NEW...: no run after --")
            threshold = _percent("--threshold", args.threshold)
            try:
                alpha = float(args.alpha)
            except ValueError:
                raise ReportError(f"--alpha wants a number, got {args.alpha!r}") from None
            if not (math.isfinite(alpha) and 0 < alpha < 1):
                raise ReportError(f"--alpha must be above 0 and below 1, got {args.alpha}")
            comparison = cmp.compare([load_run(p) for p in base_paths], [load_run(p) for p in new_paths],
                                     threshold=threshold, per_benchmark=_thresholds(args.threshold_for), alpha=alpha,
                                     drift=_percent("--drift", args.drift))
            print(compare_page.format_text(comparison))
            if args.html:
                atomic_write(args.html, compare_page.format_html(comparison))
                print(f"tfperf: comparison page {args.html}")
            return comparison.exit_code
    except ReportError as exc:
        print(f"tfperf: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"tfperf: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a results file of an unexpected shape
        runs = [args.run] if args.command != "compare" else [*args.runs, *(new_side or [])]
        where = ", ".join(f"{r}/benchmarks.json" if Path(r).is_dir() else str(r) for r in runs if r)
        print(f"tfperf: {where}: malformed results ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 2
    return 0



def _ab_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{prog} ab", description="Before and after in one run: the scenarios of BASE and NEW (each a module or a "
        ".py file, optionally :attribute) paired by scenario and variant name and measured in the same rounds of the "
        "same worker processes. Exit 1 on a regression beyond --threshold, 2 on unusable input.",
        epilog="Other options pass through to the run (tfperf run --help), e.g. --tfperf-rounds 8.")
    p.add_argument("base", metavar="BASE")
    p.add_argument("new", metavar="NEW")
    p.add_argument("--threshold", default="5", help="percent slowdown that fails the run, 0 to 1000 (default 5)")
    p.add_argument("--size", default="default", help="smoke, small, default or large (default: default)")
    p.add_argument("--results", default="results", help="results root (default: results)")
    p.add_argument("--run-id", default=None, help="run folder name (default: ab-<time>-<size>)")
    p.add_argument("--processes", default=None, help="worker processes (default: the size's)")
    p.add_argument("--profile", action="store_true", help="also capture a trace of every variant of both sides")
    p.add_argument("-k", dest="select", default=None, metavar="EXPR", help="select benchmarks as pytest's -k does")
    p.add_argument("--base-rev", default=None, metavar="REV",
                   help="take BASE (a .py file in a git repository) as it is at this revision, e.g. HEAD~1 or main; "
                        "the project's files at REV go to a temporary folder removed afterwards")
    p.add_argument("--new-rev", default=None, metavar="REV", help="likewise for NEW (default: the working tree)")
    p.add_argument("--base-python", default=None, metavar="PYTHON",
                   help="measure BASE in this interpreter (another virtual environment: another TensorFlow or Keras); "
                        "each side's rounds then run in its own worker processes, alternating with the other side's")
    p.add_argument("--new-python", default=None, metavar="PYTHON", help="likewise for NEW (default: this interpreter)")
    return p


def run_ab(argv: list[str], prog: str = "tfperf") -> int:
    """`tfperf ab BASE NEW`: a side at a revision (--base-rev, --new-rev) is checked out first; each side is loaded
    here first (a side that does not import, a revision that does not exist, or nothing in common: one line, exit 2,
    no run folder), then the run goes through pytest with --tfperf-ab; the exit code is the answer's (ab.json)."""
    args, rest = _ab_parser(prog).parse_known_args(argv)
    try:
        threshold = _percent("--threshold", args.threshold)
    except ReportError as exc:
        print(f"tfperf ab: {exc}", file=sys.stderr)
        return 2
    from contextlib import ExitStack

    from tfperf.procs import revisions

    with ExitStack() as copies:  # a side at a revision: its copy is removed whatever happens
        try:
            for label, rev in (("BASE", args.base_rev), ("NEW", args.new_rev)):
                if rev is not None:
                    spec, _ = copies.enter_context(revisions.checked_out(getattr(args, label.lower()), rev, label))
                    setattr(args, label.lower(), spec)
        except revisions.RevisionError as exc:
            print(f"tfperf ab: {exc}", file=sys.stderr)
            return 2
        return _run_ab(args, rest, threshold)


def _run_ab(args: argparse.Namespace, rest: list[str], threshold: float) -> int:
    import json
    from datetime import datetime

    from tfperf.runtime.quiet import tensorflow_started

    with tensorflow_started():
        from tfperf.api import ab, registry
        from tfperf.runtime import devices

        devices.configure()  # before a side's file can run a TensorFlow op: the CPU split the run uses
        reg = registry.load([ab.spec(args.base, args.new)])
    if reg.errors:
        print(f"tfperf ab: {reg.errors[0][1]}", file=sys.stderr)
        return 2
    run_id = args.run_id or f"ab-{datetime.now():%Y%m%d-%H%M%S}-{args.size}"
    command = ["--tfperf-ab", args.base, args.new, "--tfperf-ab-threshold", f"{100 * threshold:g}",
               "--tfperf-size", args.size, "--tfperf-results", args.results, "--tfperf-run-id", run_id]
    if args.processes is not None:
        command += ["--tfperf-processes", args.processes]
    if not args.profile:
        command.append("--tfperf-no-profile")
    if args.select:
        command += ["-k", args.select]
    from tfperf.procs import interpreters

    for side in ("base", "new"):
        python = getattr(args, f"{side}_python")
        if python is not None:
            try:  # here, so a side that cannot measure is one line and exit 2, with no run folder
                interpreters.check(python, (os.getcwd(),), f"--{side}-python")
            except interpreters.InterpreterError as exc:
                print(f"tfperf ab: {exc}", file=sys.stderr)
                return 2
            command += [f"--tfperf-ab-{side}-python", python]
    rc = run_suite([*command, *rest])
    answer = Path(args.results) / run_id / "ab.json"
    if answer.is_file():
        return int(json.loads(answer.read_text())["exit_code"])
    return 2 if rc in (2, 3, 4, 5) else rc


def _list(specs: list[str]) -> int:
    from tfperf.runtime.quiet import tensorflow_started

    with tensorflow_started():  # a SPEC imports TensorFlow: its start-up notices stay out of the listing
        from tfperf.api import registry

        reg = registry.load(specs)
    for name, sc in reg.items():
        print(f"{name} ({sc.kind}, version {sc.version}, from {reg.origin[name]}): {len(sc.variants)} variants")
        for v in sc.variants:
            extra = f"  vs {v.baseline}" if v.baseline else ""
            needs = f"  requires {', '.join(v.requires)}" if v.requires else ""
            print(f"  {v.name}{extra}{needs}")
    for spec, cause in reg.errors:
        print(f"tfperf: {spec}: {cause}", file=sys.stderr)
    return 1 if reg.errors else 0


if __name__ == "__main__":
    sys.exit(main())
