"""Change tracking and NamespaceSession on plain namespaces (no kernel): every indirect
mutation must reach the commit, proven by loading the committed value back."""

from __future__ import annotations

import numpy as np
import pytest

from txgit.errors import MergeInProgress
from conftest import session_namespace

from txgit.sessions import NamespaceSession, analyze_code, reach


def run(session: NamespaceSession, code: str, **kw):
    """Run ``code`` in the session's namespace as a cell would."""
    session.before_cell(code)
    error = None
    try:
        exec(code, session.namespace)
    except Exception as e:  # the cell's error goes to the session, as in a kernel
        error = e
    return session.after_cell(error=error, **kw)


@pytest.fixture
def sess(ws):
    return NamespaceSession(ws, session_namespace(), kind="test")


def test_analyze_reads_writes_and_deletes():
    n = analyze_code("x = f(y)\ndel z\nimport numpy as np\nfrom os import path\nfor i in r: pass")
    assert n.reads == {"f", "y", "r"} and {"x", "z", "np", "path", "i"} <= n.writes and n.opaque is None


@pytest.mark.parametrize("code", ["exec('a = 1')", "eval('a')", "globals()['a'] = 1", "vars()['a'] = 1",
                                  "from os.path import *", "get_ipython().run_line_magic('run', 'script.py')",
                                  "get_ipython().run_line_magic('timeit', '-n1 x = (')",
                                  "get_ipython().run_line_magic('timeit', '-z x')", "def broken(:"])
def test_analyze_falls_back_to_everything(code):
    assert analyze_code(code).opaque is not None


@pytest.mark.parametrize("code, reads, writes", [
    ("get_ipython().run_line_magic('matplotlib', 'inline')", set(), set()),
    ("get_ipython().run_line_magic('config', \"InlineBackend.figure_format='svg'\")\nimport numpy", set(), {"numpy"}),
    ("get_ipython().run_line_magic('time', 'y = f(x)')", {"f", "x"}, {"y"}),
    ("get_ipython().run_line_magic('timeit', '-n1 -r 1 -q df1 + df2')", {"df1", "df2"}, set()),
    ("get_ipython().run_cell_magic('time', '', 'a = b\\nc.append(1)\\n')", {"b", "c"}, {"a"}),
])
def test_magics_that_change_no_variable_or_run_plain_code_are_analyzed(code, reads, writes):
    """A notebook's `%matplotlib inline` or `%timeit` made the cell opaque: every variable was
    serialized again (Lecture-4-Matplotlib's `%matplotlib inline` late in the notebook: 0.5 s)."""
    n = analyze_code(code)
    assert n.opaque is None and n.reads == reads and n.writes == writes and n.magics


def test_reach_follows_session_functions_transitively():
    ns = session_namespace(
        "data = []\nlog = {}\nunused = 1\n"
        "def inner():\n    data.append(1)\n"
        "def outer():\n    inner()\n    return [log for _ in range(1)]\n"
        "class Box:\n    def put(self):\n        data.append(2)\n"
        "box = Box()\n"
    )
    assert reach({"outer"}, ns) == {"inner", "data", "log"}
    assert reach({"box"}, ns) == {"data"}
    assert "unused" not in reach({"outer", "box"}, ns)


def test_commit_serializes_only_what_a_cell_touched(sess):
    run(sess, "a = [1]\nb = [2]\nc = 3")
    out = run(sess, "b.append(5)")
    assert out.commit.serialized_names == ["b"]
    assert sess.workspace.load("b") == [2, 5] and sess.workspace.load("a") == [1]


@pytest.mark.parametrize("setup, cell, name, expected", [
    # a function that mutates a global it names
    ("log = []\ndef note(x):\n    log.append(x)\n", "note(7)", "log", [7]),
    # through a function calling a function
    ("log = []\ndef inner(x):\n    log.append(x)\ndef outer():\n    inner(1)\n", "outer()", "log", [1]),
    # a global statement
    ("n = 0\ndef bump():\n    global n\n    n += 1\n", "bump()", "n", 1),
    # a method of a session class
    ("seen = set()\nclass T:\n    def mark(self):\n        seen.add(1)\nt = T()\n", "t.mark()", "seen", {1}),
    # exec and globals() writes
    ("x = 1\n", "exec('x = 2')", "x", 2),
    ("x = 1\n", "globals()['x'] = 3", "x", 3),
    # attribute of an object held in a dict
    ("class P:\n    pass\np = P()\np.v = 1\nreg = {'p': p}\n", "reg['p'].v = 9", "p", 9),
])
def test_indirect_mutation_reaches_the_commit(sess, setup, cell, name, expected):
    run(sess, setup)
    first = sess.workspace.head().id
    run(sess, cell)
    value = sess.workspace.load(name)
    assert (value.v if name == "p" else value) == expected
    assert sess.workspace.head().id != first


