"""The git helper process that writes a kernel's background commits (txgit.gitwriter)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import session_namespace
from txgit.errors import InvalidName
from txgit.sessions import NamespaceSession

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_sessions import run  # noqa: E402


@pytest.fixture
def bg(ws):
    s = NamespaceSession(ws, session_namespace("import numpy as np"), kind="test")
    s.background = True
    s.start_writer()
    yield s
    s.close()


def _helper(session: NamespaceSession) -> int:
    """The pid of the session's running helper (waiting for its start in the writer thread)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        git = session._git
        if git is not None and git.pid is not None:
            return git.pid
        time.sleep(0.01)
    raise AssertionError("no git helper process started")


def _ready_helper(session: NamespaceSession) -> int:
    """The pid of the session's helper once it has said it is ready (the commits before that are
    written in-process); call it between commits (after a flush), when the writer thread is idle."""
    pid = _helper(session)
    assert session._git is not None and session._git.ready()
    return pid


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not _alive(pid)


def test_background_commits_are_written_by_the_helper_process(bg, ws):
    pid = _helper(bg)
    assert pid != os.getpid()
    run(bg, "a = np.arange(10)\nb = {'k': 1}")
    run(bg, "b['k'] = 2")
    result = bg.flush()
    assert result is not None and result.info.id == ws.head().id
    # what the kernel reports is what git holds
    head = ws.history.info(ws.history.resolve("HEAD"), ws.history.refs_by_commit())
    assert result.info == head and head.refs == ["main"]
    assert [c.summary for c in ws.log()[:2]] == ["cell: b['k'] = 2", "cell: a = np.arange(10)"]
    assert ws.load("b") == {"k": 2} and ws.load("b", ws.log()[1].id) == {"k": 1}
    assert _helper(bg) == pid  # one helper for the session, not one per commit
    assert ws.fsck().ok


def test_a_helper_killed_between_commits_is_replaced_and_nothing_is_lost(bg, ws):
    run(bg, "x = 1")
    assert bg.flush() is not None
    pid = _ready_helper(bg)
    os.kill(pid, signal.SIGKILL)
    assert _gone(pid)
    run(bg, "y = 2")
    assert bg.flush() is not None
    assert ws.load("x") == 1 and ws.load("y") == 2
    assert _helper(bg) != pid


def test_a_helper_that_dies_mid_commit_is_a_clear_error_and_the_next_commit_has_everything(bg, ws, capsys):
    run(bg, "x = 1")
    assert bg.flush() is not None
    pid = _ready_helper(bg)
    os.kill(pid, signal.SIGSTOP)  # it cannot answer the next commit...
    try:
        run(bg, "y = np.ones(1000)")
        time.sleep(0.3)  # ...which the writer thread has sent it by now (or sends to a dead helper)
    finally:
        os.kill(pid, signal.SIGKILL)
    assert bg.flush() is None
    err = capsys.readouterr().err
    assert "auto-commit failed: the git writer process died (exit status -9)" in err
    assert "y" not in ws.state().variables and bg.full_next
    run(bg, "z = 3")
    assert bg.flush() is not None
    state = ws.state()
    assert {"x", "y", "z"} <= set(state.variables) and ws.load("y").sum() == 1000
    cells = [c["code"] for c in json.loads(ws.history.read_file(ws.history.resolve("HEAD"), "code/cells.json"))]
    assert cells == ["y = np.ones(1000)", "z = 3"]
    assert ws.fsck().ok


def test_close_stops_the_helper(ws):
    s = NamespaceSession(ws, session_namespace(), kind="test")
    s.background = True
    s.start_writer()
    run(s, "x = 1")
    pid = _helper(s)
    s.close()
    assert _gone(pid) and ws.load("x") == 1


def test_the_helper_reports_errors_as_the_in_process_writer_does(bg, ws):
    from txgit.history import State

    run(bg, "x = 1")
    assert bg.flush() is not None
    head = ws.head().id
    with pytest.raises(InvalidName, match="invalid path in state tree"):  # through commit_state
        ws.history.commit_state(State({}, {}, {}), "m", files={"code/../x": b""}, writer=bg._git)
    with pytest.raises(InvalidName, match="invalid path in state tree"):  # and the helper asked directly
        bg._git.commit({"code//x": b""}, "m", "n", "n@x")
    assert ws.head().id == head and ws.fsck().ok
    run(bg, "y = 2")  # the helper still serves
    assert bg.flush() is not None and ws.load("y") == 2


