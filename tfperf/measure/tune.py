"""``tfperf tune SPEC[:scenario]``: the fastest configuration of a user's stages pipeline, found by a model and
proved by paired measurement.

1. **Probe** (this process, :mod:`tfperf.runtime.tune_probe`): the pipeline as written and its compute-only bound
   timed, the as-written pipeline profiled; the model's :class:`~tfperf.analysis.tuning.Facts`.
2. **Model** (:mod:`tfperf.analysis.tuning`): every structural candidate predicted; the three best (no two the
   model cannot tell apart) shortlisted.
3. **Confirm**: one run of the harness (``tfperf run`` on a ``tune:`` SPEC, :mod:`tfperf.api.tune`) measures the
   shortlist beside the pipeline as written, the guide's advice (AUTOTUNE map and prefetch) and the bound, in one
   block: paired, interleaved rounds in worker processes, the suite's intervals.
4. While the budget lasts and the best confirmed is not within the resolution of the bound, a second
   confirmation measures, around the confirmed best, what the model cannot predict: the tweaks (thread pool,
   intra-op threads; the order guarantee and a larger batch with consent), its neighbours (the next map width up
   and down, prefetch toggled), and the next shortlisted candidate.
5. ``tune.json``, ``report.html`` (the tune page) and the snippet to paste, all in ``results/<tune-id>/``.

Bad input (a SPEC that does not load, a scenario the tuner cannot change, a budget too small to confirm
anything) is one line and exit 2; what was measured before is kept in ``tune.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from tfperf.analysis import stats, tuning
from tfperf.api import tune as tune_api
from tfperf.api.base import AUTOTUNE, SIZES, ScenarioError, describe_callable
from tfperf.results.store import ReportError, atomic_write, load_run

START_S = 25.0  # a confirmation run's fixed cost beyond its rounds (pytest, worker processes importing TensorFlow)


class TuneError(Exception):
    """A user's mistake or a limit: the message is the whole story (one line)."""


