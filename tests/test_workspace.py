"""The Workspace API: history, branches, revisions, checkout semantics and bad input."""

from __future__ import annotations

import os

import pygit2
import pytest
from conftest import session_namespace

from txgit import Workspace
from txgit.errors import (
    CorruptBlob,
    DirtyNamespace,
    EmptyHistory,
    InvalidName,
    NotAWorkspace,
    RefExists,
    TxgitError,
    UnknownRevision,
    UnknownVariable,
    WorkspaceExists,
)


def variables(ns: dict) -> dict:
    return {k: v for k, v in ns.items() if not k.startswith("__")}


def test_init_and_open_from_a_subfolder(tmp_path):
    ws = Workspace.init(tmp_path / "p")
    (tmp_path / "p" / "sub" / "deeper").mkdir(parents=True)
    assert Workspace.open(tmp_path / "p" / "sub" / "deeper").root == ws.root
    assert ws.branch == "main" and ws.head() is None and ws.log() == []
    with pytest.raises(WorkspaceExists):
        Workspace.init(tmp_path / "p")


def test_not_a_workspace(tmp_path):
    with pytest.raises(NotAWorkspace, match="not a txgit workspace"):
        Workspace.open(tmp_path)


def test_history_is_a_real_git_repository(ws):
    ns = session_namespace("x = 1\ny = 'two'\n")
    info = ws.commit(ns, "first state").info
    repo = pygit2.Repository(str(ws.dir / "repo.git"))
    commit = repo[info.id]
    assert commit.message.strip() == "first state"
    records = b"".join(repo[e.id].data for e in commit.tree["records"]).splitlines()
    assert sorted(line.split()[1] for line in records if line.startswith(b"v ")) == [b"x", b"y"]
    assert sorted(e.name for e in commit.tree) == ["meta.json", "records"]
    assert repo.head.shorthand == "main"


def test_branch_fork_scenario(ws):
    ns = session_namespace("import numpy as np\ndata = np.arange(10)\nnote = 'base'\n")
    ws.commit(ns, "base on main")
    main_state = {k: v for k, v in variables(ns).items()}

    ws.checkout("main", ns, new_branch="exp")
    assert ws.branch == "exp"
    ns["data"] = ns["data"] * 2
    ns["extra"] = {"lr": 0.1}
    del ns["note"]
    ws.commit(ns, "experiment")

    result = ws.checkout("main", ns)
    assert ws.branch == "main"
    assert set(variables(ns)) == set(main_state)
    assert (ns["data"] == main_state["data"]).all() and ns["note"] == "base"
    assert "extra" not in ns and result.removed == ["extra"]

    ws.checkout("exp", ns)
    assert (ns["data"] == main_state["data"] * 2).all() and ns["extra"] == {"lr": 0.1} and "note" not in ns
    assert sorted(ws.branches()) == ["exp", "main"]
    assert [c.summary for c in ws.log("exp")] == ["experiment", "base on main"]
    assert [c.summary for c in ws.log("main")] == ["base on main"]


def test_revisions_as_git_users_type_them(ws):
    ns = session_namespace("v = 0\n")
    ids = []
    for i in range(4):
        ns["v"] = i
        ids.append(ws.commit(ns, f"v={i}").info.id)
    ws.create_tag("first", ids[0], message="the very first")
    ws.create_tag("light", ids[1])
    assert ws.resolve("HEAD").id == ids[3]
    assert ws.resolve("HEAD~2").id == ids[1]
    assert ws.resolve("main^").id == ids[2]
    assert ws.resolve("main~3").id == ids[0]
    assert ws.resolve(ids[2][:7]).id == ids[2]
    assert ws.resolve(ids[2]).id == ids[2]
    assert ws.resolve("first").id == ids[0] and ws.resolve("light").id == ids[1]
    assert ws.load("v", "HEAD~3") == 0 and ws.load("v", "first") == 0
    assert "first" in ws.resolve(ids[0]).refs


