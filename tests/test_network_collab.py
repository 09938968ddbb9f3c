"""Two and three people over a network remote, played as users: history in a bare repository served by
`git daemon` on 127.0.0.1, blobs in moto's S3 server on 127.0.0.1, real kernels beside real terminals."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from cliutil import assert_one_line_error
from kernelutil import User, digest
from servers import S3_ENV, SwitchableProxy, git_daemon, init_bare, make_bucket, switchable_proxy

from txgit import Workspace

pytestmark = pytest.mark.timeout(600)


@pytest.mark.parametrize("shared", ["s3"], indirect=True)
def test_a_value_of_a_module_only_alice_has_loads_at_bobs_next_pull_once_he_has_it(shared, tmp_path,
                                                                                   run_txgit):
    """Alice's model is an object of her own module (mymodel.py in her folder, not committed). Bob's
    checkout and pull named it as not loaded, and why, but once Bob copied the module in, his next
    `%txgit pull` said "Already up to date." and left it out: only a checkout of his own branch (which
    nothing told him to type) loaded it. Now the line says what loads it, and the pull does."""
    url, add_args, clone_args, env = shared
    alice = User("alice", Workspace.init(tmp_path / "alice"), run_txgit, env)
    bob = None
    try:
        (alice.ws.root / "mymodel.py").write_text("class Model:\n    def __init__(self, w):\n        self.w = w\n")
        alice.cell("from mymodel import Model\nmodel = Model(3)\nx = 1")
        alice.tx("remote", "add", "origin", url, *add_args, "--trusted")
        alice.tx("push")
        alice.tx("clone", url, str(tmp_path / "bob"), *clone_args, "--trusted")
        bob = User("bob", Workspace(tmp_path / "bob"), run_txgit, env)
        bob.cell("mine = 'bob'")
        out = bob.cell("%txgit checkout main").stdout
        fix = "(once it imports here, `%txgit pull` or `%txgit checkout main` loads it)"
        assert ("  not restored: model: mymodel.Model could not be loaded here (module 'mymodel' is not installed "
                f"here) {fix}\n") in out, out
        assert "loaded: x" in out and bob.value("(x, mine, 'model' in globals())") == (1, "bob", False)
        assert "not restored: model: mymodel.Model could not be loaded here" in bob.cell("%txgit status").stdout
        terminal = bob.tx("status").stdout  # the terminal beside his kernel says it in its own words
        assert "not restored: model: " in terminal and fix.replace("%txgit", "txgit") in terminal, terminal

        alice.cell("x = 2\nmodel.w = 4")
        alice.tx("push")
        bob.cell("mine = 'bob2'")
        out = bob.cell("%txgit pull").stdout
        assert "Merged origin/main into main" in out and "; loaded x" in out, out
        assert ("not loaded: model: mymodel.Model could not be loaded here (module 'mymodel' is not installed here); "
                "the next commits keep it as origin/main has it; once it imports here, `%txgit pull` or "
                "`%txgit checkout main` loads it") in out, out
        assert bob.value("(x, mine, 'model' in globals())") == (2, "bob2", False)

        shutil.copy(alice.ws.root / "mymodel.py", bob.ws.root / "mymodel.py")  # Bob gets the module
        out = bob.cell("%txgit pull").stdout
        assert out.strip() == "Already up to date; loaded Model, model.", out
        assert bob.value("(model.w, x, mine)") == (4, 2, "bob2")
        assert "not restored" not in bob.cell("%txgit status").stdout
        bob.cell("model.w += 1")
        bob.tx("push")
        alice.tx("pull")
        assert alice.value("(model.w, mine, x)") == (5, "bob2", 2)  # nothing of either was lost on the way
    finally:
        alice.shutdown()
        if bob is not None:
            bob.shutdown()



@contextmanager
def _behind_a_proxy(endpoint: str, tmp_path: Path, run_txgit, env: dict) -> Iterator[tuple[SwitchableProxy, Workspace,
                                                                                            list[str]]]:
    """A git daemon remote whose blobs are in moto's S3 server, reached through a proxy that can go down
    (``SwitchableProxy``); Alice's workspace (Python) has it as origin, trusted. Yields the proxy, her
    workspace and the arguments that clone it."""
    base = tmp_path / "served"
    base.mkdir()
    init_bare(base / "team.git")
    bucket = f"team-{tmp_path.name.lower().replace('_', '-')[-40:]}"
    make_bucket(endpoint, bucket)
    with git_daemon(base) as daemon, switchable_proxy(int(endpoint.rsplit(":", 1)[1])) as proxy:
        opt = ["--storage-option", f"endpoint_url=http://127.0.0.1:{proxy.port}"]
        alice = Workspace.init(tmp_path / "alice")
        run_txgit("remote", "add", "origin", f"{daemon}/team.git", "--storage", f"s3://{bucket}/p", *opt,
                  "--trusted", cwd=alice.root, env=env, check=True)
        yield proxy, alice, [f"{daemon}/team.git", *opt, "--trusted"]


def _refs(ws: Workspace) -> list[str]:
    """The workspace's own refs (branches, txgit's), not those a fetch moves (the remote's branches and
    its txgit config, under refs/remotes and refs/txgit/remotes), nor a branch's ORIG_HEAD: a pull notes
    where the branch is before it merges, as git writes ORIG_HEAD, so one that fails leaves it naming
    the branch's own tip (a reset to it moves nothing)."""
    out = subprocess.run(["git", "--git-dir", str(ws.dir / "repo.git"), "for-each-ref", "refs/heads", "refs/txgit"],
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if "refs/txgit/remotes/" not in line and "/orig-head/" not in line]