def parse_budget(text: str) -> float:
    """'5m', '300s', '300', '1.5m' -> seconds."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|sec|m|min|h)?\s*", text or "")
    if not m:
        raise TuneError(f"--budget wants a time such as 5m, 90s or 300, got {text!r}")
    value = float(m.group(1)) * {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, None: 1}[m.group(2)]
    if not 0 < value < 24 * 3600:
        raise TuneError(f"--budget must be above 0 and below 24h, got {text!r}")
    return value


def parse_bytes(text: str) -> int:
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgG]i?[bB]?)?\s*", text or "")
    if not m:
        raise TuneError(f"--ram-budget wants a size such as 4G or 512M, got {text!r}")
    unit = (m.group(2) or "").upper()[:1]
    return int(float(m.group(1)) * {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}[unit])


def parser(prog: str = "tfperf") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{prog} tune", description="Find the fastest configuration of a stages pipeline (tfperf.pipeline): "
        "a model from one profiled run of the pipeline as written, then paired confirmation of its best "
        "candidates against the pipeline as written, the guide's advice (AUTOTUNE map and prefetch) and the "
        "compute-only bound. Prints the configuration as code; writes tune.json and report.html.")
    p.add_argument("target", metavar="SPEC[:scenario]",
                   help="a module or .py file with tfperf scenarios, and the scenario's name when it has several")
    p.add_argument("--budget", default="5m", help="time the tuning may take (default 5m)")
    p.add_argument("--size", default="default", help="smoke, small, default or large (default: default)")
    p.add_argument("--results", default="results", help="results root (default: results)")
    p.add_argument("--run-id", default=None, help="folder name (default: tune-<time>-<size>)")
    p.add_argument("--ram-budget", default=None,
                   help="memory a cache and tf.data's buffers may use (default: half the available RAM)")
    p.add_argument("--allow-nondeterministic", action="store_true",
                   help="let parallel stages deliver out of order (deterministic=False)")
    p.add_argument("--allow-batch-size", action="store_true",
                   help="let the tuner try a larger batch (it changes the training)")
    p.add_argument("--shortlist", type=int, default=3, help="candidates the first confirmation measures (default 3)")
    return p


class PeakRSS:
    """The largest resident memory of this process and its children together, sampled every 0.2 s (psutil)."""

    def __init__(self) -> None:
        import psutil

        self._me = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            try:
                procs = [self._me, *self._me.children(recursive=True)]
            except psutil.Error:
                procs = [self._me]
            for pr in procs:
                try:
                    total += pr.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(0.2)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def _pick(target: str) -> tuple[str, Any]:
    """(SPEC, the stages scenario) from SPEC[:scenario]; TuneError with one line when it cannot be tuned."""
    from tfperf.api import registry
    from tfperf.api.pipelines import DatasetScenario, StagesScenario
    from tfperf.api.training import ModelScenario

    head, sep, tail = target.rpartition(":")
    tries = [(head, tail), (target, "")] if sep and head else [(target, "")]
    found, spec, named, last_error = None, target, "", ""
    for attempt in tries:
        spec, named = attempt
        try:
            found = registry.resolve(spec)
            break
        except Exception as exc:  # noqa: BLE001 - the SPEC's own error is the line the user reads
            last_error = str(exc) if isinstance(exc, ScenarioError) else f"{type(exc).__name__}: {exc}"
            found = None
    if found is None:
        raise TuneError(f"{target}: {last_error}")
    if named:
        chosen = [s for s in found if s.name == named]
        if not chosen:
            raise TuneError(f"{spec} has no scenario {named!r} (it has: {', '.join(s.name for s in found)})")
    else:
        chosen = [s for s in found if isinstance(s, StagesScenario)] or found
        if len(chosen) > 1:
            raise TuneError(f"{spec} holds several scenarios ({', '.join(s.name for s in chosen)}): name one, "
                            f"{spec}:NAME")
    sc = chosen[0]
    if isinstance(sc, ModelScenario) and not isinstance(sc.data, StagesScenario):
        raise TuneError(f"scenario {sc.name} is a model scenario on an opaque dataset: the tuner cannot reach its map "
                        "width, prefetch, cache or batching (they are inside the factory). Declare its data with "
                        "tfperf.pipeline(Stages(...)) to tune")
    if not isinstance(sc, ModelScenario | DatasetScenario | StagesScenario):
        raise TuneError(f"scenario {sc.name} is a {sc.kind} scenario; tfperf tune tunes stages pipelines "
                        "(tfperf.pipeline)")
    return spec, sc


def _knobs(k: tuning.Knobs) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(k):
        value = getattr(k, f.name)
        if value != f.default:
            out[f.name] = [list(kv) for kv in value] if f.name == "options" else value
    return out


def _confirm(block: str, size: str, root: Path, run_id: str) -> Path:
    """One confirmation run of a tune SPEC through the suite; the run folder."""
    from tfperf.measure.launch import run_suite

    rc = run_suite([block, "--size", size, "--results", str(root), "--run-id", run_id, "--no-profile",
                    "--no-report", "-q"])
    out = root / run_id
    if not (out / "benchmarks.json").is_file():
        raise TuneError(f"the confirmation run {out} wrote no results (pytest exit {rc})")
    return out


def _side(r: Any) -> dict[str, Any]:
    return {"times": list(r.times), "examples": float(r.examples), "process": list(r.round_process)}


PIPELINE_PARTNERS = ((tune_api.AS_WRITTEN, "vs_as_written"), (tune_api.GUIDE, "vs_guide"), (tune_api.BOUND, "vs_bound"))
TRAINING_PARTNERS = ((tune_api.WRITTEN_FIT, "vs_as_written"), ("fit-guide", "vs_guide"), (tune_api.BOUND_FIT, "vs_bound"))


def _read(run_dir: Path, scenario: str,
          partners: tuple[tuple[str, str], ...] = PIPELINE_PARTNERS) -> dict[str, dict[str, Any]]:
    """Per variant of a confirmation: time per example, speedups over the pipeline as written and the guide's
    advice, and over the bound, each with its 95% interval (paired rounds, the block's process-level component
    pooled)."""
    frame = load_run(run_dir).frame
    frame = frame[frame["scenario"] == scenario]
    ok = {r.variant: r for r in frame.itertuples() if r.status == "ok" and len(r.times) and r.examples}
    base = partners[0][0]
    if base not in ok:
        reasons = "; ".join(f"{r.variant}: {r.reason}" for r in frame.itertuples() if r.status != "ok")
        raise TuneError(f"{scenario}: {base} could not be measured ({reasons or 'no rows'})")
    pairs = [(_side(ok[v]), _side(ok[base])) for v in ok if v != base]
    between = stats.pool_between([stats.pair_component(a, b) for a, b in pairs])
    out: dict[str, dict[str, Any]] = {}
    for name, r in ok.items():
        entry: dict[str, Any] = {"us_per_example": 1e6 * float(np.median(r.times)) / float(r.examples),
                                 "examples_per_sec": float(r.examples_per_sec), "unstable": bool(r.unstable),
                                 "unstable_reasons": list(r.unstable_reasons or [])}
        for partner, key in partners:
            if partner in ok and partner != name:
                est, lo, hi, p = stats.speedup(_side(r), _side(ok[partner]), between)
                entry[key] = {"speedup": est, "lo": lo, "hi": hi, "p": p}
        out[name] = entry
    return out


def _within_bound(entry: dict[str, Any]) -> bool:
    """Not resolved slower than the bound: its interval against the bound reaches 1 (or goes above it)."""
    b = entry.get("vs_bound")
    return b is not None and not math.isnan(b["hi"]) and b["hi"] >= 1.0


def snippet(sc: Any, st: Any, k: tuning.Knobs) -> str:
    """The configuration as tf.data code to paste, with the user's own functions named."""
    def width(w: int | None) -> str:
        return "tf.data.AUTOTUNE" if w == AUTOTUNE else str(w)
    par = f", num_parallel_calls={width(k.map_parallel)}" if k.map_parallel is not None else ""
    det = ", deterministic=False" if not k.deterministic and k.map_parallel is not None else ""
    batch = k.batch_size or st.batch_size
    lines = []
    if st.files is not None:
        reader = describe_callable(st.reader) if st.reader else "tf.data.TFRecordDataset"
        lines.append(f"ds = tf.data.Dataset.from_tensor_slices(files)  # {describe_callable(st.files)}")
        if k.interleave == "parallel":
            lines.append(f"ds = ds.interleave({reader}, cycle_length={k.cycle or 4}, "
                         f"num_parallel_calls=tf.data.AUTOTUNE{', deterministic=False' if not k.deterministic else ''})")
        else:
            lines.append(f"ds = ds.flat_map({reader})")
    else:
        lines.append(f"ds = source()  # {describe_callable(st.source)}")
    if k.vectorized:
        lines.append(f"ds = ds.batch({batch})")
        lines.append(f"ds = ds.map({describe_callable(st.batch_map)}{par}{det})")
    elif k.cache:
        lines.append(f"ds = ds.map({describe_callable(st.map)}{par}{det})")
        lines.append("ds = ds.cache()")
        if st.after_cache is not None:
            lines.append(f"ds = ds.map({describe_callable(st.after_cache)}{par}{det})")
        lines.append(f"ds = ds.batch({batch})")
    else:
        lines.append(f"ds = ds.map({describe_callable(st.map)}{par}{det})")
        if st.after_cache is not None:
            lines.append(f"ds = ds.map({describe_callable(st.after_cache)}{par}{det})")
        lines.append(f"ds = ds.batch({batch})")
    if k.prefetch is not None:
        lines.append(f"ds = ds.prefetch({width(k.prefetch)})")
    if k.options:
        lines.append("options = tf.data.Options()")
        lines += [f"options.{key} = {value!r}" for key, value in k.options]
        lines.append("ds = ds.with_options(options)")
    knobs = ", ".join(f"{key}={'AUTOTUNE' if value == AUTOTUNE and key in ('map_parallel', 'prefetch') else repr(value)}"
                      for key, value in _knobs(k).items()) or "none"
    lines.append(f"# tfperf knobs: {knobs}")
    return "\n".join(lines)


