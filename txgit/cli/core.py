"""Core commands: init, status, log, show, diff, branch, tag, checkout.

Each command opens the workspace around the current folder, calls one
:class:`txgit.Workspace` method and prints. User mistakes surface as
:class:`TxgitError` (one line, via ``txgit.cli.main``), raised before anything
is written.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from rich.text import Text

from txgit.cli import render
from txgit.cli.app import app, console, err_console
from txgit.cli.graph import render_graph
from txgit.environment import EnvironmentDrift
from txgit.errors import EmptyHistory, TxgitError, WorkspaceExists
from txgit.history import CommitInfo, RevRange
from txgit.remote import unfinished_clone
from txgit.state import UNPICKLABLE
from txgit.visual.text import (Refs, held_line, left_detached_line, not_loaded_line, not_restored_line, unmerged_line,
                                unpublished_line, upstream_line)
from txgit.workspace import StateDiff, Workspace


def _open(*, settled: bool = False) -> Workspace:
    """The workspace here. ``settled``: first wait for a commit a kernel is still writing (its
    background writer holds the lock; free, it costs a few microseconds), so that what a command
    shows includes the cell run just before it was typed."""
    ws = Workspace.open(Path.cwd())
    if settled:
        ws.settle()
    return ws


def _out(text: str | Text = "") -> None:
    """Print without rich guessing markup or highlights in user data (names, messages, reprs)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


class UsageMistake(TxgitError):
    """Arguments that parse but do not fit together (e.g. -d without a name): exit 2 like the parser's."""

    exit_code = 2


def _usage(message: str) -> UsageMistake:
    return UsageMistake(message)


def _refs_text(refs: Refs, info: CommitInfo) -> Text:
    """``info``'s decorations as git colours them: HEAD cyan, tags yellow, remote-tracking red, branches green."""
    names = refs(info)
    if not names:
        return Text()
    out = Text("(", style="yellow")
    for i, ref in enumerate(names):
        if i:
            out.append(", ", style="yellow")
        style = ("bold cyan" if ref.startswith("HEAD") else "bold yellow" if ref.startswith("tag: ")
                 else "bold red" if ref in refs.remote else "bold green")
        out.append(ref, style=style)
    out.append(")", style="yellow")
    return out


# -- init / status -------------------------------------------------------------------

@app.command()
def init(path: Path = typer.Argument(Path("."), metavar="PATH", help="Folder to make a workspace.")) -> None:
    """Create a workspace (.txgit/) in PATH.

    Run where a workspace already is, it says so and changes nothing in it, as `git init` does.
    """
    try:
        ws = Workspace.init(path)
    except WorkspaceExists:
        ws = Workspace.open_or_init(path)
        _out(f"Reinitialized existing txgit workspace in {ws.dir}")
        return
    _out(f"Initialized empty txgit workspace in {ws.dir}")


