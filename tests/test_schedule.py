"""The order of a block's round (tfperf.measure.block: schedule): every pass once, each member's passes spread
over the round, members that run as one call placed next to a partner where the comparisons allow it."""

import random
import time
from types import SimpleNamespace

from tfperf.measure.block import TWIN, Member, links_of, run_block, schedule
from tfperf.runtime.base import Runnable


class _Split(Runnable):
    by_pass = True

    def run_pass(self) -> int:
        return 1


def _member(name: str, passes: int, split: bool, partners=()) -> Member:
    scenario = SimpleNamespace(partners=lambda v, p=list(partners): p)
    m = Member(scenario, SimpleNamespace(name=name.removesuffix(TWIN)), name, selected=True)
    m.runnable = _Split() if split else Runnable()
    m.passes = passes
    return m


def test_every_pass_runs_once_and_a_split_member_is_spread_over_the_round():
    members = [_member("a", 8, True), _member("b", 4, True), _member("c", 3, False), _member("d", 1, True)]
    for seed in range(20):
        order = schedule(members, random.Random(seed), links_of(members))
        counts = {m.name: sum(1 for o in order if o is m) for m in members}
        assert counts == {"a": 8, "b": 4, "c": 1, "d": 1}  # c is not split: its round is one entry
        # a's passes are stratified: one in each eighth of the round, never all at one end
        positions = [i for i, o in enumerate(order) if o is members[0]]
        assert positions[0] < len(order) / 4 and positions[-1] > len(order) * 3 / 4


def test_members_run_as_one_call_sit_next_to_a_partner():
    # a chain of comparisons among members that are not split: base <- v1 <- v2, and the twin of base
    members = [_member("base", 3, False), _member("v1", 3, False, ["base"]), _member("v2", 3, False, ["v1"]),
               _member("base" + TWIN, 3, False)]
    links = links_of(members)
    assert links["base"] == {"v1", "base" + TWIN} and links["v2"] == {"v1"}
    for seed in range(20):
        order = [m.name for m in schedule(members, random.Random(seed), links)]
        adjacent = {frozenset(p) for p in zip(order, order[1:], strict=False)}
        # a walk over a path-shaped graph from any start leaves at most one jump
        assert sum(1 for p in adjacent if not (set(p) <= {"base", "v1"} or set(p) <= {"v1", "v2"}
                                                or set(p) <= {"base", "base" + TWIN})) <= 1


class _Fake(Runnable):
    """A runnable that does no work: it records what ran."""

    def __init__(self, split: bool, pass_s: float = 0.0):
        self.examples_per_round, self.info, self.passes, self.log, self.closed = 10, {}, 1, [], False
        self.pass_s = pass_s
        self.by_pass = split

    def run_pass(self) -> int:
        return self._pass()

    def scale(self, passes: int, repeat: int = 1) -> None:
        self.passes, self.examples_per_round = passes, 10 * passes * repeat

    def run_round(self) -> int:
        self.log.append("round")
        time.sleep(self.pass_s * self.passes)
        return self.examples_per_round

    def _pass(self) -> int:
        self.log.append("pass")
        time.sleep(self.pass_s)
        return self.examples_per_round // self.passes

    def close(self) -> None:
        self.closed = True


def _run(split: bool) -> tuple[_Fake, dict]:
    from tfperf.api.base import Size

    made: list[_Fake] = []
    variant = SimpleNamespace(name="v", requires=())
    scenario = SimpleNamespace(name="s", kind="pipeline", partners=lambda v: [])
    size = Size("t", rounds=4, min_round_s=0.0, profile_steps=1)
    out = run_block([Member(scenario, variant, "v", selected=True)], {}, size, random.Random(0), {"v": [3, 1]},
                    build=lambda sc, v, size, block: made.append(_Fake(split)) or made[-1])
    assert len(made) == 1
    return made[0], out["members"][0]


def test_a_split_round_is_timed_as_its_passes():
    fake, rec = _run(split=True)  # 3 passes a round, as the first process chose
    assert rec["status"] == "ok" and len(rec["times"]) == 4 and rec["examples"] == 30
    # warm-up, calibration and one round at the chosen scale, untimed; then 4 rounds of 3 passes each
    assert fake.log == ["round"] * 3 + ["pass"] * 12 and fake.closed


def test_a_round_that_cannot_be_split_is_one_call():
    fake, rec = _run(split=False)
    assert rec["status"] == "ok" and len(rec["times"]) == 4
    assert fake.log == ["round"] * 3 + ["round"] * 4


def test_calibration_adds_passes_never_records_per_pass():
    """A fast member and a slow one of the same block both read one pass per iterator (`repeat` 1): their rounds
    reach the minimum length by more passes, so a variant and its baseline do the same work per iterator."""
    from tfperf.api.base import Size

    made: dict[str, _Fake] = {}
    scenario = SimpleNamespace(name="s", kind="pipeline", partners=lambda v: [])
    fast = SimpleNamespace(name="fast", requires=(), pass_s=0.002)
    slow = SimpleNamespace(name="slow", requires=(), pass_s=0.02)
    size = Size("t", rounds=2, min_round_s=0.04, profile_steps=1)
    out = run_block([Member(scenario, fast, "fast", selected=True), Member(scenario, slow, "slow", selected=True)],
                    {}, size, random.Random(0), {},
                    build=lambda sc, v, size, block: made.setdefault(v.name, _Fake(True, v.pass_s)))
    recs = {r["name"]: r for r in out["members"]}
    assert all(r["status"] == "ok" and r["repeat"] == 1 for r in recs.values())
    assert recs["fast"]["passes"] > recs["slow"]["passes"] >= 1
    assert all(r["examples"] == 10 * r["passes"] for r in recs.values())


class _Spin(_Fake):
    """Works the CPU for its pass instead of waiting."""

    def _pass(self) -> int:
        self.log.append("pass")
        end = time.perf_counter() + self.pass_s
        while time.perf_counter() < end:
            pass
        return self.examples_per_round // self.passes


def test_each_member_records_the_cpu_its_rounds_used():
    """A member that waits keeps the CPU idle, one that computes keeps a core busy: `process_cpu_per_s` says which
    members' times follow the CPU's speed."""
    from tfperf.api.base import Size

    kinds = {"waits": _Fake, "computes": _Spin}
    scenario = SimpleNamespace(name="s", kind="pipeline", partners=lambda v: [])
    members = [Member(scenario, SimpleNamespace(name=n, requires=()), n, selected=True) for n in kinds]
    size = Size("t", rounds=3, min_round_s=0.03, profile_steps=1)
    out = run_block(members, {}, size, random.Random(0), {}, build=lambda sc, v, size, block: kinds[v.name](True, 0.01))
    cpu = {r["name"]: r["info"]["process_cpu_per_s"] for r in out["members"]}
    # (loose bounds: other tests' TensorFlow threads may still run in this process)
    assert cpu["waits"] < 0.5 and cpu["computes"] > 0.8, cpu
