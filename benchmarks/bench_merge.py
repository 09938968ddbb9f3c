"""Merge of two ~1 GB states that differ in one variable each, vs. loading everything.

One namespace (three large numpy arrays, a pandas DataFrame, a ~10 MB
``weights`` array, a ~10 MB model-like object, small Python objects) is
committed on ``main``; branch ``theirs`` starts there. ``main`` then replaces
``weights`` (ours) and ``theirs`` retrains ``model`` (theirs), one commit
each. Then, in one process, each on its own hard-linked copy of that
workspace (opened anew: no cached records):

* ``merge, records only``: ``Workspace.merge("theirs")`` with no namespace
  (the terminal's ``txgit merge``): the merge commit is written from the
  records of base, ours and theirs, no chunk is read or written;
* ``merge into namespace``: the same merge given a live namespace holding
  ours, as a kernel session calls it (``changed=set()``: it committed
  everything): only theirs' ``model`` is loaded;
* ``... unknown changes``: the same with ``changed=None`` (no session to say
  what changed since ours): theirs' changed names are also serialized from
  the namespace to check that the merge overwrites nothing uncommitted.

and, for comparison, in the same run:

* ``full checkout``: the merged commit checked out into an empty namespace
  (what a merge that loads everything costs; every chunk read and verified);
* ``pickle dump`` / ``pickle load``: the merged namespace pickled to a file
  and read back (protocol 5; the floor whole-state peers pay);
* ``naive merge``: ours and theirs kept as pickle files, both loaded and the
  merged namespace pickled again (what a tool without record-level merge
  must at least do; it is even told which variable to take from theirs, so
  it loads no merge base and compares no values).

Bytes read/written are the object store's counters (``ObjectStore.stats``)
for txgit, file sizes for pickle; a merge's "written" adds the loose git
objects it wrote (trees and the commit: the records). The changed bytes are
the two changed variables' pickles. Each merge is run ``repeats`` times, each
time on a fresh copy; the table shows the median.

    python benchmarks/run.py merge [--quick]
"""

from __future__ import annotations

import gc
import os
import pickle
import resource
import shutil
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's txgit

MB = 1 << 20


def make_state(total_mb: int, changed_mb: float, seed: int = 0) -> dict[str, Any]:
    """About ``total_mb`` MiB: ~60 % numpy, ~35 % a DataFrame, two ``changed_mb`` variables, small objects."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    arrays = int(total_mb * MB * 0.6)
    ns: dict[str, Any] = {"__name__": "__main__", "np": np, "pd": pd}
    ns["features"] = rng.standard_normal((arrays // 2 // (8 * 64), 64))  # float64
    ns["embeddings"] = rng.standard_normal((arrays // 4 // (4 * 128), 128), dtype=np.float32)
    ns["counts"] = rng.integers(0, 1000, size=arrays // 4 // 8, dtype=np.int64)
    rows = int(total_mb * MB * 0.35) // (8 * 4 + 8)
    ns["df"] = pd.DataFrame({
        "user": rng.integers(0, 10_000, rows),
        "amount": rng.gamma(2.0, 30.0, rows),
        "score": rng.random(rows),
        "ts": pd.date_range("2024-01-01", periods=rows, freq="s"),
        "flag": rng.random(rows) < 0.5,
    })
    ns["weights"] = rng.standard_normal(int(changed_mb * MB) // 8)
    ns["model"] = make_model(changed_mb, version=1)
    ns["records"] = [{"id": i, "name": f"user-{i}", "tags": ["a", str(i % 7)]} for i in range(2000)]
    ns["params"] = {"lr": 0.01, "epochs": 10, "layers": [64, 32, 1]}
    ns["step"] = 0
    return ns


def make_model(mb: float, version: int) -> types.SimpleNamespace:
    """A fitted-model-like object: coefficients of ``mb`` MiB, an intercept, a training history.
    (A SimpleNamespace, not a class of this file, so that plain pickle can dump it too.)"""
    import numpy as np

    rng = np.random.default_rng(100 + version)
    n = int(mb * MB) // 8 // 256
    return types.SimpleNamespace(kind="ridge", version=version, coef=rng.standard_normal((n, 256)),
                                 intercept=rng.standard_normal(256), alpha=1.0 / version,
                                 history=[{"epoch": e, "loss": 1.0 / (e + version)} for e in range(50)])


def variables(ns: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ns.items() if not k.startswith("__") and not isinstance(v, types.ModuleType)}


def pickled_size(obj: Any) -> int:
    """Bytes of ``obj`` as plain pickle (protocol 5) writes them, counted without a copy."""
    size = 0

    class Counter:
        def write(self, b: bytes) -> None:
            nonlocal size
            size += memoryview(b).nbytes

    pickle.dump(obj, Counter(), protocol=5)
    return size


def timed(fn: Any) -> tuple[float, Any]:
    gc.collect()
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# -- workspaces --------------------------------------------------------------------------

def copy_workspace(src: Path, dst: Path) -> None:
    """A copy of a workspace: the object store's chunks are hard links (content-addressed files that are
    never rewritten); the git repository is copied."""
    tx = src / ".txgit"
    shutil.copytree(tx / "objects", dst / ".txgit" / "objects", copy_function=os.link)
    shutil.copytree(tx, dst / ".txgit", ignore=lambda d, names: ["objects"] if Path(d) == tx else [],
                    dirs_exist_ok=True)


def git_loose(path: Path) -> tuple[int, int]:
    """(count, bytes on disk) of the loose objects of a workspace's git repository."""
    n = size = 0
    for d in (path / ".txgit" / "repo.git" / "objects").iterdir():
        if len(d.name) == 2 and d.is_dir():
            for f in d.iterdir():
                n += 1
                size += f.stat().st_size
    return n, size


