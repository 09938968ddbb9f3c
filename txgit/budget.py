"""Materialization under a storage budget: which historical states keep their bytes.

``txgit gc --budget 5GB`` keeps the blobs of the local object store within a
size by deleting the bytes of the *least valuable historical states*. It never
touches what a ref names: the state at the tip of every branch, tag,
remote-tracking ref (and any other ref), HEAD, and every commit or blob younger
than gc's grace period stay whole. Only the local cache shrinks: git history is
never rewritten, so a dropped state is still in ``txgit log``, and its bytes come
back from a remote storage that still has them (on demand, as for a lazy clone)
or by re-running its code.

**Value of a state.** Each commit's *artifact* is the blobs it introduced: the
chunks of the groups it added or changed relative to its first parent that the
parent's state does not already hold (a chunk shared by several of its groups
counts once). Its value density is::

    recompute cost x likelihood of reuse / artifact bytes

* recompute cost: the summed ``seconds`` of the cells recorded in its
  ``code/cells.json`` (a plain ``Workspace.commit`` records none: cost 0, since
  txgit cannot know what it would cost to make that state again);
* likelihood of reuse: 1 + the number of commits whose meta says they reused a
  result of this commit (``"reuse": {"from": "<commit id>", ...}``, or a list of
  such records), as the reuse layer writes them;
* a commit that introduced no bytes costs nothing to keep and is always kept.

**The rule.** The bytes that must stay (protected states' blobs and young blobs)
are counted first. Then historical states are kept in order of value density,
highest first (ties: the newer first), each one only if *its whole state* (its
artifact and whatever it shares with its ancestors that is not kept already)
still fits in the budget; a state that does not fit is dropped and smaller ones
after it may still fit (a greedy knapsack). A blob is deleted only when no kept,
protected or young state needs it, so every kept state still checks out exactly.
When the protected states alone exceed the budget, every historical state is
dropped and the report says the budget could not be met.

**Dropped states stay understandable.** Before any blob goes, the dropped
commits and the blobs each lost are recorded in ``.txgit/dropped.json``. fsck
reports them as information ("N states dropped by gc --budget"), not as missing
blobs; loading one from a store that lacks them raises :class:`DroppedState`, one
line naming the commit and how to bring it back. A state whose blobs came back
(fetched, or recomputed to the same bytes) no longer counts as dropped.

**Automatic policy.** ``txgit config gc.budget 5GB`` (:func:`set_budget`) stores
a budget in the workspace's git config. After a commit, when the store has grown
past the budget by 10 %, the budgeted gc runs as soon as the commit's writer
releases the workspace lock (in a kernel: in the background writer thread, while
the next cell runs). Its estimate of the store's size is one scan of the store
per process plus the bytes each commit wrote, so a commit pays almost nothing.

This module stands on the engine (:mod:`txgit.repository`: history and storage);
:mod:`txgit.integrity` stands on it.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from txgit.errors import DroppedState, TxgitError
from txgit.history import ref_tips
from txgit.packs import write_atomic

if TYPE_CHECKING:
    import pygit2

    from txgit.history import State
    from txgit.repository import Repository

DROPPED_FILE = "dropped.json"  # in .txgit/
CONFIG_KEY = "txgit.gc-budget"  # in the workspace's git config; `txgit config gc.budget` sets it
AUTO_SLACK = 1.10  # the automatic gc runs once the store exceeds the budget by this factor
CELLS_FILE = "code/cells.json"
__all__ = ["DroppedState", "parse_size", "set_budget", "get_budget", "plan", "BudgetReport", "Artifact"]

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    """Bytes from a size like ``5GB``, ``500MB``, ``1.5GiB`` or ``1024`` (kB, MB, GB, TB are powers of 1000)."""
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        return text
    m = _SIZE.fullmatch(str(text))
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _UNITS:
        raise TxgitError(f"invalid size {str(text)[:40]!r}: give a number and a unit, like 5GB, 500MB or 1.5GiB")
    return int(float(m.group(1)) * _UNITS[unit])


# -- the record of dropped states ----------------------------------------------------------------

def read_dropped(ws_dir: Path) -> dict[str, dict[str, Any]]:
    """commit id -> {"at": time, "bytes": artifact bytes, "value": density, "blobs": [names it lost]}."""
    try:
        doc = json.loads((ws_dir / DROPPED_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return {}
    commits = doc.get("commits") if isinstance(doc, dict) else None
    if not isinstance(commits, dict):
        return {}
    return {str(k): v for k, v in commits.items()
            if isinstance(v, dict) and isinstance(v.get("blobs"), list)}


def _write_dropped(ws_dir: Path, commits: Mapping[str, dict[str, Any]]) -> None:
    path = ws_dir / DROPPED_FILE
    if not commits:
        path.unlink(missing_ok=True)
        return
    # readers see the old record or the new one
    write_atomic(str(path), (json.dumps({"commits": dict(commits)}, indent=1, sort_keys=True) + "\n").encode())


def dropped_blobs(ws_dir: Path) -> dict[str, list[str]]:
    """blob name -> dropped commits that lost it (from the record; some may be back since)."""
    out: dict[str, list[str]] = {}
    for cid, rec in read_dropped(ws_dir).items():
        for name in rec["blobs"]:
            out.setdefault(str(name), []).append(cid)
    return out


def explain_missing(ws_dir: Path, missing: Iterable[str], prefer: str | None = None) -> DroppedState | None:
    """The error to raise when ``missing`` blobs were deleted by ``gc --budget``; None when they were not."""
    owners = dropped_blobs(ws_dir)
    commits = sorted({c for n in missing for c in owners.get(n, [])})
    if not commits:
        return None
    if prefer in commits:
        commits.remove(prefer)
        commits.insert(0, prefer)
    more = f" (as were {len(commits) - 1} other states it shares bytes with)" if len(commits) > 1 else ""
    return DroppedState(
        f"the state of commit {commits[0][:8]} was dropped by `gc --budget` to stay within the storage budget"
        f"{more}: re-run its code, or add a remote whose storage still has it (`txgit remote add`) "
        "and load it again, to bring it back")


def require_loadable(ws: Repository, commit_id: str) -> None:
    """Raise :class:`DroppedState` when ``gc --budget`` dropped this state and no remote store has its bytes.

    For a checkout that moves HEAD without loading (the terminal, no kernel):
    HEAD must not move to a state nothing can load. Cheap when nothing was dropped.
    """
    if not (ws.dir / DROPPED_FILE).exists():
        return
    state = ws.history.read_state(ws.history.resolve(commit_id))
    need = ws.store.missing({c for g in state.groups.values() for c in g.chunk_names()})
    for store in ws.blobs.fallbacks if need else []:
        try:
            need = need & store.missing(need)
        except TxgitError:  # an unreachable remote cannot help
            continue
    error = explain_missing(ws.dir, need, commit_id) if need else None
    if error is not None:
        raise error


# -- value --------------------------------------------------------------------------------------

def recompute_seconds(cells_json: bytes | None) -> float:
    """The summed ``seconds`` of the cells a commit recorded (0 when it recorded none or they are unreadable)."""
    if not cells_json:
        return 0.0
    try:
        cells = json.loads(cells_json)
    except ValueError:
        return 0.0
    total = 0.0
    for cell in cells if isinstance(cells, list) else []:
        s = cell.get("seconds") if isinstance(cell, dict) else None
        if isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s) and s > 0:
            total += float(s)
    return total


def reused_from(meta: Mapping[str, Any]) -> list[str]:
    """Commit ids this commit's meta says it reused results of (``reuse.from``; a record or a list of them)."""
    reuse = meta.get("reuse")
    records = reuse if isinstance(reuse, list) else [reuse]
    return [r["from"] for r in records if isinstance(r, dict) and isinstance(r.get("from"), str)]


