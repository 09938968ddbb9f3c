"""The content-addressed store: names, atomic writes, verified reads, batches, fallbacks."""

from __future__ import annotations

import os
import uuid

import pytest

from txgit.errors import CorruptBlob, MissingBlob
from txgit.storage import ObjectStore, StoreChain, hash_bytes


@pytest.fixture(params=["local", "memory"])
def store(request, tmp_path) -> ObjectStore:
    if request.param == "local":
        return ObjectStore(str(tmp_path / "objects"))
    return ObjectStore(f"memory://txgit-test-{uuid.uuid4().hex}")


def test_put_names_blob_by_blake3_in_fanout_layout(store):
    name = store.put(b"hello")
    assert name == hash_bytes(b"hello") and len(name) == 64
    assert store.path(name).endswith(f"/{name[:2]}/{name[2:]}")
    assert store.get(name) == b"hello"
    assert list(store.names()) == [name]


def test_put_skips_blobs_already_present(store):
    blobs = {hash_bytes(d): d for d in (b"a", b"b", b"c")}
    assert store.put_named(blobs) == 3
    assert store.stats.blobs_written == 3
    assert store.put_named(blobs) == 0
    assert store.stats.blobs_written == 3


def test_missing_answers_for_a_batch(store):
    present = [store.put(bytes([i])) for i in range(5)]
    absent = [hash_bytes(b"x%d" % i) for i in range(3)]
    assert store.missing(present + absent) == set(absent)


def test_missing_lists_the_store_once_for_large_batches(store):
    present = {hash_bytes(b"%d" % i): b"%d" % i for i in range(300)}
    store.put_named(present)
    absent = {hash_bytes(b"no%d" % i) for i in range(10)}
    assert store.missing(list(present) + list(absent)) == absent


def test_put_refuses_bytes_under_a_wrong_name(store):
    with pytest.raises(Exception, match="hash to another name"):
        store.put_named({hash_bytes(b"a"): b"b"})
    assert list(store.names()) == []


def test_corrupted_blob_is_an_error_naming_it(tmp_path):
    store = ObjectStore(str(tmp_path / "o"))
    name = store.put(b"precious bytes")
    path = store.path(name)
    data = bytearray(open(path, "rb").read())
    data[0] ^= 0xFF
    open(path, "wb").write(bytes(data))
    with pytest.raises(CorruptBlob, match=name):
        store.get(name)


def test_truncated_blob_is_detected(tmp_path):
    store = ObjectStore(str(tmp_path / "o"))
    name = store.put(b"x" * 1000)
    with open(store.path(name), "r+b") as f:
        f.truncate(10)
    with pytest.raises(CorruptBlob):
        store.get(name)


def test_missing_blob_is_an_error_naming_it(store):
    name = hash_bytes(b"never stored")
    with pytest.raises(MissingBlob, match=name[:12]):
        store.get(name)


def test_temp_files_of_an_interrupted_write_are_not_blobs(tmp_path):
    store = ObjectStore(str(tmp_path / "o"))
    name = store.put(b"done")
    # what a writer killed before its rename leaves behind
    stray = os.path.join(os.path.dirname(store.path(name)), ".tmp-deadbeef")
    open(stray, "wb").write(b"half")
    assert list(store.names()) == [name]
    assert store.get(name) == b"done"


def test_chain_fetches_from_fallback_verifies_and_caches(tmp_path):
    local = ObjectStore(str(tmp_path / "local"))
    remote = ObjectStore(str(tmp_path / "remote"))
    name = remote.put(b"from afar")
    chain = StoreChain(local, [remote])
    assert chain.get_many([name]) == {name: b"from afar"}
    assert local.has(name)
    remote.stats.reset()
    chain.get_many([name])
    assert remote.stats.blobs_read == 0  # served from the cache now


def test_chain_refuses_a_tampered_fallback_blob(tmp_path):
    local = ObjectStore(str(tmp_path / "local"))
    remote = ObjectStore(str(tmp_path / "remote"))
    name = remote.put(b"original")
    open(remote.path(name), "wb").write(b"evil")
    with pytest.raises(CorruptBlob):
        StoreChain(local, [remote]).get_many([name])
    assert not local.has(name)


def test_chain_reports_a_blob_no_store_has(tmp_path):
    chain = StoreChain(ObjectStore(str(tmp_path / "l")), [ObjectStore(str(tmp_path / "r"))])
    with pytest.raises(MissingBlob, match="looked in"):
        chain.get_many([hash_bytes(b"nowhere")])


# -- read_joined: runs of blobs read straight into one buffer each (a checkout's large arrays) --------

