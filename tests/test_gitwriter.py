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
    pid = _helper(bg)
    os.kill(pid, signal.SIGKILL)
    assert _gone(pid)
    run(bg, "y = 2")
    assert bg.flush() is not None
    assert ws.load("x") == 1 and ws.load("y") == 2
    assert _helper(bg) != pid


def test_a_helper_that_dies_mid_commit_is_a_clear_error_and_the_next_commit_has_everything(bg, ws, capsys):
    run(bg, "x = 1")
    assert bg.flush() is not None
    pid = _helper(bg)
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
        run(s, "x = 1")
        assert s.flush() is not None and ws.load("x") == 1
        assert "did not start" in (s._git.start_error or "")
        run(s, "y = 2")
        assert s.flush() is not None and ws.load("y") == 2
    finally:
        s.close()


def test_an_interrupt_does_not_stop_the_helper(bg, ws):
    """Interrupting a kernel sends SIGINT to its process group; a commit being written must go on."""
    pid = _helper(bg)
    assert os.getpgid(pid) != os.getpgid(0)  # not in our process group
    run(bg, "x = 1")
    assert bg.flush() is not None
    os.kill(pid, signal.SIGINT)
    run(bg, "y = 2")
    assert bg.flush() is not None and ws.load("y") == 2 and _helper(bg) == pid
