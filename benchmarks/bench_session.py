"""Per-cell overhead of auto-commit: real notebooks in real kernels, with and without `%load_ext txgit`.

Each workload runs cell by cell in a fresh ipykernel; the time of a cell is
the wall time from execute request to idle, as a user waits for it. With the
extension, that includes tracking, serializing what the cell touched and the
commit. Each configuration runs ``repeats`` times, interleaved; per cell the
fastest run counts (noise on a shared machine only ever adds time). The
extension also times its own hooks inside the kernel; that time over the
baseline cell is reported beside the wall-time difference, which on a busy
machine is the noisier of the two. Commits are written in the background
while the next cell runs (that interference is in the next cell's wall
time); what is still being written after the last cell (drain) is timed in
the kernel and added to both totals, so no work escapes the measure.

    python benchmarks/run.py session [--quick]
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
sys.path.insert(0, str(HERE.parent / "tests"))
# The kernels must import this checkout's txgit, not whichever one is installed.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))


def workloads(quick: bool) -> dict[str, list[str]]:
    n = 20_000 if quick else 200_000
    w = {
        "pandas-features": [
            "import numpy as np\nimport pandas as pd",
            f"rng = np.random.default_rng(0)\nn = {n}\n"
            "df = pd.DataFrame({'user': rng.integers(0, 5000, n), 'amount': rng.gamma(2.0, 30.0, n),\n"
            "                   'ts': pd.date_range('2024-01-01', periods=n, freq='min'),\n"
            "                   'city': rng.choice(['ber', 'par', 'lon', 'nyc'], n)})",
            "df['hour'] = df['ts'].dt.hour\ndf['dow'] = df['ts'].dt.dayofweek\ndf['log_amount'] = np.log1p(df['amount'])",
            "per_user = df.groupby('user')['amount'].agg(['mean', 'std', 'count']).add_prefix('u_')\n"
            "df = df.join(per_user, on='user')",
            "df['z'] = (df['amount'] - df['u_mean']) / df['u_std'].fillna(1)\n"
            "df = pd.get_dummies(df, columns=['city'])",
            "rolling = df.sort_values('ts').groupby('user')['amount'].rolling(5, min_periods=1).mean()\n"
            "summary = df.describe()",
        ],
        "sklearn-train": [
            "import numpy as np\nfrom sklearn.datasets import make_classification\n"
            "from sklearn.model_selection import train_test_split\n"
            "from sklearn.ensemble import RandomForestClassifier\nfrom sklearn.linear_model import LogisticRegression",
            f"X, y = make_classification(n_samples={n // 10}, n_features=30, n_informative=10, random_state=0)\n"
            "X_tr, X_te, y_tr, y_te = train_test_split(X, y, random_state=0)",
            "lr = LogisticRegression(max_iter=500).fit(X_tr, y_tr)\nlr_acc = lr.score(X_te, y_te)",
            f"rf = RandomForestClassifier(n_estimators={20 if quick else 60}, random_state=0).fit(X_tr, y_tr)\n"
            "rf_acc = rf.score(X_te, y_te)",
            "importances = sorted(enumerate(rf.feature_importances_), key=lambda t: -t[1])[:10]\n"
            "results = {'lr': lr_acc, 'rf': rf_acc}",
        ],
        "numpy-simulation": [
            "import numpy as np",
            f"rng = np.random.default_rng(1)\nsteps, walkers = 250, {n // 20}\n"
            "pos = np.zeros((steps, walkers))",
            "for t in range(1, steps):\n    pos[t] = pos[t - 1] + rng.normal(size=walkers)",
            "final = pos[-1]\nmsd = (pos ** 2).mean(axis=1)\nhist, edges = np.histogram(final, bins=50)",
            "grid = np.zeros((400, 400))\nfor _ in range(40):\n"
            "    grid = 0.25 * (np.roll(grid, 1, 0) + np.roll(grid, -1, 0) + np.roll(grid, 1, 1) + np.roll(grid, -1, 1))\n"
            "    grid[200, 200] = 1.0",
        ],
    }
    try:
        import torch  # noqa: F401

        w["torch-cpu-train"] = [
            "import torch\ntorch.manual_seed(0)",
            "X = torch.randn(4000, 20)\ny = (X[:, 0] > 0).long()\n"
            "model = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2))\n"
            "opt = torch.optim.SGD(model.parameters(), lr=0.1)",
            "for epoch in range(30):\n    opt.zero_grad()\n    loss = torch.nn.functional.cross_entropy(model(X), y)\n"
            "    loss.backward()\n    opt.step()",
            "acc = (model(X).argmax(1) == y).float().mean().item()",
        ]
    except ImportError:
        pass
    return w


def time_notebook(cells: list[str], with_txgit: bool) -> tuple[list[float], list[float], float]:
    """Wall seconds per cell; with txgit also the seconds its hooks took inside the kernel, and the
    seconds the background writer still needed after the last cell (drain)."""
    from kernelutil import Kernel, silent_eval

    folder = Path(tempfile.mkdtemp(prefix="txgit-bench-"))
    k = Kernel(folder)
    try:
        if with_txgit:
            k.ok("%load_ext txgit")
        k.ok("pass")  # warm the kernel
        times = []
        for code in cells:
            started = time.perf_counter()
            # settle=False: the next cell is sent as soon as this one is idle, as a user (or Run All)
            # does, not once its commit is written; that write overlaps the next cell (and counts in
            # its wall time), and what is left after the last cell is the drain below
            r = k.run(code, timeout=600, settle=False)
            times.append(time.perf_counter() - started)
            if r.status != "ok":
                raise RuntimeError(f"cell failed: {r.error}\n{code}")
        hooks = []
        drain = 0.0
        if with_txgit:
            # Commits still being written after the last cell are work too: wait for them, timed
            # inside the kernel, and count it (a user's next txgit command would wait for it).
            session = "__import__('txgit.sessions.ipython').sessions.ipython.active().session"
            drain = silent_eval(k, f"(lambda s, pc: -pc() + (s.flush(), pc())[1])({session}, __import__('time').perf_counter)")
            hooks = silent_eval(k, "__import__('txgit.sessions.ipython').sessions.ipython.active().hook_seconds")
            hooks = hooks[-len(cells):]
        return times, hooks, drain
    finally:
        k.shutdown()
        shutil.rmtree(folder, ignore_errors=True)


def main(quick: bool = False) -> dict:
    repeats = 1 if quick else 3
    results: dict = {"repeats": repeats, "workloads": {}}
    try:
        import torch  # noqa: F401
    except ImportError:
        results["skipped"] = {"torch-cpu-train": "torch is not installed (pip install '.[bench]' to include it)"}
    rows = []
    for name, cells in workloads(quick).items():
        # Interleave the two configurations so that load from elsewhere on the machine hits both alike;
        # per cell the fastest run counts (noise only ever adds time).
        runs: dict[bool, list] = {False: [], True: []}
        for _ in range(repeats):
            for with_txgit in (False, True):
                runs[with_txgit].append(time_notebook(cells, with_txgit))
        base = [min(ts) for ts in zip(*(t for t, _, _ in runs[False]))]
        tx = [min(ts) for ts in zip(*(t for t, _, _ in runs[True]))]
        hooks = [min(hs) for hs in zip(*(h for _, h, _ in runs[True]))]
        drain = min(d for _, _, d in runs[True])
        per_cell = [(t - b) / b * 100 for b, t in zip(base, tx)]
        total = (sum(tx) + drain - sum(base)) / sum(base) * 100
        # The hooks' own time over the cell's baseline: the same overhead, measured without the
        # noise of subtracting two wall times on a shared machine.
        per_cell_hook = [h / b * 100 for b, h in zip(base, hooks)]
        total_hook = (sum(hooks) + drain) / sum(base) * 100
        results["workloads"][name] = {
            "cells": len(cells), "baseline_s": [round(x, 4) for x in base], "txgit_s": [round(x, 4) for x in tx],
            "txgit_hook_s": [round(x, 4) for x in hooks],
            "per_cell_overhead_pct": [round(x, 1) for x in per_cell],
            "median_cell_overhead_pct": round(statistics.median(per_cell), 1), "total_overhead_pct": round(total, 1),
            "per_cell_hook_pct": [round(x, 1) for x in per_cell_hook],
            "median_cell_hook_pct": round(statistics.median(per_cell_hook), 1),
            "total_hook_pct": round(total_hook, 1),
            "median_hook_ms": round(statistics.median(hooks) * 1000, 1),
            "drain_s": round(drain, 4),
        }
        rows.append((name, len(cells), sum(base), sum(tx), statistics.median(per_cell), total,
                     statistics.median(per_cell_hook), total_hook, statistics.median(hooks) * 1000, drain * 1000))
    print("overhead = (with txgit - without) / without, wall time per cell; hook = txgit's own time in the kernel;"
          " drain = writing still pending after the last cell (counted in both totals)")
    print(f"{'workload':<18} {'cells':>5} {'baseline s':>10} {'txgit s':>8} {'median cell %':>13} {'total %':>8}"
          f" {'hook median %':>13} {'hook total %':>12} {'hook median ms':>14} {'drain ms':>8}")
    for name, n, b, t, med, tot, hmed, htot, hms, dms in rows:
        print(f"{name:<18} {n:>5} {b:>10.2f} {t:>8.2f} {med:>13.1f} {tot:>8.1f} {hmed:>13.1f} {htot:>12.1f} {hms:>14.1f}"
              f" {dms:>8.1f}")
    for name, why in results.get("skipped", {}).items():
        print(f"{name}: skipped, {why}")
    return results


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
