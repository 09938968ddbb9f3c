"""Crash stress: commit, checkout, push and gc in a subprocess SIGKILLed at random instants.

    python tests/stress/crash_stress.py --trials 200 [--seed 1] [--json out.json]

Each trial starts a worker on the same workspace. The worker checks out ``main``
and then loops: commit a changed state on ``main`` (arrays of random sizes, some
over one 1 MiB chunk, a dict, now and then 16-40 new small variables, which the
store writes as one pack, a deleted variable now and then), commit on a
scratch branch and drop it (garbage for gc), push ``main`` to a local remote
(a bare repository with its blobs beside it, ``<remote>/txgit-objects``), or run
gc with no grace period and no reflog retention (so it really deletes, rewrites packs whose
members became garbage, packs the small blobs and the git history, so kills land inside packing
as well; commits pack their small loose blobs every few commits too). After each commit returns, the
worker appends the commit id and a digest of every variable to a journal. The
parent SIGKILLs it at a random instant, then checks:

* ``Workspace.fsck()`` reports no problem;
* every commit in the journal (all trials so far) is still on ``main``'s
  history, and a checkout of it into a fresh namespace gives exactly the
  digests the worker recorded;
* on the remote, every ref names only commits whose blobs are all in the
  remote's storage, each hashing to its name;
* running push again completes, and leaves the remote's ``main`` equal to ours.

A new workspace is started every ``--block`` trials to keep the re-checking of
every earlier commit affordable. Prints trials run and failures found.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def digest(value: Any) -> str:
    """A content digest of the values the worker commits (numpy arrays, ints, dicts of them)."""
    import blake3
    import numpy as np

    h = blake3.blake3()
    if isinstance(value, np.ndarray):
        h.update(f"nd:{value.dtype}:{value.shape}:".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    else:
        h.update(repr(value).encode())
    return h.hexdigest()


# -- the worker (runs in the subprocess) ---------------------------------------------------

def worker(ws_path: str, journal: str, seed: int) -> None:
    import numpy as np

    from txgit import Workspace, repository

    # small loose blobs packed after commits every few commits, not every ~170: kills land in it too
    repository.LOOSE_BLOB_LIMIT, repository.LOOSE_CHECK_EVERY = 16, 3
    rng = random.Random(seed)
    ws = Workspace.open(ws_path)
    ns: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    if "main" in ws.branches():
        ws.checkout("main", ns, force=True)
    elif ws.branch != "main":
        ws.checkout("main", ns, force=True)
    print("ready", flush=True)
    step = 0
    with open(journal, "a") as j:
        while True:
            step += 1
            op = rng.random()
            if op < 0.12:
                print("op gc", flush=True)
                ws.gc(grace_seconds=0, reflog_days=0)
                continue
            if op < 0.27 and "main" in ws.branches() and ws.branch == "main":
                print("op push", flush=True)
                ws.push("origin", "main")
                continue
            if op < 0.42 and "main" in ws.branches():  # a scratch branch: commit there, come back, drop it
                print("op branch", flush=True)
                name = f"scratch{seed}-{step}"
                ws.checkout("main", ns, force=True, new_branch=name)
                ns["scratch"] = np.full(rng.randint(1, 300_000), step, dtype="int32")
                ws.commit(ns, f"scratch {step}")
                ws.checkout("main", ns, force=True)
                ws.delete_branch(name)
                continue
            print("op commit", flush=True)
            n = rng.choice([rng.randint(1, 2_000), rng.randint(1, 200_000), rng.randint(300_000, 700_000)])
            ns[f"a{rng.randint(0, 3)}"] = np.arange(n, dtype="int64") * rng.randint(1, 9) + seed
            ns["meta"] = {"seed": seed, "step": step, "note": "x" * rng.randint(0, 50)}
            if rng.random() < 0.3:  # many new small variables: the commit writes them as one pack
                for i in range(rng.randint(16, 40)):
                    ns[f"s{i}"] = {"step": step, "i": i, "pad": "y" * rng.randint(0, 200)}
            if rng.random() < 0.1:
                victims = [k for k in ns if k.startswith("a")]
                if victims:
                    del ns[rng.choice(victims)]
            result = ws.commit(ns, f"seed {seed} step {step}")
            digests = {k: digest(v) for k, v in ns.items() if not k.startswith("__")}
            j.write(json.dumps({"id": result.info.id, "digests": digests}) + "\n")
            j.flush()


# -- the parent -------------------------------------------------------------------------------

def _journal(path: Path) -> list[dict]:
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:  # a line cut by the kill: that commit is not "completed" for us
                pass
    return out


def check_remote(remote: Path) -> list[str]:
    """Every ref of the bare repository ``remote`` names only commits whose blobs its storage holds, intact."""
    from txgit.errors import TxgitError
    from txgit.history import History
    from txgit.remote import EMBEDDED_DIR
    from txgit.storage import ObjectStore

    if not remote.exists():  # no push has got that far yet
        return []
    try:
        history = History(remote)
    except Exception as e:  # noqa: BLE001 - a half-made remote repository is exactly what we look for
        return [f"remote unreadable: {e}"]
    store = ObjectStore(str(remote / EMBEDDED_DIR))
    failures: list[str] = []
    refs = [r for r in history.repo.references if r.startswith("refs/heads/")]
    tips = [history.repo.references[r].peel().id for r in refs]
    seen: set[str] = set()
    for commit in history.walk(tips):
        try:
            state = history.read_state(commit)
        except TxgitError as e:
            failures.append(f"remote commit {str(commit.id)[:8]} unreadable: {e}")
            continue
        names = {c for g in state.groups.values() for c in g.chunk_names()} - seen
        seen |= names
        lacking = store.missing(names)
        if lacking:
            failures.append(f"remote commit {str(commit.id)[:8]} names {len(lacking)} blobs its storage lacks")
        try:
            store.get_many(sorted(names - lacking))  # reads verify every blob against its name
        except TxgitError as e:
            failures.append(f"remote commit {str(commit.id)[:8]}: {e}")
    return failures


def check(ws_path: Path, journal: Path, remote: Path | None = None) -> list[str]:
    """Everything wrong with the workspace (and its remote) after a kill: fsck problems, lost or
    changed commits, remote refs naming blobs the remote lacks, a push that cannot be finished."""
    from txgit import Workspace
    from txgit.errors import TxgitError

    failures: list[str] = []
    ws = Workspace.open(ws_path)
    report = ws.fsck()
    failures += [f"fsck: {p}" for p in report.problems]
    if remote is not None:
        failures += check_remote(remote)
        if "main" in ws.branches():
            try:
                ws.push("origin", "main")  # what the killed push left undone, finished now
            except TxgitError as e:
                failures.append(f"push again failed: {e}")
            else:
                from txgit.history import History

                theirs = History(remote).repo.references.get("refs/heads/main")
                if theirs is None or str(theirs.target) != ws.branches()["main"]:
                    failures.append("push again did not bring the remote's main up to ours")
                failures += [f"after push again: {f}" for f in check_remote(remote)]
    entries = _journal(journal)
    if not entries:
        return failures
    try:
        on_main = {c.id for c in ws.log("main")}
    except TxgitError as e:
        return failures + [f"main unreadable: {e}"]
    for entry in entries:
        if entry["id"] not in on_main:
            failures.append(f"commit {entry['id'][:8]} is no longer on main")
            continue
        ns: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
        try:
            ws.checkout(entry["id"], ns, force=True)
        except TxgitError as e:
            failures.append(f"commit {entry['id'][:8]} does not check out: {e}")
            continue
        got = {k: digest(v) for k, v in ns.items() if not k.startswith("__")}
        if got != entry["digests"]:
            failures.append(f"commit {entry['id'][:8]} checks out different values")
    ws.checkout("main")
    return failures


def run(trials: int, *, seed: int = 1, block: int = 20, max_delay: float = 1.5,
        workdir: Path | None = None, verbose: bool = True) -> dict[str, Any]:
    """Run ``trials`` kill-and-check rounds; returns counts and the failures found."""
    from txgit import Workspace

    rng = random.Random(seed)
    tmp = Path(workdir or tempfile.mkdtemp(prefix="txgit-crash-"))
    failures: list[str] = []
    commits = 0
    killed_in: dict[str, int] = {}  # the operation each kill interrupted
    started = time.time()
    ws_path = journal = remote = None
    for t in range(trials):
        if t % block == 0:
            ws_path = tmp / f"ws{t // block}"
            journal = tmp / f"journal{t // block}.jsonl"
            remote = tmp / f"remote{t // block}.git"
            Workspace.init(ws_path).remotes.add("origin", str(remote))  # created by the first push
        proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", str(ws_path), str(journal), str(seed * 100_000 + t)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])},
        )
        ready = proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0, max_delay))
        alive = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate()
        ops = [line[3:] for line in out.splitlines() if line.startswith("op ")]
        killed_in[ops[-1] if ops else "startup"] = killed_in.get(ops[-1] if ops else "startup", 0) + 1
        if not ready or not alive:  # the worker died by itself: that is a bug too
            failures.append(f"trial {t}: worker failed before the kill: {err.strip().splitlines()[-1:]}")
        found = check(ws_path, journal, remote)
        commits = sum(len(_journal(tmp / f"journal{b}.jsonl")) for b in range(t // block + 1))
        failures += [f"trial {t}: {f}" for f in found]
        if verbose:
            print(f"trial {t + 1}/{trials}: {commits} completed commits so far, "
                  f"{len(found)} problems" + (f": {found[0]}" if found else ""), flush=True)
    return {"trials": trials, "completed_commits": commits, "failures": failures, "killed_in": killed_in,
            "seconds": round(time.time() - started, 1), "workdir": str(tmp)}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--block", type=int, default=20, help="trials per workspace")
    p.add_argument("--max-delay", type=float, default=1.5, help="kill at a uniform instant in [0, this] seconds")
    p.add_argument("--json", type=Path, help="write the result here")
    args = p.parse_args()
    result = run(args.trials, seed=args.seed, block=args.block, max_delay=args.max_delay)
    print(f"trials: {result['trials']}  completed commits checked: {result['completed_commits']}  "
          f"failures: {len(result['failures'])}  ({result['seconds']} s)")
    print("kills landed in: " + ", ".join(f"{k} {v}" for k, v in sorted(result["killed_in"].items())))
    for f in result["failures"]:
        print("  " + f)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    sys.exit(1 if result["failures"] else 0)


if __name__ == "__main__":
    main()
