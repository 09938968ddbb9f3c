"""cloudpickle, protocol 5, tuned for whole namespaces.

Two things plain cloudpickle gets wrong for a session snapshot:

* A function defined in the session has the session's namespace as its
  ``__globals__``. cloudpickle copies the globals it references into a private
  dict, so after a restore ``f`` no longer sees the namespace (change ``x`` and
  ``f()`` still uses the old one), and the copied globals clobber the restored
  variables. Here such functions are pickled *without* globals and rebound at
  load time to the namespace being restored into, as they were.
* Large buffers (numpy arrays, pandas blocks) must go out of band so they can be
  chunked and deduplicated; small ones stay in the pickle.

Most values need none of that: they are pickled first by the plain C pickler, which
makes no Python call per object (cloudpickle's ``reducer_override`` is one call per
instance), and go to cloudpickle only when they hold a class or function of the
session (see :func:`_plain_dumps`). Small arrays stay in band without a call to the
buffer callback each (:func:`_reduce_ndarray`).

And one thing it does slowly: an object array (a pandas string column) is
pickled one Python object at a time, ~0.2 us per value, every time a cell so
much as reads its DataFrame. Such arrays are encoded once (plain ``str`` items as
NUL-joined UTF-8, several times faster than pickle; others as a nested pickle)
into bytes that are remembered (:class:`_ObjectArrayCache`) and reused while the array
provably holds the same immutable values.
"""

from __future__ import annotations

import contextvars
import copyreg
import ctypes
import io
import operator
import pickle
import sys
import types
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import cloudpickle
import xxhash
from cloudpickle import cloudpickle as _cp

from txgit.state.identity import identity

PROTOCOL = 5
# Buffers smaller than this stay inside the pickle: a blob per tiny array costs more than it saves.
OUT_OF_BAND_MIN = 64 * 1024

_target_namespace: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "txgit_target_namespace", default=None
)


def _namespace_for_functions() -> dict[str, Any]:
    """At load time: the namespace that session functions must see as their globals."""
    ns = _target_namespace.get()
    if ns is None:  # loading outside a restore: give functions a namespace of their own
        ns = {"__name__": "__main__", "__builtins__": __builtins__}
    return ns


class _NamespaceRef:
    """Stands in the pickle for "the namespace being restored into"."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (_namespace_for_functions, ())


_NAMESPACE_REF = _NamespaceRef()


def _set_session_function_state(func: types.FunctionType, state: tuple[dict, dict]) -> None:
    """cloudpickle's function setstate, minus the copy of globals into the namespace."""
    obj_dict, slotstate = state
    func.__dict__.update(obj_dict)
    slotstate = dict(slotstate)
    slotstate.pop("__globals__", None)
    slotstate.pop("_cloudpickle_submodules", None)
    closure = slotstate.pop("__closure__", None)
    if closure is not None:
        for i, cell in enumerate(closure):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell stays empty
                continue
            func.__closure__[i].cell_contents = value
    for k, v in slotstate.items():
        setattr(func, k, v)


# -- object arrays: pickled once, reused while provably unchanged ---------------------------

# Smaller object arrays pickle in well under a millisecond: not worth an entry.
OBJECT_ARRAY_MIN = 4096
_IMMUTABLE = frozenset({str, bytes, int, float, complex, bool, type(None)})


def _load_object_array(data: Any) -> Any:
    """Unpickle an object array stored as a nested pickle (see _ObjectArrayCache)."""
    from txgit.state import safe

    data = bytes(data)
    arr = safe.loads(data) if safe.active() else pickle.loads(data)
    object_arrays.loaded(arr, data, lambda buf: (_load_object_array, (buf,)))
    return arr


def _load_str_array(data: Any, shape: tuple[int, ...], fortran: bool) -> Any:
    """Rebuild an object array of ``str`` stored as its items' UTF-8, NUL-separated (see _ObjectArrayCache)."""
    import numpy as np

    data = bytes(data)
    items = data.decode("utf-8", "surrogatepass").split("\x00")
    out = np.empty(len(items), dtype=object)
    out[:] = items
    out = out.reshape(shape, order="F" if fortran else "C")
    object_arrays.loaded(out, data, lambda buf: (_load_str_array, (buf, shape, fortran)))
    return out


def _load_str_codes(codes: Any, uniques: bytes, shape: tuple[int, ...], fortran: bool) -> Any:
    """Rebuild an object array of ``str`` stored as its distinct values and a code per item
    (see _encode_str_codes): one string object per distinct value, not one per item."""
    import numpy as np

    values = uniques.decode("utf-8", "surrogatepass").split("\x00")
    table = np.empty(len(values), dtype=object)
    table[:] = values
    data = bytes(codes)
    out = table[np.frombuffer(data, dtype="<i4")].reshape(shape, order="F" if fortran else "C")
    object_arrays.loaded(out, data, lambda buf: (_load_str_codes, (buf, uniques, shape, fortran)))
    return out


