"""A helper process that writes a session's git commits, so that pygit2 does not hold the kernel's GIL.

A kernel's background writer (see :mod:`txgit.sessions.session`) writes each
cell's commit while the next cell runs. libgit2 calls made through pygit2
hold the GIL for their whole duration, file I/O included: building and
writing a commit's trees took 3.5-4.8 ms of the writer thread's CPU per cell
in the session benchmark's notebooks, the largest part of the writer's work
that holds the GIL (hashing chunks and writing their files release it), and
a cell that releases the GIL (numpy, pandas) waits for it to come back. The
helper does that part in its own process: the kernel sends the tree's files
(path -> bytes, a few KB) over a pipe and waits for the reply with the GIL
released.

Guarantees are those of writing in-process: the reply comes only once the
commit object is written and HEAD moved (libgit2 refuses to move HEAD if it
no longer names the parent the helper read); the caller holds the workspace
lock throughout. The helper dies with the thread that started it (Linux:
``PR_SET_PDEATHSIG``), so a killed kernel cannot leave it writing. If it dies
mid-commit the caller gets :class:`GitWriterDied`; the next commit starts a
new one.

This file runs as the helper's main program without importing the txgit package, nor pygit2's
Python package: only pygit2's native module (see :func:`_native_pygit2`) and the standard library,
so it starts in ~25 ms of CPU (~75 ms with the package), a start that lands on a notebook's first
cells. The functions below use only what that module has; the kernel's in-process writes share them.
"""

from __future__ import annotations

import marshal
import os
import struct
import sys
from collections.abc import Callable, Mapping

TYPE_CHECKING = False
if TYPE_CHECKING:  # (typing imports re and more: ~5 ms of the helper's start, for annotations only)
    from typing import IO, Any
if __name__ != "txgit_gitwriter":  # the client's, in the kernel (where they are imported already)
    import select
    import subprocess


def _native_pygit2() -> Any:
    """pygit2's native module (its classes: Repository, TreeBuilder, Commit, ...) as ``pygit2``, without
    running the package's ``__init__``: that imports its enums, settings (ssl), cffi bindings and
    Python layer, ~55 ms of CPU the helper never uses. Under a package of the same name, so that
    anything the module imports itself resolves as usual. The whole package where that fails."""
    import importlib.machinery  # (not importlib.util: contextlib and more, ~5 ms of the start)
    import types

    try:
        spec = importlib.machinery.PathFinder.find_spec("pygit2")  # finds the package without running it
        where = list(spec.submodule_search_locations or []) if spec is not None else []
        native_spec = importlib.machinery.PathFinder.find_spec("pygit2._pygit2", where)
        if native_spec is None or native_spec.loader is None:
            raise ImportError("no native module")
        package = types.ModuleType("pygit2")
        package.__path__ = where
        sys.modules["pygit2"] = package
        native = native_spec.loader.create_module(native_spec)
        sys.modules["pygit2._pygit2"] = native
        native_spec.loader.exec_module(native)
        package._pygit2 = native
        package.__dict__.update({k: v for k, v in vars(native).items() if not k.startswith("__")})
        for name in ("Repository", "init_file_backend", "Signature", "Commit", "Tree", "GitError", "hash"):
            getattr(package, name)
        return package
    except Exception:  # noqa: BLE001 - an unexpected pygit2 layout: its usual import, slower
        for name in ("pygit2", "pygit2._pygit2"):
            sys.modules.pop(name, None)
        import pygit2

        return pygit2


if __name__ == "txgit_gitwriter":  # the helper's main program: the txgit package is not imported there
    pygit2 = _native_pygit2()
    _TxgitError: type[Exception] = Exception
    _InvalidName: type[Exception] = Exception
else:
    import pygit2

    from txgit.errors import InvalidName as _InvalidName, TxgitError as _TxgitError

_HEADER = struct.Struct("<Q")
_BLOB, _TREE = 0o100644, 0o040000  # git's file modes (pygit2's FileMode is in its enums)


