"""Live-session commands: `commit` (in the attached kernel) and `run` (a script under tracking)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from txgit.cli.app import app, console, err_console
from txgit.visual.text import not_restored_line, plural
from txgit.workspace import Workspace


@app.command()
def commit(
    message: str = typer.Option(..., "-m", "--message", help="Commit message."),
    allow_empty: bool = typer.Option(False, "--allow-empty", help="Commit even if nothing changed."),
    kernel: Optional[str] = typer.Option(None, "--kernel", metavar="KERNEL",
                                         help="The kernel to act on (PID, notebook or branch) when several are attached."),
) -> None:
    """Commit the live state of the kernel attached to this workspace (one running `%load_ext txgit`).

    Nothing changed since its last commit: says so and exits 1, as git does (--allow-empty commits anyway).
    During a merge, this is the merge commit, once every conflict is resolved."""
    from txgit.errors import NothingToCommit
    from txgit.sessions.kernel import commit_in_kernel, require_kernel

    ws = Workspace.open(".")
    k = require_kernel(ws, "commit", kernel)
    try:
        answer = commit_in_kernel(ws, message, kernel=str(k.pid), allow_empty=allow_empty)
    except NothingToCommit as e:
        console.print(f"[kernel {k.pid}] {e}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(f"[kernel {k.pid}] committed {answer['commit'][:8]} on {answer.get('branch') or 'detached HEAD'}: "
                  f"{plural(answer['variables'], 'variable')}, {len(answer['serialized'])} serialized", markup=False,
                  highlight=False, soft_wrap=True)
    for name, why in answer.get("skipped", {}).items():
        console.print(f"  not saved: {name} ({why})", markup=False, highlight=False)


def print_kernel_checkout(answer: dict, pid: int) -> None:
    """What `txgit checkout` prints after checking out into an attached kernel."""
    where = f"branch {answer['branch']}" if answer.get("branch") else f"{answer['commit'][:8]} (detached)"
    console.print(f"[kernel {pid}] checked out {where}: loaded {len(answer['loaded'])}, "
                  f"kept {len(answer.get('kept', []))}, removed {len(answer['removed'])}", markup=False, highlight=False)
    for name, why in answer.get("not_restored", {}).items():
        console.print("  " + not_restored_line(name, why, answer.get("branch")), markup=False, highlight=False)
    if answer.get("recomputed"):
        console.print(f"  recomputed by re-running the code that made them: {', '.join(answer['recomputed'])}",
                      markup=False, highlight=False)
    for line in answer.get("drift", []):
        console.print(f"  warning: recorded under other versions: {line}", markup=False, highlight=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                               "allow_interspersed_args": False})
def run(
    ctx: typer.Context,
    script: Path = typer.Argument(..., help="The Python script to run as __main__."),
    resume: bool = typer.Option(False, "--resume", help="Continue after the last statement committed at HEAD."),
    reuse: bool = typer.Option(False, "--reuse", help="Load a statement's recorded results instead of running it "
                               "again when its code, inputs and files are unchanged."),
) -> None:
    """Run SCRIPT [ARGS…], committing its state after each top-level statement."""
    from txgit.cli import UsageError
    from txgit.sessions.script import run_script

    if str(script).startswith("-") and not script.exists():
        # options of `run` end at the script's name, so a wrong one arrives here as the script
        raise UsageError(f"No such option: {script} (options of `txgit run` go before the script: --resume, --reuse)")
    ws = Workspace.open(".")
    replay = None
    if reuse:
        from txgit.reuse.replay import replayer

        replay = replayer()
    result = run_script(ws, script, list(ctx.args), resume=resume, replay=replay)
    sys.stdout.flush()
    if result.finished_at is not None:  # else it says nothing at all
        err_console.print(f"txgit: {script} ran to its end at {result.finished_at[:8]}: nothing to resume "
                          f"(`txgit run {script}` runs it again)", markup=False, highlight=False, soft_wrap=True)
    if result.exit_code:
        sys.exit(result.exit_code)  # the script's own sys.exit(N); typer.Exit's code is dropped outside standalone mode
