"""Packed git history: 10,000 cell commits with and without packing, side by side.

    python benchmarks/run.py history [--quick]

Each configuration runs the same scripted notebook in a fresh workspace through the API a kernel
uses: a :class:`txgit.sessions.NamespaceSession` with its background writer and git helper process,
``before_cell`` / exec / ``after_cell`` per cell. A cell changes a small state (a counter, a short
list, a dict entry, a string). ``packing``: the history as txgit keeps it (a background packer
started past :data:`txgit.gitpack.LOOSE_LIMIT` loose objects); ``loose``: automatic packing off
(every git object a file of its own, as before). Reported per configuration:

* ``git count-objects -v``-style numbers at the end (after the last packer finished): loose objects,
  packs, objects in packs, their bytes, and the most loose objects seen at any of the checkpoints;
* repository bytes per cell commit (``repo.git``: the files' sizes, and what they occupy on disk,
  which for tiny loose objects is a 4 KiB block each); the blob store's files and disk bytes (its small
  loose blobs are packed past :data:`txgit.repository.LOOSE_BLOB_LIMIT` in ``packing``, never in ``loose``);
* hook time per cell (before_cell + after_cell: what a cell waits for), median / p99 / max, and the
  hook time of the cells right after a packer was started (those it could stall); the time of
  starting a packer itself (in the writer thread, not a cell); wall time of all cells plus drain.
* reading: ``log`` of the whole history and a load of the first commit's state, on the result;
* the records' git cost apart: the git objects and bytes of a first commit of N small variables
  and of a commit changing one of them (N = 4, 30, 100, 1,000; what the storage format decides).

The two configurations alternate in blocks of cells in one process, so machine noise hits both.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from txgit import Workspace, gitpack  # noqa: E402
from txgit.sessions import NamespaceSession  # noqa: E402

CELLS = ["x = {i}",
         "items = list(range({i} % 50))",
         "config['step'] = {i}",
         "label = 'run ' + str(x)"]


def _disk_bytes(folder: Path) -> tuple[int, int]:
    """(bytes in files, bytes they occupy on disk) under ``folder``."""
    size = used = 0
    for dirpath, _, files in os.walk(folder):
        for f in files:
            try:
                st = os.stat(os.path.join(dirpath, f))
            except FileNotFoundError:
                continue
            size += st.st_size
            used += st.st_blocks * 512
    return size, used


class Run:
    """One configuration: a workspace and a session committing after every cell."""

    def __init__(self, root: Path, packing: bool) -> None:
        self.ws = Workspace.init(root)
        self.ws.history.auto_pack = packing
        self.ws.auto_pack_blobs = packing  # the small blobs' packing too: 'loose' is the store as it was
        ns = {"__name__": "__main__", "__builtins__": __builtins__}
        self.session = NamespaceSession(self.ws, ns, kind="bench")
        self.session.background = True
        self.session.start_writer()
        exec("config = {}", ns)
        self.hooks: list[float] = []
        self.after_pack: list[float] = []
        self.packers_started = 0
        self.max_loose = 0
        self.cells = 0

    def cell(self, i: int) -> None:
        code = CELLS[i % len(CELLS)].format(i=i)
        t0 = time.perf_counter()
        self.session.before_cell(code)
        t1 = time.perf_counter()
        exec(code, self.session.namespace)
        t2 = time.perf_counter()
        self.session.after_cell()
        t3 = time.perf_counter()
        self.hooks.append((t1 - t0) + (t3 - t2))
        self.cells += 1


def main(quick: bool = False) -> dict:
    n_cells = 1_000 if quick else 10_000
    block = 250
    spawn_times: list[float] = []
    real_start = gitpack.start_background

    def timed_start(repo_path: str) -> int | None:  # the real start, timed (it runs in the writer thread)
        t = time.perf_counter()
        pid = real_start(repo_path)
        spawn_times.append(time.perf_counter() - t)
        return pid

    gitpack.start_background = timed_start
    # TXGIT_BENCH_TMP: where the workspaces go (the file system matters: see docs/performance.md)
    tmp = Path(tempfile.mkdtemp(prefix="txgit-bench-history-", dir=os.environ.get("TXGIT_BENCH_TMP")))
    try:
        runs = {"packing": Run(tmp / "packing", True), "loose": Run(tmp / "loose", False)}
        walls = dict.fromkeys(runs, 0.0)
        pids_seen: dict[str, set[int]] = {k: set() for k in runs}
        for start in range(0, n_cells, block):
            for name, run in runs.items():
                t = time.perf_counter()
                for i in range(start, min(start + block, n_cells)):
                    before = run.ws.history._packer
                    run.cell(i)
                    now = run.ws.history._packer
                    if now is not None and now != before and now not in pids_seen[name]:
                        pids_seen[name].add(now)
                        run.packers_started += 1
                        # the next cell is the one a just-started packer could stall
                        j = i + 1
                        if j < min(start + block, n_cells):
                            before2 = len(run.hooks)
                            run.cell(j)
                            run.after_pack.append(run.hooks[before2])
                walls[name] += time.perf_counter() - t
                run.max_loose = max(run.max_loose, run.ws.history.count_objects().loose)
        out: dict = {"cells": n_cells}
        rows = []
        for name, run in runs.items():
            t = time.perf_counter()
            run.session.flush()
            run.session.close()
            walls[name] += time.perf_counter() - t  # the drain: what was still being written
            t = time.perf_counter()
            if run.ws.history._packer is not None:  # the last packer still at work: its catch-up, timed apart
                try:
                    os.waitpid(run.ws.history._packer, 0)
                except ChildProcessError:
                    pass
            pack_drain = time.perf_counter() - t
            counts = run.ws.history.count_objects()
            commits = len(run.ws.log())
            size, used = _disk_bytes(run.ws.dir / "repo.git")
            blob_files = sum(1 for p in (run.ws.dir / "objects").rglob("*") if p.is_file())
            _, blob_used = _disk_bytes(run.ws.dir / "objects")
            t = time.perf_counter()
            fresh = Workspace.open(run.ws.root)
            n_log = len(fresh.log())
            log_s = time.perf_counter() - t
            first = fresh.log()[-1].id
            t = time.perf_counter()
            fresh.checkout(first, {"__name__": "__main__"}, move_head=False)
            load_s = time.perf_counter() - t
            assert n_log == commits
            hooks = sorted(run.hooks)
            row = {
                "commits": commits,
                "loose_objects": counts.loose, "packs": counts.packs, "packed_objects": counts.packed,
                "max_loose_seen": max(run.max_loose, counts.loose),
                "loose_bytes": counts.loose_bytes, "pack_bytes": counts.pack_bytes,
                "repo_bytes": size, "repo_disk_bytes": used,
                "bytes_per_commit": round(size / commits, 1), "disk_bytes_per_commit": round(used / commits, 1),
                "blob_store_files": blob_files, "blob_store_disk_bytes": blob_used,
                "hook_ms_median": round(statistics.median(hooks) * 1e3, 3),
                "hook_ms_p99": round(hooks[int(0.99 * (len(hooks) - 1))] * 1e3, 3),
                "hook_ms_max": round(hooks[-1] * 1e3, 3),
                "hook_ms_after_pack_start_max": round(max(run.after_pack) * 1e3, 3) if run.after_pack else None,
                "packers_started": run.packers_started,
                "wall_ms_per_commit": round(walls[name] / n_cells * 1e3, 3),
                "last_packer_s": round(pack_drain, 3),
                "log_s": round(log_s, 3), "checkout_first_s": round(load_s, 3),
            }
            out[name] = row
            rows.append((name, row))
        out["packer_start_ms_max"] = round(max(spawn_times) * 1e3, 3) if spawn_times else None
        print(f"\n{n_cells} cell commits (a NamespaceSession with its background writer, as in a kernel), in {tmp}")
        out["folder"] = str(tmp)
        keys = ["commits", "loose_objects", "max_loose_seen", "packs", "packed_objects", "repo_bytes",
                "repo_disk_bytes", "bytes_per_commit", "disk_bytes_per_commit", "blob_store_files",
                "blob_store_disk_bytes", "wall_ms_per_commit", "last_packer_s",
                "hook_ms_median", "hook_ms_p99", "hook_ms_max", "hook_ms_after_pack_start_max",
                "packers_started", "log_s", "checkout_first_s"]
        print(f"{'':32}" + "".join(f"{name:>14}" for name, _ in rows))
        for k in keys:
            print(f"{k:32}" + "".join(f"{str(row[k]):>14}" for _, row in rows))
        print(f"starting a packer (writer thread, not a cell): max {out['packer_start_ms_max']} ms "
              f"over {len(spawn_times)} starts")
        out["records"] = _records_cost(tmp / "records")
        return out
    finally:
        gitpack.start_background = real_start
        shutil.rmtree(tmp, ignore_errors=True)


def _records_cost(folder: Path, sizes: tuple[int, ...] = (4, 30, 100, 1000), changes: int = 20) -> list[dict]:
    """Git objects and bytes (loose, zlib'd, as git stores them) that a state's records cost: a first
    commit of N small variables, then ``changes`` commits that each change one of them."""
    rows = []
    for n in sizes:
        ws = Workspace.init(folder / f"n{n}")
        ws.history.auto_pack = False  # loose: every object a file we can count and size
        objects = Path(ws.history.repo.path) / "objects"

        def loose() -> dict[Path, int]:
            return {p: p.stat().st_size for p in objects.glob("??/*")}

        ns: dict = {"__name__": "__main__"}
        ns.update({f"v{i}": {"id": i, "name": f"row-{i}"} for i in range(n)})
        ws.commit(ns, "first")
        first = before = loose()
        counts, sizes_ = [], []
        for k in range(changes):
            name = f"v{(k * 7) % n}"
            ns[name] = {"id": -k}
            ws.commit(ns, f"change {name}", names={name})
            now = loose()
            counts.append(len(now) - len(before))
            sizes_.append(sum(s for p, s in now.items() if p not in before))
            before = now
        rows.append({"variables": n, "first_objects": len(first), "first_bytes": sum(first.values()),
                     "change_objects": round(statistics.mean(counts), 1),
                     "change_bytes": round(statistics.mean(sizes_))})
    print(f"\nthe records' git cost (format {_format()}): a first commit of N small variables, then a commit "
          f"changing one of them ({changes} times; loose objects, zlib'd)")
    print(f"{'variables':>9} {'first: objects':>15} {'bytes':>9} {'one change: objects':>20} {'bytes':>8}")
    for r in rows:
        print(f"{r['variables']:>9} {r['first_objects']:>15} {r['first_bytes']:>9} {r['change_objects']:>20} "
              f"{r['change_bytes']:>8}")
    return rows


def _format() -> int:
    from txgit._version import FORMAT_VERSION

    return FORMAT_VERSION


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
