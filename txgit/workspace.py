"""The Python API: a workspace is a folder with ``.txgit/`` in it.

``.txgit/repo.git`` is a bare git repository holding the history of states;
``.txgit/objects/`` is the local content-addressed cache of their bytes.

    ws = Workspace.init("proj")
    ws.commit(namespace, "cleaned data")
    ws.checkout("exp", namespace)        # loads only what differs
    ws.load("model", "HEAD~2")           # one variable, no checkout

Sessions (IPython, scripts), remotes, the CLI and the magics all stand on this.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import platform
import time
import urllib.parse
import warnings
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pygit2

import txgit
from txgit import budget as _budget, environment, trust as _trust
from txgit.errors import (
    DirtyNamespace,
    EmptyHistory,
    MergeInProgress as MergeInProgressError,
    MissingBlob,
    NotAWorkspace,
    RemoteError,
    RefExists,
    TxgitError,
    UnknownVariable,
    WorkspaceExists,
)
from txgit.gitwriter import GitWriter
from txgit.merge import KERNEL, OURS, THEIRS, Conflict, MergeInProgress, MergePlan, merge_states
from txgit.history import CommitInfo, History, State, validate_ref_name
from txgit.remote import BlobRepair, FetchResult, Progress, PushResult, RemoteChain, Remotes
from txgit.state import (
    GroupRecord,
    MODULE,
    NAMESPACE,
    UNPICKLABLE,
    VALUE,
    RestoredGroups,
    Snapshot,
    StreamCache,
    VarRecord,
    is_variable_name,
    restore,
    snapshot,
)
from txgit.state.safe import safe_loading
from txgit.state.summary import type_name
from txgit.storage import ObjectStore

if TYPE_CHECKING:
    from txgit.integrity import FsckReport, GcReport

TXGIT_DIR = ".txgit"
# gc leaves blobs younger than this alone: see txgit.integrity for why
GC_GRACE_SECONDS = 3600.0


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

    def __init__(self, workspace: Workspace, *, clear_stale: bool = True) -> None:
        """``clear_stale=False``: the holder calls ``history.clear_stale_locks()`` itself before it
        writes to git (a session's background writer does, off the cell's critical path)."""
        self._workspace = workspace
        self._file = open(workspace.dir / "lock", "a")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX)
            if clear_stale:
                workspace.history.clear_stale_locks()
        except BaseException:
            self._file.close()
            raise

    def release(self) -> None:
        if not self._file.closed:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            if self._workspace.budget_policy.due:  # a commit outgrew `gc.budget`: now is a cheap moment
                try:
                    self._workspace.budget_policy.run_if_due(self._workspace)
                except TxgitError as e:
                    warnings.warn(f"txgit: automatic gc --budget did not run: {e}", stacklevel=2)


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


@dataclass
class MergeResult:
    """What a merge (or a pull) did to a ref and, given one, to a namespace."""

    status: str  # "up-to-date", "fast-forward", "merged", "conflicts", "aborted"
    ref: str
    ours: str | None
    theirs: str
    label: str  # what was merged, as named ("origin/main")
    base: str | None = None
    info: CommitInfo | None = None  # the merge commit, or the commit the ref moved to
    plan: MergePlan | None = None
    loaded: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    bytes_read: int = 0
    blobs_read: int = 0

    @property
    def conflicts(self) -> list[Conflict]:
        return list(self.plan.conflicts) if self.plan is not None and self.status == "conflicts" else []

    def to_json(self) -> dict[str, Any]:
        """As JSON: what a kernel answers a terminal, and what both print from."""
        return {"status": self.status, "ref": self.ref, "ours": self.ours, "theirs": self.theirs, "base": self.base,
                "label": self.label, "commit": self.info.id if self.info is not None else None,
                "loaded": self.loaded, "removed": self.removed, "bytes_read": self.bytes_read,
                "conflicts": [{"names": c.names, "how": {n: c.describe(n) for n in c.names}} for c in self.conflicts],
                "resolved": dict(self.plan.resolved) if self.plan is not None else {}}


def _same_record(a: VarRecord | None, b: VarRecord | None) -> bool:
    return a is b or (a is not None and a.same_content(b))


def _ref_label(ref: str) -> str:
    return ref.removeprefix("refs/heads/")


def _merge_message(label: str, ref: str) -> str:
    into = "" if ref == "HEAD" else f" into {_ref_label(ref)}"
    return f"Merge {label}{into}"


@dataclass
class PullResult:
    """What a pull did to a branch: the fetch, then the merge (or fast-forward) of what it brought."""

    fetch: FetchResult
    branch: str
    old: str | None
    new: str | None
    status: str  # "up-to-date", "fast-forward", "merged", "conflicts"
    merge: MergeResult | None = None


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


def _state_meta(variables: Mapping[str, VarRecord], groups: Mapping[str, GroupRecord],
                extra: Mapping[str, Any]) -> dict[str, Any]:
    """``meta.json`` of a state: versions of what made it, what could not be saved, and ``extra``."""
    doc: dict[str, Any] = {
        "txgit": txgit.__version__,
        "python": platform.python_version(),
        "platform": _platform(),
        "packages": _package_versions(variables),
        "skipped": {n: r.reason or "" for n, r in variables.items() if r.kind == UNPICKLABLE},
        "bytes": {"state": sum(g.nbytes for g in groups.values())},
    }
    doc.update(extra)
    return doc


def _package_versions(records: Mapping[str, VarRecord]) -> dict[str, str]:
    """Versions of the top-level packages the state's types and modules come from."""
    tops = {r.module.split(".")[0] for r in records.values() if r.kind == MODULE and r.module}
    tops |= {r.type.split(".")[0] for r in records.values() if "." in r.type}
    return environment.package_versions(tops)


