"""Reuse of recorded cell results: a Kaggle-style pipeline run again, as is and modified.

The workload is a churn-prediction notebook of 13 cells, the way Kaggle
notebooks look: pandas feature engineering on a generated transactions table
(CSV, 3 M rows, 156 MB; ``--quick``: 300 k) and a customers table (100 k;
15 k): parsing dates, per-customer sequence features (a rolling mean per
customer through ``groupby().transform(lambda ...)``, the slow pattern such
notebooks are full of), aggregates and pivots, a join, one-hot encoding and a
split; then model selection: a 2 x 3 grid of HistGradientBoosting parameters
(learning rate x leaves, 300 rounds) scored by 5-fold cross-validation
(``GridSearchCV``, ``n_jobs=1``, fixed ``random_state``), the best one refit,
a RandomForest (250 trees) beside it, their evaluation and a summary. Full
mode is about 4 minutes of work on one core (OMP_NUM_THREADS=1), the size of
notebook one re-runs after a kernel restart and waits for; ``--quick``
(2 x 1 grid, 3 folds, 60 rounds/trees) is a smoke run of the same cells.
In the full run, feature engineering is about 35 s and model selection
about 175 s (70 %), which is what decides the early modified run: a change
upstream of the models re-runs the grid search, so only the feature
engineering that does not read the changed table can be reused.

Its graph is not a chain: the customers table only feeds the join, the time
features and aggregates do not depend on it, the two models do not depend on
each other (the grid search only feeds the boosted model).

Every run is a fresh ipykernel (a user restarting and running all cells).
A cell's time is from execute request to idle, as in "Run All"; the total
adds waiting for the last auto-commit at the end (the background writer),
so it is what a user waits for until everything is recorded.

    (a) baseline          no txgit
    (b) recording         %load_ext txgit (auto-commit), reuse off: overhead of recording
    (c) first, reuse on   fresh workspace: nothing to reuse yet
    (d) repeated          same workspace, reuse on: vs (a)
    (e) late change       the evaluation threshold changed; reuse on vs the same notebook without txgit
    (f) early change      the customers cleaning changed; reuse on vs the same notebook without txgit

(a) and (b) run twice each, interleaved (a b a b), and per cell the faster
of the two counts: the recording overhead is a small difference of two
long wall times on a shared machine, where noise only ever adds time. Both
single totals are reported too, and beside them the time txgit's hooks took
inside the kernel (what recording itself costs, without the background
writer's competition for the two cores).

A cell counts as reused when its stderr has txgit's "reused results of"
line. End states are compared with ``kernelutil.digest`` (every user
variable: frames, arrays, fitted estimators; the grid search by its scores,
since its fit times differ from run to run) and the metrics the last cells
print.

    python benchmarks/run.py reuse [--quick]
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
# The kernels must import this checkout's txgit, not whichever one is installed.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))

REUSED = "txgit: reused results of"


# -- data ----------------------------------------------------------------------------------

def make_data(folder: Path, n_tx: int, n_customers: int) -> dict:
    """Write transactions.csv and customers.csv; churn depends on behaviour seen in the transactions."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(42)
    cid = np.arange(n_customers)
    activity = rng.gamma(2.0, 1.0, n_customers)
    spend = rng.lognormal(3.0, 0.6, n_customers)
    age = rng.normal(42, 14, n_customers).round()
    income = rng.lognormal(10.6, 0.5, n_customers).round(-2)
    segment = rng.choice(["basic", "plus", "premium", "business"], n_customers, p=[0.5, 0.3, 0.15, 0.05])
    region = rng.choice(["north", "south", "east", "west", "central"], n_customers)
    logit = -0.6 - 0.7 * (activity - 2) - 0.01 * (age - 42) + 0.4 * (segment == "basic") - 0.3 * (region == "west")
    churned = rng.random(n_customers) < 1 / (1 + np.exp(-logit))
    age[rng.random(n_customers) < 0.05] = np.nan
    age[rng.random(n_customers) < 0.01] = 150  # data-entry errors, to clean
    income[rng.random(n_customers) < 0.05] = np.nan
    signup = pd.Timestamp("2018-01-01") + pd.to_timedelta(rng.integers(0, 6 * 365, n_customers), unit="D")
    pd.DataFrame({"customer_id": cid, "age": age, "income": income, "segment": segment, "region": region,
                  "signup": signup.strftime("%Y-%m-%d"), "churned": churned.astype(int)}
                 ).to_csv(folder / "customers.csv", index=False)

    weights = activity / activity.sum()
    who = rng.choice(cid, n_tx, p=weights)
    # churners stop early: their transactions fall in the first part of the year
    span = np.where(churned[who], 240, 365) * 86400
    ts = pd.Timestamp("2024-01-01") + pd.to_timedelta((rng.random(n_tx) * span).astype(np.int64), unit="s")
    amount = (rng.lognormal(0, 0.8, n_tx) * spend[who]).round(2)
    merchant = rng.integers(0, 3000, n_tx)
    category = rng.choice(["grocery", "travel", "fuel", "online", "dining", "health", "other"], n_tx,
                          p=[0.3, 0.05, 0.1, 0.25, 0.15, 0.05, 0.1])
    tx = pd.DataFrame({"tx_id": np.arange(n_tx), "customer_id": who, "ts": ts, "amount": amount,
                       "merchant": "m" + pd.Series(merchant).astype(str), "category": category})
    tx.sort_values("ts").to_csv(folder / "transactions.csv", index=False, date_format="%Y-%m-%d %H:%M:%S")
    return {"transactions_rows": n_tx, "customers_rows": n_customers,
            "transactions_mb": round((folder / "transactions.csv").stat().st_size / 1e6, 1),
            "customers_mb": round((folder / "customers.csv").stat().st_size / 1e6, 2)}


