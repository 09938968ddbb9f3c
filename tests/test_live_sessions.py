"""Live kernels and the branches they commit to: many kernels in one folder, branches moved under a
kernel by other processes or raw git, detached HEADs and upstreams, cells that change nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import session_namespace
from kernelutil import Kernel, notebooks, silent_eval

from txgit import Workspace
from txgit.reuse.graph import OperationIndex
from txgit.sessions import NamespaceSession

pytestmark = pytest.mark.timeout(300)


def _run(session: NamespaceSession, code: str):
    session.before_cell(code)
    exec(code, session.namespace)
    return session.after_cell()


def _git(repo, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


# -- cells that change nothing ---------------------------------------------------------------------

def test_a_cell_that_changes_nothing_makes_no_commit_but_is_recorded(ws):
    s = NamespaceSession(ws, session_namespace(), kind="test")
    _run(s, "rows = [1, 2, 3]")
    head = ws.head().id
    out = _run(s, "print(len(rows))")
    assert out.commit is None and ws.head().id == head
    out = _run(s, "rows.append(4)")
    assert out.commit is not None and out.commit.info.parents == [head]
    cells = json.loads(ws.history.read_file(ws.history.resolve("HEAD"), "code/cells.json"))
    assert [c["code"] for c in cells] == ["print(len(rows))", "rows.append(4)"]
    # both are operations of the experiment graph: the read-only one with no outputs
    index = OperationIndex(ws)
    index.refresh()
    keys = {c["code"]: c["op"]["key"] for c in cells}
    assert [r.op.outputs for r in index.candidates(keys["print(len(rows))"])] == [[]]
    assert [r.op.outputs for r in index.candidates(keys["rows.append(4)"])] == [["rows"]]


def test_a_fresh_session_never_deletes_what_it_did_not_load(ws):
    """A new kernel on a branch with history holds none of it: a cell that only reads makes no commit,
    and its commits carry the branch's other variables over until it loads them."""
    ws.commit(session_namespace("lr = 0.1\ndata = [1, 2, 3]"), "base")
    base = ws.head().id
    s = NamespaceSession(ws, session_namespace(), kind="test")
    assert s.status().unloaded == ["data", "lr"] and s.status().removed == []
    assert _run(s, "print('hello')").commit is None and ws.head().id == base
    out = _run(s, "lr = 0.5")
    assert out.commit.info.parents == [base]
    assert {n: ws.load(n) for n in ws.state().variables} == {"lr": 0.5, "data": [1, 2, 3]}
    assert s.status().unloaded == ["data"] and s.status().clean
    s.checkout("HEAD")  # loads everything: nothing is left unloaded
    assert s.namespace["data"] == [1, 2, 3] and s.unloaded == set()


def test_cells_that_change_nothing_are_found_by_reuse_without_a_later_commit(ws):
    """The last cells of a session make no commit: the operations log has them."""
    s = NamespaceSession(ws, session_namespace(), kind="test")
    _run(s, "rows = [1, 2, 3]")
    _run(s, "total = sum(rows)")
    _run(s, "print(total)")  # the session ends here: no commit will record this cell
    key = s.pending[-1].op["key"]
    index = OperationIndex(ws)
    index.refresh()
    [rec] = index.candidates(key)
    assert rec.commit == ws.head().id and rec.op.outputs == [] and rec.summary.startswith("cell")


