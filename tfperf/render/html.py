"""One self-contained HTML page per run: plotly.js inlined once, no CDN, every input string escaped.

Per scenario (in the order the run measured them; what to show comes from each row's kind, never a name):
throughput bars with error bars (examples/s at the median round, bars to the rounds'
quartiles), the speedup table, step-time breakdown bars from the traces, tf.data iterator self times,
the values AUTOTUNE chose, and the command that opens the traces in TensorBoard. Then what was skipped
or failed, and the environment.
"""

from __future__ import annotations

import html
import re
import shlex
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from tfperf.analysis import answers, diagnosis, tables
from tfperf.analysis.tables import number
from tfperf.analysis.trace_pool import analyse_run
from tfperf.results.store import Run, atomic_write

from .templates import render as render_page

esc = html.escape
NUMBER = re.compile(r"[+-]?[\d,]+(\.\d+)?[x%]?")  # a cell that is one number: right-aligned, text is left

def _label(s: Any) -> str:
    # Plotly renders a few HTML tags inside labels: pass escaped text so names show as written.
    return esc(str(s))


class Page:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.charts = 0

    def add(self, s: str) -> None:
        self.parts.append(s)

    def chart(self, fig: go.Figure) -> None:
        self.charts += 1
        fig.update_layout(margin=dict(l=10, r=10, t=40, b=10), template="plotly_white")
        self.add('<div class="chart">' + fig.to_html(full_html=False, include_plotlyjs=False,
                                                   div_id=f"chart-{self.charts}",
                                                   config={"displaylogo": False, "responsive": True}) + "</div>")


