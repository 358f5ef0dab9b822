"""Run versus run: what changed, flagged only when the runs' own repetition says it is real.

A benchmark's change is the ratio of its time per example, new over base. Each side may be several runs
(``compare BASE... -- NEW...``), and each run may hold several worker processes (``--tfperf-processes``):
a *unit* is one process of one run, and a unit's value is the median of its rounds. The noise a change is
judged against comes from that repetition, benchmark by benchmark, never from the spread of the other
benchmarks in the comparison being judged:

- with two or more units on each side: a t test on the log unit values (units differ by more than rounds
  do: a process has a level of its own, pyperf's lesson), its 95% interval, and p. The variance is the
  spread of units *within* each side (so a real change between the sides never inflates it), and a
  benchmark uses the larger of its own and the one pooled over its block (the variants measured with it),
  whose degrees of freedom are many where its own two or three processes give one or two. One variant
  instance's variance, measured by the runs' null pairs (two instances of one variant in every process), is
  pooled in by its degrees of freedom: a third estimate of the same spread;
- with one unit on a side: the rounds are all there is. The interval is a bootstrap of the ratio of median
  rounds and the test a Mann-Whitney U on the rounds; where the rank test cannot reach ``alpha`` with the
  rounds it has (with n rounds a side its smallest p is 2/C(2n, n)), the row says so and the interval alone
  decides. Rounds of one process cannot see the spread between processes: the limits printed then are
  lower bounds, and the table says so.

Each benchmark's change is taken *relative to its block* (the benchmarks measured in the same rounds, see
``block_levels``): the machine's speed moves between runs (measured: a whole block 4-12% faster in one run than in
the run before it, same code), and that moves every benchmark of a block together, so it is taken out of each
round and shown once, as the block's own row ("<block> (whole block)"). That row is judged *relative to the suite's
reference workload* (:mod:`tfperf.measure.reference`), a fixed pipeline timed in every block's rounds that no
change of the scenarios touches: it shares the machine's state and the process's level, so a whole block that
moves against it moved by its own code (every benchmark 20% slower is flagged, the machine 20% slower is not).
Runs written before the reference have none: their block rows are judged as before (with one run a side, against
the run-to-run drift, ``DRIFT``). Where the members differ in how CPU-bound
they are (`process_cpu_per_s`), the level is a line in that share (see ``_line``): a change of the CPU's speed
moves a member that mostly waits less than one that computes. A benchmark alone in its block (or in a block of
fewer than three) is judged on its time relative to the reference workload timed in its rounds; in runs written
before the reference, on its absolute time, which with one run a side holds the machine's drift that the run's
processes cannot see, so it is then judged against that drift like a block's own row (measured: the two
multi-worker rows, one process a run, moved +18% to +48% in absolute time from one run to the next, same code).
Every row also prints its absolute change.

A change is flagged when it exceeds its threshold (default 5%, per benchmark by glob), its whole 95%
interval lies beyond that threshold, the test (where it can reach significance) gives p < alpha, and it survives
the comparison's false discovery control: weighted Benjamini-Hochberg at ``alpha`` over every row judged, on each
row's p of lying beyond its threshold, the whole-block rows sharing half the weight (``_multiplicity``). Every
row prints its *detection limit*: the half-width of its 95% interval, the smallest change this pair of runs
could tell from noise. Runs measured under different suite, TensorFlow or scenario versions compare (a user's
edit, a TensorFlow upgrade): the findings say what changed, and every row says which of those changes apply to
it (``changed``); runs from different hosts compare with that said, every row marked cross-host. A row its own run
marked unstable is shown, never flagged. Runs at different sizes, or with no benchmark in common, are not
comparable.

Exit status: 0 nothing flagged; 1 a flagged regression; 2 not comparable or bad input.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tfperf.results.store import Run

from . import tables
from .levels import Measured, block_levels, cpu_shares, rounds_of
from .stats import beyond_p, instance_variance, judge, unit_variance, weighted_discoveries
from .tables import interval

# One run a side: how far a whole block's level moves between two runs of the same code on this kind of machine
# (measured: 4-12%, docs/statistics.md); a block's own row is judged against it (compare --drift).
DRIFT = 0.12
# One run a side: how far a block's level relative to the reference workload moves from one run of one code to the
# next beyond what the run's processes show. Added to the block row's variance. Measured on 96 block rows of 16 pairs
# of same-code default runs (four disjoint pairs and the 15 pairs of six runs of one measuring code): the Paule-Mandel
# estimate, 2.0% a run, gives 95.8% of those rows' 95% intervals holding 0 (3.5%, from one pair before: 99.0%,
# half-widths 13.2% against 9.9%; none: 91.7%); docs/statistics.md.
REFERENCE_RUN_SD = 0.020
BLOCK_WITHIN_DRIFT = "block moved (within the run-to-run drift: not judged)"
MOVED_WITH_BLOCK = "moved relative to its block only (its own time did not: the block moved)"


@dataclass
class Comparison:
    base: list[Run]
    new: list[Run]
    rows: pd.DataFrame
    incomparable: list[str] = field(default_factory=list)
    unmatched_patterns: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # versions that differ between the sides (compared all the same)
    family: tuple[int, int] = (0, 0)  # (whole-block rows, member rows) judged under the false discovery control
    rate: float = 0.05  # the false discovery rate the flags are held to
    hosts: list[str] = field(default_factory=list)  # how the sides' hosts differ (compared, every row cross-host)

    @property
    def regressions(self) -> pd.DataFrame:
        return self.rows[self.rows["flag"] == "regression"]

    @property
    def exit_code(self) -> int:
        if self.incomparable:
            return 2
        return 1 if not self.regressions.empty else 0

    @property
    def base_label(self) -> str:
        return ", ".join(r.run_id for r in self.base)

    @property
    def new_label(self) -> str:
        return ", ".join(r.run_id for r in self.new)


def _first(run: Run, col: str) -> str | None:
    if col not in run.frame:
        return None
    values = run.frame[col].dropna()
    return str(values.iloc[0]) if len(values) else None


def _versions(run: Run) -> dict[str, object]:
    """What a run was measured with that a user may change on purpose: compared, and said on every row."""
    return {"suite": run.meta.get("suite_version") or _first(run, "suite_version"),
            "TensorFlow": _first(run, "tf_version")}


def _host(run: Run) -> dict[str, object]:
    """The host, as pytest-benchmark and the suite recorded it: a run on another CPU compares, marked cross-host."""
    m = run.machine
    cpu = m.get("cpu") or {}
    flags = cpu.get("flags") or []
    return {"CPU": cpu.get("brand_raw") or m.get("processor"), "cores": m.get("cpu_count"),
            "AVX-512": any(str(f).startswith("avx512") for f in flags) if flags else None,
            "GPUs": tuple((m.get("tfperf") or {}).get("gpus") or ())}


def _differences(bases: list[Run], news: list[Run]) -> tuple[list[str], list[str], list[str]]:
    """(what makes the sides not comparable at all: a different size; what changed between the sides' versions;
    how their hosts differ), each as lines naming both values."""
    ref = bases[0]
    incomparable, changed, hosts = [], [], []
    for run in bases[1:] + news:
        a, b = ref.meta.get("size") or _first(ref, "size"), run.meta.get("size") or _first(run, "size")
        if a != b:
            incomparable.append(f"size differs: {a} ({ref.run_id}) vs {b} ({run.run_id})")
        for (k, x), y in zip(_versions(ref).items(), _versions(run).values(), strict=True):
            if x != y:
                changed.append(f"{k} version {x} ({ref.run_id}) -> {y} ({run.run_id})")
        for (k, x), y in zip(_host(ref).items(), _host(run).values(), strict=True):
            if x != y and x is not None and y is not None:
                hosts.append(f"{k}: {x} ({ref.run_id}) vs {y} ({run.run_id})")
    return incomparable, list(dict.fromkeys(changed)), list(dict.fromkeys(hosts))


def _scenario_change(bases: list[Run], news: list[Run], scenario: str) -> str:
    def versions(runs: list[Run]) -> set[str]:
        return {str((r.meta.get("scenario_versions") or {}).get(scenario)) for r in runs}

    a, b = versions(bases), versions(news)
    return "" if a == b else f"scenario {scenario} {'/'.join(sorted(a))} -> {'/'.join(sorted(b))}"


def _unstable(runs: list[Run]) -> set[str]:
    return {f"{r.scenario}/{r.variant}" for run in runs for r in run.frame.itertuples()
            if r.status == "ok" and r.unstable is True}


def _units(runs: list[Run], name: str, per_run: dict[int, Measured],
           values: dict[int, dict[str, list[float]]] | None = None) -> tuple[list[float], list[float]]:
    """(unit values, all rounds) of one benchmark over a side's runs, as seconds per example (or, given `values`,
    the rounds there instead: e.g. relative to their block)."""
    units: list[float] = []
    rounds: list[float] = []
    for run in runs:
        found = per_run[id(run)].get(name)
        if found is None:
            continue
        _, per, process = found
        if values is not None:
            per = values[id(run)][name]
        rounds += per
        for p in sorted(set(process)):
            units.append(float(np.median([t for t, q in zip(per, process, strict=True) if q == p])))
    return units, rounds


def compare(base: Run | list[Run], new: Run | list[Run], threshold: float = 0.05,
            per_benchmark: dict[str, float] | None = None, alpha: float = 0.05,
            drift: float = DRIFT, multiplicity: bool = True) -> Comparison:
    """`multiplicity` False judges each row at `alpha` on its own (only for measuring what the control does:
    scripts/gate_eval.py)."""
    bases = base if isinstance(base, list) else [base]
    news = new if isinstance(new, list) else [new]
    incomparable, changed, hosts = _differences(bases, news)
    unstable = _unstable(bases + news)
    one_run = min(len(bases), len(news)) < 2  # the machine's drift between runs is not seen: judged against `drift`

    def names(runs: list[Run]) -> set[str]:
        return {f"{r.scenario}/{r.variant}" for run in runs for r in run.frame.itertuples() if r.status == "ok"}

    b_names, n_names = names(bases), names(news)
    every = sorted(b_names | n_names)
    if not b_names & n_names:
        incomparable.append("no benchmark measured on both sides")
    patterns = per_benchmark or {}
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in every)]
    per_run = {id(run): rounds_of(run) for run in bases + news}
    block_of = {name: group for measured in per_run.values() for name, (group, _, _) in measured.items()}
    relative, levels = block_levels(per_run, cpu_shares(bases + news))

    def is_relative(name: str) -> bool:  # its block's level was taken out in every run that has it
        return all(name in relative.get(key, {}) for key, measured in per_run.items() if name in measured)

    referenced = _against_reference(bases + news, per_run)
    units = {}
    basis = {}
    for name in sorted(b_names & n_names):
        values = relative if is_relative(name) else None
        basis[name] = "relative to its block" if values is not None else "absolute"
        if values is None and all(name in referenced.get(key, {}) for key, measured in per_run.items()
                                  if name in measured):
            values = referenced  # alone in its block: its time over the reference's, round by round
            basis[name] = REFERENCED
        units[name] = (_units(bases, name, per_run, values), _units(news, name, per_run, values))
    pools: dict[str, list[tuple[float, int]]] = {}
    for name, ((bu, _), (nu, _)) in units.items():
        var, df = unit_variance(bu, nu)
        if df:
            pools.setdefault(block_of[name], []).append((var, df))
    pooled = {g: (sum(v * d for v, d in xs) / sum(d for _, d in xs), sum(d for _, d in xs)) for g, xs in pools.items()}
    instances = instance_variance(bases + news)
    out = []
    for name in every:
        limit = threshold
        for pattern, value in patterns.items():
            if fnmatch.fnmatchcase(name, pattern):
                limit = value
        row: dict[str, object] = {"benchmark": name, "base_s": float("nan"), "new_s": float("nan"),
                                  "change": float("nan"), "lo": float("nan"), "hi": float("nan"), "p": float("nan"),
                                  "limit": float("nan"), "test": "", "threshold": limit,
                                  "units": "", "basis": "", "absolute_change": float("nan"),
                                  "changed": "; ".join(x for x in [_scenario_change(bases, news, name.split("/")[0]),
                                                                   *changed, *(["cross-host"] if hosts else [])] if x)}
        if name not in b_names or name not in n_names:
            row["flag"] = "only in new" if name not in b_names else "only in base"
            out.append(row)
            continue
        (bu, br), (nu, nr) = units[name]
        group = block_of[name]
        row.update(judge(bu, br, nu, nr, alpha, pooled.get(group), instances.get(group) or instances.get("")))
        if basis[name] == "absolute":
            (_, abr), (_, anr) = units[name]
        else:
            (_, abr), (_, anr) = _units(bases, name, per_run), _units(news, name, per_run)
        row.update(base_s=float(np.median(abr)), new_s=float(np.median(anr)), units=f"{len(bu)}/{len(nu)}",
                   basis=basis[name], absolute_change=float(np.median(anr) / np.median(abr) - 1))
        row = _flagged(row, limit, alpha, incomparable)
        if name in unstable and row["flag"] in FLAGS:  # shown, never flagged: its own run doubted it
            row["flag"] = UNSTABLE
        alone = basis[name] == "absolute" or (basis[name] == REFERENCED and min(len(bu), len(nu)) < 2)
        if alone and one_run and row["flag"] != UNSTABLE:
            # No block to take the machine's drift out: its change holds that drift, which the processes of one
            # run cannot see (they share the machine's state): judged, as a block's own row, against the drift.
            # Relative to the reference but from one process a side (a multi-worker row), only its rounds are
            # there to judge it, and they cannot see how that ratio moves from one run to the next (measured:
            # mlp_multiworker/workers_2 -12.7% [-15.3%, -4.6%] relative to the reference, same code): the same.
            row["basis"] = f"{basis[name]}, against a {100 * drift:.0f}% run-to-run drift"
            row = _against_drift(row, limit, drift, alpha, incomparable, ABSOLUTE_MOVED)
            if name in unstable and row["flag"] in FLAGS:
                row["flag"] = UNSTABLE
        out.append(row)
    blocks = _block_rows(bases, news, per_run, levels, threshold, alpha, incomparable, drift if one_run else None)
    _only_the_blocks_move(out, blocks, block_of, drift if one_run else 0.0)
    family = _multiplicity(out + blocks, alpha) if multiplicity else (0, 0)
    out += blocks
    frame = pd.DataFrame(out)
    if len(frame):  # a block's own row: the run-wide changes
        frame["changed"] = frame["changed"].fillna("; ".join([*changed, *(["cross-host"] if hosts else [])]))
    return Comparison(base=bases, new=news, rows=frame, incomparable=incomparable,
                      unmatched_patterns=unmatched, changed=changed, hosts=hosts, family=family, rate=alpha)


def _multiplicity(rows: list[dict[str, object]], alpha: float) -> tuple[int, int]:
    """Hold the comparison's flags to a false discovery rate of `alpha` over every row it judged, not `alpha` per
    row: about 85 rows judged at 5% each flagged some row in 25 of 40 pairs of same-code default runs (measured,
    scripts/gate_eval.py; with this control, 6 of 40). Weighted Benjamini-Hochberg on each row's p of lying beyond
    its threshold: the whole-block rows (what a uniform regression moves) share half the weight and the members the
    other half, so a handful of block rows is not drowned by eighty members. A row flagged on its own whose q exceeds `alpha` becomes noise.
    Returns (whole-block rows, member rows) judged."""
    judged = {i: float(r["p_beyond"]) for i, r in enumerate(rows)  # type: ignore[arg-type]
              if r.get("flag") != "not comparable" and not np.isnan(float(r.get("p_beyond", float("nan"))))}  # type: ignore[arg-type]
    is_block = {i: str(rows[i]["benchmark"]).endswith(BLOCK) for i in judged}
    n_blocks = sum(is_block.values())
    n_members = len(judged) - n_blocks
    weights = {i: (0.5 / n_blocks if is_block[i] else 0.5 / n_members) if n_blocks and n_members else 1.0
               for i in judged}
    q = weighted_discoveries({str(i): p for i, p in judged.items()}, {str(i): w for i, w in weights.items()})
    for i, row in enumerate(rows):
        if i in judged:
            row["q"] = q[str(i)]
        if row.get("flag") in FLAGS and (i not in judged or q[str(i)] > alpha):
            row["flag"] = "noise"  # not beyond its threshold once every row is counted, or no p to count it by
    return n_blocks, n_members


def _against_reference(runs: list[Run], per_run: dict[int, Measured]) -> dict[int, dict[str, list[float]]]:
    """Every benchmark's rounds over the reference workload's rounds in its block (see `reference_rounds`), by run;
    a benchmark whose run has no reference beside it is left out."""
    out: dict[int, dict[str, list[float]]] = {}
    for run in runs:
        for name, (group, per, process) in per_run[id(run)].items():
            ref = reference_rounds(run, group, process)
            if ref is not None:
                out.setdefault(id(run), {})[name] = [t / r for t, r in zip(per, ref, strict=True)]
    return out


def _flagged(row: dict[str, object], limit: float, alpha: float, incomparable: list[str]) -> dict[str, object]:
    """The row's flag at `alpha` on its own (the comparison's multiplicity control, `_multiplicity`, may then take
    it back), and ``p_beyond``: the p of the test that the change lies beyond +/-`limit`, which that control ranks.
    Without a t test over processes (rounds of one process a side) it comes from Welch's t on the log rounds."""
    change, lo, hi = float(row["change"]), float(row["lo"]), float(row["hi"])  # type: ignore[arg-type]
    significant = (not row["test_can_reach"]) or float(row["p"]) < alpha  # type: ignore[arg-type]
    se = float(row.get("se", float("nan")))  # type: ignore[arg-type]
    if np.isnan(change) or np.isnan(lo) or not se > 0:
        row["p_beyond"] = float("nan")
    elif abs(change) > limit and limit < 1:
        row["p_beyond"] = beyond_p(change, se, float(row["df"]), limit)  # type: ignore[arg-type]
    else:
        row["p_beyond"] = 1.0
    if incomparable:
        row["flag"] = "not comparable"
    elif abs(change) > limit and significant and (lo > limit or hi < -limit):
        row["flag"] = "regression" if change > 0 else "improvement"
    elif abs(change) > limit:
        row["flag"] = "noise"  # large, but not distinguishable from this benchmark's own repetition
    else:
        row["flag"] = ""
    return row


