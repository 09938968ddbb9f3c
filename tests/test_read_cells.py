"""Cells that only read variables (issue 17): `len(rows)`, `arr.mean()`, `df.head()`, `e * 2` are most
cells of real notebooks. What they read is not serialized again to learn it did not change where a
cheap token says so (detect.ReadValues), and a mutation through a method is still committed.

Serializations are counted (the snapshot's pickling of each group), never timed."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest
from conftest import session_namespace

from txgit.sessions import NamespaceSession
from txgit.sessions.detect import read_token

snapshot = importlib.import_module("txgit.state.snapshot")  # the module (txgit.state exports a function so named)

SETUP = """
import numpy as np, pandas as pd
from math import *
rows = [3, 1, 2]
table = {"a": 1, "b": "two"}
tags = {"x", "y"}
nested = [[1], [2]]
arr = np.arange(2_000_000, dtype=float)[::-1].copy()
df = pd.DataFrame({"a": np.arange(100_000), "b": np.ones(100_000), "s": ["x"] * 100_000})
series = df["a"] * 2
words = np.array(["b", "a"], dtype=object)
pair = ("x", (1, 2.5))
mat = np.matrix([[1, 2], [3, 4]])
n = 5
"""


@pytest.fixture
def counted(monkeypatch):
    """The names of each group the snapshot pickles."""
    pickled: list[list[str]] = []
    real = snapshot._pickle_groups

    def counting(members, *args, **kwargs):
        pickled.append(list(members))
        return real(members, *args, **kwargs)

    monkeypatch.setattr(snapshot, "_pickle_groups", counting)
    return pickled


def _run(s: NamespaceSession, code: str):
    s.before_cell(code)
    exec(code, s.namespace)
    return s.after_cell()


@pytest.mark.parametrize("code", ["arr.mean()", "df.head()", "df['a'].sum()", "series.max()", "e * 2",
                                  "pair[0]", "n + 1", "sorted(words)", "print(arr.shape, df.shape)",
                                  "mat * 2", "np.shape(mat), sqrt(n)", "len(rows), table['a'], 'x' in tags"])
def test_a_cell_that_only_reads_serializes_nothing(ws, counted, code):
    _reads_serialize_nothing(ws, counted, SETUP, code)


def _reads_serialize_nothing(ws, counted, setup: str, code: str) -> None:
    """After ``setup``, the cell ``code`` commits nothing and serializes nothing."""
    s = NamespaceSession(ws, session_namespace(), kind="test")
    _run(s, setup)
    head = ws.head().id
    counted.clear()
    out = _run(s, code)
    assert out.commit is None and ws.head().id == head
    assert counted == []
    s.close()


def test_a_cell_that_reads_and_binds_serializes_only_what_it_bound(ws, counted):
    s = NamespaceSession(ws, session_namespace(), kind="test")
    _run(s, SETUP)
    counted.clear()
    out = _run(s, "m = arr.mean() + df['b'].sum() + sqrt(n)")  # (sqrt: math's, a reference)
    assert out.commit is not None and counted == [["m"]]
    out = _run(s, "view = arr[:10]")  # an alias of what it read: serialized with it, so sharing survives
    assert out.commit is not None and {"arr", "view"} <= set(out.commit.serialized_names)
    s.close()


@pytest.mark.parametrize("code, name", [
    ("arr.sort()", "arr"),
    ("np.add(arr, 1, out=arr)", "arr"),
    ("arr.shape = (1000, 2000)", "arr"),
    ("df.drop(columns=['b'], inplace=True)", "df"),
    ("df.sort_values('a', ascending=False, inplace=True)", "df"),
    ("df.columns.name = 'cols'", "df"),
    ("df.attrs['unit'] = 'm'", "df"),
    ("series.iloc[0] = -1", "series"),
    ("series.rename('twice', inplace=True)", "series"),
    ("rows.append(4)", "rows"),
    ("words[0] = 'z'", "words"),
    ("mat[0, 0] = 9", "mat"),
    ("rows.sort()", "rows"),
    ("rows[0] = 3.0", "rows"),
    ("table['a'] = 2", "table"),
    ("table.pop('a'); table['a'] = 1", "table"),  # the same content in another order: another pickle
    ("tags.add('z')", "tags"),
    ("nested[0].append(5)", "nested"),
])
def test_a_mutation_through_a_method_is_still_committed(ws, code, name):
    import warnings
    s = NamespaceSession(ws, session_namespace(), kind="test")
    _run(s, SETUP)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas' notice that `inplace` is deprecated
        out = _run(s, code)
    assert out.commit is not None and name in out.commit.serialized_names
    loaded = ws.load(name)
    live = s.namespace[name]
    if isinstance(live, np.ndarray):
        np.testing.assert_array_equal(loaded, live)
        assert loaded.shape == live.shape
    elif isinstance(live, (pd.DataFrame, pd.Series)):
        assert loaded.equals(live) and loaded.attrs == live.attrs
        assert getattr(loaded, "name", None) == getattr(live, "name", None)
        if isinstance(live, pd.DataFrame):
            assert loaded.columns.name == live.columns.name
    else:
        assert loaded == live
    s.close()


# pandas' hierarchical and time indexes, dates, missing values (PythonDataScienceHandbook 03.05, 03.11,
# 03.04): most of those notebooks' cells read such a value
INDEXED = """
import numpy as np, pandas as pd
pop = pd.Series([1.0, 2.0, 3.0, 4.0],
                index=pd.MultiIndex.from_product([["a", "b"], [2000, 2010]], names=["state", "year"]))
