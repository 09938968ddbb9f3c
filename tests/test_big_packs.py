"""Large chunks of one commit written into one pack file (issue 19: first-commit time of large states).

A first commit of a big state used to write one file per 1 MiB chunk; now the new large chunks of a
commit go into one ``packs/<id>.pack`` with its index written after the data, as small blobs already
did. These tests check what must not change: the bytes come back exactly, packed and loose chunks mix
(old stores), a damaged member is refused and repaired from a remote, gc frees a half-dead pack, and a
kill -9 during the pack write leaves the workspace whole."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, session_namespace
from txgit import Workspace, packs
from txgit.errors import CorruptBlob
from txgit.remote import EMBEDDED_DIR
from txgit.storage import ObjectStore, hash_bytes

MB = 1 << 20


def big_namespace(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    ns = session_namespace()
    ns["big"] = rng.standard_normal(12 * MB // 8)  # 12 chunks, handed to the writer as hashed
    ns["mid"] = np.arange(700_000, dtype=np.int64) * (seed + 1)  # 5.3 MiB, its last chunk short
    ns["rows"] = [{"i": i, "name": f"row-{i:07d}"} for i in range(60_000)]  # a skeleton over 1 MiB
    ns["small"] = {"a": 1}
    return ns


def chunks_of(ws: Workspace, var: str, rev: str = "HEAD") -> list[str]:
    """The large chunks of a variable (its small ones, a skeleton's or a stream's tail, are packed or
    not by the rules for small blobs)."""
    state = ws.state(rev)
    return [c for c in state.groups[state.variables[var].group].chunk_names() if ws.store.size(c) > packs.SMALL_BLOB_MAX]


def large_members(store: ObjectStore) -> dict[str, packs.Member]:
    return {n: m for n, m in store.packs.packed().items() if m.length > packs.SMALL_BLOB_MAX}


def loose_large(store: ObjectStore) -> list[str]:
    return [n for n in store.loose_names() if os.path.getsize(store.path(n)) > packs.SMALL_BLOB_MAX]


def same(a: dict, b: dict) -> bool:
    return (a["big"].tobytes() == b["big"].tobytes() and a["mid"].dtype == b["mid"].dtype
            and a["mid"].tobytes() == b["mid"].tobytes() and a["rows"] == b["rows"] and a["small"] == b["small"])


def test_a_first_commit_writes_its_large_chunks_into_one_pack_and_reads_them_back_exactly(tmp_path):
    ns = big_namespace()
    ws = Workspace.init(tmp_path / "ws")
    done = ws.commit(ns, "first")
    store = ws.store
    big = set(chunks_of(ws, "big")) | set(chunks_of(ws, "mid"))
    members = large_members(store)
    assert big <= members.keys(), "the large chunks are packed"
    assert len({members[n].pack for n in big}) == 1, "one pack for the commit's large chunks"
    assert loose_large(store) == [], "no file per chunk"
    assert not list(Path(store.root).rglob(".tmp-*"))
    packed = sum(m.length for m in store.packs.packed().values())
    loose = sum(os.path.getsize(store.path(n)) for n in store.loose_names())
    assert done.bytes_written == packed + loose
    # byte-exact, through checkout (read straight into the buffers) and through get_many
    got = session_namespace()
    Workspace.open(tmp_path / "ws").checkout("HEAD", got, force=True)
    assert same(ns, got)
    fresh = ObjectStore(store.root)
    blobs = fresh.get_many(sorted(big))
    assert all(hash_bytes(d) == n for n, d in blobs.items())
    assert fresh.stats.blobs_read == len(big)
    # dedup: the same arrays again, under other names too, write nothing
    ns["big_again"] = ns["big"].copy()
    again = ws.commit(ns, "same bytes")
    assert again.bytes_written < packs.SMALL_BLOB_MAX and len(store.packs.indexes()) == len(fresh.packs.indexes())
    assert ws.fsck().ok


def test_the_same_pack_path_serves_commits_without_a_write_ahead(tmp_path):
    """A session's commit (prepare, then finish in the background writer) has no write-ahead: its
    large chunks go into one pack too."""
    ns = big_namespace(1)
    ws = Workspace.init(tmp_path / "ws")
    with ws.lock():
        prepared = ws.prepare_commit(ns, "deferred", defer=True)
        ws.finish_commit(prepared)
    assert set(chunks_of(ws, "big")) <= large_members(ws.store).keys() and loose_large(ws.store) == []
    got = session_namespace()
    Workspace.open(tmp_path / "ws").checkout("HEAD", got, force=True)
    assert same(ns, got)


def test_a_store_of_loose_chunks_and_packed_ones_mixes_both(tmp_path):
    """An old store (every chunk loose) read beside packs, in one state and in one checkout."""
    ws = Workspace.init(tmp_path / "ws")
    ns = big_namespace(2)
    ws.commit(ns, "packed")
    old = ws.store
    # what an older txgit left: the chunks of `big` loose (and out of the pack's index)
    moved = chunks_of(ws, "big")
    for name in moved:
        data = old.get(name)
        old._write_local(name, data)
    pack = old.packs.where[moved[0]].pack
    members = old.packs.indexes()[pack]
    old.rewrite_packs(keep=lambda n, m: n not in moved, packs=[pack])
    assert all(os.path.exists(old.path(n)) for n in moved) and not set(moved) & old.packs.packed().keys()
    assert set(members) - set(moved) <= old.packs.packed().keys()
    ns["new"] = np.random.default_rng(9).bytes(6 * MB)  # new chunks: a new pack beside the loose ones
    ws.commit(ns, "mixed")
    assert set(chunks_of(ws, "new")) <= large_members(ws.store).keys()
    got = session_namespace()
    Workspace.open(tmp_path / "ws").checkout("HEAD", got, force=True)
    assert same(ns, got) and got["new"] == ns["new"]
    # a stream whose chunks are partly loose, partly packed, read into one buffer
    store = ObjectStore(old.root)
    run = [moved[0]] + chunks_of(ws, "new")[:2] + [moved[1]]
    sizes = [sum(len(store.get(n)) for n in run)]
    joined = store.read_joined([run], sizes)
    assert bytes(joined[0]) == b"".join(store.get(n) for n in run)
    assert ws.fsck().ok


def test_a_corrupted_large_member_is_refused_and_repaired_from_a_remote(tmp_path, run_txgit):
    ws = Workspace.init(tmp_path / "a")
    ns = big_namespace(3)
    ws.commit(ns, "big")
    ws.remotes.add("origin", str(tmp_path / "r.git"))
    ws.push()
    remote_objects = ObjectStore(str(tmp_path / "r.git" / EMBEDDED_DIR))
    victim = chunks_of(ws, "big")[5]
    assert os.path.exists(remote_objects.path(victim)), "large chunks stay loose objects on a remote"
    member = ws.store.packs.where[victim]
    with open(ws.store.packs.pack_path(member.pack), "r+b") as f:
        f.seek(member.offset + 1000)
        f.write(b"\xff" * 8)
    got = session_namespace()
    with pytest.raises(CorruptBlob, match=victim[:12]):
        Workspace.open(tmp_path / "a").checkout("HEAD", got, force=True)
    assert "big" not in got
    proc = run_txgit("fsck", cwd=tmp_path / "a")
    assert proc.returncode == 1 and f"corrupt blob {victim}" in proc.stdout, proc.stdout
    proc = run_txgit("fsck", "--repair", cwd=tmp_path / "a")
    assert proc.returncode == 0 and f"repaired blob {victim} from" in proc.stdout, proc.stdout + proc.stderr
    assert run_txgit("fsck", cwd=tmp_path / "a").returncode == 0
    got = session_namespace()
    Workspace.open(tmp_path / "a").checkout("HEAD", got, force=True)
    assert same(ns, got)


def test_a_chunk_lost_by_the_remote_is_found_by_fsck_remote_and_sent_again_from_the_local_pack(tmp_path, run_txgit):
    ws = Workspace.init(tmp_path / "a")
    ws.commit(big_namespace(4), "big")
    ws.remotes.add("origin", str(tmp_path / "r.git"))
    ws.push()
    victim = chunks_of(ws, "mid")[2]
    remote_path = ObjectStore(str(tmp_path / "r.git" / EMBEDDED_DIR)).path(victim)
    os.unlink(remote_path)
    proc = run_txgit("fsck", "--remote", "origin", cwd=tmp_path / "a")
    assert proc.returncode == 1 and f"remote origin lacks blob {victim}" in proc.stdout, proc.stdout + proc.stderr
    proc = run_txgit("fsck", "--remote", "origin", "--repair", cwd=tmp_path / "a")
    assert proc.returncode == 0 and "(uploaded again)" in proc.stdout, proc.stdout + proc.stderr
    with open(remote_path, "rb") as f:
        assert hash_bytes(f.read()) == victim


def _age(ws: Workspace, seconds: float = 7200) -> None:
    old = time.time() - seconds
    for p in Path(ws.store.root).rglob("*"):
        if p.is_file():
            os.utime(p, (old, old))


def _pack_on_a_dropped_branch(ws: Workspace, keep_mb: int, drop_mb: int, seed: int) -> tuple[list[str], list[str], bytes]:
    """A commit on branch `exp` writes `keep` and `drop` into one pack; main then commits `keep` alone
    (the same bytes: nothing written) and `exp` is deleted, so `drop`'s chunks are garbage."""
    rng = np.random.default_rng(seed)
    ns = session_namespace("x = 1\n")
    if ws.head() is None:
        ws.commit(ns, "base")
    ws.checkout("main", ns, force=True, new_branch=f"exp{seed}")
    ns["keep"], ns["drop"] = rng.bytes(keep_mb * MB), rng.bytes(drop_mb * MB)
    ws.commit(ns, "keep and drop, one pack")
    keep, drop = chunks_of(ws, "keep"), chunks_of(ws, "drop")
    assert ws.store.packs.where[keep[0]].pack == ws.store.packs.where[drop[0]].pack
    main = session_namespace()
    ws.checkout("main", main, force=True)
    main["keep"] = ns["keep"]
    assert ws.commit(main, "keep only").bytes_written < packs.SMALL_BLOB_MAX
    ws.delete_branch(f"exp{seed}")
    return keep, drop, ns["keep"]