@app.command()
def status(
    kernel: Optional[str] = typer.Option(None, "--kernel", metavar="KERNEL",
                                         help="The kernel whose changes to show (PID, notebook or branch)."),
) -> None:
    """Show the branch (or detached HEAD), its commit, how it stands against its upstream, the kernels
    attached and their uncommitted changes, and a merge in progress."""
    from txgit.sessions.kernel import call_kernel, live_kernels, lone_kernel_branch

    ws = _open(settled=True)
    head = ws.head()
    if ws.branch is not None:
        _out(f"On branch {ws.branch}")
    else:
        _out(f"HEAD detached at {head.short_id if head else '?'}")
    killed = unfinished_clone(ws.root)
    if killed is not None:  # branches, upstreams or blobs may be missing: nothing else would say so
        _out(f"This clone of {killed} did not finish (its process was stopped): cloning again into {ws.root} "
             "(`txgit clone URL DIR`, with the options given before) makes it whole")
    acted_on = lone_kernel_branch(ws)
    if acted_on is not None:
        _out(f"The only kernel attached is on {acted_on}: commit, pull, push and log act on that branch")
    if head is None:
        _out("No commits yet")
    else:
        state = ws.state(head.id)
        skipped = sum(1 for r in state.variables.values() if r.kind == UNPICKLABLE)
        _out(f"HEAD: {head.short_id} {head.summary}")
        n = len(state.variables)
        _out(f"      {n} variable{'s' if n != 1 else ''}" + (f" ({skipped} not saved)" if skipped else "")
             + f", committed {render.format_date(head.time)} by {head.author}")
    merging = ws.merge_in_progress()
    if ws.branch is not None:
        line = upstream_line(ws, ws.branch, merging=merging is not None)
        if line:
            _out(line)
    if merging is not None:
        _out(f"Merging {merging.label}: unresolved conflicts: "
             + (", ".join(c.label for c in ws.merge_plan(merging).conflicts) or "none (`txgit merge --continue`)"))
        for held in ws.merge_held(merging):  # a kernel gone before the merge commit: what it had set
            _out("  " + held.describe())
    kernels = live_kernels(ws)
    if kernel is not None:
        from txgit.sessions.kernel import attached_kernel

        chosen = attached_kernel(ws, kernel)
        kernels = [k for k in kernels if chosen is not None and k.pid == chosen.pid]
    held_live: set[str] = set()  # refs a live kernel holds: it merges them again itself
    for k in kernels:
        _out(f"{k.describe()}:")
        if k.branch is not None and k.branch != ws.branch:
            line = upstream_line(ws, k.branch) or unpublished_line(ws, k.branch)
            if line:
                _out("  " + line)
        try:
            answer = call_kernel(k, {"op": "status"}, timeout=5)  # a kernel running a cell answers after it
        except TxgitError as e:
            _out(f"  (its changes are not shown: {e})")
            continue
        if answer.get("merging"):
            _out(f"  merging {answer['merging']}")
        if answer.get("unmerged"):
            _out(f"  {unmerged_line(answer['unmerged'], k.branch)}")
            held_live.add(answer.get("held") or "")
        changes = [("added", n) for n in answer["added"]] + [("modified", n) for n in answer["modified"]] + \
            [("removed", n) for n in answer["removed"]]
        if not changes:
            base = answer.get("base")
            _out(f"  nothing to commit ({f'at {base[:8]}' if base else 'no commit of its own yet'})")
        for label, n in changes:
            _out(f"  {label}: {n}")
        if answer.get("unloaded"):  # a fresh kernel holds none of the branch's values: say so, not "all there"
            _out("  " + not_loaded_line(answer["unloaded"], k.branch, merging=bool(answer.get("merging"))))
        for n, why in answer.get("not_restored", {}).items():  # not removed: its next commit keeps them
            _out("  " + not_restored_line(n, why, k.branch))
    for ref, commit in ws.history.unmerged().items():
        if ref not in held_live:
            _out(held_line(ref, commit))
    detached_live = {k.pid for k in live_kernels(ws) if k.branch is None}  # (its own lines say where it is)
    for pid, commit in sorted(ws.history.own_heads().items()):
        count = ws.history.unreferenced(commit)
        if pid not in detached_live and count:
            _out(left_detached_line(pid, count, commit))


# -- log -----------------------------------------------------------------------------

def _changes(ws: Workspace, info: CommitInfo) -> str:
    """What a commit changed against its first parent, from records only (no blob is read)."""
    if info.parents:
        diff = ws.diff(info.parents[0], info.id)
    else:
        diff = render.added_diff("", info.id, ws.state(info.id).variables)
    return render.change_summary(diff)


def _entry(info: CommitInfo, refs: Refs, oneline: bool, changes: str | None) -> list[Text]:
    """The lines of one log entry (without graph)."""
    decor = _refs_text(refs, info)
    if oneline:
        line = Text()
        line.append(info.short_id, style="yellow")  # only the id: Text(id, style=...) would colour the whole line
        if decor:
            line.append(" ").append_text(decor)
        line.append(" " + info.summary)
        if changes:
            line.append("  " + changes, style="dim")
        return [line]
    head = Text("commit " + info.id, style="yellow")
    if decor:
        head.append(" ").append_text(decor)
    lines = [head]
    if len(info.parents) > 1:
        lines.append(Text("Merge: " + " ".join(p[:8] for p in info.parents)))
    lines.append(Text(f"Author: {info.author} <{info.email}>"))
    lines.append(Text(f"Date:   {render.format_date(info.time)}"))
    lines.append(Text(""))
    lines.extend(Text(("    " + m).rstrip()) for m in (info.message.splitlines() or [""]))
    if changes:
        lines.append(Text(""))
        lines.append(Text("    " + changes, style="dim"))
    lines.append(Text(""))
    return lines


