"""Changes no cell named: values a library mutated through its own state.

Tracking by name (:mod:`txgit.sessions.tracking`) misses a value changed by
code that reaches it another way: ``plt.plot(...)`` draws into the current
axes, which a variable ``ax`` holds; ``registry.register(5)`` appends to a
list of an object a variable ``r`` holds. This module finds those, cheaply:

* **candidates**: library code can only change what it reaches, and what a
  package reaches of a session's values is, in practice, its own kind of
  object. So after a cell, the variables it did not name whose value's type
  (or, for a list, tuple, set or dict, an element's type) comes from a
  top-level package the cell used (a module, function, class or object of
  that package that the cell named, or that session code it called names)
  are candidates; nothing else is looked at.
* **fingerprints**: a candidate is pickled with the C pickler (protocol 5,
  large buffers out of band) and the bytes hashed with xxh3; the digest is
  compared with the one taken the last time it was looked at (after an
  earlier cell, or just before this one). Candidates sharing objects are
  fingerprinted together, once. Only a changed digest, or none to compare
  with, sends a value to the commit, which serializes it as usual.

Not seen: a value of another package than the ones the cell used (a
library changing an object of another library it was never given); values
of a library that keeps none in its own state (arrays, frames,
scikit-learn's estimators: see ``_package_of``), which it changes only when
given them by name or through a value sharing them; and values whose pickle does not show the change (state pickled by reference,
such as a class's attributes or a module's globals; matplotlib's callback
registries, which are left out because pickling one changes it).
"""

from __future__ import annotations

import copyreg
import datetime
import io
import operator
import pickle
import sys
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import cloudpickle
import xxhash

from txgit.state.snapshot import library_module_of

# Packages whose objects are the session's own or the language's: their changes are found by name
# (tracking's reach covers session code), and every value would be a candidate through them.
_NOT_LIBRARIES = frozenset({"builtins", "__main__", ""})
_SAMPLE = 32  # elements of a container whose types are looked at


def _top(module: object) -> str:
    return module.partition(".")[0] if isinstance(module, str) else ""


def _element_types(value: Any) -> Iterable[type]:
    t = type(value)
    if t is dict:
        items: Iterable[Any] = value.values()
    elif t in (list, tuple, set, frozenset):
        items = value
    elif getattr(getattr(value, "dtype", None), "hasobject", False) and hasattr(value, "flat"):
        items = value.flat  # an object array holds anything: `fig, axs = plt.subplots(2, 2)`
    else:
        return ()
    out = []
    for i, x in enumerate(items):
        if i >= _SAMPLE:
            break
        out.append(type(x))
    return out


_packages: dict[type, str] = {}  # type -> its top-level package, "" for passive data (see _package_of)
_packages_made_with: list[bool] = [False, False, False]  # whether numpy, pandas, sklearn were loaded when filled


def _package_of(t: type) -> str:
    """The top-level package of ``t`` as a place a library can change values from: "" for arrays,
    frames and their scalars, data that numpy and pandas never keep in their own state (so a library
    cannot change one the cell did not name; a view of one is an alias, found by name), and for
    scikit-learn's estimators (see _passive_estimator). Without this, every cell that calls ``np.``
    anything would fingerprint every array it did not name."""
    np, pd = sys.modules.get("numpy"), sys.modules.get("pandas")
    estimator = getattr(sys.modules.get("sklearn.base"), "BaseEstimator", None)
    loaded = [np is not None, pd is not None, estimator is not None]
    if loaded != _packages_made_with:  # a type cached before numpy, pandas or scikit-learn came may be theirs
        _packages.clear()
        _packages_made_with[:] = loaded
    top = _packages.get(t)
    if top is None:
        kinds: tuple[type, ...] = ((np.ndarray, np.generic) if np is not None else ()) + (
            (pd.DataFrame, pd.Series, pd.Index) if pd is not None else ())
        top = _top(t.__module__)
        if kinds and issubclass(t, kinds) or _passive_estimator(t, top, estimator):
            top = ""
        _packages[t] = top
    return top


