"""Bytes stored after every cell of real notebooks: txgit's workspace vs Kishu's checkpoint database.

The notebooks are bench_notebooks.py's corpus (public notebooks nobody here wrote, materialized the
same way, with the same skips and patches); by default the six that bench_notebooks runs Kishu on
(``--notebooks N``: N spread over the corpus; ``--all``; ``--only LABEL ...``). Each notebook runs in
the same benchmark run twice, cell by cell, each time in a fresh real ipykernel in a fresh folder
(bench_notebooks.run_notebook, the driver both benchmarks share):

- txgit: ``%load_ext txgit`` first (a new workspace). After each cell the session's background
  commit is waited for (``session.flush()``, sent as a silent request, so no cell and no hook), then
  ``.txgit/`` is measured: the blob store (loose blobs and packs, ``objects/``), the git repository
  (``repo.git/``) and the rest (lock, kernel records).
- Kishu (``init_kishu()``, as bench_session.py and bench_notebooks.py run it, nothing patched). Kishu
  checkpoints inside its post-cell hook, so when the cell is idle its commit is in the database.
  Measured: ``notebook.kishudb`` (with any ``-wal``/``-journal`` beside it) and Kishu's ``.kishu/``
  folder. The notebook file itself is not counted (both tools need it alike).

Bytes are counted as ``du`` counts them, over every file and folder, each inode once: allocated
blocks (``du -s -B1``, what plain ``du`` prints: the disk a user loses; the headline) and apparent
size (``du -sb``: file sizes, and every folder's own size, 4 KiB on ext4 however empty). Beside
them "files": the bytes the regular files hold, folders left out, which is what an archive or an
upload carries. A store of many small files pays at least a block per file and per fan-out folder;
the gap between "files" and the du numbers is that overhead.

What the bytes are, printed for notebooks where txgit stores more: git by top-level path (and the
cells' displayed outputs inside ``code/cells.json``), the blob store by variable; and, read from
Kishu's database, its variable snapshots that have no bytes in it ("K unstored": Kishu's profiler
set them aside and a checkout would re-run their cells), so a small database is not mistaken for
values stored more compactly.

Before the first cell, after the warm-up cell, each folder is measured too ("start"); after the
last cell txgit's is measured once more after ``Workspace.gc()`` (``txgit gc``: nothing is
deleted, as every blob is reachable or young, and the git history is packed), "after_gc".

    python benchmarks/run.py storage [--quick]
    python benchmarks/bench_storage.py [--quick] [--notebooks N | --all] [--only LABEL ...] [--no-kishu]
        [--corpus FILE] [--corpus-dir DIR] [--mirrors DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_notebooks as nbb  # noqa: E402  (the corpus, materialization, the kernel driver)

DEFAULT_NOTEBOOKS = 6  # bench_notebooks' Kishu subset
KISHU_FILES = ("notebook.kishudb", "notebook.kishudb-wal", "notebook.kishudb-journal", "notebook.kishudb-shm", ".kishu")
MB = 1e6
MEASURES = ("allocated", "apparent", "files")  # the first is the headline


def disk_usage(paths: list[Path]) -> dict[str, int]:
    """What ``du -s -B1`` (allocated) and ``du -sb`` (apparent) count for ``paths`` together: every
    file, folder and link under them, hard links once; paths that do not exist count nothing. And
    "files": the sizes of the regular files alone."""
    seen: set[tuple[int, int]] = set()
    apparent = allocated = files = 0
    stack = [p for p in paths if os.path.lexists(p)]
    while stack:
        path = stack.pop()
        try:
            st = os.lstat(path)
        except FileNotFoundError:  # removed while we walked (a temp file renamed into place)
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        apparent += st.st_size
        allocated += st.st_blocks * 512
        if stat.S_ISREG(st.st_mode):
            files += st.st_size
        elif stat.S_ISDIR(st.st_mode):
            try:
                stack.extend(os.path.join(path, n) for n in os.listdir(path))
            except FileNotFoundError:
                continue
    return {"allocated": allocated, "apparent": apparent, "files": files}


def txgit_bytes(folder: Path) -> dict:
    """``.txgit/`` in all, and its parts: the blob store (loose blobs and packs) and the git repository."""
    root = folder / ".txgit"
    return {**disk_usage([root]), "blobs": disk_usage([root / "objects"]), "git": disk_usage([root / "repo.git"])}


def profile_txgit(folder: Path, top: int = 5) -> dict:
    """What txgit's bytes are, read from the workspace's git history as a user's ``git`` would read it:
    "git": the bytes (uncompressed, each object once) of commits, trees and the blobs under each
    top-level path of the commit trees (``records/``, or ``vars/`` and ``groups/`` in storage format 1;
    ``code/``, ``meta.json``), with
    ``displays``: the part of ``code/cells.json`` that is the cells' displayed outputs (kept so a
    reused cell shows them again); "variables": the blob-store bytes each variable's groups name,
    each chunk counted once for the first group that names it (chunk sizes are the stream's size
    split evenly over its chunks), the ``top`` largest. A record this cannot read is counted under
    its path and left out of "variables"."""
    import pygit2

    repo = pygit2.Repository(str(folder / ".txgit" / "repo.git"))
    git = {"commits": 0, "trees": 0, "displays": 0}
    variables: dict[str, float] = {}
    seen: set = set()
    chunks_seen: set[str] = set()
    def count_group(group: dict) -> None:
        for stream in group["streams"]:
            each = stream["size"] / max(1, len(stream["chunks"]))
            for chunk in stream["chunks"]:
                if chunk not in chunks_seen:
                    chunks_seen.add(chunk)
                    key = ", ".join(group["names"])
                    variables[key] = variables.get(key, 0) + each

    heads = [r.target for r in repo.references.objects if isinstance(r.target, pygit2.Oid)]
    for commit in repo.walk(heads[0], pygit2.enums.SortMode.TOPOLOGICAL) if heads else []:
        if commit.id in seen:
            continue
        seen.add(commit.id)
        git["commits"] += len(commit.read_raw())
        stack = [("", commit.tree)]
        while stack:
            top_name, tree = stack.pop()
            if tree.id in seen:
                continue
            seen.add(tree.id)
            git["trees"] += len(tree.read_raw())
            for entry in tree:
                part = top_name or entry.name
                if entry.type_str == "tree":
                    stack.append((part, repo[entry.id]))
                    continue
                if entry.id in seen:
                    continue
                seen.add(entry.id)
                data = repo[entry.id].read_raw()
                git[part] = git.get(part, 0) + len(data)
                try:
                    if part == "code" and entry.name == "cells.json":
                        cells = json.loads(data)
                        git["displays"] += sum(len(json.dumps((c.get("op") or {}).get("displays") or []))
                                               for c in cells if (c.get("op") or {}).get("displays"))
                    elif part == "groups":  # storage format 1: a file per group
                        count_group(json.loads(data))
                    elif part == "records":  # format 2: shards of lines, "g <JSON>" a group
                        for line in data.decode().splitlines():
                            if line.startswith("g "):
                                count_group(json.loads(line[2:]))
                except (ValueError, KeyError, TypeError, AttributeError):
                    pass  # another record format: its bytes stay counted under its path
    largest = sorted(variables.items(), key=lambda kv: -kv[1])[:top]
    return {"git": git, "variables": {k: round(v) for k, v in largest}}


def kishu_bytes(folder: Path) -> dict:
    return disk_usage([folder / name for name in KISHU_FILES])


def kishu_unstored(folder: Path) -> dict:
    """What Kishu did not store, from its own database: its graph lists every variable snapshot (a
    co-variable group at a version); the bytes of the ones it stored are rows of its
    ``variable_snapshot`` table. A snapshot (not a deletion) without a row has no bytes in the
    database: a checkout would re-run the cells that made it. So a small database can mean values
    left out, not values stored more compactly."""
    import sqlite3

    con = sqlite3.connect(folder / "notebook.kishudb")
    try:
        graph = con.execute("select versioned_name, deleted from ahg_variable_snapshot").fetchall()
        stored = {v for (v,) in con.execute("select versioned_name from variable_snapshot")}
    except sqlite3.Error as e:  # another Kishu version's schema: say so rather than guess
        return {"error": str(e)}
    finally:
        con.close()
    kept = [v for v, deleted in graph if not deleted]
    unstored = [v for v in kept if v not in stored]
    names = sorted({n for v in unstored for n in v.split(",")[1:]})
    return {"snapshots": len(kept), "unstored": len(unstored), "unstored_names": names}


def measured_run(cells: list[str], files: Path, config: str) -> dict:
    """One run of ``cells`` under ``config`` ("txgit" or "kishu"), the folder measured after the
    warm-up cell ("start") and after each cell ("per_cell"); or "failed" and how far it got."""
    from kernelutil import silent_exec

    series: list[dict] = []
    start: dict = {}
    after_gc: dict = {}
    profile: dict = {}
    unstored: dict = {}

    def after_cell(k, folder: Path, i: int) -> None:
        if config == "txgit":
            # the commit is written in the background: wait for it (a silent request runs no hook)
            silent_exec(k, f"{nbb.SESSION}.session.flush()", timeout=nbb.CELL_TIMEOUT)
            measured = txgit_bytes(folder)
        else:
            measured = kishu_bytes(folder)
        if i < 0:
            start.update(measured)
        else:
            series.append(measured)
        if config == "kishu" and i == len(cells) - 1:
            unstored.update(kishu_unstored(folder))
        if config == "txgit" and i == len(cells) - 1:
            from txgit import Workspace

            profile.update(profile_txgit(folder))
            Workspace.open(folder).gc()
            after_gc.update(txgit_bytes(folder))

    run = nbb.run_notebook(cells, files, config, after_cell=after_cell)
    out = {"start": start, "per_cell": series}
    if after_gc:
        out["after_gc"] = after_gc
    if profile:
        out["profile"] = profile
    if unstored:
        out["unstored"] = unstored
    if run.get("failed"):
        out["failed"] = run["failed"]
    if config == "txgit" and "commits" in run:
        out["commits"] = run["commits"]
    return out


def measure(nb: nbb.Notebook, numbered: dict[int, str], files: Path, kishu: bool) -> dict:
    """Both runs of one notebook, back to back; cells by their index among the notebook's code cells."""
    cells, numbers = list(numbered.values()), list(numbered)
    row: dict = {"label": nb.label, "repo": nb.repo, "path": nb.path, "cells": len(cells), "cell_numbers": numbers}
    row["txgit"] = measured_run(cells, files, "txgit")
    row["kishu"] = measured_run(cells, files, "kishu") if kishu else {"failed": "not run (kishu not installed or --no-kishu)"}
    for side in ("txgit", "kishu"):
        failed = row[side].get("failed")
        if failed and failed.startswith("cell "):  # "cell i: ..." of the run -> the notebook's numbering
            head, rest = failed.split(":", 1)
            row[side]["failed"] = f"cell {numbers[int(head.split()[1])]}:{rest}"
    if not row["txgit"].get("failed") and not row["kishu"].get("failed"):
        t, k = row["txgit"]["per_cell"][-1], row["kishu"]["per_cell"][-1]
        row["txgit_over_kishu"] = {m: round(t[m] / k[m], 3) for m in MEASURES}
    return row


