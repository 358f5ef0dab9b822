"""The main job through pytest, in this process: ``tfperf run`` and every command that runs the suite (``tfperf ab``,
``tfperf tune``'s confirmations) go through :func:`run_suite`. No TensorFlow is imported here."""

from __future__ import annotations

from pathlib import Path

# pytest options that take a value (the value is not a SPEC): pytest's own that a run uses, and every --tfperf-*
# option but the flags
_VALUED = {"-k", "-m", "-p", "-o", "-c", "--rootdir", "--maxfail", "--deselect", "--ignore", "--basetemp",
           "--benchmark-columns", "--benchmark-sort", "--benchmark-group-by", "--benchmark-json"}
_FLAGS = {"--tfperf-no-profile", "--tfperf-no-report"}
_SHORT = {"--size": "--tfperf-size", "--results": "--tfperf-results", "--run-id": "--tfperf-run-id",
          "--processes": "--tfperf-processes", "--rounds": "--tfperf-rounds", "--no-profile": "--tfperf-no-profile",
          "--no-report": "--tfperf-no-report", "--budget": "--tfperf-budget"}


def run_arguments(args: list[str]) -> list[str]:
    """`tfperf run [SPEC ...] [OPTIONS]` as pytest arguments: a bare word is a SPEC (--tfperf-scenarios SPEC),
    --size/--results/--run-id/--processes/--rounds/--budget/--no-profile/--no-report are short for their --tfperf-* names,
    everything else passes through to pytest."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        flag, eq, value = arg.partition("=")
        flag = _SHORT.get(flag, flag)
        arg = flag + eq + value
        if not arg.startswith("-") and arg:
            out += ["--tfperf-scenarios", arg]
        elif not eq and (flag in _VALUED or (flag.startswith("--tfperf-") and flag not in _FLAGS)) \
                and i + 1 < len(args):
            n = 2 if flag == "--tfperf-ab" else 1
            out += [flag, *args[i + 1:i + 1 + n]]
            i += n
        else:
            out.append(arg)
        i += 1
    return out


def run_suite(args: list[str]) -> int:
    """The main job through pytest, on the suite inside the installed package: every option passes through
    (``tfperf run --help`` lists the ``tfperf`` group among pytest's)."""
    import pytest

    from tfperf.measure import suite

    return int(pytest.main([suite.__file__, "--benchmark-only", "-p", "tfperf.measure.entry", "-p",
                            "tfperf.measure.plugin", "-p",
                            "no:cacheprovider", "--rootdir", str(Path.cwd()),
                            # the entry point's distribution is imported already (this command is in it)
                            "-W", "ignore::pytest.PytestAssertRewriteWarning", *run_arguments(args)]))