def test_cells_that_change_nothing_do_not_wait_for_the_workspace_lock(tmp_path):
    """Another process holding the writer lock (a long `txgit push`, `gc`) stalls only cells that may
    have something to commit: a cell that changed no variable, calling only modules (``np.zeros(3)``:
    a module's record is its name) or functions imported from them (``from math import factorial``:
    pickled as a reference), is settled without the lock, and recorded with the next commit as
    before (issue 17: the fixed cost of such a cell is a check, not a commit)."""
    ws = Workspace.init(tmp_path / "proj")
    k = Kernel(ws.root)
    try:
        k.ok("%load_ext txgit")
        k.ok("import math\nfrom math import factorial\nrows = [1, 2, 3]")
        head = ws.head().id
        lock = ws.hold_lock()
        try:
            r = k.run("print(math.factorial(4))", timeout=30, settle=False)
            assert r.status == "ok" and r.stdout == "24\n"
            assert k.run("math.sqrt(16)", timeout=30, settle=False).outputs == [{"text/plain": "4.0"}]
            assert k.run("pass", timeout=30, settle=False).status == "ok"
            assert k.run("factorial(5)", timeout=30, settle=False).outputs == [{"text/plain": "120"}]
        finally:
            lock.release()
        k.ok("rows.append(4)")
        assert ws.head().id != head
        cells = json.loads(ws.history.read_file(ws.history.resolve("HEAD"), "code/cells.json"))
        assert [c["code"] for c in cells] == ["print(math.factorial(4))", "math.sqrt(16)", "pass", "factorial(5)",
                                              "rows.append(4)"]
        assert k.value("rows") == [1, 2, 3, 4]
    finally:
        k.shutdown()


