"""Content-addressed blob storage on any fsspec URL.

A blob is named by the blake3 hash of its bytes and lives at ``<root>/ab/cdef…``
(DVC-style fan-out). Writes are atomic: on a local disk the bytes go to a temp
file in the same folder and are renamed into place; object stores (S3, memory)
make a PUT visible all at once already. Every read is verified against the name,
so a corrupted or tampered blob raises :class:`CorruptBlob` and is never handed
to the unpickler.

This module knows nothing about pickles, git or sessions.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import blake3
import fsspec
from fsspec.implementations.local import LocalFileSystem

from txgit import packs as _packs
from txgit.errors import BlobError, CorruptBlob, MissingBlob, TxgitError

HASH_LEN = 64  # blake3 hex digest
# Hash large inputs on several threads: blake3 releases the GIL and scales.
_THREADED_HASH_MIN = 8 << 20
# Listing a whole store is cheaper than one request per blob past this many.
_LIST_INSTEAD_OF_STAT = 256
_BATCH = 256
# Loose blobs a remote fsck --verify holds in memory at once: chunks are up to 1 MiB, so at most ~32 MiB.
_CHECK_LOOSE_BATCH = 32
_REPAIR_BATCH = 32  # blobs per read of a repair: chunks are <= 1 MiB, so ~32 MiB held at most
_VERIFY_HERE_UPTO = 64 << 10  # blobs up to this size are verified on the calling thread (see _verify)
# a blake3 hex digest, whole: one C call (a clone of 1,000 variables checks 3,000 names)
_BLOB_NAME = re.compile(r"[0-9a-f]{%d}" % HASH_LEN).fullmatch
TEMP_PREFIX = _packs.TEMP_PREFIX  # one prefix for every temp file of a store (gc removes stale ones)
# read_joined hands the pool about _JOIN_TASKS batches of at least this many bytes (and at most
# _JOIN_BATCH_BLOBS blobs): a task per 1 MiB chunk cost more in scheduling than the read, one task
# per stream left a core idle, and many small tasks only made the threads contend.
_JOIN_BATCH_BYTES = 4 << 20
_JOIN_TASKS = 8
_JOIN_BATCH_BLOBS = 64


def _uninitialized_bytearray() -> Any:
    """CPython's PyByteArray_FromStringAndSize(NULL, n): a bytearray whose bytes are not written yet,
    as pickle.load makes for the buffers it reads into. bytearray(n) zero-fills it first: a pass as
    slow as the read itself on fresh pages; an anonymous map never reuses memory the process freed
    (82 MB of buffers allocated and filled again and again: 118 ms mapped, 19 ms zero-filled, 13 ms
    this way)."""
    try:
        import ctypes

        make = ctypes.pythonapi.PyByteArray_FromStringAndSize
        make.restype = ctypes.py_object
        make.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
        return lambda size: make(None, size)
    except (ImportError, AttributeError):  # not CPython
        return bytearray


_new_bytearray = _uninitialized_bytearray()


def writable_buffer(size: int) -> bytearray:
    """A new bytearray of ``size`` bytes whose content is left to the caller to write, every byte."""
    return _new_bytearray(size)


_pool: ThreadPoolExecutor | None = None
_pool_pid = 0


def shared_pool() -> ThreadPoolExecutor:
    """A process-wide pool for hashing and file I/O (both release the GIL).

    Starting threads for every commit cost milliseconds per cell; this pool
    lives as long as the process (a forked child gets a new one).
    """
    global _pool, _pool_pid
    if _pool is None or _pool_pid != os.getpid():
        _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="txgit-io")
        _pool_pid = os.getpid()
    return _pool


def hash_bytes(data: bytes | bytearray | memoryview) -> str:
    """The blake3 hex digest that names ``data`` in every store."""
    if len(data) >= _THREADED_HASH_MIN:
        return blake3.blake3(data, max_threads=blake3.blake3.AUTO).hexdigest()
    return blake3.blake3(data).hexdigest()


def hash_file(path: str | os.PathLike[str], block: int = 1 << 22) -> str:
    """The blake3 hex digest of a local file's bytes, read in blocks (not mapped: a file changed
    meanwhile must not crash the reader)."""
    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(block), b""):
            h.update(piece)
    return h.hexdigest()


def is_blob_name(name: object) -> bool:
    """A blake3 hex digest: the only names a store reads or writes (no path can hide in one)."""
    return isinstance(name, str) and _BLOB_NAME(name) is not None


@dataclass
class PackedLoose:
    """What :meth:`ObjectStore.pack_loose` did."""

    blobs: int = 0  # in the packs it wrote
    loose_removed: int = 0  # loose files it removed
    packs_written: int = 0
    packs_merged: int = 0  # older packs of small blobs it replaced


@dataclass
class TransferStats:
    """Counts what a store really read and wrote; tests and benchmarks read these."""

    blobs_read: int = 0
    bytes_read: int = 0
    blobs_written: int = 0
    bytes_written: int = 0
    read_names: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.blobs_read = self.bytes_read = self.blobs_written = self.bytes_written = 0
        self.read_names.clear()


_LOOSE_SAMPLE = [f"{i:02x}" for i in range(16)]  # 16 of the 256 fan-out folders

_writer: ThreadPoolExecutor | None = None
_writer_pid = 0


def _write_thread() -> ThreadPoolExecutor:
    """One thread that writes blobs ahead, in the order given. Several writers made no local write
    faster (file creation serializes in the file system) and took the cores the hashing needs."""
    global _writer, _writer_pid
    if _writer is None or _writer_pid != os.getpid():
        _writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="txgit-write")
        _writer_pid = os.getpid()
    return _writer


class WriteAhead:
    """Large blobs handed over as soon as they are hashed and written by a background thread while
    the caller goes on pickling and hashing the next ones: a commit then takes about the longer of
    hashing and writing instead of their sum.

    Blobs too large for a pack of small ones are written here as they come; the small ones come last
    (``submit(small=True)``). In a local store they all go into one pack, appended as they come
    (:class:`~txgit.packs.PackWriter`): one file for the commit's new blobs, not one per chunk; with fewer
    than :data:`~txgit.packs.BIG_PACK_MIN_MEMBERS` large ones the blobs are written as
    :meth:`ObjectStore.write_blobs` writes them (loose, or small ones in a pack of their own). The
    pack's index is written by :meth:`wait`, after all its bytes: what was written for a commit that then
    fails is a temp file or an unreferenced pack, which gc removes. :meth:`wait` before the ref moves:
    it raises the first write error.
    """

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.names: set[str] = set()  # handed over (written, or found present)
        self.blobs_written = 0
        self.bytes_written = 0
        self._futures: list[Any] = []
        self._pack: _packs.PackWriter | None = None
        self._held: dict[str, bytes | bytearray | memoryview] = {}  # new blobs waiting for a pack

    def submit(self, blobs: Mapping[str, bytes | bytearray | memoryview], *, small: bool = False) -> None:
        """Write those of ``blobs`` the store lacks, in the background (the caller must not change
        their bytes until :meth:`wait` returns). ``small``: small blobs too (the last blobs of a
        commit): they join the pack of large ones if there is one, else are written as
        :meth:`ObjectStore.write_blobs` does (a pack of their own, or loose)."""
        todo = {n: d for n, d in blobs.items() if n not in self.names and (small or not _packs.is_small(d))}
        if todo:
            self.names.update(todo)
            self._futures.append(_write_thread().submit(self._write, todo))

    def _write(self, blobs: dict[str, bytes | bytearray | memoryview]) -> None:
        lacking = self.store.missing(blobs)
        todo = {n: blobs[n] for n in sorted(blobs) if n in lacking}
        if not todo:
            return
        if not self.store.big_packs:
            self.store.write_blobs(todo)  # counts them in the store's stats itself
            return
        if self._pack is None:
            self._held.update(todo)
            if sum(1 for d in self._held.values() if not _packs.is_small(d)) < _packs.BIG_PACK_MIN_MEMBERS:
                return
            self._pack = self.store.packs.writer()
            todo, self._held = self._held, {}
        for name, data in todo.items():
            self._pack.add(name, data)
            self.bytes_written += len(data)
            self.blobs_written += 1

    def _close(self) -> None:
        """The last task of the writer thread: what waits for a pack goes loose; the pack gets its index."""
        held, self._held = self._held, {}
        if held:
            self.store.write_blobs(held)  # counts them in the store's stats itself
        pack, self._pack = self._pack, None
        if pack is not None:
            pack.finish()

    def wait(self) -> None:
        """Block until every blob handed over is stored; count them in the store's stats."""
        futures, self._futures = self._futures, []
        error: BaseException | None = None
        for f in futures:  # all of them, even after an error: nothing may still write once this returns
            try:
                f.result()
            except BaseException as e:  # noqa: BLE001 - re-raised below
                error = error or e
        if error is None:
            try:
                _write_thread().submit(self._close).result()
            except BaseException as e:  # noqa: BLE001 - re-raised below
                error = e
        if error is not None and self._pack is not None:
            self._pack.abort()  # its bytes never become visible
            self._pack = None
        self._held = {}
        self.store.stats.blobs_written += self.blobs_written
        self.store.stats.bytes_written += self.bytes_written
        self.blobs_written = self.bytes_written = 0
        if error is not None:
            self.names.clear()  # unknown which were written: let the ordinary write look again
            raise error


