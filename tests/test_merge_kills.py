"""kill -9 inside a merge or a pull, from a terminal and in a live kernel: nothing is lost, and what
the user types next (status, merge --continue / --abort, pull again) gets them out.

Each process is killed at a named point (tests/killpoint.py): after the pull's fetch and before its
merge; while a conflict's record is written; after a merge commit and before its record is forgotten;
after a kernel's merge commit and before its namespace takes the merged values. The remote is a
folder beside the workspaces; Bob (no kernel) pushes the collaborator's change."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cliutil import assert_one_line_error
from conftest import clone_change_push, session_namespace
from kernelutil import Kernel, silent_eval, silent_exec
from killpoint import arm_cell, txgit_killed_at

from txgit import Workspace

pytestmark = pytest.mark.timeout(600)


def _diverged(tmp_path: Path, run_txgit, *, conflict: bool) -> Workspace:
    """Alice committed x = 3 over x = y = 1, which she had pushed; Bob then pushed x = 2 (``conflict``) or y = 2."""
    alice = Workspace.init(tmp_path / "alice")
    ns = session_namespace()
    ns.update(x=1, y=1)
    alice.commit(ns, "start")
    run_txgit("remote", "add", "origin", str(tmp_path / "team.git"), "--trusted", cwd=alice.root, check=True)
    run_txgit("push", cwd=alice.root, check=True)
    clone_change_push(str(tmp_path / "team.git"), tmp_path / "bob", "bob's change", {"x": 2} if conflict else {"y": 2})
    ns["x"] = 3
    alice.commit(ns, "alice's x")
    return alice


def _merge_refs(ws: Workspace) -> list[str]:
    return [r for r in ws.history.repo.references if r.startswith("refs/txgit/merge/")]


def _whole(ws: Workspace) -> None:
    report = Workspace.open(ws.root).fsck()
    assert report.ok, report


def test_a_pull_killed_after_its_fetch_is_merged_by_pulling_again(tmp_path, run_txgit):
    alice = _diverged(tmp_path, run_txgit, conflict=False)
    mine = alice.head().id
    killed = txgit_killed_at("txgit.merging:merge", "pull", cwd=alice.root)
    assert killed.returncode == -9, killed.stderr
    assert Workspace.open(alice.root).head().id == mine  # the fetch moved origin/main, nothing else
    _whole(alice)
    status = run_txgit("status", cwd=alice.root, check=True).stdout
    assert "diverged" in status and "txgit pull" in status and "Merging" not in status, status
    again = run_txgit("pull", cwd=alice.root, check=True).stdout
    assert "Merged origin/main into main" in again, again
    assert (Workspace.open(alice.root).load("x"), Workspace.open(alice.root).load("y")) == (3, 2)
    _whole(alice)


def test_a_pull_killed_while_it_records_a_conflict_can_be_pulled_again_and_aborted(tmp_path, run_txgit):
    alice = _diverged(tmp_path, run_txgit, conflict=True)
    mine = alice.head().id
    killed = txgit_killed_at("txgit.merging:MergeInProgress.to_json", "pull", cwd=alice.root)
    assert killed.returncode == -9, killed.stderr
    ws = Workspace.open(alice.root)
    assert ws.head().id == mine and ws.merge_in_progress() is None
    _whole(ws)
    assert "Merging" not in run_txgit("status", cwd=alice.root, check=True).stdout
    again = run_txgit("pull", cwd=alice.root)
    assert again.returncode == 1 and "CONFLICT" in again.stdout, again.stdout + again.stderr
    assert "unresolved conflicts: x" in run_txgit("status", cwd=alice.root, check=True).stdout
    run_txgit("merge", "--abort", cwd=alice.root, check=True)
    ws = Workspace.open(alice.root)
    assert ws.head().id == mine and ws.load("x") == 3 and not _merge_refs(ws)
    _whole(ws)


def _killed_recording_a_conflict(tmp_path: Path, run_txgit) -> Workspace:
    """A pull killed after it wrote the merge's refs and before its record: refs with no merge."""
    alice = _diverged(tmp_path, run_txgit, conflict=True)
    killed = txgit_killed_at("txgit.merging:MergeInProgress.to_json", "pull", cwd=alice.root)
    assert killed.returncode == -9, killed.stderr
    ws = Workspace.open(alice.root)
    assert ws.merge_in_progress() is None and _merge_refs(ws)
    return ws