class _CommitNamespace(dict):
    """Globals for a function loaded alone: other variables of its commit load on first use.

    CPython looks globals of a dict subclass up through ``__getitem__``, so
    ``__missing__`` makes the lookup lazy.
    """

    def __init__(self, workspace: Workspace, state: State) -> None:
        super().__init__(__name__="__main__", __builtins__=__builtins__)
        self._workspace, self._state = workspace, state

    def __missing__(self, key: str) -> Any:
        rec = self._state.variables.get(key)
        if rec is None or rec.kind == UNPICKLABLE:
            raise KeyError(key)
        values = restore({key: rec}, self._state.groups, self._workspace.blobs.get_many, self)
        self.update(values)
        return values[key]


def _co_members(head: State, deferred: list[list[str]]) -> dict[str, set[str]]:
    """name -> the names of its group in ``head``. ``deferred``: groups of a commit still being written,
    whose records get their group ids from the writer's thread (read here, they may or may not have one)."""
    pending = {n for names in deferred for n in names}
    by_group: dict[str, set[str]] = {}
    for n, r in head.variables.items():
        if r.group and n not in pending:
            by_group.setdefault(r.group, set()).add(n)
    out = {n: by_group[r.group] for n, r in head.variables.items() if r.group and n not in pending}
    for names in deferred:
        out.update(dict.fromkeys(names, set(names)))
    return out


def _variable_names(namespace: Mapping[str, Any]) -> set[str]:
    return {n for n in namespace if is_variable_name(n)}


class _Blobs(RemoteChain):
    """The workspace's blob reader: a blob ``gc --budget`` dropped is reported as such, not as damage."""

    def __init__(self, local: ObjectStore, remotes: Remotes, ws_dir: Path) -> None:
        super().__init__(local, remotes)
        self._dir = ws_dir
        self.focus: str | None = None  # the commit being loaded, named first in that error

    def get_many(self, names: Iterable[str]) -> dict[str, bytes]:
        names = list(names)
        try:
            return super().get_many(names)
        except MissingBlob as e:
            dropped = _budget.explain_missing(self._dir, self.local.missing(names), self.focus)
            if dropped is None:
                raise
            raise dropped from e