@pytest.mark.parametrize("rev", ["nope", "HEAD~99", "deadbeef", "", "main^^^^^^", "-x", "a..b", "HEAD@{xyz}"])
def test_unknown_revision_is_one_clear_error(ws, rev):
    ws.commit(session_namespace("a = 1\n"), "one")
    with pytest.raises(UnknownRevision, match="unknown revision|no commits"):
        ws.checkout(rev)
    assert ws.branch == "main"


def test_head_of_an_empty_workspace(ws):
    with pytest.raises(UnknownRevision, match="no commits yet"):
        ws.load("x")
    with pytest.raises(EmptyHistory):
        ws.create_branch("b")


@pytest.mark.parametrize("name", ["", "bad name", "a..b", "x~1", "y^", "-dash", "ends.lock", "HEAD", "sp:ace", "a/", "@{"])
def test_invalid_branch_and_tag_names(ws, name):
    ws.commit(session_namespace("a = 1\n"), "one")
    with pytest.raises(InvalidName):
        ws.create_branch(name)
    with pytest.raises(InvalidName):
        ws.create_tag(name)
    assert sorted(ws.branches()) == ["main"] and ws.tags() == {}


def test_existing_refs_and_current_branch_are_protected(ws):
    ws.commit(session_namespace("a = 1\n"), "one")
    ws.create_branch("b")
    with pytest.raises(RefExists):
        ws.create_branch("b")
    with pytest.raises(TxgitError, match="HEAD is on it"):
        ws.delete_branch("main")
    ws.delete_branch("b")
    assert list(ws.branches()) == ["main"]


def test_dirty_namespace_is_refused_unless_forced(ws):
    ns = session_namespace("a = [1]\n")
    ws.commit(ns, "one")
    ns["a"] = [2]
    ws.commit(ns, "two")
    ns["a"].append(3)  # not committed
    with pytest.raises(DirtyNamespace, match="uncommitted changes to a"):
        ws.checkout("HEAD~1", ns)
    assert ns["a"] == [2, 3] and ws.resolve("HEAD").summary == "two"  # nothing lost, HEAD unmoved
    ns["new"] = 1
    with pytest.raises(DirtyNamespace, match="a, new"):
        ws.checkout("HEAD~1", ns)
    ws.checkout("HEAD~1", ns, force=True)
    assert ns["a"] == [1] and "new" not in ns


def test_empty_namespace_checks_out_without_force(ws):
    ws.commit(session_namespace("a = 1\n"), "one")
    fresh = session_namespace()
    ws.checkout("HEAD", fresh)  # like a fresh kernel: nothing there can be lost
    assert fresh["a"] == 1


def test_corrupted_blob_fails_checkout_and_leaves_everything_as_it_was(ws):
    ns = session_namespace("import numpy as np\nbig = np.arange(200_000)\nsmall = 1\n")
    ws.commit(ns, "one")
    ns["big"] = ns["big"] + 1
    ns["small"] = 2
    ws.commit(ns, "two")
    chunk = ws.state("HEAD~1").groups[ws.state("HEAD~1").variables["big"].group].chunk_names()[-1]
    path = ws.store.path(chunk)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x01
    open(path, "wb").write(bytes(data))

    before = dict(ns)
    with pytest.raises(CorruptBlob, match=chunk):
        ws.checkout("HEAD~1", ns)
    assert ns == before and ws.resolve("HEAD").summary == "two" and ws.branch == "main"
    with pytest.raises(CorruptBlob, match="txgit fsck"):
        ws.load("big", "HEAD~1")


def test_unknown_variable(ws):
    ws.commit(session_namespace("a = 1\n"), "one")
    with pytest.raises(UnknownVariable, match="no variable 'b'"):
        ws.load("b")