def test_gc_drops_the_refs_of_a_merge_whose_record_was_never_written(tmp_path, run_txgit):
    """The killed pull left refs/txgit/merge/heads/main/{ours,theirs} and an empty .txgit/merges/: no
    merge waits, yet gc kept both commits (until the next merge on main)."""
    ws = _killed_recording_a_conflict(tmp_path, run_txgit)
    run_txgit("gc", cwd=ws.root, check=True)
    ws = Workspace.open(ws.root)
    assert not _merge_refs(ws) and not (ws.dir / "merges").exists()
    _whole(ws)


def test_the_next_merge_drops_the_refs_of_a_merge_whose_record_was_never_written(tmp_path, run_txgit):
    ws = _killed_recording_a_conflict(tmp_path, run_txgit)
    assert ws.merge(ws.head().id).status == "up-to-date"  # a merge on main that stops on nothing
    assert not _merge_refs(ws) and not (ws.dir / "merges").exists()
    _whole(ws)


def test_a_resolution_killed_after_its_merge_commit_is_a_finished_merge(tmp_path, run_txgit):
    """The last `--theirs` wrote the merge commit and was killed before it forgot the merge: status said
    "Merging origin/main: unresolved conflicts: none (`txgit merge --continue`)", and --continue then
    said "main moved during the merge: `txgit merge --abort` and merge again"."""
    alice = _diverged(tmp_path, run_txgit, conflict=True)
    assert run_txgit("pull", cwd=alice.root).returncode == 1
    killed = txgit_killed_at("txgit.merging:_clear_merge", "merge", "--theirs", "x", cwd=alice.root)
    assert killed.returncode == -9, killed.stderr
    ws = Workspace.open(alice.root)
    merge = ws.head()
    assert merge.summary == "Merge origin/main into main" and ws.load("x") == 2
    _whole(ws)
    status = run_txgit("status", cwd=alice.root, check=True).stdout
    assert "Merging" not in status and "--continue" not in status, status
    assert "ahead of 'origin/main' by 2" in status, status
    cont = run_txgit("merge", "--continue", cwd=alice.root)
    assert_one_line_error(cont, "nothing to continue: the merge was committed as", merge.short_id)
    assert_one_line_error(run_txgit("merge", "--abort", cwd=alice.root), "no merge in progress on main")
    run_txgit("push", cwd=alice.root, check=True)
    ws = Workspace.open(alice.root)
    assert ws.head().id == merge.id and (ws.load("x"), ws.load("y")) == (2, 1) and not _merge_refs(ws)
    assert not (ws.dir / "merges").exists()
    _whole(ws)
    third = Workspace.clone(str(tmp_path / "team.git"), tmp_path / "carol")
    got = session_namespace()
    third.checkout("main", got)
    assert (got["x"], got["y"]) == (2, 1)


def _alice_with_a_kernel(tmp_path: Path, run_txgit, *, conflict: bool) -> tuple[Workspace, Kernel]:
    """As :func:`_diverged`, Alice working in a kernel (auto-commit) beside her terminal."""
    ws = Workspace.init(tmp_path / "alice")
    kernel = Kernel(ws.root)
    kernel.ok("%load_ext txgit")
    kernel.ok("x = 1\ny = 1")
    run_txgit("remote", "add", "origin", str(tmp_path / "team.git"), "--trusted", cwd=ws.root, check=True)
    run_txgit("push", cwd=ws.root, check=True)
    clone_change_push(str(tmp_path / "team.git"), tmp_path / "bob", "bob's change", {"x": 2} if conflict else {"y": 2})
    kernel.ok("x = 3")
    return ws, kernel


