"""A live namespace under txgit: cell bookkeeping, commit, checkout, rollback.

One :class:`NamespaceSession` serves the IPython extension, ``txgit run`` and
plain library use. It tracks what each piece of code may have changed (see
:mod:`txgit.sessions.tracking`) so a commit re-serializes only that, records
the code it ran, and rolls a failed cell back to the last commit.
"""

from __future__ import annotations

import ast
import builtins
import functools
import json
import os
import re
import sys
import threading
import time
import types
from collections.abc import Callable, Collection, Iterable, Iterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from txgit.attached import process_start
from txgit.collector import collector_paused
from txgit.state import UNPICKLABLE, VALUE, MODULE, Fingerprints, VarRecord, is_variable_name, restore
from txgit.state import libstate
from txgit.state.summary import type_name
from txgit.state.snapshot import Snapshot, library_module_of, sharing_groups, walk_shared
from txgit.sessions import opslog
from txgit.sessions.operations import Operation, OperationWatch, content_origin, drew_from, output_origin
from txgit.sessions.detect import ReadValues, UnnamedChanges, used_packages
from txgit.sessions.tracking import CellChanges, CellTracker
from txgit.sessions.words import worded
from txgit.errors import (
    DirtyNamespace,
    MergeInProgress as MergeInProgressError,
    NothingToCommit,
    RestoreError,
    TxgitError,
    disk_full,
)
from txgit.gitwriter import GitWriter
from txgit.history import ORIG_HEAD, History, State
from txgit.trust import source_of
from txgit.remote import Progress, PushResult
from txgit.merge import KERNEL, Conflict, MergeInProgress, MergePlan
from txgit.merging import kernel_lives, nothing_to_continue
from txgit.workspace import (
    CheckoutResult,
    CommitResult,
    MergeResult,
    PreparedCommit,
    PullResult,
    StateDiff,
    StatusReport,
    Workspace,
    WorkspaceLock,
)

# `HEAD@{N}` / `@{N}` (and what follows, `@{1}~2`): in a session not on HEAD's branch, its own branch's reflog
_OWN_REFLOG = re.compile(r"(?:HEAD)?@\{(\d+)\}(.*)")


