"""The `tfperf` console script: `tfperf report build|table|compare ...` (the same as `python -m reports ...`),
and `tfperf list [SPEC...]` (the scenarios and variants a run would hold)."""

from __future__ import annotations

import sys

USAGE = ("usage: tfperf report build|table|compare ...   (see: tfperf report --help)\n"
         "       tfperf list [SPEC ...]                  (the scenarios and variants a run would hold)")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["report"]:
        from .reports.__main__ import main as report

        return report(args[1:], prog="tfperf report")
    if args[:1] == ["list"]:
        return _list(args[1:])
    print(USAGE, file=sys.stderr)
    return 0 if args[:1] in (["-h"], ["--help"]) else 2


def _list(specs: list[str]) -> int:
    from .quiet import tensorflow_started

    with tensorflow_started():
        from . import registry

        reg = registry.load(specs)
    for name, sc in reg.items():
        print(f"{name} ({sc.kind}, version {sc.version}, from {reg.origin[name]}): {len(sc.variants)} variants")
        for v in sc.variants:
            extra = f"  vs {v.baseline}" if v.baseline else ""
            needs = f"  requires {', '.join(v.requires)}" if v.requires else ""
            print(f"  {v.name}{extra}{needs}")
    for spec, cause in reg.errors:
        print(f"tfperf: {spec}: {cause}", file=sys.stderr)
    return 1 if reg.errors else 0


if __name__ == "__main__":
    sys.exit(main())
