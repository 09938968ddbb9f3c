"""Small loose blobs are packed: now and then after commits, and all of them by gc, whose pack also
replaces the other packs of small blobs. No blob is ever unreadable on the way, a damaged loose blob is
never carried into a pack, and a reader that looked before the packing still finds every blob."""

from __future__ import annotations

from pathlib import Path

import pytest

from txgit import Workspace, repository
from txgit import storage as storage_module


def loose_files(ws: Workspace) -> int:
    return sum(1 for _ in ws.store.entries())


def blob_packs(ws: Workspace) -> list[Path]:
    folder = Path(ws.store.packs.dir)
    return sorted(folder.glob("*.idx")) if folder.is_dir() else []


def cell_commits(ws: Workspace, ns: dict, start: int, count: int) -> list[str]:
    """Commits as a session makes them: a few small variables changed each time."""
    ids = []
    for i in range(start, start + count):
        ns["a"] = i
        ns["b"] = [i, i + 1]
        ns[f"v{i % 20}"] = {"i": i, "s": f"cell {i}"}
        ids.append(ws.commit(ns, f"cell {i}", names={"a", "b", f"v{i % 20}"}).info.id)
    return ids


def assert_every_commit_checks_out(ws: Workspace, ids: list[str], which: range | list[int]) -> None:
    """Commit ``ids[i]`` (cell i) holds a == i, b == [i, i + 1], read by a new process's view."""
    fresh = Workspace.open(ws.root)
    for i in which:
        ns: dict = {"__name__": "__main__"}
        fresh.checkout(ids[i], ns, force=True, move_head=False)
        assert (ns["a"], ns["b"]) == (i, [i, i + 1])
        assert ns[f"v{i % 20}"] == {"i": i, "s": f"cell {i}"}


@pytest.fixture
def often(monkeypatch):
    """Pack after every 4th commit once 24 loose blobs are estimated (the defaults: 16 and 512)."""
    monkeypatch.setattr(repository, "LOOSE_CHECK_EVERY", 4)
    monkeypatch.setattr(repository, "LOOSE_BLOB_LIMIT", 24)


def test_commits_pack_their_small_loose_blobs_now_and_then(tmp_path, often):
    packed = Workspace.init(tmp_path / "packed")
    loose = Workspace.init(tmp_path / "loose")
    loose.auto_pack_blobs = False
    ns1: dict = {"__name__": "__main__"}
    ns2: dict = {"__name__": "__main__"}
    ids = cell_commits(packed, ns1, 0, 200)
    cell_commits(loose, ns2, 0, 200)
    assert loose_files(loose) >= 400  # ~3 small blobs a commit, each a file
    # what is left loose is below the limit plus what the commits since the last look wrote
    assert loose_files(packed) < 24 * 3
    assert blob_packs(packed)
    assert packed.fsck().problems == []
    assert_every_commit_checks_out(packed, ids, [*range(0, 200, 17), 199])


def test_gc_gathers_loose_blobs_and_small_packs_into_one_pack(tmp_path, often):
    ws = Workspace.init(tmp_path / "ws")
    ns: dict = {"__name__": "__main__"}
    ids = cell_commits(ws, ns, 0, 120)
    ws.auto_pack_blobs = False
    ids += cell_commits(ws, ns, 120, 5)  # some left loose
    assert len(blob_packs(ws)) >= 2 and loose_files(ws) > 0
    report = ws.gc()
    assert report.blobs_packed > 0 and report.blob_packs_merged >= 2
    assert loose_files(ws) == 0
    assert len(blob_packs(ws)) == 1
    assert ws.fsck().problems == []
    assert_every_commit_checks_out(ws, ids, [*range(0, 125, 11), 124])
    # nothing left to gather: a second gc writes no pack
    assert ws.gc().blobs_packed == 0
    assert len(blob_packs(ws)) == 1


def test_a_reader_that_looked_before_the_packing_still_reads_every_blob(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    ws.auto_pack_blobs = False
    ns: dict = {"__name__": "__main__"}
    ids = cell_commits(ws, ns, 0, 30)
    reader = Workspace.open(ws.root)
    names = sorted({c for g in reader.state(ids[5]).groups.values() for c in g.chunk_names()})
    reader.store.get_many(names)  # it has looked: its pack list and the loose files are known to it
    assert ws.store.pack_loose().loose_removed > 0
    assert all(not Path(reader.store.path(n)).exists() for n in names)
    assert reader.store.get_many(names).keys() == set(names)
    target: dict = {"__name__": "__main__"}
    reader.checkout(ids[5], target, force=True, move_head=False)
    assert target["a"] == 5


def test_a_damaged_loose_blob_is_not_packed(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    ws.auto_pack_blobs = False
    ns: dict = {"__name__": "__main__"}
    cell_commits(ws, ns, 0, 12)
    names = sorted(n for n, _ in ws.store.entries())
    victim = names[3]
    path = Path(ws.store.path(victim))
    path.write_bytes(path.read_bytes() + b"!")
    ws.store.pack_loose()
    assert [n for n, _ in ws.store.entries()] == [victim]  # left loose, for fsck to name
    assert victim not in ws.store.packs.packed()
    assert any(victim[:12] in p for p in ws.fsck().problems)


def test_a_packing_stopped_half_way_leaves_every_blob_readable(tmp_path, monkeypatch):
    ws = Workspace.init(tmp_path / "ws")
    ws.auto_pack_blobs = False
    ns: dict = {"__name__": "__main__"}
    ids = cell_commits(ws, ns, 0, 30)
    before = loose_files(ws)
    real_unlink = storage_module.os.unlink
    calls = {"n": 0}

    def unlink_then_die(path):
        calls["n"] += 1
        if calls["n"] > 10:  # the pack is in place; some loose copies are gone, the rest still there
            raise KeyboardInterrupt
        real_unlink(path)

    monkeypatch.setattr(storage_module.os, "unlink", unlink_then_die)
    with pytest.raises(KeyboardInterrupt):
        ws.store.pack_loose()
    monkeypatch.setattr(storage_module.os, "unlink", real_unlink)
    assert 0 < loose_files(ws) < before
    fresh = Workspace.open(ws.root)
    assert fresh.fsck().problems == []
    assert_every_commit_checks_out(fresh, ids, range(30))
    # the next packing finishes the job: the loose copies of packed blobs are left for gc, which
    # gathers them with the packs
    fresh.gc()
    assert loose_files(fresh) == 0 and fresh.fsck().problems == []
