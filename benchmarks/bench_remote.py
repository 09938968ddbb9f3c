"""Push and pull through a real S3 server (moto on 127.0.0.1, via s3fs), against a pickle upload.

Two states: ``small`` (1,000 small variables: about 1,000 small blobs) and
``large`` (one array cut into 10 chunks of 1 MiB: 10 large blobs). For each:
the first push (blobs + refs), a second push of the unchanged state (the
no-op: nothing uploaded), a push after changing one variable, a clone with
every blob fetched (``eager``), and bytes uploaded vs. bytes of the state. The
peer is what a user without txgit does: pickle the namespace and upload it as
one object with the same s3fs (again in full after every change).

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

    from servers import S3_ENV, make_bucket, moto_s3
    from txgit import Workspace

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
                first, t_first = _timed(lambda: ws.push())
                noop, t_noop = _timed(lambda: ws.push())
                key = next(k for k in ns if not k.startswith("__"))
                if label == "large":
                    ns[key] = ns[key].copy()
                    ns[key][:1000] = -1.0  # touches one chunk of ten
                else:
                    ns[key] = {"id": -1}
                ws.commit(ns, "one variable changed")
                change, t_change = _timed(lambda: ws.push())
                clone, t_clone = _timed(lambda: Workspace.clone(str(base / f"{label}.git"), base / f"{label}-clone",
                                                                storage_options=opts, eager=True))
                blobs_cloned = len(list(clone.store.names()))
                payload, t_pickle = _timed(lambda: pickle.dumps({k: v for k, v in ns.items() if k != "__name__"},
                                                                protocol=5))
                _, t_put = _timed(lambda: fs.pipe(f"{bucket}/peer.pkl", payload))
                _, t_get = _timed(lambda: fs.cat(f"{bucket}/peer.pkl"))
                row = {
                    "state": label, "blobs": first.blobs_uploaded, "state_bytes": first.bytes_state,
                    "push_s": round(t_first, 3), "push_bytes": first.bytes_uploaded,
                    "noop_push_s": round(t_noop, 4), "noop_push_bytes": noop.bytes_uploaded,
                    "change_push_s": round(t_change, 3), "change_push_bytes": change.bytes_uploaded,
                    "clone_eager_s": round(t_clone, 3), "blobs_cloned": blobs_cloned,
                    "pickle_upload_s": round(t_pickle + t_put, 3), "pickle_download_s": round(t_get, 3),
                    "pickle_bytes": len(payload),
                }
                results["rows"].append(row)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    print(f"\n{'state':6} {'blobs':>6} {'state MB':>9} {'push s':>7} {'no-op s':>8} {'no-op B':>8} "
          f"{'1-var push B':>13} {'clone s':>8} {'pickle up s':>12} {'pickle MB/change':>17}")
    for r in results["rows"]:
        print(f"{r['state']:6} {r['blobs']:>6} {r['state_bytes'] / 1e6:>9.2f} {r['push_s']:>7.2f} "
              f"{r['noop_push_s']:>8.3f} {r['noop_push_bytes']:>8} {r['change_push_bytes']:>13} "
              f"{r['clone_eager_s']:>8.2f} {r['pickle_upload_s']:>12.3f} {r['pickle_bytes'] / 1e6:>17.2f}")
        r["change_bytes_vs_pickle"] = round(r["change_push_bytes"] / max(r["pickle_bytes"], 1), 4)
        r["noop_vs_pickle_upload"] = round(r["noop_push_s"] / max(r["pickle_upload_s"], 1e-9), 3)
        print(f"  {r['state']}: after a one-variable change txgit uploads {r['change_bytes_vs_pickle']:.1%} of the "
              f"bytes a pickle re-upload sends; the no-op push takes {r['noop_vs_pickle_upload']:.2f}x "
              "the pickle re-upload's time and sends nothing")
    return results


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
