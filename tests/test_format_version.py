"""Format version: each commit records the storage format it needs; a newer one is refused with one line.

The newer commit is crafted through the real git repository (pygit2), as a later txgit would have
written it, and every command that reads a state is run as a user would (a subprocess)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pygit2
import pytest
from cliutil import assert_one_line_error
from conftest import session_namespace

from txgit import Workspace
from txgit._version import FORMAT_VERSION, __version__
from txgit.errors import NewerFormat


def _recommit(ws: Workspace, parent: pygit2.Commit, message: str, edit, ref: str | None = "refs/heads/main") -> str:
    """A commit on top of ``parent`` whose tree is ``parent``'s with ``meta.json`` passed through ``edit``."""
    repo = ws.history.repo
    meta = json.loads(repo[parent.tree["meta.json"].id].data)
    edit(meta)
    builder = repo.TreeBuilder(parent.tree)
    builder.insert("meta.json", repo.create_blob(json.dumps(meta).encode()), pygit2.enums.FileMode.BLOB)
    sig = pygit2.Signature("later", "later@example.com")
    return str(repo.create_commit(ref, sig, sig, message, builder.write(), [parent.id]))


def _from_the_future(meta: dict) -> None:
    meta["format"] = FORMAT_VERSION + 1
    meta["txgit"] = "9.1.0"


@pytest.fixture
def future(tmp_path):
    """A workspace whose main is at a commit made by a newer txgit, one made by this one below it;
    branch ``past`` names the old one."""
    ws = Workspace.init(tmp_path / "ws")
    ns = session_namespace("a = 1\nb = [1, 2]\n")
    old = ws.commit(ns, "made here").info.id
    ws.create_branch("past", old)
    new = _recommit(ws, ws.history.resolve(old), "made later", _from_the_future)
    return ws, old, new


def test_every_commit_records_the_format_it_needs(ws):
    ns = session_namespace("a = 1\n")
    ws.commit(ns, "one", meta={"format": 99})  # a caller's meta cannot claim another format
    # format 3 only where a group lists a rebound name (test_rebound_groups): a txgit reading up to 2 reads this
    assert ws.state().meta["format"] == 2 < FORMAT_VERSION
    assert ws.state().meta["txgit"] == __version__


@pytest.mark.parametrize("args", [
    ["checkout", "main~0"],
    ["show", "main"],
    ["show", "main", "a"],
    ["diff", "past", "main"],
    ["log", "--graph"],
    ["merge", "main"],
], ids=lambda a: " ".join(a))
def test_a_newer_commit_is_refused_with_one_line(future, run_txgit, args):
    ws, old, new = future
    if args[0] == "merge":  # merge the newer commit into a branch at the old one
        ws.checkout("past")
    before = ws.history.repo.head.target
    proc = run_txgit(*args, cwd=ws.root)
    assert_one_line_error(proc, f"commit {new[:8]}", "made by txgit 9.1.0, which this version cannot read")
    assert "Traceback" not in proc.stderr
    assert Workspace.open(ws.root).history.repo.head.target == before  # nothing moved


def test_a_newer_commit_is_refused_from_python_and_nothing_changes(future):
    ws, old, new = future
    ns = {"__name__": "__main__"}
    with pytest.raises(NewerFormat, match="made by txgit 9.1.0, which this version cannot read"):
        ws.checkout(new, ns)
    assert "a" not in ns
    with pytest.raises(NewerFormat):
        ws.load("a", new)
    assert ws.load("a", old) == 1  # the older commit below it still reads


def test_fsck_names_the_newer_commit_and_gc_deletes_nothing(future, run_txgit):
    ws, old, new = future
    proc = run_txgit("fsck", cwd=ws.root)
    assert proc.returncode == 1
    assert f"commit {new[:8]}: made by txgit 9.1.0, which this version cannot read" in proc.stdout
    proc = run_txgit("gc", "--grace", "0", cwd=ws.root)
    assert_one_line_error(proc, "gc deleted nothing", "made by txgit 9.1.0")


def test_a_commit_without_the_field_still_checks_out(tmp_path, run_txgit):
    # a format-1 commit (vars/, groups/: the tests' fixture, made by txgit at 7fabeba) without the field
    with tarfile.open(Path(__file__).parent / "fixtures" / "format1-workspace.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    ws = Workspace.open(tmp_path / "format1")
    old = _recommit(ws, ws.history.resolve("main"), "made before the field existed", lambda m: m.pop("format", None))
    assert "format" not in ws.history.read_state(ws.history.resolve(old)).meta
    fresh = {"__name__": "__main__"}
    Workspace.open(ws.root).checkout(old, fresh)
    assert fresh["a"] == 2 and fresh["b"] == [1, 2] and fresh["c"] is fresh["b"]
    proc = run_txgit("show", old, "b", cwd=ws.root, check=True)
    assert "[1, 2]" in proc.stdout


@pytest.mark.parametrize("bad", ["2", -1, 1.5, True, None])
def test_a_malformed_format_field_is_a_malformed_record(ws, bad):
    ns = session_namespace("a = 1\n")
    first = ws.commit(ns, "made here").info.id

    def edit(meta):
        meta["format"] = bad

    odd = _recommit(ws, ws.history.resolve(first), "odd", edit)
    fresh = Workspace.open(ws.root)
    with pytest.raises(Exception, match="malformed state record: meta.json: format"):
        fresh.checkout(odd, {"__name__": "__main__"})