def test_alias_created_after_a_commit_is_grouped(sess):
    run(sess, "a = [1, 2]")
    run(sess, "b = a")          # b is new; a was committed alone before
    run(sess, "b.append(3)")    # mutation through the alias
    rev = sess.workspace.head().id
    ns = session_namespace()
    sess.workspace.checkout(rev, ns, force=True)
    assert ns["a"] == [1, 2, 3] and ns["b"] is ns["a"]


def test_write_through_a_numpy_view_reaches_its_base(sess):
    run(sess, "import numpy as np\na = np.zeros(10)")
    run(sess, "b = a[2:5]")   # a view: b's memory is a's
    run(sess, "b[:] = 7")     # names only b
    assert sess.workspace.load("a")[3] == 7 and sess.workspace.load("a")[0] == 0


def test_optimizer_step_reaches_the_model(sess):
    """``opt.step()`` names only the optimizer; the model whose parameters it holds changes."""
    torch = pytest.importorskip("torch", reason="torch is optional (pip install torch)")
    run(sess, "import torch\nmodel = torch.nn.Linear(2, 1)\nopt = torch.optim.SGD(model.parameters(), lr=1.0)")
    run(sess, "model(torch.ones(1, 2)).sum().backward()")
    run(sess, "opt.step()")
    assert torch.equal(sess.workspace.load("model").bias, sess.namespace["model"].bias)


def test_del_removes_the_name_from_the_commit(sess):
    run(sess, "a = 1\nb = 2")
    run(sess, "del a")
    assert set(sess.workspace.state().variables) == {"b"}


def test_failed_cell_rolls_back_touched_names(sess):
    run(sess, "lst = [1, 2]\nalias = lst\nother = 'x'")
    head = sess.workspace.head().id
    out = run(sess, "lst.append(3)\nnew = 1\nraise ValueError('boom')")
    ns = sess.namespace
    assert ns["lst"] == [1, 2] and ns["alias"] is ns["lst"] and "new" not in ns
    assert out.rollback.restored == ["alias", "lst"] and out.rollback.removed == ["new"]
    assert sess.workspace.head().id == head  # no commit for a failed cell


def test_rollback_off_keeps_partial_effects(sess):
    run(sess, "lst = [1]")
    sess.atomic = False
    run(sess, "lst.append(2)\nraise ValueError")
    assert sess.namespace["lst"] == [1, 2] and sess.workspace.load("lst") == [1, 2]


def test_opaque_cell_rolls_back_everything(sess):
    run(sess, "a = 1\nb = [1]")
    run(sess, "exec('a = 5; b.append(2)')\nraise RuntimeError")
    assert sess.namespace["a"] == 1 and sess.namespace["b"] == [1]


def test_commit_records_the_cell(sess):
    run(sess, "x = 41\ny = x + 1", execution_count=3)
    state = sess.workspace.state()
    assert state.meta["cell"]["execution_count"] == 3 and state.meta["cell"]["writes"] == ["x", "y"]
    commit = sess.workspace.history.resolve("HEAD")
    assert sess.workspace.history.read_file(commit, "code/cell-3.py") == b"x = 41\ny = x + 1"


def test_hidden_names_are_never_committed_nor_removed(ws):
    ns = session_namespace()
    ns.update(In=[""], Out={}, _i1="x", _1=5)
    s = NamespaceSession(ws, ns, hidden=lambda n: n in ("In", "Out") or n.startswith("_"))
    run(s, "v = 1")
    assert set(ws.state().variables) == {"v"}
    run(s, "v = 2")
    s.checkout("HEAD~1")
    assert ns["v"] == 1 and ns["In"] == [""] and ns["_1"] == 5


