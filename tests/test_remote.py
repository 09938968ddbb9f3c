"""Remotes against real servers on 127.0.0.1: a bare repository by path, `git daemon`, and
moto's S3 server through s3fs. User A works in this process (Python API + CLI), user B in
other processes (the CLI and `python -c`) in another folder."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pygit2
import pytest

from cliutil import assert_one_line_error
from conftest import damage_blob, remove_blob, session_namespace
from servers import S3_ENV, git_daemon, init_bare, make_bucket
from txgit import Workspace, packs
from txgit.errors import CorruptBlob, PushRejected, UnknownRemote
from txgit.remote import EMBEDDED_DIR
from txgit.trust import UntrustedState

STATE = """
import numpy as np
import pandas as pd
arr = np.arange(700_000, dtype="float64")            # several 1 MiB chunks
df = pd.DataFrame({"a": np.arange(1000), "b": np.linspace(0, 1, 1000)})
alias = df                                            # aliasing must survive
config = {"lr": 0.1, "tags": ["x", "y"]}
def score(k):
    return float(arr[:k].sum()) + df.b.sum()
"""

# What B prints about a state, and what A computes the same way: equal means identical variables.
FINGERPRINT = """
import hashlib, json
def fingerprint(ns):
    return {
        "arr": hashlib.sha256(ns["arr"].tobytes()).hexdigest(),
        "df": hashlib.sha256(ns["df"].to_csv().encode()).hexdigest(),
        "alias_is_df": ns["alias"] is ns["df"],
        "config": ns["config"],
        "score": ns["score"](1000),
        "extra": ns.get("extra"),
    }
