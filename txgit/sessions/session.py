"""A live namespace under txgit: cell bookkeeping, commit, checkout, rollback.

One :class:`NamespaceSession` serves the IPython extension, ``txgit run`` and
plain library use. It tracks what each piece of code may have changed (see
:mod:`txgit.sessions.tracking`) so a commit re-serializes only that, records
the code it ran, and rolls a failed cell back to the last commit.
"""

from __future__ import annotations

import ast
import builtins
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from txgit.state import UNPICKLABLE, VALUE, MODULE, VarRecord, is_variable_name, restore, snapshot
from txgit.state.summary import type_name
from txgit.state.snapshot import shared_ids
from txgit.sessions.operations import Operation, OperationWatch, content_origin, output_origin
from txgit.sessions.tracking import CellChanges, CellTracker
from txgit.gitwriter import GitWriter
from txgit.history import State
from txgit.workspace import CheckoutResult, CommitResult, PreparedCommit, StatusReport, Workspace, WorkspaceLock


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
    ``_i3`` …), never committed, never removed by a checkout.
    """

    def __init__(self, workspace: Workspace, namespace: MutableMapping[str, Any], *, kind: str = "python",
                 hidden: Callable[[str], bool] | None = None) -> None:
        self.workspace = workspace
        self.namespace = namespace
        self.kind = kind
        self.hidden = hidden or (lambda name: False)
        self.auto = True
        self.atomic = True
        self.pending: list[CellRecord] = []
        self.touched: set[str] | None = set()  # since the last commit; None = anything
        # Variables that exist before we track anything may differ from HEAD: the first commit takes all.
        self.full_next = bool(self.variable_names()) or workspace.head() is None
        self._shared: dict[str, set[int]] = {}
        # The commit the namespace was last in step with (a commit or checkout of ours): not HEAD
        # at start, since a fresh kernel holds none of HEAD's state.
        self.base: str | None = None
        self._tracker: CellTracker | None = None
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
        # The experiment graph (see txgit.sessions.operations): each cell is recorded as an operation,
        # and each variable has an origin, so that a later run of the same code on the same inputs
        # can be recognised (txgit.reuse).
        self.recording = True
        self.origins: dict[str, str] = {}
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

    def variable_names(self) -> set[str]:
        return {n for n in self.namespace if self.is_variable(n)}

    @contextmanager
    def _without_hidden(self) -> Iterator[None]:
        """Take the host's names out of the namespace while the workspace looks at it."""
        held = {n: self.namespace.pop(n) for n in [n for n in self.namespace if is_variable_name(n) and self.hidden(n)]}
        try:
            yield
        finally:
            for n, v in held.items():
                self.namespace.setdefault(n, v)

    # -- cells ---------------------------------------------------------------------
    def before_cell(self, code: str, *, source: str | None = None, tree: ast.Module | None = None) -> None:
        """Call just before ``code`` (plain Python) runs; ``source``: what the user typed, if different;
        ``tree``: ``ast.parse(code)``, if the caller has it."""
        self._tracker = CellTracker(self.namespace, code, self.is_variable, tree)
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
            host = sorted(n for n in names.inputs if n in self.namespace and self.hidden(n))
            if host:  # e.g. IPython's `_` (the last output): not versioned, so not a known input
                self._op.effects.append(f"reads {', '.join(host)}, which txgit does not version")
        self._started = time.perf_counter()

    def replayed(self, commit: str, op: Operation) -> None:
        """The running cell's results were loaded from ``commit`` (the reuse layer) instead of computed:
        it is recorded as that operation, with the commit it came from in the next commit's meta."""
        self._replayed = (commit, op)

    def abandon_cell(self) -> None:
        """The code did not run (or its effects are thrown away): forget the cell."""
        self._tracker = None
        self._replayed = None
        if self._op is not None:
            self._watch.abandon()
            self._op = None

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
        changes = tracker.finish()
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
        if err is not None and self.atomic and self.base is not None:
            outcome.rollback = self.rollback(changes.hint)
            return outcome
        self.pending.append(cell)
        for name in changes.writes:
            self._made_by[name] = (self._python, sorted(changes.reads - {name}))
        if changes.hint is None:
            self.touched = None
        elif self.touched is not None:
            self.touched |= changes.hint
        if self.auto:
            if message is None:
                where = label or (f"[{execution_count}]" if execution_count is not None else "")
                message = f"cell {where}: {_first_line(self._code)}".replace("cell : ", "cell: ")
            outcome.commit = self._commit(message, meta, None, background=self.background)
        return outcome

    # -- commit ----------------------------------------------------------------------
    def _hint(self, chained: bool = False) -> set[str] | None:
        """The names the next commit must serialize again, with anything sharing objects with them.

        ``chained``: the commit builds on ours still being written (HEAD cannot have moved)."""
        self._walked: dict[str, set[int]] = {}
        if self.full_next or self.touched is None:
            return None
        if not chained:
            head = self.workspace.history.head_commit()  # the id is enough: no ref listing per cell
            if head is None or str(head.id) != self.base:
                return None  # HEAD moved under us (another session, a terminal): compare everything
        hint = set(self.touched)
        # kept for the snapshot, which would walk the same values again
        self._walked = {n: shared_ids(self.namespace[n], self.namespace) for n in hint if n in self.namespace}
        ids: set[int] = set().union(*self._walked.values())
        # A new alias of an older variable (b = a) must be pickled with it.
        if ids:
            hint |= {n for n, s in self._shared.items() if n not in hint and not s.isdisjoint(ids)}
        return hint

    def commit(self, message: str = "", *, meta: dict[str, Any] | None = None,
               files: dict[str, bytes] | None = None) -> CommitResult:
        """Commit the namespace; only what changed since the last commit is serialized again."""
        result = self._commit(message, meta, files, background=False)
        assert result is not None
        return result

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
            print(f"txgit: auto-commit failed: {writer.error}", file=sys.stderr)
            self.pending[:0] = writer.cells
            self.full_next = True  # what it serialized is not in history: serialize everything next time
            return None
        return writer.result

    def _commit(self, message: str, meta: dict[str, Any] | None, files: dict[str, bytes] | None, *,
                background: bool) -> CommitResult | None:
        """Serialize now; write now, or (``background``) in a thread while the next cell runs.

        The workspace lock is taken before serializing and released only once
        the commit is written, by whichever thread writes it: no other writer
        (process or session) can move HEAD in between, and anyone who takes
        the lock (``Workspace.settle``, every txgit command that writes) sees
        the commit. The next commit, checkout, rollback, status and magic wait
        for it first (:meth:`flush`).
        """
        # A background commit still being written: build on it (the writer keeps the lock and
        # writes this one next) rather than wait for it while the user waits for the cell.
        writer = self._writer if background and self._writer is not None and self._writer.extend() else None
        if writer is None:
            self.flush()
        lock = None
        try:
            names = self._hint(chained=writer is not None)
            meta_doc: dict[str, Any] = {"session": self.kind}
            if self.pending:
                last = self.pending[-1]
                meta_doc["cell"] = {"execution_count": last.execution_count, "seconds": last.seconds,
                                    "reads": last.reads, "writes": last.writes, "label": last.label}
            meta_doc.update(meta or {})
            if writer is None:  # a background writer clears stale git locks itself, before it writes
                lock = self.workspace.hold_lock(clear_stale=not background)
            with self._without_hidden():
                prepared = self.workspace.prepare_commit(self.namespace, message, names=names, files=files,
                                                         meta=meta_doc, defer=background,
                                                         base=writer.tip if writer is not None else None,
                                                         known_shared=self._walked)
            if background:
                prepared.own_chunks()  # the next cell may mutate what the chunks were borrowed from
            self._attach_recipes(prepared)
            pending = prepared.snap.pending_content()
            self._finish_operations(prepared, exact=names is not None,
                                    same_pending=self._pending_content if writer is not None else {}, pending=pending)
            self._pending_content = pending
            prepared.files.update(self._code_files())
        except BaseException:
            if writer is not None:
                writer.submit(None)
            elif lock is not None:
                lock.release()
            raise
        self._remember_sharing(None if names is None else prepared.redo, prepared.snap.shared)
        cells = list(self.pending)
        self.pending.clear()
        self.touched = set()
        self.full_next = False
        if writer is not None:
            writer.submit((prepared, cells))
            return None
        if background:
            executor = self.start_writer()
            self._writer = _Writer(self.workspace, prepared, lock, cells, executor, self._git)
            return None
        try:
            result = self.workspace.finish_commit(prepared)
        except BaseException:
            self.pending[:0] = cells
            self.full_next = True
            raise
        finally:
            lock.release()
        self.base = result.info.id
        self.last_commit = result
        return result

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
            records = [{k: v for k, v in c.__dict__.items() if k != "op" or v is not None} for c in self.pending]
            out["code/cells.json"] = ("[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n").encode()
        return out

    def _finish_operations(self, prepared: PreparedCommit, *, exact: bool,
                           same_pending: dict[str, tuple[Any, ...]] | None = None,
                           pending: dict[str, tuple[Any, ...]] | None = None) -> None:
        """Fill in what the recorded cell made (its outputs) and move the variables' origins along.

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
        ops = [c.op for c in self.pending if c.op is not None]
        origins = self.origins
        if len(self.pending) == 1 and ops and facts is not None and (exact or not facts.before):
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
            why = "committed together with other cells" if len(self.pending) > 1 else "state before it not known"
            for op in ops:
                op["effects"] = sorted(set(op.get("effects", [])) | {why})
            for n in prepared.redo & records.keys():
                if not _known_same(records[n], head.get(n)) or n not in origins:
                    origins[n] = content_origin(records[n], self.namespace.get(n))
        for n in [n for n in origins if n not in records]:
            del origins[n]
        for n in records.keys() - origins.keys():
            origins[n] = content_origin(records[n], self.namespace.get(n))
        # a checkout elsewhere (another kernel, a fresh one) takes them up from here
        prepared.meta["origins"] = {n: o for n, o in sorted(origins.items()) if o.startswith("op:")}

    def _attach_recipes(self, prepared: PreparedCommit) -> None:
        """Record, with each value that cannot be pickled, the code that made it (``details.recipe``)."""
        head = prepared.head.variables if prepared.head is not None else {}
        for name, rec in prepared.snap.variables.items():
            if rec.kind != UNPICKLABLE:
                continue
            made = self._made_by.get(name)
            if made is not None:
                rec.details = {**rec.details, "recipe": {"code": made[0], "reads": made[1]}}
            elif head.get(name) is not None and "recipe" in head[name].details:
                rec.details = {**rec.details, "recipe": head[name].details["recipe"]}

    def _recompute(self, result: CheckoutResult) -> None:
        """Make unpicklable values of the checked-out state again by re-running the code that made
        them, on fresh copies of its inputs (so its side effects on them are thrown away)."""
        todo = [n for n in result.not_restored if n not in result.kept]
        if not todo:
            return
        state = self.workspace.state(result.info.id)
        for name in todo:
            rec = state.variables[name]
            recipe = rec.details.get("recipe")
            if not isinstance(recipe, dict) or not isinstance(recipe.get("code"), str):
                continue
            reads = [r for r in recipe.get("reads", []) if isinstance(r, str) and r in state.variables]
            # (a name the state lacks may be local to the code, e.g. a comprehension's variable:
            # if it is not, running the code says so)
            lost = [r for r in reads if state.variables[r].kind not in (VALUE, MODULE)]
            if lost:
                result.not_restored[name] += f"; not recomputed: its code needs {', '.join(sorted(lost))}"
                continue
            scratch: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
            try:
                scratch.update(restore({r: state.variables[r] for r in reads}, state.groups,
                                       self.workspace.blobs.get_many, scratch))
                exec(compile(recipe["code"], f"<txgit: code that made {name}>", "exec"), scratch)
            except Exception as e:
                result.not_restored[name] += f"; re-running its code failed: {type(e).__name__}: {e}"
                continue
            if name in scratch and type_name(scratch[name]) == rec.type:
                self.namespace[name] = scratch[name]
                del result.not_restored[name]
                result.recomputed.append(name)
            else:
                result.not_restored[name] += "; re-running its code did not make it again"

    def _remember_sharing(self, names: set[str] | None, known: dict[str, set[int]] | None = None) -> None:
        live = self.variable_names()
        for n in list(self._shared):
            if n not in live:
                del self._shared[n]
        known = known or {}
        for n in live if names is None else names & live:
            # the commit's snapshot already walked what it serialized; walking again costs as much
            ids = known.get(n)
            self._shared[n] = ids if ids is not None else shared_ids(self.namespace[n], self.namespace)

    # -- checkout / status / rollback ------------------------------------------------------
    def checkout(self, rev: str, *, force: bool = False, new_branch: str | None = None, trust: bool = False,
                 safe: bool = False) -> CheckoutResult:
        """Make the namespace equal ``rev`` (loading only what differs) and move HEAD there.

        An empty namespace (a fresh kernel) or one with nothing run since its
        last commit has nothing to lose, so it is not checked for changes.
        """
        self.flush()
        # Nothing ran since our last commit or checkout: the namespace is that state (even if
        # another session moved HEAD meanwhile), so there is nothing to lose.
        clean = not self.pending and self.touched == set() and not self.full_next and self.base is not None
        fresh = not self.variable_names()
        with self._without_hidden():
            result = self.workspace.checkout(rev, self.namespace, force=force or clean or fresh, new_branch=new_branch,
                                             known=self.base if clean else None, trust=trust, safe=safe)
        self.base = result.info.id
        self.pending.clear()
        self.touched = set()
        self.full_next = False
        self._recompute(result)
        self._remember_sharing(None)
        self._take_origins(result)
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

    def status(self) -> StatusReport:
        self.flush()
        with self._without_hidden():
            return self.workspace.status(self.namespace)

    def restore_values(self, state: State, names: Iterable[str]) -> tuple[dict[str, Any], dict[Any, list[str]]]:
        """Rebuild ``names`` of ``state`` with their whole groups (a restored list must still be the
        one its aliases hold), without putting them in the namespace yet (see :meth:`put_values`)."""
        names = set(names)
        groups = {state.variables[n].group for n in names if state.variables[n].group}
        names |= {n for n, r in state.variables.items() if r.group in groups}
        fingerprints: dict[Any, list[str]] = {}
        values = restore({n: state.variables[n] for n in names}, state.groups, self.workspace.blobs.get_many,
                         self.namespace, fingerprints)
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
        state = self.workspace.state(self.base)  # our last commit, even if HEAD moved since
        if names is None:
            names = self.variable_names() | set(state.variables)
        names = {n for n in names if self.is_variable(n)}
        with self._without_hidden():
            now = snapshot(self.namespace, sorted(n for n in names if n in self.namespace)).variables
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
        return out


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
        self._cv = threading.Condition()
        self._extending = False
        self._done = False
        self._finished = threading.Event()
        executor.submit(self._run)

    def extend(self) -> bool:
        """Promise a chained commit (then call :meth:`submit`); False: write it yourself (the writer
        is done or failed, or has enough queued: each holds copies of the bytes it writes)."""
        with self._cv:
            if self._done or self.error is not None or len(self._queue) >= _MAX_QUEUED:
                return False
            self._extending = True
            return True

    def submit(self, item: tuple[PreparedCommit, list[CellRecord]] | None) -> None:
        """Queue the promised commit (None: it was not made after all)."""
        with self._cv:
            self._extending = False
            if item is not None:
                self._queue.append(item)
                self.tip = item[0]
            self._cv.notify()

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
                if self.error is not None:
                    self.cells.extend(cells)
                    continue
                try:
                    self.result = self.workspace.finish_commit(prepared, git_writer=self.git)
                except BaseException as e:  # reported by NamespaceSession.flush in the main thread
                    self.error = e
                    self.cells.extend(cells)
        finally:
            try:
                self.lock.release()
            finally:
                self._finished.set()

    def join(self) -> None:
        self._finished.wait()


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
