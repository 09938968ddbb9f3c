"""fsck and gc: checking a workspace's history against its store, and cleaning the store.

What "reachable" means here (the same for both): every commit that HEAD, any
ref under ``refs/`` (branches, tags, remote-tracking refs) or any reflog entry
leads to. A blob is reachable when a group record of such a commit names it.

**fsck** walks all of them: every pointer file and group record must parse and
agree with each other, every blob they name must exist and hash to its name.
Problems are reported one per line, each naming the blob or record. A blob the
local store lacks but a remote's store holds is not a problem: it is *not
downloaded yet* (a lazy clone fetches blobs on demand), reported per remote; only
a blob that no reachable store has is *missing*. (That a remote holds a blob is
asked, not verified: its bytes are hashed when they are fetched.) With
``repair`` a corrupt blob, or one missing everywhere, is replaced by a verified
copy from other object stores (:meth:`txgit.storage.ObjectStore.repair_from`):
the remotes that answered, in their configured order (the ones that did not are
named, not tried), or the ``stores`` given; the report says which were tried.

**gc** deletes local blobs that nothing reachable names (inside packs: see :func:`_collect_packed`). It is safe against a
concurrent commit because it holds the workspace lock for its whole run, and a
commit holds the same lock from reading HEAD until its ref has moved: a blob
written by a commit in flight is either named by a ref by the time gc looks,
or gc runs before the commit starts writing. Reflog entries keep their commits
(a way back after a mistake) until gc expires them, after ``reflog_days``. A lock was chosen over a grace
period alone because it is exact (no clock, no guess at how long a commit can
take). As a second line of defence for writers that do not take the lock
(another tool writing into ``.txgit/objects``), blobs younger than a grace
period (1 hour by default) are kept too. gc refuses to delete anything when any
ref, reflog or record cannot be read, since it could not know what they name.

With a **budget** (``gc --budget 5GB``), gc also drops the bytes of the least
valuable historical states until the local store fits: see :mod:`txgit.budget`
for the rule. fsck reports states dropped that way as information, not as
missing blobs.

This module stands on the engine, :mod:`txgit.repository` (history and
storage), and on :mod:`txgit.budget`; nothing above them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from txgit import budget as _budget
from txgit.errors import TxgitError
from txgit.gitpack import PackReport
from txgit.merging import drop_orphan_merge_refs
from txgit.packs import SMALL_BLOB_MAX
from txgit.storage import ObjectStore

if TYPE_CHECKING:
    from txgit.history import State
    from txgit.repository import Repository


@dataclass
class RepairSource:
    """One store ``fsck --repair`` turned to: a remote (by name) or a store given by URL."""

    name: str
    url: str
    tried: bool = True  # False: it could not be reached (``error`` says why), so it was not asked for copies
    repaired: int = 0
    error: str | None = None


@dataclass
class FsckReport:
    """What fsck checked and found: ``problems`` are one line each; empty means all is well."""

    commits: int = 0
    blobs: int = 0
    problems: list[str] = field(default_factory=list)
    repaired: dict[str, str] = field(default_factory=dict)  # blob name -> store URL it came from
    dropped: list[str] = field(default_factory=list)  # commits whose bytes `gc --budget` dropped (information)
    # blob name -> the remote whose store holds it: not downloaded yet (information, not a problem)
    on_remote: dict[str, str] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)  # remote -> why it could not be asked
    sources: list[RepairSource] = field(default_factory=list)  # with repair: the stores turned to, in order

    def not_downloaded(self) -> dict[str, int]:
        """Remote -> how many blobs it holds that are not downloaded yet."""
        out: dict[str, int] = {}
        for remote in self.on_remote.values():
            out[remote] = out.get(remote, 0) + 1
        return out

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class GcReport:
    """What gc kept and deleted."""

    reachable: int = 0
    deleted: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    kept_young: int = 0  # unreachable, but inside the grace period
    temp_files_removed: int = 0
    reflog_entries_expired: int = 0
    dry_run: bool = False
    budget: _budget.BudgetReport | None = None  # with a budget: which states were kept and dropped
    history: PackReport | None = None  # the git history's objects packed (not on a dry run)
    history_folders_removed: int = 0  # loose-object folders the packing emptied


    packs_rewritten: int = 0  # packs rewritten without their garbage
    blobs_packed: int = 0  # small blobs gathered into one pack (loose ones and those of other small packs)
    loose_blob_files_removed: int = 0
    blob_packs_merged: int = 0  # packs of small blobs that the gathered pack replaced
    kept_in_packs: int = 0  # unreachable blobs left inside packs that are mostly live (see _collect_packed)


@dataclass
class _Use:
    """Where a blob is used, for messages: the first commit and variables met."""

    commit: str
    names: list[str]
    more_commits: int = 0


def _uses(ws: Repository, reflog_since: float | None = None,
          states: dict[str, State] | None = None) -> tuple[list, dict[str, _Use], list[str]]:
    """Reachable commits, blob name -> first use, and record problems (``states``: filled with each commit's)."""
    commits, problems = ws.history.reachable(reflog_since=reflog_since)
    uses: dict[str, _Use] = {}
    seen_groups: set[str] = set()
    for commit in commits:
        state, found = ws.history.state_problems(commit)
        if states is not None:
            states[str(commit.id)] = state
        short = str(commit.id)[:8]
        problems.extend(f"commit {short}: {p}" for p in found)
        for gid, record in state.groups.items():
            if gid in seen_groups:
                for name in record.chunk_names():
                    uses[name].more_commits += 1
                continue
            seen_groups.add(gid)
            for name in record.chunk_names():
                use = uses.setdefault(name, _Use(short, list(record.names)))
                if use.commit != short:
                    use.more_commits += 1
    return commits, uses, problems


def _where(use: _Use) -> str:
    names = ", ".join(use.names[:3]) + (" …" if len(use.names) > 3 else "")
    more = f" and {use.more_commits} more" if use.more_commits else ""
    return f"{names} in commit {use.commit}{more}"


def fsck(ws: Repository, *, repair: bool = False, stores: Iterable[ObjectStore] | None = None,
         remotes: Mapping[str, ObjectStore | Exception] | None = None) -> FsckReport:
    """Check (and with ``repair``, mend) every reachable commit of ``ws``. Reads every local blob once.

    ``remotes``: remote name -> its store (or why it has none), asked about the blobs the local
    store lacks or holds damaged; ``stores``: repair from these instead of the remotes.
    """
    from txgit.history import META

    report = FsckReport()
    commits, uses, report.problems = _uses(ws)
    # states: a remote's configuration (refs/txgit/.../config: where its blobs are) is reachable, not a state
    report.commits = sum(1 for c in commits if META in c.tree)
    report.blobs = len(uses)
    bad = ws.store.check(uses)
    # blobs `gc --budget` deleted on purpose are information, not damage (and not "repaired" back)
    dropped = _budget.dropped_blobs(ws.dir)
    gone = {n for n, why in bad.items() if why == "missing" and n in dropped}
    reachable = {str(c.id) for c in commits}
    report.dropped = sorted({c for n in gone for c in dropped[n] if c in reachable})
    for name in gone:
        del bad[name]
    # Which remote holds what is missing or damaged here: the missing ones are then only not downloaded yet.
    holders: dict[str, str] = {}
    answered: list[tuple[str, ObjectStore]] = []
    for rname, store in (remotes or {}).items() if bad else ():
        if isinstance(store, Exception):
            report.unreachable[rname] = _one_line(store)
            continue
        try:
            lacking = store.missing(bad)
        except (TxgitError, OSError) as e:
            report.unreachable[rname] = _one_line(e)
            continue
        answered.append((rname, store))
        for name in sorted(set(bad) - lacking):
            holders.setdefault(name, rname)
    for name in [n for n, why in bad.items() if why == "missing" and n in holders]:
        report.on_remote[name] = holders[name]
        del bad[name]
    if repair and bad:
        if stores is not None:
            sources = [(s.url, s) for s in stores]
        else:  # the remotes that answered; those that did not are named, not tried
            sources = list(answered)
            report.sources = [RepairSource(r, _url(remotes[r]), tried=False, error=why)
                              for r, why in report.unreachable.items()]
        tried = []
        with ws.lock():  # the repaired copy must not race a gc
            for label, store in sources:
                if not bad:
                    break
                source = RepairSource(label, store.url)
                tried.append(source)
                try:
                    have = set(bad) - store.missing(bad)
                except (TxgitError, OSError) as e:
                    source.tried, source.error = False, _one_line(e)
                    continue
                got = ws.store.repair_from(sorted(have), [store])
                source.repaired = len(got)
                report.repaired.update(got)
                for name in got:
                    del bad[name]
        report.sources = tried + report.sources
    asked = [r for r, _ in answered]
    for name in sorted(bad):
        report.problems.append(f"{bad[name]} blob {name} ({_where(uses[name])})"
                               f"{_elsewhere(bad[name], holders.get(name), asked, report.unreachable, repair)}")
    return report


def _elsewhere(why: str, holder: str | None, asked: list[str], unreachable: Mapping[str, str], repair: bool) -> str:
    """What a problem line adds about other copies: where one is, or whom fsck asked."""
    if repair:
        return " (no store had a good copy)"
    if holder is not None:  # a corrupt local copy of a blob a remote holds
        return f" (remote {holder} has a copy: `txgit fsck --repair` fetches it)"
    if why != "missing" or not (asked or unreachable):
        return ""
    parts = [f"on no remote (asked {', '.join(asked)})"] if asked else []
    parts += [f"remote {r} could not be asked" for r in unreachable]
    return f": {'; '.join(parts)}"


def _url(store: ObjectStore | Exception | None) -> str:
    return store.url if isinstance(store, ObjectStore) else ""


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


PACK_REWRITE_SHARE = 0.25  # gc rewrites a pack of small blobs once this share of its bytes is garbage
# ... and a pack holding large chunks (a commit's new arrays, up to GBs) from half on: rewriting then
# never copies more live bytes than it frees, and such a pack never holds more than twice its live bytes.
BIG_PACK_REWRITE_SHARE = 0.5


def gc(ws: Repository, *, grace_seconds: float = 3600.0, reflog_days: float = 30.0,
       dry_run: bool = False, budget: int | None = None, pack: bool = True) -> GcReport:
    """Delete local blobs no reachable commit names (and temp files of killed writers); then (``pack``)
    pack the git history into one pack (:func:`pack_history`).

    Reflog entries older than ``reflog_days`` are dropped first (git's default
    for unreachable entries is 30 days too). Blobs modified less than
    ``grace_seconds`` ago are kept. Nothing is deleted when the history cannot
    be read in full. ``budget`` (bytes): also drop the least valuable
    historical states until the store fits (:mod:`txgit.budget`).
    """
    report = GcReport(dry_run=dry_run)
    with ws.lock():
        if not dry_run:  # a merge killed while it recorded its conflict: its refs hold nothing anyone waits on
            drop_orphan_merge_refs(ws)
        since = time.time() - reflog_days * 86400
        states: dict[str, State] = {}
        commits, uses, problems = _uses(ws, reflog_since=since, states=states if budget is not None else None)
        if problems:
            raise TxgitError(f"gc deleted nothing: {problems[0]} (run `txgit fsck`)")
        report.reachable = len(uses)
        cutoff = time.time() - grace_seconds
        reachable = {str(c.id) for c in commits}
        keep: set[str] | dict[str, _Use] = uses
        if budget is not None:
            sizes, mtimes = _budget.blob_sizes(ws)
            young = {n for n, t in mtimes.items() if t >= cutoff}
            plan = _budget.plan(ws, commits, states, budget, sizes, young, cutoff)
            report.budget = plan.report
            keep = plan.keep
            report.reachable = sum(1 for n in uses if n in keep)  # reachable blobs that stay
            if not dry_run:  # the record first: a kill before the deletes leaves states marked, still whole
                _budget.record_dropped(ws, plan, reachable)
        elif not dry_run:
            _budget.forget_unreachable(ws, reachable)
        if not dry_run:  # before any blob goes: a kill between the two leaves only garbage
            report.reflog_entries_expired = ws.history.expire_reflogs(time.time() - since)
        kept_loose: list[str] = []
        for name, mtime in list(ws.store.entries()):
            if name in keep:
                kept_loose.append(name)
                continue
            if mtime >= cutoff:
                report.kept_young += 1
                continue
            path = ws.store.path(name)
            try:
                size = os.stat(path).st_size
                if not dry_run:
                    os.unlink(path)
            except FileNotFoundError:
                continue
            report.deleted.append(name)
            report.bytes_freed += size
        _collect_packed(ws, keep, cutoff, dry_run, rewrite_all=budget is not None, report=report)
        if not dry_run:  # the small blobs that stay: into one pack with the other packs of small blobs
            packed = ws.store.pack_loose(kept_loose, gather=True, min_members=2)
            report.blobs_packed, report.loose_blob_files_removed = packed.blobs, packed.loose_removed
            report.blob_packs_merged = packed.packs_merged
            ws.store.remove_empty_folders()
        if not dry_run:
            report.temp_files_removed = ws.store.remove_stale_temp_files(grace_seconds)
    if pack and not dry_run:
        report.history = pack_history(ws)
        with ws.lock():  # no commit is writing a loose object into a folder being removed
            report.history_folders_removed = ws.history.remove_empty_fanout()
    return report


def pack_history(ws: Repository) -> PackReport:
    """gc's packing of the git history: every loose object and every pack into one pack (see
    :mod:`txgit.gitpack`; a kill at any instant is harmless). Outside the workspace lock: it
    runs safely beside commits, which need not wait for it."""
    return ws.history.pack(gather=True)


def _collect_packed(ws: Repository, keep: set[str] | Mapping[str, object], cutoff: float, dry_run: bool,
                    rewrite_all: bool, report: GcReport) -> None:
    """Garbage inside packs. A pack is rewritten without its garbage once that is at least
    :data:`PACK_REWRITE_SHARE` of its bytes (or with a budget, which asks for the bytes); below that
    it is kept whole: rewriting would copy several live bytes per byte freed, and packs hold only
    small blobs, so what stays is bounded by that share. A pack holding large chunks waits for
    :data:`BIG_PACK_REWRITE_SHARE`: it can be GBs, and a little garbage must not copy them all. A pack
    written within the grace period is kept whole too, like a young loose blob."""
    by_pack: dict[str, list[tuple[str, int]]] = {}
    sizes: dict[str, int] = {}
    young: set[str] = set()
    big: set[str] = set()
    for name, pack, length, mtime in ws.store.packed_entries():
        sizes[pack] = sizes.get(pack, 0) + length
        if length > SMALL_BLOB_MAX:
            big.add(pack)
        if name in keep:
            continue
        by_pack.setdefault(pack, []).append((name, length))
        if mtime >= cutoff:
            young.add(pack)
    for pack, garbage in sorted(by_pack.items()):
        dead = sum(n for _, n in garbage)
        if pack in young:
            report.kept_young += len(garbage)
            continue
        share = BIG_PACK_REWRITE_SHARE if pack in big else PACK_REWRITE_SHARE
        if not rewrite_all and dead < share * sizes[pack]:
            report.kept_in_packs += len(garbage)
            continue
        if not dry_run:
            ws.store.rewrite_packs(keep=lambda n, m: n in keep, packs=[pack])
        report.packs_rewritten += 1
        report.deleted.extend(n for n, _ in garbage)
        report.bytes_freed += dead
