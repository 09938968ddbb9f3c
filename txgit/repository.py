"""The engine of a workspace: its history, its object store and its writer lock, and what they do.

A workspace is a folder with ``.txgit/`` in it. ``.txgit/repo.git`` is a bare git
repository holding the history of states; ``.txgit/objects/`` is the local
content-addressed cache of their bytes; ``.txgit/lock`` is the writer lock.

:class:`Repository` holds those and does what needs nothing else: commit
(serialize, store, write the git commit), read states, compare a namespace
with one, make a namespace equal one (the checkout core), and move refs.

It knows nothing of the features that stand on it (remotes, trust, the storage
budget, fsck/gc, merge orchestration: :mod:`txgit.remote`, :mod:`txgit.trust`,
:mod:`txgit.budget`, :mod:`txgit.integrity`, :mod:`txgit.merging`), so that
they can import it without a loop. The facade, :class:`txgit.workspace.Workspace`,
subclasses it and wires them in: it puts the remotes' stores behind the blob
reader and overrides the two hooks the engine calls (:meth:`Repository._after_write`,
:meth:`Repository._after_unlock`). Layering: see ``tests/test_layers.py``.
"""

from __future__ import annotations

import fcntl
import functools
import os
import platform
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import pygit2

from txgit import environment
from txgit._version import __version__
from txgit.errors import (
    DirtyNamespace,
    EmptyHistory,
    MissingBlob,
    NotAWorkspace,
    TxgitError,
    UnknownVariable,
    WorkspaceExists,
)
from txgit.gitwriter import GitWriter
from txgit.history import FORMAT_KEY, CommitInfo, History, RevRange, State, format_needed
from txgit.packs import PACK_DIR, write_atomic
from txgit.state import (
    GroupRecord,
    MODULE,
    NAMESPACE,
    UNPICKLABLE,
    VALUE,
    Fingerprints,
    RestoredGroups,
    Snapshot,
    StreamCache,
    VarRecord,
    is_variable_name,
    restore,
    snapshot,
)
from txgit.state.snapshot import Sink
from txgit.state.summary import type_name
from txgit.storage import ObjectStore, StoreChain, WriteAhead

TXGIT_DIR = ".txgit"


@dataclass
class CommitResult:
    """What a commit did: the new commit, and what it cost."""

    info: CommitInfo
    variables: int
    serialized_names: list[str]
    bytes_state: int
    bytes_written: int
    blobs_written: int
    skipped: dict[str, str]  # unpicklable name -> reason
    seconds: float
    # ids of the mutable objects each serialized variable reaches (sessions keep them for alias checks)
    shared: dict[str, set[int]] = field(default_factory=dict, repr=False)


@dataclass
class PreparedCommit:
    """A commit serialized but not yet written (see :meth:`Workspace.prepare_commit`)."""

    snap: Snapshot
    head: State | None
    kept: dict[str, VarRecord]
    redo: set[str]
    message: str
    files: dict[str, bytes]
    meta: dict[str, Any]
    serialize_seconds: float
    # built on a commit still being written (prepare_commit(base=...)): finish_commit reads HEAD again
    chained: bool = False
    # the names of each group of ``snap`` still being cut and hashed, taken when it was prepared: a
    # chained commit must redo whole groups, and these have no group id to find their members by yet
    deferred_members: list[list[str]] = field(default_factory=list)
    ref: str | None = "HEAD"  # the ref the commit moves (None: none; the caller keeps its id)
    parent: str | None = None  # the commit it is built on (a chained commit: read when it is written)
    merged: list[str] = field(default_factory=list)  # further parents: a merge commit

    def state(self) -> State:
        """The state this commit will record, before it is written: what a chained commit builds on.

        Records of deferred groups get their group ids in place when the commit is written."""
        variables = dict(self.kept)
        variables.update(self.snap.variables)
        groups = {r.group: self.head.groups[r.group] for r in self.kept.values()
                  if r.group and self.head is not None and r.group in self.head.groups}
        groups.update(self.snap.groups)
        return State(variables, groups, {})

    def own_chunks(self) -> int:
        """Copy the chunk bytes still borrowed from live (mutable) objects; returns bytes copied.

        After this the namespace may change freely while the commit is written.
        """
        copied = 0
        for name, data in self.snap.chunks.items():
            if not isinstance(data.obj, bytes):  # slices of a pickle's bytes are immutable already
                self.snap.chunks[name] = memoryview(bytes(data))
                copied += len(data)
        return copied


class WorkspaceLock:
    """The workspace's writer lock, held until :meth:`release` (from any thread)."""

    def __init__(self, workspace: Repository, *, clear_stale: bool = True, wait: bool = True) -> None:
        """``clear_stale=False``: the holder calls ``history.clear_stale_locks()`` itself before it
        writes to git (a session's background writer does, off the cell's critical path).
        ``wait=False``: raise :class:`BlockingIOError` if anyone holds it (this process too, elsewhere)."""
        self._workspace = workspace
        self._file = open(workspace.dir / "lock", "a")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            if clear_stale:
                workspace.history.clear_stale_locks()
        except BaseException:
            self._file.close()
            raise

    def release(self) -> None:
        if not self._file.closed:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._workspace._after_unlock()


