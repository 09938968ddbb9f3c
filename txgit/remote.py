"""Remotes: a git remote (commits, branches, tags) paired with a storage URL (blobs).

    ws.remotes.add("origin", "/srv/proj.git")                 # blobs in /srv/proj.git/txgit-objects
    ws.remotes.add("team", "git://host/proj.git", storage="s3://bucket/proj",
                   storage_options={"endpoint_url": "http://127.0.0.1:9000"})
    ws.push("origin", all_branches=True)
    Workspace.clone("/srv/proj.git", "copy")                  # blobs come on demand

**Order.** Push uploads every blob the pushed commits name that the storage
lacks, and moves the remote's refs only after that: a reader of the remote
never meets a commit whose blobs are missing. A push killed half way leaves
extra blobs, never a dangling ref; running it again uploads the rest.

**Where blobs live.** A local-path or ``file://`` remote with no storage of its
own keeps them beside the bare repository (``<repo>/txgit-objects``), so one
folder is a complete remote. The storage URL travels with the history in the
ref ``refs/txgit/config`` (a commit whose tree holds ``remote.json``), so a
clone finds the blobs without being told. Credentials and endpoints never
travel: they are fsspec storage options, given per workspace
(``storage_options`` / ``--storage-option``) or through fsspec's and the cloud
SDK's usual environment variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``FSSPEC_S3_…``).

**Failing fast.** A network git remote that connects but never answers fails after
:func:`remote_timeout` seconds (``TXGIT_REMOTE_TIMEOUT``, else the git config
``txgit.remote-timeout``, else 30), with one line naming the remote. The CLI
says ``connecting to URL ...`` when a remote has not answered for a second
(:func:`notify_when_slow`); the Python API stays quiet.

**Interrupts.** Ctrl-C (a KeyboardInterrupt) during push, fetch or clone becomes
:class:`txgit.errors.Interrupted`, still a KeyboardInterrupt, whose message says
what had changed by then: a push's uploads in flight finish and the rest are
dropped, and its refs had moved or not; a fetch's remote-tracking branches and
blobs brought so far (their provenance recorded all the same); a clone leaves
nothing behind.

**Trust.** Every blob read from a remote storage is verified against its hash
(:class:`txgit.storage.ObjectStore` does it on every read) before it is kept
in the local cache or unpickled.

This module stands on the engine, :mod:`txgit.repository` (history + storage);
it knows nothing of the facade (:mod:`txgit.workspace`), sessions or the CLI.
"""

from __future__ import annotations

import contextvars
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as _wait_all
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, TypeVar

import fsspec
import pygit2
from pygit2.enums import ConfigLevel, FileMode, SortMode

from txgit.errors import (
    BlobError,
    CorruptBlob,
    Interrupted,
    MissingBlob,
    InvalidName,
    PushRejected,
    RemoteError,
    RestoreError,
    TxgitError,
    UnknownRemote,
    WorkspaceExists,
    disk_full,
)
from txgit import attached, packs, trust
from txgit.collector import collector_paused
from txgit.history import FORMAT_KEY, META, RECORDS
from txgit.repository import TXGIT_DIR, Repository
from txgit.state.snapshot import CHUNK_SIZE, GroupRecord
from txgit.storage import ObjectStore, StoreChain, hash_bytes, read_sound

EMBEDDED_DIR = "txgit-objects"  # blobs beside a bare repository: <repo.git>/txgit-objects
CONFIG_REF = "refs/txgit/config"  # on the remote: the commit that records where its blobs are
CONFIG_FILE = "remote.json"
DEFAULT_REMOTE = "origin"
REMOTE_INDEX_DIR = "remote-index"  # in .txgit/: copies of remotes' pack indexes (see txgit.packs)
UNFINISHED_CLONE = "clone-unfinished"  # in .txgit/ while a clone is under way: a killed clone leaves it
# In the config commit's tree: the names of the storage's pack indexes, ``<pack id>.idx`` (empty
# files), so that a clone reads the indexes it needs without listing the storage first (a hint, as
# every index). Names, not texts: an index of 1,000 blobs is ~74 KB, ~10 ms more for every git push.
CARRIED_INDEXES_DIR = "packs"
# More indexes than this and none are named: the tree, rewritten by every push, stays small, and a
# clone lists the storage as it did before.
_CARRIED_INDEXES_MAX = 256
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_BATCH_BLOBS = 32  # blobs per upload/download task (chunks are <= 1 MiB)
_WORKERS = 8  # transfers in flight for blocking backends (folders): remote stores are latency-bound
# Blobs per call for async backends, which send a call's requests concurrently themselves:
# enough to keep a connection pool of _S3_POOL busy, few enough to bound memory (chunks <= 1 MiB).
_ASYNC_BATCH_BLOBS = 128
_S3_POOL = 64  # connections per S3 client (botocore's default, 10, caps requests in flight at 10)
_S3_TRIES = 2  # s3fs's tries of one request when a remote timeout is set (its default is 5)
_HEAD_CHECKS_UPTO = 64  # up to this many names, ask per blob (in parallel); past it, list the store once
# Git config for a push whose pack needs no delta search (one new commit). libgit2's pack builder
# reads its big-file threshold (above it: no delta search) from pack.deltaCacheSize, not from
# core.bigFileThreshold; windowMemory=1 leaves one object in the window, should that ever change.
_NO_DELTA_SEARCH = "[pack]\n\tdeltaCacheSize = 1\n\twindowMemory = 1\n"
_NO_DELTA_SEARCH_FILE = "push-no-delta-search.gitconfig"  # in .txgit/
# On the remote: a commit whose git objects a push sent while its blobs were still uploading. Outside
# refs/heads, refs/tags and refs/txgit, so no fetch or clone reads it; the push's last step deletes it.
PENDING_PREFIX = "refs/txgit-pending/"
# A push sends its git objects beside the blob upload from this many new blobs (or bytes) on; below it,
# the upload is a request or two and a second git push would cost more than the overlap saves.
_EARLY_OBJECTS_BLOBS = _HEAD_CHECKS_UPTO
_EARLY_OBJECTS_BYTES = 1 << 20
_PREFETCH_PACKS_MAX = 4  # an eager fetch reads up to this many packs named in git beside their indexes
DEFAULT_TIMEOUT = 30.0  # seconds a git remote (or an S3 request) may stay silent before we give up on it
TIMEOUT_ENV = "TXGIT_REMOTE_TIMEOUT"
TIMEOUT_KEY = "txgit.remote-timeout"  # in the workspace's (or the user's global) git config
SLOW_AFTER = 1.0  # seconds without an answer before the CLI says "connecting to URL ..."
# Environment variables that change what credentials or endpoint a storage backend uses: a store
# built before they changed is rebuilt (a kernel must not need a restart to pick up new keys).
_CREDENTIAL_ENV = ("AWS_", "FSSPEC_", "GOOGLE_", "GCSFS_", "AZURE_")

# (phase, bytes done, bytes total): called with (phase, 0, total) before the first blob moves, then
# after each batch; total is known from the records up front and stays the same, done grows to it.
Progress = Callable[[str, int, int], None]


# -- configuration -------------------------------------------------------------------------

@dataclass
class Remote:
    """One configured remote: where its history and its blobs are."""

    name: str
    url: str  # the git URL: a path, file://, git://, https://, ssh
    storage: str | None = None  # an fsspec URL given by the user; None: recorded by the remote, or embedded
    storage_options: dict[str, Any] = field(default_factory=dict)
    trusted: bool = False  # its states load without --trust (see txgit.trust)

    @property
    def local_path(self) -> Path | None:
        """The bare repository's folder when the git URL is a local path or file:// URL."""
        return local_path(self.url)


def local_path(url: str) -> Path | None:
    """A local folder for a path or ``file://`` URL; None for network URLs (git://, https://, user@host:path)."""
    if url.startswith("file://"):
        return Path(urllib.parse.unquote(urllib.parse.urlparse(url).path))
    if "://" in url or re.match(r"^[^/]+:", url):
        return None
    return Path(url).expanduser()


def parse_storage_options(items: Iterable[str]) -> dict[str, Any]:
    """``key=value`` strings (the CLI's ``--storage-option``) as fsspec options; values may be JSON."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidName(f"storage option {item!r} is not key=value")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def remote_timeout(repo: pygit2.Repository | None = None) -> float:
    """Seconds a network git remote may stay silent (0: no limit).

    ``TXGIT_REMOTE_TIMEOUT`` wins, then ``txgit.remote-timeout`` in ``repo``'s git config (which
    includes the user's global one), then :data:`DEFAULT_TIMEOUT`. A bad value is a one-line error.
    """
    raw, where = os.environ.get(TIMEOUT_ENV, "").strip(), TIMEOUT_ENV
    if not raw and repo is not None and TIMEOUT_KEY in repo.config:
        raw, where = str(repo.config[TIMEOUT_KEY]).strip(), f"git config {TIMEOUT_KEY}"
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):  # also refuses nan
        raise RemoteError(f"{where}={raw[:40]!r} is not a number of seconds (0: no limit)")
    return seconds


def set_remote_timeout(repo: pygit2.Repository, seconds: float | str | None) -> float | None:
    """Store (None: remove) ``txgit.remote-timeout`` in ``repo``'s config; checked as :func:`remote_timeout` does."""
    if seconds is None:
        if TIMEOUT_KEY in repo.config:
            del repo.config[TIMEOUT_KEY]
        return None
    try:
        value = float(seconds)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise InvalidName(f"remote timeout {str(seconds)[:40]!r} is not a number of seconds (0: no limit)")
    repo.config[TIMEOUT_KEY] = f"{value:g}"
    return value


# The CLI's "connecting to URL ..." (set with notify_when_slow); None in the Python API: it stays quiet.
_slow_notice: ContextVar[Callable[[str | None], None] | None] = ContextVar("txgit_slow_notice", default=None)


@contextmanager
def notify_when_slow(show: Callable[[str | None], None]) -> Iterator[None]:
    """Within this block, a remote that has not answered for :data:`SLOW_AFTER` seconds is reported:
    ``show(url)`` (from a timer thread), then ``show(None)`` once it answers or the call ends."""
    token = _slow_notice.set(show)
    try:
        yield
    finally:
        _slow_notice.reset(token)


class _Watch:
    """One network call: fires the slow notice unless an answer (or the end) comes first."""

    def __init__(self, url: str, show: Callable[[str | None], None] | None) -> None:
        self._show = show
        self._lock = threading.Lock()
        self._shown = self._done = False
        self._timer: threading.Timer | None = None
        if show is not None:
            self._timer = threading.Timer(SLOW_AFTER, self._fire, [url])
            self._timer.daemon = True
            self._timer.start()

    def _fire(self, url: str) -> None:
        with self._lock:
            if not self._done and self._show is not None:
                self._shown = True
                self._show(url)

    def answered(self) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
            if self._timer is not None:
                self._timer.cancel()
            if self._shown and self._show is not None:
                self._show(None)


def _timeout_note(timeout: float) -> str:
    return (f"no answer within {timeout:g} s; {TIMEOUT_ENV} or `txgit config remote.timeout SECONDS` "
            "sets how long to wait")


def _git_error(remote: Remote, e: Exception, timeout: float | None = None) -> TxgitError:
    full = disk_full(e, f"remote {remote.name!r} ({remote.url})", None)
    if full is not None:  # the remote answered: this side's disk (or a folder remote's) is full
        return full
    text = " ".join(str(e).split()) or type(e).__name__
    if timeout and "timed out" in text:
        text += f" ({_timeout_note(timeout)})"
    if "remote error:" in text:  # the server answered and refused (git daemon's "access denied or not exported")
        return RemoteError(f"remote {remote.name!r} ({remote.url}) refused: {text.partition('remote error:')[2].strip()}"
                           " (check the repository's URL, and that it takes pushes from you)")
    return RemoteError(f"cannot reach remote {remote.name!r} ({remote.url}): {text}")


def _s3_endpoint(options: Mapping[str, Any], fs: Any = None) -> str | None:
    """The endpoint an S3 store talks to, or None for AWS's default (no request is made to find out)."""
    client = getattr(fs, "_s3", None)  # s3fs's botocore client, once it exists: what it really uses
    if client is not None:
        url = getattr(getattr(client, "meta", None), "endpoint_url", None)
        if url and not str(url).endswith(".amazonaws.com"):
            return str(url)
        if url:
            return None
    kwargs = options.get("client_kwargs") or {}
    for candidate in (options.get("endpoint_url"), kwargs.get("endpoint_url") if isinstance(kwargs, dict) else None,
                      getattr(fs, "endpoint_url", None), (getattr(fs, "client_kwargs", None) or {}).get("endpoint_url"),
                      os.environ.get("AWS_ENDPOINT_URL_S3"), os.environ.get("AWS_ENDPOINT_URL")):
        if candidate:
            return str(candidate)
    return None


def _storage_error(url: str, e: Exception, options: Mapping[str, Any] | None = None, fs: Any = None,
                   timeout: float = 0.0) -> RemoteError:
    text = " ".join(f"{type(e).__name__}: {e}".split())
    if len(text) > 300:
        text = text[:299] + "…"
    if timeout and ("timeout" in text.lower() or "timed out" in text):
        text += f" ({_timeout_note(timeout)})"
    if fsspec.core.split_protocol(url)[0] not in ("s3", "s3a"):
        return RemoteError(f"remote storage {url} failed: {text}")
    # Most S3 failures are a wrong endpoint, bucket or key: say which endpoint was asked and how to change it.
    endpoint = _s3_endpoint(options or {}, fs)
    if isinstance(e, PermissionError):  # s3fs's name for 403: the server is there and refused these keys
        hint = "check the credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE; "
    elif "Could not connect" in text:  # botocore's EndpointConnectionError: the endpoint may be right, its server down
        hint = "nothing answers there: check that the server runs, or "
    else:
        hint = ""
    if endpoint is None:
        return RemoteError(f"remote storage {url} at AWS's default endpoint failed: {text} ({hint}for another S3 "
                           "server set AWS_ENDPOINT_URL or --storage-option endpoint_url=URL)")
    return RemoteError(f"remote storage {url} at endpoint {endpoint} failed: {text} ({hint}set AWS_ENDPOINT_URL "
                       "or --storage-option endpoint_url=URL to change the endpoint)")


