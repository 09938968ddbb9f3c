"""Crash safety, the short version of tests/stress/crash_stress.py (run that for 200+ trials):
a worker committing, switching branches, pushing to a local remote and running gc is SIGKILLed at
random instants; after each kill fsck passes, every commit it completed checks out exactly, the
remote's branches name only commits whose blobs its storage holds, and pushing again completes."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "stress"))

import crash_stress  # noqa: E402


def test_random_kills_lose_nothing(tmp_path):
    result = crash_stress.run(12, seed=7, block=6, max_delay=0.8, workdir=tmp_path, verbose=False)
    assert result["failures"] == []
    assert result["trials"] == 12 and result["completed_commits"] > 12
    assert (tmp_path / "remote0.git" / "refs").is_dir()  # the workers did push


def test_git_lock_files_left_by_a_killed_writer_do_not_block_later_writes(ws):
    from conftest import session_namespace

    ns = session_namespace("a = 1\n")
    ws.commit(ns, "one")
    repo = Path(ws.history.repo.path)
    # what a writer SIGKILLed inside libgit2's ref update leaves behind
    for stale in ("refs/heads/main.lock", "HEAD.lock", "logs/refs/heads/main.lock"):
        (repo / stale).write_text("")
    ns["a"] = 2
    assert ws.commit(ns, "two").info.summary == "two"  # without the cleanup: OSError "failed to lock file"
    ws.checkout("HEAD~1", ns)
    assert ns["a"] == 1 and not list(repo.rglob("*.lock"))


def test_a_first_push_killed_while_making_its_folder_remote_leaves_no_half_made_remote(tmp_path, run_txgit):
    """A first push killed (kill -9) inside `git init` of the folder remote it creates left the folder
    half made, and every later push said "exists but is not a git repository". The remote is made
    beside its place and renamed into it: the next push finds no folder and completes. A half-made
    folder left by an older version is named for what it is, with advice that works."""
    from cliutil import assert_one_line_error
    from killpoint import txgit_killed_at

    from txgit import Workspace

    ws = Workspace.init(tmp_path / "alice")
    ws.commit({"x": 1}, "one")
    run_txgit("remote", "add", "origin", str(tmp_path / "team.git"), cwd=ws.root, check=True)
    killed = txgit_killed_at("pygit2:init_repository", "push", cwd=ws.root, first="half_made_repository")
    assert killed.returncode == -9, killed.stderr
    pushed = run_txgit("push", cwd=ws.root)
    assert pushed.returncode == 0, pushed.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alice", "team.git"]  # nothing left beside it
    clone = Workspace.clone(str(tmp_path / "team.git"), tmp_path / "bob")
    assert clone.fsck().ok and clone.head().id == ws.head().id

    old = tmp_path / "old.git"  # what a push of an older version killed there left
    import killpoint

    killpoint.half_made_repository(str(old))
    run_txgit("remote", "add", "old", str(old), cwd=ws.root, check=True)
    refused = run_txgit("push", "old", cwd=ws.root)
    assert_one_line_error(refused, f"`rm -r {old}`", "push again")
    assert old.is_dir()  # left for the user to look at, not removed behind their back
    import shutil

    shutil.rmtree(old)  # as the advice says
    assert run_txgit("push", "old", cwd=ws.root).returncode == 0
    assert Workspace.clone(str(old), tmp_path / "carol").head().id == ws.head().id
