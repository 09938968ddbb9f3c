"""Maintenance commands: fsck (check and repair), gc (delete unreachable blobs, keep a budget), config."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import math

import typer

from txgit import budget as _budget
from txgit.cli.app import app, console
from txgit.cli.render import human_size
from txgit.errors import TxgitError
from txgit.remote import DEFAULT_TIMEOUT, TIMEOUT_ENV, TIMEOUT_KEY, set_remote_timeout
from txgit.storage import ObjectStore
from txgit.visual.text import plural
from txgit.workspace import GC_GRACE_SECONDS, Workspace


def _out(text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


@app.command()
def fsck(
    repair: bool = typer.Option(False, "--repair", help="Replace corrupt blobs, and blobs missing everywhere, with "
                                "verified copies from the remotes that answer (or the --from stores); says which "
                                "it tried."),
    sources: Optional[list[str]] = typer.Option(None, "--from", metavar="STORE",
                                                help="A store (folder or fsspec URL) to repair from; repeatable."),
    remote: Optional[str] = typer.Option(None, "--remote", metavar="NAME",
                                         help="Check the remote's storage instead: every blob its branches name is "
                                              "there (listed, not taken from its index); with --repair, upload the "
                                              "missing ones again from here."),
    verify: bool = typer.Option(False, "--verify", help="With --remote: also download and hash every blob there "
                                "(a pack's members in one read); with --repair, replace the corrupt ones with "
                                "verified copies from here, read back before they count."),
) -> None:
    """Check every commit reachable from a branch, tag, HEAD or reflog: records parse, blobs exist and verify.

    A blob this workspace lacks but a remote holds is not downloaded yet (a lazy clone fetches blobs on
    demand): counted per remote, not a problem. Prints one line per problem (a corrupt blob, a blob missing
    everywhere) and exits 1 if there is any.
    """
    ws = Workspace.open(Path.cwd())
    if remote is not None:
        if sources:
            raise TxgitError("--from repairs the local store; --remote checks a remote's: use one of them")
        _fsck_remote(ws, remote, repair=repair, verify=verify)
        return
    if verify:
        raise TxgitError("--verify checks a remote's storage: give it with --remote NAME (a local fsck always "
                         "hashes every blob)")
    for s in sources or []:
        if "://" not in s and not Path(s).is_dir():  # a typo must not create a folder
            raise TxgitError(f"no object store at {s!r}: not a folder")
    stores = [ObjectStore(s) for s in sources] if sources else None
    report = ws.fsck(repair=repair or bool(sources), stores=stores)
    for source in report.sources:
        label = source.name if source.name == source.url or not source.url else f"{source.name} ({source.url})"
        if source.tried:
            _out(f"repair: tried {label}: {source.repaired} blob{'s' if source.repaired != 1 else ''} repaired")
        else:
            _out(f"repair: not tried {label}: {source.error}")
    for name, url in sorted(report.repaired.items()):
        _out(f"repaired blob {name} from {url}")
    for line in report.problems:
        _out(line)
    waiting = report.not_downloaded()
    for remote, n in sorted(waiting.items()):
        _out(f"{n} blob{'s' if n != 1 else ''} not downloaded yet: on remote {remote} (fetched when a state needs "
             f"{'them' if n != 1 else 'it'}, or all now with `txgit fetch --eager {remote}`)")
    summary = f"checked {plural(report.commits, 'commit')}, {plural(report.blobs, 'blob')}"
    if report.dropped:  # information, not damage: `gc --budget` deleted these states' bytes on purpose
        n = len(report.dropped)
        _out(f"{n} state{'s' if n != 1 else ''} dropped by gc --budget (not errors: re-run their code or fetch "
             f"them from a remote that has them to bring them back): "
             + ", ".join(c[:8] for c in report.dropped[:5]) + (" …" if n > 5 else ""))
    if report.problems:  # one error line, as every failing command (and a failed %txgit fsck cell) has
        raise TxgitError(f"{summary}: {len(report.problems)} problem{'s' if len(report.problems) != 1 else ''}")
    notes = ([f"{len(report.repaired)} repaired"] if report.repaired else []) + \
        ([f"{len(report.on_remote)} not downloaded yet"] if report.on_remote else [])
    _out(f"{summary}: ok" + (f" ({', '.join(notes)})" if notes else ""))


def _fsck_remote(ws: Workspace, remote: str, *, repair: bool, verify: bool) -> None:
    """`fsck --remote`: one line per blob lacking or corrupt there, one error line if any is left."""
    check = ws.remotes.check_storage(remote, resend=repair, verify=verify)
    name = check.remote
    for blob in check.lacking:
        _out(f"remote {name} lacks blob {blob}" + (" (uploaded again)" if blob in check.resent else
             " (not here either)" if blob in check.unavailable else ""))
    for blob in check.corrupt:
        _out(f"remote {name} has corrupt blob {blob}" + (" (uploaded again, verified)" if blob in check.replaced else
             " (no good copy here either)" if blob in check.no_good_copy else
             " (uploaded again, still corrupt when read back)" if repair else ""))
    summary = f"checked remote {name}: {plural(check.blobs, 'blob')} its branches name" + (", hashed" if verify else "")
    missing = len(check.lacking) - len(check.resent)
    corrupt = len(check.corrupt) - len(check.replaced)
    if missing or corrupt:
        left = ", ".join(([f"{missing} missing"] if missing else []) + ([f"{corrupt} corrupt"] if corrupt else []))
        flags = "--verify --repair" if verify else "--repair"
        hint = (f" (no good copy here: ask whoever has one to run `txgit fsck --remote {name} {flags}`)" if repair else
                f" (`txgit fsck --remote {name} {flags}` uploads good copies from here)")
        raise TxgitError(f"{summary}: {left}{hint}")
    done = ([f"{len(check.resent)} uploaded again"] if check.resent else []) + \
        ([f"{len(check.replaced)} repaired"] if check.replaced else [])
    _out(f"{summary}: ok" + (f" ({', '.join(done)})" if done else ""))


@app.command()
def gc(
    grace: float = typer.Option(GC_GRACE_SECONDS, "--grace", min=0, metavar="SECONDS",
                                help="Keep unreachable blobs (with --budget: states) younger than this (default one hour)."),
    reflog_days: float = typer.Option(30.0, "--reflog-days", min=0, metavar="DAYS",
                                      help="Expire reflog entries older than this first (default 30)."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Say what would be deleted; delete nothing."),
    budget: Optional[str] = typer.Option(None, "--budget", metavar="SIZE",
                                         help="Also drop the least valuable historical states until the local "
                                              "store fits in SIZE (5GB, 500MB, 1.5GiB); never what a branch, "
                                              "tag, remote-tracking ref or HEAD names."),
) -> None:
    """Delete stored blobs that no branch, tag, HEAD or reflog entry reaches (safe beside running commits),
    pack the small blobs that stay into one pack, and pack the git history's objects into one pack.

    With --budget, also drop the bytes of historical states, least valuable first (value = recompute
    seconds x (1 + times reused) / bytes), until the store fits. Their commits stay in the log; fsck
    lists them; their bytes come back from a remote that has them, or by re-running their code.
    """
    size = None if budget is None else _budget.parse_size(budget)  # a bad size: one line, before anything
    ws = Workspace.open(Path.cwd())
    report = ws.gc(grace_seconds=grace, reflog_days=reflog_days, dry_run=dry_run, budget=size)
    verb = "would delete" if dry_run else "deleted"
    b = report.budget
    if b is not None:
        for art in b.dropped:
            value = "inf" if math.isinf(art.value) else f"{art.value:.3g}"
            _out(f"{'would drop' if dry_run else 'dropped'} {art.commit[:8]}  {human_size(art.bytes):>9}  "
                 f"value {value} (recompute {art.cost:.3g}s, reused {art.reuses}x)  {art.message[:50]}")
    _out(f"{verb} {len(report.deleted)} blobs ({human_size(report.bytes_freed)}), "
         f"kept {report.reachable} reachable" + (f" and {report.kept_young} younger than {grace:g}s"
                                                 if report.kept_young else ""))
    packed = report.history
    if packed is not None and packed.packed:
        _out(f"packed {packed.packed} git objects of the history into one pack ({packed.loose_deleted} were "
             f"loose, {packed.packs_replaced} older pack{'s' if packed.packs_replaced != 1 else ''} replaced)")
    if report.blobs_packed:
        _out(f"packed {report.blobs_packed} small blobs into one pack ({report.loose_blob_files_removed} were loose "
             f"files, {report.blob_packs_merged} older pack{'s' if report.blob_packs_merged != 1 else ''} replaced)")
    if report.packs_rewritten or report.kept_in_packs:
        _out(f"packs: {report.packs_rewritten} {'would be ' if dry_run else ''}rewritten without their unreachable "
             f"blobs; {report.kept_in_packs} unreachable blobs left in packs that are mostly reachable")
    if b is not None:
        _out(f"store {human_size(b.store_before)} -> {human_size(b.store_after)} (budget {human_size(b.budget)}): "
             f"{len(b.dropped)} states {'would be ' if dry_run else ''}dropped, {len(b.kept)} historical kept, "
             f"{len(b.protected)} protected ({human_size(b.protected_bytes)})")
        if not b.met:
            _out(f"the budget cannot be met: the states that branches, tags, HEAD and the grace period protect "
                 f"need {human_size(b.protected_bytes)}")


CONFIG_KEYS = {"gc.budget": "the storage budget for the automatic `gc --budget` after commits (e.g. 5GB)",
               "remote.timeout": f"seconds a git remote or S3 storage may stay silent before push, fetch, pull or "
                                 f"clone give up (default {DEFAULT_TIMEOUT:g}, 0: no limit; {TIMEOUT_ENV} overrides it)"}


@app.command()
def config(
    key: str = typer.Argument(..., help="The setting: " + "; ".join(f"{k}: {v}" for k, v in CONFIG_KEYS.items())),
    value: Optional[str] = typer.Argument(None, help="The new value; without it, print the current one."),
    unset: bool = typer.Option(False, "--unset", help="Remove the setting."),
) -> None:
    """Read or set a workspace setting (stored in .txgit's git config). Settings: gc.budget, remote.timeout."""
    if key not in CONFIG_KEYS:
        raise TxgitError(f"unknown setting {key[:40]!r}: known settings are {', '.join(sorted(CONFIG_KEYS))}")
    ws = Workspace.open(Path.cwd())
    if key == "remote.timeout":
        repo = ws.history.repo
        if unset or value is not None:
            with ws.lock():
                set_remote_timeout(repo, None if unset else value)
        elif TIMEOUT_KEY not in repo.config:
            raise TxgitError(f"{key} is not set (default {DEFAULT_TIMEOUT:g} seconds; set it with "
                             f"`txgit config {key} 60`)")
        else:
            _out(str(repo.config[TIMEOUT_KEY]))
        return
    if unset:
        _budget.set_budget(ws, None)
    elif value is not None:
        _budget.set_budget(ws, value)
    else:
        current = _budget.get_budget(ws)
        if current is None:
            raise TxgitError(f"{key} is not set (set it with `txgit config {key} 5GB`)")
        _out(human_size(current))
