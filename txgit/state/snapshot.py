"""A namespace dict <-> records (small, JSON, kept in git) + chunks (bytes, kept in a store).

* Every variable gets a :class:`VarRecord`: kind, type, summary, size, group.
* Variables that share objects (``b = a``, ``d = {"x": a}``) form one *group*
  and are pickled together, so aliasing survives a restore.
* A group's pickle and each of its large out-of-band buffers is a *stream*, cut
  into fixed-size chunks named by their hash: an unchanged array costs no new
  bytes, and changing 1 % of a big array's rows stores only the chunks touched.
* Modules are recorded as imports; what cannot be pickled is recorded with the
  reason instead of failing the commit.

Nothing here knows git or sessions; it reads and writes bytes through callables.
"""

from __future__ import annotations

import ctypes
import enum
import functools
import gc
import importlib
import itertools
import json
import operator
import os
import pickle
import sys
import threading
import types
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import xxhash

from txgit.errors import RestoreError
from txgit.state import pickling, safe
from txgit.state.identity import address_identity, identity
from txgit.state.summary import describe, type_name
from txgit.storage import hash_bytes, is_blob_name, shared_pool

CHUNK_SIZE = 1 << 20
# Streams from this size on are looked up in a StreamCache before being cut and hashed
# (out-of-band buffers start at 64 KiB: a random forest's trees are ~180 KiB each).
FINGERPRINT_MIN = 64 * 1024
FORMAT = "txgit-state-1"

# kinds of VarRecord
VALUE = "value"
MODULE = "module"
UNPICKLABLE = "unpicklable"
NAMESPACE = "namespace"  # the variable is the namespace itself (g = globals())
KINDS = frozenset({VALUE, MODULE, UNPICKLABLE, NAMESPACE})


# git (libgit2) cannot read back a tree entry name over 65535 bytes: a longer variable
# name would make a commit that no later process can open. 1024 characters of any
# script stay far below that.
MAX_NAME_LENGTH = 1024


def is_variable_name(name: object) -> bool:
    """Names that are committed: identifiers up to MAX_NAME_LENGTH, but not dunders (``__name__``…)."""
    return _is_variable_str(name) if isinstance(name, str) else False


@functools.lru_cache(maxsize=1 << 16)
def _is_variable_str(name: str) -> bool:
    # Sessions ask for every name of the namespace before and after each cell, and IPython adds two
    # (_i12, _12) per cell: remembered, a long session's check stays a dict lookup per name.
    return (len(name) <= MAX_NAME_LENGTH and name.isidentifier()
            and not (name.startswith("__") and name.endswith("__")))


_VAR_FIELD_TYPES = (("type", str), ("summary", str), ("size", int), ("group", str), ("module", str),
                    ("reason", str), ("details", dict))
_scan_json = json.JSONDecoder().scan_once  # json.loads's own C scanner, default settings


def loads_record(data: bytes) -> Any:
    """``json.loads(data)``, the same value or error, for a record's bytes (a state of 1,000
    variables is 2,000 records, read on every clone and checkout). The usual record, UTF-8 with
    no whitespace around it but a final newline, goes straight to the C scanner, without the
    encoding detection and wrapper calls that are half of ``json.loads``'s time on such small
    inputs; anything else (another encoding, a BOM, surrounding whitespace, an error) is left to
    ``json.loads`` itself, so nothing it would refuse is accepted."""
    try:
        text = data.decode()
        value, end = _scan_json(text, 0)
    except (ValueError, StopIteration):  # (UnicodeDecodeError and JSONDecodeError are ValueErrors)
        return json.loads(data)
    if end == len(text) or (end == len(text) - 1 and text[end] == "\n"):
        return value
    return json.loads(data)


@dataclass
class VarRecord:
    """What git stores for one variable (``vars/<name>``)."""

    kind: str
    type: str
    summary: str
    size: int = 0
    group: str | None = None
    module: str | None = None
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    # bytes this record was read from: carried over unchanged, it is not encoded again
    raw: bytes | None = field(default=None, repr=False, compare=False)

    def _fields(self) -> dict[str, Any]:
        d = {"kind": self.kind, "type": self.type, "summary": self.summary, "size": self.size,
             "group": self.group, "module": self.module, "reason": self.reason, "details": self.details}
        return {k: v for k, v in d.items() if v not in (None, {}) or k == "kind"}

    def to_bytes(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return (json.dumps(self._fields(), sort_keys=True, indent=1) + "\n").encode()

    def to_line(self) -> bytes:
        """The record as one line of compact JSON (storage format 2's ``records/``), newline included."""
        return json.dumps(self._fields(), sort_keys=True, separators=(",", ":")).encode() + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes) -> VarRecord:
        """Parse a pointer file; ValueError when it is not one (it may come from a fetched repository)."""
        d = loads_record(data)
        if not isinstance(d, dict):
            raise ValueError("a variable record must be a JSON object")
        get = d.get
        kind = get("kind")
        if kind not in KINDS:
            raise ValueError(f"unknown variable kind {str(kind)[:40]!r}")
        for key, types_ in _VAR_FIELD_TYPES:
            value = get(key)
            if value is not None and not isinstance(value, types_):
                raise ValueError(f"field {key!r} has the wrong type")
        group = get("group")
        if kind == VALUE and not is_blob_name(group):
            raise ValueError("a value's group is not a blake3 hash")
        return cls(kind=kind, type=get("type"), summary=get("summary"), size=get("size"), group=group,
                   module=get("module"), reason=get("reason"), details=get("details") or {}, raw=bytes(data))

    def same_content(self, other: VarRecord | None) -> bool:
        if other is None or other.kind != self.kind:
            return False
        if self.kind == VALUE:
            return self.group == other.group
        if self.kind == MODULE:
            return self.module == other.module
        return self.type == other.type  # unpicklable / namespace: nothing else to compare


@dataclass
class StreamRecord:
    size: int
    chunks: list[str]


@dataclass
class GroupRecord:
    """What git stores for one group (``groups/<id>``): its names and its streams' chunks.

    Stream 0 is the pickle; the others are its out-of-band buffers, in order.
    With one name the pickle is that value; with several it is a dict name -> value.
    A name it lists may since have been deleted, or bound to another value with a group of its own
    (the others kept this one: storage format 3); a name's value is its record's group's.
    """

    names: list[str]
    streams: list[StreamRecord]
    format: str = FORMAT
    raw: bytes | None = field(default=None, repr=False, compare=False)

    def to_bytes(self) -> bytes:
        """The record's line, encoded once: a group is known by the hash of these bytes (its id keys it
        in a state), so it is not changed once made, and a session carries it from commit to commit,
        whose records would otherwise encode every group again."""
        if self.raw is None:
            d = {"format": self.format, "names": self.names,
                 "streams": [{"chunks": s.chunks, "size": s.size} for s in self.streams]}
            self.raw = (json.dumps(d, sort_keys=True, separators=(",", ":")) + "\n").encode()
        return self.raw

    @classmethod
    def from_bytes(cls, data: bytes) -> GroupRecord:
        """Parse a group record; ValueError when it is not one (it may come from a fetched repository)."""
        d = loads_record(data)
        if not isinstance(d, dict):
            raise ValueError("a group record must be a JSON object")
        get = d.get
        if get("format") != FORMAT:
            raise RestoreError(f"unknown state format {str(get('format'))[:40]!r}")
        names, streams = get("names"), get("streams")
        if not isinstance(names, list) or not names or not all(map(is_variable_name, names)):
            raise ValueError("a group's names must be a non-empty list of variable names")
        if not isinstance(streams, list) or not streams:
            raise ValueError("a group must have at least one stream")
        records = []
        for st in streams:
            size = st.get("size") if isinstance(st, dict) else None
            chunks = st.get("chunks") if isinstance(st, dict) else None
            if (not isinstance(size, int) or isinstance(size, bool) or size < 0 or not isinstance(chunks, list)
                    or not all(map(is_blob_name, chunks))):
                raise ValueError("a stream must have a size and a list of blake3 chunk names")
            records.append(StreamRecord(size, list(chunks)))
        return cls(names=list(names), streams=records, raw=bytes(data))

    @property
    def id(self) -> str:
        return hash_bytes(self.to_bytes())

    def chunk_names(self) -> list[str]:
        return [c for s in self.streams for c in s.chunks]

    @property
    def nbytes(self) -> int:
        return sum(s.size for s in self.streams)


