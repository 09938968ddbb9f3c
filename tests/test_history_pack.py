"""Packed git history: many cell commits do not leave tens of thousands of loose git objects, and a
packer killed at any instant leaves a whole repository (issue 7's guarantee)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from conftest import session_namespace

from txgit import Workspace, gitpack


# What a packer may leave loose: it packs when its estimate (1/16 of the fan-out folders, times 16) reaches
# LOOSE_LIMIT, and at ~500 objects that estimate's spread is ~90, so 532 left loose read as under the limit
# (a fresh-clone CI run failed so). Unpacked, the loops below leave over 1,100, so the bound still fails.
_LOOSE_LEFT_AT_MOST = 2 * gitpack.LOOSE_LIMIT


def _commits(ws: Workspace, ns: dict, n: int, start: int = 0) -> dict[str, int]:
    """``n`` small cell-like commits (one variable changes each time); commit id -> the value of ``x``."""
    out = {}
    for i in range(start, start + n):
        ns["x"] = i
        ns["note"] = f"step {i}"
        out[ws.commit(ns, f"step {i}", names={"x", "note"}).info.id] = i
    return out


def _wait_for_packer(ws: Workspace) -> None:
    pid = ws.history._packer
    if pid is not None:
        os.waitpid(pid, 0)


def test_commits_past_the_limit_are_packed_in_the_background(ws):
    ns = session_namespace("import math\n")
    made = _commits(ws, ns, 2 * gitpack.LOOSE_LIMIT // 9 + gitpack.CHECK_EVERY)  # ~9 git objects a commit
    _wait_for_packer(ws)  # (if one still runs: a commit starts it and does not wait for it)
    counts = ws.history.count_objects()
    assert counts.packs >= 1 and counts.packed >= gitpack.LOOSE_LIMIT
    assert counts.loose < _LOOSE_LEFT_AT_MOST
    assert not (ws.dir / "repo.git" / gitpack.STAGING).exists()
    fresh = Workspace.open(ws.root)
    assert fresh.fsck().ok
    for commit, value in list(made.items())[::25]:
        assert fresh.load("x", commit) == value


def test_one_packer_serves_a_fast_loop_of_commits(ws):
    """A packer lingers while commits keep coming, so a loop of cells does not start a process (Python and
    pygit2's import, ~0.14 s of CPU) for every batch of LOOSE_LIMIT objects (issue 19)."""
    ns = session_namespace()
    started = set()
    for i in range(6 * gitpack.LOOSE_LIMIT // 6):  # 6-9 git objects a commit: past the limit 4-6 times
        _commits(ws, ns, 1, start=i)
        if ws.history._packer is not None:
            started.add(ws.history._packer)
    _wait_for_packer(ws)
    assert len(started) == 1
    counts = ws.history.count_objects()
    # it packed more than one batch (whether into several packs depends on the roll-ups, and on how
    # fast this machine ran the loop)
    assert counts.packed >= 2 * gitpack.LOOSE_LIMIT and counts.loose < gitpack.LOOSE_LIMIT


def test_auto_pack_off_leaves_objects_loose(ws):
    ws.history.auto_pack = False
    _commits(ws, session_namespace(), 2 * gitpack.LOOSE_LIMIT // 9 + gitpack.CHECK_EVERY)
    assert ws.history._packer is None
    assert ws.history.count_objects().loose >= gitpack.LOOSE_LIMIT


def test_gc_packs_the_whole_history_into_one_pack(ws, run_txgit):
    ws.history.auto_pack = False
    ns = session_namespace()
    made = _commits(ws, ns, 30)
    ws.history.pack(gather=False)  # an earlier pack, gathered by gc with what is loose now
    made.update(_commits(ws, ns, 30, start=30))
    before = ws.history.count_objects()
    assert before.loose > 0 and before.packs == 1
    out = run_txgit("gc", cwd=ws.root, check=True).stdout
    assert f"packed {before.loose + before.packed} git objects of the history into one pack" in out
    after = ws.history.count_objects()
    assert (after.loose, after.packs, after.packed) == (0, 1, before.loose + before.packed)
    assert run_txgit("fsck", cwd=ws.root, check=True).stdout.endswith(": ok\n")
    fresh = Workspace.open(ws.root)
    for commit, value in made.items():
        assert fresh.load("x", commit) == value
    assert "packed" not in run_txgit("gc", cwd=ws.root, check=True).stdout  # one pack, nothing loose: no work


def test_gc_removes_the_folders_packing_emptied_and_a_killed_packers_orphan_pack(ws):
    ws.history.auto_pack = False
    made = _commits(ws, session_namespace(), 20)
    objects = ws.dir / "repo.git" / "objects"
    fanout = {p.name for p in objects.iterdir() if len(p.name) == 2}
    assert len(fanout) > 20
    orphan = objects / "pack" / ("pack-" + "0" * 40 + ".pack")  # a packer killed between its two moves
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"PACK")
    young = orphan.with_name("pack-" + "1" * 40 + ".pack")  # maybe a fetch about to move its index
    young.write_bytes(b"PACK")
    old = time.time() - gitpack.ORPHAN_AGE - 60
    os.utime(orphan, (old, old))
    report = ws.gc(grace_seconds=0)
    assert report.history.orphans_removed == 1 and not orphan.exists() and young.exists()
    assert report.history_folders_removed == len(fanout)
    assert not [p for p in objects.iterdir() if len(p.name) == 2]
    ns = session_namespace()
    _commits(ws, ns, 3, start=100)  # a commit after gc makes the folders it needs again
    assert Workspace.open(ws.root).fsck().ok
    for commit, value in made.items():
        assert Workspace.open(ws.root).load("x", commit) == value


_PACKER = """
import sys
from txgit import gitpack
print("go", flush=True)
gitpack.pack(sys.argv[1], gather=True)
print("done", flush=True)
"""


def _run_packer(repo: str, kill_after: float | None) -> bool:
    """Run a packer in a process of its own; SIGKILL it ``kill_after`` seconds after it starts packing.
    True if it finished first."""
    proc = subprocess.Popen([sys.executable, "-c", _PACKER, repo], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "go\n"
    if kill_after is not None:
        time.sleep(kill_after)
        proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate()
    return "done" in out


def test_a_packer_killed_at_any_instant_leaves_a_whole_repository(ws):
    ws.history.auto_pack = False
    ns = session_namespace()
    made = _commits(ws, ns, 120)
    repo = str(ws.dir / "repo.git")
    started = time.perf_counter()
    assert _run_packer(repo, None)  # how long one takes here, to aim the kills inside it
    took = time.perf_counter() - started
    rng = random.Random(19)
    finished = 0
    for trial in range(8):
        made.update(_commits(ws, ns, 40, start=1000 * (trial + 1)))  # loose objects, and a pack, to gather
        finished += _run_packer(repo, rng.uniform(0, took))
        fresh = Workspace.open(ws.root)
        report = fresh.fsck()
        assert report.ok, (trial, report.problems)
        for commit, value in list(made.items())[trial::7]:
            assert fresh.load("x", commit) == value, trial
    assert finished < 8  # some kills did land inside a packing
    assert _run_packer(repo, None)  # and the next packer tidies up what the killed ones left
    counts = ws.history.count_objects()
    assert (counts.loose, counts.packs) == (0, 1)
    assert not os.path.exists(os.path.join(repo, gitpack.STAGING))
