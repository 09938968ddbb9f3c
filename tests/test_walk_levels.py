"""The sharing walk, level by level in bulk (issue 19: the walk was a quarter of a first commit), finds
exactly what the object-by-object walk it replaced found, on many generated graphs: wide levels (the
bulk path) and narrow ones, cycles, shared objects, tuples, dict keys that are objects, slots, closures,
numpy views and object arrays, objects a library holds, and ``known`` sets from an earlier walk.

The reference below is the walk as it was before (a stack, one object per step), kept here as the
oracle for these tests.
"""

from __future__ import annotations

import collections
import importlib
import random
import sys
import textwrap
import types
from typing import Any

import numpy as np
import pytest
from conftest import session_namespace

from txgit.state.identity import identity
from txgit.state.snapshot import sharing_groups

snapshot = importlib.import_module("txgit.state.snapshot")  # the module (txgit.state exports a function so named)


def reference_walk(values: dict[str, Any], namespace: dict[str, Any],
                   known: dict[str, set[int]] | None = None) -> dict[str, set[int]]:
    """The stack walk as it was before the level walk (main at 21d89fb), unchanged in what it does."""
    s = snapshot
    kinds = s._walk_kinds
    claimed: set[int] = set().union(*known.values()) if known else set()
    out: dict[str, set[int]] = {}
    library = s._library_state.objects
    refreshed = False
    named = set(map(identity, namespace.values()))
    for name, value in values.items():
        ids: set[int] = set()
        seen: set[int] = set()
        stack = [value]
        pop, extend = stack.pop, stack.extend
        while stack:
            obj = pop()
            kind = kinds[type(obj)]
            if kind == s._SKIP:
                continue
            oid = identity(obj)
            if oid in library and library[oid] is obj and oid not in named:
                continue
            if kind == s._ITEMS:
                if oid not in seen:
                    seen.add(oid)
                    extend(obj)
                continue
            if oid in claimed:
                ids.add(oid)
                continue
            if kind == s._OBJECT:
                if not refreshed:
                    s._library_state.refresh()
                    refreshed = True
                claimed.add(oid)
                ids.add(oid)
                state = getattr(obj, "__dict__", None)
                if type(state) is dict or isinstance(state, dict):
                    extend(state.values())
                for slot in s._slot_names(type(obj)):
                    if hasattr(obj, slot):
                        stack.append(getattr(obj, slot))
            elif kind == s._VALUES:
                claimed.add(oid)
                ids.add(oid)
                extend(obj.values())
            elif kind == s._MUTABLE_ITEMS:
                claimed.add(oid)
                ids.add(oid)
                extend(obj)
            elif kind == s._FUNCTION:
                if s._is_session_function(obj, namespace):
                    claimed.add(oid)
                    ids.add(oid)
                    extend(c.cell_contents for c in (obj.__closure__ or ()) if s._cell_full(c))
                    extend(obj.__defaults__ or ())
            else:
                claimed.add(oid)
                ids.add(oid)
                if getattr(obj, "dtype", None) == object and hasattr(obj, "ravel"):  # noqa: E721 (a numpy dtype)
                    extend(obj.ravel().tolist())
                ids.update(s._memory_ids(obj))
        out[name] = ids
    return out


def reference_groups(names: list[str], shared: dict[str, set[int]]) -> list[list[str]]:
    """sharing_groups as it was before (one id at a time), the oracle for the set-operation one."""
    uf = snapshot._UnionFind(names)
    owner: dict[int, str] = {}
    for name in uf.parent:
        for oid in shared.get(name, ()):
            other = owner.setdefault(oid, name)
            if other != name:
                uf.union(name, other)
    return uf.components()


# Session classes (their module is __main__, as in a kernel) and a stand-in library module whose
# globals and class attributes the walk treats as the library's own.
CLASSES = textwrap.dedent("""
    import collections
    class Plain:
        def __init__(self):
            self.items = []
    class Slotted:
        __slots__ = ("a", "b")
    class Both:
        __slots__ = ("s", "__dict__")
    class MyDict(dict):
        pass
    class MyList(list):
        pass
    Point = collections.namedtuple("Point", "x y")
""")

