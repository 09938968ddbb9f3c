"""Early cutoff: a cell that ran but made the same values as a recorded run gives them that run's origins.

A variable's origin names the operation that made it, so editing a cell
(a ``print`` added, a local renamed, a plot changed) gives its outputs new
origins and every later cell a new key, even when the values are the same
bytes as before. Build systems call the fix *early cutoff*: once the cell
ran and was committed, each of its outputs whose whole co-variable group
(same names, same content: the group's hash) equals that of the same name
as a recorded operation output it takes that operation's origin, and the
cells after it match their recorded runs again.

It is sound because an origin stands for a value's content: a recorded
run that read a value of that origin read these very bytes, aliasing
included (a group's hash covers its member names). Nothing is substituted
for a value that could not be pickled (its content is unknown), a module,
the output of a cell with effects, a cell committed together with others,
or from a commit of an untrusted remote.

Costs, kept small: the check runs before the next cell (see
:meth:`txgit.reuse.Reuser.prepare`), reads only the ``meta.json`` and the
records of the cell's output names (each in the one file or shard that
holds it: :meth:`txgit.history.History.read_variable`) of the commits whose
recorded operation output one of those names (each read once and kept, newest
:data:`MAX_CANDIDATES` per name). A value hashed by the background writer
is waited for only when a recorded run of the cell about to run read that
name with an origin the value may take; else its check waits for a later
cell (at most :data:`MAX_PENDING` cells are kept).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pygit2

from txgit import trust as _trust
from txgit.errors import TxgitError
from txgit.reuse.graph import OperationIndex, RecordedOperation
from txgit.sessions.operations import Operation, output_origin
from txgit.sessions.session import CommittedOperation, NamespaceSession
from txgit.state import VALUE

MAX_CANDIDATES = 64  # recorded operations looked at per output name, newest first
MAX_PENDING = 32  # cells that ran whose outputs are kept for comparing later


@dataclass
class Cutoff:
    """Outputs of a cell that ran which took the origins of a recorded run's equal values."""

    names: list[str]
    commit: str  # the commit of the recorded run they were taken from
    origins: dict[str, tuple[str, str]]  # name -> (origin it had, origin it took)
    message: str  # the commit message of the cell that made them ("cell [2]: ...")
    waited: bool = False  # waited for the background writer to hash them

    def describe(self) -> str:
        names = ", ".join(self.names[:6]) + (" …" if len(self.names) > 6 else "")
        cell = self.message.split(": ", 1)[0].removeprefix("run ") if self.message else "a cell"
        return (f"txgit: {cell} made the same {names} as the recorded run {self.commit[:8]}: "
                "the cells after it can be reused")


class _Commit:
    """What early cutoff reads of one recorded commit, read lazily and kept."""

    __slots__ = ("origins", "groups")

    def __init__(self) -> None:
        self.origins: dict[str, str] | None = None
        self.groups: dict[str, str | None] = {}  # name -> its group (None: no value record)