@pytest.mark.parametrize("where, failure", [("kernel", "refused"), ("terminal", "silent")])
def test_a_pull_whose_storage_goes_down_midway_changes_nothing_and_completes_when_run_again(
        s3, tmp_path, run_txgit, monkeypatch, where, failure):
    """The S3 server stops answering after 40 MB of the 96 MB Bob's pull reads (a reset, or a network that
    goes silent). Bob's kernel values, branch and txgit's refs are as before the pull, he is told in one
    line that nothing was merged and to pull again, and the pull run again once the server is back
    brings everything (a merge with his own commit in the kernel, a fast-forward from the terminal)."""
    for k, v in S3_ENV.items():  # Alice's pushes, in this process
        monkeypatch.setenv(k, v)
    env = {**S3_ENV, "TXGIT_REMOTE_TIMEOUT": "3"}
    with _behind_a_proxy(s3, tmp_path, run_txgit, env) as (proxy, alice, clone):
        state = {"x": 1, **{f"w{i}": np.zeros(3) for i in range(8)}}
        alice.commit(state, "base")
        alice.push()
        run_txgit("clone", *clone, "bob", cwd=tmp_path, env=env, check=True)
        bob = User("bob", Workspace(tmp_path / "bob"), run_txgit, env)
        try:
            bob.cell("%txgit checkout main")
            if where == "kernel":
                bob.cell("mine = 'bob'")  # his own commit: the pull is a merge
            rng = np.random.default_rng(0)
            state.update(x=2, **{f"w{i}": rng.random(1_500_000) for i in range(8)})  # 8 x 12 MB
            alice.commit(state, "x is 2, the weights trained")
            alice.push()
            before = (_refs(bob.ws), digest(bob.kernel))
            proxy.cut_after(40_000_000, failure)
            if where == "kernel":
                r = bob.kernel.run("%txgit pull")
                assert r.status == "error" and "Traceback" not in "".join(r.traceback), r.traceback
                said = r.error
            else:
                refused = bob.tx("pull", code=None)
                assert_one_line_error(refused)
                said = refused.stderr
            assert "remote storage s3://" in said and said.count("nothing was") == 1 and (
                "nothing was merged: origin/main is fetched, pull again once the storage answers") in said, said
            assert _refs(bob.ws) == before[0] and digest(bob.kernel) == before[1]
            status = bob.tx("status").stdout
            assert ("diverged" if where == "kernel" else "behind 'origin/main' by 1 commit") in status, status
            assert "nothing to commit" in status, status
            proxy.set("pass")
            out = bob.cell("%txgit pull").stdout if where == "kernel" else bob.tx("pull").stdout
            assert ("Merged origin/main into main" if where == "kernel" else "Fast-forward main") in out, out
            assert "loaded w0, w1, w2, w3, w4, w5, w6, w7, x" in out, out
            assert bob.value("(x, float(w7[-1]), len(w7))") == (2, float(state["w7"][-1]), 1_500_000)
            if where == "kernel":
                assert bob.value("mine") == "bob"
        finally:
            bob.shutdown()


