"""Files opened or changed inside the workspace while a cell runs, whoever opened them (Linux inotify).

Python's ``open`` audit event misses what native code opens: HDF5 (h5py,
PyTables), netCDF, DuckDB, XGBoost's and LightGBM's model files, OpenCV,
pyarrow's writers. A cell reusing results whose files changed, or skipping
a write its re-run should have made, would not be the cell it claims to be.
The kernel itself tells which files in the watched folders were opened,
written, created, moved or deleted, whatever library did it; reading its
queue costs a system call per cell.

It cannot tell who did it: another process working in the same folder during
the cell looks like the cell. That errs on the safe side (a spurious read is
one more input to compare; a spurious write makes the cell unreusable).
Hidden files and folders (``.txgit``, ``.git``, ``.ipynb_checkpoints``,
editors' swap files), ``__pycache__`` and notebooks (``*.ipynb``, which
Jupyter saves on its own schedule) are not watched. Elsewhere than Linux,
or past the kernel's limits, there is no watch and the audit hook and the
wrapped native readers (:mod:`txgit.sessions.readers`) are all there is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
import sys
import threading

_IN_MODIFY, _IN_CLOSE_WRITE, _IN_CLOSE_NOWRITE, _IN_OPEN = 0x2, 0x8, 0x10, 0x20
_IN_MOVED_FROM, _IN_MOVED_TO, _IN_CREATE, _IN_DELETE = 0x40, 0x80, 0x100, 0x200
_IN_DELETE_SELF, _IN_MOVE_SELF = 0x400, 0x800
_IN_Q_OVERFLOW, _IN_IGNORED, _IN_ONLYDIR, _IN_EXCL_UNLINK, _IN_ISDIR = 0x4000, 0x8000, 0x01000000, 0x04000000, 0x40000000
_WRITTEN = _IN_MODIFY | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE
_READ = _IN_OPEN | _IN_CLOSE_NOWRITE
_MASK = _WRITTEN | _READ | _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_ONLYDIR | _IN_EXCL_UNLINK
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then the name, NUL-padded)

MAX_FOLDERS = 8192  # folders watched by a process; past it the rest of a tree is not watched


def ignored_name(name: str) -> bool:
    """Names whose reads and writes are not a cell's: hidden ones, bytecode caches, notebooks."""
    return name.startswith(".") or name == "__pycache__" or name.endswith((".ipynb", ".pyc", "~"))