def test_a_branch_moved_by_another_session_is_merged_not_overwritten(sess, ws):
    """Another session committed on our branch: our next commit must not undo what it did. Ours is
    committed on our base and the branch merged into it; where both changed a variable, that is a
    conflict, resolved here by setting it again."""
    run(sess, "a = [1]\nb = 2\nc = 'kept'")
    base = sess.base
    other = NamespaceSession(ws, session_namespace("a = 'other'\nb = 'theirs'\nzzz = 1"))
    other.commit("someone else")  # a fresh session: it carries c, which it never loaded
    theirs = ws.head().id
    with pytest.raises(MergeInProgress, match="unresolved: b"):
        run(sess, "b = 3")
    # what the other session changed and we did not is here now; the conflict keeps ours
    assert sess.namespace["a"] == "other" and sess.namespace["zzz"] == 1 and sess.namespace["b"] == 3
    assert ws.head().id == theirs  # nothing moved the branch while the conflict stands
    ours = ws.merge_in_progress().ours
    assert ws.resolve(ours).parents == [base] and ws.load("b", ours) == 3
    run(sess, "b = b + 1")  # setting the variable resolves the conflict: the merge commit follows
    merge = ws.head()
    assert sorted(merge.parents) == sorted([theirs, ours]) and ws.merge_in_progress() is None
    assert {n: ws.load(n) for n in ws.state().variables} == {"a": "other", "b": 4, "c": "kept", "zzz": 1}


# -- background auto-commits (what a kernel does) ------------------------------------------------

@pytest.fixture
def bg(ws):
    s = NamespaceSession(ws, session_namespace("import numpy as np"), kind="test")
    s.background = True
    return s


def test_background_commit_is_the_state_when_the_cell_ended(bg, ws):
    """The next cell mutates the array in place while the writer still works: the commit
    must hold the values the cell left (its bytes were copied), and the next commit the new ones."""
    run(bg, "big = np.arange(3_000_000, dtype=np.float64)\nsmall = [1, 2]")
    first = run(bg, "big[::2] = -1.0\nsmall.append(3)")  # runs while the first commit may be in flight
    assert first.commit is None  # written in the background
    result = bg.flush()
    assert result is not None and result.info.id == ws.head().id and bg.base == ws.head().id
    log = ws.log()
    import numpy as np

    assert np.array_equal(ws.load("big", log[1].id), np.arange(3_000_000, dtype=np.float64))
    assert ws.load("small", log[1].id) == [1, 2]
    assert ws.load("big")[::2].max() == -1.0 and ws.load("small") == [1, 2, 3]
    assert [c.summary for c in log[:2]] == ["cell: big[::2] = -1.0", "cell: big = np.arange(3_000_000, dtype=np.float64)"]


def test_failed_background_write_is_reported_and_its_cells_go_into_the_next_commit(bg, ws, capsys):
    import shutil

    run(bg, "x = 1")
    bg.flush()
    objects = ws.dir / "objects"
    moved = ws.dir / "objects-away"
    objects.rename(moved)
    objects.write_text("not a folder")  # every blob write fails
    try:
        run(bg, "y = np.ones(100_000)")
        assert bg.flush() is None
        assert "auto-commit failed" in capsys.readouterr().err
        assert "y" not in ws.state().variables and bg.full_next and len(bg.pending) == 1
    finally:
        objects.unlink()
        moved.rename(objects)
    out = run(bg, "z = 2")
    assert out.commit is None and bg.flush() is not None
    state = ws.state()
    assert {"x", "y", "z"} <= set(state.variables) and ws.load("y").sum() == 100_000
    cells = [c["code"] for c in __import__("json").loads(
        ws.history.read_file(ws.history.resolve("HEAD"), "code/cells.json"))]
    assert cells == ["y = np.ones(100_000)", "z = 2"]
    shutil.rmtree(moved, ignore_errors=True)


def _hold_first_write(ws, fail: bool = False):
    """Make the first background write wait (and then fail, if ``fail``) until the returned event is set."""
    import threading

    gate, real, calls = threading.Event(), ws.finish_commit, []

    def finish(prepared, **kw):
        calls.append(prepared)
        if len(calls) == 1:
            assert gate.wait(30)
            if fail:
                raise OSError("disk full")
        return real(prepared, **kw)

    ws.finish_commit = finish
    return gate, calls


def _held(calls, timeout: float = 30.0) -> bool:
    """The writer thread reached the held first write (it may start a moment after the cell ends)."""
    import time

    deadline = time.monotonic() + timeout
    while not calls and time.monotonic() < deadline:
        time.sleep(0.005)
    return len(calls) == 1