def _users(url: str, add_args: list[str], clone_args: list[str], env: dict, tmp_path: Path, run_txgit,
           first: str, *others: str) -> list[User]:
    """Alice runs ``first`` in her kernel and publishes it to the shared remote (trusted); each of
    ``others`` clones it and checks main out in a kernel of their own."""
    alice = User("alice", Workspace.init(tmp_path / "alice"), run_txgit, env)
    users = [alice]
    try:
        alice.cell(first)
        alice.tx("remote", "add", "origin", url, *add_args, "--trusted")
        alice.tx("push")
        for name in others:
            alice.tx("clone", url, str(tmp_path / name), *clone_args, "--trusted")
            users.append(User(name, Workspace(tmp_path / name), run_txgit, env))
            users[-1].cell("%txgit checkout main")
    except BaseException:
        for u in users:
            u.shutdown()
        raise
    return users


def _names(user: User) -> list[str]:
    return user.value("sorted(k for k in get_ipython().user_ns if not k.startswith('_') and k not in "
                      "('In', 'Out', 'exit', 'quit', 'get_ipython', 'open'))")


@pytest.mark.parametrize("shared", ["s3"], indirect=True)
def test_a_pull_after_alice_force_pushed_keeps_bobs_commits_and_says_what_she_dropped(shared, tmp_path,
                                                                                      run_txgit):
    """Alice rewrites main after Bob pulled it (reset, a new commit, push --force); Bob, with a commit of
    his own since, pulls in his kernel. Nothing of his is dropped: the pull merges, his kernel keeps his
    value and the one Alice dropped, a note names the dropped commit and what a push or a reset does
    with it; his next push publishes it again, and Alice's pull brings it back."""
    alice, bob = _users(*shared, tmp_path, run_txgit, "x = 1", "bob")
    try:
        alice.cell("y = 2")
        alice.tx("push")
        assert "loaded y" in bob.cell("%txgit pull").stdout
        alice.cell("%txgit reset HEAD~1")
        alice.cell("z = 3")
        assert alice.tx("push", code=1).stderr.startswith("txgit: error: rejected main")
        assert "(forced update: 1 commit no longer on origin/main)" in alice.tx("push", "--force").stdout
        bob.cell("mine = 'bob'")
        out = bob.cell("%txgit pull").stdout
        assert "(forced update)" in out and "Merged origin/main into main" in out and "loaded z" in out, out
        assert ("Note: origin/main was rewritten (forced update): 1 commit it dropped is still on main "
                "(") in out and "cell [3]: y = 2), and your next push publishes it again" in out, out
        assert _names(bob) == ["mine", "x", "y", "z"]
        graph = bob.tx("log", "--graph", "--oneline").stdout
        assert "cell [3]: y = 2" in graph and "mine = 'bob'" in graph and "z = 3" in graph, graph
        bob.tx("push")
        assert "loaded mine, y" in alice.tx("pull").stdout
        assert alice.value("(x, y, z, mine)") == (1, 2, 3, "bob")
    finally:
        alice.shutdown()
        bob.shutdown()


