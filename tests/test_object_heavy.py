"""Object-heavy values (issue 17): the per-type decisions that make pickling and the aliasing walk
cheap must not change what is committed or restored.

Values are made by session code (exec'd as `__main__`), as in a notebook.
"""

from __future__ import annotations

import copyreg
import sys
import textwrap
import types

import numpy as np
from conftest import session_namespace

from txgit import Workspace
from txgit.state import pickling
from txgit.state.identity import identity
from txgit.state.snapshot import shared_ids


def roundtrip(ws: Workspace, ns: dict) -> dict:
    ws.commit(ns, "state")
    fresh = session_namespace()
    ws.checkout("HEAD", fresh)
    return fresh


def test_a_figure_round_trips_with_every_line_and_its_axes(ws):
    ns = session_namespace(textwrap.dedent("""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
        rng = np.random.default_rng(0)
        fig, axs = plt.subplots(2, 2)
        for ax in axs.flat:
            for _ in range(40):
                ax.plot(rng.random(50))
    """))
    out = roundtrip(ws, ns)
    fig, axs = out["fig"], out["axs"]
    assert [len(ax.get_lines()) for ax in fig.axes] == [40, 40, 40, 40]
    for ax_before, ax_after in zip(ns["fig"].axes, fig.axes):
        for a, b in zip(ax_before.get_lines(), ax_after.get_lines()):
            assert np.array_equal(a.get_ydata(), b.get_ydata())
    # fig and axs share the axes: one group, restored as one figure
    groups = {n: r.group for n, r in ws.state().variables.items() if r.group}
    assert groups["fig"] == groups["axs"]
    assert all(ax.figure is fig for ax in axs.flat)
    assert axs[0, 0] is fig.axes[0]


def test_a_class_redefined_in_the_session_is_pickled_as_redefined(ws):
    ns = session_namespace(textwrap.dedent("""
        class Shape:
            def area(self):
                return 1
        first = Shape()
    """))
    ws.commit(ns, "first Shape")
    # the same name, another class: the per-type caches key on the class object, not its name
    exec(textwrap.dedent("""
        import numpy as np
        class Shape(np.ndarray):
            def area(self):
                return 2
        second = np.zeros(3).view(Shape)
        class Plain:
            def area(self):
                return 3
        third = Plain()
    """), ns)
    out = roundtrip(ws, ns)
    assert out["first"].area() == 1
    assert type(out["second"]).__name__ == "Shape" and isinstance(out["second"], np.ndarray)
    assert out["second"].area() == 2 and out["third"].area() == 3
    assert type(out["first"]) is not type(out["second"])


def test_a_copyreg_reducer_registered_after_import_is_used():
    class Celsius:
        def __init__(self, degrees: float) -> None:
            self.degrees = degrees

    calls: list[float] = []

    def reduce_celsius(c: Celsius):
        calls.append(c.degrees)
        return (Celsius, (c.degrees,))

    pickling.dumps([1], None)  # a pickler was made before the registration
    copyreg.pickle(Celsius, reduce_celsius)
    try:
        pickling.dumps([Celsius(21.5)], None)
    finally:
        del copyreg.dispatch_table[Celsius]
    assert calls == [21.5]


def test_the_aliasing_walk_finds_what_is_shared_through_slots_deques_closures_and_object_arrays():
    ns = session_namespace(textwrap.dedent("""
        import collections
        import numpy as np
        shared = [1, 2]
        class Slotted:
            __slots__ = ("items", "name")
        s = Slotted(); s.items = shared; s.name = "n"
        dq = collections.deque([shared])
        def make(items):
            def inner():
                return items
            return inner
        closure = make(shared)
        arr = np.empty(1, dtype=object); arr[0] = {"x": shared}
        other = [3]
    """))
    target = identity(ns["shared"])
    for name in ("s", "dq", "closure", "arr"):
        assert target in shared_ids(ns[name], ns), name
    assert target not in shared_ids(ns["other"], ns)


def test_instances_of_one_session_class_in_two_variables_stay_separate_groups(ws):
    ns = session_namespace(textwrap.dedent("""
        import dataclasses
        @dataclasses.dataclass
        class Point:
            x: float
            tags: list
        p = [Point(1.0, ["a"]) for _ in range(100)]
        q = Point(2.0, ["b"])
        alias = p[0].tags
    """))
    out = roundtrip(ws, ns)
    groups = {n: r.group for n, r in ws.state().variables.items() if r.group}
    # the class's own tables (its dataclass fields) are the class's, not shared between values
    assert groups["q"] != groups["p"] and groups["alias"] == groups["p"]
    assert out["alias"] is out["p"][0].tags
    assert out["q"] == ns["q"]


