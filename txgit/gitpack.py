"""Packing the git history: loose objects into packs, so that 10,000 cell commits are not 90,000 files.

Each commit writes a handful of small git objects (the commit, its trees, the pointer files that
changed, meta.json), each a file of its own ("loose") until something packs them. Git does that in
``git gc --auto``; txgit's history is written by libgit2, which never does, so txgit packs it here,
with pygit2's :class:`pygit2.PackBuilder`:

* **when**: a committing process looks at the number of loose objects every :data:`CHECK_EVERY`
  commits (an estimate from 16 of git's 256 fan-out folders, as ``git gc --auto`` does) and, past
  :data:`LOOSE_LIMIT`, starts this module as a process of its own in the background
  (:func:`start_background`), so that no cell waits for it. It packs the loose objects into a new
  pack and rolls the packs of one size class into one when there are :data:`TIER_WIDTH` of them
  (see :func:`gather_plan`): under ten packs after 10,000 commits, each object rewritten ~3 times.
  It then lingers while commits keep coming (see :func:`main`): one process for a loop of cells.
  It runs at a lower priority (nice 10): a cell's process comes first.
  ``txgit gc`` packs too, in the foreground, everything into one pack.
* **crash safety** (a kill at any instant leaves a whole repository): the pack and its index are
  written into a staging folder and checked, read through them alone (see :func:`_verify`), then
  the ``.pack`` is moved into ``objects/pack`` and its ``.idx`` after it (git finds a pack
  through its index, so no reader ever sees an index without its pack); only then are the loose
  copies, and packs it replaced, deleted (an index before its pack). A kill before the moves
  leaves a staging folder, removed by the next packer; after them, objects that are both loose
  and packed, which git reads either way.
* **no lock against writers**: packing only adds copies and deletes a loose object once a verified
  pack holds it, so commits, gc and readers go on beside it; one packer at a time
  (:data:`LOCK`, not waited for: a second one just does not run).

This file runs as the background packer's main program without importing the txgit package
(only pygit2 and the standard library), like :mod:`txgit.gitwriter`.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
import sys
import time
from dataclasses import dataclass

import pygit2

LOOSE_LIMIT = 512  # loose objects that start a background pack: ~55 cell commits of ~9 objects
# packs of one size class (a factor of 4 apart) that are rolled up into one: each object is rewritten
# once per class it climbs, ~3x in all over 10,000 commits (a geometric progression of factor 4, as
# ``git repack --geometric=4`` keeps, rewrote each ~8x: see docs/performance.md), for ~3 packs a class
TIER_WIDTH = 4
CHECK_EVERY = 16  # commits between two looks at the loose count (each costs 16 small directory listings)
ORPHAN_AGE = 600.0  # seconds: a .pack without its index this old is no fetch or packer still moving it
LINGER = 3.0  # seconds a background packer waits, with no new loose object, before it exits
LINGER_POLL = 0.25  # seconds between its looks at the loose count meanwhile (16 directory listings each)
LOCK = "txgit-pack-lock"  # (not "*.lock": txgit removes git's stale lock files in that folder)
STAGING = "txgit-pack-tmp"
_SAMPLE = [f"{i:02x}" for i in range(16)]  # 16 of the 256 fan-out folders: 1/16 of the loose objects
_TYPE_NAMES = {1: b"commit", 2: b"tree", 3: b"blob", 4: b"tag"}


@dataclass
class ObjectCounts:
    """What ``git count-objects -v`` says: loose objects and their bytes, packs and theirs."""

    loose: int = 0
    loose_bytes: int = 0
    packs: int = 0
    packed: int = 0  # objects in packs (from their indexes)
    pack_bytes: int = 0  # .pack and .idx files

    @property
    def bytes(self) -> int:
        return self.loose_bytes + self.pack_bytes


@dataclass
class PackReport:
    """What one packing did."""

    packed: int = 0  # objects written into the new pack
    loose_deleted: int = 0
    packs_replaced: int = 0  # older packs gathered into the new one and deleted
    orphans_removed: int = 0  # .pack files without an index that a killed packer left (gather only)
    skipped: str | None = None  # why nothing was done (another packer runs, nothing to pack)


def _objects(repo_path: str) -> str:
    return os.path.join(repo_path, "objects")


def loose_objects(repo_path: str) -> dict[str, str]:
    """id -> path of every loose object."""
    root = _objects(repo_path)
    out = {}
    for fan in os.listdir(root):
        if len(fan) != 2:
            continue
        try:
            names = os.listdir(os.path.join(root, fan))
        except (NotADirectoryError, FileNotFoundError):
            continue
        for name in names:
            if len(name) == 38 and not name.startswith("tmp"):
                out[fan + name] = os.path.join(root, fan, name)
    return out


def estimate_loose(repo_path: str) -> int:
    """About how many loose objects there are, from 1/16 of the fan-out folders (ids are uniform)."""
    root = _objects(repo_path)
    n = 0
    for fan in _SAMPLE:
        try:
            n += sum(1 for name in os.listdir(os.path.join(root, fan)) if len(name) == 38)
        except FileNotFoundError:
            pass
    return n * 16


def _packs(repo_path: str) -> list[str]:
    """Paths of the packs in place (those with an index), without their extension."""
    folder = os.path.join(_objects(repo_path), "pack")
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return sorted(os.path.join(folder, n[:-4]) for n in names if n.startswith("pack-") and n.endswith(".idx")
                  and os.path.exists(os.path.join(folder, n[:-4] + ".pack")))


def _idx_count(idx_path: str) -> int:
    """Objects in a version-2 pack index: the last entry of its fan-out table."""
    with open(idx_path, "rb") as f:
        head = f.read(8 + 256 * 4)
    if head[:4] != b"\xfftOc" or len(head) < 8 + 256 * 4:
        return 0
    return int.from_bytes(head[-4:], "big")


def count_objects(repo_path: str) -> ObjectCounts:
    """``git count-objects -v`` for a repository (exact: every fan-out folder is listed)."""
    counts = ObjectCounts()
    for path in loose_objects(repo_path).values():
        try:
            counts.loose_bytes += os.stat(path).st_size
            counts.loose += 1
        except FileNotFoundError:
            pass
    for base in _packs(repo_path):
        try:
            counts.pack_bytes += os.stat(base + ".pack").st_size + os.stat(base + ".idx").st_size
            counts.packed += _idx_count(base + ".idx")
            counts.packs += 1
        except FileNotFoundError:
            pass
    return counts


def _verify(pack_dir_parent: str, oids: list[pygit2.Oid]) -> None:
    """Check the new pack under ``pack_dir_parent``/pack, read through a pack-only object database: its
    index lists every object of ``oids`` (libgit2's indexer built the index by hashing each object as the
    pack was written, so a listed id is an object whose bytes hash to it), and a sample of them read back
    in full hashes to its id."""
    odb = pygit2.Odb()
    odb.add_backend(pygit2.OdbBackendPack(pack_dir_parent), 1)
    for oid in oids:
        if not odb.exists(oid):
            raise pygit2.GitError(f"the new pack lacks object {oid}")
    for oid in oids[:: max(1, len(oids) // 64)]:
        kind, data = odb.read(oid)
        h = hashlib.sha1(_TYPE_NAMES[int(kind)] + b" %d\0" % len(data))
        h.update(data)
        if h.hexdigest() != str(oid):
            raise pygit2.GitError(f"the new pack gives object {oid} bytes that do not hash to it")


def _tier(objects: int) -> int:
    """A pack's size class: 0 up to :data:`TIER_WIDTH` times one batch of :data:`LOOSE_LIMIT` objects, then
    one class per factor of :data:`TIER_WIDTH`."""
    tier, size = 0, LOOSE_LIMIT * TIER_WIDTH
    while objects >= size:
        tier, size = tier + 1, size * TIER_WIDTH
    return tier


def gather_plan(pack_sizes: list[int], loose: int) -> list[int]:
    """Which packs (indexes into ``pack_sizes``, objects in each) to roll up with ``loose`` loose objects.
    The new pack joins its size class; when that class then holds :data:`TIER_WIDTH` packs they become one
    (which may fill the next class, and so on, as a counter carries). Every object is thus rewritten
    about once per class, a logarithm base :data:`TIER_WIDTH` of the history's size, and at most
    ``TIER_WIDTH - 1`` packs stay in each class."""
    chosen: list[int] = []
    total = loose
    rest = sorted(range(len(pack_sizes)), key=lambda i: pack_sizes[i])
    while True:
        peers = [i for i in rest if _tier(pack_sizes[i]) <= _tier(total)]
        if len(peers) + 1 < TIER_WIDTH:
            return chosen
        chosen += peers
        rest = [i for i in rest if i not in peers]
        total += sum(pack_sizes[i] for i in peers)


def _to_gather(packs: list[str], loose: int) -> list[str]:
    """The packs to roll up with ``loose`` loose objects (see :func:`gather_plan`)."""
    sizes = [_idx_count(p + ".idx") for p in packs]
    return [packs[i] for i in gather_plan(sizes, loose)]


def pack(repo_path: str, *, gather: bool | None = None, min_loose: int = 1, wait: bool = False) -> PackReport:
    """Pack the loose objects into one new pack, then delete what it replaces. ``gather``: True, with every
    pack there is (gc); None, with the small packs (see :func:`_to_gather`); False, with none. See the
    module's docstring for the order that makes a kill at any instant harmless. Skipped when another
    packer runs (``wait``: wait for it instead) or fewer than ``min_loose`` objects are loose (and no
    pack is to be gathered)."""
    report = PackReport()
    repo_path = os.path.abspath(repo_path)
    lock = open(os.path.join(repo_path, LOCK), "a")
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            report.skipped = "another packer is running"
            return report
        staging = os.path.join(repo_path, STAGING)
        shutil.rmtree(staging, ignore_errors=True)  # a killed packer's: we hold the lock, so nobody uses it
        loose = loose_objects(repo_path)
        packs = _packs(repo_path)
        if gather is None:
            gathered = _to_gather(packs, len(loose))
        else:
            gathered = packs if gather else []
        if gather:
            report.orphans_removed = _remove_orphan_packs(repo_path)
        if len(loose) < max(min_loose, 1) and len(gathered) + bool(loose) < 2:
            report.skipped = "nothing to pack"  # (one pack alone is gathered already)
            return report
        repo = pygit2.Repository(repo_path)
        oids = {pygit2.Oid(hex=h) for h in loose}
        for base in gathered:
            oids.update(_idx_oids(base + ".idx"))
        ordered = sorted(oids, key=str)
        builder = pygit2.PackBuilder(repo)
        for oid in ordered:
            builder.add(oid)
        os.makedirs(os.path.join(staging, "pack"))
        try:
            builder.write(os.path.join(staging, "pack"))
            report.packed = builder.written_objects_count
            _verify(staging, ordered)
        except BaseException:  # a full disk: what was written goes now, not at the next pack
            shutil.rmtree(staging, ignore_errors=True)
            raise
        written = [n[:-4] for n in os.listdir(os.path.join(staging, "pack")) if n.endswith(".idx")]
        if len(written) != 1:
            raise pygit2.GitError(f"the pack builder wrote {len(written)} indexes, not one")
        name = written[0]
        target = os.path.join(_objects(repo_path), "pack")
        os.makedirs(target, exist_ok=True)
        # the pack first, its index last: a reader finds a pack only through its index
        os.replace(os.path.join(staging, "pack", name + ".pack"), os.path.join(target, name + ".pack"))
        os.replace(os.path.join(staging, "pack", name + ".idx"), os.path.join(target, name + ".idx"))
        shutil.rmtree(staging, ignore_errors=True)
        new_pack = os.path.join(target, name)
        for path in loose.values():
            try:
                os.unlink(path)
                report.loose_deleted += 1
            except FileNotFoundError:
                pass
        for base in gathered:
            if base == new_pack:  # the same objects gave the same pack: it stays
                continue
            for ext in (".idx", ".rev", ".pack"):  # the index first: never one without its pack
                try:
                    os.unlink(base + ext)
                except FileNotFoundError:
                    pass
            report.packs_replaced += 1
        return report
    finally:
        lock.close()


def _remove_orphan_packs(repo_path: str) -> int:
    """Delete the ``.pack`` files that have no index and are older than :data:`ORPHAN_AGE`: a packer killed
    between moving a pack and its index leaves one. git never reads a pack without its index, so they
    only take space. Young ones are left: a fetch or packer may be about to move the index beside it."""
    folder = os.path.join(_objects(repo_path), "pack")
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return 0
    removed = 0
    for n in names:
        if not (n.startswith("pack-") and n.endswith(".pack")) or n[:-5] + ".idx" in names:
            continue
        path = os.path.join(folder, n)
        try:
            if time.time() - os.stat(path).st_mtime > ORPHAN_AGE:
                os.unlink(path)
                removed += 1
        except FileNotFoundError:
            pass
    return removed


def remove_empty_fanout(repo_path: str) -> int:
    """Remove the loose-object folders (``objects/ab``) that packing emptied, as ``git prune-packed`` does:
    each takes a disk block, and a packed history of a short notebook left ~130 of them. The caller must
    hold the workspace lock: a commit may be about to write into one (libgit2 makes the folder, then
    renames the object into it)."""
    root = _objects(repo_path)
    removed = 0
    for fan in os.listdir(root):
        if len(fan) != 2:
            continue
        try:
            os.rmdir(os.path.join(root, fan))
            removed += 1
        except OSError:  # not empty (or not a folder): kept
            pass
    return removed


def _idx_oids(idx_path: str) -> list[pygit2.Oid]:
    """The ids a version-2 pack index lists (its sorted table of 20-byte names after the fan-out)."""
    with open(idx_path, "rb") as f:
        data = f.read()
    if data[:4] != b"\xfftOc" or int.from_bytes(data[4:8], "big") != 2:
        raise pygit2.GitError(f"{os.path.basename(idx_path)} is not a version-2 pack index")
    n = int.from_bytes(data[8 + 255 * 4: 8 + 256 * 4], "big")
    table = 8 + 256 * 4
    return [pygit2.Oid(raw=data[table + 20 * i: table + 20 * (i + 1)]) for i in range(n)]


def start_background(repo_path: str) -> int | None:
    """Start :func:`pack` in a process of its own and return its pid (the caller reaps it with
    ``os.waitpid(pid, os.WNOHANG)``); None if it could not be started. Its own session: an interrupt
    of the kernel does not reach it, and it outlives its starter, finishing what it began."""
    code = ("import importlib.util as u, sys; s = u.spec_from_file_location('txgit_gitpack', sys.argv[1]);"
            " m = u.module_from_spec(s); sys.modules[s.name] = m; s.loader.exec_module(m); m.main(sys.argv[2:])")
    quiet = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]
    try:
        return os.posix_spawn(sys.executable, [sys.executable, "-c", code, os.path.abspath(__file__),
                                               os.path.abspath(repo_path)],
                              os.environ, file_actions=quiet, setsid=True)
    except OSError:
        return None


def main(argv: list[str]) -> None:
    """The background packer: pack while it is worth it (a starter's estimate may be stale), then linger
    while commits keep coming, packing each further batch, and exit after :data:`LINGER` seconds in which
    no loose object came. A loop of cells thus runs one packer, not one process (Python and pygit2's import: ~0.14 s of
    CPU) per batch; its starter starts none while it lives. Killing it at any instant stays harmless."""
    repo_path = argv[0]
    try:
        os.nice(10)  # the kernel's cells come first; packing can wait for an idle core
    except OSError:
        pass
    # the first look packs from half the limit (a starter's estimate said the limit was passed)
    threshold = LOOSE_LIMIT // 2
    idle_since = time.monotonic()
    seen = -1
    while time.monotonic() - idle_since < LINGER:
        loose = estimate_loose(repo_path)
        if loose >= threshold:
            if pack(repo_path).skipped:
                return  # another packer runs (or nothing was loose after all): it is its job
            threshold = LOOSE_LIMIT
            idle_since, seen = time.monotonic(), -1
        else:
            if loose > seen >= 0:  # commits still coming (a loaded machine's loop is slow): stay
                idle_since = time.monotonic()
            seen = loose
            time.sleep(LINGER_POLL)
