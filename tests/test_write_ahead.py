"""Large chunks written while the rest of the commit is still pickled and hashed (issue 19, item 2):
the same bytes, the same counts and the same guarantees as writing them all at the end."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from txgit import Workspace
from txgit.errors import CorruptBlob
from txgit.state.snapshot import CHUNK_SIZE, SINK_BATCH, snapshot
from txgit.storage import ObjectStore, hash_bytes

MB = 1 << 20


def _namespace() -> dict:
    rng = np.random.default_rng(3)
    return {
        "__name__": "__main__",
        "big": rng.standard_normal(3 * MB // 8 * 4),  # 12 MiB: more than one batch of SINK_BATCH chunks
        "mid": np.arange(300_000, dtype=np.int64),  # 2.3 MiB: one batch, its last chunk small
        "small": np.arange(1000),  # in-band: never handed over
        "rows": [{"i": i, "name": f"row-{i:07d}"} for i in range(60_000)],  # a skeleton over 1 MiB
    }


def test_snapshot_hands_each_large_buffer_to_the_sink_in_batches_as_it_is_hashed():
    ns = _namespace()
    batches: list[dict] = []
    snap = snapshot(ns, sink=lambda chunks: batches.append(dict(chunks)))
    sunk = {n: bytes(d) for b in batches for n, d in b.items()}
    big_chunks = set(snap.groups[snap.variables["big"].group].streams[1].chunks)
    mid_chunks = set(snap.groups[snap.variables["mid"].group].streams[1].chunks)
    rows_skeleton = snap.groups[snap.variables["rows"].group].streams[0]
    assert rows_skeleton.size > CHUNK_SIZE  # large, but a skeleton: written with the rest
    assert set(sunk) == big_chunks | mid_chunks
    assert all(len(b) <= SINK_BATCH for b in batches) and len(batches) >= 3
    assert all(hash_bytes(d) == n and bytes(snap.chunks[n]) == d for n, d in sunk.items())


def test_a_commit_written_ahead_checks_out_byte_exact_and_counts_every_byte(tmp_path):
    ns = _namespace()
    ws = Workspace.init(tmp_path / "ws")
    first = ws.commit(ns, "first")
    objects = Path(ws.store.root)
    loose = sum(f.stat().st_size for f in objects.rglob("*") if f.is_file() and len(f.parent.name) == 2)
    packed = sum(m.length for m in ws.store.packs.packed().values())
    assert first.bytes_written == loose + packed
    assert first.blobs_written == len(list(ws.store.names()))
    assert not [f for f in objects.rglob(".tmp-*")]
    again = ws.commit(ns, "same again")
    assert again.bytes_written == 0 and again.blobs_written == 0
    target: dict = {"__name__": "__main__"}
    Workspace.open(tmp_path / "ws").checkout(first.info.id, target, force=True)
    for name in ("big", "mid", "small"):
        assert target[name].dtype == ns[name].dtype and target[name].tobytes() == ns[name].tobytes()
    assert target["rows"] == ns["rows"]
    assert ws.fsck().ok


def test_a_chunk_written_ahead_and_then_damaged_is_refused_on_checkout(tmp_path):
    ns = _namespace()
    ws = Workspace.init(tmp_path / "ws")
    ws.commit(ns, "first")
    state = ws.state()
    name = state.groups[state.variables["big"].group].streams[1].chunks[5]
    member = ws.store.packs.packed()[name]  # the commit's large chunks are in one pack
    with open(ws.store.packs.pack_path(member.pack), "r+b") as f:
        f.seek(member.offset + 1000)
        f.write(b"\xff" * 8)
    target: dict = {"__name__": "__main__"}
    with pytest.raises(CorruptBlob, match=name[:12]):
        Workspace.open(tmp_path / "ws").checkout("HEAD", target, force=True)
    assert "big" not in target


def test_a_failed_write_ahead_moves_no_ref_and_the_next_commit_completes(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    ns = {"__name__": "__main__", "x": 1}
    base = ws.commit(ns, "base").info.id
    ns.update(_namespace())
    # a real write failure for the large chunks: their pack folder's place is taken by a file
    blocker = Path(ws.store.packs.dir)
    blocker.rmdir()  # made by init, and empty: the first commit's one small blob is loose
    blocker.write_bytes(b"")
    with pytest.raises(OSError):
        ws.commit(ns, "cannot be stored")
    assert ws.head().id == base
    assert not [p for p in Path(ws.store.root).rglob(".tmp-*")]
    os.unlink(blocker)
    done = ws.commit(ns, "stored")
    assert done.info.parents == [base]
    target: dict = {"__name__": "__main__"}
    Workspace.open(tmp_path / "ws").checkout("HEAD", target, force=True)
    assert target["big"].tobytes() == ns["big"].tobytes()
    assert ws.fsck().ok


def test_write_ahead_skips_blobs_the_store_has_and_leaves_small_ones_to_packs(tmp_path):
    store = ObjectStore(str(tmp_path / "objects"))
    data = np.random.default_rng(5).bytes(3 * MB)
    chunks = {hash_bytes(data[i : i + MB]): memoryview(data)[i : i + MB] for i in range(0, len(data), MB)}
    tiny = {hash_bytes(b"tiny"): memoryview(b"tiny")}
    first = sorted(chunks)[0]
    store.put_named({first: chunks[first]})
    ahead = store.write_ahead()
    ahead.submit({**chunks, **tiny})
    ahead.wait()
    assert store.missing(chunks) == set() and store.missing(tiny) == set(tiny)
    assert store.stats.blobs_written == 1 + 2 and store.stats.bytes_written == 3 * MB
    assert ahead.names == set(chunks)
    assert ObjectStore(f"memory://txgit-ahead-{os.getpid()}").write_ahead() is None