@app.command()
def log(
    rev: Optional[str] = typer.Argument(None, metavar="REV", help="Start from this revision (default HEAD), or a "
                                        "range: A..B, what B has and A lacks; A...B, what either has and the other "
                                        "lacks (an empty side is HEAD)."),
    oneline: bool = typer.Option(False, "--oneline", help="One line per commit: short id, refs, message."),
    graph: bool = typer.Option(False, "--graph", help="Draw branches and merges as lanes, with what each commit changed."),
    all_refs: bool = typer.Option(False, "--all", help="Commits reachable from any branch, remote-tracking branch "
                                                      "(origin/main) or tag, not just REV."),
    max_count: Optional[int] = typer.Option(None, "-n", "--max-count", min=0, metavar="N", help="Show at most N commits."),
) -> None:
    """Show commits, newest first, with ids, refs, author, date and message.

    As in git, after `txgit fetch`: `txgit log main..origin/main` shows what a pull would bring,
    `txgit log origin/main..` what a push would send, `txgit log main...origin/main` both.
    """
    from txgit.sessions.kernel import lone_kernel_branch

    ws = _open(settled=True)
    if rev is not None and all_refs:
        raise _usage("give either REV or --all, not both")
    if rev is None and not all_refs:
        rev = lone_kernel_branch(ws)
    commits = ws.log(rev, all_refs=all_refs, max_count=max_count)
    if not commits and rev is None and ws.head() is None:
        raise EmptyHistory(f"no commits yet on branch {ws.branch or '?'}")
    refs = Refs(ws)
    if not graph:
        for info in commits:
            for line in _entry(info, refs, oneline, None):
                _out(line)
        return
    entries = {info.id: info for info in commits}
    for row in render_graph([(c.id, c.parents) for c in commits]):
        if row.commit is None:
            _out(Text(row.graph, style="red"))
            continue
        lines = _entry(entries[row.commit], refs, oneline, _changes(ws, entries[row.commit]))
        for i, line in enumerate(lines):
            lanes = row.graph if i == 0 else row.continuation
            if not line.plain:
                _out(Text(lanes, style="red"))
                continue
            _out(Text(lanes.ljust(len(row.graph)) + " ", style="red") + line)


@app.command()
def reflog(
    ref: Optional[str] = typer.Argument(None, metavar="REF", help="A branch, remote-tracking branch or tag "
                                        "(default: the current branch)."),
    max_count: Optional[int] = typer.Option(None, "-n", "--max-count", min=0, metavar="N", help="Show at most N entries."),
) -> None:
    """Where REF pointed, newest first, as `git reflog`: `main@{1}` or ORIG_HEAD undoes a pull, merge or reset
    (`txgit reset main@{1}`)."""
    from txgit.sessions.kernel import lone_kernel_branch

    ws = _open(settled=True)
    for label, oid, why in ws.reflog(ref or lone_kernel_branch(ws) or "HEAD", max_count=max_count):
        _out(Text(oid[:8], style="yellow") + Text(f" {label}: {why}"))


# -- show ------------------------------------------------------------------------------

def _header(info: CommitInfo, refs: Refs) -> None:
    for line in _entry(info, refs, False, None)[:-1]:
        _out(line)


