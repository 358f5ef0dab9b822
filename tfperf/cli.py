"""The ``tfperf`` command (also ``python -m tfperf``), one argparse parser for every subcommand:

- ``tfperf run [OPTIONS]``: the main job, from any folder (the same as ``pytest bench --benchmark-only`` in the
  repository; every ``--tfperf-*`` option and pytest's ``-k`` pass through);
- ``tfperf list [SPEC ...]``: the scenarios and variants a run would hold;
- ``tfperf report build RUN`` (RUN/report.html), ``tfperf report table RUN`` (the comparison tables);
- ``tfperf compare BASE NEW`` or ``BASE... -- NEW...`` (also ``tfperf report compare``): exit 1 on a flagged
  regression, 2 if not comparable.

Reports are made from results folders alone: nothing here imports TensorFlow except ``list``.
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import time
from pathlib import Path

from tfperf.analysis import gate as cmp
from tfperf.analysis import tables
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
        c.add_argument("--html", type=Path, help="also write the comparison page here")
    return top


def main(argv: list[str] | None = None, prog: str = "tfperf") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"]:
        return run_suite(argv[1:])
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
            print(tables.format_text(load_run(args.run)))
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
                                     threshold=threshold, per_benchmark=_thresholds(args.threshold_for), alpha=alpha)
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



def run_suite(args: list[str]) -> int:
    """The main job through pytest, on the suite inside the installed package: every option passes through
    (``tfperf run --help`` lists the ``tfperf`` group among pytest's)."""
    import pytest

    from tfperf.measure import suite

    return int(pytest.main([suite.__file__, "--benchmark-only", "-p", "tfperf.measure.plugin", "-p",
                            "no:cacheprovider", "--rootdir", str(Path.cwd()), *args]))


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
