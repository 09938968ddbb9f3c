"""What a push and a clone ask of an S3 storage (moto's server, through s3fs), request by request.

A first push to an empty storage lists each folder once (s3fs's own ``find``/``ls`` asked twice
where nothing was found); reads never ask a blob's size first; and workspaces of one process
share one S3 client for equal options and credentials, a new one when the credentials change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import session_namespace
from servers import S3_ENV, make_bucket, s3_requests
from txgit import Workspace


def _workspace(tmp_path: Path, s3: str, bucket: str, ns: dict, monkeypatch) -> Workspace:
    for k, v in S3_ENV.items():
        monkeypatch.setenv(k, v)
    make_bucket(s3, bucket)
    ws = Workspace.init(tmp_path / "a")
    ws.commit(ns, "state")
    ws.remotes.add("origin", str(tmp_path / "r.git"), storage=f"s3://{bucket}/blobs",
                   storage_options={"endpoint_url": s3})
    return ws


def _kinds(requests: list[tuple[str, str]]) -> list[str]:
    """Each request as LIST, HEAD, GET or PUT (a listing is a GET on the bucket with list-type)."""
    return sorted("LIST" if m == "GET" and "list-type=" in p else m for m, p in requests)


def test_first_push_and_clone_of_small_variables_ask_no_more_than_needed(tmp_path, s3, monkeypatch):
    ns = session_namespace()
    for i in range(300):
        ns[f"v{i}"] = {"id": i, "values": list(range(i % 17, i % 17 + 20))}
    ws = _workspace(tmp_path, s3, "req-small", ns, monkeypatch)
    n0 = len(s3_requests(s3, "req-small"))
    assert ws.push().blobs_uploaded == 300
    # a first push to a new git remote: the storage listed once (packs and loose blobs), then the
    # pack and its index
    assert _kinds(s3_requests(s3, "req-small")[n0:]) == ["LIST", "PUT", "PUT"]
    n0 = len(s3_requests(s3, "req-small"))
    clone = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "b", storage_options={"endpoint_url": s3},
                            eager=True)
    # the git data names the remote's indexes (the push writes their names in refs/txgit/config): no
    # listing, the index and the pack read; no size asked first
    assert _kinds(s3_requests(s3, "req-small")[n0:]) == ["GET", "GET"]
    got = session_namespace()
    clone.checkout("main", got)
    assert got["v299"] == ns["v299"]


def test_a_clone_of_a_remote_whose_git_data_carries_no_index_lists_the_storage(tmp_path, s3, monkeypatch):
    """A remote pushed by an older txgit (its refs/txgit/config records the storage only): the clone
    lists the pack folder and reads the index, as before."""
    import pygit2

    from txgit.remote import CONFIG_REF, _config_commit

    ns = session_namespace()
    for i in range(100):
        ns[f"v{i}"] = {"id": i}
    ws = _workspace(tmp_path, s3, "req-old-config", ns, monkeypatch)
    ws.push()
    bare = pygit2.Repository(str(tmp_path / "r.git"))
    old = _config_commit(bare, {"storage": "s3://req-old-config/blobs"})  # no index beside the record
    assert len(bare[bare.references[CONFIG_REF].target].peel(pygit2.Commit).tree) > 1  # this one had it
    bare.references.create(CONFIG_REF, old, force=True)
    n0 = len(s3_requests(s3, "req-old-config"))
    clone = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "b", storage_options={"endpoint_url": s3},
                            eager=True)
    assert _kinds(s3_requests(s3, "req-old-config")[n0:]) == ["GET", "GET", "LIST"]
    got = session_namespace()
    clone.checkout("main", got)
    assert got["v99"] == {"id": 99} and clone.fsck().ok


def test_a_clone_whose_carried_index_names_a_gone_pack_reads_the_storage_itself(tmp_path, s3, monkeypatch):
    """The indexes named in git are a hint: the pack deleted behind txgit's back (its index left) and
    its blobs stored in another pack, a clone finds them (the pack not found, then the storage listed)."""
    import fsspec

    from txgit.storage import hash_bytes

    ns = session_namespace()
    for i in range(100):
        ns[f"v{i}"] = {"id": i}
    ws = _workspace(tmp_path, s3, "req-gone", ns, monkeypatch)
    ws.push()
    fs = fsspec.filesystem("s3", endpoint_url=s3, skip_instance_cache=True)
    for path in fs.ls("req-gone/blobs/packs"):
        if path.endswith(".pack"):
            fs.rm(path)  # the pack gone, its index left
    blobs = ws.store.get_many(ws.remotes._blobs_of([ws.history.head_commit()])[0])
    extra = b"another blob"
    # the blobs back in another pack (as a repack would leave them), which git does not name
    ws.remotes.store("origin").write_blobs({**blobs, hash_bytes(extra): extra})
    n0 = len(s3_requests(s3, "req-gone"))
    clone = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "b", storage_options={"endpoint_url": s3},
                            eager=True)
    # not a request per blob
    assert len(s3_requests(s3, "req-gone")[n0:]) <= 6, s3_requests(s3, "req-gone")[n0:]
    got = session_namespace()
    clone.checkout("main", got)
    assert got["v99"] == {"id": 99} and clone.fsck().ok


def test_reading_large_chunks_asks_no_sizes_first(tmp_path, s3, monkeypatch):
    ns = session_namespace()
    ns["arr"] = np.random.default_rng(1).random(3 * (1 << 20) // 8)  # three loose 1 MiB chunks
    ws = _workspace(tmp_path, s3, "req-large", ns, monkeypatch)
    ws.push()
    clone = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "b", storage_options={"endpoint_url": s3})
    n0 = len(s3_requests(s3, "req-large"))
    got = session_namespace()
    clone.checkout("main", got)  # the chunks come on demand
    asked = _kinds(s3_requests(s3, "req-large")[n0:])
    assert np.array_equal(got["arr"], ns["arr"])
    assert "HEAD" not in asked and asked.count("GET") >= 3, asked


def test_workspaces_of_one_process_share_an_s3_client_until_credentials_change(tmp_path, s3, monkeypatch):
    ns = session_namespace()
    ns["x"] = 1
    ws = _workspace(tmp_path, s3, "req-shared", ns, monkeypatch)
    ws.push()
    clone = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "b", storage_options={"endpoint_url": s3})
    fs = ws.remotes.store("origin").fs
    assert clone.remotes.store("origin").fs is fs  # the client the pushing workspace made (and warmed)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "someone-else")
    other = clone.remotes.store("origin")
    assert other.fs is not fs  # keys set since are used: a new client
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_ENV["AWS_ACCESS_KEY_ID"])
    ws.remotes.set_storage("origin", "s3://req-shared/blobs", storage_options={"endpoint_url": s3 + "/"})
    assert ws.remotes.store("origin").fs is not fs  # other options: another client
    got = session_namespace()
    clone.checkout("main", got)
    assert got["x"] == 1


def test_a_new_git_remote_on_a_used_storage_sends_only_what_the_storage_lacks(tmp_path, s3, monkeypatch):
    # the one listing of a first push finds packed blobs (through their index) and loose ones alike
    ns = session_namespace()
    for i in range(200):
        ns[f"v{i}"] = {"id": i, "values": list(range(i % 17, i % 17 + 20))}
    ns["big"] = np.arange(300_000, dtype=np.float64)  # 2.4 MB: chunks kept loose on the storage
    ws = _workspace(tmp_path, s3, "req-used", ns, monkeypatch)
    assert ws.push().blobs_uploaded > 200
    other = Workspace.init(tmp_path / "other")
    ns["v0"] = {"id": -1}
    other.commit(ns, "same state but v0")
    other.remotes.add("origin", str(tmp_path / "r2.git"), storage="s3://req-used/blobs",
                      storage_options={"endpoint_url": s3})
    n0 = len(s3_requests(s3, "req-used"))
    pushed = other.push()
    assert pushed.blobs_uploaded == 1  # v0's new blob only
    # the storage listed once and its indexes read (nothing asked per blob), then the new blob and
    # an index naming it
    asked = s3_requests(s3, "req-used")[n0:]
    assert _kinds(asked).count("LIST") == 1 and "HEAD" not in _kinds(asked)
    assert all(p.endswith(".idx") for m, p in asked if m == "GET" and "list-type=" not in p)
    assert _kinds(asked).count("PUT") == 2
    clone = Workspace.clone(str(tmp_path / "r2.git"), tmp_path / "c", storage_options={"endpoint_url": s3},
                            eager=True)
    got = session_namespace()
    clone.checkout("main", got)
    assert got["v0"] == {"id": -1} and got["v199"] == ns["v199"] and np.array_equal(got["big"], ns["big"])


def test_a_first_push_that_creates_its_git_remote_lists_the_storage_once_even_for_a_few_blobs(tmp_path, s3,
                                                                                             monkeypatch):
    """A git remote this push creates has no refs and its storage most likely nothing: one listing
    (begun while the repository is made and the records read), not an existence check per blob."""
    ns = session_namespace()
    ns["arr"] = np.random.default_rng(2).random(3 * (1 << 20) // 8)  # three 1 MiB chunks, loose there
    ns["x"] = 1
    ws = _workspace(tmp_path, s3, "req-created", ns, monkeypatch)
    n0 = len(s3_requests(s3, "req-created"))
    pushed = ws.push()
    asked = _kinds(s3_requests(s3, "req-created")[n0:])
    assert asked.count("LIST") == 1 and "HEAD" not in asked, asked
    assert asked.count("PUT") >= pushed.blobs_uploaded >= 3
    clone = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "b", storage_options={"endpoint_url": s3},
                            eager=True)
    got = session_namespace()
    clone.checkout("main", got)
    assert np.array_equal(got["arr"], ns["arr"]) and got["x"] == 1


def test_an_eager_clone_reads_a_named_pack_with_its_index_and_still_checks_every_member(tmp_path, s3, monkeypatch):
    """An eager clone reads the pack named in git in the same call as its index (one wait, not two);
    its members are hashed all the same: a pack altered on the storage (same length) is refused and
    the half-made clone removed."""
    import fsspec

    from txgit.errors import CorruptBlob

    ns = session_namespace()
    for i in range(100):
        ns[f"v{i}"] = {"id": i, "values": list(range(20))}
    ws = _workspace(tmp_path, s3, "req-altered", ns, monkeypatch)
    ws.push()
    n0 = len(s3_requests(s3, "req-altered"))
    good = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "good", storage_options={"endpoint_url": s3},
                           eager=True)
    assert _kinds(s3_requests(s3, "req-altered")[n0:]) == ["GET", "GET"]
    assert good.fsck().ok
    fs = fsspec.filesystem("s3", endpoint_url=s3, skip_instance_cache=True)
    (pack,) = [p for p in fs.ls("req-altered/blobs/packs") if p.endswith(".pack")]
    data = bytearray(fs.cat_file(pack))
    data[len(data) // 2] ^= 0xFF
    fs.pipe_file(pack, bytes(data))
    with pytest.raises(CorruptBlob):
        Workspace.clone(str(tmp_path / "r.git"), tmp_path / "bad", storage_options={"endpoint_url": s3},
                        eager=True)
    assert not (tmp_path / "bad").exists()