def records_bytes(ws: Any, rev: str) -> int:
    """Bytes of the git blobs of a commit's tree (its records, meta, code): what reading its state reads."""
    def walk(tree: Any) -> int:
        total = 0
        for e in tree:
            obj = ws.history.repo[e.id]
            total += walk(obj) if e.type_str == "tree" else obj.size
        return total

    return walk(ws.history.resolve(rev).tree)


def build(root: Path, quick: bool) -> dict[str, Any]:
    """The workspace: base on main, ours (weights) on main, theirs (model) on branch theirs."""
    from txgit import Workspace

    total_mb, changed_mb = (40, 1.0) if quick else (1000, 10.0)
    base = make_state(total_mb, changed_mb)
    ours = dict(base)  # the large values are shared, not copied
    ours["weights"] = base["weights"] * 0.5 + 1.0
    theirs = dict(base)
    theirs["model"] = make_model(changed_mb, version=2)
    ws = Workspace.init(root / "origin")
    t_base, base_commit = timed(lambda: ws.commit(base, "base"))
    ws.create_branch("theirs")
    t_ours, ours_commit = timed(lambda: ws.commit(ours, "ours: new weights", names={"weights"}))
    ws.checkout("theirs")
    t_theirs, theirs_commit = timed(lambda: ws.commit(theirs, "theirs: retrained model", names={"model"}))
    ws.checkout("main")
    assert ws.branch == "main" and ws.resolve("HEAD").id == ours_commit.info.id
    return {
        "ws": ws, "base": base, "ours": ours, "theirs": theirs,
        "ours_id": ours_commit.info.id, "theirs_id": theirs_commit.info.id,
        "state_bytes": pickled_size(variables(base)),
        "ours_changed_bytes": pickled_size(ours["weights"]), "theirs_changed_bytes": pickled_size(theirs["model"]),
        "setup": {"base_commit_s": t_base, "base_bytes_written": base_commit.bytes_written,
                  "ours_commit_s": t_ours, "ours_bytes_written": ours_commit.bytes_written,
                  "theirs_commit_s": t_theirs, "theirs_bytes_written": theirs_commit.bytes_written},
    }


# -- checks --------------------------------------------------------------------------------

def same_value(a: Any, b: Any) -> bool:
    import numpy as np
    import pandas as pd

    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, pd.DataFrame):
        return isinstance(b, pd.DataFrame) and a.equals(b)
    if isinstance(a, types.SimpleNamespace):
        return isinstance(b, types.SimpleNamespace) and vars(a).keys() == vars(b).keys() and all(
            same_value(v, vars(b)[k]) for k, v in vars(a).items())
    if isinstance(a, types.ModuleType):
        return a is b
    return bool(a == b)


def expected_merge(s: dict[str, Any]) -> dict[str, Any]:
    """Ours with theirs' change applied."""
    merged = dict(s["ours"])
    merged["model"] = s["theirs"]["model"]
    return merged