Fingerprint = tuple[int, bytes]  # (size, xxh3-128 digest) of a stream's bytes


def fingerprint_stream(data: memoryview) -> Fingerprint:
    """A cheap content fingerprint: xxh3 reads memory several times faster than blake3 hashes it.

    Made of the xxh3 of each CHUNK_SIZE piece, so that a checkout gets it from the chunks as it
    reads and verifies them (:func:`fingerprint_of_pieces`), with no pass of its own."""
    n = len(data)
    if n <= CHUNK_SIZE:
        return n, xxhash.xxh3_128_digest(data)
    digest = xxhash.xxh3_128_digest
    return n, digest(b"".join([digest(data[i : i + CHUNK_SIZE]) for i in range(0, n, CHUNK_SIZE)]))


def fingerprint_of_pieces(size: int, pieces: list[tuple[int, bytes]]) -> Fingerprint | None:
    """:func:`fingerprint_stream` of a stream of ``size`` bytes from the (length, xxh3) of its
    consecutive pieces; None unless every piece but the last is CHUNK_SIZE long (a stream cut
    otherwise must be fingerprinted whole)."""
    if (not pieces or any(n != CHUNK_SIZE for n, _ in pieces[:-1]) or not 0 < pieces[-1][0] <= CHUNK_SIZE
            or sum(n for n, _ in pieces) != size):
        return None
    if size <= CHUNK_SIZE:
        return (size, pieces[0][1]) if len(pieces) == 1 and pieces[0][0] == size else None
    return size, xxhash.xxh3_128_digest(b"".join([d for _, d in pieces]))


