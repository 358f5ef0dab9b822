"""python -m reports build RUN | table RUN | compare BASE NEW: reports from results folders alone."""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

from . import compare as cmp
from . import html, tables
from .load import ReportError, load_run


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


def _thresholds(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        pattern, sep, value = item.rpartition("=")
        if not sep or not pattern:
            raise ReportError(f"--threshold-for wants PATTERN=PERCENT, got {item!r}")
        try:
            out[pattern] = float(value) / 100
        except ValueError:
            raise ReportError(f"--threshold-for {item!r}: {value!r} is not a number") from None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write RUN/report.html")
    b.add_argument("run")
    b.add_argument("--out", type=Path, help="where to write the page (default: RUN/report.html)")
    b.add_argument("--workers", type=int, default=2, help="processes converting traces (default 2)")
    t = sub.add_parser("table", help="print the comparison tables of one run")
    t.add_argument("run")
    c = sub.add_parser("compare", help="compare two runs; exit 1 on a flagged regression, 2 if not comparable")
    c.add_argument("base")
    c.add_argument("new")
    c.add_argument("--threshold", type=float, default=5.0, help="percent change that may be flagged (default 5)")
    c.add_argument("--threshold-for", action="append", default=[], metavar="GLOB=PERCENT",
                   help="per-benchmark threshold, e.g. 'training/mlp-eager-*=15' (repeatable)")
    c.add_argument("--alpha", type=float, default=0.05, help="significance level of the rank test (default 0.05)")
    c.add_argument("--html", type=Path, help="also write the comparison page here")
    c.add_argument("--no-noise-floor", action="store_true",
                   help="flag on threshold and significance alone, ignoring the run-to-run noise floor")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
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
            comparison = cmp.compare(load_run(args.base), load_run(args.new), threshold=args.threshold / 100,
                                     per_benchmark=_thresholds(args.threshold_for), alpha=args.alpha,
                                     use_noise_floor=not args.no_noise_floor)
            print(cmp.format_text(comparison))
            if args.html:
                args.html.write_text(cmp.format_html(comparison), encoding="utf-8")
                print(f"tfperf: comparison page {args.html}")
            return comparison.exit_code
    except ReportError as exc:
        print(f"reports: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"reports: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
