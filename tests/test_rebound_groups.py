"""A name rebound to a new value leaves the values it shared objects with as they were (issue 17: the
worst notebook's slowest cells serialized a colorbar and an image again because ``fig`` was rebound).

Their old group is kept for them; it still lists the rebound name, whose record now names another
group. A checkout restores from a group only the names whose records name it, so each name gets its
own value back: the rebound one its new value, the others their old ones, with the identities
among them (``cb.ax.figure is im.axes.figure``) as they were in the session.
"""

from __future__ import annotations

import re

import pytest
from conftest import session_namespace

from txgit import Workspace
from txgit.errors import NothingToCommit
from txgit.sessions.session import NamespaceSession
from txgit.state.snapshot import restore, snapshot

pytest.importorskip("matplotlib", reason="matplotlib is a test dependency (pip install '.[test]')")

SETUP = "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nimport numpy as np"
# the figure a cell of Lecture-4 makes: a colorbar and an image of it, bound to names of their own
COLORBAR = ("fig, ax = plt.subplots()\nim = ax.imshow(np.arange(12.0).reshape(3, 4))\n"
            "cb = fig.colorbar(im, ax=ax)\ncb.set_label('old')")
# a notebook's inline backend closes every figure when its cell ends; a script's backend does not
INLINE = "\nplt.close('all')"


def run(s: NamespaceSession, code: str) -> str | None:
    s.before_cell(code)
    exec(code, s.namespace)
    s.after_cell()
    s.flush()
    return s.base


def serialized(ws: Workspace, rev: str) -> set[str]:
    return set(ws.state(rev).meta["serialized"])


def fresh(ws: Workspace, rev: str, *, trust: bool = False) -> dict:
    ns = session_namespace()
    ws.checkout(rev, ns, force=True, trust=trust)
    return ns


def assert_old_colorbar(ns: dict) -> None:
    """``cb`` and ``im`` as COLORBAR made them, in one figure, which is not ``fig``."""
    old = ns["im"].axes.figure
    assert ns["cb"].ax.figure is old
    assert ns["cb"].mappable is ns["im"]
    assert len(old.axes) == 2  # the image's axes and the colorbar's
    assert ns["cb"].ax.get_ylabel() == "old"
    assert old is not ns["fig"]
    assert ns["cb"].ax not in ns["fig"].axes and all(ns["im"] not in a.images for a in ns["fig"].axes)


@pytest.fixture
def session(ws):
    s = NamespaceSession(ws, session_namespace(), kind="test")
    run(s, SETUP)
    yield s
    s.close()


def test_rebinding_a_figure_keeps_the_records_of_what_shared_the_old_one(ws, session):
    first = run(session, COLORBAR + INLINE)
    before = ws.state(first).variables
    second = run(session, "fig, ax = plt.subplots()\nax.plot([1, 2, 3])" + INLINE)
    done = serialized(ws, second)
    assert {"fig", "ax"} <= done and not {"cb", "im"} & done, "cb and im did not change: not serialized again"
    after = ws.state(second).variables
    assert after["cb"] == before["cb"] and after["im"] == before["im"]
    assert after["fig"].group != before["fig"].group
    ns = fresh(ws, second)
    assert_old_colorbar(ns)
    assert ns["ax"].figure is ns["fig"] and len(ns["fig"].axes) == 1
    assert [list(line.get_ydata()) for line in ns["ax"].lines] == [[1, 2, 3]]
    # and the commit before still has its own figure, with the colorbar in it
    ns = fresh(ws, first)
    assert ns["cb"].ax.figure is ns["fig"] and ns["im"].axes is ns["ax"]


def test_a_group_restores_only_the_names_whose_records_name_it():
    """The state layer alone: ``fig``'s record names its new group, ``cb``'s the old one listing ``fig``
    too; restored together, ``fig`` is the new value whichever group is unpickled last."""
    for i in range(6):  # new values whose groups sort before and after the old one
        old = session_namespace("fig = {'axes': [1, 2]}\ncb = {'fig': fig}")
        new = {"fig": {"new": i}}
        a, b = snapshot(old), snapshot(new)
        records = {"cb": a.variables["cb"], "fig": b.variables["fig"]}
        groups = {**a.groups, **b.groups}
        out = restore(records, groups, lambda names: {**a.chunks, **b.chunks}, session_namespace())
        assert out["fig"] == {"new": i}
        assert out["cb"] == {"fig": {"axes": [1, 2]}}
        assert set(out) == {"cb", "fig"}


def test_a_cell_that_changes_the_old_figure_before_rebinding_it_commits_what_it_changed(ws, session):
    run(session, COLORBAR + INLINE)
    second = run(session, "fig.axes[0].set_title('changed')\nfig = plt.figure()" + INLINE)
    assert {"ax", "cb", "im"} <= serialized(ws, second)
    ns = fresh(ws, second)
    assert ns["ax"].get_title() == "changed" and ns["im"].axes is ns["ax"]
    assert_old_colorbar(ns)


