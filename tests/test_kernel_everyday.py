"""Everyday use of the extension in real kernels, and what a terminal beside them shows:
`%load_ext txgit` says which workspace it opened (and refuses a home folder), a fresh kernel makes
unpicklable values again by re-running their code, `%txgit auto on` commits what was done while off."""

from __future__ import annotations

from pathlib import Path

import pytest
from kernelutil import Kernel, silent_eval

from txgit import Workspace
from txgit.state import UNPICKLABLE

pytestmark = pytest.mark.timeout(300)


# -- %load_ext txgit says where it is, and never versions a home folder ------------------------------

def test_load_ext_says_which_workspace_it_opened_or_created(tmp_path):
    proj = (tmp_path / "proj").resolve()
    (proj / "sub").mkdir(parents=True)
    k = Kernel(proj)
    try:
        assert k.ok("%load_ext txgit").stdout == f"txgit: created workspace {proj}, on branch main, no commits yet\n"
        k.ok("x = 1")
    finally:
        k.shutdown()
    head = Workspace.open(proj).head()
    k = Kernel(proj / "sub")  # a kernel in a folder below the workspace opens it, and says which
    try:
        said = k.ok("%load_ext txgit").stdout
        assert said == f"txgit: opened workspace {proj}, on branch main, at {head.short_id} (cell [2]: x = 1)\n"
    finally:
        k.shutdown()


def test_load_ext_refuses_to_create_a_workspace_in_a_home_folder(tmp_path, run_txgit):
    home = (tmp_path / "home" / "me").resolve()
    home.mkdir(parents=True)
    env = {"HOME": str(home)}
    k = Kernel(home, env=env)
    try:
        r = k.run("%load_ext txgit")
        assert r.status == "error" and len(r.traceback) == 1, r.traceback
        said = r.traceback[0]
        assert said.startswith(f"txgit: error: not creating a workspace in your home folder {home} "), said
        assert "`%cd` to one and `%load_ext txgit` again" in said and "`txgit init` it" in said
        assert "%env TXGIT_ALLOW_HOME=1" in said and "Traceback" not in said
        k.ok("x = 1")
        assert not (home / ".txgit").exists()
        # from a terminal: nothing was created there; `txgit init` creates it on purpose, and the
        # extension (not loaded by the refusal) then opens it
        assert "not a txgit workspace" in run_txgit("status", cwd=home).stderr
        run_txgit("init", cwd=home, check=True)
        assert k.ok("%load_ext txgit").stdout == f"txgit: opened workspace {home}, on branch main, no commits yet\n"
    finally:
        k.shutdown()
    above = home.parent  # a folder above home would hold it too
    k = Kernel(above, env=env)
    try:
        r = k.run("%load_ext txgit")
        assert r.status == "error" and "not creating a workspace in a folder above your home folder" in r.traceback[0]
        assert not (above / ".txgit").exists()
        k.ok("%env TXGIT_ALLOW_HOME=1")  # versioning it anyway, as the refusal says
        assert k.ok("%load_ext txgit").stdout.startswith(f"txgit: created workspace {above}, on branch main")
    finally:
        k.shutdown()


def test_the_root_folder_is_refused_too():
    from txgit.errors import TxgitError
    from txgit.sessions.ipython import broad_folder, open_workspace

    assert broad_folder("/") == "the root folder" and broad_folder(Path.home()) == "your home folder"
    assert broad_folder(Path.home() / "project") is None
    if Path("/.txgit").exists():
        pytest.skip("this machine has a workspace in /")
    with pytest.raises(TxgitError, match="not creating a workspace in the root folder /"):
        open_workspace("/")
    assert not Path("/.txgit").exists()


# -- a fresh kernel makes values that could not be saved again -------------------------------------

MAKE = ("con = sqlite3.connect('data.db')\n"
        "version = con.execute('select sqlite_version()').fetchone()[0]\n"
        "gen = (i * i for i in range(4))\n"
        "next(gen)\n"
        "lock = threading.Lock()\n"
        "open('runs.txt', 'a').write('ran\\n')")


