"""The lane graph of `txgit log --graph`: a pure function, tested on its own."""

from __future__ import annotations

import pygit2
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import session_namespace
from txgit.cli.graph import render_graph


def draw(commits) -> list[str]:
    """Rows as the terminal shows them: lanes, then the commit id on commit rows."""
    return [f"{r.graph} {r.commit}" if r.commit else r.graph for r in render_graph(commits)]


def reached(rows, start: int) -> set[str]:
    """Follow the drawn lines down from commit row ``start``: the commits they land on.

    Where lines cross in one character the path takes every way it could go, so
    this is a superset of the true parents; on crossing-free graphs it is exact.
    """
    x0 = rows[start].graph.index("*")
    found: set[str] = set()
    seen: set[tuple[int, int]] = set()
    todo = [(start + 1, x0)]
    while todo:
        r, x = todo.pop()
        if (r, x) in seen or r >= len(rows):
            continue
        seen.add((r, x))
        line = rows[r].graph

        def at(i: int) -> str:
            return line[i] if 0 <= i < len(line) else " "

        if at(x) == "*":
            found.add(rows[r].commit)
            continue
        moves = [(x, at(x) == "|"), (x + 2, at(x + 1) == "\\"), (x - 2, at(x - 1) == "/")]
        assert any(ok for _, ok in moves), f"the line from row {start} breaks at row {r}, column {x}"
        todo.extend((r + 1, nx) for nx, ok in moves if ok)
    return found


def assert_connected(commits, *, exact: bool) -> None:
    rows = render_graph(commits)
    assert [r.commit for r in rows if r.commit] == [c for c, _ in commits]
    shown = {c for c, _ in commits}
    for i, row in enumerate(rows):
        if row.commit is None:
            assert row.graph.strip() and "*" not in row.graph
            continue
        assert row.graph.count("*") == 1
        parents = {p for p in dict(commits)[row.commit] if p in shown}
        if not dict(commits)[row.commit]:
            continue
        got = reached(rows, i)
        assert (got == parents) if exact else (parents <= got), (row.commit, parents, got)


# -- exact drawings ------------------------------------------------------------------

def test_linear_history_is_one_lane_without_connectors():
    assert draw([("c", ["b"]), ("b", ["a"]), ("a", [])]) == ["* c", "* b", "* a"]


def test_fork_without_merge_joins_where_branches_split():
    commits = [("m2", ["m1"]), ("e1", ["m1"]), ("m1", ["r"]), ("r", [])]
    assert draw(commits) == [
        "* m2",
        "| * e1",
        "|/",
        "* m1",
        "* r",
    ]
    assert_connected(commits, exact=True)


def test_merge_forks_a_lane_and_joins_it_again():
    commits = [("m", ["a", "b"]), ("b", ["r"]), ("a", ["r"]), ("r", [])]
    assert draw(commits) == [
        "* m",
        "|\\",
        "| * b",
        "* | a",
        "|/",
        "* r",
    ]
    rows = render_graph(commits)
    assert rows[0].continuation == "|"  # lines under a merge's text stay in its lane
    assert_connected(commits, exact=True)


def test_octopus_merge_fans_out_one_lane_per_row():
    commits = [("m", ["a", "b", "d"]), ("a", ["r"]), ("b", ["r"]), ("d", ["r"]), ("r", [])]
    assert draw(commits) == [
        "* m",
        "|\\",
        "| |\\",
        "* | | a",
        "| * | b",
        "|/ /",
        "| * d",
        "|/",
        "* r",
    ]
    assert_connected(commits, exact=True)


def test_two_roots_close_up_to_the_left():
    commits = [("t1", ["p"]), ("t2", ["q"]), ("p", []), ("q", [])]
    assert draw(commits) == ["* t1", "| * t2", "* | p", " /", "* q"]
    assert render_graph(commits)[2].continuation == "  |"  # a root's own lane ends under it


def test_parents_outside_the_shown_commits_leave_their_lane_open():
    # `log -n 2` of a merge: the parents are not shown, their lanes just run out.
    rows = render_graph([("m", ["a", "b"]), ("x", ["y"])])
    assert [r.graph for r in rows] == ["*", "|\\", "| | *"]
    assert_connected([("m", ["a", "b"]), ("x", ["y"])], exact=True)


def test_empty_history_draws_nothing():
    assert render_graph([]) == []


# -- any history: every parent is reached by a drawn line ----------------------------

@st.composite
def histories(draw_):
    n = draw_(st.integers(1, 14))
    commits = []
    for i in range(n):
        later = list(range(i + 1, n))
        k = draw_(st.integers(0, min(3, len(later))))
        parents = draw_(st.permutations(later))[:k] if later else []
        commits.append((f"c{i}", [f"c{p}" for p in parents]))
    return commits


@settings(max_examples=300, deadline=None)
@given(histories())
def test_every_parent_is_connected_in_any_history(commits):
    assert_connected(commits, exact=False)


@settings(max_examples=200, deadline=None)
@given(histories().map(lambda cs: [(c, ps[:1]) for c, ps in cs]))
def test_histories_without_merges_draw_every_line(commits):
    assert_connected(commits, exact=False)


# -- real histories ---------------------------------------------------------------------

def _log(ws):
    return [(c.id, c.parents) for c in ws.log(all_refs=True)]


def test_workspace_history_with_two_branches(ws):
    ns = session_namespace("x = 1")
    base = ws.commit(ns, "base").info.id
    ns["x"] = 2
    ws.commit(ns, "main 1")
    ws.create_branch("exp", base)
    ws.checkout("exp")
    ns["y"] = 3
    ws.commit(ns, "exp 1")
    ns["y"] = 4
    ws.commit(ns, "exp 2")
    commits = _log(ws)
    assert len(commits) == 4 and commits[-1][0] == base
    rows = render_graph(commits)
    assert [r.graph for r in rows if r.commit is None] == ["|/"]  # the fork, drawn once, above the base
    assert rows[-1].graph == "*" and rows[-1].commit == base
    assert_connected(commits, exact=True)


def test_workspace_history_with_a_git_merge(ws):
    ns = session_namespace("x = 1")
    base = ws.commit(ns, "base").info.id
    ws.create_branch("exp")
    ns["x"] = 2
    main_tip = ws.commit(ns, "main 1").info.id
    ws.checkout("exp")
    ns["y"] = 3
    exp_tip = ws.commit(ns, "exp 1").info.id
    ws.checkout("main")
    # txgit has no merge yet: make one with git itself, on main.
    repo = ws.history.repo
    sig = pygit2.Signature("t", "t@example.com")
    merge = str(repo.create_commit("refs/heads/main", sig, sig, "merge exp", repo[main_tip].tree_id,
                                   [pygit2.Oid(hex=main_tip), pygit2.Oid(hex=exp_tip)]))
    commits = _log(ws)
    assert commits[0] == (merge, [main_tip, exp_tip])
    rows = render_graph(commits)
    assert rows[0].commit == merge and rows[1].graph == "|\\"
    assert [r.commit for r in rows if r.commit][-1] == base
    assert_connected(commits, exact=True)