def _remote_tags(remote: str) -> str:
    """Where a fetch keeps ``remote``'s tags as it has them (ours in refs/tags are made from them)."""
    return f"refs/txgit/remote-tags/{remote}/"


def nothing_merged(e: RemoteError | RestoreError, label: str) -> RemoteError | RestoreError:
    """A pull's merge that could not read the remote's storage (down, unreachable) or rebuild a value here
    (a module not installed): the fetch is done, the merge moved nothing, and the pull is what to run again."""
    if isinstance(e, RestoreError):
        return RestoreError(f"{e}; nothing was merged: {label} is fetched, pull again once it loads here",
                            reason=e.reason)
    said = str(e).split(_STORAGE_DOWN, 1)[0]  # the merge's own advice (`merge REV` again): the pull gives its own
    return RemoteError(f"{said}; nothing was merged: {label} is fetched, pull again once the storage answers")


_STORAGE_DOWN = "; nothing was "


def storage_down(e: RemoteError, done: str, command: str) -> RemoteError:
    """A checkout, reset or merge (``done``: "checked out", …) that could not read the remote's storage
    (down, unreachable): it loaded and moved nothing, and ``command`` again is what to run once it answers."""
    return RemoteError(f"{e}{_STORAGE_DOWN}{done}: `txgit {command}` again once the storage answers")


def _credential_fingerprint() -> str:
    """A digest of what decides a storage's credentials besides its options: the SDKs' environment
    variables and the AWS shared files' modification times (a digest: no secret kept in memory twice)."""
    h = hashlib.sha256()
    for k in sorted(os.environ):
        if k.startswith(_CREDENTIAL_ENV):
            h.update(f"{k}={os.environ[k]}\0".encode("utf-8", "surrogateescape"))
    for env, default in (("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"), ("AWS_CONFIG_FILE", "~/.aws/config")):
        try:
            h.update(str(os.stat(os.path.expanduser(os.environ.get(env) or default)).st_mtime_ns).encode())
        except OSError:
            h.update(b"-")
    return h.hexdigest()


_shared_filesystems: dict[tuple[str, ...], Any] = {}
_shared_filesystems_lock = threading.Lock()
_SHARED_FILESYSTEMS_MAX = 8


def _shared_filesystem(key: tuple[Any, ...], made: Any) -> Any:
    """The filesystem kept for ``key`` (``made`` is kept if none is yet). Stores that share one share
    its client and connections; ``key`` holds the options, the credential fingerprint and the
    process id, so new keys in the environment or a forked child get a fresh one."""
    with _shared_filesystems_lock:
        fs = _shared_filesystems.pop(key, None) or made
        _shared_filesystems[key] = fs  # most recently used last
        while len(_shared_filesystems) > _SHARED_FILESYSTEMS_MAX:
            _shared_filesystems.pop(next(iter(_shared_filesystems)))
        return fs


def _put_without_waiting_to_continue(fs: Any) -> None:
    """Make the S3 clients of ``fs`` send a PUT's body at once. botocore asks the server for "100
    Continue" first, and that answer is awaited with no limit: a server that accepted and never
    answered held an upload forever, while every other request stopped after the remote timeout.
    Sent at once, the wait for the answer is a read, which the timeout bounds. (Our PUTs are at most
    a few MiB: what the question would spare on a refusal is little.)"""
    if getattr(fs, "_txgit_puts_at_once", False):
        return
    from botocore.handlers import add_expect_header

    made = fs.set_session  # s3fs makes its client lazily, in set_session, before every request

    async def set_session(*args: Any, **kwargs: Any) -> Any:
        client = await made(*args, **kwargs)
        if not getattr(client, "_txgit_puts_at_once", False):
            client.meta.events.unregister("before-call.s3", add_expect_header)
            client._txgit_puts_at_once = True
        return client

    fs.set_session = set_session
    fs._txgit_puts_at_once = True


class RemoteStore(ObjectStore):
    """An :class:`ObjectStore` on a remote URL: batched existence checks, errors as one line.

    Reads stay verified (the base class hashes every blob it returns). Opening one creates
    nothing: a local folder appears with the first blob written.
    """

    create_on_open = False
    remote_name: str | None = None  # the remote it serves (Remotes.store sets it): named in its errors
    # Large chunks stay loose objects on a remote (a push reads them from the local packs by range):
    # one request per MiB, as before, and nothing to rewrite when a remote's garbage is collected.
    pack_large = False

    def __init__(self, url: str, *, timeout: float = 0.0, **storage_options: Any) -> None:
        """``timeout``: seconds a network store may stay silent (0: the backend's defaults)."""
        self.options = dict(storage_options)  # as given: named in error messages (the endpoint)
        self.timeout = timeout
        s3 = fsspec.core.split_protocol(url)[0] in ("s3", "s3a")
        if s3:
            # Many small blobs go up concurrently: a larger pool, unless the user chose one.
            config = dict(storage_options.get("config_kwargs") or {})
            config.setdefault("max_pool_connections", _S3_POOL)
            if timeout:
                # botocore waits 60 s for an answer and retries 4 times, and s3fs retries that 5 times:
                # a server that accepts and never answers held a push for 20 minutes. Wait `timeout`
                # per try, leave the retrying to s3fs (it also backs off on SlowDown), and try twice.
                # (botocore's "max_attempts" counts retries: 1 made each s3fs try two, four in all)
                config.setdefault("connect_timeout", timeout)
                config.setdefault("read_timeout", timeout)
                config.setdefault("retries", {"total_max_attempts": 1, "mode": "standard"})
            storage_options = {**storage_options, "config_kwargs": config}
        if "::" not in url:
            # fsspec hands back a cached instance for equal arguments, with the credentials it resolved
            # when it was made: a fresh one sees keys set in os.environ since (Remotes.store caches ours).
            storage_options.setdefault("skip_instance_cache", True)
        try:
            super().__init__(url, **storage_options)
        except Exception as e:  # e.g. s3fs not installed, unknown protocol, bad option
            raise _storage_error(url, e, self.options) from e
        if s3 and "max_concurrency" not in self.options and getattr(self.fs, "max_concurrency", 1) > 1:
            # s3fs >= 2025 asks a blob's size (a HEAD) before every whole read, to split reads of
            # files over its block size (50 MiB) into ranges: our chunks are <= 1 MiB and packs are
            # read whole or by member ranges, so that doubled the requests of a clone.
            self.fs.max_concurrency = 1
        if not self.is_local and _async_backend(self.fs):
            # one client per process for equal options and credentials: making an S3 client (its
            # session, endpoint resolution, first connection) cost 0.1-0.5 s, paid again by every
            # workspace that opened the same storage (a clone beside the pushing workspace)
            key = (type(self.fs).__name__, json.dumps(storage_options, sort_keys=True, default=repr),
                   _credential_fingerprint(), os.getpid())
            self.fs = _shared_filesystem(key, self.fs)
            self.packs = packs.PackSet(self.fs, self.root, self.is_local)
        if s3 and timeout and isinstance(getattr(self.fs, "retries", None), int):
            self.fs.retries = min(self.fs.retries, _S3_TRIES)
        if s3 and timeout:
            _put_without_waiting_to_continue(self.fs)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except TxgitError:
            raise
        except Exception as e:  # fsspec backends raise their SDK's errors: make them one line
            raise _storage_error(self.url, e, self.options, self.fs, self.timeout) from e

    def missing(self, names: Iterable[str], *, refresh: bool = True, check_loose: bool = False) -> set[str]:
        """Which names the store lacks: the remote index first, then per-blob checks in parallel
        for a few, one listing for many. ``refresh=False``: the caller has just refreshed the index.

        ``check_loose`` (a push): a blob the index records as stored loose is asked about too. The
        listing vouches for a pack (there, and as long as its index says), but not for a loose blob,
        which may be deleted behind the index's back: a push that took the record's word skipped
        it, and moved a branch to a state the remote could not give back."""
        wanted = set(names)
        if not wanted or self.is_local:
            return super().missing(wanted)
        with self._errors():
            self.fs.invalidate_cache(self.root)  # a listing cached earlier may predate others' uploads
            # The remote index: one listing of the pack folder and the indexes not read before say
            # what every push stored (packed or loose). A hint only: what it names is not asked again,
            # but a pack that is gone or cut short vouches for nothing (txgit.packs).
            if refresh or not self.packs.loaded:
                self.packs.refresh()
            recorded: set[str] = set()  # recorded loose by an index: to be asked about
            if check_loose:
                wanted -= self.packs.packed().keys()
                recorded = wanted & self.packs.where.keys()
            else:
                wanted -= self.packs.where.keys()
            if not wanted:
                return wanted
            if len(wanted) > _HEAD_CHECKS_UPTO:
                if self.packs.indexes():
                    # an indexed remote: what no index names was not stored by a push that wrote
                    # indexes; at worst a blob stored before the first of them goes again (once)
                    if not recorded:
                        return wanted
                    asked = recorded - set(self.loose_names()) if len(recorded) > _HEAD_CHECKS_UPTO \
                        else self._missing_asked(recorded)
                    return (wanted - recorded) | asked
                return wanted - set(self.loose_names())  # packs: listed above
            return self._missing_asked(wanted)

    def _missing_asked(self, wanted: set[str]) -> set[str]:
        """Which of ``wanted`` are not stored loose, asked per blob, in parallel."""
        # each blob's info, or the error asking for it: "not found" is missing, any other error is
        # raised (a backend's own ``exists`` answers False for both, sftp's and memory's among them)
        order = sorted(wanted)
        paths = [self.path(n) for n in order]
        if _async_backend(self.fs):  # one concurrent batch on the backend's loop
            from fsspec.asyn import sync

            answers = sync(self.fs.loop, _gather_info, self.fs, paths)
        else:
            with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
                answers = list(pool.map(lambda p: _info_or_error(self.fs, p), paths))
        present = packs.absent_or_raise(dict(zip(order, answers)))
        return wanted - present.keys()

    def listing(self) -> dict[str, dict[str, Any]]:
        """Everything below the store (path -> details), in one request on S3; the remote index is
        refreshed from it. For :meth:`missing_by_listing`, which may then be asked later."""
        with self._errors():
            self.fs.invalidate_cache(self.root)
            try:
                listed = packs.list_below(self.fs, self.root)
            except FileNotFoundError:
                listed = {}
            self.packs.refresh(listed=listed)
            return listed

    def missing_by_listing(self, names: Iterable[str], *, listed: dict[str, dict[str, Any]] | None = None) -> set[str]:
        """Which names the store lacks, from one listing of everything below it: the packs, their
        indexes, and the blobs stored loose. For a storage that is new or small, most likely (a
        first push to a new git remote), where :meth:`missing` would list the pack folder and then,
        finding no index, the whole storage: two requests. On a storage holding many loose blobs
        the listing takes one request per thousand of them, as :meth:`missing` would without an index.
        ``listed``: what :meth:`listing` returned just before (nothing is asked again)."""
        wanted = set(names)
        if not wanted or self.is_local:
            return super().missing(wanted)
        if listed is None:
            listed = self.listing()
        with self._errors():
            # a packed copy is vouched for by the listing (its pack is there, long enough); a loose
            # one only by being listed itself, whatever an index recorded (it may be deleted since)
            wanted -= self.packs.packed().keys()
            return wanted - {n for n in map(self._name_of, map(str, listed)) if n is not None}

    def names(self) -> Iterator[str]:
        with self._errors():
            yield from super().names()

    def loose_names(self) -> Iterator[str]:
        with self._errors():
            yield from super().loose_names()

    def get_many(self, names: Iterable[str]) -> dict[str, bytes]:
        with self._errors():
            return super().get_many(names)

    def get_sound(self, names: Iterable[str]) -> tuple[dict[str, bytes], dict[str, str]]:
        with self._errors():
            return super().get_sound(names)

    def check(self, names: Iterable[str]) -> dict[str, str]:
        with self._errors():
            return super().check(names)

    def gone(self) -> str | None:
        why = super().gone()
        if why is None or self.remote_name is None:
            return why
        return f"{why} (moved, or a mistyped URL? `txgit remote set-storage {self.remote_name} URL` points elsewhere)"

    def _corrupt(self, name: str) -> CorruptBlob:
        if self.remote_name is None:
            return super()._corrupt(name)
        # the reader cannot mend it (its own copy is what is missing): whoever pushed it can
        return CorruptBlob(f"blob {name} on remote {self.remote_name} ({self.url}) is corrupted (its bytes do not "
                           f"match its hash) and was not loaded: ask whoever has a good copy to run "
                           f"`txgit fsck --remote {self.remote_name} --verify --repair`, then try again")

    def write_blobs(self, blobs: Mapping[str, bytes | bytearray | memoryview]) -> int:
        with self._errors():
            return super().write_blobs(blobs)


