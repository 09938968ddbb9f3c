"""What looking for changes no cell named costs a kernel's hooks (issue 17): figure-heavy cells on Agg.

Each sequence runs in a fresh kernel with ``%load_ext txgit`` (background commits, as by default);
the extension times its own hooks per cell (``hook_seconds``: what the user waits for). Sequences:

- axes held: ``fig, ax = plt.subplots()``, then N cells ``plt.plot(np.random.rand(750))``: each
  changes ``ax`` without naming it (found and committed since issue 17);
- no figure held: the same cells with no variable holding the figure (nothing to find);
- other values: the cells beside a registry object, a dict of lists and an unrelated figure
  that the cells never change (candidates of pyplot's package: fingerprinted, never committed).

Then the detection alone, in-process (see :func:`detection_cost`).

``python benchmarks/bench_unnamed.py [--quick] [--against DIR]``: ``--against``: another checkout
(say, main before the change), run interleaved with this one, each sequence ``repeats`` times; per
cell the fastest run counts (noise on a shared machine only adds time).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

SETUP = "import numpy as np\nimport matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt"


def sequences(cells: int) -> dict[str, list[str]]:
    plot = "plt.plot(np.random.rand(750))"
    return {
        "axes held": [SETUP + "\nfig, ax = plt.subplots()"] + [plot] * cells,
        "no figure held": [SETUP + "\nplt.figure()"] + [plot] * cells,
        "other values": [SETUP + "\nother_fig, other_ax = plt.subplots()\nother_ax.plot([1, 2])\n"
                         "table = {i: list(range(100)) for i in range(1000)}\nplt.figure()"] + [plot] * cells,
    }


def run_once(checkout: Path, cells: list[str]) -> list[float]:
    """Hook seconds per cell (the setup cell left out) in a fresh kernel importing txgit from ``checkout``."""
    from kernelutil import Kernel, silent_eval

    folder = Path(tempfile.mkdtemp(prefix="txgit-bench-unnamed-"))
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(checkout), os.environ.get("PYTHONPATH")]))}
    k = Kernel(folder, env=env)
    try:
        k.ok("%load_ext txgit")
        for code in cells:
            k.ok(code)
        hooks = silent_eval(k, "__import__('txgit.sessions.ipython').sessions.ipython.active().hook_seconds")
        return hooks[1:]
    finally:
        k.shutdown()


def summary(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    return {"median_ms": round(statistics.median(ms), 2), "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 2),
            "max_ms": round(ms[-1], 2)}


def measure(checkouts: dict[str, Path], cells: int, repeats: int) -> dict:
    results: dict = {}
    for label, seq in sequences(cells).items():
        runs: dict[str, list[list[float]]] = {name: [] for name in checkouts}
        for _ in range(repeats):
            for name, path in checkouts.items():  # interleaved: load elsewhere hits both alike
                runs[name].append(run_once(path, seq))
        results[label] = {name: summary([min(c) for c in zip(*r)]) for name, r in runs.items()}
    return results


def show(results: dict) -> None:
    names = list(next(iter(results.values())))
    print(f"{'sequence':16s} " + " ".join(f"{n + ' median/p90/max ms':>34s}" for n in names))
    for label, row in results.items():
        print(f"{label:16s} " + " ".join(f"{row[n]['median_ms']:>14.2f} {row[n]['p90_ms']:>9.2f} "
                                         f"{row[n]['max_ms']:>9.2f}" for n in names))


def detection_cost(cells: int) -> dict:
    """The detection alone, in-process (no kernel: less noise): the seconds a NamespaceSession spends in
    ``_baseline_unnamed`` and ``_detect_unnamed`` per cell, on bench_session's quick workloads and these."""
    import time

    import bench_session
    from conftest import session_namespace

    from txgit import Workspace
    from txgit.sessions import NamespaceSession

    spent = [0.0]
    timed = {}
    for attr in ("_baseline_unnamed", "_detect_unnamed"):
        real = getattr(NamespaceSession, attr)

        def wrapper(self, *args, _real=real):
            started = time.perf_counter()
            try:
                return _real(self, *args)
            finally:
                spent[0] += time.perf_counter() - started
        timed[attr] = (real, wrapper)
    work = {**bench_session.workloads(True), **sequences(cells)}
    out = {}
    try:
        for attr, (_, wrapper) in timed.items():
            setattr(NamespaceSession, attr, wrapper)
        for label, seq in work.items():
            ws = Workspace.init(Path(tempfile.mkdtemp(prefix="txgit-bench-unnamed-")) / "ws")
            s = NamespaceSession(ws, session_namespace(), kind="bench")
            s.background = True
            per = []
            for code in seq:
                spent[0] = 0.0
                s.before_cell(code)
                exec(code, s.namespace)
                s.after_cell()
                per.append(spent[0])
            s.close()
            out[label] = summary(per[1:])
    finally:
        for attr, (real, _) in timed.items():
            setattr(NamespaceSession, attr, real)
    return out


def main(quick: bool = False, against: str | None = None) -> dict:
    checkouts = {"this": HERE.parent}
    if against:
        checkouts["against"] = Path(against).resolve()
    results = measure(checkouts, cells=8 if quick else 20, repeats=1 if quick else 2)
    print("txgit hooks per cell, figure-heavy cells on Agg (fastest of the repeats per cell)")
    show(results)
    cost = detection_cost(cells=8 if quick else 20)
    print("the detection alone, in-process, per cell (median / p90 / max ms)")
    for label, row in cost.items():
        print(f"{label:18s} {row['median_ms']:8.2f} {row['p90_ms']:8.2f} {row['max_ms']:8.2f}")
    return {"hooks": results, "detection": cost}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--against", help="another checkout to run interleaved with this one")
    args = parser.parse_args()
    main(args.quick, args.against)
