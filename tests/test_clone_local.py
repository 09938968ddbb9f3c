"""A clone from a local path takes the remote's git objects as they are (linked or copied), as
``git clone`` does for a local repository, and falls back to the ordinary fetch where that would
not be safe: a remote borrowing objects from elsewhere, or one written to while the clone copies."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import session_namespace
from txgit import Workspace
from txgit.remote import Remotes


def _alice(tmp_path: Path, n: int = 200) -> tuple[Workspace, dict]:
    ws = Workspace.init(tmp_path / "a")
    ns = session_namespace()
    for i in range(n):
        ns[f"v{i}"] = {"id": i, "values": list(range(i % 13, i % 13 + 10))}
    ws.commit(ns, f"{n} variables")
    ws.remotes.add("origin", str(tmp_path / "r.git"))
    ws.push()
    return ws, ns


def _packs(repo: Path) -> set[str]:
    return {p.name for p in (repo / "objects" / "pack").glob("*.pack")}


def _checked_out(ws: Workspace) -> dict:
    got = session_namespace()
    ws.checkout("main", got)
    return got


def test_a_clone_from_a_local_path_takes_the_remotes_packs_as_they_are(tmp_path):
    _, ns = _alice(tmp_path)
    remote_packs = _packs(tmp_path / "r.git")
    assert remote_packs
    clone = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "b")
    # the remote's pack files themselves (linked: same file system), not a pack built and indexed again
    mine = Path(clone.history.repo.path) / "objects" / "pack"
    theirs = tmp_path / "r.git" / "objects" / "pack"
    assert all((mine / name).stat().st_ino == (theirs / name).stat().st_ino for name in remote_packs)
    assert _checked_out(clone)["v199"] == ns["v199"] and clone.fsck().ok
    # a clone that commits and pushes leaves the remote's files as they were
    before = {p: p.read_bytes() for p in (tmp_path / "r.git" / "objects" / "pack").iterdir()}
    got = _checked_out(clone)
    got["new"] = 1
    clone.commit(got, "one more")
    clone.push()
    assert all(p.read_bytes() == data for p, data in before.items())
    assert _checked_out(Workspace.clone(str(tmp_path / "r.git"), tmp_path / "c"))["new"] == 1


def test_loose_objects_written_by_git_itself_are_taken_too(tmp_path):
    ws, ns = _alice(tmp_path, 20)
    ns["extra"] = "pushed by git"
    ws.commit(ns, "one more")
    # git's receive-pack keeps a push of few objects loose (transfer.unpackLimit)
    subprocess.run(["git", "--git-dir", str(ws.history.repo.path), "push", "-q", str(tmp_path / "r.git"),
                    "main:main"], check=True)
    assert ws.remotes.check_storage(resend=True).resent  # the new variable's blob, which git does not carry
    loose = [f for d in (tmp_path / "r.git" / "objects").iterdir() if len(d.name) == 2 for f in d.iterdir()]
    assert loose
    clone = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "b")
    mine = Path(clone.history.repo.path) / "objects"
    assert all((mine / f.parent.name / f.name).stat().st_ino == f.stat().st_ino for f in loose)
    assert _checked_out(clone)["extra"] == "pushed by git" and clone.fsck().ok


def test_a_remote_borrowing_objects_is_fetched_the_ordinary_way(tmp_path):
    ws, ns = _alice(tmp_path, 20)
    # a repository borrowing the objects of another (git clone --shared), then pushed to: its own
    # pack holds the new commit, while most records it names are in the other repository
    subprocess.run(["git", "clone", "-q", "--bare", "--shared", str(tmp_path / "r.git"), str(tmp_path / "s.git")],
                   check=True)
    ns["later"] = "only in the borrowing repository"
    ws.commit(ns, "one more")
    ws.remotes.add("shared", str(tmp_path / "s.git"), storage=str(tmp_path / "r.git" / "txgit-objects"))
    ws.push("shared")
    assert _packs(tmp_path / "s.git")
    clone = Workspace.clone(str(tmp_path / "s.git"), tmp_path / "b")
    got = _checked_out(clone)
    assert got["later"] == ns["later"] and got["v19"] == ns["v19"] and clone.fsck().ok


def test_a_push_while_the_clone_copies_makes_it_start_again(tmp_path, monkeypatch):
    ws, ns = _alice(tmp_path, 20)
    fetch = Remotes.fetch
    fetches = []

    def push_meanwhile(self, *args, **kwargs):
        # another user pushes after the clone has copied the objects, before it reads the refs
        if not fetches:
            ns["late"] = "pushed meanwhile"
            ws.commit(ns, "pushed while B cloned")
            ws.push()
        fetches.append(1)
        return fetch(self, *args, **kwargs)

    monkeypatch.setattr(Remotes, "fetch", push_meanwhile)
    clone = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "b")
    assert len(fetches) == 2  # the first attempt was dropped, the second fetched the ordinary way
    assert _checked_out(clone)["late"] == "pushed meanwhile" and clone.fsck().ok


def test_a_writers_temp_files_and_a_pack_without_its_index_are_not_taken(tmp_path):
    _, ns = _alice(tmp_path, 20)
    objects = tmp_path / "r.git" / "objects"
    (objects / "ab").mkdir(exist_ok=True)
    (objects / "ab" / "tmp_obj_Xy12Zq").write_bytes(b"half-written")  # git's temp name for a loose object
    half = "pack-" + "0" * 40
    (objects / "pack" / f"{half}.pack").write_bytes(b"PACK, its index not written yet")
    clone = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "b")
    mine = Path(clone.history.repo.path) / "objects"
    assert not (mine / "ab" / "tmp_obj_Xy12Zq").exists() and not (mine / "pack" / f"{half}.pack").exists()
    assert _packs(tmp_path / "r.git") - {f"{half}.pack"} <= _packs(mine.parent)  # the whole packs were taken
    assert _checked_out(clone)["v19"] == ns["v19"] and clone.fsck().ok


def test_a_clones_branches_say_in_their_reflog_where_they_came_from(tmp_path):
    """A clone's first reflog entry of each branch had an empty message (`main@{0}: ` in `git reflog`),
    so the way back to "as cloned" could not be told apart: it says `clone: from URL`, as git's does."""
    _alice(tmp_path, n=3)
    url = str(tmp_path / "r.git")
    clone = Workspace.clone(url, tmp_path / "b")
    shown = subprocess.run(["git", "--git-dir", clone.history.repo.path, "reflog", "show", "main"],
                           capture_output=True, text=True, check=True).stdout
    assert shown.splitlines()[-1].split(": ", 1)[1] == f"clone: from {url}", shown