class ObjectStore:
    """Blobs named by their blake3 hash, under one fsspec URL.

    ``ObjectStore("/path")``, ``ObjectStore("memory://x")``,
    ``ObjectStore("s3://bucket/prefix", key=..., client_kwargs=...)``: extra
    keyword arguments are fsspec storage options.
    """

    # A local store makes its folder when opened. Remote stores say False: reading one (fetch, a lazy
    # checkout, fsck) must not create a remote's folders; the first blob written makes them.
    create_on_open = True
    # A local store writes the new large chunks of one write into one pack (see txgit.packs); a remote's
    # store (RemoteStore says False) keeps them loose objects, one range-free request each.
    pack_large = True

    def __init__(self, url: str, **storage_options: Any) -> None:
        self.url = url
        self.fs, self.root = fsspec.core.url_to_fs(url, **storage_options)
        self.root = self.root.rstrip("/")
        self.is_local = isinstance(self.fs, LocalFileSystem)
        self.stats = TransferStats()
        if self.is_local and self.create_on_open:
            os.makedirs(self.root, exist_ok=True)
        # Small blobs written many at a time live in packs (txgit.packs); a remote's writes also
        # record their loose blobs in an index, so that one listing says what the remote holds.
        self.packs = _packs.PackSet(self.fs, self.root, self.is_local)
        self.pack_min_members = _packs.PACK_MIN_MEMBERS if self.is_local else 2
        self.index_loose = not self.is_local
        self.big_packs = self.is_local and self.pack_large

    def __repr__(self) -> str:
        return f"ObjectStore({self.url!r})"

    def gone(self) -> str | None:
        """Why this store holds no blob at all (its folder or bucket does not exist), for the message
        of a blob found nowhere: a mistyped storage URL, which no fsck can mend. None: it exists (or
        cannot be asked). One request, made only once a blob was not found."""
        try:
            return None if self.fs.exists(self.root) else f"{self.url} does not exist"
        except Exception:  # an error of its own is said where it happens; this only sharpens a message
            return None

    # -- names ---------------------------------------------------------------
    def path(self, name: str) -> str:
        # Names come from git trees, which a fetched repository controls: never
        # let one become a path outside the store ("../../x").
        if not is_blob_name(name):
            raise BlobError(f"invalid blob name {str(name)[:80]!r}: not a blake3 hash")
        return f"{self.root}/{name[:2]}/{name[2:]}"

    def _name_of(self, path: str) -> str | None:
        parts = path.rstrip("/").rsplit("/", 2)
        if len(parts) < 3:
            return None
        name = parts[-2] + parts[-1]
        return name if is_blob_name(name) else None

    # -- queries -------------------------------------------------------------
    def has(self, name: str) -> bool:
        return not self.missing([name])

    def missing(self, names: Iterable[str]) -> set[str]:
        """Which of ``names`` this store lacks, found in as few requests as it can."""
        wanted = set(names)
        if not wanted:
            return set()
        self.packs.refresh()
        wanted -= self.packs.packed().keys()
        if self.is_local:
            return self._missing_locally(wanted)
        if len(wanted) >= _LIST_INSTEAD_OF_STAT:
            return wanted - set(self.names())
        return {n for n in wanted if not self.fs.exists(self.path(n))}

    def _missing_locally(self, wanted: set[str]) -> set[str]:
        """Which loose blobs of ``wanted`` a local store lacks. For many names, one listing of the
        store's top folder first: a name whose two-digit folder is not there needs no stat of its
        own (a fresh clone's store is empty: 1,000 stats were ~10 ms of its clone)."""
        folders: set[str] | None = None
        if len(wanted) >= _LIST_INSTEAD_OF_STAT:
            try:
                with os.scandir(self.root) as top:
                    folders = {e.name for e in top if len(e.name) == 2}
            except FileNotFoundError:
                folders = set()
            except OSError:
                folders = None  # unreadable here: each name is looked for itself, as before
        lacking = set()
        for name in wanted:
            path = self.path(name)  # (checks the name even where no stat follows)
            if (folders is not None and name[:2] not in folders) or not os.path.exists(path):
                lacking.add(name)
        return lacking

    def names(self) -> Iterable[str]:
        """Every blob name in the store, loose or packed (temp files and strays are ignored)."""
        if self.is_local and not os.path.isdir(self.root):
            return
        self.packs.refresh()
        packed = self.packs.packed()
        yield from packed
        for name in self.loose_names():
            if name not in packed:
                yield name

    def loose_names(self) -> Iterable[str]:
        """The names of the blobs stored loose, one file or object each (one listing)."""
        if self.is_local and not os.path.isdir(self.root):
            return
        try:
            paths = _packs.list_below(self.fs, self.root)  # one request, even for an empty S3 storage
        except FileNotFoundError:
            return
        for p in paths:
            name = self._name_of(p)
            if name is not None:
                yield name

    def size(self, name: str) -> int:
        if self.is_local or not self.packs.loaded:
            self.packs.refresh()
        member = self.packs.packed().get(name)
        if member is not None:
            return member.length
        return int(self.fs.size(self.path(name)))

    # -- writes --------------------------------------------------------------
    def put(self, data: bytes | bytearray | memoryview) -> str:
        name = hash_bytes(data)
        self.put_named({name: data})
        return name

    def write_ahead(self) -> WriteAhead | None:
        """A :class:`WriteAhead` for this store, or None where writing ahead does not pay: a remote
        store's writes are batched requests (and may hold an index to update)."""
        return WriteAhead(self) if self.is_local else None

    def put_named(self, blobs: Mapping[str, bytes | bytearray | memoryview], *, check: bool = True) -> int:
        """Store blobs whose names the caller already computed; skip those present.

        Returns the number of bytes written. With ``check`` the names are
        re-derived from the bytes, so a caller bug cannot plant a wrong name.
        """
        if not blobs:
            return 0
        todo = self.missing(blobs.keys())
        if check:
            for name in todo:
                if hash_bytes(blobs[name]) != name:
                    raise BlobError(f"refusing to store blob {name[:12]}: its bytes hash to another name")
        return self.write_blobs({n: blobs[n] for n in todo})

    def write_blobs(self, blobs: Mapping[str, bytes | bytearray | memoryview]) -> int:
        """Write blobs the caller knows this store lacks (no existence check, no hash check).

        Each blob appears whole or not at all. Returns the number of bytes written.
        """
        if self.big_packs and sum(1 for d in blobs.values() if not _packs.is_small(d)) >= _packs.BIG_PACK_MIN_MEMBERS:
            # many large blobs: all of them in one pack streamed into one file (its index last), the
            # small ones too: they would have cost a file (and a folder) each, or a pack of their own
            self.packs.write(blobs)
            written = sum(len(d) for d in blobs.values())
            self.stats.blobs_written += len(blobs)
            self.stats.bytes_written += written
            return written
        small = {n: d for n, d in blobs.items() if _packs.is_small(d)}
        if len(small) < self.pack_min_members:
            small = {}
        loose = {n: d for n, d in blobs.items() if n not in small}
        written = self._write_loose(loose)
        if small or (self.index_loose and loose):
            # after the loose blobs: an index appears only once all it names is stored
            groups = _packs.split(small) if small else [{}]
            for i, group in enumerate(groups):
                self.packs.write(group, {n: len(d) for n, d in loose.items()} if i == 0 and self.index_loose else None)
                written += sum(len(d) for d in group.values())
        self.stats.blobs_written += len(blobs)
        self.stats.bytes_written += written
        return written

    def _write_loose(self, blobs: Mapping[str, bytes | bytearray | memoryview]) -> int:
        written = 0
        if self.is_local:
            for name in sorted(blobs):
                self._write_local(name, blobs[name])
                written += len(blobs[name])
        else:
            names = sorted(blobs)
            for i in range(0, len(names), _BATCH):
                batch = {self.path(n): bytes(blobs[n]) for n in names[i : i + _BATCH]}
                self.fs.pipe(batch)
                written += sum(len(v) for v in batch.values())
        return written

    def _write_local(self, name: str, data: bytes | bytearray | memoryview) -> None:
        # the first blob of its fan-out folder creates the folder
        _packs.write_atomic(self.path(name), data, make_folder=True)

    def delete(self, names: Iterable[str]) -> None:
        """Remove blobs: loose files, and packed members (their packs are rewritten without them)."""
        names = set(names)
        self.packs.refresh()
        packed = self.packs.packed()
        if names & packed.keys():
            self.rewrite_packs(keep=lambda n, m: n not in names, packs={packed[n].pack for n in names if n in packed})
        paths = [self.path(n) for n in names if n not in packed or self.fs.exists(self.path(n))]
        if paths:
            self.fs.rm(paths)

    def rewrite_packs(self, keep: Any, packs: Iterable[str]) -> tuple[list[str], int]:
        """Rewrite ``packs`` with only the members ``keep(name, member)`` accepts; returns the names
        dropped and their bytes. The new pack and its index land before the old index goes, so
        every kept member is readable at every moment (for a while from both)."""
        dropped: list[str] = []
        freed = 0
        indexes = self.packs.indexes()
        for pack in sorted(set(packs)):
            members = indexes.get(pack)
            if members is None:
                continue
            kept = {n for n, (off, length) in members.items()
                    if off != _packs.LOOSE and keep(n, _packs.Member(pack, off, length))}
            gone = [n for n, (off, _) in members.items() if off != _packs.LOOSE and n not in kept]
            if not gone:
                continue
            if kept and self.is_local:  # member by member: a pack of large chunks is never held in memory
                writer = self.packs.writer()
                try:
                    for name in sorted(kept, key=lambda n: members[n][0]):
                        data = self._member_to_keep(pack, [name])
                        writer.add(name, data[name])
                    writer.finish()
                except BaseException:
                    writer.abort()
                    raise
            elif kept:
                self.packs.write(self._member_to_keep(pack, kept))
            self.packs.remove([pack])
            dropped += gone
            freed += sum(members[n][1] for n in gone)
        return dropped, freed

    def _member_to_keep(self, pack: str, names: Iterable[str]) -> dict[str, bytes]:
        names = list(names)
        data = self.packs.read(names)
        if len(data) < len(names):  # the pack went meanwhile: rewrite nothing rather than lose members
            raise MissingBlob(f"pack {pack[:12]} in {self.url} could not be read whole; run `txgit fsck`")
        # never carry a damaged member into the new pack: its good loose copy goes instead
        # (fsck --repair writes one); with none, CorruptBlob stops the rewrite, pack untouched
        self._loose_over_damaged_members(data)
        return data

    # -- maintenance (fsck, gc) ------------------------------------------------
    def check(self, names: Iterable[str]) -> dict[str, str]:
        """Verify blobs one by one without keeping them: name -> "missing" or "corrupt" for each bad one."""
        bad: dict[str, str] = {}
        self.packs.refresh()
        if not self.is_local:
            return self._check_remote(set(names))
        for name in sorted(set(names)):
            if name in self.packs.where and self.packs.where[name].offset != _packs.LOOSE:
                data = self.packs.read([name]).get(name)
                if data is not None and hash_bytes(data) == name:
                    continue
                # a damaged member: a good loose copy (fsck --repair writes one) serves instead
                try:
                    ok = hash_bytes(self._read_one_loose(name)) == name
                except FileNotFoundError:
                    ok = False
                if not ok:
                    bad[name] = "corrupt" if data is not None else "missing"
                continue
            try:
                if self.is_local:
                    ok = hash_file(self.path(name)) == name
                else:
                    ok = hash_bytes(self.fs.cat_file(self.path(name))) == name
            except FileNotFoundError:
                bad[name] = "missing"
                continue
            if not ok:
                bad[name] = "corrupt"
        return bad

    def _check_remote(self, names: set[str]) -> dict[str, str]:
        """:meth:`check` on a remote: each pack's wanted members in one read (whole, or by ranges:
        :meth:`PackSet.read`; a remote's packs hold small blobs, at most 64 MiB), loose blobs
        :data:`_CHECK_LOOSE_BATCH` per concurrent call, not one call per blob."""
        bad: dict[str, str] = {}
        packed = self.packs.packed()
        by_pack: dict[str, list[str]] = {}
        for name in names:
            if name in packed:
                by_pack.setdefault(packed[name].pack, []).append(name)
        loose = sorted(names - packed.keys())
        batches = [sorted(members) for _, members in sorted(by_pack.items())]
        batches += [loose[i : i + _CHECK_LOOSE_BATCH] for i in range(0, len(loose), _CHECK_LOOSE_BATCH)]
        for batch in batches:
            got = self.packs.read(batch)
            damaged = [n for n in batch if n in got and hash_bytes(got[n]) != n]
            # a damaged member with a good loose copy beside it (what a repair writes) is sound: readers take that
            got.update(self._read_loose(damaged + [n for n in batch if n not in got]))
            for name in batch:
                if name not in got:
                    bad[name] = "missing"
                elif hash_bytes(got[name]) != name:
                    bad[name] = "corrupt"
        return bad

    def replace(self, name: str, data: bytes) -> None:
        """Write a good copy of blob ``name`` over a damaged one (loose; beside a damaged pack member,
        which readers then pass over: :meth:`_loose_over_damaged_members`). Refuses bytes that do not
        hash to ``name``: a repair must never plant a second bad copy."""
        if hash_bytes(data) != name:
            raise BlobError(f"refusing to store blob {name[:12]}: its bytes hash to another name")
        self._replace(name, data)

    def repair_from(self, names: Iterable[str], stores: Iterable[ObjectStore], *,
                    bad_copies: dict[str, list[str]] | None = None) -> dict[str, str]:
        """Replace missing or corrupt blobs with good copies from other stores (remotes, backups).

        Each copy is verified before it is written; a corrupt copy is skipped (and
        noted in ``bad_copies``: name -> URLs of the stores holding it) and the next
        store is tried, as is the next store when one cannot be reached. Returns
        name -> URL of the store it came from for each blob repaired; the others
        are left as they were. Read in batches (:func:`read_sound`).
        """
        todo, stores = sorted(set(names)), list(stores)
        repaired: dict[str, str] = {}
        for at in range(0, len(todo), _REPAIR_BATCH):
            came_from: dict[str, str] = {}
            for name, data in read_sound(todo[at:at + _REPAIR_BATCH], stores, bad_copies=bad_copies,
                                         came_from=came_from).items():
                self._replace(name, data)
            repaired.update(came_from)
        return repaired

    def _replace(self, name: str, data: bytes) -> None:
        if self.is_local:
            self._write_local(name, data)  # os.replace: overwrites a corrupt copy atomically
        else:
            self.fs.pipe({self.path(name): bytes(data)})
        self.stats.blobs_written += 1
        self.stats.bytes_written += len(data)

    def entries(self) -> Iterable[tuple[str, float]]:
        """(blob name, modification time) of every blob; a local store only."""
        if not self.is_local or not os.path.isdir(self.root):
            return
        for fan in os.scandir(self.root):
            if len(fan.name) != 2 or not fan.is_dir(follow_symlinks=False):
                continue
            for e in os.scandir(fan.path):
                name = fan.name + e.name
                if is_blob_name(name):
                    try:
                        yield name, e.stat(follow_symlinks=False).st_mtime
                    except FileNotFoundError:  # deleted under us: nothing to collect
                        continue

    def packed_entries(self) -> Iterable[tuple[str, str, int, float]]:
        """(blob name, pack id, length, the pack's modification time) of every packed member; a local store only.
        A blob in two packs (a rewrite killed half way) is listed twice."""
        if not self.is_local:
            return
        self.packs.refresh()
        for pack, members in self.packs.indexes().items():
            mtime = self.packs.mtime(pack)
            for name, (off, length) in members.items():
                if off != _packs.LOOSE:
                    yield name, pack, length, mtime

    def estimate_loose(self) -> int:
        """About how many loose blobs a local store holds, from 1/16 of its fan-out folders (names are
        uniform), as git's ``gc --auto`` estimates; 0 for a remote."""
        if not self.is_local:
            return 0
        n = 0
        for fan in _LOOSE_SAMPLE:
            try:
                n += sum(1 for name in os.listdir(os.path.join(self.root, fan)) if not name.startswith(TEMP_PREFIX))
            except (FileNotFoundError, NotADirectoryError):
                continue
        return n * 16

    def pack_loose(self, names: Iterable[str] | None = None, *, gather: bool = False,
                   min_members: int = _packs.PACK_MIN_MEMBERS) -> PackedLoose:
        """Move small loose blobs into a pack, so that a workspace of 10,000 cell commits is not
        30,000 files of a few hundred bytes (each a file system block, and a request when pushed
        loose). ``names``: those loose blobs only (default: every one); ``gather``: the packs that
        hold only small blobs join the new pack too (gc: blob packs are merged, not only added to).
        Nothing happens below ``min_members`` blobs. A local store only.

        Order, for crash safety: each blob is read and hashed (a damaged one stays loose, for fsck to
        name), the new pack and its index land, then the packs it replaces go (each index first), and
        only then the loose files. A kill at any instant leaves every blob readable, at worst twice;
        a reader in another process that looked before finds a gone file's blob in the new pack
        (every read looks at the packs again when a blob is not where it was)."""
        report = PackedLoose()
        if not self.is_local:
            return report
        self.packs.refresh()
        packed = self.packs.packed()
        wanted = sorted(set(names) if names is not None else {n for n, _ in self.entries()})
        blobs: dict[str, bytes] = {}
        # a loose copy beside a packed one (a packing killed before its deletes) goes once the packed
        # copy verifies; beside a damaged member it is fsck's repair, and stays
        twins = [n for n in wanted if n in packed]
        redundant = {n for n, data in self.packs.read(twins).items() if hash_bytes(data) == n}
        for name in wanted:
            if name in packed:
                continue
            try:
                with open(self.path(name), "rb") as f:
                    data = f.read(_packs.SMALL_BLOB_MAX + 1)
            except (FileNotFoundError, IsADirectoryError):
                continue
            if len(data) <= _packs.SMALL_BLOB_MAX and hash_bytes(data) == name:
                blobs[name] = data
        old: list[str] = []
        if gather:
            indexes = self.packs.indexes()
            old = sorted(p for p, members in indexes.items()
                         if p not in self.packs.broken and members
                         and all(off == _packs.LOOSE or n <= _packs.SMALL_BLOB_MAX for off, n in members.values()))
            if len(old) < 2 and not [n for n in wanted if n not in packed]:
                old = []  # one pack and nothing loose: already as gathered as it gets
            if old:
                names_in = [n for p in old for n, (off, _) in indexes[p].items() if off != _packs.LOOSE]
                members = self.packs.read(names_in)
                if len(members) < len(set(names_in)):
                    old = []  # a pack went meanwhile (another gc): merge nothing rather than lose members
                else:
                    self._loose_over_damaged_members(members)  # raises CorruptBlob rather than carry damage
                    for n, data in members.items():
                        blobs.setdefault(n, data)
        if len(blobs) < min_members and not old:
            blobs = {}  # too few to pack: only the redundant copies go
        made = [self.packs.write(group) for group in _packs.split(blobs)] if blobs else []
        self.packs.remove([p for p in old if p not in made])
        for name in wanted:
            if name in blobs or name in redundant:
                try:
                    os.unlink(self.path(name))
                    report.loose_removed += 1
                except FileNotFoundError:
                    pass
        report.packs_written, report.blobs = len(made), len(blobs)
        report.packs_merged = len([p for p in old if p not in made])
        return report

    def remove_empty_folders(self) -> int:
        """Remove the fan-out folders that packing emptied (a local store; under the workspace lock,
        so that no commit is writing into one: a write recreates its folder anyway)."""
        removed = 0
        if not self.is_local or not os.path.isdir(self.root):
            return removed
        for fan in os.scandir(self.root):
            if len(fan.name) == 2 and fan.is_dir(follow_symlinks=False):
                try:
                    os.rmdir(fan.path)
                    removed += 1
                except OSError:  # not empty
                    continue
        return removed

    def remove_stale_temp_files(self, older_than: float) -> int:
        """Delete temp files that writers killed mid-write left behind (older than ``older_than`` seconds)."""
        if not self.is_local or not os.path.isdir(self.root):
            return 0
        cutoff = time.time() - older_than
        removed = 0
        for fan in os.scandir(self.root):
            if not fan.is_dir(follow_symlinks=False):
                continue
            for e in os.scandir(fan.path):
                if e.name.startswith(TEMP_PREFIX):
                    try:
                        if e.stat(follow_symlinks=False).st_mtime < cutoff:
                            os.unlink(e.path)
                            removed += 1
                    except FileNotFoundError:
                        continue
        for path, mtime in self.packs.stale_files():  # temp files, and packs whose index never came
            if mtime < cutoff and not os.path.basename(path).startswith(TEMP_PREFIX):
                try:
                    os.unlink(path)
                    removed += 1
                except FileNotFoundError:
                    continue
        return removed

    # -- reads ---------------------------------------------------------------
    def get(self, name: str) -> bytes:
        return self.get_many([name])[name]

    def get_many(self, names: Iterable[str]) -> dict[str, bytes]:
        """Read and verify blobs. Raises MissingBlob / CorruptBlob naming the first bad one."""
        names = list(dict.fromkeys(names))
        if not names:
            return {}
        out = self._read_many(names)
        for n in names:
            if n not in out:
                gone = self.gone()
                raise MissingBlob(f"blob {n[:12]} is missing from {self.url}" + (f": {gone}" if gone else ""))
        try:
            self._verify(out)
        except CorruptBlob:
            self._loose_over_damaged_members(out)
        self._count_read(out)
        return out

    def get_sound(self, names: Iterable[str]) -> tuple[dict[str, bytes], dict[str, str]]:
        """Read and verify blobs as :meth:`get_many` does, but a bad one does not stop the others (for
        repairs, which take it from elsewhere): returns the sound ones, and name -> "missing" or
        "corrupt" for the rest."""
        names = list(dict.fromkeys(names))
        out = self._read_many(names) if names else {}
        bad = {n: "missing" for n in names if n not in out}
        for name in self._bad_hashes(out):
            try:
                out[name] = self._loose_over_damaged_member(name)
            except CorruptBlob:
                del out[name]
                bad[name] = "corrupt"
        self._count_read(out)
        return out, bad

    def _count_read(self, out: Mapping[str, bytes]) -> None:
        self.stats.blobs_read += len(out)
        self.stats.bytes_read += sum(len(v) for v in out.values())
        self.stats.read_names.extend(out)

    def _read_many(self, names: list[str]) -> dict[str, bytes]:
        """The bytes of those of ``names`` the store has, packed or loose, unverified."""
        where = self.packs.where
        # a remote's packs: listed once here (missing() lists again), unless indexes it was given
        # (a clone's git data names them: PackSet.learn_named) name every blob asked for
        if self.is_local or not (self.packs.loaded or all(n in where for n in names)):
            self.packs.refresh()
        out = self.packs.read(names)
        rest = [n for n in names if n not in out]
        if rest and not self.is_local and any(n in where and where[n].offset != _packs.LOOSE for n in rest):
            # an index named a pack that could not be read (gone: repacked or deleted): look at the
            # packs again first, not one loose request per blob that is most likely in another pack
            self.packs.refresh()
            out.update(self.packs.read(rest))
            rest = [n for n in names if n not in out]
        if rest:
            out.update(self._read_loose(rest))
        if len(out) < len(names):  # packs written or rewritten since we looked (or a given index's pack
            # gone): look again once
            self.packs.refresh()
            out.update(self.packs.read([n for n in names if n not in out]))
        return out

    def _read_loose(self, names: list[str]) -> dict[str, bytes]:
        if self.is_local:
            return self._read_local(names)
        out: dict[str, bytes] = {}
        for i in range(0, len(names), _BATCH):
            batch = names[i : i + _BATCH]
            got = _packs.absent_or_raise(self.fs.cat([self.path(n) for n in batch], on_error="return"))
            out.update({n: got[self.path(n)] for n in batch if self.path(n) in got})
        return out

    def _read_one_loose(self, name: str) -> bytes:
        if self.is_local:
            with open(self.path(name), "rb") as f:
                return f.read()
        return bytes(self.fs.cat_file(self.path(name)))

    def _loose_over_damaged_members(self, out: dict[str, bytes]) -> None:
        """Replace packed members that fail their hash with a good loose copy, if the store has one
        (``fsck --repair`` writes one); raise CorruptBlob for the first that has none."""
        for name in sorted(out):
            if hash_bytes(out[name]) != name:
                out[name] = self._loose_over_damaged_member(name)

    def _loose_over_damaged_member(self, name: str) -> bytes:
        """A good loose copy of ``name``, whose packed copy failed its hash; CorruptBlob if there is none."""
        try:
            data = self._read_one_loose(name)
        except FileNotFoundError:
            data = b""
        if hash_bytes(data) != name:
            raise self._corrupt(name)
        return data

    def _read_local(self, names: list[str]) -> dict[str, bytes]:
        def read(n: str) -> tuple[str, bytes | None]:
            try:
                with open(self.path(n), "rb") as f:
                    return n, f.read()
            except FileNotFoundError:
                return n, None

        if len(names) > 4:
            pairs = list(shared_pool().map(read, names))
        else:
            pairs = [read(n) for n in names]
        return {n: data for n, data in pairs if data is not None}

    def read_joined(self, runs: Sequence[Sequence[str]], sizes: Sequence[int], *,
                    digest: Callable[[memoryview], bytes] | None = None,
                    digests: list[list[tuple[int, bytes]] | None] | None = None) -> list[bytearray | None]:
        """Each run of blobs concatenated into one new bytearray of ``sizes[i]`` bytes (writable:
        arrays restored on it can be changed), every blob verified before this returns.

        ``digest``/``digests``: ``digest`` is applied to each blob read the fast way, right after
        its hash, while it is still in the CPU cache; ``digests`` gets, per run, (length, digest)
        of each of its blobs, or None for a run read another way (the caller computes it then).

        On a local store each blob (a loose file, or a pack member read at its offset) is read straight
        into its place in the buffer and hashed there
        while still in the CPU cache, on the shared pool: one copy of every byte, as ``pickle.load``
        makes, instead of a read, a hash pass and a copy. A run whose blobs are sound but do not add
        up to its size gets None (the caller's record is damaged); no buffer of that size is made.
        A run with a blob stored nowhere here, or of the wrong length, or failing its hash, is read by
        :meth:`get_many` instead, which raises MissingBlob / CorruptBlob naming it.
        """
        out: list[bytearray | None] = [None] * len(runs)
        slow: list[int] = []
        # (path, offset in a pack or -1 for a loose file, name, its place in a run's buffer)
        jobs: list[tuple[str, int, str, memoryview]] = []
        spans: list[tuple[int, int] | None] = [None] * len(runs)  # each run's jobs
        if self.is_local:
            self.packs.refresh()
        packed = self.packs.packed()
        for i, run in enumerate(runs):
            if not self.is_local:
                slow.append(i)
                continue
            places: list[tuple[str, int, int]] = []  # (path, offset or -1, length) per blob
            try:
                for n in run:
                    m = packed.get(n)
                    if m is not None:
                        places.append((self.packs.pack_path(m.pack), m.offset, m.length))
                    else:
                        path = self.path(n)
                        places.append((path, -1, os.stat(path).st_size))
            except FileNotFoundError:  # stored nowhere here: the general reader says what it is
                slow.append(i)
                continue
            if sum(p[2] for p in places) != sizes[i]:  # a blob cut short or grown, or a damaged record: get_many tells which
                slow.append(i)
                continue
            buf = out[i] = writable_buffer(sizes[i])
            view, pos = memoryview(buf), 0
            spans[i] = (len(jobs), len(jobs) + len(run))
            for name, (path, offset, n) in zip(run, places):
                jobs.append((path, offset, name, view[pos : pos + n]))
                pos += n
        found: list[bytes | None] = [None] * len(jobs) if digest is not None else []
        bad = set(self._fill_verified(jobs, digest, found))
        if bad:  # the general reader decides: it names the damaged blob, or knows a good copy elsewhere
            slow = sorted(set(slow) | {i for i, run in enumerate(runs) if out[i] is not None and bad.intersection(run)})
            for i in slow:
                out[i] = None
        if slow:
            blobs = self.get_many([n for i in slow for n in runs[i]])  # verified; counted in stats there
            for i in slow:
                if sum(len(blobs[n]) for n in runs[i]) == sizes[i]:
                    out[i] = bytearray().join(blobs[n] for n in runs[i])
        if digests is not None:
            done = set(slow)
            for i, span in enumerate(spans):
                if span is None or i in done or any(found[k] is None for k in range(*span)):
                    digests.append(None)
                else:
                    digests.append([(len(jobs[k][3]), found[k]) for k in range(*span)])  # type: ignore[misc]
        return out

    def _fill_verified(self, jobs: list[tuple[str, int, str, memoryview]],
                       digest: Callable[[memoryview], bytes] | None = None,
                       found: list[bytes | None] | None = None) -> list[str]:
        """Read each local blob (a loose file, or a member of a pack at its offset) into its view and
        check its hash there; returns the names that fail it.
        ``digest``: also applied to each sound blob, into ``found`` at its job's index."""
        index = {id(job): k for k, job in enumerate(jobs)} if digest is not None else {}

        def fill(batch: list[tuple[str, int, str, memoryview]]) -> list[str]:
            bad = []
            packs: dict[str, int] = {}  # a pack's descriptor, kept open for its next members
            try:
                for job in batch:
                    path, offset, name, view = job
                    fd = packs.get(path)
                    if fd is None:
                        try:
                            fd = os.open(path, os.O_RDONLY)
                        except FileNotFoundError:  # gone since it was looked at: the general reader says where it is
                            bad.append(name)
                            continue
                        if offset >= 0:
                            packs[path] = fd
                    try:
                        got, start = 0, max(offset, 0)
                        while got < len(view):
                            n = os.preadv(fd, [view[got:]], start + got)
                            if not n:
                                break
                            got += n
                    finally:
                        if offset < 0:
                            os.close(fd)
                    if got != len(view) or hash_bytes(view) != name:
                        bad.append(name)
                    elif digest is not None and found is not None:
                        found[index[id(job)]] = digest(view)
            finally:
                for fd in packs.values():
                    os.close(fd)
            return bad

        if not jobs:
            return []
        batch_bytes = max(_JOIN_BATCH_BYTES, sum(len(j[3]) for j in jobs) // _JOIN_TASKS)
        batches: list[list[tuple[str, int, str, memoryview]]] = [[]]
        filled = 0
        for job in jobs:
            if filled >= batch_bytes or len(batches[-1]) >= _JOIN_BATCH_BLOBS:
                batches.append([])
                filled = 0
            batches[-1].append(job)
            filled += len(job[3])
        if len(batches) > 1:
            results = list(shared_pool().map(fill, batches))
        else:
            results = [fill(batches[0])]
        self.stats.blobs_read += len(jobs)
        self.stats.bytes_read += sum(len(j[3]) for j in jobs)
        self.stats.read_names.extend(j[2] for j in jobs)
        return [name for r in results for name in r]

    def _corrupt(self, name: str) -> CorruptBlob:
        return CorruptBlob(f"blob {name} in {self.url} is corrupted (its bytes do not match its hash);"
                           " it was not loaded — run `txgit fsck`")

    def _verify(self, blobs: Mapping[str, bytes]) -> None:
        bad = self._bad_hashes(blobs)
        if bad:
            raise self._corrupt(next(n for n in blobs if n in bad))  # the first, in the order asked

    @staticmethod
    def _bad_hashes(blobs: Mapping[str, bytes]) -> set[str]:
        """The names of ``blobs`` whose bytes do not hash to them."""
        def check(item: tuple[str, bytes]) -> str | None:
            name, data = item
            return None if hash_bytes(data) == name else name

        # Small blobs are hashed right here: a task on the pool costs more than hashing a few KiB
        # (1,000 blobs of ~90 bytes, a clone of 1,000 small variables: 18-30 ms on the pool, 0.8 ms
        # here); large ones in parallel on the pool (blake3 releases the GIL on large inputs).
        large = [(n, d) for n, d in blobs.items() if len(d) > _VERIFY_HERE_UPTO]
        bad = {n for n, d in blobs.items() if len(d) <= _VERIFY_HERE_UPTO and hash_bytes(d) != n}
        bad.update(b for b in (shared_pool().map(check, large) if len(large) > 1 else map(check, large)) if b)
        return bad


def read_sound(names: Sequence[str], stores: Sequence[ObjectStore], *,
               bad_copies: dict[str, list[str]] | None = None,
               came_from: dict[str, str] | None = None) -> dict[str, bytes]:
    """Sound copies of ``names``, each from the first of ``stores`` whose copy is sound (verified), a
    batch per store (:meth:`ObjectStore.get_sound`: a pack's members in one read); a store that cannot
    be reached is passed over, a corrupt copy noted in ``bad_copies`` (name -> the URLs holding one).
    Those no store holds sound are left out. ``came_from``: filled with name -> the URL it came from."""
    out: dict[str, bytes] = {}
    todo = list(names)
    for store in stores:
        if not todo:
            break
        try:
            got, bad = store.get_sound(todo)
        except TxgitError:  # an unreachable store cannot help; the others may
            continue
        if bad_copies is not None:
            for name in (n for n, why in bad.items() if why == "corrupt"):
                bad_copies.setdefault(name, []).append(store.url)
        out.update(got)
        if came_from is not None:
            came_from.update(dict.fromkeys(got, store.url))
        todo = [n for n in todo if n not in got]
    return out


class StoreChain:
    """The local cache first, then other stores (remotes) to fetch what it lacks.

    What is fetched from a later store is verified, then kept in the first.
    """

    def __init__(self, local: ObjectStore, fallbacks: Iterable[ObjectStore] = ()) -> None:
        self.local = local
        self.fallbacks = list(fallbacks)

    def get_many(self, names: Iterable[str]) -> dict[str, bytes]:
        names = list(dict.fromkeys(names))
        need = self.local.missing(names)
        corrupt: dict[str, CorruptBlob] = {}  # the first bad copy met of each blob, said if no store has a sound one
        for store in self.fallbacks:
            if not need:
                break
            have = need - store.missing(need)
            if have:
                # verified by the remote store's reader; a bad copy stops none of the others: it comes
                # from the next store
                got, bad = store.get_sound(sorted(have))
                for name in (n for n, why in bad.items() if why == "corrupt"):
                    corrupt.setdefault(name, store._corrupt(name))
                self.local.put_named(got, check=False)
                need -= set(got)
        for name in sorted(need):
            if name in corrupt:
                raise corrupt[name]
        if need:
            where = ", ".join([self.local.url] + [s.url for s in self.fallbacks])
            first = sorted(need)[0]
            gone = [g for g in (s.gone() for s in self.fallbacks) if g]
            if gone and len(gone) == len(self.fallbacks):  # no store that could hold it exists
                raise MissingBlob(f"blob {first[:12]} is missing (looked in {where}): {'; '.join(gone)}")
            raise MissingBlob(f"blob {first[:12]} is missing (looked in {where});"
                              " run `txgit fsck` (--repair fetches blobs from a store that has them)")
        return self.local.get_many(names)

    def read_joined(self, runs: Sequence[Sequence[str]], sizes: Sequence[int], *,
                    digest: Callable[[memoryview], bytes] | None = None,
                    digests: list[list[tuple[int, bytes]] | None] | None = None) -> list[bytearray | None]:
        """:meth:`ObjectStore.read_joined` from the local cache, after fetching what it lacks as
        :meth:`get_many` does (a subclass's get_many: its remotes, its error for a dropped blob)."""
        missing = self.local.missing({n for run in runs for n in run})
        if missing:
            self.get_many(sorted(missing))
        return self.local.read_joined(runs, sizes, digest=digest, digests=digests)