def test_a_function_its_module_no_longer_names_is_serialized_again(ws, tmp_path, monkeypatch):
    """A function imported from a module pickles as a reference while the module names it, so a cell
    that only calls it changed nothing; once the module's name is rebound it pickles by value, and the
    cell that rebound it makes a commit."""
    (tmp_path / "probe_mod_i17.py").write_text("def f(x):\n    return x + 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "probe_mod_i17", raising=False)
    s = NamespaceSession(ws, session_namespace(), kind="test")
    _run(s, "import probe_mod_i17\nfrom probe_mod_i17 import f")
    head = ws.head().id
    assert _run(s, "f(1)").commit is None and ws.head().id == head
    out = _run(s, "probe_mod_i17.f = lambda x: x\nf(1)")
    assert out.commit is not None and "f" in out.commit.serialized_names


def test_commit_with_nothing_changed_says_so(ws, run_txgit):
    s = NamespaceSession(ws, session_namespace(), kind="test")
    _run(s, "x = 1")
    from txgit.errors import NothingToCommit

    with pytest.raises(NothingToCommit, match=r"nothing to commit: .* \(allow_empty=True commits anyway\)"):
        s.commit("again")
    assert s.commit("again", allow_empty=True).info.summary == "again"


# -- many kernels, one folder ---------------------------------------------------------------------

def test_two_kernels_in_one_folder_never_share_a_branch(tmp_path, run_txgit):
    ws = Workspace.init(tmp_path / "proj")
    with notebooks(ws.root) as open_notebook:
        first = open_notebook("first.ipynb")
        first.ok("%load_ext txgit")
        first.ok("a = 1")
        second = open_notebook("second.ipynb")
        said = second.ok("%load_ext txgit").stdout
        assert f"kernel {first.pid} (first.ipynb, on main) holds branch 'main'" in said
        assert "this kernel commits to new branch 'second'" in said
        second.ok("b = 2")
        first.ok("a2 = 3")
        main, own = ws.state("main").variables, ws.state("second").variables
        # neither wrote over the other; the second kernel carries main's `a`, which it never loaded
        assert set(main) == {"a", "a2"} and set(own) == {"a", "b"}
        # the terminal refuses to guess, then names the kernel it used
        proc = run_txgit("commit", "-m", "x", cwd=ws.root)
        assert proc.returncode == 1 and "2 kernels are attached" in proc.stderr and "--kernel" in proc.stderr
        assert len(proc.stderr.splitlines()) == 1
        second.ok("%txgit auto off")
        second.ok("c = 3")
        status = run_txgit("status", cwd=ws.root, check=True).stdout
        assert f"kernel {first.pid} (first.ipynb, on main):" in status
        assert f"kernel {second.pid} (second.ipynb, on second):\n  added: c" in status
        done = run_txgit("commit", "-m", "from the terminal", "--kernel", "second.ipynb", cwd=ws.root, check=True)
        assert done.stdout.startswith(f"[kernel {second.pid}] committed") and "on second" in done.stdout
        assert ws.load("c", "second") == 3 and "c" not in ws.state("main").variables
        # a kernel cannot take a branch another kernel holds
        r = second.run("%txgit checkout main")
        assert r.status == "error" and f"kernel {first.pid} (first.ipynb, on main) holds branch 'main'" in r.error
        assert silent_eval(second, "sorted(k for k in ('a', 'b', 'c') if k in globals())") == ["b", "c"]


def test_a_second_kernel_that_loaded_nothing_yet_is_on_its_own_branch(tmp_path):
    """notebooks.md: the second kernel's magics act on its own branch. Until it had loaded or committed
    anything, HEAD in its magics was the folder's (the first kernel's main): `%txgit log` and `show`
    marked and showed main, `%txgit diff` listed main's newer variables as removed, `%txgit status` said
    `on branch explore, at <main's tip>`, and `%txgit checkout HEAD` put it on main, which the first
    kernel holds: two kernels on one branch."""
    ws = Workspace.init(tmp_path / "proj")
    with notebooks(ws.root) as open_notebook:
        first = open_notebook("analysis.ipynb")
        first.ok("%load_ext txgit")
        first.ok("x = 1")
        second = open_notebook("explore.ipynb")
        second.ok("%load_ext txgit")
        first.ok("y = 2")  # main moves on; explore stays where the second kernel attached
        own, main = ws.resolve("explore").short_id, ws.resolve("main").short_id
        log = second.ok("%txgit log").outputs[0]["text/plain"]
        assert log.splitlines()[0].startswith(f"* {own} (HEAD -> explore)"), log
        shown = second.ok("%txgit show").outputs[0]["text/plain"]
        assert "(HEAD -> explore)" in shown and "y:" not in shown, shown
        diff = second.ok("%txgit diff").outputs[0]["text/plain"]
        assert f"diff {own} (explore) -> this namespace\nno differences" in diff, diff
        assert second.ok("%txgit status").stdout.startswith(f"on branch explore, at {own}\n")
        assert second.ok("%txgit checkout HEAD").stdout.startswith("checked out branch explore: loaded 1")
        assert silent_eval(second, "sorted(k for k in ('x', 'y') if k in globals())") == ["x"]
        second.ok("z = 3")
        assert ws.resolve("main").short_id == main and set(ws.state("explore").variables) == {"x", "z"}


# -- a branch moved under a kernel by something else --------------------------------------------------

ELSEWHERE = """
import sys
from txgit import Workspace
ws = Workspace(".")
ns = {}
ws.checkout("main", ns, move_head=False)
ns["y"] = int(sys.argv[1])
ws.commit(ns, "elsewhere: y = " + sys.argv[1])
"""


def test_a_branch_moved_under_a_kernel_is_followed_or_merged(tmp_path):
    ws = Workspace.init(tmp_path / "proj")
    k = Kernel(ws.root)
    try:
        k.ok("%load_ext txgit")
        k.ok("x = 1\ny = 1")
        # another process commits on the kernel's branch; the kernel changed nothing since: it follows
        subprocess.run([sys.executable, "-c", ELSEWHERE, "2"], cwd=ws.root, check=True)
        r = k.ok("print(x, y)")
        assert r.stdout == "1 2\n" and "moved to" in r.stderr and "loaded y" in r.stderr
        # again, but this time the kernel has a change not committed yet: its commit is merged with the branch
        k.ok("%txgit auto off")
        k.ok("x = 5")
        subprocess.run([sys.executable, "-c", ELSEWHERE, "3"], cwd=ws.root, check=True)
        theirs = ws.head().id
        r = k.ok("print(x, y)")  # it says so, and keeps both
        assert r.stdout == "5 2\n" and "your changes are kept" in r.stderr
        r = k.ok("%txgit commit -m 'mine'")
        merge = ws.head()
        assert len(merge.parents) == 2 and theirs in merge.parents
        assert ws.load("x") == 5 and ws.load("y") == 3 and silent_eval(k, "(x, y)") == (5, 3)
        k.ok("%txgit auto on")
        # a raw git command moves the branch back to their commit (not ws.log()[1]: which parent of the merge
        # the log lists first depends on 1-second commit times): the kernel follows, nothing is committed over it
        back = theirs
        _git(ws.dir / "repo.git", "update-ref", "refs/heads/main", back)
        r = k.ok("print(x, y)")
        assert r.stdout == "1 3\n" and ws.head().id == back
    finally:
        k.shutdown()


# -- detached HEAD, new branches, upstreams, status ---------------------------------------------------

def test_leaving_detached_commits_behind_warns_with_the_command_that_keeps_them(ws, run_txgit):
    ns = session_namespace("v = 1")
    ws.commit(ns, "one")
    ns["v"] = 2
    ws.commit(ns, "two")
    run_txgit("checkout", "HEAD~1", cwd=ws.root, check=True)
    ns["v"] = 10
    lost = ws.commit(ns, "on a detached HEAD").info.id
    out = run_txgit("checkout", "main", cwd=ws.root, check=True).stdout
    assert "leaving 1 commit behind" in out and f"txgit branch NAME {lost[:8]}" in out
    run_txgit("branch", "kept", lost[:8], cwd=ws.root, check=True)  # the advice works as typed
    assert ws.load("v", "kept") == 10
    run_txgit("checkout", "kept~0", cwd=ws.root, check=True)
    assert "leaving" not in run_txgit("checkout", "main", cwd=ws.root, check=True).stdout  # a branch holds it


def test_checkout_b_defaults_to_head_and_tracks_a_remote_branch(ws, tmp_path, run_txgit):
    ws.commit(session_namespace("v = 1"), "one")
    out = run_txgit("checkout", "-b", "fresh", cwd=ws.root, check=True).stdout
    assert "Switched to a new branch 'fresh'" in out and ws.branch == "fresh"
    assert ws.branches()["fresh"] == ws.branches()["main"]
    run_txgit("remote", "add", "origin", str(tmp_path / "shared.git"), cwd=ws.root, check=True)
    run_txgit("push", "origin", "main", cwd=ws.root, check=True)
    out = run_txgit("checkout", "-b", "mine", "origin/main", cwd=ws.root, check=True).stdout
    assert "branch 'mine' set up to track 'origin/main'" in out
    assert ws.remotes.upstream("mine") == ("origin", "main")
    assert "Your branch is up to date with 'origin/main'." in run_txgit("status", cwd=ws.root, check=True).stdout
    ws.commit(session_namespace("v = 2"), "two")
    status = run_txgit("status", cwd=ws.root, check=True).stdout
    assert "Your branch is ahead of 'origin/main' by 1 commit" in status


def test_status_shows_the_kernels_uncommitted_changes(tmp_path, run_txgit):
    ws = Workspace.init(tmp_path / "proj")
    k = Kernel(ws.root)
    try:
        k.ok("%load_ext txgit")
        k.ok("kept = 1\ngone = 2")
        k.ok("%txgit auto off")
        k.ok("kept = 10\nnew = 3\ndel gone")
        out = run_txgit("status", cwd=ws.root, check=True).stdout
        assert f"kernel {k.pid} (on main):\n  added: new\n  modified: kept\n  removed: gone" in out
        k.ok("%txgit commit -m 'by hand'")
        assert "nothing to commit" in run_txgit("status", cwd=ws.root, check=True).stdout
        proc = run_txgit("commit", "-m", "again", cwd=ws.root)
        # the shells' advice is their option, not the API's keyword
        assert proc.returncode == 1 and "(--allow-empty commits anyway)" in proc.stdout, proc.stdout
        r = k.ok("%txgit commit -m again")
        assert "(--allow-empty commits anyway)" in r.stdout + r.stderr, r
    finally:
        k.shutdown()


def test_push_u_sets_the_upstream(ws, tmp_path, run_txgit):
    ws.commit(session_namespace("v = 1"), "one")
    run_txgit("remote", "add", "origin", str(tmp_path / "a.git"), cwd=ws.root, check=True)
    run_txgit("remote", "add", "backup", str(tmp_path / "b.git"), cwd=ws.root, check=True)
    run_txgit("push", "origin", cwd=ws.root, check=True)
    assert ws.remotes.upstream("main") == ("origin", "main")  # a first push sets it, as before
    out = run_txgit("push", "-u", "backup", cwd=ws.root, check=True).stdout
    assert "branch 'main' set up to track 'backup/main'" in out and ws.remotes.upstream("main") == ("backup", "main")
    assert "up to date with 'backup/main'" in run_txgit("status", cwd=ws.root, check=True).stdout


def test_a_merge_touching_an_uncommitted_change_is_refused(tmp_path):
    """An uncommitted value of a variable the merge conflicts on would be lost by --theirs, --ours or
    --abort alike: the merge is refused, as git refuses to merge into a file with local changes."""
    from txgit.errors import DirtyNamespace

    ws = Workspace.init(tmp_path / "ws")
    s = NamespaceSession(ws, session_namespace(), kind="test")
    s.auto = False
    s.namespace["lr"] = 0.1
    s.commit("base")
    ws.create_branch("other")
    other = Workspace(ws.root)
    ns: dict = {}
    other.checkout("other", ns, move_head=False)
    ns["lr"] = 0.05
    other.history.set_head(branch="other")
    other.commit(ns, "other: lr 0.05")
    other.history.set_head(branch="main")
    _run(s, "lr = 0.2")
    s.commit("ours: lr 0.2")
    _run(s, "lr = 0.25")  # not committed
    with pytest.raises(DirtyNamespace, match="uncommitted changes to lr"):
        s.merge("other")
    assert s.namespace["lr"] == 0.25 and ws.merge_in_progress() is None


def test_a_checkout_that_loads_nothing_needs_no_trust(tmp_path):
    """Trust is asked for where a stranger's values would be unpickled, not for starting a branch on a
    state the kernel already holds."""
    from txgit.trust import UntrustedState

    alice = Workspace.init(tmp_path / "alice")
    alice.commit(session_namespace("v = [1, 2]"), "one")
    alice.remotes.add("origin", str(tmp_path / "r.git"))
    alice.push()
    bob = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "bob", trusted=False)
    s = NamespaceSession(bob, session_namespace(), kind="test")
    with pytest.raises(UntrustedState):
        s.checkout("main")
    s.checkout("main", trust=True)
    r = s.checkout("HEAD", new_branch="tuning")
    assert r.loaded == [] and s.branch == "tuning" and s.namespace["v"] == [1, 2]


