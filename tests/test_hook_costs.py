"""What txgit's hooks do around a cell, counted (issue 17: the tail of per-cell hook times on real
notebooks): the same work is not done twice, and doing less never changes what is committed.

Costs are counted (objects visited, values pickled), never timed: the machine is shared.
"""

from __future__ import annotations

import importlib
import textwrap

import numpy as np
import pytest
from conftest import session_namespace

from txgit.sessions.session import NamespaceSession
from txgit.state.identity import identity
from txgit.state.snapshot import shared_ids, sharing_groups

snapshot = importlib.import_module("txgit.state.snapshot")  # the module (txgit.state exports a function so named)

# A figure-like graph: a root holding many children that point back at it (``fig`` and ``ax`` of
# ``fig, ax = plt.subplots()`` reach the same thousands of objects).
FIGURE = textwrap.dedent("""
    class Node:
        def __init__(self, parent=None):
            self.parent = parent
            self.children = []
            self.style = {"color": "k", "width": [1.0]}
    fig = Node()
    for _ in range(300):
        child = Node(fig)
        fig.children.append(child)
        for _ in range(3):
            child.children.append(Node(child))
    ax = fig.children[0]
    del child
""")


class CountingKinds(dict):
    """Stands in for the walk's per-type table and counts the objects the walk looks at."""

    def __init__(self, real: dict) -> None:
        super().__init__()
        self.real = real
        self.looked = 0

    def __getitem__(self, t: type) -> int:
        self.looked += 1
        return self.real[t]


def test_values_that_share_one_graph_are_walked_once_per_cell(ws, monkeypatch):
    """``fig`` and ``ax`` reach the same objects: the cell that made them walks them once (the walk
    for sharing cost as much as pickling them, once per name)."""
    ns = session_namespace()
    s = NamespaceSession(ws, ns, kind="test")
    s.before_cell("x = 1")
    exec("x = 1", ns)
    s.after_cell()
    real = snapshot._walk_kinds
    kinds = CountingKinds(real)
    monkeypatch.setattr(snapshot, "_walk_kinds", kinds)
    s.before_cell(FIGURE)
    exec(FIGURE, ns)
    s.after_cell()
    alone = CountingKinds(real)
    monkeypatch.setattr(snapshot, "_walk_kinds", alone)
    shared_ids(ns["fig"], ns)
    # the commit walks the figure's objects once, plus a few look-ups for what it meets again
    assert kinds.looked < 1.3 * alone.looked, (kinds.looked, alone.looked)
    groups = {n: r.group for n, r in ws.state().variables.items() if r.group}
    assert groups["fig"] == groups["ax"] != groups["x"]
    s.close()


GRAPHS = textwrap.dedent("""
    import collections
    import numpy as np
    shared = [1, 2]
    pair = (shared, 3)           # a tuple has no id of its own here: what it holds does
    holder = {"p": pair}
    other = [pair]
    base = np.arange(10.0)
    view = base[2:5]
    view2 = base[5:]
    def make(items):
        def inner():
            return items
        return inner
    closure = make(shared)
    objs = np.empty(2, dtype=object); objs[0] = {"x": shared}; objs[1] = 7
    cyc = []; cyc.append(cyc)
    lone = {"a": [1]}
    dq = collections.deque([lone["a"]])
    tup_of_tup = ((view2,),)
    alone = [9]
""")


def _groups(shared: dict) -> list[list[str]]:
    return sorted(sharing_groups(shared, shared))


