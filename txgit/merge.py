"""Three-way merge of states, on their records alone: nothing is unpickled, no chunk is read.

A state is a set of variable records; values that share objects are pickled
together in one group, so a group is the unit of aliasing. The unit of a merge
is therefore a *unit*: the variables linked by sharing a group in the merge
base, in ours or in theirs (``a`` and ``b = a`` are one unit). For each unit:

* changed on neither side: kept;
* changed on one side only (changed, added or removed): taken from that side,
  records and groups as they are, so its chunks are already stored;
* changed on both sides to the same records: taken;
* changed on both sides differently: a :class:`Conflict`, listed with both
  versions; the merged state holds ours until it is resolved.

Stands on :mod:`txgit.state` (records) and :mod:`txgit.history` (states).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from txgit.errors import TxgitError
from txgit.history import State
from txgit.state import UNPICKLABLE, GroupRecord, VarRecord

OURS = "ours"
THEIRS = "theirs"


def same(a: VarRecord | None, b: VarRecord | None) -> bool:
    """Whether two records hold one version of a variable, as a merge compares them (None: absent)."""
    if a is None or b is None:
        return a is None and b is None
    if a.kind == UNPICKLABLE and b.kind == UNPICKLABLE:
        # nothing of such a value is stored, only the code that made it: a side that made it anew with
        # other code (`gen = (i + 100 for i in rows)`) changed it, though its type is the same
        return a.type == b.type and a.details.get("recipe") == b.details.get("recipe")
    return a.same_content(b)


@dataclass
class Conflict:
    """A unit both sides changed differently: its records in the merge base, ours and theirs
    (a name missing from a side's dict is absent there: deleted, or never made)."""

    names: list[str]
    base: dict[str, VarRecord]
    ours: dict[str, VarRecord]
    theirs: dict[str, VarRecord]
    disputed: bool = False  # several merge bases disagree on it: no base says which side changed it

    @property
    def label(self) -> str:
        return ", ".join(self.names)

    def describe(self, name: str) -> str:
        """How ``name`` changed on each side: "changed on both sides", "deleted by us, changed by them" ..."""
        if self.disputed:
            return "changed on both sides since their merge bases, which disagree"

        def how(side: Mapping[str, VarRecord]) -> str:
            if name not in side:
                return "deleted" if name in self.base else "absent"
            if name not in self.base:
                return "added"
            return "unchanged" if same(self.base[name], side[name]) else "changed"

        ours, theirs = how(self.ours), how(self.theirs)
        if ours == theirs:
            return f"{ours} on both sides"
        return f"{ours} by us, {theirs} by them"


@dataclass
class MergePlan:
    """The merged records, and what a live namespace holding ``ours`` must do to equal them."""

    base: str | None  # commit ids
    ours: str
    theirs: str
    variables: dict[str, VarRecord]
    groups: dict[str, GroupRecord]
    # names whose merged record comes from theirs and differs from ours: what a namespace loads
    from_theirs: list[str] = field(default_factory=list)
    # names ours has and the merged state lacks (theirs removed them): what a namespace deletes
    removed: list[str] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    # name -> "ours" / "theirs": how each conflict was resolved so far
    resolved: dict[str, str] = field(default_factory=dict)

    def state(self, meta: dict | None = None) -> State:
        return State(dict(self.variables), dict(self.groups), dict(meta or {}))

    def conflict_of(self, name: str) -> Conflict:
        for c in self.conflicts:
            if name in c.names:
                return c
        known = ", ".join(n for c in self.conflicts for n in c.names) or "none"
        raise TxgitError(f"{name!r} is not in conflict (conflicts: {known})")

    def resolve(self, name: str, side: str, ours: State, theirs: State) -> Conflict:
        """Take ``side``'s version of the unit that holds ``name``; returns that conflict, now resolved."""
        if side not in (OURS, THEIRS):
            raise ValueError(side)
        conflict = self.conflict_of(name)
        self.conflicts.remove(conflict)
        _take(self, conflict.names, ours if side == OURS else theirs, ours)
        for n in conflict.names:
            self.resolved[n] = side
        return conflict


def _take(plan: MergePlan, names: Iterable[str], side: State, ours: State) -> None:
    """Put ``side``'s records of ``names`` in the plan (``ours``: what a namespace holds now)."""
    for n in names:
        rec = side.variables.get(n)
        if rec is None:
            plan.variables.pop(n, None)
        else:
            plan.variables[n] = rec
            if rec.group is not None:
                plan.groups[rec.group] = side.groups[rec.group]
        mine = ours.variables.get(n)
        if n in plan.from_theirs:
            plan.from_theirs.remove(n)
        if n in plan.removed:
            plan.removed.remove(n)
        if rec is not None and not same(rec, mine):
            plan.from_theirs.append(n)
        elif rec is None and mine is not None:
            plan.removed.append(n)
    plan.from_theirs.sort()
    plan.removed.sort()
    used = {r.group for r in plan.variables.values() if r.group is not None}
    for g in [g for g in plan.groups if g not in used]:
        del plan.groups[g]


def units(*states: State) -> list[list[str]]:
    """The variables of ``states``, in units: names that share a group in any of them are one unit."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for s in states:
        for n in s.variables:
            parent.setdefault(n, n)
    for s in states:
        first: dict[str, str] = {}
        for n, rec in s.variables.items():
            if rec.group is None:
                continue
            other = first.setdefault(rec.group, n)
            if other != n:
                a, b = find(n), find(other)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    out: dict[str, list[str]] = {}
    for n in sorted(parent):
        out.setdefault(find(n), []).append(n)
    return sorted(out.values())


def merge_states(base: State | None, ours: State, theirs: State, *, base_id: str | None, ours_id: str,
                 theirs_id: str, disputed: Collection[str] = ()) -> MergePlan:
    """Merge ``theirs`` into ``ours`` from their merge base (None: no common history).

    ``disputed``: variables whose records differ between the merge bases, when there are several (a
    criss-cross merge): no base says which side changed them, so a unit holding one is taken only
    where both sides agree, else it is a conflict (never one side's silently)."""
    base = base if base is not None else State({}, {}, {})
    plan = MergePlan(base_id, ours_id, theirs_id, dict(ours.variables), dict(ours.groups))
    for unit in units(base, ours, theirs):
        unknown = any(n in disputed for n in unit)
        we = unknown or any(not same(base.variables.get(n), ours.variables.get(n)) for n in unit)
        they = unknown or any(not same(base.variables.get(n), theirs.variables.get(n)) for n in unit)
        if not they:
            continue  # ours stands (changed or not)
        if not we:
            _take(plan, unit, theirs, ours)
        elif all(same(ours.variables.get(n), theirs.variables.get(n)) for n in unit):
            continue  # both made the same change
        else:
            plan.conflicts.append(Conflict(
                unit,
                {n: base.variables[n] for n in unit if n in base.variables},
                {n: ours.variables[n] for n in unit if n in ours.variables},
                {n: theirs.variables[n] for n in unit if n in theirs.variables}, unknown))
    return plan


# -- a merge in progress ---------------------------------------------------------------------------

KERNEL = "kernel"  # a conflict resolved by setting the variable in the live namespace


@dataclass
class MergeInProgress:
    """A merge stopped on conflicts (like git's MERGE_HEAD): what is merged into which ref, and the
    resolutions so far. The plan is computed again from the three commits whenever it is needed."""

    ref: str  # the ref the merge commit will move ("HEAD", "refs/heads/main")
    ours: str
    theirs: str
    base: str | None
    label: str  # what was merged, as the user named it ("origin/main")
    message: str
    resolved: dict[str, str] = field(default_factory=dict)  # name -> ours | theirs | kernel
    # the process whose namespace holds the values of the "kernel" resolutions: they are in no commit
    # until it writes the merge commit, so they stand only while it lives
    kernel: int | None = None
    kernel_start: int | None = None  # when its process started: tells it from a later one given its PID

    def to_json(self) -> dict:
        return {"ref": self.ref, "ours": self.ours, "theirs": self.theirs, "base": self.base, "label": self.label,
                "message": self.message, "resolved": self.resolved, "kernel": self.kernel,
                "kernel_start": self.kernel_start}

    @classmethod
    def from_json(cls, d: dict) -> MergeInProgress:
        try:
            return cls(str(d["ref"]), str(d["ours"]), str(d["theirs"]), d.get("base"), str(d.get("label", "")),
                       str(d.get("message", "")), {str(k): str(v) for k, v in (d.get("resolved") or {}).items()},
                       int(d["kernel"]) if d.get("kernel") is not None else None,
                       int(d["kernel_start"]) if d.get("kernel_start") is not None else None)
        except (KeyError, TypeError, AttributeError) as e:
            raise TxgitError(f"the record of the merge in progress is damaged ({e}): `txgit merge --abort`") from e
