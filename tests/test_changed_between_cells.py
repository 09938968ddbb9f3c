"""A value a kernel changed with no cell run (a thread, a widget's callback, an asyncio task, a timer)
is not dropped by a terminal verb run beside it.

Each test has a real kernel whose background thread sets ``params['lr'] = 0.5`` between cells: the
cell that lets it go (``go.set()``) and waits for it names neither ``params`` nor anything sharing it,
so the session still thinks nothing changed since its last commit ("clean"). The terminal's checkout,
reset, merge, pull and status, and the kernel following its branch moved by another process, must
see the change: refuse (naming it) rather than replace it, as they do for a change a cell made.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from cliutil import assert_one_line_error
from conftest import clone_change_push
from kernelutil import User

from txgit import Workspace

pytestmark = pytest.mark.timeout(600)

# params, and a thread that sets params['lr'] = 0.5 once `go` is set, then sets `done`
_THREAD = ("import threading\nparams = {'lr': 0.1}\ngo, done = threading.Event(), threading.Event()\n"
           "def later():\n    go.wait(120)\n    params['lr'] = 0.5\n    done.set()\n"
           "threading.Thread(target=later, daemon=True).start()")


def _thread_changes_params(k: User) -> None:
    """The thread changes params while no cell names it: the session stays clean."""
    k.cell("go.set()\nassert done.wait(120)")
    assert k.value("params") == {"lr": 0.5}


@pytest.fixture
def k(tmp_path, run_txgit) -> Iterator[User]:
    """A user whose kernel (txgit loaded) works in a new workspace; shut down after the test."""
    user = User("k", Workspace.init(tmp_path / "w"), run_txgit, {})
    yield user
    user.shutdown()


def test_a_checkout_from_the_terminal_refuses_to_replace_a_value_a_thread_changed(k):
    """Before: `txgit checkout other` took the clean session's namespace for its last commit and loaded
    other's params over the thread's {'lr': 0.5} without a word."""
    k.cell(_THREAD)
    k.cell("%txgit checkout -b other")
    k.cell("params = {'lr': 0.9}")
    k.cell("%txgit checkout -b side main")
    k.cell("y = 1")  # side changes y only
    k.cell("%txgit checkout main")
    _thread_changes_params(k)
    # a target that has params as main has it replaces nothing of it: checked out, params kept
    k.tx("checkout", "side")
    assert k.value("(params, y)") == ({"lr": 0.5}, 1)
    assert_one_line_error(k.tx("checkout", "other", code=None), "uncommitted changes to params")
    assert k.value("params") == {"lr": 0.5} and k.ws.branch == "side"
    assert "modified: params" in k.tx("status").stdout  # now known changed, as if a cell had set it
    # --force drops it, as for a change a cell made
    k.tx("checkout", "other", "--force")
    assert k.value("params") == {"lr": 0.9}


def test_a_reset_from_the_terminal_refuses_to_replace_a_value_a_thread_changed(k):
    k.cell(_THREAD)
    k.cell("params = {'lr': 0.2}")  # the thread sets the global params: this dict
    _thread_changes_params(k)
    assert_one_line_error(k.tx("reset", "HEAD~1", code=None), "uncommitted changes to params")
    assert k.value("params") == {"lr": 0.5} and k.ws.load("params") == {"lr": 0.2}
    k.tx("commit", "-m", "keep")  # commits it (an explicit commit compares every value)
    assert k.ws.load("params") == {"lr": 0.5}


def test_status_and_diff_beside_the_kernel_say_a_value_a_thread_changed(k):
    """Before: `txgit status` said "nothing to commit" (it serialized only what the cells named)."""
    k.cell(_THREAD)
    out = k.tx("status").stdout
    assert "nothing to commit" in out, out
    _thread_changes_params(k)
    out = k.tx("status").stdout
    assert "modified: params" in out and "nothing to commit" not in out, out
    assert "modified: params" in k.cell("%txgit status").stdout
    # the next cell's commit takes it, though the cell does not name params
    k.cell("z = 1")
    assert k.ws.load("params") == {"lr": 0.5} and k.ws.load("z") == 1
    assert "nothing to commit" in k.tx("status").stdout


def test_a_merge_from_the_terminal_refuses_to_overwrite_a_value_a_thread_changed(k):
    k.cell(_THREAD)
    k.cell("%txgit checkout -b other")
    k.cell("params = {'lr': 0.9}")
    k.cell("%txgit checkout main")
    _thread_changes_params(k)
    assert_one_line_error(k.tx("merge", "other", code=None), "uncommitted changes to params")
    assert k.value("params") == {"lr": 0.5} and k.ws.load("params", "main") == {"lr": 0.1}


def test_a_pull_from_the_terminal_refuses_to_overwrite_a_value_a_thread_changed(tmp_path, run_txgit):
    """Bob pushed params = {'lr': 0.9}; Alice's thread set her params['lr'] = 0.5 meanwhile."""
    alice = User("alice", Workspace.init(tmp_path / "alice"), run_txgit, {})
    try:
        alice.cell(_THREAD)
        alice.tx("remote", "add", "origin", str(tmp_path / "team.git"), "--trusted")
        alice.tx("push")
        clone_change_push(str(tmp_path / "team.git"), tmp_path / "bob", "bob's lr", {"params": {"lr": 0.9}})
        _thread_changes_params(alice)
        assert_one_line_error(alice.tx("pull", code=None), "uncommitted changes to params")
        assert alice.value("params") == {"lr": 0.5}
        alice.tx("commit", "-m", "mine")
        assert "CONFLICT" in alice.tx("pull", code=1).stdout  # both changed it: now a conflict, as it is
        assert alice.value("params") == {"lr": 0.5}
    finally:
        alice.shutdown()


def test_a_kernel_following_its_moved_branch_keeps_a_value_a_thread_changed(k):
    """Another process moved main to a commit with other params (raw git here). Before: the next cell
    loaded it over the thread's change, as the session was clean."""
    k.cell(_THREAD)
    k.cell("%txgit checkout -b other")
    k.cell("params = {'lr': 0.9}")
    k.cell("%txgit checkout main")
    _thread_changes_params(k)
    other = str(k.ws.resolve("other").id)
    subprocess.run(["git", "-C", str(k.ws.root / ".txgit" / "repo.git"), "update-ref", "refs/heads/main", other],
                   check=True)
    r = k.cell("x = 1")
    assert "your changes are kept" in r.stderr, r.stderr
    assert k.value("params") == {"lr": 0.5}
    # its commit holds the thread's value (merged with main's, both changed it: a conflict)
    assert "unresolved: params" in r.stderr, r.stderr
    ours = k.cell("%txgit merge --ours params").stdout
    assert k.value("params") == {"lr": 0.5} and k.ws.load("params", "main") == {"lr": 0.5}, ours
