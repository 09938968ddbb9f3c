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

from conftest import damage_blob, session_namespace
from txgit import Workspace, packs


def _alice(tmp_path: Path, remote: Path) -> Workspace:
    """A workspace with one commit pushed to a local remote (blobs beside the bare repository)."""
    ws = Workspace.init(tmp_path / "alice")
    ws.commit(session_namespace("x = 1\nweights = list(range(1000))"), "first")
    ws.remotes.add("origin", str(remote))
    ws.push()
    return ws


def _alice_exp_and_bob(tmp_path: Path, run_txgit, **push) -> tuple[Workspace, Path, Path]:
    """Alice's workspace with branch exp pushed too (``push``: more push options), and Bob's clone of it:
    (Alice, the remote, Bob's folder)."""
    remote = tmp_path / "r.git"
    alice = _alice(tmp_path, remote)
    alice.create_branch("exp")
    alice.push(branch="exp", **push)
    run_txgit("clone", str(remote), "bob", cwd=tmp_path, check=True)
    return alice, remote, tmp_path / "bob"


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


def test_branch_a_and_r_list_the_remote_tracking_branches(tmp_path, run_txgit):
    """`txgit branch -a` / `-r` (git's habit for "what branches does the remote have") were unknown options."""
    alice, remote, bob = _alice_exp_and_bob(tmp_path, run_txgit)
    run_txgit("branch", "mine", cwd=bob, check=True)
    short = alice.head().id[:8]
    out = run_txgit("branch", "-r", cwd=bob, check=True).stdout.splitlines()
    assert out == [f"  origin/exp   {short} first", f"  origin/main  {short} first"], out
    out = run_txgit("branch", "-a", cwd=bob, check=True).stdout.splitlines()
    assert [line.split()[0] for line in out] == ["exp", "*", "mine", "remotes/origin/exp", "remotes/origin/main"], out
    assert out[1] == f"* main                 {short} first", out
    assert run_txgit("branch", "--all", cwd=bob, check=True).stdout.splitlines() == out
    # a branch deleted on the remote leaves the list at the next fetch
    subprocess.run(["git", "--git-dir", str(remote), "branch", "-D", "exp"], check=True, capture_output=True)
    assert "[deleted]" in run_txgit("fetch", cwd=bob, check=True).stdout
    assert run_txgit("branch", "-r", cwd=bob, check=True).stdout.split()[0] == "origin/main"
    # -a and -r only list
    refused = run_txgit("branch", "-a", "new", cwd=bob)
    assert refused.returncode != 0 and refused.stderr.count("\n") == 1 and "only list" in refused.stderr, refused.stderr


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
    damage_blob(ws.store, rotten)

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
    # 120 small variables (120 blobs: one pack) and one of 2.5 MiB (three chunks, the last one shorter)
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
    assert total == pushed.bytes_uploaded == sum(clone.store.size(n) for n in clone.store.names())


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


# -- 6. Ctrl-C in the middle of push, fetch, clone and commit -------------------------------------

def _interrupt_when(args: list[str], cwd: Path, ready, *, delay: str = "30") -> tuple[int, str, str]:
    """Start `txgit ARGS` with slowed transfers, send it SIGINT (Ctrl-C) once ``ready()`` holds, and
    return (exit status, stdout, stderr). Each batch waits ``delay`` seconds after it lands, a wait the
    interrupt ends: the test may see the first batch late (a loaded machine) and still interrupt mid-transfer
    (with 2 s, a test that saw it 2 s late found all 400 blobs uploaded)."""
    import signal

    proc = subprocess.Popen([sys.executable, "-m", "txgit", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "TXGIT_DEBUG_TRANSFER_DELAY": delay})
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.01)
    assert proc.poll() is None, proc.communicate()  # still running: the interrupt comes mid-transfer
    # how the child handles SIGINT, read as it is sent: a Ctrl-C that once went unheeded (the push ran
    # to its end and exited 0) is then explained by the next failure
    try:
        masks = [line for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                 if line.startswith(("SigBlk", "SigIgn", "SigCgt"))]
    except OSError:
        masks = []
    sent = time.time()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=90)
    why = (f"SIGINT not heeded: exit {proc.returncode} {time.time() - sent:.1f} s after it; child {masks}; "
           f"ours {signal.getsignal(signal.SIGINT)}")
    assert proc.returncode == 130, (why, out, err)
    return proc.returncode, out, err


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")} if folder.exists() \
        else set()