@app.command()
def show(
    rev: str = typer.Argument("HEAD", metavar="REV", help="The commit to show (default HEAD)."),
    var: Optional[str] = typer.Argument(None, metavar="VAR", help="Print this variable's value (loads it)."),
    trust: bool = typer.Option(False, "--trust", help="With VAR: load it even if the commit came from a remote "
                                                      "not marked trusted (unpickling runs its code)."),
    safe: bool = typer.Option(False, "--safe", help="With VAR: load only allow-listed plain data types."),
) -> None:
    """Show a commit: its variables (summary, type, size), what was not saved, and meta.

    With VAR, load that one variable from the commit and print its value (cut to a screenful).
    """
    ws = _open()
    info = ws.resolve(rev)
    if var is not None:
        with warnings.catch_warnings(record=True) as drifted:
            warnings.simplefilter("always", EnvironmentDrift)
            value = ws.load(var, rev, trust=trust, safe=safe)  # reads and verifies blobs: a corrupt one raises here
        for w in drifted:
            err_console.print(f"warning: recorded under other versions: {w.message}", markup=False, highlight=False)
        rec = ws.state(info.id).variables[var]
        _out(Text(f"{var}: {rec.summary}  ({render.record_kind(rec)}, {info.short_id})", style="bold"))
        _out(render.truncated_repr(value))
        return
    state = ws.state(info.id)
    _header(info, Refs(ws))
    saved = {n: r for n, r in state.variables.items() if r.kind != UNPICKLABLE}
    skipped = {n: r for n, r in state.variables.items() if r.kind == UNPICKLABLE}
    _out()
    if saved:
        table = Table(title=None, box=None, pad_edge=False, header_style="bold")
        table.add_column("variable", style="bold")
        table.add_column("summary")
        table.add_column("type", style="dim")
        table.add_column("size", justify="right")
        for name in sorted(saved):
            rec = saved[name]
            table.add_row(Text(name), Text(rec.summary), Text(render.record_kind(rec)),
                          render.human_size(rec.size) if rec.size else "-")
        console.print(table)
        total = sum(g.nbytes for g in state.groups.values())
        _out(f"{len(saved)} variable{'s' if len(saved) != 1 else ''}, {render.human_size(total)} stored")
    else:
        _out("no variables")
    if skipped:
        _out()
        _out(Text(f"not saved ({len(skipped)}):", style="bold"))
        for name in sorted(skipped):
            rec = skipped[name]
            _out(f"  {name}: {rec.type}: {rec.reason or 'not picklable'}")
    meta = state.meta
    if meta:
        _out()
        parts = [f"python {meta['python']}" if "python" in meta else None,
                 f"txgit {meta['txgit']}" if "txgit" in meta else None,
                 meta.get("platform")]
        _out("meta: " + ", ".join(p for p in parts if p))
        packages = meta.get("packages") or {}
        if packages:
            _out("packages: " + ", ".join(f"{k} {v}" for k, v in sorted(packages.items())))


# -- diff ------------------------------------------------------------------------------

def _diff_lines(diff: StateDiff) -> list[Text]:
    names = list(diff.added) + list(diff.removed) + list(diff.changed)
    width = max((len(n) for n in names), default=0)
    lines = []
    for name, rec in diff.added.items():
        lines.append(Text(f"+ {name.ljust(width)}  {rec.summary}  ({render.record_kind(rec)})", style="green"))
    for name, rec in diff.removed.items():
        lines.append(Text(f"- {name.ljust(width)}  {rec.summary}  ({render.record_kind(rec)})", style="red"))
    for name, (old, new) in diff.changed.items():
        what = (f"{old.summary} -> {new.summary}" if old.summary != new.summary
                else f"{new.summary} (new content)")
        if old.type != new.type:
            what += f"  ({old.type} -> {new.type})"
        elif old.size != new.size:
            what += f"  ({render.human_size(old.size)} -> {render.human_size(new.size)})"
        lines.append(Text(f"~ {name.ljust(width)}  {what}", style="yellow"))
    return lines


