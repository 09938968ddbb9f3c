"""Merging branches of a workspace: the orchestration around the pure records engine, :mod:`txgit.merge`.

:mod:`txgit.merge` decides, from three states' records alone, what a merge
takes from each side and what conflicts. This module does what that needs
from a workspace: find the merge base, load what the merge takes from theirs
into a live namespace (and refuse when that would lose uncommitted changes),
write the merge commit from the records (no value serialized again, no chunk
read), and keep a merge with conflicts in progress until they are resolved.

A merge in progress into a ref is ``.txgit/merges/<ref>.json`` (its plan's
inputs and the resolutions so far) plus the refs
``refs/txgit/merge/<ref>/{ours,theirs}``, which keep both sides reachable for gc.

The functions take the engine (:class:`txgit.repository.Repository`);
:class:`txgit.workspace.Workspace` exposes them as methods (``ws.merge(...)``).
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2

from txgit import trust as _trust
from txgit.attached import alive
from txgit.errors import DirtyNamespace, MergeInProgress as MergeInProgressError, TxgitError
from txgit.history import DETACHED, META, CommitInfo, History, State, is_hold
from txgit.merge import KERNEL, OURS, THEIRS, Conflict, MergeInProgress, MergePlan, merge_states, units
from txgit.merge import same as _same_unit_record
from txgit.packs import write_atomic
from txgit.repository import Repository, state_meta
from txgit.state import MODULE, UNPICKLABLE, VALUE, Fingerprints, VarRecord, libstate, restore
from txgit.state.safe import safe_loading


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
    # library settings and generator positions (see txgit.state.libstate) the merge takes from theirs:
    # item -> its recorded text, for a live session to set in its process; and those both sides changed
    # differently, of which ours' are kept
    settings: dict[str, Any] = field(default_factory=dict)
    settings_kept: list[str] = field(default_factory=list)
    # values the merge takes from theirs that this process cannot rebuild (a module not installed here):
    # name -> why. Not in the namespace (ours' value is not theirs'); the merge's records keep theirs, and
    # a session's next commits carry it as it is, as after a checkout (:attr:`CheckoutResult.not_restored`)
    not_restored: dict[str, str] = field(default_factory=dict)
    # theirs' values that cannot be saved (a generator), made again here by the code that made them (sessions)
    recomputed: list[str] = field(default_factory=list)
    # ours' values of those, taken out of the namespace (a generator keeps its position): what --abort puts
    # back, as it loads ours' stored values again. In this process only, never in JSON
    replaced: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def conflicts(self) -> list[Conflict]:
        return list(self.plan.conflicts) if self.plan is not None and self.status == "conflicts" else []

    def to_json(self) -> dict[str, Any]:
        """As JSON: what a kernel answers a terminal, and what both print from."""
        return {"status": self.status, "ref": self.ref, "ours": self.ours, "theirs": self.theirs, "base": self.base,
                "label": self.label, "commit": self.info.id if self.info is not None else None,
                "loaded": self.loaded, "removed": self.removed, "bytes_read": self.bytes_read,
                "conflicts": [{"names": c.names, "how": {n: c.describe(n) for n in c.names}} for c in self.conflicts],
                "resolved": dict(self.plan.resolved) if self.plan is not None else {},
                "settings": sorted(self.settings), "settings_kept": self.settings_kept,
                "not_restored": self.not_restored, "recomputed": self.recomputed}


def library_items(ws: Repository, commit: str | None) -> dict[str, Any]:
    """What ``commit`` recorded of the process's library state: its ``libraries`` meta (matplotlib's
    rcParams) and the global generators' positions (files of its tree), by name; none for no commit."""
    if commit is None:
        return {}
    found = ws.history.resolve(commit)
    try:  # its meta.json alone: the records (a state of thousands of variables) are not needed
        recorded = json.loads(ws.history.read_file(found, META) or b"{}").get("libraries")
    except (ValueError, AttributeError):
        recorded = None
    out: dict[str, Any] = dict(recorded) if isinstance(recorded, dict) else {}
    for gen in libstate.GENERATORS:
        data = ws.history.read_file(found, libstate.position_file(gen))
        if data is not None:
            out[gen] = data.decode("utf-8", "replace")
    return out


