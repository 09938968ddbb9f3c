"""What a cell costs during a merge that waits for its conflicts: a checkout's txgit against another's.

Since qa-collab13 a kernel's cell during a merge writes what it changed as a commit held on a ref beside
the merge's (its values would otherwise be in no commit until the merge commit). This measures the
after-cell hook of three kinds of cell in a session standing in a merge with one conflict, over a state
of a 16 MB array and 50 small variables: one that only reads (``big[0] + 1``), one that sets a small
variable (``batch = i``: a new held commit each time), one that changes one element of the array
(``big[i] = i``: its changed chunk is stored, and a held commit written). Each checkout runs in its own
process (its txgit first on PYTHONPATH), the two interleaved, ``--rounds`` times; medians per cell.

    .venv/bin/python benchmarks/merge_hold_cost.py --base /path/to/base/checkout [--rounds 5 --cells 30]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KINDS = {"read": "big[0] + 1", "small": "batch = {i}", "array": "big[{i}] = {i}"}


def worker(cells: int) -> dict[str, list[float]]:
    import numpy as np

    from txgit import Workspace
    from txgit.errors import MergeInProgress
    from txgit.sessions import NamespaceSession

    out: dict[str, list[float]] = {}
    for kind, code in KINDS.items():
        with tempfile.TemporaryDirectory() as tmp:
            ws = Workspace.init(Path(tmp) / "w")
            ns: dict = {"__name__": "__main__", "big": np.random.default_rng(0).random(2_000_000), "x": 1}
            ns.update({f"v{i}": i for i in range(50)})
            ws.commit(ns, "start")
            ws.checkout("HEAD", ns, new_branch="theirs")
            ns["x"] = 2
            ws.commit(ns, "theirs")
            ws.checkout("main", ns)
            ns["x"] = 3
            ws.commit(ns, "ours")
            kernel = NamespaceSession(ws, ns)
            kernel.checkout("main")
            assert kernel.merge("theirs").status == "conflicts"
            times = []
            for i in range(cells):
                text = code.format(i=i)
                kernel.before_cell(text)
                exec(text, ns)
                started = time.perf_counter()
                try:
                    kernel.after_cell()
                except MergeInProgress:
                    pass
                times.append(time.perf_counter() - started)
            out[kind] = times[1:]  # (the first cell of a merge: said once, and the first hold)
            kernel.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="a checkout of txgit to compare with (its txgit/ is used)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cells", type=int, default=30)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        import txgit

        print(json.dumps({"txgit": txgit.__file__, **worker(args.cells)}))
        return
    runs: dict[str, dict[str, list[float]]] = {"base": {}, "this": {}}
    for _ in range(args.rounds):
        for label, root in (("base", args.base), ("this", str(ROOT))):
            env = {**os.environ, "PYTHONPATH": root, "TXGIT_GIT_HELPER": "0"}
            done = subprocess.run([sys.executable, __file__, "--base", args.base, "--cells", str(args.cells),
                                   "--worker"], env=env, capture_output=True, text=True, check=True)
            got = json.loads(done.stdout.strip().splitlines()[-1])
            assert got.pop("txgit").startswith(str(Path(root).resolve())), f"{label} ran another txgit"
            for kind, times in got.items():
                runs[label].setdefault(kind, []).extend(times)
    print(f"{'cell':<24}{'base ms':>10}{'this ms':>10}{'ratio':>8}")
    for kind, code in KINDS.items():
        b = statistics.median(runs["base"][kind]) * 1000
        t = statistics.median(runs["this"][kind]) * 1000
        print(f"{code.format(i='i'):<24}{b:>10.2f}{t:>10.2f}{t / b:>7.2f}x")


if __name__ == "__main__":
    main()
