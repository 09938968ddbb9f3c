"""kill -9 at a named point of a real txgit process (the CLI, or a kernel), for the crash tests.

tests/stress/crash_stress.py kills at random instants and tests/test_big_packs.py watches for a
temporary file; a point that leaves no trace on disk (after a merge commit, before its record is
forgotten) needs a name instead: ``arm("txgit.merging:_clear_merge")`` makes that function SIGKILL
its own process when it is called, so everything before it is done and nothing of it or after."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
from pathlib import Path

TESTS = str(Path(__file__).resolve().parent)


def arm(point: str, first: str | None = None) -> None:
    """``point``: ``module:attribute`` (``txgit.merging:MergeInProgress.to_json``): calling it kills the process.
    ``first``: the name of a function of this module that is called with the same arguments before the kill,
    to leave what the point would have half done (:func:`half_made_repository`)."""
    module, _, path = point.partition(":")
    owner = importlib.import_module(module)
    *parents, name = path.split(".")
    for p in parents:
        owner = getattr(owner, p)
    getattr(owner, name)  # the point must exist: a renamed function fails the test, not silently passes it

    def killed(*args, **kwargs):
        if first is not None:
            globals()[first](*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    setattr(owner, name, killed)


def half_made_repository(path: str, *args, **kwargs) -> None:
    """What ``git init --bare PATH`` (``pygit2.init_repository``) has made when it is killed before its
    HEAD: the folder and its skeleton (libgit2 writes HEAD after the folders and the config)."""
    for folder in ("objects/info", "objects/pack", "refs/heads", "refs/tags", "hooks", "info"):
        os.makedirs(os.path.join(path, folder), exist_ok=True)
    with open(os.path.join(path, "config"), "w") as f:
        f.write("[core]\n\tbare = true\n")


def index_without_pack(packs, blobs, loose=None) -> None:
    """What a remote ``PackSet.write`` (its pack and index PUT at once) has stored when it is killed
    with the index landed and the pack not."""
    from txgit.packs import build

    pack, _, index = build(blobs, loose)
    packs.fs.pipe_file(packs.index_path(pack), index)


def arm_cell(point: str) -> str:
    """The code of a kernel cell that arms ``point`` in that kernel."""
    return f"import sys\nsys.path.insert(0, {TESTS!r})\nimport killpoint\nkillpoint.arm({point!r})"


def txgit_killed_at(point: str, *args: str, cwd: Path, env: dict | None = None,
                    first: str | None = None) -> subprocess.CompletedProcess:
    """The real `txgit ARGS` in ``cwd``, killed at ``point`` (its exit status is -9 if it got there);
    ``first``: as for :func:`arm`."""
    code = (f"import sys\nsys.path.insert(0, {TESTS!r})\nimport killpoint\nkillpoint.arm({point!r}, {first!r})\n"
            "from txgit.cli import main\nmain(sys.argv[1:])")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200", **(env or {})}, timeout=300)
