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


# -- 5. fsck in a lazy clone: not downloaded yet, or missing everywhere -------------------------

def test_fsck_in_a_lazy_clone_tells_not_downloaded_from_missing(tmp_path, run_txgit):
    remote = tmp_path / "r.git"
    alice = _alice(tmp_path, remote)
    alice.commit(session_namespace("x = 2\nweights = list(range(1000))\nnotes = 'v2'"), "second")
    alice.push()
    run_txgit("clone", str(remote), "bob", cwd=tmp_path, check=True)  # lazy: no blob yet
    bob = tmp_path / "bob"
    named = set().union(*(g.chunk_names() for c in alice.log() for g in alice.state(c.id).groups.values()))

    proc = run_txgit("fsck", cwd=bob)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == (f"{len(named)} blobs not downloaded yet: on remote origin (fetched when a state needs them, "
                        "or all now with `txgit fetch --eager origin`)") and len(lines) == 2, lines
    assert re.fullmatch(rf"checked \d+ commits, {len(named)} blobs: ok \({len(named)} not downloaded yet\)", lines[1])

    # a blob gone from the remote too is missing everywhere: the one problem, naming whom fsck asked
    lost = alice.state().groups[alice.state().variables["notes"].group].chunk_names()[0]
    (remote / "txgit-objects" / lost[:2] / lost[2:]).unlink()
    proc = run_txgit("fsck", cwd=bob)
    assert proc.returncode == 1
    assert f"missing blob {lost} (notes in commit {alice.head().short_id}): on no remote (asked origin)" \
        in proc.stdout, proc.stdout
    assert f"{len(named) - 1} blobs not downloaded yet: on remote origin" in proc.stdout
    assert re.fullmatch(rf"txgit: error: checked \d+ commits, {len(named)} blobs: 1 problem\n", proc.stderr)


def test_fsck_repair_tries_the_reachable_remotes_and_says_which(tmp_path, run_txgit):
    from servers import S3_ENV, free_port

    remote = tmp_path / "r.git"
    alice = _alice(tmp_path, remote)
    run_txgit("clone", str(remote), "bob", cwd=tmp_path, check=True)
    bob = tmp_path / "bob"
    # a second remote whose storage does not answer (nothing listens on that port), configured first
    dead = f"http://127.0.0.1:{free_port()}"
    run_txgit("remote", "add", "backup", str(tmp_path / "b.git"), "--storage", "s3://gone/blobs",
              "--storage-option", f"endpoint_url={dead}", "--storage-option",
              'config_kwargs={"retries": {"max_attempts": 1}, "connect_timeout": 2}', cwd=bob, check=True)
    run_txgit("fetch", "--eager", "origin", cwd=bob, check=True)  # every blob here now
    ws = Workspace.open(bob)
    rotten = ws.state().groups[ws.state().variables["weights"].group].chunk_names()[0]
    Path(ws.store.path(rotten)).write_bytes(b"bit rot")

    proc = run_txgit("fsck", cwd=bob, env=S3_ENV)
    assert proc.returncode == 1
    assert f"corrupt blob {rotten} (weights in commit {alice.head().short_id}) (remote origin has a copy: " \
           "`txgit fsck --repair` fetches it)" in proc.stdout, proc.stdout

    proc = run_txgit("fsck", "--repair", cwd=bob, env=S3_ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"repair: tried origin ({remote / 'txgit-objects'}): 1 blob repaired", lines
    assert lines[1].startswith(f"repair: not tried backup (s3://gone/blobs): remote storage s3://gone/blobs at "
                               f"endpoint {dead} failed"), lines
    assert f"repaired blob {rotten} from {remote / 'txgit-objects'}" in lines
    assert lines[-1].endswith(": ok (1 repaired)")
    assert run_txgit("fsck", cwd=bob, check=True).stdout.strip().endswith(": ok")


# -- 7. progress with totals known in advance ---------------------------------------------------

def _checked_progress(calls: list[tuple[str, int, int]], phase: str) -> int:
    """The (phase, done, total) calls a transfer made: total known and the same from the first call,
    which says 0 done; done grows to it. Returns the total."""
    assert len(calls) > 2, calls  # several batches, so several steps
    total = calls[0][2]
    assert calls[0] == (phase, 0, total) and total > 0, calls[:3]
    assert all(p == phase and t == total for p, _, t in calls), calls
    done = [d for _, d, _ in calls]
    assert done == sorted(done) and done[-1] == total, done
    return total


def test_progress_totals_are_known_from_the_first_call(tmp_path):
    ws = Workspace.init(tmp_path / "a")
    # 120 small variables (120 blobs: four batches) and one of 2.5 MiB (three chunks, the last one shorter)
    code = "\n".join(f"v{i} = bytes(range(256)) * {i + 1}" for i in range(120))
    ws.commit(session_namespace(code + "\nbig = __import__('os').urandom(5 << 19)"), "many blobs")
    ws.remotes.add("origin", str(tmp_path / "r.git"))
    up: list[tuple[str, int, int]] = []
    pushed = ws.push(progress=lambda *call: up.append(call))
    assert _checked_progress(up, "upload") == pushed.bytes_uploaded  # the records' sizes are the bytes moved

    down: list[tuple[str, int, int]] = []
    clone = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "b", eager=True,
                            progress=lambda *call: down.append(call))
    total = _checked_progress(down, "download")
    assert total == pushed.bytes_uploaded == sum(os.path.getsize(clone.store.path(n)) for n in clone.store.names())


def test_the_cli_shows_a_bar_on_a_terminal(tmp_path):
    """`txgit clone --eager` on a terminal (a pty): a bar that starts at 0 of the known total."""
    import pty

    ws = Workspace.init(tmp_path / "a")
    # 9.8 MB in 300 blobs (past the 8 MiB from which a bar is shown), in ten batches
    code = "import os\n" + "\n".join(f"v{i} = os.urandom(32 << 10)" for i in range(300))
    ws.commit(session_namespace(code), "9.8 MB")
    ws.remotes.add("origin", str(tmp_path / "r.git"))
    ws.push()
    main, child = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "120", "TXGIT_DEBUG_TRANSFER_DELAY": "0.4"}
    proc = subprocess.Popen([sys.executable, "-m", "txgit", "clone", "--eager", str(tmp_path / "r.git"), "b"],
                            cwd=tmp_path, stdin=child, stdout=child, stderr=child, env=env)
    os.close(child)
    out = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the command ended and closed the terminal
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(60) == 0
    os.close(main)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode(errors="replace"))
    assert "downloading blobs" in text and "━" in text, text[-2000:]
    frames = [(float(a), float(b)) for a, b in re.findall(r"(\d+\.\d+)/(\d+\.\d+) MB", text)]
    assert frames and frames[0][0] == 0.0, frames  # the bar starts at nothing done...
    assert {t for _, t in frames} == {frames[0][1]} and frames[0][1] >= 9.8, frames  # ...of a total known from the start
    assert "Cloned" in text