def test_cells_chain_onto_a_commit_still_being_written(bg, ws):
    """Cells that end while the previous commit is still written do not wait for it: their commits
    are queued on it and written in order, each with the state its own cell left."""
    gate, calls = _hold_first_write(ws)
    run(bg, "big = np.arange(1_000_000, dtype=np.float64)\nlog = [1]")  # a deferred (large, new) stream
    run(bg, "log.append(2)")          # carries big over from the commit in flight
    run(bg, "big[:10] = -1.0\nn = 3")
    assert _held(calls) and ws.head() is None  # nothing written yet, nobody waited
    gate.set()
    result = bg.flush()
    log = ws.log()
    assert len(log) == 3 and result.info.id == log[0].id == bg.base
    assert ws.load("log", log[2].id) == [1] and ws.load("log", log[1].id) == [1, 2]
    assert ws.state(log[1].id).variables["big"].group == ws.state(log[2].id).variables["big"].group
    assert ws.load("big", log[1].id)[0] == 0 and ws.load("big")[0] == -1.0 and ws.load("n") == 3
    assert [c.summary for c in log] == ["cell: big[:10] = -1.0", "cell: log.append(2)",
                                        "cell: big = np.arange(1_000_000, dtype=np.float64)"]


def _groups_consistent(state) -> bool:
    """Every group a record names lists that name, and a live name of a group points elsewhere only in a
    state of storage format 3 (the name was rebound and the others kept the group)."""
    for name, rec in state.variables.items():
        if rec.group is not None:
            names = state.groups[rec.group].names
            if name not in names:
                return False
            if state.meta["format"] < 3 and any(state.variables[m].group != rec.group for m in names
                                                if m in state.variables):
                return False
    return True


def test_a_chained_commit_redoes_whole_groups_still_being_hashed(bg, ws):
    """A commit chained onto one whose two-name group is still being hashed (no group id yet) must
    pickle the whole group again when it redoes one of its names, and so must a commit chained on that."""
    import numpy as np

    gate, calls = _hold_first_write(ws)
    run(bg, "big = np.arange(1_000_000, dtype=np.float64)\nholder = [big]")  # one deferred group, two names
    run(bg, "n = 1")                # carries the group over, still unhashed
    run(bg, "big = big[:3] * 0")     # holder still holds the old big, read here: it must be pickled again too
    assert _held(calls) and ws.head() is None  # all chained: nobody waited for the held write
    gate.set()
    bg.flush()
    log = ws.log()
    assert len(log) == 3 and all(_groups_consistent(ws.state(c.id)) for c in log)
    head = ws.state()
    assert head.variables["big"].group != head.variables["holder"].group
    assert "holder" in head.meta["serialized"]
    fresh = NamespaceSession(ws, session_namespace(), kind="test")
    fresh.checkout(log[0].id, force=True)
    assert np.array_equal(fresh.namespace["big"], np.zeros(3))
    assert np.array_equal(fresh.namespace["holder"][0], np.arange(1_000_000, dtype=np.float64))
    fresh.checkout(log[1].id, force=True)
    assert fresh.namespace["holder"][0] is fresh.namespace["big"]  # the aliasing of the first commit


def test_a_chained_commit_that_rebinds_a_name_of_a_group_still_being_hashed_keeps_the_others(bg, ws):
    """As above, but the cell binds ``big`` anew without reading it: ``holder`` did not change and keeps
    the group (once hashed), which still lists ``big``; each name restores its own value."""
    import numpy as np

    gate, calls = _hold_first_write(ws)
    run(bg, "big = np.arange(1_000_000, dtype=np.float64)\nholder = [big]")
    run(bg, "n = 1")
    run(bg, "big = np.zeros(3)")
    assert _held(calls) and ws.head() is None
    gate.set()
    bg.flush()
    log = ws.log()
    assert len(log) == 3 and all(_groups_consistent(ws.state(c.id)) for c in log)
    head, first = ws.state(), ws.state(log[2].id)
    assert "holder" not in head.meta["serialized"] and head.variables["holder"] == first.variables["holder"]
    assert head.meta["format"] == 3 and "big" in head.groups[head.variables["holder"].group].names
    fresh = NamespaceSession(ws, session_namespace(), kind="test")
    fresh.checkout(log[0].id, force=True)
    assert np.array_equal(fresh.namespace["big"], np.zeros(3))
    assert np.array_equal(fresh.namespace["holder"][0], np.arange(1_000_000, dtype=np.float64))
    fresh.checkout(log[1].id, force=True)
    assert fresh.namespace["holder"][0] is fresh.namespace["big"]


