"""A side of ``tfperf ab`` at a git revision: the project's files as they were at REV, in a temporary folder
that is removed when the A/B ends, fails or is interrupted.

``git archive REV | tar -x`` rather than ``git worktree add``: it writes nothing into the user's repository (no
entry under ``.git/worktrees`` to prune after a crash), and a side needs the files only. Untracked files and
submodules are not part of a revision, and so not of the side.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class RevisionError(Exception):
    """A side's revision cannot be had (no repository, no such revision, no such file in it): one line."""


def _git(folder: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RevisionError((proc.stderr.strip().splitlines() or [f"git {' '.join(args)} failed"])[-1])
    return proc.stdout.strip()


MARKER = ".tfperf-revision"  # at the top of a side's copy: the commit it holds, then SPEC@REV (it has no .git)


def described(spec: str) -> tuple[str, str | None]:
    """(how the user named a side, its commit) for a SPEC inside a side's copy (SPEC@REV and the commit), else
    (the SPEC, None)."""
    target = spec.partition(":")[0]
    if target.endswith(".py"):
        for up in Path(target).resolve().parents:
            if (up / MARKER).is_file():
                commit, _, named = (up / MARKER).read_text().partition("\n")
                return named.strip() or spec, commit.strip()
    return spec, None


def locate(spec: str) -> tuple[Path, str, str]:
    """(the repository's top folder, the SPEC's .py file relative to it, its ':attribute' part)."""
    target, colon, attr = spec.partition(":")
    if not (target.endswith(".py") and Path(target).is_file()):
        raise RevisionError(f"a side at a revision names a .py file of the repository, got {target!r}")
    try:
        top = Path(_git(Path(target).resolve().parent, "rev-parse", "--show-toplevel"))
    except RevisionError:
        raise RevisionError(f"{target} is not in a git repository") from None
    return top, str(Path(target).resolve().relative_to(top)), colon + attr


@contextmanager
def checked_out(spec: str, rev: str, label: str) -> Iterator[tuple[str, str]]:
    """(the SPEC naming the side's copy of its file at `rev`, the revision's commit id); the copy is removed
    afterwards, whatever happens. The copy's top holds :data:`MARKER`, so the loader finds it as the side's import
    root (see :func:`tfperf.api.registry.roots`)."""
    top, inside, attr = locate(spec)
    try:
        commit = _git(top, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except RevisionError:
        raise RevisionError(f"{label}: no revision {rev!r} in {top}") from None
    folder = Path(tempfile.mkdtemp(prefix=f"tfperf-ab-{label.lower()}-"))
    try:
        archive = subprocess.run(["git", "-C", str(top), "archive", "--format=tar", commit], capture_output=True)
        if archive.returncode != 0:
            raise RevisionError(f"{label}: git archive {rev} failed: "
                                f"{archive.stderr.decode(errors='replace').strip()[-200:]}")
        with tempfile.TemporaryFile() as tar:
            tar.write(archive.stdout)
            tar.seek(0)
            with tarfile.open(fileobj=tar) as files:
                files.extractall(folder, filter="data")
        # the commit, then how the user named the side: what ab.json and the table show instead of this folder
        (folder / MARKER).write_text(f"{commit}\n{spec}@{rev}\n")
        copy = folder / inside
        if not copy.is_file():
            raise RevisionError(f"{label}: {inside} is not in revision {rev} of {top}")
        yield str(copy) + attr, commit
    finally:
        shutil.rmtree(folder, ignore_errors=True)
