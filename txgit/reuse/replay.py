"""Reuse: load a cell's recorded results instead of running it again.

Before a cell runs, its session has its lookup key (code + the origins of
what it reads). A recorded run of the same key is reused when

* it had no effect txgit cannot replay (files written, network, unseeded
  randomness: see :mod:`txgit.sessions.operations`);
* every file it read still has the same content, and every global random
  generator it drew from (without seeding it) is in the same state;
  reusing then leaves those generators in the state running it left them in,
  so the draws of the cells after it are those of a full run;
* its commit came from us or a trusted remote, and its outputs can be
  loaded (from the local store, or fetched from a remote's storage);
* loading is estimated to be cheaper than the run was.

Reusing puts the outputs (with their whole co-variable groups, so aliasing
holds) in the namespace, deletes what the cell deleted, and replays what it
printed. The cell is then committed like any other, recorded as the same
operation with the commit it came from (``meta.reuse``): the values keep the
same origins, so the cells after it can be reused too.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from txgit import trust as _trust
from txgit.errors import TxgitError
from txgit.history import State
from txgit.reuse.cutoff import Cutoff, EarlyCutoff
from txgit.reuse.graph import OperationIndex, RecordedOperation
from txgit.sessions import process
from txgit.sessions.operations import file_digest, pre_key, resolve_path, rng_setters, rng_states
from txgit.sessions.session import NamespaceSession

# What loading costs, to compare with what running cost: a fixed part and a rate (bytes/s).
LOAD_FIXED_SECONDS = 0.02
LOAD_BYTES_PER_SECOND = 200e6


@dataclass
class Reused:
    """A cell's results, loaded and ready to go into the namespace (:meth:`Reuser.apply`)."""

    recorded: RecordedOperation
    state: State
    values: dict[str, Any]
    fingerprints: dict[Any, list[str]]
    load_seconds: float
    removed: list[str] = field(default_factory=list)
    set_generators: list[Callable[[], None]] = field(default_factory=list)  # to where running leaves them

    @property
    def saved_seconds(self) -> float:
        return max(0.0, self.recorded.op.seconds - self.load_seconds)


@dataclass
class ReuseStats:
    reused: int = 0
    ran: int = 0
    saved_seconds: float = 0.0
    cutoffs: int = 0  # cells whose outputs took a recorded run's origins (early cutoff)
    cutoff_seconds: float = 0.0  # what checking for it cost, waits for background commits included


def _why_not(ws: Any, rec: RecordedOperation, rng_now: dict[str, str]) -> str | None:
    op = rec.op
    for path, digest in op.files.items():
        if file_digest(resolve_path(str(ws.root), path)) != digest:
            return f"{path} changed"
    for name, digest in op.env.items():
        if process.digest(name) != digest:
            if name.startswith("settings:"):
                return f"{name.removeprefix('settings:')}'s settings changed"
            return f"{name} changed" if name == "sys.argv" else f"the environment variable {name[1:]} changed"
    for gen, dep in op.rng.items():
        if dep.startswith("before:") and rng_now.get(gen) != dep.removeprefix("before:"):
            return f"the {gen} random generator is in another state"
    if set(op.rng) - set(op.rng_after):  # recorded by an older txgit: reusing would leave the generator behind
        return "its random generators' states after it were not recorded"
    if _trust.source_of(ws, rec.commit) is not None:
        return "its commit came from an untrusted remote"
    return None


