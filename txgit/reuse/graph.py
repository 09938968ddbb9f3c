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
from txgit.sessions import opslog
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
        self._dir = workspace.dir
        self._log_offset = 0  # how far the operations log was read
        self._known: set[tuple[str, str, float]] = set()  # runs recorded: (holder, key, seconds)

    def refresh(self) -> None:
        repo = self.history.repo
        tips = {name: c for name, c in ref_tips(repo).items()
                if name == "HEAD" or name.startswith(("refs/heads/", "refs/tags/", "refs/remotes/"))}
        self._read_log()
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
                self._add(rec)
        for recs in self.by_key.values():
            recs.sort(key=lambda r: r.time, reverse=True)

    def _add(self, rec: RecordedOperation) -> None:
        # a cell noted in the operations log and later in a commit is one run: the same key and holder,
        # and the same time taken to the microsecond
        run = (rec.commit, rec.op.key, rec.seconds)
        if run in self._known:
            return
        self._known.add(run)
        self.all.append(rec)
        self.by_key.setdefault(rec.op.key, []).append(rec)

    def _read_log(self) -> None:
        """Cells that changed no variable, from the operations log (:mod:`txgit.sessions.opslog`): those no
        commit records yet (the last cells of a session) are found there."""
        entries, self._log_offset = opslog.read(self._dir, self._log_offset)
        added = False
        for entry in entries:
            try:
                commit = self.history.repo[entry["commit"]]
            except (KeyError, ValueError, pygit2.GitError):
                continue  # a commit gc dropped, or one from another repository
            rec = self._record(commit, entry["cell"], str(commit.id), time=int(entry.get("time", 0)))
            if rec is not None:
                self._add(rec)
                added = True
        if added:
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
        # A cell that changed no variable is settled when it runs: its outputs (values equal to what the
        # state held) are in this commit's parent. Of the others, only one committed alone has outputs of
        # its own in this commit (several in one commit: none of them has).
        live = [c for c in cells if not (isinstance(c.get("op"), dict) and c["op"].get("settled"))]
        parent = str(commit.parent_ids[0]) if commit.parent_ids else None
        for cell in cells:
            if cell in live and len(live) != 1:
                continue
            rec = self._record(commit, cell, str(commit.id) if cell in live else parent)
            if rec is not None:
                yield rec

    @staticmethod
    def _record(commit: pygit2.Commit, cell: dict, holder: str | None,
                time: int | None = None) -> RecordedOperation | None:
        op_doc = cell.get("op")
        op = Operation.from_json(op_doc)
        if op is None:
            return None
        reused = op_doc.get("reused_from") if isinstance(op_doc.get("reused_from"), str) else None
        try:
            seconds = float(cell.get("seconds", op.seconds))
        except (TypeError, ValueError):
            seconds = op.seconds
        if holder is None:  # a settled cell before the first commit: nothing holds its outputs
            if op.outputs:
                return None
            holder = str(commit.id)
        summary = op_doc.get("summary") if isinstance(op_doc.get("summary"), str) else commit.message.split("\n", 1)[0]
        return RecordedOperation(holder, commit.commit_time if time is None else time, op, reused, summary, seconds)

    def remote_tips(self) -> dict[str, str]:
        """The remote-tracking refs as the last :meth:`refresh` saw them (a fetch moves them)."""
        return {name: c for name, c in self._tips.items() if name.startswith("refs/remotes/")}

    def candidates(self, key: str) -> list[RecordedOperation]:
        """Recorded runs of the operation ``key`` that can be reused, newest first."""
        self.refresh()
        return [r for r in self.by_key.get(key, []) if r.op.reusable]
