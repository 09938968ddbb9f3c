"""Every txgit command, run from an installed wheel (see wheel_smoke.sh, which builds and installs it).

Run by the virtual environment's python, in a folder outside the source tree: the commands are the
wheel's console script `txgit`, as a user types them, and the package they import must be the
wheel's (an editable install or the source tree on the path would hide a file the wheel lacks).
Fails (exit 1) at the first command that fails, prints a traceback, or says other than expected,
and if a command of `txgit --help` was not run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import txgit

VENV = Path(sys.prefix).resolve()
TXGIT = shutil.which("txgit", path=str(VENV / "bin"))
ran: set[str] = set()


def fail(why: str) -> None:
    print(f"wheel smoke test: FAILED: {why}", file=sys.stderr)
    sys.exit(1)


def txgit_(*args: str, cwd: Path, expect: str = "", code: int = 0) -> str:
    ran.add(args[0])
    proc = subprocess.run([TXGIT, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    if proc.returncode != code or "Traceback" in out or expect not in out:
        fail(f"`txgit {' '.join(args)}` in {cwd} exited {proc.returncode} (expected {code}"
             f"{', and to say ' + repr(expect) if expect else ''}):\n{out}")
    print(f"  ok  txgit {' '.join(args)}")
    return out


class Kernel:
    """A real ipykernel of this environment (jupyter_client's own kernel spec: this python)."""

    def __init__(self, cwd: Path) -> None:
        from jupyter_client.manager import start_new_kernel

        self.km, self.kc = start_new_kernel(cwd=str(cwd), startup_timeout=60)

    def run(self, code: str) -> str:
        msg_id = self.kc.execute(code)
        out, error = "", None
        while True:
            msg = self.kc.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            t, c = msg["msg_type"], msg["content"]
            if t == "stream":
                out += c["text"]
            elif t == "error":
                error = "\n".join(c["traceback"])
            elif t == "status" and c["execution_state"] == "idle":
                break
        if error is not None or "Traceback" in out:
            fail(f"the cell {code!r} failed in the kernel:\n{out}{error or ''}")
        print(f"  ok  kernel: {code.splitlines()[0]}")
        return out

    def shutdown(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def main() -> None:
    here = Path(txgit.__file__).resolve()
    if not here.is_relative_to(VENV):
        fail(f"txgit was imported from {here}, not from the wheel installed in {VENV}")
    if TXGIT is None or not Path(TXGIT).resolve().is_relative_to(VENV):
        fail(f"the txgit command is not the wheel's: {TXGIT}")
    work = Path.cwd()
    alice, bob = work / "alice", work / "bob"
    alice.mkdir()
    print(f"wheel smoke test: txgit from {here.parent}, in {work}")
    txgit_("--help", cwd=alice, expect="Commands")
    ran.discard("--help")
    txgit_("init", cwd=alice, expect="Initialized empty txgit workspace")
    (alice / "prep.py").write_text("import threading\nrows = [1, 2, 3]\ntotal = sum(rows)\n"
                                   "lock = threading.Lock()\nrows.append(4)\n")
    txgit_("run", "prep.py", cwd=alice)
    txgit_("status", cwd=alice, expect="On branch main")
    txgit_("log", cwd=alice, expect="prep.py:5")
    txgit_("show", "HEAD", cwd=alice, expect="rows")
    txgit_("show", "HEAD", "rows", cwd=alice, expect="[1, 2, 3, 4]")
    txgit_("diff", "HEAD~1", "HEAD", cwd=alice, expect="rows")
    txgit_("branch", "exp", cwd=alice)
    txgit_("tag", "v1", cwd=alice)
    txgit_("checkout", "exp", cwd=alice)
    txgit_("reflog", "main", cwd=alice, expect="main@{0}")
    (alice / "more.py").write_text("rows = [1, 2, 3, 4]\ntotal = sum(rows)\nlock = None\nscale = 2\n")
    txgit_("run", "more.py", cwd=alice)
    txgit_("checkout", "main", cwd=alice)
    txgit_("merge", "exp", cwd=alice)
    txgit_("reset", "v1", cwd=alice)
    txgit_("ops", cwd=alice)
    # the lineage knowledge base (txgit/lineage/kb.json) is package data
    txgit_("lineage", cwd=alice, expect="no trained models found")
    (alice / "train.py").write_text("import pandas as pd\nfrom sklearn.linear_model import LogisticRegression\n"
                                    "df = pd.read_csv('customers.csv')\nmodel = LogisticRegression()"
                                    ".fit(df[['age', 'income']], df['churned'])\n")
    txgit_("lineage", "--script", "train.py", cwd=alice, expect="label:    customers.csv: churned")
    txgit_("fsck", cwd=alice)
    txgit_("gc", cwd=alice)
    txgit_("config", "gc.budget", "5GB", cwd=alice)
    txgit_("config", "gc.budget", cwd=alice, expect="5.0 GB")
    txgit_("remote", "add", "origin", "../team.git", cwd=alice)
    txgit_("push", cwd=alice, expect="pushed to origin")
    txgit_("clone", "team.git", "bob", cwd=work)
    txgit_("remote", "trust", "origin", cwd=bob)
    txgit_("fetch", cwd=bob)
    txgit_("pull", cwd=bob)
    txgit_("checkout", "main", cwd=bob)
    # the web view
    ran.add("serve")
    server = subprocess.Popen([TXGIT, "serve", "--port", "0"], cwd=alice, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        line = server.stdout.readline()
        url = re.search(r"http://\S+", line)
        if url is None:
            fail(f"`txgit serve` said {line!r}")
        page = urllib.request.urlopen(url.group(0).rstrip("/") + "/", timeout=30).read().decode()
        if "txgit-node" not in page:
            fail(f"`txgit serve`'s page has no commit graph:\n{page[:2000]}")
        print("  ok  txgit serve --port 0")
    finally:
        server.terminate()
        server.wait(timeout=30)
    # a kernel: %load_ext txgit, a cell's commit written by the git helper (txgit/gitwriter.py, run by
    # path), and the terminal commands that act on the kernel
    kernel = Kernel(alice)
    try:
        if "txgit: opened workspace" not in kernel.run("%load_ext txgit"):
            fail("%load_ext txgit did not say which workspace it opened")
        kernel.run("y = 42")
        kernel.run("%txgit auto off")
        kernel.run("z = 1")
        txgit_("status", cwd=alice, expect="added: z")
        txgit_("commit", "-m", "from the terminal", cwd=alice, expect="committed")
        log = txgit_("log", cwd=alice)
        if "cell [2]: y = 42" not in log or "from the terminal" not in log:
            fail(f"the kernel's commits are not in the log:\n{log}")
        kernel.run("%txgit checkout v1")
    finally:
        kernel.shutdown()
    jupyterlab_panel()
    from txgit.cli import app  # every command the CLI has

    commands = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands if c.callback}
    missing = commands - ran
    if missing:
        fail(f"not run from the wheel: {', '.join(sorted(missing))} (add them to .ci/wheel_smoke.py)")
    print(f"wheel smoke test: all {len(commands)} commands ran from the wheel")


def jupyterlab_panel() -> None:
    """The wheel's JupyterLab panel: its prebuilt lab extension and its server extension, switched on by
    the files the wheel puts in share/ and etc/ (no npm, no `jupyter ... enable`), as Jupyter lists them."""
    jupyter = shutil.which("jupyter", path=str(VENV / "bin"))
    if jupyter is None:
        fail("the jupyter extra installed no `jupyter` command")
    for args, expect in ((["labextension", "list"], r"txgit-labextension v\S+ enabled\s+OK"),
                         (["server", "extension", "list"], r"txgit\.jupyter enabled")):
        proc = subprocess.run([jupyter, *args], capture_output=True, text=True, timeout=120)
        out = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)  # its colours
        if proc.returncode != 0 or not re.search(expect, out):
            fail(f"`jupyter {' '.join(args)}` does not list txgit's extension as enabled:\n{out}")
        print(f"  ok  jupyter {' '.join(args)}: txgit's extension enabled")


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"wheel smoke test: {time.monotonic() - started:.1f} s")