# -- the notebook --------------------------------------------------------------------------

def notebook(quick: bool) -> list[tuple[str, str]]:
    # the full notebook: a 2 x 3 grid, 5-fold CV, 300 boosting rounds; quick: 2 x 1, 3-fold, 60 rounds
    trees, iters, folds, leaves = (60, 60, 3, [31]) if quick else (250, 300, 5, [15, 31, 63])
    return [
        ("imports", "import numpy as np\nimport pandas as pd\n"
                    "from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split\n"
                    "from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier\n"
                    "from sklearn.metrics import roc_auc_score, accuracy_score, f1_score"),
        ("load transactions", "tx = pd.read_csv('transactions.csv', parse_dates=['ts'])\n"
                              "print('transactions', tx.shape)"),
        ("clean customers", "customers = pd.read_csv('customers.csv')\n"
                            "customers['age'] = customers['age'].where(customers['age'].between(16, 100))\n"
                            "customers['age'] = customers['age'].fillna(customers['age'].median())\n"
                            "customers['income'] = customers['income'].fillna(customers['income'].median())\n"
                            "signup = pd.to_datetime(customers.pop('signup'))\n"
                            "customers['tenure_years'] = (pd.Timestamp('2025-01-01') - signup).dt.days / 365.25\n"
                            "print('customers', customers.shape)"),
        ("time features", "tx['hour'] = tx['ts'].dt.hour\ntx['dow'] = tx['ts'].dt.dayofweek\n"
                          "tx['month'] = tx['ts'].dt.month\ntx['is_weekend'] = tx['dow'] >= 5\n"
                          "tx['is_night'] = (tx['hour'] < 6) | (tx['hour'] >= 22)\n"
                          "tx['log_amount'] = np.log1p(tx['amount'])\n"
                          "tx['days_before_end'] = (tx['ts'].max() - tx['ts']).dt.days"),
        ("sequence features", "tx = tx.sort_values(['customer_id', 'ts'], kind='stable')\n"
                              "by_customer = tx.groupby('customer_id')\n"
                              "tx['gap_hours'] = by_customer['ts'].diff().dt.total_seconds() / 3600\n"
                              "tx['amount_vs_recent'] = tx['amount'] / by_customer['amount'].transform(\n"
                              "    lambda s: s.rolling(10, min_periods=1).mean())\n"
                              "del by_customer"),
        ("customer aggregates",
         "agg = tx.groupby('customer_id').agg(\n"
         "    n_tx=('amount', 'size'), amount_sum=('amount', 'sum'), amount_mean=('amount', 'mean'),\n"
         "    amount_std=('amount', 'std'), amount_max=('amount', 'max'), n_merchants=('merchant', 'nunique'),\n"
         "    night_share=('is_night', 'mean'), weekend_share=('is_weekend', 'mean'),\n"
         "    gap_mean=('gap_hours', 'mean'), gap_max=('gap_hours', 'max'), spike_max=('amount_vs_recent', 'max'),\n"
         "    last_seen=('days_before_end', 'min'), first_seen=('days_before_end', 'max'))\n"
         "recent = tx[tx['days_before_end'] < 60].groupby('customer_id')['amount'].agg(['size', 'sum'])\n"
         "by_cat = tx.pivot_table(index='customer_id', columns='category', values='amount', aggfunc='sum',\n"
         "                        fill_value=0)\n"
         "by_month = tx.pivot_table(index='customer_id', columns='month', values='amount', aggfunc='size',\n"
         "                          fill_value=0)\n"
         "agg = (agg.join(recent.add_prefix('recent_')).join(by_cat.add_prefix('cat_'))\n"
         "       .join(by_month.add_prefix('month_')).fillna(0))\n"
         "print('features per customer', agg.shape)"),
        ("join + label", "data = agg.join(customers.set_index('customer_id'), how='inner')\n"
                         "y = data.pop('churned')\nprint('churn rate', round(y.mean(), 4))"),
        ("one-hot + split", "X = pd.get_dummies(data, columns=['segment', 'region'], dtype=float)\n"
                            "X_train, X_test, y_train, y_test = train_test_split(\n"
                            "    X, y, test_size=0.25, random_state=0, stratify=y)"),
        ("model selection",
         f"grid = {{'learning_rate': [0.05, 0.1], 'max_leaf_nodes': {leaves}}}\n"
         f"search = GridSearchCV(HistGradientBoostingClassifier(max_iter={iters}, early_stopping=False, random_state=0),\n"
         f"                      grid, cv=StratifiedKFold({folds}, shuffle=True, random_state=0), scoring='roc_auc',\n"
         "                      n_jobs=1, refit=False)\n"
         "search.fit(X_train, y_train)\n"
         "cv_results = pd.DataFrame(search.cv_results_)[['param_learning_rate', 'param_max_leaf_nodes',\n"
         "                                                   'mean_test_score', 'std_test_score', 'rank_test_score']]\n"
         "print(cv_results.round(4).to_string())\nprint('best', search.best_params_)"),
        ("hist gradient boosting", f"hgb = HistGradientBoostingClassifier(max_iter={iters}, early_stopping=False, random_state=0,\n"
                                   "                                     **search.best_params_)\n"
                                   "hgb.fit(X_train, y_train)\np_hgb = hgb.predict_proba(X_test)[:, 1]"),
        ("random forest", f"rf = RandomForestClassifier(n_estimators={trees}, min_samples_leaf=3, n_jobs=1,\n"
                          "                            random_state=0)\n"
                          "rf.fit(X_train, y_train)\np_rf = rf.predict_proba(X_test)[:, 1]"),
        ("evaluation", "threshold = 0.5\nmetrics = {}\nfor name, p in [('hgb', p_hgb), ('rf', p_rf)]:\n"
                       "    pred = p >= threshold\n"
                       "    metrics[name] = {'auc': round(roc_auc_score(y_test, p), 6),\n"
                       "                     'accuracy': round(accuracy_score(y_test, pred), 6),\n"
                       "                     'f1': round(f1_score(y_test, pred), 6)}\nprint(metrics)"),
        ("summary", "importance = pd.Series(rf.feature_importances_, index=X.columns).sort_values(ascending=False)\n"
                    "best = max(metrics, key=lambda m: metrics[m]['auc'])\n"
                    "print('best model:', best, metrics[best])\nprint(importance.head(8).round(4).to_string())"),
    ]