# A string column with at most one distinct value in this many items is stored as codes.
STR_CODES_RATIO = 8


def _encode_str_codes(arr: Any) -> tuple[bytes, bytes] | None:
    """A column of few distinct ``str`` values (categories, merchant ids …) as int32 codes (in
    order of first appearance, so the same column always gives the same bytes) and its distinct
    values NUL-joined; None when it has many, or pandas (whose factorize does it in C) is not loaded.

    Loading it makes one object per distinct value: five times faster than one per item. The
    caller checked that every item is exactly ``str``.
    """
    pd = sys.modules.get("pandas")
    if pd is None or arr.size >= 2**31:
        return None
    codes, uniques = pd.factorize(arr.ravel(order="K"))
    if len(uniques) * STR_CODES_RATIO > arr.size:
        return None
    values = uniques.tolist()
    joined = "\x00".join(values)
    if joined.count("\x00") != len(values) - 1:
        return None
    return codes.astype("<i4").tobytes(), joined.encode("utf-8", "surrogatepass")


def _encode_str_items(items: list[Any]) -> bytes | None:
    """Items that are all exactly ``str`` (the caller checked) joined by NUL as UTF-8; None when one
    holds a NUL.

    Several times faster than pickling them one by one (a pandas string column),
    and restored exactly: subclasses of str are not taken (they would come back
    as plain str), nor are strings holding the separator.
    """
    joined = "\x00".join(items)
    if joined.count("\x00") != len(items) - 1:
        return None
    return joined.encode("utf-8", "surrogatepass")


def _immutable_type(t: type) -> bool:
    if t in _IMMUTABLE:
        return True
    np = sys.modules.get("numpy")
    if np is not None and issubclass(t, np.generic) and not issubclass(t, (np.void, np.object_)):
        return True  # numpy scalars
    # pandas' missing-value singletons
    return (t.__module__, t.__name__) in {("pandas._libs.missing", "NAType"), ("pandas._libs.tslibs.nattype", "NaTType")}


class _Entry:
    __slots__ = ("keep", "data", "reduce")

    def __init__(self, arr: Any, data: bytes, reduce: tuple[Any, ...]) -> None:
        # A copy holds references to the same elements: while the entry lives, none of them is
        # freed, so no other object can appear at the address of one of them.
        self.keep = arr.copy(order="K")
        self.data = data
        self.reduce = reduce


class _ObjectArrayCache:
    """The element pointers of an object ndarray -> its pickle.

    Keyed by content, not by array: an xxh3 of the array's raw memory (its
    element pointers), its shape and memory order. Every element of a cached
    array is of an immutable type (checked once, when the entry is made) and
    is kept alive by the entry, so the same pointers mean the same objects and
    so the same values, whichever array holds them now (pandas copies the
    pointers of a string column on ``join``, ``copy``, ``get_dummies`` …).
    Arrays of anything else (lists, user objects) are never cached.
    """

    def __init__(self, limit_bytes: int = 256 << 20) -> None:
        self.limit_bytes = limit_bytes
        self._entries: OrderedDict[tuple[Any, ...], _Entry] = OrderedDict()
        self._bytes = 0

    @staticmethod
    def _key(arr: Any) -> tuple[Any, ...]:
        raw = (ctypes.c_char * arr.nbytes).from_address(arr.ctypes.data)
        return xxhash.xxh3_128_digest(memoryview(raw)), arr.shape, bool(arr.flags.c_contiguous)

    def pickled(self, arr: Any) -> tuple[Any, ...] | None:
        """A reduce value for ``arr`` (an object ndarray), or None when it must be pickled as usual."""
        if arr.size < OBJECT_ARRAY_MIN or not (arr.flags.c_contiguous or arr.flags.f_contiguous):
            return None
        key = self._key(arr)
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            return entry.reduce
        items = arr.ravel(order="K").tolist()
        types_ = set(map(type, items))
        all_str = types_ == {str}  # exactly str: subclasses would come back as plain str
        fortran = bool(arr.flags.f_contiguous and not arr.flags.c_contiguous)
        reduce: tuple[Any, ...]
        if all_str and (coded := _encode_str_codes(arr)) is not None:
            data = coded[0]
            reduce = (_load_str_codes, (pickle.PickleBuffer(data), coded[1], arr.shape, fortran))
        elif all_str and (data := _encode_str_items(items)) is not None:  # out of band when large
            reduce = (_load_str_array, (pickle.PickleBuffer(data), arr.shape, fortran))
        elif all(_immutable_type(t) for t in types_):
            data = pickle.dumps(arr, protocol=PROTOCOL)
            reduce = (_load_object_array, (pickle.PickleBuffer(data),))
        else:
            return None
        self._add(key, arr, data, reduce)
        return reduce

    def loaded(self, arr: Any, data: bytes, reduce: Callable[[pickle.PickleBuffer], tuple[Any, ...]]) -> None:
        """``arr`` was just rebuilt from ``data`` (its encoding, by one of the loaders above): remember
        that, so committing the restored array (or learning how it pickles, RestoredGroups.note) does
        not encode its items again. ``reduce``: its reduce value, given the buffer to store."""
        if arr.size < OBJECT_ARRAY_MIN or not (arr.flags.c_contiguous or arr.flags.f_contiguous):
            return
        self._add(self._key(arr), arr, data, reduce(pickle.PickleBuffer(data)))

    def _add(self, key: tuple[Any, ...], arr: Any, data: bytes, reduce: tuple[Any, ...]) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= len(old.data) + old.keep.nbytes
        self._entries[key] = _Entry(arr, data, reduce)
        self._entries.move_to_end(key)
        self._bytes += len(data) + arr.nbytes
        while self._bytes > self.limit_bytes and len(self._entries) > 1:
            _, old = self._entries.popitem(last=False)
            self._bytes -= len(old.data) + old.keep.nbytes

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)