def _table(headers: list[str], rows: list[list[str]], bold_first: str | None = None) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for r in rows:
        cls = ' class="best"' if bold_first is not None and r and r[0].endswith(f">{esc(bold_first)}</span>") else ""
        body.append(f"<tr{cls}>" + "".join(f"<td class='n'>{c}</td>" if NUMBER.fullmatch(c) else f"<td>{c}</td>"
                                           for c in r) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _throughput(page: Page, run: Run, scenario: str) -> None:
    """One bar chart per group (a row's `group`: one scenario's variants, which compete)."""
    f = run.frame[(run.frame["scenario"] == scenario) & (run.frame["status"] == "ok")]
    group_col = "group" if "group" in f and f["group"].notna().any() else None
    groups = [(None, f)] if group_col is None else list(f.groupby(f[group_col].map(tables.text), sort=True))
    for group, g in groups:
        g = g.sort_values("examples_per_sec")
        eps = g["examples_per_sec"]
        plus = [e / q1 * med - e if q1 else 0 for e, q1, med in zip(eps, g["q1_s"], g["median_s"], strict=True)]
        minus = [e - e / q3 * med if q3 else 0 for e, q3, med in zip(eps, g["q3_s"], g["median_s"], strict=True)]
        fig = go.Figure(go.Bar(x=eps, y=[_label(v) for v in g["variant"]], orientation="h",
                               error_x=dict(type="data", array=plus, arrayminus=minus, visible=True),
                               marker_color="#4c78a8"))
        name = f"{scenario}" + (f", {group}" if group_col and group != scenario else "")
        fig.update_layout(title=f"{_label(name)}: examples/s (median round; bars to the quartiles)",
                          height=max(220, 24 * len(g) + 90), xaxis_title="examples/s")
        page.chart(fig)


def _forest(page: Page, scenario: str, t) -> None:
    """Each variant's paired speedup over its baseline with its 95% interval, on a log axis around 1 (a forest
    plot): what the run resolved is what stays clear of the line at 1."""
    f = t[t["speedup"].notna() & t["speedup_lo"].notna()]
    if f.empty:
        return
    labels = [_label(f"{v} vs {b}") for v, b in zip(f["variant"], f["baseline"], strict=True)]
    colour = ["#999" if u else ("#2a9d4b" if lo > 1 else "#c0392b" if hi < 1 else "#4c78a8")
              for u, lo, hi in zip(f["unstable"], f["speedup_lo"], f["speedup_hi"], strict=True)]
    fig = go.Figure(go.Scatter(
        x=f["speedup"], y=labels, mode="markers", marker=dict(color=colour, size=9),
        error_x=dict(type="data", symmetric=False, array=f["speedup_hi"] - f["speedup"],
                     arrayminus=f["speedup"] - f["speedup_lo"], visible=True),
        customdata=f["description"], hovertemplate="%{y}: %{x:.2f}x<br>%{customdata}<extra></extra>"))
    fig.add_vline(x=1, line_dash="dot", line_color="#555")
    fig.update_layout(title=f"{_label(scenario)}: speedup over the baseline, 95% interval (log axis; green faster, "
                            "red slower, blue not resolved, grey unstable)",
                      xaxis_type="log", height=max(220, 24 * len(f) + 90), xaxis_title="speedup (x)")
    page.chart(fig)


def _scaling(page: Page, scenario: str, t) -> None:
    """Throughput against workers, one line per mode, each with its ideal (its smallest cluster's throughput times
    the ratio of workers) dashed; the rows without a cluster (local) as a level line. Only for rows that record a
    number of workers (the distributed scenarios)."""
    if "workers" not in t.columns:
        return
    rows = t[t["workers"].map(lambda w: isinstance(w, int | float) and not isinstance(w, bool) and w == w)]
    counted = rows[rows["workers"] > 0]
    if counted["workers"].nunique() < 2:
        return
    fig = go.Figure()
    modes = counted["mode"].map(tables.text) if "mode" in counted else [""] * len(counted)
    for mode, g in counted.groupby(modes, sort=False):
        g = g.sort_values("workers")
        first = g.iloc[0]
        fig.add_scatter(x=g["workers"], y=g["examples_per_sec"], mode="lines+markers", name=_label(mode or "measured"),
                        text=[_label("" if tables.missing(e) else f"efficiency {100 * e:.0f}%")
                              for e in g.get("scaling_efficiency", [float("nan")] * len(g))],
                        hovertemplate="%{x} workers: %{y:,.0f} ex/s %{text}<extra></extra>")
        fig.add_scatter(x=g["workers"], y=[first["examples_per_sec"] * w / first["workers"] for w in g["workers"]],
                        mode="lines", line=dict(dash="dash"), name=_label(f"{mode} ideal (linear)"))
    for r in rows[rows["workers"] == 0].itertuples():
        fig.add_hline(y=r.examples_per_sec, line_dash="dot", line_color="#555",
                      annotation_text=_label(f"{r.variant} (no cluster)"))
    fig.update_layout(title=f"{_label(scenario)}: examples/s against workers, with the ideal (dashed)",
                      xaxis_title="workers", yaxis_title="examples/s", height=360,
                      xaxis=dict(tickmode="array", tickvals=sorted(counted["workers"].unique())))
    page.chart(fig)


def _cpu_split(r: Any) -> str:
    cells = r._asdict()  # a distributed table's columns: only some kinds record the cluster's CPU
    client, cluster = cells.get("client_cpu_us_per_example"), cells.get("cluster_cpu_us_per_example")
    if tables.missing(client) or tables.missing(cluster):
        return ""
    return f"{client:,.0f} + {cluster:,.0f}"


def _speedups(page: Page, scenario: str, t) -> None:
    best = tables.best_variant(t)
    training = "input_overhead" in t.columns
    distributed = "workers" in t.columns
    headers = ["variant", "examples/s", "median round (s)", "rounds", "CV", "warm-up (s)", "speedup",
               "95% interval", "vs", "reading", "what it is"]
    if training:
        headers += ["step (ms)", "bound ex/s", "input overhead", "95% interval"]
    if distributed:
        headers += ["workers", "mode / dispatcher", "scaling efficiency", "95% interval", "CPU cores busy",
                    "CPU us/example (client + cluster)", "all-reduce share"]
    rows = []
    for r in t.sort_values("examples_per_sec", ascending=False).itertuples():
        reading = tables.finding(r._asdict())
        if r.unstable:
            reading = f"unstable: {r.unstable_reasons}"
        row = [f"<span title='{esc(r.description)}'>{esc(r.variant)}</span>", number(r.examples_per_sec),
               number(r.median_s, "{:.4f}"), str(r.rounds), number(None if tables.text(r.cv) == "" else 100 * float(r.cv), "{:.1f}%"),
               number(None if tables.text(r.warmup_s) == "" else float(r.warmup_s), "{:.2f}"),
               number(r.speedup, "{:.2f}x"),
               esc(tables.interval(r.speedup_lo, r.speedup_hi)), esc(r.baseline), esc(reading), esc(r.description)]
        if training:
            row += [number(r.step_time_ms, "{:.2f}"), number(r.bound_examples_per_sec),
                    number(100 * r.input_overhead, "{:+.0f}%"),
                    esc(tables.interval(100 * r.overhead_lo, 100 * r.overhead_hi, "{:+.0f}%"))]
        if distributed:
            cells = r._asdict()  # a distributed table: its columns depend on what its variants recorded
            eff = cells.get("scaling_efficiency", float("nan"))
            where = " ".join(tables.text(cells.get(k)) for k in ("mode", "dispatcher") if tables.text(cells.get(k)))
            row += [esc(tables.text(r.workers)), esc(where),
                    number(None if tables.missing(eff) else 100 * eff, "{:.0f}%"),
                    esc("" if tables.missing(eff) else tables.interval(100 * r.scaling_efficiency_lo,
                                                                        100 * r.scaling_efficiency_hi, "{:.0f}%")),
                    number(cells.get("cpu_cores_busy"), "{:.2f}"),
                    esc(_cpu_split(r)),
                    number(None if tables.missing(cells.get("allreduce_share")) else 100 * cells["allreduce_share"],
                           "{:.0f}%")]
        rows.append(row)
    page.add(f"<p>Best: <b>{esc(str(best))}</b>. Speedup = baseline's time per example over this variant's, "
             "the median over rounds in which both ran (interleaved, in a shuffled order, in the same process); "
             "95% interval from a bootstrap over processes, then rounds. A speedup is a finding only when its "
             "interval excludes 1 and the row passes the physics check.</p>")
    page.add(_table(headers, rows, bold_first=best))


def _breakdown(page: Page, scenario: str, figures: dict[str, dict]) -> None:
    keys = sorted(k for k in figures if k.startswith(scenario + "/"))
    if not keys:
        page.add("<p class='muted'>No traces analysed for this scenario.</p>")
        return
    names = [_label(k.split("/", 1)[1]) for k in keys]
    fig = go.Figure()
    for part, label in (("input_ms", "input"), ("host_compute_ms", "host compute"),
                        ("device_compute_ms", "device compute"), ("compile_ms", "compile"), ("other_ms", "other")):
        fig.add_bar(name=label, y=names, x=[figures[k]["steps"].get(part, 0.0) for k in keys], orientation="h")
    fig.update_layout(barmode="stack", title="Step-time breakdown from the traces (ms per step, xprof)",
                      height=max(260, 22 * len(keys) + 80), xaxis_title="ms per step")
    page.chart(fig)
    rows = [[esc(k.split("/", 1)[1]), str(figures[k]["steps"].get("steps", 0)),
             number(figures[k]["steps"].get("step_ms"), "{:.2f}"), number(figures[k]["steps"].get("input_percent"), "{:.1f}%")]
            for k in keys]
    page.add(_table(["variant", "steps captured", "step (ms)", "input-bound"], rows))


def _tf_data(page: Page, figures: dict[str, dict]) -> None:
    keys = sorted(k for k in figures if "tf_data" in figures[k])
    if not keys:
        return
    # Each variant's own stages, by kind of stage (Map, ParallelMapV2, Prefetch, ...): every bar holds that
    # variant's whole self time, whatever its pipeline's shape (the full positions are in the table below).
    kinds: dict[str, dict[str, float]] = {}
    for k in keys:
        for it, ms in figures[k]["tf_data"]["iterator_self_ms"].items():
            kind = diagnosis.stage_type(it)
            kinds.setdefault(kind, {}).setdefault(k, 0.0)
            kinds[kind][k] += ms
    order = sorted(kinds, key=lambda kd: sum(kinds[kd].values()), reverse=True)
    fig = go.Figure()
    for kind in order:
        fig.add_bar(name=_label(kind), y=[_label(k.split("/", 1)[1]) for k in keys],
                    x=[kinds[kind].get(k, 0.0) for k in keys], orientation="h")
    fig.update_layout(barmode="stack", title="tf.data self time by kind of stage in the profiled window (ms)",
                      height=max(260, 22 * len(keys) + 80))
    page.chart(fig)
    rows = []
    for k in keys:
        auto = figures[k]["tf_data"]["autotune"]
        chosen = "; ".join(f"{it.split('::')[-1]}: " + ", ".join(f"{kn}={'/'.join(v)}" for kn, v in d.items()
                                                                  if kn != "autotune")
                           for it, d in auto.items() if any(kn != "autotune" for kn in d))
        self_ms = figures[k]["tf_data"]["iterator_self_ms"]
        ran = ", ".join(f"{i.split('::', 1)[1]} ({self_ms[i]:.1f} ms)" if i in self_ms else i.split("::", 1)[1]
                        for i in sorted(self_ms, key=self_ms.get, reverse=True))  # type: ignore[arg-type]
        rows.append([esc(k.split("/", 1)[1]), esc(ran), esc(chosen)])
    page.add("<h3>What tf.data ran, and what AUTOTUNE chose</h3>")
    page.add("<p>Iterators in the trace (after tf.data's rewrites), each named by its position in the pipeline, "
             "with its self time, slowest first, and the parallelism and prefetch buffer values recorded on their "
             "events during the profiled window.</p>")
    page.add(_table(["variant", "iterators that ran", "AUTOTUNE's values (parallelism, buffer_limit, ...)"], rows))


def _top_ops(page: Page, scenario: str, figures: dict[str, dict]) -> None:
    keys = sorted(k for k in figures if k.startswith(scenario + "/") and figures[k].get("top_ops"))
    if not keys:
        return
    rows = [[esc(k.split("/", 1)[1]), esc(", ".join(f"{o['op']} ({o['self_percent']:.0f}%)"
                                                    for o in figures[k]["top_ops"][:4]))] for k in keys]
    page.add("<h3>Top host ops by self time</h3>")
    page.add(_table(["variant", "ops (share of host self time)"], rows))


def _environment(run: Run) -> str:
    m = run.machine
    tfi = m.get("tfperf") or {}
    cpu = m.get("cpu") or {}
    rows = [
        ["run", esc(run.run_id)], ["size", esc(str(run.meta.get("size", "?")))],
        ["command", f"<code>{esc(str(run.meta.get('command', '')))}</code>"],
        ["TensorFlow", esc(str(tfi.get("tf_version", "?")))], ["Keras", esc(str(tfi.get("keras_version", "?")))],
        ["GPUs", esc(", ".join(tfi.get("gpus") or []) or "none")],
        *([["CUDA / cuDNN", esc(f"{tfi.get('cuda_version') or '-'} / {tfi.get('cudnn_version') or '-'}")]]
          if tfi.get("gpus") else []),
        ["CPU", esc(str(cpu.get("brand_raw") or m.get("processor") or "?"))],
        ["cores", esc(str(m.get("cpu_count", cpu.get("count", "?"))))],
        ["logical CPU devices", esc(str(tfi.get("devices_logical_cpus", "?")))],
        ["Python", esc(str(m.get("python_version", "?")))], ["machine", esc(str(m.get("node", "?")))],
        ["suite / scenario versions", esc(f"{run.meta.get('suite_version')} / {run.meta.get('scenario_versions')}")],
        ["written", esc(str(run.raw.get("datetime", "?")))],
    ]
    return _table(["", ""], rows)


def _known_limit(run: Run, problem: str) -> bool:
    """A profile xprof cannot split into steps under steps_per_execution (Keras fetches the batches inside a while
    loop there): a known limit of the tools, not a failure of this run."""
    if "0 complete steps" not in problem or not problem.startswith("profile of "):
        return False
    key = problem[len("profile of "):].split(" ", 1)[0]
    scenario, _, variant = key.partition("/")
    rows = run.frame[(run.frame["scenario"] == scenario) & (run.frame["variant"] == variant)]
    return bool(len(rows)) and "loop" in rows and str(rows["loop"].iloc[0]) == "fit_spe"


def _answers(run: Run) -> str:
    """The answer, first on the page: per scenario its verdict, the top changes ranked by gain with their knobs,
    and one line of what made no resolved difference."""
    items = []
    for a in answers.answers(run):
        changes = "".join(f"<li>{esc(c)}</li>" for c in a.changes)
        items.append(f"<div class='answer'><b>{esc(a.scenario)}</b>: {esc(a.verdict)}"
                     + (f"<ol>{changes}</ol>" if changes else "")
                     + (f"<details class='muted'><summary>no resolved difference</summary>"
                        f"{esc(a.no_difference.removeprefix('no resolved difference: '))}</details>"
                        if a.no_difference else "") + "</div>")
    body = ("<div class='answers'>" + "".join(items) + "</div>") if items else \
        "<p class='muted'>No measured scenario to answer for.</p>"
    return ("<section id='answer'><h2>Answer</h2><p class='muted'>Per scenario: the verdict, then the resolved "
            "changes worth making, ranked by the gain their interval guarantees, each with the knob that makes it. "
            "The full findings, the diagnosis and the tables follow.</p>" + body + "</section>")


def render(run: Run, workers: int = 2) -> tuple[str, int, list[str]]:
    """The page's HTML, the number of charts in it, and the problems that make it partial."""
    figures, trace_problems = analyse_run(run.path, run.profiles, workers=workers)
    problems = [*run.problems, *trace_problems]
    if run.meta.get("profiling", {}).get("enabled") is False:
        problems.append("profiling was off for this run: no step-time breakdowns or tf.data figures")
    page = Page()
    title = f"tfperf report: {run.run_id}"
    if tables.incomplete(run):
        page.add(f"<div class='partial' id='interrupted'><b>{esc(tables.incomplete(run))}</b> ({len(run.frame)} "
                 "rows finished).</div>")
    limits = [p for p in problems if _known_limit(run, p)]
    problems = [p for p in problems if p not in limits]
    page.add(_answers(run))
    found = tables.findings(run)
    page.add("<section id='findings'><h2>Findings</h2>"
             + ("<ul>" + "".join(f"<li>{esc(line)}</li>" for line in found) + "</ul>" if found else
                "<p class='muted'>No measured variant to state a finding about.</p>") + "</section>")
    diagnosed = diagnosis.lines(diagnosis.diagnose(run, figures))
    page.add("<section id='diagnosis'><h2>Diagnosis</h2><p>Variants whose profile shows steps waiting for input "
             "(a training step at least 10% input, a pipeline's batches), the slowest tf.data stage in the trace, "
             "and what this run measured for the knob that addresses it.</p>"
             + ("<ul>" + "".join(f"<li>{esc(line)}</li>" for line in diagnosed) + "</ul>" if diagnosed else
                "<p class='muted'>No profiled variant was input-bound (or profiling was off).</p>") + "</section>")
    page.add("<div id='resolution'><b>How sure this run is.</b><pre>"
             + esc("\n".join(tables.resolution_lines(run))) + "</pre></div>")
    if problems:
        items = "".join(f"<li>{esc(p)}</li>" for p in problems)
        page.add(f"<div class='partial' id='partial'><b>Partial report.</b><ul>{items}</ul></div>")
    if limits:
        items = "".join(f"<li>{esc(p)}</li>" for p in limits)
        page.add(f"<div id='limits'><b>Known limits of the tools</b> (expected, not failures):<ul>{items}</ul></div>")
    traces_dir = run.path / "traces"
    for scenario in tables.scenarios(run):
        t = tables.scenario_table(run, scenario)
        kind = tables.kind(run, scenario)
        page.add(f"<h2 id='scenario-{esc(str(scenario))}'>{esc(str(scenario))}"
                 + (f" <span class='muted'>({esc(kind)})</span>" if kind else "") + "</h2>")
        docs = run.frame.loc[run.frame["scenario"] == scenario, "scenario_doc"].dropna()
        if len(docs) and str(docs.iloc[0]).strip():
            page.add(f"<p>{esc(str(docs.iloc[0]).strip())}</p>")
        if t.empty:
            page.add("<p class='muted'>No variant of this scenario was measured.</p>")
        else:
            _throughput(page, run, scenario)
            _scaling(page, scenario, t)
            _forest(page, scenario, t)
            _speedups(page, scenario, t)
            page.add("<h3>Where the time goes (profiler)</h3>")
            _breakdown(page, scenario, figures)
            _tf_data(page, {k: v for k, v in figures.items() if k.startswith(f"{scenario}/")})
            _top_ops(page, scenario, figures)
    page.add("<h2>Traces</h2>")
    if traces_dir.is_dir():
        page.add(f"<p>Open every profiled variant in TensorBoard's profile plugin:</p>"
                 f"<pre>tensorboard --logdir {esc(shlex.quote(str(traces_dir)))}</pre>"
                 f"<p>or with xprof's own viewer: <code>xprof --logdir {esc(shlex.quote(str(traces_dir)))} --port 6006"
                 "</code>. "
                 "Each variant is a run named <code>scenario.variant</code>.</p>")
    else:
        page.add("<p class='muted'>This run has no traces folder.</p>")
    um = tables.unmeasured(run)
    page.add("<h2>Skipped and failed</h2>")
    if um.empty:
        page.add("<p>Every variant was measured.</p>")
    else:
        page.add(_table(["scenario", "variant", "status", "reason"],
                        [[esc(str(r.scenario)), esc(str(r.variant)), esc(str(r.status)), esc(str(r.reason))]
                         for r in um.itertuples()]))
    page.add("<h2>Environment</h2>" + _environment(run))
    if tables.report_cost(run):
        page.add(f"<p class='muted'>The suite itself: {esc(tables.report_cost(run))}.</p>")
    doc = render_page("report.html.j2", title=title, plotly_js=get_plotlyjs(), parts=page.parts, charts=page.charts)
    return doc, page.charts, problems


def build(run: Run, out: Path | None = None, workers: int = 2) -> tuple[Path, int, list[str]]:
    doc, charts, problems = render(run, workers=workers)
    path = out or run.path / "report.html"
    atomic_write(path, doc)
    return path, charts, problems
