"""gc deletes exactly the blobs nothing reachable names, and never one a concurrent commit needs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, session_namespace
from txgit import Workspace
from txgit.errors import TxgitError


def blobs_of(ws: Workspace, rev: str) -> set[str]:
    state = ws.state(rev)
    return {c for g in state.groups.values() for c in g.chunk_names()}


def age(ws: Workspace, seconds: float = 7200) -> None:
    """Make every stored blob look old, so the grace period does not protect it."""
    old = time.time() - seconds
    for name in ws.store.loose_names():
        os.utime(ws.store.path(name), (old, old))
    packs = Path(ws.store.packs.dir)
    for path in packs.iterdir() if packs.is_dir() else ():  # a commit's large chunks are packed
        os.utime(path, (old, old))


@pytest.fixture
def scratch(ws):
    """main: one commit; a deleted branch 'exp' whose commit alone held a big array."""
    ns = session_namespace("import numpy as np\nkeep = np.arange(300_000)\n")
    ws.commit(ns, "keep")
    ws.checkout("HEAD", ns, new_branch="exp")
    ns["scratch"] = np.arange(500_000) * 3
    exp = ws.commit(ns, "scratch").info.id
    ws.checkout("main", ns, force=True)
    ws.delete_branch("exp")
    return ws, exp


def test_gc_keeps_reflog_entries_until_they_expire(scratch):
    ws, exp = scratch
    garbage = blobs_of(ws, exp) - blobs_of(ws, "main")
    assert garbage
    age(ws)
    report = ws.gc()  # HEAD's reflog still names exp's commit (a way back, as in git)
    assert report.deleted == [] and ws.load("scratch", exp)[1] == 3
    size = sum(ws.store.size(n) for n in garbage)
    assert size > 500_000 * 8  # the array, and the pickle around it
    report = ws.gc(reflog_days=0)
    assert set(report.deleted) == garbage and report.bytes_freed == size
    assert not any(ws.store.has(n) for n in garbage)
    assert blobs_of(ws, "main") <= set(ws.store.names())
    assert ws.fsck().ok and int(ws.load("keep")[-1]) == 299_999


def test_gc_grace_period_and_dry_run(scratch):
    ws, exp = scratch
    garbage = blobs_of(ws, exp) - blobs_of(ws, "main")
    report = ws.gc(reflog_days=0)  # everything is younger than an hour
    assert report.deleted == [] and report.kept_young == len(garbage)
    age(ws)
    dry = ws.gc(reflog_days=0, dry_run=True)
    assert set(dry.deleted) == garbage and all(ws.store.has(n) for n in garbage)
    assert set(ws.gc(reflog_days=0, grace_seconds=0).deleted) == garbage


def test_gc_removes_temp_files_of_killed_writers(ws):
    ws.commit(session_namespace("a = 1\n"), "one")
    fan = Path(ws.store.root) / "ab"
    fan.mkdir(exist_ok=True)
    stale = fan / ".tmp-deadbeef"
    stale.write_bytes(b"half a blob")
    assert ws.fsck().ok  # ignored by readers
    assert ws.gc(grace_seconds=0).temp_files_removed == 1 and not stale.exists()


def test_gc_deletes_nothing_when_a_ref_is_unreadable(scratch):
    ws, exp = scratch
    age(ws)
    bad = Path(ws.history.repo.path) / "refs" / "heads" / "broken"
    bad.write_text("1" * 40 + "\n")  # names a commit that does not exist
    before = set(ws.store.names())
    with pytest.raises(TxgitError, match="gc deleted nothing: refs/heads/broken names 11111111"):
        ws.gc(reflog_days=0, grace_seconds=0)
    assert set(ws.store.names()) == before
    assert any("refs/heads/broken" in p for p in ws.fsck().problems)


def test_gc_and_fsck_on_the_command_line(scratch, run_txgit):
    ws, exp = scratch
    age(ws)
    garbage = len(blobs_of(ws, exp) - blobs_of(ws, "main"))
    out = run_txgit("gc", "--dry-run", "--reflog-days", "0", cwd=ws.root, check=True).stdout
    assert out.startswith(f"would delete {garbage} blobs (4.0 MB), kept ")
    out = run_txgit("gc", "--reflog-days", "0", cwd=ws.root, check=True).stdout
    assert out.startswith(f"deleted {garbage} blobs (4.0 MB), kept ")
    kept = len(blobs_of(ws, "main"))
    assert run_txgit("fsck", cwd=ws.root, check=True).stdout == f"checked 1 commit, {kept} blobs: ok\n"
    proc = run_txgit("gc", "--grace", "-1", cwd=ws.root)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1


COMMITTER = """
import json, sys
import numpy as np
from txgit import Workspace
ws = Workspace.open(sys.argv[1])
ns = {"__name__": "__main__"}
for k in range(int(sys.argv[2])):
    ns["a"] = np.arange(50_000 + k) + k   # new blobs every commit: gc must never take them
    print(json.dumps([ws.commit(ns, f"c{k}").info.id, k]), flush=True)
"""


def test_gc_running_beside_commits_never_takes_their_blobs(ws):
    import json

    ws.commit(session_namespace("x = 1\n"), "start")
    proc = subprocess.Popen([sys.executable, "-c", COMMITTER, str(ws.root), "40"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = 0
    while proc.poll() is None:  # gc with no grace period and no reflog: only the lock protects
        ws.gc(grace_seconds=0, reflog_days=0)
        runs += 1
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert runs >= 2
    done = [json.loads(line) for line in out.splitlines()]
    assert len(done) == 40 and ws.fsck().ok
    for commit, k in done:
        a = ws.load("a", commit)
        assert a.shape == (50_000 + k,) and int(a[-1]) == 50_000 + 2 * k - 1
