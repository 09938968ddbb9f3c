"""History: states as commits in a real git repository (pygit2, bare, in ``.txgit/repo.git``).

A commit's tree (storage format 2)::

    records/<shard>  the variable and group records, one per line, in text files of ~32 variables each
    meta.json        Python and package versions, timings, what made the commit
    code/…           what the session recorded (cells, scripts), when it did

A shard is named by the 16 hex digits where its range of name keys starts (a name's key:
its 64-bit blake2b hash); a variable whose key is a multiple of :data:`SHARD_EVERY` starts a new
shard (and so does one that would make a shard longer than :data:`SHARD_MAX`), so where shards
begin depends on the names, not on their number: adding or removing a variable rewrites its own
shard (or splits one; in a run of names longer than SHARD_MAX, the shards after it up to the run's
end), not the others. A line is either::

    v <name> <JSON record>     kind, type, summary, size, group (see txgit.state.VarRecord)
    g <JSON record>            a group of co-variables: its names and chunk hashes; its id is the
                               blake3 hash of the JSON and its newline (see txgit.state.GroupRecord)

and a group lives in the shard of its member with the smallest key. 1,000 variables take ~40
blobs instead of ~2,000, so a push or a clone moves a few dozen git objects, and a commit that
changes one variable writes one shard (a few KB, at most :data:`SHARD_MAX` variables). ``git diff`` between two commits still shows
which variables changed, as changed ``v`` lines. Bulky bytes stay in the object store; the
records only name them.

Format 1 (commits without ``"format"`` in meta.json, or with 1) had one file per record,
``vars/<name>`` and ``groups/<id>``; they are read as before, and a commit on top of one is
written in format 2.
"""

from __future__ import annotations

import bisect
import functools
import getpass
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from datetime import datetime, timezone
from typing import Any

import pygit2
from pygit2.enums import ConfigLevel, SortMode

from txgit._version import FORMAT_VERSION, __version__
from txgit.collector import collector_paused
from txgit.errors import InvalidName, NewerFormat, RefExists, TxgitError, UnknownRevision, WorkspaceExists
from txgit import gitpack
from txgit.gitwriter import GitWriter, HeadMoved, commit_files
from txgit.state import VALUE, GroupRecord, VarRecord, is_variable_name
from txgit.storage import hash_bytes, is_blob_name

VARS = "vars"  # format 1: one file per variable
GROUPS = "groups"  # format 1: one file per group
# a session's commits whose merge with its moved branch failed (hold_unmerged): HELD N/BRANCH (N/HEAD: a
# detached session's; HEAD is no branch name), the Nth hold for BRANCH. Before, UNMERGED BRANCH, then
# BRANCH-2, …: branch a's second hold or branch a-2's own? Those are still read (held_for), never written.
HELD = "refs/txgit/held/"
UNMERGED = "refs/txgit/unmerged/"
# a kernel's own HEAD (DETACHED <pid>) while it is detached in a folder whose HEAD another kernel holds: its
# commits move this ref, never the folder's HEAD (the other kernel's branch); its reflog keeps where it was
DETACHED = "refs/txgit/detached/"
ORIG_HEAD = "ORIG_HEAD"  # where the last merge, pull or reset moved a branch from (as in git)
# ORIG_HEAD per branch: kernels on two branches of one folder each undo their own last move (as git keeps
# one ORIG_HEAD per worktree); the folder's ORIG_HEAD names the last move of any branch, for git's tools
ORIG_HEADS = "refs/txgit/orig-head/"
RECORDS = "records"  # format 2: variable and group records, one per line, in shards
SHARD_EVERY = 32  # a variable whose key is a multiple of this starts a shard: ~32 variables a shard
SHARD_MAX = 64  # and so does the variable after this many in one shard: a change never rewrites more
_SHARD_NAME = re.compile(r"[0-9a-f]{16}")
META = "meta.json"
FORMAT_KEY = "format"  # in meta.json: the storage format the commit needs (see txgit._version.FORMAT_VERSION)
DEFAULT_BRANCH = "main"
MAX_REF_NAME = 200  # bytes; file systems allow 255 per path component


def format_needed(variables: Mapping[str, VarRecord], groups: Mapping[str, GroupRecord]) -> int:
    """The storage format a state's records need: 3 where a group lists a name whose record names
    something else (a txgit reading up to 2 would restore the group's old value under that name over
    its own), else 2 (see txgit._version.FORMAT_VERSION)."""
    for gid, group in groups.items():
        if len(group.names) > 1:
            for name in group.names:
                record = variables.get(name)
                if record is not None and record.group != gid:
                    return 3
    return 2


@dataclass
class CommitInfo:
    """One commit, as log/show report it."""

    id: str
    message: str
    author: str
    email: str
    time: datetime
    parents: list[str]
    refs: list[str] = field(default_factory=list)  # branch, remote-tracking branch (origin/main) and tag names pointing here

    @property
    def short_id(self) -> str:
        return self.id[:8]

    @property
    def summary(self) -> str:
        return self.message.splitlines()[0] if self.message else ""


@dataclass
class State:
    """What a commit's tree says: variable records, group records, meta."""

    variables: dict[str, VarRecord]
    groups: dict[str, GroupRecord]
    meta: dict[str, Any]


