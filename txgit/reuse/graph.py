"""The experiment graph: every operation recorded in history, by lookup key.

Nothing is stored beside the commits: each auto-commit's ``code/cells.json``
holds its cell's operation (:mod:`txgit.sessions.operations`) and the commit
holds its outputs, so the graph travels with ``push``/``pull``/``clone``.
The index reads the commits that any branch, tag or remote-tracking ref
reaches, once each.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pygit2

from txgit.history import History, ref_tips
from txgit.sessions.operations import Operation
from txgit.workspace import Workspace


@dataclass
class RecordedOperation:
    """An operation as one commit recorded it: that commit holds its outputs."""

    commit: str
    time: int  # commit time (seconds since the epoch)
    op: Operation
    reused_from: str | None  # the commit it was itself loaded from, if it was a reuse
    summary: str  # the commit's first line
    seconds: float  # what this cell took: the run, or loading the results it reused

    @property
    def saved_seconds(self) -> float:
        """Time a reuse saved (0 for a run)."""
        return max(0.0, self.op.seconds - self.seconds) if self.reused_from else 0.0


class OperationIndex:
    """Recorded operations of a workspace's history, by key; :meth:`refresh` reads new commits."""

    def __init__(self, workspace: Workspace) -> None:
        # its own repository object: the session's background writer uses the other one
        self.history = History(workspace.history.repo.path)
        self.by_key: dict[str, list[RecordedOperation]] = {}
        self.all: list[RecordedOperation] = []
        self._seen: set[str] = set()
        self._tips: dict[str, str] = {}

    def refresh(self) -> None:
        repo = self.history.repo
        tips = {name: c for name, c in ref_tips(repo).items()
                if name == "HEAD" or name.startswith(("refs/heads/", "refs/tags/", "refs/remotes/"))}
        if tips == self._tips:
            return
        self._tips = tips
        stack = [pygit2.Oid(hex=t) for t in sorted(set(tips.values())) if t not in self._seen]
        while stack:
            oid = stack.pop()
            cid = str(oid)
            if cid in self._seen:
                continue
            self._seen.add(cid)
            try:
                commit = repo[oid]
            except (KeyError, ValueError, pygit2.GitError):
                continue
            stack.extend(p for p in commit.parent_ids if str(p) not in self._seen)
            for rec in self._read(commit):
                self.all.append(rec)
                self.by_key.setdefault(rec.op.key, []).append(rec)
        for recs in self.by_key.values():
            recs.sort(key=lambda r: r.time, reverse=True)

    def _read(self, commit: pygit2.Commit) -> Iterator[RecordedOperation]:
        data = self.history.read_file(commit, "code/cells.json")
        if data is None:
            return
        try:
            cells = json.loads(data)
        except ValueError:
            return
        if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
            return
        # A cell that changed no variable is settled with no outputs when it runs; of the others, only one
        # committed alone has outputs of its own (several in one commit: none of them has).
        live = [c for c in cells if not (isinstance(c.get("op"), dict) and c["op"].get("settled"))]
        for cell in [c for c in cells if c not in live] + (live if len(live) == 1 else []):
            rec = self._record(commit, cell)
            if rec is not None:
                yield rec

    @staticmethod
    def _record(commit: pygit2.Commit, cell: dict) -> RecordedOperation | None:
        op_doc = cell.get("op")
        op = Operation.from_json(op_doc)
        if op is None:
            return None
        reused = op_doc.get("reused_from") if isinstance(op_doc.get("reused_from"), str) else None
        try:
            seconds = float(cell.get("seconds", op.seconds))
        except (TypeError, ValueError):
            seconds = op.seconds
        return RecordedOperation(str(commit.id), commit.commit_time, op, reused, commit.message.split("\n", 1)[0],
                                 seconds)

    def remote_tips(self) -> dict[str, str]:
        """The remote-tracking refs as the last :meth:`refresh` saw them (a fetch moves them)."""
        return {name: c for name, c in self._tips.items() if name.startswith("refs/remotes/")}

    def candidates(self, key: str) -> list[RecordedOperation]:
        """Recorded runs of the operation ``key`` that can be reused, newest first."""
        self.refresh()
        return [r for r in self.by_key.get(key, []) if r.op.reusable]