def _passive_estimator(t: type, top: str, estimator: type | None) -> bool:
    """scikit-learn's own estimators: it keeps none in its own state (no registry, no current model), so
    one changes only through a call that names it (``model.fit``) or a value sharing it (a pipeline).
    Without this, every cell that calls ``sklearn.metrics`` fingerprinted every fitted model it did not
    name (a forest of 1,000 trees: 60 ms, before and after the cell). Its other objects (a display that
    holds a figure) stay candidates."""
    return estimator is not None and top == "sklearn" and issubclass(t, estimator)


def value_packages(value: Any) -> set[str]:
    """Top-level packages a value is made of: its type's, or its elements' (a list of axes); arrays and
    frames are made of none (see :func:`_package_of`)."""
    return {_package_of(t) for t in (type(value), *_element_types(value))} - _NOT_LIBRARIES


def used_packages(value: Any) -> set[str]:
    """Top-level packages whose code a cell runs, or whose state it reaches, by using ``value``."""
    if isinstance(value, types.ModuleType):
        return {_top(value.__name__)} - _NOT_LIBRARIES
    if isinstance(value, types.MethodType):
        return (used_packages(value.__self__) | {_top(getattr(value.__func__, "__module__", None))}) - _NOT_LIBRARIES
    if isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)):
        return {_top(getattr(value, "__module__", None))} - _NOT_LIBRARIES
    # a frame's methods are pandas code (df.plot draws with matplotlib through it): passive or not
    return {_top(t.__module__) for t in (type(value), *_element_types(value))} - _NOT_LIBRARIES


def _callbacks_reduce(registry: Any) -> tuple[Any, ...]:
    # matplotlib's CallbackRegistry pickles the next value of its id counter, taking it: every pickle of
    # a figure differs from the last. The callbacks are plumbing, not the figure's content: left out.
    return (type(registry), ())


_tables: dict[int, dict[Any, Any]] = {}


def _stable_reducers() -> dict[Any, Any] | None:
    """A pickle dispatch table for types whose own pickling changes them (None: none is loaded)."""
    cbook = sys.modules.get("matplotlib.cbook")
    registry = getattr(cbook, "CallbackRegistry", None)
    if registry is None:
        return None
    table = _tables.get(id(registry))
    if table is None:
        table = _tables[id(registry)] = {**copyreg.dispatch_table, registry: _callbacks_reduce}
    return table


def fingerprint(values: tuple[Any, ...]) -> bytes | None:
    """A digest of the object graphs of ``values`` (None: they cannot be pickled).

    The C pickler walks the graph at C speed; large buffers (arrays) go out of band and are hashed
    where they lie. Values it refuses (lambdas, local classes) are tried with cloudpickle."""
    buffers: list[pickle.PickleBuffer] = []
    try:
        out = io.BytesIO()
        pickler = pickle.Pickler(out, protocol=5, buffer_callback=buffers.append)
        table = _stable_reducers()
        if table:
            pickler.dispatch_table = table
        pickler.dump(values)
        skeleton = out.getvalue()
    except Exception:
        buffers = []
        try:
            skeleton = cloudpickle.dumps(values, protocol=5, buffer_callback=buffers.append)
        except Exception:
            return None
    h = xxhash.xxh3_128(skeleton)
    for b in buffers:
        try:
            h.update(b.raw())
        except BufferError:  # not contiguous: hash a copy
            h.update(bytes(memoryview(b)))
    return h.digest()


def open_figures() -> set[int] | None:
    """ids of the figures pyplot holds open (None: pyplot is not in use). Inline plotting in a notebook
    closes every figure when its cell ends."""
    helpers = sys.modules.get("matplotlib._pylab_helpers")
    if helpers is None or "matplotlib.artist" not in sys.modules:
        return None
    try:
        return {id(m.canvas.figure) for m in list(helpers.Gcf.figs.values())}
    except Exception:
        return None


