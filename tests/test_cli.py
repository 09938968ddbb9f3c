"""The core CLI, run as a user runs it (`python -m txgit …` in a subprocess) on histories
built with the Python API."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pygit2
import pytest

from conftest import ROOT, damage_blob, session_namespace
from txgit import Workspace

CODE_1 = """
import threading
import numpy as np
import pandas as pd
df = pd.DataFrame(np.arange(12000, dtype="float64").reshape(1000, 12))
tmp = [1, 2, 3]
lock = threading.Lock()
def f(x):
    return x + 1
"""


def build_history(root: Path) -> dict[str, str]:
    """main: c1 -> c2 (df widened, model added, tmp dropped); exp: c1 -> c3 (y added); tag v1 at c1."""
    ws = Workspace.init(root)
    ns = session_namespace(CODE_1)
    ids = {"c1": ws.commit(ns, "load data").info.id}
    ws.create_branch("exp")
    ns["df"]["a"] = 1.0
    ns["df"]["b"] = 2.0
    ns["model"] = {"weights": [0.5, 0.25]}
    del ns["tmp"]
    ids["c2"] = ws.commit(ns, "widen df\n\nadds two feature columns").info.id
    ws.checkout("exp", ns)
    ns["y"] = 5
    ids["c3"] = ws.commit(ns, "try y").info.id
    ws.checkout("main", ns)
    ws.create_tag("v1", ids["c1"], "first release")
    return ids


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """One history for commands that only read."""
    root = tmp_path_factory.mktemp("hist")
    return root, build_history(root)


@pytest.fixture
def fresh(tmp_path) -> tuple[Path, dict[str, str]]:
    """A history of its own, for commands that change refs."""
    return tmp_path, build_history(tmp_path)


def fingerprint(root: Path) -> tuple:
    """Everything a command could change: HEAD, every ref, the stored objects."""
    repo = pygit2.Repository(str(root / ".txgit" / "repo.git"))
    head = repo.references["HEAD"]
    refs = {name: str(repo.references[name].target) for name in repo.references}
    objects = sorted(str(p.relative_to(root)) for p in (root / ".txgit").rglob("*") if p.is_file() and "logs" not in p.parts)
    return str(head.target), refs, objects


def one_error_line(proc, code: int | None = None) -> str:
    assert proc.returncode != 0, proc.stdout
    if code is not None:
        assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("txgit: error: "), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    return lines[0]


# -- init / status -----------------------------------------------------------------------

def test_init_status_and_log_on_an_empty_workspace(tmp_path, run_txgit):
    out = run_txgit("init", "proj", cwd=tmp_path, check=True).stdout
    assert "Initialized empty txgit workspace in" in out and (tmp_path / "proj" / ".txgit").is_dir()
    proj = tmp_path / "proj"
    assert run_txgit("status", cwd=proj, check=True).stdout.splitlines() == ["On branch main", "No commits yet"]
    assert "no commits yet on branch main" in one_error_line(run_txgit("log", cwd=proj), 1)
    assert "no commits yet" in one_error_line(run_txgit("branch", "exp", cwd=proj), 1)
    assert run_txgit("init", cwd=proj, check=True).stdout.startswith("Reinitialized existing txgit workspace in")


def test_status_on_a_branch_and_detached(fresh, run_txgit):
    root, ids = fresh
    out = run_txgit("status", cwd=root, check=True).stdout.splitlines()
    assert out[0] == "On branch main"
    assert out[1] == f"HEAD: {ids['c2'][:8]} widen df"
    assert "7 variables (1 not saved)" in out[2]  # df f lock model np pd threading; lock not saved
    run_txgit("checkout", "v1", cwd=root, check=True)
    out = run_txgit("status", cwd=root, check=True).stdout.splitlines()
    assert out[0] == f"HEAD detached at {ids['c1'][:8]}"


def test_status_from_a_subfolder_finds_the_workspace(history, run_txgit):
    root, _ = history
    (root / "sub" / "deeper").mkdir(parents=True, exist_ok=True)
    assert run_txgit("status", cwd=root / "sub" / "deeper", check=True).stdout.startswith("On branch main")


# -- log ------------------------------------------------------------------------------------

def test_log_lists_commits_newest_first_with_refs_author_date(history, run_txgit):
    root, ids = history
    out = run_txgit("log", cwd=root, check=True).stdout
    commits = re.findall(r"^commit ([0-9a-f]{40})(.*)$", out, re.M)
    assert [c for c, _ in commits] == [ids["c2"], ids["c1"]]
    assert commits[0][1] == " (HEAD -> main)"
    assert commits[1][1] == " (tag: v1)"
    assert out.count("Author: ") == 2 and re.search(r"^Date:   \w{3} \w{3} \d\d \d\d:\d\d:\d\d \d{4} [+-]\d{4}$", out, re.M)
    assert "    widen df\n\n    adds two feature columns\n" in out


def test_log_oneline_rev_all_and_max_count(history, run_txgit):
    root, ids = history
    assert run_txgit("log", "--oneline", cwd=root, check=True).stdout.splitlines() == [
        f"{ids['c2'][:8]} (HEAD -> main) widen df",
        f"{ids['c1'][:8]} (tag: v1) load data",
    ]
    assert run_txgit("log", "exp", "--oneline", cwd=root, check=True).stdout.splitlines() == [
        f"{ids['c3'][:8]} (exp) try y",
        f"{ids['c1'][:8]} (tag: v1) load data",
    ]
    every = run_txgit("log", "--all", "--oneline", cwd=root, check=True).stdout.splitlines()
    assert sorted(line[:8] for line in every) == sorted(i[:8] for i in ids.values())
    assert every[-1].startswith(ids["c1"][:8])
    assert run_txgit("log", "-n", "1", "--oneline", cwd=root, check=True).stdout.splitlines() == [
        f"{ids['c2'][:8]} (HEAD -> main) widen df"]


def test_log_graph_draws_the_fork_with_change_summaries(history, run_txgit):
    root, ids = history
    lines = run_txgit("log", "--graph", "--oneline", "--all", cwd=root, check=True).stdout.splitlines()
    assert len(lines) == 4
    tips = {ids["c2"][:8]: "+model  ~df (1000x12 -> 1000x14)  -tmp", ids["c3"][:8]: "+y"}
    first, second = lines[0], lines[1]
    assert first.startswith("* ") and second.startswith("| * ")
    for line in (first, second):
        short = line.split()[1] if line.startswith("* ") else line.split()[2]
        assert line.endswith(tips[short]), line
    assert lines[2] == "|/"
    assert lines[3] == f"* {ids['c1'][:8]} (tag: v1) load data  +df  +f  +lock  +np  +pd  +threading  +tmp"


def test_log_graph_full_format_keeps_lanes_beside_every_line(history, run_txgit):
    root, ids = history
    lines = run_txgit("log", "--graph", "--all", cwd=root, check=True).stdout.splitlines()
    fork = lines.index("|/")
    assert all(line.startswith("| ") or line == "|" for line in lines[1:fork] if not line.startswith("* "))
    assert lines[fork + 1].startswith(f"* commit {ids['c1']}")
    assert any("~df (1000x12 -> 1000x14)" in line for line in lines[:fork])


def test_log_graph_of_a_merge(fresh, run_txgit):
    root, ids = fresh
    repo = pygit2.Repository(str(root / ".txgit" / "repo.git"))
    sig = pygit2.Signature("t", "t@example.com")
    merge = repo.create_commit("refs/heads/main", sig, sig, "merge exp", repo[ids["c2"]].tree_id,
                               [pygit2.Oid(hex=ids["c2"]), pygit2.Oid(hex=ids["c3"])])
    lines = run_txgit("log", "--graph", "--oneline", cwd=root, check=True).stdout.splitlines()
    assert lines[0].startswith(f"* {str(merge)[:8]} (HEAD -> main) merge exp")
    assert lines[1] == "|\\"
    assert lines[-2] == "|/" and lines[-1].startswith(f"* {ids['c1'][:8]}")
    full = run_txgit("log", "-n", "1", cwd=root, check=True).stdout
    assert f"Merge: {ids['c2'][:8]} {ids['c3'][:8]}" in full


# -- show ----------------------------------------------------------------------------------

def test_show_lists_variables_skipped_ones_and_meta(history, run_txgit):
    root, ids = history
    out = run_txgit("show", cwd=root, check=True).stdout
    assert out.startswith(f"commit {ids['c2']} (HEAD -> main)")
    rows = {line.split()[0]: line for line in out.splitlines() if line[:1].isalpha()}
    assert re.search(r"DataFrame 1000x14\s+pandas\.DataFrame\s+11\d(\.\d)? kB$", rows["df"]), rows["df"]
    assert re.search(r"dict of 1\s+dict\s+\d+ B$", rows["model"])
    assert re.search(r"module numpy\s+module\s+-$", rows["np"])
    assert "function f(x)" in rows["f"]
    assert "tmp" not in rows
    assert "not saved (1):\n  lock: _thread.lock: TypeError: cannot pickle '_thread.lock' object" in out
    assert re.search(r"^meta: python 3\.\d+\.\d+, txgit ", out, re.M)
    assert re.search(r"^packages: numpy [\d.]+, pandas [\d.]+$", out, re.M)


def test_show_var_prints_the_loaded_value(history, run_txgit):
    root, ids = history
    out = run_txgit("show", "main", "df", cwd=root, check=True).stdout
    assert out.splitlines()[0] == f"df: DataFrame 1000x14  (pandas.DataFrame, {ids['c2'][:8]})"
    assert "[1000 rows x 14 columns]" in out and "11999.0" in out
    assert run_txgit("show", "v1", "tmp", cwd=root, check=True).stdout.splitlines()[1] == "[1, 2, 3]"


def test_show_var_cuts_a_huge_value_to_a_screenful(ws, run_txgit):
    ns = session_namespace(
        "huge = list(range(100_000))\n"
        "long = list(range(3000))\n"
        "class Tall:\n"
        "    def __repr__(self):\n"
        "        return '\\n'.join(f'line {i}' for i in range(500))\n"
        "tall = Tall()\n"
    )
    ws.commit(ns, "big values")
    out = run_txgit("show", "HEAD", "huge", cwd=ws.root, check=True).stdout.splitlines()
    assert out[1].startswith("[0, 1, 2,") and out[1].endswith("98, 99, ...]")  # nested parts shortened
    out = run_txgit("show", "HEAD", "long", cwd=ws.root, check=True).stdout
    assert 4000 < len(out) < 4200 and re.search(r"… \([\d,]+ more characters\)$", out.strip())
    out = run_txgit("show", "HEAD", "tall", cwd=ws.root, check=True).stdout.splitlines()
    assert out[0] == "tall: Tall  (Tall, %s)" % ws.head().short_id
    assert out[1:41] == [f"line {i}" for i in range(40)] and out[41] == "… (460 more lines)" and len(out) == 42


# -- diff -------------------------------------------------------------------------------------

def test_diff_lists_added_removed_changed_with_summaries(history, run_txgit):
    root, ids = history
    proc = run_txgit("diff", "main~1", "main", cwd=root, check=True)
    lines = proc.stdout.splitlines()
    assert lines[0] == f"diff {ids['c1'][:8]} (main~1) -> {ids['c2'][:8]} (main)"
    assert re.fullmatch(r"\+ model\s+dict of 1  \(dict\)", lines[1])
    assert re.fullmatch(r"- tmp\s+list of 3  \(list\)", lines[2])
    assert re.fullmatch(r"~ df\s+DataFrame 1000x12 -> DataFrame 1000x14  \(.+ -> .+\)", lines[3])
    assert lines[4] == "1 added, 1 removed, 1 changed"
    # B defaults to HEAD; A..B names both.
    assert run_txgit("diff", "v1", cwd=root, check=True).stdout.splitlines()[1:] == lines[1:]
    assert run_txgit("diff", "v1..main", cwd=root, check=True).stdout.splitlines()[1:] == lines[1:]
    between = run_txgit("diff", "main..exp", cwd=root, check=True).stdout
    assert "+ tmp" in between and "+ y" in between and "- model" in between


def test_diff_exit_codes(history, run_txgit):
    root, _ = history
    same = run_txgit("diff", "main", "HEAD", cwd=root)
    assert same.returncode == 0 and same.stdout.splitlines()[1] == "no differences"
    assert run_txgit("diff", "main", "exp", cwd=root).returncode == 0
    assert run_txgit("diff", "main", "exp", "--exit-code", cwd=root).returncode == 1
    assert run_txgit("diff", "main", "HEAD", "--exit-code", cwd=root).returncode == 0


# -- branch / tag ---------------------------------------------------------------------------

def test_branch_list_create_delete(fresh, run_txgit):
    root, ids = fresh
    assert run_txgit("branch", cwd=root, check=True).stdout.splitlines() == [
        f"  exp   {ids['c3'][:8]} try y",
        f"* main  {ids['c2'][:8]} widen df",
    ]
    assert run_txgit("branch", "feat", cwd=root, check=True).stdout.strip() == f"Created branch feat at {ids['c2'][:8]} widen df"
    run_txgit("branch", "old", "v1", cwd=root, check=True)
    ws = Workspace.open(root)
    assert ws.branches() == {"main": ids["c2"], "exp": ids["c3"], "feat": ids["c2"], "old": ids["c1"]}
    assert run_txgit("branch", "-d", "old", cwd=root, check=True).stdout.strip() == f"Deleted branch old (was {ids['c1'][:8]})"
    assert "old" not in ws.branches()
    run_txgit("branch", "-f", "feat", "v1", cwd=root, check=True)
    assert ws.branches()["feat"] == ids["c1"]


def test_branch_m_renames_a_branch_with_its_upstream_and_held_commits(fresh, run_txgit):
    """There was no `txgit branch -m OLD NEW` (git users type it): "No such option: -m". A rename keeps
    the commits, moves HEAD when it was on OLD (`-m NEW` alone renames HEAD's branch), the upstream
    OLD tracked, and the ref that holds a closed kernel's commits waiting for their merge with OLD;
    NEW existing is refused unless -M."""
    root, ids = fresh
    ws = Workspace.open(root)
    ws.remotes.set_upstream("exp", "origin", "exp")
    ns: dict = {}  # a closed kernel's commit on no branch, held for its merge with exp
    ws.checkout("exp", ns, new_branch="cell")
    ns["w"] = 1
    held = ws.commit(ns, "a kernel's cell").info.id
    ws.checkout("main", ns)
    ws.delete_branch("cell")
    ws.history.hold_unmerged("exp", held)
    out = run_txgit("branch", "-m", "exp", "trial", cwd=root, check=True).stdout
    assert out.startswith("Renamed branch exp to trial"), out
    assert "trial still tracks origin/exp" in out and "refs/txgit/held/1/trial" in out, out
    assert ws.branches() == {"main": ids["c2"], "trial": ids["c3"]}
    assert ws.remotes.upstream("trial") == ("origin", "exp") and ws.remotes.upstream("exp") is None
    assert ws.history.unmerged() == {"refs/txgit/held/1/trial": held}
    assert "`txgit merge refs/txgit/held/1/trial`" in run_txgit("status", cwd=root, check=True).stdout
    run_txgit("branch", "-m", "work", cwd=root, check=True)  # one name: HEAD's branch
    assert ws.branch == "work" and ws.branches()["work"] == ids["c2"]
    refused = run_txgit("branch", "-m", "trial", "work", cwd=root)
    assert refused.returncode == 1 and refused.stderr.startswith("txgit: error:") and \
        "a branch named 'work' already exists" in refused.stderr and "-M" in refused.stderr, refused.stderr
    run_txgit("branch", "spare", "v1", cwd=root, check=True)
    out = run_txgit("branch", "-M", "trial", "spare", cwd=root, check=True).stdout
    assert f"(replacing spare, which was at {ids['c1'][:8]}: `txgit branch NAME {ids['c1'][:8]}` keeps that)" in out
    assert ws.branches() == {"work": ids["c2"], "spare": ids["c3"]}


def _off_branch_commit(ws: Workspace, branch: str, name: str) -> str:
    """A commit on top of ``branch`` that no branch holds (a kernel's cell whose merge with its moved branch failed)."""
    ns: dict = {}
    ws.checkout(branch, ns, new_branch="cell")
    ns[name] = 1
    commit = ws.commit(ns, f"a kernel's cell on {branch}").info.id
    ws.checkout("main", ns)
    ws.delete_branch("cell")
    return commit


def test_held_refs_of_branches_a_and_a_2_stay_apart(tmp_path, run_txgit):
    """Held commits were kept under refs/txgit/unmerged/BRANCH, then BRANCH-2, BRANCH-3: branch a's second
    hold and branch a-2's first were the same name. Once a-2 existed, `branch -m a-2 c` took a's second hold
    along and `branch -m a b` left it behind; a merge of a hold named no branch. Each hold names its branch
    unambiguously now (refs/txgit/held/N/BRANCH); holds written the old way are still read."""
    ws = Workspace.init(tmp_path)
    ws.commit({"x": 0}, "start")
    ws.create_branch("a")
    first_a = _off_branch_commit(ws, "a", "p")
    second_a = _off_branch_commit(ws, "a", "q")  # another kernel's: contains not the first
    held_a = [ws.history.hold_unmerged("a", first_a), ws.history.hold_unmerged("a", second_a)]
    ws.create_branch("a-2")
    own = _off_branch_commit(ws, "a-2", "r")
    held_a2 = ws.history.hold_unmerged("a-2", own)
    assert len({*held_a, held_a2}) == 3
    assert ws.history.unmerged() == {held_a[0]: first_a, held_a[1]: second_a, held_a2: own}
    moved = ws.rename_branch("a-2", "c")
    assert list(moved) == [held_a2], moved
    moved_a = ws.rename_branch("a", "b")
    assert sorted(moved_a) == sorted(held_a), moved_a
    assert sorted(ws.history.unmerged().values()) == sorted([first_a, second_a, own])
    ns: dict = {}
    ws.checkout("b", ns)
    ns["s"] = 1  # b moves on: the merges below are merges, whose commits carry the label
    ws.commit(ns, "on b")
    out = run_txgit("merge", moved_a[held_a[0]], cwd=tmp_path, check=True).stdout
    assert "Merged the commits of a closed kernel into b" in out, out
    out = run_txgit("merge", moved[held_a2], cwd=tmp_path, check=True).stdout
    assert "Merged the commits of a closed kernel held for c into b" in out, out
    assert ws.history.unmerged() == {moved_a[held_a[1]]: second_a}


def test_held_refs_written_the_old_way_are_still_read(tmp_path, run_txgit):
    """A repository made by a version that held commits under refs/txgit/unmerged/BRANCH[-N] keeps working:
    status names them, a rename moves them (to the new layout), a merge names their branch and drops them."""
    ws = Workspace.init(tmp_path)
    ws.commit({"x": 0}, "start")
    for branch in ("a", "a-2"):
        ws.create_branch(branch)
    old = {"refs/txgit/unmerged/a": _off_branch_commit(ws, "a", "p"),
           "refs/txgit/unmerged/a-3": _off_branch_commit(ws, "a", "q"),  # a's third: a-2 was a branch's
           "refs/txgit/unmerged/a-2": _off_branch_commit(ws, "a-2", "r")}
    for ref, commit in old.items():
        ws.history.repo.references.create(ref, pygit2.Oid(hex=commit))
    ws.commit({"x": 1}, "main moves on")
    assert ws.history.unmerged() == old
    status = run_txgit("status", cwd=tmp_path, check=True).stdout
    assert all(f"`txgit merge {ref}`" in status for ref in old), status
    moved = ws.rename_branch("a", "b")
    assert sorted(moved) == ["refs/txgit/unmerged/a", "refs/txgit/unmerged/a-3"], moved
    assert all(not ref.startswith("refs/txgit/unmerged/") for ref in moved.values()), moved
    out = run_txgit("merge", "refs/txgit/unmerged/a-2", cwd=tmp_path, check=True).stdout
    assert "Merged the commits of a closed kernel held for a-2 into main" in out, out
    assert "refs/txgit/unmerged/a-2" not in ws.history.repo.references
    assert sorted(ws.history.unmerged()) == sorted(moved.values())


@pytest.mark.parametrize("args, message", [
    (("branch", "exp"), "a branch named 'exp' already exists"),
    (("branch", "bad..name"), "invalid branch name 'bad..name'"),
    (("branch", "has space"), "invalid branch name 'has space'"),
    (("branch", "new", "nope"), "unknown revision 'nope'"),
    (("branch", "-d", "main"), "cannot delete branch 'main': HEAD is on it"),
    (("branch", "-d", "nope"), "no branch named 'nope'"),
    (("branch", "-m", "nope", "other"), "no branch named 'nope'"),
    (("branch", "-m", "exp", "main"), "a branch named 'main' already exists"),
    (("branch", "-m", "exp", "a..b"), "invalid branch name 'a..b'"),
    (("branch", "-M", "exp", "main"), "cannot replace branch 'main': HEAD is on it"),
    (("tag", "v1"), "a tag named 'v1' already exists"),
    (("tag", "v:2"), "invalid tag name 'v:2'"),
    (("tag", "-d", "nope"), "no tag named 'nope'"),
    (("checkout", "nope"), "unknown revision 'nope'"),
    (("checkout", "-b", "exp", "main"), "a branch named 'exp' already exists"),
    (("checkout", "-b", "a..b", "main"), "invalid branch name 'a..b'"),
    (("log", "nope"), "unknown revision 'nope'"),
    (("log", "HEAD~9"), "unknown revision 'HEAD~9'"),
    (("show", "nope"), "unknown revision 'nope'"),
    (("show", "HEAD", "nope"), "no variable 'nope' in HEAD"),
    (("show", "HEAD", "lock"), "'lock' in HEAD could not be saved"),
    (("diff", "main", "nope"), "unknown revision 'nope'"),
    (("diff", "nope..main"), "unknown revision 'nope'"),
    (("diff",), "no kernel attached"),  # no revision: a live kernel's changes, and there is none
    # git's refspecs: "no branch named 'main:x'" said nothing of why, nor what to type instead
    (("push", "origin", "main:x"), "refspecs such as 'main:x' are not supported: `txgit branch x main`, "
                                   "then `txgit push origin x`, publishes main as x"),
    (("push", "origin", ":x"), "`txgit push origin --delete x` deletes x there"),
    (("pull", "origin", "main:x"), "refspecs such as 'main:x' are not supported: `txgit pull origin main`"),
    # both were taken, the last one winning
    (("clone", "elsewhere", "--untrusted", "--trusted"), "give --trusted or --untrusted, not both"),
])
def test_user_mistakes_are_one_line_and_change_nothing(history, run_txgit, args, message):
    root, _ = history
    before = fingerprint(root)
    line = one_error_line(run_txgit(*args, cwd=root), 1)
    assert message in line
    assert fingerprint(root) == before


@pytest.mark.parametrize("args, message", [
    (("frobnicate",), "No such command 'frobnicate'"),
    (("log", "--bogus"), "No such option: --bogus"),
    (("log", "-n", "x"), "'-n' / '--max-count'"),
    (("log", "-n", "-3"), "'-n' / '--max-count'"),
    (("log", "--all", "main"), "give either REV or --all"),
    (("checkout",), "Missing argument 'REV'"),
    (("diff", "main", "--kernel", "1"), "--kernel goes with no revision"),
    (("branch", "-d"), "branch -d takes exactly one branch name"),
    (("tag", "-d", "a", "b"), "tag -d takes exactly one tag name"),
    (("show", "a", "b", "c"), "Got unexpected extra argument"),
    # options of `run` go before the script, so an unknown one was read as the script's name
    (("run", "--bogus", "train.py"), "No such option: --bogus"),
])
def test_garbage_arguments_are_usage_errors(history, run_txgit, args, message):
    root, _ = history
    before = fingerprint(root)
    assert message in one_error_line(run_txgit(*args, cwd=root), 2)
    assert fingerprint(root) == before


@pytest.mark.parametrize("args", [
    ("status",), ("log",), ("show",), ("diff", "HEAD"), ("branch",), ("branch", "x"),
    ("tag",), ("tag", "x"), ("checkout", "main"),
])
def test_outside_a_workspace(tmp_path, run_txgit, args):
    line = one_error_line(run_txgit(*args, cwd=tmp_path), 1)
    assert line == f"txgit: error: not a txgit workspace (or any parent folder): {tmp_path.resolve()}"
    assert not (tmp_path / ".txgit").exists()


def test_tag_list_create_annotated_delete(fresh, run_txgit):
    root, ids = fresh
    assert run_txgit("tag", cwd=root, check=True).stdout.splitlines() == [f"v1  {ids['c1'][:8]} load data"]
    assert run_txgit("tag", "v2", cwd=root, check=True).stdout.strip() == f"Tagged {ids['c2'][:8]} widen df as v2"
    run_txgit("tag", "tried", "exp", "-m", "the y experiment", cwd=root, check=True)
    repo = pygit2.Repository(str(root / ".txgit" / "repo.git"))
    annotated = repo[repo.references["refs/tags/tried"].target]
    assert isinstance(annotated, pygit2.Tag) and annotated.message.strip() == "the y experiment"
    assert run_txgit("tag", cwd=root, check=True).stdout.splitlines() == [
        f"tried  {ids['c3'][:8]} try y", f"v1     {ids['c1'][:8]} load data", f"v2     {ids['c2'][:8]} widen df"]
    run_txgit("tag", "-d", "v2", cwd=root, check=True)
    assert sorted(Workspace.open(root).tags()) == ["tried", "v1"]


# -- checkout ---------------------------------------------------------------------------------

def test_checkout_branch_attaches_other_revisions_detach(fresh, run_txgit):
    root, ids = fresh
    ws = Workspace.open(root)
    out = run_txgit("checkout", "exp", cwd=root, check=True).stdout
    assert out.strip() == f"Switched to branch 'exp' at {ids['c3'][:8]} try y"
    assert ws.branch == "exp" and ws.head().id == ids["c3"]
    out = run_txgit("checkout", "main~1", cwd=root, check=True).stdout.splitlines()
    assert out[0] == f"HEAD is now at {ids['c1'][:8]} load data" and "detached" in out[1]
    assert ws.branch is None and ws.head().id == ids["c1"]
    assert run_txgit("branch", cwd=root, check=True).stdout.splitlines()[0] == f"* (HEAD detached at {ids['c1'][:8]})"
    assert "(HEAD, " in run_txgit("log", "--oneline", "-n", "1", cwd=root, check=True).stdout
    run_txgit("checkout", "v1", cwd=root, check=True)
    assert ws.branch is None
    out = run_txgit("checkout", "-b", "fix", "main", cwd=root, check=True).stdout
    assert out.strip() == f"Switched to a new branch 'fix' at {ids['c2'][:8]} widen df"
    assert ws.branch == "fix" and ws.branches()["fix"] == ids["c2"]
    assert run_txgit("checkout", "HEAD", cwd=root, check=True).stdout.startswith("Already on 'fix'")
    assert ws.branch == "fix"


# -- corrupted bytes ------------------------------------------------------------------------

def test_corrupted_blob_is_one_error_line_and_other_data_still_reads(fresh, run_txgit):
    root, _ = fresh
    ws = Workspace.open(root)
    state = ws.state("HEAD")
    chunk = state.groups[state.variables["df"].group].chunk_names()[-1]
    damage_blob(ws.store, chunk, None)  # one byte flipped, loose or packed
    before = fingerprint(root)
    line = one_error_line(run_txgit("show", "HEAD", "df", cwd=root), 1)
    assert chunk[:12] in line and "corrupt" in line.lower()
    assert fingerprint(root) == before
    # Records need no blob: show, log and diff still work; other variables still load.
    assert run_txgit("show", cwd=root, check=True).stdout.count("DataFrame 1000x14") == 1
    assert run_txgit("log", "--graph", "--oneline", cwd=root, check=True).returncode == 0
    assert run_txgit("show", "HEAD", "model", cwd=root, check=True).stdout.splitlines()[1] == "{'weights': [0.5, 0.25]}"


# -- the reference ---------------------------------------------------------------------------

def test_docs_cli_md_is_generated_from_the_app():
    spec = importlib.util.spec_from_file_location("gen_cli", ROOT / "docs" / "gen_cli.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    text = gen.render()
    for command in ("init", "status", "log", "show", "diff", "branch", "tag", "checkout"):
        assert f"## txgit {command}\n" in text
    assert "`-n, --max-count N`" in text and "`--graph`" in text
    assert (ROOT / "docs" / "cli.md").read_text() == text, "docs/cli.md is out of date: run python docs/gen_cli.py"