REDUCED: list[int] = []


class Counted:
    """Says each time it is pickled."""

    def __init__(self, i: int) -> None:
        self.i = i

    def __reduce__(self) -> tuple:
        REDUCED.append(self.i)
        return (Counted, (self.i,))


def test_variables_that_share_objects_are_pickled_once_together(ws):
    """`fig, ax = plt.subplots()` shares objects: the group is pickled once, not each member alone
    first (to size it) and then all together again."""
    shared = Counted(1)
    ns = session_namespace("x = 1")
    ns.update(a=shared, b=[shared], c={"k": shared}, d=Counted(2))
    REDUCED.clear()
    ws.commit(ns, "state")
    assert sorted(REDUCED) == [1, 2], REDUCED  # before: [1, 1, 1, 2, 1]: each sharer alone, then together
    out = session_namespace()
    ws.checkout("HEAD", out)
    variables = ws.state().variables
    assert variables["a"].group == variables["b"].group == variables["c"].group != variables["d"].group
    assert variables["a"].size == variables["b"].size  # a member's size is its group's
    assert out["b"][0] is out["a"] and out["c"]["k"] is out["a"]


def test_an_unpicklable_member_of_a_group_is_reported_and_the_rest_saved_together(ws):
    ns = session_namespace(textwrap.dedent("""
        import threading
        data = [1, 2]
        holder = [threading.Lock(), data]
        other = {"data": data}
        same = data
    """))
    out = roundtrip(ws, ns)
    variables = ws.state().variables
    assert variables["holder"].kind == "unpicklable" and "lock" in variables["holder"].reason
    assert variables["data"].group == variables["other"].group == variables["same"].group
    assert out["other"]["data"] is out["data"] is out["same"] and "holder" not in out


def _refuse_to_load() -> None:
    raise ValueError("made to fail on load")


class LoadsBadly:
    """Pickles fine, and cannot be loaded (as gmpy2's mpq or matplotlib's rcParams in some versions)."""

    def __reduce__(self) -> tuple:
        return (_refuse_to_load, ())


def test_a_value_that_cannot_be_loaded_is_listed_and_the_rest_checked_out(ws):
    """One of 900 star-imported names failing to load must not leave a fresh kernel with nothing."""
    from test_sessions import run

    from txgit.sessions.session import NamespaceSession

    ns = session_namespace("x = 1\ny = [1, 2]")
    ns["bad"] = LoadsBadly()
    ns["pair"] = (ns["bad"], 1)  # same group: neither can be loaded
    ws.commit(ns, "state")
    fresh = session_namespace()
    session = NamespaceSession(ws, fresh, kind="test")
    r = session.checkout("HEAD")
    assert fresh["x"] == 1 and fresh["y"] == [1, 2] and "bad" not in fresh and "pair" not in fresh
    assert r.not_restored == {n: f"{t} could not be loaded here (ValueError: made to fail on load)"
                              for n, t in (("bad", "test_object_heavy.LoadsBadly"), ("pair", "tuple"))}
    run(session, "z = 3")  # the next commit carries what was not loaded: nothing deleted
    assert {"bad", "pair", "x", "y", "z"} <= set(ws.state().variables)


def _python_calls_into_pickling(fn) -> int:
    """How many Python functions of txgit.state.pickling run while ``fn()`` runs."""
    calls = 0

    def count(frame, event, arg):
        nonlocal calls
        if event == "call" and frame.f_code.co_filename == pickling.__file__:
            calls += 1

    sys.setprofile(count)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls


def test_library_objects_are_pickled_without_a_python_call_per_object():
    # The C pickler used to call a Python reducer_override for every instance and the buffer
    # callback for every small array: three calls per array, two per plain instance.
    small = [np.arange(i % 7, dtype=float) for i in range(500)]
    plain = [types.SimpleNamespace(x=i) for i in range(500)]
    big = np.arange(100_000)
    pickling.dumps([small, plain, big], None)  # types seen once: their routes are decided once
    calls = _python_calls_into_pickling(lambda: pickling.dumps([small, plain, big], None))
    assert calls <= len(small) + 20  # one reduce per small array, nothing per plain instance


