"""Before a pull or a push, look: what a pull would bring, what a push would send, what they changed.

As a git user types `git fetch; git log main..origin/main` (what a pull brings), `git log
origin/main..main` (what a push sends) and `git diff main...origin/main` (what the other side
changed since the histories forked: what a merge of it would bring in), `txgit log A..B`,
`txgit log A...B` and `txgit diff A...B` answer the same questions, in the Python API, in a terminal
and in a kernel's `%txgit`. Real git is the oracle for which commits a range holds (`git rev-list`
and `git merge-base` on the workspace's own repository); the remote is a bare repository served by
`git daemon` on 127.0.0.1, or a folder.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cliutil import assert_one_line_error
from kernelutil import Kernel, User

from txgit import Workspace
from txgit.errors import TxgitError, UnknownRevision

pytestmark = pytest.mark.timeout(300)


def _diverged(tmp_path: Path, url: str, add_args: tuple[str, ...] = ()) -> tuple[Workspace, dict, Workspace]:
    """Alice and Bob forked from one pushed state; Bob pushed two commits (epochs=10, then a new
    variable ``note``), Alice made one (lr=0.05) and fetched. Returns (alice, her namespace, bob)."""
    alice = Workspace.init(tmp_path / "alice")
    ns = {"__name__": "__main__", "lr": 0.1, "epochs": 3, "weights": [0.0, 0.0, 0.0]}
    alice.commit(ns, "baseline")
    alice.remotes.add("origin", url, trusted=True, **dict(zip(add_args[::2], add_args[1::2])))
    alice.push()
    bob = Workspace.clone(url, tmp_path / "bob", trusted=True)
    b_ns: dict = {"__name__": "__main__"}
    bob.checkout("main", b_ns)
    b_ns["epochs"] = 10
    bob.commit(b_ns, "bob: 10 epochs")
    b_ns["note"] = "lr sweep next"
    bob.commit(b_ns, "bob: a note")
    bob.push()
    ns["lr"] = 0.05
    alice.commit(ns, "alice: lr 0.05")
    alice.fetch()
    return alice, ns, bob


def _git(ws: Workspace, *args: str) -> list[str]:
    out = subprocess.run(["git", "--git-dir", str(ws.root / ".txgit" / "repo.git"), *args],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


# -- the Python API, with real git as the oracle ---------------------------------------------------------

def test_log_ranges_hold_the_commits_git_says(tmp_path):
    alice, _, _ = _diverged(tmp_path, str(tmp_path / "team.git"))
    for spec in ("main..origin/main", "origin/main..main", "origin/main..", "..origin/main", "main...origin/main",
                 "origin/main...", "main..main", "origin/main~1..origin/main"):
        git_spec = spec if not spec.endswith(".") else spec + "HEAD"
        git_spec = git_spec if not spec.startswith(".") else "HEAD" + git_spec
        want, got = _git(alice, "rev-list", "--topo-order", git_spec), [c.id for c in alice.log(spec)]
        # which of two independent commits comes first is git's choice (their times tie to the second)
        assert (got if "..." not in spec else sorted(got)) == (want if "..." not in spec else sorted(want)), spec
    assert [c.summary for c in alice.log("main..origin/main")] == ["bob: a note", "bob: 10 epochs"]
    assert [c.summary for c in alice.log("origin/main..")] == ["alice: lr 0.05"]  # what a push sends
    assert {c.summary for c in alice.log("main...origin/main")} == {"bob: a note", "bob: 10 epochs", "alice: lr 0.05"}
    assert len(alice.log("main...origin/main", max_count=2)) == 2


def test_diff_of_three_dots_is_what_a_merge_would_bring(tmp_path):
    alice, _, _ = _diverged(tmp_path, str(tmp_path / "team.git"))
    theirs = alice.diff("main...origin/main")  # from the merge base to origin/main: Bob's changes only
    assert list(theirs.added) == ["note"] and list(theirs.changed) == ["epochs"] and not theirs.removed
    assert theirs.a == _git(alice, "merge-base", "main", "origin/main")[0]
    assert theirs.b == "origin/main"
    both = alice.diff("main..origin/main")  # two dots: as `diff main origin/main`, Alice's lr undone too
    plain = alice.diff("main", "origin/main")
    assert (both.added, both.removed, both.changed) == (plain.added, plain.removed, plain.changed)
    assert set(both.changed) == {"epochs", "lr"}
    ours = alice.diff("origin/main...")  # what her push would bring to someone on origin/main
    assert list(ours.changed) == ["lr"] and not ours.added


def test_a_bad_side_of_a_range_is_named(tmp_path):
    alice, _, _ = _diverged(tmp_path, str(tmp_path / "team.git"))
    for spec, side in (("main..orign/main", "orign/main"), ("mian...origin/main", "mian"), ("main..HEAD~9", "HEAD~9")):
        with pytest.raises(UnknownRevision) as e:
            alice.log(spec)
        assert f"unknown revision {side!r}" in str(e.value) and "\n" not in str(e.value), spec
        with pytest.raises(UnknownRevision) as e:
            alice.diff(spec)
        assert f"unknown revision {side!r}" in str(e.value), spec
    with pytest.raises(UnknownRevision, match="a..b..c"):
        alice.log("a..b..c")
    lonely = Workspace.init(tmp_path / "lonely")  # no history in common with Alice's
    lonely.commit({"x": 1}, "other")
    alice.remotes.add("lonely", str(tmp_path / "lonely" / ".txgit" / "repo.git"), storage=str(tmp_path / "lb"))
    alice.fetch("lonely")
    with pytest.raises(TxgitError, match="no commit in common"):
        alice.diff("main...lonely/main")
    assert {c.summary for c in alice.log("main...lonely/main")} == {"other", "alice: lr 0.05", "baseline"}


# -- the terminal, against a git daemon --------------------------------------------------------------------

@pytest.mark.parametrize("shared", ["folder"], indirect=True)
def test_terminal_previews_a_pull_and_a_push(shared, tmp_path, run_txgit):
    url, add_args, _, env = shared
    alice, _, _ = _diverged(tmp_path, url, tuple(a.lstrip("-") for a in add_args))
    before = _git(alice, "for-each-ref", "--format=%(refname) %(objectname)")

    def tx(*args: str) -> list[str]:
        proc = run_txgit(*args, cwd=alice.root, env=env, check=True)
        return proc.stdout.splitlines()

    brings = tx("log", "--oneline", "main..origin/main")
    assert [line.split(" ", 1)[1] for line in brings] == ["(origin/main) bob: a note", "bob: 10 epochs"]
    assert len(tx("log", "--oneline", "-n", "1", "main..origin/main")) == 1
    sends = tx("log", "--oneline", "origin/main..")
    assert len(sends) == 1 and sends[0].endswith("(HEAD -> main) alice: lr 0.05")
    assert tx("log", "origin/main..main")[0].startswith("commit " + alice.head().id)
    graph = tx("log", "--graph", "--oneline", "main...origin/main")
    assert len([g for g in graph if g.lstrip("|/\\ ").startswith("* ") or "* " in g]) == 3, graph
    assert any("+note" in g for g in graph) and any("~lr" in g for g in graph)

    theirs = tx("diff", "main...origin/main")
    base = _git(alice, "merge-base", "main", "origin/main")[0]
    assert theirs[0].startswith(f"diff {base[:8]} (merge base of main and origin/main) -> ")
    body = [line.split()[:2] for line in theirs[1:-1]]
    assert body == [["+", "note"], ["~", "epochs"]] and theirs[-1] == "1 added, 0 removed, 1 changed"
    assert {line.split()[1] for line in tx("diff", "main..origin/main")[1:-1]} == {"note", "epochs", "lr"}

    for argv, side in ((["log", "main..orign/main"], "orign/main"), (["log", "--oneline", "mian...origin/main"], "mian"),
                       (["diff", "main...orign/main"], "orign/main"), (["log", "a..b..c"], "a..b..c")):
        assert_one_line_error(run_txgit(*argv, cwd=alice.root, env=env), f"'{side}'")
    assert _git(alice, "for-each-ref", "--format=%(refname) %(objectname)") == before  # nothing moved
    assert alice.fsck().ok


# -- a real kernel's %txgit ---------------------------------------------------------------------------------

def test_kernel_previews_a_pull_and_a_push(tmp_path, run_txgit):
    team = tmp_path / "team.git"
    alice = User("alice", Workspace.init(tmp_path / "alice"), run_txgit, {})
    try:
        alice.cell("lr = 0.1\nepochs = 3")
        alice.tx("remote", "add", "origin", str(team), "--trusted")
        alice.tx("push")
        bob = Workspace.clone(str(team), tmp_path / "bob", trusted=True)
        b_ns: dict = {"__name__": "__main__"}
        bob.checkout("main", b_ns)
        b_ns["epochs"] = 10
        bob.commit(b_ns, "bob: 10 epochs")
        bob.push()
        alice.cell("lr = 0.05")
        alice.cell("%txgit fetch")

        def text(magic: str) -> str:
            return "\n".join(o.get("text/plain", "") for o in alice.cell(magic).outputs)

        brings = text("%txgit log main..origin/main")
        assert "bob: 10 epochs" in brings and "lr = 0.05" not in brings and "lr = 0.1" not in brings
        sends = text("%txgit log origin/main..")
        assert "lr = 0.05" in sends and "bob" not in sends and "lr = 0.1" not in sends
        assert len(text("%txgit log -n 1 main...origin/main").splitlines()) == 1
        assert text("%txgit log origin/main..origin/main") == "no commits in origin/main..origin/main"  # not "yet"
        theirs = text("%txgit diff main...origin/main")
        assert "epochs" in theirs and "lr" not in theirs
        assert theirs.splitlines()[0].startswith("diff ") and "(merge base of main and origin/main) -> " in theirs
        assert "lr" in text("%txgit diff main..origin/main")
        r = alice.kernel.run("%txgit log main..orign/main")
        assert r.status == "error" and "unknown revision 'orign/main'" in r.error
        assert r.traceback and len(r.traceback) == 1
        assert alice.value("(lr, epochs)") == (0.05, 3)  # looking changed nothing
        assert alice.ws.log()[0].summary.endswith("lr = 0.05")
    finally:
        alice.shutdown()


def test_head_as_a_side_of_a_range_is_where_a_second_kernel_is(tmp_path):
    """The second kernel of a folder is on a branch of its own; HEAD, the folder's, is the first kernel's
    main. In its `%txgit log main..` and `%txgit diff main...`, the empty side is that kernel's branch,
    as its `%txgit log` alone is (read as the folder's HEAD, both came out empty)."""
    ws = Workspace.init(tmp_path / "ws")
    first = Kernel(ws.root)
    second = None
    try:
        first.ok("%load_ext txgit")
        first.ok("a = 1")
        second = Kernel(ws.root)
        second.ok("%load_ext txgit")
        second.ok(f"%txgit checkout kernel-{second.pid}")
        second.ok("b = 2")
        first.ok("a = 5")
        assert ws.head().summary == "cell [3]: a = 5"

        def text(magic: str) -> str:
            return "\n".join(o.get("text/plain", "") for o in second.ok(magic).outputs)

        mine = text("%txgit log main..")
        assert "b = 2" in mine and "a = 5" not in mine and "a = 1" not in mine, mine
        theirs = text("%txgit log ..main")
        assert "a = 5" in theirs and "b = 2" not in theirs, theirs
        changed = text("%txgit diff main...")
        assert "b" in changed and "~ a" not in changed and "1 added" in changed, changed
    finally:
        first.shutdown()
        if second is not None:
            second.shutdown()
