"""How long `txgit push` takes to fail against an S3 endpoint that accepts and never answers,
a base checkout's and this one's, interleaved (the interpreter's start included, as a user waits).

    python benchmarks/silent_s3_push.py --base ../base-checkout [--rounds 2] [--timeouts 3 4]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from servers import S3_ENV, silent_listener  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--base", required=True, help="a checkout of the version to compare with")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--timeouts", nargs="+", default=["3", "4"])
    args = ap.parse_args()
    trees = {"base": str(Path(args.base).resolve()), "this": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp, silent_listener() as port:
        folder = Path(tmp)

        def txgit(tree: str, *argv: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
            started = time.monotonic()
            proc = subprocess.run([sys.executable, "-m", "txgit", *argv], cwd=folder / "a", capture_output=True,
                                  text=True, env={**os.environ, **S3_ENV, "PYTHONPATH": tree, **(env or {})})
            return proc, time.monotonic() - started

        subprocess.run([sys.executable, "-c", "from txgit import Workspace; "
                        "Workspace.init('a').commit({'x': list(range(100))}, 'first')"],
                       cwd=folder, env={**os.environ, "PYTHONPATH": trees["this"]}, check=True)
        txgit(trees["this"], "remote", "add", "hung", str(folder / "h.git"), "--storage", "s3://bucket/x",
              "--storage-option", f"endpoint_url=http://127.0.0.1:{port}")
        print(f"load before: {os.getloadavg()}")
        for timeout in args.timeouts:
            for _ in range(args.rounds):
                for name, tree in trees.items():
                    proc, seconds = txgit(tree, "push", "hung", env={"TXGIT_REMOTE_TIMEOUT": timeout})
                    assert proc.returncode == 1 and "no answer within" in proc.stderr, proc.stderr
                    print(f"TXGIT_REMOTE_TIMEOUT={timeout} {name}: {seconds:.1f} s", flush=True)
        print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
