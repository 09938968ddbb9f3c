"""Errors a user can cause or meet. Each carries one line that the CLI prints as is.

Anything that is *not* a TxgitError reaching the CLI is a bug in txgit and keeps
its traceback; a TxgitError is the user's situation and never does.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Collection
from typing import Any


class TxgitError(Exception):
    """Base class: a clear, one-line, user-facing error."""

    exit_code = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # every kind registers itself wherever it is defined (txgit.trust, txgit.state.safe, ...): a
        # kernel's answer names its error's kind, and the terminal raises that kind again (kind_named)
        super().__init_subclass__(**kwargs)
        _KINDS.setdefault(cls.__name__, cls)

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


_KINDS: dict[str, type[TxgitError]] = {}


def kind_named(name: str) -> type[TxgitError]:
    """The TxgitError subclass called ``name`` (of any module imported so far), else TxgitError itself."""
    return _KINDS.get(name, TxgitError)


class NotAWorkspace(TxgitError):
    """No `.txgit/` here or in any parent folder."""


class WorkspaceExists(TxgitError):
    """`init` where a workspace already is."""


class UnknownRevision(TxgitError):
    """A revision (branch, tag, hash, HEAD~n) that does not name a commit."""


class InvalidName(TxgitError):
    """A branch, tag, remote or variable name that cannot be used."""


class RefExists(TxgitError):
    """Creating a branch or tag that already exists."""


class BranchInUse(TxgitError):
    """A branch a live kernel commits to, which a delete would pull from under it."""


class DirtyNamespace(TxgitError):
    """Checkout would drop uncommitted changes in the live namespace (``names``: those variables, where
    the raiser says them: a session learns from them what changed with no cell run)."""

    def __init__(self, message: str, names: Collection[str] = ()) -> None:
        super().__init__(message)
        self.names = sorted(names)


class UnknownVariable(TxgitError):
    """A variable name that the commit does not hold."""


class BlobError(TxgitError):
    """Base for problems with stored bytes."""


class CorruptBlob(BlobError):
    """A blob whose bytes do not hash to its name: never unpickled."""


class MissingBlob(BlobError):
    """A blob that no store we know of holds."""


class DroppedState(MissingBlob):
    """Loading a state whose bytes `gc --budget` dropped and no store we know of has (see txgit.budget)."""


class RestoreError(TxgitError):
    """A stored value that could not be rebuilt (e.g. a module that is not installed)."""

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message  # why, without the names (a checkout lists it per name)


class NewerFormat(TxgitError):
    """A commit recorded by a newer txgit, in a storage format this version cannot read."""


class EmptyHistory(TxgitError):
    """An operation that needs a commit, in a workspace that has none yet."""


class RemoteError(TxgitError):
    """A remote that cannot be used: unknown, unreachable, no storage, bad credentials."""


class UnknownRemote(RemoteError):
    """A remote name that is not configured (a typo, or `txgit remote add` not run)."""


class PushRejected(RemoteError):
    """A push the remote would lose commits by (non-fast-forward) and --force was not given."""



class MergeInProgress(TxgitError):
    """An operation that cannot run while a merge waits for its conflicts to be resolved."""


class DiskFull(TxgitError):
    """A write the file system refused for want of room: no space left on the device (ENOSPC), a quota
    (EDQUOT) or a file size limit (EFBIG). Every write is whole or absent (temp file + rename, temp
    files removed on failure), so what was there before is intact and the same operation completes
    once there is room."""


# errno -> how the line says it; libgit2 puts the same strerror text in its GitError messages
_FULL = {errno.ENOSPC: ("no space left on device", "free some space there"),
         errno.EDQUOT: ("disk quota exceeded", "free some space there"),
         errno.EFBIG: ("file too large for this process's file size limit", "raise the limit (`ulimit -f`)")}
_FULL_TEXT = {os.strerror(n): words for n, words in _FULL.items()}


def disk_full(error: BaseException, what: str, where: str | os.PathLike[str] | None, *,
              outcome: str = "nothing was lost", retry: str = "run it again",
              use_filename: bool = True) -> DiskFull | None:
    """``error`` as one line if it is a full disk (an OSError, or libgit2's error with the same text),
    else None: ``WHAT: no space left on device (WHERE): OUTCOME; free some space there and RETRY``
    (a file size limit: ``raise the limit (`ulimit -f`) and RETRY``).
    ``where``: the folder written to; the file's own folder when the error names it (unless not
    ``use_filename``: a folder removed since, say)."""
    words = _FULL.get(error.errno) if isinstance(error, OSError) else None
    if words is None:
        words = next((w for text, w in _FULL_TEXT.items() if text in str(error)), None)
    if words is None:
        return None
    if use_filename and isinstance(error, OSError) and isinstance(error.filename, (str, os.PathLike)):
        where = os.path.dirname(os.fspath(error.filename)) or where
    elif use_filename and not isinstance(error, OSError):  # libgit2 quotes the file: "cannot extend packfile '/…'"
        quoted = re.search(r"'(/[^']+)'", str(error))
        where = os.path.dirname(quoted.group(1)) if quoted else where
    place = f" ({os.fspath(where)})" if where is not None else ""
    return DiskFull(f"{what}: {words[0]}{place}: {outcome}; {words[1]} and {retry}")


class NothingToCommit(TxgitError):
    """A commit whose state equals its parent's (``git commit`` says "nothing to commit" too)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped a push, fetch, clone or a wait on a kernel: a KeyboardInterrupt (code that
    catches one still does) whose message says what had changed by then, or that nothing had.

    The CLI prints it as ``txgit: interrupted: <message>`` and exits 130, as a shell expects.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