@pytest.mark.parametrize("shared", ["s3"], indirect=True)
def test_the_branch_bob_tracks_deleted_on_the_remote_status_pull_and_push(shared, tmp_path, run_txgit):
    """Alice deletes exp on origin (`txgit push origin --delete exp`) while Bob's kernel is on it. His
    status says the upstream is gone once he fetched; his pull (kernel or terminal) refuses in one line
    saying what to type; his values and commits stay; `%txgit push` publishes exp again."""
    alice, bob = _users(*shared, tmp_path, run_txgit, "x = 1", "bob")
    try:
        alice.cell("%txgit checkout -b exp")
        alice.cell("e = 'experiment'")
        alice.tx("push", "-u", "origin", "exp")
        r = bob.kernel.run("%txgit checkout exp")  # Alice said she pushed exp; Bob has not fetched since
        assert r.error == ("MagicError: unknown revision 'exp' (no branch, tag or commit here has that name; if it "
                           "was pushed to origin since your last fetch, `%txgit fetch` brings it)"), r.error
        bob.cell("%txgit fetch")
        assert "set up to track 'origin/exp'" in bob.cell("%txgit checkout exp").stdout
        bob.cell("b = 'bob on exp'")
        bob.cell("%txgit push")
        alice.cell("%txgit checkout main")
        assert "- [deleted]        exp (was " in alice.tx("push", "origin", "--delete", "exp").stdout
        assert "[deleted]          origin/exp" in bob.cell("%txgit fetch").stdout
        gone = "Your branch is based on 'origin/exp', but the upstream is gone"
        assert gone in bob.cell("%txgit status").stdout and gone in bob.tx("status").stdout
        bob.cell("b2 = 2")
        head = bob.ws.resolve("exp").id
        r = bob.kernel.run("%txgit pull")
        assert r.error == ("MagicError: remote 'origin' has no branch 'exp' any more (deleted there since exp began "
                           "tracking it): `%txgit push origin exp` publishes yours again, `%txgit pull origin BRANCH` "
                           "merges another"), r.error
        refused = bob.tx("pull", code=None)
        assert_one_line_error(refused, "remote 'origin' has no branch 'exp' any more", "`txgit push origin exp`")
        assert bob.ws.resolve("exp").id == head and bob.value("(x, e, b, b2)") == (1, "experiment", "bob on exp", 2)
        assert "new                exp -> origin/exp" in bob.cell("%txgit push").stdout
        assert "[new branch]       origin/exp" in alice.tx("fetch").stdout
    finally:
        alice.shutdown()
        bob.shutdown()


@pytest.mark.parametrize("shared", ["s3"], indirect=True)
def test_three_people_push_in_turn_with_a_conflict_resolved_in_carols_kernel(shared, tmp_path, run_txgit):
    """Alice, Bob and Carol push to main in turn, each pulling first; Bob and Carol both changed x, and
    Carol resolves it by setting it in her kernel (that cell's commit is the merge). Then everyone pulls:
    all three kernels hold the same values, and the graph shows each commit once."""
    users = _users(*shared, tmp_path, run_txgit, "import numpy as np\nx = 'base'\ndata = np.arange(5)",
                   "bob", "carol")
    alice, bob, carol = users
    try:
        alice.cell("a = 'alice'")
        alice.tx("push")
        assert "loaded a" in bob.cell("%txgit pull").stdout
        bob.cell("b = 'bob'\nx = 'bob'")
        bob.cell("%txgit push")
        carol.cell("c = 'carol'\nx = 'carol'\ndata = data + 1")
        r = carol.kernel.run("%txgit pull")
        assert r.status == "error" and "stopped on conflicts" in r.error, r.error
        assert "CONFLICT (changed on both sides): x" in r.stdout and "loaded a, b" in r.stdout, r.stdout
        assert carol.value("x") == "carol"  # hers until resolved
        carol.cell("x = x + '+bob'")  # the resolution: this cell's commit is the merge commit
        assert "ahead of 'origin/main' by 2 commits" in carol.cell("%txgit status").stdout
        carol.cell("%txgit push")
        for u in (alice, bob, carol):
            u.cell("%txgit pull")
        assert digest(alice.kernel) == digest(bob.kernel) == digest(carol.kernel)
        assert carol.value("(a, b, c, x, data.tolist())") == ("alice", "bob", "carol", "carol+bob", [1, 2, 3, 4, 5])
        graph = alice.tx("log", "--graph", "--oneline").stdout
        ids = re.findall(r"^[*|/\\ ]+([0-9a-f]{8}) ", graph, re.M)
        assert len(ids) == len(set(ids)) == 5, graph  # base, alice's, bob's, carol's, the merge
        assert graph.count("|\\") == 1 and graph.count("|/") == 1, graph
        for u in users:
            assert len(u.ws.log()) == 5
    finally:
        for u in users:
            u.shutdown()