object_arrays = _ObjectArrayCache()


def _is_datetime_ndarray(obj: Any) -> bool:
    np = sys.modules.get("numpy")
    return (np is not None and type(obj) is np.ndarray and obj.dtype.kind in "mM" and obj.dtype.itemsize == 8
            and obj.nbytes >= OUT_OF_BAND_MIN and (obj.flags.c_contiguous or obj.flags.f_contiguous))


_CACHING: dict[type, bool] = {}


def _caches_lookups(cls: type) -> bool:
    """pandas arrays backed by an ndarray (datetimes, timedeltas, periods) keep a ``_cache`` of
    derived values (``unit`` …) that reading them fills in, and pickle it."""
    got = _CACHING.get(cls)
    if got is None:
        got = _CACHING[cls] = cls.__module__.startswith("pandas.") and hasattr(cls, "_ndarray")
    return got


def _without_cache(obj: Any) -> Any:
    """Reduce ``obj`` without its ``_cache``: reading a column (``df.groupby``, ``.dt.hour``) must not
    make it a change, and the cache is rebuilt on demand after loading."""
    rv = obj.__reduce_ex__(PROTOCOL)
    if isinstance(rv, tuple) and len(rv) >= 3 and isinstance(rv[2], tuple) and rv[2] and isinstance(rv[2][-1], dict):
        rest = {k: v for k, v in rv[2][-1].items() if k != "_cache"}
        state = (*rv[2][:-1], rest) if rest else rv[2][:-1]  # as an array that never had a cache pickles
        return (rv[0], rv[1], state, *rv[3:])
    return rv


def _view_as(arr: Any, dtype: str) -> Any:
    """Load a datetime64/timedelta64 array pickled as its int64 view."""
    return arr.view(dtype)


def _reduce_class(pickler: NamespacePickler, cls: type) -> Any:
    if "__slotnames__" not in cls.__dict__:
        # Pickling an instance makes copyreg cache __slotnames__ on its class;
        # settle it first so a class pickles to the same bytes before and after.
        copyreg._slotnames(cls)
    if cls in _cp._BUILTIN_TYPE_NAMES and _found_by_name(cls):
        # types.SimpleNamespace: by name, as the plain pickler writes it (the same bytes either way)
        return NotImplemented
    return _cp._class_reduce(cls)


def _found_by_name(cls: type) -> bool:
    module = sys.modules.get(getattr(cls, "__module__", None) or "")
    return module is not None and getattr(module, cls.__qualname__, None) is cls


def _reduce_function(pickler: NamespacePickler, func: types.FunctionType) -> Any:
    return pickler._function_reduce(func)


# Only classes and functions need reducer_override (cloudpickle pickles those defined in the
# session by value); the C pickler never consults the dispatch table for them.
_Reducer = Callable[["NamespacePickler", Any], Any]


def _override_for(t: type) -> _Reducer | None:
    if issubclass(t, type):  # classes (any metaclass): by value when defined in the session
        return _reduce_class
    if t is types.FunctionType:  # cannot be subclassed
        return _reduce_function
    return None