BLOCK = " (whole block)"
REFERENCED = "relative to the reference workload timed in its rounds"
FLAGS = ("regression", "improvement")
ABSOLUTE_MOVED = "moved (absolute time, within the run-to-run drift: not judged)"
UNSTABLE = "moved (marked unstable by its run: not judged)"
# Measured (README, Known limits: what moves a run's levels): in one process, with nothing rebuilt, the ratio of two
# `mlp` loops moved 0.65-0.94 from one 20 s window to the next with the machine's state, and a row's level relative to
# its block moved from run to run by a standard deviation of up to 11%. One run a side holds no sample of that.
ONE_RUN_CAVEAT = ("one run a side: each limit holds the spread within each run, but a benchmark's level relative to "
                  "its block also moves with the machine's state from one run to the next, which only several runs "
                  "a side can measure: confirm a flag with compare A B -- C D")


def _block_rows(bases: list[Run], news: list[Run], per_run: dict[int, Measured],
                levels: dict[int, dict[str, list[float]]], threshold: float, alpha: float,
                incomparable: list[str], drift: float | None = None) -> list[dict[str, object]]:
    """A row per block: how the level of all its benchmarks together moved (what the benchmarks' own rows leave
    out). With two or more runs a side it is judged against how much block levels vary between those runs'
    processes, pooled over the blocks. With one run a side (``drift`` given), a run's processes measure a block
    within a minute of each other and share the machine's state, so they cannot see how much the machine moves
    between runs (measured, same code: whole blocks 4-12% apart from one run to the next): the block is then
    judged against that run-to-run drift as its threshold (flagged when its whole interval lies beyond it), so a
    uniform slowdown larger than what the machine does by itself is flagged and a smaller move is shown."""
    def side(runs: list[Run], group: str, against_reference: bool) -> list[float] | None:
        units = []
        for run in runs:
            level = levels.get(id(run), {}).get(group)
            if level is None:
                return None
            process = next(p for g, _, p in per_run[id(run)].values() if g == group)
            if against_reference:
                ref = reference_rounds(run, group, process)
                if ref is None:
                    return None
                level = [x / r for x, r in zip(level, ref, strict=True)]
            units += [float(np.median([x for x, q in zip(level, process, strict=True) if q == p]))
                      for p in sorted(set(process))]
        return units

    groups = sorted({g for run in bases + news for g in levels.get(id(run), {})})
    sides: dict[str, tuple[list[float], list[float], bool]] = {}
    for g in groups:
        b, n = side(bases, g, True), side(news, g, True)
        if b and n:
            sides[g] = (b, n, True)
            continue
        b, n = side(bases, g, False), side(news, g, False)
        if b and n:
            sides[g] = (b, n, False)

    def pool(parts: list[tuple[float, int]]) -> tuple[float, int] | None:
        df = sum(d for _, d in parts)
        return (sum(v * d for v, d in parts if d) / df, df) if df else None

    own = {g: unit_variance(b, n) for g, (b, n, _) in sides.items()}
    # Blocks without a reference: the larger of a block's own variance and the pooled one (see judge). Blocks
    # against the reference: their own variance pooled by degrees of freedom with the other referenced blocks'
    # (a moderated variance, as limma's empirical Bayes does for many small samples): a block's own two or three
    # processes a side say little about their spread, and taking the larger of two noisy estimates (the rule
    # above) cost half the power at no gain in false alarms (simulated, tests/test_gate_drift.py).
    unreferenced = pool([own[g] for g, (_, _, k) in sides.items() if not k])
    others = {g: pool([own[o] for o, (_, _, k) in sides.items() if k and o != g]) for g, (_, _, k) in sides.items()
              if k}
    rows = []
    for g, (b, n, referenced) in sides.items():
        if referenced:
            basis = "block level relative to the reference workload timed in its rounds, against its runs' spread" + (
                f" and a {100 * REFERENCE_RUN_SD:.1f}% run-to-run move" if drift is not None else "")
        elif drift is None:
            basis = "block level, against its runs' spread"
        else:
            basis = f"block level, against a {100 * drift:.0f}% run-to-run drift (no reference workload)"
        row: dict[str, object] = {"benchmark": g + BLOCK, "base_s": float("nan"), "new_s": float("nan"),
                                  "threshold": threshold, "units": f"{len(b)}/{len(n)}", "basis": basis,
                                  "absolute_change": float("nan"),
                                  "reference_change": reference_change(bases, news, g) if referenced else float("nan")}
        if referenced:  # with one run a side, plus the ratio's own run-to-run move, which no process shows
            row.update(judge(b, b, n, n, alpha, instance=others[g],
                             run_sd=REFERENCE_RUN_SD if drift is not None else 0.0))
        else:
            row.update(judge(b, b, n, n, alpha, unreferenced))
        if drift is None or referenced:
            row = _flagged(row, threshold, alpha, incomparable)
        else:
            row = _against_drift(row, threshold, drift, alpha, incomparable, BLOCK_WITHIN_DRIFT)
        rows.append(row)
    return rows


