"""The `txgit` command: a thin typer shell over :class:`txgit.Workspace`.

Each concern registers its commands from its own module (core, session,
remote, …) on the one ``app``. ``main`` turns a :class:`TxgitError` into one
line on stderr and a non-zero exit, and Ctrl-C into ``txgit: interrupted: …``
(what had changed by then) and exit status 130; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any, Callable

import typer

from txgit.cli.app import app, console, err_console  # noqa: F401
from txgit.cli import core, lineage, maintenance, merge, remote, reuse, session, visual  # noqa: F401,E402  (registers commands)
from txgit.errors import TxgitError, disk_full


class _Interrupt(Exception):
    """Carries a command's KeyboardInterrupt past typer, which would turn it into a silent exit status
    130 and lose what the interrupt says (:class:`txgit.errors.Interrupted`: what had changed by then)."""


def _keep_interrupts(callback: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(callback)  # typer reads the parameters through __wrapped__
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except KeyboardInterrupt as e:
            raise _Interrupt() from e

    return run


for _command in app.registered_commands:  # every command module is imported above
    _command.callback = _keep_interrupts(_command.callback)


class UsageError(TxgitError):
    """A command line typer/click refused (unknown option, missing argument): exit status 2."""

    exit_code = 2


def invoke(argv: list[str] | None = None) -> int:
    """Run one command and return its exit status.

    A :class:`TxgitError` (a usage error too, as :class:`UsageError`) propagates: the caller shows
    it, :func:`main` as one line on stderr, the ``%txgit`` magic by failing its cell.
    """
    try:
        code = app(args=argv, prog_name="txgit", standalone_mode=False)
    except _Interrupt as e:
        raise e.__cause__ from None  # the KeyboardInterrupt, with what it says had changed
    except typer.Exit as e:
        return e.exit_code
    except typer.TyperException as e:  # usage errors (typer's bundled click)
        if type(e).__name__ == "NoArgsIsHelpError":
            e.show()  # `txgit` alone prints the help
            return 0
        message = e.format_message() if hasattr(e, "format_message") else str(e)
        error = UsageError(message)
        error.exit_code = getattr(e, "exit_code", 2)
        raise error from None
    return code if isinstance(code, int) else 0  # a command's typer.Exit(n) comes back as a return value


def _workspace_folder() -> str:
    """Where a command run here writes: the workspace's `.txgit/` (or the current folder outside one)."""
    from txgit.repository import Repository

    try:
        return str(Repository.open().dir)
    except TxgitError:
        return os.getcwd()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    try:
        try:
            code = invoke(argv)
        except TxgitError:
            raise
        except Exception as e:  # a full disk is the user's situation, not a bug: one line, no traceback
            command = next((a for a in args if not a.startswith("-")), "")
            full = disk_full(e, f"txgit {command}".strip(), _workspace_folder())
            if full is None:
                raise
            raise full from e
    except TxgitError as e:
        err_console.print(f"txgit: error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except typer.Abort:
        err_console.print("txgit: aborted", markup=False)
        sys.exit(130)
    except KeyboardInterrupt as e:  # an Interrupted says what had changed by then
        err_console.print(f"txgit: interrupted: {e}" if str(e) else "txgit: interrupted", markup=False,
                          highlight=False, soft_wrap=True)
        sys.exit(130)
    if code:
        sys.exit(code)
