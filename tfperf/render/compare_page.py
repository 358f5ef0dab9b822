"""The comparison of two sides of runs (:func:`tfperf.analysis.gate.compare`), as terminal text and as an HTML page
(a jinja2 template, every string escaped by the template engine)."""

from __future__ import annotations

from tfperf.analysis.gate import FLAGS, Comparison, findings, interval_text, summary_lines
from tfperf.analysis.tables import number

from .templates import render


def format_text(c: Comparison) -> str:
    lines = [f"base {c.base_label}  ->  new {c.new_label}"]
    lines += ["findings:", *[f"- {f}" for f in findings(c)]]
    lines += [f"NOT COMPARABLE: {w}" for w in c.incomparable]
    lines += summary_lines(c)
    lines.append("change: time per example relative to the benchmarks measured in the same rounds (the block's "
                 "level, shown in its own row, taken out); absolute: new over base, as measured")
    lines.append(f"{'benchmark':48s} {'base us/ex':>10s} {'new us/ex':>10s} {'absolute':>8s} {'change':>8s} "
                 f"{'95% interval':>18s} {'limit':>6s} {'p':>6s} {'q':>6s}  flag")
    for r in c.rows.itertuples():
        lines.append(f"{r.benchmark[:48]:48s} {number(1e6 * r.base_s, '{:10.2f}'):>10s} "
                     f"{number(1e6 * r.new_s, '{:10.2f}'):>10s} {number(100 * r.absolute_change, '{:+7.1f}%'):>8s} "
                     f"{number(100 * r.change, '{:+7.1f}%'):>8s} "
                     f"{interval_text(r.lo, r.hi):>18s} {number(100 * r.limit, '{:5.1f}%'):>6s} "
                     f"{number(r.p, '{:6.3f}'):>6s} {number(getattr(r, 'q', float('nan')), '{:6.3f}'):>6s}  {r.flag}" + (f"  [{r.changed}]" if r.changed else ""))
    flagged = c.rows[c.rows["flag"].isin(FLAGS)]
    lines.append(f"{len(c.regressions)} regression(s), {len(flagged) - len(c.regressions)} improvement(s) "
                 f"flagged of {len(c.rows)} benchmarks")
    return "\n".join(lines)


def format_html(c: Comparison) -> str:
    headers = ["benchmark", "base (us/example)", "new (us/example)", "absolute change", "change relative to its block",
               "95% interval", "detection limit", "p", "q (false discovery)", "test", "threshold", "flag", "changed"]
    css = {"regression": "regression", "improvement": "improvement", "not comparable": "incomparable"}
    rows = [{"css": css.get(r.flag, ""),
             "cells": [r.benchmark, number(1e6 * r.base_s, "{:.2f}"), number(1e6 * r.new_s, "{:.2f}"),
                       number(r.absolute_change * 100, "{:+.1f}%"), number(r.change * 100, "{:+.1f}%"),
                       interval_text(r.lo, r.hi), number(100 * r.limit, "{:.1f}%"), number(r.p, "{:.3f}"),
                       number(getattr(r, "q", float("nan")), "{:.3f}"), str(r.test),
                       f"{100 * r.threshold:.0f}%", r.flag, r.changed]}
            for r in c.rows.itertuples()]
    return render("compare.html.j2", title="tfperf compare", base=c.base_label, new=c.new_label,
                  findings=findings(c), incomparable=c.incomparable, summary=summary_lines(c), headers=headers,
                  rows=rows)