def reference_rounds(run: Run, group: str, process: list[int]) -> list[float] | None:
    """The suite's reference workload's rounds in `group`'s block of `run`, as seconds per example, round by round
    beside the block's (same processes, same order); None where the run has none or they do not line up."""
    ref = run.references.get(group)
    if not ref or not ref.get("times") or not ref.get("examples"):
        return None
    if list(ref.get("process") or []) != list(process) or any(t <= 0 for t in ref["times"]):
        return None
    return [float(t) / float(ref["examples"]) for t in ref["times"]]


def reference_change(bases: list[Run], news: list[Run], group: str) -> float:
    """How the reference workload itself moved between the sides in `group`'s block (median per-example time): the
    machine's (or TensorFlow's, or the host's) own move, which the block's row has taken out."""
    def median(runs: list[Run]) -> float:
        times = [float(t) / float(r["examples"]) for run in runs for r in [run.references.get(group) or {}]
                 if r.get("examples") for t in r.get("times") or []]
        return float(np.median(times)) if times else float("nan")

    return median(news) / median(bases) - 1


def _against_drift(row: dict[str, object], threshold: float, drift: float, alpha: float,
                   incomparable: list[str], within: str) -> dict[str, object]:
    """With one run a side: flagged only beyond the run-to-run drift (its threshold then); a move beyond the
    threshold but within the drift is shown as `within`, not judged; no "noise" for a change inside the drift."""
    limit = max(threshold, drift)
    row = _flagged(row, limit, alpha, incomparable)
    row["threshold"] = limit
    change = abs(float(row["change"]))  # type: ignore[arg-type]
    if row["flag"] == "noise" and change <= limit:
        row["flag"] = ""
    if not row["flag"] and change > threshold:
        row["flag"] = within
    return row


