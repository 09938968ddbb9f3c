"""Several processes committing into one workspace at once lose no commit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pygit2

from conftest import ROOT, session_namespace
from txgit import Workspace
from txgit.errors import TxgitError

WORKER = """
import json, sys
import numpy as np
from txgit import Workspace
ws = Workspace.open(sys.argv[1])
p = int(sys.argv[2])
ns = {"__name__": "__main__"}
for k in range(int(sys.argv[3])):
    ns["who"] = p
    ns["k"] = k
    ns["arr"] = np.arange(1000 + 100 * k) * (p + 1)
    r = ws.commit(ns, f"process {p} commit {k}")
    print(json.dumps([r.info.id, p, k]), flush=True)
"""


def test_four_processes_fifty_commits_each_lose_nothing(ws: Workspace, tmp_path: Path) -> None:
    ws.commit(session_namespace("start = 0\n"), "start")
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(ws.root), str(p), "50"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for p in range(4)]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        done += [json.loads(line) for line in out.splitlines()]
    assert len(done) == 200 and len({c for c, _, _ in done}) == 200

    history = ws.log("main")
    assert len(history) == 201  # one linear chain: no commit overwrote another
    on_main = {c.id for c in history}
    assert all(c in on_main for c, _, _ in done)
    assert ws.fsck().ok
    for commit, p, k in done:  # each commit holds exactly what its process committed
        state = ws.state(commit)
        assert ws.load("who", commit) == p and ws.load("k", commit) == k
        arr = ws.load("arr", commit)
        assert arr.shape == (1000 + 100 * k,) and int(arr[-1]) == (999 + 100 * k) * (p + 1)
        assert set(state.variables) == {"who", "k", "arr"}
        assert ws.resolve(commit).summary == f"process {p} commit {k}"


def _push_at_the_barrier(root: str, barrier, answers) -> None:
    ws = Workspace.open(root)
    barrier.wait()  # both pushes start at the same instant
    try:
        ws.push()
        answers.put((root, "pushed", ws.head().id))
    except TxgitError as e:
        answers.put((root, type(e).__name__, ws.head().id))


def test_two_pushes_to_a_folder_remote_at_the_same_instant_never_both_land(tmp_path: Path) -> None:
    """Alice and Bob pushed to one folder remote at the same instant: both were told their push
    landed (17 rounds of 40), but the remote's main held only one of the two commits: the other was
    silently dropped. (libgit2's local transport moves the ref without checking where it was; git
    daemon's receive-pack checks, and refuses one.) One push now waits for the other: the second is
    told to pull."""
    import multiprocessing as mp

    remote = tmp_path / "r.git"
    alice = Workspace.init(tmp_path / "alice")
    alice.commit({"x": 0}, "first")
    alice.remotes.add("origin", str(remote))
    alice.push()
    bob = Workspace.clone(str(remote), tmp_path / "bob")
    spawn = mp.get_context("spawn")  # a fresh interpreter each: as two users' processes
    for r in range(12):
        for ws in (alice, bob):
            ws.pull()
            ns: dict = {}
            ws.checkout("main", ns, trust=True)
            ns[ws.root.name] = r
            ws.commit(ns, f"{ws.root.name} {r}")
        barrier, answers = spawn.Barrier(2), spawn.Queue()
        procs = [spawn.Process(target=_push_at_the_barrier, args=(str(ws.root), barrier, answers)) for ws in (alice, bob)]
        for p in procs:
            p.start()
        got = [answers.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(60)
        repo = pygit2.Repository(str(remote))
        tip = repo.references["refs/heads/main"].target
        for _, how, commit in got:
            if how == "pushed":  # said it landed: its commit is on the remote's main
                assert str(tip) == commit or repo.descendant_of(tip, pygit2.Oid(hex=commit)), (r, got, str(tip))
        assert sorted(how for _, how, _ in got) == ["PushRejected", "pushed"], (r, got)
        for ws in (alice, bob):  # the one told to pull merges, and pushes
            ws.pull()
            ws.push()


def _first_push_at_the_barrier(root: str, barrier, answers, delay: float, transfer_delay: float) -> None:
    import os
    import time

    os.environ["TXGIT_DEBUG_TRANSFER_DELAY"] = str(transfer_delay)  # a slow upload: the first push lasts
    ws = Workspace.open(root)
    barrier.wait()
    time.sleep(delay)
    try:
        ws.push()
        answers.put((root, "pushed", ws.head().id))
    except TxgitError as e:
        answers.put((root, f"{type(e).__name__}: {e}", ws.head().id))


def test_two_first_pushes_that_create_a_folder_remote_at_once_never_both_land(tmp_path: Path) -> None:
    """The push that creates a folder remote locked its parent folder, and a push that found the remote
    made already locked the remote's own folder: Bob's push, started while Alice's first push uploaded,
    went beside hers and landed; hers was then refused, and removed the folder it had made, with Bob's
    commit in it: Bob was told it landed, and the remote was gone. At the same instant, one was told
    "exists but is not a git repository" (the other's folder, half made). Now exactly one lands and the
    other is told to pull."""
    import multiprocessing as mp

    spawn = mp.get_context("spawn")
    # (Bob starts this much later, Alice's upload lasts this much): at once, and inside her upload
    for r, (later, upload) in enumerate([(0.0, 0.0), (0.0, 0.0), (0.3, 1.0), (0.6, 1.0)]):
        remote = tmp_path / f"r{r}.git"
        pushers = []
        for who in ("alice", "bob"):
            ws = Workspace.init(tmp_path / f"{who}{r}")
            ws.commit({who: r}, f"{who} {r}")  # two unrelated histories: one of them cannot land
            ws.remotes.add("origin", str(remote))
            pushers.append(ws)
        barrier, answers = spawn.Barrier(2), spawn.Queue()
        procs = [spawn.Process(target=_first_push_at_the_barrier, args=(str(ws.root), barrier, answers, *timing))
                 for ws, timing in zip(pushers, ((0.0, upload), (later, 0.0)))]
        for p in procs:
            p.start()
        got = [answers.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(60)
        assert (remote / "HEAD").is_file(), (r, got)
        tip = str(pygit2.Repository(str(remote)).references["refs/heads/main"].target)
        landed = [commit for _, how, commit in got if how == "pushed"]
        assert landed == [tip], (r, got, tip)  # said it landed: it is the remote's main
        refused = [how for _, how, _ in got if how != "pushed"]
        assert len(refused) == 1 and refused[0].startswith("PushRejected") and "pull" in refused[0], (r, got)
        clone = Workspace.clone(str(remote), tmp_path / f"carol{r}")
        assert clone.fsck().ok and clone.head().id == tip