@app.command()
def diff(
    a: Optional[str] = typer.Argument(None, metavar="A", help="The old revision, or A..B for both, or A...B: from "
                                      "their merge base to B (omitted: the attached kernel's uncommitted changes)."),
    b: Optional[str] = typer.Argument(None, metavar="B", help="The new revision (default HEAD)."),
    exit_code: bool = typer.Option(False, "--exit-code", help="Exit 1 when the states differ (like git diff --exit-code)."),
    kernel: Optional[str] = typer.Option(None, "--kernel", metavar="KERNEL",
                                         help="With no revision: the kernel whose changes to show (PID, notebook "
                                              "or branch) when several are attached."),
) -> None:
    """Variables added, removed and changed from state A to state B.

    `txgit diff` alone shows what the attached kernel changed and has not committed, against its last
    commit (as `git diff` shows the work tree's changes; during a merge, against the merge's state so
    far, as status compares, and its first line says so). `txgit diff A B` and `txgit diff A..B` compare
    A to B; `txgit diff A` compares A to HEAD. `txgit diff A...B` compares the merge base of A and B
    to B: what B changed since the two forked, what merging B would bring in (`txgit diff
    main...origin/main` after a fetch). Exits 0 whether or not the states differ, unless --exit-code.
    """
    if kernel is not None and a is not None:
        raise _usage("--kernel goes with no revision: `txgit diff --kernel KERNEL` shows that kernel's changes")
    ws = _open(settled=a is None)
    if a is None:
        from txgit.sessions.kernel import diff_in_kernel

        k, result, merging = diff_in_kernel(ws, kernel=kernel)
        # during a merge, what status compares with: HEAD with what the merge took from theirs so far
        old = f"{result.a[:8] or '(no commit)'} (HEAD)" if merging is None else \
            f"{result.a[:8]} (HEAD) + the merge of {merging} so far (conflicts as ours)"
        _out(Text(f"diff {old} -> {k.describe()}, not committed", style="bold"))
    else:
        rng = RevRange.parse(a) if b is None else None
        if rng is None:
            b = b or "HEAD"
            result = ws.diff(a, b)
        else:  # A..B as A B; A...B from the merge base, which the first line names as such
            result = ws.diff(a)
            a, b = rng.old_label, rng.right
        _out(Text(f"diff {ws.resolve(result.a).short_id} ({a}) -> {ws.resolve(result.b).short_id} ({b})", style="bold"))
    if result.empty:
        _out("no differences")
        return
    for line in _diff_lines(result):
        _out(line)
    n = (len(result.added), len(result.removed), len(result.changed))
    _out(f"{n[0]} added, {n[1]} removed, {n[2]} changed")
    if exit_code:
        raise typer.Exit(1)


# -- branch / tag ------------------------------------------------------------------------

@app.command()
def branch(
    name: Optional[str] = typer.Argument(None, metavar="NAME", help="Branch to create (or, with -d, delete; with "
                                                                     "-m, rename: OLD NEW, or NEW alone)."),
    rev: Optional[str] = typer.Argument(None, metavar="REV", help="Where the new branch starts (default HEAD)."),
    delete: bool = typer.Option(False, "-d", "--delete", help="Delete branch NAME."),
    force: bool = typer.Option(False, "-f", "--force", help="Move NAME to REV even if it exists (a branch a live "
                                                            "kernel commits to moves with `txgit reset REV` there)."),
    move: bool = typer.Option(False, "-m", "--move", help="Rename branch OLD (default: the current one) to NEW, "
                                                          "with its upstream; a live kernel on it follows."),
    move_force: bool = typer.Option(False, "-M", help="Rename even over an existing branch NEW (it is replaced)."),
    all_branches: bool = typer.Option(False, "-a", "--all", help="List remote-tracking branches too (remotes/origin/…)."),
    remotes: bool = typer.Option(False, "-r", "--remotes", help="List only the remote-tracking branches (origin/…), "
                                                                  "as the last fetch, pull or push left them."),
) -> None:
    """List branches (* marks the current one; -a: remote-tracking ones too, -r: only those), create NAME at
    REV, delete NAME with -d, or rename OLD to NEW with -m (-M: over an existing NEW).

    A rename keeps the branch's commits and reflog, moves HEAD if it is on it, keeps the upstream it
    tracks (as git: `push -u REMOTE NEW` publishes it under the new name), and the commits of a closed
    kernel held for it; a live kernel committing to it commits to NEW from its next cell."""
    ws = _open()
    if (all_branches or remotes) and (name is not None or rev is not None or delete or force or move or move_force):
        raise _usage("branch -a and -r only list: give no name, -d or -f with them")
    if move or move_force:
        if name is None or delete or force:
            raise _usage("branch -m takes OLD NEW, or NEW alone to rename the current branch")
        _rename_branch(ws, name if rev is not None else None, rev if rev is not None else name, force=move_force)
        return
    if delete:
        if name is None or rev is not None:
            raise _usage("branch -d takes exactly one branch name")
        gone = ws.branches().get(name)
        ws.delete_branch(name)  # refused while a live kernel commits to it
        _out(f"Deleted branch {name} (was {gone[:8] if gone else '?'})")
        return
    if name is not None:
        was = ws.branches().get(name)
        info = ws.create_branch(name, rev or "HEAD", force=force)
        if was is None:
            _out(f"Created branch {name} at {info.short_id} {info.summary}")
        else:  # -f moved it
            _out(f"Reset branch {name} to {info.short_id} {info.summary} (was {was[:8]})")
        return
    if rev is not None:
        raise _usage("give a branch name")
    branches = {} if remotes else ws.branches()
    # remote-tracking branches as git lists them: origin/main with -r, remotes/origin/main beside the local ones
    tracking = {(r if remotes else f"remotes/{r}"): c for r, c in ws.remote_branches().items()} \
        if remotes or all_branches else {}
    current = _current_branch(ws)
    width = max((len(b) for b in (*branches, *tracking)), default=0)
    head = ws.head()
    if current is None and head is not None and not remotes:
        _out(Text(f"* (HEAD detached at {head.short_id})", style="bold cyan"))
    for b in sorted(branches):
        info = ws.resolve(branches[b])
        mark = "* " if b == current else "  "
        line = Text(mark) + Text(b.ljust(width), style="bold green" if b == current else "")
        _out(line + Text(f"  {info.short_id} {info.summary}"))
    for r in sorted(tracking):
        info = ws.resolve(tracking[r])
        _out(Text("  ") + Text(r.ljust(width), style="red") + Text(f"  {info.short_id} {info.summary}"))