def marks(n: int) -> list[int]:
    """The cells (0-based, in run order) the table shows: a quarter, half, three quarters and the last."""
    return sorted({max(0, round(n * q) - 1) for q in (0.25, 0.5, 0.75, 1.0)})


def summarize(rows: dict[str, dict]) -> dict:
    both = {n: r for n, r in rows.items() if "txgit_over_kishu" in r}
    out: dict = {"notebooks": len(rows), "with_kishu": len(both),
                 "txgit_failed": sorted(n for n, r in rows.items() if r["txgit"].get("failed"))}
    if both:
        for m in MEASURES:
            tx = sum(r["txgit"]["per_cell"][-1][m] for r in both.values())
            ki = sum(r["kishu"]["per_cell"][-1][m] for r in both.values())
            ratios = [r["txgit_over_kishu"][m] for r in both.values()]
            out[m] = {"txgit": tx, "kishu": ki, "txgit_over_kishu": round(tx / ki, 3),
                      "median_txgit_over_kishu": round(statistics.median(ratios), 3), "max_txgit_over_kishu": max(ratios)}
        gc = sum(r["txgit"]["after_gc"]["allocated"] for r in both.values())
        out["allocated"].update(txgit_after_gc=gc, after_gc_over_kishu=round(gc / out["allocated"]["kishu"], 3))
        out["cells"] = sum(r["cells"] for r in both.values())
    return out


