"""Packs: small blobs stored and moved many to one object, with an index (txgit.packs).

Local folders and moto's S3 server: members read back verified, a damaged member is named and
mended from another store, old loose-only stores and remotes still read, gc rewrites packs that
became mostly garbage, and a remote's packs are its index (few requests, and only a hint)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from conftest import session_namespace
from servers import S3_ENV, make_bucket, s3_requests
from txgit import Workspace, packs
from txgit.errors import CorruptBlob, MissingBlob
from txgit.storage import ObjectStore, hash_bytes


def small_blobs(n: int, tag: str = "") -> dict[str, bytes]:
    out = {}
    for i in range(n):
        data = f"{tag}blob {i} ".encode() * (1 + i % 7)
        out[hash_bytes(data)] = data
    return out


def pack_files(store: ObjectStore) -> list[str]:
    folder = Path(store.root) / packs.PACK_DIR
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_many_small_blobs_go_into_one_pack_and_large_ones_stay_loose(tmp_path):
    store = ObjectStore(str(tmp_path / "objects"))
    blobs = small_blobs(100)
    big = os.urandom(packs.SMALL_BLOB_MAX + 1)
    blobs[hash_bytes(big)] = big
    store.put_named(blobs)
    files = pack_files(store)
    assert len(files) == 2 and files[0].endswith(".idx") and files[1].endswith(".pack")
    assert os.path.exists(store.path(hash_bytes(big)))  # large blobs stay loose
    assert not any(os.path.exists(store.path(n)) for n in blobs if n != hash_bytes(big))
    assert store.missing(blobs) == set() and set(store.names()) == set(blobs)
    fresh = ObjectStore(str(tmp_path / "objects"))  # another process: finds them from the index
    assert fresh.get_many(sorted(blobs)) == blobs
    assert fresh.size(next(iter(small_blobs(1)))) == len(b"blob 0 ")
    # dedup: writing the same blobs again writes nothing
    store.put_named(blobs)
    assert pack_files(store) == files


def test_a_few_small_blobs_stay_loose_and_a_store_mixes_both(tmp_path):
    store = ObjectStore(str(tmp_path / "objects"))
    few = small_blobs(packs.PACK_MIN_MEMBERS - 1, "few")
    store.put_named(few)
    assert pack_files(store) == [] and all(os.path.exists(store.path(n)) for n in few)
    many = small_blobs(50, "many")
    store.put_named(many)
    assert len(pack_files(store)) == 2
    both = {**few, **many}
    assert ObjectStore(str(tmp_path / "objects")).get_many(sorted(both)) == both


def test_a_damaged_member_is_named_and_mended_from_another_store(tmp_path):
    blobs = small_blobs(40)
    store = ObjectStore(str(tmp_path / "objects"))
    backup = ObjectStore(str(tmp_path / "backup"))
    store.put_named(blobs)
    backup.put_named(blobs)
    victim = sorted(blobs)[7]
    member = store.packs.where[victim]
    with open(store.packs.pack_path(member.pack), "r+b") as f:
        f.seek(member.offset)
        f.write(b"X")
    with pytest.raises(CorruptBlob, match=victim):
        ObjectStore(str(tmp_path / "objects")).get(victim)
    assert store.check(blobs) == {victim: "corrupt"}
    assert store.repair_from([victim], [backup]) == {victim: backup.url}
    assert store.check(blobs) == {}
    assert ObjectStore(str(tmp_path / "objects")).get_many(sorted(blobs)) == blobs


def test_a_corrupted_pack_member_is_repaired_from_a_remote(tmp_path, run_txgit):
    ws = Workspace.init(tmp_path / "a")
    ns = session_namespace("".join(f"v{i} = {{'i': {i}, 'pad': 'x' * {i}}}\n" for i in range(40)))
    ws.commit(ns, "forty small variables: one pack")
    ws.remotes.add("origin", str(tmp_path / "r.git"))
    ws.push()
    state = ws.state()
    victim = sorted(state.groups[state.variables["v7"].group].chunk_names())[0]
    member = ws.store.packs.where[victim]
    with open(ws.store.packs.pack_path(member.pack), "r+b") as f:
        f.seek(member.offset + member.length // 2)
        f.write(b"\xff")
    proc = run_txgit("fsck", cwd=tmp_path / "a")
    assert proc.returncode == 1 and f"corrupt blob {victim}" in proc.stdout and "v7" in proc.stdout, proc.stdout
    proc = run_txgit("fsck", "--repair", cwd=tmp_path / "a")
    assert proc.returncode == 0 and f"repaired blob {victim} from" in proc.stdout, proc.stdout + proc.stderr
    assert run_txgit("fsck", cwd=tmp_path / "a").returncode == 0
    got = session_namespace()
    Workspace.open(tmp_path / "a").checkout("main", got)
    assert got["v7"] == {"i": 7, "pad": "x" * 7}


def test_an_index_whose_pack_is_gone_or_cut_vouches_for_nothing(tmp_path):
    blobs = small_blobs(30)
    store = ObjectStore(str(tmp_path / "objects"))
    store.put_named(blobs)
    pack = next(iter(store.packs.indexes()))
    path = store.packs.pack_path(pack)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    fresh = ObjectStore(str(tmp_path / "objects"))
    lacking = fresh.missing(blobs)
    assert lacking == set(blobs)  # not one member is vouched for
    assert pack in fresh.packs.broken
    with pytest.raises(MissingBlob):
        fresh.get_many(sorted(blobs))
    fresh.put_named(blobs)  # written again, as a new pack beside the broken one
    assert ObjectStore(str(tmp_path / "objects")).get_many(sorted(blobs)) == blobs


def test_a_pack_without_its_index_is_invisible_and_gc_removes_it(ws):
    """What a writer killed between the pack and its index leaves: a store that reads as before."""
    ns = session_namespace("".join(f"v{i} = {{'i': {i}, 'pad': 'x' * {i}}}\n" for i in range(40)))
    ws.commit(ns, "forty small variables")
    stray = Path(ws.store.packs.pack_path("ab" * 32))
    stray.write_bytes(b"half a pack")
    assert ws.fsck().ok
    old = time.time() - 7200
    os.utime(stray, (old, old))
    report = ws.gc()
    assert not stray.exists() and report.temp_files_removed == 1
    got = session_namespace()
    ws.checkout("main", got)
    assert got["v39"] == {"i": 39, "pad": "x" * 39}


def age_packs(ws: Workspace, seconds: float = 7200) -> None:
    old = time.time() - seconds
    for p in (Path(ws.store.root) / packs.PACK_DIR).iterdir():
        os.utime(p, (old, old))
    for name in ws.store.names():
        if os.path.exists(ws.store.path(name)):
            os.utime(ws.store.path(name), (old, old))


def test_gc_rewrites_a_mostly_garbage_pack_and_keeps_a_mostly_live_one(ws):
    code = "".join(f"v{i} = {{'i': {i}, 'pad': 'x' * 300}}\n" for i in range(40))
    ns = session_namespace(code)
    ws.commit(ns, "forty")
    ws.checkout("HEAD", ns, new_branch="exp")
    for i in range(40):  # exp replaces 38 of 40 variables: its pack is all garbage once exp goes
        if i >= 2:
            ns[f"v{i}"] = {"i": -i, "pad": "y" * 300}
    ws.commit(ns, "exp")
    exp_only = {c for g in ws.state("exp").groups.values() for c in g.chunk_names()} - {
        c for g in ws.state("main").groups.values() for c in g.chunk_names()}
    ws.checkout("main", ns, force=True)
    ws.delete_branch("exp")
    age_packs(ws)
    before = set(ws.store.packs.indexes())
    report = ws.gc(reflog_days=0)
    assert exp_only and exp_only <= set(report.deleted) and report.packs_rewritten >= 1
    assert not (exp_only & set(ws.store.names())) and ws.fsck().ok
    got = session_namespace()
    ws.checkout("main", got)
    assert got["v39"] == {"i": 39, "pad": "x" * 300}
    assert before - set(ws.store.packs.indexes())  # the rewritten pack is gone


def test_gc_keeps_a_mostly_live_pack_whole(ws):
    ns = session_namespace("seed = 0\n")
    ws.commit(ns, "start")
    ws.checkout("HEAD", ns, new_branch="tmp")
    for i in range(40):
        ns[f"v{i}"] = {"i": i, "pad": "x" * 300}
    ws.commit(ns, "forty on tmp: one pack")
    state = ws.state("tmp")
    dead = {c for v in ("v0", "v1") for c in state.groups[state.variables[v].group].chunk_names()}
    ws.checkout("main", ns, force=True)
    for i in range(2, 40):  # the same values: stored already, in tmp's pack
        ns[f"v{i}"] = {"i": i, "pad": "x" * 300}
    ws.commit(ns, "38 of them on main")
    ws.delete_branch("tmp")
    age_packs(ws)
    report = ws.gc(reflog_days=0)
    assert report.kept_in_packs == len(dead) and report.packs_rewritten == 0, report
    assert not dead & set(report.deleted) and dead <= set(ws.store.names()) and ws.fsck().ok


# -- remotes (moto S3) ---------------------------------------------------------------------------

def s3_workspace(tmp_path: Path, s3: str, bucket: str, n: int, monkeypatch) -> tuple[Workspace, dict]:
    for k, v in S3_ENV.items():
        monkeypatch.setenv(k, v)
    make_bucket(s3, bucket)
    ws = Workspace.init(tmp_path / "a")
    ns = session_namespace()
    for i in range(n):
        ns[f"v{i}"] = {"id": i, "values": list(range(i % 17, i % 17 + 20))}
    ws.commit(ns, f"{n} small variables")
    ws.remotes.add("origin", str(tmp_path / "r.git"), storage=f"s3://{bucket}/blobs",
                   storage_options={"endpoint_url": s3})
    return ws, ns


def test_first_push_and_clone_of_1000_small_variables_are_a_few_requests(tmp_path, s3, monkeypatch):
    ws, ns = s3_workspace(tmp_path, s3, "packs-thousand", 1000, monkeypatch)
    n0 = len(s3_requests(s3, "packs-thousand"))
    result = ws.push()
    pushed = s3_requests(s3, "packs-thousand")[n0:]
    assert result.blobs_uploaded == 1000 and len(pushed) <= 10, pushed
    n0 = len(s3_requests(s3, "packs-thousand"))
    clone = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "b", storage_options={"endpoint_url": s3},
                            eager=True)
    cloned = s3_requests(s3, "packs-thousand")[n0:]
    assert len(cloned) <= 10, cloned
    got = session_namespace()
    clone.checkout("main", got)
    assert got["v999"] == ns["v999"] and clone.fsck().ok


def test_existence_checks_for_10000_new_blobs_read_the_remote_index(tmp_path, s3, monkeypatch):
    for k, v in S3_ENV.items():
        monkeypatch.setenv(k, v)
    make_bucket(s3, "packs-index")
    ws = Workspace.init(tmp_path / "a")
    ws.remotes.add("origin", str(tmp_path / "r.git"), storage="s3://packs-index/blobs",
                   storage_options={"endpoint_url": s3})
    store = ws.remotes.store("origin")
    held = small_blobs(6000, "held")  # loose, listing them would take 6+ requests of 1,000 names
    store.put_named(held)  # the remote holds these already, in a pack: its index says so
    new = small_blobs(10_000, "new")
    n0 = len(s3_requests(s3, "packs-index"))
    fresh = type(store)(store.url, endpoint_url=s3)  # a new client: nothing cached
    assert fresh.missing([*new, *held]) == set(new)
    asked = s3_requests(s3, "packs-index")[n0:]
    assert len(asked) <= 5, asked


def test_an_old_loose_only_remote_still_reads_and_takes_packs_beside(tmp_path, s3, monkeypatch):
    """A remote written by txgit before packs (one object per blob, no index): clone reads it,
    and the next push adds packs beside the loose blobs."""
    ws, ns = s3_workspace(tmp_path, s3, "packs-old", 100, monkeypatch)
    store = ws.remotes.store("origin")
    store.pack_min_members, store.index_loose = 10**9, False  # what the old writer did
    ws.push()
    assert not [p for m, p in s3_requests(s3, "packs-old") if m == "PUT" and "/packs/" in p]
    clone = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "b", storage_options={"endpoint_url": s3},
                            eager=True)
    got = session_namespace()
    clone.checkout("main", got)
    assert got["v99"] == ns["v99"]
    for i in range(30):
        ns[f"w{i}"] = [i] * 10
    ws.commit(ns, "thirty more")
    ws.remotes._stores.clear()  # a store made now is the new writer
    ws.push()
    assert [p for m, p in s3_requests(s3, "packs-old") if m == "PUT" and p.endswith(".pack")]
    clone.pull(namespace=got)
    assert got["w29"] == [29] * 10 and clone.fsck().ok


def test_a_pack_deleted_from_the_remote_behind_txgits_back_is_sent_again(tmp_path, s3, monkeypatch):
    """The remote index is a hint: the next push sees the pack is gone and uploads its blobs again."""
    import fsspec

    ws, ns = s3_workspace(tmp_path, s3, "packs-deleted", 50, monkeypatch)
    ws.push()
    fs = fsspec.filesystem("s3", endpoint_url=s3, skip_instance_cache=True)
    [pack] = [p for p in fs.ls("packs-deleted/blobs/packs") if p.endswith(".pack")]
    fs.rm(pack)  # behind txgit's back
    ns["extra"] = 1
    ws.commit(ns, "one more")
    result = ws.push()
    assert result.blobs_uploaded == 51, result
    clone = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "b", storage_options={"endpoint_url": s3},
                            eager=True)
    got = session_namespace()
    clone.checkout("main", got)
    assert got["v49"] == ns["v49"] and got["extra"] == 1


def test_fsck_remote_notices_blobs_deleted_behind_txgits_back_and_repair_sends_them(tmp_path, s3, monkeypatch,
                                                                                     run_txgit):
    """The remote index says a loose blob is there; `txgit fsck --remote` lists the storage and knows
    better, and `--repair` uploads it (and a deleted pack's blobs) again."""
    import fsspec
    import numpy as np

    ws, ns = s3_workspace(tmp_path, s3, "packs-fsck", 40, monkeypatch)
    ns["big"] = np.arange(300_000)  # 2.4 MB: loose chunks
    ws.commit(ns, "and a big one")
    ws.push()
    fs = fsspec.filesystem("s3", endpoint_url=s3, skip_instance_cache=True)
    state = ws.state()
    chunk = sorted(state.groups[state.variables["big"].group].chunk_names())[0]
    fs.rm(f"packs-fsck/blobs/{chunk[:2]}/{chunk[2:]}")
    [pack] = [p for p in fs.ls("packs-fsck/blobs/packs") if p.endswith(".pack")]
    members = packs.parse_index(fs.cat(pack.removesuffix(".pack") + ".idx"))
    lost = 1 + sum(1 for off, _ in members.values() if off != packs.LOOSE)  # the chunk, and the pack's members
    fs.rm(pack)
    a = tmp_path / "a"
    assert ws.remotes.store("origin").missing([chunk]) == set()  # the index still vouches for it: a hint
    proc = run_txgit("fsck", "--remote", "origin", cwd=a, env=S3_ENV)
    assert proc.returncode == 1 and f"remote origin lacks blob {chunk}" in proc.stdout, proc.stdout + proc.stderr
    assert proc.stdout.count("remote origin lacks blob") == lost > 40
    assert proc.stderr.count("\n") == 1 and f"{lost} missing" in proc.stderr and "--repair" in proc.stderr
    proc = run_txgit("fsck", "--remote", "origin", "--repair", cwd=a, env=S3_ENV)
    assert proc.returncode == 0 and proc.stdout.strip().endswith(f"ok ({lost} uploaded again)"), proc.stdout + proc.stderr
    proc = run_txgit("fsck", "--remote", "origin", cwd=a, env=S3_ENV)
    assert proc.returncode == 0 and proc.stdout.strip().endswith(": ok"), proc.stdout + proc.stderr
    clone = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "b", storage_options={"endpoint_url": s3},
                            eager=True)
    got = session_namespace()
    clone.checkout("main", got)
    assert got["v39"] == ns["v39"] and int(got["big"][-1]) == 299_999