def test_a_stream_still_being_written_is_not_copied_again_when_only_read(bg, ws):
    """The next cell reads an array whose commit is still being written: its commit does not
    serialize it again (its token says it did not change), nor copy or hash it; a cell that changes
    the array gets a copy of its own."""
    import numpy as np

    gate, calls = _hold_first_write(ws)
    run(bg, "big = np.arange(1_000_000, dtype=np.float64)")
    run(bg, "total = float(big.sum())")  # reads big: left as it was, so not serialized
    run(bg, "big[0] = -1.0")
    assert _held(calls)
    first, second, third = [calls[0]] + [p for p, _ in bg._writer._queue]
    assert "big" not in second.snap.variables and not second.snap.deferred
    copies = [next(iter(p.snap.deferred[0].copies.values())) for p in (first, third)]
    assert copies[1] is not copies[0]
    gate.set()
    bg.flush()
    log = ws.log()
    assert ws.state(log[1].id).variables["big"].group == ws.state(log[2].id).variables["big"].group
    assert ws.load("big", log[1].id)[0] == 0 and ws.load("big")[0] == -1.0 and ws.load("total") == float(np.arange(1_000_000).sum())


def test_a_failed_write_drops_the_commits_chained_on_it_and_keeps_their_cells(bg, ws, capsys):
    gate, _ = _hold_first_write(ws, fail=True)
    run(bg, "a = [1]")
    run(bg, "a.append(2)")
    run(bg, "b = 5")
    gate.set()
    assert bg.flush() is None and "disk full" in capsys.readouterr().err
    assert ws.head() is None and len(bg.pending) == 3 and bg.full_next
    run(bg, "c = 1")
    bg.flush()
    cells = [c["code"] for c in __import__("json").loads(ws.history.read_file(ws.history.resolve("HEAD"), "code/cells.json"))]
    assert cells == ["a = [1]", "a.append(2)", "b = 5", "c = 1"] and ws.load("a") == [1, 2] and len(ws.log()) == 1


def test_a_value_only_read_while_its_commit_is_written_is_not_an_output(bg, ws):
    """A cell that reads a large value whose commit is still being written serializes it again, and
    neither side is hashed yet: the same content is still recognised (it is not recorded as made by
    that cell, which a reuse would then load again); a change made meanwhile still is an output."""
    import json

    run(bg, "x = 1")
    bg.flush()  # the first commit takes everything: its outputs are not known
    gate, calls = _hold_first_write(ws)
    run(bg, "big = np.arange(1_000_000, dtype=np.float64)")
    run(bg, "total = float(big.sum())")       # only reads big
    run(bg, "big[0] = 7.0")                     # changes it
    gate.set()
    bg.flush()
    outputs = []
    for info in ws.log()[::-1][1:]:
        cells = json.loads(ws.history.read_file(ws.history.resolve(info.id), "code/cells.json"))
        outputs.append(cells[0]["op"].get("outputs", []))
    assert len(calls) == 3 and outputs == [["big"], ["total"], ["big"]]
    assert ws.load("big")[0] == 7.0 and ws.load("big", ws.log()[2].id)[0] == 0.0


def test_status_and_checkout_wait_for_the_background_write(bg, ws):
    run(bg, "a = np.zeros(200_000)")
    assert bg.status().clean and ws.head() is not None  # status flushed first
    run(bg, "a[0] = 5")
    first = ws.log()[-1].id
    bg.checkout(first)
    assert bg.namespace["a"][0] == 0 and len(ws.log(all_refs=True)) == 2


# -- string columns: the pickle of an object array is reused only while provably unchanged --------

@pytest.mark.parametrize("mutate, expect", [
    ("names[7] = 'changed'", "changed"),                      # an element replaced in place
    ("names[:] = names[::-1]", "r9999"),                      # all pointers moved
    ("frame.loc[7, 'name'] = 'changed'", "changed"),          # through pandas
])
def test_object_array_changes_are_committed(sess, mutate, expect):
    run(sess, "import numpy as np\nimport pandas as pd\n"
              "names = np.array(['r%d' % i for i in range(10_000)], dtype=object)\n"
              "frame = pd.DataFrame({'name': names.copy()})")
    run(sess, "n = len(names) + len(frame)")  # only reads: the cached pickles are reused
    run(sess, mutate)
    ws = sess.workspace
    got = ws.load("frame")["name"][7] if "frame" in mutate else ws.load("names")[0 if "::-1" in mutate else 7]
    assert got == expect


