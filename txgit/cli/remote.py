"""Remote commands: remote, push, fetch, pull, clone (a thin shell over :mod:`txgit.remote`)."""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from txgit.cli.app import app, console, err_console
from txgit.errors import TxgitError
from txgit.remote import EMBEDDED_DIR, FetchResult, clone_path, notify_when_slow, parse_storage_options, \
    unfinished_clone
from txgit.visual.text import not_committed_line, plural
from txgit.workspace import Workspace

_SHOW_PROGRESS_FROM = 8 << 20  # bytes: a bar only for transfers long enough to watch


def _out(text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


@contextmanager
def progress_bar() -> Iterator:
    """A callback for the API's ``progress=``: a rich bar on stderr once a transfer is big enough."""
    bar: Progress | None = None
    task = None

    def update(phase: str, done: int, total: int) -> None:
        nonlocal bar, task
        if bar is None:
            # only on a terminal, like the slow notice: a pipe or log got a stray blank line from rich
            if total < _SHOW_PROGRESS_FROM or not sys.stderr.isatty():
                return
            bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                           TimeRemainingColumn(), console=err_console, transient=True)
            bar.start()
            task = bar.add_task(f"{phase}ing blobs", total=total)
        bar.update(task, completed=done, total=total)

    try:
        yield update
    finally:
        if bar is not None:
            bar.stop()


@contextmanager
def slow_notice() -> Iterator[None]:
    """"connecting to URL ..." on stderr while a git remote has not answered for a second, erased
    once it answers or fails. Only on a terminal, like git's progress: a pipe or log gets just the
    result, or the one error line."""
    stream = sys.stderr
    if not stream.isatty():
        yield
        return
    lock = threading.Lock()  # the notice comes from a timer thread

    def show(url: str | None) -> None:
        with lock:
            stream.write(f"connecting to {url} ..." if url is not None else "\r\x1b[2K")
            stream.flush()

    with notify_when_slow(show):
        yield


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n} bytes"


def _short(ref: str) -> str:
    for prefix in ("refs/heads/", "refs/remotes/", "refs/tags/"):
        if ref.startswith(prefix):
            return ref[len(prefix):]
    return ref


@app.command()
def remote(
    action: str = typer.Argument("list", metavar="[list|add|remove|set-url|set-storage|trust|untrust]",
                                 help="What to do (default: list)."),
    name: Optional[str] = typer.Argument(None, metavar="NAME", help="The remote's name (e.g. origin)."),
    url: Optional[str] = typer.Argument(None, metavar="URL",
                                        help="add, set-url: where the history goes (a path, file://, git://, https:// "
                                             "or ssh URL); set-storage: where the blobs go (an fsspec URL)."),
    storage: Optional[str] = typer.Option(None, "--storage", metavar="FSSPEC_URL",
                                          help=f"With add: where the blobs go (s3://bucket/prefix, a folder, …). Default "
                                               f"for a local path: beside the repository ({EMBEDDED_DIR}/)."),
    storage_option: List[str] = typer.Option([], "--storage-option", metavar="KEY=VALUE",
                                             help="With add or set-storage: an fsspec storage option (e.g. "
                                                  "endpoint_url=http://…); repeatable; kept in this workspace only; "
                                                  "set-storage replaces the old ones."),
    trusted: bool = typer.Option(False, "--trusted", help="With add: states fetched from it load without --trust "
                                                          "(loading a state runs its code: only remotes you trust)."),
) -> None:
    """List, add or remove remotes: `txgit remote add NAME GIT_URL [--storage URL] [--trusted]`,
    `txgit remote remove NAME`; `txgit remote set-url NAME GIT_URL` and `txgit remote set-storage NAME FSSPEC_URL
    [--storage-option K=V]` change one (its trust mark stays); `txgit remote trust NAME` / `untrust NAME` marks
    whose states load without --trust."""
    ws = Workspace.open(".")
    if action in ("list", "-v"):
        if name is not None:
            raise TxgitError("usage: txgit remote [list]")
        for r in ws.remotes.list():
            try:
                where = ws.remotes.storage_url(r)
            except TxgitError:
                where = "(no storage yet)"
            opts = f"  options: {', '.join(sorted(r.storage_options))}" if r.storage_options else ""
            _out(f"{r.name}\t{r.url}\tblobs: {where}{opts}{'  (trusted)' if r.trusted else ''}")
    elif action == "add":
        if name is None or url is None:
            raise TxgitError("usage: txgit remote add NAME GIT_URL [--storage FSSPEC_URL]")
        r = ws.remotes.add(name, url, storage=storage, storage_options=parse_storage_options(storage_option),
                           trusted=trusted)
        try:
            where = ws.remotes.storage_url(r)
        except TxgitError:
            where = "recorded by the remote (found at fetch)"
        _out(f"added remote {r.name}: {r.url} (blobs: {where})" + (", trusted" if r.trusted else ""))
    elif action in ("remove", "rm"):
        if name is None or url is not None:
            raise TxgitError("usage: txgit remote remove NAME")
        ws.remotes.remove(name)
        _out(f"removed remote {name}")
    elif action == "set-url":
        if name is None or url is None or storage is not None or storage_option:
            raise TxgitError("usage: txgit remote set-url NAME GIT_URL")
        r = ws.remotes.set_url(name, url)
        _out(f"remote {r.name}: {r.url}")
    elif action == "set-storage":
        if name is None or url is None or storage is not None:
            raise TxgitError("usage: txgit remote set-storage NAME FSSPEC_URL [--storage-option KEY=VALUE …]")
        r = ws.remotes.set_storage(name, url, storage_options=parse_storage_options(storage_option))
        opts = f" (options: {', '.join(sorted(r.storage_options))})" if r.storage_options else ""
        _out(f"remote {r.name}: blobs at {ws.remotes.storage_url(r)}{opts}")
    elif action in ("trust", "untrust"):
        if name is None or url is not None:
            raise TxgitError(f"usage: txgit remote {action} NAME")
        ws.remotes.set_trusted(name, action == "trust")
        _out(f"remote {name}: {'trusted: its states load' if action == 'trust' else 'not trusted: its states load only with --trust or --safe'}")
    else:
        raise TxgitError(f"unknown action {action!r}: use list, add, remove, set-url, set-storage, trust or untrust")