def test_small_arrays_stay_in_band_and_large_ones_go_out_of_band_exactly():
    writable = np.arange(12, dtype=np.float32).reshape(3, 4)
    fortran = np.asfortranarray(np.arange(20).reshape(4, 5))
    frozen = np.arange(5)
    frozen.flags.writeable = False
    empty = np.zeros((0, 3))
    big = np.arange(200_000, dtype=np.int64)
    value = {"w": writable, "f": fortran, "r": frozen, "e": empty, "big": big, "again": big}
    skeleton, buffers = pickling.dumps(value, None)
    assert [b.raw().nbytes for b in buffers] == [big.nbytes]  # one buffer: the big array, once
    out = pickling.loads(skeleton, [b.raw().tobytes() for b in buffers], None)
    for k, v in value.items():
        assert out[k].dtype == v.dtype and out[k].shape == v.shape and np.array_equal(out[k], v)
    assert out["w"].flags.writeable and out["f"].flags.f_contiguous and not out["r"].flags.writeable
    assert out["again"] is out["big"]
    # the small ones are in the skeleton, as the bytes numpy's own reduction would have carried
    assert writable.tobytes() in skeleton and fortran.tobytes(order="F") in skeleton


def _numpys_own_reduce(arr: np.ndarray):
    """What the pickler got for a small array before txgit built the reduce value itself: numpy's own
    reduction, its buffer (if it gives one) carried in band as bytes."""
    import pickle

    rv = arr.__reduce_ex__(pickling.PROTOCOL)
    if isinstance(rv[1][0], pickle.PickleBuffer):
        buf, *rest = rv[1]
        return (rv[0], (bytearray(buf) if arr.flags.writeable else bytes(buf), *rest))
    return rv


def test_a_small_array_is_pickled_as_numpy_s_own_reduction_would_carry_it_whatever_its_kind():
    """Small arrays are reduced without numpy's ``__reduce_ex__`` (which imports two modules per
    array: ~1 µs of a 1.7 µs reduce, for the thousands of arrays of a figure) only where numpy itself
    gives a buffer: contiguous, items of some size, no objects. Each guard is here: a non-contiguous
    array, empty items (``V0``), a structured dtype holding objects or datetimes (no buffer), variable-width strings; and the
    cases the fast path takes: Fortran order, read-only, big-endian, 0-d, a dtype with metadata. Arrays
    that own their memory: a view of another array is pickled as a view of it (see ``_ViewPlan``)."""
    import io
    import pickle

    frozen = np.arange(5.0)
    frozen.flags.writeable = False
    arrays = {
        "c": np.arange(12, dtype=np.float32).reshape(3, 4).copy(), "fortran": np.asfortranarray(np.arange(20).reshape(4, 5)),
        "frozen": frozen, "big_endian": np.array([1, 2], dtype=">i4"), "zero_d": np.array(3.5),
        "empty": np.zeros((0, 3)), "metadata": np.zeros(2, dtype=np.dtype("f8", metadata={"unit": "m"})),
        "record": np.zeros(3, dtype=[("a", "f8"), ("b", "i2")]), "text": np.array(["ab", "c"]),
        # (a view of another array is pickled as a view of it: see _ViewPlan; this one's base is not one)
        "strided": np.ndarray((3,), dtype="f8", buffer=bytearray(48), strides=(16,)), "no_bytes": np.zeros(3, dtype="V0"),
        "with_objects": np.zeros(2, dtype=[("a", "f8"), ("o", "O")]), "times": np.zeros(2, dtype=[("t", "M8[ns]")]),
        "strings": np.array(["ab", "c"], dtype=np.dtypes.StringDType()),
    }
    for name, arr in arrays.items():
        skeleton, buffers = pickling.dumps(arr, None)
        assert buffers == [], name
        f = io.BytesIO()
        reference = pickle.Pickler(f, protocol=pickling.PROTOCOL)
        reference.dispatch_table = {np.ndarray: _numpys_own_reduce}
        reference.dump(arr)
        assert skeleton == f.getvalue(), name
        out = pickling.loads(skeleton, [], None)
        assert out.dtype == arr.dtype and out.shape == arr.shape and out.flags.writeable == arr.flags.writeable
        assert out.flags.f_contiguous or not arr.flags.f_contiguous, name  # Fortran order kept


def test_the_plain_and_the_cloudpickle_paths_write_the_same_bytes():
    import collections
    import io

    import pandas as pd
    from matplotlib.path import Path
    from matplotlib.transforms import Affine2D

    # (not a whole figure: matplotlib's callback registries advance a counter each time they are pickled)
    frame = pd.DataFrame({"t": pd.date_range("2024", periods=5), "s": list("abcde"), "x": np.arange(5.0)})
    shapes = [Path(np.random.default_rng(i).random((5, 2))) for i in range(3)]
    for value in (frame, {"method": frame.sum, "arr": np.arange(10), "shapes": shapes, "t": Affine2D().rotate(1)},
                  collections.OrderedDict(a=types.SimpleNamespace(x=1), b=collections.Counter("abc"))):
        plain = pickling._plain_dumps(value, None, lambda buf: True)
        assert plain is not None  # nothing in these needs cloudpickle
        f = io.BytesIO()
        pickling.NamespacePickler(f, None, lambda buf: True).dump(value)
        assert plain == f.getvalue()