def _reduce_ndarray(arr: Any) -> Any:
    """An ndarray's reduce value (the dispatch table's entry for exact ``numpy.ndarray``).

    numpy hands every contiguous array to the pickler as a PickleBuffer, and the pickler calls
    the buffer callback, a Python function, for each one: 36 k times for a figure of 3,000 lines.
    A small array's bytes go in band anyway, so it is reduced here to the very bytes the pickler
    would have written for its buffer (bytearray when writable, bytes when read-only: the same
    opcodes); only large ones reach the callback and go out of band.
    """
    plan = _views.get()
    if plan is not None and arr.base is not None and (rv := plan.reduce(arr)) is not None:
        return rv
    kind = arr.dtype.kind
    if kind == "O":
        reduce = object_arrays.pickled(arr)
        return arr.__reduce_ex__(PROTOCOL) if reduce is None else reduce
    if kind in "mM" and _is_datetime_ndarray(arr):
        # numpy pickles datetime64 in band (its dtype has no buffer format): as int64 it goes
        # out of band, so an unchanged timestamp column is recognised, not re-hashed
        as_int = arr.view("<i8" if arr.dtype.byteorder in "=<|" else ">i8")
        if plan is not None:
            plan.temporary[identity(as_int)] = as_int  # a view of ``arr`` itself: with its bytes, not of ``arr``
            if arr.base is None:
                plan.owners.add(identity(arr))
        return (_view_as, (as_int, arr.dtype.str))
    if arr.nbytes < OUT_OF_BAND_MIN:
        # numpy's own reduction built here where numpy would hand over a buffer (contiguous, items of
        # some size, no objects, a buffer it can export: not datetimes): its ``__reduce_ex__`` imports
        # two modules on every call, ~1 µs of the 1.7 a small array cost (a figure holds thousands);
        # the same value, so the same bytes
        dtype, flags = arr.dtype, arr.flags
        if _numpy_frombuffer is not None and dtype.itemsize and not dtype.hasobject and \
                (flags.c_contiguous or flags.f_contiguous):
            c_order = flags.c_contiguous
            try:
                buf = pickle.PickleBuffer(arr if c_order else arr.T)
            except (ValueError, BufferError):  # (numpy's reduction falls back too)
                return arr.__reduce_ex__(PROTOCOL)
            return (_numpy_frombuffer, (bytearray(buf) if flags.writeable else bytes(buf), dtype, arr.shape,
                                        "C" if c_order else "F"))
        return arr.__reduce_ex__(PROTOCOL)  # numpy's other reduction: no buffer
    if plan is not None and arr.base is None:
        plan.owners.add(identity(arr))  # only large roots are asked about (_ViewPlan.reduce)
    return arr.__reduce_ex__(PROTOCOL)


def _reduce_void(row: Any) -> Any:
    """A structured scalar (``row = records[0]``) views its array's memory: see :class:`_ViewPlan`."""
    plan = _views.get()
    if plan is not None and row.base is not None:
        rv = plan.reduce(row)
        if rv is not None:
            return rv
    return row.__reduce_ex__(PROTOCOL)


# -- numpy views: arrays of one pickle that viewed one memory come back viewing one memory ------

def _byte_bounds(arr: Any) -> tuple[int, int]:
    np = sys.modules["numpy"]
    bounds = getattr(getattr(np, "lib", None), "array_utils", None)  # numpy 2; numpy 1 has np.byte_bounds
    return (bounds.byte_bounds if bounds is not None else np.byte_bounds)(arr)


def _raw_bytes(carrier: Any) -> Any:
    """A contiguous array's memory as a 1-d uint8 array over the same memory (no copy)."""
    np = sys.modules["numpy"]
    return carrier.ravel(order="K").view(np.uint8)


def _array_view(carrier: Any, offset: int, shape: tuple[int, ...], strides: tuple[int, ...], dtype: Any,
                writeable: bool) -> Any:
    """Load a view pickled by :class:`_ViewPlan`: the same window on the restored carrier's memory
    (numpy checks that it lies within it)."""
    np = sys.modules["numpy"]
    view = np.ndarray(shape, dtype, buffer=_raw_bytes(carrier), offset=offset, strides=strides)
    if not writeable:
        view.flags.writeable = False
    return view


def _void_view(carrier: Any, offset: int, dtype: Any) -> Any:
    """Load an ``np.void`` row pickled by :class:`_ViewPlan`: a row of the restored carrier's memory."""
    np = sys.modules["numpy"]
    return np.ndarray((), dtype, buffer=_raw_bytes(carrier), offset=offset)[()]


