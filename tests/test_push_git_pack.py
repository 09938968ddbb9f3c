"""The git side of a push: which git pack a push sends to a local bare repository.

A push of one new commit holds one version of each record shard, so libgit2's delta search can
only pair different variables' shards (a few percent of bytes for most of the push's time): it is
skipped for such a push. A push of several commits keeps it, since successive versions of a
shard delta well. The choice is per push: the workspace's git config is left as it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pygit2

from conftest import session_namespace
from txgit import Workspace, packs
from txgit.remote import EMBEDDED_DIR


def _pack_objects(remote: Path) -> tuple[int, int]:
    """(objects, of which deltas) in the remote's packs, as `git verify-pack -v` lists them."""
    objects = deltas = 0
    for idx in (remote / "objects" / "pack").glob("*.idx"):
        out = subprocess.run(["git", "verify-pack", "-v", str(idx)], check=True, capture_output=True,
                             text=True).stdout
        for line in out.splitlines():
            fields = line.split()
            if len(fields) >= 5 and fields[1] in ("commit", "tree", "blob", "tag"):
                objects += 1
                deltas += len(fields) == 7  # a delta names its depth and base
    return objects, deltas


def _many_variables(n: int) -> dict:
    ns = session_namespace()
    for i in range(n):
        ns[f"v{i}"] = {"id": i, "name": f"row-{i}", "values": list(range(i % 17, i % 17 + 20))}
    return ns


def _config_entries(ws: Workspace) -> dict[str, str]:
    return {e.name: e.value for e in ws.history.repo.config if e.level == 5}  # the repository's own file


def test_push_of_one_commit_sends_no_deltas_and_leaves_the_config_alone(tmp_path):
    ws = Workspace.init(tmp_path / "a")
    ns = _many_variables(400)  # ~16 record shards of similar text: libgit2 would delta them
    ws.commit(ns, "state")
    before = _config_entries(ws)
    ws.remotes.add("origin", str(tmp_path / "r.git"))
    ws.push()
    objects, deltas = _pack_objects(tmp_path / "r.git")
    assert objects >= 16 and deltas == 0
    after = {k: v for k, v in _config_entries(ws).items() if not k.startswith(("remote.", "branch."))}
    assert after == {k: v for k, v in before.items() if not k.startswith(("remote.", "branch."))}
    clone = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "b", eager=True)
    got = session_namespace()
    clone.checkout("main", got)
    assert got["v399"] == ns["v399"]


def test_push_of_several_commits_keeps_deltas_between_versions(tmp_path):
    ws = Workspace.init(tmp_path / "a")
    ns = _many_variables(400)
    ws.commit(ns, "state")
    for i in range(6):  # each commit rewrites one shard: versions of one file delta well
        ns["v7"] = {"id": -i, "values": list(range(20))}
        ws.commit(ns, f"change {i}")
    ws.remotes.add("origin", str(tmp_path / "r.git"))
    ws.push()
    _, deltas = _pack_objects(tmp_path / "r.git")
    assert deltas >= 5
    clone = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "b", eager=True)
    got = session_namespace()
    clone.checkout("main", got)
    assert got["v7"] == ns["v7"] and got["v399"] == ns["v399"]


def test_an_eager_clone_of_a_history_reads_each_record_shard_once(tmp_path, monkeypatch):
    # 15 commits of 400 variables, each changing one: the clone needs every commit's chunk names, and
    # reads them from the record shards each commit changed, not from every commit's whole state
    ws = Workspace.init(tmp_path / "a")
    ns = _many_variables(400)
    ws.commit(ns, "state")
    for i in range(15):
        ns[f"v{i * 25}"] = {"id": -i}
        ws.commit(ns, f"change {i}")
    ws.remotes.add("origin", str(tmp_path / "r.git"))
    ws.push()
    from txgit.state import GroupRecord

    parsed = []  # group records parsed (instrumented, not replaced: the real parser still runs)
    real = GroupRecord.from_bytes.__func__
    monkeypatch.setattr(GroupRecord, "from_bytes",
                        classmethod(lambda cls, data: parsed.append(data) or real(cls, data)))
    clone = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "b", eager=True)
    # the tip's state read whole (the checkout reads it next), the others' changed shards (<= 64 lines)
    assert len(parsed) <= 400 + 15 * 64 < 16 * 400, len(parsed)
    every_commit = ws.remotes._new_commits([str(ws.history.head_commit().id)], [])
    assert len(every_commit) == 16 and not clone.store.missing(ws.remotes._blobs_of(every_commit)[0])
    monkeypatch.undo()
    for back in (0, 7, 15):
        got = session_namespace()
        clone.checkout(f"main~{back}", got)
        want = session_namespace()
        ws.checkout(f"main~{back}", want)
        assert {k: v for k, v in got.items() if k.startswith("v")} == {k: v for k, v in want.items() if k.startswith("v")}


