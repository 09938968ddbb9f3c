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

Peers, in the same run and interleaved with it (per cell the fastest of
``repeats`` runs as well), each as wall time per cell in a fresh kernel:

- kishu: Kishu (PyPI ``kishu``), the time-travelling notebook checkpointer,
  checkpointing after every cell through its own pre/post_run_cell hooks,
  installed by ``init_kishu()`` as a user would. With no Jupyter server or
  browser, Kishu's shipped test switches stand in for the frontend
  (``TEST_NOTEBOOK_PATH``: the notebook file; ``ENV_KISHU_TEST_MODE``: no
  browser save/reload), and the benchmark writes the notebook file the kernel
  runs; nothing of Kishu is patched (tests/kernelutil.py: ``kishu_kernel``).
  The run checks that Kishu made one commit per cell.
- dill: ``dill.dump_module()`` (``dump_session`` before dill 0.3.6) of the
  whole namespace to a file in a post_run_cell hook: the naive checkpoint.
- floor: the least any per-cell checkpointer that serializes what changed
  pays: per cell, the time of plain ``pickle.dumps(v, protocol=5)`` of each
  value the cell changed. Measured in a separate plain kernel: after each cell
  (outside its timing) every user variable is pickled, and the values whose
  pickle differs from the one after the previous cell (or that are new) are
  the changed ones; their dumps time is the floor. Modules are skipped (any
  checkpointer stores them by name); values plain pickle refuses are listed.
  It is reported over the baseline cell, beside txgit's overhead.

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


CONFIGS = ("baseline", "txgit", "kishu", "dill", "floor")

# Run after each cell of the floor pass (outside the cell's timing): pickle every user variable,
# and time the dumps of those whose pickle changed since the previous cell (or are new).
FLOOR_PROBE = r"""
def _txgit_floor_probe(_last={}):
    import pickle, time, types, hashlib
    skip = {"In", "Out", "exit", "quit", "get_ipython", "open"}
    now, changed, refused, seconds = {}, [], [], 0.0
    for name, v in list(get_ipython().user_ns.items()):
        if name.startswith("_") or name in skip or isinstance(v, types.ModuleType):
            continue
        try:
            started = time.perf_counter()
            data = pickle.dumps(v, protocol=5)
            took = time.perf_counter() - started
        except Exception:
            refused.append(name)
            continue
        now[name] = hashlib.blake2b(data, digest_size=16).digest()
        if _last.get(name) != now[name]:
            changed.append(name)
            seconds += took
    _last.clear()
    _last.update(now)
    return seconds, changed, refused
"""

# The naive checkpoint: the whole namespace with dill after every cell.
DILL_HOOK = """
def _txgit_dill_hook(path, outcomes):
    import time, dill
    def hook(result):
        started = time.perf_counter()
        try:
            dill.dump_module(path)
            outcome = f"ok {time.perf_counter() - started}"
        except Exception as e:
            outcome = f"{type(e).__name__}: {e}".replace("\\n", " ")
        with open(outcomes, "a") as f:
            f.write(outcome + "\\n")
    return hook
"""


