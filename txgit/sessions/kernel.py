"""A terminal beside a kernel: find the kernel attached to a workspace and act on its live state.

The IPython extension records its kernel's connection file in
``.txgit/kernels/<pid>.json``; here a terminal command finds the live one
(stale records, whose process is gone, are removed) and asks it, through
jupyter_client, to commit or check out. The request runs in the kernel as a
silent ``user_expressions`` evaluation: no cell, no history entry, no
auto-commit of its own.
"""

from __future__ import annotations

import ast
import fcntl
import json
import os
import re
import sys
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# the records' reading is the workspace's too (a branch a live kernel commits to is held): txgit.attached
from txgit.attached import KernelInfo, kernels_dir, live_kernels, process_start
from txgit.errors import Interrupted, TxgitError, kind_named
from txgit.history import validate_ref_name
from txgit.packs import write_atomic
from txgit.sessions.words import terminal_words
from txgit.state import VarRecord
from txgit.workspace import StateDiff, Workspace


class NoKernelAttached(TxgitError):
    """A live-state command with no kernel running the extension in this workspace."""


class KernelError(TxgitError):
    """The attached kernel did not answer, or answered with an error."""


def register_kernel(ws: Workspace, connection_file: str, pid: int | None = None, *, branch: str | None = None,
                    notebook: str | None = None) -> Path:
    """Record that kernel ``pid`` (this process by default) serves ``ws``, committing to ``branch``."""
    pid = os.getpid() if pid is None else pid
    folder = kernels_dir(ws)
    folder.mkdir(exist_ok=True)
    path = folder / f"{pid}.json"
    _write_record(path, {"pid": pid, "connection_file": str(connection_file), "started": time.time(),
                         "process_start": process_start(pid), "branch": branch, "notebook": notebook})
    return path