def _mb(x: int | None) -> str:
    return "-" if x is None else f"{x / MB:.2f}"


def _unstored(kishu_run: dict) -> str:
    u = kishu_run.get("unstored") or {}
    if "unstored" not in u:
        return "-"
    names = ", ".join(u["unstored_names"][:4]) + (" ..." if len(u["unstored_names"]) > 4 else "")
    return f"{u['unstored']}/{u['snapshots']}" + (f" ({names})" if names else "")


def print_table(rows: dict[str, dict], summary: dict) -> None:
    print("MB (1e6 bytes) after the last cell. allocated = du -s -B1 (the headline), apparent = du -sb, files = the"
          " regular files' bytes alone; txgit = .txgit/ (git = repo.git/, blobs = objects/ incl. packs), after gc ="
          " allocated after `txgit gc`; Kishu = notebook.kishudb + .kishu/; t/K = txgit / Kishu; K unstored = Kishu's"
          " variable snapshots with no bytes in its database (a checkout re-runs their cells) / all of them")
    print(f"{'notebook':<40} {'cells':>5} {'commits':>7} | {'txgit':>6} {'git':>6} {'blobs':>6} {'Kishu':>6} {'t/K':>5}"
          f" | {'apparent t':>10} {'K':>6} {'t/K':>5} | {'files t':>7} {'K':>6} {'t/K':>5} | {'after gc':>8} {'t/K':>5} | K unstored")
    for name, r in rows.items():
        tx, ki = r["txgit"], r["kishu"]
        if tx.get("failed"):
            print(f"{name[:40]:<40} {r['cells']:>5} txgit failed: {tx['failed'][:120]}")
            continue
        t = tx["per_cell"][-1]
        k = {} if ki.get("failed") else ki["per_cell"][-1]
        ratio = r.get("txgit_over_kishu") or {}
        gc = tx["after_gc"]["allocated"]

        def cmp(m: str) -> str:
            return f"{_mb(t[m]):>6} {_mb(k.get(m)):>6} {ratio.get(m, '-'):>5}"

        print(f"{name[:40]:<40} {r['cells']:>5} {tx.get('commits', '-'):>7} | {_mb(t['allocated']):>6}"
              f" {_mb(t['git']['allocated']):>6} {_mb(t['blobs']['allocated']):>6} {_mb(k.get('allocated')):>6}"
              f" {ratio.get('allocated', '-'):>5} | {_mb(t['apparent']):>10} {_mb(k.get('apparent')):>6}"
              f" {ratio.get('apparent', '-'):>5} | {_mb(t['files']):>7} {_mb(k.get('files')):>6} {ratio.get('files', '-'):>5}"
              f" | {_mb(gc):>8} {round(gc / k['allocated'], 3) if k else '-':>5} | {_unstored(ki)}")
    print()
    print("allocated MB at cell marks, txgit / Kishu (cells in run order, 1-based; start = after the warm-up cell)")
    for name, r in rows.items():
        tx, ki = r["txgit"], r["kishu"]
        if tx.get("failed"):
            continue
        kishu_at = (lambda i: "-") if ki.get("failed") else (lambda i: _mb(ki["per_cell"][i]["allocated"]))
        parts = [f"start {_mb(tx['start']['allocated'])} / {'-' if ki.get('failed') else _mb(ki['start']['allocated'])}"]
        parts += [f"{i + 1}: {_mb(tx['per_cell'][i]['allocated'])} / {kishu_at(i)}" for i in marks(len(tx["per_cell"]))]
        print(f"  {name[:40]:<40} " + "; ".join(parts))
    print()
    print("where txgit's bytes are (KB, uncompressed, each object once), for notebooks where txgit stores more than"
          " Kishu on some measure: git by path (displays: the cells' displayed outputs inside code/), and the"
          " variables whose chunks take the most of the blob store")
    for name, r in rows.items():
        profile = r["txgit"].get("profile")
        if not profile or not any(x > 1 for x in (r.get("txgit_over_kishu") or {}).values()):
            continue
        git = ", ".join(f"{k} {v / 1000:.0f}" for k, v in sorted(profile["git"].items(), key=lambda kv: -kv[1]))
        top = ", ".join(f"{k[:30]} {v / 1000:.0f}" for k, v in profile["variables"].items())
        print(f"  {name[:40]:<40} git: {git}; blobs: {top or '-'}")
    for name, r in rows.items():
        if r["kishu"].get("failed") and not r["kishu"]["failed"].startswith("not run"):
            print(f"  {name}: Kishu could not run it: {r['kishu']['failed'][:200]}")
    print()
    s = summary
    if not s.get("with_kishu"):
        print(f"{s['notebooks']} notebooks, none measured with Kishu")
        return
    print(f"{s['with_kishu']} notebooks with both ({s['cells']} cells), txgit / Kishu after the last cell:")
    for m in MEASURES:
        a = s[m]
        print(f"  {m:<9} txgit {_mb(a['txgit'])} MB, Kishu {_mb(a['kishu'])} MB: {a['txgit_over_kishu']}x in all,"
              f" median notebook {a['median_txgit_over_kishu']}x, most {a['max_txgit_over_kishu']}x")
    a = s["allocated"]
    print(f"  allocated after `txgit gc`: {_mb(a['txgit_after_gc'])} MB, {a['after_gc_over_kishu']}x Kishu")