class Reuser:
    """Finds and loads reusable results for the cells of one session."""

    def __init__(self, session: NamespaceSession, index: OperationIndex | None = None) -> None:
        self.session = session
        self.index = index or OperationIndex(session.workspace)
        self.stats = ReuseStats()
        self.last_reason: str | None = None  # why the last cell was not reused (None: no record of it)
        # a recorded run of the last cell that could not be reused, and why (not when running was
        # cheaper): what a user re-running a notebook wants to know about a cell that ran again
        self.missed: tuple[str, str] | None = None
        self.cutoff = EarlyCutoff(session, self.index)
        self.last_cutoff: Cutoff | None = None  # what early cutoff did before the running cell

    def settle_previous(self) -> Cutoff | None:
        """Early cutoff (:mod:`txgit.reuse.cutoff`) for the cell committed last, if it ran: its
        outputs equal to a recorded run's take that run's origins, and the running cell's lookup
        key is computed again with them. :meth:`prepare` calls it first.

        Done here, before the next cell, rather than in a hook after the cell: one place serves the
        kernel, ``txgit run --reuse`` (which asks for reuse after ``before_cell``) and the API, and
        a background commit it may have to wait for has had the user's think time to finish."""
        started = time.perf_counter()
        try:
            cut = self.cutoff.settle(self.session.current_operation)
        except TxgitError as e:
            self.last_reason = f"early cutoff failed: {e}"
            cut = None
        finally:
            self.stats.cutoff_seconds += time.perf_counter() - started
        self.last_cutoff = cut
        if cut is None:
            return None
        self.stats.cutoffs += 1
        op = self.session.current_operation
        if op is not None:
            changed = False
            for n, (old, new) in cut.origins.items():
                if n in op.inputs and op.inputs[n] == old:
                    op.inputs[n] = new
                    changed = True
            if changed:
                op.key = pre_key(op.code, op.inputs)
        return cut

    def prepare(self) -> Reused | None:
        """Call after ``session.before_cell``: the loaded results of a recorded run of the running
        cell, or None (run it). Nothing is changed in the namespace yet."""
        self.last_reason = self.missed = None
        self.settle_previous()
        op = self.session.current_operation
        if op is None:
            return None
        if op.effects:
            self.last_reason = op.effects[0]
            return None
        candidates = self.index.candidates(op.key)
        if not candidates:
            return None
        ws = self.session.workspace
        rng_now = rng_states()
        for rec in candidates:
            why = _why_not(ws, rec, rng_now)
            if why is not None:
                self._miss(rec, why)
                continue
            try:
                set_generators = rng_setters(rec.op.rng_after)
            except ValueError as e:
                self._miss(rec, str(e))
                continue
            try:
                state = ws.state(rec.commit)
            except TxgitError as e:
                self._miss(rec, str(e))
                continue
            outputs = [n for n in rec.op.outputs if n in state.variables]
            groups = {state.variables[n].group for n in outputs if state.variables[n].group}
            nbytes = sum(state.groups[g].nbytes for g in groups if g in state.groups)
            estimate = LOAD_FIXED_SECONDS + nbytes / LOAD_BYTES_PER_SECOND
            if estimate >= rec.op.seconds:
                self.last_reason = f"running it ({rec.op.seconds:.3f} s) is cheaper than loading it"
                return None
            started = time.perf_counter()
            try:
                values, fingerprints = self.session.restore_values(state, outputs)
            except TxgitError as e:  # not materialized here or on a remote, damaged: run it
                self._miss(rec, f"its results cannot be loaded: {e}")
                continue
            missing = [n for n in outputs if n not in values]
            if missing:  # e.g. an output that could not be pickled: running makes it
                self._miss(rec, f"{', '.join(missing)} was not saved")
                continue
            removed = [n for n in rec.op.removed if n not in state.variables]
            self.missed = None  # (a newer recorded run could not be used, this one is)
            return Reused(rec, state, values, fingerprints, time.perf_counter() - started, removed, set_generators)
        return None

    def _miss(self, rec: RecordedOperation, why: str) -> None:
        self.last_reason = why
        if self.missed is None:  # the newest recorded run's reason
            self.missed = (rec.commit, why)

    def notes(self) -> list[str]:
        """What the user is told before the last prepared cell: the early cutoff that let it match a
        recorded run, and why it runs although a run of it is recorded."""
        out = [self.last_cutoff.describe()] if self.last_cutoff is not None else []
        if self.missed is not None:
            commit, why = self.missed
            out.append(f"txgit: ran instead of reusing {commit[:8]}: {why}")
        return out

    def apply(self, reused: Reused, *, printed: bool = True) -> None:
        """Put the results in the namespace (while the cell "runs"), replay what it printed
        (``printed=False``: the caller does, with its displays between)."""
        s = self.session
        s.put_values(reused.state, reused.values, reused.fingerprints)
        for n in reused.removed:
            s.namespace.pop(n, None)
        for set_generator in reused.set_generators:
            set_generator()
        s.replayed(reused.recorded.commit, reused.recorded.op)
        if printed and reused.recorded.op.stdout:
            sys.stdout.write(reused.recorded.op.stdout)
        self.stats.reused += 1
        self.stats.saved_seconds += reused.saved_seconds

    def describe(self, reused: Reused) -> str:
        op = reused.recorded.op
        names = ", ".join(op.outputs[:6]) + (" …" if len(op.outputs) > 6 else "")
        return (f"txgit: reused results of {reused.recorded.commit[:8]} instead of running ({op.seconds:.2f} s); "
                f"loaded {names or 'nothing'} in {reused.load_seconds:.2f} s")


def replayer(*, quiet: bool = False) -> Callable[[NamespaceSession], bool]:
    """A ``replay`` callback for :func:`txgit.sessions.script.run_script` (``txgit run --reuse``):
    reuses each statement's recorded results when it can, and says so on stderr."""
    reusers: dict[int, Reuser] = {}

    def replay(session: NamespaceSession) -> bool:
        reuser = reusers.get(id(session))
        if reuser is None or reuser.session is not session:
            reuser = reusers[id(session)] = Reuser(session)
        reused = reuser.prepare()
        for note in [] if quiet else reuser.notes():
            print(note, file=sys.stderr)
        if reused is None:
            reuser.stats.ran += 1
            return False
        reuser.apply(reused)
        if not quiet:
            print(reuser.describe(reused), file=sys.stderr)
        return True

    return replay
