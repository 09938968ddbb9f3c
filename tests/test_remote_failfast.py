"""Remotes that fail loudly and fast: an unresponsive git server, a path that cannot be, a push that
fails half way, S3 errors that say where they went, credentials changed in a running process, and
changing a remote's URL or storage. Every server is real and on 127.0.0.1 (tests/servers.py)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import pygit2
import pytest

from cliutil import assert_one_line_error
from conftest import session_namespace
from servers import S3_ENV, free_port, git_daemon, init_bare, make_bucket, moto_s3, silent_listener
from txgit import Workspace
from txgit.errors import MissingBlob, RemoteError
from txgit.remote import EMBEDDED_DIR, RemoteStore

TIMEOUT = {"TXGIT_REMOTE_TIMEOUT": "3"}
BOUND = 30  # seconds: far above the 3 s limit, far below "hangs" (libgit2's default is no limit at all)


@pytest.fixture(scope="module")
def s3():
    with moto_s3() as endpoint:
        yield endpoint


def _workspace(root: Path) -> Workspace:
    ws = Workspace.init(root)
    ws.commit(session_namespace("x = list(range(100))\ny = {'a': 1}"), "first")
    return ws


def _timed(run_txgit, *args: str, cwd: Path, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    proc = run_txgit(*args, cwd=cwd, env=env, timeout=120)  # 120: a hang fails the test, not the suite
    return proc, time.monotonic() - started


def _run_on_terminal(args: list[str], cwd: Path, env: dict) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal, as in a shell; returns (exit status, what it wrote there)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "txgit", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=slave, env={**os.environ, "COLUMNS": "200", **env})
    os.close(slave)
    out = b""
    try:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            out += chunk
        proc.wait(120)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out.decode()


# -- an unresponsive git server -------------------------------------------------------------------------

def test_unresponsive_git_remote_fails_within_the_timeout(tmp_path, run_txgit):
    a = tmp_path / "a"
    _workspace(a)
    with silent_listener() as port:
        url = f"git://127.0.0.1:{port}/x.git"
        run_txgit("remote", "add", "dead", url, "--storage", str(tmp_path / "blobs"), cwd=a, check=True)
        for args in (["push", "dead"], ["fetch", "dead"], ["pull", "dead"]):
            proc, seconds = _timed(run_txgit, *args, cwd=a, env=TIMEOUT)
            assert_one_line_error(proc, f"cannot reach remote 'dead' ({url})", "timed out", "no answer within 3 s")
            assert seconds < BOUND, (args, seconds)
        proc, seconds = _timed(run_txgit, "clone", url, "c", cwd=tmp_path, env=TIMEOUT)
        assert_one_line_error(proc, f"cannot reach remote 'origin' ({url})", "timed out")
        assert seconds < BOUND
        assert not (tmp_path / "c").exists() and not (tmp_path / "blobs").exists()

        # the limit can live in the workspace's config instead of the environment
        run_txgit("config", "remote.timeout", "2", cwd=a, check=True)
        assert run_txgit("config", "remote.timeout", cwd=a, check=True).stdout.strip() == "2"
        proc, seconds = _timed(run_txgit, "fetch", "dead", cwd=a)
        assert_one_line_error(proc, "timed out", "no answer within 2 s")
        assert seconds < BOUND


def test_remote_timeout_settings_are_checked(tmp_path, run_txgit):
    a = tmp_path / "a"
    _workspace(a)
    run_txgit("remote", "add", "origin", str(tmp_path / "r.git"), cwd=a, check=True)
    assert_one_line_error(run_txgit("config", "remote.timeout", "soon", cwd=a), "not a number of seconds")
    assert_one_line_error(run_txgit("config", "remote.timeout", "--", "-1", cwd=a), "not a number of seconds")
    assert_one_line_error(run_txgit("config", "remote.timeout", cwd=a), "remote.timeout is not set", "default 30")
    assert_one_line_error(run_txgit("push", cwd=a, env={"TXGIT_REMOTE_TIMEOUT": "nan"}),
                          "TXGIT_REMOTE_TIMEOUT='nan' is not a number of seconds")
    run_txgit("config", "remote.timeout", "0", cwd=a, check=True)  # 0: no limit
    run_txgit("push", cwd=a, check=True)
    run_txgit("config", "remote.timeout", "--unset", cwd=a, check=True)
    assert_one_line_error(run_txgit("config", "remote.timeout", cwd=a), "is not set")


def test_a_silent_remote_is_announced_on_a_terminal_only(tmp_path, run_txgit, capfd):
    a = tmp_path / "a"
    ws = _workspace(a)
    served = tmp_path / "served"
    init_bare(served / "proj.git")
    with silent_listener() as port, git_daemon(served) as daemon:
        url = f"git://127.0.0.1:{port}/x.git"
        run_txgit("remote", "add", "dead", url, "--storage", str(tmp_path / "blobs"), cwd=a, check=True)
        run_txgit("remote", "add", "alive", f"{daemon}/proj.git", "--storage", str(tmp_path / "blobs"),
                  cwd=a, check=True)

        code, err = _run_on_terminal(["push", "dead"], a, TIMEOUT)
        assert code == 1
        notice = f"connecting to {url} ..."
        assert err.startswith(notice), err
        # erased once the remote failed: what stays on the screen is the one error line
        rest = err[len(notice):]
        assert rest.startswith("\r\x1b[2K") and rest.count("\n") == 1, err
        assert rest.removeprefix("\r\x1b[2K").startswith("txgit: error: cannot reach remote 'dead'"), err

        # a remote that answers at once is not announced
        code, err = _run_on_terminal(["push", "alive"], a, TIMEOUT)
        assert code == 0 and "connecting" not in err, err
        code, err = _run_on_terminal(["fetch", "alive"], a, TIMEOUT)
        assert code == 0 and "connecting" not in err, err

        # nor is anything said through the Python API (nor on a pipe, see the test above)
        capfd.readouterr()
        os.environ["TXGIT_REMOTE_TIMEOUT"] = "2"
        try:
            with pytest.raises(RemoteError, match="timed out"):
                ws.fetch("dead")
        finally:
            del os.environ["TXGIT_REMOTE_TIMEOUT"]
        assert capfd.readouterr().err == ""