def test_a_session_branch_from_a_remote_branch_tracks_it(tmp_path):
    """`%txgit checkout -b NEW origin/X` sets the upstream, as the terminal's does."""
    alice = Workspace.init(tmp_path / "alice")
    alice.commit(session_namespace("v = 1"), "one")
    alice.remotes.add("origin", str(tmp_path / "r.git"))
    alice.push()
    s = NamespaceSession(alice, session_namespace(), kind="test")
    r = s.checkout("origin/main", new_branch="try2")
    assert r.upstream == ("origin", "main") and alice.remotes.upstream("try2") == ("origin", "main")
    assert s.branch == "try2" and s.namespace["v"] == 1


def test_a_script_beside_a_kernel_changes_only_what_it_defines(tmp_path, run_txgit):
    """`txgit run` in a kernel's folder commits on the kernel's branch; it carries the kernel's variables
    over, so the kernel follows with the script's results and keeps its own."""
    ws = Workspace.init(tmp_path / "proj")
    k = Kernel(ws.root)
    try:
        k.ok("%load_ext txgit")
        k.ok("threshold = 0.7\nrows = [1, 2]")
        (ws.root / "job.py").write_text("import json\nsummary = json.dumps({'n': 3})\n")
        run_txgit("run", "job.py", cwd=ws.root, check=True)
        assert set(ws.state().variables) == {"threshold", "rows", "json", "summary"}
        r = k.ok("print(threshold, rows, summary)")
        assert r.stdout == '0.7 [1, 2] {"n": 3}\n' and "loaded json, summary" in r.stderr
    finally:
        k.shutdown()


