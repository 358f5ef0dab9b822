"""How a machine's speed drifts under one process: `python scripts/drift.py SCENARIO VARIANT [VARIANT ...]`.

Builds the variants of one scenario (at `--size`, default `default`) in this one process, then times a round of
each, in turn, for `--seconds`, and prints per window of `--window` seconds each variant's median time per
example and its ratio to the first variant. Nothing changes in the process between windows (same objects, same
traced functions, the collector run before and off during each round), so a level that moves from window to
window is the machine's, and a ratio that moves with it is an answer that depends on the machine's state: no
way of summarizing one run's rounds can make such a ratio hold from one run to the next.

Measured here (README, Known limits): `mlp fit-best function-best fit-memory`. Times nothing else meanwhile.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tfperf.runtime.build import runnable
from tfperf.runtime.quiet import tensorflow_started  # noqa: E402

with tensorflow_started():
    from tfperf.api import registry  # noqa: E402
    from tfperf.api.base import SIZES  # noqa: E402
    from tfperf.runtime import devices  # noqa: E402

    devices.configure()
    from tfperf.measure.block import Member, choose_passes  # the suite's own timed round and calibration


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario")
    ap.add_argument("variants", nargs="+")
    ap.add_argument("--size", default="default", choices=sorted(SIZES))
    ap.add_argument("--seconds", type=float, default=240.0)
    ap.add_argument("--window", type=float, default=20.0)
    ap.add_argument("--min-round-s", type=float, default=0.25, help="each variant's round lasts at least this")
    args = ap.parse_args(argv)
    reg = registry.load([])
    if args.scenario not in reg.scenarios:
        print(f"drift: no scenario {args.scenario!r} (known: {', '.join(reg.scenarios)})")
        return 2
    sc, size = reg[args.scenario], SIZES[args.size]
    runs = {}
    for name in args.variants:
        try:
            variant = sc.variant(name)
        except KeyError:
            print(f"drift: {args.scenario} has no variant {name!r}")
            return 2
        m = Member(sc, variant, name, selected=True)
        try:
            m.runnable = runnable(sc, variant, size)
        except Exception as exc:  # noqa: BLE001 - e.g. a data cache that cannot be written: one line, no traceback
            print(f"drift: {args.scenario}/{name} could not be built: {(str(exc).strip().splitlines() or [''])[0]}")
            return 2
        m.timed()  # warm-up: tracing, caches
        m.passes = choose_passes(m.timed(), SimpleNamespace(min_round_s=args.min_round_s))
        m.runnable.scale(m.passes)
        m.timed()
        runs[name] = m
    gc.collect()
    gc.freeze()
    first = args.variants[0]
    print(f"{'t (s)':>7} " + " ".join(f"{n:>22}" for n in args.variants) + "   (median us per example; x: over "
          f"{first})")
    start = time.perf_counter()
    window: dict[str, list[float]] = {n: [] for n in runs}
    edge = start + args.window
    while time.perf_counter() - start < args.seconds:
        for name, m in runs.items():
            gc.collect()
            gc.disable()
            took = m.timed()  # as the worker times a round: its hooks untimed, its example count checked
            gc.enable()
            window[name].append(took / m.runnable.examples_per_round * 1e6)
        if time.perf_counter() >= edge:
            med = {n: statistics.median(v) for n, v in window.items()}
            print(f"{edge - start:7.0f} " + " ".join(
                f"{med[n]:10.1f} x{med[n] / med[first]:5.2f} n{len(window[n]):<3d}" for n in args.variants), flush=True)
            window = {n: [] for n in runs}
            edge += args.window
    for m in runs.values():
        m.runnable.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