class EarlyCutoff:
    """Finds recorded origins for a session's last outputs (see the module docstring)."""

    def __init__(self, session: NamespaceSession, index: OperationIndex) -> None:
        self.session = session
        self.index = index
        self._seen: CommittedOperation | None = None
        self._pending: list[CommittedOperation] = []  # cells that ran, outputs not compared yet
        self._by_code: dict[str, list[RecordedOperation]] = {}  # code hash -> its recorded runs
        self._by_output: dict[str, list[RecordedOperation]] = {}  # name -> records outputting it, newest first
        self._used: set[str] = set()  # origins some recorded operation read
        self._indexed = 0  # records of index.all taken into the two above
        self._commits: dict[str, _Commit] = {}
        self._fetched: dict[str, str] | None = None  # see _is_trusted
        self._fetched_tips: dict[str, str] = {}

    # -- the recorded side ---------------------------------------------------------------------
    def _update(self) -> None:
        self.index.refresh()
        new = self.index.all[self._indexed:]
        if not new:
            return
        self._indexed = len(self.index.all)
        touched = set()
        for rec in new:
            self._used.update(o for o in rec.op.inputs.values() if o)
            self._by_code.setdefault(rec.op.code, []).append(rec)
            if rec.op.effects or not rec.op.full:
                continue  # its outputs have content origins, not its own
            for n in rec.op.outputs:
                self._by_output.setdefault(n, []).append(rec)
                touched.add(n)
        for n in touched:
            self._by_output[n].sort(key=lambda r: r.time, reverse=True)

    def _commit(self, cid: str) -> _Commit:
        c = self._commits.get(cid)
        if c is None:
            c = self._commits[cid] = _Commit()
        return c

    def _read(self, cid: str, path: str) -> bytes | None:
        history = self.index.history
        try:
            return history.read_file(history.repo[pygit2.Oid(hex=cid)], path)
        except (KeyError, ValueError, pygit2.GitError):
            return None

    def _origins(self, cid: str) -> dict[str, str]:
        c = self._commit(cid)
        if c.origins is None:
            c.origins = {}
            data = self._read(cid, "meta.json")
            try:
                doc = json.loads(data) if data is not None else {}
            except ValueError:
                doc = {}
            got = doc.get("origins") if isinstance(doc, dict) else None
            if isinstance(got, dict):
                c.origins = {str(k): v for k, v in got.items() if isinstance(v, str) and v.startswith("op:")}
        return c.origins

    def _group(self, cid: str, name: str) -> str | None:
        c = self._commit(cid)
        if name not in c.groups:
            history = self.index.history
            try:
                rec = history.read_variable(history.repo[pygit2.Oid(hex=cid)], name)  # its file or shard only
            except (KeyError, ValueError, pygit2.GitError):
                rec = None
            c.groups[name] = rec.group if rec is not None and rec.kind == VALUE else None
        return c.groups[name]

    def _is_trusted(self, cid: str) -> bool:
        """Ours or from a trusted remote. The list of fetched commits is read again only after a
        fetch moved a remote-tracking ref (reading a file while the background writer hashes costs
        the GIL's switch interval, 5 ms); whether a remote is trusted is asked every time."""
        tips = self.index.remote_tips()
        if self._fetched is None or tips != self._fetched_tips:
            try:
                self._fetched = _trust.fetched_commits(self.session.workspace)
            except TxgitError:  # an unreadable list: trust nothing fetched
                return False
            self._fetched_tips = tips
        remote = self._fetched.get(cid)
        return remote is None or _trust.is_trusted(self.index.history.repo, remote)

    # -- the check -----------------------------------------------------------------------------
    def settle(self, running: Operation | None = None) -> Cutoff | None:
        """Give outputs of cells that ran (the session's last committed one, and earlier ones not
        settled yet) recorded origins where their values equal a recorded run's; returns what it did
        (None: nothing). ``running``: the operation about to run, whose key the caller computes again.

        Where the hashes of the values are known (small values; commits written in the foreground)
        this is settled at once. Where they are still being computed by the background writer, it
        waits for them only if that can let ``running`` be reused (it reads one of those values,
        and a recorded run of its code read a value of that name made by another operation);
        otherwise the check waits for a later cell that reads them."""
        s = self.session
        last = s.last_operation
        if last is not None and last is not self._seen:
            self._seen = last
            op = last.op
            # a replayed cell has recorded origins already; one with effects has no origin of its own
            if "reused_from" not in op and not op.get("effects") and op.get("full"):
                self._pending.append(last)
                del self._pending[:-MAX_PENDING]
        # still the values those cells made (nothing moved their origins since), and values, not modules.
        # (A class or function imported from a module has its module's version or source in its
        # origin, not in its pickle, which names it by reference: such an origin differs from the
        # plain one computed here, so it is never cut off; tests: ..._another_version_..., ..._own_module_...)
        todo: list[tuple[CommittedOperation, dict[str, str]]] = []
        for c in self._pending:
            mine = {n: output_origin(c.op["full"], n, None) for n in c.op.get("outputs", [])}
            live = {n: o for n, o in mine.items() if s.origins.get(n) == o and n in c.records
                    and c.records[n].kind == VALUE}
            if live:
                todo.append((c, live))
        self._pending = [c for c, _ in todo]
        if not todo:
            return None
        self._update()
        # Only where a recorded run made a value of that name under another origin can it matter.
        work = []
        options: dict[str, set[str]] = {}  # name -> the recorded origins it might take
        for c, mine in todo:
            candidates = {n: [r for r in self._by_output.get(n, [])[:MAX_CANDIDATES]
                              if self._origins(r.commit).get(n, mine[n]) != mine[n]] for n in mine}
            candidates = {n: rs for n, rs in candidates.items() if rs}
            if not candidates:
                self._pending.remove(c)
                continue
            work.append((c, mine, candidates))
            for n, rs in candidates.items():
                group = c.records[n].group  # known: only the runs that made these bytes count
                options.setdefault(n, set()).update(self._origins(r.commit)[n] for r in rs
                                                    if group is None or self._group(r.commit, n) == group)
        taken: dict[str, tuple[str, str]] = {}
        source: tuple[str, str] | None = None
        waited = False
        for c, mine, candidates in work:
            if any(c.records[n].group is None for n in candidates):  # hashed by the background writer
                if not self._helps(running, options):
                    continue  # kept for a later cell
                s.flush()  # the group ids are set in place once the commit is written
                waited = True
                if any(c.records[n].group is None for n in candidates):
                    self._pending.remove(c)  # the commit failed
                    continue
            self._pending.remove(c)
            got, commit = self._settle_one(c, mine, candidates)
            taken.update(got)
            if got and source is None:
                source = (c.message, commit)
        if not taken or source is None:
            return None
        for m, (_, o) in taken.items():
            s.origins[m] = o
        return Cutoff(sorted(taken), source[1], taken, source[0], waited)

    def _helps(self, running: Operation | None, options: dict[str, set[str]]) -> bool:
        """Could ``running`` be reused if the values it reads took some of the recorded origins in
        ``options``: is there a recorded run of its code that read the same origins but for those?"""
        if running is None or not any(n in options for n in running.inputs):
            return False
        for rec in self._by_code.get(running.code, []):
            if rec.op.inputs.keys() == running.inputs.keys() and all(
                    o == now or (n in options and o in options[n])
                    for n, o in rec.op.inputs.items() for now in (running.inputs[n],)):
                return True
        return False

    def _settle_one(self, c: CommittedOperation, mine: dict[str, str], candidates: dict[str, list[RecordedOperation]]
                    ) -> tuple[dict[str, tuple[str, str]], str]:
        """The origins ``c``'s outputs take, group by group (name -> (had, takes)), and the commit
        of a recorded run they come from."""
        s = self.session
        members: dict[str, list[str]] = {}
        for n, r in c.records.items():
            if r.kind == VALUE and r.group:
                members.setdefault(r.group, []).append(n)
        taken: dict[str, tuple[str, str]] = {}
        done_groups: set[str] = set()
        source = ""
        for n in sorted(candidates):
            group = c.records[n].group
            if not group or group in done_groups:
                continue
            done_groups.add(group)
            got = self._match(group, members.get(group, []), mine, candidates[n])
            if got is None:
                continue
            rec, new = got
            for m, o in new.items():
                if o != s.origins.get(m):
                    taken[m] = (s.origins[m], o)
            source = source or rec.commit
        return taken, source

    def _match(self, group: str, members: list[str], mine: dict[str, str], recs: list[RecordedOperation]
               ) -> tuple[RecordedOperation, dict[str, str]] | None:
        """The best recorded run whose commit holds ``group`` (same names, same bytes) with recorded
        origins for its members that the cell made, and the same origins for the others; and the
        origins to take. Best: origins that recorded cells read (so the next cells match), then newest."""
        if not members:
            return None
        s = self.session
        found: list[tuple[tuple[int, int], RecordedOperation, dict[str, str]]] = []
        for rec in recs:
            origins = self._origins(rec.commit)
            new: dict[str, str] = {}
            ok = True
            for m in members:
                if self._group(rec.commit, m) != group:
                    ok = False
                elif m in mine:  # made by the cell: must have been an op's output there too
                    o = origins.get(m)
                    ok = o is not None
                    if o is not None:
                        new[m] = o
                else:  # an older variable aliased with the outputs: must be the same value there
                    ok = origins.get(m) is not None and origins.get(m) == s.origins.get(m)
                if not ok:
                    break
            if ok and new:
                found.append(((sum(o in self._used for o in new.values()), rec.time), rec, new))
        found.sort(key=lambda f: f[0], reverse=True)
        for _, rec, new in found:
            if self._is_trusted(rec.commit):  # (reads the list of fetched commits: the best one first)
                return rec, new
        return None