def _only_the_blocks_move(rows: list[dict[str, object]], blocks: list[dict[str, object]],
                          block_of: dict[str, str], drift: float) -> None:
    """A member flagged relative to its block only because the block moved the other way (two of three members
    20% slower move the block's level, and the unchanged third then reads 17% faster relative to it) is not a
    change of that member: where its own absolute time stayed within what the machine moves by itself (its
    threshold, and with one run a side the run-to-run ``drift``) while its block moved beyond its threshold the
    other way, the flag is withdrawn and the row says why. The block's own row carries the move."""
    moved = {str(r["benchmark"])[: -len(BLOCK)]: float(r["change"]) for r in blocks  # type: ignore[arg-type]
             if not np.isnan(float(r["change"]))}  # type: ignore[arg-type]
    for row in rows:
        if row.get("flag") not in FLAGS or row.get("basis") != "relative to its block":
            continue
        block_change = moved.get(block_of.get(str(row["benchmark"]), ""))
        absolute, threshold = float(row["absolute_change"]), float(row["threshold"])  # type: ignore[arg-type]
        band = max(threshold, drift)
        if block_change is None or abs(block_change) <= threshold:
            continue
        if abs(absolute) <= band and np.sign(block_change) == -np.sign(float(row["change"])):  # type: ignore[arg-type]
            row["flag"] = MOVED_WITH_BLOCK


