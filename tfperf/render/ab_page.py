"""An A/B run's answer (:mod:`tfperf.analysis.ab`) as an HTML page: a jinja2 template on the pages' one base."""

from __future__ import annotations

import json

from tfperf.analysis.ab import Answer, headline, interval_text, resolution, summary
from tfperf.analysis.tables import number

from .templates import render

CSS = {"regression": "regression", "improvement": "improvement", "unstable": "incomparable",
       "not measured": "incomparable"}


def format_html(a: Answer) -> str:
    headers = ["benchmark", "base (us/example)", "new (us/example)", "change", "95% interval", "detection limit", "p",
               "verdict", "note"]
    rows = [{"css": CSS.get(r.verdict, ""),
             "cells": [r.benchmark, number(r.base_us, "{:.2f}"), number(r.new_us, "{:.2f}"),
                       number(100 * r.change, "{:+.1f}%"), interval_text(r.lo, r.hi), number(100 * r.limit, "{:.1f}%"),
                       number(r.p, "{:.3f}"), r.verdict, r.reason]}
            for r in a.rows.itertuples()]
    base, new = a.sides.get("base", {}), a.sides.get("new", {})
    keys = [k for k in dict.fromkeys([*base, *new]) if k != "spec"]
    sides = [(k, _cell(base.get(k)), _cell(new.get(k))) for k in keys]
    return render("ab.html.j2", title="tfperf ab", base=base.get("spec", "BASE"), new=new.get("spec", "NEW"),
                  headline=headline(a), regressions=len(a.regressions), summary=summary(a), headers=headers, rows=rows,
                  threshold=f"{100 * a.threshold:g}%", resolution=resolution(a), notes=a.notes, sides=sides)


def _cell(x: object) -> str:
    if x is None:
        return "-"
    return x if isinstance(x, str) else json.dumps(x, sort_keys=True)
