"""Text for the terminal: sizes, ref decorations, change summaries, truncated values.

Plain functions over records and CommitInfo: no workspace I/O beyond what the
caller passes in (and :class:`Refs`, which reads a workspace's refs once); the CLI,
the notebook views and `txgit serve` share them.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from txgit.errors import TxgitError
from txgit.history import CommitInfo
from txgit.state import MODULE, NAMESPACE, VarRecord
from txgit.workspace import StateDiff, Workspace

DATE_FORMAT = "%a %b %d %H:%M:%S %Y %z"  # git's default


def human_size(n: int) -> str:
    """1234567 -> '1.2 MB' (decimal units, like ls -h --si and most UIs)."""
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        value /= 1000
        if value < 999.5:
            return f"{value:.1f} {unit}" if value < 99.95 else f"{value:.0f} {unit}"
    return f"{value:.0f} PB"


def format_date(when: datetime) -> str:
    return when.astimezone().strftime(DATE_FORMAT)


def decorations(info: CommitInfo, branches: Mapping[str, str], tags: Mapping[str, str],
                head_branch: str | None, head_id: str | None,
                remote_branches: Mapping[str, str] | None = None) -> list[str]:
    """git's decorations for one commit: 'HEAD -> main', 'exp', 'origin/main', 'tag: v1' (HEAD alone
    when detached). ``remote_branches``: remote-tracking branches (``origin/main`` -> commit id)."""
    out: list[str] = []
    if head_branch is None and head_id == info.id:
        out.append("HEAD")
    for name in sorted(branches, key=lambda b: (b != head_branch, b)):
        if branches[name] == info.id:
            out.append(f"HEAD -> {name}" if name == head_branch else name)
    remote_branches = remote_branches or {}
    out.extend(r for r in sorted(remote_branches) if remote_branches[r] == info.id)
    out.extend(f"tag: {t}" for t in sorted(tags) if tags[t] == info.id)
    return out


class Refs:
    """Branches, remote-tracking branches, tags and HEAD, read once, to decorate commits like git does
    (:func:`decorations`); calling it with a commit gives that commit's decorations."""

    def __init__(self, ws: Workspace, here: tuple[str | None, str] | None = None) -> None:
        # ``here``: (branch or None when detached, commit) of a kernel not on HEAD's branch, marked HEAD instead
        self.branches, self.tags, self.head_branch = ws.branches(), ws.tags(), ws.branch
        self.remote_branches = ws.remote_branches()
        head = ws.head()
        self.head_id = head.id if head is not None else None
        if here is not None:
            self.head_branch, self.head_id = here

    def __call__(self, info: CommitInfo) -> list[str]:
        return decorations(info, self.branches, self.tags, self.head_branch, self.head_id, self.remote_branches)

    @property
    def remote(self) -> set[str]:
        """The decorations that name remote-tracking branches (a local branch of that name wins)."""
        return set(self.remote_branches) - set(self.branches)


def record_kind(rec: VarRecord) -> str:
    """The type column of `show`: what the record says, with the kinds that are not plain values marked."""
    if rec.kind == MODULE:
        return "module"
    if rec.kind == NAMESPACE:
        return f"{rec.type} (the namespace)"
    return rec.type


def _short_change(old: str, new: str) -> str:
    """'DataFrame 1000x12' -> 'DataFrame 1000x14' says '1000x12 -> 1000x14': the shared type word goes."""
    o, n = old.split(" ", 1), new.split(" ", 1)
    if len(o) == 2 and len(n) == 2 and o[0] == n[0]:
        return f"{o[1]} -> {n[1]}"
    return f"{old} -> {new}"


def change_summary(diff: StateDiff, *, limit: int = 8) -> str:
    """One line for `log --graph`: '+model  ~df (1000x12 -> 1000x14)  -tmp'.

    Changed variables show old -> new summaries when those differ (same shape,
    new values shows just '~name'). Past ``limit`` items: '… (+N more)'.
    """
    items: list[str] = [f"+{n}" for n in diff.added]
    for name, (old, new) in diff.changed.items():
        items.append(f"~{name} ({_short_change(old.summary, new.summary)})" if old.summary != new.summary else f"~{name}")
    items.extend(f"-{n}" for n in diff.removed)
    if len(items) > limit:
        items = items[:limit] + [f"… (+{len(items) - limit} more)"]
    return "  ".join(items)


def added_diff(a: str, b: str, variables: Mapping[str, VarRecord]) -> StateDiff:
    """The diff of a root commit: everything in it is new."""
    return StateDiff(a, b, added={n: variables[n] for n in sorted(variables)})


def truncated_repr(value: Any, *, max_lines: int = 40, max_chars: int = 4000) -> str:
    """repr(value) cut to a screenful; says how much was left out."""
    try:
        text = repr(value)
    except Exception as e:  # a broken __repr__ still gets a line, not a traceback
        return f"<{type(value).__name__}: repr failed: {type(e).__name__}: {e}>"
    if len(text) > 20 * max_chars:  # huge single-line reprs: let reprlib shorten nested parts
        short = reprlib.Repr()
        short.maxlevel, short.maxstring, short.maxother = 3, 200, 200
        short.maxlist = short.maxtuple = short.maxdict = short.maxset = short.maxfrozenset = 100
        text = short.repr(value)
    lines = text.splitlines() or [""]
    cut = False
    if len(lines) > max_lines:
        more = len(lines) - max_lines
        lines, cut = lines[:max_lines], True
        tail = f"… ({more} more lines)"
    text = "\n".join(lines)
    if len(text) > max_chars:
        more = len(text) - max_chars
        text, cut = text[:max_chars], True
        tail = f"… ({more:,} more characters)"
    return text + ("\n" + tail if cut else "")