def _runs(store: ObjectStore, sizes: list[list[int]], seed: int = 7) -> tuple[list[list[str]], list[bytes]]:
    """Runs of distinct random blobs stored in ``store``: their names and each run's bytes joined."""
    import random

    rnd = random.Random(seed)
    runs, joined = [], []
    for run in sizes:
        pieces = [rnd.randbytes(n) for n in run]
        runs.append([store.put(p) for p in pieces])
        joined.append(b"".join(pieces))
    return runs, joined


def test_read_joined_lays_runs_out_byte_exact_in_writable_buffers(store):
    runs, joined = _runs(store, [[1 << 20, 1 << 20, 1 << 20, 12345], [7], [300_000, 5], [0]])
    store.stats.reset()
    out = store.read_joined(runs, [len(j) for j in joined])
    assert [bytes(b) for b in out] == joined
    assert not any(memoryview(b).readonly for b in out)  # arrays restored on them stay writable
    assert store.stats.blobs_read == sum(len(r) for r in runs)
    assert store.stats.bytes_read == sum(len(j) for j in joined)


def test_read_joined_refuses_a_corrupted_blob_in_the_middle_of_a_run(tmp_path):
    store = ObjectStore(str(tmp_path / "o"))
    runs, joined = _runs(store, [[1 << 20] * 6, [100]])
    bad = runs[0][3]
    with open(store.path(bad), "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(CorruptBlob, match=bad):
        store.read_joined(runs, [len(j) for j in joined])


@pytest.mark.parametrize("how", ["truncated", "longer"])
def test_read_joined_refuses_a_blob_of_the_wrong_length(tmp_path, how):
    store = ObjectStore(str(tmp_path / "o"))
    runs, joined = _runs(store, [[1 << 20] * 3])
    bad = runs[0][1]
    with open(store.path(bad), "r+b") as f:
        if how == "truncated":
            f.truncate(1000)
        else:
            f.seek(0, 2)
            f.write(b"x")
    with pytest.raises(CorruptBlob, match=bad):
        store.read_joined(runs, [len(joined[0])])


def test_read_joined_reports_a_missing_blob(store):
    runs, joined = _runs(store, [[5000, 6000]])
    gone = hash_bytes(b"never stored")
    with pytest.raises(MissingBlob, match=gone[:12]):
        store.read_joined([runs[0] + [gone]], [len(joined[0]) + 1])


def test_read_joined_answers_none_for_a_run_whose_sound_blobs_do_not_add_up(store):
    # every blob is intact but the caller's size is wrong (a damaged record): no buffer of that size
    runs, joined = _runs(store, [[5000, 6000], [10]])
    out = store.read_joined(runs, [len(joined[0]) + 1, len(joined[1])])
    assert out[0] is None and bytes(out[1]) == joined[1]


def test_chain_read_joined_fetches_what_the_cache_lacks(tmp_path):
    local = ObjectStore(str(tmp_path / "local"))
    remote = ObjectStore(str(tmp_path / "remote"))
    runs, joined = _runs(remote, [[200_000, 3]])
    runs_local, joined_local = _runs(local, [[4000]], seed=8)
    chain = StoreChain(local, [remote])
    out = chain.read_joined(runs + runs_local, [len(joined[0]), len(joined_local[0])])
    assert [bytes(b) for b in out] == joined + joined_local
    assert not local.missing(runs[0])


def test_missing_of_many_names_in_an_empty_local_store_stats_none_of_them(tmp_path, monkeypatch):
    # a fresh clone asks its empty store about every blob of the state: one listing answers
    store = ObjectStore(str(tmp_path / "objects"))
    wanted = {hash_bytes(b"%d" % i) for i in range(1000)}
    looked = []
    real_exists = os.path.exists

    def counting_exists(path):
        if str(path).startswith(store.root + "/"):
            looked.append(path)
        return real_exists(path)
    monkeypatch.setattr(os.path, "exists", counting_exists)
    assert store.missing(wanted) == wanted
    assert len(looked) < 10, f"{len(looked)} stats for an empty store"


def test_missing_of_many_names_finds_loose_blobs_beside_absent_ones(tmp_path):
    store = ObjectStore(str(tmp_path / "objects"))
    present = [store.put(b"loose %d" % i) for i in range(20)]  # one at a time: loose files
    assert all(os.path.exists(store.path(n)) for n in present)
    absent = {hash_bytes(b"absent %d" % i) for i in range(400)}
    assert store.missing(present + sorted(absent)) == absent
    with pytest.raises(Exception, match="not a blake3 hash"):
        store.missing(sorted(absent) + ["../../etc/passwd"])  # a bad name is refused, stat or not