def _collector_paused(hook: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``hook`` with the cyclic garbage collector paused (:func:`txgit.collector.collector_paused`).
    Pickling a figure allocates an object per artist that lives until the pickle ends (the state dict
    ``__getstate__`` returns, held by the pickler's memo): the collector ran again and again inside the
    hook, full collections of the whole heap among them, over objects that are freed when it ends
    anyway. Nothing else is different once the hook returns."""

    @functools.wraps(hook)
    def paused(*args: Any, **kwargs: Any) -> Any:
        with collector_paused():
            return hook(*args, **kwargs)

    return paused


@dataclass
class CellRecord:
    """One piece of code run in the session, as a commit records it (``code/``)."""

    code: str
    execution_count: int | None
    seconds: float
    reads: list[str]
    writes: list[str]
    error: str | None = None
    opaque: str | None = None
    label: str | None = None  # e.g. "script.py:12"
    op: dict[str, Any] | None = None  # the cell as an operation of the experiment graph (Operation.to_json)


@dataclass
class RollbackResult:
    """What undoing a failed cell did."""

    restored: list[str] = field(default_factory=list)  # reloaded from the last commit
    removed: list[str] = field(default_factory=list)  # created by the cell, deleted again
    not_restored: dict[str, str] = field(default_factory=dict)  # name -> why

    @property
    def empty(self) -> bool:
        return not (self.restored or self.removed or self.not_restored)


@dataclass
class CellOutcome:
    """What :meth:`NamespaceSession.after_cell` did."""

    cell: CellRecord
    changes: CellChanges
    commit: CommitResult | None = None
    rollback: RollbackResult | None = None


def _first_line(code: str, limit: int = 60) -> str:
    for line in code.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return "(empty)"


class NamespaceSession:
    """A namespace (a kernel's ``user_ns``, a script's globals) committed to a workspace.

    ``hidden``: names that belong to the host (IPython's ``In``, ``Out``,
    ``_i3`` …), never committed, never removed by a checkout; ``always_hidden``:
    those of them that are the host's whatever they are bound to (``_i3``), so
    that a name is asked about once, not before and after every cell.
    """

    def __init__(self, workspace: Workspace, namespace: MutableMapping[str, Any], *, kind: str = "python",
                 hidden: Callable[[str], bool] | None = None,
                 always_hidden: Callable[[str], bool] | None = None,
                 hidden_names: Collection[str] | None = None) -> None:
        self.workspace = workspace
        self.namespace = namespace
        self.kind = kind
        self._always_hidden = always_hidden or (lambda name: False)
        # the only names, beyond always_hidden's, that ``hidden`` may say yes to (None: any name): the
        # others are not asked one by one in every hook (`from sympy import *` binds ~950 names)
        self._hidden_names = None if hidden_names is None else frozenset(hidden_names)
        host = hidden or (lambda name: False)
        if self._hidden_names is None:
            self.hidden = host
        else:
            among, always = self._hidden_names, self._always_hidden
            self.hidden = lambda name: (name in among or always(name)) and host(name)
        # every name seen in the namespace, and those never variables: not identifiers (or dunders),
        # and the host's (IPython adds _iN and _N each cell: a long session holds thousands)
        self._seen: set[Any] = set()
        self._not_names: set[Any] = set()
        self._host: set[str] = set()
        self.auto = True
        self.atomic = True
        self.pending: list[CellRecord] = []
        # the pending cells not settled (see _nothing_changed), in order: kept alongside, so that a quiet
        # cell does not scan every cell pending before it (a long run of them was quadratic)
        self._live: list[CellRecord] = []
        self.touched: set[str] | None = set()  # since the last commit; None = anything
        # names of ``touched`` that cells bound to new values without reaching the values they held at
        # the last commit: what shared objects with those old values kept them as they were
        self.detached: set[str] = set()
        # the running cell: names it binds but never reads, whose values no code it runs can reach
        self._rebinding: set[str] = set()
        # Variables that exist before we track anything may differ from HEAD: the first commit takes all.
        self.full_next = bool(self.variable_names()) or workspace.head() is None
        self._shared: dict[str, set[int]] = {}
        # The commit the namespace was last in step with (a commit or checkout of ours): not HEAD
        # at start, since a fresh kernel holds none of HEAD's state.
        self.base: str | None = None
        # The branch its commits go to (None: detached, at ``base``). Commits move that branch only
        # if it still names ``base``: a branch moved by anyone else is merged, never overwritten.
        self.branch: str | None = workspace.branch
        # detached where the folder's HEAD is another kernel's (a symbolic ref to its branch): the ref of
        # its own that its commits move instead (History.own_head); None: detached on the folder's HEAD
        self._own_head: str | None = None
        # told when the session's branch changes (the kernel record says which branch each kernel holds)
        self.on_move: Callable[[NamespaceSession], None] | None = None
        # held while the session takes a branch (checks that no other live session holds it, then lets
        # the checkout run and on_move say so): raises if another one holds it
        self.claim_branch: Callable[[str], AbstractContextManager[None]] | None = None
        self._told_moved: str | None = None  # the moved tip we last told the user about
        # the session's last commits are on no branch: their merge with its branch, which moved outside it,
        # failed (a storage down); the branch is merged again, never checked out over them
        self._unmerged = False
        self._held: str | None = None  # the ref that holds them meanwhile (History.hold_unmerged)
        # Variables of ``base`` the namespace never loaded (a fresh kernel on a branch with history): its
        # commits carry them over as they are, so that starting a kernel never deletes a branch's state.
        self.unloaded: set[str] = set()
        self._written: set[str] = set()  # names set or deleted here while fresh: those are not carried
        self._not_restored: dict[str, str] = {}  # name -> why: of the last checkout, carried as ``unloaded``
        self._tracker: CellTracker | None = None
        # fingerprints of values a library may change without the cell naming them (see detect.py)
        self.unnamed = UnnamedChanges()
        # tokens of the values the running cell may touch, taken before it: a value it left as it was
        # (an array it only read) is not serialized again to know (see detect.ReadValues)
        self.reads = ReadValues()
        # library settings in module state (matplotlib's rcParams): recorded with each commit, put back on
        # checkout; ``_libraries`` is what the last commit or checkout of ours recorded (None: none yet)
        self._library_state = libstate.LibraryState()
        self._libraries: dict[str, Any] | None = None
        # A session that never loaded the branch's library items (a fresh or restarted kernel) holds its
        # own process's generator positions and settings, which are no part of the state: its commits
        # carry the recorded ones of the items none of its cells changed, as they carry the variables it
        # never loaded. ``_own``: the items that are the process's (a generator a cell drew from or seeded,
        # one a merge set here); None once a checkout set them all. ``_own_settings``: the matplotlib
        # settings its cells changed, recorded over the branch's others (until ``_own`` has them all);
        # ``_settings_before``: the settings before the running cell. ``_carried``: the items recorded by
        # the commit it first builds on, read once (None: not read yet)
        self._own: set[str] | None = set()
        self._own_settings: set[str] = set()
        self._settings_before: dict[str, Any] = {}
        self._carried: dict[str, Any] | None = None
        # a merge stopped on conflicts set theirs' settings here at once (the kernel holds the partial
        # merge, as git's work tree does): ((ours, theirs), what those items were before, ``_own`` before),
        # for --abort
        self._before_merge: tuple[tuple[str | None, str], dict[str, Any], set[str] | None] | None = None
        # ours' values that cannot be saved (a generator) that the merge in progress replaced with theirs',
        # made by theirs' code: name -> (ours' object, theirs' as made here), for --abort to put ours' back
        self._replaced: dict[str, tuple[Any, Any]] = {}
        # what :meth:`_hold` last held for a merge: ((ours, theirs), name -> record, None: deleted)
        self._held_merge: tuple[tuple[str, str], dict[str, VarRecord | None]] | None = None
        # the "not committed: merge ... in progress" line last said after a cell: ((ours, theirs), the note)
        self._merge_said: tuple[tuple[str, str], str] | None = None
        self._started = 0.0
        # Auto-commits written by a background thread (see commit()); off unless the host turns it on.
        self.background = False
        self._writer: _Writer | None = None
        # runs the writers, one after the other: one thread for the session, not one per commit
        # (starting a thread costs the cell ~0.5 ms); an interpreter that exits normally lets it finish
        self._executor: ThreadPoolExecutor | None = None
        # the helper process that writes the background commits' git objects (see txgit.gitwriter)
        self._git: GitWriter | None = None
        self.last_commit: CommitResult | None = None
        # name -> (the code that last assigned it, the names that code read): kept with values that
        # cannot be pickled, so a checkout in a fresh kernel can make them again
        self._made_by: dict[str, tuple[str, list[str]]] = {}
        # names cells bound to another object since the last commit: a value that cannot be pickled, made
        # anew by other code, is a change though its record (its type) is the same (see _remade)
        self._rebound_since: set[str] = set()
        # The experiment graph (see txgit.sessions.operations): each cell is recorded as an operation,
        # and each variable has an origin, so that a later run of the same code on the same inputs
        # can be recognised (txgit.reuse).
        self.recording = True
        self.origins: dict[str, str] = {}
        # name -> the function or class it was bound to when last serialized, where that value pickles as
        # a reference to where it is defined (`from numpy import zeros`): its record cannot change while
        # the name holds the same object, so a cell that only calls it changed nothing (_settle_quiet_cell)
        self._by_reference: dict[str, Any] = {}
        self._watch = OperationWatch(workspace.root, private=[workspace.dir])
        self._op: Operation | None = None
        # set by txgit.reuse when a cell's results were loaded from an earlier commit instead of computed
        self._replayed: tuple[str, Operation] | None = None
        self._facts: _CellFacts | None = None  # of the last recorded cell, for its commit
        self._pending_content: dict[str, tuple[Any, ...]] = {}  # of the last commit prepared (see _finish_operations)
        # the last cell committed alone as an operation, for the reuse layer's early cutoff
        self.last_operation: CommittedOperation | None = None

    # -- names ---------------------------------------------------------------------
    def is_variable(self, name: str) -> bool:
        return is_variable_name(name) and not self.hidden(name)

    def _maybe_variables(self) -> set[str]:
        """The namespace's names less those that are never variables (names seen before are not asked again)."""
        keys = self.namespace.keys()
        new = keys - self._seen
        if new:
            self._seen |= new
            for n in new:
                if not is_variable_name(n):
                    self._not_names.add(n)
                elif self._always_hidden(n):
                    self._host.add(n)
        return keys - self._not_names - self._host

    def _hidden_among(self, maybe: set[str]) -> set[str]:
        asked = maybe if self._hidden_names is None else maybe & self._hidden_names
        return {n for n in asked if self.hidden(n)}

    def variable_names(self) -> set[str]:
        """The names a commit takes now. A hook builds this once and passes it on (with ~950 names, each
        build costs ~0.1-0.3 ms): the namespace does not change while a hook runs, but where it says so."""
        maybe = self._maybe_variables()
        hidden = self._hidden_among(maybe)
        return maybe - hidden if hidden else maybe

    @contextmanager
    def _without_hidden(self, live: set[str] | None = None) -> Iterator[None]:
        """Take the host's names out of the namespace while the workspace looks at it. ``live``: the
        variable names, if the caller has them (the rest of the namespace's names are not variables)."""
        if live is None:
            maybe = self._maybe_variables()  # first: it files names it has not seen yet under _host
            host = (self.namespace.keys() & self._host) | self._hidden_among(maybe)
        else:
            # the names live left out: the host's (filed), and the few others asked again (a name another
            # thread bound since live was built is asked, not taken for the host's)
            host = self.namespace.keys() - live - self._not_names
            host = (host & self._host) | {n for n in host - self._host if self.hidden(n)}
        held = {n: self.namespace.pop(n) for n in host}
        try:
            yield
        finally:
            for n, v in held.items():
                self.namespace.setdefault(n, v)

    @contextmanager
    def _learning(self) -> Iterator[None]:
        """A refusal that names values changed since ``base`` (:class:`DirtyNamespace`) tells the session
        what changed with no cell run (a thread, a widget's callback): they count as changed from now on
        (status lists them, the next commit takes them), as if a cell had set them."""
        try:
            yield
        except DirtyNamespace as e:
            if self.touched is not None:
                self.touched |= set(e.names)
            raise

    # -- cells ---------------------------------------------------------------------
    @_collector_paused
    def before_cell(self, code: str, *, source: str | None = None, tree: ast.Module | None = None) -> None:
        """Call just before ``code`` (plain Python) runs; ``source``: what the user typed, if different;
        ``tree``: ``ast.parse(code)``, if the caller has it."""
        self._tracker = CellTracker(self.namespace, code, self.is_variable, tree, variables=self.variable_names)
        self._library_state.mark()  # where the global generators are, for the rollback if the cell fails
        if self._own is not None and libstate.RCPARAMS not in self._own:
            self._settings_before = self._library_state.capture()  # (the same dict while none changes)
        self.unnamed.cell_starts()
        if self._tracker.names.opaque is None:
            touched = self._tracker.names.touched | self._tracker.reached
            packages = self._packages_used(touched)
            self._baseline_unnamed(touched, self._tracker.before, packages)
            self.reads.baseline(self.namespace, (n for n in touched if n in self._tracker.before))
            self._rebinding = self._out_of_reach(packages)
        else:
            self.reads.clear()
            self._rebinding = set()
        self._python = code
        self._code = code if source is None else source
        self._replayed = None
        self._op = None
        if self.recording:
            names = self._tracker.names
            self._op = self._watch.start(code, names, self._tracker.reached, self.origins,
                                         self._tracker.before.keys())  # the variables it just listed
            if names.opaque is not None:
                self._op.effects.append(f"may touch any name: {names.opaque}")
            elif names.magics:  # seen through for the commit, but a skipped `%matplotlib` would set nothing up
                magics = [f"%{m}" for m in names.magics if m != "!"]
                if magics:
                    self._op.effects.append("runs IPython magics: " + ", ".join(magics))
                if "!" in names.magics:  # what a command does to files or the world is not versioned
                    self._op.effects.append("runs shell commands")
            host = sorted(n for n in names.inputs if n in self.namespace and self.hidden(n))
            if host:  # e.g. IPython's `_` (the last output): not versioned, so not a known input
                self._op.effects.append(f"reads {', '.join(host)}, which txgit does not version")
        self._started = time.perf_counter()

    def _packages_used(self, names: Iterable[str]) -> set[str]:
        out: set[str] = set()
        for n in names:
            if n in self.namespace:
                out |= used_packages(self.namespace[n])
        return out

    def _baseline_unnamed(self, named: set[str], variables: dict[str, int], packages: set[str]) -> None:
        """Before a cell: fingerprint the values it may change without naming them, where no
        fingerprint of them is at hand (see :meth:`_detect_unnamed`). ``variables``: name -> id of every
        variable's value, taken just now; ``packages``: those the cell uses."""
        if packages:
            names = self.unnamed.candidates(self.namespace, variables.keys() - named, packages, variables)
            self.unnamed.baseline(self.namespace, sharing_groups(names, self._shared))

    def _out_of_reach(self, packages: set[str]) -> set[str]:
        """Before a cell: the names it binds without reading them (nor does session code it runs) whose
        values its library code (of ``packages``) cannot reach either (see
        :meth:`UnnamedChanges.out_of_reach`: a figure closed before the cell, as inline plotting closes
        them). Decided now, not after the cell from values held until then: `big = None` frees the old one."""
        names, before = self._tracker.names, self._tracker.before
        return {n for n in names.writes - names.inputs - self._tracker.reached
                if n in before and self.unnamed.out_of_reach(self.namespace[n], packages)}

    def _detached(self, changes: CellChanges) -> set[str]:
        """After a cell: the names it bound to new values that it could not reach the old ones of (see
        :meth:`_out_of_reach`). What shared objects with such an old value did not change with it."""
        rebinding, self._rebinding = self._rebinding, set()
        return set() if changes.hint is None else rebinding & changes.rebound

    def _detect_unnamed(self, changes: CellChanges, live: set[str], ids: dict[str, int] | None) -> None:
        """After a cell: add to its hint the values it did not name whose object graphs changed (a library
        changed them through its own state: ``plt.plot`` drawing into a variable's axes). Candidates are
        values of the packages the cell used; see :mod:`txgit.sessions.detect`."""
        if changes.hint is None:
            self.unnamed.clear()  # everything is serialized again: any fingerprint may be stale
            return
        hint = changes.hint
        packages = self._packages_used(hint)
        if packages:
            names = self.unnamed.candidates(self.namespace, live - hint, packages, ids)
            changes.unnamed = self.unnamed.changed(self.namespace, sharing_groups(names, self._shared))
            hint |= changes.unnamed
        self.unnamed.forget(hint - changes.unnamed)  # serialized again, or changed by name: stale
        self.unnamed.prune(self.namespace, ids)

    def replayed(self, commit: str, op: Operation) -> None:
        """The running cell's results were loaded from ``commit`` (the reuse layer) instead of computed:
        it is recorded as that operation, with the commit it came from in the next commit's meta."""
        self._replayed = (commit, op)

    def abandon_cell(self) -> None:
        """The code did not run (or its effects are thrown away): forget the cell."""
        self._tracker = None
        self._replayed = None
        self.reads.clear()
        if self._op is not None:
            self._watch.abandon()
            self._op = None
        self._rebinding = set()

    @_collector_paused
    def after_cell(self, *, error: BaseException | str | None = None, execution_count: int | None = None,
                   label: str | None = None, message: str | None = None, meta: dict[str, Any] | None = None,
                   result: dict[str, str] | None = None,
                   displays: list[dict[str, Any]] | None = None) -> CellOutcome | None:
        """Call just after the code ran: record it; roll back on error (atomic), else auto-commit.

        ``result``: the cell's value as display data (mime type -> text); ``displays``: what it passed
        to ``display()`` (``{"data", "metadata"}``, as IPython publishes them); both kept to replay them."""
        if self._tracker is None:
            return None
        seconds = time.perf_counter() - self._started
        tracker, self._tracker = self._tracker, None
        live = self.variable_names()  # once for the hook: the tracking, the unnamed changes and the commit
        changes = tracker.finish(live)
        self._detect_unnamed(changes, live, tracker.after)
        detached = self._detached(changes)
        # names the cell left as they were (same object, same token) are no change of its; taken now, so
        # that the values held for the tokens (a deleted array, say) are let go whatever happens next
        same = set() if changes.hint is None else self.reads.unchanged(self.namespace, changes.hint - changes.writes)
        self.reads.clear()
        op = self._watch.stop(seconds, result, displays) if self._op is not None else None
        self._op = None
        err = None if error is None else error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        cell = CellRecord(self._code, execution_count, round(seconds, 6), sorted(changes.reads),
                          sorted(changes.writes), err, changes.opaque, label)
        if op is not None and err is None:
            if self._replayed is not None:  # recorded as the operation it replayed (its cost, its output)
                commit, op = self._replayed
                cell.op = {**op.to_json(), "reused_from": commit}
            else:
                cell.op = op.to_json()
            self._facts = _CellFacts(changes.rebound, set(tracker.before))
        self._replayed = None
        outcome = CellOutcome(cell, changes)
        if err is not None and self.atomic and self._writer is not None:
            self.flush()  # the last commit may still be being written: it is what the cell rolls back to
        if err is not None and self.atomic and self.base is not None:
            outcome.rollback = self.rollback(changes.hint)
            return outcome
        if self._own is not None:
            self._note_own(tracker)
        self.pending.append(cell)
        self._live.append(cell)
        for name in changes.writes:
            self._made_by[name] = (self._python, sorted(changes.reads - {name}))
        self._rebound_since |= changes.rebound
        if self.base is None:
            self._written |= changes.writes
        self.unloaded -= changes.writes
        if changes.hint is None:
            self.touched = None
            self.detached = set()
        elif self.touched is not None:
            # (a name the cells since the last commit touched before may have changed its old value then)
            self.detached |= detached - self.touched
            # nor are functions it called that still pickle as the same reference (`shape(M)` after
            # `from numpy import *`), also when the cell changed something else and is committed
            same |= {n for n in changes.hint - changes.writes if n in self._by_reference
                     and self._by_reference[n] is self.namespace.get(n) and _pickled_by_reference(self._by_reference[n])}
            self.touched |= changes.hint - same
        if self.auto:
            if message is None:
                where = label or (f"[{execution_count}]" if execution_count is not None else "")
                message = f"cell {where}: {_first_line(self._code)}".replace("cell : ", "cell: ")
            outcome.commit = self._commit(message, meta, None, background=self.background, live=live)
        return outcome

    def _note_own(self, tracker: CellTracker) -> None:
        """After a cell, in a session that never loaded the branch's library items: the generators it
        drew from or seeded, and the settings it changed, are its own from now on (their commits record
        them as the process has them)."""
        own, names = self._own, tracker.names
        if own is None:
            return
        if not own.issuperset(libstate.GENERATORS):
            opaque = names.opaque is not None  # (exec, a star import: what it names is not known)
            named = names.reads | names.writes | names.attributes | tracker.reached
            for gen, new in self._library_state.moved().items():
                if opaque or drew_from(named, new=new, python_random=gen == libstate.PYTHON_RANDOM):
                    own.add(gen)
        if libstate.RCPARAMS not in own:
            self._own_settings |= libstate.changed_settings(self._settings_before, self._library_state.capture())

    # -- commit ----------------------------------------------------------------------
    def _hint(self, chained: bool = False) -> set[str] | None:
        """The names the next commit must serialize again, with anything sharing objects with them.

        ``chained``: the commit builds on ours still being written. A session that never committed
        nor checked out (``base`` None) compares everything."""
        self._walked: dict[str, set[int]] = {}
        if self.full_next or self.touched is None or (self.base is None and not chained):
            return None
        hint = set(self.touched)
        # kept for the snapshot, which would walk the same values again; one walk for all (see walk_shared)
        self._walked = walk_shared({n: self.namespace[n] for n in sorted(hint) if n in self.namespace}, self.namespace)
        ids: set[int] = set().union(*self._walked.values())
        # A new alias of an older variable (b = a) must be pickled with it.
        if ids:
            met = sorted(n for n, s in self._shared.items() if n not in hint and not s.isdisjoint(ids)
                         and n in self.namespace)
            if met:
                # The ids remembered since their commit may be stale: an object freed since (matplotlib
                # replaces a figure's caches when it draws it) whose address a new object took. Walked
                # again, in one walk that goes on from the new values' (the snapshot would walk them
                # anyway, and now does not); only a real overlap counts. A value whose walk stopped at
                # objects another one reached first reaches what that one reaches: real if it is.
                again = walk_shared({n: self.namespace[n] for n in met}, self.namespace, self._walked)
                real = {n for n in met if not again[n].isdisjoint(ids)}
                while True:
                    reached = set().union(*(again[n] for n in real))
                    more = {n for n in met if n not in real and not again[n].isdisjoint(reached)}
                    if not more:
                        break
                    real |= more
                for n in met:
                    if n in real:
                        hint.add(n)
                        self._walked[n] = again[n]
                    elif all(again[n].isdisjoint(again[m]) for m in met if m != n):
                        self._shared[n] = again[n]  # its whole walk: it met nothing another value reached
        return hint

    def commit(self, message: str = "", *, meta: dict[str, Any] | None = None,
               files: dict[str, bytes] | None = None, allow_empty: bool = False) -> CommitResult:
        """Commit the namespace; only what changed since the last commit is serialized again.

        Nothing changed: :class:`NothingToCommit`, unless ``allow_empty``. During a merge, this is
        the merge commit, once every conflict is resolved (:class:`MergeInProgress` otherwise)."""
        incremental = self.touched is not None and not self.full_next and self.base is not None
        result = self._commit(message, meta, files, background=False, allow_empty=allow_empty, explicit=True)
        if result is None and incremental and self.merging() is None:
            # nothing the cells named changed: compare every value before saying the namespace equals the
            # commit (a thread, a widget's callback, an asyncio task may have changed one between cells)
            self.full_next = True
            result = self._commit(message, meta, files, background=False, allow_empty=allow_empty, explicit=True)
        if result is None:
            head = self.base[:8] if self.base else "the branch"
            how = "--allow-empty" if self.kind == "ipython" else "allow_empty=True"  # the magic's or the API's
            raise NothingToCommit(f"nothing to commit: the namespace equals {head} ({how} commits anyway)")
        return result

    def set_auto(self, on: bool) -> CommitResult | None:
        """Turn auto-commit on or off. Turned on after a time off, what the cells run meanwhile changed is
        committed at once, under a message that says so (``changes made with auto-commit off (cells
        [4]-[7])``), not with whatever cell runs next; returns that commit (None: nothing to commit, or a
        merge waits for its conflicts: its commit comes when they are resolved)."""
        was, self.auto = self.auto, on
        if not on or was:
            return None
        self.flush()
        if self.clean or self.merging() is not None:
            return None
        counts = [c.execution_count for c in self.pending if c.execution_count is not None]
        labels = [c.label for c in self.pending if c.label]
        if counts:
            which = f"cell [{counts[0]}]" if len(counts) == 1 else f"cells [{counts[0]}]-[{counts[-1]}]"
        elif labels:
            which = labels[0] if len(labels) == 1 else f"{labels[0]} to {labels[-1]}"
        else:
            which = ""
        try:
            return self.commit("changes made with auto-commit off" + (f" ({which})" if which else ""))
        except NothingToCommit:
            return None

    # -- where the session is --------------------------------------------------------
    @property
    def ref(self) -> str:
        """The ref its commits move: its branch, or HEAD when detached (its own, when the folder's is
        another kernel's)."""
        if self.branch is not None:
            return f"refs/heads/{self.branch}"
        return self._own_head or "HEAD"

    @property
    def own_head(self) -> str | None:
        """The ref of its own its commits move while detached where the folder's HEAD is another kernel's."""
        return self._own_head

    def tip(self) -> str | None:
        """The commit the session's branch (or HEAD) names now."""
        return self.workspace.history.tip_id(self.ref)

    def _branch_back(self) -> str | None:
        """The session's branch was deleted outside it (raw git, the Python API: `txgit branch -d` refuses):
        make it again where the session is, so that its next commit is on a branch, not left for a gc
        (under the lock the caller holds). Returns that commit, or None when the branch is there."""
        if self.branch is None or self.base is None or self.tip() is not None:
            return None
        history = self.workspace.history
        history.create_branch(self.branch, history.resolve(self.base))
        print(f"txgit: branch '{self.branch}' was deleted outside this session: made it again at "
              f"{self.base[:8]}, where this session is", file=sys.stderr)
        return self.base

    def holds_head(self) -> bool:
        """Whether the repository's HEAD is where this session is (a terminal's HEAD follows it)."""
        if self.branch is not None:
            return self.workspace.branch == self.branch
        if self.workspace.branch is not None or self._own_head is not None:
            return False
        head = self.workspace.history.head_commit()
        return self.base is None or (head is not None and str(head.id) == self.base)

    def merging(self) -> MergeInProgress | None:
        """The merge into this session's branch that waits for its conflicts, if any."""
        return self.workspace.merge_in_progress(self.ref)

    def merge_conflicts(self) -> tuple[MergeInProgress, list[Conflict]] | None:
        """The merge into this session's branch that waits, with the conflicts it has left, if any;
        :func:`conflict_note` says them and what to type."""
        merging = self.merging()
        if merging is None:
            return None
        return merging, self.workspace.merge_plan(merging).conflicts

    def merge_note(self, merging: MergeInProgress, conflicts: list[Conflict]) -> tuple[str, list[str]]:
        """What a merge that waits says here: its conflicts left and what to type (:func:`conflict_note`; ""
        with none left), and one line per gone kernel whose values wait for ``merge --continue``."""
        note = conflict_note(conflicts, self.branch or "HEAD", self._verb) if conflicts else ""
        return note, [h.describe(self._verb) for h in self.workspace.merge_held(merging)]

    @property
    def _verb(self) -> str:
        """How the user types txgit's verbs where this session runs."""
        return "%txgit" if self.kind == "ipython" else "txgit"

    def _moved(self) -> None:
        if self.on_move is not None:
            self.on_move(self)

    @property
    def clean(self) -> bool:
        """Nothing changed since ``base`` (cells that changed no variable do not count)."""
        return self.touched == set() and not self.full_next and self.base is not None

    def flush(self) -> CommitResult | None:
        """Wait for the auto-commit being written in the background, if any; returns it (None: none,
        or it failed, which is reported on stderr and its cells go into the next commit)."""
        writer, self._writer = self._writer, None
        if writer is None:
            return None
        writer.join()
        if writer.result is not None:
            self.base = writer.result.info.id
            self.last_commit = writer.result
        if writer.error is not None:
            full = disk_full(writer.error, "auto-commit failed", self.workspace.dir,
                             outcome="what the cells set stays in memory", retry="the next commit takes it")
            print(f"txgit: {full or f'auto-commit failed: {writer.error}'}", file=sys.stderr)
            self.pending[:0] = writer.cells
            self._relist_live()
            self.full_next = True  # what it serialized is not in history: serialize everything next time
            return None
        return writer.result

    def _commit(self, message: str, meta: dict[str, Any] | None, files: dict[str, bytes] | None, *,
                background: bool, allow_empty: bool = False, explicit: bool = False,
                live: set[str] | None = None) -> CommitResult | None:
        """Serialize now; write now, or (``background``) in a thread while the next cell runs.

        The workspace lock is taken before serializing and released only once
        the commit is written, by whichever thread writes it: no other writer
        (process or session) can move the branch in between, and anyone who takes
        the lock (``Workspace.settle``, every txgit command that writes) sees
        the commit. The next commit, checkout, rollback, status and magic wait
        for it first (:meth:`flush`). Returns None when nothing changed: no commit
        (the cells go into the next one) unless ``allow_empty``.

        A branch that moved since ``base`` (a pull, a commit from elsewhere) is not
        overwritten: the session's changes are committed on ``base`` and merged with it
        (:meth:`_commit_diverged`); during a merge with conflicts the commit is the merge
        commit, once they are resolved (:meth:`_commit_merge`). ``live``: the variable names, if the
        caller has them (the hook that commits: the namespace has not changed since).
        """
        if not explicit and not allow_empty and files is None and self._settle_quiet_cell(message, meta, live):
            return None
        # A background commit still being written: build on it (the writer keeps the lock and
        # writes this one next) rather than wait for it while the user waits for the cell.
        writer = self._writer if background and self._writer is not None and self._writer.extend() else None
        if writer is None:
            self.flush()
        lock = None
        try:
            if writer is None:  # a background writer clears stale git locks itself, before it writes
                lock = self.workspace.hold_lock(clear_stale=not background)
                merging = self.merging()
                tip = self._branch_back() or self.tip()
                if merging is not None or (self.base is not None and tip != self.base):
                    lock.release()
                    lock = None
                    if merging is not None:
                        return self._commit_merge(merging, message, meta, files, explicit=explicit)
                    return self._commit_diverged(message, meta, files, allow_empty=allow_empty)
            names = self._hint(chained=writer is not None)
            meta_doc = self._meta(meta)
            with self._without_hidden(live):
                prepared = self.workspace.prepare_commit(self.namespace, message, names=names, files=files,
                                                         meta=meta_doc, defer=background, variables=live,
                                                         detached=self.detached,
                                                         base=writer.tip if writer is not None else None,
                                                         known_shared=self._walked, ref=self.ref,
                                                         parent=self.base if self.base is not None else "HEAD")
            self._carry(prepared, fresh=self.base is None and writer is None)
            libraries = meta_doc.get("libraries", {})
            # a cell that only changed a setting (`plt.style.use(...)`) changed the state: committed. Not
            # before this session committed or checked out one: a fresh kernel's own settings are not
            # a change to the branch's (as its variables not loaded yet are not deletions)
            settings_changed = self._libraries is not None and libraries != self._libraries
            if not allow_empty and _unchanged(prepared) and not settings_changed and not self._remade(prepared):
                self._nothing_changed(prepared, exact=names is not None, writer=writer, variables=live)
                if writer is not None:
                    writer.submit(None)
                elif lock is not None:
                    lock.release()
                return None
            if background:
                prepared.own_chunks()  # the next cell may mutate what the chunks were borrowed from
            self._record_cells(prepared, names, writer is not None)
            self._libraries = libraries
        except BaseException:
            if writer is not None:
                writer.submit(None)
            elif lock is not None:
                lock.release()
            raise
        cells = self._committed(prepared, names, live)
        if writer is not None:
            writer.submit((prepared, cells))
            return None
        if background:
            executor = self.start_writer()
            self._writer = _Writer(self.workspace, prepared, lock, cells, executor, self._git)
            return None
        try:
            return self._finish_write(prepared, cells)
        finally:
            lock.release()

    def _settle_quiet_cell(self, message: str, meta: dict[str, Any] | None, live: set[str] | None = None) -> bool:
        """Settle an auto-commit that has nothing to commit without preparing one: no lock, no
        snapshot, no walk. Most cells of a notebook change no variable (``np.zeros(3)``, ``df.head()``,
        a plot of values already committed); their fixed cost is this check. True: settled as
        :meth:`_nothing_changed` settles it; False: the caller commits as usual.

        Nothing to commit means: the names touched since the commit the session is in step with are
        modules still bound to the same module (``np`` in ``np.zeros(3)``: its record is its name;
        any other value is serialized again to know), no variable appeared or vanished outside the
        cells' tracking, no library setting changed, no merge waits and the branch did not move
        (those take the usual path, which handles them)."""
        if self.touched is None or self.full_next:
            return False
        writer = self._writer
        if writer is not None and not writer.extend():  # written (or failed): in step with its commit
            self.flush()
            writer = None
        try:
            if self.touched is None or self.full_next or (self.base is None and writer is None):
                return False
            if writer is not None:
                head = writer.tip.state()  # the state being written: what this cell saw
                parent = None
            else:
                # (the ref's id alone, and the state read by id: its commit object is not read again)
                if self.workspace.history.tip_id(self.ref) != self.base or self.merging() is not None:
                    return False
                head = self.workspace.history.read_state(self.base)
                parent = self.base
            for name in self.touched:
                value, rec = self.namespace.get(name), head.variables.get(name)
                if rec is None:
                    return False
                if not (isinstance(value, types.ModuleType) and rec.kind == MODULE and rec.module == value.__name__
                        or name in self._by_reference and self._by_reference[name] is value
                        and _pickled_by_reference(value)):  # (still named by its module: still a reference)
                    return False
            if live is None:
                live = self.variable_names()
            unloaded = {n for n in self.unloaded if n in head.variables and n not in self.namespace}
            if live | unloaded != head.variables.keys():
                return False
            meta_doc = self._meta(meta)
            if self._libraries is not None and meta_doc.get("libraries", {}) != self._libraries:
                return False
            self.unloaded = unloaded
            prepared = PreparedCommit(Snapshot({}, {}, {}), head, dict(head.variables), set(), message, {},
                                      meta_doc, 0.0, chained=writer is not None, ref=self.ref, parent=parent)
            self._nothing_changed(prepared, exact=True, writer=writer, variables=live)
            return True
        finally:
            if writer is not None:
                writer.submit(None)

    def _carry(self, prepared: PreparedCommit, *, fresh: bool = False) -> None:
        """Carry the variables the namespace never loaded into the commit, as its parent has them.

        ``fresh``: the session's first commit (it never committed nor checked out): what its parent
        holds that the namespace lacks and no cell here set or deleted was never loaded."""
        head = prepared.head
        if head is None:
            self.unloaded = set()
            return
        if fresh:
            self.unloaded = set(head.variables) - self._written
        self.unloaded = {n for n in self.unloaded if n in head.variables and n not in prepared.snap.variables
                         and n not in self.namespace}
        prepared.kept.update({n: head.variables[n] for n in self.unloaded})

    def _meta(self, meta: dict[str, Any] | None) -> dict[str, Any]:
        meta_doc: dict[str, Any] = {"session": self.kind}
        if self.pending:
            last = self.pending[-1]
            meta_doc["cell"] = {"execution_count": last.execution_count, "seconds": last.seconds,
                                "reads": last.reads, "writes": last.writes, "label": last.label}
        libraries = self._settings()
        if libraries:
            meta_doc["libraries"] = libraries
        meta_doc.update(meta or {})
        return meta_doc

    def _record_cells(self, prepared: PreparedCommit, names: set[str] | None, chained: bool) -> None:
        """Put the pending cells, their operations and the recipes of unpicklable values in the commit.
        (A merge commit's caller sets ``_carried`` to the merged items first.)"""
        self._attach_recipes(prepared)
        pending = prepared.snap.pending_content()
        self._finish_operations(prepared, exact=names is not None,
                                same_pending=self._pending_content if chained else {}, pending=pending)
        self._pending_content = pending
        prepared.files.update(self._code_files())
        # the generators' positions, a file each: a commit whose generators did not move stores nothing
        # new (in meta.json, 6.7 kB of every commit's, which differs by its timings anyway)
        prepared.files.update({libstate.position_file(gen): text.encode()
                               for gen, text in self._positions(prepared).items()})

    def _positions(self, prepared: PreparedCommit) -> dict[str, str]:
        """The generator positions a commit of this session records: the process's, but in a session that
        never loaded the branch's, the recorded ones of those no cell here drew from (see ``_own``)."""
        now = self._library_state.positions()
        if self._own is None:
            return now
        own = self._own
        carried = {g: t for g, t in self._carried_items(prepared.parent).items()
                   if g in libstate.GENERATORS and g not in own}
        return {**now, **carried} if carried else now

    def _settings(self) -> dict[str, Any]:
        """The library settings a commit of this session records (its ``libraries`` meta): the process's,
        but in a session that never loaded the branch's, those of the commit it builds on with the
        settings its cells changed over them (see ``_own``). A branch that records none has none to keep."""
        now = self._library_state.capture()
        if self._own is None or libstate.RCPARAMS in self._own:
            return now
        carried = self._carried_items(self.base if self.base is not None else self.tip())
        return libstate.with_settings(carried, now, self._own_settings) if libstate.RCPARAMS in carried else now

    def _carried_items(self, parent: str | None) -> dict[str, Any]:
        """What the commit this session first builds on recorded of the library items, read once (a
        chained commit builds on ours being written, which carries the same)."""
        if self._carried is None:
            self._carried = {} if parent is None else self._recorded_items(parent)
        return self._carried

    def _committed(self, prepared: PreparedCommit, names: set[str] | None,
                   live: set[str] | None = None) -> list[CellRecord]:
        """The bookkeeping of a commit prepared: its cells are in it, nothing is touched any more."""
        self._remember_sharing(None if names is None else prepared.redo, prepared.snap.shared, live)
        cells = list(self.pending)
        self.pending.clear()
        self._live = []
        self.touched = set()
        self.detached = set()
        self.full_next = False
        return cells

    def _relist_live(self) -> None:
        """After cells were put back in front of the pending ones (a commit that failed)."""
        self._live = [c for c in self.pending if not (c.op or {}).get("settled")]

    def _nothing_changed(self, prepared: PreparedCommit, *, exact: bool, writer: _Writer | None = None,
                         variables: set[str] | None = None) -> None:
        """No variable changed: no commit. The cells stay pending (their code goes into the next commit).
        A cell that alone ran since the last commit is settled now as an operation: its outputs (names it
        bound, to values equal to what the state held) are in the commit before the one that records it."""
        live = list(self._live)
        self._finish_operations(prepared, exact=exact, pending=prepared.snap.pending_content(),
                                same_pending=self._pending_content if prepared.chained else {}, written=False)
        last = self.last_operation
        if len(live) == 1 and live[0].op is not None and last is not None and last.op is live[0].op:
            live[0].op["settled"] = True
            self._live.remove(live[0])
            live[0].op["summary"] = prepared.message.split("\n", 1)[0]  # the commit it did not make
            entry = _cell_doc(live[0])
            if prepared.parent is not None:
                try:
                    opslog.append(self.workspace.dir, prepared.parent, entry)
                except OSError:
                    pass  # a note for reuse (a full disk): never worth failing the cell, as in the writer
            elif writer is not None:  # its state is that of the commit being written: noted once written
                writer.after_tip(lambda commit: opslog.append(self.workspace.dir, commit, entry))
        self._remember_sharing(None if not exact else prepared.redo, prepared.snap.shared, variables)
        self.touched = set()
        self.detached = set()
        self.full_next = False
        if self.base is None and not prepared.chained:
            self.base = prepared.parent  # a fresh session whose namespace (and what it carries) is its branch's tip

    def _finish_write(self, prepared: PreparedCommit, cells: list[CellRecord]) -> CommitResult:
        """Write a prepared commit now, under the lock the caller holds."""
        try:
            result = self.workspace.finish_commit(prepared)
        except BaseException:
            self.pending[:0] = cells
            self._relist_live()
            self.full_next = True
            raise
        self.base = result.info.id
        self.last_commit = result
        return result

    def _commit_diverged(self, message: str, meta: dict[str, Any] | None, files: dict[str, bytes] | None, *,
                         allow_empty: bool) -> CommitResult | None:
        """The branch moved since ``base`` (someone else committed or pulled into it): commit the session's
        changes on ``base`` (a commit no ref names yet), then merge the branch into it, so that nothing
        either side did is undone. Nothing changed here: the session just loads the branch's state."""
        tip, base = self.tip(), self.base
        names = self._hint()
        lock = self.workspace.hold_lock()
        try:
            with self._without_hidden():
                prepared = self.workspace.prepare_commit(self.namespace, message, names=names, files=files,
                                                         meta=self._meta(meta), known_shared=self._walked,
                                                         ref=None, parent=base, detached=self.detached)
            self._carry(prepared)
            unchanged = not allow_empty and _unchanged(prepared)
            if unchanged:
                self._nothing_changed(prepared, exact=names is not None)
            else:
                self._record_cells(prepared, names, False)
                result = self._finish_write(prepared, self._committed(prepared, names))
        finally:
            lock.release()
        where = self.branch or "HEAD"
        if unchanged:
            self.follow()
            return None
        print(f"txgit: {where} moved to {(tip or 'nothing')[:8]} outside this session: committed this cell as "
              f"{result.info.short_id} on {(base or '')[:8]}, then merged {where} into it", file=sys.stderr)
        try:
            merged = self._merge(self.ref, label=f"{where} (moved outside this session)")
        except TxgitError:
            self._unmerged = True
            # a ref holds them meanwhile: gc keeps what a ref reaches, and the kernel may be closed first
            self._held = self.workspace.history.hold_unmerged(self.branch, result.info.id, self._held)
            print(f"txgit: the merge with {where} failed: this cell is committed as {result.info.short_id} on no "
                  f"branch; the next cell merges again (`{self._verb} branch NAME {result.info.short_id}` keeps it "
                  "meanwhile)", file=sys.stderr)
            raise
        self._merged_again()
        if merged.status == "conflicts":
            raise MergeInProgressError(conflict_note(merged.conflicts, where, self._verb))
        return self.last_commit if merged.info is None else _merge_commit_result(merged, result)

    def _commit_merge(self, merging: MergeInProgress, message: str, meta: dict[str, Any] | None,
                      files: dict[str, bytes] | None, *, explicit: bool,
                      take_held: bool = False) -> CommitResult | None:
        """During a merge with conflicts: conflicts whose variables the session set are resolved by its
        values; once none is left, the merge commit is written (both parents), with what changed here.
        While some are left, what changed here is held on a ref beside the merge's (:meth:`_hold`).
        ``take_held``: ``merge --continue``: what a kernel gone during the merge had set comes too."""
        plan = self.workspace.merge_plan(merging)
        if take_held and self.base is not None:
            # a kernel that loaded a state holds its own value of every name: a gone kernel's records
            # would be committed beside values this namespace does not hold (only a fresh one carries them)
            held = self.workspace.merge_held(merging)
            if held:  # (the oldest named)
                raise TxgitError(f"kernel {held[0].pid} closed during the merge had {held[0].what()}, and this "
                                 f"kernel holds values of its own for them: `{self._verb} merge --ours NAME` / "
                                 "`--theirs NAME` decides each, or a restarted kernel's `--continue` takes them")
        elif take_held and self.workspace.take_merge_held(merging, plan):
            # (a fresh session carries them; it holds none of the merge's values.) Their resolutions now
            # stand as this session's: its commit writes them
            taken = [n for n, side in plan.resolved.items() if side == KERNEL]
            if taken:
                merging.resolved.update(dict.fromkeys(taken, KERNEL))
                merging.kernel, merging.kernel_start = os.getpid(), process_start(os.getpid())
        names = self._hint()
        if names is not None:
            names |= {n for c in plan.conflicts for n in c.names}
        lock = self.workspace.hold_lock()
        try:
            tip = self.tip()
            if tip not in (merging.ours, merging.theirs):
                raise MergeInProgressError(f"{self.branch or 'HEAD'} moved during the merge: "
                                           f"`{self._verb} merge --abort` and merge again")
            other = merging.theirs if tip == merging.ours else merging.ours
            meta_doc = self._meta(meta)
            meta_doc["merge"] = {"base": merging.base, "ours": merging.ours, "theirs": merging.theirs,
                                 "resolved": merging.resolved}
            with self._without_hidden():
                prepared = self.workspace.prepare_commit(self.namespace, message or merging.message, names=names,
                                                         files=files, meta=meta_doc, known_shared=self._walked,
                                                         ref=self.ref, parent=tip, head_state=plan.state(),
                                                         merged=[other])
            # a fresh session (a kernel restarted during the merge) never loaded the merged state: carry
            # it, as its first ordinary commit would, rather than commit its few names as the whole state
            self._carry(prepared, fresh=self.base is None)
            now = prepared.state().variables
            for c in list(plan.conflicts):
                if any(not _known_same_or_absent(now.get(n), plan.variables.get(n)) for n in c.names):
                    plan.conflicts.remove(c)
                    merging.resolved.update(dict.fromkeys(c.names, KERNEL))
                    # its values stand for these until it commits (while that very process lives)
                    merging.kernel, merging.kernel_start = os.getpid(), process_start(os.getpid())
            meta_doc["merge"]["resolved"] = dict(sorted(merging.resolved.items()))
            if plan.conflicts:
                self.workspace.save_merge(merging)
                changed = self._hold(merging, prepared, plan)
                note = conflict_note(plan.conflicts, self.branch or "HEAD", self._verb)
                if explicit:
                    raise MergeInProgressError(note)
                said = ((merging.ours, merging.theirs), note)
                if not changed and self._merge_said == said:
                    return None  # a cell that changed nothing: the line was said (once per merge, not per cell)
                self._merge_said = said
                # (a restarted kernel's first cell: what the dead one set waits for --continue, not for it)
                held = self.merge_note(merging, [])[1]
                raise MergeInProgressError("not committed: " + note + "".join(f"\n  {h}" for h in held))
            # what theirs alone changed of the library settings and generators comes with the merge too,
            # unless this session set it when the conflict was reported: what the kernel did with them
            # since (a draw, a style) is its own, as a variable set during the conflict
            merged, taken, _ = self.workspace.merge_library_items(merging.base, merging.ours, merging.theirs)
            if not self._took_settings_of(merging.ours, merging.theirs):
                self._take_settings(taken)
            if self._own is not None:  # what the merge commit carries of the items no cell here changed
                self._carried = merged
            libraries = self._settings()
            if libraries:
                prepared.meta["libraries"] = libraries
            self._record_cells(prepared, names, False)
            result = self._finish_write(prepared, self._committed(prepared, names))
            self._libraries = libraries
            self.workspace.merge_done(merging, result.info.id)
            self._before_merge = self._held_merge = self._merge_said = None
            self._replaced = {}
        finally:
            lock.release()
        return result

    def _hold(self, merging: MergeInProgress, prepared: PreparedCommit, plan: MergePlan) -> bool:
        """Write what this session changed during the merge (against the partial merge it stands on) as a
        commit on no branch, held by a ref beside the merge's until the merge ends: the cells' values are
        in no commit until the merge commit, and the kernel may die first. Written again only when what
        changed does; nothing changed, nothing held. Under the lock the caller holds. Returns whether
        what changed differs from what the last cell held (this cell changed something)."""
        now = prepared.state().variables
        changed = {n: now.get(n) for n in set(now) | set(plan.variables)
                   if not _known_same_or_absent(now.get(n), plan.variables.get(n))}
        key = (merging.ours, merging.theirs)
        last = self._held_merge
        if last is not None and last[0] == key and last[1].keys() == changed.keys() and all(
                _known_same_or_absent(r, last[1][n]) for n, r in changed.items()):
            return False  # (a cell that only read: the same as held)
        if not changed and (last is None or last[0] != key):
            return False
        try:
            commit = None
            if changed:
                prepared.ref = None  # on no branch: the ref below holds it
                prepared.message = f"{merging.message}: what kernel {os.getpid()} set, held until the merge commit"
                # the process start tells this kernel from a later process given its PID (held_values)
                prepared.meta["held"] = {"kernel": os.getpid(), "names": sorted(changed),
                                         "process_start": process_start(os.getpid())}
                commit = self.workspace.finish_commit(prepared).info.id
            self.workspace.hold_merge_values(merging, commit)
            self._held_merge = (key, changed)
        except (TxgitError, OSError) as e:  # the cell's values stay in the kernel, as before
            print(f"txgit: what this cell set could not be held until the merge commit ({e})", file=sys.stderr)
        return True

    def start_writer(self) -> ThreadPoolExecutor:
        """Start the background writer's thread and, beside it, its git helper process (unless
        ``TXGIT_GIT_HELPER=0``): a host that commits in the background calls this when it attaches."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="txgit-writer")
            if os.environ.get("TXGIT_GIT_HELPER", "1") != "0":
                self._git = GitWriter(self.workspace.history.repo.path)
                # from the writer's thread: the helper is killed when the thread that started it ends
                self._executor.submit(self._git.start)
        return self._executor

    def close(self) -> None:
        """Wait for the background commits, then stop the git helper process (detach, exit)."""
        try:
            self.flush()
        finally:
            git, self._git = self._git, None
            if git is not None:
                git.close()

    def _code_files(self) -> dict[str, bytes]:
        """``code/``: each pending cell's source, and their records (``cells.json``)."""
        out: dict[str, bytes] = {}
        for cell in self.pending:
            stem = f"cell-{cell.execution_count}" if cell.execution_count is not None else "cell"
            if cell.label:
                stem = "block-" + cell.label.replace("/", "_").replace(":", "-")
            out[f"code/{stem}.py"] = cell.code.encode()
        if self.pending:
            # one record a line: json's C encoder (indent= takes the pure-Python one, ~10x slower)
            records = [_cell_doc(c) for c in self.pending]
            out["code/cells.json"] = ("[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n").encode()
        return out

    def _finish_operations(self, prepared: PreparedCommit, *, exact: bool,
                           same_pending: dict[str, tuple[Any, ...]] | None = None,
                           pending: dict[str, tuple[Any, ...]] | None = None, written: bool = True) -> None:
        """Fill in what the recorded cell made (its outputs) and move the variables' origins along.
        ``written``: ``prepared`` becomes a commit (False: nothing changed, it is thrown away, and its
        meta with it: the origins table is not built for it).

        A cell's outputs are known exactly when it is committed alone and the state it started
        from is known: HEAD (``exact``: the session is in step with it) or nothing (a fresh
        namespace). Otherwise its operation is kept as a record but is not reusable, and every
        value that changed gets its content as origin.

        ``pending`` / ``same_pending``: :meth:`Snapshot.pending_content` of this commit and of the
        one it is chained on (still being written). A large value that the cell only read is
        serialized again and not hashed yet on either side: equal pending content says it did not
        change, where the records alone would count it as an output (loaded again on reuse).
        """
        records = {**prepared.kept, **prepared.snap.variables}
        head = prepared.head.variables if prepared.head is not None else {}
        facts, self._facts = self._facts, None
        # cells that changed nothing were settled when they ran (see _nothing_changed): the one left made
        # this commit's changes alone
        live = self._live
        ops = [c.op for c in live if c.op is not None]
        origins = self.origins
        if len(live) == 1 and ops and facts is not None and (exact or not facts.before):
            op = ops[0]
            replayed = "reused_from" in op
            if not replayed:  # (a replayed one keeps the outputs it was recorded with)
                pending, same_pending = pending or {}, same_pending or {}
                mutated = {n for n in prepared.redo & (facts.before - facts.rebound)
                           if n in records and not _known_same(records[n], head.get(n))
                           and not (n in pending and pending[n] == same_pending.get(n))}
                op["outputs"] = sorted((facts.rebound & records.keys()) | mutated)
                op["removed"] = sorted(facts.rebound & (facts.before - records.keys()))
            for n in [n for n in op.get("outputs", []) if n in records]:
                value = self.namespace.get(n)
                origins[n] = (output_origin(op["full"], n, value) if not op.get("effects") and op.get("full")
                              else content_origin(records[n], value))
            if replayed:
                prepared.meta["reuse"] = {"from": op["reused_from"], "key": op["key"]}
            self.last_operation = CommittedOperation(op, records, prepared.message)
        else:
            self.last_operation = None
            why = "committed together with other cells" if len(live) > 1 else "state before it not known"
            for op in ops:
                op["effects"] = sorted(set(op.get("effects", [])) | {why})
            for n in prepared.redo & records.keys():
                if not _known_same(records[n], head.get(n)) or n not in origins:
                    origins[n] = content_origin(records[n], self.namespace.get(n))
        for n in prepared.redo:
            value = self.namespace.get(n)
            if n in records and records[n].kind == VALUE and _pickled_by_reference(value):
                self._by_reference[n] = value
            else:
                self._by_reference.pop(n, None)
        for n in self._by_reference.keys() - records.keys():  # (set differences in C: ~530 names a cell)
            del self._by_reference[n]
        for n in origins.keys() - records.keys():
            del origins[n]
        for n in records.keys() - origins.keys():
            origins[n] = content_origin(records[n], self.namespace.get(n))
        if written:  # a checkout elsewhere (another kernel, a fresh one) takes them up from here
            prepared.meta["origins"] = {n: o for n, o in sorted(origins.items()) if o.startswith("op:")}

    def _remade(self, prepared: PreparedCommit) -> bool:
        """Whether a cell made a value that cannot be pickled anew with other code than its record keeps
        (`gen = (i + 100 for i in rows)` after `gen = (i * i ...)`): its records compare by type alone, yet a
        checkout, a clone or a merge would make the old one from the old code."""
        head = prepared.head.variables if prepared.head is not None else {}
        for n in self._rebound_since & prepared.snap.variables.keys():
            rec, old, made = prepared.snap.variables[n], head.get(n), self._made_by.get(n)
            if rec.kind == UNPICKLABLE and old is not None and old.kind == UNPICKLABLE and made is not None:
                recipe = old.details.get("recipe")
                if not isinstance(recipe, dict) or recipe.get("code") != made[0]:
                    return True
        return False

    def _attach_recipes(self, prepared: PreparedCommit) -> None:
        """Record, with each value that cannot be pickled, the code that made it (``details.recipe``)."""
        self._rebound_since = set()  # in this commit, with the code that made them
        head = prepared.head.variables if prepared.head is not None else {}
        for name, rec in prepared.snap.variables.items():
            if rec.kind != UNPICKLABLE:
                continue
            made = self._made_by.get(name)
            if made is not None:
                rec.details = {**rec.details, "recipe": {"code": made[0], "reads": made[1]}}
            elif head.get(name) is not None and "recipe" in head[name].details:
                rec.details = {**rec.details, "recipe": head[name].details["recipe"]}

    def _recompute(self, result: CheckoutResult | MergeResult, state: State | None = None) -> None:
        """Make unpicklable values of the checked-out state (or ``state``: a merge's, whose values from
        theirs these are) again by re-running the code that made them, on fresh copies of its inputs (so
        its side effects on them are thrown away).

        Code that made several of them (``con``, ``gen`` and ``lock`` in one cell) runs once and gives
        them all: what it made itself is no input of it, even if it read it (``next(gen)``). Code that
        read a value made again this way (``pair = (con, 1)``) runs once that one is, with it."""
        kept = result.kept if isinstance(result, CheckoutResult) else []
        todo = [n for n in result.not_restored if n not in kept]
        if not todo:
            return
        if state is None:
            assert result.info is not None
            state = self.workspace.state(result.info.id)
        makes: dict[str, list[str]] = {}  # code -> the names to make again with it
        for name in todo:
            recipe = state.variables[name].details.get("recipe")
            if isinstance(recipe, dict) and isinstance(recipe.get("code"), str):
                makes.setdefault(recipe["code"], []).append(name)
        inputs: dict[str, set[str]] = {}
        for code, names in makes.items():
            reads = {r for n in names for r in state.variables[n].details["recipe"].get("reads", [])
                     if isinstance(r, str) and r in state.variables}
            # (a name the state lacks may be local to the code, e.g. a comprehension's variable:
            # if it is not, running the code says so)
            inputs[code] = reads - set(names)
        made = {n for n in kept if n in self.namespace}  # unpicklable values there are, live
        waiting = dict(makes)
        while waiting:
            ready = {}
            for code, names in waiting.items():
                lost = [r for r in inputs[code] if state.variables[r].kind not in (VALUE, MODULE) and r not in made]
                if not any(r in todo_names for r in lost for todo_names in waiting.values()):
                    ready[code] = (names, lost)
            if not ready:  # each waits for another (a cycle): none can be made
                ready = {code: (names, [r for r in inputs[code] if state.variables[r].kind not in (VALUE, MODULE)
                                        and r not in made]) for code, names in waiting.items()}
            for code, (names, lost) in ready.items():
                del waiting[code]
                if lost:
                    for name in names:
                        result.not_restored[name] += f"; not recomputed: its code needs {', '.join(sorted(lost))}"
                    continue
                made |= self._run_recipe(code, names, inputs[code], state, result)
        result.recomputed.sort()

    def _run_recipe(self, code: str, names: list[str], reads: set[str], state: State,
                    result: CheckoutResult | MergeResult) -> set[str]:
        """Run ``code`` once in a scratch namespace holding ``reads`` (fresh copies from ``state``; values
        that could not be saved, as the namespace has them now) and take ``names`` from it; returns the
        names made."""
        scratch: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        stored = sorted(r for r in reads if state.variables[r].kind in (VALUE, MODULE))
        scratch.update({r: self.namespace[r] for r in reads if r not in stored})
        try:
            scratch.update(restore({r: state.variables[r] for r in stored}, state.groups,
                                   self.workspace.blobs.get_many, scratch))
            exec(compile(code, f"<txgit: code that made {', '.join(sorted(names))}>", "exec"), scratch)
        except Exception as e:
            for name in names:
                result.not_restored[name] += f"; re-running its code failed: {type(e).__name__}: {e}"
            return set()
        done = set()
        for name in names:
            if name in scratch and type_name(scratch[name]) == state.variables[name].type:
                self.namespace[name] = scratch[name]
                del result.not_restored[name]
                result.recomputed.append(name)
                done.add(name)
            else:
                result.not_restored[name] += "; re-running its code did not make it again"
        return done

    def _remember_sharing(self, names: set[str] | None, known: dict[str, set[int]] | None = None,
                          live: set[str] | None = None) -> None:
        if live is None:
            live = self.variable_names()
        for n in list(self._shared):
            if n not in live:
                del self._shared[n]
        known = dict(known or {})
        wanted = live if names is None else names & live
        for n in wanted:  # a library's own object (recorded by name) shares nothing, as a snapshot takes it:
            if n not in known and library_module_of(n, self.namespace[n]) is not None:
                known[n] = set()  # walking it would touch the library's objects (and cost a walk)
        # the commit's snapshot already walked what it serialized; walking again costs as much
        walked = walk_shared({n: self.namespace[n] for n in sorted(wanted) if n not in known}, self.namespace,
                             {n: known[n] for n in wanted if n in known})
        for n in wanted:
            self._shared[n] = known[n] if n in known else walked[n]

    # -- checkout / status / rollback ------------------------------------------------------
    def rev_here(self, rev: str) -> str:
        """``HEAD`` as the user types it means where this session is (its branch may not be HEAD's):
        for its checkouts and resets, and the verbs of its magics. So do ``HEAD@{N}`` and ``@{N}``: its
        branch's reflog (where that branch was N moves ago), not the folder HEAD's; and ``ORIG_HEAD``: where
        the last merge, pull or reset of its branch moved it from, not another kernel's branch's."""
        if self.holds_head():
            return rev
        if rev.startswith(ORIG_HEAD) and self.branch is not None:
            return History.orig_head_ref(self.branch) + rev[len(ORIG_HEAD):]
        reflog = _OWN_REFLOG.fullmatch(rev)
        if reflog is not None and (self.branch or self._own_head) is not None:
            return f"{self.branch or self._own_head}@{{{reflog[1]}}}{reflog[2]}"
        if not rev.startswith("HEAD"):
            return rev
        if rev == "HEAD" and self.branch is not None:
            return self.branch
        # a kernel that loaded and committed nothing yet is where its branch is, not at the folder's HEAD
        base = self.base if self.base is not None else self.tip()
        return rev if base is None else base + rev[len("HEAD"):]

    def _no_merge(self, verb: str) -> None:
        merging = self.merging()
        if merging is not None:
            raise MergeInProgressError(f"cannot {verb} during the merge of {merging.label}: resolve its conflicts "
                                       f"or `{self._verb} merge --abort` first")

    def _no_merge_into(self, branch: str) -> None:
        """Refuse to go onto ``branch`` while a merge into it waits: this session would stand in that merge
        with the branch's own values, not the partial merge (theirs' values unloaded), its cells held as
        the merge's. The kernel that merges ends it, or, once that one is gone, a kernel started there."""
        merging = self.workspace.merge_in_progress(f"refs/heads/{branch}")
        if merging is None:
            return
        waits = f"cannot check out {branch}: the merge of {merging.label} into it waits"
        detached = f"`{self._verb} checkout {branch}~0` looks at it detached"
        if merging.kernel is not None and merging.kernel != os.getpid() and kernel_lives(merging):
            raise MergeInProgressError(f"{waits} for kernel {merging.kernel}, which is merging: resolve it "
                                       f"there, or {detached}")
        gone = f", and kernel {merging.kernel}, which was merging, closed" if merging.kernel is not None else ""
        raise MergeInProgressError(f"{waits}{gone}: a kernel started on {branch} ends it (`{self._verb} merge "
                                   f"--continue` or `--abort` there: restart that notebook's kernel), or {detached}")

    def checkout(self, rev: str, *, force: bool = False, new_branch: str | None = None, trust: bool = False,
                 safe: bool = False) -> CheckoutResult:
        """Make the namespace equal ``rev`` (loading only what differs) and go there: onto its branch when
        ``rev`` names one, detached otherwise. The repository's HEAD moves with it when it was where the
        session was (the terminal follows the notebook).

        An empty namespace (a fresh kernel) or one with nothing run since its
        last commit has nothing to lose, so it is not checked for changes.
        """
        self.flush()
        self._no_merge("check out")
        rev = self.rev_here(rev)
        remote_branch = self.workspace.remotes.to_track(rev) if new_branch is None else None
        if remote_branch is not None:
            new_branch, rev = rev, remote_branch  # `checkout exp`: exp from origin/exp, tracking it
        target_branch = new_branch or (rev if rev in self.workspace.branches() else None)
        if target_branch is not None and target_branch != self.branch and new_branch is None:
            self._no_merge_into(target_branch)
        claim = (self.claim_branch(target_branch) if target_branch is not None and target_branch != self.branch
                 and self.claim_branch is not None else nullcontext())
        with claim:  # until the kernel record names the branch: a kernel checking it out meanwhile waits
            return self._checkout(rev, force=force, new_branch=new_branch, trust=trust, safe=safe)

    def _checkout(self, rev: str, *, force: bool, new_branch: str | None, trust: bool,
                  safe: bool) -> CheckoutResult:
        # Nothing ran since our last commit or checkout: the namespace is that state (even if
        # another session moved HEAD meanwhile), so there is nothing to lose.
        clean = self._quiet_so_far
        fresh = not self.variable_names()
        holds = self.holds_head()
        if (new_branch is not None and not (force or clean or fresh) and self.base is not None
                and str(self.workspace.history.resolve(rev).id) == self.base):
            # `checkout -b NEW` where the namespace stands replaces nothing: its uncommitted values go
            # with it to the new branch, as git's work tree does, and so does its next commit
            result = self.workspace.checkout(rev, None, new_branch=new_branch, move_head=holds)
            result.kept = sorted(self.variable_names())
            self.branch = result.branch
            self._own_head_after(result, holds)
            self._moved()
            return result
        try:
            with self._without_hidden(), self._learning():
                # clean: the values the target replaces are still compared with base (see _learning)
                result = self.workspace.checkout(rev, self.namespace, force=force or fresh, new_branch=new_branch,
                                                 known=self.base if clean else None, trust=trust, safe=safe,
                                                 move_head=holds, against=self.base,
                                                 leaving=self.base if self.branch is None else None)
        except DirtyNamespace as e:
            raise self._in_cell(e) from None
        self._arrived(result)
        self._own_head_after(result, holds)
        if self.branch != result.branch:
            self.branch = result.branch
            self._moved()
        return result

    def _own_head_after(self, result: CheckoutResult, held: bool) -> None:
        """After a checkout: detached where the folder's HEAD did not follow (another kernel's), the session
        commits to its own ref, pointed here; back on a branch, that ref goes once it keeps nothing."""
        history = self.workspace.history
        if result.branch is None and not held:
            self._own_head = history.own_head(os.getpid(), result.info.id, f"checkout: moving to {result.info.id}")
            return
        own, self._own_head = self._own_head, None
        if own is not None:
            history.drop_own_head(own)

    def _arrived(self, result: CheckoutResult) -> None:
        """The namespace now equals the commit ``result`` names."""
        self.base = result.info.id
        self._unmerged = False
        self._held = None  # commits left on no branch stay under their ref: status names it
        self.unloaded = set()
        self.pending.clear()
        self._live = []
        self.touched = set()
        self.detached = set()
        self.full_next = False
        self._restore_libraries(result.info.id)
        self._own = None  # the process's settings and generators are the commit's now (below)
        self._own_settings = set()
        self._rebound_since = set()
        self._recompute(result)
        for problem in libstate.restore_generators(self._recorded_items(result.info.id)):  # after recipes,
            print(f"txgit: setting not restored: {problem}", file=sys.stderr)  # which may draw
        # neither restored nor made again: still part of the state (its next commit carries them as they
        # are), not removed by the user
        self._not_restored = {n: why for n, why in result.not_restored.items() if n not in self.namespace}
        self.unloaded = set(self._not_restored)
        self._remember_sharing(None)
        self._take_origins(result)

    def _restore_libraries(self, commit: str) -> None:
        """Make the process's library settings those ``commit`` recorded (before values are made again
        by their code, which may draw with them)."""
        recorded = (self.workspace.state(commit).meta or {}).get("libraries")
        for problem in libstate.restore(recorded):
            print(f"txgit: setting not restored: {problem}", file=sys.stderr)
        self._libraries = self._library_state.capture() if recorded is not None else None

    def _recorded_items(self, commit: str) -> dict[str, Any]:
        """The library settings and generator positions ``commit`` recorded (none: a commit made before
        they were, or no commit yet)."""
        try:
            return self.workspace.library_items(commit)
        except TxgitError:  # (an unborn branch's HEAD)
            return {}

    def reset(self, rev: str, *, force: bool = False, trust: bool = False, safe: bool = False) -> CheckoutResult:
        """Point the session's branch at ``rev`` and make the namespace equal it (``git reset --hard``);
        uncommitted changes refuse unless ``force``."""
        self.flush()
        rev = self.rev_here(rev)
        if self.base is not None and self.tip() != self.base and not force:
            raise TxgitError(f"{self.branch or 'HEAD'} moved outside this session: look first "
                             f"(`{self._verb} log`), then reset with --force")
        clean = self._quiet_so_far
        try:
            with self._without_hidden(), self._learning():
                result = self.workspace.reset(rev, self.namespace, ref=self.ref, force=force or not self.variable_names(),
                                              known=self.base if clean else None, against=self.base, trust=trust,
                                              safe=safe)
        except DirtyNamespace as e:
            raise self._in_cell(e) from None
        result.branch = self.branch
        self._arrived(result)
        return result

    def follow(self, *, trust: bool = False) -> CheckoutResult | None:
        """The session's branch moved outside it (a raw git command, another process): with nothing
        changed here, load what differs and be there; with changes, say so once (the next commit merges).
        Returns what was loaded, or None."""
        if self._writer is not None:
            if not self._writer.done:
                return None  # the branch is ours while our commit is written: nothing moved it
            self.flush()  # (takes the commit's id as base)
        if self.base is None:
            return None
        tip = self.tip()
        if tip is None or tip == self.base or self.merging() is not None:
            return None
        where = self.branch or "HEAD"
        if not self.clean:
            self._say_kept(tip, where)
            return None
        if self._unmerged:  # our commits are on no branch: checking the branch out would drop them
            self._merge_again(tip, where, trust=trust)
            return None
        try:
            with self._without_hidden(), self._learning():
                result = self.workspace.checkout(tip, self.namespace, known=self.base, against=self.base, trust=trust,
                                                 move_head=False)
        except DirtyNamespace:  # a value it would replace changed with no cell run: kept, as a cell's change
            self._say_kept(tip, where)  # (and changed from now on: the next commit merges it)
            return None
        except TxgitError as e:  # e.g. a state from a remote not trusted: said once, not before every cell
            if self._told_moved != tip:
                self._told_moved = tip
                print(f"txgit: {where} moved to {tip[:8]} outside this session and cannot be loaded here: "
                      f"{worded(str(e), self._verb)}",
                      file=sys.stderr)
            return None
        result.branch = self.branch
        self._arrived(result)
        loaded = f": loaded {', '.join(result.loaded)}" if result.loaded else ""
        removed = f"; removed {', '.join(result.removed)}" if result.removed else ""
        print(f"txgit: {where} moved to {tip[:8]} outside this session{loaded}{removed}", file=sys.stderr)
        return result

    def _say_kept(self, tip: str, where: str) -> None:
        if self._told_moved != tip:
            self._told_moved = tip
            print(f"txgit: {where} moved to {tip[:8]} outside this session; your changes are kept, and the "
                  "next commit merges them with it", file=sys.stderr)

    def unmerged(self) -> str | None:
        """The session's last commit when it is on no branch yet (its merge with the moved branch failed
        and is tried again at the next cell), else None."""
        return self.base if self._unmerged else None

    def held(self) -> str | None:
        """The ref that keeps the session's commits on no branch (see :meth:`unmerged`), else None."""
        return self._held if self._unmerged else None

    def _merged_again(self) -> None:
        self._unmerged = False
        # its ref goes once a branch holds them (not while a conflict of that merge waits: the kernel may die)
        self.workspace.history.drop_merged_holds()
        if self._held is not None and self._held not in self.workspace.history.repo.references:
            self._held = None

    def _merge_again(self, tip: str, where: str, *, trust: bool) -> None:
        """The merge of the moved branch into the session's commits on no branch, which failed at a commit:
        again (said once if it fails again; a conflict leaves a merge in progress, as then)."""
        try:
            merged = self._merge(self.ref, label=f"{where} (moved outside this session)", trust=trust)
        except TxgitError as e:
            if self._told_moved != tip:
                self._told_moved = tip
                print(f"txgit: {where} moved to {tip[:8]} outside this session and cannot be merged yet: "
                      f"{worded(str(e), self._verb)}",
                      file=sys.stderr)
            return
        self._merged_again()
        if merged.status == "conflicts":
            print(f"txgit: {conflict_note(merged.conflicts, where, self._verb)}", file=sys.stderr)
            return
        loaded = f"; loaded {', '.join(merged.loaded)}" if merged.loaded else ""
        print(f"txgit: {where} moved to {tip[:8]} outside this session: merged it with this session's commits"
              f"{loaded}", file=sys.stderr)

    def merge(self, rev: str, *, label: str | None = None, message: str | None = None, trust: bool = False,
              safe: bool = False) -> MergeResult:
        """Merge ``rev`` into the session's branch and its namespace (see :meth:`Workspace.merge`): what
        the merge takes from theirs is loaded; uncommitted changes it would overwrite refuse it. A session
        that never committed nor checked out holds nothing of the history: only its branch moves; unless the
        branch has no commit yet either (a new workspace's first pull): nothing is out of step, all is loaded."""
        self.flush()
        self._no_merge("merge")
        rev = self.rev_here(rev)
        if self.base is not None and self.tip() != self.base:
            if self.clean:
                self.follow(trust=trust)  # (finds, and then keeps, a value changed with no cell run)
            if not self.clean:
                raise TxgitError(f"{self.branch or 'HEAD'} moved outside this session and the session has "
                                 "uncommitted changes: commit them first (the commit merges them with it)")
        if self.base is None and self.tip() is not None:
            self._carried = None  # what it will build on is the merge's
            return self.workspace.merge(rev, None, ref=self.ref, label=label, message=message)
        return self._merge(rev, label=label, message=message, trust=trust, safe=safe)

    def push(self, remote: str | None = None, *, tags: bool = False, force: bool = False,
             progress: Progress | None = None, set_upstream: bool = False) -> PushResult:
        """``git push`` of the session's branch (:meth:`Workspace.push`): it carries commits only, so its
        ``uncommitted`` names the variables changed since the session's last commit, which it does not."""
        if self.branch is None:
            raise TxgitError("this session is detached: check out a branch to push")
        result = self.workspace.push(remote, self.branch, tags=tags, force=force, progress=progress,
                                     set_upstream=set_upstream)
        result.uncommitted = self.status().changed_names()
        return result

    def pull(self, remote: str | None = None, branch: str | None = None, *, progress: Progress | None = None,
             trust: bool = False, safe: bool = False) -> PullResult:
        """``git pull`` into the session's branch (:meth:`Workspace.pull`), merged by this session
        (:meth:`merge`): the namespace follows, and the session knows where it is after."""
        if self.branch is None:
            raise TxgitError("this session is detached: check out a branch to pull into")
        return self.workspace.pull(remote, branch=branch, into=self.branch, progress=progress,
                                   merge_step=lambda ref, label: self.merge(ref, label=label, trust=trust, safe=safe))

    @property
    def _quiet_so_far(self) -> bool:
        """:attr:`clean`, and the cell running now (a magic's) set nothing before it: `x = 99` then
        `%txgit reset ...` in one cell is a change the reset would drop, though no cell has ended yet."""
        return self.clean and (self._tracker is None or not (self._tracker.names.writes
                                                             or self._tracker.names.stored_into))

    def _in_cell(self, e: DirtyNamespace) -> DirtyNamespace:
        """``e``, saying that the running cell's changes are committed when it ends, where a cell runs."""
        if self._tracker is None:
            return e
        return DirtyNamespace(f"{e} (this cell's changes are committed when it ends: run it in the next cell)", e.names)

    def _changed(self) -> set[str] | None:
        """The names the namespace may have changed since its last commit (None: any): what the cells since
        set, and what the cell running now may have set before its magic (`x = x + 100` then `%txgit pull`
        in one cell: its names are the session's only once it ends, and the pull loaded theirs' x over it)."""
        if self.touched is None or self.full_next:
            return None
        changed = set(self.touched)
        if self._tracker is not None:
            changed |= self._tracker.names.touched | self._tracker.reached
        return changed

    def _merge(self, rev: str, *, label: str | None = None, message: str | None = None, trust: bool = False,
               safe: bool = False) -> MergeResult:
        self._held_merge = self._merge_said = None  # a new merge: nothing of it is held or said yet
        # changed=None: every value the merge would load over or delete is compared with ours, not only
        # what the cells named (a thread, a widget's callback may have changed one between cells, or the
        # cell running this merge before it); only those are pickled again, and the merge loads them anyway
        # but not one this kernel never loaded (its module is not here): its absence is no change of ours
        changed = None
        if self.unloaded and self.base is not None:
            changed = (self.variable_names() | set(self.workspace.state(self.base).variables)) - self.unloaded
        try:
            with self._without_hidden(), self._learning():
                result = self.workspace.merge(rev, self.namespace, ref=self.ref, ours=self.base, changed=changed,
                                              label=label, message=message, trust=trust, safe=safe)
        except DirtyNamespace as e:  # the running cell's own changes: committed when it ends
            raise self._in_cell(e) from None
        if result.info is not None:
            self.base = result.info.id
            self._carried = None  # read again from the merge, if it is still needed
        self.unloaded -= set(result.loaded) | set(result.plan.removed if result.plan else ())
        # theirs' generators: made by theirs' code (not under --safe, which runs none of theirs)
        if result.not_restored and result.plan is not None and not safe:
            self._recompute(result, result.plan.state())
            self.unloaded -= set(result.recomputed)
            for n in result.recomputed:
                self.origins[n] = content_origin(None)  # made again by its code: not provably the same value
        # theirs' values it could not load here: part of the state all the same, carried by the next commits
        self._not_restored.update(result.not_restored)
        self.unloaded |= set(result.not_restored)
        self._replaced = {}
        if result.status == "conflicts":
            self._note_replaced(result)
            self._before_merge = ((result.ours, result.theirs), self._library_items(result.settings),
                                  None if self._own is None else set(self._own))
        self._take_settings(result.settings)
        if result.status != "conflicts":
            result.loaded = [*result.loaded, *self._load_what_loads_now(trust=trust, safe=safe)]
        self._remember_sharing(set(result.loaded) | set(result.removed))
        self._merged_origins(result)
        return result

    def _load_what_loads_now(self, *, trust: bool, safe: bool) -> list[str]:
        """Values where the session stands that an earlier checkout or merge could not load here (their
        module was missing), loaded now if they load: a pull, even one that finds nothing new, is how a
        user who added the module gets them (their records are the branch's; nothing is re-serialized).
        Unchanged otherwise: a group is loaded only whole and only into names the namespace lacks."""
        todo = self.not_restored()
        if not todo or self.base is None or safe or (source_of(self.workspace, self.base) is not None and not trust):
            return []
        state = self.workspace.state(self.base)
        loaded: list[str] = []
        for name in sorted(todo):
            if name in loaded or name not in state.variables:
                continue
            try:
                values, fingerprints = self.restore_values(state, [name])
            except RestoreError as e:  # still not loadable here: the reason may have changed
                self._not_restored[name] = e.reason
                continue
            except TxgitError:  # its blobs cannot be read now (storage down): as it was, for a later pull
                continue
            if not set(values) <= set(todo):  # a name of its group the user set meanwhile stays his
                continue
            self.put_values(state, values, fingerprints)
            loaded += values
        self.unloaded -= set(loaded)
        for name in loaded:
            self._not_restored.pop(name, None)
        return sorted(loaded)

    def _library_items(self, items: Iterable[str]) -> dict[str, Any]:
        """This process's library settings and generator positions now, as a commit records them: those of
        ``items`` that it has."""
        now = {**self._library_state.capture(), **self._library_state.positions()}
        return {item: now[item] for item in items if item in now}

    def _took_settings_of(self, ours: str | None, theirs: str) -> bool:
        return self._before_merge is not None and self._before_merge[0] == (ours, theirs)

    def _take_settings(self, settings: dict[str, Any]) -> None:
        """Set in this process the library settings and generator positions a merge took from theirs
        (a fast-forward: all theirs changed), as it loads their variables: else the next commit would
        record ours' again over them."""
        if not settings:
            return
        generators = {g: t for g, t in settings.items() if g in libstate.GENERATORS}
        others = {k: v for k, v in settings.items() if k not in libstate.GENERATORS}
        if self._own is not None:  # these are in the process as the state records them now
            self._own |= settings.keys()
        for problem in libstate.restore(others) + libstate.restore_generators(generators):
            print(f"txgit: setting not restored: {problem}", file=sys.stderr)
        self._libraries = self._library_state.capture()

    def _merged_origins(self, result: MergeResult) -> None:
        """Values loaded from theirs have the origins theirs recorded (else their content)."""
        if not result.loaded and not result.removed:
            return
        recorded = self.workspace.state(result.theirs).meta.get("origins")
        recorded = recorded if isinstance(recorded, dict) else {}
        records = self.workspace.state(result.theirs).variables
        for n in result.removed:
            self.origins.pop(n, None)
        for n in result.loaded:
            o = recorded.get(n)
            self.origins[n] = o if isinstance(o, str) and o.startswith("op:") else content_origin(records.get(n),
                                                                                                  self.namespace.get(n))

    def merge_resolve(self, names: str | Iterable[str] | None, side: str, *, trust: bool = False,
                      safe: bool = False, force: bool = False) -> MergeResult:
        """Take ``side``'s version ("ours" or "theirs") of the conflicts that hold ``names`` (None: of
        every one left); once none is left, the one merge commit is written, with what else changed
        here meanwhile. Values of theirs set here and not committed refuse it, unless ``force``."""
        self.flush()
        with self._without_hidden():
            result = self.workspace.merge_resolve(names, side, self.namespace, ref=self.ref, commit=False,
                                                  trust=trust, safe=safe, force=force)
        if result.not_restored and not safe:  # theirs' generators taken: made by theirs' code
            self._recompute(result, self.workspace.state(result.theirs))
            for n in result.recomputed:
                self.origins[n] = content_origin(None)
        if result.not_restored:  # not made again: the merge's records keep them
            self._not_restored.update(result.not_restored)
            self.unloaded |= set(result.not_restored)
        self._note_replaced(result)
        if result.loaded or result.removed:
            self._merged_origins(result)
        self._remember_sharing(set(result.loaded) | set(result.removed))
        # the unit's values are now exactly a side's: not changes of the session's own
        if self.touched is not None:
            self.touched -= set(result.loaded) | set(result.removed)
            self.detached -= set(result.loaded) | set(result.removed)
        merging = self.merging()
        # (what a kernel gone during the merge set beside the conflicts waits for --continue, as in a terminal)
        if result.plan is not None and not result.plan.conflicts and merging is not None \
                and not self.workspace.merge_held(merging):
            commit = self._commit_merge(merging, "", None, None, explicit=True)
            assert commit is not None  # (explicit: a commit, or the conflicts left raise)
            result.status, result.info = "merged", commit.info
        return result

    def rename_branch(self, old: str, new: str, *, force: bool = False) -> dict[str, str]:
        """``git branch -m`` where this session runs (:meth:`Workspace.rename_branch`): when it is the session's
        own branch, the session commits to ``new`` from now on, and the ref that keeps its commits waiting for
        their merge (if any) is ``new``'s. Returns the held refs moved, old ref -> new ref."""
        self.flush()  # a commit being written moves ``old``: it is in before the name changes
        moved = self.workspace.rename_branch(old, new, force=force)
        if self.branch == old and new != old:
            self.branch = new
            if self._held is not None:
                self._held = moved.get(self._held, self._held)
            self._moved()  # a kernel's record says which branch it holds
        return moved

    def merge_continue(self) -> MergeResult:
        """``merge --continue`` beside this session: git's is the merge's commit, and here the session is the
        work tree, so it is this session's commit under the merge's message: conflicts whose variables it
        set are resolved by its values (what else it changed goes in too); any left refuse it, naming them."""
        self.flush()
        merging = self.merging()
        if merging is None:
            raise TxgitError(nothing_to_continue(self.workspace, self.ref))
        commit = self._commit_merge(merging, "", None, None, explicit=True, take_held=True)
        assert commit is not None  # (explicit: a commit, or the conflicts left raise)
        plan = self.workspace.merge_plan(merging)  # as written: its resolutions, the kernel's among them
        return MergeResult("merged", merging.ref, merging.ours, merging.theirs, merging.label, base=merging.base,
                           info=commit.info, plan=plan)

    def _note_replaced(self, result: MergeResult) -> None:
        """Keep ours' generators (open files...) that the merge in progress replaced, for --abort."""
        for n, ours in result.replaced.items():
            if n not in self._replaced:  # (the first is ours': a later resolution replaces theirs')
                self._replaced[n] = (ours, self.namespace.get(n))

    def _put_back_replaced(self, result: MergeResult) -> None:
        """--abort: ours' generators (open files...) back where the merge put theirs', which are still there
        (or were never made); one the namespace set since stays, as a stored value's would refuse the abort."""
        replaced, self._replaced = self._replaced, {}
        ours = self.workspace.state(result.ours).variables if result.ours else {}
        for n, (mine, made) in replaced.items():
            rec = ours.get(n)
            if rec is None or rec.kind != UNPICKLABLE or (n in self.namespace and self.namespace[n] is not made):
                continue
            self.namespace[n] = mine
            self._not_restored.pop(n, None)
            self.unloaded.discard(n)
            if n not in result.loaded:
                result.loaded.append(n)
        result.loaded.sort()

    def merge_abort(self, *, force: bool = False) -> MergeResult:
        """Give up the merge in progress: values it loaded or removed are put back as ours has them. Values
        of those set here during the merge refuse it, unless ``force``."""
        self.flush()
        with self._without_hidden():
            changed = self._changed()
            result = self.workspace.merge_abort(self.namespace, ref=self.ref, changed=changed, force=force)
        self._put_back_replaced(result)
        self._held_merge = self._merge_said = None
        self._remember_sharing(set(result.loaded) | set(result.removed))
        if self.touched is not None:
            self.touched -= set(result.loaded) | set(result.removed)
            self.detached -= set(result.loaded) | set(result.removed)
        self.unloaded -= set(result.loaded)  # ours' again, where the merge could not load theirs
        if self._took_settings_of(result.ours, result.theirs):  # what the merge set here, as it was before
            assert self._before_merge is not None
            result.settings = self._before_merge[1]
            self._take_settings(result.settings)
            if self._own is not None:  # a fresh process's own items put back are none of the state's
                self._own = self._before_merge[2]
        self._before_merge = None
        if result.ours is not None:
            if self.base is None:
                # a fresh session (a kernel restarted during the merge) now stands on ours, of which it
                # loaded only what the abort put back: the rest is not loaded, not deleted
                ours = self.workspace.state(result.ours).variables
                self.unloaded = {n for n in ours if n not in self.namespace} - self._written
            self.base = result.ours
            self._carried = None
        return result

    def _take_origins(self, result: CheckoutResult) -> None:
        """After a checkout the variables have the origins the commit recorded (else their content)."""
        state = self.workspace.state(result.info.id)
        recorded = state.meta.get("origins")
        recorded = recorded if isinstance(recorded, dict) else {}
        old, kept = self.origins, set(result.kept)
        self.origins = {}
        for n, rec in state.variables.items():
            if n not in self.namespace:
                continue
            o = recorded.get(n)
            if not isinstance(o, str) or not o.startswith("op:"):
                o = old.get(n) if n in kept and n in old else content_origin(rec, self.namespace[n])
            if n in result.recomputed:
                o = content_origin(None)  # made again by its code: not provably the same value
            self.origins[n] = o

    def not_restored(self) -> dict[str, str]:
        """Variables the last checkout could neither load nor make again (name -> why), that no cell set
        or deleted since: the next commit keeps them as they are."""
        return {n: why for n, why in self._not_restored.items() if n in self.unloaded}

    def _against(self) -> tuple[str | State | None, set[str] | None]:
        """What the namespace is compared with (its last commit, or the merge it is in), and the names
        that may differ from it: what the next commit would serialize again (None: everything)."""
        self.flush()
        merging = self.merging()
        against: str | State | None = self.base if self.base is not None else self.tip()
        names = self._hint()
        if merging is not None:
            plan = self.workspace.merge_plan(merging)
            against = plan.state()
            if names is not None:
                names |= {n for c in plan.conflicts for n in c.names}
        return against, names

    def live_records(self) -> dict[str, VarRecord]:
        """The namespace's records as a commit now would make them: only what may have changed is
        serialized again (the change detection auto-commit trusts), the rest is its last commit's."""
        return self._live_records(*self._against())

    def _live_records(self, against: str | State | None, names: set[str] | None) -> dict[str, VarRecord]:
        with self._without_hidden():
            if names is None or against is None:
                return self.workspace.live_records(self.namespace)
            since = against if isinstance(against, State) else \
                self.workspace.history.read_state(self.workspace.history.resolve(against), groups=False)
            return self.workspace.live_records_since(self.namespace, since.variables, names, self.detached)

    def not_loaded(self) -> list[str]:
        """The variables where the session stands (its last commit; a fresh session: its branch's tip) that
        the namespace does not hold and it did not delete: its commits carry them over as they are. Those
        it could not load are not among them (:meth:`not_restored` says why)."""
        at = self.base if self.base is not None else self.tip()
        if at is None:
            return []
        gone = set(self.workspace.state(at).variables) - set(self.namespace)
        unloaded = self.unloaded if self.base is not None else gone - self._written
        return sorted((unloaded & gone) - set(self.not_restored()))

    def status(self) -> StatusReport:
        """How the namespace differs from where the session is (its last commit, or the merge it is in)."""
        return self._looked()[1]

    def _looked(self) -> tuple[str | State | None, StatusReport, dict[str, VarRecord]]:
        """What :meth:`status` compares with, its report, and the namespace's records. When what the cells
        named changed nothing, every value is compared, as an explicit commit does (a thread, a widget's
        callback may have changed one between cells); what that finds counts as changed from now on."""
        against, names = self._against()
        live = self._live_records(against, names)
        report = self._status(against, live)
        if names is None or report.changed_names() or not isinstance(against, str):
            return against, report, live
        # every value that pickling again can tell changed or not (see Repository.repicklable)
        present = self.variable_names()
        live = self._live_records(against, self.workspace.repicklable(self.workspace.state(against), present, present))
        report = self._status(against, live)
        if report.changed_names() and self.touched is not None:
            self.touched |= set(report.added) | set(report.modified)
        return against, report, live

    def diff(self) -> StateDiff:
        """What :meth:`status` lists, with the records on both sides (``a``: where the session is), as
        :meth:`Workspace.diff` gives two commits' (``git diff`` with no revision: the uncommitted changes)."""
        against, report, live = self._looked()
        if isinstance(against, State):
            old = against.variables
        else:
            at = against if against is not None else report.head
            old = {} if at is None else \
                self.workspace.history.read_state(self.workspace.history.resolve(at), groups=False).variables
        out = StateDiff(report.head or "", "(namespace)")
        out.added = {n: live[n] for n in report.added}
        out.removed = {n: old[n] for n in report.removed}
        out.changed = {n: (old[n], live[n]) for n in report.modified}
        return out

    def _status(self, against: str | State | None, live: dict[str, VarRecord]) -> StatusReport:
        with self._without_hidden():
            report = self.workspace.status(self.namespace, against=against, live=live)
        report.branch = self.branch
        if self.base is not None or isinstance(against, str):  # a fresh kernel: its branch's tip, not HEAD's
            report.head = self.base if self.base is not None else against
        unloaded = self.unloaded if self.base is not None else set(report.removed) - self._written
        # (those it could not load are said with why: a checkout does not load them either)
        report.unloaded = sorted((unloaded - set(self.not_restored())) & set(report.removed))
        report.removed = [n for n in report.removed if n not in unloaded]
        return report

    def restore_values(self, state: State, names: Iterable[str]) -> tuple[dict[str, Any], dict[Any, list[str]]]:
        """Rebuild ``names`` of ``state`` with their whole groups (a restored list must still be the
        one its aliases hold), without putting them in the namespace yet (see :meth:`put_values`)."""
        names = set(names)
        groups = {state.variables[n].group for n in names if state.variables[n].group}
        names |= {n for n, r in state.variables.items() if r.group in groups}
        fingerprints = Fingerprints()
        values = restore({n: state.variables[n] for n in names}, state.groups, self.workspace.blobs.get_many,
                         self.namespace, fingerprints, join=self.workspace.blobs.read_joined)
        return values, fingerprints

    def put_values(self, state: State, values: dict[str, Any], fingerprints: dict[Any, list[str]]) -> dict[str, Any]:
        """Put values rebuilt by :meth:`restore_values` in the namespace; committed unchanged, they
        record the groups they came from."""
        self.namespace.update(values)
        with self._without_hidden():
            self.workspace.remember_restored(self.namespace, values, state, fingerprints)
        return values

    @property
    def current_operation(self) -> Operation | None:
        """The operation of the cell running now (its lookup key and inputs), when recording."""
        return self._op

    def printed(self) -> int:
        """How much the running cell has printed so far, as its operation keeps it (where a display
        it shows now goes between its printed lines on replay)."""
        return self._watch.printed() if self._op is not None else 0

    def rollback(self, names: set[str] | None) -> RollbackResult:
        """Put ``names`` (None: every variable) back as the last commit has them.

        Only names whose value differs from HEAD are reloaded (with their
        co-variables, so aliasing holds); names HEAD lacks are deleted.
        """
        self.flush()
        out = RollbackResult()
        if self.base is None:
            return out
        merging = self.merging()
        # our last commit (even if the branch moved since), or the merge in progress
        state = self.workspace.merge_plan(merging).state() if merging is not None else self.workspace.state(self.base)
        if names is None:
            names = self.variable_names() | (set(state.variables) - self.unloaded)
        names = {n for n in names if self.is_variable(n)}
        with self._without_hidden():
            # as a commit would record them: a restored value that was only read pickles to other bytes
            # than the commit it came from, and is still that commit's (see RestoredGroups)
            now = self.workspace.live_records(self.namespace, names)
        changed = set()
        for n in names:
            old = state.variables.get(n)
            if old is None:
                if n in self.namespace:
                    del self.namespace[n]
                    out.removed.append(n)
            elif old.kind == UNPICKLABLE:
                out.not_restored[n] = f"{old.type} could not be saved ({old.reason})"
            elif not old.same_content(now.get(n)):
                changed.add(n)
        values = self.put_values(state, *self.restore_values(state, changed))
        out.restored = sorted(values)
        out.removed.sort()
        self._remember_sharing(set(values))
        recorded = (state.meta or {}).get("libraries")
        if self._own is not None and libstate.RCPARAMS not in self._own:
            # a session that never loaded the branch's settings: back to its process's own
            recorded = self._settings_before or None
        if recorded is not None and self._library_state.capture() != recorded:  # the cell changed a setting
            for problem in libstate.restore(recorded):
                out.not_restored[problem.split(":", 1)[0]] = problem.split(":", 1)[1].strip()
            out.restored.append("matplotlib settings")
        # the generators back where they were before the cell, not where the commit was: cells since
        # that drew without changing a variable made no commit, and their draws stand
        out.restored.extend(f"{gen} generator" for gen in self._library_state.rewind())
        return out


def _pickled_by_reference(value: Any) -> bool:
    """A function or class of an imported module other than ``__main__`` that its module still names:
    pickled as that reference, whatever it holds (``numpy.zeros``, ``math.sqrt``, ``pandas.DataFrame``)."""
    if not isinstance(value, (types.FunctionType, types.BuiltinFunctionType, type)):
        # others only when they reduce to their name, as pickle's globals do (numpy 2's dispatchers: `linspace`)
        if isinstance(value, types.ModuleType) or not callable(value):
            return False
        try:
            if not isinstance(value.__reduce_ex__(5), str):
                return False
        except Exception:
            return False
    module = getattr(value, "__module__", None)
    if not isinstance(module, str) or module == "__main__" or module not in sys.modules:
        return False
    found: Any = sys.modules[module]
    for part in str(getattr(value, "__qualname__", "")).split("."):
        found = getattr(found, part, None)
    return found is value


def _cell_doc(cell: CellRecord) -> dict[str, Any]:
    """A cell record as ``code/cells.json`` (and the operations log) hold it."""
    return {k: v for k, v in cell.__dict__.items() if k != "op" or v is not None}


def _unchanged(prepared: PreparedCommit) -> bool:
    """A prepared commit whose state is its parent's, as far as the records can tell now."""
    head = prepared.head.variables if prepared.head is not None else {}
    redone = prepared.snap.variables
    # kept records are head's own, for names not redone: only the redone ones need comparing (a cell's worth)
    return (len(prepared.kept.keys() - redone.keys()) + len(redone) == len(head)
            and all(n in head and _known_same(r, head[n]) for n, r in redone.items()))


def _known_same_or_absent(new: VarRecord | None, old: VarRecord | None) -> bool:
    if new is None or old is None:
        return new is None and old is None
    return _known_same(new, old)


def conflict_note(conflicts: list[Conflict], where: str, verb: str = "%txgit") -> str:
    """What stops a commit during a merge, and what to type (``verb``: ``%txgit`` in a kernel, else ``txgit``)."""
    names = ", ".join(c.label for c in conflicts)
    first = conflicts[0].names[0] if conflicts else "NAME"
    every = "" if len(conflicts) < 2 else f"; `{verb} merge --ours` / `--theirs` alone: all of them"
    return (f"merge into {where} in progress, unresolved: {names} (set it and commit, or "
            f"`{verb} merge --ours {first}` / `--theirs {first}`{every}; `{verb} merge --abort` gives up)")


def _merge_commit_result(merged: MergeResult, result: CommitResult) -> CommitResult:
    """The commit of a cell that was merged with a moved branch: the merge commit, with the cell's costs."""
    assert merged.info is not None
    return dataclasses.replace(result, info=merged.info,
                               variables=len(merged.plan.variables) if merged.plan else result.variables)


def _known_same(new: VarRecord, old: VarRecord | None) -> bool:
    """Same content, as far as the records can tell now: a value whose bytes are still being
    hashed (a deferred group, no id yet) may have changed."""
    return not (new.kind == VALUE and new.group is None) and new.same_content(old)


@dataclass
class CommittedOperation:
    """The last cell committed alone as an operation (:attr:`NamespaceSession.last_operation`).

    ``records``: every variable record of its commit. Records of values still being hashed by the
    background writer have no group yet; they get it in place once :meth:`NamespaceSession.flush`
    returned. The reuse layer compares its outputs with recorded runs' (early cutoff)."""

    op: dict[str, Any]  # Operation.to_json(), with its outputs filled in
    records: dict[str, VarRecord]
    message: str  # its commit's message ("cell [3]: ...")


@dataclass
class _CellFacts:
    rebound: set[str]  # names the cell added, deleted or bound to other objects
    before: set[str]  # the variables that existed when it started


def _yield_to_the_cell() -> None:
    """Lower the calling (writer) thread's CPU priority: the cell running beside it comes first."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)  # Linux: per thread
    except (AttributeError, OSError):
        pass


_MAX_QUEUED = 4  # commits waiting for the writer; past that the next cell waits (bounded memory)


class _Writer:
    """Writes prepared commits in a thread, in order, then releases the workspace lock.

    While it writes, the session may chain more commits onto the last one
    (:meth:`extend`, then :meth:`submit`): they are written next under the same
    lock. Once one fails, the rest are not written; their cells go back to the
    session (``cells``), which serializes everything next time.
    """

    def __init__(self, workspace: Workspace, prepared: PreparedCommit, lock: WorkspaceLock,
                 cells: list[CellRecord], executor: ThreadPoolExecutor, git: GitWriter | None = None) -> None:
        self.workspace, self.lock, self.git = workspace, lock, git
        self.tip: PreparedCommit = prepared  # the last commit queued: what the next one builds on
        self.result: CommitResult | None = None  # the last one written
        self.error: BaseException | None = None
        self.cells: list[CellRecord] = []  # cells of the commits not written (after an error)
        self._queue: list[tuple[PreparedCommit, list[CellRecord]]] = [(prepared, cells)]
        # id(prepared) -> what to call with its commit's id once written (see after_tip)
        self._after: dict[int, list[Callable[[str], None]]] = {}
        self._written: tuple[int, str] | None = None  # the last commit written: (id(prepared), commit id)
        self._cv = threading.Condition()
        self._extending = False
        self._done = False
        self._finished = threading.Event()
        executor.submit(self._run)

    def extend(self) -> bool:
        """Promise a chained commit (then call :meth:`submit`); False: write it yourself (the writer
        is done or failed). With enough queued (each holds copies of the bytes it writes), wait for
        the writer to take the next one: waiting for the whole queue instead left the writer idle
        while the next cells ran, after the cell had been idle while it wrote."""
        with self._cv:
            if self._done or self.error is not None:
                return False
            self._extending = True  # (the writer does not finish while we wait for room)
            try:
                while len(self._queue) >= _MAX_QUEUED and self.error is None:
                    self._cv.wait()
            except BaseException:  # an interrupt while waiting: no promise, or the writer waits forever
                self._extending = False
                self._cv.notify_all()
                raise
            if self.error is not None:
                self._extending = False
                self._cv.notify_all()
                return False
            return True

    def submit(self, item: tuple[PreparedCommit, list[CellRecord]] | None) -> None:
        """Queue the promised commit (None: it was not made after all)."""
        with self._cv:
            self._extending = False
            if item is not None:
                self._queue.append(item)
                self.tip = item[0]
            self._cv.notify()

    def after_tip(self, call: Callable[[str], None]) -> None:
        """Call ``call(commit id)`` once the last commit queued is written (not if it fails); runs in the
        writer's thread."""
        with self._cv:
            written = self._written if self._written is not None and self._written[0] == id(self.tip) else None
            if written is None:
                self._after.setdefault(id(self.tip), []).append(call)
        if written is not None:  # already written
            call(written[1])

    def _run(self) -> None:
        try:
            _yield_to_the_cell()
            try:
                self.workspace.history.clear_stale_locks()  # see WorkspaceLock: we hold it, nobody else writes
            except BaseException as e:
                self.error = e
            while True:
                with self._cv:
                    while not self._queue and self._extending:
                        self._cv.wait()
                    if not self._queue:
                        self._done = True
                        self.tip = None  # type: ignore[assignment]  # the chunk copies can go
                        return
                    prepared, cells = self._queue.pop(0)
                    self._cv.notify_all()  # room for a cell waiting in extend()
                if self.error is not None:
                    self.cells.extend(cells)
                    continue
                try:
                    self.result = self.workspace.finish_commit(prepared, git_writer=self.git)
                except BaseException as e:  # reported by NamespaceSession.flush in the main thread
                    with self._cv:
                        self.error = e
                        self._cv.notify_all()  # a cell waiting in extend() writes its commit itself
                    self.cells.extend(cells)
                    continue
                with self._cv:
                    calls = self._after.pop(id(prepared), [])
                    self._written = (id(prepared), self.result.info.id)
                for call in calls:
                    try:
                        call(self.result.info.id)
                    except OSError:
                        pass  # a note for reuse: never worth failing the commit
        finally:
            try:
                self.lock.release()
            finally:
                self._finished.set()

    def join(self) -> None:
        self._finished.wait()

    @property
    def done(self) -> bool:
        return self._finished.is_set()


# -- the session of a namespace -------------------------------------------------------------

_sessions: dict[int, NamespaceSession] = {}


def register(session: NamespaceSession) -> None:
    """Make ``session`` the one :func:`commit_namespace` uses for its namespace."""
    _sessions[id(session.namespace)] = session


def unregister(session: NamespaceSession) -> None:
    if _sessions.get(id(session.namespace)) is session:
        del _sessions[id(session.namespace)]


def session_for(namespace: MutableMapping[str, Any], path: str = ".") -> NamespaceSession:
    """The session tracking ``namespace``, or a new untracked one on the workspace at ``path`` (created if none)."""
    s = _sessions.get(id(namespace))
    if s is not None and s.namespace is namespace:
        return s
    from txgit.errors import NotAWorkspace

    try:
        ws = Workspace.open(path)
    except NotAWorkspace:
        ws = Workspace.init(path)
    s = NamespaceSession(ws, namespace, kind="script")
    s.auto = False
    register(s)
    return s


def commit_namespace(namespace: MutableMapping[str, Any], message: str = "", path: str = ".") -> CommitResult:
    """Commit ``namespace`` (e.g. a script's globals). Untracked code may have changed anything,
    so everything is serialized again unless a tracking session (kernel, ``txgit run``) owns it."""
    s = session_for(namespace, path)
    if s._tracker is not None:  # called from inside tracked code: count what it did so far
        hint = s._tracker.finish().hint
        s.touched = None if hint is None or s.touched is None else s.touched | hint
    elif not s.auto:
        s.touched = None  # no tracking between calls: any name may have changed
    return s.commit(message)