def interval_text(lo: float, hi: float) -> str:
    return interval(100 * lo, 100 * hi, "{:+.1f}%")


def summary_lines(c: Comparison) -> list[str]:
    rows = c.rows[c.rows["limit"].notna()]
    lines = []
    blocks, members = c.family
    if blocks + members:
        lines.append(f"flags hold the false discovery rate at {100 * c.rate:g}% over the {blocks + members} judged rows "
                     f"(weighted Benjamini-Hochberg on each row's p of lying beyond its threshold"
                     + (f": whole-block rows ({blocks}) share half of the weight, members ({members}) the other half)"
                        if blocks and members else ")") + "; q is that p adjusted")
    if not rows.empty:
        limits = 100 * rows["limit"].astype(float)
        lines.append(f"detection limit (half-width of each change's 95% interval): median {limits.median():.1f}%, "
                     f"{int((limits <= 10).sum())} of {len(limits)} benchmarks at or below 10%")
        if rows["test"].astype(str).str.contains("rounds").any():
            lines.append("one process on a side: the rounds of one process cannot see the spread between "
                         "processes, so these limits are lower bounds (run with --tfperf-processes 2 or more, "
                         "or give several runs per side: compare BASE... -- NEW...)")
    for p in c.unmatched_patterns:
        lines.append(f"--threshold-for pattern {p!r} matches no benchmark")
    return lines