class _ViewPlan:
    """Which memory the arrays of one pickle view, and what each view is pickled as a view of.

    numpy pickles every array with its own bytes, so a view (``col = grid[:, 0]``, ``t = grid.T``,
    ``row = records[0]``) came back a copy: a write through its base no longer showed in it. Here a
    view is pickled as (carrier, byte offset, shape, strides, dtype), the carrier being its root (the
    last ndarray of its ``.base`` chain), which the pickle's memo then holds once for all its views
    and for any variable that is the root itself. In one pass, as a view is met: its root is taken
    when it was pickled already, or is small (``OUT_OF_BAND_MIN``) or at most twice the view (a line's
    ``_x`` of its ``_xy``; ``grid = np.arange(12.).reshape(3, 4)`` of its arange); otherwise the view
    waits as a copy, and only if that root turns out pickled later is the value pickled again
    (``first = records[:1]`` of a large ``records``: names are pickled in order). A view of a large
    root pickled nowhere else stays a copy of its own bytes. An array over all of a foreign buffer's
    memory (``np.frombuffer``; numpy's loader reshapes one for every array it restores) is pickled as
    itself and carries the later views of that memory. Arrays of objects are never taken (their memory
    is pointers). A pickle without views pays a look at ``.base`` per array (and a set insert per
    large one); a restored array one look down its ``.base`` chain."""

    __slots__ = ("carriers", "owners", "temporary", "waiting")

    def __init__(self) -> None:
        # identities (:mod:`txgit.state.identity`: no audit event per array) of large exact ndarrays
        # pickled that own their memory
        self.owners: set[int] = set()
        # identity(root) -> (the root or a view of all of it, its first address once asked)
        self.carriers: dict[int, tuple[Any, int | None]] = {}
        self.waiting: dict[int, Any] = {}  # identity -> a large root some view was pickled without
        # identity -> a view a reducer made to pickle its root's bytes (held: no other array gets its identity)
        self.temporary: dict[int, Any] = {}

    def reduce(self, arr: Any) -> Any:
        """The reduce value of ``arr`` (a view) as a view of its root, or None: pickled as it is."""
        np = sys.modules["numpy"]
        root = arr.base
        if not isinstance(root, np.ndarray):
            if type(arr) is np.ndarray and arr.nbytes >= OUT_OF_BAND_MIN:
                self.owners.add(identity(arr))  # a buffer's own array (np.frombuffer)
            return None
        if identity(arr) in self.temporary:
            return None
        while isinstance(root.base, np.ndarray):
            root = root.base
        found = self.carriers.get(identity(root))
        if found is None:
            if type(root) is not np.ndarray or root.dtype.hasobject or \
                    not (root.flags.c_contiguous or root.flags.f_contiguous):
                return None
            if root.base is not None and type(arr) is np.ndarray and arr.nbytes == root.nbytes and \
                    (arr.flags.c_contiguous or arr.flags.f_contiguous):
                # all of a buffer's array (what numpy's loader makes: every restored array is a reshape
                # of one): pickled as it is, and carries the views of it met later
                self.carriers[identity(root)] = (arr, None)
                return None
            if identity(root) not in self.owners and root.nbytes > max(OUT_OF_BAND_MIN, 2 * arr.nbytes):
                self.waiting[identity(root)] = root
                return None
            found = self.carriers[identity(root)] = (root, _byte_bounds(root)[0])
        carrier, start = found
        if carrier is arr:
            return None
        if start is None:
            start = _byte_bounds(carrier)[0]
            self.carriers[identity(root)] = (carrier, start)
        offset = arr.__array_interface__["data"][0] - start
        if type(arr) is np.void:
            return (_void_view, (carrier, offset, arr.dtype))
        return (_array_view, (carrier, offset, arr.shape, arr.strides, arr.dtype, bool(arr.flags.writeable)))

    def again(self) -> bool:
        """After a pass: whether a view was copied whose root was pickled after it (then the roots are
        carriers from the start, and the value must be pickled again)."""
        late = [root for rid, root in self.waiting.items() if rid in self.owners or rid in self.carriers]
        self.waiting.clear()
        for root in late:  # (one that got a carrier since, a view of all of it, keeps that one)
            self.carriers.setdefault(identity(root), (root, _byte_bounds(root)[0]))
        return bool(late)


_views: contextvars.ContextVar[_ViewPlan | None] = contextvars.ContextVar("txgit_view_plan", default=None)


# numpy's loader of an array pickled from a buffer (its module moved in numpy 2): set when the
# dispatch table first meets an ndarray, so numpy is imported by then
_numpy_frombuffer: Any = None


def _reduce_without_cache_entry(obj: Any) -> Any:
    return _without_cache(obj)


def _is_callback_registry(cls: type) -> bool:
    return cls.__name__ == "CallbackRegistry" and cls.__module__ == "matplotlib.cbook"


class _CidCounter:
    """A ``CallbackRegistry``'s id counter that a pickle can set back in place (matplotlib only calls
    ``next`` on it; its own unpickling makes a fresh ``itertools.count``). Replacing the counter at
    every pickle freed the old one, and a new object born at its address looked, to the sharing
    walk's remembered ids, like one the earlier figure held: every old figure was grouped with each
    new one and pickled again (Lecture-4's walk 2.5x). The count it replaced is kept alive for the
    same reason."""

    __slots__ = ("next_id", "replaced")

    def __init__(self, next_id: int, replaced: Any) -> None:
        self.next_id, self.replaced = next_id, replaced

    def __iter__(self) -> _CidCounter:
        return self

    def __next__(self) -> int:
        n = self.next_id
        self.next_id = n + 1
        return n


