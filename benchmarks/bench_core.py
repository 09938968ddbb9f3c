"""Commit and checkout of whole states vs. pickle and dill, and an incremental commit.

For each state size the same namespace (numpy arrays, one pandas DataFrame,
many small Python objects) is saved and restored four ways in one process:

* ``txgit``: ``Workspace.commit`` into a fresh workspace, then ``checkout``
  into an empty namespace (everything loaded, every chunk verified);
* ``pickle``: ``pickle.dump`` of the namespace dict to a file (protocol 5),
  then ``pickle.load``: the floor, it has no history, dedup or verification;
* ``dill``: ``dill.dump_module`` / ``dill.load_module`` of a module holding
  the namespace, the whole-session baseline (formerly ``dump_session``).

Each save and restore is repeated (3 times up to 100 MB, twice at ~1 GB) and
the fastest run counts, for every contender alike: on a shared machine one run
is noise. Then a small change (1 % of the largest array's rows, one small
variable) is committed again: txgit stores only the changed chunks, the whole
dumps write everything again. The machine's blake3 hashing and file write
throughput are measured as the ceiling, and beside each state its first
commit's floor (``commit_floor``: the same bytes written to one file while
txgit's pool hashes them; "floor ratio" is that over ``pickle.dump``). Files are written to the page cache
and not fsynced by any of the contenders; loads read them back from the cache.
The last table puts the ratios side by side with the targets of issue 19.

    python benchmarks/run.py core [--quick]
"""

from __future__ import annotations

import gc
import os
import pickle
import shutil
import sys
import tempfile
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's txgit

MB = 1 << 20