def test_a_change_through_pyplot_to_an_open_old_figure_is_committed(ws, session):
    """A script's backend leaves figures open: pyplot reaches the old figure after ``fig`` is rebound."""
    run(session, COLORBAR)
    second = run(session, "plt.gca().set_title('through pyplot')\nfig = plt.figure()")
    assert {"ax", "cb", "im"} <= serialized(ws, second)
    ns = fresh(ws, second)
    assert ns["ax"].get_title() == "through pyplot"
    assert_old_colorbar(ns)


def test_rebound_then_the_others_deleted(ws, session):
    first = run(session, COLORBAR + INLINE)
    run(session, "fig = plt.figure()" + INLINE)
    third = run(session, "del cb, im")
    state = ws.state(third)
    assert set(state.variables) >= {"fig", "ax"} and not {"cb", "im"} & set(state.variables)
    assert state.variables["ax"].group == ws.state(first).variables["ax"].group
    ns = fresh(ws, third)
    assert ns["ax"].figure is not ns["fig"] and len(ns["ax"].figure.axes) == 2
    assert not ws.fsck().problems


def test_a_live_session_checks_out_the_commit_before_the_rebind(ws, session):
    """The session holds ``cb`` from the same group as the commit before; only ``fig`` differs, and
    loading it loads its whole group: ``cb.ax.figure is fig`` again, as it was then."""
    first = run(session, COLORBAR + INLINE)
    second = run(session, "fig = plt.figure()" + INLINE)
    session.checkout(first)
    ns = session.namespace
    assert ns["cb"].ax.figure is ns["fig"] and ns["im"].axes is ns["ax"] and ns["ax"].figure is ns["fig"]
    session.checkout(second)
    assert_old_colorbar(ns)
    assert len(ns["fig"].axes) == 0


def test_a_restored_colorbar_pickles_as_its_commit_so_an_explicit_commit_finds_nothing(ws, session):
    """Pickling restored values to learn their bytes (RestoredGroups.note) passed their names as the
    commit's records spell them, not the namespace's interned keys: a group's pickle holds its names,
    and the colorbar's ``ax`` attribute (interned by the unpickler) was memoized apart from the name
    ``ax`` there and not later, so the restored colorbar never pickled as noted again. An explicit
    commit (which compares every value) committed it as changed, and a clean checkout that compares
    what it replaces called it an uncommitted change."""
    first = run(session, COLORBAR + INLINE)
    run(session, "fig = plt.figure()" + INLINE)
    session.checkout(first)
    with pytest.raises(NothingToCommit):
        session.commit("nothing changed")


def test_a_commit_with_a_group_listing_a_rebound_name_needs_format_3(ws, session):
    """An older txgit would bind every name such a group lists (the old ``fig`` over the new one): it
    must refuse the commit instead. Commits without such a group stay readable by it (format 2)."""
    first = run(session, COLORBAR + INLINE)
    second = run(session, "fig = plt.figure()" + INLINE)
    assert ws.state(first).meta["format"] == 2
    assert ws.state(second).meta["format"] == 3


def test_lecture_4s_figures_in_a_real_kernel(tmp_path):
    """Cells as Lecture-4's (inline plotting, run without waiting for their commits, as "Run All"):
    each new figure serializes its own names only, and a fresh kernel gets every value back."""
    from kernelutil import Kernel

    ws = Workspace.init(tmp_path / "ws")
    cells = {
        "setup": "%matplotlib inline\nimport matplotlib\nimport matplotlib.pyplot as plt\nimport numpy as np\n"
                 "Z = np.outer(np.arange(20.0), np.arange(30.0))",
        "colorbar": "fig, ax = plt.subplots()\nim = ax.imshow(Z, cmap=matplotlib.cm.RdBu)\n"
                    "im.set_interpolation('bilinear')\ncb = fig.colorbar(im, ax=ax)",
        "contour": "fig, ax = plt.subplots()\ncnt = ax.contour(Z, cmap=matplotlib.cm.RdBu)",
        "lines": "fig = plt.figure()\nax = fig.add_subplot(1, 1, 1)\nax.plot([1, 2, 3])\nfig.tight_layout()",
    }
    k = Kernel(ws.root)
    try:
        k.ok("%load_ext txgit")
        for code in cells.values():
            assert k.run(code, settle=False).status == "ok"
        k.settle()
    finally:
        k.shutdown()
    counts = {f"cell [{i}]": label for i, label in enumerate(cells, 2)}  # (the extension's cell is [1])
    commits = {counts[c.summary.split(":", 1)[0]]: c.id for c in ws.log() if c.summary.split(":", 1)[0] in counts}
    assert not {"cb", "im"} & serialized(ws, commits["contour"])
    assert not {"cb", "im", "cnt"} & serialized(ws, commits["lines"])
    assert {"fig", "ax"} <= serialized(ws, commits["lines"])
    assert ws.state(commits["lines"]).meta["format"] == 3
    fresh = Kernel(ws.root)
    try:
        fresh.ok("%load_ext txgit")
        assert "error" not in fresh.ok(f"%txgit checkout {commits['lines']}").stderr
        checks = {
            "cb.ax.figure is im.axes.figure and cb.mappable is im": True,
            "len(cb.ax.figure.axes)": 2,
            "cb.ax.figure is not fig and cnt.axes.figure is not fig and cnt.axes.figure is not cb.ax.figure": True,
            "ax.figure is fig and len(fig.axes) == 1": True,
            "[float(y) for y in ax.lines[0].get_ydata()]": [1.0, 2.0, 3.0],
            "im.get_interpolation()": "bilinear",
        }
        for expr, want in checks.items():
            assert fresh.value(expr) == want, expr
        assert "error" not in fresh.ok(f"%txgit checkout {commits['colorbar']}").stderr
        assert fresh.value("cb.ax.figure is fig and im.axes is ax and 'cnt' not in dir()")
    finally:
        fresh.shutdown()