@dataclass
class Artifact:
    """One historical state as the budget sees it."""

    commit: str
    time: int
    message: str
    bytes: int  # its artifact: the blobs it introduced (present locally)
    cost: float  # seconds to recompute (its cells)
    reuses: int  # commits that reused its results

    @property
    def value(self) -> float:
        """Value density: cost x (1 + reuses) / bytes; infinite when it introduced nothing."""
        if self.bytes == 0:
            return math.inf
        return self.cost * (1 + self.reuses) / self.bytes


@dataclass
class BudgetReport:
    """What a budgeted gc kept and dropped."""

    budget: int
    store_before: int = 0  # bytes of local blobs before
    store_after: int = 0  # bytes of local blobs after (what would remain, with dry_run)
    protected_bytes: int = 0  # bytes that had to stay: protected states and young blobs
    protected: list[str] = field(default_factory=list)  # commits never dropped (ref tips, HEAD, young)
    kept: list[Artifact] = field(default_factory=list)
    dropped: list[Artifact] = field(default_factory=list)  # newly dropped by this run, least valuable first

    @property
    def met(self) -> bool:
        return self.store_after <= self.budget


@dataclass
class Plan:
    """What a budgeted gc decided: the blobs to keep, and the report."""

    keep: set[str]
    lost: dict[str, set[str]]  # commit -> blobs of its state that go
    report: BudgetReport