@dataclass
class StatusReport:
    """A live namespace compared with HEAD."""

    branch: str | None
    head: str | None
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    unloaded: list[str] = field(default_factory=list)  # a session's, never loaded: kept as they are, not removed

    @property
    def clean(self) -> bool:
        return not (self.added or self.removed or self.modified)

    def changed_names(self) -> list[str]:
        return sorted(self.added + self.removed + self.modified)


@dataclass
class CheckoutResult:
    """What a checkout did to HEAD and, if given one, to the namespace."""

    info: CommitInfo
    branch: str | None  # None: detached HEAD
    loaded: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    not_restored: dict[str, str] = field(default_factory=dict)  # name -> why
    recomputed: list[str] = field(default_factory=list)  # unpicklable, made again by their code (sessions)
    drift: list[str] = field(default_factory=list)  # Python/package versions that differ from the recording
    bytes_read: int = 0
    blobs_read: int = 0
    left_behind: int = 0  # commits of the detached HEAD left that no branch or tag holds
    left_from: str | None = None  # that detached commit
    upstream: tuple[str, str] | None = None  # (remote, branch) the new branch tracks (`checkout -b NEW origin/X`)


@dataclass
class StateDiff:
    """Variables added, removed and changed between two states."""

    a: str
    b: str
    added: dict[str, VarRecord] = field(default_factory=dict)
    removed: dict[str, VarRecord] = field(default_factory=dict)
    changed: dict[str, tuple[VarRecord, VarRecord]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


@functools.lru_cache(maxsize=1)
def _platform() -> str:
    return platform.platform()  # slow (reads the interpreter binary): once per process


def state_meta(variables: Mapping[str, VarRecord], groups: Mapping[str, GroupRecord],
                extra: Mapping[str, Any]) -> dict[str, Any]:
    """``meta.json`` of a state: versions of what made it, what could not be saved, and ``extra``
    (a merge commit's too: :mod:`txgit.merging`)."""
    needed = format_needed(variables, groups)
    doc: dict[str, Any] = {
        "txgit": __version__,
        FORMAT_KEY: needed,
        "python": platform.python_version(),
        "platform": _platform(),
        "packages": _package_versions(variables),
        "skipped": {n: r.reason or "" for n, r in variables.items() if r.kind == UNPICKLABLE},
        "bytes": {"state": sum(g.nbytes for g in groups.values())},
    }
    doc.update(extra)
    doc[FORMAT_KEY] = needed  # what the records need is not the caller's to say
    return doc


def _package_versions(records: Mapping[str, VarRecord]) -> dict[str, str]:
    """Versions of the top-level packages the state's types and modules come from."""
    tops = {r.module.split(".")[0] for r in records.values() if r.kind == MODULE and r.module}
    tops |= {r.type.split(".")[0] for r in records.values() if "." in r.type}
    return environment.package_versions(tops)


def _replaced_by(target: Mapping[str, VarRecord], base: Mapping[str, VarRecord], present: Collection[str]) -> set[str]:
    """The names of ``present`` (a namespace's, equal to ``base``'s records) whose values a checkout of
    ``target``'s records loads over or deletes: the values it would drop if they changed since ``base``."""
    out = set()
    for n in present:
        old, new = base.get(n), target.get(n)
        if old is None:
            continue
        if new is None or new.kind == NAMESPACE or (new.kind in (VALUE, MODULE) and not new.same_content(old)):
            out.add(n)
    # a group is loaded whole (see _checkout_namespace): its members the namespace holds are replaced too
    loading = {r.group for n, r in target.items() if r.kind == VALUE and (n not in present or n in out)}
    out |= {n for n in present if n in base and (r := target.get(n)) is not None and r.kind == VALUE
            and r.group in loading}
    return out


def _co_members(records: Mapping[str, VarRecord], deferred: list[list[str]], names: set[str]) -> set[str]:
    """The names in one group with any of ``names`` in ``records`` (a state's). ``deferred``: groups of a
    commit still being written, whose records get their group ids from the writer's thread (read here,
    they may or may not have one). Every record is read only when one of ``names`` has a group (not for
    each commit of a session with ~950 names)."""
    pending = {n for members in deferred for n in members}
    out = {n for members in deferred if not names.isdisjoint(members) for n in members}
    groups = {r.group for r in (records.get(n) for n in names if n not in pending) if r is not None and r.group}
    if groups:
        out |= {n for n, r in records.items() if r.group in groups and n not in pending}
    return out


def _ignore_in_git(txgit_dir: Path) -> None:
    """Keep ``.txgit/`` out of the user's own git repository, should the workspace be (or become) part of a
    git work tree: a ``.gitignore`` inside it ignoring everything, itself included (an existing one is kept)."""
    ignore = txgit_dir / ".gitignore"
    if not ignore.exists():  # whole or absent (a full disk must not leave an empty one, kept from then on)
        write_atomic(str(ignore), b"# txgit's workspace: git ignores it (its history is a git repository of its own)\n*\n")


def _variable_names(namespace: Mapping[str, Any]) -> set[str]:
    return {n for n in namespace if is_variable_name(n)}


LOOSE_BLOB_LIMIT = 512  # estimated loose blobs that make a commit pack them (~170 cell commits of ~3 blobs)
LOOSE_CHECK_EVERY = 16  # commits between two estimates (each lists 16 small fan-out folders)


class Repository:
    """A folder under txgit: history (git) + object cache + writer lock; the engine under
    :class:`txgit.workspace.Workspace`, which adds remotes, trust, the budget, fsck/gc and merges."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.dir = self.root / TXGIT_DIR
        if not (self.dir / "repo.git").is_dir():
            raise NotAWorkspace(f"not a txgit workspace: {self.root} (run `txgit init`)")
        self.history = History(self.dir / "repo.git")
        self.store = ObjectStore(str(self.dir / "objects"))
        # what every load reads blobs through: the local cache alone here; the facade puts the remotes'
        # stores behind it (the engine cannot: remotes stand on the engine)
        self.blobs: StoreChain = StoreChain(self.store)
        # streams this workspace stored, by fast fingerprint: unchanged bytes are not hashed again
        self.stream_cache = StreamCache()
        # what values restored into a namespace pickle to: a value only read is not a change
        self.restored_groups = RestoredGroups()
        # small loose blobs are packed now and then after a commit (see _pack_loose_now_and_then)
        self.auto_pack_blobs = True
        self._until_loose_check = LOOSE_CHECK_EVERY

    # -- lifecycle ---------------------------------------------------------------
    @classmethod
    def init(cls, path: str | os.PathLike[str] = ".") -> Self:
        """A new, empty workspace in ``path`` (made if missing). One there already raises
        :class:`WorkspaceExists`: :meth:`open_or_init` is for code that runs more than once."""
        root = Path(path).resolve()
        if (root / TXGIT_DIR / "repo.git").exists():
            raise WorkspaceExists(f"already a txgit workspace: {root} (Workspace.open_or_init opens it)")
        root.mkdir(parents=True, exist_ok=True)
        # the packs' folder too, as git init makes objects/pack: not a first commit's (a folder costs as
        # much as a file to create, 0.2 ms on some file systems: bench_core's 'created')
        (root / TXGIT_DIR / "objects" / PACK_DIR).mkdir(parents=True, exist_ok=True)
        _ignore_in_git(root / TXGIT_DIR)
        try:
            History.init(root / TXGIT_DIR / "repo.git")
        except WorkspaceExists:  # another process made it meanwhile
            raise WorkspaceExists(f"already a txgit workspace: {root} (Workspace.open_or_init opens it)") from None
        return cls(root)

    @classmethod
    def open_or_init(cls, path: str | os.PathLike[str] = ".") -> Self:
        """The workspace in ``path`` itself, made if it has none (a notebook cell or script run twice).
        Unlike :meth:`open` it does not look in parent folders: ``path`` is where the workspace is."""
        root = Path(path).resolve()
        if not (root / TXGIT_DIR / "repo.git").exists():
            try:
                return cls.init(root)
            except WorkspaceExists:  # another process made it meanwhile
                pass
        _ignore_in_git(root / TXGIT_DIR)  # (a workspace made before txgit wrote one gets it)
        return cls(root)

    @classmethod
    def open(cls, path: str | os.PathLike[str] = ".") -> Self:
        """The workspace at ``path`` or the nearest parent folder that has one."""
        start = Path(path).resolve()
        for folder in (start, *start.parents):
            if (folder / TXGIT_DIR / "repo.git").is_dir():
                return cls(folder)
        raise NotAWorkspace(f"not a txgit workspace (or any parent folder): {start}")

    @contextmanager
    def lock(self) -> Iterator[None]:
        """One writer at a time in this workspace; the OS drops the lock if we are killed.

        Every write (commit, checkout, refs, gc) runs under it, so git ``*.lock``
        files found once it is held were left by a killed writer: they are removed.
        """
        held = WorkspaceLock(self)
        try:
            yield
        finally:
            held.release()

    def hold_lock(self, *, clear_stale: bool = True) -> WorkspaceLock:
        """Take the writer lock and return it: a session hands it to its background writer
        (``clear_stale``: see :class:`WorkspaceLock`)."""
        return WorkspaceLock(self, clear_stale=clear_stale)

    def try_lock(self) -> WorkspaceLock | None:
        """The writer lock if nobody holds it now, else None (never waits: a caller that may hold it
        already, through another call, gets None rather than waiting on itself)."""
        try:
            return WorkspaceLock(self, wait=False)
        except BlockingIOError:
            return None

    def settle(self) -> None:
        """Wait until no writer (a kernel's background commit, another process) holds the lock.

        A kernel writes each cell's commit in a background thread, holding
        the lock from the moment the cell's state is serialized until the
        commit is written: after this returns, that commit is in history.
        """
        with open(self.dir / "lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_SH)
            fcntl.flock(f, fcntl.LOCK_UN)

    # -- hooks -----------------------------------------------------------------------
    def _store_now(self, chunks: Mapping[str, memoryview]) -> None:
        """The sink of a background commit's snapshot: a buffer too large to copy is stored at once."""
        self.store.put_named(chunks, check=False)

    def _pack_loose_now_and_then(self) -> None:
        """Every LOOSE_CHECK_EVERY commits, estimate the loose blobs; past LOOSE_BLOB_LIMIT, pack them.
        A cell commit writes a few small blobs, each a file of its own: without this, 10,000 cells
        left 30,000 files of a few hundred bytes. Runs under the commit's lock (in a kernel, on its
        background writer: no cell waits): 540 blobs took 50 ms on a loaded 2-core machine, once
        per ~170 cell commits."""
        if not self.auto_pack_blobs:
            return
        self._until_loose_check -= 1
        if self._until_loose_check > 0:
            return
        self._until_loose_check = LOOSE_CHECK_EVERY
        try:
            if self.store.estimate_loose() >= LOOSE_BLOB_LIMIT:
                self.store.pack_loose()
        except (OSError, TxgitError):  # upkeep only: the commit stands, and gc packs them
            pass

    # The two moments a feature must act inside the engine's own operations (the storage budget:
    # see txgit.workspace). Overridden by the facade rather than imported here, so that the features
    # can stand on the engine without an import loop. They do nothing in a bare engine.
    def _after_write(self, nbytes: int) -> None:
        """A commit stored ``nbytes`` of new blobs; called under the writer lock."""

    def _after_unlock(self) -> None:
        """The writer lock was just released (from whichever thread held it): a cheap moment for upkeep."""

    # -- HEAD ----------------------------------------------------------------------
    @property
    def branch(self) -> str | None:
        """The current branch; None when HEAD is detached."""
        return self.history.current_branch()

    def head(self) -> CommitInfo | None:
        commit = self.history.head_commit()
        return None if commit is None else self.history.info(commit, self.history.refs_by_commit())

    def resolve(self, rev: str = "HEAD") -> CommitInfo:
        return self.history.info(self.history.resolve(rev), self.history.refs_by_commit())

    def state(self, rev: str = "HEAD") -> State:
        """The records of a commit's state (no bytes are read)."""
        return self.history.read_state(self.history.resolve(rev))

    # -- commit ----------------------------------------------------------------------
    def commit(
        self,
        namespace: Mapping[str, Any],
        message: str = "",
        *,
        names: set[str] | list[str] | None = None,
        files: Mapping[str, bytes] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> CommitResult:
        """Commit the variables of ``namespace`` on top of HEAD.

        ``names``: a hint from a session that knows which names may have changed
        since HEAD (read or written, including deleted ones). Only those, and
        the co-variables grouped with them at HEAD, are serialized again; every
        other record is carried over from HEAD. Without it everything is
        serialized (unchanged data is still never written twice).
        ``files``: extra files for the tree (``code/…``); ``meta``: extra meta.
        """
        with self.lock():
            # large chunks are written while the next ones are pickled and hashed (see WriteAhead)
            ahead = self.store.write_ahead()
            try:
                prepared = self.prepare_commit(namespace, message, names=names, files=files, meta=meta,
                                               sink=ahead.submit if ahead is not None else None)
            except BaseException:
                if ahead is not None:
                    ahead.wait()  # nothing may write on once the lock is released
                raise
            return self.finish_commit(prepared, ahead=ahead)

    def prepare_commit(
        self,
        namespace: Mapping[str, Any],
        message: str = "",
        *,
        names: set[str] | list[str] | None = None,
        files: Mapping[str, bytes] | None = None,
        meta: Mapping[str, Any] | None = None,
        defer: bool = False,
        base: PreparedCommit | None = None,
        known_shared: Mapping[str, set[int]] | None = None,
        ref: str | None = "HEAD",
        parent: str | None = "HEAD",
        head_state: State | None = None,
        merged: Iterable[str] = (),
        sink: Sink | None = None,
        variables: set[str] | None = None,
        detached: Collection[str] = (),
    ) -> PreparedCommit:
        """The first half of :meth:`commit`: serialize what changed; nothing is written (but what ``sink`` writes).

        The caller holds the lock (:meth:`hold_lock`) until :meth:`finish_commit`
        has run, so that the ref cannot move in between. ``defer``: large new
        streams are copied, and cut and hashed by :meth:`finish_commit`.
        ``base``: a prepared commit not yet written, to build on instead of
        HEAD; it must be finished first, by the same lock holder.
        ``known_shared``: see :func:`txgit.state.snapshot.snapshot`.
        ``ref``: the ref to move (HEAD, or a session's branch); ``parent``: the commit to build on
        ("HEAD": what ``ref`` names now; None: none). ``head_state``: the records unchanged names
        are carried over from, when not the parent's (a merge: the merged records); ``merged``:
        further parents. ``sink``: gets large chunks as soon as they are hashed (a store's
        :class:`~txgit.storage.WriteAhead`; pass it to :meth:`finish_commit` too). ``variables``: the
        namespace's variable names, if the caller has them (a session's hook). ``detached``: names of
        ``names`` bound to new values by code that could not reach their old ones (a session's tracking
        says which): what shared objects with an old value did not change with it, and keeps its record
        (its group then lists the name, now another group's: storage format 3).
        """
        started = time.perf_counter()
        if base is not None:
            parent_id, head = None, base.state()
        else:
            tip = self.history.tip(ref) if parent == "HEAD" else (None if parent is None else self.history.resolve(parent))
            parent_id = None if tip is None else str(tip.id)
            head = head_state if head_state is not None else (None if tip is None else self.history.read_state(tip))
        live = _variable_names(namespace) if variables is None else variables
        if names is None or head is None:
            redo = live
            kept: dict[str, VarRecord] = {}
        else:
            redo = {n for n in names if n in live} | (live - set(head.variables))
            redo |= _co_members(head.variables, base.deferred_members if base is not None else [],
                                redo.difference(detached)) & live
            kept = {n: r for n, r in head.variables.items() if n in live and n not in redo and n not in names}
        # groups still being hashed for the commit this one builds on, carried over whole: the next
        # chained commit must still find their members
        carried = [k for k in ([n for n in m if n in kept] for m in (base.deferred_members if base else [])) if k]
        if defer and sink is None:
            # a buffer too large to copy for the background writer is stored now, before the cell goes on
            sink = self._store_now
        snap = snapshot(namespace, sorted(redo), cache=self.stream_cache, defer=defer, known_shared=known_shared,
                        sink=sink)
        # (deferred groups too: their streams' fingerprints may be those of a restored value's re-serialization)
        self.restored_groups.apply(snap)
        if snap.reused and self.store.missing(snap.reused):  # the store lost chunks (gc, by hand)
            self.stream_cache.clear()
            self.restored_groups.clear()
            snap = snapshot(namespace, sorted(redo), defer=defer, known_shared=known_shared, sink=sink)
        return PreparedCommit(snap, head, kept, redo, message, dict(files or {}), dict(meta or {}),
                              time.perf_counter() - started, chained=base is not None,
                              deferred_members=[list(d.names) for d in snap.deferred] + carried,
                              ref=ref, parent=parent_id, merged=list(merged))

    def finish_commit(self, prepared: PreparedCommit, *, git_writer: GitWriter | None = None,
                      ahead: WriteAhead | None = None) -> CommitResult:
        """The second half of :meth:`commit`: store the chunks, write the git commit, move HEAD.
        ``git_writer``: a helper process that writes the git objects (a kernel's background writer).
        ``ahead``: the writer that :meth:`prepare_commit`'s ``sink`` fed; waited for before the ref moves."""
        snap, head, kept, redo = prepared.snap, prepared.head, prepared.kept, prepared.redo
        parent = prepared.parent
        started = time.perf_counter()
        if prepared.chained:  # its base is written now: what it carries over is read from there
            tip = self.history.tip(prepared.ref)
            assert tip is not None
            parent, head = str(tip.id), self.history.read_state(tip)
            kept = {n: head.variables[n] for n in kept}
        if snap.deferred:
            snap.resolve()
            if self.restored_groups.apply(snap) and self.store.missing(snap.reused):
                self.restored_groups.clear()
                raise MissingBlob("chunks of a restored value are missing from the object store; "
                                 "the next commit serializes everything again")
        before = (self.store.stats.bytes_written, self.store.stats.blobs_written)
        try:
            if ahead is not None:
                # the blobs not handed over yet (skeletons, buffers of one chunk, small ones) join the same pack
                ahead.submit({n: d for n, d in snap.chunks.items() if n not in ahead.names}, small=True)
            else:
                self.store.put_named(snap.chunks, check=False)
        finally:
            if ahead is not None:
                ahead.wait()  # (raises a write error: the ref has not moved)
        self.stream_cache.update(snap.fingerprints)  # only now are those chunks stored
        written = (self.store.stats.bytes_written - before[0], self.store.stats.blobs_written - before[1])
        self._after_write(written[0])
        variables = dict(kept)
        variables.update(snap.variables)
        groups = {r.group: head.groups[r.group] for r in kept.values() if r.group and head} if kept else {}
        groups.update(snap.groups)
        skipped = {n: r.reason or "" for n, r in variables.items() if r.kind == UNPICKLABLE}
        meta_doc = state_meta(variables, groups, {
            "serialized": sorted(redo),
            "seconds": {"serialize": round(prepared.serialize_seconds, 6)},
            "bytes": {"state": sum(g.nbytes for g in groups.values()), "written": written[0]},
        })
        needed = meta_doc[FORMAT_KEY]
        meta_doc.update(prepared.meta)
        meta_doc[FORMAT_KEY] = needed  # (nor a session's extra meta)
        state = State(variables, groups, meta_doc)
        info = self.history.commit_state(state, prepared.message, files=prepared.files, writer=git_writer,
                                         ref=prepared.ref, parent=parent, merged=prepared.merged)
        self._pack_loose_now_and_then()
        return CommitResult(
            info=info,
            variables=len(variables),
            serialized_names=sorted(redo),
            bytes_state=meta_doc["bytes"]["state"],
            bytes_written=written[0],
            blobs_written=written[1],
            skipped=skipped,
            seconds=prepared.serialize_seconds + time.perf_counter() - started,
            shared=snap.shared,
        )

    # -- status / diff -----------------------------------------------------------------
    def live_records(self, namespace: Mapping[str, Any], names: Iterable[str] | None = None) -> dict[str, VarRecord]:
        """Records of the namespace's values as they are now (``names``: only those present of them)."""
        if names is not None:
            names = sorted(n for n in names if n in namespace)
            if not names:
                return {}
        # the cache: a large buffer unchanged since it was stored is fingerprinted, not cut and hashed again
        snap = snapshot(namespace, names, cache=self.stream_cache)
        self.restored_groups.apply(snap)
        return snap.variables

    @staticmethod
    def repicklable(state: State, names: Iterable[str], present: Collection[str]) -> set[str]:
        """Those of ``names`` that a snapshot of a namespace (holding ``present``) records as ``state`` has
        them if they did not change, so that pickling them again tells whether they did. Not the members
        of a group some of which the namespace lacks (not loaded), nor of one that lists a name since
        bound to another value (storage format 3: what a cell's rebinding left sharing its old value's
        group): pickled again, those make another group whether they changed or not."""
        members: dict[str, set[str]] = {}
        for n, r in state.variables.items():
            if r.kind == VALUE and r.group:
                members.setdefault(r.group, set()).add(n)
        here = present if isinstance(present, (set, frozenset)) else set(present)
        out = set()
        for n in names:
            r = state.variables.get(n)
            if r is None or r.kind != VALUE or not r.group:
                out.add(n)  # a module, an unpicklable value: compared by what they are, not by pickle
                continue
            group = state.groups.get(r.group)
            if group is not None and set(group.names) == members[r.group] and members[r.group] <= here:
                out.add(n)
        return out

    def remember_restored(self, namespace: Mapping[str, Any], values: Mapping[str, Any], state: State,
                          fingerprints: Mapping[Any, list[str]] | None = None) -> None:
        """``values`` were just restored from ``state`` into ``namespace``: learn how they pickle now,
        so that committing them unchanged records the groups they came from (see RestoredGroups)."""
        if fingerprints:
            chunks = {c for names in fingerprints.values() for c in names}
            if not self.store.missing(chunks):  # the cache may only name chunks the store holds
                self.stream_cache.update(dict(fingerprints))
        self.restored_groups.note(namespace, values, state.variables, state.groups, self.stream_cache,
                                  fingerprints if isinstance(fingerprints, Fingerprints) else None)

    def live_records_since(self, namespace: Mapping[str, Any], since: Mapping[str, VarRecord],
                           names: Iterable[str], detached: Collection[str] = ()) -> dict[str, VarRecord]:
        """Records of the namespace as a commit on ``since`` (a state's records) would make them when only
        ``names`` may have changed since: those, new names and what shares a group with them are
        serialized again; the others keep ``since``'s records (as a session's next commit carries them
        over). Pickling everything again would call a value changed whose pickle differs each time
        though the value did not (a matplotlib figure: its callback registries count up).
        ``detached``: as for :meth:`prepare_commit`."""
        live = _variable_names(namespace)
        redo = (set(names) & live) | (live - set(since))
        redo |= _co_members(since, [], redo.difference(detached)) & live
        out = {n: r for n, r in since.items() if n in live and n not in redo}
        out.update(self.live_records(namespace, redo))
        return out

    def status(self, namespace: Mapping[str, Any] | None = None, *, against: str | State | None = None,
               live: Mapping[str, VarRecord] | None = None) -> StatusReport:
        """How ``namespace`` differs from HEAD (``against``: from that commit or state); nothing is written.
        ``live``: the namespace's records when the caller has them (see :meth:`live_records_since`);
        else every value is serialized again."""
        head = self.history.head_commit()
        report = StatusReport(branch=self.branch, head=None if head is None else str(head.id))
        if namespace is None:
            return report
        if isinstance(against, State):
            old = against.variables
        elif against is not None:
            old = self.history.read_state(self.history.resolve(against), groups=False).variables
        else:
            old = self.history.read_state(head, groups=False).variables if head is not None else {}
        new = live if live is not None else self.live_records(namespace)
        report.added = sorted(set(new) - set(old))
        report.removed = sorted(set(old) - set(new))
        report.modified = sorted(n for n in set(old) & set(new) if not new[n].same_content(old[n]))
        return report

    def diff(self, a: str = "HEAD", b: str | None = None, *, namespace: Mapping[str, Any] | None = None,
             live: Mapping[str, VarRecord] | None = None) -> StateDiff:
        """Variables that differ between revisions ``a`` and ``b`` (or ``a`` and a live namespace; ``live``:
        its records, when the caller has them, as for :meth:`status`). ``a`` alone may be a range, as for
        ``git diff``: ``A..B`` compares A and B; ``A...B`` compares their merge base with B, what a merge
        of B would bring in (``a`` of the result is then the merge base's id)."""
        rng = RevRange.parse(a) if b is None and namespace is None and live is None else None
        if rng is not None:
            base, tip = self.history.range_ends(rng)
            a, b = rng.left if not rng.symmetric else str(base.id), rng.right
            old, new = (self.history.read_state(c, groups=False).variables for c in (base, tip))
        else:
            old = self.history.read_state(self.history.resolve(a), groups=False).variables
            if b is not None:
                new = self.history.read_state(self.history.resolve(b), groups=False).variables
            elif live is not None:
                new = dict(live)
            elif namespace is not None:
                new = self.live_records(namespace)
            else:
                raise TypeError("diff needs a second revision or a namespace")
        out = StateDiff(a, b or "(namespace)")
        out.added = {n: new[n] for n in sorted(set(new) - set(old))}
        out.removed = {n: old[n] for n in sorted(set(old) - set(new))}
        out.changed = {n: (old[n], new[n]) for n in sorted(set(old) & set(new)) if not new[n].same_content(old[n])}
        return out

    # -- log / show --------------------------------------------------------------------
    def reflog(self, ref: str = "HEAD", *, max_count: int | None = None) -> list[tuple[str, str, str]]:
        """Where ``ref`` (a branch, remote-tracking branch, tag or HEAD) pointed, newest first, as ``git reflog``:
        (``NAME@{N}``, commit id, why it moved) per entry; ``NAME@{N}`` and ORIG_HEAD name these states in
        ``checkout``, ``reset``, ``diff`` and ``log``."""
        name, entries = self.history.reflog(ref)
        return [(f"{name}@{{{i}}}", oid, why) for i, (oid, why) in enumerate(entries[:max_count])]

    def log(self, rev: str | None = None, *, all_refs: bool = False, max_count: int | None = None) -> list[CommitInfo]:
        """Commits reachable from ``rev`` (default HEAD), newest first, or those of a range (``A..B``,
        ``A...B``: see :class:`txgit.history.RevRange`); ``all_refs``: from every branch,
        remote-tracking branch (``origin/main``), tag and held commits of a closed kernel, as ``git log --all``."""
        if all_refs:
            starts = {self.history.resolve(f"refs/heads/{b}").id for b in self.history.branches()}
            starts |= {self.history.resolve(f"refs/tags/{t}").id for t in self.history.tags()}
            starts |= {pygit2.Oid(hex=c) for c in self.history.remote_branches().values()}
            # a closed kernel's commits on no branch, kept for their merge (History.hold_unmerged)
            starts |= {pygit2.Oid(hex=c) for c in self.history.unmerged().values()}
            head = self.history.head_commit()
            if head is not None:
                starts.add(head.id)
        elif rev is None and self.history.head_commit() is None:
            return []
        elif (rng := RevRange.parse(rev)) is not None:
            refs = self.history.refs_by_commit()
            return [self.history.info(c, refs) for c in self.history.walk_range(rng, max_count)]
        else:
            starts = {self.history.resolve(rev or "HEAD").id}
        refs = self.history.refs_by_commit()
        return [self.history.info(c, refs) for c in self.history.walk(sorted(starts, key=str), max_count)]

    # -- checkout core -----------------------------------------------------------------
    def _checkout_namespace(self, target: pygit2.Commit, namespace: MutableMapping[str, Any], force: bool,
                            result: CheckoutResult, known: str | None = None, against: str | None = None,
                            before_loading: Callable[[], None] | None = None) -> None:
        """Make ``namespace`` equal ``target``'s state, loading only what differs (into ``result``);
        nothing changes if anything fails. ``checkout``/``reset`` (the facade) call it under the lock,
        once trust allowed the load; arguments as theirs."""
        want = self.history.read_state(target)
        result.drift = environment.drift(want.meta)
        if known is None:
            current = snapshot(namespace)
            self.restored_groups.apply(current)
            have_groups = set(current.groups)
        else:
            base_state = self.history.read_state(self.history.resolve(known), groups=not force)
            base = base_state.variables
            present = set(_variable_names(namespace))
            redo = present - set(base)  # names the known commit lacks
            if not force:
                # "nothing ran since" is not "nothing changed": a thread, a widget's callback, an asyncio
                # task may have changed a value between cells. What the target replaces or deletes is
                # pickled again (with its co-members: a group's id is all of theirs) to be compared, as an
                # explicit commit's full pass does; what it keeps is not, so a clean checkout stays cheap
                replaced = _co_members(base, [], _replaced_by(want.variables, base, present)) & present
                redo |= self.repicklable(base_state, replaced, present)
            current = snapshot(namespace, sorted(redo), cache=self.stream_cache)
            self.restored_groups.apply(current)
            current.variables.update({n: r for n, r in base.items() if n in present and n not in redo})
            have_groups = set(current.groups) | {r.group for r in current.variables.values() if r.group}
        if not force:
            head = self.history.head_commit() if against is None else self.history.resolve(against)
            old = self.history.read_state(head, groups=False).variables if head is not None else {}
            # Only what the namespace holds and HEAD does not can be lost; a
            # name HEAD has and the namespace lacks (a fresh kernel) is safe.
            dirty = sorted(n for n, rec in current.variables.items() if not rec.same_content(old.get(n)))
            if dirty:
                shown = ", ".join(dirty[:5]) + (" …" if len(dirty) > 5 else "")
                raise DirtyNamespace(f"uncommitted changes to {shown}: commit them first (--force drops them)", dirty)
        to_load: dict[str, VarRecord] = {}
        for name, rec in want.variables.items():
            have = current.variables.get(name)
            # the name's own record, not only its group somewhere in the namespace: a group the others
            # kept lists a name since bound to another value (storage format 3)
            if rec.kind == VALUE and (have is None or rec.group not in have_groups or have.group != rec.group):
                to_load[name] = rec
            elif rec.kind == MODULE and (have is None or not rec.same_content(have)):
                to_load[name] = rec
            elif rec.kind == NAMESPACE:
                to_load[name] = rec
            elif rec.kind == UNPICKLABLE:
                if name in namespace and type_name(namespace[name]) == rec.type:
                    result.kept.append(name)  # the live one stays: nothing is missing
                else:
                    result.not_restored[name] = f"{rec.type} could not be saved ({rec.reason})"
            else:  # a value, or an import, the namespace holds as the state has it
                result.kept.append(name)
        # a group is loaded whole: the values the namespace holds of it would share nothing with its
        # newly loaded ones (``cb.ax.figure is fig`` after loading ``fig``'s group)
        loading = {r.group for r in to_load.values() if r.kind == VALUE}
        more = {n: r for n, r in want.variables.items() if r.kind == VALUE and r.group in loading and n not in to_load}
        if more:
            to_load.update(more)
            result.kept = [n for n in result.kept if n not in more]
        before = (self.store.stats.bytes_read, self.store.stats.blobs_read)
        fingerprints = Fingerprints()
        if to_load and before_loading is not None:
            before_loading()  # (the facade's trust check: only a state whose values are loaded needs it)
        # A value this process cannot rebuild (its pickle fails to load here, a module it needs is not
        # installed) is reported as not restored, like an unpicklable one, and the rest is checked out;
        # damaged or missing bytes and refused classes still raise, with nothing changed.
        failed: dict[str, str] = {}
        values = restore(to_load, want.groups, self.blobs.get_many, namespace, fingerprints, failed,
                         join=self.blobs.read_joined)
        result.bytes_read = self.store.stats.bytes_read - before[0]
        result.blobs_read = self.store.stats.blobs_read - before[1]
        for name, why in sorted(failed.items()):
            result.not_restored[name] = f"{want.variables[name].type} could not be loaded here ({why})"
        for name in sorted(_variable_names(namespace)):
            if (name not in want.variables or name in failed
                    or (want.variables[name].kind == UNPICKLABLE and name not in result.kept)):
                del namespace[name]
                if name not in want.variables:
                    result.removed.append(name)
        namespace.update(values)
        self.remember_restored(namespace, values, want, fingerprints)
        result.loaded = sorted(values)
        result.kept.sort()

    # -- refs ------------------------------------------------------------------------------
    def branches(self) -> dict[str, str]:
        """Branch name -> commit id."""
        return self.history.branches()

    def remote_branches(self) -> dict[str, str]:
        """Remote-tracking branch (``origin/main``) -> commit id, as the last fetch or push left them."""
        return self.history.remote_branches()

    def create_branch(self, name: str, rev: str = "HEAD", *, force: bool = False) -> CommitInfo:
        commit = self._resolve_for_ref(rev)
        with self.lock():
            self.history.create_branch(name, commit, force=force)
        return self.history.info(commit)

    def delete_branch(self, name: str) -> None:
        with self.lock():
            self.history.delete_branch(name)

    def rename_branch(self, old: str, new: str, *, force: bool = False) -> dict[str, str]:
        """``git branch -m OLD NEW`` (``force``: ``-M``); see :meth:`History.rename_branch`."""
        with self.lock():
            return self.history.rename_branch(old, new, force=force)

    def tags(self) -> dict[str, str]:
        return self.history.tags()

    def create_tag(self, name: str, rev: str = "HEAD", message: str | None = None, *, force: bool = False) -> CommitInfo:
        commit = self._resolve_for_ref(rev)
        with self.lock():
            self.history.create_tag(name, commit, message, force=force)
        return self.history.info(commit)

    def delete_tag(self, name: str) -> None:
        with self.lock():
            self.history.delete_tag(name)

    # -- maintenance ---------------------------------------------------------------------
    def materialized(self, rev: str | State = "HEAD", names: Iterable[str] | None = None) -> bool:
        """Whether the local store holds every blob that loading ``names`` (default: all) of ``rev`` needs.

        Cheap (the commit's records, then one existence check per blob; no remote
        is asked, no byte read): the reuse layer asks it before loading a result
        instead of recomputing it. False for a state ``gc --budget`` dropped, and
        for one a lazy clone has not fetched yet. ``rev`` may also be a :class:`State`.
        """
        state = rev if isinstance(rev, State) else self.state(rev)
        asked = None if names is None else set(names)
        wanted = state.variables if asked is None else {n: state.variables[n] for n in asked
                                                         if n in state.variables}
        if asked is not None and len(wanted) != len(asked):
            raise UnknownVariable(f"no variable {sorted(asked - set(wanted))[0]!r} in that state")
        chunks = {c for r in wanted.values() if r.group and r.group in state.groups
                  for c in state.groups[r.group].chunk_names()}
        return not self.store.missing(chunks)

    def _resolve_for_ref(self, rev: str) -> pygit2.Commit:
        if rev == "HEAD" and self.history.head_commit() is None:
            raise EmptyHistory("no commits yet: commit a state first")
        return self.history.resolve(rev)

