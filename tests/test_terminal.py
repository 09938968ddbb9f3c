"""A terminal beside a kernel: `txgit commit` and checkout act on the kernel's live state."""

from __future__ import annotations

import json
import os

import pytest
from kernelutil import Kernel, silent_eval

from txgit import Workspace
from txgit.sessions.kernel import NoKernelAttached, attached_kernel, checkout_in_kernel, kernels_dir

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def kernel_ws(tmp_path_factory):
    ws = Workspace.init(tmp_path_factory.mktemp("term") / "ws")
    k = Kernel(ws.root)
    k.ok("%load_ext txgit\n%txgit auto off")
    yield ws, k
    k.shutdown()


def test_commit_from_the_terminal_commits_the_kernels_namespace(kernel_ws, run_txgit):
    ws, k = kernel_ws
    k.ok("data = {'rows': [1, 2, 3]}\nbig = list(range(10))")
    proc = run_txgit("commit", "-m", "from the terminal", cwd=ws.root, check=True)
    assert f"[kernel {k.pid}] committed" in proc.stdout
    assert ws.head().summary == "from the terminal"
    assert ws.load("data") == {"rows": [1, 2, 3]} and ws.load("big") == list(range(10))
    assert ws.state().meta["from"] == "terminal"


def test_checkout_from_the_terminal_restores_the_kernel(kernel_ws, run_txgit):
    ws, k = kernel_ws
    k.ok("data['rows'].append(4)\nextra = 1")
    run_txgit("commit", "-m", "second", cwd=ws.root, check=True)
    first = ws.log()[1].id
    answer = checkout_in_kernel(ws, first)
    assert answer["commit"] == first and "extra" in answer["removed"]
    assert silent_eval(k, "(data, 'extra' in globals())") == ({"rows": [1, 2, 3]}, False)
    assert ws.head().id == first
    checkout_in_kernel(ws, "main")
    assert silent_eval(k, "(data, extra)") == ({"rows": [1, 2, 3, 4]}, 1) and ws.branch == "main"


def test_checkout_of_a_dirty_kernel_is_refused_from_the_terminal(kernel_ws):
    ws, k = kernel_ws
    k.ok("extra = 2")
    with pytest.raises(Exception, match="uncommitted changes to extra"):
        checkout_in_kernel(ws, "HEAD~1")
    assert silent_eval(k, "extra") == 2
    checkout_in_kernel(ws, "HEAD", force=True)
    assert silent_eval(k, "extra") == 1


def test_stale_kernel_records_are_ignored(kernel_ws):
    ws, k = kernel_ws
    stale = kernels_dir(ws) / "999999.json"
    stale.write_text(json.dumps({"pid": 999999, "connection_file": "/nonexistent", "started": 9e12}))
    assert attached_kernel(ws).pid == k.pid
    assert not stale.exists()


def test_no_kernel_attached_is_one_clear_line(tmp_path, run_txgit):
    ws = Workspace.init(tmp_path / "lonely")
    proc = run_txgit("commit", "-m", "x", cwd=ws.root)
    assert proc.returncode == 1
    assert proc.stderr.startswith("txgit: error: no kernel attached to") and len(proc.stderr.splitlines()) == 1
    with pytest.raises(NoKernelAttached):
        checkout_in_kernel(ws, "HEAD")


def test_kernel_record_is_removed_on_shutdown(tmp_path):
    ws = Workspace.init(tmp_path / "short")
    k = Kernel(ws.root)
    k.ok("%load_ext txgit")
    pid = k.pid
    assert attached_kernel(ws).pid == pid and (kernels_dir(ws) / f"{pid}.json").exists()
    k.shutdown()
    assert not os.path.exists(kernels_dir(ws) / f"{pid}.json")
    assert attached_kernel(ws) is None


def test_checkout_b_where_the_kernel_stands_keeps_its_uncommitted_values(tmp_path, run_txgit):
    """With auto-commit off, `txgit checkout -b fork` (git's way to put work in progress on a new
    branch) was refused for the kernel's uncommitted values, and the hint, `--force`, dropped them.
    A new branch where the kernel stands replaces nothing: the values go with it, and so does the
    next commit."""
    from cliutil import assert_one_line_error

    ws = Workspace.init(tmp_path / "ws")
    k = Kernel(ws.root)
    try:
        k.ok("%load_ext txgit\n%txgit auto off")
        k.ok("a = 1\nb = [1]")
        run_txgit("commit", "-m", "first", cwd=ws.root, check=True)
        k.ok("a = 77\nc = 'new'\nb.append(2)")
        out = run_txgit("checkout", "-b", "fork", cwd=ws.root, check=True).stdout
        assert f"[kernel {k.pid}] checked out branch fork" in out
        assert silent_eval(k, "(a, b, c)") == (77, [1, 2], "new")  # nothing dropped
        assert ws.branch == "fork"
        status = run_txgit("status", cwd=ws.root, check=True).stdout
        assert "On branch fork" in status and "added: c" in status and "modified: a\n" in status and "modified: b" in status
        run_txgit("commit", "-m", "work in progress", cwd=ws.root, check=True)
        assert (ws.load("a", "fork"), ws.load("b", "fork"), ws.load("c", "fork")) == (77, [1, 2], "new")
        assert (ws.load("a", "main"), ws.load("b", "main")) == (1, [1]) and ws.branch == "fork"
        # the same as a magic
        k.ok("a = 78")
        k.ok("%txgit checkout -b fork2")
        assert silent_eval(k, "a") == 78
        k.ok("%txgit commit -m more")
        assert ws.load("a", "fork2") == 78 and ws.load("a", "fork") == 77
        # a checkout that would replace them still refuses, and says what --force does
        k.ok("a = 79")
        refused = run_txgit("checkout", "main", cwd=ws.root)
        assert_one_line_error(refused, "uncommitted changes to a", "--force drops them")
        assert silent_eval(k, "a") == 79
    finally:
        k.shutdown()
