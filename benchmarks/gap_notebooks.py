"""Where the seconds txgit adds to corpus notebooks go, per notebook, in real kernels.

    nice -n 5 .venv/bin/python benchmarks/gap_notebooks.py [--reps 1] [--out FILE] [NOTEBOOK ...]

Runs each chosen corpus notebook (all by default; a substring of the name picks) as
``bench_notebooks.run_notebook`` does ("Run All" in a fresh kernel and folder), baseline then txgit,
``--reps`` times, and reads, outside the cells' timing, the kernel's CPU from ``/proc``: its main
thread (the cells and txgit's hooks), its other threads together (IOPub, heartbeat, control, txgit's
background writer), and its child processes (txgit's git helper, its start included). In the txgit
kernel, txgit's two IPython callbacks are wrapped with timers (wall and the main thread's CPU).

Per notebook (the rep with the smaller added seconds): the baseline's seconds, txgit's added seconds
(cells + drain - baseline), and what they are: the hooks' wall time, the drain (commits still being
written after the last cell), the rest (the cells themselves ran longer: the writer thread and the
helper process took the GIL or a core from them, or IPython did more around them); and the CPU
seconds txgit added, by where they ran. Notebooks are ranked by added seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_notebooks as bn  # noqa: E402 (sets PYTHONPATH to this checkout for the kernels)

TICK = os.sysconf("SC_CLK_TCK")

# Wraps txgit's pre/post_run_cell callbacks with timers; run once (silently, no name left in the
# user's namespace) after ``%load_ext txgit``.
WRAP_HOOKS = r'''
import sys, time
from IPython import get_ipython
import txgit.sessions.ipython as ipy
ext = ipy.active()
acc = sys._txgit_gap = {"wall": 0.0, "cpu": 0.0}
def timed(f):
    def g(*a):
        w, c = time.perf_counter(), time.thread_time()
        try:
            return f(*a)
        finally:
            acc["wall"] += time.perf_counter() - w
            acc["cpu"] += time.thread_time() - c
    return g
events = get_ipython().events.callbacks
for name in ("pre_run_cell", "post_run_cell"):
    events[name] = [timed(f) if getattr(f, "__self__", None) is ext else f for f in events[name]]
'''

# Times the cyclic garbage collector (its pauses fall inside the cells): run in both kernels.
TIME_GC = r'''
import gc, sys, time
acc = sys._txgit_gap_gc = {"s": 0.0, "n": 0}
start = [0.0]
def timer(phase, info):
    if phase == "start":
        start[0] = time.perf_counter()
    else:
        acc["s"] += time.perf_counter() - start[0]
        acc["n"] += 1
gc.callbacks.append(timer)
'''


def _stat_cpu(pid: int, children: bool = False) -> float:
    """CPU seconds of process ``pid`` (all its threads, dead ones too; with ``children`` the waited-for
    children's as well)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if children else 0)
    return ticks / TICK


def _thread_cpu(pid: int, tid: int) -> float:
    try:
        return int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0]) / 1e9
    except OSError:
        return 0.0


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def cpu_sample(pid: int) -> dict[str, float]:
    """The kernel's CPU so far: main thread, whole process, children (alive ones, with theirs)."""
    kids = {c: _stat_cpu(c, children=True) for c in _children(pid)}
    return {"main": _thread_cpu(pid, pid), "process": _stat_cpu(pid), "children": sum(kids.values())}