def _short_ref(ref: str) -> str:
    return ref.removeprefix("refs/heads/").removeprefix("refs/tags/")


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` (itself included) that does not exist yet; None if it exists."""
    path = path.absolute()
    if path.exists():
        return None
    while not path.parent.exists() and path.parent != path:
        path = path.parent
    return path


def _batches(names: list[str], sizes: Mapping[str, int], per_batch: int) -> list[list[str]]:
    """Transfer batches: small blobs together, up to a pack's worth of bytes each (a store writes
    each such batch as one pack: one request, not one per blob); large blobs ``per_batch`` at a time."""
    small = [n for n in names if sizes.get(n, packs.SMALL_BLOB_MAX + 1) <= packs.SMALL_BLOB_MAX]
    large = [n for n in names if sizes.get(n, packs.SMALL_BLOB_MAX + 1) > packs.SMALL_BLOB_MAX]
    out: list[list[str]] = []
    size = 0
    for n in small:
        if not out or size + sizes[n] > packs.PACK_MAX_BYTES:
            out.append([])
            size = 0
        out[-1].append(n)
        size += sizes[n]
    return out + [large[i : i + per_batch] for i in range(0, len(large), per_batch)]


def _chunk_sizes(size: int, chunks: list[str]) -> dict[str, int]:
    """Each chunk's size, from its stream's record: streams are cut in pieces of CHUNK_SIZE, the
    last one shorter (a stream cut otherwise gets an even share per chunk: right in total)."""
    if len(chunks) == 1:
        return {chunks[0]: size}
    if not chunks:
        return {}
    k = len(chunks)
    if (k - 1) * CHUNK_SIZE < size <= k * CHUNK_SIZE:
        out = dict.fromkeys(chunks[:-1], CHUNK_SIZE)
        out.setdefault(chunks[-1], size - (k - 1) * CHUNK_SIZE)
        return out
    share, extra = divmod(size, k)
    return {c: share + (1 if i < extra else 0) for i, c in enumerate(chunks)}


@dataclass
class _Tally:
    """How far a transfer got: blobs and bytes written so far, of ``total_blobs``."""

    blobs: int = 0
    bytes: int = 0
    total_blobs: int = 0
    in_flight: bool = False  # stopped with a batch under way on an async backend: it may still land

    def done(self) -> str:
        """``37 of 400`` (``at least 37 of 400`` while a batch may still land)."""
        return f"{'at least ' if self.in_flight else ''}{self.blobs} of {self.total_blobs}"


@dataclass
class _PushStage:
    """How far a push got, for what an interrupt says: the blobs uploaded, and the remote's refs
    (``before`` they are touched, ``moving`` while the git push runs, ``moved`` once it returned)."""

    blobs: _Tally = field(default_factory=_Tally)
    refs: str = "before"
    moving: list[str] = field(default_factory=list)
    store_root: Path | None = None  # the storage's folder, when it is one
    sources: dict[str, str] = field(default_factory=dict)  # remote ref -> the local ref pushed to it
    storage: bool = False  # the blob step began: a failure from then on says what the remote holds

    def describe(self, remote: str, made: list[Path]) -> str:
        root = self.store_root
        kept = (f" ({self.blobs.done()} blobs were uploaded already: the next push sends only the rest)"
                if self.blobs.blobs or self.blobs.in_flight else "")
        if self.refs != "moved" and made:
            if root is not None and any(root == m or m in root.parents for m in made):
                kept = ""  # the uploaded blobs went with the folder
            return (f"nothing was changed on {remote}: what this push had created was removed "
                    f"({', '.join(str(m) for m in made)}){kept}")
        if self.refs == "before":
            return f"nothing was changed on {remote}: its branches are where they were{kept}"
        refs = ", ".join(_short_ref(ref) for ref in self.moving)
        if self.refs == "moving":
            return (f"{remote}'s {refs} may or may not have moved (every blob they name was uploaded before): "
                    f"`txgit fetch {remote}` shows where they are")
        return f"the push was done: {remote}'s {refs} moved; `txgit fetch {remote}` updates {remote}/… here"


@contextmanager
def _one_push_at_a_time(path: Path | None) -> Iterator[None]:
    """Hold an exclusive lock on a folder remote's repository from the reading of its branches until
    they moved. libgit2's local transport moves a ref without checking where it was (git daemon's
    receive-pack checks): two pushes at the same instant were both told they landed, and the remote
    kept one of the two commits. Network remotes: no-op.

    The push that makes the repository holds its parent folder's lock until it is done (or until the
    folder it made is removed again); every push takes that lock first. A push that found the folder
    made and took only the folder's own lock went beside the first push: both landed, or the first,
    refused, removed the folder with the other's commit in it."""
    if path is None or not path.parent.is_dir():
        yield
        return
    parent = _flock(path.parent)  # waits for a first push there to end
    try:
        if path.is_dir():  # made, and whole: a first push keeps the parent's lock until it is
            if parent is not None:
                os.close(parent)
                parent = None
            own = _flock(path)
            try:
                yield
            finally:
                if own is not None:
                    os.close(own)
        else:
            yield
    finally:
        if parent is not None:
            os.close(parent)


# what `git init --bare` makes before its HEAD (libgit2 writes HEAD last but for the samples and the
# description): a folder holding these alone, and no HEAD, is one a killed init left
_INIT_SKELETON = {"objects", "objects/info", "objects/pack", "refs", "refs/heads", "refs/tags", "hooks", "info",
                  "config", "description", "info/exclude"}


def refuse_refspec(verb: str, remote: str | None, branch: str) -> None:
    """git's ``push origin main:x`` names a refspec, which txgit's push and pull do not take (":" is in no
    branch name: it was "no branch named 'main:x'"): say so, and what to type instead."""
    if ":" not in branch:
        return
    src, _, dst = branch.removeprefix("+").partition(":")
    there = remote or "origin"
    if verb == "pull":
        advice = f"`txgit pull {there} {src or 'BRANCH'}` merges {src or 'that branch'} into your branch"
    elif not src:
        advice = f"`txgit push {there} --delete {dst}` deletes {dst} there"
    else:
        dst = dst.removeprefix("refs/heads/") or src
        advice = f"`txgit branch {dst} {src}`, then `txgit push {there} {dst}`, publishes {src} as {dst}"
    raise TxgitError(f"refspecs such as {branch!r} are not supported: {advice}")


def _half_made_repository(path: Path) -> bool:
    """Whether ``path`` holds what a killed ``git init --bare`` leaves, and nothing else (nothing pushed)."""
    seen = False
    try:
        for p in path.rglob("*"):  # top-down: a folder of the user's says so at its first entry
            inside = p.relative_to(path).as_posix()
            if inside not in _INIT_SKELETON and not inside.startswith("hooks/"):
                return False
            seen = True
    except OSError:
        return False
    return seen


def _flock(folder: Path) -> int | None:
    """An exclusive lock on ``folder`` itself (no file is left there; the OS drops it if this process
    dies): its descriptor, to close; None where the folder cannot be opened (not readable)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _async_backend(fs: Any) -> bool:
    """Whether ``fs`` runs its requests as coroutines on its own loop (s3fs, gcsfs): a ``dir://`` is
    async by class, whatever it wraps, and its coroutines fail over a blocking one (a folder)."""
    from fsspec.implementations.dirfs import DirFileSystem

    return bool(getattr(fs.fs if isinstance(fs, DirFileSystem) else fs, "async_impl", False))


async def _gather_info(fs: Any, paths: list[str]) -> list[Any]:
    """Each path's info, or the exception asking for it raised (for :func:`packs.absent_or_raise`)."""
    import asyncio

    return list(await asyncio.gather(*(fs._info(p) for p in paths), return_exceptions=True))


def _info_or_error(fs: Any, path: str) -> Any:
    try:
        return fs.info(path)
    except Exception as e:  # noqa: BLE001  (told apart by packs.absent_or_raise)
        return e


class RemoteChain(StoreChain):
    """The local cache, then every configured remote's storage: blobs a checkout or load
    needs that the cache lacks come from the remotes on demand (verified, then cached)."""

    def __init__(self, local: ObjectStore, remotes: Remotes) -> None:
        super().__init__(local)
        self._remotes = remotes

    @property  # type: ignore[override]
    def fallbacks(self) -> list[ObjectStore]:
        return self._remotes.stores()

    @fallbacks.setter
    def fallbacks(self, value: list[ObjectStore]) -> None:  # StoreChain.__init__ assigns []
        pass

    def get_many(self, names: Iterable[str]) -> dict[str, bytes]:
        names = list(dict.fromkeys(names))
        if not self.local.missing(names):  # the common case: no remote is asked anything
            return self.local.get_many(names)
        return super().get_many(names)


# -- results ----------------------------------------------------------------------------------

@dataclass
class PushResult:
    """What a push did."""

    remote: str
    updated: dict[str, tuple[str | None, str]] = field(default_factory=dict)  # ref -> (old, new)
    up_to_date: list[str] = field(default_factory=list)
    blobs_named: int = 0  # blobs the new commits name
    blobs_uploaded: int = 0
    bytes_uploaded: int = 0
    bytes_state: int = 0  # bytes of the pushed states (sum over the new commits' groups, deduplicated)
    seconds: float = 0.0
    # branches --force moved off commits of theirs -> how many the branch no longer reaches (None:
    # not known here, the old tip was never fetched)
    forced: dict[str, int | None] = field(default_factory=dict)
    # branches the last fetch saw on the remote and that it no longer had: someone deleted them there,
    # and this push made them again
    recreated: list[str] = field(default_factory=list)
    # a session's push (NamespaceSession.push): its variables changed since its last commit, which a push
    # (of commits) does not carry
    uncommitted: list[str] = field(default_factory=list)
    # --force after `remote set-storage`: the blobs went to the new storage, and the remote records it now
    storage_moved: bool = False


@dataclass
class StorageCheck:
    """What :meth:`Remotes.check_storage` found: the blobs a remote's branches name that its storage lacks."""

    remote: str
    blobs: int = 0  # distinct blobs the remote's branches name
    lacking: list[str] = field(default_factory=list)  # not in its storage (listed, not taken from the index)
    resent: list[str] = field(default_factory=list)  # of those, uploaded again from here
    unavailable: list[str] = field(default_factory=list)  # lacking there and here: nothing to send
    verified: bool = False  # every blob it holds was downloaded and hashed
    corrupt: list[str] = field(default_factory=list)  # held there, bytes that do not match their hash
    replaced: list[str] = field(default_factory=list)  # of those, a good copy uploaded and read back sound
    no_good_copy: list[str] = field(default_factory=list)  # corrupt there, and no sound copy here

    @property
    def ok(self) -> bool:
        return not (set(self.lacking) - set(self.resent)) and not (set(self.corrupt) - set(self.replaced))


@dataclass
class FetchResult:
    """What a fetch did: tracking refs moved, blobs brought over (with ``eager``)."""

    remote: str
    updated: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # ref -> (old, new)
    forced: list[str] = field(default_factory=list)  # updated refs whose new tip does not contain the old one
    new_tags: list[str] = field(default_factory=list)  # tags the fetch brought (none of that name here before)
    # tags the remote has on another commit than ours of the same name: ours kept, as git's "would clobber
    # existing tag"; name -> (our commit, the remote's commit)
    kept_tags: dict[str, tuple[str, str]] = field(default_factory=dict)
    # of those, the ones the fetch before found already, on the same two commits: said once, not every fetch
    told_tags: list[str] = field(default_factory=list)
    blobs_fetched: int = 0
    bytes_fetched: int = 0
    seconds: float = 0.0




@dataclass
class BlobRepair:
    """What :meth:`Remotes.fetch_blobs_from_remotes` found: where each blob came from, what none had."""

    fetched: dict[str, str] = field(default_factory=dict)  # blob -> remote name
    corrupt_on: dict[str, list[str]] = field(default_factory=dict)  # blob -> remotes whose copy was bad
    missing: list[str] = field(default_factory=list)  # in no reachable remote storage


class _Callbacks(pygit2.RemoteCallbacks):
    """Credentials for https/ssh remotes, and the remote's per-ref verdict on a push.

    ssh: keys from the ssh agent. https: ``TXGIT_GIT_USERNAME`` / ``TXGIT_GIT_PASSWORD``
    (a token works as the password). Asked twice means the answer was refused.
    """

    def __init__(self) -> None:
        super().__init__()
        self.rejected: dict[str, str] = {}
        self._asked = 0
        self.watch: _Watch | None = None  # the call in flight: any callback means the remote answered

    def _answered(self) -> None:
        if self.watch is not None:
            self.watch.answered()

    def sideband_progress(self, string: str) -> None:
        self._answered()

    def transfer_progress(self, stats: Any) -> None:
        self._answered()

    def push_transfer_progress(self, objects_pushed: int, total_objects: int, bytes_pushed: int) -> None:
        self._answered()

    def update_tips(self, refname: str, old: Any, new: Any) -> None:
        self._answered()

    def credentials(self, url: str, username_from_url: str | None, allowed_types: Any) -> Any:
        self._answered()  # asked for credentials: the server is there
        self._asked += 1
        if self._asked > 1:
            raise RemoteError(f"authentication to {url} failed")
        if allowed_types & pygit2.enums.CredentialType.SSH_KEY:
            return pygit2.KeypairFromAgent(username_from_url or "git")
        if allowed_types & pygit2.enums.CredentialType.USERPASS_PLAINTEXT:
            user = os.environ.get("TXGIT_GIT_USERNAME") or username_from_url
            password = os.environ.get("TXGIT_GIT_PASSWORD")
            if user and password:
                return pygit2.UserPass(user, password)
            raise RemoteError(f"{url} needs credentials: set TXGIT_GIT_USERNAME and TXGIT_GIT_PASSWORD")
        raise RemoteError(f"{url} asks for a kind of credentials txgit cannot give")

    def push_update_reference(self, refname: str, message: str | None) -> None:
        self._answered()
        if message:
            self.rejected[refname] = message


def _behind(ref: str, r: Remote) -> PushRejected:
    """The one line for a push whose branch the remote has commits past (what a pull brings)."""
    return PushRejected(f"rejected {ref.removeprefix('refs/heads/')} -> {r.name} (non-fast-forward: the remote "
                        "has commits you do not have); pull first, or push --force to overwrite them")


def _config_commit(repo: pygit2.Repository, record: dict[str, Any],
                   indexes: Iterable[str] = ()) -> pygit2.Oid:
    """The commit that records a remote's storage; deterministic, so equal records are one object.
    ``indexes``: the storage's pack ids, named beside the record (older versions read the record alone)."""
    blob = repo.create_blob((json.dumps(record, sort_keys=True, indent=1) + "\n").encode())
    tb = repo.TreeBuilder()
    tb.insert(CONFIG_FILE, blob, FileMode.BLOB)
    indexes = sorted(indexes)
    if indexes:
        empty = repo.create_blob(b"")
        sub = repo.TreeBuilder()
        for pack in indexes:
            sub.insert(f"{pack}.idx", empty, FileMode.BLOB)
        tb.insert(CARRIED_INDEXES_DIR, sub.write(), FileMode.TREE)
    sig = pygit2.Signature("txgit", "txgit@localhost", 0, 0)
    return repo.create_commit(None, sig, sig, "txgit remote configuration", tb.write(), [])


# -- the remotes of a workspace ------------------------------------------------------------------

class Remotes:
    """The remotes of one workspace: configuration (in the workspace's git config), their
    stores, and push / fetch / pull."""

    def __init__(self, workspace: Repository) -> None:
        self.ws = workspace
        self._stores: dict[str, tuple[tuple[str, str, str], RemoteStore]] = {}  # name -> (key, store)

    @property
    def repo(self) -> pygit2.Repository:
        return self.ws.history.repo

    # -- configuration ---------------------------------------------------------------------------
    def list(self) -> list[Remote]:
        return [self.get(r.name) for r in self.repo.remotes]

    def names(self) -> list[str]:
        return [r.name for r in self.repo.remotes]

    def get(self, name: str) -> Remote:
        try:
            git_remote = self.repo.remotes[name]
        except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
            known = ", ".join(self.names()) or "none; add one with `txgit remote add NAME URL`"
            raise UnknownRemote(f"no remote named {name!r} (remotes: {known})") from None
        cfg = self.repo.config
        storage = cfg[f"remote.{name}.txgit-storage"] if f"remote.{name}.txgit-storage" in cfg else None
        options = {}
        if f"remote.{name}.txgit-storage-options" in cfg:
            options = json.loads(cfg[f"remote.{name}.txgit-storage-options"])
        return Remote(name, git_remote.url, storage or None, options, trust.is_trusted(self.repo, name))

    def add(self, name: str, url: str, *, storage: str | None = None,
            storage_options: Mapping[str, Any] | None = None, trusted: bool = False) -> Remote:
        """Configure a remote. Nothing is contacted; a local path is stored absolute.

        ``trusted``: states fetched from it load without ``trust=True`` (see :mod:`txgit.trust`).
        """
        if not _NAME.match(name or ""):
            raise InvalidName(f"invalid remote name {name!r}")
        if name in self.names():
            raise InvalidName(f"remote {name!r} already exists")
        if not url:
            raise InvalidName("a remote needs a git URL")
        path = local_path(url)
        if path is not None and not url.startswith("file://"):
            url = str(path.resolve())
        if path is not None and (path / TXGIT_DIR / "repo.git").is_dir():
            # a colleague's workspace folder (`git clone ../bob`): its repository, and its local cache
            # for blobs (what it committed is there), unless a storage is given
            url = str((path / TXGIT_DIR / "repo.git").resolve())
            storage = storage or str((path / TXGIT_DIR / "objects").resolve())
        if storage is not None and local_path(storage) is not None and "://" not in storage:
            storage = str(Path(storage).expanduser().resolve())
        with self.ws.lock():
            self.repo.remotes.create(name, url)
            if storage:
                self.repo.config[f"remote.{name}.txgit-storage"] = storage
            if storage_options:
                self.repo.config[f"remote.{name}.txgit-storage-options"] = json.dumps(dict(storage_options))
            if trusted:
                self.repo.config[f"remote.{name}.txgit-trusted"] = "true"
        return self.get(name)

    def set_trusted(self, name: str, trusted: bool = True) -> None:
        """Mark ``name`` trusted (its fetched states load without ``trust=True``) or not."""
        self.get(name)  # UnknownRemote for a typo
        trust.set_trusted(self.ws, name, trusted)

    def set_url(self, name: str, url: str) -> Remote:
        """Point ``name`` at another git URL (a moved server, a new path). Nothing is contacted; its
        trust mark, storage, tracking branches and upstreams stay as they are."""
        self.get(name)  # UnknownRemote for a typo
        if not url:
            raise InvalidName("a remote needs a git URL")
        path = local_path(url)
        if path is not None and not url.startswith("file://"):
            url = str(path.resolve())
        with self.ws.lock():
            self.repo.remotes.set_url(name, url)  # as `git remote set-url`: a pushurl set by hand stays
        self._stores.pop(name, None)
        return self.get(name)

    def set_storage(self, name: str, storage: str | None, *,
                    storage_options: Mapping[str, Any] | None = None) -> Remote:
        """Keep ``name``'s blobs at another fsspec URL (None: the one the remote records, or beside a
        local repository). ``storage_options`` replace the old ones (none given: none kept), so an
        endpoint meant for one backend never reaches another. The trust mark stays."""
        self.get(name)
        if storage is not None and not storage:
            raise InvalidName("a storage needs an fsspec URL (a folder, s3://bucket/prefix, …)")
        if storage is not None and local_path(storage) is not None and "://" not in storage:
            storage = str(Path(storage).expanduser().resolve())
        with self.ws.lock():
            cfg = self.repo.config
            for key, value in ((f"remote.{name}.txgit-storage", storage),
                               (f"remote.{name}.txgit-storage-options",
                                json.dumps(dict(storage_options)) if storage_options else None)):
                if value is not None:
                    cfg[key] = value
                elif key in cfg:
                    del cfg[key]
        self._stores.pop(name, None)
        return self.get(name)

    def remove(self, name: str) -> None:
        """Forget a remote and its tracking refs (nothing on the remote changes)."""
        self.get(name)
        with self.ws.lock():
            self.repo.remotes.delete(name)  # drops remote.<name>.* and refs/remotes/<name>/*
            for ref in list(self.repo.references):
                if ref.startswith((f"refs/txgit/remotes/{name}/", _remote_tags(name))) or \
                        ref == f"refs/txgit/outgoing/{name}":
                    self.repo.references.delete(ref)
            for key in (f"remote.{name}.txgit-storage", f"remote.{name}.txgit-storage-options"):
                if key in self.repo.config:
                    del self.repo.config[key]
        self._stores.pop(name, None)

    def default(self, branch: str | None = None) -> str:
        """The remote a bare ``push``/``pull`` means: the branch's upstream, else origin, else the only one."""
        branch = branch or self.ws.branch
        key = f"branch.{branch}.remote"
        if branch and key in self.repo.config:
            return self.repo.config[key]
        names = self.names()
        if DEFAULT_REMOTE in names:
            return DEFAULT_REMOTE
        if len(names) == 1:
            return names[0]
        if not names:
            raise UnknownRemote("no remote configured: add one with `txgit remote add origin URL`")
        raise UnknownRemote(f"several remotes ({', '.join(names)}): say which one")

    # -- storage -----------------------------------------------------------------------------------
    def recorded(self, name: str) -> dict[str, Any] | None:
        """What the remote's ``refs/txgit/config`` said at the last fetch/push."""
        ref = f"refs/txgit/remotes/{name}/config"
        if ref not in self.repo.references:
            return None
        commit = self.repo.references[ref].peel(pygit2.Commit)
        try:
            return json.loads(self.repo[commit.tree[CONFIG_FILE].id].data)
        except (KeyError, ValueError):
            return None

    def storage_url(self, remote: Remote | str) -> str:
        """The fsspec URL of a remote's blobs: configured here, else recorded by the remote, else embedded."""
        r = self.get(remote) if isinstance(remote, str) else remote
        if r.storage:
            return r.storage
        recorded = self.recorded(r.name)
        if recorded and recorded.get("storage"):
            return recorded["storage"]
        if r.local_path is not None:
            return str(r.local_path / EMBEDDED_DIR)
        where = "keeps its blobs beside its repository, which" if recorded else ""
        how = f"give one with `txgit remote set-storage {r.name} FSSPEC_URL` (or `txgit clone --storage FSSPEC_URL`)"
        raise RemoteError(
            f"remote {r.name!r} ({r.url}) {where} a network git URL cannot serve: {how}"
            if where else
            f"remote {r.name!r} ({r.url}) has no blob storage: {how}"
        )

    def store(self, remote: Remote | str) -> RemoteStore:
        """The object store of a remote's blobs: made once per URL, options and credentials in the
        environment, so keys set in ``os.environ`` (say, in a running kernel) take effect at the next call."""
        r = self.get(remote) if isinstance(remote, str) else remote
        url = self.storage_url(r)
        timeout = remote_timeout(self.repo)
        key = (url, json.dumps(r.storage_options, sort_keys=True), _credential_fingerprint(), timeout)
        cached = self._stores.get(r.name)
        if cached is None or cached[0] != key:
            cached = (key, RemoteStore(url, timeout=timeout, **r.storage_options))
            # the remote index's parts read before (immutable, checked by their hash when used):
            # the next push or fetch from this workspace reads only the indexes pushed since
            cached[1].packs.cache_dir = str(self.ws.dir / REMOTE_INDEX_DIR)
            cached[1].remote_name = r.name
            self._stores[r.name] = cached
        return cached[1]

    def _carried_indexes(self, name: str) -> list[str]:
        """The pack ids the remote's ``refs/txgit/config`` named at the last fetch or push (none from
        a remote pushed by an older txgit)."""
        ref = f"refs/txgit/remotes/{name}/config"
        try:
            tree = self.repo.references[ref].peel(pygit2.Commit).tree[CARRIED_INDEXES_DIR]
        except (KeyError, pygit2.GitError, ValueError):
            return []
        if not isinstance(tree, pygit2.Tree):
            return []
        return [e.name[:-4] for e in tree if e.name.endswith(".idx") and len(e.name) == 68
                and all(c in _HEX_DIGITS for c in e.name[:-4])]

    @staticmethod
    def _indexes_to_carry(store: RemoteStore) -> list[str]:
        """The pack ids a push names in git: every index its storage holds as far as this push saw
        (listed just now, plus the pack it wrote)."""
        if store.is_local:
            return []
        held = [p for p in store.packs.indexes() if p not in store.packs.broken]
        return held if len(held) <= _CARRIED_INDEXES_MAX else []

    def stores(self) -> list[ObjectStore]:
        """Every remote's store whose storage can be found (for on-demand fetches)."""
        return [store for _, store in self._named_stores(self.names())]

    def _named_stores(self, names: Iterable[str]) -> list[tuple[str, RemoteStore]]:
        """(name, store) of each of the remotes ``names`` whose storage can be found, in that order."""
        out = []
        for name in names:
            try:
                out.append((name, self.store(name)))
            except RemoteError:
                continue  # a remote with no reachable storage cannot help; the others may
        return out

    def fetch_blobs_from_remotes(self, names: Iterable[str], *, replace_local: bool = False,
                                 remotes: Iterable[str] | None = None) -> BlobRepair:
        """Fetch blobs by hash from any remote storage that holds a good copy, into the local cache.

        For repairs: each copy is verified against its hash before it is kept,
        a bad copy on one remote is skipped in favour of the next remote.
        ``replace_local``: overwrite local copies too (a corrupted local blob
        is otherwise left as it is, since the cache thinks it has it).
        """
        todo = list(dict.fromkeys(names))
        if not replace_local:
            todo = sorted(self.ws.store.missing(todo))
        named = self._named_stores(remotes if remotes is not None else self.names())
        stores = [store for _, store in named]
        remote_of: dict[str, str] = {}  # storage URL -> remote name
        for rname, store in named:
            remote_of.setdefault(store.url, rname)
        bad: dict[str, list[str]] = {}
        got = self.ws.store.repair_from(todo, stores, bad_copies=bad)
        return BlobRepair(fetched={n: remote_of[url] for n, url in got.items()},
                          corrupt_on={n: [remote_of[url] for url in urls] for n, urls in bad.items()},
                          missing=[n for n in todo if n not in got])

    # -- git plumbing --------------------------------------------------------------------------------
    def _git_remote(self, r: Remote) -> pygit2.Remote:
        return self.repo.remotes[r.name]

    def _push_handle(self, delta_search: bool) -> pygit2.Repository:
        """A handle of its own on the workspace's git repository, for a push on another thread
        (libgit2's repository objects are not to be used from two threads at once)."""
        repo = None if delta_search else self._repo_without_delta_search()
        return repo if repo is not None and repo is not self.repo else pygit2.Repository(self.repo.path)

    def _send_objects(self, r: Remote, specs: list[str], delta_search: bool) -> None:
        """Push ``specs`` (sources to pending refs): the git objects only, no branch moves. Runs
        on a thread beside the blob upload; raises what the push raised."""
        handle = self._push_handle(delta_search)
        callbacks = _Callbacks()
        try:
            with self._contact(r, callbacks):
                handle.remotes[r.name].push(specs, callbacks=callbacks)
        finally:
            handle.free()
        if callbacks.rejected:
            ref, why = next(iter(callbacks.rejected.items()))
            raise RemoteError(f"{r.name} rejected {ref}: {why}")

    def _repo_without_delta_search(self) -> pygit2.Repository:
        """A second handle on the workspace's git repository whose pack builder skips the delta
        search, for one push: the override is an in-memory config level of this handle only (the
        workspace's config files are not touched, and nothing needs restoring if the push dies).
        Where pygit2 refuses the override, the workspace's own handle (deltas searched)."""
        path = self.ws.dir / _NO_DELTA_SEARCH_FILE
        try:
            if not path.is_file() or path.read_text() != _NO_DELTA_SEARCH:
                packs.write_atomic(str(path), _NO_DELTA_SEARCH.encode())
            repo = pygit2.Repository(self.repo.path)
            # pygit2's RepositoryConfig refuses add_file (it would change this handle's config, which
            # is the point here); libgit2 adds the file as the highest level of this handle alone
            pygit2.Config.add_file(repo.config, str(path), ConfigLevel.APP, True)
        except (TypeError, AttributeError, ValueError, OSError, pygit2.GitError):
            return self.repo
        return repo

    @contextmanager
    def _contact(self, r: Remote, callbacks: _Callbacks) -> Iterator[float]:
        """Around one network git call: bound how long the remote may stay silent, and let the CLI
        say "connecting to URL ..." if it does for a while. Yields the limit in seconds (0: none)."""
        timeout = remote_timeout(self.repo)
        # libgit2's limits are process-wide and in ms; set before every call, as the config may differ
        # between workspaces in one process. They bound each connect and each socket read/write.
        ms = max(1, round(timeout * 1000)) if timeout else 0  # 0: libgit2's default, no limit
        pygit2.settings.server_connect_timeout = ms
        pygit2.settings.server_timeout = ms
        callbacks.watch = _Watch(r.url, _slow_notice.get() if r.local_path is None else None)
        try:
            yield timeout
        finally:
            callbacks.watch.answered()
            callbacks.watch = None

    def _advertised(self, r: Remote, callbacks: _Callbacks,
                    pending: dict[str, str] | None = None) -> dict[str, str]:
        """The remote's refs: name -> commit id (``ls-remote``). Pending refs are left out: their
        commits' blobs may not all be stored, so they vouch for nothing (a push still sends them).
        ``pending``: filled with them instead."""
        with self._contact(r, callbacks) as timeout:
            try:
                heads = self._git_remote(r).list_heads(callbacks=callbacks)
            except TxgitError:
                raise
            except (pygit2.GitError, OSError, ValueError) as e:
                raise _git_error(r, e, timeout) from e
        out = {}
        for h in heads:
            name = h["name"] if isinstance(h, dict) else h.name
            oid = h["oid"] if isinstance(h, dict) else h.oid
            if name.startswith(PENDING_PREFIX):
                if pending is not None:
                    pending[name] = str(oid)
            elif name != "HEAD" and not name.endswith("^{}"):
                out[name] = str(oid)
        return out

    def _remote_head_branch(self, r: Remote) -> str | None:
        callbacks = _Callbacks()
        try:
            with self._contact(r, callbacks):
                heads = self._git_remote(r).list_heads(callbacks=callbacks)
        except (pygit2.GitError, OSError, ValueError):
            return None
        for h in heads:
            name = h["name"] if isinstance(h, dict) else h.name
            target = h.get("symref_target") if isinstance(h, dict) else getattr(h, "symref_target", None)
            if name == "HEAD" and target:
                return target.removeprefix("refs/heads/")
        return None

    def _ensure_local_bare(self, r: Remote, made: list[Path]) -> bool:
        """Whether ``r`` is a local-path remote that does not exist yet, for the push to create
        (``git init --bare``, :meth:`_init_local_bare`), if its parent folder exists (a typo in the path
        is refused, as git refuses it). The folder is added to ``made``, for the push to remove if it
        fails or is interrupted."""
        path = r.local_path
        if path is None or path.exists():
            if path is not None and not (path / "HEAD").exists() and not (path / ".git").exists():
                if _half_made_repository(path):
                    raise RemoteError(f"remote {r.name!r}: {path} is a repository a first push began and did "
                                      f"not finish (killed while making it): nothing was pushed into it; remove "
                                      f"it (`rm -r {path}`) and push again")
                raise RemoteError(f"remote {r.name!r}: {path} exists but is not a git repository")
            return False
        if not path.parent.is_dir():
            raise RemoteError(f"cannot reach remote {r.name!r}: {path} does not exist and neither does its "
                              f"folder {path.parent} (create the folder, or fix the URL with "
                              f"`txgit remote set-url {r.name} URL`)")
        made.append(path)
        return True

    def _init_local_bare(self, r: Remote) -> None:
        """``git init --bare`` of a folder remote, made beside its place and renamed into it: a push killed
        meanwhile leaves no half-made folder there (which every later push refused), only a hidden one
        beside it, which the next first push there removes (nothing else is making one: that push holds
        the parent folder's lock, :func:`_one_push_at_a_time`)."""
        path = r.local_path
        assert path is not None
        for stale in path.parent.glob(f".{glob.escape(path.name)}.txgit-new-*"):
            shutil.rmtree(stale, ignore_errors=True)
        new = path.parent / f".{path.name}.txgit-new-{os.getpid()}"
        try:
            pygit2.init_repository(str(new), bare=True, initial_head=self.ws.branch or "main")
            os.rename(new, path)
        except BaseException as e:
            shutil.rmtree(new, ignore_errors=True)
            if isinstance(e, (OSError, pygit2.GitError)):  # a folder made there meanwhile, a full disk
                raise RemoteError(f"cannot make remote {r.name!r} at {path}: {e}") from e
            raise

    def _fetch_git(self, r: Remote, refspecs: list[str], callbacks: _Callbacks) -> None:
        with self._contact(r, callbacks) as timeout:
            try:
                self._git_remote(r).fetch(refspecs, callbacks=callbacks, prune=pygit2.enums.FetchPrune.PRUNE)
            except TxgitError:
                raise
            except (pygit2.GitError, OSError, ValueError) as e:
                raise _git_error(r, e, timeout) from e

    def _tracking(self, name: str) -> dict[str, str]:
        prefix = f"refs/remotes/{name}/"
        out = {}
        for ref in self.repo.references:
            if ref.startswith(prefix) and not ref.endswith("/HEAD"):
                try:
                    out[ref] = str(self.repo.references[ref].peel(pygit2.Commit).id)
                except (pygit2.GitError, ValueError, KeyError):
                    continue
        return out

    def set_upstream(self, branch: str, remote: str, remote_branch: str | None = None) -> None:
        """``branch`` tracks ``remote``'s ``remote_branch`` (default: the same name), as in git."""
        self.repo.config[f"branch.{branch}.remote"] = remote
        self.repo.config[f"branch.{branch}.merge"] = f"refs/heads/{remote_branch or branch}"

    def no_branch(self, remote: str, branch: str, into: str) -> RemoteError:
        """What a pull of ``remote``'s ``branch`` into local ``into`` says when the remote lacks it: gone
        from a remote ``into`` tracked (someone deleted it), or never published."""
        if self.upstream(into) == (remote, branch):
            return RemoteError(f"remote {remote!r} has no branch {branch!r} any more (deleted there since {into} "
                               f"began tracking it): `txgit push {remote} {into}` publishes yours again, "
                               f"`txgit pull {remote} BRANCH` merges another")
        return RemoteError(f"remote {remote!r} has no branch {branch!r} (`pull {remote} BRANCH` merges one it has; "
                           f"`push -u` publishes {branch!r})")

    def upstream(self, branch: str) -> tuple[str, str] | None:
        """The (remote, branch) ``branch`` tracks, if it tracks one."""
        cfg = self.repo.config
        if f"branch.{branch}.remote" not in cfg:
            return None
        merge = cfg[f"branch.{branch}.merge"] if f"branch.{branch}.merge" in cfg else f"refs/heads/{branch}"
        return cfg[f"branch.{branch}.remote"], merge.removeprefix("refs/heads/")

    def tracking_branch(self, rev: str) -> tuple[str, str] | None:
        """(remote, branch) when ``rev`` names a remote-tracking branch (``origin/main``), else None."""
        for name in self.names():
            if rev.startswith(name + "/") and f"refs/remotes/{rev}" in self.repo.references:
                return name, rev[len(name) + 1:]
        return None

    def to_track(self, name: str) -> str | None:
        """``REMOTE/name`` when ``name`` is no local branch nor any other revision and exactly one remote
        has a branch of that name: git's `checkout NAME` makes NAME there, tracking it. Else None."""
        if name == "HEAD" or name in self.ws.history.branches():
            return None
        found = [f"{r}/{name}" for r in self.names() if f"refs/remotes/{r}/{name}" in self.repo.references]
        if len(found) != 1:
            return None
        try:
            self.ws.history.resolve(name)
        except TxgitError:
            return found[0]
        return None  # a tag or a commit of that name: checked out as it is, as git does

    # -- blobs of commits ------------------------------------------------------------------------------
    def _new_commits(self, tips: Iterable[str], hide: Iterable[str]) -> list[pygit2.Commit]:
        tips = [pygit2.Oid(hex=t) for t in dict.fromkeys(tips)]
        if not tips:
            return []
        walker = self.repo.walk(tips[0], SortMode.TOPOLOGICAL)
        for t in tips[1:]:
            walker.push(t)
        for h in set(hide):
            if h in self.repo:  # a remote commit we do not have hides nothing of ours
                walker.hide(pygit2.Oid(hex=h))
        return list(walker)

    def _blobs_of(self, commits: Iterable[pygit2.Commit], sizes: dict[str, int] | None = None, *,
                  whole: Iterable[str] | None = None) -> tuple[set[str], int]:
        """Chunk names the commits' states name, and the bytes of those states' distinct groups.
        ``sizes``: filled with each chunk's size, from the records (no blob is read).

        ``whole``: ids of the commits whose states are read whole (every record checked, and kept
        for a checkout to come); default the first commit (a walk's tip). The others' group records
        are read from the record shards no commit before them had: a history's commits share most
        shards (a cell rewrites one), so a clone of N commits reads each shard once, not N states."""
        names: set[str] = set()
        seen_groups: set[str] = set()
        seen_shards: set[pygit2.Oid] = set()
        nbytes = 0
        read_whole = None if whole is None else set(whole)
        with collector_paused():  # thousands of records, no cycles among them (see collector_paused)
            for i, c in enumerate(commits):
                groups = None
                if (i > 0) if read_whole is None else (str(c.id) not in read_whole):
                    groups = self._new_shards_groups(c, seen_shards)
                if groups is None:  # read whole: with the reader's checks and messages
                    groups = self.ws.history.read_state(c).groups.items()
                    tree = c.tree
                    if RECORDS in tree and isinstance(shards := self.repo[tree[RECORDS].id], pygit2.Tree):
                        seen_shards.update(entry.id for entry in shards)  # their groups are read now
                for gid, g in groups:
                    if gid not in seen_groups:
                        seen_groups.add(gid)
                        nbytes += g.nbytes
                        names.update(g.chunk_names())
                        if sizes is not None:
                            for stream in g.streams:
                                sizes.update(_chunk_sizes(stream.size, stream.chunks))
        return names, nbytes

    def _new_shards_groups(self, commit: pygit2.Commit,
                           seen_shards: set[pygit2.Oid]) -> list[tuple[str, GroupRecord]] | None:
        """The group records of the commit's record shards not in ``seen_shards`` (added to it).
        None where the commit is not of storage format 2 or a record does not parse: its state is
        then read whole, which says what is wrong (groups are checked here as the reader checks them;
        variable lines are left to the checkout, which reads them whole)."""
        repo = self.repo
        tree = commit.tree
        try:
            meta = json.loads(repo[tree[META].id].data) if META in tree else {}
            if not isinstance(meta, dict) or meta.get(FORMAT_KEY) not in (2, 3):  # (3: 2's layout)
                return None
            if RECORDS not in tree:
                return []
            shards = repo[tree[RECORDS].id]
            if not isinstance(shards, pygit2.Tree):
                return None
            out: list[tuple[str, GroupRecord]] = []
            for entry in shards:
                if entry.id in seen_shards:
                    continue
                obj = repo[entry.id]
                if not isinstance(obj, pygit2.Blob):
                    return None
                for line in obj.data.split(b"\n"):
                    if line.startswith(b"g "):
                        body = line[2:] + b"\n"
                        out.append((hash_bytes(body), GroupRecord.from_bytes(body)))
                seen_shards.add(entry.id)
            return out
        except (ValueError, TypeError, TxgitError, KeyError, pygit2.GitError):
            return None

    def _transfer(self, names: list[str], read: Callable[[list[str]], Mapping[str, bytes]],
                  write: Callable[[Mapping[str, bytes]], int], sizes: Mapping[str, int],
                  phase: str, progress: Progress | None, remote_fs: Any = None,
                  tally: _Tally | None = None) -> tuple[int, int]:
        """Copy blobs in batches; returns (blobs, bytes) written.

        ``sizes``: each blob's size from the records, so that ``progress`` knows the total before
        the first byte moves. ``tally``: counts what was written as it goes, so that an interrupted
        transfer can say how far it got (blobs in flight when it stops are finished and counted).

        Blocking backends (folders): batches on a thread pool. Async backends
        (s3fs, gcsfs, …): each batch is one concurrent call on the backend's own
        event loop, large enough to keep its connection pool busy, while the next
        batch is read on another thread; one caller drives that loop, so batches
        land in order.
        """
        is_async = _async_backend(remote_fs)
        size = _ASYNC_BATCH_BLOBS if is_async else _BATCH_BLOBS
        batches = _batches(names, sizes, size)
        total = sum(sizes.get(n, 0) for n in names)
        done = tally if tally is not None else _Tally()
        done.total_blobs = done.blobs + len(names)  # a tally going on from an earlier transfer counts both
        moved = 0  # bytes as the records count them: reaches ``total`` exactly
        delay = float(os.environ.get("TXGIT_DEBUG_TRANSFER_DELAY", "0") or 0)  # fault-injection tests only
        # the injected latency ends when the transfer stops: an interrupt test can then give itself a
        # long delay (time to see a batch land on a loaded machine) without waiting it out
        stopped = threading.Event()

        def one(data: Mapping[str, bytes]) -> int:
            n = write(data)
            if delay:
                stopped.wait(delay)
            return n

        def finished(batch: list[str], n: int) -> None:
            nonlocal moved
            done.blobs += len(batch)
            done.bytes += n
            moved += sum(sizes.get(name, 0) for name in batch)
            if progress is not None:
                progress(phase, moved, total)

        if progress is not None:
            progress(phase, 0, total)
        if is_async:
            with ThreadPoolExecutor(max_workers=1) as reader:
                ahead = reader.submit(read, batches[0]) if batches else None
                for i, batch in enumerate(batches):
                    data = ahead.result()
                    ahead = reader.submit(read, batches[i + 1]) if i + 1 < len(batches) else None
                    try:
                        n = one(data)
                    except BaseException:
                        # the batch's requests run on the backend's own loop: some may land after this
                        done.in_flight = True
                        raise
                    finished(batch, n)
            return done.blobs, done.bytes
        # Each worker says itself what it wrote, and how many are at work: a Ctrl-C that lands inside
        # ``pool.submit`` (while it starts a worker, which may already run the batch) loses that
        # batch's future, and the transfer must still wait for it and count it (else a clone's cleanup
        # ran while it still wrote, and "0 of 302 blobs" were said downloaded with all 302 there).
        landed: dict[int, int] = {}  # batch index -> bytes written
        gate = threading.Condition()
        at_work = 0

        def job(i: int) -> int | None:
            nonlocal at_work
            with gate:
                if stopped.is_set():
                    return None  # queued before the transfer stopped, started after: not begun at all
                at_work += 1
            try:
                n = landed[i] = one(read(batches[i]))
                return n
            finally:
                with gate:
                    at_work -= 1
                    gate.notify_all()

        with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
            futures: list = []
            counted = 0
            try:
                # submitted inside the try: a first batch can land before the last is submitted, and
                # an interrupt then must still count it
                futures.extend(pool.submit(job, i) for i in range(len(batches)))
                for batch, future in zip(batches, futures):
                    n = future.result()
                    counted += 1
                    finished(batch, n)
            except BaseException:
                # Ctrl-C or a failed batch: batches not started are dropped, those in flight end
                # (each blob lands whole or not at all) and are counted, then the error goes on.
                for future in futures:
                    future.cancel()
                with gate:
                    stopped.set()
                    while at_work:
                        gate.wait()
                for i in sorted(landed):
                    if i >= counted:
                        done.blobs += len(batches[i])
                        done.bytes += landed[i]
                raise
        return done.blobs, done.bytes

    # -- push ------------------------------------------------------------------------------------------
    def push(self, remote: str | None = None, branches: Iterable[str] | None = None, *,
             all_branches: bool = False, tags: bool = False, force: bool = False,
             progress: Progress | None = None) -> PushResult:
        """Upload the blobs the remote storage lacks, then move the remote's refs.

        ``branches``: default the current branch; ``all_branches``: every local
        branch; ``tags``: every tag too. A branch whose remote tip is not an
        ancestor of ours is refused (:class:`PushRejected`) unless ``force``.
        """
        started = time.perf_counter()
        # a kernel's commit still being written (its background writer holds the lock): the branch
        # read below must have it, or a push typed right after a cell leaves that cell out
        self.ws.settle()
        branches = list(branches or [])
        for b in branches:
            refuse_refspec("push", remote, b)
        # the remote a branch tracks, for one branch named (a kernel's that is not HEAD's)
        r = self.get(remote or self.default(branches[0] if len(branches) == 1 else None))
        if all_branches:
            chosen = sorted(self.ws.history.branches())
        elif branches:
            chosen = list(branches)
        else:
            if self.ws.branch is None:
                # as git's "not currently on a branch": say both ways on
                raise TxgitError(f"HEAD is detached: name the branch to push (`txgit push {r.name} BRANCH`), or "
                                 "make one where HEAD is first (`txgit checkout -b NAME`)")
            chosen = [self.ws.branch]
        local_branches = self.ws.history.branches()
        for b in chosen:
            if b not in local_branches:
                raise InvalidName(f"no branch named {b!r}" if self.ws.history.head_commit() is not None
                                  or b != self.ws.branch else f"branch {b!r} has no commits yet: nothing to push")
        if not chosen:
            raise TxgitError("nothing to push: no branches yet")
        wanted = {f"refs/heads/{b}": local_branches[b] for b in chosen}
        if tags:
            wanted.update({f"refs/tags/{t}": str(self.repo.references[f"refs/tags/{t}"].target)
                           for t in self.ws.history.tags()})
        if r.local_path is not None:  # a colleague's workspace: never move the branch a session of theirs is on
            for ref in wanted:
                holder = attached.checked_out(r.local_path, ref.removeprefix("refs/heads/")) \
                    if ref.startswith("refs/heads/") else None
                if holder is not None:
                    b, where = ref.removeprefix("refs/heads/"), r.local_path.parent.parent
                    raise PushRejected(f"{r.name} refused to update {b}: it is checked out in the workspace {where} "
                                       f"({holder}), as git refuses a checked-out branch; push a branch of another "
                                       f"name (`txgit checkout -b NAME`, then `txgit push {r.name} NAME`), or let "
                                       f"them pull from you")
        made: list[Path] = []  # folders this push creates: a failed push removes them again
        stage = _PushStage()
        try:
            with _one_push_at_a_time(r.local_path):
                try:
                    create = self._ensure_local_bare(r, made)
                    # threads beside the push's own: the git objects' push, a first listing of the storage.
                    # Left only when both ended (also on an error: a folder this push made is removed after)
                    with ThreadPoolExecutor(max_workers=2) as aside:
                        return self._push(r, wanted, force, progress, started, made, stage, aside, create)
                except BaseException:
                    # once the remote's refs moved, what it holds is the pushed history. Removed under the
                    # lock: a push waiting for it then finds no folder, not one going away under it
                    if stage.refs != "moved":
                        for folder in made:
                            shutil.rmtree(folder, ignore_errors=True)
                    raise
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt):
                raise Interrupted(stage.describe(r.name, made)) from e
            if isinstance(e, (RemoteError, BlobError)) and stage.storage and stage.refs == "before":
                # the storage failed (down, full, a blob unreadable): as an interrupt does, say that
                # origin's branches did not move and that the next push resumes
                e.message = f"{e}; {stage.describe(r.name, made)}"
                e.args = (e.message,)
            raise
        finally:
            for source in stage.sources.values():
                try:
                    self.repo.references.delete(source)
                except (KeyError, pygit2.GitError):
                    pass  # never made (the push stopped before), or gone already

    def _push(self, r: Remote, wanted: dict[str, str], force: bool, progress: Progress | None, started: float,
              made: list[Path], stage: _PushStage, aside: ThreadPoolExecutor, create: bool) -> PushResult:
        listing: Future | None = None
        left_pending: dict[str, str] = {}  # pending refs on the remote already: pushes killed before the end
        seen = self._tracking(r.name)  # what the last fetch saw there (before this push updates it)
        if create:
            # A git remote this push creates holds nothing yet, and its storage most likely nothing:
            # its listing (a request) starts now, beside the repository's making and the records' reading.
            recorded = None
            store = self.store(r)
            if not store.is_local:
                listing = aside.submit(store.listing)
            self._init_local_bare(r)
            remote_refs: dict[str, str] = {}
        else:
            # What the remote holds now, and where it says its blobs are.
            self._fetch_git(r, [f"+refs/txgit/*:refs/txgit/remotes/{r.name}/*"], _Callbacks())
            remote_refs = self._advertised(r, _Callbacks(), left_pending)
            store = self.store(r)
            recorded = self.recorded(r.name)
        result = PushResult(r.name)
        to_move: dict[str, str] = {}
        for ref, new in wanted.items():
            old = remote_refs.get(ref)
            if old == new:
                result.up_to_date.append(ref)
                continue
            if old is not None and not force and ref.startswith("refs/heads/"):
                if old not in self.repo or not self.repo.descendant_of(pygit2.Oid(hex=new), pygit2.Oid(hex=old)):
                    raise _behind(ref, r)
            if old is not None and not force and ref.startswith("refs/tags/"):
                raise PushRejected(f"rejected tag {ref.removeprefix('refs/tags/')} -> {r.name}: the remote's tag "
                                   "points elsewhere (push --force to move it)")
            to_move[ref] = new
        # None: the blobs are beside the repository. A clone configured nothing: it keeps the record.
        record = {"storage": r.storage or (recorded or {}).get("storage")}
        moved = recorded is not None and recorded.get("storage") != record["storage"]
        if moved and not force:
            raise PushRejected(
                f"remote {r.name!r} records its blobs at {recorded.get('storage') or 'the repository (embedded)'}, "
                f"not {record['storage'] or 'the repository (embedded)'}: "
                f"fix it with `txgit remote set-storage {r.name} URL`, or push --force to re-record")
        if result.up_to_date:
            # a push killed after the remote's branch moved never recorded it here: record it now,
            # as git does for an up-to-date ref (origin/main, and the upstream of a branch with none)
            with self.ws.lock():
                self._record_pushed(r.name, {ref: remote_refs[ref] for ref in result.up_to_date})
        if not to_move and not moved:
            result.seconds = time.perf_counter() - started
            return result
        # 1. blobs: every one the new commits name that the storage lacks. Re-recording the storage
        # (--force after set-storage): every commit the remote's refs will name, as the new storage
        # may hold none of them; a blob we cannot read fails the push before any ref moves.
        tips = list(to_move.values())
        if moved:
            kept = {ref: t for ref, t in remote_refs.items()
                    if ref.startswith(("refs/heads/", "refs/tags/")) and ref not in to_move}
            unknown = sorted(ref for ref, t in kept.items() if t not in self.repo)
            if unknown:
                raise PushRejected(f"cannot move {r.name}'s blobs to {record['storage'] or 'the repository'}: "
                                   f"{_short_ref(unknown[0])} has commits you do not have (fetch first)")
            tips += list(kept.values())
        commits = self._new_commits(tips, [] if moved else remote_refs.values())
        sizes: dict[str, int] = {}
        names, result.bytes_state = self._blobs_of(commits, sizes)
        result.blobs_named = len(names)

        def read(batch: list[str]) -> Mapping[str, bytes]:
            try:
                return self.ws.blobs.get_many(batch)  # verified; fetched from other remotes if need be
            except BlobError as e:
                raise BlobError(f"cannot push: {e}") from e

        # The git objects (commits, trees, records) go up beside the blobs, to a pending ref on the
        # remote that no fetch reads; only the branches wait for both (step 2), so a remote's branch
        # still never names a commit whose blobs are not all stored. One thread: the push's own.
        source_refs = stage.sources = self._push_sources(r, to_move)
        early: Future | None = None
        pending: dict[str, str] = {}  # on the remote -> the local ref it is pushed from
        for ref, src in source_refs.items():
            pending.setdefault(f"{PENDING_PREFIX}{to_move[ref]}", src)
        big = len(names) >= _EARLY_OBJECTS_BLOBS or sum(sizes.values()) >= _EARLY_OBJECTS_BYTES
        if big and pending:
            early = aside.submit(contextvars.copy_context().run, self._send_objects, r,
                                 [f"+{src}:{dst}" for dst, src in pending.items()], len(commits) > 1)
        stage.storage = True
        read_ahead: Future | None = None  # the first batch, read while the storage is asked
        if listing is not None or (not remote_refs and not store.is_local and len(names) > _HEAD_CHECKS_UPTO):
            # A git remote nothing was pushed to: its storage is new too, most likely. One listing
            # says what it holds, packed (the index) and loose; nothing on it vouches for more. The
            # blobs will most likely all go: the first batch is read from here meanwhile.
            with ThreadPoolExecutor(max_workers=1) as ahead:
                first = _batches(sorted(names), sizes, _ASYNC_BATCH_BLOBS)[0]
                read_ahead = ahead.submit(read, first)
                try:
                    lacking = sorted(store.missing_by_listing(names, listed=None if listing is None
                                                              else listing.result()))
                finally:
                    _wait_all([read_ahead])
        else:
            lacking = self._lacking(store, names, remote_refs, force)
        stage.store_root = Path(store.root).absolute() if store.is_local else None
        if lacking:
            if store.is_local:
                top = _first_missing(Path(store.root))
                if top is not None and not any(top == m or m in top.parents for m in made):
                    made.append(top)  # the upload creates it
            def read_batch(batch: list[str]) -> Mapping[str, bytes]:
                nonlocal read_ahead
                if read_ahead is not None:
                    got = read_ahead.result()  # (raises what reading it raised)
                    read_ahead = None  # used once: not held in memory for the rest of the transfer
                    if all(n in got for n in batch):
                        return {n: got[n] for n in batch}
                return read(batch)
            result.blobs_uploaded, result.bytes_uploaded = self._transfer(
                lacking, read_batch, store.write_blobs, sizes, "upload", progress, store.fs, stage.blobs)
        # 2. refs, only now that every blob they name is stored
        config_oid = _config_commit(self.repo, record, self._indexes_to_carry(store))
        to_move_specs = []
        # under the lock, which clears the ``*.lock`` files a killed push left on these refs
        with self.ws.lock():
            if remote_refs.get(CONFIG_REF) != str(config_oid):
                self.repo.references.create(f"refs/txgit/outgoing/{r.name}", config_oid, force=True)
                to_move_specs.append(f"+refs/txgit/outgoing/{r.name}:{CONFIG_REF}")
        to_move_specs += [f"{'+' if force else ''}{source_refs[ref]}:{ref}" for ref in to_move]
        sent = False
        if early is not None:
            try:
                early.result()
                sent = True
            except (TxgitError, pygit2.GitError, OSError, ValueError):
                pass  # the objects go with the refs below, as without the early push (which says why if it fails)
        # the remote holds the objects: the refs move alone, and the pending refs go with them. So does
        # a pending ref left by a killed push whose commit the branches moved now contain (its objects
        # stay, reachable from them): abandoned ones do not pile up
        gone = list(pending) if sent else []
        branch_tips = [pygit2.Oid(hex=t) for ref, t in to_move.items() if ref.startswith("refs/heads/")]
        for ref, oid in left_pending.items():
            if ref not in gone and oid in self.repo and any(
                    t == pygit2.Oid(hex=oid) or self.repo.descendant_of(t, pygit2.Oid(hex=oid)) for t in branch_tips):
                gone.append(ref)
        to_move_specs += [f":{ref}" for ref in gone]
        callbacks = _Callbacks()
        stage.refs, stage.moving = "moving", [ref for ref in to_move]
        # One new commit holds one version of each record shard: the delta search could only pair
        # different variables' shards, ~2 % of the pack's bytes for ~3/4 of the push's time (1,000
        # variables). Several commits keep it: a shard's successive versions delta well.
        pushing = self._repo_without_delta_search() if len(commits) <= 1 and not sent else self.repo
        try:
            with self._contact(r, callbacks) as timeout:
                pushing.remotes[r.name].push(to_move_specs, callbacks=callbacks)
        except TxgitError:
            raise
        except (pygit2.GitError, OSError, ValueError) as e:
            # another push landed since this one read the remote's branch: libgit2 refuses to send
            # ("contains commits that are not present locally"), or the server's compare-and-swap does
            raced = None if force else self._raced(r, to_move, remote_refs)
            if raced is not None:
                raise _behind(raced, r) from e
            text = " ".join(str(e).split())
            if "non-fastforward" in text.replace("-", "").replace(" ", "") or "fast-forward" in text:
                raise PushRejected(f"rejected by {r.name}: {text} (someone pushed meanwhile: pull first)") from e
            raise _git_error(r, e, timeout) from e
        finally:
            if pushing is not self.repo:
                pushing.free()  # the second handle's open files (packs, indexes) go now, not at gc
        # a pending ref that was gone already (a push of the same commit deleted it meanwhile) is no failure
        rejected = {ref: why for ref, why in callbacks.rejected.items() if not ref.startswith(PENDING_PREFIX)}
        if rejected:
            raced = None if force else self._raced(r, to_move, remote_refs)
            if raced is not None:
                raise _behind(raced, r)
            ref, why = next(iter(rejected.items()))
            raise PushRejected(f"{r.name} rejected {ref}: {why}")
        stage.refs = "moved"
        with self.ws.lock():
            for ref, new in to_move.items():
                result.updated[ref] = (remote_refs.get(ref), new)
                branch = ref.removeprefix("refs/heads/")
                if remote_refs.get(ref) is None and branch != ref and f"refs/remotes/{r.name}/{branch}" in seen:
                    result.recreated.append(ref)
                if force and ref.startswith("refs/heads/") and remote_refs.get(ref) is not None:
                    dropped = self._dropped(remote_refs[ref], new)
                    if dropped != 0:
                        result.forced[ref] = dropped
            self._record_pushed(r.name, to_move)
            self.repo.references.create(f"refs/txgit/remotes/{r.name}/config", config_oid, force=True)
        result.storage_moved = moved
        result.seconds = time.perf_counter() - started
        return result

    def _only_from(self, tip: str, hidden: str, order: SortMode = SortMode.NONE) -> list[str]:
        """The commits ``tip`` reaches that ``hidden`` does not (``git rev-list tip ^hidden``)."""
        walker = self.repo.walk(pygit2.Oid(hex=tip), order)
        walker.hide(pygit2.Oid(hex=hidden))
        return [str(c.id) for c in walker]

    def _dropped(self, old: str, new: str) -> int | None:
        """How many commits ``old`` reaches that ``new`` does not (what a forced move of a branch from
        ``old`` to ``new`` takes off it); None when ``old`` is not here to count."""
        if old not in self.repo:
            return None
        return len(self._only_from(old, new))

    def delete_branch(self, remote: str | None, branch: str) -> str:
        """Take ``branch`` off the remote (``git push --delete``) and drop its remote-tracking branch
        here; returns the commit it named. The local branch and the storage's blobs stay (a later
        push of any branch naming them uploads nothing)."""
        r = self.get(remote or self.default(branch))
        if r.local_path is not None and not r.local_path.exists():
            raise RemoteError(f"cannot reach remote {r.name!r}: {r.local_path} does not exist")
        ref = f"refs/heads/{branch}"
        callbacks = _Callbacks()
        was = self._advertised(r, callbacks).get(ref)
        if was is None:
            raise RemoteError(f"remote {r.name!r} has no branch {branch!r}: nothing to delete")
        if r.local_path is not None and self._remote_head_branch(r) == branch:
            # a server refuses it itself (git's receive.denyDeleteCurrent); a folder would let every clone
            # after it fail ("has no branches")
            raise PushRejected(f"{r.name} refused to delete {branch}: it is the remote's default branch, the one "
                               "a clone checks out")
        with self._contact(r, callbacks) as timeout:
            try:
                self._git_remote(r).push([f":{ref}"], callbacks=callbacks)
            except (pygit2.GitError, OSError, ValueError) as e:
                raise _git_error(r, e, timeout) from e
        if callbacks.rejected:
            raise PushRejected(f"{r.name} refused to delete {branch}: {next(iter(callbacks.rejected.values()))}")
        with self.ws.lock():
            tracking = f"refs/remotes/{r.name}/{branch}"
            if tracking in self.repo.references:
                self.repo.references.delete(tracking)
        return was

    def dropped_but_kept(self, fetched: FetchResult, ref: str, branch: str) -> list[str]:
        """Commits a forced update of ``ref`` in ``fetched`` took off the remote's branch that local
        ``branch`` still holds, newest first: a push of ``branch`` publishes them again (as in git)."""
        if ref not in fetched.forced:
            return []
        old, new = fetched.updated[ref]
        tip = self.ws.history.tip_id(f"refs/heads/{branch}")
        if old is None or new is None or tip is None or old not in self.repo:
            return []
        ours = set(self._only_from(tip, new))
        return [c for c in self._only_from(old, new, SortMode.TOPOLOGICAL) if c in ours]

    def _raced(self, r: Remote, to_move: Mapping[str, str], seen: Mapping[str, str]) -> str | None:
        """The first branch of ``to_move`` that the remote moved since this push read it as ``seen``
        (someone else's push landed meanwhile), or None (also when the remote cannot be asked)."""
        try:
            now = self._advertised(r, _Callbacks())
        except TxgitError:
            return None
        for ref, new in to_move.items():
            if ref.startswith("refs/heads/") and now.get(ref) not in (seen.get(ref), new):
                return ref
        return None

    def _push_sources(self, r: Remote, to_move: Mapping[str, str]) -> dict[str, str]:
        """A local ref per remote ref to move, naming exactly the commit whose blobs this push
        uploads (git pushes from refs, and the branch may move here meanwhile): ref -> source ref."""
        sources = {ref: f"refs/txgit/push/{r.name}/{ref.removeprefix('refs/')}" for ref in to_move}
        # under the lock, which clears the ``*.lock`` files a killed push left on these refs
        with self.ws.lock():
            for ref, new in to_move.items():
                self.repo.references.create(sources[ref], pygit2.Oid(hex=new), force=True)
        return sources

    def _lacking(self, store: RemoteStore, names: set[str], remote_refs: Mapping[str, str], force: bool) -> list[str]:
        """Which of ``names`` the remote's storage lacks, asking it as little as it allows."""
        with store._errors():
            store.packs.refresh()  # the remote index: what the storage's pushes stored
        indexed = bool(store.packs.indexes())
        # An indexed storage is asked about every blob: its index answers for all of them at once,
        # and notices a pack deleted behind our back (its blobs go again). A blob it records as stored
        # loose is asked about (a loose blob is not listed with the packs: it may be gone since)
        # unless a tip vouches for it.
        if indexed:
            loose = names & (store.packs.where.keys() - store.packs.packed().keys())
        else:
            loose = set(names)
        if not force and loose:
            # Refs only ever name fully stored states, so the blobs of the remote's tips we know are
            # there already: ask the storage about the rest only (one blob after a one-variable
            # change, not a listing of the bucket). --force may re-record the storage: trust nothing.
            for ref, tip in remote_refs.items():
                if ref.startswith("refs/heads/") and tip in self.repo and loose:
                    try:
                        vouched = self._blobs_of([self.repo[tip].peel(pygit2.Commit)])[0] & loose
                    except (TxgitError, pygit2.GitError, KeyError, ValueError):
                        continue  # not a state txgit can read: it vouches for nothing
                    names -= vouched
                    loose -= vouched
        return sorted(store.missing(names, refresh=False, check_loose=True))

    def _record_pushed(self, remote: str, tips: Mapping[str, str]) -> None:
        """The remote's branches now name ``tips`` (ref -> commit): move ``remote/BRANCH`` there, and
        make a branch with no upstream track it (under the workspace lock)."""
        for ref, new in tips.items():
            if ref.startswith("refs/heads/"):
                branch = ref.removeprefix("refs/heads/")
                self.repo.references.create(f"refs/remotes/{remote}/{branch}", pygit2.Oid(hex=new), force=True)
                if f"branch.{branch}.remote" not in self.repo.config:
                    self.set_upstream(branch, remote)

    # -- checking a remote's storage ----------------------------------------------------------------------
    def check_storage(self, remote: str | None = None, *, resend: bool = False, verify: bool = False) -> StorageCheck:
        """Whether ``remote``'s storage holds every blob its branches name, asked exactly: its
        loose blobs are listed and its packs' sizes checked, not taken from the remote index (which
        push trusts as a hint). ``resend``: upload what it lacks from the local store (verified
        on the way, as any push), and with ``verify`` mend what is corrupt (:meth:`_replace_corrupt`).
        ``verify``: download and hash every blob it holds too (a pack's members in one read).
        Fetches the remote's refs first (no blobs)."""
        r = self.get(remote or self.default())
        self.fetch(r.name)
        check = StorageCheck(r.name)
        sizes: dict[str, int] = {}
        names, _ = self._blobs_of(self._new_commits(list(self._tracking(r.name).values()), []), sizes)
        check.blobs = len(names)
        store = self.store(r)
        with store._errors():
            store.packs.refresh()
            present = set(store.packs.packed()) | set(store.loose_names())
        check.lacking = sorted(names - present)
        if resend and check.lacking:
            have = set(check.lacking) - self.ws.store.missing(check.lacking)
            check.unavailable = sorted(set(check.lacking) - have)
            if have:
                self._transfer(sorted(have), self.ws.store.get_many, store.write_blobs, sizes, "upload", None,
                               store.fs)
                check.resent = sorted(have)
        if verify:
            found = store.check(names & present)
            # gone between the listing and the read: lacking, as if listed so (not resent: seen late)
            check.lacking = sorted(set(check.lacking) | {n for n, why in found.items() if why == "missing"})
            check.corrupt = sorted(n for n, why in found.items() if why == "corrupt")
            check.verified = True
            if resend and check.corrupt:
                self._replace_corrupt(store, check)
        return check

    def _replace_corrupt(self, store: RemoteStore, check: StorageCheck) -> None:
        """Put a good copy of each corrupt blob on the remote: read here (verified), written loose
        over the bad loose one or beside a bad pack member (readers pass over a member that fails
        its hash to a sound loose copy), then read back and hashed there. Nothing is deleted: the
        pack stays as it is, its other members sound."""
        for name in check.corrupt:
            try:
                data = self.ws.store.get(name)
            except (CorruptBlob, MissingBlob):
                check.no_good_copy.append(name)
                continue
            with store._errors():
                store.replace(name, data)
                store.fs.invalidate_cache()
            if not store.check([name]):
                check.replaced.append(name)

    # -- fetch / pull ----------------------------------------------------------------------------------
    def fetch(self, remote: str | None = None, *, eager: bool = False,
              progress: Progress | None = None) -> FetchResult:
        """Bring the remote's branches (as ``<remote>/<branch>``), tags and storage record over.

        Blobs come on demand later; ``eager`` fetches every blob of every
        fetched branch now (verified).
        """
        started = time.perf_counter()
        r = self.get(remote or self.default())
        if r.local_path is not None and not r.local_path.exists():
            raise RemoteError(f"cannot reach remote {r.name!r}: {r.local_path} does not exist")
        before = self._tracking(r.name)
        tags_before = self.ws.history.tags()
        clashes_before = self._tag_clashes(r.name, tags_before)
        had = trust.tips(self.repo)
        noted = False
        blobs = _Tally()
        try:
            # The remote's tags land beside ours, not on them: the fetch prunes what the remote lacks, and
            # refs/tags/* pruned deleted every tag of ours never pushed (a tag of an experiment no branch
            # holds: its commit then went with the next gc)
            tagopt = f"remote.{r.name}.tagopt"  # else libgit2 follows tags into refs/tags itself, past the refspec
            if tagopt not in self.repo.config or self.repo.config[tagopt] != "--no-tags":
                self.repo.config[tagopt] = "--no-tags"
            self._fetch_git(r, [f"+refs/heads/*:refs/remotes/{r.name}/*", f"+refs/tags/*:{_remote_tags(r.name)}*",
                                f"+refs/txgit/*:refs/txgit/remotes/{r.name}/*"], _Callbacks())
            trust.note_fetched(self.ws, r.name, had)  # provenance of what came, unless the remote is trusted
            noted = True
            after = self._tracking(r.name)
            result = FetchResult(r.name, kept_tags=self._take_tags(r.name))
            result.told_tags = sorted(t for t, sides in result.kept_tags.items() if clashes_before.get(t) == sides)
            result.new_tags = sorted(set(self.ws.history.tags()) - set(tags_before))
            for ref in sorted(set(before) | set(after)):
                if before.get(ref) != after.get(ref):
                    result.updated[ref] = (before.get(ref), after.get(ref))
                    if before.get(ref) and after.get(ref) and self._dropped(before[ref], after[ref]):
                        result.forced.append(ref)  # rewritten (a push --force): what pull merges says so
            if eager:
                result.blobs_fetched, result.bytes_fetched = self.fetch_all_blobs(r.name, after.values(), progress,
                                                                                  tally=blobs)
        except KeyboardInterrupt as e:
            if not noted:  # whatever came before the interrupt came from r: its provenance is kept all the same
                trust.note_fetched(self.ws, r.name, had)
            raise Interrupted(self._fetch_interrupted(r.name, before, blobs)) from e
        result.seconds = time.perf_counter() - started
        return result

    def _tag_clashes(self, remote: str, ours: Mapping[str, str]) -> dict[str, tuple[str, str]]:
        """Our tags that ``remote``'s (as its last fetch left them) name elsewhere: name -> (ours, theirs)."""
        prefix = _remote_tags(remote)
        out = {}
        for ref in [ref for ref in self.repo.references if ref.startswith(prefix)]:
            name = ref[len(prefix):]
            try:
                theirs = str(self.repo.references[ref].peel(pygit2.Commit).id)
            except (pygit2.GitError, ValueError, KeyError):
                continue
            if name in ours and ours[name] != theirs:
                out[name] = (ours[name], theirs)
        return out

    def _take_tags(self, remote: str) -> dict[str, tuple[str, str]]:
        """Make the tags ``remote`` has that we have not (as its last fetch left them); a tag of ours of the
        same name on another commit is kept, as git keeps it. Returns those: name -> (ours, theirs)."""
        prefix = _remote_tags(remote)
        kept = {}
        with self.ws.lock():
            for ref in [ref for ref in self.repo.references if ref.startswith(prefix)]:
                theirs = self.repo.references[ref]
                local = f"refs/tags/{ref[len(prefix):]}"
                if local not in self.repo.references:
                    self.repo.references.create(local, theirs.target)
                    continue
                try:
                    ours_c, theirs_c = (str(x.peel(pygit2.Commit).id) for x in (self.repo.references[local], theirs))
                except (pygit2.GitError, ValueError, KeyError):
                    continue  # not a tag of a commit: nothing of a state to keep or take
                if ours_c != theirs_c:
                    kept[ref[len(prefix):]] = (ours_c, theirs_c)
        return kept

    def _fetch_interrupted(self, remote: str, before: Mapping[str, str], blobs: _Tally) -> str:
        """What an interrupted fetch had changed here: remote-tracking branches moved, blobs brought."""
        after = self._tracking(remote)
        moved = sorted(ref.removeprefix("refs/remotes/") for ref in set(before) | set(after)
                       if before.get(ref) != after.get(ref))
        if not moved and not blobs.blobs:
            return f"nothing was changed: the fetch from {remote} had not updated any of {remote}/… here"
        what = f"the fetch from {remote} had updated {', '.join(moved)}" if moved else \
            f"the fetch from {remote} had updated no branch"
        if blobs.total_blobs:
            what += (f"; {blobs.done()} blobs were downloaded (the others come on demand, "
                     "or with `txgit fetch --eager`)")
        return what

    def fetch_all_blobs(self, remote: str, tips: Iterable[str], progress: Progress | None = None, *,
                        tally: _Tally | None = None) -> tuple[int, int]:
        """Every blob of every commit reachable from ``tips`` that the local cache lacks, from ``remote``.
        ``progress`` knows the total (from the records) from its first call."""
        store = self.store(remote)
        with ThreadPoolExecutor(max_workers=1) as ahead:
            # The remote index (a listing, the indexes: requests, waiting on the network) is read while
            # the records are parsed here (CPU): a clone of 1,000 variables waited for both in turn.
            # What it fails on is left to the download, which reads the index again and says why.
            # A remote whose git data names its indexes needs no listing: those are read directly.
            carried = self._carried_indexes(remote) if not store.is_local and not store.packs.loaded else []
            if carried:
                # a few packs: read whole in the same concurrent call, as every blob is wanted next
                # (more are read as needed, one at a time: memory stays bounded)
                index = ahead.submit(store.packs.learn_named, carried,
                                     with_packs=len(carried) <= _PREFETCH_PACKS_MAX)
            else:
                index = ahead.submit(store.packs.refresh) if not store.is_local and not store.packs.loaded else None
            tips = list(tips)
            commits = self._new_commits(tips, [])
            sizes: dict[str, int] = {}
            names, _ = self._blobs_of(commits, sizes, whole=tips)  # the tips whole: a checkout reads them
            lacking = sorted(self.ws.store.missing(names))
            if index is not None:
                _wait_all([index])
        try:
            if not lacking:
                return 0, 0
            try:
                return self._transfer(lacking, store.get_many, self.ws.store.write_blobs, sizes, "download",
                                      progress, store.fs, tally)
            except (CorruptBlob, MissingBlob) as e:
                self._from_other_remotes(remote, lacking, e, sizes, progress, tally)
                return len(lacking), sum(sizes.get(n, 0) for n in lacking)
        finally:
            store.packs.drop_prefetched()

    def _from_other_remotes(self, remote: str, names: list[str], failed: BlobError, sizes: Mapping[str, int],
                            progress: Progress | None, tally: _Tally | None) -> None:
        """What an eager fetch of ``remote`` did not get (``failed``: a blob it holds corrupt, or lacks):
        from any remote with a sound copy, verified, as a load does (:class:`RemoteChain`): ``remote``'s
        own copies first, then the others'. In batches, as the fetch's own transfer (it took one blob
        at a time, in turn), its progress going on from where the fetch stopped. A fresh clone knows
        ``remote`` alone: ``failed`` stands."""
        left = sorted(self.ws.store.missing(names))
        others = [n for n in self.names() if n != remote]
        if not others:
            raise failed
        stores = [store for _, store in self._named_stores([remote, *others])]
        already = sum(sizes.get(n, 0) for n in names) - sum(sizes.get(n, 0) for n in left)
        ahead = None if progress is None else \
            (lambda phase, done, total: progress(phase, already + done, already + total))
        bad: dict[str, list[str]] = {}  # name -> the storage URLs whose copy is corrupt
        self._transfer(left, lambda batch: read_sound(batch, stores, bad_copies=bad), self.ws.store.write_blobs,
                       sizes, "download", ahead, self.store(remote).fs, tally)
        still = sorted(self.ws.store.missing(left))
        if not still:
            return
        first = still[0]
        if first in bad:
            raise self.store(remote)._corrupt(first)
        raise MissingBlob(f"blob {first[:12]} is in no remote's storage ({', '.join([remote, *others])}): "
                          "ask whoever pushed it to push again")

# -- clone ---------------------------------------------------------------------------------------------

_HEX_DIGITS = frozenset("0123456789abcdef")


class _RemoteChangedDuringCopy(Exception):
    """A local remote's objects changed while a clone copied them: the clone starts again."""


def _objects_dir(repo: Path) -> Path | None:
    """The objects folder of the git repository at ``repo`` (bare or not), if its objects are all
    there: one that borrows objects from elsewhere (``info/alternates``) is fetched the ordinary way."""
    for git_dir in (repo, repo / ".git"):
        objects = git_dir / "objects"
        if (git_dir / "HEAD").is_file() and objects.is_dir():
            return None if (objects / "info" / "alternates").exists() else objects
    return None


def _object_files(objects: Path) -> frozenset[tuple[str, int]] | None:
    """(path below ``objects``, size) of every loose object and every pack and pack index; None
    when a folder or file went while it was read (a gc at work: not a moment to copy)."""
    found: set[tuple[str, int]] = set()
    try:
        with os.scandir(objects) as top:
            folders = [e.name for e in top if e.is_dir() and (len(e.name) == 2 or e.name == "pack")]
        for folder in folders:
            with os.scandir(objects / folder) as entries:
                for e in entries:
                    # objects and packs only: no temp files of a writer at work, no .keep or bitmaps
                    if (e.name.startswith("pack-") and e.name.endswith((".pack", ".idx")) if folder == "pack"
                            else len(e.name) in (38, 62) and _HEX_DIGITS.issuperset(e.name)):
                        found.add((f"{folder}/{e.name}", e.stat().st_size))
    except OSError:
        return None
    return frozenset(found)


def _copy_objects(source: Path, target: Path) -> frozenset[tuple[str, int]] | None:
    """Link (else copy) ``source``'s loose objects and packs into ``target``; returns what was
    listed, or None when the copy failed (what was copied is removed: the fetch brings it all).
    A pack's index goes after its pack, and only with it: an index never names missing bytes."""
    listed = _object_files(source)
    if listed is None:
        return None
    names = {rel for rel, _ in listed}
    whole_packs = sorted(rel[:-4] for rel in names if rel.endswith(".idx") and rel[:-4] + ".pack" in names)
    order = sorted(rel for rel in names if not rel.startswith("pack/"))
    order += [f"{stem}.pack" for stem in whole_packs] + [f"{stem}.idx" for stem in whole_packs]
    made: list[Path] = []
    try:
        for rel in order:
            dest = target / rel
            if dest.exists():
                continue
            dest.parent.mkdir(exist_ok=True)
            made.append(dest)
            try:
                os.link(source / rel, dest)
            except OSError:  # another file system, or links not allowed: a copy
                shutil.copyfile(source / rel, dest)
    except OSError:
        for dest in made:
            dest.unlink(missing_ok=True)
        return None
    return listed


_Repo = TypeVar("_Repo", bound=Repository)  # what a clone's ``init`` makes: the facade, from Workspace.clone


def clone_path(url: str, path: str | os.PathLike[str] | None = None) -> Path:
    """Where a clone of ``url`` goes: ``path``, else the URL's last part (``team.git`` -> ``team``)."""
    if path is None:
        tail = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
        path = tail.removesuffix(".git") or "clone"
    return Path(path).resolve()


def unfinished_clone(root: Path) -> str | None:
    """The URL of the clone that made the workspace at ``root`` if that clone was stopped before its end
    (killed: no cleanup ran) and nothing was made there since (every branch where the clone put it, at
    its remote-tracking branch); None for any other folder, a workspace someone worked in included."""
    marker = root / TXGIT_DIR / UNFINISHED_CLONE
    try:
        url = marker.read_text().strip()
    except OSError:
        return None
    try:
        repo = pygit2.Repository(str(root / TXGIT_DIR / "repo.git"))
        refs = {ref: str(repo.references[ref].target) for ref in repo.references}
    except (pygit2.GitError, KeyError, ValueError):
        return url  # killed while the repository was being made: nothing can have been committed there
    tracked = {ref.split("/", 3)[3]: oid for ref, oid in refs.items() if ref.startswith("refs/remotes/")}
    own = [ref for ref, oid in refs.items() if ref.startswith("refs/heads/")
           and tracked.get(ref.removeprefix("refs/heads/")) != oid]
    return None if own else url


def clone(url: str, path: str | os.PathLike[str] | None = None, *, storage: str | None = None,
          storage_options: Mapping[str, Any] | None = None, eager: bool = False, name: str = DEFAULT_REMOTE,
          progress: Progress | None = None, trusted: bool | None = None,
          init: Callable[[Path], _Repo] = Repository.init, local_objects: bool = True) -> _Repo:
    """A new workspace at ``path`` with the remote's history; blobs on demand (all now with ``eager``).

    The remote's storage is the one it records, unless ``storage`` overrides it.
    Every remote branch becomes a local branch tracking it; HEAD is the remote's
    default branch. A clone that fails leaves no folder behind; one killed before its end (no cleanup
    runs then) is made again by the next clone into its folder (see :func:`unfinished_clone`).
    ``trusted``: mark the origin trusted (its states load without ``trust=True``); default:
    yes for a local path the caller named, no for a network URL (see :mod:`txgit.trust`).
    ``init``: makes the new, empty workspace's object; :meth:`txgit.workspace.Workspace.clone` passes
    its own, so that a clone is a full workspace (this module stands below the facade, so it cannot
    name that class itself).

    From a local path, the remote's git objects are copied (hard-linked where the file system
    allows) before the fetch, as ``git clone`` does for a local repository: the fetch then finds
    every commit present and moves only refs, where libgit2 would pack and index every object
    again (1,000 variables are 2,000 records). libgit2 verifies each object's hash when it reads
    it, copied or fetched. ``local_objects=False``: fetch them the ordinary way.
    """
    root = clone_path(url, path)
    if (root / TXGIT_DIR).exists():
        if unfinished_clone(root) is None:
            raise WorkspaceExists(f"already a txgit workspace: {root}")
        # a clone killed before its end (nothing of its own since): made again from the start
        shutil.rmtree(root / TXGIT_DIR)
        if not any(root.iterdir()):
            root.rmdir()
    created = not root.exists()
    src = local_path(url)
    if src is not None and not src.exists():
        raise RemoteError(f"cannot clone {url}: {src} does not exist")
    try:
        ws = init(root)
        # removed as the clone's last step: a clone killed before (no cleanup runs) is known as such
        (root / TXGIT_DIR / UNFINISHED_CLONE).write_text(f"{url}\n")
        remotes = Remotes(ws)  # ws may have its own (the facade's): both read the remotes from the git config
        if trusted is None:
            trusted = src is not None
        remotes.add(name, url, storage=storage, storage_options=storage_options, trusted=trusted)
        source_objects = _objects_dir(src) if src is not None and local_objects else None
        listed = _copy_objects(source_objects, Path(ws.history.repo.path) / "objects") if source_objects else None
        fetched = remotes.fetch(name)
        if listed is not None and _object_files(source_objects) != listed:
            # the remote's objects changed while we copied and fetched (a push or gc meanwhile): a
            # commit copied before the objects it names were all written could be taken as whole
            # by the fetch. Start again the ordinary way (rare: only with a writer at work).
            raise _RemoteChangedDuringCopy()
        tracking = remotes._tracking(name)
        if not tracking:
            raise RemoteError(f"{url} has no branches: nothing to clone")
        default = remotes._remote_head_branch(remotes.get(name))
        branches = {ref.removeprefix(f"refs/remotes/{name}/"): oid for ref, oid in tracking.items()}
        if default not in branches:
            default = "main" if "main" in branches else sorted(branches)[0]
        with ws.lock():
            for b, oid in branches.items():
                # the reflog's first entry says where the branch came from, as git clone's does
                ws.history.repo.create_reference_direct(f"refs/heads/{b}", pygit2.Oid(hex=oid), True,
                                                        message=f"clone: from {url}")
                remotes.set_upstream(b, name)
            ws.history.set_head(branch=default)
        remotes.storage_url(name)  # the storage must be findable: say so now, not at the first checkout
        if eager:
            remotes.fetch_all_blobs(name, branches.values(), progress)
        del fetched
        (root / TXGIT_DIR / UNFINISHED_CLONE).unlink()
    except BaseException as e:
        gone = root if created else root / TXGIT_DIR
        shutil.rmtree(gone, ignore_errors=True)
        if isinstance(e, _RemoteChangedDuringCopy):
            return clone(url, path, storage=storage, storage_options=storage_options, eager=eager, name=name,
                         progress=progress, trusted=trusted, init=init, local_objects=False)
        if isinstance(e, KeyboardInterrupt):
            raise Interrupted(f"nothing was cloned: the half-made workspace was removed ({gone})") from e
        if isinstance(e, CorruptBlob):  # its advice must not point into the folder just removed
            raise CorruptBlob(f"nothing was cloned ({gone} was removed): {e}") from e
        full = None if isinstance(e, TxgitError) else disk_full(
            e, f"cannot clone {url}", root.parent, outcome=f"nothing was cloned ({gone} was removed)",
            retry="clone again", use_filename=False)  # (the file named was in the folder removed)
        if full is not None:
            raise full from e
        raise
    return ws