def build_tree(repo: pygit2.Repository, files: Mapping[str, bytes], base: pygit2.Tree | None,
               invalid: Callable[[str], Exception]) -> pygit2.Oid:
    """Build nested trees from {posix path: bytes}.

    Blobs the ``base`` tree already has (same name, same content) are not
    written again: a commit that changes one variable writes a handful of
    objects, not one per variable.
    """
    subdirs: dict[str, dict[str, bytes]] = {}
    known = {e.name: e for e in base} if base is not None else {}
    builder = repo.TreeBuilder(base) if base is not None else repo.TreeBuilder()
    names: set[str] = set()
    for path, data in files.items():
        parts = path.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise invalid(f"invalid path in state tree: {path!r}")
        if len(parts) == 1:
            names.add(parts[0])
            entry = known.get(parts[0])
            if entry is None or entry.id != pygit2.hash(data):
                builder.insert(parts[0], repo.create_blob(data), _BLOB)
        else:
            subdirs.setdefault(parts[0], {})["/".join(parts[1:])] = data
    for name, sub in subdirs.items():
        names.add(name)
        entry = known.get(name)
        sub_base = _object(repo, entry.id) if isinstance(entry, pygit2.Tree) else None
        oid = build_tree(repo, sub, sub_base, invalid)
        if entry is None or entry.id != oid:
            builder.insert(name, oid, _TREE)
    for name in set(known) - names:
        builder.remove(name)
    return builder.write()


class HeadMoved(Exception):
    """libgit2 refused to move the ref: it no longer names the parent read."""


def commit_files(repo: pygit2.Repository, files: Mapping[str, bytes], head: pygit2.Commit | None, message: str,
                 sig: pygit2.Signature, invalid: Callable[[str], Exception], *, ref: str | None = "HEAD",
                 merged: list[pygit2.Oid] | None = None) -> pygit2.Oid:
    """Commit ``files`` as a tree on top of ``head`` (None: no parent) and move ``ref`` (HEAD, or a branch).

    libgit2 refuses to move ``ref`` if it no longer names ``head``, so a concurrent writer is never
    silently overwritten (:class:`HeadMoved`). ``merged``: further parents (a merge commit).
    """
    tree = build_tree(repo, files, head.tree if head is not None else None, invalid)
    parents = ([head.id] if head is not None else []) + list(merged or [])
    try:
        return repo.create_commit(ref, sig, sig, message, tree, parents)
    except pygit2.GitError as e:
        where = "HEAD" if ref in ("HEAD", None) else ref.removeprefix("refs/heads/")
        raise HeadMoved(f"{where} moved while committing (another process committed?): {e}; retry") from e


def write_commit(repo: pygit2.Repository, files: Mapping[str, bytes], message: str, name: str, email: str,
                 invalid: Callable[[str], Exception], ref: str = "HEAD", parent: str | None = "HEAD") -> dict[str, Any]:
    """The helper's :func:`commit_files`: on top of ``parent`` (a commit id; "HEAD": whatever ``ref``
    names now; None: no parent), moving ``ref``; what the caller needs to describe the commit."""
    if parent == "HEAD":
        head = None if ref == "HEAD" and repo.head_is_unborn else _tip(repo, ref)
    else:
        head = None if parent is None else _object(repo, parent).peel(pygit2.Commit)
    sig = pygit2.Signature(name, email)
    oid = commit_files(repo, files, head, message, sig, invalid, ref=ref)
    if ref == "HEAD":
        target = None if repo.head_is_detached else repo.lookup_reference("HEAD").target
        branch = target.removeprefix("refs/heads/") if isinstance(target, str) else None
    else:  # (a kernel's own detached HEAD, refs/txgit/detached/PID, is no branch)
        branch = ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None
    return {"id": str(oid), "parents": [str(head.id)] if head is not None else [], "time": sig.time,
            "branch": branch}