def _reduce_callback_registry(registry: Any) -> Any:
    """matplotlib's ``CallbackRegistry`` pickles the next id of its counter, drawing it: every figure
    pickled differently each time, so a cell that only read one committed it as changed (and a pull of
    someone's real change to it conflicted). The counter is set back to the id pickled: the same
    bytes each time, and the registry hands out the ids it would have without the pickle."""
    rv = registry.__reduce_ex__(PROTOCOL)
    state = rv[2] if isinstance(rv, tuple) and len(rv) >= 3 else None
    if isinstance(state, dict) and type(state.get("_cid_gen")) is int:
        counter = registry.__dict__.get("_cid_gen")
        if type(counter) is _CidCounter:
            counter.next_id = state["_cid_gen"]
        else:
            registry._cid_gen = _CidCounter(state["_cid_gen"], counter)
    return rv


def _transform_invalid_level(cls: type) -> int | None:
    """For a matplotlib transform node (a figure's bboxes and transforms): the level of its
    ``_invalid`` flag that a new node starts at (None: not a transform node)."""
    transforms = sys.modules.get("matplotlib.transforms")
    node = getattr(transforms, "TransformNode", None)
    if not isinstance(node, type) or not issubclass(cls, node):
        return None
    level = getattr(cls, "_INVALID_FULL", getattr(cls, "INVALID", None))  # matplotlib >= 3.8, before
    return level if type(level) is int else None


# transform node class -> its _invalid level when new, found once per type (by _DispatchTable)
_transform_levels: dict[type, int] = {}


def _reduce_transform_node(node: Any) -> Any:
    """matplotlib's transforms compute lazily and clear their ``_invalid`` flag when read: the first
    ``fig.get_size_inches()`` or ``ax.transData.transform(...)`` changed the figure's pickle, so a
    cell that only read a figure committed it (and the next pull of someone's change to it
    conflicted). What a read computes (a box's points, a matrix) is computed first, and the flag is
    pickled as a new node has it (invalid: computed again when first read, as after construction),
    with no cached inverse; every node of a figure is, so a node is never valid below an invalid
    parent."""
    if getattr(node, "__dict__", {}).get("_invalid"):
        transforms = sys.modules["matplotlib.transforms"]
        try:
            if isinstance(node, transforms.BboxBase):
                node.get_points()
            elif isinstance(node, transforms.AffineBase):
                node.get_matrix()
        except Exception:  # one that cannot compute now (a singular box): pickled as it is
            pass
    rv = node.__reduce_ex__(PROTOCOL)
    state = rv[2] if isinstance(rv, tuple) and len(rv) >= 3 else None
    level = _transform_levels.get(type(node))
    if isinstance(state, dict) and type(state.get("_invalid")) is int and level is not None:
        if state is getattr(node, "__dict__", None):  # never the node's own (matplotlib's is a copy)
            state = dict(state)
            rv = (*rv[:2], state, *rv[3:])
        state["_invalid"] = level
        if state.get("_inverted") is not None:  # a cache, made again when asked for (the node is invalid)
            state["_inverted"] = None
    return rv


def _is_axes(cls: type) -> bool:
    base = getattr(sys.modules.get("matplotlib.axes._base"), "_AxesBase", None)
    return isinstance(base, type) and issubclass(cls, base)


def _reduce_axes(ax: Any) -> Any:
    """An Axes whose data limits changed (a plot) computes its view limits only when they are read:
    the first ``ax.get_xlim()`` changed its pickle (placeholder limits, marked stale, became the
    computed ones), so a cell that only read them committed. They are computed first, as that read,
    or a draw, would."""
    stale = getattr(ax, "_stale_viewlims", None)
    if isinstance(stale, dict) and any(stale.values()):
        try:
            ax._unstale_viewLim()
        except Exception:  # a matplotlib without it, an Axes that cannot autoscale: pickled as it is
            pass
    return ax.__reduce_ex__(PROTOCOL)


# A cache this size holds every type of a session many times over; past it (classes redefined
# again and again) it starts afresh rather than keep old classes alive.
ROUTES_LIMIT = 8192
# The default reduction, as the pickler would do it itself, but callable from C without a frame.
_REDUCE_EX = operator.methodcaller("__reduce_ex__", PROTOCOL)


