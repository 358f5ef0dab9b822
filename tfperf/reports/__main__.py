"""python -m reports (or: tfperf report) build RUN | table RUN | compare BASE NEW: reports from results folders alone."""

from __future__ import annotations

import argparse
import math
import resource
import sys
import time
from pathlib import Path

from . import compare as cmp
from . import html, tables
from .load import ReportError, atomic_write, load_run


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


def main(argv: list[str] | None = None, prog: str = "python -m reports") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    argv, new_side = _split_runs(argv)
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write RUN/report.html")
    b.add_argument("run")
    b.add_argument("--out", type=Path, help="where to write the page (default: RUN/report.html)")
    b.add_argument("--workers", type=int, default=2, help="processes converting traces, 1 to 16 (default 2)")
    t = sub.add_parser("table", help="print the comparison tables of one run")
    t.add_argument("run")
    c = sub.add_parser("compare", help="compare runs: BASE NEW, or BASE... -- NEW...; exit 1 on a flagged "
                                       "regression, 2 if not comparable")
    c.add_argument("runs", nargs="+", metavar="RUN")
    c.add_argument("--threshold", default="5", help="percent change that may be flagged, 0 to 1000 (default 5)")
    c.add_argument("--threshold-for", action="append", default=[], metavar="GLOB=PERCENT",
                   help="per-benchmark threshold, e.g. 'training/mlp-eager-*=15' (repeatable)")
    c.add_argument("--alpha", default="0.05", help="significance level of the tests, above 0 and below 1 (default 0.05)")
    c.add_argument("--html", type=Path, help="also write the comparison page here")
    args = parser.parse_args(argv)
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
            print(cmp.format_text(comparison))
            if args.html:
                atomic_write(args.html, cmp.format_html(comparison))
                print(f"tfperf: comparison page {args.html}")
            return comparison.exit_code
    except ReportError as exc:
        print(f"reports: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"reports: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a results file of an unexpected shape
        runs = [getattr(args, "run", None)] if args.command != "compare" else [*args.runs, *(new_side or [])]
        where = ", ".join(f"{r}/benchmarks.json" if Path(r).is_dir() else str(r) for r in runs if r)
        print(f"reports: {where}: malformed results ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
