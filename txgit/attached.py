"""The kernels attached to a workspace, as their records say: which live kernel commits to which branch.

A kernel with the IPython extension writes ``.txgit/kernels/<pid>.json`` (its connection file, the
branch it commits to, its notebook; :mod:`txgit.sessions.kernel` writes them and talks to the kernels).
Reading them is the workspace's business too: a branch a live kernel commits to is held, as git
holds a branch checked out in another worktree (:meth:`txgit.workspace.Workspace.delete_branch`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from txgit.repository import TXGIT_DIR, Repository

KERNELS = "kernels"


@dataclass
class KernelInfo:
    pid: int
    connection_file: str
    record: Path
    started: float
    branch: str | None = None  # the branch its commits go to; None: detached
    notebook: str | None = None  # the notebook it runs, where Jupyter says (JPY_SESSION_NAME)

    def describe(self) -> str:
        """``kernel 1234 (analysis.ipynb, on main)``: how a terminal names it."""
        where = f"on {self.branch}" if self.branch else "detached"
        return f"kernel {self.pid} ({Path(self.notebook).name + ', ' if self.notebook else ''}{where})"


def kernels_dir(ws: Repository) -> Path:
    return ws.dir / KERNELS


def process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, /proc/PID/stat), which with the PID names one
    process: a PID is given again once its process is gone. None: no such process, or no /proc (macOS)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # after the command's name, which may hold spaces
    return int(fields[19]) if len(fields) > 19 and fields[19].isdigit() else None


def alive(pid: int, started: int | None = None) -> bool:
    """Whether process ``pid`` runs (a zombie does not: it answers nothing); given ``started`` (its
    :func:`process_start` when it was known), whether that very process does, not one given its PID since."""
    if started is not None:
        now = process_start(pid)
        if now is not None and now != started:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed kernel (OOM, kill -9) stays a zombie until its frontend reaps it: signals still "reach"
    # it, but it answers nothing and must not hold its branch meanwhile.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (macOS): what kill(0) said
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def live_kernels(ws: Repository) -> list[KernelInfo]:
    """Kernels serving ``ws``, newest first; records of dead ones are removed."""
    return live_kernels_at(ws.dir)


def live_kernels_at(txgit_dir: Path, *, tidy: bool = True) -> list[KernelInfo]:
    """Kernels serving the workspace whose ``.txgit`` folder is ``txgit_dir``, newest first; records of
    dead ones are removed with ``tidy`` (not in someone else's workspace, a push's remote)."""
    out = []
    folder = txgit_dir / KERNELS
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            d = json.loads(path.read_text())
            info = KernelInfo(int(d["pid"]), str(d["connection_file"]), path, float(d.get("started", 0)),
                              d.get("branch") if isinstance(d.get("branch"), str) else None,
                              d.get("notebook") if isinstance(d.get("notebook"), str) else None)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        # its process start (where recorded): a process given a killed kernel's PID since is not it, and
        # a killed kernel's connection file stays (Jupyter's restart reuses it)
        started = d.get("process_start")
        if alive(info.pid, started if isinstance(started, int) else None) and Path(info.connection_file).is_file():
            out.append(info)
        elif tidy:
            path.unlink(missing_ok=True)
    return sorted(out, key=lambda k: k.started, reverse=True)


def holders(ws: Repository, branch: str) -> list[KernelInfo]:
    """The live kernels that commit to ``branch``."""
    return [k for k in live_kernels(ws) if k.branch == branch]


def checked_out(repo_path: Path, branch: str) -> str | None:
    """Who holds ``branch`` where ``repo_path`` is a workspace's own repository (``WS/.txgit/repo.git``,
    a folder remote made of a colleague's workspace): "its HEAD" or a live kernel there, else None (and
    None for any other repository: a bare one serves no one's session)."""
    if repo_path.name != "repo.git" or repo_path.parent.name != TXGIT_DIR:
        return None
    try:
        head = (repo_path / "HEAD").read_text().strip()
    except OSError:
        return None
    if head == f"ref: refs/heads/{branch}":
        return "its HEAD is on it"
    held = [k for k in live_kernels_at(repo_path.parent, tidy=False) if k.branch == branch]
    return f"{held[0].describe()} commits to it" if held else None