def test_status_beside_a_busy_kernel_does_not_wait_for_its_cell(tmp_path, run_txgit):
    ws = Workspace.init(tmp_path / "proj")
    k = Kernel(ws.root)
    try:
        k.ok("%load_ext txgit")
        k.ok("x = 1")
        k.kc.execute("import time\ntime.sleep(20)")  # a long cell, running while the terminal asks
        import time

        time.sleep(1)
        started = time.monotonic()
        out = run_txgit("status", cwd=ws.root, check=True).stdout
        assert time.monotonic() - started < 18  # it did not wait for the cell (which takes 20 s)
        assert f"kernel {k.pid} (on main):\n  (its changes are not shown: kernel {k.pid} did not answer" in out
    finally:
        k.shutdown()


def test_kernels_opened_at_the_same_moment_in_one_folder_take_one_branch_each(tmp_path):
    """Four notebooks of one folder opened at once (a restored JupyterLab session): each kernel
    chose its branch (HEAD's, unless a live kernel's record held it) before writing the record that
    says it holds it, so two kernels could both take main, and commit over each other's cells.
    A race: before the fix, one of two such pairs collided in 1 of 5 tries; four kernels make it likely."""

    ws = Workspace.init(tmp_path / "ws")
    ns = {"seed": 0}
    ws.commit(ns, "seed")
    kernels = [Kernel(ws.root) for _ in range(4)]
    try:
        for k in kernels:  # imported first: the attaches themselves run side by side
            k.ok("import txgit.magics, txgit.sessions.ipython")
        sent = [(k, k.kc.execute("%load_ext txgit")) for k in kernels]
        for k, msg in sent:
            while k.kc.get_shell_msg(timeout=120)["parent_header"].get("msg_id") != msg:
                pass
        branches = [silent_eval(k, "__import__('txgit.sessions.ipython').sessions.ipython.active().session.branch")
                    for k in kernels]
        assert len(set(branches)) == 4 and "main" in branches, branches
    finally:
        for k in kernels:
            k.shutdown()