def test_gc_rewrites_a_half_dead_big_pack_without_its_garbage(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    keep, drop, value = _pack_on_a_dropped_branch(ws, 4, 6, seed=5)  # 60 % of the pack is garbage
    old_pack = ws.store.packs.where[keep[0]].pack
    _age(ws)
    report = ws.gc(reflog_days=0)
    assert set(drop) <= set(report.deleted) and report.packs_rewritten == 1 and report.bytes_freed >= 6 * MB
    assert old_pack not in ws.store.packs.indexes() and not set(drop) & set(ws.store.names())
    assert set(keep) <= large_members(ws.store).keys(), "the live chunks moved to a new pack"
    assert not list(Path(ws.store.root).rglob(".tmp-*")) and ws.fsck().ok
    got = session_namespace()
    Workspace.open(tmp_path / "ws").checkout("main", got, force=True)
    assert got["keep"] == value


def test_gc_keeps_a_big_pack_whole_for_a_minority_of_garbage(tmp_path):
    """40 % garbage would rewrite a pack of small blobs (their threshold is 25 %); a pack of large chunks
    is rewritten only from half garbage on: never more live bytes copied than dead bytes freed."""
    ws = Workspace.init(tmp_path / "ws")
    keep, drop, _ = _pack_on_a_dropped_branch(ws, 6, 4, seed=6)
    pack = ws.store.packs.where[keep[0]].pack
    _age(ws)
    report = ws.gc(reflog_days=0)
    assert report.packs_rewritten == 0 and report.kept_in_packs >= len(drop), report
    assert pack in ws.store.packs.indexes() and set(drop) <= set(ws.store.names()) and ws.fsck().ok
    with_budget = ws.gc(reflog_days=0, budget=1 << 40)  # a budget asks for the bytes: rewritten then
    assert with_budget.packs_rewritten == 1 and not set(drop) & set(ws.store.names())


KILLED_WRITER = """
import sys
import numpy as np
from txgit import Workspace
ws = Workspace.open(sys.argv[1])
rng = np.random.default_rng(int(sys.argv[2]))
ns = {"__name__": "__main__", "a": rng.standard_normal(48 << 17), "b": rng.bytes(24 << 20)}
print("ready", flush=True)
sys.stdin.readline()
ws.commit(ns, "killed")
print("committed", flush=True)
"""


def test_a_kill_9_during_the_pack_write_leaves_the_workspace_whole(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    base = ws.commit(session_namespace("x = 1\n"), "base").info.id
    folder = Path(ws.store.root) / packs.PACK_DIR
    landed = 0
    for trial in range(8):
        proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path / "ws"), str(trial)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        try:
            assert proc.stdout.readline().strip() == "ready"
            proc.stdin.write("go\n")
            proc.stdin.flush()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                if folder.is_dir() and any(p.name.startswith(packs.TEMP_PREFIX) for p in folder.iterdir()):
                    break  # the pack is being written
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        temp = [p for p in folder.iterdir() if p.name.startswith(packs.TEMP_PREFIX)] if folder.is_dir() else []
        opened = Workspace.open(tmp_path / "ws")
        assert opened.fsck().ok
        if opened.head().id != base:  # the commit finished before the kill: it must be whole
            assert opened.head().summary == "killed"
            got = session_namespace()
            opened.checkout("HEAD", got, force=True)
            assert len(got["b"]) == 24 << 20
            base = opened.head().id
            continue
        if temp:
            landed += 1
            got = session_namespace()
            opened.checkout("HEAD", got, force=True)
            assert got["x"] == 1
            assert opened.gc(grace_seconds=0).temp_files_removed >= len(temp)
            assert not [p for p in folder.iterdir() if p.name.startswith(packs.TEMP_PREFIX)]
            if landed >= 2:
                break
    assert landed, "no kill landed while a pack was written"
    ns = big_namespace(7)
    done = Workspace.open(tmp_path / "ws").commit(ns, "after the kills")
    got = session_namespace()
    Workspace.open(tmp_path / "ws").checkout(done.info.id, got, force=True)
    assert same(ns, got) and Workspace.open(tmp_path / "ws").fsck().ok


def test_a_pack_being_written_does_not_make_existence_checks_rescan_the_pack_folder(tmp_path):
    """WriteAhead asks the store what it lacks for every batch of chunks while its pack's temp file
    sits in the pack folder: that file must not count as a change of the folder (each change means
    a stat of every pack file, thousands after a long session)."""
    store = ObjectStore(str(tmp_path / "objects"))
    blobs = {hash_bytes(d): d for d in (os.urandom(packs.SMALL_BLOB_MAX + 1) for _ in range(packs.BIG_PACK_MIN_MEMBERS))}
    store.put_named(blobs)
    store.packs.refresh()  # sees the new pack: one rescan, as after every change
    scans = []
    listed = store.packs._list
    store.packs._list = lambda *args: scans.append(1) or listed(*args)
    writer = store.packs.writer()  # a temp file in the folder from now on
    writer.add(*next(iter(blobs.items())))
    for _ in range(3):
        assert store.missing(blobs) == set()
    assert scans == []
    writer.abort()
    (Path(store.packs.dir) / ("ab" * 32 + ".idx")).write_text("not an index")  # a real change is seen
    store.missing(blobs)
    assert scans == [1] and "ab" * 32 in store.packs.broken