_ARTISTS_LOOKED_AT = 1024  # a container of more artists than this is looked at as any value
# Where a matplotlib object that is no artist keeps what ties it to a figure: a colorbar its axes and
# image, a formatter or locator its axis, a grid spec its figure.
_FIGURE_LINKS = ("figure", "axes", "ax", "axis", "mappable")
_PLOTTING = frozenset({"matplotlib", "mpl_toolkits"})


def _root_figure(artist: Any) -> Any:
    """The figure at the top of ``artist`` (a subfigure's figure's ...), or None: not in one."""
    figure = artist
    for _ in range(8):
        parent = getattr(figure, "figure", None)
        if parent is None or parent is figure:
            break
        figure = parent
    return figure if getattr(figure, "figure", None) is figure else None


def _in_closed_figure(x: Any, artist: type, open_at_start: set[int]) -> bool:
    """Whether ``x`` is an artist, or a matplotlib object tied to artists, whose figures were all
    closed when the cell started (False: not in a figure, or tied to anything else)."""
    if isinstance(x, artist):
        figure = _root_figure(x)
        return figure is not None and id(figure) not in open_at_start
    if _top(getattr(type(x), "__module__", None)) not in _PLOTTING:
        return False
    tied = False
    for link in _FIGURE_LINKS:
        try:
            y = getattr(x, link, None)
        except Exception:
            return False
        if y is None:
            continue
        if not isinstance(y, artist):
            return False
        figure = _root_figure(y)
        if figure is None or id(figure) in open_at_start:
            return False
        tied = True
    return tied


def _in_closed_figures(value: Any, open_at_start: set[int]) -> bool:
    """Whether ``value`` is matplotlib artists (an axes, a figure, a list, tuple or array of them) or
    objects tied to them (a colorbar, a formatter: see _in_closed_figure) whose figures were all
    closed when the cell started. Library code reaches a figure through pyplot's registry of open
    ones; once closed, only code that names it (or something sharing objects with it, which is
    serialized again as named) can draw into it."""
    artist = getattr(sys.modules.get("matplotlib.artist"), "Artist", None)
    if artist is None:
        return False
    t = type(value)
    if t is dict:
        items: Any = list(value.values())
    elif isinstance(value, (list, tuple)):  # a BarContainer is a tuple of its bars
        items = value
    elif getattr(getattr(value, "dtype", None), "hasobject", False) and hasattr(value, "flat"):
        items = list(value.flat) if value.size <= _ARTISTS_LOOKED_AT else None
    else:
        items = [value]
    if not items or len(items) > _ARTISTS_LOOKED_AT:
        return False
    return all(_in_closed_figure(x, artist, open_at_start) for x in items)


_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class defined in Python, whose instances' class can be assigned


def _passive_for_life(value: Any) -> bool:
    """Whether ``value`` is made of no library's objects (see :func:`_package_of`) for as long as it
    lives: a numpy array or scalar of no objects. Its class cannot be assigned (numpy's are no heap
    types) and numpy refuses to change an array's dtype to or from one that holds objects, so the
    verdict holds while a name holds the same object. (A matrix, a frame: classes defined in Python,
    looked at each time.)"""
    np = sys.modules.get("numpy")
    t = type(value)
    return (np is not None and (t is np.ndarray or issubclass(t, np.generic)) and not t.__flags__ & _HEAPTYPE
            and not value.dtype.hasobject)


def _bound_by_its_module(value: Any) -> tuple[dict[str, Any], str] | None:
    """(its module's __dict__, its name there) for a value its own module binds under its ``__qualname__``
    and that pickles as that reference (its ``__reduce_ex__`` gives a name: numpy's array-function
    dispatchers, which are no Python functions), so its fingerprint cannot change while the module
    binds it. None: anything else (an object that merely looks like a function it wraps pickles by value)."""
    try:  # (a proxy's __getattr__ may raise anything)
        module, name = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
        if not isinstance(module, str) or not isinstance(name, str):
            return None
        found = getattr(sys.modules.get(module), "__dict__", None)
        if not isinstance(found, dict) or found.get(name, _MISSING) is not value:
            return None
        by_name = isinstance(value.__reduce_ex__(5), str)
    except Exception:
        return None
    return (found, name) if by_name else None