def test_object_array_of_mutable_elements_is_never_cached(sess):
    run(sess, "import numpy as np\ncells = np.empty(5000, dtype=object)\nfor i in range(5000):\n    cells[i] = [i]")
    run(sess, "cells[3].append('x')")  # same pointers, changed element
    assert sess.workspace.load("cells")[3] == [3, "x"]


def test_string_arrays_round_trip_exactly_also_in_safe_mode(sess):
    run(sess, "import numpy as np\nimport pandas as pd\nclass Tag(str):\n    pass\n"
              "odd = np.array(['a\\x00b', 'é\\ud800', ''] * 2000, dtype=object).reshape(200, 30, order='F')\n"
              "tags = np.array([Tag('t')] * 5000, dtype=object)\n"
              "frame = pd.DataFrame({'city': np.random.default_rng(0).choice(['ber', 'par'], 10_000),\n"
              "                      'ts': pd.date_range('2024-01-01', periods=10_000, freq='min')})")
    ws = sess.workspace
    odd = ws.load("odd")
    assert odd.shape == (200, 30) and odd.flags.f_contiguous and (odd == sess.namespace["odd"]).all()
    assert type(ws.load("tags")[0]).__name__ == "Tag"  # a str subclass stays one
    back = ws.load("frame", safe=True)  # txgit's own array encodings pass the restricted loader
    assert back.equals(sess.namespace["frame"]) and list(back.dtypes) == list(sess.namespace["frame"].dtypes)


def test_a_string_column_of_few_values_loads_as_one_object_per_value(sess):
    run(sess, "import numpy as np\nimport pandas as pd\nrng = np.random.default_rng(0)\n"
              # dtype=object: with pyarrow installed pandas would make it an Arrow string column
              "frame = pd.DataFrame({'city': pd.Series(rng.choice(['ber', 'par', '\u00e9\\ud800'], 50_000),\n"
              "                                        dtype=object)})\n"
              "grid = np.array(['x', 'y', 'z'] * 4000, dtype=object).reshape(200, 60, order='F')")
    ws, ns = sess.workspace, sess.namespace
    back, safe_back, grid = ws.load("frame"), ws.load("frame", safe=True), ws.load("grid")
    assert back.equals(ns["frame"]) and safe_back.equals(ns["frame"]) and list(back.dtypes) == list(ns["frame"].dtypes)
    assert len({id(v) for v in back["city"].to_numpy(dtype=object)}) == 3  # codes: one object per distinct value
    assert grid.flags.f_contiguous and (grid == ns["grid"]).all()
    run(sess, "frame.loc[3, 'city'] = 'lon'")
    assert ws.load("frame")["city"][3] == "lon" and ws.load("frame")["city"][4] == ns["frame"]["city"][4]


def test_a_restored_string_array_is_not_encoded_again(sess, monkeypatch):
    """Loading a string column remembers its encoding: committing it unchanged after a checkout (or
    a reused cell) costs no pass over its items; a change made after the restore is still committed."""
    from txgit.state import pickling

    run(sess, "import numpy as np\nnames = np.array(['r%d' % i for i in range(10_000)], dtype=object)\n"
              "mixed = np.array([1, 'a', None] * 5000, dtype=object)")
    first = sess.workspace.head().id
    run(sess, "names = names[::-1].copy()\nmixed = mixed[::-1].copy()")
    pickling.object_arrays.clear()
    encoded = []
    for encoder in ("_encode_str_items", "_encode_str_codes"):
        real = getattr(pickling, encoder)
        monkeypatch.setattr(pickling, encoder, lambda *a, _real=real, _n=encoder: encoded.append(_n) or _real(*a))
    # --force: else the checkout first pickles the values it replaces, to see that they are as committed
    # (they may have changed with no cell run), which encodes the reversed arrays: the clear dropped them
    sess.checkout(first, force=True)
    run(sess, "n = len(names) + len(mixed)")  # reads both: they are serialized again, from the cache
    assert encoded == [] and sess.workspace.load("names")[0] == "r0"
    assert {v: r.group for v, r in sess.workspace.state().variables.items()}["names"] == \
        sess.workspace.state(first).variables["names"].group  # recorded as the group it came from
    run(sess, "names[0] = 'changed'\nmixed[1] = 'b'")
    assert sess.workspace.load("names")[0] == "changed" and sess.workspace.load("mixed")[1] == "b"