class _DispatchTable(dict[type, Callable[[Any], Any]]):
    """The dispatch table of txgit's picklers: copyreg's and cloudpickle's entries, then a reducer
    per type, decided on first sight (``__missing__``) so that a look-up of a known type stays in
    C. Instances of ordinary types get ``_REDUCE_EX`` (what the pickler does when a type is not in
    the table), classes with a metaclass are left to the pickler (KeyError).

    The plain pickler's table (``plain``) stops at the first instance of a class that cloudpickle
    would pickle by value (a class of the session), before its reducer runs: the value goes to
    cloudpickle then, and a reducer with effects runs once. Keyed by the type object itself: a
    class redefined in the session is another key."""

    def __init__(self, plain: bool) -> None:
        super().__init__()
        self.plain = plain
        self.copyreg_seen = dict(copyreg.dispatch_table)
        self.update(self.copyreg_seen)
        self.update(_cp.Pickler._dispatch_table)
        # cloudpickle reduces a bound method to types.MethodType, a class only its reducer_override
        # can pickle: a plain pickler could not, so a function of txgit's own stands in for it
        self[types.MethodType] = _reduce_method
        if self.plain:  # a reducer registered for a class of the session (its effects run once)
            for t in self.copyreg_seen:
                if not _by_reference(t):
                    self[t] = _stop_plain

    def stale(self) -> bool:
        """Whether a reducer was registered with copyreg since it was made, or it grew too big."""
        return copyreg.dispatch_table != self.copyreg_seen or len(self) > ROUTES_LIMIT

    def __missing__(self, t: type) -> Callable[[Any], Any]:
        if issubclass(t, type):
            raise KeyError(t)  # a class with a metaclass: pickled by name (or by reducer_override)
        np = sys.modules.get("numpy")
        if self.plain and not _by_reference(t):
            reducer: Callable[[Any], Any] = _stop_plain
        elif np is not None and t is np.ndarray:
            global _numpy_frombuffer
            _numpy_frombuffer = np.zeros(1).__reduce_ex__(PROTOCOL)[0]
            reducer = _reduce_ndarray
        elif np is not None and t is np.void:
            reducer = _reduce_void
        elif _caches_lookups(t):
            reducer = _reduce_without_cache_entry
        elif _is_callback_registry(t):
            reducer = _reduce_callback_registry
        elif _is_axes(t):
            reducer = _reduce_axes
        elif (level := _transform_invalid_level(t)) is not None:
            _transform_levels[t] = level
            reducer = _reduce_transform_node
        else:
            reducer = _REDUCE_EX
        self[t] = reducer
        return reducer


def _by_reference(t: type) -> bool:
    """False for a class of the session or one local to a function: pickling its instances needs
    cloudpickle (library classes that cannot be found by name are left to the pickler: most
    reduce to something else, a dtype to ``numpy.dtype``)."""
    return getattr(t, "__module__", None) != "__main__" and "<locals>" not in getattr(t, "__qualname__", "")


class _NeedsByValue(Exception):
    """The plain pickler met a class or function that cloudpickle would pickle by value."""


def _stop_plain(obj: Any) -> Any:
    raise _NeedsByValue


def _make_method(func: Any, obj: Any) -> types.MethodType:
    return types.MethodType(func, obj)


def _reduce_method(method: types.MethodType) -> Any:
    return (_make_method, (method.__func__, method.__self__))


_dispatch = _DispatchTable(plain=False)
_plain_dispatch = _DispatchTable(plain=True)


def _table(plain: bool) -> _DispatchTable:
    """The current table; a stale one is replaced, not cleared, as a pickler in another thread may
    be using it."""
    global _dispatch, _plain_dispatch
    table = _plain_dispatch if plain else _dispatch
    if table.stale():
        table = _DispatchTable(plain)
        if plain:
            _plain_dispatch = table
        else:
            _dispatch = table
    return table


class _Routes(dict[type, "_Reducer | None"]):
    """type -> what reducer_override does with its objects; see _DispatchTable."""

    def __missing__(self, t: type) -> _Reducer | None:
        if len(self) >= ROUTES_LIMIT:
            self.clear()
        reducer = self[t] = _override_for(t)
        return reducer


_routes = _Routes()


class NamespacePickler(cloudpickle.Pickler):
    """cloudpickle.Pickler that rebinds functions of ``namespace`` on load."""

    def __init__(self, file: Any, namespace: Mapping[str, Any] | None, buffer_callback: Any) -> None:
        # cloudpickle's dispatch_table is a ChainMap: the C pickler would call its Python
        # __getitem__ (and raise KeyError twice) for every object.
        self.dispatch_table = _table(plain=False)
        super().__init__(file, protocol=PROTOCOL, buffer_callback=buffer_callback)
        self._namespace = namespace

    def reducer_override(self, obj: Any) -> Any:
        reducer = _routes[type(obj)]
        return NotImplemented if reducer is None else reducer(self, obj)

    def _dynamic_function_reduce(self, func: types.FunctionType) -> Any:
        if self._namespace is None or func.__globals__ is not self._namespace:
            return super()._dynamic_function_reduce(func)
        code = func.__code__
        closure = None
        if func.__closure__ is not None:
            closure = tuple(_cp._make_empty_cell() for _ in range(len(code.co_freevars)))
        obj_dict, slotstate = _cp._function_getstate(func)
        # The referenced globals are the session's own variables: they are
        # restored as variables, not copied into every function that uses them.
        slotstate["__globals__"] = {}
        slotstate["_cloudpickle_submodules"] = _cp._find_imported_submodules(
            code, (func.__globals__[k] for k in _cp._extract_code_globals(code) if k in func.__globals__)
        )
        newargs = (code, _NAMESPACE_REF, None, None, closure)
        return (_cp._make_function, newargs, (obj_dict, slotstate), None, None, _set_session_function_state)


