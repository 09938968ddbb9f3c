"""The Python API: a workspace is a folder with ``.txgit/`` in it.

``.txgit/repo.git`` is a bare git repository holding the history of states;
``.txgit/objects/`` is the local content-addressed cache of their bytes.

    ws = Workspace.init("proj")
    ws.commit(namespace, "cleaned data")
    ws.checkout("exp", namespace)        # loads only what differs
    ws.load("model", "HEAD~2")           # one variable, no checkout

Sessions (IPython, scripts), remotes, the CLI and the magics all stand on this.

:class:`Workspace` is the facade over the engine, :class:`txgit.repository.Repository`
(commit, states, the checkout core, refs), and the features that stand on it:
remotes (:mod:`txgit.remote`), trust (:mod:`txgit.trust`), the storage budget
(:mod:`txgit.budget`), fsck and gc (:mod:`txgit.integrity`) and merges
(:mod:`txgit.merging`). It wires them together (the blob reader, the engine's
hooks) and exposes them as one object; nothing below it imports this module.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from txgit import (
    attached as _attached,
    budget as _budget,
    environment,
    integrity as _integrity,
    merging as _merging,
    remote as _remote,
    trust as _trust,
)
from txgit.errors import (
    BranchInUse,
    MergeInProgress as MergeInProgressError,
    MissingBlob,
    PushRejected,
    RefExists,
    RemoteError,
    RestoreError,
    TxgitError,
    UnknownVariable,
)
from txgit.history import ORIG_HEADS, CommitInfo, State, validate_ref_name
from txgit.integrity import FsckReport, GcReport
from txgit.merge import MergeInProgress, MergePlan
from txgit.remote import BlobRepair, FetchResult, Progress, PushResult, RemoteChain, Remotes
from txgit.state import UNPICKLABLE, restore
from txgit.state.safe import safe_loading
from txgit.storage import ObjectStore

from txgit.merging import ref_label

# Re-exported: the engine's and the merge feature's results are part of this module's API, as before.
from txgit.merging import HeldValues, MergeResult
from txgit.repository import (
    TXGIT_DIR,
    CheckoutResult,
    CommitResult,
    PreparedCommit,
    Repository,
    StateDiff,
    StatusReport,
    WorkspaceLock,
)

__all__ = ["GC_GRACE_SECONDS", "TXGIT_DIR", "CheckoutResult", "CommitResult", "MergeResult", "MergeStep",
           "PreparedCommit", "PullResult", "StateDiff", "StatusReport", "Workspace", "WorkspaceLock"]

# gc leaves blobs younger than this alone: see txgit.integrity for why
GC_GRACE_SECONDS = 3600.0


@dataclass
class PullResult:
    """What a pull did to a branch: the fetch, then the merge (or fast-forward) of what it brought."""

    fetch: FetchResult
    branch: str
    old: str | None
    new: str | None
    status: str  # "up-to-date", "fast-forward", "merged", "conflicts"
    merge: MergeResult | None = None  # None when a kernel merged (``answer`` is what it said)
    # commits the remote's branch lost in a forced update (push --force) that the branch still holds,
    # newest first: its next push publishes them again
    dropped: list[str] = field(default_factory=list)
    # the merge as JSON (:meth:`MergeResult.to_json`, or a kernel's answer): what the CLI prints from
    answer: dict[str, Any] = field(default_factory=dict)


# who merges what a pull fetched: (the remote-tracking ref, its label) -> the merge, or a kernel's JSON answer
MergeStep = Callable[[str, str], "MergeResult | dict[str, Any]"]


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


class Workspace(Repository):
    """A folder under txgit: history (git) + object cache + optional remote stores.

    The engine (:class:`Repository`: commit, states, status/diff/log, refs) with the features wired
    in: remotes behind the blob reader, trust and the budget in checkout/load, fsck/gc, merges."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__(root)
        self.remotes = Remotes(self)
        self.blobs = _Blobs(self.store, self.remotes, self.dir)  # blobs the cache lacks come from remotes
        self.budget_policy = _budget.AutoPolicy()  # `txgit config gc.budget`: see txgit.budget

    # -- the engine's hooks: the storage budget ------------------------------------------------
    def _after_write(self, nbytes: int) -> None:
        self.budget_policy.after_write(self, nbytes)

    def _after_unlock(self) -> None:
        if self.budget_policy.due:  # a commit outgrew `gc.budget`: now is a cheap moment
            try:
                self.budget_policy.run_if_due(self, _integrity.gc)
            except TxgitError as e:
                # stacklevel: the caller of WorkspaceLock.release, as when release ran this itself
                warnings.warn(f"txgit: automatic gc --budget did not run: {e}", stacklevel=3)

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
        the identity sharing of the originals, so their pickles' memo differs). Unless
        ``force``, the values the target loads over or deletes are still serialized and
        compared with it (one may have changed with no cell run: a thread, a callback).
        ``trust``: load a state fetched from a remote not marked trusted (unpickling runs its
        code; :class:`txgit.trust.UntrustedState` otherwise). ``safe``: unpickle only allow-listed
        plain data types (:mod:`txgit.state.safe`), for inspecting a stranger's state.
        ``move_head``: False leaves the repository's HEAD alone (a session on a branch of its own).
        ``leaving``: the detached commit being left (default: HEAD's, when detached): commits only it
        reaches are counted in ``result.left_behind``. ``new_branch`` made from a remote-tracking
        branch (``origin/main``) tracks it (``result.upstream``).
        ``result.drift`` lists Python/package versions that differ from the commit's record.
        """
        asked = rev if new_branch is None else f"-b {new_branch} {rev}"
        with self.lock():
            if rev == "HEAD" and self.branch is not None and new_branch is None:
                rev = self.branch  # `checkout HEAD` on a branch stays on it, as in git
            remote_branch = self.remotes.to_track(rev) if new_branch is None else None
            if remote_branch is not None:
                new_branch, rev = rev, remote_branch  # `checkout exp`: exp from origin/exp, tracking it
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
                self.blobs.focus = str(target.id)
                try:
                    with safe_loading(safe):  # may fail: nothing moved yet
                        self._checkout_namespace(target, namespace, force, result, known, against,
                                                 lambda: _trust.require(self, str(target.id), trust=trust, safe=safe))
                except RemoteError as e:
                    raise _remote.storage_down(e, "checked out", f"checkout {asked}") from e
            else:
                self.history.read_state(target, groups=False)  # nor to one this version cannot read
                _budget.require_loadable(self, str(target.id))  # HEAD must not move to a state gc --budget dropped
            if leaving is not None and leaving != str(target.id):
                result.left_behind = self.history.unreferenced(leaving, keep=[str(target.id)])
                result.left_from = leaving
            if new_branch is not None:
                self.history.create_branch(new_branch, target)
                result.upstream = self.remotes.tracking_branch(rev)  # `-b NEW origin/X` tracks it, as in git
                if result.upstream is not None:
                    self.remotes.set_upstream(new_branch, *result.upstream)
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
                raise MergeInProgressError(f"a merge into {ref_label(ref)} is in progress: `txgit merge --abort` first")
            target = self.history.resolve(rev)
            tip = self.history.tip(ref)
            branch = self.branch if ref == "HEAD" else ref_label(ref)
            result = CheckoutResult(info=self.history.info(target, self.history.refs_by_commit()), branch=branch)
            if namespace is not None:
                self.blobs.focus = str(target.id)
                try:
                    with safe_loading(safe):
                        self._checkout_namespace(target, namespace, force, result, known, against,
                                                 lambda: _trust.require(self, str(target.id), trust=trust, safe=safe))
                except RemoteError as e:
                    raise _remote.storage_down(e, "reset", f"reset {rev}") from e
            else:
                self.history.read_state(target, groups=False)  # refuses a state this version cannot read
                _budget.require_loadable(self, str(target.id))
            if tip is None or tip.id != target.id:
                # (a session's ORIG_HEAD is its branch's ref: said as the user typed it)
                typed = re.sub(rf"^{re.escape(ORIG_HEADS)}.+?(?=$|[~^:]|@\{{)", "ORIG_HEAD", rev)
                self.history.move_ref(ref, target, expect=tip, why=f"txgit reset: moving to {typed}")
                if tip is not None:
                    self.history.note_orig_head(tip, ref)
                    result.left_behind = self.history.unreferenced(str(tip.id))
                    result.left_from = str(tip.id)
        return result

    # -- branches --------------------------------------------------------------------------
    def create_branch(self, name: str, rev: str = "HEAD", *, force: bool = False) -> CommitInfo:
        """``git branch [-f] NAME REV``. Forcing a branch a live kernel commits to is refused
        (:class:`BranchInUse`), as git refuses to force a branch a worktree has checked out: the kernel
        would keep its state, and its next commit would merge the moved branch back into its own
        commits. ``reset`` moves such a branch with the kernel."""
        if force and name in self.branches():
            held = _attached.holders(self, name)
            if held:
                who = "this kernel" if held[0].pid == os.getpid() else held[0].describe()
                raise BranchInUse(f"cannot force branch '{name}': {who} commits to it (`txgit reset {rev}` "
                                  "there moves it with the kernel's state)")
        return super().create_branch(name, rev, force=force)

    def delete_branch(self, name: str, *, force: bool = False) -> None:
        """Delete branch ``name``; refused (:class:`BranchInUse`) while a live kernel commits to it, as git
        refuses a branch checked out in another worktree. ``force``: delete it all the same (that kernel's
        next commit makes it again where the kernel is)."""
        held = [] if force else _attached.holders(self, name)
        if held:
            raise BranchInUse(f"cannot delete branch '{name}': {held[0].describe()} commits to it (check out another "
                              "branch there first, or close that notebook)")
        super().delete_branch(name)

    def rename_branch(self, old: str, new: str, *, force: bool = False) -> dict[str, str]:
        """Rename branch ``old`` to ``new`` (``git branch -m``; ``force``: ``-M``, over an existing ``new``), with
        its upstream, HEAD if it is on it, and the refs holding a closed kernel's commits for it (returned,
        old ref -> new ref). Refused (:class:`BranchInUse`) while another live kernel commits to either:
        that kernel renames its own branch (``%txgit branch -m``, or ``txgit branch -m``, which asks it);
        and while a merge into either waits for its conflicts."""
        held = [k for b in (old, new) for k in _attached.holders(self, b) if k.pid != os.getpid()]
        if held:
            k = held[0]
            if k.branch == old:
                raise BranchInUse(f"cannot rename branch '{old}' here: {k.describe()} commits to it (`txgit branch "
                                  f"-m {old} {new}` in a terminal asks that kernel, or `%txgit branch -m` in it)")
            raise BranchInUse(f"cannot replace branch '{new}': {k.describe()} commits to it")
        with self.lock():  # looked for under the lock: a merge that starts meanwhile is seen, or waits for it
            for b in (old, new):
                if _merging.merge_in_progress(self, f"refs/heads/{b}", locked=True) is not None:
                    raise TxgitError(f"cannot rename: a merge into {b} waits for its conflicts (finish it, or "
                                     "`txgit merge --abort`)")
            return self.history.rename_branch(old, new, force=force)

    # -- merge (see txgit.merging) -----------------------------------------------------------
    def merge(self, rev: str, namespace: MutableMapping[str, Any] | None = None, *, ref: str = "HEAD",
              ours: str | None = None, changed: set[str] | None = None, label: str | None = None,
              message: str | None = None, trust: bool = False, safe: bool = False) -> MergeResult:
        """Merge ``rev`` into ``ref`` (HEAD, or a session's branch), three ways, variable by variable
        (:func:`txgit.merging.merge`)."""
        try:
            return _merging.merge(self, rev, namespace, ref=ref, ours=ours, changed=changed, label=label,
                                  message=message, trust=trust, safe=safe)
        except RemoteError as e:
            raise _remote.storage_down(e, "merged", f"merge {label or rev}") from e

    def merge_in_progress(self, ref: str = "HEAD") -> MergeInProgress | None:
        """The merge into ``ref`` that waits for its conflicts to be resolved, if any."""
        return _merging.merge_in_progress(self, ref)

    def merge_done(self, merging: MergeInProgress, commit_id: str) -> None:
        """A session wrote the merge commit of ``merging`` itself: forget the merge in progress.
        Call under the lock."""
        _merging.merge_done(self, merging, commit_id)

    def save_merge(self, merging: MergeInProgress) -> None:
        """Record a merge in progress (its resolutions so far). Call under the lock."""
        _merging.save_merge(self, merging)

    def merge_plan(self, merging: MergeInProgress) -> MergePlan:
        """The plan of a merge in progress, with the resolutions recorded so far applied."""
        return _merging.merge_plan(self, merging)

    def merge_held(self, merging: MergeInProgress) -> list[HeldValues]:
        """What kernels gone during the merge had set in it, in no commit yet, oldest first: ``merge --continue``
        takes them (:func:`txgit.merging.held_values`)."""
        return _merging.held_values(self, merging)

    def hold_merge_values(self, merging: MergeInProgress, commit: str | None) -> None:
        """Hold ``commit``, this kernel's state during ``merging``, until the merge ends (None: drop it).
        Call under the lock (:func:`txgit.merging.hold_values`)."""
        _merging.hold_values(self, merging, commit)

    def take_merge_held(self, merging: MergeInProgress, plan: MergePlan) -> list[HeldValues]:
        """Put what gone kernels held during ``merging`` in ``plan`` (:func:`txgit.merging.take_held`)."""
        return _merging.take_held(self, merging, plan)

    def library_items(self, commit: str | None) -> dict[str, Any]:
        """What ``commit`` recorded of the process's library settings and generator positions, by item
        (:func:`txgit.merging.library_items`)."""
        return _merging.library_items(self, commit)

    def merge_library_items(self, base: str | None, ours: str | None,
                            theirs: str) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
        """The library settings and generator positions a merge records, takes from theirs, and keeps
        as ours' where both changed them (:func:`txgit.merging.merge_library_items`)."""
        return _merging.merge_library_items(self, base, ours, theirs)

    def merge_resolve(self, names: str | Iterable[str] | None, side: str,
                      namespace: MutableMapping[str, Any] | None = None, *, ref: str = "HEAD", commit: bool = True,
                      trust: bool = False, safe: bool = False, force: bool = False) -> MergeResult:
        """Resolve the conflicts that hold ``names`` (a name, several, or None: all that are left) with
        ``side``'s version ("ours" or "theirs") of each whole unit; one merge commit once none is left
        (:func:`txgit.merging.merge_resolve`; ``force``: replace the namespace's uncommitted values of them)."""
        return _merging.merge_resolve(self, names, side, namespace, ref=ref, commit=commit, trust=trust, safe=safe,
                                      force=force)

    def merge_continue(self, *, ref: str = "HEAD") -> MergeResult:
        """Write the merge commit once every conflict is resolved (from the records alone)."""
        return _merging.merge_continue(self, ref=ref)

    def merge_abort(self, namespace: MutableMapping[str, Any] | None = None, *, ref: str = "HEAD",
                    changed: set[str] | None = None, force: bool = False) -> MergeResult:
        """Give up a merge in progress: forget it and, given ``namespace``, put back the values the merge
        loaded or removed as ours has them (the ref never moved); refused if the namespace changed one of
        those since (``changed``: the names it may have changed; None: any), unless ``force``."""
        return _merging.merge_abort(self, namespace, ref=ref, changed=changed, force=force)

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
            return restore({name: rec}, state.groups, self.blobs.get_many, ns, join=self.blobs.read_joined)[name]


    # -- maintenance ---------------------------------------------------------------------
    def fsck(self, *, repair: bool = False, stores: Iterable[ObjectStore] | None = None) -> FsckReport:
        """Check every commit reachable from a ref or reflog: records parse, blobs exist and verify.

        A blob the local store lacks and a remote's store holds is not downloaded yet
        (``report.on_remote``), not a problem. ``repair``: replace corrupt blobs, and blobs missing
        everywhere, with verified copies from ``stores`` (default: the remotes that answer;
        ``report.sources`` says which were tried). See :mod:`txgit.integrity`.
        """
        remotes: dict[str, ObjectStore | Exception] = {}
        for name in self.remotes.names():
            try:
                remotes[name] = self.remotes.store(name)
            except TxgitError as e:  # no storage it can name: it cannot hold a blob
                remotes[name] = e
        return _integrity.fsck(self, repair=repair, stores=stores, remotes=remotes)

    def gc(self, *, grace_seconds: float = GC_GRACE_SECONDS, reflog_days: float = 30.0,
           dry_run: bool = False, budget: int | str | None = None) -> GcReport:
        """Delete local blobs that no ref, HEAD or reflog entry reaches. See :mod:`txgit.integrity`.

        Reflog entries older than ``reflog_days`` are expired first; blobs
        younger than ``grace_seconds`` are kept. ``budget`` (bytes, or a size
        like ``"5GB"``): also drop the least valuable historical states until
        the local store fits; never what a ref or HEAD names (:mod:`txgit.budget`).
        """
        size = None if budget is None else _budget.parse_size(budget)
        return _integrity.gc(self, grace_seconds=grace_seconds, reflog_days=reflog_days, dry_run=dry_run, budget=size)


    def dropped(self) -> list[str]:
        """Commits whose state ``gc --budget`` dropped and that are not back in the local store."""
        return _budget.currently_dropped(self)


    # -- remotes (see txgit.remote) ------------------------------------------------------------
    def push(self, remote: str | None = None, branch: str | None = None, *, all_branches: bool = False,
             tags: bool = False, force: bool = False, progress: Progress | None = None,
             set_upstream: bool = False) -> PushResult:
        """Upload the blobs ``remote``'s storage lacks, then move its refs (see :meth:`Remotes.push`).
        ``set_upstream``: the pushed branches track their remote branch from now on (``push -u``)."""
        try:
            result = self.remotes.push(remote, [branch] if branch else None, all_branches=all_branches, tags=tags,
                                       force=force, progress=progress)
        except PushRejected as e:
            merging = self.merge_in_progress(f"refs/heads/{branch}" if branch else "HEAD")
            if merging is None or "non-fast-forward" not in str(e):
                raise
            # "pull first" cannot work while the last pull's merge waits, and --force would drop theirs
            # (resolving the last conflict writes the merge commit, which holds theirs: then a push goes
            # through; `merge --continue` is refused beside a kernel, so it is not what to say)
            raise PushRejected(f"{str(e).partition('; pull first')[0]}; a merge is in progress on this branch: "
                               "resolve its conflicts (`txgit status` lists them; `txgit merge --ours NAME` / "
                               "`--theirs NAME`), then push; or give it up with `txgit merge --abort`") from e
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
             changed: set[str] | None = None, merge_step: MergeStep | None = None,
             on_fetched: Callable[[FetchResult], None] | None = None) -> PullResult:
        """Fetch, then merge the remote branch into ``into`` (default: the current branch), as ``git pull``.

        ``remote``/``branch``: default the upstream ``into`` tracks, else origin and the same name.
        Ours contained in theirs is a fast-forward; divergent histories are merged variable by variable
        (:meth:`merge`; a conflict leaves a merge in progress). Given ``namespace`` (holding ``ours``,
        default the branch's tip), it follows: only what the merge takes from theirs is loaded.
        ``trust``/``safe`` as for :meth:`checkout` (a remote not trusted needs one to load its values).
        The branch tracks what it pulled from, unless it tracked something already.

        ``merge_step(ref, label)``: who merges the fetched ``ref`` (``origin/main`` as ``label``) instead
        of :meth:`merge`: a live session, here (its ``merge``) or in a kernel (a terminal asks it, and
        gets its JSON answer). Every pull, from the CLI, a magic or Python, goes through here, so that
        they resolve, fetch, refuse and track alike. ``on_fetched``: told what the fetch moved before
        the merge, which may still fail (the fetch is done then)."""
        if branch is not None:
            _remote.refuse_refspec("pull", remote, branch)
        into = into or self.branch
        if into is None:
            raise TxgitError("HEAD is detached: check out a branch to pull into")
        tracked = self.remotes.upstream(into)
        name = remote or (tracked[0] if tracked else self.remotes.default(into))
        their_branch = branch or (tracked[1] if tracked and tracked[0] == name else into)
        fetched = self.remotes.fetch(name, progress=progress)
        if on_fetched is not None:
            on_fetched(fetched)
        ref = f"refs/remotes/{name}/{their_branch}"
        if ref not in self.history.repo.references:
            # (a folder's second kernel is on a branch of its own, which no remote has yet)
            raise self.remotes.no_branch(name, their_branch, into)
        old = self.history.tip(f"refs/heads/{into}")
        label = f"{name}/{their_branch}"
        def here(ref: str, label: str) -> MergeResult:
            return self.merge(ref, namespace, ref=f"refs/heads/{into}", ours=ours, changed=changed, label=label,
                              trust=trust, safe=safe)

        try:
            merged = (merge_step or here)(ref, label)
        except (RemoteError, RestoreError) as e:
            raise _remote.nothing_merged(e, label) from e
        if tracked is None:
            with self.lock():
                self.remotes.set_upstream(into, name, their_branch)
        answer = merged.to_json() if isinstance(merged, MergeResult) else merged
        new = answer["commit"] or (None if old is None else str(old.id))
        return PullResult(fetched, into, None if old is None else str(old.id), new, answer["status"],
                          merged if isinstance(merged, MergeResult) else None,
                          self.remotes.dropped_but_kept(fetched, ref, into), answer)

    def fetch_blobs_from_remotes(self, names: list[str] | set[str], *, replace_local: bool = False) -> BlobRepair:
        """Fetch blobs by hash from any remote storage with a good copy (verified) into the local cache."""
        return self.remotes.fetch_blobs_from_remotes(names, replace_local=replace_local)

    @classmethod
    def clone(cls, url: str, path: str | os.PathLike[str] | None = None, *, storage: str | None = None,
              storage_options: Mapping[str, Any] | None = None, eager: bool = False,
              progress: Progress | None = None, trusted: bool | None = None) -> Workspace:
        """A new workspace with ``url``'s history (see :func:`txgit.remote.clone`; ``trusted``: see :mod:`txgit.trust`)."""
        return _remote.clone(url, path, storage=storage, storage_options=storage_options, eager=eager,
                             progress=progress, trusted=trusted, init=cls.init)