class UnnamedChanges:
    """Fingerprints of a session's candidate values, kept between cells.

    Each entry is held with the objects it was taken of (not their ids: an id can be reused by a
    new object): it is valid while the namespace still holds exactly those objects.
    """

    def __init__(self) -> None:
        # members (sorted names) -> (their values when fingerprinted, the digest)
        self._prints: dict[tuple[str, ...], tuple[tuple[Any, ...], bytes | None]] = {}
        self.fingerprinted = 0  # groups fingerprinted so far (what the cost test counts)
        # ids of pyplot's open figures when the running cell started (see cell_starts)
        self._open_at_start: set[int] | None = None
        # name -> (the library's own object it held, that module's __dict__, the name it has there): no
        # candidate while the name still holds it and the module still binds it (`from pylab import *`
        # binds ~900 of them, which every cell that used numpy looked up in their modules again, before
        # and after it)
        self._own: dict[str, tuple[Any, dict[str, Any], str]] = {}
        # name -> the value it held when found to be no library's (a number, a short string, a module, a
        # class, a function, an array of no objects), and that value's id: not looked at again while the
        # name holds it, which the hook's fingerprint of every name (name -> id) says in C (held: its id
        # cannot go to another object)
        self._plain: dict[str, Any] = {}
        self._plain_ids: dict[str, int] = {}
        # of ``_own``'s names, those found still holding their object with an id at hand: name -> that id.
        # Skipped as plain ones are while every module still binds every such object, which
        # :meth:`_own_still_bound` checks in C (Lecture-2's `from numpy import *`: ~330 names, a loop over
        # them in Python before and after every cell that used a library)
        self._own_ids: dict[str, int] = {}
        self._own_columns: tuple[list[dict[str, Any]], list[str], list[Any]] | None = None  # (None: rebuild)

    def cell_starts(self) -> None:
        """Note which figures are open as a cell starts: artists of the others are no candidates."""
        self._open_at_start = open_figures()

    def candidates(self, namespace: Mapping[str, Any], names: Iterable[str], packages: set[str],
                   ids: Mapping[str, int] | None = None) -> list[str]:
        """``names`` whose values are made of one of ``packages`` (modules are stored by name: never),
        less matplotlib artists (and colorbars, formatters ... tied to them) whose figures were closed
        when the cell started (a notebook's figures of earlier cells: fingerprinting every one of them
        after every plotting cell was most of the cost of the slowest cells), less a library's own
        objects, which a commit records by name whatever they hold (``from pylab import *``).

        ``ids``: name -> identity of every variable's value now (a hook's fingerprint); with it, names
        still holding a value found plain before (an array of no objects too) are not looked at again,
        nor those still holding a library's own object while its module still binds it."""
        if not packages:
            return []
        plain = None
        if ids is not None:
            self._forget_plain(ids)
            plain = self._plain
            names = (names if isinstance(names, (set, frozenset)) else set(names)) - plain.keys()
            if self._own_ids and self._own_still_bound(ids):
                names -= self._own_ids.keys()
        out = []
        own = self._own
        for n in names:
            v = namespace.get(n)
            # numbers, strings and builtins are no library's (value_packages would say so, slower: after
            # `from pylab import *` hundreds of names hold them, looked at before and after every cell)
            if type(v) in _ATOMS or isinstance(v, (types.ModuleType, type, types.FunctionType,
                                                   types.BuiltinFunctionType)) or _passive_for_life(v):
                if plain is not None and n in ids and not (isinstance(v, (str, bytes)) and len(v) > 1024):
                    plain[n], self._plain_ids[n] = v, ids[n]
                continue
            mine = own.get(n)
            if mine is not None and mine[0] is v and mine[1].get(mine[2], _MISSING) is v:
                if ids is not None and n in ids:  # still the library's own object, as its module still says
                    self._own_ids[n] = ids[n]
                continue
            if mine is not None:  # no longer (so that the others are checked at once again)
                del own[n]
                self._own_ids.pop(n, None)
                self._own_columns = None
            if not self.out_of_reach(v, packages):
                library = library_module_of(n, v)
                if library is not None:  # the library's own object (pylab's rcParams): committed by name
                    self._own_object(n, (v, sys.modules[library].__dict__, n))
                    continue
                where = _bound_by_its_module(v)
                if where is not None:  # numpy.linalg's `cholesky`, a dispatcher: pickles as that reference
                    self._own_object(n, (v, *where))
                    continue
                out.append(n)
        return out

    def _own_object(self, name: str, entry: tuple[Any, dict[str, Any], str]) -> None:
        self._own[name] = entry
        self._own_columns = None

    def _own_still_bound(self, ids: Mapping[str, int]) -> bool:
        """Whether the names of ``_own_ids`` still hold those objects (``ids``: name -> id now) and their
        modules still bind every library object ``_own`` holds, each under its name there. In C: the
        dict look-ups and identity tests run in ``map``. False: each is asked again, as before."""
        self._forget_own_ids(ids)
        columns = self._own_columns
        if columns is None:
            entries = list(self._own.values())
            columns = self._own_columns = ([e[1] for e in entries], [e[2] for e in entries], [e[0] for e in entries])
        modules, names, values = columns
        # (dict.get gives None for a name its module no longer binds: never a library's own object)
        return all(map(operator.is_, map(dict.get, modules, names), values))

    def out_of_reach(self, value: Any, packages: set[str]) -> bool:
        """Whether the running cell's library code (of ``packages``) cannot have changed ``value``: it is
        made of none of them, or it is matplotlib artists whose figures were closed when the cell started
        (see :meth:`candidates`)."""
        if value_packages(value).isdisjoint(packages):
            return True
        closed = self._open_at_start if "matplotlib" in packages else None
        return closed is not None and _in_closed_figures(value, closed)

    def _valid(self, key: tuple[str, ...], namespace: Mapping[str, Any]) -> tuple[Any, ...] | None:
        entry = self._prints.get(key)
        if entry is None:
            return None
        objs = entry[0]
        if any(namespace.get(n, _MISSING) is not o for n, o in zip(key, objs)):
            return None
        return objs

    def baseline(self, namespace: Mapping[str, Any], groups: Iterable[Sequence[str]]) -> None:
        """Fingerprint the groups (names that share objects, sorted: fingerprinted together) that have no
        valid fingerprint yet (just before a cell runs)."""
        for key in map(tuple, groups):
            if self._valid(key, namespace) is None:
                values = tuple(namespace[n] for n in key)
                self._prints[key] = (values, fingerprint(values))
                self.fingerprinted += 1

    def changed(self, namespace: Mapping[str, Any], groups: Iterable[Sequence[str]]) -> set[str]:
        """Names of ``groups`` whose graphs differ from their last fingerprint (or have none, or
        cannot be fingerprinted); every group's fingerprint is now the one taken here."""
        out: set[str] = set()
        for key in map(tuple, groups):
            old = self._prints.get(key) if self._valid(key, namespace) is not None else None
            values = tuple(namespace[n] for n in key)
            digest = fingerprint(values)
            self.fingerprinted += 1
            self._prints[key] = (values, digest)
            if old is None or digest is None or old[1] != digest:
                out.update(key)
        return out

    def forget(self, names: Iterable[str]) -> None:
        """Drop fingerprints that involve ``names`` (serialized again, or changed by name)."""
        names = set(names)
        for key in [k for k in self._prints if not names.isdisjoint(k)]:
            del self._prints[key]

    def _forget_plain(self, ids: Mapping[str, int]) -> None:
        """Forget the plain values of names that no longer hold them (the set difference is in C)."""
        if self._plain_ids.items() <= ids.items():  # (no set built: most hooks, nothing rebound)
            return
        for n, _ in self._plain_ids.items() - ids.items():
            del self._plain[n], self._plain_ids[n]

    def _forget_own_ids(self, ids: Mapping[str, int]) -> None:
        """Forget the ids of library objects that names no longer hold (as :meth:`_forget_plain`)."""
        if not self._own_ids.items() <= ids.items():
            for n, _ in self._own_ids.items() - ids.items():
                del self._own_ids[n]

    def prune(self, namespace: Mapping[str, Any], ids: Mapping[str, int] | None = None) -> None:
        """Drop fingerprints of values no longer held (they would keep the old objects alive); ``ids``:
        name -> id of every variable's value now."""
        own: Iterable[str] = self._own.keys()
        if ids is not None:
            self._forget_plain(ids)
            self._forget_own_ids(ids)
            own = own - self._own_ids.keys()  # (those still hold theirs: the same id, and the entry holds it)
        else:
            self._plain.clear()
            self._plain_ids.clear()
            self._own_ids.clear()
        for key in [k for k in self._prints if self._valid(k, namespace) is None]:
            del self._prints[key]
        for n in [n for n in own if namespace.get(n, _MISSING) is not self._own[n][0]]:
            del self._own[n]
            self._own_ids.pop(n, None)
            self._own_columns = None

    def clear(self) -> None:
        self._prints.clear()  # (the library objects' verdicts are checked on use: kept)
        self._plain.clear()
        self._plain_ids.clear()


