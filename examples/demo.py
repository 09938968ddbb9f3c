"""The txgit demo: a real notebook session, branched, checked out, pushed and cloned.

    python examples/demo.py [--keep]

1. Alice runs a notebook in a real Jupyter kernel with `%load_ext txgit`:
   every cell is committed; she branches to try another model and checks
   main out again, in the live kernel.
2. From her terminal she looks at the history, pushes it to a remote (a plain
   folder here, no cloud account), and Bob clones it elsewhere.
3. Bob checks out Alice's experiment and gets exactly her state: the same
   DataFrame, the same fitted model, the same predictions.
4. Both go on working on main at the same time. Bob pushes; Alice runs
   `txgit pull` in a terminal beside her live kernel: the two states are
   merged variable by variable and her kernel loads only Bob's change.

Everything happens in a temporary folder (kept with --keep).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK_CELLS = [
    "%load_ext txgit",
    """\
    import numpy as np, pandas as pd
    rng = np.random.default_rng(7)
    n = 5_000
    customers = pd.DataFrame({
        "age": rng.integers(18, 80, n),
        "income": rng.normal(50_000, 15_000, n).round(2),
        "visits": rng.poisson(4, n),
        "plan": rng.choice(["free", "pro", "team"], n),
    })
    customers["churned"] = ((customers.visits < 3) & (customers.plan == "free")) | (rng.random(n) < 0.05)""",
    """\
    features = ["age", "income", "visits"]
    def design(df):
        X = df[features].to_numpy(dtype=float)
        return (X - X.mean(axis=0)) / X.std(axis=0)
    X, y = design(customers), customers.churned.to_numpy()""",
    """\
    from sklearn.linear_model import LogisticRegression
    model = LogisticRegression().fit(X, y)
    score = round(model.score(X, y), 4)
    print("logistic regression accuracy", score)""",
    "%txgit checkout -b forest",
    """\
    from sklearn.ensemble import RandomForestClassifier
    model = RandomForestClassifier(n_estimators=50, random_state=0).fit(X, y)
    score = round(model.score(X, y), 4)
    print("random forest accuracy", score)""",
    "%txgit checkout main",
    "print(type(model).__name__, score)   # main's state is back in the live kernel",
]

BOB_CONTINUES = """\
from txgit import Workspace
ws = Workspace.open(".")
ns = {"__name__": "__main__"}
ws.checkout("main", ns)
ns["reviewed"] = "Bob: churn labels checked against the CRM export"
print("committed", ws.commit(ns, "Bob reviews the labels").info.short_id)
"""

BOB_CHECK = """\
import sys
from txgit import Workspace
ws = Workspace.open(".")
ns = {"__name__": "__main__"}
result = ws.checkout("forest", ns)
print(f"loaded {len(result.loaded)} variables from forest: {', '.join(result.loaded)}")
X = ns["design"](ns["customers"])            # Alice's function, on Alice's data
print(type(ns["model"]).__name__, "accuracy", round(ns["model"].score(X, ns["y"]), 4), "(Alice saw", ns["score"], ")")
assert round(ns["model"].score(X, ns["y"]), 4) == ns["score"]
"""


def step(title: str) -> None:
    print(f"\n=== {title}")


def txgit(*args: str, cwd: Path) -> str:
    print(f"$ txgit {' '.join(args)}")
    proc = subprocess.run([sys.executable, "-m", "txgit", *args], cwd=cwd, capture_output=True, text=True)
    out = (proc.stdout + proc.stderr).rstrip()
    if out:
        print(textwrap.indent(out, "  "))
    if proc.returncode != 0:
        raise SystemExit(f"demo failed: txgit {' '.join(args)} exited {proc.returncode}")
    return proc.stdout


class LiveKernel:
    """A real Jupyter kernel that stays up while the terminal works beside it."""

    def __init__(self, folder: Path) -> None:
        from jupyter_client.manager import KernelManager

        # ipc: a local socket file, not TCP (the kernel warns about unencrypted TCP otherwise)
        self.km = KernelManager(transport="ipc", connection_file=str(folder / ".kernel.json"))
        self.km.start_kernel(cwd=str(folder))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def run(self, code: str) -> None:
        print(textwrap.indent(code, "  In  | "))
        msg_id = self.kc.execute(code)
        while True:
            msg = self.kc.get_iopub_msg(timeout=300)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                print(textwrap.indent(content["text"].rstrip(), "  Out | "))
            elif kind == "error":
                raise SystemExit(f"demo failed: {content['ename']}: {content['evalue']}")
            elif kind == "status" and content["execution_state"] == "idle":
                return

    def shutdown(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def run_notebook(folder: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(textwrap.dedent(c)) for c in NOTEBOOK_CELLS]
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3", transport="ipc", connection_file=str(folder / ".nb-kernel.json"))
    try:
        NotebookClient(nb, km=km, timeout=300, resources={"metadata": {"path": str(folder)}}).execute()
    finally:
        km.shutdown_kernel(now=False)  # nbclient leaves a kernel it was given running
    nbformat.write(nb, folder / "analysis.ipynb")
    for cell in nb.cells:
        print(textwrap.indent(cell.source, "  In  | "))
        for out in cell.get("outputs", []):
            text = out.get("text") or out.get("data", {}).get("text/plain", "")
            if text:
                print(textwrap.indent(text.rstrip(), "  Out | "))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="keep the demo folder")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="txgit-demo-"))
    alice, bob, remote = base / "alice", base / "bob", base / "remote.git"
    alice.mkdir()
    try:
        step("Alice: a notebook in a real Jupyter kernel, auto-committed cell by cell")
        run_notebook(alice)

        step("Alice: the history her notebook made")
        txgit("log", "--graph", "--all", cwd=alice)
        txgit("diff", "main", "forest", cwd=alice)
        txgit("show", "forest", cwd=alice)

        step("Alice: push to a remote (a local folder: git repository and blobs side by side)")
        txgit("remote", "add", "origin", str(remote), "--trusted", cwd=alice)  # Bob's states may load here
        txgit("push", "origin", "--all", cwd=alice)

        step("Bob: clone elsewhere and continue from Alice's experiment")
        txgit("clone", str(remote), str(bob), cwd=base)
        txgit("branch", cwd=bob)
        txgit("show", "forest", "score", cwd=bob)
        print("$ python -c '<check out forest, score the model again>'")
        proc = subprocess.run([sys.executable, "-c", BOB_CHECK], cwd=bob, capture_output=True, text=True)
        print(textwrap.indent((proc.stdout + proc.stderr).rstrip(), "  "))
        if proc.returncode != 0:
            raise SystemExit("demo failed: Bob's state differs from Alice's")

        step("Both go on: Alice in a live kernel, Bob in a script; Bob pushes first")
        kernel = LiveKernel(alice)
        try:
            kernel.run("%load_ext txgit\n%txgit checkout main")
            kernel.run("threshold = 0.35   # Alice tunes the decision threshold")
            print("$ python -c '<Bob: check out main, add a note, commit>'")
            proc = subprocess.run([sys.executable, "-c", BOB_CONTINUES], cwd=bob, capture_output=True, text=True)
            print(textwrap.indent((proc.stdout + proc.stderr).rstrip(), "  "))
            if proc.returncode != 0:
                raise SystemExit("demo failed: Bob could not commit")
            txgit("push", cwd=bob)
            step("Alice: pull from her terminal; her live kernel follows (only Bob's change is loaded)")
            txgit("pull", cwd=alice)
            kernel.run("print(reviewed, '| threshold', threshold)")
            txgit("push", cwd=alice)
            txgit("log", "--graph", "--oneline", "-n", "4", cwd=alice)
        finally:
            kernel.shutdown()
        print(f"\nDemo complete: Bob has exactly Alice's state, and Alice has Bob's change merged with hers. "
              f"Folder: {base if args.keep else '(removed)'}")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