def test_a_second_kernels_reflog_selectors_name_its_own_branchs_moves(tmp_path, run_txgit):
    """The folder's second kernel commits to branch 'second'; HEAD is the first kernel's main. In it,
    `%txgit reset HEAD@{1}` said "unknown revision '<its commit>@{1}'" (its HEAD is where it stands,
    a commit, which has no reflog), and `@{1}` named main's move, not its own. Both now name where its
    branch was before its last move, in the kernel and from the terminal that asks it (--kernel)."""
    ws = Workspace.init(tmp_path / "proj")
    with notebooks(ws.root) as open_notebook:
        first = open_notebook("first.ipynb")
        first.ok("%load_ext txgit")
        first.ok("a = 1")
        second = open_notebook("second.ipynb")
        assert "commits to new branch 'second'" in second.ok("%load_ext txgit").stdout
        second.ok("b = 2")
        one = ws.branches()["second"]
        second.ok("b = 3")
        first.ok("a = 10")  # main moves too: @{1} of the folder's HEAD is main's
        second.ok("%txgit reset HEAD@{1}")
        assert ws.branches()["second"] == one and second.value("b") == 2
        second.ok("%txgit reset @{1}")  # back where the reset moved it from
        assert second.value("b") == 3 and ws.load("a", "main") == 10
        run_txgit("reset", "HEAD@{1}", "--kernel", "second", cwd=ws.root, check=True)
        assert ws.branches()["second"] == one and second.value("b") == 2 and ws.load("a", "main") == 10


