"""Several processes committing into one workspace at once lose no commit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, session_namespace
from txgit import Workspace

WORKER = """
import json, sys
import numpy as np
from txgit import Workspace
ws = Workspace.open(sys.argv[1])
p = int(sys.argv[2])
ns = {"__name__": "__main__"}
for k in range(int(sys.argv[3])):
    ns["who"] = p
    ns["k"] = k
    ns["arr"] = np.arange(1000 + 100 * k) * (p + 1)
    r = ws.commit(ns, f"process {p} commit {k}")
    print(json.dumps([r.info.id, p, k]), flush=True)
"""


def test_four_processes_fifty_commits_each_lose_nothing(ws: Workspace, tmp_path: Path) -> None:
    ws.commit(session_namespace("start = 0\n"), "start")
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(ws.root), str(p), "50"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for p in range(4)]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        done += [json.loads(line) for line in out.splitlines()]
    assert len(done) == 200 and len({c for c, _, _ in done}) == 200

    history = ws.log("main")
    assert len(history) == 201  # one linear chain: no commit overwrote another
    on_main = {c.id for c in history}
    assert all(c in on_main for c, _, _ in done)
    assert ws.fsck().ok
    for commit, p, k in done:  # each commit holds exactly what its process committed
        state = ws.state(commit)
        assert ws.load("who", commit) == p and ws.load("k", commit) == k
        arr = ws.load("arr", commit)
        assert arr.shape == (1000 + 100 * k,) and int(arr[-1]) == (999 + 100 * k) * (p + 1)
        assert set(state.variables) == {"who", "k", "arr"}
        assert ws.resolve(commit).summary == f"process {p} commit {k}"
