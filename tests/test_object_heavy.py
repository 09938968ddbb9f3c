"""Object-heavy values (issue 17): the per-type decisions that make pickling and the aliasing walk
cheap must not change what is committed or restored.

Values are made by session code (exec'd as `__main__`), as in a notebook.
"""

from __future__ import annotations

import copyreg
import textwrap

import numpy as np
from conftest import session_namespace

from txgit import Workspace
from txgit.state import pickling
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
    target = id(ns["shared"])
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
