"""Maintenance commands: fsck (check and repair) and gc (delete unreachable blobs)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from txgit.cli.app import app, console, err_console
from txgit.cli.render import human_size
from txgit.errors import TxgitError
from txgit.storage import ObjectStore
from txgit.workspace import GC_GRACE_SECONDS, Workspace


def _out(text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


@app.command()
def fsck(
    repair: bool = typer.Option(False, "--repair", help="Replace missing or corrupt blobs with verified copies "
                                "from the remotes' stores (or the --from stores)."),
    sources: Optional[list[str]] = typer.Option(None, "--from", metavar="STORE",
                                                help="A store (folder or fsspec URL) to repair from; repeatable."),
) -> None:
    """Check every commit reachable from a branch, tag, HEAD or reflog: records parse, blobs exist and verify.

    Prints one line per problem and exits 1 if there is any.
    """
    ws = Workspace.open(Path.cwd())
    for s in sources or []:
        if "://" not in s and not Path(s).is_dir():  # a typo must not create a folder
            raise TxgitError(f"no object store at {s!r}: not a folder")
    stores = [ObjectStore(s) for s in sources] if sources else None
    report = ws.fsck(repair=repair or bool(sources), stores=stores)
    for name, url in sorted(report.repaired.items()):
        _out(f"repaired blob {name} from {url}")
    for line in report.problems:
        _out(line)
    summary = f"checked {report.commits} commits, {report.blobs} blobs"
    if report.problems:
        err_console.print(f"txgit: error: {summary}: {len(report.problems)} problem"
                          f"{'s' if len(report.problems) != 1 else ''}", markup=False, highlight=False)
        raise typer.Exit(1)
    _out(f"{summary}: ok" + (f" ({len(report.repaired)} repaired)" if report.repaired else ""))


@app.command()
def gc(
    grace: float = typer.Option(GC_GRACE_SECONDS, "--grace", min=0, metavar="SECONDS",
                                help="Keep unreachable blobs younger than this (default one hour)."),
    reflog_days: float = typer.Option(30.0, "--reflog-days", min=0, metavar="DAYS",
                                      help="Expire reflog entries older than this first (default 30)."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Say what would be deleted; delete nothing."),
) -> None:
    """Delete stored blobs that no branch, tag, HEAD or reflog entry reaches (safe beside running commits)."""
    ws = Workspace.open(Path.cwd())
    report = ws.gc(grace_seconds=grace, reflog_days=reflog_days, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    _out(f"{verb} {len(report.deleted)} blobs ({human_size(report.bytes_freed)}), "
         f"kept {report.reachable} reachable" + (f" and {report.kept_young} younger than {grace:g}s"
                                                 if report.kept_young else ""))
