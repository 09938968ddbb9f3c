"""Commands that bring states together: merge, pull, reset.

With a kernel attached (``%load_ext txgit``), the kernel does the work on its own
branch and its live namespace follows (only what differs is loaded), so a
kernel is never out of step with its branch; without one, they act on HEAD's
branch and the records alone (nothing is loaded or written but git objects).
Both paths print from the same JSON answer (:meth:`txgit.workspace.MergeResult.to_json`).
"""

from __future__ import annotations

import os
from typing import Any, Optional

import typer

from txgit.cli.app import app, console
from txgit.cli.remote import fetch_lines, progress_bar, slow_notice
from txgit.errors import TxgitError
from txgit.merging import ref_label
from txgit.remote import FetchResult
from txgit.sessions.kernel import KernelError, KernelInfo, attached_kernel, call_kernel, live_kernels
from txgit.state.libstate import describe
from txgit.trust import source_of
from txgit.visual.text import left_behind_warning, loads_later, not_loaded_line
from txgit.workspace import Workspace

KERNEL_HELP = "The kernel to act on (PID, notebook or branch) when several are attached."


def _out(text: str = "") -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def kernel_tag(kernel: KernelInfo | None) -> str:
    """``[kernel 1234] `` before what a command did in a kernel; none in that kernel itself (a magic)."""
    return f"[kernel {kernel.pid}] " if kernel is not None and kernel.pid != os.getpid() else ""


def print_merge(ws: Workspace, answer: dict[str, Any], kernel: KernelInfo | None = None, *,
                trust: bool = False) -> None:
    """What a merge, a pull's merge or a resolution did; conflicts with a semantic diff of both versions."""
    tag = kernel_tag(kernel)
    where = ref_label(answer["ref"])
    status = answer["status"]
    loaded = answer.get("loaded") or []
    removed = answer.get("removed") or []
    follow = (f"; loaded {', '.join(loaded)}" if loaded else "") + (f"; removed {', '.join(removed)}" if removed else "")
    if answer.get("recomputed"):  # theirs' generators and open files, made again by the code that made them
        follow += f"; recomputed {', '.join(answer['recomputed'])} by re-running the code that made them"
    if answer.get("settings"):
        follow += "; set " + ", ".join(describe(s) for s in answer["settings"])
    if status == "up-to-date":
        # a kernel on a branch of its own: which branch, as the fetch before may have shown news of HEAD's
        mine = f" ({where} has all of {answer['label']})" if where not in (ws.branch, "HEAD") else ""
        _out(f"{tag}Already up to date{mine}{follow}.")  # loaded: what an earlier checkout could not load
    elif status == "fast-forward":
        _out(f"{tag}Fast-forward {where}: {(answer['ours'] or '')[:8] or '(none)'}..{answer['commit'][:8]}{follow}")
    elif status == "merged":
        info = ws.resolve(answer["commit"])
        _out(f"{tag}Merged {answer['label']} into {where}: {info.short_id} {info.summary}{follow}")
        taken = {n: s for n, s in (answer.get("resolved") or {}).items()}
        if taken:
            _out("  resolved: " + ", ".join(f"{n} ({s})" for n, s in sorted(taken.items())))
        if answer.get("settings_kept"):  # not a conflict: ours' stand, as the kernel has them
            _out("  kept ours (changed on both sides): " + ", ".join(describe(s) for s in answer["settings_kept"]))
    elif status == "aborted":
        kept = f"; kept what you changed and did not commit: {', '.join(answer['kept'])}" if answer.get("kept") else ""
        _out(f"{tag}Merge of {answer['label']} aborted: back at {(answer['ours'] or '')[:8]}{follow}{kept}")
    for name, why in (answer.get("not_restored") or {}).items():  # in the merge, not in this process
        fix = loads_later(why, where)
        _out(f"  not loaded: {name}: {why}; the next commits keep it as {answer['label']} has it"
             + (f"; {fix}" if fix else ""))
    if answer.get("unloaded") and status in ("merged", "fast-forward"):  # a fresh kernel's: not in it, not gone
        _out("  " + not_loaded_line(answer["unloaded"], answer.get("branch")))
    if status != "conflicts":
        return
    conflicts = answer["conflicts"]
    _out(f"{tag}Merging {answer['label']} into {where}: " + (f"{len(conflicts)} conflict"
         f"{'s' if len(conflicts) != 1 else ''}" if conflicts else "no conflict left") + follow)
    from txgit.visual.views import DiffView

    safe = not trust and source_of(ws, answer["theirs"]) is not None  # a stranger's values: plain data only
    for c in conflicts:
        for name in c["names"]:
            _out(f"CONFLICT ({c['how'][name]}): {name}")
        try:
            text = DiffView(ws, answer["ours"], answer["theirs"], names=c["names"], trust=trust, safe=safe).text()
        except TxgitError as e:
            text = f"(not compared: {e})"
        for line in text.splitlines()[1:-1]:  # the changes, without the header and counts lines
            _out(f"    {line}")
    merging = ws.merge_in_progress(answer["ref"])
    for held in ws.merge_held(merging) if merging is not None else []:  # a kernel gone before the merge commit
        _out(held.describe("%txgit" if kernel is not None and kernel.pid == os.getpid() else "txgit"))
    if not conflicts:  # (what waits is that kernel's: the line above says what takes it)
        return
    first = conflicts[0]["names"][0]
    if len(conflicts) == 1:
        _out(f"Resolve with `txgit merge --ours {first}` or `--theirs {first}` (or set it in the kernel and commit); "
             "`txgit merge --abort` gives up.")
    else:
        _out(f"Resolve with `txgit merge --ours {first} ...` or `--theirs {first} ...` (no name: all "
             f"{len(conflicts)} at once), or set them in the kernel and commit; `txgit merge --abort` gives up.")


