"""Serializing object-heavy values: txgit vs ``pickle.dumps`` and ``cloudpickle.dumps``, side by side.

Issue 17's goal: committing an object-heavy value costs within 1.5x of
``pickle.dumps`` of the same value. Per workload, in one process, the same
value is timed five ways, interleaved, best of ``--reps`` rounds:

* ``pickle``: ``pickle.dumps(value, protocol=5)``, the floor;
* ``cloudpickle``: ``cloudpickle.dumps(value, protocol=5)``;
* ``serialize``: txgit's pickler alone (``txgit.state.pickling.dumps``);
* ``snapshot``: txgit's whole serialization of the namespace (pickling, the
  aliasing walk that groups variables sharing objects, summaries, cutting and
  hashing chunks), nothing written;
* ``commit``: ``Workspace.commit`` end to end into a fresh workspace (that plus
  writing the chunks and the git commit).

Then the committed value is checked out into an empty namespace and compared
with the original. Workloads: a matplotlib figure of 4 subplots x 750 lines
(Agg), the same with its axes array as a second variable (as ``fig, axs =
plt.subplots(2, 2)`` leaves them in a notebook), 100 k small plain
instances (SimpleNamespace), a dict-of-dicts config tree, a pandas frame with object columns, a sympy
expression tree, a list of 100 k small numpy arrays.

    python benchmarks/run.py serialize [--quick]
"""

from __future__ import annotations

import gc
import pickle
import shutil
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's txgit


def make_workload(name: str, quick: bool) -> dict[str, Any]:
    """The variables of one workload (the first one is "the value")."""
    import numpy as np
    import pandas as pd

    scale = 10 if quick else 1
    if name.startswith("figure"):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rng = np.random.default_rng(0)
        fig, axs = plt.subplots(2, 2)
        for ax in axs.flat:
            for _ in range(750 // scale):
                ax.plot(rng.random(50))
        plt.close(fig)
        return {"fig": fig, "axs": axs} if name == "figure+axes" else {"fig": fig}
    if name == "objects":
        # plain instances with a __dict__ each, of a class plain pickle can find by name
        return {"points": [types.SimpleNamespace(x=float(i), y=i * 0.5, label=f"p{i}") for i in range(100_000 // scale)]}
    if name == "config":
        return {"config": {f"section{i}": {f"key{j}": {"value": j, "enabled": j % 2 == 0, "name": f"n{i}.{j}",
                                                     "tags": ["a", "b"]} for j in range(100)}
                           for i in range(200 // scale)}}
    if name == "frame":
        n = 100_000 // scale
        return {"df": pd.DataFrame({"id": np.arange(n), "name": [f"user{i % 5000}" for i in range(n)],
                                    "pair": [(i, str(i)) for i in range(n)], "x": np.random.default_rng(0).random(n)})}
    if name == "sympy":
        import sympy

        x, y, z = sympy.symbols("x y z")
        return {"expr": sympy.expand(sum((x**i + y * i - z) ** 3 for i in range(1, 400 // scale)))}
    if name == "arrays":
        return {"arrays": [np.arange(i % 20, dtype=float) for i in range(100_000 // scale)]}
    raise ValueError(name)


WORKLOADS = ["figure", "figure+axes", "objects", "config", "frame", "sympy", "arrays"]


def _same(name: str, a: dict[str, Any], b: dict[str, Any]) -> bool:
    if set(a) != set(b):
        return False
    if name.startswith("figure"):
        import numpy as np

        def lines(fig: Any) -> list[list[Any]]:
            return [[ln.get_ydata() for ln in ax.get_lines()] for ax in fig.axes]

        la, lb = lines(a["fig"]), lines(b["fig"])
        ok = len(la) == len(lb) and all(len(x) == len(y) and all(np.array_equal(p, q) for p, q in zip(x, y))
                                        for x, y in zip(la, lb))
        if "axs" in a:  # the axes array must still hold the figure's own axes
            ok = ok and all(ax.figure is b["fig"] for ax in b["axs"].flat)
        return ok
    if name == "frame":
        return a["df"].equals(b["df"])
    if name == "arrays":
        import numpy as np

        return len(a["arrays"]) == len(b["arrays"]) and all(
            p.dtype == q.dtype and np.array_equal(p, q) for p, q in zip(a["arrays"], b["arrays"]))
    return a == b


def _best(fn: Any, results: list[float]) -> None:
    gc.collect()
    started = time.perf_counter()
    fn()
    results.append(time.perf_counter() - started)


def run_workload(name: str, quick: bool, reps: int, root: Path) -> dict[str, Any]:
    import cloudpickle

    from txgit import Workspace
    from txgit.state import pickling
    from txgit.state.snapshot import snapshot

    vars_ = make_workload(name, quick)
    ns: dict[str, Any] = {"__name__": "__main__", **vars_}
    # "the same value": the one variable, or all of them when there are several (they share objects)
    value = next(iter(vars_.values())) if len(vars_) == 1 else dict(vars_)
    times: dict[str, list[float]] = {k: [] for k in ("pickle", "cloudpickle", "serialize", "snapshot", "commit")}
    for rep in range(reps):
        _best(lambda: pickle.dumps(value, protocol=5), times["pickle"])
        _best(lambda: cloudpickle.dumps(value, protocol=5), times["cloudpickle"])
        _best(lambda: pickling.dumps(value, ns), times["serialize"])
        _best(lambda: snapshot(ns), times["snapshot"])
        ws = Workspace.init(root / f"{name}-{rep}")
        _best(lambda: ws.commit(ns, "state"), times["commit"])
    target: dict[str, Any] = {"__name__": "__main__"}
    Workspace.open(root / f"{name}-0").checkout("HEAD", target, force=True)
    restored = _same(name, vars_, {k: v for k, v in target.items() if k in vars_ or not k.startswith("__")})
    best = {k: min(v) for k, v in times.items()}
    return {**{f"{k}_s": v for k, v in best.items()},
            "pickle_bytes": len(pickle.dumps(value, protocol=5)),
            "serialize_vs_pickle": best["serialize"] / best["pickle"],
            "commit_vs_pickle": best["commit"] / best["pickle"],
            "restored_equal": restored}


def main(quick: bool = False, reps: int | None = None) -> dict:
    reps = reps or (2 if quick else 3)
    root = Path(tempfile.mkdtemp(prefix="txgit-bench-serialize-"))
    results: dict[str, Any] = {"reps": reps, "workloads": {}}
    try:
        for name in WORKLOADS:
            results["workloads"][name] = run_workload(name, quick, reps, root)
            gc.collect()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    _print(results)
    return results


def _print(results: dict[str, Any]) -> None:
    head = (f"{'workload':<12} {'pickle s':>9} {'cloudpickle s':>13} {'serialize s':>11} {'snapshot s':>10} "
            f"{'commit s':>9} {'serialize/pickle':>16} {'commit/pickle':>13} {'restored':>8}")
    print(f"best of {results['reps']} interleaved rounds")
    print(head)
    print("-" * len(head))
    for name, r in results["workloads"].items():
        print(f"{name:<12} {r['pickle_s']:>9.3f} {r['cloudpickle_s']:>13.3f} {r['serialize_s']:>11.3f} "
              f"{r['snapshot_s']:>10.3f} {r['commit_s']:>9.3f} {r['serialize_vs_pickle']:>15.2f}x "
              f"{r['commit_vs_pickle']:>12.2f}x {str(r['restored_equal']):>8}")


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