def _reference_moved(r: object) -> str:
    """For a block judged against the reference workload: how the reference itself moved (the machine's share)."""
    moved = getattr(r, "reference_change", float("nan"))
    if moved is None or np.isnan(float(moved)):
        return ""
    return f", relative to the reference workload timed in its rounds (which itself moved {100 * float(moved):+.1f}%)"


def _members_that_moved(c: Comparison, r: object) -> str:
    """For a flagged whole block: which of its members moved that way in their own (absolute) time."""
    name = str(r.benchmark)  # type: ignore[attr-defined]
    if not name.endswith(BLOCK):
        return ""
    block, change = name[: -len(BLOCK)], float(r.change)  # type: ignore[attr-defined]
    members = c.rows[c.rows["benchmark"].astype(str).str.startswith(block + "/")]
    # at least half the block's move, its way: a member that did not move reads about 0 here
    moved = [m for m in members.itertuples() if np.sign(float(m.absolute_change)) == np.sign(change)
             and abs(float(m.absolute_change)) > abs(change) / 2]
    if not moved:
        return ""
    return "; its members that moved with it, in their own time: " + ", ".join(
        f"{m.benchmark} {100 * float(m.absolute_change):+.1f}%" for m in moved)


def findings(c: Comparison) -> list[str]:
    """What the comparison answers, first: each regression and improvement beyond its threshold and detection
    limit with its interval, what moved but stayed within the noise, and what could not be compared."""
    out = []
    if c.incomparable:
        out.append("these runs are not comparable: " + "; ".join(c.incomparable))
    out += [f"{tables.incomplete(r)}; its missing benchmarks are listed as in one run only"
            for r in [*c.base, *c.new] if tables.incomplete(r)]
    if c.changed:
        out.append("compared across versions (each row's 'changed' says which apply to it): " + "; ".join(c.changed))
    if c.hosts:
        out.append("compared across hosts: every row is cross-host, and a change may be the host's: "
                   + "; ".join(c.hosts))
    for flag, verb in (("regression", "regressed"), ("improvement", "improved")):
        for r in c.rows[c.rows["flag"] == flag].itertuples():
            out.append(f"{r.benchmark} {verb}: {100 * r.change:+.1f}% time per example {interval_text(r.lo, r.hi)} "
                       f"(detection limit {100 * r.limit:.1f}%, threshold {100 * r.threshold:.0f}%)"
                       + _reference_moved(r) + _members_that_moved(c, r))
    if c.rows["flag"].isin(FLAGS).any() and len(c.base) == 1 and len(c.new) == 1:
        out.append(ONE_RUN_CAVEAT)
    moved = c.rows[c.rows["flag"] == BLOCK_WITHIN_DRIFT]
    if len(moved):
        out.append("whole blocks moved, but within what the machine moves by itself between two runs of one code "
                   f"(their threshold, {100 * float(moved['threshold'].max()):.0f}%; give several runs a side to "
                   "judge smaller moves: compare A B -- C D): "
                   + ", ".join(f"{r.benchmark[: -len(BLOCK)]} {100 * r.change:+.1f}%" for r in moved.itertuples()))
    withdrawn = c.rows[c.rows["flag"] == MOVED_WITH_BLOCK]
    if len(withdrawn):
        out.append("moved relative to their block only, because the rest of the block moved the other way (their "
                   "own time did not): " + ", ".join(f"{r.benchmark} {100 * r.change:+.1f}% relative, "
                                                     f"{100 * r.absolute_change:+.1f}% own"
                                                     for r in withdrawn.itertuples()))
    doubted = c.rows[c.rows["flag"] == UNSTABLE]
    if len(doubted):
        out.append("moved, but marked unstable by its own run (the physics check or a busy machine), so not judged: "
                   + ", ".join(f"{r.benchmark} {100 * r.change:+.1f}%" for r in doubted.itertuples()))
    alone = c.rows[c.rows["flag"] == ABSOLUTE_MOVED]
    if len(alone):
        out.append("moved beyond the threshold in absolute time, with no block to take the machine's drift out, which "
                   "one run a side cannot tell from that drift (give several runs a side): "
                   + ", ".join(f"{r.benchmark} {100 * r.change:+.1f}% {interval_text(r.lo, r.hi)}"
                               for r in alone.itertuples()))
    noise = c.rows[c.rows["flag"] == "noise"]
    if len(noise):
        out.append(f"{len(noise)} benchmark(s) moved beyond the threshold but within their own repetition, or not "
                   "beyond it once every row judged is counted (noise): "
                   + ", ".join(f"{r.benchmark} {100 * r.change:+.0f}%" for r in noise.itertuples()))
    only = c.rows[c.rows["flag"].isin(["only in base", "only in new"])]
    if len(only):
        out.append("could not be compared (in one side only): "
                   + ", ".join(f"{r.benchmark} ({r.flag})" for r in only.itertuples()))
    if not out:
        limits = c.rows["limit"].dropna()
        out.append("no benchmark changed beyond its threshold and detection limit"
                   + (f" (median detection limit {100 * limits.median():.1f}%)" if len(limits) else ""))
    return out