def test_a_second_kernel_detached_in_the_folder_commits_onto_no_other_kernels_branch(tmp_path, run_txgit):
    """The folder's second kernel (on its own branch 'second') checked out main's tip by id: detached,
    but HEAD stays the first kernel's (a symbolic ref to main). Its next cell's auto-commit went through
    "HEAD" onto main, and the first kernel's next cell said "main moved ... outside this session: loaded
    z": two kernels wrote one branch. Its commits now go to a ref of its own: main is untouched, HEAD in
    its magics is its commit, gc keeps it, and leaving names it with the command that keeps it."""
    ws = Workspace.init(tmp_path / "proj")
    with notebooks(ws.root) as open_notebook:
        first = open_notebook("first.ipynb")
        first.ok("%load_ext txgit")
        first.ok("x = 1")
        first.ok("y = 2")
        second = open_notebook("second.ipynb")
        assert "commits to new branch 'second'" in second.ok("%load_ext txgit").stdout
        tip = ws.branches()["main"]
        assert "(detached)" in second.ok(f"%txgit checkout {tip[:8]}").stdout
        second.ok("z = 5")
        assert ws.branches() == {"main": tip, "second": tip} and ws.branch == "main"
        status = second.ok("%txgit status").stdout
        assert status.startswith("on detached HEAD, at "), status
        own = ws.resolve(status.split()[4]).id
        assert own != tip and ws.load("z", own) == 5 and ws.resolve(own).parents == [tip]
        said = first.ok("w = 7")
        assert "moved" not in said.stdout + said.stderr, said.stdout + said.stderr
        assert set(ws.state("main").variables) == {"x", "y", "w"} and first.value("'z' in dir()") is False
        main = ws.branches()["main"]
        merged = second.ok("%txgit merge main").stdout  # into where it is, named as it is there
        assert merged.startswith("Merged main into HEAD: ") and "Merge main into HEAD" in merged, merged
        assert second.value("(w, z)") == (7, 5) and ws.branches() == {"main": main, "second": tip}
        own = ws.resolve(second.ok("%txgit status").stdout.split()[4]).id
        log = second.ok("%txgit log").outputs[0]["text/plain"]
        assert log.splitlines()[0].startswith(f"* {own[:8]} (HEAD)"), log
        second.ok("%txgit tag at-z")  # HEAD in its magics is its own commit
        assert ws.resolve("at-z").id == own
        ws.delete_tag("at-z")
        terminal = run_txgit("status", cwd=ws.root, check=True).stdout
        assert f"kernel {second.pid} (second.ipynb, detached)" in terminal and "on no branch" not in terminal, terminal
        run_txgit("gc", "--grace", "0", cwd=ws.root, check=True)
        assert ws.load("z", own) == 5  # its ref keeps it (and its blobs) while nothing else names it
        second.ok("z = 6")
        reflog = second.ok("%txgit reflog").stdout  # its own moves, not main's
        assert "z = 6" in reflog.splitlines()[0] and "main@" not in reflog, reflog
        last = ws.resolve(second.ok("%txgit status").stdout.split()[4]).short_id
        left = second.ok("%txgit checkout second").stdout
        assert f"leaving 3 commits behind, not connected to any branch (last: {last}); keep them with: " \
               f"%txgit branch NAME {last}" in left, left
        status = second.ok("%txgit status").stdout
        assert status.startswith(f"on branch second, at {tip[:8]}"), status
        run_txgit("gc", "--grace", "0", cwd=ws.root, check=True)
        second.ok(f"%txgit branch on-z {last}")  # the advice, as typed
        assert ws.load("z", "on-z") == 6 and ws.load("x", "on-z") == 1
        assert ws.branches()["main"] == main and "z" not in ws.state("main").variables
        own_refs = [r for r in ws.history.repo.references if r.startswith("refs/txgit/detached/")]
        assert len(own_refs) == 1  # (it kept the commits left until they were branched)
        second.ok(f"%txgit checkout {tip[:8]}")
        second.ok("%txgit checkout second")  # it keeps nothing now: gone
        assert not [r for r in ws.history.repo.references if r.startswith("refs/txgit/detached/")]