@pytest.mark.parametrize("order", ["sorted", "reversed"])
def test_one_walk_for_several_values_groups_them_as_separate_walks_do(order):
    ns = session_namespace(GRAPHS)
    names = sorted(n for n in ns if not n.startswith("__") and n not in ("np", "collections", "make"))
    if order == "reversed":
        names.reverse()
    separate = {n: shared_ids(ns[n], ns) for n in names}
    walk_shared = snapshot.walk_shared
    joint = walk_shared({n: ns[n] for n in names}, ns)
    assert _groups(joint) == _groups(separate)
    assert set().union(*joint.values()) == set().union(*separate.values())
    # known sets (walked just before) are not walked again, and still link what shares with them
    half = names[: len(names) // 2]
    known = walk_shared({n: ns[n] for n in half}, ns)
    rest = walk_shared({n: ns[n] for n in names if n not in known}, ns, known)
    assert _groups({**known, **rest}) == _groups(separate)
    by_name = {n: g for g in _groups(separate) for n in g}
    assert by_name["pair"] == by_name["holder"] == by_name["other"] == by_name["shared"] == by_name["closure"]
    assert by_name["view"] == by_name["view2"] == by_name["base"] == by_name["tup_of_tup"]
    assert by_name["dq"] == by_name["lone"] and by_name["alone"] == ["alone"]


def test_a_commit_after_one_walk_restores_the_sharing(ws):
    ns = session_namespace(GRAPHS)
    ws.commit(ns, "state")
    out = session_namespace()
    ws.checkout("HEAD", out)
    assert out["holder"]["p"] is out["pair"] and out["pair"][0] is out["shared"] is out["closure"]()
    assert out["objs"][0]["x"] is out["shared"] and out["dq"][0] is out["lone"]["a"]
    groups = {n: r.group for n, r in ws.state().variables.items() if r.group}
    assert groups["view"] == groups["view2"] == groups["base"] == groups["tup_of_tup"] != groups["alone"]


def test_figures_are_not_one_group_through_what_the_library_holds(ws):
    """Every figure reaches objects matplotlib keeps in its own state (``rcParams``' default lists, a
    marker's cached path): those do not make all the figures of a notebook one group, re-pickled
    whenever any of them changes. What a figure and its axes share still does."""
    ns = session_namespace(textwrap.dedent("""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib import rcParams
        fig1, ax1 = plt.subplots()
        ax1.plot([1, 2, 3], "r*-")
        ax1.set_title("one")
        ax1.legend(["a"])
        fig2, axes2 = plt.subplots(1, 2)
        axes2[0].plot([3, 2, 1], "b.-")
        axes2[1].scatter([1, 2], [2, 1])
        lines = ax1.get_lines()
    """))
    ws.commit(ns, "figures")
    groups = {n: r.group for n, r in ws.state().variables.items() if r.group}
    assert groups["fig1"] == groups["ax1"] == groups["lines"]
    assert groups["fig2"] == groups["axes2"]
    assert groups["fig1"] != groups["fig2"]
    assert groups["rcParams"] not in (groups["fig1"], groups["fig2"])
    out = session_namespace()
    ws.checkout("HEAD", out)
    assert out["lines"][0].axes is out["ax1"]
    assert out["ax1"].figure is out["fig1"] and out["axes2"][1].figure is out["fig2"]


def test_numpy_s_scalars_and_functions_do_not_make_two_values_one_group(ws):
    """Two figures' artists both hold ``np.True_`` and a numpy function (``np.mean``: a contour's
    ``filled`` flag, a colorbar's locator): numpy's immutable scalars and its functions are no state of
    the session, so they do not make the artists one group (Lecture-4-Matplotlib's colorbar, contour and
    image of three figures were one group, pickled again whenever any of them was). A view of an
    array still groups with it."""
    ns = session_namespace(textwrap.dedent("""
        import numpy as np
        class Artist:
            def __init__(self, data):
                self.filled, self.reduce, self.scale, self.data = np.True_, np.mean, np.float64(2.0), data
        cnt, cb = Artist([1, 2]), Artist([3])
        records = np.zeros(3)
        first = records[:1]
    """))
    ws.commit(ns, "artists")
    groups = {n: r.group for n, r in ws.state().variables.items() if r.group}
    assert groups["cnt"] != groups["cb"]
    assert groups["first"] == groups["records"]
    out = session_namespace()
    ws.checkout("HEAD", out)
    assert out["cnt"].filled is np.True_ and out["cb"].reduce is np.mean and out["cnt"].scale == 2.0


def test_a_stale_id_of_an_older_value_does_not_pull_it_into_the_commit(ws):
    """The ids remembered per variable since its commit go stale: an object the value held then is
    freed (matplotlib replaces a figure's caches when it draws it) and its address taken by a new
    value's object. The new value then seemed to share with the old one, which was serialized again
    with its whole group (Lecture-4-Matplotlib: old figures' artists, cell after cell). Such a value
    is walked again to know; one that really shares with the new value is still committed with it."""
    import builtins

    ns = session_namespace()
    s = NamespaceSession(ws, ns, kind="test")
    _run_cells(s, ns, """
        import builtins
        class Box:
            pass
        old = Box()
        old.cache = [1.0]
        builtins._txgit_test_cache = old.cache
    """)
    try:
        code = "new = [3.0]"
        s.before_cell(code)
        exec(code, ns)
        s._shared["old"].add(identity(ns["new"]))  # the address of an object `old` once held, reused by `new`'s list
        assert s.after_cell().commit.serialized_names == ["new"]
        # a real alias, reached through what no cell names: `old` is serialized with it, as before
        [outcome] = _run_cells(s, ns, "import builtins\nalias = builtins._txgit_test_cache")
        assert outcome.commit.serialized_names == ["alias", "builtins", "old"]
        out = session_namespace()
        ws.checkout("HEAD", out)
        assert out["alias"] is out["old"].cache and out["new"] == [3.0]
    finally:
        del builtins._txgit_test_cache


def test_the_garbage_collector_does_not_run_inside_the_hooks(ws):
    """Pickling a figure allocates an object per artist that lives until the pickle ends (the state
    dict ``__getstate__`` returns, held by the pickler's memo): the collector ran again and again inside
    the hook, full collections of the whole heap among them (Lecture-4-Matplotlib: 4 of its 9 full
    collections, 0.38 s, were in txgit's hooks; the notebook alone makes 5). It is paused while the hooks
    run; a collector the user turned off stays off."""
    import gc

    ns = session_namespace()
    s = NamespaceSession(ws, ns, kind="test")
    _run_cells(s, ns, FIGURE.replace("range(300)", "range(2000)").replace(
        "\nfig = Node()", "\n    def __getstate__(self):  # as matplotlib's artists do\n        return dict(self.__dict__)\nfig = Node()"))
    passes = []

    def count(phase, info):
        if phase == "start":
            passes.append(info["generation"])

    gc.callbacks.append(count)
    try:
        code = "ax.style['width'].append(2.0)"  # ax and fig share the graph: 8,000 objects pickled again
        s.before_cell(code)
        exec(code, ns)
        outcome = s.after_cell()
        assert outcome.commit.serialized_names == ["ax", "fig"]
        assert passes == [] and gc.isenabled()
        gc.disable()
        _run_cells(s, ns, "ax.style['width'].append(3.0)")
        assert not gc.isenabled()
    finally:
        gc.callbacks.remove(count)
        gc.enable()
    out = session_namespace()
    ws.checkout("HEAD", out)
    assert out["ax"].style["width"] == [1.0, 2.0, 3.0] and out["ax"].parent is out["fig"]


def test_a_library_object_a_variable_holds_is_shared_as_any_value(ws):
    ns = session_namespace(textwrap.dedent("""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        limits = matplotlib.rcParams["axes.formatter.limits"]
        also_limits = [limits]
        fig, ax = plt.subplots()
    """))
    ws.commit(ns, "state")
    groups = {n: r.group for n, r in ws.state().variables.items() if r.group}
    assert groups["limits"] == groups["also_limits"]
    out = session_namespace()
    ws.checkout("HEAD", out)
    assert out["also_limits"][0] is out["limits"]


def test_axes_of_an_open_figure_no_variable_holds_are_still_one_group(ws):
    """pyplot keeps open figures in its own registry (a script's, or any backend that does not close
    them): a figure reached only through it is still what two axes share."""
    ns = session_namespace(textwrap.dedent("""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        plt.figure()
        left = plt.subplot(1, 2, 1)
        right = plt.subplot(1, 2, 2)
        left.plot([1, 2])
        others = [plt.figure().add_subplot() for _ in range(2)]
    """))
    ws.commit(ns, "open figures")
    groups = {n: r.group for n, r in ws.state().variables.items() if r.group}
    assert groups["left"] == groups["right"] != groups["others"]
    out = session_namespace()
    ws.checkout("HEAD", out)
    assert out["left"].figure is out["right"].figure and len(out["left"].get_lines()) == 1
    assert out["others"][0].figure is not out["others"][1].figure


def _run_cells(s: NamespaceSession, ns: dict, *cells: str) -> list:
    outcomes = []
    for code in cells:
        code = textwrap.dedent(code)
        s.before_cell(code)
        exec(code, ns)
        outcomes.append(s.after_cell())
    return outcomes


PYPLOT = """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
"""


def test_figures_closed_before_a_cell_are_not_fingerprinted_by_it(ws):
    """A notebook's inline plots are closed when their cell ends: pyplot cannot draw into them any
    more, so a later plotting cell does not fingerprint them (it did, before and after the cell)."""
    ns = session_namespace()
    s = NamespaceSession(ws, ns, kind="test")
    _run_cells(s, ns, PYPLOT, """
        fig, ax = plt.subplots()
        ax.plot([1, 2])
        axes = [ax]
        plt.close("all")   # what the inline backend does when the cell ends
    """)
    before = s.unnamed.fingerprinted
    out = _run_cells(s, ns, """
        plt.plot([3, 4])
        plt.title("another")
        plt.close("all")
    """)
    assert s.unnamed.fingerprinted == before and out[0].changes.unnamed == set()
    s.close()


def test_a_figure_open_when_the_cell_started_is_still_checked_even_if_the_cell_closes_it(ws):
    ns = session_namespace()
    s = NamespaceSession(ws, ns, kind="test")
    _run_cells(s, ns, PYPLOT, "fig, ax = plt.subplots()")
    out = _run_cells(s, ns, """
        plt.plot([1, 2, 3])   # draws into ax, which the cell never names
        plt.close("all")
    """)
    assert {"ax", "fig"} <= out[0].changes.unnamed
    restored = session_namespace()
    ws.checkout("HEAD", restored)
    assert len(restored["ax"].get_lines()) == 1
    s.close()


# What a plotting notebook leaves in its namespace besides artists: a colorbar (not an artist), a
# formatter set on an axis, a bar container (a tuple of artists), and pyplot's own rcParams.
FIGURE_TIES = """
    from matplotlib.pyplot import rcParams
    import matplotlib.ticker as ticker
    fig, ax = plt.subplots()
    im = ax.imshow([[1, 2], [3, 4]])
    plt.sci(im)  # the current image, as plt.imshow leaves it
    cb = fig.colorbar(im, ax=ax)
    formatter = ticker.ScalarFormatter()
    ax.xaxis.set_major_formatter(formatter)
    bars = ax.bar([1, 2], [3, 4])
"""


def test_what_ties_to_a_closed_figure_and_library_objects_are_not_fingerprinted(ws):
    """Lecture-4-Matplotlib: a colorbar of a closed figure was pickled, whole figure and all, after every
    later plotting cell (0.35 s each); pylab's own objects (stored by name, whatever they hold) too."""
    ns = session_namespace()
    s = NamespaceSession(ws, ns, kind="test")
    _run_cells(s, ns, PYPLOT, FIGURE_TIES + '    plt.close("all")\n')
    before = s.unnamed.fingerprinted
    out = _run_cells(s, ns, """
        plt.plot([3, 4])
        plt.close("all")
    """)
    assert s.unnamed.fingerprinted == before and out[0].changes.unnamed == set()
    s.close()


def test_a_colorbar_of_an_open_figure_is_still_checked(ws):
    ns = session_namespace()
    s = NamespaceSession(ws, ns, kind="test")
    _run_cells(s, ns, PYPLOT, FIGURE_TIES)
    out = _run_cells(s, ns, "plt.clim(0, 10)")  # rescales the current image, and so its colorbar
    assert {"cb", "im", "fig", "ax"} <= out[0].changes.unnamed
    restored = session_namespace()
    ws.checkout("HEAD", restored)
    assert restored["cb"].mappable.get_clim() == (0, 10)
    s.close()


class CountingCells(list):
    """Stands in for a session's list of pending cells and counts the cells looked at by iterating it."""

    looked = 0

    def __iter__(self):
        for cell in super().__iter__():
            self.looked += 1
            yield cell


def test_a_quiet_cell_does_not_look_at_every_cell_pending_before_it(ws):
    """Cells that change nothing stay pending until the next commit; each must not scan them all
    again (a long run of quiet cells was quadratic)."""
    ns = session_namespace()
    s = NamespaceSession(ws, ns, kind="test")
    s.before_cell("x = [1, 2]")
    exec("x = [1, 2]", ns)
    s.after_cell()
    s.flush()
    s.pending = CountingCells(s.pending)
    looked = []
    for _ in range(40):
        s.before_cell("n = len(x)\ndel n")
        exec("n = len(x)\ndel n", ns)
        s.after_cell()
        looked.append(s.pending.looked)
    assert len(s.pending) == 40  # all still pending: their code goes into the next commit
    assert looked[-1] - looked[-11] <= 10, looked  # the last ten cells: a constant each
    s.before_cell("x.append(3)")
    exec("x.append(3)", ns)
    s.after_cell()
    s.flush()
    assert ws.load("x") == [1, 2, 3]
    import json

    cells = json.loads(ws.history.read_file(ws.history.resolve("HEAD"), "code/cells.json"))
    assert len(cells) == 41 and sum(bool((c.get("op") or {}).get("settled")) for c in cells) == 40
    s.close()


def test_a_new_record_is_encoded_once_in_the_bytes_it_was_stored_as(monkeypatch):
    """A new variable's record line was made by encoding it indented, parsing that and encoding it
    again (884 records of `from pylab import *`: 13 ms a commit); one encoding makes the same bytes."""
    import json

    from txgit import history
    from txgit.state import VarRecord

    def records() -> dict[str, VarRecord]:
        return {
            "df": VarRecord("value", "pandas.DataFrame", "DataFrame 3x2", size=120, group="g" * 64,
                            details={"shape": [3, 2], "columns": ["a", "é"], "dtypes": ["int64", "object"]}),
            "sin": VarRecord("value", "numpy.ufunc", "ufunc…", module="numpy"),
            "np": VarRecord("module", "module", "module numpy", module="numpy"),
            "bad": VarRecord("unpicklable", "_thread.lock", "lock", reason="cannot pickle 'lock'", size=0,
                             details={"recipe": {"code": "l = threading.Lock()", "reads": ["threading"]}}),
            "n": VarRecord("value", "int", "int 0", size=0, details={}),
        }

    expected = {n: json.dumps(json.loads(r.to_bytes()), sort_keys=True, separators=(",", ":")).encode() + b"\n"
                for n, r in records().items()}
    counts = {"dumps": 0, "loads": 0}
    dumps, loads = json.dumps, json.loads

    def counting_dumps(*a, **k):
        counts["dumps"] += 1
        return dumps(*a, **k)

    def counting_loads(*a, **k):
        counts["loads"] += 1
        return loads(*a, **k)

    monkeypatch.setattr(json, "dumps", counting_dumps)
    monkeypatch.setattr(json, "loads", counting_loads)
    fresh = records()
    got = {n: history._var_line_body(r) for n, r in fresh.items()}
    assert got == expected
    assert counts == {"dumps": len(fresh), "loads": 0}, counts
    # kept on the record: a record carried over to the next commit is not encoded again
    assert {n: history._var_line_body(r) for n, r in fresh.items()} == expected and counts["dumps"] == len(fresh)


def test_where_a_library_module_lives_is_resolved_once(monkeypatch):
    """Every class and function a commit records asks for its module's version; for an installed
    library the answer is its ``__version__``, found after resolving the module's file (428
    resolutions per commit after `from pylab import *`): resolved once per file."""
    import json
    import os

    from txgit.sessions import operations

    calls = []
    realpath = os.path.realpath

    def counting(path, *a, **k):
        calls.append(path)
        return realpath(path, *a, **k)

    monkeypatch.setattr(os.path, "realpath", counting)
    first = operations.module_version(json.decoder)
    again = operations.module_version(json.decoder)
    assert first == again
    assert calls.count(json.decoder.__file__) <= 1, calls


# A library that binds many of its own objects at module level (as `from pylab import *` or
# `from sympy import *` leave hundreds in a namespace), and can mutate an object it is handed later.
OWNLIB = '''
class Registry:
    def __init__(self):
        self.items = []

for _i in range(40):
    globals()[f"OBJ{_i}"] = Registry()
REG = OBJ0
TARGET = None

def aim(registry):
    global TARGET
    TARGET = registry

def register(x):
    TARGET.items.append(x)

import functools

class Memo:
    """A class-based decorator: its instances carry the module and name of the function they wrap."""
    def __init__(self, f):
        functools.update_wrapper(self, f)
        self.seen = []

    def __call__(self, x):
        self.seen.append(x)
        return x * x

@Memo
def square(x):
    return x * x

def other_square():
    return Memo(square.__wrapped__)  # looks like `square` (same module, same name), is not it

def call(x):
    return TARGET(x)
'''


@pytest.fixture
def ownlib(tmp_path, monkeypatch):
    name = f"ownlib_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(OWNLIB)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    import sys
    sys.modules.pop(name, None)


def test_a_library_s_own_objects_are_not_looked_up_again_by_every_cell(ws, ownlib, monkeypatch):
    """After `from pylab import *`, every cell that used numpy asked each of ~900 names again whether it
    was the library's own object (0.9 s over Lecture-4-Matplotlib): asked once while it still is."""
    from txgit.sessions import detect

    asked = []
    real = detect.library_module_of
    monkeypatch.setattr(detect, "library_module_of", lambda n, v: asked.append(n) or real(n, v))
    ns = session_namespace()
    s = NamespaceSession(ws, ns, kind="test")
    _run_cells(s, ns, f"from {ownlib} import *\nimport {ownlib} as lib\nmine = lib.Registry()",
               "lib.aim(mine)", "lib.register(1)")
    first = len(asked)
    assert first >= 40
    _run_cells(s, ns, "lib.register(2)", "lib.register(3)")
    assert set(asked[first:]) == {"mine"}  # the one candidate that is no library object, before and after
    assert ws.load("mine").items == [1, 2, 3]
    s.close()


def test_a_name_that_no_longer_holds_the_library_s_object_is_a_candidate_again(ws, ownlib):
    """The shortcut holds only while the name holds that object and the module still binds it: a value
    of the same name that the library changes through its own state is still committed."""
    ns = session_namespace()
    s = NamespaceSession(ws, ns, kind="test")
    _run_cells(s, ns, f"from {ownlib} import *\nimport {ownlib} as lib", "lib.register", "lib.aim(REG)",
               "lib.register(1)")  # the library's own REG: recorded by name
    out = _run_cells(s, ns, "REG = lib.Registry()", "lib.aim(REG)", "lib.register(2)", "lib.register(3)")
    assert "REG" in out[-1].changes.unnamed
    assert ws.load("REG").items == [2, 3]
    # the module rebinds its attribute: the name holds the same object, no longer the library's own
    _run_cells(s, ns, "OBJ5.items.append(0)")
    out = _run_cells(s, ns, "lib.OBJ5 = None", "lib.aim(OBJ5)", "lib.register(4)")
    assert "OBJ5" in out[-1].changes.unnamed
    assert ws.load("OBJ5").items == [0, 4]
    s.close()


SKLEARN = """
    import numpy as np
    from sklearn import metrics
    from sklearn.ensemble import RandomForestClassifier
    X = np.arange(40.0).reshape(20, 2)
    y = np.arange(20) % 2
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    pred = model.predict(X)
"""


def test_a_fitted_model_is_not_fingerprinted_by_every_cell_that_calls_sklearn(ws):
    """05.08-Random-Forests: `metrics.classification_report(...)` made the forest of 1,000 trees a
    candidate, pickled before and after the cell (120 ms); scikit-learn holds no estimator of its own."""
    pytest.importorskip("sklearn")
    ns = session_namespace()
    s = NamespaceSession(ws, ns, kind="test")
    _run_cells(s, ns, SKLEARN)
    before = s.unnamed.fingerprinted
    out = _run_cells(s, ns, "report = metrics.classification_report(y, pred)", "acc = metrics.accuracy_score(y, pred)")
    assert s.unnamed.fingerprinted == before and out[-1].changes.unnamed == set()
    # changed by name, it is committed as ever
    _run_cells(s, ns, "model.set_params(n_estimators=7)")
    assert ws.load("model").n_estimators == 7
    s.close()


def test_scikit_learn_objects_that_hold_a_figure_are_still_checked(ws):
    """Only estimators are left out: a display object holds matplotlib axes, which pyplot draws into
    without the cell naming it."""
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    ns = session_namespace()
    s = NamespaceSession(ws, ns, kind="test")
    _run_cells(s, ns, PYPLOT, SKLEARN, """
        from sklearn.metrics import ConfusionMatrixDisplay
        disp = ConfusionMatrixDisplay(metrics.confusion_matrix(y, pred)).plot()
    """)
    out = _run_cells(s, ns, """
        acc = metrics.accuracy_score(y, pred)
        plt.title("accuracy")   # into disp.ax_, the current axes
    """)
    assert "disp" in out[0].changes.unnamed
    assert ws.load("disp").ax_.get_title() == "accuracy"
    s.close()


def test_what_its_module_binds_by_name_is_not_fingerprinted_but_a_look_alike_is(ws, ownlib):
    """After `from pylab import *`, numpy.linalg's and numpy.fft's 47 functions (array-function dispatchers,
    no Python functions, bound under other names than pylab's) were fingerprinted after every cell that
    used numpy, though each pickles as a reference. An object that only carries a function's module and
    name (a class-based decorator's instance) pickles by value, and is still checked."""
    pytest.importorskip("numpy")
    ns = session_namespace()
    s = NamespaceSession(ws, ns, kind="test")
    _run_cells(s, ns, f"import numpy as np\nfrom numpy.linalg import *\nimport {ownlib} as lib\n"
               "from numpy.fft import fft as transform\nmine = lib.other_square()\nreg = lib.Registry()",
               "lib.aim(reg)", "lib.register(1)", "n = np.sum([1, 2])")
    before = s.unnamed.fingerprinted
    _run_cells(s, ns, "m = np.sum([3, 4])", "lib.register(2)")
    # `reg` and `mine`, after the cell that used lib; not the linalg functions after both cells
    assert s.unnamed.fingerprinted - before == 2
    out = _run_cells(s, ns, "lib.aim(mine)", "lib.call(3)")
    assert "mine" in out[-1].changes.unnamed
    assert ws.load("mine").seen == [3]
    # the module's own `square` under another name: bound by its module, but an instance, pickled by value
    out = _run_cells(s, ns, f"from {ownlib} import square as sq", "lib.aim(lib.square)", "lib.call(4)")
    assert "sq" in out[-1].changes.unnamed
    assert ws.load("sq").seen == [4]
    s.close()


# -- many names (a star import binds ~950): what a cell pays per name ----------------------------------

MANY = "\n".join(f"v{i} = {i}" for i in range(1000)) + "\nimport math\nf = math.floor\n"


def test_the_variable_list_is_built_once_per_hook(ws):
    """With ~1,000 names the variable list was built 4 times a cell (each asking the host whether each
    name is its own): now once before the cell and once after it, the commit included."""
    asked: list[str] = []

    def hidden(name: str) -> bool:
        asked.append(name)
        return name == "host_thing"

    ns = session_namespace(MANY)
    ns["host_thing"] = object()
    s = NamespaceSession(ws, ns, kind="test", hidden=hidden)
    _run_cells(s, ns, "x = [1]")
    s.flush()
    for code in ("x.append(2)", "y = len(x)", "n = v3 + 1"):
        del asked[:]
        _run_cells(s, ns, code)
        assert len(asked) <= 2 * 1010, (code, len(asked))  # once in each hook
    s.flush()
    assert ws.load("x") == [1, 2] and ws.load("y") == 2 and ws.load("n") == 4
    assert "host_thing" not in ws.state().variables
    s.close()


def test_the_host_is_asked_only_about_the_names_it_may_hide(ws):
    """``hidden_names``: the only names, beyond ``always_hidden``'s, that the host may call its own
    (IPython's `open`, `exit` ...): the others are not asked one by one in every hook. A name the user
    rebinds from the host's value to one of theirs is still committed."""
    host = {"exit_": object(), "open_": object()}
    asked: list[str] = []

    def hidden(name: str) -> bool:
        asked.append(name)
        return name in host and ns.get(name) is host[name]

    ns = session_namespace(MANY)
    ns.update(host)
    s = NamespaceSession(ws, ns, kind="test", hidden=hidden, hidden_names=host.keys())
    _run_cells(s, ns, "x = [1]", "x.append(2)", "exit_ = 5")
    s.flush()
    assert set(asked) <= set(host) and len(asked) <= 2 * 6 * len(host), asked
    state = ws.state()
    assert ws.load("x") == [1, 2] and ws.load("exit_") == 5 and "open_" not in state.variables
    s.close()


class CountingGets(dict):
    """A namespace that counts what txgit's hooks look up by ``get`` (exec's own lookups bypass it)."""

    gets = 0

    def get(self, key, default=None):
        self.gets += 1
        return super().get(key, default)


def test_names_that_hold_the_same_plain_value_are_not_looked_at_by_every_cell(ws, ownlib):
    """Every cell that used a library looked at each of ~1,000 names twice to find its values (numbers,
    classes, functions: no library's); a name still holding the same plain value is skipped. One bound
    to another value between cells (no cell named it) is looked at again, and its unnamed change is
    still committed."""
    ns = CountingGets(session_namespace(MANY))
    s = NamespaceSession(ws, ns, kind="test")
    _run_cells(s, ns, f"import {ownlib} as lib\nmine = lib.Registry()", "lib.aim(mine)", "lib.register(1)")
    ns.gets = 0
    _run_cells(s, ns, "lib.register(2)")
    assert ns.gets < 200, ns.gets  # not each of the 1,000 names, before and after the cell
    ns["v5"] = ns["lib"].Registry()  # outside any cell: as a widget's callback would
    _run_cells(s, ns, "lib.aim(v5)\nlib.aim(mine)")
    ns["lib"].TARGET = ns["v5"]  # the library aims at it again, no cell naming it
    out = _run_cells(s, ns, "lib.register(3)")
    assert "v5" in out[-1].changes.unnamed
    s.flush()
    assert ws.load("v5").items == [3] and ws.load("mine").items == [1, 2]
    s.close()


SETTINGSLIB = '''
class Settings(dict):
    """A library's settings table that validates on every read (matplotlib's rcParams)."""
    reads = 0

    def __getitem__(self, key):
        Settings.reads += 1
        return dict.__getitem__(self, key)

    def values(self):  # as collections.abc's mixin: one __getitem__ per key
        return [self[k] for k in self]

class Style:
    def __init__(self):
        self.width = [1.0]

SETTINGS = Settings({f"key{i}": Style() for i in range(300)})

class Thing:
    def __init__(self):
        self.style = SETTINGS["key0"]
        self.data = [1, 2]
'''


def test_a_library_s_settings_table_is_not_read_key_by_key_before_every_walk(ws, tmp_path, monkeypatch):
    """The walk looks again at the dicts of objects a library holds (values get replaced), before every
    walk: matplotlib's rcParams was read through its ``__getitem__``, ~1,170 times a cell. Read in C, and
    only its values that changed are held again; a value the library replaces is still the library's."""
    name = f"settingslib_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(SETTINGSLIB)
    monkeypatch.syspath_prepend(str(tmp_path))
    import sys

    try:
        ns = session_namespace()
        s = NamespaceSession(ws, ns, kind="test")
        _run_cells(s, ns, f"import {name} as lib\na = lib.Thing()\nb = lib.Thing()", "a.data.append(3)")
        lib = sys.modules[name]
        lib.Settings.reads = 0
        _run_cells(s, ns, "a.data.append(4)", "b.data.append(5)")
        assert lib.Settings.reads == 0
        # the library replaces a setting: what the new value holds is the library's, not one group of a and b
        _run_cells(s, ns, "lib.SETTINGS['key1'] = lib.Style()\na.other = lib.SETTINGS['key1']\n"
                   "b.other = lib.SETTINGS['key1']")
        s.flush()
        groups = {n: r.group for n, r in ws.state().variables.items() if r.group}
        assert groups.get("a") is None or groups.get("a") != groups.get("b"), groups
        assert ws.load("a").data == [1, 2, 3, 4] and ws.load("b").data == [1, 2, 5]
        s.close()
    finally:
        sys.modules.pop(name, None)


ARRAYS = "import numpy as np\n" + "\n".join(f"a{i} = np.zeros({i + 1})\nk{i} = np.float64({i})" for i in range(100))


def test_arrays_and_a_library_s_own_objects_are_not_looked_at_by_every_cell(ws, ownlib):
    """Lecture-2 (`from numpy import *`, many small arrays): every cell that used a library looked at each
    of ~330 names bound to numpy's own objects (is the module still binding it?) and at each array (which
    packages is it made of?), before and after the cell. A name still holding the same array of no
    objects, or numpy scalar, is skipped as a plain value is, and the library's own objects are checked
    all at once while every module still binds them. What the shortcut could miss is still committed: a
    name bound to a library's object between cells (no cell naming it), and an array of axes."""
    ns = CountingGets(session_namespace(ARRAYS + "\nfrom numpy import *\n"))
    s = NamespaceSession(ws, ns, kind="test")
    _run_cells(s, ns, f"import {ownlib} as lib\nmine = lib.Registry()\nobjs = np.array([lib.Registry()])",
               "lib.aim(mine)", "lib.register(1)")
    ns.gets = 0
    _run_cells(s, ns, "lib.register(2)")
    assert ns.gets < 150, ns.gets  # not each of the 200 arrays and scalars and ~330 numpy objects, twice
    assert ws.load("mine").items == [1, 2]
    # an array's name bound to the library's object outside any cell (a callback), which the library changes
    ns["a7"] = ns["lib"].Registry()
    ns["lib"].TARGET = ns["a7"]
    out = _run_cells(s, ns, "lib.register(3)")
    assert "a7" in out[-1].changes.unnamed
    # an array holding objects is looked at every time: its elements can be anything
    ns["lib"].TARGET = ns["objs"][0]
    out = _run_cells(s, ns, "lib.register(4)")
    assert "objs" in out[-1].changes.unnamed
    s.flush()
    assert ws.load("a7").items == [3] and ws.load("objs")[0].items == [4]
    s.close()


_ID_EVENTS = textwrap.dedent("""
    import json, sys, tempfile
    from pathlib import Path
    from txgit import Workspace
    from txgit.sessions.session import NamespaceSession
    ws = Workspace.init(Path(tempfile.mkdtemp()) / "ws")
    ns = {"__name__": "__main__"}
    exec(MANY, ns)
    s = NamespaceSession(ws, ns, kind="test")
    def run(code):
        s.before_cell(code)
        exec(code, ns)
        s.after_cell()
    run("x = 1")
    on, seen = [False], [0]
    def count(event, args):
        if on[0] and event == "builtins.id":
            seen[0] += 1
    sys.addaudithook(count)  # (for good: hence a process of its own)
    on[0] = True
    run(CELL)
    on[0] = False
    s.close()
    print(json.dumps(seen[0]))
""")


def test_the_names_fingerprint_raises_no_audit_event_per_name(tmp_path):
    """``id()`` raises an audit event, and txgit's operation watch has an audit hook (a Python call per
    event, ~0.1 µs): the fingerprint of every name (name -> identity), before and after every cell, paid
    it ~1,070 times a cell in Lecture-2 (2,010 events here before). The identity is taken without ``id()``.
    (A cell that commits walks what it changed: see the next test.)"""
    assert _id_events(tmp_path, "v3 + 1") < 100  # commits nothing: Lecture-2's 117 of 174 cells


def _id_events(folder, cell: str) -> int:
    """``builtins.id`` audit events while a session among :data:`MANY` names runs ``cell`` (a process of its own)."""
    import json
    import subprocess
    import sys

    code = _ID_EVENTS.replace("exec(MANY, ns)", f"exec({MANY!r}, ns)").replace("run(CELL)", f"run({cell!r})")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=folder)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_commit_s_walk_of_a_figure_raises_no_audit_event_per_object(tmp_path):
    """The walk that groups a changed figure's objects took each one's ``id()``, and each raised an audit
    event that txgit's operation watch hooks (48,079 in a walk of a figure of 750 lines: 33 ms of walk
    without the hook, 42 ms with it); so did the set of every name's value each walk starts with. It
    takes the walk's identity (:data:`txgit.state.identity.identity`) instead: 8,374 events here before
    (1,200 objects, 1,000 names, the pickler's arrays), 38 now."""
    cell = FIGURE + "arr = np.arange(4000.0)\nview = arr[10:]\n"
    assert _id_events(tmp_path, "import numpy as np\n" + cell) < 100


class CountingItems(dict):
    """The session's origins table, counting the walks over all of it (``items``)."""

    walks = 0

    def items(self):
        self.walks += 1
        return super().items()


def test_a_cell_that_commits_nothing_does_not_build_the_commit_s_origins(ws):
    """A cell that commits nothing settled its operation with a commit prepared and never written, and
    built that commit's origins table (sorted, ~530 names in Lecture-2: ~0.1 ms of each quiet cell).
    The next commit still records the origins its cell made."""
    ns = session_namespace(MANY)
    s = NamespaceSession(ws, ns, kind="test")
    _run_cells(s, ns, "x = 1", "y = x + 1")
    s.origins = CountingItems(s.origins)
    out = _run_cells(s, ns, "v3 + 1")
    assert out[0].commit is None and s.origins.walks == 0, s.origins.walks
    _run_cells(s, ns, "w = v3 + 1")
    assert ws.state().meta["origins"]["w"].startswith("op:")
    s.close()
