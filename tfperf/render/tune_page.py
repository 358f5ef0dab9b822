"""A tune's answer (``tune.json``, :mod:`tfperf.measure.tune`) as an HTML page on the pages' one base template."""

from __future__ import annotations

import math
from typing import Any

from tfperf.analysis import tuning
from tfperf.api import tune as tune_api

from .templates import render


def _x(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}x"


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * v:+.0f}%"


def headline(answer: dict[str, Any]) -> str:
    rec = answer.get("recommended") or {}
    m = (rec.get("measured") or {}).get("vs_as_written")
    g = (rec.get("measured") or {}).get("vs_guide")
    parts = []
    if m:
        parts.append(f"{_x(m['speedup'])} the speed of the pipeline as written")
    if g:
        parts.append(f"{_x(g['speedup'])} that of the guide's advice")
    return "; ".join(parts) or "measured"


def _overhead(entry: dict[str, Any] | None) -> tuple[str, str, str] | None:
    b = (entry or {}).get("vs_bound")
    if not b or not b.get("speedup"):
        return None
    inv = (lambda x: None if not x else 1 / x - 1)  # noqa: E731
    return _pct(inv(b["speedup"])), _pct(inv(b.get("hi"))), _pct(inv(b.get("lo")))


def format_html(answer: dict[str, Any]) -> str:
    rec = answer.get("recommended")
    speedups, overheads = [], []
    if rec:
        for label, key in (("the pipeline as written", "vs_as_written"), ("the guide's advice", "vs_guide")):
            d = rec["measured"].get(key)
            if d:
                speedups.append((label, _x(d["speedup"]), _x(d.get("lo")), _x(d.get("hi"))))
        for label, entry in (("as written", rec.get("as_written")), ("recommended", rec["measured"])):
            o = _overhead(entry)
            if o:
                overheads.append(f"Input overhead over the compute-only bound, {label}: {o[0]} [{o[1]}, {o[2]}].")
    predicted = answer.get("predicted") or {}
    headers = ["confirmation", "variant", "us/example", "vs as written", "vs guide", "over the bound",
               "predicted ms/batch", "measured ms/batch"]
    check = {(c["variant"]): c for c in answer.get("model_check") or []}
    rows = []
    for name, by_run in sorted((answer.get("confirm") or {}).items()):
        for run, e in sorted(by_run.items()):
            def iv(key: str, e: dict[str, Any] = e) -> str:
                d = e.get(key)
                return f"{_x(d['speedup'])} [{_x(d.get('lo'))}, {_x(d.get('hi'))}]" if d else "-"
            o = _overhead(e)
            alias = {tune_api.AS_WRITTEN: tuning.AS_WRITTEN.name(), tune_api.GUIDE: tuning.GUIDE.name()}.get(name, name)
            p = predicted.get(alias, {}).get("seconds_per_batch")
            c = check.get(name) if rec and run == f"confirm-{rec.get('confirmation')}" else None
            rows.append({"css": "best" if rec and name == rec["name"] else "",
                         "cells": [run, name, f"{e['us_per_example']:.2f}", iv("vs_as_written"), iv("vs_guide"),
                                   o[0] if o else "-", "-" if p is None else f"{1e3 * p:.3f}",
                                   f"{c['measured_ms_per_batch']:.3f}" if c else "-"]})
    training = answer.get("training") or None
    training_rows, training_overheads = [], []
    if training and training.get("confirm"):
        for name, e in sorted(training["confirm"].items()):
            d, o = e.get("vs_as_written"), _overhead(e)
            training_rows.append([name, f"{e['us_per_example']:.2f}",
                                  f"{_x(d['speedup'])} [{_x(d.get('lo'))}, {_x(d.get('hi'))}]" if d else "-",
                                  f"{o[0]} [{o[1]}, {o[2]}]" if o else "-"])
        for label, key in (("fit on the pipeline as written", "fit-as_written"), ("fit on the tuned pipeline",
                                                                                   "fit-tuned")):
            o = _overhead(training["confirm"].get(key))
            if o:
                training_overheads.append(f"Input overhead over the compute-only bound, {label}: {o[0]} [{o[1]}, {o[2]}].")
    return render("tune.html.j2", training=training, training_rows=training_rows,
                  training_overheads=training_overheads, title=f"tfperf tune: {answer.get('scenario')}", scenario=answer.get("scenario"),
                  rec=rec, headline=headline(answer), speedups=speedups, overheads=overheads,
                  verdict=answer.get("verdict") or answer.get("error") or "nothing recommended",
                  bottleneck=answer.get("bottleneck") or {"stage": "-", "why": "not probed"},
                  stopped=answer.get("stopped"), headers=headers, rows=rows, space=answer.get("space", 0),
                  confirmed_count=len(answer.get("confirm") or {}), not_in_space=answer.get("not_in_space") or [],
                  phases=answer.get("phases") or [], wall=f"{answer.get('wall_s') or 0:.0f}",
                  budget=f"{answer.get('budget_s') or 0:.0f}", rss=f"{(answer.get('peak_rss_bytes') or 0) / 2**20:.0f}",
                  ram=f"{(answer.get('ram_budget_bytes') or 0) / 2**20:.0f}")
