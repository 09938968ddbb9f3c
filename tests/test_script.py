"""`txgit run` (commit after each top-level statement, resume after a crash) and txgit.commit() in scripts."""

from __future__ import annotations

import subprocess
import sys

from cliutil import assert_one_line_error

from txgit import Workspace

SCRIPT = """\
import sys
data = [1, 2, 3]

def grow(n):
    data.extend(range(n))

grow(int(sys.argv[1]))
total = sum(data)
print("total", total)
ratio = total / (int(sys.argv[2]) - 1)
print("ratio", ratio)
"""


def test_run_commits_each_statement_and_keeps_state_up_to_a_crash(ws, run_txgit):
    (ws.root / "job.py").write_text(SCRIPT)
    proc = run_txgit("run", "job.py", "2", "1", cwd=ws.root)
    assert proc.returncode == 1 and "total 7" in proc.stdout
    assert "ZeroDivisionError: division by zero" in proc.stderr  # the script's own traceback
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("txgit: error: job.py:10 raised ZeroDivisionError") and "--resume job.py" in last
    log = ws.log()
    # a statement that changed no variable (line 9 prints) makes no commit; its code goes into the next one
    assert [c.summary.split(":")[1] for c in reversed(log)] == ["1", "2", "4", "7", "8"]
    assert ws.load("total") == 7 and ws.load("data") == [1, 2, 3, 0, 1]
    assert "ratio" not in ws.state().variables
    assert ws.state().meta["script"]["stmt"] == 4


def test_resume_continues_after_the_last_committed_statement(ws, run_txgit):
    (ws.root / "job.py").write_text(SCRIPT)
    run_txgit("run", "job.py", "2", "1", cwd=ws.root)
    # the fix: resume with other arguments; grow() must not run again
    proc = run_txgit("run", "--resume", "job.py", "2", "3", cwd=ws.root, check=True)
    assert proc.stdout.strip() == "ratio 3.5"
    assert ws.load("ratio") == 3.5 and ws.load("data") == [1, 2, 3, 0, 1]
    assert callable(ws.load("grow"))


def test_resume_of_a_run_that_finished_says_there_is_nothing_to_resume(ws, run_txgit):
    """getting-started.md's `txgit run --resume train.py`, typed after a run that did not crash, printed
    nothing at all: it says that the run had finished, and how to run it again. A statement added to the
    script since is run, as a resume runs what comes after HEAD's statement."""
    (ws.root / "job.py").write_text("x = 1\nprint('x', x)\n")
    run_txgit("run", "job.py", cwd=ws.root, check=True)
    head = ws.head().short_id
    proc = run_txgit("run", "--resume", "job.py", cwd=ws.root, check=True)
    assert proc.stdout == "" and proc.stderr == (f"txgit: job.py ran to its end at {head}: nothing to resume "
                                                 "(`txgit run job.py` runs it again)\n")
    (ws.root / "job.py").write_text("x = 1\nprint('x', x)\ny = x + 1\n")
    proc = run_txgit("run", "--resume", "job.py", cwd=ws.root, check=True)
    assert proc.stdout == proc.stderr == "" and ws.load("y") == 2 and len(ws.log()) == 2


def test_resume_refuses_a_head_from_elsewhere(ws, run_txgit):
    (ws.root / "job.py").write_text(SCRIPT)
    proc = run_txgit("run", "--resume", "job.py", cwd=ws.root)
    assert proc.returncode == 1 and proc.stderr.startswith("txgit: error: HEAD (no commits) was not made by")


def test_run_bad_input_is_one_line(ws, run_txgit):
    proc = run_txgit("run", "missing.py", cwd=ws.root)
    assert proc.returncode == 1 and proc.stderr.startswith("txgit: error: cannot read missing.py")
    (ws.root / "bad.py").write_text("x = (\n")
    proc = run_txgit("run", "bad.py", cwd=ws.root)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1 and "syntax error" in proc.stderr


def test_script_exit_code_and_main_guard(ws, run_txgit):
    (ws.root / "m.py").write_text("import sys\nclass K:\n    pass\nk = K()\nif __name__ == '__main__':\n"
                                  "    k.v = sys.argv[1:]\n    sys.exit(3)\n")
    proc = run_txgit("run", "m.py", "a", "--flag", cwd=ws.root)
    assert proc.returncode == 3
    assert ws.load("k").v == ["a", "--flag"]