def test_commits_a_closed_second_kernel_made_detached_are_kept_and_named_by_status(tmp_path, run_txgit):
    """The folder's second kernel, detached, commits to a HEAD of its own; closed there, nothing else
    names those commits: gc keeps them and the terminal's `txgit status` names them with the command that
    puts them on a branch, until that is done."""
    ws = Workspace.init(tmp_path / "proj")
    with notebooks(ws.root) as open_notebook:
        first = open_notebook("first.ipynb")
        first.ok("%load_ext txgit")
        first.ok("x = 1")
        second = open_notebook("second.ipynb")
        second.ok("%load_ext txgit")
        second.ok(f"%txgit checkout {ws.branches()['main'][:8]}")
        second.ok("z = 5")
        last = ws.resolve(second.ok("%txgit status").stdout.split()[4]).short_id
        pid = second.pid
        second.shutdown()
        run_txgit("gc", "--grace", "0", cwd=ws.root, check=True)
        status = run_txgit("status", cwd=ws.root, check=True).stdout
        assert f"on no branch: 1 commit kernel {pid} made detached (last: {last}); keep it with: " \
               f"txgit branch NAME {last}" in status, status
        run_txgit("branch", "kept", last, cwd=ws.root, check=True)
        assert ws.load("z", "kept") == 5 and "on no branch" not in run_txgit("status", cwd=ws.root).stdout


def test_the_first_kernel_detached_moves_head_and_not_the_second_kernels_branch(tmp_path, run_txgit):
    """The mirror case: the kernel holding the folder's HEAD checks out a commit by id while the second
    kernel is on 'second'. HEAD detaches with it and its commits move HEAD; neither main nor 'second'
    moves, and neither kernel is told that something moved under it."""
    ws = Workspace.init(tmp_path / "proj")
    with notebooks(ws.root) as open_notebook:
        first = open_notebook("first.ipynb")
        first.ok("%load_ext txgit")
        first.ok("x = 1")
        second = open_notebook("second.ipynb")
        second.ok("%load_ext txgit")
        second.ok("b = 2")
        main, own = ws.branches()["main"], ws.branches()["second"]
        assert "(detached)" in first.ok(f"%txgit checkout {main[:8]}").stdout
        said = first.ok("w = 7")
        assert ws.branch is None and ws.head().id != main and ws.load("w", "HEAD") == 7
        said2 = second.ok("c = 3")
        said3 = first.ok("v = 8")
        for r in (said, said2, said3):
            assert "moved" not in r.stdout + r.stderr, r.stdout + r.stderr
        assert ws.branches()["main"] == main and ws.load("c", "second") == 3 and ws.resolve("second~1").id == own
        assert set(ws.state("HEAD").variables) == {"x", "w", "v"}
        assert "b" not in ws.state("HEAD").variables and second.value("'w' in dir()") is False
        head = ws.head().id
        terminal = run_txgit("status", cwd=ws.root, check=True).stdout
        assert f"HEAD detached at {head[:8]}" in terminal and f"kernel {first.pid} (first.ipynb, detached)" in terminal
        left = first.ok("%txgit checkout main").stdout
        assert f"leaving 2 commits behind, not connected to any branch (last: {head[:8]})" in left, left