class Workspace:
    """A folder under txgit: history (git) + object cache + optional remote stores."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.dir = self.root / TXGIT_DIR
        if not (self.dir / "repo.git").is_dir():
            raise NotAWorkspace(f"not a txgit workspace: {self.root} (run `txgit init`)")
        self.history = History(self.dir / "repo.git")
        self.store = ObjectStore(str(self.dir / "objects"))
        self.remotes = Remotes(self)
        self.blobs = _Blobs(self.store, self.remotes, self.dir)  # blobs the cache lacks come from remotes
        self.budget_policy = _budget.AutoPolicy()  # `txgit config gc.budget`: see txgit.budget
        # streams this workspace stored, by fast fingerprint: unchanged bytes are not hashed again
        self.stream_cache = StreamCache()
        # what values restored into a namespace pickle to: a value only read is not a change
        self.restored_groups = RestoredGroups()

    # -- lifecycle ---------------------------------------------------------------
    @classmethod
    def init(cls, path: str | os.PathLike[str] = ".") -> Workspace:
        root = Path(path).resolve()
        if (root / TXGIT_DIR / "repo.git").exists():
            raise WorkspaceExists(f"already a txgit workspace: {root}")
        root.mkdir(parents=True, exist_ok=True)
        (root / TXGIT_DIR / "objects").mkdir(parents=True, exist_ok=True)
        History.init(root / TXGIT_DIR / "repo.git")
        return cls(root)

    @classmethod
    def open(cls, path: str | os.PathLike[str] = ".") -> Workspace:
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

    def settle(self) -> None:
        """Wait until no writer (a kernel's background commit, another process) holds the lock.

        A kernel writes each cell's commit in a background thread, holding
        the lock from the moment the cell's state is serialized until the
        commit is written: after this returns, that commit is in history.
        """
        with open(self.dir / "lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_SH)
            fcntl.flock(f, fcntl.LOCK_UN)

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
            return self.finish_commit(self.prepare_commit(namespace, message, names=names, files=files, meta=meta))

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
    ) -> PreparedCommit:
        """The first half of :meth:`commit`: serialize what changed; nothing is written.

        The caller holds the lock (:meth:`hold_lock`) until :meth:`finish_commit`
        has run, so that the ref cannot move in between. ``defer``: large new
        streams are copied, and cut and hashed by :meth:`finish_commit`.
        ``base``: a prepared commit not yet written, to build on instead of
        HEAD; it must be finished first, by the same lock holder.
        ``known_shared``: see :func:`txgit.state.snapshot.snapshot`.
        ``ref``: the ref to move (HEAD, or a session's branch); ``parent``: the commit to build on
        ("HEAD": what ``ref`` names now; None: none). ``head_state``: the records unchanged names
        are carried over from, when not the parent's (a merge: the merged records); ``merged``:
        further parents.
        """
        started = time.perf_counter()
        if base is not None:
            parent_id, head = None, base.state()
        else:
            tip = self.history.tip(ref) if parent == "HEAD" else (None if parent is None else self.history.resolve(parent))
            parent_id = None if tip is None else str(tip.id)
            head = head_state if head_state is not None else (None if tip is None else self.history.read_state(tip))
        live = _variable_names(namespace)
        if names is None or head is None:
            redo = live
            kept: dict[str, VarRecord] = {}
        else:
            redo = {n for n in names if n in live} | (live - set(head.variables))
            members = _co_members(head, base.deferred_members if base is not None else [])
            for n in list(redo):
                redo |= members.get(n, set()) & live
            kept = {n: r for n, r in head.variables.items() if n in live and n not in redo and n not in names}
        # groups still being hashed for the commit this one builds on, carried over whole: the next
        # chained commit must still find their members
        carried = [k for k in ([n for n in m if n in kept] for m in (base.deferred_members if base else [])) if k]
        snap = snapshot(namespace, sorted(redo), cache=self.stream_cache, defer=defer, known_shared=known_shared)
        if not snap.deferred:
            self.restored_groups.apply(snap)
        if snap.reused and self.store.missing(snap.reused):  # the store lost chunks (gc, by hand)
            self.stream_cache.clear()
            self.restored_groups.clear()
            snap = snapshot(namespace, sorted(redo), defer=defer, known_shared=known_shared)
        return PreparedCommit(snap, head, kept, redo, message, dict(files or {}), dict(meta or {}),
                              time.perf_counter() - started, chained=base is not None,
                              deferred_members=[list(d.names) for d in snap.deferred] + carried,
                              ref=ref, parent=parent_id, merged=list(merged))

    def finish_commit(self, prepared: PreparedCommit, *, git_writer: GitWriter | None = None) -> CommitResult:
        """The second half of :meth:`commit`: store the chunks, write the git commit, move HEAD.
        ``git_writer``: a helper process that writes the git objects (a kernel's background writer)."""
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
        self.store.put_named(snap.chunks, check=False)
        self.stream_cache.update(snap.fingerprints)  # only now are those chunks stored
        written = (self.store.stats.bytes_written - before[0], self.store.stats.blobs_written - before[1])
        self.budget_policy.after_write(self, written[0])
        variables = dict(kept)
        variables.update(snap.variables)
        groups = {r.group: head.groups[r.group] for r in kept.values() if r.group and head} if kept else {}
        groups.update(snap.groups)
        skipped = {n: r.reason or "" for n, r in variables.items() if r.kind == UNPICKLABLE}
        meta_doc = _state_meta(variables, groups, {
            "serialized": sorted(redo),
            "seconds": {"serialize": round(prepared.serialize_seconds, 6)},
            "bytes": {"state": sum(g.nbytes for g in groups.values()), "written": written[0]},
        })
        meta_doc.update(prepared.meta)
        state = State(variables, groups, meta_doc)
        info = self.history.commit_state(state, prepared.message, files=prepared.files, writer=git_writer,
                                         ref=prepared.ref, parent=parent, merged=prepared.merged)
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
    def _live_records(self, namespace: Mapping[str, Any], names: Iterable[str] | None = None) -> dict[str, VarRecord]:
        """Records of the namespace's values as they are now (``names``: only those present of them)."""
        if names is not None:
            names = sorted(n for n in names if n in namespace)
            if not names:
                return {}
        snap = snapshot(namespace, names)
        self.restored_groups.apply(snap)
        return snap.variables

    def remember_restored(self, namespace: Mapping[str, Any], values: Mapping[str, Any], state: State,
                          fingerprints: Mapping[Any, list[str]] | None = None) -> None:
        """``values`` were just restored from ``state`` into ``namespace``: learn how they pickle now,
        so that committing them unchanged records the groups they came from (see RestoredGroups)."""
        if fingerprints:
            chunks = {c for names in fingerprints.values() for c in names}
            if not self.store.missing(chunks):  # the cache may only name chunks the store holds
                self.stream_cache.update(dict(fingerprints))
        self.restored_groups.note(namespace, values, state.variables, state.groups, self.stream_cache)

    def status(self, namespace: Mapping[str, Any] | None = None, *, against: str | State | None = None) -> StatusReport:
        """How ``namespace`` differs from HEAD (``against``: from that commit or state); nothing is written."""
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
        new = self._live_records(namespace)
        report.added = sorted(set(new) - set(old))
        report.removed = sorted(set(old) - set(new))
        report.modified = sorted(n for n in set(old) & set(new) if not new[n].same_content(old[n]))
        return report

    def diff(self, a: str = "HEAD", b: str | None = None, *, namespace: Mapping[str, Any] | None = None) -> StateDiff:
        """Variables that differ between revisions ``a`` and ``b`` (or ``a`` and a live namespace)."""
        old = self.history.read_state(self.history.resolve(a), groups=False).variables
        if b is not None:
            new = self.history.read_state(self.history.resolve(b), groups=False).variables
        elif namespace is not None:
            new = self._live_records(namespace)
        else:
            raise TypeError("diff needs a second revision or a namespace")
        out = StateDiff(a, b or "(namespace)")
        out.added = {n: new[n] for n in sorted(set(new) - set(old))}
        out.removed = {n: old[n] for n in sorted(set(old) - set(new))}
        out.changed = {n: (old[n], new[n]) for n in sorted(set(old) & set(new)) if not new[n].same_content(old[n])}
        return out

    # -- log / show --------------------------------------------------------------------
    def log(self, rev: str | None = None, *, all_refs: bool = False, max_count: int | None = None) -> list[CommitInfo]:
        """Commits reachable from ``rev`` (default HEAD), newest first; ``all_refs``: from every branch and tag."""
        if all_refs:
            starts = {self.history.resolve(f"refs/heads/{b}").id for b in self.history.branches()}
            starts |= {self.history.resolve(f"refs/tags/{t}").id for t in self.history.tags()}
            head = self.history.head_commit()
            if head is not None:
                starts.add(head.id)
        elif rev is None and self.history.head_commit() is None:
            return []
        else:
            starts = {self.history.resolve(rev or "HEAD").id}
        refs = self.history.refs_by_commit()
        return [self.history.info(c, refs) for c in self.history.walk(sorted(starts, key=str), max_count)]

    # -- checkout --------------------------------------------------------------------
    def checkout(
        self,
        rev: str,
        namespace: MutableMapping[str, Any] | None = None,
        *,
        force: bool = False,
        new_branch: str | None = None,
        known: str | None = None,
        trust: bool = False,
        safe: bool = False,
        move_head: bool = True,
        against: str | None = None,
        leaving: str | None = None,
    ) -> CheckoutResult:
        """Move HEAD to ``rev`` and, given a namespace, make it equal that state.

        Only groups whose content differs from what the namespace holds are
        loaded; names the target lacks are removed. A namespace with changes
        not committed at HEAD (``against``: at that commit) is refused unless ``force``.
        Everything is loaded and verified before the namespace or HEAD change, so a failure
        (missing or corrupt blob, missing module) leaves both as they were.
        ``new_branch``: create that branch at ``rev`` and switch to it (``checkout -b``).
        ``known``: a commit the namespace is known to equal (a session with nothing run
        since it); its records stand in for serializing the namespace again, which is
        faster and immune to equal values whose pickles differ (restored strings lose
        the identity sharing of the originals, so their pickles' memo differs).
        ``trust``: load a state fetched from a remote not marked trusted (unpickling runs its
        code; :class:`txgit.trust.UntrustedState` otherwise). ``safe``: unpickle only allow-listed
        plain data types (:mod:`txgit.state.safe`), for inspecting a stranger's state.
        ``move_head``: False leaves the repository's HEAD alone (a session on a branch of its own).
        ``leaving``: the detached commit being left (default: HEAD's, when detached): commits only it
        reaches are counted in ``result.left_behind``.
        ``result.drift`` lists Python/package versions that differ from the commit's record.
        """
        with self.lock():
            if rev == "HEAD" and self.branch is not None and new_branch is None:
                rev = self.branch  # `checkout HEAD` on a branch stays on it, as in git
            target = self.history.resolve(rev)
            if new_branch is not None:
                validate_ref_name("branch", new_branch)
                if new_branch in self.history.branches():
                    raise RefExists(f"a branch named {new_branch!r} already exists")
            branch = new_branch or (rev if rev in self.history.repo.branches.local else None)
            result = CheckoutResult(info=self.history.info(target, self.history.refs_by_commit()), branch=branch)
            if leaving is None and move_head and self.branch is None:
                head = self.history.head_commit()
                leaving = None if head is None else str(head.id)
            if namespace is not None:
                _trust.require(self, str(target.id), trust=trust, safe=safe)
                self.blobs.focus = str(target.id)
                with safe_loading(safe):
                    self._checkout_namespace(target, namespace, force, result, known, against)  # may fail: nothing moved yet
            else:
                _budget.require_loadable(self, str(target.id))  # HEAD must not move to a state gc --budget dropped
            if leaving is not None and leaving != str(target.id):
                result.left_behind = self.history.unreferenced(leaving, keep=[str(target.id)])
                result.left_from = leaving
            if new_branch is not None:
                self.history.create_branch(new_branch, target)
            if move_head:
                if branch is not None:
                    self.history.set_head(branch=branch)
                else:
                    self.history.set_head(commit=target)
        return result

    def reset(self, rev: str, namespace: MutableMapping[str, Any] | None = None, *, ref: str = "HEAD",
              force: bool = False, known: str | None = None, against: str | None = None, trust: bool = False,
              safe: bool = False) -> CheckoutResult:
        """Point ``ref`` (HEAD's branch, or a session's) at ``rev``, as ``git reset --hard`` does, and make
        ``namespace`` equal that state (only what differs is loaded; uncommitted changes refuse unless
        ``force``; ``known``/``against`` as for :meth:`checkout`). Commits the branch had that no ref
        holds any more are counted in ``result.left_behind`` (the reflog still has them)."""
        with self.lock():
            if self.merge_in_progress(ref) is not None:
                raise MergeInProgressError(f"a merge into {_ref_label(ref)} is in progress: `txgit merge --abort` first")
            target = self.history.resolve(rev)
            tip = self.history.tip(ref)
            branch = self.branch if ref == "HEAD" else _ref_label(ref)
            result = CheckoutResult(info=self.history.info(target, self.history.refs_by_commit()), branch=branch)
            if namespace is not None:
                _trust.require(self, str(target.id), trust=trust, safe=safe)
                self.blobs.focus = str(target.id)
                with safe_loading(safe):
                    self._checkout_namespace(target, namespace, force, result, known, against)
            else:
                _budget.require_loadable(self, str(target.id))
            if tip is None or tip.id != target.id:
                self.history.move_ref(ref, target, expect=tip, why=f"txgit reset: moving to {rev}")
                if tip is not None:
                    result.left_behind = self.history.unreferenced(str(tip.id))
                    result.left_from = str(tip.id)
        return result

    def _checkout_namespace(self, target: pygit2.Commit, namespace: MutableMapping[str, Any], force: bool,
                            result: CheckoutResult, known: str | None = None, against: str | None = None) -> None:
        want = self.history.read_state(target)
        result.drift = environment.drift(want.meta)
        if known is None:
            current = snapshot(namespace)
            self.restored_groups.apply(current)
            have_groups = set(current.groups)
        else:
            base = self.history.read_state(self.history.resolve(known), groups=False).variables
            present = set(_variable_names(namespace))
            current = snapshot(namespace, present - set(base))  # names the known commit lacks
            self.restored_groups.apply(current)
            current.variables.update({n: r for n, r in base.items() if n in present})
            have_groups = set(current.groups) | {r.group for r in current.variables.values() if r.group}
        if not force:
            head = self.history.head_commit() if against is None else self.history.resolve(against)
            old = self.history.read_state(head, groups=False).variables if head is not None else {}
            # Only what the namespace holds and HEAD does not can be lost; a
            # name HEAD has and the namespace lacks (a fresh kernel) is safe.
            dirty = sorted(n for n, rec in current.variables.items() if not rec.same_content(old.get(n)))
            if dirty:
                shown = ", ".join(dirty[:5]) + (" …" if len(dirty) > 5 else "")
                raise DirtyNamespace(
                    f"uncommitted changes to {shown}: commit them first or check out with --force"
                )
        to_load: dict[str, VarRecord] = {}
        for name, rec in want.variables.items():
            have = current.variables.get(name)
            if rec.kind == VALUE and (have is None or rec.group not in have_groups):
                to_load[name] = rec
            elif rec.kind == MODULE and (have is None or not rec.same_content(have)):
                to_load[name] = rec
            elif rec.kind == NAMESPACE:
                to_load[name] = rec
            elif rec.kind == UNPICKLABLE:
                if name in namespace and type_name(namespace[name]) == rec.type:
                    result.kept.append(name)
                result.not_restored[name] = f"{rec.type} could not be saved ({rec.reason})"
            elif rec.kind == VALUE:
                result.kept.append(name)
        before = (self.store.stats.bytes_read, self.store.stats.blobs_read)
        fingerprints: dict[Any, list[str]] = {}
        values = restore(to_load, want.groups, self.blobs.get_many, namespace, fingerprints)  # may raise: nothing changed yet
        result.bytes_read = self.store.stats.bytes_read - before[0]
        result.blobs_read = self.store.stats.blobs_read - before[1]
        for name in sorted(_variable_names(namespace)):
            if name not in want.variables or (want.variables[name].kind == UNPICKLABLE and name not in result.kept):
                del namespace[name]
                if name not in want.variables:
                    result.removed.append(name)
        namespace.update(values)
        self.remember_restored(namespace, values, want, fingerprints)
        result.loaded = sorted(values)
        result.kept.sort()

    # -- merge -------------------------------------------------------------------------------
    def merge(self, rev: str, namespace: MutableMapping[str, Any] | None = None, *, ref: str = "HEAD",
              ours: str | None = None, changed: set[str] | None = None, label: str | None = None,
              message: str | None = None, trust: bool = False, safe: bool = False) -> MergeResult:
        """Merge ``rev`` into ``ref`` (HEAD, or a session's branch), three ways, variable by variable.

        ``ours``: the commit the namespace is based on (default: what ``ref`` names). Ours and theirs
        may each contain the other (nothing to do, or a fast-forward); otherwise the states are merged
        from their merge base (:mod:`txgit.merge`) and a merge commit with both parents is written from
        the records alone: no value is serialized again, no chunk is read. Given ``namespace`` (a live
        session, holding ``ours``), it loads only what the merge takes from theirs and deletes what
        theirs removed; values it changed since ``ours`` (``changed``: those names; None: any) that the
        merge would overwrite refuse it (:class:`DirtyNamespace`), and nothing is changed.
        Conflicts leave ``ref`` where it is and a merge in progress (:meth:`merge_in_progress`), to be
        resolved with :meth:`merge_resolve` or :meth:`merge_abort`. ``trust``/``safe``: as for
        :meth:`checkout`, for loading theirs' values.
        """
        with self.lock():
            if self.merge_in_progress(ref) is not None:
                raise MergeInProgressError(f"a merge into {_ref_label(ref)} is in progress: resolve its conflicts "
                                           "or `txgit merge --abort` first")
            theirs = self.history.resolve(rev)
            tip = self.history.tip(ref)
            mine = tip if ours is None else self.history.resolve(ours)
            label = label or rev
            result = MergeResult("up-to-date", ref, None if mine is None else str(mine.id), str(theirs.id), label)
            repo = self.history.repo
            if mine is not None and (mine.id == theirs.id or repo.descendant_of(mine.id, theirs.id)):
                final = mine  # theirs is in ours already
            elif mine is None or repo.descendant_of(theirs.id, mine.id):
                result.status, final = "fast-forward", theirs
                empty = State({}, {}, {})
                mine_state = self.history.read_state(mine) if mine is not None else empty
                result.plan = merge_states(mine_state, mine_state, self.history.read_state(theirs), base_id=result.ours,
                                           ours_id=result.ours or "", theirs_id=str(theirs.id))
            else:
                base_oid = repo.merge_base(mine.id, theirs.id)
                result.base = None if base_oid is None else str(base_oid)
                base = None if base_oid is None else self.history.read_state(repo[base_oid])
                result.plan = merge_states(base, self.history.read_state(mine), self.history.read_state(theirs),
                                           base_id=result.base, ours_id=str(mine.id), theirs_id=str(theirs.id))
                result.status, final = ("conflicts" if result.plan.conflicts else "merged"), None
            values: dict[str, Any] = {}
            fingerprints: dict[Any, list[str]] = {}
            if namespace is not None and result.plan is not None:
                values, fingerprints = self._merge_values(result, namespace, changed, trust=trust, safe=safe)
            if result.status == "conflicts":
                assert mine is not None
                self._save_merge(MergeInProgress(ref, str(mine.id), str(theirs.id), result.base, label,
                                                 message or _merge_message(label, ref)))
            elif final is None:  # a merge commit, on whichever of the two ``ref`` names now
                result.info = self._write_merge(result.plan, ref, tip, message or _merge_message(label, ref))
            else:
                if tip is None or tip.id != final.id:
                    self.history.move_ref(ref, final, expect=tip)
                result.info = self.history.info(final, self.history.refs_by_commit())
            if namespace is not None and result.plan is not None:
                self._put_merged(result, namespace, values, fingerprints)
        return result

    def _merge_values(self, result: MergeResult, namespace: MutableMapping[str, Any], changed: set[str] | None, *,
                      trust: bool, safe: bool) -> tuple[dict[str, Any], dict[Any, list[str]]]:
        """Check that the namespace loses nothing, and rebuild the values the merge takes from theirs
        (nothing in the namespace changes yet)."""
        plan = result.plan
        assert plan is not None
        ours = self.history.read_state(self.history.resolve(plan.ours)).variables if plan.ours else {}
        overwritten = [n for n in plan.from_theirs + plan.removed if changed is None or n in changed]
        now = self._live_records(namespace, overwritten)
        dirty = sorted(n for n in overwritten
                       if (n in namespace) != (n in ours) or (n in now and not now[n].same_content(ours.get(n))))
        if dirty:
            shown = ", ".join(dirty[:5]) + (" …" if len(dirty) > 5 else "")
            raise DirtyNamespace(f"uncommitted changes to {shown} would be overwritten by the merge: "
                                 "commit them first")
        if not plan.from_theirs:
            return {}, {}
        _trust.require(self, plan.theirs, trust=trust, safe=safe)
        self.blobs.focus = plan.theirs
        before = (self.store.stats.bytes_read, self.store.stats.blobs_read)
        fingerprints: dict[Any, list[str]] = {}
        with safe_loading(safe):
            values = restore({n: plan.variables[n] for n in plan.from_theirs}, plan.groups, self.blobs.get_many,
                             namespace, fingerprints)
        result.bytes_read = self.store.stats.bytes_read - before[0]
        result.blobs_read = self.store.stats.blobs_read - before[1]
        return values, fingerprints

    def _put_merged(self, result: MergeResult, namespace: MutableMapping[str, Any], values: dict[str, Any],
                    fingerprints: dict[Any, list[str]]) -> None:
        plan = result.plan
        assert plan is not None
        for n in plan.removed:
            if n in namespace:
                del namespace[n]
                result.removed.append(n)
        namespace.update(values)
        self.remember_restored(namespace, values, plan.state(), fingerprints)
        result.loaded = sorted(values)

    def _write_merge(self, plan: MergePlan, ref: str, tip: pygit2.Commit | None, message: str) -> CommitInfo:
        """The merge commit of a plan with no conflicts left: records only. Its first parent is the one
        ``ref`` names now (libgit2 moves the ref only if it still does)."""
        if tip is None or str(tip.id) not in (plan.ours, plan.theirs):
            raise TxgitError(f"{_ref_label(ref)} moved during the merge (now {'nothing' if tip is None else str(tip.id)[:8]}):"
                             " `txgit merge --abort` and merge again")
        other = plan.theirs if str(tip.id) == plan.ours else plan.ours
        origins: dict[str, Any] = {}
        for cid, names in ((plan.ours, set(plan.variables) - set(plan.from_theirs)), (plan.theirs, set(plan.from_theirs))):
            recorded = self.history.read_state(self.history.resolve(cid)).meta.get("origins")
            if isinstance(recorded, dict):
                origins.update({n: o for n, o in recorded.items() if n in names})
        meta = _state_meta(plan.variables, plan.groups, {
            "merge": {"base": plan.base, "ours": plan.ours, "theirs": plan.theirs, "from_theirs": plan.from_theirs,
                      "removed": plan.removed, "resolved": dict(sorted(plan.resolved.items()))},
            "origins": dict(sorted(origins.items())),
        })
        oid = self.history.write_state(plan.state(meta), message, ref=ref, parent=str(tip.id), merged=[other])
        _trust.note_derived(self, oid, [plan.ours, plan.theirs])
        return self.history.info(self.history.resolve(oid), self.history.refs_by_commit())

    # merges waiting for their conflicts: one file per ref, and refs that keep both sides reachable (gc)
    def _merge_file(self, ref: str) -> Path:
        return self.dir / "merges" / (urllib.parse.quote(ref, safe="") + ".json")

    @staticmethod
    def _merge_ref(ref: str, side: str) -> str:
        return f"refs/txgit/merge/{ref.removeprefix('refs/')}/{side}"

    def merge_in_progress(self, ref: str = "HEAD") -> MergeInProgress | None:
        """The merge into ``ref`` that waits for its conflicts to be resolved, if any."""
        if ref == "HEAD" and self.branch is not None:
            ref = f"refs/heads/{self.branch}"
        path = self._merge_file(ref)
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise TxgitError(f"{path} is unreadable ({e}): `txgit merge --abort`") from e
        return MergeInProgress.from_json(doc)

    def merge_done(self, merging: MergeInProgress, commit_id: str) -> None:
        """A session wrote the merge commit of ``merging`` itself: forget the merge in progress.
        Call under the lock."""
        _trust.note_derived(self, commit_id, [merging.ours, merging.theirs])
        self._clear_merge(merging.ref)

    def save_merge(self, merging: MergeInProgress) -> None:
        """Record a merge in progress (its resolutions so far). Call under the lock."""
        self._save_merge(merging)

    def _save_merge(self, merging: MergeInProgress) -> None:
        if merging.ref == "HEAD" and self.branch is not None:
            merging.ref = f"refs/heads/{self.branch}"
        path = self._merge_file(merging.ref)
        path.parent.mkdir(exist_ok=True)
        for side in ("ours", "theirs"):
            self.history.repo.references.create(self._merge_ref(merging.ref, side),
                                                pygit2.Oid(hex=getattr(merging, side)), force=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(merging.to_json(), indent=1, sort_keys=True))
        os.replace(tmp, path)

    def _clear_merge(self, ref: str) -> None:
        self._merge_file(ref).unlink(missing_ok=True)
        for side in ("ours", "theirs"):
            name = self._merge_ref(ref, side)
            if name in self.history.repo.references:
                self.history.repo.references.delete(name)

    def merge_plan(self, merging: MergeInProgress) -> MergePlan:
        """The plan of a merge in progress, with the resolutions recorded so far applied."""
        base = None if merging.base is None else self.state(merging.base)
        ours, theirs = self.state(merging.ours), self.state(merging.theirs)
        plan = merge_states(base, ours, theirs, base_id=merging.base, ours_id=merging.ours, theirs_id=merging.theirs)
        for name, side in merging.resolved.items():
            if side in (OURS, THEIRS) and any(name in c.names for c in plan.conflicts):
                plan.resolve(name, side, ours, theirs)
            elif side == KERNEL:
                plan.conflicts = [c for c in plan.conflicts if name not in c.names]
                plan.resolved[name] = KERNEL
        return plan

    def merge_resolve(self, name: str, side: str, namespace: MutableMapping[str, Any] | None = None, *,
                      ref: str = "HEAD", commit: bool = True, trust: bool = False, safe: bool = False) -> MergeResult:
        """Resolve the conflict that holds ``name`` with ``side``'s version ("ours" or "theirs") of its
        whole unit (aliases stay aliases). Given ``namespace``, the unit's values are loaded from that
        side where the namespace differs. Once no conflict is left and ``commit``, the merge commit is
        written (records only; a session that set variables itself commits them instead)."""
        if side not in (OURS, THEIRS):
            raise TxgitError(f"resolve with ours or theirs, not {side!r}")
        with self.lock():
            merging = self._require_merge(ref)
            plan = self.merge_plan(merging)
            ours, theirs = self.state(merging.ours), self.state(merging.theirs)
            conflict = plan.resolve(name, side, ours, theirs)
            result = MergeResult("conflicts", merging.ref, merging.ours, merging.theirs, merging.label,
                                 base=merging.base, plan=plan)
            if namespace is not None:
                chosen = ours if side == OURS else theirs
                names = [n for n in conflict.names if n in chosen.variables]
                now = self._live_records(namespace, names)
                load = [n for n in names if not chosen.variables[n].same_content(now.get(n))]
                if load:
                    if side == THEIRS:
                        _trust.require(self, merging.theirs, trust=trust, safe=safe)
                    fingerprints: dict[Any, list[str]] = {}
                    with safe_loading(safe):
                        values = restore({n: chosen.variables[n] for n in load}, chosen.groups, self.blobs.get_many,
                                         namespace, fingerprints)
                    namespace.update(values)
                    self.remember_restored(namespace, values, chosen, fingerprints)
                    result.loaded = sorted(values)
                for n in conflict.names:
                    if n not in chosen.variables and n in namespace:
                        del namespace[n]
                        result.removed.append(n)
            for n in conflict.names:
                merging.resolved[n] = side
            if plan.conflicts or not commit:
                self._save_merge(merging)
                return result
            return self._finish_merge(merging, plan, result)

    def _require_merge(self, ref: str) -> MergeInProgress:
        merging = self.merge_in_progress(ref)
        if merging is None:
            raise TxgitError(f"no merge in progress on {_ref_label(ref if ref != 'HEAD' else self._head_ref())}")
        return merging

    def _head_ref(self) -> str:
        return f"refs/heads/{self.branch}" if self.branch is not None else "HEAD"

    def _finish_merge(self, merging: MergeInProgress, plan: MergePlan, result: MergeResult) -> MergeResult:
        result.info = self._write_merge(plan, merging.ref, self.history.tip(merging.ref), merging.message)
        result.status = "merged"
        self._clear_merge(merging.ref)
        return result

    def merge_continue(self, *, ref: str = "HEAD") -> MergeResult:
        """Write the merge commit once every conflict is resolved (from the records alone)."""
        with self.lock():
            merging = self._require_merge(ref)
            plan = self.merge_plan(merging)
            if plan.conflicts:
                raise TxgitError(f"unresolved conflicts: {', '.join(c.label for c in plan.conflicts)} "
                                 "(`txgit merge --ours NAME` or `--theirs NAME`)")
            if any(side == KERNEL for side in merging.resolved.values()):
                raise TxgitError("conflicts were resolved in a kernel: commit from that kernel")
            result = MergeResult("conflicts", merging.ref, merging.ours, merging.theirs, merging.label,
                                 base=merging.base, plan=plan)
            return self._finish_merge(merging, plan, result)

    def merge_abort(self, namespace: MutableMapping[str, Any] | None = None, *, ref: str = "HEAD") -> MergeResult:
        """Give up a merge in progress: forget it and, given ``namespace``, put back the values the merge
        loaded or removed as ours has them (the ref never moved)."""
        with self.lock():
            merging = self._require_merge(ref)
            result = MergeResult("aborted", merging.ref, merging.ours, merging.theirs, merging.label,
                                 base=merging.base)
            if namespace is not None:
                ours, theirs = self.state(merging.ours), self.state(merging.theirs)
                # where the merge may have loaded or removed anything: names ours and theirs disagree on
                touched = {n for n in set(ours.variables) | set(theirs.variables)
                           if not _same_record(ours.variables.get(n), theirs.variables.get(n))}
                now = self._live_records(namespace, touched)
                load = sorted(n for n in touched if n in ours.variables and ours.variables[n].kind in (VALUE, MODULE)
                              and not ours.variables[n].same_content(now.get(n)))
                fingerprints: dict[Any, list[str]] = {}
                values = restore({n: ours.variables[n] for n in load}, ours.groups, self.blobs.get_many, namespace,
                                 fingerprints)
                for n in sorted(touched):
                    if n not in ours.variables and n in namespace:
                        del namespace[n]
                        result.removed.append(n)
                namespace.update(values)
                self.remember_restored(namespace, values, ours, fingerprints)
                result.loaded = sorted(values)
            self._clear_merge(merging.ref)
        return result

    # -- single variables ----------------------------------------------------------------
    def load(self, name: str, rev: str = "HEAD", *, namespace: dict[str, Any] | None = None,
             trust: bool = False, safe: bool = False) -> Any:
        """One variable's value at ``rev``, without a checkout.

        Functions defined in the session get ``namespace`` as their globals;
        by default, one from which the commit's other variables load on first use.
        ``trust``/``safe`` as for :meth:`checkout`; version differences from the commit's
        record are raised as :class:`txgit.environment.EnvironmentDrift` warnings.
        """
        commit = self.history.resolve(rev)
        state = self.history.read_state(commit)
        rec = state.variables.get(name)
        if rec is None:
            raise UnknownVariable(f"no variable {name!r} in {rev} ({str(commit.id)[:8]})")
        if rec.kind == UNPICKLABLE:
            raise UnknownVariable(f"{name!r} in {rev} could not be saved: {rec.reason}")
        _trust.require(self, str(commit.id), trust=trust, safe=safe)
        for line in environment.drift(state.meta):
            warnings.warn(f"{str(commit.id)[:8]}: {line}", environment.EnvironmentDrift, stacklevel=2)
        ns = namespace if namespace is not None else _CommitNamespace(self, state)
        self.blobs.focus = str(commit.id)
        with safe_loading(safe):
            return restore({name: rec}, state.groups, self.blobs.get_many, ns)[name]

    # -- refs ------------------------------------------------------------------------------
    def branches(self) -> dict[str, str]:
        """Branch name -> commit id."""
        return self.history.branches()

    def create_branch(self, name: str, rev: str = "HEAD", *, force: bool = False) -> CommitInfo:
        commit = self._resolve_for_ref(rev)
        with self.lock():
            self.history.create_branch(name, commit, force=force)
        return self.history.info(commit)

    def delete_branch(self, name: str) -> None:
        with self.lock():
            self.history.delete_branch(name)

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
    def fsck(self, *, repair: bool = False, stores: Iterable[ObjectStore] | None = None) -> FsckReport:
        """Check every commit reachable from a ref or reflog: records parse, blobs exist and verify.

        ``repair``: replace missing or corrupt blobs with verified copies from
        ``stores`` (default: this workspace's remote stores). See :mod:`txgit.integrity`.
        """
        from txgit.integrity import fsck

        return fsck(self, repair=repair, stores=stores)

    def gc(self, *, grace_seconds: float = GC_GRACE_SECONDS, reflog_days: float = 30.0,
           dry_run: bool = False, budget: int | str | None = None) -> GcReport:
        """Delete local blobs that no ref, HEAD or reflog entry reaches. See :mod:`txgit.integrity`.

        Reflog entries older than ``reflog_days`` are expired first; blobs
        younger than ``grace_seconds`` are kept. ``budget`` (bytes, or a size
        like ``"5GB"``): also drop the least valuable historical states until
        the local store fits; never what a ref or HEAD names (:mod:`txgit.budget`).
        """
        from txgit.integrity import gc

        size = None if budget is None else _budget.parse_size(budget)
        return gc(self, grace_seconds=grace_seconds, reflog_days=reflog_days, dry_run=dry_run, budget=size)

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

    def dropped(self) -> list[str]:
        """Commits whose state ``gc --budget`` dropped and that are not back in the local store."""
        return _budget.currently_dropped(self)

    def _resolve_for_ref(self, rev: str) -> pygit2.Commit:
        if rev == "HEAD" and self.history.head_commit() is None:
            raise EmptyHistory("no commits yet: commit a state first")
        return self.history.resolve(rev)

    # -- remotes (see txgit.remote) ------------------------------------------------------------
    def push(self, remote: str | None = None, branch: str | None = None, *, all_branches: bool = False,
             tags: bool = False, force: bool = False, progress: Progress | None = None,
             set_upstream: bool = False) -> PushResult:
        """Upload the blobs ``remote``'s storage lacks, then move its refs (see :meth:`Remotes.push`).
        ``set_upstream``: the pushed branches track their remote branch from now on (``push -u``)."""
        result = self.remotes.push(remote, [branch] if branch else None, all_branches=all_branches, tags=tags,
                                   force=force, progress=progress)
        if set_upstream:
            pushed = sorted(self.branches()) if all_branches else [branch or self.branch or ""]
            with self.lock():
                for b in pushed:
                    self.remotes.set_upstream(b, result.remote)
        return result

    def fetch(self, remote: str | None = None, *, eager: bool = False, progress: Progress | None = None) -> FetchResult:
        """Bring ``remote``'s branches over as ``<remote>/<branch>``; blobs on demand (now with ``eager``)."""
        return self.remotes.fetch(remote, eager=eager, progress=progress)

    def pull(self, remote: str | None = None, namespace: MutableMapping[str, Any] | None = None, *,
             branch: str | None = None, into: str | None = None, progress: Progress | None = None,
             trust: bool = False, safe: bool = False, ours: str | None = None,
             changed: set[str] | None = None) -> PullResult:
        """Fetch, then merge the remote branch into ``into`` (default: the current branch), as ``git pull``.

        ``remote``/``branch``: default the upstream ``into`` tracks, else origin and the same name.
        Ours contained in theirs is a fast-forward; divergent histories are merged variable by variable
        (:meth:`merge`; a conflict leaves a merge in progress). Given ``namespace`` (holding ``ours``,
        default the branch's tip), it follows: only what the merge takes from theirs is loaded.
        ``trust``/``safe`` as for :meth:`checkout` (a remote not trusted needs one to load its values).
        The branch tracks what it pulled from, unless it tracked something already."""
        into = into or self.branch
        if into is None:
            raise TxgitError("HEAD is detached: check out a branch to pull into")
        tracked = self.remotes.upstream(into)
        name = remote or (tracked[0] if tracked else self.remotes.default(into))
        their_branch = branch or (tracked[1] if tracked and tracked[0] == name else into)
        fetched = self.remotes.fetch(name, progress=progress)
        ref = f"refs/remotes/{name}/{their_branch}"
        if ref not in self.history.repo.references:
            raise RemoteError(f"remote {name!r} has no branch {their_branch!r}")
        old = self.history.tip(f"refs/heads/{into}")
        merged = self.merge(ref, namespace, ref=f"refs/heads/{into}", ours=ours, changed=changed,
                            label=f"{name}/{their_branch}", trust=trust, safe=safe)
        if tracked is None:
            with self.lock():
                self.remotes.set_upstream(into, name, their_branch)
        new = merged.info.id if merged.info is not None else (None if old is None else str(old.id))
        return PullResult(fetched, into, None if old is None else str(old.id), new, merged.status, merged)

    def fetch_blobs_from_remotes(self, names: list[str] | set[str], *, replace_local: bool = False) -> BlobRepair:
        """Fetch blobs by hash from any remote storage with a good copy (verified) into the local cache."""
        return self.remotes.fetch_blobs_from_remotes(names, replace_local=replace_local)

    @classmethod
    def clone(cls, url: str, path: str | os.PathLike[str] | None = None, *, storage: str | None = None,
              storage_options: Mapping[str, Any] | None = None, eager: bool = False,
              progress: Progress | None = None, trusted: bool | None = None) -> Workspace:
        """A new workspace with ``url``'s history (see :func:`txgit.remote.clone`; ``trusted``: see :mod:`txgit.trust`)."""
        from txgit.remote import clone

        return clone(url, path, storage=storage, storage_options=storage_options, eager=eager, progress=progress,
                     trusted=trusted)
