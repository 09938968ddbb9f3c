"""Packs: many blobs stored, and moved, as one object with an index.

A store keeps blobs loose (``<root>/ab/cdef…``, one file or object each) and, for
small blobs written many at a time and (in a local store) the new large chunks of
one commit, in packs under ``<root>/packs/``:

* ``<id>.pack``: the members' bytes, one after another (no header: a member is
  a plain byte range, so a remote serves one with a range read);
* ``<id>.idx``: what the pack holds, as text: the line ``txgit-pack-index 1``,
  then ``<blob name> <offset> <length>`` per member. A line ``<name> - <length>``
  records a blob that the same write stored loose: the index of a remote is then
  the whole list of what its pushes stored (the *remote index*). ``<id>`` is the
  blake3 hash of the index's text, so the same members make the same pack.

**Order, for crash safety.** Loose blobs first, then the pack (a temp name renamed
into place on a local disk; one PUT on an object store), then its index the same
way on a local disk. An index is what makes members visible, and locally it appears
only once everything it names is stored: a killed writer leaves at worst a pack
without an index (garbage that gc removes after its grace period), never an index
pointing at missing bytes. On an object store the pack and its index go up
together (two PUTs at once: one request's wait, not two): a reader there lists the
folder and takes a packed member only where the listed pack is long enough, so an
index whose pack has not landed (or never will: a killed push) vouches for its
loose records alone, and a push names the blobs (moves a ref) only after both
landed. Removing goes the other way: index first, then pack.

**Trust.** An index only says where to look. Every member read is hashed and must
match its name (the store does it, as for loose blobs); an index that does not
parse is ignored (fsck reports it), and one whose pack is missing or shorter than
its members say vouches for nothing.

This module is at the storage layer: it knows fsspec paths and bytes, nothing of
pickles, git or sessions.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import blake3

PACK_DIR = "packs"
INDEX_MAGIC = "txgit-pack-index 1"
# Blobs up to this size go into packs when written many at a time. Larger ones (chunks of big
# arrays) go into packs of their own in a local store (a file per 1 MiB chunk made a first commit
# twice as slow as writing the same bytes as one file: inode allocation, renames, fan-out folders);
# on remotes they stay loose objects: one request per MiB costs little next to the bytes.
SMALL_BLOB_MAX = 128 << 10
PACK_MIN_MEMBERS = 16  # fewer small blobs than this in one write stay loose: a pack saves little
# Fewer large blobs than this in one write stay loose: a pack is two files (and an index every
# later process reads), so one or two changed chunks of an incremental commit are cheaper loose.
BIG_PACK_MIN_MEMBERS = 4
PACK_MAX_BYTES = 64 << 20  # a bigger write becomes several packs (bounded memory per request)
# Read a whole remote pack in one request when the wanted members cover this share of it.
WHOLE_PACK_SHARE = 0.25
TEMP_PREFIX = ".tmp-"
LOOSE = -1  # offset of an index line that records a loose blob
_UNPARSED = "its index does not parse"


@dataclass(frozen=True)
class Member:
    """Where one blob is: in pack ``pack`` at ``offset`` (or loose: offset :data:`LOOSE`)."""

    pack: str
    offset: int
    length: int


def is_small(data: bytes | bytearray | memoryview) -> bool:
    return len(data) <= SMALL_BLOB_MAX


def format_index(members: Mapping[str, tuple[int, int]]) -> bytes:
    """The index text for ``name -> (offset, length)`` (offset :data:`LOOSE`: stored loose)."""
    lines = [INDEX_MAGIC]
    for name in sorted(members):
        off, length = members[name]
        lines.append(f"{name} {'-' if off == LOOSE else off} {length}")
    return ("\n".join(lines) + "\n").encode()


def parse_index(text: bytes) -> dict[str, tuple[int, int]] | None:
    """``name -> (offset, length)``, or None when the text is no pack index (damaged or foreign)."""
    try:
        lines = text.decode("ascii").splitlines()
    except UnicodeDecodeError:
        return None
    if not lines or lines[0] != INDEX_MAGIC:
        return None
    out: dict[str, tuple[int, int]] = {}
    for line in lines[1:]:
        parts = line.split(" ")
        if len(parts) != 3 or len(parts[0]) != 64:
            return None
        try:
            off = LOOSE if parts[1] == "-" else int(parts[1])
            length = int(parts[2])
        except ValueError:
            return None
        if length < 0 or (off < 0 and off != LOOSE):
            return None
        out[parts[0]] = (off, length)
    return out


def build(blobs: Mapping[str, bytes | bytearray | memoryview],
          loose: Mapping[str, int] | None = None) -> tuple[str, bytes, bytes]:
    """(pack id, pack bytes, index bytes) for ``blobs`` packed and ``loose`` (name -> length) recorded."""
    members: dict[str, tuple[int, int]] = {n: (LOOSE, size) for n, size in (loose or {}).items()}
    parts: list[bytes | bytearray | memoryview] = []
    offset = 0
    for name in sorted(blobs):
        data = blobs[name]
        members[name] = (offset, len(data))
        parts.append(data)
        offset += len(data)
    index = format_index(members)
    return blake3.blake3(index).hexdigest(), b"".join(parts), index


def split(blobs: Mapping[str, bytes | bytearray | memoryview]) -> list[dict[str, Any]]:
    """``blobs`` cut into groups of at most :data:`PACK_MAX_BYTES` each (sorted by name)."""
    groups: list[dict[str, Any]] = [{}]
    size = 0
    for name in sorted(blobs):
        n = len(blobs[name])
        if groups[-1] and size + n > PACK_MAX_BYTES:
            groups.append({})
            size = 0
        groups[-1][name] = blobs[name]
        size += n
    return groups


class PackSet:
    """The packs of one store: which blobs they hold, reading members, writing and removing packs.

    Indexes are immutable (named by their hash), so each is read once per PackSet; :meth:`refresh`
    lists the pack folder (one request on a remote) and reads only indexes it has not seen.
    """

    def __init__(self, fs: Any, root: str, is_local: bool) -> None:
        self.fs = fs
        self.dir = f"{root}/{PACK_DIR}"
        self.is_local = is_local
        self._indexes: dict[str, dict[str, tuple[int, int]]] = {}  # pack id -> its members
        self.pack_sizes: dict[str, int] = {}  # pack id -> bytes of its .pack (0: no pack file)
        self.broken: dict[str, str] = {}  # pack id -> why its index vouches for nothing (fsck reports these)
        self.where: dict[str, Member] = {}  # blob name -> where a readable copy is
        self._packed: dict[str, Member] = {}  # where, packed members only
        self._lock = threading.Lock()
        self.loaded = False  # refreshed at least once
        # A remote's indexes read before, kept in a local folder (the workspace sets it): a new
        # process then reads only the indexes pushed since, not every one again.
        self.cache_dir: str | None = None
        self._listing: frozenset[str] | None = None  # local: the folder's names when last read
        # remote packs read whole beside their indexes (learn_named(with_packs=True)), for read() to
        # slice instead of asking again; dropped by drop_prefetched()
        self._prefetched: dict[str, bytes] = {}

    # -- paths -----------------------------------------------------------------------------------
    def pack_path(self, pack: str) -> str:
        return f"{self.dir}/{pack}.pack"

    def index_path(self, pack: str) -> str:
        return f"{self.dir}/{pack}.idx"

    # -- what the packs hold ---------------------------------------------------------------------
    def _list(self, listed: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, dict[str, int]]:
        """pack id -> {"idx": size, "pack": size} of the files present. ``listed``: a remote's
        listing made by the caller (path -> details, of a folder holding this one), used instead."""
        found: dict[str, dict[str, int]] = {}
        if self.is_local:
            try:
                entries = list(os.scandir(self.dir))
            except FileNotFoundError:
                return found
            files = []
            for e in entries:
                try:
                    files.append((e.name, e.stat().st_size))
                except FileNotFoundError:
                    continue
        else:
            if listed is None:
                try:
                    self.fs.invalidate_cache(self.dir)
                    listed = list_below(self.fs, self.dir)
                except FileNotFoundError:
                    return found
            files = [(str(path).rstrip("/").rsplit("/", 1)[-1], int(d.get("size") or 0))
                     for path, d in listed.items() if str(path).rstrip("/").rsplit("/", 1)[0] == self.dir]
        for fname, size in files:
            if fname.startswith(TEMP_PREFIX):
                continue
            stem, dot, ext = fname.rpartition(".")
            if dot and ext in ("idx", "pack") and len(stem) == 64:
                found.setdefault(stem, {})[ext] = size
        return found

    def refresh(self, listed: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Re-read which packs exist; read the indexes not seen yet. Safe beside readers on other
        threads (a transfer's workers): the new maps are built aside and swapped in whole.
        ``listed``: a remote store's listing of everything below it, just made (not listed again)."""
        with self._lock:
            self._refresh(listed)
            self.loaded = True

    def _refresh(self, listed: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        if self.is_local:
            try:
                # a writer's temp file is no pack: the pack being streamed must not make every
                # existence check of its own commit rescan (and stat) the whole folder
                listing = frozenset(n for n in os.listdir(self.dir) if not n.startswith(TEMP_PREFIX))
            except FileNotFoundError:
                listing = frozenset()
            if listing == self._listing:  # nothing added or removed since the last look
                return
            self._listing = listing
        found = self._list(listed)
        fresh = [p for p, files in found.items() if "idx" in files and p not in self._indexes]
        indexes = {p: m for p, m in self._indexes.items() if p in found and "idx" in found[p]}  # gc removes some
        broken = {p: why for p, why in self.broken.items() if p in indexes and why == _UNPARSED}
        if fresh:
            texts = self._read_indexes(fresh)
            for pack in fresh:
                members = parse_index(texts[pack]) if pack in texts else None
                indexes[pack] = members if members is not None else {}
                if members is None:
                    broken[pack] = _UNPARSED
        sizes = {p: found[p].get("pack", 0) for p in indexes}
        where: dict[str, Member] = {}
        for pack, members in indexes.items():
            if pack in broken:
                continue
            end = max((o + n for o, n in members.values() if o != LOOSE), default=0)
            if end > sizes[pack]:
                # the pack was deleted or cut short behind our back: its members are not vouched for
                broken[pack] = f"its pack holds {sizes[pack]} bytes, its index names {end}"
                members = {n: m for n, m in members.items() if m[0] == LOOSE}
            for name, (off, length) in members.items():
                if off != LOOSE or name not in where:  # a packed copy wins over a loose record
                    where[name] = Member(pack, off, length)
        self._indexes, self.broken, self.pack_sizes = indexes, broken, sizes
        self._packed = {n: m for n, m in where.items() if m.offset != LOOSE}
        self.where = where

    def _read_indexes(self, packs: list[str], also: list[str] | None = None,
                      extra: dict[str, bytes] | None = None) -> dict[str, bytes]:
        """pack id -> its index's text, for those that could be read. ``also`` (a remote store): more
        paths read in the same concurrent call, into ``extra`` (path -> bytes)."""
        paths = [self.index_path(p) for p in packs]
        if self.is_local:
            out = {}
            for p, path in zip(packs, paths):
                try:
                    with open(path, "rb") as f:
                        out[p] = f.read()
                except FileNotFoundError:
                    continue
            return out
        out = {}
        for p in packs:  # indexes read before, kept here: named by their hash, so checked, never stale
            cached = self._cached_index(p)
            if cached is not None:
                out[p] = cached
        todo = [(p, path) for p, path in zip(packs, paths) if p not in out]
        wanted = [path for _, path in todo] + list(also or ())
        got = absent_or_raise(self.fs.cat(wanted, on_error="return")) if wanted else {}
        if extra is not None:
            extra.update({path: got[path] for path in also or () if path in got})
        for p, path in todo:
            if path in got:
                out[p] = got[path]
                self._keep_index(p, got[path])
        return out

    def _cached_index(self, pack: str) -> bytes | None:
        if self.cache_dir is None:
            return None
        try:
            with open(os.path.join(self.cache_dir, f"{pack}.idx"), "rb") as f:
                text = f.read()
        except OSError:
            return None
        return text if blake3.blake3(text).hexdigest() == pack else None

    def _keep_index(self, pack: str, text: bytes) -> None:
        if self.cache_dir is None or blake3.blake3(text).hexdigest() != pack:
            return
        try:
            os.makedirs(self.cache_dir, exist_ok=True)
            write_atomic(os.path.join(self.cache_dir, f"{pack}.idx"), bytes(text))
        except OSError:  # a cache: a read-only workspace only reads more
            pass

    def learn(self, texts: Mapping[str, bytes]) -> int:
        """Take indexes known from elsewhere, without listing the pack folder: a remote's git data
        names the indexes of its storage (``refs/txgit/config``), so a clone reads them directly.
        Each must hash to its pack id and parse; its pack is taken to hold exactly its members. A
        hint like any index: a read that finds the pack gone lists the folder (see
        ``ObjectStore.get_many``), and a refresh keeps only what the listing confirms. Returns how
        many indexes were new here."""
        taken = 0
        for pack, text in texts.items():
            if pack in self._indexes or blake3.blake3(text).hexdigest() != pack:
                continue
            members = parse_index(text)
            if members is None:
                continue
            end = max((o + n for o, n in members.values() if o != LOOSE), default=0)
            self._register(pack, members, end)
            taken += 1
        return taken

    def learn_named(self, packs: Iterable[str], *, with_packs: bool = False) -> int:
        """:meth:`learn` the indexes of ``packs``, read directly (or from the local copies) without
        listing the folder; one that cannot be read is left out (a later read lists the folder).

        ``with_packs`` (a remote store): the packs themselves are read whole in the same concurrent
        call, for a reader about to want (nearly) all their members, such as an eager clone: one
        request's wait instead of the index's and then the pack's. A pack shorter than its index
        says is not kept (read() then asks as usual); members are verified by the store as always."""
        with self._lock:
            todo = [p for p in dict.fromkeys(packs) if p not in self._indexes]
        if not todo:
            return 0
        if not with_packs or self.is_local:
            return self.learn(self._read_indexes(todo))
        got: dict[str, bytes] = {}
        taken = self.learn(self._read_indexes(todo, also=[self.pack_path(p) for p in todo], extra=got))
        with self._lock:
            for p in todo:
                data = got.get(self.pack_path(p))
                if isinstance(data, (bytes, bytearray)) and p in self._indexes and len(data) >= self.pack_sizes.get(p, 0):
                    self._prefetched[p] = bytes(data)
        return taken

    def drop_prefetched(self) -> None:
        """Forget the packs :meth:`learn_named` read whole (their memory goes)."""
        with self._lock:
            self._prefetched = {}

    def packed(self) -> Mapping[str, Member]:
        """Blob name -> its place in a pack (loose records left out); read it, do not change it."""
        return self._packed

    def indexes(self) -> dict[str, dict[str, tuple[int, int]]]:
        return dict(self._indexes)

    # -- reads -----------------------------------------------------------------------------------
    def read(self, names: Iterable[str]) -> dict[str, bytes]:
        """The bytes of each packed blob among ``names`` (unverified: the store hashes them)."""
        by_pack: dict[str, list[tuple[str, Member]]] = {}
        for name in names:
            m = self.where.get(name)
            if m is not None and m.offset != LOOSE:
                by_pack.setdefault(m.pack, []).append((name, m))
        out: dict[str, bytes] = {}
        for pack, wanted in by_pack.items():
            wanted.sort(key=lambda item: item[1].offset)
            try:
                if self.is_local:
                    with open(self.pack_path(pack), "rb") as f:
                        for name, m in wanted:
                            f.seek(m.offset)
                            out[name] = f.read(m.length)
                    continue
                share = sum(m.length for _, m in wanted) / max(self.pack_sizes.get(pack, 1), 1)
                whole = self._prefetched.get(pack)
                if whole is not None or share >= WHOLE_PACK_SHARE or len(wanted) > 64:
                    if whole is None:
                        whole = self.fs.cat_file(self.pack_path(pack))
                    view = memoryview(whole)
                    for name, m in wanted:
                        out[name] = bytes(view[m.offset : m.offset + m.length])
                else:  # a few members of a big pack: one range read each
                    path = self.pack_path(pack)
                    got = self.fs.cat_ranges([path] * len(wanted), [m.offset for _, m in wanted],
                                             [m.offset + m.length for _, m in wanted], on_error="return")
                    for (name, _), data in zip(wanted, got):
                        if isinstance(data, (bytes, bytearray)):
                            out[name] = bytes(data)
                        elif isinstance(data, BaseException) and not isinstance(data, FileNotFoundError):
                            raise data  # the network, not an absent pack: never read as "missing"
            except FileNotFoundError:
                continue  # the pack went (gc rewrote it): the caller reports what is missing
        return out

    # -- writes ----------------------------------------------------------------------------------
    def write(self, blobs: Mapping[str, bytes | bytearray | memoryview],
              loose: Mapping[str, int] | None = None) -> str:
        """Store ``blobs`` as one pack (and record ``loose`` blobs, already stored, in its index).
        Locally the pack lands before its index; on a remote both at once (see the module's
        notes). Returns the pack id."""
        if self.is_local and not loose:
            writer = self.writer()
            try:
                for name in sorted(blobs):
                    writer.add(name, blobs[name])
                return writer.finish()
            except BaseException:
                writer.abort()
                raise
        pack, data, index = build(blobs, loose)
        if self.is_local:
            os.makedirs(self.dir, exist_ok=True)
            if blobs:
                write_atomic(self.pack_path(pack), data)
            write_atomic(self.index_path(pack), index)
        elif blobs:
            # the pack and its index in one concurrent call, not one request after the other: a
            # reader that lists the folder takes a member only once its pack is there whole (refresh
            # checks the sizes), and nothing names these blobs until both calls returned
            self.fs.pipe({self.pack_path(pack): data, self.index_path(pack): index})
            self._keep_index(pack, index)
        else:
            self.fs.pipe_file(self.index_path(pack), index)
            self._keep_index(pack, index)
        self._register(pack, parse_index(index) or {}, len(data))
        return pack

    def writer(self) -> PackWriter:
        """A pack of a local store written member by member (see :class:`PackWriter`)."""
        if not self.is_local:
            raise ValueError("a pack is streamed into a local store only")
        return PackWriter(self)

    def _register(self, pack: str, members: Mapping[str, tuple[int, int]], size: int) -> None:
        """Make a pack just written (its index last) readable by this PackSet at once."""
        with self._lock:
            self._indexes = {**self._indexes, pack: dict(members)}
            self.pack_sizes = {**self.pack_sizes, pack: size}
            where, packed = dict(self.where), dict(self._packed)
            for name, (off, length) in members.items():
                if off != LOOSE or name not in where:
                    where[name] = Member(pack, off, length)
                    if off != LOOSE:
                        packed[name] = where[name]
            self.where, self._packed = where, packed

    def remove(self, packs: Iterable[str]) -> None:
        """Remove packs: each index first, so no index ever names a pack that is gone."""
        for pack in packs:
            for path in (self.index_path(pack), self.pack_path(pack)):
                try:
                    if self.is_local:
                        os.unlink(path)
                    else:
                        self.fs.rm_file(path)
                except FileNotFoundError:
                    pass
        with self._lock:
            self._listing = None
        self.refresh()  # rebuilds the maps without the removed packs

    def stale_files(self) -> list[tuple[str, float]]:
        """(path, mtime) of local temp files and packs without an index (a writer killed between them)."""
        out: list[tuple[str, float]] = []
        if not self.is_local:
            return out
        try:
            entries = list(os.scandir(self.dir))
        except FileNotFoundError:
            return out
        names = {e.name for e in entries}
        for e in entries:
            orphan = e.name.endswith(".pack") and e.name[:-5] + ".idx" not in names
            if e.name.startswith(TEMP_PREFIX) or orphan:
                try:
                    out.append((e.path, e.stat().st_mtime))
                except FileNotFoundError:
                    continue
        return out

    def mtime(self, pack: str) -> float:
        """When a local pack's index was written (0 on remotes)."""
        if not self.is_local:
            return 0.0
        try:
            return os.stat(self.index_path(pack)).st_mtime
        except FileNotFoundError:
            return 0.0


class PackWriter:
    """One pack of a local store written member by member, as the members come (a commit's large
    chunks, each as soon as it is hashed): the bytes go to a temp file in the pack folder, straight
    from the caller's buffers (no joined copy); :meth:`finish` renames it to ``<id>.pack`` and then
    writes the index, so the members become visible only once all their bytes are in place. A writer
    killed before that leaves a temp file (or a pack without its index) that no reader looks at and
    gc removes. Not thread-safe: one thread adds, then finishes or aborts.
    """

    def __init__(self, packs: PackSet) -> None:
        self.packs = packs
        self.members: dict[str, tuple[int, int]] = {}
        self.size = 0
        self._tmp = os.path.join(packs.dir, f"{TEMP_PREFIX}{uuid.uuid4().hex}")
        try:
            self._fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileNotFoundError:
            os.makedirs(packs.dir, exist_ok=True)
            self._fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)

    def add(self, name: str, data: bytes | bytearray | memoryview) -> None:
        """Append one member (a name already added is skipped: a pack holds a blob once)."""
        if name in self.members:
            return
        view = memoryview(data)
        if view.ndim != 1 or view.format != "B":
            view = view.cast("B")
        done = 0
        while done < len(view):  # a short write (a full disk) is retried, then raises
            done += os.write(self._fd, view[done:])
        self.members[name] = (self.size, len(view))
        self.size += len(view)

    def finish(self) -> str:
        """Close the pack, move it into place, then write its index. Returns the pack id."""
        os.close(self._fd)
        self._fd = -1
        index = format_index(self.members)
        pack = blake3.blake3(index).hexdigest()
        try:
            os.replace(self._tmp, self.packs.pack_path(pack))
        except BaseException:
            self.abort()
            raise
        write_atomic(self.packs.index_path(pack), index)  # last: it makes the members visible
        self.packs._register(pack, self.members, self.size)
        return pack

    def abort(self) -> None:
        """Drop what was written (nothing of it is visible: it has no index)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        try:
            os.unlink(self._tmp)
        except OSError:
            pass


def absent_or_raise(got: Mapping[str, Any]) -> dict[str, Any]:
    """What ``fs.cat(paths, on_error="return")`` read, without the files that are not there; any
    other error (a timeout, a refused connection) is raised: a network failure is never an absent
    blob (``on_error="omit"`` dropped both alike, and fsck --verify said the remote lacked them)."""
    out = {}
    for path, data in got.items():
        if isinstance(data, BaseException):
            if not isinstance(data, FileNotFoundError):
                raise data
            continue
        out[path] = data
    return out


def list_below(fs: Any, folder: str) -> dict[str, dict[str, Any]]:
    """Every file below ``folder`` (path -> details), in one listing request on S3.

    s3fs's ``find`` of an empty or missing folder asks a second time (is it a file?), and its
    ``ls`` asks twice to tell a missing folder from an empty one; a first push to an empty storage
    paid that for the pack folder and for the blobs' folder. A listing of the parent restricted
    to the prefix ``<name>/`` is one request whatever it finds. Raises FileNotFoundError (other
    backends) where the folder is missing."""
    parent, _, name = folder.rstrip("/").rpartition("/")
    protocols = getattr(fs, "protocol", ())
    if parent and "s3" in ((protocols,) if isinstance(protocols, str) else tuple(protocols)):
        try:
            return fs.find(parent, prefix=f"{name}/", detail=True)
        except TypeError:  # an s3fs without ``prefix``
            pass
    return fs.find(folder, detail=True)


def write_atomic(final: str, data: bytes | bytearray | memoryview, *, make_folder: bool = False) -> None:
    """Write a local file whole or not at all: a temp name beside it, then a rename, so readers
    never see part of it. ``make_folder``: create the folder if missing, only when the first open
    fails (most writes land in a folder that exists: no makedirs syscalls for them)."""
    folder = os.path.dirname(final)
    tmp = os.path.join(folder, f"{TEMP_PREFIX}{uuid.uuid4().hex}")
    try:
        try:
            f = open(tmp, "wb")
        except FileNotFoundError:
            if not make_folder:
                raise
            os.makedirs(folder, exist_ok=True)
            f = open(tmp, "wb")
        with f:
            f.write(data)
        os.replace(tmp, final)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