def modified(cells: list[tuple[str, str]], which: str) -> list[tuple[str, str]]:
    """The notebook with one late or one early cell changed."""
    out = list(cells)
    if which == "late":  # the evaluation threshold
        i = [n for n, _ in cells].index("evaluation")
        out[i] = (out[i][0], out[i][1].replace("threshold = 0.5", "threshold = 0.4"))
    else:  # the customers cleaning: a stricter plausible age range
        i = [n for n, _ in cells].index("clean customers")
        out[i] = (out[i][0], out[i][1].replace("between(16, 100)", "between(18, 95)"))
    assert out[i] != cells[i]
    return out


# -- running -------------------------------------------------------------------------------

def run_notebook(folder: Path, cells: list[tuple[str, str]], mode: str) -> dict:
    """Run every cell in a fresh kernel in ``folder``; ``mode``: plain, record or reuse."""
    from kernelutil import Kernel, digest, silent_eval

    # One OpenMP thread (HistGradientBoosting): on a busy 2-core machine spinning OpenMP threads made the
    # same fit take 5 s or 95 s. And n_jobs=1 for the forest: with threads its predict_proba sums the
    # trees in whichever order they finish, so the last bits of its probabilities differ from run to run.
    k = Kernel(folder, env={"OMP_NUM_THREADS": "1"})
    try:
        started = time.perf_counter()
        if mode != "plain":
            k.ok("%load_ext txgit")
            if mode == "reuse":
                k.ok("%txgit reuse on")
        setup = time.perf_counter() - started
        per_cell, reused, stdout, notes = [], [], [], []
        t0 = time.perf_counter()
        for name, code in cells:
            s = time.perf_counter()
            r = k.run(code, timeout=1800, settle=False)  # "Run All" does not wait for commits
            per_cell.append(time.perf_counter() - s)
            if r.status != "ok":
                raise AssertionError(f"cell {name!r} failed: {r.error}\n{r.stderr}")
            reused.append(REUSED in r.stderr)
            stdout.append(r.stdout)
            notes.append(" | ".join(ln for ln in r.stderr.splitlines() if ln.startswith("txgit")))
        s = time.perf_counter()
        k.settle()  # the last auto-commit, written in the background
        settle = time.perf_counter() - s
        total = time.perf_counter() - t0
        hooks = []
        if mode != "plain":
            hooks = silent_eval(k, "__import__('txgit.sessions.ipython').sessions.ipython.active().hook_seconds")
        state = digest(k)
        # the models themselves, loaded or fitted, must predict the same
        # A fitted forest's pickle changes by a plain pickle round trip (sklearn's Tree pickles differ), so
        # the estimators are compared by their trees' node arrays instead of kernelutil's pickle digest.
        state["rf"] = silent_eval(
            k, "__import__('hashlib').sha1(b''.join(t.tree_.__getstate__()['nodes'].tobytes()"
               " + t.tree_.__getstate__()['values'].tobytes() for t in rf.estimators_)).hexdigest()")
        # GridSearchCV keeps its fit and score times in cv_results_: they differ from run to run, the scores must not
        state["search"] = silent_eval(
            k, "__import__('hashlib').sha1(repr(sorted((k, __import__('numpy').asarray(v).tolist()) for k, v in"
               " search.cv_results_.items() if not k.endswith('_time'))).encode()).hexdigest()")
        state["<predictions>"] = silent_eval(
            k, "__import__('hashlib').sha1(hgb.predict_proba(X_test).tobytes() + rf.predict_proba(X_test).tobytes())"
               ".hexdigest()")
        return {"mode": mode, "total_s": total, "setup_s": setup, "final_settle_s": settle,
                "cell_s": per_cell, "reused": reused, "stdout": stdout, "txgit_stderr": notes,
                "hook_s": hooks[-len(cells):] if hooks else [], "digest": state}
    finally:
        k.shutdown()