def merge_in_kernel(ws: Workspace, kernel: KernelInfo, request: dict[str, Any], label: str) -> dict[str, Any]:
    """A merge (``merge REV``, a pull's, a resolution) done by the attached kernel. One that dies meanwhile
    (kill -9, out of memory) may have written the merge commit, stopped on conflicts, or done nothing:
    the error says which, from the repository, and what to type next."""
    ref = f"refs/heads/{kernel.branch}" if kernel.branch is not None else "HEAD"
    before = ws.history.tip(ref)
    try:
        return call_kernel(kernel, request)
    except KernelError as e:
        if any(k.pid == kernel.pid for k in live_kernels(ws)):
            raise  # it answered with an error, or is busy: it says what it did
        where = ref.removeprefix("refs/heads/")
        now = Workspace.open(ws.root)
        tip = now.history.tip(ref)
        if now.merge_in_progress(ref) is not None:
            then = ("the merge stopped on conflicts: `txgit status` lists them; resolve them in a restarted "
                    "kernel or here (`txgit merge --ours NAME` / `--theirs NAME`), or `txgit merge --abort`")
        elif tip is not None and (before is None or tip.id != before.id):
            info = now.resolve(str(tip.id))
            then = (f"{where} is now at {info.short_id} {info.summary}, which no kernel holds: restart the "
                    f"kernel and `%txgit checkout {where}` loads it")
        else:
            then = f"nothing was merged ({where} did not move): restart the kernel and merge {label} again"
        raise KernelError(f"{e} during the merge of {label} (it exited): {then}") from None


def _local_ref(ws: Workspace) -> str:
    return f"refs/heads/{ws.branch}" if ws.branch is not None else "HEAD"