def plan(ws: Repository, commits: list[pygit2.Commit], states: Mapping[str, State], budget: int,
         sizes: Mapping[str, int], young: set[str], grace_cutoff: float) -> Plan:
    """Choose which states keep their bytes (see the module docstring for the rule).

    ``commits``/``states``: every reachable commit and its state; ``sizes``: the
    local blobs and their sizes; ``young``: blobs inside the grace period.
    """
    chunks_of_group: dict[str, list[str]] = {}
    blobs_of: dict[str, set[str]] = {}
    for cid, state in states.items():
        names: set[str] = set()
        for gid, record in state.groups.items():
            if gid not in chunks_of_group:
                chunks_of_group[gid] = record.chunk_names()
            names.update(chunks_of_group[gid])
        blobs_of[cid] = names
    reuses: dict[str, int] = {}
    for state in states.values():
        for source in reused_from(state.meta):
            reuses[source] = reuses.get(source, 0) + 1
    # every commit a ref (branches, tags, remote-tracking, txgit's own) or HEAD names; gc already
    # refused to run on an unreadable ref
    tips = set(ref_tips(ws.history.repo).values())
    protected = {str(c.id) for c in commits if str(c.id) in tips or c.commit_time >= grace_cutoff}
    keep = {n for n in young if n in sizes}
    for cid in protected:
        keep |= blobs_of.get(cid, set()) & sizes.keys()
    report = BudgetReport(budget=budget, store_before=sum(sizes.values()), protected=sorted(protected))
    used = report.protected_bytes = sum(sizes[n] for n in keep)
    candidates: list[tuple[Artifact, bool]] = []
    for commit in commits:
        cid = str(commit.id)
        if cid in protected:
            continue
        parent = str(commit.parent_ids[0]) if commit.parent_ids else None
        parent_groups = states[parent].groups if parent in states else {}
        parent_blobs = blobs_of.get(parent, set()) if parent else set()
        introduced: set[str] = set()
        for gid in states[cid].groups:
            if gid not in parent_groups:
                introduced.update(chunks_of_group[gid])
        introduced -= parent_blobs
        art = Artifact(cid, commit.commit_time, commit.message.strip().split("\n")[0],
                       sum(sizes.get(n, 0) for n in introduced),
                       recompute_seconds(ws.history.read_file(commit, CELLS_FILE)), reuses.get(cid, 0))
        candidates.append((art, blobs_of[cid] <= sizes.keys()))
    candidates.sort(key=lambda c: (-c[0].value, -c[0].time, c[0].commit))
    for art, materialized in candidates:
        extra = blobs_of[art.commit] - keep
        extra_bytes = sum(sizes.get(n, 0) for n in extra)
        if materialized and used + extra_bytes <= budget:
            keep |= extra
            used += extra_bytes
            report.kept.append(art)
        else:
            report.dropped.append(art)
    lost = {a.commit: blobs_of[a.commit] & (sizes.keys() - keep) for a in report.dropped}
    # only states that lose bytes now are news; the others stay as they were (kept whole, or dropped before)
    report.dropped = [a for a in report.dropped if lost[a.commit]]
    report.dropped.reverse()  # least valuable first
    report.store_after = used
    return Plan(keep, {c: b for c, b in lost.items() if b}, report)


def record_dropped(ws: Repository, plan_: Plan, reachable: set[str]) -> None:
    """Add this run's dropped states to ``.txgit/dropped.json`` (before any blob goes); forget unreachable ones."""
    commits = {c: r for c, r in read_dropped(ws.dir).items() if c in reachable}
    now = time.time()
    by_id = {a.commit: a for a in plan_.report.dropped}
    for cid, blobs in plan_.lost.items():
        old = commits.get(cid, {})
        art = by_id.get(cid)
        commits[cid] = {"at": now, "bytes": art.bytes if art else old.get("bytes", 0),
                        "value": None if art is None or math.isinf(art.value) else art.value,
                        "blobs": sorted(set(old.get("blobs", [])) | blobs)}
    _write_dropped(ws.dir, commits)


