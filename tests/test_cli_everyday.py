"""Everyday use as a git user expects it (issue 21): init twice, `.txgit/` inside a git work tree,
--version, -h, completion, the pager, colour, and the wording of branch -f, checkout and help.
Run as a user types it: the real `txgit` in a subprocess (a pseudo-terminal where a terminal matters)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pygit2
import pytest

from cliutil import assert_one_line_error
from conftest import session_namespace
from txgit import Workspace
from txgit.errors import WorkspaceExists


def fingerprint(root: Path) -> dict[str, bytes]:
    """Every file under ``root``: path -> content."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


# -- init on an existing workspace --------------------------------------------------------------

def test_init_again_says_reinitialized_and_changes_nothing(tmp_path, run_txgit):
    out = run_txgit("init", "proj", cwd=tmp_path, check=True).stdout
    proj = tmp_path / "proj"
    assert out == f"Initialized empty txgit workspace in {proj / '.txgit'}\n"
    Workspace.open(proj).commit(session_namespace("x = 1"), "one")
    before = fingerprint(proj)
    for args, cwd in ((("init", "proj"), tmp_path), (("init",), proj), (("init", "."), proj)):
        proc = run_txgit(*args, cwd=cwd)
        assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
        assert proc.stdout == f"Reinitialized existing txgit workspace in {proj / '.txgit'}\n"
    assert fingerprint(proj) == before
    assert run_txgit("log", "--oneline", cwd=proj, check=True).stdout.count("\n") == 1
    # clone still refuses a folder that is a workspace
    src = Workspace.init(tmp_path / "src")
    src.commit(session_namespace("y = 2"), "theirs")
    src.remotes.add("origin", str(tmp_path / "r.git"))
    src.push()
    assert_one_line_error(run_txgit("clone", str(tmp_path / "r.git"), "proj", cwd=tmp_path), "already a txgit workspace")
    assert fingerprint(proj) == before


def test_open_or_init_for_code_that_runs_twice(tmp_path):
    first = Workspace.open_or_init(tmp_path / "p")
    first.commit(session_namespace("x = 1"), "one")
    again = Workspace.open_or_init(tmp_path / "p")
    assert again.root == first.root and again.head().summary == "one"
    (tmp_path / "p" / "sub").mkdir()
    nested = Workspace.open_or_init(tmp_path / "p" / "sub")  # its own folder, not the parent's workspace
    assert nested.root == tmp_path / "p" / "sub" and nested.head() is None
    with pytest.raises(WorkspaceExists, match="open_or_init"):  # init itself stays strict
        Workspace.init(tmp_path / "p")


# -- .txgit/ stays out of the user's own git repository ---------------------------------------

@pytest.mark.parametrize("where", [".", "notebooks"])
def test_a_workspace_inside_a_git_work_tree_is_not_in_git_status(tmp_path, run_txgit, where):
    git("init", "-q", cwd=tmp_path)
    (tmp_path / "analysis.py").write_text("x = 1\n")
    (tmp_path / "notebooks").mkdir()
    run_txgit("init", where, cwd=tmp_path, check=True)
    ws = Workspace.open(tmp_path / where)
    ws.commit(session_namespace("x = 1\ny = list(range(100))"), "one")  # objects, refs, reflogs
    assert git("status", "--porcelain", "--untracked-files=all", cwd=tmp_path) == "?? analysis.py\n"
    git("add", "-A", cwd=tmp_path)
    assert git("diff", "--cached", "--name-only", cwd=tmp_path) == "analysis.py\n"


def test_clones_and_older_workspaces_are_ignored_too(tmp_path, run_txgit):
    git("init", "-q", cwd=tmp_path)
    src = Workspace.init(tmp_path / "src")
    src.commit(session_namespace("x = 1"), "one")
    src.remotes.add("origin", str(tmp_path / "r.git"))
    src.push()
    (tmp_path / "r.git" / ".gitignore").write_text("*\n")  # (the bare remote is not what this test is about)
    run_txgit("clone", str(tmp_path / "r.git"), "bob", "--trusted", cwd=tmp_path, check=True)
    (tmp_path / "src" / ".txgit" / ".gitignore").unlink()  # as a workspace made before txgit wrote one
    assert git("status", "--porcelain", cwd=tmp_path) == "?? src/\n"
    run_txgit("init", "src", cwd=tmp_path, check=True)  # reinitializing adds it
    assert git("status", "--porcelain", cwd=tmp_path) == ""
    assert pygit2.Repository(str(tmp_path / "src" / ".txgit" / "repo.git")).is_bare