def _current_branch(ws: Workspace) -> str | None:
    """The branch `branch` calls current: HEAD's, or as a magic the branch that kernel is on (the second
    kernel's of a folder is not HEAD's)."""
    if os.environ.get("TXGIT_KERNEL"):
        from txgit.sessions.kernel import attached_kernel

        k = attached_kernel(ws)
        if k is not None and k.branch is not None:
            return k.branch
    return ws.branch


def _rename_branch(ws: Workspace, old: str | None, new: str, *, force: bool) -> None:
    """`branch -m [OLD] NEW`: by the live kernel that commits to OLD, if one does (it follows the new
    name), else here; says what moved with it."""
    from txgit.sessions.kernel import call_kernel, live_kernels

    if old is None:
        old = _current_branch(ws)
        if old is None:
            raise TxgitError("HEAD is detached: name the branch to rename (`txgit branch -m OLD NEW`)")
    replaced = ws.branches().get(new) if new != old else None
    k = next((k for k in live_kernels(ws) if k.branch == old), None)
    if k is not None:
        moved = call_kernel(k, {"op": "rename_branch", "old": old, "new": new, "force": force})["moved"]
    else:
        moved = ws.rename_branch(old, new, force=force)
    _out(f"{f'[kernel {k.pid}] ' if k is not None else ''}Renamed branch {old} to {new}"
         + (f" (replacing {new}, which was at {replaced[:8]}: `txgit branch NAME {replaced[:8]}` keeps that)"
            if replaced else ""))
    tracked = ws.remotes.upstream(new)
    if tracked is not None and tracked[1] != new:
        _out(f"{new} still tracks {tracked[0]}/{tracked[1]} (`txgit push -u {tracked[0]} {new}` publishes it "
             "under its new name)")
    for ref in moved.values():
        _out(f"the commits of a closed kernel held for {old} are now kept by {ref} (`txgit merge {ref}` brings "
             "them in)")


