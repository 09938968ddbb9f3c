"""History as pictures: the commit graph, one commit, the diff of two states, as HTML and text.

Each view is an object with ``_repr_html_`` (Jupyter displays it as HTML) and
``__repr__`` (terminals and logs get text), built from a :class:`txgit.Workspace`:

    LogView(ws)                  # the commit graph with branches (origin/… too), tags and what each commit changed
    CommitView(ws, "HEAD~1")     # one commit: its variables, what was not saved, the cell code
    DiffView(ws, "main", "exp")  # what changed inside each variable (see txgit.visual.diffs)

``%txgit log``, ``%txgit show`` and ``%txgit diff`` display these, and ``txgit
serve`` puts the same HTML fragments in its pages; ``href`` decides where a
commit links to (the web pages) — without it, clicking a commit id in a
notebook puts ``%txgit checkout ID`` into a new cell (classic Notebook) or on
the clipboard (JupyterLab).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from html import escape
from typing import Any

from txgit.history import CommitInfo, RevRange
from txgit.state import UNPICKLABLE
from txgit.visual.diffs import SemanticDiff, VariableChange, semantic_diff
from txgit.visual.graph import render_graph
from txgit.visual.layout import Layout, layout
from txgit.visual.text import Refs, added_diff, change_summary, format_date, human_size, record_kind
from txgit.workspace import StateDiff, Workspace

ROW = 24  # px per commit row
LANE = 16  # px per lane
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]

Href = Callable[[str], str]  # commit id -> URL

CSS = """
.txgit-view { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; font-size: 13px;
  color: #1b1f23; line-height: 1.4; }
.txgit-view code, .txgit-view .txgit-id, .txgit-view pre { font-family: SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 12px; }
.txgit-view .txgit-graph { position: relative; }
.txgit-view .txgit-graph svg { position: absolute; left: 0; top: 0; }
.txgit-view .txgit-row { height: %(row)dpx; line-height: %(row)dpx; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }
.txgit-view .txgit-id { color: #b08800; text-decoration: none; cursor: pointer; }
.txgit-view .txgit-ref { display: inline-block; line-height: 16px; padding: 0 5px; margin-right: 3px;
  border-radius: 8px; font-size: 11px; background: #dcffe4; color: #165c26; border: 1px solid #85e89d; }
.txgit-view .txgit-ref.head { background: #dbedff; color: #032f62; border-color: #79b8ff; }
.txgit-view .txgit-ref.tag { background: #fff5b1; color: #735c0f; border-color: #ffdf5d; }
.txgit-view .txgit-ref.remote { background: #ffeef0; color: #86181d; border-color: #fdaeb7; }
.txgit-view .txgit-msg { margin: 0 6px; }
.txgit-view .txgit-add { color: #22863a; }
.txgit-view .txgit-del { color: #cb2431; }
.txgit-view .txgit-mod { color: #b36200; }
.txgit-view .txgit-dim { color: #6a737d; }
.txgit-view table.txgit-table { border-collapse: collapse; margin: 4px 0 8px 0; }
.txgit-view table.txgit-table th, .txgit-view table.txgit-table td { border: 1px solid #e1e4e8; padding: 2px 6px;
  text-align: left; vertical-align: top; }
.txgit-view table.txgit-table th { background: #f6f8fa; }
.txgit-view .txgit-var { margin: 6px 0 10px 0; padding: 4px 8px; border-left: 3px solid #e1e4e8; }
.txgit-view .txgit-var.added { border-color: #34d058; }
.txgit-view .txgit-var.removed { border-color: #d73a49; }
.txgit-view .txgit-var.changed { border-color: #f9c513; }
.txgit-view ul.txgit-facts { margin: 2px 0; padding-left: 18px; }
.txgit-view pre { background: #f6f8fa; padding: 6px; overflow-x: auto; }
.txgit-view td.old { background: #ffeef0; } .txgit-view td.new { background: #e6ffed; }
""" % {"row": ROW}

_CHECKOUT_JS = (
    "var c=this.dataset.cmd;try{if(window.Jupyter&&Jupyter.notebook){var cell=Jupyter.notebook.insert_cell_below('code');"
    "cell.set_text(c);Jupyter.notebook.select_next();return false;}}catch(e){}"
    "if(navigator.clipboard){navigator.clipboard.writeText(c);}this.title='copied: '+c;return false;"
)


def _wrap(body: str) -> str:
    return f'<div class="txgit-view"><style>{CSS}</style>{body}</div>'


def _id_link(info_id: str, href: Href | None) -> str:
    short = escape(info_id[:8])
    if href is not None:
        return f'<a class="txgit-id" href="{escape(href(info_id))}" data-commit="{escape(info_id)}">{short}</a>'
    cmd = f"%txgit checkout {info_id[:8]}"
    return (f'<a class="txgit-id" href="#" data-commit="{escape(info_id)}" data-cmd="{escape(cmd)}" '
            f'title="click: {escape(cmd)}" onclick="{escape(_CHECKOUT_JS)}">{short}</a>')


def _refs_html(refs: list[str], remote: Collection[str] = ()) -> str:
    """Decorations as labels; ``remote``: which of them are remote-tracking branches (``origin/main``)."""
    out = []
    for ref in refs:
        cls = "head" if ref.startswith("HEAD") else "tag" if ref.startswith("tag: ") else \
            "remote" if ref in remote else ""
        out.append(f'<span class="txgit-ref {cls}">{escape(ref)}</span>')
    return "".join(out)


def _changes_html(diff: StateDiff, limit: int = 8) -> str:
    items: list[str] = [f'<span class="txgit-add">+{escape(n)}</span>' for n in diff.added]
    for name, (old, new) in diff.changed.items():
        what = ""
        if old.summary != new.summary:
            o, n = old.summary.split(" ", 1), new.summary.split(" ", 1)
            shown = f"{o[1]} → {n[1]}" if len(o) == 2 and len(n) == 2 and o[0] == n[0] else f"{old.summary} → {new.summary}"
            what = f" ({escape(shown)})"
        items.append(f'<span class="txgit-mod">~{escape(name)}{what}</span>')
    items.extend(f'<span class="txgit-del">-{escape(n)}</span>' for n in diff.removed)
    if len(items) > limit:
        items = items[:limit] + [f'<span class="txgit-dim">… (+{len(items) - limit} more)</span>']
    return "&nbsp; ".join(items)


def graph_svg(lay: Layout, *, row: int = ROW, lane: int = LANE, rows: range | None = None) -> str:
    """The lanes of a commit graph as one SVG: a dot per commit, a line per parent edge.

    ``rows``: draw only that window of rows (a page of a long history), lines crossing its edges cut
    there; colours and lanes are those of the whole picture, so pages put one under another line up.
    """
    window = rows if rows is not None else range(0, max(lay.rows, 1))
    width = max(lay.lanes, 1) * lane + lane // 2
    height = max(len(window), 1) * row

    def x(col: int) -> float:
        return col * lane + lane / 2 + 2

    def y(r: int) -> float:
        return (r - window.start) * row + row / 2

    parts = [f'<svg class="txgit-lanes" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}">']
    for e in lay.edges:
        if rows is not None and (e.points[0][0] >= window.stop or
                                 (e.points[-1][0] < window.start and e.parent_shown)):
            continue  # wholly above or below the window
        (r0, c0), rest = e.points[0], e.points[1:]
        d = f"M{x(c0)},{y(r0)}"
        prev = (r0, c0)
        for r, c in rest:
            if c == prev[1]:
                d += f" L{x(c)},{y(r)}"
            else:  # a bend: a smooth S from one lane to the other over one row
                mid = (y(prev[0]) + y(r)) / 2
                d += f" C{x(prev[1])},{mid} {x(c)},{mid} {x(c)},{y(r)}"
            prev = (r, c)
        if not e.parent_shown:  # the parent is below the cut: the line runs out
            d += f" L{x(prev[1])},{height}"
        color = PALETTE[max(c for _, c in e.points[:2]) % len(PALETTE)]
        parts.append(f'<path class="txgit-edge" data-child="{escape(e.child)}" data-parent="{escape(e.parent)}" '
                     f'd="{d}" stroke="{color}" stroke-width="2" fill="none"/>')
    for n in lay.nodes:
        if n.row not in window:
            continue
        color = PALETTE[n.lane % len(PALETTE)]
        parts.append(f'<circle class="txgit-node" data-commit="{escape(n.id)}" cx="{x(n.lane)}" cy="{y(n.row)}" r="5" '
                     f'fill="{color}" stroke="white" stroke-width="1.5"/>')
    parts.append("</svg>")
    return "".join(parts)


def _commit_changes(ws: Workspace, info: CommitInfo) -> StateDiff:
    """What a commit changed against its first parent, from records only (no blob is read)."""
    if info.parents:
        return ws.diff(info.parents[0], info.id)
    return added_diff("", info.id, ws.state(info.id).variables)


def _row_html(c: CommitInfo, refs: list[str], remote: Collection[str], changes: StateDiff, href: Href | None) -> str:
    """One commit's line beside the graph: id, refs, message, date, what it changed."""
    return (f'<div class="txgit-row" data-commit="{escape(c.id)}">{_id_link(c.id, href)} '
            f'{_refs_html(refs, remote)}<span class="txgit-msg">{escape(c.summary)}</span>'
            f'<span class="txgit-dim" title="{escape(c.author)}">'
            f'{escape(c.time.astimezone().strftime("%Y-%m-%d %H:%M"))}</span>&nbsp; {_changes_html(changes)}</div>')


class LogView:
    """The commit graph: lanes for branches and merges, refs, messages, what each commit changed.

    ``rev``: commits reachable from it (default: every branch, remote-tracking branch and tag, like ``log --all``).
    ``href``: commit id -> URL for links (the web view); None: click to check out (notebook).
    ``here``: (branch or None, commit) marked HEAD instead of the workspace's (a kernel on a branch of its own).
    """

    def __init__(self, ws: Workspace, rev: str | None = None, *, all_refs: bool | None = None,
                 max_count: int | None = None, href: Href | None = None,
                 here: tuple[str | None, str] | None = None) -> None:
        self.workspace = ws
        all_refs = rev is None if all_refs is None else all_refs
        self.commits: list[CommitInfo] = ws.log(rev, all_refs=all_refs, max_count=max_count)
        refs = Refs(ws, here)
        self.refs = {c.id: refs(c) for c in self.commits}
        self._remote = refs.remote
        self.changes = {c.id: _commit_changes(ws, c) for c in self.commits}
        self.layout = layout([(c.id, c.parents) for c in self.commits])
        self.href = href
        # an empty range is news (nothing to pull, nothing to push), not an empty history
        self._none = "no commits yet" if rev is None or RevRange.parse(rev) is None else f"no commits in {rev}"

    def html(self) -> str:
        """The graph as an HTML fragment (no <style>; see :data:`CSS`)."""
        if not self.commits:
            return f'<div class="txgit-log txgit-dim">{escape(self._none)}</div>'
        lanes_px = max(self.layout.lanes, 1) * LANE + LANE // 2 + 6
        rows = [_row_html(c, self.refs[c.id], self._remote, self.changes[c.id], self.href) for c in self.commits]
        return (f'<div class="txgit-log txgit-graph">{graph_svg(self.layout)}'
                f'<div style="padding-left:{lanes_px}px">{"".join(rows)}</div></div>')

    def _repr_html_(self) -> str:
        return _wrap(self.html())

    def text(self) -> str:
        """Like ``txgit log --graph --oneline``."""
        by_id = {c.id: c for c in self.commits}
        lines = []
        for row in render_graph([(c.id, c.parents) for c in self.commits]):
            if row.commit is None:
                lines.append(row.graph)
                continue
            c = by_id[row.commit]
            refs = self.refs[c.id]
            line = f"{row.graph} {c.short_id}" + (f" ({', '.join(refs)})" if refs else "") + f" {c.summary}"
            summary = change_summary(self.changes[c.id])
            lines.append(line + (f"  {summary}" if summary else ""))
        return "\n".join(lines) if lines else self._none

    def __repr__(self) -> str:
        return self.text()


class LogPage:
    """Rows ``start`` to ``start + count`` of :class:`LogView`'s picture, for histories too long to draw at once.

    The graph is laid out whole (ids and parents only: cheap), but what each commit changed, its refs
    and the HTML are made for the page's commits only. Pages drawn one under another line up.
    """

    def __init__(self, ws: Workspace, start: int = 0, count: int = 200, *, href: Href | None = None,
                 graph: tuple[list[CommitInfo], Layout] | None = None,
                 here: tuple[str | None, str] | None = None) -> None:
        # ``graph``: the log and its layout, when the caller kept them from an earlier page of the same refs;
        # ``here``: where a kernel is (branch, commit), marked HEAD (default: the workspace's HEAD)
        commits, self.layout = graph if graph is not None else LogPage.graph(ws)
        self.total = len(commits)
        self.start = max(0, min(start, self.total))
        self.commits: list[CommitInfo] = commits[self.start:self.start + max(count, 0)]
        refs = Refs(ws, here)
        self.refs = {c.id: refs(c) for c in self.commits}
        self._remote = refs.remote
        self.changes = {c.id: _commit_changes(ws, c) for c in self.commits}
        self.href = href

    @staticmethod
    def graph(ws: Workspace) -> tuple[list[CommitInfo], Layout]:
        """Every commit of every ref, newest first, and their picture: what all pages share."""
        commits = ws.log(None, all_refs=True)
        return commits, layout([(c.id, c.parents) for c in commits])

    @property
    def stop(self) -> int:
        return self.start + len(self.commits)

    def html(self) -> str:
        """The page as an HTML fragment: the graph's window and the commits' rows beside it."""
        if not self.commits:
            return '<div class="txgit-log txgit-dim">no commits yet</div>' if not self.total else ""
        lanes_px = max(self.layout.lanes, 1) * LANE + LANE // 2 + 6
        rows = [_row_html(c, self.refs[c.id], self._remote, self.changes[c.id], self.href) for c in self.commits]
        return (f'<div class="txgit-log txgit-graph" data-start="{self.start}">'
                f'{graph_svg(self.layout, rows=range(self.start, self.stop))}'
                f'<div style="padding-left:{lanes_px}px">{"".join(rows)}</div></div>')

    def _repr_html_(self) -> str:
        return _wrap(self.html())


class VariableHistoryView:
    """The commits where one variable was added, changed or removed (against each commit's first parent),
    newest first, over every branch, remote-tracking branch and tag: "when did ``model`` change".

    Records only: no value is loaded. ``history``: (commit, status, old record or None, new record or None).
    """

    def __init__(self, ws: Workspace, name: str, *, href: Href | None = None) -> None:
        self.name = name
        self.href = href
        records: dict[str, Any] = {}  # commit id -> the variable's record there (None: absent)

        def record_at(commit_id: str) -> Any:
            if commit_id not in records:
                state = ws.history.read_state(ws.history.resolve(commit_id), groups=False)
                records[commit_id] = state.variables.get(name)
            return records[commit_id]

        self.history: list[tuple[CommitInfo, str, Any, Any]] = []
        for c in ws.log(None, all_refs=True):
            new = record_at(c.id)
            old = record_at(c.parents[0]) if c.parents else None
            if new is None and old is None:
                continue
            if old is None:
                self.history.append((c, "added", None, new))
            elif new is None:
                self.history.append((c, "removed", old, None))
            elif not new.same_content(old):
                self.history.append((c, "changed", old, new))

    def html(self) -> str:
        if not self.history:
            return (f'<div class="txgit-varhistory txgit-dim" data-var="{escape(self.name)}">'
                    f'no commit holds a variable named <code>{escape(self.name)}</code></div>')
        out = [f'<div class="txgit-varhistory" data-var="{escape(self.name)}">'
               f'<div><b><code>{escape(self.name)}</code></b>: {len(self.history)} commits changed it</div>']
        for c, status, old, new in self.history:
            cls = {"added": "txgit-add", "removed": "txgit-del", "changed": "txgit-mod"}[status]
            what = (new.summary if status == "added" else old.summary if status == "removed"
                    else f"{old.summary} → {new.summary}" if old.summary != new.summary else new.summary)
            out.append(f'<div class="txgit-row txgit-hit" data-commit="{escape(c.id)}" data-status="{status}">'
                       f'{_id_link(c.id, self.href)} <span class="{cls}">{_status_mark(status)}</span> '
                       f'<span>{escape(what)}</span> <span class="txgit-dim">{escape(c.summary)}</span></div>')
        out.append("</div>")
        return "".join(out)

    def _repr_html_(self) -> str:
        return _wrap(self.html())


class CommitView:
    """One commit: header, its variables (summary, type, size), what was not saved, the code it ran."""

    def __init__(self, ws: Workspace, rev: str = "HEAD", *, href: Href | None = None,
                 here: tuple[str | None, str] | None = None) -> None:
        # ``here``: as for LogView
        self.workspace = ws
        self.info = ws.resolve(rev)
        refs = Refs(ws, here)
        self.refs = refs(self.info)
        self._remote = refs.remote
        self.state = ws.state(self.info.id)
        self.changes = _commit_changes(ws, self.info)
        self.code = _cells(ws, self.info.id)
        self.href = href

    def html(self) -> str:
        i = self.info
        parents = " ".join(_id_link(p, self.href) for p in i.parents) or '<span class="txgit-dim">none (root)</span>'
        out = [f'<div class="txgit-commit" data-commit="{escape(i.id)}">',
               f'<div><b>commit</b> <code>{escape(i.id)}</code> {_refs_html(self.refs, self._remote)}</div>',
               f'<div class="txgit-dim">{escape(i.author)} &lt;{escape(i.email)}&gt;, {escape(format_date(i.time))}'
               f' &middot; parents: {parents}</div>',
               f'<pre>{escape(i.message)}</pre>',
               f'<div>changed: {_changes_html(self.changes, limit=50) or "nothing"}</div>']
        saved = {n: r for n, r in self.state.variables.items() if r.kind != UNPICKLABLE}
        skipped = {n: r for n, r in self.state.variables.items() if r.kind == UNPICKLABLE}
        out.append('<table class="txgit-table txgit-vars"><tr><th>variable</th><th>summary</th><th>type</th>'
                   '<th>size</th></tr>')
        for n in sorted(saved):
            r = saved[n]
            out.append(f'<tr data-var="{escape(n)}"><td><code>{escape(n)}</code></td><td>{escape(r.summary)}</td>'
                       f'<td class="txgit-dim">{escape(record_kind(r))}</td>'
                       f'<td>{escape(human_size(r.size)) if r.size else "-"}</td></tr>')
        out.append("</table>")
        if skipped:
            out.append("<div><b>not saved</b></div><ul class='txgit-facts'>")
            out.extend(f"<li><code>{escape(n)}</code>: {escape(r.type)}: {escape(r.reason or 'not picklable')}</li>"
                       for n, r in sorted(skipped.items()))
            out.append("</ul>")
        if self.code:
            out.append("<div><b>code</b></div>")
            out.extend(f"<pre>{escape(c)}</pre>" for c in self.code)
        out.append("</div>")
        return "".join(out)

    def _repr_html_(self) -> str:
        return _wrap(self.html())

    def text(self) -> str:
        i = self.info
        lines = [f"commit {i.id}" + (f" ({', '.join(self.refs)})" if self.refs else ""),
                 f"Author: {i.author} <{i.email}>", f"Date:   {format_date(i.time)}", ""]
        lines += ["    " + m for m in (i.message.splitlines() or [""])] + [""]
        for n, r in sorted(self.state.variables.items()):
            size = human_size(r.size) if r.size else "-"
            lines.append(f"  {n}: {r.summary}  ({record_kind(r)}, {size})" if r.kind != UNPICKLABLE
                         else f"  {n}: not saved: {r.type}: {r.reason or 'not picklable'}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.text()


def _cells(ws: Workspace, commit_id: str) -> list[str]:
    """The code a commit recorded (``code/cells.json`` of a session), if any."""
    history = ws.history
    commit = history.resolve(commit_id)
    data = history.read_file(commit, "code/cells.json")
    if data is None:
        return []
    try:
        cells = json.loads(data)
    except ValueError:
        return []
    out = []
    for cell in cells if isinstance(cells, list) else []:
        code = cell.get("code") if isinstance(cell, dict) else None
        if isinstance(code, str):
            out.append(code)
    return out


class DiffView:
    """What changed from revision ``a`` to ``b`` (or to a live ``namespace``), inside each variable."""

    def __init__(self, ws: Workspace, a: str = "HEAD", b: str | None = None, *,
                 namespace: Any = None, names: list[str] | None = None, href: Href | None = None,
                 trust: bool = False, safe: bool = False, live: Any = None, carried: str | None = None) -> None:
        """``live``, ``carried``: the namespace's records when a session has them, and the commit whose values
        of the names it never loaded they carry (see :func:`semantic_diff`)."""
        self.workspace = ws
        self.diff: SemanticDiff = semantic_diff(ws, a, b, namespace=namespace, names=names, trust=trust, safe=safe,
                                                live=live, carried=carried)
        self.href = href

    def _side(self, rev: str, commit_id: str | None) -> str:
        if commit_id is None:
            return "<i>this namespace</i>"
        named = "" if commit_id.startswith(rev) else f" <span class='txgit-dim'>({escape(rev)})</span>"
        return f"{_id_link(commit_id, self.href)}{named}"

    def html(self) -> str:
        d = self.diff
        added, removed, changed = d.counts()
        out = [f'<div class="txgit-diff"><div><b>diff</b> {self._side(d.a, d.a_id)} → {self._side(d.b, d.b_id)}: '
               f'{added} added, {removed} removed, {changed} changed</div>']
        if d.empty:
            out.append('<div class="txgit-dim">no differences</div>')
        out.extend(_change_html(c) for c in d.changes)
        out.append("</div>")
        return "".join(out)

    def _repr_html_(self) -> str:
        return _wrap(self.html())

    def text(self) -> str:
        d = self.diff
        a, b = _rev_text(d.a, d.a_id), _rev_text(d.b, d.b_id)
        lines = [f"diff {a} -> {b}"]
        if d.empty:
            lines.append("no differences")
        for c in d.changes:
            lines.extend(_change_text(c))
        added, removed, changed = d.counts()
        lines.append(f"{added} added, {removed} removed, {changed} changed")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.text()


def _rev_text(rev: str, commit_id: str | None) -> str:
    if commit_id is None:
        return "this namespace"
    return commit_id[:8] if commit_id.startswith(rev) else f"{commit_id[:8]} ({rev})"


def _status_mark(status: str) -> str:
    return {"added": "+", "removed": "-", "changed": "~"}[status]


def _headline(c: VariableChange) -> str:
    if c.status == "added":
        return f"{c.new.summary}  ({record_kind(c.new)})"  # type: ignore[union-attr]
    if c.status == "removed":
        return f"{c.old.summary}  ({record_kind(c.old)})"  # type: ignore[union-attr]
    old, new = c.old, c.new
    what = f"{old.summary} -> {new.summary}" if old.summary != new.summary else f"{new.summary}"  # type: ignore[union-attr]
    return what


def _change_text(c: VariableChange) -> list[str]:
    lines = [f"{_status_mark(c.status)} {c.name}  {_headline(c)}"]
    if c.note:
        lines.append(f"    ({c.note})")
    if c.diff is None:
        return lines
    lines.extend(f"    {f}" for f in c.diff.facts)
    for p in c.diff.params:
        extra = f"  (max abs difference {p.max_abs_diff:.6g})" if p.max_abs_diff is not None else ""
        if p.status == "added":
            lines.append(f"    + {p.name} = {p.new}")
        elif p.status == "removed":
            lines.append(f"    - {p.name} = {p.old}")
        elif p.name == "value":
            lines.append(f"    {p.old} -> {p.new}")
        else:
            lines.append(f"    ~ {p.name}: {p.old} -> {p.new}{extra}")
    s = c.diff.sample
    if s is not None:
        lines.append(f"    changed rows (first {len(s.rows)} of {s.total_rows}):")
        for label, cells in s.rows:
            shown = ", ".join(f"{col}: {o} -> {n}" if o != n else f"{col}: {n}" for col, (o, n) in zip(s.columns, cells))
            lines.append(f"      [{label}] {shown}")
    return lines


def _change_html(c: VariableChange) -> str:
    cls = {"added": "txgit-add", "removed": "txgit-del", "changed": "txgit-mod"}[c.status]
    head = _headline(c).replace(" -> ", " → ")
    out = [f'<div class="txgit-var {c.status}" data-var="{escape(c.name)}">'
           f'<span class="{cls}"><b>{_status_mark(c.status)} {escape(c.name)}</b></span> '
           f'<span>{escape(head)}</span> <span class="txgit-dim">{escape(c.type)}</span>']
    if c.note:
        out.append(f'<div class="txgit-dim">{escape(c.note)}</div>')
    vd = c.diff
    if vd is not None:
        if vd.facts:
            out.append('<ul class="txgit-facts">' + "".join(f"<li>{escape(f)}</li>" for f in vd.facts) + "</ul>")
        if vd.params:
            named = [p for p in vd.params if p.name != "value"]
            plain = [p for p in vd.params if p.name == "value"]
            for p in plain:
                out.append(f'<table class="txgit-table"><tr><td class="old"><code>{escape(p.old)}</code></td>'
                           f'<td class="new"><code>{escape(p.new)}</code></td></tr></table>')
            if named:
                out.append('<table class="txgit-table txgit-params"><tr><th>parameter</th><th>old</th><th>new</th>'
                           '<th>max abs diff</th></tr>')
                for p in named:
                    mad = f"{p.max_abs_diff:.6g}" if p.max_abs_diff is not None else ""
                    out.append(f'<tr data-param="{escape(p.name)}"><td><code>{escape(p.name)}</code></td>'
                               f'<td class="old"><code>{escape(p.old)}</code></td>'
                               f'<td class="new"><code>{escape(p.new)}</code></td><td>{escape(mad)}</td></tr>')
                out.append("</table>")
        s = vd.sample
        if s is not None:
            out.append(f'<div class="txgit-dim">changed rows: first {len(s.rows)} of {s.total_rows}</div>')
            out.append('<table class="txgit-table txgit-sample"><tr><th></th>'
                       + "".join(f"<th>{escape(col)}</th>" for col in s.columns) + "</tr>")
            for label, cells in s.rows:
                tds = "".join(f'<td class="new">{escape(o)} → {escape(n)}</td>' if o != n else f"<td>{escape(n)}</td>"
                              for o, n in cells)
                out.append(f"<tr><th>{escape(label)}</th>{tds}</tr>")
            out.append("</table>")
    out.append("</div>")
    return "".join(out)
