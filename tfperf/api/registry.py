"""Which scenarios a run holds: the built-ins, or the ones named with ``--tfperf-scenarios SPEC``.

A SPEC is a module name (``my_pkg.bench``) or a path to a ``.py`` file (``bench_mine.py``), optionally followed
by ``:attribute``. What it names (the attribute, else the module's ``SCENARIOS``, else every scenario at the
module's top level) may be a scenario, a list or tuple of them, or a function returning either. Installed
packages register more through the entry-point group ``tfperf.scenarios`` (each entry point names the same
kinds of objects); they run beside the built-ins when no SPEC is given.

Loading never stops at a bad SPEC: its one-line error is kept in :attr:`Registry.errors` (the bench turns it into
one failed test) and the other scenarios still load.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import ab, tune
from .base import Scenario, ScenarioError, first_line

BUILTIN = "tfperf.builtins"  # the built-in scenarios: a module like any user's (SPEC `builtins` names it too)
ENTRY_POINTS = "tfperf.scenarios"


@dataclass
class Registry:
    specs: tuple[str, ...]  # what was asked for ((): the built-ins and the entry points)
    scenarios: dict[str, Scenario] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (spec, one-line cause)
    origin: dict[str, str] = field(default_factory=dict)  # scenario name -> the spec it came from
    notes: list[str] = field(default_factory=list)  # what an A/B SPEC left unpaired, one line each

    def __getitem__(self, name: str) -> Scenario:
        try:
            return self.scenarios[name]
        except KeyError:
            raise KeyError(f"unknown scenario {name!r}; known: {', '.join(self.scenarios)}") from None

    def values(self):
        return self.scenarios.values()

    def items(self):
        return self.scenarios.items()

    def add(self, spec: str, found: list[Scenario]) -> None:
        for sc in found:
            if sc.name in self.scenarios and self.scenarios[sc.name] is not sc:
                self.errors.append((spec, f"scenario name {sc.name!r} is already taken (by "
                                          f"{self.origin[sc.name]}); rename one of them"))
                continue
            self.scenarios[sc.name] = sc
            self.origin[sc.name] = spec


def shadowed() -> str:
    """'' when ``import tfperf`` is this package; else one line naming what shadows it: a folder called tfperf (a
    clone of the repository, say) on the path ahead of the installed package, which Python then imports as a
    namespace package with none of tfperf's names (an editable install's package loses to it; a wheel's wins)."""
    import tfperf

    if getattr(tfperf, "__file__", None):
        return ""
    where = next(iter(getattr(tfperf, "__path__", [])), "a folder named tfperf")
    return (f"the folder {where} shadows the installed tfperf package (Python imports it from the working folder): "
            "run from another folder, or rename that one")


def _module_from_path(path: Path) -> Any:
    resolved = str(path.resolve())
    for module in list(sys.modules.values()):  # loaded already (by this name or another)
        if getattr(module, "__file__", None) == resolved:  # a module object may lack __file__
            return module
    name = path.stem if path.stem.isidentifier() and path.stem not in sys.modules else \
        "tfperf_user_" + "".join(c if c.isalnum() else "_" for c in resolved[:-3])
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ScenarioError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    folder = str(path.resolve().parent)
    if folder not in sys.path:  # the file may import its neighbours
        sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _scenarios_in(obj: Any, where: str) -> list[Scenario]:
    if callable(obj) and not isinstance(obj, Scenario):
        obj = obj()
    if isinstance(obj, Scenario):
        return [obj]
    if isinstance(obj, list | tuple) and obj and all(isinstance(o, Scenario) for o in obj):
        return list(obj)
    raise ScenarioError(f"{where} is {type(obj).__name__}, not a scenario or a list of scenarios")


def roots(spec: str) -> list[str]:
    """Where a side's own imports come from: its file's folder and the top of its project (the nearest folder up
    holding .git, or the marker of a side checked out at a revision); for a module, nothing of its own."""
    target = spec.partition(":")[0]
    if not (target.endswith(".py") or "/" in target):
        return []
    folder = Path(target).resolve().parent
    found = [str(folder)]
    for up in (folder, *folder.parents):
        if (up / ".git").exists() or (up / ".tfperf-revision").exists():
            found.append(str(up))
            break
    return list(dict.fromkeys(found))


@contextlib.contextmanager
def isolated(spec: str) -> Iterator[None]:
    """Load one side of an A/B with its own import roots first on the path, and afterwards drop from
    ``sys.modules`` every module it imported from them: the other side then imports its own copy of a helper
    module of the same name (two revisions of ``mypkg``) instead of finding this side's. What a side imported
    keeps working through the references its modules hold; an import made later, inside a function while it
    runs, finds whichever copy is on the path then (the run's folder), not necessarily its side's."""
    mine = roots(spec)
    before, path = set(sys.modules), list(sys.path)
    sys.path[:0] = [r for r in mine if r not in sys.path[:len(mine)]]
    try:
        yield
    finally:
        sys.path[:] = path
        for name in set(sys.modules) - before:
            where = getattr(sys.modules[name], "__file__", None) or ""
            if any(where.startswith(r + os.sep) for r in mine):
                del sys.modules[name]