def test_an_index_that_does_not_parse_is_ignored_not_a_crash(tmp_path):
    store = ObjectStore(str(tmp_path / "objects"))
    blobs = small_blobs(20)
    store.put_named(blobs)
    pack = next(iter(store.packs.indexes()))
    Path(store.packs.index_path(pack)).write_bytes(b"txgit-pack-index 1\nnot a line\n")
    fresh = ObjectStore(str(tmp_path / "objects"))
    assert fresh.missing(blobs) == set(blobs) and pack in fresh.packs.broken
    assert fresh.check(blobs) == dict.fromkeys(blobs, "missing")
    fresh.put_named(blobs)  # the next writer stores them again, in a pack of its own
    assert ObjectStore(str(tmp_path / "objects")).get_many(sorted(blobs)) == blobs


def test_a_workspace_reads_each_remote_index_once(tmp_path, s3, monkeypatch):
    """After many pushes a remote holds many indexes; a new process reads only those pushed since
    its workspace last looked (the others are kept in .txgit/remote-index, checked by their hash)."""
    ws, ns = s3_workspace(tmp_path, s3, "packs-cache", 20, monkeypatch)
    for step in range(5):
        for i in range(20):
            ns[f"v{i}"] = {"step": step, "i": i}
        ws.commit(ns, f"step {step}")
        ws.push()
    names = ws.remotes._blobs_of([ws.history.head_commit()])[0]
    again = Workspace.open(tmp_path / "a")  # a new process, as the next `txgit push` is
    n0 = len(s3_requests(s3, "packs-cache"))
    assert again.remotes.store("origin").missing(names) == set()
    asked = s3_requests(s3, "packs-cache")[n0:]
    assert len(asked) == 1 and asked[0][0] == "GET" and "list-type" in asked[0][1], asked
    # a tampered copy is not believed: it is read from the remote again
    cached = sorted((tmp_path / "a" / ".txgit" / "remote-index").iterdir())
    assert len(cached) >= 5
    cached[0].write_bytes(b"txgit-pack-index 1\n")
    n0 = len(s3_requests(s3, "packs-cache"))
    assert Workspace.open(tmp_path / "a").remotes.store("origin").missing(names) == set()
    assert len(s3_requests(s3, "packs-cache")[n0:]) == 2