@app.command()
def tag(
    name: Optional[str] = typer.Argument(None, metavar="NAME", help="Tag to create (or, with -d, delete)."),
    rev: Optional[str] = typer.Argument(None, metavar="REV", help="The commit to tag (default HEAD)."),
    message: Optional[str] = typer.Option(None, "-m", "--message", help="Make an annotated tag with this message."),
    delete: bool = typer.Option(False, "-d", "--delete", help="Delete tag NAME."),
    force: bool = typer.Option(False, "-f", "--force", help="Replace NAME if it exists."),
) -> None:
    """List tags, tag REV (default HEAD) as NAME, or delete NAME with -d."""
    ws = _open()
    if delete:
        if name is None or rev is not None or message is not None:
            raise _usage("tag -d takes exactly one tag name")
        gone = ws.tags().get(name)
        ws.delete_tag(name)
        _out(f"Deleted tag {name} (was {gone[:8] if gone else '?'})")
        return
    if name is not None:
        was = ws.tags().get(name)
        info = ws.create_tag(name, rev or "HEAD", message, force=force)
        if was is not None:  # only reachable with -f, as git's "Updated tag"
            _out(f"Updated tag {name} (was {was[:8]}): now {info.short_id} {info.summary}")
        else:
            _out(f"Tagged {info.short_id} {info.summary} as {name}")
        return
    if rev is not None or message is not None:
        raise _usage("give a tag name")
    tags = ws.tags()
    width = max((len(t) for t in tags), default=0)
    for t in sorted(tags):
        info = ws.resolve(tags[t])
        _out(Text(t.ljust(width), style="bold yellow") + Text(f"  {info.short_id} {info.summary}"))


# -- checkout ---------------------------------------------------------------------------

@app.command()
def checkout(
    rev: Optional[str] = typer.Argument(None, metavar="REV", help="Branch, tag, commit id, HEAD~2, main^ … "
                                                                "(with -b: where the new branch starts, default HEAD)"),
    new_branch: Optional[str] = typer.Option(None, "-b", metavar="NEW", help="Create branch NEW at REV and switch to it."),
    force: bool = typer.Option(False, "--force", "-f", help="Drop uncommitted changes in an attached session's state."),
    trust: bool = typer.Option(False, "--trust", help="Load a state fetched from a remote not marked trusted "
                                                      "(unpickling runs its code)."),
    safe: bool = typer.Option(False, "--safe", help="Load only allow-listed plain data types (numpy, pandas, "
                                                    "builtins containers …): for inspecting a stranger's state."),
    kernel: Optional[str] = typer.Option(None, "--kernel", metavar="KERNEL",
                                         help="The kernel to act on (PID, notebook or branch) when several are attached."),
) -> None:
    """Move HEAD to REV: a branch attaches HEAD to it; any other revision detaches HEAD there.

    With a kernel attached, the kernel moves and its namespace follows (only what differs is loaded).
    `checkout -b NEW REMOTE/BRANCH` makes NEW track that remote branch; so does `checkout NAME` when no
    branch here is called NAME and one remote has a branch NAME.
    """
    from txgit.cli.merge import warn_left_behind
    from txgit.cli.session import print_kernel_checkout
    from txgit.sessions.kernel import attached_kernel, checkout_in_kernel

    if rev is None:
        if new_branch is None:
            raise _usage("Missing argument 'REV' (or -b NEW to start a branch where HEAD is)")
        rev = "HEAD"
    ws = _open()
    before = ws.branch
    k = attached_kernel(ws, kernel)
    if k is not None:  # a kernel runs the extension here: its live state follows
        answer = checkout_in_kernel(ws, rev, force=force, new_branch=new_branch, trust=trust, safe=safe,
                                    kernel=str(k.pid))
        print_kernel_checkout(answer, k.pid)
    else:
        existed = rev in ws.branches()
        result = ws.checkout(rev, None, force=force, new_branch=new_branch)
        # `checkout exp` with only origin/exp made exp, as `-b exp origin/exp` does
        _report_checkout(result.branch, result.info, new_branch is not None or (result.branch == rev and not existed),
                         before)
        answer = {"left_behind": result.left_behind, "left_from": result.left_from, "upstream": result.upstream,
                  "branch": result.branch}
    if answer.get("upstream"):
        remote, branch = answer["upstream"]
        _out(f"branch '{new_branch or answer.get('branch') or branch}' set up to track '{remote}/{branch}'")
    warn_left_behind(answer)


def _report_checkout(branch: str | None, info: CommitInfo, created: bool, before: str | None) -> None:
    if created:
        _out(f"Switched to a new branch '{branch}' at {info.short_id} {info.summary}")
    elif branch is not None:
        _out(f"{'Already on' if branch == before else 'Switched to branch'} '{branch}' at {info.short_id} {info.summary}")
    else:
        _out(f"HEAD is now at {info.short_id} {info.summary}")
        _out("Note: HEAD is detached: new commits belong to no branch. "
             "`txgit checkout -b NAME` starts a branch here.")