_MISSING = object()


# -- values a cell only read ---------------------------------------------------------------------
#
# A cell that reads a variable (`len(rows)`, `arr.mean()`, `df.head()`, `e * 2`) touches it, and a
# touched name used to be serialized again to learn that it had not changed. For values whose
# content can be summed up without pickling, a token taken just before the cell and again after
# it says so instead: equal tokens (and the same object) mean the same content, so the name needs
# no serialization. Anything else gets no token (None) and is checked in full, as before.

# Types whose instances never change: the same object is the same content.
_ATOMS = frozenset({int, float, complex, str, bytes, bool, type(None), range,
                    datetime.datetime, datetime.date, datetime.time, datetime.timedelta})
_ELEMENTS_LOOKED_AT = 10_000  # a tuple or frozenset larger than this is checked in full


def _immutable(value: Any, budget: list[int]) -> bool:
    t = type(value)
    if t in _ATOMS:
        return True
    if t is tuple or t is frozenset:
        budget[0] -= len(value)
        return budget[0] >= 0 and all(_immutable(x, budget) for x in value)
    pd = sys.modules.get("pandas")
    if pd is not None and (t is pd.Timestamp or t is pd.Timedelta):  # (03.11's dates; datetime's, subclassed)
        return True
    np = sys.modules.get("numpy")
    # numpy's scalars are immutable, except a structured one (np.void: a view into its array) and np.object_
    return np is not None and isinstance(value, np.generic) and not isinstance(value, (np.void, np.object_))