@contextmanager
def claiming(ws: Workspace) -> Iterator[None]:
    """One attaching kernel at a time chooses its branch and writes the record that says it holds it:
    two kernels opened at the same moment otherwise both saw no holder and both took HEAD's branch.
    (Its own lock file: the workspace lock is taken again inside, by a branch made for the kernel.)"""
    folder = kernels_dir(ws)
    folder.mkdir(exist_ok=True)
    with open(folder / "claim.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def update_kernel(ws: Workspace, branch: str | None, pid: int | None = None) -> None:
    """The kernel (this process by default) now commits to ``branch`` (None: detached)."""
    path = kernels_dir(ws) / f"{os.getpid() if pid is None else pid}.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    record["branch"] = branch
    _write_record(path, record)


def _write_record(path: Path, record: dict[str, Any]) -> None:
    write_atomic(str(path), json.dumps(record).encode())  # a full disk leaves the old record, no temp file


def unregister_kernel(ws: Workspace, pid: int | None = None) -> None:
    try:
        (kernels_dir(ws) / f"{os.getpid() if pid is None else pid}.json").unlink()
    except FileNotFoundError:
        pass


def notebook_name() -> str | None:
    """The notebook this kernel runs, as Jupyter Server tells its kernels (JPY_SESSION_NAME)."""
    name = os.environ.get("JPY_SESSION_NAME", "").strip()
    return name or None


def branch_for(ws: Workspace, notebook: str | None, pid: int | None = None) -> tuple[str | None, str | None]:
    """The branch a kernel attaching now commits to, and what to tell the user about it (or None).

    HEAD's branch, unless another live kernel holds it: then a branch of its own, named after its
    notebook (``analysis.ipynb`` -> ``analysis``, ``analysis-2`` if that is held too) or ``kernel-PID``,
    started where HEAD is, so that two kernels never write one branch unknowingly."""
    pid = os.getpid() if pid is None else pid
    current = ws.branch
    held = {k.branch: k for k in live_kernels(ws) if k.pid != pid and k.branch is not None}
    if current is None or current not in held:
        return current, None
    stem = Path(notebook).stem if notebook else ""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or f"kernel-{pid}"
    branches = ws.branches()
    name, n = stem, 1
    while name in held or name == current or not _valid_branch(name):
        n += 1
        name = f"{stem}-{n}"
    head = ws.head()
    if name not in branches and head is not None:
        ws.create_branch(name, head.id)
        made = f"new branch '{name}' at {head.short_id}"
    else:
        made = f"branch '{name}'" + ("" if name in branches else " (no commits yet)")
    return name, (f"{held[current].describe()} holds branch '{current}': this kernel commits to {made}")


def _valid_branch(name: str) -> bool:
    try:
        validate_ref_name("branch", name)
    except TxgitError:
        return False
    return True


def attached_kernel(ws: Workspace, which: str | None = None) -> KernelInfo | None:
    """The live kernel serving ``ws`` that a terminal command acts on, or None when none is attached.

    ``which``: a pid, a notebook (path, name or stem) or the branch a kernel is on. Without it, the only
    kernel attached; several attached is an error that lists them (the command must say which).
    ``TXGIT_KERNEL`` in the environment stands for ``which`` (a magic sets it to its own kernel)."""
    which = which or os.environ.get("TXGIT_KERNEL") or None
    if which == str(os.getpid()):  # a magic of this very kernel (a terminal IPython has no record)
        from txgit.sessions.ipython import active

        ext = active()
        if ext is not None and ext.workspace.root == ws.root:
            return KernelInfo(os.getpid(), "", Path(ext.kernel_record or ""), 0.0, ext.session.branch, ext.notebook)
    kernels = live_kernels(ws)
    if which is not None:
        for k in kernels:
            names = {str(k.pid), k.branch or ""}
            if k.notebook:
                names |= {k.notebook, Path(k.notebook).name, Path(k.notebook).stem}
            if which in names:
                return k
        listed = "; ".join(k.describe() for k in kernels) or "none"
        raise NoKernelAttached(f"no kernel {which!r} attached to {ws.root} (attached: {listed})")
    if len(kernels) > 1:
        listed = "; ".join(k.describe() for k in kernels)
        raise TxgitError(f"{len(kernels)} kernels are attached to {ws.root}: {listed}; "
                         "say which with --kernel PID, NOTEBOOK or BRANCH")
    return kernels[0] if kernels else None


def lone_kernel_branch(ws: Workspace) -> str | None:
    """The branch of the only kernel attached where it is not HEAD's (the second kernel of a folder
    whose first was closed), else None: the branch a terminal's commit, pull, push and log act on.
    Several kernels attached: HEAD's, as in git. None in a magic (``TXGIT_KERNEL``), whose HEAD is its
    kernel's already."""
    if os.environ.get("TXGIT_KERNEL"):
        return None
    try:
        k = attached_kernel(ws)
    except TxgitError:
        return None
    return k.branch if k is not None and k.branch is not None and k.branch != ws.branch else None


def uncommitted_in_kernels(ws: Workspace, branches: Collection[str]) -> list[tuple[KernelInfo, list[str]]]:
    """The live kernels on ``branches`` (a magic's own included) with variables changed since their last
    commit, and those names: what a push of those branches does not carry. A kernel that does not answer
    within seconds (a long cell) is left out: a push does not wait for it."""
    kernels = {k.pid: k for k in live_kernels(ws)}
    if os.environ.get("TXGIT_KERNEL"):  # a terminal IPython's magic: its kernel has no record
        k = attached_kernel(ws)
        if k is not None:
            kernels[k.pid] = k
    out = []
    for k in kernels.values():
        if k.branch is None or k.branch not in branches:
            continue
        try:
            answer = call_kernel(k, {"op": "status"}, timeout=5)
        except TxgitError:
            continue
        names = sorted(answer["added"] + answer["modified"] + answer["removed"])
        if names:
            out.append((k, names))
    return out


def diff_in_kernel(ws: Workspace, *, kernel: str | None = None) -> tuple[KernelInfo, StateDiff, str | None]:
    """The attached kernel's uncommitted changes against where it is (its last commit), with their records:
    ``git diff`` with no revision; and the label of the merge it is in, if any (then the changes are
    against the merge's state: its last commit with what the merge took so far, as status compares).
    No kernel: :class:`NoKernelAttached`, saying there is nothing live."""
    k = attached_kernel(ws, kernel)
    if k is None:
        raise NoKernelAttached(f"no kernel attached to {ws.root}: nothing live to compare with HEAD "
                               "(`txgit diff A B` compares two commits)")
    answer = call_kernel(k, {"op": "diff"})

    def rec(line: str) -> VarRecord:
        return VarRecord.from_bytes(line.encode())

    out = StateDiff(answer["base"], "(namespace)")
    out.added = {n: rec(r) for n, r in answer["added"].items()}
    out.removed = {n: rec(r) for n, r in answer["removed"].items()}
    out.changed = {n: (rec(o), rec(r)) for n, (o, r) in answer["changed"].items()}
    return k, out, answer.get("merging")


def require_kernel(ws: Workspace, verb: str, which: str | None = None) -> KernelInfo:
    kernel = attached_kernel(ws, which)
    if kernel is None:
        raise NoKernelAttached(
            f"no kernel attached to {ws.root}: `txgit {verb}` acts on a live session "
            "(run `%load_ext txgit` in a kernel started in this workspace)"
        )
    return kernel


_NOTICE_AFTER = 1.0  # seconds a terminal command waits for a kernel before it says so


def call_kernel(kernel: KernelInfo, request: dict[str, Any], timeout: float = 600.0) -> dict[str, Any]:
    """Run one request in the kernel's session (see ``txgit.sessions.ipython.remote``)."""
    if kernel.pid == os.getpid():  # a CLI verb run by a magic inside that kernel: it is busy with us
        from txgit.sessions.ipython import remote

        return _answer(json.loads(remote(json.dumps(request))))
    from jupyter_client import BlockingKernelClient

    client = BlockingKernelClient(connection_file=kernel.connection_file)
    client.load_connection_file()
    client.start_channels()
    msg_id = None
    shown = False
    try:
        expr = f"__import__('txgit.sessions.ipython', fromlist=['remote']).remote({json.dumps(request)!r})"
        msg_id = client.execute("", silent=True, store_history=False, user_expressions={"r": expr})
        started = time.monotonic()
        deadline = started + timeout
        # a request waits for the cell the kernel runs: on a terminal, said after a second (and erased once
        # it answers), so that a long cell does not look like a hung command; a pipe or log gets the result
        notice = sys.stderr.isatty()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise KernelError(f"kernel {kernel.pid} did not answer within {timeout:.0f} s (busy running a cell?)")
            try:
                reply = client.get_shell_msg(timeout=min(left, 0.5 if notice and not shown else 5.0))
            except Exception:  # queue.Empty: keep waiting until the deadline
                if not client.is_alive():
                    raise KernelError(f"kernel {kernel.pid} stopped answering") from None
                if notice and not shown and time.monotonic() - started >= _NOTICE_AFTER:
                    sys.stderr.write(f"waiting for kernel {kernel.pid}, which runs a cell first ... "
                                     "(Ctrl-C stops waiting)")
                    sys.stderr.flush()
                    shown = True
                continue
            if reply.get("parent_header", {}).get("msg_id") == msg_id:
                break
    except KeyboardInterrupt as e:  # Ctrl-C in the terminal stops the waiting, not the kernel
        raise Interrupted(_left_to_kernel(kernel, str(request.get("op")), asked=msg_id is not None)) from e
    finally:
        if shown:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()
        client.stop_channels()
    content = reply["content"]
    result = content.get("user_expressions", {}).get("r", {})
    if content.get("status") != "ok" or result.get("status") != "ok":
        err = result or content
        raise KernelError(f"kernel {kernel.pid}: {err.get('ename', 'error')}: {err.get('evalue', '')}")
    return _answer(json.loads(ast.literal_eval(result["data"]["text/plain"])))


def _left_to_kernel(kernel: KernelInfo, op: str, *, asked: bool) -> str:
    """What Ctrl-C during :func:`call_kernel` leaves: nothing, or the kernel doing what it was asked."""
    if not asked:
        return f"nothing was changed: kernel {kernel.pid} had not been asked anything yet"
    if op == "commit":
        return (f"stopped waiting for kernel {kernel.pid}, which goes on with the commit (a commit is written "
                "whole or not at all: `txgit log` shows it once it is)")
    return f"stopped waiting for kernel {kernel.pid}, which goes on with the {op} (`txgit status` shows where it is)"


def _answer(answer: dict[str, Any]) -> dict[str, Any]:
    if not answer.get("ok"):
        cls = kind_named(str(answer.get("kind")))  # the same kind of error as in the kernel
        # the kernel words its advice for its notebook; this is a terminal
        raise cls(terminal_words(str(answer.get("error", "the kernel refused the request"))))
    return answer


def commit_in_kernel(ws: Workspace, message: str, *, kernel: str | None = None,
                     allow_empty: bool = False) -> dict[str, Any]:
    """Commit the attached kernel's live namespace; returns the kernel's answer (commit id, counts)."""
    return call_kernel(require_kernel(ws, "commit", kernel),
                       {"op": "commit", "message": message, "allow_empty": allow_empty})


def checkout_in_kernel(ws: Workspace, rev: str, *, force: bool = False, new_branch: str | None = None,
                       trust: bool = False, safe: bool = False, kernel: str | None = None) -> dict[str, Any]:
    """Check ``rev`` out into the attached kernel (it moves HEAD too); returns its answer."""
    return call_kernel(require_kernel(ws, "checkout", kernel), {"op": "checkout", "rev": rev, "force": force,
                                                                "new_branch": new_branch, "trust": trust,
                                                                "safe": safe})
