"""Remotes that fail loudly and fast: an unresponsive git server, a path that cannot be, a push that
fails half way, S3 errors that say where they went, credentials changed in a running process, and
changing a remote's URL or storage. Every server is real and on 127.0.0.1 (tests/servers.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import pygit2
import pytest

from cliutil import assert_one_line_error, run_on_terminal
from conftest import session_namespace
from servers import S3_ENV, free_port, git_daemon, init_bare, make_bucket, moto_s3, silent_listener
from txgit import Workspace
from txgit.errors import MissingBlob, RemoteError
from txgit.remote import EMBEDDED_DIR, RemoteStore
from txgit.storage import hash_bytes

TIMEOUT = {"TXGIT_REMOTE_TIMEOUT": "3"}
BOUND = 30  # seconds: far above the 3 s limit, far below "hangs" (libgit2's default is no limit at all)


def _workspace(root: Path) -> Workspace:
    ws = Workspace.init(root)
    ws.commit(session_namespace("x = list(range(100))\ny = {'a': 1}"), "first")
    return ws


def _timed(run_txgit, *args: str, cwd: Path, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    proc = run_txgit(*args, cwd=cwd, env=env, timeout=120)  # 120: a hang fails the test, not the suite
    return proc, time.monotonic() - started


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
    assert not (tmp_path / "r.git").exists()  # refused before anything was made
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

        code, err = run_on_terminal(["push", "dead"], a, TIMEOUT)
        assert code == 1
        notice = f"connecting to {url} ..."
        assert err.startswith(notice), err
        # erased once the remote failed: what stays on the screen is the one error line
        rest = err[len(notice):]
        assert rest.startswith("\r\x1b[2K") and rest.count("\n") == 1, err
        assert rest.removeprefix("\r\x1b[2K").startswith("txgit: error: cannot reach remote 'dead'"), err

        # a remote that answers at once is not announced
        code, err = run_on_terminal(["push", "alive"], a, TIMEOUT)
        assert code == 0 and "connecting" not in err, err
        code, err = run_on_terminal(["fetch", "alive"], a, TIMEOUT)
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


# -- local paths: refused when they cannot be, nothing left behind, nothing made by reading -----------------

def test_local_remote_whose_folder_does_not_exist_is_refused(tmp_path, run_txgit):
    a = tmp_path / "a"
    _workspace(a)
    run_txgit("remote", "add", "origin", str(tmp_path / "typo" / "r.git"), cwd=a, check=True)
    assert_one_line_error(run_txgit("push", cwd=a), f"{tmp_path / 'typo' / 'r.git'} does not exist",
                          "set-url origin")
    assert not (tmp_path / "typo").exists()
    (tmp_path / "typo").mkdir()  # the parent exists: the first push makes the bare repository, as before
    run_txgit("push", cwd=a, check=True)
    assert (tmp_path / "typo" / "r.git" / EMBEDDED_DIR).is_dir()


def test_push_whose_blob_upload_fails_removes_the_repository_it_made(tmp_path, run_txgit):
    a = tmp_path / "a"
    _workspace(a)
    (tmp_path / "afile").write_text("a file where the storage's folder would go")
    run_txgit("remote", "add", "origin", str(tmp_path / "r.git"), "--storage", str(tmp_path / "afile" / "blobs"),
              cwd=a, check=True)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert_one_line_error(run_txgit("push", cwd=a), "remote storage", "failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # r.git was made, then removed


def test_push_whose_git_push_fails_removes_only_the_folders_it_made(tmp_path, run_txgit):
    """The daemon serves fetches but refuses pushes: the blobs went up first, then moving the refs
    failed. A storage folder this push made goes; one that was there before stays, blobs and all."""
    a = tmp_path / "a"
    _workspace(a)
    served = tmp_path / "served"
    init_bare(served / "proj.git")
    (tmp_path / "blobs").mkdir()
    (tmp_path / "blobs" / "keep.txt").write_text("someone else's")
    with git_daemon(served, receive_pack=False) as daemon:
        run_txgit("remote", "add", "origin", f"{daemon}/proj.git", "--storage", str(tmp_path / "new" / "blobs"),
                  cwd=a, check=True)
        run_txgit("remote", "add", "shared", f"{daemon}/proj.git", "--storage", str(tmp_path / "blobs"),
                  cwd=a, check=True)
        proc = run_txgit("push", "origin", cwd=a, env=TIMEOUT, timeout=120)
        assert_one_line_error(proc, "remote 'origin' (git://")
        assert "refused: access denied" in proc.stderr and "takes pushes from you" in proc.stderr
        assert not (tmp_path / "new").exists()
        assert_one_line_error(run_txgit("push", "shared", cwd=a, env=TIMEOUT, timeout=120), "refused")
    assert (tmp_path / "blobs" / "keep.txt").exists()
    assert len([p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]) > 1  # the uploaded blobs stay too
    assert not list(pygit2.Repository(str(served / "proj.git")).references)


def test_reading_commands_create_no_remote_folders(tmp_path, run_txgit):
    a = tmp_path / "a"
    ws = _workspace(a)
    ws.remotes.add("origin", str(tmp_path / "r.git"))
    ws.push()
    run_txgit("clone", str(tmp_path / "r.git"), "b", cwd=tmp_path, check=True)  # lazy: no blob fetched
    b = tmp_path / "b"
    blobs = tmp_path / "r.git" / EMBEDDED_DIR
    blobs.rename(tmp_path / "moved")  # the remote's storage is gone
    # a second remote whose storage folder was never made
    run_txgit("remote", "add", "other", str(tmp_path / "r.git"), "--storage", str(tmp_path / "nowhere" / "blobs"),
              cwd=b, check=True)
    for args in (["fetch", "--eager"], ["fetch", "other", "--eager"], ["pull"], ["status"], ["fsck"],
                 ["fsck", "--repair"], ["remote"], ["log"], ["show", "main"]):
        run_txgit(*args, cwd=b)
        assert not blobs.exists(), args
        assert not (tmp_path / "nowhere").exists(), args
    # a lazy checkout and load ask every remote's storage for the blobs
    clone = Workspace.open(b)
    with pytest.raises(MissingBlob):
        clone.checkout("main", session_namespace())
    with pytest.raises(MissingBlob):
        clone.load("x")
    assert not blobs.exists() and not (tmp_path / "nowhere").exists()
    proc = run_txgit("clone", str(tmp_path / "r.git"), "c", "--eager", cwd=tmp_path)
    assert proc.returncode == 1 and not blobs.exists() and not (tmp_path / "c").exists()


# -- S3: errors say which endpoint; new credentials take effect ---------------------------------------------

def test_s3_errors_name_the_endpoint(tmp_path, run_txgit, s3):
    a = tmp_path / "a"
    _workspace(a)
    run_txgit("remote", "add", "nobucket", str(tmp_path / "nb.git"), "--storage", "s3://no-such-bucket/x",
              "--storage-option", f"endpoint_url={s3}", cwd=a, check=True)
    assert_one_line_error(run_txgit("push", "nobucket", cwd=a, env=S3_ENV),
                          f"remote storage s3://no-such-bucket/x at endpoint {s3} failed", "bucket does not exist",
                          "AWS_ENDPOINT_URL", "--storage-option endpoint_url=")
    assert not (tmp_path / "nb.git").exists()  # the failed push removed the repository it made

    # the endpoint given the SDK's way, in the environment
    run_txgit("remote", "add", "envbucket", str(tmp_path / "eb.git"), "--storage", "s3://no-such-bucket/y",
              cwd=a, check=True)
    assert_one_line_error(run_txgit("push", "envbucket", cwd=a, env={**S3_ENV, "AWS_ENDPOINT_URL": s3}),
                          f"at endpoint {s3} failed")

    # nothing listens there: connection refused, on 127.0.0.1
    dead = f"http://127.0.0.1:{free_port()}"
    run_txgit("remote", "add", "refused", str(tmp_path / "rf.git"), "--storage", "s3://bucket/x",
              "--storage-option", f"endpoint_url={dead}", cwd=a, check=True)
    proc = run_txgit("push", "refused", cwd=a, env=S3_ENV, timeout=300)
    # not only "to change the endpoint": the endpoint may be right and its server down
    assert_one_line_error(proc, f"remote storage s3://bucket/x at endpoint {dead} failed", "Could not connect",
                          "(nothing answers there: check that the server runs, or set AWS_ENDPOINT_URL")


def test_a_push_whose_storage_goes_down_midway_says_the_remote_is_unchanged(tmp_path, run_txgit):
    """The S3 server went down while Alice's push uploaded (one batch of blobs landed, the next
    failed). Her one line named the storage and the connection error, but not whether origin's
    branch had moved, nor that the next push resumes: a push that fails after an interrupt said both,
    one that fails on its own did not."""
    from contextlib import ExitStack

    server = ExitStack()  # its own S3 server: it is stopped in the middle of the push
    try:
        endpoint = server.enter_context(moto_s3())
        make_bucket(endpoint, "team")
        a = _workspace(tmp_path / "a")
        remote = init_bare(tmp_path / "team.git")
        run_txgit("remote", "add", "origin", str(remote), "--storage", "s3://team/p", "--storage-option",
                  f"endpoint_url={endpoint}", cwd=a.root, check=True)
        run_txgit("push", cwd=a.root, env=S3_ENV, check=True)
        before = subprocess.run(["git", "--git-dir", str(remote), "rev-parse", "main"], capture_output=True,
                                text=True, check=True).stdout
        a.commit({f"v{i}": os.urandom(200_000) for i in range(130)}, "two batches of large blobs")
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="y")
        held = s3.list_objects_v2(Bucket="team")["KeyCount"]
        # each batch waits 5 s once it has landed: the server goes down between the two
        push = subprocess.Popen([sys.executable, "-m", "txgit", "push"], cwd=a.root, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={**os.environ, **S3_ENV, **TIMEOUT, "TXGIT_DEBUG_TRANSFER_DELAY": "5"})
        deadline = time.monotonic() + 60
        while push.poll() is None and time.monotonic() < deadline and s3.list_objects_v2(
                Bucket="team")["KeyCount"] == held:
            time.sleep(0.05)
        assert push.poll() is None, push.communicate()
        server.close()
        out, err = push.communicate(timeout=120)
        assert_one_line_error(subprocess.CompletedProcess(push.args, push.returncode, out, err),
                              "remote storage s3://team/p", "failed",
                              "nothing was changed on origin: its branches are where they were",
                              "blobs were uploaded already: the next push sends only the rest")
        assert subprocess.run(["git", "--git-dir", str(remote), "rev-parse", "main"], capture_output=True,
                              text=True, check=True).stdout == before
    finally:
        server.close()


def test_unresponsive_s3_endpoint_fails_within_the_timeout(tmp_path, run_txgit):
    """An S3 server that accepts connections and never answers: push and clone stop after the remote
    timeout (a few tries of it), not after botocore's and s3fs's retries of a 60 s read timeout each."""
    a = tmp_path / "a"
    _workspace(a)
    with silent_listener() as port:
        endpoint = f"http://127.0.0.1:{port}"
        run_txgit("remote", "add", "hung", str(tmp_path / "h.git"), "--storage", "s3://bucket/x",
                  "--storage-option", f"endpoint_url={endpoint}", cwd=a, check=True)
        proc, seconds = _timed(run_txgit, "push", "hung", cwd=a, env={**S3_ENV, **TIMEOUT})
        assert_one_line_error(proc, f"remote storage s3://bucket/x at endpoint {endpoint} failed",
                              "no answer within 3 s", "remote.timeout")
        assert seconds < BOUND, seconds
        assert not (tmp_path / "h.git").exists()


def test_s3_error_without_an_endpoint_says_it_is_aws(monkeypatch):
    """No request is made: the store is only built, and the error message is formed from what it knows."""
    for k in list(os.environ):
        if k.startswith(("AWS_ENDPOINT_URL", "FSSPEC_S3")):
            monkeypatch.delenv(k)
    store = RemoteStore("s3://some-bucket/prefix", key="k", secret="s")
    with pytest.raises(RemoteError, match="at AWS's default endpoint failed: FileNotFoundError: no such bucket "
                                          r"\(for another S3 server set AWS_ENDPOINT_URL"):
        with store._errors():
            raise FileNotFoundError("no such bucket")


def _moto_with_auth(endpoint: str, bucket: str) -> dict:
    """Make moto check credentials from now on (it accepts any by default); returns a key it accepts."""
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    iam.create_user(UserName="alice")
    iam.put_user_policy(UserName="alice", PolicyName="s3", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="alice")["AccessKey"]
    make_bucket(endpoint, bucket)
    # moto's documented switch (INITIAL_NO_AUTH_ACTION_COUNT, set at run time in server mode): 0 = check every request
    request = urllib.request.Request(endpoint + "/moto-api/reset-auth", data=b"0", method="POST",
                                     headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(request, timeout=10).read()
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def test_new_credentials_take_effect_without_a_restart(tmp_path, monkeypatch):
    """As in a running kernel: the first push fails with a key the server refuses; the user sets the
    right key in os.environ; the next push in the same process (same Workspace) uses it."""
    with moto_s3() as endpoint:  # its own server: checking credentials would break the other tests' moto
        good = _moto_with_auth(endpoint, "creds")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
        ws = _workspace(tmp_path / "a")
        ws.remotes.add("origin", str(tmp_path / "r.git"), storage="s3://creds/blobs",
                       storage_options={"endpoint_url": endpoint})
        with pytest.raises(RemoteError, match=f"at endpoint {endpoint} failed: PermissionError: .*credentials"):
            ws.push()
        for k, v in good.items():
            monkeypatch.setenv(k, v)
        result = ws.push()
        assert result.blobs_uploaded > 0
        listed = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=good[
            "AWS_ACCESS_KEY_ID"], aws_secret_access_key=good["AWS_SECRET_ACCESS_KEY"]).list_objects_v2(Bucket="creds")
        assert listed["KeyCount"] == result.blobs_uploaded
        # and back: a key taken away is not kept either
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
        with pytest.raises(RemoteError, match="PermissionError"):
            ws.remotes.store("origin").missing(["0" * 64])


# -- set-url, set-storage ----------------------------------------------------------------------------------

def test_set_url_keeps_trust_and_history(tmp_path, run_txgit):
    a = tmp_path / "a"
    _workspace(a)
    run_txgit("remote", "add", "origin", str(tmp_path / "old.git"), "--trusted", cwd=a, check=True)
    run_txgit("push", cwd=a, check=True)
    run_txgit("clone", str(tmp_path / "old.git"), "b", cwd=tmp_path, check=True)
    (tmp_path / "old.git").rename(tmp_path / "new.git")  # the remote moved
    b = tmp_path / "b"
    assert_one_line_error(run_txgit("fetch", cwd=b), "does not exist")
    out = run_txgit("remote", "set-url", "origin", str(tmp_path / "new.git"), cwd=b, check=True).stdout
    assert f"remote origin: {tmp_path / 'new.git'}" in out
    listing = run_txgit("remote", cwd=b, check=True).stdout
    assert str(tmp_path / "new.git") in listing and "(trusted)" in listing
    run_txgit("fetch", cwd=b, check=True)
    Workspace.open(b).checkout("main", ns := session_namespace())
    assert ns["y"] == {"a": 1}
    assert_one_line_error(run_txgit("remote", "set-url", "nosuch", "/x", cwd=b), "no remote named 'nosuch'")
    assert_one_line_error(run_txgit("remote", "set-url", "origin", cwd=b), "usage: txgit remote set-url")


def test_set_storage_moves_the_blobs_and_keeps_trust(tmp_path, run_txgit, s3):
    a = tmp_path / "a"
    ws = _workspace(a)
    ws.remotes.add("origin", str(tmp_path / "r.git"), trusted=True)
    ws.push()
    make_bucket(s3, "moved-blobs")
    out = run_txgit("remote", "set-storage", "origin", "s3://moved-blobs/p", "--storage-option",
                    f"endpoint_url={s3}", cwd=a, check=True).stdout
    assert "blobs at s3://moved-blobs/p (options: endpoint_url)" in out
    r = Workspace.open(a).remotes.get("origin")
    assert r.trusted and r.storage == "s3://moved-blobs/p" and r.storage_options == {"endpoint_url": s3}
    # the remote records the old storage: a plain push says how to go on, --force re-records
    ws.commit(session_namespace("x = 2"), "second")
    assert_one_line_error(run_txgit("push", cwd=a, env=S3_ENV), "records its blobs at the repository",
                          "set-storage origin")
    run_txgit("push", "--force", cwd=a, check=True, env=S3_ENV)
    run_txgit("clone", str(tmp_path / "r.git"), "b", "--storage-option", f"endpoint_url={s3}", "--eager",
              cwd=tmp_path, check=True, env=S3_ENV)
    assert "blobs: s3://moved-blobs/p" in run_txgit("remote", cwd=tmp_path / "b", check=True, env=S3_ENV).stdout
    # the Python API, and back to the repository's own folder (None); the options go with the old URL
    r = Workspace.open(a).remotes.set_storage("origin", None)
    assert r.storage is None and r.storage_options == {} and r.trusted
    assert_one_line_error(run_txgit("remote", "set-storage", "origin", cwd=a), "usage: txgit remote set-storage")


def test_a_put_to_an_s3_server_that_never_answers_fails_within_the_timeout(monkeypatch):
    """The listing of a push stops after the remote timeout, but a PUT did not: botocore asks the server
    for "100 Continue" before it sends the body, and that answer was awaited with no limit (a 100-byte
    upload still waiting after 85 s). A server that answers listings and hangs on uploads reaches it."""
    import threading

    for k, v in S3_ENV.items():
        monkeypatch.setenv(k, v)
    outcome: dict = {}
    with silent_listener() as port:
        store = RemoteStore("s3://bucket/x", timeout=3, endpoint_url=f"http://127.0.0.1:{port}")
        data = b"a blob that never lands"

        def upload() -> None:
            started = time.perf_counter()
            try:
                store.write_blobs({hash_bytes(data): data})
            except Exception as e:  # noqa: BLE001  (what it raised is the assertion below)
                outcome["error"] = e
            outcome["seconds"] = time.perf_counter() - started

        worker = threading.Thread(target=upload, daemon=True)  # a hang must fail the test, not hold it
        worker.start()
        worker.join(BOUND + 10)
    assert "seconds" in outcome, f"the upload still waited after {BOUND + 10} s"
    assert isinstance(outcome.get("error"), RemoteError) and "no answer within 3 s" in str(outcome["error"]), outcome
    assert outcome["seconds"] < BOUND, outcome


def test_one_request_to_a_silent_s3_server_waits_at_most_two_timeouts(monkeypatch):
    """Two tries of the remote timeout per S3 request (docs/remotes.md), not four: botocore's
    ``max_attempts: 1`` is one *retry* (two attempts), and s3fs tried that twice: a listing of a silent
    endpoint took 4 accepted connections, 18 s with TXGIT_REMOTE_TIMEOUT=4 (14 s with 3)."""
    for k, v in S3_ENV.items():
        monkeypatch.setenv(k, v)
    with silent_listener() as port:
        store = RemoteStore("s3://bucket/x", timeout=2, endpoint_url=f"http://127.0.0.1:{port}")
        started = time.perf_counter()
        with pytest.raises(RemoteError, match="no answer within 2 s"):
            store.listing()
        seconds = time.perf_counter() - started
    assert 2 * 2 <= seconds < 3 * 2, seconds  # two tries of 2 s (and s3fs's 0.1 s pause), not four


@pytest.mark.parametrize("backend", ["memory", "folder-through-dirfs"])
def test_a_blocking_storage_tells_a_missing_blob_from_one_it_could_not_ask_about(tmp_path, backend):
    """RemoteStore.missing asked a blocking backend (sftp, memory://, a folder behind fsspec's dir://)
    with ``fs.exists``, which answers False for any error: a blob the storage could not be asked about
    was called missing (fsck --verify reported it lost), where S3 and folders raise. And a dir:// over a
    folder, async by class but not underneath, failed every check (its wrapped folder has no ``_exists``).
    Now "not found" is missing, any other error is raised, as :func:`txgit.packs.absent_or_raise` decides."""
    if backend == "memory":
        store = RemoteStore(f"memory://{tmp_path.name}/blobs")
    else:
        store = RemoteStore("dir://blobs", path=str(tmp_path), target_protocol="file",
                            target_options={"auto_mkdir": True})
    stored, other = b"a stored blob", b"a blob never stored"
    store.write_blobs({hash_bytes(stored): stored})
    assert store.missing([hash_bytes(stored), hash_bytes(other)]) == {hash_bytes(other)}
    if backend == "memory":
        return  # nothing on it can fail but a missing file
    # a fan-out folder that cannot be read (a symlink to itself: every stat below it is ELOOP)
    n = 0
    while Path(store.path(hash_bytes(b"%d" % n))).parent == Path(store.path(hash_bytes(stored))).parent:
        n += 1
    unreadable = hash_bytes(b"%d" % n)
    folder = tmp_path / Path(store.path(unreadable)).parent
    assert not folder.exists()
    folder.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(folder.name, folder)
    with pytest.raises(RemoteError, match="Too many levels of symbolic links"):
        store.missing([hash_bytes(stored), unreadable])
