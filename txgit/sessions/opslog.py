"""The operations log: cells that changed no variable, noted as they ran.

Such a cell makes no commit (see :meth:`NamespaceSession._nothing_changed`); its record goes into the
next commit's ``code/cells.json``, which travels with push. If no commit follows (the last cells of a
session, a repeated run whose results were all reused), that is never written: so each is also
appended here at once, with the commit whose state it saw. Its outputs, values equal to what that
state held, are in that commit, which is all the reuse layer needs to load them.

``.txgit/ops-log.jsonl``: one JSON object a line ``{"commit", "time", "cell"}``; each line is one
``write`` to a file opened for appending, so concurrent sessions never interleave within a line. A
line a full disk cut short is skipped by readers, and the next append starts a new line after it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

LOG = "ops-log.jsonl"


def append(ws_dir: Path, commit: str, cell: dict[str, Any]) -> None:
    """Note ``cell`` (a cell record, as ``code/cells.json`` holds it) run on the state of ``commit``."""
    line = (json.dumps({"commit": commit, "time": int(time.time()), "cell": cell}) + "\n").encode()
    fd = os.open(ws_dir / LOG, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)  # (read: its last byte)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            # an earlier append cut short (a full disk): this line starts on a line of its own, so
            # only that cut entry reads as damaged, not this one joined to it
            line = b"\n" + line
        view = memoryview(line)
        while view:  # a full disk writes what fits and returns short; the next write raises ENOSPC
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def read(ws_dir: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The entries from byte ``offset`` on, and the offset after the last whole line read."""
    try:
        with open(ws_dir / LOG, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1  # a line still being written is read next time
    out = []
    for raw in data[:end].splitlines():
        try:
            entry = json.loads(raw)
        except ValueError:
            continue  # a damaged line costs that entry only
        if isinstance(entry, dict) and isinstance(entry.get("commit"), str) and isinstance(entry.get("cell"), dict):
            out.append(entry)
    return out, offset + end
