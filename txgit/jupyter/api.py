"""What the JupyterLab panel's server handlers answer: HTML fragments of :mod:`txgit.visual`, as dicts.

Pure Python over :class:`txgit.Workspace` (no tornado, no Jupyter), so it is tested without a server or a
browser. Read-only: every action that changes something (checkout, branch, commit, pull, push) runs in the
notebook's kernel through the ``%txgit`` magic (:mod:`txgit.jupyter.kernel`), never here.

Links to commits in the fragments are ``#txgit-commit-<id>``: the panel catches clicks on them.
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any

from txgit.errors import TxgitError
from txgit.visual.views import CSS, CommitView, DiffView, LogPage, VariableHistoryView
from txgit.workspace import Workspace

PAGE_SIZE = 200  # commits per page of the history: the panel asks for the next page as it scrolls
MAX_PAGE = 1000


def panel_href(commit_id: str) -> str:
    """Where a commit links to inside the panel (an anchor the panel intercepts)."""
    return f"#txgit-commit-{commit_id}"


def open_workspace(root: str) -> Workspace:
    """The workspace whose folder is ``root`` (the kernel says which): an absolute path, nothing else."""
    if not root or not os.path.isabs(root):
        raise TxgitError(f"not an absolute workspace folder: {root!r}")
    return Workspace.open(root)


def history(root: str, start: int = 0, count: int = PAGE_SIZE, *, branch: str | None = None,
            head: str | None = None) -> dict[str, Any]:
    """One page of the commit graph (every branch, remote-tracking branch and tag), newest first.

    ``head`` (and ``branch``, None when detached): where the notebook's kernel is, marked HEAD; the
    second kernel of a folder is on a branch of its own while HEAD stays on the first one's."""
    if start < 0 or not 0 < count <= MAX_PAGE:
        raise TxgitError(f"bad page: start {start}, count {count} (1 to {MAX_PAGE})")
    ws = open_workspace(root)
    here = (branch or None, head) if head else None
    page = LogPage(ws, start, count, href=panel_href, graph=_graph_of(ws), here=here)
    head = ws.head()
    return {"html": page.html(), "start": page.start, "stop": page.stop, "total": page.total,
            "branch": ws.branch, "head": head.id if head is not None else None,
            "ids": [c.id for c in page.commits], "version": _version(ws)}


def refs(root: str) -> dict[str, Any]:
    """Where every ref and HEAD point, as one short fingerprint. The panel asks every few seconds and
    redraws when it changed: a terminal's `txgit pull`, `checkout`, `commit` or `branch -d` beside the
    notebook moves refs without running a cell, and the panel showed the old picture until Refresh."""
    return {"version": _version(open_workspace(root))}


def _version(ws: Workspace) -> str:
    # every ref, not only branches and tags: a merge waiting for its conflicts holds refs of its own
    repo = ws.history.repo
    moved = hashlib.blake2b(digest_size=12)
    head = ws.history.head_commit()
    moved.update(f"HEAD {ws.branch} {head.id if head is not None else None}\n".encode())
    for name in sorted(repo.references):
        moved.update(f"{name} {repo.references[name].target}\n".encode())
    return moved.hexdigest()


_graphs: dict[str, tuple[tuple[Any, ...], Any]] = {}  # root -> (its refs when laid out, (log, layout))
_graphs_lock = threading.Lock()  # the handlers answer from worker threads


def _graph_of(ws: Workspace) -> Any:
    """The log and layout of every ref, kept while no ref moves: the next page of a long history then
    costs only its own commits (walking 2,000 commits and laying them out is most of a page's time)."""
    head = ws.head()
    refs = (tuple(sorted(ws.branches().items())), tuple(sorted(ws.tags().items())),
            tuple(sorted(ws.remote_branches().items())), head.id if head is not None else None)
    key = str(ws.root)
    with _graphs_lock:
        kept = _graphs.get(key)
        if kept is not None and kept[0] == refs:
            return kept[1]
    graph = LogPage.graph(ws)
    with _graphs_lock:
        if len(_graphs) >= 16:  # a few notebooks' workspaces, not every folder ever opened
            _graphs.pop(next(iter(_graphs)))
        _graphs[key] = (refs, graph)
    return graph


def commit(root: str, rev: str) -> dict[str, Any]:
    """One commit: its variables, what was not saved, the cell code it ran."""
    view = CommitView(open_workspace(root), rev, href=panel_href)
    return {"id": view.info.id, "short": view.info.short_id, "parents": list(view.info.parents),
            "summary": view.info.summary, "html": view.html()}


def diff(root: str, a: str, b: str) -> dict[str, Any]:
    """What changed inside each variable from ``a`` to ``b`` (frames, arrays, models: semantic diffs)."""
    view = DiffView(open_workspace(root), a, b, href=panel_href)
    added, removed, changed = view.diff.counts()
    return {"a": view.diff.a_id, "b": view.diff.b_id, "added": added, "removed": removed, "changed": changed,
            "html": view.html()}


def variable(root: str, name: str) -> dict[str, Any]:
    """The commits that added, changed or removed variable ``name``: its history, newest first."""
    name = name.strip()
    if not name.isidentifier():
        raise TxgitError(f"not a variable name: {name[:80]!r}")
    view = VariableHistoryView(open_workspace(root), name, href=panel_href)
    return {"name": name, "ids": [c.id for c, *_ in view.history], "html": view.html()}


def css() -> str:
    """The views' stylesheet (the same as the notebook's and `txgit serve`'s)."""
    return CSS