def test_one_cell_that_made_several_unpicklable_values_runs_once_for_all(tmp_path, run_txgit):
    """The cell read `con` and `gen` after making them: they are no inputs of its own code, so re-running
    it once makes `con`, `gen` and `lock` again (it used to be refused: "its code needs con")."""
    ws = Workspace.init(tmp_path / "ws")
    k = Kernel(ws.root)
    try:
        k.ok("%load_ext txgit")
        k.ok("import sqlite3, threading")
        k.ok(MAKE)
        k.ok("n = 1")
    finally:
        k.shutdown()
    assert set(ws.state().meta["skipped"]) == {"con", "gen", "lock"}
    k = Kernel(ws.root)
    try:
        k.ok("%load_ext txgit")
        out = k.ok("%txgit checkout main").stdout
        assert "recomputed by re-running the code that made them: con, gen, lock\n" in out, out
        assert "not restored" not in out
        assert (ws.root / "runs.txt").read_text() == "ran\n" * 2  # once when it ran, once for all three
        assert silent_eval(k, "(con.execute('select 6 * 7').fetchone()[0], list(gen), type(lock).__name__, n)") == \
            (42, [1, 4, 9], "lock", 1)
        status = k.ok("%txgit status").stdout
        assert status.endswith("nothing to commit\n") and "removed" not in status, status
    finally:
        k.shutdown()
    # the same from a terminal beside a fresh kernel
    k = Kernel(ws.root)
    try:
        k.ok("%load_ext txgit")
        out = run_txgit("checkout", "main", cwd=ws.root, check=True).stdout
        assert f"[kernel {k.pid}] checked out branch main" in out
        assert "recomputed by re-running the code that made them: con, gen, lock" in out and "not restored" not in out
        status = run_txgit("status", cwd=ws.root, check=True).stdout
        assert f"kernel {k.pid} (on main):\n  nothing to commit" in status and "removed" not in status, status
        assert (ws.root / "runs.txt").read_text() == "ran\n" * 3
    finally:
        k.shutdown()


def test_a_cell_that_makes_a_generator_anew_with_other_code_commits_that_code(tmp_path):
    """`gen = (i + 100 for i in range(4))` after `gen = (i * i ...)`, alone in its cell, committed nothing (a
    value that cannot be pickled is compared by its type), and no later commit recorded the new code (only
    the values a commit serializes again get their recipe): a checkout, a clone or a merge made the old
    generator from the old code. Now that cell commits the code that made it; drawing from it (`next(gen)`)
    still commits nothing, as before."""
    ws = Workspace.init(tmp_path / "ws")
    k = Kernel(ws.root)
    try:
        k.ok("%load_ext txgit")
        k.ok("gen = (i * i for i in range(4))\nn = 1")
        k.ok("next(gen)")
        before = len(ws.log())
        k.ok("gen = (i + 100 for i in range(4))")
        assert len(ws.log()) == before + 1
        assert ws.state().variables["gen"].details["recipe"]["code"] == "gen = (i + 100 for i in range(4))"
        k.ok("next(gen)")
        assert len(ws.log()) == before + 1
    finally:
        k.shutdown()
    k = Kernel(ws.root)
    try:
        k.ok("%load_ext txgit")
        assert "recomputed by re-running the code that made them: gen" in k.ok("%txgit checkout main").stdout
        assert silent_eval(k, "(next(gen), n)") == (100, 1)
    finally:
        k.shutdown()


def test_values_that_cannot_be_made_again_are_not_called_removed(tmp_path, run_txgit):
    """Their code fails now (the file it read is gone): the checkout says so, status lists them as not
    restored (not removed), and the next commit keeps them as they were, recipe included."""
    ws = Workspace.init(tmp_path / "ws")
    (ws.root / "settings.txt").write_text("fast")
    k = Kernel(ws.root)
    try:
        k.ok("%load_ext txgit")
        k.ok("import sqlite3, threading")
        k.ok(MAKE + "\nmode = open('settings.txt').read()")
        k.ok("n = 1")
    finally:
        k.shutdown()
    (ws.root / "settings.txt").unlink()
    k = Kernel(ws.root)
    try:
        k.ok("%load_ext txgit")
        out = k.ok("%txgit checkout main").stdout
        for name in ("con", "gen", "lock"):
            assert f"not restored: {name}: " in out and "re-running its code failed: FileNotFoundError" in out
        status = k.ok("%txgit status").stdout
        assert "removed" not in status and "nothing to commit" in status, status
        assert "  not restored: con: sqlite3.Connection could not be saved" in status
        assert "  not restored: gen: " in status and "  not restored: lock: " in status
        terminal = run_txgit("status", cwd=ws.root, check=True).stdout
        assert "removed" not in terminal and "  not restored: con: " in terminal, terminal
        k.ok("m = 2")
        state = ws.state()
        assert {"con", "gen", "lock", "m", "mode"} <= set(state.variables)
        assert state.variables["con"].kind == UNPICKLABLE and "recipe" in state.variables["con"].details
        assert "not restored: con" in k.ok("%txgit status").stdout  # still: nothing set it since
        k.ok("con = None")  # set here: an ordinary variable again
        status = k.ok("%txgit status").stdout
        assert "not restored: con" not in status and "not restored: gen" in status
    finally:
        k.shutdown()