@app.command()
def push(
    remote: Optional[str] = typer.Argument(None, metavar="REMOTE", help="Default: the branch's upstream, else origin."),
    branch: Optional[str] = typer.Argument(None, metavar="BRANCH", help="Default: the current branch "
                                           "(as a magic, or with TXGIT_KERNEL: that kernel's branch)."),
    all_branches: bool = typer.Option(False, "--all", help="Push every branch."),
    tags: bool = typer.Option(False, "--tags", help="Push every tag too."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite remote branches even if that loses their commits."),
    set_upstream: bool = typer.Option(False, "--set-upstream", "-u",
                                      help="Make the pushed branches track REMOTE's (what pull and status use)."),
    delete: bool = typer.Option(False, "--delete", "-d", help="Delete BRANCH on REMOTE instead (your own branch "
                                                                "stays; so do the blobs in storage)."),
) -> None:
    """Upload the blobs the remote storage lacks, then move the remote's branches (non-fast-forward refused);
    with --delete, take BRANCH off REMOTE."""
    ws = Workspace.open(".")
    if delete:
        if remote is None or branch is None or all_branches or tags or force or set_upstream:
            raise TxgitError("usage: txgit push REMOTE --delete BRANCH (nothing else with it)")
        with slow_notice():
            was = ws.remotes.delete_branch(remote, branch)
        _out(f"  {'- [deleted]':18} {branch} (was {was[:8]})")
        return
    if branch is not None and all_branches:
        raise TxgitError("give BRANCH or --all, not both")
    if branch is None and not all_branches:
        # as a magic (or for the kernel TXGIT_KERNEL names), or beside the only kernel attached: that
        # kernel's branch, as pull and commit act on it; it is not HEAD's for the second kernel of a
        # folder (also once the first is closed). Several kernels attached: HEAD's branch, as in git.
        from txgit.sessions.kernel import attached_kernel, lone_kernel_branch

        if os.environ.get("TXGIT_KERNEL"):
            k = attached_kernel(ws)
            if k is not None and k.branch is None:
                ws.remotes.get(remote or ws.remotes.default())  # no remote at all: that is what to say first
                raise TxgitError("the kernel is detached: name the branch to push, or make one where it is "
                                 "first (`%txgit checkout -b NAME`)")
            if k is not None:
                branch = k.branch
        else:
            branch = lone_kernel_branch(ws)
    with progress_bar() as progress, slow_notice():
        r = ws.push(remote, branch, all_branches=all_branches, tags=tags, force=force, progress=progress,
                    set_upstream=set_upstream)
    pushed = sorted(ws.branches()) if all_branches else [branch or ws.branch or ""]
    if set_upstream:
        for b in pushed:
            _out(f"branch '{b}' set up to track '{r.remote}/{b}'")
    for ref, (old, new) in r.updated.items():
        span = f"{old[:8]}..{new[:8]}" if old else "new"
        note = ""
        if ref in r.forced:  # the remote's branch lost commits: said as git says it, with how many
            span = f"+ {old[:8]}...{new[:8]}"
            dropped = r.forced[ref]
            note = (f" (forced update: {dropped} commit{'s' if dropped != 1 else ''} no longer on "
                    f"{r.remote}/{_short(ref)})" if dropped is not None else " (forced update)")
        if ref in r.recreated:  # someone's deletion, undone: said
            note = (f" (it was deleted on {r.remote} since your last fetch: this push made it again; "
                    f"`txgit push {r.remote} --delete {_short(ref)}` deletes it)")
        _out(f"  {span:18} {_short(ref)} -> {r.remote}/{_short(ref)}{note}")
    if not r.updated and not r.storage_moved:
        _out(f"Everything up-to-date ({r.remote})")
    elif r.blobs_named == 0:  # a branch at a commit the remote has: "0 of 0 blobs (0 bytes of 0 bytes)" said nothing
        _out(f"pushed to {r.remote}: no blob to upload ({r.remote} has every one these states name) in {r.seconds:.2f}s")
    else:
        _out(f"pushed to {r.remote}: {r.blobs_uploaded} of {r.blobs_named} blobs uploaded "
             f"({_mb(r.bytes_uploaded)} of {_mb(r.bytes_state)} of state) in {r.seconds:.2f}s")
    if r.storage_moved:
        _out(f"{r.remote} records its blobs at {ws.remotes.storage_url(r.remote)} now")
    # a push carries commits only: values a kernel on these branches changed and did not commit are not
    # shared, though "Everything up-to-date" reads as if they were
    from txgit.sessions.kernel import uncommitted_in_kernels

    for k, names in uncommitted_in_kernels(ws, pushed):
        _out(not_committed_line(names, "this kernel" if k.pid == os.getpid() else k.describe()))


def fetch_lines(r: FetchResult) -> list[str]:
    """What a fetch moved, a line a ref (as git prints it)."""
    lines = []
    for ref, (old, new) in r.updated.items():
        if new is None:
            lines.append(f"  [deleted]          {_short(ref)}")
        else:
            if ref in r.forced:  # as git says it: the remote's branch lost commits it had
                lines.append(f"  {'+ ' + old[:8] + '...' + new[:8]:18} {_short(ref)} (forced update)")
                continue
            span = f"{old[:8]}..{new[:8]}" if old else "[new branch]"
            lines.append(f"  {span:18} {_short(ref)}")
    lines += [f"  {'[new tag]':18} {tag}" for tag in r.new_tags]
    # as git says it; ours stays (a fetch never moves a tag), with what takes theirs
    lines += [f"  {'! [rejected]':18} {tag} (would clobber existing tag: yours is on {ours[:8]}, {r.remote}'s on "
              f"{theirs[:8]}; `txgit tag -f {tag} {theirs[:8]}` takes theirs)" for tag, (ours, theirs) in r.kept_tags.items()
              if tag not in r.told_tags]
    return lines


@app.command()
def fetch(
    remote: Optional[str] = typer.Argument(None, metavar="REMOTE", help="Default: the branch's upstream, else origin."),
    eager: bool = typer.Option(False, "--eager", help="Fetch every blob now, not on demand."),
) -> None:
    """Bring the remote's branches over as REMOTE/BRANCH (blobs come when a state is checked out or loaded)."""
    ws = Workspace.open(".")
    with progress_bar() as progress, slow_notice():
        r = ws.fetch(remote, eager=eager, progress=progress)
    lines = fetch_lines(r)
    for line in lines:
        _out(line)
    if eager:
        _out(f"fetched {plural(r.blobs_fetched, 'blob')} ({_mb(r.bytes_fetched)})")
    if not lines and not eager:
        _out(f"{r.remote}: up to date")


@app.command()
def clone(
    url: str = typer.Argument(..., metavar="GIT_URL", help="The remote's history: a path, file://, git://, https://…"),
    directory: Optional[Path] = typer.Argument(None, metavar="DIR", help="Where (default: the URL's last part)."),
    storage: Optional[str] = typer.Option(None, "--storage", metavar="FSSPEC_URL",
                                          help="Blob storage, if not the one the remote records."),
    storage_option: List[str] = typer.Option([], "--storage-option", metavar="KEY=VALUE",
                                             help="An fsspec storage option (e.g. endpoint_url=http://…); repeatable."),
    eager: bool = typer.Option(False, "--eager", help="Fetch every blob now, not on demand."),
    trusted: bool = typer.Option(False, "--trusted", help="Mark origin trusted (its states load without --trust). "
                                                          "Default: trusted for a local path, not for a network URL."),
    untrusted: bool = typer.Option(False, "--untrusted", help="Mark origin not trusted, even as a local path."),
) -> None:
    """Make a workspace from a remote: its branches, HEAD on its default branch, blobs on demand."""
    if trusted and untrusted:  # one --trusted/--untrusted flag took the last one given
        raise TxgitError("give --trusted or --untrusted, not both")
    trust_origin = True if trusted else False if untrusted else None  # None: as the URL's kind says
    killed = unfinished_clone(clone_path(url, directory))  # a clone killed there before: made again
    with progress_bar() as progress, slow_notice():
        ws = Workspace.clone(url, directory, storage=storage, storage_options=parse_storage_options(storage_option),
                             eager=eager, progress=progress, trusted=trust_origin)
    if killed is not None:
        _out(f"a clone into {ws.root} (of {killed}) had not finished: cloned again")
    branches = sorted(ws.branches())
    _out(f"Cloned {url} into {ws.root}: {len(branches)} branch{'es' if len(branches) != 1 else ''} "
         f"({', '.join(branches)}), on {ws.branch}")
    _out(f"blobs: {ws.remotes.storage_url('origin')}" + (" (fetched)" if eager else " (fetched on demand)"))
    if not ws.remotes.get("origin").trusted:
        _out("origin is not trusted: check out its states with --trust (runs their code) or --safe, "
             "or `txgit remote trust origin`")