def check_namespace(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert set(variables(got)) == set(variables(want)), (sorted(variables(got)), sorted(variables(want)))
    for k, v in variables(want).items():
        assert same_value(v, got[k]), f"{k} differs after the merge"


def check_merge_commit(ws: Any, result: Any, s: dict[str, Any]) -> None:
    assert result.status == "merged", result.status
    commit = ws.history.resolve(result.info.id)
    parents = [str(p) for p in commit.parent_ids]
    assert parents == [s["ours_id"], s["theirs_id"]], parents
    assert ws.resolve("main").id == result.info.id
    merged, ours, theirs = ws.state(result.info.id), ws.state(s["ours_id"]), ws.state(s["theirs_id"])
    assert set(merged.variables) == set(ours.variables)
    for n, rec in merged.variables.items():
        side = theirs if n == "model" else ours
        assert rec.same_content(side.variables[n]), n


# -- the measures --------------------------------------------------------------------------

def measure_merge(s: dict[str, Any], root: Path, label: str, namespace: bool, changed: set[str] | None) -> dict:
    from txgit import Workspace

    copy = root / label
    copy_workspace(s["ws"].root, copy)
    ws = Workspace.open(copy)
    ns = dict(s["ours"]) if namespace else None  # a kernel's namespace: ours' values, themselves
    git_before = git_loose(copy)
    ws.store.stats.reset()
    seconds, result = timed(lambda: ws.merge("theirs", ns, changed=changed))
    git_after = git_loose(copy)
    stats = ws.store.stats
    check_merge_commit(ws, result, s)
    if namespace:
        assert result.loaded == ["model"] and result.removed == [], (result.loaded, result.removed)
        check_namespace(ns, expected_merge(s))
        untouched = [k for k in variables(ns) if k != "model"]
        assert all(ns[k] is s["ours"][k] for k in untouched), "a variable the merge did not change was reloaded"
    else:
        assert result.loaded == [] and result.bytes_read == 0
    out = {"seconds": seconds, "store_bytes_read": stats.bytes_read, "store_blobs_read": stats.blobs_read,
           "store_bytes_written": stats.bytes_written, "store_blobs_written": stats.blobs_written,
           "result_bytes_read": result.bytes_read, "git_objects_written": git_after[0] - git_before[0],
           "git_bytes_written": git_after[1] - git_before[1], "merge_commit": result.info.id,
           "records_bytes": records_bytes(ws, result.info.id)}
    out["bytes_read"] = out["store_bytes_read"]
    out["bytes_written"] = out["store_bytes_written"] + out["git_bytes_written"]
    ns = ws = None  # freed (not del: the lambda above names them)
    shutil.rmtree(copy, ignore_errors=True)
    return out


def measure_checkout(s: dict[str, Any], root: Path) -> dict:
    """The merged commit checked out whole into an empty namespace, in a newly opened workspace."""
    from txgit import Workspace

    copy = root / "checkout"
    copy_workspace(s["ws"].root, copy)
    Workspace.open(copy).merge("theirs")  # the merge commit to check out
    ws = Workspace.open(copy)
    target: dict[str, Any] = {"__name__": "__main__"}
    ws.store.stats.reset()
    seconds, _ = timed(lambda: ws.checkout("main", target, force=True))
    out = {"seconds": seconds, "bytes_read": ws.store.stats.bytes_read, "blobs_read": ws.store.stats.blobs_read,
           "bytes_written": ws.store.stats.bytes_written}
    check_namespace(target, expected_merge(s))
    target = ws = None  # freed (not del: the lambda above names them)
    shutil.rmtree(copy, ignore_errors=True)
    return out


def measure_pickle(s: dict[str, Any], root: Path) -> dict:
    merged = variables(expected_merge(s))
    path = root / "merged.pkl"

    def dump() -> None:
        with open(path, "wb") as f:
            pickle.dump(merged, f, protocol=5)

    def load() -> Any:
        with open(path, "rb") as f:
            return pickle.load(f)

    t_dump, _ = timed(dump)
    t_load, back = timed(load)
    size = path.stat().st_size
    check_namespace(back, merged)
    del back
    path.unlink()
    return {"dump": {"seconds": t_dump, "bytes_read": 0, "bytes_written": size},
            "load": {"seconds": t_load, "bytes_read": size, "bytes_written": 0}}


def measure_naive(s: dict[str, Any], root: Path) -> dict:
    """Both sides kept as pickle files; the merge loads both and pickles the merged namespace."""
    paths = {side: root / f"{side}.pkl" for side in ("ours", "theirs")}
    for side, path in paths.items():  # the tool's saved states: not timed
        with open(path, "wb") as f:
            pickle.dump(variables(s[side]), f, protocol=5)
    out_path = root / "naive-merged.pkl"

    def merge() -> None:
        loaded = {}
        for side, path in paths.items():
            with open(path, "rb") as f:
                loaded[side] = pickle.load(f)
        merged = loaded["ours"]
        merged["model"] = loaded["theirs"]["model"]  # told which variable theirs changed: no base, no compare
        del loaded
        with open(out_path, "wb") as f:
            pickle.dump(merged, f, protocol=5)

    seconds, _ = timed(merge)
    out = {"seconds": seconds, "bytes_read": sum(p.stat().st_size for p in paths.values()),
           "bytes_written": out_path.stat().st_size}
    for p in (*paths.values(), out_path):
        p.unlink()
    return out


def _median(runs: list[dict]) -> dict:
    """The run with the median time (its bytes with it), all times kept."""
    ordered = sorted(runs, key=lambda r: r["seconds"])
    row = dict(ordered[(len(ordered) - 1) // 2])
    row["seconds_all"] = [r["seconds"] for r in runs]
    row["seconds_median"] = statistics.median(row["seconds_all"])
    return row


# -- main -----------------------------------------------------------------------------------

def main(quick: bool = False) -> dict:
    repeats = 3
    root = Path(tempfile.mkdtemp(prefix="txgit-bench-merge-"))
    try:
        t_build, s = timed(lambda: build(root, quick))
        results: dict[str, Any] = {
            "state_bytes": s["state_bytes"], "ours_changed_bytes": s["ours_changed_bytes"],
            "theirs_changed_bytes": s["theirs_changed_bytes"],
            "changed_bytes": s["ours_changed_bytes"] + s["theirs_changed_bytes"],
            "build_s": t_build, "setup": s["setup"], "repeats": repeats, "rows": {},
        }
        rows = results["rows"]
        merges = {"merge, records only": (False, None), "merge into namespace": (True, set()),
                  "merge into ns, changes unknown": (True, None)}
        runs: dict[str, list[dict]] = {k: [] for k in merges}
        for i in range(repeats):  # interleaved, each on a fresh copy
            for label, (namespace, changed) in merges.items():
                runs[label].append(measure_merge(s, root, f"m{i}-{len(runs[label])}-{namespace}-{changed}",
                                                 namespace, changed))
        for label in merges:
            rows[label] = _median(runs[label])
        rows["full checkout of the merge"] = measure_checkout(s, root)
        p = measure_pickle(s, root)
        rows["pickle dump (merged ns)"] = p["dump"]
        rows["pickle load (merged ns)"] = p["load"]
        rows["naive merge (2 loads + dump)"] = measure_naive(s, root)
        results["peak_rss_mb"] = rss_peak_mb()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    _print(results)
    return results


def _ratio(a: float, b: float) -> str:
    if not b:
        return "-"
    r = a / b
    return f"{r:.2f}x" if r >= 0.01 else f"{r:.1e}x"


def _mb(n: float) -> str:
    return f"{n / MB:.3f}" if n < 10 * MB else f"{n / MB:.1f}"


def _print(results: dict[str, Any]) -> None:
    state, changed = results["state_bytes"], results["changed_bytes"]
    print(f"state {state / MB:.1f} MB (pickle bytes); changed: ours 'weights' {results['ours_changed_bytes'] / MB:.2f} MB"
          f" + theirs 'model' {results['theirs_changed_bytes'] / MB:.2f} MB = {changed / MB:.2f} MB; merges: median of "
          f"{results['repeats']}, each on a fresh copy")
    rows = results["rows"]
    checkout_s = rows["full checkout of the merge"]["seconds"]
    head = (f"{'measure':<31} {'seconds':>8} {'read MB':>9} {'written MB':>10} {'(r+w)/changed':>13} "
            f"{'(r+w)/state':>11} {'s vs checkout':>13}")
    print(head)
    print("-" * len(head))
    for label, r in rows.items():
        moved = r["bytes_read"] + r["bytes_written"]
        print(f"{label:<31} {r['seconds']:>8.3f} {_mb(r['bytes_read']):>9} {_mb(r['bytes_written']):>10} "
              f"{_ratio(moved, changed):>13} {_ratio(moved, state):>11} {_ratio(r['seconds'], checkout_s):>13}")
    m = rows["merge, records only"]
    print(f"merge commit: {m['git_objects_written']} git objects, {m['git_bytes_written'] / 1024:.1f} KiB on disk; "
          f"object store: {m['store_bytes_written']} bytes written, {m['store_bytes_read']} read; from git it reads the "
          f"records of base, ours and theirs ({m['records_bytes'] / 1024:.1f} KiB of blobs each, uncompressed)")
    k = rows["merge into namespace"]
    print(f"into a namespace: read {k['store_blobs_read']} chunks = {k['store_bytes_read'] / MB:.2f} MB "
          f"(theirs' 'model' pickles to {results['theirs_changed_bytes'] / MB:.2f} MB); peak RSS "
          f"{results['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