# -- %txgit auto on commits what the cells did while it was off ------------------------------------

def test_auto_on_commits_the_changes_made_while_it_was_off(tmp_path, run_txgit):
    ws = Workspace.init(tmp_path / "ws")
    k = Kernel(ws.root)
    try:
        k.ok("%load_ext txgit")  # [1]
        k.ok("a = 1")  # [2]
        assert k.ok("%txgit auto off").stdout == "auto-commit off\n"  # [3]
        k.ok("b = 2")  # [4]
        k.ok("print(b)")  # [5]
        k.ok("a = 3")  # [6]
        before = ws.head()
        assert before.summary == "cell [2]: a = 1"
        said = k.ok("%txgit auto on").stdout  # [7]
        head = ws.head()
        assert head.id != before.id and head.summary == "changes made with auto-commit off (cells [4]-[6])"
        assert said.startswith(f"auto-commit on\n[main {head.short_id}] changes made with auto-commit off "
                               "(cells [4]-[6]): "), said
        diff = ws.diff(before.id, head.id)
        assert list(diff.added) == ["b"] and list(diff.changed) == ["a"]
        k.ok("c = 4")  # [8]: its own commit, with its own change only
        last = ws.head()
        assert last.summary == "cell [8]: c = 4" and list(ws.diff(head.id, last.id).added) == ["c"]
        assert not ws.diff(head.id, last.id).changed
        # on again with nothing done meanwhile (or on while on): no commit
        k.ok("%txgit auto off")
        k.ok("print(a)")
        assert k.ok("%txgit auto on").stdout == "auto-commit on\n"
        assert k.ok("%txgit auto on").stdout == "auto-commit on\n" and ws.head().id == last.id
        k.ok("e = 0")  # [13]: auto-committed, with the code of [10]
        k.ok("%txgit auto off")
        k.ok("d = 5")  # [15]
        assert "changes made with auto-commit off (cell [15])" in k.ok("%txgit auto on").stdout
    finally:
        k.shutdown()
    log = run_txgit("log", cwd=ws.root, check=True).stdout
    assert "changes made with auto-commit off (cells [4]-[6])" in log and "changes made with auto-commit off (cell [15])" in log


# -- what a terminal and the magics say about a kernel's commit and checkout -----------------------

def test_commit_and_checkout_reports_from_magic_and_terminal(tmp_path, run_txgit):
    """One variable is "1 variable"; a terminal checkout into the kernel counts what it kept, as the magic does."""
    ws = Workspace.init(tmp_path / "ws")
    k = Kernel(ws.root)
    try:
        k.ok("%load_ext txgit")
        k.ok("%txgit auto off")
        k.ok("x = 1")
        said = k.ok("%txgit commit -m one").stdout
        assert ": 1 variable, 1 serialized, " in said, said
        first = ws.head().id
        k.ok("y = 3")
        out = run_txgit("commit", "-m", "two", cwd=ws.root, check=True).stdout
        assert out.startswith("[kernel ") and ": 2 variables, 1 serialized" in out, out
        out = run_txgit("checkout", first, cwd=ws.root, check=True).stdout
        assert f"checked out {first[:8]} (detached): loaded 0, kept 1, removed 1" in out, out  # x kept, y removed
        out = run_txgit("checkout", "main", cwd=ws.root, check=True).stdout
        assert "checked out branch main: loaded 1, kept 1, removed 0" in out, out
        assert k.value("(x, y)") == (1, 3)
    finally:
        k.shutdown()


def test_a_magic_does_not_name_its_own_kernel(tmp_path):
    """`[kernel PID]` says, in a terminal, which kernel did what it printed. `%txgit reset`, `merge` and
    `pull` run the CLI's verb inside the kernel, and printed it too: `[kernel 8945] main is now at ...`
    in the notebook, naming the kernel the user is typing into. The magic prints what it did alone, as
    `%txgit checkout` and `commit` do."""
    ws = Workspace.init(tmp_path / "ws")
    k = Kernel(ws.root)
    try:
        k.ok("%load_ext txgit")
        k.ok("x = 1")
        k.ok("x = 2")
        k.ok("%txgit branch keep")
        outputs = [k.ok(magic).stdout for magic in ("%txgit reset HEAD~1", "%txgit merge keep",
                                                    "%txgit checkout -b other", "%txgit commit -m same --allow-empty")]
        assert all(out and "[kernel" not in out for out in outputs), outputs
        assert outputs[0].startswith("main is now at ") and outputs[1].startswith("Fast-forward main: "), outputs
        assert k.value("x") == 2
    finally:
        k.shutdown()