def time_notebook(cells: list[str], config: str) -> dict:
    """One run of ``cells`` in a fresh kernel under ``config`` (one of CONFIGS): "times", wall seconds
    per cell; with txgit also "hooks", the seconds its hooks took inside the kernel, and "drain", the
    seconds the background writer still needed after the last cell; per peer what shows it worked."""
    from kernelutil import Kernel, kishu_commits, kishu_kernel, silent_eval, silent_exec, txgit_drain_and_hooks

    folder = Path(tempfile.mkdtemp(prefix="txgit-bench-"))
    k = kishu_kernel(folder, cells, folder / "hook-times.txt") if config == "kishu" else Kernel(folder)
    out: dict = {"hooks": [], "drain": 0.0}
    try:
        if config == "txgit":
            k.ok("%load_ext txgit")
        elif config == "dill":
            # The hook leaves no name in the namespace; it notes each cell's outcome in a file, as
            # dill refuses some namespaces (then the run says so instead of timing half a dump).
            dump, outcomes = folder / "session.pkl", folder / "outcomes.txt"
            silent_exec(k, DILL_HOOK + f"get_ipython().events.register('post_run_cell', "
                           f"_txgit_dill_hook({str(dump)!r}, {str(outcomes)!r}))\ndel _txgit_dill_hook")
        elif config == "floor":
            silent_exec(k, FLOOR_PROBE)
        k.ok("pass")  # warm the kernel
        if config == "floor":
            silent_eval(k, "_txgit_floor_probe()")  # what the kernel holds before the first cell
        times, floor, changed, refused = [], [], [], set()
        for code in cells:
            started = time.perf_counter()
            # settle=False: the next cell is sent as soon as this one is idle, as a user (or Run All)
            # does, not once its commit is written; that write overlaps the next cell (and counts in
            # its wall time), and what is left after the last cell is the drain below
            r = k.run(code, timeout=600, settle=False)
            times.append(time.perf_counter() - started)
            if r.status != "ok":
                raise RuntimeError(f"{config}: cell failed: {r.error}\n{code}\n{r.stderr[-2000:]}")
            if config == "floor":
                seconds, names, refusing = silent_eval(k, "_txgit_floor_probe()", timeout=600)
                floor.append(seconds)
                changed.append(names)
                refused |= set(refusing)
        out["times"] = times
        if config == "txgit":
            # Commits still being written after the last cell are work too: wait for them, timed
            # inside the kernel, and count it (a user's next txgit command would wait for it).
            out["drain"], out["hooks"] = txgit_drain_and_hooks(k, len(cells))
        elif config == "kishu":
            # One commit per cell (and one for the warm-up cell), or Kishu did not checkpoint.
            commits = kishu_commits(folder)
            if len(commits) != len(cells) + 1:
                raise RuntimeError(f"kishu made {len(commits)} commits for {len(cells) + 1} cells: {commits}")
            out["commits"] = len(commits) - 1
            out["hooks"] = [float(x) for x in (folder / "hook-times.txt").read_text().split()[1:]]
            out["db_bytes"] = (folder / "notebook.kishudb").stat().st_size
        elif config == "dill":
            lines = outcomes.read_text().splitlines()
            out["failed"] = next((f"cell {i}: {line}" for i, line in enumerate(lines[1:], 1) if not line.startswith("ok ")), None)
            out["hooks"] = [float(line.split()[1]) for line in lines[1:] if line.startswith("ok ")]
            out["file_bytes"] = dump.stat().st_size if dump.exists() else 0
        elif config == "floor":
            out.update(floor=floor, changed=changed, refused=sorted(refused))
        return out
    finally:
        k.shutdown()
        shutil.rmtree(folder, ignore_errors=True)


def peers_available() -> dict[str, str]:
    """Peers that cannot run here, with why."""
    missing = {}
    for name, module in (("kishu", "kishu"), ("dill", "dill")):
        try:
            __import__(module)
        except ImportError:
            missing[name] = f"{module} is not installed (pip install '.[bench]' to include it)"
    return missing


def _pct(base: list[float], other: list[float], extra: float = 0.0) -> tuple[list[float], float, float]:
    """Per-cell overhead % of ``other`` over ``base``, its median, and the total overhead %."""
    per_cell = [(t - b) / b * 100 for b, t in zip(base, other)]
    return per_cell, statistics.median(per_cell), (sum(other) + extra - sum(base)) / sum(base) * 100


def _share(base: list[float], part: list[float], extra: float = 0.0) -> tuple[list[float], float, float]:
    """``part`` (time spent inside each cell: hooks, dumps) as % of the ``base`` cell, its median, and
    the total % (``extra``: time after the last cell, counted in the total only)."""
    per_cell = [x / b * 100 for b, x in zip(base, part)]
    return per_cell, statistics.median(per_cell), (sum(part) + extra) / sum(base) * 100


