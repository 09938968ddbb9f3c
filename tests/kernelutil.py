"""Drive a real ipykernel (jupyter_client) from tests and benchmarks."""

from __future__ import annotations

import os
import queue
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from jupyter_client.manager import start_new_kernel

if TYPE_CHECKING:
    import subprocess

    from txgit import Workspace


@dataclass
class CellResult:
    status: str
    stdout: str = ""
    stderr: str = ""
    error: str | None = None  # "ename: evalue"
    traceback: list = field(default_factory=list)  # the error's lines, as the frontend shows them
    execution_count: int | None = None
    outputs: list = field(default_factory=list)
    shown: list = field(default_factory=list)  # stdout text and display data, in the order they came


class Kernel:
    """A real ipykernel whose cwd is ``cwd``; ``run`` executes one cell and collects its output."""

    def __init__(self, cwd: Path, env: dict | None = None) -> None:
        self.cwd = Path(cwd)
        self.km, self.kc = start_new_kernel(cwd=str(cwd), env={**os.environ, **(env or {})}, startup_timeout=60)

    @property
    def pid(self) -> int:
        return self.km.provisioner.process.pid

    def run(self, code: str, timeout: float = 120, *, settle: bool = True) -> CellResult:
        """Execute ``code``; ``settle``: also wait for its auto-commit (a notebook's "Run All" does not)."""
        msg_id = self.kc.execute(code)
        out = CellResult("ok")
        shown_at: dict[str, int] = {}  # display id -> where in out.shown
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"no output from the kernel within {timeout} s for:\n{code}") from None
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            t, c = msg["msg_type"], msg["content"]
            if t == "stream":
                if c["name"] == "stdout":
                    out.stdout += c["text"]
                    if out.shown and isinstance(out.shown[-1], str):  # one stream, however it was flushed
                        out.shown[-1] += c["text"]
                    else:
                        out.shown.append(c["text"])
                else:
                    out.stderr += c["text"]
            elif t == "error":
                out.status, out.error = "error", f"{c['ename']}: {c['evalue']}"
                out.traceback = list(c.get("traceback") or [])
            elif t in ("execute_result", "display_data"):
                out.outputs.append(c["data"])
                out.shown.append(c["data"])
                if (c.get("transient") or {}).get("display_id"):
                    shown_at[c["transient"]["display_id"]] = len(out.shown) - 1
            elif t == "update_display_data":  # what a frontend shows: the display as last updated
                at = shown_at.get((c.get("transient") or {}).get("display_id"))
                if at is not None:
                    out.shown[at] = c["data"]
            elif t == "status" and c["execution_state"] == "idle":
                break
        # this request's reply: a loaded machine can leave an earlier one unread (a second
        # kernel_info reply from the start), which would shift every execution count by one
        while True:
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        out.execution_count = reply["content"].get("execution_count")
        if settle:
            self.settle()
        return out

    def settle(self) -> None:
        """Wait for the cell's auto-commit, which the kernel writes in the background holding the
        workspace lock (as ``Workspace.settle`` does; every txgit command that writes waits alike)."""
        import fcntl

        lock = self.cwd / ".txgit" / "lock"
        if lock.exists():
            with open(lock, "a") as f:
                fcntl.flock(f, fcntl.LOCK_SH)
                fcntl.flock(f, fcntl.LOCK_UN)

    def ok(self, code: str, timeout: float = 120) -> CellResult:
        r = self.run(code, timeout)
        if r.status != "ok":
            raise AssertionError(f"cell failed: {r.error}\n{code}\nstderr: {r.stderr}")
        return r

    def value(self, expr: str):
        """The value of ``expr`` in the kernel, through its repr (literals only)."""
        import ast

        r = self.ok(f"print(repr({expr}))")
        return ast.literal_eval(r.stdout.strip())

    def shutdown(self) -> None:
        if not self.km.has_kernel:  # (closed already, by the test itself)
            return
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)


@contextmanager
def notebooks(root: Path) -> Iterator[Callable[[str], Kernel]]:
    """Kernels in folder ``root`` opened as notebooks: ``open_notebook("first.ipynb")`` starts one whose
    session name is that file (how txgit names a kernel), when the test asks for it, as a user opens a
    second notebook beside the first; every kernel opened is shut down at the end."""
    opened: list[Kernel] = []

    def open_notebook(name: str) -> Kernel:
        kernel = Kernel(root, env={"JPY_SESSION_NAME": str(Path(root) / name)})
        opened.append(kernel)
        return kernel

    try:
        yield open_notebook
    finally:
        for kernel in opened:
            kernel.shutdown()