def test_a_checkout_merge_or_reset_whose_storage_is_down_says_nothing_moved_and_what_to_run_again(
        s3, tmp_path, run_txgit, monkeypatch):
    """Carol cloned while the S3 server was down (the clone needs only git) and checked main out in her
    kernel: the one line named the storage and the connection error, but not that nothing was checked
    out nor what to type; the pull's line says both. So did `merge origin/main` and `reset origin/main`
    once she had fetched. Now each says it, in the kernel and the terminal; nothing of hers changed,
    and the same command once the server is back does it."""
    for k, v in S3_ENV.items():  # Alice's push, in this process
        monkeypatch.setenv(k, v)
    env = {**S3_ENV, "TXGIT_REMOTE_TIMEOUT": "3"}
    with _behind_a_proxy(s3, tmp_path, run_txgit, env) as (proxy, alice, clone):
        alice.commit({"x": 1, "w": np.arange(10.0)}, "base")
        alice.push()
        proxy.set("refused")
        run_txgit("clone", *clone, "carol", cwd=tmp_path, env=env, check=True)
        carol = User("carol", Workspace(tmp_path / "carol"), run_txgit, env)
        try:
            carol.cell("mine = 1")
            r = carol.kernel.run("%txgit checkout main")
            assert r.status == "error" and "remote storage s3://" in r.error, r.error
            assert r.error.endswith("; nothing was checked out: `%txgit checkout main` again once the storage "
                                    "answers"), r.error
            refused = carol.tx("checkout", "main", code=None)
            assert_one_line_error(refused, "remote storage s3://", "nothing was checked out: `txgit checkout main` "
                                  "again once the storage answers")
            assert _names(carol) == ["mine"]
            assert "not loaded: w, x" in carol.cell("%txgit status").stdout
            proxy.set("pass")
            assert "loaded: w, x" in carol.cell("%txgit checkout main").stdout
            assert carol.value("(x, w.tolist()[-1], mine)") == (1, 9.0, 1)

            alice.commit({"x": 2, "w": np.arange(12.0)}, "two")
            alice.push()
            carol.cell("%txgit fetch")
            proxy.set("refused")
            head = carol.ws.resolve("main").id
            for verb in ("merge", "reset"):
                done = "merged" if verb == "merge" else "reset"
                r = carol.kernel.run(f"%txgit {verb} origin/main")
                assert r.status == "error" and r.error.endswith(
                    f"; nothing was {done}: `%txgit {verb} origin/main` again once the storage answers"), r.error
                assert_one_line_error(carol.tx(verb, "origin/main", code=None), f"nothing was {done}: "
                                      f"`txgit {verb} origin/main` again once the storage answers")
            assert carol.ws.resolve("main").id == head and carol.value("(x, len(w), mine)") == (1, 10, 1)
            proxy.set("pass")
            assert "loaded w, x" in carol.cell("%txgit merge origin/main").stdout
            assert carol.value("(x, len(w), mine)") == (2, 12, 1)
        finally:
            carol.shutdown()
