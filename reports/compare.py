"""Run versus run: what changed, flagged only when it is both large and real.

A benchmark's change is the ratio of median round times (new / base). It is flagged as a regression or an
improvement only when all three hold: the change exceeds its threshold (default 5%, settable per benchmark
by a glob on its ``scenario/variant``); the rounds' distributions really differ (Mann-Whitney U,
p < alpha); and the whole 95% bootstrap interval of the change lies beyond the threshold. The last
condition matters because rounds of one run share that run's machine state: the rank test alone treats
them as independent and, on a busy 2-core machine, calls ordinary run-to-run drift significant. A change
that is large but fails the other tests is shown as "noise".

Run-to-run noise: on a shared 2-core machine two runs of identical code differed by a median 11% per
benchmark (up to 40%), far beyond 5%. Most benchmarks do not change between two runs, so the spread of
all the changes measures the machine's run-to-run noise. The *noise floor* is three robust standard
deviations (1.4826 x MAD around their median) of the log changes; a change must also exceed it to be
flagged. It is printed, so a user sees what this machine can detect, and is computed only from 10 or more
shared benchmarks (``--no-noise-floor`` turns it off). The common shift (the median change) is printed
beside it but not subtracted: when every benchmark moves at once, the machine or the code changed, and
either way it is flagged, not hidden. Runs
measured under different suite, TensorFlow or scenario versions, or at different sizes, are not
comparable: every shared row is marked so and the exit status says it.

Exit status: 0 nothing flagged; 1 a flagged regression; 2 not comparable or bad input.
"""

from __future__ import annotations

import fnmatch
import html
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .load import Run
from .stats import differ_p, ratio_interval
from .tables import interval, number


@dataclass
class Comparison:
    base: Run
    new: Run
    rows: pd.DataFrame
    incomparable: list[str] = field(default_factory=list)
    noise_floor: float | None = None  # change below which run-to-run drift explains a difference; None: off
    common_shift: float = 0.0  # median change across the shared benchmarks

    @property
    def regressions(self) -> pd.DataFrame:
        return self.rows[self.rows["flag"] == "regression"]

    @property
    def exit_code(self) -> int:
        if self.incomparable:
            return 2
        return 1 if not self.regressions.empty else 0


def _versions(run: Run) -> dict[str, object]:
    f = run.frame

    def first(col: str) -> str | None:
        if col not in f:
            return None
        values = f[col].dropna()
        return str(values.iloc[0]) if len(values) else None

    return {"suite version": run.meta.get("suite_version") or first("suite_version"),
            "TensorFlow version": first("tf_version"),
            "scenario versions": run.meta.get("scenario_versions"), "size": run.meta.get("size") or first("size")}


MIN_FOR_FLOOR = 10


def noise_floor(ratios: list[float]) -> tuple[float | None, float]:
    """(floor, common shift) as fractional changes, from the new/base ratios of the shared benchmarks;
    the floor is None with fewer than MIN_FOR_FLOOR ratios."""
    if len(ratios) < MIN_FOR_FLOOR:
        return None, 0.0
    logs = np.log(np.asarray(ratios, float))
    centre = float(np.median(logs))
    sigma = 1.4826 * float(np.median(np.abs(logs - centre)))
    return float(np.expm1(3 * sigma)), float(np.expm1(centre))


def compare(base: Run, new: Run, threshold: float = 0.05, per_benchmark: dict[str, float] | None = None,
            alpha: float = 0.05, use_noise_floor: bool = True) -> Comparison:
    incomparable = [f"{k} differs: {a} vs {b}" for (k, a), b in
                    zip(_versions(base).items(), _versions(new).values(), strict=True) if a != b]
    b_rows = {f"{r.scenario}/{r.variant}": r for r in base.frame.itertuples() if r.status == "ok"}
    n_rows = {f"{r.scenario}/{r.variant}": r for r in new.frame.itertuples() if r.status == "ok"}
    shared = sorted(set(b_rows) & set(n_rows))
    floor, shift = noise_floor([n_rows[k].median_s / b_rows[k].median_s for k in shared
                                if b_rows[k].median_s and n_rows[k].median_s]) if use_noise_floor else (None, 0.0)
    out = []
    for name in sorted(set(b_rows) | set(n_rows)):
        b, n = b_rows.get(name), n_rows.get(name)
        limit = threshold
        for pattern, value in (per_benchmark or {}).items():
            if fnmatch.fnmatchcase(name, pattern):
                limit = value
        row = {"benchmark": name, "base_median_s": getattr(b, "median_s", None),
               "new_median_s": getattr(n, "median_s", None), "change": float("nan"), "lo": float("nan"),
               "hi": float("nan"), "p": float("nan"), "threshold": limit}
        if b is None or n is None:
            row["flag"] = "only in new" if b is None else "only in base"
        else:
            ratio, lo, hi = ratio_interval(n.times, b.times)
            p = differ_p(n.times, b.times)
            row.update(change=ratio - 1, lo=lo - 1, hi=hi - 1, p=p)
            if incomparable:
                row["flag"] = "not comparable"
            elif abs(ratio - 1) > max(limit, floor or 0.0) and p < alpha and (lo - 1 > limit or hi - 1 < -limit):
                row["flag"] = "regression" if ratio > 1 else "improvement"
            elif abs(ratio - 1) > limit:
                row["flag"] = "noise"  # large but not distinguishable from the rounds' spread
            else:
                row["flag"] = ""
        out.append(row)
    return Comparison(base=base, new=new, rows=pd.DataFrame(out), incomparable=incomparable, noise_floor=floor,
                      common_shift=shift)