def _killed_running(kernel: Kernel, point: str, code: str) -> None:
    """Arm ``point`` in the kernel (a silent cell: no commit), run ``code``: the kernel dies there."""
    silent_exec(kernel, arm_cell(point))
    kernel.kc.execute(code)
    deadline = time.monotonic() + 120
    while kernel.km.is_alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not kernel.km.is_alive(), f"the kernel was not killed at {point}"
    kernel.kc.stop_channels()
    kernel.km.shutdown_kernel(now=True)


@pytest.mark.parametrize("point", ["txgit.merging:merge", "txgit.merging:_put_merged"])
def test_a_kernel_killed_in_its_pull_gets_every_value_back_when_restarted(tmp_path, run_txgit, point):
    """Killed after the fetch, before the merge; or after the merge commit, before the namespace took it."""
    ws, kernel = _alice_with_a_kernel(tmp_path, run_txgit, conflict=False)
    mine = ws.head()
    _killed_running(kernel, point, "%txgit pull")
    merged = point.endswith("_put_merged")
    status = run_txgit("status", cwd=ws.root, check=True).stdout
    assert "Merging" not in status, status
    assert ("ahead of 'origin/main' by 2" if merged else "diverged") in status, status
    _whole(ws)
    again = Kernel(ws.root)
    try:
        again.ok("%load_ext txgit")
        said = again.ok("%txgit status")
        assert "Merging" not in said.stdout + said.stderr and "not loaded" in said.stdout, said.stdout
        again.ok("%txgit checkout main")
        if not merged:
            assert silent_eval(again, "(x, y)") == (3, 1) and Workspace.open(ws.root).head().id == mine.id
            again.ok("%txgit pull")
        assert silent_eval(again, "(x, y)") == (3, 2)
        again.ok("z = 1")
        assert run_txgit("push", cwd=ws.root).returncode == 0
    finally:
        again.shutdown()
    ws = Workspace.open(ws.root)
    assert ws.resolve("HEAD~1").summary == "Merge origin/main into main" and ws.load("z") == 1
    _whole(ws)


def test_a_kernel_killed_after_its_resolutions_merge_commit_is_not_left_merging(tmp_path, run_txgit):
    """The kernel wrote the merge commit of `%txgit merge --theirs x` and was killed before it forgot the
    merge: status said "Merging origin/main: unresolved conflicts: none (`txgit merge --continue`)", a
    restarted kernel could not check out ("cannot check out during the merge of origin/main"), and its
    `%txgit merge --abort` said "aborted: back at <ours>; loaded x" (ours' x) while main kept the merge."""
    ws, kernel = _alice_with_a_kernel(tmp_path, run_txgit, conflict=True)
    pulled = kernel.run("%txgit pull")
    assert "CONFLICT" in pulled.stdout + pulled.stderr, pulled
    _killed_running(kernel, "txgit.merging:merge_done", "%txgit merge --theirs x")
    assert Workspace.open(ws.root).head().summary == "Merge origin/main into main"
    _whole(ws)
    assert "Merging" not in run_txgit("status", cwd=ws.root, check=True).stdout
    again = Kernel(ws.root)
    try:
        again.ok("%load_ext txgit")
        said = again.ok("%txgit status")
        assert "erging" not in said.stdout + said.stderr, said.stdout + said.stderr
        again.ok("%txgit checkout main")
        assert silent_eval(again, "(x, y)") == (2, 1)
        again.ok("z = 1")
        aborted = again.run("%txgit merge --abort")
        assert "no merge in progress" in aborted.stdout + aborted.stderr + str(aborted.error)
        assert silent_eval(again, "(x, y, z)") == (2, 1, 1)
    finally:
        again.shutdown()
    ws = Workspace.open(ws.root)
    assert ws.resolve("HEAD~1").summary == "Merge origin/main into main" and ws.load("x") == 2 and ws.load("z") == 1
    assert not _merge_refs(ws)
    _whole(ws)


