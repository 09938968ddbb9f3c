"""Two people pushing (and a third reading) at the same moment, over each kind of remote: real
`txgit` processes released together, a real git daemon and moto's S3 server on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pygit2
import pytest
from servers import S3_ENV, git_daemon, init_bare, make_bucket, s3_requests

from txgit import Workspace

pytestmark = pytest.mark.timeout(900)

# a `txgit ARGS` process that waits for the barrier file, so that several start their work together
AT_THE_BARRIER = """
import os, sys, time
while not os.path.exists(sys.argv[1]):
    time.sleep(0.001)
from txgit.cli import main
main(sys.argv[2:])
"""


def _at_once(runs: list[tuple[list[str], Path]], barrier: Path, env: dict) -> list[subprocess.CompletedProcess]:
    """Start `txgit ARGS` in each folder, release them together, and wait for all."""
    procs = [subprocess.Popen([sys.executable, "-c", AT_THE_BARRIER, str(barrier), *args], cwd=cwd,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "COLUMNS": "200", **env}) for args, cwd in runs]
    time.sleep(1.5)  # every interpreter up and importing: the barrier then releases them at one instant
    barrier.write_text("go")
    out = []
    for p, (args, _) in zip(procs, runs):
        stdout, stderr = p.communicate(timeout=300)
        out.append(subprocess.CompletedProcess(args, p.returncode, stdout, stderr))
    barrier.unlink()
    return out


@pytest.fixture(params=["daemon-folder", "daemon-s3"])  # a folder remote: test_concurrency.py
def remote(request, tmp_path, monkeypatch):
    """(remote-add args, env) of an empty shared remote: a bare repository served by git daemon, its
    blobs in a folder or in an S3 bucket."""
    base = tmp_path / "served"
    base.mkdir()
    init_bare(base / "team.git")
    with git_daemon(base) as url:
        if request.param == "daemon-folder":
            yield [f"{url}/team.git", "--storage", str(tmp_path / "team-blobs")], {}
        else:
            endpoint = request.getfixturevalue("s3")
            for k, v in S3_ENV.items():
                monkeypatch.setenv(k, v)
            bucket = f"race-{tmp_path.name.lower().replace('_', '-')[-40:]}"
            make_bucket(endpoint, bucket)
            yield [f"{url}/team.git", "--storage", f"s3://{bucket}/team",
                   "--storage-option", f"endpoint_url={endpoint}"], S3_ENV


def _state(who: str, r: int) -> dict:
    """A state with packed small blobs and loose big chunks, different for each person and round."""
    ns: dict = {f"{who}_{i}": f"{who} {r} {i}" for i in range(20)}
    # 2.4 MB: chunks stored loose remotely. Not the same bytes as the other's: moto's server answers
    # 500 to one of two PUTs of one key at once (it closes the replaced object's buffer under the
    # other request), which S3 does not
    ns[f"{who}_arr"] = np.arange(300_000, dtype=np.float64) * (r + 1) + (who == "bob")
    ns["round"] = r
    return ns


def test_two_pushes_of_one_branch_at_the_same_instant_one_lands_the_other_is_told_to_pull(remote, tmp_path, run_txgit):
    args, env = remote
    alice = Workspace.init(tmp_path / "alice")
    alice.commit({"start": 0}, "start")
    run_txgit("remote", "add", "origin", *args, cwd=alice.root, check=True, env=env)
    run_txgit("remote", "trust", "origin", cwd=alice.root, check=True, env=env)
    run_txgit("push", cwd=alice.root, check=True, env=env)
    url = args[0]
    run_txgit("clone", url, "bob", "--trusted", *args[3:], cwd=tmp_path, check=True, env=env)
    bob = Workspace.open(tmp_path / "bob")
    every: list[tuple[str, dict]] = []
    for r in range(3):
        tips = {}
        for ws in (alice, bob):
            ns: dict = {}
            ws.checkout("main", ns, trust=True)
            ns.update(_state(ws.root.name, r))
            tips[ws.root.name] = (ws.commit(ns, f"{ws.root.name} {r}").info.id, ns)
        got = _at_once([(["push"], alice.root), (["push"], bob.root)], tmp_path / "go", env)
        won = [p for p in got if p.returncode == 0]
        lost = [p for p in got if p.returncode != 0]
        assert len(won) == 1 and len(lost) == 1, [(p.returncode, p.stdout, p.stderr) for p in got]
        assert lost[0].stderr.count("\n") == 1 and "pull first" in lost[0].stderr, lost[0].stderr
        winner = "alice" if got[0].returncode == 0 else "bob"
        # a third person's fresh clone has the winner's state, whole
        carol = tmp_path / f"carol{r}"
        run_txgit("clone", url, carol.name, "--eager", "--trusted", *args[3:], cwd=tmp_path, check=True, env=env)
        assert run_txgit("fsck", cwd=carol, env=env).returncode == 0
        c = Workspace.open(carol)
        tip, ns = tips[winner]
        assert c.head().id == tip
        for name, value in ns.items():
            if not name.startswith("__"):
                assert np.array_equal(c.load(name, tip), value) if isinstance(value, np.ndarray) \
                    else c.load(name, tip) == value, name
        # the loser pulls (a merge), pushes; the winner pulls that
        loser = bob if winner == "alice" else alice
        run_txgit("pull", cwd=loser.root, check=True, env=env)
        run_txgit("push", cwd=loser.root, check=True, env=env)
        for ws in (alice, bob):
            run_txgit("pull", cwd=ws.root, check=True, env=env)
        assert alice.head().id == bob.head().id
        every.extend(tips.values())
    # both people's commits of every round are on the remote's main now, each state whole
    final = tmp_path / "dave"
    run_txgit("clone", url, final.name, "--eager", "--trusted", *args[3:], cwd=tmp_path, check=True, env=env)
    assert run_txgit("fsck", "--remote", "origin", cwd=final, env=env).returncode == 0
    dave = Workspace.open(final)
    for tip, ns in every:
        assert dave.history.repo.descendant_of(dave.history.repo.head.target, pygit2.Oid(hex=tip))
        for name, value in ns.items():
            if not name.startswith("__"):
                assert np.array_equal(dave.load(name, tip), value) if isinstance(value, np.ndarray) \
                    else dave.load(name, tip) == value, name


def test_a_loose_blob_deleted_behind_the_remote_index_is_sent_again_by_the_push_that_needs_it(tmp_path, s3,
                                                                                               monkeypatch, run_txgit):
    """The remote index records the big chunks a push stored loose on S3. Such a chunk, uploaded for a
    branch since deleted, was removed from the bucket (a clean-up of what no branch named): the
    index still recorded it, so a push of main with the same array took the record's word, sent the
    other blobs, moved main, and every clone of it failed (`blob 8d994d0e4674 is missing from
    s3://…`); pushing again changed nothing (`Everything up-to-date`). A loose record is now asked
    about unless a branch of the remote vouches for it."""
    for k, v in S3_ENV.items():
        monkeypatch.setenv(k, v)
    make_bucket(s3, "behind-the-index")
    opt = ["--storage-option", f"endpoint_url={s3}"]
    alice = Workspace.init(tmp_path / "alice")
    alice.commit({"y": 0}, "start")
    run_txgit("remote", "add", "origin", str(tmp_path / "team.git"), "--storage", "s3://behind-the-index/team",
              *opt, cwd=alice.root, check=True)
    run_txgit("push", cwd=alice.root, check=True)
    x = np.random.default_rng(1).random(400_000)  # 3.2 MB: 1 MiB chunks, stored loose on S3
    ns: dict = {}
    alice.checkout("main", ns, new_branch="tmp")
    alice.commit({**ns, "x": x}, "x on a side branch")
    run_txgit("push", "origin", "tmp", cwd=alice.root, check=True)
    run_txgit("push", "origin", "--delete", "tmp", cwd=alice.root, check=True)
    store = alice.remotes.store("origin")
    store.packs.refresh()
    state = alice.state("tmp")
    chunks = sorted(state.groups[state.variables["x"].group].chunk_names())
    victim = next(c for c in chunks if c not in store.packs.packed())
    assert store.packs.where[victim].offset == -1  # the index records it, stored loose
    store.fs.rm(store.path(victim))  # behind the index's back

    ns = {}
    alice.checkout("main", ns)
    alice.commit({**ns, "x": x, "y": 1}, "x on main")
    out = run_txgit("push", cwd=alice.root, check=True).stdout
    assert "2 of" in out, out  # y's blob, and the chunk the storage lost
    carol = tmp_path / "carol"
    run_txgit("clone", str(tmp_path / "team.git"), carol.name, "--eager", "--trusted", *opt, cwd=tmp_path,
              check=True)
    assert run_txgit("fsck", "--remote", "origin", cwd=carol).returncode == 0
    assert np.array_equal(Workspace.open(carol).load("x"), x)

    # a new git remote on the same storage: its first push lists the storage once, and a loose chunk
    # gone from the listing goes again whatever the index recorded
    other = next(c for c in chunks if c not in store.packs.packed() and c != victim)
    store.fs.rm(store.path(other))
    run_txgit("remote", "add", "second", str(tmp_path / "second.git"), "--storage", "s3://behind-the-index/team",
              *opt, cwd=alice.root, check=True)
    out = run_txgit("push", "second", cwd=alice.root, check=True).stdout
    assert "1 of" in out, out
    dave = tmp_path / "dave"
    run_txgit("clone", str(tmp_path / "second.git"), dave.name, "--eager", "--trusted", *opt, cwd=tmp_path,
              check=True)
    assert np.array_equal(Workspace.open(dave).load("x"), x)

    # the next push of main: the remote's main vouches for x's chunks, none of them is asked about
    n0 = len(s3_requests(s3, "behind-the-index"))
    ns = {}
    alice.checkout("main", ns)
    alice.commit({**ns, "y": 2}, "y = 2")
    run_txgit("push", cwd=alice.root, check=True)
    heads = [p for m, p in s3_requests(s3, "behind-the-index")[n0:] if m == "HEAD"]
    assert not [p for p in heads if any(c in p for c in chunks)], heads


@pytest.mark.parametrize("point, first, moved", [
    ("txgit.packs:PackSet.write", "index_without_pack", False),  # the pack's index landed, the pack not
    ("txgit.remote:_config_commit", None, False),  # every blob stored, no ref moved
    ("txgit.remote:Remotes._record_pushed", None, True),  # the remote's branch moved, not recorded here
])
def test_a_push_killed_at_each_step_leaves_readers_a_whole_state_and_its_rerun_completes(point, first, moved,
                                                                                       tmp_path, s3, monkeypatch,
                                                                                       run_txgit):
    """kill -9 of `txgit push` (git daemon, blobs in S3) at each step that leaves something on the
    remote: a clone made right after it gets the state before the push or after it, whole, and the
    same push run again lands it."""
    from killpoint import txgit_killed_at

    for k, v in S3_ENV.items():
        monkeypatch.setenv(k, v)
    bucket = f"killed-{point.rsplit(':', 1)[-1].rsplit('.', 1)[-1].lower().replace('_', '-').strip('-')}"
    make_bucket(s3, bucket)
    base = tmp_path / "served"
    base.mkdir()
    init_bare(base / "team.git")
    opt = ["--storage-option", f"endpoint_url={s3}"]
    with git_daemon(base) as url:
        alice = Workspace.init(tmp_path / "alice")
        before = alice.commit(_state("alice", 0), "before").info.id
        run_txgit("remote", "add", "origin", f"{url}/team.git", "--storage", f"s3://{bucket}/team", *opt,
                  cwd=alice.root, check=True)
        run_txgit("push", cwd=alice.root, check=True)
        ns = _state("alice", 1)
        after = alice.commit(ns, "after").info.id
        killed = txgit_killed_at(point, "push", cwd=alice.root, first=first)
        assert killed.returncode == -9, killed.stderr
        if first == "index_without_pack":  # killed in the upload: an index on S3 whose pack is not there
            store = alice.remotes.store("origin")
            store.packs.refresh()
            assert [why for why in store.packs.broken.values() if "its pack holds 0 bytes" in why]

        run_txgit("clone", f"{url}/team.git", "carol", "--eager", "--trusted", *opt, cwd=tmp_path, check=True)
        assert run_txgit("fsck", cwd=tmp_path / "carol").returncode == 0
        carol = Workspace.open(tmp_path / "carol")
        assert carol.head().id == (after if moved else before)
        assert carol.load("round") == (1 if moved else 0)
        assert np.array_equal(carol.load("alice_arr"), _state("alice", 1 if moved else 0)["alice_arr"])

        out = run_txgit("push", cwd=alice.root, check=True).stdout
        assert ("Everything up-to-date" in out) == moved, out
        run_txgit("clone", f"{url}/team.git", "dave", "--eager", "--trusted", *opt, cwd=tmp_path, check=True)
        dave = Workspace.open(tmp_path / "dave")
        assert dave.head().id == after and alice.remotes.upstream("main") == ("origin", "main")
        assert run_txgit("fsck", "--remote", "origin", cwd=tmp_path / "dave").returncode == 0
        for name, value in ns.items():
            assert np.array_equal(dave.load(name), value) if isinstance(value, np.ndarray) \
                else dave.load(name) == value, name