def test_a_session_class_and_function_are_pickled_by_value_even_where_main_resolves_them(monkeypatch):
    # In a kernel `__main__` is the session's namespace, so the pickler finds session classes and
    # functions by name there: they must still be pickled by value (a fresh kernel has no `P`).
    main = types.ModuleType("__main__")
    monkeypatch.setitem(sys.modules, "__main__", main)
    ns = main.__dict__
    exec(textwrap.dedent("""
        class P:
            def __init__(self, x):
                self.x = x
            def double(self):
                return 2 * self.x
        def scale(v):
            return 10 * v
        value = {"points": [P(i) for i in range(3)], "scale": scale}
    """), ns)
    skeleton, buffers = pickling.dumps(ns["value"], ns)
    del ns["P"], ns["scale"]
    out = pickling.loads(skeleton, buffers, session_namespace())
    # by name, `__main__.P` would not be found now
    assert [p.double() for p in out["points"]] == [0, 2, 4] and out["scale"](2) == 20


def test_pickling_a_figure_again_gives_the_same_bytes_and_frees_no_object_it_holds():
    # matplotlib's CallbackRegistry draws its id counter when pickled; txgit sets it back. Setting it
    # back by replacing the counter freed an object every pickle, and a new object born at its address
    # was taken by the sharing walk's remembered ids for the old figure's: each new figure was grouped
    # with every old one and pickled again (Lecture-4-Matplotlib walked 2.5x the objects).
    ns = session_namespace(textwrap.dedent("""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots()
        ax.plot([1, 2, 3])
    """))
    fig = ns["fig"]
    from matplotlib.cbook import CallbackRegistry

    registries = [r for r in (fig._canvas_callbacks, ns["ax"].callbacks, ns["ax"].xaxis.callbacks,
                              ns["ax"].lines[0].__dict__.get("_callbacks")) if isinstance(r, CallbackRegistry)]
    assert len(registries) >= 3
    first = pickling.dumps(fig, ns)[0]
    counters = [r.__dict__["_cid_gen"] for r in registries]
    for _ in range(3):
        assert pickling.dumps(fig, ns)[0] == first
        assert [r.__dict__["_cid_gen"] for r in registries] == counters
        assert all(a is b for a, b in zip((r.__dict__["_cid_gen"] for r in registries), counters))
    # and the registry still hands out fresh ids, after the one the pickle recorded
    handlers = [lambda *a: None, lambda *a: None]
    ids = [registries[1].connect("xlim_changed", h) for h in handlers]
    assert ids[1] == ids[0] + 1 and pickling.dumps(fig, ns)[0] != first  # callbacks connected: a change


def test_a_read_that_computes_a_figures_transforms_gives_the_same_bytes_and_the_copy_computes_them_again():
    # matplotlib's transforms compute lazily and clear their `_invalid` flag when read: the first
    # `fig.get_size_inches()` changed the figure's pickle, so a cell that only read it committed it
    ns = session_namespace(textwrap.dedent("""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots()
        ax.plot([1, 2, 3])
    """))
    fig, ax = ns["fig"], ns["ax"]
    first = pickling.dumps(fig, ns)[0]
    assert list(fig.get_size_inches()) == [6.4, 4.8]  # reads that compute lazily kept values
    assert pickling.dumps(fig, ns)[0] == first
    assert ax.get_xlim() == (-0.1, 2.1)  # the view limits of what was plotted
    ax.transData.transform((1, 1)), ax.transAxes.inverted(), fig.bbox.width
    assert pickling.dumps(fig, ns)[0] == first
    # the copy of a figure whose transforms were all computed is not left valid below a changed parent
    fig.bbox.width  # noqa: B018 (computes the transforms)
    copy = pickling.loads(*pickling.dumps(fig, ns), session_namespace())
    assert copy.bbox.width == fig.bbox.width
    copy.set_size_inches(3, 2)
    assert copy.bbox.width == 3 * copy.dpi and list(fig.get_size_inches()) == [6.4, 4.8]
    fig.set_size_inches(3, 2)  # a change: other bytes
    assert pickling.dumps(fig, ns)[0] != first
    # a copy draws what the figure draws
    copy = pickling.loads(*pickling.dumps(fig, ns), session_namespace())
    assert copy.axes[0].get_xlim() == ax.get_xlim()
    drawn = []
    for f in (fig, copy):
        f.canvas.draw()
        drawn.append(bytes(f.canvas.buffer_rgba()))
    assert drawn[0] == drawn[1]