"""

B_SCRIPT = FINGERPRINT + """
from txgit import Workspace
ws = Workspace.open(".")
ns = {"__name__": "__main__"}
r = ws.checkout("exp", ns)
print(json.dumps(fingerprint(ns)))
ns["extra"] = "from bob"
ns["arr"] = ns["arr"] * 2
ws.commit(ns, "bob doubles arr")
"""


def fingerprint(ns: dict) -> dict:
    scope: dict = {}
    exec(FINGERPRINT, scope)
    return scope["fingerprint"](ns)


@pytest.fixture
def daemon(tmp_path):
    base = tmp_path / "served"
    base.mkdir()
    with git_daemon(base) as url:
        yield base, url


def alice_history(root: Path) -> tuple[Workspace, dict]:
    """main: one commit; exp: main + a change."""
    ws = Workspace.init(root)
    ns = session_namespace(STATE)
    ws.commit(ns, "data and model")
    ws.checkout("HEAD", ns, new_branch="exp")
    ns["config"]["lr"] = 0.01
    ns["arr"][:10] = -1.0
    ws.commit(ns, "exp: smaller lr")
    ws.checkout("main", ns)
    return ws, ns


def _remote_setup(kind: str, tmp_path: Path, request) -> tuple[list[str], list[str], dict]:
    """(remote add args, extra clone args, env) for each transport/storage."""
    if kind == "path":
        return [str(tmp_path / "remote.git")], [], {}
    if kind == "daemon":
        base, url = request.getfixturevalue("daemon")
        init_bare(base / "proj.git")
        return [f"{url}/proj.git", "--storage", str(tmp_path / "blobs")], [], {}
    if kind == "s3":
        endpoint = request.getfixturevalue("s3")
        bucket = f"txgit-{tmp_path.name.lower().replace('_', '-')[-40:]}"
        make_bucket(endpoint, bucket)
        for k, v in S3_ENV.items():  # A works in this process
            request.getfixturevalue("monkeypatch").setenv(k, v)
        base, url = request.getfixturevalue("daemon")
        init_bare(base / "proj.git")
        opt = ["--storage-option", f"endpoint_url={endpoint}"]
        return [f"{url}/proj.git", "--storage", f"s3://{bucket}/proj", *opt], opt, S3_ENV
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["path", "daemon", "s3"])
def test_two_users_share_states(kind, tmp_path, run_txgit, request):
    add_args, clone_args, env = _remote_setup(kind, tmp_path, request)
    alice_root = tmp_path / "alice"
    ws, ns = alice_history(alice_root)
    ws.checkout("exp", ns)
    alice_exp = fingerprint(ns)

    # Alice and Bob trust each other: their states load without --trust (see test_trust.py for strangers)
    run_txgit("remote", "add", "origin", *add_args, "--trusted", cwd=alice_root, check=True, env=env)
    out = run_txgit("push", "origin", "--all", cwd=alice_root, check=True, env=env).stdout
    assert "main -> origin/main" in out and "exp -> origin/exp" in out
    again = run_txgit("push", "origin", "--all", cwd=alice_root, check=True, env=env).stdout
    assert "Everything up-to-date" in again

    # B: another folder, other processes
    remote_url = add_args[0]
    run_txgit("clone", remote_url, "bob", *clone_args, "--trusted", cwd=tmp_path, check=True, env=env)
    bob = tmp_path / "bob"
    assert "exp" in run_txgit("branch", cwd=bob, check=True).stdout
    proc = subprocess.run([sys.executable, "-c", B_SCRIPT], cwd=bob, capture_output=True, text=True,
                          env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == json.loads(json.dumps(alice_exp))
    out = run_txgit("push", cwd=bob, check=True, env=env).stdout
    assert "exp -> origin/exp" in out

    # A pulls B's commit on exp and gets B's state
    out = run_txgit("pull", cwd=alice_root, check=True, env=env).stdout
    assert "Fast-forward exp" in out
    ws = Workspace.open(alice_root)
    assert ws.head().summary == "bob doubles arr"
    assert ws.load("extra") == "from bob"
    assert float(ws.load("arr")[11]) == 22.0 and float(ws.load("arr")[0]) == -2.0
    ns2 = session_namespace()
    ws.checkout("exp", ns2, force=True)
    assert ns2["alias"] is ns2["df"] and ns2["config"]["lr"] == 0.01


def test_pull_into_namespace_and_refusals(tmp_path):
    alice, ns = alice_history(tmp_path / "alice")
    alice.remotes.add("origin", str(tmp_path / "r.git"))
    alice.push(all_branches=True)
    bob = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "bob")
    bns = session_namespace()
    bob.checkout("main", bns)
    bns["config"]["lr"] = 5
    bob.commit(bns, "bob")
    bob.push()
    # A: origin is not marked trusted, so Bob's state is not loaded without trust=True; nothing moves
    head = alice.head().id
    with pytest.raises(UntrustedState, match="not trusted"):
        alice.pull(namespace=ns)
    assert alice.head().id == head and ns["config"]["lr"] != 5
    # A: fast-forward, with the live namespace following
    r = alice.pull(namespace=ns, trust=True)
    assert r.status == "fast-forward" and ns["config"]["lr"] == 5 and r.merge.loaded == ["config"]
    # divergence: both commit on main, to the same variable: the pull merges and stops on the conflict
    ns["config"]["lr"] = 6
    alice.commit(ns, "alice")
    bns["config"]["lr"] = 7
    bns["bobs_note"] = "only bob"
    bob.commit(bns, "bob again")
    bob.push()
    with pytest.raises(PushRejected, match="non-fast-forward"):
        alice.push()
    before = alice.head().id
    r = alice.pull(namespace=ns, trust=True)
    assert r.status == "conflicts" and [c.names for c in r.merge.conflicts] == [["config"]]
    assert alice.head().id == before and ns["config"]["lr"] == 6  # nothing moved; ours kept
    assert ns["bobs_note"] == "only bob"  # what only Bob changed is taken already
    resolved = alice.merge_resolve("config", "theirs", ns, trust=True)
    assert resolved.status == "merged" and ns["config"]["lr"] == 7
    merge = alice.head()
    assert merge.parents == [before, bob.head().id] and alice.merge_in_progress() is None
    r = alice.push()
    assert r.updated["refs/heads/main"][1] == merge.id


def test_killed_push_leaves_consistent_remote(tmp_path, run_txgit):
    ws = Workspace.init(tmp_path / "a")
    # blobs just over the pack size: loose, moved in batches (a kill lands between them)
    ns = session_namespace("values = {}\n" + "\n".join(f"v{i} = bytes([{i % 251}]) * {packs.SMALL_BLOB_MAX + 64 + i}"
                                                       for i in range(400)))
    ws.commit(ns, "400 variables")
    ws.remotes.add("origin", str(tmp_path / "r.git"))
    blobs = tmp_path / "r.git" / EMBEDDED_DIR
    proc = subprocess.Popen([sys.executable, "-m", "txgit", "push"], cwd=tmp_path / "a",
                            env={**os.environ, "TXGIT_DEBUG_TRANSFER_DELAY": "3"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and not (blobs.exists() and any(blobs.rglob("*"))):
        time.sleep(0.01)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stored = [p for p in blobs.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")]
    named = ws.remotes._blobs_of([ws.history.head_commit()])[0]
    assert 0 < len(stored) < len(named)  # killed half way through the blob upload
    remote_repo = pygit2.Repository(str(tmp_path / "r.git"))
    assert not [r for r in remote_repo.references if r.startswith("refs/heads/")]  # no ref names a partial state

    out = run_txgit("push", cwd=tmp_path / "a", check=True).stdout
    assert f"{len(named) - len(stored)} of {len(named)} blobs uploaded" in out
    clone = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "b", eager=True)
    got = session_namespace()
    clone.checkout("main", got)
    assert got["v399"] == bytes([399 % 251]) * (packs.SMALL_BLOB_MAX + 64 + 399)


def test_tampered_blob_is_detected_and_never_unpickled(tmp_path, run_txgit):
    ws, _ = alice_history(tmp_path / "alice")
    ws.remotes.add("origin", str(tmp_path / "r.git"))
    ws.push(all_branches=True)
    run_txgit("clone", str(tmp_path / "r.git"), "bob", cwd=tmp_path, check=True)
    # Replace config's pickle on the remote with one that would run code when unpickled.
    state = ws.state("exp")
    group = state.groups[state.variables["config"].group]
    victim = group.streams[0].chunks[0]
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / "r.git" / EMBEDDED_DIR / victim[:2] / victim[2:]).write_bytes(pickle.dumps(Evil()))

    bob = tmp_path / "bob"
    proc = run_txgit("fetch", "--eager", cwd=bob)
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1 and "corrupted" in proc.stderr and "Traceback" not in proc.stderr
    code = ("from txgit import Workspace\nfrom txgit.errors import CorruptBlob\nws = Workspace.open('.')\n"
            "ns = {'__name__': '__main__'}\ntry:\n    ws.checkout('exp', ns)\nexcept CorruptBlob as e:\n"
            "    print('refused:', e)\nelse:\n    raise SystemExit('loaded a tampered blob')\n"
            "assert not [n for n in ns if not n.startswith('__')], ns\n"
            f"assert not ws.store.has({victim!r})\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=bob, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "refused:" in proc.stdout and not marker.exists()
    proc = run_txgit("pull", cwd=bob)  # history is fine: pull moves refs; the blob is refused when read
    assert proc.returncode == 0
    assert not marker.exists()


def test_fetch_blobs_from_remotes_repairs_a_corrupt_local_blob(tmp_path):
    ws, ns = alice_history(tmp_path / "alice")
    ws.remotes.add("origin", str(tmp_path / "r.git"))
    ws.push(all_branches=True)
    name = sorted(ws.state().groups[ws.state().variables["arr"].group].chunk_names())[0]
    damage_blob(ws.store, name)
    with pytest.raises(CorruptBlob):
        ws.load("arr")
    report = ws.fetch_blobs_from_remotes([name], replace_local=True)
    assert report.fetched == {name: "origin"} and not report.missing
    assert float(ws.load("arr")[5]) == 5.0


def test_fsck_repair_mends_local_blobs_from_a_remotes_s3_storage(tmp_path, run_txgit, s3, monkeypatch):
    """A corrupted and a deleted local blob: `txgit fsck` reports the corrupt one as a problem and the
    deleted one as not downloaded (the remote's S3 storage holds it), `fsck --repair` brings a verified
    copy of the corrupt one from there, and `txgit fsck` then passes; the other comes when needed."""
    ws, _ = alice_history(tmp_path / "a")
    a = tmp_path / "a"
    make_bucket(s3, "fsck-repair")
    run_txgit("remote", "add", "origin", str(tmp_path / "r.git"), "--storage", "s3://fsck-repair/blobs",
              "--storage-option", f"endpoint_url={s3}", cwd=a, check=True)
    run_txgit("push", "--all", cwd=a, check=True, env=S3_ENV)
    state = ws.state("exp")
    rotten = sorted(state.groups[state.variables["arr"].group].chunk_names())[0]
    gone = sorted(state.groups[state.variables["config"].group].chunk_names())[0]
    damage_blob(ws.store, rotten)
    remove_blob(ws.store, gone)

    proc = run_txgit("fsck", cwd=a, env=S3_ENV)
    assert proc.returncode == 1 and rotten in proc.stdout and gone not in proc.stdout, proc.stdout + proc.stderr
    assert f"corrupt blob {rotten}" in proc.stdout and "remote origin has a copy" in proc.stdout
    assert "1 blob not downloaded yet: on remote origin" in proc.stdout
    assert proc.stderr.count("\n") == 1 and "1 problem" in proc.stderr and "Traceback" not in proc.stderr

    proc = run_txgit("fsck", "--repair", cwd=a, env=S3_ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "repair: tried origin (s3://fsck-repair/blobs): 1 blob repaired" in proc.stdout
    assert f"repaired blob {rotten} from s3://fsck-repair/blobs" in proc.stdout
    assert "ok (1 repaired, 1 not downloaded yet)" in proc.stdout
    proc = run_txgit("fsck", cwd=a, env=S3_ENV)
    assert proc.returncode == 0 and proc.stdout.strip().endswith(": ok (1 not downloaded yet)"), proc.stdout
    got = session_namespace()
    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    Workspace.open(a).checkout("exp", got)
    assert float(got["arr"][0]) == -1.0 and float(got["arr"][10]) == 10.0 and got["config"]["lr"] == 0.01
    proc = run_txgit("fsck", cwd=a, env=S3_ENV)  # the checkout fetched the deleted blob back
    assert proc.returncode == 0 and proc.stdout.strip().endswith(": ok"), proc.stdout


def test_errors_are_one_line(tmp_path, run_txgit, s3):
    ws, _ = alice_history(tmp_path / "a")
    a = tmp_path / "a"

    assert_one_line_error(run_txgit("push", cwd=a), "no remote configured")
    run_txgit("remote", "add", "origin", str(tmp_path / "r.git"), cwd=a, check=True)
    assert_one_line_error(run_txgit("push", "orign", cwd=a), "no remote named 'orign'", "origin")
    assert_one_line_error(run_txgit("remote", "add", "origin", "/elsewhere", cwd=a), "already exists")
    assert_one_line_error(run_txgit("clone", str(tmp_path / "nope.git"), "c", cwd=tmp_path), "does not exist")
    assert not (tmp_path / "c").exists()
    run_txgit("remote", "add", "dead", "git://127.0.0.1:9/x.git", "--storage", str(tmp_path / "s"), cwd=a, check=True)
    assert_one_line_error(run_txgit("fetch", "dead", cwd=a), "cannot reach remote 'dead'")
    assert_one_line_error(run_txgit("push", "dead", cwd=a), "cannot reach remote 'dead'")
    run_txgit("remote", "add", "nobucket", str(tmp_path / "nb.git"), "--storage", "s3://no-such-bucket/x",
              "--storage-option", f"endpoint_url={s3}", cwd=a, check=True)
    assert_one_line_error(run_txgit("push", "nobucket", cwd=a, env=S3_ENV),
                          f"remote storage s3://no-such-bucket/x at endpoint {s3} failed")
    assert not (tmp_path / "nb.git").exists()  # the push made it, failed, and removed it (no ref ever moved)
    with pytest.raises(UnknownRemote):
        ws.remotes.remove("nosuch")
    run_txgit("remote", "remove", "dead", cwd=a, check=True)
    listing = run_txgit("remote", cwd=a, check=True).stdout
    assert "origin" in listing and "dead" not in listing
    # a detached HEAD: which branch to push is not known; the line says how to name one or make one
    run_txgit("checkout", "exp~1", cwd=a, check=True)
    assert_one_line_error(run_txgit("push", cwd=a), "HEAD is detached", "txgit push origin BRANCH",
                          "txgit checkout -b NAME")


def test_a_push_during_a_merge_says_to_finish_the_merge_not_to_pull(tmp_path, run_txgit):
    """A pull that stopped on a conflict leaves a merge waiting; a push then is behind the remote.
    "pull first, or push --force" was wrong advice: a pull refuses while the merge waits, and --force
    would drop the other person's commit."""
    from cliutil import assert_one_line_error

    alice = Workspace.init(tmp_path / "alice")
    ns: dict = {"__name__": "__main__", "x": 1}
    alice.commit(ns, "x = 1")
    alice.remotes.add("origin", str(tmp_path / "team.git"), trusted=True)
    alice.push()
    bob = Workspace.clone(str(tmp_path / "team.git"), tmp_path / "bob")
    theirs: dict = {"__name__": "__main__"}
    bob.checkout("main", theirs)
    theirs["x"] = 2
    bob.commit(theirs, "bob: x = 2")
    bob.push()
    ns["x"] = 3
    alice.commit(ns, "alice: x = 3")
    alice.pull()
    assert alice.merge_in_progress() is not None
    proc = run_txgit("push", cwd=alice.root)
    assert_one_line_error(proc, "a merge is in progress", "txgit merge --abort")
    assert "push --force" not in proc.stderr
    remote_main = subprocess.run(["git", "-C", str(tmp_path / "team.git"), "rev-parse", "main"],
                                 capture_output=True, text=True, check=True).stdout.strip()
    assert remote_main == bob.head().id  # nothing moved