def _remote_is_whole(ws: Workspace, remote: Path) -> list[str]:
    """The remote's branches, each naming a commit all of whose blobs its storage holds."""
    import pygit2

    repo = pygit2.Repository(str(remote))
    held = {p.parent.name + p.name for p in _files(remote / "txgit-objects")}
    heads = [r for r in repo.references if r.startswith("refs/heads/")]
    for ref in heads:
        tip = str(repo.references[ref].target)
        named = ws.remotes._blobs_of(ws.remotes._new_commits([tip], []))[0]
        assert named <= held, f"{ref} names {len(named - held)} blobs {remote} lacks"
    return heads


def _many(n: int = 400) -> dict:
    """``n`` variables of one blob each, just over the size that goes into packs: they stay loose and
    move in batches, so an interrupt lands between batches (small blobs move as one pack: all or none)."""
    ns = session_namespace()
    ns.update({f"v{i}": bytes([i % 251]) * (packs.SMALL_BLOB_MAX + 64 + i) for i in range(n)})
    return ns


def test_ctrl_c_during_push_says_nothing_changed_on_the_remote(tmp_path, run_txgit):
    remote = tmp_path / "r.git"
    alice = _alice(tmp_path, remote)
    before = alice.head().id
    alice.commit(_many(), "400 variables")
    store = remote / "txgit-objects"
    had = len(_files(store))
    landed: list[float] = []

    def seen_late() -> bool:
        """A blob has landed, seen 2.5 s late, as a test under load can see it."""
        if not landed and len(_files(store)) > had:
            landed.append(time.time())
        return bool(landed) and time.time() - landed[0] > 2.5

    code, out, err = _interrupt_when(["push"], alice.root, seen_late)
    assert code == 130, (out, err)
    uploaded = len(_files(store)) - had
    assert err.splitlines() == [
        f"txgit: interrupted: nothing was changed on origin: its branches are where they were ({uploaded} of 400 "
        "blobs were uploaded already: the next push sends only the rest)"], err
    assert 0 < uploaded < 400 and out == ""
    assert _remote_is_whole(alice, remote) == ["refs/heads/main"]
    assert str(__import__("pygit2").Repository(str(remote)).references["refs/heads/main"].target) == before
    assert run_txgit("fsck", cwd=alice.root).returncode == 0
    # pushed again, it sends the rest only
    out = run_txgit("push", cwd=alice.root, check=True).stdout
    assert f"{400 - uploaded} of 400 blobs uploaded" in out

    # a push that creates the remote takes it away again when interrupted
    run_txgit("remote", "add", "fresh", str(tmp_path / "new.git"), cwd=alice.root, check=True)
    code, out, err = _interrupt_when(["push", "fresh"], alice.root, lambda: bool(_files(tmp_path / "new.git")))
    assert code == 130 and err == (f"txgit: interrupted: nothing was changed on fresh: what this push had created "
                                   f"was removed ({tmp_path / 'new.git'})\n"), err
    assert not (tmp_path / "new.git").exists()


