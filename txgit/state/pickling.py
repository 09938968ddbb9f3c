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
"""

from __future__ import annotations

import contextvars
import copyreg
import io
import pickle
import types
from collections.abc import Mapping
from typing import Any

import cloudpickle
from cloudpickle import cloudpickle as _cp

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


class NamespacePickler(cloudpickle.Pickler):
    """cloudpickle.Pickler that rebinds functions of ``namespace`` on load."""

    def __init__(self, file: io.BytesIO, namespace: Mapping[str, Any] | None, buffer_callback: Any) -> None:
        super().__init__(file, protocol=PROTOCOL, buffer_callback=buffer_callback)
        self._namespace = namespace

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, type) and "__slotnames__" not in obj.__dict__:
            # Pickling an instance makes copyreg cache __slotnames__ on its class;
            # settle it first so a class pickles to the same bytes before and after.
            copyreg._slotnames(obj)
        return super().reducer_override(obj)

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


def dumps(obj: Any, namespace: Mapping[str, Any] | None) -> tuple[bytes, list[pickle.PickleBuffer]]:
    """Pickle ``obj``; return the skeleton and its out-of-band buffers."""
    buffers: list[pickle.PickleBuffer] = []

    def keep_large(buf: pickle.PickleBuffer) -> bool:
        if buf.raw().nbytes >= OUT_OF_BAND_MIN:
            buffers.append(buf)
            return False  # false means: out of band
        return True

    f = io.BytesIO()
    pickler = NamespacePickler(f, namespace, keep_large)
    pickler.dump(obj)
    return f.getvalue(), buffers


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