def _push_killed_mid_upload(tmp_path: Path) -> tuple[Workspace, dict, str, str, set[str]]:
    """A workspace whose push of a 400-blob state was killed while the blobs went up, with the state's
    git objects on the remote already: (workspace, namespace, the remote main's commit, the killed
    push's commit, the blobs it names)."""
    ws = Workspace.init(tmp_path / "a")
    ns = session_namespace()
    ns["x"] = 1
    ws.commit(ns, "before")
    old = ws.head().id
    ws.remotes.add("origin", str(tmp_path / "r.git"))
    ws.push()
    # blobs just over the pack size: loose, moved in batches with a delay after each (the kill lands
    # mid-upload)
    for i in range(400):
        ns[f"v{i}"] = bytes([i % 251]) * (packs.SMALL_BLOB_MAX + 64 + i)
    ws.commit(ns, "400 variables")
    new = ws.head().id
    named = ws.remotes._blobs_of([ws.history.head_commit()])[0]
    blobs = tmp_path / "r.git" / EMBEDDED_DIR

    def stored() -> int:
        return sum(1 for p in blobs.rglob("*") if p.is_file() and not p.name.startswith(".tmp-"))

    held = stored()
    proc = subprocess.Popen([sys.executable, "-m", "txgit", "push"], cwd=tmp_path / "a",
                            env={**os.environ, "TXGIT_DEBUG_TRANSFER_DELAY": "3"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and stored() == held:
            time.sleep(0.01)
        # the first batches wait 3 s after landing: the commit must arrive well within that
        deadline = time.time() + 2.0
        while time.time() < deadline and new not in pygit2.Repository(str(tmp_path / "r.git")):
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    remote = pygit2.Repository(str(tmp_path / "r.git"))
    assert held < stored() < held + len(named)  # killed half way through the blob upload
    assert new in remote  # ... with the state's git objects there already
    return ws, ns, old, new, named


def test_git_objects_go_up_with_the_blobs_and_the_branch_moves_only_after_them(tmp_path, run_txgit):
    """A push sends the state's git objects while its blobs upload (under a pending ref the remote's
    fetchers never read); the branch moves only once both are stored. Killed mid-upload: the remote's
    main is where it was and a clone gets the old state; a rerun completes and leaves no pending ref."""
    ws, ns, old, new, named = _push_killed_mid_upload(tmp_path)
    remote = pygit2.Repository(str(tmp_path / "r.git"))
    refs = {name: str(remote.references[name].target) for name in remote.references}
    assert refs["refs/heads/main"] == old  # the branch is where it was
    assert [name for name, oid in refs.items() if oid == new] == [f"refs/txgit-pending/{new}"]
    peek = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "peek")
    assert peek.head().id == old and "refs/txgit-pending" not in str(list(peek.history.repo.references))

    out = run_txgit("push", cwd=tmp_path / "a", check=True).stdout
    assert f"of {len(named)} blobs uploaded" in out
    _assert_the_remote_holds(tmp_path, new, ns)


def _assert_the_remote_holds(tmp_path, head: str, ns: dict) -> None:
    """r.git's main is ``head``, no pending ref is left, and an eager clone checks out ``ns``'s values."""
    remote = pygit2.Repository(str(tmp_path / "r.git"))
    assert str(remote.references["refs/heads/main"].target) == head
    assert not [name for name in remote.references if name.startswith("refs/txgit-pending/")]
    clone = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "b", eager=True)
    got = session_namespace()
    clone.checkout("main", got)
    assert (got["v399"], got["x"]) == (ns["v399"], ns["x"])


def test_a_pending_ref_left_by_a_killed_push_goes_with_the_next_push_of_a_later_commit(tmp_path, run_txgit):
    """The killed push is not rerun: the user changes a variable and pushes. The new commit's branch
    contains the pending one, whose ref has done its part: it is removed, and the remote is whole."""
    ws, ns, old, new, named = _push_killed_mid_upload(tmp_path)
    ns["x"] = 2
    ws.commit(ns, "after the killed push")
    newest = ws.head().id
    run_txgit("push", cwd=tmp_path / "a", check=True)
    _assert_the_remote_holds(tmp_path, newest, ns)