@app.command()
def merge(
    args: Optional[list[str]] = typer.Argument(None, metavar="REV | VAR",
                                               help="The branch, tag or commit to merge in; with --ours or "
                                                    "--theirs, the variables whose conflicts to resolve."),
    message: Optional[str] = typer.Option(None, "-m", "--message", help="The merge commit's message."),
    ours: bool = typer.Option(False, "--ours", help="Resolve the conflicts of VAR... (none named: all that are "
                                                    "left) with our version."),
    theirs: bool = typer.Option(False, "--theirs", help="Resolve the conflicts of VAR... (none named: all that "
                                                        "are left) with theirs."),
    every: bool = typer.Option(False, "--all", help="With --ours or --theirs: every conflict left (the same as "
                                                    "naming none)."),
    abort: bool = typer.Option(False, "--abort", help="Give up the merge in progress (the kernel gets ours back)."),
    force: bool = typer.Option(False, "--force", "-f", help="With --ours or --theirs: replace the attached kernel's "
                                                            "uncommitted values of those variables too; with "
                                                            "--abort: drop what it (or a kernel closed during the "
                                                            "merge) set during the merge."),
    cont: bool = typer.Option(False, "--continue", help="Write the merge commit once every conflict is resolved "
                                                         "(beside a kernel: its commit, its values resolving "
                                                         "the conflicts it set); what a kernel closed during the "
                                                         "merge had set is taken into it."),
    trust: bool = typer.Option(False, "--trust", help="Load values from a remote not marked trusted "
                                                      "(unpickling runs their code)."),
    safe: bool = typer.Option(False, "--safe", help="Load only allow-listed plain data types."),
    kernel: Optional[str] = typer.Option(None, "--kernel", metavar="KERNEL", help=KERNEL_HELP),
) -> None:
    """Merge REV into the current branch, variable by variable, from their merge base.

    What changed on one side only is taken from that side; what both changed differently is a conflict,
    listed with both versions: resolve it with --ours VAR... / --theirs VAR... (each a whole group of
    aliased variables; no VAR, or --all: every conflict left, as `git checkout --ours .`), or by setting
    it in the kernel and committing; --abort gives up. Resolving the last conflict writes the merge
    commit, which has both parents: no --continue is needed. With a kernel attached, its namespace
    follows (only what differs is loaded), and --continue is the kernel's commit, as `txgit commit`
    there: a conflict whose variable it set is resolved with its value.
    """
    args = args or []
    side = "ours" if ours else "theirs" if theirs else None
    if ours and theirs:
        raise TxgitError("give --ours or --theirs, not both")
    if every and side is None:
        raise TxgitError("--all goes with --ours or --theirs: `txgit merge --ours --all`")
    if force and side is None and not abort:
        raise TxgitError("--force goes with --ours, --theirs or --abort: `txgit merge --theirs --force`")
    if every and args:
        raise TxgitError(f"--all resolves every conflict: name no variable with it (got {', '.join(args)})")
    if (abort or cont) and (args or side or (abort and cont)):
        raise TxgitError("--abort and --continue take nothing else")
    if side is None and not (abort or cont) and len(args) != 1:
        raise TxgitError("give one of REV, --ours [VAR...], --theirs [VAR...], --abort or --continue")
    if side is not None and message is not None:
        raise TxgitError("-m goes with merge REV; a resolution's merge commit keeps the merge's message")
    names = args if side is not None and args else None  # None: every conflict left
    rev = args[0] if side is None and args else None
    ws = Workspace.open(".")
    k = attached_kernel(ws, kernel)
    if (k is not None and rev is None and kernel is None and not os.environ.get("TXGIT_KERNEL")
            and k.branch != ws.branch and ws.merge_in_progress(f"refs/heads/{k.branch}" if k.branch else "HEAD") is None
            and ws.merge_in_progress() is not None):
        # the only kernel is on a branch of its own, with no merge, and HEAD's merge waits with no live
        # kernel on its branch (the one merging died): the terminal ends that one, as `txgit status` says
        k = None
    if k is not None:
        req: dict[str, Any] = {"op": "merge", "trust": trust, "safe": safe}
        if cont:  # the kernel is the work tree: its commit is the merge's, with what it set resolving conflicts
            req.update(action="continue")
        elif abort:
            req.update(action="abort", force=force)
        elif side is not None:
            req.update(action=side, names=names, force=force)
        else:
            req.update(rev=rev, label=rev, message=message)
        waiting = None if rev is not None else ws.merge_in_progress(f"refs/heads/{k.branch}" if k.branch else "HEAD")
        label = rev if rev is not None else waiting.label if waiting is not None else "the merge"
        answer = merge_in_kernel(ws, k, req, label)
    else:
        ref = _local_ref(ws)
        if abort:
            result = ws.merge_abort(ref=ref, force=force)
        elif cont:
            result = ws.merge_continue(ref=ref)
        elif side is not None:
            result = ws.merge_resolve(names, side, ref=ref)
        else:
            assert rev is not None
            result = ws.merge(rev, ref=ref, message=message)
        answer = result.to_json()
    print_merge(ws, answer, k, trust=trust)
    if answer["status"] == "conflicts" and rev is not None:
        raise typer.Exit(1)  # as git: a merge that stopped on conflicts exits non-zero