def test_detached_head_commits_and_branches_from_there(ws):
    ns = session_namespace("v = 1\n")
    ws.commit(ns, "one")
    ns["v"] = 2
    ws.commit(ns, "two")
    ws.checkout("HEAD~1", ns)
    assert ws.branch is None and ns["v"] == 1
    ns["v"] = 10
    detached = ws.commit(ns, "on detached HEAD").info
    assert ws.resolve("main").summary == "two"
    ws.create_branch("rescued", "HEAD")
    assert ws.resolve("rescued").id == detached.id


def test_names_that_are_not_identifiers_are_not_committed(ws):
    ns = session_namespace("ok = 1\n")
    ns["../../etc/passwd"] = 1
    ns["a/b"] = 2
    ns[3] = "int key"
    ws.commit(ns, "odd keys")
    assert set(ws.state().variables) == {"ok"}


def test_concurrent_writers_wait_for_the_lock(ws):
    """Two processes committing at once: both commits land, one after the other."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import sys
        from txgit import Workspace
        ws = Workspace.open({str(ws.root)!r})
        for i in range(10):
            ws.commit({{"__name__": "__main__", "who": sys.argv[1], "i": i}}, f"{{sys.argv[1]}} {{i}}")
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, who], env=os.environ) for who in ("A", "B")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    messages = [c.summary for c in ws.log()]
    assert len(messages) == 20 and {f"{w} {i}" for w in "AB" for i in range(10)} == set(messages)


def test_checkout_head_on_a_branch_stays_on_it(ws):
    ns = session_namespace("a = 1\n")
    ws.commit(ns, "one")
    ws.checkout("HEAD", ns)
    assert ws.branch == "main"


def test_failed_checkout_with_new_branch_creates_no_branch(ws):
    ns = session_namespace("import numpy as np\nbig = np.arange(100_000)\n")
    ws.commit(ns, "one")
    for chunk in ws.state().groups[ws.state().variables["big"].group].chunk_names():
        (ws.store.path(chunk) and __import__("os").remove(ws.store.path(chunk)))
    fresh = session_namespace()
    with pytest.raises(TxgitError, match="missing"):
        ws.checkout("HEAD", fresh, new_branch="exp")
    assert list(ws.branches()) == ["main"] and ws.branch == "main" and "big" not in fresh


def test_a_rename_sees_a_merge_that_starts_while_it_checks_for_one(tmp_path, monkeypatch):
    """`Workspace.rename_branch` looked for a merge waiting into OLD or NEW before it took the workspace
    lock: a merge that started between the look and the rename went unseen, and main was renamed under
    the merge waiting into it (its record named a branch that was gone). The look is made under the lock.
    The hook below starts that merge, from another Workspace, at the moment of the look, wherever nobody
    holds the lock (a merge takes it): never, once the look is under it."""
    import txgit.merging as merging

    ws = Workspace.init(tmp_path / "w")
    ns = session_namespace()
    ns["x"] = 1
    ws.commit(ns, "x = 1")
    ws.checkout("HEAD", ns, new_branch="feature")
    ns["x"] = 2
    ws.commit(ns, "x = 2")
    ws.checkout("main", ns)
    ns["x"] = 3
    ws.commit(ns, "x = 3")
    look = merging.merge_in_progress
    started = []

    def look_and_meanwhile_merge(w, ref="HEAD", **kw):
        found = look(w, ref, **kw)
        probe = Workspace(w.root).try_lock()
        if probe is not None and not started:  # the look runs unlocked: another process may merge now
            probe.release()
            started.append(Workspace(w.root).merge("feature", ref="refs/heads/main").status)
        return found

    monkeypatch.setattr(merging, "merge_in_progress", look_and_meanwhile_merge)
    try:
        ws.rename_branch("main", "trunk")
        renamed = True
    except TxgitError as e:
        assert "a merge into main waits" in str(e)
        renamed = False
    monkeypatch.undo()
    waiting = ws.merge_in_progress("refs/heads/main")
    assert not (renamed and waiting is not None), f"main renamed under a merge into it ({started})"
    assert ws.fsck().ok