def best_of(x: dict, y: dict) -> dict:
    """Two runs of the same notebook as one: per cell the faster (noise on a shared machine only adds
    time), and the faster final settle. The recording overhead is a difference of two totals of
    minutes each; a single run of each made it swing by several percent either way."""
    out = dict(x)
    out["cell_s"] = [min(a, b) for a, b in zip(x["cell_s"], y["cell_s"])]
    out["final_settle_s"] = min(x["final_settle_s"], y["final_settle_s"])
    out["total_s"] = sum(out["cell_s"]) + out["final_settle_s"]
    out["hook_s"] = [min(a, b) for a, b in zip(x["hook_s"], y["hook_s"])]
    out["repeats_total_s"] = [x["total_s"], y["total_s"]]
    out["repeats_same_end_state"] = x["digest"] == y["digest"] and x["stdout"][-2:] == y["stdout"][-2:]
    return out


def fresh(template: Path, root: Path, name: str) -> Path:
    folder = root / name
    folder.mkdir()
    for f in template.iterdir():
        shutil.copy2(f, folder / f.name)  # same mtimes: the digests are those of the same content anyway
    return folder


def main(quick: bool = False) -> dict:
    n_tx, n_customers = (300_000, 15_000) if quick else (3_000_000, 100_000)
    root = Path(tempfile.mkdtemp(prefix="txgit-bench-reuse-"))
    try:
        template = root / "data"
        template.mkdir()
        s = time.perf_counter()
        data = make_data(template, n_tx, n_customers)
        data["generate_s"] = round(time.perf_counter() - s, 2)
        cells = notebook(quick)
        late, early = modified(cells, "late"), modified(cells, "early")
        names = [n for n, _ in cells]
        shared = fresh(template, root, "reuse-workspace")
        plan = [  # (run, folder, cells, mode); (a) and (b) twice, interleaved: see best_of
            ("a baseline", fresh(template, root, "a"), cells, "plain"),
            ("b recording", fresh(template, root, "b"), cells, "record"),
            ("a baseline #2", fresh(template, root, "a2"), cells, "plain"),
            ("b recording #2", fresh(template, root, "b2"), cells, "record"),
            ("c first, reuse on", shared, cells, "reuse"),
            ("d repeated, reuse on", shared, cells, "reuse"),
            ("e late change, reuse on", shared, late, "reuse"),
            ("e late change, no txgit", fresh(template, root, "e"), late, "plain"),
            ("f early change, reuse on", shared, early, "reuse"),
            ("f early change, no txgit", fresh(template, root, "f"), early, "plain"),
        ]
        runs = {}
        for label, folder, nb, mode in plan:
            r = run_notebook(folder, nb, mode)
            runs[label] = r
            print(f"  {label:<26} {r['total_s']:7.1f} s  reused {sum(r['reused'])}/{len(nb)}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for label in ("a baseline", "b recording"):
        runs[label] = best_of(runs[label], runs.pop(label + " #2"))

    def t(label: str) -> float:
        return runs[label]["total_s"]

    def same(x: str, y: str) -> bool:
        return runs[x]["digest"] == runs[y]["digest"] and runs[x]["stdout"][-2:] == runs[y]["stdout"][-2:]

    def differing(x: str, y: str) -> list[str]:
        a, b = runs[x]["digest"], runs[y]["digest"]
        return sorted(n for n in set(a) | set(b) if a.get(n) != b.get(n))

    compare = {  # run -> (the run it is compared with, whose time / its time)
        "b recording": "a baseline", "c first, reuse on": "a baseline", "d repeated, reuse on": "a baseline",
        "e late change, reuse on": "e late change, no txgit", "f early change, reuse on": "f early change, no txgit",
    }
    rows, out_runs = [], {}
    for label, r in runs.items():
        ref = compare.get(label)
        n_reused = sum(r["reused"])
        row = {"total_s": round(r["total_s"], 2), "cells": len(r["reused"]), "executed": len(r["reused"]) - n_reused,
               "reused": n_reused, "setup_s": round(r["setup_s"], 2), "final_settle_s": round(r["final_settle_s"], 2),
               "per_cell_s": {n: round(x, 3) for n, x in zip(names, r["cell_s"])},
               "reused_cells": [n for n, u in zip(names, r["reused"]) if u],
               "executed_cells": [n for n, u in zip(names, r["reused"]) if not u],
               "txgit_stderr": {n: x for n, x in zip(names, r["txgit_stderr"]) if x},
               "last_cells_stdout": r["stdout"][-2:]}
        if "repeats_total_s" in r:
            row["repeats_total_s"] = [round(x, 2) for x in r["repeats_total_s"]]
            row["repeats_same_end_state"] = r["repeats_same_end_state"]
        if r["hook_s"]:
            row["hook_s"] = {n: round(x, 4) for n, x in zip(names, r["hook_s"])}
            row["hook_total_s"] = round(sum(r["hook_s"]), 3)
        if ref:
            row["vs"] = ref
            row["speedup"] = round(t(ref) / r["total_s"], 2)
            row["overhead_pct"] = round((r["total_s"] - t(ref)) / t(ref) * 100, 1)
            row["same_end_state"] = same(label, ref)
            if not row["same_end_state"]:
                row["differing_variables"] = differing(label, ref)
        out_runs[label] = row
        rows.append((label, row))

    print(f"\ndata: {data['transactions_rows']:,} transactions ({data['transactions_mb']} MB CSV), "
          f"{data['customers_rows']:,} customers; notebook of {len(cells)} cells")
    print(f"{'run':<26} {'total s':>8} {'executed':>8} {'reused':>6} {'vs':<24} {'speedup':>8} {'same end state':>14}")
    for label, row in rows:
        vs = row.get("vs", "")
        sp = f"{row['speedup']:.2f}x" if vs else ""
        st = ("yes" if row["same_end_state"] else "NO") if vs else ""
        print(f"{label:<26} {row['total_s']:>8.1f} {row['executed']:>8} {row['reused']:>6} {vs:<24} {sp:>8} {st:>14}")
    b = out_runs["b recording"]
    print(f"recording overhead (b vs a, per cell the faster of two interleaved runs each): {b['overhead_pct']:+.1f} % wall"
          f" (single runs: a {runs['a baseline']['repeats_total_s'][0]:.1f} / {runs['a baseline']['repeats_total_s'][1]:.1f} s,"
          f" b {runs['b recording']['repeats_total_s'][0]:.1f} / {runs['b recording']['repeats_total_s'][1]:.1f} s);"
          f" txgit hooks in the kernel {b.get('hook_total_s', 0):.2f} s = {b.get('hook_total_s', 0) / t('a baseline') * 100:.1f} % of (a)")
    print("per cell, seconds (R = reused):")
    print(f"{'cell':<24}" + "".join(f"{label.split()[0]:>8}" for label in runs))
    for i, n in enumerate(names):
        print(f"{n:<24}" + "".join(f"{runs[lb]['cell_s'][i]:>7.2f}{'R' if runs[lb]['reused'][i] else ' '}"
                                   for lb in runs))
    return {"data": data, "cells": names, "runs": out_runs,
            "targets": {"recording_overhead_pct<3": out_runs["b recording"]["overhead_pct"] < 3,
                        "repeated_speedup>=20": out_runs["d repeated, reuse on"]["speedup"] >= 20,
                        "late_change_speedup>=2": out_runs["e late change, reuse on"]["speedup"] >= 2,
                        "early_change_speedup>=2": out_runs["f early change, reuse on"]["speedup"] >= 2}}


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