def _tip(repo: pygit2.Repository, ref: str) -> pygit2.Commit | None:
    """The commit ``ref`` names now; None if it does not exist yet (a branch's first commit)."""
    try:
        return repo.lookup_reference(ref).peel(pygit2.Commit)
    except KeyError:
        return None


def _object(repo: pygit2.Repository, oid: Any) -> Any:
    """``repo[oid]`` (pygit2's Python layer) from the native module: the git object of that id."""
    found = repo.git_object_lookup_prefix(oid)
    if found is None:
        raise KeyError(str(oid))
    return found


# -- the pipe protocol: a little-endian length, then the message in marshal's format -------------
# (tuples, dicts, str, bytes, ints, None; marshal is built in, where pickle's import (re and more) was
# ~7 ms of the helper's start. Both ends are the same Python, so its format is the same.)

def _frame(message: Any) -> bytes:
    """``message`` as the pipe carries it; ValueError for a value marshal cannot write."""
    data = marshal.dumps(message)
    return _HEADER.pack(len(data)) + data


def _send(out: IO[bytes], message: Any) -> None:
    out.write(_frame(message))
    out.flush()


def _receive(inp: IO[bytes]) -> Any:
    """The next message; None at end of file (the other side is gone)."""
    head = inp.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    (n,) = _HEADER.unpack(head)
    data = inp.read(n)
    if len(data) < n:
        return None
    return marshal.loads(data)


# -- the client, in the kernel -------------------------------------------------------------------

class GitWriter:
    """A session's helper process; :meth:`commit` from one thread at a time (the session's writer).

    Started by :meth:`start` (or the first commit) from the thread that will use it: the helper
    is killed when that thread ends, so start it from a thread that lives as long as the session.
    """

    def __init__(self, repo_path: str) -> None:
        self.repo_path = repo_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid = os.getpid()  # a forked child must not talk to its parent's helper
        self._ready = False  # the running helper said it opened the repository
        self.start_error: str | None = None  # set once no helper could be started: the session writes in-process

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> bool:
        """Start a helper unless one runs (not waiting for it); False if none can be started."""
        if self.start_error is not None:
            return False
        if self._pid != os.getpid():
            self._proc, self._ready, self._pid = None, False, os.getpid()
        if self._proc is not None and self._proc.poll() is None:
            return True
        if self._proc is not None and not self._ready:  # it ended before it said it was ready
            self.start_error = f"the git writer process did not start (exit status {self._proc.returncode})"
            self._proc = None
            return False
        self._proc, self._ready = None, False
        try:
            # cwd: the repository, so that nothing in the user's folder shadows a module the helper imports;
            # a session of its own: interrupting the kernel (SIGINT to its process group) must not reach it
            self._proc = subprocess.Popen(helper_command(self.repo_path), stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, cwd=self.repo_path, close_fds=True,
                                          start_new_session=True)
        except OSError as e:
            self.start_error = str(e)
            return False
        return True

    def ready(self, *, wait: bool = True) -> bool:
        """A helper runs and has opened the repository; False (for good: the caller writes in-process)
        if it could not start, e.g. ``sys.executable`` is not a Python that has pygit2.
        ``wait=False``: also False while it is still starting (~0.1 s of CPU, Python and pygit2's
        import; more on a loaded machine), rather than wait for it."""
        if not self.start():
            return False
        if self._ready:
            return True
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        if not wait:
            try:
                if not select.select([proc.stdout], [], [], 0)[0]:
                    return False  # not said anything yet (its hello, or the end of its output)
            except (OSError, ValueError):
                pass  # the read below says what is wrong
        try:
            hello = _receive(proc.stdout)
        except (OSError, ValueError):
            hello = None
        if hello != "ready":
            self._proc = None
            try:
                proc.kill()
                code = proc.wait()
            except OSError:
                code = None
            self.start_error = f"the git writer process did not start (exit status {code})"
            return False
        self._ready = True
        return True

    def commit(self, files: Mapping[str, bytes], message: str, name: str, email: str, ref: str = "HEAD",
               parent: str | None = "HEAD") -> dict[str, Any]:
        """Write the commit (see :func:`write_commit`) in the helper; returns once it is written."""
        if not self.ready():
            raise _TxgitError(f"the git writer process could not be started: {self.start_error}")
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        request = _frame(("commit", dict(files), message, name, email, ref, parent))  # (not a dead helper's error)
        try:
            proc.stdin.write(request)
            proc.stdin.flush()
            reply = _receive(proc.stdout)
        except (OSError, ValueError):  # broken pipe, or a closed file after close()
            reply = None
        if reply is None:
            self._proc, self._ready = None, False
            try:
                code: int | None = proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            raise GitWriterDied(f"the git writer process died (exit status {code}) while writing the commit;"
                                " it may be missing from the history")
        status, value = reply
        if status == "ok":
            return value
        if status == "invalid":
            raise _InvalidName(value)
        raise _TxgitError(value)

    def close(self) -> None:
        """Stop the helper (it exits at the end of its input); idempotent."""
        proc, self._proc, self._ready = self._proc, None, False
        if proc is None or self._pid != os.getpid():
            return
        try:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        finally:
            if proc.stdout is not None:
                proc.stdout.close()


