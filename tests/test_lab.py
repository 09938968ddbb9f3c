"""The JupyterLab panel's Python halves: what its server handlers answer (txgit.jupyter.api, then over the
HTTP of a real Jupyter server), and its side in a real kernel (txgit.jupyter.kernel).

The panel itself, in headless chromium, is tests/test_lab_browser.py.
"""

from __future__ import annotations

import json
import queue
import re
from urllib.parse import quote

import pytest

from conftest import clone_change_push, session_namespace
from kernelutil import Kernel
from labutil import jupyter_lab
from test_visual import Tree, build
from txgit import Workspace
from txgit.errors import TxgitError, UnknownRevision
from txgit.jupyter import api
from txgit.jupyter.kernel import MARK


@pytest.fixture(scope="module")
def hist(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    return root, build(root)


# -- the answers, without a server ----------------------------------------------------------------

def test_history_commit_diff_and_variable_answers(hist):
    root, ids = hist
    page = api.history(str(root))
    assert (page["start"], page["stop"], page["total"], page["branch"]) == (0, 3, 3, "main")
    assert set(page["ids"]) == set(ids.values()) and page["head"] == ids["c2"]
    tree = Tree(page["html"])
    assert len(tree.find("circle", cls="txgit-node")) == 3
    # commit links stay in the panel (an anchor it intercepts), never a page of another server
    assert {a["href"] for a in tree.find("a", cls="txgit-id")} == {f"#txgit-commit-{i}" for i in ids.values()}

    c2 = api.commit(str(root), ids["c2"])
    assert c2["parents"] == [ids["c1"]] and c2["summary"] == "widen df"
    assert Tree(c2["html"]).find("tr", **{"data-var": "df"})

    d = api.diff(str(root), ids["c1"], ids["c2"])
    assert (d["a"], d["b"]) == (ids["c1"], ids["c2"])
    text = Tree(d["html"]).all_text
    assert "columns added: g (float64), h" in text and "shape 1000x12 -> 1000x14" in text

    # "when did df change": added by c1, changed by c2; y2 only on exp; model refit on main
    assert api.variable(str(root), "df")["ids"] == [ids["c2"], ids["c1"]]
    assert api.variable(str(root), "y2")["ids"] == [ids["c3"]]
    tmp = api.variable(str(root), "tmp")
    assert tmp["ids"] == [ids["c2"], ids["c1"]]
    assert [h["data-status"] for h in Tree(tmp["html"]).find("div", cls="txgit-hit")] == ["removed", "added"]
    assert api.variable(str(root), "nope")["ids"] == []


def test_the_graph_marks_head_where_the_notebooks_kernel_is(hist):
    """The second kernel of a folder works on its own branch (exp) while HEAD stays on main: its panel
    said "on exp" above a graph that marked "HEAD -> main", as if its kernel were there. The panel now
    sends its kernel's branch and commit; without them the graph marks the folder's HEAD, as before."""
    root, ids = hist
    assert '<span class="txgit-ref head">HEAD -&gt; main</span>' in api.history(str(root))["html"]
    html = api.history(str(root), branch="exp", head=ids["c3"])["html"]
    assert '<span class="txgit-ref head">HEAD -&gt; exp</span>' in html and "HEAD -&gt; main" not in html, html
    assert '<span class="txgit-ref ">main</span>' in html
    detached = api.history(str(root), head=ids["c1"])["html"]  # a kernel detached at c1
    row = re.search(f'<div class="txgit-row" data-commit="{ids["c1"]}">.*?</div>', detached).group(0)
    assert '<span class="txgit-ref head">HEAD</span>' in row and "HEAD -&gt;" not in detached, detached


def test_history_pages_line_up_with_the_whole_graph(tmp_path):
    """Pages of a long history, laid one under another, are the whole graph: every commit once, in
    log order, each page drawing only its own commits' dots."""
    ws = Workspace.init(tmp_path)
    ns = session_namespace()
    for i in range(23):
        ns["i"] = i
        ws.commit(ns, f"step {i}")
        if i == 10:
            ws.create_branch("side")
    ws.checkout("side", ns)
    for j in range(4):
        ns["j"] = j
        ws.commit(ns, f"side {j}")
    log = ws.log(None, all_refs=True)
    everything = [c.id for c in log]
    assert len(everything) == 27
    # the line from the 10th commit down to its parent crosses from the first page into the second
    crossing = (log[9].id, log[9].parents[0])
    assert everything.index(crossing[1]) >= 10
    seen = []
    for start in range(0, 27, 10):
        page = api.history(str(tmp_path), start, 10)
        assert page["start"] == start and page["total"] == 27
        tree = Tree(page["html"])
        dots = [c["data-commit"] for c in tree.find("circle", cls="txgit-node")]
        assert dots == page["ids"] == everything[start:start + 10]
        lines = {(e["data-child"], e["data-parent"]) for e in tree.find("path", cls="txgit-edge")}
        assert (crossing in lines) == (start in (0, 10)), start  # drawn on both pages it crosses, only there
        seen += page["ids"]
    assert seen == everything
    assert api.history(str(tmp_path), 27, 10)["ids"] == []
    # the pages' shared log is kept between requests only while no ref moves
    ns["j"] = 99
    newest = ws.commit(ns, "after the pages").info.id
    page = api.history(str(tmp_path), 0, 10)
    assert page["total"] == 28 and newest in page["ids"]  # (same-second commits: no fixed order among them)
    ws.create_branch("late", everything[-1])  # a ref on an old commit: decorated, nothing else moves
    assert "late" in Tree(api.history(str(tmp_path), 20, 10)["html"]).all_text


def test_the_refs_version_moves_with_any_ref_and_head_only(tmp_path):
    """The panel redraws when this fingerprint changes (a terminal beside it moved something): a new
    branch, a deleted one (back to the refs of the start: the same version), a commit, a checkout of another branch at the same commit; reading changes nothing."""
    ws = Workspace.init(tmp_path)
    ns = session_namespace()
    ns["a"] = 1
    ws.commit(ns, "one")
    seen = [api.refs(str(tmp_path))["version"]]
    assert api.refs(str(tmp_path))["version"] == seen[0] == api.history(str(tmp_path))["version"]
    ws.create_branch("side")
    seen.append(api.refs(str(tmp_path))["version"])
    ws.checkout("side", ns)  # same commit, another branch: HEAD's decoration moves
    seen.append(api.refs(str(tmp_path))["version"])
    ns["a"] = 2
    ws.commit(ns, "two")
    seen.append(api.refs(str(tmp_path))["version"])
    ws.checkout("main", ns)
    ws.delete_branch("side")
    seen.append(api.refs(str(tmp_path))["version"])
    assert len(set(seen[:-1])) == len(seen) - 1, seen
    assert seen[-1] == seen[0]  # back where it started (side deleted, main at "one"): nothing to redraw


@pytest.mark.parametrize("call, message", [
    (lambda root: api.history("relative/path"), "not an absolute workspace folder"),
    (lambda root: api.history(root, -1, 10), "bad page"),
    (lambda root: api.history(root, 0, 0), "bad page"),
    (lambda root: api.variable(root, "df; rm"), "not a variable name"),
])
def test_bad_questions_get_one_line(hist, call, message):
    root, _ = hist
    with pytest.raises(TxgitError, match=message):
        call(str(root))


def test_unknown_revision_and_folder_without_workspace(hist, tmp_path):
    root, _ = hist
    with pytest.raises(UnknownRevision):
        api.commit(str(root), "no-such-branch")
    with pytest.raises(TxgitError, match="workspace"):
        api.history(str(tmp_path))


# -- over HTTP: the handlers in a real Jupyter server ----------------------------------------------

@pytest.fixture(scope="module")
def lab(hist, tmp_path_factory):
    root, _ = hist
    with jupyter_lab(root, tmp_path_factory.mktemp("lab-home")) as lab:
        yield lab


def test_handlers_answer_over_http_with_the_token_only(hist, lab):
    root, ids = hist
    r = quote(str(root))
    status, page = lab.get(f"txgit/history?root={r}&start=0&count=2")
    assert status == 200 and (page["stop"], page["total"]) == (2, 3)
    status, c = lab.get(f"txgit/commit?root={r}&rev={ids['c1']}")
    assert status == 200 and c["id"] == ids["c1"]
    status, d = lab.get(f"txgit/diff?root={r}&a={ids['c1']}&b={ids['c2']}")
    assert status == 200 and "columns added: g (float64), h" in Tree(d["html"]).all_text
    status, v = lab.get(f"txgit/variable?root={r}&name=y2")
    assert status == 200 and v["ids"] == [ids["c3"]]
    status, refs = lab.get(f"txgit/refs?root={r}")
    assert status == 200 and refs["version"] == page["version"]
    status, css = lab.get("txgit/css")
    assert status == 200 and ".txgit-view" in css["css"]
    # a typo: 400 and the one line the CLI would print
    status, err = lab.get(f"txgit/commit?root={r}&rev=no-such-branch")
    assert status == 400 and "no-such-branch" in err["error"]
    status, err = lab.get(f"txgit/history?root={r}&count=lots")
    assert status == 400 and err["error"] == "count must be a number, not 'lots'"
    status, err = lab.get("txgit/history")
    assert status == 400 and "root" in err["error"]
    # no token, no history
    assert lab.get(f"txgit/history?root={r}", token=False)[0] == 403


def test_a_server_that_forbids_reading_files_forbids_the_history(hist, tmp_path):
    root, ids = hist
    with jupyter_lab(root, tmp_path / "home", authorizer="labutil.NoFilesAuthorizer") as lab:
        assert lab.get("api/status")[0] == 200  # the server answers, the history is files it may not read
        assert lab.get(f"txgit/commit?root={quote(str(root))}&rev={ids['c1']}")[0] == 403


# -- in the kernel: status, and actions through the magic -----------------------------------------

def panel_call(k: Kernel, request: dict, timeout: float = 120) -> dict:
    """What the panel does: one silent execute of txgit.jupyter.kernel.call, one marked stdout line back."""
    code = f'__import__("txgit.jupyter.kernel", fromlist=["call"]).call({json.dumps(json.dumps(request))})'
    msg_id = k.kc.execute(code, silent=True, store_history=False)
    out = ""
    while True:
        try:
            msg = k.kc.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(code) from None
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            out += msg["content"]["text"]
        elif msg["msg_type"] == "error":
            raise AssertionError(msg["content"])
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    lines = [line for line in out.splitlines() if line.startswith(MARK)]
    assert len(lines) == 1, out
    return json.loads(lines[0][len(MARK):])


@pytest.fixture
def kernel(tmp_path):
    k = Kernel(tmp_path)
    try:
        yield k
    finally:
        k.shutdown()


def test_kernel_side_status_checkout_and_the_force_it_asks_for(kernel, tmp_path, tmp_path_factory):
    assert panel_call(kernel, {"op": "status"}) == {"loaded": False}
    assert panel_call(kernel, {"op": "magic", "args": ["commit", "-m", "x"]})["error"].startswith(
        "txgit is not loaded")
    kernel.ok("%load_ext txgit")
    kernel.ok("x = 1")
    kernel.ok("x = 2")
    st = panel_call(kernel, {"op": "status"})
    assert st["loaded"] and st["root"] == str(tmp_path) and st["branch"] == "main" and st["auto"] and st["clean"]
    ws = Workspace(tmp_path)
    first = next(c.id for c in ws.log() if ws.load("x", c.id) == 1)

    # auto-commit off, then a change no commit holds: checkout refuses, and says it needs --force
    assert panel_call(kernel, {"op": "magic", "args": ["auto", "off"]})["ok"]
    kernel.ok("x = 99")
    r = panel_call(kernel, {"op": "magic", "args": ["checkout", first]})
    assert not r["ok"] and r["needs_force"] and "x" in r["error"], r
    assert kernel.value("x") == 99  # nothing lost
    r = panel_call(kernel, {"op": "magic", "args": ["checkout", first, "--force"]})
    assert r["ok"] and "checked out" in r["output"], r
    assert kernel.value("x") == 1
    # the panel's calls were not cells: no commit, nothing in the namespace
    assert not {n for n in kernel.value("list(globals())") if "txgit" in n.lower() and not n.startswith("_")}

    r = panel_call(kernel, {"op": "magic", "args": ["branch", "from-panel", first]})
    assert r["ok"], r
    assert Workspace(tmp_path).branches()["from-panel"] == first
    r = panel_call(kernel, {"op": "magic", "args": ["commit", "-m", "by hand"]})
    assert r["ok"] or "nothing to commit" in r["output"], r
    # reuse needs auto-commit: refused with the magic's line while it is off, then on and off again
    r = panel_call(kernel, {"op": "magic", "args": ["reuse", "on"]})
    assert not r["ok"] and "auto-commit" in r["error"]
    assert panel_call(kernel, {"op": "magic", "args": ["auto", "on"]})["ok"]
    assert panel_call(kernel, {"op": "magic", "args": ["reuse", "on"]})["output"].strip() == "reuse on"
    assert panel_call(kernel, {"op": "status"})["reuse"]
    assert panel_call(kernel, {"op": "magic", "args": ["reuse", "off"]})["ok"]

    # push and pull are the CLI's, on this kernel: no remote yet is one line; a folder remote works
    r = panel_call(kernel, {"op": "magic", "args": ["push"]})
    assert not r["ok"] and "no remote" in r["error"], r  # (the kernel is detached too: the remote is said first)
    team = tmp_path_factory.mktemp("remote") / "team.git"
    assert kernel.run(f"%txgit remote add origin {team}").status == "ok"
    r = panel_call(kernel, {"op": "magic", "args": ["push"]})  # detached at `first`: which branch is not known
    assert not r["ok"] and "the kernel is detached" in r["error"] and "checkout -b NAME" in r["error"], r
    assert panel_call(kernel, {"op": "magic", "args": ["checkout", "main", "--force"]})["ok"]
    r = panel_call(kernel, {"op": "magic", "args": ["push"]})
    assert r["ok"] and "pushed to origin" in r["output"], r
    r = panel_call(kernel, {"op": "magic", "args": ["pull"]})
    assert r["ok"], r
    # the graph shows the remote-tracking branch the push left
    assert '<span class="txgit-ref remote">origin/main</span>' in api.history(str(tmp_path))["html"]

    # a verb the panel has no business running is refused before the magic sees it
    r = panel_call(kernel, {"op": "magic", "args": ["gc"]})
    assert not r["ok"] and "cannot run" in r["error"]
    r = panel_call(kernel, {"op": "magic", "args": ["checkout", "no-such-rev"]})
    assert not r["ok"] and not r["needs_force"] and "no-such-rev" in r["error"]


def test_an_auto_commit_that_failed_is_told_to_the_panel(kernel, tmp_path):
    """The panel's status waits for the last cell's auto-commit (flush), which reports a failure on stderr;
    a silent request's stderr is shown nowhere, so the answer must carry it, or the user never learns
    that the cell was not committed (the next cell would have said it, but the panel asked first)."""
    import shutil

    kernel.ok("%load_ext txgit")
    kernel.ok("a = 1")
    shutil.rmtree(tmp_path / ".txgit" / "objects")
    (tmp_path / ".txgit" / "objects").write_text("a file where the object store was")  # writes fail, even as root
    assert kernel.run("b = list(range(1000))", settle=False).status == "ok"
    st = panel_call(kernel, {"op": "status"})
    assert st["warning"].startswith("txgit: auto-commit failed:"), st
    assert not st["clean"]  # the cell's change waits for the next commit


def test_a_refused_panel_action_leaves_rollback_of_failed_cells_on(kernel):
    """A failed %txgit in a cell keeps that cell from being rolled back (the magic changed nothing); a
    panel request is no cell, so the user's next failing cell must still be rolled back."""
    kernel.ok("%load_ext txgit")
    kernel.ok("x = 1")
    r = panel_call(kernel, {"op": "magic", "args": ["checkout", "no-such-rev"]})
    assert not r["ok"]
    failed = kernel.run("x = 5\nraise ValueError('boom')")
    assert failed.status == "error"
    assert kernel.value("x") == 1


def test_a_pull_that_conflicts_says_what_is_left_and_the_panel_resolves_it(kernel, tmp_path, tmp_path_factory):
    """Alice pulls from the panel after Bob pushed another value of the variable she changed: her value
    stays in her kernel, the answer says which variable waits and what to type (it said "`txgit pull`
    exited with status 1"), the status carries the merge for the panel's buttons, and the panel's
    `merge --theirs` (refused as a verb it "cannot run") resolves it; then her push goes through."""
    _bob_pushed_x_and_alice_set_it(kernel, tmp_path_factory)

    r = panel_call(kernel, {"op": "magic", "args": ["pull"]})
    assert not r["ok"] and "CONFLICT" in r["output"], r
    assert r["error"].startswith("`%txgit pull` stopped on conflicts: merge into main in progress, unresolved: x"), r
    assert "`%txgit merge --ours x` / `--theirs x`" in r["error"] and "\n" not in r["error"]
    assert kernel.value("x") == 100  # hers, still in the kernel
    st = panel_call(kernel, {"op": "status"})
    assert st["merging"]["label"] == "origin/main" and st["merging"]["unresolved"] == ["x"], st
    assert "unresolved: x" in st["merging"]["note"]
    # Push while it waits: refused, and told a way that works (`merge --continue` refuses beside a kernel)
    r = panel_call(kernel, {"op": "magic", "args": ["push"]})
    assert not r["ok"] and "a merge is in progress" in r["error"] and "--continue" not in r["error"], r
    assert "`%txgit merge --ours NAME` / `--theirs NAME`" in r["error"] and "merge --abort" in r["error"], r

    # Abort merge: back to hers, nothing waits; Pull again stops on the same conflict
    r = panel_call(kernel, {"op": "magic", "args": ["merge", "--abort"]})
    assert r["ok"] and "aborted" in r["output"], r
    assert kernel.value("x") == 100 and panel_call(kernel, {"op": "status"})["merging"] is None
    assert not panel_call(kernel, {"op": "magic", "args": ["pull"]})["ok"]
    r = panel_call(kernel, {"op": "magic", "args": ["merge", "--theirs"]})
    assert r["ok"] and "resolved: x (theirs)" in r["output"], r
    assert kernel.value("x") == 200
    assert panel_call(kernel, {"op": "status"})["merging"] is None
    r = panel_call(kernel, {"op": "magic", "args": ["push"]})
    assert r["ok"] and "main -> origin/main" in r["output"], r
    # her 100 is in the history the remote now holds (the merge's first parent): nothing lost
    merged = Workspace(tmp_path).head()
    assert Workspace(tmp_path).load("x", merged.parents[0]) == 100


def test_taking_a_side_never_drops_a_value_set_during_the_merge_and_not_committed(kernel, tmp_path, tmp_path_factory):
    """Auto-commit off, a pull stopped on x; Alice sets x = 150 in a cell (not committed) and clicks Take
    theirs: her 150 was replaced by Bob's 200 without a word, in no commit. Now refused, with
    needs_force (the panel asks before it runs `merge --theirs --force`); her other uncommitted
    variable is never touched."""
    _bob_pushed_x_and_alice_set_it(kernel, tmp_path_factory)
    assert not panel_call(kernel, {"op": "magic", "args": ["pull"]})["ok"]
    assert panel_call(kernel, {"op": "magic", "args": ["auto", "off"]})["ok"]
    kernel.ok("x = 150\nq = 7")
    for side in ("--theirs", "--ours"):
        r = panel_call(kernel, {"op": "magic", "args": ["merge", side]})
        assert not r["ok"] and r["needs_force"], r
        assert r["error"].startswith("uncommitted changes to x would be overwritten"), r
        assert (kernel.value("x"), kernel.value("q")) == (150, 7)
        assert panel_call(kernel, {"op": "status"})["merging"]["unresolved"] == ["x"]
    r = panel_call(kernel, {"op": "magic", "args": ["merge", "--theirs", "--force"]})
    assert r["ok"] and "resolved: x (theirs)" in r["output"], r
    assert (kernel.value("x"), kernel.value("q")) == (200, 7)


def test_a_pull_from_a_remote_not_trusted_asks_to_trust_it_once(kernel, tmp_path, tmp_path_factory):
    """Bob pushes to a remote Alice added without --trusted; her panel's Pull is refused ("load with
    --trust (this once)"), which the panel could not pass. The answer now says needs_trust (the error's
    kind survives the kernel's answer: it came back a plain TxgitError), so the panel asks and repeats
    the pull with --trust; her value stays until then, and the remote stays not trusted."""
    kernel.ok("%load_ext txgit")
    kernel.ok("x = 1")
    team = tmp_path_factory.mktemp("remote") / "team.git"
    assert kernel.run(f"%txgit remote add origin {team}").status == "ok"  # not --trusted
    assert panel_call(kernel, {"op": "magic", "args": ["push"]})["ok"]
    bob = Workspace.clone(str(team), tmp_path_factory.mktemp("bob") / "bob")
    ns: dict = {}
    bob.checkout("main", ns)
    ns["y"] = 200
    bob.commit(ns, "bob: y = 200")
    bob.push()

    r = panel_call(kernel, {"op": "magic", "args": ["pull"]})
    assert not r["ok"] and r["needs_trust"] and not r["needs_force"], r
    assert "which is not trusted" in r["error"] and "\n" not in r["error"], r
    assert kernel.value("x") == 1 and kernel.value("'y' in globals()") is False
    r = panel_call(kernel, {"op": "magic", "args": ["pull", "--trust"]})
    assert r["ok"], r
    assert (kernel.value("x"), kernel.value("y")) == (1, 200)
    assert not Workspace(tmp_path).remotes.get("origin").trusted  # this once

    # a conflict pulled with --trust: taking their side loads their value, and asks the same
    ns["x"] = 300
    bob.commit(ns, "bob: x = 300")
    bob.push()
    kernel.ok("x = 5")
    r = panel_call(kernel, {"op": "magic", "args": ["pull", "--trust"]})
    assert not r["ok"] and "CONFLICT" in r["output"], r
    r = panel_call(kernel, {"op": "magic", "args": ["merge", "--theirs"]})
    assert not r["ok"] and r["needs_trust"], r
    assert kernel.value("x") == 5 and panel_call(kernel, {"op": "status"})["merging"]["unresolved"] == ["x"]
    r = panel_call(kernel, {"op": "magic", "args": ["merge", "--theirs", "--trust"]})
    assert r["ok"] and "resolved: x (theirs)" in r["output"], r
    assert kernel.value("x") == 300


def test_the_kind_of_a_kernel_side_error_survives_its_answer():
    """A terminal command beside a kernel raises the kernel's kind of error (UntrustedState lives in
    txgit.trust, UnsafeObject in txgit.state.safe: both came back plain TxgitErrors)."""
    from txgit.sessions.kernel import _answer
    from txgit.state.safe import UnsafeObject
    from txgit.trust import UntrustedState

    for cls in (UntrustedState, UnsafeObject, UnknownRevision):
        with pytest.raises(cls, match="^no$"):
            _answer({"ok": False, "kind": cls.__name__, "error": "no"})
    with pytest.raises(TxgitError) as e:
        _answer({"ok": False, "kind": "ValueError", "error": "no"})  # not a txgit error: the base class
    assert type(e.value) is TxgitError


def test_a_kernel_restarted_mid_merge_shows_where_it_stands_and_resolves(tmp_path, tmp_path_factory):
    """A pull stops on x; Alice restarts the kernel (the merge waits on disk, the new kernel holds no
    value). Its panel said "on main, no commits yet · cells ran since the last commit" beside a graph of
    commits, with no cell run: now the commit it stands on, nothing to commit, and which values are
    not loaded. Keep mine resolves the merge and loads her x; y stays not loaded, and says so."""
    kernel = Kernel(tmp_path)
    try:
        _pull_that_stops_on_x(kernel, tmp_path_factory)
    finally:
        kernel.shutdown()  # the restart: what the merge left waits on disk
    mine = Workspace(tmp_path).head().id

    fresh = Kernel(tmp_path)
    try:
        fresh.ok("%load_ext txgit")
        st = panel_call(fresh, {"op": "status"})
        assert st["merging"]["unresolved"] == ["x"], st
        assert st["head"] == mine and st["clean"] and st["unloaded"] == ["x", "y"], st
        r = panel_call(fresh, {"op": "magic", "args": ["merge", "--ours"]})
        assert r["ok"] and "resolved: x (ours)" in r["output"], r
        assert fresh.value("x") == 100
        st = panel_call(fresh, {"op": "status"})
        assert st["merging"] is None and st["clean"] and st["unloaded"] == ["y"], st
        assert list(Workspace(tmp_path).head().parents) == [mine, Workspace(tmp_path).remote_branches()["origin/main"]]
    finally:
        fresh.shutdown()


def test_a_kernel_restarted_after_one_died_mid_merge_is_told_what_continue_takes(tmp_path, tmp_path_factory):
    """A pull stops on x; Alice sets y = 11 beside it and her kernel dies (kill -9). Only `%txgit status` and
    the merge listings said that y = 11 waits for `%txgit merge --continue`: the restarted kernel's
    `%load_ext` said only where it is, its first cell only the conflict, and the panel's status (its merge
    note) nothing. All three say it now, and the panel's status lists it apart for the page."""
    import os
    import signal

    kernel = Kernel(tmp_path)
    try:
        _pull_that_stops_on_x(kernel, tmp_path_factory)
        assert "unresolved: x" in kernel.run("y = 11").stderr
        dead = kernel.pid
        os.kill(dead, signal.SIGKILL)
        kernel.km.provisioner.process.wait()
    finally:
        kernel.kc.stop_channels()
        kernel.km.shutdown_kernel(now=True)
    held = f"kernel {dead} closed during the merge; it had set y = 11, in no commit yet: `%txgit merge --continue` " \
           "takes them"

    fresh = Kernel(tmp_path)
    try:
        loaded = fresh.ok("%load_ext txgit").stdout
        assert "merge into main in progress, unresolved: x" in loaded and f"txgit: {held}" in loaded, loaded
        st = panel_call(fresh, {"op": "status"})
        assert st["merging"]["unresolved"] == ["x"] and st["merging"]["held"] == [held], st
        assert held in st["merging"]["note"], st
        said = fresh.run("z = 1").stderr
        assert "unresolved: x" in said and held in said, said
        r = panel_call(fresh, {"op": "magic", "args": ["merge", "--ours"]})
        assert r["ok"] and "no conflict left" in r["output"], r
        st = panel_call(fresh, {"op": "status"})  # no conflict left: the note says what still waits
        assert st["merging"]["unresolved"] == [] and held in st["merging"]["note"], st
        assert fresh.run("%txgit merge --continue").status == "ok"
        assert panel_call(fresh, {"op": "status"})["merging"] is None
    finally:
        fresh.shutdown()
    ws = Workspace(tmp_path)
    assert ws.load("y") == 11 and ws.merge_in_progress() is None


def _bob_pushed_x_and_alice_set_it(kernel: Kernel, tmp_path_factory, *cells: str) -> None:
    """x = 1 (then ``cells``) pushed from the panel; Bob pushes x = 200 and Alice sets x = 100."""
    kernel.ok("%load_ext txgit")
    kernel.ok("x = 1")
    for cell in cells:
        kernel.ok(cell)
    team = tmp_path_factory.mktemp("remote") / "team.git"
    assert kernel.run(f"%txgit remote add origin {team} --trusted").status == "ok"
    assert panel_call(kernel, {"op": "magic", "args": ["push"]})["ok"]
    clone_change_push(str(team), tmp_path_factory.mktemp("bob") / "bob", "bob: x = 200", {"x": 200})
    kernel.ok("x = 100")


def _pull_that_stops_on_x(kernel: Kernel, tmp_path_factory) -> None:
    """x = 1, y = 10 pushed; Bob pushes x = 200 and Alice sets x = 100: her panel's Pull stops on x."""
    _bob_pushed_x_and_alice_set_it(kernel, tmp_path_factory, "y = 10")
    assert not panel_call(kernel, {"op": "magic", "args": ["pull"]})["ok"]