def _floor_line(c: Comparison) -> str:
    if c.noise_floor is None:
        return "noise floor: off (fewer than 10 shared benchmarks, or --no-noise-floor)"
    return (f"noise floor: {100 * c.noise_floor:.1f}% (3 robust SDs of the changes across the shared benchmarks; "
            f"smaller changes are not flagged); common shift of all benchmarks: {100 * c.common_shift:+.1f}%")


def _interval(lo: float, hi: float) -> str:
    return interval(100 * lo, 100 * hi, "{:+.1f}%")


def format_text(c: Comparison) -> str:
    lines = [f"base {c.base.run_id}  ->  new {c.new.run_id}"]
    lines += [f"NOT COMPARABLE: {w}" for w in c.incomparable]
    lines.append(_floor_line(c))
    lines.append(f"{'benchmark':52s} {'base s':>9s} {'new s':>9s} {'change':>8s} {'95% interval':>18s} {'p':>6s}  flag")
    for r in c.rows.itertuples():
        lines.append(f"{r.benchmark[:52]:52s} {number(r.base_median_s, '{:9.4f}'):>9s} "
                     f"{number(r.new_median_s, '{:9.4f}'):>9s} {number(100 * r.change, '{:+7.1f}%'):>8s} "
                     f"{_interval(r.lo, r.hi):>18s} {number(r.p, '{:6.3f}'):>6s}  {r.flag}")
    flagged = c.rows[c.rows["flag"].isin(["regression", "improvement"])]
    lines.append(f"{len(c.regressions)} regression(s), {len(flagged) - len(c.regressions)} improvement(s) "
                 f"flagged of {len(c.rows)} benchmarks")
    return "\n".join(lines)


def format_html(c: Comparison) -> str:
    esc = html.escape
    colour = {"regression": "#f8d7da", "improvement": "#d4edda", "not comparable": "#fff3cd"}
    body = [f"<h1>tfperf compare: {esc(c.base.run_id)} &rarr; {esc(c.new.run_id)}</h1>"]
    for w in c.incomparable:
        body.append(f"<p style='background:#fff3cd;padding:6px'><b>Not comparable:</b> {esc(w)}</p>")
    body.append(f"<p>{esc(_floor_line(c))}</p>")
    body.append("<table><tr><th>benchmark</th><th>base median (s)</th><th>new median (s)</th><th>change</th>"
                "<th>95% interval</th><th>p</th><th>threshold</th><th>flag</th></tr>")
    for r in c.rows.itertuples():
        style = f" style='background:{colour[r.flag]}'" if r.flag in colour else ""
        body.append(f"<tr{style}><td>{esc(r.benchmark)}</td><td>{number(r.base_median_s, '{:.4f}')}</td>"
                    f"<td>{number(r.new_median_s, '{:.4f}')}</td><td>{number(r.change * 100, '{:+.1f}%')}</td>"
                    f"<td>{_interval(r.lo, r.hi)}</td><td>{number(r.p, '{:.3f}')}</td><td>{100 * r.threshold:.0f}%</td>"
                    f"<td>{esc(r.flag)}</td></tr>")
    body.append("</table><p>A change is flagged only when it exceeds its threshold, a Mann-Whitney U test on the "
                "rounds gives p &lt; alpha, and its whole 95% interval lies beyond the threshold.</p>")
    css = "body{font-family:system-ui,sans-serif;margin:24px} td,th{border:1px solid #ccc;padding:3px 6px}" \
          " table{border-collapse:collapse;font-size:.85em}"
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>tfperf compare</title><style>{css}</style>" \
           f"</head><body>{''.join(body)}</body></html>"