def run(argv: list[str], prog: str = "tfperf") -> int:
    args = parser(prog).parse_args(argv)
    started = time.perf_counter()
    try:
        budget = parse_budget(args.budget)
        if args.size not in SIZES:
            raise TuneError(f"--size must be one of {', '.join(SIZES)}, got {args.size!r}")
        if not 1 <= args.shortlist <= 8:
            raise TuneError(f"--shortlist must be between 1 and 8, got {args.shortlist}")
        ram = parse_bytes(args.ram_budget) if args.ram_budget else None
        from tfperf.runtime.quiet import tensorflow_started

        with tensorflow_started():
            from tfperf.runtime import devices

            devices.configure()
            spec, sc = _pick(args.target)
    except TuneError as exc:
        print(f"tfperf tune: {exc}", file=sys.stderr)
        return 2
    import psutil

    ram = ram or int(psutil.virtual_memory().available // 2)
    size = SIZES[args.size]
    run_id = args.run_id or f"tune-{datetime.now():%Y%m%d-%H%M%S}-{args.size}"
    folder = Path(args.results) / run_id
    try:
        folder.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        print(f"tfperf tune: {folder} exists already; give another --run-id", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"tfperf tune: cannot make {folder}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    answer: dict[str, Any] = {"schema": 1, "spec": spec, "scenario": sc.name, "size": size.name,
                              "budget_s": budget, "ram_budget_bytes": ram, "cores": os.cpu_count(),
                              "allow_nondeterministic": args.allow_nondeterministic,
                              "allow_batch_size": args.allow_batch_size, "phases": []}
    from tfperf.api.pipelines import DatasetScenario

    with PeakRSS() as rss:
        if isinstance(sc, DatasetScenario):
            code = _tune_dataset(spec, sc, size, folder, budget, answer, started)
        else:
            code = _tune(args, spec, sc, size, folder, budget, ram, answer, started)
    answer["peak_rss_bytes"] = rss.peak
    answer["wall_s"] = time.perf_counter() - started
    _write(folder, answer)
    if code == 0:
        print(_summary(answer))
    print(f"tfperf tune: {folder / 'tune.json'}, {folder / 'report.html'} ({answer['wall_s']:.0f} s, peak memory "
          f"{rss.peak / 2**20:.0f} MiB of the {ram / 2**20:.0f} MiB budget)")
    return code


def _tune(args: argparse.Namespace, spec: str, sc: Any, size: Any, folder: Path, budget: float, ram: int,
          answer: dict[str, Any], started: float) -> int:
    from tfperf.api.training import ModelScenario
    from tfperf.runtime.datasets import StagesData
    from tfperf.runtime.tune_probe import probe

    model = sc if isinstance(sc, ModelScenario) else None
    pipe = tune_api.through_step(model) if model else sc
    answer["pipeline"] = pipe.name
    t0 = time.perf_counter()
    try:
        figures, extra = probe(pipe, size, folder / "traces" / "as_written", ram / tuning.CACHE_HEADROOM,
                               size.profile_steps)
        facts = tuning.calibrate(tuning.Facts(**figures, ram_budget=ram), extra["parallel_s"])
    except Exception as exc:  # noqa: BLE001 - the user's stages failing is one line
        return _probe_failed(answer, sc.name, exc)
    st = StagesData(pipe).stages_at(size)
    answer["facts"] = {**dataclasses.asdict(facts), "cache_bytes": facts.cache_bytes}
    answer["probe"] = {**extra, "seconds": time.perf_counter() - t0}
    answer["phases"].append({"phase": "probe", "seconds": time.perf_counter() - t0})
    name, why = tuning.bottleneck(facts)
    answer["bottleneck"] = {"stage": name, "why": why}
    refusal = tuning.cache_refusal(facts)
    answer["not_in_space"] = ([f"cache: {refusal}"] if refusal else []) \
        + ([] if facts.vector_s is not None else ["vectorized map: the stages give no batch_map"]) \
        + ([] if facts.files > 1 else ["interleave: the stages read no files (or one)"]) \
        + ([] if args.allow_nondeterministic else ["out-of-order delivery: give --allow-nondeterministic"]) \
        + ([] if args.allow_batch_size else ["batch size: give --allow-batch-size (it changes the training)"])
    cands = tuning.space(facts, args.allow_nondeterministic)
    ranked = tuning.rank(cands, facts)
    answer["space"] = len(cands)
    answer["predicted"] = {k.name(): _prediction(k, facts) for k in [*(k for k, _ in ranked), tuning.AS_WRITTEN,
                                                                     tuning.GUIDE]}
    short = [k for k, _ in tuning.shortlist(cands, facts, args.shortlist)]
    names = {tuning.AS_WRITTEN.name(): tune_api.AS_WRITTEN, tuning.GUIDE.name(): tune_api.GUIDE}
    confirmed: dict[str, dict[str, Any]] = {}
    chosen: dict[str, tuning.Knobs] = {}
    first_wall = None
    rounds = [short]
    i = 0
    while i < len(rounds):
        batch = [k for k in rounds[i] if k.name() not in chosen and k.name() not in names]
        i += 1
        if not batch:
            continue
        spent = time.perf_counter() - started
        estimate = (first_wall * (len(batch) + 4) / (len(short) + 4)) if first_wall else \
            START_S + 2.5 * (len(batch) + 4) * size.rounds * max(size.min_round_s, 0.05) * 2 * 2
        if spent + estimate > budget:
            note = (f"the budget ({budget:.0f} s) leaves {max(0.0, budget - spent):.0f} s; a confirmation of "
                    f"{len(batch)} candidates needs about {estimate:.0f} s")
            answer.setdefault("stopped", note)
            if not confirmed:
                print(f"tfperf tune: too small a budget to confirm anything: {note}; the model's prediction is in "
                      f"{folder / 'tune.json'} (give --budget {math.ceil((spent + estimate) / 60)}m or more)",
                      file=sys.stderr)
                answer["error"] = f"nothing confirmed: {note}"
                return 2
            break
        t1 = time.perf_counter()
        try:
            block = tune_api.spec(spec, sc.name, [(k.name(), _knobs(k)) for k in batch], through_step=bool(model))
            got = _read(_confirm(block, size.name, folder, f"confirm-{i}"), pipe.name)
        except (TuneError, ReportError) as exc:
            answer["error"] = str(exc)
            print(f"tfperf tune: {exc}", file=sys.stderr)
            if not confirmed:
                return 2
            break
        wall = time.perf_counter() - t1
        first_wall = first_wall or wall
        answer["phases"].append({"phase": f"confirm-{i}", "seconds": wall, "candidates": [k.name() for k in batch]})
        for k in batch:
            chosen[k.name()] = k
            if k.name() not in answer["predicted"]:  # a tweak: predicted as the candidate without it
                answer["predicted"][k.name()] = {**_prediction(k, facts), "tweak": True}
        for n, entry in got.items():
            entry["confirmation"] = i
            confirmed.setdefault(n, {})[f"confirm-{i}"] = entry
        best = _fastest(got, chosen)
        answer["confirm"] = confirmed
        if best and _within_bound(got[best]):
            answer["stopped"] = f"{best} is within the resolution of the compute-only bound"
            break
        if i == 1 and best:
            nearby = [k for k in tuning.neighbours(chosen[best], facts) if k.name() not in chosen]
            rest = [k for k, _ in tuning.shortlist([c for c in cands if c.name() not in chosen and c not in nearby],
                                                   facts, 1)]
            rounds.append(tuning.tweaks(chosen[best], facts, args.allow_nondeterministic, args.allow_batch_size)
                          + nearby + rest)
    # the answer: the fastest candidate of the last confirmation that held one, against that run's partners
    last = max((int(k.split("-")[1]) for e in confirmed.values() for k in e), default=0)
    final = {n: e[f"confirm-{last}"] for n, e in confirmed.items() if f"confirm-{last}" in e}
    best = _fastest(final, chosen)
    if best is None:
        answer["recommended"] = None
        answer["verdict"] = "no candidate measured faster than the pipeline as written"
        return 0
    k = chosen[best]
    answer["recommended"] = {"name": best, "knobs": _knobs(k), "snippet": snippet(sc, st, k),
                             "measured": final[best], "as_written": final.get(tune_api.AS_WRITTEN),
                             "guide": final.get(tune_api.GUIDE), "confirmation": last,
                             "predicted_seconds_per_batch": tuning.predict(k, facts).seconds_per_batch}
    answer["model_check"] = _model_check(final, chosen, facts)
    if model is not None:
        return _train(spec, model, best, k, size, folder, budget, answer, started)
    return 0


UNREACHABLE = ("map width, prefetch and cache placement inside the pipeline, vectorized map, interleave and batching: "
               "they are inside the factory of an opaque tfperf.dataset (declare it with tfperf.pipeline(Stages(...)) "
               "to tune them)")


def _tune_dataset(spec: str, sc: Any, size: Any, folder: Path, budget: float, answer: dict[str, Any],
                  started: float) -> int:
    """An opaque dataset: only tf.data.Options and appended stages can change. No model (its stages cannot be
    told apart): the slowest iterator named from a trace, then the dataset matrix measured in one block, without
    an appended cache where the dataset holds random ops or Python."""
    from tfperf.analysis.diagnosis import slowest_stage, stage_type
    from tfperf.api.pipelines import DatasetVariant
    from tfperf.results import traces
    from tfperf.runtime.datasets import DatasetData
    from tfperf.runtime.pipelines import PipelineRun
    from tfperf.runtime.profiling import capture
    from tfperf.runtime.tune_probe import source_opacity

    answer["not_in_space"] = [UNREACHABLE]
    t0 = time.perf_counter()
    try:
        data = DatasetData(sc)
        opaque = source_opacity(data._given(size))
        shot = capture(PipelineRun(data, DatasetVariant(name="as_given"), size), folder / "traces" / "as_written",
                       max(size.profile_steps, 8))
        slowest = slowest_stage(traces.iterator_self_ms(shot.xplane))
    except Exception as exc:  # noqa: BLE001 - the user's dataset failing is one line
        return _probe_failed(answer, sc.name, exc)
    answer["phases"].append({"phase": "probe", "seconds": time.perf_counter() - t0})
    answer["bottleneck"] = {"stage": stage_type(slowest[0]) if slowest else "-",
                            "why": f"the iterator with the most self time in the trace ({slowest[1]:.1f} ms of the "
                                   f"window, {slowest[0]})" if slowest else "no iterator time in the trace"}
    skip = ["cache"] if opaque else []
    if opaque:
        answer["not_in_space"].append(f"an appended cache: the dataset holds {', '.join(opaque[:3])}, which a cache "
                                      "would freeze for every epoch")
    names = [v.name for v in sc.variants if v.name not in skip]
    t1 = time.perf_counter()
    try:
        from tfperf.measure.launch import run_suite

        expr = " or ".join(f"{sc.name}/{n}]" for n in names)
        rc = run_suite([spec, "-k", expr, "--size", size.name, "--results", str(folder), "--run-id", "confirm-1",
                        "--no-profile", "--no-report", "-q"])
        if not (folder / "confirm-1" / "benchmarks.json").is_file():
            raise TuneError(f"the confirmation run wrote no results (pytest exit {rc})")
        got = _read(folder / "confirm-1", sc.name, (("as_given", "vs_as_written"),))
    except (TuneError, ReportError) as exc:
        answer["error"] = str(exc)
        print(f"tfperf tune: {exc}", file=sys.stderr)
        return 2
    answer["phases"].append({"phase": "confirm-1", "seconds": time.perf_counter() - t1, "candidates": names})
    for entry in got.values():
        entry["confirmation"] = 1
    answer["confirm"] = {n: {"confirm-1": e} for n, e in got.items()}
    best = _fastest(got, names, resolved=True)
    if best is None:
        answer["recommended"] = None
        answer["verdict"] = "no option or appended stage measured faster than the dataset as given"
        return 0
    v = sc.variant(best)
    lines = ["ds = your_factory()"]
    if v.append_cache:
        lines.append("ds = ds.cache()")
    if v.append_prefetch:
        lines.append("ds = ds.prefetch(tf.data.AUTOTUNE)")
    if v.options:
        lines.append("options = tf.data.Options()")
        lines += [f"options.{key} = {value!r}" for key, value in v.options]
        lines.append("ds = ds.with_options(options)")
    answer["recommended"] = {"name": best, "knobs": v.knobs(), "snippet": "\n".join(lines), "measured": got[best],
                             "as_written": got.get("as_given"), "confirmation": 1}
    return 0


TRAINING: tuple[tuple[str, dict[str, Any]], ...] = (("fit-as_written", {"input_variant": tune_api.AS_WRITTEN}),
            ("fit-guide", {"input_variant": tune_api.GUIDE}),
            ("fit-tuned", {}),
            ("fit-tuned-spe", {"steps_per_execution": 10}),
            ("fit-tuned-jit", {"jit_compile": True}),
            ("function-tuned", {"loop": "function"}),
            ("xla-tuned", {"loop": "xla"}))


def _train(spec: str, model: Any, best: str, knobs: tuning.Knobs, size: Any, folder: Path, budget: float,
           answer: dict[str, Any], started: float) -> int:
    """The training knobs, on the tuned input: fit against a tf.function and an XLA loop, steps_per_execution and
    jit_compile, each with the tuned input, against fit on the pipeline as written and on the guide's advice, and
    fit's compute-only bound, in one block."""
    cands = [(n, {**k, "input_variant": k.get("input_variant", best)}) for n, k in TRAINING]
    per_confirmation = max((p["seconds"] for p in answer["phases"] if p["phase"].startswith("confirm")), default=60)
    spent = time.perf_counter() - started
    if spent + 1.5 * per_confirmation > budget:
        answer["training"] = {"skipped": f"the budget ({budget:.0f} s) leaves {max(0.0, budget - spent):.0f} s; "
                                         f"the training block needs about {1.5 * per_confirmation:.0f} s"}
        return 0
    t1 = time.perf_counter()
    try:
        block = tune_api.spec(spec, model.name, [(best, _knobs(knobs))], training=cands)
        got = _read(_confirm(block, size.name, folder, "confirm-training"), model.name, TRAINING_PARTNERS)
    except (TuneError, ReportError) as exc:
        answer["training"] = {"error": str(exc)}
        print(f"tfperf tune: the training block: {exc}", file=sys.stderr)
        return 0
    for name, entry in got.items():  # fit's bound has fit's compute: only plain fit is compared with it
        if name not in (tune_api.WRITTEN_FIT, "fit-guide", "fit-tuned"):
            entry.pop("vs_bound", None)
    answer["phases"].append({"phase": "confirm-training", "seconds": time.perf_counter() - t1,
                             "candidates": [n for n, _ in cands]})
    top = _fastest(got, [n for n, _ in cands])
    chosen = dict(cands).get(top or "", {})
    compile_args = {"steps_per_execution": chosen.get("steps_per_execution", 1),
                    "jit_compile": bool(chosen.get("jit_compile"))}
    loop = chosen.get("loop", "fit")
    if loop == "fit":
        code = f"model.compile(optimizer=..., loss=..., steps_per_execution={compile_args['steps_per_execution']}, " \
               f"jit_compile={compile_args['jit_compile']})\nmodel.fit(ds, ...)"
    else:
        code = (f"@tf.function(jit_compile={loop == 'xla'})\ndef train_step(x, y):\n    with tf.GradientTape() as tape:\n"
                "        loss = loss_fn(y, model(x, training=True))\n"
                "    optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), "
                "model.trainable_variables))\n    return loss\n\nfor x, y in ds:\n    train_step(x, y)")
    answer["training"] = {"confirm": got, "recommended": top, "loop": loop, "compile": compile_args, "code": code,
                          "overhead_as_written": got.get(tune_api.WRITTEN_FIT, {}).get("vs_bound"),
                          "overhead_tuned": got.get("fit-tuned", {}).get("vs_bound")}
    return 0


def _fastest(got: dict[str, dict[str, Any]], among: Any, resolved: bool = False) -> str | None:
    """Of the variants `among`, the stable one with the largest measured speedup over the base of its block;
    `resolved`: only one whose interval lies above 1. None when there is none."""
    ok = [(e["vs_as_written"]["speedup"], n) for n, e in got.items()
          if n in among and "vs_as_written" in e and not e["unstable"] and (not resolved or e["vs_as_written"]["lo"] > 1)]
    return max(ok)[1] if ok else None


def _prediction(k: tuning.Knobs, facts: tuning.Facts) -> dict[str, Any]:
    p = tuning.predict(k, facts)
    return {"seconds_per_batch": p.seconds_per_batch, "limit": p.limit, "knobs": _knobs(k)}


def _probe_failed(answer: dict[str, Any], scenario: str, exc: Exception) -> int:
    """The user's stages or dataset failed while probed: one line, kept in tune.json, exit 2."""
    from tfperf.api.base import first_line

    answer["error"] = f"probing {scenario} failed: {first_line(exc)}"
    print(f"tfperf tune: {answer['error']}", file=sys.stderr)
    return 2


def _model_check(final: dict[str, dict[str, Any]], chosen: dict[str, tuning.Knobs],
                 facts: tuning.Facts) -> list[dict[str, Any]]:
    out = []
    knobs = {**chosen, tune_api.AS_WRITTEN: tuning.AS_WRITTEN, tune_api.GUIDE: tuning.GUIDE}
    for n, e in final.items():
        if n not in knobs:
            continue
        predicted = tuning.predict(knobs[n], facts)
        per_batch = e["us_per_example"] * 1e-6 * (knobs[n].batch_size or facts.batch_size)
        out.append({"variant": n, "predicted_ms_per_batch": 1e3 * predicted.seconds_per_batch,
                    "measured_ms_per_batch": 1e3 * per_batch, "limit": predicted.limit,
                    "error": predicted.seconds_per_batch / per_batch - 1})
    return out


def _pct(x: float) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}x"