def main(quick: bool = False, *, notebooks: int | None = None, only: list[str] | None = None, kishu: bool = True,
         corpus: Path = nbb.CORPUS, corpus_dir: Path | None = None, mirrors: Path | None = None) -> dict:
    chosen = nbb.load_corpus(corpus)
    if only:
        chosen = [nb for nb in chosen if any(o in nb.label or o in nb.path for o in only)]
    else:
        count = 1 if quick else (notebooks or DEFAULT_NOTEBOOKS)
        picked = nbb.spread(len(chosen), min(count, len(chosen)))
        chosen = [nb for i, nb in enumerate(chosen) if i in picked]
    try:
        import kishu as _  # noqa: F401
    except ImportError:
        kishu = False
    corpus_dir, mirrors = corpus_dir or nbb.default_corpus_dir(), mirrors or nbb.default_mirrors()
    rows: dict[str, dict] = {}
    for i, nb in enumerate(chosen):
        name = f"{nb.repo.split('/')[-1]}/{nb.name}"
        folder = nbb.materialize(nb, corpus_dir, mirrors)
        started = time.perf_counter()
        rows[name] = measure(nb, nbb.code_cells(nb, folder), folder / "files", kishu)
        print(f"[{i + 1}/{len(chosen)}] {name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    summary = summarize(rows)
    print_table(rows, summary)
    return {"corpus": str(corpus), "headline": "apparent", "summary": summary, "notebooks": rows}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one notebook")
    parser.add_argument("--notebooks", type=int, help=f"N notebooks spread over the corpus (default {DEFAULT_NOTEBOOKS},"
                                                      " the ones bench_notebooks runs Kishu on)")
    parser.add_argument("--all", action="store_true", help="every notebook of the corpus")
    parser.add_argument("--only", nargs="*", help="notebooks whose label or path contains one of these")
    parser.add_argument("--no-kishu", action="store_true", help="measure txgit only")
    parser.add_argument("--corpus", type=Path, default=nbb.CORPUS)
    parser.add_argument("--corpus-dir", type=Path)
    parser.add_argument("--mirrors", type=Path)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "storage.json", help="where the JSON goes")
    args = parser.parse_args()
    started = time.time()
    result = main(args.quick, notebooks=10**6 if args.all else args.notebooks, only=args.only, kishu=not args.no_kishu,
                  corpus=args.corpus, corpus_dir=args.corpus_dir, mirrors=args.mirrors)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "bench_storage", "quick": args.quick,
                                    "seconds": round(time.time() - started, 2), **result}, indent=2, default=str))
    print(f"-> {args.out}")