def test_txgit_commit_in_a_plain_script(tmp_path):
    (tmp_path / "plain.py").write_text(
        "import txgit\nrows = [1]\ntxgit.commit('first')\nrows.append(2)\nalias = rows\ntxgit.commit('second')\n"
    )
    subprocess.run([sys.executable, "plain.py"], cwd=tmp_path, check=True)
    ws = Workspace(tmp_path)
    assert [c.summary for c in ws.log()] == ["second", "first"]
    assert ws.load("rows", "HEAD~1") == [1]
    ns: dict = {}
    ws.checkout("HEAD", ns, force=True)
    assert ns["rows"] == [1, 2] and ns["alias"] is ns["rows"]


def test_a_script_run_by_a_collaborator_keeps_the_pulled_values_it_never_loaded(tmp_path, run_txgit):
    """Bob cloned Alice's state (x, rows, lr) and runs `txgit run train.py`, whose namespace starts empty and
    sets x and model. Its commits carry Alice's other variables over as they are (a script never deletes
    what it did not load, as a fresh kernel does not), so his push publishes no deletion: a third
    clone has Alice's rows and lr beside Bob's x and model. (Round 16 found this holds.)"""
    alice = Workspace.init(tmp_path / "alice")
    alice.commit({"x": 1, "rows": [1, 2], "lr": 0.1}, "alice")
    alice.remotes.add("origin", str(tmp_path / "team.git"), trusted=True)
    alice.push()
    run_txgit("clone", str(tmp_path / "team.git"), "bob", "--trusted", cwd=tmp_path, check=True)
    (tmp_path / "bob" / "train.py").write_text("x = 2\nmodel = {'w': x * 3}\n")
    run_txgit("run", "train.py", cwd=tmp_path / "bob", check=True)
    bob = Workspace(tmp_path / "bob")
    assert set(bob.state().variables) == {"x", "rows", "lr", "model"}
    assert run_txgit("push", cwd=bob.root, check=True).returncode == 0
    run_txgit("clone", str(tmp_path / "team.git"), "carol", "--trusted", cwd=tmp_path, check=True)
    carol = Workspace(tmp_path / "carol")
    assert {n: carol.load(n) for n in ("x", "rows", "lr", "model")} == {"x": 2, "rows": [1, 2], "lr": 0.1,
                                                                      "model": {"w": 6}}


def test_a_script_is_not_run_while_a_merge_waits_for_its_conflicts(ws, run_txgit):
    """A pull stopped on a conflict (lr); `txgit run job.py` ran its first statement, then stopped
    with a kernel's advice ("set it and commit ..."), and its value was held for the merge as if set
    by a closed kernel ("kernel 6971 closed during the merge; it had set z = 1 ...: `txgit merge
    --continue` takes them"): a script the user saw fail would have put z into the merge commit.
    As git refuses to commit during a conflicted merge, `txgit run` now runs nothing and says what
    to do first, in one line."""
    ns = {"__name__": "__main__", "lr": 0.1}
    ws.commit(ns, "base")
    ws.create_branch("other")
    ns["lr"] = 0.3
    ws.commit(ns, "mine")
    theirs: dict = {"__name__": "__main__"}
    ws.checkout("other", theirs)
    theirs["lr"] = 0.4
    ws.commit(theirs, "theirs")
    ws.checkout("main", ns, force=True)
    assert ws.merge("other", ns).status == "conflicts"
    (ws.root / "job.py").write_text("open('ran', 'w').close()\nz = 1\n")
    for args in (["run", "job.py"], ["run", "--resume", "job.py"]):
        proc = run_txgit(*args, cwd=ws.root)
        assert_one_line_error(proc, "merge of other into main waits for its conflicts", "txgit merge --abort")
    assert not (ws.root / "ran").exists()
    status = run_txgit("status", cwd=ws.root, check=True).stdout
    assert "closed during the merge" not in status and "z" not in ws.state().variables
    assert ws.merge_held(ws.merge_in_progress()) == []
