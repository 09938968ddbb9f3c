"""Shared fixtures: temporary workspaces and a helper to run the real `txgit` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Tests, and every process they start (CLI, kernels, scripts), use this checkout's txgit.
ROOT = Path(__file__).resolve().parent.parent
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from txgit import Workspace  # noqa: E402


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace.init(tmp_path / "ws")


def session_namespace(code: str = "") -> dict:
    """A namespace as a script or kernel has it: functions defined here belong to `__main__`."""
    ns: dict = {"__name__": "__main__", "__builtins__": __builtins__}
    if code:
        exec(code, ns)
    return ns


def clone_change_push(url: str, folder: Path, message: str, changes: dict, **clone_options) -> Workspace:
    """A collaborator (Bob, with no kernel): ``url`` cloned into ``folder`` (``clone_options`` as for
    :meth:`Workspace.clone`), main checked out, ``changes`` set, committed as ``message`` and pushed."""
    bob = Workspace.clone(url, folder, **clone_options)
    ns: dict = {}
    bob.checkout("main", ns)
    ns.update(changes)
    bob.commit(ns, message)
    bob.push()
    return bob


def damage_blob(store, name: str, data: bytes | None = b"bit rot") -> None:
    """Bit rot in one stored blob, wherever the store keeps it: a loose file is overwritten with
    ``data``; a packed member (a commit's blobs share one pack) gets ``data`` over its first bytes.
    ``data=None``: one byte in the middle of the blob flipped instead."""
    store.packs.refresh()
    member = store.packs.packed().get(name)
    if member is None:
        path, offset, length = Path(store.path(name)), 0, os.path.getsize(store.path(name))
        if data is not None:
            path.write_bytes(data)
            return
    else:
        path, offset, length = Path(store.packs.pack_path(member.pack)), member.offset, member.length
    with open(path, "r+b") as f:
        if data is None:
            f.seek(offset + length // 2)
            byte = f.read(1)[0]
            f.seek(offset + length // 2)
            f.write(bytes([byte ^ 0xFF]))
        else:
            f.seek(offset)
            f.write(data[:length])


def remove_blob(store, name: str) -> None:
    """One blob gone from a store, loose or packed (its pack is rewritten without it)."""
    store.packs.refresh()
    member = store.packs.packed().get(name)
    if member is None:
        Path(store.path(name)).unlink()
    else:
        store.rewrite_packs(keep=lambda n, m: n != name, packs=[member.pack])


@pytest.fixture
def run_txgit():
    """Run the installed CLI in a subprocess, as a user would."""

    def run(*args: str, cwd: Path, check: bool = False, env: dict | None = None,
            timeout: float | None = None) -> subprocess.CompletedProcess:
        # timeout: for commands that could hang (an unresponsive remote): the test fails instead
        proc = subprocess.run(
            [sys.executable, "-m", "txgit", *args],
            cwd=cwd, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200", **(env or {})},
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"txgit {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    return run


# -- shared remotes: moto's S3 server, and a git daemon remote with its blobs in a folder or in S3 ----------
@pytest.fixture(scope="module")
def s3():
    """moto's S3 server on 127.0.0.1, one per test module that asks for it: its endpoint URL."""
    from servers import moto_s3

    with moto_s3() as endpoint:
        yield endpoint


@pytest.fixture
def shared(tmp_path, request):
    """(git URL, remote-add args, clone args, env) of a fresh shared remote: a bare repository served by
    git daemon, its blobs in a folder or an S3 bucket."""
    from servers import S3_ENV, git_daemon, init_bare, make_bucket

    base = tmp_path / "served"
    base.mkdir()
    init_bare(base / "team.git")
    with git_daemon(base) as url:
        if request.param == "folder":
            yield f"{url}/team.git", ["--storage", str(tmp_path / "team-blobs")], [], {}
        else:
            endpoint = request.getfixturevalue("s3")
            for k, v in S3_ENV.items():  # this process reads the remote too (a third person's clone)
                request.getfixturevalue("monkeypatch").setenv(k, v)
            bucket = f"team-{tmp_path.name.lower().replace('_', '-')[-40:]}"
            make_bucket(endpoint, bucket)
            opt = ["--storage-option", f"endpoint_url={endpoint}"]
            yield f"{url}/team.git", ["--storage", f"s3://{bucket}/team", *opt], opt, S3_ENV
