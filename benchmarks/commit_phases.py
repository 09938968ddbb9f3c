"""Where a notebook's commits spend their time, phase by phase, and in which thread or process.

    nice -n 10 .venv/bin/python benchmarks/commit_phases.py 02.02-The-Basics [--reps 3]

Runs one corpus notebook's cells (see ``bench_notebooks.py``; a substring of its name picks it) in an
IPython shell in this process, without and with ``%load_ext txgit``, interleaved ``--reps`` times,
and reports per configuration the cells' wall time, the CPU of the main thread, the CPU of the git
helper process (:mod:`txgit.gitwriter`; its start included) and, per phase of the commits, calls,
wall and thread CPU in ms, split by thread ("main": the cells and txgit's hooks; "bg": the
background writer). ``TXGIT_BACKGROUND_COMMITS=0`` writes every commit in the main thread (the whole
commit's cost before the cell returns); ``TXGIT_GIT_HELPER=0`` writes git objects in the writer
thread. No kernel: the messaging a real kernel adds is not here (bench_notebooks.py measures that).

The phases are found by wrapping txgit's functions with timers in this process only; a phase's
time includes the phases under it (indented).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

PHASES = [  # (module, owner, attribute, label)
    ("txgit.sessions.session", "NamespaceSession", "before_cell", "hook: before_cell"),
    ("txgit.sessions.session", "NamespaceSession", "after_cell", "hook: after_cell"),
    ("txgit.sessions.session", "NamespaceSession", "_settle_quiet_cell", "  settle a quiet cell"),
    ("txgit.sessions.session", "NamespaceSession", "flush", "  wait for the writer (flush)"),
    ("txgit.sessions.session", "_Writer", "extend", "  chain onto the writer (waits while 4 are queued)"),
    ("txgit.repository", "Repository", "prepare_commit", "  prepare_commit (serialize)"),
    ("txgit.repository", "Repository", "finish_commit", "finish_commit"),
    ("txgit.storage", "ObjectStore", "put_named", "  blobs into the object store"),
    ("txgit.history", "History", "_tree_files", "  records and meta.json"),
    ("txgit.gitwriter", "GitWriter", "commit", "  git objects + ref, in the helper (wait)"),
    ("txgit.history", "History", "write_state", "  git objects + ref, in this process"),
    ("txgit.history", "", "commit_files", "    libgit2: objects (loose files) + ref"),
    ("txgit.repository", "Repository", "_pack_loose_now_and_then", "  small-blob packing check"),
    ("txgit.history", "History", "_after_commit", "  git packer check"),
    ("txgit.history", "History", "clear_stale_locks", "clear stale git locks"),
]


def _wrap(stats: dict, main: int, owner: type, attr: str, label: str) -> None:
    f = getattr(owner, attr)

    @functools.wraps(f)
    def timed(*args, **kwargs):
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return f(*args, **kwargs)
        finally:
            who = "main" if threading.get_ident() == main else "bg"
            s = stats.setdefault((who, label), [0, 0.0, 0.0])
            s[0] += 1
            s[1] += time.perf_counter() - wall
            s[2] += time.thread_time() - cpu

    setattr(owner, attr, timed)


def _process_cpu(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(name: str, config: str) -> dict:
    """Run the notebook once in this process ("baseline" or "txgit")."""
    sys.path.insert(0, str(HERE))
    import bench_notebooks as bn

    nb = next(n for n in bn.load_corpus() if name in n.name)
    source = bn.materialize(nb, bn.default_corpus_dir(), bn.default_mirrors())
    cells = [code for _, code in sorted(bn.code_cells(nb, source).items())]
    folder = Path(tempfile.mkdtemp(prefix="txgit-phases-"))
    shutil.copytree(source, folder, dirs_exist_ok=True)
    os.chdir(folder)
    os.environ["MPLBACKEND"] = "agg"
    stats: dict = {}
    if config == "txgit":
        import importlib

        for module, owner, attr, label in PHASES:
            where = importlib.import_module(module)
            _wrap(stats, threading.get_ident(), getattr(where, owner) if owner else where, attr, label)
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    if config == "txgit":
        shell.run_line_magic("load_ext", "txgit")
    shell.run_cell("pass")
    wall, cpu = 0.0, time.thread_time()
    for code in cells:
        with contextlib.redirect_stdout(io.StringIO()):
            started = time.perf_counter()
            shell.run_cell(code)
            wall += time.perf_counter() - started
    cpu = time.thread_time() - cpu
    out = {"config": config, "cells": len(cells), "wall_s": round(wall, 4), "main_cpu_s": round(cpu, 4)}
    if config == "txgit":
        from txgit.sessions.session import _sessions

        session = next(iter(_sessions.values()))
        started = time.perf_counter()
        session.flush()
        out["drain_s"] = round(time.perf_counter() - started, 4)
        out["commits"] = len(session.workspace.log())
        git = session._git
        out["helper_cpu_s"] = _process_cpu(git.pid) if git is not None and git.pid else None
        out["phases"] = {f"{who}: {label}": [n, round(w * 1e3, 2), round(c * 1e3, 2)]
                         for (who, label), (n, w, c) in sorted(stats.items(), key=lambda kv: (kv[0][0] != "main", kv[0][1].strip()))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", help="a substring of the corpus notebook's name")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--one", choices=["baseline", "txgit"], help=argparse.SUPPRESS)  # a child run
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.notebook, args.one)))
        return
    for rep in range(args.reps):
        for config in ("baseline", "txgit"):  # each in a fresh process: imports and the shell are fresh
            done = subprocess.run([sys.executable, __file__, args.notebook, "--one", config],
                                  capture_output=True, text=True)
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            if done.returncode != 0 or not lines:
                print(f"{config}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
                sys.exit(1)
            run = json.loads(lines[-1])
            phases = run.pop("phases", {})
            print(f"rep {rep + 1} " + " ".join(f"{k}={v}" for k, v in run.items()))
            if phases:
                commits = max(run.get("commits") or 1, 1)
                print(f"  {'phase':55s} {'calls':>5s} {'wall ms':>8s} {'cpu ms':>8s} {'cpu ms/commit':>13s}")
                for label, (n, w, c) in phases.items():
                    print(f"  {label:55s} {n:5d} {w:8.1f} {c:8.1f} {c / commits:13.2f}")


if __name__ == "__main__":
    main()
