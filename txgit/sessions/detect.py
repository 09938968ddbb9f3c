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
library changing an object of another library it was never given), and
values whose pickle does not show the change (state pickled by reference,
such as a class's attributes or a module's globals; matplotlib's callback
registries, which are left out because pickling one changes it).
"""

from __future__ import annotations

import copyreg
import io
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
_packages_made_with: list[bool] = [False, False]  # whether numpy, pandas were loaded when it was filled


def _package_of(t: type) -> str:
    """The top-level package of ``t`` as a place a library can change values from: "" for arrays,
    frames and their scalars, data that numpy and pandas never keep in their own state (so a library
    cannot change one the cell did not name; a view of one is an alias, found by name). Without this,
    every cell that calls ``np.`` anything would fingerprint every array it did not name."""
    np, pd = sys.modules.get("numpy"), sys.modules.get("pandas")
    loaded = [np is not None, pd is not None]
    if loaded != _packages_made_with:  # a type cached before numpy or pandas came may be theirs
        _packages.clear()
        _packages_made_with[:] = loaded
    top = _packages.get(t)
    if top is None:
        kinds: tuple[type, ...] = ((np.ndarray, np.generic) if np is not None else ()) + (
            (pd.DataFrame, pd.Series, pd.Index) if pd is not None else ())
        top = _packages[t] = "" if kinds and issubclass(t, kinds) else _top(t.__module__)
    return top


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

    def cell_starts(self) -> None:
        """Note which figures are open as a cell starts: artists of the others are no candidates."""
        self._open_at_start = open_figures()

    def candidates(self, namespace: Mapping[str, Any], names: Iterable[str], packages: set[str]) -> list[str]:
        """``names`` whose values are made of one of ``packages`` (modules are stored by name: never),
        less matplotlib artists (and colorbars, formatters ... tied to them) whose figures were closed
        when the cell started (a notebook's figures of earlier cells: fingerprinting every one of them
        after every plotting cell was most of the cost of the slowest cells), less a library's own
        objects, which a commit records by name whatever they hold (``from pylab import *``)."""
        if not packages:
            return []
        out = []
        closed = self._open_at_start if "matplotlib" in packages else None
        for n in names:
            v = namespace.get(n)
            if v is None or isinstance(v, (types.ModuleType, type, types.FunctionType)):
                continue
            if not value_packages(v).isdisjoint(packages):
                if closed is not None and _in_closed_figures(v, closed):
                    continue
                if library_module_of(n, v) is not None:
                    continue  # the library's own object (pylab's rcParams): committed by name, never by value
                out.append(n)
        return out

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

    def prune(self, namespace: Mapping[str, Any]) -> None:
        """Drop fingerprints of values no longer held (they would keep the old objects alive)."""
        for key in [k for k in self._prints if self._valid(k, namespace) is None]:
            del self._prints[key]

    def clear(self) -> None:
        self._prints.clear()


_MISSING = object()