def _interval(d: dict[str, Any] | None) -> str:
    if not d:
        return "not measured"
    return f"{_pct(d['speedup'])} [{_pct(d['lo'])}, {_pct(d['hi'])}]"


def _summary(answer: dict[str, Any]) -> str:
    rec = answer.get("recommended")
    lines = [f"== tfperf tune: {answer['scenario']} ({answer['size']})",
             f"bottleneck as written: {answer['bottleneck']['stage']}: {answer['bottleneck']['why']}"]
    lines += [f"not tried: {n}" for n in answer.get("not_in_space") or []]
    if not rec:
        lines.append(answer.get("verdict", "nothing recommended"))
        return "\n".join(lines)
    m = rec["measured"]
    lines += [f"recommended: {rec['name']}",
              f"  speed over the pipeline as written: {_interval(m.get('vs_as_written'))}",
              f"  speed over the guide's advice (AUTOTUNE map and prefetch): {_interval(m.get('vs_guide'))}"]
    for label, entry in (("as written", rec.get("as_written")), ("recommended", m)):
        b = (entry or {}).get("vs_bound")
        if b:
            lines.append(f"  input overhead over the compute-only bound, {label}: {100 * (1 / b['speedup'] - 1):+.0f}% "
                         f"[{100 * (1 / b['hi'] - 1):+.0f}%, {100 * (1 / b['lo'] - 1):+.0f}%]")
    lines += ["", rec["snippet"], ""]
    tr = answer.get("training") or {}
    if tr.get("recommended"):
        m = tr["confirm"][tr["recommended"]]
        lines.append(f"training: {tr['recommended']}: {_interval(m.get('vs_as_written'))} the speed of fit on the "
                     "pipeline as written")
        for label, b in (("fit on the pipeline as written", tr.get("overhead_as_written")),
                         ("fit on the tuned pipeline", tr.get("overhead_tuned"))):
            if b:
                lines.append(f"  input overhead over the compute-only bound, {label}: {100 * (1 / b['speedup'] - 1):+.0f}% "
                             f"[{100 * (1 / b['hi'] - 1):+.0f}%, {100 * (1 / b['lo'] - 1):+.0f}%]")
        lines += ["", tr["code"], ""]
    elif tr:
        lines.append(f"training: {tr.get('skipped') or tr.get('error')}")
    if answer.get("stopped"):
        lines.append(f"stopped: {answer['stopped']}")
    return "\n".join(lines)


def _write(folder: Path, answer: dict[str, Any]) -> None:
    def clean(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        return x
    atomic_write(folder / "tune.json", json.dumps(clean(answer), indent=1, sort_keys=True))
    from tfperf.render import tune_page

    atomic_write(folder / "report.html", tune_page.format_html(clean(answer)))