def _address(data: memoryview | bytearray) -> int | None:
    """Where a writable buffer's bytes start in memory (None: read-only or empty)."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(data))
    except (TypeError, ValueError):
        return None


class Fingerprints(dict[Fingerprint, list[str]]):
    """The fingerprints of the buffers :func:`restore` rebuilt -> their chunk names (what a
    StreamCache learns), and the buffers themselves by where they lie in memory.

    Right after a restore, :meth:`RestoredGroups.note` pickles the restored values again and meets
    the very same buffers: found here by address, they need no second fingerprint pass (at 100 MB,
    4 ms of a 60 ms checkout). Each buffer is held, so that no other can take its address while
    this lives. Even a buffer changed since its restore could only give :class:`RestoredGroups` an
    entry no real snapshot reproduces: its map is keyed by group ids, made from verified chunk names.
    """

    def __init__(self) -> None:
        super().__init__()
        self.buffers: dict[tuple[int, int], tuple[Fingerprint, bytearray]] = {}

    def add(self, buffer: bytearray, key: Fingerprint, chunks: list[str]) -> None:
        self[key] = chunks
        address = _address(buffer)
        if address is not None:
            self.buffers[(address, len(buffer))] = (key, buffer)

    def known(self, data: memoryview) -> Fingerprint | None:
        """The fingerprint of ``data`` if it is one of the restored buffers, whole."""
        if not self.buffers:
            return None
        hit = self.buffers.get((_address(data) or 0, len(data)))
        return hit[0] if hit is not None else None


class StreamCache:
    """Fingerprint of a stream -> the blake3 chunk names it was stored under.

    A session re-serializes every variable a cell touched, but most of the
    bytes (a DataFrame's unchanged columns, an array the cell only read) are
    the same as in the last commit. Recognising them by a fast non-cryptographic
    fingerprint skips cutting, blake3-hashing and store look-ups for them. The
    blob names in history stay blake3 (verified on every read); the cache only
    maps content to names computed earlier from that same content, and a
    workspace checks that the chunks still exist before trusting a hit.
    """

    def __init__(self, limit: int = 1 << 16) -> None:
        self.limit = limit
        self._names: OrderedDict[Fingerprint, list[str]] = OrderedDict()
        # Streams copied for a commit still being written (snapshot(defer=True)), not yet stored: a
        # later snapshot of the same bytes (the next cell only read the array) takes the same copy
        # instead of copying and hashing them again. Gone with the last commit that holds them.
        self.pending: weakref.WeakValueDictionary[Fingerprint, PendingStream] = weakref.WeakValueDictionary()

    def get(self, key: Fingerprint) -> list[str] | None:
        names = self._names.get(key)
        if names is not None:
            self._names.move_to_end(key)
        return names

    def update(self, entries: Mapping[Fingerprint, list[str]]) -> None:
        for key, names in entries.items():
            self._names[key] = names
            self._names.move_to_end(key)
        while len(self._names) > self.limit:
            self._names.popitem(last=False)

    def clear(self) -> None:
        self._names.clear()
        self.pending.clear()

    def __len__(self) -> int:
        return len(self._names)


class _CopyPool:
    """Buffers of private copies whose commits are written, kept to copy the next ones into.

    Copying into memory the process already touched is several times faster than into fresh
    pages (a 20 MB copy: ~3 ms instead of ~18 ms, nearly all page faults), and a cell that
    changes a large array changes it again and again. At most ``limit`` bytes are kept.
    """

    def __init__(self, limit: int = 256 << 20) -> None:
        self.limit = limit
        self._free: list[bytearray] = []
        self._bytes = 0
        self._lock = threading.Lock()

    def copy(self, data: memoryview) -> tuple[memoryview, bytearray]:
        """A private copy of ``data`` (exactly its length) and the buffer that holds it."""
        n = len(data)
        buf = None
        with self._lock:
            for i, b in enumerate(self._free):
                if n <= len(b) <= n + n // 4 and _unshared(b):
                    buf = self._free.pop(i)
                    self._bytes -= len(buf)
                    break
        if buf is None:
            buf = bytearray(data)
            return memoryview(buf), buf
        view = memoryview(buf)[:n]
        view[:] = data
        return view, buf

    def give(self, buf: bytearray) -> None:
        with self._lock:
            if self._bytes + len(buf) > self.limit:
                return
            self._free.append(buf)
            self._bytes += len(buf)

    def clear(self) -> None:
        with self._lock:
            self._free.clear()
            self._bytes = 0


def _unshared(buf: bytearray) -> bool:
    """No view of ``buf`` is left (a chunk being written, say): resizing a bytearray that has any
    raises BufferError. Its last byte is taken off and put back: a shrink by one keeps the
    allocation, so neither step moves or copies the buffer."""
    if not buf:
        return False
    last = buf[-1]
    try:
        del buf[-1]
    except BufferError:
        return False
    buf.append(last)
    return True


_copies = _CopyPool()

# A private copy of up to this many bytes is always made; a larger one only while it is at most
# COPY_SHARE of the memory the system has available.
COPY_ALWAYS = 64 << 20
COPY_SHARE = 8


def available_memory() -> int | None:
    """Bytes the system can still give without swapping (Linux's MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def copy_fits(nbytes: int) -> bool:
    """Whether a background commit may copy a buffer of ``nbytes`` (see :class:`PendingStream`)."""
    if nbytes <= COPY_ALWAYS:
        return True
    available = available_memory()
    return available is None or nbytes * COPY_SHARE <= available


class PendingStream:
    """A private copy of a large stream, cut and hashed later (by a background writer); commits
    that hold the same bytes share one copy, cut and hashed once."""

    __slots__ = ("data", "_buffer", "_cut", "_lock", "__weakref__")

    def __init__(self, data: memoryview, *, owned: bool = False) -> None:
        """``owned``: ``data`` views an immutable object nobody else holds (a skeleton's bytes): kept, not
        copied. Raises MemoryError where the copy cannot be made."""
        self.data, self._buffer = (data, None) if owned else _copies.copy(data)
        self._cut: dict[int, tuple[StreamRecord, dict[str, memoryview]]] = {}  # by chunk size
        self._lock = threading.Lock()

    def __del__(self) -> None:
        if getattr(self, "_buffer", None) is None:  # owned bytes, or a copy that failed
            return
        try:
            _copies.give(self._buffer)  # reused only once no chunk view of it is left (_unshared)
        except Exception:  # interpreter shutdown
            pass

    def cut(self, chunk_size: int, pool: ThreadPoolExecutor | None) -> tuple[StreamRecord, dict[str, memoryview]]:
        """The stream's record and chunks (computed by the first commit that asks)."""
        with self._lock:
            got = self._cut.get(chunk_size)
            if got is None:
                got = self._cut[chunk_size] = _chunk_stream(memoryview(self.data), chunk_size, pool)
            return StreamRecord(got[0].size, list(got[0].chunks)), dict(got[1])


@dataclass
class Snapshot:
    """A serialized namespace: records for git, chunk bytes for the store."""

    variables: dict[str, VarRecord]
    groups: dict[str, GroupRecord]
    chunks: dict[str, memoryview]  # name -> bytes, borrowed from the live objects: store before mutating
    # streams recognised by a StreamCache: their chunks are not in ``chunks`` (already stored)
    reused: set[str] = field(default_factory=set)
    # fingerprints of the streams hashed afresh: give them to the cache once ``chunks`` are stored
    fingerprints: dict[Fingerprint, list[str]] = field(default_factory=dict)
    # ids of the mutable objects each serialized variable reaches (see shared_ids)
    shared: dict[str, set[int]] = field(default_factory=dict)
    # groups whose new streams are copied but not yet cut and hashed (snapshot(defer=True))
    deferred: list[_DeferredGroup] = field(default_factory=list)

    def resolve(self, pool: ThreadPoolExecutor | None = None, chunk_size: int = CHUNK_SIZE) -> None:
        """Cut and hash the deferred streams; their groups get their ids and join ``groups``.

        A background writer calls this while the next cell runs: by default it hashes on the
        calling thread only, so the other core stays the cell's (a pool would take both).
        """
        for d in self.deferred:
            for i, copy in d.copies.items():
                rec, ch = copy.cut(chunk_size, pool)
                d.streams[i] = rec
                self.chunks.update(ch)
                if d.keys.get(i) is not None:
                    self.fingerprints[d.keys[i]] = rec.chunks
            record = GroupRecord(names=d.names, streams=d.streams)
            gid = record.id
            self.groups[gid] = record
            for n in d.names:
                self.variables[n].group = gid
        self.deferred = []

    def pending_content(self) -> dict[str, tuple[Any, ...]]:
        """Names in deferred groups -> what their content is known by before the group is hashed:
        the group's names, and per stream its chunk names or, if not cut yet, its fingerprint.
        Equal for two snapshots exactly when the groups will get the same id (the fingerprints are
        what a StreamCache trusts too). Small: safe to keep while the copies are hashed."""
        out: dict[str, tuple[Any, ...]] = {}
        for d in self.deferred:
            if any(d.keys.get(i) is None for i in d.copies):
                continue  # a stream without a fingerprint: known by nothing short of its hash
            key = (tuple(sorted(d.names)),
                   tuple(("fp", d.keys[i]) if i in d.copies else tuple(st.chunks) for i, st in enumerate(d.streams)))
            out.update((n, key) for n in d.names)
        return out

    @property
    def nbytes(self) -> int:
        return sum(g.nbytes for g in self.groups.values())


class RestoredGroups:
    """Serializations of restored values -> the committed group they were restored from.

    Pickling a value restored from group G rarely gives G's bytes again:
    unpickling interns some strings and not others, so pickle's memo sees
    other identities and the skeleton differs although the value is equal.
    Right after a restore the session pickles the restored values once
    (:meth:`note`); later, a snapshot that produces exactly those bytes again
    (the value was only read) is mapped back to G (:meth:`apply`), so an
    unchanged value is recorded as unchanged. A real mutation pickles to other
    bytes, misses the map and is recorded as a change. The map is keyed by
    content (the group id hashes every chunk name), so it never goes stale.
    """

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._map: OrderedDict[str, tuple[GroupRecord, dict[str, VarRecord]]] = OrderedDict()
        # fingerprint -> chunk names of the large streams of those serializations (never stored): a
        # snapshot that defers hashing them (a kernel's background commit) gets its group's id from these
        self._streams: OrderedDict[Fingerprint, list[str]] = OrderedDict()

    def note(self, namespace: Mapping[str, Any], names: Iterable[str], records: Mapping[str, VarRecord],
             groups: Mapping[str, GroupRecord], cache: StreamCache | None = None,
             restored: Fingerprints | None = None) -> None:
        """``names`` of ``namespace`` were just restored from ``records``/``groups``: learn their bytes.
        ``restored``: what the restore fingerprinted (its buffers are not fingerprinted again)."""
        names = [n for n in names if n in records and records[n].kind == VALUE]
        if not names:
            return
        # Values restored from different groups share no object (each group was unpickled on its own):
        # the committed grouping stands in for walking every restored object, which cost as much as
        # unpickling them. The stand-in ids are small negative numbers: no live object's identity is one.
        stand_in = {gid: -1 - i for i, gid in enumerate(sorted({records[n].group for n in names}))}
        known = {n: {stand_in[records[n].group]} for n in names}
        snap = snapshot(namespace, names, cache=cache, known_shared=known, restored=restored)
        for gid, rec in snap.groups.items():
            committed = {records[n].group for n in rec.names if n in records}
            if len(committed) != 1:
                continue
            cid = committed.pop()
            old = groups.get(cid)
            # (the names it restores: one it lists may since hold another group's value)
            if old is None or sorted(n for n in old.names if _restored_from(records, n, cid)) != sorted(rec.names):
                continue
            if gid == cid:
                # pickled to the committed bytes, whose chunks the store holds: the cache may know them
                # now, or the next snapshot of this value hashes it afresh (in a kernel: with no group
                # id when its cell is settled, a change as far as the session can tell)
                if cache is not None:
                    chunks = set(rec.chunk_names())
                    cache.update({k: v for k, v in snap.fingerprints.items() if chunks.issuperset(v)})
                continue
            self._map[gid] = (old, {n: records[n] for n in rec.names})
            self._map.move_to_end(gid)
            chunks = set(rec.chunk_names())
            for key, names in snap.fingerprints.items():
                if chunks.issuperset(names):
                    self._streams[key] = names
                    self._streams.move_to_end(key)
        while len(self._map) > self.limit:
            self._map.popitem(last=False)
        while len(self._streams) > self.limit:
            self._streams.popitem(last=False)

    def apply(self, snap: Snapshot) -> bool:
        """Replace groups of ``snap`` that are known re-serializations by the committed ones (True: any)."""
        if not self._map:
            return False
        hits = {gid: self._map[gid] for gid in snap.groups if gid in self._map}
        for d in list(snap.deferred):
            gid = self._deferred_id(d)
            if gid is not None and gid in self._map:
                snap.deferred.remove(d)
                hits[gid] = self._map[gid]
        if not hits:
            return False
        for gid, (old, records) in hits.items():
            snap.groups.pop(gid, None)  # (a deferred one is in no group yet)
            snap.groups[old.id] = old
            snap.reused.update(old.chunk_names())
            snap.variables.update(records)
        # chunks only the replaced serializations had are not stored (nor cached as stored)
        needed = {c for g in snap.groups.values() for c in g.chunk_names()}
        needed.update(c for d in snap.deferred for st in d.streams for c in st.chunks)  # those still to hash
        for c in [c for c in snap.chunks if c not in needed]:
            del snap.chunks[c]
        snap.fingerprints = {k: v for k, v in snap.fingerprints.items() if needed.issuperset(v)}
        snap.reused &= needed
        return True

    def _deferred_id(self, d: _DeferredGroup) -> str | None:
        """The id a deferred group will get once hashed, if each of its unhashed streams is a noted one."""
        streams = list(d.streams)
        for i in d.copies:
            key = d.keys.get(i)
            names = self._streams.get(key) if key is not None else None
            if names is None:
                return None
            streams[i] = StreamRecord(streams[i].size, list(names))
        return GroupRecord(names=d.names, streams=streams).id

    def clear(self) -> None:
        self._map.clear()
        self._streams.clear()

    def __len__(self) -> int:
        return len(self._map)


@dataclass
class _DeferredGroup:
    names: list[str]
    streams: list[StreamRecord]  # placeholders at the indexes of ``copies``
    copies: dict[int, PendingStream]  # stream index -> a private copy of its bytes
    keys: dict[int, Fingerprint | None]


# -- identity: which objects make two variables one group -----------------------

_ATOMS = frozenset({str, bytes, int, float, complex, bool, type(None), range, slice, type(Ellipsis)})
_OPAQUE = (type, types.ModuleType, types.BuiltinFunctionType, types.MethodDescriptorType,
           types.WrapperDescriptorType, types.MethodWrapperType, types.CodeType, enum.Enum)


def _is_session_function(obj: types.FunctionType, namespace: Mapping[str, Any]) -> bool:
    # Methods belong to their class (one class object on restore, via cloudpickle's
    # class tracker); only free functions and closures alias on their own.
    qual = obj.__qualname__
    return obj.__globals__ is namespace and ("." not in qual or "<locals>" in qual)


# What shared_ids does with an object, decided once per type (see _walk_kind).
_SKIP, _ITEMS, _MUTABLE_ITEMS, _VALUES, _FUNCTION, _LEAF, _OBJECT = range(7)
_LEAF_MODULES = ("numpy", "pandas", "pyarrow", "scipy")
# A cache this size holds every type of a session many times over; past it (classes redefined
# again and again) it starts afresh rather than keep old classes alive.
WALK_KINDS_LIMIT = 8192


def _walk_kind(t: type) -> int:
    if t in _ATOMS:
        return _SKIP
    if t is tuple or t is frozenset:
        return _ITEMS  # immutable: only what they hold can be shared
    if issubclass(t, (list, set, frozenset, tuple)) or t.__name__ == "deque":
        return _MUTABLE_ITEMS
    if issubclass(t, dict):
        return _VALUES
    if issubclass(t, _OPAQUE):
        return _SKIP
    if t is types.FunctionType:  # cannot be subclassed
        return _FUNCTION
    np = sys.modules.get("numpy")
    if np is not None and (issubclass(t, np.generic) and not issubclass(t, np.void)
                           or issubclass(t, (np.ufunc, type(np.mean)))):
        # numpy's immutable scalars (``np.True_``, a float64) and its functions: as ints and builtins,
        # nothing of the session's state; held by many artists, they made unrelated figures one group
        # (a structured scalar, ``np.void``, can be a view of an array's memory: walked as a leaf)
        return _SKIP
    torch = sys.modules.get("torch")
    if (t.__module__ or "").startswith(_LEAF_MODULES) or (torch is not None and issubclass(t, torch.Tensor)):
        return _LEAF
    return _OBJECT


class _WalkKinds(dict[type, int]):
    """type -> its _walk_kind, decided on first sight (``__missing__``) so that a look-up stays in C.
    Keyed by the type itself: a class redefined in the session is another key."""

    def __missing__(self, t: type) -> int:
        if len(self) >= WALK_KINDS_LIMIT:
            self.clear()
            _slots.clear()
        kind = self[t] = _walk_kind(t)
        if kind == _OBJECT:
            _slot_names(t)
            _library_state.learn(t)
        return kind


_walk_kinds = _WalkKinds()
_slots: dict[type, tuple[str, ...]] = {}


def _slot_names(t: type) -> tuple[str, ...]:
    # learnt with the type's kind; looked up again here because a walk in bulk learns a whole level's
    # types first, and one of them can fill the cache up and start it afresh (_WalkKinds.__missing__)
    names = _slots.get(t)
    if names is None:
        slots = getattr(t, "__slots__", ())
        names = tuple(s for s in ((slots,) if isinstance(slots, str) else slots) if isinstance(s, str))
        if issubclass(t, functools.partial):
            # held in C, outside any ``__dict__`` or slot, yet pickled: ``functools.partial(f, rows)``
            # shares ``rows`` with the variable that names it
            names += ("func", "args", "keywords")
        _slots[t] = names
    return names


class _LibraryState:
    """Objects a library holds in its own state: its modules' globals and its classes' attributes,
    and what those hold a little way down (the values of ``rcParams``; the colormaps of matplotlib's
    registry and their colour lists, which every image's colormap copy shares). Every figure reaches
    some of them (a marker's cached path, ``rcParams``' default lists); they are the library's, not
    the session's, so reaching one does not make two variables one group (every figure of a notebook
    was one group, pickled again whenever any of them changed). Learnt per type, as the walk first
    meets one from a library; held (not only their ids) so that an id is never taken for a new
    object's. Not deeper than ``DEPTH``: pyplot's open figures are three steps below its registry."""

    DEPTH = 2  # steps below a global or class attribute (an instance attribute that is a dict: no step)
    DICT_LIMIT = 4096  # a dict this large is a table, not state worth following
    LIMIT = 1 << 18  # past this many, start afresh (learnt again as types are met)

    def __init__(self) -> None:
        self.objects: dict[int, Any] = {}
        self.dicts: list[dict[Any, Any]] = []  # module globals looked at again before a walk: values get replaced
        self._dict_values: list[tuple[Any, ...]] = []  # each one's values when last held (see refresh)
        self._depth: dict[int, int] = {}  # id -> how far below it was held
        self._classes: set[type] = set()
        self._modules: set[str] = set()

    def learn(self, t: type) -> None:
        if (t.__module__ or "__main__") == "__main__":
            return  # the session's own classes: their attributes are its state
        if len(self.objects) > self.LIMIT:
            self.__init__()  # type: ignore[misc]
        for klass in t.__mro__:
            if klass is object or klass in self._classes:
                continue
            self._classes.add(klass)
            self._hold(list(vars(klass).values()), self.DEPTH)
            module = klass.__module__ or "__main__"
            for name in {module, module.partition(".")[0]} - self._modules - {"__main__", "builtins"}:
                self._modules.add(name)
                module_vars = vars(sys.modules[name]) if name in sys.modules else {}
                for key, d in list(module_vars.items()):
                    if key.startswith("__"):
                        continue  # __builtins__ and the like
                    # a dict of objects (rcParams), not of strings (a table of colour names)
                    if self._hold([d], self.DEPTH) and isinstance(d, dict) and len(d) <= self.DICT_LIMIT and \
                            any(type(v) not in _ATOMS and type(v) is not tuple for v in dict.values(d)) and \
                            all(d is not known for known in self.dicts):
                        self.dicts.append(d)
                        self._dict_values.append(())

    def _hold(self, values: list[Any], depth: int) -> bool:
        """Hold what the walk would follow of ``values`` and, ``depth`` steps down, what they hold;
        whether there was any."""
        held = False
        for v in values:
            t = type(v)
            # not classes, modules or functions: the walk never takes them
            if t in _ATOMS or t is types.FunctionType or isinstance(v, (type, types.ModuleType)):
                continue
            oid = identity(v)
            self.objects[oid] = v
            held = True
            if depth <= 0 or self._depth.get(oid, -1) >= depth:
                continue
            self._depth[oid] = depth
            try:
                if isinstance(v, dict):
                    if len(v) <= self.DICT_LIMIT:
                        self._hold(list(dict.values(v)), depth - 1)  # (in C: not rcParams' validating reads)
                elif isinstance(v, (list, tuple, set, frozenset)):
                    if len(v) <= self.DICT_LIMIT:
                        self._hold(list(v), depth - 1)
                else:
                    state = getattr(v, "__dict__", None)
                    if type(state) is dict and len(state) <= self.DICT_LIMIT:
                        inner = list(state.values())
                        self._hold(inner, depth - 1)
                        for d in inner:  # a registry's table of entries is the registry's own level
                            if type(d) is dict and len(d) <= self.DICT_LIMIT:
                                self._hold(list(d.values()), depth - 1)
            except Exception:  # an odd object (a proxy that fails when asked): held, not followed
                continue
        return held

    def refresh(self) -> None:
        """Hold the values the dicts hold now. Before every walk, ~3 a cell: read in C (``dict.values``, not
        rcParams' ``__getitem__`` per key), and only a dict whose values are not all the ones held last."""
        for i, d in enumerate(self.dicts):
            try:
                values = tuple(dict.values(d))
            except RuntimeError:  # changed while read (another thread): next time
                continue
            last = self._dict_values[i]
            if len(last) == len(values) and all(map(operator.is_, last, values)):
                continue
            self._hold(list(values), 0)
            self._dict_values[i] = values


_library_state = _LibraryState()


def shared_ids(value: Any, namespace: Mapping[str, Any]) -> set[int]:
    """Identities (:func:`txgit.state.identity.identity`, not ``id()``) of the mutable objects a user
    can reach from ``value``.

    Two variables that reach the same one must be pickled together. The walk
    follows what a user sees (items, instance ``__dict__``, closures), not
    pickle internals, so library singletons and reduce-time temporaries never
    glue unrelated variables together. numpy and pandas objects are leaves.
    What to do with an object is decided once per type (a dict look-up in C):
    the walk visits every object of a value, and per-object isinstance chains
    made it cost as much as pickling the value.
    """
    return walk_shared({"": value}, namespace)[""]


def walk_shared(values: Mapping[str, Any], namespace: Mapping[str, Any],
                known: Mapping[str, set[int]] | None = None) -> dict[str, set[int]]:
    """:func:`shared_ids` of several values in one walk: an object another value already reached is
    not walked again (``fig`` and ``ax`` of one figure cost one walk, not two).

    A value's set then holds the objects it reached first, plus those it met that an earlier
    value (or one of ``known``, sets of this kind or whole :func:`shared_ids`, taken with nothing
    run since) had reached: the union of the sets is that of whole walks, and two values share
    an id exactly when their whole walks would, so :func:`sharing_groups` gives the same groups.

    Which objects a value reaches does not depend on the order they are visited in, so a value is
    walked depth first, object by object, until some container holds many (the 13,000 dicts of a
    list of records): such a wide list of objects is walked in bulk, a level at a time, with a few
    passes in C over it (see :meth:`_Walk.bulk`). A deep, narrow graph (a linked list) pays no
    per-level cost.
    """
    out: dict[str, set[int]] = {}
    if not values:
        return out
    # every id in ``claimed`` had what it reaches walked (and claimed) by some value
    walk = _Walk(namespace, set().union(*known.values()) if known else set())
    for name, value in values.items():
        out[name] = walk.value(value)
    return out


# A list of at least this many objects to walk is walked in bulk (see _Walk.bulk); below it, one by one.
BULK_LEVEL = 48
# Levels made of these (and atoms) only are walked in bulk; what gc.get_referents gives for them is
# what the walk follows (items; a dict's values, checked by count).
_PLAIN_TYPES = frozenset({dict, list, set, frozenset, tuple})
_BULK_KINDS = frozenset({_VALUES, _MUTABLE_ITEMS, _ITEMS})


class _Walk:
    """One :func:`walk_shared`: what its values claimed, and the rules for each kind of object."""

    def __init__(self, namespace: Mapping[str, Any], claimed: set[int]) -> None:
        self.namespace = namespace
        self.claimed = claimed
        self.library = _library_state.objects
        self.refreshed = False  # the library's dicts are looked at again once a walk meets a library object
        # a library's object that a variable holds itself (``limits = rcParams["axes.formatter.limits"]``)
        # is that variable's, and groups it with any other that reaches it
        self.named = set(map(identity, namespace.values()))
        np = sys.modules.get("numpy")
        self.ndarray = np.ndarray if np is not None else None  # exactly an array: _leaf's fast path

    def value(self, value: Any) -> set[int]:
        ids: set[int] = set()
        seen: set[int] = set()  # objects without an id of their own (tuples, library functions)
        work = [value]
        while work:
            work = self.bulk(work, ids, seen) if len(work) >= BULK_LEVEL else self.each(work, ids, seen)
        return ids

    def each(self, work: list[Any], ids: set[int], seen: set[int]) -> list[Any]:
        """Walk ``work`` object by object, depth first (a deep chain costs no level after level), until
        all is walked (then ``[]``) or a container has made the list long enough to go on in bulk
        (returned: what is left to walk)."""
        kinds, library, named, claimed, ident = _walk_kinds, self.library, self.named, self.claimed, identity
        stack = work
        pop, extend = stack.pop, stack.extend
        # at least twice what it was given: a level :meth:`bulk` handed over whole (objects with a
        # ``__dict__``) is walked here to its end, not handed back and forth
        wide = max(BULK_LEVEL, 2 * len(stack))
        while stack:
            obj = pop()
            kind = kinds[type(obj)]
            if kind == _SKIP:
                continue
            oid = ident(obj)
            if oid in library and library[oid] is obj and oid not in named:
                continue  # the library's (see _LibraryState)
            if kind == _ITEMS:
                if oid not in seen:
                    seen.add(oid)
                    extend(obj)
                    if len(stack) >= wide:
                        break
                continue
            if oid in claimed:
                ids.add(oid)  # walked from here already
                continue
            if kind == _VALUES:
                claimed.add(oid)
                ids.add(oid)
                extend(obj.values())
                if len(stack) >= wide:
                    break
            elif kind == _MUTABLE_ITEMS:
                claimed.add(oid)
                ids.add(oid)
                extend(obj)
                if len(stack) >= wide:
                    break
            elif kind == _OBJECT:
                if not self.refreshed:
                    _library_state.refresh()
                    self.refreshed = True
                claimed.add(oid)
                ids.add(oid)
                self._object(obj, stack)
            elif kind == _FUNCTION:
                if _is_session_function(obj, self.namespace):
                    claimed.add(oid)
                    ids.add(oid)
                    self._function(obj, stack)
            else:  # _LEAF
                claimed.add(oid)
                ids.add(oid)
                self._leaf(obj, ids, stack)
        return stack

    def bulk(self, level: list[Any], ids: set[int], seen: set[int]) -> list[Any]:
        """The next level below ``level``, kind by kind, each in a few passes in C (map, compress, set
        operations, ``gc.get_referents``) instead of bytecode per object: the atoms, most of a level,
        are only looked at by those passes. Plain containers that are all new (none claimed or the
        library's, none twice) are claimed at once and what they hold taken in one ``gc.get_referents``
        call; anything else goes through :meth:`each`, object by object."""
        types_of = list(map(type, level))
        types = set(types_of)
        types -= _ATOMS
        below: list[Any] = []
        if not types:
            return below
        kinds = _walk_kinds
        if len(types) == 1:  # one type besides atoms (a list of dicts, the lists in those dicts)
            t = types.pop()
            kind = kinds[t]
            if kind == _SKIP:
                return below
            picked = list(itertools.compress(level, map(operator.is_, types_of, itertools.repeat(t))))
            # instances of one class without slots: their ``__dict__`` values taken in bulk too
            plain = t in _PLAIN_TYPES or (kind == _OBJECT and not _slot_names(t))
            return self._claim(kind, plain, picked, ids, seen, below)
        kinds_of = list(map(kinds.__getitem__, types_of))
        # kinds that some other type of this level has too (a dict subclass, a namedtuple): one by one
        present = {kinds[t] for t in types}
        mixed = {kinds[t] for t in types - _PLAIN_TYPES}
        present.discard(_SKIP)
        for kind in sorted(present):
            picked = list(itertools.compress(level, map(operator.eq, kinds_of, itertools.repeat(kind))))
            self._claim(kind, kind not in mixed, picked, ids, seen, below)
        return below

    def _claim(self, kind: int, plain: bool, picked: list[Any], ids: set[int], seen: set[int],
               below: list[Any]) -> list[Any]:
        """Walk ``picked`` (objects of one kind) one step: what they hold is added to ``below``."""
        if not plain or (kind not in _BULK_KINDS and kind != _OBJECT):
            below += self.each(picked, ids, seen)
            return below
        oids = list(map(identity, picked))
        mark = seen if kind == _ITEMS else self.claimed
        if (self.library and not self.library.keys().isdisjoint(oids)) or not mark.isdisjoint(oids):
            below += self.each(picked, ids, seen)
            return below
        before = len(mark)
        mark.update(oids)
        if len(mark) - before != len(oids):  # one object twice in this level: one by one
            mark.difference_update(oids)
            below += self.each(picked, ids, seen)
            return below
        if kind != _ITEMS:
            ids.update(oids)
        if kind == _OBJECT:
            if not self.refreshed:
                _library_state.refresh()
                self.refreshed = True
            states = list(map(getattr, picked, itertools.repeat("__dict__"), itertools.repeat(None)))
            if set(map(type, states)) == {dict}:
                below += itertools.chain.from_iterable(map(dict.values, states))
            else:
                for state in states:
                    if type(state) is dict or isinstance(state, dict):
                        below += state.values()
            return below
        held = gc.get_referents(*picked)
        # a list, set or tuple visits exactly its items and a dict its values, unless its keys are not
        # all strings (it visits those keys too): counted, and if it is not that, asked for them
        if len(held) != sum(map(len, picked)):
            held = itertools.chain.from_iterable(map(dict.values, picked) if kind == _VALUES else picked)
        below += held
        return below

    @staticmethod
    def _object(obj: Any, below: list[Any]) -> None:
        # other torch objects (modules, optimizers) are walked: an optimizer holds its model's
        # parameters, and ``opt.step()`` changes the model
        state = getattr(obj, "__dict__", None)
        if type(state) is dict or isinstance(state, dict):
            below.extend(state.values())
        for slot in _slot_names(type(obj)):
            if hasattr(obj, slot):
                below.append(getattr(obj, slot))

    @staticmethod
    def _function(obj: types.FunctionType, below: list[Any]) -> None:
        below.extend(c.cell_contents for c in (obj.__closure__ or ()) if _cell_full(c))
        below.extend(obj.__defaults__ or ())

    def _leaf(self, obj: Any, ids: set[int], below: list[Any]) -> None:
        if type(obj) is self.ndarray:  # most leaves (a figure's paths and data): no look-up by name
            if obj.dtype.kind == "O":
                below.extend(obj.ravel().tolist())  # object arrays hold user objects
            if obj.base is not None:  # (a view: what it views)
                ids.update(_memory_ids(obj))
            return
        if getattr(obj, "dtype", None) == object and hasattr(obj, "ravel"):  # noqa: E721 (a numpy dtype)
            below.extend(obj.ravel().tolist())
        ids.update(_memory_ids(obj))


def _is_tensor(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def _memory_ids(obj: Any) -> list[int]:
    """Stand-ins for the memory an array or tensor views: a view (``b = a[:5]``) writes its base's
    data, so the two must be committed together."""
    np = sys.modules.get("numpy")
    if np is not None and isinstance(obj, (np.ndarray, np.void)):  # a structured row views its array too
        out = []
        base = obj.base
        while base is not None and type(base) not in _ATOMS:
            out.append(identity(base))
            base = base.base if isinstance(base, np.ndarray) else None
        return out
    if _is_tensor(obj):
        try:
            ptr = obj.untyped_storage().data_ptr()
        except Exception:  # sparse, meta or other tensors without one storage
            return []
        return [address_identity(ptr)] if ptr else []
    return []


def _cell_full(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018 (an empty cell raises)
    except ValueError:
        return False
    return True


class _UnionFind:
    def __init__(self, items: Iterable[str]) -> None:
        self.parent = {i: i for i in items}

    def find(self, x: str) -> str:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def components(self) -> list[list[str]]:
        out: dict[str, list[str]] = {}
        for x in self.parent:
            out.setdefault(self.find(x), []).append(x)
        return [sorted(v) for v in out.values()]


def sharing_groups(names: Iterable[str], shared: Mapping[str, set[int]]) -> list[list[str]]:
    """``names`` in groups of those that reach a common object (``shared``: name -> :func:`shared_ids`
    of its value; a name it lacks shares nothing): the co-variable groups, each sorted."""
    uf = _UnionFind(names)
    owner: dict[int, str] = {}  # id -> a name that reaches it (any one of its group will do)
    # the largest set last, and never copied into ``owner``: nothing after it looks there (a 1 GB
    # state's list of 131,000 records reached 262,000 ids, 50 ms of a 0.8 s first commit to put in
    # ``owner`` for nothing); the groups do not depend on the order the names are taken in
    order = sorted(uf.parent, key=lambda n: len(shared.get(n, ())))
    for i, name in enumerate(order):
        ids = shared.get(name, ())
        # set operations in C: a 1 GB state's 260,000 ids, one by one, were 90 ms
        for other in {owner[oid] for oid in owner.keys() & ids}:
            uf.union(name, other)
        if i < len(order) - 1:
            owner.update(dict.fromkeys(ids, name))
    return uf.components()


# -- serialize ------------------------------------------------------------------

Sink = Callable[[Mapping[str, memoryview]], None]  # WriteAhead.submit
# A sink gets a large stream's chunks this many at a time, as the pool hashes them: the writer starts
# on the first ones while the rest are hashed.
SINK_BATCH = 8


def _chunk_stream(data: memoryview, chunk_size: int, pool: ThreadPoolExecutor | None,
                  sink: Sink | None = None, whole: bool = False) -> tuple[StreamRecord, dict[str, memoryview]]:
    """Cut and hash a stream; ``sink`` gets its chunks SINK_BATCH at a time as they are hashed or,
    ``whole``, all at once when all are."""
    pieces = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)] or [data[0:0]]
    if sink is None or whole or len(pieces) <= SINK_BATCH:
        names = list(pool.map(hash_bytes, pieces)) if pool and len(pieces) > 2 else [hash_bytes(p) for p in pieces]
        chunks = dict(zip(names, pieces))
        if sink is not None:
            sink(chunks)
        return StreamRecord(len(data), names), chunks
    names, chunks, batch = [], {}, {}
    for name, piece in zip(pool.map(hash_bytes, pieces) if pool else map(hash_bytes, pieces), pieces):
        names.append(name)
        chunks[name] = batch[name] = piece
        if len(batch) >= SINK_BATCH:
            sink(batch)
            batch = {}
    if batch:
        sink(batch)
    return StreamRecord(len(data), names), chunks


def _group_record(skeleton: bytes, buffers: list[pickle.PickleBuffer], names: list[str],
                  chunk_size: int, pool: ThreadPoolExecutor | None,
                  cache: StreamCache | None = None, snap: Snapshot | None = None,
                  defer: bool = False, sink: Sink | None = None,
                  restored: Fingerprints | None = None) -> tuple[GroupRecord | _DeferredGroup, dict[str, memoryview]]:
    streams, chunks = [], {}
    copies: dict[int, PendingStream] = {}
    keys: dict[int, Fingerprint | None] = {}
    for index, data in enumerate([memoryview(skeleton)] + [b.raw() for b in buffers]):
        data = data.cast("B") if data.format != "B" else data
        key = None
        if cache is not None and len(data) >= FINGERPRINT_MIN:
            key = (restored.known(data) if restored is not None else None) or fingerprint_stream(data)
        known = cache.get(key) if key is not None else None
        if known is not None and snap is not None:
            streams.append(StreamRecord(len(data), list(known)))
            snap.reused.update(known)
            continue
        if defer and len(data) >= FINGERPRINT_MIN:  # copy now (a memcpy), cut and hash later
            copy = cache.pending.get(key) if cache is not None and key is not None else None
            if copy is None:
                # the skeleton's bytes are immutable and ours: kept as they are. A buffer is the live
                # value's: copied if the copy fits in memory (a 10 GB frame copied on a 16 GB laptop
                # would bring the OOM killer to the kernel), else cut, hashed and stored right now
                owned = index == 0 and type(skeleton) is bytes
                try:
                    copy = PendingStream(data, owned=owned) if owned or copy_fits(len(data)) else None
                except MemoryError:
                    copy = None
                if copy is not None and cache is not None and key is not None:
                    cache.pending[key] = copy
            if copy is not None:
                copies[len(streams)] = copy
                keys[len(streams)] = key
                streams.append(StreamRecord(len(data), []))
                continue
            if sink is None:
                raise MemoryError(f"a buffer of {len(data)} bytes cannot be copied, and nothing can store it now")
            rec, ch = _chunk_stream(data, chunk_size, pool, sink, whole=True)  # stored before the cell goes on
            streams.append(rec)
            if key is not None and snap is not None:
                snap.fingerprints[key] = rec.chunks
            continue  # (its chunks are stored: the views of the live buffer must not be written later)
        # only out-of-band buffers go to the sink: a skeleton may be a restored value's re-serialization,
        # which RestoredGroups drops for the committed one (a restored buffer is known by the cache)
        rec, ch = _chunk_stream(data, chunk_size, pool, sink if index and len(data) > chunk_size else None)
        streams.append(rec)
        chunks.update(ch)
        if key is not None and snap is not None:
            snap.fingerprints[key] = rec.chunks
    if copies:
        return _DeferredGroup(names, streams, copies, keys), chunks
    return GroupRecord(names=names, streams=streams), chunks


def _clip_reason(e: BaseException) -> str:
    text = " ".join(f"{type(e).__name__}: {e}".split())
    return text if len(text) <= 200 else text[:199] + "…"


def library_module_of(name: str, value: Any) -> str | None:
    """The library module whose attribute ``name`` is ``value`` itself (``from sympy import *`` binds
    ``CC``, ``test``; ``from pylab import *`` binds ``rcParams``), else None.

    Such a value is recorded by that name rather than by value: what the variable holds is the
    library's own object, which only the library can make (a copy of sympy's ``CC`` does not load in a
    fresh process, and a copy of ``rcParams`` would not be matplotlib's). Only the top-level package of
    the value's type and the type's own module are asked, through their ``__dict__`` (no lazy import)."""
    if isinstance(value, (type, types.ModuleType)):
        return None  # pickled by reference already
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
        # a library's function (a wrapper cloudpickle would copy: sympy's cacheit) or a method bound to
        # its own object (pylab's `beta` is numpy's global RandomState's)
        owner = getattr(value, "__self__", None)
        module = getattr(value, "__module__", None) or (
            None if owner is None or isinstance(owner, types.ModuleType) else type(owner).__module__)
    else:
        module = getattr(type(value), "__module__", None)
    if not isinstance(module, str):
        return None
    top = module.partition(".")[0]
    if top in ("builtins", "__main__", "") or top.startswith("txgit"):
        return None
    for candidate in (top, module):
        found = getattr(sys.modules.get(candidate), "__dict__", None)
        if isinstance(found, dict) and found.get(name, _ABSENT) is value:
            return candidate
    return None


_ABSENT = object()


class _LibraryObject:
    """Pickles as ``getattr(import_module(module), name)``: see :func:`library_module_of`."""

    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __reduce__(self) -> tuple[Any, ...]:
        return library_object, (self.module, self.name)


def library_object(module: str, name: str) -> Any:
    """The object a library module holds under ``name`` (what a stored :class:`_LibraryObject` loads as)."""
    return getattr(importlib.import_module(module), name)


def _pickle_groups(members: list[str], namespace: Mapping[str, Any], variables: dict[str, VarRecord],
                   described: Mapping[str, tuple[str, dict | None]], by_name: Mapping[str, str] | None = None,
                   ) -> list[tuple[list[str], bytes, list[pickle.PickleBuffer]]]:
    """Pickle ``members`` as one stream (a lone variable as itself, sharers as a dict of them).

    Unpicklable values are recorded in ``variables`` with the reason, never fatal: a group that
    fails is pickled member by member to find which, and the others go on together (or, should
    only their union fail, each alone). Returns (members, skeleton, buffers) per stream made."""
    def dump(names: list[str]) -> tuple[list[str], bytes, list[pickle.PickleBuffer]]:
        if len(names) == 1 and by_name and names[0] in by_name:
            return (names, *pickling.dumps(_LibraryObject(by_name[names[0]], names[0]), None))
        value = namespace[names[0]] if len(names) == 1 else {n: namespace[n] for n in names}
        return (names, *pickling.dumps(value, namespace))

    try:
        return [dump(members)]
    except Exception as e:
        if len(members) == 1:
            variables[members[0]] = VarRecord(UNPICKLABLE, type_name(namespace[members[0]]),
                                              described[members[0]][0], reason=_clip_reason(e))
            return []
    alone = [g for n in members for g in _pickle_groups([n], namespace, variables, described, by_name)]
    if len(alone) in (0, 1) or len(alone) == len(members):
        return alone  # nothing left to join, or nothing was wrong with any one of them
    try:
        return [dump([g[0][0] for g in alone])]
    except Exception:
        return alone


def snapshot(namespace: Mapping[str, Any], names: Iterable[str] | None = None, *,
             chunk_size: int = CHUNK_SIZE, cache: StreamCache | None = None, defer: bool = False,
             known_shared: Mapping[str, set[int]] | None = None, sink: Sink | None = None,
             restored: Fingerprints | None = None) -> Snapshot:
    """Serialize ``names`` (default: every variable) of ``namespace``.

    Returns records and the chunk bytes; nothing is written anywhere. With a
    ``cache``, streams it knows are not cut or hashed again: their chunk names
    land in ``Snapshot.reused`` and the caller must make sure those exist.
    ``defer``: large new streams are only copied; their groups wait in
    ``Snapshot.deferred`` (no group id yet) until :meth:`Snapshot.resolve`,
    which may run in another thread while the namespace changes.
    ``known_shared``: :func:`shared_ids` of some names, walked by the caller just
    before (nothing ran in between): not walked again.
    ``sink``: called with the chunks of each out-of-band buffer larger than one chunk as soon as they
    are hashed (a store's :class:`~txgit.storage.WriteAhead`); they are in ``Snapshot.chunks`` too.
    ``restored``: what :func:`restore` just fingerprinted; those buffers are not fingerprinted again.
    """
    # interned, as the namespace's own keys are: a group's pickle holds its names, and the unpickler interns
    # attribute names (``cb.ax``), so a name given as another string object (read from a commit's records)
    # would pickle to other bytes (an ``ax`` memoized apart from the attribute's) for the same values
    wanted = sorted(sys.intern(n) for n in (namespace if names is None else names)
                    if n in namespace and is_variable_name(n))
    variables: dict[str, VarRecord] = {}
    described: dict[str, tuple[str, dict | None]] = {}
    shared: dict[str, set[int]] = {}
    by_name: dict[str, str] = {}  # name -> the library module whose own object it holds

    # Which variables share objects is known from the walk alone: each group is pickled once, the
    # sharers together (a figure and its axes were pickled alone, to size them, and then again together).
    for name in wanted:
        value = namespace[name]
        summary, details = describe(value)
        if isinstance(value, types.ModuleType):
            variables[name] = VarRecord(MODULE, "module", summary, module=value.__name__)
            continue
        if value is namespace:
            variables[name] = VarRecord(NAMESPACE, type_name(value), "the namespace itself")
            continue
        described[name] = (summary, details)
        library = library_module_of(name, value)
        if library is not None:  # recorded by its name: shares nothing with the session's values
            by_name[name] = library
            shared[name] = set()
            continue
        if known_shared is not None and name in known_shared:
            shared[name] = known_shared[name]
    # the others in one walk, which does not walk again what the known ones reached
    shared.update(walk_shared({n: namespace[n] for n in described if n not in shared}, namespace, shared))

    snap = Snapshot(variables, {}, {}, shared=shared)
    pool = shared_pool()
    streams = [s for members in sharing_groups(described, shared)
               for s in _pickle_groups(members, namespace, variables, described, by_name)]
    for members, skeleton, buffers in streams:
        size = len(skeleton) + sum(b.raw().nbytes for b in buffers)
        for n in members:  # a member's size is its group's: what loading it reads
            summary, details = described[n]
            variables[n] = VarRecord(VALUE, type_name(namespace[n]), summary, size=size, details=details)
        record, ch = _group_record(skeleton, buffers, members, chunk_size, pool, cache, snap, defer, sink, restored)
        if isinstance(record, _DeferredGroup):
            snap.chunks.update(ch)
            snap.deferred.append(record)
            continue
        gid = record.id
        snap.groups[gid] = record
        snap.chunks.update(ch)
        for n in members:
            variables[n].group = gid
    return snap


# -- restore --------------------------------------------------------------------

def _assemble(stream: StreamRecord, blobs: Mapping[str, bytes]) -> bytearray:
    total = sum(len(blobs[name]) for name in stream.chunks)
    if total != stream.size:  # checked before allocating: a damaged record may claim any size
        raise RestoreError(f"stream of {stream.size} bytes rebuilt to {total}: the group record is damaged")
    out = bytearray(stream.size)  # writable: arrays restored on it can be mutated
    pos = 0
    for name in stream.chunks:
        data = blobs[name]
        out[pos : pos + len(data)] = data
        pos += len(data)
    if pos != stream.size:
        raise RestoreError(f"stream of {stream.size} bytes rebuilt to {pos}: the group record is damaged")
    return out


def restore_group(record: GroupRecord, blobs: Mapping[str, bytes], namespace: dict[str, Any] | None,
                  fingerprints: dict[Fingerprint, list[str]] | None = None,
                  joined: list[Any] | None = None,
                  pieces: list[list[tuple[int, bytes]] | None] | None = None) -> dict[str, Any]:
    """Rebuild a group's variables from its (already verified) chunks.

    Session functions in it get ``namespace`` as their globals. ``fingerprints``
    collects the fingerprints of the large buffers rebuilt (for a StreamCache):
    the restored arrays then need no blake3 pass when they are committed again.
    ``joined``: the group's streams already assembled (see :func:`restore`'s ``join``);
    ``blobs`` is not read then. ``pieces``: per stream, the (length, xxh3) of its chunks as the
    join read them, or None: the fingerprints are made from them instead of reading the buffers again.
    """
    if joined is None:
        joined = [_assemble(s, blobs) for s in record.streams]
    skeleton, buffers = joined[0], joined[1:]
    if fingerprints is not None:
        for i, (stream, buf) in enumerate(zip(record.streams[1:], buffers), 1):
            if len(buf) >= FINGERPRINT_MIN:
                known = pieces[i] if pieces is not None and i < len(pieces) else None
                key = (fingerprint_of_pieces(len(buf), known) if known else None) or fingerprint_stream(memoryview(buf))
                if isinstance(fingerprints, Fingerprints):
                    fingerprints.add(buf, key, list(stream.chunks))
                else:
                    fingerprints[key] = list(stream.chunks)
    try:
        value = pickling.loads(skeleton, buffers, namespace)
    except safe.UnsafeObject:
        raise  # already one line naming the refused class
    except ModuleNotFoundError as e:
        raise RestoreError(f"cannot restore {', '.join(record.names)}: module {e.name!r} is not installed here",
                           reason=f"module {e.name!r} is not installed here") from e
    except Exception as e:
        raise RestoreError(f"cannot restore {', '.join(record.names)}: {_clip_reason(e)}",
                           reason=_clip_reason(e)) from e
    if len(record.names) == 1:
        return {record.names[0]: value}
    return dict(value)


def import_module_for(name: str, record: VarRecord) -> types.ModuleType:
    safe.check_module(record.module or "")
    try:
        return importlib.import_module(record.module or "")
    except ImportError as e:
        raise RestoreError(f"cannot restore {name}: module {record.module!r} is not installed here",
                           reason=f"module {record.module!r} is not installed here") from e


Join = Callable[..., list[Any]]  # ObjectStore.read_joined


def _join_streams(need: list[str], groups: Mapping[str, GroupRecord], join: Join,
                  pieces: dict[str, list[Any]] | None = None) -> dict[str, list[Any]]:
    """Every stream of the groups ``need`` assembled by ``join`` (group id -> its streams' buffers).
    ``pieces``: gets group id -> per stream, the (length, xxh3) of its chunks or None."""
    streams = [s for gid in need for s in groups[gid].streams]
    if pieces is not None:
        digests: list[Any] = []
        buffers = join([s.chunks for s in streams], [s.size for s in streams],
                       digest=xxhash.xxh3_128_digest, digests=digests)
        it_pieces = iter(digests)
        for gid in need:
            pieces[gid] = [next(it_pieces, None) for _ in groups[gid].streams]
    else:
        buffers = join([s.chunks for s in streams], [s.size for s in streams])
    out: dict[str, list[Any]] = {}
    it = iter(zip(streams, buffers))
    for gid in need:
        mine = out[gid] = []
        for _ in groups[gid].streams:
            stream, buf = next(it)
            if buf is None:  # its chunks are sound (join verified them) but add up to another size
                raise RestoreError(f"stream of {stream.size} bytes does not match its chunks' sizes:"
                                   " the group record is damaged")
            mine.append(buf)
    return out


def _restored_from(records: Mapping[str, VarRecord], name: str, gid: str) -> bool:
    record = records.get(name)
    return record is not None and record.group == gid


def restore(records: Mapping[str, VarRecord], groups: Mapping[str, GroupRecord],
            fetch: Callable[[list[str]], Mapping[str, bytes]], namespace: dict[str, Any],
            fingerprints: dict[Fingerprint, list[str]] | None = None,
            failed: dict[str, str] | None = None, *, join: Join | None = None) -> dict[str, Any]:
    """Rebuild the named variables (values, modules) as a dict; unpicklable ones are left out.

    ``fingerprints``: see :func:`restore_group`. ``failed``: where a group that cannot be
    rebuilt here (its pickle fails to load, a module it needs is missing) is noted, name -> why,
    and the others go on; without it the first such group raises :class:`RestoreError`. A damaged
    commit, missing bytes and a refused (untrusted) class always raise.
    ``join``: a blob reader's ``read_joined``, used instead of ``fetch``: each stream is read
    straight into its final buffer (every chunk still verified before anything is unpickled)."""
    out: dict[str, Any] = {}
    need = sorted({r.group for r in records.values() if r.kind == VALUE and r.group})
    if need:
        lost = [gid for gid in need if gid not in groups]
        if lost:
            raise RestoreError(f"the state names group {lost[0][:12]} but does not hold it: the commit is damaged")
        pieces: dict[str, list[Any]] = {}
        if join is not None:
            blobs: Mapping[str, bytes] = {}
            joined = _join_streams(need, groups, join, pieces if fingerprints is not None else None)
        else:
            blobs = fetch(sorted({c for gid in need for c in groups[gid].chunk_names()}))
            joined = {}
        for gid in need:
            try:
                values = restore_group(groups[gid], blobs, namespace, fingerprints, joined.pop(gid, None),
                                       pieces.pop(gid, None))
            except RestoreError as e:
                if failed is None:
                    raise
                failed.update({n: e.reason for n in groups[gid].names if _restored_from(records, n, gid)})
                continue
            # only the names whose records name this group: one it lists may have been bound to another
            # value since it was serialized (storage format 3), whose own group restores it
            out.update({k: v for k, v in values.items() if _restored_from(records, k, gid)})
    for name, rec in records.items():
        if rec.kind == MODULE:
            try:
                out[name] = import_module_for(name, rec)
            except RestoreError as e:
                if failed is None:
                    raise
                failed[name] = e.reason
        elif rec.kind == NAMESPACE:
            out[name] = namespace
    return out
