"""A figure a cell only reads is compared with HEAD by its pickle alone, without the walk that groups
what changed (issue 17, i17-figure): in a real kernel, what the commit would serialize is pickled
first and its group id compared with HEAD's. Every change is still committed: a change through a
name the cell only reads (``ax.lines[0].set_color``), through pyplot with no name at all, and an
aliasing change that pickles each value to the same bytes (``a[0] = b[0]`` of two equal lists).

Walks and pickles are counted in the kernel, never timed; values are checked in fresh kernels."""

from __future__ import annotations

import pytest
from kernelutil import Kernel, silent_eval, silent_exec

from txgit import Workspace

pytestmark = pytest.mark.timeout(300)

# Counts, in the kernel, the values each walk of the session takes and the pickles of the state layer
# (run as a silent request in a dict of its own: no name is left in the user's namespace).
COUNT = r'''
import sys
import txgit.sessions.session as session
import txgit.state.pickling as pickling
seen = sys._fig_counts = {"walked": [], "pickled": 0}
walk, dumps = session.walk_shared, pickling.dumps
def counted_walk(values, *args, **kwargs):
    seen["walked"].append(sorted(values))
    return walk(values, *args, **kwargs)
def counted_dumps(*args, **kwargs):
    seen["pickled"] += 1
    return dumps(*args, **kwargs)
session.walk_shared, pickling.dumps = counted_walk, counted_dumps
'''
RESET = "import sys\nsys._fig_counts.update(walked=[], pickled=0)"


def counts(k: Kernel) -> tuple[list[list[str]], int]:
    """The walks and pickles since the last call (then reset)."""
    walked, pickled = silent_eval(k, "__import__('sys')._fig_counts['walked'], __import__('sys')._fig_counts['pickled']")
    silent_exec(k, f"exec({RESET!r}, {{}})")
    return walked, pickled


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    return Workspace.init(tmp_path_factory.mktemp("figure_reads") / "ws")


@pytest.fixture(scope="module")
def cells(ws):
    """Run every cell in one kernel (background commits, as by default), counting walks and pickles;
    name -> (the branch's tip after it, the tip before it, its walks, its pickles). Fresh kernels
    check out the commits only after (one that checks out a branch's tip takes the branch)."""
    pytest.importorskip("matplotlib", reason="matplotlib is a test dependency (pip install '.[test]')")
    k = Kernel(ws.root)
    out = {}
    try:
        k.ok("%load_ext txgit")
        silent_exec(k, f"exec({COUNT!r}, {{}})")
        k.ok("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
             "fig, ax = plt.subplots()\nax.plot([1, 2, 3], color='blue')\nother = [1, 2, 3]")
        for name, code in [("read", "print(ax.get_xlim(), len(ax.lines))"),
                           ("set_color", "ax.lines[0].set_color('red')"),
                           ("pyplot", "plt.gca().set_title('through pyplot')"),
                           ("lists", "a = [[1, 2], [3]]\nb = [[1, 2], [4]]\nd = []"),
                           ("a[0] = b[0]", "a[0] = b[0]"),
                           # b takes an equal copy (it pickles as before), which d then holds too
                           ("copy", "b.insert(1, list(b.pop(1)))\nd.append(b[1])")]:
            counts(k)
            before = tip(ws)
            k.ok(code)
            out[name] = (tip(ws), before, *counts(k))
        assert k.value("plt.gca() is ax")  # (the figure stayed pyplot's current one throughout)
    finally:
        k.shutdown()
    return out


def tip(ws: Workspace) -> str:
    """The working kernel's branch (a fresh kernel's checkout detaches HEAD)."""
    return ws.resolve("main").id


def fresh(ws: Workspace, rev: str) -> Kernel:
    """A new kernel holding commit ``rev``."""
    k = Kernel(ws.root)
    k.ok("%load_ext txgit")
    r = k.ok(f"%txgit checkout {rev}")
    assert "error" not in r.stderr, r.stderr
    return k


def test_a_figure_a_cell_only_reads_is_not_walked_nor_committed(cells):
    commit, before, walked, pickled = cells["read"]
    assert commit == before  # nothing changed: no commit
    # its group pickled once (to compare with HEAD's), never walked (before: walked, then pickled)
    assert not [w for w in walked if {"ax", "fig"} & set(w)], walked
    assert pickled == 1


def test_a_change_through_a_name_the_cell_only_reads_is_committed(ws, cells):
    commit, before, walked, pickled = cells["set_color"]
    assert commit != before
    assert {"ax", "fig"} <= set(ws.state(commit).meta["serialized"])
    assert pickled == 1  # the comparison's pickle is the one the commit stores: not pickled twice
    k = fresh(ws, commit)
    try:
        assert k.value("ax.lines[0].get_color()") == "red"
        assert k.value("ax.figure is fig")
    finally:
        k.shutdown()


def test_a_change_through_pyplot_with_no_name_is_committed(ws, cells):
    commit, before, _, _ = cells["pyplot"]
    assert commit != before
    k = fresh(ws, commit)
    try:
        assert k.value("ax.get_title()") == "through pyplot"
        assert k.value("ax.lines[0].get_color()") == "red"
    finally:
        k.shutdown()


def test_values_that_pickle_as_before_but_now_share_an_object_are_committed(ws, cells):
    """``a[0] = b[0]``: each list pickles to the same bytes as before, but they now share a list, which
    a restore must keep; and ``b``, which pickles as before with a new list in it, is still grouped with
    ``d`` once ``d`` holds that list (the objects ``b`` is remembered to reach take its pickle's in)."""
    shared, before, _, _ = cells["a[0] = b[0]"]
    assert shared != before
    k = fresh(ws, shared)
    try:
        assert k.value("a[0] is b[0]")
    finally:
        k.shutdown()
    copy, before, _, _ = cells["copy"]
    assert copy != before
    k = fresh(ws, copy)
    try:
        assert k.value("a[0] is b[0]")
        assert k.value("d[0] is b[1]")
        assert k.value("(a, b, d)") == ([[1, 2], [3]], [[1, 2], [4]], [[4]])
    finally:
        k.shutdown()