def test_history_verbs_on_commits_whose_groups_list_rebound_names(ws, session, run_txgit, tmp_path):
    """diff, show, log, fsck, gc, merge, push and clone of such commits: the records are read as they
    are, the kept group stays reachable, and a clone restores each name's own value."""
    from servers import git_daemon, init_bare

    first = run(session, COLORBAR + INLINE)
    second = run(session, "fig = plt.figure()\nfig.suptitle('new')" + INLINE)
    diff = ws.diff(first, second)
    assert sorted(diff.changed) == ["fig"] and not diff.added and not diff.removed
    for args in (["diff", first, second], ["show", second], ["show", second, "cb"], ["log"], ["fsck"]):
        proc = run_txgit(*args, cwd=ws.root)
        assert proc.returncode == 0 and not proc.stderr, (args, proc.stderr)
    shown = run_txgit("diff", first, second, cwd=ws.root).stdout
    assert re.search(r"^\s*~ fig\b", shown, re.M) and not re.search(r"^\s*[~+-] (cb|im|ax)\b", shown, re.M), shown
    # a branch that changes another name merges on records, the kept group with it
    ws.create_branch("side", first)
    side = NamespaceSession(ws, session_namespace(), kind="test")
    side.checkout("side")
    run(side, "n = 5")
    side.close()
    ws.checkout("main")  # (HEAD only: the side session had moved it)
    merged = ws.merge("side")
    assert merged.status == "merged"
    assert ws.state().variables["cb"] == ws.state(second).variables["cb"]
    ws.gc(grace_seconds=0)
    assert ws.fsck().ok
    for rev in (second, "HEAD"):
        assert_old_colorbar(fresh(ws, rev))
    base = tmp_path / "served"
    base.mkdir()
    init_bare(base / "proj.git")
    with git_daemon(base) as url:
        ws.remotes.add("origin", f"{url}/proj.git", storage=str(tmp_path / "blobs"))
        ws.push("origin", "main")
        clone = Workspace.clone(f"{url}/proj.git", tmp_path / "clone")
    assert clone.fsck().ok
    ns = fresh(clone, "main", trust=True)
    assert_old_colorbar(ns)
    assert ns["fig"]._suptitle.get_text() == "new" and ns["n"] == 5
    ns = fresh(clone, first, trust=True)
    assert ns["cb"].ax.figure is ns["fig"]


def test_status_says_only_the_rebound_name_changed(ws, session):
    """With auto-commit off, status compares as the next commit would serialize: ``cb`` and ``im`` are
    not pickled again (a figure pickles to other bytes each time), so they are not called modified."""
    run(session, COLORBAR + INLINE)
    session.set_auto(False)
    run(session, "fig, ax = plt.subplots()" + INLINE)
    assert session.status().modified == ["ax", "fig"]
    assert not {"cb", "im"} & set(session.commit("rebound").serialized_names)


def test_values_restored_from_a_kept_group_and_only_read_are_unchanged(ws, session):
    """A fresh session checks out the commit after the rebind and a cell reads ``cb``: ``cb`` and ``im``
    are pickled again (a colorbar has no cheap token) but recorded with the group they came from."""
    run(session, COLORBAR + INLINE)
    second = run(session, "fig = plt.figure()" + INLINE)
    other = NamespaceSession(ws, session_namespace(), kind="test")
    other.checkout(second)
    third = run(other, "label = cb.ax.get_ylabel()")
    assert third != second and "cb" in serialized(ws, third)
    assert ws.state(third).variables["cb"] == ws.state(second).variables["cb"]
    assert ws.state(third).variables["im"] == ws.state(second).variables["im"]
    other.close()


def test_the_old_value_of_a_rebound_name_is_not_held_while_the_cell_runs(ws, session):
    """Whether the cell could reach the old value is decided before it runs: nothing holds that value
    meanwhile, so ``big = None`` frees it at once, as without txgit (a first version held it)."""
    run(session, "import weakref\nclass Big:\n    pass\nbig = Big()\nref = weakref.ref(big)")
    run(session, "big = None\nfreed = ref() is None")
    assert session.namespace["freed"] is True