def plural(count: int, word: str) -> str:
    """``1 variable``, ``2 variables``: the count and the word, in the number English wants."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def unmerged_line(commit: str, branch: str | None) -> str:
    """What status says of a kernel whose last commits are on no branch yet (their merge with the moved
    branch failed): they are kept, and merged at the next cell."""
    where = branch or "HEAD"
    return (f"not on {where} yet: its last commits (up to {commit[:8]}) wait for their merge with {where}, "
            "which failed; the next cell merges again (a ref keeps them meanwhile)")


def held_line(ref: str, commit: str, verb: str = "txgit") -> str:
    """What status says of commits on no branch that a ref keeps (a kernel's whose merge with its moved branch
    failed, closed before it merged again): the one command that brings them in (``verb``: ``%txgit`` in a
    notebook)."""
    return (f"on no branch yet: commits (up to {commit[:8]}) of a kernel closed before their merge with its "
            f"branch, kept by {ref}: `{verb} merge {ref}` brings them in")


def left_detached_line(pid: int, count: int, last: str, verb: str = "txgit") -> str:
    """What status says of commits a kernel made on its own detached HEAD and left there (it closed, or
    went back to a branch): on no branch, kept by that ref; the command that puts them on one."""
    return (f"on no branch: {plural(count, 'commit')} kernel {pid} made detached (last: {last[:8]}); keep "
            f"{'it' if count == 1 else 'them'} with: {verb} branch NAME {last[:8]}")


def upstream_line(ws: Workspace, branch: str, *, merging: bool = False) -> str | None:
    """`Your branch is ahead of 'origin/main' by 1 commit` and the like, as git says it (``merging``: a
    merge is in progress, so no advice to pull)."""
    tracked = ws.remotes.upstream(branch)
    if tracked is None:
        return None
    name = f"{tracked[0]}/{tracked[1]}"
    repo = ws.history.repo
    ours, theirs = ws.history.tip(f"refs/heads/{branch}"), ws.history.tip(f"refs/remotes/{name}")
    if theirs is None:
        return f"Your branch is based on '{name}', but the upstream is gone (or not fetched yet)."
    if ours is None:
        return None
    ahead, behind = repo.ahead_behind(ours.id, theirs.id)

    def n(k: int) -> str:
        return f"{k} commit{'s' if k != 1 else ''}"

    if ahead and behind:
        return (f"Your branch and '{name}' have diverged, and have {ahead} and {behind} different commits each"
                + ("." if merging else " (`txgit pull` merges them)."))
    if ahead:
        if tracked[1] != branch:  # a bare push publishes it under its own name, not to the upstream
            return (f"Your branch is ahead of '{name}' by {n(ahead)} (`txgit push -u {tracked[0]} {branch}` "
                    f"publishes it as {tracked[0]}/{branch} and tracks that).")
        return f"Your branch is ahead of '{name}' by {n(ahead)} (`txgit push` publishes them)."
    if behind:
        return f"Your branch is behind '{name}' by {n(behind)} (`txgit pull` brings them)."
    return f"Your branch is up to date with '{name}'."


def unpublished_line(ws: Workspace, branch: str) -> str | None:
    """For a kernel's branch that tracks nothing (the second kernel's of a folder): that no remote has
    it, when there is a remote to push it to (a status that only spoke of HEAD's branch, up to date,
    let the kernel's work pass for shared)."""
    try:
        remote = ws.remotes.default(branch)
    except TxgitError:  # no remote, or several and none chosen: nothing to advise
        return None
    if f"{remote}/{branch}" in ws.remote_branches():
        return None
    return f"{branch} is on no remote yet (`txgit push -u {remote} {branch}` publishes it)"


def not_loaded_line(names: list[str], branch: str | None, verb: str = "txgit", *, merging: bool = False) -> str:
    """What is said of the variables of a kernel's branch that the kernel never loaded (a fresh kernel's):
    they are not gone, and the command that loads them (``merging``: a merge waits, which refuses it)."""
    when = "once the merge is done, " if merging else ""
    return (f"not loaded: {_listed(names)} (its commits carry them over; {when}`{verb} checkout {branch or 'REV'}` "
            "loads them)")


def not_restored_line(name: str, why: str, branch: str | None, verb: str = "txgit") -> str:
    """What is said of a value of the state that could not be loaded here: why, and what loads it later."""
    fix = loads_later(why, branch, verb)
    return f"not restored: {name}: {why}" + (f" ({fix})" if fix else "")


def loads_later(why: str, branch: str | None, verb: str = "txgit") -> str:
    """When a missing module is why a value was not loaded (the user can fix that): what loads it once
    the module imports; else nothing."""
    if "is not installed here" not in why:
        return ""
    return f"once it imports here, `{verb} pull` or `{verb} checkout {branch or 'REV'}` loads it"


def not_committed_line(names: list[str], where: str, verb: str = "txgit") -> str:
    """What a push says of the values a session changed and has not committed (``where``: "this kernel",
    "kernel 1234 (on main)"): the push carries commits only, so not these."""
    one = len(names) == 1
    return (f"note: {_listed(names)} changed in {where} and {'is' if one else 'are'} not committed: this push "
            f"does not carry {'it' if one else 'them'} (`{verb} commit -m MSG` first)")


def _listed(names: list[str]) -> str:
    return ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")


def left_behind_warning(count: int, last: str, verb: str = "txgit") -> str:
    """Git's warning when leaving commits that no branch holds, with the command that keeps them
    (``verb``: ``%txgit`` in a notebook)."""
    them = "them" if count != 1 else "it"
    return (f"Warning: leaving {plural(count, 'commit')} behind, not connected to any branch "
            f"(last: {last[:8]}); keep {them} with: {verb} branch NAME {last[:8]}")
