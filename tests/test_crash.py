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