def main(quick: bool = False) -> dict:
    repeats = 1 if quick else 3
    results: dict = {"repeats": repeats, "workloads": {}}
    try:
        import torch  # noqa: F401
    except ImportError:
        results["skipped"] = {"torch-cpu-train": "torch is not installed (pip install '.[bench]' to include it)"}
    missing = peers_available()
    if missing:
        results["peers_skipped"] = missing
    configs = [c for c in CONFIGS if c not in missing]
    rows, peer_rows = [], []
    for name, cells in workloads(quick).items():
        # Interleave the configurations so that load from elsewhere on the machine hits all alike;
        # per cell the fastest run counts (noise only ever adds time).
        runs: dict[str, list[dict]] = {c: [] for c in configs}
        for _ in range(repeats):
            for config in configs:
                runs[config].append(time_notebook(cells, config))

        def fastest(config: str, key: str = "times") -> list[float]:
            return [min(ts) for ts in zip(*(r[key] for r in runs[config]))]

        base, tx, hooks = fastest("baseline"), fastest("txgit"), fastest("txgit", "hooks")
        drain = min(r["drain"] for r in runs["txgit"])
        per_cell, med, total = _pct(base, tx, drain)
        # The hooks' own time over the cell's baseline: the same overhead, measured without the
        # noise of subtracting two wall times on a shared machine.
        per_cell_hook, med_hook, total_hook = _share(base, hooks, drain)
        row = results["workloads"][name] = {
            "cells": len(cells), "baseline_s": [round(x, 4) for x in base], "txgit_s": [round(x, 4) for x in tx],
            "txgit_hook_s": [round(x, 4) for x in hooks],
            "per_cell_overhead_pct": [round(x, 1) for x in per_cell],
            "median_cell_overhead_pct": round(med, 1), "total_overhead_pct": round(total, 1),
            "per_cell_hook_pct": [round(x, 1) for x in per_cell_hook],
            "median_cell_hook_pct": round(med_hook, 1),
            "total_hook_pct": round(total_hook, 1),
            "median_hook_ms": round(statistics.median(hooks) * 1000, 1),
            "drain_s": round(drain, 4),
        }
        rows.append((name, len(cells), sum(base), sum(tx), med, total,
                     med_hook, total_hook, statistics.median(hooks) * 1000, drain * 1000))
        peer = {"txgit": (med, total)}
        hook_peer = {"txgit": (med_hook, total_hook)}
        for config in ("kishu", "dill"):
            if config not in runs:
                continue
            failed = next((r["failed"] for r in runs[config] if r.get("failed")), None)
            if failed:  # no time for a checkpoint that was not made
                row[f"{config}_failed"] = failed
                peer[config] = hook_peer[config] = None
                continue
            t, h = fastest(config), fastest(config, "hooks")
            p_cell, p_med, p_total = _pct(base, t)
            _, h_med, h_total = _share(base, h)
            hook_peer[config] = (h_med, h_total)
            row.update({f"{config}_hook_s": [round(x, 4) for x in h],
                        f"{config}_median_cell_hook_pct": round(h_med, 1), f"{config}_total_hook_pct": round(h_total, 1),
                        f"{config}_s": [round(x, 4) for x in t],
                        f"{config}_per_cell_overhead_pct": [round(x, 1) for x in p_cell],
                        f"{config}_median_cell_overhead_pct": round(p_med, 1),
                        f"{config}_total_overhead_pct": round(p_total, 1)})
            peer[config] = (p_med, p_total)
        if "kishu" in runs:
            row["kishu_commits"] = runs["kishu"][0]["commits"]
            row["kishu_db_bytes"] = runs["kishu"][0]["db_bytes"]
        if "dill" in runs:
            row["dill_file_bytes"] = runs["dill"][0]["file_bytes"]
        floor = fastest("floor", "floor")
        f_cell, f_med, f_total = _share(base, floor)
        row.update({"floor_pickle_s": [round(x, 4) for x in floor], "floor_per_cell_pct": [round(x, 1) for x in f_cell],
                    "floor_median_cell_pct": round(f_med, 1), "floor_total_pct": round(f_total, 1),
                    "floor_changed": runs["floor"][0]["changed"], "floor_refused": runs["floor"][0]["refused"]})
        peer["floor"] = hook_peer["floor"] = (f_med, f_total)
        peer_rows.append((name, peer, hook_peer))
    print("overhead = (with txgit - without) / without, wall time per cell; hook = txgit's own time in the kernel;"
          " drain = writing still pending after the last cell (counted in both totals)")
    print(f"{'workload':<18} {'cells':>5} {'baseline s':>10} {'txgit s':>8} {'median cell %':>13} {'total %':>8}"
          f" {'hook median %':>13} {'hook total %':>12} {'hook median ms':>14} {'drain ms':>8}")
    for name, n, b, t, med, tot, hmed, htot, hms, dms in rows:
        print(f"{name:<18} {n:>5} {b:>10.2f} {t:>8.2f} {med:>13.1f} {tot:>8.1f} {hmed:>13.1f} {htot:>12.1f} {hms:>14.1f}"
              f" {dms:>8.1f}")
    shown = [c for c in ("txgit", "kishu", "dill", "floor") if c in configs]
    for title, which in (("wall time per cell over the same baseline", 1),
                         ("time in the kernel's hooks (txgit: + drain) over the same baseline cell", 2)):
        print()
        print(f"peers, same run, {title}: median cell % / total %; floor = plain pickle.dumps of the values each cell"
              " changed, % of the baseline cell; a/txgit = a's total over txgit's")
        print(f"{'workload':<18}" + "".join(f" {c + ' med %':>12} {c + ' tot %':>12}" for c in shown)
              + "".join(f" {c + '/txgit':>12}" for c in shown[1:]))
        for name, *both in peer_rows:
            peer = both[which - 1]
            tx_total = peer["txgit"][1]
            ratios = "".join(f" {peer[c][1] / tx_total:>11.1f}x" if peer[c] and tx_total > 0 else f" {'-':>12}"
                             for c in shown[1:])
            print(f"{name:<18}" + "".join(f" {peer[c][0]:>12.1f} {peer[c][1]:>12.1f}" if peer[c]
                                          else f" {'failed':>12} {'':>12}" for c in shown) + ratios)
    for name, row in results["workloads"].items():
        for config in ("kishu", "dill"):
            if row.get(f"{config}_failed"):
                print(f"{name}: {config} failed, {row[f'{config}_failed'][:200]}")
    for name, why in {**results.get("skipped", {}), **results.get("peers_skipped", {})}.items():
        print(f"{name}: skipped, {why}")
    return results


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