fakelib = types.ModuleType("txgit_test_fakelib")
fakelib.registry = {"cmap": [0.1, 0.2], "marker": {"path": [1, 2]}, "n": 3}
fakelib.defaults = [["lw"], ["ls"]]


class LibThing:
    size = [10]


LibThing.__module__ = fakelib.__name__
fakelib.LibThing = LibThing
sys.modules[fakelib.__name__] = fakelib


class Graph:
    """A random object graph: mutable containers made empty, immutable ones over what exists, then
    the mutable ones filled from everything (so cycles happen), some wide, some chained deep."""

    def __init__(self, seed: int, ns: dict[str, Any]) -> None:
        self.rng = random.Random(seed)
        self.ns = ns
        self.nodes: list[Any] = []
        self.atoms = [0, 1.5, "s", b"b", None, True, 3j, range(3), ..., slice(1, 2), int, len, np]

    def pick(self) -> Any:
        r = self.rng.random()
        if r < 0.35 or not self.nodes:
            return self.rng.choice(self.atoms)
        if r < 0.40:
            return self.rng.choice([fakelib.registry["cmap"], fakelib.registry["marker"], fakelib.defaults[0],
                                    LibThing.size, fakelib.registry])
        return self.rng.choice(self.nodes)

    def hashable(self) -> Any:
        for _ in range(5):
            v = self.pick()
            try:
                hash(v)
            except TypeError:
                continue
            return v
        return "fallback"

    def build(self, n: int) -> list[Any]:
        ns, rng = self.ns, self.rng
        mutable: list[Any] = []
        for _ in range(n):
            kind = rng.choice(["list", "dict", "set", "plain", "slotted", "both", "mydict", "mylist", "deque",
                               "odict", "ddict", "func", "array", "objarray", "lib"])
            if kind == "list":
                node: Any = []
            elif kind == "dict":
                node = {}
            elif kind == "set":
                node = set()
            elif kind == "plain":
                node = ns["Plain"]()
            elif kind == "slotted":
                node = ns["Slotted"]()
            elif kind == "both":
                node = ns["Both"]()
            elif kind == "mydict":
                node = ns["MyDict"]()
            elif kind == "mylist":
                node = ns["MyList"]()
            elif kind == "deque":
                node = collections.deque()
            elif kind == "odict":
                node = collections.OrderedDict()
            elif kind == "ddict":
                node = collections.defaultdict(list)
            elif kind == "func":
                captured = [self.pick() for _ in range(rng.randint(0, 3))]
                code = "def _f(x=None, y=0):\n    return (x, y, " + ", ".join(
                    f"c{i}" for i in range(len(captured))) + ")\n"
                scope = {f"c{i}": c for i, c in enumerate(captured)}
                fn_src = "def _outer(" + ", ".join(scope) + "):\n" + textwrap.indent(code, "    ") + "    return _f\n"
                exec(fn_src, ns)
                node = ns.pop("_outer")(**scope)
                node.__defaults__ = (self.pick(), self.pick())
            elif kind == "array":
                base = np.arange(20.0)
                node = base[rng.randint(0, 5):] if rng.random() < 0.5 else base
            elif kind == "objarray":
                node = np.empty(3, dtype=object)
            else:
                node = LibThing()
            self.nodes.append(node)
            mutable.append(node)
        for _ in range(n // 3):  # immutable ones over what exists
            items = [self.pick() for _ in range(rng.randint(0, 4))]
            if rng.random() < 0.6:
                self.nodes.append(tuple(items))
            elif rng.random() < 0.5:
                self.nodes.append(ns["Point"](self.pick(), self.pick()))
            else:
                self.nodes.append(frozenset(self.hashable() for _ in range(3)))
        for node in mutable:
            width = rng.choice([0, 1, 2, 3, 5, 60, 150]) if rng.random() < 0.3 else rng.randint(0, 3)
            self.fill(node, width)
        return mutable

    def fill(self, node: Any, width: int) -> None:
        rng = self.rng
        items = [self.pick() for _ in range(width)]
        if isinstance(node, dict):
            for i, v in enumerate(items):
                # keys that are objects are not walked (only values are): mix some in
                key = self.hashable() if rng.random() < 0.2 else f"k{i}"
                node[key] = v
        elif isinstance(node, set):
            node.update(self.hashable() for _ in items)
        elif isinstance(node, (list, collections.deque)):
            node.extend(items)
        elif isinstance(node, np.ndarray) and node.dtype == object:
            for i in range(len(node)):
                node[i] = self.pick()
        elif type(node).__name__ == "Plain":
            node.items.extend(items)
            node.extra = self.pick()
        elif type(node).__name__ == "Slotted":
            node.a = items
            if rng.random() < 0.5:
                node.b = self.pick()  # an unset slot otherwise
        elif type(node).__name__ == "Both":
            node.s = self.pick()
            node.more = items


def _compare(values: dict[str, Any], ns: dict[str, Any]) -> None:
    new = snapshot.walk_shared(values, ns)
    old = reference_walk(values, ns)
    assert new == old
    assert sharing_groups(values, new) == reference_groups(list(values), old)
    # names that reach nothing, or that the sets do not mention, are groups of their own
    assert sharing_groups(["zz", *values, "aa"], new) == reference_groups(["zz", *values, "aa"], old)
    names = list(values)
    half = {n: values[n] for n in names[: len(names) // 2]}
    rest = {n: values[n] for n in names[len(names) // 2:]}
    known = reference_walk(half, ns)
    assert snapshot.walk_shared(rest, ns, known) == reference_walk(rest, ns, known)


@pytest.mark.parametrize("seed", range(40))
def test_the_level_walk_finds_what_the_stack_walk_found(seed):
    ns = session_namespace(CLASSES)
    graph = Graph(seed, ns)
    nodes = graph.build(random.Random(seed).choice([20, 80, 300]))
    rng = random.Random(seed + 1000)
    chosen = rng.sample(nodes, min(len(nodes), rng.randint(1, 12)))
    values = {f"v{i}": v for i, v in enumerate(chosen)}
    if rng.random() < 0.3:
        values["lib"] = fakelib.registry["cmap"]  # a library's object named by a variable is its own
    ns.update(values)
    reference_walk(values, ns)  # types learnt the same way for both walks
    _compare(values, ns)


def test_wide_levels_of_records_tuples_and_shared_lists():
    """bench_core's small objects: a list of 13,000 dicts, a dict of tuples, and lists shared across them."""
    shared = [1, 2]
    ns = session_namespace()
    ns["records"] = [{"id": i, "name": f"user-{i}", "tags": ["a", str(i % 7)], "s": shared if i % 100 == 0 else i}
                     for i in range(13_000)]
    ns["lookup"] = {f"k{i}": (i, float(i), shared if i % 500 == 0 else None) for i in range(13_000)}
    ns["shared"] = shared
    ns["alone"] = [[[i]] for i in range(200)]
    values = {n: ns[n] for n in ("records", "lookup", "shared", "alone")}
    _compare(values, ns)
    walked = snapshot.walk_shared(values, ns)
    assert identity(shared) in walked["records"] and identity(shared) in walked["lookup"]
    assert len(walked["records"]) == 1 + 2 * 13_000 + 1


def test_a_deep_chain_is_walked_to_its_end():
    """A linked list 5,000 deep: every level holds one object (the one-by-one path), none is missed."""
    head: list[Any] = []
    node = head
    for _ in range(5000):
        nxt: list[Any] = []
        node.append({"next": nxt})
        node = nxt
    ns = session_namespace()
    ns["head"], ns["tail"] = head, node
    _compare({"head": head, "tail": node}, ns)
    assert identity(node) in snapshot.walk_shared({"head": head}, ns)["head"]


def test_many_instances_of_one_class_walked_in_bulk_find_what_the_stack_walk_found():
    """100 k plain instances (bench_serialize's workload) are one level of one class: their
    ``__dict__`` values are taken in bulk; some share a list, some hold a library's object."""
    ns = session_namespace(CLASSES)
    ns["LIB"] = fakelib.registry["marker"]
    exec(textwrap.dedent("""
        import types
        shared = [1]
        items = []
        for i in range(3000):
            p = Plain()
            p.items.append(i)
            p.n = types.SimpleNamespace(i=i, tags=["x"], s=shared if i % 1000 == 0 else None)
            items.append(p)
        spaces = [types.SimpleNamespace(i=i, d={"k": [i]}) for i in range(2000)]
        spaces.append(types.SimpleNamespace(lib=LIB["path"]))
        del p, i
    """), ns)
    ns.pop("LIB")
    ns["thing"] = LibThing()  # walked first: the library's objects are learnt from its class
    values = {n: ns[n] for n in ("thing", "items", "spaces", "shared")}
    reference_walk(values, ns)
    _compare(values, ns)
    walked = snapshot.walk_shared(values, ns)
    assert identity(ns["shared"]) in walked["items"]
    assert identity(fakelib.registry["marker"]["path"]) not in walked["spaces"]  # the library's
    assert len(walked["spaces"]) == 1 + 2001 + 2 * 2000


def test_groups_joined_only_through_the_largest_set():
    """sharing_groups takes the largest set last and never indexes its ids: two small values that share
    nothing with each other but each an object with the largest are still one group with it, whatever
    order the names come in; a small value touching none of them stays alone."""
    shared = {"big": set(range(1000, 5000)) | {1, 2}, "a": {1, 10}, "b": {2, 20}, "c": {30, 31}, "d": {10, 40}}
    for names in (["big", "a", "b", "c", "d"], ["d", "c", "b", "a", "big"], ["a", "big", "c", "d", "b"]):
        assert sharing_groups(names, shared) == reference_groups(names, shared)
        assert sorted(map(sorted, sharing_groups(names, shared))) == [["a", "b", "big", "d"], ["c"]]


def test_the_walk_tells_objects_apart_by_identity_not_by_their_hash():
    """The walk's identity (:mod:`txgit.state.identity`) is ``object.__hash__``, the address, not the
    object's own ``__hash__``: objects that hash alike (or not at all) are still told apart, and an
    alias still groups. ``hash`` in its place would glue ``a`` and ``b`` (and fail on ``c``); ``id``
    in a set beside the walk's would never meet them."""
    ns = session_namespace(textwrap.dedent("""
        class Alike:
            def __hash__(self):
                return 0
            def __eq__(self, other):
                return True
        class Unhashable:
            __hash__ = None
        a, b = Alike(), Alike()
        c = [Unhashable()]
        d = {"a": a}
        e = {"c": c[0]}
    """))
    names = ["a", "b", "c", "d", "e"]
    walked = snapshot.walk_shared({n: ns[n] for n in names}, ns)
    assert identity(ns["a"]) in walked["a"] and identity(ns["c"][0]) in walked["c"]
    assert sharing_groups(names, walked) == [["a", "d"], ["b"], ["c", "e"]]
    assert len({identity(ns[n]) for n in names}) == len(names)


def test_an_array_that_views_nothing_is_walked_without_look_ups(monkeypatch):
    """A drawn 4x4 figure's walk meets ~11,500 small arrays (paths, line data), a fifth of them views:
    each asked ``dtype == object`` (a dtype built from ``object`` to compare) and ``_memory_ids``
    (numpy looked up, ``isinstance``) at 330 ns a leaf; an exact ndarray is now two attribute reads
    (170 ns). What the shortcut skips is still found: a view's base, an object array's objects."""
    calls = []
    real = snapshot._memory_ids
    monkeypatch.setattr(snapshot, "_memory_ids", lambda obj: calls.append(obj) or real(obj))
    base = np.arange(10.0)
    inner = {"in": 1}
    objects = np.empty(2, dtype=object)
    objects[0] = inner
    namespace = {"plain": [np.zeros(3) for _ in range(100)], "view": base[2:], "base": base,
                 "objects": objects, "inner": inner, "matrix": np.matrix([[1.0]])}
    walked = snapshot.walk_shared(dict(namespace), namespace)
    looked_up = list(calls)
    assert walked == reference_walk(dict(namespace), namespace)
    groups = sharing_groups(namespace, walked)
    assert ["base", "view"] in groups and ["inner", "objects"] in groups and ["plain"] in groups
    assert len(looked_up) == 2 and any(o is namespace["view"] for o in looked_up)
    assert any(type(o) is np.matrix for o in looked_up)  # (a subclass: as before)