def make_state(total_mb: int, seed: int = 0) -> dict[str, Any]:
    """A namespace of about ``total_mb`` MiB: ~60 % numpy, ~35 % a DataFrame, the rest small objects."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    ns: dict[str, Any] = {"__name__": "__main__", "np": np, "pd": pd}
    arrays_bytes = int(total_mb * MB * 0.6)
    rows = arrays_bytes // 2 // (8 * 64)
    ns["features"] = rng.standard_normal((rows, 64))  # float64, the largest array
    ns["counts"] = rng.integers(0, 1000, size=arrays_bytes // 2 // 8, dtype=np.int64)
    frame_rows = int(total_mb * MB * 0.35) // (8 * 4 + 8)
    ns["df"] = pd.DataFrame({
        "user": rng.integers(0, 10_000, frame_rows),
        "amount": rng.gamma(2.0, 30.0, frame_rows),
        "score": rng.random(frame_rows),
        "ts": pd.date_range("2024-01-01", periods=frame_rows, freq="s"),
        "flag": rng.random(frame_rows) < 0.5,
    })
    n_small = max(1000, int(total_mb * MB * 0.05) // 400)
    ns["records"] = [{"id": i, "name": f"user-{i}", "tags": ["a", "b", str(i % 7)], "score": i * 0.5}
                     for i in range(n_small)]
    ns["lookup"] = {f"k{i}": (i, float(i)) for i in range(n_small)}
    ns["params"] = {"lr": 0.01, "epochs": 10, "layers": [64, 32, 1]}
    ns["step"] = 0
    return ns


def variables(ns: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ns.items() if not k.startswith("__")}


def state_nbytes(ns: dict[str, Any]) -> int:
    """Bytes of the state as plain pickle sees them (the common yardstick)."""
    size = 0

    class Counter:
        def write(self, b: bytes) -> None:
            nonlocal size
            size += memoryview(b).nbytes

    pickle.dump({k: v for k, v in variables(ns).items() if not isinstance(v, types.ModuleType)}, Counter(),
                protocol=5)
    return size


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def timed(fn: Any) -> tuple[float, Any]:
    gc.collect()
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


# -- contenders -------------------------------------------------------------------------

def run_txgit(ns: dict[str, Any], tmp: Path, repeats: int) -> dict[str, Any]:
    from txgit import Workspace

    commits, checkouts = [], []
    for i in range(repeats):  # each into a fresh workspace: every run is a first commit
        if i:
            shutil.rmtree(tmp / f"tx{i - 1}", ignore_errors=True)
        ws = Workspace.init(tmp / f"tx{i}")
        before = _paths(tmp / f"tx{i}")
        t, res = timed(lambda: ws.commit(ns, "state"))
        commits.append(t)
        created = len(_paths(tmp / f"tx{i}") - before)
        target: dict[str, Any] = {"__name__": "__main__"}
        ws2 = Workspace.open(tmp / f"tx{i}")  # a new process's view: no cached records
        t, _ = timed(lambda: ws2.checkout("HEAD", target, force=True))
        checkouts.append(t)
        ok = _same(ns, target)
        target = ws2 = None  # freed before the next run (not del: the lambdas above name them)
    t_commit, t_checkout = min(commits), min(checkouts)
    first_files = blob_files(ws)
    # incremental: 1 % of the largest array's rows and one small variable change
    feats = ns["features"]
    n = max(1, len(feats) // 100)
    feats[len(feats) // 2 : len(feats) // 2 + n] += 1.0
    ns["step"] = 1
    t_inc, inc = timed(lambda: ws.commit(ns, "small change", names={"features", "step"}))
    t_inc_full, inc_full = timed(lambda: ws.commit(_touch(ns), "no hint"))
    return {
        "commit_s": t_commit, "checkout_s": t_checkout, "stored_bytes": folder_bytes(tmp / f"tx{repeats - 1}" / ".txgit"),
        "blob_files": first_files, "blob_files_after_incremental": blob_files(ws),
        "bytes_written": res.bytes_written, "roundtrip_equal": ok, "created": created,
        "incremental_commit_s": t_inc, "incremental_bytes_written": inc.bytes_written,
        "incremental_state_bytes": inc.bytes_state,
        "rescan_commit_s": t_inc_full, "rescan_bytes_written": inc_full.bytes_written,
    }


def _paths(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*")}


def creation_cost(tmp: Path, n: int = 200) -> float:
    """Seconds to create one empty file here (the median of ``n``): on some file systems a file or
    folder a commit creates costs far more than the bytes written into it (see the floor table)."""
    times = []
    for i in range(n):
        started = time.perf_counter()
        os.close(os.open(tmp / f"c{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        times.append(time.perf_counter() - started)
    for i in range(n):
        os.unlink(tmp / f"c{i}")
    return sorted(times)[n // 2]


def blob_files(ws: Any) -> int:
    """Files in the object store (loose blobs, packs and their indexes): what a commit had to create."""
    return sum(1 for f in Path(ws.store.root).rglob("*") if f.is_file())


def _touch(ns: dict[str, Any]) -> dict[str, Any]:
    ns["step"] = 2
    return ns


def run_pickle(ns: dict[str, Any], tmp: Path, repeats: int) -> dict[str, Any]:
    path = tmp / "state.pkl"
    state = variables(ns)

    def dump() -> None:
        with open(path, "wb") as f:
            pickle.dump({k: v for k, v in state.items() if not isinstance(v, types.ModuleType)}, f, protocol=5)

    def load() -> Any:
        with open(path, "rb") as f:
            return pickle.load(f)

    dumps, loads = [], []
    for _ in range(repeats):
        path.unlink(missing_ok=True)  # a new file each time, as txgit's first commit makes new files
        dumps.append(timed(dump)[0])
        t, back = timed(load)
        loads.append(t)
        del back
    t_dump, t_load = min(dumps), min(loads)
    size = path.stat().st_size
    return {"commit_s": t_dump, "checkout_s": t_load, "stored_bytes": size, "bytes_written": size,
            "incremental_commit_s": t_dump, "incremental_bytes_written": size}


def run_dill(ns: dict[str, Any], tmp: Path, repeats: int) -> dict[str, Any]:
    import dill

    path = tmp / "session.dill"
    module = types.ModuleType("__main__")
    module.__dict__.update(variables(ns))
    dumps, loads = [], []
    for _ in range(repeats):
        path.unlink(missing_ok=True)
        dumps.append(timed(lambda: dill.dump_module(str(path), module=module, refimported=True))[0])
        t, back = timed(lambda: dill.load_module(str(path), module=types.ModuleType("__main__")))
        loads.append(t)
        del back
    t_dump, t_load = min(dumps), min(loads)
    size = path.stat().st_size
    module = None  # freed (not del: the lambdas above name it)
    return {"commit_s": t_dump, "checkout_s": t_load, "stored_bytes": size, "bytes_written": size,
            "incremental_commit_s": t_dump, "incremental_bytes_written": size}


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    import numpy as np
    import pandas as pd

    for k, v in variables(a).items():
        w = b.get(k)
        if isinstance(v, np.ndarray):
            if not np.array_equal(v, w):
                return False
        elif isinstance(v, pd.DataFrame):
            if not v.equals(w):
                return False
        elif isinstance(v, types.ModuleType):
            if v is not w:
                return False
        elif v != w:
            return False
    return True


# -- ceilings ------------------------------------------------------------------------------

def ceilings(tmp: Path, mb: int) -> dict[str, float]:
    """blake3 hashing (1 MiB chunks, as txgit cuts them) and file write throughput, in MB/s."""
    import numpy as np

    from txgit.storage import hash_bytes

    data = np.random.default_rng(1).bytes(mb * MB)
    view = memoryview(data)
    t_hash, _ = timed(lambda: [hash_bytes(view[i : i + MB]) for i in range(0, len(view), MB)])
    path = tmp / "throughput.bin"

    def write(sync: bool) -> None:
        with open(path, "wb") as f:
            for i in range(0, len(view), MB):
                f.write(view[i : i + MB])
            if sync:
                f.flush()
                os.fsync(f.fileno())

    t_write, _ = timed(lambda: write(False))
    t_sync, _ = timed(lambda: write(True))
    path.unlink()
    return {"blake3_MBps": mb / t_hash, "write_MBps": mb / t_write, "write_fsync_MBps": mb / t_sync}


# -- the physical floor of a first commit ------------------------------------------------

def commit_floor(ns: dict[str, Any], tmp: Path, repeats: int) -> dict[str, float]:
    """The least a content-addressed store that hashes every byte can take for this state, in seconds.

    The bytes are the state's own: pickle's skeleton and its out-of-band buffers (protocol 5), cut in
    1 MiB chunks as txgit cuts them, nothing copied. Four ways, alternated, fastest of ``repeats``:
    ``pickle_dump`` (to a file, as run_pickle), ``write`` (the same bytes to one file, no pickling),
    ``hash`` (blake3 of every chunk on txgit's own thread pool), and ``overlapped``: the pool hashes
    the chunks while this thread writes each one as soon as its hash is known (chunk i-1 is written while
    chunk i is hashed), once on txgit's pool and once with a single hashing thread; the faster of the
    two, ``overlapped``, is the floor: it is what txgit's first commit does at the least,
    without the pickling (which ``pickle_dump`` has too), the walk for shared objects or git.
    ``walk``: that walk alone (``walk_shared`` and ``sharing_groups`` over the same variables, as a
    first commit runs them), timed beside the rest: the part of txgit's commit that is neither
    pickling nor hashing nor writing.
    """
    from txgit.state.snapshot import sharing_groups, walk_shared
    from txgit.storage import hash_bytes, shared_pool

    state = {k: v for k, v in variables(ns).items() if not isinstance(v, types.ModuleType)}
    buffers: list[pickle.PickleBuffer] = []
    skeleton = pickle.dumps(state, protocol=5, buffer_callback=buffers.append)
    streams = [memoryview(skeleton)] + [b.raw() for b in buffers]
    pieces = [s[i : i + MB] for s in streams for i in range(0, len(s), MB)]
    pool = shared_pool()
    path = tmp / "floor.bin"

    def pickle_dump() -> None:
        with open(path, "wb") as f:
            pickle.dump(state, f, protocol=5)

    def write() -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            for piece in pieces:
                os.write(fd, piece)
        finally:
            os.close(fd)

    def walk() -> None:
        sharing_groups(state, walk_shared(state, ns))

    def hash_all() -> None:
        list(pool.map(hash_bytes, pieces))

    def overlapped(hasher: ThreadPoolExecutor) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            for piece, _name in zip(pieces, hasher.map(hash_bytes, pieces)):  # in order, as hashed
                os.write(fd, piece)
        finally:
            os.close(fd)

    # on txgit's pool (4 threads) the hashing takes both cores and the writes wait for it; one hashing
    # thread leaves a core to the writes: each is measured, the faster is the floor
    one = ThreadPoolExecutor(max_workers=1)
    ways = {"pickle_dump": pickle_dump, "write": write, "hash": hash_all,
            "overlapped_pool": lambda: overlapped(pool), "overlapped_one": lambda: overlapped(one), "walk": walk}
    best = {k: float("inf") for k in ways}
    for _ in range(repeats):
        for name, fn in ways.items():
            path.unlink(missing_ok=True)  # a new file each time, as a first commit makes
            best[name] = min(best[name], timed(fn)[0])
    path.unlink(missing_ok=True)
    one.shutdown()
    pieces = streams = buffers = skeleton = None  # freed (not del: the closures above name them)
    best["overlapped"] = min(best["overlapped_pool"], best["overlapped_one"])
    best["create"] = creation_cost(tmp)
    return best


# -- main -----------------------------------------------------------------------------------

def repeats_for(mb: int) -> int:
    return 3 if mb <= 100 else 2


# issue 19's targets: txgit / pickle at most this, per state size (MB)
CHECKOUT_TARGET = {100: 1.5, 1000: 1.5}
COMMIT_TARGET = {10: 3.0, 100: 1.0, 1000: 1.0}


def main(quick: bool = False) -> dict:
    sizes = [10, 50] if quick else [10, 100, 1000]
    results: dict[str, Any] = {"sizes_mb": sizes, "states": {}}
    root = Path(tempfile.mkdtemp(prefix="txgit-bench-core-"))
    try:
        results["ceiling"] = ceilings(root, 64 if quick else 256)
        for mb in sizes:
            row: dict[str, Any] = {"repeats": repeats_for(mb)}
            for name, fn in (("pickle", run_pickle), ("dill", run_dill), ("txgit", run_txgit)):
                ns = make_state(mb)  # fresh each time: txgit's incremental step mutates it
                if name == "pickle":
                    row["state_bytes"] = state_nbytes(ns)
                    floor_tmp = root / f"{mb}-floor"
                    floor_tmp.mkdir()
                    row["floor"] = commit_floor(ns, floor_tmp, max(3, row["repeats"]))
                    shutil.rmtree(floor_tmp, ignore_errors=True)
                tmp = root / f"{mb}-{name}"
                tmp.mkdir()
                row[name] = fn(ns, tmp, row["repeats"])
                del ns
                shutil.rmtree(tmp, ignore_errors=True)
                gc.collect()
            results["states"][f"{mb}MB"] = row
    finally:
        shutil.rmtree(root, ignore_errors=True)
    _print(results)
    return results


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def _print(results: dict[str, Any]) -> None:
    c = results["ceiling"]
    print(f"ceiling: blake3 {c['blake3_MBps']:.0f} MB/s (1 MiB chunks, {os.cpu_count()} cores), "
          f"file write {c['write_MBps']:.0f} MB/s (page cache), {c['write_fsync_MBps']:.0f} MB/s with fsync")
    head = (f"{'state':>7} {'tool':<7} {'commit s':>9} {'checkout s':>10} {'stored MB':>9} "
            f"{'commit vs pickle':>16} {'checkout vs pickle':>18} {'incr. commit s':>14} {'incr. written MB':>16}")
    print(head)
    print("-" * len(head))
    for size, row in results["states"].items():
        p = row["pickle"]
        for tool in ("pickle", "dill", "txgit"):
            r = row[tool]
            print(f"{size:>7} {tool:<7} {r['commit_s']:>9.3f} {r['checkout_s']:>10.3f} {r['stored_bytes'] / MB:>9.1f} "
                  f"{_ratio(r['commit_s'], p['commit_s']):>16} {_ratio(r['checkout_s'], p['checkout_s']):>18} "
                  f"{r['incremental_commit_s']:>14.3f} {r['incremental_bytes_written'] / MB:>16.2f}")
        t = row["txgit"]
        print(f"{'':>7} txgit incremental commit wrote {t['incremental_bytes_written'] / MB:.2f} MB of a "
              f"{t['incremental_state_bytes'] / MB:.1f} MB state "
              f"({t['incremental_bytes_written'] / max(1, t['incremental_state_bytes']) * 100:.1f} %), "
              f"{_ratio(p['commit_s'], t['incremental_commit_s'])} faster than a pickle dump; "
              f"re-scan without a hint {t['rescan_commit_s']:.3f} s, wrote {t['rescan_bytes_written'] / MB:.2f} MB; "
              f"round trip equal: {t['roundtrip_equal']}; files in the object store after the first commit "
              f"{t['blob_files']}, after both incremental ones {t['blob_files_after_incremental']}")
    print()
    head = (f"{'state':>7} {'first commit / pickle.dump':>26} {'target':>7} {'checkout / pickle.load':>22} {'target':>7} "
            f"{'incr. commit s':>14} {'incr. written MB':>16} {'runs':>5}")
    print(head)
    print("-" * len(head))
    for size, row in results["states"].items():
        p, t = row["pickle"], row["txgit"]
        mb = int(size.removesuffix("MB"))
        commit_target = f"{COMMIT_TARGET[mb]:.1f}x" if mb in COMMIT_TARGET else "-"
        checkout_target = f"{CHECKOUT_TARGET[mb]:.1f}x" if mb in CHECKOUT_TARGET else "-"
        print(f"{size:>7} {_ratio(t['commit_s'], p['commit_s']):>26} {commit_target:>7} "
              f"{_ratio(t['checkout_s'], p['checkout_s']):>22} {checkout_target:>7} "
              f"{t['incremental_commit_s']:>14.3f} {t['incremental_bytes_written'] / MB:>16.2f} {row['repeats']:>5}")
    print()
    print("the floor of a first commit: the state's own bytes (pickle's skeleton and buffers, 1 MiB chunks), fastest "
          "of each, alternated; 'overlapped' hashes (on txgit's pool of 4 threads / on one thread) while this thread "
          "writes to one file, each chunk as soon as it is hashed; floor ratio: the faster of the two / pickle.dump "
          "(the fastest of this state's dumps, here and in the table above); walk: txgit's walk for shared objects "
          "and its grouping alone, part of the txgit commit; created: the files and folders txgit's first commit "
          "made (git objects, their fan-out folders, the ref and its reflog, the blob pack and its index), at "
          "'create ms' each on this machine (an empty file's creation, median of 200); pickle.dump creates one")
    head = (f"{'state':>7} {'pickle.dump s':>13} {'write s':>8} {'blake3 s':>9} {'overl. pool s':>13} "
            f"{'overl. 1 thread s':>17} "
            f"{'floor ratio':>11} {'txgit commit s':>14} {'txgit / floor':>13} {'walk s':>7} {'created':>7} "
            f"{'create ms':>9}")
    print(head)
    print("-" * len(head))
    for size, row in results["states"].items():
        f, t = row["floor"], row["txgit"]
        dump = min(f["pickle_dump"], row["pickle"]["commit_s"])  # every pickle.dump of this state in the run
        print(f"{size:>7} {dump:>13.3f} {f['write']:>8.3f} {f['hash']:>9.3f} {f['overlapped_pool']:>13.3f} "
              f"{f['overlapped_one']:>17.3f} "
              f"{_ratio(f['overlapped'], dump):>11} {t['commit_s']:>14.3f} "
              f"{_ratio(t['commit_s'], f['overlapped']):>13} {f['walk']:>7.3f} {t['created']:>7} "
              f"{f['create'] * 1e3:>9.3f}")


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