def test_datetime_arrays_round_trip(sess):
    run(sess, "import numpy as np\nimport pandas as pd\n"
              "ts = pd.DataFrame({'t': pd.date_range('2024-01-01', periods=50_000, freq='min', tz='Europe/Berlin'),\n"
              "                   'd': pd.to_timedelta(np.arange(50_000), unit='s'),\n"
              "                   'n': pd.date_range('2024-01-01', periods=50_000, freq='s').values})\n"
              "raw = np.arange(20_000).astype('datetime64[ns]').reshape(100, 200).T")  # F-ordered
    ws = sess.workspace
    back, raw = ws.load("ts"), ws.load("raw")
    assert back.equals(sess.namespace["ts"]) and list(back.dtypes) == list(sess.namespace["ts"].dtypes)
    assert raw.dtype == np.dtype("datetime64[ns]") and (raw == sess.namespace["raw"]).all()


@pytest.mark.parametrize("cell", [
    "x = 1", "x = (a\n%b)", "s = '''\n!not a shell command\n'''", "x = 1  # %not a magic", "lambda: ...",
    "%time x", "!ls", "x?", "a = !ls", "%%time\nx = 1", "/f 1", ",f a", "  x = 1\n  y = 2",
    "In [1]: x", ">>> x = 1", "x = 1\n... + 1", "x = [\n  ...\n]", "def f(:",
])
def test_cells_skip_ipython_transforms_only_when_those_change_nothing(cell):
    """A cell taken as plain Python (no transform_cell) must be what IPython runs: same AST."""
    import ast

    from IPython.core.inputtransformer2 import TransformerManager

    from txgit.sessions.ipython import plain_python

    code, tree = plain_python(cell)
    if code is not None:
        assert ast.dump(tree) == ast.dump(ast.parse(TransformerManager().transform_cell(cell)))
    else:  # only IPython syntax, prompts and broken code take the slow path
        assert any(c in cell for c in "%!?/,") or cell.startswith(" ") or "In [" in cell or ">>>" in cell \
            or "..." in cell or "def f(:" in cell


def test_background_writer_clears_git_locks_left_by_a_killed_writer(bg, ws):
    """The cell takes the workspace lock; the writer thread, not the cell, removes stale git locks."""
    from pathlib import Path

    run(bg, "a = 1")
    bg.flush()
    repo = Path(ws.history.repo.path)
    for stale in ("refs/heads/main.lock", "HEAD.lock", "logs/refs/heads/main.lock"):
        (repo / stale).write_text("")
    run(bg, "a = 2")
    assert bg.flush() is not None and ws.load("a") == 2 and not list(repo.rglob("*.lock"))


def test_one_writer_thread_serves_a_sessions_background_commits(bg, ws):
    import threading

    before = {t.ident for t in threading.enumerate()}
    for i in range(5):
        run(bg, f"a = {i}")
        bg.flush()
    started = [t for t in threading.enumerate() if t.ident not in before and t.name.startswith("txgit-writer")]
    assert len(started) == 1 and len(ws.log()) == 5 and ws.load("a") == 4


def test_commits_of_an_array_changed_cell_after_cell_keep_each_cells_values(bg, ws):
    """Each commit's copy may land in a buffer an earlier, written commit used: every commit still
    holds the values its own cell left, whether or not the writer caught up in between."""
    run(bg, "a = np.zeros(300_000)")
    for i in range(1, 6):
        run(bg, f"a[:] = {i}.0")
        if i % 2:
            bg.flush()
    bg.flush()
    log = ws.log()
    assert [float(ws.load("a", c.id)[-1]) for c in log] == [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]


def test_a_failed_cell_is_rolled_back_while_the_first_background_commit_is_written(bg, ws):
    """The session's first commit may still be in the writer's hands when the next cell fails: the
    failed cell must be rolled back to it, not committed (issue 17's first defect)."""
    run(bg, "x = 1")
    run(bg, "import json")  # chained on the first commit, which may not be written yet
    out = run(bg, "x = 2\nraise ValueError('boom')")
    assert out.rollback is not None and out.rollback.restored == ["x"]
    bg.flush()
    assert bg.namespace["x"] == 1 and ws.load("x") == 1
    assert all("raise ValueError" not in c.message for c in ws.log())