health = pd.DataFrame(np.arange(16.0).reshape(4, 4),
                      index=pd.MultiIndex.from_product([[2013, 2014], [1, 2]], names=["year", "visit"]),
                      columns=pd.MultiIndex.from_product([["Bob", "Sue"], ["HR", "Temp"]], names=["subject", "type"]))
mi = pop.index
daily = pd.Series(np.arange(6.0), index=pd.date_range("2020-01-01", periods=6, freq="D", name="day"))
stamps = daily.index
start = stamps[0]
when = start.to_pydatetime()
mixed = pd.Series([1, np.nan, "hello", None])  # (03.04: an object column of numbers, strings and missing)
nullable = pd.Series([1, np.nan, 2, None, 3], index=list("abcde"), dtype="Int32")
def poke(values, i, v):  # changes an array in place: only its token can tell
    values[i] = v
"""


@pytest.mark.parametrize("code", ["pop.loc['a']", "pop[:, 2000]", "pop.unstack()", "health['Bob', 'HR']",
                                  "health.iloc[:2, :2]", "health.loc[:, ('Bob', 'HR')]", "mi.levels[0]",
                                  "pop.index.names", "daily['2020-01-02':'2020-01-04']", "daily.resample('2D').sum()",
                                  "stamps.freq, stamps[0]", "health.mean()",
                                  "start.day_name(), when.year, when - start", "mixed.isnull()",
                                  "mixed[mixed.notnull()]", "mixed.dropna()", "nullable.fillna(0)",
                                  "nullable.dropna(), nullable.sum()"])
def test_a_cell_that_only_reads_an_indexed_dated_or_nullable_value_serializes_nothing(ws, counted, code):
    _reads_serialize_nothing(ws, counted, INDEXED, code)


@pytest.mark.parametrize("code, name", [
    ("pop.index.names = ['s', 'y']", "pop"),  # (03.05's cell 17)
    ("mi.names = ['s', 'y']", "mi"),
    ("health.columns.names = ['who', 'what']", "health"),
    ("health.index = health.index.set_levels([2015, 2016], level=0)", "health"),
    ("health.iloc[0, 0] = -1.0", "health"),
    ("pop.index = pop.index.set_codes([[1, 1, 0, 0], [0, 1, 0, 1]])", "pop"),
    ("daily.index.name = 'when'", "daily"),
    ("daily.index.freq = None", "daily"),
    ("stamps.freq = None", "stamps"),
    ("daily.index = daily.index.tz_localize('UTC')", "daily"),
    ("daily.iloc[0] = -1.0", "daily"),
    ("mixed.iloc[1] = 'x'", "mixed"),
    ("mixed.fillna(0, inplace=True)", "mixed"),
    ("nullable.iloc[1] = 7", "nullable"),
    ("nullable.iloc[0] = None", "nullable"),
    ("poke(nullable.array, 1, 7)", "nullable"),
    ("poke(mixed.array, 1, 'x')", "mixed"),
])
def test_a_change_to_an_indexed_dated_or_nullable_value_is_still_committed(ws, code, name):
    s = NamespaceSession(ws, session_namespace(), kind="test")
    _run(s, INDEXED)
    out = _run(s, code)
    assert out.commit is not None and name in out.commit.serialized_names
    loaded, live = ws.load(name), s.namespace[name]
    if isinstance(live, pd.Index):
        assert loaded.equals(live) and list(loaded.names) == list(live.names)
        live_index, loaded_index = live, loaded
    else:
        assert loaded.equals(live)
        live_index, loaded_index = live.index, loaded.index
        if isinstance(live, pd.DataFrame):
            assert list(loaded.columns.names) == list(live.columns.names)
    assert list(loaded_index.names) == list(live_index.names)
    assert str(loaded_index.dtype) == str(live_index.dtype)
    assert getattr(loaded_index, "freq", None) == getattr(live_index, "freq", None)
    s.close()


def test_values_without_a_cheap_token_are_checked_in_full():
    assert read_token([[1], 2]) is None  # a list holding a list: serialized to compare, as before
    assert read_token({"k": [1]}) is None
    assert read_token(("x", [1])) is None  # a tuple holding a list
    assert read_token(np.array([[1.0, 2.0], [3.0, 4.0]])[:, 0]) is None  # not contiguous
    assert read_token(np.ma.masked_array([1, 2])) is None  # a subclass
    assert read_token(pd.Series(["a", "b"], dtype="category")) is None
    assert read_token(np.array([{"k": 1}], dtype=object)) is None  # mutable elements


@pytest.mark.timeout(300)
def test_in_a_kernel_reads_settle_without_the_lock_and_a_sort_in_place_is_restored(tmp_path):
    """A real kernel: cells that only read an array, a frame or a star-imported constant are settled
    without the workspace lock (no serialization, no commit: another process holding the lock does not
    stall them), and `arr.sort()` afterwards is committed and restored by a fresh kernel."""
    from kernelutil import Kernel

    from txgit import Workspace

    ws = Workspace.init(tmp_path / "proj")
    k = Kernel(ws.root)
    try:
        k.ok("%load_ext txgit")
        k.ok(SETUP)
        head = ws.head().id
        lock = ws.hold_lock()
        try:
            for code in ("arr.mean()", "df.head()", "e * 2", "len(words)"):
                assert k.run(code, timeout=30, settle=False).status == "ok", code
        finally:
            lock.release()
        assert ws.head().id == head
        k.ok("arr.sort()")
        assert ws.head().id != head
    finally:
        k.shutdown()
    fresh = Kernel(ws.root)
    try:
        fresh.ok("%load_ext txgit")
        fresh.ok("%txgit checkout HEAD")
        assert fresh.value("bool((arr[1:] >= arr[:-1]).all()) and arr.size == 2_000_000") is True
    finally:
        fresh.shutdown()


def test_a_value_held_for_its_token_is_let_go_when_the_cell_fails(ws):
    """The tokens hold the values they were taken of while the cell runs; a failed cell (rolled back)
    must not keep a big array it deleted alive until the next cell."""
    import gc
    import weakref

    s = NamespaceSession(ws, session_namespace(), kind="test")
    _run(s, "import numpy as np\nbig = np.zeros(1_000_000)")
    ref = weakref.ref(s.namespace["big"])
    code = "del big\nraise ValueError('no')"
    s.before_cell(code)
    with pytest.raises(ValueError):
        exec(code, s.namespace)
    out = s.after_cell(error=ValueError("no"))
    assert out.rollback is not None and "big" in s.namespace  # put back, as committed
    gc.collect()
    assert ref() is None
    s.close()


_RESTORED = """
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np, pandas as pd
df = pd.DataFrame({"a": np.arange(1000.0)})
fig, ax = plt.subplots()
ax.plot(df["a"])
rows = list(range(1000))
columns = {"x": np.arange(100_000.0), "y": np.ones(100_000)}
nested = [[i, str(i)] for i in range(20_000)]
"""


@pytest.mark.timeout(300)
def test_cells_that_only_read_values_a_fresh_kernel_checked_out_commit_nothing(tmp_path):
    """A figure of 1,000 points, re-pickled after a checkout, pickles to other bytes than the committed
    ones (its restored strings are interned otherwise); big enough to be hashed in the background, its
    group had no id yet when the cell was settled, so every read of `ax` committed the same state again
    (only the origins in meta.json differed). Reads commit nothing; a change to each value still does,
    and a fresh kernel gets it back."""
    from kernelutil import Kernel

    from txgit import Workspace

    ws = Workspace.init(tmp_path / "proj")
    env = {"MPLBACKEND": "Agg"}
    k = Kernel(ws.root, env=env)
    try:
        k.ok("%load_ext txgit")
        k.ok(_RESTORED)
    finally:
        k.shutdown()
    reads = ["print(len(ax.lines))", "ax.get_title()", "df['a'].sum()",
             "len(rows)", "columns['x'].mean()", "len(nested), nested[5]"]
    changes = [("ax.set_title('t')", "ax.get_title()", "t"), ("df.loc[0, 'a'] = -1.0", "float(df.loc[0, 'a'])", -1.0),
               ("rows.append(-1)", "rows[-1]", -1), ("columns['x'][0] = -1.0", "float(columns['x'][0])", -1.0),
               ("nested[0].append('z')", "nested[0][-1]", "z")]
    fresh = Kernel(ws.root, env=env)
    try:
        fresh.ok("%load_ext txgit")
        fresh.ok("%txgit checkout main")
        head = ws.head().id
        for code in reads * 2:
            fresh.ok(code)
            assert ws.head().id == head, f"a read committed: {code}"
        for code, _, _ in changes:
            fresh.ok(code)
            assert ws.head().id != head, f"a change not committed: {code}"
            head = ws.head().id
    finally:
        fresh.shutdown()
    again = Kernel(ws.root, env=env)
    try:
        again.ok("%load_ext txgit")
        again.ok("%txgit checkout main")
        for _, expr, want in changes:
            assert again.value(f"{expr}") == want, expr
    finally:
        again.shutdown()


def test_a_background_session_settles_reads_of_checked_out_values_before_their_hash(ws):
    """The same in one process: a session that commits in the background (as a kernel does) checks out
    a figure and a list of lists into a fresh namespace; reads of them commit nothing, changes commit."""
    from txgit import Workspace

    s = NamespaceSession(ws, session_namespace(), kind="test")
    _run(s, _RESTORED)
    s.close()
    fresh = NamespaceSession(Workspace(ws.root), session_namespace(), kind="test")
    fresh.background = True
    fresh.checkout("main")
    head = ws.head().id
    for code in ["len(ax.lines)", "ax.get_title()", "len(nested)", "len(ax.lines)", "nested[3]"]:
        _run(fresh, code)
        fresh.flush()
        assert ws.head().id == head, f"a read committed: {code}"
    for code in ["ax.set_title('t')", "nested[0].append('z')"]:
        _run(fresh, code)
        fresh.flush()
        assert ws.head().id != head, f"a change not committed: {code}"
        head = ws.head().id
    assert ws.load("ax").get_title() == "t" and ws.load("nested")[0][-1] == "z"
    fresh.close()
