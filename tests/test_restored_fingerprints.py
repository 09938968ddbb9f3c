"""After a checkout, the restored buffers' fingerprints are reused by address instead of being
computed a second time (issue 19, item 1); what is committed afterwards is still what the values hold."""

from __future__ import annotations

import numpy as np
import pandas as pd

from txgit import Workspace
from txgit.state import Fingerprints, restore
from txgit.state.snapshot import fingerprint_stream


def _namespace() -> dict:
    rng = np.random.default_rng(11)
    return {
        "__name__": "__main__",
        "arr": rng.standard_normal(400_000),
        "df": pd.DataFrame({"a": rng.integers(0, 9, 200_000), "b": rng.random(200_000)}),
        "small": [1, 2, 3],
    }


def test_restore_knows_its_buffers_by_address_and_nothing_else(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    ws.commit(_namespace(), "one")
    state = ws.state()
    fps = Fingerprints()
    values = restore(state.variables, state.groups, ws.blobs.get_many, {}, fps, join=ws.blobs.read_joined)
    arr = values["arr"]
    view = memoryview(arr).cast("B")
    assert fps.known(view) == fingerprint_stream(view) and fps[fps.known(view)]
    assert fps.known(view[8:]) is None  # not the whole buffer
    assert fps.known(memoryview(arr.copy()).cast("B")) is None  # equal bytes elsewhere: not known by address
    assert fps.known(memoryview(bytes(view))) is None  # read-only
    assert len(fps.buffers) == len([k for k in fps])


def test_after_a_checkout_an_unchanged_value_commits_as_unchanged_and_a_changed_one_as_changed(tmp_path):
    ns = _namespace()
    Workspace.init(tmp_path / "ws").commit(ns, "one")
    ws = Workspace.open(tmp_path / "ws")
    target: dict = {"__name__": "__main__"}
    ws.checkout("HEAD", target, force=True)
    same = ws.commit(target, "nothing changed")
    assert same.bytes_written == 0 and ws.diff("HEAD~1", "HEAD").empty
    target["arr"][1000:1010] = 7.0  # in place, in the very buffer the checkout fingerprinted
    target["df"].loc[5, "b"] = -1.0
    changed = ws.commit(target, "changed in place")
    assert changed.bytes_written > 0 and sorted(ws.diff("HEAD~1", "HEAD").changed) == ["arr", "df"]
    again: dict = {"__name__": "__main__"}
    Workspace.open(tmp_path / "ws").checkout("HEAD", again, force=True)
    assert again["arr"].tobytes() == target["arr"].tobytes()
    assert again["df"].equals(target["df"]) and again["df"].loc[5, "b"] == -1.0


def test_fingerprints_made_from_the_pieces_a_checkout_read_equal_those_of_the_whole_buffers():
    import xxhash

    from txgit.state.snapshot import CHUNK_SIZE, fingerprint_of_pieces

    data = memoryview(np.random.default_rng(2).bytes(3 * CHUNK_SIZE + 5))
    for size in (1, 70_000, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE, 3 * CHUNK_SIZE + 5):
        view = data[:size]
        pieces = [(len(view[i : i + CHUNK_SIZE]), xxhash.xxh3_128_digest(view[i : i + CHUNK_SIZE]))
                  for i in range(0, size, CHUNK_SIZE)]
        assert fingerprint_of_pieces(size, pieces) == fingerprint_stream(view)
    # cut another way: no fingerprint from its pieces (the whole buffer is read instead)
    half = CHUNK_SIZE // 2
    odd = [(half, xxhash.xxh3_128_digest(data[i : i + half])) for i in range(0, 2 * CHUNK_SIZE, half)]
    assert fingerprint_of_pieces(2 * CHUNK_SIZE, odd) is None
    assert fingerprint_of_pieces(10, [(4, b"x" * 16)]) is None
    assert fingerprint_of_pieces(3 * CHUNK_SIZE, [(CHUNK_SIZE, b"x" * 16)] * 2) is None  # short of its size


def test_a_checkout_learns_the_same_fingerprints_as_a_restore_that_reads_whole_buffers(tmp_path):
    ns = _namespace()
    ws = Workspace.init(tmp_path / "ws")
    ws.commit(ns, "one")
    state = ws.state()
    joined, fetched = Fingerprints(), Fingerprints()
    restore(state.variables, state.groups, ws.blobs.get_many, {}, joined, join=ws.blobs.read_joined)
    restore(state.variables, state.groups, ws.blobs.get_many, {}, fetched)  # no join: fingerprinted whole
    assert len(joined) >= 3 and dict(joined) == dict(fetched)
    # the next commit of the unchanged values finds every buffer in the cache: nothing is hashed again
    ws2 = Workspace.open(tmp_path / "ws")
    target: dict = {"__name__": "__main__"}
    ws2.checkout("HEAD", target, force=True)
    assert all(ws2.stream_cache.get(key) == chunks for key, chunks in joined.items())