def forget_unreachable(ws: Repository, reachable: set[str]) -> None:
    """Drop records of states no ref or reflog reaches any more (plain gc calls this)."""
    commits = read_dropped(ws.dir)
    kept = {c: r for c, r in commits.items() if c in reachable}
    if len(kept) != len(commits):
        _write_dropped(ws.dir, kept)


def currently_dropped(ws: Repository, reachable: set[str] | None = None) -> list[str]:
    """Recorded dropped states (reachable ones, if given) that still lack a blob locally, sorted."""
    out = []
    for cid, rec in read_dropped(ws.dir).items():
        if reachable is not None and cid not in reachable:
            continue
        if ws.store.missing(rec["blobs"]):
            out.append(cid)
    return sorted(out)


# -- the setting and the automatic policy ------------------------------------------------------------

def get_budget(ws: Repository) -> int | None:
    """The workspace's automatic budget in bytes (``txgit config gc.budget``), or None."""
    cfg = ws.history.repo.config
    if CONFIG_KEY not in cfg:
        return None
    try:
        return parse_size(cfg[CONFIG_KEY])
    except TxgitError:
        return None  # a hand-edited bad value turns the policy off rather than breaking commits


def set_budget(ws: Repository, size: str | int | None) -> int | None:
    """Set (or with None, remove) the automatic budget; returns it in bytes. Bad sizes raise TxgitError."""
    value = None if size is None else parse_size(size)
    with ws.lock():
        cfg = ws.history.repo.config
        if value is None:
            if CONFIG_KEY in cfg:
                del cfg[CONFIG_KEY]
        else:
            cfg[CONFIG_KEY] = str(size).strip()
    return value


def store_bytes(ws: Repository) -> int:
    """Bytes of every blob in the local store, loose or packed (one scan)."""
    total = 0
    ws.store.packs.refresh()
    for name, _ in ws.store.entries():
        try:
            total += os.stat(ws.store.path(name)).st_size
        except FileNotFoundError:
            continue
    total += sum(ws.store.packs.pack_sizes.values())  # refreshed by entries' caller below
    return total


def blob_sizes(ws: Repository) -> tuple[dict[str, int], dict[str, float]]:
    """Size and modification time of every local blob."""
    sizes: dict[str, int] = {}
    mtimes: dict[str, float] = {}
    for name, _ in ws.store.entries():
        try:
            st = os.stat(ws.store.path(name))
        except FileNotFoundError:
            continue
        sizes[name], mtimes[name] = st.st_size, st.st_mtime
    for name, _pack, length, mtime in ws.store.packed_entries():
        if name not in sizes:
            sizes[name], mtimes[name] = length, mtime
    return sizes, mtimes


class AutoPolicy:
    """Per-workspace-object state of the automatic policy: the store-size estimate, and whether gc is due."""

    def __init__(self) -> None:
        self.grace_seconds = 3600.0  # gc's default grace (tests lower it to see states dropped at once)
        self.estimate: int | None = None
        self.threshold = 0
        self.due = False

    def after_write(self, ws: Repository, written: int) -> None:
        """A commit wrote ``written`` bytes (under the lock): note whether the budgeted gc is due."""
        budget = get_budget(ws)
        if budget is None:
            return
        if self.estimate is None:
            self.estimate = store_bytes(ws)
        else:
            self.estimate += written
        if self.estimate > max(self.threshold, budget * AUTO_SLACK):
            self.due = True

    def run_if_due(self, ws: Repository, gc: Callable[..., Any]) -> Any:
        """Run the budgeted gc if a commit made it due (call without holding the lock).

        ``gc``: :func:`txgit.integrity.gc`, passed in because integrity stands on this module."""
        if not self.due:
            return None
        self.due = False
        budget = get_budget(ws)
        if budget is None:
            return None
        # pack=False: in a kernel this runs in the writer thread; the background packer keeps the history packed
        report = gc(ws, budget=budget, grace_seconds=self.grace_seconds, pack=False)
        after = report.budget.store_after if report.budget is not None else store_bytes(ws)
        self.estimate = after
        # protected states alone may exceed the budget: wait for another 10 % of growth, not every commit
        self.threshold = int(max(budget, after) * AUTO_SLACK)
        return report