def _buffer_digest(array: Any) -> bytes | None:
    """xxh3 of a contiguous buffer's bytes, read in place (no copy); None for anything else."""
    try:
        raw = pickle.PickleBuffer(array).raw()  # contiguous (C or Fortran) buffers only
    except (BufferError, TypeError, ValueError):
        return None
    return xxhash.xxh3_128_digest(raw)


class _Same:
    """Equal to itself only: a token part for an immutable object (an Arrow array), held, not its id."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.obj is self.obj

    def __hash__(self) -> int:
        return id(self.obj)


class _SameElements:
    """Equal to another holding the very same elements in the same order (held, so no id is reused)."""

    __slots__ = ("items",)

    def __init__(self, items: tuple[Any, ...]) -> None:
        self.items = items

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, _SameElements) and len(other.items) == len(self.items)
                and all(a is b for a, b in zip(self.items, other.items)))

    def __hash__(self) -> int:
        return len(self.items)


def _container_token(value: Any, t: type) -> tuple[Any, ...] | None:
    """A list, set or dict of immutable values (`rows = [3, 1, 2]`, `d = {"a": 1}`): which objects it
    holds, in order. Anything nested that can change (a list in a list) gets None."""
    if len(value) > _ELEMENTS_LOOKED_AT:
        return None
    items = tuple(value.items()) if t is dict else tuple(value)
    budget = [_ELEMENTS_LOOKED_AT]
    if not all(_immutable(x, budget) for x in items):  # (a dict's pairs are tuples of key and value)
        return None
    return t, _SameElements(tuple(x for pair in items for x in pair) if t is dict else items)


def _array_token(array: Any, np: types.ModuleType) -> tuple[Any, ...] | None:
    """A plain ndarray's shape, layout, dtype and bytes. An object array's bytes are pointers: they
    stand for its content only while each element is immutable (strings, numbers). pandas' string
    arrays: an Arrow-backed one is immutable data that pandas replaces on every write (its identity
    is enough); a Python-backed one is an object array of strings."""
    if type(array) is not np.ndarray and type(array) is not np.matrix:  # (a matrix holds nothing more)
        pd = sys.modules.get("pandas")
        if pd is None:
            return None
        if type(array) in (pd.arrays.IntegerArray, pd.arrays.FloatingArray, pd.arrays.BooleanArray):
            data, mask = _array_token(array._data, np), _array_token(array._mask, np)  # (03.04's Int32)
            return None if data is None or mask is None else (type(array), str(array.dtype), data, mask)
        if type(array) is pd.arrays.DatetimeArray or type(array) is pd.arrays.TimedeltaArray:
            inner = _array_token(array._ndarray, np)  # (its dtype names the time zone)
            return None if inner is None else (type(array), str(array.dtype), getattr(array, "freq", None), inner)
        if not isinstance(getattr(array, "dtype", None), pd.StringDtype):
            return None
        arrow = getattr(array, "_pa_array", None)
        if arrow is not None:
            return type(array), str(array.dtype.storage), array.dtype.na_value is pd.NA, _Same(arrow)
        inner = getattr(array, "_ndarray", None)
        token = None if inner is None else _array_token(inner, np)
        return None if token is None else (type(array), array.dtype.na_value is pd.NA, token)
    if array.dtype.hasobject:
        if array.dtype != object or not _all_immutable_objects(array):
            return None
    # (datetime64 and timedelta64 export no buffer: their int64 view, the same memory)
    digest = _buffer_digest(array.view(np.int64) if array.dtype.kind in "mM" else array)
    if digest is None:
        return None
    return array.shape, array.strides, array.dtype.str, array.dtype.descr, digest


def _all_immutable_objects(array: Any) -> bool:
    """Every element of an object array a string, number, bytes or missing value (pandas checks in C; a
    small array of mixed kinds, element by element)."""
    pd = sys.modules.get("pandas")
    if pd is None:
        return False
    flat = array.ravel(order="K")
    kind = pd.api.types.infer_dtype(flat, skipna=True)
    if kind in ("string", "bytes", "integer", "floating", "mixed-integer-float", "boolean", "empty"):
        return True
    if len(flat) > _ELEMENTS_LOOKED_AT:
        return False
    budget = [_ELEMENTS_LOOKED_AT]  # (03.04's `[1, np.nan, 'hello', None]`: "mixed-integer")
    return all(_immutable(x, budget) for x in flat)


def _index_token(index: Any, pd: types.ModuleType, np: types.ModuleType) -> tuple[Any, ...] | None:
    t = type(index)
    if t is pd.RangeIndex:
        return t, index.start, index.stop, index.step, index.name
    if t is pd.MultiIndex:  # (03.05's frames): its names (settable in place), levels and codes
        names = tuple(index.names)
        if not _immutable(names, [_ELEMENTS_LOOKED_AT]):
            return None
        parts: list[Any] = [t, names, index.sortorder]
        for level in index._levels:  # (not .levels: a cached copy of each, renamed)
            parts.append(_index_token(level, pd, np))
        for codes in index._codes:
            parts.append(_array_token(codes, np))
        return None if any(p is None for p in parts[3:]) else tuple(parts)
    if not _immutable(index.name, [_ELEMENTS_LOOKED_AT]):
        return None  # (a name that is no plain value): in full
    if t is pd.DatetimeIndex:  # (03.11's series): its array's dtype (the time zone), freq (settable), numbers
        values = _array_token(index._data, np)
        return None if values is None else (t, index.name, index.freq, values)
    if t is not pd.Index:
        return None  # a CategoricalIndex, an IntervalIndex...: in full
    values = _array_token(index._values, np)
    return None if values is None else (t, index.name, values)


def _pandas_token(value: Any, pd: types.ModuleType, np: types.ModuleType) -> tuple[Any, ...] | None:
    """A DataFrame's or Series' blocks (which columns each holds, and its array's token), axes, name
    and flags. Extension arrays other than strings, dates and nullable numbers (categoricals, Arrow
    dtypes...), indexes other than plain, range, multi and datetime ones, and frames with ``attrs``
    get None: checked in full."""
    if value.attrs:
        return None
    mgr = value._mgr
    parts: list[Any] = [type(value), id(mgr), value.flags.allows_duplicate_labels]
    if type(value) is pd.Series:
        if not _immutable(value.name, [_ELEMENTS_LOOKED_AT]):
            return None
        parts.append(value.name)
    for block in mgr.blocks:
        values = _array_token(block.values, np)
        if values is None:
            return None
        parts.append((id(block), block.mgr_locs.as_array.tobytes(), values))
    for axis in mgr.axes:
        token = _index_token(axis, pd, np)
        if token is None:
            return None
        parts.append(token)
    return tuple(parts)


def read_token(value: Any) -> tuple[Any, ...] | None:
    """What stands for ``value``'s content, cheaply: equal tokens of the same object mean equal content.
    None: no cheap token (the value is compared by serializing it)."""
    if _immutable(value, [_ELEMENTS_LOOKED_AT]):
        return ()
    t = type(value)
    if t is list or t is dict or t is set:
        return _container_token(value, t)
    np = sys.modules.get("numpy")
    if np is None:
        return None
    if t is np.ndarray or t is np.matrix:
        return _array_token(value, np)
    pd = sys.modules.get("pandas")
    if pd is not None and (t is pd.DataFrame or t is pd.Series or t is pd.MultiIndex or t is pd.DatetimeIndex):
        try:
            return _pandas_token(value, pd, np) if t is pd.DataFrame or t is pd.Series else _index_token(value, pd, np)
        except (AttributeError, TypeError, ValueError):  # another pandas' internals: no shortcut
            return None
    return None


class ReadValues:
    """Tokens (:func:`read_token`) of the variables a cell may touch, taken just before it runs, so
    that after it those it left as they were need no serialization."""

    def __init__(self) -> None:
        self._before: dict[str, tuple[Any, tuple[Any, ...]]] = {}  # name -> (value, token): held, not ids
        self.tokens = 0  # tokens taken so far (what the tests count)

    def baseline(self, namespace: Mapping[str, Any], names: Iterable[str]) -> None:
        self._before = {}
        for n in names:
            value = namespace.get(n, _MISSING)
            if value is _MISSING:
                continue
            token = read_token(value)
            self.tokens += 1
            if token is not None:
                self._before[n] = (value, token)

    def unchanged(self, namespace: Mapping[str, Any], names: Iterable[str]) -> set[str]:
        """Those of ``names`` bound to the object they held before the cell, with the same token."""
        out = set()
        before, self._before = self._before, {}
        for n in names:
            entry = before.get(n)
            if entry is None or namespace.get(n, _MISSING) is not entry[0]:
                continue
            if entry[1] == () or read_token(entry[0]) == entry[1]:  # () : immutable, identity is enough
                out.add(n)
            self.tokens += entry[1] != ()
        return out

    def clear(self) -> None:
        self._before = {}