def test_ctrl_c_during_clone_and_fetch(tmp_path, run_txgit):
    remote = tmp_path / "r.git"
    alice = _alice(tmp_path, remote)
    alice.commit(_many(), "400 variables")
    alice.push()

    objects = tmp_path / "c" / ".txgit" / "objects"
    code, out, err = _interrupt_when(["clone", "--eager", str(remote), "c"], tmp_path,
                                     lambda: bool(_files(objects)))
    assert code == 130 and err == (f"txgit: interrupted: nothing was cloned: the half-made workspace was removed "
                                   f"({tmp_path / 'c'})\n"), (out, err)
    assert not (tmp_path / "c").exists(), sorted(str(p) for p in (tmp_path / "c").rglob("*"))

    run_txgit("clone", str(remote), "bob", cwd=tmp_path, check=True)
    bob = tmp_path / "bob"
    alice.commit(_many(300) | {"extra": list(range(5000))}, "more")
    alice.push()
    objects = bob / ".txgit" / "objects"
    code, out, err = _interrupt_when(["fetch", "--eager"], bob, lambda: bool(_files(objects)))
    assert code == 130, (out, err)
    m = re.fullmatch(r"txgit: interrupted: the fetch from origin had updated origin/main; (\d+) of (\d+) blobs were "
                     r"downloaded \(the others come on demand, or with `txgit fetch --eager`\)\n", err)
    assert m and 0 < int(m.group(1)) < int(m.group(2)), err
    assert run_txgit("log", "--oneline", "-n", "1", "origin/main", cwd=bob, check=True).stdout.startswith(
        f"{alice.head().short_id} (origin/main) more")
    proc = run_txgit("fsck", cwd=bob)  # whole: what did not come yet is on the remote
    assert proc.returncode == 0 and "not downloaded yet: on remote origin" in proc.stdout, proc.stdout + proc.stderr


def test_ctrl_c_while_a_transfer_starts_its_first_worker_waits_for_it_and_counts_its_batch(tmp_path, monkeypatch):
    """test_ctrl_c_during_clone_and_fetch failed 2 runs in 7 on a loaded machine: said "0 of 302 blobs
    were downloaded" with all 302 there, and left the interrupted clone's folder behind. The Ctrl-C
    had landed inside the thread pool's submit, while it started its first worker: that batch was
    queued (and ran) but its future never reached the transfer's list, so the transfer neither waited
    for it nor counted it, and the clone's rmtree ran while it still wrote. Here the interrupt lands at
    that instant every time (a thread start that raises once the worker is under way)."""
    import threading

    from txgit.remote import Remotes, _Tally

    started, landed = threading.Event(), []
    real_start = threading.Thread.start

    def start_then_interrupt(thread: threading.Thread) -> None:
        real_start(thread)
        if thread.name.startswith("ThreadPoolExecutor") and not started.is_set():
            started.set()
            raise KeyboardInterrupt  # as the signal handler raises it, once the worker holds the batch

    def write(blobs):
        time.sleep(0.3)  # the batch is still being written when the interrupt surfaces
        landed.append((time.monotonic(), len(blobs)))
        return sum(len(d) for d in blobs.values())

    names = [f"{i:064x}" for i in range(8)]
    tally = _Tally()
    monkeypatch.setattr(threading.Thread, "start", start_then_interrupt)
    remotes = Remotes(Workspace.init(tmp_path / "ws"))
    try:
        remotes._transfer(names, lambda batch: {n: b"x" for n in batch}, write, dict.fromkeys(names, 1),
                          "download", None, tally=tally)
        raise AssertionError("the interrupt did not surface")
    except KeyboardInterrupt:
        surfaced = time.monotonic()
    monkeypatch.undo()
    assert landed and all(at <= surfaced for at, _ in landed), "a batch was still being written after the interrupt"
    assert tally.blobs == sum(n for _, n in landed) > 0, (tally, landed)