# -- the plain path: no Python call per object -------------------------------------------------

class _Frames:
    """The plain pickler's output file. The C pickler writes a frame (~64 KB) at a time, each
    ending on an opcode boundary, so a module name it pickles a global from lies whole in one
    frame: the first frame naming the session's module stops the plain attempt there."""

    __slots__ = ("chunks", "markers")

    def __init__(self, markers: tuple[bytes, ...]) -> None:
        self.chunks: list[bytes] = []
        self.markers = markers

    def write(self, data: Any) -> int:
        # a frame comes as bytes; a large in-band payload may come as the object itself
        chunk = data if type(data) is bytes else bytes(data)
        for marker in self.markers:
            if marker in chunk:
                raise _NeedsByValue
        self.chunks.append(chunk)
        return len(chunk)


def _module_name_opcode(name: str) -> bytes | None:
    """How protocol 5 writes ``name`` as a global's module name: SHORT_BINUNICODE."""
    raw = name.encode("utf-8", "surrogatepass")
    return b"\x8c" + bytes([len(raw)]) + raw if len(raw) < 256 else None


_MAIN_MARKER = _module_name_opcode("__main__")


def _plain_dumps(obj: Any, namespace: Mapping[str, Any] | None, buffer_callback: Any) -> bytes | None:
    """``obj`` pickled by the C pickler alone, or None when cloudpickle's by-value rules are needed.

    The C pickler calls a Python reducer_override for every object that is not a builtin
    container (a third of the pickling time of a figure); without one, classes and functions are
    pickled by name, as cloudpickle does for everything importable. What it cannot (a lambda, a
    class or function of the session, a module registered to be pickled by value) makes it fail
    or name the session's module, and then the caller pickles with cloudpickle instead. Both give
    the same bytes where both succeed: they share the dispatch table, and cloudpickle's
    reducer_override leaves importable classes and functions to the pickler too.
    """
    if _cp._PICKLE_BY_VALUE_MODULES:
        return None
    markers = [_MAIN_MARKER]
    name = namespace.get("__name__") if namespace is not None else None
    if isinstance(name, str) and name != "__main__":
        marker = _module_name_opcode(name)
        if marker is None:
            return None
        markers.append(marker)
    out = _Frames(tuple(m for m in markers if m is not None))
    pickler = pickle.Pickler(out, protocol=PROTOCOL, buffer_callback=buffer_callback)
    pickler.dispatch_table = _table(plain=True)
    try:
        pickler.dump(obj)
    except Exception:  # noqa: BLE001 - whatever it is, cloudpickle gets the value (and reports a real error)
        return None
    return b"".join(out.chunks)


def dumps(obj: Any, namespace: Mapping[str, Any] | None) -> tuple[bytes, list[pickle.PickleBuffer]]:
    """Pickle ``obj``; return the skeleton and its out-of-band buffers."""
    buffers: list[pickle.PickleBuffer] = []

    def keep_large(buf: pickle.PickleBuffer) -> bool:
        # small numpy arrays never get here (_reduce_ndarray); other libraries' buffers may
        if buf.raw().nbytes >= OUT_OF_BAND_MIN:
            buffers.append(buf)
            return False  # false means: out of band
        return True

    def once() -> bytes:
        buffers.clear()
        skeleton = _plain_dumps(obj, namespace, keep_large)
        if skeleton is not None:
            return skeleton
        buffers.clear()
        f = io.BytesIO()
        pickler = NamespacePickler(f, namespace, keep_large)
        pickler.dump(obj)
        return f.getvalue()

    plan = _ViewPlan()
    token = _views.set(plan)
    try:
        skeleton = once()
        if plan.waiting and plan.again():
            skeleton = once()
    finally:
        _views.reset(token)
    return skeleton, buffers


def loads(skeleton: bytes, buffers: list[Any], namespace: dict[str, Any] | None) -> Any:
    """Unpickle, binding session functions to ``namespace``; allow-listed types only in safe mode.

    Safe mode is a context variable (:func:`txgit.state.safe.safe_loading`): a caller that moves
    loads to worker threads must run them in the caller's context (``contextvars.copy_context``).
    """
    from txgit.state import safe

    token = _target_namespace.set(namespace)
    try:
        if safe.active():
            return safe.loads(skeleton, buffers)
        return pickle.loads(skeleton, buffers=buffers)
    finally:
        _target_namespace.reset(token)
