"""Which states txgit will unpickle: trusted remotes and the provenance of fetched commits.

Unpickling a state runs code named by whoever wrote it. Blobs are always
verified against the hashes in git history, so the question is who wrote the
*history*: a commit made in this workspace is ours; a commit that arrived by
fetch (or pull, or clone) came from a remote, and is loaded only if

* that remote is marked trusted (``remote add --trusted``, ``remote trust NAME``,
  ``Remotes.set_trusted``), or
* the caller says so for this one load (``trust=True``, ``--trust``), or
* it is loaded in safe mode (``safe=True``, ``--safe``: allow-listed plain data
  types only, see :mod:`txgit.state.safe`).

A clone of a local path (a folder the user named on their own machine) marks
its origin trusted; a clone of a network URL does not, unless asked
(``clone(..., trusted=True)``, ``txgit clone --trusted``).

Provenance: after every fetch, the commits that were new to this repository
(reachable from the moved refs, not from any ref held before) are listed in
``.txgit/fetched.json`` with the remote's name. A commit we already had (say,
one we pushed) never lands there. Whether the remote is trusted is asked when a
state is loaded, so ``remote trust`` / ``remote untrust`` apply to what it sent
before too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

import pygit2

from txgit.errors import TxgitError, UnknownRemote
from txgit.history import ref_tips
from txgit.packs import write_atomic

if TYPE_CHECKING:
    from txgit.repository import Repository

FETCHED_FILE = "fetched.json"  # in .txgit/: {"commits": {commit id: remote it came from}}


class UntrustedState(TxgitError):
    """A state that came from a remote not marked trusted, loaded without --trust or --safe."""


def _key(name: str) -> str:
    return f"remote.{name}.txgit-trusted"


def is_trusted(repo: pygit2.Repository, name: str) -> bool:
    """Whether the remote ``name`` is marked trusted in this repository's config."""
    key = _key(name)
    return key in repo.config and repo.config.get_bool(key)


def set_trusted(ws: Repository, name: str, trusted: bool = True) -> None:
    """Mark a remote trusted (its commits load without --trust) or not; the remote must exist
    (:meth:`txgit.remote.Remotes.set_trusted` checks it first, naming the remotes there are)."""
    if name not in ws.history.repo.remotes.names():  # a typo would mark nothing that exists
        raise UnknownRemote(f"no remote named {name!r}")
    with ws.lock():
        ws.history.repo.config[_key(name)] = "true" if trusted else "false"


def _read(ws: Repository) -> dict[str, str]:
    try:
        doc = json.loads((ws.dir / FETCHED_FILE).read_text())
        commits = doc.get("commits", {})
        return {str(k): str(v) for k, v in commits.items()} if isinstance(commits, dict) else {}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, AttributeError) as e:
        # Fail closed: a damaged list must not make every fetched commit look like ours.
        raise TxgitError(f"{ws.dir / FETCHED_FILE} is unreadable ({e}): fix or delete it "
                         "(deleting trusts every fetched commit)") from e


def _write(ws: Repository, commits: dict[str, str]) -> None:
    target = ws.dir / FETCHED_FILE
    # atomic: a killed fetch (or a full disk) leaves the old list or the new one
    write_atomic(str(target), json.dumps({"commits": commits}, indent=0, sort_keys=True).encode())


def tips(repo: pygit2.Repository) -> set[str]:
    """Every commit a ref of ``repo`` names now (call before a fetch; pass to :func:`note_fetched`)."""
    return set(ref_tips(repo, head=False).values())


def note_fetched(ws: Repository, remote: str, before: Iterable[str]) -> int:
    """After a fetch from ``remote``: list the commits it brought (new to us) as its.

    Listed whether or not the remote is trusted now: trust is decided when a state is loaded,
    so untrusting a remote later takes effect for what it sent before. ``before``: :func:`tips`
    taken just before the fetch. Returns how many commits were listed.
    """
    repo = ws.history.repo
    before = set(before)
    new_tips = tips(repo) - before
    if not new_tips:
        return 0
    walker = repo.walk(pygit2.Oid(hex=sorted(new_tips)[0]))
    for t in sorted(new_tips)[1:]:
        walker.push(pygit2.Oid(hex=t))
    for h in before:
        walker.hide(pygit2.Oid(hex=h))
    fresh = [str(c.id) for c in walker]
    if not fresh:
        return 0
    with ws.lock():
        commits = _read(ws)
        commits.update({c: remote for c in fresh if c not in commits})
        _write(ws, commits)
    return len(fresh)


def fetched_commits(ws: Repository) -> dict[str, str]:
    """Every fetched commit listed, with the remote it came from (ours are not listed)."""
    return _read(ws)


def source_of(ws: Repository, commit_id: str) -> str | None:
    """The untrusted remote ``commit_id`` came from; None for our own commits and trusted remotes'."""
    remote = _read(ws).get(commit_id)
    if remote is None or is_trusted(ws.history.repo, remote):
        return None
    return remote


def require(ws: Repository, commit_id: str, *, trust: bool = False, safe: bool = False) -> None:
    """Refuse (:class:`UntrustedState`) to unpickle ``commit_id``'s state unless it is ours, from a
    trusted remote, or the caller passed ``trust`` or ``safe``."""
    if trust or safe:
        return
    remote = source_of(ws, commit_id)
    if remote is not None:
        raise UntrustedState(
            f"commit {commit_id[:8]} came from remote {remote!r}, which is not trusted, and loading a state runs "
            f"its code: `txgit remote trust {remote}` if you trust it, or load with --trust (this once) or --safe "
            "(plain data types only)")


def note_derived(ws: Repository, commit_id: str, sources: Iterable[str]) -> None:
    """``commit_id`` was made of other commits' records without loading them (a merge): it is listed
    as coming from the remote any of ``sources`` came from, so loading it needs the same trust.
    Call under the workspace lock."""
    commits = _read(ws)
    remotes = sorted({commits[s] for s in sources if s in commits})
    if remotes:
        commits[commit_id] = remotes[0]
        _write(ws, commits)