def test_the_helper_dies_with_its_kernel(tmp_path):
    """A killed kernel cannot leave its helper writing (it would race the next writer)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from kernelutil import Kernel, silent_eval

    k = Kernel(tmp_path)
    try:
        k.ok("%load_ext txgit")
        k.ok("x = 1")
        pid = silent_eval(k, "(__import__('txgit.sessions.ipython').sessions.ipython.active().session.flush(),"
                             " __import__('txgit.sessions.ipython').sessions.ipython.active().session._git.pid)[1]")
        assert isinstance(pid, int) and _alive(pid)
        os.kill(k.pid, signal.SIGKILL)
        assert _gone(pid)
    finally:
        k.shutdown()


def test_a_helper_that_cannot_start_leaves_the_session_writing_in_process(ws, monkeypatch):
    monkeypatch.setattr(sys, "executable", "/bin/false")  # not a Python: the helper never says it is ready
    s = NamespaceSession(ws, session_namespace(), kind="test")
    s.background = True
    s.start_writer()
    try:
        assert _gone(_helper(s))  # /bin/false has ended (before the first commit: deterministic)
        run(s, "x = 1")
        assert s.flush() is not None and ws.load("x") == 1
        assert "did not start" in (s._git.start_error or "")
        run(s, "y = 2")
        assert s.flush() is not None and ws.load("y") == 2
    finally:
        s.close()


def test_an_interrupt_does_not_stop_the_helper(bg, ws):
    """Interrupting a kernel sends SIGINT to its process group; a commit being written must go on."""
    run(bg, "x = 1")
    assert bg.flush() is not None
    pid = _ready_helper(bg)  # (it ignores SIGINT from then on)
    assert os.getpgid(pid) != os.getpgid(0)  # not in our process group
    os.kill(pid, signal.SIGINT)
    run(bg, "y = 2")
    assert bg.flush() is not None and ws.load("y") == 2 and _helper(bg) == pid


class _Resume:
    """Send SIGCONT to a stopped helper after ``after`` seconds (so that a test that would wait for it
    forever ends); ``needed`` says whether it had to."""

    def __init__(self, pid: int, after: float) -> None:
        import threading

        self.pid, self.needed = pid, False
        self._timer = threading.Timer(after, self._resume)
        self._timer.start()

    def _resume(self) -> None:
        self.needed = True
        os.kill(self.pid, signal.SIGCONT)

    def cancel(self) -> None:
        self._timer.cancel()
        os.kill(self.pid, signal.SIGCONT)


def test_commits_do_not_wait_for_a_helper_that_is_still_starting(ws):
    """The helper takes ~0.1 s of CPU to start (Python and pygit2's import), more on a loaded machine:
    the first cells' commits are written in-process meanwhile instead of queueing behind its start
    (a quick notebook's fifth cell waited for the four before it and the start)."""
    s = NamespaceSession(ws, session_namespace(), kind="test")
    s.background = True
    s.start_writer()
    deadline = time.monotonic() + 30
    while (s._git is None or s._git.pid is None) and time.monotonic() < deadline:
        time.sleep(0.0005)  # (a tight look: the helper must be stopped before it says it is ready)
    pid = _helper(s)
    os.kill(pid, signal.SIGSTOP)  # a helper that has not said it is ready (pygit2's import takes ~0.1 s)
    resume = _Resume(pid, 20.0)
    try:
        for i in range(6):
            run(s, f"x{i} = {i}")
        assert s.flush() is not None
        written_without_it = not resume.needed
        assert {f"x{i}" for i in range(6)} <= set(ws.state().variables)
    finally:
        resume.cancel()
    assert written_without_it, "the commits waited for the helper to start"
    assert s._git is not None and s._git.ready()  # once it runs, it writes
    run(s, "y = 1")
    assert s.flush() is not None and ws.load("y") == 1
    s.close()
    assert ws.fsck().ok


def test_a_cell_behind_a_full_queue_waits_for_one_commit_not_all(bg, ws):
    """Quick cells chain their commits onto the one being written (up to a few queued); past that the
    next cell waits for room in the queue, not for the whole queue to be written (which left the
    writer idle while the cells ran, then the cells idle while it wrote)."""
    run(bg, "a = 0")
    assert bg.flush() is not None
    pid = _ready_helper(bg)
    os.kill(pid, signal.SIGSTOP)  # the next commit is stuck in the helper...
    resume = _Resume(pid, 1.0)  # ...for a second
    try:
        run(bg, "a = 1")
        writer = bg._writer
        assert writer is not None
        for i in range(2, 8):  # four queue behind it; the others wait for room
            run(bg, f"a = {i}")
            assert bg._writer is writer, f"cell {i} waited for the whole queue and started a new writer"
    finally:
        resume.cancel()
    assert bg.flush() is not None and ws.load("a") == 7
    assert [c.summary for c in ws.log()[:7]] == [f"cell: a = {i}" for i in range(7, 0, -1)]
    assert ws.fsck().ok


def test_a_helper_whose_kernel_stopped_listening_exits_without_a_traceback(ws):
    """A kernel that shuts down while its helper starts closes the pipe the helper answers on: the helper
    printed a BrokenPipeError traceback into the kernel's log (seen after test runs); it has nobody to
    answer, so it exits quietly."""
    from txgit import gitwriter

    proc = subprocess.Popen(gitwriter.helper_command(str(ws.dir / "repo.git")), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before it says "ready": it is still importing pygit2
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()
    assert proc.returncode == 0


def test_the_helper_loads_only_pygit2s_native_module(ws):
    """The helper's start lands on a notebook's first cells (~80 ms of CPU, 40 of them pygit2's
    package: its enums, settings, ssl, the cffi layer; ~10 the site module's .pth files), while it
    uses only the native module's classes. It loads that module alone, without the site module,
    typing, subprocess (the client's), importlib.util (contextlib...) or pickle (re...: the pipe's
    messages are marshal's), and still writes commits (the tests above)."""
    from txgit import gitwriter

    command = gitwriter.helper_command(str(ws.dir / "repo.git"))
    at = command.index("-c") + 1
    command[at] = command[at].replace("m.main(sys.argv[2:])",
                                      "print(sorted(n for n in sys.modules if n.split('.')[0] == 'pygit2'));"
                                      " print(sorted({'site', 'typing', 'subprocess', 'importlib.util', 'pickle'} & set(sys.modules)))")
    r = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["['pygit2', 'pygit2._pygit2']", "[]"], r.stdout