class GitWriterDied(_TxgitError):  # type: ignore[misc,valid-type]
    """The helper process ended before it answered: the commit may or may not be written."""


# -- the helper --------------------------------------------------------------------------------

def _die_with_parent(parent: int) -> None:
    """Be killed when the thread that started us ends (Linux), and exit if it already has."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(0)


class _Invalid(Exception):
    pass


def helper_command(repo_path: str) -> list[str]:
    """The command that runs :func:`main` for ``repo_path``, answering this process on its stdout."""
    # -S: no site module (its .pth files, an editable install's finder: ~10-15 ms of a start that lands on
    # the first cells); the folder pygit2 is in, where this process found it, is appended to the path
    code = ("import importlib.machinery as im, sys, types; sys.path.append(sys.argv[4]);"
            " s = im.SourceFileLoader('txgit_gitwriter', sys.argv[1]); m = types.ModuleType(s.name);"
            " m.__file__ = s.path; s.exec_module(m); m.main(sys.argv[2:])")
    where = os.path.dirname(os.path.dirname(os.path.abspath(pygit2.__file__)))
    return [sys.executable, "-S", "-c", code, os.path.abspath(__file__), repo_path, str(os.getpid()), where]


def main(argv: list[str]) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # an interrupt is for the cell, not for a commit being written
    repo_path, parent = argv[0], int(argv[1])  # (argv[2]: pygit2's folder, see helper_command)
    _die_with_parent(parent)
    inp = sys.stdin.buffer
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print must not corrupt the replies
    try:
        native = pygit2._pygit2  # (its Repository opens a backend; the package's subclass, a path)
        _serve(native.Repository(native.init_file_backend(repo_path, 0)), inp, out)
    except BrokenPipeError:  # the kernel stopped listening (it shut down, maybe while we started): nobody to
        os._exit(0)  # answer; _exit, as a flush of ``out`` at the interpreter's exit would raise it again


def _serve(repo: pygit2.Repository, inp: IO[bytes], out: IO[bytes]) -> None:
    _send(out, "ready")
    while True:
        request = _receive(inp)
        if request is None:
            return
        _, files, message, name, email, ref, parent = request
        try:
            reply: tuple[str, Any] = ("ok", write_commit(repo, files, message, name, email, _Invalid, ref, parent))
        except _Invalid as e:
            reply = ("invalid", str(e))
        except HeadMoved as e:
            reply = ("error", str(e))
        except Exception as e:  # noqa: BLE001 - reported to the kernel, which raises it
            reply = ("error", f"the git writer process failed: {type(e).__name__}: {e}")
        _send(out, reply)
