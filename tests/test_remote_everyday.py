"""Remotes in everyday use, as a git user expects them (issue 21): remote-tracking branches in the
log and the web page, fsck in a lazy clone, Ctrl-C in the middle of a transfer, progress bars.

Every CLI check runs the real `txgit` in a subprocess, as a user types it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from conftest import session_namespace
from txgit import Workspace


def _alice(tmp_path: Path, remote: Path) -> Workspace:
    """A workspace with one commit pushed to a local remote (blobs beside the bare repository)."""
    ws = Workspace.init(tmp_path / "alice")
    ws.commit(session_namespace("x = 1\nweights = list(range(1000))"), "first")
    ws.remotes.add("origin", str(remote))
    ws.push()
    return ws


def _serve(cwd: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "txgit", "serve", "--port", "0"], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.search(r"at (http://127\.0\.0\.1:\d+/) ", line)
    if not m:
        proc.kill()
        raise AssertionError((line, proc.communicate()[1]))
    return proc, m.group(1)


# -- 10. remote-tracking branches in log, log --all and serve ------------------------------------

def test_remote_tracking_branches_decorate_log_and_serve(tmp_path, run_txgit):
    remote = tmp_path / "r.git"
    alice = _alice(tmp_path, remote)
    first = alice.head().id
    run_txgit("clone", str(remote), "bob", cwd=tmp_path, check=True)
    bob = tmp_path / "bob"
    out = run_txgit("log", "--oneline", cwd=bob, check=True).stdout
    assert out.splitlines()[0].startswith(f"{first[:8]} (HEAD -> main, origin/main) first"), out

    alice.commit(session_namespace("x = 2\nweights = list(range(1000))"), "second")
    second = alice.head().id
    alice.push()
    run_txgit("fetch", cwd=bob, check=True)
    # bob's main is behind: log (from HEAD) stops at his tip, log --all shows what only origin/main reaches
    out = run_txgit("log", "--oneline", cwd=bob, check=True).stdout
    assert second[:8] not in out and out.splitlines()[0].startswith(f"{first[:8]} (HEAD -> main) first"), out
    out = run_txgit("log", "--oneline", "--all", cwd=bob, check=True).stdout
    assert out.splitlines()[:2] == [f"{second[:8]} (origin/main) second", f"{first[:8]} (HEAD -> main) first"], out
    out = run_txgit("log", "--all", "--graph", "--oneline", cwd=bob, check=True).stdout
    assert f"{second[:8]} (origin/main) second" in out, out
    out = run_txgit("log", "origin/main", cwd=bob, check=True).stdout
    assert f"commit {second} (origin/main)" in out, out

    # the web page: the fetched commit is in the graph, labelled origin/main as a remote branch
    proc, url = _serve(bob)
    try:
        html = urllib.request.urlopen(url, timeout=10).read().decode()
        page = urllib.request.urlopen(f"{url}commit/{second}", timeout=10).read().decode()
    finally:
        proc.terminate()
        proc.wait(10)
    assert f'data-commit="{second}"' in html and "2 commits" in html
    assert '<span class="txgit-ref remote">origin/main</span>' in html
    assert '<span class="txgit-ref head">HEAD -&gt; main</span>' in html
    assert '<span class="txgit-ref remote">origin/main</span>' in page
    assert f"{second[:8]} (origin/main) second" in html  # in the diff form's choices too