def merge_library_items(ws: Repository, base: str | None, ours: str | None,
                        theirs: str) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Three ways, item by item, as variables merge: theirs' where only theirs changed it since ``base``,
    else ours' (the live kernel's). Returns (what the merged state records, what it takes from theirs,
    the items both sides changed differently: ours' kept, not a conflict, since generators move on
    every draw and a setting holds no user's data)."""
    b, o, t = library_items(ws, base), library_items(ws, ours), library_items(ws, theirs)
    merged, taken, kept = dict(o), {}, []
    # one a side does not record (a commit of the Python API, made before matplotlib was loaded) is
    # not known there: not a change, as a checkout leaves such a setting where it is
    for item in sorted(t.keys()):
        if t[item] == o.get(item) or t[item] == b.get(item):
            continue
        if o.get(item) == b.get(item):
            merged[item] = taken[item] = t[item]
        else:
            kept.append(item)
    return merged, taken, kept


def _library_files(items: dict[str, Any]) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Merged library items as a commit holds them: (its ``libraries`` meta, its tree files)."""
    meta = {k: v for k, v in items.items() if k not in libstate.GENERATORS}
    files = {libstate.position_file(g): str(items[g]).encode() for g in libstate.GENERATORS if g in items}
    return meta, files


def ref_label(ref: str) -> str:
    """A ref as messages name it: a branch by its name, a kernel's own detached HEAD as HEAD (it is, there)."""
    return "HEAD" if ref.startswith(DETACHED) else ref.removeprefix("refs/heads/")


def merge_label(history: History, rev: str, ref: str) -> str:
    """What a merge of ``rev`` into ``ref`` is called in what it says and in its commit: a closed kernel's
    commits by what they are, not by the ref that keeps them (refs/txgit/held/…, gone once they are merged),
    with the branch they were held for when that is not the one they go into."""
    if not is_hold(rev):
        return rev
    held_for = history.held_for(rev)
    into = history.current_branch() if ref == "HEAD" else ref_label(ref)
    if held_for == (into or "HEAD"):
        return "the commits of a closed kernel"
    return f"the commits of a closed kernel held for {'a detached HEAD' if held_for == 'HEAD' else held_for}"


def _merge_message(label: str, ref: str) -> str:
    into = "" if ref == "HEAD" else f" into {ref_label(ref)}"
    return f"Merge {label}{into}"


def merge(ws: Repository, rev: str, namespace: MutableMapping[str, Any] | None = None, *, ref: str = "HEAD",
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
    Conflicts leave ``ref`` where it is and a merge in progress (:func:`merge_in_progress`), to be
    resolved with :func:`merge_resolve` or :func:`merge_abort`. ``trust``/``safe``: as for
    :meth:`Workspace.checkout`, for loading theirs' values.
    """
    with ws.lock():
        if merge_in_progress(ws, ref, locked=True) is not None:
            raise MergeInProgressError(f"a merge into {ref_label(ref)} is in progress: resolve its conflicts "
                                       "or `txgit merge --abort` first")
        drop_orphan_merge_refs(ws)
        theirs = ws.history.resolve(rev)
        tip = ws.history.tip(ref)
        mine = tip if ours is None else ws.history.resolve(ours)
        label = merge_label(ws.history, label or rev, ref)
        result = MergeResult("up-to-date", ref, None if mine is None else str(mine.id), str(theirs.id), label)
        repo = ws.history.repo
        if mine is not None and (mine.id == theirs.id or repo.descendant_of(mine.id, theirs.id)):
            final = mine  # theirs is in ours already
        elif mine is None or repo.descendant_of(theirs.id, mine.id):
            result.status, final = "fast-forward", theirs
            empty = State({}, {}, {})
            mine_state = ws.history.read_state(mine) if mine is not None else empty
            result.plan = merge_states(mine_state, mine_state, ws.history.read_state(theirs), base_id=result.ours,
                                       ours_id=result.ours or "", theirs_id=str(theirs.id))
        else:
            result.base, base, disputed = _merge_base(ws, str(mine.id), str(theirs.id))
            result.plan = merge_states(base, ws.history.read_state(mine), ws.history.read_state(theirs),
                                       base_id=result.base, ours_id=str(mine.id), theirs_id=str(theirs.id),
                                       disputed=disputed)
            result.status, final = ("conflicts" if result.plan.conflicts else "merged"), None
        # a fast-forward takes all theirs changed since ours; a merge with conflicts too, at once (the
        # working state is the partial merge: what only theirs changed is in, as their variables are)
        if result.status in ("fast-forward", "merged", "conflicts"):
            _, result.settings, result.settings_kept = merge_library_items(
                ws, result.ours if result.status == "fast-forward" else result.base, result.ours, str(theirs.id))
        if tip is not None and result.status != "up-to-date":
            ws.history.note_orig_head(tip, ref)  # `reset ORIG_HEAD` undoes this merge (or pull), as in git
        values: dict[str, Any] = {}
        fingerprints = Fingerprints()
        if namespace is not None and result.plan is not None:
            values, fingerprints = _merge_values(ws, result, namespace, changed, trust=trust, safe=safe)
        if result.status == "conflicts":
            assert mine is not None
            save_merge(ws, MergeInProgress(ref, str(mine.id), str(theirs.id), result.base, label,
                                           message or _merge_message(label, ref)))
        elif final is None:  # a merge commit, on whichever of the two ``ref`` names now
            result.info = _write_merge(ws, result.plan, ref, tip, message or _merge_message(label, ref))
        else:
            if tip is None or tip.id != final.id:
                ws.history.move_ref(ref, final, expect=tip, why=f"merge {label}: Fast-forward")  # (git's words)
            result.info = ws.history.info(final, ws.history.refs_by_commit())
        if namespace is not None and result.plan is not None:
            _put_merged(ws, result, namespace, values, fingerprints)
        if result.status != "conflicts":  # a closed kernel's commits brought in: their ref is done
            ws.history.drop_merged_holds()
    return result


def _merge_values(ws: Repository, result: MergeResult, namespace: MutableMapping[str, Any],
                  changed: set[str] | None, *, trust: bool, safe: bool) -> tuple[dict[str, Any], dict[Any, list[str]]]:
    """Check that the namespace loses nothing, and rebuild the values the merge takes from theirs
    (nothing in the namespace changes yet)."""
    plan = result.plan
    assert plan is not None
    ours = ws.history.read_state(ws.history.resolve(plan.ours)).variables if plan.ours else {}
    # what the merge loads or deletes, and what it may replace once a conflict is resolved (as git, which
    # refuses to merge into a file with local changes that the merge touches at all)
    touched = plan.from_theirs + plan.removed + [n for c in plan.conflicts for n in c.names]
    overwritten = [n for n in touched if changed is None or n in changed]
    now = ws.live_records(namespace, overwritten)
    dirty = sorted(n for n in overwritten
                   if (n in namespace) != (n in ours) or (n in now and not now[n].same_content(ours.get(n))))
    if dirty:
        shown = ", ".join(dirty[:5]) + (" …" if len(dirty) > 5 else "")
        raise DirtyNamespace(f"uncommitted changes to {shown} would be overwritten by the merge: "
                             "commit them first", dirty)
    if not plan.from_theirs:
        return {}, {}
    _trust.require(ws, plan.theirs, trust=trust, safe=safe)
    ws.blobs.focus = plan.theirs
    before = (ws.store.stats.bytes_read, ws.store.stats.blobs_read)
    fingerprints = Fingerprints()
    # a value this process cannot rebuild is left out, not the merge (as a checkout leaves it out):
    # damaged or missing bytes and refused classes still raise, with nothing changed
    failed: dict[str, str] = {}
    with safe_loading(safe):
        values = restore({n: plan.variables[n] for n in plan.from_theirs}, plan.groups, ws.blobs.get_many,
                         namespace, fingerprints, failed, join=ws.blobs.read_joined)
    result.not_restored = {n: f"{plan.variables[n].type} could not be loaded here ({why})"
                           for n, why in sorted(failed.items())}
    # theirs' generator or open file: no bytes to load, and ours' would pass for it (a session makes it
    # again with the code that made it, as a checkout does)
    result.not_restored.update({n: f"{plan.variables[n].type} could not be saved ({plan.variables[n].reason})"
                                for n in plan.from_theirs if plan.variables[n].kind == UNPICKLABLE})
    result.bytes_read = ws.store.stats.bytes_read - before[0]
    result.blobs_read = ws.store.stats.blobs_read - before[1]
    return values, fingerprints


def _put_merged(ws: Repository, result: MergeResult, namespace: MutableMapping[str, Any], values: dict[str, Any],
                fingerprints: dict[Any, list[str]]) -> None:
    plan = result.plan
    assert plan is not None
    for n in plan.removed:
        if n in namespace:
            del namespace[n]
            result.removed.append(n)
    for n in result.not_restored:  # ours' value would pass for the merge's at the next commit
        if n in namespace:
            result.replaced[n] = namespace.pop(n)
    namespace.update(values)
    ws.remember_restored(namespace, values, plan.state(), fingerprints)
    result.loaded = sorted(values)


def _write_merge(ws: Repository, plan: MergePlan, ref: str, tip: pygit2.Commit | None, message: str) -> CommitInfo:
    """The merge commit of a plan with no conflicts left: records only. Its first parent is the one
    ``ref`` names now (libgit2 moves the ref only if it still does)."""
    if tip is None or str(tip.id) not in (plan.ours, plan.theirs):
        raise TxgitError(f"{ref_label(ref)} moved during the merge (now {'nothing' if tip is None else str(tip.id)[:8]}):"
                         " `txgit merge --abort` and merge again")
    other = plan.theirs if str(tip.id) == plan.ours else plan.ours
    origins: dict[str, Any] = {}
    for cid, names in ((plan.ours, set(plan.variables) - set(plan.from_theirs)), (plan.theirs, set(plan.from_theirs))):
        recorded = ws.history.read_state(ws.history.resolve(cid)).meta.get("origins")
        if isinstance(recorded, dict):
            origins.update({n: o for n, o in recorded.items() if n in names})
    # the settings and generator positions too: a checkout of the merge (a clone's first) puts them back
    libraries, files = _library_files(merge_library_items(ws, plan.base, plan.ours, plan.theirs)[0])
    meta = state_meta(plan.variables, plan.groups, {
        "merge": {"base": plan.base, "ours": plan.ours, "theirs": plan.theirs, "from_theirs": plan.from_theirs,
                  "removed": plan.removed, "resolved": dict(sorted(plan.resolved.items()))},
        "origins": dict(sorted(origins.items())),
        **({"libraries": libraries} if libraries else {}),
    })
    oid = ws.history.write_state(plan.state(meta), message, files=files, ref=ref, parent=str(tip.id),
                                 merged=[other])
    _trust.note_derived(ws, oid, [plan.ours, plan.theirs])
    return ws.history.info(ws.history.resolve(oid), ws.history.refs_by_commit())


# merges waiting for their conflicts: one file per ref, and refs that keep both sides reachable (gc)
def _merge_file(ws: Repository, ref: str) -> Path:
    return ws.dir / "merges" / (urllib.parse.quote(ref, safe="") + ".json")


def _merge_ref(ref: str, side: str) -> str:
    return f"{MERGE_REFS}{ref.removeprefix('refs/')}/{side}"


def merge_in_progress(ws: Repository, ref: str = "HEAD", *, locked: bool = False) -> MergeInProgress | None:
    """The merge into ``ref`` that waits for its conflicts to be resolved, if any. ``locked``: the
    caller holds the workspace lock (a record whose merge commit is written is forgotten then)."""
    # Asked before and after every cell, and almost always no merge waits: one stat of the folder
    # says so, without reading HEAD, building the file's path and raising for the missing file.
    if not os.path.isdir(os.path.join(ws.dir, "merges")):
        return None
    if ref == "HEAD" and ws.branch is not None:
        ref = f"refs/heads/{ws.branch}"
    path = _merge_file(ws, ref)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise TxgitError(f"{path} is unreadable ({e}): `txgit merge --abort`") from e
    merging = MergeInProgress.from_json(doc)
    if not _committed(ws, merging):
        return merging
    # a process killed between writing the merge commit and forgetting the merge left its record: the
    # merge is done (else status listed its conflicts again, and resolving or --continue said the
    # branch moved during the merge; an --abort put ours' values back in a kernel beside the merge)
    held = None if locked else ws.try_lock()
    if locked or held is not None:
        try:
            if locked or _committed(ws, merging):
                _clear_merge(ws, merging.ref)
        finally:
            if held is not None:
                held.release()
    return None


def _committed(ws: Repository, merging: MergeInProgress) -> bool:
    """Whether the merge commit of ``merging`` is its branch's tip: its parents are ours and theirs."""
    tip = ws.history.tip(merging.ref)
    return tip is not None and {str(p) for p in tip.parent_ids} == {merging.ours, merging.theirs}


def merge_done(ws: Repository, merging: MergeInProgress, commit_id: str) -> None:
    """A session wrote the merge commit of ``merging`` itself: forget the merge in progress.
    Call under the lock."""
    _trust.note_derived(ws, commit_id, [merging.ours, merging.theirs])
    _clear_merge(ws, merging.ref)


def save_merge(ws: Repository, merging: MergeInProgress) -> None:
    """Record a merge in progress (its resolutions so far). Call under the lock."""
    if merging.ref == "HEAD" and ws.branch is not None:
        merging.ref = f"refs/heads/{ws.branch}"
    path = _merge_file(ws, merging.ref)
    path.parent.mkdir(exist_ok=True)
    for side in ("ours", "theirs"):
        ws.history.repo.references.create(_merge_ref(merging.ref, side),
                                          pygit2.Oid(hex=getattr(merging, side)), force=True)
    write_atomic(str(path), json.dumps(merging.to_json(), indent=1, sort_keys=True).encode())


MERGE_REFS = "refs/txgit/merge/"


def drop_orphan_merge_refs(ws: Repository) -> list[str]:
    """Delete the refs of merges that have no record: a process killed while it recorded a conflict
    wrote the refs (first, so that gc never misses a side) and not the record, so no merge waits,
    yet gc kept both sides. Call under the lock. Returns the refs deleted."""
    dropped = []
    for name in [n for n in ws.history.repo.references if n.startswith(MERGE_REFS)]:
        where = name[len(MERGE_REFS):].rpartition("/")[0]
        ref = where if where == "HEAD" else "refs/" + where
        if not _merge_file(ws, ref).exists():
            ws.history.repo.references.delete(name)
            dropped.append(name)
    try:  # an empty folder left by that kill: merge_in_progress answers "none" with one stat again
        os.rmdir(os.path.join(ws.dir, "merges"))
    except OSError:  # a merge waits (or there is no folder)
        pass
    return dropped


def _clear_merge(ws: Repository, ref: str) -> None:
    _merge_file(ws, ref).unlink(missing_ok=True)
    try:  # the folder goes once empty, so that merge_in_progress answers "none" with one stat again
        os.rmdir(os.path.join(ws.dir, "merges"))
    except OSError:  # another merge still waits (or the folder is gone)
        pass
    for name in _refs_of_merge(ws, ref):  # ours, theirs, and what kernels held during it
        ws.history.repo.references.delete(name)
    ws.history.drop_merged_holds()  # a closed kernel's commits this merge brought in: their ref is done


def _refs_of_merge(ws: Repository, ref: str) -> list[str]:
    prefix = _merge_ref(ref, "")
    return [n for n in ws.history.repo.references if n.startswith(prefix) and "/" not in n[len(prefix):]]


# -- what a kernel set during a merge with conflicts -------------------------------------------------
# Its cells make no commit until the merge commit, and a kernel may die first: each cell that changed
# something writes the kernel's state as a commit on no branch (only its changed values are new blobs),
# held by refs/txgit/merge/<ref>/kernel-<pid> until the merge ends, so that a closed kernel's values can
# be taken by `merge --continue` (or dropped by the merge's end).
HELD = "kernel-"
_SCALARS = {"int", "float", "complex", "bool", "str", "bytes", "NoneType"}


@dataclass
class HeldValues:
    """What kernel ``pid`` set (or deleted) during a merge, relative to the partial merge it stood on,
    in the commit ``commit`` (its whole state: records of the names it did not change are the merge's)."""

    pid: int
    commit: str
    names: list[str]
    state: State

    def describe(self, verb: str = "txgit") -> str:
        """One line: which kernel, what it set (short values) and deleted, and what takes them."""
        return (f"kernel {self.pid} closed during the merge; it had {self.what()}, in no commit yet: "
                f"`{verb} merge --continue` takes them")

    def what(self) -> str:
        """``set x = 99, z = 'mine' and deleted w``."""
        def short(n: str) -> str:
            rec = self.state.variables[n]
            # a scalar's summary is its type and repr ("int 99"): said as it was typed; others as summarized
            scalar = rec.type in _SCALARS and rec.summary.startswith(f"{rec.type} ")
            text = f"{n} = {rec.summary[len(rec.type) + 1:]}" if scalar else f"{n} ({rec.summary})"
            return text if len(text) <= 60 else text[:57] + "..."

        set_ = [short(n) for n in self.names if n in self.state.variables]
        deleted = [n for n in self.names if n not in self.state.variables]
        return " and ".join(p for p in (f"set {', '.join(set_)}" if set_ else "",
                                         f"deleted {', '.join(deleted)}" if deleted else "") if p)


def kernel_lives(merging: MergeInProgress) -> bool:
    """Whether the kernel whose namespace holds the merge's "kernel" resolutions runs: that very process,
    not one given its PID since (:attr:`MergeInProgress.kernel_start`, where recorded)."""
    return merging.kernel is not None and alive(merging.kernel, merging.kernel_start)


def hold_values(ws: Repository, merging: MergeInProgress, commit: str | None, pid: int | None = None) -> None:
    """Hold ``commit`` (a kernel's state during ``merging``, see :class:`HeldValues`) for kernel ``pid``
    (default: this process) until the merge ends; None: drop what it held. Call under the lock."""
    name = _merge_ref(merging.ref if merging.ref != "HEAD" else _head_ref(ws), f"{HELD}{pid or os.getpid()}")
    if commit is not None:
        ws.history.repo.references.create(name, pygit2.Oid(hex=commit), force=True)
    elif name in ws.history.repo.references:
        ws.history.repo.references.delete(name)


def held_values(ws: Repository, merging: MergeInProgress) -> list[HeldValues]:
    """What kernels that are gone (closed, killed, restarted) held during ``merging``, oldest first, less
    the names resolved since by --ours / --theirs, or set by the live kernel whose values stand for them."""
    prefix = _merge_ref(merging.ref, HELD)
    live_kernel = merging.kernel if kernel_lives(merging) else None
    out = []
    for name in ws.history.repo.references:
        if not name.startswith(prefix) or not name[len(prefix):].isdigit():
            continue
        pid = int(name[len(prefix):])
        commit = ws.history.tip(name)
        if commit is None:
            continue
        state = ws.history.read_state(commit)
        recorded = state.meta.get("held")
        names = recorded.get("names") if isinstance(recorded, dict) else None
        if not isinstance(names, list):
            continue
        started = recorded.get("process_start")  # none in a commit held before it was recorded
        if alive(pid, started if isinstance(started, int) else None):
            # (this process too) its values are in its namespace, and its next commit takes them; a
            # process given the PID of a gone kernel since is not that kernel
            continue
        names = [str(n) for n in names if not (merging.resolved.get(n) in (OURS, THEIRS) or (
            merging.resolved.get(n) == KERNEL and live_kernel is not None and live_kernel != pid))]
        if names:
            out.append(HeldValues(pid, str(commit.id), sorted(names), state))
    out.sort(key=lambda h: (ws.history.resolve(h.commit).commit_time, h.pid))
    return out


def take_held(ws: Repository, merging: MergeInProgress, plan: MergePlan) -> list[HeldValues]:
    """Put in ``plan`` what gone kernels held during ``merging`` (:func:`held_values`; a later one's over an
    earlier one's): conflicts they set are resolved by their values ("kernel"). Returns what was taken."""
    held = held_values(ws, merging)
    for h in held:
        names = set(h.names)
        for c in plan.conflicts:  # a unit is taken whole, as a resolution takes it
            if names & set(c.names):
                names |= set(c.names)
        for unit in units(h.state):
            if names & set(unit):
                names |= set(unit)
        for n in names:
            rec = h.state.variables.get(n)
            if rec is None:
                plan.variables.pop(n, None)
            else:
                plan.variables[n] = rec
                if rec.group is not None:
                    plan.groups[rec.group] = h.state.groups[rec.group]
            # the kernel's own values: neither loaded from theirs nor removed by them
            if n in plan.from_theirs:
                plan.from_theirs.remove(n)
            if n in plan.removed:
                plan.removed.remove(n)
        for c in [c for c in plan.conflicts if names & set(c.names)]:
            plan.conflicts.remove(c)
            plan.resolved.update(dict.fromkeys(c.names, KERNEL))
        used = {r.group for r in plan.variables.values() if r.group is not None}
        for g in [g for g in plan.groups if g not in used]:
            del plan.groups[g]
    return held


def _merge_base(ws: Repository, ours: str, theirs: str) -> tuple[str | None, State | None, set[str]]:
    """The merge base of two commits (id and state; None: no common history), and the variables whose
    records differ between their best common ancestors when there are several (a criss-cross: each
    side merged the other's branch). libgit2 names one of those bases; taken alone, a resolution
    made on one side looked like an unchanged value there, and the other side's won silently."""
    repo = ws.history.repo
    first = repo.merge_base(pygit2.Oid(hex=ours), pygit2.Oid(hex=theirs))
    if first is None:
        return None, None, set()
    base = ws.history.read_state(repo[first])

    def since_first(tip: str) -> list[pygit2.Oid]:
        walker = repo.walk(pygit2.Oid(hex=tip), pygit2.enums.SortMode.TOPOLOGICAL)
        walker.hide(first)
        return [c.id for c in walker]

    # other best common ancestors are not ancestors of the first: among what both reach beside it
    from_ours = set(since_first(ours))
    common = [c for c in since_first(theirs) if c in from_ours]
    others = [c for c in common if not any(o != c and repo.descendant_of(o, c) for o in common)]
    disputed: set[str] = set()
    for other in others:
        variables = ws.history.read_state(repo[other]).variables
        for n in set(variables) | set(base.variables):
            a, b = base.variables.get(n), variables.get(n)
            if (a is None) != (b is None) or (a is not None and not a.same_content(b)):
                disputed.add(n)
    return str(first), base, disputed


def merge_plan(ws: Repository, merging: MergeInProgress) -> MergePlan:
    """The plan of a merge in progress, with the resolutions recorded so far applied."""
    base = None if merging.base is None else ws.state(merging.base)
    disputed: set[str] = set()
    if merging.base is not None:
        _, _, disputed = _merge_base(ws, merging.ours, merging.theirs)
    ours, theirs = ws.state(merging.ours), ws.state(merging.theirs)
    plan = merge_states(base, ours, theirs, base_id=merging.base, ours_id=merging.ours, theirs_id=merging.theirs,
                        disputed=disputed)
    # a value set in a kernel resolves its conflict only while that kernel lives to commit it: closed (or
    # restarted) before the merge commit, the value is gone, and taking ours' record under "kernel" lied
    lives = merging.kernel is None or kernel_lives(merging)
    for name, side in merging.resolved.items():
        if side in (OURS, THEIRS) and any(name in c.names for c in plan.conflicts):
            plan.resolve(name, side, ours, theirs)
        elif side == KERNEL and lives:
            plan.conflicts = [c for c in plan.conflicts if name not in c.names]
            plan.resolved[name] = KERNEL
    return plan


def merge_resolve(ws: Repository, names: str | Iterable[str] | None, side: str,
                  namespace: MutableMapping[str, Any] | None = None, *, ref: str = "HEAD", commit: bool = True,
                  trust: bool = False, safe: bool = False, force: bool = False) -> MergeResult:
    """Resolve the conflicts that hold ``names`` (one name, several, or None: every one left) with
    ``side``'s version ("ours" or "theirs") of each whole unit (aliases stay aliases), as git's
    ``checkout --ours PATH...``. A name not in conflict changes nothing. Given ``namespace``, the
    units' values are loaded from that side where the namespace differs. Once no conflict is left
    and ``commit``, the one merge commit is written (records only; a session that set variables
    itself commits them instead). A unit's value that the namespace changed since ours and did not
    commit refuses it (:class:`DirtyNamespace`: committed, it resolves the conflict itself), unless ``force``."""
    if side not in (OURS, THEIRS):
        raise TxgitError(f"resolve with ours or theirs, not {side!r}")
    with ws.lock():
        merging = _require_merge(ws, ref)
        plan = merge_plan(ws, merging)
        if names is None:
            chosen_conflicts = list(plan.conflicts)
        else:
            wanted = [names] if isinstance(names, str) else list(names)
            if not wanted:
                raise TxgitError("name the variables to resolve, or resolve them all")
            chosen_conflicts = []
            for n in wanted:  # every name is checked before anything changes
                c = plan.conflict_of(n)
                if all(c is not x for x in chosen_conflicts):
                    chosen_conflicts.append(c)
        ours, theirs = ws.state(merging.ours), ws.state(merging.theirs)
        unit_names = [n for c in chosen_conflicts for n in c.names]
        for c in chosen_conflicts:
            plan.resolve(c.names[0], side, ours, theirs)
        result = MergeResult("conflicts", merging.ref, merging.ours, merging.theirs, merging.label,
                             base=merging.base, plan=plan)
        if namespace is not None and unit_names and not force:
            # set during the merge and not committed (auto-commit off): taking a side would replace it,
            # in no commit. (A name the namespace lacks is not loaded yet, as in a restarted kernel.)
            held = [n for n in unit_names if n in namespace]
            now = ws.live_records(namespace, held)
            dirty = sorted(n for n in held if n not in now or not now[n].same_content(ours.variables.get(n)))
            if dirty:
                shown = ", ".join(dirty[:5]) + (" …" if len(dirty) > 5 else "")
                raise DirtyNamespace(f"uncommitted changes to {shown} would be overwritten by taking {side}: "
                                     "commit them first (committed, they resolve the conflict), or take "
                                     f"{side} with --force and lose them")
        if namespace is not None and unit_names:
            chosen = ours if side == OURS else theirs
            present = [n for n in unit_names if n in chosen.variables]
            now = ws.live_records(namespace, present)
            load = [n for n in present if not chosen.variables[n].same_content(now.get(n))]
            if load:
                if side == THEIRS:
                    _trust.require(ws, merging.theirs, trust=trust, safe=safe)
                fingerprints = Fingerprints()
                with safe_loading(safe):
                    values = restore({n: chosen.variables[n] for n in load}, chosen.groups, ws.blobs.get_many,
                                     namespace, fingerprints, join=ws.blobs.read_joined)
                namespace.update(values)
                ws.remember_restored(namespace, values, chosen, fingerprints)
                result.loaded = sorted(values)
            for n in unit_names:
                if n not in chosen.variables and n in namespace:
                    del namespace[n]
                    result.removed.append(n)
            # theirs' generator made by other code than ours': ours' would pass for it (a session makes it
            # again by running theirs' code: trusted, as loading their values is)
            remake = [n for n in present if side == THEIRS and chosen.variables[n].kind == UNPICKLABLE
                      and not _same_unit_record(chosen.variables[n], ours.variables.get(n))]
            if remake:
                _trust.require(ws, merging.theirs, trust=trust, safe=safe)
            for n in remake:
                if n in namespace:
                    result.replaced[n] = namespace.pop(n)
                result.not_restored[n] = f"{chosen.variables[n].type} could not be saved ({chosen.variables[n].reason})"
        for n in unit_names:
            merging.resolved[n] = side
        # what a kernel gone during the merge set beside the conflicts waits for --continue, which takes it:
        # the merge commit is not written without it (the merge's end would drop it)
        if plan.conflicts or not commit or held_values(ws, merging):
            save_merge(ws, merging)
            return result
        return _finish_merge(ws, merging, plan, result)


def require_resolved(plan: MergePlan) -> None:
    """Refuse to finish a merge whose plan still has conflicts, naming them and what resolves them."""
    if plan.conflicts:
        raise TxgitError(f"unresolved conflicts: {', '.join(c.label for c in plan.conflicts)} "
                         "(`txgit merge --ours NAME...` or `--theirs NAME...`; no NAME: all of them)")


def nothing_to_continue(ws: Repository, ref: str = "HEAD") -> str:
    """Why there is no merge to continue on ``ref``: none was started, or (what a user who just
    resolved the last conflict meets) its last resolution already wrote the merge commit."""
    ref = ref if ref != "HEAD" else _head_ref(ws)
    where = ref_label(ref)
    tip = ws.history.tip(ref)
    if tip is not None and len(tip.parents) > 1:
        merge_meta = ws.history.read_state(tip, groups=False).meta.get("merge")
        if isinstance(merge_meta, dict) and merge_meta.get("resolved"):
            return (f"nothing to continue: the merge was committed as {str(tip.id)[:8]} "
                    f"({tip.message.splitlines()[0] if tip.message else 'merge'}) when its last conflict "
                    f"was resolved")
    return f"nothing to continue: no merge in progress on {where}"


def _require_merge(ws: Repository, ref: str) -> MergeInProgress:
    """The merge in progress on ``ref``, or an error saying there is none. Call under the lock."""
    merging = merge_in_progress(ws, ref, locked=True)
    if merging is None:
        raise TxgitError(f"no merge in progress on {ref_label(ref if ref != 'HEAD' else _head_ref(ws))}")
    return merging


def _head_ref(ws: Repository) -> str:
    return f"refs/heads/{ws.branch}" if ws.branch is not None else "HEAD"


def _finish_merge(ws: Repository, merging: MergeInProgress, plan: MergePlan, result: MergeResult) -> MergeResult:
    result.info = _write_merge(ws, plan, merging.ref, ws.history.tip(merging.ref), merging.message)
    result.status = "merged"
    _clear_merge(ws, merging.ref)
    return result


def merge_continue(ws: Repository, *, ref: str = "HEAD") -> MergeResult:
    """Write the merge commit once every conflict is resolved (from the records alone)."""
    with ws.lock():
        if merge_in_progress(ws, ref, locked=True) is None:
            raise TxgitError(nothing_to_continue(ws, ref))
        merging = _require_merge(ws, ref)
        plan = merge_plan(ws, merging)
        take_held(ws, merging, plan)  # what a kernel closed during the merge had set
        require_resolved(plan)
        if kernel_lives(merging) and any(
                side == KERNEL for side in merging.resolved.values()):
            raise TxgitError("conflicts were resolved in a kernel: commit from that kernel")
        result = MergeResult("conflicts", merging.ref, merging.ours, merging.theirs, merging.label,
                             base=merging.base, plan=plan)
        return _finish_merge(ws, merging, plan, result)


def _no_changes_since_merged(ws: Repository, merging: MergeInProgress, namespace: MutableMapping[str, Any],
                             now: dict[str, VarRecord], ours: State, names: set[str]) -> None:
    """Refuse an abort that would drop a value the namespace set after the merge loaded or removed
    it: neither what the merge put there nor ours'; or a conflict's value set here (a resolution typed in
    a cell while another conflict waits): neither ours' nor theirs'. A resolution by --ours/--theirs is
    a side's value, which the abort may drop."""
    plan = merge_plan(ws, merging)
    theirs = ws.state(merging.theirs)

    def differs(n: str, record: VarRecord | None) -> bool:
        return (n in namespace) != (record is not None) or (n in now and not now[n].same_content(record))

    merged = set(plan.from_theirs) | set(plan.removed)
    lost = sorted(n for n in names & merged
                  if differs(n, plan.variables.get(n)) and differs(n, ours.variables.get(n)))
    disputed = {n for c in plan.conflicts for n in c.names} | set(merging.resolved)
    lost += sorted(n for n in names & disputed - merged
                   if differs(n, ours.variables.get(n)) and differs(n, theirs.variables.get(n)))
    if lost:
        shown = ", ".join(lost[:5]) + (" …" if len(lost) > 5 else "")
        raise DirtyNamespace(f"the abort would lose {shown}, changed during the merge: finish the merge (the "
                             "next commit keeps them), set them back, or drop them with `txgit merge --abort "
                             "--force`")


def merge_abort(ws: Repository, namespace: MutableMapping[str, Any] | None = None, *, ref: str = "HEAD",
                changed: set[str] | None = None, force: bool = False) -> MergeResult:
    """Give up a merge in progress: forget it and, given ``namespace``, put back the values the merge
    loaded or removed as ours has them (the ref never moved). One of those that the namespace changed
    since the merge put it there (``changed``: the names it may have changed; None: any) refuses it
    (:class:`DirtyNamespace`), as git's ``reset --merge`` refuses to drop a merged file's own changes."""
    with ws.lock():
        merging = _require_merge(ws, ref)
        result = MergeResult("aborted", merging.ref, merging.ours, merging.theirs, merging.label,
                             base=merging.base)
        held = [] if force else held_values(ws, merging)
        if held:
            h = held[-1]
            raise DirtyNamespace(f"the abort would lose what kernel {h.pid} had done during the merge before it "
                                 f"closed ({h.what()}): `txgit merge --continue` takes it; `txgit merge --abort "
                                 "--force` drops it")
        if namespace is not None:
            ours, theirs = ws.state(merging.ours), ws.state(merging.theirs)
            # where the merge may have loaded or removed anything: names ours and theirs disagree on (a
            # generator made by other code too: a session puts ours' back, see Session.merge_abort)
            touched = {n for n in set(ours.variables) | set(theirs.variables)
                       if not _same_unit_record(ours.variables.get(n), theirs.variables.get(n))}
            now = ws.live_records(namespace, touched)
            if not force:
                _no_changes_since_merged(ws, merging, namespace, now, ours,
                                         touched if changed is None else touched & changed)
            load = sorted(n for n in touched if n in ours.variables and ours.variables[n].kind in (VALUE, MODULE)
                          and not ours.variables[n].same_content(now.get(n)))
            fingerprints = Fingerprints()
            values = restore({n: ours.variables[n] for n in load}, ours.groups, ws.blobs.get_many, namespace,
                             fingerprints, join=ws.blobs.read_joined)
            for n in sorted(touched):
                if n not in ours.variables and n in namespace:
                    del namespace[n]
                    result.removed.append(n)
            namespace.update(values)
            ws.remember_restored(namespace, values, ours, fingerprints)
            result.loaded = sorted(values)
        _clear_merge(ws, merging.ref)
    return result