def _libc(kind: type[ctypes.CDLL] = ctypes.CDLL) -> ctypes.CDLL:
    """The C library with inotify's functions: among the process's own symbols (Python is linked with
    it), else by name. Not through ``ctypes.util.find_library``, which runs ``ldconfig -p``: a fork of
    the kernel on its first cell. ``ctypes.PyDLL``: its functions keep the GIL."""
    own = kind(None, use_errno=True)
    if hasattr(own, "inotify_init1"):
        return own
    return kind(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class _Inotify:
    """One inotify instance for the process (the kernel limits instances per user, not watches)."""

    def __init__(self) -> None:
        libc = _libc()
        self._add = libc.inotify_add_watch
        self._add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self._rm = libc.inotify_rm_watch
        self._rm.argtypes = [ctypes.c_int, ctypes.c_int]
        # The queue is read with the GIL held: the fd never blocks, and ``os.read`` releasing the GIL
        # let the background writer take it for up to a switch interval (5 ms) in the middle of the
        # cell's hooks (in-process 03.05: 25-46 ms of such waits over 80 reads).
        self._read = _libc(ctypes.PyDLL).read
        self._read.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
        self._read.restype = ctypes.c_ssize_t
        self._buffer = ctypes.create_string_buffer(1 << 16)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.folders: dict[int, str] = {}  # watch descriptor -> folder
        self.watched: dict[str, int] = {}  # and back
        self.lock = threading.Lock()

    def watch_tree(self, root: str, skip: tuple[str, ...] = ()) -> None:
        """Watch ``root`` and the folders under it (not hidden ones, nor those under ``skip``)."""
        if root in self.watched:
            return
        for folder, dirs, _ in os.walk(root):
            dirs[:] = [d for d in dirs if not ignored_name(d) and not (os.path.join(folder, d) + "/").startswith(skip)]
            if len(self.folders) >= MAX_FOLDERS or not self._watch(folder):
                dirs[:] = []

    def _watch(self, folder: str) -> bool:
        wd = self._add(self.fd, os.fsencode(folder), _MASK)
        if wd < 0:
            return False
        self.folders[wd] = folder
        self.watched[folder] = wd
        return True

    def read(self) -> tuple[set[str], set[str], bool]:
        """Drain the queue: (paths read, paths written, whether events were lost). New folders
        under a watched one are watched from now on (their creation counts as a write)."""
        read: set[str] = set()
        written: set[str] = set()
        lost = False
        while True:
            size = self._read(self.fd, self._buffer, len(self._buffer))
            if size < 0:
                if ctypes.get_errno() in (errno.EAGAIN, errno.EWOULDBLOCK):
                    break  # drained
                if ctypes.get_errno() == errno.EINTR:
                    continue
                return read, written, True
            if size == 0:  # (not an inotify answer; a loop on it would never end)
                break
            data = ctypes.string_at(self._buffer, size)
            pos = 0
            while pos + _EVENT.size <= len(data):
                wd, mask, _, length = _EVENT.unpack_from(data, pos)
                raw = data[pos + _EVENT.size: pos + _EVENT.size + length]
                pos += _EVENT.size + length
                if mask & _IN_Q_OVERFLOW:
                    lost = True
                    continue
                folder = self.folders.get(wd)
                if folder is None:
                    continue
                if mask & (_IN_IGNORED | _IN_DELETE_SELF | _IN_MOVE_SELF):
                    if mask & _IN_IGNORED:
                        self.watched.pop(self.folders.pop(wd), None)
                    continue
                name = os.fsdecode(raw.rstrip(b"\0"))
                if not name or ignored_name(name):
                    continue
                path = os.path.join(folder, name)
                if mask & _IN_ISDIR:
                    if mask & (_IN_CREATE | _IN_MOVED_TO):
                        self.watch_tree(path)
                    if mask & (_IN_CREATE | _IN_DELETE | _IN_MOVED_FROM | _IN_MOVED_TO):
                        written.add(path)
                elif mask & _WRITTEN:
                    written.add(path)
                elif mask & _READ:
                    read.add(path)
        return read, written, lost


_instance: _Inotify | None = None
_unavailable = not sys.platform.startswith("linux")


def _forget_in_child() -> None:
    # a forked child shares the parent's queue: reading it would take the parent's events
    global _instance
    _instance = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


def _inotify() -> _Inotify | None:
    global _instance, _unavailable
    if _instance is None and not _unavailable:
        try:
            _instance = _Inotify()
        except (OSError, AttributeError):  # no inotify (a container without it, too many instances)
            _unavailable = True
    return _instance


class FolderWatch:
    """What happens to the files under one workspace while a cell runs: :meth:`start`, then :meth:`stop`."""

    def __init__(self, root: str, skip: tuple[str, ...] = ()) -> None:
        self.root = root
        self.skip = skip

    def start(self) -> None:
        """Forget what happened before the cell (the user's own edits between cells, txgit's reads)."""
        ino = _inotify()
        if ino is None:
            return
        with ino.lock:
            ino.watch_tree(self.root, self.skip)
            ino.read()

    def stop(self) -> tuple[set[str], set[str], bool]:
        """(files read, files or folders written, whether some events were lost) since :meth:`start`."""
        ino = _inotify()
        if ino is None:
            return set(), set(), False
        with ino.lock:
            read, written, lost = ino.read()
        prefix = self.root.rstrip("/") + "/"
        return ({p for p in read if p.startswith(prefix)}, {p for p in written if p.startswith(prefix)}, lost)