def test_a_rewrite_carries_the_good_copy_of_a_damaged_member_never_the_damage(tmp_path):
    blobs = small_blobs(30)
    store = ObjectStore(str(tmp_path / "objects"))
    backup = ObjectStore(str(tmp_path / "backup"))
    store.put_named(blobs)
    backup.put_named(blobs)
    damaged, dropped = sorted(blobs)[3], sorted(blobs)[4]
    member = store.packs.where[damaged]
    with open(store.packs.pack_path(member.pack), "r+b") as f:
        f.seek(member.offset)
        f.write(b"#")
    with pytest.raises(CorruptBlob):  # no good copy yet: the rewrite stops, the pack stays as it was
        store.rewrite_packs(keep=lambda n, m: n != dropped, packs=[member.pack])
    assert member.pack in store.packs.indexes()
    store.repair_from([damaged], [backup])  # a good loose copy
    gone, _ = store.rewrite_packs(keep=lambda n, m: n != dropped, packs=[member.pack])
    assert gone == [dropped] and member.pack not in store.packs.indexes()
    os.unlink(store.path(damaged))  # the new pack alone must hold the good bytes
    fresh = ObjectStore(str(tmp_path / "objects"))
    assert fresh.get(damaged) == blobs[damaged] and fresh.missing(blobs) == {dropped}