def _cut_last_line(path: str) -> bool:
    """Truncate a line file (a reflog) after its last whole line, if its last line has no newline;
    whether it did. A reflog of 0 bytes, or one that ends in a newline (always, but after a failed
    append), is left as it is: one read of its last byte."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        size = os.fstat(fd).st_size
        if not size or os.pread(fd, 1, size - 1) == b"\n":
            return False
        start = max(size - 65536, 0)  # a reflog line is a few hundred bytes
        tail = os.pread(fd, size - start, start)
        if b"\n" not in tail:
            start, tail = 0, os.pread(fd, size, 0)
        os.ftruncate(fd, start + tail.rfind(b"\n") + 1)
        return True
    finally:
        os.close(fd)


@dataclass(frozen=True)
class RevRange:
    """A range of commits as git reads one: ``A..B``, what B reaches and A does not (what a pull of B
    brings); ``A...B`` (``symmetric``), what one side reaches and the other does not. An empty side is HEAD
    (``origin/main..``: what a push sends). For ``diff``, ``A..B`` is ``A B`` and ``A...B`` runs from their
    merge base to B (see :meth:`History.range_ends`)."""

    left: str
    right: str
    symmetric: bool = False

    @classmethod
    def parse(cls, spec: str) -> RevRange | None:
        """The range ``spec`` names; None when it names one revision (git allows no ``..`` in a ref name)."""
        if not isinstance(spec, str) or ".." not in spec:
            return None
        symmetric = "..." in spec
        left, _, right = spec.partition("..." if symmetric else "..")
        if ".." in left or ".." in right:
            raise UnknownRevision(f"unknown revision {spec!r}: a range is A..B or A...B")
        return cls(left or "HEAD", right or "HEAD", symmetric)

    def map(self, side: Callable[[str], str]) -> RevRange:
        """The same range with each side rewritten (a kernel's HEAD is where it is: see ``rev_here``)."""
        return RevRange(side(self.left), side(self.right), self.symmetric)

    @property
    def old_label(self) -> str:
        """What ``diff`` of this range compares from, in words: A, or the merge base of A and B."""
        return f"merge base of {self.left} and {self.right}" if self.symmetric else self.left

    def __str__(self) -> str:
        return f"{self.left}{'...' if self.symmetric else '..'}{self.right}"


# what decides the author: the variables read here and by getpass.getuser()
_AUTHOR_ENV = ("GIT_AUTHOR_NAME", "TXGIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "TXGIT_AUTHOR_EMAIL",
               "LOGNAME", "USER", "LNAME", "USERNAME")
_author_seen: tuple[tuple[Any, ...], tuple[str, str]] | None = None  # (what decided it, (name, email))


def _author_stamp() -> tuple[Any, ...] | None:
    """What the author depends on, cheap to compare: those variables, and the global git config file
    where libgit2 looks for it (its path and stat: an edit changes its mtime or ctime). None: unknown."""
    try:
        dirs = pygit2.settings.search_path[ConfigLevel.GLOBAL] or ""
    except Exception:  # (another pygit2's settings): read the config every time
        return None
    files: list[tuple[Any, ...]] = []
    for folder in dirs.split(os.pathsep):
        try:
            st = os.stat(os.path.join(folder, ".gitconfig"))
        except OSError:
            files.append((folder,))
        else:
            files.append((folder, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return (_author_env(), tuple(files))


def _author_env() -> tuple[str | bytes | None, ...]:
    """The values of :data:`_AUTHOR_ENV`, read from ``os.environ``'s own dict: in a kernel, txgit's
    wrapper of its mapping methods reports a watched cell's reads (~5 us a missing name)."""
    data, encode = getattr(os.environ, "_data", None), getattr(os.environ, "encodekey", None)
    if isinstance(data, dict) and encode is not None:
        return tuple(data.get(encode(key)) for key in _AUTHOR_ENV)
    return tuple(map(os.environ.get, _AUTHOR_ENV))


def _signature() -> pygit2.Signature:
    """The author of a commit made now. Read again only when what decides it changed: opening the
    global git config was ~0.1 ms of the background writer's CPU per commit, under the kernel's GIL."""
    global _author_seen
    stamp = _author_stamp()
    seen = _author_seen
    if stamp is not None and seen is not None and seen[0] == stamp:
        name, email = seen[1]
        return pygit2.Signature(name, email)
    name = os.environ.get("GIT_AUTHOR_NAME") or os.environ.get("TXGIT_AUTHOR_NAME")
    email = os.environ.get("GIT_AUTHOR_EMAIL") or os.environ.get("TXGIT_AUTHOR_EMAIL")
    if not name:
        try:
            cfg = pygit2.Config.get_global_config()
            name = cfg["user.name"]
            email = email or cfg["user.email"]
        except (KeyError, OSError, pygit2.GitError):
            pass
    name = name or getpass.getuser() or "txgit"
    email = email or f"{name}@localhost"
    if stamp is not None:
        _author_seen = (stamp, (name, email))
    return pygit2.Signature(name, email)


def _reflog_time(line: bytes) -> float:
    """The time of a reflog line (``old new Name <email> 1700000000 +0000\tmessage``); inf if unreadable (kept)."""
    try:
        return float(line.split(b"\t", 1)[0].rsplit(b" ", 2)[-2])
    except (ValueError, IndexError):
        return float("inf")


def _show(name: str) -> str:
    """A tree entry name fit for a one-line message: quoted when it holds anything odd, clipped."""
    clipped = name if len(name) <= 80 else name[:79] + "…"
    return clipped if clipped.isidentifier() or is_blob_name(clipped) else repr(clipped)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 160 else text[:159] + "…"


@functools.lru_cache(maxsize=1 << 16)
def shard_key(name: str) -> int:
    """Where a variable's record lies in format 2: a 64-bit hash of its name (the same in every
    process and version: it decides which shard a reader opens)."""
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


def _where(where: Mapping[str, str | tuple[str, int]], name: str) -> str:
    """Where a variable's record lies, for a message: its file, or its shard and line."""
    place = where[name]
    return place if isinstance(place, str) else f"{place[0]} line {place[1]}: {name}"


def _shard_of(starts: list[int], key: int) -> int:
    """The start of the shard a key falls in (``starts``: sorted, beginning with 0)."""
    return starts[bisect.bisect_right(starts, key) - 1]


def _var_line_body(record: VarRecord) -> bytes:
    """A variable record as one line of JSON. Kept on the record (its ``raw``), so a record
    carried over from commit to commit is encoded once."""
    raw = record.raw
    if raw is None:  # a new record: encoded once, straight to its line (the indented form is not made)
        raw = record.to_line()
        record.raw = raw
    elif not raw.endswith(b"\n") or raw.count(b"\n") != 1:  # read from format 1's indented file
        raw = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode() + b"\n"
        record.raw = raw  # the same record, in the bytes it is stored as from now on
    return raw


class ShardLayout:
    """A state's ``records/`` shards (see :func:`record_shards`) and what they were made from, kept for the
    next state's: a session carries its unchanged records from commit to commit as the same objects, so
    only the shards whose records changed, or whose range of keys moved, are laid out again (every line
    of every shard was: ~1 ms of the writer thread's GIL a commit for a notebook's 533 variables).
    Never changed once made: a layout is replaced by the next, so any layout is a valid start."""

    def __init__(self) -> None:
        self.keys: list[tuple[int, str]] = []  # (shard key, name) of every variable, sorted
        self.starts: list[int] = [0]
        self.ranges: dict[int, int] = {}  # shard start -> the next shard's start
        self.variables: dict[str, VarRecord] = {}  # the records the shards hold
        self.groups: dict[str, GroupRecord] = {}
        self.group_keys: dict[str, int] = {}  # group id -> the key it is placed by
        self.shards: dict[int, bytes] = {}  # start -> the shard's bytes (only shards with lines)


_END = 1 << 64  # past every key: where the last shard's range ends


def _shard_starts(keys: list[tuple[int, str]]) -> list[int]:
    """Where shards start, for the sorted (key, name) of a state's variables (see the module's docstring)."""
    starts, count = [0], 0
    for key, _ in keys:
        if key != starts[-1] and (key % SHARD_EVERY == 0 or count >= SHARD_MAX):
            starts.append(key)
            count = 0
        count += 1
    return starts


def _group_line(gid: str, record: GroupRecord) -> bytes:
    body = record.to_bytes()
    if not body.endswith(b"\n") or body.count(b"\n") != 1:
        # only a hand-made format-1 record can be written over several lines; its id is the hash of those bytes
        raise TxgitError(f"group {gid[:12]} has a record of several lines, which storage format 2 cannot hold"
                         " (run `txgit fsck`)")
    return b"g " + body


def record_shards(state: State, previous: ShardLayout | None = None) -> tuple[dict[str, bytes], ShardLayout]:
    """Format 2's ``records/`` folder for a state: shard name -> its lines (see the module's docstring), and
    its layout. ``previous``: the layout of an earlier state; its shards whose records and range are the
    same are taken as they are (the result is the same bytes as without it)."""
    prev = previous if previous is not None else ShardLayout()
    variables, groups = state.variables, state.groups
    now = ShardLayout()
    now.variables, now.groups = dict(variables), dict(groups)
    same_names = prev.variables.keys() == variables.keys()
    now.keys = prev.keys if same_names else sorted((shard_key(n), n) for n in variables)
    now.starts = prev.starts if same_names else _shard_starts(now.keys)
    starts = now.starts
    now.ranges = dict(zip(starts, [*starts[1:], _END]))
    old_keys = prev.group_keys
    now.group_keys = {gid: old_keys[gid] if gid in old_keys else min((shard_key(n) for n in r.names), default=0)
                      for gid, r in groups.items()}
    # a shard is laid out again if its range moved, or a record in it was added, removed or replaced
    dirty = {s for s, end in now.ranges.items() if prev.ranges.get(s) != end}
    old_vars = prev.variables
    dirty.update(_shard_of(starts, shard_key(n)) for n, r in variables.items() if old_vars.get(n) is not r)
    dirty.update(_shard_of(starts, shard_key(n)) for n in old_vars.keys() - variables.keys())
    dirty.update(_shard_of(starts, now.group_keys[g]) for g in groups.keys() - prev.groups.keys())
    dirty.update(_shard_of(starts, old_keys[g]) for g in prev.groups.keys() - groups.keys())
    now.shards = {s: data for s, data in prev.shards.items() if s not in dirty and s in now.ranges}
    lines: dict[int, list[bytes]] = {}
    for start in dirty:
        first = bisect.bisect_left(now.keys, (start, ""))
        last = bisect.bisect_left(now.keys, (now.ranges[start], ""))
        lines[start] = [b"v " + name.encode() + b" " + _var_line_body(variables[name])
                        for _, name in now.keys[first:last]]
    for gid in sorted(groups):
        start = _shard_of(starts, now.group_keys[gid])
        if start in dirty:
            lines[start].append(_group_line(gid, groups[gid]))
    now.shards.update((start, b"".join(shard)) for start, shard in lines.items() if shard)
    return {f"{start:016x}": now.shards[start] for start in sorted(now.shards)}, now


def ref_tips(repo: pygit2.Repository, *, head: bool = True) -> dict[str, str]:
    """ref name -> the commit it names now, for every ref (and HEAD, with ``head``) that names a
    readable commit; the others (unborn HEAD, a ref to a missing object) are left out."""
    out = {}
    for name in ["HEAD", *repo.references] if head else repo.references:
        try:
            out[name] = str(repo.references[name].peel(pygit2.Commit).id)
        except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
            continue
    return out


def _remote_head(ref: str) -> bool:
    """``refs/remotes/<remote>/HEAD``: git's pointer to a remote's default branch, not a branch of its own."""
    return ref.startswith("refs/remotes/") and ref.endswith("/HEAD")


def validate_ref_name(kind: str, name: str) -> str:
    """Branch/tag names follow git's rules; say so plainly when they do not."""
    if not isinstance(name, str) or len(name.encode("utf-8", "surrogatepass")) > MAX_REF_NAME:
        # a ref is a file: libgit2 cannot even look up a name past the file system's limit
        raise InvalidName(f"invalid {kind} name {str(name)[:40]!r}…: longer than {MAX_REF_NAME} bytes")
    try:
        name.encode("utf-8")  # undecodable command-line bytes arrive as lone surrogates; git names are UTF-8
    except UnicodeEncodeError:
        raise InvalidName(f"invalid {kind} name {name!r}: not UTF-8") from None
    # (libgit2 reads a name up to its first NUL: "a\0b" would pass as "a")
    if not name or name.startswith("-") or name == "HEAD" or "\0" in name \
            or not pygit2.reference_is_valid_name(f"refs/heads/{name}"):
        raise InvalidName(f"invalid {kind} name {name!r}")
    return name


def is_hold(ref: str) -> bool:
    """Whether ``ref`` holds a session's commits for their merge (:meth:`History.hold_unmerged`)."""
    return ref.startswith((HELD, UNMERGED))


class History:
    """The git side of a workspace. Knows trees of states; not namespaces, not stores."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        try:
            self.repo = pygit2.Repository(str(path))
        except pygit2.GitError as e:  # a repo.git without HEAD or config: damaged, or an old init cut short
            raise TxgitError(f"the workspace's history {os.fspath(path)} cannot be opened ({e}): it is damaged, "
                             "or its creation was cut short (a workspace with no commits can be made again: "
                             "remove that folder and run `txgit init`)") from e
        self._states: dict[tuple[str, bool], State] = {}  # commits never change: parse each once
        # packing the history in the background (txgit.gitpack): on by default; off, only gc packs
        self.auto_pack = True
        self._until_pack_check = 1  # the first commit of a process looks (a CLI commit is all it makes)
        self._packer: int | None = None  # the pid of the background packer this process started
        self._layout: ShardLayout | None = None  # the records of the last state committed (see record_shards)

    @classmethod
    def init(cls, path: str | os.PathLike[str]) -> History:
        """A new, empty repository at ``path``, there whole or not at all: libgit2 writes one file after
        another, so a full disk or a kill part-way left a folder that is neither a repository nor free to
        init again. It is made beside ``path`` and renamed into place once it opens."""
        path = Path(path)
        staging = Path(tempfile.mkdtemp(prefix=f"{path.name}.init-", dir=path.parent))
        try:
            repo = pygit2.init_repository(str(staging), bare=True, initial_head=DEFAULT_BRANCH)
            repo.config["core.logAllRefUpdates"] = "true"  # reflogs: a way back after a mistake
            del repo
            cls(staging)  # (a file cut short shows here)
            try:
                os.rename(staging, path)
            except OSError as e:
                if path.exists():  # another process made it meanwhile
                    raise WorkspaceExists(f"already a repository: {path}") from e
                raise
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return cls(path)

    # -- revisions -------------------------------------------------------------
    def resolve(self, rev: str) -> pygit2.Commit:
        """A commit from what a git user types: branch, tag, hash prefix, HEAD~2, main^."""
        if not isinstance(rev, str) or not rev.strip() or rev.startswith("-"):
            raise UnknownRevision(f"unknown revision {rev!r}")
        if rev == "HEAD" and self.repo.head_is_unborn:
            raise UnknownRevision("no commits yet: HEAD does not name a commit")
        if rev.startswith((ORIG_HEAD, ORIG_HEADS)):
            rev = self._orig_head_rev(rev)
        try:
            obj = self.repo.revparse_single(rev)
            return obj.peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError, TypeError) as e:
            raise UnknownRevision(f"unknown revision {rev!r}{self._not_fetched(rev)}") from e

    def _not_fetched(self, rev: str) -> str:
        """For REMOTE/BRANCH of a remote this repository has: that a fetch brings branches pushed since
        the last one (else it read as a typo). For a plain name, where there are remotes: the same, as a
        colleague's new branch (or commit) is unknown here until a fetch brings it."""
        remote, _, branch = rev.partition("/")
        remotes = list(self.repo.remotes.names())
        if any(c in rev for c in "~^:@") or not remotes:
            return ""
        if not branch:
            where = remotes[0] if len(remotes) == 1 else "a remote"
            return (f" (no branch, tag or commit here has that name; if it was pushed to {where} since your last "
                    f"fetch, `txgit fetch` brings it)")
        if remote not in remotes:
            return ""
        return (f" ({remote} has no branch {branch!r} as of the last fetch: `txgit fetch {remote}` brings its "
                "new branches)")

    def reflog(self, ref: str = "HEAD") -> tuple[str, list[tuple[str, str]]]:
        """``ref``'s reflog, newest first, as ``git reflog show REF``: its short name and (commit id, message)
        per move. ``HEAD`` attached to a branch is that branch's (``HEAD@{N}`` reads the same, see
        :meth:`resolve`)."""
        if ref == "HEAD" and not self.repo.head_is_detached and not self.repo.head_is_unborn:
            ref = self.repo.head.shorthand
        try:
            found = self.repo.references["HEAD"] if ref == "HEAD" else self.repo.lookup_reference_dwim(ref)
        except (KeyError, pygit2.InvalidSpecError, pygit2.GitError):
            raise UnknownRevision(f"no branch, tag or ref named {ref!r}") from None
        entries = [(str(e.oid_new), (e.message or "").strip()) for e in found.log()]
        return (ref if ref == "HEAD" else found.shorthand), entries

    def orig_head(self) -> str | None:
        """git's ORIG_HEAD: the commit a branch named before the last merge, pull or reset here moved it
        (``txgit reset ORIG_HEAD`` undoes that move), or None."""
        try:
            return str(self.repo.lookup_reference(ORIG_HEAD).target)
        except (KeyError, pygit2.GitError, pygit2.InvalidSpecError):
            return None

    def note_orig_head(self, commit: pygit2.Commit, ref: str = "HEAD") -> None:
        """Name ``commit`` ORIG_HEAD: a merge, pull or reset is about to move ``ref`` (HEAD, or a session's
        branch) from it. Kept for that branch too, which ``ORIG_HEAD`` names there (:meth:`orig_head_ref`)."""
        self.repo.create_reference_direct(ORIG_HEAD, commit.id, True)
        branch = self.current_branch() if ref == "HEAD" else ref.removeprefix("refs/heads/")
        if branch is not None and ref in ("HEAD", f"refs/heads/{branch}"):
            self.repo.create_reference_direct(self.orig_head_ref(branch), commit.id, True)

    @staticmethod
    def orig_head_ref(branch: str) -> str:
        """The ref that keeps ``branch``'s ORIG_HEAD: what a session on that branch reads as ``ORIG_HEAD``."""
        return ORIG_HEADS + branch

    def _orig_head_rev(self, rev: str) -> str:
        """``ORIG_HEAD`` (and ``ORIG_HEAD~1``...) as the ref of the branch it means: HEAD's branch, or a session's
        (see ``Session.rev_here``); the folder's ORIG_HEAD on a detached HEAD. A branch no merge, pull or reset
        moved is one line, never another branch's last move (nor one from before ORIG_HEAD was kept per branch:
        ``BRANCH@{1}`` names that)."""
        if rev.startswith(ORIG_HEADS):
            cut = min((i for i in (rev.find(c, len(ORIG_HEADS)) for c in ("~", "^", "@{", ":")) if i >= 0),
                      default=len(rev))
            ref, branch = rev[:cut], rev[len(ORIG_HEADS):cut]
        else:
            branch = self.current_branch()
            cut, ref = len(ORIG_HEAD), None if branch is None else self.orig_head_ref(branch)
        if ref is not None and ref in self.repo.references:
            return ref + rev[cut:]
        if ref is None and self.orig_head() is not None:
            return ORIG_HEAD + rev[cut:]
        moved = "a branch here" if branch is None or self.orig_head() is None else f"{branch} here"
        raise UnknownRevision(f"unknown revision {'ORIG_HEAD' + rev[cut:]!r}: no merge, pull or reset has "
                              f"moved {moved} yet")

    def head_commit(self) -> pygit2.Commit | None:
        if self.repo.head_is_unborn:
            return None
        try:
            return self.repo.head.peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError) as e:
            raise TxgitError(f"HEAD names a commit that cannot be read: the repository is damaged ({_one_line(e)});"
                             " run `txgit fsck`") from e

    def current_branch(self) -> str | None:
        """The branch HEAD is on (also when it has no commit yet); None when detached."""
        if self.repo.head_is_detached:
            return None
        target = self.repo.references["HEAD"].target
        return target.removeprefix("refs/heads/") if isinstance(target, str) else None

    def info(self, commit: pygit2.Commit, refs: Mapping[str, list[str]] | None = None) -> CommitInfo:
        tz = timezone.utc
        return CommitInfo(
            id=str(commit.id),
            message=commit.message.rstrip("\n"),
            author=commit.author.name,
            email=commit.author.email,
            time=datetime.fromtimestamp(commit.commit_time, tz),
            parents=[str(p) for p in commit.parent_ids],
            refs=list((refs or {}).get(str(commit.id), [])),
        )

    def refs_by_commit(self) -> dict[str, list[str]]:
        """commit id -> the branches, remote-tracking branches (``origin/main``) and tags naming it."""
        out: dict[str, list[str]] = {}
        for name in self.repo.references:
            if name.startswith(("refs/heads/", "refs/tags/", "refs/remotes/")) and not _remote_head(name):
                try:
                    target = str(self.repo.references[name].peel(pygit2.Commit).id)
                except (pygit2.GitError, ValueError, KeyError):
                    continue
                out.setdefault(target, []).append(name.split("/", 2)[2])
        return out

    def walk(self, starts: Iterable[pygit2.Oid], max_count: int | None = None, *,
             hide: Iterable[pygit2.Oid] = ()) -> Iterator[pygit2.Commit]:
        """Commits reachable from ``starts`` and not from ``hide``, newest first (children before parents)."""
        starts = list(starts)
        if not starts:
            return
        walker = self.repo.walk(starts[0], SortMode.TOPOLOGICAL | SortMode.TIME)
        for s in starts[1:]:
            walker.push(s)
        for h in hide:
            walker.hide(h)
        try:
            for i, c in enumerate(walker):
                if max_count is not None and i >= max_count:
                    return
                yield c
        except (KeyError, pygit2.GitError) as e:  # a commit object is gone
            raise TxgitError(f"the history is damaged: {_one_line(e)}; run `txgit fsck`") from e

    def walk_range(self, rng: RevRange, max_count: int | None = None) -> Iterator[pygit2.Commit]:
        """The commits of ``rng``, newest first: ``log A..B``, ``log A...B``. A side that names no commit
        raises :class:`UnknownRevision` naming that side."""
        left, right = self.resolve(rng.left), self.resolve(rng.right)
        if not rng.symmetric:
            yield from self.walk([right.id], max_count, hide=[left.id])
            return
        # what one side reaches and the other does not; one walk of both, less what a merge base reaches,
        # keeps the log's order (in a criss-cross, what the other merge bases reach is left out by ``only``)
        only = {c.id for c in self.walk([left.id], hide=[right.id])}
        only |= {c.id for c in self.walk([right.id], hide=[left.id])}
        base = self.repo.merge_base(left.id, right.id)
        found = (c for c in self.walk(dict.fromkeys([left.id, right.id]), hide=[base] if base else [])
                 if c.id in only)
        for i, c in enumerate(found):
            if max_count is not None and i >= max_count:
                return
            yield c

    def range_ends(self, rng: RevRange) -> tuple[pygit2.Commit, pygit2.Commit]:
        """The two states ``diff A..B`` (A and B) or ``diff A...B`` compares: from the merge base of A and B
        to B, what B changed since the histories forked (what a merge of B brings in, whatever A did)."""
        left, right = self.resolve(rng.left), self.resolve(rng.right)
        if not rng.symmetric:
            return left, right
        base = self.repo.merge_base(left.id, right.id)
        if base is None:
            raise TxgitError(f"{rng.left} and {rng.right} have no commit in common: no merge base to diff "
                             f"from (`txgit diff {rng.left} {rng.right}` compares them)")
        return self.repo[base].peel(pygit2.Commit), right

    # -- reading states --------------------------------------------------------
    def read_state(self, commit: pygit2.Commit | str, *, groups: bool = True) -> State:
        """The state a commit records (``commit``: the commit, or its full id: a state read before is
        not read again, nor is its commit object)."""
        commit_id = commit if isinstance(commit, str) else str(commit.id)
        cached = self._states.get((commit_id, True)) or self._states.get((commit_id, groups))
        if cached is None:
            if isinstance(commit, str):
                commit = self.repo[commit].peel(pygit2.Commit)
            cached = self._remember(commit_id, groups, self._read_state(commit, groups))
        # callers may edit the dicts they get; the cache keeps its own
        return State(dict(cached.variables), dict(cached.groups), dict(cached.meta))

    def _remember(self, commit_id: str, groups: bool, state: State) -> State:
        if len(self._states) >= 16:
            self._states.pop(next(iter(self._states)))
        self._states[(commit_id, groups)] = State(dict(state.variables), dict(state.groups), dict(state.meta))
        return self._states[(commit_id, groups)]

    def _read_state(self, commit: pygit2.Commit, groups: bool) -> State:
        problems: list[str] = []
        # a state of 1,000 variables is thousands of records that outlive the read and hold no cycles: a full
        # collection among them walked the whole heap, most of a clone's time in a kernel or the remote benchmark
        with collector_paused():
            state = self._parse_state(commit, groups, problems, first_only=True)
        if problems:
            raise TxgitError(f"commit {str(commit.id)[:8]} holds a malformed state record: {problems[0]}"
                             " (run `txgit fsck`)")
        return state

    def _parse_state(self, commit: pygit2.Commit, groups: bool, problems: list[str], *,
                     first_only: bool = False) -> State:
        """Parse a commit's tree, appending what is wrong with it to ``problems``.

        Trees may come from a fetched repository, so nothing in them is trusted:
        entry kinds, names (variables must be identifiers, groups blake3 hashes)
        and record fields are all checked.
        """
        variables: dict[str, VarRecord] = {}
        group_records: dict[str, GroupRecord] = {}
        meta: dict[str, Any] = {}

        def blobs_of(folder: str) -> Iterator[tuple[str, bytes]]:
            if folder not in commit.tree:
                return
            sub = self.repo[commit.tree[folder].id]  # KeyError when the object is gone: reported below
            if not isinstance(sub, pygit2.Tree):
                problems.append(f"{folder} is not a folder")
                return
            for entry in sub:
                obj = self.repo[entry.id]
                if not isinstance(obj, pygit2.Blob):
                    problems.append(f"{folder}/{_show(entry.name)} is not a file")
                    continue
                yield entry.name, obj.data

        try:
            # meta.json first: it says which format the records are in, and a newer one is not parsed at all
            if META in commit.tree:
                obj = self.repo[commit.tree[META].id]
                try:
                    meta = json.loads(obj.data) if isinstance(obj, pygit2.Blob) else None
                except ValueError as e:
                    problems.append(f"{META}: {_one_line(e)}")
                    meta = {}
                if not isinstance(meta, dict):
                    problems.append(f"{META} is not a JSON object")
                    meta = {}
            fmt = meta.get(FORMAT_KEY, 1)  # a commit made before the field existed is format 1
            if isinstance(fmt, bool) or not isinstance(fmt, int) or fmt < 1:
                problems.append(f"{META}: {FORMAT_KEY} must be a positive integer, not {str(fmt)[:20]!r}")
                return State(variables, group_records, meta)
            if fmt > FORMAT_VERSION:
                made_by = meta.get("txgit")
                if not (isinstance(made_by, str) and re.fullmatch(r"[0-9A-Za-z.+-]{1,40}", made_by)):
                    made_by = "a newer version"  # (shown as is only when it looks like a version)
                too_new = (f"made by txgit {made_by}, which this version cannot read (it needs storage format "
                           f"{fmt}; txgit {__version__} reads up to {FORMAT_VERSION}): upgrade txgit to read it")
                if first_only:
                    raise NewerFormat(f"commit {str(commit.id)[:8]} was {too_new}")
                problems.append(too_new)  # (fsck names the commit)
                return State(variables, group_records, meta)
            # variable -> where its record is, for messages: a path (format 1), or (shard path, line), made a
            # message only when one is needed (not two strings per variable on every read)
            where: dict[str, str | tuple[str, int]] = {}
            if fmt == 1:
                for name, data in blobs_of(VARS):
                    if first_only and problems:
                        break
                    if not is_variable_name(name):
                        problems.append(f"invalid variable name {name[:80]!r}")
                        continue
                    try:
                        variables[name] = VarRecord.from_bytes(data)
                        where[name] = f"{VARS}/{_show(name)}"
                    except (ValueError, TypeError, TxgitError) as e:
                        problems.append(f"{VARS}/{_show(name)}: {_one_line(e)}")
                if groups:
                    for gid, data in blobs_of(GROUPS):
                        if first_only and problems:
                            break
                        try:
                            record = GroupRecord.from_bytes(data)
                        except (ValueError, TypeError, TxgitError) as e:
                            problems.append(f"{GROUPS}/{_show(gid)}: {_one_line(e)}")
                            continue
                        if hash_bytes(data) != gid:
                            problems.append(f"{GROUPS}/{_show(gid)}: its name is not the hash of its record")
                            continue
                        group_records[gid] = record
            else:
                self._parse_records(commit, groups, problems, first_only, variables, group_records, where)
            if groups:
                for name, rec in variables.items():
                    if first_only and problems:
                        break
                    if rec.kind == VALUE and rec.group not in group_records:
                        problems.append(f"{_where(where, name)} names group {str(rec.group)[:12]}, which the commit"
                                        " lacks")
                    elif rec.kind == VALUE and name not in group_records[rec.group].names:
                        problems.append(f"{_where(where, name)}: its group {str(rec.group)[:12]} does not list it")
        except (KeyError, pygit2.GitError) as e:  # an object the tree names is not in the repository
            problems.append(f"unreadable git object: {_one_line(e)}")
        return State(variables, group_records, meta)

    def _parse_records(self, commit: pygit2.Commit, groups: bool, problems: list[str], first_only: bool,
                       variables: dict[str, VarRecord], group_records: dict[str, GroupRecord],
                       where: dict[str, str | tuple[str, int]]) -> None:
        """Format 2's ``records/`` shards into ``variables`` and (``groups``) ``group_records``, checking
        each line as :meth:`_parse_state` checks format 1's files, and that each variable lies in the
        shard its key falls in (where :meth:`read_variable` looks for it)."""
        if RECORDS not in commit.tree:
            return  # a state without variables
        sub = self.repo[commit.tree[RECORDS].id]
        if not isinstance(sub, pygit2.Tree):
            problems.append(f"{RECORDS} is not a folder")
            return
        shards: list[tuple[int, str]] = []  # (start, where) of every shard read, for the placement check
        shard_start: dict[str, int] = {}  # variable -> the start of the shard it was read from
        for entry in sub:
            at = f"{RECORDS}/{entry.name if _SHARD_NAME.fullmatch(entry.name) else _show(entry.name)}"
            obj = self.repo[entry.id]
            if not isinstance(obj, pygit2.Blob):
                problems.append(f"{at} is not a file")
                continue
            if not _SHARD_NAME.fullmatch(entry.name):
                problems.append(f"{at}: not a shard name (16 hex digits)")
                continue
            data = obj.data
            if data and not data.endswith(b"\n"):
                problems.append(f"{at}: does not end with a newline")
                continue
            start = int(entry.name, 16)
            shards.append((start, at))
            for n, line in enumerate(data.split(b"\n")[:-1], 1):
                if first_only and problems:
                    return
                tag, _, rest = line.partition(b" ")
                if tag == b"v":
                    raw_name, _, body = rest.partition(b" ")
                    name = raw_name.decode("utf-8", "replace")
                    if not is_variable_name(name):
                        problems.append(f"{at} line {n}: invalid variable name {name[:80]!r}")
                    elif name in variables:
                        problems.append(f"{at} line {n}: {name} is recorded twice")
                    else:
                        try:
                            variables[name] = VarRecord.from_bytes(body + b"\n")
                            where[name] = (at, n)
                            shard_start[name] = start
                        except (ValueError, TypeError, TxgitError) as e:
                            problems.append(f"{at} line {n}: {name}: {_one_line(e)}")
                elif tag == b"g":
                    if not groups:
                        continue
                    body = rest + b"\n"
                    try:
                        group_records[hash_bytes(body)] = GroupRecord.from_bytes(body)
                    except (ValueError, TypeError, TxgitError) as e:
                        problems.append(f"{at} line {n}: group: {_one_line(e)}")
                else:
                    problems.append(f"{at} line {n}: not a record (a record's line starts with 'v ' or 'g ')")
        starts = sorted(start for start, _ in shards)
        for name in variables:
            key = shard_key(name)
            if not starts or key < starts[0] or shard_start[name] != _shard_of(starts, key):
                problems.append(f"{_where(where, name)} lies outside the shard its key {key:016x} falls in")
                if first_only:
                    return

    def read_variable(self, commit: pygit2.Commit, name: str) -> VarRecord | None:
        """One variable's record, reading only its file (format 1) or its shard (format 2); None when
        the commit has no such variable or its record cannot be read. For quick look-ups (early cutoff):
        it checks neither the commit's format nor the rest of its tree, as :meth:`read_state` does."""
        if not is_variable_name(name):
            return None
        tree = commit.tree
        try:
            if RECORDS in tree:
                sub = self.repo[tree[RECORDS].id]
                key = f"{shard_key(name):016x}"
                # shard names have 16 hex digits: text order is the order of their starts
                shard = max((e.name for e in sub if _SHARD_NAME.fullmatch(e.name) and e.name <= key), default=None)
                if shard is None:
                    return None
                data = self.repo[sub[shard].id].data
                prefix = b"v " + name.encode() + b" "
                if data.startswith(prefix):
                    at = 0
                else:
                    at = data.find(b"\n" + prefix) + 1
                    if at == 0:
                        return None
                end = data.find(b"\n", at)
                return VarRecord.from_bytes(data[at + len(prefix): end + 1 if end >= 0 else len(data)])
            data = self.read_file(commit, f"{VARS}/{name}")
            return VarRecord.from_bytes(data) if data is not None else None
        except (KeyError, ValueError, TypeError, TxgitError, pygit2.GitError):
            return None

    def state_problems(self, commit: pygit2.Commit) -> tuple[State, list[str]]:
        """Everything wrong with a commit's records (for fsck), and what could be read of it."""
        problems: list[str] = []
        return self._parse_state(commit, True, problems), problems

    def reachable(self, *, reflog_since: float | None = None) -> tuple[list[pygit2.Commit], list[str]]:
        """Every commit any ref, HEAD or reflog entry reaches (what fsck checks and gc keeps).

        ``reflog_since``: ignore reflog entries older than this time (what gc is
        about to expire). Returns the commits and the problems met on the way (a
        ref naming a missing object); a caller that deletes things must stop on any.
        """
        problems: list[str] = []
        starts: set[pygit2.Oid] = set()

        def add(oid: pygit2.Oid, where: str) -> None:
            if oid == pygit2.Oid(hex="0" * 40):
                return
            try:
                starts.add(self.repo[oid].peel(pygit2.Commit).id)
            except (KeyError, ValueError, pygit2.GitError) as e:
                problems.append(f"{where} names {str(oid)[:8]}, which is not a readable commit ({_one_line(e)})")

        orig = self.orig_head()
        if orig is not None:  # a way back after a merge, pull or reset, as the reflog is
            add(pygit2.Oid(hex=orig), ORIG_HEAD)
        names = ["HEAD", *self.repo.references]
        for name in names:
            try:
                ref = self.repo.references[name].resolve()
            except (KeyError, pygit2.GitError):
                if name == "HEAD" and self.repo.head_is_unborn:
                    continue
                problems.append(f"ref {name} cannot be resolved")
                continue
            add(ref.target, name)
            try:
                for entry in self.repo.references[name].log():
                    if reflog_since is not None and entry.committer.time < reflog_since:
                        continue
                    add(entry.oid_new, f"reflog of {name}")
                    add(entry.oid_old, f"reflog of {name}")
            except (KeyError, pygit2.GitError, ValueError) as e:
                problems.append(f"reflog of {name} cannot be read ({_one_line(e)})")
        # Walked by hand, not with libgit2's walker: one unreadable commit must not
        # hide the others from fsck.
        commits: list[pygit2.Commit] = []
        seen: set[pygit2.Oid] = set()
        stack = sorted(starts, key=str)
        while stack:
            oid = stack.pop()
            if oid in seen:
                continue
            seen.add(oid)
            try:
                commit = self.repo[oid]
                parents = list(commit.parent_ids)
            except (KeyError, ValueError, pygit2.GitError) as e:
                problems.append(f"commit {str(oid)[:8]} cannot be read ({_one_line(e)})")
                continue
            commits.append(commit)
            stack.extend(parents)
        return commits, problems

    def expire_reflogs(self, older_than_seconds: float) -> int:
        """Drop reflog entries older than this (as ``git reflog expire`` does); returns how many.

        Their commits stop being reachable unless a ref still leads to them, so
        gc may then collect their blobs. Each log is rewritten to a temp file and
        renamed over the old one. Call under the workspace lock.
        """
        cutoff = time.time() - older_than_seconds
        dropped = 0
        logs = os.path.join(self.repo.path, "logs")
        for dirpath, _, files in os.walk(logs):
            for f in files:
                if f.endswith(".lock") or f.startswith(".tmp-"):
                    continue
                path = os.path.join(dirpath, f)
                with open(path, "rb") as fh:
                    lines = fh.readlines()
                keep = [line for line in lines if _reflog_time(line) >= cutoff]
                if len(keep) == len(lines):
                    continue
                tmp = os.path.join(dirpath, f".tmp-{f}-{os.getpid()}")
                with open(tmp, "wb") as fh:
                    fh.writelines(keep)
                os.replace(tmp, path)
                dropped += len(lines) - len(keep)
        return dropped

    def clear_stale_locks(self) -> list[str]:
        """Remove git's ``*.lock`` files that a killed writer left behind, and the cut last line of a
        reflog that a full disk (or a kill) left.

        Call only while holding the workspace lock: every txgit writer takes it
        before touching a ref, so a lock file seen then has no living owner, and
        left in place it would block every later commit. A reflog line libgit2
        could only partly append stays without its newline; the next append joined
        to it read as an entry naming a commit that never was (fsck failed and gc
        refused from then on), so it is cut off here, before anything appends.
        """
        removed = []
        root = self.repo.path
        for top in ("", "refs", "logs"):
            folder = os.path.join(root, top)
            walker = os.walk(folder) if top else [(folder, [], os.listdir(folder))]
            for dirpath, _, files in walker:
                for f in files:
                    if f.endswith(".lock"):
                        try:
                            os.unlink(os.path.join(dirpath, f))
                            removed.append(os.path.relpath(os.path.join(dirpath, f), root))
                        except FileNotFoundError:
                            pass
                    elif top == "logs" and _cut_last_line(os.path.join(dirpath, f)):
                        removed.append(os.path.relpath(os.path.join(dirpath, f), root) + " (its cut last line)")
        return removed

    def read_file(self, commit: pygit2.Commit, path: str) -> bytes | None:
        try:
            entry = commit.tree[path]
        except KeyError:
            return None
        obj = self.repo[entry.id]
        return obj.data if isinstance(obj, pygit2.Blob) else None

    # -- writing states --------------------------------------------------------
    def write_state(self, state: State, message: str, *, files: Mapping[str, bytes] | None = None,
                    ref: str | None = "HEAD", parent: str | None = "HEAD", merged: Iterable[str] = ()) -> str:
        """Commit ``state`` on top of ``parent`` and move ``ref`` (HEAD: its branch, or itself when detached;
        None: no ref, the caller keeps the commit's id).

        ``parent``: a commit id, None for none, "HEAD" for what ``ref`` names now. ``merged``: further
        parents (a merge commit). libgit2 refuses to move the ref if it no longer names the parent,
        so a concurrent writer is never silently overwritten.
        """
        tree_files = self._tree_files(state, files)
        head = self._parent(ref, parent)
        try:
            oid = commit_files(self.repo, tree_files, head, message or "(no message)", _signature(),
                               InvalidName, ref=ref, merged=[pygit2.Oid(hex=m) for m in merged])
        except HeadMoved as e:
            raise TxgitError(str(e)) from e
        self._remember(str(oid), True, state)  # the next commit reads it as HEAD
        self._after_commit()
        return str(oid)

    def _after_commit(self) -> None:
        """Now and then, look at the loose objects; past :data:`txgit.gitpack.LOOSE_LIMIT`, pack them in a
        background process (no cell waits for it; a kill of either process at any instant is harmless)."""
        if not self.auto_pack:
            return
        self._until_pack_check -= 1
        if self._until_pack_check > 0:
            return
        self._until_pack_check = gitpack.CHECK_EVERY
        if self._packer is not None:
            try:
                if os.waitpid(self._packer, os.WNOHANG)[0] == 0:
                    return  # still packing
            except ChildProcessError:
                pass
            self._packer = None
        if gitpack.estimate_loose(self.repo.path) >= gitpack.LOOSE_LIMIT:
            self._packer = gitpack.start_background(self.repo.path)

    def pack(self, *, gather: bool = True) -> gitpack.PackReport:
        """Pack the history's loose objects now (``gather``: with every pack there is, into one), waiting for
        a background packer to finish first. Safe beside commits and readers (see :mod:`txgit.gitpack`)."""
        return gitpack.pack(self.repo.path, gather=gather, wait=True)

    def remove_empty_fanout(self) -> int:
        """Remove the loose-object folders that packing emptied. Only under the workspace lock (see
        :func:`txgit.gitpack.remove_empty_fanout`)."""
        return gitpack.remove_empty_fanout(self.repo.path)

    def count_objects(self) -> gitpack.ObjectCounts:
        """Loose and packed git objects, and their bytes (``git count-objects -v``)."""
        return gitpack.count_objects(self.repo.path)

    def _parent(self, ref: str | None, parent: str | None) -> pygit2.Commit | None:
        if parent is None:
            return None
        if parent != "HEAD" or ref is None:
            return self.resolve(parent)
        return self.head_commit() if ref == "HEAD" else self.tip(ref)

    def tip(self, ref: str) -> pygit2.Commit | None:
        """The commit a ref (``refs/heads/main``, ``HEAD``) names now; None if it does not exist or HEAD is unborn."""
        if ref == "HEAD":
            return self.head_commit()
        try:
            return self.repo.references[ref].peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError):
            return None

    def tip_id(self, ref: str) -> str | None:
        """The id of the commit a branch ref (``refs/heads/main``) or HEAD names now, from the ref alone:
        :meth:`tip` also reads the commit object, which a session asking before and after every cell
        whether its branch moved does not need. None if there is no such ref or HEAD is unborn."""
        try:
            reference = self.repo.lookup_reference(ref)
            if reference.type != pygit2.enums.ReferenceType.DIRECT:
                reference = reference.resolve()  # HEAD
        except (KeyError, ValueError, pygit2.GitError):
            return None
        return str(reference.target) if reference.type == pygit2.enums.ReferenceType.DIRECT else None

    def commit_state(self, state: State, message: str, *, files: Mapping[str, bytes] | None = None,
                     writer: GitWriter | None = None, ref: str | None = "HEAD", parent: str | None = "HEAD",
                     merged: Iterable[str] = ()) -> CommitInfo:
        """:meth:`write_state`, and the new commit as :meth:`info` describes it. ``writer``: write the
        git objects in that helper process (see :mod:`txgit.gitwriter`) unless it cannot start
        (a merge commit is written here), or while it is still starting (the first cells' commits
        would wait for its start)."""
        merged = list(merged)
        if writer is None or merged or ref is None or not writer.ready(wait=False):
            oid = self.write_state(state, message, files=files, ref=ref, parent=parent, merged=merged)
            return self.info(self.resolve(oid), self.refs_by_commit())
        tree_files = self._tree_files(state, files)
        sig = _signature()
        message = message or "(no message)"
        done = writer.commit(tree_files, message, sig.name, sig.email, ref, parent)
        self._remember(done["id"], True, state)
        self._after_commit()
        # a new commit: only HEAD's branch can name it (no tag or remote-tracking branch names it yet)
        return CommitInfo(id=done["id"], message=message.rstrip("\n"), author=sig.name, email=sig.email,
                          time=datetime.fromtimestamp(done["time"], timezone.utc), parents=done["parents"],
                          refs=[done["branch"]] if done["branch"] else [])

    def _tree_files(self, state: State, files: Mapping[str, bytes] | None) -> dict[str, bytes]:
        shards, self._layout = record_shards(state, self._layout)
        tree_files = {f"{RECORDS}/{shard}": data for shard, data in shards.items()}
        tree_files[META] = (json.dumps(state.meta, sort_keys=True, indent=1, default=str) + "\n").encode()
        for path, data in (files or {}).items():
            if path.split("/")[0] in (VARS, GROUPS, RECORDS, META):
                raise InvalidName(f"{path!r} is reserved in a state tree")
            tree_files[path] = data
        return tree_files

    # -- refs -------------------------------------------------------------------
    def branches(self) -> dict[str, str]:
        return {name: str(self.repo.branches.local[name].peel(pygit2.Commit).id) for name in self.repo.branches.local}

    def create_branch(self, name: str, commit: pygit2.Commit, *, force: bool = False) -> None:
        validate_ref_name("branch", name)
        if name in self.repo.branches.local and not force:
            raise RefExists(f"a branch named {name!r} already exists")
        self.repo.branches.local.create(name, commit, force=force)

    def delete_branch(self, name: str) -> None:
        validate_ref_name("branch", name)
        if name not in self.repo.branches.local:
            raise InvalidName(f"no branch named {name!r}")
        if name == self.current_branch():
            raise TxgitError(f"cannot delete branch {name!r}: HEAD is on it (check out another first)")
        self.repo.branches.local.delete(name)
        self._drop_orig_head(name)  # a branch made again under this name has not moved yet

    def _drop_orig_head(self, branch: str) -> None:
        if self.orig_head_ref(branch) in self.repo.references:
            self.repo.references.delete(self.orig_head_ref(branch))

    def rename_branch(self, old: str, new: str, *, force: bool = False) -> dict[str, str]:
        """``git branch -m``: ``old`` becomes ``new`` with its reflog and configuration (the upstream it
        tracks), and HEAD if it was on it (libgit2 moves all three); the refs that hold commits waiting for
        their merge with ``old`` (:meth:`hold_unmerged`) follow it, each under a free name beside ``new``'s.
        ``force``: over an existing ``new`` (``-M``), not the one HEAD is on. Returns the held refs moved,
        old ref -> new ref."""
        validate_ref_name("branch", old)
        validate_ref_name("branch", new)
        local = self.repo.branches.local
        if old not in local:
            raise InvalidName(f"no branch named {old!r}")
        if new == old:
            return {}
        if new in local:
            if not force:
                raise RefExists(f"a branch named {new!r} already exists (-M replaces it)")
            if new == self.current_branch():
                raise TxgitError(f"cannot replace branch {new!r}: HEAD is on it (check out another first)")
        holds = [r for r in self.repo.references if is_hold(r) and self.held_for(r) == old]
        local[old].rename(new, force)
        orig = self.tip(self.orig_head_ref(old))  # its last move's way back follows it, as its reflog does
        self._drop_orig_head(old)
        self._drop_orig_head(new)
        if orig is not None:
            self.repo.create_reference_direct(self.orig_head_ref(new), orig.id, True)
        moved = {}
        for ref in holds:  # a replaced branch's own holds keep their names
            moved[ref] = self._hold(new, self.repo.references[ref].target)
            self.repo.references.delete(ref)
        return moved

    def own_head(self, pid: int, commit: str, why: str) -> str:
        """Point kernel ``pid``'s own detached HEAD (:data:`DETACHED`) at ``commit``, logging the move (a
        ref outside refs/heads has a reflog only if its log exists: made here), so that gc keeps what it
        named before too. Returns the ref."""
        ref = f"{DETACHED}{pid}"
        log = Path(self.repo.path) / "logs" / ref
        log.parent.mkdir(parents=True, exist_ok=True)
        log.touch()
        self.repo.create_reference_direct(ref, pygit2.Oid(hex=commit), True, message=why)
        return ref

    def drop_own_head(self, ref: str) -> None:
        """Delete a kernel's own detached HEAD (and its reflog) once neither names a commit nothing else does:
        commits left there stay reachable (gc keeps them; a checkout that left them named them)."""
        if ref not in self.repo.references:
            return
        named = {self.repo.references[ref].target}
        for entry in self.repo.references[ref].log():
            named |= {entry.oid_new, entry.oid_old}
        named.discard(pygit2.Oid(hex="0" * 40))
        try:
            if any(self.unreferenced(str(oid)) for oid in named):
                return
        except (KeyError, ValueError, pygit2.GitError):
            return  # (a commit it logged is unreadable: keep the ref, fsck says the rest)
        self.repo.references.delete(ref)

    def own_heads(self) -> dict[int, str]:
        """Kernel pid -> the commit its own detached HEAD (:meth:`own_head`) names, for each one left."""
        out = {}
        for name in self.repo.references:
            pid = name.removeprefix(DETACHED)
            commit = self.tip(name) if name.startswith(DETACHED) and pid.isdigit() else None
            if commit is not None:
                out[int(pid)] = str(commit.id)
        return out

    def hold_unmerged(self, branch: str | None, commit: str, held: str | None = None) -> str:
        """Keep ``commit`` (a session's last commit, on no branch: its merge with ``branch`` failed) under a ref
        until it is merged, so that gc keeps it and a terminal can bring it in once its kernel is gone.
        ``held``: the ref this session already holds its commits under. Another session's commits that
        ``commit`` does not contain keep their ref: this one takes a free name beside it. Returns the ref."""
        oid = pygit2.Oid(hex=commit)
        there = None if held is None else self.tip(held)
        if held is not None and (there is None or there.id == oid or self.repo.descendant_of(oid, there.id)):
            self.repo.references.create(held, oid, force=True)
            return held
        return self._hold(branch or "HEAD", oid)

    def _hold(self, branch: str, oid: pygit2.Oid) -> str:
        """Keep ``oid`` under the first hold for ``branch`` that is free or holds what ``oid`` contains."""
        for n in range(1, 1000):
            name = f"{HELD}{n}/{branch}"
            there = self.tip(name)
            if there is not None and there.id != oid and not self.repo.descendant_of(oid, there.id):
                continue  # another session's commits that these do not contain
            try:
                self.repo.references.create(name, oid, force=True)
            except (pygit2.GitError, ValueError):
                continue  # held/N/a left by a branch a gone since, and this is a/b's: git refs nest no deeper
            return name
        raise TxgitError(f"cannot hold commit {str(oid)[:8]}: {branch} has 999 holds (`txgit merge` them first)")

    def held_for(self, ref: str) -> str:
        """The branch a ref of :meth:`hold_unmerged` keeps commits for ("HEAD": a detached session's). A ref
        written the old way (refs/txgit/unmerged/a-2) is a branch's of that name if there is one, else the
        hold of the branch before ``-N``, if there is one, else of the branch of that whole name, gone since."""
        if ref.startswith(HELD):
            return ref[len(HELD):].partition("/")[2]
        name = ref.removeprefix(UNMERGED)
        local = self.repo.branches.local
        base, dash, n = name.rpartition("-")
        return base if name not in local and dash and n.isdigit() and base in local else name

    def unmerged(self) -> dict[str, str]:
        """The refs :meth:`hold_unmerged` made whose commits no branch holds yet -> commit id (their sessions'
        merges with their branches failed; a live session merges again at its next cell, a closed one never)."""
        tips = [pygit2.Oid(hex=c) for c in self.branches().values()]
        head = self.head_commit()
        if head is not None:  # a detached session's commits, merged where HEAD is
            tips.append(head.id)
        out = {}
        for name in self.repo.references:
            if not is_hold(name):
                continue
            commit = self.tip(name)
            if commit is not None and not any(t == commit.id or self.repo.descendant_of(t, commit.id) for t in tips):
                out[name] = str(commit.id)
        return out

    def drop_merged_holds(self) -> None:
        """Delete the refs of :meth:`hold_unmerged` whose commits a branch now holds (merged since)."""
        waiting = self.unmerged()
        for name in [n for n in self.repo.references if is_hold(n) and n not in waiting]:
            self.repo.references.delete(name)

    def remote_branches(self) -> dict[str, str]:
        """Remote-tracking branches, as git names them (``origin/main``) -> commit id: where each
        remote's branches were at the last fetch or push."""
        out = {}
        for ref in self.repo.references:
            if ref.startswith("refs/remotes/") and not _remote_head(ref):
                try:
                    out[ref[len("refs/remotes/"):]] = str(self.repo.references[ref].peel(pygit2.Commit).id)
                except (pygit2.GitError, ValueError, KeyError):
                    continue
        return out

    def tags(self) -> dict[str, str]:
        out = {}
        for ref in self.repo.references:
            if ref.startswith("refs/tags/"):
                out[ref[len("refs/tags/"):]] = str(self.repo.references[ref].peel(pygit2.Commit).id)
        return out

    def create_tag(self, name: str, commit: pygit2.Commit, message: str | None = None, *, force: bool = False) -> None:
        validate_ref_name("tag", name)
        ref = f"refs/tags/{name}"
        if ref in self.repo.references:
            if not force:
                raise RefExists(f"a tag named {name!r} already exists")
            self.repo.references.delete(ref)
        if message:
            self.repo.create_tag(name, commit.id, pygit2.enums.ObjectType.COMMIT, _signature(), message)
        else:
            self.repo.references.create(ref, commit.id)

    def delete_tag(self, name: str) -> None:
        validate_ref_name("tag", name)
        ref = f"refs/tags/{name}"
        if ref not in self.repo.references:
            raise InvalidName(f"no tag named {name!r}")
        self.repo.references.delete(ref)

    def unreferenced(self, commit_id: str, keep: Iterable[str] = ()) -> int:
        """How many commits ``commit_id`` reaches that no branch, tag or remote-tracking ref (nor ``keep``)
        does: what leaving a detached HEAD there would leave behind."""
        walker = self.repo.walk(pygit2.Oid(hex=commit_id), SortMode.TOPOLOGICAL)
        for name, tip in ref_tips(self.repo, head=False).items():
            if name.startswith(("refs/heads/", "refs/tags/", "refs/remotes/")):
                walker.hide(pygit2.Oid(hex=tip))
        for k in keep:
            walker.hide(pygit2.Oid(hex=k))
        return sum(1 for _ in walker)

    def move_ref(self, ref: str, commit: pygit2.Commit, *, expect: pygit2.Commit | None, why: str = "txgit") -> None:
        """Point ``ref`` (HEAD: its branch, or itself when detached) at ``commit``, if it still names
        ``expect`` (None: it does not exist). Call under the workspace lock."""
        now = self.tip(ref)
        if (now is None) != (expect is None) or (now is not None and expect is not None and now.id != expect.id):
            raise TxgitError(f"{ref.removeprefix('refs/heads/')} moved meanwhile (another process?): try again")
        if ref == "HEAD":
            if self.repo.head_is_detached or self.repo.head_is_unborn and self.current_branch() is None:
                self.repo.set_head(commit.id)
                return
            ref = f"refs/heads/{self.current_branch()}"
        self.repo.create_reference_direct(ref, commit.id, True, message=why)

    def set_head(self, *, branch: str | None = None, commit: pygit2.Commit | None = None) -> None:
        if branch is not None:
            self.repo.set_head(f"refs/heads/{branch}")
        elif commit is not None:
            self.repo.set_head(commit.id)  # detached
