"""Push and pull through a real S3 server (moto on 127.0.0.1, via s3fs), against a pickle upload.

Two states: ``small`` (1,000 small variables: about 1,000 small blobs) and
``large`` (one array cut into 10 chunks of 1 MiB: 10 large blobs). For each:
the first push (blobs + refs), a second push of the unchanged state (the
no-op: nothing uploaded), a clone by another workspace with every blob
fetched (``eager``), a push after changing one variable and the clone's pull
of it into its namespace, and the bytes each step moved vs. the bytes of the
state. The peer is what a user without txgit does: pickle the namespace and
upload it as one object with the same s3fs (again in full after every
change), and download + unpickle it.

Requests are counted from moto's own request log (every request the server
answered, to the state's bucket): the first push, the clone and the peer's
upload/download. Small blobs travel as packs (txgit.packs), so the first push
and the clone of 1,000 small variables are a handful of requests. A last row
asks the remote which of 10,000 new small blobs it lacks (with 1,000 held):
the remote index answers in a few requests, not one per blob.

The floor under the small state's git side is printed beside it: a commit of
1,000 tiny files pushed and cloned with the git CLI and with pygit2 (libgit2,
as txgit calls it), and pygit2's push, fetch and local clone (objects linked,
as txgit's clone of a local path does) of the state's own git objects (format
2: ~35 for 1,000 variables, their records in shards; format 1 had one per
variable and per group, ~2,015). The clone
shares the pushing workspace's S3 client (one per process for equal options
and credentials), so both clients are as warm as the peer's.

    python benchmarks/run.py remote [--quick]
"""

from __future__ import annotations

import os
import pickle
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))


