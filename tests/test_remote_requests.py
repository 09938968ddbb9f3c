"""What a push and a clone ask of an S3 storage (moto's server, through s3fs), request by request.

A first push to an empty storage lists each folder once (s3fs's own ``find``/``ls`` asked twice
where nothing was found); reads never ask a blob's size first; and workspaces of one process
share one S3 client for equal options and credentials, a new one when the credentials change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import session_namespace
from servers import S3_ENV, make_bucket, moto_s3, s3_requests
from txgit import Workspace


@pytest.fixture(scope="module")
def s3():
    with moto_s3() as endpoint:
        yield endpoint


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
    # the pack folder and the blob folder listed once each (empty), then the pack and its index
    assert _kinds(s3_requests(s3, "req-small")[n0:]) == ["LIST", "LIST", "PUT", "PUT"]
    n0 = len(s3_requests(s3, "req-small"))
    clone = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "b", storage_options={"endpoint_url": s3},
                            eager=True)
    # the pack folder listed, the index and the pack read: no size asked first
    assert _kinds(s3_requests(s3, "req-small")[n0:]) == ["GET", "GET", "LIST"]
    got = session_namespace()
    clone.checkout("main", got)
    assert got["v299"] == ns["v299"]


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