@app.command()
def pull(
    remote: Optional[str] = typer.Argument(None, metavar="REMOTE", help="Default: the branch's upstream, else origin."),
    branch: Optional[str] = typer.Argument(None, metavar="BRANCH",
                                           help="The remote's branch (default: the upstream's, else the same name)."),
    trust: bool = typer.Option(False, "--trust", help="Load values from a remote not marked trusted "
                                                      "(unpickling runs their code)."),
    safe: bool = typer.Option(False, "--safe", help="Load only allow-listed plain data types."),
    kernel: Optional[str] = typer.Option(None, "--kernel", metavar="KERNEL", help=KERNEL_HELP),
) -> None:
    """Fetch, then merge the remote branch into the current one (a fast-forward when yours is behind).

    With a kernel attached, it is the kernel's branch that pulls and its namespace follows; divergent
    histories are merged variable by variable (see `txgit merge`).
    """
    ws = Workspace.open(".")
    k = attached_kernel(ws, kernel)
    if k is not None and k.branch is None:
        raise TxgitError("the kernel is detached: check out a branch to pull into")

    def in_kernel(ref: str, label: str) -> dict[str, Any]:  # its namespace follows what the merge takes
        assert k is not None
        return merge_in_kernel(ws, k, {"op": "merge", "rev": ref, "label": label, "trust": trust, "safe": safe},
                               label)

    def said(fetched: FetchResult) -> None:  # what the fetch moved stands even if the merge then fails
        for line in fetch_lines(fetched):
            _out(line)

    with progress_bar() as progress, slow_notice():
        r = ws.pull(remote, branch=branch, into=k.branch if k is not None else None, progress=progress,
                    trust=trust, safe=safe, merge_step=in_kernel if k is not None else None, on_fetched=said)
    answer, dropped, label = r.answer, r.dropped, r.answer["label"]
    print_merge(ws, answer, k, trust=trust)
    if dropped:  # someone took them off the remote on purpose (push --force): a bare push undoes that
        last = ws.resolve(dropped[0])
        n = len(dropped)
        _out(f"Note: {label} was rewritten (forced update): {n} commit{'s' if n != 1 else ''} it "
             f"dropped {'is' if n == 1 else 'are'} still on {r.branch} ({last.short_id} {last.summary}"
             f"{f' and {n - 1} more' if n > 1 else ''}), and your next push publishes "
             f"{'it' if n == 1 else 'them'} again; if {'it was' if n == 1 else 'they were'} dropped on purpose, "
             f"`txgit reset {label}` drops {'it' if n == 1 else 'them'} here (and any commit of yours "
             "after: `txgit log --graph --all` shows them)")
    if answer["status"] == "conflicts":
        raise typer.Exit(1)


@app.command()
def reset(
    rev: str = typer.Argument(..., metavar="REV", help="Where the branch goes: a commit, HEAD~1, a tag …"),
    force: bool = typer.Option(False, "--force", "-f", help="Drop the attached kernel's uncommitted changes."),
    trust: bool = typer.Option(False, "--trust", help="Load a state from a remote not marked trusted."),
    safe: bool = typer.Option(False, "--safe", help="Load only allow-listed plain data types."),
    kernel: Optional[str] = typer.Option(None, "--kernel", metavar="KERNEL", help=KERNEL_HELP),
) -> None:
    """Point the current branch at REV (like `git reset --hard`); an attached kernel's namespace follows.

    Commits the branch had that nothing else holds are left behind (the reflog keeps them): it says how
    many and how to keep them.
    """
    ws = Workspace.open(".")
    k = attached_kernel(ws, kernel)
    if k is not None:
        answer = call_kernel(k, {"op": "reset", "rev": rev, "force": force, "trust": trust, "safe": safe})
    else:
        r = ws.reset(rev, ref=_local_ref(ws))
        answer = {"commit": r.info.id, "branch": r.branch, "left_behind": r.left_behind, "left_from": r.left_from,
                  "loaded": [], "removed": []}
    info = ws.resolve(answer["commit"])
    where = answer.get("branch") or "HEAD"
    _out(f"{kernel_tag(k)}{where} is now at {info.short_id} {info.summary}" + _loaded(answer))
    warn_left_behind(answer)


def _loaded(answer: dict[str, Any]) -> str:
    loaded, removed = answer.get("loaded") or [], answer.get("removed") or []
    return (f": loaded {', '.join(loaded)}" if loaded else "") + (f"; removed {', '.join(removed)}" if removed else "")


def warn_left_behind(answer: dict[str, Any]) -> None:
    """Git's warning when commits are left that no branch holds, with the command that keeps them."""
    n, tip = answer.get("left_behind") or 0, answer.get("left_from")
    if n and tip:
        _out(left_behind_warning(n, tip))