def test_a_terminal_pull_whose_kernel_is_killed_mid_merge_says_where_the_branch_is(tmp_path, run_txgit):
    """`txgit pull` beside a kernel that was killed after the merge commit, before it loaded the merge:
    the terminal said only "kernel N stopped answering", not that main held the merge now."""
    ws, kernel = _alice_with_a_kernel(tmp_path, run_txgit, conflict=False)
    silent_exec(kernel, arm_cell("txgit.merging:_put_merged"))
    try:
        pulled = run_txgit("pull", cwd=ws.root, timeout=120)
    finally:
        kernel.kc.stop_channels()
        kernel.km.shutdown_kernel(now=True)
    merge = Workspace.open(ws.root).head()
    assert merge.summary == "Merge origin/main into main"
    assert "origin/main" in pulled.stdout  # what the fetch moved, said before the merge
    assert_one_line_error(pulled, "stopped answering during the merge of origin/main", "main is now at "
                          f"{merge.short_id} Merge origin/main into main", "%txgit checkout main")
    _whole(ws)
    again = Kernel(ws.root)
    try:
        again.ok("%load_ext txgit")
        again.ok("%txgit checkout main")
        assert silent_eval(again, "(x, y)") == (3, 2)
    finally:
        again.shutdown()


def test_a_kernel_killed_while_its_pull_records_a_conflict_pulls_it_again_when_restarted(tmp_path, run_txgit):
    ws, kernel = _alice_with_a_kernel(tmp_path, run_txgit, conflict=True)
    mine = ws.head().id
    _killed_running(kernel, "txgit.merging:MergeInProgress.to_json", "%txgit pull")
    assert Workspace.open(ws.root).head().id == mine and "Merging" not in run_txgit("status", cwd=ws.root).stdout
    _whole(ws)
    again = Kernel(ws.root)
    try:
        again.ok("%load_ext txgit")
        again.ok("%txgit checkout main")
        pulled = again.run("%txgit pull")
        assert "CONFLICT" in pulled.stdout + pulled.stderr, pulled
        again.ok("%txgit merge --theirs x")
        assert silent_eval(again, "(x, y)") == (2, 1)
    finally:
        again.shutdown()
    ws = Workspace.open(ws.root)
    assert ws.head().summary == "Merge origin/main into main" and ws.load("x") == 2 and not _merge_refs(ws)
    _whole(ws)


def test_a_kernel_killed_while_it_holds_a_cells_values_during_a_merge_keeps_the_cells_before(tmp_path, run_txgit):
    """During a merge with conflicts, each cell that changed something is held as a commit on a ref (see
    test_collaboration's dead-kernel tests). Killed after the second cell's commit, before its ref moved:
    the first cell's values are what status names and what --continue takes, and the repository is whole."""
    ws, kernel = _alice_with_a_kernel(tmp_path, run_txgit, conflict=True)
    kernel.ok("y = 3")  # a second conflict, so that setting x leaves the merge waiting
    clone_change_push(str(tmp_path / "team.git"), tmp_path / "bob2", "bob's y", {"y": 2})
    pid = kernel.pid
    pulled = kernel.run("%txgit pull")
    assert "2 conflicts" in pulled.stdout + pulled.stderr, pulled
    assert "unresolved: y" in kernel.run("x = 99").stderr
    _killed_running(kernel, "txgit.merging:hold_values", "z = 'lost with the kernel'")
    _whole(ws)
    status = run_txgit("status", cwd=ws.root, check=True).stdout
    assert f"kernel {pid} closed during the merge; it had set x = 99, in no commit yet" in status, status
    run_txgit("merge", "--theirs", "y", cwd=ws.root, check=True)
    out = run_txgit("merge", "--continue", cwd=ws.root, check=True).stdout
    assert "resolved: x (kernel), y (theirs)" in out, out
    ws = Workspace.open(ws.root)
    assert (ws.load("x"), ws.load("y")) == (99, 2) and "z" not in ws.state().variables and not _merge_refs(ws)
    _whole(ws)
