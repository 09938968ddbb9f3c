"""Data readers and writers that open files in native code, made visible to the operation watch.

Python's ``open`` audit event is how a cell's file reads are seen
(:mod:`txgit.sessions.operations`). pyarrow opens Parquet, ORC, Arrow
datasets and its own CSV/JSON readers in C++, and polars all its formats in
Rust, where that event is not raised, so ``pd.read_parquet('data.parquet')``
would look like a cell that reads no file, and its results would be reused
after the file changed. Each of those entry points is wrapped to report the
paths it is given before it reads them: files, folders (a partitioned data
set), glob patterns (``data/*.csv``), or remote URIs, which cannot be hashed
here. Their writers are wrapped the same way, so a cell writing Parquet or
Arrow files (``df.to_parquet``, polars' ``write_*`` and ``sink_*``) counts as
a cell with effects, as one writing through ``open`` does: reusing it would
skip the write. Inside the workspace the folder watch
(:mod:`txgit.sessions.filewatch`) sees every library's files; these
wrappers also cover paths outside it.

Modules imported later are wrapped when they are imported (a finder on
``sys.meta_path``), since pandas imports pyarrow only on its first read,
inside the very cell that reads.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

# What a reader's or writer's argument names: (its position among the arguments after self, its
# keyword, whether it is written: True, False, or the position of a ``mode`` argument, "r" by default).
Where = tuple[int, str, "bool | int"]
_READ: Where = (0, "source", False)


def _readers(*names: str, keyword: str = "source") -> dict[str, Where]:
    return {n: (0, keyword, False) for n in names}


# module -> {function, class (its __init__) or "Class.method": where its file is}
NATIVE_IO: dict[str, dict[str, Where]] = {
    "pyarrow": {"OSFile": (0, "path", 1), "memory_map": (0, "path", 1), "create_memory_map": (0, "path", True),
                "input_stream": (0, "source", False), "output_stream": (0, "source", True)},
    "pyarrow.parquet": {**_readers("read_table", "read_pandas", "read_metadata", "read_schema", "ParquetFile",
                                   "ParquetDataset"),
                        "write_table": (1, "where", True), "write_to_dataset": (1, "root_path", True),
                        "write_metadata": (1, "where", True), "ParquetWriter": (0, "where", True)},
    "pyarrow.dataset": {"dataset": _READ, "write_dataset": (1, "base_dir", True)},
    "pyarrow.orc": {**_readers("read_table", "ORCFile"), "write_table": (1, "where", True),
                    "ORCWriter": (0, "where", True)},
    "pyarrow.csv": {**_readers("read_csv", "open_csv", keyword="input_file"), "write_csv": (1, "output_file", True),
                    "CSVWriter": (0, "sink", True)},
    "pyarrow.json": _readers("read_json", keyword="input_file"),
    "pyarrow.feather": {**_readers("read_table", "read_feather"), "write_feather": (1, "dest", True)},
    "pyarrow.ipc": {**_readers("open_file", "open_stream"), "new_file": (0, "sink", True),
                    "new_stream": (0, "sink", True)},
    # polars reads in Rust; its lazy scans read when collected, and a cell collecting a scan made
    # earlier reads the scan's value, whose origin changes when the scanned files do
    "polars": {**_readers("read_csv", "read_parquet", "read_ipc", "read_ipc_stream", "read_ndjson", "read_json",
                          "read_avro", "read_excel", "read_ods", "read_delta", "scan_csv", "scan_parquet",
                          "scan_ipc", "scan_ndjson", "scan_delta", "scan_iceberg"),
               **{f"DataFrame.write_{f}": (0, "file", True) for f in ("csv", "parquet", "ipc", "ipc_stream",
                                                                      "ndjson", "json", "avro")},
               "DataFrame.write_delta": (0, "target", True),
               **{f"LazyFrame.sink_{f}": (0, "path", True) for f in ("parquet", "csv", "ipc", "ndjson")}},
}
_SOURCE_KEYWORDS = ("source", "path", "path_or_paths", "where", "input_file", "file")

Report = Callable[[str, bool], None]  # called with each path (or URI) a reader or writer (True) is about to open
_report: Report | None = None


def install(report: Report) -> None:
    """Wrap the readers and writers of every listed module, now and when imported later; ``report``
    receives each path they are given, and whether it is written (it decides whether a cell is
    being watched)."""
    global _report
    first = _report is None
    _report = report
    if not first:
        return
    for name in NATIVE_IO:
        module = sys.modules.get(name)
        if module is not None:
            _wrap_module(module)
    sys.meta_path.insert(0, _WrapOnImport())


def sources(value: Any) -> list[str]:
    """The paths or URIs in a reader's source argument (a path, a list of them); [] for open files,
    buffers and anything else that is not named by a path."""
    if isinstance(value, (str, os.PathLike)):
        return [os.fsdecode(value)]
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return [os.fsdecode(v) for v in value if isinstance(v, (str, os.PathLike))]
    return []


def _announce(args: tuple[Any, ...], kwargs: dict[str, Any], where: Where) -> None:
    report = _report
    if report is None:
        return
    position, keyword, writes = where
    if len(args) > position:
        source = args[position]
    else:
        source = kwargs.get(keyword, next((kwargs[k] for k in _SOURCE_KEYWORDS if k in kwargs), None))
    if not isinstance(writes, bool):  # a mode argument decides
        mode = args[writes] if len(args) > writes else kwargs.get("mode", "r")
        writes = isinstance(mode, str) and any(c in mode for c in "wax+")
    for path in sources(source):
        report(path, writes)


def _wrapped(fn: Callable[..., Any], where: Where, method: bool) -> Callable[..., Any]:
    """``fn`` announcing its file first; ``method``: a function taking self (a method, an __init__)."""
    if method:
        @functools.wraps(fn)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            _announce(args, kwargs, where)
            return fn(self, *args, **kwargs)
    else:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            _announce(args, kwargs, where)
            return fn(*args, **kwargs)

    wrapper._txgit_reader = True  # type: ignore[attr-defined]
    return wrapper


def _announcing_subclass(cls: type, where: Where) -> type:
    """An extension type whose __init__ cannot be replaced: a subclass announcing its file, which
    stands in for it where the module names it (``isinstance`` still holds)."""
    base_init = cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        _announce(args, kwargs, where)
        if base_init is not object.__init__:  # (Cython types do their work in __cinit__)
            base_init(self, *args, **kwargs)

    return type(cls.__name__, (cls,), {"__init__": __init__, "__module__": cls.__module__,
                                       "__qualname__": cls.__qualname__, "__doc__": cls.__doc__,
                                       "_txgit_reader": True})


def _wrap_module(module: ModuleType) -> None:
    for path, where in NATIVE_IO.get(module.__name__, {}).items():
        owner_name, _, attr = path.rpartition(".")
        owner = getattr(module, owner_name, None) if owner_name else module
        target = getattr(owner, attr, None)
        if owner is None or target is None or getattr(target, "_txgit_reader", False):
            continue
        if isinstance(target, type):
            if getattr(target.__init__, "_txgit_reader", False):
                continue
            try:
                target.__init__ = _wrapped(target.__init__, where, True)  # type: ignore[misc]
            except TypeError:  # an extension type
                setattr(owner, attr, _announcing_subclass(target, where))
        elif callable(target):
            setattr(owner, attr, _wrapped(target, where, isinstance(owner, type)))


class _WrapOnImport(importlib.abc.MetaPathFinder):
    """Finds the listed modules as the other finders do, and wraps their readers once executed."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name not in NATIVE_IO:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        exec_module = getattr(loader, "exec_module", None)
        if exec_module is None:
            return spec

        def exec_and_wrap(module: ModuleType) -> None:
            exec_module(module)
            _wrap_module(module)

        loader.exec_module = exec_and_wrap  # type: ignore[union-attr]  # this module's own loader
        return spec
