"""Short, human descriptions of values for pointer files, `show` and `diff`.

Duck-typed on purpose: describing a DataFrame must not import pandas.
"""

from __future__ import annotations

import inspect
import types
from typing import Any

_MAX = 60


def type_name(value: Any) -> str:
    t = type(value)
    module = getattr(t, "__module__", "") or ""
    if module in ("builtins", "__main__"):
        return t.__qualname__
    return f"{module}.{t.__qualname__}"


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX else text[: _MAX - 1] + "…"


def describe(value: Any) -> tuple[str, dict[str, Any]]:
    """Return (summary, details). Details are JSON-safe facts later layers use (shape, columns)."""
    t = type(value)
    name = t.__name__
    details: dict[str, Any] = {}
    try:
        if isinstance(value, types.ModuleType):
            return f"module {value.__name__}", details
        if isinstance(value, (bool, int, float, complex)) or value is None:
            return _clip(f"{name} {value!r}"), details
        if isinstance(value, str):
            return _clip(f"str {value!r}"), {"len": len(value)}
        if isinstance(value, (bytes, bytearray)):
            return f"{name} {len(value):,} bytes", {"len": len(value)}
        if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
            try:
                sig = str(inspect.signature(value))
            except (TypeError, ValueError):
                sig = "(…)"
            return _clip(f"function {value.__name__}{sig}"), details
        if isinstance(value, type):
            return f"class {value.__qualname__}", details
        shape = getattr(value, "shape", None)
        # (pandas answers a missing attribute by searching the index or columns, and builds dtypes anew
        # each time: a Series is not asked for columns, a frame's dtypes are read once)
        columns = getattr(value, "columns", None) if isinstance(shape, tuple) and len(shape) == 2 else None
        dtypes = getattr(value, "dtypes", None) if columns is not None else None
        if dtypes is not None:
            cols = [str(c) for c in list(columns)]
            details = {"shape": list(shape), "columns": cols, "dtypes": [str(d) for d in list(dtypes)]}
            return f"{name} {shape[0]}x{shape[1]}", details
        if isinstance(shape, tuple) and hasattr(value, "dtype"):
            details = {"shape": list(shape), "dtype": str(value.dtype)}
            if name == "Series":
                details["name"] = None if value.name is None else str(value.name)
                return f"Series {shape[0]} {value.dtype}", details
            dims = "x".join(str(d) for d in shape) or "scalar"
            return f"{name} {value.dtype} {dims}", details
        if isinstance(value, (list, tuple, set, frozenset, dict)):
            return f"{name} of {len(value)}", {"len": len(value)}
        if hasattr(value, "fit") and (hasattr(value, "predict") or hasattr(value, "transform")):
            fitted = any(k.endswith("_") and not k.startswith("_") for k in getattr(value, "__dict__", {}))
            return f"{name} ({'fitted' if fitted else 'not fitted'})", {"model": True, "fitted": fitted}
    except Exception:  # a describe must never break a commit
        pass
    return _clip(f"{name}"), details
