"""Two checkouts of txgit on the same corpus notebooks, interleaved in one run, in real kernels.

    nice -n 10 .venv/bin/python benchmarks/ab_notebooks.py --base /work/wt-base --reps 3 02.02-The-Basics 03.08

For each rep and notebook, runs (see ``bench_notebooks.run_notebook``) the baseline (no txgit), txgit
from ``--base`` (another checkout, e.g. ``git worktree add --detach /work/wt-base COMMIT``: its kernels
run with ``PYTHONPATH=BASE``, so that the base's txgit is imported first, under ``--base-python``) and
txgit from this checkout, one after the other, so that a machine's load falls on all three alike (the
noise: the baseline's second run over its first). Without ``--base``, only the baseline, this checkout's
txgit ("after") and the ``--config`` runs.

``--base-python`` is this Python by default (the venv this script runs in, with every package the
notebooks need): the fair comparison, the same packages under both checkouts. Pass another only where
the base needs other packages, and then a real venv: one made with ``python3 -m venv`` and a ``.pth``
naming this venv's site-packages puts those packages outside its ``sys.prefix``, where txgit takes them
for the user's own code and hashes their sources for the experiment graph (``from pylab import *``:
+1.7-2.6 s of hooks in one cell, seen in i17-rebind's runs).

``--config NAME:VAR=VALUE`` adds this checkout's txgit with an environment
variable set in its kernels (``--config no-helper:TXGIT_GIT_HELPER=0``). Prints per notebook the
baseline's seconds and each configuration's ratio over it (per cell the fastest of the reps, plus the
fastest drain), with its hooks' median and drain in ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_notebooks as bn  # noqa: E402  (sets PYTHONPATH to this checkout for the kernels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", help="substrings of corpus notebooks' names")
    parser.add_argument("--base", help="the other checkout's folder (none: the baseline and --config runs only)")
    parser.add_argument("--base-python", help="its Python (default: this one, see above)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--config", action="append", default=[], help="NAME:VAR=VALUE[:VAR=VALUE]")
    parser.add_argument("--out", help="every run's times, hooks and drain as JSON")
    args = parser.parse_args()
    ours_python, ours_path = sys.executable, os.environ["PYTHONPATH"]
    # name -> (python, PYTHONPATH, extra environment, bench config)
    configs = {"baseline": (ours_python, ours_path, {}, "baseline")}
    if args.base:
        base = str(Path(args.base).resolve())
        if not os.path.isfile(os.path.join(base, "txgit", "__init__.py")):
            print(f"ab_notebooks: no txgit checkout at {base} (--base)", file=sys.stderr)
            sys.exit(2)
        base_python = args.base_python or ours_python
        if not os.path.exists(base_python):
            print(f"ab_notebooks: no Python at {base_python} (--base-python)", file=sys.stderr)
            sys.exit(2)
        configs["before"] = (base_python, base, {}, "txgit")
    configs["after"] = (ours_python, ours_path, {}, "txgit")
    for spec in args.config:
        name, *pairs = spec.split(":")
        if not name or name in configs or not pairs or not all("=" in p for p in pairs):
            print(f"ab_notebooks: bad --config {spec!r} (NAME:VAR=VALUE, a new NAME)", file=sys.stderr)
            sys.exit(2)
        configs[name] = (ours_python, ours_path, dict(p.split("=", 1) for p in pairs), "txgit")
    chosen = [n for n in bn.load_corpus() if any(s in n.name for s in args.notebooks)]
    if not chosen:
        print("ab_notebooks: no corpus notebook matches", file=sys.stderr)
        sys.exit(2)
    runs: dict[str, dict[str, list[dict]]] = {}
    for rep in range(args.reps):
        for nb in chosen:
            folder = bn.materialize(nb, bn.default_corpus_dir(), bn.default_mirrors())
            cells = list(bn.code_cells(nb, folder).values())
            for name, (python, path, extra, config) in configs.items():
                saved = {k: os.environ.get(k) for k in ["PYTHONPATH", *extra]}
                # the kernels run sys.executable (jupyter_client's native kernel spec)
                sys.executable = python
                os.environ.update({"PYTHONPATH": path, **extra})
                try:
                    run = bn.run_notebook(cells, folder / "files", config)  # the data files, as bench_notebooks passes them
                finally:
                    sys.executable = ours_python
                    for k, v in saved.items():
                        if v is None:
                            os.environ.pop(k, None)
                        else:
                            os.environ[k] = v
                if run.get("failed"):
                    print(f"ab_notebooks: {nb.name} {name}: {run['failed']}", file=sys.stderr)
                    sys.exit(1)
                runs.setdefault(nb.name, {}).setdefault(name, []).append(run)
                print(f"rep {rep + 1} {nb.name[:40]} {name}: {sum(run['times']) + run.get('drain', 0):.3f} s",
                      file=sys.stderr, flush=True)
    if args.out:
        keep = ("times", "drain", "hooks", "load_ext")
        Path(args.out).write_text(json.dumps({nb: {c: [{k: r[k] for k in keep if k in r} for r in rs]
                                                   for c, rs in cs.items()} for nb, cs in runs.items()}))
    print("per cell the fastest of the reps, plus the fastest drain; ratio over the baseline [hook median ms, hooks s,"
          " drain ms, %load_ext ms (median of the reps; not in the ratio)]")
    totals = dict.fromkeys(configs, 0.0)
    hooks: dict[str, float] = {}  # configuration -> its hooks' seconds, per cell the fastest of the reps
    for nb, by_config in runs.items():
        fastest = {c: sum(min(ts) for ts in zip(*(r["times"] for r in rs))) + min(r.get("drain", 0.0) for r in rs)
                   for c, rs in by_config.items()}
        base_runs = by_config["baseline"]
        noise = (f" (noise {sum(base_runs[1]['times']) / sum(base_runs[0]['times']):.2f}x)"
                 if len(base_runs) > 1 else "")  # the baseline's second run over its first
        line = f"{nb[:40]:40s} baseline {fastest['baseline']:.3f} s{noise}"
        for c in list(configs)[1:]:
            rs = by_config[c]
            per_cell = [min(hs) for hs in zip(*(r["hooks"] for r in rs))]
            hooks[c] = hooks.get(c, 0.0) + sum(per_cell)
            line += (f" | {c} {fastest[c] / fastest['baseline']:.2f}x [{statistics.median(per_cell) * 1e3:.2f},"
                     f" {sum(per_cell):.2f}, {min(r['drain'] for r in rs) * 1e3:.0f},"
                     f" {statistics.median(r['load_ext'] for r in rs) * 1e3:.0f}]")
        for c in totals:
            totals[c] += fastest[c]
        print(line)
    print(f"{'all':40s} baseline {totals['baseline']:.3f} s"
          + "".join(f" | {c} {totals[c] / totals['baseline']:.2f}x [hooks {hooks[c]:.2f} s]" for c in list(configs)[1:]))


if __name__ == "__main__":
    main()