def run_one(cells: list[str], files: Path, config: str) -> dict:
    from kernelutil import silent_exec, silent_json

    samples: dict[int, dict] = {}
    last = len(cells) - 1

    def after_cell(k, folder, i):  # outside the cells' timing
        if i == -1:
            silent_exec(k, f"exec({TIME_GC!r}, {{}})")
        if i == -1 and config == "txgit":
            silent_exec(k, f"exec({WRAP_HOOKS!r}, {{}})")
        if i in (-1, last):
            samples[i] = cpu_sample(k.pid)
        if i == last:
            samples["gc"] = silent_json(k, "__import__('sys')._txgit_gap_gc")
        if i == last and config == "txgit":
            samples["hooks"] = silent_json(k, "__import__('sys')._txgit_gap")

    run = bn.run_notebook(cells, files, config, after_cell=after_cell)
    if run.get("failed"):
        return run
    a, b = samples[-1], samples[last]
    out = {"cells_s": sum(run["times"]), "drain_s": run.get("drain", 0.0),
           "main_cpu": b["main"] - a["main"], "other_threads_cpu": (b["process"] - a["process"]) - (b["main"] - a["main"]),
           "helper_cpu": b["children"], "gc_s": samples["gc"]["s"], "gc_n": samples["gc"]["n"]}  # the helper's whole life: its start, during %load_ext, included
    if config == "txgit":
        out["hook_wall"], out["hook_cpu"] = samples["hooks"]["wall"], samples["hooks"]["cpu"]
        out["hook_list_s"] = sum(run["hooks"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="substrings of corpus notebooks' names (default: all)")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--out", help="every run as JSON")
    args = parser.parse_args()
    chosen = [n for n in bn.load_corpus() if not args.notebooks or any(s in n.name for s in args.notebooks)]
    rows: dict[str, list[dict]] = {}
    for rep in range(args.reps):
        for nb in chosen:
            folder = bn.materialize(nb, bn.default_corpus_dir(), bn.default_mirrors())
            cells = list(bn.code_cells(nb, folder).values())
            base = run_one(cells, folder / "files", "baseline")
            tx = run_one(cells, folder / "files", "txgit")
            if base.get("failed") or tx.get("failed"):
                print(f"gap: {nb.name}: {base.get('failed') or tx.get('failed')}", file=sys.stderr)
                continue
            rows.setdefault(nb.name, []).append({"cells": len(cells), "baseline": base, "txgit": tx})
            added = tx["cells_s"] + tx["drain_s"] - base["cells_s"]
            print(f"rep {rep + 1} {nb.name[:40]}: +{added:.3f} s", file=sys.stderr, flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    report(rows)


def report(rows: dict[str, list[dict]]) -> None:
    table = []
    for name, runs in rows.items():
        def added(r):
            return r["txgit"]["cells_s"] + r["txgit"]["drain_s"] - r["baseline"]["cells_s"]
        r = min(runs, key=added)
        b, t = r["baseline"], r["txgit"]
        table.append({
            "name": name, "cells": r["cells"], "base": b["cells_s"], "added": added(r),
            "hooks": t["hook_wall"], "drain": t["drain_s"],
            "rest": added(r) - t["hook_wall"] - t["drain_s"],
            "hook_cpu": t["hook_cpu"],
            "main_cpu_rest": (t["main_cpu"] - t["hook_cpu"]) - b["main_cpu"],
            "threads_cpu": t["other_threads_cpu"] - b["other_threads_cpu"],
            "helper_cpu": t["helper_cpu"] - b["helper_cpu"],
            "gc": t.get("gc_s", 0.0) - b.get("gc_s", 0.0),
        })
    table.sort(key=lambda x: -x["added"])
    cols = ["cells", "base", "added", "hooks", "drain", "rest", "hook_cpu", "main_cpu_rest", "threads_cpu", "helper_cpu", "gc"]
    print("seconds; added = txgit's cells + drain - baseline's cells; hooks = txgit's callbacks' wall time;"
          " rest = added - hooks - drain; *_cpu = CPU seconds txgit added: in its hooks, on the main thread outside"
          " them, on the kernel's other threads (writer, IOPub), in the git helper process (its start included); gc = the cyclic collector's added seconds (inside hooks or cells)")
    print(f"{'notebook':40s} " + " ".join(f"{c:>13s}" for c in cols))
    total = dict.fromkeys(cols, 0.0)
    for x in table:
        print(f"{x['name'][:40]:40s} " + " ".join(f"{x[c]:13.3f}" if c != "cells" else f"{x[c]:13d}" for c in cols))
        for c in cols:
            total[c] += x[c]
    print(f"{'all':40s} " + " ".join(f"{total[c]:13.3f}" if c != "cells" else f"{int(total[c]):13d}" for c in cols))


if __name__ == "__main__":
    main()
