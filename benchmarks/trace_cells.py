"""Where a small cell's wall time goes, phase by phase, in a real kernel driven as "Run All" drives it.

    nice -n 5 .venv/bin/python benchmarks/trace_cells.py --reps 3 03.05-Hierarchical 02.02-The-Basics

Runs each chosen corpus notebook as ``bench_notebooks.run_notebook`` does (a fresh kernel and folder,
the next cell sent as soon as the previous one is idle), baseline and txgit alternated per rep, and
timestamps each cell on one clock (``time.perf_counter``: CLOCK_MONOTONIC, the same in both processes):
in the client, when the execute_request is sent and when its IOPub messages and reply arrive; in the
kernel (probes installed by a silent cell before ``%load_ext``, and IPython callbacks registered before
and after txgit's), when the main thread dispatches the request, runs the pre_run_cell callbacks, the
cell, the post_run_cell callbacks, ends ``do_execute``, sends the reply and the idle status; and the
cyclic collector's passes. Prints per phase the ms summed over the cells (per cell its fastest rep, as
the benchmarks' ratios take it) and, beside each, the ms a cell over the baseline; and the IOPub
messages a run brings.

``--config NAME:VAR=VALUE`` adds txgit with an environment variable set in its kernel
(``--config before:PYTHONPATH=/work/wt-base``: another checkout's txgit);
``--setup NAME:CODE`` adds txgit with CODE run silently after ``%load_ext`` (a scratch change to try,
e.g. ``--setup sw:import\\ sys;sys.setswitchinterval(0.0005)``).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_notebooks as bn  # noqa: E402  (sets PYTHONPATH to this checkout for the kernels)

# Probes in the kernel, installed before %load_ext (so their pre/post callbacks run before txgit's).
# (closures, not globals: nothing is left in the user's namespace for txgit to see, and shutdown clearing
# that namespace does not break them)
PROBES = r'''
def _install():
    import sys, time
    from IPython import get_ipython
    ip = get_ipython()
    k = ip.kernel
    marks = sys._trace_marks = []
    pc = time.perf_counter
    ip.events.register("pre_run_cell", lambda info: marks.append(("pre0", pc())))
    ip.events.register("post_run_cell", lambda r: marks.append(("post0", pc())))
    send = k.session.send
    def traced_send(stream, kind, *a, **kw):
        if kind == "execute_reply":
            marks.append(("reply", pc()))
        elif kind == "status" and a and a[0].get("execution_state") == "idle":
            marks.append(("idle", pc()))
        return send(stream, kind, *a, **kw)
    k.session.send = traced_send
    dispatch = k.dispatch_shell
    async def traced_dispatch(msg, *a, **kw):
        marks.append(("dispatch", pc()))
        return await dispatch(msg, *a, **kw)
    k.dispatch_shell = traced_dispatch
    do_execute = k.do_execute
    async def traced_do_execute(*a, **kw):
        try:
            return await do_execute(*a, **kw)
        finally:
            marks.append(("executed", pc()))
    k.do_execute = traced_do_execute
    import gc
    started = [0.0]
    def collected(phase, info):  # the cyclic collector's passes, timed: ("gc2", seconds)
        if phase == "start":
            started[0] = pc()
        else:
            marks.append((f"gc{info['generation']}", pc() - started[0]))
    gc.callbacks.append(collected)
_install()
del _install
'''

# After %load_ext: callbacks that run after txgit's.
PROBES_LAST = r'''
def _install():
    import sys, time
    from IPython import get_ipython
    marks, pc = sys._trace_marks, time.perf_counter
    get_ipython().events.register("pre_run_cell", lambda info: marks.append(("pre1", pc())))
    get_ipython().events.register("post_run_cell", lambda r: marks.append(("post1", pc())))
_install()
del _install
'''

KERNEL_PHASES = [("dispatch", "pre0", "request to IPython's pre_run_cell"),
                 ("pre0", "pre1", "txgit's pre_run_cell"),
                 ("pre1", "post0", "the cell (and IPython around it)"),
                 ("post0", "post1", "txgit's post_run_cell"),
                 ("post1", "executed", "rest of do_execute"),
                 ("executed", "reply", "stdout/stderr flush, reply built"),
                 ("reply", "idle", "reply sent to idle sent")]


def timed_run(k, code: str, timeout: float = 600) -> dict:
    """``Kernel.run`` (settle=False) with client-side timestamps: sent, first busy, idle, reply."""
    kc = k.kc
    marks = {"sent": time.perf_counter()}
    msg_id = kc.execute(code)
    kinds: dict[str, int] = {}
    status = "ok"
    while True:
        try:
            msg = kc.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(code) from None
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        t, c = msg["msg_type"], msg["content"]
        kinds[t] = kinds.get(t, 0) + 1
        if t == "error":
            status = "error"
        if t == "status" and c["execution_state"] == "busy":
            marks["c_busy"] = time.perf_counter()
        if t == "status" and c["execution_state"] == "idle":
            marks["c_idle"] = time.perf_counter()
            break
    while True:
        reply = kc.get_shell_msg(timeout=timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    marks["c_reply"] = time.perf_counter()
    return {"marks": marks, "kinds": kinds, "status": status}


def _silent(k, code: str) -> None:
    """Run ``code`` as a silent cell (no history, no txgit hooks) and check that it ran."""
    msg_id = k.kc.execute(code, silent=True, store_history=False)
    while True:
        reply = k.kc.get_shell_msg(timeout=60)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    if reply["content"]["status"] != "ok":
        raise AssertionError(f"{reply['content'].get('ename')}: {reply['content'].get('evalue')}\n{code}")


def run(cells: list[str], files: Path, txgit: bool, setup: str = "") -> dict:
    from kernelutil import Kernel, silent_eval, silent_json

    folder = bn._fresh_folder(files)
    k = Kernel(folder, env=dict(bn.KERNEL_ENV))
    try:
        silent_eval(k, "None")
        _silent(k, PROBES)
        if txgit:
            k.ok("%load_ext txgit")
            if setup:
                _silent(k, setup)
        _silent(k, PROBES_LAST)
        k.ok("pass")
        silent_eval(k, "__import__('sys')._trace_marks.clear() or 0")
        client = []
        for code in cells:
            r = timed_run(k, code)
            if r["status"] != "ok":
                return {"failed": code[:80]}
            client.append(r)
        drain = 0.0
        if txgit:
            drain = silent_json(k, "(lambda s, pc: -pc() + (s.flush(), pc())[1])(__import__('txgit.sessions.ipython')"
                                   ".sessions.ipython.active().session, __import__('time').perf_counter)")
        marks = silent_json(k, "__import__('sys')._trace_marks")
    finally:
        k.shutdown()
        bn._remove_run_folder(folder)
    # the kernel's marks, cell by cell: each cell's begin with its dispatch (the silent cells after the
    # last one add dispatches only)
    per_cell: list[dict[str, float]] = []
    for label, t in marks:
        if label == "dispatch":
            per_cell.append({})
        if per_cell and label.startswith("gc"):
            per_cell[-1][label] = per_cell[-1].get(label, 0.0) + t
        elif per_cell and label not in per_cell[-1]:
            per_cell[-1][label] = t
    for c, kern in zip(client, per_cell):
        c["marks"].update(kern)
    return {"cells": client, "drain": drain}


def phases(cell: dict) -> dict[str, float]:
    m = cell["marks"]
    out = {"client: sent to dispatched": m["dispatch"] - m["sent"]}
    for a, b, name in KERNEL_PHASES:
        if a in m and b in m:
            out[name] = m[b] - m[a]
    out["idle sent to client has it"] = m["c_idle"] - m["idle"]
    out["client: idle to reply"] = max(0.0, m["c_reply"] - m["c_idle"])
    out["total (client sent to reply)"] = m["c_reply"] - m["sent"]
    for gen in range(3):
        out[f"garbage collector, generation {gen}"] = m.get(f"gc{gen}", 0.0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--config", action="append", default=[], help="NAME:VAR=VALUE")
    parser.add_argument("--setup", action="append", default=[], help="NAME:CODE")
    parser.add_argument("--skip", type=int, default=1, help="leave out the first cells (the imports)")
    parser.add_argument("--out")
    args = parser.parse_args()
    configs: dict[str, tuple[dict[str, str], str, bool]] = {"baseline": ({}, "", False), "txgit": ({}, "", True)}
    for spec in args.config:
        name, pair = spec.split(":", 1)
        var, value = pair.split("=", 1)
        configs[name] = ({var: value}, "", True)
    for spec in args.setup:
        name, code = spec.split(":", 1)
        configs[name] = ({}, code, True)
    chosen = [n for n in bn.load_corpus() if any(s in n.name for s in args.notebooks)]
    results: dict[str, dict[str, list[dict]]] = {}
    for rep in range(args.reps):
        for nb in chosen:
            folder = bn.materialize(nb, bn.default_corpus_dir(), bn.default_mirrors())
            cells = list(bn.code_cells(nb, folder).values())
            for name, (env, setup, txgit) in configs.items():
                saved = {v: os.environ.get(v) for v in env}
                os.environ.update(env)
                try:
                    r = run(cells, folder / "files", txgit, setup)
                finally:
                    for v, old in saved.items():
                        if old is None:
                            os.environ.pop(v, None)
                        else:
                            os.environ[v] = old
                if r.get("failed"):
                    print(f"{nb.name} {name}: failed at {r['failed']!r}", file=sys.stderr)
                    sys.exit(1)
                results.setdefault(nb.name, {}).setdefault(name, []).append(r)
                total = sum(c["marks"]["c_reply"] - c["marks"]["sent"] for c in r["cells"])
                print(f"rep {rep + 1} {nb.name[:40]} {name}: {total:.3f} s + drain {r['drain'] * 1e3:.0f} ms "
                      f"(load {os.getloadavg()[0]:.2f})", file=sys.stderr, flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results))
    for nb, by in results.items():
        report(nb, by, args.skip)


def report(nb: str, by: dict[str, list[dict]], skip: int) -> None:
    """Per configuration, each phase summed over the cells from ``skip`` on, taking for each cell the rep
    whose cell was fastest (as the benchmarks' ratios do); beside it, ms a cell over the baseline."""
    sums: dict[str, dict[str, float]] = {}
    cells = len(next(iter(by.values()))[0]["cells"]) - skip
    for name, rs in by.items():
        acc: dict[str, float] = {}
        for i in range(skip, skip + cells):
            best = min((r["cells"][i] for r in rs), key=lambda c: c["marks"]["c_reply"] - c["marks"]["sent"])
            for ph, v in phases(best).items():
                acc[ph] = acc.get(ph, 0.0) + v * 1e3
        acc["drain (after the last cell)"] = min(r["drain"] for r in rs) * 1e3
        sums[name] = acc
    print(f"\n{nb}: ms summed over cells {skip}+ ({cells} cells), per cell the fastest of {len(rs)} reps "
          "[ms a cell over the baseline]")
    print(f"{'phase':40s}" + "".join(f"{n:>20s}" for n in by))
    for ph in sums["baseline"]:
        print(f"{ph:40s}" + "".join(f"{sums[n].get(ph, 0.0):9.1f} [{(sums[n].get(ph, 0.0) - sums['baseline'][ph]) / cells:+6.2f}]"
                                    for n in by))
    for name, rs in by.items():
        kinds: dict[str, int] = {}
        for r in rs:
            for c in r["cells"]:
                for t, n in c["kinds"].items():
                    kinds[t] = kinds.get(t, 0) + n
        print(f"  IOPub messages a run, {name}: " + ", ".join(f"{t} {n / len(rs):.0f}" for t, n in sorted(kinds.items())))

if __name__ == "__main__":
    main()