def resolve_ab(spec: str) -> ab.Pairing:
    """The paired scenarios of an A/B SPEC (see :mod:`tfperf.api.ab`), or a ScenarioError naming the side. Each
    side is loaded :func:`isolated`, so two revisions of a helper module are two modules."""
    sides = ab.parse(spec)
    assert sides is not None
    found = []
    for label, side in zip(("BASE", "NEW"), sides, strict=True):
        try:
            with isolated(side):
                found.append(resolve(side))
        except ScenarioError as exc:
            raise ScenarioError(f"{label} {side}: {exc}") from None
        except SystemExit as exc:
            raise ScenarioError(f"{label} {side}: importing it called sys.exit({exc.code!r})") from None
        except Exception as exc:
            raise ScenarioError(f"{label} {side}: {first_line(exc)}") from None
    pairing = ab.pair(found[0], found[1], sides[0], sides[1])
    if not pairing.scenarios:
        raise ScenarioError(f"no benchmark in common between {sides[0]} and {sides[1]}"
                            + (f" ({'; '.join(pairing.notes[:3])})" if pairing.notes else ""))
    return pairing


def resolve(spec: str) -> list[Scenario]:
    """The scenarios a SPEC names, or a ScenarioError with the one-line cause."""
    if ab.parse(spec) is not None:
        return list(resolve_ab(spec).scenarios)
    tuned = tune.parse(spec)
    if tuned is not None:  # a tuner's confirmation block: the user's scenario with the candidates as its variants
        return [tune.resolve(resolve(tuned["spec"]), tuned)]
    target, _, attr = spec.partition(":")
    if target == "builtins":
        target = BUILTIN
    if target.endswith(".py") or "/" in target or target.startswith("."):
        path = Path(target)
        if path.is_dir():
            raise ScenarioError(f"{target} is a folder: name a .py file in it, or a module")
        if not path.is_file():
            raise ScenarioError(f"no such file: {target}")
        loader = lambda: _module_from_path(path)  # noqa: E731
    else:
        if not target.replace(".", "").replace("_", "").isalnum():
            raise ScenarioError(f"{target!r} is neither a module name nor a path to a .py file")

        def loader() -> Any:
            if os.getcwd() not in sys.path and "" not in sys.path:  # as `python -m` does: modules of the working dir
                sys.path.insert(0, os.getcwd())
            try:
                return importlib.import_module(target)
            except ModuleNotFoundError as exc:
                if exc.name and target.startswith(exc.name):
                    raise ScenarioError(f"no module named {target!r} (not importable from {Path.cwd()})") from None
                raise
    try:
        module = loader()
    except ScenarioError:
        raise
    except Exception as exc:
        raise ScenarioError(f"importing {target} raised {first_line(exc)}") from exc
    if attr:
        if not hasattr(module, attr):
            raise ScenarioError(f"{target} has no attribute {attr!r}")
        return _scenarios_in(getattr(module, attr), f"{target}:{attr}")
    if hasattr(module, "SCENARIOS"):
        return _scenarios_in(module.SCENARIOS, f"{target}:SCENARIOS")
    found = [v for v in vars(module).values() if isinstance(v, Scenario)]
    if not found:
        raise ScenarioError(f"{target} defines no scenario (no SCENARIOS list and no tfperf scenario at its top level)")
    return found


def load(specs: tuple[str, ...] | list[str] = ()) -> Registry:
    """The registry for these SPECs (none: the built-ins, then every entry point of the group)."""
    reg = Registry(tuple(specs))
    if specs:
        named = list(specs)
    else:
        named = [BUILTIN]
    for spec in named:
        try:
            if ab.parse(spec) is not None:
                pairing = resolve_ab(spec)
                reg.add(spec, list(pairing.scenarios))
                reg.notes += pairing.notes
                continue
            reg.add(spec, resolve(spec))
        except ScenarioError as exc:
            reg.errors.append((spec, str(exc)))
        except SystemExit as exc:  # sys.exit() in a scenario file: one line, not the end of the run
            reg.errors.append((spec, f"importing it called sys.exit({exc.code!r})"))
        except Exception as exc:  # a scenario file that fails in its own code: one line, the rest load
            reg.errors.append((spec, first_line(exc)))
    if not specs:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINTS):
            where = f"entry point {ep.name} ({ep.value})"
            try:
                reg.add(where, _scenarios_in(ep.load(), where))
            except Exception as exc:
                reg.errors.append((where, str(exc) if isinstance(exc, ScenarioError) else first_line(exc)))
    return reg

