"""txgit: git for the live state of Python programs.

The Python API is :class:`Workspace`; the CLI (``txgit …``) and the IPython
magics are thin shells over it.
"""

import sys as _sys
from typing import Any as _Any

from txgit.collector import kept_out_of_schedule as _kept_out_of_schedule

# (~10,000 long-lived objects in a kernel: not counted toward the user's next full garbage collection)
with _kept_out_of_schedule():
    from txgit._version import __version__
    from txgit.errors import TxgitError
    from txgit.workspace import CheckoutResult, CommitResult, StateDiff, StatusReport, Workspace


def commit(message: str = "", namespace: dict | None = None) -> CommitResult:
    """Commit the caller's globals (or ``namespace``) to the workspace of the current folder.

    Works in a plain script (the workspace is created if there is none), under
    ``txgit run`` and in a kernel with the extension (their tracking sessions
    are used then).
    """
    from txgit.sessions.session import commit_namespace

    ns = namespace if namespace is not None else _sys._getframe(1).f_globals
    return commit_namespace(ns, message)


def load_ipython_extension(ip: _Any) -> None:
    """``%load_ext txgit``: see :mod:`txgit.magics`. What it imports and starts is kept out of the
    garbage collector's schedule as the package's import is (:mod:`txgit.collector`)."""
    with _kept_out_of_schedule():
        from txgit.magics import load_ipython_extension as load

        load(ip)


def unload_ipython_extension(ip: _Any) -> None:
    from txgit.magics import unload_ipython_extension as unload

    unload(ip)


__all__ = ["CheckoutResult", "CommitResult", "StateDiff", "StatusReport", "TxgitError", "Workspace", "__version__",
           "commit"]
