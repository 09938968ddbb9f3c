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
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from txgit.errors import TxgitError
from txgit.workspace import Workspace

KERNELS = "kernels"


class NoKernelAttached(TxgitError):
    """A live-state command with no kernel running the extension in this workspace."""


class KernelError(TxgitError):
    """The attached kernel did not answer, or answered with an error."""


@dataclass
class KernelInfo:
    pid: int
    connection_file: str
    record: Path
    started: float


def kernels_dir(ws: Workspace) -> Path:
    return ws.dir / KERNELS


def register_kernel(ws: Workspace, connection_file: str, pid: int | None = None) -> Path:
    """Record that kernel ``pid`` (this process by default) serves ``ws``."""
    pid = os.getpid() if pid is None else pid
    folder = kernels_dir(ws)
    folder.mkdir(exist_ok=True)
    path = folder / f"{pid}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": pid, "connection_file": str(connection_file), "started": time.time()}))
    os.replace(tmp, path)
    return path


def unregister_kernel(ws: Workspace, pid: int | None = None) -> None:
    try:
        (kernels_dir(ws) / f"{os.getpid() if pid is None else pid}.json").unlink()
    except FileNotFoundError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_kernels(ws: Workspace) -> list[KernelInfo]:
    """Kernels serving ``ws``, newest first; records of dead ones are removed."""
    out = []
    folder = kernels_dir(ws)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            d = json.loads(path.read_text())
            info = KernelInfo(int(d["pid"]), str(d["connection_file"]), path, float(d.get("started", 0)))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if _alive(info.pid) and Path(info.connection_file).is_file():
            out.append(info)
        else:
            path.unlink(missing_ok=True)
    return sorted(out, key=lambda k: k.started, reverse=True)


def attached_kernel(ws: Workspace) -> KernelInfo | None:
    """The newest live kernel serving ``ws``, or None."""
    kernels = live_kernels(ws)
    return kernels[0] if kernels else None


def require_kernel(ws: Workspace, verb: str) -> KernelInfo:
    kernel = attached_kernel(ws)
    if kernel is None:
        raise NoKernelAttached(
            f"no kernel attached to {ws.root}: `txgit {verb}` acts on a live session "
            "(run `%load_ext txgit` in a kernel started in this workspace)"
        )
    return kernel


def call_kernel(kernel: KernelInfo, request: dict[str, Any], timeout: float = 600.0) -> dict[str, Any]:
    """Run one request in the kernel's session (see ``txgit.sessions.ipython.remote``)."""
    from jupyter_client import BlockingKernelClient

    client = BlockingKernelClient(connection_file=kernel.connection_file)
    client.load_connection_file()
    client.start_channels()
    try:
        expr = f"__import__('txgit.sessions.ipython', fromlist=['remote']).remote({json.dumps(request)!r})"
        msg_id = client.execute("", silent=True, store_history=False, user_expressions={"r": expr})
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise KernelError(f"kernel {kernel.pid} did not answer within {timeout:.0f} s (busy running a cell?)")
            try:
                reply = client.get_shell_msg(timeout=min(left, 5.0))
            except Exception:  # queue.Empty: keep waiting until the deadline
                if not client.is_alive():
                    raise KernelError(f"kernel {kernel.pid} stopped answering") from None
                continue
            if reply.get("parent_header", {}).get("msg_id") == msg_id:
                break
    finally:
        client.stop_channels()
    content = reply["content"]
    result = content.get("user_expressions", {}).get("r", {})
    if content.get("status") != "ok" or result.get("status") != "ok":
        err = result or content
        raise KernelError(f"kernel {kernel.pid}: {err.get('ename', 'error')}: {err.get('evalue', '')}")
    answer = json.loads(ast.literal_eval(result["data"]["text/plain"]))
    if not answer.get("ok"):
        raise TxgitError(answer.get("error", "the kernel refused the request"))
    return answer


def commit_in_kernel(ws: Workspace, message: str) -> dict[str, Any]:
    """Commit the attached kernel's live namespace; returns the kernel's answer (commit id, counts)."""
    return call_kernel(require_kernel(ws, "commit"), {"op": "commit", "message": message})


def checkout_in_kernel(ws: Workspace, rev: str, *, force: bool = False, new_branch: str | None = None,
                       trust: bool = False, safe: bool = False) -> dict[str, Any]:
    """Check ``rev`` out into the attached kernel (it moves HEAD too); returns its answer."""
    return call_kernel(require_kernel(ws, "checkout"), {"op": "checkout", "rev": rev, "force": force,
                                                        "new_branch": new_branch, "trust": trust, "safe": safe})