def _namespaces(quick: bool) -> dict[str, dict]:
    import numpy as np

    n_small = 100 if quick else 1000
    small = {"__name__": "__main__"}
    for i in range(n_small):
        small[f"v{i}"] = {"id": i, "name": f"row-{i}", "values": list(range(i % 17, i % 17 + 20))}
    mib = 3 if quick else 10
    large = {"__name__": "__main__", "arr": np.random.default_rng(0).random(mib * (1 << 20) // 8 - 64)}
    return {"small": small, "large": large}


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main(quick: bool = False) -> dict:
    import fsspec

    from servers import S3_ENV, make_bucket, moto_s3, s3_requests
    from txgit import Workspace

    import s3fs  # noqa: F401  (imported once, outside every timing)

    os.environ.update(S3_ENV)
    results: dict = {"rows": []}
    base = Path(tempfile.mkdtemp(prefix="txgit-bench-remote-"))
    try:
        with moto_s3() as endpoint:
            opts = {"endpoint_url": endpoint}
            fs = fsspec.filesystem("s3", **opts)
            for label, ns in _namespaces(quick).items():
                bucket = f"bench-{label}"
                make_bucket(endpoint, bucket)
                ws = Workspace.init(base / label)
                ws.commit(ns, label)
                ws.remotes.add("origin", str(base / f"{label}.git"), storage=f"s3://{bucket}/blobs",
                               storage_options=opts)
                # Warm both clients (import, session, connection) so the timings compare transfers.
                ws.remotes.store("origin").fs.ls(bucket)
                fs.ls(bucket)
                n0 = len(s3_requests(endpoint, bucket))
                first, t_first = _timed(lambda: ws.push())
                push_requests = len(s3_requests(endpoint, bucket)) - n0
                noop, t_noop = _timed(lambda: ws.push())
                # B clones with every blob (the full download), then checks the state out.
                n0 = len(s3_requests(endpoint, bucket))
                clone, t_clone = _timed(lambda: Workspace.clone(str(base / f"{label}.git"), base / f"{label}-clone",
                                                                storage_options=opts, eager=True))
                clone_requests = len(s3_requests(endpoint, bucket)) - n0
                clone_bytes = clone.store.stats.bytes_written
                bns: dict = {"__name__": "__main__"}
                clone.checkout("main", bns)
                # A changes one variable and pushes; B pulls it into its namespace (on-demand blobs).
                key = next(k for k in ns if not k.startswith("__"))
                if label == "large":
                    ns[key] = ns[key].copy()
                    ns[key][:1000] = -1.0  # touches one chunk of ten
                else:
                    ns[key] = {"id": -1}
                ws.commit(ns, "one variable changed")
                change, t_change = _timed(lambda: ws.push())
                clone.store.stats.reset()
                pulled, t_pull = _timed(lambda: clone.pull(namespace=bns))
                assert pulled.status == "fast-forward" and _same(bns[key], ns[key])
                pull_bytes = clone.store.stats.bytes_written
                # The peer: pickle the namespace and upload/download it whole, after every change too.
                payload, t_pickle = _timed(lambda: pickle.dumps({k: v for k, v in ns.items() if k != "__name__"},
                                                                protocol=5))
                n0 = len(s3_requests(endpoint, bucket))
                _, t_put = _timed(lambda: fs.pipe(f"{bucket}/peer.pkl", payload))
                _, t_get = _timed(lambda: pickle.loads(fs.cat(f"{bucket}/peer.pkl")))
                peer_requests = len(s3_requests(endpoint, bucket)) - n0
                row = {
                    "state": label, "blobs": first.blobs_uploaded, "state_bytes": first.bytes_state,
                    "push_s": round(t_first, 3), "push_bytes": first.bytes_uploaded,
                    "noop_push_s": round(t_noop, 4), "noop_push_bytes": noop.bytes_uploaded,
                    "change_push_s": round(t_change, 3), "change_push_bytes": change.bytes_uploaded,
                    "clone_eager_s": round(t_clone, 3), "clone_bytes": clone_bytes,
                    "pull_s": round(t_pull, 3), "pull_bytes": pull_bytes,
                    "pickle_upload_s": round(t_pickle + t_put, 3), "pickle_download_s": round(t_get, 3),
                    "pickle_bytes": len(payload),
                    "push_requests": push_requests, "clone_requests": clone_requests,
                    "pickle_requests": peer_requests,
                }
                row.update(_blobs_only(endpoint, bucket, opts, ws))
                if label == "small":
                    row.update(_git_floor(base, ws, len(ns) - 1))
                results["rows"].append(row)
            results["existence"] = _existence_checks(endpoint, opts, 1_000 if quick else 10_000)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    print(f"\n{'state':6} {'blobs':>5} {'state B':>9} {'push s':>7} {'push B':>9} {'no-op s':>8} {'no-op B':>7} "
          f"{'1-var push s':>12} {'1-var push B':>12} {'clone s':>8} {'clone B':>9} {'pull s':>7} {'pull B':>8} "
          f"{'pickle up s':>11} {'pickle down s':>13} {'pickle B':>9}")
    for r in results["rows"]:
        print(f"{r['state']:6} {r['blobs']:>5} {r['state_bytes']:>9} {r['push_s']:>7.2f} {r['push_bytes']:>9} "
              f"{r['noop_push_s']:>8.3f} {r['noop_push_bytes']:>7} {r['change_push_s']:>12.3f} "
              f"{r['change_push_bytes']:>12} {r['clone_eager_s']:>8.2f} {r['clone_bytes']:>9} {r['pull_s']:>7.3f} "
              f"{r['pull_bytes']:>8} {r['pickle_upload_s']:>11.3f} {r['pickle_download_s']:>13.3f} "
              f"{r['pickle_bytes']:>9}")
    print(f"\n{'state':6} {'push requests':>13} {'clone requests':>14} {'pickle up+down requests':>23} "
          f"{'push / pickle upload':>20} {'clone / pickle download':>23}")
    for r in results["rows"]:
        print(f"{r['state']:6} {r['push_requests']:>13} {r['clone_requests']:>14} {r['pickle_requests']:>23} "
              f"{r['push_s'] / max(r['pickle_upload_s'], 1e-9):>19.1f}x "
              f"{r['clone_eager_s'] / max(r['pickle_download_s'], 1e-9):>22.1f}x")
    print("\nthe storage's share alone (the blobs into a fresh prefix and back; no git, no records):")
    print(f"{'state':6} {'up s':>6} {'up requests':>11} {'up / pickle upload':>18} {'down s':>7} "
          f"{'down requests':>13} {'down / pickle download':>22}")
    for r in results["rows"]:
        print(f"{r['state']:6} {r['blobs_up_s']:>6.3f} {r['blobs_up_requests']:>11} "
              f"{r['blobs_up_s'] / max(r['pickle_upload_s'], 1e-9):>17.1f}x {r['blobs_down_s']:>7.3f} "
              f"{r['blobs_down_requests']:>13} {r['blobs_down_s'] / max(r['pickle_download_s'], 1e-9):>21.1f}x")
    for r in results["rows"]:
        if "floor_git_push_s" not in r:
            continue
        up, down = max(r["pickle_upload_s"], 1e-9), max(r["pickle_download_s"], 1e-9)
        print(f"\nthe git side's floor on this machine ({r['floor_files']:,} tiny files in one commit, pushed to and "
              f"cloned from a local bare repository; best of 3):")
        print(f"  git push {r['floor_git_push_s']:.3f} s ({r['floor_git_push_s'] / up:.1f}x the pickle upload), "
              f"git clone {r['floor_git_clone_s']:.3f} s ({r['floor_git_clone_s'] / down:.1f}x the download)")
        print(f"  pygit2 push {r['floor_pygit2_push_s']:.3f} s ({r['floor_pygit2_push_s'] / up:.1f}x), "
              f"pygit2 fetch {r['floor_pygit2_fetch_s']:.3f} s ({r['floor_pygit2_fetch_s'] / down:.1f}x)")
        print(f"  pygit2 push/fetch of the state's own {r['floor_state_objects']:,} git objects (its commit, trees, "
              f"records and meta): {r['floor_state_push_s']:.3f} s / {r['floor_state_fetch_s']:.3f} s "
              f"({r['floor_state_push_s'] / up:.1f}x / {r['floor_state_fetch_s'] / down:.1f}x); "
              f"a local clone of them (objects linked) {r['floor_state_local_clone_s']:.3f} s "
              f"({r['floor_state_local_clone_s'] / down:.1f}x)")
        print(f"  pygit2 push of them without delta search (as txgit pushes one new commit): "
              f"{r['floor_state_push_no_delta_s']:.3f} s ({r['floor_state_push_no_delta_s'] / up:.1f}x)")
        push_floor = r["blobs_up_s"] + r["floor_state_push_no_delta_s"]
        clone_floor = r["blobs_down_s"] + r["floor_state_local_clone_s"]
        print(f"  the design's floor, its parts added (the storage's share + the git side's floor): first push "
              f"{push_floor:.3f} s ({push_floor / up:.1f}x), clone {clone_floor:.3f} s ({clone_floor / down:.1f}x); "
              f"txgit: {r['push_s']:.3f} s ({r['push_s'] / up:.1f}x), {r['clone_eager_s']:.3f} s "
              f"({r['clone_eager_s'] / down:.1f}x)")
        r["floor_push_s"], r["floor_clone_s"] = round(push_floor, 4), round(clone_floor, 4)
    e = results["existence"]
    print(f"\nexistence check of {e['new']:,} new small blobs (the remote holds {e['held']:,}): "
          f"{e['requests']} requests, {e['seconds']:.3f} s, {e['missing']:,} reported missing")
    for r in results["rows"]:
        r["push_bytes_vs_state"] = round(r["push_bytes"] / max(r["state_bytes"], 1), 4)
        r["change_bytes_vs_pickle"] = round(r["change_push_bytes"] / max(r["pickle_bytes"], 1), 4)
        r["pull_bytes_vs_pickle"] = round(r["pull_bytes"] / max(r["pickle_bytes"], 1), 4)
        r["push_vs_pickle_upload"] = round(r["push_s"] / max(r["pickle_upload_s"], 1e-9), 1)
        r["change_push_vs_pickle_upload"] = round(r["change_push_s"] / max(r["pickle_upload_s"], 1e-9), 2)
        r["pull_vs_pickle_download"] = round(r["pull_s"] / max(r["pickle_download_s"], 1e-9), 2)
        print(f"  {r['state']}: first push sends {r['push_bytes_vs_state']:.2f}x the state's bytes in "
              f"{r['push_vs_pickle_upload']:.1f}x the pickle upload's time; the no-op push sends "
              f"{r['noop_push_bytes']} B in {r['noop_push_s'] * 1000:.0f} ms; after a one-variable change push "
              f"sends {r['change_bytes_vs_pickle']:.2%} and pull receives {r['pull_bytes_vs_pickle']:.2%} of the "
              f"bytes a pickle re-upload/download moves, in {r['change_push_vs_pickle_upload']:.2f}x / "
              f"{r['pull_vs_pickle_download']:.2f}x its time")
    return results


def _blobs_only(endpoint: str, bucket: str, opts: dict, ws) -> dict:
    """The storage's share of a first push and a clone: the state's blobs put into a fresh prefix
    (existence check + upload) and read back by a fresh, warmed client (index + download, verified),
    without the git side (refs, commits) or reading the states' records."""
    from servers import s3_requests
    from txgit.remote import RemoteStore

    names = ws.remotes._blobs_of([ws.history.head_commit()])[0]
    blobs = ws.store.get_many(sorted(names))
    up = RemoteStore(f"s3://{bucket}/blobs-only", **opts)
    up.fs.ls(bucket)
    n0 = len(s3_requests(endpoint, bucket))
    _, t_up = _timed(lambda: up.put_named(blobs, check=False))
    up_requests = len(s3_requests(endpoint, bucket)) - n0
    down = RemoteStore(f"s3://{bucket}/blobs-only", **opts)
    down.fs.ls(bucket)
    n0 = len(s3_requests(endpoint, bucket))
    got, t_down = _timed(lambda: down.get_many(sorted(names)))
    assert got == blobs
    return {"blobs_up_s": round(t_up, 3), "blobs_up_requests": up_requests,
            "blobs_down_s": round(t_down, 3), "blobs_down_requests": len(s3_requests(endpoint, bucket)) - n0}


def _git_floor(base: Path, ws, files: int) -> dict:
    """What git alone costs here, the floor under a first push and a clone's git side: a commit of
    ``files`` tiny files pushed and cloned with the git CLI and with pygit2 (libgit2, as txgit
    uses it), and the pygit2 push and fetch of the benchmarked state's own commit. Best of 3."""
    import subprocess

    import pygit2

    def best(fn) -> float:
        return min(_timed(lambda i=i: fn(i))[1] for i in range(3))

    src = pygit2.init_repository(str(base / "floor-src"))
    tree = src.TreeBuilder()
    for i in range(files):
        tree.insert(f"v{i}", src.create_blob(b"variable %d" % i), pygit2.enums.FileMode.BLOB)
    sig = pygit2.Signature("bench", "bench@example.com")
    src.create_commit("refs/heads/main", sig, sig, "tiny files", tree.write(), [])

    def bare(name: str) -> Path:
        path = base / name
        pygit2.init_repository(str(path), bare=True)
        return path

    def pygit2_push(repo: pygit2.Repository, name: str) -> Path:
        target = bare(name)
        repo.remotes.create_anonymous(str(target)).push(["refs/heads/main:refs/heads/main"])
        return target

    def pygit2_fetch(source: Path, name: str) -> None:
        pygit2.init_repository(str(base / name), bare=True).remotes.create_anonymous(str(source)).fetch(
            ["+refs/heads/*:refs/remotes/o/*"])

    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    out = {"floor_files": files}
    out["floor_git_push_s"] = best(lambda i: subprocess.run(
        [*git, "-C", str(base / "floor-src"), "push", "-q", str(bare(f"floor-g{i}.git")), "main"], check=True))
    out["floor_git_clone_s"] = best(lambda i: subprocess.run(
        [*git, "clone", "-q", "--bare", "--no-local", str(base / "floor-g0.git"), str(base / f"floor-gc{i}")],
        check=True))
    out["floor_pygit2_push_s"] = best(lambda i: pygit2_push(src, f"floor-p{i}.git"))
    out["floor_pygit2_fetch_s"] = best(lambda i: pygit2_fetch(base / "floor-p0.git", f"floor-pf{i}"))
    state = ws.history.repo
    head = state.head.peel(pygit2.Commit)
    state_repo = pygit2.init_repository(str(base / "floor-state"), bare=True)
    objects = 0
    for oid in state.odb:  # the branch's commit, its trees and records, copied into a clean repository
        obj = state.odb.read(oid)
        state_repo.odb.write(obj[0], obj[1])
        objects += 1
    state_repo.references.create("refs/heads/main", head.id)
    out["floor_state_objects"] = objects
    out["floor_state_push_s"] = best(lambda i: pygit2_push(state_repo, f"floor-s{i}.git"))
    # the same without libgit2's delta search, as txgit pushes a single new commit (a second handle
    # whose pack builder reads an in-memory config level: see Remotes._repo_without_delta_search)
    from txgit.remote import _NO_DELTA_SEARCH

    no_delta = base / "floor-no-delta.gitconfig"
    no_delta.write_text(_NO_DELTA_SEARCH)

    def pygit2_push_no_delta(name: str) -> Path:
        handle = pygit2.Repository(state_repo.path)
        pygit2.Config.add_file(handle.config, str(no_delta), pygit2.enums.ConfigLevel.APP, True)
        return pygit2_push(handle, name)

    out["floor_state_push_no_delta_s"] = best(lambda i: pygit2_push_no_delta(f"floor-sn{i}.git"))
    out["floor_state_fetch_s"] = best(lambda i: pygit2_fetch(base / "floor-s0.git", f"floor-sf{i}"))
    # a local clone links the objects instead (what txgit's clone of a local path does)
    out["floor_state_local_clone_s"] = best(lambda i: pygit2.clone_repository(
        str(base / "floor-s0.git"), str(base / f"floor-sl{i}"), bare=True))
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def _existence_checks(endpoint: str, opts: dict, new: int) -> dict:
    """Which of ``new`` small blobs a remote holding 1,000 others lacks, asked by a fresh client."""
    from servers import make_bucket, s3_requests
    from txgit.remote import RemoteStore
    from txgit.storage import hash_bytes

    bucket = "bench-index"
    make_bucket(endpoint, bucket)
    held = {hash_bytes(b"held %d" % i): b"held %d" % i for i in range(1_000)}
    RemoteStore(f"s3://{bucket}/blobs", **opts).put_named(held)
    names = [hash_bytes(b"new %d" % i) for i in range(new)]
    store = RemoteStore(f"s3://{bucket}/blobs", **opts)
    store.fs.ls(bucket)  # the client's session, outside the count (as for the pushes)
    n0 = len(s3_requests(endpoint, bucket))
    lacking, seconds = _timed(lambda: store.missing([*names, *held]))
    return {"new": new, "held": len(held), "requests": len(s3_requests(endpoint, bucket)) - n0,
            "seconds": round(seconds, 3), "missing": len(lacking)}


def _same(a, b) -> bool:
    try:
        import numpy as np

        if isinstance(a, np.ndarray):
            return bool(np.array_equal(a, b))
    except ImportError:
        pass
    return a == b


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