def test_a_clone_killed_midway_is_finished_by_cloning_again(tmp_path, run_txgit):
    """A clone killed (SIGKILL: no cleanup runs) while it downloaded left a workspace that looked whole,
    and `txgit clone` again refused it: "already a txgit workspace". A clone that did not finish is
    marked so; cloning again replaces it while it holds nothing of its own, else says what it is."""
    import signal

    remote = tmp_path / "r.git"
    alice = _alice(tmp_path, remote)
    alice.commit(_many(200), "200 variables")
    alice.push()
    objects = tmp_path / "c" / ".txgit" / "objects"
    proc = subprocess.Popen([sys.executable, "-m", "txgit", "clone", "--eager", str(remote), "c"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TXGIT_DEBUG_TRANSFER_DELAY": "30"})
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None and not _files(objects):
        time.sleep(0.01)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    status = run_txgit("status", cwd=tmp_path / "c", check=True).stdout
    assert f"This clone of {remote} did not finish (its process was stopped): cloning again" in status, status
    again = run_txgit("clone", "--eager", str(remote), "c", cwd=tmp_path)
    assert again.returncode == 0 and again.stderr == "", again.stdout + again.stderr
    assert "a clone into" in again.stdout and "had not finished: cloned again" in again.stdout, again.stdout
    c = Workspace.open(tmp_path / "c")
    assert c.head().id == alice.head().id and c.remotes.upstream("main") == ("origin", "main")
    proc = run_txgit("fsck", cwd=c.root)
    assert proc.returncode == 0 and proc.stdout.strip().endswith(": ok"), proc.stdout + proc.stderr
    # a finished clone is a workspace like any other: cloning into it again is refused
    refused = run_txgit("clone", str(remote), "c", cwd=tmp_path)
    assert refused.returncode == 1 and refused.stderr == f"txgit: error: already a txgit workspace: {c.root}\n"


def test_ctrl_c_during_a_terminal_commit_of_a_large_state(tmp_path, run_txgit):
    """`txgit commit` of a kernel's large state, interrupted: the terminal stops waiting and says the
    kernel goes on; the kernel's commit lands whole, and fsck passes."""
    from kernelutil import Kernel

    ws = Workspace.init(tmp_path / "ws")
    started = tmp_path / "pickling-started"
    k = Kernel(ws.root)
    try:
        k.ok("%load_ext txgit\n%txgit auto off")
        # 64 MB of data, and objects slow to pickle (0.05 s each): a commit that takes a few seconds,
        # which says when it has started
        k.ok("import os, time\nbig = os.urandom(64 << 20)\n"
             "class Slow:\n    def __init__(self, i): self.i = i\n"
             "    def __reduce__(self):\n"
             f"        open({str(started)!r}, 'a').close(); time.sleep(0.05); return (Slow, (self.i,))\n"
             "slow = [Slow(i) for i in range(60)]")
        code, out, err = _interrupt_when(["commit", "-m", "large"], ws.root, started.exists)
        assert code == 130, (out, err)
        assert err == (f"txgit: interrupted: stopped waiting for kernel {k.pid}, which goes on with the commit (a "
                       "commit is written whole or not at all: `txgit log` shows it once it is)\n"), err
        k.ok("1")  # the kernel answers once it is done with the commit
        k.settle()
        ws = Workspace.open(ws.root)
        assert ws.head().summary == "large" and len(ws.load("big")) == 64 << 20
        proc = run_txgit("fsck", cwd=ws.root)
        assert proc.returncode == 0 and proc.stdout.strip().endswith(": ok"), proc.stdout + proc.stderr
    finally:
        k.shutdown()


def test_a_pull_of_a_branch_deleted_on_the_remote_says_so_and_what_to_do(tmp_path, run_txgit):
    """Alice deleted exp on the remote; Bob's exp tracked it. His pull said only "remote 'origin' has no
    branch 'exp'", as if he had mistyped, with nothing on what to do next."""
    _, remote, bob = _alice_exp_and_bob(tmp_path, run_txgit)
    run_txgit("checkout", "exp", cwd=bob, check=True)
    subprocess.run(["git", "--git-dir", str(remote), "branch", "-D", "exp"], check=True, capture_output=True)
    refused = run_txgit("pull", cwd=bob)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert ("remote 'origin' has no branch 'exp' any more (deleted there since exp began tracking it): "
            "`txgit push origin exp` publishes yours again, `txgit pull origin BRANCH` merges another") \
        in refused.stderr, refused.stderr


def test_a_push_that_makes_again_a_branch_deleted_on_the_remote_says_so(tmp_path, run_txgit):
    """Alice deleted exp on the remote; Bob, who had not fetched since, pushed exp (the panel's Push does
    the same) and was told "new exp -> origin/exp", as for a first publish: her deletion was undone
    without a word. The push still goes through (as git's does), and says what it undid."""
    _, remote, bob = _alice_exp_and_bob(tmp_path, run_txgit)
    run_txgit("checkout", "exp", cwd=bob, check=True)
    subprocess.run(["git", "--git-dir", str(remote), "branch", "-D", "exp"], check=True, capture_output=True)
    out = run_txgit("push", cwd=bob, check=True).stdout
    assert ("exp -> origin/exp (it was deleted on origin since your last fetch: this push made it again; "
            "`txgit push origin --delete exp` deletes it)") in out, out
    again = run_txgit("push", cwd=bob, check=True).stdout  # now known there: nothing more to say
    assert "deleted" not in again, again
    # the Python API says it too (PushResult.recreated), not only the command line
    subprocess.run(["git", "--git-dir", str(remote), "branch", "-D", "exp"], check=True, capture_output=True)
    pushed = Workspace(bob).push()
    assert pushed.recreated == ["refs/heads/exp"] and Workspace(bob).push().recreated == [], pushed


def test_push_delete_removes_a_branch_from_the_remote(tmp_path, run_txgit):
    """`txgit push origin --delete exp` (git's way to take a branch off a remote) was an unknown option:
    the only way was raw git on the remote."""
    alice, remote, bob = _alice_exp_and_bob(tmp_path, run_txgit, set_upstream=True)
    tip = alice.resolve("exp").short_id
    out = run_txgit("push", "origin", "--delete", "exp", cwd=alice.root, check=True).stdout
    assert out == f"  - [deleted]        exp (was {tip})\n", out
    assert "origin/exp" not in alice.remote_branches() and "exp" in alice.branches()  # the local one stays
    heads = subprocess.run(["git", "--git-dir", str(remote), "branch"], capture_output=True, text=True, check=True).stdout
    assert heads.split() == ["*", "main"], heads
    assert "[deleted]          origin/exp" in run_txgit("fetch", cwd=bob, check=True).stdout
    # a branch the remote lacks, or --delete with what it cannot go with: one line, nothing moved
    gone = run_txgit("push", "origin", "--delete", "exp", cwd=alice.root)
    assert gone.returncode == 1 and gone.stderr == "txgit: error: remote 'origin' has no branch 'exp': nothing to delete\n"
    for args in (["push", "--delete"], ["push", "origin", "--delete", "main"],  # the remote's default branch
                 ["push", "origin", "--delete", "main", "--all"],
                 ["push", "origin", "--delete", "main", "--force"]):
        refused = run_txgit(*args, cwd=alice.root)
        assert refused.returncode != 0 and refused.stderr.count("\n") == 1, (args, refused.stderr)
    assert "origin/main" in alice.remote_branches()
    assert subprocess.run(["git", "--git-dir", str(remote), "branch"], capture_output=True, text=True, check=True).stdout.split() \
        == ["*", "main"]


def test_a_remote_branch_not_fetched_yet_says_to_fetch(tmp_path, run_txgit):
    """Alice pushed exp after Bob cloned; Bob's `txgit diff origin/exp` said only "unknown revision
    'origin/exp'", as for a typo, though origin is his remote and a fetch brings it."""
    remote = tmp_path / "r.git"
    alice = _alice(tmp_path, remote)
    run_txgit("clone", str(remote), "bob", cwd=tmp_path, check=True)
    bob = tmp_path / "bob"
    alice.create_branch("exp")
    alice.push(branch="exp")
    for args in (["diff", "origin/exp"], ["log", "origin/exp"], ["show", "origin/exp"]):
        refused = run_txgit(*args, cwd=bob)
        assert refused.returncode == 1 and refused.stderr == (
            "txgit: error: unknown revision 'origin/exp' (origin has no branch 'exp' as of the last fetch: "
            "`txgit fetch origin` brings its new branches)\n"), refused.stderr
    run_txgit("fetch", cwd=bob, check=True)
    assert "no differences" in run_txgit("diff", "origin/exp", cwd=bob, check=True).stdout
    # a name that is no remote's is a plain unknown revision, as before
    assert run_txgit("show", "nope/exp", cwd=bob).stderr == "txgit: error: unknown revision 'nope/exp'\n"


def test_a_push_waits_for_the_commit_a_kernel_is_still_writing(tmp_path):
    """A kernel writes each cell's commit in the background, holding the workspace lock. `txgit push`
    typed right after a cell with a big array read the branch before that commit landed, said
    "Everything up-to-date", and the cell's work was not pushed. The push now waits for the writer.
    (Here the writer is this test, holding the lock the way the kernel's background thread does.)"""
    remote = tmp_path / "r.git"
    alice = _alice(tmp_path, remote)
    ns = session_namespace("x = 2\nweights = list(range(1000))")
    writer = alice.hold_lock()
    try:
        push = subprocess.Popen([sys.executable, "-m", "txgit", "push"], cwd=alice.root, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(2)  # the push has started and read what it reads before it waits, if it waits at all
        alice.finish_commit(alice.prepare_commit(ns, "the cell's commit", ref="refs/heads/main"))
    finally:
        writer.release()
    out, err = push.communicate(timeout=120)
    assert push.returncode == 0, err
    assert "main -> origin/main" in out and "Everything up-to-date" not in out, out
    assert alice.remote_branches()["origin/main"] == alice.head().id


def test_status_and_log_wait_for_the_commit_a_kernel_is_still_writing(tmp_path):
    """`txgit status` and `txgit log` typed right after a cell showed HEAD before the cell's commit,
    which the kernel's background writer was still writing (holding the workspace lock): the terminal
    said the work was not committed. They wait for the writer, as push does (the writer here is this
    test, holding the lock the way the kernel's background thread does)."""
    remote = tmp_path / "r.git"
    alice = _alice(tmp_path, remote)
    ns = session_namespace("x = 2\nweights = list(range(1000))")
    writer = alice.hold_lock()
    try:
        typed = [subprocess.Popen([sys.executable, "-m", "txgit", *args], cwd=alice.root, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
                 for args in (["status"], ["log", "--oneline", "-n", "1"])]
        time.sleep(2)  # the commands have started and read what they read before they wait, if they wait at all
        alice.finish_commit(alice.prepare_commit(ns, "the cell's commit", ref="refs/heads/main"))
    finally:
        writer.release()
    (status, _), (log, _) = (p.communicate(timeout=120) for p in typed)
    head = alice.head()
    assert f"HEAD: {head.short_id} the cell's commit" in status, status
    assert "Your branch is ahead of 'origin/main' by 1 commit" in status, status
    assert log.startswith(f"{head.short_id} (HEAD -> main) the cell's commit"), log


def test_a_fetch_that_brings_a_tag_names_it(tmp_path, run_txgit):
    """Alice tagged a state and pushed it with --tags; Bob's fetch brought the tag but said
    "origin: up to date", so he had no reason to look for it. It names it, as git's [new tag]."""
    remote = tmp_path / "r.git"
    alice = _alice(tmp_path, remote)
    run_txgit("clone", str(remote), "bob", cwd=tmp_path, check=True)
    bob = tmp_path / "bob"
    run_txgit("tag", "v1", cwd=alice.root, check=True)
    run_txgit("push", "--tags", cwd=alice.root, check=True)
    out = run_txgit("fetch", cwd=bob, check=True).stdout
    assert out == f"  {'[new tag]':18} v1\n", out
    assert run_txgit("fetch", cwd=bob, check=True).stdout == "origin: up to date\n"


def _alice_and_bob_with_his_v1(tmp_path, *more_tags: str):
    """Alice's workspace and Bob's clone of her remote, where Bob committed x = 2 on main, tagged it v1
    (and ``more_tags``) and pushed the tags. Bob's namespace comes third."""
    remote = tmp_path / "r.git"
    alice = _alice(tmp_path, remote)
    bob = Workspace.clone(str(remote), tmp_path / "bob")
    b = session_namespace()
    bob.checkout("main", b)
    b["x"] = 2
    bob.commit(b, "bob: x")
    for tag in ("v1", *more_tags):
        bob.create_tag(tag)
    bob.push(tags=True)
    return alice, bob, b


def test_a_fetch_keeps_our_tags_and_says_which_the_remote_has_elsewhere(tmp_path, run_txgit):
    """`txgit fetch` took the remote's tags with a pruning refspec on refs/tags: every tag of Alice's that
    she had not pushed was deleted without a word (a tag of an experiment no branch holds: its commit
    then went with the next gc). And her tag v1, which Bob's pushed v1 names elsewhere, was kept
    silently (git says "! [rejected] v1 -> v1 (would clobber existing tag)"). Now her tags stay, and
    the clash is said, in the FetchResult and by the CLI, with what takes theirs."""
    alice, bob, b = _alice_and_bob_with_his_v1(tmp_path, "shared")
    a = session_namespace()
    alice.checkout("main", a)
    a["y"] = 3
    ours = alice.commit(a, "alice: y").info.id
    alice.create_tag("v1")
    alice.create_tag("experiment", message="tried, not kept on a branch")
    out = run_txgit("fetch", cwd=alice.root, check=True).stdout
    assert (f"! [rejected]       v1 (would clobber existing tag: yours is on {ours[:8]}, origin's on "
            f"{bob.tags()['v1'][:8]}; `txgit tag -f v1 {bob.tags()['v1'][:8]}` takes theirs)") in out, out
    assert f"{'[new tag]':18} shared" in out, out
    got = alice.fetch()
    assert alice.tags()["experiment"] == ours and alice.tags()["v1"] == ours
    assert alice.tags()["shared"] == bob.tags()["shared"] and got.new_tags == []
    assert got.kept_tags == {"v1": (ours, bob.tags()["v1"])}
    assert set(alice.tags()) == {"v1", "experiment", "shared"} and alice.tags()["v1"] == ours


def test_a_tag_clash_is_said_once_per_value_of_the_remotes_tag_and_ours(tmp_path, run_txgit):
    """Alice's v1 and origin's v1 name different commits: every `txgit fetch` said "! [rejected] v1 (would
    clobber existing tag ...)" again, forever, though nothing had changed (git's default fetch says
    nothing of a tag it already has; `git fetch --tags` says it every time and exits 1). Now it is said
    when the clash is new: the first time, and again when either side moves its v1; the FetchResult
    still lists it every time (kept_tags), and says which it had found before (told_tags)."""
    alice, bob, b = _alice_and_bob_with_his_v1(tmp_path)
    alice.create_tag("v1")
    clash = "! [rejected]       v1 (would clobber existing tag"
    assert clash in run_txgit("fetch", cwd=alice.root, check=True).stdout
    assert run_txgit("fetch", cwd=alice.root, check=True).stdout == "origin: up to date\n"
    again = alice.fetch()
    assert again.kept_tags == {"v1": (alice.tags()["v1"], bob.tags()["v1"])} and again.told_tags == ["v1"]
    b["x"] = 3
    bob.commit(b, "bob: x again")
    bob.create_tag("v1", force=True)
    bob.push(tags=True, force=True)
    out = run_txgit("fetch", cwd=alice.root, check=True).stdout
    assert clash in out and bob.tags()["v1"][:8] in out, out  # theirs moved: said again, once
    assert clash not in run_txgit("fetch", cwd=alice.root, check=True).stdout
    alice.create_tag("v1", "HEAD", force=True)  # (the same commit: nothing new to say)
    assert clash not in run_txgit("fetch", cwd=alice.root, check=True).stdout


def test_a_forced_push_that_moves_the_blobs_says_so(tmp_path, run_txgit):
    """docs/remotes.md: after `remote set-storage`, `push --force` uploads what the new storage lacks
    and records it on the remote. With no new commit to push, it said `Everything up-to-date`: a user
    read that nothing happened, though the blobs went up and the remote's record changed."""
    remote = tmp_path / "r.git"
    alice = _alice(tmp_path, remote)
    moved = tmp_path / "moved-blobs"
    run_txgit("remote", "set-storage", "origin", str(moved), cwd=alice.root, check=True)
    out = run_txgit("push", "--force", cwd=alice.root, check=True).stdout
    assert "Everything up-to-date" not in out, out
    assert out.splitlines()[-2:] == [
        "pushed to origin: 2 of 2 blobs uploaded" + out.splitlines()[-2].split("blobs uploaded", 1)[1],
        f"origin records its blobs at {moved} now"], out
    assert run_txgit("push", cwd=alice.root, check=True).stdout == "Everything up-to-date (origin)\n"
    run_txgit("clone", str(remote), "bob", "--eager", cwd=tmp_path, check=True)
    assert f"blobs: {moved}" in run_txgit("remote", cwd=tmp_path / "bob", check=True).stdout


def test_a_clone_whose_storage_does_not_exist_says_so_not_to_fsck(tmp_path, run_txgit):
    """A clone given a mistyped storage (a bucket or folder that does not exist) could not load a
    value, and said `blob … is missing (looked in …); run `txgit fsck` (--repair fetches blobs…)`,
    which cannot help: the line now says that the storage does not exist and how to point at another."""
    from servers import S3_ENV, make_bucket, moto_s3

    remote = tmp_path / "r.git"
    _alice(tmp_path, remote)
    with moto_s3() as endpoint:
        make_bucket(endpoint, "real-bucket")
        for name, storage in (("folder", str(tmp_path / "no-such-folder")), ("bucket", "s3://no-such-bucket/blobs"),
                              ("prefix", "s3://real-bucket/no-such-prefix")):
            run_txgit("clone", str(remote), name, "--storage", storage, "--storage-option",
                      f"endpoint_url={endpoint}", cwd=tmp_path, check=True, env=S3_ENV)
            proc = run_txgit("show", "HEAD", "x", cwd=tmp_path / name, env=S3_ENV)
            lines = proc.stderr.splitlines()
            assert proc.returncode == 1 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
            assert f"{storage} does not exist" in lines[0] and "set-storage origin" in lines[0], lines[0]
            assert "fsck" not in lines[0], lines[0]
            eager = run_txgit("fetch", "--eager", cwd=tmp_path / name, env=S3_ENV)
            assert eager.returncode == 1 and f"{storage} does not exist" in eager.stderr, eager.stderr
            assert not (tmp_path / "no-such-folder").exists()  # reading never creates anything


def test_counts_of_one_are_said_in_the_singular(tmp_path, run_txgit):
    """`txgit fsck` said "checked 1 commits, 1 blobs", `fsck --remote` "1 blobs its branches name" and
    `fetch --eager` "fetched 1 blobs", where the other lines say "1 variable", "1 commit behind"."""
    ws = Workspace.init(tmp_path / "alice")
    ws.commit(session_namespace("x = 1"), "first")
    assert run_txgit("fsck", cwd=ws.root, check=True).stdout == "checked 1 commit, 1 blob: ok\n"
    ws.remotes.add("origin", str(tmp_path / "r.git"))
    ws.push()
    # the remote's configuration (where its blobs are) is a commit of git's, not a state: not counted
    assert run_txgit("fsck", cwd=ws.root, check=True).stdout == "checked 1 commit, 1 blob: ok\n"
    assert run_txgit("fsck", "--remote", "origin", cwd=ws.root, check=True).stdout == \
        "checked remote origin: 1 blob its branches name: ok\n"
    run_txgit("clone", str(tmp_path / "r.git"), "bob", cwd=tmp_path, check=True)
    assert run_txgit("fetch", "--eager", cwd=tmp_path / "bob", check=True).stdout == "fetched 1 blob (5 bytes)\n"


def test_a_push_of_a_branch_at_a_commit_the_remote_has_says_nothing_needed_uploading(tmp_path, run_txgit):
    """A new branch at a commit the remote already has sends no blob, and said so as
    'pushed to origin: 0 of 0 blobs uploaded (0 bytes of 0 bytes of state)'."""
    alice = _alice(tmp_path, tmp_path / "r.git")
    alice.create_branch("exp")
    lines = run_txgit("push", "origin", "exp", cwd=alice.root, check=True).stdout.splitlines()
    assert lines[0].split() == ["new", "exp", "->", "origin/exp"]
    assert re.fullmatch(r"pushed to origin: no blob to upload \(origin has every one these states name\) in \d+\.\d\ds", lines[1]), lines
