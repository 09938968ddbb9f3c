"""Data readers that open files in native code, made visible to the operation watch.

Python's ``open`` audit event is how a cell's file reads are seen
(:mod:`txgit.sessions.operations`). pyarrow opens Parquet, ORC, Arrow
datasets and its own CSV/JSON readers in C++, and polars all its formats in
Rust, where that event is not raised, so ``pd.read_parquet('data.parquet')``
would look like a cell that reads no file, and its results would be reused
after the file changed. Each of those entry points is wrapped to report the
paths it is given before it reads them: files, folders (a partitioned data
set), glob patterns (``data/*.csv``), or remote URIs, which cannot be hashed
here.

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

# module -> its functions (or classes, whose __init__ is wrapped) that take a source as first argument
NATIVE_READERS: dict[str, tuple[str, ...]] = {
    "pyarrow.parquet": ("read_table", "read_pandas", "read_metadata", "read_schema", "ParquetFile",
                        "ParquetDataset"),
    "pyarrow.dataset": ("dataset",),
    "pyarrow.orc": ("read_table", "ORCFile"),
    "pyarrow.csv": ("read_csv", "open_csv"),
    "pyarrow.json": ("read_json",),
    # polars reads in Rust; its lazy scans read when collected, and a cell collecting a scan made
    # earlier reads the scan's value, whose origin changes when the scanned files do
    "polars": ("read_csv", "read_parquet", "read_ipc", "read_ipc_stream", "read_ndjson", "read_json",
               "read_avro", "read_excel", "read_ods", "read_delta", "scan_csv", "scan_parquet", "scan_ipc",
               "scan_ndjson", "scan_delta", "scan_iceberg"),
}
_SOURCE_KEYWORDS = ("source", "path", "path_or_paths", "where", "input_file")

Report = Callable[[str], None]  # called with each path (or URI) a reader is about to read
_report: Report | None = None


def install(report: Report) -> None:
    """Wrap the readers of every listed module, now and when imported later; ``report`` receives
    each path they are given (it decides whether a cell is being watched)."""
    global _report
    first = _report is None
    _report = report
    if not first:
        return
    for name in NATIVE_READERS:
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


def _announce(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    report = _report
    if report is None:
        return
    source = args[0] if args else next((kwargs[k] for k in _SOURCE_KEYWORDS if k in kwargs), None)
    for path in sources(source):
        report(path)


def _wrap_function(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def reader(*args: Any, **kwargs: Any) -> Any:
        _announce(args, kwargs)
        return fn(*args, **kwargs)

    reader._txgit_reader = True  # type: ignore[attr-defined]
    return reader


def _wrap_module(module: ModuleType) -> None:
    for attr in NATIVE_READERS.get(module.__name__, ()):
        target = getattr(module, attr, None)
        if target is None:
            continue
        if isinstance(target, type):
            init = target.__init__
            if getattr(init, "_txgit_reader", False):
                continue

            @functools.wraps(init)
            def wrapped_init(self: Any, *args: Any, __init: Any = init, **kwargs: Any) -> None:
                _announce(args, kwargs)
                __init(self, *args, **kwargs)

            wrapped_init._txgit_reader = True  # type: ignore[attr-defined]
            try:
                target.__init__ = wrapped_init  # type: ignore[misc]
            except TypeError:  # an extension type: its instances are made by the wrapped functions anyway
                pass
        elif callable(target) and not getattr(target, "_txgit_reader", False):
            setattr(module, attr, _wrap_function(target))


class _WrapOnImport(importlib.abc.MetaPathFinder):
    """Finds the listed modules as the other finders do, and wraps their readers once executed."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name not in NATIVE_READERS:
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