@contextmanager
def checked_out_in_a_fresh_kernel(root: Path, cells: list[str]) -> Iterator[Kernel]:
    """``cells`` run in a kernel with txgit, which is then closed; a fresh kernel of the same folder
    that checked out HEAD (what a user reopening the notebook gets)."""
    first = Kernel(root)
    try:
        first.ok("%load_ext txgit")
        for code in cells:
            first.ok(code)
    finally:
        first.shutdown()
    fresh = Kernel(root)
    try:
        fresh.ok("%load_ext txgit")
        r = fresh.ok("%txgit checkout HEAD")
        assert "error" not in r.stderr, r.stderr
        yield fresh
    finally:
        fresh.shutdown()


def silent_eval(kernel: Kernel, expr: str, timeout: float = 60):
    """Evaluate ``expr`` in the kernel without running a cell (no history, no auto-commit); literal result."""
    import ast

    msg_id = kernel.kc.execute("", silent=True, store_history=False, user_expressions={"r": expr})
    while True:
        reply = kernel.kc.get_shell_msg(timeout=timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    r = reply["content"]["user_expressions"]["r"]
    if r["status"] != "ok":
        raise AssertionError(f"{expr}: {r['ename']}: {r['evalue']}")
    return ast.literal_eval(r["data"]["text/plain"])


def silent_json(kernel: Kernel, expr: str, timeout: float = 60):
    """``silent_eval`` for a JSON-able value, passed as a JSON string: it survives a notebook that
    changed how values print (sympy's ``init_printing`` pretty-prints and wraps lists)."""
    import json

    return json.loads(silent_eval(kernel, f"__import__('json').dumps({expr})", timeout=timeout))


# A digest of every user variable, computed inside a kernel: equal digests = equal values.
DIGEST = r'''
def digest(ns):
    import hashlib, pickle, types, re
    out = {}
    skip = {"In", "Out", "exit", "quit", "get_ipython", "open"}
    for k, v in sorted(ns.items()):
        if k.startswith("_") or k in skip:
            continue
        if isinstance(v, types.ModuleType):
            out[k] = "module " + v.__name__
        elif isinstance(v, (types.FunctionType, type)):
            out[k] = "code " + hashlib.sha1(v.__code__.co_code + repr((v.__code__.co_names, v.__code__.co_varnames)).encode()).hexdigest()[:12] if isinstance(v, types.FunctionType) else "class " + v.__qualname__
        elif hasattr(v, "to_numpy") and hasattr(v, "columns"):
            import pandas as pd
            h = pd.util.hash_pandas_object(v, index=True).to_numpy().tobytes()
            out[k] = "frame " + hashlib.sha1(h + repr((list(v.columns), [str(t) for t in v.dtypes])).encode()).hexdigest()
        elif hasattr(v, "tobytes") and hasattr(v, "dtype"):
            out[k] = "array " + str(v.dtype) + str(v.shape) + hashlib.sha1(v.tobytes()).hexdigest()
        elif hasattr(v, "bit_generator"):
            out[k] = "rng " + repr(v.bit_generator.state)
        elif hasattr(v, "get_params"):
            attrs = {a: getattr(v, a) for a in sorted(vars(v)) if a.endswith("_") and not a.startswith("_")}
            out[k] = "est " + type(v).__name__ + repr(v.get_params()) + hashlib.sha1(pickle.dumps(attrs)).hexdigest()
        elif hasattr(v, "__dict__") and type(v).__module__ == "__main__":
            out[k] = "obj " + type(v).__name__ + repr(sorted(vars(v).items()))
        else:
            out[k] = "value " + repr(v)
    return out
'''


def digest(kernel: Kernel) -> dict:
    expr = f"(lambda g: (exec({DIGEST!r}, g), g['digest'](get_ipython().user_ns))[1])({{}})"
    return silent_eval(kernel, expr)


def silent_exec(kernel: Kernel, code: str, timeout: float = 120) -> None:
    """Run ``code`` as a silent request: no cell, so no pre/post_run_cell hooks fire and no history."""
    msg_id = kernel.kc.execute(code, silent=True, store_history=False)
    while True:
        reply = kernel.kc.get_shell_msg(timeout=timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    if reply["content"]["status"] != "ok":
        raise AssertionError(f"{code}: {reply['content'].get('ename')}: {reply['content'].get('evalue')}")


def txgit_drain_and_hooks(kernel: Kernel, cells: int) -> tuple[float, list[float]]:
    """After a run of ``cells`` cells with txgit: the seconds the kernel still needed to write the
    commits in flight (waited for and timed inside the kernel: a user's next txgit command waits for
    them too), and the seconds txgit's hooks took around each of those cells, as its session records."""
    session = "__import__('txgit.sessions.ipython').sessions.ipython.active()"
    drain = silent_json(kernel, f"(lambda s, pc: -pc() + (s.flush(), pc())[1])({session}.session, "
                                "__import__('time').perf_counter)", timeout=600)
    hooks = silent_json(kernel, f"{session}.hook_seconds")
    return drain, hooks[-cells:] if cells else []


# Times Kishu's own pre/post_run_cell hooks: callbacks run in the order they were registered, so a
# mark registered before Kishu's hooks and one after bracket them; one line per cell, in seconds.
KISHU_TIMER = """
def _txgit_kishu_timer(path):
    import time
    marks = {}
    def start(*args):
        marks["t"] = time.perf_counter()
    def after_pre(*args):
        marks["pre"] = time.perf_counter() - marks["t"]
    def after_post(*args):
        with open(path, "a") as f:
            f.write(f"{marks.pop('pre', 0.0) + time.perf_counter() - marks['t']}\\n")
    return start, after_pre, after_post
"""


def kishu_kernel(folder: Path, cells: list[str], hook_times: Path | None = None, env: dict | None = None) -> Kernel:
    """A real ipykernel with Kishu (https://github.com/illinoisdata/kishu) checkpointing after every cell.

    Kishu finds its notebook through a Jupyter server and saves/reloads it through the browser
    (ipylab). With no frontend we use what Kishu itself ships for that case, nothing patched:
    ``TEST_NOTEBOOK_PATH`` names the notebook file (and a fixed kernel id), ``ENV_KISHU_TEST_MODE``
    skips asking the browser to save/reload the notebook, ``KISHU_PATH_ROOT`` keeps its config out of
    $HOME. The notebook file holds ``cells``, as the frontend would have saved it; Kishu reads it
    after each cell as usual. ``init_kishu()`` is what a user runs; it is sent as a silent request so
    that its own cell is not half-hooked (a cell that installs the hooks gets post_run_cell without
    pre_run_cell, which Kishu reports as an error). Its database is ``folder/notebook.kishudb``.
    ``hook_times``: a file that gets the seconds Kishu's hooks took, one line per cell; ``env``: more
    environment for the kernel."""
    import nbformat

    notebook = Path(folder) / "notebook.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells]), notebook)
    kishu_env = {"TEST_NOTEBOOK_PATH": str(notebook), "ENV_KISHU_TEST_MODE": "1", "KISHU_PATH_ROOT": str(folder)}
    k = Kernel(folder, env={**(env or {}), **kishu_env})
    try:
        init = "from kishu import init_kishu\ninit_kishu()\n"
        if hook_times is not None:
            init = (KISHU_TIMER + f"_s, _a, _b = _txgit_kishu_timer({str(hook_times)!r})\n"
                    "get_ipython().events.register('pre_run_cell', _s)\n"
                    "get_ipython().events.register('post_run_cell', _s)\n" + init
                    + "get_ipython().events.register('pre_run_cell', _a)\n"
                    "get_ipython().events.register('post_run_cell', _b)\n"
                    "del _s, _a, _b, _txgit_kishu_timer\n")
        silent_exec(k, init)
    except BaseException:
        k.shutdown()
        raise
    return k


def kishu_commits(folder: Path) -> list[str]:
    """Kishu's commit ids in ``folder``'s database, oldest first (read from outside the kernel)."""
    import sqlite3

    con = sqlite3.connect(Path(folder) / "notebook.kishudb")
    try:
        return [r[0] for r in con.execute("select commit_id from commit_entry order by rowid")]
    finally:
        con.close()


class User:
    """A workspace, its kernel and a terminal in it."""

    def __init__(self, name: str, ws: Workspace, run_txgit, env: dict) -> None:
        self.name, self.ws, self._run, self.env = name, ws, run_txgit, env
        self.kernel = Kernel(ws.root, env=env)
        self.kernel.ok("%load_ext txgit")

    def tx(self, *args: str, code: int | None = 0) -> subprocess.CompletedProcess:
        proc = self._run(*args, cwd=self.ws.root, env=self.env)
        if code is not None:
            assert proc.returncode == code, f"{self.name}: txgit {' '.join(args)} -> {proc.returncode}\n" \
                                            f"{proc.stdout}\n{proc.stderr}"
        return proc

    def cell(self, code: str):
        return self.kernel.ok(code)

    def value(self, expr: str):
        return silent_eval(self.kernel, expr)

    def commits(self) -> int:
        return len(self.ws.log())

    def shutdown(self) -> None:
        self.kernel.shutdown()
