"""How long `txgit fetch --eager` takes when origin's storage (S3, moto on 127.0.0.1) holds one corrupt
blob and a second remote a sound copy: everything past the bad blob comes through the fallback. A base
checkout's and this one's, interleaved, each in a fresh lazy clone (the clone is not timed; the
interpreter's start is, as a user waits). Also counts the GET requests origin's storage answered.

    python benchmarks/eager_fallback.py --base ../base-checkout [--rounds 2] [--pushes 6] [--small 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from servers import S3_ENV, make_bucket, moto_s3, s3_requests  # noqa: E402

SETUP = """
import sys
import numpy as np
from txgit import Workspace
endpoint, pushes, small = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ws = Workspace.init("a")
ws.remotes.add("origin", "r.git", storage="s3://bench/blobs", storage_options={"endpoint_url": endpoint})
ws.remotes.add("spare", "spare.git")
ns = {"big": np.arange(2_000_000)}  # 16 MB: 16 loose chunks on S3
for p in range(pushes):  # a pack per push: more packs than an eager fetch reads whole beside their indexes
    ns.update({f"v{p}_{i}": {"id": i, "values": list(range(i, i + 30 + p))} for i in range(small)})
    ws.commit(ns, f"push {p}")
    ws.push()
ws.push("spare")
state = ws.state()
first = min(n for g in state.groups.values() for n in g.chunk_names())  # in the first batch
store = ws.remotes.store("origin")
store.packs.refresh()
member = store.packs.packed().get(first)
path = store.path(first) if member is None else store.packs.pack_path(member.pack)
data = bytearray(store.fs.cat_file(path))
data[(0 if member is None else member.offset) + (len(data) if member is None else member.length) // 2] ^= 0xFF
store.fs.pipe_file(path, bytes(data))
print(len({n for g in state.groups.values() for n in g.chunk_names()}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--base", required=True, help="a checkout of the version to compare with")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--pushes", type=int, default=6)
    ap.add_argument("--small", type=int, default=200, help="small variables per push")
    args = ap.parse_args()
    trees = {"base": str(Path(args.base).resolve()), "this": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp, moto_s3() as endpoint:
        folder = Path(tmp)
        env = {**os.environ, **S3_ENV}
        make_bucket(endpoint, "bench")
        blobs = subprocess.run([sys.executable, "-c", SETUP, endpoint, str(args.pushes), str(args.small)],
                               cwd=folder, env={**env, "PYTHONPATH": trees["this"]}, check=True,
                               capture_output=True, text=True).stdout.strip()
        print(f"{blobs} blobs, the first one corrupt on origin; load before: {os.getloadavg()}")

        def txgit(tree: str, cwd: Path, *argv: str) -> tuple[subprocess.CompletedProcess, float]:
            started = time.monotonic()
            proc = subprocess.run([sys.executable, "-m", "txgit", *argv], cwd=cwd, capture_output=True, text=True,
                                  env={**env, "PYTHONPATH": tree})
            return proc, time.monotonic() - started

        for r in range(args.rounds):
            for name, tree in trees.items():
                clone = folder / f"b-{name}-{r}"
                txgit(trees["this"], folder, "clone", str(folder / "r.git"), clone.name,
                      "--storage-option", f"endpoint_url={endpoint}")
                txgit(trees["this"], clone, "remote", "add", "spare", str(folder / "spare.git"))
                before = len(s3_requests(endpoint, "bench"))
                proc, seconds = txgit(tree, clone, "fetch", "--eager", "origin")
                assert proc.returncode == 0, proc.stderr
                gets = sum(1 for m, _ in s3_requests(endpoint, "bench")[before:] if m == "GET")
                print(f"round {r} {name}: {seconds:.2f} s, {gets} GETs", flush=True)
                shutil.rmtree(clone)
        print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
