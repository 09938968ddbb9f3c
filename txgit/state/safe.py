"""The restricted loader: unpickle only an allow-list of plain data types.

Unpickling calls whatever callables the pickle names, so a state from a
stranger can run any code the moment it is loaded. In safe mode
(``checkout(..., safe=True)``, ``load(..., safe=True)``, ``--safe`` on the CLI)
every global the pickle names goes through :meth:`SafeUnpickler.find_class`,
which hands out only the classes and reconstructors of builtin containers and
scalars, a few standard-library value types, numpy arrays and pandas frames.
Anything else -- a function defined in the session, a class of the user's, an
``os.system`` -- is refused with :class:`UnsafeObject` naming it, before it is
called. Modules in the state are bound only if already imported (importing
runs a module's code).

The allow-list is :data:`ALLOWED` (``(module, name)`` pairs); a program that
knows what it is doing may add to it.
"""

from __future__ import annotations

import contextvars
import io
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from txgit.errors import TxgitError


class UnsafeObject(TxgitError):
    """Safe mode met a global that is not on the allow-list: nothing of it was called."""


def _pairs(module: str, names: str) -> set[tuple[str, str]]:
    return {(module, n) for n in names.split()}


# Only types and reconstructors whose call builds a value from plain data. Deliberately not
# here: builtins.getattr/eval/exec/type/__import__ (reach anything), pandas/numpy functions that
# read files or pickles (pandas.read_pickle, numpy.load), and whole modules by prefix.
ALLOWED: set[tuple[str, str]] = (
    _pairs("builtins", "list dict set frozenset tuple bytearray bytes str int float bool complex range slice "
                       "Ellipsis NotImplemented object")
    | _pairs("collections", "OrderedDict defaultdict deque Counter")
    | _pairs("datetime", "date datetime time timedelta timezone")
    | _pairs("decimal", "Decimal")
    | _pairs("fractions", "Fraction")
    | _pairs("uuid", "UUID")
    | _pairs("pathlib", "PurePath PurePosixPath PureWindowsPath Path PosixPath WindowsPath")
    | _pairs("copyreg", "_reconstructor")
    | _pairs("numpy", "ndarray dtype")
    | _pairs("numpy.ma", "MaskedArray")
    | _pairs("numpy.ma.core", "MaskedArray _mareconstruct")
    # numpy 2 (numpy._core) and numpy 1 (numpy.core) spell their reconstructors differently
    | _pairs("numpy._core.multiarray", "_reconstruct scalar")
    | _pairs("numpy.core.multiarray", "_reconstruct scalar")
    | _pairs("numpy._core.numeric", "_frombuffer")
    | _pairs("numpy.core.numeric", "_frombuffer")
    | _pairs("pandas", "DataFrame Series Index RangeIndex MultiIndex DatetimeIndex TimedeltaIndex PeriodIndex "
                       "CategoricalIndex IntervalIndex Categorical CategoricalDtype DatetimeTZDtype PeriodDtype "
                       "IntervalDtype StringDtype Int8Dtype Int16Dtype Int32Dtype Int64Dtype UInt8Dtype "
                       "UInt16Dtype UInt32Dtype UInt64Dtype Float32Dtype Float64Dtype BooleanDtype "
                       "Timestamp Timedelta Period Interval NaT")
    | _pairs("pandas.arrays", "DatetimeArray TimedeltaArray PeriodArray IntegerArray FloatingArray BooleanArray "
                              "StringArray IntervalArray")
    | _pairs("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked")
    | _pairs("pandas._libs.internals", "_unpickle_block")
    | _pairs("pandas._libs.tslibs.timedeltas", "_timedelta_unpickle")
    | _pairs("pandas._libs.tslibs.timestamps", "_unpickle_timestamp")
    | _pairs("pandas._libs.tslibs.nattype", "__nat_unpickle")
    | _pairs("pandas._libs.tslibs.offsets", "Day Hour Minute Second Milli Micro Nano BusinessDay MonthEnd "
                                            "MonthBegin YearEnd YearBegin QuarterEnd QuarterBegin Week")
    | _pairs("pandas.core.indexes.base", "_new_Index")
    | _pairs("pandas.core.indexes.datetimes", "_new_DatetimeIndex")
    | _pairs("pandas.core.indexes.period", "_new_PeriodIndex")
    | _pairs("pandas.core.internals.managers", "BlockManager SingleBlockManager")
    # pandas' Arrow-backed arrays (its default for strings when pyarrow is installed); pyarrow's
    # array reconstructor is replaced by one that validates the buffers (see _VALIDATED)
    | _pairs("pandas.arrays", "ArrowStringArray ArrowExtensionArray")
    | _pairs("pandas", "ArrowDtype NA")
    | _pairs("pyarrow.lib", "_restore_array type_for_alias py_buffer")
    # txgit's own encodings of large arrays (pure data; a nested pickle is loaded safely in turn)
    | _pairs("txgit.state.pickling", "_view_as _load_str_array _load_str_codes _load_object_array "
                                     "_array_view _void_view")
)

_active: contextvars.ContextVar[bool] = contextvars.ContextVar("txgit_safe_loading", default=False)


def active() -> bool:
    """Whether loads on this thread/task are restricted to :data:`ALLOWED` now."""
    return _active.get()


@contextmanager
def safe_loading(on: bool = True) -> Iterator[None]:
    """Within it (when ``on``), every unpickling txgit does goes through :class:`SafeUnpickler`."""
    token = _active.set(on or _active.get())
    try:
        yield
    finally:
        _active.reset(token)


def _restore_validated_arrow_array(data: Any) -> Any:
    """pyarrow's ``_restore_array``, then a full check of what it built: offsets or lengths that do not
    fit the buffers would otherwise read memory outside them."""
    from pyarrow.lib import ArrowException, _restore_array

    array = _restore_array(data)
    try:
        array.validate(full=True)
    except ArrowException as e:
        raise UnsafeObject(f"safe mode refused an Arrow array whose buffers do not hold together: {e}") from None
    return array


# allowed globals that safe mode resolves to a checking stand-in
_VALIDATED: dict[tuple[str, str], Any] = {("pyarrow.lib", "_restore_array"): _restore_validated_arrow_array}


class SafeUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` that resolves only the globals in :data:`ALLOWED`."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED:
            raise UnsafeObject(f"safe mode refused {module}.{name}: not on the allow-list of plain data types "
                               "(load with --trust only if you trust where this state came from)")
        return _VALIDATED.get((module, name)) or super().find_class(module, name)


def loads(data: bytes, buffers: list[Any] | None = None) -> Any:
    """Unpickle ``data`` allowing only :data:`ALLOWED` globals."""
    return SafeUnpickler(io.BytesIO(data), buffers=buffers).load()


def check_module(module: str) -> None:
    """In safe mode a module in a state is bound only if this process has already imported it."""
    import sys

    if active() and module not in sys.modules:
        raise UnsafeObject(f"safe mode refused to import module {module!r} (importing runs its code; "
                           "load with --trust only if you trust where this state came from)")
